//! A real server in-process with a temporary data directory, for tests and fuzz targets
//! (behind the `test-support` feature): [`TestServer`] on an ephemeral loopback port, and
//! [`MemoryServer`], whose sessions run over in-memory connections on the caller's thread.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use papo_protocol::{Client, Fingerprint, LoggedIn, Security};

use crate::clock::{Clock, SystemClock};
use crate::limits::{LimitPolicy, PasswordPool, PoolLimits};
use crate::shared::Shared;
use crate::store::Store;
use crate::{handlers, memory, Config, ServerError, Shutdown};

/// The password [`TestServer::user`] registers with.
pub const PASSWORD: &str = "correct horse";

/// A running server; stopped (and its temporary directory removed) on drop.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// How clients reach it: TLS pinned to its certificate, or plaintext if TLS is off.
    pub security: Security,
    /// Its certificate's fingerprint; `None` when TLS is off.
    pub fingerprint: Option<Fingerprint>,
    _tempdir: Option<tempfile::TempDir>,
    shutdown: Shutdown,
    handle: Option<JoinHandle<Result<(), ServerError>>>,
}

impl TestServer {
    /// Starts with test defaults (bcrypt cost 4, TLS with a generated certificate) in a new
    /// temporary directory.
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// Starts in a new temporary directory after `tweak` adjusts the configuration.
    pub fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let tempdir = tempfile::tempdir().expect("create a temporary data directory");
        let mut server = Self::start_in(tempdir.path(), tweak);
        server._tempdir = Some(tempdir);
        server
    }

    /// Starts on an existing data directory, which the caller keeps alive.
    pub fn start_in(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        Self::start_on(listener, dir, tweak)
    }

    /// Starts on a listener the caller bound (to restart on the same port, say).
    pub fn start_on(listener: TcpListener, dir: &Path, tweak: impl FnOnce(&mut Config)) -> Self {
        let addr = listener.local_addr().expect("listener address");
        let config = test_config(dir, tweak);
        // Prepared here as well as in `run` (which then loads the same files) to learn the
        // fingerprint clients must pin.
        let fingerprint =
            crate::tls::prepare(&config.tls, dir).expect("TLS certificate").map(|tls| tls.fingerprint);
        let security = match fingerprint {
            Some(_) => Security::tls(fingerprint),
            None => Security::Plaintext,
        };
        let shutdown = Shutdown::new();
        let handle = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || crate::run(listener, config, &shutdown))
        };
        Self { addr, security, fingerprint, _tempdir: None, shutdown, handle: Some(handle) }
    }

    /// A new handshaken connection.
    pub fn connect(&self) -> Client {
        Client::connect(&self.addr.to_string(), &self.security, "papo-tests", Duration::from_secs(5))
            .expect("connect")
    }

    /// Registers a fresh user (unique in this process, starting with `prefix`) and logs in.
    pub fn user(&self, prefix: &str) -> (Client, LoggedIn) {
        let name = unique_name(prefix);
        self.connect().register(&name, PASSWORD).expect("register");
        self.login(&name)
    }

    /// Logs in as an existing user with [`PASSWORD`].
    pub fn login(&self, name: &str) -> (Client, LoggedIn) {
        let mut client = self.connect();
        let session = client.login(name, PASSWORD).expect("login");
        // A missing event fails a test instead of hanging it.
        client.stream().set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        (client, session)
    }

    /// Stops the server and waits for `run` to return.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.shutdown.trigger();
        self.handle.take().expect("running").join().expect("server thread")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.shutdown.trigger();
            let _ = handle.join();
        }
    }
}

/// The settings of test servers: bcrypt at its cheapest, small log segments.
fn test_config(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::new(dir);
    config.bcrypt_cost = 4;
    // Small log segments: tests start many servers (each zero-fills its first spare
    // segment), and traffic in tests then passes through checkpoints too.
    config.store.wal_segment = 256 * 1024;
    // Every test client comes from 127.0.0.1, faster than any person: the tests of the limits
    // turn on the ones they test.
    config.limits = LimitPolicy::unlimited();
    tweak(&mut config);
    config
}

/// A server without a listener: each call of [`MemoryServer::serve`] runs one session on
/// the caller's thread over an in-memory connection, so a fuzz target or test needs no
/// socket, no thread per connection and no timeout.
#[derive(Debug)]
pub struct MemoryServer {
    shared: Arc<Shared>,
    _tempdir: Option<tempfile::TempDir>,
}

impl MemoryServer {
    /// Opens a store in a new temporary directory, with the settings of [`TestServer`].
    pub fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_with_clock(tweak, Arc::new(SystemClock))
    }

    /// Like [`MemoryServer::start_with`], with the handlers reading `clock`.
    pub(crate) fn start_with_clock(tweak: impl FnOnce(&mut Config), clock: Arc<dyn Clock>) -> Self {
        let tempdir = tempfile::tempdir().expect("create a temporary data directory");
        let mut server = Self::start_in(tempdir.path(), tweak, clock);
        server._tempdir = Some(tempdir);
        server
    }

    /// Opens the store in `dir`, which the caller keeps alive.
    pub(crate) fn start_in(dir: &Path, tweak: impl FnOnce(&mut Config), clock: Arc<dyn Clock>) -> Self {
        let config = test_config(dir, tweak);
        let store = Store::open_with(dir, config.store).expect("open the store");
        let dummy_hash = handlers::dummy_hash(config.bcrypt_cost).expect("bcrypt cost");
        let passwords = PasswordPool::start(PoolLimits::of(&config.limits)).expect("password threads");
        Self { shared: Arc::new(Shared::new(config, store, dummy_hash, clock, passwords)), _tempdir: None }
    }

    /// Serves one connection that sends `input` and then closes; returns every byte the
    /// server sent it.
    pub fn serve(&self, input: &[u8]) -> Vec<u8> {
        memory::serve_to_end(&self.shared, input)
    }

    /// How many users have a session online (none, once every session has ended).
    pub fn online_users(&self) -> usize {
        self.shared.hub.online_users()
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// What crossed one proxied connection.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Bytes from the client to the server.
    pub to_server: Vec<u8>,
    /// Bytes from the server to the client.
    pub to_client: Vec<u8>,
}

/// A TCP proxy in front of a server that records every byte, to check what an eavesdropper
/// on the LAN would see.
#[derive(Debug)]
pub struct RecordingProxy {
    /// Where clients connect instead of the server.
    pub addr: SocketAddr,
    recording: Arc<Recording>,
}

#[derive(Debug, Default)]
struct Recording {
    state: Mutex<RecordingState>,
    pump_ended: Condvar,
}

#[derive(Debug, Default)]
struct RecordingState {
    connections: Vec<Recorded>,
    /// Directions still being copied, two per open connection.
    pumping: usize,
}

impl RecordingProxy {
    /// Starts forwarding to `target`; its threads live as long as the test process.
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let recording = Arc::new(Recording::default());
        let accepting = Arc::clone(&recording);
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(target) else { return };
                let index = {
                    let mut state = accepting.state.lock().expect("recording");
                    state.connections.push(Recorded::default());
                    state.pumping += 2;
                    state.connections.len() - 1
                };
                for to_server in [true, false] {
                    let (from, to) = if to_server { (&client, &server) } else { (&server, &client) };
                    let (from, to) = (from.try_clone().expect("clone"), to.try_clone().expect("clone"));
                    let recording = Arc::clone(&accepting);
                    std::thread::spawn(move || {
                        pump(from, to, |bytes| {
                            let mut state = recording.state.lock().expect("recording");
                            let side = &mut state.connections[index];
                            if to_server { &mut side.to_server } else { &mut side.to_client }
                                .extend_from_slice(bytes);
                        });
                        recording.state.lock().expect("recording").pumping -= 1;
                        recording.pump_ended.notify_all();
                    });
                }
            }
        });
        Self { addr, recording }
    }

    /// Everything recorded, one entry per connection, once every connection so far has
    /// closed both ways (so nothing is still in flight); panics after 10 s of waiting.
    pub fn closed_connections(&self) -> Vec<Recorded> {
        let state = self.recording.state.lock().expect("recording");
        let (state, waited) = self
            .recording
            .pump_ended
            .wait_timeout_while(state, Duration::from_secs(10), |state| state.pumping > 0)
            .expect("recording");
        assert!(!waited.timed_out(), "proxied connections still open after 10 s");
        state.connections.clone()
    }
}

/// Copies `from` to `to`, showing each chunk to `record` first, until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream, mut record: impl FnMut(&[u8])) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        record(&buf[..n]);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// A name no other call in this process returns.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
