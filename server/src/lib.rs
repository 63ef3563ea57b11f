//! `papo-server`: Papo's chat server as a library, so tests and the load generator can run
//! the real thing in-process on an ephemeral port.
//!
//! One thread per connection reads requests; writes go through per-connection bounded
//! queues drained by non-blocking sends and one shared writer thread (`outbox.rs`); sled
//! stores everything behind [`store`], with group commit so that every acknowledged message
//! is durable without an fsync per message. Connections are TLS ([`tls`]) unless the server
//! runs with `--plaintext`.

pub mod admin;
mod auth;
mod chat;
pub mod clock;
mod config;
mod deadline;
mod hub;
pub mod limits;
mod outbox;
mod server;
mod session;
mod shutdown;
pub mod store;
pub mod testing;
mod throttle;
pub mod tls;

pub use config::Config;
pub use server::{run, ServerError};
pub use shutdown::Shutdown;
pub use throttle::ThrottlePolicy;
