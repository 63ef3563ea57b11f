//! A bounded, fair pool for password hashing.
//!
//! bcrypt is the server's one deliberately slow operation (0.3 s at cost 12), and it used to
//! run on each connection's own thread, unbounded: 64 connections guessing passwords from one
//! machine made a legitimate login take 21 s. Here a few worker threads (about one per core)
//! do all hashing, taking work from each source address in turn, never more than
//! `per_source` jobs of one address at a time, and with at most `queue_per_source` of its
//! jobs waiting: one machine cannot hold more than its share, and its surplus is refused at
//! once instead of queuing behind everyone.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use super::{LimitPolicy, LimitsDial, Retune};

/// The pool's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Worker threads.
    pub workers: usize,
    /// Jobs of one source running at once.
    pub per_source: usize,
    /// Jobs of one source waiting at once; more are refused.
    pub queue_per_source: usize,
}

impl PoolLimits {
    /// `policy`'s workers and waiting jobs per address, with one running job per source.
    pub fn of(policy: &LimitPolicy) -> Self {
        Self {
            workers: policy.password_threads,
            per_source: 1,
            queue_per_source: policy.password_checks_waiting_per_address,
        }
    }
}

/// Worker threads for this machine: one per core, at least two (so that one slow check
/// never holds every login).
pub fn workers_for_this_machine() -> usize {
    thread::available_parallelism().map_or(2, usize::from).max(2)
}

/// The source already has as many jobs waiting as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks from this address at once")]
pub struct Busy;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Source {
    waiting: VecDeque<Job>,
    running: usize,
}

#[derive(Default)]
struct Queue {
    sources: HashMap<IpAddr, Source>,
    /// Sources with waiting jobs, in the order they get the next free worker.
    turns: VecDeque<IpAddr>,
    stopping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
    /// Jobs of one source running at once; fixed, like the workers.
    per_source: usize,
    /// Jobs of one source waiting at once, the only limit SIGHUP changes while serving (so
    /// there is no copy of the starting value to read by mistake).
    queue_per_source: AtomicUsize,
}

impl Retune for Shared {
    /// Only the jobs an address may have waiting change; the workers stay as they started.
    fn retune(&self, policy: &LimitPolicy) {
        self.queue_per_source.store(policy.password_checks_waiting_per_address, Ordering::Relaxed);
    }
}

/// The pool; its workers stop when it is dropped (after the jobs already queued).
pub struct PasswordPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for PasswordPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordPool")
            .field("workers", &self.workers.len())
            .field("per_source", &self.shared.per_source)
            .field("queue_per_source", &self.shared.queue_per_source.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl PasswordPool {
    /// Starts the workers.
    pub fn start(limits: PoolLimits) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            work: Condvar::new(),
            per_source: limits.per_source,
            queue_per_source: AtomicUsize::new(limits.queue_per_source),
        });
        let workers = (0..limits.workers.max(1))
            .map(|n| {
                let shared = Arc::clone(&shared);
                thread::Builder::new().name(format!("password-{n}")).spawn(move || work(&shared))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Self { shared, workers })
    }

    /// Lets `dial` change how many jobs of one source may wait.
    pub(crate) fn attach_to(&self, dial: &LimitsDial) {
        dial.attach(&self.shared);
    }

    /// Runs `job` on a worker in `source`'s turn and waits for its result, or refuses at
    /// once if `source` already has its fill of jobs waiting.
    pub fn run<T: Send + 'static>(
        &self,
        source: IpAddr,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (reply, result): (SyncSender<T>, _) = mpsc::sync_channel(1);
        {
            let mut queue = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = queue.sources.entry(source).or_default();
            if entry.waiting.len() >= self.shared.queue_per_source.load(Ordering::Relaxed) {
                return Err(Busy);
            }
            let first = entry.waiting.is_empty();
            entry.waiting.push_back(Box::new(move || {
                let _ = reply.send(job());
            }));
            if first && entry.running < self.shared.per_source {
                queue.turns.push_back(source);
            }
        }
        self.shared.work.notify_one();
        // A job that panicked drops its reply: the caller learns it failed.
        result.recv().map_err(|_| Busy)
    }
}

impl Drop for PasswordPool {
    fn drop(&mut self) {
        self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner).stopping = true;
        self.shared.work.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn work(shared: &Shared) {
    loop {
        let (source, job) = {
            let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(source) = queue.turns.pop_front() {
                    let entry = queue.sources.get_mut(&source).expect("a source with a turn is known");
                    let job = entry.waiting.pop_front().expect("a source with a turn has a job");
                    entry.running += 1;
                    // Its next job waits for the next turn, behind every other source's.
                    if !entry.waiting.is_empty() && entry.running < shared.per_source {
                        queue.turns.push_back(source);
                    }
                    break (source, job);
                }
                if queue.stopping {
                    return;
                }
                queue = shared.work.wait(queue).unwrap_or_else(PoisonError::into_inner);
            }
        };
        // A panicking job (a bug) must not take the worker, or its source's slot, with it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = queue.sources.get_mut(&source).expect("a running source is known");
        entry.running -= 1;
        if entry.waiting.is_empty() && entry.running == 0 {
            queue.sources.remove(&source);
        } else if entry.running + 1 == shared.per_source && !entry.waiting.is_empty() {
            // It was at its limit and has work waiting: it takes its turn again.
            queue.turns.push_back(source);
            drop(queue);
            shared.work.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn one_source_never_holds_more_than_its_share_and_its_surplus_is_refused() {
        let limits = PoolLimits { workers: 2, per_source: 1, queue_per_source: 3 };
        let pool = Arc::new(PasswordPool::start(limits).unwrap());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let attackers: Vec<_> = (0..12)
            .map(|_| {
                let (pool, running, most) = (Arc::clone(&pool), Arc::clone(&running), Arc::clone(&most));
                thread::spawn(move || {
                    pool.run(addr(1), move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(50));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        let results: Vec<_> = attackers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(most.load(Ordering::SeqCst), 1, "one job of the source at a time");
        let refused = results.iter().filter(|r| r.is_err()).count();
        assert!(refused >= 12 - 4, "at most one running and three waiting were taken: {refused} refused");
    }

    #[test]
    fn another_source_is_served_while_one_floods() {
        let limits = PoolLimits { workers: 2, per_source: 1, queue_per_source: 4 };
        let pool = Arc::new(PasswordPool::start(limits).unwrap());
        // The flood's jobs block until released: if it could take both workers, the
        // newcomer would never run.
        let (release, released) = mpsc::channel::<()>();
        let released = Arc::new(Mutex::new(released));
        let flood: Vec<_> = (0..4)
            .map(|_| {
                let (pool, released) = (Arc::clone(&pool), Arc::clone(&released));
                thread::spawn(move || {
                    pool.run(addr(1), move || {
                        let _ = released.lock().unwrap().recv();
                    })
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(50));
        let (done, finished) = mpsc::channel();
        {
            let pool = Arc::clone(&pool);
            thread::spawn(move || done.send(pool.run(addr(2), || 5)).unwrap());
        }
        let served = finished.recv_timeout(Duration::from_secs(10));
        for _ in 0..4 {
            let _ = release.send(());
        }
        for thread in flood {
            let _ = thread.join().unwrap();
        }
        assert_eq!(served, Ok(Ok(5)), "the second address was served while the first held its share");
    }

    #[test]
    fn sources_take_turns() {
        let limits = PoolLimits { workers: 1, per_source: 1, queue_per_source: 8 };
        let pool = Arc::new(PasswordPool::start(limits).unwrap());
        let order = Arc::new(Mutex::new(Vec::new()));
        // Block the worker, queue three of source 1 then one of source 2.
        let (hold, release) = mpsc::channel::<()>();
        let blocker = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                pool.run(addr(9), move || {
                    let _ = release.recv();
                })
            })
        };
        thread::sleep(Duration::from_millis(50));
        let mut queued = Vec::new();
        for source in [1, 1, 1, 2] {
            let (pool, order) = (Arc::clone(&pool), Arc::clone(&order));
            queued.push(thread::spawn(move || {
                pool.run(addr(source), move || order.lock().unwrap().push(source))
            }));
            thread::sleep(Duration::from_millis(30));
        }
        hold.send(()).unwrap();
        blocker.join().unwrap().unwrap();
        for job in queued {
            job.join().unwrap().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [1, 2, 1, 1], "source 2 does not wait behind all of source 1");
    }

    #[test]
    fn a_retuned_pool_takes_as_many_waiting_jobs_as_the_new_policy_says() {
        let pool =
            PasswordPool::start(PoolLimits { workers: 1, per_source: 1, queue_per_source: 0 }).unwrap();
        assert_eq!(pool.run(addr(1), || 1), Err(Busy), "no room to wait");
        let dial = LimitsDial::default();
        pool.attach_to(&dial);
        assert!(
            dial.retune(&LimitPolicy { password_checks_waiting_per_address: 1, ..LimitPolicy::default() })
        );
        assert_eq!(pool.run(addr(1), || 2), Ok(2));
        assert!(format!("{pool:?}").contains("queue_per_source: 1"), "shows the limit in force: {pool:?}");
    }

    #[test]
    fn a_panicking_job_frees_its_slot() {
        let pool =
            PasswordPool::start(PoolLimits { workers: 1, per_source: 1, queue_per_source: 1 }).unwrap();
        assert_eq!(pool.run(addr(1), || -> () { panic!("a bug") }), Err(Busy));
        assert_eq!(pool.run(addr(1), || 7), Ok(7));
    }
}
