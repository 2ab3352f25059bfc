//! Point state: the latest value and quality of every point, staleness, and when its metric is
//! due (rate-limited: at most every `min_interval_ms` while it changes, at least every
//! `max_interval_ms`).

use super::out::Out;
use super::spc::SpcState;
use super::view::{PointView, SpcChart};
use crate::alarms::{PointId, Rule, RuleId};
use crate::config::{DeviceConfig, MetricsConfig, PointConfig};
use crate::mqtt::payload::{timestamp, Metric};
use crate::outcomes::{Answers, Signal};
use crate::packet::Frequency;
use crate::sources::{Quality, Sample};
use std::time::{Duration, Instant, SystemTime};

/// Run-time state of one point.
pub struct PointState {
    /// What readers see.
    pub view: PointView,
    /// Its configuration.
    pub config: PointConfig,
    stale_after: Duration,
    last_good: Option<Instant>,
    /// When the metric was last published, and whether a newer value awaits publication.
    published_at: Option<Instant>,
    dirty: bool,
    /// Its alarm rules; with SPC, the `spc` rule is the last.
    pub rules: Vec<Rule>,
    /// Each rule's shelf, while an engineer has it shelved (in the order of `rules`).
    pub shelves: Vec<Option<super::shelving::Shelf>>,
    /// Statistical process control, when configured.
    pub spc: Option<SpcState>,
    /// Context fingerprint (hex), when the point or its device has a context.
    pub fingerprint: Option<String>,
    /// The context's fingerprint at every level, when it has one.
    pub address: Option<crate::packet::Address>,
    /// What the point is; with a rule's direction it names the signal pattern of its alarms.
    pub signal: Signal,
    /// Where in the spectrum the point's feature lives, for its packets.
    pub frequency: Frequency,
    /// Rules of this device whose `confirmed_by` names this point.
    pub confirms: Vec<RuleId>,
}

impl PointState {
    /// The state of point `id` of `device`, not read yet at `wall`; alarm occurrences resume
    /// from `answers`.
    pub fn new(id: PointId, device: &DeviceConfig, answers: &Answers, wall: SystemTime) -> Self {
        let p = &device.points()[id.point];
        let mut rules: Vec<Rule> = p.alarms.iter().cloned().map(Rule::new).collect();
        let spc = p.spc.as_ref().and_then(|c| {
            rules.push(Rule::new(super::spc::spc_rule()));
            SpcState::new(c, device.points(), rules.len() - 1)
        });
        for r in &mut rules {
            let key = format!("{}/{}/{}", device.name(), p.name, r.config().name());
            if let Some(n) = answers.occurrences(&key) {
                r.resume_occurrence(n);
            }
        }
        let address = p
            .context
            .as_ref()
            .or(device.context())
            .and_then(|c| c.address().ok());
        let (signal, frequency) = match device {
            DeviceConfig::Vibration(v) => p
                .feature()
                .map_or((Signal::ProcessValue, Frequency::None), |f| {
                    (Signal::Vibration(f), v.frequency_of(f))
                }),
            DeviceConfig::ModbusTcp(_) | DeviceConfig::ModbusRtu(_) | DeviceConfig::OpcUa(_) => {
                (Signal::ProcessValue, Frequency::None)
            }
        };
        Self {
            view: PointView {
                id,
                device: device.name().to_string(),
                name: p.name.clone(),
                unit: p.unit.clone(),
                value: None,
                text: None,
                quality: Quality::Bad,
                error: Some("not read yet".into()),
                read_at: wall,
                trend: Default::default(),
                spc_chart: spc.as_ref().map(|s| SpcChart::new(s.kind())),
            },
            config: p.clone(),
            stale_after: device.stale_after(),
            last_good: None,
            published_at: None,
            dirty: false,
            shelves: vec![None; rules.len()],
            rules,
            spc,
            fingerprint: address.map(|a| a.full.to_string()),
            address,
            signal,
            frequency,
            confirms: Vec::new(),
        }
    }

    /// Takes a sample read at `now`; returns what changed.
    pub fn update(&mut self, sample: &Sample, now: Instant) -> Update {
        let v = &mut self.view;
        let quality_changed = v.quality != sample.quality;
        let value_changed = (sample.value.is_some() && sample.value != v.value)
            || (sample.text.is_some() && sample.text != v.text);
        if sample.text.is_some() {
            v.text = sample.text.clone();
            self.last_good = Some(now);
        }
        v.quality = sample.quality;
        v.read_at = sample.at;
        v.error = sample.error.clone();
        if let Some(value) = sample.value {
            v.value = Some(value);
            self.last_good = Some(now);
            if sample.quality == Quality::Good {
                v.trend.record(sample.at, value);
            }
        }
        self.dirty |= value_changed || quality_changed;
        Update {
            quality_changed,
            value_changed,
        }
    }

    /// Whether the metric is due at `now` after an update.
    pub fn metric_due(&self, update: Update, now: Instant, metrics: &MetricsConfig) -> bool {
        match self.published_at {
            None => true,
            Some(at) => {
                let since = now.saturating_duration_since(at);
                update.quality_changed
                    || (self.dirty && since >= Duration::from_millis(metrics.min_interval_ms))
                    || since >= Duration::from_millis(metrics.max_interval_ms)
            }
        }
    }

    /// Turns a good point stale when it had no good read for longer than `stale_after`;
    /// returns true when it did.
    pub fn check_stale(&mut self, now: Instant) -> bool {
        let stale = self.view.quality == Quality::Good
            && self
                .last_good
                .is_some_and(|t| now.saturating_duration_since(t) > self.stale_after);
        if stale {
            self.view.quality = Quality::Stale;
            self.view.error = Some(format!(
                "no successful read for more than {} ms",
                self.stale_after.as_millis()
            ));
        }
        stale
    }

    /// Whether a changed value waits for its metric and the minimum interval has passed.
    pub fn flush_due(&self, now: Instant, metrics: &MetricsConfig) -> bool {
        self.dirty
            && self.published_at.is_none_or(|at| {
                now.saturating_duration_since(at) >= Duration::from_millis(metrics.min_interval_ms)
            })
    }

    /// Queues the point's metric.
    pub fn publish_metric(&mut self, now: Instant, out: &mut Out) {
        let v = &mut self.view;
        let metric = Metric {
            value: v.value,
            text: v.text.clone(),
            unit: v.unit.clone(),
            quality: v.quality,
            error: v.error.clone(),
            ts: timestamp(v.read_at),
        };
        self.published_at = Some(now);
        self.dirty = false;
        out.metric(
            &self.view.device,
            &self.view.name,
            &metric,
            self.view.read_at,
        );
    }
}

/// What a sample changed.
#[derive(Debug, Clone, Copy)]
pub struct Update {
    /// The quality differs from before.
    pub quality_changed: bool,
    /// A new value or text.
    pub value_changed: bool,
}

/// Every point, by device.
pub struct Points {
    /// Per device, per point.
    pub devices: Vec<Vec<PointState>>,
}

impl Points {
    /// Every configured point, not read yet.
    pub fn new(devices: &[DeviceConfig], answers: &Answers, wall: SystemTime) -> Self {
        let mut points: Vec<Vec<PointState>> = devices
            .iter()
            .enumerate()
            .map(|(d, device)| {
                (0..device.points().len())
                    .map(|p| {
                        PointState::new(
                            PointId {
                                device: d,
                                point: p,
                            },
                            device,
                            answers,
                            wall,
                        )
                    })
                    .collect()
            })
            .collect();
        // Index the fault-confirmed rules by their fault point, so other samples skip the check.
        for (d, device) in points.iter_mut().enumerate() {
            let mut confirms = Vec::new();
            for (p, point) in device.iter().enumerate() {
                for (r, rule) in point.rules.iter().enumerate() {
                    let Some(c) = &rule.config().confirmed_by else {
                        continue;
                    };
                    if let Some(q) = device.iter().position(|q| q.config.name == c.point) {
                        let point = PointId {
                            device: d,
                            point: p,
                        };
                        confirms.push((q, RuleId { point, rule: r }));
                    }
                }
            }
            for (q, rule) in confirms {
                device[q].confirms.push(rule);
            }
        }
        Self { devices: points }
    }

    /// A point.
    pub fn get(&self, id: PointId) -> Option<&PointState> {
        self.devices.get(id.device)?.get(id.point)
    }

    /// A point, to change it.
    pub fn get_mut(&mut self, id: PointId) -> Option<&mut PointState> {
        self.devices.get_mut(id.device)?.get_mut(id.point)
    }

    /// Every point's id.
    pub fn ids(&self) -> Vec<PointId> {
        self.iter().map(|p| p.view.id).collect()
    }

    /// Every point.
    pub fn iter(&self) -> impl Iterator<Item = &PointState> {
        self.devices.iter().flatten()
    }

    /// The point named `point` on the device named `device`.
    pub fn find(&self, device: &str, point: &str) -> Option<PointId> {
        self.iter()
            .find(|s| s.view.device == device && s.view.name == point)
            .map(|s| s.view.id)
    }
}

impl std::ops::Index<PointId> for Points {
    type Output = PointState;
    fn index(&self, id: PointId) -> &PointState {
        &self.devices[id.device][id.point]
    }
}

impl std::ops::IndexMut<PointId> for Points {
    fn index_mut(&mut self, id: PointId) -> &mut PointState {
        &mut self.devices[id.device][id.point]
    }
}
