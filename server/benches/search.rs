//! Searching a user with 100,000 stored messages (issue 17's target: an answer within
//! 300 ms at the median).
//!
//! `cargo bench -p papo-server --bench search` stores the messages once, spread over ten
//! conversations, then measures with criterion one request (which reads at most
//! `SEARCH_BUDGET` messages) and a whole search (every request until `next_before` is
//! `None`), for a text no message holds, so nothing ends a search early, and prints the
//! p50 and p99 of 50 runs of each. PAPO_BENCH_MESSAGES changes the size.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_main, Criterion};
use papo_protocol::Username;
use papo_server::store::{Appends, SearchIn, SearchPage, Store};

const PEERS: u64 = 10;
const PAGE: usize = 50;

fn messages() -> u64 {
    std::env::var("PAPO_BENCH_MESSAGES").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000)
}

/// `ana` with `count` messages over [`PEERS`] conversations, pipelined through the committer.
fn fill(dir: &std::path::Path, count: u64) -> (Store, Username) {
    let ana = Username::parse("ana").unwrap();
    let peers: Vec<Username> = (0..PEERS).map(|i| Username::parse(&format!("peer{i}")).unwrap()).collect();
    let store = Store::open(dir).unwrap();
    let appends = Appends::new();
    let mut queued = 0;
    for i in 0..count {
        let peer = &peers[usize::try_from(i % PEERS).unwrap()];
        let (from, to) = if i % 3 == 0 { (peer, &ana) } else { (&ana, peer) };
        let body = format!("message number {i}: see you at the lab after lunch, bring the cables");
        store.append(from, to, &body, i, 0, &appends).unwrap();
        queued += 1;
        if queued == 8192 || i + 1 == count {
            (0..queued).for_each(|_| drop(appends.next().unwrap()));
            queued = 0;
        }
    }
    (store, ana)
}

/// Every request of one search, as a client pages through it.
fn whole(store: &Store, ana: &Username, query: &str) -> usize {
    let mut before = None;
    let mut hits = 0;
    loop {
        let SearchPage { hits: page, next_before, .. } =
            store.search(ana, query, SearchIn::Everything, before, PAGE).unwrap();
        hits += page.len();
        match next_before {
            Some(next) => before = Some(next),
            None => return hits,
        }
    }
}

fn search(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let count = messages();
    let (store, ana) = fill(dir.path(), count);
    let query = "nobody wrote this";
    c.bench_function(&format!("one search request over {count} messages"), |b| {
        b.iter(|| black_box(store.search(&ana, query, SearchIn::Everything, None, PAGE).unwrap()))
    });
    c.bench_function(&format!("a whole search over {count} messages"), |b| {
        b.iter(|| black_box(whole(&store, &ana, query)))
    });
    percentiles("one request", count, || {
        store.search(&ana, query, SearchIn::Everything, None, PAGE).unwrap()
    });
    percentiles("whole search", count, || whole(&store, &ana, query));
}

/// Prints the p50 and p99 of 50 runs of `run`: criterion reports a mean, the target is a median.
fn percentiles<T>(what: &str, count: u64, run: impl Fn() -> T) {
    let mut latency = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 100_000_000, 3).unwrap();
    for _ in 0..50 {
        let started = Instant::now();
        black_box(run());
        latency.record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)).unwrap();
    }
    eprintln!(
        "search, {what}, {count} messages: p50 {:.1} ms, p99 {:.1} ms over 50 runs",
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0
    );
}

// criterion's macros generate undocumented items.
#[allow(missing_docs)]
mod harness {
    criterion::criterion_group! {
        name = benches;
        config = criterion::Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(10));
        targets = super::search
    }
}
criterion_main!(harness::benches);
