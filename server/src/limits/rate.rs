//! Rate limits by key: attempts in a sliding window (logins, registrations) and a token
//! bucket (messages), each answering how long to wait when the limit is reached.
//!
//! Both forget keys that went quiet, so an attacker cycling through names or addresses makes
//! the tables grow only up to a bound, never without one.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Above this many keys, those with nothing left to remember are dropped.
const PRUNE_ABOVE: usize = 50_000;

/// At most `limit` attempts per key within any `span`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Attempts allowed.
    pub limit: usize,
    /// Over how long.
    pub span: Duration,
}

/// Counts attempts per key in a sliding window.
#[derive(Debug)]
pub struct Attempts<K> {
    /// Attempts allowed per `span` (in nanoseconds): atomics, so that SIGHUP can change the
    /// window while serving.
    limit: AtomicUsize,
    span_nanos: AtomicU64,
    keys: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: Hash + Eq + Clone> Attempts<K> {
    /// A limiter with `window`.
    pub fn new(window: Window) -> Self {
        let limiter =
            Self { limit: AtomicUsize::default(), span_nanos: AtomicU64::default(), keys: Mutex::default() };
        limiter.set_window(window);
        limiter
    }

    /// Allows `window` from now on; what was counted stays counted (none was while the limit
    /// was off).
    pub fn set_window(&self, window: Window) {
        let nanos = u64::try_from(window.span.as_nanos()).unwrap_or(u64::MAX);
        self.span_nanos.store(nanos, Ordering::Relaxed);
        self.limit.store(window.limit, Ordering::Relaxed);
    }

    /// Counts an attempt for `key` now, or says how long until one is allowed. Counting
    /// comes first, before the work it guards, so that attempts made at once cannot all
    /// slip through a check that only counted them afterwards.
    pub fn attempt(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let limit = self.limit.load(Ordering::Relaxed);
        if limit == usize::MAX {
            // No limit: nothing to remember (a load generator's millions of logins).
            return Ok(());
        }
        let span = Duration::from_nanos(self.span_nanos.load(Ordering::Relaxed));
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.len() > PRUNE_ABOVE {
            keys.retain(|_, times| times.back().is_some_and(|&last| now.duration_since(last) < span));
        }
        let times = keys.entry(key.clone()).or_default();
        while times.front().is_some_and(|&first| now.duration_since(first) >= span) {
            times.pop_front();
        }
        if times.len() >= limit {
            // A limit lowered to zero leaves nothing counted to wait for: a whole span.
            let Some(&oldest) = times.front() else { return Err(span.max(Duration::from_secs(1))) };
            return Err((oldest + span).saturating_duration_since(now).max(Duration::from_secs(1)));
        }
        times.push_back(now);
        Ok(())
    }

    /// Takes back the newest attempt of `key` (one that turned out not to count, such as a
    /// successful login).
    pub fn refund(&self, key: &K) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(times) = keys.get_mut(key) {
            times.pop_back();
            if times.is_empty() {
                keys.remove(key);
            }
        }
    }

    /// Forgets every attempt of `key`.
    pub fn forget(&self, key: &K) {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

/// A token bucket per key: `rate` a second on average, up to `burst` at once.
#[derive(Debug)]
pub struct Bucket<K> {
    /// `rate` and `burst` as `f64` bits: atomics, so that SIGHUP can change them while
    /// serving.
    rate: AtomicU64,
    burst: AtomicU64,
    keys: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Clone> Bucket<K> {
    /// A bucket refilling `rate` tokens a second, holding at most `burst`.
    pub fn new(rate: f64, burst: f64) -> Self {
        let bucket = Self { rate: AtomicU64::default(), burst: AtomicU64::default(), keys: Mutex::default() };
        bucket.set(rate, burst);
        bucket
    }

    /// Refills `rate` tokens a second up to `burst` from now on; a key's tokens above the new
    /// `burst` go at its next take.
    pub fn set(&self, rate: f64, burst: f64) {
        self.rate.store(rate.to_bits(), Ordering::Relaxed);
        self.burst.store(burst.max(1.0).to_bits(), Ordering::Relaxed);
    }

    /// Takes a token for `key`, or says how long until one is there.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let rate = f64::from_bits(self.rate.load(Ordering::Relaxed));
        let burst = f64::from_bits(self.burst.load(Ordering::Relaxed));
        if burst.is_infinite() {
            // No limit (and no infinite arithmetic to go wrong).
            return Ok(());
        }
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.len() > PRUNE_ABOVE {
            keys.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = keys.entry(key.clone()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - *tokens) / rate.max(f64::MIN_POSITIVE)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_counted_before_and_refunded_after() {
        let limiter = Attempts::new(Window { limit: 3, span: Duration::from_secs(60) });
        let start = Instant::now();
        for _ in 0..3 {
            limiter.attempt(&"ana", start).unwrap();
        }
        let wait = limiter.attempt(&"ana", start + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50), "until the oldest attempt leaves the window");
        assert!(limiter.attempt(&"bob", start).is_ok(), "keys are apart");
        limiter.refund(&"ana");
        assert!(limiter.attempt(&"ana", start + Duration::from_secs(10)).is_ok());
        assert!(limiter.attempt(&"ana", start + Duration::from_secs(61)).is_ok(), "the window slides");
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let bucket = Bucket::new(10.0, 5.0);
        let start = Instant::now();
        for _ in 0..5 {
            bucket.take(&1, start).unwrap();
        }
        let wait = bucket.take(&1, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(bucket.take(&1, start + Duration::from_millis(100)).is_ok());
        assert!(bucket.take(&1, start + Duration::from_millis(100)).is_err());
        assert!(bucket.take(&2, start).is_ok(), "keys are apart");
    }

    #[test]
    fn a_new_window_applies_to_the_attempts_that_follow() {
        let limiter = Attempts::new(Window { limit: usize::MAX, span: Duration::from_secs(1) });
        let start = Instant::now();
        for _ in 0..10 {
            limiter.attempt(&"ana", start).unwrap();
        }
        limiter.set_window(Window { limit: 2, span: Duration::from_secs(60) });
        limiter.attempt(&"ana", start).expect("nothing was counted while the limit was off");
        limiter.attempt(&"ana", start).unwrap();
        let wait = limiter.attempt(&"ana", start + Duration::from_secs(30)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(30), "the new span");
    }

    #[test]
    fn quiet_keys_are_forgotten_past_the_bound() {
        let limiter = Attempts::new(Window { limit: 1, span: Duration::from_secs(1) });
        let start = Instant::now();
        for key in 0..=PRUNE_ABOVE {
            limiter.attempt(&key, start).unwrap();
        }
        limiter.attempt(&usize::MAX, start + Duration::from_secs(2)).unwrap();
        assert_eq!(limiter.keys.lock().unwrap().len(), 1);
    }
}
