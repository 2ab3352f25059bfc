//! Loading the configuration and reporting *every* error in it at once.
//!
//! serde stops at the first error, which makes fixing a long file tedious. So the file is parsed
//! into toml's spanned document tree (which keeps byte positions), each component (`[site]`,
//! `[mqtt]`, each device, point and alarm rule) is deserialized on its own, and when serde
//! rejects a key, that key is reported and pruned and the component is tried again. Every
//! message therefore carries the file, line, column and the component it belongs to. Semantic
//! checks (ranges, uniqueness, level ordering) run on each component that deserialized cleanly.

use super::*;
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

type Span = Range<usize>;

/// Upper bound on prune-and-retry rounds per component; each round removes a key, so this is
/// only reached by pathological files.
const MAX_ROUNDS: usize = 256;

/// One problem in the configuration, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The component the problem belongs to, e.g. `device "press1" / point "oil_temp"`.
    pub component: String,
    /// What is wrong, with the values involved.
    pub message: String,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{file}: cannot read the configuration: {source}")]
    Read {
        /// The file's path as given.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read; these are all the problems in it.
    #[error("{}", render(file, diagnostics))]
    Invalid {
        /// The file's path as given.
        file: String,
        /// Every problem found, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

fn render(file: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (i, d) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{file}:{}:{}: {}: {}",
            d.line, d.column, d.component, d.message
        ));
    }
    out
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.line, self.column, self.component, self.message
        )
    }
}

/// Reads and checks a configuration file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    parse_str(&text, &file)
}

/// Checks configuration text; `file` names it in messages.
pub fn parse_str(text: &str, file: &str) -> Result<Config, ConfigError> {
    let mut loader = Loader {
        text,
        diagnostics: Vec::new(),
    };
    let config = loader.document();
    if loader.diagnostics.is_empty() {
        if let Some(config) = config {
            return Ok(config);
        }
    }
    let mut diagnostics = loader.diagnostics;
    diagnostics.sort_by_key(|d| (d.line, d.column));
    diagnostics.dedup();
    Err(ConfigError::Invalid {
        file: file.to_string(),
        diagnostics,
    })
}

struct Loader<'t> {
    text: &'t str,
    diagnostics: Vec<Diagnostic>,
}

/// A semantic problem found in a component: the key path inside it, and the message.
type Finding = (Vec<&'static str>, String);

impl<'t> Loader<'t> {
    fn report(&mut self, span: Span, component: &str, message: impl Into<String>) {
        let (line, column) = line_column(self.text, span.start);
        self.diagnostics.push(Diagnostic {
            line,
            column,
            component: component.to_string(),
            message: message.into(),
        });
    }

    fn document(&mut self) -> Option<Config> {
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

    fn devices(&mut self, value: &Spanned<DeValue<'t>>) -> Option<Vec<DeviceConfig>> {
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

    fn modbus_tcp(&mut self, item: &Spanned<DeValue<'t>>, component: &str) -> Option<DeviceConfig> {
        let (mut device, points) =
            self.register_device::<ModbusTcpConfig>(item, component, validate_modbus_tcp)?;
        device.points = points;
        Some(DeviceConfig::ModbusTcp(device))
    }

    fn modbus_rtu(&mut self, item: &Spanned<DeValue<'t>>, component: &str) -> Option<DeviceConfig> {
        let (mut device, points) =
            self.register_device::<ModbusRtuConfig>(item, component, validate_modbus_rtu)?;
        device.points = points;
        Some(DeviceConfig::ModbusRtu(device))
    }

    /// A Modbus device's own settings and its `[[devices.points]]`, each checked on its own.
    fn register_device<T: DeserializeOwned>(
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

    fn vibration(&mut self, item: &Spanned<DeValue<'t>>, component: &str) -> Option<DeviceConfig> {
        let points_value = item
            .get_ref()
            .as_table()
            .and_then(|t| t.get("points"))
            .cloned();
        let opcua_value = item
            .get_ref()
            .as_table()
            .and_then(|t| t.get("opcua"))
            .cloned();
        let own = without_keys(item, &["type", "points", "opcua"]);
        let has_opcua = opcua_value.is_some();
        let device = self
            .component::<VibrationConfig>(&own, component, |d| validate_vibration(d, has_opcua));
        let opcua = match &opcua_value {
            Some(v) => {
                let waveform_component = format!("{component} / opcua");
                let connection = self.opcua_connection(v, &waveform_component);
                let waveform = self.component::<OpcUaWaveformConfig>(
                    &without_keys(v, OpcUaConnection::KEYS),
                    &waveform_component,
                    validate_opcua_waveform,
                );
                match (connection, waveform) {
                    (Some(connection), Some(mut w)) => {
                        w.connection = connection;
                        Some(Some(Box::new(w)))
                    }
                    _ => None,
                }
            }
            None => Some(None),
        };
        let points = self.named_points::<VibrationPointConfig>(
            points_value.as_ref(),
            component,
            |p| &p.name,
            |p| {
                let mut out = Vec::new();
                check_topic_name("name", "point name", &p.name, &mut out);
                out
            },
        );
        let (mut device, (items, points, mut ok), opcua) = (device?, points?, opcua?);
        device.opcua = opcua;
        for (index, p, alarms) in points {
            let item = &items[index];
            let point_component = format!("{component} / {}", component_name("point", item, index));
            let needs = match p.feature {
                VibrationFeature::BandRms(n) if n >= device.bands_hz.len() => Some(format!(
                    "band_rms:{n} needs at least {} entries in bands_hz",
                    n + 1
                )),
                VibrationFeature::Harmonic(_) if device.rpm.is_none() => {
                    Some("harmonics need `rpm`".to_string())
                }
                VibrationFeature::OuterRaceScore
                | VibrationFeature::InnerRaceScore
                | VibrationFeature::BallScore
                | VibrationFeature::CageScore
                | VibrationFeature::BearingVerdict
                    if device.rpm.is_none() || device.bearing.is_none() =>
                {
                    Some("bearing features need `rpm` and `bearing`".to_string())
                }
                _ => None,
            };
            if let Some(message) = needs {
                self.report(key_span(item, &["feature"]), &point_component, message);
                ok = false;
            }
            device.features.push(p.feature);
            device.points.push(PointConfig {
                unit: p
                    .unit
                    .clone()
                    .unwrap_or_else(|| p.feature.unit().to_string()),
                name: p.name,
                register: RegisterKind::Input,
                address: 0,
                data_type: Some(DataType::F32),
                byte_order: ByteOrder::Abcd,
                bit: None,
                length: None,
                scale: 1.0,
                offset: 0.0,
                alarms,
                spc: p.spc,
                context: p.context,
            });
        }
        let value = points_value.unwrap_or_else(|| item.clone());
        ok &= self.check_point_references(&items, &device.points, component, &value);
        ok.then_some(DeviceConfig::Vibration(device))
    }

    /// The connection keys of an OPC UA table, checked on their own.
    fn opcua_connection(
        &mut self,
        table: &Spanned<DeValue<'t>>,
        component: &str,
    ) -> Option<OpcUaConnection> {
        let others: Vec<String> = table
            .get_ref()
            .as_table()
            .map(|t| {
                t.iter()
                    .map(|(k, _)| k.get_ref().to_string())
                    .filter(|k| !OpcUaConnection::KEYS.contains(&k.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        let only = without_keys(table, &others);
        self.component::<OpcUaConnection>(&only, component, validate_opcua_connection)
    }

    fn opcua(&mut self, item: &Spanned<DeValue<'t>>, component: &str) -> Option<DeviceConfig> {
        let points_value = item
            .get_ref()
            .as_table()
            .and_then(|t| t.get("points"))
            .cloned();
        let own = without_keys(item, &["type", "points"]);
        let connection = self.opcua_connection(&own, component);
        let device = self.component::<OpcUaConfig>(
            &without_keys(&own, OpcUaConnection::KEYS),
            component,
            validate_opcua,
        );
        let points = self.named_points::<OpcUaPointConfig>(
            points_value.as_ref(),
            component,
            |p| &p.name,
            validate_opcua_point,
        );
        let (mut device, (items, points, mut ok), connection) = (device?, points?, connection?);
        device.connection = connection;
        for (_, p, alarms) in points {
            device.nodes.push(OpcUaNodeConfig {
                node: p.node,
                sampling_interval_ms: p.sampling_interval_ms,
                deadband: p.deadband,
            });
            device.points.push(PointConfig {
                name: p.name,
                register: RegisterKind::Input,
                address: 0,
                data_type: Some(DataType::F64),
                byte_order: ByteOrder::Abcd,
                bit: None,
                length: None,
                scale: p.scale,
                offset: p.offset,
                unit: p.unit,
                alarms,
                spc: p.spc,
                context: p.context,
            });
        }
        let value = points_value.unwrap_or_else(|| item.clone());
        ok &= self.check_point_references(&items, &device.points, component, &value);
        ok.then_some(DeviceConfig::OpcUa(device))
    }

    /// The `[[devices.points]]` of a device whose points are not registers (vibration features,
    /// OPC UA nodes): each checked as a `P` with its alarm rules, names unique. Returns the
    /// items, the points that parsed (with the index of their item) and whether all did.
    #[allow(
        clippy::type_complexity,
        reason = "a one-off tuple taken apart at once by its two callers"
    )]
    fn named_points<P: DeserializeOwned>(
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

    fn points(&mut self, value: &Spanned<DeValue<'t>>, device: &str) -> Option<Vec<PointConfig>> {
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
            let point = self.component::<PointConfig>(&own, &component, validate_point);
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
                    points.push(p);
                }
                _ => ok = false,
            }
        }
        ok &= self.check_point_references(&items, &points, device, value);
        ok.then_some(points)
    }

    /// Checks what points name of each other: `spc.subgroup_by` and `confirmed_by.point`.
    fn check_point_references(
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

    fn alarms(
        &mut self,
        value: &Spanned<DeValue<'t>>,
        point_component: &str,
        point: Option<&PointConfig>,
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

    /// Checks that `value` is an array of tables and returns its items.
    fn array_of_tables(
        &mut self,
        value: &Spanned<DeValue<'t>>,
        component: &str,
        what: &str,
    ) -> Option<DeArray<'t>> {
        match value.get_ref() {
            DeValue::Array(items) => {
                let mut ok = true;
                for item in items.iter() {
                    if !item.get_ref().is_table() {
                        self.report(
                            item.span(),
                            component,
                            format!("each entry of {what} must be a table"),
                        );
                        ok = false;
                    }
                }
                ok.then(|| items.clone())
            }
            other => {
                self.report(
                    value.span(),
                    component,
                    format!(
                        "expected an array of tables {what}, found {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    /// Deserializes one component, reporting every serde error (pruning the offending key and
    /// retrying), then runs `validate` on it if it deserialized cleanly.
    fn component<T: DeserializeOwned>(
        &mut self,
        value: &Spanned<DeValue<'t>>,
        component: &str,
        validate: impl Fn(&T) -> Vec<Finding>,
    ) -> Option<T> {
        let mut value = value.clone();
        if !value.get_ref().is_table() {
            self.report(
                value.span(),
                component,
                format!("expected a table, found {}", value.get_ref().type_str()),
            );
            return None;
        }
        let mut removed: Vec<(Span, String)> = Vec::new();
        let mut clean = true;
        for _ in 0..MAX_ROUNDS {
            let span = value.span();
            let DeValue::Table(table) = value.get_ref() else {
                return None;
            };
            let de = toml::de::Deserializer::from(Spanned::new(span.clone(), table.clone()));
            match T::deserialize(de) {
                Ok(parsed) => {
                    // Checks on a pruned component still find real problems, except on the
                    // keys that were pruned: those now hold defaults the user never wrote.
                    let pruned_here: Vec<&str> = removed
                        .iter()
                        .filter(|(s, _)| *s == span)
                        .map(|(_, k)| k.as_str())
                        .collect();
                    let findings: Vec<Finding> = validate(&parsed)
                        .into_iter()
                        .filter(|(path, _)| !path.first().is_some_and(|k| pruned_here.contains(k)))
                        .collect();
                    if clean && findings.is_empty() {
                        return Some(parsed);
                    }
                    for (path, message) in findings {
                        let at = key_span(&value, &path);
                        self.report(at, component, message);
                    }
                    return None;
                }
                Err(e) => {
                    clean = false;
                    let at = e.span().unwrap_or(span);
                    let message = e.message().trim().to_string();
                    let already = missing_field(&message)
                        .is_some_and(|field| removed.iter().any(|(s, k)| *s == at && k == field));
                    if !already {
                        self.report(at.clone(), component, message);
                    }
                    match prune(&mut value, &at) {
                        Pruned::Key(table_span, key) => removed.push((table_span, key)),
                        Pruned::Element => {}
                        Pruned::Nothing => return None,
                    }
                }
            }
        }
        None
    }
}

/// What `prune` removed.
enum Pruned {
    /// A key from the table with this span.
    Key(Span, String),
    /// An element of an array.
    Element,
    /// Nothing contained the span.
    Nothing,
}

fn contains(outer: &Span, inner: &Span) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// Removes the innermost key or array element whose position contains `at`.
fn prune(value: &mut Spanned<DeValue<'_>>, at: &Span) -> Pruned {
    let span = value.span();
    match value.get_mut() {
        DeValue::Table(table) => {
            let hit = table
                .iter()
                .find(|(k, v)| contains(&k.span(), at) || contains(&v.span(), at))
                .map(|(k, _)| k.get_ref().to_string());
            let Some(key) = hit else {
                return Pruned::Nothing;
            };
            if let Some(child) = table.get_mut(key.as_str()) {
                let nested = matches!(child.get_ref(), DeValue::Table(_) | DeValue::Array(_));
                if nested && contains(&child.span(), at) && child.span() != *at {
                    match prune(child, at) {
                        Pruned::Nothing => {}
                        done => return done,
                    }
                }
            }
            table.remove(key.as_str());
            Pruned::Key(span, key)
        }
        DeValue::Array(items) => {
            let Some(index) = items.iter().position(|v| contains(&v.span(), at)) else {
                return Pruned::Nothing;
            };
            if let Some(child) = items.get_mut(index) {
                if child.span() != *at {
                    match prune(child, at) {
                        Pruned::Nothing => {}
                        done => return done,
                    }
                }
            }
            let mut kept = DeArray::new();
            for (i, item) in items.iter().enumerate() {
                if i != index {
                    kept.push(item.clone());
                }
            }
            *items = kept;
            Pruned::Element
        }
        _ => Pruned::Nothing,
    }
}

/// The field named in serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// Position of the value at `path` inside `value`, or of the deepest part of it that exists.
fn key_span(value: &Spanned<DeValue<'_>>, path: &[&str]) -> Span {
    let mut current = value;
    for key in path {
        match current.get_ref().as_table().and_then(|t| t.get(*key)) {
            Some(next) => current = next,
            None => break,
        }
    }
    current.span()
}

/// A copy of a table without some keys (those handled as components of their own).
fn without_keys<'t>(value: &Spanned<DeValue<'t>>, keys: &[&str]) -> Spanned<DeValue<'t>> {
    let mut copy = value.clone();
    if let DeValue::Table(t) = copy.get_mut() {
        for key in keys {
            t.remove(*key);
        }
    }
    copy
}

/// `device "press1"`, or `device #2` when it has no usable name.
fn component_name(kind: &str, item: &Spanned<DeValue<'_>>, index: usize) -> String {
    match item
        .get_ref()
        .as_table()
        .and_then(|t| t.get("name"))
        .and_then(|v| v.get_ref().as_str())
    {
        Some(name) => format!("{kind} \"{name}\""),
        None => format!("{kind} #{}", index + 1),
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            host: default_mqtt_host(),
            port: default_mqtt_port(),
            client_id: None,
            username: None,
            password: None,
            keep_alive_s: default_keep_alive_s(),
            reconnect_max_ms: default_reconnect_max_ms(),
            tls: None,
        }
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before
        .get(line_start..)
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// Names that become MQTT topic levels: no wildcards, separators or spaces.
fn check_topic_name(path: &'static str, what: &str, name: &str, out: &mut Vec<Finding>) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        out.push((
            vec![path],
            format!("{what} `{name}` must be 1–64 characters of letters, digits, `-`, `_` or `.` (it becomes an MQTT topic level)"),
        ));
    }
}

fn validate_site(site: &SiteConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_topic_name("id", "site id", &site.id, &mut out);
    if site.state_dir.as_os_str().is_empty() {
        out.push((vec!["state_dir"], "state_dir must not be empty".into()));
    }
    out
}

fn validate_mqtt(mqtt: &MqttConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    if mqtt.host.trim().is_empty() {
        out.push((vec!["host"], "host must not be empty".into()));
    }
    if mqtt.port == 0 {
        out.push((vec!["port"], "port 0 is not a valid broker port".into()));
    }
    if !(5..=3600).contains(&mqtt.keep_alive_s) {
        out.push((
            vec!["keep_alive_s"],
            format!("keep_alive_s = {} is outside 5..=3600", mqtt.keep_alive_s),
        ));
    }
    if mqtt.reconnect_max_ms < 500 {
        out.push((
            vec!["reconnect_max_ms"],
            format!(
                "reconnect_max_ms = {} is below the first retry delay of 500 ms",
                mqtt.reconnect_max_ms
            ),
        ));
    }
    if let Some(id) = &mqtt.client_id {
        if id.is_empty() || id.len() > 128 {
            out.push((
                vec!["client_id"],
                "client_id must be 1–128 characters".into(),
            ));
        }
    }
    if mqtt.password.is_some() && mqtt.username.is_none() {
        out.push((
            vec!["password"],
            "password is set but username is not".into(),
        ));
    }
    if let Some(tls) = &mqtt.tls {
        for (key, path) in [
            ("ca_file", Some(&tls.ca_file)),
            ("client_cert_file", tls.client_cert_file.as_ref()),
            ("client_key_file", tls.client_key_file.as_ref()),
        ] {
            if let Some(path) = path {
                if !path.is_file() {
                    out.push((
                        vec!["tls", key],
                        format!("{key} `{}` does not exist or is not a file", path.display()),
                    ));
                }
            }
        }
        if tls.client_cert_file.is_some() != tls.client_key_file.is_some() {
            out.push((
                vec!["tls"],
                "client_cert_file and client_key_file must be given together".into(),
            ));
        }
    }
    out
}

/// The settings every polled device has: cadence, staleness, reconnection backoff, request
/// batching and statistics.
struct Polling {
    poll_interval_ms: u64,
    stale_after_ms: Option<u64>,
    backoff_initial_ms: u64,
    backoff_max_ms: u64,
    max_registers_per_request: u16,
    max_bits_per_request: u16,
    stats_interval_ms: u64,
}

impl Polling {
    fn of_tcp(d: &ModbusTcpConfig) -> Self {
        Self {
            poll_interval_ms: d.poll_interval_ms,
            stale_after_ms: d.stale_after_ms,
            backoff_initial_ms: d.backoff_initial_ms,
            backoff_max_ms: d.backoff_max_ms,
            max_registers_per_request: d.max_registers_per_request,
            max_bits_per_request: d.max_bits_per_request,
            stats_interval_ms: d.stats_interval_ms,
        }
    }

    fn of_rtu(d: &ModbusRtuConfig) -> Self {
        Self {
            poll_interval_ms: d.poll_interval_ms,
            stale_after_ms: d.stale_after_ms,
            backoff_initial_ms: d.backoff_initial_ms,
            backoff_max_ms: d.backoff_max_ms,
            max_registers_per_request: d.max_registers_per_request,
            max_bits_per_request: d.max_bits_per_request,
            stats_interval_ms: d.stats_interval_ms,
        }
    }
}

fn check_polling(d: &Polling, out: &mut Vec<Finding>) {
    if !(10..=86_400_000).contains(&d.poll_interval_ms) {
        out.push((
            vec!["poll_interval_ms"],
            format!(
                "poll_interval_ms = {} is outside 10..=86400000",
                d.poll_interval_ms
            ),
        ));
    }
    if let Some(stale) = d.stale_after_ms {
        if stale < d.poll_interval_ms {
            out.push((vec!["stale_after_ms"], format!("stale_after_ms = {stale} is shorter than poll_interval_ms = {}: every point would turn stale between polls", d.poll_interval_ms)));
        }
    }
    if !(1..=125).contains(&d.max_registers_per_request) {
        out.push((
            vec!["max_registers_per_request"],
            format!(
                "max_registers_per_request = {} is outside 1..=125 (Modbus limit)",
                d.max_registers_per_request
            ),
        ));
    }
    if !(1..=2000).contains(&d.max_bits_per_request) {
        out.push((
            vec!["max_bits_per_request"],
            format!(
                "max_bits_per_request = {} is outside 1..=2000 (Modbus limit)",
                d.max_bits_per_request
            ),
        ));
    }
    if d.stats_interval_ms < 100 {
        out.push((
            vec!["stats_interval_ms"],
            "stats_interval_ms must be at least 100".into(),
        ));
    }
    check_at_least_one("backoff_initial_ms", d.backoff_initial_ms, out);
    if d.backoff_max_ms < d.backoff_initial_ms {
        out.push((
            vec!["backoff_max_ms"],
            format!(
                "backoff_max_ms = {} is below backoff_initial_ms = {}",
                d.backoff_max_ms, d.backoff_initial_ms
            ),
        ));
    }
}

fn validate_modbus_tcp(d: &ModbusTcpConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_context(d.context.as_ref(), &mut out);
    check_topic_name("name", "device name", &d.name, &mut out);
    if d.host.trim().is_empty() {
        out.push((vec!["host"], "host must not be empty".into()));
    }
    if d.port == 0 {
        out.push((vec!["port"], "port 0 is not a valid Modbus TCP port".into()));
    }
    if !(10..=600_000).contains(&d.timeout_ms) {
        out.push((
            vec!["timeout_ms"],
            format!("timeout_ms = {} is outside 10..=600000", d.timeout_ms),
        ));
    }
    check_polling(&Polling::of_tcp(d), &mut out);
    out
}

fn validate_modbus_rtu(d: &ModbusRtuConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_context(d.context.as_ref(), &mut out);
    check_topic_name("name", "device name", &d.name, &mut out);
    if d.port.as_os_str().is_empty() {
        out.push((vec!["port"], "port must name a serial device".into()));
    }
    if !(300..=4_000_000).contains(&d.baud) {
        out.push((
            vec!["baud"],
            format!("baud = {} is outside 300..=4000000", d.baud),
        ));
    }
    if !(7..=8).contains(&d.data_bits) {
        out.push((
            vec!["data_bits"],
            format!("data_bits = {} must be 7 or 8", d.data_bits),
        ));
    }
    if !(1..=2).contains(&d.stop_bits) {
        out.push((
            vec!["stop_bits"],
            format!("stop_bits = {} must be 1 or 2", d.stop_bits),
        ));
    }
    if !(1..=247).contains(&d.unit_id) {
        out.push((
            vec!["unit_id"],
            format!(
                "unit_id = {} is outside 1..=247 (0 is broadcast, which nobody answers)",
                d.unit_id
            ),
        ));
    }
    if !(10..=60_000).contains(&d.timeout_ms) {
        out.push((
            vec!["timeout_ms"],
            format!("timeout_ms = {} is outside 10..=60000", d.timeout_ms),
        ));
    }
    check_polling(&Polling::of_rtu(d), &mut out);
    out
}

fn validate_vibration(d: &VibrationConfig, has_opcua: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    check_context(d.context.as_ref(), &mut out);
    check_topic_name("name", "device name", &d.name, &mut out);
    match (&d.file, &d.modbus, has_opcua) {
        (None, None, true) => {
            if d.sample_rate.is_none() {
                out.push((
                    vec!["sample_rate"],
                    "`sample_rate` is needed for an OPC UA waveform".into(),
                ));
            }
        }
        (Some(file), None, false) => {
            if !file.is_file() {
                out.push((
                    vec!["file"],
                    format!("file `{}` does not exist or is not a file", file.display()),
                ));
            }
            let format = d
                .format
                .or_else(|| super::WaveformFormat::from_path(file));
            match format {
                None => out.push((
                    vec!["format"],
                    "cannot tell the format from the file name: give `format` (f32, csv or wav)"
                        .into(),
                )),
                Some(f)
                    if f != super::WaveformFormat::Wav
                        && d.sample_rate.is_none() =>
                {
                    out.push((
                        vec!["sample_rate"],
                        "`sample_rate` is needed for raw and CSV files".into(),
                    ))
                }
                _ => {}
            }
        }
        (None, Some(block), false) => {
            if d.sample_rate.is_none() {
                out.push((
                    vec!["sample_rate"],
                    "`sample_rate` is needed for a Modbus waveform".into(),
                ));
            }
            if block.register.is_bit() {
                out.push((
                    vec!["modbus"],
                    "a waveform lives in holding or input registers".into(),
                ));
            }
            if u32::from(block.address) + d.window as u32 > 65_536 {
                out.push((
                    vec!["modbus"],
                    format!(
                        "address {} + window {} runs past 65535",
                        block.address, d.window
                    ),
                ));
            }
            if block.host.trim().is_empty() || block.port == 0 {
                out.push((
                    vec!["modbus"],
                    "modbus.host and modbus.port must name a server".into(),
                ));
            }
            check_scale("modbus", "modbus.scale", block.scale, &mut out);
        }
        _ => out.push((
            vec!["name"],
            "give exactly one waveform source: `file`, `modbus` or `opcua`".into(),
        )),
    }
    if d.modbus.is_some() || has_opcua || d.replay == ReplayPace::Fast {
        check_at_least_one("interval_ms", d.interval_ms, &mut out);
    }
    if let Some(rpm) = d.rpm {
        if !(rpm.is_finite() && rpm > 0.0) {
            out.push((vec!["rpm"], format!("rpm = {rpm} must be positive")));
        }
    }
    if let Some(fs) = d.sample_rate {
        if let Err(e) = crate::analysis::vibration::VibrationAnalyzer::new(d.settings(fs)) {
            let key = match e {
                crate::analysis::vibration::VibrationError::Window(_) => "window",
                crate::analysis::vibration::VibrationError::SampleRate(_) => "sample_rate",
                crate::analysis::vibration::VibrationError::Bearing(_) => "bearing",
                _ => "name",
            };
            out.push((vec![key], e.to_string()));
        }
    }
    out
}

fn validate_opcua_connection(c: &OpcUaConnection) -> Vec<Finding> {
    use OpcUaSecurityMode as Mode;
    use OpcUaSecurityPolicy as Policy;
    let mut out = Vec::new();
    let rest = c.endpoint.strip_prefix("opc.tcp://");
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/') || r.starts_with(':')) {
        out.push((
            vec!["endpoint"],
            format!(
                "endpoint `{}` is not an OPC UA TCP URL such as `opc.tcp://10.0.0.5:4840`",
                c.endpoint
            ),
        ));
    }
    match (c.security_policy, c.security_mode) {
        (Policy::None, Mode::Sign | Mode::SignAndEncrypt) => out.push((
            vec!["security_mode"],
            "security_mode `sign` and `sign_and_encrypt` need security_policy = \"basic256sha256\"".into(),
        )),
        (Policy::Basic256sha256, Mode::None) => out.push((
            vec!["security_mode"],
            "security_policy `basic256sha256` needs security_mode = \"sign\" or \"sign_and_encrypt\"".into(),
        )),
        _ => {}
    }
    if let Some(id) = &c.identity {
        let user = id.user.is_some() || id.password.is_some();
        let cert = id.certificate.is_some() || id.private_key.is_some();
        if user && cert {
            out.push((
                vec!["identity"],
                "give either `user` and `password` or `certificate` and `private_key`, not both"
                    .into(),
            ));
        } else if user && (id.user.is_none() || id.password.is_none()) {
            out.push((
                vec!["identity"],
                "identity needs both `user` and `password`".into(),
            ));
        } else if cert {
            match (&id.certificate, &id.private_key) {
                (Some(c), Some(k)) => {
                    for (what, path) in [("certificate", c), ("private_key", k)] {
                        if !path.is_file() {
                            out.push((
                                vec!["identity"],
                                format!(
                                    "identity {what} `{}` does not exist or is not a file",
                                    path.display()
                                ),
                            ));
                        }
                    }
                }
                _ => out.push((
                    vec!["identity"],
                    "identity needs both `certificate` and `private_key`".into(),
                )),
            }
        } else if !user {
            out.push((
                vec!["identity"],
                "an empty identity: remove it for anonymous, or give `user` and `password`, or `certificate` and `private_key`".into(),
            ));
        }
    }
    check_at_least_one("timeout_ms", c.timeout_ms, &mut out);
    if c.backoff_initial_ms == 0 || c.backoff_initial_ms > c.backoff_max_ms {
        out.push((
            vec!["backoff_initial_ms"],
            "backoff_initial_ms must be at least 1 and at most backoff_max_ms".into(),
        ));
    }
    out
}

/// A multiplier that can turn a raw value into an engineering one.
fn check_scale(key: &'static str, label: &str, scale: f64, out: &mut Vec<Finding>) {
    if !(scale.is_finite() && scale != 0.0) {
        out.push((
            vec![key],
            format!("{label} = {scale} must be finite and non-zero"),
        ));
    }
}

/// A count or duration that must not be zero.
fn check_at_least_one(key: &'static str, value: u64, out: &mut Vec<Finding>) {
    if value == 0 {
        out.push((vec![key], format!("{key} must be at least 1")));
    }
}

fn check_node(node: &str, out: &mut Vec<Finding>) {
    if node.trim().parse::<::opcua::types::NodeId>().is_err() {
        out.push((
            vec!["node"],
            format!(
                "`{node}` is not a node id such as `ns=2;s=Line1.Temperature` or `ns=3;i=1042`"
            ),
        ));
    }
}

fn validate_opcua(d: &OpcUaConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_context(d.context.as_ref(), &mut out);
    check_topic_name("name", "device name", &d.name, &mut out);
    check_at_least_one("interval_ms", d.interval_ms, &mut out);
    check_at_least_one("stats_interval_ms", d.stats_interval_ms, &mut out);
    out
}

fn validate_opcua_point(p: &OpcUaPointConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_context(p.context.as_ref(), &mut out);
    check_topic_name("name", "point name", &p.name, &mut out);
    check_node(&p.node, &mut out);
    check_scale("scale", "scale", p.scale, &mut out);
    if !p.offset.is_finite() {
        out.push((vec!["offset"], "offset must be finite".into()));
    }
    if !(p.deadband.is_finite() && p.deadband >= 0.0) {
        out.push((vec!["deadband"], "deadband must be zero or positive".into()));
    }
    if let Some(ms) = p.sampling_interval_ms {
        check_at_least_one("sampling_interval_ms", ms, &mut out);
    }
    out
}

fn validate_opcua_waveform(w: &OpcUaWaveformConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_node(&w.node, &mut out);
    check_scale("scale", "scale", w.scale, &mut out);
    out
}

fn check_context(context: Option<&crate::packet::Context>, out: &mut Vec<Finding>) {
    if let Some(Err(e)) = context.map(|c| c.fingerprint()) {
        out.push((vec!["context"], format!("context: {e}")));
    }
}

fn validate_point(p: &PointConfig) -> Vec<Finding> {
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
    out
}

fn validate_alarm(rule: &AlarmRuleConfig) -> Vec<Finding> {
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

/// The `[[...]]` item whose `name` is `name`.
fn item_named<'a, 't>(
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

/// The rails of an adaptable level: finite, around the level, and (when the warning level
/// adapts) never past the alarm level.
fn check_adapt(
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

fn validate_synthesis(s: &super::SynthesisConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, v) in [
        ("neutral_trust", s.neutral_trust),
        ("trust_gain", s.trust_gain),
        ("trust_loss", s.trust_loss),
        ("min_weight", s.min_weight),
    ] {
        if !(0.0..=1.0).contains(&v) {
            out.push((vec![key], format!("{key} = {v} is outside 0..=1")));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<Diagnostic> {
        match parse_str(text, "t.toml") {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid { diagnostics, .. }) => diagnostics,
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn minimal_config_loads_with_defaults() {
        let c = parse_str("[site]\nid = \"p1\"\n", "t.toml").expect("valid");
        assert_eq!(c.site.id, "p1");
        assert_eq!(c.mqtt.port, 1883);
        assert_eq!(c.metrics.min_interval_ms, 1000);
        assert!(c.devices.is_empty());
    }

    #[test]
    fn every_error_in_a_file_is_reported_with_its_position() {
        let text = r#"[site]
id = "bad site"
colour = "blue"

[mqtt]
port = "x"

[[devices]]
type = "modbus_tcp"
name = "plc1"
host = "10.0.0.1"
timeout_ms = 0
bogus = 1

[[devices.points]]
name = "t"
register = "holding"
address = 1
data_type = "f64x"

[[devices.points.alarms]]
kind = "high"
warning = 90.0
alarm = 80.0
"#;
        let errs = errors(text);
        let lines: Vec<(usize, &str)> = errs.iter().map(|d| (d.line, d.message.as_str())).collect();
        assert!(
            errs.iter()
                .any(|d| d.line == 2 && d.component == "site" && d.message.contains("bad site")),
            "{lines:?}"
        );
        assert!(
            errs.iter()
                .any(|d| d.line == 3 && d.message.contains("unknown field `colour`")),
            "{lines:?}"
        );
        assert!(
            errs.iter().any(|d| d.line == 6 && d.component == "mqtt"),
            "{lines:?}"
        );
        assert!(
            errs.iter().any(|d| d.line == 12
                && d.component == "device \"plc1\""
                && d.message.contains("timeout_ms")),
            "{lines:?}"
        );
        assert!(
            errs.iter()
                .any(|d| d.line == 13 && d.message.contains("bogus")),
            "{lines:?}"
        );
        assert!(
            errs.iter()
                .any(|d| d.line == 19 && d.component == "device \"plc1\" / point \"t\""),
            "{lines:?}"
        );
        assert!(
            errs.iter().any(|d| d.line == 23
                && d.component.ends_with("alarm \"high\"")
                && d.message.contains("below the alarm level")),
            "{lines:?}"
        );
        assert_eq!(errs.len(), 7, "{lines:?}");
    }

    #[test]
    fn missing_required_fields_are_named() {
        let errs = errors("[site]\n[[devices]]\ntype = \"modbus_tcp\"\n");
        assert!(
            errs.iter()
                .any(|d| d.message.contains("missing field `id`")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|d| d.message.contains("missing field `name`")),
            "{errs:?}"
        );
    }

    #[test]
    fn syntax_errors_carry_positions() {
        let errs = errors("[site]\nid = \"p1\"\nport = = 3\n");
        assert!(!errs.is_empty());
        assert!(errs.iter().all(|d| d.component == "syntax"));
        assert_eq!(errs[0].line, 3);
    }

    #[test]
    fn unknown_device_type_is_an_error() {
        let errs = errors("[site]\nid = \"p\"\n[[devices]]\ntype = \"profibus\"\nname = \"x\"\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].message.contains("profibus"));
        assert_eq!((errs[0].line, errs[0].column), (4, 8));
    }

    #[test]
    fn bit_registers_require_bool() {
        let errs = errors("[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"x\"\nhost = \"h\"\n[[devices.points]]\nname = \"c\"\nregister = \"coil\"\naddress = 0\ndata_type = \"f32\"\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].line, 11);
    }

    #[test]
    fn spc_sections_are_checked() {
        let base = "[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"x\"\nhost = \"h\"\n[[devices.points]]\nname = \"d\"\nregister = \"holding\"\naddress = 0\n";
        let ok = format!("{base}[devices.points.spc]\nchart = \"xbar-r\"\nsubgroup_size = 5\nrules = \"nelson\"\ncusum = {{ k = 0.5, h = 5 }}\n");
        let c = parse_str(&ok, "t.toml").expect("valid");
        assert!(c.devices[0].points()[0].spc.is_some());
        for (extra, fragment) in [
            ("chart = \"xbar-r\"\n", "subgroup_size"),
            (
                "chart = \"xbar-s\"\nsubgroup_size = 40\n",
                "subgroup size 40",
            ),
            ("chart = \"imr\"\nsubgroup_by = \"batch\"\n", "subgroup_by"),
            ("chart = \"imr\"\ncenter = 3.0\n", "together"),
            (
                "chart = \"imr\"\nrules = \"nelson\"\nenabled_rules = [9]\n",
                "rule 9",
            ),
            ("chart = \"pareto\"\n", "unknown variant"),
            ("chart = \"imr\"\nspec = { lsl = 5.0, usl = 1.0 }\n", "lsl"),
        ] {
            let text = format!("{base}[devices.points.spc]\n{extra}");
            let errs = errors(&text);
            assert!(
                errs.iter().any(|d| d.message.contains(fragment)),
                "{extra}: {errs:?}"
            );
        }
    }

    #[test]
    fn opcua_devices_are_checked() {
        let device = "[site]\nid = \"p\"\n[[devices]]\ntype = \"opcua\"\nname = \"x\"\n";
        let point = "[[devices.points]]\nname = \"t\"\nnode = \"ns=2;s=T\"\n";
        let good = format!("{device}endpoint = \"opc.tcp://plc:4840\"\n{point}");
        let config = parse_str(&good, "t").unwrap();
        let DeviceConfig::OpcUa(d) = &config.devices[0] else {
            panic!("an OPC UA device")
        };
        assert_eq!(d.connection.endpoint, "opc.tcp://plc:4840");
        assert_eq!(d.connection.timeout_ms, 5_000);
        assert_eq!(d.nodes[0].node, "ns=2;s=T");
        assert_eq!(d.points[0].name, "t");
        for (extra, points, fragment) in [
            ("endpoint = \"http://plc\"\n", point, "not an OPC UA TCP URL"),
            ("endpoint = \"opc.tcp://plc\"\nsecurity_mode = \"sign\"\n", point, "need security_policy"),
            ("endpoint = \"opc.tcp://plc\"\nsecurity_policy = \"basic256sha256\"\n", point, "needs security_mode"),
            ("endpoint = \"opc.tcp://plc\"\nidentity = { user = \"a\" }\n", point, "both `user` and `password`"),
            ("endpoint = \"opc.tcp://plc\"\nidentity = { user = \"a\", password = \"b\", certificate = \"c.der\" }\n", point, "not both"),
            ("endpoint = \"opc.tcp://plc\"\nidentity = { certificate = \"/nonexistent.der\", private_key = \"/nonexistent.pem\" }\n", point, "does not exist"),
            ("endpoint = \"opc.tcp://plc\"\nsecurity_policy = \"aes\"\n", point, "unknown variant"),
            ("endpoint = \"opc.tcp://plc\"\nregister = \"holding\"\n", point, "unknown field"),
            ("", point, "missing field `endpoint`"),
            ("endpoint = \"opc.tcp://plc\"\n", "[[devices.points]]\nname = \"t\"\nnode = \"Temperature\"\n", "not a node id"),
            ("endpoint = \"opc.tcp://plc\"\n", "[[devices.points]]\nname = \"t\"\nnode = \"i=1\"\ndeadband = -1.0\n", "deadband"),
            ("endpoint = \"opc.tcp://plc\"\n", "[[devices.points]]\nname = \"t\"\nnode = \"i=1\"\n[[devices.points]]\nname = \"t\"\nnode = \"i=2\"\n", "duplicate point name"),
        ] {
            let errs = errors(&format!("{device}{extra}{points}"));
            assert!(errs.iter().any(|d| d.message.contains(fragment)), "{extra}{points}: {errs:?}");
        }
        let wave = "[site]\nid = \"p\"\n[[devices]]\ntype = \"vibration\"\nname = \"v\"\nsample_rate = 25600.0\nwindow = 4096\n[devices.opcua]\nnode = \"ns=2;s=W\"\n";
        let errs = errors(wave);
        assert!(
            errs.iter()
                .any(|d| d.message.contains("missing field `endpoint`")),
            "{errs:?}"
        );
        let config = parse_str(
            &format!("{wave}endpoint = \"opc.tcp://vib:4840\"\nscale = 0.001\n"),
            "t",
        )
        .unwrap();
        let DeviceConfig::Vibration(v) = &config.devices[0] else {
            panic!("a vibration device")
        };
        let w = v.opcua.as_ref().unwrap();
        assert_eq!((w.node.as_str(), w.scale), ("ns=2;s=W", 0.001));
        assert_eq!(w.connection.endpoint, "opc.tcp://vib:4840");
    }

    #[test]
    fn bits_and_strings_are_checked() {
        let base = "[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"x\"\nhost = \"h\"\n[[devices.points]]\nname = \"s\"\nregister = \"holding\"\naddress = 0\n";
        for (extra, fragment) in [
            ("data_type = \"bit\"\n", "needs `bit"),
            ("data_type = \"bit\"\nbit = 16\n", "outside 0..=15"),
            ("data_type = \"u16\"\nbit = 3\n", "applies only"),
            ("data_type = \"string\"\n", "needs `length`"),
            ("data_type = \"string\"\nlength = 200\n", "outside 1..=125"),
            ("data_type = \"string\"\nlength = 4\n[[devices.points.alarms]]\nkind = \"high\"\nalarm = 1.0\n", "string point has text"),
        ] {
            let errs = errors(&format!("{base}{extra}"));
            assert!(errs.iter().any(|d| d.message.contains(fragment)), "{extra}: {errs:?}");
        }
        assert!(parse_str(&format!("{base}data_type = \"string\"\nlength = 4\n"), "t").is_ok());
    }

    /// TCP and RTU devices refuse the same bad polling settings with the same messages.
    #[test]
    fn polling_settings_are_checked_alike_for_tcp_and_rtu_devices() {
        let bad = "poll_interval_ms = 1000\nstale_after_ms = 500\nbackoff_initial_ms = 0\n\
                   max_registers_per_request = 200\nmax_bits_per_request = 0\nstats_interval_ms = 50\n";
        let tcp = format!(
            "[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"d\"\nhost = \"h\"\n{bad}"
        );
        let rtu = format!(
            "[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_rtu\"\nname = \"d\"\nport = \"/dev/ttyUSB0\"\nunit_id = 1\n{bad}"
        );
        let messages = |text: &str| {
            let mut m: Vec<String> = errors(text).into_iter().map(|d| d.message).collect();
            m.sort();
            m
        };
        let tcp = messages(&tcp);
        for field in [
            "stale_after_ms",
            "backoff_initial_ms",
            "max_registers_per_request",
            "max_bits_per_request",
            "stats_interval_ms",
        ] {
            assert!(tcp.iter().any(|m| m.starts_with(field)), "{field}: {tcp:?}");
        }
        assert_eq!(tcp.len(), 5, "{tcp:?}");
        assert_eq!(messages(&rtu), tcp);
    }

    #[test]
    fn adapt_rails_and_synthesis_settings_are_checked() {
        let rule = |levels: &str, rails: &str| {
            format!(
                "[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"d\"\nhost = \"h\"\n\
                 [[devices.points]]\nname = \"t\"\nregister = \"holding\"\naddress = 0\n\
                 [[devices.points.alarms]]\nkind = \"high\"\n{levels}\n[devices.points.alarms.adapt]\n{rails}\n"
            )
        };
        let messages = |text: &str| -> Vec<(usize, String)> {
            errors(text)
                .iter()
                .map(|d| (d.line, d.message.clone()))
                .collect()
        };
        assert!(messages(&rule(
            "warning = 80.0\nalarm = 95.0",
            "floor = 60.0\nceiling = 80.0"
        ))
        .is_empty());
        let m = messages(&rule("warning = 80.0", "floor = 81.0\nceiling = 90.0"));
        assert!(
            m.len() == 1 && m[0].1.contains("must hold the warning level 80"),
            "{m:?}"
        );
        let m = messages(&rule(
            "warning = 80.0\nalarm = 95.0",
            "floor = 60.0\nceiling = 95.0",
        ));
        assert!(
            m.len() == 1 && m[0].1.contains("below the alarm level (95)"),
            "{m:?}"
        );
        assert_eq!(m[0].0, 17, "the line of `ceiling`");
        let m = messages(&rule("alarm = 95.0", "floor = 60.0"));
        assert!(m.len() == 1 && m[0].1.contains("ceiling"), "{m:?}");

        let synthesis =
            |body: &str| messages(&format!("[site]\nid = \"p\"\n[synthesis]\n{body}\n"));
        assert!(synthesis("neutral_trust = 0.7\nbaseline_weight = 0.25").is_empty());
        // Every problem at once, each on its line.
        let m =
            synthesis("neutral_trust = 1.5\ntrust_loss = -0.1\nbaseline_weight = 0.0\nspeed = 1");
        assert_eq!(
            m.iter().map(|(line, _)| *line).collect::<Vec<_>>(),
            vec![4, 5, 6, 7],
            "{m:?}"
        );
        let text: Vec<&str> = m.iter().map(|(_, t)| t.as_str()).collect();
        assert!(text[3].starts_with("unknown field `speed`"), "{text:?}");
        assert!(text
            .iter()
            .any(|t| t.contains("neutral_trust = 1.5 is outside 0..=1")));
        assert!(text
            .iter()
            .any(|t| t.contains("trust_loss = -0.1 is outside 0..=1")));
        assert!(text
            .iter()
            .any(|t| t.contains("baseline_weight = 0 must be a positive number")));
    }

    #[test]
    fn a_fault_confirmation_must_name_another_point_of_the_device() {
        let text = |point: &str, equals: &str| {
            format!(
                "[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"d\"\nhost = \"h\"\n\
                 [[devices.points]]\nname = \"t\"\nregister = \"holding\"\naddress = 0\n\
                 [[devices.points.alarms]]\nkind = \"high\"\nalarm = 1.0\n\
                 [devices.points.alarms.confirmed_by]\npoint = \"{point}\"\nequals = {equals}\nfailure_mode = \"x\"\n\
                 [[devices.points]]\nname = \"fault\"\nregister = \"holding\"\naddress = 1\n"
            )
        };
        assert!(errors(&text("fault", "17")).is_empty());
        let errs = errors(&text("fualt", "17"));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.contains(
            "confirmed_by.point names `fualt`, which is not another point of this device"
        ));
        let errs = errors(&text("t", "17"));
        assert_eq!(errs.len(), 1, "not the rule's own point");
        let errs = errors(&text("fault", "nan"));
        assert!(errs[0].message.contains("finite"), "{:?}", errs[0].message);
    }

    #[test]
    fn allowlist_entries_must_be_public_keys() {
        let good = "ab".repeat(32);
        let text = format!(
            "[site]\nid = \"p\"\n[outcomes]\nstrict = true\nallowlist = [\" {good} \", \"{}\", \"xyz\"]\n",
            "ab".repeat(31)
        );
        let errs = errors(&text);
        let messages: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(errs.len(), 2, "{messages:?}");
        assert!(messages
            .iter()
            .all(|m| m.ends_with("is not a public key of 64 hex digits")));
        assert!(messages.iter().any(|m| m.starts_with("`xyz`")));
        let ok =
            format!("[site]\nid = \"p\"\n[outcomes]\nstrict = true\nallowlist = [\"{good}\"]\n");
        assert!(errors(&ok).is_empty());
    }

    #[test]
    fn arbitrary_garbage_never_panics() {
        for text in [
            "\u{0}\u{1}",
            "[[[",
            "devices = 3",
            "[site]\nid=1",
            "devices = [1, \"x\"]",
            "[[devices]]\npoints = 5\ntype=\"modbus_tcp\"",
        ] {
            assert!(parse_str(text, "t").is_err());
        }
    }
}
