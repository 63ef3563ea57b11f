//! Checkpoints: sled is flushed and made durable, the manifest records how far it reaches,
//! and only then are the log segments that flush covers retired.
//!
//! The order is the whole point. A segment deleted before sled's files were synced would
//! take acknowledged writes with it in a power cut; a manifest written after the segments
//! were gone would, after a cut in between, claim a segment is missing that was merely
//! retired. Flush, sync, manifest, retire: a cut anywhere in between leaves either the old
//! manifest and every segment it needs, or the new manifest and stale segments it ignores.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use papo_protocol::MessageId;
use tracing::error;

use super::fatal::Fatal;
use super::files;
use super::manifest::Manifest;
use super::wal;
use super::{Result, StoreError};

/// A log segment no longer written, whose every record sled has applied.
#[derive(Debug)]
pub struct Checkpoint {
    /// The segment.
    pub segment: PathBuf,
    /// The commit number of its last record (or of the newest group, if later).
    pub commit: u64,
    /// The newest message id by then.
    pub last_id: MessageId,
}

/// Makes everything sled holds durable, records it in the manifest, then retires `segments`.
///
/// `retired_through` is the newest of them (or newer, at a clean stop) and `next_segment_exists`
/// whether the segment after it holds writes still to be replayed.
pub fn checkpoint(
    db: &sled::Db,
    dir: &Path,
    commit: u64,
    last_id: MessageId,
    retired_through: u64,
    next_segment_exists: bool,
    segments: &[PathBuf],
) -> Result<()> {
    db.flush()?;
    files::sync_sled(dir)?;
    Manifest {
        checkpoint_commit: commit,
        checkpoint_last_id: last_id,
        retired_through,
        next_segment_exists,
        ..Manifest::new()
    }
    .write(dir)?;
    wal::retire(segments)
}

/// The sequence number of a segment's path.
fn sequence(segment: &Path) -> u64 {
    segment
        .file_stem()
        .and_then(|stem| stem.to_str())
        .and_then(|stem| u64::from_str_radix(stem, 16).ok())
        .unwrap_or(0)
}

/// The thread that checkpoints off the committer's path (a flush of a whole segment's writes
/// takes milliseconds).
pub struct Checkpointer {
    full: Sender<Checkpoint>,
    thread: JoinHandle<Vec<PathBuf>>,
    db: sled::Db,
    dir: PathBuf,
}

impl Checkpointer {
    /// Starts the thread for the store in `dir`.
    pub fn start(db: sled::Db, dir: PathBuf, fatal: Arc<Fatal>) -> Result<Self> {
        let (full, segments) = mpsc::channel::<Checkpoint>();
        let thread = {
            let (db, dir) = (db.clone(), dir.clone());
            thread::Builder::new()
                .name("checkpointer".into())
                .spawn(move || {
                    // Segments not yet retired: all of them were applied before the flush that
                    // retires them.
                    let mut unretired = Vec::new();
                    for done in segments {
                        unretired.push(done.segment);
                        let newest = sequence(unretired.last().expect("just pushed"));
                        match checkpoint(&db, &dir, done.commit, done.last_id, newest, true, &unretired) {
                            Ok(()) => unretired.clear(),
                            Err(e) if is_full(&e) => {
                                error!(error = %e, "checkpoint failed for lack of space; the write-ahead log keeps the writes and the next checkpoint retries")
                            }
                            Err(e) => {
                                fatal.raise(&e);
                                break;
                            }
                        }
                    }
                    unretired
                })
                .map_err(|e| StoreError::Thread("the checkpointer", e))?
        };
        Ok(Self { full, thread, db, dir })
    }

    /// Hands over a segment no longer written, whose every record has been applied to sled.
    pub fn retire(&self, done: Checkpoint) {
        // The thread only ends when `stop` closes the channel, or when the store failed.
        let _ = self.full.send(done);
    }

    /// Waits for the checkpoints under way, then checkpoints everything up to `last`, the
    /// segment being written, leaving no log behind.
    pub fn stop(self, last: Checkpoint) {
        drop(self.full);
        let mut left = self.thread.join().unwrap_or_default();
        left.push(last.segment);
        let newest = sequence(left.last().expect("just pushed"));
        if let Err(e) = checkpoint(&self.db, &self.dir, last.commit, last.last_id, newest, false, &left) {
            error!(error = %e, "cannot checkpoint at shutdown; the write-ahead log is replayed on the next start");
        }
    }
}

/// Whether a failure was for lack of space, which freeing space cures.
fn is_full(error: &StoreError) -> bool {
    let raw = |e: &io::Error| e.raw_os_error() == Some(libc::ENOSPC);
    match error {
        StoreError::Io { source, .. } => raw(source),
        _ => false,
    }
}
