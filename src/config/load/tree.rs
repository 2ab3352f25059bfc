//! The walk over the file: the document, its sections and its devices.

use super::points::item_named;
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
        self.check_sections(&root);
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
        let mqtt = self.section(&root, "mqtt", validate_mqtt, MqttConfig::default);
        let metrics = self.section(&root, "metrics", |_| Vec::new(), MetricsConfig::default);
        let uplink = match root.get("uplink") {
            Some(v) => self
                .component::<MqttConfig>(v, "uplink", validate_mqtt)
                .map(Some),
            None => Some(None),
        };
        let outcomes = self.section(
            &root,
            "outcomes",
            validate_outcomes,
            OutcomesConfig::default,
        );
        let synthesis = self.section(
            &root,
            "synthesis",
            validate_synthesis,
            SynthesisConfig::default,
        );
        let storage = self.section(&root, "storage", validate_storage, StorageConfig::default);
        let web = self.section(&root, "web", validate_web, WebConfig::default);
        let sparkplug = self.section(
            &root,
            "sparkplug",
            validate_sparkplug,
            SparkplugConfig::default,
        );
        let devices = match root.get("devices") {
            Some(v) => self.devices(v),
            None => Some(Vec::new()),
        };
        if let (Some(sp), Some(devices), Some(v)) = (&sparkplug, &devices, root.get("sparkplug")) {
            self.check_sparkplug_names(sp, devices, v.span());
        }
        Some(Config {
            site: site?,
            mqtt: mqtt?,
            metrics: metrics?,
            devices: devices?,
            uplink: uplink?,
            outcomes: outcomes?,
            synthesis: synthesis?,
            storage: storage?,
            web: web?,
            sparkplug: sparkplug?,
        })
    }

    /// Reports `[sparkplug]` devices and points that are not in `[[devices]]`.
    fn check_sparkplug_names(
        &mut self,
        sp: &SparkplugConfig,
        devices: &[DeviceConfig],
        span: Span,
    ) {
        for name in &sp.devices {
            if !devices.iter().any(|d| d.name() == name) {
                self.report(
                    span.clone(),
                    "sparkplug",
                    format!("devices: no device `{name}` in [[devices]]"),
                );
            }
        }
        for name in &sp.points {
            let found = name.split_once('/').is_some_and(|(d, p)| {
                devices
                    .iter()
                    .any(|x| x.name() == d && x.points().iter().any(|q| q.name == p))
            });
            if !found {
                self.report(
                    span.clone(),
                    "sparkplug",
                    format!("points: no point `{name}` (give `device/point`)"),
                );
            }
        }
    }

    /// Reports every top-level key that is not a known section.
    fn check_sections(&mut self, root: &DeTable<'t>) {
        const SECTIONS: [&str; 10] = [
            "site",
            "mqtt",
            "metrics",
            "devices",
            "uplink",
            "outcomes",
            "synthesis",
            "storage",
            "web",
            "sparkplug",
        ];
        for (key, _) in root.iter() {
            if !SECTIONS.contains(&key.get_ref().as_ref()) {
                self.report(
                    key.span(),
                    "config",
                    format!(
                        "unknown section `{}`, expected one of `site`, `mqtt`, `metrics`, `devices`, `uplink`, `outcomes`, `synthesis`, `storage`, `web`, `sparkplug`",
                        key.get_ref()
                    ),
                );
            }
        }
    }

    /// An optional section: checked when present, its defaults when absent.
    fn section<T: DeserializeOwned>(
        &mut self,
        root: &DeTable<'t>,
        key: &str,
        validate: impl Fn(&T) -> Vec<Finding>,
        default: impl FnOnce() -> T,
    ) -> Option<T> {
        match root.get(key) {
            Some(v) => self.component::<T>(v, key, validate),
            None => Some(default()),
        }
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
            match self.device(item, &component) {
                Some(d) => {
                    if RESERVED_DEVICE_NAMES.contains(&d.name()) {
                        let span = key_span(item, &["name"]);
                        self.report(
                            span,
                            &component,
                            format!(
                                "device name `{}` is reserved: `qis/<site>/stats/{}` carries the gateway's own statistics",
                                d.name(),
                                d.name()
                            ),
                        );
                        ok = false;
                    }
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
        for (name, message) in shared_line_problems(&devices) {
            let item = item_named(&items, &name);
            let span = item.map(|i| key_span(i, &["port"])).unwrap_or(value.span());
            self.report(span, &format!("device \"{name}\""), message);
            ok = false;
        }
        ok.then_some(devices)
    }

    /// One `[[devices]]` entry, by its `type`.
    fn device(&mut self, item: &Spanned<DeValue<'t>>, component: &str) -> Option<DeviceConfig> {
        let table = item.get_ref().as_table()?;
        let Some(t) = table.get("type") else {
            self.report(
                item.span(),
                component,
                "missing field `type` (one of \"modbus_tcp\", \"modbus_rtu\", \"opcua\", \"vibration\")",
            );
            return None;
        };
        let Some(kind) = t.get_ref().as_str() else {
            self.report(
                t.span(),
                component,
                "`type` must be a string such as \"modbus_tcp\"",
            );
            return None;
        };
        match kind {
            "modbus_tcp" => self.modbus_tcp(item, component),
            "vibration" => self.vibration(item, component),
            "modbus_rtu" => self.modbus_rtu(item, component),
            "opcua" => self.opcua(item, component),
            k => {
                self.report(
                    t.span(),
                    component,
                    format!(
                        "unknown device type `{k}`, expected one of `modbus_tcp`, `modbus_rtu`, `opcua`, `vibration`"
                    ),
                );
                None
            }
        }
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

/// Units sharing a serial line must agree on it and have distinct addresses: each problem with
/// the name of the device it is reported on.
fn shared_line_problems(devices: &[DeviceConfig]) -> Vec<(String, String)> {
    let rtu: Vec<&ModbusRtuConfig> = devices
        .iter()
        .filter_map(|d| match d {
            DeviceConfig::ModbusRtu(r) => Some(r),
            _ => None,
        })
        .collect();
    let mut problems = Vec::new();
    for (a, x) in rtu.iter().enumerate() {
        for y in rtu.iter().skip(a + 1) {
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
    problems
}

/// Names a device may not have: its statistics topic would be the gateway's own.
pub const RESERVED_DEVICE_NAMES: [&str; 2] = ["intake", "storage"];
