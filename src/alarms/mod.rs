//! The alarm engine: per rule, normal → active (unacknowledged) → acknowledged → cleared.
//!
//! Synchronous and free of I/O: the caller passes the time in, so the on-delay and the
//! deadband are tested with exact instants. Semantics follow ISA-18.2 in spirit:
//!
//! - a level is *reached* at `value >= level` (high) or `value <= level` (low);
//! - once raised, it holds until the value is past the level by more than the deadband
//!   (`value < level − deadband` for high), so a value hovering at the level does not chatter;
//! - a rising condition must hold for `on_delay_ms` before it is raised; a falling one acts at
//!   once (the deadband is the hysteresis);
//! - escalation from warning to alarm makes an acknowledged alarm unacknowledged again;
//! - an alarm that clears before it was acknowledged stays visible as `cleared` and
//!   unacknowledged until someone acknowledges it.

mod id;

pub use id::{AlarmId, BadAlarmId, PointId, RuleId};

use crate::config::{AlarmKind, AlarmRuleConfig};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant, SystemTime};

/// Where a rule is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    /// Never raised since start.
    Normal,
    /// Raised and not yet acknowledged.
    Active,
    /// Raised and acknowledged by an engineer.
    Acknowledged,
    /// The condition went away (past the deadband).
    Cleared,
}

/// How serious a raised rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The warning level was reached.
    Warning,
    /// The alarm level was reached.
    Alarm,
}

impl From<crate::config::Level> for Severity {
    fn from(level: crate::config::Level) -> Self {
        match level {
            crate::config::Level::Warning => Severity::Warning,
            crate::config::Level::Alarm => Severity::Alarm,
        }
    }
}

/// A change of a rule's state or severity, to be published as an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// State before.
    pub from: AlarmState,
    /// State after.
    pub to: AlarmState,
    /// Severity before (None when not raised).
    pub from_severity: Option<Severity>,
    /// Severity after.
    pub severity: Option<Severity>,
    /// The value that caused it (None for acknowledgements).
    pub value: Option<f64>,
    /// The level involved.
    pub threshold: Option<f64>,
    /// When the condition started to hold (for raises after an on-delay).
    pub condition_since: Option<SystemTime>,
    /// When the transition happened.
    pub at: SystemTime,
}

/// One alarm rule at run time.
#[derive(Debug, Clone)]
pub struct Rule {
    config: AlarmRuleConfig,
    state: AlarmState,
    severity: Option<Severity>,
    acknowledged: bool,
    /// A higher severity whose condition holds, and since when (monotonic and wall clock).
    pending: Option<(Severity, Instant, SystemTime)>,
    raised_at: Option<SystemTime>,
    changed_at: Option<SystemTime>,
    occurrence: u64,
    last_value: Option<f64>,
}

impl Rule {
    /// A rule in state normal.
    pub fn new(config: AlarmRuleConfig) -> Self {
        Self {
            config,
            state: AlarmState::Normal,
            severity: None,
            acknowledged: true,
            pending: None,
            raised_at: None,
            changed_at: None,
            occurrence: 0,
            last_value: None,
        }
    }

    /// The rule's configuration.
    pub fn config(&self) -> &AlarmRuleConfig {
        &self.config
    }
    /// Current state.
    pub fn state(&self) -> AlarmState {
        self.state
    }
    /// Current severity, when raised.
    pub fn severity(&self) -> Option<Severity> {
        self.severity
    }
    /// Whether the current or last raise has been acknowledged.
    pub fn acknowledged(&self) -> bool {
        self.acknowledged
    }
    /// When the current or last raise happened.
    pub fn raised_at(&self) -> Option<SystemTime> {
        self.raised_at
    }
    /// When the state last changed.
    pub fn changed_at(&self) -> Option<SystemTime> {
        self.changed_at
    }
    /// Number of raises; identifies an alarm together with the rule.
    pub fn occurrence(&self) -> u64 {
        self.occurrence
    }

    /// Continues counting raises from a persisted number, so alarm ids stay unique across
    /// restarts.
    pub fn resume_occurrence(&mut self, n: u64) {
        self.occurrence = self.occurrence.max(n);
    }
    /// The last value evaluated.
    pub fn last_value(&self) -> Option<f64> {
        self.last_value
    }

    /// The level of a severity.
    pub fn level(&self, severity: Severity) -> Option<f64> {
        match severity {
            Severity::Warning => self.config.warning,
            Severity::Alarm => self.config.alarm,
        }
    }

    /// Moves a level (peers' synthesis adapts the first level of a rule). The new level holds
    /// from the next value on; a raised alarm clears only once past the new level's deadband.
    pub fn set_level(&mut self, severity: Severity, level: f64) {
        if !level.is_finite() {
            return;
        }
        match severity {
            Severity::Warning => self.config.warning = Some(level),
            Severity::Alarm => self.config.alarm = Some(level),
        }
    }

    /// The level that the current severity refers to.
    pub fn threshold(&self) -> Option<f64> {
        self.severity.and_then(|s| self.level(s))
    }

    fn reached(&self, severity: Severity, value: f64) -> bool {
        let Some(level) = self.level(severity) else {
            return false;
        };
        let holding = self.severity.is_some_and(|s| s >= severity);
        let band = if holding { self.config.deadband } else { 0.0 };
        match self.config.kind {
            AlarmKind::High => value >= level - band,
            AlarmKind::Low => value <= level + band,
        }
    }

    fn target(&self, value: f64) -> Option<Severity> {
        if self.reached(Severity::Alarm, value) {
            Some(Severity::Alarm)
        } else if self.reached(Severity::Warning, value) {
            Some(Severity::Warning)
        } else {
            None
        }
    }

    /// Evaluates a new good value against the rule's levels. Returns the transition it causes,
    /// if any.
    pub fn evaluate(&mut self, value: f64, now: Instant, wall: SystemTime) -> Option<Transition> {
        if !value.is_finite() {
            return None;
        }
        self.last_value = Some(value);
        let target = self.target(value);
        self.apply(target, value, now, wall)
    }

    /// Feeds an externally judged condition (e.g. an SPC rule violation): `Some(severity)`
    /// while it holds, None when it does not. On-delay and acknowledgement work as for levels.
    pub fn signal(
        &mut self,
        condition: Option<Severity>,
        value: f64,
        now: Instant,
        wall: SystemTime,
    ) -> Option<Transition> {
        self.last_value = Some(value);
        self.apply(condition, value, now, wall)
    }

    fn apply(
        &mut self,
        target: Option<Severity>,
        value: f64,
        now: Instant,
        wall: SystemTime,
    ) -> Option<Transition> {
        if target > self.severity {
            let target = target?;
            let (since, since_wall) = match self.pending {
                Some((_, since, since_wall)) => (since, since_wall),
                None => (now, wall),
            };
            self.pending = Some((target, since, since_wall));
            let delay = Duration::from_millis(self.config.on_delay_ms);
            if now.saturating_duration_since(since) < delay {
                return None;
            }
            self.pending = None;
            return Some(self.raise(target, value, since_wall, wall));
        }
        self.pending = None;
        if target < self.severity {
            let from = self.state;
            let from_severity = self.severity;
            let threshold = self.threshold();
            self.severity = target;
            if target.is_none() {
                self.state = AlarmState::Cleared;
            }
            self.changed_at = Some(wall);
            return Some(Transition {
                from,
                to: self.state,
                from_severity,
                severity: self.severity,
                value: Some(value),
                threshold,
                condition_since: None,
                at: wall,
            });
        }
        None
    }

    fn raise(
        &mut self,
        severity: Severity,
        value: f64,
        since: SystemTime,
        wall: SystemTime,
    ) -> Transition {
        let from = self.state;
        let from_severity = self.severity;
        if from_severity.is_none() {
            self.occurrence += 1;
            self.raised_at = Some(wall);
        }
        self.severity = Some(severity);
        self.state = AlarmState::Active;
        self.acknowledged = false;
        self.changed_at = Some(wall);
        Transition {
            from,
            to: AlarmState::Active,
            from_severity,
            severity: Some(severity),
            value: Some(value),
            threshold: self.level(severity),
            condition_since: Some(since),
            at: wall,
        }
    }

    /// Acknowledges the rule. Returns the transition, or None when there is nothing to
    /// acknowledge (normal, already acknowledged, or cleared and acknowledged).
    pub fn acknowledge(&mut self, wall: SystemTime) -> Option<Transition> {
        if self.acknowledged {
            return None;
        }
        let from = self.state;
        self.acknowledged = true;
        self.state = match self.state {
            AlarmState::Active => AlarmState::Acknowledged,
            AlarmState::Cleared => AlarmState::Normal,
            other => other,
        };
        self.changed_at = Some(wall);
        Some(Transition {
            from,
            to: self.state,
            from_severity: self.severity,
            severity: self.severity,
            value: None,
            threshold: self.threshold(),
            condition_since: None,
            at: wall,
        })
    }

    /// How much attention the rule needs, for choosing a point's headline rule.
    pub fn urgency(&self) -> u8 {
        let sev = match self.severity {
            Some(Severity::Alarm) => 2,
            Some(Severity::Warning) => 1,
            None => 0,
        };
        let state = match (self.state, self.acknowledged) {
            (AlarmState::Active, _) => 3,
            (AlarmState::Acknowledged, _) => 2,
            (AlarmState::Cleared, false) => 1,
            _ => 0,
        };
        state * 3 + sev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        kind: AlarmKind,
        warning: Option<f64>,
        alarm: Option<f64>,
        deadband: f64,
        on_delay_ms: u64,
    ) -> Rule {
        Rule::new(AlarmRuleConfig {
            name: None,
            kind,
            warning,
            alarm,
            deadband,
            on_delay_ms,
            adapt: None,
            confirmed_by: None,
        })
    }

    struct Clock {
        start: Instant,
        wall: SystemTime,
    }
    impl Clock {
        fn new() -> Self {
            Self {
                start: Instant::now(),
                wall: SystemTime::UNIX_EPOCH,
            }
        }
        fn at(&self, ms: u64) -> (Instant, SystemTime) {
            (
                self.start + Duration::from_millis(ms),
                self.wall + Duration::from_millis(ms),
            )
        }
    }

    #[test]
    fn raises_only_after_the_on_delay() {
        let c = Clock::new();
        let mut r = rule(AlarmKind::High, None, Some(90.0), 2.0, 5_000);
        let (i, w) = c.at(0);
        assert_eq!(r.evaluate(95.0, i, w), None);
        let (i, w) = c.at(4_999);
        assert_eq!(r.evaluate(95.0, i, w), None);
        assert_eq!(r.state(), AlarmState::Normal);
        let (i, w) = c.at(5_000);
        let t = r.evaluate(95.0, i, w).expect("raised");
        assert_eq!(
            (t.from, t.to, t.severity),
            (
                AlarmState::Normal,
                AlarmState::Active,
                Some(Severity::Alarm)
            )
        );
        assert_eq!(t.condition_since, Some(c.at(0).1));
        assert_eq!(r.occurrence(), 1);
    }

    #[test]
    fn a_spike_shorter_than_the_on_delay_raises_nothing() {
        let c = Clock::new();
        let mut r = rule(AlarmKind::High, None, Some(90.0), 0.0, 1_000);
        let (i, w) = c.at(0);
        assert_eq!(r.evaluate(95.0, i, w), None);
        let (i, w) = c.at(500);
        assert_eq!(r.evaluate(80.0, i, w), None);
        let (i, w) = c.at(1_200);
        assert_eq!(
            r.evaluate(95.0, i, w),
            None,
            "the delay restarts after the spike"
        );
        let (i, w) = c.at(2_200);
        assert!(r.evaluate(95.0, i, w).is_some());
    }

    #[test]
    fn clears_only_past_the_deadband() {
        let c = Clock::new();
        let mut r = rule(AlarmKind::High, None, Some(90.0), 2.0, 0);
        let (i, w) = c.at(0);
        assert!(
            r.evaluate(90.0, i, w).is_some(),
            "reaching the level raises"
        );
        let (i, w) = c.at(1);
        assert_eq!(
            r.evaluate(88.0, i, w),
            None,
            "exactly level − deadband still holds"
        );
        assert_eq!(r.state(), AlarmState::Active);
        let (i, w) = c.at(2);
        let t = r.evaluate(87.9, i, w).expect("cleared");
        assert_eq!((t.from, t.to), (AlarmState::Active, AlarmState::Cleared));
        assert_eq!(t.threshold, Some(90.0));
    }

    #[test]
    fn low_rules_mirror_high_rules() {
        let c = Clock::new();
        let mut r = rule(AlarmKind::Low, Some(10.0), Some(5.0), 1.0, 0);
        let (i, w) = c.at(0);
        assert_eq!(
            r.evaluate(10.0, i, w).and_then(|t| t.severity),
            Some(Severity::Warning)
        );
        let (i, w) = c.at(1);
        assert_eq!(
            r.evaluate(4.0, i, w).and_then(|t| t.severity),
            Some(Severity::Alarm)
        );
        let (i, w) = c.at(2);
        assert_eq!(
            r.evaluate(6.0, i, w),
            None,
            "within the deadband of the alarm level"
        );
        let (i, w) = c.at(3);
        assert_eq!(
            r.evaluate(6.5, i, w).and_then(|t| t.severity),
            Some(Severity::Warning)
        );
        let (i, w) = c.at(4);
        assert_eq!(
            r.evaluate(11.5, i, w).map(|t| t.to),
            Some(AlarmState::Cleared)
        );
    }

    #[test]
    fn acknowledgement_and_escalation() {
        let c = Clock::new();
        let mut r = rule(AlarmKind::High, Some(80.0), Some(90.0), 0.0, 0);
        let (i, w) = c.at(0);
        r.evaluate(85.0, i, w).expect("warning");
        let t = r.acknowledge(c.at(1).1).expect("acked");
        assert_eq!(
            (t.from, t.to),
            (AlarmState::Active, AlarmState::Acknowledged)
        );
        assert_eq!(
            r.acknowledge(c.at(2).1),
            None,
            "nothing left to acknowledge"
        );
        let (i, w) = c.at(3);
        let t = r.evaluate(95.0, i, w).expect("escalated");
        assert_eq!(
            (t.from, t.to, t.severity),
            (
                AlarmState::Acknowledged,
                AlarmState::Active,
                Some(Severity::Alarm)
            )
        );
        assert!(!r.acknowledged());
        assert_eq!(r.occurrence(), 1, "an escalation is the same alarm");
    }

    #[test]
    fn an_unacknowledged_clear_stays_until_acknowledged() {
        let c = Clock::new();
        let mut r = rule(AlarmKind::High, None, Some(90.0), 0.0, 0);
        let (i, w) = c.at(0);
        r.evaluate(95.0, i, w);
        let (i, w) = c.at(1);
        r.evaluate(50.0, i, w);
        assert_eq!((r.state(), r.acknowledged()), (AlarmState::Cleared, false));
        let t = r.acknowledge(c.at(2).1).expect("acked");
        assert_eq!(t.to, AlarmState::Normal);
        let (i, w) = c.at(3);
        r.evaluate(95.0, i, w);
        assert_eq!(r.occurrence(), 2);
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let c = Clock::new();
        let mut r = rule(AlarmKind::High, None, Some(90.0), 0.0, 0);
        let (i, w) = c.at(0);
        assert_eq!(r.evaluate(f64::NAN, i, w), None);
        assert_eq!(r.evaluate(f64::INFINITY, i, w), None);
        assert_eq!(r.state(), AlarmState::Normal);
    }
}

#[cfg(test)]
mod signal_tests {
    use super::*;

    #[test]
    fn an_external_condition_raises_and_clears_like_a_level() {
        let mut r = Rule::new(AlarmRuleConfig {
            name: Some("spc".into()),
            kind: AlarmKind::High,
            warning: None,
            alarm: None,
            deadband: 0.0,
            on_delay_ms: 0,
            adapt: None,
            confirmed_by: None,
        });
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH;
        let raised = r
            .signal(Some(Severity::Alarm), 74.02, t0, w0)
            .expect("raised");
        assert_eq!(
            (raised.to, raised.severity),
            (AlarmState::Active, Some(Severity::Alarm))
        );
        assert_eq!(
            r.signal(Some(Severity::Alarm), 74.03, t0, w0),
            None,
            "still violated: no new transition"
        );
        let cleared = r.signal(None, 74.0, t0, w0).expect("cleared");
        assert_eq!(cleared.to, AlarmState::Cleared);
    }
}
