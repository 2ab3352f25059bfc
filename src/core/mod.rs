//! The core: one task that turns inputs into outputs, one input at a time, synchronously and
//! without I/O of its own (the model of rumqttc's `state.rs`). A polled sample, a command, a
//! peer's packet, a reconnection or a tick goes in with the time it happened; publications for
//! the local broker, acknowledgements owed to the uplink and a wake for the outbox come out in
//! [`Out`], which the core task ([`crate::run`]) drains into the connections.
//!
//! The handlers live by stage: [`points`] (value, quality, staleness, metric rate limit),
//! [`alerts`] (rules, alarm ids, alerts, transitions), [`spc`] (control charts driving the
//! `spc` rule), [`commands`] (engineers' commands), `answering` (answers, PLC faults, sharing)
//! and `peers` (intake, adaptation, effective thresholds). [`view`] is the read model.
//! The state database ([`crate::db`]) is written by the stages that own its tables,
//! synchronously, before anything that depends on it is acknowledged; [`storage`] turns a
//! failed write into a fault state with retries.

pub mod alerts;
mod answering;
pub mod commands;
pub mod out;
mod peers;
pub mod points;
pub mod shelving;
pub mod spc;
pub mod storage;
pub mod view;

pub use out::{Drained, Out};
pub use view::View;

use crate::alarms::PointId;
use crate::config::{Config, MetricsConfig};
use crate::intake::state::IntakeStore;
use crate::intake::Intake;
use crate::mqtt::payload::{status_payload, timestamp, Event};
use crate::mqtt::{Qos, UplinkState};
use crate::outcomes::{Answers, Sharing};
use crate::sources::{Sample, SourceEvent};
use crate::synthesis::adapt::Adaptation;
use crate::synthesis::SynthesisState;
use bytes::Bytes;
use points::Points;
use std::time::{Duration, Instant, SystemTime};
use tracing::warn;
use view::DeviceView;

/// How often the core wants a [`Input::Tick`]: staleness, rate-limited metrics, expiry of
/// peers' proposals, intake statistics and the intake save.
pub const TICK: Duration = Duration::from_millis(200);

/// The time an input happened: monotonic for intervals, wall clock for what is shown and saved.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time.
    pub mono: Instant,
    /// Wall-clock time.
    pub wall: SystemTime,
}

impl Now {
    /// The current time.
    pub fn current() -> Self {
        Self {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Wall-clock time as Unix milliseconds.
    pub fn unix_ms(&self) -> u64 {
        unix_ms(self.wall)
    }

    /// `by` later.
    pub fn after(&self, by: Duration) -> Self {
        Self {
            mono: self.mono + by,
            wall: self.wall + by,
        }
    }
}

/// Unix milliseconds of `t` (0 before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One input.
#[derive(Debug)]
pub enum Input {
    /// From a field device task.
    Source(SourceEvent),
    /// A message on `qis/<site>/cmd/...`.
    Command {
        /// Its topic.
        topic: String,
        /// Its payload.
        payload: Bytes,
    },
    /// A packet from the uplink (its acknowledgement waits in the core task until
    /// [`Drained::release_acks`]).
    Peer {
        /// The topic it arrived on.
        topic: String,
        /// The packet.
        payload: Bytes,
        /// Sent by the broker as a retained message (on subscribing), not as it was published.
        retained: bool,
    },
    /// The local broker connection was (re)established: republish retained state.
    Reconnected,
    /// The uplink's state changed.
    Uplink(UplinkState),
    /// Periodic work, every [`TICK`].
    Tick,
    /// The gateway stops: save, and publish the `offline` status.
    Shutdown,
}

/// What the core is given besides the configuration: the loaded state and what it needs to
/// share and take in packets.
pub struct Parts {
    /// Alarm records, answers and the ledger, loaded from the state database.
    pub answers: Answers,
    /// Turns answers into packets; None when `[outcomes] share = false`.
    pub sharing: Option<Sharing>,
    /// The intake guard, with its replay memory restored.
    pub intake: Intake,
    /// Where intake's state is saved; None keeps it in memory only.
    pub intake_store: Option<IntakeStore>,
    /// Trust and proposals, loaded from the state database.
    pub synthesis: SynthesisState,
}

/// The gateway's state machine.
pub struct Core {
    metrics: MetricsConfig,
    points: Points,
    devices: Vec<DeviceView>,
    answers: Answers,
    sharing: Option<Sharing>,
    intake: Intake,
    intake_store: Option<IntakeStore>,
    adapt: Adaptation,
    /// How the adaptable levels and peers' trust changed, for the dashboard.
    history: view::History,
    uplink: UplinkState,
    storage: storage::Storage,
    out: Out,
}

impl Core {
    /// The core for `config`, at `now`; thresholds restored from `parts` are queued.
    pub fn new(config: &Config, parts: Parts, now: Now) -> Self {
        let mut points = Points::new(&config.devices, &parts.answers, now.wall);
        // Trends are kept for the dashboard only.
        let minutes = if config.web.enabled {
            config.web.trend_minutes
        } else {
            0
        };
        for p in points.devices.iter_mut().flatten() {
            p.view.trend = view::Trend::new(minutes);
        }
        let adapt = Adaptation::new(config.synthesis, peers::adaptive_rules(&points));
        let mut answers = parts.answers;
        let history = match (
            answers.recent_levels(view::HISTORY_STEPS),
            answers.recent_trust(view::HISTORY_STEPS),
        ) {
            (Ok(levels), Ok(trust)) => view::History::from_changes(levels, trust),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "Cannot read the level and trust history; the dashboard shows changes from now on.");
                view::History::default()
            }
        };
        let mut core = Self {
            metrics: config.metrics.clone(),
            points,
            devices: config
                .devices
                .iter()
                .map(|d| DeviceView {
                    name: d.name().to_string(),
                    ..DeviceView::default()
                })
                .collect(),
            answers,
            history,
            sharing: parts.sharing,
            intake: parts.intake,
            intake_store: parts.intake_store,
            adapt,
            uplink: UplinkState::Disconnected,
            storage: storage::Storage::new(Duration::from_secs(config.storage.retry_max_s)),
            out: Out::new(&config.site.id),
        };
        if config.metrics.layout == crate::config::MetricsLayout::Device {
            core.out.metrics_by_device();
        }
        core.publish_storage_stats(now);
        let restored = core.adapt.restore(parts.synthesis, now.unix_ms() / 1000);
        core.apply_levels(&restored, now);
        core
    }

    /// Handles one input that happened at `now`.
    pub fn handle(&mut self, input: Input, now: Now) {
        match input {
            Input::Source(event) => self.on_source_event(event, now),
            Input::Command { topic, payload } => self.on_command(&topic, &payload, now),
            Input::Peer {
                topic,
                payload,
                retained,
            } => self.on_peer_packet(&topic, &payload, retained, now),
            Input::Reconnected => self.republish_all(now),
            Input::Uplink(state) => self.on_uplink(state, now),
            Input::Tick => self.tick(now),
            Input::Shutdown => self.shutdown(now),
        }
    }

    /// The storage fault, while there is one (see [`storage`]).
    pub fn storage_fault(&self) -> Option<&str> {
        self.storage.fault()
    }

    /// What the last inputs produced.
    pub fn drain(&mut self) -> Drained {
        self.out.drain()
    }

    /// A snapshot of the live state.
    pub fn view(&self) -> View {
        View {
            site: self.out.site.clone(),
            devices: self.devices.clone(),
            points: self.points.iter().map(|p| p.view.clone()).collect(),
            alarms: self
                .points
                .iter()
                .map(|p| {
                    let mut a = alerts::view(p);
                    a.answers = a
                        .rules
                        .iter()
                        .map(|r| {
                            let id = r.alarm_id.as_deref()?;
                            self.answers.record(id)?.answer.clone()
                        })
                        .collect();
                    a
                })
                .collect(),
            thresholds: self
                .adapt
                .rules()
                .iter()
                .map(|a| view::ThresholdView {
                    rule: a.name.clone(),
                    severity: a.severity,
                    effective: a.effective.clone(),
                    history: self
                        .history
                        .levels
                        .get(&a.name)
                        .map(|h| h.iter().copied().collect())
                        .unwrap_or_default(),
                })
                .collect(),
            trust: self
                .adapt
                .state()
                .trust
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            trust_history: self
                .history
                .trust
                .iter()
                .map(|(k, steps)| (k.clone(), steps.iter().cloned().collect()))
                .collect(),
            intake: self.intake.counts(self.adapt.applied()),
            uplink: self.uplink,
        }
    }

    fn on_source_event(&mut self, event: SourceEvent, now: Now) {
        match event {
            SourceEvent::Sample(sample) => self.on_sample(sample, now),
            SourceEvent::Samples(samples) => {
                samples.into_iter().for_each(|s| self.on_sample(s, now))
            }
            SourceEvent::Stats { device, stats } => {
                let Some(d) = self.devices.get_mut(device) else {
                    return;
                };
                let topic = self.out.topics.stats(&d.name);
                self.out.json(topic, &stats, Qos::AtMostOnce, false);
                d.stats = Some(stats);
            }
            SourceEvent::Spectrum {
                device,
                snapshot,
                at,
            } => {
                let Some(d) = self.devices.get_mut(device) else {
                    return;
                };
                let mut json = serde_json::to_value(&*snapshot).unwrap_or_default();
                json["ts"] = serde_json::Value::from(timestamp(at));
                let topic = self.out.topics.spectrum(&d.name);
                self.out.json(topic, &json, Qos::AtMostOnce, false);
                d.spectrum = Some((at, std::sync::Arc::from(snapshot)));
            }
            SourceEvent::Link { device, up, error } => {
                let Some(d) = self.devices.get_mut(device) else {
                    return;
                };
                d.link_up = Some(up);
                if error.is_some() {
                    d.last_error = error.clone();
                }
                let event = Event::Device {
                    site: self.out.site.clone(),
                    device: d.name.clone(),
                    link: if up { "up" } else { "down" }.into(),
                    error,
                    ts: timestamp(now.wall),
                };
                self.out.event(&event);
            }
        }
    }

    /// The sample path: point state → alarm rules → answers (PLC faults) → SPC → alert.
    fn on_sample(&mut self, sample: Sample, now: Now) {
        let id = PointId {
            device: sample.device,
            point: sample.point,
        };
        let Some(point) = self.points.get_mut(id) else {
            return;
        };
        let update = point.update(&sample, now.mono);
        // On-delays are measured between read times, the clock the events report: a sample
        // that waited in the channel must not shorten (or lengthen) how long a condition held.
        let read = now
            .mono
            .checked_sub(now.wall.duration_since(sample.at).unwrap_or_default())
            .unwrap_or(now.mono);
        let transitions = match sample.value {
            Some(v) => alerts::evaluate(point, v, read, sample.at),
            None => Vec::new(),
        };
        if point.metric_due(update, now.mono, &self.metrics) {
            point.publish_metric(now.mono, &mut self.out);
        }
        for (rule, t) in &transitions {
            self.record_raise(id, *rule, t, None, now);
            let row =
                alerts::publish_transition(&self.points[id], *rule, t, None, None, &mut self.out);
            self.answers.history(row);
        }
        if let (Some(v), true) = (sample.value, update.value_changed) {
            if !self.points[id].confirms.is_empty() {
                self.on_fault_value(id, v, now);
            }
        }
        let spc_changed = match sample.value {
            Some(v) => self.on_spc_observation(id, v, read, sample.at, now),
            None => false,
        };
        if !transitions.is_empty() || update.quality_changed || spc_changed {
            alerts::publish_alert(&self.points[id], &mut self.out);
        }
    }

    /// Feeds a good value to the point's control chart; returns true when its rule changed.
    fn on_spc_observation(
        &mut self,
        id: PointId,
        value: f64,
        now: Instant,
        wall: SystemTime,
        at: Now,
    ) -> bool {
        let key = self.points[id]
            .spc
            .as_ref()
            .and_then(|s| s.subgroup_by)
            .and_then(|by| self.points.get(PointId { point: by, ..id }))
            .and_then(|q| q.view.value);
        let point = &mut self.points[id];
        let Some(rule) = point.spc.as_ref().map(|s| s.rule) else {
            return false;
        };
        let transitions = spc::observe(point, key, value, now, wall, &mut self.out);
        for (t, detail) in &transitions {
            self.record_raise(id, rule, t, Some(detail), at);
            let row = alerts::publish_transition(
                &self.points[id],
                rule,
                t,
                None,
                Some(detail.clone()),
                &mut self.out,
            );
            self.answers.history(row);
        }
        !transitions.is_empty()
    }

    fn tick(&mut self, now: Now) {
        for id in self.points.ids() {
            let point = &mut self.points[id];
            if point.check_stale(now.mono) {
                point.publish_metric(now.mono, &mut self.out);
                alerts::publish_alert(&self.points[id], &mut self.out);
            } else if point.flush_due(now.mono, &self.metrics) {
                point.publish_metric(now.mono, &mut self.out);
            }
        }
        self.expire_shelves(now);
        let expired = self.adapt.expire(now.unix_ms() / 1000);
        self.apply_levels(&expired, now);
        self.record_levels(now);
        self.publish_intake_stats();
        self.commit_intake(now);
        self.storage_tick(now);
    }

    fn on_command(&mut self, topic: &str, payload: &[u8], now: Now) {
        let result =
            commands::Command::parse(&self.out.topics, topic, payload).and_then(|c| match c {
                commands::Command::Ack(target) => self.acknowledge(target, now),
                commands::Command::Answer(cmd, outcome) => self.answer_alarm(cmd, outcome, now),
                commands::Command::Shelve {
                    target,
                    hours,
                    note,
                } => self.shelve(target, hours, note, now),
                commands::Command::Unshelve(target) => self.unshelve(target, now),
            });
        if let Err(reason) = &result {
            warn!(topic = %topic, reason = %reason, "Command rejected.");
            let event = Event::CommandRejected {
                site: self.out.site.clone(),
                topic: topic.to_string(),
                reason: reason.clone(),
                ts: timestamp(now.wall),
            };
            self.out.event(&event);
        }
        self.out.command_done(result);
    }

    fn acknowledge(&mut self, target: commands::AckTarget, now: Now) -> Result<(), String> {
        let Some(id) = self.points.find(&target.device, &target.point) else {
            return Err(format!(
                "no point `{}` on device `{}`",
                target.point, target.device
            ));
        };
        let mut transitions = Vec::new();
        for (i, r) in self.points[id].rules.iter_mut().enumerate() {
            if target
                .rule
                .as_deref()
                .is_some_and(|name| name != r.config().name())
            {
                continue;
            }
            if let Some(n) = target.occurrence.filter(|n| *n != r.occurrence()) {
                return Err(format!(
                    "alarm `{}/{}/{}/{n}` is not the current alarm of that rule (the current one is occurrence {}); nothing acknowledged",
                    target.device,
                    target.point,
                    r.config().name(),
                    r.occurrence()
                ));
            }
            if let Some(t) = r.acknowledge(now.wall) {
                transitions.push((i, t));
            }
        }
        if transitions.is_empty() {
            return Err(format!(
                "nothing to acknowledge on {}/{}",
                target.device, target.point
            ));
        }
        let point = &self.points[id];
        for (i, t) in &transitions {
            let row =
                alerts::publish_transition(point, *i, t, target.by.clone(), None, &mut self.out);
            self.answers.history(row);
        }
        alerts::publish_alert(&self.points[id], &mut self.out);
        Ok(())
    }

    fn on_uplink(&mut self, state: UplinkState, now: Now) {
        self.uplink = state;
        let payload = serde_json::json!({ "state": state, "ts": timestamp(now.wall) });
        let topic = self.out.topics.uplink();
        self.out.json(topic, &payload, Qos::AtLeastOnce, true);
    }

    fn republish_all(&mut self, now: Now) {
        for point in self.points.iter() {
            alerts::publish_alert(point, &mut self.out);
        }
        self.publish_thresholds(&(0..self.adapt.rules().len()).collect::<Vec<_>>(), now);
        self.on_uplink(self.uplink, now);
        self.publish_storage_stats(now);
        if self.storage.fault().is_some() {
            self.publish_status(now);
        }
    }

    fn shutdown(&mut self, now: Now) {
        self.storage.retry_now();
        self.commit_intake(now);
        if self.answers.flush_due() {
            if let Err(e) = self.answers.flush(now.unix_ms()) {
                warn!(error = %e, "The last alarm transitions could not be written to the history.");
            }
        }
        self.on_uplink(UplinkState::Disconnected, now);
        let offline = status_payload(&self.out.site, false, Some("shutdown"), Some(now.wall), &[]);
        let topic = self.out.topics.status();
        self.out.bytes(topic, offline, Qos::AtLeastOnce, true);
    }
}

#[cfg(test)]
mod tests;
