//! What each request does, apart from any connection.
//!
//! A handler gets a [`Context`] (the store, the hub, the limits and the password pool, the settings, the
//! clock, who is asking) and, for the requests that need a login, the session's
//! [`Identity`] as a value rather than an `Option` to check. It returns a [`Handled`]: the
//! reply, the events to deliver to other sessions, and what becomes of the session. It
//! never touches a socket: the session (`session.rs`) reads the request, calls [`handle`]
//! and carries out what comes back, so every request kind is tested, and fuzzed, without
//! TCP.

mod auth;
mod chat;
mod groups;
mod presence;
mod search;

use std::net::SocketAddr;

use papo_protocol::{ErrorCode, ErrorReply, Event, Reply, Request, Username};

use crate::clock::Clock;
use crate::hub::Hub;
use crate::limits::{Limits, PasswordPool};
use crate::store::{AppendAnswers, Store};
use crate::Config;

pub(crate) use auth::dummy_hash;
pub(crate) use chat::{deliveries, settle};
pub(crate) use presence::{last_session_left, TypingGate};

/// What a request is answered with.
pub(crate) type Outcome = Result<Reply, ErrorReply>;

/// Everything a handler may use, for one session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub store: &'a Store,
    pub hub: &'a Hub,
    pub limits: &'a Limits,
    pub passwords: &'a PasswordPool,
    pub config: &'a Config,
    pub clock: &'a dyn Clock,
    /// Verified against when a login names an unknown user, so it costs the same.
    pub dummy_hash: &'a str,
    /// Which typing events are relayed.
    pub typing: &'a TypingGate,
    /// The asking session, as the hub knows it.
    pub session: u64,
    /// The asking client's address, for the logs and the limits kept by address.
    pub peer: SocketAddr,
}

/// Who a session is logged in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub name: Username,
    /// Hash of the resume token this session holds, revoked by `Logout`.
    pub token_hash: Vec<u8>,
}

/// Whose sessions an event goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Audience {
    /// Every session of this user.
    User(Username),
    /// Every session of each of these users: a group's members.
    Users(Vec<Username>),
    /// Every session of the asking user but the asking one, which has its reply.
    OwnOtherSessions,
    /// Every session that listed its contacts, and so follows presence and new accounts.
    Subscribers,
}

/// Events for other sessions, sent before the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub to: Audience,
    pub events: Vec<Event>,
}

/// What becomes of the session after a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Then {
    Continue,
    /// It is logged in from now on: it joins the hub and receives what waited for it.
    LoggedIn(Identity),
    /// The connection ends once the reply is out.
    Close,
}

/// The result of one request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Handled {
    /// `None` for a `Send` queued with the store: it is answered once durable.
    pub reply: Option<Outcome>,
    pub deliveries: Vec<Delivery>,
    pub then: Then,
}

impl Handled {
    /// Just a successful reply.
    fn reply(reply: Reply) -> Self {
        Self { reply: Some(Ok(reply)), deliveries: Vec::new(), then: Then::Continue }
    }

    /// Just a refusal.
    fn refused(error: ErrorReply) -> Self {
        Self { reply: Some(Err(error)), deliveries: Vec::new(), then: Then::Continue }
    }

    /// No reply yet.
    fn queued() -> Self {
        Self { reply: None, deliveries: Vec::new(), then: Then::Continue }
    }

    fn delivering(self, deliveries: Vec<Delivery>) -> Self {
        Self { deliveries, ..self }
    }
}

/// Runs one request for a session that is logged in as `identity` (or not, if `None`);
/// `appends` is the session's pipeline of sends.
pub(crate) fn handle(
    ctx: &Context<'_>,
    identity: Option<&Identity>,
    appends: &dyn AppendAnswers,
    request: Request,
) -> Handled {
    let handled = match identity {
        None => handle_anonymous(ctx, request),
        Some(me) => handle_logged_in(ctx, me, appends, request),
    };
    handled.unwrap_or_else(Handled::refused)
}

fn handle_anonymous(ctx: &Context<'_>, request: Request) -> Result<Handled, ErrorReply> {
    match request {
        Request::Register { name, password, invite } => {
            auth::register(ctx, &name, &password, invite.as_deref())
        }
        Request::Login { name, password } => auth::login(ctx, &name, &password),
        Request::Resume { token } => auth::resume(ctx, &token),
        Request::Ping => Ok(Handled::reply(Reply::Pong)),
        Request::Logout
        | Request::LogoutEverywhere
        | Request::Send { .. }
        | Request::History { .. }
        | Request::Contacts { .. }
        | Request::MarkRead { .. }
        | Request::Delivered { .. }
        | Request::Search { .. }
        | Request::Typing { .. }
        | Request::ChangePassword { .. }
        | Request::CreateGroup { .. }
        | Request::AddMembers { .. }
        | Request::RemoveMember { .. }
        | Request::LeaveGroup { .. }
        | Request::RenameGroup { .. }
        | Request::DeleteGroup { .. }
        | Request::TransferGroup { .. }
        | Request::Groups
        | Request::GroupInfo { .. } => Err(ErrorReply::new(ErrorCode::NotLoggedIn, "log in first")),
    }
}

fn handle_logged_in(
    ctx: &Context<'_>,
    me: &Identity,
    appends: &dyn AppendAnswers,
    request: Request,
) -> Result<Handled, ErrorReply> {
    match request {
        Request::Register { name, password, invite } => {
            auth::register(ctx, &name, &password, invite.as_deref())
        }
        Request::Login { .. } | Request::Resume { .. } => {
            Err(ErrorReply::new(ErrorCode::AlreadyLoggedIn, "this connection is already logged in"))
        }
        Request::Logout => Ok(auth::logout(ctx, me)),
        Request::LogoutEverywhere => Ok(auth::logout_everywhere(ctx, me)),
        Request::Send { to, body, client_msg_id } => chat::send(ctx, me, &to, &body, client_msg_id, appends),
        Request::History { with, before, limit } => chat::history(ctx, me, &with, before, limit),
        Request::Contacts { after } => chat::contacts(ctx, me, after.as_deref()),
        Request::MarkRead { with, up_to } => chat::mark_read(ctx, me, &with, up_to),
        Request::Delivered { from, up_to } => chat::delivered(ctx, me, &from, up_to),
        Request::Ping => Ok(Handled::reply(Reply::Pong)),
        Request::Search { query, with, before, limit } => {
            search::search(ctx, me, &query, with.as_deref(), before, limit)
        }
        Request::Typing { to } => presence::typing(ctx, me, &to),
        Request::ChangePassword { old, new } => auth::change_password(ctx, me, &old, &new),
        Request::CreateGroup { name, members, hide_history } => {
            groups::create(ctx, me, &name, &members, hide_history)
        }
        Request::AddMembers { group, members } => groups::add(ctx, me, &group, &members),
        Request::RemoveMember { group, member } => groups::remove(ctx, me, &group, &member),
        Request::LeaveGroup { group } => groups::leave(ctx, me, &group),
        Request::RenameGroup { group, to } => groups::rename(ctx, me, &group, &to),
        Request::DeleteGroup { group } => groups::delete(ctx, me, &group),
        Request::TransferGroup { group, to } => groups::transfer(ctx, me, &group, &to),
        Request::Groups => groups::list(ctx, me),
        Request::GroupInfo { group } => groups::info(ctx, me, &group),
    }
}
