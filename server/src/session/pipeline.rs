//! A session's sends in flight, answered by the store's own threads.
//!
//! Once a group is durable and in sled, the store's threads write each send's
//! acknowledgement to its sender's connection and the message to its recipients'
//! connections (found as of the group), through their
//! non-blocking outboxes: neither the sender's thread nor the recipients' wake up for it,
//! where each message used to wake the sender's thread a second time to answer. The messages
//! a session stored in one group leave in one write per recipient, then its answers in one
//! write, after the last of them; groups are answered one after the other, so every
//! conversation is delivered in order.
//!
//! Recipients come first because a write to a connection wakes the client reading it, which
//! on 2 cores may run before the committer writes again: acknowledged first, a message
//! waited while its sender took the acknowledgement in (a conversation going back and forth,
//! 1 pair at window 1: send→deliver p50 530 µs acknowledged first, 453 µs delivered first,
//! medians of 4 alternating runs). No connection can tell otherwise: a sending session never
//! gets its own messages as deliveries (its user's other sessions get copies).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use papo_protocol::{RequestId, ServerFrame, Username};
use tracing::debug;

use crate::frames;
use crate::handlers::{self, Audience, Delivery};
use crate::hub::Hub;
use crate::store::{Afterwards, AppendAnswers, Appended, Members, Posted, Result, Then, Writes};
use crate::transport::{PushError, Sink};

/// Pushes events to the sessions they are for, each delivery encoded once; `own` is the
/// user and session they come from, whose other sessions get [`Audience::OwnOtherSessions`].
pub(crate) fn deliver(hub: &Hub, deliveries: Vec<Delivery>, own: Option<(&Username, u64)>) {
    for Delivery { to, events } in deliveries {
        let mut encoded = Vec::new();
        for event in events {
            frames::encode_into(&ServerFrame::Event(event), &mut encoded);
        }
        match to {
            Audience::User(user) => hub.send_to(&user, &encoded, None),
            Audience::Users(users) => hub.send_to_each(&users, &encoded),
            Audience::OwnOtherSessions => {
                if let Some((me, session)) = own {
                    hub.send_to(me, &encoded, Some(session));
                }
            }
            Audience::Subscribers => hub.send_to_subscribers(&encoded),
        }
    }
}

/// The sends one session has queued with the committer and not yet seen answered.
pub(crate) struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    session: u64,
    sink: Arc<dyn Sink>,
    hub: Arc<Hub>,
    members: Members,
    state: Mutex<State>,
    answered: Condvar,
}

#[derive(Default)]
struct State {
    /// Whose session it is, once logged in: their other sessions get copies.
    user: Option<Username>,
    /// Queued and not yet written out.
    in_flight: usize,
    /// Replies of the group being settled, encoded, with how many.
    replies: Vec<u8>,
    replied: usize,
    /// Messages those replies stored just now, delivered before the replies are written.
    fresh: Vec<Posted>,
    /// Whether the group's [`Afterwards`] already writes this session's answers out.
    flushing: bool,
    /// Whether the session's thread waits for answers, and needs waking.
    waiting: bool,
}

impl Pipeline {
    /// The pipeline of session `session`, whose client's frames go to `sink`.
    pub fn new(session: u64, sink: Arc<dyn Sink>, hub: Arc<Hub>, members: Members) -> Self {
        let inner = Inner { session, sink, hub, members, state: Mutex::default(), answered: Condvar::new() };
        Self { inner: Arc::new(inner) }
    }

    /// The session logged in as `user`.
    pub fn logged_in(&self, user: Username) {
        self.inner.lock().user = Some(user);
    }

    /// Where the sends of request `id` are answered.
    pub fn for_request(&self, id: RequestId) -> impl AppendAnswers + '_ {
        ForRequest { pipeline: self, id }
    }

    /// Waits until fewer than `most` sends are in flight.
    pub fn wait_below(&self, most: usize) {
        let mut state = self.inner.lock();
        while state.in_flight >= most.max(1) {
            state.waiting = true;
            state = self.inner.answered.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.waiting = false;
    }

    /// Waits until every queued send is answered (or known to be lost with the store).
    pub fn wait_idle(&self) {
        let mut state = self.inner.lock();
        while state.in_flight > 0 {
            state.waiting = true;
            state = self.inner.answered.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.waiting = false;
    }
}

struct ForRequest<'a> {
    pipeline: &'a Pipeline,
    id: RequestId,
}

impl AppendAnswers for ForRequest<'_> {
    fn next_answer(&self) -> Then<Appended> {
        self.pipeline.inner.lock().in_flight += 1;
        let pending = Pending { inner: Arc::clone(&self.pipeline.inner), id: self.id, answered: false };
        Box::new(move |answer, afterwards| pending.answer(answer, afterwards))
    }
}

/// One queued send, until its answer is in the session's batch.
struct Pending {
    inner: Arc<Inner>,
    id: RequestId,
    answered: bool,
}

impl Pending {
    fn answer(mut self, answer: Result<Appended>, afterwards: &mut Afterwards) {
        self.answered = true;
        let Some(acknowledged) = handlers::settle(answer) else {
            self.inner.lost(1);
            return;
        };
        let mut state = self.inner.lock();
        frames::encode_into(
            &ServerFrame::Reply { id: self.id, result: acknowledged.reply },
            &mut state.replies,
        );
        state.replied += 1;
        state.fresh.extend(acknowledged.deliver);
        if !state.flushing {
            state.flushing = true;
            let inner = Arc::clone(&self.inner);
            afterwards.add(move || inner.flush());
        }
    }
}

impl Drop for Pending {
    /// Dropped unanswered: the store failed, and the outcome is unknown.
    fn drop(&mut self) {
        if !self.answered {
            self.inner.lost(1);
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the group's answers to this session and finds who its messages go to (a
    /// group's members as of this group); the writes: the messages to their recipients,
    /// then the answers to this session.
    fn flush(self: Arc<Self>) -> Writes {
        let (replies, replied, fresh, user) = {
            let mut state = self.lock();
            state.flushing = false;
            let replied = std::mem::take(&mut state.replied);
            (
                std::mem::take(&mut state.replies),
                replied,
                std::mem::take(&mut state.fresh),
                state.user.clone(),
            )
        };
        let deliveries = handlers::deliveries(&self.members, fresh);
        let unwritten = Unwritten { inner: self, deliveries, replies, replied, user, written: false };
        Writes::new(move || unwritten.write())
    }

    /// A send's outcome cannot be known (the store stopped before answering), so no reply
    /// may claim either way: the connection closes, and the client resends it with the same
    /// client id once it reconnects.
    fn lost(&self, count: usize) {
        self.sink.close();
        self.settled(count);
    }

    fn settled(&self, count: usize) {
        let mut state = self.lock();
        state.in_flight -= count;
        if state.waiting {
            self.answered.notify_all();
        }
    }
}

/// One group's answers to a session, worked out and waiting to be written.
struct Unwritten {
    inner: Arc<Inner>,
    deliveries: Vec<Delivery>,
    replies: Vec<u8>,
    replied: usize,
    user: Option<Username>,
    written: bool,
}

impl Unwritten {
    /// The messages to their recipients, then the replies to the session.
    fn write(mut self) {
        self.written = true;
        let inner = &self.inner;
        let own = self.user.as_ref().map(|user| (user, inner.session));
        deliver(&inner.hub, std::mem::take(&mut self.deliveries), own);
        match inner.sink.push(&self.replies) {
            Ok(()) | Err(PushError::Closed) => {}
            Err(e) => debug!(session = inner.session, error = %e, "dropping replies"),
        }
        inner.settled(self.replied);
    }
}

impl Drop for Unwritten {
    /// Dropped unwritten: the store failed first, and as for a send never answered, the
    /// connection closes and the client resends with the same client ids.
    fn drop(&mut self) {
        if !self.written {
            self.inner.lost(self.replied);
        }
    }
}
