//! Key encodings of the `chat` tree. Nothing outside the store sees them.
//!
//! Every key starts with a one-byte kind. Names never contain a zero byte, so a zero ends
//! each name, and ids are big-endian so that byte order is numeric order: a conversation's
//! messages sit together, oldest first, and a page is one short range scan.

use papo_protocol::{MessageId, Username};

const MESSAGE: u8 = b'm';
const DEDUP: u8 = b'd';
const SUMMARY: u8 = b's';

/// Holds the newest message id handed out.
pub const LAST_ID: &[u8] = b"n";

fn with_names(kind: u8, names: &[&Username], extra: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + names.iter().map(|n| n.as_str().len() + 1).sum::<usize>() + extra);
    key.push(kind);
    for name in names {
        key.extend_from_slice(name.as_str().as_bytes());
        key.push(0);
    }
    key
}

/// The two names of a conversation in a fixed order, so both sides share one key space.
fn ordered<'a>(a: &'a Username, b: &'a Username) -> [&'a Username; 2] {
    if a <= b {
        [a, b]
    } else {
        [b, a]
    }
}

/// A stored message of the conversation between `a` and `b`.
pub fn message(a: &Username, b: &Username, id: MessageId) -> Vec<u8> {
    let mut key = with_names(MESSAGE, &ordered(a, b), 8);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The id a sender's `client_msg_id` was stored under.
pub fn dedup(sender: &Username, client_msg_id: u64) -> Vec<u8> {
    let mut key = with_names(DEDUP, &[sender], 8);
    key.extend_from_slice(&client_msg_id.to_be_bytes());
    key
}

/// `owner`'s view of the conversation with `peer`: unread count, watermarks, last message.
pub fn summary(owner: &Username, peer: &Username) -> Vec<u8> {
    with_names(SUMMARY, &[owner, peer], 0)
}

/// All of `owner`'s summaries, one per conversation.
pub fn summary_prefix(owner: &Username) -> Vec<u8> {
    with_names(SUMMARY, &[owner], 0)
}

/// The peer's name in a key made by [`summary`] with this `prefix`.
pub fn summary_peer(prefix: &[u8], key: &[u8]) -> Option<Username> {
    let peer = key.strip_prefix(prefix)?.strip_suffix(&[0])?;
    Username::parse(std::str::from_utf8(peer).ok()?).ok()
}

/// The message id at the end of a key made by [`message`].
pub fn trailing_id(key: &[u8]) -> Option<MessageId> {
    let tail = key.len().checked_sub(8).map(|start| &key[start..])?;
    Some(MessageId::from_be_bytes(tail.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Username {
        Username::parse(raw).unwrap()
    }

    #[test]
    fn both_sides_share_a_conversation() {
        assert_eq!(message(&name("ana"), &name("bob"), 5), message(&name("bob"), &name("ana"), 5));
    }

    #[test]
    fn ids_sort_numerically_and_conversations_do_not_interleave() {
        let (a, b, ab) = (name("a"), name("b"), name("ab"));
        assert!(message(&a, &b, 255) < message(&a, &b, 256));
        // "a"+"b" must not share a prefix with "ab"+anything.
        assert!(!message(&ab, &b, 1).starts_with(&message(&a, &b, 1)[..4]));
        assert_eq!(trailing_id(&message(&a, &b, 77)), Some(77));
        assert_eq!(summary_peer(&summary_prefix(&a), &summary(&a, &ab)), Some(ab.clone()));
    }
}
