//! A rule's effective level from its target's live proposals: computed in full, or updated for
//! the one source whose proposal a packet changed, which is what intake does per packet, so
//! its cost does not grow with the number of sources proposing.

use super::TargetKey;
use super::{Contribution, Effective, Proposal, Rails, Status, SynthesisConfig, SynthesisState};
use std::cmp::Ordering;

impl SynthesisState {
    /// The effective level of a rule with these rails, from the live proposals for its target.
    pub fn effective(
        &self,
        settings: &SynthesisConfig,
        target_key: &TargetKey,
        rails: &Rails,
    ) -> Effective {
        let provenance: Vec<Contribution> = self
            .proposals
            .get(target_key)
            .into_iter()
            .flatten()
            .filter(|(_, p)| p.level >= rails.accepts)
            .map(|(source, p)| self.contribution(settings, source, p, rails))
            .collect();
        Effective {
            value: value_of(settings, rails, &provenance),
            provenance,
            ..Effective::at_baseline(rails)
        }
    }

    /// `effective` as [`SynthesisState::effective`] gives it after only `source`'s proposal
    /// for the target changed (set, replaced, withdrawn or gone): that one contribution is
    /// recomputed, the level summed again. When more than that changed (a proposal dropped to
    /// make room), it is computed in full.
    pub fn update_effective(
        &self,
        settings: &SynthesisConfig,
        target_key: &TargetKey,
        rails: &Rails,
        effective: &mut Effective,
        source: &str,
    ) {
        let proposals = self.proposals.get(target_key);
        let live = proposals
            .and_then(|m| m.get(source))
            .filter(|p| p.level >= rails.accepts);
        // The provenance is in source order, as the proposals are.
        let at = effective
            .provenance
            .binary_search_by(|c| c.source.as_str().cmp(source));
        match (live, at) {
            (Some(p), Ok(i)) => {
                effective.provenance[i] = self.contribution(settings, source, p, rails)
            }
            (Some(p), Err(i)) => effective
                .provenance
                .insert(i, self.contribution(settings, source, p, rails)),
            (None, Ok(i)) => {
                effective.provenance.remove(i);
            }
            (None, Err(_)) => {}
        }
        let expected = proposals.map_or(0, |m| {
            m.values().filter(|p| p.level >= rails.accepts).count()
        });
        if expected != effective.provenance.len() {
            *effective = self.effective(settings, target_key, rails);
            return;
        }
        effective.value = value_of(settings, rails, &effective.provenance);
    }

    fn contribution(
        &self,
        settings: &SynthesisConfig,
        source: &str,
        p: &Proposal,
        rails: &Rails,
    ) -> Contribution {
        let trust = self.trust(settings, source);
        let v = f64::from(p.validations);
        let confidence = if p.confidence.is_finite() {
            p.confidence.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let factor = settings.match_weights.at(p.level);
        let weight = trust * confidence * v / (v + 1.0) * factor;
        let proposed = rails.proposed(p);
        let level = proposed.unwrap_or(p.threshold);
        let applied = rails.clamp(level);
        let status = if p.false_alarm {
            Status::FalseAlarm
        } else if proposed.is_none() {
            Status::NoRatio
        } else if rails.tighten_only && rails.loosens(level) {
            Status::WouldLoosen
        } else if weight < settings.min_weight || weight <= 0.0 {
            Status::BelowMinWeight
        } else {
            Status::Applied
        };
        Contribution {
            source: source.to_string(),
            seq: p.seq,
            proposed: level,
            ratio: p.ratio,
            applied,
            trust,
            confidence,
            validations: p.validations,
            level: p.level,
            weight,
            expires_at: p.expires_at,
            status,
        }
    }
}

/// The weighted mean of the applied contributions and the baseline, inside the rails.
fn value_of(settings: &SynthesisConfig, rails: &Rails, provenance: &[Contribution]) -> f64 {
    let mut num = settings.baseline_weight.max(0.0) * rails.baseline;
    let mut den = settings.baseline_weight.max(0.0);
    for c in provenance.iter().filter(|c| c.status == Status::Applied) {
        num += c.weight * c.applied;
        den += c.weight;
    }
    let mut value = if den > 0.0 { num / den } else { rails.baseline };
    if rails.tighten_only && rails.loosens(value) {
        value = rails.baseline;
    }
    rails.clamp(value)
}

impl Effective {
    /// This level with its provenance cut to the `n` heaviest contributions (applied before
    /// others, then by weight; in source order among equals), and how many there are in all:
    /// what a message of bounded size carries, however many peers propose. One pass, copying
    /// only the `n` kept.
    pub fn summary(&self, n: usize) -> (Self, usize) {
        let order = |a: &Contribution, b: &Contribution| {
            (b.status == Status::Applied)
                .cmp(&(a.status == Status::Applied))
                .then(b.weight.total_cmp(&a.weight))
        };
        let mut top: Vec<&Contribution> = Vec::with_capacity(n + 1);
        for c in &self.provenance {
            if n == 0 || (top.len() == n && order(c, top[n - 1]) != Ordering::Less) {
                continue;
            }
            let at = top.partition_point(|t| order(t, c) != Ordering::Greater);
            top.insert(at, c);
            top.truncate(n);
        }
        let summary = Self {
            value: self.value,
            baseline: self.baseline,
            floor: self.floor,
            ceiling: self.ceiling,
            tighten_only: self.tighten_only,
            provenance: top.into_iter().cloned().collect(),
        };
        (summary, self.provenance.len())
    }

    /// How many sources' proposals move the level.
    pub fn applied_count(&self) -> usize {
        self.provenance
            .iter()
            .filter(|c| c.status == Status::Applied)
            .count()
    }
}
