//! The intake guard: every packet from a peer passes [`verify`] before anything uses it.
//!
//! Checks run cheapest first, and only a packet that passes all of them changes the replay
//! memory: size → version → decoding → allowlist → value bounds → signature → expiry and
//! issue time → replay. Each failure is its own [`Rejection`], counted in
//! [`ReplayGuard::counts`]. Nothing in any input can panic: decoding is postcard into bounded
//! types, and every length is checked before slicing.

use super::{
    Feature, OutcomeKind, OutcomePacket, PacketBody, SpcRuleSet, MAX_PACKET_LEN, SIGNATURE_LEN,
    VERSION, VERSION_1,
};
use ed25519_dalek::{Signature, VerifyingKey};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Highest frequency a packet may name: 100 kHz, above any industrial vibration sensor.
pub const MAX_FREQUENCY_HZ: f32 = 100_000.0;
/// Longest time-to-live a packet may ask for: one year.
pub const MAX_TTL_S: u32 = 366 * 24 * 3600;
/// Longest lead time a packet may report: ten years.
pub const MAX_LEAD_TIME_S: u32 = 10 * 366 * 24 * 3600;
/// Largest harmonic order.
pub const MAX_HARMONIC_ORDER: u8 = 64;

/// Why a packet was rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// Longer than [`MAX_PACKET_LEN`].
    Oversize {
        /// Its length.
        len: usize,
    },
    /// Ends before the body and signature are complete.
    Truncated {
        /// Its length.
        len: usize,
    },
    /// A version this build does not read.
    UnknownVersion {
        /// The version byte.
        version: u8,
    },
    /// Not a valid encoding of its version (bad enum tag, bad UTF-8, string over its bound, trailing bytes).
    Malformed {
        /// What the decoder said.
        reason: String,
    },
    /// Strict mode is on and the source is not in the allowlist.
    UnknownSource,
    /// A value is non-finite or physically impossible.
    OutOfRange {
        /// The field.
        field: &'static str,
    },
    /// The signature does not verify against the source key.
    BadSignature,
    /// `issued_at + ttl_s` (plus the clock-skew allowance) is in the past.
    Expired {
        /// Seconds since it expired.
        ago_s: u64,
    },
    /// `issued_at` is further in the future than the clock-skew allowance.
    FromTheFuture {
        /// Seconds ahead of this gateway's clock.
        ahead_s: u64,
    },
    /// The source already sent this sequence number or a later one.
    Replayed {
        /// The packet's sequence number.
        seq: u64,
        /// The highest sequence number seen from the source.
        last: u64,
    },
}

/// The rejection reasons, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectionKind {
    /// [`Rejection::Oversize`]
    Oversize,
    /// [`Rejection::Truncated`]
    Truncated,
    /// [`Rejection::UnknownVersion`]
    UnknownVersion,
    /// [`Rejection::Malformed`]
    Malformed,
    /// [`Rejection::UnknownSource`]
    UnknownSource,
    /// [`Rejection::OutOfRange`]
    OutOfRange,
    /// [`Rejection::BadSignature`]
    BadSignature,
    /// [`Rejection::Expired`]
    Expired,
    /// [`Rejection::FromTheFuture`]
    FromTheFuture,
    /// [`Rejection::Replayed`]
    Replayed,
}

impl RejectionKind {
    /// All reasons, in check order.
    pub const ALL: [RejectionKind; 10] = [
        RejectionKind::Oversize,
        RejectionKind::Truncated,
        RejectionKind::UnknownVersion,
        RejectionKind::Malformed,
        RejectionKind::UnknownSource,
        RejectionKind::OutOfRange,
        RejectionKind::BadSignature,
        RejectionKind::Expired,
        RejectionKind::FromTheFuture,
        RejectionKind::Replayed,
    ];

    /// snake_case name, as in logs, metrics and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            RejectionKind::Oversize => "oversize",
            RejectionKind::Truncated => "truncated",
            RejectionKind::UnknownVersion => "unknown_version",
            RejectionKind::Malformed => "malformed",
            RejectionKind::UnknownSource => "unknown_source",
            RejectionKind::OutOfRange => "out_of_range",
            RejectionKind::BadSignature => "bad_signature",
            RejectionKind::Expired => "expired",
            RejectionKind::FromTheFuture => "from_the_future",
            RejectionKind::Replayed => "replayed",
        }
    }
}

impl Rejection {
    /// The reason without its details.
    pub fn kind(&self) -> RejectionKind {
        match self {
            Rejection::Oversize { .. } => RejectionKind::Oversize,
            Rejection::Truncated { .. } => RejectionKind::Truncated,
            Rejection::UnknownVersion { .. } => RejectionKind::UnknownVersion,
            Rejection::Malformed { .. } => RejectionKind::Malformed,
            Rejection::UnknownSource => RejectionKind::UnknownSource,
            Rejection::OutOfRange { .. } => RejectionKind::OutOfRange,
            Rejection::BadSignature => RejectionKind::BadSignature,
            Rejection::Expired { .. } => RejectionKind::Expired,
            Rejection::FromTheFuture { .. } => RejectionKind::FromTheFuture,
            Rejection::Replayed { .. } => RejectionKind::Replayed,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.kind().name();
        match self {
            Rejection::Oversize { len } => {
                write!(f, "{name}: {len} bytes, more than {MAX_PACKET_LEN}")
            }
            Rejection::Truncated { len } => {
                write!(f, "{name}: {len} bytes end before the packet does")
            }
            Rejection::UnknownVersion { version } => write!(
                f,
                "{name}: version {version}, this gateway reads versions {VERSION_1} to {VERSION}"
            ),
            Rejection::Malformed { reason } => write!(f, "{name}: {reason}"),
            Rejection::UnknownSource => {
                write!(f, "{name}: source not in the allowlist (strict mode)")
            }
            Rejection::OutOfRange { field } => {
                write!(f, "{name}: {field} is non-finite or physically impossible")
            }
            Rejection::BadSignature => write!(
                f,
                "{name}: the signature does not verify against the source key"
            ),
            Rejection::Expired { ago_s } => write!(f, "{name}: expired {ago_s} s ago"),
            Rejection::FromTheFuture { ahead_s } => {
                write!(f, "{name}: issued {ahead_s} s in the future")
            }
            Rejection::Replayed { seq, last } => write!(
                f,
                "{name}: sequence {seq}, already saw {last} from this source"
            ),
        }
    }
}

impl std::error::Error for Rejection {}

/// Whom to accept packets from, and how much clock difference to tolerate.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    /// Only accept sources in `allowlist`.
    pub strict: bool,
    /// Accepted source keys in strict mode.
    pub allowlist: HashSet<[u8; 32]>,
    /// Seconds of clock difference tolerated for expiry and issue time. Default 300.
    pub clock_skew_s: u64,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        Self {
            strict: false,
            allowlist: HashSet::new(),
            clock_skew_s: 300,
        }
    }
}

/// Counts of rejections by reason, and of accepted packets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RejectionCounts {
    counts: [u64; RejectionKind::ALL.len()],
    /// Packets accepted.
    pub accepted: u64,
}

impl RejectionCounts {
    /// Rejections for one reason.
    pub fn get(&self, kind: RejectionKind) -> u64 {
        self.counts[kind as usize]
    }
    fn add(&mut self, kind: RejectionKind) {
        self.counts[kind as usize] += 1;
    }
    /// Every reason with its count.
    pub fn iter(&self) -> impl Iterator<Item = (RejectionKind, u64)> + '_ {
        RejectionKind::ALL.iter().map(|k| (*k, self.get(*k)))
    }
    /// All rejections.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Sequence numbers remembered per source: the most recent [`REPLAY_WINDOW`] accepted ones.
/// Packets may arrive out of order (a broker restart can reorder QoS 1 deliveries), so a
/// lower sequence number than the highest is accepted once, as long as it is newer than the
/// oldest one remembered; a repeated one, or one older than the window, is a replay.
pub const REPLAY_WINDOW: usize = 64;

/// A source's public key, its accepted sequence numbers (ascending) and when it was last heard
/// from (the guard's own ordering).
pub type SourceMemory = ([u8; 32], Vec<u64>, u64);

/// Accepted sequence numbers per source, for at most `capacity` sources (the least recently
/// heard from is forgotten first; its old packets then still fail on expiry).
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    capacity: usize,
    seen: HashMap<[u8; 32], (std::collections::BTreeSet<u64>, u64)>,
    clock: u64,
    counts: RejectionCounts,
    /// Sources changed, and sources forgotten, since [`ReplayGuard::saved`].
    changed: std::collections::HashSet<[u8; 32]>,
    forgotten: std::collections::HashSet<[u8; 32]>,
}

impl ReplayGuard {
    /// A guard remembering up to `capacity` sources.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            seen: HashMap::new(),
            clock: 0,
            counts: RejectionCounts::default(),
            changed: Default::default(),
            forgotten: Default::default(),
        }
    }

    /// Rejection and acceptance counts so far.
    pub fn counts(&self) -> &RejectionCounts {
        &self.counts
    }

    /// Highest sequence accepted from `source`.
    pub fn last_seq(&self, source: &[u8; 32]) -> Option<u64> {
        self.seen
            .get(source)
            .and_then(|(seqs, _)| seqs.last().copied())
    }

    /// Whether `seq` from `source` was accepted (and is still remembered).
    pub fn accepted(&self, source: &[u8; 32], seq: u64) -> bool {
        self.seen
            .get(source)
            .is_some_and(|(seqs, _)| seqs.contains(&seq))
    }

    /// Sources remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when no source is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Every remembered source with its accepted sequence numbers (ascending), least recently
    /// heard from first: what [`ReplayGuard::remember`] needs to rebuild the memory after a
    /// restart.
    pub fn remembered(&self) -> Vec<([u8; 32], Vec<u64>)> {
        let mut entries: Vec<_> = self.seen.iter().collect();
        entries.sort_by_key(|(_, (_, used))| *used);
        entries
            .into_iter()
            .map(|(source, (seqs, _))| (*source, seqs.iter().copied().collect()))
            .collect()
    }

    /// Remembers `seq` as accepted from `source` without counting an acceptance (restoring a
    /// saved memory).
    pub fn remember(&mut self, source: [u8; 32], seq: u64) {
        self.record(source, seq);
    }

    /// Restores a saved source: its sequence numbers and when it was last heard from (the
    /// guard's own ordering, from [`ReplayGuard::changes`]). Not a change to save.
    pub fn restore(&mut self, source: [u8; 32], seqs: &[u64], used: u64) {
        let entry = self.seen.entry(source).or_default();
        entry.0.extend(seqs.iter().copied());
        while entry.0.len() > REPLAY_WINDOW {
            entry.0.pop_first();
        }
        entry.1 = used;
        self.clock = self.clock.max(used);
    }

    /// What changed since [`ReplayGuard::saved`]: each changed source with its sequence
    /// numbers (ascending) and last use, and the sources forgotten.
    pub fn changes(&self) -> (Vec<SourceMemory>, Vec<[u8; 32]>) {
        let changed = self
            .changed
            .iter()
            .filter_map(|s| {
                let (seqs, used) = self.seen.get(s)?;
                Some((*s, seqs.iter().copied().collect(), *used))
            })
            .collect();
        (changed, self.forgotten.iter().copied().collect())
    }

    /// The changes are saved.
    pub fn saved(&mut self) {
        self.changed.clear();
        self.forgotten.clear();
    }

    fn check(&self, source: &[u8; 32], seq: u64) -> Result<(), Rejection> {
        let Some((seqs, _)) = self.seen.get(source) else {
            return Ok(());
        };
        let last = seqs.last().copied().unwrap_or(0);
        let older_than_window =
            seqs.len() >= REPLAY_WINDOW && seqs.first().is_some_and(|first| seq < *first);
        if seqs.contains(&seq) || older_than_window {
            return Err(Rejection::Replayed { seq, last });
        }
        Ok(())
    }

    fn record(&mut self, source: [u8; 32], seq: u64) {
        self.clock += 1;
        let entry = self.seen.entry(source).or_default();
        entry.0.insert(seq);
        while entry.0.len() > REPLAY_WINDOW {
            entry.0.pop_first();
        }
        entry.1 = self.clock;
        self.changed.insert(source);
        self.forgotten.remove(&source);
        if self.seen.len() > self.capacity {
            if let Some(oldest) = self
                .seen
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
            {
                self.seen.remove(&oldest);
                self.changed.remove(&oldest);
                self.forgotten.insert(oldest);
            }
        }
    }
}

/// A packet that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedPacket {
    packet: OutcomePacket,
}

impl VerifiedPacket {
    /// The packet.
    pub fn packet(&self) -> &OutcomePacket {
        &self.packet
    }
    /// The signed content.
    pub fn body(&self) -> &PacketBody {
        &self.packet.body
    }
    /// The packet, by value.
    pub fn into_inner(self) -> OutcomePacket {
        self.packet
    }
}

/// Decodes and checks a packet received at Unix time `now` (seconds).
pub fn verify(
    bytes: &[u8],
    now: u64,
    replay: &mut ReplayGuard,
    policy: &TrustPolicy,
) -> Result<VerifiedPacket, Rejection> {
    let result = check(bytes, now, replay, policy);
    match &result {
        Ok(v) => {
            replay.record(v.packet.body.source, v.packet.body.seq);
            replay.counts.accepted += 1;
        }
        Err(r) => replay.counts.add(r.kind()),
    }
    result
}

/// Decodes a packet without checking signature, time or replay (for `packet inspect` of a
/// rejected packet). Size, version and encoding are still checked.
pub fn decode(bytes: &[u8]) -> Result<OutcomePacket, Rejection> {
    if bytes.len() > MAX_PACKET_LEN {
        return Err(Rejection::Oversize { len: bytes.len() });
    }
    let Some(&version) = bytes.first() else {
        return Err(Rejection::Truncated { len: 0 });
    };
    if !(VERSION_1..=VERSION).contains(&version) {
        return Err(Rejection::UnknownVersion { version });
    }
    let (body_bytes, signature) = match bytes.len().checked_sub(SIGNATURE_LEN) {
        Some(split) => bytes.split_at(split),
        None => return Err(Rejection::Truncated { len: bytes.len() }),
    };
    // An older body is a v3 body without its last fields: read it with their `None` variants
    // (one zero byte each) appended.
    let missing = usize::from(VERSION - version);
    let mut padded = [0u8; MAX_PACKET_LEN + 2];
    let readable = if missing > 0 {
        padded[..body_bytes.len()].copy_from_slice(body_bytes);
        &padded[..body_bytes.len() + missing]
    } else {
        body_bytes
    };
    let body: PacketBody = match postcard::from_bytes(readable) {
        Ok(b) => b,
        // The body ran out: the packet was cut short (its last 64 bytes were taken as the
        // signature), or the signature is missing altogether.
        Err(postcard::Error::DeserializeUnexpectedEnd) => {
            return Err(Rejection::Truncated { len: bytes.len() })
        }
        Err(e) => {
            return Err(Rejection::Malformed {
                reason: e.to_string(),
            })
        }
    };
    // postcard::from_bytes ignores trailing bytes; a body is exactly its encoding.
    let reencoded = body.encode().map_err(|e| Rejection::Malformed {
        reason: e.to_string(),
    })?;
    if reencoded.len() != body_bytes.len() {
        return Err(Rejection::Malformed {
            reason: format!(
                "{} bytes after the body",
                bytes.len() - reencoded.len() - SIGNATURE_LEN
            ),
        });
    }
    let mut sig = [0u8; SIGNATURE_LEN];
    sig.copy_from_slice(signature);
    Ok(OutcomePacket {
        body,
        signature: sig,
    })
}

fn check(
    bytes: &[u8],
    now: u64,
    replay: &ReplayGuard,
    policy: &TrustPolicy,
) -> Result<VerifiedPacket, Rejection> {
    let packet = decode(bytes)?;
    let body = &packet.body;
    if policy.strict && !policy.allowlist.contains(&body.source) {
        return Err(Rejection::UnknownSource);
    }
    check_bounds(body)?;
    let key = VerifyingKey::from_bytes(&body.source).map_err(|_| Rejection::BadSignature)?;
    let message = PacketBody::signing_message(&bytes[..bytes.len() - SIGNATURE_LEN]);
    key.verify_strict(&message, &Signature::from_bytes(&packet.signature))
        .map_err(|_| Rejection::BadSignature)?;
    let expires = body.expires_at();
    if now > expires.saturating_add(policy.clock_skew_s) {
        return Err(Rejection::Expired {
            ago_s: now - expires,
        });
    }
    if body.issued_at > now.saturating_add(policy.clock_skew_s) {
        return Err(Rejection::FromTheFuture {
            ahead_s: body.issued_at - now,
        });
    }
    replay.check(&body.source, body.seq)?;
    Ok(VerifiedPacket { packet })
}

fn check_bounds(body: &PacketBody) -> Result<(), Rejection> {
    let out = |field| Err(Rejection::OutOfRange { field });
    if !(body.confidence.is_finite() && (0.0..=1.0).contains(&body.confidence)) {
        return out("confidence");
    }
    if !body.pattern.threshold.is_finite() {
        return out("pattern.threshold");
    }
    if !body.pattern.frequency.in_bounds() {
        return out("pattern.frequency");
    }
    if !body.relative.in_bounds() {
        return out("relative");
    }
    match body.pattern.feature {
        Feature::Harmonic { order } if !(1..=MAX_HARMONIC_ORDER).contains(&order) => {
            return out("pattern.feature.order")
        }
        Feature::SpcRule {
            rules: SpcRuleSet::WesternElectric,
            rule,
            ..
        } if !(1..=4).contains(&rule) => return out("pattern.feature.rule"),
        Feature::SpcRule {
            rules: SpcRuleSet::Nelson,
            rule,
            ..
        } if !(1..=8).contains(&rule) => return out("pattern.feature.rule"),
        _ => {}
    }
    if body.ttl_s == 0 || body.ttl_s > MAX_TTL_S {
        return out("ttl_s");
    }
    if body.lead_time_s > MAX_LEAD_TIME_S {
        return out("lead_time_s");
    }
    if body.validations == 0 && body.refutations == 0 {
        return out("validations");
    }
    match body.outcome.kind {
        OutcomeKind::FalseAlarm if body.refutations == 0 => return out("refutations"),
        OutcomeKind::FailureConfirmed | OutcomeKind::DefectConfirmed if body.validations == 0 => {
            return out("validations")
        }
        _ => {}
    }
    let printable = |s: &str| !s.chars().any(char::is_control);
    if !printable(&body.equipment_label) {
        return out("equipment_label");
    }
    if !printable(&body.outcome.label) {
        return out("outcome.label");
    }
    if !printable(&body.pattern.unit) {
        return out("pattern.unit");
    }
    Ok(())
}
