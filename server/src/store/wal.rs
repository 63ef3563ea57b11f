//! The write-ahead log that makes a group of writes durable before it is acknowledged.
//!
//! sled's own flush hands its buffers to a pool of I/O threads and waits for them, which on
//! our 2-core machines cost more CPU than the writes themselves (at 10,000 messages a
//! second, four fifths of the server's samples were sled's I/O threads waking). So durability
//! comes from appending each group as one checksummed record to this log and syncing it on
//! the committer's own thread, before sled sees the group at all; sled is flushed only at
//! checkpoints, after which the log segments it covers are retired. On start, the segments
//! left by the previous run are replayed into sled before anything else happens, completing
//! any group sled had written out only in part.
//!
//! ## Layout (format 1)
//!
//! A segment starts with a 32-byte header: `b"papo-wal"`, the format (u32 LE), a CRC-32 of
//! the header's other 28 bytes (u32 LE), the segment's sequence number (u64 LE, also its
//! file name in hex) and the length the file had when it became this segment (u64 LE).
//! Records follow, each a 24-byte header and a payload:
//! `[b"PREC"][payload length: u32 LE][commit number: u64 LE][CRC-32 of the payload: u32 LE]
//! [CRC-32 of the segment's sequence number (u64 LE) and the header's first 20 bytes: u32 LE]`.
//! Commit numbers count groups across segments, one by one, so a missing record shows.
//!
//! ## What replay accepts
//!
//! A crash can cut off only the write under way, which is always the segment's last: so the
//! first record that is not whole and intact ends the segment *if nothing valid follows it*
//! (a torn tail, or the unused rest of the file). Anything else is damage, and replay stops
//! with an error naming the file and the offset: a bad record with valid records of this
//! segment after it, a commit number out of sequence, a segment shorter than it was created,
//! a segment missing from the sequence. It never guesses past damage, because what follows
//! may be acknowledged messages that the store would otherwise lose and whose ids it would
//! hand out again.
//!
//! ## Reusing files
//!
//! Syncing a write that grows a file also writes its inode, which on our machines is a second
//! disk write per sync (0.23 against 0.15 ms). So segments are written over files whose blocks
//! already exist: a retired segment becomes the spare the next segment is made from, its old
//! records rejected by the header checksum, which covers the sequence number (a spare's name
//! keeps the newest sequence it may hold, and sequence numbers only grow); only the first
//! spare is filled with zeros. Files that already exist also mean a full disk cannot stop a
//! log append: only a new segment needs space.
//!
//! Stores of format 0 (before the manifest) wrote segments without a header, as records of
//! `[payload length: u32 LE][CRC-32 of the sequence number and the payload: u32 LE][payload]`;
//! they are still replayed, once, when such a store is first opened.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::files::{check_linked, sync_dir};
use super::{IoContext, Result, StoreError};

/// Bytes of a segment's header.
pub const SEGMENT_HEADER: usize = 32;

/// Bytes of a record's header.
pub const RECORD_HEADER: usize = 24;

const SEGMENT_MAGIC: &[u8; 8] = b"papo-wal";
const RECORD_MAGIC: &[u8; 4] = b"PREC";

/// The log format this code writes.
const FORMAT: u32 = 1;

/// Extension of a segment's file, named by its sequence number in hex.
const SEGMENT: &str = "log";

/// Extension of the file the next segment is made from (a retired segment, or zeros), named
/// by the newest sequence whose records it may hold.
const SPARE: &str = "spare";

/// A spare being filled with zeros; renamed once complete and durable.
const SPARE_UNFINISHED: &str = "spare.unfinished";

/// How much of a segment replay reads at a time: segments may be gigabytes.
const READ_BUFFER: usize = 1 << 20;

/// The log's current segment, which records are appended to.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment_limit: u64,
    file: File,
    sequence: u64,
    /// Bytes of records written after the segment's header.
    written: u64,
    /// A write failed part-way, so the segment may end in a torn record: nothing more is
    /// written to it, and the next rotation leaves it.
    torn: bool,
    scratch: Vec<u8>,
}

/// Why an append failed, which decides what its writes' senders may be told.
#[derive(Debug)]
pub enum AppendError {
    /// The record was not (wholly) written, so no replay will ever see it: not stored.
    NotWritten(io::Error),
    /// The record was written but the sync failed: it may or may not be on disk, and after a
    /// failed sync the kernel may have dropped the pages, so no later sync can tell. Nothing
    /// about this group may be promised either way.
    SyncFailed(io::Error),
}

/// What the previous run left for replay, and where it says replay must start.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// Segments with sequence numbers up to this one are retired: not replayed.
    pub retired_through: u64,
    /// Whether the segment after `retired_through` must exist.
    pub next_segment_exists: bool,
    /// The commit number the first replayed record must carry; `None` for a format-0 store,
    /// whose records carry none.
    pub first_commit: Option<u64>,
}

/// What replay found.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Segments to retire once what they hold is durable elsewhere, replayed or stale.
    pub segments: Vec<PathBuf>,
    /// Records replayed.
    pub records: u64,
    /// The commit number of the last record replayed.
    pub last_commit: Option<u64>,
    /// The sequence number no file here has used, for the next segment.
    pub next_sequence: u64,
}

/// Hands every record the previous run left in `dir` to `replay`, oldest first, with its
/// commit number, and checks that nothing is missing or damaged.
pub fn replay(
    dir: &Path,
    expect: Expect,
    mut replay: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<Replayed> {
    remove_if_present(&dir.join(SPARE_UNFINISHED))?;
    let mut segments = files(dir, SEGMENT)?;
    segments.sort_unstable();
    let (stale, live): (Vec<_>, Vec<_>) =
        segments.into_iter().partition(|(sequence, _)| *sequence <= expect.retired_through);
    check_sequence(dir, &live, expect)?;
    let mut found = Replayed {
        segments: stale.iter().map(|(_, path)| path.clone()).collect(),
        next_sequence: expect.retired_through + 1,
        ..Replayed::default()
    };
    let mut next_commit = expect.first_commit;
    let legacy = expect.first_commit.is_none();
    for (index, (sequence, path)) in live.iter().enumerate() {
        let newest = index + 1 == live.len();
        let mut count = |commit: u64, payload: &[u8]| {
            found.records += 1;
            found.last_commit = Some(commit);
            replay(commit, payload)
        };
        if legacy {
            replay_legacy_segment(*sequence, path, &mut next_commit, &mut count)?;
        } else {
            replay_segment(*sequence, path, newest, &mut next_commit, &mut count)?;
        }
        found.segments.push(path.clone());
    }
    let spares = files(dir, SPARE)?;
    let newest = live.iter().chain(&stale).chain(&spares).map(|(sequence, _)| *sequence).max().unwrap_or(0);
    found.next_sequence = found.next_sequence.max(newest + 1);
    Ok(found)
}

/// Live segments must follow the retired ones without a gap.
fn check_sequence(dir: &Path, live: &[(u64, PathBuf)], expect: Expect) -> Result<()> {
    let wanted = expect.retired_through + 1;
    if live.is_empty() && expect.next_segment_exists && expect.first_commit.is_some() {
        return Err(StoreError::DamagedLog {
            path: file_path(dir, wanted, SEGMENT),
            offset: 0,
            reason: "this segment is missing: the store's manifest says it holds the newest writes".into(),
        });
    }
    if expect.first_commit.is_none() {
        // Format 0 kept no record of which segments exist.
        return Ok(());
    }
    for (wanted, (sequence, _)) in (wanted..).zip(live) {
        if *sequence != wanted {
            return Err(StoreError::DamagedLog {
                path: file_path(dir, wanted, SEGMENT),
                offset: 0,
                reason: format!("this segment is missing, and segment {sequence:016x} after it exists"),
            });
        }
    }
    Ok(())
}

impl Wal {
    /// Starts segment `sequence` in `dir`, from the spare if there is one; records go to
    /// it once its name and header are durable.
    pub fn create(dir: &Path, segment_limit: u64, sequence: u64) -> Result<Self> {
        let path = file_path(dir, sequence, SEGMENT);
        let spare = files(dir, SPARE)?.pop();
        let file = match spare.map(|(_, spare)| (fs::rename(&spare, &path), spare)) {
            Some((Ok(()), _)) => OpenOptions::new().read(true).write(true).open(&path),
            // No spare ready (or the checkpointer just took it): an empty file works, only
            // its syncs cost more.
            Some((Err(e), spare)) if e.kind() != io::ErrorKind::NotFound => {
                return Err(e).at("rename the spare log segment", &spare);
            }
            _ => OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path),
        };
        let file = file.at("open the log segment", &path)?;
        let length = file.metadata().at("inspect", &path)?.len();
        let header = segment_header(sequence, length);
        file.write_all_at(&header, 0).and_then(|()| file.sync_data()).at("write the header of", &path)?;
        // The new name must survive a crash before any record in it is acknowledged.
        sync_dir(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            segment_limit,
            file,
            sequence,
            written: 0,
            torn: false,
            scratch: Vec::new(),
        })
    }

    /// Appends one record with its commit number and waits until it is on disk.
    pub fn append(&mut self, commit: u64, payload: &[u8]) -> Result<(), AppendError> {
        if self.torn {
            return Err(AppendError::NotWritten(io::Error::other(
                "the log segment ends in a failed write and no new segment could be started",
            )));
        }
        let len = u32::try_from(payload.len())
            .map_err(|_| AppendError::NotWritten(io::Error::other("a record over 4 GiB")))?;
        self.scratch.clear();
        self.scratch.extend_from_slice(&record_header(self.sequence, len, commit, payload));
        self.scratch.extend_from_slice(payload);
        self.torn = true;
        let at = SEGMENT_HEADER as u64 + self.written;
        self.file.write_all_at(&self.scratch, at).map_err(AppendError::NotWritten)?;
        self.file.sync_data().map_err(AppendError::SyncFailed)?;
        self.torn = false;
        self.written += self.scratch.len() as u64;
        Ok(())
    }

    /// Starts a new segment if the current one is full or ends in a failed write, returning
    /// the path of the one left: it is to be retired once sled holds its records durably.
    pub fn rotate_if_needed(&mut self) -> Result<Option<PathBuf>> {
        if self.written < self.segment_limit && !self.torn {
            return Ok(None);
        }
        let left = self.current();
        *self = Self::create(&self.dir, self.segment_limit, self.sequence + 1)?;
        Ok(Some(left))
    }

    /// The segment being written.
    pub fn current(&self) -> PathBuf {
        file_path(&self.dir, self.sequence, SEGMENT)
    }

    /// The sequence number of the segment being written.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Fails if the segment being written was deleted (with the data directory, say): its
    /// records would then survive nothing.
    pub fn check_linked(&self) -> Result<()> {
        check_linked(&self.file, &self.current())
    }
}

/// Fills a spare segment with zeros, unless one is ready; a failure leaves nothing behind.
pub fn prepare_spare(dir: &Path, segment_limit: u64) -> Result<()> {
    if !files(dir, SPARE)?.is_empty() {
        return Ok(());
    }
    let unfinished = dir.join(SPARE_UNFINISHED);
    let filled = (|| {
        let mut file =
            OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&unfinished)?;
        let zeros = vec![0; 1 << 20];
        let mut left = segment_limit;
        while left > 0 {
            let chunk = usize::try_from(left.min(zeros.len() as u64)).expect("at most the length of `zeros`");
            file.write_all(&zeros[..chunk])?;
            left -= chunk as u64;
        }
        file.sync_all()
    })();
    if let Err(e) = filled {
        let _ = fs::remove_file(&unfinished);
        return Err(e).at("fill a spare log segment", &unfinished);
    }
    let spare = file_path(dir, 0, SPARE);
    fs::rename(&unfinished, &spare).at("rename the spare log segment to", &spare)?;
    sync_dir(dir)
}

/// Retires segments whose records are durable in sled, oldest first: the newest becomes the
/// spare if none is ready, the others are deleted.
pub fn retire(segments: &[PathBuf]) -> Result<()> {
    let Some((newest, older)) = segments.split_last() else { return Ok(()) };
    let dir = newest.parent().ok_or_else(|| StoreError::Vanished { path: newest.clone() })?;
    for path in older {
        remove_if_present(path)?;
    }
    let sequence =
        sequence_of(newest, SEGMENT).ok_or_else(|| StoreError::Vanished { path: newest.clone() })?;
    if files(dir, SPARE)?.is_empty() {
        let spare = file_path(dir, sequence, SPARE);
        match fs::rename(newest, &spare) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e).at("rename to a spare", newest),
            _ => {}
        }
    } else {
        remove_if_present(newest)?;
    }
    sync_dir(dir)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).at("delete", path),
        _ => Ok(()),
    }
}

fn segment_header(sequence: u64, length: u64) -> [u8; SEGMENT_HEADER] {
    let mut header = [0; SEGMENT_HEADER];
    header[..8].copy_from_slice(SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&FORMAT.to_le_bytes());
    header[16..24].copy_from_slice(&sequence.to_le_bytes());
    header[24..32].copy_from_slice(&length.to_le_bytes());
    let crc = segment_header_crc(&header);
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    header
}

fn segment_header_crc(header: &[u8; SEGMENT_HEADER]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..12]);
    hasher.update(&header[16..]);
    hasher.finalize()
}

fn record_header(sequence: u64, len: u32, commit: u64, payload: &[u8]) -> [u8; RECORD_HEADER] {
    let mut header = [0; RECORD_HEADER];
    header[..4].copy_from_slice(RECORD_MAGIC);
    header[4..8].copy_from_slice(&len.to_le_bytes());
    header[8..16].copy_from_slice(&commit.to_le_bytes());
    header[16..20].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let crc = record_header_crc(sequence, &header);
    header[20..24].copy_from_slice(&crc.to_le_bytes());
    header
}

fn record_header_crc(sequence: u64, header: &[u8; RECORD_HEADER]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&sequence.to_le_bytes());
    hasher.update(&header[..20]);
    hasher.finalize()
}

/// A record header that belongs to segment `sequence`: its length and commit number.
fn parse_record_header(sequence: u64, header: &[u8; RECORD_HEADER]) -> Option<(u64, u64, u32)> {
    let crc = u32::from_le_bytes(header[20..24].try_into().ok()?);
    if &header[..4] != RECORD_MAGIC || record_header_crc(sequence, header) != crc {
        return None;
    }
    let len = u64::from(u32::from_le_bytes(header[4..8].try_into().ok()?));
    let commit = u64::from_le_bytes(header[8..16].try_into().ok()?);
    let payload_crc = u32::from_le_bytes(header[16..20].try_into().ok()?);
    Some((len, commit, payload_crc))
}

/// Replays one format-1 segment.
fn replay_segment(
    sequence: u64,
    path: &Path,
    newest: bool,
    next_commit: &mut Option<u64>,
    replay: &mut impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    let damaged =
        |offset: u64, reason: String| StoreError::DamagedLog { path: path.to_owned(), offset, reason };
    let mut file = File::open(path).at("open", path)?;
    let file_len = file.metadata().at("inspect", path)?.len();
    let mut header = [0; SEGMENT_HEADER];
    let whole_header = read_up_to(&mut file, &mut header).at("read", path)? == SEGMENT_HEADER;
    let crc = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
    let valid = whole_header && &header[..8] == SEGMENT_MAGIC && segment_header_crc(&header) == crc;
    let header_sequence = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
    if !valid || header_sequence != sequence {
        // A reused file whose new header a crash kept from the disk: no record was written
        // to it yet (records follow a synced header), unless something valid says otherwise.
        if let Some(at) = find_valid_record(path, sequence, SEGMENT_HEADER as u64)? {
            return Err(damaged(
                0,
                format!("its header is damaged, and a valid record follows at offset {at}"),
            ));
        }
        if !newest {
            return Err(damaged(0, "its header is damaged, and newer segments follow it".into()));
        }
        info!(segment = %path.display(), "the newest log segment has no records yet");
        return Ok(());
    }
    let format = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if format != FORMAT {
        return Err(damaged(8, format!("it is in log format {format}; this server reads format {FORMAT}")));
    }
    let created_len = u64::from_le_bytes(header[24..32].try_into().expect("8 bytes"));
    if file_len < created_len {
        return Err(damaged(
            file_len,
            format!("it was cut short: {file_len} bytes, but it was {created_len} when created"),
        ));
    }

    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let mut offset = SEGMENT_HEADER as u64;
    let mut records = 0u64;
    let mut payload = Vec::new();
    let end = loop {
        let mut record = [0; RECORD_HEADER];
        let got = read_up_to(&mut reader, &mut record).at("read", path)?;
        if got < RECORD_HEADER {
            break offset;
        }
        let Some((len, commit, payload_crc)) = parse_record_header(sequence, &record) else { break offset };
        if offset + RECORD_HEADER as u64 + len > file_len {
            break offset;
        }
        payload.resize(usize::try_from(len).map_err(|_| damaged(offset, "a record over memory".into()))?, 0);
        reader.read_exact(&mut payload).at("read", path)?;
        if crc32fast::hash(&payload) != payload_crc {
            break offset;
        }
        if let Some(expected) = *next_commit {
            if commit != expected {
                return Err(damaged(
                    offset,
                    format!("the record has commit number {commit} where {expected} should follow"),
                ));
            }
        }
        replay(commit, &payload)?;
        *next_commit = Some(commit + 1);
        records += 1;
        offset += RECORD_HEADER as u64 + len;
    };
    if let Some(at) = find_valid_record(path, sequence, end + 1)? {
        return Err(damaged(
            end,
            format!("the record at this offset is damaged, and a valid record of this segment follows at offset {at}"),
        ));
    }
    info!(segment = %path.display(), records, ends_at = end, "replayed a write-ahead log segment");
    Ok(())
}

/// The offset of the first valid record header of segment `sequence` at or after `from`.
fn find_valid_record(path: &Path, sequence: u64, from: u64) -> Result<Option<u64>> {
    let mut file = File::open(path).at("open", path)?;
    file.seek(SeekFrom::Start(from)).at("read", path)?;
    let mut window = vec![0; READ_BUFFER + RECORD_HEADER];
    // Bytes at the front of `window` carried over from the previous read, so a header that
    // straddles two reads is still seen.
    let mut carried = 0;
    let mut window_start = from;
    loop {
        let got = read_up_to(&mut file, &mut window[carried..]).at("read", path)?;
        let filled = carried + got;
        if filled < RECORD_HEADER {
            return Ok(None);
        }
        let searchable = filled - RECORD_HEADER + 1;
        let mut at = 0;
        while let Some(found) = find_magic(&window[at..searchable + RECORD_MAGIC.len() - 1]) {
            let start = at + found;
            let header: &[u8; RECORD_HEADER] =
                window[start..start + RECORD_HEADER].try_into().expect("a whole header");
            if parse_record_header(sequence, header).is_some() {
                return Ok(Some(window_start + start as u64));
            }
            at = start + 1;
            if at >= searchable {
                break;
            }
        }
        if got == 0 {
            return Ok(None);
        }
        window.copy_within(searchable..filled, 0);
        carried = filled - searchable;
        window_start += searchable as u64;
    }
}

fn find_magic(haystack: &[u8]) -> Option<usize> {
    haystack.windows(RECORD_MAGIC.len()).position(|window| window == RECORD_MAGIC)
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Replays a segment written before the log had headers (format 0), numbering its records
/// as it goes: they carry no commit numbers, and no gap can be detected.
fn replay_legacy_segment(
    sequence: u64,
    path: &Path,
    next_commit: &mut Option<u64>,
    replay: &mut impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    const HEADER: usize = 8;
    let mut reader = BufReader::with_capacity(READ_BUFFER, File::open(path).at("open", path)?);
    let file_len = reader.get_ref().metadata().at("inspect", path)?.len();
    if reader.fill_buf().at("read", path)?.starts_with(SEGMENT_MAGIC) {
        return Err(StoreError::DamagedLog {
            path: path.to_owned(),
            offset: 0,
            reason: format!("the segment is of log format {FORMAT}, but the store's manifest is missing"),
        });
    }
    let mut offset = 0u64;
    let mut payload = Vec::new();
    loop {
        let mut header = [0; HEADER];
        if read_up_to(&mut reader, &mut header).at("read", path)? < HEADER {
            break;
        }
        let len = u64::from(u32::from_le_bytes(header[..4].try_into().expect("4 bytes")));
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len == 0 || offset + HEADER as u64 + len > file_len {
            break;
        }
        payload.resize(usize::try_from(len).expect("a record length is a u32"), 0);
        reader.read_exact(&mut payload).at("read", path)?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&sequence.to_le_bytes());
        hasher.update(&payload);
        if hasher.finalize() != crc {
            break;
        }
        let commit = next_commit.unwrap_or(1);
        replay(commit, &payload)?;
        *next_commit = Some(commit + 1);
        offset += HEADER as u64 + len;
    }
    warn!(segment = %path.display(), ends_at = offset, "replayed a write-ahead log segment of format 0");
    Ok(())
}

fn file_path(dir: &Path, sequence: u64, extension: &str) -> PathBuf {
    dir.join(format!("{sequence:016x}.{extension}"))
}

/// The files in `dir` with `extension`, and their sequence numbers.
fn files(dir: &Path, extension: &str) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).at("list", dir)? {
        let path = entry.at("list", dir)?.path();
        if let Some(sequence) = sequence_of(&path, extension) {
            found.push((sequence, path));
        }
    }
    Ok(found)
}

fn sequence_of(path: &Path, extension: &str) -> Option<u64> {
    let name = path.file_name()?.to_str()?.strip_suffix(extension)?.strip_suffix('.')?;
    if name.len() != 16 {
        return None;
    }
    u64::from_str_radix(name, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small segments, so tests rotate quickly.
    const LIMIT: u64 = 64 * 1024;

    const FRESH: Expect = Expect { retired_through: 0, next_segment_exists: false, first_commit: Some(1) };

    /// Records as replay hands them over: commit number and payload.
    type Records = Vec<(u64, Vec<u8>)>;

    /// Replays `dir` as a store whose checkpoint is `expect`, collecting the records.
    fn replayed(dir: &Path, expect: Expect) -> Result<(Records, Replayed)> {
        let mut records = Vec::new();
        let found = replay(dir, expect, |commit, payload| {
            records.push((commit, payload.to_vec()));
            Ok(())
        })?;
        Ok((records, found))
    }

    /// A new log in `dir`, as a fresh store opens it.
    fn start(dir: &Path) -> Wal {
        prepare_spare(dir, LIMIT).unwrap();
        let found = replayed(dir, FRESH).unwrap().1;
        Wal::create(dir, LIMIT, found.next_sequence).unwrap()
    }

    fn payloads(records: &[(u64, Vec<u8>)]) -> Vec<&[u8]> {
        records.iter().map(|(_, payload)| payload.as_slice()).collect()
    }

    #[test]
    fn records_replay_in_order_across_segments_with_their_commit_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = start(dir.path());
        let big = vec![7u8; usize::try_from(LIMIT).unwrap()];
        wal.append(1, b"first").unwrap();
        wal.append(2, &big).unwrap();
        let full = wal.rotate_if_needed().unwrap().expect("the segment is over the limit");
        assert_eq!(wal.rotate_if_needed().unwrap(), None);
        wal.append(3, b"third").unwrap();
        drop(wal);

        let (records, found) = replayed(dir.path(), FRESH).unwrap();
        assert_eq!(payloads(&records), [b"first".as_slice(), &big, b"third"]);
        assert_eq!(records.iter().map(|(commit, _)| *commit).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(found.segments[0], full);
        assert_eq!((found.records, found.last_commit, found.next_sequence), (3, Some(3), 3));

        // Retired through segment 1: only the second is replayed, from commit 3.
        let after_checkpoint =
            Expect { retired_through: 1, next_segment_exists: true, first_commit: Some(3) };
        let (records, found) = replayed(dir.path(), after_checkpoint).unwrap();
        assert_eq!(payloads(&records), [b"third".as_slice()]);
        assert_eq!(found.segments.len(), 2, "the stale segment is retired again");
    }

    #[test]
    fn a_record_torn_at_every_length_is_dropped_and_the_log_opens() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = start(dir.path());
        wal.append(1, b"kept").unwrap();
        let segment = wal.current();
        let torn_at = SEGMENT_HEADER + RECORD_HEADER + 4;
        wal.append(2, b"the last record, cut short").unwrap();
        drop(wal);
        let whole = fs::read(&segment).unwrap();
        let last_len = RECORD_HEADER + b"the last record, cut short".len();
        // A crash keeps some prefix of the last write and what the file held before it: the
        // zeros of a fresh spare, or a stale record from a reused one.
        for cut in 0..last_len {
            let mut bytes = whole.clone();
            bytes[torn_at + cut..torn_at + last_len].fill(0);
            fs::write(&segment, &bytes).unwrap();
            let (records, _) = replayed(dir.path(), FRESH).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!(payloads(&records), [b"kept".as_slice()], "cut at {cut}");
        }
    }

    #[test]
    fn a_damaged_record_followed_by_valid_ones_is_refused_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = start(dir.path());
        for commit in 1..=5 {
            wal.append(commit, format!("record {commit}").as_bytes()).unwrap();
        }
        let segment = wal.current();
        drop(wal);
        let record_len = (RECORD_HEADER + "record 1".len()) as u64;
        let second = SEGMENT_HEADER as u64 + record_len;
        for flipped in [second + 2, second + 10, second + RECORD_HEADER as u64 + 3] {
            let mut bytes = fs::read(&segment).unwrap();
            bytes[usize::try_from(flipped).unwrap()] ^= 0x40;
            fs::write(&segment, &bytes).unwrap();
            match replayed(dir.path(), FRESH) {
                Err(StoreError::DamagedLog { path, offset, reason }) => {
                    assert_eq!((path, offset), (segment.clone(), second), "{reason}");
                    assert!(reason.contains("follows"), "{reason}");
                }
                other => panic!("byte {flipped}: expected DamagedLog, got {other:?}"),
            }
            bytes[usize::try_from(flipped).unwrap()] ^= 0x40;
            fs::write(&segment, &bytes).unwrap();
        }
        assert_eq!(replayed(dir.path(), FRESH).unwrap().1.records, 5);
    }

    #[test]
    fn a_segment_cut_short_or_missing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = start(dir.path());
        wal.append(1, b"one").unwrap();
        let first = wal.current();
        wal.torn = true;
        wal.rotate_if_needed().unwrap();
        wal.append(2, b"two").unwrap();
        drop(wal);

        let len = fs::metadata(&first).unwrap().len();
        let bytes = fs::read(&first).unwrap();
        OpenOptions::new().write(true).open(&first).unwrap().set_len(len / 2).unwrap();
        assert!(
            matches!(replayed(dir.path(), FRESH), Err(StoreError::DamagedLog { path, .. }) if path == first),
            "a truncated segment"
        );
        fs::write(&first, &bytes).unwrap();

        fs::remove_file(&first).unwrap();
        match replayed(dir.path(), FRESH) {
            Err(StoreError::DamagedLog { path, reason, .. }) => {
                assert_eq!(path, first);
                assert!(reason.contains("missing"), "{reason}");
            }
            other => panic!("expected a missing segment, got {other:?}"),
        }
        let expect_one = Expect { retired_through: 1, next_segment_exists: true, first_commit: Some(2) };
        assert_eq!(replayed(dir.path(), expect_one).unwrap().1.records, 1, "retired, so not missing");
        let expect_two = Expect { retired_through: 2, next_segment_exists: true, first_commit: Some(3) };
        assert!(matches!(replayed(dir.path(), expect_two), Err(StoreError::DamagedLog { .. })));
    }

    #[test]
    fn a_commit_number_out_of_sequence_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = start(dir.path());
        wal.append(1, b"one").unwrap();
        wal.append(3, b"three").unwrap();
        drop(wal);
        assert!(matches!(replayed(dir.path(), FRESH), Err(StoreError::DamagedLog { .. })));
        let from_five = Expect { first_commit: Some(5), ..FRESH };
        assert!(matches!(replayed(dir.path(), from_five), Err(StoreError::DamagedLog { .. })));
    }

    #[test]
    fn a_reused_segment_replays_only_its_new_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = start(dir.path());
        wal.append(1, b"stale one").unwrap();
        wal.append(2, b"stale two").unwrap();
        let first = wal.current();
        wal.torn = true;
        wal.rotate_if_needed().unwrap();
        retire(&[first]).unwrap(); // It becomes the spare.
        wal.torn = true;
        wal.rotate_if_needed().unwrap();
        let reused = fs::metadata(wal.current()).unwrap().len();
        assert!(reused >= LIMIT, "the segment reuses a file whose blocks exist ({reused} bytes)");
        // Same length as the first stale record, so "stale two" follows, whole and framed,
        // with headers that were right for its old sequence number.
        wal.append(3, b"fresh one").unwrap();
        drop(wal);
        let expect = Expect { retired_through: 1, next_segment_exists: true, first_commit: Some(3) };
        let (records, _) = replayed(dir.path(), expect).unwrap();
        assert_eq!(payloads(&records), [b"fresh one".as_slice()]);
    }

    #[test]
    fn a_new_segment_whose_header_never_reached_the_disk_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let wal = start(dir.path());
        let segment = wal.current();
        drop(wal);
        let mut bytes = fs::read(&segment).unwrap();
        bytes[..SEGMENT_HEADER].fill(0);
        fs::write(&segment, &bytes).unwrap();
        assert_eq!(replayed(dir.path(), FRESH).unwrap().1.records, 0);
    }

    #[test]
    fn the_next_sequence_is_new_to_every_file_and_to_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = start(dir.path());
        wal.append(1, b"x").unwrap();
        let current = wal.current();
        drop(wal);
        retire(&[current]).unwrap(); // As a clean stop does: no segment is left.
        let clean = Expect { retired_through: 1, next_segment_exists: false, first_commit: Some(2) };
        assert_eq!(replayed(dir.path(), clean).unwrap().1.next_sequence, 2);
        let later = Expect { retired_through: 9, ..clean };
        assert_eq!(replayed(dir.path(), later).unwrap().1.next_sequence, 10);
    }

    #[test]
    fn format_0_segments_are_replayed_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for payload in [b"old one".as_slice(), b"old two"] {
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&7u64.to_le_bytes());
            hasher.update(payload);
            bytes.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
            bytes.extend_from_slice(&hasher.finalize().to_le_bytes());
            bytes.extend_from_slice(payload);
        }
        bytes.resize(4096, 0);
        fs::write(file_path(dir.path(), 7, SEGMENT), &bytes).unwrap();
        let legacy = Expect { retired_through: 0, next_segment_exists: false, first_commit: None };
        let (records, found) = replayed(dir.path(), legacy).unwrap();
        assert_eq!(payloads(&records), [b"old one".as_slice(), b"old two"]);
        assert_eq!(records[1].0, 2);
        assert_eq!(found.next_sequence, 8);
    }

    #[test]
    fn headers_have_fixed_bytes() {
        assert_eq!(
            segment_header(0x2a, 0x10000),
            *b"papo-wal\x01\x00\x00\x00\x93\x39\x5c\x40\x2a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00"
        );
        assert_eq!(
            record_header(0x2a, 3, 9, b"abc"),
            *b"PREC\x03\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\xc2\x41\x24\x35\x10\x59\x46\xa9"
        );
    }

    #[test]
    fn only_segment_names_are_read() {
        assert_eq!(sequence_of(Path::new("/d/000000000000002a.log"), SEGMENT), Some(42));
        assert_eq!(sequence_of(Path::new("/d/000000000000002a.spare"), SPARE), Some(42));
        assert_eq!(sequence_of(Path::new("/d/2a.log"), SEGMENT), None);
        assert_eq!(sequence_of(Path::new("/d/000000000000002a.tmp"), SEGMENT), None);
        assert_eq!(sequence_of(Path::new("/d/000000000000002alog"), SEGMENT), None);
    }
}
