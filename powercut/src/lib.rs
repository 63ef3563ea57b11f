//! A FUSE file system that loses, on command, everything a power cut would lose: for tests
//! that prove a program keeps what it promised to keep.
//!
//! `kill -9` proves little about durability, because the kernel's page cache survives the
//! process. [`Mount::power_cut`] drops the cache instead: every change that was not synced.
//! It runs in the test's own process (`fuser`, no libfuse), keeping everything in memory:
//! the model needs two versions of every file and directory, current and durable, which a
//! backing directory could hold only as two copies of its own, and test data is small.
//!
//! # The model
//!
//! Each file has its *current* bytes and size (what programs read now) and its *durable*
//! ones; each directory has its current entries (name → inode) and its durable entries.
//!
//! - `fsync(2)` and `fdatasync(2)` of a file make its current bytes and size durable, and
//!   nothing else: not its name in its directory.
//! - `fsync(2)` of a directory (FUSE's `fsyncdir`) makes its current entries durable: the
//!   creates, unlinks, renames into or out of it, `mkdir` and `rmdir` of its children. A
//!   rename between two directories is durable in each once that one is synced.
//! - [`Mount::power_cut`] rebuilds the tree from the durable state: starting at the root,
//!   each directory gets its durable entries back and each file its durable bytes and size;
//!   an inode that no chain of durable entries from the root reaches is gone. So a file
//!   created and fsynced whose directory was never synced is gone after a cut, as fsync(2)
//!   warns ("Calling fsync() does not necessarily ensure that the entry in the directory
//!   containing the file has also reached disk"), and a new file in a synced directory
//!   that was itself never synced comes back empty.
//! - A write to a file opened with `O_SYNC` or `O_DSYNC` makes that file's bytes and size
//!   durable as it returns, as an fdatasync after it would.
//! - Nothing else makes anything durable. `sync_file_range(2)` never reaches a FUSE file
//!   system (and on a disk it writes no metadata and flushes no cache: it is no sync);
//!   `sync(2)`, `syncfs(2)` and `close(2)` do not reach it either.
//!
//! The root directory itself always exists. A cut must come after every process using the
//! mount has died (the test kills it and waits for its exit): the cut waits a few seconds
//! for the kernel to close their files and fails if any stays open, since a process living
//! through a power cut cannot happen.
//!
//! # What it does not model
//!
//! - It drops *all* unsynced changes. A real disk may keep any subset of them, in any
//!   order, and tear a write at sector boundaries; a program that survives this model can
//!   still lose data to a reordering it does not survive. It never writes garbage either.
//! - Attributes other than the size (mode, owner, times) keep their current values.
//! - A failed fsync (see [`Mount::fail_next_fsync`]) changes nothing, and a later fsync
//!   that succeeds makes everything durable. Linux may instead mark the unwritten pages
//!   clean after the error, so that a retried fsync succeeds without writing them: a
//!   program must treat a failed fsync as data lost, which this model does not enforce.
//! - A directory that two durable entries name after a cut (moved between two directories
//!   both synced, one before the move and one after) keeps only the first entry in
//!   breadth-first name order from the root; a file may keep both, as two links.
//! - Symbolic links, hard links, device nodes and extended attributes are not supported
//!   (nothing that runs here uses them), nor `renameat2`'s `RENAME_EXCHANGE` and
//!   `RENAME_WHITEOUT` (EINVAL), nor `fallocate(2)` modes other than none and
//!   `FALLOC_FL_KEEP_SIZE` (EOPNOTSUPP). Files are opened in direct I/O mode, so shared
//!   memory mappings of them fail (ENODEV).
//!
//! # Stale caches
//!
//! After a cut, the kernel must not answer from what it cached before. Entries and
//! attributes are given a zero time to live, files are opened with `FOPEN_DIRECT_IO` (no
//! page cache) and directories without `FOPEN_CACHE_DIR`; inode numbers are never reused,
//! so an inode the kernel still knows from before a cut is either the same file or gone.
//! The tests check that a cut shows through at once: contents, sizes, listings and names.
//!
//! # Faults
//!
//! [`Mount::set_capacity`] limits the bytes all files may hold: a write or a size change
//! that would pass it fails with ENOSPC (whole: nothing of it is written), and so does a
//! create or `mkdir` once nothing is free; `statfs` reports the capacity and what is free.
//! [`Mount::fail_next_fsync`] makes the next fsync of a file or directory whose name
//! contains a fragment fail with EIO (or the next `O_SYNC` or `O_DSYNC` write to such a
//! file, whose bytes stay visible but not durable); [`Stats::injected_faults`] counts those
//! that fired.

mod data;
mod fuse;
mod tree;

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, MountOption};

use fuse::{PowerCutFs, Shared};
use tree::Owner;

/// How long a power cut waits for the kernel to close the files of processes that died.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// The power-cut file system, mounted; dropping it unmounts it.
#[derive(Debug)]
pub struct Mount {
    shared: Arc<Shared>,
    session: Option<BackgroundSession>,
    path: PathBuf,
}

/// What the file system has seen since it was mounted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `fsync` and `fdatasync` requests for files, failed ones included (writes that sync
    /// because of `O_SYNC` or `O_DSYNC` are not counted).
    pub fsyncs: u64,
    /// `fsync` requests for directories, failed ones included.
    pub dir_fsyncs: u64,
    /// Fsyncs failed on purpose (see [`Mount::fail_next_fsync`]).
    pub injected_faults: u64,
    /// Power cuts.
    pub cuts: u64,
    /// What the last power cut dropped.
    pub last_cut: CutReport,
}

/// What a power cut dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Bytes of file data lost: written (or cut off by a size change) since their file's
    /// last sync, or in a file that is gone.
    pub bytes_lost: u64,
    /// Files and directories that are gone.
    pub inodes_lost: u64,
    /// Directory entries put back as they were at their directory's last sync: names that
    /// reappeared, vanished or name another inode again.
    pub entries_reverted: u64,
}

impl Mount {
    /// Mounts an empty file system on `mountpoint`, an existing directory whose owner the
    /// root directory takes.
    ///
    /// Needs `/dev/fuse`; as root the mount is a plain mount(2), otherwise it goes through
    /// `fusermount3` (the fuse3 package).
    pub fn new(mountpoint: &Path) -> io::Result<Self> {
        let metadata = std::fs::metadata(mountpoint)?;
        let owner = Owner { perm: 0o755, uid: metadata.uid(), gid: metadata.gid() };
        let shared = Arc::new(Shared::new(owner));
        let mut config = fuser::Config::default();
        config.mount_options = vec![MountOption::FSName("papo-powercut".into())];
        let fs = PowerCutFs { shared: Arc::clone(&shared) };
        let session = fuser::spawn_mount(fs, mountpoint, &config).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot mount the power-cut file system on {}: {e}; it needs /dev/fuse, and \
                     fusermount3 (apt-get install fuse3) unless run as root",
                    mountpoint.display()
                ),
            )
        })?;
        Ok(Self { shared, session: Some(session), path: mountpoint.to_owned() })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drops every change no sync made durable (see the crate's documentation).
    ///
    /// Every process that used the mount must have exited: this waits up to 5 s for the
    /// kernel to close their files, then fails.
    pub fn power_cut(&self) -> io::Result<CutReport> {
        let deadline = Instant::now() + RELEASE_WAIT;
        let mut tree = self.shared.tree();
        while tree.has_open_handles() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::other(
                    "files on the power-cut mount are still open after 5 s: kill every process \
                     using it and wait for it to exit before the power cut",
                ));
            }
            tree = self.shared.wait_for_release(tree, left);
        }
        tree.power_cut().map_err(|e| io::Error::from_raw_os_error(e.code()))
    }

    /// Limits the bytes all files may hold together; `None` lifts the limit.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.shared.tree().set_capacity(bytes);
    }

    /// Makes the next fsync of a file or directory whose name contains `name_fragment`
    /// (or the next `O_SYNC` or `O_DSYNC` write to such a file) fail with EIO; each call
    /// adds one such fault.
    pub fn fail_next_fsync(&self, name_fragment: &str) {
        self.shared.tree().fail_next_fsync(name_fragment);
    }

    /// What the file system has seen so far.
    pub fn stats(&self) -> Stats {
        self.shared.tree().stats()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            // Unmounting ends the session's thread; if it fails (a process still uses the
            // mount) the session's own drop tries again, and there is nothing else to do.
            let _ = session.umount_and_join();
        }
    }
}
