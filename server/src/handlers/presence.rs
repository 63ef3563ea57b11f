//! Presence beyond online and offline: `Typing` relayed to the peer (never stored), and
//! when a user was last seen.
//!
//! A typing event is worth nothing a moment later, so the server relays at most one per
//! sender and recipient every [`TYPING_GAP_MILLIS`] and drops the rest: a client that
//! floods them can neither fill its peer's outbound queue (which would close the peer's
//! connection) nor cost the server more than a map lookup.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use papo_protocol::{ErrorCode, ErrorReply, Event, Reply, UnixMillis, Username};
use tracing::debug;

use super::{chat, Audience, Context, Delivery, Handled, Identity};
use crate::store::Store;

/// Least time between two typing events relayed from one sender to one recipient. Clients
/// send one at most every 3 s; this leaves room for jitter.
const TYPING_GAP_MILLIS: UnixMillis = 2_000;

/// Pairs remembered at most; past it, pairs older than the gap are forgotten, and if none
/// is, events are dropped until some are.
const TYPING_PAIRS: usize = 10_000;

/// When each (sender, recipient) pair last had a typing event relayed.
#[derive(Debug, Default)]
pub(crate) struct TypingGate {
    relayed: Mutex<HashMap<(Username, Username), UnixMillis>>,
}

impl TypingGate {
    /// Whether a typing event from `from` to `to` at `now` is relayed; records it if so.
    fn admit(&self, from: &Username, to: &Username, now: UnixMillis) -> bool {
        let mut relayed = self.relayed.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (from.clone(), to.clone());
        if relayed.get(&key).is_some_and(|&at| now - at < TYPING_GAP_MILLIS) {
            return false;
        }
        if relayed.len() >= TYPING_PAIRS && !relayed.contains_key(&key) {
            relayed.retain(|_, at| now - *at < TYPING_GAP_MILLIS);
            if relayed.len() >= TYPING_PAIRS {
                return false;
            }
        }
        relayed.insert(key, now);
        true
    }
}

/// Tells `to`'s sessions that the caller is typing to them.
pub(super) fn typing(ctx: &Context<'_>, me: &Identity, to: &str) -> Result<Handled, ErrorReply> {
    let to = chat::existing_user(ctx, to)?;
    if to == me.name {
        return Err(ErrorReply::new(ErrorCode::InvalidRequest, "you cannot type to yourself"));
    }
    if !ctx.typing.admit(&me.name, &to, ctx.clock.now_millis()) {
        return Ok(Handled::reply(Reply::Done));
    }
    let relay = Delivery { to: Audience::User(to), events: vec![Event::Typing { from: me.name.clone() }] };
    Ok(Handled::reply(Reply::Done).delivering(vec![relay]))
}

/// Records that `user`'s last session ended at `now`. A store that cannot take it (it is
/// stopping, say) only costs the date shown to others, so the failure is logged, not raised.
pub(crate) fn last_session_left(store: &Store, user: &Username, now: UnixMillis) {
    if let Err(e) = store.set_last_seen(user, now) {
        debug!(%user, error = %e, "cannot record when the user was last seen");
    }
}

#[cfg(test)]
mod tests;
