//! What the core wants done after an input: publications for the local broker, whether the
//! peers' packets handled so far may be acknowledged, whether the uplink has a packet to send.
//! The core task drains it after every input, so the core itself never waits on I/O.

use crate::mqtt::payload::{timestamp, Event, Metric};
use crate::mqtt::{Publication, Qos, Topics};
use std::time::SystemTime;

/// The output queue.
#[derive(Debug)]
pub struct Out {
    /// Topic names of this site.
    pub topics: Topics,
    /// The site id, in every payload.
    pub site: String,
    publications: Vec<Publication>,
    /// With `[metrics] layout = "device"`: the points due per device since the last drain,
    /// each message to go where its first point's would have.
    by_device: Option<Vec<DeviceBatch>>,
    release_acks: bool,
    ack_last: bool,
    wake_uplink: bool,
    command: Option<Result<(), String>>,
}

/// One device's metrics gathered for one message.
#[derive(Debug)]
struct DeviceBatch {
    device: String,
    /// Index in `publications` the message goes to.
    at: usize,
    newest: SystemTime,
    /// `"<point>": <metric>, …`, written as JSON directly (no intermediate value).
    points: Vec<u8>,
}

/// One drain of [`Out`].
#[derive(Debug, Default, PartialEq)]
pub struct Drained {
    /// To publish on the local broker, in order.
    pub publications: Vec<Publication>,
    /// Every peer packet handled so far is saved: send their acknowledgements.
    pub release_acks: bool,
    /// The packet just handled needs no save: send its acknowledgement now.
    pub ack_last: bool,
    /// A packet waits in the outbox.
    pub wake_uplink: bool,
    /// What became of the command just handled: `Ok` when carried out, or why not.
    pub command: Option<Result<(), String>>,
}

impl Out {
    /// An empty queue for `site`.
    pub fn new(site: &str) -> Self {
        Self {
            topics: Topics::new(site),
            site: site.to_string(),
            publications: Vec::new(),
            by_device: None,
            release_acks: false,
            ack_last: false,
            wake_uplink: false,
            command: None,
        }
    }

    /// Queues `value` as JSON on `topic`.
    pub fn json(&mut self, topic: String, value: &impl serde::Serialize, qos: Qos, retain: bool) {
        self.publications
            .push(Publication::json(topic, value, qos, retain));
    }

    /// Gathers each device's metrics into one message per drain (`layout = "device"`).
    pub fn metrics_by_device(&mut self) {
        self.by_device = Some(Vec::new());
    }

    /// Queues a point's metric: on its own topic, or into its device's message.
    pub fn metric(&mut self, device: &str, point: &str, metric: &Metric, read_at: SystemTime) {
        let Some(batches) = &mut self.by_device else {
            let topic = self.topics.metric(device, point);
            self.json(topic, metric, Qos::AtMostOnce, false);
            return;
        };
        let b = match batches.iter().position(|b| b.device == device) {
            Some(i) => &mut batches[i],
            None => {
                batches.push(DeviceBatch {
                    device: device.to_string(),
                    at: self.publications.len(),
                    newest: read_at,
                    points: Vec::with_capacity(4096),
                });
                batches.last_mut().expect("just pushed")
            }
        };
        b.newest = b.newest.max(read_at);
        if !b.points.is_empty() {
            b.points.push(b',');
        }
        // Writing to a Vec cannot fail; names and metrics are plain strings and numbers.
        let _ = serde_json::to_writer(&mut b.points, point);
        b.points.push(b':');
        let _ = serde_json::to_writer(&mut b.points, metric);
    }

    /// Puts the gathered device messages in their places.
    fn place_device_metrics(&mut self) {
        let Some(batches) = &mut self.by_device else {
            return;
        };
        for b in std::mem::take(batches).into_iter().rev() {
            // The layout of `payload::DeviceMetrics`.
            let mut payload = Vec::with_capacity(b.points.len() + 48);
            payload.extend_from_slice(b"{\"ts\":\"");
            payload.extend_from_slice(timestamp(b.newest).as_bytes());
            payload.extend_from_slice(b"\",\"points\":{");
            payload.extend_from_slice(&b.points);
            payload.extend_from_slice(b"}}");
            let publication = Publication {
                topic: self.topics.device_metrics(&b.device),
                payload,
                qos: Qos::AtMostOnce,
                retain: false,
            };
            self.publications.insert(b.at, publication);
        }
    }

    /// Queues raw bytes on `topic`.
    pub fn bytes(&mut self, topic: String, payload: Vec<u8>, qos: Qos, retain: bool) {
        self.publications.push(Publication {
            topic,
            payload,
            qos,
            retain,
        });
    }

    /// Queues an event on `qis/<site>/events`.
    pub fn event(&mut self, event: &Event) {
        let topic = self.topics.events();
        self.json(topic, event, Qos::AtLeastOnce, false);
    }

    /// The peer packets handled so far may be acknowledged.
    pub fn release_acks(&mut self) {
        self.release_acks = true;
    }

    /// The packet just handled may be acknowledged at once.
    pub fn ack_last(&mut self) {
        self.ack_last = true;
    }

    /// The uplink has a packet to send.
    pub fn wake_uplink(&mut self) {
        self.wake_uplink = true;
    }

    /// Records what became of the command just handled.
    pub fn command_done(&mut self, result: Result<(), String>) {
        self.command = Some(result);
    }

    /// Takes everything queued.
    pub fn drain(&mut self) -> Drained {
        self.place_device_metrics();
        Drained {
            publications: std::mem::take(&mut self.publications),
            release_acks: std::mem::take(&mut self.release_acks),
            ack_last: std::mem::take(&mut self.ack_last),
            wake_uplink: std::mem::take(&mut self.wake_uplink),
            command: self.command.take(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::payload::DeviceMetrics;
    use crate::sources::Quality;
    use std::time::Duration;

    fn metric(value: f64) -> Metric {
        Metric {
            value: Some(value),
            text: None,
            unit: "bar".into(),
            quality: Quality::Good,
            error: None,
            ts: "t".into(),
        }
    }

    #[test]
    fn by_device_each_device_is_one_message_where_its_first_point_was() {
        let mut out = Out::new("s");
        out.metrics_by_device();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        out.metric("d", "a", &metric(1.0), t);
        out.json("x".into(), &1, Qos::AtMostOnce, false);
        out.metric("e", "q\"uote", &metric(3.0), t);
        out.metric("d", "b", &metric(2.0), t + Duration::from_secs(1));
        let p = out.drain().publications;
        let topics: Vec<&str> = p.iter().map(|p| p.topic.as_str()).collect();
        assert_eq!(topics, ["qis/s/metrics/d", "x", "qis/s/metrics/e"]);
        let d: DeviceMetrics = serde_json::from_slice(&p[0].payload).unwrap();
        assert_eq!(
            d.ts,
            timestamp(t + Duration::from_secs(1)),
            "the newest read"
        );
        assert_eq!(d.points["a"]["value"], 1.0);
        assert_eq!(d.points["b"]["value"], 2.0);
        let e: DeviceMetrics = serde_json::from_slice(&p[2].payload).unwrap();
        assert_eq!(e.points["q\"uote"]["unit"], "bar", "names are escaped");
        assert!(out.drain().publications.is_empty(), "nothing carried over");
    }
}
