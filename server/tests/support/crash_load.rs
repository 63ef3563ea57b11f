//! The load of the crash tests and their verdict, shared by `crash.rs` (kill -9) and
//! `powercut.rs` (kill -9, then a power cut).
//!
//! Senders, each logged in as its own user, pipeline messages with their own client ids to
//! one inbox (the even ones) or to a group the inbox owns (the odd ones), and remember which
//! id each acknowledgement gave. A cycle loads a real server
//! until enough acknowledgements have come back, waits a little more and kills it; after
//! every restart the senders first resend what was never acknowledged (same client ids).
//! At the end the inbox's conversations and the group's history must hold every
//! acknowledged message exactly once, with the id it was acknowledged with.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use papo_protocol::{Client, GroupMessageKind, Reply, Request, Security};
use papo_server::testing::PASSWORD;

use crate::process::ServerProcess;

/// Warnings, and the line that tells the port.
pub const QUIET: &str = "warn,papo_server::server=info";
/// Low bcrypt cost and a checkpoint every 64 KiB of log (a few hundred messages); the
/// process helper turns the rate limits off, as four senders go far past a person's rate.
pub const SERVER_ARGS: &[&str] = &["--bcrypt-cost", "4", "--wal-segment-kib", "64"];

const SENDERS: usize = 4;
const WINDOW: usize = 8;
const INBOX: &str = "inbox";
const GROUP: &str = "#crash";
const CLIENT_NAME: &str = "crash-test";

/// How one cycle loads the server before killing it.
#[derive(Debug, Clone, Copy)]
pub struct Cycle {
    /// New messages per sender at most: the load is bounded even if the kill is late.
    pub new_messages: u64,
    /// Acknowledgements to wait for before the kill timer starts.
    pub acked_before_kill: u64,
    /// How long to wait for them before killing anyway (the cycle is then short).
    pub deadline: Duration,
    /// How long after them the kill comes.
    pub kill_delay: Duration,
}

/// How a cycle went.
#[derive(Debug, Clone, Copy)]
pub struct CycleEnd {
    /// Whether [`Cycle::acked_before_kill`] acknowledgements came back before the deadline.
    pub reached: bool,
    /// Write-ahead log segments started between the server's start and the kill.
    pub rotations: u64,
}

/// The senders and what they know.
pub struct Load {
    senders: Vec<Sender>,
    acked: AtomicU64,
}

/// What the inbox holds against what was acknowledged.
#[derive(Debug, Default)]
pub struct Tally {
    /// Messages acknowledged, each counted once.
    pub acknowledged: u64,
    /// Acknowledged messages missing from the inbox or stored with another id.
    pub lost: Vec<String>,
    /// Messages stored more than once.
    pub duplicates: u64,
    /// Senders with messages never acknowledged, even by the last round.
    pub unacknowledged: Vec<String>,
    /// Client ids acknowledged with two different ids.
    pub conflicts: Vec<String>,
    /// Accounts that no longer log in with their password.
    pub locked_out: Vec<String>,
}

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

impl Load {
    /// Registers the inbox and the senders on `server`.
    pub fn register(server: &ServerProcess) -> Self {
        let mut client = server.connect(CLIENT_NAME);
        for name in accounts() {
            client.register(&name, PASSWORD).unwrap();
        }
        client.login(INBOX, PASSWORD).unwrap();
        let senders: Vec<String> = accounts().skip(1).collect();
        let senders: Vec<&str> = senders.iter().map(String::as_str).collect();
        client.create_group(GROUP, &senders, false).unwrap();
        Self { senders: (0..SENDERS).map(|_| Sender::default()).collect(), acked: AtomicU64::new(0) }
    }

    /// Loads `server` as `cycle` says, then kills it with SIGKILL and waits for its exit.
    /// `data_dir` is where it keeps its write-ahead log, whose rotations are counted.
    pub fn cycle_then_kill(
        &mut self,
        server: &mut ServerProcess,
        data_dir: &Path,
        cycle: &Cycle,
    ) -> CycleEnd {
        let first_segment = newest_segment(data_dir);
        let (addr, security) = (server.addr.clone(), server.security.clone());
        let Self { senders, acked } = self;
        let acked = &*acked;
        let cycle_start = acked.load(Ordering::Relaxed);
        let running = AtomicUsize::new(senders.len());
        let mut end = CycleEnd { reached: false, rotations: 0 };
        std::thread::scope(|scope| {
            for (index, state) in senders.iter_mut().enumerate() {
                let (addr, security, running) = (&addr, &security, &running);
                scope.spawn(move || {
                    run_sender(addr, security, index, state, cycle.new_messages, acked);
                    running.fetch_sub(1, Ordering::Relaxed);
                });
            }
            let deadline = Instant::now() + cycle.deadline;
            let acked_now = || acked.load(Ordering::Relaxed) - cycle_start;
            // Senders that all gave up (they cannot log in) will not acknowledge anything more.
            while acked_now() < cycle.acked_before_kill
                && Instant::now() < deadline
                && running.load(Ordering::Relaxed) > 0
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            end.reached = acked_now() >= cycle.acked_before_kill;
            std::thread::sleep(cycle.kill_delay);
            end.rotations = newest_segment(data_dir).saturating_sub(first_segment);
            server.signal(libc::SIGKILL);
            server.wait_exit();
        });
        end
    }

    /// A last round with the server left alive: every sender resends what was never
    /// acknowledged, and sends nothing new.
    pub fn settle(&mut self, server: &ServerProcess) {
        let Self { senders, acked } = self;
        let acked = &*acked;
        std::thread::scope(|scope| {
            for (index, state) in senders.iter_mut().enumerate() {
                let (addr, security) = (&server.addr, &server.security);
                scope.spawn(move || run_sender(addr, security, index, state, 0, acked));
            }
        });
    }

    /// Compares the inbox on `server` with what was acknowledged.
    pub fn tally(&self, server: &ServerProcess) -> Tally {
        let mut tally = Tally::default();
        for name in accounts() {
            if let Err(e) = server.connect(CLIENT_NAME).login(&name, PASSWORD) {
                tally.locked_out.push(format!("{name}: {e}"));
            }
        }
        let mut inbox = server.connect(CLIENT_NAME);
        // An inbox that cannot log in holds nothing anyone can read: every message is lost.
        let inbox_open = inbox.login(INBOX, PASSWORD).is_ok();
        for (index, state) in self.senders.iter().enumerate() {
            tally.conflicts.extend(state.conflicts.iter().cloned());
            if !state.unacked.is_empty() {
                tally.unacknowledged.push(format!("s{index}: {:?}", state.unacked));
            }
            let stored = match (inbox_open, to(index)) {
                (false, _) => Vec::new(),
                (true, GROUP) => group_texts(&mut inbox, &format!("s{index}")),
                (true, _) => conversation(&mut inbox, &format!("s{index}")),
            };
            let mut seen: HashMap<&str, u64> = HashMap::new();
            for (id, text) in &stored {
                if seen.insert(text, *id).is_some() {
                    tally.duplicates += 1;
                }
            }
            for (&cmid, &id) in &state.acked {
                tally.acknowledged += 1;
                let stored_as = seen.get(body(index, cmid).as_str());
                if stored_as != Some(&id) {
                    tally.lost.push(format!(
                        "s{index} client id {cmid}: acknowledged as {id}, stored as {stored_as:?}"
                    ));
                }
            }
        }
        tally
    }
}

impl Tally {
    /// One line of totals.
    pub fn summary(&self) -> String {
        format!(
            "{} messages acknowledged, {} lost, {} stored twice, {} senders left with unacknowledged \
             messages, {} of {} accounts cannot log in",
            self.acknowledged,
            self.lost.len(),
            self.duplicates,
            self.unacknowledged.len(),
            self.locked_out.len(),
            SENDERS + 1,
        )
    }

    /// Asserts that every acknowledged message is stored exactly once, with its id.
    pub fn assert_exactly_once(&self) {
        assert!(self.conflicts.is_empty(), "{:?}", self.conflicts);
        assert!(self.unacknowledged.is_empty(), "unacknowledged messages: {:?}", self.unacknowledged);
        let examples = &self.lost[..self.lost.len().min(20)];
        assert_eq!(
            (self.lost.len(), self.duplicates),
            (0, 0),
            "lost (first {} of {}): {examples:#?}",
            examples.len(),
            self.lost.len()
        );
    }
}

/// The inbox, then the senders.
fn accounts() -> impl Iterator<Item = String> {
    std::iter::once(INBOX.to_owned()).chain((0..SENDERS).map(|i| format!("s{i}")))
}

/// Where sender `index` sends: the inbox, or every other one the group.
fn to(index: usize) -> &'static str {
    if index % 2 == 1 {
        GROUP
    } else {
        INBOX
    }
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
    let Ok(mut client) = Client::connect(addr, security, CLIENT_NAME, Duration::from_secs(2)) else {
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
            let send = Request::Send { to: to(index).into(), body: body(index, cmid), client_msg_id: cmid };
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

/// Every text `sender` wrote in the group, oldest first, as the inbox reads them.
fn group_texts(client: &mut Client, sender: &str) -> Vec<(u64, String)> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = client.group_history(GROUP, before, 200).unwrap();
        let texts =
            page.messages.iter().filter(|m| m.kind == GroupMessageKind::Text && m.from.as_str() == sender);
        all.extend(texts.map(|m| (m.id, m.body.clone())));
        before = page.messages.last().map(|m| m.id);
        if !page.more {
            all.reverse();
            return all;
        }
    }
}

/// The sequence number of the newest write-ahead log segment in `data_dir` (0 if none).
fn newest_segment(data_dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(data_dir.join("wal")) else { return 0 };
    entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            u64::from_str_radix(name.strip_suffix(".log")?, 16).ok()
        })
        .max()
        .unwrap_or(0)
}
