//! Messages typed but not yet acknowledged, kept on disk per server and user, so quitting (or
//! a crash, or SIGTERM) while the server is away loses nothing.
//!
//! Each running papo keeps its own queue file in the user's directory,
//! `<dir>/<server>/<user>/<process>.queue`, and holds a lock on `<process>.lock` for as long as
//! it runs. Two windows of one user on one machine so never overwrite each other's queue, and
//! a queue whose lock is free belongs to a papo that ended: the next one to log in as that user
//! takes it over (its own queue is written first, then the old one removed), so every message
//! is sent by exactly one process, with its client id, and the server stores it once however
//! often it is resent. Queues hold what nobody else should read: files are 0600 and
//! directories 0700.
//!
//! The format is text, versioned by its first line:
//!
//! ```text
//! papo-outbox 2
//! <client id> <recipient: user or #group> <body with \\ as \\\\, line feed as \n, carriage return as \r>
//! ```

use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use papo_protocol::Username;

use crate::conv_key::ConvKey;
use crate::net::Outgoing;

const HEADER: &str = "papo-outbox 2";

/// Version 1 held only user recipients, which version 2 reads the same way; a version-1
/// client meeting a `#group` line says the format is unknown instead of misreading it.
const HEADER_V1: &str = "papo-outbox 1";

const QUEUE: &str = "queue";
const LOCK: &str = "lock";

/// This process's queue for one user on one server, locked for as long as it lives.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    queue: PathBuf,
    lock_path: PathBuf,
    /// Held (locked) until dropped: while it is, nobody takes the queue over.
    _lock: File,
}

/// The queue of a papo that ended, locked by us while it is taken over.
#[derive(Debug)]
pub struct Orphan {
    queue: PathBuf,
    lock_path: PathBuf,
    _lock: File,
    /// What it held, oldest first.
    pub queued: Vec<Outgoing>,
}

impl Outbox {
    /// Opens a new queue for this process under `dir` (`$XDG_DATA_HOME/papo/outbox`), with
    /// the directories made owner-only.
    pub fn open(dir: &Path, server: &str, user: &Username) -> Result<Self> {
        let server: String =
            server.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
        let server_dir = dir.join(server);
        let user_dir = server_dir.join(user.as_str());
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&server_dir)
            .with_context(|| format!("cannot create {}", server_dir.display()))?;
        for owned in [dir, &server_dir] {
            fs::set_permissions(owned, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot make {} owner-only", owned.display()))?;
        }
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).context("no randomness for the outbox file's name")?;
        let name = format!("{}-{:016x}", std::process::id(), u64::from_le_bytes(random));
        adopt_version_1_file(&user_dir, &name)?;
        let lock_path = user_dir.join(format!("{name}.{LOCK}"));
        let lock = owner_only_file(&lock_path)?;
        lock.try_lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;
        Ok(Self { queue: user_dir.join(format!("{name}.{QUEUE}")), dir: user_dir, lock_path, _lock: lock })
    }

    /// Where this process's queue is.
    pub fn path(&self) -> &Path {
        &self.queue
    }

    /// The queues of papo processes of this user that ended, each locked until it is
    /// [`Orphan::remove`]d or dropped; queues of running ones are left alone. A queue that
    /// cannot be read is skipped and left where it is, never lost.
    pub fn orphans(&self) -> Result<Vec<Orphan>> {
        let entries =
            fs::read_dir(&self.dir).with_context(|| format!("cannot list {}", self.dir.display()))?;
        let mut orphans = Vec::new();
        for entry in entries {
            let path = entry.with_context(|| format!("cannot list {}", self.dir.display()))?.path();
            if path.extension().is_none_or(|e| e != LOCK) || path == self.lock_path {
                continue;
            }
            match take_over(&path) {
                Ok(Some(orphan)) => orphans.push(orphan),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "leaving an outbox queue alone"),
            }
        }
        Ok(orphans)
    }

    /// Replaces this process's queue with `queued` (removes it when empty), atomically and
    /// durably.
    pub fn save(&self, queued: &[Outgoing]) -> Result<()> {
        if queued.is_empty() {
            return match fs::remove_file(&self.queue) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("cannot remove {}", self.queue.display()))
                }
                _ => Ok(()),
            };
        }
        let temporary = self.queue.with_extension("new");
        let write = || -> std::io::Result<()> {
            let _ = fs::remove_file(&temporary);
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
            file.write_all(encode(queued).as_bytes())?;
            file.sync_all()?;
            fs::rename(&temporary, &self.queue)?;
            File::open(&self.dir)?.sync_all()
        };
        write().with_context(|| format!("cannot write {}", self.queue.display()))
    }
}

impl Drop for Outbox {
    /// With nothing queued, nothing of this process stays behind.
    fn drop(&mut self) {
        if !self.queue.exists() {
            let _ = fs::remove_file(&self.lock_path);
        }
    }
}

impl Orphan {
    /// Removes the queue once what it held is safe in another one.
    pub fn remove(self) -> Result<()> {
        for path in [&self.queue, &self.lock_path] {
            match fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("cannot remove {}", path.display()));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The queue locked by `lock_path`, if the papo that held the lock has ended and nobody
/// else has taken the queue over meanwhile.
fn take_over(lock_path: &Path) -> Result<Option<Orphan>> {
    let lock = match OpenOptions::new().read(true).write(true).open(lock_path) {
        Ok(lock) => lock,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", lock_path.display())),
    };
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()))
        }
    }
    // Whoever held the lock before us may have taken the queue over and removed both files:
    // the lock we got is then on a file that is gone.
    let same =
        fs::metadata(lock_path).is_ok_and(|now| lock.metadata().is_ok_and(|ours| ours.ino() == now.ino()));
    if !same {
        return Ok(None);
    }
    let queue = lock_path.with_extension(QUEUE);
    let queued = match fs::read_to_string(&queue) {
        Ok(text) => parse(&text).with_context(|| format!("cannot read {}", queue.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", queue.display())),
    };
    Ok(Some(Orphan { queue, lock_path: lock_path.to_owned(), _lock: lock, queued }))
}

/// A file only its owner can read, created if missing.
fn owner_only_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Earlier versions kept one file per user where the user's directory now is: it becomes an
/// orphan queue in that directory (no papo holds its lock), so it is sent as any other.
fn adopt_version_1_file(user_dir: &Path, unique: &str) -> Result<()> {
    let name = user_dir.file_name().context("a user directory has a name")?.to_string_lossy();
    // No user name starts with a dot, so this name is nobody's.
    let moved = user_dir.with_file_name(format!(".{name}.version-1"));
    if fs::symlink_metadata(user_dir).is_ok_and(|m| m.is_file()) {
        match fs::rename(user_dir, &moved) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot move {}", user_dir.display()));
            }
            _ => {}
        }
    }
    DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(user_dir)
        .with_context(|| format!("cannot create {}", user_dir.display()))?;
    fs::set_permissions(user_dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} owner-only", user_dir.display()))?;
    if moved.exists() {
        let queue = user_dir.join(format!("version-1-{unique}.{QUEUE}"));
        fs::rename(&moved, &queue).with_context(|| format!("cannot move {}", moved.display()))?;
        fs::set_permissions(&queue, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} owner-only", queue.display()))?;
        owner_only_file(&queue.with_extension(LOCK))?;
    }
    Ok(())
}

/// The file's text for `queued`.
pub fn encode(queued: &[Outgoing]) -> String {
    let mut text = format!("{HEADER}\n");
    for outgoing in queued {
        text.push_str(&format!("{} {} ", outgoing.client_msg_id, outgoing.to));
        for c in outgoing.body.chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                '\n' => text.push_str("\\n"),
                '\r' => text.push_str("\\r"),
                c => text.push(c),
            }
        }
        text.push('\n');
    }
    text
}

/// The messages in a file's text.
pub fn parse(text: &str) -> Result<Vec<Outgoing>> {
    let mut lines = text.lines();
    match lines.next() {
        Some(HEADER | HEADER_V1) => {}
        Some(other) => bail!("unknown outbox format {other:?}"),
        None => return Ok(Vec::new()),
    }
    let mut queued = Vec::new();
    for (number, line) in lines.enumerate() {
        let bad = || format!("line {}: expected `ID RECIPIENT BODY`", number + 2);
        let mut fields = line.splitn(3, ' ');
        let (Some(id), Some(to), Some(body)) = (fields.next(), fields.next(), fields.next()) else {
            bail!(bad());
        };
        let client_msg_id = id.parse().with_context(bad)?;
        let to = ConvKey::parse(to).map_err(anyhow::Error::msg).with_context(bad)?;
        queued.push(Outgoing { to, body: unescape(body), client_msg_id });
    }
    Ok(queued)
}

fn unescape(escaped: &str) -> String {
    let mut body = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            body.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => body.push('\n'),
            Some('r') => body.push('\r'),
            Some(other) => body.push(other),
            None => body.push('\\'),
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(id: u64, to: &str, body: &str) -> Outgoing {
        Outgoing { to: ConvKey::parse(to).unwrap(), body: body.into(), client_msg_id: id }
    }

    /// The format outlives the process: these bytes must keep reading the same.
    #[test]
    fn golden_bytes() {
        let queued = [
            outgoing(7, "bia", "one\ntwo\\ three\r"),
            outgoing(18_446_744_073, "caio", "olá 👋"),
            outgoing(8, "#lab", "to the group"),
        ];
        let text =
            "papo-outbox 2\n7 bia one\\ntwo\\\\ three\\r\n18446744073 caio olá 👋\n8 #lab to the group\n";
        assert_eq!(encode(&queued), text);
        assert_eq!(parse(text).unwrap(), queued);
    }

    /// A file written before groups existed still reads.
    #[test]
    fn version_1_still_reads() {
        assert_eq!(parse("papo-outbox 1\n7 bia hi\n").unwrap(), [outgoing(7, "bia", "hi")]);
    }

    fn user(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn adopted(outbox: &Outbox) -> Vec<Outgoing> {
        let orphans = outbox.orphans().unwrap();
        let queued = orphans.iter().flat_map(|o| o.queued.clone()).collect();
        orphans.into_iter().for_each(|o| o.remove().unwrap());
        queued
    }

    #[test]
    fn saved_per_server_and_user_and_removed_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = Outbox::open(dir.path(), "[::1]:7878", &user("ana")).unwrap();
        let queued = vec![outgoing(1, "bia", "queued then quit")];
        file.save(&queued).unwrap();
        assert_eq!(parse(&fs::read_to_string(file.path()).unwrap()).unwrap(), queued);
        assert!(file.path().starts_with(dir.path().join("___1__7878/ana")), "{}", file.path().display());
        let other_server = Outbox::open(dir.path(), "10.0.0.5:7878", &user("ana")).unwrap();
        let other_user = Outbox::open(dir.path(), "[::1]:7878", &user("bia")).unwrap();
        assert_eq!(other_server.orphans().unwrap().len(), 0);
        assert_eq!(other_user.orphans().unwrap().len(), 0);
        file.save(&[]).unwrap();
        assert!(!file.path().exists());
        file.save(&[]).unwrap();
        drop(file);
        let user_dir = dir.path().join("___1__7878/ana");
        assert_eq!(fs::read_dir(&user_dir).unwrap().count(), 0, "an empty queue leaves nothing behind");
    }

    #[test]
    fn queues_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("outbox");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let outbox = Outbox::open(&root, "lab:7878", &user("ana")).unwrap();
        outbox.save(&[outgoing(1, "bia", "secret")]).unwrap();
        assert_eq!(mode(outbox.path()), 0o600);
        assert_eq!(mode(&outbox.path().with_extension(LOCK)), 0o600);
        for dir in [&root, &root.join("lab_7878"), &root.join("lab_7878/ana")] {
            assert_eq!(mode(dir), 0o700, "{}", dir.display());
        }
    }

    /// Two windows of one user: neither takes the other's queue while both run; once one
    /// ends, the next to look takes its queue over, exactly once.
    #[test]
    fn two_windows_keep_their_own_queues_and_one_takes_over_what_the_other_left() {
        let dir = tempfile::tempdir().unwrap();
        let first = Outbox::open(dir.path(), "lab:7878", &user("ana")).unwrap();
        let second = Outbox::open(dir.path(), "lab:7878", &user("ana")).unwrap();
        first.save(&[outgoing(1, "bia", "from the first")]).unwrap();
        second.save(&[outgoing(2, "bia", "from the second")]).unwrap();
        assert_eq!(first.orphans().unwrap().len(), 0, "the second still runs");
        assert_eq!(second.orphans().unwrap().len(), 0, "the first still runs");
        assert_eq!(parse(&fs::read_to_string(first.path()).unwrap()).unwrap()[0].body, "from the first");
        drop(first);
        let third = Outbox::open(dir.path(), "lab:7878", &user("ana")).unwrap();
        let orphans = third.orphans().unwrap();
        assert_eq!(orphans.len(), 1);
        assert_eq!(orphans[0].queued, [outgoing(1, "bia", "from the first")]);
        assert_eq!(second.orphans().unwrap().len(), 0, "locked while the third takes it over");
        third.save(&orphans[0].queued).unwrap();
        orphans.into_iter().for_each(|o| o.remove().unwrap());
        assert_eq!(adopted(&second), [], "taken over once");
    }

    #[test]
    fn racing_windows_take_an_orphan_over_once() {
        for _ in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let ended = Outbox::open(dir.path(), "lab:7878", &user("ana")).unwrap();
            ended.save(&[outgoing(7, "bia", "once")]).unwrap();
            drop(ended);
            let takers: Vec<Outbox> =
                (0..4).map(|_| Outbox::open(dir.path(), "lab:7878", &user("ana")).unwrap()).collect();
            let taken: usize = std::thread::scope(|scope| {
                let runs: Vec<_> = takers.iter().map(|t| scope.spawn(move || adopted(t).len())).collect();
                runs.into_iter().map(|r| r.join().unwrap()).sum()
            });
            assert_eq!(taken, 1);
        }
    }

    #[test]
    fn a_version_1_file_becomes_a_queue_to_take_over() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("lab_7878/ana");
        fs::create_dir_all(old.parent().unwrap()).unwrap();
        fs::write(&old, "papo-outbox 1\n7 bia left by an old papo\n").unwrap();
        let outbox = Outbox::open(dir.path(), "lab:7878", &user("ana")).unwrap();
        assert!(old.is_dir());
        assert_eq!(adopted(&outbox), [outgoing(7, "bia", "left by an old papo")]);
        assert_eq!(adopted(&outbox), []);
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_loss() {
        assert!(parse("papo-outbox 9\n").is_err());
        assert!(parse("papo-outbox 2\nnot-a-number bia hi\n").is_err());
        assert!(parse("papo-outbox 2\n7 #bad#name hi\n").is_err());
    }
}
