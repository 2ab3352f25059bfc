//! HTTPS for the dashboard (`[web.tls]`): the certificate and key are read once at start, and
//! each connection is a TLS handshake (rustls, the ring provider the MQTT links use) followed
//! by the same router as plain HTTP.

use crate::config::WebTlsConfig;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower::Service;
use tracing::{debug, warn};

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server configuration for `tls`, or why the files cannot serve.
pub fn server_config(tls: &WebTlsConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let cert = &tls.cert_file;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read cert_file {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate in cert_file {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "no certificate in cert_file {} (PEM, `-----BEGIN CERTIFICATE-----`)",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| {
        format!(
            "cannot read a private key from key_file {}: {e}",
            tls.key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not fit: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` over TLS on `listener` until `cancel`; open connections end with it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: Router,
    cancel: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let mut failures = crate::intake::LogLimiter::new(Duration::from_secs(60));
    loop {
        let (tcp, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: say so (limited) and let the
                    // condition pass rather than spin on it.
                    if let Some(held_back) = failures.allow(std::time::Instant::now()) {
                        warn!(error = %e, held_back, "Dashboard cannot accept a connection.");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                // Plain HTTP on the HTTPS port, a scanner, a client that gave up: not ours to
                // log above debug.
                Ok(Err(e)) => return debug!(%peer, error = %e, "Dashboard TLS handshake failed."),
                Err(_) => return debug!(%peer, "Dashboard TLS handshake timed out."),
            };
            let service = hyper::service::service_fn(move |mut request| {
                request.extensions_mut().insert(ConnectInfo(peer));
                app.clone().call(request)
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = cancel.cancelled() => {}
                r = connection => if let Err(e) = r {
                    debug!(%peer, error = %e, "Dashboard connection ended with an error.");
                }
            }
        });
    }
}
