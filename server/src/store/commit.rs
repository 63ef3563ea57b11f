//! The committer: one thread applies every write, in groups, and makes each group durable
//! with a single log append before anyone hears that their write happened.
//!
//! A sync costs a good part of a millisecond whatever it carries, so durability per
//! message would cap the server at a few thousand messages a second, and a lock around
//! sled writes lets one stalled writer hold up everyone. Instead sessions queue operations
//! here; while one group is being synced the next one gathers, so groups grow with load.
//! Each group goes to the write-ahead log ([`super::wal`]) on disk, then to sled in memory
//! on the applier's thread ([`super::applier`]), which answers it once sled has it (the
//! answerer's thread writing the answers out); the
//! checkpointer ([`super::checkpoint`]) flushes sled and retires the log segments that
//! flush covers.
//!
//! What an answer means is the store's whole promise, so each failure is told apart:
//! - the disk is nearly full: operations that would grow the store are refused before they
//!   are staged (`StorageFull`: not stored), and accepted again once there is room;
//! - the group's record could not be written: every operation of the group is answered
//!   `NotStored`, and nothing of it reaches sled or any replay;
//! - the record was written but its sync failed, sled failed after the log took the group,
//!   or the log or the database was deleted: the outcome cannot be promised either way, so
//!   the group is not answered at all and the store fails as a whole (the server exits and
//!   its supervisor restarts it; the log's replay then settles what is on disk, and clients
//!   resend with their client ids, which the replay lets the store recognise).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tracing::{error, info};

use papo_protocol::{MessageId, Username};

use super::applier::{Applier, Applying, GroupWrites, Job, Unapplied};
use super::checkpoint::{Checkpoint, Checkpointer};
use super::fatal::Fatal;
use super::files::{self, Sentinel};
use super::records::{corrupt, decode, encode, GroupId, GroupLineRecord, MessageRecord, Summary};
use super::wal::{AppendError, Wal};
use super::{keys, Result, StoreError};

/// Most operations in one group, bounding a group's batch and latency.
const MAX_GROUP: usize = 4096;

/// The trees the committer writes.
#[derive(Debug, Clone)]
pub struct Trees {
    /// The database, for checkpoints.
    pub db: sled::Db,
    /// Messages and their bookkeeping.
    pub chat: sled::Tree,
    /// Accounts.
    pub users: sled::Tree,
    /// Resume tokens.
    pub tokens: sled::Tree,
}

/// Which tree a write goes to, as the log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TreeName {
    /// [`Trees::chat`].
    Chat,
    /// [`Trees::users`].
    Users,
    /// [`Trees::tokens`].
    Tokens,
}

impl TreeName {
    const ALL: [Self; 3] = [Self::Chat, Self::Users, Self::Tokens];

    fn index(self) -> usize {
        self as usize
    }
}

/// One write of a group: a new value, or `None` to remove the key.
pub(super) type Write = (TreeName, Vec<u8>, Option<Vec<u8>>);

impl Trees {
    /// The tree called `name`.
    pub fn tree(&self, name: TreeName) -> &sled::Tree {
        match name {
            TreeName::Chat => &self.chat,
            TreeName::Users => &self.users,
            TreeName::Tokens => &self.tokens,
        }
    }

    /// Applies a group's writes in memory.
    ///
    /// One by one, not as sled batches: a batch makes sled write out its buffers twice
    /// (`PageCache::pin_log` rolls the I/O buffer before and after), which woke its I/O
    /// threads for every group. Atomicity comes from the log instead: after a crash the whole
    /// group is replayed from it.
    pub(super) fn apply(&self, writes: &[Write]) -> Result<(), sled::Error> {
        for (tree, key, value) in writes {
            let tree = self.tree(*tree);
            match value {
                Some(value) => tree.insert(key.as_slice(), value.as_slice())?,
                None => tree.remove(key.as_slice())?,
            };
        }
        Ok(())
    }

    /// Applies one group read back from the log.
    pub fn replay(&self, record: &[u8]) -> Result<()> {
        let writes: Vec<Write> = decode(b"write-ahead log record", record)?;
        Ok(self.apply(&writes)?)
    }

    /// The commit number of the newest group sled holds, or has begun to apply: a group's
    /// writes go in key order, so a crash can leave it partly applied with its number in;
    /// the replay from the last checkpoint applies it whole again.
    pub fn applied_commit(&self) -> Result<u64> {
        self.chat.get(keys::COMMIT)?.map_or(Ok(0), |raw| decode(keys::COMMIT, &raw))
    }

    /// The newest message id handed out.
    pub fn last_id(&self) -> Result<MessageId> {
        self.chat.get(keys::LAST_ID)?.map_or(Ok(0), |raw| decode(keys::LAST_ID, &raw))
    }
}

/// Writes of the current group, visible to later operations of the same group before they
/// reach sled.
///
/// An operation must finish every read that can fail before its first change, so that an
/// error leaves the group as the operation found it.
pub struct Staged<'a> {
    trees: &'a Trees,
    /// Durable groups sled may not have yet: they come before the trees.
    unapplied: &'a Unapplied,
    /// By tree ([`TreeName::index`]), so that a lookup borrows its key.
    writes: [FxHashMap<Vec<u8>, Option<Vec<u8>>>; 3],
    /// Decoded conversation summaries, changed in place by the group's operations and
    /// encoded once at the end (many messages of a group share a conversation), with
    /// whether they changed: a receipt that moves nothing writes nothing.
    summaries: FxHashMap<Vec<u8>, (Summary, bool)>,
    /// Keys of the messages and group lines this group stores, for lookups by position.
    new_messages: BTreeSet<Vec<u8>>,
    /// The newest message id handed out, including this group's.
    pub last_id: MessageId,
}

impl<'a> Staged<'a> {
    fn new(trees: &'a Trees, unapplied: &'a Unapplied, last_id: MessageId) -> Self {
        Self {
            trees,
            unapplied,
            writes: Default::default(),
            summaries: FxHashMap::default(),
            new_messages: BTreeSet::new(),
            last_id,
        }
    }

    /// The value under `key` in `tree`, including this group's staged writes.
    pub fn get(&self, tree: TreeName, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.writes[tree.index()].get(key) {
            Some(staged) => Ok(staged.clone()),
            None => self.durable(tree, key),
        }
    }

    /// The value under `key` in `tree` as of the last durable group.
    fn durable(&self, tree: TreeName, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.unapplied.get(tree, key) {
            Some(value) => Ok(value.cloned()),
            None => Ok(self.trees.tree(tree).get(key)?.map(|v| v.to_vec())),
        }
    }

    /// Loads `owner`'s summary of the conversation with `peer`, so that [`Self::summary`]
    /// cannot fail.
    pub fn load_summary(&mut self, owner: &Username, peer: &Username) -> Result<()> {
        let key = keys::summary(owner, peer);
        if self.summaries.contains_key(&key) {
            return Ok(());
        }
        let stored = match self.durable(TreeName::Chat, &key)? {
            Some(raw) => decode(&key, &raw)?,
            None => Summary::default(),
        };
        self.summaries.insert(key, (stored, false));
        Ok(())
    }

    /// `owner`'s summary of the conversation with `peer`, loaded before.
    pub fn peek_summary(&self, owner: &Username, peer: &Username) -> &Summary {
        &self.summaries.get(&keys::summary(owner, peer)).expect("summaries are loaded before they are read").0
    }

    /// `owner`'s summary of the conversation with `peer`, loaded before, to change.
    pub fn summary(&mut self, owner: &Username, peer: &Username) -> &mut Summary {
        let (summary, changed) = self
            .summaries
            .get_mut(&keys::summary(owner, peer))
            .expect("summaries are loaded before they change");
        *changed = true;
        summary
    }

    /// The newest message between `a` and `b` with an id up to `up_to`, this group's included.
    pub fn message_at_or_before(
        &self,
        a: &Username,
        b: &Username,
        up_to: MessageId,
    ) -> Result<Option<(MessageId, MessageRecord)>> {
        self.newest_in(&keys::message(a, b, 0), &keys::message(a, b, up_to))
    }

    /// The newest line of `group` with an id up to `up_to`, this group's included.
    pub fn group_line_at_or_before(
        &self,
        group: GroupId,
        up_to: MessageId,
    ) -> Result<Option<(MessageId, GroupLineRecord)>> {
        self.newest_in(&keys::group_line(group, 0), &keys::group_line(group, up_to))
    }

    /// The stored message with the greatest key from `first` to `last`, and its id.
    fn newest_in<T: serde::de::DeserializeOwned>(
        &self,
        first: &[u8],
        last: &[u8],
    ) -> Result<Option<(MessageId, T)>> {
        let range = (Bound::Included(first.to_vec()), Bound::Included(last.to_vec()));
        let staged = self.new_messages.range::<Vec<u8>, _>(range.clone()).next_back().cloned();
        let key = match staged {
            Some(key) => Some(key),
            None => self.newest_durable_in(first, last)?,
        };
        let Some(key) = key else { return Ok(None) };
        let raw = self.get(TreeName::Chat, &key)?.ok_or_else(|| corrupt(&key, "vanished"))?;
        let id = keys::trailing_id(&key).ok_or_else(|| corrupt(&key, "short key"))?;
        Ok(Some((id, decode(&key, &raw)?)))
    }

    /// The greatest key from `first` to `last` in the chat tree with a value as of the last
    /// durable group.
    fn newest_durable_in(&self, first: &[u8], last: &[u8]) -> Result<Option<Vec<u8>>> {
        let unapplied = self
            .unapplied
            .range(TreeName::Chat, first, Bound::Included(last))
            .map(|(key, _)| key.to_vec())
            .collect::<BTreeSet<_>>();
        // Unapplied keys, newest first, until one still has a value.
        let from_log = unapplied
            .into_iter()
            .rev()
            .find(|key| self.unapplied.get(TreeName::Chat, key).is_some_and(|value| value.is_some()));
        // sled's, skipping what an unapplied group removed.
        let mut from_sled = None;
        for entry in self.trees.chat.range(first..=last).rev() {
            let (key, _) = entry?;
            if from_log.as_deref().is_some_and(|newest| key.as_ref() <= newest) {
                break;
            }
            if !matches!(self.unapplied.get(TreeName::Chat, &key), Some(None)) {
                from_sled = Some(key.to_vec());
                break;
            }
        }
        Ok(from_sled.or(from_log))
    }

    /// Every key under `prefix` in `tree` with its value, this group's writes included, in
    /// key order.
    pub fn scan_prefix(&self, tree: TreeName, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut found = BTreeMap::new();
        for entry in self.trees.tree(tree).scan_prefix(prefix) {
            let (key, value) = entry?;
            found.insert(key.to_vec(), value.to_vec());
        }
        let after_prefix = prefix_end(prefix);
        let end = after_prefix.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        for (key, value) in self.unapplied.range(tree, prefix, end) {
            match value {
                Some(value) => found.insert(key.to_vec(), value.clone()),
                None => found.remove(key),
            };
        }
        for (key, value) in &self.writes[tree.index()] {
            if !key.starts_with(prefix) {
                continue;
            }
            match value {
                Some(value) => found.insert(key.clone(), value.clone()),
                None => found.remove(key),
            };
        }
        Ok(found.into_iter().collect())
    }

    /// Stages an insert; a later write of the same key in the group replaces it.
    pub fn insert(&mut self, tree: TreeName, key: Vec<u8>, value: Vec<u8>) {
        self.writes[tree.index()].insert(key, Some(value));
    }

    /// Stages a new message under `key`.
    pub fn insert_message(&mut self, key: Vec<u8>, record: &MessageRecord) {
        self.new_messages.insert(key.clone());
        self.insert(TreeName::Chat, key, encode(record));
    }

    /// Stages a new group line under `key`.
    pub fn insert_group_line(&mut self, key: Vec<u8>, record: &GroupLineRecord) {
        self.new_messages.insert(key.clone());
        self.insert(TreeName::Chat, key, encode(record));
    }

    /// Stages a removal; a later write of the same key in the group replaces it.
    pub fn remove(&mut self, tree: TreeName, key: Vec<u8>) {
        self.writes[tree.index()].insert(key, None);
    }

    /// The keys this group writes so far, in order: what an operation costs.
    #[cfg(test)]
    pub fn keys_written(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self.writes.iter().flat_map(|tree| tree.keys().cloned()).collect();
        keys.extend(self.summaries.iter().filter(|(_, (_, changed))| *changed).map(|(key, _)| key.clone()));
        keys.sort();
        keys
    }

    /// The group's writes, with the group's commit number and newest id.
    fn into_writes(self, commit: u64, last_id_moved: bool) -> (GroupWrites, MessageId) {
        let mut writes: Vec<Write> = TreeName::ALL
            .into_iter()
            .zip(self.writes)
            .flat_map(|(tree, written)| written.into_iter().map(move |(key, value)| (tree, key, value)))
            .collect();
        for (key, (summary, changed)) in self.summaries {
            if changed {
                writes.push((TreeName::Chat, key, Some(encode(&summary))));
            }
        }
        // A group that only moves the newest id (an import keeping the exported store's) is
        // logged too, or the id would go back at the next start.
        if !writes.is_empty() || last_id_moved {
            if last_id_moved {
                writes.push((TreeName::Chat, keys::LAST_ID.to_vec(), Some(encode(&self.last_id))));
            }
            writes.push((TreeName::Chat, keys::COMMIT.to_vec(), Some(encode(&commit))));
        }
        (GroupWrites::new(writes), self.last_id)
    }
}

/// The first key after every key that starts with `prefix`, if there is one.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// How an operation's group ended, as its answer learns it.
#[derive(Debug, Clone)]
pub enum GroupOutcome {
    /// Durable.
    Durable,
    /// Refused or not written: nothing of it is stored.
    NotStored(Failure),
}

/// Why a group, or an operation, was not stored; cheap to hand to every operation.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The disk is nearly full.
    StorageFull {
        /// The data directory.
        dir: PathBuf,
        /// Bytes left.
        free: u64,
        /// Bytes the store keeps free.
        reserve: u64,
    },
    /// The log could not take the group.
    NotWritten(String),
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::StorageFull { dir, free, reserve } => StoreError::StorageFull { dir, free, reserve },
            Failure::NotWritten(reason) => StoreError::NotStored(reason),
        }
    }
}

/// Whether an operation makes the store bigger (refused while the disk is nearly full) or
/// only keeps it current (a watermark, a revoked token: still accepted from the reserve).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// A message, an account, a token.
    Grows,
    /// Overwrites or removes what exists.
    Maintains,
}

/// What becomes of an operation's answer: called once the operation's group is settled
/// (and, if stored, in sled, before any later group is), on one of the store's threads, so
/// it must never block. Whatever it writes to connections, or wakes a thread that may
/// write, goes through [`Afterwards`], which keeps every group's writes after the groups
/// before it. Dropped uncalled if the store fails first.
pub type Then<T> = Box<dyn FnOnce(Result<T>, &mut Afterwards) + Send>;

/// Work that a group's answers leave for after the last of them is known, run in the order
/// it was added: a session answered several times in one group writes them out together.
///
/// Each task runs while sled holds the group and nothing after it, so what it reads (a
/// group's members, say) is as of the group; it returns its writes to the connections,
/// which may run later and on another thread, but in order.
#[derive(Default)]
pub struct Afterwards(Vec<Box<dyn FnOnce() -> Writes + Send>>);

impl Afterwards {
    /// Runs `task` once every answer of the group is given.
    pub fn add(&mut self, task: impl FnOnce() -> Writes + Send + 'static) {
        self.0.push(Box::new(task));
    }

    /// Runs the tasks; their writes, in order.
    pub(super) fn prepare(self) -> Writes {
        Writes(self.0.into_iter().flat_map(|task| task().0).collect())
    }
}

/// Writes to connections that a group's answers leave, in order.
#[derive(Default)]
pub struct Writes(Vec<Box<dyn FnOnce() + Send>>);

impl Writes {
    /// `write`, to run once the writes before it have.
    pub fn new(write: impl FnOnce() + Send + 'static) -> Self {
        Self(vec![Box::new(write)])
    }

    pub(super) fn run(self) {
        for write in self.0 {
            write();
        }
    }
}

/// How an operation is answered once its group's outcome is known.
pub(super) type Settle = Box<dyn FnOnce(GroupOutcome, &mut Afterwards) + Send>;

/// An operation queued for the committer, with where its typed answer goes.
trait Operation: Send {
    fn growth(&self) -> Growth;
    /// Stages the operation; returns how to answer once the group's outcome is known.
    fn stage(self: Box<Self>, staged: &mut Staged<'_>) -> Settle;
    /// Refuses the operation unstaged; returns how to answer, in its group's turn.
    fn refuse(self: Box<Self>, failure: Failure) -> Settle;
}

struct Typed<T, F> {
    growth: Growth,
    work: F,
    then: Then<T>,
}

impl<T, F> Operation for Typed<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Staged<'_>) -> Result<T> + Send,
{
    fn growth(&self) -> Growth {
        self.growth
    }

    fn stage(self: Box<Self>, staged: &mut Staged<'_>) -> Settle {
        let Self { work, then, .. } = *self;
        let answer = work(staged);
        Box::new(move |outcome, afterwards| {
            let answer = match outcome {
                GroupOutcome::Durable => answer,
                GroupOutcome::NotStored(failure) => Err(failure.into()),
            };
            then(answer, afterwards);
        })
    }

    fn refuse(self: Box<Self>, failure: Failure) -> Settle {
        let then = self.then;
        Box::new(move |_, afterwards| then(Err(failure.into()), afterwards))
    }
}

/// Where a queued operation's answer arrives, once its group is settled.
pub type Answer<T> = Receiver<Result<T>>;

/// Everything the committer thread needs to start.
pub struct Start {
    /// The trees to write.
    pub trees: Trees,
    /// The log, at its new segment.
    pub wal: Wal,
    /// The newest message id handed out.
    pub last_id: MessageId,
    /// The commit number of the newest group applied.
    pub last_commit: u64,
    /// Sync spacing.
    pub gap: Duration,
    /// Free bytes to keep on the data directory's disk.
    pub reserve: u64,
    /// The data directory.
    pub dir: PathBuf,
    /// The database file, watched for deletion.
    pub db_file: Sentinel,
    /// Where the store's failure is raised.
    pub fatal: Arc<Fatal>,
}

/// The committer thread and the queue into it.
pub struct Committer {
    queue: Option<Sender<Box<dyn Operation>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Committer")
    }
}

impl Committer {
    /// Starts the committer and its checkpointer.
    pub fn start(start: Start) -> Result<Self> {
        let checkpointer =
            Checkpointer::start(start.trees.db.clone(), start.dir.clone(), Arc::clone(&start.fatal))?;
        let applier =
            Applier::start(start.trees.clone(), start.last_commit, checkpointer, Arc::clone(&start.fatal))?;
        let (queue, jobs) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("committer".into())
            .spawn(move || run(start, applier, &jobs))
            .map_err(|e| StoreError::Thread("the committer", e))?;
        Ok(Self { queue: Some(queue), thread: Some(thread) })
    }

    /// Queues `work`; its answer arrives once its group is settled.
    pub fn submit<T, F>(&self, growth: Growth, work: F) -> Result<Answer<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Staged<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        // A session that went away no longer needs its answer.
        self.submit_then(growth, work, answer_to(reply))?;
        Ok(answer)
    }

    /// Queues `work`; `then` gets its answer once its group is settled (see [`Then`]).
    pub fn submit_then<T, F>(&self, growth: Growth, work: F, then: Then<T>) -> Result<()>
    where
        T: Send + 'static,
        F: FnOnce(&mut Staged<'_>) -> Result<T> + Send + 'static,
    {
        let queue = self.queue.as_ref().ok_or(StoreError::Stopped)?;
        queue.send(Box::new(Typed { growth, work, then })).map_err(|_| StoreError::Stopped)
    }

    /// Runs `work` and waits until its group is settled.
    pub fn call<T, F>(&self, growth: Growth, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Staged<'_>) -> Result<T> + Send + 'static,
    {
        wait(&self.submit(growth, work)?)
    }
}

/// Hands an answer to whoever waits on the other end of `reply`, if anyone still does, once
/// the groups before are written out: the thread it wakes may write to connections itself
/// (a removed member's notice, say), and must not overtake them.
pub fn answer_to<T: Send + 'static>(reply: SyncSender<Result<T>>) -> Then<T> {
    Box::new(move |answer, afterwards| {
        afterwards.add(move || {
            Writes::new(move || {
                let _ = reply.send(answer);
            })
        })
    })
}

/// Waits for a queued operation's answer.
pub fn wait<T>(answer: &Answer<T>) -> Result<T> {
    // No answer ever comes if the store failed: the operation was dropped unanswered.
    answer.recv().map_err(|_| StoreError::Stopped)?
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has finished what was queued.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Raises the store's failure if the thread named by the third field ends any way but a
/// clean stop (the second field, set when it stops).
pub(super) struct UnlessStopped<'a>(pub &'a Fatal, pub bool, pub &'static str);

impl Drop for UnlessStopped<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.raise(&StoreError::Thread(self.2, std::io::Error::other("it panicked")));
        }
    }
}

fn run(start: Start, mut applier: Applier, jobs: &Receiver<Box<dyn Operation>>) {
    let Start { trees, mut wal, mut last_id, mut last_commit, gap, reserve, dir, db_file, fatal } = start;
    let mut guard = UnlessStopped(&fatal, false, "the committer");
    let mut stats = Stats::default();
    let mut next_sync = Instant::now();
    let mut pace = Pace::Idle;
    let mut queued = None;
    let mut room = Room::new(dir.clone(), reserve);
    let mut unapplied = Unapplied::default();
    while let Some(first) = queued.take().or_else(|| jobs.recv().ok()) {
        if pace == Pace::Crowded {
            // Whatever arrives during the rest of the gap joins this group.
            thread::sleep(next_sync.saturating_duration_since(Instant::now()));
        }
        let group: Vec<_> = std::iter::once(first).chain(jobs.try_iter().take(MAX_GROUP - 1)).collect();
        let size = group.len();
        if let Err(e) = wal.check_linked().and_then(|()| db_file.check()) {
            // Nothing written now would survive: stop before acknowledging anything.
            fatal.raise(&e);
            guard.1 = true;
            return;
        }
        let full = room.check();
        let staging = Instant::now();
        unapplied.forget_applied(applier.applied());
        let mut staged = Staged::new(&trees, &unapplied, last_id);
        let mut settles = Vec::with_capacity(size);
        for operation in group {
            match (&full, operation.growth()) {
                // Answered in the group's turn, after the groups before it.
                (Some(failure), Growth::Grows) => settles.push(operation.refuse(failure.clone())),
                _ => settles.push(operation.stage(&mut staged)),
            }
        }
        let moved = staged.last_id != last_id;
        let (writes, group_last_id) = staged.into_writes(last_commit + 1, moved);
        let syncing = Instant::now();
        // Logged before sled sees any of it: sled may write out part of a group at any time
        // (its inserts are not atomic), and only a group the log holds whole is completed by
        // the replay after a crash. A group that changed nothing (a watermark that did not
        // move) has nothing to log: earlier groups are answered before it.
        let (outcome, logged) = if writes.writes().is_empty() {
            (GroupOutcome::Durable, None)
        } else {
            match wal.append(last_commit + 1, &encode(writes.writes())) {
                Ok(()) => {
                    next_sync = Instant::now() + gap;
                    last_commit += 1;
                    last_id = group_last_id;
                    stats.count_writes(writes.writes());
                    unapplied.push(last_commit, writes.clone());
                    (GroupOutcome::Durable, Some((last_commit, writes)))
                }
                Err(AppendError::NotWritten(e)) => {
                    error!(error = %e, segment = %wal.current().display(), "cannot write a group of writes to the log; it is not stored");
                    (GroupOutcome::NotStored(room.classify(&e)), None)
                }
                Err(AppendError::SyncFailed(e)) => {
                    // fsyncgate: after a failed sync the kernel may have dropped the pages,
                    // so no retry could tell what is on disk.
                    fatal.raise(&StoreError::SyncFailed { path: wal.current(), source: e });
                    guard.1 = true;
                    return;
                }
            }
        };
        stats.record(size, [syncing - staging, syncing.elapsed()]);
        // Whether writes arrived while this group was synced, before its answers let the
        // same clients send again.
        queued = jobs.try_recv().ok();
        pace = Pace::after(size, queued.is_some());
        if !applier.hand_over(Job::Group { logged, settles, outcome }, pace == Pace::Idle) {
            // The applier failed (and raised the store's failure): nothing more is answered.
            guard.1 = true;
            return;
        }
        match wal.rotate_if_needed() {
            Ok(Some(left)) => {
                let done = Checkpoint { segment: left, commit: last_commit, last_id };
                if !applier.hand_over(Job::Retire(done), false) {
                    guard.1 = true;
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                error!(error = %e, "cannot start a new write-ahead log segment; retrying after the next group")
            }
        }
    }
    guard.1 = true;
    let applying = applier.stop(Checkpoint { segment: wal.current(), commit: last_commit, last_id });
    stats.log(applying);
}

/// Whether the next group waits out the rest of the commit gap.
///
/// The gap is there for load: syncs issued back to back make this kind of host stall some
/// of them for milliseconds, and waiting lets a group gather what arrives meanwhile. A lone
/// write with nothing behind it (a conversation going back and forth) gains nothing from
/// waiting, so it is synced at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// The last group was alone and nothing waited behind it: sync the next one at once.
    Idle,
    /// The last group had company, or writes arrived while it was synced.
    Crowded,
}

impl Pace {
    /// The pace after a group of `size` operations, with whether another was queued by the
    /// time it was durable.
    fn after(size: usize, queued: bool) -> Self {
        if size > 1 || queued {
            Self::Crowded
        } else {
            Self::Idle
        }
    }
}

/// Whether the data directory's disk has room for growth, with the transitions logged.
struct Room {
    dir: PathBuf,
    reserve: u64,
    full: bool,
}

impl Room {
    fn new(dir: PathBuf, reserve: u64) -> Self {
        Self { dir, reserve, full: false }
    }

    /// The failure to give growing operations now, if the disk is nearly full.
    fn check(&mut self) -> Option<Failure> {
        if self.reserve == 0 {
            return None;
        }
        let free = match files::free_space(&self.dir) {
            Ok(free) => free,
            Err(e) => {
                error!(error = %e, data_dir = %self.dir.display(), "cannot read the free space of the data directory's disk");
                return None;
            }
        };
        let full = free < self.reserve;
        if full != self.full {
            self.full = full;
            if full {
                error!(
                    data_dir = %self.dir.display(),
                    free_bytes = free,
                    reserve_bytes = self.reserve,
                    "the data directory's disk is full: new messages, accounts and saved sessions are refused (nothing is lost; reading works) until space is freed"
                );
            } else {
                info!(data_dir = %self.dir.display(), free_bytes = free, "the data directory's disk has room again: storing new messages");
            }
        }
        full.then(|| Failure::StorageFull { dir: self.dir.clone(), free, reserve: self.reserve })
    }

    /// The failure a log write's error means for its senders.
    fn classify(&self, error: &std::io::Error) -> Failure {
        if error.raw_os_error() == Some(libc::ENOSPC) {
            Failure::StorageFull { dir: self.dir.clone(), free: 0, reserve: self.reserve }
        } else {
            Failure::NotWritten(error.to_string())
        }
    }
}

/// Totals for the shutdown log line, which tells how well grouping works.
struct Stats {
    groups: u64,
    operations: u64,
    /// Time staging and syncing the log.
    phases: [Duration; 2],
    /// The slowest sync.
    slowest: Duration,
    /// Syncs slower than two milliseconds, the latency budget of a message.
    over_2ms: u64,
    /// Writes logged (and so put into sled), by tree, and the chat tree's by key kind
    /// (its first byte, see [`keys`]): what each message costs the applier.
    writes: [u64; 3],
    chat_writes_by_kind: [u64; 256],
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            groups: 0,
            operations: 0,
            phases: [Duration::ZERO; 2],
            slowest: Duration::ZERO,
            over_2ms: 0,
            writes: [0; 3],
            chat_writes_by_kind: [0; 256],
        }
    }
}

impl Stats {
    fn record(&mut self, operations: usize, phases: [Duration; 2]) {
        self.groups += 1;
        self.operations += operations as u64;
        for (total, phase) in self.phases.iter_mut().zip(phases) {
            *total += phase;
        }
        self.slowest = self.slowest.max(phases[1]);
        self.over_2ms += u64::from(phases[1] > Duration::from_millis(2));
    }

    fn count_writes(&mut self, writes: &[Write]) {
        for (tree, key, _) in writes {
            self.writes[tree.index()] += 1;
            if *tree == TreeName::Chat {
                self.chat_writes_by_kind[usize::from(key.first().copied().unwrap_or_default())] += 1;
            }
        }
    }

    /// The writes by kind, for the log: `m=…` per chat key kind, then the other trees.
    fn writes_by_kind(&self) -> String {
        let chat = self.chat_writes_by_kind.iter().enumerate().filter(|(_, count)| **count > 0).map(
            |(kind, count)| {
                format!("{}={count}", char::from(u8::try_from(kind).unwrap_or_default()).escape_default())
            },
        );
        let others = [
            ("users", self.writes[TreeName::Users.index()]),
            ("tokens", self.writes[TreeName::Tokens.index()]),
        ]
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|(tree, count)| format!("{tree}={count}"));
        chat.chain(others).collect::<Vec<_>>().join(",")
    }

    /// Logs the totals, with the time the applier spent putting groups into sled and
    /// answering them.
    fn log(&self, applying: Applying) {
        let groups = self.groups.max(1) as f64;
        let mean_ms = |phase: Duration| phase.as_secs_f64() * 1000.0 / groups;
        let writes: u64 = self.writes.iter().sum();
        info!(
            operations = self.operations,
            groups = self.groups,
            operations_per_group = format!("{:.1}", self.operations as f64 / groups),
            writes,
            writes_per_operation = format!("{:.2}", writes as f64 / self.operations.max(1) as f64),
            writes_by_kind = self.writes_by_kind(),
            stage_ms = format!("{:.3}", mean_ms(self.phases[0])),
            apply_ms = format!("{:.3}", mean_ms(applying.sled + applying.answering)),
            sled_ms = format!("{:.3}", mean_ms(applying.sled)),
            answer_ms = format!("{:.3}", mean_ms(applying.answering)),
            sync_ms = format!("{:.3}", mean_ms(self.phases[1])),
            slowest_commit_ms = format!("{:.3}", self.slowest.as_secs_f64() * 1000.0),
            commits_over_2ms = self.over_2ms,
            "committer stopped"
        );
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::{GroupWrites, Pace, Staged, TreeName, Trees, Unapplied, Write};

    /// The three trees in a temporary sled database.
    pub(in crate::store) fn trees() -> Trees {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = |name: &str| db.open_tree(name).unwrap();
        Trees { chat: tree("chat"), users: tree("users"), tokens: tree("tokens"), db }
    }

    fn write(key: &str, value: Option<&str>) -> Write {
        (TreeName::Chat, key.as_bytes().to_vec(), value.map(|value| value.as_bytes().to_vec()))
    }

    #[test]
    fn staging_reads_durable_groups_that_sled_does_not_have_yet() {
        let trees = trees();
        trees
            .apply(&[write("m1", Some("one")), write("m3", Some("three")), write("x", Some("old"))])
            .unwrap();
        let mut unapplied = Unapplied::default();
        let group = |writes: &[Write]| GroupWrites::new(writes.to_vec());
        unapplied.push(1, group(&[write("x", Some("newer")), write("m4", Some("four")), write("m3", None)]));
        unapplied.push(2, group(&[write("m4", None), write("m2", Some("two"))]));
        let staged = Staged::new(&trees, &unapplied, 0);
        assert_eq!(staged.get(TreeName::Chat, b"x").unwrap().as_deref(), Some(&b"newer"[..]));
        assert_eq!(staged.get(TreeName::Chat, b"m3").unwrap(), None, "removed by group 1");
        assert_eq!(staged.get(TreeName::Chat, b"m1").unwrap().as_deref(), Some(&b"one"[..]));
        // m4 came and went in the log, m3 went: the newest message is m2, from group 2.
        assert_eq!(staged.newest_durable_in(b"m0", b"m9").unwrap().as_deref(), Some(&b"m2"[..]));
        let keys: Vec<Vec<u8>> =
            staged.scan_prefix(TreeName::Chat, b"m").unwrap().into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, [b"m1".to_vec(), b"m2".to_vec()]);

        unapplied.forget_applied(1);
        let staged = Staged::new(&trees, &unapplied, 0);
        assert_eq!(
            staged.get(TreeName::Chat, b"x").unwrap().as_deref(),
            Some(&b"old"[..]),
            "a forgotten group is not read"
        );
        assert_eq!(staged.newest_durable_in(b"m0", b"m9").unwrap().as_deref(), Some(&b"m3"[..]));
    }

    #[test]
    fn a_group_keeps_the_later_of_two_writes_of_a_key_and_reads_by_tree() {
        let token = (TreeName::Tokens, b"m5".to_vec(), Some(b"token".to_vec()));
        let writes = GroupWrites::new(vec![
            write("s", Some("staged")),
            token,
            write("m2", Some("two")),
            write("s", Some("summary")),
        ]);
        let keys: Vec<&[u8]> = writes.writes().iter().map(|(_, key, _)| key.as_slice()).collect();
        assert_eq!(keys, [&b"m2"[..], b"s", b"m5"], "sorted by tree, then key, each key once");
        let mut unapplied = Unapplied::default();
        unapplied.push(1, writes);
        assert_eq!(unapplied.get(TreeName::Chat, b"s"), Some(Some(&b"summary".to_vec())), "the later write");
        assert_eq!(unapplied.get(TreeName::Chat, b"m5"), None, "m5 is the tokens tree's");
        let chat: Vec<&[u8]> =
            unapplied.range(TreeName::Chat, b"m", std::ops::Bound::Unbounded).map(|(key, _)| key).collect();
        assert_eq!(chat, [&b"m2"[..], b"s"], "an open range ends with its tree");
        let up_to_s: Vec<&[u8]> = unapplied
            .range(TreeName::Chat, b"", std::ops::Bound::Excluded(b"s"))
            .map(|(key, _)| key)
            .collect();
        assert_eq!(up_to_s, [&b"m2"[..]]);
    }

    #[test]
    fn only_a_lone_write_with_nothing_behind_it_skips_the_gap() {
        assert_eq!(Pace::after(1, false), Pace::Idle);
        assert_eq!(Pace::after(1, true), Pace::Crowded, "a write was waiting: syncs come back to back");
        assert_eq!(Pace::after(2, false), Pace::Crowded, "writes arrive faster than syncs");
        assert_eq!(Pace::after(4096, true), Pace::Crowded);
    }
}
