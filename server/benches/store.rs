//! History pages from a 1,000,000-message conversation, and cold start on that data.
//!
//! `cargo bench -p papo-server --bench store` builds the conversation once (about a minute),
//! then measures with criterion, prints p50/p99 of 10,000 random pages, and times
//! `papo-server` from start to listening on that data directory. PAPO_BENCH_MESSAGES
//! changes the size.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_main, Criterion};
use papo_protocol::Username;
use papo_server::store::{Appends, Store};

#[path = "../tests/support/process.rs"]
mod process;

const PAGE: usize = 50;

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
        latency.record(started.elapsed().as_nanos() as u64 / 1000).unwrap();
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

/// Time from spawning `papo-server` (bcrypt cost 12) to its "listening" line.
fn cold_start(dir: &std::path::Path, count: u64) {
    let started = Instant::now();
    let mut server = process::spawn_with_cost(dir, "info", 12);
    let took = started.elapsed();
    eprintln!(
        "papo-server cold start on {count} messages (bcrypt cost 12): {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
    server.signal(libc::SIGTERM);
    server.wait_exit();
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
