//! The server's TLS identity: a configured certificate, or one generated on first start and
//! kept in the data directory, so clients that pinned its fingerprint keep trusting it.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use papo_protocol::tls::provider;
use papo_protocol::Fingerprint;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::warn;

/// The generated certificate's file in the data directory.
pub const CERT_FILE: &str = "tls-cert.pem";
/// The generated private key's file in the data directory, readable by its owner only.
pub const KEY_FILE: &str = "tls-key.pem";

/// Where the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Generated on first start into the data directory, reused afterwards.
    SelfSigned,
    /// PEM files from elsewhere, such as a certificate signed by a CA.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
    /// No TLS at all: every byte in the clear.
    Off,
}

/// A ready TLS identity.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// What each connection's TLS session is created from.
    pub config: Arc<rustls::ServerConfig>,
    /// The leaf certificate's SHA-256, for people to compare with what clients show.
    pub fingerprint: Fingerprint,
    /// Set when this call generated the certificate (the first start).
    pub generated: Option<PathBuf>,
}

/// Why the TLS identity could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        what: String,
    },
    /// Only one of the generated pair exists, so it cannot be reused or safely replaced.
    #[error("{present} exists but {missing} does not; restore it, or remove both to generate a new certificate (clients will then see a new fingerprint)")]
    HalfPair {
        /// The file found.
        present: PathBuf,
        /// The file missing.
        missing: PathBuf,
    },
    /// Certificate generation failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate and key.
    #[error("the certificate and key do not work together: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Loads (or on first start generates) the identity `mode` asks for; `None` when TLS is off.
pub fn prepare(mode: &TlsMode, data_dir: &Path) -> Result<Option<ServerTls>, TlsError> {
    let (cert, key, generated) = match mode {
        TlsMode::Off => return Ok(None),
        TlsMode::Files { cert, key } => (cert.clone(), key.clone(), None),
        TlsMode::SelfSigned => {
            let (cert, key) = (data_dir.join(CERT_FILE), data_dir.join(KEY_FILE));
            let generated = generate_unless_present(&cert, &key)?.then(|| cert.clone());
            (cert, key, generated)
        }
    };
    let chain = CertificateDer::pem_file_iter(&cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| pem_error(&cert, e))?;
    let leaf =
        chain.first().ok_or_else(|| TlsError::Pem { path: cert.clone(), what: "no certificate".into() })?;
    let fingerprint = Fingerprint::of(leaf);
    warn_if_exposed(&key);
    let private_key = PrivateKeyDer::from_pem_file(&key).map_err(|e| pem_error(&key, e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)?;
    // Clients reconnect with Papo's own resume tokens; TLS session tickets would only add
    // bytes and work to every handshake.
    config.send_tls13_tickets = 0;
    Ok(Some(ServerTls { config: Arc::new(config), fingerprint, generated }))
}

/// A TLS session for one accepted connection.
pub(crate) fn session(tls: &ServerTls) -> Result<Box<rustls::Connection>, rustls::Error> {
    let mut conn = rustls::ServerConnection::new(Arc::clone(&tls.config))?;
    // The outbox bounds what a connection may queue; rustls must never refuse part of a frame.
    conn.set_buffer_limit(None);
    Ok(Box::new(rustls::Connection::Server(conn)))
}

fn pem_error(path: &Path, error: rustls::pki_types::pem::Error) -> TlsError {
    match error {
        rustls::pki_types::pem::Error::Io(source) => TlsError::File { path: path.to_owned(), source },
        other => TlsError::Pem { path: path.to_owned(), what: other.to_string() },
    }
}

/// Writes a new self-signed certificate and key unless both exist; true if it wrote them.
fn generate_unless_present(cert: &Path, key: &Path) -> Result<bool, TlsError> {
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok(false),
        (true, false) => return Err(TlsError::HalfPair { present: cert.into(), missing: key.into() }),
        (false, true) => return Err(TlsError::HalfPair { present: key.into(), missing: cert.into() }),
        (false, false) => {}
    }
    let host = hostname();
    let mut names = vec!["localhost".to_owned()];
    names.extend(host.clone().filter(|h| h != "localhost"));
    let mut params = rcgen::CertificateParams::new(names)?;
    let common_name = format!("Papo server on {}", host.as_deref().unwrap_or("this host"));
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    let signing_key = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&signing_key)?;
    // The key first: a crash between the two writes leaves a half pair that is reported,
    // never a certificate whose key was lost.
    write_new(key, signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert, certificate.pem().as_bytes(), 0o644)?;
    Ok(true)
}

/// Creates `path` with `mode` from the start (never briefly readable by others), durably.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let file_err = |source| TlsError::File { path: path.to_owned(), source };
    let partial = path.with_extension("pem.partial");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&partial)
        .map_err(file_err)?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(file_err)?;
    fs::rename(&partial, path).map_err(file_err)?;
    // The new name survives a power cut only once its directory is synced: otherwise the
    // server would generate another certificate, and every client would see it change.
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| TlsError::File { path: dir.to_owned(), source })
}

fn warn_if_exposed(key: &Path) {
    if let Ok(meta) = fs::metadata(key) {
        if meta.permissions().mode() & 0o077 != 0 {
            warn!(key = %key.display(), "the TLS private key is readable by other users; run chmod 600 on it");
        }
    }
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let status = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if status != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok().filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_pair_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        prepare(&TlsMode::SelfSigned, dir.path()).unwrap();
        fs::remove_file(dir.path().join(CERT_FILE)).unwrap();
        let err = prepare(&TlsMode::SelfSigned, dir.path()).unwrap_err();
        assert!(matches!(err, TlsError::HalfPair { .. }), "{err}");
        assert!(dir.path().join(KEY_FILE).exists());
    }

    #[test]
    fn missing_or_empty_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let mode = TlsMode::Files { cert: cert.clone(), key: key.clone() };
        let err = prepare(&mode, dir.path()).unwrap_err().to_string();
        assert!(err.contains("cert.pem"), "{err}");
        fs::write(&cert, "not a certificate").unwrap();
        let err = prepare(&mode, dir.path()).unwrap_err().to_string();
        assert!(err.contains("cert.pem") && err.contains("no certificate"), "{err}");
    }
}
