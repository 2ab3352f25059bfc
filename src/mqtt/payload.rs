//! JSON payloads published on the local broker. The README documents each field; these types
//! are the single source of that schema.

use crate::alarms::{AlarmState, Severity};
use crate::analysis::spc::{Capability, ChartKind, CusumPoint, EwmaPoint, RuleSet};
use crate::sources::Quality;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-22T03:04:05.678Z`.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The JSON of the retained status message.
pub fn status_payload(
    site: &str,
    online: bool,
    reason: Option<&str>,
    at: Option<SystemTime>,
    faults: &[&str],
) -> Vec<u8> {
    let status = Status {
        status: if online { "online" } else { "offline" }.into(),
        site: site.to_string(),
        version: env!("CARGO_PKG_VERSION").into(),
        reason: reason.map(str::to_string),
        faults: faults.iter().map(|f| f.to_string()).collect(),
        ts: at.map(timestamp),
    };
    serde_json::to_vec(&status).unwrap_or_default()
}

/// `qis/<site>/status` (retained).
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    /// `online` or `offline`.
    pub status: String,
    /// Site id.
    pub site: String,
    /// Gateway version.
    pub version: String,
    /// Why offline: `shutdown` (clean stop) or `connection_lost` (the last will).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What is wrong while online: `storage` (the state database takes no writes; see
    /// `stats/storage`). Absent when nothing is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
    /// When the status was set (absent in the last will, which the broker sends later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
}

/// `qis/<site>/metrics/<device>/<point>`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Metric {
    /// Engineering value (the last good one when quality is not good; null if none yet, and
    /// for string points).
    pub value: Option<f64>,
    /// Text of a string point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Engineering unit.
    pub unit: String,
    /// `good`, `bad` or `stale`.
    pub quality: Quality,
    /// Why the quality is not good.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the value was read.
    pub ts: String,
}

/// `qis/<site>/metrics/<device>` with `[metrics] layout = "device"`: the points of one
/// device due after a poll, each as its [`Metric`].
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceMetrics {
    /// When the newest of them was read.
    pub ts: String,
    /// By point name.
    pub points: serde_json::Map<String, serde_json::Value>,
}

/// One rule's state inside an [`Alert`].
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct RuleStatus {
    /// Rule name.
    pub rule: String,
    /// Alarm id of the current or last raise, `<device>/<point>/<rule>/<occurrence>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_id: Option<String>,
    /// `normal`, `active`, `acknowledged` or `cleared`.
    pub state: AlarmState,
    /// `warning`, `alarm`, or null when not raised.
    pub severity: Option<Severity>,
    /// Whether the current or last raise was acknowledged.
    pub acknowledged: bool,
    /// Level of the current severity.
    pub threshold: Option<f64>,
    /// When it was raised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raised_at: Option<String>,
    /// When the state last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<String>,
    /// While an engineer has the rule shelved: until when. A shelved rule evaluates and
    /// records, but its transitions are not published as `alarm` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shelved_until: Option<String>,
    /// Who shelved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shelved_by: Option<String>,
}

/// `qis/<site>/alerts/<device>/<point>` (retained): the point's alarm state. The top-level
/// fields repeat those of the rule that needs the most attention; `rules` lists all.
#[derive(Debug, Serialize, Deserialize)]
pub struct Alert {
    /// Site id.
    pub site: String,
    /// Device name.
    pub device: String,
    /// Point name.
    pub point: String,
    /// Engineering unit.
    pub unit: String,
    /// Latest value.
    pub value: Option<f64>,
    /// Quality of the latest value.
    pub quality: Quality,
    /// Headline rule.
    #[serde(flatten)]
    pub headline: RuleStatus,
    /// Every rule on the point.
    pub rules: Vec<RuleStatus>,
    /// The latest SPC finding that changed the `spc` rule, for points with SPC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spc: Option<SpcDetail>,
}

/// What an SPC chart found at one point: in `alarm` events of the `spc` rule and in alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpcDetail {
    /// `xbar-r`, `xbar-s` or `imr`.
    pub chart: ChartKind,
    /// `western-electric` or `nelson`.
    pub rule_set: RuleSet,
    /// 1-based index of the charted point (subgroup) since start.
    pub index: usize,
    /// The charted statistic (X̄ or the individual value).
    pub statistic: f64,
    /// Center line.
    pub center: f64,
    /// Lower control limit.
    pub lcl: f64,
    /// Upper control limit.
    pub ucl: f64,
    /// Rule numbers violated on the location chart.
    pub rules: Vec<u8>,
    /// Rule numbers violated on the dispersion chart (R, S or MR).
    pub dispersion_rules: Vec<u8>,
    /// `upper` or `lower` when the CUSUM crossed its decision interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cusum: Option<String>,
    /// True when the EWMA left its limits.
    pub ewma: bool,
}

/// `qis/<site>/metrics/<device>/<point>/spc`: one charted point with the chart's limits.
#[derive(Debug, Serialize, Deserialize)]
pub struct SpcMetric {
    /// `xbar-r`, `xbar-s` or `imr`.
    pub chart: ChartKind,
    /// 1-based index of the point since start.
    pub index: usize,
    /// True for points of the calibration (phase I).
    pub calibration: bool,
    /// X̄ or the individual value.
    pub statistic: f64,
    /// R, s or moving range (null for the first individual).
    pub dispersion: Option<f64>,
    /// Process sigma.
    pub sigma: f64,
    /// Center line of the location chart.
    pub center: f64,
    /// Lower control limit.
    pub lcl: f64,
    /// Upper control limit.
    pub ucl: f64,
    /// Center line of the dispersion chart.
    pub dispersion_center: f64,
    /// Its lower limit.
    pub dispersion_lcl: f64,
    /// Its upper limit.
    pub dispersion_ucl: f64,
    /// Rule numbers violated on the location chart.
    pub violations: Vec<u8>,
    /// Rule numbers violated on the dispersion chart.
    pub dispersion_violations: Vec<u8>,
    /// CUSUM sums (lower ≤ 0) and their violations, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cusum: Option<CusumPoint>,
    /// EWMA statistic and limits, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ewma: Option<EwmaPoint>,
    /// Cp, Cp_l, Cp_u, Cpk, Cpm, when specification limits are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<Capability>,
    /// When the observation that completed the point was read.
    pub ts: String,
}

/// `qis/<site>/events`: one per alarm transition, device link change or rejected command.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An alarm rule changed state or severity.
    Alarm {
        /// Site id.
        site: String,
        /// Device name.
        device: String,
        /// Point name.
        point: String,
        /// Rule name.
        rule: String,
        /// `<device>/<point>/<rule>/<occurrence>`.
        alarm_id: String,
        /// State before.
        from: AlarmState,
        /// State after.
        to: AlarmState,
        /// Severity after (null once cleared).
        severity: Option<Severity>,
        /// Value that caused it (null for acknowledgements).
        value: Option<f64>,
        /// Level involved.
        threshold: Option<f64>,
        /// Engineering unit.
        unit: String,
        /// When the condition began to hold (raises after an on-delay).
        #[serde(skip_serializing_if = "Option::is_none")]
        condition_since: Option<String>,
        /// Who acknowledged (from the command's `by`).
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// For the `spc` rule: what the chart found.
        #[serde(skip_serializing_if = "Option::is_none")]
        spc: Option<Box<SpcDetail>>,
        /// When.
        ts: String,
    },
    /// An engineer shelved a rule: it evaluates and records, but does not alert, until then.
    Shelved {
        /// Site id.
        site: String,
        /// `<device>/<point>/<rule>`.
        rule: String,
        /// Until when.
        until: String,
        /// Who.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// Why.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// When.
        ts: String,
    },
    /// A shelved rule alerts again: unshelved by an engineer, or its time was up.
    Unshelved {
        /// Site id.
        site: String,
        /// `<device>/<point>/<rule>`.
        rule: String,
        /// `engineer` or `expired`.
        reason: String,
        /// Who (for `engineer`).
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// The rule's state now (an `active` rule alerts at once).
        state: AlarmState,
        /// When.
        ts: String,
    },
    /// A device's link came up or went down.
    Device {
        /// Site id.
        site: String,
        /// Device name.
        device: String,
        /// `up` or `down`.
        link: String,
        /// Why it went down.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// When.
        ts: String,
    },
    /// An engineer confirmed or refuted an alarm.
    Outcome {
        /// Site id.
        site: String,
        /// The alarm answered.
        alarm_id: String,
        /// `confirmed` or `refuted`.
        outcome: crate::outcomes::Outcome,
        /// Failure mode found (confirmations).
        #[serde(skip_serializing_if = "Option::is_none")]
        failure_mode: Option<String>,
        /// Free text.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// Who answered.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// Seconds from the alarm to the confirmation.
        #[serde(skip_serializing_if = "Option::is_none")]
        lead_time_s: Option<u64>,
        /// Context fingerprint of the point, hex.
        #[serde(skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
        /// The signal pattern, e.g. `process_value:high` (absent for an alarm no longer known).
        #[serde(skip_serializing_if = "Option::is_none")]
        pattern: Option<crate::outcomes::Pattern>,
        /// Confirmations of this pattern in this context so far.
        validations: u32,
        /// Refutations so far.
        refutations: u32,
        /// When.
        ts: String,
    },
    /// A verified outcome packet from another plant for one of this gateway's contexts.
    PeerOutcome {
        /// Site id (this gateway's).
        site: String,
        /// Context fingerprint, hex.
        fingerprint: String,
        /// The peer's public key, hex: its only identity.
        source: String,
        /// The peer's sequence number.
        seq: u64,
        /// The feature its alarm watched.
        feature: crate::packet::Feature,
        /// `high` or `low`.
        direction: crate::packet::Direction,
        /// The threshold that caught it.
        threshold: f64,
        /// Its unit.
        unit: String,
        /// `failure_confirmed`, `defect_confirmed` or `false_alarm`.
        outcome: crate::packet::OutcomeKind,
        /// The failure mode.
        failure_mode: crate::packet::FailureMode,
        /// The peer's confidence.
        confidence: f64,
        /// The peer's confirmations of the pattern.
        validations: u32,
        /// The peer's refutations.
        refutations: u32,
        /// Alarm to confirmation, seconds.
        lead_time_s: u32,
        /// The local rules (`device/point/rule`) whose proposals it set or withdrew; empty
        /// when no adaptable rule here watches its pattern.
        applied_to: Vec<String>,
        /// When received.
        ts: String,
    },
    /// A peer's trust changed because an alarm its advice moved was answered here.
    Trust {
        /// Site id.
        site: String,
        /// The peer's public key, hex.
        source: String,
        /// Trust before.
        from: f64,
        /// Trust after.
        to: f64,
        /// The answered alarm.
        alarm_id: String,
        /// `confirmed` or `refuted`.
        outcome: crate::outcomes::Outcome,
        /// When.
        ts: String,
    },
    /// A command on `qis/<site>/cmd/...` could not be carried out.
    CommandRejected {
        /// Site id.
        site: String,
        /// The command topic.
        topic: String,
        /// Why.
        reason: String,
        /// When.
        ts: String,
    },
}

/// Contributions a threshold message lists: the heaviest, so the message stays far below any
/// broker's limit however many peers propose (about 300 bytes each).
pub const PROVENANCE_SHOWN: usize = 10;

/// Payload of `qis/<site>/cmd/confirm` and `qis/<site>/cmd/refute`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerCommand {
    /// The alarm answered, as in its events.
    pub alarm_id: String,
    /// The failure mode found; required to confirm.
    pub failure_mode: Option<String>,
    /// Free text.
    pub note: Option<String>,
    /// Who answers.
    pub by: Option<String>,
}

/// Payload of `qis/<site>/cmd/ack`: either `alarm_id`, or `device` + `point` (+ `rule`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AckCommand {
    /// `<device>/<point>/<rule>/<occurrence>` as in the alert.
    pub alarm_id: Option<String>,
    /// Device name.
    pub device: Option<String>,
    /// Point name.
    pub point: Option<String>,
    /// Rule name; all rules of the point when absent.
    pub rule: Option<String>,
    /// Who acknowledges, recorded in the event.
    pub by: Option<String>,
}

/// `qis/<site>/cmd/shelve` and `cmd/unshelve`: which rule, for how long, by whom.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ShelveCommand {
    /// `<device>/<point>/<rule>/<occurrence>` as in the alert.
    pub alarm_id: Option<String>,
    /// Device name.
    pub device: Option<String>,
    /// Point name.
    pub point: Option<String>,
    /// Rule name; all rules of the point when absent.
    pub rule: Option<String>,
    /// Hours to shelve for (shelve only): more than 0, at most 720.
    pub hours: Option<f64>,
    /// Why (shelve only).
    pub note: Option<String>,
    /// Who.
    pub by: Option<String>,
}

/// Retained on `qis/<site>/thresholds/<device>/<point>/<rule>`: the level an adaptable rule
/// uses, and why.
#[derive(Debug, Serialize)]
pub struct Threshold {
    /// Site id.
    pub site: String,
    /// Device name.
    pub device: String,
    /// Point name.
    pub point: String,
    /// Rule name.
    pub rule: String,
    /// Which level adapts: `warning` or `alarm`.
    pub level: &'static str,
    /// Engineering unit.
    pub unit: String,
    /// The level in use, its configured baseline, rails and provenance: the
    /// [`PROVENANCE_SHOWN`] heaviest contributions.
    #[serde(flatten)]
    pub effective: crate::synthesis::Effective,
    /// How many live proposals there are in all (the provenance shows the heaviest).
    pub proposals: usize,
    /// When it was last computed.
    pub ts: String,
}
