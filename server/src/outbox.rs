//! Bounded outbound queues, one per connection, drained without a writer thread per connection.
//!
//! Whoever queues a frame (any session's reader thread) writes it at once with a
//! non-blocking send; only what the socket cannot take stays queued, and one shared writer
//! thread finishes those writes when epoll says the socket is writable. A slow or stuck
//! reader therefore never blocks a sender, and a connection whose queue passes its limit is
//! closed (its messages stay in the store for its next login).
//!
//! A TLS connection's state lives under the same lock as its queue: frames are encrypted
//! straight into the queue, so records leave in the order they were sealed, and the
//! session's reader feeds received ciphertext in under that lock (see [`TlsEngine`]) after
//! reading it from the socket without holding it. No lock is ever held across a blocking
//! call.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use papo_protocol::tls::{absorb, read_plaintext, TlsEngine};
use polling::{Event, Events, Poller};
use socket2::SockRef;
use tracing::{debug, warn};

use crate::transport::{PushError, Sink};

/// The shared writer thread and the registry of every open connection's queue.
#[derive(Debug)]
pub struct Writer {
    poller: Poller,
    outboxes: Mutex<HashMap<usize, Weak<Outbox>>>,
    next_key: AtomicUsize,
    stopping: AtomicBool,
}

/// One connection's outbound queue.
#[derive(Debug)]
pub struct Outbox {
    key: usize,
    stream: Arc<TcpStream>,
    writer: Arc<Writer>,
    limit: usize,
    queue: Mutex<Queue>,
    room: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    /// Bytes for the wire (ciphertext under TLS).
    buf: Vec<u8>,
    sent: usize,
    /// Waiting for epoll to report the socket writable.
    armed: bool,
    closed: bool,
    tls: Option<Box<rustls::Connection>>,
}

impl Queue {
    fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Moves the records TLS has sealed into the wire queue.
    fn take_sealed(&mut self) {
        if let Some(tls) = &mut self.tls {
            while tls.wants_write() {
                if tls.write_tls(&mut self.buf).is_err() {
                    break; // Writing into a Vec cannot fail.
                }
            }
        }
    }
}

impl Writer {
    /// Starts the writer thread.
    pub fn start() -> io::Result<Arc<Self>> {
        let writer = Arc::new(Self {
            poller: Poller::new()?,
            outboxes: Mutex::new(HashMap::new()),
            next_key: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        });
        let looping = Arc::clone(&writer);
        thread::Builder::new().name("writer".into()).spawn(move || looping.run())?;
        Ok(writer)
    }

    /// Creates the queue of a new connection, holding at most `limit` unsent bytes, and
    /// encrypting them with `tls` if given.
    pub fn register(
        self: &Arc<Self>,
        stream: Arc<TcpStream>,
        limit: usize,
        tls: Option<Box<rustls::Connection>>,
    ) -> io::Result<Arc<Outbox>> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the `Outbox` owns a reference to the stream and deletes it from the poller
        // in its `Drop`, before that reference (and so possibly the descriptor) goes away.
        unsafe { self.poller.add(&*stream, Event::none(key))? };
        let outbox = Arc::new(Outbox {
            key,
            stream,
            writer: Arc::clone(self),
            limit,
            queue: Mutex::new(Queue { tls, ..Queue::default() }),
            room: Condvar::new(),
        });
        lock(&self.outboxes).insert(key, Arc::downgrade(&outbox));
        Ok(outbox)
    }

    /// Every open connection's queue.
    pub fn outboxes(&self) -> Vec<Arc<Outbox>> {
        lock(&self.outboxes).values().filter_map(Weak::upgrade).collect()
    }

    /// Stops the writer thread.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let _ = self.poller.notify();
    }

    fn run(&self) {
        let mut events = Events::new();
        while !self.stopping.load(Ordering::Acquire) {
            events.clear();
            if let Err(e) = self.poller.wait(&mut events, None) {
                if e.kind() != io::ErrorKind::Interrupted {
                    warn!(error = %e, "waiting for writable sockets failed");
                    thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            for event in events.iter() {
                let outbox = lock(&self.outboxes).get(&event.key).and_then(Weak::upgrade);
                if let Some(outbox) = outbox {
                    outbox.on_writable();
                }
            }
        }
    }
}

impl Sink for Outbox {
    /// Queues encoded frames and writes as much as the socket takes without blocking.
    fn push(&self, frames: &[u8]) -> Result<(), PushError> {
        let mut queue = lock(&self.queue);
        self.push_locked(&mut queue, frames)
    }

    fn push_when_room(&self, frames: &[u8], timeout: Duration) -> Result<(), PushError> {
        let deadline = Instant::now() + timeout;
        let mut queue = lock(&self.queue);
        while !queue.closed && queue.pending() + frames.len() > self.limit / 2 {
            let left = deadline.checked_duration_since(Instant::now()).ok_or(PushError::TimedOut)?;
            queue = self.room.wait_timeout(queue, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        self.push_locked(&mut queue, frames)
    }

    /// Closes the connection in both directions (telling a TLS peer first, if the socket
    /// takes it).
    fn close(&self) {
        let mut queue = lock(&self.queue);
        if let Some(tls) = &mut queue.tls {
            tls.send_close_notify();
            queue.take_sealed();
            if !queue.armed && !queue.closed {
                self.drain(&mut queue);
            }
        }
        self.close_locked(&mut queue);
    }
}

impl Outbox {
    fn push_locked(&self, queue: &mut Queue, frame: &[u8]) -> Result<(), PushError> {
        if queue.closed {
            return Err(PushError::Closed);
        }
        if queue.sent == queue.buf.len() {
            queue.buf.clear();
            queue.sent = 0;
        }
        match &mut queue.tls {
            Some(tls) => {
                if tls.writer().write_all(frame).is_err() {
                    self.close_locked(queue);
                    return Err(PushError::Closed);
                }
                queue.take_sealed();
            }
            None => queue.buf.extend_from_slice(frame),
        }
        if !queue.armed {
            self.drain(queue);
        }
        if queue.closed {
            return Err(PushError::Closed);
        }
        // The limit bounds what the socket could not take, so a large batch to a client
        // that keeps up is fine.
        if queue.pending() > self.limit {
            warn!(peer = ?self.stream.peer_addr().ok(), "client is not reading; closing its connection");
            self.close_locked(queue);
            return Err(PushError::Overflow);
        }
        Ok(())
    }

    fn on_writable(&self) {
        let mut queue = lock(&self.queue);
        queue.armed = false;
        if !queue.closed {
            self.drain(&mut queue);
        }
        self.room.notify_all();
    }

    /// Writes until the queue is empty or the socket is full; arms epoll in the latter case.
    fn drain(&self, queue: &mut Queue) {
        let socket = SockRef::from(&*self.stream);
        while queue.sent < queue.buf.len() {
            match socket.send_with_flags(&queue.buf[queue.sent..], libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) {
                Ok(0) => break,
                Ok(n) => queue.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if queue.sent > queue.buf.len() / 2 {
                        queue.buf.drain(..queue.sent);
                        queue.sent = 0;
                    }
                    match self.writer.poller.modify(&*self.stream, Event::writable(self.key)) {
                        Ok(()) => queue.armed = true,
                        Err(e) => {
                            warn!(error = %e, "cannot wait for a writable socket; closing it");
                            self.close_locked(queue);
                        }
                    }
                    return;
                }
                Err(e) => {
                    debug!(error = %e, "write failed; closing the connection");
                    self.close_locked(queue);
                    return;
                }
            }
        }
        queue.buf.clear();
        queue.sent = 0;
    }

    fn close_locked(&self, queue: &mut Queue) {
        if queue.closed {
            return;
        }
        queue.closed = true;
        queue.buf = Vec::new();
        queue.sent = 0;
        let _ = self.stream.shutdown(Shutdown::Both);
        self.room.notify_all();
    }
}

impl TlsEngine for Outbox {
    fn read_plaintext(&self, out: &mut [u8]) -> io::Result<Option<usize>> {
        match &mut lock(&self.queue).tls {
            Some(tls) => read_plaintext(tls, out),
            None => Err(not_tls()),
        }
    }

    fn feed(&self, ciphertext: &[u8]) -> io::Result<usize> {
        let mut queue = lock(&self.queue);
        if queue.closed {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        let Some(tls) = &mut queue.tls else { return Err(not_tls()) };
        // Handshake records, or an alert after an error: either way they go out now.
        let absorbed = absorb(tls, ciphertext);
        queue.take_sealed();
        if !queue.armed {
            self.drain(&mut queue);
        }
        absorbed
    }
}

/// A plaintext connection's outbox was asked to act as TLS state.
fn not_tls() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "not a TLS connection")
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let _ = self.writer.poller.delete(&*self.stream);
        lock(&self.writer.outboxes).remove(&self.key);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;

    use super::*;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (server, client)
    }

    #[test]
    fn queued_bytes_arrive_in_order_after_the_reader_catches_up() {
        let writer = Writer::start().unwrap();
        let (server, mut client) = pair();
        let outbox = writer.register(Arc::new(server), 64 << 20, None).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        // Far more than the socket buffers hold, so the writer thread must finish the job.
        for _ in 0..128 {
            outbox.push(&chunk).unwrap();
        }
        let mut received = vec![0u8; 128 * chunk.len()];
        client.read_exact(&mut received).unwrap();
        assert!(received.iter().all(|&b| b == 7));
        writer.stop();
    }

    #[test]
    fn a_reader_that_never_reads_overflows_without_blocking_the_pusher() {
        let writer = Writer::start().unwrap();
        let (server, mut client) = pair();
        let outbox = writer.register(Arc::new(server), 256 * 1024, None).unwrap();
        let chunk = vec![1u8; 16 * 1024];
        let started = Instant::now();
        let outcome = (0..10_000).map(|_| outbox.push(&chunk)).find(Result::is_err);
        assert_eq!(outcome, Some(Err(PushError::Overflow)));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(outbox.push(b"x"), Err(PushError::Closed));
        // The peer sees the connection end once it drains what was already sent.
        let mut sink = Vec::new();
        let _ = client.read_to_end(&mut sink);
        writer.stop();
    }
}
