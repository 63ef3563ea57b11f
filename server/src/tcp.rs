//! An accepted TCP connection made into a session: plaintext or TLS judged from its first
//! byte, an outbox registered with the shared writer, and a deadline on its handshake.

use std::cell::Cell;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use papo_protocol::tls::{TlsReader, TLS_HANDSHAKE_BYTE};
use papo_protocol::{ErrorCode, FrameReader, ReadHalf};
use tracing::{debug, info, warn};

use crate::deadline::HandshakeDeadlines;
use crate::limits::{Admission, Unauthenticated};
use crate::outbox::{Outbox, Writer};
use crate::session::Session;
use crate::shared::Shared;
use crate::tls::{self, ServerTls};
use crate::transport::Inbound;

/// What serving TCP connections needs besides what every session shares.
#[derive(Debug)]
pub(crate) struct Network {
    /// `None` when the server runs in plaintext.
    pub tls: Option<ServerTls>,
    pub writer: Arc<Writer>,
    /// Ends connections whose handshake, or login, drags on.
    pub deadlines: Arc<HandshakeDeadlines>,
    /// Connections that have not logged in, by address and in total.
    pub admission: Arc<Admission>,
}

/// How a connection begins, judged from its first byte.
enum Opening {
    Plain,
    Tls(Box<rustls::Connection>),
    /// The client speaks the other transport: told so in plaintext, which both kinds of
    /// client read (a TLS client checks for it before TLS), then closed.
    Refuse(ErrorCode, &'static str),
}

/// The bytes a TCP client sends: from the socket, or decrypted by the TLS state its outbox
/// holds.
struct TcpInbound<'s> {
    half: ReadHalf<Arc<Outbox>, &'s TcpStream>,
    stream: &'s Arc<TcpStream>,
    deadlines: &'s HandshakeDeadlines,
    session: u64,
    /// Its place among the connections that have not logged in, until it does.
    unauthenticated: Cell<Option<Unauthenticated>>,
}

impl Read for TcpInbound<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.half.read(buf)
    }
}

impl Inbound for TcpInbound<'_> {
    fn handshaken(&self, idle: Duration, login_by: Duration) {
        // The same watcher that ended a dragging handshake ends a connection that never logs
        // in: a read timeout would restart with every Ping.
        self.deadlines.watch(self.session, Instant::now() + login_by, Arc::clone(self.stream));
        let _ = self.half.socket().set_read_timeout(Some(idle));
    }

    fn logged_in(&self) {
        self.deadlines.done(self.session);
        self.unauthenticated.take();
    }
}

/// Serves one accepted connection until it ends; it holds `unauthenticated` until it logs in.
pub(crate) fn serve(stream: TcpStream, shared: &Shared, network: &Network, unauthenticated: Unauthenticated) {
    let peer = stream.peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let _ = stream.set_read_timeout(Some(shared.config.handshake_timeout));
    let Some(opening) = opening(&stream, network, peer) else { return };
    let (tls, refusal) = match opening {
        Opening::Plain => (None, None),
        Opening::Tls(tls) => (Some(tls), None),
        Opening::Refuse(code, message) => (None, Some((code, message))),
    };
    let is_tls = tls.is_some();
    let stream = Arc::new(stream);
    let outbox = match network.writer.register(Arc::clone(&stream), shared.config.outbox_limit, tls) {
        Ok(outbox) => outbox,
        Err(e) => {
            warn!(%peer, error = %e, "cannot register the connection for writing");
            return;
        }
    };
    let session = Session::new(shared, peer, Arc::clone(&outbox) as _);
    let id = session.id();
    // The whole opening (TLS handshake and Hello) must fit the handshake timeout, not just
    // each read.
    network.deadlines.watch(id, Instant::now() + shared.config.handshake_timeout, Arc::clone(&stream));
    if let Some((code, message)) = refusal {
        info!(%peer, "client speaks the other transport (TLS or plaintext); refusing");
        session.refuse(code, message.into());
        network.deadlines.done(id);
        return;
    }
    let half =
        if is_tls { ReadHalf::Tls(TlsReader::new(outbox, &*stream)) } else { ReadHalf::Plain(&*stream) };
    let inbound = TcpInbound {
        half,
        stream: &stream,
        deadlines: &network.deadlines,
        session: id,
        unauthenticated: Cell::new(Some(unauthenticated)),
    };
    session.run(&mut FrameReader::new(inbound));
    network.deadlines.done(id);
}

/// Waits (up to the handshake timeout) for the first byte; `None` if none comes.
fn opening(stream: &TcpStream, network: &Network, peer: SocketAddr) -> Option<Opening> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first) {
        Ok(1) => {}
        Ok(_) => return None,
        Err(e) => {
            debug!(%peer, error = %e, "nothing received; closing");
            return None;
        }
    }
    let speaks_tls = first[0] == TLS_HANDSHAKE_BYTE;
    Some(match (&network.tls, speaks_tls) {
        (Some(tls), true) => match tls::session(tls) {
            Ok(conn) => Opening::Tls(conn),
            Err(e) => {
                warn!(%peer, error = %e, "cannot start a TLS session");
                return None;
            }
        },
        (None, false) => Opening::Plain,
        (Some(_), false) => Opening::Refuse(
            ErrorCode::TlsRequired,
            "this server requires TLS; connect without --plaintext (and update papo if it is older than the server)",
        ),
        (None, true) => Opening::Refuse(
            ErrorCode::PlaintextOnly,
            "this server runs without TLS (papo-server --plaintext); connect with `papo --plaintext`",
        ),
    })
}
