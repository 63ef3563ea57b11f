//! The file system's state, current and durable, and what a power cut leaves of it.
//!
//! Every inode keeps what programs see now and what a sync made durable: a file its bytes, a
//! directory its entries. A cut rebuilds the tree from the durable entries, starting at the
//! root, so an inode survives only if a chain of synced directories names it. Between cuts,
//! an inode is freed as soon as nothing can reach it: no entry names it now, no durable entry
//! names it (a cut could bring it back) and no handle is open on it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use fuser::{Errno, FileAttr, FileType, INodeNo, RenameFlags, TimeOrNow};

use crate::data::Data;
use crate::{CutReport, Stats};

/// An inode number.
pub type Ino = u64;

/// The root directory's inode number (FUSE's).
pub const ROOT: Ino = 1;

/// Longest name an entry may have, as on Linux's own file systems.
const NAME_MAX: usize = 255;

/// Free space `statfs` reports without a capacity: the data lives in memory, so there is no
/// real limit to report, only one large enough for any test.
const UNLIMITED: u64 = 1 << 40;

/// Bytes per block in `statfs`.
const BLOCK: u64 = 4096;

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The inode it names.
    pub ino: Ino,
    /// What the inode is.
    pub kind: FileType,
    /// The entry's name.
    pub name: OsString,
}

/// The attributes `setattr` may change; `None` leaves one as it is.
#[derive(Debug, Default)]
pub struct Changes {
    /// New permission bits (and file type bits, which are ignored).
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size of a file.
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<TimeOrNow>,
    /// New modification time.
    pub mtime: Option<TimeOrNow>,
}

/// Who creates an inode, with which permission bits.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    /// Permission bits.
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// The whole file system.
#[derive(Debug)]
pub struct Tree {
    inodes: HashMap<Ino, Inode>,
    next_ino: Ino,
    handles: HashMap<u64, Handle>,
    next_handle: u64,
    capacity: Option<u64>,
    /// Bytes in all files now (their current sizes).
    used: u64,
    /// Name fragments whose next fsync fails, oldest first.
    fsync_faults: Vec<String>,
    stats: Stats,
}

#[derive(Debug)]
struct Inode {
    node: Node,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    /// The name it was last given, which injected faults match.
    name: OsString,
    /// Entries that name it now.
    links: u32,
    /// Durable entries that name it: while there are any, a cut may bring it back.
    durable_links: u32,
    /// Open handles.
    open: u32,
}

#[derive(Debug)]
enum Node {
    File {
        current: Data,
        durable: Data,
        /// Bytes written or cut off since the last sync.
        unsynced: u64,
    },
    Dir {
        current: BTreeMap<OsString, Ino>,
        durable: BTreeMap<OsString, Ino>,
        parent: Ino,
    },
}

#[derive(Debug)]
struct Handle {
    ino: Ino,
    /// A directory's listing, taken when it is read from the start, so entries added or
    /// removed meanwhile do not shift the offsets of the others.
    listing: Vec<Entry>,
}

impl Tree {
    /// An empty file system: a root directory owned by `owner`.
    pub fn new(owner: Owner) -> Self {
        let root = Inode::new(
            Node::Dir { current: BTreeMap::new(), durable: BTreeMap::new(), parent: ROOT },
            OsString::new(),
            owner,
        );
        Self {
            inodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
            handles: HashMap::new(),
            next_handle: 1,
            capacity: None,
            used: 0,
            fsync_faults: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// The attributes of `ino`.
    pub fn attr(&self, ino: Ino) -> Result<FileAttr, Errno> {
        Ok(self.inode(ino)?.attr(ino))
    }

    /// The attributes of the inode `name` in `parent` names.
    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Result<FileAttr, Errno> {
        let ino = *self.entries(parent)?.get(name).ok_or(Errno::ENOENT)?;
        self.attr(ino)
    }

    /// Creates an empty file and opens it, returning it and the handle.
    pub fn create(&mut self, parent: Ino, name: &OsStr, owner: Owner) -> Result<(FileAttr, u64), Errno> {
        let node = Node::File { current: Data::default(), durable: Data::default(), unsynced: 0 };
        let ino = self.add(parent, name, node, owner)?;
        let handle = self.open(ino)?;
        Ok((self.attr(ino)?, handle))
    }

    /// Creates an empty directory.
    pub fn mkdir(&mut self, parent: Ino, name: &OsStr, owner: Owner) -> Result<FileAttr, Errno> {
        let node = Node::Dir { current: BTreeMap::new(), durable: BTreeMap::new(), parent };
        let ino = self.add(parent, name, node, owner)?;
        self.attr(ino)
    }

    /// Removes the entry of a file.
    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let ino = *self.entries(parent)?.get(name).ok_or(Errno::ENOENT)?;
        if matches!(self.inode(ino)?.node, Node::Dir { .. }) {
            return Err(Errno::EISDIR);
        }
        self.remove_entry(parent, name)
    }

    /// Removes an empty directory.
    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let ino = *self.entries(parent)?.get(name).ok_or(Errno::ENOENT)?;
        match &self.inode(ino)?.node {
            Node::File { .. } => return Err(Errno::ENOTDIR),
            Node::Dir { current, .. } if !current.is_empty() => return Err(Errno::ENOTEMPTY),
            Node::Dir { .. } => {}
        }
        self.remove_entry(parent, name)
    }

    /// Moves the entry `name` of `parent` to `new_name` in `new_parent`, replacing what that
    /// named, as rename(2) and renameat2(2) with `RENAME_NOREPLACE` do.
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            // RENAME_EXCHANGE and RENAME_WHITEOUT: nothing that runs here uses them, and
            // EINVAL is what renameat2 returns where a file system lacks a flag.
            return Err(Errno::EINVAL);
        }
        check_name(new_name)?;
        let ino = *self.entries(parent)?.get(name).ok_or(Errno::ENOENT)?;
        let replaced = self.entries(new_parent)?.get(new_name).copied();
        let moves_dir = matches!(self.inode(ino)?.node, Node::Dir { .. });
        if let Some(target) = replaced {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            if target == ino {
                return Ok(());
            }
            match (&self.inode(target)?.node, moves_dir) {
                (Node::Dir { .. }, false) => return Err(Errno::EISDIR),
                (Node::File { .. }, true) => return Err(Errno::ENOTDIR),
                (Node::Dir { current, .. }, true) if !current.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        if moves_dir && self.is_within(new_parent, ino)? {
            return Err(Errno::EINVAL);
        }
        self.entries_mut(parent)?.remove(name);
        self.entries_mut(new_parent)?.insert(new_name.to_owned(), ino);
        let now = SystemTime::now();
        let inode = self.inode_mut(ino)?;
        inode.name = new_name.to_owned();
        inode.ctime = now;
        if let Node::Dir { parent, .. } = &mut inode.node {
            *parent = new_parent;
        }
        self.touch_dir(parent, now);
        self.touch_dir(new_parent, now);
        if let Some(target) = replaced {
            self.inode_mut(target)?.links -= 1;
            self.free_if_unreachable(target);
        }
        Ok(())
    }

    /// Opens `ino`, returning the handle.
    pub fn open(&mut self, ino: Ino) -> Result<u64, Errno> {
        self.inode_mut(ino)?.open += 1;
        let handle = self.next_handle;
        self.next_handle += 1;
        self.handles.insert(handle, Handle { ino, listing: Vec::new() });
        Ok(handle)
    }

    /// Closes a handle.
    pub fn release(&mut self, handle: u64) -> Result<(), Errno> {
        let Handle { ino, .. } = self.handles.remove(&handle).ok_or(Errno::EBADF)?;
        self.inode_mut(ino)?.open -= 1;
        self.free_if_unreachable(ino);
        Ok(())
    }

    /// Whether any handle is open.
    pub fn has_open_handles(&self) -> bool {
        !self.handles.is_empty()
    }

    /// Up to `size` bytes of `ino` from `offset`.
    pub fn read(&self, ino: Ino, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        match &self.inode(ino)?.node {
            Node::File { current, .. } => Ok(current.read(offset, size)),
            Node::Dir { .. } => Err(Errno::EISDIR),
        }
    }

    /// Writes `bytes` to `ino` at `offset`, all of them or (past the capacity) none; a
    /// `sync` write (to a file opened `O_SYNC` or `O_DSYNC`) is durable once it returns, or
    /// fails with EIO if a fault waits for the file's name.
    pub fn write(&mut self, ino: Ino, offset: u64, bytes: &[u8], sync: bool) -> Result<u32, Errno> {
        if bytes.is_empty() {
            return Ok(0);
        }
        let written = u32::try_from(bytes.len()).map_err(|_| Errno::EFBIG)?;
        let end = offset.checked_add(bytes.len() as u64).ok_or(Errno::EFBIG)?;
        let len = self.file_len(ino)?;
        self.reserve(end.saturating_sub(len))?;
        let inode = self.inode_mut(ino)?;
        let Node::File { current, unsynced, .. } = &mut inode.node else { return Err(Errno::EISDIR) };
        current.write(offset, bytes);
        *unsynced += bytes.len() as u64;
        let now = SystemTime::now();
        (inode.mtime, inode.ctime) = (now, now);
        self.used += end.saturating_sub(len);
        if sync {
            self.make_durable(ino)?;
        }
        Ok(written)
    }

    /// Makes a file at least `len` bytes long (fallocate(2) without flags).
    pub fn allocate(&mut self, ino: Ino, len: u64) -> Result<(), Errno> {
        if len > self.file_len(ino)? {
            self.set_len(ino, len)?;
        }
        Ok(())
    }

    /// Changes attributes of `ino`, returning them.
    pub fn set_attr(&mut self, ino: Ino, changes: &Changes) -> Result<FileAttr, Errno> {
        if let Some(size) = changes.size {
            self.set_len(ino, size)?;
        }
        let now = SystemTime::now();
        let inode = self.inode_mut(ino)?;
        if let Some(mode) = changes.mode {
            inode.perm = (mode & 0o7777) as u16;
        }
        inode.uid = changes.uid.unwrap_or(inode.uid);
        inode.gid = changes.gid.unwrap_or(inode.gid);
        if let Some(atime) = changes.atime {
            inode.atime = resolve(atime, now);
        }
        if let Some(mtime) = changes.mtime {
            inode.mtime = resolve(mtime, now);
        }
        inode.ctime = now;
        Ok(inode.attr(ino))
    }

    /// Makes a file's current bytes and size durable (fsync and fdatasync alike), or fails
    /// with EIO if a fault waits for its name.
    pub fn fsync(&mut self, ino: Ino) -> Result<(), Errno> {
        self.stats.fsyncs += 1;
        self.make_durable(ino)
    }

    fn make_durable(&mut self, ino: Ino) -> Result<(), Errno> {
        self.take_fault(ino)?;
        match &mut self.inode_mut(ino)?.node {
            Node::File { current, durable, unsynced } => {
                durable.clone_from(current);
                *unsynced = 0;
                Ok(())
            }
            Node::Dir { .. } => Err(Errno::EISDIR),
        }
    }

    /// Makes a directory's current entries durable, or fails with EIO if a fault waits for
    /// its name.
    pub fn fsyncdir(&mut self, ino: Ino) -> Result<(), Errno> {
        self.stats.dir_fsyncs += 1;
        self.take_fault(ino)?;
        let Node::Dir { current, durable, .. } = &mut self.inode_mut(ino)?.node else {
            return Err(Errno::ENOTDIR);
        };
        let old = std::mem::replace(durable, current.clone());
        let new: Vec<Ino> = durable.values().copied().collect();
        for ino in new {
            self.inode_mut(ino)?.durable_links += 1;
        }
        for ino in old.into_values() {
            self.inode_mut(ino)?.durable_links -= 1;
            self.free_if_unreachable(ino);
        }
        Ok(())
    }

    /// The entries of the directory open as `handle` from `offset` on, `.` and `..` first;
    /// reading from offset 0 lists the directory afresh.
    pub fn read_dir(&mut self, handle: u64, offset: u64) -> Result<&[Entry], Errno> {
        let ino = self.handles.get(&handle).ok_or(Errno::EBADF)?.ino;
        if offset == 0 {
            let listing = self.listing(ino)?;
            self.handles.get_mut(&handle).ok_or(Errno::EBADF)?.listing = listing;
        }
        let listing = &self.handles.get(&handle).ok_or(Errno::EBADF)?.listing;
        Ok(usize::try_from(offset).ok().and_then(|at| listing.get(at..)).unwrap_or_default())
    }

    /// Blocks in all, blocks free, inodes in use, and the block size, for `statfs`.
    pub fn space(&self) -> (u64, u64, u64, u64) {
        let total = self.capacity.unwrap_or(UNLIMITED);
        (total / BLOCK, total.saturating_sub(self.used) / BLOCK, self.inodes.len() as u64, BLOCK)
    }

    /// Limits the bytes all files may hold; `None` lifts the limit.
    pub fn set_capacity(&mut self, capacity: Option<u64>) {
        self.capacity = capacity;
    }

    /// Makes the next fsync (or syncing write) of a file or directory whose name contains
    /// `fragment` fail.
    pub fn fail_next_fsync(&mut self, fragment: &str) {
        self.fsync_faults.push(fragment.to_owned());
    }

    /// What happened so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Drops every change no sync made durable: files go back to their durable bytes,
    /// directories to their durable entries, and inodes no durable entry reaches are gone.
    /// No handle may be open: the processes that used them died with the power.
    pub fn power_cut(&mut self) -> Result<CutReport, Errno> {
        if self.has_open_handles() {
            return Err(Errno::EBUSY);
        }
        let mut report = CutReport::default();
        let reached = self.reach_durable();
        let gone: Vec<Ino> = self.inodes.keys().filter(|ino| !reached.contains(ino)).copied().collect();
        for ino in gone {
            report.inodes_lost += 1;
            if let Some(Inode { node: Node::File { current, unsynced, .. }, .. }) = self.inodes.remove(&ino) {
                report.bytes_lost += current.len().max(unsynced);
            }
        }
        for inode in self.inodes.values_mut() {
            (inode.links, inode.durable_links) = (0, 0);
            match &mut inode.node {
                Node::File { current, durable, unsynced } => {
                    report.bytes_lost += *unsynced;
                    current.clone_from(durable);
                    *unsynced = 0;
                }
                Node::Dir { current, durable, .. } => {
                    report.entries_reverted += changed_entries(current, durable);
                    current.clone_from(durable);
                }
            }
        }
        let mut links: HashMap<Ino, u32> = HashMap::new();
        for inode in self.inodes.values() {
            if let Node::Dir { current, .. } = &inode.node {
                current.values().for_each(|ino| *links.entry(*ino).or_default() += 1);
            }
        }
        for (ino, count) in links {
            let inode = self.inode_mut(ino)?;
            (inode.links, inode.durable_links) = (count, count);
        }
        self.used = self.inodes.values().map(Inode::len).sum();
        self.stats.cuts += 1;
        self.stats.last_cut = report;
        Ok(report)
    }

    /// Every inode a chain of durable entries from the root reaches. A directory reached
    /// through two entries (a move between directories that were both synced, one before and
    /// one after it) keeps the first one in breadth-first name order; the other is dropped,
    /// so the tree stays a tree.
    fn reach_durable(&mut self) -> HashSet<Ino> {
        let mut reached = HashSet::from([ROOT]);
        let mut queue = VecDeque::from([ROOT]);
        while let Some(dir) = queue.pop_front() {
            let entries: Vec<(OsString, Ino)> = match self.inodes.get(&dir).map(|inode| &inode.node) {
                Some(Node::Dir { durable, .. }) => {
                    durable.iter().map(|(name, ino)| (name.clone(), *ino)).collect()
                }
                _ => continue,
            };
            for (name, ino) in entries {
                let first = reached.insert(ino);
                match self.inodes.get_mut(&ino).map(|inode| &mut inode.node) {
                    Some(Node::Dir { parent, .. }) if first => {
                        *parent = dir;
                        queue.push_back(ino);
                    }
                    Some(Node::Dir { .. }) => {
                        if let Some(Node::Dir { durable, .. }) =
                            self.inodes.get_mut(&dir).map(|i| &mut i.node)
                        {
                            durable.remove(&name);
                        }
                    }
                    _ => {}
                }
            }
        }
        reached
    }

    fn add(&mut self, parent: Ino, name: &OsStr, node: Node, owner: Owner) -> Result<Ino, Errno> {
        check_name(name)?;
        if self.entries(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        // No room for even an entry.
        self.reserve(1).map_err(|_| Errno::ENOSPC)?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let mut inode = Inode::new(node, name.to_owned(), owner);
        inode.links = 1;
        self.inodes.insert(ino, inode);
        self.entries_mut(parent)?.insert(name.to_owned(), ino);
        self.touch_dir(parent, SystemTime::now());
        Ok(ino)
    }

    fn remove_entry(&mut self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let ino = self.entries_mut(parent)?.remove(name).ok_or(Errno::ENOENT)?;
        let now = SystemTime::now();
        self.touch_dir(parent, now);
        let inode = self.inode_mut(ino)?;
        inode.links -= 1;
        inode.ctime = now;
        self.free_if_unreachable(ino);
        Ok(())
    }

    /// Frees `ino` if nothing can reach it any more, now or after a cut; a directory freed
    /// lets go of what its durable entries named.
    fn free_if_unreachable(&mut self, ino: Ino) {
        let mut candidates = vec![ino];
        while let Some(ino) = candidates.pop() {
            let Some(inode) = self.inodes.get(&ino) else { continue };
            if ino == ROOT || inode.links > 0 || inode.durable_links > 0 || inode.open > 0 {
                continue;
            }
            let Some(inode) = self.inodes.remove(&ino) else { continue };
            self.used -= inode.len();
            if let Node::Dir { durable, .. } = inode.node {
                for child in durable.into_values() {
                    if let Some(child_inode) = self.inodes.get_mut(&child) {
                        child_inode.durable_links -= 1;
                        candidates.push(child);
                    }
                }
            }
        }
    }

    /// Whether `ino` is `ancestor` or lies under it.
    fn is_within(&self, mut ino: Ino, ancestor: Ino) -> Result<bool, Errno> {
        loop {
            if ino == ancestor {
                return Ok(true);
            }
            match &self.inode(ino)?.node {
                Node::Dir { parent, .. } if ino != ROOT => ino = *parent,
                _ => return Ok(false),
            }
        }
    }

    fn set_len(&mut self, ino: Ino, len: u64) -> Result<(), Errno> {
        let old = self.file_len(ino)?;
        self.reserve(len.saturating_sub(old))?;
        let inode = self.inode_mut(ino)?;
        let Node::File { current, unsynced, .. } = &mut inode.node else { return Err(Errno::EISDIR) };
        current.set_len(len);
        *unsynced += len.abs_diff(old);
        let now = SystemTime::now();
        (inode.mtime, inode.ctime) = (now, now);
        self.used = self.used - old + len;
        Ok(())
    }

    /// Fails with ENOSPC unless `bytes` more fit under the capacity.
    fn reserve(&self, bytes: u64) -> Result<(), Errno> {
        match self.capacity {
            Some(capacity) if bytes > 0 && self.used.saturating_add(bytes) > capacity => Err(Errno::ENOSPC),
            _ => Ok(()),
        }
    }

    fn take_fault(&mut self, ino: Ino) -> Result<(), Errno> {
        let name = self.inode(ino)?.name.to_string_lossy().into_owned();
        let Some(at) = self.fsync_faults.iter().position(|fragment| name.contains(fragment.as_str())) else {
            return Ok(());
        };
        self.fsync_faults.remove(at);
        self.stats.injected_faults += 1;
        Err(Errno::EIO)
    }

    fn listing(&self, ino: Ino) -> Result<Vec<Entry>, Errno> {
        let Node::Dir { current, parent, .. } = &self.inode(ino)?.node else { return Err(Errno::ENOTDIR) };
        let dots = [(ino, "."), (*parent, "..")].map(|(ino, name)| Entry {
            ino,
            kind: FileType::Directory,
            name: name.into(),
        });
        let mut listing = Vec::from(dots);
        for (name, &child) in current {
            listing.push(Entry { ino: child, kind: self.inode(child)?.kind(), name: name.clone() });
        }
        Ok(listing)
    }

    fn file_len(&self, ino: Ino) -> Result<u64, Errno> {
        match &self.inode(ino)?.node {
            Node::File { current, .. } => Ok(current.len()),
            Node::Dir { .. } => Err(Errno::EISDIR),
        }
    }

    fn touch_dir(&mut self, ino: Ino, now: SystemTime) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            (inode.mtime, inode.ctime) = (now, now);
        }
    }

    fn entries(&self, dir: Ino) -> Result<&BTreeMap<OsString, Ino>, Errno> {
        match &self.inode(dir)?.node {
            Node::Dir { current, .. } => Ok(current),
            Node::File { .. } => Err(Errno::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: Ino) -> Result<&mut BTreeMap<OsString, Ino>, Errno> {
        match &mut self.inode_mut(dir)?.node {
            Node::Dir { current, .. } => Ok(current),
            Node::File { .. } => Err(Errno::ENOTDIR),
        }
    }

    fn inode(&self, ino: Ino) -> Result<&Inode, Errno> {
        self.inodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn inode_mut(&mut self, ino: Ino) -> Result<&mut Inode, Errno> {
        self.inodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }
}

impl Inode {
    fn new(node: Node, name: OsString, owner: Owner) -> Self {
        let now = SystemTime::now();
        Self {
            node,
            perm: owner.perm,
            uid: owner.uid,
            gid: owner.gid,
            atime: now,
            mtime: now,
            ctime: now,
            name,
            links: 0,
            durable_links: 0,
            open: 0,
        }
    }

    fn kind(&self) -> FileType {
        match self.node {
            Node::File { .. } => FileType::RegularFile,
            Node::Dir { .. } => FileType::Directory,
        }
    }

    fn len(&self) -> u64 {
        match &self.node {
            Node::File { current, .. } => current.len(),
            Node::Dir { .. } => 0,
        }
    }

    fn attr(&self, ino: Ino) -> FileAttr {
        let (size, nlink) = match &self.node {
            Node::File { current, .. } => (current.len(), self.links),
            Node::Dir { .. } => (BLOCK, 2),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            crtime: self.ctime,
            kind: self.kind(),
            perm: self.perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: u32::try_from(BLOCK).expect("the block size is 4096"),
            flags: 0,
        }
    }
}

/// Names whose inode differs between two versions of a directory.
fn changed_entries(current: &BTreeMap<OsString, Ino>, durable: &BTreeMap<OsString, Ino>) -> u64 {
    let changed = current.iter().filter(|(name, ino)| durable.get(*name) != Some(ino)).count();
    let removed = durable.keys().filter(|name| !current.contains_key(*name)).count();
    (changed + removed) as u64
}

fn check_name(name: &OsStr) -> Result<(), Errno> {
    if name.len() > NAME_MAX {
        Err(Errno::ENAMETOOLONG)
    } else {
        Ok(())
    }
}

fn resolve(time: TimeOrNow, now: SystemTime) -> SystemTime {
    match time {
        TimeOrNow::SpecificTime(time) => time,
        TimeOrNow::Now => now,
    }
}
