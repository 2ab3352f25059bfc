//! `[sparkplug]`: the gateway as a Sparkplug B 3.0 edge node, so the plant's SCADA sees every
//! point, alarm and adapted level without configuring a tag.

use super::MqttConfig;
use serde::Deserialize;

/// `[sparkplug]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparkplugConfig {
    /// Publish as a Sparkplug B edge node. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// The Sparkplug group. Default `qis-edge`.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// The edge node id. Default the site id.
    #[serde(default)]
    pub edge_node_id: Option<String>,
    /// A primary host application: births wait for its `STATE` to say online.
    #[serde(default)]
    pub primary_host_id: Option<String>,
    /// The devices exposed, by name. Default every device.
    #[serde(default)]
    pub devices: Vec<String>,
    /// The points exposed, as `device/point`. Default every point of the exposed devices.
    #[serde(default)]
    pub points: Vec<String>,
    /// The broker, with the keys of `[mqtt]`. Default the local broker of `[mqtt]`.
    #[serde(default)]
    pub broker: Option<MqttConfig>,
}

fn default_group_id() -> String {
    "qis-edge".to_string()
}

impl Default for SparkplugConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            group_id: default_group_id(),
            edge_node_id: None,
            primary_host_id: None,
            devices: Vec::new(),
            points: Vec::new(),
            broker: None,
        }
    }
}

/// Why a Sparkplug id (group, edge node, device, host) is not one: empty, or holding a
/// character the topic namespace reserves.
pub fn id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("is empty")
    } else if id.contains(['/', '+', '#']) {
        Some("holds `/`, `+` or `#`, which Sparkplug topics reserve")
    } else {
        None
    }
}
