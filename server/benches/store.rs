//! History pages from a 1,000,000-message conversation, and cold start on that data.
//!
//! `cargo bench -p papo-server --bench store` builds the conversation once (about a minute),
//! then measures with criterion, prints p50/p99 of 10,000 random pages, and times
//! `papo-server` from start to listening on that data directory: after a clean stop, then
//! after kills with SIGKILL at random moments under load, when the write-ahead log must be
//! replayed first. PAPO_BENCH_MESSAGES changes the size.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_main, Criterion};
use papo_protocol::{Client, Request, Username};
use papo_server::store::{Appends, Store};
use papo_server::testing::PASSWORD;

#[path = "../tests/support/process.rs"]
mod process;

const PAGE: usize = 50;

/// Kills under load, each followed by a timed restart.
const KILLS: usize = 10;

/// Clients sending while the server is killed; they send to each other.
const SENDERS: usize = 4;

fn messages() -> u64 {
    std::env::var("PAPO_BENCH_MESSAGES").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000_000)
}

/// Fills `dir` with one conversation of `count` messages, pipelined through the committer.
fn fill(dir: &std::path::Path, count: u64) -> (Username, Username) {
    let (ana, bia) = (Username::parse("ana").unwrap(), Username::parse("bia").unwrap());
    let store = Store::open(dir).unwrap();
    let appends = Appends::new();
    let started = Instant::now();
    let mut queued = 0;
    for i in 0..count {
        let (from, to) = if i % 2 == 0 { (&ana, &bia) } else { (&bia, &ana) };
        store
            .append(from, to, &format!("message number {i} of the long conversation"), i, 0, &appends)
            .unwrap();
        queued += 1;
        if queued == 8192 {
            (0..queued).for_each(|_| drop(appends.next().unwrap()));
            queued = 0;
        }
    }
    (0..queued).for_each(|_| drop(appends.next().unwrap()));
    eprintln!("stored {count} messages in {:.1}s", started.elapsed().as_secs_f64());
    (ana, bia)
}

fn history(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let count = messages();
    let (ana, bia) = fill(dir.path(), count);

    let opened = Instant::now();
    let store = Store::open(dir.path()).unwrap();
    eprintln!("Store::open on {count} messages: {:.1} ms", opened.elapsed().as_secs_f64() * 1000.0);
    let newest = store.last_message_id().unwrap();

    // A cheap deterministic spread of `before` ids over the whole conversation.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next_before = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        Some(seed % newest + 1)
    };
    c.bench_function(&format!("history page of {PAGE} from {count} messages"), |b| {
        b.iter(|| black_box(store.history(&ana, &bia, next_before(), PAGE).unwrap()))
    });

    let mut latency = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    for _ in 0..10_000 {
        let started = Instant::now();
        black_box(store.history(&ana, &bia, next_before(), PAGE).unwrap());
        latency.record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)).unwrap();
    }
    eprintln!(
        "history page of {PAGE}: p50 {} µs, p99 {} µs, max {} µs over 10,000 random pages",
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
        latency.max()
    );
    drop(store);
    cold_start(dir.path(), count);
}

/// Spawns `papo-server` (bcrypt cost 12, as deployed) on `dir`; returns it and the time it
/// took to listen.
fn start(dir: &Path) -> (process::ServerProcess, Duration) {
    let started = Instant::now();
    let server = process::spawn_with_cost(dir, "warn,papo_server::server=info", 12);
    (server, started.elapsed())
}

/// Time to listening after a clean stop, then after each of [`KILLS`] kills with SIGKILL
/// while [`SENDERS`] clients send as fast as they can: a crash leaves up to a segment of
/// write-ahead log (and one being checkpointed) to replay before the server listens.
fn cold_start(dir: &Path, count: u64) {
    let (mut server, clean) = start(dir);
    eprintln!(
        "papo-server cold start on {count} messages (bcrypt cost 12): {:.0} ms",
        clean.as_secs_f64() * 1000.0
    );
    {
        let mut client = server.connect("bench");
        for i in 0..SENDERS {
            client.register(&format!("load{i}"), PASSWORD).unwrap();
        }
    }
    let mut after_kill = Vec::new();
    for _ in 0..KILLS {
        let kill_after = Duration::from_millis(500 + fastrand::u64(..2000));
        let killed = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for i in 0..SENDERS {
                let (client, killed) = (server.connect("bench"), &killed);
                scope.spawn(move || send_until_killed(client, i, killed));
            }
            std::thread::sleep(kill_after);
            killed.store(true, Ordering::Relaxed);
            server.signal(libc::SIGKILL);
        });
        server.wait_exit();
        let restarted;
        (server, restarted) = start(dir);
        after_kill.push(restarted);
    }
    after_kill.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "papo-server cold start after kill -9 under load, {KILLS} kills: median {:.0} ms, max {:.0} ms",
        ms(after_kill[KILLS / 2]),
        ms(after_kill[KILLS - 1])
    );
    server.signal(libc::SIGTERM);
    server.wait_exit();
}

/// Logs in as `load{index}` and sends pipelined messages to the next sender until the server
/// is gone; every message is acknowledged before the next window goes out.
fn send_until_killed(mut client: Client, index: usize, killed: &AtomicBool) {
    if client.login(&format!("load{index}"), PASSWORD).is_err() {
        return;
    }
    let to = format!("load{}", (index + 1) % SENDERS);
    let body = "a message sent while the server is about to be killed";
    let mut client_msg_id = 0;
    while !killed.load(Ordering::Relaxed) {
        let mut window = Vec::new();
        for _ in 0..64 {
            client_msg_id += 1;
            let send = Request::Send { to: to.clone(), body: body.into(), client_msg_id };
            match client.send_request(send) {
                Ok(request) => window.push(request),
                Err(_) => return,
            }
        }
        for request in window {
            if client.wait_reply(request).is_err() {
                return;
            }
        }
    }
}

// criterion's macros generate undocumented items.
#[allow(missing_docs)]
mod harness {
    criterion::criterion_group! {
        name = benches;
        config = criterion::Criterion::default().measurement_time(std::time::Duration::from_secs(5));
        targets = super::history
    }
}
criterion_main!(harness::benches);
