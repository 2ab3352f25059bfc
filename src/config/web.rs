//! `[web]`: the dashboard served by the gateway, its users and the metrics endpoint.

use super::*;
use std::net::SocketAddr;

/// `[web]`: a web page where engineers watch and answer alarms, and `GET /metrics` for
/// Prometheus. Off unless enabled; there is no default user or password.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the dashboard. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// Address and port to listen on. Default `127.0.0.1:8080`: this machine only. To reach
    /// the dashboard from the plant network, bind the gateway's plant address (or `0.0.0.0:8080`)
    /// and allow the port in the firewall.
    #[serde(default = "default_bind")]
    pub bind: SocketAddr,
    /// `[[web.users]]`: who may log in. At least one when enabled.
    #[serde(default)]
    pub users: Vec<WebUser>,
    /// How long a login lasts without a request, minutes. Default 720 (12 h).
    #[serde(default = "default_session_idle_min")]
    pub session_idle_min: u64,
    /// Serve `GET /metrics` without a login (for a Prometheus on the plant network). Default
    /// false: a scraper then needs a session cookie.
    #[serde(default)]
    pub metrics_public: bool,
    /// Minutes of each point's trend kept in memory for the point pages (1–1 440), in 360 spans
    /// of least, greatest and last value (about 5.8 KiB per point). Default 60.
    #[serde(default = "default_trend_minutes")]
    pub trend_minutes: u32,
    /// `[web.tls]`: serve HTTPS instead of HTTP, with this certificate and key.
    pub tls: Option<WebTlsConfig>,
}

/// `[web.tls]`: the dashboard's certificate and key, PEM files read at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebTlsConfig {
    /// The certificate chain, leaf first.
    pub cert_file: std::path::PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: std::path::PathBuf,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bind: default_bind(),
            users: Vec::new(),
            session_idle_min: default_session_idle_min(),
            metrics_public: false,
            trend_minutes: default_trend_minutes(),
            tls: None,
        }
    }
}

/// `[[web.users]]`: one login.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebUser {
    /// Login name, recorded as `by` on what the user acknowledges and answers. 1–64 letters,
    /// digits, `.`, `-`, `_` or `@`; unique.
    pub name: String,
    /// `viewer` (sees everything) or `engineer` (may also acknowledge, confirm and refute).
    pub role: WebRole,
    /// The password's Argon2 hash in PHC form (`$argon2id$v=19$…`), as `qis-edge passwd`
    /// prints it. The password itself is never stored.
    pub password_hash: String,
}

/// What a web user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebRole {
    /// Sees every page.
    Viewer,
    /// Sees every page, and acknowledges, confirms and refutes alarms.
    Engineer,
}

fn default_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_session_idle_min() -> u64 {
    720
}

fn default_trend_minutes() -> u32 {
    60
}

/// Whether `hash` is an Argon2 password hash in PHC form; `Err` says what it is instead.
pub fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = argon2::PasswordHash::new(hash)
        .map_err(|e| format!("is not a password hash in PHC form ({e})"))?;
    match parsed.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => Ok(()),
        other => Err(format!("uses {other}, not Argon2")),
    }
}
