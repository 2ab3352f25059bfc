//! The uplink: the connection to the fleet broker. It publishes the outbox, one packet in
//! flight at a time, deleting each on its PUBACK, and passes on what arrives on the context
//! topics it subscribes to. Its state (connecting, connected, subscribed) is reported so the
//! gateway can show it and tests can wait for it.
//!
//! The session is persistent (clean session off) and incoming packets are acknowledged by the
//! core once applied and saved, so the broker keeps for the gateway what arrives while it is
//! down or before its state is on disk.

use super::options::{self, MqttSetupError};
use super::UplinkState;
use crate::backoff::Backoff;
use crate::config::MqttConfig;
use crate::outcomes::outbox::Outbox;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, Packet, QoS};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// A packet from a peer, for the intake guard.
#[derive(Debug)]
pub struct Incoming {
    /// The topic it arrived on.
    pub topic: String,
    /// The packet.
    pub payload: bytes::Bytes,
    /// Acknowledges it to the broker: send once what it changed is on disk. Until then the
    /// broker keeps it in the gateway's session and delivers it again after a crash.
    pub ack: Option<Ack>,
}

/// The PUBACK owed for an incoming packet.
#[derive(Debug)]
pub struct Ack {
    client: AsyncClient,
    publish: rumqttc::Publish,
}

impl Ack {
    /// Sends the PUBACK (dropped quietly when the connection is gone: the broker then delivers
    /// the packet again, and the replay memory makes that harmless).
    pub fn send(self) {
        let _ = self.client.try_ack(&self.publish);
    }
}

/// The running uplink.
pub struct Uplink {
    /// The task; ends on shutdown.
    pub task: tokio::task::JoinHandle<()>,
    /// Its connection state.
    pub state: watch::Receiver<UplinkState>,
}

/// What the uplink needs besides its broker.
pub struct UplinkParts {
    /// Packets to publish.
    pub outbox: Outbox,
    /// A message means a new packet is waiting.
    pub wake: mpsc::Receiver<()>,
    /// Context topics to subscribe to.
    pub subscriptions: Vec<String>,
    /// Where peers' packets go.
    pub incoming: mpsc::Sender<Incoming>,
}

/// Starts the uplink to the broker in `config` as `client_id`.
pub fn start(
    config: &MqttConfig,
    client_id: String,
    parts: UplinkParts,
    shutdown: CancellationToken,
) -> Result<Uplink, MqttSetupError> {
    start_with(config, client_id, parts, options::network(), shutdown)
}

/// [`start`] with other socket options, for benches that compare them.
pub fn start_with(
    config: &MqttConfig,
    client_id: String,
    parts: UplinkParts,
    network: rumqttc::NetworkOptions,
    shutdown: CancellationToken,
) -> Result<Uplink, MqttSetupError> {
    let mut options = options::options(config, client_id)?;
    options.set_clean_session(false);
    options.set_manual_acks(true);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    eventloop.set_network_options(network);
    let (state_tx, state) = watch::channel(UplinkState::Disconnected);
    let driver = Driver {
        client,
        eventloop,
        broker: options::broker(config),
        backoff: Backoff::new(
            Duration::from_millis(500),
            Duration::from_millis(config.reconnect_max_ms),
        ),
        parts,
        state: state_tx,
        connected: false,
        in_flight: None,
        unacknowledged_subscriptions: 0,
        storage_retry: None,
        storage_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        storage_log: crate::intake::LogLimiter::new(STORAGE_LOG_INTERVAL),
    };
    Ok(Uplink {
        task: tokio::spawn(driver.run(shutdown)),
        state,
    })
}

/// The packet published and not yet acknowledged.
struct InFlight {
    seq: u64,
    /// Its packet id, once the event loop has sent it.
    pkid: Option<u16>,
}

/// At most one outbox storage ERROR line per this interval.
const STORAGE_LOG_INTERVAL: Duration = Duration::from_secs(60);

struct Driver {
    client: AsyncClient,
    eventloop: EventLoop,
    broker: String,
    backoff: Backoff,
    parts: UplinkParts,
    state: watch::Sender<UplinkState>,
    connected: bool,
    /// The packet published and not yet acknowledged, one at a time, with its packet id once
    /// the event loop has sent it: only the PUBACK with that id removes it (a PUBACK for an
    /// earlier session's resend of the same packet must not remove the next one).
    in_flight: Option<InFlight>,
    /// SUBACKs still owed since the last CONNACK.
    unacknowledged_subscriptions: usize,
    /// When to read the outbox again after a storage error, and how long to wait next time.
    storage_retry: Option<tokio::time::Instant>,
    storage_backoff: Backoff,
    storage_log: crate::intake::LogLimiter,
}

impl Driver {
    async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(()) = self.parts.wake.recv() => {
                    if self.connected && self.in_flight.is_none() && self.storage_retry.is_none() {
                        self.send_next();
                    }
                    continue;
                }
                _ = sleep_until(self.storage_retry), if self.storage_retry.is_some() => {
                    self.storage_retry = None;
                    if self.connected && self.in_flight.is_none() {
                        self.send_next();
                    }
                    continue;
                }
                event = self.eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(packet)) => self.on_packet(packet),
                Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => {
                    if let Some(f) = self.in_flight.as_mut() {
                        f.pkid.get_or_insert(pkid);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if self.connected {
                        warn!(broker = %self.broker, error = %e, "Uplink lost; packets wait in the outbox.");
                    }
                    self.connected = false;
                    self.in_flight = None;
                    self.state.send_replace(UplinkState::Disconnected);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(self.backoff.next_delay()) => {}
                    }
                }
            }
        }
    }

    fn on_packet(&mut self, packet: Packet) {
        match packet {
            Packet::ConnAck(ack) if ack.code == ConnectReturnCode::Success => {
                let waiting = self.parts.outbox.pending().unwrap_or_default();
                info!(broker = %self.broker, waiting, "Uplink connected.");
                self.connected = true;
                self.backoff.reset();
                self.unacknowledged_subscriptions = self.parts.subscriptions.len();
                for topic in &self.parts.subscriptions {
                    let _ = self.client.try_subscribe(topic.clone(), QoS::AtLeastOnce);
                }
                self.state.send_replace(self.subscription_state());
                self.send_next();
            }
            Packet::SubAck(_) => {
                self.unacknowledged_subscriptions =
                    self.unacknowledged_subscriptions.saturating_sub(1);
                if self.unacknowledged_subscriptions == 0
                    && *self.state.borrow() != UplinkState::Subscribed
                {
                    info!(broker = %self.broker, topics = self.parts.subscriptions.len(), "Uplink subscribed to the context topics.");
                    self.state.send_replace(UplinkState::Subscribed);
                }
            }
            Packet::Publish(p) => {
                let item = Incoming {
                    topic: p.topic.clone(),
                    payload: p.payload.clone(),
                    ack: Some(Ack {
                        client: self.client.clone(),
                        publish: p,
                    }),
                };
                if self.parts.incoming.try_send(item).is_err() {
                    warn!("Intake queue full; a peer packet was left unacknowledged (the broker delivers it again on reconnect).");
                }
            }
            Packet::PubAck(ack) => {
                let Some(f) = self.in_flight.take_if(|f| f.pkid == Some(ack.pkid)) else {
                    return;
                };
                debug!(seq = f.seq, "Outcome packet acknowledged by the uplink.");
                match self.parts.outbox.remove(f.seq) {
                    Ok(()) => self.send_next(),
                    Err(e) => {
                        // Retired: not sent again; the next packet goes after the backoff.
                        self.storage_failed("delete an acknowledged packet", &e);
                    }
                }
            }
            _ => {}
        }
    }

    fn subscription_state(&self) -> UplinkState {
        if self.unacknowledged_subscriptions == 0 {
            UplinkState::Subscribed
        } else {
            UplinkState::Connected
        }
    }

    /// A storage error: read the outbox again after the backoff, not sooner; log (limited).
    fn storage_failed(&mut self, what: &str, e: &crate::db::StorageError) {
        let delay = self.storage_backoff.next_delay();
        self.storage_retry = Some(tokio::time::Instant::now() + delay);
        if let Some(held_back) = self.storage_log.allow(std::time::Instant::now()) {
            warn!(what, error = %e, retry_in_ms = delay.as_millis() as u64, held_back, "Outbox storage error; retrying with backoff (an acknowledged packet is not sent again).");
        }
    }

    /// Publishes the oldest waiting packet on its context's topic.
    fn send_next(&mut self) {
        self.in_flight = None;
        let w = match self.parts.outbox.oldest() {
            Ok(Some(w)) => {
                self.storage_backoff.reset();
                w
            }
            Ok(None) => {
                self.storage_backoff.reset();
                return;
            }
            Err(e) => return self.storage_failed("read the outbox", &e),
        };
        if self
            .client
            .try_publish(w.topic, QoS::AtLeastOnce, false, w.bytes)
            .is_ok()
        {
            self.in_flight = Some(InFlight {
                seq: w.seq,
                pkid: None,
            });
        }
    }
}

/// Sleeps until `at`; forever when None (the branch is disabled then anyway).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
