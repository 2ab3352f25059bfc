//! The gateway's configuration: one TOML file, checked completely before anything starts.
//!
//! Every field below carries a doc comment because this module *is* the user manual for the
//! file; `config/example.toml` shows each field in use. Loading and the collection of every
//! error with its position live in `load.rs`.

mod alarm;
mod device;
mod load;
mod metrics;
mod modbus;
mod mqtt;
mod opcua;
mod outcomes;
mod point;
mod site;
mod sparkplug;
mod storage;
mod synthesis;
mod validate;
mod vibration;
mod web;

pub use alarm::*;
pub use device::*;
pub use metrics::*;
pub use modbus::*;
pub use mqtt::*;
pub use opcua::*;
pub use outcomes::*;
pub use point::*;
pub use site::*;
pub use sparkplug::*;
pub use storage::*;
pub use synthesis::SynthesisConfig;
pub use vibration::*;
pub use web::*;

pub use load::{load_file, parse_str, ConfigError, Diagnostic};

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[site]`: who this gateway is.
    pub site: SiteConfig,
    /// `[mqtt]`: the plant's local MQTT broker.
    pub mqtt: MqttConfig,
    /// `[metrics]`: how often polled values are published.
    pub metrics: MetricsConfig,
    /// `[[devices]]`: the field devices to poll, each tagged by `type`.
    pub devices: Vec<DeviceConfig>,
    /// `[uplink]`: the fleet broker outcome packets go to, with the same keys as `[mqtt]`.
    /// Absent: packets go to the local broker, for a bridge (e.g. mosquitto's) to carry.
    pub uplink: Option<MqttConfig>,
    /// `[outcomes]`: sharing confirmed outcomes with other plants.
    pub outcomes: OutcomesConfig,
    /// `[synthesis]`: how peers' packets move adaptable thresholds, and how trust moves.
    pub synthesis: SynthesisConfig,
    /// `[storage]`: history limits of the state database, and storage fault retries.
    pub storage: StorageConfig,
    /// `[web]`: the dashboard and the metrics endpoint.
    pub web: WebConfig,
    /// `[sparkplug]`: the gateway as a Sparkplug B edge node.
    pub sparkplug: SparkplugConfig,
}

impl Config {
    /// Every point with a context (its own, or its device's): device name, point name, the
    /// context and its address (its fingerprint at every level). A context whose fingerprint
    /// cannot be computed is left out (the loader has reported it).
    pub fn point_contexts(
        &self,
    ) -> impl Iterator<
        Item = (
            &str,
            &PointConfig,
            &crate::packet::Context,
            crate::packet::Address,
        ),
    > + '_ {
        self.devices.iter().flat_map(|d| {
            d.points().iter().filter_map(move |p| {
                let context = p.context.as_ref().or(d.context())?;
                let address = context.address().ok()?;
                Some((d.name(), p, context, address))
            })
        })
    }

    /// The uplink topic filters of every context here, each once: what the gateway subscribes
    /// to. A point's context at the most general level its adaptable rules accept (`match`;
    /// `full` for a point without one, so its own outcomes' topic is heard), and its
    /// fingerprint's v1 topic, where gateways of earlier versions publish. A filter another
    /// one covers is left out, so the broker delivers each packet once.
    pub fn context_topics(&self) -> Vec<String> {
        use crate::packet::MatchLevel;
        let mut topics: Vec<String> = Vec::new();
        for (_, p, _, address) in self.point_contexts() {
            let level = p
                .alarms
                .iter()
                .filter_map(|a| a.adapt.map(|a| a.match_level))
                .min()
                .unwrap_or(MatchLevel::Full);
            for t in [address.filter(level), address.full.topic()] {
                if !topics.contains(&t) {
                    topics.push(t);
                }
            }
        }
        let covered = |t: &String, by: &String| {
            t != by
                && t.split('/').count() == by.split('/').count()
                && t.split('/')
                    .zip(by.split('/'))
                    .all(|(a, b)| b == "+" || a == b)
        };
        topics
            .iter()
            .filter(|t| !topics.iter().any(|by| covered(t, by)))
            .cloned()
            .collect()
    }

    /// The equipment classes (fingerprints) a gateway asks the fleet about on joining (those
    /// of points with an adaptable rule) and hears requests for (those of every point with a
    /// context), each once.
    pub fn join_classes(&self) -> (Vec<String>, Vec<String>) {
        let (mut ask, mut hear) = (Vec::new(), Vec::new());
        for (_, p, _, address) in self.point_contexts() {
            let class = address.general[0].to_string();
            if p.alarms.iter().any(|a| a.adapt.is_some()) && !ask.contains(&class) {
                ask.push(class.clone());
            }
            if !hear.contains(&class) {
                hear.push(class);
            }
        }
        (ask, hear)
    }

    /// The fleet broker: `[uplink]`, or the local broker when it is absent.
    pub fn uplink_broker(&self) -> &MqttConfig {
        self.uplink.as_ref().unwrap_or(&self.mqtt)
    }
}
