//! `[metrics]`: how often polled values are published.

use super::*;

/// `[metrics]`: publication of polled values on `qis/<site>/metrics/<device>/<point>` (or per
/// device: `layout`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// A point whose value changes is published at most once per this many milliseconds
    /// (its latest value wins). A change of quality is published at once. Default 1 000.
    #[serde(default = "default_metrics_min_interval_ms")]
    pub min_interval_ms: u64,
    /// A point whose value does not change is republished after this many milliseconds, so
    /// dashboards can tell "steady" from "gone". 0 publishes every poll. Default 60 000.
    #[serde(default = "default_metrics_max_interval_ms")]
    pub max_interval_ms: u64,
    /// `point` (default): one message per point on `qis/<site>/metrics/<device>/<point>`.
    /// `device`: one message per device and poll on `qis/<site>/metrics/<device>` holding
    /// every point due, `{"ts", "points": {"<point>": <the point's metric>}}`: far fewer
    /// messages for the same values, as Sparkplug's DDATA.
    #[serde(default)]
    pub layout: MetricsLayout,
}

/// How polled values are laid out on topics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsLayout {
    /// A topic per point.
    #[default]
    Point,
    /// A topic per device, every point due in one message.
    Device,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            min_interval_ms: default_metrics_min_interval_ms(),
            max_interval_ms: default_metrics_max_interval_ms(),
            layout: MetricsLayout::Point,
        }
    }
}

pub(super) fn default_metrics_min_interval_ms() -> u64 {
    1_000
}
pub(super) fn default_metrics_max_interval_ms() -> u64 {
    60_000
}
