//! What one hostile machine costs everyone else: an attacker connects from 127.0.0.1, the
//! users it would keep out from 127.0.0.2, and each figure is measured against the same
//! figure without the attacker, in the same run on the same server.
//!
//! - guessing: connections sending wrong-password logins for random names as fast as the
//!   server answers them, reconnecting whenever one is closed or refused; meanwhile a user
//!   logs in over and over (connect, handshake, password), timed end to end;
//! - holding: connections that shake hands, never log in and ping every second, as many as
//!   the server's connection cap, reopened as soon as one is closed; meanwhile a user tries
//!   to log in every 250 ms, and the longest time refusals kept it out is reported;
//! - flooding: one session pipelining messages as fast as it can, then one moving its read
//!   marker forward through a long conversation request after request; meanwhile a few
//!   users send one message at a time, each timed until it is acknowledged (durable).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use hdrhistogram::Histogram;
use papo_protocol::{Client, ClientError, ErrorCode, Reply, Request};

use crate::report::{histogram, latency_line};
use crate::target::Target;
use crate::users::PASSWORD;

/// The attacker's address.
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// Everyone else's.
const USER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct AttackConfig {
    /// Guessing connections.
    pub guessers: usize,
    /// Timed logins of the user, with and without the guessers.
    pub logins: usize,
    /// How long the held connections are kept up; longer than the server's deadline to log
    /// in (30 s), to see it cut them off.
    pub hold: Duration,
    /// Users sending one message at a time while the flood runs.
    pub senders: usize,
    /// How long each flooding phase runs.
    pub flood: Duration,
    /// Messages in the conversation the read marker moves through.
    pub conversation: u64,
}

/// Guessing: the user's login time without and with the guessers.
pub fn guessing(target: &Target, config: &AttackConfig) -> Result<()> {
    let mut owner = target.connect_from(USER)?;
    owner.register("owner", PASSWORD).context("cannot register the user")?;
    drop(owner);
    let quiet = timed_logins(target, config.logins)?;
    println!("{}", latency_line("login (connect, handshake, password) alone", &quiet));

    let stop = AtomicBool::new(false);
    let counts = GuessCounts::default();
    let attacked = thread::scope(|scope| {
        for guesser in 0..config.guessers {
            let (stop, counts) = (&stop, &counts);
            scope.spawn(move || guess_until(target, guesser, stop, counts));
        }
        // Let the guessers fill the server's queues before timing anything.
        thread::sleep(Duration::from_secs(1));
        let attacked = timed_logins(target, config.logins);
        stop.store(true, Ordering::Relaxed);
        attacked
    })?;
    println!("{}", latency_line(&format!("login with {} connections guessing", config.guessers), &attacked));
    println!(
        "guesses: {} checked (wrong password), {} refused by the limits, {} connections refused or closed",
        counts.checked.load(Ordering::Relaxed),
        counts.limited.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed),
    );
    println!(
        "median login: {:.3} s alone, {:.3} s attacked",
        seconds(quiet.value_at_quantile(0.5)),
        seconds(attacked.value_at_quantile(0.5))
    );
    Ok(())
}

#[derive(Debug, Default)]
struct GuessCounts {
    checked: AtomicU64,
    limited: AtomicU64,
    refused: AtomicU64,
}

/// One guessing connection, reopened whenever it ends, until `stop`.
fn guess_until(target: &Target, guesser: usize, stop: &AtomicBool, counts: &GuessCounts) {
    let mut attempt = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut client) = target.connect_from(ATTACKER) else {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            // Refused at once: retrying in a tight loop would only measure the loop.
            thread::sleep(Duration::from_millis(5));
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            attempt += 1;
            match client.login(&format!("guess{guesser}x{attempt}"), "not the password") {
                Err(ClientError::Rejected(e)) if e.code == ErrorCode::InvalidCredentials => {
                    counts.checked.fetch_add(1, Ordering::Relaxed);
                }
                Err(ClientError::Rejected(e)) if e.code == ErrorCode::RateLimited => {
                    counts.limited.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    counts.refused.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

/// `count` logins of the user, one after another, each from connecting to logged in.
fn timed_logins(target: &Target, count: usize) -> Result<Histogram<u64>> {
    let mut times = histogram();
    for _ in 0..count {
        let started = Instant::now();
        target.connect_from(USER)?.login("owner", PASSWORD).context("the user's login failed")?;
        times.record(micros(started.elapsed()))?;
        thread::sleep(Duration::from_millis(100));
    }
    Ok(times)
}

/// Holding: how long connections that never log in keep the user out.
pub fn holding(target: &Target, config: &AttackConfig, max_connections: usize) -> Result<()> {
    let mut owner = target.connect_from(USER)?;
    owner.register("holder-victim", PASSWORD).context("cannot register the user")?;
    drop(owner);
    let stop = AtomicBool::new(false);
    let held_most = AtomicU64::new(0);
    let outcome = thread::scope(|scope| {
        scope.spawn(|| hold_until(target, max_connections, &stop, &held_most));
        // Let the attacker take what it can before the user arrives.
        thread::sleep(Duration::from_secs(2));
        let outcome = login_attempts(target, "holder-victim", config.hold);
        stop.store(true, Ordering::Relaxed);
        outcome
    })?;
    println!(
        "held: the attacker held up to {} of {max_connections} connections for {:.0} s",
        held_most.load(Ordering::Relaxed),
        config.hold.as_secs_f64()
    );
    println!(
        "the user: {} logins, {} refused; first in after {:.2} s, longest kept out {:.2} s",
        outcome.logins,
        outcome.refusals,
        outcome.first_in.map_or(f64::INFINITY, |t| t.as_secs_f64()),
        outcome.longest_out.as_secs_f64()
    );
    Ok(())
}

/// The attacker: up to `max_connections` handshaken connections that only ping, topped up
/// whenever the server closes some.
fn hold_until(target: &Target, max_connections: usize, stop: &AtomicBool, held_most: &AtomicU64) {
    let mut held: Vec<Client> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let round = Instant::now();
        while held.len() < max_connections && round.elapsed() < Duration::from_millis(500) {
            match target.connect_from(ATTACKER) {
                Ok(client) => held.push(client),
                Err(_) => break,
            }
        }
        held.retain_mut(|client| client.request(Request::Ping).is_ok());
        held_most.fetch_max(held.len() as u64, Ordering::Relaxed);
        thread::sleep(Duration::from_secs(1).saturating_sub(round.elapsed()));
    }
}

/// What the user saw while the connections were held.
struct Attempts {
    logins: u64,
    refusals: u64,
    first_in: Option<Duration>,
    longest_out: Duration,
}

/// The user tries to log in every 250 ms for `span`.
fn login_attempts(target: &Target, name: &str, span: Duration) -> Result<Attempts> {
    let started = Instant::now();
    let mut outcome = Attempts { logins: 0, refusals: 0, first_in: None, longest_out: Duration::ZERO };
    let mut out_since = Some(started);
    while started.elapsed() < span {
        let attempt = Instant::now();
        let logged_in = target.connect_from(USER).and_then(|mut client| {
            client.login(name, PASSWORD).context("login")?;
            Ok(client)
        });
        match logged_in {
            Ok(_) => {
                outcome.logins += 1;
                outcome.first_in.get_or_insert(attempt - started);
                if let Some(since) = out_since.take() {
                    outcome.longest_out = outcome.longest_out.max(attempt - since);
                }
            }
            Err(_) => {
                outcome.refusals += 1;
                out_since.get_or_insert(attempt);
            }
        }
        thread::sleep(Duration::from_millis(250).saturating_sub(attempt.elapsed()));
    }
    if let Some(since) = out_since {
        outcome.longest_out = outcome.longest_out.max(since.elapsed());
    }
    Ok(outcome)
}

/// Flooding: other users' send latency alone, under a message flood and (with
/// `mark_read`) under a read marker moving through a long conversation. The conversation
/// is filled as fast as the server takes it, which its limit on messages would refuse.
pub fn flooding(target: &Target, config: &AttackConfig, mark_read: bool) -> Result<()> {
    let senders: Vec<Client> = (0..config.senders)
        .map(|n| registered(target, USER, &format!("sender{n}")))
        .collect::<Result<_>>()?;
    registered(target, USER, "sink")?;
    let mut senders = senders;
    let quiet = timed_sends(&mut senders, config.flood)?;
    println!("{}", latency_line("others' sends alone", &quiet));

    let mut flooder = registered(target, ATTACKER, "flooder")?;
    let stop = AtomicBool::new(false);
    let (flooded, flood) = thread::scope(|scope| {
        let flood = scope.spawn(|| flood_until(&mut flooder, &stop));
        let flooded = timed_sends(&mut senders, config.flood);
        stop.store(true, Ordering::Relaxed);
        (flooded, flood.join().expect("the flooder panicked"))
    });
    let (flooded, flood) = (flooded?, flood?);
    println!("{}", latency_line("others' sends while one session floods", &flooded));
    println!("flood: {} stored, {} refused as too fast", flood.stored, flood.refused);
    println!(
        "others' send p50: {:.3} ms alone, {:.3} ms flooded",
        millis(quiet.value_at_quantile(0.5)),
        millis(flooded.value_at_quantile(0.5))
    );
    if !mark_read {
        return Ok(());
    }

    let (mut reader, ids) = filled_conversation(target, config.conversation)?;
    stop.store(false, Ordering::Relaxed);
    let (marked, moves) = thread::scope(|scope| {
        let moves = scope.spawn(|| mark_read_until(&mut reader, ids, &stop));
        let marked = timed_sends(&mut senders, config.flood);
        stop.store(true, Ordering::Relaxed);
        (marked, moves.join().expect("the reader panicked"))
    });
    let (marked, moves) = (marked?, moves?);
    println!(
        "{}",
        latency_line(
            &format!("others' sends while one session marks read through {} messages", config.conversation),
            &marked
        )
    );
    println!("read marker moves: {moves}; others' send p50 {:.3} ms", millis(marked.value_at_quantile(0.5)));
    Ok(())
}

/// A registered, logged-in user connected from `from`.
fn registered(target: &Target, from: IpAddr, name: &str) -> Result<Client> {
    let mut client = target.connect_from(from)?;
    client.register(name, PASSWORD).with_context(|| format!("cannot register {name}"))?;
    client.login(name, PASSWORD).with_context(|| format!("cannot log in {name}"))?;
    Ok(client)
}

/// Each sender sends one message at a time to the sink, ten a second, for `span`; every
/// send is timed from request to acknowledgement.
fn timed_sends(senders: &mut [Client], span: Duration) -> Result<Histogram<u64>> {
    let times = thread::scope(|scope| {
        let workers: Vec<_> = senders
            .iter_mut()
            .map(|sender| {
                scope.spawn(move || -> Result<Histogram<u64>> {
                    let mut times = histogram();
                    let started = Instant::now();
                    while started.elapsed() < span {
                        let sent = Instant::now();
                        sender.send("sink", "a message from someone else", fastrand_id())?;
                        times.record(micros(sent.elapsed()))?;
                        thread::sleep(Duration::from_millis(100).saturating_sub(sent.elapsed()));
                    }
                    Ok(times)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a sender panicked")).collect::<Result<Vec<_>>>()
    })?;
    let mut all = histogram();
    for one in &times {
        all.add(one)?;
    }
    Ok(all)
}

/// A client message id no other send of this bench reuses.
fn fastrand_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct Flood {
    stored: u64,
    refused: u64,
}

/// Sends to the sink 64 at a time, as fast as replies come, until `stop`.
fn flood_until(flooder: &mut Client, stop: &AtomicBool) -> Result<Flood> {
    let mut flood = Flood { stored: 0, refused: 0 };
    let body = "x".repeat(1000);
    while !stop.load(Ordering::Relaxed) {
        let batch: Vec<_> = (0..64)
            .map(|_| {
                let send =
                    Request::Send { to: "sink".into(), body: body.clone(), client_msg_id: fastrand_id() };
                flooder.send_request(send)
            })
            .collect::<Result<_, _>>()?;
        for id in batch {
            match flooder.wait_reply(id) {
                Ok(_) => flood.stored += 1,
                Err(ClientError::Rejected(e)) if e.code == ErrorCode::RateLimited => flood.refused += 1,
                Err(e) => bail!("the flood failed: {e}"),
            }
        }
    }
    Ok(flood)
}

/// A conversation of `messages` messages from `writer` to `reader`: the reader logged in,
/// and the ids of the conversation's oldest and newest messages.
fn filled_conversation(target: &Target, messages: u64) -> Result<(Client, (u64, u64))> {
    let mut writer = registered(target, USER, "writer")?;
    let reader = registered(target, USER, "reader")?;
    let (mut oldest, mut newest) = (u64::MAX, 0);
    let mut left = messages;
    while left > 0 {
        let batch: Vec<_> = (0..left.min(256))
            .map(|_| {
                let send = Request::Send {
                    to: "reader".into(),
                    body: "history".into(),
                    client_msg_id: fastrand_id(),
                };
                writer.send_request(send)
            })
            .collect::<Result<_, _>>()?;
        left -= batch.len() as u64;
        for id in batch {
            match writer.wait_reply(id).context("filling the conversation")? {
                Reply::Sent { id, .. } => {
                    oldest = oldest.min(id);
                    newest = newest.max(id);
                }
                other => bail!("unexpected reply {other:?}"),
            }
        }
    }
    ensure!(newest > 0, "the conversation is empty");
    Ok((reader, (oldest, newest)))
}

/// Moves the reader's marker one message further per request, from the oldest message
/// on, until `stop` or the newest; returns how many moves were made. Each move leaves every
/// newer message unread, which once cost a scan of all of them.
fn mark_read_until(reader: &mut Client, (oldest, newest): (u64, u64), stop: &AtomicBool) -> Result<u64> {
    let mut moves = 0;
    for up_to in oldest..=newest {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        reader.request(Request::MarkRead { with: "writer".into(), up_to }).context("MarkRead")?;
        moves += 1;
    }
    Ok(moves)
}

fn micros(elapsed: Duration) -> u64 {
    elapsed.as_micros().try_into().unwrap_or(u64::MAX).max(1)
}

fn seconds(micros: u64) -> f64 {
    micros as f64 / 1e6
}

fn millis(micros: u64) -> f64 {
    micros as f64 / 1e3
}
