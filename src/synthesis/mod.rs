//! Synthesis: peers' verified outcome packets become proposals for this gateway's alarm
//! thresholds, weighted by how far each source has earned trust here.
//!
//! - A packet proposes its pattern's threshold for every local rule with the same context,
//!   feature, direction and unit ([`Target`]) whose configuration lets peers adapt it
//!   (`[devices.points.alarms.adapt]`, with a floor and a ceiling). The context matches at
//!   the most specific level both share ([`MatchLevel`]), if the rule accepts that level
//!   (`adapt.match`); v1 and v2 packets carry the full fingerprint only, so match in full. A band feature matches
//!   only a rule on the same band (edges equal as sent, in f32 Hz).
//! - Each source has at most one live proposal per target: its latest packet. A false-alarm
//!   packet withdraws that source's proposal. A proposal lives until the packet expires.
//! - Weight = trust(source) × confidence × v / (v + 1) × the match level's factor
//!   (`[synthesis.match_weights]`), v the source's validation count.
//!   Proposals lighter than `min_weight` are ignored.
//! - Effective threshold = (baseline_weight × baseline + Σ weight × proposal) /
//!   (baseline_weight + Σ weight), each proposal first clamped to the rails, the result kept
//!   inside [floor, ceiling]; while tightening only (the default), proposals that would warn
//!   later than the baseline are ignored.
//! - Trust starts at `neutral_trust`; a local confirmation of an alarm raised while a source's
//!   proposal moved the level raises it by `trust_gain`, a refutation lowers it by
//!   `trust_loss`, clamped to [0, 1].
//!
//! Pure and synchronous: the caller passes the time in and persists [`SynthesisState`]
//! in the state database (`crate::intake::state`), with the replay memory.

pub mod adapt;
mod effective;

pub use crate::config::SynthesisConfig;
use crate::packet::{
    Direction, Feature, Fingerprint, Frequency, MatchLevel, OutcomeKind, PacketBody,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Live proposals kept per target; beyond this the one closest to expiry is dropped.
pub const MAX_PROPOSALS_PER_TARGET: usize = 1024;

/// What a proposal must match on a local rule: the same equipment context and signal
/// pattern, in the same unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Context fingerprint.
    pub fingerprint: Fingerprint,
    /// The feature the rule watches.
    pub feature: Feature,
    /// Where in the spectrum: part of the match for band features only (a defect's or a
    /// harmonic's frequency depends on each plant's shaft speed, so those match by kind).
    pub frequency: Frequency,
    /// The rule's direction.
    pub direction: Direction,
    /// Engineering unit of the threshold.
    pub unit: String,
}

impl Target {
    /// The target a packet's pattern names.
    pub fn of_packet(body: &PacketBody) -> Self {
        Self {
            fingerprint: body.fingerprint,
            feature: body.pattern.feature,
            frequency: body.pattern.frequency,
            direction: body.pattern.direction,
            unit: body.pattern.unit.to_string(),
        }
    }

    /// The same target in a context with fingerprint `fingerprint` (another level's).
    pub fn at(&self, fingerprint: Fingerprint) -> Self {
        Self {
            fingerprint,
            ..self.clone()
        }
    }

    /// Its key: proposals and rules with equal keys meet.
    pub fn key(&self) -> TargetKey {
        let mut feature = serde_json::to_string(&self.feature)
            .unwrap_or_default()
            .trim_matches('"')
            .to_string();
        if let (Feature::BandAmplitude, Frequency::Band { lo, hi }) = (self.feature, self.frequency)
        {
            feature = format!("{feature}@{lo}-{hi}Hz");
        }
        let direction = match self.direction {
            Direction::High => "high",
            Direction::Low => "low",
        };
        TargetKey(format!(
            "{}/{}/{direction}/{}",
            self.fingerprint, feature, self.unit
        ))
    }
}

/// A [`Target`]'s stable text key, `<fingerprint>/<feature>/<direction>/<unit>`, as saved in
/// the state database's `proposals` table; a band feature reads `band_amplitude@<lo>-<hi>Hz`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TargetKey(String);

impl std::fmt::Display for TargetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A rule's configured level and the rails peers may move it within.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rails {
    /// The configured level.
    pub baseline: f64,
    /// Lowest effective level.
    pub floor: f64,
    /// Highest effective level.
    pub ceiling: f64,
    /// The rule's direction: for `High`, a lower level warns earlier.
    pub direction: Direction,
    /// Only move toward earlier warning (default).
    pub tighten_only: bool,
    /// The point's healthy level (`adapt.healthy`), when configured.
    pub healthy: Option<f64>,
    /// Proposals are ratios over `healthy` (`adapt.relative`), not absolute levels.
    pub relative: bool,
    /// The most general context level whose packets count (`adapt.match`).
    pub accepts: MatchLevel,
}

impl Rails {
    /// The level a proposal asks for here: its ratio times the healthy level for a relative
    /// rule (none without a ratio), else its threshold as sent.
    fn proposed(&self, p: &Proposal) -> Option<f64> {
        match (self.relative, self.healthy, p.ratio) {
            (false, _, _) => Some(p.threshold),
            (true, Some(healthy), Some(ratio)) => Some(ratio * healthy),
            (true, _, _) => None,
        }
    }

    fn clamp(&self, v: f64) -> f64 {
        v.max(self.floor).min(self.ceiling)
    }

    /// Whether `v` would warn later than the baseline.
    fn loosens(&self, v: f64) -> bool {
        match self.direction {
            Direction::High => v > self.baseline,
            Direction::Low => v < self.baseline,
        }
    }
}

/// A source's latest word on a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The packet's sequence number.
    pub seq: u64,
    /// The threshold it proposes, as sent.
    pub threshold: f64,
    /// The threshold over the source point's healthy level, when the packet carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// The source's confidence.
    pub confidence: f64,
    /// The source's validation count.
    pub validations: u32,
    /// The source's refutation count.
    pub refutations: u32,
    /// The source's lead time, seconds.
    pub lead_time_s: u32,
    /// A false-alarm packet: the source withdrew its advice.
    pub false_alarm: bool,
    /// Unix seconds the packet was issued.
    pub issued_at: u64,
    /// Unix seconds the packet expires.
    pub expires_at: u64,
    /// The most specific context level at which the packet matched the rule's target.
    #[serde(default, rename = "match", skip_serializing_if = "is_full")]
    pub level: MatchLevel,
}

fn is_full(level: &MatchLevel) -> bool {
    *level == MatchLevel::Full
}

/// Why a live proposal does or does not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It moves the level.
    Applied,
    /// Its weight is below `min_weight`.
    BelowMinWeight,
    /// It would warn later than the baseline, and the rule only tightens.
    WouldLoosen,
    /// The source's latest packet for this pattern was a false alarm.
    FalseAlarm,
    /// The rule takes relative proposals and the packet carries an absolute level only.
    NoRatio,
}

/// One line of an effective threshold's provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    /// The source's public key, hex.
    pub source: String,
    /// The packet's sequence number.
    pub seq: u64,
    /// The threshold the packet proposed, in this point's unit (for a relative rule: its
    /// ratio times the healthy level; for a packet without a ratio there, as sent).
    pub proposed: f64,
    /// The packet's ratio over its source's healthy level, when it carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// The proposal inside the rails.
    pub applied: f64,
    /// The source's trust here.
    pub trust: f64,
    /// The packet's confidence.
    pub confidence: f64,
    /// The packet's validation count.
    pub validations: u32,
    /// The context level it matched at.
    #[serde(rename = "match")]
    pub level: MatchLevel,
    /// trust × confidence × v / (v + 1) × the level's factor.
    pub weight: f64,
    /// Unix seconds the packet expires.
    pub expires_at: u64,
    /// Whether it counts.
    pub status: Status,
}

/// A rule's effective level and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Effective {
    /// The level the rule uses.
    pub value: f64,
    /// The configured level.
    pub baseline: f64,
    /// Rails.
    pub floor: f64,
    /// Rails.
    pub ceiling: f64,
    /// Only tightening allowed.
    pub tighten_only: bool,
    /// Every live proposal for the rule, with its weight and whether it counts.
    pub provenance: Vec<Contribution>,
}

impl Effective {
    /// The configured level, moved by nothing.
    pub fn at_baseline(rails: &Rails) -> Self {
        Self {
            value: rails.baseline,
            baseline: rails.baseline,
            floor: rails.floor,
            ceiling: rails.ceiling,
            tighten_only: rails.tighten_only,
            provenance: Vec::new(),
        }
    }

    /// Sources whose proposals moved the level.
    pub fn applied_sources(&self) -> Vec<String> {
        self.provenance
            .iter()
            .filter(|c| c.status == Status::Applied)
            .map(|c| c.source.clone())
            .collect()
    }
}

/// What [`SynthesisState::offer`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// It is the source's live proposal for the target now.
    Proposed,
    /// It withdrew the source's proposal (a false alarm).
    Withdrawn,
    /// The source's live proposal is newer (the packet arrived out of order): it is
    /// superseded, nothing changed.
    Superseded,
    /// The source's live proposal is this very packet: nothing changed, nothing counted.
    Duplicate,
}

/// Trust and live proposals, persisted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SynthesisState {
    /// Trust of sources answered here (hex public key → trust); others are neutral.
    #[serde(default)]
    pub trust: BTreeMap<String, f64>,
    /// Live proposals by [`Target::key`], then by source (hex public key).
    #[serde(default)]
    pub proposals: BTreeMap<TargetKey, BTreeMap<String, Proposal>>,
    /// Peer packets that set or withdrew a proposal, ever: saved with the proposals, so it
    /// counts each packet once however often it is delivered.
    #[serde(default)]
    pub applied: u64,
}

impl SynthesisState {
    /// The trust of a source.
    pub fn trust(&self, settings: &SynthesisConfig, source: &str) -> f64 {
        self.trust
            .get(source)
            .copied()
            .filter(|t| t.is_finite())
            .unwrap_or(settings.neutral_trust)
            .clamp(0.0, 1.0)
    }

    /// Records a verified packet for `target_key`, matched in full, and counts it unless it
    /// is a duplicate. The caller offers only packets whose target some local adaptable rule
    /// has.
    pub fn offer(&mut self, target_key: &TargetKey, body: &PacketBody) -> Offered {
        let offered = self.propose(target_key, body, MatchLevel::Full);
        if offered != Offered::Duplicate {
            self.applied += 1;
        }
        offered
    }

    /// Records a verified packet for `target_key`, matched at `level`, without counting it
    /// (a packet may propose for several targets; the caller counts it once).
    pub fn propose(
        &mut self,
        target_key: &TargetKey,
        body: &PacketBody,
        level: MatchLevel,
    ) -> Offered {
        let source = hex::encode(body.source);
        let proposals = self.proposals.entry(target_key.clone()).or_default();
        match proposals.get(&source) {
            Some(p) if p.seq == body.seq => return Offered::Duplicate,
            Some(p) if p.seq > body.seq => return Offered::Superseded,
            _ => {}
        }
        let false_alarm = body.outcome.kind == OutcomeKind::FalseAlarm;
        proposals.insert(
            source,
            Proposal {
                seq: body.seq,
                threshold: f64::from(body.pattern.threshold),
                ratio: body.relative.ratio().map(f64::from),
                confidence: f64::from(body.confidence),
                validations: body.validations,
                refutations: body.refutations,
                lead_time_s: body.lead_time_s,
                false_alarm,
                issued_at: body.issued_at,
                expires_at: body.expires_at(),
                level,
            },
        );
        while proposals.len() > MAX_PROPOSALS_PER_TARGET {
            let Some(oldest) = proposals
                .iter()
                .min_by_key(|(_, p)| p.expires_at)
                .map(|(s, _)| s.clone())
            else {
                break;
            };
            proposals.remove(&oldest);
        }
        if false_alarm {
            Offered::Withdrawn
        } else {
            Offered::Proposed
        }
    }

    /// Forgets proposals expired at `now` (Unix seconds). Returns the targets that lost one.
    pub fn expire(&mut self, now: u64) -> Vec<TargetKey> {
        let mut changed = Vec::new();
        for (key, proposals) in &mut self.proposals {
            let before = proposals.len();
            proposals.retain(|_, p| p.expires_at > now);
            if proposals.len() != before {
                changed.push(key.clone());
            }
        }
        self.proposals.retain(|_, p| !p.is_empty());
        changed
    }

    /// The earliest expiry of any live proposal.
    pub fn next_expiry(&self) -> Option<u64> {
        self.proposals
            .values()
            .flat_map(|p| p.values())
            .map(|p| p.expires_at)
            .min()
    }

    /// Adjusts the trust of the sources whose proposals moved an alarm that was answered
    /// here. Returns each source's trust before and after.
    pub fn answered(
        &mut self,
        settings: &SynthesisConfig,
        sources: &[String],
        confirmed: bool,
    ) -> Vec<(String, f64, f64)> {
        let mut changes = Vec::new();
        for source in sources {
            let before = self.trust(settings, source);
            let after = if confirmed {
                before + settings.trust_gain
            } else {
                before - settings.trust_loss
            }
            .clamp(0.0, 1.0);
            self.trust.insert(source.clone(), after);
            changes.push((source.clone(), before, after));
        }
        changes
    }
}

#[cfg(test)]
mod tests;
