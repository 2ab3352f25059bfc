//! An MQTT client that records what the gateway publishes and waits for it.

use super::*;

/// One message seen on the broker.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub json: Value,
    pub raw: Vec<u8>,
    pub retained: bool,
    pub at: Instant,
}

/// An MQTT client that records everything under `qis/#`.
pub struct Observer {
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Message>,
    pub seen: Vec<Message>,
    /// The last connection error, if any, for the failure message.
    link: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Observer {
    pub async fn connect(port: u16) -> Self {
        Self::connect_filter(port, "qis/#").await
    }

    /// Subscribes to `filter` on every connection: a new session after a connection error
    /// would otherwise have lost the subscription. Returns once the broker has acknowledged
    /// the first subscription, so nothing published after this call can be missed.
    pub async fn connect_filter(port: u16, filter: &str) -> Self {
        Self::connect_with(port, filter, false).await
    }

    /// [`Observer::connect_filter`] with a persistent session (clean session off): a broker that
    /// keeps sessions across a restart queues what arrives while the observer is cut off, as it
    /// would for a peer gateway.
    pub async fn connect_persistent(port: u16, filter: &str) -> Self {
        Self::connect_with(port, filter, true).await
    }

    async fn connect_with(port: u16, filter: &str, persistent: bool) -> Self {
        let id = format!("observer-{}", rand_suffix());
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(!persistent);
        // Large enough to send the oversize messages the limit tests need.
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let link = std::sync::Arc::new(std::sync::Mutex::new("not connected yet".to_string()));
        let (subscriber, filter, state) = (client.clone(), filter.to_string(), link.clone());
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel::<()>();
        let mut subscribed_tx = Some(subscribed_tx);
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        *state.lock().unwrap() = "connected".into();
                        let _ = subscriber.try_subscribe(filter.as_str(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let json = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        let m = Message {
                            topic: p.topic.clone(),
                            json,
                            raw: p.payload.to_vec(),
                            retained: p.retain,
                            at: Instant::now(),
                        };
                        if tx.send(m).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        *state.lock().unwrap() = format!("connection error: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        if tokio::time::timeout(Duration::from_secs(20), subscribed)
            .await
            .is_err()
        {
            let link = link.lock().map(|l| l.clone()).unwrap_or_default();
            panic!("the observer's subscription to {port} was not acknowledged; {link}");
        }
        Self {
            client,
            rx,
            seen: Vec::new(),
            link,
        }
    }

    /// Waits for a message matching `pred`; panics with what was seen after `timeout`.
    pub async fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Message {
        let deadline = Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) => {
                    self.seen.push(m.clone());
                    if pred(&m) {
                        return m;
                    }
                }
                Ok(None) => panic!("observer stopped while waiting for {what}"),
                Err(_) => {
                    let tail: Vec<String> = self
                        .seen
                        .iter()
                        .rev()
                        .take(15)
                        .map(|m| format!("{} {}", m.topic, m.json))
                        .collect();
                    let link = self.link.lock().map(|l| l.clone()).unwrap_or_default();
                    panic!(
                        "timed out waiting for {what}; observer {link}; last messages:\n{}",
                        tail.join("\n")
                    );
                }
            }
        }
    }

    /// Every message seen so far.
    pub fn seen(&self) -> &[Message] {
        &self.seen
    }

    /// Like [`Observer::wait_for`], but also accepts a message that has already been seen.
    pub async fn saw_or_wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Message {
        if let Some(m) = self.seen.iter().find(|m| pred(m)) {
            return m.clone();
        }
        self.wait_for(what, timeout, pred).await
    }

    /// Waits until the last message on `topic` matches `pred`: the latest one already seen,
    /// or a new one. For state topics, where only the newest message counts.
    pub async fn latest_or_wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        topic: &str,
        pred: impl Fn(&Message) -> bool,
    ) -> Message {
        if let Some(m) = self.seen.iter().rev().find(|m| m.topic == topic) {
            if pred(m) {
                return m.clone();
            }
        }
        self.wait_for(what, timeout, |m| m.topic == topic && pred(m))
            .await
    }

    /// Waits until gateway `site` reports its uplink subscribed to its context topics: from
    /// then on, peers' packets published reach it.
    pub async fn wait_uplink_subscribed(&mut self, site: &str) {
        let topic = format!("qis/{site}/uplink");
        self.latest_or_wait_for(
            "the uplink subscribed",
            Duration::from_secs(20),
            &topic,
            |m| m.json["state"] == "subscribed",
        )
        .await;
    }

    /// The next message of any kind, as topic and raw bytes.
    pub async fn wait_raw(&mut self, what: &str, timeout: Duration) -> (String, Vec<u8>) {
        let m = self.wait_for(what, timeout, |_| true).await;
        (m.topic, m.raw)
    }

    /// Collects everything for `duration`.
    pub async fn collect(&mut self, duration: Duration) -> Vec<Message> {
        let deadline = Instant::now() + duration;
        let mut out = Vec::new();
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.seen.push(m.clone());
            out.push(m);
        }
        out
    }

    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish");
    }

    pub async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .expect("publish");
    }
}

pub fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id())
}
