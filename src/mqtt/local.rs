//! The connection to the local broker.
//!
//! rumqttc's `EventLoop` does the I/O and must be polled continuously, so it lives in a task
//! of its own that never waits on anything else. The rest of the gateway publishes through a
//! [`Publisher`] that never blocks: while the broker is away, messages queue in rumqttc's
//! bounded request channel, and when that is full they are dropped and counted (retained alert
//! state is republished in full on every reconnection, so nothing an engineer relies on is
//! lost). On every (re)connection the task subscribes to `qis/<site>/cmd/#`, publishes the
//! retained `online` status and bumps a generation counter that tells the core to republish.

use super::options::{self, MqttSetupError};
use super::payload::{status_payload, timestamp, Event as GatewayEvent};
use super::{Publication, Qos, Topics};
use crate::backoff::Backoff;
use crate::config::MqttConfig;
use bytes::Bytes;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, LastWill, Outgoing, Packet, QoS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long the connection task keeps flushing after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Capacity of rumqttc's request channel: messages held while the broker is away.
const REQUEST_CAPACITY: usize = 4096;

/// A message received on a subscribed topic.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Topic it arrived on.
    pub topic: String,
    /// Raw payload.
    pub payload: Bytes,
}

/// Non-blocking publishing handle.
#[derive(Clone)]
pub struct Publisher {
    client: AsyncClient,
    dropped: Arc<AtomicU64>,
}

impl Publisher {
    /// Queues a message; never waits. Returns false (and counts it) if the queue is full.
    pub fn publish(&self, topic: String, payload: Vec<u8>, qos: QoS, retain: bool) -> bool {
        match self.client.try_publish(topic.clone(), qos, retain, payload) {
            Ok(()) => true,
            Err(e) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // Every drop is counted; the log is thinned so an outage does not flood it.
                if n.is_power_of_two() {
                    warn!(topic = %topic, error = %e, dropped_total = n, "Broker queue full; message dropped.");
                }
                false
            }
        }
    }

    /// Queues a publication of the core, as [`Publisher::publish`] does.
    pub fn send(&self, p: Publication) -> bool {
        let qos = match p.qos {
            Qos::AtMostOnce => QoS::AtMostOnce,
            Qos::AtLeastOnce => QoS::AtLeastOnce,
        };
        self.publish(p.topic, p.payload, qos, p.retain)
    }

    /// Messages dropped since start because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Asks the connection to close cleanly (after what is already queued).
    pub fn disconnect(&self) {
        let _ = self.client.try_disconnect();
    }
}

/// The running connection.
pub struct MqttLink {
    /// Publishing handle.
    pub publisher: Publisher,
    /// Incremented on every successful (re)connection.
    pub connections: watch::Receiver<u64>,
    /// Whether the broker is connected now.
    pub up: watch::Receiver<bool>,
    /// The connection task; ends after a clean disconnect or the shutdown grace period.
    pub task: tokio::task::JoinHandle<()>,
}

/// Connects (in the background) to the broker in `config`.
pub fn start(
    config: &MqttConfig,
    site: &str,
    inbound: mpsc::Sender<Inbound>,
    shutdown: CancellationToken,
) -> Result<MqttLink, MqttSetupError> {
    let topics = Topics::new(site);
    let client_id = config.local_client_id(site);
    let will = LastWill::new(
        topics.status(),
        status_payload(site, false, Some("connection_lost"), None, &[]),
        QoS::AtLeastOnce,
        true,
    );
    let brokers = options::Brokers::new(config, &client_id, |o| {
        o.set_clean_session(true);
        o.set_last_will(will.clone());
    })?;
    let (client, mut eventloop) = AsyncClient::new(brokers.options(), REQUEST_CAPACITY);
    eventloop.set_network_options(options::network());
    let (generation_tx, generation_rx) = watch::channel(0u64);
    let (up_tx, up_rx) = watch::channel(false);
    let driver = Driver {
        up: up_tx,
        eventloop,
        client: client.clone(),
        topics,
        site: site.to_string(),
        broker: brokers.name().to_string(),
        brokers,
        inbound,
        generation: generation_tx,
        backoff: Backoff::new(
            Duration::from_millis(500),
            Duration::from_millis(config.reconnect_max_ms),
        ),
        busy_refusals: 0,
        busy_log: None,
    };
    let task = tokio::spawn(driver.run(shutdown));
    Ok(MqttLink {
        publisher: Publisher {
            client,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        connections: generation_rx,
        up: up_rx,
        task,
    })
}

struct Driver {
    eventloop: EventLoop,
    client: AsyncClient,
    topics: Topics,
    site: String,
    /// `host:port` of the broker tried now.
    broker: String,
    /// The brokers tried in turn.
    brokers: options::Brokers,
    inbound: mpsc::Sender<Inbound>,
    generation: watch::Sender<u64>,
    up: watch::Sender<bool>,
    backoff: Backoff,
    /// Commands refused because the core's queue was full, and when that was last logged.
    busy_refusals: u64,
    busy_log: Option<Instant>,
}

/// Commands waiting for the core at most; one more is refused with a `command_rejected` event.
pub const COMMAND_CAPACITY: usize = 64;

impl Driver {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut connected = false;
        let mut failures = 0u64;
        let mut stop_at: Option<Instant> = None;
        loop {
            let event = tokio::select! {
                event = self.eventloop.poll() => event,
                _ = shutdown.cancelled(), if stop_at.is_none() => {
                    stop_at = Some(Instant::now() + SHUTDOWN_GRACE);
                    continue;
                }
                _ = sleep_until_opt(stop_at) => break,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack)))
                    if ack.code == ConnectReturnCode::Success =>
                {
                    connected = true;
                    failures = 0;
                    self.backoff.reset();
                    info!(broker = %self.broker, "Connected to the local broker.");
                    if let Err(e) = self
                        .client
                        .try_subscribe(self.topics.commands(), QoS::AtLeastOnce)
                    {
                        warn!(error = %e, "Could not queue the command subscription.");
                    }
                    if stop_at.is_none() {
                        let online =
                            status_payload(&self.site, true, None, Some(SystemTime::now()), &[]);
                        let _ = self.client.try_publish(
                            self.topics.status(),
                            QoS::AtLeastOnce,
                            true,
                            online,
                        );
                    }
                    self.generation.send_modify(|g| *g += 1);
                    self.up.send_replace(true);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let message = Inbound {
                        topic: p.topic.clone(),
                        payload: p.payload,
                    };
                    if self.inbound.try_send(message).is_err() {
                        self.refuse_busy(&p.topic);
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    self.finish_disconnect().await;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    if stop_at.is_some() {
                        break;
                    }
                    failures += 1;
                    let delay = self.backoff.next_delay();
                    if connected {
                        warn!(broker = %self.broker, error = %e, "Lost the local broker; reconnecting with backoff.");
                    } else if failures == 1 || failures.is_power_of_two() {
                        warn!(broker = %self.broker, error = %e, attempts = failures, retry_in_ms = delay.as_millis() as u64, "Cannot reach the local broker; polling and alarms go on.");
                    }
                    connected = false;
                    self.up.send_if_modified(|up| std::mem::replace(up, false));
                    if self.brokers.next(&mut self.eventloop) {
                        self.broker = self.brokers.name().to_string();
                        info!(broker = %self.broker, "Trying the next local broker.");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        }
        debug!("Broker connection task stopped.");
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    /// rumqttc reports the DISCONNECT before it is surely on the wire: polls on until the
    /// broker closes the connection, or a moment has passed, so the broker does not publish
    /// the last will over a clean stop.
    async fn finish_disconnect(&mut self) {
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while self.eventloop.poll().await.is_ok() {}
        })
        .await;
        debug!("Disconnect sent.");
    }

    /// A command arrived while the core's command queue is full (a flood): it is refused with a
    /// `command_rejected` event saying so, never dropped silently, and logged once a minute.
    fn refuse_busy(&mut self, topic: &str) {
        let event = GatewayEvent::CommandRejected {
            site: self.site.clone(),
            topic: topic.to_string(),
            reason: format!(
                "the gateway is busy: {COMMAND_CAPACITY} commands wait already; nothing done, send it again"
            ),
            ts: timestamp(SystemTime::now()),
        };
        let payload = serde_json::to_vec(&event).unwrap_or_default();
        let _ = self
            .client
            .try_publish(self.topics.events(), QoS::AtLeastOnce, false, payload);
        self.busy_refusals += 1;
        if self
            .busy_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.busy_log = Some(Instant::now());
            warn!(
                topic,
                refused = self.busy_refusals,
                "Command queue full; commands refused with a command_rejected event."
            );
        }
    }
}
