//! The store's manifest: the format of its files, and what its last checkpoint made durable.
//!
//! sled alone cannot tell a new database from one whose files a crash or a disk emptied:
//! both open as empty. The manifest is the evidence. It is written (to a temporary file,
//! synced, renamed, directory synced) when the store is created and at every checkpoint,
//! and says how far the database is known to reach: every group of writes numbered up to
//! `checkpoint_commit` is in sled, and every log segment up to `retired_through` was
//! retired because of it. Opening a database that reaches less, or a log with a segment
//! missing after that point, is refused instead of serving a store that silently shrank.
//!
//! It is a short text file, so an administrator can read it:
//!
//! ```text
//! papo-store
//! format = 3
//! checkpoint_commit = 1234
//! checkpoint_last_id = 5678
//! retired_through = 12
//! next_segment_exists = true
//! crc32 = 0xd29b65d5
//! ```

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::files::sync_dir;
use super::{IoContext, Result, StoreError};

/// The layout of the store's files this server writes: sled's records (see `records.rs`), the
/// log's segments and records (`wal.rs`) and this manifest.
///
/// 0 is the layout before there was a manifest: unversioned records, no commit numbers.
/// 2 files resend entries under a new kind, their records telling users from groups.
/// 3 gives every account a status (disabled or deleted by the administrator, or not), and
/// stores invite codes.
pub const FORMAT: u32 = 3;

/// The manifest's file name in the data directory.
pub const FILE: &str = "papo-store";

const TITLE: &str = "papo-store";

/// What the manifest records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifest {
    /// The layout of the store's files.
    pub format: u32,
    /// Every group of writes numbered up to this one is durable in sled.
    pub checkpoint_commit: u64,
    /// The newest message id handed out by that checkpoint.
    pub checkpoint_last_id: u64,
    /// Every log segment with a sequence number up to this one is retired.
    pub retired_through: u64,
    /// Whether the segment after `retired_through` must exist: false only after a clean stop
    /// (which retires every segment) and before the first segment is created.
    pub next_segment_exists: bool,
}

impl Manifest {
    /// The manifest of a store about to be created.
    pub fn new() -> Self {
        Self {
            format: FORMAT,
            checkpoint_commit: 0,
            checkpoint_last_id: 0,
            retired_through: 0,
            next_segment_exists: false,
        }
    }

    /// Reads the manifest of the store in `dir`, if it has one.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).at("read", &path),
        };
        Self::parse(&text).map(Some).map_err(|reason| StoreError::DamagedManifest { path, reason })
    }

    /// Replaces the manifest in `dir` atomically and durably.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(FILE);
        let temporary = dir.join(format!("{FILE}.new"));
        let written = (|| {
            let mut file =
                OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
            file.write_all(self.render().as_bytes())?;
            file.sync_all()
        })();
        written.at("write", &temporary)?;
        fs::rename(&temporary, &path).at("replace", &path)?;
        sync_dir(dir)
    }

    fn render(&self) -> String {
        let body = format!(
            "{TITLE}\nformat = {}\ncheckpoint_commit = {}\ncheckpoint_last_id = {}\nretired_through = {}\nnext_segment_exists = {}\n",
            self.format,
            self.checkpoint_commit,
            self.checkpoint_last_id,
            self.retired_through,
            self.next_segment_exists
        );
        let crc = crc32fast::hash(body.as_bytes());
        format!("{body}crc32 = {crc:#010x}\n")
    }

    fn parse(text: &str) -> Result<Self, String> {
        let (body, crc_line) =
            text.trim_end_matches('\n').rsplit_once('\n').ok_or_else(|| "it is truncated".to_owned())?;
        let body = format!("{body}\n");
        let crc = field(crc_line, "crc32")?;
        let crc = u32::from_str_radix(crc.trim_start_matches("0x"), 16).map_err(|e| format!("crc32: {e}"))?;
        if crc32fast::hash(body.as_bytes()) != crc {
            return Err("its checksum does not match its contents".into());
        }
        let mut lines = body.lines();
        if lines.next() != Some(TITLE) {
            return Err("it does not start with `papo-store`".into());
        }
        let mut next = |key: &str| -> Result<String, String> {
            field(lines.next().ok_or_else(|| format!("{key} is missing"))?, key).map(str::to_owned)
        };
        let number = |value: String, key: &str| value.parse::<u64>().map_err(|e| format!("{key}: {e}"));
        let format = u32::try_from(number(next("format")?, "format")?).map_err(|e| format!("format: {e}"))?;
        Ok(Self {
            format,
            checkpoint_commit: number(next("checkpoint_commit")?, "checkpoint_commit")?,
            checkpoint_last_id: number(next("checkpoint_last_id")?, "checkpoint_last_id")?,
            retired_through: number(next("retired_through")?, "retired_through")?,
            next_segment_exists: next("next_segment_exists")?
                .parse()
                .map_err(|e| format!("next_segment_exists: {e}"))?,
        })
    }
}

impl Default for Manifest {
    fn default() -> Self {
        Self::new()
    }
}

/// The value of a `key = value` line.
fn field<'a>(line: &'a str, key: &str) -> Result<&'a str, String> {
    line.strip_prefix(key)
        .and_then(|rest| rest.strip_prefix(" = "))
        .ok_or_else(|| format!("expected `{key} = …`, found {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: Manifest = Manifest {
        format: 1,
        checkpoint_commit: 1234,
        checkpoint_last_id: 5678,
        retired_through: 12,
        next_segment_exists: true,
    };

    fn path(dir: &Path) -> std::path::PathBuf {
        dir.join(FILE)
    }

    #[test]
    fn its_bytes_are_fixed() {
        // The documented example above: a change here is a format change.
        let golden = "papo-store\nformat = 1\ncheckpoint_commit = 1234\ncheckpoint_last_id = 5678\nretired_through = 12\nnext_segment_exists = true\ncrc32 = 0xd29b65d5\n";
        assert_eq!(SAMPLE.render(), golden);
        assert_eq!(Manifest::parse(golden), Ok(SAMPLE));
    }

    #[test]
    fn writes_replace_it_durably_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), None);
        SAMPLE.write(dir.path()).unwrap();
        let next = Manifest { checkpoint_commit: 2000, ..SAMPLE };
        next.write(dir.path()).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), Some(next));
        assert!(!dir.path().join(format!("{FILE}.new")).exists());

        let edited = fs::read_to_string(path(dir.path())).unwrap().replace("2000", "2001");
        fs::write(path(dir.path()), edited).unwrap();
        match Manifest::read(dir.path()) {
            Err(StoreError::DamagedManifest { path: named, reason }) => {
                assert_eq!(named, path(dir.path()));
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("expected DamagedManifest, got {other:?}"),
        }
        fs::write(path(dir.path()), "papo-store\nformat = 1\n").unwrap();
        assert!(matches!(Manifest::read(dir.path()), Err(StoreError::DamagedManifest { .. })));
    }
}
