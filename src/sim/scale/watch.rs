//! The scale run's own MQTT client on the local broker: what every plant reports, as it
//! arrives — its uplink subscribed, its alarms, the peer packets it applied and when.

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// What the plants said so far.
pub struct Watch {
    pub client: AsyncClient,
    events: EventLoop,
    /// Sites whose uplink reported `subscribed`.
    pub subscribed: HashSet<String>,
    /// The last alarm raised at each site.
    pub alarm: HashMap<String, String>,
    /// When a site first applied a packet of a source (site, source key).
    pub applied: HashMap<(String, String), Instant>,
    /// Every (site, source) a packet reached, applied or not.
    pub heard: HashSet<(String, String)>,
}

impl Watch {
    /// Connects to the local broker and subscribes to every plant's events and uplink state.
    pub async fn connect(host: &str, port: u16) -> Result<Self, String> {
        let mut o = MqttOptions::new(
            format!("qis-scale-{}", std::process::id()),
            host.to_string(),
            port,
        );
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut events) = AsyncClient::new(o, 4096);
        for filter in ["qis/+/events", "qis/+/uplink"] {
            client
                .subscribe(filter, QoS::AtLeastOnce)
                .await
                .map_err(|e| format!("scale observer: {e}"))?;
        }
        let mut acknowledged = 0;
        while acknowledged < 2 {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => acknowledged += 1,
                Ok(_) => {}
                Err(e) => return Err(format!("scale observer on {host}:{port}: {e}")),
            }
        }
        Ok(Self {
            client,
            events,
            subscribed: HashSet::new(),
            alarm: HashMap::new(),
            applied: HashMap::new(),
            heard: HashSet::new(),
        })
    }

    /// Reads messages until `done` holds (true) or `deadline` passes (false).
    pub async fn until(&mut self, deadline: Instant, done: impl Fn(&Self) -> bool) -> bool {
        while !done(self) {
            match tokio::time::timeout_at(deadline, self.events.poll()).await {
                Err(_) => return false,
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    self.on(&p.topic, &p.payload, Instant::now())
                }
                Ok(Ok(_)) => {}
                // rumqttc reconnects on the next poll; pace the attempts.
                Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        true
    }

    /// Subscribes again to every plant's (retained) uplink state, so the broker sends each
    /// once more: a broker drops what a client does not read fast enough (mosquitto beyond
    /// `max_queued_messages`, 1 000 by default), as while a thousand plants start at once.
    pub async fn refresh_uplinks(&mut self) {
        let _ = self.client.unsubscribe("qis/+/uplink").await;
        let _ = self
            .client
            .subscribe("qis/+/uplink", QoS::AtLeastOnce)
            .await;
    }

    /// Publishes a marker and reads until it comes back: everything published before it has
    /// then arrived.
    pub async fn drain(&mut self, deadline: Instant) {
        let marker = format!("qis/qis-scale-{}/events", std::process::id());
        let (client, events) = (&self.client, &mut self.events);
        // Each message with the moment it arrived, taken in order once the marker is back.
        let mut seen = Vec::new();
        crate::sim::drain_to_marker(client, events, &marker, deadline, |topic, payload| {
            seen.push((topic.to_string(), payload.to_vec(), Instant::now()))
        })
        .await;
        for (topic, payload, at) in seen {
            self.on(&topic, &payload, at);
        }
    }

    fn on(&mut self, topic: &str, payload: &[u8], at: Instant) {
        let mut parts = topic.split('/');
        let (Some("qis"), Some(site), Some(kind), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return;
        };
        match (kind, v["type"].as_str()) {
            ("uplink", _) if v["state"] == "subscribed" => {
                self.subscribed.insert(site.to_string());
            }
            ("events", Some("alarm")) if v["to"] == "active" => {
                if let Some(id) = v["alarm_id"].as_str() {
                    self.alarm.insert(site.to_string(), id.to_string());
                }
            }
            ("events", Some("peer_outcome")) => {
                let Some(source) = v["source"].as_str() else {
                    return;
                };
                let key = (site.to_string(), source.to_string());
                if v["applied_to"].as_array().is_some_and(|a| !a.is_empty()) {
                    self.applied.entry(key.clone()).or_insert(at);
                }
                self.heard.insert(key);
            }
            _ => {}
        }
    }
}
