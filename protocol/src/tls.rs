//! TLS under the frames: certificate fingerprints, the client's trust decision (a trusted CA,
//! else a pinned fingerprint, as SSH does), and a reader that never holds the TLS state
//! while it waits on the socket.
//!
//! One rustls connection serves both directions, yet a reader thread blocks on the socket
//! while other threads write. So the socket is read *outside* any lock and the bytes are
//! then fed to the TLS state under a short one ([`TlsReader`] over a [`TlsEngine`]); writers
//! encrypt under that lock and put the bytes on the wire in the order they were produced.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, OtherError, SignatureScheme,
};
use sha2::{Digest, Sha256};

/// The first byte of a TLS handshake record; a plaintext frame starts with a length byte,
/// which is 0 for every frame under 16 MiB.
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// The first byte of a TLS alert record (a server refusing our hello).
const ALERT_BYTE: u8 = 0x15;

/// Ciphertext read from the socket per call: small, because a server holds one per connection.
const RAW_CHUNK: usize = 4 * 1024;

/// The crypto provider both ends use.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// The SHA-256 digest of a certificate (DER), the identity a person compares by eye.
///
/// Shown as 32 colon-separated hex pairs, the form `openssl x509 -fingerprint -sha256` prints,
/// so the server's log, the client's prompt and openssl can be compared directly.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(certificate_der: &[u8]) -> Self {
        Self(Sha256::digest(certificate_der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Why a fingerprint could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a SHA-256 fingerprint is 64 hex digits (colons and a `SHA256:` prefix are allowed)")]
pub struct BadFingerprint;

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(text: &str) -> Result<Self, BadFingerprint> {
        let text = text.trim();
        let text = ["SHA256:", "sha256:", "SHA256 ", "sha256 "]
            .iter()
            .find_map(|prefix| text.strip_prefix(prefix))
            .unwrap_or(text);
        let digits: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
        if digits.len() != 64 {
            return Err(BadFingerprint);
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| BadFingerprint)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| BadFingerprint)?;
        }
        Ok(Self(bytes))
    }
}

/// Why the client refused a server's certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// No trusted CA vouches for the certificate and its fingerprint is not pinned.
    #[error("the server's certificate is not from a trusted authority and not yet trusted (fingerprint {presented})")]
    Unknown {
        /// What the server presented.
        presented: Fingerprint,
    },
    /// The pinned fingerprint differs from the presented one.
    #[error("the server's certificate changed: trusted {pinned}, presented {presented}")]
    Changed {
        /// What was trusted before.
        pinned: Fingerprint,
        /// What the server presented now.
        presented: Fingerprint,
    },
}

impl TrustError {
    /// The typed refusal carried inside a rustls error, if that is what the error is.
    pub fn from_rustls(error: &rustls::Error) -> Option<&Self> {
        match error {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
                inner.downcast_ref::<Self>()
            }
            _ => None,
        }
    }
}

/// How a client secures its connection.
#[derive(Debug, Clone)]
pub enum Security {
    /// Frames in the clear, for servers started with `--plaintext`.
    Plaintext,
    /// TLS, accepting what [`TlsClient`] trusts.
    Tls(TlsClient),
}

impl Security {
    /// TLS trusting CA-signed certificates and, failing that, the one with `pinned` fingerprint.
    pub fn tls(pinned: Option<Fingerprint>) -> Self {
        Self::Tls(TlsClient::new(pinned))
    }
}

/// A client TLS configuration, built once and shared by every connection that uses it.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
}

impl TlsClient {
    /// Trusts certificates from the system's CAs (or `SSL_CERT_FILE`) for the server's name,
    /// and otherwise only the certificate whose fingerprint is `pinned`.
    pub fn new(pinned: Option<Fingerprint>) -> Self {
        let provider = provider();
        let verifier =
            Arc::new(PinningVerifier { ca: ca_verifier(), pinned, provider: Arc::clone(&provider) });
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("the ring provider supports TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Self { config: Arc::new(config) }
    }

    /// Runs the TLS handshake on a connected socket.
    ///
    /// Before handing the server's first bytes to rustls it checks that they are TLS at all:
    /// a plaintext server answers a TLS hello with a plaintext `Fatal` frame, returned here as
    /// [`HandshakeError::Plaintext`] so the user reads the server's explanation, not "corrupt
    /// message".
    pub fn handshake(&self, socket: TcpStream, server: &str) -> Result<TlsStream, HandshakeError> {
        let mut conn = ClientConnection::new(Arc::clone(&self.config), server_name(server))?;
        // Frames are bounded already; rustls must never refuse part of one.
        conn.set_buffer_limit(None);
        while conn.wants_write() {
            conn.write_tls(&mut &socket)?;
        }
        let mut first = [0u8; 1];
        if socket.peek(&mut first)? == 0 {
            return Err(HandshakeError::Closed);
        }
        if first[0] != TLS_HANDSHAKE_BYTE && first[0] != ALERT_BYTE {
            return Err(HandshakeError::Plaintext(read_plaintext_reply(&socket)));
        }
        while conn.is_handshaking() {
            conn.complete_io(&mut &socket).map_err(|e| match tls_error(&e) {
                Some(tls) => HandshakeError::from(tls.clone()),
                None => HandshakeError::Io(e),
            })?;
        }
        Ok(TlsStream::new(socket, conn))
    }
}

/// Whatever a non-TLS server sent, up to one frame, for decoding as a plaintext reply.
fn read_plaintext_reply(mut socket: &TcpStream) -> Vec<u8> {
    let mut reply = Vec::new();
    let _ = (&mut socket).take(crate::MAX_FRAME_LEN as u64).read_to_end(&mut reply);
    reply
}

/// The rustls error inside an I/O error from rustls' own I/O helpers.
fn tls_error(error: &io::Error) -> Option<&rustls::Error> {
    error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// Why a client TLS handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The certificate is not trusted (yet), or changed.
    #[error(transparent)]
    Trust(TrustError),
    /// TLS itself failed.
    #[error("TLS failed: {0}")]
    Tls(rustls::Error),
    /// The server answered in plaintext; these are its bytes.
    #[error("the server does not speak TLS")]
    Plaintext(Vec<u8>),
    /// The server closed the connection during the handshake.
    #[error("the server closed the connection during the TLS handshake")]
    Closed,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<rustls::Error> for HandshakeError {
    fn from(error: rustls::Error) -> Self {
        match TrustError::from_rustls(&error) {
            Some(trust) => Self::Trust(trust.clone()),
            None => Self::Tls(error),
        }
    }
}

/// The name the client asks for and checks a CA-signed certificate against: the host part
/// of `HOST:PORT`.
fn server_name(server: &str) -> ServerName<'static> {
    let host = match server.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => server,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .unwrap_or_else(|_| ServerName::try_from("papo.invalid").expect("a valid DNS name"))
}

/// The system's CAs, loaded once; `None` where there are none.
fn ca_verifier() -> Option<Arc<WebPkiServerVerifier>> {
    static VERIFIER: OnceLock<Option<Arc<WebPkiServerVerifier>>> = OnceLock::new();
    VERIFIER
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                return None;
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build().ok()
        })
        .clone()
}

/// Accepts a CA-signed certificate for the server's name, else only a pinned fingerprint.
#[derive(Debug)]
struct PinningVerifier {
    ca: Option<Arc<WebPkiServerVerifier>>,
    pinned: Option<Fingerprint>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let by_ca = self.ca.as_ref().is_some_and(|ca| {
            ca.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now).is_ok()
        });
        let presented = Fingerprint::of(end_entity);
        let refusal = match self.pinned {
            _ if by_ca => return Ok(ServerCertVerified::assertion()),
            Some(pinned) if pinned == presented => return Ok(ServerCertVerified::assertion()),
            Some(pinned) => TrustError::Changed { pinned, presented },
            None => TrustError::Unknown { presented },
        };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(refusal)))))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// TLS state that a [`TlsReader`] feeds with ciphertext and drains of plaintext, each under
/// a short lock.
pub trait TlsEngine {
    /// Moves decrypted bytes into `out`: `Ok(None)` when none are ready, `Ok(Some(0))` when
    /// the peer closed the TLS session cleanly.
    fn read_plaintext(&self, out: &mut [u8]) -> io::Result<Option<usize>>;

    /// Feeds ciphertext (empty at the end of the stream) and sends whatever TLS must answer;
    /// returns how many bytes it took.
    fn feed(&self, ciphertext: &[u8]) -> io::Result<usize>;
}

impl<T: TlsEngine + ?Sized> TlsEngine for Arc<T> {
    fn read_plaintext(&self, out: &mut [u8]) -> io::Result<Option<usize>> {
        (**self).read_plaintext(out)
    }

    fn feed(&self, ciphertext: &[u8]) -> io::Result<usize> {
        (**self).feed(ciphertext)
    }
}

/// Moves plaintext out of a rustls connection, for [`TlsEngine::read_plaintext`].
pub fn read_plaintext(conn: &mut rustls::Connection, out: &mut [u8]) -> io::Result<Option<usize>> {
    match conn.reader().read(out) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Hands ciphertext to a rustls connection and processes it, for [`TlsEngine::feed`]; on a
/// TLS error the connection holds an alert to send.
pub fn absorb(conn: &mut rustls::Connection, ciphertext: &[u8]) -> io::Result<usize> {
    let mut rest = ciphertext;
    let taken = conn.read_tls(&mut rest)?;
    conn.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(taken)
}

/// Reads plaintext from a TLS connection, blocking on the socket without holding its state.
#[derive(Debug)]
pub struct TlsReader<E, S> {
    engine: E,
    socket: S,
    raw: Box<[u8]>,
    start: usize,
    end: usize,
}

impl<E: TlsEngine, S: Deref<Target = TcpStream>> TlsReader<E, S> {
    /// A reader taking ciphertext from `socket` into `engine`.
    pub fn new(engine: E, socket: S) -> Self {
        Self { engine, socket, raw: vec![0; RAW_CHUNK].into_boxed_slice(), start: 0, end: 0 }
    }

    /// The socket.
    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }
}

impl<E: TlsEngine, S: Deref<Target = TcpStream>> Read for TlsReader<E, S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(n) = self.engine.read_plaintext(out)? {
                return Ok(n);
            }
            if self.start < self.end {
                self.start += self.engine.feed(&self.raw[self.start..self.end])?;
                continue;
            }
            // The only blocking call, and no lock is held across it.
            let read = match (&*self.socket).read(&mut self.raw) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => other?,
            };
            if read == 0 {
                self.engine.feed(&[])?;
                // rustls now reports a clean close (`Some(0)`) or an unexpected end (an error).
                return self.engine.read_plaintext(out).map(|n| n.unwrap_or(0));
            }
            (self.start, self.end) = (0, read);
        }
    }
}

/// A client's TLS connection, shared by its reader and writer halves.
#[derive(Debug)]
pub struct TlsStream {
    socket: Arc<TcpStream>,
    conn: Mutex<rustls::Connection>,
    /// Held while ciphertext is taken from `conn` and written, so records go out in order.
    write_order: Mutex<()>,
}

impl TlsStream {
    fn new(socket: TcpStream, conn: ClientConnection) -> Self {
        Self {
            socket: Arc::new(socket),
            conn: Mutex::new(rustls::Connection::Client(conn)),
            write_order: Mutex::new(()),
        }
    }

    /// The socket, for timeouts and shutdown.
    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    pub(crate) fn shared_socket(&self) -> Arc<TcpStream> {
        Arc::clone(&self.socket)
    }

    /// Encrypts `plaintext` (possibly empty) and writes every pending record.
    fn send(&self, plaintext: &[u8]) -> io::Result<()> {
        let _order = lock(&self.write_order);
        let mut ciphertext = Vec::new();
        {
            let mut conn = lock(&self.conn);
            conn.writer().write_all(plaintext)?;
            while conn.wants_write() {
                conn.write_tls(&mut ciphertext)?;
            }
        }
        (&*self.socket).write_all(&ciphertext)
    }
}

impl TlsEngine for TlsStream {
    fn read_plaintext(&self, out: &mut [u8]) -> io::Result<Option<usize>> {
        read_plaintext(&mut lock(&self.conn), out)
    }

    fn feed(&self, ciphertext: &[u8]) -> io::Result<usize> {
        let (absorbed, answer) = {
            let mut conn = lock(&self.conn);
            (absorb(&mut conn, ciphertext), conn.wants_write())
        };
        if answer {
            self.send(&[])?;
        }
        absorbed
    }
}

/// The writing half of a client's [`TlsStream`].
#[derive(Debug, Clone)]
pub struct TlsWriter(pub Arc<TlsStream>);

impl Write for TlsWriter {
    fn write(&mut self, plaintext: &[u8]) -> io::Result<usize> {
        self.0.send(plaintext)?;
        Ok(plaintext.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_back_in_every_accepted_spelling() {
        let fingerprint = Fingerprint::of(b"certificate");
        let shown = fingerprint.to_string();
        assert_eq!(shown.len(), 95);
        for spelling in [
            shown.clone(),
            shown.to_lowercase(),
            shown.replace(':', ""),
            format!("SHA256:{shown}"),
            format!("  sha256 {}  ", shown.to_lowercase()),
        ] {
            assert_eq!(spelling.parse::<Fingerprint>(), Ok(fingerprint), "{spelling}");
        }
        for bad in ["", "AB:CD", &shown[..93], &format!("{shown}:00"), &format!("G{}", &shown[1..])] {
            assert_eq!(bad.parse::<Fingerprint>(), Err(BadFingerprint), "{bad}");
        }
    }

    #[test]
    fn the_server_name_is_the_host_part() {
        assert_eq!(server_name("10.0.0.5:7878"), ServerName::try_from("10.0.0.5").unwrap());
        assert_eq!(server_name("[::1]:7878"), ServerName::try_from("::1").unwrap());
        assert_eq!(server_name("chat.lab.example:7878"), ServerName::try_from("chat.lab.example").unwrap());
    }
}
