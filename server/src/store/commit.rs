//! The committer: one thread applies every write, in groups, and makes each group durable
//! with a single flush before anyone hears that their write happened.
//!
//! A flush costs about a millisecond and a half whatever it carries, so durability per
//! message would cap the server at a few thousand messages a second, and a lock around
//! sled writes lets one stalled writer hold up everyone. Instead sessions queue operations
//! here; while one group is being flushed the next one gathers, so groups grow with load.

use std::collections::hash_map::{Entry, HashMap};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tracing::{error, info};

use papo_protocol::Username;

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

/// Writes of the current group to the `chat` tree, visible to later operations of the same
/// group before they reach sled.
pub struct Staged<'a> {
    chat: &'a sled::Tree,
    writes: HashMap<Vec<u8>, Vec<u8>>,
    /// Decoded conversation summaries, changed in place by the group's operations and
    /// encoded once at the end (many messages of a group share a conversation).
    summaries: HashMap<Vec<u8>, Summary>,
    /// The newest message id handed out.
    pub last_id: &'a mut u64,
    /// Trees besides `chat`, written directly (they are flushed with the group).
    pub users: &'a sled::Tree,
    /// Resume tokens.
    pub tokens: &'a sled::Tree,
}

impl<'a> Staged<'a> {
    /// The value under `key`, including this group's staged writes.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, sled::Error> {
        match self.writes.get(key) {
            Some(staged) => Ok(Some(staged.clone())),
            None => Ok(self.chat.get(key)?.map(|v| v.to_vec())),
        }
    }

    /// `owner`'s summary of the conversation with `peer`, to read or change.
    pub fn summary(&mut self, owner: &Username, peer: &Username) -> Result<&mut Summary, StoreError> {
        let key = keys::summary(owner, peer);
        let summary = match self.summaries.entry(key) {
            Entry::Occupied(cached) => cached.into_mut(),
            Entry::Vacant(missing) => {
                let stored = match self.chat.get(missing.key())? {
                    Some(raw) => decode(missing.key(), &raw)?,
                    None => Summary::default(),
                };
                missing.insert(stored)
            }
        };
        Ok(summary)
    }

    /// Stages an insert; a later insert of the same key in the group replaces it.
    pub fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, value);
    }

    /// The group's writes as one atomic sled batch.
    fn into_batch(self) -> sled::Batch {
        let mut batch = sled::Batch::default();
        for (key, value) in self.writes {
            batch.insert(key, value);
        }
        for (key, summary) in self.summaries {
            batch.insert(key, encode(&summary));
        }
        batch
    }

    /// Reads of ranges go straight to sled; callers only range over data older than the
    /// group (a conversation's messages), which staged writes never change.
    pub fn chat(&self) -> &'a sled::Tree {
        self.chat
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

/// The trees the committer writes.
#[derive(Debug, Clone)]
pub struct Trees {
    /// The database, for flushing.
    pub db: sled::Db,
    /// Messages and their bookkeeping.
    pub chat: sled::Tree,
    /// Accounts.
    pub users: sled::Tree,
    /// Resume tokens.
    pub tokens: sled::Tree,
}

impl Committer {
    /// Starts the committer over `trees`, handing out ids after `last_id`.
    pub fn start(trees: Trees, last_id: u64) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel();
        let thread =
            thread::Builder::new().name("committer".into()).spawn(move || run(&trees, last_id, &jobs))?;
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

fn run(trees: &Trees, mut last_id: u64, jobs: &Receiver<Job>) {
    let mut stats = Stats::default();
    while let Ok(first) = jobs.recv() {
        let group: Vec<Job> = std::iter::once(first).chain(jobs.try_iter().take(MAX_GROUP - 1)).collect();
        let size = group.len();
        let (works, replies): (Vec<Work>, Vec<Reply>) =
            group.into_iter().map(|job| (job.work, job.reply)).unzip();
        let mut staged = Staged {
            chat: &trees.chat,
            writes: HashMap::new(),
            summaries: HashMap::new(),
            last_id: &mut last_id,
            users: &trees.users,
            tokens: &trees.tokens,
        };
        let staging = Instant::now();
        let answers: Vec<_> = works.into_iter().map(|work| work(&mut staged)).collect();
        let batch = staged.into_batch();
        let applying = Instant::now();
        let applied = trees.chat.apply_batch(batch);
        let flushing = Instant::now();
        let durable = applied.and_then(|()| trees.db.flush().map(drop));
        stats.record(size, [applying - staging, flushing - applying, flushing.elapsed()]);
        if let Err(e) = &durable {
            // Nothing of this group may be acknowledged; clients retry.
            error!(error = %e, "cannot make a group of writes durable");
        }
        for (reply, answer) in replies.into_iter().zip(answers) {
            let answer = match &durable {
                Ok(()) => answer,
                Err(e) => Err(StoreError::NotDurable(e.to_string())),
            };
            // A session that went away no longer needs its answer.
            let _ = reply.send(answer);
        }
    }
    stats.log();
}

/// Totals for the shutdown log line, which tells how well grouping works.
#[derive(Default)]
struct Stats {
    groups: u64,
    operations: u64,
    /// Time staging, applying and flushing.
    phases: [Duration; 3],
    /// The slowest commit (apply and flush).
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
            flush_ms = format!("{:.3}", mean_ms(self.phases[2])),
            slowest_commit_ms = format!("{:.3}", self.slowest.as_secs_f64() * 1000.0),
            commits_over_2ms = self.over_2ms,
            "committer stopped"
        );
    }
}
