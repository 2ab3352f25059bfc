//! SPC driving: a point's good values feed its control chart; every charted point is published
//! with the chart's limits, and its violations drive the point's `spc` alarm rule.

use super::out::Out;
use super::points::PointState;
use super::view::ChartPoint;
use crate::alarms::{Severity, Transition};
use crate::analysis::spc::{self, ChartKind, SpcEngine, SpcPoint};
use crate::config::{AlarmKind, AlarmRuleConfig, PointConfig, SpcPointConfig, SPC_RULE_NAME};
use crate::mqtt::payload::{timestamp, SpcDetail, SpcMetric};
use crate::mqtt::Qos;
use std::time::{Instant, SystemTime};
use tracing::{debug, warn};

/// A point's control chart and the alarm rule its violations drive.
pub struct SpcState {
    config: SpcPointConfig,
    engine: SpcEngine,
    /// The point whose value names the subgroup, and its value for the current subgroup.
    pub subgroup_by: Option<usize>,
    key: Option<f64>,
    /// Index of the `spc` rule in the point's rules.
    pub rule: usize,
    out: Vec<SpcPoint>,
    /// The latest finding that changed the rule.
    pub last: Option<SpcDetail>,
}

/// The hidden rule an SPC chart drives: raised (severity alarm) while the chart signals.
pub fn spc_rule() -> AlarmRuleConfig {
    AlarmRuleConfig {
        name: Some(SPC_RULE_NAME.to_string()),
        kind: AlarmKind::High,
        warning: None,
        alarm: None,
        deadband: 0.0,
        on_delay_ms: 0,
        adapt: None,
        confirmed_by: None,
    }
}

impl SpcState {
    /// Which chart it keeps.
    pub fn kind(&self) -> ChartKind {
        self.config.chart
    }

    /// The chart of a point configured with `config` on a device with `points`; `rule` is the
    /// index of its `spc` rule.
    pub fn new(config: &SpcPointConfig, points: &[PointConfig], rule: usize) -> Option<Self> {
        // The configuration was checked at load; an engine that cannot be built is skipped.
        let engine = SpcEngine::new(config.settings()).ok()?;
        Some(Self {
            subgroup_by: config
                .subgroup_by
                .as_deref()
                .and_then(|name| points.iter().position(|q| q.name == name)),
            key: None,
            rule,
            out: Vec::with_capacity(config.calibration.max(1)),
            last: None,
            engine,
            config: config.clone(),
        })
    }
}

/// Feeds a good value to the point's chart (`key` is the value of its subgroup point); queues
/// each charted point and drives the `spc` rule. Returns the rule's transitions, each with what
/// the chart found.
pub fn observe(
    point: &mut PointState,
    key: Option<f64>,
    value: f64,
    now: Instant,
    wall: SystemTime,
    out: &mut Out,
) -> Vec<(Transition, SpcDetail)> {
    let Some(state) = point.spc.as_mut() else {
        return Vec::new();
    };
    if state.subgroup_by.is_some() && key != state.key {
        if state.key.is_some() {
            let dropped = state.engine.discard_partial();
            if dropped > 0 {
                debug!(device = %point.view.device, point = %point.view.name, dropped, "Subgroup counter moved on; incomplete subgroup discarded.");
            }
        }
        state.key = key;
    }
    state.out.clear();
    let failed = state.engine.failed_calibrations();
    state.engine.push(value, &mut state.out);
    if state.engine.failed_calibrations() > failed {
        warn!(device = %point.view.device, point = %point.view.name, "SPC calibration data had no spread (every value equal); calibrating again. Poll at the rate the value changes, or give center and sigma.");
    }
    let Some(estimate) = state.engine.estimate().copied() else {
        return Vec::new();
    };
    let capability = state
        .config
        .spec()
        .map(|spec| spc::capability(estimate.location.center, estimate.sigma, &spec));
    let charted = std::mem::take(&mut state.out);
    let topic = out.topics.spc(&point.view.device, &point.view.name);
    let mut transitions = Vec::new();
    for c in &charted {
        let metric = SpcMetric {
            chart: state.config.chart,
            index: c.index,
            calibration: c.calibration,
            statistic: c.statistic,
            dispersion: c.dispersion,
            sigma: estimate.sigma,
            center: estimate.location.center,
            lcl: estimate.location.lcl,
            ucl: estimate.location.ucl,
            dispersion_center: estimate.dispersion.center,
            dispersion_lcl: estimate.dispersion.lcl,
            dispersion_ucl: estimate.dispersion.ucl,
            violations: c.violations.iter().collect(),
            dispersion_violations: c.dispersion_violations.iter().collect(),
            cusum: c.cusum,
            ewma: c.ewma,
            capability,
            ts: timestamp(wall),
        };
        out.json(topic.clone(), &metric, Qos::AtMostOnce, false);
        if let Some(chart) = point.view.spc_chart.as_mut() {
            chart.push(chart_point(c, &metric));
        }
        let detail = finding(state, c, &metric);
        let violated = !c.violations.is_empty()
            || !c.dispersion_violations.is_empty()
            || detail.cusum.is_some()
            || detail.ewma;
        let condition = violated.then_some(Severity::Alarm);
        if let Some(t) = point.rules[state.rule].signal(condition, c.statistic, now, wall) {
            state.last = Some(detail.clone());
            transitions.push((t, detail));
        }
    }
    state.out = charted;
    transitions
}

/// A charted point for the dashboard, with the limits it was judged by.
fn chart_point(c: &SpcPoint, metric: &SpcMetric) -> ChartPoint {
    ChartPoint {
        index: c.index,
        calibration: c.calibration,
        statistic: c.statistic,
        center: metric.center,
        lcl: metric.lcl,
        ucl: metric.ucl,
        dispersion: c.dispersion,
        dispersion_limits: [
            metric.dispersion_center,
            metric.dispersion_lcl,
            metric.dispersion_ucl,
        ],
        violations: c.violations,
        dispersion_violations: c.dispersion_violations,
    }
}

/// What the chart found at one charted point.
fn finding(state: &SpcState, c: &SpcPoint, metric: &SpcMetric) -> SpcDetail {
    let cusum = c.cusum.and_then(|k| {
        if k.upper_violation {
            Some("upper".to_string())
        } else if k.lower_violation {
            Some("lower".to_string())
        } else {
            None
        }
    });
    SpcDetail {
        chart: state.config.chart,
        rule_set: state.config.rules,
        index: c.index,
        statistic: c.statistic,
        center: metric.center,
        lcl: metric.lcl,
        ucl: metric.ucl,
        rules: metric.violations.clone(),
        dispersion_rules: metric.dispersion_violations.clone(),
        cusum,
        ewma: c.ewma.is_some_and(|w| w.violation),
    }
}
