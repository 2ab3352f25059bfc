//! The walk over points and their alarm rules.

use super::spanned::*;
use super::*;
use super::{Finding, Loader};
use crate::config::validate::*;
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use toml::de::{DeArray, DeValue};
use toml::Spanned;

impl<'t> Loader<'t> {
    /// The `[[devices.points]]` of a device whose points are not registers (vibration features,
    /// OPC UA nodes): each checked as a `P` with its alarm rules, names unique. Returns the
    /// items, the points that parsed (with the index of their item) and whether all did.
    #[allow(
        clippy::type_complexity,
        reason = "a one-off tuple taken apart at once by its two callers"
    )]
    pub(in crate::config) fn named_points<P: DeserializeOwned>(
        &mut self,
        value: Option<&Spanned<DeValue<'t>>>,
        component: &str,
        name: impl Fn(&P) -> &str,
        validate: impl Fn(&P) -> Vec<Finding>,
    ) -> Option<(DeArray<'t>, Vec<(usize, P, Vec<AlarmRuleConfig>)>, bool)> {
        let items = match value {
            Some(v) => self.array_of_tables(v, component, "[[devices.points]]")?,
            None => DeArray::new(),
        };
        let mut ok = true;
        let mut names = HashSet::new();
        let mut points = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let point_component = format!("{component} / {}", component_name("point", item, index));
            let alarms_value = item
                .get_ref()
                .as_table()
                .and_then(|t| t.get("alarms"))
                .cloned();
            let own = without_keys(item, &["alarms"]);
            let point = self.component::<P>(&own, &point_component, &validate);
            let alarms = match &alarms_value {
                Some(v) => self.alarms(v, &point_component, None),
                None => Some(Vec::new()),
            };
            let (Some(p), Some(alarms)) = (point, alarms) else {
                ok = false;
                continue;
            };
            if !names.insert(name(&p).to_string()) {
                self.report(
                    key_span(item, &["name"]),
                    &point_component,
                    format!("duplicate point name `{}`", name(&p)),
                );
                ok = false;
            }
            points.push((index, p, alarms));
        }
        Some((items, points, ok))
    }

    pub(in crate::config) fn points(
        &mut self,
        value: &Spanned<DeValue<'t>>,
        device: &str,
    ) -> Option<Vec<PointConfig>> {
        let items = self.array_of_tables(value, device, "[[devices.points]]")?;
        let mut points = Vec::new();
        let mut ok = true;
        let mut names = HashSet::new();
        for (index, item) in items.iter().enumerate() {
            let component = format!("{device} / {}", component_name("point", item, index));
            let alarms_value = item
                .get_ref()
                .as_table()
                .and_then(|t| t.get("alarms"))
                .cloned();
            let own = without_keys(item, &["alarms"]);
            let point = self.component::<RegisterPointConfig>(&own, &component, validate_point);
            let alarms = match &alarms_value {
                Some(v) => self.alarms(v, &component, point.as_ref()),
                None => Some(Vec::new()),
            };
            match (point, alarms) {
                (Some(mut p), Some(alarms)) => {
                    if p.data_type() == DataType::String && !alarms.is_empty() {
                        self.report(
                            key_span(item, &["data_type"]),
                            &component,
                            "alarms need a number; a string point has text",
                        );
                        ok = false;
                    }
                    if p.spc.is_some() && alarms.iter().any(|r| r.name() == SPC_RULE_NAME) {
                        self.report(key_span(item, &["spc"]), &component, format!("alarm rule name `{SPC_RULE_NAME}` is taken by the SPC rule of this point"));
                        ok = false;
                    }
                    if !names.insert(p.name.clone()) {
                        self.report(
                            key_span(item, &["name"]),
                            &component,
                            format!("duplicate point name `{}`", p.name),
                        );
                        ok = false;
                    }
                    p.alarms = alarms;
                    points.push(PointConfig::from(p));
                }
                _ => ok = false,
            }
        }
        ok &= self.check_point_references(&items, &points, device, value);
        ok.then_some(points)
    }

    /// Checks what points name of each other: `spc.subgroup_by` and `confirmed_by.point`.
    pub(in crate::config) fn check_point_references(
        &mut self,
        items: &DeArray<'t>,
        points: &[PointConfig],
        device: &str,
        value: &Spanned<DeValue<'t>>,
    ) -> bool {
        let mut ok = true;
        for p in points {
            let by = p.spc.as_ref().and_then(|s| s.subgroup_by.as_deref());
            if let Some(by) = by {
                let exists = points.iter().any(|q| q.name == by && q.name != p.name);
                if !exists {
                    let component = format!("{device} / point \"{}\"", p.name);
                    let item = item_named(items, &p.name);
                    let span = item.map(|i| key_span(i, &["spc"])).unwrap_or(value.span());
                    self.report(span, &component, format!("spc.subgroup_by names `{by}`, which is not another point of this device"));
                    ok = false;
                }
            }
            for rule in &p.alarms {
                let Some(c) = &rule.confirmed_by else {
                    continue;
                };
                if !points.iter().any(|q| q.name == c.point && q.name != p.name) {
                    let component = format!("{device} / point \"{}\"", p.name);
                    let item = item_named(items, &p.name);
                    let span = item
                        .map(|i| key_span(i, &["alarms"]))
                        .unwrap_or(value.span());
                    self.report(span, &component, format!("alarm \"{}\": confirmed_by.point names `{}`, which is not another point of this device", rule.name(), c.point));
                    ok = false;
                }
            }
        }
        ok
    }

    pub(in crate::config) fn alarms(
        &mut self,
        value: &Spanned<DeValue<'t>>,
        point_component: &str,
        point: Option<&RegisterPointConfig>,
    ) -> Option<Vec<AlarmRuleConfig>> {
        let items = self.array_of_tables(value, point_component, "[[devices.points.alarms]]")?;
        let mut rules = Vec::new();
        let mut ok = true;
        let mut names = HashSet::new();
        for (index, item) in items.iter().enumerate() {
            let label = item
                .get_ref()
                .as_table()
                .and_then(|t| t.get("name").or_else(|| t.get("kind")))
                .and_then(|v| v.get_ref().as_str().map(str::to_string))
                .unwrap_or_else(|| format!("#{}", index + 1));
            let component = format!("{point_component} / alarm \"{label}\"");
            match self.component::<AlarmRuleConfig>(item, &component, validate_alarm) {
                Some(rule) => {
                    if !names.insert(rule.name().to_string()) {
                        let span = key_span(item, &["name"]);
                        self.report(
                            span,
                            &component,
                            format!("duplicate alarm rule name `{}` on this point; give each rule a distinct `name`", rule.name()),
                        );
                        ok = false;
                    }
                    if point.is_some_and(|p| p.register.is_bit()) && rule.deadband != 0.0 {
                        self.report(key_span(item, &["deadband"]), &component, "a deadband has no meaning on a coil or discrete input (values are 0 or 1)");
                        ok = false;
                    }
                    rules.push(rule);
                }
                None => ok = false,
            }
        }
        ok.then_some(rules)
    }
}

/// The `[[...]]` item whose `name` is `name`.
pub(super) fn item_named<'a, 't>(
    items: &'a [Spanned<DeValue<'t>>],
    name: &str,
) -> Option<&'a Spanned<DeValue<'t>>> {
    items.iter().find(|i| {
        i.get_ref()
            .as_table()
            .and_then(|t| t.get("name"))
            .and_then(|n| n.get_ref().as_str())
            == Some(name)
    })
}
