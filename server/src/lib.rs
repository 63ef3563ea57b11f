//! `papo-server`: Papo's chat server as a library, so tests can run the real thing
//! in-process, on an ephemeral port or over an in-memory connection.
//!
//! Layers, each importing only those below it:
//! - `server.rs` starts and stops the server and accepts connections, which `tcp.rs` turns
//!   into sessions (TLS via [`tls`] unless the server runs with `--plaintext`);
//! - `session.rs` reads a connection's requests, pipelines its sends and carries out what
//!   the handlers return, over any transport (`transport.rs`: the socket and its outbox, or
//!   `memory.rs` in tests);
//! - `handlers/` does what each request asks, given a context (store, hub, limits,
//!   settings, clock) and no socket;
//! - under them `hub.rs` (who is online), `outbox.rs` (bounded queues drained by
//!   non-blocking sends and one writer thread), [`store`] (sled behind a write-ahead log,
//!   with group commit so every acknowledged message is durable without an fsync per
//!   message), and small helpers with a home of their own: `frames.rs` (encoding),
//!   `errors.rs` (store errors as replies), `clock.rs`;
//! - beside them `announce.rs` tells the LAN where the server is (mDNS/DNS-SD).

pub mod admin;
mod announce;
pub mod clock;
mod config;
mod deadline;
mod errors;
#[cfg(test)]
mod fixture;
mod frames;
mod handlers;
mod hub;
pub mod limits;
#[cfg(any(test, feature = "test-support"))]
mod memory;
mod outbox;
mod server;
mod session;
mod shared;
mod shutdown;
pub mod store;
mod tcp;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod tls;
mod transport;

pub use announce::host_name;
pub use config::{Config, Registration, RegistrationPolicy};
pub use limits::{LimitPolicy, LimitsDial};
pub use server::{run, ServerError};
pub use shutdown::Shutdown;
