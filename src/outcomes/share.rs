//! Sharing: an answered alarm becomes a signed outcome packet, left in the outbox for the
//! uplink.

use super::outbox::Outbox;
use super::{packet_body, Answer, Answers, LedgerEntry};
use std::collections::HashMap;
use tracing::{error, info, warn};

/// What turns answers into outcome packets.
pub struct Sharing {
    /// The gateway's signing key.
    pub key: ed25519_dalek::SigningKey,
    /// Where packets wait for their PUBACK.
    pub outbox: Outbox,
    /// Seconds receivers apply a packet.
    pub ttl_s: u32,
    /// Equipment class per context fingerprint (hex), the label packets carry.
    pub equipment: HashMap<String, String>,
}

impl Sharing {
    /// Signs the answered alarm into an outcome packet and leaves it in the outbox; `now_ms`
    /// is the Unix time in milliseconds. Returns true when a packet was queued.
    pub fn share(
        &self,
        answers: &mut Answers,
        alarm_id: &str,
        answer: &Answer,
        entry: &LedgerEntry,
        lead_time_s: Option<u64>,
        now_ms: u64,
    ) -> bool {
        let Some(record) = answers.record(alarm_id) else {
            return false;
        };
        let label = record
            .fingerprint
            .as_ref()
            .and_then(|f| self.equipment.get(f))
            .cloned()
            .unwrap_or_default();
        let seq = (answers.last_seq() + 1).max(now_ms);
        let Some(body) = packet_body(
            record,
            answer,
            entry,
            lead_time_s,
            now_ms / 1000,
            self.ttl_s,
            seq,
            &label,
        ) else {
            info!(
                alarm_id,
                "No context on this point: the outcome stays local."
            );
            return false;
        };
        let bytes = match body.sign(&self.key).and_then(|p| p.to_bytes()) {
            Ok(b) => b,
            Err(e) => {
                warn!(alarm_id, error = %e, "Cannot encode the outcome packet.");
                return false;
            }
        };
        match self.outbox.push(seq, &bytes) {
            Ok(()) => {
                answers.set_last_seq(seq);
                info!(
                    alarm_id,
                    seq,
                    bytes = bytes.len(),
                    "Outcome packet queued for the uplink."
                );
                true
            }
            Err(e) => {
                error!(alarm_id, error = %e, "Cannot store the outcome packet; it is lost.");
                false
            }
        }
    }
}
