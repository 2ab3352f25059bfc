//! Sharing: an answered alarm becomes a signed outcome packet, committed to the outbox with
//! its answer (see [`super::answers`]) for the uplink.

use super::outbox::Queued;
use super::{packet_body, PlannedAnswer};
use crate::packet::{Fingerprint, Levels};
use std::collections::HashMap;
use tracing::{info, warn};

/// What turns answers into outcome packets.
pub struct Sharing {
    /// The gateway's signing key.
    pub key: ed25519_dalek::SigningKey,
    /// Seconds receivers apply a packet.
    pub ttl_s: u32,
    /// Equipment class per context fingerprint (hex), the label packets carry.
    pub equipment: HashMap<String, String>,
    /// The general levels' fingerprints per full fingerprint: the routing address packets
    /// carry.
    pub levels: HashMap<Fingerprint, [Fingerprint; 3]>,
}

impl Sharing {
    /// Signs the answered alarm into outcome packet `seq`; `now_ms` is the Unix time in
    /// milliseconds. None when the point has no context (the outcome stays local).
    pub fn packet(&self, planned: &PlannedAnswer, seq: u64, now_ms: u64) -> Option<Queued> {
        let record = &planned.record;
        let answer = record.answer.as_ref()?;
        let alarm_id = planned.alarm_id.as_str();
        let label = record
            .fingerprint
            .as_ref()
            .and_then(|f| self.equipment.get(f))
            .cloned()
            .unwrap_or_default();
        let Some(mut body) = packet_body(
            record,
            answer,
            &planned.entry,
            planned.lead_time_s,
            now_ms / 1000,
            self.ttl_s,
            seq,
            &label,
        ) else {
            info!(
                alarm_id,
                "No context on this point: the outcome stays local."
            );
            return None;
        };
        // A context known here always has its levels; a record of a context since removed
        // from the configuration goes out without them, on the v1 topic.
        if let Some(general) = self.levels.get(&body.fingerprint) {
            body.levels = Levels::Known(*general);
        }
        // The topic and expiry of the signed packet: signing sets the source its topic names.
        match body.sign(&self.key).and_then(|p| Ok((p.to_bytes()?, p))) {
            Ok((bytes, packet)) => Some(Queued {
                seq,
                alarm_id: alarm_id.to_string(),
                topic: packet.topic(),
                bytes,
                expires_at: packet.body.expires_at(),
                at_ms: now_ms,
            }),
            Err(e) => {
                warn!(alarm_id, error = %e, "Cannot encode the outcome packet.");
                None
            }
        }
    }
}
