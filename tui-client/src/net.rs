//! The network thread: owns the connection, logs in, reconnects with back-off and resends
//! unacknowledged messages, so the UI thread never touches a socket.
//!
//! The UI talks to it with [`NetCommand`]s and hears back through [`NetEvent`]s. A helper
//! reader thread per connection turns frames into inputs of the same loop, so one thread
//! decides everything about the connection's state.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use papo_protocol::{
    ChatMessage, Client, ClientError, ClientFrame, Contact, ErrorCode, ErrorReply, Event, Fingerprint,
    FrameReader, FrameWriter, HistoryPage, MessageId, ReadHalf, Reply, Request, RequestId, Security,
    ServerFrame, TrustError, UnixMillis, Username, WriteHalf,
};
use tracing::{debug, info, warn};

use crate::known_servers::KnownServers;
use crate::outbox::OutboxFile;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle time after which a Ping keeps the server from dropping us.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// Silence after which the server is presumed gone (it answers every Ping).
const SERVER_SILENCE: Duration = Duration::from_secs(75);
/// How long quitting waits for the acknowledgements of messages already sent.
const QUIT_ACK_WAIT: Duration = Duration::from_secs(1);

/// What the network thread needs to know.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// `HOST:PORT` of the server.
    pub server: String,
    /// Plaintext or TLS, and which certificates to trust.
    pub transport: Transport,
    /// Where unsent messages are kept between runs (`$XDG_DATA_HOME/papo/outbox`); `None`
    /// keeps them in memory only.
    pub outbox_dir: Option<PathBuf>,
    /// Idle time after which a Ping is sent.
    pub keepalive: Duration,
    /// Silence after which the connection is presumed dead; longer than `keepalive`.
    pub silence: Duration,
}

impl NetConfig {
    /// The defaults for `server`: no outbox on disk, a Ping after 30 s idle, 75 s of
    /// silence tolerated.
    pub fn new(server: impl Into<String>, transport: Transport) -> Self {
        Self {
            server: server.into(),
            transport,
            outbox_dir: None,
            keepalive: KEEPALIVE,
            silence: SERVER_SILENCE,
        }
    }
}
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// History page size the client asks for.
pub const HISTORY_PAGE: u32 = 100;

/// What the UI asks of the network.
#[derive(Clone, PartialEq, Eq)]
pub enum NetCommand {
    /// Log in with a password.
    Login {
        /// Account name.
        name: String,
        /// Password.
        password: String,
    },
    /// Create an account, then log in with it.
    Register {
        /// Wanted name.
        name: String,
        /// Password.
        password: String,
    },
    /// Send (and, until acknowledged, keep resending after reconnects) a message.
    Send(Outgoing),
    /// Fetch a page of a conversation.
    History {
        /// The peer.
        with: Username,
        /// Older than this id; `None` for the newest page.
        before: Option<MessageId>,
    },
    /// Mark a conversation read.
    MarkRead {
        /// The peer.
        with: Username,
        /// Newest message read.
        up_to: MessageId,
    },
    /// Trust the server's certificate (the user compared the fingerprint): remember it in
    /// `known_servers` and connect.
    Trust(Fingerprint),
    /// Log out, disconnect and end the thread.
    Quit,
}

// Passwords must never reach a log through `{:?}`.
impl std::fmt::Debug for NetCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Login { name, .. } => write!(f, "Login {{ name: {name:?} }}"),
            Self::Register { name, .. } => write!(f, "Register {{ name: {name:?} }}"),
            Self::Send(outgoing) => write!(f, "Send(to {}, #{})", outgoing.to, outgoing.client_msg_id),
            Self::History { with, before } => write!(f, "History {{ with: {with}, before: {before:?} }}"),
            Self::MarkRead { with, up_to } => write!(f, "MarkRead {{ with: {with}, up_to: {up_to} }}"),
            Self::Trust(fingerprint) => write!(f, "Trust({fingerprint})"),
            Self::Quit => f.write_str("Quit"),
        }
    }
}

/// A message on its way out, identified by its client id until the server acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Recipient.
    pub to: Username,
    /// Text.
    pub body: String,
    /// Makes resends after a reconnect idempotent.
    pub client_msg_id: u64,
}

/// The state of the link to the server, as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Trying to connect.
    Connecting,
    /// Connected (and logged in, if a session exists).
    Online,
    /// Not connected; retrying after a pause.
    Offline {
        /// Why the last attempt or connection failed.
        reason: String,
        /// When the next attempt starts.
        retry_in: Duration,
    },
}

/// How the network thread secures its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// In the clear, for a server started with `--plaintext`.
    Plaintext,
    /// TLS, trusting a CA-signed certificate or the fingerprint remembered in this file, and
    /// asking the user ([`NetEvent::Untrusted`]) about any other.
    Tls(KnownServers),
}

impl Transport {
    /// How to connect to `server` now: in the clear, or TLS pinned to the fingerprint
    /// `known_servers` remembers for it (if any).
    pub fn security(&self, server: &str) -> anyhow::Result<Security> {
        Ok(match self {
            Self::Plaintext => Security::Plaintext,
            Self::Tls(known) => Security::tls(known.lookup(server)?),
        })
    }

    /// The `known_servers` file a user edits when a certificate changed legitimately.
    pub fn known_servers_file(&self) -> PathBuf {
        match self {
            Self::Tls(known) => known.path().to_owned(),
            Self::Plaintext => PathBuf::new(),
        }
    }
}

/// Why the client will not talk to the server until the user acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustProblem {
    /// First contact: the user must compare this fingerprint with the server's.
    Unknown {
        /// What the server presented.
        presented: Fingerprint,
    },
    /// The certificate differs from the one trusted before: possibly an attacker.
    Changed {
        /// What was trusted.
        trusted: Fingerprint,
        /// What the server presented now.
        presented: Fingerprint,
        /// The file whose line the user must remove if the change is legitimate.
        file: PathBuf,
    },
}

/// What the network thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// The link changed.
    Link(Link),
    /// The server's certificate is not trusted; nothing was sent and no retry is scheduled.
    Untrusted(TrustProblem),
    /// Login or registration failed; the text is ready to show.
    AuthFailed {
        /// The server's code, when it gave one.
        code: Option<ErrorCode>,
        /// Human explanation.
        message: String,
    },
    /// Logged in (not sent again for silent resumes after reconnecting).
    LoggedIn {
        /// Canonical name.
        name: Username,
        /// Messages that arrived while away.
        pending: u64,
    },
    /// The session was resumed after a reconnect: anything may have happened meanwhile,
    /// so the UI refetches what it shows (the contacts follow by themselves).
    Resumed,
    /// Messages queued by an earlier run (from the outbox file), being sent now.
    Restored(Vec<Outgoing>),
    /// The saved session could not be resumed; the user must log in again.
    SessionExpired,
    /// Every contact.
    Contacts(Vec<Contact>),
    /// A page of a conversation.
    History {
        /// The peer.
        with: Username,
        /// What was asked.
        before: Option<MessageId>,
        /// The page.
        page: HistoryPage,
    },
    /// A message is durable on the server.
    Sent {
        /// The client id it was sent with.
        client_msg_id: u64,
        /// The stored message.
        message: ChatMessage,
    },
    /// The server refused a message; it will not be retried.
    SendFailed {
        /// The client id it was sent with.
        client_msg_id: u64,
        /// Why.
        reason: String,
    },
    /// A history request failed; the UI may ask again.
    HistoryFailed {
        /// The peer.
        with: Username,
        /// What was asked.
        before: Option<MessageId>,
        /// The server's code.
        code: ErrorCode,
        /// Why, ready to show.
        reason: String,
    },
    /// Something the server pushed.
    Server(Event),
    /// A request other than a send failed; the text is ready to show.
    Notice(String),
}

/// The UI's end of the network thread.
#[derive(Debug)]
pub struct NetHandle {
    input: Sender<Input>,
    thread: Option<thread::JoinHandle<()>>,
    unsent: Arc<AtomicUsize>,
}

impl NetHandle {
    /// Starts the network thread; `emit` receives every [`NetEvent`].
    pub fn spawn(config: NetConfig, emit: impl Fn(NetEvent) + Send + 'static) -> std::io::Result<Self> {
        let (input_tx, input) = mpsc::channel();
        let unsent = Arc::new(AtomicUsize::new(0));
        let net = Net::new(config, Box::new(emit), input_tx.clone(), Arc::clone(&unsent));
        let thread = thread::Builder::new().name("net".into()).spawn(move || net.run(&input))?;
        Ok(Self { input: input_tx, thread: Some(thread), unsent })
    }

    /// Hands a command to the network thread.
    pub fn send(&self, command: NetCommand) {
        // If the thread is gone the app is quitting anyway.
        let _ = self.input.send(Input::Command(command));
    }

    /// Logs out and disconnects, waiting at most `timeout` for messages in flight to be
    /// acknowledged and the goodbye to be written. Returns how many messages are still
    /// unsent: they wait in the outbox file for the next login.
    pub fn quit(mut self, timeout: Duration) -> usize {
        self.send(NetCommand::Quit);
        let Some(thread) = self.thread.take() else { return self.unsent.load(Ordering::SeqCst) };
        let (done_tx, done) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let _ = thread.join();
            let _ = done_tx.send(());
        });
        if done.recv_timeout(timeout).is_ok() {
            let _ = waiter.join();
        }
        self.unsent.load(Ordering::SeqCst)
    }
}

enum Input {
    Command(NetCommand),
    Frame { generation: u64, frame: ServerFrame },
    Closed { generation: u64, reason: String },
}

/// What a request in flight was, so its reply can be routed.
enum Pending {
    Register { name: String, password: String },
    Login,
    Resume,
    Send(u64),
    History { with: Username, before: Option<MessageId> },
    Contacts(Vec<Contact>),
    Quiet,
}

struct Connected {
    writer: FrameWriter<WriteHalf>,
    last_write: Instant,
}

struct Net {
    server: String,
    transport: Transport,
    outbox_dir: Option<PathBuf>,
    keepalive: Duration,
    silence: Duration,
    emit: Box<dyn Fn(NetEvent) + Send>,
    input_tx: Sender<Input>,
    link: Option<Connected>,
    generation: u64,
    next_request: RequestId,
    in_flight: HashMap<RequestId, Pending>,
    token: Option<String>,
    me: Option<Username>,
    unacked: Vec<Outgoing>,
    /// The user whose outbox file `unacked` is mirrored to.
    outbox_of: Option<Username>,
    /// How many messages `unacked` holds, for [`NetHandle::quit`].
    unsent: Arc<AtomicUsize>,
    /// History requests to send once logged in: asked while offline, or lost with a
    /// connection.
    reissue: Vec<(Username, Option<MessageId>)>,
    backoff: Duration,
    retry_at: Option<Instant>,
}

impl Net {
    fn new(
        config: NetConfig,
        emit: Box<dyn Fn(NetEvent) + Send>,
        input_tx: Sender<Input>,
        unsent: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            server: config.server,
            transport: config.transport,
            outbox_dir: config.outbox_dir,
            keepalive: config.keepalive,
            silence: config.silence,
            emit,
            input_tx,
            link: None,
            generation: 0,
            next_request: 1,
            in_flight: HashMap::new(),
            token: None,
            me: None,
            unacked: Vec::new(),
            outbox_of: None,
            unsent,
            reissue: Vec::new(),
            backoff: Duration::from_millis(500),
            retry_at: Some(Instant::now()),
        }
    }

    fn run(mut self, input: &Receiver<Input>) {
        loop {
            let wait = self.next_deadline().map(|at| at.saturating_duration_since(Instant::now()));
            let next = match wait {
                Some(wait) => input.recv_timeout(wait),
                None => input.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match next {
                Ok(Input::Command(NetCommand::Quit)) | Err(RecvTimeoutError::Disconnected) => {
                    self.quit(input);
                    return;
                }
                Ok(Input::Command(command)) => self.command(command),
                Ok(Input::Frame { generation, frame }) if generation == self.generation => self.frame(frame),
                Ok(Input::Closed { generation, reason }) if generation == self.generation => {
                    self.lost(reason)
                }
                Ok(_) => {} // From a connection that is already gone.
                Err(RecvTimeoutError::Timeout) => self.timer(),
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.link {
            Some(link) => Some(link.last_write + self.keepalive),
            None => self.retry_at,
        }
    }

    fn timer(&mut self) {
        if self.link.as_ref().is_some_and(|link| link.last_write.elapsed() >= self.keepalive) {
            self.request(Request::Ping, Pending::Quiet);
        } else if self.link.is_none() && self.retry_at.is_some_and(|at| at <= Instant::now()) {
            self.connect();
        }
    }

    fn connect(&mut self) {
        (self.emit)(NetEvent::Link(Link::Connecting));
        let security = match self.transport.security(&self.server) {
            Ok(security) => security,
            Err(e) => return self.schedule_retry(format!("{e:#}")),
        };
        let name = concat!("papo ", env!("CARGO_PKG_VERSION"));
        let client = match Client::connect(&self.server, &security, name, CONNECT_TIMEOUT) {
            Ok(client) => client,
            Err(ClientError::Trust(refusal)) => return self.untrusted(refusal),
            Err(e) => return self.schedule_retry(describe(&e)),
        };
        let (conn, early_events) = client.into_parts();
        let _ = conn.stream().set_write_timeout(Some(Duration::from_secs(10)));
        let _ = conn.stream().set_read_timeout(Some(self.silence));
        self.generation += 1;
        let (reader, writer) = conn.split();
        if let Err(e) = self.spawn_reader(reader) {
            return self.schedule_retry(format!("cannot start the reader thread: {e}"));
        }
        self.link = Some(Connected { writer, last_write: Instant::now() });
        self.backoff = Duration::from_millis(500);
        self.retry_at = None;
        info!(server = %self.server, "connected");
        for event in early_events {
            self.server_event(event);
        }
        match self.token.clone() {
            Some(token) => self.request(Request::Resume { token }, Pending::Resume),
            None => (self.emit)(NetEvent::Link(Link::Online)),
        }
    }

    fn spawn_reader(&self, mut reader: FrameReader<ReadHalf>) -> std::io::Result<()> {
        let input = self.input_tx.clone();
        let generation = self.generation;
        thread::Builder::new().name("net-reader".into()).spawn(move || loop {
            let closed = match reader.read_message::<ServerFrame>() {
                Ok(Some(frame)) => {
                    if input.send(Input::Frame { generation, frame }).is_err() {
                        return;
                    }
                    continue;
                }
                Ok(None) => "the server closed the connection".to_owned(),
                Err(e) => describe(&ClientError::Frame(e)),
            };
            let _ = input.send(Input::Closed { generation, reason: closed });
            return;
        })?;
        Ok(())
    }

    /// Stops retrying until the user decides: retrying cannot change the certificate.
    fn untrusted(&mut self, refusal: TrustError) {
        warn!(%refusal, "server not trusted");
        self.retry_at = None;
        let problem = match refusal {
            TrustError::Unknown { presented } => TrustProblem::Unknown { presented },
            TrustError::Changed { pinned, presented } => TrustProblem::Changed {
                trusted: pinned,
                presented,
                file: self.transport.known_servers_file(),
            },
        };
        (self.emit)(NetEvent::Untrusted(problem));
    }

    fn trust(&mut self, fingerprint: Fingerprint) {
        if let Transport::Tls(known) = &self.transport {
            if let Err(e) = known.trust(&self.server, fingerprint) {
                return self.schedule_retry(format!("{e:#}"));
            }
            info!(server = %self.server, %fingerprint, "trusted the server's certificate");
        }
        if self.link.is_none() {
            self.connect();
        }
    }

    fn schedule_retry(&mut self, reason: String) {
        warn!(%reason, "offline");
        let retry_in = self.backoff;
        self.retry_at = Some(Instant::now() + retry_in);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        (self.emit)(NetEvent::Link(Link::Offline { reason, retry_in }));
    }

    fn lost(&mut self, reason: String) {
        if let Some(link) = self.link.take() {
            let _ = link.writer.get_ref().socket().shutdown(std::net::Shutdown::Both);
        }
        // Sends stay in `unacked` and history requests are asked again after the reconnect;
        // the contacts are refetched anyway, and receipts are sent again by the UI once it
        // sees the refetched unread counts.
        for (_, pending) in self.in_flight.drain() {
            if let Pending::History { with, before } = pending {
                self.reissue.push((with, before));
            }
        }
        self.schedule_retry(reason);
    }

    fn command(&mut self, command: NetCommand) {
        match command {
            NetCommand::Login { name, password } => {
                if self.require_link() {
                    self.request(Request::Login { name, password }, Pending::Login);
                }
            }
            NetCommand::Register { name, password } => {
                if self.require_link() {
                    let pending = Pending::Register { name: name.clone(), password: password.clone() };
                    self.request(Request::Register { name, password }, pending);
                }
            }
            NetCommand::Send(outgoing) => {
                self.unacked.push(outgoing.clone());
                self.save_outbox();
                if self.me.is_some() && self.link.is_some() {
                    self.send_message(&outgoing);
                }
            }
            NetCommand::History { with, before } => {
                if self.me.is_some() && self.link.is_some() {
                    self.history(with, before);
                } else if !self.reissue.contains(&(with.clone(), before)) {
                    self.reissue.push((with, before));
                }
            }
            NetCommand::MarkRead { with, up_to } => {
                self.request(Request::MarkRead { with: with.to_string(), up_to }, Pending::Quiet);
            }
            NetCommand::Trust(fingerprint) => self.trust(fingerprint),
            NetCommand::Quit => unreachable!("handled by the loop"),
        }
    }

    /// Whether a connection exists; tells the user to wait if not.
    fn require_link(&mut self) -> bool {
        if self.link.is_some() {
            return true;
        }
        let message = format!("not connected to {} yet; retrying", self.server);
        (self.emit)(NetEvent::AuthFailed { code: None, message });
        false
    }

    fn history(&mut self, with: Username, before: Option<MessageId>) {
        let request = Request::History { with: with.to_string(), before, limit: HISTORY_PAGE };
        self.request(request, Pending::History { with, before });
    }

    fn send_message(&mut self, outgoing: &Outgoing) {
        let request = Request::Send {
            to: outgoing.to.to_string(),
            body: outgoing.body.clone(),
            client_msg_id: outgoing.client_msg_id,
        };
        self.request(request, Pending::Send(outgoing.client_msg_id));
    }

    fn request(&mut self, request: Request, pending: Pending) {
        let Some(link) = &mut self.link else { return };
        let id = self.next_request;
        self.next_request += 1;
        match link.writer.write_message(&ClientFrame::Request { id, request }) {
            Ok(()) => {
                link.last_write = Instant::now();
                self.in_flight.insert(id, pending);
            }
            Err(e) => self.lost(describe(&ClientError::Frame(e))),
        }
    }

    fn frame(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::Reply { id, result } => match self.in_flight.remove(&id) {
                Some(pending) => self.reply(pending, result),
                None => debug!(id, "reply to an unknown request"),
            },
            ServerFrame::Event(event) => self.server_event(event),
            ServerFrame::Fatal(e) => self.lost(e.message),
            ServerFrame::Welcome(_) => self.lost("the server sent a second welcome".into()),
        }
    }

    fn reply(&mut self, pending: Pending, result: Result<Reply, ErrorReply>) {
        match (pending, result) {
            (Pending::Register { name, password }, Ok(_)) => {
                self.request(Request::Login { name, password }, Pending::Login);
            }
            (Pending::Login | Pending::Register { .. }, Err(e)) => {
                (self.emit)(NetEvent::AuthFailed { code: Some(e.code), message: e.message });
            }
            (Pending::Login, Ok(Reply::LoggedIn(session))) => {
                if self.me.as_ref().is_some_and(|me| *me != session.name) {
                    self.set_aside_unacked();
                }
                (self.emit)(NetEvent::LoggedIn { name: session.name.clone(), pending: session.pending });
                self.start_session(session.name, session.token);
            }
            (Pending::Resume, Ok(Reply::LoggedIn(session))) => {
                (self.emit)(NetEvent::Resumed);
                self.start_session(session.name, session.token);
            }
            (Pending::Resume, Err(e)) => {
                info!(reason = %e.message, "resume refused");
                self.token = None;
                self.me = None;
                (self.emit)(NetEvent::Link(Link::Online));
                (self.emit)(NetEvent::SessionExpired);
            }
            (Pending::Send(client_msg_id), result) => self.send_settled(client_msg_id, result),
            (Pending::History { with, before }, Ok(Reply::History(page))) => {
                (self.emit)(NetEvent::History { with, before, page });
            }
            (Pending::History { with, before }, Err(e)) => {
                (self.emit)(NetEvent::HistoryFailed { with, before, code: e.code, reason: e.message });
            }
            (Pending::Contacts(mut so_far), Ok(Reply::Contacts(page))) => {
                so_far.extend(page.contacts);
                match page.next_after {
                    Some(after) => {
                        self.request(
                            Request::Contacts { after: Some(after.to_string()) },
                            Pending::Contacts(so_far),
                        );
                    }
                    None => (self.emit)(NetEvent::Contacts(so_far)),
                }
            }
            (_, Err(e)) => (self.emit)(NetEvent::Notice(e.message)),
            (_, Ok(_)) => {}
        }
    }

    fn start_session(&mut self, name: Username, token: String) {
        self.me = Some(name.clone());
        self.token = Some(token);
        self.restore_outbox(&name);
        (self.emit)(NetEvent::Link(Link::Online));
        self.request(Request::Contacts { after: None }, Pending::Contacts(Vec::new()));
        for (with, before) in std::mem::take(&mut self.reissue) {
            self.history(with, before);
        }
        for outgoing in self.unacked.clone() {
            self.send_message(&outgoing);
        }
    }

    fn outbox_file(&self, user: &Username) -> Option<OutboxFile> {
        self.outbox_dir.as_deref().map(|dir| OutboxFile::new(dir, &self.server, user))
    }

    /// Takes up what an earlier run left queued for `user` (once per user and run).
    fn restore_outbox(&mut self, user: &Username) {
        if self.outbox_of.as_ref() == Some(user) {
            return;
        }
        self.outbox_of = Some(user.clone());
        let Some(file) = self.outbox_file(user) else { return };
        let restored: Vec<Outgoing> = match file.load() {
            Ok(queued) => queued
                .into_iter()
                .filter(|o| !self.unacked.iter().any(|u| u.client_msg_id == o.client_msg_id))
                .collect(),
            Err(e) => {
                warn!(error = %format!("{e:#}"), "cannot read the outbox; leaving it alone");
                self.outbox_of = None;
                return;
            }
        };
        if restored.is_empty() {
            return self.save_outbox();
        }
        info!(count = restored.len(), "sending messages queued by an earlier run");
        self.unacked.splice(0..0, restored.iter().cloned());
        self.save_outbox();
        (self.emit)(NetEvent::Restored(restored));
    }

    /// Mirrors `unacked` to the user's outbox file.
    fn save_outbox(&mut self) {
        self.unsent.store(self.unacked.len(), Ordering::SeqCst);
        let Some(file) = self.outbox_of.clone().and_then(|user| self.outbox_file(&user)) else { return };
        if let Err(e) = file.save(&self.unacked) {
            warn!(error = %format!("{e:#}"), "cannot write the outbox");
            (self.emit)(NetEvent::Notice(format!("cannot keep unsent messages on disk: {e:#}")));
        }
    }

    /// Logging in as someone else: the other user's unsent messages stay in their outbox
    /// file for their next login, and leave this session's queue.
    fn set_aside_unacked(&mut self) {
        let kept = self.outbox_of.clone();
        for outgoing in std::mem::take(&mut self.unacked) {
            let reason = match &kept {
                Some(user) if self.outbox_dir.is_some() => format!("kept for the next login as {user}"),
                _ => "you logged in as someone else".to_owned(),
            };
            (self.emit)(NetEvent::SendFailed { client_msg_id: outgoing.client_msg_id, reason });
        }
        self.outbox_of = None;
        self.unsent.store(0, Ordering::SeqCst);
    }

    fn send_settled(&mut self, client_msg_id: u64, result: Result<Reply, ErrorReply>) {
        let Some(at) = self.unacked.iter().position(|o| o.client_msg_id == client_msg_id) else {
            return; // A resend of something already settled.
        };
        let outgoing = self.unacked.remove(at);
        self.save_outbox();
        match result {
            Ok(Reply::Sent { id, sent_at }) => {
                let Some(from) = self.me.clone() else { return };
                let message = sent_message(id, from, outgoing, sent_at);
                (self.emit)(NetEvent::Sent { client_msg_id, message });
            }
            Ok(other) => warn!(?other, "unexpected reply to a send"),
            Err(e) if e.code == ErrorCode::Internal || e.code == ErrorCode::NotLoggedIn => {
                // Worth another try: keep it queued for the next connection.
                self.unacked.insert(at, outgoing);
                self.save_outbox();
            }
            Err(e) => (self.emit)(NetEvent::SendFailed { client_msg_id, reason: e.message }),
        }
    }

    fn server_event(&mut self, event: Event) {
        if let Event::Message(message) = &event {
            if self.me.as_ref() == Some(&message.to) {
                let request = Request::Delivered { from: message.from.to_string(), up_to: message.id };
                self.request(request, Pending::Quiet);
            }
        }
        (self.emit)(NetEvent::Server(event));
    }

    /// Gives messages already written a moment to be acknowledged (what is still unsent
    /// stays in the outbox file), then logs out.
    fn quit(&mut self, input: &Receiver<Input>) {
        let deadline = Instant::now() + QUIT_ACK_WAIT;
        while self.me.is_some() && self.in_flight.values().any(|p| matches!(p, Pending::Send(_))) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            match input.recv_timeout(left) {
                Ok(Input::Frame { generation, frame }) if generation == self.generation => self.frame(frame),
                Ok(Input::Closed { generation, .. }) if generation == self.generation => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if self.me.is_some() {
            self.request(Request::Logout, Pending::Quiet);
        }
        if let Some(link) = self.link.take() {
            let _ = link.writer.get_ref().socket().shutdown(std::net::Shutdown::Both);
        }
    }
}

fn sent_message(id: MessageId, from: Username, outgoing: Outgoing, sent_at: UnixMillis) -> ChatMessage {
    ChatMessage { id, from, to: outgoing.to, body: outgoing.body, sent_at }
}

/// A one-line explanation of a connection problem, for the status bar.
pub fn describe(error: &ClientError) -> String {
    match error {
        ClientError::Connect { addr, source } => format!("cannot reach {addr}: {source}"),
        ClientError::Fatal(e) | ClientError::Rejected(e) => e.message.clone(),
        other => other.to_string(),
    }
}
