//! `papo-server health`: does the server with these settings answer on its port?
//!
//! A container's HEALTHCHECK and a monitoring probe both want more than an open port: this
//! completes the TLS handshake (trusting exactly the server's own certificate) and Papo's
//! Hello, which only a server whose accept loop and connection threads work can answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use papo_protocol::{Client, Fingerprint, Security};
use papo_server::tls::{TlsMode, CERT_FILE};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::settings::Settings;

/// How long the whole check may take before the server counts as unhealthy.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Connects as a client would and reports on stdout (healthy) or stderr (not).
pub fn check(settings: &Settings) -> Result<ExitCode> {
    let addr = own_address(settings.listen());
    let security = match settings.tls_mode() {
        TlsMode::Off => Security::Plaintext,
        TlsMode::SelfSigned => Security::tls(Some(fingerprint(&settings.data_dir()?.join(CERT_FILE))?)),
        TlsMode::Files { cert, .. } => Security::tls(Some(fingerprint(&cert)?)),
    };
    let started = Instant::now();
    match Client::connect(&addr.to_string(), &security, "papo-server health", TIMEOUT) {
        Ok(_) => {
            println!("healthy: {addr} answered the handshake in {} ms", started.elapsed().as_millis());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Where a server listening on `listen` can be reached from the same host.
fn own_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// The fingerprint of the leaf certificate in a PEM file.
fn fingerprint(cert: &Path) -> Result<Fingerprint> {
    let leaf = CertificateDer::pem_file_iter(cert)
        .ok()
        .and_then(|mut certs| certs.next())
        .and_then(Result::ok)
        .with_context(|| {
            format!(
                "no certificate in {}; has the server started with the same --data-dir (or --tls-cert)?",
                cert.display()
            )
        })?;
    Ok(Fingerprint::of(&leaf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_checked_on_loopback() {
        let check = |listen: &str| own_address(listen.parse().unwrap()).to_string();
        assert_eq!(check("0.0.0.0:7878"), "127.0.0.1:7878");
        assert_eq!(check("[::]:7878"), "[::1]:7878");
        assert_eq!(check("192.168.0.10:9000"), "192.168.0.10:9000");
    }
}
