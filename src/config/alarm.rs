//! `[[devices.points.alarms]]`: alarm rules, their adaptation rails and PLC fault confirmation.

use super::*;

/// `[[devices.points.alarms]]`: one alarm rule with up to two levels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmRuleConfig {
    /// Rule name, unique within the point (default: the `kind`, so one `high` and one `low`
    /// rule per point need no name).
    pub name: Option<String>,
    /// `high`: raised when the value reaches a level or above; `low`: at a level or below.
    pub kind: AlarmKind,
    /// Warning level (severity `warning`). Optional; at least one of `warning`/`alarm`.
    pub warning: Option<f64>,
    /// Alarm level (severity `alarm`). For `high` it must lie above `warning`, for `low` below.
    pub alarm: Option<f64>,
    /// Hysteresis in engineering units: a raised level clears only once the value is this far
    /// back on the normal side of it (below `level − deadband` for `high`). Default 0.
    #[serde(default)]
    pub deadband: f64,
    /// The condition must hold for this many milliseconds before the alarm is raised, so a
    /// single spike does not page anyone. Default 0.
    #[serde(default)]
    pub on_delay_ms: u64,
    /// `[devices.points.alarms.adapt]`: lets peers' outcome packets move this rule's first
    /// level (`warning` when set, else `alarm`) inside rails. Absent: peers never move it.
    pub adapt: Option<AdaptConfig>,
    /// `[devices.points.alarms.confirmed_by]`: a PLC fault point that confirms this rule's
    /// alarms automatically.
    pub confirmed_by: Option<FaultConfirmConfig>,
}

/// `[devices.points.alarms.confirmed_by]`: when a point of the same device takes a fault
/// value, every unanswered alarm of the rule raised within `within_days` before is confirmed
/// with `failure_mode`, as if an engineer had confirmed it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfirmConfig {
    /// A point of the same device, e.g. the drive's fault code or a spindle-stopped bit.
    pub point: String,
    /// The value that means the predicted failure happened (e.g. fault code 17; 1 for a bit).
    pub equals: f64,
    /// How long before the fault an alarm counts as having predicted it, days. Default 14.
    #[serde(default = "default_within_days")]
    pub within_days: u32,
    /// What the fault means, e.g. `bearing_outer_race` (required).
    pub failure_mode: String,
}

pub(super) fn default_within_days() -> u32 {
    14
}

/// `[devices.points.alarms.adapt]`: the guard rails of an adaptable level.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptConfig {
    /// Lowest level peers may set.
    pub floor: f64,
    /// Highest level peers may set.
    pub ceiling: f64,
    /// Also let peers move the level toward later warning. Default false: only tightening.
    #[serde(default)]
    pub loosen: bool,
    /// The point's healthy level, in its unit (e.g. its mean over a healthy first hour). When
    /// set, this gateway's outcome packets for the rule carry the threshold relative to it,
    /// so peers whose points sit at other absolute levels can use them. Optional, > 0.
    pub healthy: Option<f64>,
    /// Take peers' proposals relative to the healthy level: a peer's "warn at 1.4 × healthy"
    /// proposes 1.4 × this point's `healthy` (still inside the rails); packets without a
    /// relative level are ignored for this rule. Default false: proposals are absolute, in
    /// the point's unit. Requires `healthy`.
    #[serde(default)]
    pub relative: bool,
    /// How similar a peer's equipment must be for its packets to adapt this rule: `full` (the
    /// whole context, the default), `mounting` (class, process, sensor kind and mounting),
    /// `process` (class and process) or `class`. A packet matching at a more general level
    /// weighs less (`[synthesis.match_weights]`).
    #[serde(default, rename = "match")]
    pub match_level: crate::packet::MatchLevel,
}

/// Which of a rule's two levels: `warning` or `alarm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The `warning` level.
    Warning,
    /// The `alarm` level.
    Alarm,
}

impl Level {
    /// `warning` or `alarm`, as in the file.
    pub fn name(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Alarm => "alarm",
        }
    }
}

impl AlarmRuleConfig {
    /// The level peers may adapt: the warning level when set, else the alarm level.
    pub fn adaptable_level(&self) -> Option<(Level, f64)> {
        self.warning
            .map(|w| (Level::Warning, w))
            .or(self.alarm.map(|a| (Level::Alarm, a)))
    }

    /// The rule's name: `name`, or the kind.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(match self.kind {
            AlarmKind::High => "high",
            AlarmKind::Low => "low",
        })
    }
}

/// Direction of an alarm rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// Alarm at or above the level.
    High,
    /// Alarm at or below the level.
    Low,
}
