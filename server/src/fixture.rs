//! What the unit tests of the handlers and the session share: a server over a temporary
//! store with a clock the test moves, users made directly in the store, and clients whose
//! sessions run over in-memory connections.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use papo_protocol::{
    frame, ChatMessage, ClientFrame, Event, FrameReader, GroupMessage, Hello, Reply, Request, RequestId,
    ServerFrame, Username, MAX_FRAME_LEN, PROTOCOL_VERSION,
};

use crate::clock::ManualClock;
use crate::handlers::{self, Context, Handled, Identity, Outcome, Then};
use crate::memory::{MemoryInbound, Pipe, PEER};
use crate::session::Session;
use crate::shared::Shared;
use crate::store::{AccountStatus, Appends, Posted, UserRecord};
use crate::testing::{unique_name, MemoryServer, PASSWORD};
use crate::transport::{Inbound, Sink};
use crate::Config;

/// How long a test waits for a frame that should come.
const PATIENCE: Duration = Duration::from_secs(10);

pub(crate) struct Fixture {
    pub server: MemoryServer,
    pub clock: Arc<ManualClock>,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(tweak: impl FnOnce(&mut Config)) -> Self {
        let clock = Arc::new(ManualClock::new());
        Self { server: MemoryServer::start_with_clock(tweak, Arc::clone(&clock) as _), clock }
    }

    /// On an existing data directory, which the caller keeps alive.
    pub fn in_dir(dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> Self {
        let clock = Arc::new(ManualClock::new());
        Self { server: MemoryServer::start_in(dir, tweak, Arc::clone(&clock) as _), clock }
    }

    pub fn shared(&self) -> &Shared {
        self.server.shared()
    }

    /// The context of the session numbered `session`.
    pub fn ctx(&self, session: u64) -> Context<'_> {
        self.shared().context(session, PEER)
    }

    /// A new account with [`PASSWORD`], made in the store directly (no announcement).
    pub fn user(&self, prefix: &str) -> Username {
        let name = Username::parse(&unique_name(prefix)).unwrap();
        let password_hash = bcrypt::hash(PASSWORD, self.shared().config.bcrypt_cost).unwrap();
        assert!(self
            .shared()
            .store
            .create_user(&name, &UserRecord { password_hash, created_at: 0, status: AccountStatus::Active })
            .unwrap());
        name
    }

    /// Runs one request as session 1, logged in as `me` (or not).
    pub fn handle(&self, me: Option<&Identity>, request: Request) -> Handled {
        handlers::handle(&self.ctx(1), me, &Appends::new(), request)
    }

    /// Logs `name` in with the password, as session 1; returns its identity and token.
    pub fn login(&self, name: &Username) -> (Identity, String) {
        let request = Request::Login { name: name.to_string(), password: PASSWORD.into() };
        logged_in(self.handle(None, request))
    }

    /// Sends a direct message as `me` and waits until the store settles it: the reply, and
    /// the message to deliver if it was stored just now.
    pub fn send(
        &self,
        me: &Identity,
        to: &str,
        body: &str,
        client_msg_id: u64,
    ) -> (Outcome, Option<ChatMessage>) {
        let (reply, posted) = self.post(me, to, body, client_msg_id);
        let direct = posted.map(|posted| match posted {
            Posted::Direct(message) => message,
            other => panic!("a direct send stored {other:?}"),
        });
        (reply, direct)
    }

    /// Sends a text to a group as `me`, like [`Fixture::send`].
    pub fn send_group(
        &self,
        me: &Identity,
        group: &str,
        body: &str,
        client_msg_id: u64,
    ) -> (Outcome, Option<GroupMessage>) {
        let (reply, posted) = self.post(me, group, body, client_msg_id);
        let line = posted.map(|posted| match posted {
            Posted::Group { message, .. } => message,
            other => panic!("a group send stored {other:?}"),
        });
        (reply, line)
    }

    /// Sends to a user or a group, and waits until the store settles it.
    fn post(&self, me: &Identity, to: &str, body: &str, client_msg_id: u64) -> (Outcome, Option<Posted>) {
        let appends = Appends::new();
        let request = Request::Send { to: to.into(), body: body.into(), client_msg_id };
        let handled = handlers::handle(&self.ctx(1), Some(me), &appends, request);
        assert!(handled.deliveries.is_empty(), "a send delivers only once durable");
        match handled.reply {
            None => {
                let acknowledged = handlers::settle(appends.next()).expect("the store answers");
                (acknowledged.reply, acknowledged.deliver)
            }
            Some(reply) => (reply, None),
        }
    }

    /// A client whose session runs on a thread of its own over an in-memory connection,
    /// past the handshake.
    pub fn connect(&self) -> MemoryClient {
        self.connect_through(|inbound| inbound)
    }

    /// Like [`Fixture::connect`], with the session reading through what `wrap` makes of its
    /// inbound pipe.
    pub fn connect_through<I: Inbound + Send + 'static>(
        &self,
        wrap: impl FnOnce(MemoryInbound) -> I,
    ) -> MemoryClient {
        let config = &self.shared().config;
        let (to_server, from_server) = (Pipe::new(usize::MAX), Pipe::new(config.outbox_limit));
        let inbound = wrap(MemoryInbound::new(Arc::clone(&to_server), config.handshake_timeout));
        let shared = Arc::clone(self.server.shared());
        let sink = Arc::clone(&from_server);
        let session =
            thread::spawn(move || Session::new(&shared, PEER, sink).run(&mut FrameReader::new(inbound)));
        let mut client = MemoryClient {
            to_server,
            from_server,
            buf: Vec::new(),
            next_id: 1,
            events: VecDeque::new(),
            session,
        };
        client.write(&ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            client_name: "unit".into(),
        }));
        assert!(matches!(client.next_frame(), Some(ServerFrame::Welcome(_))));
        client
    }

    /// A connected client logged in as `name`.
    pub fn login_client(&self, name: &Username) -> MemoryClient {
        let mut client = self.connect();
        let reply = client.request(Request::Login { name: name.to_string(), password: PASSWORD.into() });
        assert!(matches!(reply, Ok(Reply::LoggedIn(_))), "{reply:?}");
        client
    }
}

/// The identity and token a successful login handed out.
pub(crate) fn logged_in(handled: Handled) -> (Identity, String) {
    let Some(Ok(Reply::LoggedIn(session))) = handled.reply else { panic!("not logged in: {handled:?}") };
    let Then::LoggedIn(identity) = handled.then else { panic!("no identity: {:?}", handled.then) };
    assert_eq!(identity.name, session.name);
    (identity, session.token)
}

/// The test's end of an in-memory connection.
pub(crate) struct MemoryClient {
    to_server: Arc<Pipe>,
    from_server: Arc<Pipe>,
    buf: Vec<u8>,
    next_id: RequestId,
    /// Events that arrived while waiting for a reply.
    events: VecDeque<Event>,
    session: JoinHandle<()>,
}

impl MemoryClient {
    pub fn write(&self, frame: &ClientFrame) {
        self.write_bytes(&frame::encode(frame, MAX_FRAME_LEN).unwrap());
    }

    pub fn write_bytes(&self, bytes: &[u8]) {
        let _ = self.to_server.write(bytes);
    }

    /// Ends the connection from the client's side.
    pub fn hang_up(&self) {
        self.to_server.close();
    }

    /// The next frame from the server; `None` once it closed the connection.
    pub fn next_frame(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some((frame, used)) = frame::decode::<ServerFrame>(&self.buf, MAX_FRAME_LEN).unwrap() {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 4096];
            let n = self.from_server.read(&mut chunk, Some(PATIENCE)).expect("the server answers in time");
            if n == 0 {
                assert!(self.buf.is_empty(), "the server closed in the middle of a frame");
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a request without waiting; returns its id.
    pub fn send_request(&mut self, request: Request) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        self.write(&ClientFrame::Request { id, request });
        id
    }

    /// The reply to request `id`, keeping the events before it for [`MemoryClient::next_event`].
    pub fn reply_to(&mut self, id: RequestId) -> Outcome {
        loop {
            match self.next_frame().expect("a reply before the connection closes") {
                ServerFrame::Reply { id: got, result } if got == id => return result,
                ServerFrame::Event(event) => self.events.push_back(event),
                other => panic!("expected the reply to {id}, got {other:?}"),
            }
        }
    }

    pub fn request(&mut self, request: Request) -> Outcome {
        let id = self.send_request(request);
        self.reply_to(id)
    }

    pub fn next_event(&mut self) -> Event {
        if let Some(event) = self.events.pop_front() {
            return event;
        }
        match self.next_frame().expect("an event before the connection closes") {
            ServerFrame::Event(event) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Waits for the session's thread to end: how it ended (`Err` if it panicked), and
    /// whether it closed the connection.
    pub fn finish(self) -> (std::thread::Result<()>, bool) {
        let ended = self.session.join();
        (ended, self.from_server.is_closed())
    }
}
