//! `[mqtt]` and `[uplink]`: broker connections.

use super::*;

/// `[mqtt]`: connection to the plant's local broker, where engineers watch alarms.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or IP address. Default `127.0.0.1`.
    #[serde(default = "default_mqtt_host")]
    pub host: String,
    /// Broker TCP port. Default 1883 (8883 is usual with `[mqtt.tls]`).
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// MQTT client identifier. Default `qis-edge-<site id>`. Must be unique on the broker:
    /// a second client with the same id disconnects the first.
    pub client_id: Option<String>,
    /// User name, if the broker requires authentication.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<String>,
    /// MQTT keep-alive in seconds (5..=3600). The broker publishes the gateway's last will
    /// ("offline" on `qis/<site>/status`) after 1.5 × this without traffic. Default 30.
    #[serde(default = "default_keep_alive_s")]
    pub keep_alive_s: u64,
    /// Longest wait between reconnection attempts, in milliseconds; attempts start at
    /// 500 ms and double, with random jitter. Default 30 000.
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// The largest MQTT packet sent or accepted on this connection, bytes (4 096 to
    /// 268 435 455). Inside it, oversize commands and packets are rejected and counted without
    /// dropping the connection; a larger one makes the client reconnect, so configure the
    /// broker's own limit (mosquitto: `message_size_limit`) at or below it. Everything the
    /// gateway publishes is bounded far below the default by construction. Default 262 144.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// `[mqtt.tls]`: present to connect with TLS.
    pub tls: Option<TlsConfig>,
    /// Other nodes of the same broker cluster, `host:port` each (`[::1]:1883` for IPv6),
    /// tried in turn after `host`/`port` whenever a connection fails, with the same
    /// credentials, TLS and client id. Default none.
    #[serde(default)]
    pub failover: Vec<String>,
}

/// `host:port` (`[v6 address]:port`) as host and port, if it is one.
pub fn parse_address(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.trim().rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| (host.to_string(), port))
}

impl MqttConfig {
    /// Every broker address to try, in order: `host`/`port`, then `failover` (entries that
    /// are not `host:port` are left out; the loader reports them).
    pub fn addresses(&self) -> Vec<(String, u16)> {
        std::iter::once((self.host.clone(), self.port))
            .chain(self.failover.iter().filter_map(|a| parse_address(a)))
            .collect()
    }

    /// The local connection's client id: `client_id`, or `qis-edge-<site>`.
    pub fn local_client_id(&self, site: &str) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("qis-edge-{site}"))
    }

    /// The uplink's client id: the local one with `-uplink` appended, so the two connections
    /// never take each other's session on a broker they share.
    pub fn uplink_client_id(&self, site: &str) -> String {
        format!("{}-uplink", self.local_client_id(site))
    }
}

pub(super) fn default_mqtt_host() -> String {
    "127.0.0.1".into()
}
pub(super) fn default_mqtt_port() -> u16 {
    1883
}
pub(super) fn default_keep_alive_s() -> u64 {
    30
}
pub(super) fn default_reconnect_max_ms() -> u64 {
    30_000
}
pub(super) fn default_max_message_bytes() -> usize {
    256 * 1024
}

/// `[mqtt.tls]`: TLS for the broker connection (rustls; TLS 1.2 and 1.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate authorities that sign the broker's certificate.
    pub ca_file: PathBuf,
    /// PEM client certificate, for brokers that require mutual TLS. Needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            host: default_mqtt_host(),
            port: default_mqtt_port(),
            client_id: None,
            username: None,
            password: None,
            keep_alive_s: default_keep_alive_s(),
            reconnect_max_ms: default_reconnect_max_ms(),
            max_message_bytes: default_max_message_bytes(),
            tls: None,
            failover: Vec::new(),
        }
    }
}
