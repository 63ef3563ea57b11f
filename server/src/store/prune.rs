//! Forgetting what nobody can use any more, so the store does not grow without bound:
//! resume tokens past their expiry, resend entries older than the resend window, and the
//! history of deleted groups.
//!
//! Removals go straight to sled, not through the committer and its log: each removes only
//! what was written long before (tokens past a lifetime of days, resend entries of
//! generations two back) or what nothing can write again (the lines of a group whose
//! deletion is durable), and a removal a crash loses is simply made again the next time. A
//! replay after a crash may restore lines of a deleted group, but only from log segments
//! that also hold its deletion (which comes after them), so it restores the mark that sends
//! the pruner back to them too. So pruning costs the committer nothing.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use papo_protocol::UnixMillis;
use tracing::{info, warn};

use super::commit::Trees;
use super::records::{corrupt, decode, TokenRecord};
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
    /// Lines of deleted groups.
    pub group_lines: u64,
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
    pruned.group_lines = prune_deleted_groups(trees)?;
    Ok(pruned)
}

/// Removes the history of every deleted group, a batch at a time, then the mark that says
/// it was to be removed.
fn prune_deleted_groups(trees: &Trees) -> Result<u64> {
    let mut removed = 0;
    let marks: Vec<_> = trees.chat.scan_prefix(keys::DELETED_GROUPS).keys().collect::<Result<_, _>>()?;
    for mark in marks {
        let group = keys::group_of(&mark).ok_or_else(|| corrupt(&mark, "bad deleted group key"))?;
        let lines = keys::group_lines_of(group);
        loop {
            let batch: Vec<_> =
                trees.chat.scan_prefix(&lines).keys().take(BATCH).collect::<Result<_, _>>()?;
            for key in &batch {
                trees.chat.remove(key)?;
            }
            removed += batch.len() as u64;
            if batch.len() < BATCH {
                break;
            }
        }
        trees.chat.remove(&mark)?;
    }
    Ok(removed)
}

/// The thread that prunes now and then, and when woken.
#[derive(Debug)]
pub struct Pruner {
    /// Each message wakes the thread for a pass; dropping it stops the thread.
    wake: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Pruner {
    /// Starts pruning `trees` in the background.
    pub fn start(trees: Trees) -> Result<Self> {
        let (wake, woken) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("pruner".into())
            .spawn(move || {
                let mut wait = FIRST_AFTER;
                loop {
                    match woken.recv_timeout(wait) {
                        Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    wait = EVERY;
                    match prune(&trees, crate::clock::now_millis()) {
                        Ok(Pruned { tokens: 0, resends: 0, group_lines: 0 }) => {}
                        Ok(pruned) => info!(
                            tokens = pruned.tokens,
                            resends = pruned.resends,
                            group_lines = pruned.group_lines,
                            "pruned expired entries and deleted groups"
                        ),
                        Err(e) => warn!(error = %e, "pruning failed; retrying at the next pass"),
                    }
                }
            })
            .map_err(|e| StoreError::Thread("the pruner", e))?;
        Ok(Self { wake: Some(wake), thread: Some(thread) })
    }

    /// Runs a pass soon, such as after a group was deleted, rather than at the next hour.
    pub fn wake(&self) {
        if let Some(wake) = &self.wake {
            // A pruner that stopped has nothing more to do.
            let _ = wake.send(());
        }
    }
}

impl Drop for Pruner {
    fn drop(&mut self) {
        self.wake.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
