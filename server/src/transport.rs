//! What a session needs of its connection: bytes in ([`Inbound`]) and a bounded queue of
//! frames out ([`Sink`]).
//!
//! Over TCP these are the socket (or TLS over it) and the connection's outbox
//! (`tcp.rs`, `outbox.rs`); in tests and the in-process fuzz target they are byte queues in
//! memory (`memory.rs`). Nothing above this boundary knows which.

use std::fmt::Debug;
use std::io::Read;
use std::time::Duration;

/// Why frames were not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
    /// The queue passed its limit, so the connection was closed.
    #[error("the outbound queue overflowed")]
    Overflow,
    /// Room did not appear in time.
    #[error("timed out waiting for room in the outbound queue")]
    TimedOut,
}

/// A connection's outbound queue, which any session may push to (live deliveries) and
/// which must never block them.
pub(crate) trait Sink: Debug + Send + Sync {
    /// Queues encoded frames without waiting; a client that does not keep up is closed.
    fn push(&self, frames: &[u8]) -> Result<(), PushError>;

    /// Like [`Sink::push`], but first waits up to `timeout` for the queue to have room.
    ///
    /// For a session streaming a backlog to its own client: it may wait, nobody else does.
    fn push_when_room(&self, frames: &[u8], timeout: Duration) -> Result<(), PushError>;

    /// Closes the connection; later pushes fail.
    fn close(&self);
}

/// The bytes a client sends, read by its session's thread.
pub(crate) trait Inbound: Read {
    /// The handshake is over: from now on a read may wait up to `idle` before it fails with
    /// a timeout, and the client has until `login_by` to log in (a `Ping` does not extend it).
    fn handshaken(&self, idle: Duration, login_by: Duration);

    /// The client logged in: its deadline to log in, and its place among the connections
    /// that have not, are given up.
    fn logged_in(&self);
}
