//! The server under load: a `papo-server` child process on a free loopback port with a
//! temporary data directory, or an address given by the user.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use papo_protocol::{Client, Security};
use socket2::{Domain, Socket, Type};

/// How the load generator reaches the server.
#[derive(Debug)]
pub struct Target {
    /// `HOST:PORT`.
    pub addr: String,
    /// TLS pinned to the certificate the server logged, or plaintext.
    pub security: Security,
    child: Option<Child>,
    data_dir: Option<tempfile::TempDir>,
}

/// How to start the server under load.
#[derive(Debug, Clone, Copy)]
pub struct Spawn<'a> {
    /// The `papo-server` binary.
    pub server_bin: &'a Path,
    /// Its bcrypt cost.
    pub bcrypt_cost: u32,
    /// Its connection cap.
    pub max_connections: usize,
    /// TLS off.
    pub plaintext: bool,
    /// Its limits by address and by user on: the load generator is one machine sending
    /// faster than any person, so only the abuse measurements want them.
    pub rate_limits: bool,
}

impl Target {
    /// Starts the server on `127.0.0.1` with an ephemeral port and waits until it listens.
    pub fn spawn(spawn: &Spawn<'_>) -> Result<Self> {
        let Spawn { server_bin, bcrypt_cost, max_connections, plaintext, rate_limits } = *spawn;
        let data_dir = tempfile::tempdir().context("cannot create a data directory")?;
        let mut child = Command::new(server_bin)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log",
                "warn,papo_server::server=info,papo_server::store=info",
            ])
            .arg("--bcrypt-cost")
            .arg(bcrypt_cost.to_string())
            .arg("--max-connections")
            .arg(max_connections.to_string())
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(plaintext.then_some("--plaintext"))
            .args((!rate_limits).then_some("--no-rate-limits"))
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!("cannot start {}; build it or pass --server-bin", server_bin.display())
            })?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut security = Security::Plaintext;
        let addr = loop {
            let Some(line) = lines.next() else { bail!("papo-server exited before listening") };
            let line = line?;
            if let Some(rest) = line.split("fingerprint=").nth(1) {
                let logged = rest.split_whitespace().next().unwrap_or_default();
                security = Security::tls(Some(logged.parse().context("the logged fingerprint")?));
            }
            if line.contains("listening") {
                if let Some(addr) =
                    line.split("address=").nth(1).and_then(|rest| rest.split_whitespace().next())
                {
                    break addr.to_owned();
                }
            }
        };
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(|line| eprintln!("server: {line}")));
        Ok(Self { addr, security, child: Some(child), data_dir: Some(data_dir) })
    }

    /// A server someone else runs.
    pub fn existing(addr: String, security: Security) -> Self {
        Self { addr, security, child: None, data_dir: None }
    }

    /// The data directory of a server we started.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_ref().map(tempfile::TempDir::path)
    }

    /// The server's resident memory in bytes, when it is our child.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_of(&self.child.as_ref()?.id().to_string())
    }

    /// CPU time the server used so far, when it is our child: what TLS adds shows here even
    /// when throughput is bound by disk flushes.
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time_of(self.child.as_ref()?.id())
    }

    /// Runs `phase` and returns what it returned with the CPU time used meanwhile.
    pub fn cpu_during<T>(&self, phase: impl FnOnce() -> T) -> (T, PhaseCpu) {
        cpu_during(|| self.cpu_time(), phase)
    }

    /// A handshaken connection.
    pub fn connect(&self) -> Result<Client> {
        Client::connect(&self.addr, &self.security, "papo-bench", Duration::from_secs(10))
            .context("cannot connect")
    }

    /// A handshaken connection from the local address `from` (another loopback address
    /// stands for another machine, as the server's limits by address see it).
    pub fn connect_from(&self, from: IpAddr) -> Result<Client> {
        let server: SocketAddr = self.addr.parse().context("the server's address is not IP:PORT")?;
        let socket = Socket::new(Domain::for_address(server), Type::STREAM, None).context("socket")?;
        socket.bind(&SocketAddr::new(from, 0).into()).with_context(|| format!("cannot bind {from}"))?;
        socket
            .connect_timeout(&server.into(), Duration::from_secs(10))
            .with_context(|| format!("cannot connect to {server}"))?;
        Client::handshake(socket.into(), &self.addr, &self.security, "papo-bench", Duration::from_secs(10))
            .context("handshake")
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // SIGTERM lets it flush; it exits within its drain timeout.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

/// CPU time used in a measured phase.
#[derive(Debug, Clone, Copy)]
pub struct PhaseCpu {
    /// By the server, when its `/proc` entry could be read.
    pub server: Option<Duration>,
    /// By this load generator, which shares the machine's cores with the server.
    pub generator: Option<Duration>,
}

/// Runs `phase`, timing the CPU the server (read by `server_cpu`) and this process use
/// meanwhile: the logins and registrations before a measured phase are not counted.
pub fn cpu_during<T>(server_cpu: impl Fn() -> Option<Duration>, phase: impl FnOnce() -> T) -> (T, PhaseCpu) {
    let own_cpu = || cpu_time_of(std::process::id());
    let (server_before, own_before) = (server_cpu(), own_cpu());
    let result = phase();
    let spent = |before: Option<Duration>, after: Option<Duration>| {
        before.zip(after).map(|(before, after)| after.saturating_sub(before))
    };
    (result, PhaseCpu { server: spent(server_before, server_cpu()), generator: spent(own_before, own_cpu()) })
}

/// `papo-server` next to this executable, else on the PATH.
pub fn default_server_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("papo-server")))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("papo-server"))
}

/// Resident memory of process `pid` (or `self`) in bytes.
pub fn rss_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// CPU time (user + system, all threads, living or ended) process `pid` used so far, from
/// `/proc/PID/stat`, in clock ticks (usually 10 ms).
pub fn cpu_time_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u32 = fields.get(11)?.parse::<u32>().ok()? + fields.get(12)?.parse::<u32>().ok()?;
    Some(clock_tick() * ticks)
}

/// The unit of `/proc/PID/stat`'s CPU times.
pub fn clock_tick() -> Duration {
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Duration::from_secs(1) / per_second.clamp(1, 1_000_000) as u32
}
