//! A real server in-process on an ephemeral loopback port with a temporary data directory,
//! for this workspace's integration tests and for the load generator's self-hosted mode.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use papo_protocol::{Client, LoggedIn, Security};

use crate::{Config, ServerError, Shutdown};

/// The password [`TestServer::user`] registers with.
pub const PASSWORD: &str = "correct horse";

/// A running server; stopped (and its temporary directory removed) on drop.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// How clients reach it: TLS pinned to its certificate, or plaintext if TLS is off.
    pub security: Security,
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
        let mut config = Config::new(dir);
        config.bcrypt_cost = 4;
        tweak(&mut config);
        // Prepared here as well as in `run` (which then loads the same files) to learn the
        // fingerprint clients must pin.
        let security = match crate::tls::prepare(&config.tls, dir).expect("TLS certificate") {
            Some(tls) => Security::tls(Some(tls.fingerprint)),
            None => Security::Plaintext,
        };
        let shutdown = Shutdown::new();
        let handle = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || crate::run(listener, config, shutdown))
        };
        Self { addr, security, _tempdir: None, shutdown, handle: Some(handle) }
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

/// A name no other call in this process returns.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
