//! MQTT: the plant's local broker (commands in; metrics, alerts, events, thresholds out) and the
//! uplink to the fleet broker (outcome packets out, peers' packets in), with the topics and
//! JSON payloads of the local contract.
//!
//! The core never touches a connection: it pushes [`Publication`]s, which [`local`] sends.

pub mod acks;
pub mod join;
pub mod local;
pub mod options;
pub mod payload;
pub mod topics;
pub mod uplink;

pub use options::MqttSetupError;
pub use topics::Topics;

/// Where the uplink connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UplinkState {
    /// Not (yet, or no longer) connected; retrying with backoff.
    Disconnected,
    /// Connected; subscriptions to the context topics not yet acknowledged.
    Connected,
    /// Connected, and the broker acknowledged every context subscription: peers' packets
    /// published from now on reach this gateway.
    Subscribed,
}

/// How hard the broker tries to deliver a publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    /// Fire and forget: metrics, statistics, spectra (the next one replaces a lost one).
    AtMostOnce,
    /// Until acknowledged: alerts, events, thresholds, status.
    AtLeastOnce,
}

/// A message the core wants on the local broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// Full topic.
    pub topic: String,
    /// Payload bytes (JSON for everything the core publishes).
    pub payload: Vec<u8>,
    /// Delivery guarantee.
    pub qos: Qos,
    /// Whether the broker keeps it for later subscribers.
    pub retain: bool,
}

impl Publication {
    /// `value` as JSON.
    pub fn json(topic: String, value: &impl serde::Serialize, qos: Qos, retain: bool) -> Self {
        Self {
            topic,
            payload: serde_json::to_vec(value).unwrap_or_default(),
            qos,
            retain,
        }
    }
}
