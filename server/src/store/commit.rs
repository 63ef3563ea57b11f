//! Group commit: one flusher thread makes every write so far durable with a single
//! `flush()`, and each writer waits only until a flush has covered its own write.
//!
//! A flush per write caps durable writes at a few thousand per second; sharing flushes
//! lets many concurrent senders ride on one fsync.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use tracing::error;

/// Identifies a write; durable once the flusher has covered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

#[derive(Debug, Default)]
struct State {
    written: u64,
    durable: u64,
    failure: Option<String>,
    stopping: bool,
    flushes: u64,
    flush_time: std::time::Duration,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    work: Condvar,
    done: Condvar,
}

/// The flusher thread and the bookkeeping of written versus durable writes.
#[derive(Debug)]
pub struct GroupCommit {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the flusher for `db`.
    pub fn start(db: sled::Db) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let flusher = {
            let shared = Arc::clone(&shared);
            thread::Builder::new().name("flusher".into()).spawn(move || flush_loop(&db, &shared))?
        };
        Ok(Self { shared, flusher: Some(flusher) })
    }

    /// Records a write that has been applied to the tree; call after applying it.
    pub fn written(&self) -> Ticket {
        let mut state = self.lock();
        state.written += 1;
        self.shared.work.notify_one();
        Ticket(state.written)
    }

    /// A ticket covering every write applied so far.
    pub fn latest(&self) -> Ticket {
        Ticket(self.lock().written)
    }

    /// Blocks until the write behind `ticket` is on disk.
    pub fn wait(&self, ticket: Ticket) -> Result<(), String> {
        let mut state = self.lock();
        loop {
            if let Some(failure) = &state.failure {
                return Err(failure.clone());
            }
            if state.durable >= ticket.0 {
                return Ok(());
            }
            state = self.shared.done.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        let mut state = self.lock();
        state.stopping = true;
        tracing::info!(
            writes = state.written,
            flushes = state.flushes,
            writes_per_flush = state.written as f64 / state.flushes.max(1) as f64,
            mean_flush_ms = state.flush_time.as_secs_f64() * 1000.0 / state.flushes.max(1) as f64,
            "group commit"
        );
        drop(state);
        self.shared.work.notify_one();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

fn flush_loop(db: &sled::Db, shared: &Shared) {
    let lock = || shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let target = {
            let mut state = lock();
            while state.written == state.durable && !state.stopping {
                state = shared.work.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            if state.written == state.durable {
                return;
            }
            state.written
        };
        let started = std::time::Instant::now();
        let result = db.flush();
        let mut state = lock();
        state.flushes += 1;
        state.flush_time += started.elapsed();
        match result {
            Ok(_) => state.durable = target,
            Err(e) => {
                // Nothing after a failed flush can be promised durable; writers get errors
                // rather than acknowledgements from now on.
                error!(error = %e, "flushing the database failed");
                state.failure = Some(e.to_string());
            }
        }
        shared.done.notify_all();
        if state.failure.is_some() {
            return;
        }
    }
}
