//! The server's lifecycle: start-up, the accept loop, and graceful shutdown.

use std::io;
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use papo_protocol::{ErrorCode, ErrorReply, Event, ServerFrame};
use socket2::SockRef;
use tracing::{debug, error, info, warn};

use crate::admin::Admin;
use crate::announce::Announcer;
use crate::clock::SystemClock;
use crate::deadline::HandshakeDeadlines;
use crate::limits::{Admission, PasswordPool, PoolLimits};
use crate::outbox::Writer;
use crate::shared::Shared;
use crate::store::{Store, StoreError};
use crate::tcp::{self, Network};
use crate::tls::{self, TlsError};
use crate::transport::Sink;
use crate::{frames, handlers, Config, Shutdown};

/// How long shutdown waits for sessions to end after telling them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the server could not start or stop cleanly.
///
/// Each message says what was being done and leaves the cause to its `source`, which
/// callers print after it (`{:#}` with anyhow): a message that embedded its source as well
/// would say it twice.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be opened or flushed.
    #[error("storage")]
    Store(#[from] StoreError),
    /// The store failed while serving: it answers nothing more.
    #[error("storage failed: {0}; the server stopped so that its supervisor restarts it, and the write-ahead log replays what is on disk")]
    StoreFailed(String),
    /// The listener or a helper thread failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// The TLS certificate or key could not be loaded or generated.
    #[error("TLS")]
    Tls(#[from] TlsError),
    /// bcrypt rejected the configured cost.
    #[error("invalid bcrypt cost {cost}")]
    BcryptCost {
        /// The configured cost.
        cost: u32,
        /// The cause.
        source: bcrypt::BcryptError,
    },
}

/// Counts live connection threads so shutdown can wait for them.
#[derive(Default)]
struct Live {
    count: AtomicUsize,
    none_left: Condvar,
    lock: Mutex<()>,
}

/// Decrements [`Live`] when its connection thread ends, however it ends.
struct LiveGuard(Arc<Live>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let _lock = self.0.lock.lock().unwrap_or_else(PoisonError::into_inner);
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_all();
        }
    }
}

/// Serves `listener` until `shutdown` is triggered, then tells every session, waits for them
/// and flushes the store.
///
/// Taking a bound listener lets tests bind `127.0.0.1:0` and read the port.
pub fn run(listener: TcpListener, config: Config, shutdown: &Shutdown) -> Result<(), ServerError> {
    let io_err = |context| move |source| ServerError::Io { context, source };
    let opened = Instant::now();
    // bcrypt's self-timed dummy hash is pure CPU, and opening the store (sled's recovery, the
    // log's replay) mostly waits on the disk: side by side, start-up costs the longer of the
    // two instead of both.
    let (store, hashed) = thread::scope(|scope| {
        let hashing = scope.spawn(|| {
            let started = Instant::now();
            handlers::dummy_hash(config.bcrypt_cost).map(|hash| (hash, started.elapsed()))
        });
        let store = Store::open_with(&config.data_dir, config.store);
        (store, hashing.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    let store = store?;
    info!(
        data_dir = %config.data_dir.display(),
        newest_message = store.last_message_id()?,
        bytes_on_disk = store.size_on_disk().unwrap_or(0),
        took_ms = u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX),
        "opened the store"
    );
    let tls = tls::prepare(&config.tls, &config.data_dir)?;
    match &tls {
        Some(tls) => {
            if let Some(path) = &tls.generated {
                info!(cert = %path.display(), "generated a self-signed TLS certificate");
            }
            info!(fingerprint = %tls.fingerprint, "TLS on; clients see this SHA-256 certificate fingerprint");
        }
        None => warn!("TLS is OFF (--plaintext): passwords and messages cross the network in the clear"),
    }
    let (dummy_hash, hashing) =
        hashed.map_err(|source| ServerError::BcryptCost { cost: config.bcrypt_cost, source })?;
    info!(
        cost = config.bcrypt_cost,
        ms_per_login = u64::try_from(hashing.as_millis()).unwrap_or(u64::MAX),
        "bcrypt ready"
    );
    let admission = Admission::new(&config.limits, config.max_connections);
    config.limits_dial.attach(&admission);
    let network = Arc::new(Network {
        tls,
        writer: Writer::start().map_err(io_err("starting the writer thread"))?,
        deadlines: HandshakeDeadlines::start().map_err(io_err("starting the handshake deadline thread"))?,
        admission,
    });
    let passwords = PasswordPool::start(PoolLimits::of(&config.limits))
        .map_err(io_err("starting the password hashing threads"))?;
    let shared = Arc::new(Shared::new(config, store, dummy_hash, Arc::new(SystemClock), passwords));
    // Optional: a data directory whose path is too long for a socket still serves clients.
    let admin = Admin::start(&shared.config.data_dir, Arc::downgrade(&shared))
        .inspect_err(|e| warn!(error = %e, "no administration socket; `papo-server export` works only while the server is stopped"))
        .ok();
    let local = listener.local_addr().map_err(io_err("reading the listener address"))?;
    shutdown.watch(local);
    {
        // A failed store answers nothing more, so serving on would only hang clients.
        let shutdown = shutdown.clone();
        shared.store.on_failure(move || shutdown.trigger());
    }
    info!(address = %local, "listening");
    let fingerprint = network.tls.as_ref().map(|tls| tls.fingerprint);
    let announcer = shared
        .config
        .announce_as
        .as_deref()
        .and_then(|instance| Announcer::start(instance, local, fingerprint));

    let live = Arc::new(Live::default());
    accept_loop(&listener, &shared, &network, &live, shutdown);

    info!("shutting down");
    drop(listener);
    if let Some(announcer) = announcer {
        announcer.stop();
    }
    let goodbye = frames::encode(&ServerFrame::Event(Event::ShuttingDown));
    for outbox in network.writer.outboxes() {
        let _ = outbox.push(&goodbye);
        outbox.close();
    }
    if let Some(admin) = admin {
        admin.stop();
    }
    if let Some(failure) = shared.store.failure() {
        // No drain, no flush: nothing more can be made durable, and the supervisor should
        // restart the server (whose replay settles what is on disk) as soon as possible.
        return Err(ServerError::StoreFailed(failure.to_owned()));
    }
    wait_for_sessions(&live);
    shared.store.flush()?;
    network.writer.stop();
    network.deadlines.stop();
    if Arc::strong_count(&shared) > 1 {
        warn!("a session outlived the drain timeout; the database closes when it ends");
    }
    // Closing the store checkpoints the database and empties the write-ahead log.
    drop(shared);
    info!("stopped");
    Ok(())
}

fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    network: &Arc<Network>,
    live: &Arc<Live>,
    shutdown: &Shutdown,
) {
    while !shutdown.is_triggered() {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or similar: back off instead of spinning.
                warn!(error = %e, "accept failed");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if shutdown.is_triggered() {
            break;
        }
        if live.count.load(Ordering::Acquire) >= shared.config.max_connections {
            refuse(&stream, ErrorCode::ServerFull, "the server is full; try again later");
            continue;
        }
        // Room is kept for logged-in users and for logins from elsewhere: connections that
        // have not logged in are capped by address and in total.
        let address = stream.peer_addr().map_or(IpAddr::from([0, 0, 0, 0]), |peer| peer.ip());
        let Some(unauthenticated) = network.admission.admit(address) else {
            refuse(
                &stream,
                ErrorCode::ServerFull,
                "too many connections from your machine (or in all) have not logged in; log in, or close some, and try again",
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        live.count.fetch_add(1, Ordering::AcqRel);
        let guard = LiveGuard(Arc::clone(live));
        let (shared, network) = (Arc::clone(shared), Arc::clone(network));
        let spawned = thread::Builder::new().stack_size(shared.config.thread_stack_size).spawn(move || {
            let _guard = guard;
            tcp::serve(stream, &shared, &network, unauthenticated);
            // Before the guard tells `run` this session is over: the last reference to the
            // store must go inside `run`, which closes it (and frees its lock) before returning.
            drop(shared);
        });
        if let Err(e) = spawned {
            // The closure (with the stream and guard) was dropped, closing the connection.
            error!(error = %e, "cannot start a connection thread");
        }
    }
}

/// Tells a connection why it is not served, without ever blocking the accept loop.
fn refuse(stream: &TcpStream, code: ErrorCode, message: &str) {
    debug!(peer = ?stream.peer_addr().ok(), ?code, "refusing a connection");
    let frame = frames::encode(&ServerFrame::Fatal(ErrorReply::new(code, message)));
    let _ = SockRef::from(stream).send_with_flags(&frame, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
}

fn wait_for_sessions(live: &Live) {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    let mut lock = live.lock.lock().unwrap_or_else(PoisonError::into_inner);
    while live.count.load(Ordering::Acquire) > 0 {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            warn!(left = live.count.load(Ordering::Acquire), "sessions still running at shutdown");
            return;
        };
        lock = live.none_left.wait_timeout(lock, left).unwrap_or_else(PoisonError::into_inner).0;
    }
}
