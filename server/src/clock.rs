//! The server's one clock, in the protocol's unit.

use std::time::{SystemTime, UNIX_EPOCH};

use papo_protocol::UnixMillis;

/// The current time as the protocol carries it.
pub fn now_millis() -> UnixMillis {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}
