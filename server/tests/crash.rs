//! Crash safety: senders load a real `papo-server` process, it is killed with SIGKILL at a
//! random moment, restarted on the same data directory, and senders resend what was not
//! acknowledged (same client ids). Every acknowledged message must then be in the
//! recipient's history exactly once, with the id it was acknowledged with, and nothing
//! may be stored twice. The write-ahead log is given its smallest segments, so the kills
//! also land in segment rotations and checkpoints, not only between syncs.
//!
//! CI runs 3 cycles; `PAPO_CRASH_CYCLES=25 cargo test --release -p papo-server --test crash
//! -- --nocapture` runs more and prints the totals.

#[path = "support/process.rs"]
mod process;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use papo_protocol::{Client, Reply, Request, Security};
use papo_server::testing::PASSWORD;

const SENDERS: usize = 4;
const WINDOW: usize = 8;
/// New messages per sender per cycle at most: the loop is bounded even if the kill is late.
const PER_CYCLE: u64 = 20_000;
/// Acknowledgements each cycle waits for before its kill timer starts: about three 64 KiB
/// segments of log, so every cycle rotates the log and checkpoints.
const ACKED_BEFORE_KILL: u64 = 3_000;
/// How long a cycle waits for those acknowledgements before killing anyway (and failing).
const CYCLE_DEADLINE: Duration = Duration::from_secs(30);
const INBOX: &str = "inbox";
/// Warnings, and the line that tells the port.
const QUIET: &str = "warn,papo_server::server=info";
/// Low bcrypt cost, and a checkpoint every 64 KiB of log (a few hundred messages).
const SERVER_ARGS: &[&str] = &["--bcrypt-cost", "4", "--wal-segment-kib", "64"];

#[derive(Default)]
struct Sender {
    /// client_msg_id → the id it was acknowledged with.
    acked: BTreeMap<u64, u64>,
    /// Sent, possibly stored, never acknowledged: resent after the restart.
    unacked: BTreeSet<u64>,
    next: u64,
    /// An acknowledgement that disagreed with an earlier one for the same client id.
    conflicts: Vec<String>,
}

fn body(sender: usize, client_msg_id: u64) -> String {
    format!("s{sender}:{client_msg_id}")
}

/// Resends what was never acknowledged, then sends up to `new_messages` more, until the
/// connection dies, counting acknowledgements in `acked`.
fn run_sender(
    addr: &str,
    security: &Security,
    index: usize,
    state: &mut Sender,
    new_messages: u64,
    acked: &AtomicU64,
) {
    let Ok(mut client) = Client::connect(addr, security, "crash-test", Duration::from_secs(2)) else {
        return;
    };
    if client.stream().set_read_timeout(Some(Duration::from_secs(10))).is_err()
        || client.login(&format!("s{index}"), PASSWORD).is_err()
    {
        return;
    }
    let mut queue: Vec<u64> = state.unacked.iter().copied().collect();
    let quota = state.next + new_messages;
    loop {
        while queue.len() < WINDOW && state.next < quota {
            state.unacked.insert(state.next);
            queue.push(state.next);
            state.next += 1;
        }
        if queue.is_empty() {
            return;
        }
        let batch: Vec<u64> = queue.drain(..queue.len().min(WINDOW)).collect();
        let mut requests = Vec::new();
        for &cmid in &batch {
            let send = Request::Send { to: INBOX.into(), body: body(index, cmid), client_msg_id: cmid };
            match client.send_request(send) {
                Ok(request) => requests.push((request, cmid)),
                Err(_) => return,
            }
        }
        for (request, cmid) in requests {
            match client.wait_reply(request) {
                Ok(Reply::Sent { id, .. }) => {
                    state.unacked.remove(&cmid);
                    acked.fetch_add(1, Ordering::Relaxed);
                    if let Some(previous) = state.acked.insert(cmid, id) {
                        if previous != id {
                            state.conflicts.push(format!("s{index}:{cmid} acked as {previous} then {id}"));
                        }
                    }
                }
                _ => return,
            }
        }
    }
}

/// Every message in the inbox's conversation with `sender`, oldest first.
fn conversation(client: &mut Client, sender: &str) -> Vec<(u64, String)> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = client.history(sender, before, 200).unwrap();
        all.extend(page.messages.iter().map(|m| (m.id, m.body.clone())));
        before = page.messages.last().map(|m| m.id);
        if !page.more {
            all.reverse();
            return all;
        }
    }
}

#[test]
fn acknowledged_messages_survive_kill_9_exactly_once() {
    let cycles: usize = std::env::var("PAPO_CRASH_CYCLES").ok().and_then(|n| n.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let mut server = process::spawn_with_args(dir.path(), QUIET, SERVER_ARGS);
    {
        let mut client = server.connect("crash-test");
        client.register(INBOX, PASSWORD).unwrap();
        for i in 0..SENDERS {
            client.register(&format!("s{i}"), PASSWORD).unwrap();
        }
    }
    let mut senders: Vec<Sender> = (0..SENDERS).map(|_| Sender::default()).collect();
    let started = Instant::now();
    let acked_now = AtomicU64::new(0);
    let mut short_cycles = 0;
    for _ in 0..cycles {
        let kill_after = Duration::from_millis(fastrand::u64(..300));
        let (addr, security) = (server.addr.clone(), server.security.clone());
        let cycle_start = acked_now.load(Ordering::Relaxed);
        let acked_now = &acked_now;
        std::thread::scope(|scope| {
            for (index, state) in senders.iter_mut().enumerate() {
                let (addr, security) = (&addr, &security);
                scope.spawn(move || run_sender(addr, security, index, state, PER_CYCLE, acked_now));
            }
            let deadline = Instant::now() + CYCLE_DEADLINE;
            while acked_now.load(Ordering::Relaxed) - cycle_start < ACKED_BEFORE_KILL
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            if acked_now.load(Ordering::Relaxed) - cycle_start < ACKED_BEFORE_KILL {
                short_cycles += 1;
            }
            std::thread::sleep(kill_after);
            server.signal(libc::SIGKILL);
            server.wait_exit();
        });
        server = process::spawn_with_args(dir.path(), QUIET, SERVER_ARGS);
    }
    // A last round with the server left alive settles every resend.
    std::thread::scope(|scope| {
        for (index, state) in senders.iter_mut().enumerate() {
            let (addr, security, acked_now) = (&server.addr, &server.security, &acked_now);
            scope.spawn(move || run_sender(addr, security, index, state, 0, acked_now));
        }
    });

    let mut inbox = server.connect("crash-test");
    inbox.login(INBOX, PASSWORD).unwrap();
    let (mut acked_total, mut lost, mut duplicates) = (0, 0, 0);
    let mut lost_examples = Vec::new();
    for (index, state) in senders.iter().enumerate() {
        assert!(state.conflicts.is_empty(), "{:?}", state.conflicts);
        assert!(state.unacked.is_empty(), "s{index} still has unacknowledged messages: {:?}", state.unacked);
        let stored = conversation(&mut inbox, &format!("s{index}"));
        let mut seen: HashMap<&str, u64> = HashMap::new();
        for (id, text) in &stored {
            if seen.insert(text, *id).is_some() {
                duplicates += 1;
            }
        }
        for (&cmid, &id) in &state.acked {
            acked_total += 1;
            let stored_as = seen.get(body(index, cmid).as_str());
            if stored_as != Some(&id) {
                lost += 1;
                lost_examples.push(format!(
                    "s{index} client id {cmid}: acknowledged as {id}, stored as {stored_as:?}"
                ));
            }
        }
    }
    let newest_segment = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            u64::from_str_radix(name.strip_suffix(".log")?, 16).ok()
        })
        .max()
        .unwrap();
    // Every start opens the next segment number (the first is 1), and so does every rotation.
    let rotations = newest_segment.saturating_sub(cycles as u64 + 1);
    eprintln!(
        "crash test: {cycles} kill -9 cycles in {:.1}s, {acked_total} messages acknowledged, {rotations} log rotations, {lost} lost, {duplicates} stored twice",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        short_cycles, 0,
        "cycles that did not reach {ACKED_BEFORE_KILL} acknowledgements in {CYCLE_DEADLINE:?}"
    );
    // ACKED_BEFORE_KILL fills about three segments a cycle: two is the least to expect.
    assert!(
        rotations >= 2 * cycles as u64,
        "{rotations} log rotations in {cycles} cycles (newest segment {newest_segment}): the kills did not meet checkpoints"
    );
    assert_eq!((lost, duplicates), (0, 0), "lost: {lost_examples:#?}");
}
