//! A connection in memory: a session served over two byte queues instead of a socket, so
//! tests drive sessions without TCP and the fuzz target runs one per input in-process.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use papo_protocol::FrameReader;

use crate::session::Session;
use crate::shared::Shared;
use crate::transport::{Inbound, PushError, Sink};

/// Where memory sessions say they are from, in the logs.
pub(crate) const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// One direction of a connection: bytes written and not yet read.
///
/// As the session's [`Sink`] it behaves as an outbox does: a push past `limit` unread
/// bytes closes it, and what was queued before a close can still be read.
#[derive(Debug)]
pub(crate) struct Pipe {
    state: Mutex<State>,
    changed: Condvar,
    limit: usize,
}

#[derive(Debug, Default)]
struct State {
    bytes: VecDeque<u8>,
    closed: bool,
}

impl Pipe {
    /// An open pipe that holds at most `limit` unread bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { state: Mutex::default(), changed: Condvar::new(), limit })
    }

    /// Adds bytes unless the pipe is closed.
    pub fn write(&self, bytes: &[u8]) -> Result<(), PushError> {
        let mut state = self.lock();
        if state.closed {
            return Err(PushError::Closed);
        }
        state.bytes.extend(bytes);
        self.changed.notify_all();
        Ok(())
    }

    /// Moves up to `out.len()` bytes out, waiting up to `timeout` (for ever if `None`) for
    /// some: `Ok(0)` once the pipe is closed and empty, a `TimedOut` error if none came.
    pub fn read(&self, out: &mut [u8], timeout: Option<Duration>) -> io::Result<usize> {
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        let mut state = self.lock();
        while state.bytes.is_empty() && !state.closed {
            state = match deadline {
                None => self.changed.wait(state).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline
                        .checked_duration_since(Instant::now())
                        .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))?;
                    self.changed.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
        let n = out.len().min(state.bytes.len());
        for (slot, byte) in out.iter_mut().zip(state.bytes.drain(..n)) {
            *slot = byte;
        }
        self.changed.notify_all();
        Ok(n)
    }

    /// Whether the pipe is closed (what is in it may still be read).
    #[cfg(test)]
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sink for Pipe {
    fn push(&self, frames: &[u8]) -> Result<(), PushError> {
        self.write(frames)?;
        if self.lock().bytes.len() > self.limit {
            self.close();
            return Err(PushError::Overflow);
        }
        Ok(())
    }

    fn push_when_room(&self, frames: &[u8], timeout: Duration) -> Result<(), PushError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while !state.closed && state.bytes.len() + frames.len() > self.limit / 2 {
            let left = deadline.checked_duration_since(Instant::now()).ok_or(PushError::TimedOut)?;
            state = self.changed.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        drop(state);
        self.push(frames)
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

/// The session's end of the pipe from its client, timing out as a socket would.
#[derive(Debug)]
pub(crate) struct MemoryInbound {
    pipe: Arc<Pipe>,
    timeout: Mutex<Duration>,
}

impl MemoryInbound {
    /// Reads `pipe`, at first with the handshake's timeout.
    pub fn new(pipe: Arc<Pipe>, handshake_timeout: Duration) -> Self {
        Self { pipe, timeout: Mutex::new(handshake_timeout) }
    }
}

impl Read for MemoryInbound {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let timeout = *self.timeout.lock().unwrap_or_else(PoisonError::into_inner);
        self.pipe.read(out, Some(timeout))
    }
}

impl Inbound for MemoryInbound {
    fn handshaken(&self, idle: Duration, _login_by: Duration) {
        *self.timeout.lock().unwrap_or_else(PoisonError::into_inner) = idle;
    }

    fn logged_in(&self) {}
}

/// Serves one session on this thread over `input`, which the client then closes, and
/// returns every byte the session sent, its queue never filling.
pub(crate) fn serve_to_end(shared: &Shared, input: &[u8]) -> Vec<u8> {
    let (to_server, from_server) = (Pipe::new(usize::MAX), Pipe::new(usize::MAX));
    to_server.write(input).expect("a new pipe is open");
    to_server.close();
    let inbound = MemoryInbound::new(to_server, shared.config.handshake_timeout);
    Session::new(shared, PEER, Arc::clone(&from_server) as _).run(&mut FrameReader::new(inbound));
    let mut output = vec![0; from_server.lock().bytes.len()];
    let read = from_server.read(&mut output, Some(Duration::ZERO)).unwrap_or(0);
    output.truncate(read);
    output
}
