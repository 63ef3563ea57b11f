//! Login throttling per account name, against password guessing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How many failures, over what window, lock an account name for how long.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failures within `window` that trigger a lockout.
    pub max_failures: usize,
    /// Span over which failures count.
    pub window: Duration,
    /// How long logins are refused once locked.
    pub lockout: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self { max_failures: 5, window: Duration::from_secs(60), lockout: Duration::from_secs(60) }
    }
}

/// Counts failed logins per name, whether or not the name exists, so a lockout reveals
/// nothing about which accounts are real.
#[derive(Debug)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Default)]
struct Entry {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

/// Above this many tracked names, stale entries are pruned on the next failure.
const PRUNE_ABOVE: usize = 10_000;

impl LoginThrottle {
    /// A throttle with `policy`.
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self { policy, entries: Mutex::new(HashMap::new()) }
    }

    /// `Err(wait)` while `name` is locked out.
    pub fn check(&self, name: &str, now: Instant) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(name).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failed login for `name`.
    pub fn record_failure(&self, name: &str, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() > PRUNE_ABOVE {
            let window = self.policy.window;
            entries.retain(|_, e| {
                e.locked_until.is_some_and(|until| until > now)
                    || e.failures.back().is_some_and(|&last| now.duration_since(last) < window)
            });
        }
        let entry = entries.entry(name.to_owned()).or_default();
        while entry.failures.front().is_some_and(|&first| now.duration_since(first) >= self.policy.window) {
            entry.failures.pop_front();
        }
        entry.failures.push_back(now);
        if entry.failures.len() >= self.policy.max_failures {
            entry.locked_until = Some(now + self.policy.lockout);
            entry.failures.clear();
        }
    }

    /// Forgets the failures of `name` after a successful login.
    pub fn record_success(&self, name: &str) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_then_releases() {
        let throttle = LoginThrottle::new(ThrottlePolicy::default());
        let start = Instant::now();
        for i in 0..4 {
            throttle.record_failure("ana", start + Duration::from_secs(i));
            assert!(throttle.check("ana", start + Duration::from_secs(i)).is_ok());
        }
        throttle.record_failure("ana", start + Duration::from_secs(4));
        let wait = throttle.check("ana", start + Duration::from_secs(5)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(59));
        assert!(throttle.check("bob", start).is_ok());
        assert!(throttle.check("ana", start + Duration::from_secs(65)).is_ok());
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let throttle = LoginThrottle::new(ThrottlePolicy::default());
        let start = Instant::now();
        for i in 0..10 {
            throttle.record_failure("ana", start + Duration::from_secs(i * 20));
        }
        assert!(throttle.check("ana", start + Duration::from_secs(200)).is_ok());
    }
}
