//! One connection's life on its own thread: handshake, then requests until it ends.
//!
//! Sends are pipelined: the session queues every `Send` it has already read with the store's
//! committer, and only when it would block on the socket again does it collect their
//! answers (by then usually one group commit has covered them all), acknowledge them and
//! deliver them.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use papo_protocol::tls::{TlsReader, TLS_HANDSHAKE_BYTE};
use papo_protocol::{
    frame, ClientFrame, ErrorCode, ErrorReply, Event, FrameError, FrameReader, ReadHalf, Reply, Request,
    RequestId, ServerFrame, Username, Welcome, MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use tracing::{debug, info, warn};

use crate::outbox::{Outbox, PushError};
use crate::server::Shared;
use crate::store::{Appended, Appends, StoreError};
use crate::{auth, chat, tls};

/// How long a session waits for its own client to make room while streaming a backlog.
const BACKLOG_PUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// More stored-but-unacknowledged sends than this are acknowledged before reading on.
const MAX_UNACKED: usize = 256;

/// What a request handler answers.
pub(crate) type Outcome = Result<Reply, ErrorReply>;

/// Whether the connection goes on after a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Close,
}

/// The logged-in identity of a session.
#[derive(Debug)]
pub(crate) struct Identity {
    pub name: Username,
    /// Hash of the resume token this session holds, revoked by `Logout`.
    pub token_hash: Vec<u8>,
}

/// A connection's state, owned by its thread.
pub(crate) struct Session<'a> {
    pub shared: &'a Shared,
    pub id: u64,
    pub peer: SocketAddr,
    pub outbox: Arc<Outbox>,
    pub identity: Option<Identity>,
    /// Where the committer answers this session's sends.
    pub appends: Appends,
    /// Sends queued with the committer and not yet acknowledged, oldest first.
    unacked: Vec<RequestId>,
}

/// The frames a session reads: from the socket, or decrypted by the TLS state its outbox holds.
type Inbound<'s> = FrameReader<ReadHalf<Arc<Outbox>, &'s TcpStream>>;

/// How a connection begins, judged from its first byte.
enum Opening {
    Plain,
    Tls(Box<rustls::Connection>),
    /// The client speaks the other transport: told so in plaintext, which both kinds of
    /// client read (a TLS client checks for it before TLS), then closed.
    Refuse(ErrorCode, &'static str),
}

/// Serves one accepted connection until it ends.
pub(crate) fn serve(stream: TcpStream, shared: &Shared) {
    let peer = stream.peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let _ = stream.set_read_timeout(Some(shared.config.handshake_timeout));
    let Some(opening) = opening(&stream, shared, peer) else { return };
    let (tls, refusal) = match opening {
        Opening::Plain => (None, None),
        Opening::Tls(tls) => (Some(tls), None),
        Opening::Refuse(code, message) => (None, Some((code, message))),
    };
    let is_tls = tls.is_some();
    let stream = Arc::new(stream);
    let outbox = match shared.writer.register(Arc::clone(&stream), shared.config.outbox_limit, tls) {
        Ok(outbox) => outbox,
        Err(e) => {
            warn!(%peer, error = %e, "cannot register the connection for writing");
            return;
        }
    };
    let id = shared.next_session_id();
    // The whole opening (TLS handshake and Hello) must fit the handshake timeout, not just
    // each read.
    shared.deadlines.watch(id, Instant::now() + shared.config.handshake_timeout, Arc::clone(&stream));
    let mut session = Session {
        shared,
        id,
        peer,
        outbox: Arc::clone(&outbox),
        identity: None,
        appends: Appends::new(),
        unacked: Vec::new(),
    };
    if let Some((code, message)) = refusal {
        info!(%peer, "client speaks the other transport (TLS or plaintext); refusing");
        session.fatal(code, message.into());
        shared.deadlines.done(id);
    } else {
        let mut reader = FrameReader::new(if is_tls {
            ReadHalf::Tls(TlsReader::new(outbox, &*stream))
        } else {
            ReadHalf::Plain(&*stream)
        });
        let flow = session.handshake(&mut reader);
        shared.deadlines.done(id);
        if flow == Flow::Continue {
            let _ = stream.set_read_timeout(Some(shared.config.idle_timeout));
            session.serve_requests(&mut reader);
        }
        session.finish_sends();
    }
}

impl Drop for Session<'_> {
    /// However the session ends (a panic included), it leaves the hub and closes its
    /// connection: otherwise its user would show online for ever and its queue would leak.
    fn drop(&mut self) {
        if let Some(identity) = &self.identity {
            self.shared.hub.leave(&identity.name, self.id);
            debug!(user = %identity.name, peer = %self.peer, "session ended");
        }
        self.outbox.close();
    }
}

/// Waits (up to the handshake timeout) for the first byte; `None` if none comes.
fn opening(stream: &TcpStream, shared: &Shared, peer: SocketAddr) -> Option<Opening> {
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
    Some(match (&shared.tls, speaks_tls) {
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

impl Session<'_> {
    fn handshake(&mut self, reader: &mut Inbound<'_>) -> Flow {
        let hello = match reader.read_message::<ClientFrame>() {
            Ok(Some(ClientFrame::Hello(hello))) => hello,
            Ok(Some(ClientFrame::Request { .. })) => {
                return self.fatal(ErrorCode::Malformed, "the connection must start with Hello".into());
            }
            Ok(None) => return Flow::Close,
            Err(e) => return self.frame_failed(e),
        };
        if hello.protocol_version != PROTOCOL_VERSION {
            info!(peer = %self.peer, version = hello.protocol_version, "client speaks another protocol version");
            return self.fatal(
                ErrorCode::UnsupportedVersion,
                format!(
                    "this server speaks protocol version {PROTOCOL_VERSION} and the client {}; use matching releases of papo and papo-server",
                    hello.protocol_version
                ),
            );
        }
        debug!(peer = %self.peer, client = %hello.client_name.escape_debug(), "handshake");
        let welcome = Welcome {
            protocol_version: PROTOCOL_VERSION,
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        self.send(&ServerFrame::Welcome(welcome));
        Flow::Continue
    }

    fn serve_requests(&mut self, reader: &mut Inbound<'_>) {
        loop {
            let next = match reader.buffered_message::<ClientFrame>() {
                Ok(Some(frame)) => Ok(Some(frame)),
                Ok(None) => {
                    // About to block on the socket: settle every pipelined send first.
                    if self.finish_sends() == Flow::Close {
                        return;
                    }
                    reader.read_message()
                }
                Err(e) => Err(e),
            };
            let frame = match next {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(e) => {
                    self.frame_failed(e);
                    return;
                }
            };
            let ClientFrame::Request { id, request } = frame else {
                self.fatal(ErrorCode::Malformed, "Hello may only be sent once".into());
                return;
            };
            if self.handle(id, request) == Flow::Close {
                return;
            }
            if self.unacked.len() >= MAX_UNACKED && self.finish_sends() == Flow::Close {
                return;
            }
        }
    }

    fn handle(&mut self, id: RequestId, request: Request) -> Flow {
        let needs_login = !matches!(
            request,
            Request::Register { .. } | Request::Login { .. } | Request::Resume { .. } | Request::Ping
        );
        if needs_login && self.identity.is_none() {
            self.reply(id, Err(ErrorReply::new(ErrorCode::NotLoggedIn, "log in first")));
            return Flow::Continue;
        }
        let outcome = match request {
            Request::Register { name, password } => auth::register(self, &name, &password),
            Request::Login { name, password } => auth::login(self, &name, &password),
            Request::Resume { token } => auth::resume(self, &token),
            Request::Logout => {
                let outcome = auth::logout(self);
                self.reply(id, outcome);
                return Flow::Close;
            }
            Request::Send { to, body, client_msg_id } => match chat::send(self, &to, &body, client_msg_id) {
                Ok(()) => {
                    self.unacked.push(id);
                    return Flow::Continue;
                }
                Err(e) => Err(e),
            },
            Request::History { with, before, limit } => chat::history(self, &with, before, limit),
            Request::Contacts { after } => chat::contacts(self, after.as_deref()),
            Request::MarkRead { with, up_to } => chat::mark_read(self, &with, up_to),
            Request::Delivered { from, up_to } => chat::delivered(self, &from, up_to),
            Request::Ping => Ok(Reply::Pong),
        };
        let logged_in = matches!(outcome, Ok(Reply::LoggedIn(_)));
        self.reply(id, outcome);
        if logged_in {
            return self.stream_backlog();
        }
        Flow::Continue
    }

    /// Acknowledges every queued send as it becomes durable, and delivers them; frames to
    /// the same connection go out in one write.
    ///
    /// If the store stopped before answering, the outcome of those sends is unknown, and no
    /// reply may claim either way: the connection closes, and the client resends them (with
    /// the same client ids) once it reconnects.
    fn finish_sends(&mut self) -> Flow {
        if self.unacked.is_empty() {
            return Flow::Continue;
        }
        let mut replies = Vec::new();
        let mut fresh = Vec::new();
        let mut flow = Flow::Continue;
        for id in std::mem::take(&mut self.unacked) {
            let result = match self.appends.next() {
                Ok(Appended::New(message)) => {
                    let sent = Reply::Sent { id: message.id, sent_at: message.sent_at };
                    fresh.push(message);
                    Ok(sent)
                }
                Ok(Appended::Resent(message)) => Ok(Reply::Sent { id: message.id, sent_at: message.sent_at }),
                Ok(Appended::Reused { original }) => Err(ErrorReply::new(
                    ErrorCode::InvalidRequest,
                    format!("this client_msg_id was already used for another message (id {original}); nothing was stored"),
                )),
                Err(StoreError::Stopped) => {
                    flow = Flow::Close;
                    continue;
                }
                Err(e) => Err(internal(&e)),
            };
            encode_into(&ServerFrame::Reply { id, result }, &mut replies);
        }
        self.push(&replies);
        chat::deliver(self, fresh);
        flow
    }

    /// Pushes the messages that waited for this user, oldest first, at the client's pace.
    fn stream_backlog(&mut self) -> Flow {
        let Some(identity) = &self.identity else { return Flow::Continue };
        let mut after = 0;
        loop {
            let page = match self.shared.store.pending_after(&identity.name, after, 256) {
                Ok(page) => page,
                Err(e) => {
                    warn!(error = %e, "cannot read pending messages");
                    return Flow::Close;
                }
            };
            let Some(last) = page.last() else { return Flow::Continue };
            after = last.id;
            for message in page {
                let encoded = encode(&ServerFrame::Event(Event::Message(message)));
                if let Err(e) = self.outbox.push_when_room(&encoded, BACKLOG_PUSH_TIMEOUT) {
                    debug!(error = %e, "client stopped taking its backlog");
                    return Flow::Close;
                }
            }
        }
    }

    /// Queues a reply to this session's client.
    pub fn reply(&self, id: RequestId, result: Outcome) {
        self.send(&ServerFrame::Reply { id, result });
    }

    /// Queues any frame to this session's client.
    pub fn send(&self, frame: &ServerFrame) {
        self.push(&encode(frame));
    }

    /// Queues encoded frames to this session's client.
    fn push(&self, frames: &[u8]) {
        match self.outbox.push(frames) {
            Ok(()) | Err(PushError::Closed) => {}
            Err(e) => debug!(peer = %self.peer, error = %e, "dropping frames"),
        }
    }

    fn fatal(&self, code: ErrorCode, message: String) -> Flow {
        self.send(&ServerFrame::Fatal(ErrorReply::new(code, message)));
        Flow::Close
    }

    fn frame_failed(&self, error: FrameError) -> Flow {
        match error {
            FrameError::TooLarge { len, max } => {
                warn!(peer = %self.peer, len, "frame over the limit; closing");
                self.fatal(
                    ErrorCode::TooLarge,
                    format!("a frame of {len} bytes exceeds the {max}-byte limit"),
                )
            }
            FrameError::Malformed(reason) => {
                warn!(peer = %self.peer, %reason, "malformed frame; closing");
                self.fatal(ErrorCode::Malformed, format!("malformed frame: {reason}"))
            }
            FrameError::Io(e)
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                info!(peer = %self.peer, "dropping an idle connection");
                self.fatal(
                    ErrorCode::IdleTimeout,
                    "no request for too long; send Ping to stay connected".into(),
                )
            }
            other => {
                debug!(peer = %self.peer, error = %other, "connection ended");
                Flow::Close
            }
        }
    }
}

/// Encodes a server frame; every frame the server builds is sized to fit.
pub(crate) fn encode(frame: &ServerFrame) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(frame, &mut out);
    out
}

/// Appends an encoded server frame to `out`.
pub(crate) fn encode_into(frame: &ServerFrame, out: &mut Vec<u8>) {
    if let Err(e) = frame::encode_into(frame, MAX_FRAME_LEN, out) {
        warn!(error = %e, "a reply did not fit a frame");
        let fallback =
            ServerFrame::Fatal(ErrorReply::new(ErrorCode::Internal, "the server built an oversized frame"));
        frame::encode_into(&fallback, MAX_FRAME_LEN, out).expect("a short error fits a frame");
    }
}

/// The reply to a request that failed inside the server; none of them stored anything.
pub(crate) fn internal(error: &StoreError) -> ErrorReply {
    match error {
        StoreError::StorageFull { .. } => ErrorReply::new(
            ErrorCode::StorageFull,
            "the server's disk is full, so nothing was stored; try again later (the server's administrator has been told)",
        ),
        StoreError::Stopped => {
            ErrorReply::new(ErrorCode::ShuttingDown, "the server is stopping; try again when it is back")
        }
        _ => {
            warn!(%error, "storage failure");
            ErrorReply::new(ErrorCode::Internal, "the server could not complete the request, and stored nothing; try again")
        }
    }
}
