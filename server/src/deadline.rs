//! Cuts off connections that have not finished their handshake (TLS and `Hello`) in time.
//!
//! A read timeout alone restarts with every byte, so a client trickling one byte every few
//! seconds could hold a connection thread for ever without saying who it is. One thread
//! watches every opening connection and shuts its socket down at its deadline; the session
//! then ends as if the peer had hung up.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

use tracing::info;

/// The watcher thread and the connections it watches.
#[derive(Debug, Default)]
pub struct HandshakeDeadlines {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    watched: HashMap<u64, (Instant, Arc<TcpStream>)>,
    stopping: bool,
}

impl HandshakeDeadlines {
    /// Starts the watcher thread.
    pub fn start() -> io::Result<Arc<Self>> {
        let deadlines = Arc::new(Self::default());
        let watching = Arc::clone(&deadlines);
        thread::Builder::new().name("handshake-deadlines".into()).spawn(move || watching.run())?;
        Ok(deadlines)
    }

    /// Shuts `stream` down at `deadline` unless [`HandshakeDeadlines::done`] comes first.
    pub fn watch(&self, session: u64, deadline: Instant, stream: Arc<TcpStream>) {
        self.lock().watched.insert(session, (deadline, stream));
        self.changed.notify_one();
    }

    /// The session finished its handshake (or ended); stop watching it.
    pub fn done(&self, session: u64) {
        self.lock().watched.remove(&session);
    }

    /// Ends the watcher thread.
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.changed.notify_one();
    }

    fn run(&self) {
        let mut state = self.lock();
        while !state.stopping {
            let now = Instant::now();
            state.watched.retain(|_, (deadline, stream)| {
                let expired = *deadline <= now;
                if expired {
                    info!(peer = ?stream.peer_addr().ok(), "handshake not finished in time; closing");
                    let _ = stream.shutdown(Shutdown::Both);
                }
                !expired
            });
            // Sleep until the earliest deadline, or until something is watched or stopping.
            state = match state.watched.values().map(|(deadline, _)| *deadline).min() {
                Some(next) => {
                    let wait = next.saturating_duration_since(Instant::now());
                    self.changed.wait_timeout(state, wait).unwrap_or_else(PoisonError::into_inner).0
                }
                None => self.changed.wait(state).unwrap_or_else(PoisonError::into_inner),
            };
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
