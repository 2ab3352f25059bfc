//! The durable outbox: a packet is on disk (fsynced) before it is published and is deleted only
//! when the uplink broker acknowledges it (PUBACK). A broker outage, a crash or a power cut loses
//! none; after one, the remaining packets go out oldest first. Duplicates are harmless:
//! receivers drop a source's repeated sequence numbers.

use crate::backoff::Backoff;
use crate::config::MqttConfig;
use crate::packet::guard::decode;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// Packets waiting for their PUBACK, one file each, named by sequence number.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
    max: usize,
}

impl Outbox {
    /// The outbox in `dir`, keeping at most `max` packets.
    pub fn open(dir: &Path, max: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max: max.max(1),
        })
    }

    /// Stores a packet durably. When the outbox is full the oldest packet is dropped (it is the
    /// closest to expiry), with an ERROR log line: data loss an operator should know about.
    pub fn push(&self, seq: u64, bytes: &[u8]) -> std::io::Result<()> {
        crate::store::write_atomic(&self.dir.join(format!("{seq:020}.pkt")), bytes, 0o600)?;
        let pending = self.pending();
        if pending.len() > self.max {
            for (old, path) in pending.iter().take(pending.len() - self.max) {
                if std::fs::remove_file(path).is_ok() {
                    error!(
                        seq = old,
                        outbox_max = self.max,
                        "Outbox full: the oldest outcome packet was dropped unsent."
                    );
                }
            }
        }
        Ok(())
    }

    /// Packets waiting, oldest first.
    pub fn pending(&self) -> Vec<(u64, PathBuf)> {
        let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        let seq = name.strip_suffix(".pkt")?.parse::<u64>().ok()?;
                        Some((seq, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}

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

/// Publishes the outbox on the uplink until cancelled, and passes on what arrives on the
/// context topics in `subscriptions`. A message on `wake` means a new packet is waiting.
///
/// The session is persistent (clean session off) and incoming packets are acknowledged by the
/// core once applied and saved, so the broker keeps for the gateway what arrives while it is
/// down or before its state is on disk.
pub fn start(
    config: &MqttConfig,
    client_id: String,
    outbox: Outbox,
    mut wake: mpsc::Receiver<()>,
    subscriptions: Vec<String>,
    incoming: mpsc::Sender<Incoming>,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, crate::routing::mqtt::MqttSetupError> {
    let mut options = MqttOptions::new(client_id, config.host.clone(), config.port);
    options.set_keep_alive(Duration::from_secs(config.keep_alive_s));
    options.set_clean_session(false);
    options.set_manual_acks(true);
    if let Some(user) = &config.username {
        options.set_credentials(user.clone(), config.password.clone().unwrap_or_default());
    }
    if let Some(tls) = &config.tls {
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(
                crate::routing::mqtt::rustls_config(tls)?,
            )),
        ));
    }
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let broker = format!("{}:{}", config.host, config.port);
    let reconnect_max = Duration::from_millis(config.reconnect_max_ms);
    Ok(tokio::spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(500), reconnect_max);
        let mut connected = false;
        // The packet published and not yet acknowledged, one at a time, with its packet id once
        // the event loop has sent it: only the PUBACK with that id removes it (a PUBACK for an
        // earlier session's resend of the same packet must not remove the next one).
        let mut in_flight: Option<InFlight> = None;
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(()) = wake.recv() => {
                    if connected && in_flight.is_none() {
                        in_flight = send_next(&client, &outbox);
                    }
                    continue;
                }
                event = eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack)))
                    if ack.code == ConnectReturnCode::Success =>
                {
                    info!(broker = %broker, waiting = outbox.pending().len(), "Uplink connected.");
                    connected = true;
                    backoff.reset();
                    for topic in &subscriptions {
                        let _ = client.try_subscribe(topic.clone(), QoS::AtLeastOnce);
                    }
                    in_flight = send_next(&client, &outbox);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => {
                    if let Some(f) = in_flight.as_mut() {
                        f.pkid.get_or_insert(pkid);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let item = Incoming {
                        topic: p.topic.clone(),
                        payload: p.payload.clone(),
                        ack: Some(Ack {
                            client: client.clone(),
                            publish: p,
                        }),
                    };
                    if incoming.try_send(item).is_err() {
                        warn!("Intake queue full; a peer packet was left unacknowledged (the broker delivers it again on reconnect).");
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    let Some(f) = in_flight.take_if(|f| f.pkid == Some(ack.pkid)) else {
                        continue;
                    };
                    let _ = std::fs::remove_file(&f.path);
                    debug!(seq = f.seq, "Outcome packet acknowledged by the uplink.");
                    in_flight = send_next(&client, &outbox);
                }
                Ok(_) => {}
                Err(e) => {
                    if connected {
                        warn!(broker = %broker, error = %e, "Uplink lost; packets wait in the outbox.");
                    }
                    connected = false;
                    in_flight = None;
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
    }))
}

/// The packet published and not yet acknowledged.
struct InFlight {
    seq: u64,
    path: PathBuf,
    /// Its packet id, once the event loop has sent it.
    pkid: Option<u16>,
}

/// Publishes the oldest waiting packet on its context's topic.
fn send_next(client: &AsyncClient, outbox: &Outbox) -> Option<InFlight> {
    for (seq, path) in outbox.pending() {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let packet = match decode(&bytes) {
            Ok(p) => p,
            Err(r) => {
                error!(file = %path.display(), reason = %r, "Unreadable packet in the outbox; moved aside.");
                let _ = std::fs::rename(&path, path.with_extension("bad"));
                continue;
            }
        };
        if client
            .try_publish(packet.topic(), QoS::AtLeastOnce, false, bytes)
            .is_ok()
        {
            return Some(InFlight {
                seq,
                path,
                pkid: None,
            });
        }
        return None;
    }
    None
}
