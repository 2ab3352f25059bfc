//! OPC UA: sessions to servers (discovery, endpoint choice, certificate trust, identity), and the
//! device source that reads points by subscription or by polled reads.
//!
//! One client certificate serves the whole gateway. It is created on first start in
//! `<state_dir>/pki/own/cert.der` with its key in `<state_dir>/pki/private/private.pem`.
//! Server certificates are trusted when they are in `<state_dir>/pki/trusted/`. An unknown one
//! is written to `<state_dir>/pki/rejected/`, and the log says which file to move where. With
//! `trust_server_on_first_use`, a device trusts the first certificate it meets and pins it.
//!
//! Reconnection is async-opcua's session event loop. It retries without limit with
//! exponential backoff and, when the server has lost the session (a restart), creates a new one
//! and re-creates the subscription and its monitored items. A certificate failure, or three
//! failed reconnections in a row, ends that loop: the next attempt starts from discovery again,
//! so a server that changed its endpoints or its certificate is seen as it now is.

mod device;
mod trust;

pub use device::OpcUaSource;

use crate::config::{OpcUaConnection, OpcUaSecurityMode, OpcUaSecurityPolicy};
use futures::StreamExt;
use opcua::client::{
    ClientBuilder, IdentityToken, Password, Session, SessionEventLoop, SessionPollResult,
};
use opcua::crypto::{CertificateStore, SecurityPolicy};
use opcua::types::{EndpointDescription, MessageSecurityMode, StatusCode, Variant};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tracing::{error, warn};

/// The application URI of the gateway's client certificate.
const APPLICATION_URI: &str = "urn:qis-edge";

/// Largest message accepted from a server (a 65 536-sample `Double` waveform is 512 KiB).
const MAX_MESSAGE_SIZE: usize = 4 << 20;

/// Failed reconnections after which a session starts again from discovery.
const REDISCOVER_AFTER: u32 = 3;

/// Set when the devices begin closing their sessions for a shutdown.
static CLOSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a log event is the client library complaining, during a shutdown, about the
/// answers to requests the gateway itself cancelled: closing a session makes the server fail
/// the publish requests it still holds, and async-opcua logs each as an ERROR. The gateway's own
/// log line says that the session was closed.
pub fn is_closing_noise(meta: &tracing::Metadata<'_>) -> bool {
    CLOSING.load(std::sync::atomic::Ordering::Relaxed)
        && meta.target().starts_with("opcua_")
        && *meta.level() <= tracing::Level::WARN
}

/// Serialises creation of the client certificate: devices start together on first start.
static PKI_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What a session's event loop reports.
#[derive(Debug)]
pub enum LinkEvent {
    /// Connected (first time or after a loss).
    Up,
    /// The connection was lost; the event loop is reconnecting.
    Down(String),
    /// A reconnection attempt failed; the event loop retries.
    Retrying(String),
    /// The event loop stopped (a certificate problem or a closed session): open anew.
    Ended(String),
}

/// Marks the start of the orderly close of every session (see [`is_closing_noise`]).
pub(crate) fn closing() {
    CLOSING.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// An open session and the task that drives it.
pub struct Connection {
    /// The session, for reads and subscriptions.
    pub session: Arc<Session>,
    /// What the event loop reports.
    pub events: mpsc::UnboundedReceiver<LinkEvent>,
    driver: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The server's certificate is not in the trusted folder.
    #[error(
        "the server's certificate is not trusted. It was saved as {rejected}. If it is the \
         certificate of {endpoint}, move it to {trusted_dir}/ (mv \"{rejected}\" \"{trusted_dir}/\"); \
         the gateway connects at its next attempt. Or set trust_server_on_first_use = true for \
         this device."
    )]
    Untrusted {
        /// The endpoint URL.
        endpoint: String,
        /// Where the certificate was saved.
        rejected: String,
        /// The trusted folder.
        trusted_dir: String,
    },
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

/// The PKI folder of a gateway with state in `state_dir`.
pub fn pki_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("pki")
}

fn policy(p: OpcUaSecurityPolicy) -> SecurityPolicy {
    match p {
        OpcUaSecurityPolicy::None => SecurityPolicy::None,
        OpcUaSecurityPolicy::Basic256sha256 => SecurityPolicy::Basic256Sha256,
    }
}

fn mode(m: OpcUaSecurityMode) -> MessageSecurityMode {
    match m {
        OpcUaSecurityMode::None => MessageSecurityMode::None,
        OpcUaSecurityMode::Sign => MessageSecurityMode::Sign,
        OpcUaSecurityMode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
    }
}

/// A status code as operators read it, with what to do about the common ones.
pub fn describe(code: StatusCode, own_cert: &Path) -> String {
    let hint = match code {
        StatusCode::BadCertificateUntrusted
        | StatusCode::BadSecurityChecksFailed
        | StatusCode::BadCertificateInvalid => format!(
            ": the server refused the gateway's certificate {}; trust it on the server (most \
             servers keep a rejected folder to move it out of)",
            own_cert.display()
        ),
        StatusCode::BadIdentityTokenRejected
        | StatusCode::BadIdentityTokenInvalid
        | StatusCode::BadUserAccessDenied => {
            ": the server refused the identity (check [devices.identity])".to_string()
        }
        StatusCode::BadTimeout => ": no answer in time".to_string(),
        StatusCode::BadNotConnected
        | StatusCode::BadConnectionClosed
        | StatusCode::BadCommunicationError
        | StatusCode::BadServerNotConnected => ": server unreachable".to_string(),
        _ => String::new(),
    };
    format!("{code}{hint}")
}

fn is_certificate_failure(code: StatusCode) -> bool {
    matches!(
        code,
        StatusCode::BadCertificateUntrusted
            | StatusCode::BadSecurityChecksFailed
            | StatusCode::BadCertificateInvalid
            | StatusCode::BadCertificateHostNameInvalid
            | StatusCode::BadCertificateUriInvalid
            | StatusCode::BadCertificateTimeInvalid
    )
}

/// The gateway's own certificate, for messages.
pub fn own_certificate(pki: &Path) -> PathBuf {
    pki.join("own").join("cert.der")
}

/// Opens a session to the server of `conn` for device `device`: discovery, the endpoint of
/// the configured policy and mode, server certificate trust, then the session with its event
/// loop running. The session may still be connecting when this returns: wait for
/// [`LinkEvent::Up`].
pub async fn open(
    conn: &OpcUaConnection,
    pki: &Path,
    device: &str,
) -> Result<Connection, OpenError> {
    let limit = Duration::from_millis(conn.timeout_ms);
    let mut client = client(conn, pki, device).await?;
    let endpoints = timeout(limit, client.get_server_endpoints_from_url(&conn.endpoint))
        .await
        .map_err(|_| {
            OpenError::Other(format!("discovery at {}: no answer in time", conn.endpoint))
        })?
        .map_err(|e| {
            OpenError::Other(format!(
                "discovery at {}: {}",
                conn.endpoint,
                describe(e.status(), &own_certificate(pki))
            ))
        })?;
    let chosen = choose_endpoint(conn, &endpoints)?;
    let wanted_policy = policy(conn.security_policy);
    if wanted_policy != SecurityPolicy::None {
        trust::trust_server(conn, pki, device, &chosen, std::time::SystemTime::now())?;
    }
    let identity = identity(conn)?;
    // Connect to the configured address: servers often advertise a host name the gateway
    // cannot resolve.
    let mut endpoint = chosen;
    endpoint.endpoint_url = conn.endpoint.as_str().into();
    let (session, event_loop) = client
        .connect_to_endpoint_directly(endpoint, identity)
        .map_err(|e| OpenError::Other(format!("{}: {e}", conn.endpoint)))?;
    // Unbounded, and still small: the event loop reports state changes only, at most one per
    // reconnection attempt (which backoff spaces out), and readers drain it before every read.
    let (tx, events) = mpsc::unbounded_channel();
    let own = own_certificate(pki);
    let driver = tokio::spawn(drive(event_loop, tx, own));
    Ok(Connection {
        session,
        events,
        driver,
    })
}

/// The OPC UA client of the gateway: its application identity and certificate (created on
/// first use), retry policy and message limits.
async fn client(
    conn: &OpcUaConnection,
    pki: &Path,
    device: &str,
) -> Result<opcua::client::Client, OpenError> {
    let limit = Duration::from_millis(conn.timeout_ms);
    // The first start creates an RSA key pair: seconds on a small board, so off the runtime.
    let builder = ClientBuilder::new()
        .application_name("qis-edge")
        .application_uri(APPLICATION_URI)
        .product_uri(APPLICATION_URI)
        .pki_dir(pki)
        .create_sample_keypair(true)
        .trust_server_certs(false)
        // The library's own name checks are wrong for certificates that list their URI after
        // their host names; `trust` makes them. Trust, key length and signatures stay its own.
        .verify_server_certs(false)
        .session_retry_limit(-1)
        .session_retry_initial(Duration::from_millis(conn.backoff_initial_ms))
        .session_retry_max(Duration::from_millis(conn.backoff_max_ms))
        .request_timeout(limit)
        .keep_alive_interval(Duration::from_secs(5))
        .max_message_size(MAX_MESSAGE_SIZE)
        .max_array_length(1 << 20)
        .max_chunk_count(0)
        .session_name(format!("qis-edge {device}"));
    let pki_dir = pki.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let _guard = PKI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        set_aside_unusable_own_certificate(&pki_dir);
        let client = builder.client();
        restrict_private_key(&pki_dir);
        client
    })
    .await
    .map_err(|e| OpenError::Other(format!("OPC UA client: {e}")))?
    .map_err(|e| OpenError::Other(format!("OPC UA client: {}", e.join("; "))))
}

/// The endpoint of the configured security policy and mode among those the server offers.
fn choose_endpoint(
    conn: &OpcUaConnection,
    endpoints: &[EndpointDescription],
) -> Result<EndpointDescription, OpenError> {
    let wanted_policy = policy(conn.security_policy);
    let wanted_mode = mode(conn.security_mode);
    endpoints
        .iter()
        .find(|e| {
            SecurityPolicy::from_uri(e.security_policy_uri.as_ref()) == wanted_policy
                && e.security_mode == wanted_mode
        })
        .cloned()
        .ok_or_else(|| {
            let offered: Vec<String> = endpoints
                .iter()
                .map(|e| {
                    format!(
                        "{} {:?}",
                        SecurityPolicy::from_uri(e.security_policy_uri.as_ref()),
                        e.security_mode
                    )
                })
                .collect();
            OpenError::Other(format!(
                "{} offers no endpoint with security {wanted_policy} {wanted_mode:?}; it offers: {}",
                conn.endpoint,
                offered.join(", ")
            ))
        })
}

/// Drives a session's event loop, reporting what happens to it on `tx`.
async fn drive<T: opcua::client::transport::Connector + Send + Sync + 'static>(
    event_loop: SessionEventLoop<T>,
    tx: mpsc::UnboundedSender<LinkEvent>,
    own: PathBuf,
) {
    let stream = event_loop.enter();
    futures::pin_mut!(stream);
    let mut failures = 0u32;
    while let Some(item) = stream.next().await {
        if matches!(item, Ok(SessionPollResult::ReconnectFailed(_))) {
            failures += 1;
        } else if matches!(item, Ok(SessionPollResult::Reconnected(_))) {
            failures = 0;
        }
        let event = match item {
            Ok(SessionPollResult::Reconnected(_)) => LinkEvent::Up,
            Ok(SessionPollResult::ConnectionLost(code)) => LinkEvent::Down(describe(code, &own)),
            // A server that comes back with another certificate cannot even open the old
            // secure channel: after a few failures, start again from discovery.
            Ok(SessionPollResult::ReconnectFailed(code))
                if is_certificate_failure(code) || failures >= REDISCOVER_AFTER =>
            {
                let _ = tx.send(LinkEvent::Ended(describe(code, &own)));
                return;
            }
            Ok(SessionPollResult::ReconnectFailed(code)) => {
                LinkEvent::Retrying(describe(code, &own))
            }
            Ok(_) => continue,
            Err(code) => {
                let _ = tx.send(LinkEvent::Ended(describe(code, &own)));
                return;
            }
        };
        if tx.send(event).is_err() {
            return;
        }
    }
    let _ = tx.send(LinkEvent::Ended("session closed".into()));
}

/// Moves the gateway's own certificate and key aside when either is unreadable or one is
/// missing, so that a new pair is created (async-opcua would otherwise fail on every secure
/// connection).
/// The client library writes the key pair it creates readable by everyone: the private key
/// becomes the gateway's alone (0600, its directory 0700).
fn restrict_private_key(pki: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let dir = pki.join("private");
    let key = dir.join("private.pem");
    for (path, mode) in [(&dir, 0o700), (&key, 0o600)] {
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o777 != mode {
                if let Err(e) =
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                {
                    warn!(file = %path.display(), error = %e, "Cannot restrict the OPC UA private key to the gateway's user.");
                }
            }
        }
    }
}

fn set_aside_unusable_own_certificate(pki: &Path) {
    let cert = own_certificate(pki);
    let key = pki.join("private").join("private.pem");
    let usable = match (cert.exists(), key.exists()) {
        (false, false) => return,
        (true, true) => {
            CertificateStore::read_cert(&cert).is_ok() && CertificateStore::read_pkey(&key).is_ok()
        }
        _ => false,
    };
    if usable {
        return;
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for path in [&cert, &key] {
        if path.exists() {
            let aside = path.with_extension(format!(
                "{}.corrupt-{stamp}",
                path.extension().and_then(|e| e.to_str()).unwrap_or("")
            ));
            if let Err(e) = std::fs::rename(path, &aside) {
                error!(file = %path.display(), error = %e, "Cannot move the unusable OPC UA certificate aside.");
            }
        }
    }
    error!(certificate = %cert.display(), "The gateway's OPC UA certificate or its key was unreadable or missing; moved aside as *.corrupt-{stamp}. A new pair is created: servers that trusted the old certificate must trust the new one.");
}

fn identity(conn: &OpcUaConnection) -> Result<IdentityToken, OpenError> {
    let Some(id) = &conn.identity else {
        return Ok(IdentityToken::Anonymous);
    };
    match (&id.user, &id.password, &id.certificate, &id.private_key) {
        (Some(user), Some(password), _, _) => Ok(IdentityToken::UserName(
            user.clone(),
            Password::new(password.clone()),
        )),
        (_, _, Some(cert), Some(key)) => IdentityToken::new_x509_path(cert, key).map_err(|e| {
            OpenError::Other(format!(
                "identity certificate {} / key {}: {e}",
                cert.display(),
                key.display()
            ))
        }),
        _ => Ok(IdentityToken::Anonymous),
    }
}

/// A scalar value as a number or text; `Err` says why it is neither.
pub fn scalar(value: &Variant) -> Result<Scalar, String> {
    Ok(match value {
        Variant::Boolean(b) => Scalar::Number(f64::from(u8::from(*b))),
        Variant::SByte(v) => Scalar::Number(f64::from(*v)),
        Variant::Byte(v) => Scalar::Number(f64::from(*v)),
        Variant::Int16(v) => Scalar::Number(f64::from(*v)),
        Variant::UInt16(v) => Scalar::Number(f64::from(*v)),
        Variant::Int32(v) => Scalar::Number(f64::from(*v)),
        Variant::UInt32(v) => Scalar::Number(f64::from(*v)),
        Variant::Int64(v) => Scalar::Number(*v as f64),
        Variant::UInt64(v) => Scalar::Number(*v as f64),
        Variant::Float(v) => Scalar::Number(crate::sources::modbus::shortest_f64(*v)),
        Variant::Double(v) => Scalar::Number(*v),
        Variant::String(s) => Scalar::Text(s.as_ref().to_string()),
        Variant::LocalizedText(t) => Scalar::Text(t.text.as_ref().to_string()),
        Variant::Empty => return Err("the node has no value".into()),
        Variant::Array(a) => {
            return Err(format!(
                "the node holds an array of {} values; read waveforms with a vibration device's [devices.opcua]",
                a.values.len()
            ))
        }
        other => return Err(format!("unsupported value type {:?}", other.type_id())),
    })
}

/// A scalar read from a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A number (booleans as 0 and 1).
    Number(f64),
    /// Text.
    Text(String),
}

/// The numbers of an array variable, in order; `Err` says why it is not one.
pub fn numbers(value: &Variant, out: &mut Vec<f64>) -> Result<(), String> {
    out.clear();
    let Variant::Array(array) = value else {
        return Err(format!(
            "the node holds a {:?}, not an array",
            value.type_id()
        ));
    };
    out.reserve(array.values.len());
    for v in &array.values {
        match scalar(v) {
            Ok(Scalar::Number(x)) => out.push(x),
            _ => return Err(format!("the array holds {:?}, not numbers", v.type_id())),
        }
    }
    Ok(())
}

/// Reads the array variable `node` (named `name` in messages) through `connection` into
/// `window`, within `limit`.
pub async fn read_array(
    connection: &Connection,
    node: &opcua::types::NodeId,
    name: &str,
    limit: Duration,
    window: &mut Vec<f64>,
) -> Result<(), String> {
    use opcua::types::{AttributeId, ReadValueId, TimestampsToReturn};
    let read = ReadValueId {
        node_id: node.clone(),
        attribute_id: AttributeId::Value as u32,
        ..Default::default()
    };
    let result = timeout(
        limit,
        connection
            .session
            .read(&[read], TimestampsToReturn::Neither, 0.0),
    )
    .await
    .map_err(|_| format!("{name}: no answer within {} ms", limit.as_millis()))?
    .map_err(|e| format!("{name}: read failed: {e}"))?;
    let value = result
        .first()
        .ok_or_else(|| format!("{name}: no value returned"))?;
    if let Some(status) = value.status.filter(|s| s.is_bad()) {
        return Err(format!("{name}: the server reports {status}"));
    }
    let variant = value
        .value
        .as_ref()
        .ok_or_else(|| format!("{name}: the server sent no value"))?;
    numbers(variant, window).map_err(|e| format!("{name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_become_numbers_or_text() {
        assert_eq!(scalar(&Variant::Float(85.3)), Ok(Scalar::Number(85.3)));
        assert_eq!(scalar(&Variant::Boolean(true)), Ok(Scalar::Number(1.0)));
        assert_eq!(scalar(&Variant::Int64(-7)), Ok(Scalar::Number(-7.0)));
        assert_eq!(
            scalar(&Variant::from("run")),
            Ok(Scalar::Text("run".into()))
        );
        assert!(scalar(&Variant::Empty).is_err());
        let array = Variant::from(vec![1.0f64, 2.0]);
        assert!(scalar(&array).unwrap_err().contains("array of 2"));
        let mut out = Vec::new();
        numbers(&Variant::from(vec![1i16, -2, 3]), &mut out).unwrap();
        assert_eq!(out, [1.0, -2.0, 3.0]);
        assert!(numbers(&Variant::Double(1.0), &mut out).is_err());
    }
}
