//! Outcome packets: the wire format every gateway in every plant must agree on.
//!
//! A packet says "this signal pattern, at this threshold, preceded this confirmed outcome (or
//! was a false alarm), this often, with this lead time", for one equipment context, signed by
//! its source. It carries no raw data and no plant identity: the source is only its Ed25519
//! public key.
//!
//! Wire format v3 (see README, "Outcome packets"): `postcard(PacketBody) ‖ signature[64]`,
//! where the signature is Ed25519 over `b"qis/outcome/v3\0" ‖ postcard(PacketBody)`. The
//! first byte is the version. The size is bounded by the types (fixed arrays, heapless
//! strings, enums): the largest packet the types allow is [`MAX_ENCODED_LEN`] ≤ 512 bytes.
//!
//! Each version is the next without its last field, signed under its own domain: version 2
//! lacks [`PacketBody::levels`] (the context's general levels, v3), version 1 also
//! [`PacketBody::relative`]. Older packets are still read (the missing fields as `None`), and
//! a body encodes as its `version` says, so an old packet re-encodes to its own bytes.
//!
//! - [`context`]: canonical context and its fingerprint (the routing address).
//! - [`keys`]: the gateway's signing key on disk.
//! - [`guard`]: the intake guard, `verify()`, with its rejection reasons.

pub mod context;
pub mod guard;
pub mod keys;

pub use context::{Address, Context, Fingerprint, MatchLevel};
pub use guard::{verify, Rejection, ReplayGuard, TrustPolicy, VerifiedPacket};

use ed25519_dalek::{Signature, Signer, SigningKey};
use heapless::String as HString;
use serde::{Deserialize, Serialize};

/// The format version this build writes (it also reads [`VERSION_1`] and [`VERSION_2`]).
pub const VERSION: u8 = 3;
/// The first format version: no [`Relative`] level, no [`Levels`].
pub const VERSION_1: u8 = 1;
/// The second format version: no [`Levels`].
pub const VERSION_2: u8 = 2;
/// No packet is ever larger than this, whatever it carries.
pub const MAX_PACKET_LEN: usize = 512;
/// Ed25519 signature length.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes of a human-readable label (equipment class, failure mode).
pub const LABEL_LEN: usize = 48;
/// Bytes of an engineering unit.
pub const UNIT_LEN: usize = 12;
/// Size of the largest packet the types allow (asserted by a test that builds it).
pub const MAX_ENCODED_LEN: usize = 342;
/// Domain separation: a v3 packet signature can never be mistaken for another message's.
pub const SIGNING_DOMAIN: &[u8] = b"qis/outcome/v3\0";
/// The v2 signing domain.
pub const SIGNING_DOMAIN_V2: &[u8] = b"qis/outcome/v2\0";
/// The v1 signing domain.
pub const SIGNING_DOMAIN_V1: &[u8] = b"qis/outcome/v1\0";
/// Largest ratio of a [`Relative`] level the intake guard accepts.
pub const MAX_RATIO: f32 = 1.0e6;

/// A human-readable label, at most [`LABEL_LEN`] bytes of UTF-8.
pub type Label = HString<LABEL_LEN>;
/// An engineering unit, at most [`UNIT_LEN`] bytes of UTF-8.
pub type Unit = HString<UNIT_LEN>;

/// Everything in a packet except the signature; this is what is signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketBody {
    /// Format version, [`VERSION`].
    pub version: u8,
    /// Fingerprint of the equipment context the outcome belongs to.
    pub fingerprint: Fingerprint,
    /// What was observed.
    pub pattern: SignalPattern,
    /// What it turned out to be.
    pub outcome: Outcome,
    /// The source's confidence in this pattern → outcome relation, 0..=1.
    pub confidence: f32,
    /// Times the pattern was confirmed at the source (this one included, if a confirmation).
    pub validations: u32,
    /// Times the pattern was refuted (false alarms) at the source.
    pub refutations: u32,
    /// Seconds from the alarm to the confirmed outcome (0 for false alarms).
    pub lead_time_s: u32,
    /// Unix time (seconds, UTC) the packet was issued.
    pub issued_at: u64,
    /// Seconds after `issued_at` that receivers apply the packet.
    pub ttl_s: u32,
    /// Per-source sequence number, strictly increasing.
    pub seq: u64,
    /// The source's Ed25519 public key: its only identity.
    pub source: [u8; 32],
    /// Short label of the equipment class, for people reading the packet.
    pub equipment_label: Label,
    /// The threshold relative to the source point's healthy level, where the source knows it
    /// (v2; v1 is v2 without it).
    pub relative: Relative,
    /// The fingerprints of the context's general levels (v3, the last field; v2 is v3 without
    /// it): what routes the packet to plants with similar equipment.
    pub levels: Levels,
}

/// The fingerprints of a context's general levels, class, process and mounting
/// ([`Address::general`]); the full one is [`PacketBody::fingerprint`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Levels {
    /// A packet of version 1 or 2: it routes by its full fingerprint only.
    #[default]
    None,
    /// Class, process and mounting fingerprints.
    Known([Fingerprint; 3]),
}

impl PacketBody {
    /// The context's address, where the packet carries its levels.
    pub fn address(&self) -> Option<Address> {
        match self.levels {
            Levels::None => None,
            Levels::Known(general) => Some(Address {
                general,
                full: self.fingerprint,
            }),
        }
    }

    /// The topic the packet belongs on. A v3 packet: its address's topic, then its source
    /// (64 hex digits) and its [`PacketBody::pattern_id`], so each source's latest word on a
    /// pattern is one retained message; else `qis/v1/ctx/<fingerprint>`.
    pub fn topic(&self) -> String {
        match self.address() {
            Some(a) => format!(
                "{}/{}/{}",
                a.topic(),
                hex::encode(self.source),
                self.pattern_id()
            ),
            None => self.fingerprint.topic(),
        }
    }

    /// Unix seconds after which receivers no longer apply the packet: `issued_at + ttl_s`.
    pub fn expires_at(&self) -> u64 {
        self.issued_at.saturating_add(u64::from(self.ttl_s))
    }

    /// What the pattern is about, without its threshold: 16 hex digits, the first 8 bytes of
    /// SHA-256 over the encoded `pattern.feature`, `pattern.frequency`, `pattern.unit` and
    /// `pattern.direction` (wire fields 3, 4, 6 and 7, in that order).
    pub fn pattern_id(&self) -> String {
        use sha2::{Digest, Sha256};
        let p = &self.pattern;
        let mut buf = [0u8; MAX_PACKET_LEN];
        let encoded = postcard::to_slice(&(p.feature, p.frequency, &p.unit, p.direction), &mut buf)
            .map(|b| &b[..])
            .unwrap_or_default();
        hex::encode(&Sha256::digest(encoded)[..8])
    }
}

/// A threshold relative to the healthy level of the point that raised it: what makes a level
/// mean the same at plants whose absolute levels differ (other loads, other mountings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relative {
    /// The source has no healthy level for the point: the threshold is absolute only.
    #[default]
    None,
    /// `threshold / healthy`, the source point's configured healthy level in the same unit
    /// (e.g. 1.5: the alarm caught the failure at 1.5 times the healthy level; in decibels
    /// 20·log10(1.5) = 3.5 dB).
    Ratio(f32),
}

impl Relative {
    /// The ratio, when there is one.
    pub fn ratio(self) -> Option<f32> {
        match self {
            Relative::None => None,
            Relative::Ratio(r) => Some(r),
        }
    }

    /// Whether the intake guard accepts it: no ratio, or one finite, above 0 and at most
    /// [`MAX_RATIO`].
    pub fn in_bounds(self) -> bool {
        self.ratio()
            .is_none_or(|r| r.is_finite() && r > 0.0 && r <= MAX_RATIO)
    }
}

/// A signed packet.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomePacket {
    /// The signed content.
    pub body: PacketBody,
    /// Ed25519 signature over [`SIGNING_DOMAIN`] ‖ encoded body.
    pub signature: [u8; SIGNATURE_LEN],
}

/// The signal pattern that caught (or falsely predicted) the outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalPattern {
    /// The feature the alarm watched.
    pub feature: Feature,
    /// Its frequency or band, where it has one.
    pub frequency: Frequency,
    /// The alarm threshold that caught it, in `unit`.
    pub threshold: f32,
    /// Engineering unit of `threshold` (e.g. `g`, `mm/s`, `°C`).
    pub unit: Unit,
    /// Whether the alarm fires above (`High`) or below (`Low`) the threshold.
    pub direction: Direction,
}

/// Features an alarm can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Amplitude (or energy) in a frequency band.
    BandAmplitude,
    /// Amplitude at an order of shaft speed (1×, 2×, …).
    Harmonic {
        /// The order, 1..=64.
        order: u8,
    },
    /// Envelope amplitude at a bearing defect frequency.
    BearingDefect(BearingDefect),
    /// Overall velocity RMS (ISO 10816).
    VelocityRms,
    /// Overall acceleration RMS.
    AccelerationRms,
    /// Kurtosis of the waveform.
    Kurtosis,
    /// Crest factor (peak / RMS).
    CrestFactor,
    /// A statistical process control rule.
    SpcRule {
        /// Which chart.
        chart: SpcChart,
        /// Which rule set the number belongs to.
        rules: SpcRuleSet,
        /// Rule number: Western Electric 1–4, Nelson 1–8.
        rule: u8,
    },
    /// A plain process value polled from a PLC (temperature, pressure, current, …).
    ProcessValue,
}

/// Bearing defect frequencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BearingDefect {
    /// Ball pass frequency, outer race.
    Bpfo,
    /// Ball pass frequency, inner race.
    Bpfi,
    /// Ball spin frequency.
    Bsf,
    /// Fundamental train (cage) frequency.
    Ftf,
}

/// SPC charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpcChart {
    /// X̄ of an X̄-R chart.
    XbarR,
    /// X̄ of an X̄-S chart.
    XbarS,
    /// Individuals / moving range.
    Imr,
    /// Tabular CUSUM.
    Cusum,
    /// EWMA.
    Ewma,
}

/// SPC run-rule sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpcRuleSet {
    /// Western Electric rules 1–4.
    WesternElectric,
    /// Nelson rules 1–8.
    Nelson,
}

/// Where in the spectrum the feature lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    /// Not a spectral feature.
    #[default]
    None,
    /// A single frequency, Hz.
    At(f32),
    /// A band, Hz.
    Band {
        /// Lower edge, Hz.
        lo: f32,
        /// Upper edge, Hz.
        hi: f32,
    },
}

impl Frequency {
    /// Whether the intake guard accepts it: frequencies finite, 0 to
    /// [`guard::MAX_FREQUENCY_HZ`], a band's edges in order.
    pub fn in_bounds(&self) -> bool {
        let hz = |f: f32| f.is_finite() && (0.0..=guard::MAX_FREQUENCY_HZ).contains(&f);
        match *self {
            Frequency::None => true,
            Frequency::At(f) => hz(f),
            Frequency::Band { lo, hi } => hz(lo) && hz(hi) && lo < hi,
        }
    }
}

/// Alarm direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Alarm at or above the threshold.
    High,
    /// Alarm at or below the threshold.
    Low,
}

/// What the alarm turned out to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Confirmation or refutation.
    pub kind: OutcomeKind,
    /// The failure mode found (`None` for false alarms).
    pub failure_mode: FailureMode,
    /// Short human-readable label of the failure mode.
    pub label: Label,
}

/// Kinds of outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The equipment failed as predicted.
    FailureConfirmed,
    /// Inspection found the predicted defect before failure.
    DefectConfirmed,
    /// Nothing was wrong: the alarm was false.
    FalseAlarm,
}

/// Failure modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// No failure (false alarms).
    None,
    /// Rolling bearing, outer race.
    BearingOuterRace,
    /// Rolling bearing, inner race.
    BearingInnerRace,
    /// Rolling bearing, rolling element.
    BearingBall,
    /// Rolling bearing, cage.
    BearingCage,
    /// Rotor imbalance.
    Imbalance,
    /// Shaft misalignment.
    Misalignment,
    /// Mechanical looseness.
    Looseness,
    /// Lubrication failure.
    Lubrication,
    /// Pump cavitation.
    Cavitation,
    /// Electrical fault (motor windings, rotor bars, drive).
    Electrical,
    /// Cutting tool wear or breakage.
    ToolWear,
    /// A process shift or drift (quality).
    ProcessShift,
    /// Anything else; the label says what.
    Other,
}

/// Why a packet could not be built or encoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EncodeError {
    /// A label or unit is longer than its bound.
    #[error("{field} is longer than {max} bytes")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its bound.
        max: usize,
    },
    /// A v1 body cannot carry a relative level.
    #[error("a version 1 packet cannot carry a relative level")]
    RelativeInV1,
    /// A body before v3 cannot carry the context's levels.
    #[error("a version {0} packet cannot carry the context's levels")]
    LevelsBeforeV3(u8),
    /// postcard refused the body (cannot happen for bodies the types allow).
    #[error("cannot encode the packet: {0}")]
    Postcard(String),
}

/// `text` without control characters, cut at a character boundary to at most `n` bytes: how
/// labels and units fit their bounds in a packet.
pub fn fit(text: &str, n: usize) -> String {
    let mut out = String::new();
    for c in text.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > n {
            break;
        }
        out.push(c);
    }
    out
}

/// A bounded label from text, or an error naming the field.
pub fn label<const N: usize>(field: &'static str, text: &str) -> Result<HString<N>, EncodeError> {
    HString::try_from(text).map_err(|_| EncodeError::TooLong { field, max: N })
}

impl PacketBody {
    /// The body's postcard encoding, as its `version` says: a v2 body without `levels`, a v1
    /// body without `relative` either.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut buf = [0u8; MAX_PACKET_LEN];
        let mut used = postcard::to_slice(self, &mut buf)
            .map_err(|e| EncodeError::Postcard(e.to_string()))?
            .len();
        if self.version <= VERSION_2 {
            if self.levels != Levels::None {
                return Err(EncodeError::LevelsBeforeV3(self.version));
            }
            // `Levels::None` is the one byte of its variant index, last.
            used -= 1;
        }
        if self.version <= VERSION_1 {
            if self.relative != Relative::None {
                return Err(EncodeError::RelativeInV1);
            }
            // So is `Relative::None`, before it.
            used -= 1;
        }
        Ok(buf[..used].to_vec())
    }

    /// The exact bytes the signature covers: the domain of the body's version (its first
    /// byte), then the body.
    pub fn signing_message(encoded_body: &[u8]) -> Vec<u8> {
        let domain = match encoded_body.first() {
            Some(&VERSION_1) => SIGNING_DOMAIN_V1,
            Some(&VERSION_2) => SIGNING_DOMAIN_V2,
            _ => SIGNING_DOMAIN,
        };
        let mut m = Vec::with_capacity(domain.len() + encoded_body.len());
        m.extend_from_slice(domain);
        m.extend_from_slice(encoded_body);
        m
    }

    /// Signs the body, setting `source` to the key's public half.
    pub fn sign(mut self, key: &SigningKey) -> Result<OutcomePacket, EncodeError> {
        self.source = key.verifying_key().to_bytes();
        let encoded = self.encode()?;
        let signature: Signature = key.sign(&Self::signing_message(&encoded));
        Ok(OutcomePacket {
            body: self,
            signature: signature.to_bytes(),
        })
    }
}

impl OutcomePacket {
    /// The wire bytes: encoded body followed by the signature.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut bytes = self.body.encode()?;
        bytes.extend_from_slice(&self.signature);
        Ok(bytes)
    }

    /// The uplink topic of this packet's context ([`PacketBody::topic`]).
    pub fn topic(&self) -> String {
        self.body.topic()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The largest packet the types allow: every varint at its maximum, the largest enum
    /// variants, every string full of 4-byte characters' worth of bytes.
    pub(crate) fn largest_body() -> PacketBody {
        let full = |n: usize| "é".repeat(n / 2);
        PacketBody {
            version: u8::MAX,
            fingerprint: Fingerprint([0xff; 16]),
            pattern: SignalPattern {
                feature: Feature::SpcRule {
                    chart: SpcChart::Ewma,
                    rules: SpcRuleSet::Nelson,
                    rule: u8::MAX,
                },
                frequency: Frequency::Band {
                    lo: f32::MAX,
                    hi: f32::MAX,
                },
                threshold: f32::MAX,
                unit: label("unit", &full(UNIT_LEN)).unwrap(),
                direction: Direction::Low,
            },
            outcome: Outcome {
                kind: OutcomeKind::FalseAlarm,
                failure_mode: FailureMode::Other,
                label: label("label", &full(LABEL_LEN)).unwrap(),
            },
            confidence: 1.0,
            validations: u32::MAX,
            refutations: u32::MAX,
            lead_time_s: u32::MAX,
            issued_at: u64::MAX,
            ttl_s: u32::MAX,
            seq: u64::MAX,
            source: [0xff; 32],
            equipment_label: label("equipment_label", &full(LABEL_LEN)).unwrap(),
            relative: Relative::Ratio(f32::MAX),
            levels: Levels::Known([Fingerprint([0xff; 16]); 3]),
        }
    }

    #[test]
    fn the_largest_packet_the_types_allow_fits_in_512_bytes() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let packet = largest_body().sign(&key).unwrap();
        let bytes = packet.to_bytes().unwrap();
        assert_eq!(
            bytes.len(),
            MAX_ENCODED_LEN,
            "update MAX_ENCODED_LEN and the README table"
        );
        const _: () = assert!(MAX_ENCODED_LEN <= MAX_PACKET_LEN);
    }

    #[test]
    fn labels_longer_than_their_bound_are_refused() {
        assert_eq!(
            label::<4>("unit", "mm/s²").unwrap_err(),
            EncodeError::TooLong {
                field: "unit",
                max: 4
            }
        );
        assert!(label::<6>("unit", "mm/s²").is_ok());
    }
}
