//! The read model: what the gateway knows now, as plain data. The local MQTT payloads are built
//! from its parts; [`super::Core::view`] gives a whole snapshot for readers that show the live
//! state (a dashboard, a SCADA bridge, a metrics endpoint) without reaching into the core.

use crate::alarms::PointId;
use crate::intake::IntakeCounts;
use crate::mqtt::payload::{RuleStatus, SpcDetail};
use crate::mqtt::UplinkState;
use crate::sources::{DeviceStats, Quality};
use crate::synthesis::Effective;
use std::collections::VecDeque;
use std::time::SystemTime;

/// Values of a point's history ring.
pub const HISTORY_LEN: usize = 64;

/// A point's live state.
#[derive(Debug, Clone, PartialEq)]
pub struct PointView {
    /// Where it is in the configuration.
    pub id: PointId,
    /// Device name.
    pub device: String,
    /// Point name.
    pub name: String,
    /// Engineering unit.
    pub unit: String,
    /// Latest good value (kept while the quality is bad or stale).
    pub value: Option<f64>,
    /// Latest text of a string point.
    pub text: Option<String>,
    /// Quality of the latest read.
    pub quality: Quality,
    /// Why the quality is not good.
    pub error: Option<String>,
    /// When it was last read.
    pub read_at: SystemTime,
    /// The values published, oldest first, at most [`HISTORY_LEN`].
    pub history: VecDeque<(SystemTime, f64)>,
}

impl PointView {
    /// Remembers a published value.
    pub fn record(&mut self, at: SystemTime, value: f64) {
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back((at, value));
    }
}

/// A point's alarm rules.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmsView {
    /// The point.
    pub point: PointId,
    /// Every rule's state, with the alarm id of its current or last raise.
    pub rules: Vec<RuleStatus>,
    /// The latest SPC finding that changed its `spc` rule.
    pub spc: Option<SpcDetail>,
}

/// An adaptable rule's effective level.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdView {
    /// `<device>/<point>/<rule>`.
    pub rule: String,
    /// The level in use, its baseline, rails and provenance.
    pub effective: Effective,
}

/// A device's link and poll statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceView {
    /// Device name.
    pub name: String,
    /// Whether its link is up (None until it first reports).
    pub link_up: Option<bool>,
    /// Why the link went down last.
    pub last_error: Option<String>,
    /// Its latest poll statistics.
    pub stats: Option<DeviceStats>,
}

/// The whole live state.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Site id.
    pub site: String,
    /// Every device.
    pub devices: Vec<DeviceView>,
    /// Every point.
    pub points: Vec<PointView>,
    /// Every point's alarm rules.
    pub alarms: Vec<AlarmsView>,
    /// Every adaptable rule.
    pub thresholds: Vec<ThresholdView>,
    /// Trust of the peers answered here (hex public key → trust).
    pub trust: Vec<(String, f64)>,
    /// Peers' packets, by what became of them.
    pub intake: IntakeCounts,
    /// The fleet connection.
    pub uplink: UplinkState,
}
