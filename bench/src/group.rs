//! One sender into a group whose members are all online (or into each of several such
//! groups at once): how many texts a second the server acknowledges, and how long each takes
//! from the send to its last member.
//!
//! The sender is the pairs workload's (the same pacing, window and body stamps), addressed
//! to the group; every other member reads on its own connection and notes when each text
//! arrived, so a text's latency to its last member is the latest of those.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use papo_protocol::{
    Client, ClientFrame, Event, FrameReader, FrameWriter, GroupMessageKind, LoggedIn, ReadHalf, Request,
    ServerFrame, WriteHalf, MAX_GROUP_MEMBERS,
};

use crate::pairs::{self, Clock, Delivery, Inbox, PairsConfig, Read, Window};
use crate::papo_pairs::{self, PapoAcks, PapoOutbox, READ_TIMEOUT};
use crate::report;
use crate::target::Target;
use crate::users;

/// How often a reading member pings.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// What to run.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Groups, each with its own members and sender, sending at once.
    pub groups: usize,
    /// Members of each group, the sender included.
    pub members: usize,
    /// Texts each sender sends.
    pub messages: u64,
    /// Texts per second of each sender.
    pub rate: f64,
    /// Unacknowledged sends the sender keeps in flight.
    pub window: u64,
    /// Body bytes (at least [`pairs::MIN_BODY`]).
    pub body_len: usize,
    /// Hard stop of the measured phase.
    pub time_limit: Duration,
}

/// What happened.
#[derive(Debug)]
pub struct GroupResult {
    /// Sends acknowledged.
    pub acked: u64,
    /// Sends refused.
    pub errors: u64,
    /// From the first send to the last acknowledgement.
    pub ack_span: Duration,
    /// Texts that reached every member.
    pub complete: u64,
    /// Texts received, over all members.
    pub deliveries: u64,
    /// Send to each member's copy, in microseconds.
    pub to_each: Histogram<u64>,
    /// Send to the last member's copy, per text that reached every member, in microseconds.
    pub to_last: Histogram<u64>,
}

impl GroupResult {
    /// Acknowledged texts per second.
    pub fn acked_per_sec(&self) -> f64 {
        self.acked as f64 / self.ack_span.as_secs_f64().max(1e-9)
    }

    /// Prints what happened, a figure a line.
    pub fn print(&self) {
        println!("acknowledged (durable): {} = {:.0} texts/s", self.acked, self.acked_per_sec());
        println!("delivered: {} copies; {} texts reached every member", self.deliveries, self.complete);
        println!("{}", report::latency_line("send→each member", &self.to_each));
        println!("{}", report::latency_line("send→last member", &self.to_last));
        println!("errors: {}", self.errors);
    }

    /// Fails unless every text was acknowledged and reached every member.
    pub fn ensure_complete(&self, config: &GroupConfig) -> Result<()> {
        let expected = config.groups as u64 * config.messages;
        anyhow::ensure!(self.errors == 0, "{} sends failed", self.errors);
        anyhow::ensure!(
            self.acked == expected && self.complete == expected,
            "only {} of {expected} texts acknowledged and {} delivered to every member within the time limit",
            self.acked,
            self.complete
        );
        Ok(())
    }
}

/// Creates `config.groups × config.members` users named `member{i}` and puts each
/// `config.members` of them in a group `#bench{number}` owned by the first: the workload
/// connected, ready for [`drive`].
pub fn connect(target: &Target, config: &GroupConfig) -> Result<Vec<GroupEnds>> {
    anyhow::ensure!(
        (2..=MAX_GROUP_MEMBERS).contains(&config.members),
        "--members must be between 2 and {MAX_GROUP_MEMBERS}"
    );
    anyhow::ensure!(
        config.groups >= 1 && config.rate > 0.0 && config.window >= 1,
        "--groups and --window must be at least 1 and --rate positive"
    );
    let mut clients = users::logged_in(target, "member", config.groups * config.members, 8)?.into_iter();
    (0..config.groups)
        .map(|number| GroupEnds::create(clients.by_ref().take(config.members).collect(), number))
        .collect()
}

/// Has each group's first member send to their group while the others read, all groups at
/// once, until every text arrived everywhere or the time limit.
pub fn drive(groups: Vec<GroupEnds>, config: &GroupConfig) -> GroupResult {
    let sending = PairsConfig {
        pairs: 1,
        messages_per_pair: config.messages,
        rate: Some(config.rate),
        window: config.window,
        body_len: config.body_len,
        time_limit: config.time_limit,
    };
    let start = Instant::now();
    let deadline = start + config.time_limit;
    let (last_ack, errors) = (AtomicU64::new(0), AtomicU64::new(0));
    let ran: Vec<(u64, Fanout)> = thread::scope(|scope| {
        let running: Vec<_> = groups
            .into_iter()
            .enumerate()
            .map(|(number, GroupEnds { outbox, mut acks, inboxes })| {
                // Stagger the senders evenly, as the pairs workload does, so the groups'
                // texts arrive as a steady stream rather than all at once.
                let offset = Duration::from_secs_f64(number as f64 / (config.rate * config.groups as f64));
                let clock = Clock { start, first_send: start + offset, deadline };
                let readers: Vec<_> = inboxes
                    .into_iter()
                    .map(|mut inbox| scope.spawn(move || arrivals(&mut inbox, config.messages, &clock)))
                    .collect();
                let (sending, last_ack, errors) = (&sending, &last_ack, &errors);
                scope.spawn(move || {
                    let window = Window::default();
                    thread::scope(|inner| {
                        let acked = inner.spawn(|| {
                            pairs::read_acks(
                                &mut acks,
                                &window,
                                config.messages,
                                start,
                                deadline,
                                last_ack,
                                errors,
                            )
                        });
                        pairs::send_loop(outbox, sending, &window, &clock);
                        let acked = acked.join().expect("ack thread");
                        let arrivals: Vec<_> =
                            readers.into_iter().map(|reader| reader.join().expect("reader thread")).collect();
                        (acked, Fanout::of(&arrivals, config.messages))
                    })
                })
            })
            .collect();
        running.into_iter().map(|group| group.join().expect("group thread")).collect()
    });
    let mut total = Fanout::default();
    let mut acked = 0;
    for (group_acked, fanout) in ran {
        acked += group_acked;
        total.add(&fanout);
    }
    GroupResult {
        acked,
        errors: errors.load(Ordering::Relaxed),
        ack_span: Duration::from_nanos(last_ack.load(Ordering::Relaxed)),
        complete: total.complete,
        deliveries: total.deliveries,
        to_each: total.to_each,
        to_last: total.to_last,
    }
}

/// One group's connections: its sender's two ends and every other member's.
pub struct GroupEnds {
    outbox: PapoOutbox,
    acks: PapoAcks,
    inboxes: Vec<GroupInbox>,
}

impl GroupEnds {
    /// Makes the first of `members` create group `#bench{number}` with the others in it.
    fn create(members: Vec<(Client, LoggedIn)>, number: usize) -> Result<Self> {
        let mut members = members.into_iter();
        let (mut sender, _) = members.next().context("no sender")?;
        let readers: Vec<_> = members.collect();
        let names: Vec<&str> = readers.iter().map(|(_, session)| session.name.as_str()).collect();
        let group = format!("#bench{number}");
        sender.create_group(&group, &names, false).with_context(|| format!("cannot create {group}"))?;
        let mut inboxes = Vec::with_capacity(readers.len());
        for (client, _) in readers {
            let (reader, writer) = client.into_parts().0.split();
            reader.get_ref().socket().set_read_timeout(Some(READ_TIMEOUT))?;
            inboxes.push(GroupInbox { reader, writer, pinged: Instant::now(), pings: 0 });
        }
        let (ack_reader, writer) = sender.into_parts().0.split();
        ack_reader.get_ref().socket().set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(Self { outbox: PapoOutbox { writer, to: group }, acks: PapoAcks(ack_reader), inboxes })
    }
}

/// A member's connection, where the group's texts arrive; the group's other lines (its
/// creation) are skipped. A delivery is identified by the text's number in its body.
struct GroupInbox {
    reader: FrameReader<ReadHalf>,
    writer: FrameWriter<WriteHalf>,
    /// When this member last pinged.
    pinged: Instant,
    /// Pings sent, for their request ids.
    pings: u64,
}

impl GroupInbox {
    /// A member only reads, so it pings now and then: the server cuts off a connection that
    /// sends nothing for its idle timeout (90 s), well within a long run.
    fn keep_alive(&mut self) -> io::Result<()> {
        if self.pinged.elapsed() < KEEPALIVE {
            return Ok(());
        }
        self.pings += 1;
        self.pinged = Instant::now();
        let ping = ClientFrame::Request { id: self.pings, request: Request::Ping };
        self.writer.queue_message(&ping).map_err(io::Error::other)?;
        self.writer.flush().map_err(io::Error::other)
    }
}

impl Inbox for GroupInbox {
    fn next_delivery(&mut self) -> Read<Delivery> {
        if self.keep_alive().is_err() {
            return Read::Closed;
        }
        match papo_pairs::next_frame(&mut self.reader) {
            Read::Item(ServerFrame::Event(Event::GroupMessage(line)))
                if line.kind == GroupMessageKind::Text =>
            {
                match pairs::parse_body(&line.body) {
                    Some((sent_at, seq)) => Read::Item(Delivery { id: seq, sent_at: Some(sent_at) }),
                    None => Read::Other,
                }
            }
            Read::Item(_) | Read::Other => Read::Other,
            Read::TimedOut => Read::TimedOut,
            Read::Closed => Read::Closed,
        }
    }
}

/// One member's copy of a text: when it was sent and when it arrived, in nanoseconds since
/// the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Arrival {
    sent_at: u64,
    arrived: u64,
}

/// Reads until all `messages` texts arrived or the deadline: the arrival of each, by number.
fn arrivals(inbox: &mut impl Inbox, messages: u64, clock: &Clock) -> Vec<Option<Arrival>> {
    let mut seen = vec![None; usize::try_from(messages).expect("a bounded count")];
    let mut received = 0;
    while received < seen.len() && Instant::now() < clock.deadline {
        let Delivery { id, sent_at } = match inbox.next_delivery() {
            Read::Item(delivery) => delivery,
            Read::Other | Read::TimedOut => continue,
            Read::Closed => break,
        };
        let arrived = clock.start.elapsed().as_nanos() as u64;
        // A copy that arrives twice (the protocol lets clients de-duplicate) counts once.
        if let Some(slot @ None) = usize::try_from(id).ok().and_then(|i| seen.get_mut(i)) {
            *slot = Some(Arrival { sent_at: sent_at.unwrap_or(arrived), arrived });
            received += 1;
        }
    }
    seen
}

/// Every member's arrivals put together.
struct Fanout {
    complete: u64,
    deliveries: u64,
    to_each: Histogram<u64>,
    to_last: Histogram<u64>,
}

impl Default for Fanout {
    fn default() -> Self {
        Self { complete: 0, deliveries: 0, to_each: report::histogram(), to_last: report::histogram() }
    }
}

impl Fanout {
    /// `per_member[m][seq]` is when member `m` got text `seq`, if it did.
    fn of(per_member: &[Vec<Option<Arrival>>], messages: u64) -> Self {
        let mut spread = Self::default();
        for seq in 0..usize::try_from(messages).expect("a bounded count") {
            let copies: Vec<Arrival> = per_member.iter().filter_map(|member| member[seq]).collect();
            for copy in &copies {
                let _ = spread.to_each.record(copy.arrived.saturating_sub(copy.sent_at) / 1000);
            }
            spread.deliveries += copies.len() as u64;
            if copies.len() == per_member.len() {
                if let Some(last) = copies.iter().map(|copy| copy.arrived.saturating_sub(copy.sent_at)).max()
                {
                    spread.complete += 1;
                    let _ = spread.to_last.record(last / 1000);
                }
            }
        }
        spread
    }

    /// Adds another group's figures to these.
    fn add(&mut self, other: &Self) {
        self.complete += other.complete;
        self.deliveries += other.deliveries;
        self.to_each.add(&other.to_each).expect("same bounds");
        self.to_last.add(&other.to_last).expect("same bounds");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_as_late_as_its_last_member_and_complete_only_if_all_got_it() {
        let at = |sent_at, arrived| Some(Arrival { sent_at, arrived });
        let members = vec![
            vec![at(0, 1_000_000), at(10_000_000, 11_000_000)],
            vec![at(0, 3_000_000), None],
            vec![at(0, 2_000_000), at(10_000_000, 12_000_000)],
        ];
        let spread = Fanout::of(&members, 2);
        assert_eq!((spread.complete, spread.deliveries), (1, 5));
        assert_eq!(spread.to_last.len(), 1);
        assert!((2_990..=3_010).contains(&spread.to_last.max()), "{}", spread.to_last.max());
        assert_eq!(spread.to_each.len(), 5);
        assert!((990..=1_010).contains(&spread.to_each.min()));
    }
}
