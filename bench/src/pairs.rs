//! Sending pairs: each pair is one sender and one receiver; senders pipeline up to a window
//! of unacknowledged messages, optionally paced to a total rate, and receivers time each
//! message from send to delivery.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;

use papo_protocol::{
    ClientFrame, Event, FrameError, FrameReader, FrameWriter, ReadHalf, Reply, Request, ServerFrame,
    WriteHalf,
};

use crate::report;
use crate::target::Target;
use crate::users;

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
    /// Body size in bytes (at least 20: the send time is carried in the body).
    pub body_len: usize,
    /// Hard stop.
    pub time_limit: Duration,
}

/// What happened.
#[derive(Debug)]
pub struct PairsResult {
    /// Sends acknowledged (durable).
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
}

#[derive(Default)]
struct Window {
    acked: Mutex<u64>,
    moved: Condvar,
}

/// Runs the pairs against `target`; users are created with `prefix`.
pub fn run(target: &Target, config: &PairsConfig, prefix: &str) -> Result<PairsResult> {
    let clients = users::logged_in(target, prefix, config.pairs * 2, 8)?;
    let start = Instant::now();
    let deadline = start + config.time_limit;
    let last_ack = Arc::new(AtomicU64::new(0));
    let last_delivery = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    let mut ack_readers = Vec::new();
    let mut receivers = Vec::new();
    let mut clients = clients.into_iter();
    while let (Some((sender, _)), Some((receiver, receiver_session))) = (clients.next(), clients.next()) {
        let (sender_conn, _) = sender.into_parts();
        let (receiver_conn, _) = receiver.into_parts();
        let (mut ack_reader, writer) = sender_conn.split();
        let (mut receiver_reader, _) = receiver_conn.split();
        let window = Arc::new(Window::default());
        let to = receiver_session.name.to_string();
        let total = config.messages_per_pair;
        {
            let (window, last_ack, errors) = (window.clone(), last_ack.clone(), errors.clone());
            ack_readers.push(thread::spawn(move || {
                read_acks(&mut ack_reader, &window, total, start, deadline, &last_ack, &errors)
            }));
        }
        let config = config.clone();
        // Stagger the paced senders evenly, so a fixed total rate arrives as a steady stream
        // rather than in bursts of one message per pair.
        let offset =
            config.rate.map_or(Duration::ZERO, |rate| Duration::from_secs_f64(senders.len() as f64 / rate));
        let clock = Clock { start, first_send: start + offset, deadline };
        senders.push(thread::spawn(move || send_loop(writer, &to, &config, &window, &clock)));
        let last_delivery = last_delivery.clone();
        receivers.push(thread::spawn(move || {
            let _ = receiver_reader.get_ref().socket().set_read_timeout(Some(Duration::from_millis(200)));
            receive_loop(&mut receiver_reader, total, start, deadline, &last_delivery)
        }));
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
    Ok(PairsResult {
        acked,
        delivered,
        errors: errors.load(Ordering::Relaxed),
        ack_span: Duration::from_nanos(last_ack.load(Ordering::Relaxed)),
        deliver_span: Duration::from_nanos(last_delivery.load(Ordering::Relaxed)),
        latency,
    })
}

/// Times of one sender: the shared zero of all timestamps, its own first send, the stop.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    first_send: Instant,
    deadline: Instant,
}

fn send_loop(
    mut writer: FrameWriter<WriteHalf>,
    to: &str,
    config: &PairsConfig,
    window: &Window,
    clock: &Clock,
) {
    let Clock { start, first_send, deadline } = *clock;
    let per_pair_rate = config.rate.map(|rate| rate / config.pairs as f64);
    let padding = "x".repeat(config.body_len.saturating_sub(20));
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
            let body = format!("{sent_at:020}{padding}");
            let request = Request::Send { to: to.to_owned(), body, client_msg_id: sent };
            if writer.queue_message(&ClientFrame::Request { id: sent, request }).is_err() {
                return;
            }
            sent += 1;
        }
        if writer.flush().is_err() {
            return;
        }
    }
}

/// One read attempt on a connection with a read timeout.
enum Read {
    Frame(ServerFrame),
    /// Nothing arrived in time: check the deadline and try again.
    TimedOut,
    /// The connection ended or broke.
    Closed,
}

fn next_frame(reader: &mut FrameReader<ReadHalf>) -> Read {
    match reader.read_message::<ServerFrame>() {
        Ok(Some(frame)) => Read::Frame(frame),
        Err(FrameError::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Read::TimedOut
        }
        Ok(None) | Err(_) => Read::Closed,
    }
}

fn read_acks(
    reader: &mut FrameReader<ReadHalf>,
    window: &Window,
    total: u64,
    start: Instant,
    deadline: Instant,
    last_ack: &AtomicU64,
    errors: &AtomicU64,
) -> u64 {
    let _ = reader.get_ref().socket().set_read_timeout(Some(Duration::from_millis(200)));
    let (mut acked, mut settled) = (0, 0);
    while settled < total && Instant::now() < deadline {
        let frame = match next_frame(reader) {
            Read::Frame(frame) => frame,
            Read::TimedOut => continue,
            Read::Closed => break,
        };
        let ServerFrame::Reply { result, .. } = frame else { continue };
        settled += 1;
        match result {
            Ok(Reply::Sent { .. }) => acked += 1,
            _ => {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        *window.acked.lock().expect("window lock") = settled;
        window.moved.notify_one();
    }
    last_ack.fetch_max(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    acked
}

fn receive_loop(
    reader: &mut FrameReader<ReadHalf>,
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
        let frame = match next_frame(reader) {
            Read::Frame(frame) => frame,
            Read::TimedOut => continue,
            Read::Closed => break,
        };
        if let ServerFrame::Event(Event::Message(message)) = frame {
            if !received.insert(message.id) {
                continue;
            }
            let now = start.elapsed().as_nanos() as u64;
            if let Some(sent_at) = message.body.get(..20).and_then(|t| t.parse::<u64>().ok()) {
                let _ = latency.record(now.saturating_sub(sent_at) / 1000);
            }
        }
    }
    last_delivery.fetch_max(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    (received.len() as u64, latency)
}
