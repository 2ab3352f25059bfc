//! The gateway as a Sparkplug B 3.0 edge node (`[sparkplug]`): the plant's SCADA (Ignition,
//! any Sparkplug host) sees every exposed point, alarm rule, adapted level and device health
//! ([`metrics`]) without configuring a tag.
//!
//! Lifecycle, as the specification says: each connection gets the next birth/death sequence
//! number (`bdSeq`, 0–255, kept in the state directory) in its will, an `NDEATH` (QoS 1, not
//! retained); once connected (and, with `primary_host_id`, once the host's `STATE` says
//! online) the node publishes `NBIRTH` (seq 0: `bdSeq`, `Node Control/Rebirth`) and a
//! `DBIRTH` per device whose link is up, with every metric's name, alias, datatype and value;
//! then, at each change of the gateway's live state, `DDATA` of the changed metrics by alias
//! only, `DDEATH` when a device's link goes down and `DBIRTH` when it returns. `seq` runs
//! 0–255 over NBIRTH, DBIRTH, DDATA and DDEATH. `Node Control/Rebirth` by NCMD, or the host
//! coming back online, births again. DCMD writes to `…/Ack` and `…/Shelve Hours` go to the
//! core as `cmd/ack`, `cmd/shelve` and `cmd/unshelve` do; anything else is refused, logged and
//! counted.

pub mod metrics;
pub mod proto;

use crate::backoff::Backoff;
use crate::config::Config;
use crate::web::{Live, WebCommand};
use metrics::{Device, Source};
use prost::Message;
use proto::{datatype as dt, Metric, Payload, Value};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, Packet, QoS};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What the node needs from the gateway: its live state and a way to send commands.
pub struct Parts {
    pub live: watch::Receiver<Arc<Live>>,
    pub commands: mpsc::Sender<WebCommand>,
}

/// Starts the edge node; its task ends on `cancel`, after an NDEATH.
pub fn start(
    config: &Config,
    parts: Parts,
    cancel: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, crate::mqtt::MqttSetupError> {
    let sp = &config.sparkplug;
    let broker = sp.broker.clone().unwrap_or_else(|| config.mqtt.clone());
    let client_id = format!("{}-sparkplug", config.mqtt.local_client_id(&config.site.id));
    let options = crate::mqtt::options::options(&broker, client_id)?;
    let edge = sp
        .edge_node_id
        .clone()
        .unwrap_or_else(|| config.site.id.clone());
    let node = Node {
        prefix: format!("spBv1.0/{}", sp.group_id),
        edge,
        host: sp.primary_host_id.clone(),
        site: config.site.id.clone(),
        devices: metrics::layout(config),
        bdseq_file: config.site.state_dir.join("sparkplug-bdseq"),
        bdseq: 0,
        seq: 0,
        born: false,
        device_born: HashMap::new(),
        sent: HashMap::new(),
        refused: 0,
        dropped: 0,
        resync: false,
        parts,
    };
    Ok(tokio::spawn(node.run(options, cancel)))
}

struct Node {
    /// `spBv1.0/<group>`.
    prefix: String,
    edge: String,
    host: Option<String>,
    site: String,
    devices: Vec<Device>,
    bdseq_file: PathBuf,
    bdseq: u64,
    /// The next message's sequence number.
    seq: u64,
    /// NBIRTH published on this connection.
    born: bool,
    /// Devices with a DBIRTH since their last DDEATH, by index in `devices`.
    device_born: HashMap<usize, bool>,
    /// What was last published of each metric, by alias.
    sent: HashMap<u64, (Option<Value>, Option<proto::PropertySet>)>,
    /// Commands refused since start.
    refused: u64,
    /// Messages the connection could not take since start.
    dropped: u64,
    /// A message was dropped: birth again at the next change.
    resync: bool,
    parts: Parts,
}

impl Node {
    fn topic(&self, kind: &str, device: Option<&str>) -> String {
        match device {
            Some(d) => format!("{}/{kind}/{}/{d}", self.prefix, self.edge),
            None => format!("{}/{kind}/{}", self.prefix, self.edge),
        }
    }

    /// The next bdSeq, saved before it is used (0–255).
    fn next_bdseq(&mut self) -> u64 {
        let last = std::fs::read_to_string(&self.bdseq_file)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        self.bdseq = last.map_or(0, |n| (n + 1) % 256);
        if let Err(e) =
            crate::store::write_atomic(&self.bdseq_file, self.bdseq.to_string().as_bytes(), 0o644)
        {
            warn!(file = %self.bdseq_file.display(), error = %e, "Cannot save the Sparkplug bdSeq; a restart may reuse it.");
        }
        self.bdseq
    }

    fn death(&self) -> Vec<u8> {
        Payload {
            timestamp: Some(now_ms()),
            metrics: vec![bdseq_metric(self.bdseq)],
            ..Default::default()
        }
        .encode_to_vec()
    }

    async fn run(mut self, base: rumqttc::MqttOptions, cancel: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        loop {
            let mut options = base.clone();
            self.next_bdseq();
            options.set_clean_session(true);
            options.set_last_will(LastWill::new(
                self.topic("NDEATH", None),
                self.death(),
                QoS::AtLeastOnce,
                false,
            ));
            let (client, mut events) = AsyncClient::new(options, 1024);
            let stopped = self
                .serve(&client, &mut events, &cancel, &mut backoff)
                .await;
            self.born = false;
            if stopped {
                // An orderly stop: the will is not sent on a clean disconnect, so say it.
                let _ = client.try_publish(
                    self.topic("NDEATH", None),
                    QoS::AtLeastOnce,
                    false,
                    self.death(),
                );
                let _ = client.try_disconnect();
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Ok(e) = events.poll().await {
                        if matches!(e, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                            break;
                        }
                    }
                })
                .await;
                return;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// One connection; true when stopped by `cancel`.
    async fn serve(
        &mut self,
        client: &AsyncClient,
        events: &mut EventLoop,
        cancel: &CancellationToken,
        backoff: &mut Backoff,
    ) -> bool {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return true,
                changed = self.parts.live.changed() => {
                    if changed.is_err() {
                        return true;
                    }
                    if self.born && std::mem::take(&mut self.resync) {
                        self.birth(client);
                    } else if self.born {
                        self.data(client);
                    }
                }
                event = events.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff.reset();
                        info!(bd_seq = self.bdseq, "Sparkplug edge node connected.");
                        let mut topics = vec![self.topic("NCMD", None), self.topic("DCMD", Some("+"))];
                        if let Some(host) = &self.host {
                            topics.push(format!("spBv1.0/STATE/{host}"));
                        }
                        for t in topics {
                            let _ = client.try_subscribe(t, QoS::AtLeastOnce);
                        }
                        if self.host.is_none() {
                            self.birth(client);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => self.on_message(client, &p.topic, &p.payload),
                    Ok(_) => {}
                    Err(e) => {
                        warn!(error = %e, "Sparkplug connection lost; reconnecting.");
                        return false;
                    }
                },
            }
        }
    }

    fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq = (self.seq + 1) % 256;
        s
    }

    fn publish(&mut self, client: &AsyncClient, topic: String, metrics: Vec<Metric>) {
        let payload = Payload {
            timestamp: Some(now_ms()),
            metrics,
            seq: Some(self.next_seq()),
            ..Default::default()
        };
        if client
            .try_publish(topic, QoS::AtMostOnce, false, payload.encode_to_vec())
            .is_err()
        {
            // The connection's queue is full: the host would see a gap in seq. Birth again at
            // the next change, which lets it start over.
            self.dropped += 1;
            self.resync = true;
            if self.dropped.is_power_of_two() {
                warn!(
                    dropped = self.dropped,
                    "Sparkplug message dropped (the broker connection is behind); births again."
                );
            }
        }
    }

    /// NBIRTH, then a DBIRTH for each device whose link is up.
    fn birth(&mut self, client: &AsyncClient) {
        self.seq = 0;
        self.sent.clear();
        self.device_born.clear();
        let mut node = vec![
            bdseq_metric(self.bdseq),
            Metric {
                name: Some("Node Control/Rebirth".into()),
                alias: Some(2),
                datatype: Some(dt::BOOLEAN),
                value: Some(Value::Boolean(false)),
                ..Default::default()
            },
        ];
        let info = metrics::node_info(&self.parts.live.borrow());
        for ((name, datatype), (alias, value)) in metrics::NODE_INFO.iter().zip(info) {
            self.sent.insert(alias, (value.clone(), None));
            node.push(Metric {
                name: Some((*name).to_string()),
                alias: Some(alias),
                datatype: Some(*datatype),
                is_null: value.is_none().then_some(true),
                value,
                ..Default::default()
            });
        }
        self.publish(client, self.topic("NBIRTH", None), node);
        self.born = true;
        for i in 0..self.devices.len() {
            if self.link_up(i) {
                self.device_birth(client, i);
            }
        }
        info!(
            bd_seq = self.bdseq,
            devices = self.device_born.len(),
            "Sparkplug birth published."
        );
    }

    fn link_up(&self, i: usize) -> bool {
        let view = &self.parts.live.borrow().view;
        view.devices
            .get(self.devices[i].index)
            .and_then(|d| d.link_up)
            .unwrap_or(false)
    }

    fn device_birth(&mut self, client: &AsyncClient, i: usize) {
        let metrics: Vec<Metric> = {
            let live = self.parts.live.borrow();
            self.devices[i]
                .metrics
                .iter()
                .map(|spec| {
                    let r = metrics::read(spec, &live.view);
                    self.sent
                        .insert(spec.alias, (r.value.clone(), r.properties.clone()));
                    metrics::birth_metric(spec, r)
                })
                .collect()
        };
        let topic = self.topic("DBIRTH", Some(&self.devices[i].name.clone()));
        self.publish(client, topic, metrics);
        self.device_born.insert(i, true);
    }

    /// After a change of the live state: NDATA of the changed node metrics, DDEATH/DBIRTH
    /// where a link changed, DDATA of the changed metrics of every born device.
    fn data(&mut self, client: &AsyncClient) {
        let info = metrics::node_info(&self.parts.live.borrow());
        let mut changed = Vec::new();
        for (alias, value) in info {
            let now = (value.clone(), None);
            if self.sent.get(&alias) != Some(&now) {
                self.sent.insert(alias, now);
                changed.push(Metric {
                    alias: Some(alias),
                    is_null: value.is_none().then_some(true),
                    value,
                    ..Default::default()
                });
            }
        }
        if !changed.is_empty() {
            self.publish(client, self.topic("NDATA", None), changed);
        }
        self.device_data(client);
    }

    fn device_data(&mut self, client: &AsyncClient) {
        for i in 0..self.devices.len() {
            let up = self.link_up(i);
            let born = self.device_born.get(&i).copied().unwrap_or(false);
            if up && !born {
                self.device_birth(client, i);
                continue;
            }
            if !up && born {
                let topic = self.topic("DDEATH", Some(&self.devices[i].name.clone()));
                self.publish(client, topic, Vec::new());
                self.device_born.insert(i, false);
                continue;
            }
            if !born {
                continue;
            }
            let changed: Vec<Metric> = {
                let live = self.parts.live.borrow();
                let mut out = Vec::new();
                for spec in &self.devices[i].metrics {
                    let mut r = metrics::read(spec, &live.view);
                    let now = (r.value.clone(), r.properties.clone());
                    let before = self.sent.get(&spec.alias);
                    if before != Some(&now) {
                        // Properties go again only when they changed (a quality, a rail).
                        if before.is_some_and(|(_, p)| *p == now.1) {
                            r.properties = None;
                        }
                        self.sent.insert(spec.alias, now);
                        out.push(metrics::data_metric(spec, r));
                    }
                }
                out
            };
            if !changed.is_empty() {
                let topic = self.topic("DDATA", Some(&self.devices[i].name.clone()));
                self.publish(client, topic, changed);
            }
        }
    }

    fn on_message(&mut self, client: &AsyncClient, topic: &str, payload: &[u8]) {
        if let Some(host) = &self.host {
            if topic == format!("spBv1.0/STATE/{host}") {
                let online = serde_json::from_slice::<serde_json::Value>(payload)
                    .ok()
                    .and_then(|v| v["online"].as_bool());
                match online {
                    Some(true) => {
                        info!(host, "Sparkplug primary host online; birth.");
                        self.birth(client);
                    }
                    Some(false) => {
                        info!(
                            host,
                            "Sparkplug primary host offline; holding data until it is back."
                        );
                        self.born = false;
                    }
                    None => self.refuse(topic, "a STATE message that is not {\"online\": …}"),
                }
                return;
            }
        }
        let Ok(p) = Payload::decode(payload) else {
            return self.refuse(topic, "not a Sparkplug B payload");
        };
        if topic == self.topic("NCMD", None) {
            let rebirth = p.metrics.iter().any(|m| {
                (m.name.as_deref() == Some("Node Control/Rebirth") || m.alias == Some(2))
                    && m.value == Some(Value::Boolean(true))
            });
            if rebirth {
                info!("Sparkplug rebirth requested.");
                return self.birth(client);
            }
            return self.refuse(topic, "an NCMD other than Node Control/Rebirth = true");
        }
        let device = topic.rsplit('/').next().unwrap_or_default().to_string();
        let Some(d) = self.devices.iter().position(|x| x.name == device) else {
            return self.refuse(topic, "a DCMD for a device this node does not expose");
        };
        for m in &p.metrics {
            self.command(d, m, topic);
        }
    }

    /// A DCMD metric: an alarm command, or refused.
    fn command(&mut self, d: usize, m: &Metric, topic: &str) {
        let spec = self.devices[d]
            .metrics
            .iter()
            .find(|s| m.alias == Some(s.alias) || m.name.as_deref() == Some(s.name.as_str()))
            .cloned();
        let Some(spec) = spec else {
            return self.refuse(topic, "a DCMD for an unknown metric");
        };
        let (name, body) = match (&spec.source, &m.value) {
            (Source::Ack { .. }, Some(Value::Boolean(true))) => ("ack", serde_json::Map::new()),
            (Source::Shelve { .. }, Some(Value::Double(h))) if h.is_finite() => shelve(*h),
            (Source::Shelve { .. }, Some(Value::Float(h))) if h.is_finite() => {
                shelve(f64::from(*h))
            }
            (Source::Ack { .. } | Source::Shelve { .. }, _) => {
                return self.refuse(topic, "a DCMD value of the wrong datatype (Ack takes true, Shelve Hours a Float or Double)");
            }
            _ => return self.refuse(topic, "a DCMD to a metric that cannot be written"),
        };
        let (Source::Ack {
            device,
            point,
            rule,
        }
        | Source::Shelve {
            device,
            point,
            rule,
        }) = spec.source
        else {
            return;
        };
        let Some((device, point, rule)) = self.names(device, point, rule) else {
            return;
        };
        let mut body = body;
        body.insert("device".into(), device.into());
        body.insert("point".into(), point.into());
        body.insert("rule".into(), rule.into());
        body.insert("by".into(), "sparkplug".into());
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = WebCommand {
            topic: format!("qis/{}/cmd/{name}", self.site),
            payload: serde_json::Value::Object(body).to_string().into_bytes(),
            reply,
        };
        if self.parts.commands.try_send(request).is_err() {
            return self.refuse(topic, "the gateway is busy");
        }
        let metric = spec.name.clone();
        tokio::spawn(async move {
            match answer.await {
                Ok(Ok(())) => info!(metric, "Sparkplug DCMD carried out."),
                Ok(Err(why)) => warn!(metric, why, "Sparkplug DCMD refused by the gateway."),
                Err(_) => {}
            }
        });
    }

    /// Device, point and rule names of a rule's indices.
    fn names(&self, device: usize, point: usize, rule: usize) -> Option<(String, String, String)> {
        let live = self.parts.live.borrow();
        let d = live.view.devices.get(device)?.name.clone();
        let p = live
            .view
            .points
            .iter()
            .find(|p| p.id.device == device && p.id.point == point)?
            .name
            .clone();
        let r = live
            .view
            .alarms
            .iter()
            .find(|a| a.point.device == device && a.point.point == point)?
            .rules
            .get(rule)?
            .rule
            .clone();
        Some((d, p, r))
    }

    fn refuse(&mut self, topic: &str, why: &str) {
        self.refused += 1;
        warn!(
            topic,
            why,
            refused = self.refused,
            "Sparkplug command refused."
        );
    }
}

fn shelve(hours: f64) -> (&'static str, serde_json::Map<String, serde_json::Value>) {
    let mut body = serde_json::Map::new();
    if hours > 0.0 {
        body.insert("hours".into(), hours.into());
        ("shelve", body)
    } else {
        ("unshelve", body)
    }
}

fn bdseq_metric(bdseq: u64) -> Metric {
    Metric {
        name: Some("bdSeq".into()),
        alias: Some(1),
        datatype: Some(dt::INT64),
        value: Some(Value::Long(bdseq)),
        ..Default::default()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
