//! The network thread's state machine: one loop that takes the UI's commands, the reader
//! thread's frames and its own timers, and decides everything about the connection.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use papo_protocol::{
    Client, ClientError, ClientFrame, Contact, ErrorCode, ErrorReply, Event, Fingerprint, FrameReader,
    FrameWriter, GroupMessage, GroupMessageKind, GroupName, MessageId, ReadHalf, ReceiptKind, Reply, Request,
    RequestId, ServerFrame, TrustError, Username, WriteHalf,
};
use tracing::{debug, info, warn};

use super::receipts::{Receipt, Receipts, RECEIPT_INTERVAL};
use super::{
    describe, GroupCommand, Link, NetCommand, NetConfig, NetEvent, Outgoing, SearchQuery, Transport,
    TrustProblem, HISTORY_PAGE, SEARCH_PAGE,
};
use crate::conv_key::ConvKey;
use crate::outbox::Outbox;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long quitting waits for the acknowledgements of messages already sent.
const QUIT_ACK_WAIT: Duration = Duration::from_secs(1);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What the loop waits for.
pub(super) enum Input {
    Command(NetCommand),
    Frame { generation: u64, frame: ServerFrame },
    Closed { generation: u64, reason: String },
}

/// What a request in flight was, so its reply can be routed.
enum Pending {
    Register {
        name: String,
        password: String,
    },
    Login,
    Resume,
    /// A message's client id, and where it was addressed when written: a group renamed
    /// meanwhile was sent under the name it no longer has.
    Send {
        client_msg_id: u64,
        to: ConvKey,
    },
    History {
        with: ConvKey,
        before: Option<MessageId>,
    },
    GroupHoldsLine {
        group: GroupName,
        line: MessageId,
    },
    Contacts(Vec<Contact>),
    Groups,
    Search(SearchQuery),
    ChangePassword,
    Group(GroupCommand),
    /// Sent again after a reconnect if the connection is lost before the answer.
    Receipt(Receipt),
    LogoutEverywhere,
    Quiet,
}

struct Connected {
    writer: FrameWriter<WriteHalf>,
    last_write: Instant,
}

/// The network thread's state.
pub(super) struct Net {
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
    /// The user whose outbox `unacked` is mirrored to.
    outbox_of: Option<Username>,
    /// That user's queue file of this process, when kept on disk.
    outbox: Option<Outbox>,
    /// How many messages `unacked` holds, for [`NetHandle::quit`].
    unsent: Arc<AtomicUsize>,
    /// History requests to send once logged in: asked while offline, or lost with a
    /// connection.
    reissue: Vec<(ConvKey, Option<MessageId>)>,
    /// [`NetCommand::GroupHoldsLine`] questions to ask once logged in, the same way.
    reask_lines: Vec<(GroupName, MessageId)>,
    receipts: Receipts,
    /// The conversation the last `MarkRead` was for: one for another means the user switched.
    reading: Option<ConvKey>,
    backoff: Duration,
    retry_at: Option<Instant>,
}

impl Net {
    pub(super) fn new(
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
            outbox: None,
            unsent,
            reissue: Vec::new(),
            reask_lines: Vec::new(),
            receipts: Receipts::new(RECEIPT_INTERVAL),
            reading: None,
            backoff: Duration::from_millis(500),
            retry_at: Some(Instant::now()),
        }
    }

    pub(super) fn run(mut self, input: &Receiver<Input>) {
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
            Some(link) => {
                let keepalive = link.last_write + self.keepalive;
                let receipts = self.receipts.next_due().filter(|_| self.me.is_some());
                Some(receipts.map_or(keepalive, |due| due.min(keepalive)))
            }
            None => self.retry_at,
        }
    }

    fn timer(&mut self) {
        if self.me.is_some() {
            for receipt in self.receipts.due(Instant::now()) {
                self.send_receipt(receipt);
            }
        }
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
            Err(ClientError::Trust(refusal)) => return self.untrusted(&refusal),
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
    fn untrusted(&mut self, refusal: &TrustError) {
        warn!(%refusal, "server not trusted");
        self.retry_at = None;
        let problem = match *refusal {
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
        // Sends stay in `unacked`, and history requests and receipts are sent again after
        // the reconnect; the contacts are refetched anyway.
        // A search or a password change in flight is not resent: the UI says it failed.
        for (_, pending) in std::mem::take(&mut self.in_flight) {
            match pending {
                Pending::History { with, before } => self.reissue.push((with, before)),
                Pending::GroupHoldsLine { group, line } => self.reask_lines.push((group, line)),
                Pending::Search(query) => {
                    let reason = format!("the connection was lost ({reason})");
                    (self.emit)(NetEvent::SearchFailed { query, reason });
                }
                Pending::Group(command) => {
                    let result = Err(format!("the connection was lost ({reason}); check with /members"));
                    (self.emit)(NetEvent::Group { command, result });
                }
                Pending::ChangePassword => (self.emit)(NetEvent::PasswordChanged(Err(
                    "the connection was lost before the server answered; log in with either password to find out which holds".into(),
                ))),
                Pending::Receipt(Receipt { kind, with, up_to }) => self.receipts.defer(kind, &with, up_to),
                _ => {}
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
            NetCommand::Register { name, password, invite } => {
                if self.require_link() {
                    let pending = Pending::Register { name: name.clone(), password: password.clone() };
                    self.request(Request::Register { name, password, invite }, pending);
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
                if self.reading.as_ref() != Some(&with) {
                    self.flush_receipts();
                    self.reading = Some(with.clone());
                }
                self.receipt(ReceiptKind::Read, &with, up_to);
            }
            NetCommand::Trust(fingerprint) => self.trust(fingerprint),
            NetCommand::Typing { to } => {
                if self.me.is_some() {
                    self.request(Request::Typing { to: to.to_string() }, Pending::Quiet);
                }
            }
            NetCommand::Search(query) => {
                if self.me.is_none() || self.link.is_none() {
                    let reason = "not connected; search again once the server is back".to_owned();
                    return (self.emit)(NetEvent::SearchFailed { query, reason });
                }
                let request = Request::Search {
                    query: query.text.clone(),
                    with: query.with.as_ref().map(ToString::to_string),
                    before: query.before,
                    limit: SEARCH_PAGE,
                };
                self.request(request, Pending::Search(query));
            }
            NetCommand::ChangePassword { old, new } => {
                if self.me.is_none() || self.link.is_none() {
                    let reason = "not connected; try again once the server is back".to_owned();
                    return (self.emit)(NetEvent::PasswordChanged(Err(reason)));
                }
                self.request(Request::ChangePassword { old, new }, Pending::ChangePassword);
            }
            NetCommand::Group(command) => {
                if self.me.is_none() || self.link.is_none() {
                    let result = Err("not connected; try again once the server is back".to_owned());
                    return (self.emit)(NetEvent::Group { command, result });
                }
                self.request(group_request(&command), Pending::Group(command));
            }
            NetCommand::FollowRename { from, to } => self.group_renamed(&from, &to),
            NetCommand::GroupHoldsLine { group, line } => {
                if self.me.is_some() && self.link.is_some() {
                    self.ask_group_holds_line(group, line);
                } else if !self.reask_lines.contains(&(group.clone(), line)) {
                    self.reask_lines.push((group, line));
                }
            }
            NetCommand::LogoutEverywhere => {
                if self.me.is_none() || self.link.is_none() {
                    let notice = "not connected; log out everywhere once the server is back".to_owned();
                    return (self.emit)(NetEvent::Notice(notice));
                }
                self.request(Request::LogoutEverywhere, Pending::LogoutEverywhere);
            }
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

    /// Sends a receipt now or, within its conversation's interval or while offline, later.
    fn receipt(&mut self, kind: ReceiptKind, with: &ConvKey, up_to: MessageId) {
        if self.me.is_none() || self.link.is_none() {
            return self.receipts.defer(kind, with, up_to);
        }
        if let Some(receipt) = self.receipts.offer(kind, with, up_to, Instant::now()) {
            self.send_receipt(receipt);
        }
    }

    /// Sends every waiting receipt (switching conversations, reconnected, quitting).
    fn flush_receipts(&mut self) {
        if self.me.is_some() && self.link.is_some() {
            for receipt in self.receipts.flush(Instant::now()) {
                self.send_receipt(receipt);
            }
        }
    }

    fn send_receipt(&mut self, receipt: Receipt) {
        let with = receipt.with.to_string();
        let request = match receipt.kind {
            ReceiptKind::Delivered => Request::Delivered { from: with, up_to: receipt.up_to },
            ReceiptKind::Read => Request::MarkRead { with, up_to: receipt.up_to },
        };
        self.request(request, Pending::Receipt(receipt));
    }

    fn history(&mut self, with: ConvKey, before: Option<MessageId>) {
        let request = Request::History { with: with.to_string(), before, limit: HISTORY_PAGE };
        self.request(request, Pending::History { with, before });
    }

    fn ask_group_holds_line(&mut self, group: GroupName, line: MessageId) {
        let request = Request::History { with: group.to_string(), before: Some(line + 1), limit: 1 };
        self.request(request, Pending::GroupHoldsLine { group, line });
    }

    fn send_message(&mut self, outgoing: &Outgoing) {
        let request = Request::Send {
            to: outgoing.to.to_string(),
            body: outgoing.body.clone(),
            client_msg_id: outgoing.client_msg_id,
        };
        let pending = Pending::Send { client_msg_id: outgoing.client_msg_id, to: outgoing.to.clone() };
        self.request(request, pending);
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
                    // The other user's receipts are theirs to send.
                    self.receipts = Receipts::new(RECEIPT_INTERVAL);
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
                let why = (e.code != ErrorCode::InvalidToken).then_some(e.message);
                (self.emit)(NetEvent::SessionExpired { why });
            }
            (Pending::Send { client_msg_id, to }, result) => self.send_settled(client_msg_id, &to, result),
            (Pending::History { with: ConvKey::User(with), before }, Ok(Reply::History(page))) => {
                (self.emit)(NetEvent::History { with, before, page });
            }
            (Pending::History { with: ConvKey::Group(_), before }, Ok(Reply::GroupHistory(page))) => {
                (self.emit)(NetEvent::GroupHistory { before, page });
            }
            (Pending::GroupHoldsLine { group, line }, Ok(Reply::GroupHistory(page))) => {
                let held = Ok(page.messages.iter().any(|m| m.id == line));
                (self.emit)(NetEvent::GroupHoldsLine { group, line, held });
            }
            (Pending::GroupHoldsLine { group, line }, Err(e)) => {
                (self.emit)(NetEvent::GroupHoldsLine { group, line, held: Err(e.code) });
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
            (Pending::Groups, Ok(Reply::Groups(groups))) => (self.emit)(NetEvent::Groups(groups)),
            (Pending::Search(query), Ok(Reply::Search(page))) => {
                (self.emit)(NetEvent::SearchResults { query, page });
            }
            (Pending::Search(query), Err(e)) => {
                (self.emit)(NetEvent::SearchFailed { query, reason: e.message });
            }
            (Pending::LogoutEverywhere, Ok(_)) => {
                // The server closes the connection next; nothing is left to resume.
                self.token = None;
                self.me = None;
                let why = Some("you logged out everywhere; log in again".to_owned());
                (self.emit)(NetEvent::SessionExpired { why });
            }
            (Pending::LogoutEverywhere, Err(e)) => {
                (self.emit)(NetEvent::Notice(format!("cannot log out everywhere: {}", e.message)));
            }
            (Pending::ChangePassword, Ok(_)) => (self.emit)(NetEvent::PasswordChanged(Ok(()))),
            (Pending::ChangePassword, Err(e)) => (self.emit)(NetEvent::PasswordChanged(Err(e.message))),
            (Pending::Group(command), result) => {
                // Creating, leaving, renaming, deleting or handing over changes my list of
                // groups: it follows.
                let changes_list = !matches!(
                    command,
                    GroupCommand::Invite { .. }
                        | GroupCommand::Kick { .. }
                        | GroupCommand::Members(_)
                        | GroupCommand::Info(_)
                );
                if result.is_ok() && changes_list {
                    self.request(Request::Groups, Pending::Groups);
                }
                if let (GroupCommand::Rename { group, to }, Ok(_)) = (&command, &result) {
                    self.group_renamed(group, to);
                }
                let result = match result {
                    Ok(Reply::Group(info)) => Ok(Some(info)),
                    Ok(_) => Ok(None),
                    Err(e) => Err(e.message),
                };
                (self.emit)(NetEvent::Group { command, result });
            }
            (_, Err(e)) => (self.emit)(NetEvent::Notice(e.message)),
            (_, Ok(_)) => {}
        }
    }

    fn start_session(&mut self, name: Username, token: String) {
        self.token = Some(token);
        self.restore_outbox(&name);
        self.me = Some(name);
        (self.emit)(NetEvent::Link(Link::Online));
        self.request(Request::Contacts { after: None }, Pending::Contacts(Vec::new()));
        self.request(Request::Groups, Pending::Groups);
        for (with, before) in std::mem::take(&mut self.reissue) {
            self.history(with, before);
        }
        for (group, line) in std::mem::take(&mut self.reask_lines) {
            self.ask_group_holds_line(group, line);
        }
        self.flush_receipts();
        for outgoing in self.unacked.clone() {
            self.send_message(&outgoing);
        }
    }

    /// Opens `user`'s outbox (once per user and run), then takes over what papo processes
    /// of that user that ended left queued: on every login and reconnect, so what another
    /// window left when it quit is sent as soon as the server is back.
    fn restore_outbox(&mut self, user: &Username) {
        if self.outbox_of.as_ref() != Some(user) {
            self.outbox_of = Some(user.clone());
            self.outbox = None;
            if let Some(dir) = &self.outbox_dir {
                match Outbox::open(dir, &self.server, user) {
                    Ok(outbox) => self.outbox = Some(outbox),
                    Err(e) => self.outbox_failed(&e),
                }
            }
        }
        let Some(outbox) = &self.outbox else {
            self.save_outbox();
            return;
        };
        let orphans = match outbox.orphans() {
            Ok(orphans) => orphans,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "cannot look for queues left by earlier runs");
                Vec::new()
            }
        };
        let mut restored: Vec<Outgoing> = Vec::new();
        for outgoing in orphans.iter().flat_map(|orphan| &orphan.queued) {
            let known = |o: &Outgoing| o.client_msg_id == outgoing.client_msg_id;
            if !self.unacked.iter().any(known) && !restored.iter().any(known) {
                restored.push(outgoing.clone());
            }
        }
        self.unacked.splice(0..0, restored.iter().cloned());
        // The taken-over queues go only once what they held is in ours.
        if !self.save_outbox() {
            return;
        }
        for orphan in orphans {
            if let Err(e) = orphan.remove() {
                warn!(error = %format!("{e:#}"), "cannot remove a queue taken over");
            }
        }
        if !restored.is_empty() {
            info!(count = restored.len(), "sending messages queued by an earlier run");
            (self.emit)(NetEvent::Restored(restored));
        }
    }

    /// Mirrors `unacked` to this process's outbox file; false if that failed.
    fn save_outbox(&mut self) -> bool {
        self.unsent.store(self.unacked.len(), Ordering::SeqCst);
        let Some(outbox) = &self.outbox else { return true };
        match outbox.save(&self.unacked) {
            Ok(()) => true,
            Err(e) => {
                self.outbox_failed(&e);
                false
            }
        }
    }

    fn outbox_failed(&self, e: &anyhow::Error) {
        warn!(error = %format!("{e:#}"), "cannot write the outbox");
        (self.emit)(NetEvent::Notice(format!("cannot keep unsent messages on disk: {e:#}")));
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
        // Released, the queue file waits for the next login as that user.
        self.outbox_of = None;
        self.outbox = None;
        self.unsent.store(0, Ordering::SeqCst);
    }

    /// `from` is now called `to`: what is queued for it, or in flight, goes there, with the
    /// same client ids. The server remembers a resend by sender and client id with the
    /// group's id, which a rename keeps, so a message stored under the old name and resent
    /// under the new one is still stored once.
    fn group_renamed(&mut self, from: &GroupName, to: &GroupName) {
        let old = ConvKey::Group(from.clone());
        let mut moved = false;
        for outgoing in self.unacked.iter_mut().filter(|o| o.to == old) {
            outgoing.to = ConvKey::Group(to.clone());
            moved = true;
        }
        if moved {
            info!(%from, %to, "queued messages follow a group's rename");
            self.save_outbox();
        }
    }

    fn send_settled(&mut self, client_msg_id: u64, sent_to: &ConvKey, result: Result<Reply, ErrorReply>) {
        let Some(at) = self.unacked.iter().position(|o| o.client_msg_id == client_msg_id) else {
            return; // A resend of something already settled.
        };
        if result.is_err() && self.unacked[at].to != *sent_to {
            // Refused under a group's old name: the answer under its new one decides.
            let outgoing = self.unacked[at].clone();
            return self.send_message(&outgoing);
        }
        let outgoing = self.unacked.remove(at);
        self.save_outbox();
        match result {
            Ok(Reply::Sent { id, sent_at }) => (self.emit)(NetEvent::Sent { outgoing, id, sent_at }),
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
        // Until confirmed, a message stays pending for this user and comes again at login.
        let delivered = match &event {
            Event::Message(message) if self.me.as_ref() == Some(&message.to) => {
                Some((ConvKey::User(message.from.clone()), message.id))
            }
            Event::GroupMessage(line) if self.me.as_ref() != Some(&line.from) => {
                Some((ConvKey::Group(line.group.clone()), line.id))
            }
            _ => None,
        };
        if let Some((from, up_to)) = delivered {
            self.receipt(ReceiptKind::Delivered, &from, up_to);
        }
        if let Event::GroupMessage(GroupMessage { group, kind: GroupMessageKind::Renamed { from }, .. }) =
            &event
        {
            self.group_renamed(from, group);
        }
        (self.emit)(NetEvent::Server(event));
    }

    /// Gives messages already written a moment to be acknowledged (what is still unsent
    /// stays in the outbox file), then logs out.
    fn quit(&mut self, input: &Receiver<Input>) {
        let deadline = Instant::now() + QUIT_ACK_WAIT;
        while self.me.is_some() && self.in_flight.values().any(|p| matches!(p, Pending::Send { .. })) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            match input.recv_timeout(left) {
                Ok(Input::Frame { generation, frame }) if generation == self.generation => self.frame(frame),
                Ok(Input::Closed { generation, .. }) if generation == self.generation => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if self.me.is_some() {
            self.flush_receipts();
            self.request(Request::Logout, Pending::Quiet);
        }
        if let Some(link) = self.link.take() {
            let _ = link.writer.get_ref().socket().shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The request that does a group command.
fn group_request(command: &GroupCommand) -> Request {
    match command {
        GroupCommand::Create { name, members } => Request::CreateGroup {
            name: name.to_string(),
            members: members.iter().map(ToString::to_string).collect(),
            hide_history: false,
        },
        GroupCommand::Invite { group, user } => {
            Request::AddMembers { group: group.to_string(), members: vec![user.to_string()] }
        }
        GroupCommand::Kick { group, user } => {
            Request::RemoveMember { group: group.to_string(), member: user.to_string() }
        }
        GroupCommand::Leave(group) => Request::LeaveGroup { group: group.to_string() },
        GroupCommand::Members(group) | GroupCommand::Info(group) => {
            Request::GroupInfo { group: group.to_string() }
        }
        GroupCommand::Rename { group, to } => {
            Request::RenameGroup { group: group.to_string(), to: to.to_string() }
        }
        GroupCommand::Delete(group) => Request::DeleteGroup { group: group.to_string() },
        GroupCommand::Handover { group, to } => {
            Request::TransferGroup { group: group.to_string(), to: to.to_string() }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::outbox;

    fn group(name: &str) -> GroupName {
        GroupName::parse(name).unwrap()
    }

    fn outgoing(id: u64, to: &str) -> Outgoing {
        Outgoing { to: ConvKey::parse(to).unwrap(), body: format!("text {id}"), client_msg_id: id }
    }

    /// A network thread's state with no connection, keeping `ana`'s queue under `dir`, and
    /// what it emits.
    fn offline(dir: &std::path::Path) -> (Net, mpsc::Receiver<NetEvent>) {
        let (events_tx, events) = mpsc::channel();
        let (input_tx, _input) = mpsc::channel();
        let mut config = NetConfig::new("127.0.0.1:1", Transport::Plaintext);
        config.outbox_dir = Some(dir.to_owned());
        let emit = Box::new(move |event| {
            let _ = events_tx.send(event);
        });
        let mut net = Net::new(config, emit, input_tx, Arc::new(AtomicUsize::new(0)));
        net.restore_outbox(&Username::parse("ana").unwrap());
        (net, events)
    }

    fn renamed_line(from: &str, to: &str) -> Event {
        Event::GroupMessage(GroupMessage {
            id: 9,
            group: group(to),
            from: Username::parse("owner").unwrap(),
            body: String::new(),
            sent_at: 1,
            kind: GroupMessageKind::Renamed { from: group(from) },
        })
    }

    #[test]
    fn a_rename_moves_queued_messages_with_their_ids_in_memory_and_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (mut net, _events) = offline(dir.path());
        for queued in [outgoing(1, "#lab"), outgoing(2, "bia"), outgoing(3, "#lab"), outgoing(4, "#other")] {
            net.command(NetCommand::Send(queued));
        }
        net.server_event(renamed_line("#lab", "#redes"));
        let expected =
            [outgoing(1, "#redes"), outgoing(2, "bia"), outgoing(3, "#redes"), outgoing(4, "#other")];
        assert_eq!(net.unacked, expected);
        let file = net.outbox.as_ref().unwrap().path().to_owned();
        assert_eq!(outbox::parse(&fs_text(&file)).unwrap(), expected);

        // Our own rename, answered, does the same.
        let rename = GroupCommand::Rename { group: group("#other"), to: group("#lab") };
        net.reply(Pending::Group(rename), Ok(Reply::Done));
        assert_eq!(net.unacked[3], outgoing(4, "#lab"));
        assert_eq!(outbox::parse(&fs_text(&file)).unwrap()[3], outgoing(4, "#lab"));
    }

    #[test]
    fn a_rename_the_ui_found_out_about_moves_queued_messages_in_memory_and_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (mut net, _events) = offline(dir.path());
        for queued in [outgoing(1, "#lab"), outgoing(2, "#other")] {
            net.command(NetCommand::Send(queued));
        }
        net.command(NetCommand::FollowRename { from: group("#lab"), to: group("#redes") });
        let expected = [outgoing(1, "#redes"), outgoing(2, "#other")];
        assert_eq!(net.unacked, expected);
        let file = net.outbox.as_ref().unwrap().path().to_owned();
        assert_eq!(outbox::parse(&fs_text(&file)).unwrap(), expected);
    }

    #[test]
    fn a_refused_rename_moves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut net, _events) = offline(dir.path());
        net.command(NetCommand::Send(outgoing(1, "#lab")));
        let rename = GroupCommand::Rename { group: group("#lab"), to: group("#redes") };
        let refused = ErrorReply::new(ErrorCode::NotGroupOwner, "only the group's owner can do that");
        net.reply(Pending::Group(rename), Err(refused));
        assert_eq!(net.unacked, [outgoing(1, "#lab")]);
    }

    #[test]
    fn a_send_refused_under_the_old_name_is_sent_again_and_one_under_the_current_name_fails() {
        let dir = tempfile::tempdir().unwrap();
        let (mut net, events) = offline(dir.path());
        net.command(NetCommand::Send(outgoing(1, "#lab")));
        net.command(NetCommand::Send(outgoing(2, "#lab")));
        net.server_event(renamed_line("#lab", "#redes"));
        let no_such_group =
            || Err(ErrorReply::new(ErrorCode::NoSuchGroup, "there is no such group, or you are not in it"));
        net.reply(Pending::Send { client_msg_id: 1, to: ConvKey::parse("#lab").unwrap() }, no_such_group());
        assert_eq!(net.unacked[0], outgoing(1, "#redes"), "kept, to be sent under the new name");
        net.reply(Pending::Send { client_msg_id: 2, to: ConvKey::parse("#redes").unwrap() }, no_such_group());
        assert_eq!(net.unacked, [outgoing(1, "#redes")]);
        let failed: Vec<u64> = events
            .try_iter()
            .filter_map(|e| match e {
                NetEvent::SendFailed { client_msg_id, .. } => Some(client_msg_id),
                _ => None,
            })
            .collect();
        assert_eq!(failed, [2]);
    }

    #[test]
    fn a_line_check_asked_offline_or_lost_with_the_connection_is_asked_after_the_next_login() {
        let dir = tempfile::tempdir().unwrap();
        let (mut net, _events) = offline(dir.path());
        net.command(NetCommand::GroupHoldsLine { group: group("#redes"), line: 3 });
        net.command(NetCommand::GroupHoldsLine { group: group("#redes"), line: 3 });
        assert_eq!(net.reask_lines, [(group("#redes"), 3)], "asked once");
        net.in_flight.insert(1, Pending::GroupHoldsLine { group: group("#other"), line: 5 });
        net.lost("the server went away".into());
        assert_eq!(net.reask_lines, [(group("#redes"), 3), (group("#other"), 5)]);
    }

    fn fs_text(path: &std::path::Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }
}
