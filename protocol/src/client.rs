//! A blocking request/reply client, for the command line, tests and the load generator.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::tls::HandshakeError;
use crate::{
    frame, ClientFrame, Connection, Contact, ErrorCode, ErrorReply, Event, FrameError, GroupHistoryPage,
    GroupInfo, GroupSummary, Hello, HistoryPage, LoggedIn, MessageId, Reply, Request, RequestId, SearchPage,
    Security, ServerFrame, TrustError, UnixMillis, MAX_FRAME_LEN, PROTOCOL_VERSION,
};

/// Why a [`Client`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No address of the server accepted a connection.
    #[error("cannot reach the server at {addr}: {source}")]
    Connect {
        /// The address as given.
        addr: String,
        /// The last connection error.
        source: io::Error,
    },
    /// Reading or writing a frame failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// The server's certificate is not trusted (yet), or it changed.
    #[error(transparent)]
    Trust(TrustError),
    /// The TLS handshake failed.
    #[error("TLS failed: {0}")]
    Tls(rustls::Error),
    /// The server answered a TLS hello with something that is neither TLS nor a Papo frame.
    #[error("the server does not speak TLS; if it runs with --plaintext, connect with --plaintext too")]
    NotTls,
    /// The server answered the request with an error.
    #[error("{0}")]
    Rejected(ErrorReply),
    /// The server closed the connection because of this error.
    #[error("the server closed the connection: {0}")]
    Fatal(ErrorReply),
    /// The server answered with something that does not fit the request.
    #[error("unexpected answer from the server: {0}")]
    Unexpected(String),
}

impl ClientError {
    /// The server's error code, when the server gave one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Rejected(e) | Self::Fatal(e) => Some(e.code),
            _ => None,
        }
    }
}

/// A handshaken connection that waits for one reply at a time and keeps events that arrive
/// meanwhile for [`Client::next_event`].
#[derive(Debug)]
pub struct Client {
    conn: Connection,
    next_id: RequestId,
    events: VecDeque<Event>,
    /// Replies that overtook the one waited for (a refusal overtakes earlier sends that are
    /// still being made durable), until they are waited for.
    early: HashMap<RequestId, Result<Reply, ErrorReply>>,
}

impl Client {
    /// Connects to `addr` (trying each resolved address for at most `timeout`), secures the
    /// connection as `security` says and shakes hands.
    ///
    /// Nothing but the TLS handshake and `Hello` crosses the wire before the server's
    /// certificate is accepted, so no password reaches an untrusted server.
    pub fn connect(
        addr: &str,
        security: &Security,
        client_name: &str,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let connect_err = |source| ClientError::Connect { addr: addr.to_owned(), source };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address");
        for resolved in addr.to_socket_addrs().map_err(connect_err)? {
            match TcpStream::connect_timeout(&resolved, timeout) {
                Ok(socket) => return Self::handshake(socket, addr, security, client_name, timeout),
                Err(e) => last = e,
            }
        }
        Err(connect_err(last))
    }

    /// Like [`Client::connect`], over a socket the caller connected (from a chosen local
    /// address, say); `addr` is the name the server's certificate must carry.
    pub fn handshake(
        socket: TcpStream,
        addr: &str,
        security: &Security,
        client_name: &str,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        socket.set_nodelay(true).map_err(FrameError::Io)?;
        // A server that accepts but never answers must not hang the caller.
        socket.set_read_timeout(Some(timeout)).map_err(FrameError::Io)?;
        let mut conn = match security {
            Security::Plaintext => Connection::plain(socket),
            Security::Tls(tls) => Connection::tls(tls.handshake(socket, addr).map_err(handshake_failed)?),
        };
        conn.write_message(&ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            client_name: client_name.to_owned(),
        }))?;
        match conn.read_message::<ServerFrame>()? {
            Some(ServerFrame::Welcome(_)) => {
                conn.stream().set_read_timeout(None).map_err(FrameError::Io)?;
                Ok(Self { conn, next_id: 1, events: VecDeque::new(), early: HashMap::new() })
            }
            Some(ServerFrame::Fatal(e)) => Err(ClientError::Fatal(e)),
            Some(other) => Err(ClientError::Unexpected(format!("{other:?} instead of a welcome"))),
            None => Err(ClientError::Closed),
        }
    }

    /// Sends a request without waiting, for pipelining; pair it with [`Client::wait_reply`].
    pub fn send_request(&mut self, request: Request) -> Result<RequestId, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.conn.write_message(&ClientFrame::Request { id, request })?;
        Ok(id)
    }

    /// Waits for the reply to request `id`, keeping events and other replies that arrive
    /// first (replies come in any order: match them by id).
    pub fn wait_reply(&mut self, id: RequestId) -> Result<Reply, ClientError> {
        if let Some(result) = self.early.remove(&id) {
            return result.map_err(ClientError::Rejected);
        }
        loop {
            match self.read_frame()? {
                ServerFrame::Reply { id: got, result } if got == id => {
                    return result.map_err(ClientError::Rejected);
                }
                ServerFrame::Reply { id: got, result } => {
                    if got >= self.next_id || self.early.insert(got, result).is_some() {
                        return Err(ClientError::Unexpected(format!(
                            "a reply to request {got}, which was not sent or was answered already"
                        )));
                    }
                }
                ServerFrame::Event(event) => self.events.push_back(event),
                ServerFrame::Welcome(_) => return Err(ClientError::Unexpected("a second welcome".into())),
                ServerFrame::Fatal(e) => return Err(ClientError::Fatal(e)),
            }
        }
    }

    /// Sends a request and waits for its reply.
    pub fn request(&mut self, request: Request) -> Result<Reply, ClientError> {
        let id = self.send_request(request)?;
        self.wait_reply(id)
    }

    /// The next event, from those kept while waiting for replies or else from the socket.
    pub fn next_event(&mut self) -> Result<Event, ClientError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(event);
        }
        match self.read_frame()? {
            ServerFrame::Event(event) => Ok(event),
            ServerFrame::Fatal(e) => Err(ClientError::Fatal(e)),
            other => Err(ClientError::Unexpected(format!("{other:?} while waiting for an event"))),
        }
    }

    /// Creates an account on a server that registers anyone.
    pub fn register(&mut self, name: &str, password: &str) -> Result<(), ClientError> {
        self.register_with_invite(name, password, None)
    }

    /// Creates an account, with an invite code for a server that registers only with one.
    pub fn register_with_invite(
        &mut self,
        name: &str,
        password: &str,
        invite: Option<&str>,
    ) -> Result<(), ClientError> {
        let request = Request::Register {
            name: name.into(),
            password: password.into(),
            invite: invite.map(Into::into),
        };
        expect(self.request(request)?, |r| matches!(r, Reply::Registered).then_some(()))
    }

    /// Logs in with a password.
    pub fn login(&mut self, name: &str, password: &str) -> Result<LoggedIn, ClientError> {
        let reply = self.request(Request::Login { name: name.into(), password: password.into() })?;
        expect(reply, logged_in)
    }

    /// Logs in with a resume token.
    pub fn resume(&mut self, token: &str) -> Result<LoggedIn, ClientError> {
        let reply = self.request(Request::Resume { token: token.into() })?;
        expect(reply, logged_in)
    }

    /// Sends a message and waits until it is durable; returns its id and time.
    pub fn send(
        &mut self,
        to: &str,
        body: &str,
        client_msg_id: u64,
    ) -> Result<(MessageId, UnixMillis), ClientError> {
        let reply = self.request(Request::Send { to: to.into(), body: body.into(), client_msg_id })?;
        expect(reply, |r| match r {
            Reply::Sent { id, sent_at } => Some((id, sent_at)),
            _ => None,
        })
    }

    /// One page of the conversation with `with`, newest first.
    pub fn history(
        &mut self,
        with: &str,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<HistoryPage, ClientError> {
        let reply = self.request(Request::History { with: with.into(), before, limit })?;
        expect(reply, |r| match r {
            Reply::History(page) => Some(page),
            _ => None,
        })
    }

    /// One page of matches for `query` in this user's conversations (or only the one with
    /// `with`), newest first.
    pub fn search(
        &mut self,
        query: &str,
        with: Option<&str>,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<SearchPage, ClientError> {
        let request = Request::Search { query: query.into(), with: with.map(Into::into), before, limit };
        expect(self.request(request)?, |r| match r {
            Reply::Search(page) => Some(page),
            _ => None,
        })
    }

    /// Every other user, following the pages.
    pub fn contacts(&mut self) -> Result<Vec<Contact>, ClientError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let reply = self.request(Request::Contacts { after: after.take() })?;
            let page = expect(reply, |r| match r {
                Reply::Contacts(page) => Some(page),
                _ => None,
            })?;
            all.extend(page.contacts);
            match page.next_after {
                Some(next) => after = Some(next.to_string()),
                None => return Ok(all),
            }
        }
    }

    /// One page of the history of `group` (a `#name`), newest first.
    pub fn group_history(
        &mut self,
        group: &str,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<GroupHistoryPage, ClientError> {
        let reply = self.request(Request::History { with: group.into(), before, limit })?;
        expect(reply, |r| match r {
            Reply::GroupHistory(page) => Some(page),
            _ => None,
        })
    }

    /// Creates a group with the caller as its owner and `members` in it.
    pub fn create_group(
        &mut self,
        name: &str,
        members: &[&str],
        hide_history: bool,
    ) -> Result<GroupInfo, ClientError> {
        let members = members.iter().map(|&m| m.to_owned()).collect();
        let reply = self.request(Request::CreateGroup { name: name.into(), members, hide_history })?;
        expect(reply, group_info)
    }

    /// A group's owner, settings and members.
    pub fn group_info(&mut self, group: &str) -> Result<GroupInfo, ClientError> {
        let reply = self.request(Request::GroupInfo { group: group.into() })?;
        expect(reply, group_info)
    }

    /// Every group of the caller.
    pub fn groups(&mut self) -> Result<Vec<GroupSummary>, ClientError> {
        let reply = self.request(Request::Groups)?;
        expect(reply, |r| match r {
            Reply::Groups(groups) => Some(groups),
            _ => None,
        })
    }

    /// Sends a request answered by [`Reply::Done`], such as the group changes.
    pub fn request_done(&mut self, request: Request) -> Result<(), ClientError> {
        let reply = self.request(request)?;
        expect(reply, |r| matches!(r, Reply::Done).then_some(()))
    }

    /// The socket, for timeouts and shutdown.
    pub fn stream(&self) -> &TcpStream {
        self.conn.stream()
    }

    /// Gives up the request/reply discipline: the connection plus the events kept so far.
    pub fn into_parts(self) -> (Connection, VecDeque<Event>) {
        (self.conn, self.events)
    }

    fn read_frame(&mut self) -> Result<ServerFrame, ClientError> {
        self.conn.read_message()?.ok_or(ClientError::Closed)
    }
}

/// A failed TLS handshake as the caller needs it: a plaintext server's own refusal is shown
/// as the server wrote it.
fn handshake_failed(error: HandshakeError) -> ClientError {
    match error {
        HandshakeError::Trust(e) => ClientError::Trust(e),
        HandshakeError::Tls(e) => ClientError::Tls(e),
        HandshakeError::Closed => ClientError::Closed,
        HandshakeError::Io(e) => ClientError::Frame(FrameError::Io(e)),
        HandshakeError::Plaintext(bytes) => match frame::decode::<ServerFrame>(&bytes, MAX_FRAME_LEN) {
            Ok(Some((ServerFrame::Fatal(e), _))) => ClientError::Fatal(e),
            _ => ClientError::NotTls,
        },
    }
}

fn logged_in(reply: Reply) -> Option<LoggedIn> {
    match reply {
        Reply::LoggedIn(session) => Some(session),
        _ => None,
    }
}

fn group_info(reply: Reply) -> Option<GroupInfo> {
    match reply {
        Reply::Group(info) => Some(info),
        _ => None,
    }
}

/// Extracts the expected reply variant, or explains what came instead.
fn expect<T>(reply: Reply, pick: impl FnOnce(Reply) -> Option<T>) -> Result<T, ClientError> {
    let shown = format!("{reply:?}");
    pick(reply).ok_or(ClientError::Unexpected(shown))
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;
    use crate::Welcome;

    /// A server on loopback that welcomes one client, reads `requests` requests and answers
    /// them in reverse order, then once more for a request never sent.
    fn answering_in_reverse(requests: usize) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut conn = Connection::plain(listener.accept().unwrap().0);
            let _hello = conn.read_message::<ClientFrame>().unwrap();
            let welcome = Welcome { protocol_version: PROTOCOL_VERSION, server_version: "test".into() };
            conn.write_message(&ServerFrame::Welcome(welcome)).unwrap();
            let mut ids = Vec::new();
            for _ in 0..requests {
                if let Some(ClientFrame::Request { id, .. }) = conn.read_message().unwrap() {
                    ids.push(id);
                }
            }
            for id in ids.iter().rev().copied().chain([999]) {
                conn.write_message(&ServerFrame::Reply { id, result: Ok(Reply::Pong) }).unwrap();
            }
        });
        addr
    }

    #[test]
    fn replies_that_overtake_the_one_waited_for_are_kept_for_their_turn() {
        let addr = answering_in_reverse(3);
        let mut client =
            Client::connect(&addr.to_string(), &Security::Plaintext, "test", Duration::from_secs(10))
                .unwrap();
        let ids: Vec<_> = (0..3).map(|_| client.send_request(Request::Ping).unwrap()).collect();
        for id in ids {
            assert_eq!(client.wait_reply(id).unwrap(), Reply::Pong);
        }
        let stray = client.wait_reply(client.next_id).unwrap_err();
        assert!(stray.to_string().contains("request 999, which was not sent"), "{stray}");
    }
}
