//! Coalesced receipts: at most one `Delivered` and one `MarkRead` per conversation per
//! interval, carrying only the highest watermark.
//!
//! A flood into an open conversation would otherwise cost the server one receipt of each
//! kind per message. The first receipt after a quiet interval goes out at once, so the
//! sender's ✓✓ is not delayed when messages come one at a time; later ones within the
//! interval wait and leave as one when it ends. What waits is never dropped: the network
//! thread flushes it on quit and on a conversation switch, and sends it first after a
//! reconnect, together with receipts whose connection was lost before the server answered.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use papo_protocol::{MessageId, ReceiptKind};

use crate::conv_key::ConvKey;

/// How long a conversation's receipts of one kind are gathered before the next one leaves.
pub const RECEIPT_INTERVAL: Duration = Duration::from_millis(200);

/// One receipt to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Delivered or read.
    pub kind: ReceiptKind,
    /// The user or group.
    pub with: ConvKey,
    /// The watermark.
    pub up_to: MessageId,
}

/// One kind of receipt for one conversation.
#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    /// When the last receipt left, if within the current interval.
    sent_at: Option<Instant>,
    /// The highest watermark sent so far.
    sent_up_to: MessageId,
    /// A higher watermark waiting for the interval to end.
    waiting: Option<MessageId>,
}

impl Slot {
    fn due_at(&self, interval: Duration) -> Option<Instant> {
        self.waiting?;
        Some(self.sent_at.map_or_else(Instant::now, |at| at + interval))
    }
}

/// The receipts waiting to be sent, per conversation.
#[derive(Debug)]
pub struct Receipts {
    interval: Duration,
    /// Index 0 is `Delivered`, 1 is `Read`.
    slots: HashMap<ConvKey, [Slot; 2]>,
}

impl Receipts {
    /// Gathers receipts for `interval`.
    pub fn new(interval: Duration) -> Self {
        Self { interval, slots: HashMap::new() }
    }

    /// A receipt was asked for at `now`: returns it if it may leave at once, otherwise keeps
    /// the highest watermark for [`Receipts::due`]. Watermarks at or below one already sent
    /// or waiting are dropped: the server keeps only the highest.
    pub fn offer(
        &mut self,
        kind: ReceiptKind,
        with: &ConvKey,
        up_to: MessageId,
        now: Instant,
    ) -> Option<Receipt> {
        let interval = self.interval;
        let slot = self.slot(kind, with);
        if up_to <= slot.sent_up_to.max(slot.waiting.unwrap_or(0)) {
            return None;
        }
        if slot.sent_at.is_some_and(|at| now < at + interval) {
            slot.waiting = Some(up_to);
            return None;
        }
        *slot = Slot { sent_at: Some(now), sent_up_to: up_to, waiting: None };
        Some(Receipt { kind, with: with.clone(), up_to })
    }

    /// Keeps a receipt to send later whatever the interval (offline, or lost with a
    /// connection before the server answered it).
    pub fn defer(&mut self, kind: ReceiptKind, with: &ConvKey, up_to: MessageId) {
        let slot = self.slot(kind, with);
        slot.waiting = Some(slot.waiting.map_or(up_to, |waiting| waiting.max(up_to)));
    }

    /// When the next waiting receipt is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.slots.values().flatten().filter_map(|slot| slot.due_at(self.interval)).min()
    }

    /// The waiting receipts whose interval has ended by `now`, marked as sent; forgets
    /// conversations that have been quiet for a whole interval.
    pub fn due(&mut self, now: Instant) -> Vec<Receipt> {
        self.take(|slot, interval| slot.sent_at.is_none_or(|at| now >= at + interval), now)
    }

    /// Every waiting receipt, due or not (quitting, switching conversations, reconnected).
    pub fn flush(&mut self, now: Instant) -> Vec<Receipt> {
        self.take(|_, _| true, now)
    }

    fn take(&mut self, ready: impl Fn(&Slot, Duration) -> bool, now: Instant) -> Vec<Receipt> {
        let interval = self.interval;
        let mut out = Vec::new();
        for (with, slots) in &mut self.slots {
            for (slot, kind) in slots.iter_mut().zip([ReceiptKind::Delivered, ReceiptKind::Read]) {
                if let Some(up_to) = slot.waiting.filter(|_| ready(slot, interval)) {
                    *slot =
                        Slot { sent_at: Some(now), sent_up_to: up_to.max(slot.sent_up_to), waiting: None };
                    out.push(Receipt { kind, with: with.clone(), up_to });
                }
            }
        }
        let quiet =
            |slot: &Slot| slot.waiting.is_none() && slot.sent_at.is_none_or(|at| now >= at + interval);
        self.slots.retain(|_, slots| !slots.iter().all(quiet));
        out
    }

    fn slot(&mut self, kind: ReceiptKind, with: &ConvKey) -> &mut Slot {
        let slots = self.slots.entry(with.clone()).or_default();
        &mut slots[usize::from(kind == ReceiptKind::Read)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: ReceiptKind = ReceiptKind::Read;
    const DELIVERED: ReceiptKind = ReceiptKind::Delivered;

    fn conv(name: &str) -> ConvKey {
        ConvKey::parse(name).unwrap()
    }

    fn receipt(kind: ReceiptKind, with: &str, up_to: MessageId) -> Receipt {
        Receipt { kind, with: conv(with), up_to }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_receipt_after_a_quiet_interval_leaves_at_once() {
        let mut receipts = Receipts::new(ms(200));
        let t = Instant::now();
        assert_eq!(receipts.offer(READ, &conv("bia"), 5, t), Some(receipt(READ, "bia", 5)));
        assert_eq!(receipts.next_due(), None, "nothing waits");
        assert_eq!(receipts.offer(READ, &conv("bia"), 6, t + ms(250)), Some(receipt(READ, "bia", 6)));
    }

    #[test]
    fn a_flood_leaves_as_one_receipt_per_kind_with_the_highest_watermark() {
        let mut receipts = Receipts::new(ms(200));
        let t = Instant::now();
        assert!(receipts.offer(DELIVERED, &conv("bia"), 1, t).is_some());
        assert!(receipts.offer(READ, &conv("bia"), 1, t).is_some());
        for id in 2..=1000 {
            let at = t + ms(id / 10);
            assert_eq!(receipts.offer(DELIVERED, &conv("bia"), id, at), None);
            assert_eq!(receipts.offer(READ, &conv("bia"), id, at), None);
        }
        assert_eq!(receipts.next_due(), Some(t + ms(200)));
        assert_eq!(receipts.due(t + ms(199)), []);
        let mut due = receipts.due(t + ms(200));
        due.sort_by_key(|r| r.kind == READ);
        assert_eq!(due, [receipt(DELIVERED, "bia", 1000), receipt(READ, "bia", 1000)]);
        assert_eq!(receipts.next_due(), None);
    }

    #[test]
    fn conversations_and_kinds_are_gathered_apart() {
        let mut receipts = Receipts::new(ms(200));
        let t = Instant::now();
        assert!(receipts.offer(READ, &conv("bia"), 10, t).is_some());
        assert!(receipts.offer(READ, &conv("#lab"), 3, t).is_some(), "another conversation");
        assert!(receipts.offer(DELIVERED, &conv("bia"), 10, t).is_some(), "another kind");
    }

    #[test]
    fn an_old_or_repeated_watermark_is_not_sent_again() {
        let mut receipts = Receipts::new(ms(200));
        let t = Instant::now();
        assert!(receipts.offer(READ, &conv("bia"), 10, t).is_some());
        assert_eq!(receipts.offer(READ, &conv("bia"), 10, t + ms(50)), None);
        assert_eq!(receipts.offer(READ, &conv("bia"), 7, t + ms(50)), None);
        assert_eq!(receipts.due(t + ms(300)), [], "nothing higher was asked for");
    }

    #[test]
    fn flush_sends_what_waits_before_its_interval_ends() {
        let mut receipts = Receipts::new(ms(200));
        let t = Instant::now();
        assert!(receipts.offer(READ, &conv("bia"), 1, t).is_some());
        assert_eq!(receipts.offer(READ, &conv("bia"), 2, t + ms(10)), None);
        assert_eq!(receipts.flush(t + ms(20)), [receipt(READ, "bia", 2)]);
        assert_eq!(receipts.flush(t + ms(30)), [], "sent once");
        assert_eq!(receipts.offer(READ, &conv("bia"), 3, t + ms(40)), None, "the flush started an interval");
    }

    #[test]
    fn a_deferred_receipt_waits_for_the_flush_and_keeps_the_highest() {
        let mut receipts = Receipts::new(ms(200));
        let t = Instant::now();
        receipts.defer(DELIVERED, &conv("bia"), 4);
        receipts.defer(DELIVERED, &conv("bia"), 9);
        receipts.defer(DELIVERED, &conv("bia"), 6);
        assert_eq!(receipts.flush(t), [receipt(DELIVERED, "bia", 9)]);
    }

    #[test]
    fn a_receipt_lost_in_flight_is_sent_again() {
        let mut receipts = Receipts::new(ms(200));
        let t = Instant::now();
        assert!(receipts.offer(READ, &conv("bia"), 5, t).is_some());
        receipts.defer(READ, &conv("bia"), 5);
        assert_eq!(receipts.flush(t + ms(10)), [receipt(READ, "bia", 5)]);
    }

    #[test]
    fn quiet_conversations_are_forgotten() {
        let mut receipts = Receipts::new(ms(200));
        let t = Instant::now();
        for n in 0..100 {
            assert!(receipts.offer(READ, &conv(&format!("user{n}")), 1, t).is_some());
        }
        assert_eq!(receipts.due(t + ms(200)), []);
        assert!(receipts.slots.is_empty());
    }
}
