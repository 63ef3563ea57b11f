//! Many idle logged-in clients, and the latency of one active pair among them.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use papo_protocol::Request;

use crate::pairs::{self, PairsConfig, PairsResult};
use crate::target::Target;
use crate::users;

/// What the connections run measured.
#[derive(Debug)]
pub struct ConnectionsResult {
    /// Idle clients logged in.
    pub idle: usize,
    /// Time to connect and log them all in.
    pub setup: Duration,
    /// Server memory before the clients connected.
    pub rss_before: Option<u64>,
    /// Server memory with all of them connected.
    pub rss_with_clients: Option<u64>,
    /// The active pair's run.
    pub active: PairsResult,
}

/// Logs in `count` idle clients, then runs one pair at `rate` messages/s for `seconds`.
pub fn run(target: &Target, count: usize, rate: f64, seconds: u64) -> Result<ConnectionsResult> {
    let rss_before = target.rss_bytes();
    let started = Instant::now();
    let mut idle = users::logged_in(target, "idle", count, 8).context("cannot log in the idle clients")?;
    let setup = started.elapsed();
    // A keepalive from each, answered before the measured phase starts: 10,000 Pings
    // handled during it would measure the burst, not the steady state with idle clients.
    let mut pings = Vec::with_capacity(idle.len());
    for (client, _) in &mut idle {
        pings.push(client.send_request(Request::Ping).context("keepalive")?);
    }
    for ((client, _), id) in idle.iter_mut().zip(pings) {
        client.wait_reply(id).context("keepalive reply")?;
    }
    let rss_with_clients = target.rss_bytes();
    let config = PairsConfig {
        pairs: 1,
        messages_per_pair: (rate * seconds as f64) as u64,
        rate: Some(rate),
        window: 64,
        body_len: 64,
        time_limit: Duration::from_secs(seconds * 3 + 10),
    };
    let active = pairs::run(target, &config, "active")?;
    Ok(ConnectionsResult { idle: idle.len(), setup, rss_before, rss_with_clients, active })
}
