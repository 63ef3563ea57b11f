//! Key encodings of the `chat` tree. Nothing outside the store sees them.
//!
//! Every key starts with a one-byte kind. Names never contain a zero byte, so a zero ends
//! each name, and ids are big-endian so that byte order is numeric order: a conversation's
//! messages sit together, oldest first, and a page is one short range scan.
//!
//! Groups are filed by their [`GroupId`], which never changes, so a rename rewrites its
//! name keys and its record: `N` name → id, `G` id → the group, `W` id member → a member's watermarks, `U` user
//! id → nothing (a user's groups), `u` user → how many groups, `H` id message → a line of
//! its history, `X` id → a deleted group whose history the pruner has yet to remove, and
//! `O` name → which group gave the name up by a rename, and when (or that several groups
//! have held it): a message a member queued under the old name still finds its group.

use papo_protocol::{GroupName, MessageId, Username};

use super::records::GroupId;

const MESSAGE: u8 = b'm';
const SUMMARY: u8 = b's';
/// Resend entries of format 2: `R`, generation (u32 BE), sender, 0, client id (u64 BE);
/// their records say whether the message went to a user or a group.
const DEDUP: u8 = b'R';
/// Resend entries of format 1: keyed like format 2's under `D`, their records always to a
/// user; refiled under [`DEDUP`] when the store is opened.
const DEDUP_FORMAT1: u8 = b'D';
/// Resend entries of format 0: `d`, sender, 0, client id; migrated to [`DEDUP`].
pub const DEDUP_FORMAT0: &[u8] = b"d";

/// Holds the newest message id handed out.
pub const LAST_ID: &[u8] = b"n";

/// Holds the commit number of the newest group of writes applied.
pub const COMMIT: &[u8] = b"c";

const LAST_SEEN: u8 = b'l';

/// Invite codes (format 3): `i`, the code.
const INVITE: u8 = b'i';
/// The prefix of every invite key.
pub const INVITES: &[u8] = &[INVITE];

/// The key of an invite code.
pub fn invite(code: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + code.len());
    key.push(INVITE);
    key.extend_from_slice(code.as_bytes());
    key
}

/// The code of an invite key.
pub fn invite_code(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key.strip_prefix(INVITES)?).ok()
}

const GROUP_NAME: u8 = b'N';
const FORMER_GROUP_NAME: u8 = b'O';
const GROUP: u8 = b'G';
const MEMBER: u8 = b'W';
const MEMBERSHIP: u8 = b'U';
const MEMBERSHIPS: u8 = b'u';
const GROUP_LINE: u8 = b'H';
const DELETED_GROUP: u8 = b'X';

/// The prefix of every group key.
pub const GROUPS: &[u8] = &[GROUP];
/// The prefix of every member key.
pub const MEMBERS: &[u8] = &[MEMBER];
/// The prefix of every membership key.
pub const MEMBERSHIP_KEYS: &[u8] = &[MEMBERSHIP];
/// The prefix of every membership count key.
pub const MEMBERSHIP_COUNTS: &[u8] = &[MEMBERSHIPS];
/// The prefix of every group line key.
pub const GROUP_LINES: &[u8] = &[GROUP_LINE];
/// The prefix of every deleted group key.
pub const DELETED_GROUPS: &[u8] = &[DELETED_GROUP];

/// The prefix of every message key.
pub const MESSAGES: &[u8] = &[MESSAGE];

/// The prefix of every summary key.
pub const SUMMARIES: &[u8] = &[SUMMARY];

/// How long one generation of resend entries lasts: a resend is recognised for at least
/// this long after the first send (one to two generations), then forgotten.
pub const DEDUP_GENERATION_MS: i64 = 32 * 24 * 60 * 60 * 1000;

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

/// When `user`'s last session ended.
pub fn last_seen(user: &Username) -> Vec<u8> {
    let mut key = vec![LAST_SEEN];
    key.extend_from_slice(user.as_str().as_bytes());
    key
}

/// The generation of resend entries written at `now`.
pub fn dedup_generation(now: i64) -> u32 {
    u32::try_from(now.max(0) / DEDUP_GENERATION_MS).unwrap_or(u32::MAX)
}

/// Where a sender's `client_msg_id`, first sent in `generation`, is remembered.
pub fn dedup(generation: u32, sender: &Username, client_msg_id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 4 + sender.as_str().len() + 1 + 8);
    key.push(DEDUP);
    key.extend_from_slice(&generation.to_be_bytes());
    key.extend_from_slice(sender.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(&client_msg_id.to_be_bytes());
    key
}

/// The range of resend entries older than `generation`, to forget.
pub fn dedup_before(generation: u32) -> std::ops::Range<Vec<u8>> {
    let mut end = vec![DEDUP];
    end.extend_from_slice(&generation.to_be_bytes());
    vec![DEDUP]..end
}

/// The generation, sender and client id of a resend entry's key.
pub fn dedup_parts(key: &[u8]) -> Option<(u32, Username, u64)> {
    generation_key_parts(DEDUP, key)
}

/// The generation, sender and client id of a format-1 resend entry's key.
pub fn dedup_format1_parts(key: &[u8]) -> Option<(u32, Username, u64)> {
    generation_key_parts(DEDUP_FORMAT1, key)
}

fn generation_key_parts(kind: u8, key: &[u8]) -> Option<(u32, Username, u64)> {
    let rest = key.strip_prefix(&[kind])?;
    let generation = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let rest = &rest[4..];
    let split = rest.len().checked_sub(9)?;
    let (name, tail) = rest.split_at(split);
    let id = tail.strip_prefix(&[0])?;
    let sender = Username::parse(std::str::from_utf8(name).ok()?).ok()?;
    Some((generation, sender, u64::from_be_bytes(id.try_into().ok()?)))
}

/// The prefix of every resend entry.
pub const DEDUPS: &[u8] = &[DEDUP];

/// The prefix of every format-1 resend entry.
pub const DEDUPS_FORMAT1: &[u8] = &[DEDUP_FORMAT1];

/// The sender and client id of a format-0 resend entry's key.
pub fn dedup_format0_parts(key: &[u8]) -> Option<(Username, u64)> {
    let rest = key.strip_prefix(DEDUP_FORMAT0)?;
    let split = rest.len().checked_sub(9)?;
    let (name, tail) = rest.split_at(split);
    let id = tail.strip_prefix(&[0])?;
    let sender = Username::parse(std::str::from_utf8(name).ok()?).ok()?;
    Some((sender, u64::from_be_bytes(id.try_into().ok()?)))
}

/// The conversation prefix of a message key (both names), and the names.
pub fn conversation_of(key: &[u8]) -> Option<(&[u8], Username, Username)> {
    let rest = key.strip_prefix(MESSAGES)?;
    let prefix_len = key.len().checked_sub(8)?;
    let names = rest.get(..rest.len().checked_sub(8)?)?.strip_suffix(&[0])?;
    let (a, b) = names.split_at(names.iter().position(|&byte| byte == 0)?);
    let a = Username::parse(std::str::from_utf8(a).ok()?).ok()?;
    let b = Username::parse(std::str::from_utf8(&b[1..]).ok()?).ok()?;
    Some((&key[..prefix_len], a, b))
}

/// `owner`'s view of the conversation with `peer`: unread count, watermarks, last message.
pub fn summary(owner: &Username, peer: &Username) -> Vec<u8> {
    with_names(SUMMARY, &[owner, peer], 0)
}

/// All of `owner`'s summaries, one per conversation.
pub fn summary_prefix(owner: &Username) -> Vec<u8> {
    with_names(SUMMARY, &[owner], 0)
}

/// The owner and peer of a key made by [`summary`].
pub fn summary_names(key: &[u8]) -> Option<(Username, Username)> {
    let names = key.strip_prefix(SUMMARIES)?.strip_suffix(&[0])?;
    let (owner, peer) = names.split_at(names.iter().position(|&byte| byte == 0)?);
    let parse = |raw: &[u8]| Username::parse(std::str::from_utf8(raw).ok()?).ok();
    Some((parse(owner)?, parse(&peer[1..])?))
}

/// The peer's name in a key made by [`summary`] with this `prefix`.
pub fn summary_peer(prefix: &[u8], key: &[u8]) -> Option<Username> {
    let peer = key.strip_prefix(prefix)?.strip_suffix(&[0])?;
    Username::parse(std::str::from_utf8(peer).ok()?).ok()
}

fn with_group(kind: u8, group: GroupId, extra: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 8 + extra);
    key.push(kind);
    key.extend_from_slice(&group.0.to_be_bytes());
    key
}

/// Which group is called `name`.
pub fn group_name(name: &GroupName) -> Vec<u8> {
    with_group_name(GROUP_NAME, name)
}

/// Which group gave `name` up by a rename.
pub fn former_group_name(name: &GroupName) -> Vec<u8> {
    with_group_name(FORMER_GROUP_NAME, name)
}

fn with_group_name(kind: u8, name: &GroupName) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.bare().len());
    key.push(kind);
    key.extend_from_slice(name.bare().as_bytes());
    key
}

/// A group's record.
pub fn group(group: GroupId) -> Vec<u8> {
    with_group(GROUP, group, 0)
}

/// `member`'s watermarks in `group`.
pub fn member(group: GroupId, member: &Username) -> Vec<u8> {
    let mut key = with_group(MEMBER, group, member.as_str().len());
    key.extend_from_slice(member.as_str().as_bytes());
    key
}

/// Every member of `group`, in name order.
pub fn members_of(group: GroupId) -> Vec<u8> {
    with_group(MEMBER, group, 0)
}

/// The member's name in a key made by [`member`].
pub fn member_name(key: &[u8]) -> Option<Username> {
    Username::parse(std::str::from_utf8(key.get(9..)?).ok()?).ok()
}

/// That `user` is in `group`.
pub fn membership(user: &Username, group: GroupId) -> Vec<u8> {
    let mut key = with_names(MEMBERSHIP, &[user], 8);
    key.extend_from_slice(&group.0.to_be_bytes());
    key
}

/// Every group of `user`.
pub fn memberships_of(user: &Username) -> Vec<u8> {
    with_names(MEMBERSHIP, &[user], 0)
}

/// How many groups `user` is in.
pub fn membership_count(user: &Username) -> Vec<u8> {
    let mut key = vec![MEMBERSHIPS];
    key.extend_from_slice(user.as_str().as_bytes());
    key
}

/// The user of a key made by [`membership_count`].
pub fn membership_count_user(key: &[u8]) -> Option<Username> {
    Username::parse(std::str::from_utf8(key.strip_prefix(MEMBERSHIP_COUNTS)?).ok()?).ok()
}

/// The user and group of a key made by [`membership`].
pub fn membership_parts(key: &[u8]) -> Option<(Username, GroupId)> {
    let rest = key.strip_prefix(MEMBERSHIP_KEYS)?;
    let split = rest.len().checked_sub(9)?;
    let (name, tail) = rest.split_at(split);
    let id = tail.strip_prefix(&[0])?;
    let user = Username::parse(std::str::from_utf8(name).ok()?).ok()?;
    Some((user, GroupId(u64::from_be_bytes(id.try_into().ok()?))))
}

/// Line `id` of `group`'s history.
pub fn group_line(group: GroupId, id: MessageId) -> Vec<u8> {
    let mut key = with_group(GROUP_LINE, group, 8);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// Every line of `group`'s history, oldest first.
pub fn group_lines_of(group: GroupId) -> Vec<u8> {
    with_group(GROUP_LINE, group, 0)
}

/// A deleted group whose history is still to be pruned.
pub fn deleted_group(group: GroupId) -> Vec<u8> {
    with_group(DELETED_GROUP, group, 0)
}

/// The group id right after the kind byte of a key made by [`group`], [`member`],
/// [`group_line`] or [`deleted_group`].
pub fn group_of(key: &[u8]) -> Option<GroupId> {
    Some(GroupId(u64::from_be_bytes(key.get(1..9)?.try_into().ok()?)))
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
    fn keys_have_fixed_bytes() {
        let (ana, bob) = (name("ana"), name("bob"));
        assert_eq!(message(&bob, &ana, 258), b"mana\0bob\0\0\0\0\0\0\0\x01\x02");
        assert_eq!(summary(&ana, &bob), b"sana\0bob\0");
        assert_eq!(dedup(7, &ana, 1), b"R\0\0\0\x07ana\0\0\0\0\0\0\0\0\x01");
        assert_eq!((LAST_ID, COMMIT), (b"n".as_slice(), b"c".as_slice()));
        assert_eq!(last_seen(&ana), b"lana");
        let lab = GroupId(258);
        assert_eq!(group_name(&GroupName::parse("#lab").unwrap()), b"Nlab");
        assert_eq!(former_group_name(&GroupName::parse("#lab").unwrap()), b"Olab");
        assert_eq!(group(lab), b"G\0\0\0\0\0\0\x01\x02");
        assert_eq!(member(lab, &bob), b"W\0\0\0\0\0\0\x01\x02bob");
        assert_eq!(membership(&ana, lab), b"Uana\0\0\0\0\0\0\0\x01\x02");
        assert_eq!(membership_count(&ana), b"uana");
        assert_eq!(group_line(lab, 3), b"H\0\0\0\0\0\0\x01\x02\0\0\0\0\0\0\0\x03");
        assert_eq!(deleted_group(lab), b"X\0\0\0\0\0\0\x01\x02");
    }

    #[test]
    fn group_keys_parse_back_and_do_not_interleave() {
        let (a, ab, lab) = (name("a"), name("ab"), GroupId(7));
        assert_eq!(member_name(&member(lab, &ab)), Some(ab.clone()));
        assert!(member(lab, &a).starts_with(&members_of(lab)));
        assert!(!member(GroupId(8), &a).starts_with(&members_of(lab)));
        assert_eq!(membership_parts(&membership(&ab, lab)), Some((ab.clone(), lab)));
        assert!(!membership(&ab, lab).starts_with(&memberships_of(&a)), "a's groups are not ab's");
        assert_eq!(membership_count_user(&membership_count(&ab)), Some(ab));
        assert!(group_line(lab, 255) < group_line(lab, 256));
        assert_eq!(trailing_id(&group_line(lab, 77)), Some(77));
        for key in [group(lab), member(lab, &a), group_line(lab, 1), deleted_group(lab)] {
            assert_eq!(group_of(&key), Some(lab));
        }
    }

    #[test]
    fn dedup_generations_order_and_expire_by_range() {
        let ana = name("ana");
        let old = dedup(dedup_generation(DEDUP_GENERATION_MS - 1), &ana, u64::MAX);
        let new = dedup(dedup_generation(DEDUP_GENERATION_MS), &ana, 0);
        let expired = dedup_before(1);
        assert!(expired.contains(&old) && !expired.contains(&new));
        assert!(!expired.contains(&message(&ana, &ana, 0)));
    }

    #[test]
    fn format0_dedup_keys_and_conversations_parse() {
        let mut key = b"dana\0".to_vec();
        key.extend_from_slice(&42u64.to_be_bytes());
        assert_eq!(dedup_format0_parts(&key), Some((name("ana"), 42)));
        assert_eq!(dedup_parts(&dedup(9, &name("bob"), 7)), Some((9, name("bob"), 7)));
        let key = message(&name("bob"), &name("ana"), 9);
        let (prefix, a, b) = conversation_of(&key).unwrap();
        assert_eq!((prefix, a, b), (&key[..key.len() - 8], name("ana"), name("bob")));
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
        assert_eq!(summary_names(&summary(&ab, &a)), Some((ab.clone(), a.clone())));
    }
}
