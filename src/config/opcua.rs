//! `type = "opcua"`: OPC UA servers: connection, security, identity and points.

use super::*;

/// `type = "opcua"`: an OPC UA server (a PLC's embedded server, SCADA, a historian) read over
/// one session, by subscription (the server reports changes) or by polled reads. The session
/// is re-established, and its subscription re-created, whenever the server comes back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaConfig {
    /// Device name: the `<device>` level of MQTT topics. Letters, digits, `-` and `_`;
    /// unique among devices.
    pub name: String,
    /// The server and how to reach it: `endpoint`, `security_policy`, `security_mode`,
    /// `[devices.identity]`, `trust_server_on_first_use`, `accept_host_mismatch`, `timeout_ms`,
    /// `backoff_initial_ms`, `backoff_max_ms` (keys of the device's own table).
    #[serde(skip)]
    pub connection: OpcUaConnection,
    /// `subscribe` (default): monitored items; the server samples each node every
    /// `sampling_interval_ms` and reports changes beyond the point's `deadband` once per
    /// `interval_ms`. `poll`: one Read of every node every `interval_ms`.
    #[serde(default)]
    pub read: OpcUaRead,
    /// Publishing interval (subscribe) or poll interval (poll), ms. Default 1 000.
    #[serde(default = "default_poll_interval_ms")]
    pub interval_ms: u64,
    /// A point whose last good value is older than this many milliseconds turns `stale`.
    /// Default: three intervals when polling; when subscribed, values arrive only when they
    /// change, so points turn stale only if this is set (a lost session marks them `bad` at once).
    pub stale_after_ms: Option<u64>,
    /// Milliseconds between request statistics on `qis/<site>/stats/<device>`. Default 10 000.
    #[serde(default = "default_stats_interval_ms")]
    pub stats_interval_ms: u64,
    /// `[devices.context]`: as for Modbus devices.
    pub context: Option<crate::packet::Context>,
    /// `[[devices.points]]`: one node each (`node` instead of `register`), each with
    /// [`PointAddress::Node`].
    #[serde(skip)]
    pub points: Vec<PointConfig>,
}

impl OpcUaConfig {
    /// `stale_after_ms`, or its default.
    pub fn stale_after(&self) -> Duration {
        match (self.stale_after_ms, self.read) {
            (Some(ms), _) => Duration::from_millis(ms),
            (None, OpcUaRead::Poll) => {
                Duration::from_millis(self.interval_ms.saturating_mul(3).max(1_000))
            }
            (None, OpcUaRead::Subscribe) => Duration::MAX,
        }
    }
}

/// How an OPC UA device's values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpcUaRead {
    /// Monitored items in one subscription.
    #[default]
    Subscribe,
    /// A Read of all nodes every interval.
    Poll,
}

/// The connection keys of an OPC UA device (and of `[devices.opcua]` of a vibration device).
///
/// The gateway's application instance certificate is created on first start in
/// `<state_dir>/pki/own/cert.der` (key in `<state_dir>/pki/private/`); give it to the server's
/// administrator to trust. A server certificate is trusted when it is in
/// `<state_dir>/pki/trusted/`; an unknown one is saved in `<state_dir>/pki/rejected/` and the
/// log says which file to move where.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaConnection {
    /// Endpoint URL, `opc.tcp://host:port[/path]`.
    pub endpoint: String,
    /// `none` (default) or `basic256sha256`.
    #[serde(default)]
    pub security_policy: OpcUaSecurityPolicy,
    /// `none` (default, with policy `none`), `sign` or `sign_and_encrypt` (with
    /// `basic256sha256`).
    #[serde(default)]
    pub security_mode: OpcUaSecurityMode,
    /// `[devices.identity]`: `user` and `password`, or `certificate` (DER or PEM) and
    /// `private_key` (PEM) of an X.509 user identity. Absent: anonymous.
    pub identity: Option<OpcUaIdentity>,
    /// Trust the server's certificate the first time this device connects and pin it: it is
    /// copied to `<state_dir>/pki/trusted/`, and a later, different certificate is refused like
    /// any unknown one. Default false: only certificates already in the trusted folder.
    #[serde(default)]
    pub trust_server_on_first_use: bool,
    /// Accept a server certificate that does not name the endpoint's host among its DNS and IP
    /// names (OPC UA Part 4 lets a client suppress that check: a server reached through an
    /// address its certificate does not list). The certificate must still be trusted, valid and
    /// carry the server's application URI. Default false.
    #[serde(default)]
    pub accept_host_mismatch: bool,
    /// Timeout for connecting and for each request, ms. Default 5 000.
    #[serde(default = "default_opcua_timeout_ms")]
    pub timeout_ms: u64,
    /// First wait before reconnecting, ms; doubles on each failure up to `backoff_max_ms`,
    /// with random jitter. Default 500.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Longest wait between reconnection attempts, ms. Default 30 000.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

impl OpcUaConnection {
    /// The keys of a device table that belong to the connection.
    pub const KEYS: &'static [&'static str] = &[
        "endpoint",
        "security_policy",
        "security_mode",
        "identity",
        "trust_server_on_first_use",
        "accept_host_mismatch",
        "timeout_ms",
        "backoff_initial_ms",
        "backoff_max_ms",
    ];
}

pub(super) fn default_opcua_timeout_ms() -> u64 {
    5_000
}

/// OPC UA security policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpcUaSecurityPolicy {
    /// No security: for isolated networks and testing only.
    #[default]
    None,
    /// Basic256Sha256 (RSA 2048–4096, SHA-256, AES-256).
    #[serde(alias = "Basic256Sha256")]
    Basic256sha256,
}

/// OPC UA message security mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpcUaSecurityMode {
    /// Messages neither signed nor encrypted.
    #[default]
    None,
    /// Messages signed.
    #[serde(alias = "Sign")]
    Sign,
    /// Messages signed and encrypted.
    #[serde(alias = "SignAndEncrypt")]
    SignAndEncrypt,
}

/// `[devices.identity]`: who the gateway is to the OPC UA server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaIdentity {
    /// User name (with `password`).
    pub user: Option<String>,
    /// Password (with `user`). Keep the configuration file readable by the gateway only.
    pub password: Option<String>,
    /// X.509 user certificate, DER or PEM (with `private_key`).
    pub certificate: Option<PathBuf>,
    /// Private key of the user certificate, PEM (with `certificate`).
    pub private_key: Option<PathBuf>,
}

/// `[[devices.points]]` of an OPC UA device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaPointConfig {
    /// Point name; unique within the device.
    pub name: String,
    /// Node id in OPC UA text form: `ns=2;s=Line1.Temperature`, `ns=3;i=1042`, `i=2258`.
    /// Numbers and booleans (as 0/1) are values; strings are text.
    pub node: String,
    /// Engineering value = value × scale + offset. Default 1.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Added after scaling. Default 0.
    #[serde(default)]
    pub offset: f64,
    /// Engineering unit shown with the value. Default empty.
    #[serde(default)]
    pub unit: String,
    /// Subscribe only: how often the server samples the node, ms. Default the device's
    /// `interval_ms`.
    pub sampling_interval_ms: Option<u64>,
    /// Subscribe only: an absolute deadband in the node's own unit (before scale); changes
    /// smaller than this are not reported. Default 0 (every change).
    #[serde(default)]
    pub deadband: f64,
    /// SPC on the point's values.
    pub spc: Option<SpcPointConfig>,
    /// This point's own context, overriding the device's.
    pub context: Option<crate::packet::Context>,
}

/// What one OPC UA point reads.
#[derive(Debug, Clone)]
pub struct OpcUaNodeConfig {
    /// Node id text.
    pub node: String,
    /// Sampling interval, ms (subscribe only).
    pub sampling_interval_ms: Option<u64>,
    /// Absolute deadband (subscribe only).
    pub deadband: f64,
}
