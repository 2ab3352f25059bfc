//! Checks of points, alarm rules, adaptation rails and `[synthesis]`.

use super::*;

pub(in crate::config) fn check_context(
    context: Option<&crate::packet::Context>,
    out: &mut Vec<Finding>,
) {
    if let Some(Err(e)) = context.map(|c| c.fingerprint()) {
        out.push((vec!["context"], format!("context: {e}")));
    }
}

pub(in crate::config) fn validate_point(p: &RegisterPointConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_context(p.context.as_ref(), &mut out);
    check_topic_name("name", "point name", &p.name, &mut out);
    let ty = p.data_type();
    if p.register.is_bit() != (ty == DataType::Bool) {
        let msg = if p.register.is_bit() {
            format!(
                "a {:?} register holds one bit: data_type must be `bool`, not `{ty:?}`",
                p.register
            )
        } else {
            format!("`bool` is for coils and discrete inputs; a {:?} register needs a numeric data_type", p.register)
        };
        out.push((vec!["data_type"], msg.to_lowercase()));
    }
    let last = u32::from(p.address) + u32::from(p.registers()) - 1;
    if last > u32::from(u16::MAX) {
        out.push((
            vec!["address"],
            format!(
                "address {} + {} registers runs past 65535",
                p.address,
                p.registers()
            ),
        ));
    }
    match ty {
        DataType::Bit => match p.bit {
            Some(b) if b <= 15 => {}
            Some(b) => out.push((vec!["bit"], format!("bit {b} is outside 0..=15"))),
            None => out.push((vec!["data_type"], "`bit` needs `bit = 0..15`".into())),
        },
        _ if p.bit.is_some() => out.push((
            vec!["bit"],
            "`bit` applies only to data_type = \"bit\"".into(),
        )),
        _ => {}
    }
    match ty {
        DataType::String => {
            match p.length {
                Some(l) if (1..=125).contains(&l) => {}
                Some(l) => out.push((
                    vec!["length"],
                    format!("length {l} is outside 1..=125 registers"),
                )),
                None => out.push((
                    vec!["data_type"],
                    "`string` needs `length` (registers)".into(),
                )),
            }
            if !p.alarms.is_empty() || p.spc.is_some() {
                out.push((
                    vec!["data_type"],
                    "alarms and SPC need a number; a string point has text".into(),
                ));
            }
        }
        _ if p.length.is_some() => out.push((
            vec!["length"],
            "`length` applies only to data_type = \"string\"".into(),
        )),
        _ => {}
    }
    check_scale("scale", "scale", p.scale, &mut out);
    if !p.offset.is_finite() {
        out.push((vec!["offset"], "offset must be finite".into()));
    }
    if let Some(spc) = &p.spc {
        check_spc(p, spc, &mut out);
    }
    out
}

pub(in crate::config) fn validate_alarm(rule: &AlarmRuleConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(name) = &rule.name {
        check_topic_name("name", "alarm rule name", name, &mut out);
    }
    if rule.warning.is_none() && rule.alarm.is_none() {
        out.push((
            vec!["kind"],
            "an alarm rule needs a `warning` level, an `alarm` level, or both".into(),
        ));
    }
    for (key, level) in [("warning", rule.warning), ("alarm", rule.alarm)] {
        if level.is_some_and(|l| !l.is_finite()) {
            out.push((vec![key], format!("{key} level must be a finite number")));
        }
    }
    if let (Some(w), Some(a)) = (rule.warning, rule.alarm) {
        match rule.kind {
            AlarmKind::High if w >= a => out.push((
                vec!["warning"],
                format!(
                    "for a high rule the warning level ({w}) must lie below the alarm level ({a})"
                ),
            )),
            AlarmKind::Low if w <= a => out.push((
                vec!["warning"],
                format!(
                    "for a low rule the warning level ({w}) must lie above the alarm level ({a})"
                ),
            )),
            _ => {}
        }
    }
    if !rule.deadband.is_finite() || rule.deadband < 0.0 {
        out.push((
            vec!["deadband"],
            format!("deadband = {} must be zero or positive", rule.deadband),
        ));
    }
    if let Some(c) = &rule.confirmed_by {
        if !c.equals.is_finite() {
            out.push((
                vec!["confirmed_by", "equals"],
                "confirmed_by.equals must be a finite number".into(),
            ));
        }
        if !(1..=366).contains(&c.within_days) {
            out.push((
                vec!["confirmed_by", "within_days"],
                format!(
                    "confirmed_by.within_days = {} is outside 1..=366",
                    c.within_days
                ),
            ));
        }
        if c.failure_mode.trim().is_empty() {
            out.push((
                vec!["confirmed_by", "failure_mode"],
                "confirmed_by.failure_mode must say what the fault means".into(),
            ));
        }
    }
    if let (Some(adapt), Some((level_name, level))) = (&rule.adapt, rule.adaptable_level()) {
        check_adapt(rule, adapt, level_name.name(), level, &mut out);
    }
    if rule.on_delay_ms > 86_400_000 {
        out.push((
            vec!["on_delay_ms"],
            format!("on_delay_ms = {} is longer than a day", rule.on_delay_ms),
        ));
    }
    out
}

/// The rails of an adaptable level: finite, around the level, and (when the warning level
/// adapts) never past the alarm level.
pub(in crate::config) fn check_adapt(
    rule: &AlarmRuleConfig,
    adapt: &crate::config::AdaptConfig,
    level_name: &str,
    level: f64,
    out: &mut Vec<Finding>,
) {
    for (key, v) in [("floor", adapt.floor), ("ceiling", adapt.ceiling)] {
        if !v.is_finite() {
            out.push((
                vec!["adapt", key],
                format!("adapt.{key} must be a finite number"),
            ));
            return;
        }
    }
    if let Some(h) = adapt.healthy {
        if !(h.is_finite() && h > 0.0) {
            out.push((
                vec!["adapt", "healthy"],
                format!("adapt.healthy = {h} must be a number above 0 (the point's healthy level)"),
            ));
        }
    } else if adapt.relative {
        out.push((
            vec!["adapt", "relative"],
            "adapt.relative = true needs adapt.healthy, the point's healthy level that peers' \
             ratios multiply"
                .to_string(),
        ));
    }
    if !(adapt.floor <= level && level <= adapt.ceiling) {
        out.push((
            vec!["adapt"],
            format!(
                "the rails floor = {} and ceiling = {} must hold the {level_name} level {level} \
                 (floor <= {level_name} <= ceiling)",
                adapt.floor, adapt.ceiling
            ),
        ));
    }
    if let (Some(_), Some(alarm)) = (rule.warning, rule.alarm) {
        match rule.kind {
            AlarmKind::High if adapt.ceiling >= alarm => out.push((
                vec!["adapt", "ceiling"],
                format!(
                    "adapt.ceiling = {} must lie below the alarm level ({alarm}), so the \
                     adapted warning level stays below it",
                    adapt.ceiling
                ),
            )),
            AlarmKind::Low if adapt.floor <= alarm => out.push((
                vec!["adapt", "floor"],
                format!(
                    "adapt.floor = {} must lie above the alarm level ({alarm}), so the \
                     adapted warning level stays above it",
                    adapt.floor
                ),
            )),
            _ => {}
        }
    }
}

pub(in crate::config) fn validate_synthesis(s: &super::SynthesisConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, v) in [
        ("neutral_trust", s.neutral_trust),
        ("trust_gain", s.trust_gain),
        ("trust_loss", s.trust_loss),
        ("min_weight", s.min_weight),
    ] {
        check_range(key, v, 0.0..=1.0, "", &mut out);
    }
    for level in crate::packet::MatchLevel::ALL {
        let key = level.as_str();
        let v = s.match_weights.at(level);
        if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
            out.push((
                vec!["match_weights", key],
                format!("match_weights.{key} = {v} must be between 0 and 1"),
            ));
        }
    }
    if !(s.baseline_weight.is_finite() && s.baseline_weight > 0.0) {
        out.push((
            vec!["baseline_weight"],
            format!(
                "baseline_weight = {} must be a positive number",
                s.baseline_weight
            ),
        ));
    }
    out
}

/// A point's `[devices.points.spc]`.
pub(in crate::config) fn check_spc(
    p: &RegisterPointConfig,
    spc: &SpcPointConfig,
    out: &mut Vec<Finding>,
) {
    use crate::analysis::spc::{ChartKind, SpcEngine};
    if spc.chart != ChartKind::Imr && spc.subgroup_size.is_none() {
        out.push((
            vec!["spc"],
            "an X-bar chart needs `subgroup_size` (2–25)".into(),
        ));
    } else if let Err(e) = SpcEngine::new(spc.settings()) {
        out.push((vec!["spc"], format!("spc: {e}")));
    }
    if spc.center.is_some() != spc.sigma.is_some() {
        out.push((
            vec!["spc"],
            "spc: give `center` and `sigma` together, or neither (to estimate them)".into(),
        ));
    }
    if let Some(s) = spc.spec {
        if !(s.lsl.is_finite() && s.usl.is_finite() && s.lsl < s.usl) {
            out.push((
                vec!["spc"],
                format!("spc.spec: lsl ({}) must lie below usl ({})", s.lsl, s.usl),
            ));
        }
    }
    if p.register.is_bit() {
        out.push((
            vec!["spc"],
            "SPC needs a measured value, not a coil or discrete input".into(),
        ));
    }
}
