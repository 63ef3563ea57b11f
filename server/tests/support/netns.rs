//! Private networks for one test: network namespaces joined by a veth pair, so multicast
//! (mDNS) flows between them and never onto a real network. Needs root and `ip` (iproute2).

#![allow(dead_code)] // Each test binary uses a different part of this helper.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The address the first namespace of a [`Lan`] has on its veth end.
pub const FIRST_IP: &str = "10.77.0.1";
/// The address the second namespace of a [`Lan`] has.
pub const SECOND_IP: &str = "10.77.0.2";

/// Why a test cannot build namespaces here, or `None` when it can.
pub fn unavailable() -> Option<&'static str> {
    // SAFETY: geteuid only reads the process's effective user id.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces need root (CI runs as root)");
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("no `ip` command (apt-get install iproute2)");
    }
    None
}

/// A network namespace, deleted (with its interfaces) on drop.
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// A new namespace with its loopback up and nothing else.
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("papo-{}-{}-{label}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        ip(&["netns", "add", &name]);
        let namespace = Self { name };
        namespace.ip(&["link", "set", "lo", "up"]);
        namespace
    }

    /// Its name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program args…` to run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `ip args…` inside the namespace; panics if it fails.
    pub fn ip(&self, args: &[&str]) {
        ip(&[&["-n", &self.name], args].concat());
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
    }
}

/// Two namespaces joined by a veth pair: [`FIRST_IP`] and [`SECOND_IP`] on a /24, with a
/// multicast route on each side.
pub struct Lan {
    pub first: Namespace,
    pub second: Namespace,
}

impl Lan {
    /// Builds it; panics (with `ip`'s words) if the kernel refuses.
    pub fn new() -> Self {
        let (first, second) = (Namespace::new("a"), Namespace::new("b"));
        ip(&[
            "link",
            "add",
            "veth0",
            "netns",
            first.name(),
            "type",
            "veth",
            "peer",
            "name",
            "veth1",
            "netns",
            second.name(),
        ]);
        for (namespace, device, address) in [(&first, "veth0", FIRST_IP), (&second, "veth1", SECOND_IP)] {
            namespace.ip(&["addr", "add", &format!("{address}/24"), "dev", device]);
            namespace.ip(&["link", "set", device, "up"]);
            namespace.ip(&["route", "add", "224.0.0.0/4", "dev", device]);
        }
        Self { first, second }
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        output.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}
