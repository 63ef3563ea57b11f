//! Rewrites a store of format 0 (before the manifest) in the current format, once, when it
//! is opened; refiles the resend entries of a format-1 store ([`resends_of_format1`]); and
//! gives the accounts of a format-2 store a status ([`accounts_of_format2`]).
//!
//! Format 1 counts, in every message, its place in its direction of the conversation, and
//! in every summary the messages received, so that unread counts follow from one lookup;
//! and it files resend entries by generation, so that old ones can be forgotten. Every
//! format-0 record is a prefix of its format-1 successor, so a migration a crash cut short
//! simply runs again from the start: it recomputes everything from the messages.

use std::collections::HashSet;

use papo_protocol::{MessageId, UnixMillis, Username};
use tracing::info;

use super::commit::Trees;
use super::records::{
    corrupt, decode, encode, format0, format2, AccountStatus, DedupRecord, MessageRecord, Summary, Target,
    UserRecord,
};
use super::{keys, Result};

/// What the migration rewrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Messages rewritten.
    pub messages: u64,
    /// Summaries rewritten.
    pub summaries: u64,
    /// Resend entries refiled.
    pub resends: u64,
}

/// Refiles every format-1 resend entry as a format-2 one, to the same user; returns how
/// many. Each entry moves on its own (inserted under its new key, then removed from the
/// old), so a refiling a crash cut short simply goes on at the next start.
pub fn resends_of_format1(trees: &Trees) -> Result<u64> {
    let mut refiled = 0;
    for entry in trees.chat.scan_prefix(keys::DEDUPS_FORMAT1) {
        let (key, raw) = entry?;
        let (generation, sender, client_msg_id) =
            keys::dedup_format1_parts(&key).ok_or_else(|| corrupt(&key, "bad resend key"))?;
        // Format 1's records have format 0's layout.
        let old: format0::DedupRecord = decode(&key, &raw)?;
        let record = DedupRecord { id: old.id, to: Target::User(old.to) };
        trees.chat.insert(keys::dedup(generation, &sender, client_msg_id), encode(&record))?;
        trees.chat.remove(&key)?;
        refiled += 1;
    }
    if refiled > 0 {
        info!(resends = refiled, "refiled the resend entries of a format-1 store");
    }
    Ok(refiled)
}

/// Rewrites every account of a format-2 (or older) store with a status, active; returns how
/// many. A format-2 record is a prefix of its successor, so an account a cut-short run
/// already rewrote (active: no format-2 server disables one) reads back the same, and the
/// rewriting simply runs again at the next start.
pub fn accounts_of_format2(trees: &Trees) -> Result<u64> {
    let mut rewritten = 0;
    for entry in trees.users.iter() {
        let (key, raw) = entry?;
        let old: format2::UserRecord = decode(&key, &raw)?;
        let record = UserRecord {
            password_hash: old.password_hash,
            created_at: old.created_at,
            status: AccountStatus::Active,
        };
        trees.users.insert(&key, encode(&record))?;
        rewritten += 1;
    }
    if rewritten > 0 {
        info!(accounts = rewritten, "gave the accounts of a format-2 store a status");
    }
    Ok(rewritten)
}

/// One conversation's counts while its messages are rewritten in order.
struct Conversation {
    prefix: Vec<u8>,
    /// The two names, in key order.
    names: [Username; 2],
    /// Messages so far from `names[0]` to `names[1]`, and back.
    sent: [u64; 2],
    /// The read watermark of each name's summary, and the messages it covers.
    read_up_to: [MessageId; 2],
    read: [u64; 2],
}

impl Conversation {
    fn start(trees: &Trees, prefix: &[u8], a: Username, b: Username) -> Result<Self> {
        let read_up_to = [read_watermark(trees, &a, &b)?, read_watermark(trees, &b, &a)?];
        Ok(Self { prefix: prefix.to_vec(), names: [a, b], sent: [0; 2], read_up_to, read: [0; 2] })
    }

    /// Counts a message and returns its position and reverse count.
    fn count(&mut self, id: MessageId, from: &Username) -> (u64, u64) {
        let direction = usize::from(*from != self.names[0]);
        self.sent[direction] += 1;
        // The recipient's summary counts what it has read of this direction.
        let recipient = 1 - direction;
        if id <= self.read_up_to[recipient] {
            self.read[recipient] = self.sent[direction];
        }
        (self.sent[direction], self.sent[1 - direction])
    }

    /// Rewrites both names' summaries with the counts.
    fn finish(&self, trees: &Trees, touched: &mut HashSet<Vec<u8>>) -> Result<u64> {
        let mut written = 0;
        for owner in 0..2 {
            let peer = 1 - owner;
            let key = keys::summary(&self.names[owner], &self.names[peer]);
            let Some(raw) = trees.chat.get(&key)? else { continue };
            let old: format0::Summary = decode(&key, &raw)?;
            let received = self.sent[peer];
            let summary = Summary {
                unread: received.saturating_sub(self.read[owner]),
                read_up_to: old.read_up_to,
                delivered_up_to: old.delivered_up_to,
                last_received: old.last_received,
                last: old.last,
                received,
            };
            trees.chat.insert(&key, encode(&summary))?;
            touched.insert(key);
            written += 1;
        }
        Ok(written)
    }
}

fn read_watermark(trees: &Trees, owner: &Username, peer: &Username) -> Result<MessageId> {
    let key = keys::summary(owner, peer);
    match trees.chat.get(&key)? {
        Some(raw) => Ok(decode::<format0::Summary>(&key, &raw)?.read_up_to),
        None => Ok(0),
    }
}

/// Rewrites every format-0 record in `trees`; resend entries get the generation of `now`.
pub fn run(trees: &Trees, now: UnixMillis) -> Result<Migrated> {
    let mut migrated = Migrated::default();
    let mut touched = HashSet::new();
    let mut current: Option<Conversation> = None;
    for entry in trees.chat.scan_prefix(keys::MESSAGES) {
        let (key, raw) = entry?;
        let (prefix, a, b) = keys::conversation_of(&key).ok_or_else(|| corrupt(&key, "bad message key"))?;
        if current.as_ref().is_none_or(|conversation| conversation.prefix != prefix) {
            if let Some(done) = current.take() {
                migrated.summaries += done.finish(trees, &mut touched)?;
            }
            current = Some(Conversation::start(trees, prefix, a, b)?);
        }
        let conversation = current.as_mut().expect("started above");
        let old: format0::MessageRecord = decode(&key, &raw)?;
        let id = keys::trailing_id(&key).ok_or_else(|| corrupt(&key, "short key"))?;
        let (position, reverse) = conversation.count(id, &old.from);
        let record = MessageRecord {
            from: old.from,
            to: old.to,
            body: old.body,
            sent_at: old.sent_at,
            position,
            reverse,
        };
        trees.chat.insert(&key, encode(&record))?;
        migrated.messages += 1;
    }
    if let Some(done) = current.take() {
        migrated.summaries += done.finish(trees, &mut touched)?;
    }
    // Summaries of conversations without a message (a watermark call on an empty one).
    for entry in trees.chat.scan_prefix(keys::SUMMARIES) {
        let (key, raw) = entry?;
        if touched.contains(key.as_ref()) {
            continue;
        }
        let old: format0::Summary = decode(&key, &raw)?;
        let summary = Summary {
            unread: 0,
            read_up_to: old.read_up_to,
            delivered_up_to: old.delivered_up_to,
            last_received: old.last_received,
            last: old.last,
            received: 0,
        };
        trees.chat.insert(&key, encode(&summary))?;
        migrated.summaries += 1;
    }
    let generation = keys::dedup_generation(now);
    for entry in trees.chat.scan_prefix(keys::DEDUP_FORMAT0) {
        let (key, raw) = entry?;
        let (sender, client_msg_id) =
            keys::dedup_format0_parts(&key).ok_or_else(|| corrupt(&key, "bad resend key"))?;
        let old: format0::DedupRecord = decode(&key, &raw)?;
        let record = DedupRecord { id: old.id, to: Target::User(old.to) };
        trees.chat.insert(keys::dedup(generation, &sender, client_msg_id), encode(&record))?;
        trees.chat.remove(&key)?;
        migrated.resends += 1;
    }
    info!(
        messages = migrated.messages,
        summaries = migrated.summaries,
        resends = migrated.resends,
        "migrated the store from format 0 to format 1"
    );
    Ok(migrated)
}
