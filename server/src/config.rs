//! Server settings, with the defaults the command line starts from.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::limits::{LimitPolicy, LimitsDial};
use crate::store::StoreOptions;
use crate::tls::TlsMode;

/// Everything `run` needs to know besides the listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the sled database (and a generated TLS certificate) lives.
    pub data_dir: PathBuf,
    /// Where the TLS certificate comes from, or whether TLS is off.
    pub tls: TlsMode,
    /// bcrypt cost for new password hashes (each step doubles the work).
    pub bcrypt_cost: u32,
    /// Connections served at once; more are told the server is full.
    pub max_connections: usize,
    /// A connection with no request (not even a Ping) for this long is dropped.
    pub idle_timeout: Duration,
    /// Time a new connection has to say Hello.
    pub handshake_timeout: Duration,
    /// Unsent bytes a connection may have queued before it is closed as too slow.
    pub outbox_limit: usize,
    /// Stack size of each connection thread; small, so thousands fit.
    pub thread_stack_size: usize,
    /// What one client may cost: login attempts, registrations, messages, connections that
    /// have not logged in, password hashing. The server starts with it; SIGHUP changes the
    /// running server's through `limits_dial`.
    pub limits: LimitPolicy,
    /// How long a resume token stays valid.
    pub token_lifetime: Duration,
    /// Write-ahead log segments and group commit.
    pub store: StoreOptions,
    /// The instance name to announce the server under on the LAN (mDNS/DNS-SD), or `None`
    /// not to announce it. A server listening on loopback is never announced.
    pub announce_as: Option<String>,
    /// Who may create an account; shared, so that SIGHUP can change it while serving.
    pub registration: Arc<RegistrationPolicy>,
    /// Reaches the running server's limits, so that SIGHUP can change those `limits` started
    /// with (all but the password pool's threads).
    pub limits_dial: Arc<LimitsDial>,
}

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Registration {
    /// Anyone who reaches the server.
    Open,
    /// Only with an invite code from `papo-server admin invite create`.
    Invite,
    /// No one; the administrator's accounts stay as they are.
    Closed,
}

/// The registration policy in force, changed while serving by SIGHUP.
#[derive(Debug)]
pub struct RegistrationPolicy(AtomicU8);

impl RegistrationPolicy {
    /// The policy `registration`.
    pub fn new(registration: Registration) -> Self {
        Self(AtomicU8::new(registration as u8))
    }

    /// The policy now.
    pub fn get(&self) -> Registration {
        match self.0.load(Ordering::Acquire) {
            0 => Registration::Open,
            1 => Registration::Invite,
            _ => Registration::Closed,
        }
    }

    /// Puts `registration` in force for the registrations that follow.
    pub fn set(&self, registration: Registration) {
        self.0.store(registration as u8, Ordering::Release);
    }
}

impl Config {
    /// The production defaults, storing data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            tls: TlsMode::SelfSigned,
            bcrypt_cost: 12,
            max_connections: 10_000,
            idle_timeout: Duration::from_secs(90),
            handshake_timeout: Duration::from_secs(10),
            outbox_limit: 1 << 20,
            thread_stack_size: 256 * 1024,
            limits: LimitPolicy::default(),
            token_lifetime: Duration::from_secs(30 * 24 * 60 * 60),
            store: StoreOptions::default(),
            announce_as: None,
            registration: Arc::new(RegistrationPolicy::new(Registration::Open)),
            limits_dial: Arc::default(),
        }
    }
}
