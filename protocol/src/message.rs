//! Every message that crosses the wire.
//!
//! Enums are only ever extended together with [`crate::PROTOCOL_VERSION`]: bincode encodes
//! variants by index, so the handshake is what keeps both sides agreeing on their meaning.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{GroupName, Username};

/// Client-chosen tag that the server copies into the matching [`ServerFrame::Reply`].
pub type RequestId = u64;

/// Server-assigned message id, increasing over the server's whole lifetime.
pub type MessageId = u64;

/// Milliseconds since the Unix epoch, UTC.
pub type UnixMillis = i64;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// First frame of every connection.
    Hello(Hello),
    /// Any later frame.
    Request {
        /// Tag echoed in the reply, so requests can be pipelined.
        id: RequestId,
        /// What is asked.
        request: Request,
    },
}

/// Opens the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must equal the server's [`crate::PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// Free-form client description for the server's logs, e.g. `papo 0.1.0`.
    pub client_name: String,
}

/// What a client can ask of the server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Creates an account; does not log in.
    Register {
        /// Wanted name, validated and folded to lower case by the server.
        name: String,
        /// Plain password (8–128 bytes); only its bcrypt hash is stored.
        password: String,
        /// An invite code from the administrator (protocol 3): needed when the server's
        /// registration is `invite`, ignored when it is `open`.
        invite: Option<String>,
    },
    /// Logs in with a password; answered by [`Reply::LoggedIn`].
    Login {
        /// Account name, any case.
        name: String,
        /// Plain password.
        password: String,
    },
    /// Logs in again with the token of an earlier [`Reply::LoggedIn`], without the password.
    Resume {
        /// The resume token.
        token: String,
    },
    /// Sends a direct message; acknowledged once it is durable on the server.
    Send {
        /// Recipient's name.
        to: String,
        /// Message text, 1–4096 bytes of UTF-8.
        body: String,
        /// Client-chosen id; resending the same id never stores the message twice.
        client_msg_id: u64,
    },
    /// One page of a conversation, newest first.
    History {
        /// The other side of the conversation.
        with: String,
        /// Only messages older than this id; `None` for the newest page.
        before: Option<MessageId>,
        /// Page size, at most [`crate::MAX_HISTORY_PAGE`].
        limit: u32,
    },
    /// A page of registered users, in name order, with presence, unread count and last
    /// message.
    ///
    /// Also subscribes this session to [`Event::Presence`].
    Contacts {
        /// Only users whose name sorts after this one; `None` for the first page.
        after: Option<String>,
    },
    /// Marks a conversation read up to a message; the other side gets a read receipt.
    MarkRead {
        /// The other side of the conversation.
        with: String,
        /// Newest message id that was read.
        up_to: MessageId,
    },
    /// Confirms that this client has every message from `from` up to `up_to`; the sender
    /// gets a delivered receipt, and those messages are no longer pending for this user.
    Delivered {
        /// The sender.
        from: String,
        /// Newest message from them that arrived.
        up_to: MessageId,
    },
    /// Keeps an idle connection alive.
    Ping,
    /// Revokes this session's resume token and ends the session.
    Logout,
    /// Searches the caller's own conversations for a text, newest first; answered by
    /// [`Reply::Search`] (protocol 2).
    Search {
        /// What to look for, 1–[`crate::MAX_SEARCH_QUERY`] bytes; case is ignored.
        query: String,
        /// Only the conversation with this user; `None` for every conversation.
        with: Option<String>,
        /// Only messages older than this id (a previous page's `next_before`); `None` for
        /// the newest.
        before: Option<MessageId>,
        /// Matches per page, at most [`crate::MAX_SEARCH_PAGE`].
        limit: u32,
    },
    /// Tells `to` that the caller is typing to them (protocol 2); never stored, no reply
    /// beyond [`Reply::Done`]. Clients send it at most every 3 s while keys are pressed.
    Typing {
        /// The other side of the conversation.
        to: String,
    },
    /// Changes the caller's password (protocol 2); answered by [`Reply::Done`].
    ChangePassword {
        /// The current password.
        old: String,
        /// The new password (8–128 bytes).
        new: String,
    },
    /// Creates a group owned by the caller, with the caller and `members` in it; answered
    /// by [`Reply::Group`].
    CreateGroup {
        /// Its name, with the `#`.
        name: String,
        /// Who else is in it from the start (at most [`crate::MAX_GROUP_MEMBERS`] with the
        /// caller).
        members: Vec<String>,
        /// Whether members added later see only what was said from then on (otherwise they
        /// read the whole history).
        hide_history: bool,
    },
    /// Adds members to a group (its owner only); those already in it are skipped.
    AddMembers {
        /// The group.
        group: String,
        /// Who to add.
        members: Vec<String>,
    },
    /// Removes a member from a group (its owner only).
    RemoveMember {
        /// The group.
        group: String,
        /// Who to remove.
        member: String,
    },
    /// Leaves a group (any member but its owner, who hands it over or deletes it).
    LeaveGroup {
        /// The group.
        group: String,
    },
    /// Renames a group (its owner only).
    RenameGroup {
        /// The group.
        group: String,
        /// Its new name, with the `#`.
        to: String,
    },
    /// Deletes a group and its history (its owner only).
    DeleteGroup {
        /// The group.
        group: String,
    },
    /// Hands a group over to another member (its owner only).
    TransferGroup {
        /// The group.
        group: String,
        /// The new owner, a member.
        to: String,
    },
    /// The caller's groups, with member and unread counts; answered by [`Reply::Groups`].
    Groups,
    /// A group's owner, settings and members with presence and watermarks; answered by
    /// [`Reply::Group`].
    GroupInfo {
        /// The group.
        group: String,
    },
    /// Revokes every resume token of the caller's account, closes its other sessions and
    /// ends this one, like [`Request::Logout`] (protocol 3); answered by [`Reply::Done`].
    LogoutEverywhere,
}

// Passwords and tokens must never reach a log through `{:?}`.
impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Register { name, .. } => write!(f, "Register {{ name: {name:?} }}"),
            Self::Login { name, .. } => write!(f, "Login {{ name: {name:?} }}"),
            Self::Resume { .. } => f.write_str("Resume"),
            Self::Send { to, body, client_msg_id } => {
                write!(f, "Send {{ to: {to:?}, body: {} bytes, client_msg_id: {client_msg_id} }}", body.len())
            }
            Self::History { with, before, limit } => {
                write!(f, "History {{ with: {with:?}, before: {before:?}, limit: {limit} }}")
            }
            Self::Contacts { after } => write!(f, "Contacts {{ after: {after:?} }}"),
            Self::MarkRead { with, up_to } => write!(f, "MarkRead {{ with: {with:?}, up_to: {up_to} }}"),
            Self::Delivered { from, up_to } => write!(f, "Delivered {{ from: {from:?}, up_to: {up_to} }}"),
            Self::Ping => f.write_str("Ping"),
            Self::Logout => f.write_str("Logout"),
            Self::Search { query, with, before, limit } => write!(
                f,
                "Search {{ query: {} bytes, with: {with:?}, before: {before:?}, limit: {limit} }}",
                query.len()
            ),
            Self::Typing { to } => write!(f, "Typing {{ to: {to:?} }}"),
            Self::ChangePassword { .. } => f.write_str("ChangePassword"),
            Self::CreateGroup { name, members, hide_history } => {
                write!(
                    f,
                    "CreateGroup {{ name: {name:?}, members: {members:?}, hide_history: {hide_history} }}"
                )
            }
            Self::AddMembers { group, members } => {
                write!(f, "AddMembers {{ group: {group:?}, members: {members:?} }}")
            }
            Self::RemoveMember { group, member } => {
                write!(f, "RemoveMember {{ group: {group:?}, member: {member:?} }}")
            }
            Self::LeaveGroup { group } => write!(f, "LeaveGroup {{ group: {group:?} }}"),
            Self::RenameGroup { group, to } => write!(f, "RenameGroup {{ group: {group:?}, to: {to:?} }}"),
            Self::DeleteGroup { group } => write!(f, "DeleteGroup {{ group: {group:?} }}"),
            Self::TransferGroup { group, to } => {
                write!(f, "TransferGroup {{ group: {group:?}, to: {to:?} }}")
            }
            Self::Groups => f.write_str("Groups"),
            Self::GroupInfo { group } => write!(f, "GroupInfo {{ group: {group:?} }}"),
            Self::LogoutEverywhere => f.write_str("LogoutEverywhere"),
        }
    }
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// Accepts the handshake.
    Welcome(Welcome),
    /// Answers the request with the same id.
    Reply {
        /// The request's id.
        id: RequestId,
        /// The outcome.
        result: Result<Reply, ErrorReply>,
    },
    /// Something happened that the client did not ask about.
    Event(Event),
    /// The connection is being closed because of this error (bad handshake, bad frame,
    /// server full); nothing follows.
    Fatal(ErrorReply),
}

/// Accepts the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The server's [`crate::PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The server's release, e.g. `0.1.0`.
    pub server_version: String,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The account exists now.
    Registered,
    /// The session is logged in.
    LoggedIn(LoggedIn),
    /// The message is durable.
    Sent {
        /// Its server id.
        id: MessageId,
        /// When the server stored it.
        sent_at: UnixMillis,
    },
    /// A page of history.
    History(HistoryPage),
    /// A page of registered users.
    Contacts(ContactPage),
    /// The request took effect and has nothing to return.
    Done,
    /// Answer to [`Request::Ping`].
    Pong,
    /// A page of search matches (protocol 2).
    Search(SearchPage),
    /// A group: to [`Request::CreateGroup`] and [`Request::GroupInfo`].
    Group(GroupInfo),
    /// Every group of the caller, in name order.
    Groups(Vec<GroupSummary>),
    /// A page of a group's history: to [`Request::History`] with a `#group`.
    GroupHistory(GroupHistoryPage),
}

/// A logged-in session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedIn {
    /// The canonical account name.
    pub name: Username,
    /// Secret for [`Request::Resume`]; valid for 30 days or until [`Request::Logout`].
    pub token: String,
    /// How many messages arrived while no session of this user was there; they follow as
    /// [`Event::Message`]s.
    pub pending: u64,
}

impl fmt::Debug for LoggedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LoggedIn {{ name: {}, pending: {} }}", self.name, self.pending)
    }
}

/// One stored direct message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Server id.
    pub id: MessageId,
    /// Sender.
    pub from: Username,
    /// Recipient.
    pub to: Username,
    /// Text.
    pub body: String,
    /// When the server stored it.
    pub sent_at: UnixMillis,
}

/// A page of one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// Messages, newest first.
    pub messages: Vec<ChatMessage>,
    /// Whether older messages exist beyond this page.
    pub more: bool,
    /// Newest of the caller's messages the peer's client has received.
    pub peer_delivered_up_to: MessageId,
    /// Newest of the caller's messages the peer has read.
    pub peer_read_up_to: MessageId,
}

/// A page of registered users other than the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPage {
    /// Users in name order.
    pub contacts: Vec<Contact>,
    /// Pass this as `after` for the next page; `None` on the last page.
    pub next_after: Option<Username>,
}

/// One registered user as seen by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The user.
    pub name: Username,
    /// Whether any session of theirs is connected.
    pub online: bool,
    /// Messages from them the caller has not read.
    pub unread: u64,
    /// The newest message of the conversation, if any.
    pub last: Option<LastMessage>,
    /// When their last session ended, if they are offline and ever were online (protocol 2).
    pub last_seen: Option<UnixMillis>,
    /// The administrator deleted the account (protocol 3): its messages stay in the
    /// caller's history, nothing can be sent to it, and its name is never given out again.
    pub deleted: bool,
}

/// A page of messages that match a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchPage {
    /// Matches, newest first, from the caller's direct conversations.
    pub hits: Vec<ChatMessage>,
    /// Matches, newest first, from the groups the caller is in (protocol 3); with `hits`
    /// one page, never more than the limit together.
    pub group_hits: Vec<GroupMessage>,
    /// Search on with `before` set to this; `None` once every older message was searched.
    /// A page may hold fewer matches than asked (even none) and still go on: each request
    /// reads a bounded number of messages.
    pub next_before: Option<MessageId>,
}

/// Summary of a conversation's newest message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastMessage {
    /// Its id.
    pub id: MessageId,
    /// Who sent it.
    pub from: Username,
    /// When.
    pub sent_at: UnixMillis,
    /// The start of its body.
    pub preview: String,
}

/// One line of a group's history: a text someone sent, or what happened to the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMessage {
    /// Server id, from the same sequence as direct messages.
    pub id: MessageId,
    /// The group, by its name at the time it is sent (renames are lines of their own).
    pub group: GroupName,
    /// Who sent the text, or did what the line says.
    pub from: Username,
    /// The text; empty for every kind but [`GroupMessageKind::Text`].
    pub body: String,
    /// When the server stored it.
    pub sent_at: UnixMillis,
    /// A text, or which change.
    pub kind: GroupMessageKind,
}

/// What a group line is: a text, or a change to the group done by its `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupMessageKind {
    /// A message; only these count as unread.
    Text,
    /// `from` created the group (the first line of every group).
    Created,
    /// `from` (the owner) added `member`.
    Added {
        /// Who joined.
        member: Username,
    },
    /// `from` left.
    Left,
    /// `from` (the owner) removed `member`.
    Removed {
        /// Who was removed.
        member: Username,
    },
    /// `from` (the owner) renamed the group, which was called `from` before.
    Renamed {
        /// The old name.
        from: GroupName,
    },
    /// `from` handed the group over to `to`.
    OwnerChanged {
        /// The new owner.
        to: Username,
    },
}

/// A page of a group's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupHistoryPage {
    /// The group.
    pub group: GroupName,
    /// Lines, newest first.
    pub messages: Vec<GroupMessage>,
    /// Whether older lines the caller may read exist beyond this page.
    pub more: bool,
}

/// A group as its members see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// Its name.
    pub name: GroupName,
    /// Who may add, remove, rename, delete and hand it over.
    pub owner: Username,
    /// When it was created.
    pub created_at: UnixMillis,
    /// Whether members added later see only what was said from then on.
    pub hide_history: bool,
    /// Everyone in it, in name order.
    pub members: Vec<GroupMember>,
}

/// One member of a group, with how far they got: enough for "✓✓ 3/5" (delivered to 3 of
/// the 5 members who were there when a message was sent) and "read by 2".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The member.
    pub name: Username,
    /// Whether any session of theirs is connected.
    pub online: bool,
    /// The id of the line that added them (or created the group): lines before it were
    /// sent before they were there.
    pub joined_at: MessageId,
    /// Newest line a client of theirs has received.
    pub delivered_up_to: MessageId,
    /// Newest line they have read.
    pub read_up_to: MessageId,
}

/// One of the caller's groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Its name.
    pub name: GroupName,
    /// Its owner.
    pub owner: Username,
    /// How many members it has.
    pub members: u32,
    /// Texts the caller has not read.
    pub unread: u64,
    /// The newest text, if any.
    pub last: Option<LastMessage>,
}

/// Something the server pushes unasked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A message to this user, or a copy of one this user sent from another session.
    Message(ChatMessage),
    /// A user's first session arrived or last session left.
    Presence {
        /// Who.
        user: Username,
        /// Whether they are online now.
        online: bool,
    },
    /// The peer received or read this user's messages.
    Receipt {
        /// The other side of the conversation.
        peer: Username,
        /// Received or read.
        kind: ReceiptKind,
        /// Every message of this user to `peer` up to this id is covered.
        up_to: MessageId,
    },
    /// The server is stopping; the connection closes next.
    ShuttingDown,
    /// Another session of this user received or read `peer`'s messages (protocol 2), so
    /// every session of one user shows the same unread counts.
    OwnReceipt {
        /// The other side of the conversation.
        peer: Username,
        /// Received or read.
        kind: ReceiptKind,
        /// Every message from `peer` up to this id is covered.
        up_to: MessageId,
    },
    /// An account was created (protocol 2); sent to sessions that asked for `Contacts`.
    UserRegistered {
        /// The new user.
        user: Username,
    },
    /// `from` is typing to this user (protocol 2); shown for a few seconds, never stored.
    Typing {
        /// Who is typing.
        from: Username,
    },
    /// A line of a group this user is in (live, or pending at login), or a copy of one this
    /// user sent from another session; as with [`Event::Message`], clients de-duplicate by id.
    GroupMessage(GroupMessage),
    /// A member of `group` received or read lines up to `up_to`: sent to the senders of the
    /// newest texts it covers, and to the member's own other sessions.
    GroupReceipt {
        /// The group.
        group: GroupName,
        /// Who received or read.
        member: Username,
        /// Received or read.
        kind: ReceiptKind,
        /// Every line of the group up to this id is covered.
        up_to: MessageId,
    },
    /// This user is no longer in `group`: removed by its owner `by`, or `by` is this user,
    /// who left it from another session.
    GroupRemoved {
        /// The group.
        group: GroupName,
        /// Who did it.
        by: Username,
    },
    /// `group` was deleted by its owner `by`, with its history.
    GroupDeleted {
        /// The group.
        group: GroupName,
        /// Who did it.
        by: Username,
    },
    /// The administrator deleted `user`'s account (protocol 3); sent to sessions that asked
    /// for `Contacts`. Its messages stay; from now on [`Contact::deleted`] says so.
    UserDeleted {
        /// The deleted account.
        user: Username,
    },
}

/// Which receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiptKind {
    /// The peer's client got the message.
    Delivered,
    /// The peer opened the conversation.
    Read,
}

/// A failed request, or the reason a connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ErrorReply {
    /// What went wrong, for the client to branch on.
    pub code: ErrorCode,
    /// Human explanation, ready to show.
    pub message: String,
}

impl ErrorReply {
    /// An error with its explanation.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// The causes a client can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The client's protocol version is not the server's.
    UnsupportedVersion,
    /// Unknown user or wrong password (deliberately indistinguishable).
    InvalidCredentials,
    /// The resume token is unknown, expired or revoked.
    InvalidToken,
    /// Registration of a name that exists.
    NameTaken,
    /// A name that is not a valid [`Username`].
    InvalidName,
    /// A password outside [`crate::PASSWORD_LEN`].
    InvalidPassword,
    /// An empty message body, or a request argument out of range.
    InvalidRequest,
    /// A recipient or peer that is not registered.
    UnknownUser,
    /// The request needs a logged-in session.
    NotLoggedIn,
    /// Login on a session that is already logged in.
    AlreadyLoggedIn,
    /// A frame or message body over its limit.
    TooLarge,
    /// Too many attempts; wait and try again.
    RateLimited,
    /// A frame that does not decode, or a frame out of order.
    Malformed,
    /// The server holds its maximum number of connections.
    ServerFull,
    /// The server is shutting down.
    ShuttingDown,
    /// The connection sent nothing, not even a Ping, for too long.
    IdleTimeout,
    /// The server failed; the request may be retried.
    Internal,
    /// A plaintext client reached a server that requires TLS.
    TlsRequired,
    /// A TLS client reached a server started with `--plaintext`.
    PlaintextOnly,
    /// The server's disk is full: nothing was stored; try again later.
    StorageFull,
    /// No group of that name has the caller as a member (whether or not one exists).
    NoSuchGroup,
    /// Only the group's owner may do that.
    NotGroupOwner,
    /// A limit would be passed: members in a group, or groups of a user.
    LimitReached,
    /// The administrator disabled the account (protocol 3): to a login or resume, and as
    /// the [`ServerFrame::Fatal`] that closes its live sessions.
    AccountDisabled,
    /// The server takes no registrations (protocol 3).
    RegistrationClosed,
    /// The server registers only with an invite code, and none was given (protocol 3).
    InviteRequired,
    /// The invite code is unknown, used up, expired or revoked (protocol 3).
    InviteInvalid,
}
