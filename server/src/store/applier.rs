//! The applier: puts each durable group into sled on a thread of its own and answers it,
//! then has the answerer's thread write the answers out.
//!
//! Applying a group to sled costs more than staging and syncing it together (sled copies a
//! leaf node for every insert), so the committer hands each group here once the log holds
//! it and goes on to stage and sync the next one. Until a group is in sled, the committer's
//! staging reads it from the [`Unapplied`] layers; its answers are given only once it is in
//! sled, so whoever hears of a write can read it back at once, as before. Log segments are
//! retired through here too, after every group they hold is applied, so a checkpoint never
//! lets go of a group sled does not have yet.
//!
//! Writing a group's answers out (its replies and deliveries, a write per session and per
//! recipient) costs about as much as applying it, so the answerer's thread does it, and the
//! next group's inserts overlap this one's writes. The answers themselves, and who they go
//! to (a group's members), are worked out here, before the next group reaches sled, so that
//! they are as of their own group; the writes follow in the order the groups were applied.
//! Measured with 100 pairs at window 8, plaintext, alternating runs: 33,400 against 29,300
//! msg/s (medians of 4), send→deliver p50 23.0 against 26.4 ms; with the answers worked out
//! here, 3 rounds on a slower hour, ahead in each by 18–30%.
//!
//! A lone write with nothing behind it (a conversation going back and forth) gains nothing
//! from the hand-over but two more threads to wake, so while the applier and the answerer
//! have nothing in hand the committer applies and answers such a group itself.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::checkpoint::{Checkpoint, Checkpointer};
use super::commit::{Afterwards, GroupOutcome, Settle, TreeName, Trees, UnlessStopped, Write, Writes};
use super::fatal::Fatal;
use super::{Result, StoreError};

/// Durable groups the committer may run ahead of sled by; it waits beyond that.
const MAX_BEHIND: usize = 2;

/// One durable group's writes, sorted by tree and key with each key once: the log's
/// record, sled's batch and, until sled has them, the committer's reads all share it.
///
/// Shared rather than copied into a map: copying every write of every group was a good part
/// of the committer's staging time, and a sorted slice answers lookups by binary search.
#[derive(Debug, Clone)]
pub(super) struct GroupWrites(Arc<[Write]>);

impl GroupWrites {
    /// Sorts a group's writes; of two writes of one key, the later one is kept, as applying
    /// them in order would leave it.
    pub fn new(mut writes: Vec<Write>) -> Self {
        writes.sort_by(|(a_tree, a_key, _), (b_tree, b_key, _)| (a_tree, a_key).cmp(&(b_tree, b_key)));
        writes.dedup_by(|later, kept| {
            let same = (later.0, &later.1) == (kept.0, &kept.1);
            if same {
                std::mem::swap(&mut later.2, &mut kept.2);
            }
            same
        });
        Self(writes.into())
    }

    /// The writes, in order.
    pub fn writes(&self) -> &[Write] {
        &self.0
    }

    /// The write of `key` in `tree`, if the group has one.
    fn get(&self, tree: TreeName, key: &[u8]) -> Option<Option<&Vec<u8>>> {
        let found = self.0.binary_search_by(|(written, at, _)| (*written, at.as_slice()).cmp(&(tree, key)));
        found.ok().map(|index| self.0[index].2.as_ref())
    }

    /// The writes of `tree` from `first` to `last`, in key order.
    fn range(&self, tree: TreeName, first: &[u8], last: Bound<&[u8]>) -> &[Write] {
        let start = self.0.partition_point(|(written, key, _)| (*written, key.as_slice()) < (tree, first));
        let end = self.0.partition_point(|(written, key, _)| match last {
            Bound::Included(last) => (*written, key.as_slice()) <= (tree, last),
            Bound::Excluded(last) => (*written, key.as_slice()) < (tree, last),
            Bound::Unbounded => *written <= tree,
        });
        &self.0[start..end.max(start)]
    }
}

/// The groups the log holds and sled may not yet, oldest first, as the committer sees them.
#[derive(Default)]
pub(super) struct Unapplied {
    layers: VecDeque<(u64, GroupWrites)>,
}

impl Unapplied {
    /// Adds the group logged as `commit`.
    pub fn push(&mut self, commit: u64, writes: GroupWrites) {
        self.layers.push_back((commit, writes));
    }

    /// Forgets the groups sled has by now.
    pub fn forget_applied(&mut self, applied: u64) {
        while self.layers.front().is_some_and(|(commit, _)| *commit <= applied) {
            self.layers.pop_front();
        }
    }

    /// The newest unapplied write of `key`: `Some(None)` if it was removed, `None` if no
    /// unapplied group wrote it (sled has its value).
    pub fn get(&self, tree: TreeName, key: &[u8]) -> Option<Option<&Vec<u8>>> {
        self.layers.iter().rev().find_map(|(_, layer)| layer.get(tree, key))
    }

    /// Every unapplied write from `first` to `last` in `tree`, oldest group first.
    pub fn range<'a>(
        &'a self,
        tree: TreeName,
        first: &'a [u8],
        last: Bound<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a Vec<u8>>)> + 'a {
        self.layers.iter().flat_map(move |(_, layer)| {
            layer.range(tree, first, last).iter().map(|(_, key, value)| (key.as_slice(), value.as_ref()))
        })
    }
}

/// What the committer hands over, in order.
pub(super) enum Job {
    /// A settled group: its writes to apply if the log took them (with its commit number),
    /// then its answers.
    Group { logged: Option<(u64, GroupWrites)>, settles: Vec<Settle>, outcome: GroupOutcome },
    /// A log segment every group of which is handed over before.
    Retire(Checkpoint),
    /// The committer stops: checkpoint everything up to this, the segment being written.
    Stop(Checkpoint),
}

/// The applier thread and the queue into it.
pub(super) struct Applier {
    trees: Trees,
    fatal: Arc<Fatal>,
    queue: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<Applying>>,
    answerer: Option<JoinHandle<Applying>>,
    applied: Arc<AtomicU64>,
    /// Jobs handed over, and jobs finished (a group once its answers are written).
    handed: u64,
    finished: Arc<AtomicU64>,
    /// Time spent applying on the committer's thread.
    applied_inline: Applying,
}

/// Time spent settling groups, split where the cost lies: putting writes into sled, and
/// answering (replies and deliveries written to the connections).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Applying {
    pub sled: Duration,
    pub answering: Duration,
}

impl std::ops::Add for Applying {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self { sled: self.sled + other.sled, answering: self.answering + other.answering }
    }
}

impl Applier {
    /// Starts the applier over `trees`, whose newest applied group is `applied`.
    pub fn start(trees: Trees, applied: u64, checkpointer: Checkpointer, fatal: Arc<Fatal>) -> Result<Self> {
        let (queue, jobs) = mpsc::sync_channel(MAX_BEHIND);
        let applied = Arc::new(AtomicU64::new(applied));
        let finished = Arc::new(AtomicU64::new(0));
        let (answers, answerer) = start_answerer(Arc::clone(&finished), Arc::clone(&fatal))?;
        let thread = {
            let (trees, fatal) = (trees.clone(), Arc::clone(&fatal));
            let (applied, finished) = (Arc::clone(&applied), Arc::clone(&finished));
            thread::Builder::new()
                .name("applier".into())
                .spawn(move || run(&trees, &jobs, &answers, &applied, &finished, checkpointer, &fatal))
                .map_err(|e| StoreError::Thread("the applier", e))?
        };
        Ok(Self {
            trees,
            fatal,
            queue: Some(queue),
            thread: Some(thread),
            answerer: Some(answerer),
            applied,
            handed: 0,
            finished,
            applied_inline: Applying::default(),
        })
    }

    /// The commit number of the newest group sled has.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Hands `job` over, waiting while the applier is [`MAX_BEHIND`] groups behind, or,
    /// for a `lone` group while the applier and the answerer have nothing in hand, carries
    /// it out here;
    /// `false` if the store failed.
    pub fn hand_over(&mut self, job: Job, lone: bool) -> bool {
        if let Job::Group { logged, settles, outcome } = job {
            if lone && self.finished.load(Ordering::Acquire) == self.handed {
                let (trees, applied, fatal) = (&self.trees, &self.applied, &self.fatal);
                return settle(trees, logged, settles, &outcome, applied, fatal, &mut self.applied_inline);
            }
            return self.send(Job::Group { logged, settles, outcome });
        }
        self.send(job)
    }

    fn send(&mut self, job: Job) -> bool {
        self.handed += 1;
        self.queue.as_ref().is_some_and(|queue| queue.send(job).is_ok())
    }

    /// Applies and answers everything handed over and checkpoints up to `last`, returning
    /// once every answer is written out; the time spent applying and answering.
    pub fn stop(mut self, last: Checkpoint) -> Applying {
        self.send(Job::Stop(last));
        self.join() + self.applied_inline
    }

    /// Waits for both threads to finish what they were handed, adding up their times.
    fn join(&mut self) -> Applying {
        self.queue.take();
        // The applier's end closes the answerer's queue.
        [self.thread.take(), self.answerer.take()]
            .into_iter()
            .flatten()
            .map(|thread| thread.join().unwrap_or_default())
            .fold(Applying::default(), |sum, time| sum + time)
    }
}

impl Drop for Applier {
    fn drop(&mut self) {
        self.join();
    }
}

/// Applies a durable group to sled, then answers it, adding the time each took to
/// `applying`; `false` if sled failed.
fn settle(
    trees: &Trees,
    logged: Option<(u64, GroupWrites)>,
    settles: Vec<Settle>,
    outcome: &GroupOutcome,
    applied: &AtomicU64,
    fatal: &Fatal,
    applying: &mut Applying,
) -> bool {
    if !apply(trees, logged, applied, fatal, applying) {
        return false;
    }
    let writes = answer(settles, outcome, applying);
    write(writes, applying);
    true
}

/// Applies a durable group's writes to sled; `false` if sled failed.
fn apply(
    trees: &Trees,
    logged: Option<(u64, GroupWrites)>,
    applied: &AtomicU64,
    fatal: &Fatal,
    applying: &mut Applying,
) -> bool {
    let started = Instant::now();
    if let Some((commit, writes)) = logged {
        if let Err(e) = trees.apply(writes.writes()) {
            // Durable in the log, but sled now misses part of it and will fail again: only a
            // restart's replay makes the store whole. The group is not answered.
            fatal.raise(&StoreError::Sled(e));
            return false;
        }
        applied.store(commit, Ordering::Release);
    }
    applying.sled += started.elapsed();
    true
}

/// Answers a group sled has, and nothing after it yet: the writes to the connections
/// that its answers leave.
fn answer(settles: Vec<Settle>, outcome: &GroupOutcome, applying: &mut Applying) -> Writes {
    let started = Instant::now();
    let mut afterwards = Afterwards::default();
    for settle in settles {
        settle(outcome.clone(), &mut afterwards);
    }
    let writes = afterwards.prepare();
    applying.answering += started.elapsed();
    writes
}

/// Writes a group's answers out.
fn write(writes: Writes, applying: &mut Applying) {
    let started = Instant::now();
    writes.run();
    applying.answering += started.elapsed();
}

/// Starts the thread that writes groups' answers out in the order they arrive, counting
/// each group in `finished` once they are written.
fn start_answerer(
    finished: Arc<AtomicU64>,
    fatal: Arc<Fatal>,
) -> Result<(SyncSender<Writes>, JoinHandle<Applying>)> {
    let (answers, to_answer) = mpsc::sync_channel::<Writes>(MAX_BEHIND);
    let thread = thread::Builder::new()
        .name("answerer".into())
        .spawn(move || {
            let mut guard = UnlessStopped(&fatal, false, "the answerer");
            let mut applying = Applying::default();
            while let Ok(writes) = to_answer.recv() {
                write(writes, &mut applying);
                finished.fetch_add(1, Ordering::Release);
            }
            guard.1 = true;
            applying
        })
        .map_err(|e| StoreError::Thread("the answerer", e))?;
    Ok((answers, thread))
}

fn run(
    trees: &Trees,
    jobs: &Receiver<Job>,
    answers: &SyncSender<Writes>,
    applied: &AtomicU64,
    finished: &AtomicU64,
    checkpointer: Checkpointer,
    fatal: &Fatal,
) -> Applying {
    let mut guard = UnlessStopped(fatal, false, "the applier");
    let mut applying = Applying::default();
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Group { logged, settles, outcome } => {
                // A failed apply leaves the group, and every one queued after it, unanswered.
                if !apply(trees, logged, applied, fatal, &mut applying) {
                    guard.1 = true;
                    return applying;
                }
                // Answered here, before the next group reaches sled; only the writes wait for
                // the answerer. Its queue closes only if it died, which raised the failure.
                let writes = answer(settles, &outcome, &mut applying);
                if answers.send(writes).is_err() {
                    guard.1 = true;
                    return applying;
                }
            }
            Job::Retire(done) => {
                checkpointer.retire(done);
                finished.fetch_add(1, Ordering::Release);
            }
            Job::Stop(last) => {
                // Stopping: sled takes over everything, and the log is left empty.
                guard.1 = true;
                checkpointer.stop(last);
                return applying;
            }
        }
    }
    // The committer failed: whatever the log holds is replayed at the next start.
    guard.1 = true;
    applying
}

#[cfg(test)]
mod tests {
    use std::sync::{mpsc, Arc, Mutex};

    use super::*;

    fn applier() -> (Applier, Trees, tempfile::TempDir) {
        let trees = crate::store::commit::tests::trees();
        let dir = tempfile::tempdir().unwrap();
        let fatal = Arc::new(Fatal::default());
        let checkpointer =
            Checkpointer::start(trees.db.clone(), dir.path().to_owned(), Arc::clone(&fatal)).unwrap();
        (Applier::start(trees.clone(), 0, checkpointer, fatal).unwrap(), trees, dir)
    }

    /// Group `commit`, writing `write` (a key and its value) if given, whose answer adds
    /// `task` to its [`Afterwards`].
    fn group(
        commit: u64,
        write: Option<(&[u8], &[u8])>,
        task: impl FnOnce() -> Writes + Send + 'static,
    ) -> Job {
        let logged = write.map(|(key, value)| {
            (commit, GroupWrites::new(vec![(TreeName::Chat, key.to_vec(), Some(value.to_vec()))]))
        });
        Job::Group {
            logged,
            settles: vec![Box::new(move |_, afterwards: &mut Afterwards| afterwards.add(task))],
            outcome: GroupOutcome::Durable,
        }
    }

    /// Records `name` in `log` when its writes run.
    fn recorded(log: &Arc<Mutex<Vec<String>>>, name: &str) -> impl FnOnce() -> Writes + Send + 'static {
        let (log, name) = (Arc::clone(log), name.to_owned());
        move || Writes::new(move || log.lock().unwrap().push(name))
    }

    #[test]
    fn a_lone_group_is_answered_after_every_group_handed_over_before_it() {
        let (mut applier, _trees, _dir) = applier();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (release, held) = mpsc::channel::<()>();
        let holding = {
            let log = Arc::clone(&log);
            // Its writes hold the answerer until released.
            move || {
                Writes::new(move || {
                    held.recv().unwrap();
                    log.lock().unwrap().push("first".to_owned());
                })
            }
        };
        assert!(applier.hand_over(group(1, None, holding), false));
        assert!(applier.hand_over(group(2, None, recorded(&log, "lone")), true));
        assert!(log.lock().unwrap().is_empty(), "the lone group waits for the one before it");
        release.send(()).unwrap();
        drop(applier);
        assert_eq!(*log.lock().unwrap(), ["first", "lone"]);
    }

    #[test]
    fn a_waiting_caller_hears_its_answer_only_after_earlier_groups_are_written() {
        let (mut applier, _trees, _dir) = applier();
        let (release, held) = mpsc::channel::<()>();
        assert!(applier.hand_over(group(1, None, move || Writes::new(move || held.recv().unwrap())), false));
        // A caller woken early could write to connections ahead of group 1's writes.
        let (reply, answer) = mpsc::sync_channel(1);
        let call: Settle =
            Box::new(move |_, afterwards| super::super::commit::answer_to(reply)(Ok(7), afterwards));
        let job = Job::Group { logged: None, settles: vec![call], outcome: GroupOutcome::Durable };
        assert!(applier.hand_over(job, false));
        assert!(
            answer.recv_timeout(Duration::from_millis(200)).is_err(),
            "answered while group 1's writes were held"
        );
        release.send(()).unwrap();
        assert_eq!(answer.recv_timeout(Duration::from_secs(10)).unwrap().unwrap(), 7);
    }

    #[test]
    fn a_group_is_answered_as_of_itself_while_later_groups_reach_sled() {
        let (mut applier, trees, _dir) = applier();
        let (release, held) = mpsc::channel::<()>();
        assert!(applier.hand_over(
            group(1, Some((b"k", b"old")), move || Writes::new(move || held.recv().unwrap())),
            false
        ));
        // The answer of group 2 reads `k`, as a group message's answer reads its members.
        let seen = Arc::new(Mutex::new(None));
        let reading = {
            let (seen, chat) = (Arc::clone(&seen), trees.chat.clone());
            move || {
                *seen.lock().unwrap() = chat.get(b"k").unwrap().map(|value| value.to_vec());
                Writes::default()
            }
        };
        assert!(applier.hand_over(group(2, Some((b"j", b"x")), reading), false));
        assert!(applier.hand_over(group(3, Some((b"k", b"new")), Writes::default), false));
        release.send(()).unwrap();
        drop(applier);
        assert_eq!(
            seen.lock().unwrap().as_deref(),
            Some(b"old".as_slice()),
            "read before group 3 changed it"
        );
        assert_eq!(trees.chat.get(b"k").unwrap().as_deref(), Some(b"new".as_slice()));
    }
}
