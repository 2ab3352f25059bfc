//! Intake: every packet that arrives on the uplink passes here. The guard verifies it (format,
//! signature, allowlist, clock, replay memory); this gateway's own packets coming back and valid
//! packets on another context's topic are counted and dropped; the rest go on to synthesis.
//!
//! The replay memory, with synthesis's proposals and trust, is committed in one transaction before
//! the packets it accounts for are acknowledged to the broker ([`state`]).

pub mod state;

use crate::packet::{ReplayGuard, TrustPolicy, VerifiedPacket};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// At most one rejected-packet WARN line per this interval.
pub const REJECTION_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Incoming packets are acknowledged to the broker at once when this many wait for a save.
pub const ACK_BATCH: usize = 16;
/// Sources the replay memory holds; the least recently heard from is forgotten first.
pub const REPLAY_SOURCES: usize = 4096;

/// Lets one log line through per interval and counts the ones held back, so a flood of bad
/// input cannot fill the journal; exact counts are published elsewhere.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl LogLimiter {
    /// One line per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(lines held back since the last one let through)` when a line may be logged at
    /// `now`; `None` when it is held back.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

/// Counts of packets that passed the guard and were dropped here anyway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// This gateway's own packets, back from the broker.
    pub own: u64,
    /// Valid packets on another context's topic.
    pub wrong_topic: u64,
    /// Peer packets no adaptable rule here matches.
    pub unmatched: u64,
    /// Empty messages: a publisher cleared its retained packet (expired).
    pub cleared: u64,
    /// Retained packets delivered again on subscribing, already accepted here.
    pub known: u64,
}

/// The intake guard's state.
#[derive(Debug)]
pub struct Intake {
    guard: ReplayGuard,
    policy: TrustPolicy,
    /// This gateway's own public key: its packets coming back are ignored.
    own: [u8; 32],
    dropped: Dropped,
    /// Counts changed since last published.
    counts_changed: bool,
    /// The replay memory changed since it was last saved.
    replay_changed: bool,
    /// Packets handled and not yet acknowledged.
    awaiting_ack: usize,
    /// The last packet changed nothing to save (this gateway's own, a cleared retained
    /// message, a retained packet already known): it may be acknowledged at once.
    own_last: bool,
    rejection_log: LogLimiter,
}

impl Intake {
    /// An intake with an empty replay memory (see [`state::load`] for the saved one).
    pub fn new(policy: TrustPolicy, own: [u8; 32]) -> Self {
        Self {
            guard: ReplayGuard::new(REPLAY_SOURCES),
            policy,
            own,
            dropped: Dropped::default(),
            counts_changed: false,
            replay_changed: false,
            awaiting_ack: 0,
            own_last: false,
            rejection_log: LogLimiter::new(REJECTION_LOG_INTERVAL),
        }
    }

    /// The replay memory.
    pub fn guard(&self) -> &ReplayGuard {
        &self.guard
    }

    /// The replay memory, to restore it.
    pub fn guard_mut(&mut self) -> &mut ReplayGuard {
        &mut self.guard
    }

    /// Verifies a packet that arrived on `topic` at `now_s` (Unix seconds; `mono` paces the
    /// log). Returns it when it is a peer's packet for this context, to be offered to
    /// synthesis. Every packet counts toward the next acknowledgement batch.
    pub fn accept(
        &mut self,
        topic: &str,
        bytes: &[u8],
        retained: bool,
        now_s: u64,
        mono: Instant,
    ) -> Option<VerifiedPacket> {
        self.counts_changed = true;
        self.awaiting_ack += 1;
        self.own_last = false;
        if bytes.is_empty() {
            debug!(topic, "A retained packet was cleared by its publisher.");
            self.dropped.cleared += 1;
            self.own_last = true;
            return None;
        }
        // The broker sends every retained packet again whenever the gateway subscribes (each
        // reconnection): one already accepted is no news, and no replay attempt either.
        if retained
            && crate::packet::guard::decode(bytes)
                .is_ok_and(|p| self.guard.accepted(&p.body.source, p.body.seq))
        {
            self.dropped.known += 1;
            self.own_last = true;
            return None;
        }
        let verified = match crate::packet::verify(bytes, now_s, &mut self.guard, &self.policy) {
            Ok(v) => v,
            Err(r) => {
                match self.rejection_log.allow(mono) {
                    Some(held_back) => warn!(
                        topic,
                        reason = %r,
                        held_back,
                        "Peer packet rejected (further rejections within {}s are counted on \
                         stats/intake, not logged).",
                        REJECTION_LOG_INTERVAL.as_secs()
                    ),
                    None => debug!(topic, reason = %r, "Peer packet rejected."),
                }
                return None;
            }
        };
        self.replay_changed = true;
        let b = verified.body();
        if b.source == self.own {
            self.dropped.own += 1;
            self.own_last = true;
            return None;
        }
        if b.topic() != topic {
            self.dropped.wrong_topic += 1;
            warn!(topic, fingerprint = %b.fingerprint, "Valid packet on another context's topic; ignored.");
            return None;
        }
        info!(source = %hex::encode(b.source), seq = b.seq, fingerprint = %b.fingerprint, "Peer outcome received.");
        Some(verified)
    }

    /// Whether the last packet was this gateway's own, back from the broker. Nothing it changed
    /// needs saving before it is acknowledged (it is never applied; a repeat after a crash is
    /// recognised as own again), so it may be acknowledged at once: holding the
    /// acknowledgement of its own echo until the next save throttled the outbox to about 20
    /// packets a second against mosquitto.
    pub fn own_last(&self) -> bool {
        self.own_last
    }

    /// A verified packet matched no adaptable rule.
    pub fn unmatched(&mut self) {
        self.dropped.unmatched += 1;
    }

    /// Whether enough packets wait for their acknowledgement to save now.
    pub fn batch_full(&self) -> bool {
        self.awaiting_ack >= ACK_BATCH
    }

    /// Whether the replay memory changed since it was saved.
    pub fn replay_changed(&self) -> bool {
        self.replay_changed
    }

    /// The replay memory is saved and every packet handled so far may be acknowledged.
    pub fn committed(&mut self) {
        self.replay_changed = false;
        self.awaiting_ack = 0;
    }

    /// The counts, when they changed since the last call.
    pub fn take_counts(&mut self, applied: u64) -> Option<IntakeCounts> {
        if !std::mem::take(&mut self.counts_changed) {
            return None;
        }
        Some(self.counts(applied))
    }

    /// What became of the packets received since start; `applied` is synthesis's count.
    pub fn counts(&self, applied: u64) -> IntakeCounts {
        let counts = self.guard.counts();
        IntakeCounts {
            accepted: counts.accepted - self.dropped.own - self.dropped.wrong_topic,
            own: self.dropped.own,
            wrong_topic: self.dropped.wrong_topic,
            applied,
            unmatched: self.dropped.unmatched,
            cleared: self.dropped.cleared,
            known: self.dropped.known,
            ack_failures: 0,
            rejected: counts
                .iter()
                .map(|(kind, n)| (kind.name().to_string(), serde_json::Value::from(n)))
                .collect(),
        }
    }
}

/// `qis/<site>/stats/intake`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IntakeCounts {
    /// Peers' packets that passed the guard, for this gateway's contexts.
    pub accepted: u64,
    /// This gateway's own packets, back from the broker.
    pub own: u64,
    /// Valid packets on another context's topic.
    pub wrong_topic: u64,
    /// Packets that set or withdrew a proposal, ever (kept in the state database).
    pub applied: u64,
    /// Packets no adaptable rule here matches.
    pub unmatched: u64,
    /// Empty messages: a publisher cleared its retained packet (expired).
    pub cleared: u64,
    /// Retained packets delivered again on subscribing, already accepted here.
    pub known: u64,
    /// PUBACKs that could not be sent because the connection was gone (the broker delivers
    /// those packets again; filled in by the core from the uplink's count).
    pub ack_failures: u64,
    /// Rejected packets by reason.
    pub rejected: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rejection_log_lets_one_line_through_per_interval_and_counts_the_rest() {
        let mut limiter = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limiter.allow(t0), Some(0));
        for i in 1..=1000u64 {
            assert_eq!(limiter.allow(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(limiter.allow(t0 + Duration::from_millis(9_999)), None);
        assert_eq!(limiter.allow(t0 + Duration::from_secs(10)), Some(1001));
        assert_eq!(limiter.allow(t0 + Duration::from_secs(21)), Some(0));
    }
}
