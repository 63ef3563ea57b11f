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
//! A record is `[payload length: u32 LE][CRC-32 of the segment's sequence number (u64 LE)
//! and the payload: u32 LE][payload]`. A record that is cut short or fails its checksum ends
//! its segment: it is the write a crash or a failed `write` interrupted (never
//! acknowledged), or what an earlier use of the file left.
//!
//! Syncing a write that grows a file also writes its inode, which on our machines is a second
//! disk write per sync (0.23 against 0.15 ms). So segments are written over files whose blocks
//! already exist: a retired segment becomes the spare the next segment is made from, its old
//! records rejected by the checksum, which covers the sequence number (a spare's name keeps
//! the newest sequence it may hold, and sequence numbers only grow); only the first spare
//! is filled with zeros (a zero length also ends the records).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::info;

/// Bytes of a record's header.
const HEADER: usize = 8;

/// Extension of a segment's file, named by its sequence number in hex.
const SEGMENT: &str = "log";

/// Extension of the file the next segment is made from (a retired segment, or zeros), named
/// by the newest sequence whose records it may hold.
const SPARE: &str = "spare";

/// A spare being filled with zeros; renamed once complete and durable.
const SPARE_UNFINISHED: &str = "spare.unfinished";

/// The log's current segment, which records are appended to.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment_limit: u64,
    file: File,
    sequence: u64,
    written: u64,
    /// A write failed part-way, so the segment may end in a torn record: nothing more is
    /// written to it, and the next rotation leaves it.
    torn: bool,
    scratch: Vec<u8>,
}

impl Wal {
    /// Opens the log in `dir`, with segments of about `segment_limit` bytes, first handing
    /// every record of the previous run to `replay`, oldest first. Returns the log, writing
    /// to a new segment, and the segments replayed: they must be retired (with [`retire`])
    /// only once what they hold is durable elsewhere.
    pub fn open<E: From<io::Error>>(
        dir: &Path,
        segment_limit: u64,
        mut replay: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(Self, Vec<PathBuf>), E> {
        fs::create_dir_all(dir)?;
        let mut segments = files(dir, SEGMENT)?;
        segments.sort_unstable();
        for (sequence, path) in &segments {
            replay_segment(*sequence, path, &mut replay)?;
        }
        prepare_spare(dir, segment_limit)?;
        // Never a sequence number a file here may still hold records of.
        let spares = files(dir, SPARE)?;
        let newest = segments.iter().chain(&spares).map(|(sequence, _)| *sequence).max().unwrap_or(0);
        let wal = Self::create(dir, segment_limit, newest + 1)?;
        Ok((wal, segments.into_iter().map(|(_, path)| path).collect()))
    }

    /// Appends one record and waits until it is on disk.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        if self.torn {
            return Err(io::Error::other(
                "the log segment ends in a failed write and no new segment could be started",
            ));
        }
        if payload.is_empty() {
            // A zero length marks where the records end.
            return Err(io::Error::other("an empty record"));
        }
        let len = u32::try_from(payload.len()).map_err(|_| io::Error::other("a record over 4 GiB"))?;
        self.scratch.clear();
        self.scratch.extend_from_slice(&len.to_le_bytes());
        self.scratch.extend_from_slice(&checksum(self.sequence, payload).to_le_bytes());
        self.scratch.extend_from_slice(payload);
        self.torn = true;
        self.file.write_all_at(&self.scratch, self.written)?;
        self.file.sync_data()?;
        self.torn = false;
        self.written += self.scratch.len() as u64;
        Ok(())
    }

    /// Starts a new segment if the current one is full or ends in a failed write, returning
    /// the path of the one left: it is to be retired once sled holds its records durably.
    pub fn rotate_if_needed(&mut self) -> io::Result<Option<PathBuf>> {
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

    fn create(dir: &Path, segment_limit: u64, sequence: u64) -> io::Result<Self> {
        let path = file_path(dir, sequence, SEGMENT);
        let spare = files(dir, SPARE)?.pop();
        let file = match spare.map(|(_, spare)| fs::rename(spare, &path)) {
            Some(Ok(())) => OpenOptions::new().write(true).open(&path)?,
            // No spare ready (or the checkpointer just took it): an empty file works, only
            // its syncs cost more.
            Some(Err(e)) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => OpenOptions::new().write(true).create_new(true).open(&path)?,
        };
        // The new name must survive a crash before any record in it is acknowledged.
        File::open(dir)?.sync_all()?;
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
}

/// Fills a spare segment with zeros, unless one is ready.
fn prepare_spare(dir: &Path, segment_limit: u64) -> io::Result<()> {
    if !files(dir, SPARE)?.is_empty() {
        return Ok(());
    }
    let unfinished = dir.join(SPARE_UNFINISHED);
    let mut file = File::create(&unfinished)?;
    let zeros = vec![0; 1 << 20];
    let mut left = segment_limit;
    while left > 0 {
        let chunk = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..chunk])?;
        left -= chunk as u64;
    }
    file.sync_all()?;
    fs::rename(unfinished, file_path(dir, 0, SPARE))?;
    File::open(dir)?.sync_all()
}

/// Retires segments whose records are durable in sled, oldest first: the newest becomes the
/// spare if none is ready, the others are deleted.
pub fn retire(segments: &[PathBuf]) -> io::Result<()> {
    let Some((newest, older)) = segments.split_last() else { return Ok(()) };
    let dir = newest.parent().ok_or_else(|| io::Error::other("a log segment without a directory"))?;
    for path in older {
        remove_if_present(path)?;
    }
    let sequence = sequence_of(newest, SEGMENT).ok_or_else(|| io::Error::other("not a log segment"))?;
    if files(dir, SPARE)?.is_empty() {
        fs::rename(newest, file_path(dir, sequence, SPARE))?;
    } else {
        remove_if_present(newest)?;
    }
    File::open(dir)?.sync_all()
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn replay_segment<E: From<io::Error>>(
    sequence: u64,
    path: &Path,
    replay: &mut impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut rest = bytes.as_slice();
    let mut records = 0;
    while let Some(payload) = next_record(&mut rest, sequence) {
        replay(payload)?;
        records += 1;
    }
    info!(
        segment = %path.display(),
        records,
        ignored_bytes = rest.len(),
        "replayed a write-ahead log segment (ignored: its unused rest, or a write a crash cut off)"
    );
    Ok(())
}

/// Takes the next whole, intact record of segment `sequence` off the front of `rest`.
fn next_record<'a>(rest: &mut &'a [u8], sequence: u64) -> Option<&'a [u8]> {
    let header = rest.get(..HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len == 0 {
        return None;
    }
    let payload = rest.get(HEADER..HEADER.checked_add(len)?)?;
    if checksum(sequence, payload) != crc {
        return None;
    }
    *rest = &rest[HEADER + len..];
    Some(payload)
}

fn checksum(sequence: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&sequence.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn file_path(dir: &Path, sequence: u64, extension: &str) -> PathBuf {
    dir.join(format!("{sequence:016x}.{extension}"))
}

/// The files in `dir` with `extension`, and their sequence numbers.
fn files(dir: &Path, extension: &str) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
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

    fn reopen(dir: &Path) -> (Wal, Vec<Vec<u8>>, Vec<PathBuf>) {
        let mut records = Vec::new();
        let (wal, replayed) = Wal::open(dir, LIMIT, |record| {
            records.push(record.to_vec());
            Ok::<_, io::Error>(())
        })
        .unwrap();
        (wal, records, replayed)
    }

    #[test]
    fn records_replay_in_order_across_segments_until_retired() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, records, _) = reopen(dir.path());
        assert!(records.is_empty());
        let big = vec![7u8; LIMIT as usize];
        wal.append(b"first").unwrap();
        wal.append(&big).unwrap();
        let full = wal.rotate_if_needed().unwrap().expect("the segment is over the limit");
        assert_eq!(wal.rotate_if_needed().unwrap(), None);
        wal.append(b"third").unwrap();
        drop(wal);

        let (wal, records, replayed) = reopen(dir.path());
        assert_eq!(records, [b"first".to_vec(), big, b"third".to_vec()]);
        assert_eq!(replayed.len(), 2);
        assert_eq!(replayed[0], full);
        assert!(!replayed.contains(&wal.current()));
        retire(&replayed).unwrap();
        drop(wal);
        let (_, records, replayed) = reopen(dir.path());
        assert!(records.is_empty());
        assert_eq!(replayed.len(), 1, "only the segment the last run opened");
    }

    #[test]
    fn a_torn_or_corrupt_tail_ends_its_segment_only() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = reopen(dir.path());
        wal.append(b"kept").unwrap();
        wal.append(b"cut short").unwrap();
        let end_of_records = (HEADER + 4 + HEADER + 9) as u64;
        let torn = wal.current();
        wal.torn = true; // As after a failed write: nothing more goes into this segment.
        assert!(wal.append(b"refused").is_err());
        assert_eq!(wal.rotate_if_needed().unwrap(), Some(torn.clone()));
        wal.append(b"next segment").unwrap();
        drop(wal);
        OpenOptions::new().write(true).open(&torn).unwrap().set_len(end_of_records - 3).unwrap();

        let (_, records, _) = reopen(dir.path());
        assert_eq!(records, [b"kept".to_vec(), b"next segment".to_vec()]);

        let mut bytes = fs::read(&torn).unwrap();
        bytes[HEADER] ^= 1; // Flip a bit of the first payload: its checksum fails.
        fs::write(&torn, bytes).unwrap();
        let (_, records, _) = reopen(dir.path());
        assert_eq!(records, [b"next segment".to_vec()]);
    }

    #[test]
    fn a_length_past_the_end_is_torn_not_allocated() {
        let mut record: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 2, 3];
        assert_eq!(next_record(&mut record, 1), None);
    }

    #[test]
    fn a_reused_segment_replays_only_its_new_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = reopen(dir.path());
        wal.append(b"stale one").unwrap();
        wal.append(b"stale two").unwrap();
        drop(wal);
        let (mut wal, records, replayed) = reopen(dir.path());
        assert_eq!(records, [b"stale one".to_vec(), b"stale two".to_vec()]);
        // The new segment took the spare, so the retired one becomes the next spare.
        retire(&replayed).unwrap();
        wal.torn = true;
        wal.rotate_if_needed().unwrap();
        let reused = fs::metadata(wal.current()).unwrap().len();
        assert!(reused >= LIMIT, "the segment reuses a file whose blocks exist ({reused} bytes)");
        // Same length as the first stale record, so "stale two" follows, whole and framed,
        // with a checksum that was right for its old sequence number.
        wal.append(b"fresh one").unwrap();
        drop(wal);
        let (_, records, _) = reopen(dir.path());
        assert_eq!(records, [b"fresh one".to_vec()]);
    }

    #[test]
    fn a_log_emptied_by_a_clean_stop_never_reuses_a_sequence_number() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = reopen(dir.path());
        wal.append(b"stale one").unwrap();
        wal.append(b"stale two").unwrap();
        let current = wal.current();
        drop(wal);
        retire(&[current]).unwrap(); // As a clean stop does: no segment is left.
        let (mut wal, records, replayed) = reopen(dir.path());
        assert!(records.is_empty() && replayed.is_empty());
        wal.append(b"fresh one").unwrap();
        drop(wal); // A crash: this segment is replayed on the next start.
        let (_, records, _) = reopen(dir.path());
        assert_eq!(records, [b"fresh one".to_vec()]);
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
