//! Wiring: starts the broker connection and one poller per device, and runs the core that turns
//! samples into metrics, alarm transitions and alerts, and commands into acknowledgements.

use crate::alarms::{Rule, Severity, Transition};
use crate::analysis::spc::{self, SpcEngine, SpcPoint};
use crate::config::{
    AlarmKind, AlarmRuleConfig, Config, DeviceConfig, PointConfig, SpcPointConfig, SPC_RULE_NAME,
};
use crate::outcomes::{AlarmRecord, Answer, Outcome, OutcomeState};
use crate::packet::Frequency;
use crate::routing::mqtt::{self, Inbound, MqttSetupError, Publisher};
use crate::routing::payload::{
    timestamp, AckCommand, Alert, AnswerCommand, Event, Metric, RuleStatus, SpcDetail, SpcMetric,
    Threshold,
};
use crate::routing::Topics;
use crate::sources::modbus::ModbusTcpPoller;
use crate::sources::{Quality, Sample, SourceEvent};
use crate::synthesis::{Effective, Offered, Rails, SynthesisState, Target};
use rumqttc::QoS;
use std::future::Future;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long tasks get to finish after shutdown begins.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
/// Samples buffered between the pollers and the core. Pollers wait when it is full.
const SAMPLE_CAPACITY: usize = 1024;
/// How often the core checks staleness and flushes rate-limited metrics.
const HOUSEKEEPING: Duration = Duration::from_millis(200);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Broker connection setup failed.
    #[error(transparent)]
    Mqtt(#[from] MqttSetupError),
    /// The outcome signing key could not be loaded or created.
    #[error("outcome signing key: {0}")]
    Key(#[from] crate::packet::keys::KeyError),
    /// The state directory is unusable.
    #[error("state: {0}")]
    State(String),
}

/// Runs the gateway until `shutdown` completes, then stops every task within
/// [`SHUTDOWN_DEADLINE`], publishing the `offline` status first.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let key = crate::packet::keys::load_or_create(&config.site.state_dir)?;
    info!(source = %crate::packet::keys::public_hex(&key), "Outcome signing key loaded.");
    let cancel = CancellationToken::new();
    let (inbound_tx, inbound_rx) = mpsc::channel(64);
    let link = mqtt::start(&config.mqtt, &config.site.id, inbound_tx, cancel.clone())?;
    let (events_tx, events_rx) = mpsc::channel(SAMPLE_CAPACITY);

    let mut tasks: Vec<(String, JoinHandle<()>)> = Vec::new();
    let pki = crate::sources::opcua::pki_dir(&config.site.state_dir);
    for (index, device) in config.devices.iter().enumerate() {
        let (events, stop) = (events_tx.clone(), cancel.clone());
        let task = match device {
            DeviceConfig::ModbusTcp(d) => {
                tokio::spawn(ModbusTcpPoller::new(index, d.clone(), events).run(stop))
            }
            DeviceConfig::Vibration(d) => tokio::spawn(
                crate::sources::vibration::VibrationSource::new(
                    index,
                    d.clone(),
                    pki.clone(),
                    events,
                )
                .run(stop),
            ),
            DeviceConfig::OpcUa(d) => tokio::spawn(
                crate::sources::opcua::OpcUaSource::new(index, d.clone(), pki.clone(), events)
                    .run(stop),
            ),
            // Serial units are grouped by line below.
            DeviceConfig::ModbusRtu(_) => continue,
        };
        tasks.push((format!("device {}", device.name()), task));
    }
    let mut lines: Vec<(
        std::path::PathBuf,
        Vec<(usize, crate::config::ModbusRtuConfig)>,
    )> = Vec::new();
    for (index, device) in config.devices.iter().enumerate() {
        if let DeviceConfig::ModbusRtu(d) = device {
            match lines.iter_mut().find(|(port, _)| *port == d.port) {
                Some((_, units)) => units.push((index, d.clone())),
                None => lines.push((d.port.clone(), vec![(index, d.clone())])),
            }
        }
    }
    for (port, units) in lines {
        let bus = crate::sources::modbus::RtuBus::new(units, events_tx.clone());
        tasks.push((
            format!("serial line {}", port.display()),
            tokio::spawn(bus.run(cancel.clone())),
        ));
    }
    drop(events_tx);

    for d in &config.devices {
        for p in d.points() {
            if let Some(Ok(f)) = p.context.as_ref().or(d.context()).map(|c| c.fingerprint()) {
                info!(device = %d.name(), point = %p.name, fingerprint = %f, topic = %f.topic(), "Context.");
            }
        }
    }
    info!(
        site = %config.site.id,
        devices = config.devices.len(),
        broker = %format!("{}:{}", config.mqtt.host, config.mqtt.port),
        "Gateway started."
    );
    // The uplink: outcome packets out (when sharing), peers' packets for our contexts in.
    let outbox = crate::outcomes::outbox::Outbox::open(
        &config.site.state_dir.join("outbox"),
        config.outcomes.outbox_max,
    )
    .map_err(|e| {
        RunError::State(format!(
            "outbox in {}: {e}",
            config.site.state_dir.display()
        ))
    })?;
    let (wake, woken) = mpsc::channel(16);
    let (incoming_tx, incoming_rx) = mpsc::channel(256);
    let mut subscriptions: Vec<String> = Vec::new();
    for d in &config.devices {
        for p in d.points() {
            if let Some(Ok(f)) = p.context.as_ref().or(d.context()).map(|c| c.fingerprint()) {
                if !subscriptions.contains(&f.topic()) {
                    subscriptions.push(f.topic());
                }
            }
        }
    }
    let uplink = config.uplink.as_ref().unwrap_or(&config.mqtt);
    let client_id = format!(
        "{}-uplink",
        config
            .mqtt
            .client_id
            .clone()
            .unwrap_or_else(|| format!("qis-edge-{}", config.site.id))
    );
    let task = crate::outcomes::outbox::start(
        uplink,
        client_id,
        outbox.clone(),
        woken,
        subscriptions,
        incoming_tx,
        cancel.clone(),
    )?;
    tasks.push(("uplink".into(), task));
    let sharing = config.outcomes.share.then(|| Sharing {
        key: key.clone(),
        outbox,
        wake,
        ttl_s: config.outcomes.ttl_days.saturating_mul(86_400),
    });
    let policy = crate::packet::TrustPolicy {
        strict: config.outcomes.strict,
        allowlist: config
            .outcomes
            .allowlist
            .iter()
            .filter_map(|k| crate::packet::keys::parse_public_hex(k))
            .collect(),
        clock_skew_s: config.outcomes.clock_skew_s,
    };
    let intake = Intake::new(policy, key.verifying_key().to_bytes());
    let mut core = Core::new(&config, link.publisher.clone(), sharing, intake);
    core.load_intake(config.site.state_dir.join(INTAKE_FILE));
    tasks.push((
        "core".into(),
        tokio::spawn(core.run(
            events_rx,
            inbound_rx,
            incoming_rx,
            link.connections,
            cancel.clone(),
        )),
    ));
    tasks.push(("mqtt".into(), link.task));
    crate::watchdog::ready();

    shutdown.await;
    info!("Shutting down.");
    cancel.cancel();
    let deadline = Instant::now() + SHUTDOWN_DEADLINE;
    for (name, mut task) in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            warn!(task = %name, "Task did not stop within the shutdown deadline; aborting it.");
            task.abort();
        }
    }
    info!("Stopped.");
    Ok(())
}

/// Run-time state of one point.
struct PointState {
    device: String,
    config: PointConfig,
    stale_after: Duration,
    value: Option<f64>,
    text: Option<String>,
    quality: Quality,
    error: Option<String>,
    read_at: SystemTime,
    last_good: Option<Instant>,
    rules: Vec<Rule>,
    /// When the metric was last published, and whether a newer value awaits publication.
    published_at: Option<Instant>,
    dirty: bool,
    /// Statistical process control, when configured.
    spc: Option<SpcState>,
    /// Context fingerprint (hex), when the point or its device has a context.
    fingerprint: Option<String>,
    /// What the point is: `process_value`, a vibration feature, …; with a rule's direction it
    /// names the signal pattern of its alarms.
    signal: String,
    /// Where in the spectrum the point's feature lives, for its packets.
    frequency: Frequency,
    /// Rules whose level peers may adapt.
    adaptive: Vec<Adaptive>,
    /// Rules of this device's points (point, rule) whose `confirmed_by` names this point.
    confirms: Vec<(usize, usize)>,
}

/// A rule whose first level peers' packets may move inside rails.
struct Adaptive {
    /// Index in the point's rules.
    rule: usize,
    /// The level that adapts.
    severity: Severity,
    /// [`Target::key`] of the rule's pattern: packets with the same key propose for it.
    target: String,
    rails: Rails,
    /// The level in use and its provenance.
    effective: Effective,
}

/// The intake guard's state: every peer packet passes it.
pub struct Intake {
    /// Replay memory and rejection counts.
    pub guard: crate::packet::ReplayGuard,
    /// Allowlist and clock skew.
    pub policy: crate::packet::TrustPolicy,
    /// This gateway's own public key: its packets coming back are ignored.
    pub own: [u8; 32],
    /// Own packets seen.
    pub own_packets: u64,
    /// Valid packets that arrived on another context's topic.
    pub wrong_topic: u64,
    /// Peer packets that set or withdrew a proposal.
    pub applied: u64,
    /// Peer packets no adaptable rule here matches.
    pub unmatched: u64,
    /// Counts changed since last published.
    pub dirty: bool,
    /// The replay memory changed since it was last saved.
    pub replay_dirty: bool,
    /// Keeps a flood of bad packets from flooding the journal.
    pub rejection_log: LogLimiter,
}

/// Lets one log line through per interval and counts the ones held back, so a flood of bad
/// input cannot fill the journal; exact counts are published elsewhere.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl LogLimiter {
    /// One line per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(lines held back since the last one let through)` when a line may be logged at
    /// `now`; `None` when it is held back.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

/// At most one rejected-packet WARN line per this interval.
const REJECTION_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Everything peers' packets change, in the state directory, saved as one atomic file: trust,
/// live proposals and the replay memory. One file, so a packet's effect and the memory that it
/// was seen are never saved apart, and a packet is acknowledged to the broker only after both.
pub const INTAKE_FILE: &str = "intake.json";
/// Incoming packets acknowledged to the broker at once when this many wait for a state save.
const ACK_BATCH: usize = 16;

/// Sources the replay memory holds; the least recently heard from is forgotten first.
const REPLAY_SOURCES: usize = 4096;

/// [`INTAKE_FILE`]: trust and proposals, and the replay memory, each source's public key (hex)
/// with its recent accepted sequence numbers, least recently heard from first.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct IntakeFile {
    #[serde(flatten)]
    synthesis: SynthesisState,
    #[serde(default)]
    replay: Vec<ReplayEntry>,
}

/// [`IntakeFile`] as written, borrowing the state.
#[derive(serde::Serialize)]
struct IntakeFileRef<'a> {
    #[serde(flatten)]
    synthesis: &'a SynthesisState,
    replay: Vec<ReplayEntry>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ReplayEntry {
    source: String,
    /// The most recent accepted sequence numbers, ascending.
    seqs: Vec<u64>,
}

impl Intake {
    /// An intake with an empty replay memory (the core restores the saved one, see
    /// [`INTAKE_FILE`]).
    pub fn new(policy: crate::packet::TrustPolicy, own: [u8; 32]) -> Self {
        Self {
            guard: crate::packet::ReplayGuard::new(REPLAY_SOURCES),
            policy,
            own,
            own_packets: 0,
            wrong_topic: 0,
            applied: 0,
            unmatched: 0,
            dirty: false,
            replay_dirty: false,
            rejection_log: LogLimiter::new(REJECTION_LOG_INTERVAL),
        }
    }
}

/// What the core needs to turn answers into outcome packets.
pub struct Sharing {
    /// The gateway's signing key.
    pub key: ed25519_dalek::SigningKey,
    /// Where packets wait for their PUBACK.
    pub outbox: crate::outcomes::outbox::Outbox,
    /// Tells the uplink task a packet is waiting.
    pub wake: mpsc::Sender<()>,
    /// Seconds receivers apply a packet.
    pub ttl_s: u32,
}

/// A point's control chart and the alarm rule its violations drive (the last of `rules`).
struct SpcState {
    config: SpcPointConfig,
    engine: SpcEngine,
    /// The point whose value names the subgroup, and its value for the current subgroup.
    subgroup_by: Option<usize>,
    key: Option<f64>,
    /// Index of the `spc` rule in the point's rules.
    rule: usize,
    out: Vec<SpcPoint>,
    last: Option<SpcDetail>,
}

impl SpcState {
    fn new(config: &SpcPointConfig, points: &[PointConfig], rule: usize) -> Option<Self> {
        // The configuration was checked at load; an engine that cannot be built is skipped.
        let engine = SpcEngine::new(config.settings()).ok()?;
        Some(Self {
            subgroup_by: config
                .subgroup_by
                .as_deref()
                .and_then(|name| points.iter().position(|q| q.name == name)),
            key: None,
            rule,
            out: Vec::with_capacity(config.calibration.max(1)),
            last: None,
            engine,
            config: config.clone(),
        })
    }
}

fn spc_rule() -> AlarmRuleConfig {
    AlarmRuleConfig {
        name: Some(SPC_RULE_NAME.to_string()),
        kind: AlarmKind::High,
        warning: None,
        alarm: None,
        deadband: 0.0,
        on_delay_ms: 0,
        adapt: None,
        confirmed_by: None,
    }
}

struct Core {
    site: String,
    topics: Topics,
    publisher: Publisher,
    min_interval: Duration,
    max_interval: Duration,
    /// Per device, per point.
    points: Vec<Vec<PointState>>,
    /// Device names by index.
    device_names: Vec<String>,
    /// Alarm records and the ledger, persisted at `state_path`.
    outcomes: OutcomeState,
    state_path: std::path::PathBuf,
    sharing: Option<Sharing>,
    intake: Intake,
    /// Equipment class per context fingerprint, the label packets carry.
    equipment: std::collections::HashMap<String, String>,
    /// Peers' proposals and trust, persisted with the replay memory at `intake_path`.
    synthesis: SynthesisState,
    settings: crate::synthesis::Settings,
    intake_path: Option<std::path::PathBuf>,
    synthesis_dirty: bool,
    /// Adaptive rules by target key: (device, point, index in `adaptive`).
    targets: std::collections::HashMap<String, Vec<(usize, usize, usize)>>,
    /// Peer packets processed but not yet acknowledged: acknowledged once state is saved.
    pending_acks: Vec<crate::outcomes::outbox::Ack>,
    /// The last save of [`INTAKE_FILE`] failed (logged once until one succeeds).
    intake_save_failed: bool,
}

impl Core {
    fn new(
        config: &Config,
        publisher: Publisher,
        sharing: Option<Sharing>,
        intake: Intake,
    ) -> Self {
        let state_path = config.site.state_dir.join("outcomes.json");
        let mut equipment = std::collections::HashMap::new();
        for d in &config.devices {
            for p in d.points() {
                if let Some(c) = p.context.as_ref().or(d.context()) {
                    if let Ok(f) = c.fingerprint() {
                        equipment.insert(f.to_string(), c.equipment_class.trim().to_string());
                    }
                }
            }
        }
        let outcomes: OutcomeState = crate::store::load_json(&state_path);
        let points = config
            .devices
            .iter()
            .map(|d| {
                let stale_after = d.stale_after();
                d.points()
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let mut rules: Vec<Rule> =
                            p.alarms.iter().cloned().map(Rule::new).collect();
                        let spc = p.spc.as_ref().and_then(|c| {
                            rules.push(Rule::new(spc_rule()));
                            SpcState::new(c, d.points(), rules.len() - 1)
                        });
                        for r in &mut rules {
                            let key = format!("{}/{}/{}", d.name(), p.name, r.config().name());
                            if let Some(n) = outcomes.occurrences.get(&key) {
                                r.resume_occurrence(*n);
                            }
                        }
                        let fingerprint = p
                            .context
                            .as_ref()
                            .or(d.context())
                            .and_then(|c| c.fingerprint().ok())
                            .map(|f| f.to_string());
                        let (signal, frequency) = match d {
                            DeviceConfig::Vibration(v) => v
                                .features
                                .get(i)
                                .map_or((String::new(), Frequency::None), |&f| {
                                    (f.to_string(), crate::outcomes::frequency_of(v, f))
                                }),
                            DeviceConfig::ModbusTcp(_)
                            | DeviceConfig::ModbusRtu(_)
                            | DeviceConfig::OpcUa(_) => {
                                ("process_value".to_string(), Frequency::None)
                            }
                        };
                        let adaptive = rules
                            .iter()
                            .enumerate()
                            .filter_map(|(index, r)| {
                                let pattern = Pattern {
                                    signal: &signal,
                                    frequency,
                                    unit: &p.unit,
                                };
                                adaptive_rule(index, r, fingerprint.as_deref(), pattern)
                            })
                            .collect();
                        PointState {
                            adaptive,
                            confirms: Vec::new(),
                            device: d.name().to_string(),
                            config: p.clone(),
                            stale_after,
                            value: None,
                            text: None,
                            quality: Quality::Bad,
                            error: Some("not read yet".into()),
                            read_at: SystemTime::now(),
                            last_good: None,
                            rules,
                            published_at: None,
                            dirty: false,
                            spc,
                            fingerprint,
                            signal,
                            frequency,
                        }
                    })
                    .collect()
            })
            .collect();
        Self {
            site: config.site.id.clone(),
            topics: Topics::new(&config.site.id),
            publisher,
            min_interval: Duration::from_millis(config.metrics.min_interval_ms),
            max_interval: Duration::from_millis(config.metrics.max_interval_ms),
            points,
            device_names: config
                .devices
                .iter()
                .map(|d| d.name().to_string())
                .collect(),
            outcomes,
            state_path,
            sharing,
            intake,
            equipment,
            synthesis: SynthesisState::default(),
            settings: config.synthesis,
            intake_path: None,
            synthesis_dirty: false,
            targets: std::collections::HashMap::new(),
            pending_acks: Vec::new(),
            intake_save_failed: false,
        }
        .with_targets()
    }

    /// Indexes the adaptive rules by target (and logs them), and the fault-confirmed rules by
    /// their fault point.
    fn with_targets(mut self) -> Self {
        for points in &mut self.points {
            let mut confirms = Vec::new();
            for (p, point) in points.iter().enumerate() {
                for (r, rule) in point.rules.iter().enumerate() {
                    let Some(c) = &rule.config().confirmed_by else {
                        continue;
                    };
                    if let Some(q) = points.iter().position(|q| q.config.name == c.point) {
                        confirms.push((q, p, r));
                    }
                }
            }
            for (q, p, r) in confirms {
                points[q].confirms.push((p, r));
            }
        }
        for (d, points) in self.points.iter().enumerate() {
            for (p, point) in points.iter().enumerate() {
                for (i, a) in point.adaptive.iter().enumerate() {
                    info!(device = %point.device, point = %point.config.name, rule = %point.rules[a.rule].config().name(), target = %a.target, "Peers' packets may adapt this rule.");
                    self.targets
                        .entry(a.target.clone())
                        .or_default()
                        .push((d, p, i));
                }
            }
        }
        self
    }

    /// Loads trust and live proposals (a corrupt file is moved aside, see [`crate::store`])
    /// and applies them to the adaptive rules.
    fn load_intake(&mut self, path: std::path::PathBuf) {
        let file: IntakeFile = crate::store::load_json(&path);
        self.synthesis = file.synthesis;
        let mut skipped = 0usize;
        for entry in &file.replay {
            match crate::packet::keys::parse_public_hex(&entry.source) {
                Some(source) => entry
                    .seqs
                    .iter()
                    .for_each(|seq| self.intake.guard.remember(source, *seq)),
                None => skipped += 1,
            }
        }
        if skipped > 0 {
            warn!(file = %path.display(), skipped, "Replay memory entries with an invalid source key were skipped.");
        }
        if !self.intake.guard.is_empty() {
            info!(sources = self.intake.guard.len(), "Replay memory loaded.");
        }
        self.intake_path = Some(path);
        self.synthesis.expire(unix_ms(SystemTime::now()) / 1000);
        if !self.synthesis.proposals.is_empty() || !self.synthesis.trust.is_empty() {
            info!(
                targets = self.synthesis.proposals.len(),
                sources = self.synthesis.trust.len(),
                "Peers' proposals and trust loaded."
            );
        }
        self.recompute_all();
    }

    /// Recomputes (and publishes) every adaptive rule's level.
    fn recompute_all(&mut self) {
        let keys: Vec<String> = self.targets.keys().cloned().collect();
        for key in keys {
            self.recompute(&key);
        }
    }

    /// Recomputes the effective level of every rule of a target; publishes each.
    fn recompute(&mut self, key: &str) {
        let Some(rules) = self.targets.get(key).cloned() else {
            return;
        };
        for (d, p, i) in rules {
            let effective = {
                let a = &self.points[d][p].adaptive[i];
                self.synthesis
                    .effective(&self.settings, &a.target, &a.rails)
            };
            let point = &mut self.points[d][p];
            let a = &mut point.adaptive[i];
            if effective.value != a.effective.value {
                info!(
                    device = %point.device,
                    point = %point.config.name,
                    rule = %point.rules[a.rule].config().name(),
                    from = a.effective.value,
                    to = effective.value,
                    baseline = effective.baseline,
                    sources = effective.applied_sources().len(),
                    "Effective threshold changed."
                );
            }
            point.rules[a.rule].set_level(a.severity, effective.value);
            a.effective = effective;
            self.publish_threshold(d, p, i);
        }
    }

    fn publish_threshold(&self, d: usize, p: usize, i: usize) {
        let point = &self.points[d][p];
        let a = &point.adaptive[i];
        let rule = point.rules[a.rule].config().name();
        let payload = Threshold {
            site: self.site.clone(),
            device: point.device.clone(),
            point: point.config.name.clone(),
            rule: rule.to_string(),
            level: match a.severity {
                Severity::Warning => "warning",
                Severity::Alarm => "alarm",
            },
            unit: point.config.unit.clone(),
            effective: a.effective.clone(),
            ts: timestamp(SystemTime::now()),
        };
        let topic = self
            .topics
            .threshold(&point.device, &point.config.name, rule);
        self.publisher
            .publish_json(topic, &payload, QoS::AtLeastOnce, true);
    }

    /// Saves trust, proposals and the replay memory in one atomic write when they changed, then
    /// acknowledges the peer packets they account for. A failed save keeps the
    /// acknowledgements back (the broker delivers those packets again) and is retried.
    fn commit_intake(&mut self) {
        if self.synthesis_dirty || self.intake.replay_dirty {
            if let Some(path) = &self.intake_path {
                let file = IntakeFileRef {
                    synthesis: &self.synthesis,
                    replay: self
                        .intake
                        .guard
                        .remembered()
                        .into_iter()
                        .map(|(source, seqs)| ReplayEntry {
                            source: hex::encode(source),
                            seqs,
                        })
                        .collect(),
                };
                if let Err(e) = crate::store::save_json(path, &file) {
                    if !self.intake_save_failed {
                        tracing::error!(file = %path.display(), error = %e, "Cannot save peers' proposals, trust and replay memory; retrying. Peers' packets stay unacknowledged until it is saved.");
                    }
                    self.intake_save_failed = true;
                    return;
                }
                self.intake_save_failed = false;
            }
            self.synthesis_dirty = false;
            self.intake.replay_dirty = false;
        }
        for ack in self.pending_acks.drain(..) {
            ack.send();
        }
    }

    /// Forgets expired proposals and reverts what they moved.
    fn expire_proposals(&mut self) {
        let now = unix_ms(SystemTime::now()) / 1000;
        if self.synthesis.next_expiry().is_none_or(|t| t > now) {
            return;
        }
        for key in self.synthesis.expire(now) {
            info!(target = %key, "Peer proposals expired.");
            self.recompute(&key);
        }
        self.synthesis_dirty = true;
    }

    /// The signal pattern of a rule: what the point is, and the rule's direction.
    fn pattern(point: &PointState, rule: &Rule) -> String {
        if rule.config().name() == SPC_RULE_NAME && point.spc.is_some() {
            return format!("spc:{}", point.signal);
        }
        let direction = match rule.config().kind {
            AlarmKind::High => "high",
            AlarmKind::Low => "low",
        };
        format!("{}:{direction}", point.signal)
    }

    /// Remembers a new raise (so it can be confirmed or refuted, also after a restart).
    fn record_raise(&mut self, d: usize, p: usize, rule: usize, t: &Transition) {
        if !(t.from_severity.is_none() && t.severity.is_some()) {
            return;
        }
        let point = &self.points[d][p];
        let r = &point.rules[rule];
        let id = alarm_id(point, r);
        let key = format!(
            "{}/{}/{}",
            point.device,
            point.config.name,
            r.config().name()
        );
        let record = AlarmRecord {
            device: point.device.clone(),
            point: point.config.name.clone(),
            rule: r.config().name().to_string(),
            raised_at_ms: unix_ms(t.at),
            threshold: t.threshold,
            unit: point.config.unit.clone(),
            fingerprint: point.fingerprint.clone(),
            pattern: Self::pattern(point, r),
            frequency: point.frequency,
            answer: None,
            peers: point
                .adaptive
                .iter()
                .find(|a| a.rule == rule && a.effective.value != a.effective.baseline)
                .map(|a| a.effective.applied_sources())
                .unwrap_or_default(),
            spc: point
                .spc
                .as_ref()
                .filter(|_| r.config().name() == SPC_RULE_NAME)
                .and_then(|state| {
                    let detail = state.last.as_ref()?;
                    let rule = detail
                        .rules
                        .first()
                        .or(detail.dispersion_rules.first())
                        .copied()
                        .unwrap_or(1);
                    Some(crate::outcomes::SpcRecord {
                        chart: detail.chart,
                        rule_set: detail.rule_set,
                        rule,
                    })
                }),
        };
        self.outcomes.occurrences.insert(key, r.occurrence());
        self.outcomes.raised(id, record);
        self.save_outcomes();
    }

    fn save_outcomes(&self) {
        if let Err(e) = crate::store::save_json(&self.state_path, &self.outcomes) {
            tracing::error!(file = %self.state_path.display(), error = %e, "Cannot save the outcome state; answers given now may be lost on restart.");
        }
    }

    async fn run(
        mut self,
        mut events: mpsc::Receiver<SourceEvent>,
        mut inbound: mpsc::Receiver<Inbound>,
        mut peers: mpsc::Receiver<crate::outcomes::outbox::Incoming>,
        mut connections: watch::Receiver<u64>,
        cancel: CancellationToken,
    ) {
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        let mut watchdog = crate::watchdog::Pinger::from_env();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(event) = events.recv() => self.on_source_event(event),
                Some(message) = inbound.recv() => self.on_command(&message),
                Some(incoming) = peers.recv() => {
                    self.on_peer_packet(&incoming.topic, &incoming.payload);
                    self.pending_acks.extend(incoming.ack);
                    if self.pending_acks.len() >= ACK_BATCH {
                        self.commit_intake();
                    }
                }
                Ok(()) = connections.changed() => self.republish_all(),
                _ = housekeeping.tick() => {
                    self.housekeeping();
                    self.expire_proposals();
                    self.publish_intake_stats();
                    self.commit_intake();
                    watchdog.ping();
                }
            }
        }
        self.commit_intake();
        let offline =
            mqtt::status_payload(&self.site, false, Some("shutdown"), Some(SystemTime::now()));
        self.publisher
            .publish(self.topics.status(), offline, QoS::AtLeastOnce, true);
        self.publisher.disconnect();
    }

    fn on_source_event(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::Sample(sample) => self.on_sample(sample),
            SourceEvent::Samples(samples) => samples.into_iter().for_each(|s| self.on_sample(s)),
            SourceEvent::Stats { device, stats } => {
                if let Some(name) = self.device_names.get(device) {
                    let topic = format!("qis/{}/stats/{name}", self.site);
                    self.publisher
                        .publish_json(topic, &stats, QoS::AtMostOnce, false);
                }
            }
            SourceEvent::Spectrum {
                device,
                snapshot,
                at,
            } => {
                let Some(name) = self.device_names.get(device) else {
                    return;
                };
                let mut json = serde_json::to_value(&*snapshot).unwrap_or_default();
                json["ts"] = serde_json::Value::from(timestamp(at));
                let topic = format!("qis/{}/spectrum/{name}", self.site);
                self.publisher
                    .publish_json(topic, &json, QoS::AtMostOnce, false);
            }
            SourceEvent::Link { device, up, error } => {
                let Some(name) = self
                    .points
                    .get(device)
                    .and_then(|p| p.first())
                    .map(|p| p.device.clone())
                else {
                    return;
                };
                let event = Event::Device {
                    site: self.site.clone(),
                    device: name,
                    link: if up { "up" } else { "down" }.into(),
                    error,
                    ts: timestamp(SystemTime::now()),
                };
                self.publish_event(&event);
            }
        }
    }

    fn on_sample(&mut self, sample: Sample) {
        let now = Instant::now();
        let Some(point) = self
            .points
            .get_mut(sample.device)
            .and_then(|d| d.get_mut(sample.point))
        else {
            return;
        };
        let quality_changed = point.quality != sample.quality;
        let value_changed = (sample.value.is_some() && sample.value != point.value)
            || (sample.text.is_some() && sample.text != point.text);
        if sample.text.is_some() {
            point.text = sample.text.clone();
            point.last_good = Some(now);
        }
        point.quality = sample.quality;
        point.read_at = sample.at;
        point.error = sample.error;
        let mut transitions = Vec::new();
        if let Some(v) = sample.value {
            point.value = Some(v);
            point.last_good = Some(now);
            let spc_rule = point.spc.as_ref().map(|s| s.rule);
            for (i, rule) in point.rules.iter_mut().enumerate() {
                if Some(i) == spc_rule {
                    continue;
                }
                if let Some(t) = rule.evaluate(v, now.into_std(), sample.at) {
                    transitions.push((i, t));
                }
            }
        }
        point.dirty |= value_changed || quality_changed;
        let due = match point.published_at {
            None => true,
            Some(at) => {
                let since = now.saturating_duration_since(at);
                quality_changed
                    || (point.dirty && since >= self.min_interval)
                    || since >= self.max_interval
            }
        };
        let (d, p) = (sample.device, sample.point);
        if due {
            self.publish_metric(d, p, now);
        }
        for (rule, t) in &transitions {
            self.record_raise(d, p, *rule, t);
            self.publish_transition(d, p, *rule, t, None, None);
        }
        if let (Some(v), true) = (sample.value, value_changed) {
            if !self.points[d][p].confirms.is_empty() {
                self.on_fault_value(d, p, v);
            }
        }
        let spc_changed = match sample.value {
            Some(v) => self.on_spc_observation(d, p, v, now, sample.at),
            None => false,
        };
        if !transitions.is_empty() || quality_changed || spc_changed {
            self.publish_alert(d, p);
        }
    }

    /// Feeds a good value to the point's control chart; publishes each charted point and
    /// drives the `spc` rule. Returns true when the rule changed.
    fn on_spc_observation(
        &mut self,
        d: usize,
        p: usize,
        value: f64,
        now: Instant,
        wall: SystemTime,
    ) -> bool {
        let key = self.points[d][p]
            .spc
            .as_ref()
            .and_then(|s| s.subgroup_by)
            .and_then(|by| self.points[d].get(by))
            .and_then(|q| q.value);
        let point = &mut self.points[d][p];
        let Some(state) = point.spc.as_mut() else {
            return false;
        };
        if state.subgroup_by.is_some() && key != state.key {
            if state.key.is_some() {
                let dropped = state.engine.discard_partial();
                if dropped > 0 {
                    tracing::debug!(device = %point.device, point = %point.config.name, dropped, "Subgroup counter moved on; incomplete subgroup discarded.");
                }
            }
            state.key = key;
        }
        state.out.clear();
        let failed = state.engine.failed_calibrations();
        state.engine.push(value, &mut state.out);
        if state.engine.failed_calibrations() > failed {
            warn!(device = %point.device, point = %point.config.name, "SPC calibration data had no spread (every value equal); calibrating again. Poll at the rate the value changes, or give center and sigma.");
        }
        let Some(estimate) = state.engine.estimate().copied() else {
            return false;
        };
        let chart = state.config.chart;
        let rule_set = state.config.rules;
        let capability = state
            .config
            .spec()
            .map(|spec| spc::capability(estimate.location.center, estimate.sigma, &spec));
        let charted: Vec<SpcPoint> = state.out.clone();
        let rule_index = state.rule;
        let mut changed = false;
        for c in charted {
            let metric = SpcMetric {
                chart,
                index: c.index,
                calibration: c.calibration,
                statistic: c.statistic,
                dispersion: c.dispersion,
                sigma: estimate.sigma,
                center: estimate.location.center,
                lcl: estimate.location.lcl,
                ucl: estimate.location.ucl,
                dispersion_center: estimate.dispersion.center,
                dispersion_lcl: estimate.dispersion.lcl,
                dispersion_ucl: estimate.dispersion.ucl,
                violations: c.violations.iter().collect(),
                dispersion_violations: c.dispersion_violations.iter().collect(),
                cusum: c.cusum,
                ewma: c.ewma,
                capability,
                ts: timestamp(wall),
            };
            let point = &self.points[d][p];
            let topic = format!(
                "{}/spc",
                self.topics.metric(&point.device, &point.config.name)
            );
            self.publisher
                .publish_json(topic, &metric, QoS::AtMostOnce, false);

            let cusum = c.cusum.and_then(|k| {
                if k.upper_violation {
                    Some("upper".to_string())
                } else if k.lower_violation {
                    Some("lower".to_string())
                } else {
                    None
                }
            });
            let ewma = c.ewma.is_some_and(|w| w.violation);
            let violated = !c.violations.is_empty()
                || !c.dispersion_violations.is_empty()
                || cusum.is_some()
                || ewma;
            let detail = SpcDetail {
                chart,
                rule_set,
                index: c.index,
                statistic: c.statistic,
                center: estimate.location.center,
                lcl: estimate.location.lcl,
                ucl: estimate.location.ucl,
                rules: metric.violations.clone(),
                dispersion_rules: metric.dispersion_violations.clone(),
                cusum,
                ewma,
            };
            let point = &mut self.points[d][p];
            let condition = violated.then_some(Severity::Alarm);
            if let Some(t) =
                point.rules[rule_index].signal(condition, c.statistic, now.into_std(), wall)
            {
                if let Some(state) = point.spc.as_mut() {
                    state.last = Some(detail.clone());
                }
                self.record_raise(d, p, rule_index, &t);
                self.publish_transition(d, p, rule_index, &t, None, Some(detail));
                changed = true;
            }
        }
        changed
    }

    fn housekeeping(&mut self) {
        let now = Instant::now();
        for d in 0..self.points.len() {
            for p in 0..self.points[d].len() {
                let point = &mut self.points[d][p];
                let stale = point.quality == Quality::Good
                    && point
                        .last_good
                        .is_some_and(|t| now.saturating_duration_since(t) > point.stale_after);
                if stale {
                    point.quality = Quality::Stale;
                    point.error = Some(format!(
                        "no successful read for more than {} ms",
                        point.stale_after.as_millis()
                    ));
                    self.publish_metric(d, p, now);
                    self.publish_alert(d, p);
                    continue;
                }
                let point = &self.points[d][p];
                let flush = point.dirty
                    && point
                        .published_at
                        .is_none_or(|at| now.saturating_duration_since(at) >= self.min_interval);
                if flush {
                    self.publish_metric(d, p, now);
                }
            }
        }
    }

    fn publish_metric(&mut self, d: usize, p: usize, now: Instant) {
        let point = &mut self.points[d][p];
        let metric = Metric {
            value: point.value,
            text: point.text.clone(),
            unit: point.config.unit.clone(),
            quality: point.quality,
            error: point.error.clone(),
            ts: timestamp(point.read_at),
        };
        point.published_at = Some(now);
        point.dirty = false;
        let topic = self.topics.metric(&point.device, &point.config.name);
        self.publisher
            .publish_json(topic, &metric, QoS::AtMostOnce, false);
    }

    fn rule_status(point: &PointState, rule: &Rule) -> RuleStatus {
        RuleStatus {
            rule: rule.config().name().to_string(),
            alarm_id: (rule.occurrence() > 0).then(|| alarm_id(point, rule)),
            state: rule.state(),
            severity: rule.severity(),
            acknowledged: rule.acknowledged(),
            threshold: rule.threshold(),
            raised_at: rule.raised_at().map(timestamp),
            changed_at: rule.changed_at().map(timestamp),
        }
    }

    fn publish_alert(&self, d: usize, p: usize) {
        let point = &self.points[d][p];
        let Some(headline) = point.rules.iter().max_by_key(|r| r.urgency()) else {
            return;
        };
        let alert = Alert {
            site: self.site.clone(),
            device: point.device.clone(),
            point: point.config.name.clone(),
            unit: point.config.unit.clone(),
            value: point.value,
            quality: point.quality,
            headline: Self::rule_status(point, headline),
            rules: point
                .rules
                .iter()
                .map(|r| Self::rule_status(point, r))
                .collect(),
            spc: point.spc.as_ref().and_then(|s| s.last.clone()),
        };
        let topic = self.topics.alert(&point.device, &point.config.name);
        self.publisher
            .publish_json(topic, &alert, QoS::AtLeastOnce, true);
    }

    fn publish_transition(
        &self,
        d: usize,
        p: usize,
        rule: usize,
        t: &Transition,
        by: Option<String>,
        spc: Option<SpcDetail>,
    ) {
        let point = &self.points[d][p];
        let r = &point.rules[rule];
        info!(
            device = %point.device,
            point = %point.config.name,
            rule = %r.config().name(),
            from = ?t.from,
            to = ?t.to,
            severity = ?t.severity,
            value = ?t.value,
            "Alarm transition."
        );
        let event = Event::Alarm {
            site: self.site.clone(),
            device: point.device.clone(),
            point: point.config.name.clone(),
            rule: r.config().name().to_string(),
            alarm_id: alarm_id(point, r),
            from: t.from,
            to: t.to,
            severity: t.severity,
            value: t.value,
            threshold: t.threshold,
            unit: point.config.unit.clone(),
            condition_since: t.condition_since.map(timestamp),
            by,
            spc: spc.map(Box::new),
            ts: timestamp(t.at),
        };
        self.publish_event(&event);
    }

    fn publish_event(&self, event: &Event) {
        self.publisher
            .publish_json(self.topics.events(), event, QoS::AtLeastOnce, false);
    }

    fn republish_all(&mut self) {
        for d in 0..self.points.len() {
            for p in 0..self.points[d].len() {
                self.publish_alert(d, p);
                for i in 0..self.points[d][p].adaptive.len() {
                    self.publish_threshold(d, p, i);
                }
            }
        }
    }

    fn on_command(&mut self, message: &Inbound) {
        let result = match self.topics.command_name(&message.topic) {
            Some("ack") => self.acknowledge(&message.payload),
            Some("confirm") => self.answer(&message.payload, Outcome::Confirmed),
            Some("refute") => self.answer(&message.payload, Outcome::Refuted),
            Some(other) => Err(format!(
                "unknown command `{other}`; known: ack, confirm, refute"
            )),
            None => Err("not a command topic".into()),
        };
        if let Err(reason) = result {
            warn!(topic = %message.topic, reason = %reason, "Command rejected.");
            let event = Event::CommandRejected {
                site: self.site.clone(),
                topic: message.topic.clone(),
                reason,
                ts: timestamp(SystemTime::now()),
            };
            self.publish_event(&event);
        }
    }

    fn answer(&mut self, payload: &[u8], outcome: Outcome) -> Result<(), String> {
        let cmd: AnswerCommand = serde_json::from_slice(payload)
            .map_err(|e| format!("payload is not valid JSON of the documented form: {e}"))?;
        if outcome == Outcome::Confirmed
            && cmd
                .failure_mode
                .as_deref()
                .is_none_or(|m| m.trim().is_empty())
        {
            return Err("a confirmation needs `failure_mode` (what was found)".into());
        }
        self.answer_alarm(cmd, outcome)
    }

    /// Records an answer (from an engineer or a PLC fault), shares it, moves trust, and
    /// publishes the `outcome` event.
    fn answer_alarm(&mut self, cmd: AnswerCommand, outcome: Outcome) -> Result<(), String> {
        let now = SystemTime::now();
        let answer = Answer {
            outcome,
            failure_mode: cmd.failure_mode.clone(),
            note: cmd.note.clone(),
            by: cmd.by.clone(),
            at_ms: unix_ms(now),
        };
        let (entry, lead_time_s) = self
            .outcomes
            .answer(&cmd.alarm_id, answer.clone())
            .map_err(|e| e.to_string())?;
        self.share(&cmd.alarm_id, &answer, &entry, lead_time_s);
        self.save_outcomes();
        self.adjust_trust(&cmd.alarm_id, outcome);
        let (fingerprint, pattern) = self
            .outcomes
            .alarms
            .get(&cmd.alarm_id)
            .map(|r| (r.fingerprint.clone(), r.pattern.clone()))
            .unwrap_or_default();
        info!(alarm_id = %cmd.alarm_id, outcome = ?outcome, validations = entry.validations, refutations = entry.refutations, "Alarm answered.");
        let event = Event::Outcome {
            site: self.site.clone(),
            alarm_id: cmd.alarm_id,
            outcome,
            failure_mode: cmd.failure_mode,
            note: cmd.note,
            by: cmd.by,
            lead_time_s,
            fingerprint,
            pattern,
            validations: entry.validations,
            refutations: entry.refutations,
            ts: timestamp(now),
        };
        self.publish_event(&event);
        Ok(())
    }

    /// Every packet from the uplink passes the intake guard. Accepted peer outcomes are shown
    /// to engineers as `peer_outcome` events (applying them to thresholds is synthesis's job).
    fn on_peer_packet(&mut self, topic: &str, bytes: &[u8]) {
        self.intake.dirty = true;
        let now = unix_ms(SystemTime::now()) / 1000;
        let verified =
            match crate::packet::verify(bytes, now, &mut self.intake.guard, &self.intake.policy) {
                Ok(v) => v,
                Err(r) => {
                    match self.intake.rejection_log.allow(Instant::now()) {
                        Some(held_back) => warn!(
                            topic,
                            reason = %r,
                            held_back,
                            "Peer packet rejected (further rejections within {}s are counted on \
                             stats/intake, not logged).",
                            REJECTION_LOG_INTERVAL.as_secs()
                        ),
                        None => tracing::debug!(topic, reason = %r, "Peer packet rejected."),
                    }
                    return;
                }
            };
        self.intake.replay_dirty = true;
        let b = verified.body();
        if b.source == self.intake.own {
            self.intake.own_packets += 1;
            return;
        }
        if b.fingerprint.topic() != topic {
            self.intake.wrong_topic += 1;
            warn!(topic, fingerprint = %b.fingerprint, "Valid packet on another context's topic; ignored.");
            return;
        }
        info!(source = %hex::encode(b.source), seq = b.seq, fingerprint = %b.fingerprint, "Peer outcome received.");
        let applied_to = self.apply_peer_packet(b);
        let event = Event::PeerOutcome {
            applied_to,
            site: self.site.clone(),
            fingerprint: b.fingerprint.to_string(),
            source: hex::encode(b.source),
            seq: b.seq,
            feature: serde_json::to_value(b.pattern.feature).unwrap_or_default(),
            direction: serde_json::to_value(b.pattern.direction).unwrap_or_default(),
            threshold: f64::from(b.pattern.threshold),
            unit: b.pattern.unit.to_string(),
            outcome: serde_json::to_value(b.outcome.kind).unwrap_or_default(),
            failure_mode: serde_json::to_value(b.outcome.failure_mode).unwrap_or_default(),
            confidence: f64::from(b.confidence),
            validations: b.validations,
            refutations: b.refutations,
            lead_time_s: b.lead_time_s,
            ts: timestamp(SystemTime::now()),
        };
        self.publish_event(&event);
    }

    /// A point took a new value: where it is a rule's PLC fault point and the value is the
    /// fault, confirms that rule's unanswered alarms raised within the window before.
    fn on_fault_value(&mut self, d: usize, p: usize, value: f64) {
        let fault_point = self.points[d][p].config.name.clone();
        let device = self.points[d][p].device.clone();
        let mut answers = Vec::new();
        for &(q, r) in &self.points[d][p].confirms {
            let point = &self.points[d][q];
            let rule = &point.rules[r];
            let Some(c) = &rule.config().confirmed_by else {
                continue;
            };
            if value != c.equals {
                continue;
            }
            let since =
                unix_ms(SystemTime::now()).saturating_sub(u64::from(c.within_days) * 86_400_000);
            for (id, record) in &self.outcomes.alarms {
                if record.device == device
                    && record.point == point.config.name
                    && record.rule == rule.config().name()
                    && record.answer.is_none()
                    && record.raised_at_ms >= since
                {
                    answers.push(AnswerCommand {
                        alarm_id: id.clone(),
                        failure_mode: Some(c.failure_mode.clone()),
                        note: Some(format!("{fault_point} = {value}")),
                        by: Some(format!("plc:{device}/{fault_point}")),
                    });
                }
            }
        }
        for cmd in answers {
            let id = cmd.alarm_id.clone();
            match self.answer_alarm(cmd, Outcome::Confirmed) {
                Ok(()) => {
                    info!(alarm_id = %id, device = %device, point = %fault_point, value, "Alarm confirmed by a PLC fault.")
                }
                Err(e) => warn!(alarm_id = %id, error = %e, "PLC fault confirmation refused."),
            }
        }
    }

    /// Moves the trust of the peers whose proposals had moved an answered alarm's level, and
    /// recomputes every level (weights follow trust).
    fn adjust_trust(&mut self, alarm_id: &str, outcome: Outcome) {
        let peers = match self.outcomes.alarms.get(alarm_id) {
            Some(r) if !r.peers.is_empty() => r.peers.clone(),
            _ => return,
        };
        let changes =
            self.synthesis
                .answered(&self.settings, &peers, outcome == Outcome::Confirmed);
        self.synthesis_dirty = true;
        for (source, from, to) in changes {
            info!(source = %source, from, to, alarm_id, "Peer trust changed.");
            let event = Event::Trust {
                site: self.site.clone(),
                source,
                from,
                to,
                alarm_id: alarm_id.to_string(),
                outcome,
                ts: timestamp(SystemTime::now()),
            };
            self.publish_event(&event);
        }
        self.recompute_all();
    }

    /// Offers a verified peer packet to the adaptive rules of its target; returns the rules
    /// it changed (`device/point/rule`).
    fn apply_peer_packet(&mut self, body: &crate::packet::PacketBody) -> Vec<String> {
        if !self.settings.apply {
            return Vec::new();
        }
        let key = Target::of_packet(body).key();
        let Some(rules) = self.targets.get(&key).cloned() else {
            self.intake.unmatched += 1;
            return Vec::new();
        };
        match self.synthesis.offer(&key, body) {
            Offered::Duplicate => return Vec::new(),
            Offered::Superseded => {
                self.intake.applied += 1;
                self.synthesis_dirty = true;
                return Vec::new();
            }
            Offered::Proposed | Offered::Withdrawn => {}
        }
        self.intake.applied += 1;
        self.synthesis_dirty = true;
        self.recompute(&key);
        rules
            .iter()
            .map(|&(d, p, i)| {
                let point = &self.points[d][p];
                let rule = point.rules[point.adaptive[i].rule].config().name();
                format!("{}/{}/{rule}", point.device, point.config.name)
            })
            .collect()
    }

    fn publish_intake_stats(&mut self) {
        if !self.intake.dirty {
            return;
        }
        self.intake.dirty = false;
        let counts = self.intake.guard.counts();
        let rejected: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(kind, n)| (kind.name().to_string(), serde_json::Value::from(n)))
            .collect();
        let stats = serde_json::json!({
            "accepted": counts.accepted - self.intake.own_packets - self.intake.wrong_topic,
            "own": self.intake.own_packets,
            "wrong_topic": self.intake.wrong_topic,
            "applied": self.intake.applied,
            "unmatched": self.intake.unmatched,
            "rejected": rejected,
        });
        let topic = format!("qis/{}/stats/intake", self.site);
        self.publisher
            .publish_json(topic, &stats, QoS::AtMostOnce, false);
    }

    /// Signs the answered alarm into an outcome packet and leaves it in the outbox.
    fn share(
        &mut self,
        alarm_id: &str,
        answer: &Answer,
        entry: &crate::outcomes::LedgerEntry,
        lead_time_s: Option<u64>,
    ) {
        let Some(sharing) = &self.sharing else { return };
        let Some(record) = self.outcomes.alarms.get(alarm_id) else {
            return;
        };
        let label = record
            .fingerprint
            .as_ref()
            .and_then(|f| self.equipment.get(f))
            .cloned()
            .unwrap_or_default();
        let now = unix_ms(SystemTime::now());
        let seq = (self.outcomes.last_seq + 1).max(now);
        let Some(body) = crate::outcomes::packet_body(
            record,
            answer,
            entry,
            lead_time_s,
            now / 1000,
            sharing.ttl_s,
            seq,
            &label,
        ) else {
            info!(
                alarm_id,
                "No context on this point: the outcome stays local."
            );
            return;
        };
        let bytes = match body.sign(&sharing.key).and_then(|p| p.to_bytes()) {
            Ok(b) => b,
            Err(e) => {
                warn!(alarm_id, error = %e, "Cannot encode the outcome packet.");
                return;
            }
        };
        match sharing.outbox.push(seq, &bytes) {
            Ok(()) => {
                self.outcomes.last_seq = seq;
                let _ = sharing.wake.try_send(());
                info!(
                    alarm_id,
                    seq,
                    bytes = bytes.len(),
                    "Outcome packet queued for the uplink."
                );
            }
            Err(e) => {
                tracing::error!(alarm_id, error = %e, "Cannot store the outcome packet; it is lost.")
            }
        }
    }

    fn acknowledge(&mut self, payload: &[u8]) -> Result<(), String> {
        let cmd: AckCommand = serde_json::from_slice(payload)
            .map_err(|e| format!("ack payload is not valid JSON of the documented form: {e}"))?;
        let (device, point, rule) = match (&cmd.alarm_id, &cmd.device, &cmd.point) {
            (Some(id), None, None) => {
                let parts: Vec<&str> = id.split('/').collect();
                match parts.as_slice() {
                    [d, p, r, _] => (d.to_string(), p.to_string(), Some(r.to_string())),
                    _ => {
                        return Err(format!(
                            "alarm_id `{id}` is not of the form device/point/rule/occurrence"
                        ))
                    }
                }
            }
            (None, Some(d), Some(p)) => (d.clone(), p.clone(), cmd.rule.clone()),
            _ => {
                return Err(
                    "give either `alarm_id`, or `device` and `point` (and optionally `rule`)"
                        .into(),
                )
            }
        };
        let found = self.points.iter().enumerate().find_map(|(d, pts)| {
            pts.iter()
                .position(|s| s.device == device && s.config.name == point)
                .map(|p| (d, p))
        });
        let Some((d, p)) = found else {
            return Err(format!("no point `{point}` on device `{device}`"));
        };
        let now = SystemTime::now();
        let mut transitions = Vec::new();
        for (i, r) in self.points[d][p].rules.iter_mut().enumerate() {
            if rule
                .as_deref()
                .is_some_and(|name| name != r.config().name())
            {
                continue;
            }
            if let Some(t) = r.acknowledge(now) {
                transitions.push((i, t));
            }
        }
        if transitions.is_empty() {
            return Err(format!("nothing to acknowledge on {device}/{point}"));
        }
        for (i, t) in &transitions {
            self.publish_transition(d, p, *i, t, cmd.by.clone(), None);
        }
        self.publish_alert(d, p);
        Ok(())
    }
}

/// What a point's alarms watch: its signal, where in the spectrum, in which unit.
#[derive(Clone, Copy)]
struct Pattern<'a> {
    signal: &'a str,
    frequency: Frequency,
    unit: &'a str,
}

/// The adaptive part of a rule with `adapt` rails on a point with a context, starting at its
/// baseline.
fn adaptive_rule(
    index: usize,
    rule: &Rule,
    fingerprint: Option<&str>,
    Pattern {
        signal,
        frequency,
        unit,
    }: Pattern,
) -> Option<Adaptive> {
    let config = rule.config();
    let adapt = config.adapt?;
    let fingerprint: crate::packet::Fingerprint = fingerprint?.parse().ok()?;
    let (level, baseline) = config.adaptable_level()?;
    let direction = match config.kind {
        AlarmKind::High => crate::packet::Direction::High,
        AlarmKind::Low => crate::packet::Direction::Low,
    };
    let pattern = match config.kind {
        AlarmKind::High => format!("{signal}:high"),
        AlarmKind::Low => format!("{signal}:low"),
    };
    let (feature, _) = crate::outcomes::feature_of(&pattern, None);
    let target = Target {
        fingerprint,
        feature,
        frequency,
        direction,
        unit: crate::outcomes::fit(unit, crate::packet::UNIT_LEN),
    };
    let rails = Rails {
        baseline,
        floor: adapt.floor,
        ceiling: adapt.ceiling,
        direction,
        tighten_only: !adapt.loosen,
    };
    Some(Adaptive {
        rule: index,
        severity: if level == "warning" {
            Severity::Warning
        } else {
            Severity::Alarm
        },
        target: target.key(),
        effective: Effective::at_baseline(&rails),
        rails,
    })
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn alarm_id(point: &PointState, rule: &Rule) -> String {
    format!(
        "{}/{}/{}/{}",
        point.device,
        point.config.name,
        rule.config().name(),
        rule.occurrence()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core() -> Core {
        let text = "[site]\nid = \"t\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"d\"\nhost = \"127.0.0.1\"\npoll_interval_ms = 100\nstale_after_ms = 500\n[[devices.points]]\nname = \"p\"\nregister = \"holding\"\naddress = 0\n";
        let config = crate::config::parse_str(text, "t.toml").expect("valid");
        // The client's event loop is never polled: publications just queue, unobserved.
        let (client, _eventloop) =
            rumqttc::AsyncClient::new(rumqttc::MqttOptions::new("t", "127.0.0.1", 1), 1000);
        let intake = Intake::new(crate::packet::TrustPolicy::default(), [0; 32]);
        Core::new(&config, Publisher::for_tests(client), None, intake)
    }

    fn good(value: f64) -> Sample {
        Sample {
            device: 0,
            point: 0,
            value: Some(value),
            text: None,
            quality: Quality::Good,
            error: None,
            at: SystemTime::now(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_point_without_good_reads_for_stale_after_turns_stale_and_recovers() {
        let mut core = core();
        core.on_sample(good(1.0));
        tokio::time::advance(Duration::from_millis(400)).await;
        core.housekeeping();
        assert_eq!(core.points[0][0].quality, Quality::Good);
        tokio::time::advance(Duration::from_millis(200)).await;
        core.housekeeping();
        assert_eq!(core.points[0][0].quality, Quality::Stale);
        assert_eq!(
            core.points[0][0].value,
            Some(1.0),
            "a stale point keeps its last value"
        );
        core.on_sample(good(2.0));
        assert_eq!(core.points[0][0].quality, Quality::Good);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bad_read_keeps_the_last_good_value() {
        let mut core = core();
        core.on_sample(good(5.0));
        core.on_sample(Sample {
            value: None,
            quality: Quality::Bad,
            error: Some("timeout".into()),
            ..good(0.0)
        });
        assert_eq!(core.points[0][0].quality, Quality::Bad);
        assert_eq!(core.points[0][0].value, Some(5.0));
    }

    #[test]
    fn the_rejection_log_lets_one_line_through_per_interval_and_counts_the_rest() {
        let mut limiter = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limiter.allow(t0), Some(0));
        for i in 1..=1000u64 {
            assert_eq!(limiter.allow(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(limiter.allow(t0 + Duration::from_millis(9_999)), None);
        assert_eq!(limiter.allow(t0 + Duration::from_secs(10)), Some(1001));
        assert_eq!(limiter.allow(t0 + Duration::from_secs(21)), Some(0));
    }
}
