//! The walk over the file: the document, its sections and its devices.

use super::spanned::*;
use super::*;
use super::{Finding, Loader};
use crate::config::validate::*;
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

impl<'t> Loader<'t> {
    pub(in crate::config) fn document(&mut self) -> Option<Config> {
        let (root, syntax) = DeTable::parse_recoverable(self.text);
        if !syntax.is_empty() {
            for e in syntax {
                let span = e.span().unwrap_or(0..0);
                self.report(span, "syntax", e.message().trim().to_string());
            }
            return None;
        }
        let root_span = root.span();
        let root = root.into_inner();

        for (key, _) in root.iter() {
            if ![
                "site",
                "mqtt",
                "metrics",
                "devices",
                "uplink",
                "outcomes",
                "synthesis",
            ]
            .contains(&key.get_ref().as_ref())
            {
                self.report(
                    key.span(),
                    "config",
                    format!(
                        "unknown section `{}`, expected one of `site`, `mqtt`, `metrics`, `devices`, `uplink`, `outcomes`, `synthesis`",
                        key.get_ref()
                    ),
                );
            }
        }

        let site = match root.get("site") {
            Some(v) => self.component::<SiteConfig>(v, "site", validate_site),
            None => {
                self.report(
                    root_span.start..root_span.start,
                    "site",
                    "missing section `[site]` (at least `id`)",
                );
                None
            }
        };
        let mqtt = match root.get("mqtt") {
            Some(v) => self.component::<MqttConfig>(v, "mqtt", validate_mqtt),
            None => Some(MqttConfig::default()),
        };
        let metrics = match root.get("metrics") {
            Some(v) => self.component::<MetricsConfig>(v, "metrics", |_| Vec::new()),
            None => Some(MetricsConfig::default()),
        };
        let uplink = match root.get("uplink") {
            Some(v) => self
                .component::<MqttConfig>(v, "uplink", validate_mqtt)
                .map(Some),
            None => Some(None),
        };
        let outcomes = match root.get("outcomes") {
            Some(v) => self.component::<OutcomesConfig>(v, "outcomes", |o| {
                let mut out = Vec::new();
                if !(1..=366).contains(&o.ttl_days) {
                    out.push((
                        vec!["ttl_days"],
                        format!("ttl_days = {} is outside 1..=366", o.ttl_days),
                    ));
                }
                check_at_least_one("outbox_max", o.outbox_max as u64, &mut out);
                for key in &o.allowlist {
                    if crate::packet::keys::parse_public_hex(key).is_none() {
                        out.push((
                            vec!["allowlist"],
                            format!("`{key}` is not a public key of 64 hex digits"),
                        ));
                    }
                }
                if o.strict && o.allowlist.is_empty() {
                    out.push((
                        vec!["strict"],
                        "strict mode with an empty allowlist would accept no packet".into(),
                    ));
                }
                out
            }),
            None => Some(OutcomesConfig::default()),
        };
        let synthesis = match root.get("synthesis") {
            Some(v) => self.component::<super::SynthesisConfig>(v, "synthesis", validate_synthesis),
            None => Some(super::SynthesisConfig::default()),
        };
        let devices = match root.get("devices") {
            Some(v) => self.devices(v),
            None => Some(Vec::new()),
        };
        Some(Config {
            site: site?,
            mqtt: mqtt?,
            metrics: metrics?,
            devices: devices?,
            uplink: uplink?,
            outcomes: outcomes?,
            synthesis: synthesis?,
        })
    }

    pub(in crate::config) fn devices(
        &mut self,
        value: &Spanned<DeValue<'t>>,
    ) -> Option<Vec<DeviceConfig>> {
        let items = self.array_of_tables(value, "devices", "[[devices]]")?;
        let mut devices = Vec::new();
        let mut ok = true;
        let mut names = HashSet::new();
        for (index, item) in items.iter().enumerate() {
            let component = component_name("device", item, index);
            let Some(table) = item.get_ref().as_table() else {
                continue;
            };
            let kind = match table.get("type") {
                Some(t) => match t.get_ref().as_str() {
                    Some(k) => Some((k.to_string(), t.span())),
                    None => {
                        self.report(
                            t.span(),
                            &component,
                            "`type` must be a string such as \"modbus_tcp\"",
                        );
                        None
                    }
                },
                None => {
                    self.report(
                        item.span(),
                        &component,
                        "missing field `type` (one of \"modbus_tcp\", \"modbus_rtu\", \"opcua\", \"vibration\")",
                    );
                    None
                }
            };
            let device = match kind {
                Some((k, _)) if k == "modbus_tcp" => self.modbus_tcp(item, &component),
                Some((k, _)) if k == "vibration" => self.vibration(item, &component),
                Some((k, _)) if k == "modbus_rtu" => self.modbus_rtu(item, &component),
                Some((k, _)) if k == "opcua" => self.opcua(item, &component),
                Some((k, span)) => {
                    self.report(
                        span,
                        &component,
                        format!(
                            "unknown device type `{k}`, expected one of `modbus_tcp`, `modbus_rtu`, `opcua`, `vibration`"
                        ),
                    );
                    None
                }
                None => None,
            };
            match device {
                Some(d) => {
                    if !names.insert(d.name().to_string()) {
                        let span = key_span(item, &["name"]);
                        self.report(
                            span,
                            &component,
                            format!("duplicate device name `{}`", d.name()),
                        );
                        ok = false;
                    }
                    devices.push(d);
                }
                None => ok = false,
            }
        }
        // Units sharing a serial line must agree on it and have distinct addresses.
        let rtu: Vec<(usize, &ModbusRtuConfig)> = devices
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match d {
                DeviceConfig::ModbusRtu(r) => Some((i, r)),
                _ => None,
            })
            .collect();
        let mut problems = Vec::new();
        for (a, (_, x)) in rtu.iter().enumerate() {
            for (_, y) in rtu.iter().skip(a + 1) {
                if x.port != y.port {
                    continue;
                }
                if x.line() != y.line() {
                    problems.push((
                        y.name.clone(),
                        format!(
                            "shares {} with `{}` but not its baud, parity, data or stop bits",
                            y.port.display(),
                            x.name
                        ),
                    ));
                }
                if x.unit_id == y.unit_id {
                    problems.push((
                        y.name.clone(),
                        format!(
                            "unit id {} is already `{}` on {}",
                            y.unit_id,
                            x.name,
                            y.port.display()
                        ),
                    ));
                }
            }
        }
        for (name, message) in problems {
            let item = items.iter().find(|i| {
                i.get_ref()
                    .as_table()
                    .and_then(|t| t.get("name"))
                    .and_then(|n| n.get_ref().as_str())
                    == Some(name.as_str())
            });
            let span = item.map(|i| key_span(i, &["port"])).unwrap_or(value.span());
            self.report(span, &format!("device \"{name}\""), message);
            ok = false;
        }
        ok.then_some(devices)
    }

    pub(in crate::config) fn modbus_tcp(
        &mut self,
        item: &Spanned<DeValue<'t>>,
        component: &str,
    ) -> Option<DeviceConfig> {
        let (mut device, points) =
            self.register_device::<ModbusTcpConfig>(item, component, validate_modbus_tcp)?;
        device.points = points;
        Some(DeviceConfig::ModbusTcp(device))
    }

    pub(in crate::config) fn modbus_rtu(
        &mut self,
        item: &Spanned<DeValue<'t>>,
        component: &str,
    ) -> Option<DeviceConfig> {
        let (mut device, points) =
            self.register_device::<ModbusRtuConfig>(item, component, validate_modbus_rtu)?;
        device.points = points;
        Some(DeviceConfig::ModbusRtu(device))
    }

    /// A Modbus device's own settings and its `[[devices.points]]`, each checked on its own.
    pub(in crate::config) fn register_device<T: DeserializeOwned>(
        &mut self,
        item: &Spanned<DeValue<'t>>,
        component: &str,
        validate: impl Fn(&T) -> Vec<Finding>,
    ) -> Option<(T, Vec<PointConfig>)> {
        let points_value = item
            .get_ref()
            .as_table()
            .and_then(|t| t.get("points"))
            .cloned();
        let own = without_keys(item, &["type", "points"]);
        let device = self.component::<T>(&own, component, validate);
        let points = match &points_value {
            Some(v) => self.points(v, component),
            None => Some(Vec::new()),
        };
        Some((device?, points?))
    }
}
