//! Where the unread messages are: the `── new ──` line of a conversation opened with
//! unread messages, Alt+A's next conversation, and the status bar's summary.

use super::history::newest_height;
use super::model::{ConvKey, Model};
use super::update::{counts_unread, fetch_older, history_size};
use crate::net::NetCommand;

/// Puts the `── new ──` line of `peer`'s conversation above its first unread message (the
/// oldest of the last `marker_pending` texts from others) and scrolls so that it is at the top,
/// loading older pages first if they hold it. Nothing while a page is on its way.
pub(super) fn place_marker(model: &mut Model, peer: &ConvKey, out: &mut Vec<NetCommand>) {
    let (width, height) = history_size(model);
    let (Some(me), offset) = (model.me.clone(), model.utc_offset) else { return };
    let Some(conversation) = model.conversations.get_mut(peer) else { return };
    if conversation.marker_pending == 0 || conversation.loading {
        return;
    }
    let wanted = usize::try_from(conversation.marker_pending).unwrap_or(usize::MAX);
    let from_peer: Vec<usize> = conversation
        .messages
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, m)| counts_unread(m, Some(&me)))
        .map(|(at, _)| at)
        .collect();
    let at = match from_peer.get(wanted - 1) {
        Some(&at) => at,
        None if conversation.more => return fetch_older(peer, conversation, out),
        // Fewer messages than the count says (some were deleted, or read elsewhere meanwhile).
        None => match from_peer.last() {
            Some(&at) => at,
            None => {
                conversation.marker_pending = 0;
                return;
            }
        },
    };
    conversation.marker_pending = 0;
    conversation.marker = Some(conversation.messages[at].id);
    // The marker is set first, so the height counts its line too.
    let below = newest_height(conversation, &me, offset, width, conversation.messages.len() - at);
    conversation.scroll = below.saturating_sub(height);
    conversation.new_below = 0;
}

/// The conversation Alt+A opens: the one with unread messages whose activity is oldest,
/// other than the open one.
pub(super) fn next_unread(model: &Model) -> Option<ConvKey> {
    let unread = model.unread_contacts();
    let next = unread.iter().find(|c| Some(&c.name) != model.selected.as_ref()).or(unread.first());
    next.map(|c| c.name.clone())
}

/// `3 unread: bia 2, caio 1` (or an empty string when everything is read).
pub fn summary(model: &Model) -> String {
    let total = model.total_unread();
    if total == 0 {
        return String::new();
    }
    let each: Vec<String> =
        model.unread_contacts().iter().map(|c| format!("{} {}", c.name, c.unread)).collect();
    format!("{total} unread: {}", each.join(", "))
}
