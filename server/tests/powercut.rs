//! Power-cut safety: the crash test's load against a real `papo-server` whose data directory
//! is on papo-powercut's file system. After each SIGKILL the file system drops everything no
//! sync made durable, as a power cut would (a kill alone leaves the page cache, which hides
//! missing syncs), and the server restarts on what is left; senders then resend what was
//! never acknowledged (same client ids); half of the senders write to a group. Every
//! acknowledged message must be in the recipient's (or the group's) history exactly once, with the id it was acknowledged with, nothing may be
//! stored twice, and every account must still log in. The write-ahead log has its smallest
//! segments, so cuts also land in rotations and checkpoints.
//!
//! CI runs 5 cuts; `PAPO_POWERCUT_CYCLES=25 cargo test -p papo-server --test powercut --
//! --nocapture` runs more and prints the totals.

#[path = "support/crash_load.rs"]
mod crash_load;
#[path = "support/process.rs"]
mod process;

use std::path::Path;
use std::time::{Duration, Instant};

use crash_load::{Cycle, CycleEnd, Load, QUIET, SERVER_ARGS};
use papo_powercut::{CutReport, Mount};

/// New messages per sender per cycle at most: the loop is bounded even if the kill is late.
const PER_CYCLE: u64 = 20_000;
/// Acknowledgements each cycle waits for before its kill timer starts: about three 64 KiB
/// segments of log, so the log has rotated and checkpointed before every cut.
const ACKED_BEFORE_KILL: u64 = 3_000;
/// How long a cycle waits for those acknowledgements before killing anyway (and failing).
const CYCLE_DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn acknowledged_messages_survive_power_cuts_exactly_once() {
    let cuts: usize = std::env::var("PAPO_POWERCUT_CYCLES").ok().and_then(|n| n.parse().ok()).unwrap_or(5);
    let mountpoint = tempfile::tempdir().unwrap();
    let mount = Mount::new(mountpoint.path()).unwrap_or_else(|e| panic!("{e}"));
    // The server creates its data directory itself: making that name durable is its job too.
    let data = mount.path().join("data");

    let mut server = process::spawn_with_args(&data, QUIET, SERVER_ARGS);
    // Clients pinned this certificate: a cut must not make the server generate another.
    let fingerprint = server.fingerprint;
    let mut load = Load::register(&server);
    let started = Instant::now();
    let mut cycles: Vec<(CycleEnd, CutReport)> = Vec::new();
    for cut in 1..=cuts {
        let cycle = Cycle {
            new_messages: PER_CYCLE,
            acked_before_kill: ACKED_BEFORE_KILL,
            deadline: CYCLE_DEADLINE,
            kill_delay: Duration::from_millis(fastrand::u64(..300)),
        };
        let end = load.cycle_then_kill(&mut server, &data, &cycle);
        let dropped = mount.power_cut().expect("the server has exited, so nothing is open");
        eprintln!(
            "cut {cut}: dropped {} bytes, {} files or directories and {} directory entries; left {:?}",
            dropped.bytes_lost,
            dropped.inodes_lost,
            dropped.entries_reverted,
            left_in(&data)
        );
        cycles.push((end, dropped));
        server = process::try_spawn_with_args(&data, QUIET, SERVER_ARGS).unwrap_or_else(|exited| {
            panic!(
                "papo-server refused to start ({}) after power cut {cut} of {cuts}, which dropped \
                 {dropped:?}; its log:\n{}",
                exited.status, exited.log
            )
        });
        assert_eq!(server.fingerprint, fingerprint, "the certificate changed after cut {cut}");
    }
    load.settle(&server);

    let tally = load.tally(&server);
    let rotations: Vec<u64> = cycles.iter().map(|(end, _)| end.rotations).collect();
    let short_cycles = cycles.iter().filter(|(end, _)| !end.reached).count();
    let bytes_lost: u64 = cycles.iter().map(|(_, cut)| cut.bytes_lost).sum();
    let inodes_lost: u64 = cycles.iter().map(|(_, cut)| cut.inodes_lost).sum();
    let stats = mount.stats();
    eprintln!(
        "power-cut test: {cuts} cuts in {:.1}s; log rotations before each cut {rotations:?}; the cuts \
         dropped {bytes_lost} bytes and {inodes_lost} files or directories; {} file and {} directory \
         fsyncs; {}",
        started.elapsed().as_secs_f64(),
        stats.fsyncs,
        stats.dir_fsyncs,
        tally.summary()
    );
    assert!(tally.locked_out.is_empty(), "accounts lost to the power cuts: {:#?}", tally.locked_out);
    tally.assert_exactly_once();
    assert_eq!(
        short_cycles, 0,
        "cycles that did not reach {ACKED_BEFORE_KILL} acknowledgements in {CYCLE_DEADLINE:?}"
    );
    assert!(
        rotations.iter().all(|&r| r >= 1),
        "a cycle whose log never rotated before its cut: {rotations:?}"
    );
}

/// What is in the data directory and its `wal/`, with sizes.
fn left_in(data: &Path) -> Vec<String> {
    let mut left = Vec::new();
    for dir in [data.to_owned(), data.join("wal")] {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let len = entry.metadata().map(|m| m.len()).unwrap_or_default();
            left.push(format!("{} ({len} B)", path.strip_prefix(data).unwrap_or(&path).display()));
        }
    }
    left.sort();
    left
}

#[test]
fn a_cut_right_after_the_first_start_keeps_the_certificate_and_the_account() {
    let mountpoint = tempfile::tempdir().unwrap();
    let mount = Mount::new(mountpoint.path()).unwrap_or_else(|e| panic!("{e}"));
    let data = mount.path().join("data");
    let mut server = process::spawn_with_args(&data, QUIET, SERVER_ARGS);
    let fingerprint = server.fingerprint;
    server.connect("power-cut").register("early", papo_server::testing::PASSWORD).unwrap();
    // No checkpoint has run since the start: only the server's own syncs stand between the
    // account, the certificate and the cut.
    server.signal(libc::SIGKILL);
    server.wait_exit();
    let cut = mount.power_cut().expect("the server has exited");
    let server = process::try_spawn_with_args(&data, QUIET, SERVER_ARGS)
        .unwrap_or_else(|exited| panic!("no start after a cut that dropped {cut:?}:\n{}", exited.log));
    assert_eq!(server.fingerprint, fingerprint, "the certificate changed");
    server.connect("power-cut").login("early", papo_server::testing::PASSWORD).expect("the account survived");
}

#[test]
fn a_failed_log_sync_stops_the_server_unacknowledged_and_the_resend_is_stored_once() {
    let mountpoint = tempfile::tempdir().unwrap();
    let mount = Mount::new(mountpoint.path()).unwrap_or_else(|e| panic!("{e}"));
    let data = mount.path().join("data");
    let mut server = process::spawn_with_args(&data, QUIET, SERVER_ARGS);
    let mut client = server.connect("power-cut");
    client.register("ana", papo_server::testing::PASSWORD).unwrap();
    client.register("bob", papo_server::testing::PASSWORD).unwrap();
    client.login("ana", papo_server::testing::PASSWORD).unwrap();
    let (before, _) = client.send("bob", "before", 1).unwrap();

    // fsyncgate: after a failed sync the kernel may have dropped the pages, so the group's
    // fate is unknown and nothing about it may be answered.
    mount.fail_next_fsync(".log");
    let answer = client.send("bob", "during", 2);
    assert!(answer.is_err(), "a message whose sync failed was answered: {answer:?}");
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(1), "a failed sync must stop the server");
    let log: Vec<String> = server.log.try_iter().collect();
    assert!(log.iter().any(|line| line.contains("syncing") && line.contains("failed")), "{log:#?}");
    // The kernel's page cache may or may not have kept the write; a cut drops it for sure.
    mount.power_cut().expect("the server has exited");

    let server = process::spawn_with_args(&data, QUIET, SERVER_ARGS);
    let mut client = server.connect("power-cut");
    client.login("ana", papo_server::testing::PASSWORD).unwrap();
    let (during, _) = client.send("bob", "during", 2).expect("the resend is stored");
    assert_eq!(client.send("bob", "during", 2).unwrap().0, during, "and only once");
    let page = client.history("bob", None, 10).unwrap();
    let bodies: Vec<(u64, &str)> = page.messages.iter().rev().map(|m| (m.id, m.body.as_str())).collect();
    assert_eq!(bodies, [(before, "before"), (during, "during")]);
}
