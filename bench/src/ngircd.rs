//! The peer under load: Debian's `ngircd`, an in-memory IRC server in C.
//!
//! `apt-get download` fetches the package and the library it needs that a base system
//! lacks, `dpkg -x` unpacks them into a temporary directory, and nothing is installed: no
//! service, no files outside that directory, no process left once [`Ngircd`] is dropped.
//! Each run starts a fresh server on a free loopback port with a private configuration that
//! measures ngircd at its best: penalties off, no per-address connection limit, no DNS,
//! ident or PAM lookups at connect, keepalive PINGs out of the way, and an operator account
//! so clients can set user mode `+F`, which lifts its per-client command throttle.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::str::FromStr;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::irc::Oper;
use crate::target;

/// The packages `apt-get download` fetches: the server, and the ident library it links
/// against although the configuration turns ident lookups off.
const PACKAGES: [&str; 2] = ["ngircd", "libident"];

/// How long a started ngircd may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the ngircd binary comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Fetch Debian's package into a temporary directory.
    Auto,
    /// An ngircd binary already on this machine.
    Binary(PathBuf),
}

impl FromStr for Source {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s == "auto" { Self::Auto } else { Self::Binary(PathBuf::from(s)) })
    }
}

/// An ngircd binary ready to start, with the directory it was unpacked into, if any.
#[derive(Debug)]
pub struct Binary {
    path: PathBuf,
    library_dirs: Vec<PathBuf>,
    /// Keeps the unpacked package until the last run is done.
    _unpacked: Option<tempfile::TempDir>,
}

impl Binary {
    /// The binary `source` names, fetched first if it is [`Source::Auto`].
    pub fn get(source: &Source) -> Result<Self> {
        match source {
            Source::Binary(path) => {
                anyhow::ensure!(
                    path.is_file(),
                    "no ngircd at {}: pass --ngircd auto to fetch it",
                    path.display()
                );
                Ok(Self { path: path.clone(), library_dirs: Vec::new(), _unpacked: None })
            }
            Source::Auto => fetch(),
        }
    }

    /// Where the binary is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its version line, e.g. `ngIRCd 26.1-IDENT+IPv6+…`.
    pub fn version(&self) -> Result<String> {
        let output = self.command().arg("--version").output().context("cannot run ngircd --version")?;
        let text = String::from_utf8_lossy(&output.stdout);
        Ok(text.lines().next().unwrap_or_default().trim().to_owned())
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.path);
        if !self.library_dirs.is_empty() {
            let mut dirs = self.library_dirs.clone();
            dirs.extend(std::env::var_os("LD_LIBRARY_PATH").map(PathBuf::from));
            command.env("LD_LIBRARY_PATH", std::env::join_paths(dirs).expect("paths without colons"));
        }
        command
    }
}

/// A running ngircd child process on a loopback port.
#[derive(Debug)]
pub struct Ngircd {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The operator account of its configuration.
    pub oper: Oper,
    child: Child,
    /// Its configuration, kept until it has stopped.
    _config: tempfile::TempDir,
}

impl Ngircd {
    /// Starts `binary` with a private configuration on a free loopback port and waits until
    /// it accepts connections.
    pub fn start(binary: &Binary) -> Result<Self> {
        // A free port found by binding may be taken again before ngircd binds it: try a few.
        let mut last_error = None;
        for _ in 0..3 {
            match Self::try_start(binary) {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    fn try_start(binary: &Binary) -> Result<Self> {
        let dir = tempfile::tempdir().context("cannot create a directory for ngircd's configuration")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let oper = Oper { name: "bench".to_owned(), password: random_password()? };
        let config = dir.path().join("ngircd.conf");
        fs::write(&config, configuration(dir.path(), port, &oper))?;
        fs::write(dir.path().join("help.txt"), "")?;
        fs::create_dir(dir.path().join("conf.d"))?;
        let mut child = binary
            .command()
            .args(["--nodaemon", "--passive", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.path.display()))?;
        forward_log(child.stdout.take().context("no stdout")?);
        forward_log(child.stderr.take().context("no stderr")?);
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let mut server = Self { addr, oper, child, _config: dir };
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!("ngircd exited with {status} before listening (its log is above)");
            }
            if TcpStream::connect(&server.addr).is_ok() {
                return Ok(server);
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("ngircd did not listen on {} within {START_TIMEOUT:?}", server.addr);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// CPU time the server used so far.
    pub fn cpu_time(&self) -> Option<Duration> {
        target::cpu_time_of(self.child.id())
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        // SIGTERM: ngircd closes its connections and exits at once.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The private configuration; each setting says what it lifts (see ngircd.conf(5)).
fn configuration(dir: &Path, port: u16, oper: &Oper) -> String {
    format!(
        "\
[Global]
Name = bench.invalid
Info = papo-bench peer
AdminInfo1 = papo-bench
AdminInfo2 = loopback only
AdminEMail = none@bench.invalid
# Only loopback, on the port papo-bench chose.
Listen = 127.0.0.1
Ports = {port}
MotdPhrase = papo-bench
HelpFile = {help}

[Limits]
# No cap on connections, in total or from one address (all clients are 127.0.0.1).
MaxConnections = 0
MaxConnectionsIP = 0
# Penalty times (the throttle after too many commands or bytes per second) become 0 s.
MaxPenaltyTime = 0
MaxNickLength = 30
# The server's keepalive PINGs come only after an hour of silence.
PingTimeout = 3600
PongTimeout = 600

[Options]
# Nothing looked up when a client connects, nothing forked.
DNS = no
Ident = no
PAM = no
# No snippets from the system's /etc/ngircd.
IncludeDir = {include}

# Clients become operators to set user mode +F (relaxed flood protection): ngircd then
# handles 10 commands per client per pass instead of 3 and never throttles them.
[Operator]
Name = {name}
Password = {password}
",
        help = dir.join("help.txt").display(),
        include = dir.join("conf.d").display(),
        name = oper.name,
        password = oper.password,
    )
}

/// Downloads and unpacks [`PACKAGES`] into a temporary directory.
fn fetch() -> Result<Binary> {
    let dir = tempfile::tempdir().context("cannot create a directory to unpack ngircd into")?;
    let download = || apt_get(dir.path(), &[&["download"][..], &PACKAGES[..]].concat());
    if let Err(first) = download() {
        // A fresh machine may have no package index yet: fetch it, then try once more.
        apt_get(dir.path(), &["update", "-qq"]).with_context(|| format!("{first:#}"))?;
        download()?;
    }
    let root = dir.path().join("root");
    for entry in fs::read_dir(dir.path())? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "deb") {
            let output = Command::new("dpkg").arg("-x").arg(&path).arg(&root).output();
            check(output, &format!("dpkg -x {}", path.display()))?;
        }
    }
    let path = root.join("usr/sbin/ngircd");
    anyhow::ensure!(path.is_file(), "the ngircd package has no usr/sbin/ngircd");
    let library_dirs = library_dirs(&root);
    Ok(Binary { path, library_dirs, _unpacked: Some(dir) })
}

/// `usr/lib`, `lib` and their per-architecture subdirectories under `root`, where the
/// unpacked libraries are.
fn library_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for base in ["usr/lib", "lib"] {
        let base = root.join(base);
        let Ok(entries) = fs::read_dir(&base) else { continue };
        dirs.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()));
        dirs.push(base);
    }
    dirs
}

fn apt_get(dir: &Path, args: &[&str]) -> Result<()> {
    let output = Command::new("apt-get").args(args).current_dir(dir).output();
    check(output, &format!("apt-get {}", args.join(" "))).context(
        "cannot fetch ngircd: on Debian, run as root or install it (apt-get install ngircd) and pass \
         --ngircd /usr/sbin/ngircd",
    )
}

fn check(output: std::io::Result<Output>, what: &str) -> Result<()> {
    let output = output.with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        bail!("{what} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// Sixteen hex digits from the kernel's random source, so no other local user can become
/// an operator on the benchmark's server.
fn random_password() -> Result<String> {
    let mut bytes = [0u8; 8];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Prints what ngircd logs that matters: errors and warnings once it is ready, a client
/// disconnected for a full write buffer (logged only as a notice), and any error before.
fn forward_log(pipe: impl Read + Send + 'static) {
    thread::spawn(move || {
        let mut ready = false;
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let level = log_level(&line);
            if line.contains("ready.") {
                ready = true;
            }
            let wanted = match level {
                Some(level) => level <= 3 || (ready && level <= 4) || line.contains("exhausted"),
                // Not a log line: the dynamic loader or a crash.
                None => true,
            };
            if wanted {
                eprintln!("ngircd: {line}");
            }
        }
    });
}

/// The syslog level of an ngircd log line `[PID:LEVEL TIME] text`.
fn log_level(line: &str) -> Option<u8> {
    let inside = line.strip_prefix('[')?.split(']').next()?;
    let level = inside.split_once(':')?.1.split_whitespace().next()?;
    level.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_auto_or_a_path() {
        assert_eq!("auto".parse::<Source>().unwrap(), Source::Auto);
        assert_eq!("/usr/sbin/ngircd".parse::<Source>().unwrap(), Source::Binary("/usr/sbin/ngircd".into()));
    }

    #[test]
    fn log_levels_are_read_from_the_bracket() {
        assert_eq!(log_level("[7119:5    0] ngIRCd 26.1 starting ..."), Some(5));
        assert_eq!(log_level("[7119:3   12] Receive buffer space exhausted"), Some(3));
        assert_eq!(log_level("ngircd: error while loading shared libraries"), None);
    }

    #[test]
    fn the_configuration_lifts_the_limits_and_listens_on_loopback_only() {
        let oper = Oper { name: "bench".into(), password: "0123456789abcdef".into() };
        let text = configuration(Path::new("/tmp/x"), 4242, &oper);
        for setting in [
            "Listen = 127.0.0.1",
            "Ports = 4242",
            "MaxConnectionsIP = 0",
            "MaxPenaltyTime = 0",
            "DNS = no",
            "Ident = no",
            "PAM = no",
            "IncludeDir = /tmp/x/conf.d",
            "Password = 0123456789abcdef",
        ] {
            assert!(text.lines().any(|line| line == setting), "{setting} missing from:\n{text}");
        }
    }

    #[test]
    fn a_missing_binary_is_refused_with_what_to_do() {
        let error = Binary::get(&Source::Binary("/nonexistent/ngircd".into())).unwrap_err().to_string();
        assert!(error.contains("--ngircd auto"), "{error}");
    }
}
