//! The read model: what the gateway knows now, as plain data. The local MQTT payloads are built
//! from its parts; [`super::Core::view`] gives a whole snapshot for readers that show the live
//! state (a dashboard, a SCADA bridge, a metrics endpoint) without reaching into the core.

use crate::alarms::PointId;
pub use crate::analysis::spc::{ChartKind, Violations};
use crate::intake::IntakeCounts;
use crate::mqtt::payload::{RuleStatus, SpcDetail};
use crate::mqtt::UplinkState;
use crate::outcomes::Answer;
use crate::sources::vibration::SpectrumSnapshot;
use crate::sources::{DeviceStats, Quality};
use crate::synthesis::Effective;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

/// Buckets of a point's trend: `[web] trend_minutes` divided into this many, each keeping the
/// least, greatest and last good value read in its span.
pub const TREND_BUCKETS: usize = 360;

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
    /// Its good values over the last `[web] trend_minutes`.
    pub trend: Trend,
    /// The last charted points of its control chart, when it has one.
    pub spc_chart: Option<SpcChart>,
}

/// Charted points a control chart keeps for display.
pub const SPC_CHART_POINTS: usize = 100;

/// A control chart's last [`SPC_CHART_POINTS`] points, each with the limits it was judged by.
#[derive(Debug, Clone, PartialEq)]
pub struct SpcChart {
    /// `xbar-r`, `xbar-s` or `imr`.
    pub kind: ChartKind,
    /// Oldest first.
    pub points: VecDeque<ChartPoint>,
}

/// One charted point (a subgroup's X̄ or an individual) and its dispersion (R, s or MR).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartPoint {
    /// 1-based index since start.
    pub index: usize,
    /// A calibration (phase I) point.
    pub calibration: bool,
    /// X̄ or the individual value.
    pub statistic: f64,
    /// Centre line and control limits of the location chart.
    pub center: f64,
    /// Lower control limit.
    pub lcl: f64,
    /// Upper control limit.
    pub ucl: f64,
    /// R, s or the moving range (None for the first individual).
    pub dispersion: Option<f64>,
    /// Centre line and limits of the dispersion chart: centre, lower, upper.
    pub dispersion_limits: [f64; 3],
    /// Rules violated on the location chart.
    pub violations: Violations,
    /// Rules violated on the dispersion chart.
    pub dispersion_violations: Violations,
}

impl SpcChart {
    /// An empty chart of `kind`.
    pub fn new(kind: ChartKind) -> Self {
        Self {
            kind,
            points: VecDeque::with_capacity(SPC_CHART_POINTS),
        }
    }

    /// Adds a charted point, dropping the oldest beyond [`SPC_CHART_POINTS`].
    pub fn push(&mut self, point: ChartPoint) {
        if self.points.len() == SPC_CHART_POINTS {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }
}

/// One span of a trend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Start of the span, Unix seconds.
    pub start: u32,
    /// Least good value read in it.
    pub min: f32,
    /// Greatest good value read in it.
    pub max: f32,
    /// Last good value read in it.
    pub last: f32,
}

/// A span's values; NaN where no good value was read.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slot {
    min: f32,
    max: f32,
    last: f32,
}

const EMPTY: Slot = Slot {
    min: f32::NAN,
    max: f32::NAN,
    last: f32::NAN,
};

/// Spans per shared block of a trend.
const BLOCK: usize = 30;

/// A point's good values over a window, decimated on arrival into [`TREND_BUCKETS`] spans of
/// least, greatest and last value (12 bytes each, about 4.3 KiB per point when full): spikes survive as
/// the span's extremes, and a span with no good read is missing (a gap).
///
/// The spans live in a ring indexed by time, in blocks of 30 shared between the core and its
/// snapshots: a snapshot copies 12 pointers, and a value read afterwards copies only its own
/// block (360 bytes) rather than the whole ring.
#[derive(Debug, Clone, Default)]
pub struct Trend {
    /// Span width, seconds; 0: not kept.
    pub span_s: u32,
    /// Number (start / span) of the newest span written.
    newest: Option<u32>,
    /// The ring: span `n` at `n % TREND_BUCKETS`.
    blocks: Vec<Arc<[Slot; BLOCK]>>,
}

impl PartialEq for Trend {
    fn eq(&self, other: &Self) -> bool {
        self.span_s == other.span_s && self.buckets().eq(other.buckets())
    }
}

impl Trend {
    /// A trend over `minutes` (0: none).
    pub fn new(minutes: u32) -> Self {
        Self {
            span_s: (minutes.saturating_mul(60) / TREND_BUCKETS as u32).max(u32::from(minutes > 0)),
            newest: None,
            // Every block starts as the same empty one, copied on its first write: a trend costs
            // only the blocks its window has filled.
            #[allow(clippy::rc_clone_in_vec_init)]
            blocks: if minutes > 0 {
                vec![Arc::new([EMPTY; BLOCK]); TREND_BUCKETS / BLOCK]
            } else {
                Vec::new()
            },
        }
    }

    fn slot(&mut self, n: u32) -> &mut Slot {
        let i = n as usize % TREND_BUCKETS;
        &mut Arc::make_mut(&mut self.blocks[i / BLOCK])[i % BLOCK]
    }

    /// Empties the spans after `from` up to and including `to` (at most the whole ring).
    fn clear(&mut self, from: u32, to: u32) {
        for n in from.saturating_add(1)..=to.min(from.saturating_add(TREND_BUCKETS as u32)) {
            *self.slot(n) = EMPTY;
        }
    }

    /// Takes a good value read at `at`.
    pub fn record(&mut self, at: SystemTime, value: f64) {
        if self.span_s == 0 || !value.is_finite() {
            return;
        }
        let secs = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let n = u32::try_from(secs / u64::from(self.span_s)).unwrap_or(u32::MAX);
        match self.newest {
            Some(newest) if n > newest => self.clear(newest, n),
            // A clock set back: the newer spans are dropped rather than shown out of order.
            Some(newest) if n < newest => {
                self.clear(n, newest);
                if newest - n >= TREND_BUCKETS as u32 {
                    *self.slot(n) = EMPTY;
                }
            }
            Some(_) => {}
            None => {}
        }
        self.newest = Some(n);
        let v = value as f32;
        let slot = self.slot(n);
        if slot.last.is_nan() {
            *slot = Slot {
                min: v,
                max: v,
                last: v,
            };
        } else {
            slot.min = slot.min.min(v);
            slot.max = slot.max.max(v);
            slot.last = v;
        }
    }

    /// The spans with a good value, oldest first.
    pub fn buckets(&self) -> impl Iterator<Item = Bucket> + '_ {
        let newest = self.newest.filter(|_| !self.blocks.is_empty());
        let first = newest.map_or(1, |n| n.saturating_sub(TREND_BUCKETS as u32 - 1));
        let last = newest.unwrap_or(0);
        (first..=last).filter_map(move |n| {
            let i = n as usize % TREND_BUCKETS;
            let s = self.blocks[i / BLOCK][i % BLOCK];
            (!s.last.is_nan()).then(|| Bucket {
                start: n.saturating_mul(self.span_s),
                min: s.min,
                max: s.max,
                last: s.last,
            })
        })
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
    /// Every rule's levels in use now (adapted ones included), in the order of `rules`.
    pub levels: Vec<RuleLevels>,
    /// The engineer's answer to each rule's current or last raise, in the order of `rules`.
    pub answers: Vec<Option<Answer>>,
}

/// A rule's levels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleLevels {
    /// The warning level, if the rule has one.
    pub warning: Option<f64>,
    /// The alarm level, if the rule has one.
    pub alarm: Option<f64>,
}

/// An adaptable rule's effective level.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdView {
    /// `<device>/<point>/<rule>`.
    pub rule: String,
    /// Which of the rule's levels adapts.
    pub severity: crate::alarms::Severity,
    /// The level in use, its baseline, rails and provenance.
    pub effective: Effective,
    /// Its last changes, oldest first (from the state database across restarts).
    pub history: Vec<LevelStep>,
}

/// Changes of a level or a trust kept for display, per rule or peer.
pub const HISTORY_STEPS: usize = 100;

/// An adaptable level from a time on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelStep {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// The level in use from then on.
    pub value: f64,
    /// Live proposals behind it.
    pub proposals: usize,
}

/// A peer's trust from a time on, and the answer that moved it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustStep {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// Its trust from then on.
    pub trust: f64,
    /// The answer.
    pub outcome: crate::outcomes::Outcome,
    /// The alarm answered.
    pub alarm_id: Arc<str>,
}

/// The last [`HISTORY_STEPS`] changes of each adaptable level and each peer's trust.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// By rule name.
    pub levels: std::collections::HashMap<String, VecDeque<LevelStep>>,
    /// By peer (hex public key).
    pub trust: std::collections::BTreeMap<String, VecDeque<TrustStep>>,
    /// Levels that changed and have not held long enough to be recorded: value and since when
    /// (Unix ms), by rule.
    pub settling: std::collections::HashMap<String, (f64, u64)>,
}

impl History {
    /// Seeded with what the state database holds.
    pub fn from_changes(
        levels: Vec<crate::outcomes::answers::LevelChange>,
        trust: Vec<crate::outcomes::answers::TrustChange>,
    ) -> Self {
        let mut h = Self::default();
        for l in levels {
            let step = LevelStep {
                at_ms: l.at_ms,
                value: l.value,
                proposals: l.proposals,
            };
            push(h.levels.entry(l.rule).or_default(), step);
        }
        for t in trust {
            let step = TrustStep {
                at_ms: t.at_ms,
                trust: t.trust,
                outcome: t.outcome,
                alarm_id: t.alarm_id.into(),
            };
            push(h.trust.entry(t.source).or_default(), step);
        }
        h
    }
}

/// Adds a step, dropping the oldest beyond [`HISTORY_STEPS`].
pub fn push<T>(steps: &mut VecDeque<T>, step: T) {
    if steps.len() == HISTORY_STEPS {
        steps.pop_front();
    }
    steps.push_back(step);
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
    /// A vibration device's latest spectra, shared with every snapshot rather than copied.
    pub spectrum: Option<(SystemTime, Arc<SpectrumSnapshot>)>,
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
    /// How each peer's trust changed, by peer, oldest first.
    pub trust_history: Vec<(String, Vec<TrustStep>)>,
    /// Peers' packets, by what became of them.
    pub intake: IntakeCounts,
    /// The fleet connection.
    pub uplink: UplinkState,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn a_trend_keeps_each_spans_extremes_and_last_value_and_only_its_window() {
        let mut t = Trend::new(60);
        assert_eq!(t.span_s, 10);
        for (s, v) in [(1000, 5.0), (1003, 9.0), (1009, 1.0), (1010, 2.0)] {
            t.record(at(s), v);
        }
        let b: Vec<Bucket> = t.buckets().collect();
        assert_eq!(b.len(), 2);
        assert_eq!(
            b[0],
            Bucket {
                start: 1000,
                min: 1.0,
                max: 9.0,
                last: 1.0
            }
        );
        assert_eq!(b[1].start, 1010);
        t.record(at(1010), f64::NAN);
        assert_eq!(t.buckets().nth(1).unwrap().last, 2.0, "not a value");
        // A gap: nothing from 1020 to 1049.
        t.record(at(1050), 3.0);
        let starts = |t: &Trend| t.buckets().map(|b| b.start).collect::<Vec<_>>();
        assert_eq!(starts(&t), [1000, 1010, 1050]);
        // A snapshot keeps what it saw while the trend goes on.
        let snapshot = t.clone();
        for i in 0..TREND_BUCKETS as u64 * 2 {
            t.record(at(2000 + i * 10), i as f64);
        }
        assert_eq!(starts(&snapshot), [1000, 1010, 1050]);
        assert_eq!(t.buckets().count(), TREND_BUCKETS);
        assert_eq!(
            t.buckets().next().unwrap().start,
            2000 + TREND_BUCKETS as u32 * 10
        );
        // The clock set back: newer spans go.
        t.record(at(2005), 7.0);
        assert_eq!(t.buckets().last().unwrap().start, 2000);
        assert_eq!(t.buckets().last().unwrap().last, 7.0);
        // Set back beyond the window: only the new span.
        t.record(at(10), 1.0);
        assert_eq!(starts(&t), [10]);
        let mut off = Trend::new(0);
        off.record(at(1), 1.0);
        assert_eq!(off.buckets().count(), 0);
    }
}
