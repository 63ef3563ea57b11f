//! The values the store keeps in sled, and the one codec that writes them to disk.
//!
//! Every layout here outlives the process, so none of them borrows a type from the wire
//! protocol (a change there must not silently change the disk), each has a golden-byte test
//! (a round trip cannot see a reordered field), and a change to any of them is a new store
//! format (`manifest::FORMAT`) with a migration. Replacing bincode later touches this file.

use papo_protocol::{LastMessage, MessageId, UnixMillis, Username};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{Result, StoreError};

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// bcrypt hash of the password.
    pub password_hash: String,
    /// When the account was created.
    pub created_at: UnixMillis,
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
    /// Its recipient, to tell a resend from a reused id.
    pub to: Username,
}

impl From<StoredLast> for LastMessage {
    fn from(last: StoredLast) -> Self {
        Self { id: last.id, from: last.from, sent_at: last.sent_at, preview: last.preview }
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
        let user = UserRecord { password_hash: "$2b$04$h".into(), created_at: 1_700_000_000_000 };
        assert_eq!(hex(&encode(&user)), "082432622430342468fd00d0ca9f17030000");
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
        let dedup = DedupRecord { id: 1 << 20, to: name("bob") };
        assert_eq!(hex(&encode(&dedup)), "fc0000100003626f62");
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
}
