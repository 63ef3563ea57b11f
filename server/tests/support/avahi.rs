//! Debian's avahi (an mDNS stack papo shares no code with) inside a test's network namespace,
//! on a private D-Bus, so that neither touches the machine's own bus or avahi.
//!
//! Needs `dbus-daemon`, `avahi-daemon` and `avahi-utils` (`.ci/run` installs them); a test
//! that cannot start them fails with the package to install.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::Namespace;

/// How long dbus-daemon and avahi-daemon get to start on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A private system bus and an avahi-daemon on it, stopped on drop.
pub struct Avahi {
    bus_address: String,
    // Dropped in this order: the daemon before its bus.
    daemon: Child,
    bus: Child,
    _dir: tempfile::TempDir,
}

impl Avahi {
    /// Starts a bus and avahi-daemon in `namespace`, on its `device` only, under the host name
    /// `host_name`.
    pub fn start(namespace: &Namespace, device: &str, host_name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus");
        let bus_config = dir.path().join("bus.conf");
        // Anyone may own and call anything: only this test's processes can reach the socket.
        std::fs::write(
            &bus_config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .unwrap();
        let bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", bus_config.display()))
            .arg("--nofork")
            .stderr(Stdio::null())
            .spawn()
            .expect("run dbus-daemon (apt-get install dbus)");
        let deadline = Instant::now() + START_TIMEOUT;
        while !socket.exists() {
            assert!(Instant::now() < deadline, "dbus-daemon did not create {}", socket.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        let bus_address = format!("unix:path={}", socket.display());

        let avahi_config = dir.path().join("avahi-daemon.conf");
        std::fs::write(
            &avahi_config,
            format!(
                "[server]\nhost-name={host_name}\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces={device}\nenable-dbus=yes\n\
                 [publish]\npublish-workstation=no\npublish-hinfo=no\n"
            ),
        )
        .unwrap();
        // avahi-daemon keeps its pid file and socket in /run/avahi-daemon: a tmpfs there, in
        // the mount namespace `ip netns exec` gives each command, keeps this one apart from
        // any other avahi on the machine.
        let script = format!(
            "mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon && \
             exec avahi-daemon --no-chroot --no-drop-root --no-rlimits -f {}",
            avahi_config.display()
        );
        let mut daemon = namespace
            .command("sh")
            .args(["-c", &script])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus_address)
            .stderr(Stdio::piped())
            .spawn()
            .expect("run avahi-daemon");
        let stderr = daemon.stderr.take().unwrap();
        let (started, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = started.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            let left = deadline.checked_duration_since(Instant::now()).unwrap_or_default();
            match log.recv_timeout(left) {
                Ok(line) if line.contains("Server startup complete") => break,
                Ok(line) => seen.push(line),
                Err(_) => panic!(
                    "avahi-daemon did not start (apt-get install avahi-daemon avahi-utils):\n{}",
                    seen.join("\n")
                ),
            }
        }
        Self { bus_address, daemon, bus, _dir: dir }
    }

    /// `program args…` in `namespace`, talking to this avahi.
    pub fn command(&self, namespace: &Namespace, program: &str) -> Command {
        let mut command = namespace.command(program);
        command.env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_address);
        command
    }

    /// The resolved `_papo._tcp` services `avahi-browse -rpt` lists, as its `=` lines split on
    /// `;`, once one of them satisfies `wanted` (or panics after `timeout`).
    pub fn browse_until(
        &self,
        namespace: &Namespace,
        timeout: Duration,
        wanted: impl Fn(&[String]) -> bool,
    ) -> Vec<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            let output = self
                .command(namespace, "avahi-browse")
                .args(["--resolve", "--parsable", "--terminate", "_papo._tcp"])
                .output()
                .expect("run avahi-browse (apt-get install avahi-utils)");
            last = String::from_utf8_lossy(&output.stdout).into_owned();
            let resolved: Vec<Vec<String>> = last
                .lines()
                .filter(|line| line.starts_with("=;"))
                .map(|line| line.split(';').map(str::to_owned).collect())
                .collect();
            if resolved.iter().any(|fields| wanted(fields)) {
                return resolved;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("avahi-browse did not see the service in {timeout:?}; it last printed:\n{last}");
    }
}

impl Drop for Avahi {
    fn drop(&mut self) {
        for child in [&mut self.daemon, &mut self.bus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
