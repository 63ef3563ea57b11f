//! Everything the server keeps on disk, behind one narrow API over sled.
//!
//! Trees: `users` (name → password hash), `tokens` (SHA-256 of a resume token → owner) and
//! `chat`, which holds messages, pending deliveries, resend dedup entries and per-user
//! conversation summaries under the keys of [`keys`].
//!
//! Reads go straight to sled from any thread. Every write goes through the [`commit`]
//! thread, which appends a whole group of operations to the write-ahead log ([`wal`]) as one
//! synced record, then applies it to sled, then answers: an answer means durable, and after
//! a crash the log's replay never leaves, say, a dedup entry without its message.

mod commit;
mod keys;
mod wal;

use std::collections::HashSet;
use std::ops::Bound;
use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use papo_protocol::{ChatMessage, HistoryPage, LastMessage, MessageId, UnixMillis, Username};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use commit::{Committer, Reply, Staged, TreeName, Trees};
use wal::Wal;

/// How the store trades latency, throughput and recovery time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Bytes of write-ahead log between checkpoints of the database; after a crash, up to
    /// about this much is replayed at start.
    pub wal_segment: u64,
    /// The least time from the end of one log sync to the start of the next: writes that
    /// arrive meanwhile join the next group instead of each forcing a sync of its own.
    pub commit_gap: Duration,
}

impl Default for StoreOptions {
    /// What the server ships with.
    ///
    /// 8 MiB of log is a checkpoint every second or two at 10,000 messages a second, and a
    /// replay after a crash that keeps a cold start on a million messages under a second
    /// (16 MiB, with a segment being checkpointed as well, could take longer).
    ///
    /// A 500 µs gap: on our virtual machines, syncs issued back to back while cores are busy
    /// make the host stall some of them for ~10 ms; spacing them cut the commits over 2 ms at
    /// 10,000 messages a second from ~50 to 2-21 in 6 s and p99 from 12-14 ms to under 3 ms
    /// in most runs, for +0.4 ms at the median and a fifth less CPU (BENCHMARKS.md). It costs
    /// nothing when writes arrive further apart than the gap, and at full load groups are
    /// large anyway.
    fn default() -> Self {
        Self { wal_segment: 8 << 20, commit_gap: Duration::from_micros(500) }
    }
}

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
    /// The group holding the write could not be made durable.
    #[error("cannot make writes durable: {0}")]
    NotDurable(String),
    /// The write-ahead log, or a thread of the store, failed.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The committer has stopped (the server is shutting down).
    #[error("the store is closed")]
    Stopped,
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
    /// Newest message from the peer; watermarks never pass it.
    pub last_received: MessageId,
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

/// A durable message, as [`Appends::next`] returns it.
#[derive(Debug)]
pub struct Appended {
    /// The stored message (the original one for a resend).
    pub message: ChatMessage,
    /// Whether this `client_msg_id` had been stored before.
    pub duplicate: bool,
}

/// What the committer answers; each store method unpacks its own variant.
#[derive(Debug)]
pub enum Answer {
    /// From an append.
    Appended(Appended),
    /// From `create_user`: whether the name was free.
    Created(bool),
    /// From `mark_read` and `mark_delivered`: the new watermark, if it moved.
    Moved(Option<MessageId>),
    /// Nothing to report.
    Done,
}

/// One session's pipeline of appends: submit many, then collect the answers in order.
#[derive(Debug)]
pub struct Appends {
    reply: Reply,
    answers: Receiver<Result<Answer>>,
}

impl Appends {
    /// An empty pipeline.
    pub fn new() -> Self {
        let (reply, answers) = mpsc::channel();
        Self { reply, answers }
    }

    /// Waits for the oldest outstanding append to be durable.
    pub fn next(&self) -> Result<Appended> {
        match self.answers.recv().map_err(|_| StoreError::Stopped)?? {
            Answer::Appended(appended) => Ok(appended),
            other => Err(unexpected(&other)),
        }
    }
}

impl Default for Appends {
    fn default() -> Self {
        Self::new()
    }
}

/// The server's persistent state.
#[derive(Debug)]
pub struct Store {
    // Declared first so it is dropped first: the committer finishes before the trees close.
    committer: Committer,
    db: sled::Db,
    users: sled::Tree,
    tokens: sled::Tree,
    chat: sled::Tree,
    known_users: RwLock<HashSet<Username>>,
}

impl Store {
    /// Opens (or creates) the store in `dir` with the default options.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// Opens (or creates) the store in `dir`.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Self> {
        // No background flusher: the write-ahead log makes writes durable, and sled is
        // flushed only at its checkpoints.
        let db =
            sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).flush_every_ms(None).open()?;
        let users = db.open_tree("users")?;
        let tokens = db.open_tree("tokens")?;
        let chat = db.open_tree("chat")?;
        let trees =
            Trees { db: db.clone(), chat: chat.clone(), users: users.clone(), tokens: tokens.clone() };
        let (wal, replayed) =
            Wal::open(&dir.join("wal"), options.wal_segment, |record| trees.replay(record))?;
        if !replayed.is_empty() {
            db.flush()?;
            wal::retire(&replayed)?;
        }
        let last_id = match chat.get(keys::LAST_ID)? {
            Some(raw) => decode(keys::LAST_ID, &raw)?,
            None => 0,
        };
        let committer = Committer::start(trees, wal, last_id, options.commit_gap)?;
        Ok(Self { committer, db, users, tokens, chat, known_users: RwLock::default() })
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<()> {
        self.committer.call(Box::new(|_| Ok(Answer::Done))).map(drop)
    }

    /// The account called `name`.
    pub fn user(&self, name: &Username) -> Result<Option<UserRecord>> {
        self.users.get(name.as_str())?.map(|raw| decode(name.as_str().as_bytes(), &raw)).transpose()
    }

    /// Whether `name` is registered.
    pub fn user_exists(&self, name: &Username) -> Result<bool> {
        // Accounts are never deleted, so a name seen once stays valid: every Send checks
        // its recipient, and this spares it a tree lookup.
        if self.known_users.read().unwrap_or_else(PoisonError::into_inner).contains(name) {
            return Ok(true);
        }
        let exists = self.users.contains_key(name.as_str())?;
        if exists {
            self.known_users.write().unwrap_or_else(PoisonError::into_inner).insert(name.clone());
        }
        Ok(exists)
    }

    /// Creates an account durably; `false` if the name is taken.
    pub fn create_user(&self, name: &Username, record: &UserRecord) -> Result<bool> {
        let (key, value) = (name.as_str().to_owned(), encode(record));
        let work = move |staged: &mut Staged<'_>| {
            let key = key.into_bytes();
            if staged.get(TreeName::Users, &key)?.is_some() {
                return Ok(Answer::Created(false));
            }
            staged.insert(TreeName::Users, key, value);
            Ok(Answer::Created(true))
        };
        match self.committer.call(Box::new(work))? {
            Answer::Created(created) => Ok(created),
            other => Err(unexpected(&other)),
        }
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
        let (key, value) = (token_hash.to_vec(), encode(record));
        let work = move |staged: &mut Staged<'_>| {
            staged.insert(TreeName::Tokens, key, value);
            Ok(Answer::Done)
        };
        self.committer.call(Box::new(work)).map(drop)
    }

    /// The record of a resume token's hash.
    pub fn token(&self, token_hash: &[u8]) -> Result<Option<TokenRecord>> {
        self.tokens.get(token_hash)?.map(|raw| decode(token_hash, &raw)).transpose()
    }

    /// Revokes a resume token durably.
    pub fn remove_token(&self, token_hash: &[u8]) -> Result<()> {
        let key = token_hash.to_vec();
        let work = move |staged: &mut Staged<'_>| {
            staged.remove(TreeName::Tokens, key);
            Ok(Answer::Done)
        };
        self.committer.call(Box::new(work)).map(drop)
    }

    /// Queues a message for storing, unless `from` already sent `client_msg_id`; its answer
    /// arrives through `appends` once durable.
    pub fn append(
        &self,
        from: &Username,
        to: &Username,
        body: &str,
        client_msg_id: u64,
        now: UnixMillis,
        appends: &Appends,
    ) -> Result<()> {
        let (from, to, body) = (from.clone(), to.clone(), body.to_owned());
        let work = move |staged: &mut Staged<'_>| append(staged, from, to, body, client_msg_id, now);
        self.committer.submit(Box::new(work), appends.reply.clone())
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
        for (peer, delivered_up_to) in self.unconfirmed(user)? {
            count += count_from(&self.chat, &peer, user, delivered_up_to)?;
        }
        Ok(count)
    }

    /// Up to `limit` unconfirmed messages to `user` with ids above `after`, oldest first.
    pub fn pending_after(&self, user: &Username, after: MessageId, limit: usize) -> Result<Vec<ChatMessage>> {
        let mut messages = Vec::new();
        for (peer, delivered_up_to) in self.unconfirmed(user)? {
            let start = keys::message(&peer, user, delivered_up_to.max(after).saturating_add(1));
            let end = keys::message(&peer, user, MessageId::MAX);
            let mut taken = 0;
            for entry in self.chat.range(start..=end) {
                let (key, raw) = entry?;
                let message = to_message(&key, &raw)?;
                if message.from == peer {
                    messages.push(message);
                    taken += 1;
                    if taken == limit {
                        break;
                    }
                }
            }
        }
        messages.sort_unstable_by_key(|m| m.id);
        messages.truncate(limit);
        Ok(messages)
    }

    /// Conversations of `user` whose newest message is past what `user` confirmed, with the
    /// confirmed watermark.
    fn unconfirmed(&self, user: &Username) -> Result<Vec<(Username, MessageId)>> {
        let prefix = keys::summary_prefix(user);
        let mut found = Vec::new();
        for entry in self.chat.scan_prefix(&prefix) {
            let (key, raw) = entry?;
            let summary: Summary = decode(&key, &raw)?;
            if summary.last_received > summary.delivered_up_to {
                let peer =
                    keys::summary_peer(&prefix, &key).ok_or_else(|| corrupt(&key, "bad summary key"))?;
                found.push((peer, summary.delivered_up_to));
            }
        }
        Ok(found)
    }

    /// Records that a client of `user` has every message from `from` up to `up_to`.
    ///
    /// Returns the new watermark if it moved, for a delivered receipt. It never passes the
    /// conversation's newest message, and only `user`'s own view changes.
    pub fn mark_delivered(
        &self,
        user: &Username,
        from: &Username,
        up_to: MessageId,
    ) -> Result<Option<MessageId>> {
        let (user, from) = (user.clone(), from.clone());
        let work = move |staged: &mut Staged<'_>| {
            let view = staged.summary(&user, &from)?;
            let delivered_up_to = up_to.min(view.last_received);
            if delivered_up_to <= view.delivered_up_to {
                return Ok(Answer::Moved(None));
            }
            view.delivered_up_to = delivered_up_to;
            Ok(Answer::Moved(Some(delivered_up_to)))
        };
        match self.committer.call(Box::new(work))? {
            Answer::Moved(moved) => Ok(moved),
            other => Err(unexpected(&other)),
        }
    }

    /// Marks `peer`'s messages to `user` read up to `up_to`.
    ///
    /// Returns the new read watermark if it moved, for a read receipt.
    pub fn mark_read(&self, user: &Username, peer: &Username, up_to: MessageId) -> Result<Option<MessageId>> {
        let (user, peer) = (user.clone(), peer.clone());
        let work = move |staged: &mut Staged<'_>| {
            let chat = staged.chat();
            let view = staged.summary(&user, &peer)?;
            let read_up_to = up_to.min(view.last_received);
            if read_up_to <= view.read_up_to {
                return Ok(Answer::Moved(None));
            }
            view.read_up_to = read_up_to;
            view.delivered_up_to = view.delivered_up_to.max(read_up_to);
            view.unread = count_from(chat, &peer, &user, read_up_to)?;
            Ok(Answer::Moved(Some(read_up_to)))
        };
        match self.committer.call(Box::new(work))? {
            Answer::Moved(moved) => Ok(moved),
            other => Err(unexpected(&other)),
        }
    }

    /// The newest message id handed out (0 for an empty store).
    pub fn last_message_id(&self) -> Result<MessageId> {
        self.chat.get(keys::LAST_ID)?.map_or(Ok(0), |raw| decode(keys::LAST_ID, &raw))
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }
}

/// The committer's half of [`Store::append`].
fn append(
    staged: &mut Staged<'_>,
    from: Username,
    to: Username,
    body: String,
    client_msg_id: u64,
    now: UnixMillis,
) -> Result<Answer> {
    let dedup_key = keys::dedup(&from, client_msg_id);
    if let Some(raw) = staged.get(TreeName::Chat, &dedup_key)? {
        let (id, original_to): (MessageId, Username) = decode(&dedup_key, &raw)?;
        let key = keys::message(&from, &original_to, id);
        let raw = staged.get(TreeName::Chat, &key)?.ok_or_else(|| corrupt(&dedup_key, "no message"))?;
        let message = to_message(&key, &raw)?;
        return Ok(Answer::Appended(Appended { message, duplicate: true }));
    }

    let id = *staged.last_id + 1;
    let last = Some(LastMessage { id, from: from.clone(), sent_at: now, preview: preview(&body) });
    staged.summary(&from, &to)?.last.clone_from(&last);
    let recipient_view = staged.summary(&to, &from)?;
    recipient_view.last = last;
    recipient_view.last_received = id;
    recipient_view.unread += 1;

    let record = MessageRecord { from: from.clone(), to: to.clone(), body, sent_at: now };
    staged.insert(TreeName::Chat, keys::message(&from, &to, id), encode(&record));
    staged.insert(TreeName::Chat, dedup_key, encode(&(id, &to)));
    staged.insert(TreeName::Chat, keys::LAST_ID.to_vec(), encode(&id));
    *staged.last_id = id;
    let MessageRecord { body, .. } = record;
    let message = ChatMessage { id, from, to, body, sent_at: now };
    Ok(Answer::Appended(Appended { message, duplicate: false }))
}

/// Messages from `from` to `to` with ids above `after`.
fn count_from(chat: &sled::Tree, from: &Username, to: &Username, after: MessageId) -> Result<u64> {
    let start = keys::message(from, to, after.saturating_add(1));
    let end = keys::message(from, to, MessageId::MAX);
    let mut count = 0;
    for entry in chat.range(start..=end) {
        let (key, raw) = entry?;
        let record: MessageRecord = decode(&key, &raw)?;
        count += u64::from(record.from == *from);
    }
    Ok(count)
}

fn unexpected(answer: &Answer) -> StoreError {
    StoreError::Corrupt { key: String::new(), reason: format!("the committer answered {answer:?}") }
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

    fn append(store: &Store, from: &Username, to: &Username, body: &str, client_msg_id: u64) -> Appended {
        let appends = Appends::new();
        store.append(from, to, body, client_msg_id, 1_000, &appends).unwrap();
        appends.next().unwrap()
    }

    #[test]
    fn append_dedups_resends_and_counts_unread() {
        let (_dir, store) = open();
        let (ana, bob) = (name("ana"), name("bob"));
        let first = append(&store, &ana, &bob, "oi", 1);
        let again = append(&store, &ana, &bob, "oi", 1);
        assert!(again.duplicate);
        assert_eq!(again.message, first.message);
        let second = append(&store, &ana, &bob, "tudo bem?", 2);
        assert_eq!(second.message.id, first.message.id + 1);
        assert_eq!(store.summary(&bob, &ana).unwrap().unread, 2);
        assert_eq!(store.summary(&ana, &bob).unwrap().unread, 0);
        assert_eq!(store.pending_count(&bob).unwrap(), 2);
    }

    #[test]
    fn pipelined_appends_in_one_group_see_each_other() {
        let (_dir, store) = open();
        let (ana, bob) = (name("ana"), name("bob"));
        let appends = Appends::new();
        for i in 0..50 {
            // Every message twice: the resend must find the first even in the same group.
            store.append(&ana, &bob, &format!("m{i}"), i, 0, &appends).unwrap();
            store.append(&ana, &bob, &format!("m{i}"), i, 0, &appends).unwrap();
        }
        let answers: Vec<_> = (0..100).map(|_| appends.next().unwrap()).collect();
        assert_eq!(answers.iter().filter(|a| a.duplicate).count(), 50);
        assert_eq!(store.summary(&bob, &ana).unwrap().unread, 50);
        assert_eq!(store.last_message_id().unwrap(), 50);
    }

    #[test]
    fn history_pages_newest_first() {
        let (_dir, store) = open();
        let (ana, bob, eve) = (name("ana"), name("bob"), name("eve"));
        for i in 0..25 {
            append(&store, &ana, &bob, &format!("m{i}"), i);
            append(&store, &eve, &ana, "noise", i);
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
        let ids: Vec<_> = (0..3).map(|i| append(&store, &ana, &bob, "x", i).message.id).collect();
        let eve = name("eve");
        let from_eve = append(&store, &eve, &bob, "y", 0).message.id;
        // The sender cannot confirm their own messages for the recipient.
        assert_eq!(store.mark_delivered(&ana, &bob, ids[2]).unwrap(), None);
        assert_eq!(store.pending_count(&bob).unwrap(), 4);
        assert_eq!(store.mark_delivered(&bob, &ana, ids[1]).unwrap(), Some(ids[1]));
        assert_eq!(store.mark_delivered(&bob, &ana, ids[0]).unwrap(), None, "watermarks never go back");
        let pending: Vec<_> = store.pending_after(&bob, 0, 10).unwrap().iter().map(|m| m.id).collect();
        assert_eq!(pending, [ids[2], from_eve]);
        assert_eq!(store.pending_after(&bob, ids[2], 10).unwrap().len(), 1);
        assert_eq!(store.mark_read(&bob, &ana, ids[1]).unwrap(), Some(ids[1]));
        assert_eq!(store.summary(&bob, &ana).unwrap().unread, 1);
        assert_eq!(store.mark_read(&bob, &ana, ids[0]).unwrap(), None);
        let page = store.history(&ana, &bob, None, 10).unwrap();
        assert_eq!(page.peer_read_up_to, ids[1]);
    }

    #[test]
    fn a_clean_stop_after_many_segments_leaves_no_log_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (ana, bob) = (name("ana"), name("bob"));
        let small_segments = StoreOptions { wal_segment: 64 * 1024, ..StoreOptions::default() };
        let segments = |dir: &Path| {
            std::fs::read_dir(dir.join("wal"))
                .unwrap()
                .filter(|entry| entry.as_ref().unwrap().path().extension().is_some_and(|ext| ext == "log"))
                .count()
        };
        {
            let store = Store::open_with(dir.path(), small_segments).unwrap();
            let appends = Appends::new();
            for i in 0..2_000 {
                store
                    .append(&ana, &bob, &format!("message {i} {}", "x".repeat(100)), i, 0, &appends)
                    .unwrap();
            }
            (0..2_000).for_each(|_| drop(appends.next().unwrap()));
        }
        assert_eq!(segments(dir.path()), 0, "a clean stop checkpoints and retires the whole log");
        let store = Store::open_with(dir.path(), small_segments).unwrap();
        let page = store.history(&bob, &ana, None, 1).unwrap();
        assert_eq!(page.messages[0].body, format!("message 1999 {}", "x".repeat(100)));
        assert_eq!(store.last_message_id().unwrap(), 2_000);
    }

    #[test]
    fn writes_arriving_within_the_commit_gap_wait_for_it_and_share_one_sync() {
        let gap = Duration::from_millis(300);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(dir.path(), StoreOptions { commit_gap: gap, ..StoreOptions::default() })
            .unwrap();
        let (ana, bob) = (name("ana"), name("bob"));
        let first = std::time::Instant::now();
        append(&store, &ana, &bob, "first", 1);
        assert!(first.elapsed() < gap, "nothing synced before, so nothing to wait for");
        let synced = std::time::Instant::now();
        let appends = Appends::new();
        for i in 2..=11 {
            store.append(&ana, &bob, &format!("message {i}"), i, 1_000, &appends).unwrap();
        }
        let answered: Vec<Duration> = (2..=11)
            .map(|_| {
                appends.next().unwrap();
                synced.elapsed()
            })
            .collect();
        assert!(answered[0] >= gap - Duration::from_millis(50), "answered after {:?}", answered[0]);
        assert!(answered[9] - answered[0] < gap, "ten syncs of their own would take ten gaps: {answered:?}");
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
            append(&store, &ana, &bob, "persist", 9);
        }
        let store = Store::open(dir.path()).unwrap();
        assert!(store.user_exists(&ana).unwrap());
        assert_eq!(store.last_message_id().unwrap(), 1);
        assert_eq!(store.history(&ana, &bob, None, 5).unwrap().messages[0].body, "persist");
        assert!(append(&store, &ana, &bob, "persist", 9).duplicate);
        assert_eq!(append(&store, &ana, &bob, "next", 10).message.id, 2);
    }
}
