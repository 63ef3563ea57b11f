//! How long the disk under the server's data directory takes to make a small write durable:
//! the floor under every acknowledgement. A short probe is printed beside each run, because on
//! shared (virtual) disks it drifts from hour to hour; the `disk` mode runs it for longer,
//! optionally with cores kept busy, to show what the disk alone does to a latency tail.

use std::fs::OpenOptions;
use std::io::{Result, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::report;

/// Bytes of one probe write, about one small group of messages in the server's log.
const WRITE: u64 = 512;

/// Distinct offsets written in turn, so the probe file stays small whatever the run's length.
const SLOTS: u64 = 2048;

/// Syncs timed by the probe printed before every run, a few tens of milliseconds in all.
pub const QUICK_PROBE: u64 = 300;

/// A probe's syncs and how long it ran.
pub struct SyncProbe {
    /// Microseconds per write + sync.
    pub latency: Histogram<u64>,
    /// Wall time of the whole probe.
    pub elapsed: Duration,
}

impl SyncProbe {
    /// Syncs that took longer than `budget`.
    pub fn syncs_over(&self, budget: Duration) -> u64 {
        let budget = budget.as_micros() as u64;
        self.latency
            .iter_recorded()
            .filter(|bucket| bucket.value_iterated_to() > budget)
            .map(|bucket| bucket.count_at_value())
            .sum()
    }

    /// The share of the probe's time in which a message would have waited longer than
    /// `budget` for the sync in progress to end alone. A server that syncs without pause, as a
    /// loaded committer does, acknowledges a message only after a sync that starts once the
    /// message is there, so at least this share of messages arriving at a steady rate take
    /// longer than `budget`, however fast everything else is.
    pub fn share_beyond(&self, budget: Duration) -> f64 {
        let budget = budget.as_micros() as u64;
        let stalled_us: u64 = self
            .latency
            .iter_recorded()
            .map(|bucket| bucket.value_iterated_to().saturating_sub(budget) * bucket.count_at_value())
            .sum();
        stalled_us as f64 / self.elapsed.as_micros().max(1) as f64
    }
}

/// Times overwrites of [`WRITE`] bytes, each followed by `fdatasync`, in a file under `dir`,
/// as the server's write-ahead log does (the file's blocks exist, so no block is allocated),
/// waiting `pause` before each write, until `syncs` are done or `duration` has passed; the
/// pauses count in neither the syncs' times nor the probe's.
///
/// Back to back, most syncs write the data alone. After a pause, ext4 without a journal
/// writes the inode too: the write moved the file's modification time, which only changes
/// once the kernel's coarse clock has ticked (every 4 ms at 250 Hz), so a few milliseconds
/// apart every sync pays for it, as a conversation going back and forth does.
pub fn sync_latency(dir: &Path, syncs: u64, duration: Duration, pause: Duration) -> Result<SyncProbe> {
    let path = dir.join("disk-probe");
    let mut file = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
    file.write_all(&vec![0; (SLOTS * WRITE) as usize])?;
    file.sync_all()?;
    let mut latency = report::histogram();
    let started = Instant::now();
    let mut paused = Duration::ZERO;
    for i in 0..syncs {
        if started.elapsed() >= duration {
            break;
        }
        if !pause.is_zero() {
            let sleeping = Instant::now();
            thread::sleep(pause);
            paused += sleeping.elapsed();
        }
        let write = Instant::now();
        file.write_all_at(&[1; WRITE as usize], (i % SLOTS) * WRITE)?;
        file.sync_data()?;
        let _ = latency.record(write.elapsed().as_micros() as u64);
    }
    let elapsed = started.elapsed().saturating_sub(paused);
    std::fs::remove_file(path)?;
    Ok(SyncProbe { latency, elapsed })
}

/// Runs [`sync_latency`] for `duration` while `busy_threads` threads spin, standing in for a
/// server and load generator that keep cores busy (on our virtual machines a busy guest
/// makes the host's disk stall more often).
pub fn sync_latency_under_load(
    dir: &Path,
    duration: Duration,
    busy_threads: usize,
    pause: Duration,
) -> Result<SyncProbe> {
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        for _ in 0..busy_threads {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
        }
        let probe = sync_latency(dir, u64::MAX, duration, pause);
        stop.store(true, Ordering::Relaxed);
        probe
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_beyond_counts_only_the_wait_past_the_budget() {
        let mut latency = report::histogram();
        // Nine quick syncs and one of 12 ms, in a run of 100 ms: 10 ms past a 2 ms budget.
        for _ in 0..9 {
            latency.record(100).unwrap();
        }
        latency.record(12_000).unwrap();
        let probe = SyncProbe { latency, elapsed: Duration::from_millis(100) };
        let share = probe.share_beyond(Duration::from_millis(2));
        assert!((share - 0.10).abs() < 0.001, "{share}");
        assert_eq!(probe.syncs_over(Duration::from_millis(2)), 1);
        assert_eq!(probe.share_beyond(Duration::from_millis(20)), 0.0);
        assert_eq!(probe.syncs_over(Duration::from_millis(20)), 0);
    }

    #[test]
    fn a_probe_stops_at_its_count_or_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let counted = sync_latency(dir.path(), 5, Duration::from_secs(60), Duration::ZERO).unwrap();
        assert_eq!(counted.latency.len(), 5);
        let timed =
            sync_latency_under_load(dir.path(), Duration::from_millis(50), 1, Duration::ZERO).unwrap();
        assert!(timed.elapsed < Duration::from_secs(5), "{:?}", timed.elapsed);
        assert!(!dir.path().join("disk-probe").exists(), "the probe file is removed");
    }

    #[test]
    fn pauses_come_before_each_sync_and_count_in_no_time() {
        let dir = tempfile::tempdir().unwrap();
        let pause = Duration::from_millis(50);
        let started = Instant::now();
        let spaced = sync_latency(dir.path(), 4, Duration::from_secs(60), pause).unwrap();
        let wall = started.elapsed();
        assert_eq!(spaced.latency.len(), 4);
        assert!(wall >= 4 * pause, "{wall:?}");
        assert!(spaced.elapsed <= wall - 4 * pause, "{:?} of {wall:?}", spaced.elapsed);
        // Had a sync been timed with its pause, none would be quicker than the pause.
        let quickest = Duration::from_micros(spaced.latency.min());
        assert!(quickest < pause, "{quickest:?}");
    }
}
