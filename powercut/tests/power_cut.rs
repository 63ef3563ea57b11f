//! The model, through real system calls on a real mount: what a cut keeps and drops, the
//! faults, and that the kernel shows a cut at once. Without a usable /dev/fuse every test
//! fails, saying why.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use papo_powercut::{CutReport, Mount};

/// A mount on a fresh directory; unmounted before the directory is removed.
struct Fixture {
    mount: Mount,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mount = Mount::new(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        Self { mount, _dir: dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.mount.path().join(name)
    }

    fn cut(&self) -> CutReport {
        self.mount.power_cut().expect("power cut")
    }
}

/// Writes `bytes` to a new file `path` and fsyncs it (not its directory).
fn write_synced(path: &Path, bytes: &[u8]) {
    let mut file = File::create(path).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

fn sync_dir(path: &Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

/// Asserts that `bytes` are `len` times `byte`, without printing thousands of them.
fn assert_all(bytes: &[u8], byte: u8, len: usize, what: &str) {
    let other = bytes.iter().position(|&b| b != byte);
    assert!(bytes.len() == len && other.is_none(), "{what}: {} bytes, first other at {other:?}", bytes.len());
}

fn errno(result: io::Result<impl std::fmt::Debug>) -> i32 {
    result.expect_err("the call must fail").raw_os_error().expect("an OS error")
}

#[test]
fn an_unsynced_write_is_lost_and_a_synced_one_kept() {
    let fx = Fixture::new();
    let path = fx.path("log");
    write_synced(&path, b"kept");
    sync_dir(fx.mount.path());
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b" and lost").unwrap();
    drop(file);
    assert_eq!(fs::read(&path).unwrap(), b"kept and lost", "programs see the write before the cut");

    let report = fx.cut();
    assert_eq!(fs::read(&path).unwrap(), b"kept");
    assert_eq!(report, CutReport { bytes_lost: 9, inodes_lost: 0, entries_reverted: 0 });
    assert_eq!(fx.mount.stats().cuts, 1);
}

#[test]
fn a_new_file_synced_in_a_directory_never_synced_is_gone() {
    let fx = Fixture::new();
    write_synced(&fx.path("orphan"), b"data");
    assert!(fx.mount.stats().fsyncs >= 1);
    let report = fx.cut();
    assert!(!fx.path("orphan").exists());
    assert_eq!(report.inodes_lost, 1);
    assert_eq!(report.bytes_lost, 4, "its bytes were durable, but nothing reaches them");
}

#[test]
fn a_new_file_synced_in_a_synced_directory_is_kept() {
    let fx = Fixture::new();
    write_synced(&fx.path("kept"), b"data");
    sync_dir(fx.mount.path());
    assert_eq!(fx.cut(), CutReport::default());
    assert_eq!(fs::read(fx.path("kept")).unwrap(), b"data");
}

#[test]
fn a_new_file_whose_bytes_were_never_synced_comes_back_empty() {
    let fx = Fixture::new();
    fs::write(fx.path("empty"), b"never synced").unwrap();
    sync_dir(fx.mount.path());
    fx.cut();
    assert_eq!(fs::read(fx.path("empty")).unwrap(), b"");
}

#[test]
fn a_rename_is_durable_only_once_its_directory_is_synced() {
    let fx = Fixture::new();
    write_synced(&fx.path("a"), b"first");
    write_synced(&fx.path("target"), b"replaced");
    sync_dir(fx.mount.path());

    fs::rename(fx.path("a"), fx.path("target")).unwrap();
    assert_eq!(names(fx.mount.path()), ["target"]);
    let report = fx.cut();
    assert_eq!(names(fx.mount.path()), ["a", "target"]);
    assert_eq!(fs::read(fx.path("target")).unwrap(), b"replaced", "the replaced file is back");
    assert_eq!(report.entries_reverted, 2);

    fs::rename(fx.path("a"), fx.path("target")).unwrap();
    sync_dir(fx.mount.path());
    fx.cut();
    assert_eq!(names(fx.mount.path()), ["target"]);
    assert_eq!(fs::read(fx.path("target")).unwrap(), b"first");
}

#[test]
fn renameat2_noreplace_refuses_an_existing_name() {
    let fx = Fixture::new();
    fs::write(fx.path("a"), b"a").unwrap();
    fs::write(fx.path("b"), b"b").unwrap();
    let dir = File::open(fx.mount.path()).unwrap();
    // SAFETY: both names are NUL-terminated literals and the descriptor is open.
    let renamed = unsafe {
        libc::renameat2(
            dir.as_raw_fd(),
            c"a".as_ptr(),
            dir.as_raw_fd(),
            c"b".as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    assert_eq!(renamed, -1);
    assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EEXIST));
    assert_eq!(fs::read(fx.path("b")).unwrap(), b"b");
}

#[test]
fn a_move_between_directories_is_durable_in_each_once_that_one_is_synced() {
    let fx = Fixture::new();
    fs::create_dir(fx.path("from")).unwrap();
    fs::create_dir(fx.path("to")).unwrap();
    write_synced(&fx.path("from/f"), b"moved");
    sync_dir(&fx.path("from"));
    sync_dir(fx.mount.path());

    fs::rename(fx.path("from/f"), fx.path("to/f")).unwrap();
    sync_dir(&fx.path("to"));
    fx.cut();
    // The source directory still names it too: the strict model keeps both names.
    assert_eq!(fs::read(fx.path("from/f")).unwrap(), b"moved");
    assert_eq!(fs::read(fx.path("to/f")).unwrap(), b"moved");
    assert_eq!(fs::metadata(fx.path("to/f")).unwrap().nlink(), 2);

    fs::remove_file(fx.path("from/f")).unwrap();
    sync_dir(&fx.path("from"));
    fx.cut();
    assert_eq!(names(&fx.path("from")), Vec::<String>::new());
    assert_eq!(fs::read(fx.path("to/f")).unwrap(), b"moved");
}

#[test]
fn an_unlink_is_durable_only_once_its_directory_is_synced() {
    let fx = Fixture::new();
    write_synced(&fx.path("f"), b"still here");
    sync_dir(fx.mount.path());

    fs::remove_file(fx.path("f")).unwrap();
    assert!(!fx.path("f").exists());
    fx.cut();
    assert_eq!(fs::read(fx.path("f")).unwrap(), b"still here");

    fs::remove_file(fx.path("f")).unwrap();
    sync_dir(fx.mount.path());
    let report = fx.cut();
    assert!(!fx.path("f").exists());
    assert_eq!(report.inodes_lost, 0, "the file was freed at the durable unlink, not by the cut");
}

#[test]
fn a_file_unlinked_while_open_stays_readable_until_closed() {
    let fx = Fixture::new();
    fs::write(fx.path("f"), b"open").unwrap();
    let mut file = File::open(fx.path("f")).unwrap();
    fs::remove_file(fx.path("f")).unwrap();
    let mut read = String::new();
    file.read_to_string(&mut read).unwrap();
    assert_eq!(read, "open");
}

#[test]
fn size_changes_are_durable_with_the_bytes() {
    let fx = Fixture::new();
    let path = fx.path("f");
    write_synced(&path, &[7; 10_000]);
    sync_dir(fx.mount.path());
    let file = OpenOptions::new().write(true).open(&path).unwrap();

    file.set_len(100).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), 100);
    drop(file);
    let report = fx.cut();
    assert_all(&fs::read(&path).unwrap(), 7, 10_000, "the truncation was not synced");
    assert_eq!(report.bytes_lost, 9_900);

    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(100).unwrap();
    file.sync_data().unwrap();
    file.set_len(20_000).unwrap();
    file.sync_all().unwrap();
    drop(file);
    fx.cut();
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 20_000);
    assert_all(&bytes[..100], 7, 100, "the synced truncation");
    assert_all(&bytes[100..], 0, 19_900, "an extension reads as zeros");
}

#[test]
fn a_write_to_a_file_opened_o_dsync_is_durable_at_once() {
    let fx = Fixture::new();
    write_synced(&fx.path("f"), b"");
    sync_dir(fx.mount.path());
    let fsyncs = fx.mount.stats().fsyncs;
    let mut file = OpenOptions::new().write(true).custom_flags(libc::O_DSYNC).open(fx.path("f")).unwrap();
    file.write_all(b"durable").unwrap();
    drop(file);
    assert_eq!(fx.mount.stats().fsyncs, fsyncs, "the kernel sent no fsync: the write itself syncs");
    fx.cut();
    assert_eq!(fs::read(fx.path("f")).unwrap(), b"durable");
}

#[test]
fn fallocate_grows_a_file_or_keeps_its_size() {
    let fx = Fixture::new();
    let file = File::create(fx.path("f")).unwrap();
    let fd = file.as_raw_fd();
    // SAFETY: plain system calls on an open descriptor.
    let (grown, kept, punched) = unsafe {
        (
            libc::fallocate(fd, 0, 0, 8192),
            libc::fallocate(fd, libc::FALLOC_FL_KEEP_SIZE, 0, 65536),
            libc::fallocate(fd, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 0, 4096),
        )
    };
    assert_eq!((grown, kept), (0, 0));
    assert_eq!(punched, -1, "punching holes is not supported");
    assert_eq!(file.metadata().unwrap().len(), 8192);
}

#[test]
fn nested_directories_survive_only_if_every_level_is_synced() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.path("a/b")).unwrap();
    write_synced(&fx.path("a/b/f"), b"deep");
    sync_dir(&fx.path("a/b"));
    sync_dir(&fx.path("a"));
    let report = fx.cut();
    assert!(!fx.path("a").exists(), "the root never named a durably");
    assert_eq!(report.inodes_lost, 3);

    fs::create_dir_all(fx.path("a/b")).unwrap();
    write_synced(&fx.path("a/b/f"), b"deep");
    for dir in ["a/b", "a", ""] {
        sync_dir(&fx.path(dir));
    }
    fx.cut();
    assert_eq!(fs::read(fx.path("a/b/f")).unwrap(), b"deep");

    fs::remove_file(fx.path("a/b/f")).unwrap();
    fs::remove_dir(fx.path("a/b")).unwrap();
    sync_dir(&fx.path("a"));
    fx.cut();
    assert_eq!(names(&fx.path("a")), Vec::<String>::new(), "the rmdir was synced");
}

#[test]
fn writes_past_the_capacity_fail_with_enospc() {
    let fx = Fixture::new();
    fx.mount.set_capacity(Some(64 * 1024));
    let mut file = File::create(fx.path("f")).unwrap();
    file.write_all(&[1; 60 * 1024]).unwrap();
    assert_eq!(errno(file.write_at(&[2; 8 * 1024], 60 * 1024)), libc::ENOSPC);
    assert_eq!(file.metadata().unwrap().len(), 60 * 1024, "a refused write writes nothing");
    file.write_all_at(&[3; 1024], 0).unwrap();
    assert_eq!(errno(file.set_len(65 * 1024)), libc::ENOSPC);
    file.write_all(&[4; 4 * 1024]).unwrap();
    assert_eq!(errno(File::create(fx.path("g"))), libc::ENOSPC, "nothing free, not even for a name");
    assert_eq!(errno(fs::create_dir(fx.path("d"))), libc::ENOSPC);

    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    let path = std::ffi::CString::new(fx.mount.path().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path and room for the answer.
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) }, 0);
    // SAFETY: statvfs succeeded, so it filled the struct.
    let stat = unsafe { stat.assume_init() };
    assert_eq!((stat.f_blocks * stat.f_frsize, stat.f_bavail), (64 * 1024, 0));

    fx.mount.set_capacity(None);
    file.write_all(&[5; 8 * 1024]).unwrap();
}

#[test]
fn an_injected_fault_fails_the_next_fsync_of_a_matching_name_once() {
    let fx = Fixture::new();
    let log = fx.path("0001.log");
    write_synced(&log, b"durable");
    sync_dir(fx.mount.path());
    fx.mount.fail_next_fsync(".log");

    let other = File::create(fx.path("other")).unwrap();
    other.sync_all().expect("another name is not affected");
    let mut file = OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(b" and more").unwrap();
    assert_eq!(errno(file.sync_data()), libc::EIO);
    assert_eq!(fx.mount.stats().injected_faults, 1);
    drop((file, other));
    fx.cut();
    assert_eq!(fs::read(&log).unwrap(), b"durable", "the failed fsync made nothing durable");

    let mut file = OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(b" and more").unwrap();
    file.sync_data().expect("the fault fired once");
    drop(file);
    fx.cut();
    assert_eq!(fs::read(&log).unwrap(), b"durable and more");
    assert_eq!(fx.mount.stats().injected_faults, 1);
}

#[test]
fn the_kernel_serves_nothing_stale_after_a_cut() {
    let fx = Fixture::new();
    let path = fx.path("f");
    write_synced(&path, &[b'a'; 8192]);
    write_synced(&fx.path("old"), b"old");
    sync_dir(fx.mount.path());

    let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    file.write_all_at(&[b'b'; 8192], 8192).unwrap();
    file.write_all_at(&[b'c'; 100], 0).unwrap();
    // Read everything once, through another descriptor, and stat it: whatever the kernel
    // could cache, it has now.
    let seen = fs::read(&path).unwrap();
    assert_eq!((seen.len(), seen[0], seen[8192]), (16384, b'c', b'b'));
    assert_eq!(fs::metadata(&path).unwrap().len(), 16384);
    fs::write(fx.path("new"), b"new").unwrap();
    fs::remove_file(fx.path("old")).unwrap();
    assert_eq!(names(fx.mount.path()), ["f", "new"]);
    drop(file);

    fx.cut();
    assert_eq!(fs::metadata(&path).unwrap().len(), 8192);
    assert_all(&fs::read(&path).unwrap(), b'a', 8192, "the durable bytes");
    let mut start = [0; 100];
    File::open(&path).unwrap().read_exact_at(&mut start, 0).unwrap();
    assert_eq!(start, [b'a'; 100]);
    assert_eq!(names(fx.mount.path()), ["f", "old"]);
    assert_eq!(fs::metadata(fx.path("new")).unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(fs::read(fx.path("old")).unwrap(), b"old");
}

#[test]
fn flock_is_exclusive_on_the_mount() {
    let fx = Fixture::new();
    let first = File::create(fx.path("db")).unwrap();
    let second = File::open(fx.path("db")).unwrap();
    // SAFETY: flock on open descriptors.
    let (taken, refused) = unsafe {
        (
            libc::flock(first.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB),
            libc::flock(second.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB),
        )
    };
    assert_eq!((taken, refused), (0, -1));
    assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EWOULDBLOCK));
}

#[test]
fn a_cut_waits_for_files_to_be_closed_and_refuses_while_one_stays_open() {
    let fx = Fixture::new();
    let mut file = File::create(fx.path("f")).unwrap();
    file.write_all(b"lost").unwrap();
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(file);
    });
    fx.cut();
    closer.join().unwrap();
    assert!(!fx.path("f").exists());

    let _held = File::create(fx.path("held")).unwrap();
    let started = Instant::now();
    let refused = fx.mount.power_cut().expect_err("a file is still open");
    assert!(refused.to_string().contains("still open"), "{refused}");
    assert!(started.elapsed() >= Duration::from_secs(5), "it waited for the file to be closed");
    assert_eq!(fx.mount.stats().cuts, 1);
}
