//! One way to build the options of a broker connection, for both links: client id, keep-alive,
//! credentials and TLS (rustls, no OpenSSL to cross-compile).

use crate::config::{MqttConfig, TlsConfig};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use std::sync::Arc;
use std::time::Duration;

/// Errors setting up a broker connection.
#[derive(Debug, thiserror::Error)]
pub enum MqttSetupError {
    /// A TLS file could not be read or used.
    #[error("mqtt.tls: {0}")]
    Tls(String),
}

/// Options for a connection to the broker of `config` as `client_id`: keep-alive, credentials
/// and TLS from the config; session, will and acknowledgement mode are the caller's.
pub fn options(config: &MqttConfig, client_id: String) -> Result<MqttOptions, MqttSetupError> {
    let mut options = MqttOptions::new(client_id, config.host.clone(), config.port);
    options.set_keep_alive(Duration::from_secs(config.keep_alive_s));
    options.set_max_packet_size(config.max_message_bytes, config.max_message_bytes);
    if let Some(user) = &config.username {
        options.set_credentials(user.clone(), config.password.clone().unwrap_or_default());
    }
    if let Some(tls) = &config.tls {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(rustls_config(tls)?),
        )));
    }
    Ok(options)
}

/// The socket options of both links: `TCP_NODELAY`, so a small QoS 1 publish and its PUBACK
/// are not held back by Nagle's algorithm waiting for the peer's delayed ACK (on loopback with
/// stock mosquitto that alone limited the outbox to about 20 packets a second).
pub fn network() -> rumqttc::NetworkOptions {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n
}

/// `host:port` of the broker, for log lines.
pub fn broker(config: &MqttConfig) -> String {
    format!("{}:{}", config.host, config.port)
}

/// The brokers a connection tries in turn: `host`/`port`, then each `failover` address,
/// each with the same options (set by `configure` after [`options`]).
pub struct Brokers {
    options: Vec<(String, MqttOptions)>,
    current: usize,
}

impl Brokers {
    /// The options for every address of `config`.
    pub fn new(
        config: &MqttConfig,
        client_id: &str,
        configure: impl Fn(&mut MqttOptions),
    ) -> Result<Self, MqttSetupError> {
        let mut all = Vec::new();
        for (host, port) in config.addresses() {
            let at = MqttConfig {
                host: host.clone(),
                port,
                ..config.clone()
            };
            let mut o = options(&at, client_id.to_string())?;
            configure(&mut o);
            all.push((broker(&at), o));
        }
        Ok(Self {
            options: all,
            current: 0,
        })
    }

    /// The options of the broker to connect to now.
    pub fn options(&self) -> MqttOptions {
        self.options[self.current].1.clone()
    }

    /// `host:port` of the broker tried now, for log lines.
    pub fn name(&self) -> &str {
        &self.options[self.current].0
    }

    /// After a failed connection: the next broker in turn is the one `eventloop` connects to
    /// next. False when there is only one.
    pub fn next(&mut self, eventloop: &mut rumqttc::EventLoop) -> bool {
        if self.options.len() < 2 {
            return false;
        }
        self.current = (self.current + 1) % self.options.len();
        eventloop.mqtt_options = self.options();
        true
    }
}

fn rustls_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, MqttSetupError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let err = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        MqttSetupError::Tls(format!("{what} {}: {e}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.ca_file)
        .map_err(|e| err("cannot read ca_file", &tls.ca_file, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| err("bad certificate in ca_file", &tls.ca_file, &e))?;
    if cas.is_empty() {
        return Err(err("no certificate in ca_file", &tls.ca_file, &"empty"));
    }
    for ca in cas {
        roots
            .add(ca)
            .map_err(|e| err("unusable CA certificate in", &tls.ca_file, &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttSetupError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| err("cannot read client_cert_file", cert, &e))?
                .collect::<Result<_, _>>()
                .map_err(|e| err("bad certificate in client_cert_file", cert, &e))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| err("cannot read client_key_file", key, &e))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                MqttSetupError::Tls(format!("client certificate and key do not fit: {e}"))
            })
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}
