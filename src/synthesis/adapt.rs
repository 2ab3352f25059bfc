//! Adaptation: binds peers' proposals to this gateway's adaptable rules. A verified packet is
//! offered to the rules of its target; what changed comes back as level changes for the caller
//! to apply to its rules and publish. Pure: time is passed in, nothing is sent or saved here.

use super::{Effective, Offered, Rails, SynthesisConfig, SynthesisState, Target, TargetKey};
use crate::alarms::{RuleId, Severity};
use crate::packet::{Address, MatchLevel, PacketBody};
use std::collections::HashMap;
use tracing::info;

/// A rule whose first level peers' packets may move inside rails.
#[derive(Debug, Clone)]
pub struct Adaptive {
    /// The rule.
    pub rule: RuleId,
    /// `<device>/<point>/<rule>`, for log lines and events.
    pub name: String,
    /// The level that adapts.
    pub severity: Severity,
    /// Packets with this key propose for it.
    pub target: TargetKey,
    /// Its target's key at each context level it accepts, from `rails.accepts` to full.
    pub keys: Vec<(MatchLevel, TargetKey)>,
    /// Its baseline and guard rails.
    pub rails: Rails,
    /// The level in use and its provenance.
    pub effective: Effective,
}

impl Adaptive {
    /// An adaptive rule at its baseline.
    pub fn new(
        rule: RuleId,
        name: String,
        severity: Severity,
        target: &Target,
        address: &Address,
        rails: Rails,
    ) -> Self {
        let keys = MatchLevel::ALL
            .into_iter()
            .filter(|&l| l >= rails.accepts)
            .map(|l| (l, target.at(address.at(l)).key()))
            .collect();
        Self {
            rule,
            name,
            severity,
            target: target.key(),
            keys,
            effective: Effective::at_baseline(&rails),
            rails,
        }
    }
}

/// Index of an adaptive rule in [`Adaptation::rules`].
pub type AdaptiveIndex = usize;

/// What offering a peer's packet did.
#[derive(Debug, PartialEq)]
pub enum Offer {
    /// Applying peers' packets is switched off (`[synthesis] apply = false`).
    Off,
    /// No adaptable rule here watches its target.
    Unmatched,
    /// Seen before, or older than the source's live proposal: no level moved.
    Unchanged,
    /// It set or withdrew a proposal: these rules were recomputed.
    Changed(Vec<AdaptiveIndex>),
}

/// Every adaptive rule, peers' live proposals and trust.
#[derive(Debug)]
pub struct Adaptation {
    settings: SynthesisConfig,
    state: SynthesisState,
    rules: Vec<Adaptive>,
    /// Rules by their own target's key.
    by_target: HashMap<TargetKey, Vec<AdaptiveIndex>>,
    /// Rules by a context level they accept and their target's key at that level.
    by_level: HashMap<(MatchLevel, TargetKey), Vec<AdaptiveIndex>>,
    /// Proposals or trust changed since [`Adaptation::saved`].
    dirty: bool,
}

impl Adaptation {
    /// Adaptation of `rules`, with no proposals yet.
    pub fn new(settings: SynthesisConfig, rules: Vec<Adaptive>) -> Self {
        let mut by_target: HashMap<TargetKey, Vec<AdaptiveIndex>> = HashMap::new();
        let mut by_level: HashMap<(MatchLevel, TargetKey), Vec<AdaptiveIndex>> = HashMap::new();
        for (i, a) in rules.iter().enumerate() {
            info!(rule = %a.name, target = %a.target, accepts = a.rails.accepts.as_str(), "Peers' packets may adapt this rule.");
            by_target.entry(a.target.clone()).or_default().push(i);
            for key in &a.keys {
                by_level.entry(key.clone()).or_default().push(i);
            }
        }
        Self {
            settings,
            state: SynthesisState::default(),
            rules,
            by_target,
            by_level,
            dirty: false,
        }
    }

    /// The adaptive rules.
    pub fn rules(&self) -> &[Adaptive] {
        &self.rules
    }

    /// Proposals and trust, as saved.
    pub fn state(&self) -> &SynthesisState {
        &self.state
    }

    /// Whether proposals or trust changed since they were last saved.
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// Proposals and trust are saved.
    pub fn saved(&mut self) {
        self.dirty = false;
    }

    /// Restores saved proposals and trust, forgets those expired at `now_s` (Unix seconds) and
    /// recomputes every rule.
    pub fn restore(&mut self, state: SynthesisState, now_s: u64) -> Vec<AdaptiveIndex> {
        self.state = state;
        self.state.expire(now_s);
        if !self.state.proposals.is_empty() || !self.state.trust.is_empty() {
            info!(
                targets = self.state.proposals.len(),
                sources = self.state.trust.len(),
                "Peers' proposals and trust loaded."
            );
        }
        self.recompute_all()
    }

    /// The rules a packet proposes for, each with its own target's key and the most specific
    /// context level at which the packet matched it.
    fn matches(&self, body: &PacketBody) -> Vec<(TargetKey, MatchLevel)> {
        let target = Target::of_packet(body);
        let address = body.address();
        let mut found: Vec<(TargetKey, MatchLevel)> = Vec::new();
        for level in MatchLevel::ALL.into_iter().rev() {
            let fingerprint = match (level, address) {
                (MatchLevel::Full, _) => body.fingerprint,
                (_, Some(a)) => a.at(level),
                (_, None) => break,
            };
            let key = (level, target.at(fingerprint).key());
            for &i in self.by_level.get(&key).into_iter().flatten() {
                let own = &self.rules[i].target;
                if !found.iter().any(|(k, _)| k == own) {
                    found.push((own.clone(), level));
                }
            }
        }
        found
    }

    /// Offers a verified peer packet to the rules it matches.
    pub fn offer(&mut self, body: &PacketBody) -> Offer {
        if !self.settings.apply {
            return Offer::Off;
        }
        let matches = self.matches(body);
        if matches.is_empty() {
            return Offer::Unmatched;
        }
        let (mut counted, mut changed) = (false, Vec::new());
        for (key, level) in matches {
            match self.state.propose(&key, body, level) {
                Offered::Duplicate => {}
                Offered::Superseded => counted = true,
                Offered::Proposed | Offered::Withdrawn => {
                    counted = true;
                    changed.extend(self.update(&key, &hex::encode(body.source)));
                }
            }
        }
        if counted {
            self.state.applied += 1;
            self.dirty = true;
        }
        if changed.is_empty() {
            Offer::Unchanged
        } else {
            Offer::Changed(changed)
        }
    }

    /// Forgets proposals expired at `now_s`; returns the rules recomputed.
    pub fn expire(&mut self, now_s: u64) -> Vec<AdaptiveIndex> {
        if self.state.next_expiry().is_none_or(|t| t > now_s) {
            return Vec::new();
        }
        self.dirty = true;
        let mut changed = Vec::new();
        for key in self.state.expire(now_s) {
            info!(target = %key, "Peer proposals expired.");
            changed.extend(self.recompute(&key));
        }
        changed
    }

    /// An alarm that `sources`' proposals had moved was answered here: moves their trust.
    /// Returns each source's trust before and after; every rule is then recomputed (weights
    /// follow trust), see [`Adaptation::recompute_all`].
    pub fn answered(&mut self, sources: &[String], confirmed: bool) -> Vec<(String, f64, f64)> {
        self.dirty = true;
        self.state.answered(&self.settings, sources, confirmed)
    }

    /// The sources whose proposals move `rule`'s level now (empty at the baseline).
    pub fn moved_by(&self, rule: RuleId) -> Vec<String> {
        self.rules
            .iter()
            .find(|a| a.rule == rule && a.effective.value != a.effective.baseline)
            .map(|a| a.effective.applied_sources())
            .unwrap_or_default()
    }

    /// Peer packets that set or withdrew a proposal, ever (saved with the proposals).
    pub fn applied(&self) -> u64 {
        self.state.applied
    }

    /// Recomputes every rule.
    pub fn recompute_all(&mut self) -> Vec<AdaptiveIndex> {
        (0..self.rules.len())
            .map(|i| self.recompute_one(i))
            .collect()
    }

    fn recompute(&mut self, key: &TargetKey) -> Vec<AdaptiveIndex> {
        let indices = self.by_target.get(key).cloned().unwrap_or_default();
        indices.into_iter().map(|i| self.recompute_one(i)).collect()
    }

    fn recompute_one(&mut self, i: AdaptiveIndex) -> AdaptiveIndex {
        let a = &self.rules[i];
        let effective = self.state.effective(&self.settings, &a.target, &a.rails);
        let from = a.effective.value;
        self.rules[i].effective = effective;
        self.log_change(i, from);
        i
    }

    /// The rules of `key` after only `source`'s proposal changed: one contribution each.
    fn update(&mut self, key: &TargetKey, source: &str) -> Vec<AdaptiveIndex> {
        let indices = self.by_target.get(key).cloned().unwrap_or_default();
        for &i in &indices {
            let a = &mut self.rules[i];
            let from = a.effective.value;
            self.state.update_effective(
                &self.settings,
                &a.target,
                &a.rails,
                &mut a.effective,
                source,
            );
            self.log_change(i, from);
        }
        indices
    }

    fn log_change(&self, i: AdaptiveIndex, from: f64) {
        let a = &self.rules[i];
        if a.effective.value != from {
            info!(
                rule = %a.name,
                from,
                to = a.effective.value,
                baseline = a.effective.baseline,
                sources = a.effective.applied_count(),
                "Effective threshold changed."
            );
        }
    }
}
