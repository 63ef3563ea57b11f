//! Forgetting what nobody can use any more, so the store does not grow without bound:
//! resume tokens past their expiry, and resend entries older than the resend window.
//!
//! Removals go straight to sled, not through the committer and its log: each removes only
//! what was written long before (tokens past a lifetime of days, resend entries of
//! generations two back), never what a replay could restore, and a removal a crash loses
//! is simply made again the next time. So pruning costs the committer nothing.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use papo_protocol::UnixMillis;
use tracing::{info, warn};

use super::commit::Trees;
use super::records::{decode, TokenRecord};
use super::{keys, Result, StoreError};

/// Keys removed per pass before the pruner looks at the clock again.
const BATCH: usize = 1024;

/// How often the pruner runs, and how soon after start.
const EVERY: Duration = Duration::from_secs(60 * 60);
const FIRST_AFTER: Duration = Duration::from_secs(60);

/// What a pruning pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Expired resume tokens.
    pub tokens: u64,
    /// Resend entries past the window.
    pub resends: u64,
}

/// Removes tokens expired at `now` and resend entries of generations before the previous one.
pub fn prune(trees: &Trees, now: UnixMillis) -> Result<Pruned> {
    let mut pruned = Pruned::default();
    loop {
        let mut expired = Vec::with_capacity(BATCH);
        for entry in trees.tokens.iter() {
            let (key, raw) = entry?;
            let record: TokenRecord = decode(&key, &raw)?;
            if record.expires_at <= now {
                expired.push(key);
                if expired.len() == BATCH {
                    break;
                }
            }
        }
        for key in &expired {
            trees.tokens.remove(key)?;
        }
        pruned.tokens += expired.len() as u64;
        if expired.len() < BATCH {
            break;
        }
    }
    let oldest_kept = keys::dedup_generation(now).saturating_sub(1);
    loop {
        let stale: Vec<_> =
            trees.chat.range(keys::dedup_before(oldest_kept)).keys().take(BATCH).collect::<Result<_, _>>()?;
        for key in &stale {
            trees.chat.remove(key)?;
        }
        pruned.resends += stale.len() as u64;
        if stale.len() < BATCH {
            break;
        }
    }
    Ok(pruned)
}

/// The thread that prunes now and then.
#[derive(Debug)]
pub struct Pruner {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Pruner {
    /// Starts pruning `trees` in the background.
    pub fn start(trees: Trees) -> Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("pruner".into())
            .spawn(move || {
                let mut wait = FIRST_AFTER;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                    wait = EVERY;
                    match prune(&trees, crate::clock::now_millis()) {
                        Ok(Pruned { tokens: 0, resends: 0 }) => {}
                        Ok(pruned) => {
                            info!(tokens = pruned.tokens, resends = pruned.resends, "pruned expired entries")
                        }
                        Err(e) => warn!(error = %e, "pruning failed; retrying at the next pass"),
                    }
                }
            })
            .map_err(|e| StoreError::Thread("the pruner", e))?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Pruner {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
