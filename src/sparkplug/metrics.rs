//! What the edge node shows: each exposed device's metrics, named, aliased and typed once
//! from the configuration, and their values read from the gateway's live state.
//!
//! | metric | datatype | value | properties |
//! |---|---|---|---|
//! | `<point>` | the point's (Int16…UInt64, Float, Double, Boolean, String; Double when scaled) | its value, `is_null` before the first read | `Quality` (Int32: 192 good, 0 bad, 500 stale), `engUnit` |
//! | `<point>/Alarms/<rule>/State` | String | `normal`, `active`, `acknowledged`, `cleared` | |
//! | `<point>/Alarms/<rule>/Severity` | String | `warning`, `alarm`, or empty | |
//! | `<point>/Alarms/<rule>/Level` | Double | the level of the active severity, or the rule's alarm level | `baseline`, `floor`, `ceiling` for adaptable rules |
//! | `<point>/Alarms/<rule>/Ack` | Boolean | false; writing true by DCMD acknowledges | |
//! | `<point>/Alarms/<rule>/Shelve Hours` | Double | 0; writing hours by DCMD shelves (0 unshelves) | |
//! | `Device Health/Link` | Boolean | the link is up | |
//! | `Device Health/Polls`, `…/Timeouts`, `…/Exceptions`, `…/Transport Errors` | UInt64 | the poll statistics | |
//! | `Device Health/Latency ms` | Double | mean request latency | |

use super::proto::{datatype as dt, Metric, PropertyData, PropertySet, Value};
use crate::config::{Config, DataType, PointAddress};
use crate::core::View;
use crate::sources::Quality;

/// Where a metric's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Point {
        device: usize,
        point: usize,
    },
    State {
        device: usize,
        point: usize,
        rule: usize,
    },
    Severity {
        device: usize,
        point: usize,
        rule: usize,
    },
    Level {
        device: usize,
        point: usize,
        rule: usize,
        threshold: String,
    },
    Ack {
        device: usize,
        point: usize,
        rule: usize,
    },
    Shelve {
        device: usize,
        point: usize,
        rule: usize,
    },
    Link {
        device: usize,
    },
    Health {
        device: usize,
        what: Health,
    },
}

/// A poll statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Health {
    Polls,
    Timeouts,
    Exceptions,
    TransportErrors,
    Latency,
}

/// One metric: its name, alias and datatype for the whole life of the process.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub name: String,
    pub alias: u64,
    pub datatype: u32,
    pub source: Source,
}

/// One exposed device.
#[derive(Debug, Clone)]
pub struct Device {
    pub name: String,
    pub index: usize,
    pub metrics: Vec<Spec>,
}

/// Aliases of the node's own metrics: `bdSeq`, `Node Control/Rebirth`, then [`NODE_INFO`].
pub const NODE_ALIASES: u64 = 2 + NODE_INFO.len() as u64;

/// The gateway's own state, as node metrics (aliases 3 on), reported by NDATA when it changes.
pub const NODE_INFO: [(&str, u32); 5] = [
    ("Gateway/Local Broker", dt::BOOLEAN),
    ("Gateway/Fleet Link", dt::STRING),
    ("Gateway/Outbox", dt::UINT64),
    ("Gateway/Peer Packets Applied", dt::UINT64),
    ("Gateway/Storage Fault", dt::STRING),
];

/// The node metrics of [`NODE_INFO`] from the live state, as (alias, value), in order.
pub fn node_info(live: &crate::web::Live) -> Vec<(u64, Option<Value>)> {
    let link = serde_json::to_value(live.view.uplink)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let values = [
        Some(Value::Boolean(live.local_broker)),
        Some(Value::String(link)),
        live.outbox.map(|n| Value::Long(n as u64)),
        Some(Value::Long(live.view.intake.applied)),
        Some(Value::String(
            live.storage_fault.clone().unwrap_or_default(),
        )),
    ];
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| (3 + i as u64, v))
        .collect()
}

fn point_datatype(p: &crate::config::PointConfig) -> u32 {
    let scaled = p.scale != 1.0 || p.offset != 0.0;
    match &p.address {
        PointAddress::Register(r) => match r.data_type {
            DataType::Bool | DataType::Bit => dt::BOOLEAN,
            DataType::String => dt::STRING,
            _ if scaled => dt::DOUBLE,
            DataType::U16 => dt::UINT16,
            DataType::I16 => dt::INT16,
            DataType::U32 => dt::UINT32,
            DataType::I32 => dt::INT32,
            DataType::U64 => dt::UINT64,
            DataType::I64 => dt::INT64,
            DataType::F32 => dt::FLOAT,
            DataType::F64 => dt::DOUBLE,
        },
        _ => dt::DOUBLE,
    }
}

/// Metrics in the making: aliases run over the whole node, after its own.
struct Builder {
    alias: u64,
    metrics: Vec<Spec>,
}

impl Builder {
    fn push(&mut self, name: String, datatype: u32, source: Source) {
        self.alias += 1;
        self.metrics.push(Spec {
            name,
            alias: self.alias,
            datatype,
            source,
        });
    }

    /// A point's value and its rules' metrics.
    fn point(&mut self, device: &crate::config::DeviceConfig, d: usize, p: usize) {
        let point = &device.points()[p];
        self.push(
            point.name.clone(),
            point_datatype(point),
            Source::Point {
                device: d,
                point: p,
            },
        );
        for (r, rule) in point.alarms.iter().enumerate() {
            let base = format!("{}/Alarms/{}", point.name, rule.name());
            let threshold = format!("{}/{}/{}", device.name(), point.name, rule.name());
            let at = |what: fn(usize, usize, usize) -> Source| what(d, p, r);
            self.push(
                format!("{base}/State"),
                dt::STRING,
                at(|device, point, rule| Source::State {
                    device,
                    point,
                    rule,
                }),
            );
            self.push(
                format!("{base}/Severity"),
                dt::STRING,
                at(|device, point, rule| Source::Severity {
                    device,
                    point,
                    rule,
                }),
            );
            self.push(
                format!("{base}/Level"),
                dt::DOUBLE,
                Source::Level {
                    device: d,
                    point: p,
                    rule: r,
                    threshold,
                },
            );
            self.push(
                format!("{base}/Ack"),
                dt::BOOLEAN,
                at(|device, point, rule| Source::Ack {
                    device,
                    point,
                    rule,
                }),
            );
            self.push(
                format!("{base}/Shelve Hours"),
                dt::DOUBLE,
                at(|device, point, rule| Source::Shelve {
                    device,
                    point,
                    rule,
                }),
            );
        }
    }

    /// A device's link and poll statistics.
    fn health(&mut self, d: usize) {
        self.push(
            "Device Health/Link".into(),
            dt::BOOLEAN,
            Source::Link { device: d },
        );
        for (name, what, datatype) in [
            ("Polls", Health::Polls, dt::UINT64),
            ("Timeouts", Health::Timeouts, dt::UINT64),
            ("Exceptions", Health::Exceptions, dt::UINT64),
            ("Transport Errors", Health::TransportErrors, dt::UINT64),
            ("Latency ms", Health::Latency, dt::DOUBLE),
        ] {
            self.push(
                format!("Device Health/{name}"),
                datatype,
                Source::Health { device: d, what },
            );
        }
    }
}

/// The devices `[sparkplug] devices` names (every one by default), with their metrics; aliases
/// run over the whole node, after its own.
pub fn layout(config: &Config) -> Vec<Device> {
    let wanted = &config.sparkplug.devices;
    let mut alias = NODE_ALIASES;
    let mut out = Vec::new();
    for (d, device) in config.devices.iter().enumerate() {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == device.name()) {
            continue;
        }
        let mut b = Builder {
            alias,
            metrics: Vec::new(),
        };
        let points = &config.sparkplug.points;
        for (p, point) in device.points().iter().enumerate() {
            let name = format!("{}/{}", device.name(), point.name);
            if points.is_empty() || points.contains(&name) {
                b.point(device, d, p);
            }
        }
        b.health(d);
        alias = b.alias;
        out.push(Device {
            name: device.name().to_string(),
            index: d,
            metrics: b.metrics,
        });
    }
    out
}

/// A metric's current value, its properties and timestamp (ms), from the live state; the
/// value is None where there is none yet (`is_null`).
pub struct Reading {
    pub value: Option<Value>,
    pub properties: Option<PropertySet>,
    pub timestamp: Option<u64>,
}

fn typed(datatype: u32, v: f64) -> Value {
    match datatype {
        dt::BOOLEAN => Value::Boolean(v != 0.0),
        dt::FLOAT => Value::Float(v as f32),
        dt::DOUBLE => Value::Double(v),
        dt::INT8 | dt::INT16 | dt::INT32 => Value::Int(v as i32 as u32),
        dt::UINT8 | dt::UINT16 | dt::UINT32 => Value::Int(v as u32),
        dt::INT64 => Value::Long(v as i64 as u64),
        _ => Value::Long(v as u64),
    }
}

/// The Sparkplug quality code of a point's quality.
pub fn quality_code(q: Quality) -> u32 {
    match q {
        Quality::Good => 192,
        Quality::Bad => 0,
        Quality::Stale => 500,
    }
}

fn ms(t: std::time::SystemTime) -> Option<u64> {
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

fn plain(value: Option<Value>) -> Reading {
    Reading {
        value,
        properties: None,
        timestamp: None,
    }
}

/// A rule's status, and the alarms view it is in.
fn rule_of(
    view: &View,
    device: usize,
    point: usize,
    rule: usize,
) -> Option<(
    &crate::core::view::AlarmsView,
    &crate::mqtt::payload::RuleStatus,
)> {
    view.alarms
        .iter()
        .find(|a| a.point.device == device && a.point.point == point)
        .and_then(|a| a.rules.get(rule).map(|r| (a, r)))
}

fn read_point(spec: &Spec, view: &View, device: usize, point: usize) -> Reading {
    let Some(p) = view
        .points
        .iter()
        .find(|p| p.id.device == device && p.id.point == point)
    else {
        return plain(None);
    };
    let mut properties = PropertySet::default();
    properties.push(
        "Quality",
        dt::INT32,
        PropertyData::Int(quality_code(p.quality)),
    );
    if !p.unit.is_empty() {
        properties.push("engUnit", dt::STRING, PropertyData::String(p.unit.clone()));
    }
    let value = match (&p.text, p.value) {
        (Some(t), _) if spec.datatype == dt::STRING => Some(Value::String(t.clone())),
        (_, Some(v)) if spec.datatype != dt::STRING => Some(typed(spec.datatype, v)),
        _ => None,
    };
    Reading {
        value,
        properties: Some(properties),
        timestamp: ms(p.read_at),
    }
}

fn read_level(view: &View, device: usize, point: usize, rule: usize, threshold: &str) -> Reading {
    let adapted = view.thresholds.iter().find(|t| t.rule == threshold);
    let level = rule_of(view, device, point, rule).and_then(|(a, s)| {
        s.threshold
            .or_else(|| a.levels.get(rule).and_then(|l| l.alarm.or(l.warning)))
    });
    let properties = adapted.map(|t| {
        let mut set = PropertySet::default();
        set.push(
            "baseline",
            dt::DOUBLE,
            PropertyData::Double(t.effective.baseline),
        );
        set.push("floor", dt::DOUBLE, PropertyData::Double(t.effective.floor));
        set.push(
            "ceiling",
            dt::DOUBLE,
            PropertyData::Double(t.effective.ceiling),
        );
        set
    });
    Reading {
        value: adapted
            .map(|t| t.effective.value)
            .or(level)
            .map(Value::Double),
        properties,
        timestamp: None,
    }
}

fn read_health(view: &View, device: usize, what: Health) -> Reading {
    plain(
        view.devices
            .get(device)
            .and_then(|d| d.stats.as_ref())
            .map(|s| match what {
                Health::Polls => Value::Long(s.polls),
                Health::Timeouts => Value::Long(s.timeouts),
                Health::Exceptions => Value::Long(s.exceptions),
                Health::TransportErrors => Value::Long(s.transport_errors),
                Health::Latency => Value::Double(s.latency_ms_avg),
            }),
    )
}

/// Reads `spec` from `view`.
pub fn read(spec: &Spec, view: &View) -> Reading {
    match &spec.source {
        Source::Point { device, point } => read_point(spec, view, *device, *point),
        Source::State {
            device,
            point,
            rule,
        } => plain(
            rule_of(view, *device, *point, *rule)
                .map(|(_, s)| Value::String(format!("{:?}", s.state).to_lowercase())),
        ),
        Source::Severity {
            device,
            point,
            rule,
        } => plain(rule_of(view, *device, *point, *rule).map(|(_, s)| {
            Value::String(
                s.severity
                    .map(|v| format!("{v:?}").to_lowercase())
                    .unwrap_or_default(),
            )
        })),
        Source::Level {
            device,
            point,
            rule,
            threshold,
        } => read_level(view, *device, *point, *rule, threshold),
        Source::Ack { .. } => plain(Some(Value::Boolean(false))),
        Source::Shelve { .. } => plain(Some(Value::Double(0.0))),
        Source::Link { device } => plain(
            view.devices
                .get(*device)
                .and_then(|d| d.link_up)
                .map(Value::Boolean),
        ),
        Source::Health { device, what } => read_health(view, *device, *what),
    }
}

/// The metric as a birth shows it: name, alias, datatype, value, properties.
pub fn birth_metric(spec: &Spec, reading: Reading) -> Metric {
    Metric {
        name: Some(spec.name.clone()),
        alias: Some(spec.alias),
        datatype: Some(spec.datatype),
        timestamp: reading.timestamp,
        is_null: reading.value.is_none().then_some(true),
        value: reading.value,
        properties: reading.properties,
        ..Default::default()
    }
}

/// The metric as data shows it: alias only, its value and what changed of its properties.
pub fn data_metric(spec: &Spec, reading: Reading) -> Metric {
    Metric {
        alias: Some(spec.alias),
        timestamp: reading.timestamp,
        is_null: reading.value.is_none().then_some(true),
        value: reading.value,
        properties: reading.properties,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sparkplug: &str) -> Config {
        crate::config::parse_str(
            &format!(
                "[site]\nid = \"s\"\n[sparkplug]\nenabled = true\n{sparkplug}\n\
                 [[devices]]\ntype = \"modbus_tcp\"\nname = \"pump\"\nhost = \"127.0.0.1\"\n\
                 [[devices.points]]\nname = \"a\"\nregister = \"holding\"\naddress = 0\n\
                 [[devices.points.alarms]]\nkind = \"high\"\nalarm = 5.0\n\
                 [[devices.points]]\nname = \"b\"\nregister = \"coil\"\naddress = 0\n\
                 [[devices]]\ntype = \"modbus_tcp\"\nname = \"fan\"\nhost = \"127.0.0.1\"\n\
                 [[devices.points]]\nname = \"c\"\nregister = \"holding\"\naddress = 0\n\
                 data_type = \"i32\"\nscale = 0.1\n"
            ),
            "t",
        )
        .unwrap()
    }

    #[test]
    fn every_metric_has_a_node_wide_alias_and_the_points_datatype() {
        let devices = layout(&config(""));
        assert_eq!(devices.len(), 2);
        let all: Vec<&Spec> = devices.iter().flat_map(|d| &d.metrics).collect();
        let mut aliases: Vec<u64> = all.iter().map(|s| s.alias).collect();
        aliases.sort_unstable();
        aliases.dedup();
        assert_eq!(aliases.len(), all.len(), "unique");
        assert!(aliases[0] > NODE_ALIASES);
        let find = |n: &str| all.iter().find(|s| s.name == n).unwrap().datatype;
        assert_eq!(find("a"), dt::UINT16);
        assert_eq!(find("b"), dt::BOOLEAN);
        assert_eq!(find("c"), dt::DOUBLE, "scaled");
        assert_eq!(find("a/Alarms/high/Ack"), dt::BOOLEAN);
    }

    #[test]
    fn only_the_devices_and_points_asked_for_are_exposed() {
        let devices = layout(&config("devices = [\"pump\"]\npoints = [\"pump/b\"]\n"));
        assert_eq!(devices.len(), 1);
        let names: Vec<&str> = devices[0].metrics.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"b") && !names.contains(&"a"), "{names:?}");
        assert!(names.contains(&"Device Health/Link"));
    }
}
