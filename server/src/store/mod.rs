//! Everything the server keeps on disk, behind one narrow API over sled.
//!
//! Trees: `users` (name → password hash), `tokens` (SHA-256 of a resume token → owner) and
//! `chat`, which holds messages, pending deliveries, resend dedup entries and per-user
//! conversation summaries under the keys of [`keys`]. Every change to `chat` is one atomic
//! batch, so a crash never leaves, say, a dedup entry without its message.

mod commit;
mod keys;

use std::ops::Bound;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use papo_protocol::{ChatMessage, HistoryPage, LastMessage, MessageId, UnixMillis, Username};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use commit::GroupCommit;
pub use commit::Ticket;

/// How many bytes of a body a conversation summary keeps as its preview.
const PREVIEW_LEN: usize = 60;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value does not decode.
    #[error("corrupt record under {key:?}: {reason}")]
    Corrupt {
        /// The key, printed lossily.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// The flusher could not make writes durable.
    #[error("cannot make writes durable: {0}")]
    NotDurable(String),
    /// The flusher thread could not start.
    #[error("cannot start the flusher thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Result of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An account as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    /// bcrypt hash of the password.
    pub password_hash: String,
    /// When the account was created.
    pub created_at: UnixMillis,
}

/// A resume token's owner and expiry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Whose session the token resumes.
    pub user: Username,
    /// When the token stops working.
    pub expires_at: UnixMillis,
}

/// One user's view of one conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Messages from the peer this user has not read.
    pub unread: u64,
    /// Newest message from the peer this user has read.
    pub read_up_to: MessageId,
    /// Newest message from the peer a client of this user has received.
    pub delivered_up_to: MessageId,
    /// The conversation's newest message.
    pub last: Option<LastMessage>,
}

/// A message as it is stored under its key (which holds the id and the conversation).
#[derive(Debug, Serialize, Deserialize)]
struct MessageRecord {
    from: Username,
    to: Username,
    body: String,
    sent_at: UnixMillis,
}

/// The outcome of [`Store::append`].
#[derive(Debug)]
pub struct Appended {
    /// The stored message (the original one for a resend).
    pub message: ChatMessage,
    /// Whether this `client_msg_id` had been stored before.
    pub duplicate: bool,
    /// Durable once [`Store::wait_durable`] returns for it.
    pub ticket: Ticket,
}

/// The server's persistent state.
#[derive(Debug)]
pub struct Store {
    // Declared first so it is dropped first: the flusher joins before the database closes.
    commit: GroupCommit,
    db: sled::Db,
    users: sled::Tree,
    tokens: sled::Tree,
    chat: sled::Tree,
    /// Serialises read-modify-write of `chat` and holds the newest message id.
    chat_writer: Mutex<MessageId>,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).open()?;
        let users = db.open_tree("users")?;
        let tokens = db.open_tree("tokens")?;
        let chat = db.open_tree("chat")?;
        let last_id = match chat.get(keys::LAST_ID)? {
            Some(raw) => decode(keys::LAST_ID, &raw)?,
            None => 0,
        };
        let commit = GroupCommit::start(db.clone())?;
        Ok(Self { commit, db, users, tokens, chat, chat_writer: Mutex::new(last_id) })
    }

    /// Blocks until the writes behind `ticket` are on disk.
    pub fn wait_durable(&self, ticket: Ticket) -> Result<()> {
        self.commit.wait(ticket).map_err(StoreError::NotDurable)
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<()> {
        self.wait_durable(self.commit.latest())
    }

    /// The account called `name`.
    pub fn user(&self, name: &Username) -> Result<Option<UserRecord>> {
        self.users.get(name.as_str())?.map(|raw| decode(name.as_str().as_bytes(), &raw)).transpose()
    }

    /// Whether `name` is registered.
    pub fn user_exists(&self, name: &Username) -> Result<bool> {
        Ok(self.users.contains_key(name.as_str())?)
    }

    /// Creates an account durably; `false` if the name is taken.
    pub fn create_user(&self, name: &Username, record: &UserRecord) -> Result<bool> {
        let swapped = self.users.compare_and_swap(name.as_str(), None::<&[u8]>, Some(encode(record)))?;
        if swapped.is_err() {
            return Ok(false);
        }
        self.wait_durable(self.commit.written())?;
        Ok(true)
    }

    /// Up to `limit` registered names after `after`, in name order, and whether more follow.
    pub fn users_after(&self, after: Option<&Username>, limit: usize) -> Result<(Vec<Username>, bool)> {
        let start = match after {
            Some(name) => Bound::Excluded(name.as_str().as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        let mut names = Vec::with_capacity(limit);
        for entry in self.users.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (key, _) = entry?;
            if names.len() == limit {
                return Ok((names, true));
            }
            let raw = String::from_utf8_lossy(&key).into_owned();
            names.push(Username::parse(&raw).map_err(|e| corrupt(&key, e))?);
        }
        Ok((names, false))
    }

    /// Stores a resume token's hash durably.
    pub fn put_token(&self, token_hash: &[u8], record: &TokenRecord) -> Result<()> {
        self.tokens.insert(token_hash, encode(record))?;
        self.wait_durable(self.commit.written())
    }

    /// The record of a resume token's hash.
    pub fn token(&self, token_hash: &[u8]) -> Result<Option<TokenRecord>> {
        self.tokens.get(token_hash)?.map(|raw| decode(token_hash, &raw)).transpose()
    }

    /// Revokes a resume token durably.
    pub fn remove_token(&self, token_hash: &[u8]) -> Result<()> {
        self.tokens.remove(token_hash)?;
        self.wait_durable(self.commit.written())
    }

    /// Stores a message unless `from` already sent `client_msg_id`.
    ///
    /// Returns before the message is durable: wait on the ticket before acknowledging it.
    pub fn append(
        &self,
        from: &Username,
        to: &Username,
        body: &str,
        client_msg_id: u64,
        now: UnixMillis,
    ) -> Result<Appended> {
        let mut last_id = self.chat_writer.lock().unwrap_or_else(PoisonError::into_inner);
        let dedup_key = keys::dedup(from, client_msg_id);
        if let Some(raw) = self.chat.get(&dedup_key)? {
            let (id, original_to): (MessageId, Username) = decode(&dedup_key, &raw)?;
            let message =
                self.message(from, &original_to, id)?.ok_or_else(|| corrupt(&dedup_key, "no message"))?;
            // The original may still be waiting for its flush.
            return Ok(Appended { message, duplicate: true, ticket: self.commit.latest() });
        }

        let id = *last_id + 1;
        let message =
            ChatMessage { id, from: from.clone(), to: to.clone(), body: body.to_owned(), sent_at: now };
        let last = Some(LastMessage { id, from: from.clone(), sent_at: now, preview: preview(body) });
        let mut sender_view = self.summary(from, to)?;
        sender_view.last.clone_from(&last);
        let mut recipient_view = self.summary(to, from)?;
        recipient_view.last = last;
        recipient_view.unread += 1;

        let record =
            MessageRecord { from: from.clone(), to: to.clone(), body: body.to_owned(), sent_at: now };
        let mut batch = sled::Batch::default();
        batch.insert(keys::message(from, to, id), encode(&record));
        batch.insert(keys::pending(to, id), encode(from));
        batch.insert(dedup_key, encode(&(id, to)));
        batch.insert(keys::summary(from, to), encode(&sender_view));
        batch.insert(keys::summary(to, from), encode(&recipient_view));
        batch.insert(keys::LAST_ID, encode(&id));
        self.chat.apply_batch(batch)?;
        *last_id = id;
        let ticket = self.commit.written();
        Ok(Appended { message, duplicate: false, ticket })
    }

    /// A page of the conversation between `me` and `peer`, newest first, older than `before`.
    pub fn history(
        &self,
        me: &Username,
        peer: &Username,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<HistoryPage> {
        let start = keys::message(me, peer, 0);
        let end = match before {
            Some(id) => Bound::Excluded(keys::message(me, peer, id)),
            None => Bound::Included(keys::message(me, peer, MessageId::MAX)),
        };
        let mut messages = Vec::with_capacity(limit);
        let mut more = false;
        for entry in self.chat.range((Bound::Included(start), end)).rev() {
            let (key, raw) = entry?;
            if messages.len() == limit {
                more = true;
                break;
            }
            messages.push(to_message(&key, &raw)?);
        }
        let peer_view = self.summary(peer, me)?;
        Ok(HistoryPage {
            messages,
            more,
            peer_delivered_up_to: peer_view.delivered_up_to,
            peer_read_up_to: peer_view.read_up_to,
        })
    }

    /// `owner`'s view of the conversation with `peer` (empty if they never talked).
    pub fn summary(&self, owner: &Username, peer: &Username) -> Result<Summary> {
        let key = keys::summary(owner, peer);
        Ok(self.chat.get(&key)?.map(|raw| decode(&key, &raw)).transpose()?.unwrap_or_default())
    }

    /// How many messages to `user` no client of theirs has confirmed.
    pub fn pending_count(&self, user: &Username) -> Result<u64> {
        let mut count = 0;
        for entry in self.chat.scan_prefix(keys::pending_prefix(user)) {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    /// Up to `limit` unconfirmed messages to `user` with ids above `after`, oldest first.
    pub fn pending_after(&self, user: &Username, after: MessageId, limit: usize) -> Result<Vec<ChatMessage>> {
        let start = keys::pending(user, after.saturating_add(1));
        let end = keys::pending(user, MessageId::MAX);
        let mut messages = Vec::new();
        for entry in self.chat.range(start..=end).take(limit) {
            let (key, raw) = entry?;
            let from: Username = decode(&key, &raw)?;
            let id = keys::trailing_id(&key).ok_or_else(|| corrupt(&key, "short key"))?;
            match self.message(user, &from, id)? {
                Some(message) => messages.push(message),
                None => return Err(corrupt(&key, "pending entry without its message")),
            }
        }
        Ok(messages)
    }

    /// Records that a client of `user` received these messages.
    ///
    /// Returns, per sender, the newest id now confirmed, for delivered receipts. Ids that are
    /// not pending for `user` are ignored, so nobody can confirm someone else's messages.
    pub fn mark_delivered(&self, user: &Username, ids: &[MessageId]) -> Result<Vec<(Username, MessageId)>> {
        let _writer = self.chat_writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut newest: Vec<(Username, MessageId)> = Vec::new();
        let mut batch = sled::Batch::default();
        for &id in ids {
            let key = keys::pending(user, id);
            let Some(raw) = self.chat.get(&key)? else { continue };
            let from: Username = decode(&key, &raw)?;
            batch.remove(key);
            match newest.iter_mut().find(|(sender, _)| *sender == from) {
                Some((_, up_to)) => *up_to = (*up_to).max(id),
                None => newest.push((from, id)),
            }
        }
        for (from, up_to) in &newest {
            let mut view = self.summary(user, from)?;
            view.delivered_up_to = view.delivered_up_to.max(*up_to);
            batch.insert(keys::summary(user, from), encode(&view));
        }
        self.chat.apply_batch(batch)?;
        self.commit.written();
        Ok(newest)
    }

    /// Marks `peer`'s messages to `user` read up to `up_to`.
    ///
    /// Returns the new read watermark if it moved, for a read receipt.
    pub fn mark_read(&self, user: &Username, peer: &Username, up_to: MessageId) -> Result<Option<MessageId>> {
        let _writer = self.chat_writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut view = self.summary(user, peer)?;
        let newest = view.last.as_ref().map_or(0, |last| last.id);
        let read_up_to = up_to.min(newest);
        if read_up_to <= view.read_up_to {
            return Ok(None);
        }
        view.read_up_to = read_up_to;
        view.delivered_up_to = view.delivered_up_to.max(read_up_to);
        view.unread = self.count_from(peer, user, read_up_to)?;
        self.chat.insert(keys::summary(user, peer), encode(&view))?;
        self.commit.written();
        Ok(Some(read_up_to))
    }

    /// Messages from `from` to `to` with ids above `after`.
    fn count_from(&self, from: &Username, to: &Username, after: MessageId) -> Result<u64> {
        let start = keys::message(from, to, after.saturating_add(1));
        let end = keys::message(from, to, MessageId::MAX);
        let mut count = 0;
        for entry in self.chat.range(start..=end) {
            let (key, raw) = entry?;
            let record: MessageRecord = decode(&key, &raw)?;
            count += u64::from(record.from == *from);
        }
        Ok(count)
    }

    fn message(&self, a: &Username, b: &Username, id: MessageId) -> Result<Option<ChatMessage>> {
        let key = keys::message(a, b, id);
        self.chat.get(&key)?.map(|raw| to_message(&key, &raw)).transpose()
    }

    /// How many messages the store holds, for the start-up log line.
    pub fn last_message_id(&self) -> MessageId {
        *self.chat_writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }
}

fn to_message(key: &[u8], raw: &[u8]) -> Result<ChatMessage> {
    let record: MessageRecord = decode(key, raw)?;
    let id = keys::trailing_id(key).ok_or_else(|| corrupt(key, "short key"))?;
    Ok(ChatMessage { id, from: record.from, to: record.to, body: record.body, sent_at: record.sent_at })
}

fn preview(body: &str) -> String {
    let mut end = body.len().min(PREVIEW_LEN);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_owned()
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, config()).expect("store records always encode")
}

fn decode<T: DeserializeOwned>(key: &[u8], raw: &[u8]) -> Result<T> {
    bincode::serde::decode_from_slice(raw, config()).map(|(value, _)| value).map_err(|e| corrupt(key, e))
}

fn corrupt(key: &[u8], reason: impl ToString) -> StoreError {
    StoreError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), reason: reason.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Username {
        Username::parse(raw).unwrap()
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn append_dedups_resends_and_counts_unread() {
        let (_dir, store) = open();
        let (ana, bob) = (name("ana"), name("bob"));
        let first = store.append(&ana, &bob, "oi", 1, 10).unwrap();
        store.wait_durable(first.ticket).unwrap();
        let again = store.append(&ana, &bob, "oi", 1, 11).unwrap();
        assert!(again.duplicate);
        assert_eq!(again.message, first.message);
        let second = store.append(&ana, &bob, "tudo bem?", 2, 12).unwrap();
        assert_eq!(second.message.id, first.message.id + 1);
        assert_eq!(store.summary(&bob, &ana).unwrap().unread, 2);
        assert_eq!(store.summary(&ana, &bob).unwrap().unread, 0);
        assert_eq!(store.pending_count(&bob).unwrap(), 2);
    }

    #[test]
    fn history_pages_newest_first() {
        let (_dir, store) = open();
        let (ana, bob, eve) = (name("ana"), name("bob"), name("eve"));
        for i in 0..25 {
            store.append(&ana, &bob, &format!("m{i}"), i, 0).unwrap();
            store.append(&eve, &ana, "noise", i, 0).unwrap();
        }
        let first = store.history(&bob, &ana, None, 10).unwrap();
        assert!(first.more);
        assert_eq!(first.messages[0].body, "m24");
        let last_id = first.messages.last().unwrap().id;
        let second = store.history(&bob, &ana, Some(last_id), 10).unwrap();
        assert_eq!(second.messages[0].body, "m14");
        let third = store.history(&bob, &ana, Some(second.messages[9].id), 10).unwrap();
        assert_eq!(third.messages.len(), 5);
        assert!(!third.more);
    }

    #[test]
    fn delivered_and_read_move_watermarks() {
        let (_dir, store) = open();
        let (ana, bob) = (name("ana"), name("bob"));
        let ids: Vec<_> = (0..3).map(|i| store.append(&ana, &bob, "x", i, 0).unwrap().message.id).collect();
        // Someone else's ids are ignored.
        assert!(store.mark_delivered(&ana, &ids).unwrap().is_empty());
        assert_eq!(store.mark_delivered(&bob, &ids[..2]).unwrap(), vec![(ana.clone(), ids[1])]);
        assert_eq!(store.pending_after(&bob, 0, 10).unwrap().len(), 1);
        assert_eq!(store.mark_read(&bob, &ana, ids[1]).unwrap(), Some(ids[1]));
        assert_eq!(store.summary(&bob, &ana).unwrap().unread, 1);
        assert_eq!(store.mark_read(&bob, &ana, ids[0]).unwrap(), None);
        let page = store.history(&ana, &bob, None, 10).unwrap();
        assert_eq!(page.peer_read_up_to, ids[1]);
    }

    #[test]
    fn reopening_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let (ana, bob) = (name("ana"), name("bob"));
        {
            let store = Store::open(dir.path()).unwrap();
            let record = UserRecord { password_hash: "h".into(), created_at: 1 };
            assert!(store.create_user(&ana, &record).unwrap());
            assert!(!store.create_user(&ana, &record).unwrap());
            store.append(&ana, &bob, "persist", 9, 0).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert!(store.user_exists(&ana).unwrap());
        assert_eq!(store.last_message_id(), 1);
        assert_eq!(store.history(&ana, &bob, None, 5).unwrap().messages[0].body, "persist");
        assert!(store.append(&ana, &bob, "persist", 9, 0).unwrap().duplicate);
        assert_eq!(store.append(&ana, &bob, "next", 10, 0).unwrap().message.id, 2);
    }
}
