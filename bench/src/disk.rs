//! How long the disk under the server's data directory takes to make a small write durable:
//! the floor under every acknowledgement, printed beside each run because on shared (virtual)
//! disks it drifts from hour to hour.

use std::fs::OpenOptions;
use std::io::{Result, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::report;

/// Syncs timed, a few tens of milliseconds in all.
const SYNCS: u64 = 300;

/// Times `SYNCS` overwrites of 512 bytes followed by `fdatasync` in a file under `dir`, as
/// the server's write-ahead log does: the file's blocks exist, so only data is written.
pub fn sync_latency(dir: &Path) -> Result<Histogram<u64>> {
    let path = dir.join("disk-probe");
    let mut file = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
    file.write_all(&vec![0; (SYNCS * 512) as usize])?;
    file.sync_all()?;
    let mut latency = report::histogram();
    for i in 0..SYNCS {
        let started = Instant::now();
        file.write_all_at(&[1; 512], i * 512)?;
        file.sync_data()?;
        let _ = latency.record(started.elapsed().as_micros() as u64);
    }
    std::fs::remove_file(path)?;
    Ok(latency)
}
