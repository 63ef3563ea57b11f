//! The network thread: owns the connection, logs in, reconnects with back-off and resends
//! unacknowledged messages, so the UI thread never touches a socket.
//!
//! The UI talks to it with [`NetCommand`]s and hears back through [`NetEvent`]s; this file
//! holds those types and the UI's [`NetHandle`], and `machine.rs` the thread's state
//! machine. A helper reader thread per connection turns frames into inputs of the same
//! loop, so one thread decides everything about the connection's state.

mod machine;
mod receipts;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use papo_protocol::{
    ClientError, Contact, ErrorCode, Event, Fingerprint, FrameError, GroupHistoryPage, GroupInfo, GroupName,
    GroupSummary, HistoryPage, MessageId, SearchPage, Security, UnixMillis, Username,
};

use crate::conv_key::ConvKey;
use crate::known_servers::KnownServers;
use machine::{Input, Net};

/// Idle time after which a Ping keeps the server from dropping us.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// Silence after which the server is presumed gone (it answers every Ping).
const SERVER_SILENCE: Duration = Duration::from_secs(75);
/// History page size the client asks for.
pub const HISTORY_PAGE: u32 = 100;
/// Search matches the client asks for per page.
pub const SEARCH_PAGE: u32 = 50;

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
        /// Invite code, if the user gave one.
        invite: Option<String>,
    },
    /// Send (and, until acknowledged, keep resending after reconnects) a message.
    Send(Outgoing),
    /// Fetch a page of a conversation.
    History {
        /// The user or group.
        with: ConvKey,
        /// Older than this id; `None` for the newest page.
        before: Option<MessageId>,
    },
    /// Mark a conversation read.
    MarkRead {
        /// The user or group.
        with: ConvKey,
        /// Newest message read.
        up_to: MessageId,
    },
    /// Trust the server's certificate (the user compared the fingerprint): remember it in
    /// `known_servers` and connect.
    Trust(Fingerprint),
    /// Tell the peer we are typing (dropped while offline: it would be stale by then).
    Typing {
        /// The peer.
        to: Username,
    },
    /// Search my conversations and groups (or only the one `with` names) for a page of matches.
    Search(SearchQuery),
    /// Change my password.
    ChangePassword {
        /// The current password.
        old: String,
        /// The new one.
        new: String,
    },
    /// Create, change, leave or look into a group.
    Group(GroupCommand),
    /// The UI found out that a group it showed was renamed while this machine was offline
    /// (it never got the `Renamed` line): what is queued for the old name follows.
    FollowRename {
        /// The name it had.
        from: GroupName,
        /// The name it has.
        to: GroupName,
    },
    /// Ask whether `group` holds the line `line` (its one line older than `line + 1`): ids
    /// are unique across the server, so only the same group can hold it.
    GroupHoldsLine {
        /// The group asked.
        group: GroupName,
        /// A line id of the group it may be.
        line: MessageId,
    },
    /// Log out every session of my account, saved ones included, this one too.
    LogoutEverywhere,
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
            Self::Typing { to } => write!(f, "Typing {{ to: {to} }}"),
            Self::Search(query) => write!(f, "Search({query:?})"),
            Self::ChangePassword { .. } => f.write_str("ChangePassword"),
            Self::Group(command) => write!(f, "Group({command:?})"),
            Self::FollowRename { from, to } => write!(f, "FollowRename {{ from: {from}, to: {to} }}"),
            Self::GroupHoldsLine { group, line } => {
                write!(f, "GroupHoldsLine {{ group: {group}, line: {line} }}")
            }
            Self::LogoutEverywhere => f.write_str("LogoutEverywhere"),
            Self::Quit => f.write_str("Quit"),
        }
    }
}

/// A request about a group, as asked and as answered in [`NetEvent::Group`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupCommand {
    /// Create a group owned by me with these members besides me.
    Create {
        /// Its name.
        name: GroupName,
        /// Who else is in it.
        members: Vec<Username>,
    },
    /// Add a member (the owner only).
    Invite {
        /// The group.
        group: GroupName,
        /// Who to add.
        user: Username,
    },
    /// Remove a member (the owner only).
    Kick {
        /// The group.
        group: GroupName,
        /// Who to remove.
        user: Username,
    },
    /// Leave a group.
    Leave(GroupName),
    /// A group's members with their presence, for the status line.
    Members(GroupName),
    /// Rename a group (the owner only).
    Rename {
        /// The group, by its name now.
        group: GroupName,
        /// Its new name.
        to: GroupName,
    },
    /// Delete a group and its history, for everyone (the owner only).
    Delete(GroupName),
    /// Make another member the owner (the owner only).
    Handover {
        /// The group.
        group: GroupName,
        /// The new owner.
        to: Username,
    },
    /// A group's owner and members with presence and receipts, asked for by the client
    /// itself (the header, the members pane, "✓✓ 3/5"); answered without a word to the user
    /// unless it fails.
    Info(GroupName),
}

/// One page of a search, as asked and as answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// The text.
    pub text: String,
    /// Only the conversation with this user or group.
    pub with: Option<ConvKey>,
    /// Only messages older than this id; `None` for the newest.
    pub before: Option<MessageId>,
}

/// A message on its way out, identified by its client id until the server acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Recipient: a user or a group.
    pub to: ConvKey,
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
    /// The saved session could not be resumed; the user must log in again. `why` is the
    /// server's reason when it is more than an expired token (a disabled account).
    SessionExpired {
        /// What the server said, unless the token had simply expired.
        why: Option<String>,
    },
    /// Every contact.
    Contacts(Vec<Contact>),
    /// Every group I am in, asked for with the contacts at each login and reconnect.
    Groups(Vec<GroupSummary>),
    /// A page of a conversation.
    History {
        /// The peer.
        with: Username,
        /// What was asked.
        before: Option<MessageId>,
        /// The page.
        page: HistoryPage,
    },
    /// A page of a group's lines.
    GroupHistory {
        /// What was asked.
        before: Option<MessageId>,
        /// The page, naming its group.
        page: GroupHistoryPage,
    },
    /// A message is durable on the server.
    Sent {
        /// What was sent, with the client id it was sent with.
        outgoing: Outgoing,
        /// Its server id.
        id: MessageId,
        /// When the server stored it.
        sent_at: UnixMillis,
    },
    /// The server refused a message; it will not be retried.
    SendFailed {
        /// The client id it was sent with.
        client_msg_id: u64,
        /// Why.
        reason: String,
    },
    /// The answer to [`NetCommand::GroupHoldsLine`].
    GroupHoldsLine {
        /// The group asked.
        group: GroupName,
        /// The line asked for.
        line: MessageId,
        /// Whether the group holds it, or the server's code when it did not say.
        held: Result<bool, ErrorCode>,
    },
    /// A history request failed; the UI may ask again.
    HistoryFailed {
        /// The user or group.
        with: ConvKey,
        /// What was asked.
        before: Option<MessageId>,
        /// The server's code.
        code: ErrorCode,
        /// Why, ready to show.
        reason: String,
    },
    /// A page of search matches.
    SearchResults {
        /// What was asked.
        query: SearchQuery,
        /// The matches.
        page: SearchPage,
    },
    /// A search failed (or could not be sent); the text is ready to show.
    SearchFailed {
        /// What was asked.
        query: SearchQuery,
        /// Why.
        reason: String,
    },
    /// A group request was done, with the group as it is now for `Create`, `Members` and
    /// `Info`, or it failed, with why.
    Group {
        /// What was asked.
        command: GroupCommand,
        /// The outcome.
        result: Result<Option<GroupInfo>, String>,
    },
    /// The password was changed (`Ok`) or not, with why.
    PasswordChanged(Result<(), String>),
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

/// The wall-clock time, as the protocol carries it.
pub fn now_millis() -> papo_protocol::UnixMillis {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// A one-line explanation of a connection problem, for the status bar and the command line:
/// a connection that broke reads as what happened, not as the socket's error number.
pub fn describe(error: &ClientError) -> String {
    use std::io::ErrorKind;
    match error {
        ClientError::Connect { addr, source } => format!("cannot reach {addr}: {source}"),
        ClientError::Fatal(e) | ClientError::Rejected(e) => e.message.clone(),
        ClientError::Frame(FrameError::Io(e)) => match e.kind() {
            ErrorKind::BrokenPipe
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::UnexpectedEof
            | ErrorKind::NotConnected => "the connection to the server was lost".to_owned(),
            ErrorKind::TimedOut | ErrorKind::WouldBlock => "the server stopped answering".to_owned(),
            _ => format!("the connection to the server failed: {e}"),
        },
        ClientError::Frame(FrameError::Truncated) | ClientError::Closed => {
            "the server closed the connection".to_owned()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind};

    use super::*;

    #[test]
    fn a_dropped_connection_reads_as_what_happened() {
        for kind in [ErrorKind::BrokenPipe, ErrorKind::ConnectionReset, ErrorKind::UnexpectedEof] {
            let error = ClientError::Frame(FrameError::Io(Error::from(kind)));
            assert_eq!(describe(&error), "the connection to the server was lost");
        }
        let silent = ClientError::Frame(FrameError::Io(Error::from(ErrorKind::TimedOut)));
        assert_eq!(describe(&silent), "the server stopped answering");
        assert_eq!(describe(&ClientError::Frame(FrameError::Truncated)), "the server closed the connection");
        let other = ClientError::Frame(FrameError::Io(Error::other("disk on fire")));
        assert_eq!(describe(&other), "the connection to the server failed: disk on fire");
    }
}
