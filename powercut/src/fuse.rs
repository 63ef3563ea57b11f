//! The FUSE side: each kernel request becomes one call into the [`Tree`], under its lock.
//!
//! Nothing the kernel could keep may outlive a power cut, so every reply tells it to keep
//! nothing: entries and attributes have a zero time to live (each path walk asks again),
//! files are opened with `FOPEN_DIRECT_IO` (reads and writes reach us, never the page
//! cache), and directories without `FOPEN_CACHE_DIR`. Locks are left to the kernel: without
//! `FUSE_POSIX_LOCKS` or `FUSE_FLOCK_LOCKS` it keeps `flock` and `fcntl` locks locally.

use std::ffi::OsStr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use fuser::{
    BsdFileFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::tree::{Changes, Owner, Tree};

/// How long the kernel may trust an entry or attributes: not at all.
const TTL: Duration = Duration::ZERO;

/// The tree, and the signal that a handle was closed (a power cut waits for the last one).
#[derive(Debug)]
pub struct Shared {
    tree: Mutex<Tree>,
    released: Condvar,
}

impl Shared {
    /// An empty file system whose root belongs to `owner`.
    pub fn new(owner: Owner) -> Self {
        Self { tree: Mutex::new(Tree::new(owner)), released: Condvar::new() }
    }

    /// The tree, locked.
    pub fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits up to `timeout` for a handle to be closed.
    pub fn wait_for_release<'a>(
        &self,
        tree: MutexGuard<'a, Tree>,
        timeout: Duration,
    ) -> MutexGuard<'a, Tree> {
        self.released.wait_timeout(tree, timeout).unwrap_or_else(PoisonError::into_inner).0
    }
}

/// The file system the kernel talks to.
#[derive(Debug)]
pub struct PowerCutFs {
    /// State shared with the [`crate::Mount`].
    pub shared: Arc<Shared>,
}

impl PowerCutFs {
    fn release_handle(&self, fh: FileHandle, reply: ReplyEmpty) {
        let released = self.shared.tree().release(fh.0);
        self.shared.released.notify_all();
        empty(released, reply);
    }
}

impl Filesystem for PowerCutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.shared.tree().lookup(parent.0, name) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.shared.tree().attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let changes = Changes { mode, uid, gid, size, atime, mtime };
        match self.shared.tree().set_attr(ino.0, &changes) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        match self.shared.tree().mkdir(parent.0, name, owner(req, mode, umask)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.shared.tree().unlink(parent.0, name), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.shared.tree().rmdir(parent.0, name), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        empty(self.shared.tree().rename(parent.0, name, newparent.0, newname, flags), reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.shared.tree().open(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.shared.tree().read(ino.0, offset, size) {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // The kernel sends no fsync for these in direct I/O mode: the write itself must sync.
        // O_SYNC includes the O_DSYNC bit.
        let sync = flags.0 & libc::O_DSYNC != 0;
        match self.shared.tree().write(ino.0, offset, data, sync) {
            Ok(written) => reply.written(written),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) is no sync: nothing becomes durable here.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.release_handle(fh, reply);
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        empty(self.shared.tree().fsync(ino.0), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.shared.tree().open(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let mut tree = self.shared.tree();
        let entries = match tree.read_dir(fh.0, offset) {
            Ok(entries) => entries,
            Err(e) => return reply.error(e),
        };
        for (next, entry) in (offset + 1..).zip(entries) {
            if reply.add(INodeNo(entry.ino), next, entry.kind, &entry.name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.release_handle(fh, reply);
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        empty(self.shared.tree().fsyncdir(ino.0), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (blocks, free, inodes, block) = self.shared.tree().space();
        let block = u32::try_from(block).expect("the block size is 4096");
        // Inodes are only limited by memory, so the count of free ones is just large.
        let free_inodes = u64::from(u32::MAX);
        reply.statfs(blocks, free, free, inodes + free_inodes, free_inodes, block, 255, block);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.shared.tree().create(parent.0, name, owner(req, mode, umask)) {
            Ok((attr, fh)) => {
                reply.created(&TTL, &attr, Generation(0), FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO)
            }
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut tree = self.shared.tree();
        let allocated = match mode {
            0 => offset.checked_add(length).ok_or(Errno::EFBIG).and_then(|end| tree.allocate(ino.0, end)),
            // Reserving blocks without growing the file changes nothing a cut could lose.
            libc::FALLOC_FL_KEEP_SIZE => tree.attr(ino.0).map(drop),
            // Punching holes, zeroing or collapsing ranges: nothing here uses them.
            _ => Err(Errno::EOPNOTSUPP),
        };
        empty(allocated, reply);
    }
}

fn owner(req: &Request, mode: u32, umask: u32) -> Owner {
    Owner { perm: (mode & !umask & 0o7777) as u16, uid: req.uid(), gid: req.gid() }
}

fn empty(result: Result<(), Errno>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}
