//! The data directory as files: who may read it, who holds it, how full its disk is, and
//! how sled's files are made durable.
//!
//! sled 0.34 never calls `fsync` once we turn its flusher off, and its `flush` only calls
//! `sync_file_range(2)`, which by its man page makes neither a file's size nor its metadata
//! durable; the `conf` file it writes when it creates a database is never synced at all. A
//! power cut could leave both empty, and sled then starts a new, empty database over them.
//! So after each of sled's flushes, and once after it opens, every file sled keeps and every
//! directory holding them is synced here before anything depends on them.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::{IoContext, Result, StoreError};

/// The file whose lock marks the data directory as taken, holding the owner's process id.
const LOCK: &str = "lock";

/// sled's directory of values too large for its log.
const SLED_BLOBS: &str = "blobs";

/// Creates `dir` (and its parents) readable by its owner only, or warns if an existing one
/// is open to others: it holds every message and the password hashes.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    let existed = dir.exists();
    DirBuilder::new().recursive(true).mode(0o700).create(dir).at("create the data directory", dir)?;
    if !existed {
        // A new directory's own name is durable only once its parent is synced.
        if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    let mode = fs::metadata(dir).at("read the data directory", dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        warn!(
            data_dir = %dir.display(),
            mode = format!("{mode:04o}"),
            "the data directory is open to other users, who can read every message and password hash; run `chmod 700` on it"
        );
    }
    Ok(())
}

/// Exclusive use of a data directory, for as long as this lives.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the data directory, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .at("open the lock file", &path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(StoreError::InUse { dir: dir.to_owned(), pid: holder.trim().parse().ok() });
            }
            Err(fs::TryLockError::Error(e)) => return Err(e).at("lock", &path),
        }
        // Only for the message above: the lock itself, not this number, is what excludes.
        let pid = std::process::id().to_string();
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()))
            .at("write the lock file", &path)?;
        Ok(Self { _file: file })
    }
}

/// Syncs every file sled keeps in `dir`, and the directories that name them.
pub fn sync_sled(dir: &Path) -> Result<()> {
    let blobs = dir.join(SLED_BLOBS);
    if blobs.is_dir() {
        sync_files_in(&blobs)?;
    }
    sync_files_in(dir)
}

/// Syncs the regular files directly in `dir`, then `dir` itself.
fn sync_files_in(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).at("list", dir)? {
        let entry = entry.at("list", dir)?;
        let path = entry.path();
        if entry.file_type().at("inspect", &path)?.is_file() {
            sync_file(&path)?;
        }
    }
    sync_dir(dir)
}

fn sync_file(path: &Path) -> Result<()> {
    match File::open(path) {
        Ok(file) => file.sync_all().at("sync", path),
        // sled deletes old snapshots and blobs by itself; what is gone needs no sync.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at("open", path),
    }
}

/// Makes the entries of `dir` (files created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|dir| dir.sync_all()).at("sync the directory", dir)
}

/// Bytes that unprivileged writers may still use on the file system holding `dir`.
pub fn free_space(dir: &Path) -> io::Result<u64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `stats` is writable space for one statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let stats = unsafe { stats.assume_init() };
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// A file the store keeps open to notice if it is deleted under it (an `rm -rf` of the data
/// directory while the server runs leaves every open file working, and nothing durable).
#[derive(Debug)]
pub struct Sentinel {
    path: PathBuf,
    file: File,
}

impl Sentinel {
    /// Watches the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).at("open", path)?;
        Ok(Self { path: path.to_owned(), file })
    }

    /// Fails if the file no longer has a name.
    pub fn check(&self) -> Result<()> {
        check_linked(&self.file, &self.path)
    }
}

/// Fails if `file`, opened from `path`, no longer has a name.
///
/// Asks for the link count alone: a query that includes the file's timestamps makes the
/// kernel (since Linux 6.13) give the next write a fine-grained, hence always new,
/// timestamp, and on ext4 without a journal every sync after it writes the inode too. Asked
/// before each log append, that was a second disk write per sync (+60–90 µs at p50).
pub fn check_linked(file: &File, path: &Path) -> Result<()> {
    if links(file).at("inspect", path)? == 0 {
        return Err(StoreError::Vanished { path: path.to_owned() });
    }
    Ok(())
}

fn links(file: &File) -> io::Result<u64> {
    let mut stats = std::mem::MaybeUninit::<libc::statx>::uninit();
    // SAFETY: the path is an empty C string, which AT_EMPTY_PATH makes mean the open file
    // itself, and `stats` is writable space for one statx.
    let status = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_NLINK,
            stats.as_mut_ptr(),
        )
    };
    if status != 0 {
        let error = io::Error::last_os_error();
        // A kernel before 4.11, or a seccomp filter that refuses statx: fstat, as std does.
        return match error.raw_os_error() {
            Some(libc::ENOSYS | libc::EPERM) => fstat_links(file),
            _ => Err(error),
        };
    }
    // SAFETY: statx returned 0, so it filled the struct.
    let stats = unsafe { stats.assume_init() };
    if stats.stx_mask & libc::STATX_NLINK == 0 {
        return fstat_links(file);
    }
    Ok(u64::from(stats.stx_nlink))
}

fn fstat_links(file: &File) -> io::Result<u64> {
    let mut stats = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `stats` is writable space for one stat.
    if unsafe { libc::fstat(file.as_raw_fd(), stats.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat returned 0, so it filled the struct.
    let stats = unsafe { stats.assume_init() };
    // nlink_t is narrower than u64 on some targets.
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(stats.st_nlink))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_data_directory_is_private_and_a_second_owner_is_named() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("nested/data");
        prepare_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        let _held = DirLock::acquire(&dir).unwrap();
        assert_eq!(fs::metadata(dir.join(LOCK)).unwrap().permissions().mode() & 0o777, 0o600);
        match DirLock::acquire(&dir) {
            Err(StoreError::InUse { dir: named, pid }) => {
                assert_eq!(named, dir);
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(_held);
        DirLock::acquire(&dir).expect("free again once the holder is gone");
    }

    #[test]
    fn a_deleted_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        fs::write(&path, b"x").unwrap();
        let sentinel = Sentinel::open(&path).unwrap();
        sentinel.check().unwrap();
        fs::remove_file(&path).unwrap();
        assert!(matches!(sentinel.check(), Err(StoreError::Vanished { .. })));
    }

    #[test]
    fn free_space_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(dir.path()).unwrap() > 0);
    }
}
