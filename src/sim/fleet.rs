//! A fleet run: one sensor and one real gateway (`crate::run`) per life, on one broker, each
//! plant starting when the one before it has lived a given share of its life; the engineer's
//! answers are played as the rule says; every warning is recorded in life time.
//!
//! A warning's life time comes from its value: the alarm event carries the value that raised
//! or cleared it, found in the plant's life from the previous one on. The values a gateway
//! sees do not depend on timing (the sensor moves one snapshot per poll); when a peer's packet
//! arrives, within a poll or two, does.

use super::life::{Life, FEATURES};
use super::plant::Plant;
use super::sensor::{self, Sensor};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Whether a fleet run shares outcomes, and how its levels travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every plant alone: no packets sent or applied.
    Alone,
    /// Sharing levels as they are, in g (or in kurtosis).
    Absolute,
    /// Sharing levels relative to each plant's healthy mean (`adapt.relative`).
    Relative,
}

impl Mode {
    /// `alone`, `absolute` or `relative`: the run's name in the report and its sites' prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Alone => "alone",
            Mode::Absolute => "absolute",
            Mode::Relative => "relative",
        }
    }

    /// Whether plants send and apply packets.
    pub fn shares(self) -> bool {
        self != Mode::Alone
    }
}

/// How the fleet is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The broker's host (every plant uses it, locally and as the fleet link).
    pub broker_host: String,
    /// Milliseconds between polls: one snapshot (10 s of life in the shared data) each.
    pub poll_interval_ms: u64,
    /// A plant starts when the one before it has shown this share of its snapshots.
    pub stagger: f64,
    /// Whether plants share outcomes and apply their peers', and how levels travel.
    pub mode: Mode,
    /// Every plant's `[synthesis] baseline_weight`.
    pub baseline_weight: f64,
    /// Every watched rule's `adapt.match`.
    pub match_level: crate::packet::MatchLevel,
    /// The engineer's warning at this many sigma over the healthy mean.
    pub k: f64,
    /// Seconds of life: a warning followed by the end of life within this is confirmed (by the
    /// fault), one that cleared this long before without it is refuted (a false alarm).
    pub window_s: f64,
}

/// One warning as the plant lived it.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    /// The feature's point.
    pub point: String,
    /// Its alarm id.
    pub alarm_id: String,
    /// Life seconds at the raise.
    pub raised_s: f64,
    /// Life seconds at the clear, if it cleared.
    pub cleared_s: Option<f64>,
    /// `Some(true)` confirmed, `Some(false)` refuted.
    pub confirmed: Option<bool>,
}

/// What one plant lived.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantResult {
    /// The life's name.
    pub name: String,
    /// The plant's site id (the run's mode, then the life's name).
    pub site: String,
    /// Its length, seconds.
    pub life_s: f64,
    /// Every warning, in order.
    pub warnings: Vec<Warning>,
    /// Peers' packets that moved one of its levels.
    pub applied: u64,
    /// Each watched level over the life: point, life seconds, level (from the retained
    /// threshold messages; a change's life time is the snapshot shown when it arrived, within a
    /// poll or two).
    pub levels: Vec<(String, f64, f64)>,
}

impl PlantResult {
    /// Seconds from the first confirmed warning to the end of life.
    pub fn lead_time_s(&self) -> Option<f64> {
        self.warnings
            .iter()
            .filter(|w| w.confirmed == Some(true))
            .map(|w| self.life_s - w.raised_s)
            .reduce(f64::max)
    }

    /// Warnings refuted (false alarms).
    pub fn false_alarms(&self) -> usize {
        self.warnings
            .iter()
            .filter(|w| w.confirmed == Some(false))
            .count()
    }
}

/// Why a fleet run failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A sensor or the observer could not start.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A generated configuration was refused (a bug, or a life the engineer's rule cannot
    /// serve).
    #[error("plant {plant}: {problem}")]
    Config {
        /// The plant.
        plant: String,
        /// The problem.
        problem: String,
    },
    /// A plant did not reach its end in time.
    #[error("plant {0} did not finish its life within the run's time limit")]
    Stalled(String),
}

/// A plant while it runs.
struct Running {
    life: Arc<Life>,
    site: String,
    sensor: Sensor,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    gateway: tokio::task::JoinHandle<()>,
    result: PlantResult,
    /// Per feature, the snapshot its last warning event was found at.
    cursor: [usize; 5],
}

impl Running {
    /// Life seconds of the snapshot shown now.
    fn now_s(&self) -> f64 {
        let shown = *self.sensor.progress.borrow();
        self.life.snapshots[shown.clamp(1, self.life.snapshots.len()) - 1].t_s
    }

    /// Life seconds of the first snapshot from the feature's cursor on with `value`.
    fn locate(&mut self, feature: usize, value: f64) -> f64 {
        let s = &self.life.snapshots;
        let from = self.cursor[feature];
        let found = (from..s.len())
            .find(|&i| {
                let v = f64::from(s[i].features[feature] as f32);
                (v - value).abs() <= 1e-6 * value.abs().max(1e-12)
            })
            .unwrap_or(from);
        self.cursor[feature] = found;
        s[found].t_s
    }

    fn finished(&self) -> bool {
        *self.sensor.progress.borrow() > self.life.snapshots.len()
            && self.result.warnings.iter().all(|w| w.confirmed.is_some())
    }
}

/// Runs `lives` in order on the broker at `broker_port`, their state under `dir`; returns what
/// each plant lived. Stops after `limit` whatever happened.
pub async fn run(
    lives: &[Arc<Life>],
    broker_port: u16,
    dir: &Path,
    options: &Options,
    limit: Duration,
) -> Result<Vec<PlantResult>, FleetError> {
    let cancel = CancellationToken::new();
    // However the run ends, the sensors stop; the gateways stop when their senders drop.
    let _sensors = cancel.clone().drop_guard();
    let (client, mut events) = observe(&options.broker_host, broker_port).await?;
    let mut plants: Vec<Running> = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut next = 0;
    loop {
        // Start the next plant once the one before it has lived its share.
        if next < lives.len()
            && plants.last().is_none_or(|p| {
                *p.sensor.progress.borrow() as f64
                    >= options.stagger * p.life.snapshots.len() as f64
            })
        {
            plants.push(start_plant(&lives[next], broker_port, dir, options, &cancel).await?);
            next += 1;
            continue;
        }
        if next == lives.len() && plants.iter().all(Running::finished) {
            break;
        }
        let mut progress: Vec<_> = plants.iter().map(|p| p.sensor.progress.clone()).collect();
        let changed = futures::future::select_all(
            progress
                .iter_mut()
                .map(|p| Box::pin(async move { p.changed().await.is_ok() })),
        );
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                let stalled = plants.iter().find(|p| !p.finished()).map(|p| p.site.clone());
                cancel.cancel();
                return Err(FleetError::Stalled(stalled.unwrap_or_default()));
            }
            _ = changed => refute_due(&mut plants, &client, options.window_s).await,
            event = events.poll() => {
                if let Ok(Event::Incoming(Packet::Publish(p))) = event {
                    on_event(&mut plants, &p.topic, &p.payload);
                }
            }
        }
    }
    for p in plants.iter_mut() {
        if let Some(stop) = p.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut p.gateway).await;
    }
    // Every gateway has stopped; what they published while stopping (a peer's last packet
    // applied) is still on its way. A marker sent now arrives after all of it.
    drain(&mut plants, &client, &mut events, deadline).await;
    cancel.cancel();
    let _ = client.disconnect().await;
    Ok(plants.into_iter().map(|p| p.result).collect())
}

/// Reads the plants' events until the simulation's own marker comes back (or the deadline).
async fn drain(
    plants: &mut [Running],
    client: &AsyncClient,
    events: &mut rumqttc::EventLoop,
    deadline: tokio::time::Instant,
) {
    let marker = format!("qis/qis-sim-{}/events", std::process::id());
    super::drain_to_marker(client, events, &marker, deadline, |topic, payload| {
        on_event(plants, topic, payload)
    })
    .await;
}

/// The simulation's own client, subscribed to every plant's events and thresholds.
async fn observe(host: &str, port: u16) -> Result<(AsyncClient, rumqttc::EventLoop), FleetError> {
    let mut mqtt = MqttOptions::new(
        format!("qis-sim-{}", std::process::id()),
        host.to_string(),
        port,
    );
    mqtt.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(mqtt, 1024);
    for filter in ["qis/+/events", "qis/+/thresholds/#"] {
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    // Wait for the subscriptions before the first plant starts.
    let mut acknowledged = 0;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                acknowledged += 1;
                if acknowledged == 2 {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => return Err(std::io::Error::other(format!("sim observer: {e}")).into()),
        }
    }
    Ok((client, events))
}

async fn start_plant(
    life: &Arc<Life>,
    broker_port: u16,
    dir: &Path,
    options: &Options,
    cancel: &CancellationToken,
) -> Result<Running, FleetError> {
    let sensor = sensor::start(Arc::clone(life), cancel.clone()).await?;
    let site: String = format!("{}-{}", options.mode.as_str(), life.name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let plant = Plant {
        life,
        site: site.clone(),
        state_dir: dir.join(&site),
        broker_host: options.broker_host.clone(),
        broker_port,
        sensor_port: sensor.address.port(),
        poll_interval_ms: options.poll_interval_ms,
        mode: options.mode,
        baseline_weight: options.baseline_weight,
        match_level: options.match_level,
        k: options.k,
    };
    let config = crate::config::parse_str(&plant.toml(), &format!("{site}.toml")).map_err(|e| {
        FleetError::Config {
            plant: site.clone(),
            problem: e.to_string(),
        }
    })?;
    let (stop, gateway) = crate::sim::spawn_gateway(config, site.clone());
    Ok(Running {
        result: PlantResult {
            name: life.name.clone(),
            site: site.clone(),
            life_s: life.life_s(),
            warnings: Vec::new(),
            applied: 0,
            levels: Vec::new(),
        },
        life: Arc::clone(life),
        site,
        sensor,
        stop: Some(stop),
        gateway,
        cursor: [0; 5],
    })
}

/// Records a level from a plant's retained threshold message.
fn on_threshold(plants: &mut [Running], topic: &str, payload: &[u8]) {
    // qis/<site>/thresholds/<device>/<point>/<rule>
    let parts: Vec<&str> = topic.split('/').collect();
    let (Some(site), Some(point)) = (parts.get(1), parts.get(4)) else {
        return;
    };
    let Some(p) = plants.iter_mut().find(|p| p.site == *site) else {
        return;
    };
    let Some(value) = serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|t| t["value"].as_f64())
    else {
        return;
    };
    let last = p.result.levels.iter().rev().find(|(q, _, _)| q == point);
    if last.is_none_or(|(_, _, v)| *v != value) {
        let at = p.now_s();
        p.result.levels.push((point.to_string(), at, value));
    }
}

/// Records an event of a plant's gateway.
fn on_event(plants: &mut [Running], topic: &str, payload: &[u8]) {
    if topic.contains("/thresholds/") {
        return on_threshold(plants, topic, payload);
    }
    let Some(site) = topic
        .strip_prefix("qis/")
        .and_then(|t| t.strip_suffix("/events"))
    else {
        return;
    };
    let Some(p) = plants.iter_mut().find(|p| p.site == site) else {
        return;
    };
    let Ok(e) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    match e["type"].as_str() {
        Some("alarm") => {
            let point = text("point");
            let Some(feature) = FEATURES.iter().position(|f| *f == point) else {
                return;
            };
            let (Some(value), id) = (e["value"].as_f64(), text("alarm_id")) else {
                return;
            };
            match e["to"].as_str() {
                Some("active") => {
                    let raised_s = p.locate(feature, value);
                    p.result.warnings.push(Warning {
                        point,
                        alarm_id: id,
                        raised_s,
                        cleared_s: None,
                        confirmed: None,
                    });
                }
                Some("cleared") | Some("normal") => {
                    let cleared_s = p.locate(feature, value);
                    if let Some(w) = p
                        .result
                        .warnings
                        .iter_mut()
                        .rev()
                        .find(|w| w.alarm_id == id)
                    {
                        w.cleared_s.get_or_insert(cleared_s);
                    }
                }
                _ => {}
            }
        }
        Some("outcome") => {
            let id = text("alarm_id");
            if let Some(w) = p.result.warnings.iter_mut().find(|w| w.alarm_id == id) {
                w.confirmed = Some(e["outcome"] == "confirmed");
            }
        }
        Some("peer_outcome") if e["applied_to"].as_array().is_some_and(|a| !a.is_empty()) => {
            p.result.applied += 1;
        }
        _ => {}
    }
}

/// The engineer's refutations: a warning that cleared `window_s` of life ago, with no end of
/// life since, was a false alarm.
async fn refute_due(plants: &mut [Running], client: &AsyncClient, window_s: f64) {
    for p in plants.iter_mut() {
        let now = p.now_s();
        if *p.sensor.progress.borrow() > p.life.snapshots.len() {
            continue;
        }
        for w in p.result.warnings.iter_mut() {
            if w.confirmed.is_none() && w.cleared_s.is_some_and(|c| now >= c + window_s) {
                let payload = serde_json::json!({"alarm_id": w.alarm_id, "by": "engineer", "note": "no failure followed"});
                let topic = format!("qis/{}/cmd/refute", p.site);
                if client
                    .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
                    .await
                    .is_ok()
                {
                    // Sent once; the outcome event records the answer.
                    w.confirmed = Some(false);
                }
            }
        }
    }
}
