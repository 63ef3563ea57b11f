//! What every session shares, whatever carries its bytes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::clock::Clock;
use crate::handlers::{Context, TypingGate};
use crate::hub::Hub;
use crate::limits::{Limits, PasswordPool};
use crate::store::Store;
use crate::Config;

/// The store, the hub and the settings that sessions share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub store: Store,
    /// Shared with the committer thread too, which delivers durable messages.
    pub hub: Arc<Hub>,
    pub limits: Arc<Limits>,
    /// Where every bcrypt hash and check runs, fairly between addresses.
    pub passwords: PasswordPool,
    /// Verified against when a login names an unknown user, so it costs the same.
    pub dummy_hash: String,
    pub clock: Arc<dyn Clock>,
    /// Which typing events are relayed.
    pub typing: TypingGate,
    next_session: AtomicU64,
}

impl AsRef<Store> for Shared {
    fn as_ref(&self) -> &Store {
        &self.store
    }
}

impl Shared {
    /// Sessions' shared state around an open store.
    pub fn new(
        config: Config,
        store: Store,
        dummy_hash: String,
        clock: Arc<dyn Clock>,
        passwords: PasswordPool,
    ) -> Self {
        let limits = Arc::new(Limits::new(config.limits));
        config.limits_dial.attach(&limits);
        passwords.attach_to(&config.limits_dial);
        Self {
            limits,
            passwords,
            hub: Arc::new(Hub::default()),
            config,
            store,
            dummy_hash,
            clock,
            typing: TypingGate::default(),
            next_session: AtomicU64::new(1),
        }
    }

    /// A number no other session of this server has.
    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// What the handlers see, for the session `session` of a client at `peer`.
    pub fn context(&self, session: u64, peer: SocketAddr) -> Context<'_> {
        Context {
            store: &self.store,
            hub: &self.hub,
            limits: &self.limits,
            passwords: &self.passwords,
            config: &self.config,
            clock: &*self.clock,
            dummy_hash: &self.dummy_hash,
            typing: &self.typing,
            session,
            peer,
        }
    }
}
