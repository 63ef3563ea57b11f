//! The Papo wire protocol, shared by `papo-server`, the `papo` client and the load generator.
//!
//! Every frame is a 4-byte big-endian payload length followed by a bincode 2 (serde) payload.
//! A connection starts with a handshake ([`ClientFrame::Hello`] answered by
//! [`ServerFrame::Welcome`]); after that the client sends [`Request`]s tagged with its own
//! request id and the server answers each one with a [`ServerFrame::Reply`], while pushing
//! [`Event`]s at any time. The codec in [`frame`] is pure; [`Connection`] and [`Client`] add
//! blocking sockets on top, inside TLS ([`tls`]) unless a side runs with `--plaintext`.

mod client;
mod connection;
pub mod discovery;
pub mod frame;
mod message;
mod name;
pub mod tls;

pub use client::{Client, ClientError};
pub use connection::{Connection, FrameReader, FrameWriter, ReadHalf, WriteHalf};
pub use frame::FrameError;
pub use message::*;
pub use name::{GroupName, InvalidGroupName, InvalidName, Username};
pub use tls::{Fingerprint, Security, TrustError};

/// Version of the message set in this crate; bumped on every incompatible wire change.
pub const PROTOCOL_VERSION: u32 = 3;

/// TCP port the server listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7878;

/// Largest frame payload either side accepts; checked before the payload is allocated.
pub const MAX_FRAME_LEN: usize = 64 * 1024;

/// Largest message body in bytes of UTF-8.
pub const MAX_BODY_LEN: usize = 4096;

/// Smallest and largest password lengths in bytes.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;

/// Most messages one history page holds.
pub const MAX_HISTORY_PAGE: u32 = 200;

/// Most matches one [`Request::Search`] page returns.
pub const MAX_SEARCH_PAGE: u32 = 100;

/// Longest search text, in bytes.
pub const MAX_SEARCH_QUERY: usize = 256;

/// Most members one group has, its owner included.
pub const MAX_GROUP_MEMBERS: usize = 500;

/// Most groups one user is a member of.
pub const MAX_GROUPS_PER_USER: usize = 100;
