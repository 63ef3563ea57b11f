//! One connection's life, whatever carries its bytes: the handshake, then requests until it
//! ends, each handed to [`handlers::handle`] and what it returns carried out.
//!
//! Sends are pipelined: the session queues each `Send` with the store's committer and reads
//! on; the committer acknowledges and delivers it once durable ([`pipeline`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use papo_protocol::{
    ClientFrame, ErrorCode, ErrorReply, Event, FrameError, FrameReader, Request, RequestId, ServerFrame,
    Welcome, PROTOCOL_VERSION,
};
use tracing::{debug, info, warn};

use crate::errors;
use crate::frames;
use crate::handlers::{self, Delivery, Identity, Outcome, Then};
use crate::shared::Shared;
use crate::store::{AccountStatus, Posted};
use crate::transport::{Inbound, PushError, Sink};

mod pipeline;

use pipeline::Pipeline;

/// How long a session waits for its own client to make room while streaming a backlog.
const BACKLOG_PUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one session may have queued with the committer and not yet answered; it reads on
/// only below this, so one client cannot fill the committer's queue.
const MAX_UNACKED: usize = 256;

/// Whether the connection goes on after a request.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// A connection's state, owned by its thread.
pub(crate) struct Session<'a> {
    shared: &'a Shared,
    id: u64,
    peer: SocketAddr,
    sink: Arc<dyn Sink>,
    identity: Option<Identity>,
    /// This session's sends queued with the committer, which answers them.
    pipeline: Pipeline,
    /// Wrong passwords on this connection; a few of them close it.
    failed_logins: u32,
}

impl Drop for Session<'_> {
    /// However the session ends (a panic included), it leaves the hub and closes its
    /// connection: otherwise its user would show online for ever and its queue would leak.
    fn drop(&mut self) {
        if let Some(identity) = &self.identity {
            // While unwinding from a panic, a second one (the clock or the store may be what
            // failed) would abort the whole server: the last-seen time is what a panicked
            // session gives up.
            if self.shared.hub.leave(&identity.name, self.id) && !std::thread::panicking() {
                handlers::last_session_left(
                    &self.shared.store,
                    &identity.name,
                    self.shared.clock.now_millis(),
                );
            }
            debug!(user = %identity.name, peer = %self.peer, "session ended");
        }
        self.sink.close();
    }
}

impl<'a> Session<'a> {
    /// A session for a client at `peer` whose frames go to `sink`.
    pub fn new(shared: &'a Shared, peer: SocketAddr, sink: Arc<dyn Sink>) -> Self {
        let id = shared.next_session_id();
        let pipeline = Pipeline::new(id, Arc::clone(&sink), Arc::clone(&shared.hub), shared.store.members());
        Self { shared, id, peer, sink, identity: None, pipeline, failed_logins: 0 }
    }

    /// The number the hub knows this session by.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Serves the connection from its `Hello` to its end.
    pub fn run(mut self, reader: &mut FrameReader<impl Inbound>) {
        let flow = self.handshake(reader);
        // The deadline in force now (SIGHUP may have changed it since the server started).
        let login_deadline = self.shared.limits.policy().login_deadline;
        reader.get_ref().handshaken(self.shared.config.idle_timeout, login_deadline);
        if flow == Flow::Continue {
            self.serve_requests(reader);
        }
        // Whatever was queued is answered before the connection closes.
        self.pipeline.wait_idle();
    }

    /// Tells the client why it is not served, and ends the session.
    pub fn refuse(self, code: ErrorCode, message: String) {
        self.fatal(code, message);
    }

    fn handshake(&mut self, reader: &mut FrameReader<impl Inbound>) -> Flow {
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
            // Both sides of every version decode this frame (its layout never changed), so an
            // old client shows the reason instead of failing on frames it cannot decode.
            let upgrade = if hello.protocol_version < PROTOCOL_VERSION { "papo" } else { "papo-server" };
            return self.fatal(
                ErrorCode::UnsupportedVersion,
                format!(
                    "this server speaks protocol version {PROTOCOL_VERSION} and the client {}; please upgrade {upgrade} to a release that speaks version {PROTOCOL_VERSION} too",
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

    fn serve_requests(&mut self, reader: &mut FrameReader<impl Inbound>) {
        loop {
            let frame = match reader.read_message::<ClientFrame>() {
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
            let is_login = matches!(request, Request::Login { .. });
            let ctx = self.shared.context(self.id, self.peer);
            let handled =
                handlers::handle(&ctx, self.identity.as_ref(), &self.pipeline.for_request(id), request);
            self.deliver(handled.deliveries);
            let Some(reply) = handled.reply else {
                self.pipeline.wait_below(MAX_UNACKED);
                continue;
            };
            let failed_login = is_login && reply.is_err();
            match handled.then {
                Then::Continue if failed_login => {
                    let limits = self.shared.limits.policy();
                    if matches!(&reply, Err(e) if e.code == ErrorCode::RateLimited) {
                        // A guesser over its limit waits for the refusal instead of asking
                        // again at once: refusing costs this thread nothing while it sleeps,
                        // and a loop of instant refusals would cost everyone's CPU.
                        std::thread::sleep(limits.refused_login_pause);
                    }
                    self.reply(id, reply);
                    self.failed_logins += 1;
                    if self.failed_logins >= limits.failed_logins_per_connection {
                        info!(peer = %self.peer, failures = self.failed_logins, "closing a connection after failed logins");
                        self.fatal(
                            ErrorCode::RateLimited,
                            "too many failed logins on this connection; check the name and password, then connect again".into(),
                        );
                        return;
                    }
                }
                Then::Continue => self.reply(id, reply),
                Then::LoggedIn(identity) => {
                    reader.get_ref().logged_in();
                    self.shared.hub.join(
                        &identity.name,
                        self.id,
                        Arc::clone(&self.sink),
                        self.peer,
                        self.shared.clock.now_millis(),
                    );
                    self.pipeline.logged_in(identity.name.clone());
                    self.identity = Some(identity);
                    if let Some(reason) = self.account_closed_meanwhile() {
                        self.send(&ServerFrame::Fatal(reason));
                        return;
                    }
                    self.reply(id, reply);
                    if self.stream_backlog() == Flow::Close {
                        return;
                    }
                }
                Then::Close => {
                    self.reply(id, reply);
                    return;
                }
            }
        }
    }

    /// Why this session's account may no longer be used, if the administrator disabled or
    /// deleted it while the login was finishing: their disconnect closed the sessions the
    /// hub had then, and this one joined after, so it looks for itself now that it is there.
    fn account_closed_meanwhile(&self) -> Option<ErrorReply> {
        let identity = self.identity.as_ref()?;
        match self.shared.store.user(&identity.name) {
            Ok(Some(account)) if account.status == AccountStatus::Active => None,
            Ok(Some(account)) if account.status == AccountStatus::Disabled => {
                Some(errors::account_disabled())
            }
            Ok(_) => Some(errors::account_deleted()),
            Err(e) => {
                warn!(user = %identity.name, error = %e, "cannot read the account that logged in");
                Some(errors::from_store(&e))
            }
        }
    }

    /// Pushes events to the sessions they are for.
    fn deliver(&self, deliveries: Vec<Delivery>) {
        let own = self.identity.as_ref().map(|me| (&me.name, self.id));
        pipeline::deliver(&self.shared.hub, deliveries, own);
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
            after = last.id();
            for pending in page {
                let event = match pending {
                    Posted::Direct(message) => Event::Message(message),
                    Posted::Group { message, .. } => Event::GroupMessage(message),
                };
                let encoded = frames::encode(&ServerFrame::Event(event));
                if let Err(e) = self.sink.push_when_room(&encoded, BACKLOG_PUSH_TIMEOUT) {
                    debug!(error = %e, "client stopped taking its backlog");
                    return Flow::Close;
                }
            }
        }
    }

    /// Queues a reply to this session's client.
    fn reply(&self, id: RequestId, result: Outcome) {
        self.send(&ServerFrame::Reply { id, result });
    }

    /// Queues any frame to this session's client.
    fn send(&self, frame: &ServerFrame) {
        self.push(&frames::encode(frame));
    }

    /// Queues encoded frames to this session's client.
    fn push(&self, frames: &[u8]) {
        match self.sink.push(frames) {
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

#[cfg(test)]
mod tests;
