//! Sending pairs: each pair is one sender and one receiver; senders pipeline up to a window
//! of unacknowledged messages, optionally paced to a total rate, and receivers time each
//! message from send to delivery.
//!
//! The workload knows nothing of the wire: a pair is three ends ([`Outbox`], [`AckSource`],
//! [`Inbox`]) that `papo_pairs` implements over Papo's protocol and `irc` over IRC, so
//! both servers get exactly the same senders, windows, pacing and clocks.

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;

use crate::papo_pairs;
use crate::report;
use crate::target::Target;

/// Digits of the send time (nanoseconds since the run's start) that open every body.
const TIME_DIGITS: usize = 20;

/// Digits of the sequence number that follow the send time.
const SEQ_DIGITS: usize = 10;

/// The shortest body: the send time and the sequence number.
pub const MIN_BODY: usize = TIME_DIGITS + SEQ_DIGITS;

/// What to run.
#[derive(Debug, Clone)]
pub struct PairsConfig {
    /// Concurrent sender/receiver pairs.
    pub pairs: usize,
    /// Messages each sender sends.
    pub messages_per_pair: u64,
    /// Total send rate over all pairs; `None` for as fast as acknowledgements allow.
    pub rate: Option<f64>,
    /// Unacknowledged sends a sender keeps in flight.
    pub window: u64,
    /// Body size in bytes (at least [`MIN_BODY`]: the send time and sequence number are
    /// carried in the body).
    pub body_len: usize,
    /// Hard stop.
    pub time_limit: Duration,
}

impl PairsConfig {
    /// `pairs` pairs sending `rate` messages a second in all for `duration`, a window of 256
    /// each, so the pacing, not the acknowledgements, sets the rate.
    pub fn paced(rate: f64, pairs: usize, duration: Duration, body_len: usize, time_limit: Duration) -> Self {
        let messages_per_pair = (rate * duration.as_secs_f64() / pairs.max(1) as f64) as u64;
        Self { pairs, messages_per_pair, rate: Some(rate), window: 256, body_len, time_limit }
    }

    /// Messages all senders send together.
    pub fn expected(&self) -> u64 {
        self.pairs as u64 * self.messages_per_pair
    }
}

/// What happened.
#[derive(Debug)]
pub struct PairsResult {
    /// Sends acknowledged.
    pub acked: u64,
    /// Messages delivered to receivers.
    pub delivered: u64,
    /// Sends refused or lost connections.
    pub errors: u64,
    /// From the first send to the last acknowledgement.
    pub ack_span: Duration,
    /// From the first send to the last delivery.
    pub deliver_span: Duration,
    /// Send-to-deliver latency in microseconds.
    pub latency: Histogram<u64>,
}

impl PairsResult {
    /// Acknowledged messages per second.
    pub fn acked_per_sec(&self) -> f64 {
        self.acked as f64 / self.ack_span.as_secs_f64().max(1e-9)
    }

    /// Delivered messages per second.
    pub fn delivered_per_sec(&self) -> f64 {
        self.delivered as f64 / self.deliver_span.as_secs_f64().max(1e-9)
    }

    /// Prints what happened, a figure a line.
    pub fn print(&self) {
        println!("acknowledged (durable): {} = {:.0} msg/s", self.acked, self.acked_per_sec());
        println!("delivered: {} = {:.0} msg/s", self.delivered, self.delivered_per_sec());
        println!("{}", report::latency_line("send→deliver", &self.latency));
        println!("errors: {}", self.errors);
    }

    /// Fails unless every message of `config` was acknowledged and delivered without error.
    pub fn ensure_complete(&self, config: &PairsConfig) -> Result<()> {
        let expected = config.expected();
        anyhow::ensure!(self.errors == 0, "{} sends failed", self.errors);
        anyhow::ensure!(
            self.acked == expected && self.delivered == expected,
            "only {} of {expected} messages acknowledged and {} delivered within the time limit",
            self.acked,
            self.delivered
        );
        Ok(())
    }
}

/// One read attempt on a connection with a read timeout.
pub enum Read<T> {
    /// What the reader waits for.
    Item(T),
    /// Something else arrived (a presence event, a server notice): read again.
    Other,
    /// Nothing arrived in time: check the deadline and try again.
    TimedOut,
    /// The connection ended or broke.
    Closed,
}

/// The sending side of a sender's connection.
pub trait Outbox: Send + 'static {
    /// Queues message number `seq` (from 0) with `body`, to the pair's receiver.
    fn queue(&mut self, seq: u64, body: &str) -> io::Result<()>;
    /// Sends everything queued.
    fn flush(&mut self) -> io::Result<()>;
}

/// Sends whose fate the server reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Sends newly acknowledged or refused, in order: the window moves by this many.
    pub count: u64,
    /// Of all settled sends, how many the server refused.
    pub failed: u64,
}

/// The reading side of a sender's connection, where acknowledgements arrive.
pub trait AckSource: Send + 'static {
    /// Waits (at most the connection's read timeout) for the next acknowledgements.
    fn next_settled(&mut self) -> Read<Settled>;
}

/// A message that reached a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Identifies the message within its pair, so one delivered twice is counted once.
    pub id: u64,
    /// Its body's send time, nanoseconds since the run's start.
    pub sent_at: Option<u64>,
}

/// A receiver's connection.
pub trait Inbox: Send + 'static {
    /// Waits (at most the connection's read timeout) for the next delivered message.
    fn next_delivery(&mut self) -> Read<Delivery>;
}

/// The three ends of one pair, connected and logged in.
pub struct PairEnds<O, A, I> {
    /// Where the sender writes.
    pub outbox: O,
    /// Where the sender's acknowledgements arrive.
    pub acks: A,
    /// Where the receiver reads.
    pub inbox: I,
}

/// Runs the pairs against a Papo `target`; users are created with `prefix`.
pub fn run(target: &Target, config: &PairsConfig, prefix: &str) -> Result<PairsResult> {
    let ends = papo_pairs::connect(target, config.pairs, prefix)?;
    Ok(drive(ends, config))
}

/// Runs `config`'s workload over connected pairs, whatever their wire.
pub fn drive<O: Outbox, A: AckSource, I: Inbox>(
    ends: Vec<PairEnds<O, A, I>>,
    config: &PairsConfig,
) -> PairsResult {
    let start = Instant::now();
    let deadline = start + config.time_limit;
    let last_ack = Arc::new(AtomicU64::new(0));
    let last_delivery = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    let mut ack_readers = Vec::new();
    let mut receivers = Vec::new();
    for PairEnds { outbox, mut acks, mut inbox } in ends {
        let window = Arc::new(Window::default());
        let total = config.messages_per_pair;
        {
            let (window, last_ack, errors) = (window.clone(), last_ack.clone(), errors.clone());
            ack_readers.push(thread::spawn(move || {
                read_acks(&mut acks, &window, total, start, deadline, &last_ack, &errors)
            }));
        }
        let config = config.clone();
        // Stagger the paced senders evenly, so a fixed total rate arrives as a steady stream
        // rather than in bursts of one message per pair.
        let offset =
            config.rate.map_or(Duration::ZERO, |rate| Duration::from_secs_f64(senders.len() as f64 / rate));
        let clock = Clock { start, first_send: start + offset, deadline };
        senders.push(thread::spawn(move || send_loop(outbox, &config, &window, &clock)));
        let last_delivery = last_delivery.clone();
        receivers
            .push(thread::spawn(move || receive_loop(&mut inbox, total, start, deadline, &last_delivery)));
    }
    senders.into_iter().for_each(|t| t.join().expect("sender thread"));
    let acked: u64 = ack_readers.into_iter().map(|t| t.join().expect("ack thread")).sum();
    let mut latency = report::histogram();
    let mut delivered = 0;
    for receiver in receivers {
        let (count, histogram) = receiver.join().expect("receiver thread");
        delivered += count;
        latency.add(histogram).expect("same bounds");
    }
    PairsResult {
        acked,
        delivered,
        errors: errors.load(Ordering::Relaxed),
        ack_span: Duration::from_nanos(last_ack.load(Ordering::Relaxed)),
        deliver_span: Duration::from_nanos(last_delivery.load(Ordering::Relaxed)),
        latency,
    }
}

/// The body of message `seq` sent at `sent_at`: both as fixed-width digits, then padding.
pub fn body(sent_at: u64, seq: u64, padding: &str) -> String {
    format!("{sent_at:0TIME_DIGITS$}{seq:0SEQ_DIGITS$}{padding}")
}

/// The padding that brings a body to `body_len` bytes.
pub fn padding(body_len: usize) -> String {
    "x".repeat(body_len.saturating_sub(MIN_BODY))
}

/// The send time and sequence number at the start of a body, if it has them.
pub fn parse_body(body: &str) -> Option<(u64, u64)> {
    let sent_at = body.get(..TIME_DIGITS)?.parse().ok()?;
    let seq = body.get(TIME_DIGITS..MIN_BODY)?.parse().ok()?;
    Some((sent_at, seq))
}

/// How far a sender's acknowledgements got, which its send loop waits on.
#[derive(Default)]
pub struct Window {
    acked: Mutex<u64>,
    moved: Condvar,
}

/// Times of one sender: the shared zero of all timestamps, its own first send, the stop.
#[derive(Clone, Copy)]
pub struct Clock {
    /// The zero of every timestamp in bodies.
    pub start: Instant,
    /// When this sender sends first.
    pub first_send: Instant,
    /// The stop.
    pub deadline: Instant,
}

/// Sends `config.messages_per_pair` messages through `outbox`, paced to the rate per pair,
/// keeping at most `config.window` unacknowledged.
pub fn send_loop(mut outbox: impl Outbox, config: &PairsConfig, window: &Window, clock: &Clock) {
    let Clock { start, first_send, deadline } = *clock;
    let per_pair_rate = config.rate.map(|rate| rate / config.pairs as f64);
    let padding = padding(config.body_len);
    let mut sent = 0u64;
    while sent < config.messages_per_pair && Instant::now() < deadline {
        let room = {
            let mut acked = window.acked.lock().expect("window lock");
            while sent - *acked >= config.window && Instant::now() < deadline {
                acked = window.moved.wait_timeout(acked, Duration::from_millis(100)).expect("window lock").0;
            }
            config.window - (sent - *acked).min(config.window)
        };
        let batch = match per_pair_rate {
            Some(rate) => {
                let due = first_send + Duration::from_secs_f64(sent as f64 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
                1
            }
            None => room.min(config.messages_per_pair - sent),
        };
        for _ in 0..batch {
            let sent_at = start.elapsed().as_nanos() as u64;
            if outbox.queue(sent, &body(sent_at, sent, &padding)).is_err() {
                return;
            }
            sent += 1;
        }
        if outbox.flush().is_err() {
            return;
        }
    }
}

/// Moves `window` as acknowledgements for `total` sends arrive; returns how many succeeded,
/// adds the refused ones to `errors` and the time of the last to `last_ack`.
pub fn read_acks(
    acks: &mut impl AckSource,
    window: &Window,
    total: u64,
    start: Instant,
    deadline: Instant,
    last_ack: &AtomicU64,
    errors: &AtomicU64,
) -> u64 {
    let (mut settled, mut failed) = (0, 0);
    while settled < total && Instant::now() < deadline {
        let news = match acks.next_settled() {
            Read::Item(news) => news,
            Read::Other | Read::TimedOut => continue,
            Read::Closed => break,
        };
        settled += news.count;
        failed += news.failed;
        *window.acked.lock().expect("window lock") = settled;
        window.moved.notify_one();
    }
    errors.fetch_add(failed, Ordering::Relaxed);
    last_ack.fetch_max(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    settled.saturating_sub(failed)
}

fn receive_loop(
    inbox: &mut impl Inbox,
    total: u64,
    start: Instant,
    deadline: Instant,
    last_delivery: &AtomicU64,
) -> (u64, Histogram<u64>) {
    let mut latency = report::histogram();
    // A message committed while this receiver's login still streamed its backlog may arrive
    // twice (the protocol lets clients de-duplicate by id): count and time it once.
    let mut received = HashSet::new();
    while (received.len() as u64) < total && Instant::now() < deadline {
        let delivery = match inbox.next_delivery() {
            Read::Item(delivery) => delivery,
            Read::Other | Read::TimedOut => continue,
            Read::Closed => break,
        };
        if !received.insert(delivery.id) {
            continue;
        }
        let now = start.elapsed().as_nanos() as u64;
        if let Some(sent_at) = delivery.sent_at {
            let _ = latency.record(now.saturating_sub(sent_at) / 1000);
        }
    }
    last_delivery.fetch_max(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    (received.len() as u64, latency)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    #[test]
    fn a_body_carries_its_send_time_and_number_in_its_length() {
        let text = body(1_234_567, 42, &padding(64));
        assert_eq!(text.len(), 64);
        assert_eq!(parse_body(&text), Some((1_234_567, 42)));
        assert_eq!(body(7, 3, &padding(10)).len(), MIN_BODY, "never shorter than its stamps");
        assert_eq!(parse_body("12345"), None);
        assert_eq!(parse_body(&"y".repeat(40)), None);
    }

    /// An in-memory wire: what the outbox sends arrives at once as acknowledgement and
    /// delivery; the number it refuses is acknowledged as refused (and still delivered, so
    /// the receivers finish without waiting for the time limit).
    #[derive(Clone, Default)]
    struct Loopback {
        acks: Arc<Mutex<VecDeque<Settled>>>,
        deliveries: Arc<Mutex<VecDeque<Delivery>>>,
        refuse: Option<u64>,
    }

    impl Outbox for Loopback {
        fn queue(&mut self, seq: u64, body: &str) -> io::Result<()> {
            let refused = self.refuse == Some(seq);
            self.acks.lock().unwrap().push_back(Settled { count: 1, failed: u64::from(refused) });
            let sent_at = parse_body(body).map(|(sent_at, _)| sent_at);
            self.deliveries.lock().unwrap().push_back(Delivery { id: seq, sent_at });
            Ok(())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl AckSource for Loopback {
        fn next_settled(&mut self) -> Read<Settled> {
            match self.acks.lock().unwrap().pop_front() {
                Some(settled) => Read::Item(settled),
                None => {
                    thread::sleep(Duration::from_millis(1));
                    Read::TimedOut
                }
            }
        }
    }

    impl Inbox for Loopback {
        fn next_delivery(&mut self) -> Read<Delivery> {
            match self.deliveries.lock().unwrap().pop_front() {
                Some(delivery) => Read::Item(delivery),
                None => {
                    thread::sleep(Duration::from_millis(1));
                    Read::TimedOut
                }
            }
        }
    }

    fn config(messages_per_pair: u64, time_limit: Duration) -> PairsConfig {
        PairsConfig { pairs: 2, messages_per_pair, rate: None, window: 4, body_len: 64, time_limit }
    }

    fn ends(refuse: Option<u64>) -> Vec<PairEnds<Loopback, Loopback, Loopback>> {
        (0..2)
            .map(|_| {
                let wire = Loopback { refuse, ..Loopback::default() };
                PairEnds { outbox: wire.clone(), acks: wire.clone(), inbox: wire }
            })
            .collect()
    }

    #[test]
    fn every_message_is_acknowledged_delivered_and_timed_once() {
        let config = config(50, Duration::from_secs(30));
        let result = drive(ends(None), &config);
        assert_eq!((result.acked, result.delivered, result.errors), (100, 100, 0));
        assert_eq!(result.latency.len(), 100);
        result.ensure_complete(&config).unwrap();
    }

    #[test]
    fn a_refused_send_is_an_error_and_the_run_is_incomplete() {
        let config = config(10, Duration::from_secs(30));
        let result = drive(ends(Some(3)), &config);
        assert_eq!((result.acked, result.errors), (18, 2));
        assert!(result.ensure_complete(&config).is_err());
    }

    #[test]
    fn a_wire_that_never_answers_stops_at_the_time_limit() {
        struct Silent;
        impl AckSource for Silent {
            fn next_settled(&mut self) -> Read<Settled> {
                thread::sleep(Duration::from_millis(5));
                Read::TimedOut
            }
        }
        impl Inbox for Silent {
            fn next_delivery(&mut self) -> Read<Delivery> {
                thread::sleep(Duration::from_millis(5));
                Read::TimedOut
            }
        }
        let config = config(1000, Duration::from_millis(300));
        let ends = vec![PairEnds { outbox: Loopback::default(), acks: Silent, inbox: Silent }];
        let started = Instant::now();
        let result = drive(ends, &config);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!((result.acked, result.delivered), (0, 0));
    }
}
