//! The values the store keeps in sled, and the one codec that writes them to disk.
//!
//! Every layout here outlives the process, so none of them borrows a type from the wire
//! protocol (a change there must not silently change the disk), each has a golden-byte test
//! (a round trip cannot see a reordered field), and a change to any of them is a new store
//! format (`manifest::FORMAT`) with a migration. Replacing bincode later touches this file.

use papo_protocol::{GroupMessageKind, GroupName, LastMessage, MessageId, UnixMillis, Username};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{Result, StoreError};

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// bcrypt hash of the password.
    pub password_hash: String,
    /// When the account was created.
    pub created_at: UnixMillis,
    /// Whether it may log in (format 3).
    pub status: AccountStatus,
}

/// Whether an account may log in. Named in snake case for the export, which writes it as is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// It logs in as usual.
    #[default]
    Active,
    /// The administrator disabled it: it keeps its name and messages but cannot log in or
    /// resume until it is enabled again.
    Disabled,
    /// The administrator deleted it: what is left is a tombstone without a password, which
    /// keeps the name from being registered again.
    Deleted,
}

impl AccountStatus {
    /// Whether it is [`Self::Active`], the status an export leaves out.
    pub fn is_active(&self) -> bool {
        *self == Self::Active
    }
}

/// An invite code the administrator created (format 3): registering with it uses it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    /// When it was created.
    pub created_at: UnixMillis,
    /// When it stops working, if ever.
    pub expires_at: Option<UnixMillis>,
    /// Registrations it still allows; at 0 it is removed.
    pub uses_left: u32,
}

/// A resume token's owner and expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Whose session the token resumes.
    pub user: Username,
    /// When the token stops working.
    pub expires_at: UnixMillis,
}

/// The newest message of a conversation, as a summary keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLast {
    /// Its id.
    pub id: MessageId,
    /// Who sent it.
    pub from: Username,
    /// When the server stored it.
    pub sent_at: UnixMillis,
    /// The start of its body.
    pub preview: String,
}

/// One user's view of one conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Messages from the peer this user has not read.
    pub unread: u64,
    /// Newest message from the peer this user has read.
    pub read_up_to: MessageId,
    /// Newest message from the peer a client of this user has received.
    pub delivered_up_to: MessageId,
    /// Newest message from the peer; watermarks never pass it.
    pub last_received: MessageId,
    /// The conversation's newest message.
    pub last: Option<StoredLast>,
    /// Messages from the peer to this user, ever (format 1).
    pub received: u64,
}

/// A message as it is stored under its key (which holds the id and the conversation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Its sender.
    pub from: Username,
    /// Its recipient.
    pub to: Username,
    /// Its text.
    pub body: String,
    /// When the server stored it.
    pub sent_at: UnixMillis,
    /// Its place among the messages from `from` to `to`, counting from 1 (format 1).
    pub position: u64,
    /// How many messages from `to` to `from` came before it (format 1).
    ///
    /// With `position`, any message tells how many messages of each direction precede it,
    /// so marking a conversation read up to a message costs one lookup, however long the
    /// conversation.
    pub reverse: u64,
}

/// What a resend's `client_msg_id` was first stored as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupRecord {
    /// The message id it was stored under.
    pub id: MessageId,
    /// Where it went, to tell a resend from a reused id.
    pub to: Target,
}

/// Where a message went: a user, or a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// A direct message to this user.
    User(Username),
    /// A text in this group.
    Group(GroupId),
}

/// A group's id: the id of the line that created it, so it comes from the message id
/// sequence and never changes, whatever the group is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId(pub MessageId);

/// Where a name a group gave up by a rename leads (its `O` key): what a member queued under
/// it while offline still reaches that group, and only that group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FormerName {
    /// `group` gave the name up with its line `renamed_at`: whoever was a member before that
    /// line may still send and confirm under it.
    Renamed {
        /// The group.
        group: GroupId,
        /// Its `Renamed` line.
        renamed_at: MessageId,
    },
    /// Another group has held the name since: what comes under it could be meant for
    /// either, so a former name reaches neither.
    Ambiguous,
}

/// A group as stored under its id. Each of its lines changes it (counts, newest line), so it
/// holds no member list: members have keys of their own, and a line costs the same writes
/// whatever the group's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Its current name.
    pub name: GroupName,
    /// Who may change it.
    pub owner: Username,
    /// When it was created.
    pub created_at: UnixMillis,
    /// Whether members added later see only what was said from then on.
    pub hide_history: bool,
    /// How many members it has.
    pub members: u32,
    /// Lines ever, system lines included: the newest line's position.
    pub lines: u64,
    /// Texts ever: what unread counts are counted against.
    pub texts: u64,
    /// The newest line's id; watermarks never pass it.
    pub last_line: MessageId,
    /// The newest text, for the list of groups.
    pub last: Option<StoredLast>,
}

/// How far one member got: a line's id, and how many lines (for delivered) or texts (for
/// read) the group had up to it, so pending and unread counts are a subtraction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Every line up to this id is covered.
    pub id: MessageId,
    /// Lines, or texts, up to and including it.
    pub count: u64,
}

/// One member of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The line that added them (or created the group): with `hide_history`, what they may
    /// read starts there.
    pub joined_at: MessageId,
    /// Lines a client of theirs has received; later ones are pending at their login.
    pub delivered: Mark,
    /// Texts they have read.
    pub read: Mark,
}

/// A line of a group's history, stored once under the group's id and its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLineRecord {
    /// Who sent it, or did what it says.
    pub from: Username,
    /// The text; empty for every kind but [`LineKind::Text`].
    pub body: String,
    /// When the server stored it.
    pub sent_at: UnixMillis,
    /// Its place among the group's lines, counting from 1.
    pub position: u64,
    /// Texts of the group up to and including it.
    pub texts: u64,
    /// A text, or which change.
    pub kind: LineKind,
}

/// What a group line is. Named in snake case for the export, which writes it as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// A message.
    Text,
    /// The group was created.
    Created,
    /// A member was added.
    Added {
        /// Who.
        member: Username,
    },
    /// The sender left.
    Left,
    /// A member was removed.
    Removed {
        /// Who.
        member: Username,
    },
    /// The group was renamed.
    Renamed {
        /// Its name before.
        from: GroupName,
    },
    /// The group was handed over.
    OwnerChanged {
        /// The new owner.
        to: Username,
    },
}

impl From<LineKind> for GroupMessageKind {
    fn from(kind: LineKind) -> Self {
        match kind {
            LineKind::Text => Self::Text,
            LineKind::Created => Self::Created,
            LineKind::Added { member } => Self::Added { member },
            LineKind::Left => Self::Left,
            LineKind::Removed { member } => Self::Removed { member },
            LineKind::Renamed { from } => Self::Renamed { from },
            LineKind::OwnerChanged { to } => Self::OwnerChanged { to },
        }
    }
}

impl From<StoredLast> for LastMessage {
    fn from(last: StoredLast) -> Self {
        Self { id: last.id, from: last.from, sent_at: last.sent_at, preview: last.preview }
    }
}

/// The records of format 2 (and before) that format 3 changed, read only to migrate them.
pub mod format2 {
    use super::{Deserialize, UnixMillis};

    /// A format-2 [`super::UserRecord`]: no `status`, so a prefix of its successor.
    #[derive(Debug, Deserialize)]
    pub struct UserRecord {
        /// The password hash.
        pub password_hash: String,
        /// When created.
        pub created_at: UnixMillis,
    }
}

/// The records of format 0, read only to migrate them; each is a prefix of its format-1
/// successor, so records a half-finished migration already rewrote read back the same.
pub mod format0 {
    use super::{Deserialize, MessageId, StoredLast, UnixMillis, Username};

    /// A format-0 [`super::Summary`]: no `received`.
    #[derive(Debug, Deserialize)]
    pub struct Summary {
        /// Unread count: recomputed by the migration, read only for the layout.
        pub _unread: u64,
        /// Read watermark.
        pub read_up_to: MessageId,
        /// Delivered watermark.
        pub delivered_up_to: MessageId,
        /// Newest message from the peer.
        pub last_received: MessageId,
        /// Newest message of the conversation.
        pub last: Option<StoredLast>,
    }

    /// A format-0 (and format-1) [`super::DedupRecord`]: always to a user.
    #[derive(Debug, Deserialize)]
    pub struct DedupRecord {
        /// The message id.
        pub id: MessageId,
        /// Its recipient.
        pub to: Username,
    }

    /// A format-0 [`super::MessageRecord`]: no `position` or `reverse`.
    #[derive(Debug, Deserialize)]
    pub struct MessageRecord {
        /// Sender.
        pub from: Username,
        /// Recipient.
        pub to: Username,
        /// Text.
        pub body: String,
        /// When stored.
        pub sent_at: UnixMillis,
    }
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a record for sled or the log.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, config()).expect("store records always encode")
}

/// Decodes the record stored under `key`.
pub fn decode<T: DeserializeOwned>(key: &[u8], raw: &[u8]) -> Result<T> {
    bincode::serde::decode_from_slice(raw, config()).map(|(value, _)| value).map_err(|e| corrupt(key, e))
}

/// A record that does not decode.
// Callers hand over the error they just got; taking a reference would only add `&`s.
#[allow(clippy::needless_pass_by_value)]
pub fn corrupt(key: &[u8], reason: impl ToString) -> StoreError {
    StoreError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), reason: reason.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Username {
        Username::parse(raw).unwrap()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn records_have_fixed_bytes() {
        let user = UserRecord {
            password_hash: "$2b$04$h".into(),
            created_at: 1_700_000_000_000,
            status: AccountStatus::Active,
        };
        assert_eq!(hex(&encode(&user)), "082432622430342468fd00d0ca9f1703000000");
        let disabled = UserRecord { status: AccountStatus::Disabled, ..user.clone() };
        assert_eq!(hex(&encode(&disabled)), "082432622430342468fd00d0ca9f1703000001");
        let deleted = UserRecord { password_hash: String::new(), status: AccountStatus::Deleted, ..user };
        assert_eq!(hex(&encode(&deleted)), "00fd00d0ca9f1703000002");
        let invite = InviteRecord { created_at: 5, expires_at: Some(300), uses_left: 2 };
        assert_eq!(hex(&encode(&invite)), "0a01fb580202");
        let token = TokenRecord { user: name("ana"), expires_at: 5 };
        assert_eq!(hex(&encode(&token)), "03616e610a");
        let last = StoredLast { id: 300, from: name("bob"), sent_at: 7, preview: "oi".into() };
        let summary = Summary {
            unread: 2,
            read_up_to: 298,
            delivered_up_to: 299,
            last_received: 300,
            last: Some(last),
            received: 40,
        };
        assert_eq!(hex(&encode(&summary)), "02fb2a01fb2b01fb2c0101fb2c0103626f620e026f6928");
        let message = MessageRecord {
            from: name("ana"),
            to: name("bob"),
            body: "tudo bem?".into(),
            sent_at: -1,
            position: 3,
            reverse: 251,
        };
        assert_eq!(hex(&encode(&message)), "03616e6103626f62097475646f2062656d3f0103fbfb00");
        let dedup = DedupRecord { id: 1 << 20, to: Target::User(name("bob")) };
        assert_eq!(hex(&encode(&dedup)), "fc000010000003626f62");
        let dedup = DedupRecord { id: 300, to: Target::Group(GroupId(299)) };
        assert_eq!(hex(&encode(&dedup)), "fb2c0101fb2b01");
    }

    #[test]
    fn group_records_have_fixed_bytes() {
        let last = StoredLast { id: 303, from: name("bob"), sent_at: 7, preview: "oi".into() };
        let group = GroupRecord {
            name: GroupName::parse("#lab").unwrap(),
            owner: name("ana"),
            created_at: 5,
            hide_history: true,
            members: 3,
            lines: 4,
            texts: 1,
            last_line: 304,
            last: Some(last),
        };
        assert_eq!(hex(&encode(&group)), "04236c616203616e610a01030401fb300101fb2f0103626f620e026f69");
        let member = MemberRecord {
            joined_at: 300,
            delivered: Mark { id: 303, count: 3 },
            read: Mark { id: 302, count: 0 },
        };
        assert_eq!(hex(&encode(&member)), "fb2c01fb2f0103fb2e0100");
        let kinds = [
            LineKind::Text,
            LineKind::Created,
            LineKind::Added { member: name("bob") },
            LineKind::Left,
            LineKind::Removed { member: name("bob") },
            LineKind::Renamed { from: GroupName::parse("#old").unwrap() },
            LineKind::OwnerChanged { to: name("bob") },
        ];
        let encoded: Vec<String> = kinds
            .into_iter()
            .map(|kind| {
                let line = GroupLineRecord {
                    from: name("ana"),
                    body: "oi".into(),
                    sent_at: -1,
                    position: 2,
                    texts: 1,
                    kind,
                };
                hex(&encode(&line))
            })
            .collect();
        // From, body, time, position and texts, then the kind's index and fields.
        let fields = "03616e61026f69010201";
        let kinds = ["00", "01", "0203626f62", "03", "0403626f62", "0504236f6c64", "0603626f62"];
        assert_eq!(encoded, kinds.map(|kind| format!("{fields}{kind}")));
    }

    #[test]
    fn format_0_records_read_as_prefixes_of_format_1() {
        let message = MessageRecord {
            from: name("ana"),
            to: name("bob"),
            body: "x".into(),
            sent_at: 9,
            position: 4,
            reverse: 2,
        };
        let old: format0::MessageRecord = decode(b"m", &encode(&message)).unwrap();
        assert_eq!((old.from, old.to, old.body.as_str(), old.sent_at), (name("ana"), name("bob"), "x", 9));
        let summary = Summary { unread: 1, read_up_to: 2, received: 9, ..Summary::default() };
        let old: format0::Summary = decode(b"s", &encode(&summary)).unwrap();
        assert_eq!((old._unread, old.read_up_to), (1, 2));
    }

    #[test]
    fn format_0_resend_entries_read_as_their_own_layout() {
        // Format 1 tells users from groups, so its entries are not a prefix of format 0's: the
        // migration decodes each in the old layout and writes it in the new.
        let old: format0::DedupRecord = decode(b"d", &hex_bytes("fc0000100003626f62")).unwrap();
        assert_eq!((old.id, old.to), (1 << 20, name("bob")));
    }

    #[test]
    fn format_2_accounts_read_as_prefixes_of_format_3() {
        let old: format2::UserRecord =
            decode(b"u", &hex_bytes("082432622430342468fd00d0ca9f17030000")).unwrap();
        assert_eq!((old.password_hash.as_str(), old.created_at), ("$2b$04$h", 1_700_000_000_000));
        let new = UserRecord { password_hash: "h".into(), created_at: 3, status: AccountStatus::Disabled };
        let old: format2::UserRecord = decode(b"u", &encode(&new)).unwrap();
        assert_eq!((old.password_hash.as_str(), old.created_at), ("h", 3));
    }

    fn hex_bytes(hex: &str) -> Vec<u8> {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
    }
}
