//! An OPC UA device: its points read by one subscription (monitored items with sampling
//! interval and deadband) or by a Read of every node each interval.

use super::{open, own_certificate, scalar, Connection, LinkEvent, Scalar};
use crate::backoff::Backoff;
use crate::config::{OpcUaConfig, OpcUaRead};
use crate::sources::modbus::engineering;
use crate::sources::{DeviceStats, Sample, SourceEvent};
use opcua::client::{DataChangeCallback, MonitoredItem};
use opcua::types::{
    AttributeId, DataChangeFilter, DataChangeTrigger, DataValue, DeadbandType, ExtensionObject,
    MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId, ReadValueId,
    TimestampsToReturn,
};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Reads one OPC UA device until cancelled.
pub struct OpcUaSource {
    index: usize,
    config: OpcUaConfig,
    nodes: Vec<NodeId>,
    pki: PathBuf,
    events: mpsc::Sender<SourceEvent>,
    stats: DeviceStats,
    latency_sum_ms: f64,
    /// A session was up before: the next one is a reconnection, in this session or a new one.
    connected_before: bool,
}

/// How a session ended.
enum Ended {
    Shutdown,
    Reopen(String),
}

impl OpcUaSource {
    /// A source for device number `index`, with the gateway's PKI folder.
    pub fn new(
        index: usize,
        config: OpcUaConfig,
        pki: PathBuf,
        events: mpsc::Sender<SourceEvent>,
    ) -> Self {
        // Node ids were checked when the configuration was loaded.
        let nodes = config
            .points
            .iter()
            .map(|p| {
                p.node()
                    .and_then(|n| n.node.trim().parse().ok())
                    .unwrap_or_else(NodeId::null)
            })
            .collect();
        Self {
            index,
            config,
            nodes,
            pki,
            events,
            stats: DeviceStats::default(),
            latency_sum_ms: 0.0,
            connected_before: false,
        }
    }

    /// Runs until `shutdown` is cancelled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let c = &self.config.connection;
        let mut backoff = Backoff::new(
            Duration::from_millis(c.backoff_initial_ms),
            Duration::from_millis(c.backoff_max_ms),
        );
        info!(device = %self.config.name, endpoint = %c.endpoint, client_certificate = %own_certificate(&self.pki).display(), "OPC UA device.");
        let mut last_error = String::new();
        loop {
            let opened = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = open(&self.config.connection, &self.pki, &self.config.name) => r,
            };
            let reason = match opened {
                Ok(connection) => match self.serve(connection, &shutdown, &mut backoff).await {
                    Ended::Shutdown => return,
                    Ended::Reopen(reason) => reason,
                },
                Err(e) => e.to_string(),
            };
            if reason != last_error {
                warn!(device = %self.config.name, endpoint = %self.config.connection.endpoint, error = %reason, "OPC UA server not available; retrying.");
                last_error = reason.clone();
            }
            self.stats.transport_errors += 1;
            self.link(false, Some(reason.clone())).await;
            self.all_bad(&reason).await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// Reads through one session until it ends.
    async fn serve(
        &mut self,
        mut connection: Connection,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Ended {
        // Bounded: the subscription callback cannot wait, so when the core falls this far behind
        // the newest values are dropped and counted (a later change brings the point up to date).
        let (values_tx, mut values) = mpsc::channel::<(u32, DataValue)>(VALUE_CAPACITY);
        let mut session = SessionState::default();
        let mut ticker = tokio::time::interval(Duration::from_millis(self.config.interval_ms));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let stats_every = Duration::from_millis(self.config.stats_interval_ms);
        let mut stats_sent = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // The subscription first: closing a session with publish requests
                    // outstanding makes the server fail each of them, and the client library
                    // logs every such answer as an ERROR.
                    super::closing();
                    if let Some(id) = session.subscription {
                        let _ = timeout(Duration::from_secs(1), connection.session.delete_subscription(id)).await;
                    }
                    let _ = timeout(Duration::from_secs(1), connection.session.disconnect()).await;
                    info!(device = %self.config.name, "OPC UA session closed.");
                    return Ended::Shutdown;
                }
                event = connection.events.recv() => {
                    let Some(event) = event else {
                        return Ended::Reopen("session task ended".into());
                    };
                    if let Some(ended) = self.on_link_event(event, &connection, &mut session, backoff, &values_tx).await {
                        return ended;
                    }
                }
                Some((handle, value)) = values.recv() => {
                    self.stats.requests += 1;
                    let at = SystemTime::now();
                    let mut batch: Vec<Sample> = self.notified(handle, &value, at).into_iter().collect();
                    while let Ok((handle, value)) = values.try_recv() {
                        self.stats.requests += 1;
                        batch.extend(self.notified(handle, &value, at));
                    }
                    if !batch.is_empty() {
                        let _ = self.events.send(SourceEvent::Samples(batch)).await;
                    }
                }
                _ = ticker.tick() => {
                    if self.config.read == OpcUaRead::Poll && session.connected {
                        self.poll(&connection).await;
                    }
                    if stats_sent.elapsed() >= stats_every {
                        stats_sent = Instant::now();
                        let _ = self.events.send(SourceEvent::Stats { device: self.index, stats: self.stats.clone() }).await;
                    }
                }
            }
        }
    }

    /// What the session's event loop reported; `Some` when the session is over.
    async fn on_link_event(
        &mut self,
        event: LinkEvent,
        connection: &Connection,
        session: &mut SessionState,
        backoff: &mut Backoff,
        values: &mpsc::Sender<(u32, DataValue)>,
    ) -> Option<Ended> {
        match event {
            LinkEvent::Up => {
                session.connected = true;
                backoff.reset();
                session.retry_reported.clear();
                if self.connected_before {
                    self.stats.reconnects += 1;
                    info!(device = %self.config.name, "OPC UA session re-established.");
                } else {
                    info!(device = %self.config.name, endpoint = %self.config.connection.endpoint, "OPC UA session established.");
                }
                self.connected_before = true;
                self.link(true, None).await;
                if self.config.read == OpcUaRead::Subscribe {
                    if session.subscription.is_some() {
                        // The session re-created or transferred the subscription while
                        // reconnecting; async-opcua 0.19 starts publishing for it only when
                        // asked.
                        connection.session.trigger_publish_now();
                    } else {
                        match self.subscribe(connection, values.clone()).await {
                            Ok(id) => session.subscription = Some(id),
                            Err(reason) => return Some(Ended::Reopen(reason)),
                        }
                    }
                }
            }
            LinkEvent::Down(reason) => {
                session.connected = false;
                warn!(device = %self.config.name, error = %reason, "OPC UA connection lost; reconnecting.");
                self.stats.transport_errors += 1;
                self.link(false, Some(reason.clone())).await;
                self.all_bad(&reason).await;
            }
            LinkEvent::Retrying(reason) => {
                self.stats.transport_errors += 1;
                if reason != session.retry_reported {
                    warn!(device = %self.config.name, error = %reason, "OPC UA reconnection failed; retrying.");
                    self.link(false, Some(reason.clone())).await;
                    self.all_bad(&reason).await;
                    session.retry_reported = reason;
                }
            }
            LinkEvent::Ended(reason) => return Some(Ended::Reopen(reason)),
        }
        None
    }

    /// One subscription with a monitored item per point; the callback hands values over by
    /// client handle (point index + 1).
    async fn subscribe(
        &mut self,
        connection: &Connection,
        values: mpsc::Sender<(u32, DataValue)>,
    ) -> Result<u32, String> {
        let interval = Duration::from_millis(self.config.interval_ms);
        let session = &connection.session;
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let device = self.config.name.clone();
        let id = session
            .create_subscription(
                interval,
                // Lifetime and keep-alive counts in publishing intervals: a keep-alive at
                // least every 10 s, the subscription kept 3 keep-alives without a client.
                30 * keep_alive_count(interval),
                keep_alive_count(interval),
                0,
                0,
                true,
                DataChangeCallback::new(move |value: DataValue, item: &MonitoredItem| {
                    if values.try_send((item.client_handle(), value)).is_err() {
                        let n = dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        if n.is_power_of_two() {
                            warn!(device = %device, dropped_total = n, "OPC UA data changes arrive faster than the gateway takes them; the newest were dropped.");
                        }
                    }
                }),
            )
            .await
            .map_err(|e| format!("creating the subscription: {e}"))?;
        let requests = self.monitored_items();
        let results = session
            .create_monitored_items(id, TimestampsToReturn::Both, requests)
            .await
            .map_err(|e| format!("creating monitored items: {e}"))?;
        let at = SystemTime::now();
        let mut refused = Vec::new();
        for (i, r) in results.iter().enumerate() {
            let status = r.result.status_code;
            if status.is_bad() {
                let node = self.config.points[i].node().map_or("", |n| n.node.as_str());
                let reason = format!("{node}: {status}");
                warn!(device = %self.config.name, point = %self.config.points[i].name, error = %reason, "The server refused to monitor this node.");
                refused.push(self.bad(i, reason, at));
            }
        }
        if !refused.is_empty() {
            let _ = self.events.send(SourceEvent::Samples(refused)).await;
        }
        info!(device = %self.config.name, items = results.len(), interval_ms = self.config.interval_ms, "OPC UA subscription created.");
        Ok(id)
    }

    /// A monitored item per point, by client handle (point index + 1), with its deadband.
    fn monitored_items(&self) -> Vec<MonitoredItemCreateRequest> {
        self.config
            .points
            .iter()
            .zip(&self.nodes)
            .enumerate()
            .map(|(i, (p, node))| {
                let (deadband, sampling_ms) = p
                    .node()
                    .map_or((0.0, None), |n| (n.deadband, n.sampling_interval_ms));
                let filter = if deadband > 0.0 {
                    ExtensionObject::from_message(DataChangeFilter {
                        trigger: DataChangeTrigger::StatusValue,
                        deadband_type: DeadbandType::Absolute as u32,
                        deadband_value: deadband,
                    })
                } else {
                    ExtensionObject::null()
                };
                MonitoredItemCreateRequest {
                    item_to_monitor: ReadValueId {
                        node_id: node.clone(),
                        attribute_id: AttributeId::Value as u32,
                        ..Default::default()
                    },
                    monitoring_mode: MonitoringMode::Reporting,
                    requested_parameters: MonitoringParameters {
                        client_handle: i as u32 + 1,
                        sampling_interval: sampling_ms.unwrap_or(self.config.interval_ms) as f64,
                        filter,
                        queue_size: 1,
                        discard_oldest: true,
                    },
                }
            })
            .collect()
    }

    /// One Read of every node.
    async fn poll(&mut self, connection: &Connection) {
        let reads: Vec<ReadValueId> = self
            .nodes
            .iter()
            .map(|node| ReadValueId {
                node_id: node.clone(),
                attribute_id: AttributeId::Value as u32,
                ..Default::default()
            })
            .collect();
        self.stats.polls += 1;
        self.stats.requests += 1;
        self.stats.requests_last_poll = 1;
        let started = Instant::now();
        let limit = Duration::from_millis(self.config.connection.timeout_ms);
        let result = timeout(
            limit,
            connection
                .session
                .read(&reads, TimestampsToReturn::Neither, 0.0),
        )
        .await;
        let at = SystemTime::now();
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.latency_sum_ms += ms;
        self.stats.latency_ms_max = self.stats.latency_ms_max.max(ms);
        self.stats.latency_ms_avg = self.latency_sum_ms / self.stats.requests as f64;
        let samples = match result {
            Ok(Ok(values)) if values.len() == reads.len() => values
                .iter()
                .enumerate()
                .map(|(i, v)| self.sample(i, v, at))
                .collect(),
            Ok(Ok(values)) => {
                self.stats.transport_errors += 1;
                let reason = format!("{} values returned, {} asked", values.len(), reads.len());
                (0..reads.len())
                    .map(|i| self.bad(i, reason.clone(), at))
                    .collect()
            }
            Ok(Err(e)) => {
                self.stats.transport_errors += 1;
                let reason = format!("read failed: {e}");
                (0..reads.len())
                    .map(|i| self.bad(i, reason.clone(), at))
                    .collect()
            }
            Err(_) => {
                self.stats.timeouts += 1;
                let reason = format!("no answer within {} ms", limit.as_millis());
                (0..reads.len())
                    .map(|i| self.bad(i, reason.clone(), at))
                    .collect()
            }
        };
        let _ = self.events.send(SourceEvent::Samples(samples)).await;
    }

    /// The sample of a data change, by client handle (point index + 1); None for a handle
    /// this device did not create.
    fn notified(&self, handle: u32, value: &DataValue, at: SystemTime) -> Option<Sample> {
        let i = (handle as usize).checked_sub(1)?;
        (i < self.config.points.len()).then(|| self.sample(i, value, at))
    }

    /// The sample of point `i` from a value the server sent.
    fn sample(&self, i: usize, value: &DataValue, at: SystemTime) -> Sample {
        let point = &self.config.points[i];
        if let Some(status) = value.status.filter(|s| s.is_bad()) {
            return self.bad(i, format!("the server reports {status}"), at);
        }
        let Some(v) = value.value.as_ref() else {
            return self.bad(i, "the server sent no value".into(), at);
        };
        match scalar(v) {
            Ok(Scalar::Number(raw)) => Sample::number(self.index, i, engineering(point, raw), at),
            Ok(Scalar::Text(text)) => Sample::text(self.index, i, text, at),
            Err(reason) => self.bad(i, reason, at),
        }
    }

    fn bad(&self, i: usize, reason: String, at: SystemTime) -> Sample {
        Sample::bad(self.index, i, reason, at)
    }

    async fn link(&self, up: bool, error: Option<String>) {
        crate::sources::report_link(&self.events, self.index, up, error).await;
    }

    async fn all_bad(&self, reason: &str) {
        crate::sources::report_all_bad(&self.events, self.index, self.config.points.len(), reason)
            .await;
    }
}

/// Publishing intervals between keep-alives: about 10 s, at least 1.
fn keep_alive_count(interval: Duration) -> u32 {
    (10_000 / interval.as_millis().max(1)).clamp(1, 1_000) as u32
}

/// Data changes held between the subscription and the device task.
const VALUE_CAPACITY: usize = 4096;

/// Where one session stands.
#[derive(Default)]
struct SessionState {
    /// The subscription, once created (it survives reconnections of the session).
    subscription: Option<u32>,
    /// The session is connected.
    connected: bool,
    /// The last reconnection failure logged, so a repeated one is not.
    retry_reported: String,
}
