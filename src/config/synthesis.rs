//! `[synthesis]`: how peers' proposals become effective levels, and how trust moves.

use serde::Deserialize;

/// Tuning of synthesis and trust (`[synthesis]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthesisConfig {
    /// Apply peers' packets to adaptable thresholds. Default true.
    #[serde(default = "default_true")]
    pub apply: bool,
    /// Trust of a source never answered here, 0–1. Default 0.5.
    #[serde(default = "default_neutral_trust")]
    pub neutral_trust: f64,
    /// Trust added when an alarm a source's proposal moved is confirmed. Default 0.05.
    #[serde(default = "default_trust_gain")]
    pub trust_gain: f64,
    /// Trust removed when such an alarm is refuted. Default 0.10.
    #[serde(default = "default_trust_loss")]
    pub trust_loss: f64,
    /// Proposals lighter than this are ignored. Default 0.05.
    #[serde(default = "default_min_weight")]
    pub min_weight: f64,
    /// Weight of the configured baseline against the proposals. Default 1.0: one fully
    /// trusted, fully confident, often validated source moves the level about halfway.
    #[serde(default = "default_baseline_weight")]
    pub baseline_weight: f64,
    /// `[synthesis.match_weights]`: what a proposal's weight is multiplied by, by the most
    /// specific context level at which its packet matched the rule.
    #[serde(default)]
    pub match_weights: MatchWeights,
}

/// Factors of a proposal's weight by how deep its context matched, each 0–1.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchWeights {
    /// The whole context. Default 1.0.
    pub full: f64,
    /// Class, process, sensor kind and mounting. Default 0.5.
    pub mounting: f64,
    /// Class and process. Default 0.25.
    pub process: f64,
    /// Class only. Default 0.1.
    pub class: f64,
}

impl Default for MatchWeights {
    fn default() -> Self {
        Self {
            full: 1.0,
            mounting: 0.5,
            process: 0.25,
            class: 0.1,
        }
    }
}

impl MatchWeights {
    /// The factor at `level`.
    pub fn at(&self, level: crate::packet::MatchLevel) -> f64 {
        use crate::packet::MatchLevel;
        match level {
            MatchLevel::Full => self.full,
            MatchLevel::Mounting => self.mounting,
            MatchLevel::Process => self.process,
            MatchLevel::Class => self.class,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_neutral_trust() -> f64 {
    0.5
}
fn default_trust_gain() -> f64 {
    0.05
}
fn default_trust_loss() -> f64 {
    0.10
}
fn default_min_weight() -> f64 {
    0.05
}
fn default_baseline_weight() -> f64 {
    1.0
}

impl Default for SynthesisConfig {
    fn default() -> Self {
        Self {
            apply: true,
            neutral_trust: default_neutral_trust(),
            trust_gain: default_trust_gain(),
            trust_loss: default_trust_loss(),
            min_weight: default_min_weight(),
            baseline_weight: default_baseline_weight(),
            match_weights: MatchWeights::default(),
        }
    }
}
