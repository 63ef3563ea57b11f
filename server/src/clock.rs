//! The server's one clock, in the protocol's unit and as an instant for intervals.
//!
//! Request handlers read the time through [`Clock`] in their context, so their tests move
//! time forward (an expired token, a lockout that ends) instead of sleeping.

use std::fmt::Debug;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use papo_protocol::UnixMillis;

/// The current time as the protocol carries it.
pub fn now_millis() -> UnixMillis {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Where handlers get the time from.
pub(crate) trait Clock: Debug + Send + Sync {
    /// Wall-clock time, for timestamps and expiry dates that outlive the process.
    fn now_millis(&self) -> UnixMillis;
    /// Monotonic time, for intervals such as login throttling.
    fn instant(&self) -> Instant;
}

/// The system's clocks.
#[derive(Debug, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> UnixMillis {
        now_millis()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

#[cfg(test)]
pub(crate) use manual::ManualClock;

#[cfg(test)]
mod manual {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use papo_protocol::UnixMillis;

    use super::Clock;

    /// A clock that moves only when a test says so, and can be told to panic, to see what a
    /// panicking handler leaves behind.
    #[derive(Debug)]
    pub(crate) struct ManualClock {
        start_millis: UnixMillis,
        start: Instant,
        advanced_ms: AtomicU64,
        panics: AtomicBool,
    }

    impl ManualClock {
        /// Starts at the real time.
        pub fn new() -> Self {
            Self {
                start_millis: super::now_millis(),
                start: Instant::now(),
                advanced_ms: AtomicU64::new(0),
                panics: AtomicBool::new(false),
            }
        }

        /// Moves both clocks forward.
        pub fn advance(&self, by: Duration) {
            let ms = u64::try_from(by.as_millis()).expect("a test advances by less than u64 ms");
            self.advanced_ms.fetch_add(ms, Ordering::SeqCst);
        }

        /// Makes every later reading panic.
        pub fn panic_from_now_on(&self) {
            self.panics.store(true, Ordering::SeqCst);
        }

        fn advanced(&self) -> Duration {
            assert!(!self.panics.load(Ordering::SeqCst), "the test clock was told to panic");
            Duration::from_millis(self.advanced_ms.load(Ordering::SeqCst))
        }
    }

    impl Clock for ManualClock {
        fn now_millis(&self) -> UnixMillis {
            let advanced =
                i64::try_from(self.advanced().as_millis()).expect("a test advances by less than i64 ms");
            self.start_millis + advanced
        }

        fn instant(&self) -> Instant {
            self.start + self.advanced()
        }
    }
}
