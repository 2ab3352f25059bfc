//! The server's certificate: the trusted folder, first-use pins, and the checks the gateway makes
//! on the certificate itself: its validity period, the server's application URI among its
//! subject alternative names, and the endpoint's host among its DNS and IP names.
//!
//! async-opcua 0.19 compares the application URI with the first alternative name only and the
//! host with the others, so a standard certificate that lists its URI last (node-opcua's
//! default) would be refused forever with `BadCertificateUriInvalid`. The client therefore has
//! the library's name and time checks off (`verify_server_certs(false)`), which keeps its
//! trusted-folder, key-length and signature checks, and the gateway makes these checks here, as
//! OPC UA Part 4 (6.1.3) describes them, before every session it opens.

use super::OpenError;
use crate::config::OpcUaConnection;
use opcua::crypto::{CertificateStore, X509};
use opcua::types::EndpointDescription;
use std::net::IpAddr;
use std::path::Path;
use std::time::SystemTime;
use tracing::{info, warn};
use x509_cert::der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

/// Checks the certificate of `endpoint` (its period against `now`, its names), then makes sure
/// it is in the trusted folder, trusting it on first use when allowed; otherwise saves it in the
/// rejected folder and says what to do.
pub(super) fn trust_server(
    conn: &OpcUaConnection,
    pki: &Path,
    device: &str,
    endpoint: &EndpointDescription,
    now: SystemTime,
) -> Result<(), OpenError> {
    let cert = X509::from_byte_string(&endpoint.server_certificate).map_err(|e| {
        OpenError::Other(format!(
            "{} sent an unreadable certificate: {e}",
            conn.endpoint
        ))
    })?;
    let der = cert
        .to_der()
        .map_err(|e| OpenError::Other(format!("server certificate: {e}")))?;
    let names = Names::of(&der).map_err(|e| {
        OpenError::Other(format!(
            "{} sent a certificate the gateway cannot read: {e}",
            conn.endpoint
        ))
    })?;
    names
        .check(
            endpoint.server.application_uri.as_ref(),
            &conn.endpoint,
            conn.accept_host_mismatch,
            now,
        )
        .map_err(|e| OpenError::Other(format!("{}: {e}", conn.endpoint)))?;
    let name = CertificateStore::cert_file_name(&cert);
    let trusted_dir = pki.join("trusted");
    let rejected_dir = pki.join("rejected");
    let pins = pki.join("first-use");
    for dir in [&trusted_dir, &rejected_dir, &pins] {
        std::fs::create_dir_all(dir)
            .map_err(|e| OpenError::Other(format!("cannot create {}: {e}", dir.display())))?;
    }
    let trusted = trusted_dir.join(&name);
    let rejected = rejected_dir.join(&name);
    let pin = pins.join(device);
    let write = |path: &Path, bytes: &[u8]| {
        crate::store::write_atomic(path, bytes, 0o644)
            .map_err(|e| OpenError::Other(format!("cannot write {}: {e}", path.display())))
    };
    if !trusted.exists() && holds_certificate(&trusted_dir, &der) {
        // Dropped in under another name (`plc.der`): the library looks for its own name.
        write(&trusted, &der)?;
    }
    if !trusted.exists() && conn.trust_server_on_first_use && !pin.exists() {
        write(&trusted, &der)?;
        write(&pin, name.as_bytes())?;
        info!(device, endpoint = %conn.endpoint, certificate = %trusted.display(), "Trusted the OPC UA server's certificate on first use; a different certificate later will be refused.");
    }
    if trusted.exists() {
        // The library refuses a certificate that is also in the rejected folder.
        if rejected.exists() {
            let _ = std::fs::remove_file(&rejected);
        }
        return Ok(());
    }
    if !rejected.exists() {
        write(&rejected, &der)?;
    }
    if pin.exists() {
        warn!(device, endpoint = %conn.endpoint, "The server presents a different certificate from the one trusted on first use.");
    }
    Err(OpenError::Untrusted {
        endpoint: conn.endpoint.clone(),
        rejected: rejected.display().to_string(),
        trusted_dir: trusted_dir.display().to_string(),
    })
}

/// Whether a folder holds a certificate (DER or PEM, any file name) equal to `der`.
fn holds_certificate(dir: &Path, der: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(bytes) = std::fs::read(entry.path()) else {
            return false;
        };
        X509::from_der(&bytes)
            .or_else(|_| X509::from_pem(&bytes))
            .ok()
            .and_then(|c| c.to_der().ok())
            .is_some_and(|d| d == der)
    })
}

/// What a certificate names and when it is valid.
#[derive(Debug)]
struct Names {
    uris: Vec<String>,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Names {
    /// The subject alternative names and validity period of a DER certificate.
    fn of(der: &[u8]) -> Result<Self, String> {
        let cert = Certificate::from_der(der).map_err(|e| e.to_string())?;
        let tbs = &cert.tbs_certificate;
        let mut names = Self {
            uris: Vec::new(),
            dns: Vec::new(),
            ips: Vec::new(),
            not_before: tbs.validity.not_before.to_system_time(),
            not_after: tbs.validity.not_after.to_system_time(),
        };
        let alternative = tbs.get::<SubjectAltName>().map_err(|e| e.to_string())?;
        for name in alternative.map(|(_, san)| san.0).unwrap_or_default() {
            match name {
                GeneralName::UniformResourceIdentifier(uri) => names.uris.push(uri.to_string()),
                GeneralName::DnsName(dns) => names.dns.push(dns.to_string()),
                GeneralName::IpAddress(ip) => match ip.as_bytes().len() {
                    4 => names.ips.push(IpAddr::from(
                        <[u8; 4]>::try_from(ip.as_bytes()).expect("four bytes"),
                    )),
                    16 => names.ips.push(IpAddr::from(
                        <[u8; 16]>::try_from(ip.as_bytes()).expect("sixteen bytes"),
                    )),
                    _ => {}
                },
                _ => {}
            }
        }
        Ok(names)
    }

    /// Whether the certificate may serve `application_uri` at `endpoint` at `now`; `Err` says
    /// what is wrong and what to do.
    fn check(
        &self,
        application_uri: &str,
        endpoint: &str,
        accept_host_mismatch: bool,
        now: SystemTime,
    ) -> Result<(), String> {
        if now < self.not_before || now > self.not_after {
            return Err(format!(
                "the server's certificate is valid from {} to {}, and the gateway's clock says {}. \
                 If the clock is wrong, set it (NTP); otherwise the server needs a new certificate.",
                humantime::format_rfc3339_seconds(self.not_before),
                humantime::format_rfc3339_seconds(self.not_after),
                humantime::format_rfc3339_seconds(now)
            ));
        }
        if !self.uris.iter().any(|u| u == application_uri) {
            return Err(format!(
                "the server's certificate is not for the application it says it is ({}): the \
                 certificate names {}. The server's certificate must carry its application URI.",
                shown(application_uri),
                listed(&self.uris)
            ));
        }
        let Some(host) = host_of(endpoint) else {
            return Err("the endpoint names no host".into());
        };
        if accept_host_mismatch || self.names_host(&host) {
            return Ok(());
        }
        let mut named: Vec<String> = self.dns.clone();
        named.extend(self.ips.iter().map(IpAddr::to_string));
        Err(format!(
            "the server's certificate does not name the host the gateway connects to ({host}); it \
             names {}. Use one of those in endpoint, have the certificate reissued for {host}, or \
             set accept_host_mismatch = true for this device (the certificate must still be \
             trusted).",
            listed(&named)
        ))
    }

    /// Whether `host` (a name or an address) is among the certificate's DNS or IP names.
    fn names_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        match host.parse::<IpAddr>() {
            Ok(ip) => self.ips.contains(&ip) || self.dns.iter().any(|d| d == host),
            Err(_) => self
                .dns
                .iter()
                .any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(host)),
        }
    }
}

/// The host of `opc.tcp://host:port/path` (an IPv6 address without its brackets).
fn host_of(endpoint: &str) -> Option<String> {
    let rest = endpoint.strip_prefix("opc.tcp://")?;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then(|| host.to_string())
}

fn shown(text: &str) -> String {
    if text.is_empty() {
        "no application URI".into()
    } else {
        text.escape_debug().to_string()
    }
}

fn listed(items: &[String]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    let mut shown: Vec<String> = items
        .iter()
        .take(8)
        .map(|i| i.escape_debug().to_string())
        .collect();
    if items.len() > 8 {
        shown.push(format!("{} more", items.len() - 8));
    }
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// node-opcua's default certificate: `DNS:vm, IP:192.0.2.2, URI:urn:vm:NodeOPCUA-Server`,
    /// valid 2026-12-02 06:55:44 to 2036-11-29 06:55:44 UTC.
    const NODE_OPCUA: &[u8] = include_bytes!("../../../tests/vectors/opcua/node-opcua-default.der");
    const URI: &str = "urn:vm:NodeOPCUA-Server";

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    fn in_2030() -> SystemTime {
        at("2030-01-01T00:00:00Z")
    }

    #[test]
    fn the_alternative_names_are_read_in_any_order() {
        let names = Names::of(NODE_OPCUA).unwrap();
        assert_eq!(names.uris, [URI]);
        assert_eq!(names.dns, ["vm"]);
        assert_eq!(names.ips, ["192.0.2.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(names.not_before, at("2026-12-02T06:55:44Z"));
        assert_eq!(names.not_after, at("2036-11-29T06:55:44Z"));
        assert!(Names::of(b"not a certificate").is_err());
    }

    #[test]
    fn a_certificate_with_its_uri_last_serves_its_hosts() {
        let names = Names::of(NODE_OPCUA).unwrap();
        for endpoint in [
            "opc.tcp://vm:4840",
            "opc.tcp://VM.:4840/path",
            "opc.tcp://192.0.2.2:26543/",
        ] {
            assert_eq!(
                names.check(URI, endpoint, false, in_2030()),
                Ok(()),
                "{endpoint}"
            );
        }
    }

    #[test]
    fn another_host_is_refused_unless_allowed() {
        let names = Names::of(NODE_OPCUA).unwrap();
        for (endpoint, host) in [
            ("opc.tcp://127.0.0.1:4840", "127.0.0.1"),
            ("opc.tcp://plc7:4840", "plc7"),
            ("opc.tcp://[::1]:4840/", "::1"),
            ("opc.tcp://192.0.2.20:4840", "192.0.2.20"),
        ] {
            let e = names.check(URI, endpoint, false, in_2030()).unwrap_err();
            assert!(
                e.contains(&format!("({host})")) && e.contains("it names vm, 192.0.2.2."),
                "{e}"
            );
            assert!(e.contains("accept_host_mismatch = true"), "{e}");
            assert_eq!(names.check(URI, endpoint, true, in_2030()), Ok(()));
        }
    }

    #[test]
    fn the_application_uri_must_be_among_the_names() {
        let names = Names::of(NODE_OPCUA).unwrap();
        let e = names
            .check("urn:plc7:Server", "opc.tcp://vm:4840", true, in_2030())
            .unwrap_err();
        assert!(
            e.contains("(urn:plc7:Server)") && e.contains("names urn:vm:NodeOPCUA-Server"),
            "{e}"
        );
        let e = names
            .check("", "opc.tcp://vm:4840", true, in_2030())
            .unwrap_err();
        assert!(e.contains("no application URI"), "{e}");
    }

    #[test]
    fn a_certificate_outside_its_period_is_refused_with_the_clock_shown() {
        let names = Names::of(NODE_OPCUA).unwrap();
        let early = names.not_before - Duration::from_secs(1);
        let late = names.not_after + Duration::from_secs(1);
        for now in [early, late] {
            let e = names
                .check(URI, "opc.tcp://vm:4840", true, now)
                .unwrap_err();
            assert!(
                e.contains("valid from 2026-12-02T06:55:44Z to 2036-11-29T06:55:44Z")
                    && e.contains("NTP"),
                "{e}"
            );
        }
        assert_eq!(
            names.check(URI, "opc.tcp://vm", false, names.not_before),
            Ok(())
        );
    }

    #[test]
    fn endpoint_hosts() {
        for (endpoint, host) in [
            ("opc.tcp://plc", Some("plc")),
            ("opc.tcp://plc:4840", Some("plc")),
            ("opc.tcp://plc:4840/UA/Server", Some("plc")),
            ("opc.tcp://[fe80::1]:4840/", Some("fe80::1")),
            ("opc.tcp://:4840", None),
            ("http://plc", None),
        ] {
            assert_eq!(host_of(endpoint).as_deref(), host, "{endpoint}");
        }
    }
}
