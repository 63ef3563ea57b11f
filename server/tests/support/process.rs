//! Running the real `papo-server` binary: spawn on an ephemeral port, signal, wait.

#![allow(dead_code)] // Each test binary uses a different part of this helper.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use papo_protocol::{Client, Fingerprint, Security};

/// A running `papo-server` process.
pub struct ServerProcess {
    pub child: Child,
    pub addr: String,
    /// TLS pinned to the fingerprint the server logged, or plaintext if it logged none.
    pub security: Security,
    /// The certificate fingerprint it logged.
    pub fingerprint: Option<Fingerprint>,
    /// Every log line after "listening".
    pub log: Receiver<String>,
    /// The log lines before it.
    pub log_before_listening: Vec<String>,
}

/// Starts the binary on `127.0.0.1:0` with `data_dir` and bcrypt cost 4, and waits until
/// it listens.
///
/// `log_filter` must let `papo_server::server`'s info line "listening" through: that line
/// tells the port.
pub fn spawn(data_dir: &Path, log_filter: &str) -> ServerProcess {
    spawn_with_cost(data_dir, log_filter, 4)
}

/// [`spawn`] with another bcrypt cost; without rate limits, since these tests send faster
/// than any person (the limits have tests of their own).
pub fn spawn_with_cost(data_dir: &Path, log_filter: &str, bcrypt_cost: u32) -> ServerProcess {
    spawn_with_args(data_dir, log_filter, &["--bcrypt-cost", &bcrypt_cost.to_string(), "--no-rate-limits"])
}

/// Starts the binary on `127.0.0.1:0` with `data_dir` and `args`, and waits until it listens.
pub fn spawn_with_args(data_dir: &Path, log_filter: &str, args: &[&str]) -> ServerProcess {
    try_spawn_with_args(data_dir, log_filter, args)
        .unwrap_or_else(|exited| panic!("papo-server exited before listening:\n{}", exited.log))
}

/// How a server that never listened ended.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    /// Everything it logged.
    pub log: String,
}

/// [`spawn_with_args`], or how the server ended if it exits before listening.
pub fn try_spawn_with_args(
    data_dir: &Path,
    log_filter: &str,
    args: &[&str],
) -> Result<ServerProcess, Exited> {
    try_spawn(command(data_dir, log_filter, args))
}

/// The command line of a server on `127.0.0.1:0` and `data_dir`.
fn command(data_dir: &Path, log_filter: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_papo-server"));
    command.args(["--listen", "127.0.0.1:0", "--log", log_filter]).args(args).arg("--data-dir").arg(data_dir);
    command
}

/// Runs `command`, a `papo-server` that logs `papo_server::server`'s "listening" line, with
/// its stderr captured, and waits until it listens.
pub fn start(command: Command) -> ServerProcess {
    try_spawn(command).unwrap_or_else(|exited| panic!("papo-server exited before listening:\n{}", exited.log))
}

fn try_spawn(mut command: Command) -> Result<ServerProcess, Exited> {
    let mut child = command.stderr(Stdio::piped()).spawn().expect("spawn papo-server");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut fingerprint = None;
    let mut seen = Vec::new();
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            let status = child.wait().expect("wait");
            return Err(Exited { status, log: seen.join("\n") });
        };
        seen.push(line.clone());
        if let Some(rest) = line.split("fingerprint=").nth(1) {
            let logged = rest.split_whitespace().next().expect("fingerprint");
            fingerprint = Some(logged.parse::<Fingerprint>().expect("the logged fingerprint parses"));
        }
        if line.contains("listening") {
            let rest = line.split("address=").nth(1).expect("address in the log");
            break rest.split_whitespace().next().expect("address").to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    let (tx, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let security = match fingerprint {
        Some(_) => Security::tls(fingerprint),
        None => Security::Plaintext,
    };
    Ok(ServerProcess { child, addr, security, fingerprint, log, log_before_listening: seen })
}

impl ServerProcess {
    /// A handshaken connection, trusting the server's logged certificate.
    pub fn connect(&self, client_name: &str) -> Client {
        Client::connect(&self.addr, &self.security, client_name, Duration::from_secs(5)).expect("connect")
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill only sends a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits up to 10 s for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "papo-server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).expect("VmRSS");
        line.trim().trim_end_matches("kB").trim().parse().expect("a number")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary on `data_dir` with `args` expecting it to fail before it listens: its
/// exit status and everything it logged. Panics if it starts listening.
pub fn fails_to_start(data_dir: &Path, args: &[&str]) -> (ExitStatus, String) {
    fails_to_start_with(data_dir, args, |_| {})
}

/// [`fails_to_start`], with the command adjusted first (to run as another user, say).
pub fn fails_to_start_with(
    data_dir: &Path,
    args: &[&str],
    adjust: impl FnOnce(&mut Command),
) -> (ExitStatus, String) {
    let mut command = command(data_dir, "info", &[&["--bcrypt-cost", "4"], args].concat());
    adjust(&mut command);
    match try_spawn(command) {
        Ok(server) => {
            panic!("papo-server started, expected a refusal:\n{}", server.log_before_listening.join("\n"))
        }
        Err(Exited { status, log }) => (status, log),
    }
}
