//! Opening a store: every check that stands between a damaged store and one that silently
//! shrinks.
//!
//! In order: the directory is created private (or a warning says it is not) and locked;
//! the manifest says which format the files are in and how far the last checkpoint
//! reached; sled opens (a panic on damaged files becomes an error naming them) and its new
//! files are made durable at once; the database must reach the checkpoint; the log's
//! segments after the checkpoint must all be there and replay cleanly, numbered without a
//! gap, and the database must not be ahead of them; a format-0 store is migrated; then a
//! checkpoint makes all of that durable, a new segment is started and the manifest written,
//! and only then are the replayed segments retired. Nothing is written to the store before
//! every check has passed, so a refusal leaves the files as they were.

use std::path::Path;
use std::sync::Arc;

use tracing::info;

use super::checkpoint::checkpoint;
use super::commit::{Committer, Start, Trees};
use super::fatal::Fatal;
use super::files::{self, DirLock, Sentinel};
use super::manifest::{self, Manifest};
use super::wal::{self, Expect, Wal};
use super::{migrate, IoContext, Result, StoreError, StoreOptions};

/// The log's directory inside the data directory.
pub const WAL_DIR: &str = "wal";

/// sled's main file in the data directory.
const SLED_DB: &str = "db";

/// An open store's parts.
pub struct Opened {
    pub committer: Committer,
    pub trees: Trees,
    pub fatal: Arc<Fatal>,
    pub lock: DirLock,
}

/// Opens (or creates) the store in `dir`.
pub fn open(dir: &Path, options: StoreOptions) -> Result<Opened> {
    files::prepare_dir(dir)?;
    let lock = DirLock::acquire(dir)?;
    let manifest = Manifest::read(dir)?;
    if let Some(found) = manifest.filter(|m| m.format > manifest::FORMAT) {
        return Err(StoreError::NewerFormat {
            dir: dir.to_owned(),
            found: found.format,
            supported: manifest::FORMAT,
        });
    }
    let wal_dir = dir.join(WAL_DIR);
    files::prepare_dir(&wal_dir)?;
    let had_segments = std::fs::read_dir(&wal_dir)
        .at("list", &wal_dir)?
        .filter_map(Result::ok)
        .any(|entry| entry.path().extension().is_some_and(|extension| extension == "log"));
    let trees = open_sled(dir, options.cache_bytes)?;
    // sled never syncs the files it creates; they must be durable before anything is
    // acknowledged on top of them.
    files::sync_sled(dir)?;

    let manifest = match manifest {
        Some(manifest) => manifest,
        None if had_segments || !is_empty(&trees)? => Manifest { format: 0, ..Manifest::new() },
        None => {
            // A new store: its manifest exists before any of its data does.
            let fresh = Manifest::new();
            fresh.write(dir)?;
            info!(data_dir = %dir.display(), "created a new store");
            fresh
        }
    };
    let applied = trees.applied_commit()?;
    let lost = |found| StoreError::LostWrites {
        dir: dir.to_owned(),
        found,
        expected: manifest.checkpoint_commit,
        messages: manifest.checkpoint_last_id,
    };
    if applied < manifest.checkpoint_commit {
        return Err(lost(applied));
    }
    let legacy = manifest.format == 0;
    let expect = Expect {
        retired_through: manifest.retired_through,
        next_segment_exists: manifest.next_segment_exists,
        first_commit: (!legacy).then_some(manifest.checkpoint_commit + 1),
    };
    let replayed = wal::replay(&wal_dir, expect, |_, payload| trees.replay(payload))?;
    let last_commit = if legacy { 0 } else { replayed.last_commit.unwrap_or(manifest.checkpoint_commit) };
    if applied > last_commit {
        return Err(StoreError::DamagedLog {
            path: wal_dir.clone(),
            offset: 0,
            reason: format!(
                "the log ends at commit {last_commit}, but the database has applied commit {applied}: the newest log segment is missing or was cut short"
            ),
        });
    }
    if legacy {
        migrate::run(&trees, crate::clock::now_millis())?;
    }
    // After the replay, which may bring format-1 entries from the log. The checkpoint below
    // then writes the manifest in the current format.
    if manifest.format == 1 {
        migrate::resends_of_format1(&trees)?;
    }
    if manifest.format < 3 {
        migrate::accounts_of_format2(&trees)?;
    }
    let last_id = trees.last_id()?;
    if last_id < manifest.checkpoint_last_id {
        return Err(lost(applied));
    }

    wal::prepare_spare(&wal_dir, options.wal_segment)?;
    let wal = Wal::create(&wal_dir, options.wal_segment, replayed.next_sequence)?;
    // Everything replayed or migrated becomes durable in sled before the log lets it go.
    checkpoint(&trees.db, dir, last_commit, last_id, wal.sequence() - 1, true, &replayed.segments)?;
    if replayed.records > 0 {
        info!(records = replayed.records, segments = replayed.segments.len(), "replayed the write-ahead log");
    }

    let fatal = Arc::new(Fatal::default());
    let committer = Committer::start(Start {
        trees: trees.clone(),
        wal,
        last_id,
        last_commit,
        gap: options.commit_gap,
        reserve: options.reserve_bytes,
        dir: dir.to_owned(),
        db_file: Sentinel::open(&dir.join(SLED_DB))?,
        fatal: Arc::clone(&fatal),
    })?;
    Ok(Opened { committer, trees, fatal, lock })
}

/// Opens sled's trees; damage it panics on becomes an error.
pub fn open_sled(dir: &Path, cache_bytes: u64) -> Result<Trees> {
    // The caller holds the directory's lock, so sled's own lock on its file can only be held
    // by a store this process just dropped: sled's background writers close the file a
    // moment after the database is dropped. Waiting that out is bounded.
    let deadline = std::time::Instant::now() + SLED_LOCK_WAIT;
    loop {
        match try_open_sled(dir, cache_bytes) {
            Err(StoreError::InUse { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => return opened,
        }
    }
}

/// How long [`open_sled`] waits for a dropped store's background writers to let go.
const SLED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn try_open_sled(dir: &Path, cache_bytes: u64) -> Result<Trees> {
    let damaged = |reason: String| StoreError::DamagedDatabase { dir: dir.to_owned(), reason };
    let opened = std::panic::catch_unwind(|| -> Result<Trees> {
        // No background flusher: the write-ahead log makes writes durable, and sled is
        // flushed only at its checkpoints.
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .open()?;
        let users = db.open_tree("users")?;
        let tokens = db.open_tree("tokens")?;
        let chat = db.open_tree("chat")?;
        Ok(Trees { db, chat, users, tokens })
    });
    match opened {
        Ok(Ok(trees)) => Ok(trees),
        Ok(Err(StoreError::Sled(sled::Error::Io(e)))) if e.to_string().contains("could not acquire lock") => {
            Err(StoreError::InUse { dir: dir.to_owned(), pid: None })
        }
        Ok(Err(StoreError::Sled(sled::Error::Io(e)))) => Err(e).at("open the database in", dir),
        Ok(Err(StoreError::Sled(sled::Error::Corruption { at, .. }))) => {
            Err(damaged(format!("sled found corruption at {at:?}")))
        }
        Ok(Err(e)) => Err(e),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("it panicked");
            Err(damaged(format!("sled panicked reading it: {reason}")))
        }
    }
}

fn is_empty(trees: &Trees) -> Result<bool> {
    Ok(trees.users.is_empty() && trees.tokens.is_empty() && trees.chat.is_empty())
}
