//! One machine running papo, without a terminal: the real network thread feeding the real
//! `update`, whose commands go back to the network thread, as `tui::run` does.

use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use papo::app::{update, Model, Msg};
use papo::net::{Link, NetCommand, NetConfig, NetEvent, NetHandle, Transport};
use papo_server::testing::PASSWORD;
use time::UtcOffset;

pub struct Device {
    pub model: Model,
    pub net: Option<NetHandle>,
    events: Receiver<NetEvent>,
}

impl Device {
    /// A device on a plaintext server at `server`, with its outbox in `outbox` (if any) and a
    /// short silence timeout, so a frozen connection is noticed within seconds.
    pub fn start(server: &str, outbox: Option<&Path>) -> Self {
        let mut config = NetConfig::new(server, Transport::Plaintext);
        config.outbox_dir = outbox.map(Path::to_owned);
        config.keepalive = Duration::from_millis(300);
        config.silence = Duration::from_millis(1500);
        let (tx, events) = mpsc::channel();
        let net = NetHandle::spawn(config, move |event| {
            let _ = tx.send(event);
        })
        .unwrap();
        let model = Model::new(server.to_owned(), UtcOffset::UTC, (100, 30), fastrand::u64(..) >> 1);
        Self { model, net: Some(net), events }
    }

    /// Applies what arrived within `wait`; false if nothing did.
    pub fn pump(&mut self, wait: Duration) -> bool {
        let Ok(first) = self.events.recv_timeout(wait) else { return false };
        let rest: Vec<NetEvent> = self.events.try_iter().collect();
        for event in std::iter::once(first).chain(rest) {
            self.apply(Msg::Net(event));
        }
        true
    }

    /// Applies a UI message and hands its commands to the network thread.
    pub fn apply(&mut self, msg: Msg) {
        for command in update(&mut self.model, msg) {
            self.net.as_ref().expect("running").send(command);
        }
    }

    /// Hands a command to the network thread directly.
    pub fn send(&self, command: NetCommand) {
        self.net.as_ref().expect("running").send(command);
    }

    /// Pumps until `done` holds, failing after 20 s with `what`.
    pub fn until(&mut self, what: &str, done: impl Fn(&Model) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(&self.model) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            self.pump(Duration::from_millis(50));
        }
    }

    /// Logs in as `name` and waits for the contact list.
    pub fn log_in(&mut self, name: &str) {
        self.until("online", |m| m.link == Link::Online);
        self.send(NetCommand::Login { name: name.into(), password: PASSWORD.into() });
        self.until("logged in", |m| m.me.is_some() && !m.contacts.is_empty());
    }

    /// Quits as the TUI does; returns how many messages were left unsent.
    pub fn quit(&mut self) -> usize {
        self.net.take().map_or(0, |net| net.quit(Duration::from_secs(3)))
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.quit();
    }
}

/// Pumps both devices until `done` holds for both, failing after 20 s with `what`.
pub fn until_both(a: &mut Device, b: &mut Device, what: &str, done: impl Fn(&Model) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(done(&a.model) && done(&b.model)) {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        a.pump(Duration::from_millis(25));
        b.pump(Duration::from_millis(25));
    }
}
