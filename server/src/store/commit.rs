//! The committer: one thread applies every write, in groups, and makes each group durable
//! with a single log append before anyone hears that their write happened.
//!
//! A sync costs a good part of a millisecond whatever it carries, so durability per
//! message would cap the server at a few thousand messages a second, and a lock around
//! sled writes lets one stalled writer hold up everyone. Instead sessions queue operations
//! here; while one group is being synced the next one gathers, so groups grow with load.
//! Each group goes to the write-ahead log ([`super::wal`]) on disk, then to sled in memory;
//! a checkpointer thread flushes sled and retires the log segments that flush covers.

use std::collections::hash_map::{Entry, HashMap};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{error, info};

use papo_protocol::Username;

use super::wal::{self, Wal};
use super::{decode, encode, keys, Answer, StoreError, Summary};

/// Most operations in one group, bounding a group's batch and latency.
const MAX_GROUP: usize = 4096;

/// A unit of work for the committer: stage writes, return the answer.
pub type Work = Box<dyn FnOnce(&mut Staged<'_>) -> Result<Answer, StoreError> + Send>;

/// Where an answer goes once its group is durable.
pub type Reply = Sender<Result<Answer, StoreError>>;

/// An operation and where its answer goes.
struct Job {
    work: Work,
    reply: Reply,
}

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TreeName {
    /// [`Trees::chat`].
    Chat,
    /// [`Trees::users`].
    Users,
    /// [`Trees::tokens`].
    Tokens,
}

/// One write of a group: a new value, or `None` to remove the key.
type Write = (TreeName, Vec<u8>, Option<Vec<u8>>);

impl Trees {
    fn tree(&self, name: TreeName) -> &sled::Tree {
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
    fn apply(&self, writes: &[Write]) -> Result<(), sled::Error> {
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
    pub fn replay(&self, record: &[u8]) -> Result<(), StoreError> {
        let writes: Vec<Write> = decode(b"write-ahead log record", record)?;
        Ok(self.apply(&writes)?)
    }
}

/// Writes of the current group, visible to later operations of the same group before they
/// reach sled.
pub struct Staged<'a> {
    trees: &'a Trees,
    writes: HashMap<(TreeName, Vec<u8>), Option<Vec<u8>>>,
    /// Decoded conversation summaries, changed in place by the group's operations and
    /// encoded once at the end (many messages of a group share a conversation).
    summaries: HashMap<Vec<u8>, Summary>,
    /// The newest message id handed out.
    pub last_id: &'a mut u64,
}

impl<'a> Staged<'a> {
    /// The value under `key` in `tree`, including this group's staged writes.
    pub fn get(&self, tree: TreeName, key: &[u8]) -> Result<Option<Vec<u8>>, sled::Error> {
        match self.writes.get(&(tree, key.to_vec())) {
            Some(staged) => Ok(staged.clone()),
            None => Ok(self.trees.tree(tree).get(key)?.map(|v| v.to_vec())),
        }
    }

    /// `owner`'s summary of the conversation with `peer`, to read or change.
    pub fn summary(&mut self, owner: &Username, peer: &Username) -> Result<&mut Summary, StoreError> {
        let key = keys::summary(owner, peer);
        let summary = match self.summaries.entry(key) {
            Entry::Occupied(cached) => cached.into_mut(),
            Entry::Vacant(missing) => {
                let stored = match self.trees.chat.get(missing.key())? {
                    Some(raw) => decode(missing.key(), &raw)?,
                    None => Summary::default(),
                };
                missing.insert(stored)
            }
        };
        Ok(summary)
    }

    /// Stages an insert; a later write of the same key in the group replaces it.
    pub fn insert(&mut self, tree: TreeName, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert((tree, key), Some(value));
    }

    /// Stages a removal; a later write of the same key in the group replaces it.
    pub fn remove(&mut self, tree: TreeName, key: Vec<u8>) {
        self.writes.insert((tree, key), None);
    }

    /// Reads of ranges go straight to sled; callers only range over data older than the
    /// group (a conversation's messages), which staged writes never change.
    pub fn chat(&self) -> &'a sled::Tree {
        &self.trees.chat
    }

    fn into_writes(self) -> Vec<Write> {
        let mut writes: Vec<Write> =
            self.writes.into_iter().map(|((tree, key), value)| (tree, key, value)).collect();
        for (key, summary) in self.summaries {
            writes.push((TreeName::Chat, key, Some(encode(&summary))));
        }
        writes
    }
}

/// The committer thread and the queue into it.
pub struct Committer {
    queue: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Committer")
    }
}

impl Committer {
    /// Starts the committer over `trees`, logging to `wal`, handing out ids after `last_id`
    /// and leaving at least `gap` between the end of one sync and the start of the next.
    pub fn start(trees: Trees, wal: Wal, last_id: u64, gap: Duration) -> std::io::Result<Self> {
        let checkpointer = Checkpointer::start(trees.db.clone())?;
        let (queue, jobs) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("committer".into())
            .spawn(move || run(&trees, wal, checkpointer, last_id, gap, &jobs))?;
        Ok(Self { queue: Some(queue), thread: Some(thread) })
    }

    /// Queues `work`; its answer arrives on `reply` once durable.
    pub fn submit(&self, work: Work, reply: Reply) -> Result<(), StoreError> {
        let queue = self.queue.as_ref().ok_or(StoreError::Stopped)?;
        queue.send(Job { work, reply }).map_err(|_| StoreError::Stopped)
    }

    /// Runs `work` and waits until it is durable.
    pub fn call(&self, work: Work) -> Result<Answer, StoreError> {
        let (reply, answer) = mpsc::channel();
        self.submit(work, reply)?;
        answer.recv().map_err(|_| StoreError::Stopped)?
    }
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

fn run(
    trees: &Trees,
    mut wal: Wal,
    checkpointer: Checkpointer,
    mut last_id: u64,
    gap: Duration,
    jobs: &Receiver<Job>,
) {
    let mut stats = Stats::default();
    let mut next_sync = Instant::now();
    while let Ok(first) = jobs.recv() {
        // Whatever arrives during the rest of the gap joins this group.
        thread::sleep(next_sync.saturating_duration_since(Instant::now()));
        let group: Vec<Job> = std::iter::once(first).chain(jobs.try_iter().take(MAX_GROUP - 1)).collect();
        let size = group.len();
        let (works, replies): (Vec<Work>, Vec<Reply>) =
            group.into_iter().map(|job| (job.work, job.reply)).unzip();
        let staging = Instant::now();
        let mut staged =
            Staged { trees, writes: HashMap::new(), summaries: HashMap::new(), last_id: &mut last_id };
        let answers: Vec<_> = works.into_iter().map(|work| work(&mut staged)).collect();
        let writes = staged.into_writes();
        let syncing = Instant::now();
        // Logged before sled sees any of it: sled may write out part of a group at any time
        // (its inserts are not atomic), and only a group the log holds whole is completed by
        // the replay after a crash. A group that changed nothing (a flush, a watermark that
        // did not move) has nothing to log: earlier groups were synced before their answers.
        let logged = match writes.is_empty() {
            true => Ok(()),
            false => wal.append(&encode(&writes)).inspect(|()| next_sync = Instant::now() + gap),
        };
        let applying = Instant::now();
        let failure = match logged {
            Ok(()) => trees.apply(&writes).err().map(|e| format!("logged, but sled failed: {e}")),
            Err(e) => Some(e.to_string()),
        };
        stats.record(size, [syncing - staging, applying.elapsed(), applying - syncing]);
        if let Some(e) = &failure {
            // Nothing of this group may be acknowledged; clients retry.
            error!(error = %e, "cannot make a group of writes durable");
        }
        for (reply, answer) in replies.into_iter().zip(answers) {
            let answer = match &failure {
                None => answer,
                Some(e) => Err(StoreError::NotDurable(e.clone())),
            };
            // A session that went away no longer needs its answer.
            let _ = reply.send(answer);
        }
        match wal.rotate_if_needed() {
            Ok(Some(left)) => checkpointer.retire(left),
            Ok(None) => {}
            Err(e) => {
                error!(error = %e, "cannot start a new write-ahead log segment; retrying after the next group")
            }
        }
    }
    // Stopping: sled takes over everything, and the log is left empty.
    let mut left = checkpointer.stop();
    left.push(wal.current());
    match trees.db.flush() {
        Ok(_) => {
            if let Err(e) = wal::retire(&left) {
                error!(error = %e, "cannot delete the write-ahead log; it is replayed on the next start");
            }
        }
        Err(e) => {
            error!(error = %e, "cannot flush the database; the write-ahead log is replayed on the next start")
        }
    }
    stats.log();
}

/// The thread that flushes sled and then deletes the log segments the flush made redundant,
/// off the committer's path (a flush of a whole segment's writes takes milliseconds).
struct Checkpointer {
    full: Sender<PathBuf>,
    thread: JoinHandle<Vec<PathBuf>>,
}

impl Checkpointer {
    fn start(db: sled::Db) -> std::io::Result<Self> {
        let (full, segments) = mpsc::channel::<PathBuf>();
        let thread = thread::Builder::new().name("checkpointer".into()).spawn(move || {
            // Segments not yet retired: all of them were applied before the flush that retires them.
            let mut unretired = Vec::new();
            for segment in segments {
                unretired.push(segment);
                let retired = db.flush().map_err(std::io::Error::other).and_then(|_| wal::retire(&unretired));
                match retired {
                    Ok(()) => unretired.clear(),
                    Err(e) => error!(error = %e, "checkpoint failed; the write-ahead log keeps the writes"),
                }
            }
            unretired
        })?;
        Ok(Self { full, thread })
    }

    /// Hands over a segment no longer written, whose every record has been applied to sled.
    fn retire(&self, segment: PathBuf) {
        // The thread only ends when `stop` closes the channel.
        let _ = self.full.send(segment);
    }

    /// Waits for the checkpoints under way; returns the segments still to retire.
    fn stop(self) -> Vec<PathBuf> {
        drop(self.full);
        self.thread.join().unwrap_or_default()
    }
}

/// Totals for the shutdown log line, which tells how well grouping works.
#[derive(Default)]
struct Stats {
    groups: u64,
    operations: u64,
    /// Time staging, applying and syncing the log.
    phases: [Duration; 3],
    /// The slowest commit (apply and sync).
    slowest: Duration,
    /// Commits slower than two milliseconds, the latency budget of a message.
    over_2ms: u64,
}

impl Stats {
    fn record(&mut self, operations: usize, phases: [Duration; 3]) {
        self.groups += 1;
        self.operations += operations as u64;
        for (total, phase) in self.phases.iter_mut().zip(phases) {
            *total += phase;
        }
        let commit = phases[1] + phases[2];
        self.slowest = self.slowest.max(commit);
        self.over_2ms += u64::from(commit > Duration::from_millis(2));
    }

    fn log(&self) {
        let groups = self.groups.max(1) as f64;
        let mean_ms = |phase: Duration| phase.as_secs_f64() * 1000.0 / groups;
        info!(
            operations = self.operations,
            groups = self.groups,
            operations_per_group = format!("{:.1}", self.operations as f64 / groups),
            stage_ms = format!("{:.3}", mean_ms(self.phases[0])),
            apply_ms = format!("{:.3}", mean_ms(self.phases[1])),
            sync_ms = format!("{:.3}", mean_ms(self.phases[2])),
            slowest_commit_ms = format!("{:.3}", self.slowest.as_secs_f64() * 1000.0),
            commits_over_2ms = self.over_2ms,
            "committer stopped"
        );
    }
}
