//! `[outcomes]`: sharing confirmed outcomes with other plants.

use super::*;

/// `[outcomes]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomesConfig {
    /// Turn answered alarms of points with a context into outcome packets. Default true.
    #[serde(default = "default_true")]
    pub share: bool,
    /// How long receivers apply a packet, and the broker keeps it for gateways joining later,
    /// days (a fraction is allowed: 0.5 is 12 hours). Default 30.
    #[serde(default = "default_ttl_days")]
    pub ttl_days: f64,
    /// Packets kept in the outbox while the uplink is away. When full, the oldest packet is
    /// dropped, counted and logged at ERROR (it is the closest to expiry). Default 10 000.
    #[serde(default = "default_outbox_max")]
    pub outbox_max: usize,
    /// Accept packets only from `allowlist` sources. Default false.
    #[serde(default)]
    pub strict: bool,
    /// Public keys (64 hex digits, as in a peer's `outcome-key.pub`) accepted in strict mode.
    #[serde(default)]
    pub allowlist: Vec<String>,
    /// Clock difference tolerated when checking a packet's issue time and expiry, seconds
    /// (at most 86 400). Default 300.
    #[serde(default = "default_clock_skew_s")]
    pub clock_skew_s: u64,
    /// How long the packet in flight waits for the fleet broker's PUBACK before the uplink
    /// reconnects and sends it again, seconds (1-3600). Default 30.
    #[serde(default = "default_puback_timeout_s")]
    pub puback_timeout_s: u64,
    /// Ask the fleet for its live packets on subscribing (`qis/v2/join/<class>`), and hand
    /// this gateway's own to those who ask: for fleet brokers that do not deliver retained
    /// messages to wildcard subscriptions (RabbitMQ). Every gateway of such a fleet sets it.
    /// Default false.
    #[serde(default)]
    pub join_requests: bool,
}

pub(super) fn default_puback_timeout_s() -> u64 {
    30
}

pub(super) fn default_clock_skew_s() -> u64 {
    300
}

impl Default for OutcomesConfig {
    fn default() -> Self {
        Self {
            share: true,
            ttl_days: default_ttl_days(),
            outbox_max: default_outbox_max(),
            strict: false,
            allowlist: Vec::new(),
            clock_skew_s: default_clock_skew_s(),
            puback_timeout_s: default_puback_timeout_s(),
            join_requests: false,
        }
    }
}

pub(super) fn default_ttl_days() -> f64 {
    30.0
}

impl OutcomesConfig {
    /// `ttl_days` in whole seconds, at least 1.
    pub fn ttl_s(&self) -> u32 {
        (self.ttl_days * 86_400.0)
            .round()
            .clamp(1.0, f64::from(crate::packet::guard::MAX_TTL_S)) as u32
    }
}
pub(super) fn default_outbox_max() -> usize {
    10_000
}
