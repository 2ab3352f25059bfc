//! The dashboard: a web page served by the gateway where engineers watch devices and alarms and
//! answer them, and `GET /metrics` for Prometheus.
//!
//! It reads only the core's read model ([`Live`], published by the core task on change) and
//! sends commands through the same path as `qis/<site>/cmd/*` ([`WebCommand`]), so it keeps
//! working while the local broker is down, and a command from the page is validated and answered
//! exactly as one from MQTT. Pages are rendered here with every value escaped; the page's script
//! replaces a page's live part with the fragment the server sends on change (Server-Sent Events),
//! so nothing is rendered twice. Assets are embedded: no CDN, no internet.

mod auth;
mod history;
mod host;
mod metrics;
mod pages;
mod point;
mod routes;
mod thresholds;
mod tls;

pub use auth::{hash_password, verify_password};

use crate::config::WebConfig;
use crate::core::View;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What the dashboard shows: the core's read model and what it knows of its own health.
#[derive(Debug, Clone)]
pub struct Live {
    /// The read model.
    pub view: View,
    /// The storage fault, while there is one.
    pub storage_fault: Option<String>,
    /// Whether the local broker is connected.
    pub local_broker: bool,
    /// Outcome packets waiting in the outbox for the uplink (None while it cannot be read).
    pub outbox: Option<usize>,
    /// When this snapshot was taken.
    pub at: SystemTime,
}

/// A command from the page, for the core: the topic and payload it would have on MQTT, and
/// where to say whether it was carried out.
#[derive(Debug)]
pub struct WebCommand {
    /// `qis/<site>/cmd/<name>`.
    pub topic: String,
    /// The JSON payload, with `by` the logged-in user.
    pub payload: Vec<u8>,
    /// `Ok` once carried out, or the reason it was not (the `command_rejected` text).
    pub reply: oneshot::Sender<Result<(), String>>,
}

/// Commands from the page waiting for the core, at most.
pub const COMMAND_CAPACITY: usize = 16;

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The address is taken or not this machine's.
    #[error("dashboard: cannot listen on {bind}: {source}")]
    Bind {
        /// `[web] bind`.
        bind: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// `[web.tls]` cannot serve.
    #[error("[web.tls]: {0}")]
    Tls(String),
}

/// The dashboard's socket, and its TLS configuration with `[web.tls]`.
pub struct Listener {
    tcp: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// Whether `[web.tls]` can serve: its files read and fitting (for `check`).
pub fn tls_usable(config: &WebConfig) -> Result<(), WebError> {
    match &config.tls {
        Some(t) if config.enabled => tls::server_config(t).map(drop).map_err(WebError::Tls),
        _ => Ok(()),
    }
}

/// Reads `[web.tls]` and binds `[web] bind` when the dashboard is enabled (before anything
/// else starts, so a taken port or an unusable certificate stops the gateway at once).
pub async fn bind(config: &WebConfig) -> Result<Option<Listener>, WebError> {
    if !config.enabled {
        return Ok(None);
    }
    let tls = match &config.tls {
        Some(t) => Some(tls::server_config(t).map_err(WebError::Tls)?),
        None => None,
    };
    let tcp = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| WebError::Bind {
            bind: config.bind,
            source,
        })?;
    Ok(Some(Listener { tcp, tls }))
}

/// Serves the dashboard on `listener` until `cancel`.
pub fn start(
    listener: Listener,
    config: &WebConfig,
    site: &str,
    state_dir: &std::path::Path,
    live: watch::Receiver<Arc<Live>>,
    commands: mpsc::Sender<WebCommand>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let state = routes::AppState::new(config, site, state_dir, live, commands);
    let app = routes::router(state);
    let scheme = if listener.tls.is_some() {
        "https"
    } else {
        "http"
    };
    info!(address = %config.bind, scheme, users = config.users.len(), "Dashboard listening.");
    tokio::spawn(async move {
        if let Some(tls) = listener.tls {
            return tls::serve(listener.tcp, tls, app, cancel).await;
        }
        let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let served = axum::serve(listener.tcp, service)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = served {
            warn!(error = %e, "The dashboard stopped.");
        }
    })
}
