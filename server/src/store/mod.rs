//! Everything the server keeps on disk, behind one narrow API over sled.
//!
//! Trees: `users` (name → password hash), `tokens` (SHA-256 of a resume token → owner) and
//! `chat`, which holds messages, resend dedup entries, per-user conversation summaries and
//! groups (their names, members and lines) under the keys of [`keys`], with the values of
//! [`records`].
//!
//! Reads go straight to sled from any thread. Every write goes through the [`commit`]
//! thread, which appends a whole group of operations to the write-ahead log ([`wal`]) as one
//! synced record, then applies it to sled, then answers: an answer means durable, an error
//! means not stored, and after a crash the log's replay never leaves, say, a dedup entry
//! without its message. [`checkpoint`]s make sled itself durable before the log it covers is
//! retired, and the [`manifest`] records how far they reached, so that opening a store that
//! lost data (a damaged disk, a deleted file) is refused instead of looking like a new one
//! ([`open`]).

mod applier;
mod check;
mod checkpoint;
mod commit;
mod deletion;
mod export;
mod fatal;
mod files;
mod group_writes;
mod groups;
mod invites;
mod keys;
mod manifest;
mod migrate;
mod open;
mod prune;
mod records;
mod search;
#[cfg(test)]
mod tests;
mod wal;
mod writes;

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use papo_protocol::{ChatMessage, HistoryPage, MessageId, UnixMillis, Username};

use commit::{answer_to, Answer, Committer, Growth};
use fatal::Fatal;
use files::DirLock;
use records::{corrupt, decode, encode, MessageRecord};

pub use check::{check, Report};
pub use commit::{Afterwards, Then, Writes};
pub use deletion::DeletedAccount;
pub use export::{Counts, Line, FORMAT as EXPORT_FORMAT};
pub use group_writes::{Deleted, Moved, NewGroup, NewText, Refusable, Refusal};
pub use groups::{MemberNames, Members, Membership};
pub use invites::{Invite, Registered};
pub use prune::Pruned;
pub use records::{
    AccountStatus, GroupId, GroupRecord, InviteRecord, Mark, MemberRecord, Summary, TokenRecord, UserRecord,
};
pub use search::{SearchIn, SearchPage, SEARCH_BUDGET};
pub use writes::{AccountChanged, Appended, Posted};

/// How the store trades latency, throughput, memory and recovery time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Bytes of write-ahead log between checkpoints of the database; after a crash, up to
    /// about this much is replayed at start.
    pub wal_segment: u64,
    /// The least time from the end of one log sync to the start of the next, while syncs
    /// come back to back (a lone write with nothing behind it is synced at once): writes that
    /// arrive meanwhile join the next group instead of each forcing a sync of its own.
    pub commit_gap: Duration,
    /// Bytes of memory sled may use to cache the database.
    pub cache_bytes: u64,
    /// Bytes to keep free on the data directory's disk: below this, new messages, accounts
    /// and saved sessions are refused, so that checkpoints (and the database's own
    /// bookkeeping) never run out of space half-way. 0 turns the check off.
    pub reserve_bytes: u64,
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
    ///
    /// A 256 MiB cache holds a busy lab's recent conversations; sled's own default (1 GiB)
    /// is a quarter of a small lab server's memory.
    ///
    /// A 64 MiB reserve covers several checkpoints of 8 MiB segments, whatever else shares
    /// the disk.
    fn default() -> Self {
        Self {
            wal_segment: 8 << 20,
            commit_gap: Duration::from_micros(500),
            cache_bytes: 256 << 20,
            reserve_bytes: 64 << 20,
        }
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
    /// A file or directory could not be used.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// To what.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A helper thread could not start.
    #[error("cannot start {0}: {1}")]
    Thread(&'static str, io::Error),
    /// A stored value does not decode.
    #[error("corrupt record under {key:?}: {reason}")]
    Corrupt {
        /// The key, printed lossily.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// The write-ahead log is damaged.
    #[error(
        "the write-ahead log is damaged: {reason} ({}, offset {offset}). Nothing was changed. Keep a copy of the data directory; `papo-server check` lists what else is wrong; to start anyway from what is intact, restore a backup or import an export",
        path.display()
    )]
    DamagedLog {
        /// The segment.
        path: PathBuf,
        /// Where in it.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The manifest does not parse.
    #[error("the store's manifest {} is damaged: {reason}. Keep a copy of the data directory and restore a backup, or import an export", path.display())]
    DamagedManifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// sled could not open its files.
    #[error("the database in {} is damaged: {reason}. Nothing was changed. Keep a copy of the data directory; restore a backup, or import an export", dir.display())]
    DamagedDatabase {
        /// The data directory.
        dir: PathBuf,
        /// What sled said.
        reason: String,
    },
    /// The database holds less than its last checkpoint made durable.
    #[error(
        "the database in {} has lost data: it reaches commit {found}, but its last checkpoint made commit {expected} durable ({messages} messages). It was damaged, replaced or partly deleted (or its disk ignores flushes). Nothing was changed. Keep a copy of the data directory; restore a backup, or import an export",
        dir.display()
    )]
    LostWrites {
        /// The data directory.
        dir: PathBuf,
        /// How far the database reaches.
        found: u64,
        /// How far it reached at the last checkpoint.
        expected: u64,
        /// Messages by then.
        messages: u64,
    },
    /// The store is of a newer format than this server.
    #[error("the store in {} has format {found}, newer than this papo-server understands ({supported}); run a newer papo-server", dir.display())]
    NewerFormat {
        /// The data directory.
        dir: PathBuf,
        /// Its format.
        found: u32,
        /// This server's.
        supported: u32,
    },
    /// Another process holds the data directory.
    #[error("another papo-server is using {}{}; stop it first, or choose another --data-dir", dir.display(), pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default())]
    InUse {
        /// The data directory.
        dir: PathBuf,
        /// The holder's process id, if it wrote one.
        pid: Option<u32>,
    },
    /// A file the store writes to was deleted while the server ran.
    #[error("{} was deleted while the server ran; nothing written since would survive", path.display())]
    Vanished {
        /// The file.
        path: PathBuf,
    },
    /// The disk is nearly full: the write was refused, nothing of it is stored.
    #[error("the server's disk is full ({free} bytes free in {}, {reserve} kept in reserve); nothing was stored", dir.display())]
    StorageFull {
        /// The data directory.
        dir: PathBuf,
        /// Bytes left.
        free: u64,
        /// Bytes the store keeps free.
        reserve: u64,
    },
    /// The log could not take the write: nothing of it is stored.
    #[error("the write could not be logged, so nothing was stored: {0}")]
    NotStored(String),
    /// A sync of the log failed: what it held may or may not be on disk.
    #[error("syncing {} failed: {source}", path.display())]
    SyncFailed {
        /// The segment.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An export to import is not valid.
    #[error("cannot import line {line}: {reason}")]
    Import {
        /// The line (1 is the first; 0 for the whole file).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The store stopped (the server is shutting down, or the store failed): the write was
    /// not answered and may or may not be stored.
    #[error("the store is closed")]
    Stopped,
}

/// Result of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Names the file an I/O error is about.
trait IoContext<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| StoreError::Io { action, path: path.to_owned(), source })
    }
}

/// One session's pipeline of appends: submit many, then collect the answers in order.
///
/// Each append has its answer channel of its own: if the store fails, the operation is
/// dropped unanswered, and its waiter learns at once that no answer will come.
#[derive(Debug, Default)]
pub struct Appends {
    answers: RefCell<VecDeque<Answer<Appended>>>,
}

/// Where the answers to a session's queued appends go, in the order they were queued.
pub trait AppendAnswers {
    /// Where the answer to the append being queued goes.
    fn next_answer(&self) -> Then<Appended>;
}

impl AppendAnswers for Appends {
    fn next_answer(&self) -> Then<Appended> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.answers.borrow_mut().push_back(answer);
        answer_to(reply)
    }
}

impl Appends {
    /// An empty pipeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the oldest outstanding append to be settled.
    pub fn next(&self) -> Result<Appended> {
        let answer = self.answers.borrow_mut().pop_front().ok_or(StoreError::Stopped)?;
        commit::wait(&answer)
    }
}

/// The server's persistent state.
#[derive(Debug)]
pub struct Store {
    // Declared first so they are dropped first: they finish before the trees close.
    pruner: prune::Pruner,
    committer: Committer,
    trees: commit::Trees,
    known_users: RwLock<HashSet<Username>>,
    fatal: Arc<Fatal>,
    // Last: the directory stays taken until everything else is closed.
    _lock: DirLock,
}

impl Store {
    /// Opens (or creates) the store in `dir` with the default options.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// Opens (or creates) the store in `dir`; see [`open`] for what it checks.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Self> {
        let opened = open::open(dir, options)?;
        Ok(Self {
            pruner: prune::Pruner::start(opened.trees.clone())?,
            committer: opened.committer,
            trees: opened.trees,
            known_users: RwLock::default(),
            fatal: opened.fatal,
            _lock: opened.lock,
        })
    }

    /// Runs `hook` once if the store fails (it then answers nothing more), or now if it has.
    pub fn on_failure(&self, hook: impl FnOnce() + Send + 'static) {
        self.fatal.on_raise(hook);
    }

    /// Why the store failed, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.fatal.error()
    }

    /// Waits until everything queued before is settled.
    pub fn flush(&self) -> Result<()> {
        self.committer.call(Growth::Maintains, |_| Ok(()))
    }

    /// The account called `name`.
    pub fn user(&self, name: &Username) -> Result<Option<UserRecord>> {
        self.trees.users.get(name.as_str())?.map(|raw| decode(name.as_str().as_bytes(), &raw)).transpose()
    }

    /// Whether `name` is registered and not deleted.
    pub fn user_exists(&self, name: &Username) -> Result<bool> {
        // Every Send checks its recipient, and this spares it a tree lookup; a deletion
        // takes the name out again.
        if self.known_users.read().unwrap_or_else(PoisonError::into_inner).contains(name) {
            return Ok(true);
        }
        let exists = self.user(name)?.is_some_and(|record| record.status != AccountStatus::Deleted);
        if exists {
            self.known_users.write().unwrap_or_else(PoisonError::into_inner).insert(name.clone());
        }
        Ok(exists)
    }

    /// Whether `name` was ever registered, deleted accounts included: their conversations
    /// can still be read.
    pub fn user_was_registered(&self, name: &Username) -> Result<bool> {
        Ok(self.user_exists(name)? || self.trees.users.contains_key(name.as_str())?)
    }

    /// Deletes `user`'s account durably, in one write (see [`deletion`]): `None` if there is
    /// no such account.
    pub fn delete_account(&self, user: &Username, now: UnixMillis) -> Result<Option<DeletedAccount>> {
        let name = user.clone();
        let deleted = self
            .committer
            .call(Growth::Maintains, move |staged| deletion::delete_account(staged, &name, now))?;
        self.known_users.write().unwrap_or_else(PoisonError::into_inner).remove(user);
        Ok(deleted)
    }

    /// Creates an account durably; `false` if the name is taken.
    pub fn create_user(&self, name: &Username, record: &UserRecord) -> Result<bool> {
        Ok(self.register(name, record, None)? == Registered::Created)
    }

    /// Creates an account durably, using up `invite` in the same write if one is given.
    pub fn register(
        &self,
        name: &Username,
        record: &UserRecord,
        invite: Option<Invite>,
    ) -> Result<Registered> {
        let (key, value) = (name.as_str().as_bytes().to_vec(), encode(record));
        self.committer
            .call(Growth::Grows, move |staged| invites::register(staged, key, value, invite.as_ref()))
    }

    /// Up to `limit` registered names after `after`, in name order, and whether more follow.
    pub fn users_after(&self, after: Option<&Username>, limit: usize) -> Result<(Vec<Username>, bool)> {
        let start = match after {
            Some(name) => Bound::Excluded(name.as_str().as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        let mut names = Vec::with_capacity(limit);
        for entry in self.trees.users.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (key, _) = entry?;
            if names.len() == limit {
                return Ok((names, true));
            }
            let raw = String::from_utf8_lossy(&key).into_owned();
            names.push(Username::parse(&raw).map_err(|e| corrupt(&key, e))?);
        }
        Ok((names, false))
    }

    /// Stores a resume token's hash durably, unless the account changed since its owner was
    /// authenticated against `authenticated` (their password hash then); see
    /// [`writes::save_token`].
    pub fn save_token(
        &self,
        token_hash: &[u8],
        record: &TokenRecord,
        authenticated: &str,
    ) -> Result<Result<(), AccountChanged>> {
        let (key, record, authenticated) = (token_hash.to_vec(), record.clone(), authenticated.to_owned());
        self.committer
            .call(Growth::Grows, move |staged| writes::save_token(staged, key, &record, &authenticated))
    }

    /// The record of a resume token's hash.
    pub fn token(&self, token_hash: &[u8]) -> Result<Option<TokenRecord>> {
        self.trees.tokens.get(token_hash)?.map(|raw| decode(token_hash, &raw)).transpose()
    }

    /// Takes a single-use resume token: its record, with its owner's account as it was when
    /// it was taken, if both were still there; the token is gone durably either way. Of
    /// several sessions taking the same token at once, one gets it.
    pub fn take_token(&self, token_hash: &[u8]) -> Result<Option<(TokenRecord, UserRecord)>> {
        let key = token_hash.to_vec();
        self.committer.call(Growth::Maintains, move |staged| writes::take_token(staged, key))
    }

    /// Revokes a resume token durably.
    pub fn remove_token(&self, token_hash: &[u8]) -> Result<()> {
        let key = token_hash.to_vec();
        self.committer.call(Growth::Maintains, move |staged| {
            staged.remove(commit::TreeName::Tokens, key);
            Ok(())
        })
    }

    /// Revokes every resume token of `user` durably, in one write: how many.
    pub fn revoke_tokens(&self, user: &Username) -> Result<u64> {
        let user = user.clone();
        self.committer.call(Growth::Maintains, move |staged| writes::revoke_tokens(staged, &user, None))
    }

    /// Replaces `user`'s password hash durably and revokes every resume token of theirs but
    /// `keep`, in one write: how many tokens it revoked, or `None` if there is no such account.
    pub fn change_password(
        &self,
        user: &Username,
        password_hash: &str,
        keep: Option<&[u8]>,
    ) -> Result<Option<u64>> {
        let (user, password_hash, keep) = (user.clone(), password_hash.to_owned(), keep.map(<[u8]>::to_vec));
        self.committer.call(Growth::Maintains, move |staged| {
            writes::change_password(staged, &user, password_hash, keep.as_deref())
        })
    }

    /// Sets `user`'s status durably: whether it changed, or `None` if there is no such account.
    /// A disabled account's sessions cannot save new resume tokens from the moment this is
    /// answered (see [`writes::save_token`]).
    pub fn set_account_status(&self, user: &Username, status: AccountStatus) -> Result<Option<bool>> {
        let user = user.clone();
        self.committer.call(Growth::Maintains, move |staged| writes::set_status(staged, &user, status))
    }

    /// Queues a message for storing; its answer arrives through `appends` once settled: the
    /// stored message, the original of a resend, or a client id used for another message.
    pub fn append(
        &self,
        from: &Username,
        to: &Username,
        body: &str,
        client_msg_id: u64,
        now: UnixMillis,
        appends: &dyn AppendAnswers,
    ) -> Result<()> {
        let (from, to, body) = (from.clone(), to.clone(), body.to_owned());
        let work = move |staged: &mut commit::Staged<'_>| {
            writes::append(staged, writes::NewMessage { from, to, body, client_msg_id, now })
        };
        self.committer.submit_then(Growth::Grows, work, appends.next_answer())
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
        for entry in self.trees.chat.range((Bound::Included(start), end)).rev() {
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

    /// `owner`'s view of the conversation with `peer`.
    pub fn summary(&self, owner: &Username, peer: &Username) -> Result<Summary> {
        let key = keys::summary(owner, peer);
        self.trees.chat.get(&key)?.map_or(Ok(Summary::default()), |raw| decode(&key, &raw))
    }

    /// How many messages to `user` (direct ones, and lines of their groups) no client of
    /// theirs has confirmed yet.
    pub fn pending_count(&self, user: &Username) -> Result<u64> {
        let mut count = self.group_pending_count(user)?;
        for (peer, summary) in self.unconfirmed(user)? {
            let confirmed = self.received_up_to(user, &peer, summary.delivered_up_to)?;
            count += summary.received.saturating_sub(confirmed);
        }
        Ok(count)
    }

    /// How many messages `peer` sent `user` with ids up to `up_to`, in one lookup.
    fn received_up_to(&self, user: &Username, peer: &Username, up_to: MessageId) -> Result<u64> {
        let range = keys::message(user, peer, 0)..=keys::message(user, peer, up_to);
        let Some(entry) = self.trees.chat.range(range).next_back() else { return Ok(0) };
        let (key, raw) = entry?;
        let record: MessageRecord = decode(&key, &raw)?;
        Ok(writes::received_before_or_at(&record, peer))
    }

    /// Up to `limit` unconfirmed messages to `user` (direct ones, and lines of their groups)
    /// with ids above `after`, oldest first.
    pub fn pending_after(&self, user: &Username, after: MessageId, limit: usize) -> Result<Vec<Posted>> {
        let mut pending: Vec<Posted> =
            self.direct_pending_after(user, after, limit)?.into_iter().map(Posted::Direct).collect();
        pending.extend(self.group_pending_after(user, after, limit)?);
        pending.sort_unstable_by_key(Posted::id);
        pending.truncate(limit);
        Ok(pending)
    }

    fn direct_pending_after(
        &self,
        user: &Username,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>> {
        let mut messages = Vec::new();
        for (peer, summary) in self.unconfirmed(user)? {
            let start = keys::message(&peer, user, summary.delivered_up_to.max(after).saturating_add(1));
            let end = keys::message(&peer, user, MessageId::MAX);
            let mut taken = 0;
            for entry in self.trees.chat.range(start..=end) {
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

    /// Conversations of `user` whose newest message is past what `user` confirmed.
    fn unconfirmed(&self, user: &Username) -> Result<Vec<(Username, Summary)>> {
        let prefix = keys::summary_prefix(user);
        let mut found = Vec::new();
        for entry in self.trees.chat.scan_prefix(&prefix) {
            let (key, raw) = entry?;
            let summary: Summary = decode(&key, &raw)?;
            if summary.last_received > summary.delivered_up_to {
                let peer =
                    keys::summary_peer(&prefix, &key).ok_or_else(|| corrupt(&key, "bad summary key"))?;
                found.push((peer, summary));
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
        self.committer
            .call(Growth::Maintains, move |staged| writes::mark_delivered(staged, &user, &from, up_to))
    }

    /// Marks `peer`'s messages to `user` read up to `up_to`.
    ///
    /// Returns the new read watermark if it moved, for a read receipt.
    pub fn mark_read(&self, user: &Username, peer: &Username, up_to: MessageId) -> Result<Option<MessageId>> {
        let (user, peer) = (user.clone(), peer.clone());
        self.committer.call(Growth::Maintains, move |staged| writes::mark_read(staged, &user, &peer, up_to))
    }

    /// Records that `user`'s last session ended at `at`.
    pub fn set_last_seen(&self, user: &Username, at: UnixMillis) -> Result<()> {
        let (key, value) = (keys::last_seen(user), encode(&at));
        self.committer.call(Growth::Maintains, move |staged| {
            staged.insert(commit::TreeName::Chat, key, value);
            Ok(())
        })
    }

    /// When `user`'s last session ended, if one ever did.
    pub fn last_seen(&self, user: &Username) -> Result<Option<UnixMillis>> {
        let key = keys::last_seen(user);
        self.trees.chat.get(&key)?.map(|raw| decode(&key, &raw)).transpose()
    }

    /// The newest message id handed out (0 for an empty store).
    pub fn last_message_id(&self) -> Result<MessageId> {
        self.trees.chat.get(keys::LAST_ID)?.map_or(Ok(0), |raw| decode(keys::LAST_ID, &raw))
    }

    /// Forgets resume tokens expired at `now` and resend entries past the resend window (the
    /// store does this by itself every hour).
    pub fn prune(&self, now: UnixMillis) -> Result<Pruned> {
        prune::prune(&self.trees, now)
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.trees.db.size_on_disk()?)
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
