//! A handle that stops a running server from another thread or a signal handler thread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Cloneable trigger for a graceful stop of [`crate::run`].
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    triggered: AtomicBool,
    /// Where to connect to wake the blocking `accept`.
    wake_addr: Mutex<Option<SocketAddr>>,
}

impl Shutdown {
    /// A handle that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the server to stop: it stops accepting, tells every session, flushes and returns.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::SeqCst);
        let wake_addr = *self.inner.wake_addr.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(addr) = wake_addr {
            // The accept loop sees the flag as soon as this connection arrives.
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Remembers the listener's address so `trigger` can wake the accept loop.
    pub(crate) fn watch(&self, listening: SocketAddr) {
        let ip = match listening.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        *self.inner.wake_addr.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(SocketAddr::new(ip, listening.port()));
    }
}
