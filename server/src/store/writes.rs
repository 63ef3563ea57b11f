//! The committer's half of each write: what an operation stages in its group.
//!
//! Each function finishes every read that can fail before its first change (see
//! [`Staged`]), and none costs more than a few lookups, however long the conversation: the
//! committer is one thread, and a slow operation there delays everyone's messages.

use papo_protocol::{ChatMessage, GroupMessage, MessageId, UnixMillis, Username};

use super::commit::{Staged, TreeName};
use super::group_writes::Refusal;
use super::records::{
    corrupt, decode, encode, AccountStatus, DedupRecord, GroupId, MessageRecord, StoredLast, Target,
    TokenRecord, UserRecord,
};
use super::{keys, preview, Result};

/// What storing a message came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored now.
    New(Posted),
    /// The sender had stored this `client_msg_id` before: the original message.
    Resent(Posted),
    /// The sender had used this `client_msg_id` for another message (to someone else, or
    /// with another text): refused, nothing stored.
    Reused {
        /// The id it was used for.
        original: MessageId,
    },
    /// A text to a group that is gone, or whose member the sender is not: refused, nothing
    /// stored.
    Refused(Refusal),
}

/// A stored message: a direct one, or a line of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// To one user.
    Direct(ChatMessage),
    /// To a group's members.
    Group {
        /// The group, whose members it goes to.
        group: GroupId,
        /// The line.
        message: GroupMessage,
    },
}

impl Posted {
    /// Its server id.
    pub fn id(&self) -> MessageId {
        match self {
            Self::Direct(message) => message.id,
            Self::Group { message, .. } => message.id,
        }
    }

    /// When it was stored.
    pub fn sent_at(&self) -> UnixMillis {
        match self {
            Self::Direct(message) => message.sent_at,
            Self::Group { message, .. } => message.sent_at,
        }
    }
}

/// A message to store.
pub struct NewMessage {
    pub from: Username,
    pub to: Username,
    pub body: String,
    pub client_msg_id: u64,
    pub now: UnixMillis,
}

/// Stores a message, unless its sender stored this client id before.
pub fn append(staged: &mut Staged<'_>, message: NewMessage) -> Result<Appended> {
    let NewMessage { from, to, body, client_msg_id, now } = message;
    if let Some(first) = first_send(staged, &from, client_msg_id, now)? {
        let Target::User(first_to) = &first.to else {
            return Ok(Appended::Reused { original: first.id });
        };
        let message_key = keys::message(&from, first_to, first.id);
        let raw =
            staged.get(TreeName::Chat, &message_key)?.ok_or_else(|| corrupt(&message_key, "no message"))?;
        let original: MessageRecord = decode(&message_key, &raw)?;
        if original.to != to || original.body != body {
            return Ok(Appended::Reused { original: first.id });
        }
        return Ok(Appended::Resent(Posted::Direct(to_chat(first.id, original))));
    }
    let id = staged.last_id + 1;
    let message = store_message(staged, id, from, to, body, now)?;
    let target = Target::User(message.to.clone());
    remember_send(staged, &message.from, client_msg_id, now, &DedupRecord { id, to: target });
    Ok(Appended::New(Posted::Direct(message)))
}

/// What `sender` first stored under `client_msg_id`, if it is still remembered: resends are
/// recognised this way whatever they were sent to.
pub fn first_send(
    staged: &Staged<'_>,
    sender: &Username,
    client_msg_id: u64,
    now: UnixMillis,
) -> Result<Option<DedupRecord>> {
    let generation = keys::dedup_generation(now);
    for seen_in in [generation, generation.saturating_sub(1)] {
        let key = keys::dedup(seen_in, sender, client_msg_id);
        if let Some(raw) = staged.get(TreeName::Chat, &key)? {
            return decode(&key, &raw).map(Some);
        }
    }
    Ok(None)
}

/// Remembers that `sender` stored `client_msg_id` as `first`, for its resends.
pub fn remember_send(
    staged: &mut Staged<'_>,
    sender: &Username,
    client_msg_id: u64,
    now: UnixMillis,
    first: &DedupRecord,
) {
    let key = keys::dedup(keys::dedup_generation(now), sender, client_msg_id);
    staged.insert(TreeName::Chat, key, encode(first));
}

/// Stores a message under `id` (newer than every stored one), with the conversation's
/// counts and both sides' summaries.
pub fn store_message(
    staged: &mut Staged<'_>,
    id: MessageId,
    from: Username,
    to: Username,
    body: String,
    sent_at: UnixMillis,
) -> Result<ChatMessage> {
    staged.load_summary(&from, &to)?;
    staged.load_summary(&to, &from)?;
    staged.last_id = staged.last_id.max(id);
    let last = Some(StoredLast { id, from: from.clone(), sent_at, preview: preview(&body) });
    let sender_view = staged.summary(&from, &to);
    sender_view.last.clone_from(&last);
    let reverse = sender_view.received;
    let recipient_view = staged.summary(&to, &from);
    recipient_view.last = last;
    recipient_view.last_received = id;
    recipient_view.unread += 1;
    recipient_view.received += 1;
    let position = recipient_view.received;

    let record = MessageRecord { from, to, body, sent_at, position, reverse };
    staged.insert_message(keys::message(&record.from, &record.to, id), &record);
    Ok(to_chat(id, record))
}

/// How many messages from `peer` a conversation holds up to and including `record`.
pub fn received_before_or_at(record: &MessageRecord, peer: &Username) -> u64 {
    if record.from == *peer {
        record.position
    } else {
        record.reverse
    }
}

/// Moves `user`'s read watermark for `peer`'s messages to `up_to`, with the unread count.
pub fn mark_read(
    staged: &mut Staged<'_>,
    user: &Username,
    peer: &Username,
    up_to: MessageId,
) -> Result<Option<MessageId>> {
    staged.load_summary(user, peer)?;
    let view = staged.peek_summary(user, peer);
    let read_up_to = up_to.min(view.last_received);
    if read_up_to <= view.read_up_to {
        return Ok(None);
    }
    let read = match staged.message_at_or_before(user, peer, read_up_to)? {
        Some((_, record)) => received_before_or_at(&record, peer),
        None => 0,
    };
    let view = staged.summary(user, peer);
    view.read_up_to = read_up_to;
    view.delivered_up_to = view.delivered_up_to.max(read_up_to);
    view.unread = view.received.saturating_sub(read);
    Ok(Some(read_up_to))
}

/// Moves `user`'s delivered watermark for messages from `from` to `up_to`.
pub fn mark_delivered(
    staged: &mut Staged<'_>,
    user: &Username,
    from: &Username,
    up_to: MessageId,
) -> Result<Option<MessageId>> {
    staged.load_summary(user, from)?;
    let delivered_up_to = up_to.min(staged.peek_summary(user, from).last_received);
    if delivered_up_to <= staged.peek_summary(user, from).delivered_up_to {
        return Ok(None);
    }
    staged.summary(user, from).delivered_up_to = delivered_up_to;
    Ok(Some(delivered_up_to))
}

/// Creates an account unless the name is taken.
pub fn create_user(staged: &mut Staged<'_>, key: Vec<u8>, value: Vec<u8>) -> Result<bool> {
    if staged.get(TreeName::Users, &key)?.is_some() {
        return Ok(false);
    }
    staged.insert(TreeName::Users, key, value);
    Ok(true)
}

/// Why a new resume token was not saved: the account changed after its owner proved who
/// they were, and a token saved now would outlive what that change revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChanged {
    /// The password was changed (or reset): every token saved before was revoked.
    PasswordChanged,
    /// The account no longer exists.
    Gone,
    /// The administrator disabled the account.
    Disabled,
}

/// Saves a resume token of `record.user`, unless their password hash is no longer
/// `authenticated`, the one the session was authenticated against.
///
/// The check and the save are one operation of the committer, which also runs every
/// password change: a change either comes first (and the token is refused) or after (and
/// revokes it), never in between.
pub fn save_token(
    staged: &mut Staged<'_>,
    key: Vec<u8>,
    record: &TokenRecord,
    authenticated: &str,
) -> Result<Result<(), AccountChanged>> {
    let user_key = record.user.as_str().as_bytes();
    let Some(raw) = staged.get(TreeName::Users, user_key)? else { return Ok(Err(AccountChanged::Gone)) };
    let account: UserRecord = decode(user_key, &raw)?;
    match account.status {
        AccountStatus::Active => {}
        AccountStatus::Disabled => return Ok(Err(AccountChanged::Disabled)),
        AccountStatus::Deleted => return Ok(Err(AccountChanged::Gone)),
    }
    if account.password_hash != authenticated {
        return Ok(Err(AccountChanged::PasswordChanged));
    }
    staged.insert(TreeName::Tokens, key, encode(record));
    Ok(Ok(()))
}

/// Removes a token, returning its record, with its owner's account as it is now, if it was
/// there (a token whose account is gone is removed all the same).
pub fn take_token(staged: &mut Staged<'_>, key: Vec<u8>) -> Result<Option<(TokenRecord, UserRecord)>> {
    let Some(raw) = staged.get(TreeName::Tokens, &key)? else { return Ok(None) };
    let record: TokenRecord = decode(&key, &raw)?;
    let user_key = record.user.as_str().as_bytes();
    let account = staged.get(TreeName::Users, user_key)?.map(|raw| decode(user_key, &raw)).transpose()?;
    staged.remove(TreeName::Tokens, key);
    Ok(account.map(|account| (record, account)))
}

/// Replaces `user`'s password hash and revokes every token of theirs but `keep`: how many
/// it revoked, or `None` (nothing changed) if there is no such account.
pub fn change_password(
    staged: &mut Staged<'_>,
    user: &Username,
    password_hash: String,
    keep: Option<&[u8]>,
) -> Result<Option<u64>> {
    let key = user.as_str().as_bytes();
    let Some(raw) = staged.get(TreeName::Users, key)? else { return Ok(None) };
    let record: UserRecord = decode(key, &raw)?;
    let revoked = revoke_tokens(staged, user, keep)?;
    staged.insert(TreeName::Users, key.to_vec(), encode(&UserRecord { password_hash, ..record }));
    Ok(Some(revoked))
}

/// Sets `user`'s status to active or disabled: whether it changed, or `None` if there is no
/// such account (or it was deleted).
pub fn set_status(staged: &mut Staged<'_>, user: &Username, status: AccountStatus) -> Result<Option<bool>> {
    let key = user.as_str().as_bytes();
    let Some(raw) = staged.get(TreeName::Users, key)? else { return Ok(None) };
    let record: UserRecord = decode(key, &raw)?;
    if record.status == AccountStatus::Deleted {
        return Ok(None);
    }
    if record.status == status {
        return Ok(Some(false));
    }
    staged.insert(TreeName::Users, key.to_vec(), encode(&UserRecord { status, ..record }));
    Ok(Some(true))
}

/// Revokes every token of `user` but `keep`, and says how many.
///
/// It reads the whole `tokens` tree, keyed by the token's hash alone: an index by user
/// would be a new store format with a migration, and the tree stays small (one token per
/// client that logged in within the token lifetime, each replaced when it is used, expired
/// ones pruned) and is read only when someone changes a password or is logged out
/// everywhere, which the login limits keep rare.
pub fn revoke_tokens(staged: &mut Staged<'_>, user: &Username, keep: Option<&[u8]>) -> Result<u64> {
    let mut revoked = 0;
    for (key, raw) in staged.scan_prefix(TreeName::Tokens, &[])? {
        let record: TokenRecord = decode(&key, &raw)?;
        if record.user == *user && keep != Some(key.as_slice()) {
            staged.remove(TreeName::Tokens, key);
            revoked += 1;
        }
    }
    Ok(revoked)
}

fn to_chat(id: MessageId, record: MessageRecord) -> ChatMessage {
    ChatMessage { id, from: record.from, to: record.to, body: record.body, sent_at: record.sent_at }
}
