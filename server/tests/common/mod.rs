//! A real `papo-server` on an ephemeral loopback port with a temporary data directory.

#![allow(dead_code)] // Each test binary uses a different part of this helper.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use papo_protocol::{ChatMessage, Client, Contact, Event, HistoryPage, LoggedIn, Reply, Request};
use papo_server::{Config, ServerError, Shutdown};

pub const PASSWORD: &str = "correct horse";

pub struct TestServer {
    pub addr: SocketAddr,
    dir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    shutdown: Shutdown,
    handle: Option<JoinHandle<Result<(), ServerError>>>,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    pub fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let tempdir = tempfile::tempdir().expect("temp dir");
        let mut server = Self::start_in(tempdir.path(), tweak);
        server._tempdir = Some(tempdir);
        server
    }

    /// Starts on an existing data directory, which the caller keeps alive.
    pub fn start_in(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = Config::new(dir);
        config.bcrypt_cost = 4;
        tweak(&mut config);
        let shutdown = Shutdown::new();
        let handle = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || papo_server::run(listener, config, shutdown))
        };
        Self { addr, dir: dir.to_owned(), _tempdir: None, shutdown, handle: Some(handle) }
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    pub fn connect(&self) -> Client {
        Client::connect(&self.addr.to_string(), "papo-tests", Duration::from_secs(5)).expect("connect")
    }

    /// Registers a fresh user (unique per test process) and logs in.
    pub fn user(&self, prefix: &str) -> (Client, LoggedIn) {
        let name = unique_name(prefix);
        let mut client = self.connect();
        client.register(&name, PASSWORD).expect("register");
        let session = client.login(&name, PASSWORD).expect("login");
        set_timeout(&client);
        (client, session)
    }

    pub fn login(&self, name: &str) -> (Client, LoggedIn) {
        let mut client = self.connect();
        let session = client.login(name, PASSWORD).expect("login");
        set_timeout(&client);
        (client, session)
    }

    /// Asks the server to stop and waits for `run` to return.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.shutdown.trigger();
        self.handle.take().expect("running").join().expect("server thread")
    }

    /// Proves the server still serves: two new users exchange a message live.
    pub fn assert_healthy(&self) {
        let (mut alice, a) = self.user("ok");
        let (mut bob, b) = self.user("ok");
        let (id, _) = alice.send(b.name.as_str(), "still here?", 1).expect("send");
        let got = next_message(&mut bob);
        assert_eq!((got.id, got.from, got.body.as_str()), (id, a.name, "still here?"));
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

pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn set_timeout(client: &Client) {
    // A missing event fails the test instead of hanging it.
    client.stream().set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
}

/// The next chat message pushed to `client`, skipping presence and receipts.
pub fn next_message(client: &mut Client) -> ChatMessage {
    loop {
        match client.next_event().expect("event") {
            Event::Message(message) => return message,
            _ => continue,
        }
    }
}

pub fn history(client: &mut Client, with: &str, before: Option<u64>, limit: u32) -> HistoryPage {
    match client.request(Request::History { with: with.into(), before, limit }).expect("history") {
        Reply::History(page) => page,
        other => panic!("history answered {other:?}"),
    }
}

/// Every contact, following pages.
pub fn contacts(client: &mut Client) -> Vec<Contact> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        match client.request(Request::Contacts { after: after.take() }).expect("contacts") {
            Reply::Contacts(page) => {
                all.extend(page.contacts);
                match page.next_after {
                    Some(next) => after = Some(next.to_string()),
                    None => return all,
                }
            }
            other => panic!("contacts answered {other:?}"),
        }
    }
}
