//! The uplink: the connection to the fleet broker. It publishes the outbox, one packet in
//! flight at a time, deleting each on its PUBACK (v3 packets retained, one topic per source
//! and pattern), clears its retained packets as they expire once the outbox is empty, and
//! passes on what arrives on the context topics it subscribes to. Its state (connecting, connected, subscribed) is reported so the
//! gateway can show it and tests can wait for it.
//!
//! The session is persistent (clean session off) and incoming packets are acknowledged by the
//! core once applied and saved, so the broker keeps for the gateway what arrives while it is
//! down or before its state is on disk.

use super::options::{self, MqttSetupError};
use super::UplinkState;
use crate::backoff::Backoff;
use crate::config::MqttConfig;
use crate::outcomes::outbox::{self, Clear, Outbox};
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
    /// The packet; empty when its publisher cleared a retained packet (expired).
    pub payload: bytes::Bytes,
    /// Sent by the broker as a retained message, on subscribing.
    pub retained: bool,
    /// Acknowledges it to the broker: send once what it changed is on disk. Until then the
    /// broker keeps it in the gateway's session and delivers it again after a crash.
    pub ack: Option<Ack>,
}

pub use super::acks::Ack;

/// Requests (publishes, acknowledgements) queued for the uplink's connection: more than the
/// acknowledgements the core can release at once (the broker's in-flight window, mosquitto's
/// default 20, or an intake batch), so an acknowledgement is not refused for lack of room.
const REQUEST_CAPACITY: usize = 1024;

/// The running uplink.
pub struct Uplink {
    /// The task; ends on shutdown.
    pub task: tokio::task::JoinHandle<()>,
    /// Its connection state.
    pub state: watch::Receiver<UplinkState>,
    /// Packets waiting in the outbox (None while it cannot be read).
    pub outbox: watch::Receiver<Option<usize>>,
}

/// What the uplink needs besides its broker.
pub struct UplinkParts {
    /// Packets to publish.
    pub outbox: Outbox,
    /// A message means a new packet is waiting.
    pub wake: mpsc::Receiver<()>,
    /// Context topics to subscribe to (and the join request topics, with `join`).
    pub subscriptions: Vec<String>,
    /// Join requests: asked on every subscription, answered from the live packets.
    pub join: Option<super::join::Join>,
    /// Where peers' packets go. When it is full the uplink stops reading from the broker
    /// until there is room (flow control: nothing is dropped).
    pub incoming: mpsc::Sender<Incoming>,
    /// How long the packet in flight may wait for its PUBACK before the connection is
    /// dropped and the packet sent again.
    pub puback_timeout: Duration,
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
    let brokers = options::Brokers::new(config, &client_id, |o| {
        o.set_clean_session(false);
        o.set_manual_acks(true);
    })?;
    let (client, mut eventloop) = AsyncClient::new(brokers.options(), REQUEST_CAPACITY);
    eventloop.set_network_options(network);
    let (state_tx, state) = watch::channel(UplinkState::Disconnected);
    let (outbox_tx, outbox) = watch::channel(None);
    let acks = super::acks::Acks::start(client.clone());
    let driver = Driver {
        client,
        eventloop,
        broker: brokers.name().to_string(),
        brokers,
        backoff: Backoff::new(
            Duration::from_millis(500),
            Duration::from_millis(config.reconnect_max_ms),
        ),
        parts,
        state: state_tx,
        outbox: outbox_tx,
        connected: false,
        in_flight: None,
        clear_at: None,
        unacknowledged_subscriptions: 0,
        storage_retry: None,
        storage_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        storage_log: crate::intake::LogLimiter::new(STORAGE_LOG_INTERVAL),
        acks,
    };
    Ok(Uplink {
        task: tokio::spawn(driver.run(shutdown)),
        state,
        outbox,
    })
}

/// The packet (or retained clear) published and not yet acknowledged.
struct InFlight {
    seq: u64,
    /// A clear of an expired retained packet, not an outbox packet.
    clear: Option<Clear>,
    /// Its packet id, once the event loop has sent it.
    pkid: Option<u16>,
    /// When it was handed to the event loop.
    since: tokio::time::Instant,
}

/// At most one outbox storage ERROR line per this interval.
const STORAGE_LOG_INTERVAL: Duration = Duration::from_secs(60);

struct Driver {
    client: AsyncClient,
    eventloop: EventLoop,
    /// `host:port` of the broker tried now.
    broker: String,
    /// The brokers tried in turn.
    brokers: options::Brokers,
    backoff: Backoff,
    parts: UplinkParts,
    state: watch::Sender<UplinkState>,
    /// Packets waiting, counted again whenever one is queued or acknowledged.
    outbox: watch::Sender<Option<usize>>,
    connected: bool,
    /// The packet published and not yet acknowledged, one at a time, with its packet id once
    /// the event loop has sent it: only the PUBACK with that id removes it (a PUBACK for an
    /// earlier session's resend of the same packet must not remove the next one).
    in_flight: Option<InFlight>,
    /// When the next retained packet expires, while the outbox is empty.
    clear_at: Option<tokio::time::Instant>,
    /// SUBACKs still owed since the last CONNACK.
    unacknowledged_subscriptions: usize,
    /// When to read the outbox again after a storage error, and how long to wait next time.
    storage_retry: Option<tokio::time::Instant>,
    storage_backoff: Backoff,
    storage_log: crate::intake::LogLimiter,
    /// Where the core's acknowledgements go.
    acks: super::acks::Acks,
}

/// How long the uplink waits at shutdown for the core's last acknowledgements to reach the
/// broker.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

impl Driver {
    async fn run(mut self, shutdown: CancellationToken) {
        tokio::select! {
            _ = self.serve(&shutdown) => {}
            _ = shutdown.cancelled() => {}
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.flush_acks()).await;
    }

    /// At shutdown: once the core has stopped (it closes the intake queue after releasing its
    /// last acknowledgements) and every acknowledgement is with the connection, disconnects,
    /// polling the connection until the DISCONNECT is out, so those acknowledgements are on
    /// the wire. Packets arriving meanwhile are not taken (the broker delivers them again).
    async fn flush_acks(&mut self) {
        if !self.connected {
            return;
        }
        let mut disconnecting = false;
        loop {
            if !disconnecting && self.parts.incoming.is_closed() && self.acks.pending() == 0 {
                disconnecting = self.client.try_disconnect().is_ok();
            }
            let event = tokio::select! {
                e = self.eventloop.poll() => e,
                _ = tokio::time::sleep(Duration::from_millis(10)) => continue,
            };
            match event {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                _ => {}
            }
        }
    }

    async fn serve(&mut self, shutdown: &CancellationToken) {
        self.count_outbox();
        loop {
            let puback_deadline = self.puback_deadline();
            let storage_retry = self.storage_retry;
            let clear_at = self.clear_at;
            let answer_at = self
                .parts
                .join
                .as_ref()
                .and_then(|j| j.next_at())
                .filter(|_| self.connected);
            let event = tokio::select! {
                _ = sleep_until(answer_at), if answer_at.is_some() => {
                    self.answer_next();
                    continue;
                }
                Some(()) = self.parts.wake.recv() => {
                    self.count_outbox();
                    if self.connected && self.in_flight.is_none() && self.storage_retry.is_none() {
                        self.send_next();
                    }
                    continue;
                }
                _ = sleep_until(puback_deadline), if puback_deadline.is_some() => {
                    self.puback_timed_out();
                    continue;
                }
                _ = sleep_until(clear_at), if clear_at.is_some() => {
                    self.clear_at = None;
                    if self.connected && self.in_flight.is_none() && self.storage_retry.is_none() {
                        self.send_next();
                    }
                    continue;
                }
                _ = sleep_until(storage_retry), if storage_retry.is_some() => {
                    self.storage_retry = None;
                    if self.connected && self.in_flight.is_none() {
                        self.send_next();
                    }
                    continue;
                }
                event = self.eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if !self.on_publish(p).await {
                        break;
                    }
                }
                Ok(Event::Incoming(packet)) => self.on_packet(packet),
                // A QoS 0 publish (a join request or answer) has packet id 0.
                Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) if pkid != 0 => {
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
                    if self.brokers.next(&mut self.eventloop) {
                        self.broker = self.brokers.name().to_string();
                        info!(broker = %self.broker, "Trying the next uplink broker.");
                    }
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
                self.count_outbox();
                let waiting = self.outbox.borrow().unwrap_or_default();
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
                    self.ask();
                }
            }
            Packet::PubAck(ack) => {
                let Some(f) = self.in_flight.take_if(|f| f.pkid == Some(ack.pkid)) else {
                    return;
                };
                let removed = match &f.clear {
                    Some(clear) => {
                        debug!(topic = %clear.topic, "Expired retained packet cleared.");
                        self.parts.outbox.cleared(clear)
                    }
                    None => {
                        debug!(seq = f.seq, "Outcome packet acknowledged by the uplink.");
                        self.parts.outbox.remove(f.seq)
                    }
                };
                self.count_outbox();
                match removed {
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

    /// A message on a subscription: a join request is queued for its answer (and
    /// acknowledged at once), anything else goes to the core. False on shutdown.
    async fn on_publish(&mut self, p: rumqttc::Publish) -> bool {
        let Some((class, token)) = super::join::request(&p.topic, &p.payload) else {
            return self.deliver(p).await;
        };
        if let Some(join) = self.parts.join.as_mut() {
            if !join.heard(&class, &token) {
                debug!(
                    class,
                    "Join request ignored (own, waiting already, or too many waiting)."
                );
            }
        }
        if p.qos != QoS::AtMostOnce {
            self.acks.ack_for(p).send();
        }
        true
    }

    /// Hands a peer's packet to the core, waiting while the intake queue is full: the broker
    /// then holds what follows (its in-flight window, TCP) instead of it being dropped. False
    /// on shutdown.
    async fn deliver(&mut self, p: rumqttc::Publish) -> bool {
        let qos = p.qos;
        // An answer to this gateway's join request stands for the retained packet of its
        // context topic.
        let (topic, retained) = match super::join::answered(&p.topic) {
            Some(topic) => (topic, true),
            None => (p.topic.clone(), p.retain),
        };
        let item = Incoming {
            topic,
            payload: p.payload.clone(),
            retained,
            ack: (qos != QoS::AtMostOnce).then(|| self.acks.ack_for(p)),
        };
        self.parts.incoming.send(item).await.is_ok()
    }

    /// Publishes this gateway's join requests (QoS 0: asked again on every subscription).
    fn ask(&mut self) {
        for (topic, token) in self.parts.join.iter().flat_map(|j| j.requests()) {
            let _ = self
                .client
                .try_publish(topic, QoS::AtMostOnce, false, token);
        }
    }

    /// Answers the next waiting join request with this gateway's live packets of its class,
    /// QoS 0 (the asker asks again on its next subscription).
    fn answer_next(&mut self) {
        let Some((class, token)) = self
            .parts
            .join
            .as_mut()
            .and_then(|j| j.take(tokio::time::Instant::now()))
        else {
            return;
        };
        let live = match self.parts.outbox.live(&class, unix_now_s()) {
            Ok(live) => live,
            Err(e) => return self.storage_failed("read the live packets for a join request", &e),
        };
        let mut sent = 0;
        for (ctx_topic, bytes) in live {
            let Some(topic) = super::join::answer_topic(&token, &ctx_topic) else {
                continue;
            };
            if self
                .client
                .try_publish(topic, QoS::AtMostOnce, false, bytes)
                .is_err()
            {
                break;
            }
            sent += 1;
        }
        debug!(
            class,
            packets = sent,
            "Join request answered with the live packets."
        );
    }

    /// Counts the packets waiting (for the dashboard and `/metrics`).
    fn count_outbox(&mut self) {
        let n = self.parts.outbox.pending().ok();
        self.outbox
            .send_if_modified(|d| std::mem::replace(d, n) != n);
    }

    /// When the packet in flight stops waiting for its PUBACK.
    fn puback_deadline(&self) -> Option<tokio::time::Instant> {
        self.in_flight
            .as_ref()
            .map(|f| f.since + self.parts.puback_timeout)
    }

    /// No PUBACK in time (a broker that withholds it stalls the outbox forever otherwise):
    /// drop the connection; the packet goes again on the next one.
    fn puback_timed_out(&mut self) {
        if let Some(f) = self.in_flight.take() {
            warn!(broker = %self.broker, seq = f.seq, timeout_s = self.parts.puback_timeout.as_secs(), "No PUBACK from the uplink broker in time; reconnecting to send the packet again.");
        }
        self.eventloop.clean();
        self.connected = false;
        self.state.send_replace(UplinkState::Disconnected);
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

    /// Publishes the oldest waiting packet on its topic (retained for a v3 topic); with none
    /// waiting, clears the first expired retained packet, or sets when to.
    fn send_next(&mut self) {
        self.in_flight = None;
        self.clear_at = None;
        let w = match self.parts.outbox.oldest() {
            Ok(Some(w)) => {
                self.storage_backoff.reset();
                w
            }
            Ok(None) => {
                self.storage_backoff.reset();
                return self.clear_next();
            }
            Err(e) => return self.storage_failed("read the outbox", &e),
        };
        let retain = outbox::retained(&w.topic);
        if self
            .client
            .try_publish(w.topic, QoS::AtLeastOnce, retain, w.bytes)
            .is_ok()
        {
            self.in_flight = Some(InFlight {
                seq: w.seq,
                clear: None,
                pkid: None,
                since: tokio::time::Instant::now(),
            });
        }
    }

    /// Clears the first expired retained packet (an empty retained message on its topic), or
    /// sets when the next one expires.
    fn clear_next(&mut self) {
        let now = unix_now_s();
        let clear = match self.parts.outbox.due_clear(now) {
            Ok(Some(c)) => c,
            Ok(None) => {
                if let Ok(Some(at)) = self.parts.outbox.next_clear() {
                    let wait = Duration::from_secs(at.saturating_sub(now).min(86_400));
                    self.clear_at = Some(tokio::time::Instant::now() + wait);
                }
                return;
            }
            Err(e) => return self.storage_failed("read the retained packets", &e),
        };
        if self
            .client
            .try_publish(clear.topic.clone(), QoS::AtLeastOnce, true, Vec::new())
            .is_ok()
        {
            self.in_flight = Some(InFlight {
                seq: 0,
                clear: Some(clear),
                pkid: None,
                since: tokio::time::Instant::now(),
            });
        }
    }
}

/// Sleeps until `at`; forever when None (the branch is disabled then anyway).
/// The Unix time now, seconds.
fn unix_now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
