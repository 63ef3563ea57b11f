//! Crash safety: senders load a real `papo-server` process (half of them writing to a
//! group), it is killed with SIGKILL at a random moment, restarted on the same data
//! directory, and senders resend what was not acknowledged (same client ids). Every
//! acknowledged message must then be in the recipient's (or the group's) history exactly once, with the id it was acknowledged with, and nothing
//! may be stored twice. The write-ahead log is given its smallest segments, so the kills
//! also land in segment rotations and checkpoints, not only between syncs.
//!
//! CI runs 3 cycles; `PAPO_CRASH_CYCLES=25 cargo test --release -p papo-server --test crash
//! -- --nocapture` runs more and prints the totals.

#[path = "support/crash_load.rs"]
mod crash_load;
#[path = "support/process.rs"]
mod process;

use std::time::{Duration, Instant};

use crash_load::{Cycle, Load, QUIET, SERVER_ARGS};

/// New messages per sender per cycle at most: the loop is bounded even if the kill is late.
const PER_CYCLE: u64 = 20_000;
/// Acknowledgements each cycle waits for before its kill timer starts: about three 64 KiB
/// segments of log, so every cycle rotates the log and checkpoints.
const ACKED_BEFORE_KILL: u64 = 3_000;
/// How long a cycle waits for those acknowledgements before killing anyway (and failing).
const CYCLE_DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn acknowledged_messages_survive_kill_9_exactly_once() {
    let cycles: usize = std::env::var("PAPO_CRASH_CYCLES").ok().and_then(|n| n.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let mut server = process::spawn_with_args(dir.path(), QUIET, SERVER_ARGS);
    let mut load = Load::register(&server);
    let started = Instant::now();
    let (mut short_cycles, mut rotations) = (0, 0);
    for _ in 0..cycles {
        let cycle = Cycle {
            new_messages: PER_CYCLE,
            acked_before_kill: ACKED_BEFORE_KILL,
            deadline: CYCLE_DEADLINE,
            kill_delay: Duration::from_millis(fastrand::u64(..300)),
        };
        let end = load.cycle_then_kill(&mut server, dir.path(), &cycle);
        short_cycles += usize::from(!end.reached);
        rotations += end.rotations;
        server = process::spawn_with_args(dir.path(), QUIET, SERVER_ARGS);
    }
    load.settle(&server);

    let tally = load.tally(&server);
    eprintln!(
        "crash test: {cycles} kill -9 cycles in {:.1}s, {rotations} log rotations before the kills, {}",
        started.elapsed().as_secs_f64(),
        tally.summary()
    );
    assert_eq!(
        short_cycles, 0,
        "cycles that did not reach {ACKED_BEFORE_KILL} acknowledgements in {CYCLE_DEADLINE:?}"
    );
    // ACKED_BEFORE_KILL fills about three segments a cycle: two is the least to expect.
    assert!(
        rotations >= 2 * cycles as u64,
        "{rotations} log rotations in {cycles} cycles: the kills did not meet checkpoints"
    );
    tally.assert_exactly_once();
}
