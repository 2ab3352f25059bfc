//! Alerts: a point's rules evaluate its good values; every transition becomes an `alarm` event,
//! and the point's retained alert shows the rule that needs the most attention.

use super::out::Out;
use super::points::PointState;
use super::view::{AlarmsView, RuleLevels};
use crate::alarms::{AlarmId, Rule, Severity, Transition};
use crate::mqtt::payload::{timestamp, Alert, Event, RuleStatus, SpcDetail};
use crate::mqtt::Qos;
use crate::outcomes::answers::AlarmEvent;
use std::time::{Instant, SystemTime};
use tracing::info;

/// The id of a rule's current or last raise.
pub fn alarm_id(point: &PointState, rule: &Rule) -> AlarmId {
    AlarmId {
        device: point.view.device.clone(),
        point: point.view.name.clone(),
        rule: rule.config().name().to_string(),
        occurrence: rule.occurrence(),
    }
}

/// Evaluates every rule of the point but its `spc` rule against a good value; returns the
/// transitions by rule index.
pub fn evaluate(
    point: &mut PointState,
    value: f64,
    now: Instant,
    wall: SystemTime,
) -> Vec<(usize, Transition)> {
    let spc_rule = point.spc.as_ref().map(|s| s.rule);
    point
        .rules
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| Some(*i) != spc_rule)
        .filter_map(|(i, rule)| rule.evaluate(value, now, wall).map(|t| (i, t)))
        .collect()
}

/// A rule's state as alerts show it.
pub fn rule_status(point: &PointState, index: usize) -> RuleStatus {
    let rule = &point.rules[index];
    let shelf = point.shelves.get(index).and_then(Option::as_ref);
    RuleStatus {
        rule: rule.config().name().to_string(),
        alarm_id: (rule.occurrence() > 0).then(|| alarm_id(point, rule).to_string()),
        state: rule.state(),
        severity: rule.severity(),
        acknowledged: rule.acknowledged(),
        threshold: rule.threshold(),
        raised_at: rule.raised_at().map(timestamp),
        changed_at: rule.changed_at().map(timestamp),
        shelved_until: shelf.map(|s| timestamp(s.until)),
        shelved_by: shelf.and_then(|s| s.by.clone()),
    }
}

/// The point's rules, for the read model.
pub fn view(point: &PointState) -> AlarmsView {
    AlarmsView {
        point: point.view.id,
        rules: (0..point.rules.len())
            .map(|i| rule_status(point, i))
            .collect(),
        spc: point.spc.as_ref().and_then(|s| s.last.clone()),
        levels: point
            .rules
            .iter()
            .map(|r| RuleLevels {
                warning: r.level(Severity::Warning),
                alarm: r.level(Severity::Alarm),
            })
            .collect(),
        answers: Vec::new(),
    }
}

/// Queues the point's retained alert (points without rules have none).
pub fn publish_alert(point: &PointState, out: &mut Out) {
    let Some(headline) = (0..point.rules.len()).max_by_key(|&i| point.rules[i].urgency()) else {
        return;
    };
    let alarms = view(point);
    let alert = Alert {
        site: out.site.clone(),
        device: point.view.device.clone(),
        point: point.view.name.clone(),
        unit: point.view.unit.clone(),
        value: point.view.value,
        quality: point.view.quality,
        headline: rule_status(point, headline),
        rules: alarms.rules,
        spc: alarms.spc,
    };
    let topic = out.topics.alert(&point.view.device, &point.view.name);
    out.json(topic, &alert, Qos::AtLeastOnce, true);
}

/// Logs a transition of rule `rule` and queues its `alarm` event; `by` names who acknowledged,
/// `spc` what the chart found. Returns the transition as the alarm history keeps it.
pub fn publish_transition(
    point: &PointState,
    rule: usize,
    t: &Transition,
    by: Option<String>,
    spc: Option<SpcDetail>,
    out: &mut Out,
) -> AlarmEvent {
    let r = &point.rules[rule];
    info!(
        device = %point.view.device,
        point = %point.view.name,
        rule = %r.config().name(),
        from = ?t.from,
        to = ?t.to,
        severity = ?t.severity,
        value = ?t.value,
        "Alarm transition."
    );
    let event = Event::Alarm {
        site: out.site.clone(),
        device: point.view.device.clone(),
        point: point.view.name.clone(),
        rule: r.config().name().to_string(),
        alarm_id: alarm_id(point, r).to_string(),
        from: t.from,
        to: t.to,
        severity: t.severity,
        value: t.value,
        threshold: t.threshold,
        unit: point.view.unit.clone(),
        condition_since: t.condition_since.map(timestamp),
        by: by.clone(),
        spc: spc.map(Box::new),
        ts: timestamp(t.at),
    };
    // A shelved rule records its transitions but does not alert.
    if point.shelves.get(rule).is_none_or(Option::is_none) {
        out.event(&event);
    }
    let name = |v: serde_json::Value| v.as_str().map(str::to_string);
    AlarmEvent {
        at_ms: super::unix_ms(t.at),
        alarm_id: (r.occurrence() > 0).then(|| alarm_id(point, r).to_string()),
        device: point.view.device.clone(),
        point: point.view.name.clone(),
        rule: r.config().name().to_string(),
        from: name(serde_json::to_value(t.from).unwrap_or_default()).unwrap_or_default(),
        to: name(serde_json::to_value(t.to).unwrap_or_default()).unwrap_or_default(),
        severity: t
            .severity
            .and_then(|s| name(serde_json::to_value(s).unwrap_or_default())),
        value: t.value,
        threshold: t.threshold,
        by,
    }
}
