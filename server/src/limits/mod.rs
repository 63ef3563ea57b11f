//! What one client may cost the server, so that no client can keep the others out: password
//! hashing in a fair pool ([`password_pool`]), attempts and messages by rate ([`rate`]), and
//! connections that have not logged in by address and in total ([`Admission`]).

pub mod password_pool;
pub mod rate;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use papo_protocol::Username;

pub use password_pool::{workers_for_this_machine, Busy, PasswordPool, PoolLimits};
use rate::{Attempts, Bucket, Window};

/// Every limit, with the defaults a LAN server starts with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitPolicy {
    /// Login attempts for one name from one address: the owner's own machine is limited
    /// only by its own mistakes.
    pub logins_per_address_and_name: Window,
    /// Login attempts from one address, any names.
    pub logins_per_address: Window,
    /// Login attempts for one name from anywhere: high, against a guesser spread over many
    /// machines (it locks the owner out too, but only under such an attack).
    pub logins_per_name: Window,
    /// Accounts created from one address.
    pub registrations_per_address: Window,
    /// Messages one user may send a second, on average.
    pub messages_per_second: f64,
    /// And at once.
    pub message_burst: f64,
    /// Failed or refused logins after which a connection is closed.
    pub failed_logins_per_connection: u32,
    /// How long a login refused by a limit waits for its answer.
    pub refused_login_pause: Duration,
    /// Password checks of one address that may wait while one of its checks runs; more
    /// are refused at once.
    pub password_checks_waiting_per_address: usize,
    /// Time a connection has from its handshake to log in; `Ping` does not extend it.
    pub login_deadline: Duration,
    /// Connections not logged in from one address.
    pub unauthenticated_per_address: usize,
    /// Connections not logged in at all, in percent of the connection cap: the rest is kept
    /// for logged-in users and for logins.
    pub unauthenticated_percent: u8,
    /// Threads of the password pool: about one per core, so that guessing cannot take every
    /// core (fixed when the server starts).
    pub password_threads: usize,
}

impl Default for LimitPolicy {
    /// Generous for people, tight for scripts: five tries a minute at one's own password,
    /// twenty messages a second with bursts of two hundred (a human never sends more; a
    /// paste is one message), half a minute to log in.
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            logins_per_address_and_name: Window { limit: 5, span: minute },
            logins_per_address: Window { limit: 30, span: minute },
            logins_per_name: Window { limit: 100, span: 10 * minute },
            registrations_per_address: Window { limit: 10, span: 60 * minute },
            messages_per_second: 20.0,
            message_burst: 200.0,
            failed_logins_per_connection: 3,
            refused_login_pause: Duration::from_secs(1),
            password_checks_waiting_per_address: 4,
            login_deadline: Duration::from_secs(30),
            unauthenticated_per_address: 32,
            unauthenticated_percent: 50,
            password_threads: workers_for_this_machine(),
        }
    }
}

impl LimitPolicy {
    /// Limits a load generator or a test can live with: it sends as fast as it can from one
    /// address.
    pub fn unlimited() -> Self {
        let huge = Window { limit: usize::MAX, span: Duration::from_secs(1) };
        Self {
            logins_per_address_and_name: huge,
            logins_per_address: huge,
            logins_per_name: huge,
            registrations_per_address: huge,
            messages_per_second: f64::INFINITY,
            message_burst: f64::INFINITY,
            failed_logins_per_connection: u32::MAX,
            refused_login_pause: Duration::ZERO,
            // A load generator registers and logs in many users at once from one address:
            // they wait their turn, fairly, instead of being refused.
            password_checks_waiting_per_address: usize::MAX,
            unauthenticated_per_address: usize::MAX,
            unauthenticated_percent: 100,
            ..Self::default()
        }
    }
}

/// The limiters one server shares between its sessions, and the policy they keep.
#[derive(Debug)]
pub struct Limits {
    /// The policy in force: SIGHUP replaces it while serving.
    policy: RwLock<LimitPolicy>,
    by_address_and_name: Attempts<(IpAddr, String)>,
    by_address: Attempts<IpAddr>,
    by_name: Attempts<String>,
    registrations: Attempts<IpAddr>,
    messages: Bucket<Username>,
}

/// A login attempt that was counted; [`Limits::login_succeeded`] takes it back.
#[derive(Debug)]
pub struct LoginAttempt {
    address: IpAddr,
    name: String,
}

impl Limits {
    /// Limiters with `policy`.
    pub fn new(policy: LimitPolicy) -> Self {
        Self {
            policy: RwLock::new(policy),
            by_address_and_name: Attempts::new(policy.logins_per_address_and_name),
            by_address: Attempts::new(policy.logins_per_address),
            by_name: Attempts::new(policy.logins_per_name),
            registrations: Attempts::new(policy.registrations_per_address),
            messages: Bucket::new(policy.messages_per_second, policy.message_burst),
        }
    }

    /// The policy in force, for the limits a session keeps itself (its deadline to log in,
    /// its failed logins).
    pub fn policy(&self) -> LimitPolicy {
        *self.policy.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a login attempt for `name` (folded to lower case, whether or not it exists)
    /// from `address`, before any password is checked; `Err(wait)` if one of its limits is
    /// reached.
    pub fn login(&self, address: IpAddr, name: &str, now: Instant) -> Result<LoginAttempt, Duration> {
        let name = name.to_ascii_lowercase();
        let pair = (address, name.clone());
        self.by_address_and_name.attempt(&pair, now)?;
        if let Err(wait) = self.by_address.attempt(&address, now) {
            self.by_address_and_name.refund(&pair);
            return Err(wait);
        }
        if let Err(wait) = self.by_name.attempt(&name, now) {
            self.by_address_and_name.refund(&pair);
            self.by_address.refund(&address);
            return Err(wait);
        }
        Ok(LoginAttempt { address, name })
    }

    /// A counted login turned out right: it does not count against anyone, and the owner's
    /// earlier typos from this machine are forgiven. Only those: forgetting the address's
    /// other failures would let a guesser reset its limit by logging in to an account of
    /// its own between guesses.
    pub fn login_succeeded(&self, attempt: LoginAttempt) {
        let LoginAttempt { address, name } = attempt;
        self.by_address.refund(&address);
        self.by_name.refund(&name);
        self.by_address_and_name.forget(&(address, name));
    }

    /// A counted login whose password was never checked (the password pool had no room):
    /// it was no guess, so it does not count.
    pub fn login_unchecked(&self, attempt: LoginAttempt) {
        let LoginAttempt { address, name } = attempt;
        self.by_address.refund(&address);
        self.by_name.refund(&name);
        self.by_address_and_name.refund(&(address, name));
    }

    /// Counts a registration from `address`.
    pub fn register(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        self.registrations.attempt(&address, now)
    }

    /// Takes a message from `sender`'s allowance.
    pub fn message(&self, sender: &Username, now: Instant) -> Result<(), Duration> {
        self.messages.take(sender, now)
    }
}

/// A part of a running server that keeps limits of the policy, and takes a new policy while
/// serving.
pub(crate) trait Retune: Send + Sync {
    /// Puts `policy` in force for what follows; what was counted so far stays counted.
    fn retune(&self, policy: &LimitPolicy);
}

impl Retune for Limits {
    fn retune(&self, policy: &LimitPolicy) {
        *self.policy.write().unwrap_or_else(PoisonError::into_inner) = *policy;
        self.by_address_and_name.set_window(policy.logins_per_address_and_name);
        self.by_address.set_window(policy.logins_per_address);
        self.by_name.set_window(policy.logins_per_name);
        self.registrations.set_window(policy.registrations_per_address);
        self.messages.set(policy.messages_per_second, policy.message_burst);
    }
}

/// Reaches the parts of a running server that keep limits ([`Limits`], [`Admission`], the
/// password pool) from outside it, so that SIGHUP can retune them; shared through
/// [`crate::Config`] like the registration policy.
#[derive(Default)]
pub struct LimitsDial(Mutex<Vec<Weak<dyn Retune>>>);

impl std::fmt::Debug for LimitsDial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = self.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("LimitsDial").field("parts", &parts).finish()
    }
}

impl LimitsDial {
    /// Connects the dial to one part of a server.
    pub(crate) fn attach<P: Retune + 'static>(&self, part: &Arc<P>) {
        let part: Weak<P> = Arc::downgrade(part);
        let mut parts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Servers restarted from one configuration (tests do) leave no trail of stopped parts.
        parts.retain(|part| part.strong_count() > 0);
        parts.push(part as Weak<dyn Retune>);
    }

    /// Retunes every part still running to `policy` (see [`Retune::retune`]); false if no
    /// server is running with them.
    pub fn retune(&self, policy: &LimitPolicy) -> bool {
        let mut parts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // A stopped server's parts are gone.
        parts.retain(|part| part.strong_count() > 0);
        for part in parts.iter().filter_map(Weak::upgrade) {
            part.retune(policy);
        }
        !parts.is_empty()
    }
}

/// Connections that have not logged in yet, by address and in total.
#[derive(Debug)]
pub struct Admission {
    max_connections: usize,
    /// The room in force, by address and in total: atomics, so that SIGHUP can change it for
    /// the next connection while serving.
    per_address: AtomicUsize,
    total: AtomicUsize,
    counts: Mutex<(HashMap<IpAddr, usize>, usize)>,
}

/// A connection's place among those not logged in; given back on drop or at login.
#[derive(Debug)]
pub struct Unauthenticated {
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Admission {
    /// Room for `policy`'s share of `max_connections`.
    pub fn new(policy: &LimitPolicy, max_connections: usize) -> Arc<Self> {
        let admission = Self {
            max_connections,
            per_address: AtomicUsize::default(),
            total: AtomicUsize::default(),
            counts: Mutex::default(),
        };
        admission.retune(policy);
        Arc::new(admission)
    }

    /// A place for a new connection from `address`, if its address and the server have room.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Unauthenticated> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let (by_address, total) = &mut *counts;
        let mine = by_address.entry(address).or_default();
        if *mine >= self.per_address.load(Ordering::Relaxed) || *total >= self.total.load(Ordering::Relaxed) {
            if *mine == 0 {
                by_address.remove(&address);
            }
            return None;
        }
        *mine += 1;
        *total += 1;
        Some(Unauthenticated { admission: Arc::clone(self), address })
    }
}

impl Retune for Admission {
    /// The connections already admitted stay; the next one is judged by the new room.
    fn retune(&self, policy: &LimitPolicy) {
        let percent = usize::from(policy.unauthenticated_percent.min(100));
        let total = (self.max_connections.saturating_mul(percent) / 100).max(1);
        // One address never gets more than a quarter of the room, or it alone could fill
        // it (with limits off, a load generator may take it all).
        let share = if policy.unauthenticated_per_address == usize::MAX { total } else { total / 4 };
        self.per_address.store(policy.unauthenticated_per_address.min(share).max(1), Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }
}

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        let mut counts = self.admission.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let (by_address, total) = &mut *counts;
        *total -= 1;
        if let Some(mine) = by_address.get_mut(&self.address) {
            *mine -= 1;
            if *mine == 0 {
                by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn guesses_from_one_machine_do_not_lock_the_owner_out_of_hers() {
        let limits = Limits::new(LimitPolicy::default());
        let now = Instant::now();
        for _ in 0..5 {
            limits.login(addr(66), "alice", now).unwrap();
        }
        assert!(limits.login(addr(66), "Alice", now).is_err(), "the guesser is stopped (names fold)");
        let attempt = limits.login(addr(1), "alice", now).expect("the owner's machine is not");
        limits.login_succeeded(attempt);
    }

    #[test]
    fn one_machine_guessing_many_names_is_stopped_and_a_spread_guesser_meets_a_ceiling() {
        let limits = Limits::new(LimitPolicy::default());
        let now = Instant::now();
        let allowed = (0..100).filter(|n| limits.login(addr(66), &format!("user{n}"), now).is_ok()).count();
        assert_eq!(allowed, 30);
        let spread = (0..=255u8).filter(|&a| limits.login(addr(a), "bob", now).is_ok()).count();
        assert_eq!(spread, 100);
    }

    #[test]
    fn successful_and_unchecked_logins_do_not_count() {
        let limits = Limits::new(LimitPolicy::default());
        let now = Instant::now();
        for _ in 0..50 {
            let attempt = limits.login(addr(1), "ana", now).unwrap();
            limits.login_succeeded(attempt);
            let attempt = limits.login(addr(1), "ana", now).unwrap();
            limits.login_unchecked(attempt);
        }
        let counted = (0..50).filter(|_| limits.login(addr(1), "ana", now).is_ok()).count();
        assert_eq!(counted, 5, "the window is still whole");
    }

    #[test]
    fn messages_are_limited_per_sender() {
        let limits = Limits::new(LimitPolicy::default());
        let (ana, bob) = (Username::parse("ana").unwrap(), Username::parse("bob").unwrap());
        let now = Instant::now();
        let sent = (0..1000).filter(|_| limits.message(&ana, now).is_ok()).count();
        assert_eq!(sent, 200);
        assert!(limits.message(&bob, now).is_ok());
        assert!(limits.message(&ana, now + Duration::from_millis(60)).is_ok(), "20 a second come back");
    }

    #[test]
    fn retuning_changes_the_limits_for_what_follows() {
        let limits = Arc::new(Limits::new(LimitPolicy::default()));
        let dial = LimitsDial::default();
        let policy = LimitPolicy {
            registrations_per_address: Window {
                limit: 1,
                ..LimitPolicy::default().registrations_per_address
            },
            messages_per_second: 1.0,
            message_burst: 2.0,
            ..LimitPolicy::default()
        };
        assert!(!dial.retune(&policy), "no server attached yet");
        dial.attach(&limits);
        assert_eq!(limits.policy(), LimitPolicy::default());
        let (ana, now) = (Username::parse("ana").unwrap(), Instant::now());
        limits.register(addr(1), now).unwrap();
        limits.register(addr(1), now).unwrap();
        assert!(limits.message(&ana, now).is_ok(), "a full bucket of 200 before");
        assert!(dial.retune(&policy));
        assert!(limits.register(addr(1), now).is_err(), "two counted, one allowed now");
        assert!(limits.register(addr(2), now).is_ok());
        assert!(limits.register(addr(2), now).is_err());
        let sent = (0..100).filter(|_| limits.message(&ana, now).is_ok()).count();
        assert_eq!(sent, 2, "the bucket is cut down to the new burst");
        assert_eq!(limits.policy(), policy, "what sessions keep themselves changes too");
        let zero = LimitPolicy {
            registrations_per_address: Window {
                limit: 0,
                ..LimitPolicy::default().registrations_per_address
            },
            ..LimitPolicy::default()
        };
        assert!(dial.retune(&zero));
        assert_eq!(limits.register(addr(3), now), Err(Duration::from_secs(3600)));
        drop(limits);
        assert!(!dial.retune(&policy), "the server is gone");
    }

    #[test]
    fn limits_turned_off_and_on_again_count_only_what_came_while_they_were_on() {
        let limits = Arc::new(Limits::new(LimitPolicy::default()));
        let dial = LimitsDial::default();
        dial.attach(&limits);
        let now = Instant::now();
        let guesses = (0..10).filter(|_| limits.login(addr(66), "alice", now).is_ok()).count();
        assert_eq!(guesses, 5);
        assert!(dial.retune(&LimitPolicy::unlimited()));
        assert!((0..100).all(|_| limits.login(addr(66), "alice", now).is_ok()), "off");
        assert!((0..100).all(|_| limits.register(addr(66), now).is_ok()));
        assert!(dial.retune(&LimitPolicy::default()));
        assert!(limits.login(addr(66), "alice", now).is_err(), "the five from before still count");
        let registered = (0..20).filter(|_| limits.register(addr(66), now).is_ok()).count();
        assert_eq!(registered, 10, "none counted while off");
    }

    #[test]
    fn one_address_never_takes_more_than_a_quarter_of_the_room() {
        let admission = Admission::new(&LimitPolicy::default(), 40);
        let held: Vec<_> = (0..40).filter_map(|_| admission.admit(addr(66))).collect();
        assert_eq!(held.len(), 5, "a quarter of half of 40");
        assert!(admission.admit(addr(1)).is_some());
        let unlimited = Admission::new(&LimitPolicy::unlimited(), 40);
        let all: Vec<_> = (0..50).filter_map(|_| unlimited.admit(addr(66))).collect();
        assert_eq!(all.len(), 40);
    }

    #[test]
    fn retuned_room_applies_to_the_next_connection() {
        let admission = Admission::new(&LimitPolicy::default(), 40);
        let dial = LimitsDial::default();
        dial.attach(&admission);
        let held: Vec<_> = (0..10).filter_map(|_| admission.admit(addr(66))).collect();
        assert_eq!(held.len(), 5);
        assert!(dial.retune(&LimitPolicy::unlimited()));
        let more: Vec<_> = (0..50).filter_map(|_| admission.admit(addr(66))).collect();
        assert_eq!(more.len(), 35, "all 40 places with the limits off");
        assert!(dial.retune(&LimitPolicy { unauthenticated_percent: 10, ..LimitPolicy::default() }));
        drop(more);
        assert!(admission.admit(addr(1)).is_none(), "five held fill a tenth of 40 and more");
        drop(held);
        let back: Vec<_> = (0..10).filter_map(|_| admission.admit(addr(1))).collect();
        assert_eq!(back.len(), 1, "a quarter of four");
    }

    #[test]
    fn connections_not_logged_in_are_capped_by_address_and_in_total() {
        let policy = LimitPolicy { unauthenticated_per_address: 3, ..LimitPolicy::default() };
        let admission = Admission::new(&policy, 40);
        let held: Vec<_> = (0..10).filter_map(|_| admission.admit(addr(66))).collect();
        assert_eq!(held.len(), 3);
        let others: Vec<_> = (1..=10).flat_map(|n| [n; 3]).filter_map(|n| admission.admit(addr(n))).collect();
        assert_eq!(others.len(), 17, "half of 40 in total");
        drop(held);
        assert!(admission.admit(addr(66)).is_some(), "places come back");
    }
}
