//! The server's settings as flags, environment variables and settings-file keys, and the
//! [`papo_server::Config`] they become.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::builder::BoolishValueParser;
use clap::{Args, ValueEnum};
use papo_server::limits::rate::Window;
use papo_server::limits::{workers_for_this_machine, LimitPolicy};
use papo_server::store::StoreOptions;
use papo_server::tls::TlsMode;
use papo_server::{Config, Registration, RegistrationPolicy};

/// Every setting of a serving papo-server; each field is a flag, its environment variable and
/// a key of the settings file (the long flag without its dashes).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Settings {
    /// Address and port to listen on; 0.0.0.0 accepts connections from the whole LAN.
    #[arg(long, env = "PAPO_LISTEN", default_value = "0.0.0.0:7878", value_name = "ADDR")]
    listen: SocketAddr,

    /// Directory of the database [default: $XDG_DATA_HOME/papo-server, e.g. ~/.local/share/papo-server].
    #[arg(long, env = "PAPO_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// bcrypt cost of password hashes (4-31). Each step doubles the work per login: 12 takes
    /// about 0.3 s on a modest CPU, which slows password guessing; lower it only for tests.
    #[arg(long, env = "PAPO_BCRYPT_COST", default_value_t = 12, value_name = "N",
          value_parser = clap::value_parser!(u32).range(4..=31))]
    bcrypt_cost: u32,

    /// Connections served at once; further clients are told the server is full.
    #[arg(long, env = "PAPO_MAX_CONNECTIONS", default_value_t = 10_000, value_name = "N")]
    max_connections: usize,

    /// PEM certificate chain to serve instead of the self-signed one generated in the data
    /// directory (for example one signed by your organisation's CA). Needs --tls-key.
    #[arg(
        long,
        env = "PAPO_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "plaintext"
    )]
    tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "PAPO_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Turn TLS off: passwords and messages cross the network in the clear. For debugging
    /// and comparisons only; clients must then connect with `papo --plaintext`. The variable
    /// takes 1/0, true/false or yes/no.
    #[arg(long, env = "PAPO_PLAINTEXT", value_parser = BoolishValueParser::new())]
    plaintext: bool,

    /// KiB of write-ahead log between checkpoints of the database. Larger means fewer
    /// checkpoints, and more to replay when starting after a crash or power loss.
    #[arg(long, env = "PAPO_WAL_SEGMENT_KIB", default_value_t = StoreOptions::default().wal_segment / 1024, value_name = "KIB",
          value_parser = clap::value_parser!(u64).range(64..=4 * 1024 * 1024))]
    wal_segment_kib: u64,

    /// Microseconds the committer leaves between the end of one disk sync and the start of
    /// the next, so that messages arriving meanwhile share a sync. Adds at most this much
    /// latency, only under load; 0 syncs as soon as anything is waiting.
    #[arg(long, env = "PAPO_COMMIT_GAP_US", default_value_t = StoreOptions::default().commit_gap.as_micros() as u64,
          value_name = "MICROSECONDS", value_parser = clap::value_parser!(u64).range(0..=100_000))]
    commit_gap_us: u64,

    /// Messages one user may send a second, on average (bursts of ten times as many pass);
    /// faster ones are refused with "you are sending too fast" and not stored. SIGHUP applies
    /// a changed one to the messages that follow.
    #[arg(long, env = "PAPO_MESSAGES_PER_SECOND", default_value_t = 20, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    messages_per_second: u32,

    /// Accounts that may be created from one address in an hour. SIGHUP applies a changed
    /// one to the registrations that follow (those of the last hour still count).
    #[arg(long, env = "PAPO_REGISTRATIONS_PER_HOUR", default_value_t = 10, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    registrations_per_hour: u32,

    /// Who may create an account: open (anyone who reaches the server), invite (only with a
    /// code from `papo-server admin invite create`) or closed (no one). SIGHUP applies a
    /// changed one at once.
    #[arg(long, env = "PAPO_REGISTRATION", value_enum, default_value_t = Registration::Open, value_name = "POLICY")]
    registration: Registration,

    /// Turn off every limit kept by address or by user (login attempts, registrations,
    /// message rate, connections not logged in), for load tests on a closed network: on a
    /// LAN, one machine could then keep everyone else out. SIGHUP turns them off or on again
    /// for what follows. The variable takes 1/0, true/false or yes/no.
    #[arg(long, env = "PAPO_NO_RATE_LIMITS", value_parser = BoolishValueParser::new())]
    no_rate_limits: bool,

    /// Seconds a connection has from its handshake to log in (`Ping` does not extend it);
    /// then it is closed, so that connections that never log in cannot hold the server's
    /// places. SIGHUP applies a changed one to the connections that follow.
    #[arg(long, env = "PAPO_LOGIN_DEADLINE_SECS", default_value_t = LimitPolicy::default().login_deadline.as_secs(),
          value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    login_deadline_secs: u64,

    /// Connections not logged in that one address may hold (at most a quarter of those
    /// allowed in all); more from it are told the server is full, so that one machine cannot
    /// keep the others out. SIGHUP applies a changed one to the connections that follow.
    #[arg(long, env = "PAPO_UNAUTHENTICATED_PER_ADDRESS", default_value_t = LimitPolicy::default().unauthenticated_per_address as u64,
          value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    unauthenticated_per_address: u64,

    /// Percent of --max-connections that connections not logged in may hold in all; the rest
    /// is kept for logged-in users and for logins. SIGHUP applies a changed one to the
    /// connections that follow.
    #[arg(long, env = "PAPO_UNAUTHENTICATED_PERCENT", default_value_t = LimitPolicy::default().unauthenticated_percent,
          value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    unauthenticated_percent: u8,

    /// Threads that check passwords (bcrypt, the one slow request), taking turns between
    /// addresses, so that password guessing cannot take every core [default: the number of
    /// cores, at least 2]. A change needs a restart.
    #[arg(long, env = "PAPO_PASSWORD_THREADS", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=256))]
    password_threads: Option<u64>,

    /// MiB of memory the database may use as its cache.
    #[arg(long, env = "PAPO_CACHE_MIB", default_value_t = StoreOptions::default().cache_bytes >> 20, value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(8..=1024 * 1024))]
    cache_mib: u64,

    /// MiB to keep free on the data directory's disk. Below it, new messages, accounts and
    /// saved sessions are refused (senders are told the disk is full, nothing is lost, and
    /// reading and logging in go on) until space is freed; then storing resumes by itself.
    /// 0 turns the check off.
    #[arg(long, env = "PAPO_MIN_FREE_MIB", default_value_t = StoreOptions::default().reserve_bytes >> 20, value_name = "MIB")]
    min_free_mib: u64,

    /// Don't announce the server on the LAN. Unless given, a server that listens beyond
    /// loopback announces itself over mDNS/DNS-SD as `_papo._tcp` (with its certificate's
    /// fingerprint), so `papo discover` finds it. The variable takes 1/0, true/false or yes/no.
    #[arg(long, env = "PAPO_NO_ANNOUNCE", value_parser = BoolishValueParser::new())]
    no_announce: bool,

    /// Name to announce the server under on the LAN [default: the host name].
    #[arg(long, env = "PAPO_NAME", value_name = "NAME", value_parser = instance_name)]
    name: Option<String>,

    /// Log filter, e.g. `info`, `debug` or `papo_server=debug` (logs go to stderr; SIGHUP
    /// applies a changed one at once).
    #[arg(long, env = "PAPO_LOG", default_value = "info", value_name = "FILTER")]
    log: String,

    /// Log lines as text (coloured only on a terminal, and never with NO_COLOR set) or as
    /// one JSON object each.
    #[arg(long, env = "PAPO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    log_format: LogFormat,
}

/// A DNS-SD instance name: one DNS label of UTF-8, at most 63 bytes, with no control
/// characters (browsers show it as it is).
fn instance_name(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > 63 {
        return Err(format!("a name is 1 to 63 bytes; this one has {}", text.len()));
    }
    if text.chars().any(char::is_control) {
        return Err("a name has no control characters".to_owned());
    }
    Ok(text.to_owned())
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `2026-12-01T20:00:00Z  INFO target: message key=value`.
    Text,
    /// One JSON object per line.
    Json,
}

impl Settings {
    /// Where to listen.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The connection cap.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The log filter.
    pub fn log(&self) -> &str {
        &self.log
    }

    /// The log line format.
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }

    /// These settings with another log filter.
    pub fn with_log(self, log: &str) -> Self {
        Self { log: log.to_owned(), ..self }
    }

    /// The registration policy.
    pub fn registration(&self) -> Registration {
        self.registration
    }

    /// These settings with another registration policy.
    pub fn with_registration(self, registration: Registration) -> Self {
        Self { registration, ..self }
    }

    /// `--data-dir`, or the XDG data directory when it is not given.
    pub fn data_dir(&self) -> Result<PathBuf> {
        match &self.data_dir {
            Some(dir) => Ok(dir.clone()),
            None => Ok(directories::ProjectDirs::from("", "", "papo-server")
                .context("cannot find a home directory for the data; pass --data-dir")?
                .data_dir()
                .to_owned()),
        }
    }

    /// Where the certificate comes from, or that TLS is off.
    pub fn tls_mode(&self) -> TlsMode {
        match (self.plaintext, &self.tls_cert, &self.tls_key) {
            (true, ..) => TlsMode::Off,
            (false, Some(cert), Some(key)) => TlsMode::Files { cert: cert.clone(), key: key.clone() },
            (false, ..) => TlsMode::SelfSigned,
        }
    }

    /// What `papo_server::run` serves with.
    pub fn server_config(&self, data_dir: PathBuf) -> Config {
        let mut config = Config::new(data_dir);
        config.bcrypt_cost = self.bcrypt_cost;
        config.max_connections = self.max_connections;
        config.store = StoreOptions {
            wal_segment: self.wal_segment_kib * 1024,
            commit_gap: Duration::from_micros(self.commit_gap_us),
            cache_bytes: self.cache_mib << 20,
            reserve_bytes: self.min_free_mib << 20,
        };
        config.tls = self.tls_mode();
        config.announce_as =
            (!self.no_announce).then(|| self.name.clone().unwrap_or_else(papo_server::host_name));
        config.registration = Arc::new(RegistrationPolicy::new(self.registration));
        config.limits = self.limit_policy();
        config
    }

    /// The limits these settings ask for. The deadline to log in and the password threads
    /// hold with `--no-rate-limits` too: they are limits by connection and by machine, not
    /// by address or user.
    pub fn limit_policy(&self) -> LimitPolicy {
        let by_address_and_user = if self.no_rate_limits {
            LimitPolicy::unlimited()
        } else {
            LimitPolicy {
                messages_per_second: f64::from(self.messages_per_second),
                message_burst: f64::from(self.messages_per_second) * 10.0,
                registrations_per_address: Window {
                    limit: usize::try_from(self.registrations_per_hour).unwrap_or(usize::MAX),
                    ..LimitPolicy::default().registrations_per_address
                },
                unauthenticated_per_address: usize::try_from(self.unauthenticated_per_address)
                    .unwrap_or(usize::MAX),
                unauthenticated_percent: self.unauthenticated_percent,
                ..LimitPolicy::default()
            }
        };
        LimitPolicy {
            login_deadline: Duration::from_secs(self.login_deadline_secs),
            password_threads: self.password_threads(),
            ..by_address_and_user
        }
    }

    /// `--password-threads`, or the machine's default.
    fn password_threads(&self) -> usize {
        self.password_threads
            .map_or_else(workers_for_this_machine, |threads| usize::try_from(threads).unwrap_or(usize::MAX))
    }

    /// These settings with the limits of `other` that SIGHUP applies ([`LIVE_LIMITS`]).
    pub fn with_live_limits_of(mut self, other: &Settings) -> Self {
        for limit in &LIVE_LIMITS {
            (limit.take)(&mut self, other);
        }
        self
    }

    /// Whether `key` names a limit that [`Self::with_live_limits_of`] takes, which a running
    /// server applies to what follows.
    pub fn is_live_limit(key: &str) -> bool {
        LIVE_LIMITS.iter().any(|limit| limit.key == key)
    }

    /// `keys` with their values here, as `key=value` separated by spaces, for the log.
    pub fn describe(&self, keys: &[&str]) -> String {
        let entries = self.entries(None);
        keys.iter()
            .filter_map(|key| entries.iter().find(|(name, _)| name == key))
            .map(|(key, value)| match value {
                Entry::Set(value) | Entry::Unset { here: Some(value) } => format!("{key}={value}"),
                Entry::Unset { here: None } => format!("{key} unset"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Every setting as its settings-file key and value, with `data_dir` standing for an
    /// unset `--data-dir`.
    fn entries(&self, data_dir: Option<&Path>) -> Vec<(&'static str, Entry)> {
        let path = |path: &Path| toml::Value::String(path.display().to_string());
        let number = |n: u64| toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));
        let password_threads = match self.password_threads {
            Some(threads) => Entry::Set(number(threads)),
            // Unset, it stays unset in a printed file, so that a copy on another machine uses
            // that machine's cores rather than pinning this one's.
            None => Entry::Unset { here: Some(number(self.password_threads() as u64)) },
        };
        let format = self.log_format.to_possible_value().expect("no variant is skipped");
        let registration = self.registration.to_possible_value().expect("no variant is skipped");
        vec![
            ("listen", Entry::Set(toml::Value::String(self.listen.to_string()))),
            ("data-dir", Entry::from(self.data_dir.as_deref().or(data_dir).map(path))),
            ("bcrypt-cost", Entry::Set(number(self.bcrypt_cost.into()))),
            ("max-connections", Entry::Set(number(self.max_connections as u64))),
            ("tls-cert", Entry::from(self.tls_cert.as_deref().map(path))),
            ("tls-key", Entry::from(self.tls_key.as_deref().map(path))),
            ("plaintext", Entry::Set(toml::Value::Boolean(self.plaintext))),
            ("wal-segment-kib", Entry::Set(number(self.wal_segment_kib))),
            ("commit-gap-us", Entry::Set(number(self.commit_gap_us))),
            ("messages-per-second", Entry::Set(number(self.messages_per_second.into()))),
            ("registrations-per-hour", Entry::Set(number(self.registrations_per_hour.into()))),
            ("registration", Entry::Set(toml::Value::String(registration.get_name().to_owned()))),
            ("no-rate-limits", Entry::Set(toml::Value::Boolean(self.no_rate_limits))),
            ("login-deadline-secs", Entry::Set(number(self.login_deadline_secs))),
            ("unauthenticated-per-address", Entry::Set(number(self.unauthenticated_per_address))),
            ("unauthenticated-percent", Entry::Set(number(self.unauthenticated_percent.into()))),
            ("password-threads", password_threads),
            ("cache-mib", Entry::Set(number(self.cache_mib))),
            ("min-free-mib", Entry::Set(number(self.min_free_mib))),
            ("no-announce", Entry::Set(toml::Value::Boolean(self.no_announce))),
            ("name", Entry::from(self.name.clone().map(toml::Value::String))),
            ("log", Entry::Set(toml::Value::String(self.log.clone()))),
            ("log-format", Entry::Set(toml::Value::String(format.get_name().to_owned()))),
        ]
    }

    /// The settings as a settings file, as `--print-config` shows them.
    pub fn to_toml(&self, data_dir: &Path, file: Option<&Path>) -> String {
        let source = match file {
            Some(file) => format!("the settings file {}", file.display()),
            None => "no settings file".to_owned(),
        };
        let mut out = format!(
            "# papo-server's effective settings, from {source}, the environment and the command line.\n\
             # This is itself a valid settings file.\n"
        );
        for (key, value) in self.entries(Some(data_dir)) {
            match value {
                Entry::Set(value) => out.push_str(&format!("{key} = {value}\n")),
                Entry::Unset { here: Some(value) } => {
                    out.push_str(&format!("# {key} is not set; here that means {value}\n"));
                }
                Entry::Unset { here: None } => out.push_str(&format!("# {key} is not set\n")),
            }
        }
        out
    }

    /// The keys whose values differ in `other`.
    pub fn changes(&self, other: &Settings) -> Vec<&'static str> {
        self.entries(None)
            .into_iter()
            .zip(other.entries(None))
            .filter(|(mine, theirs)| mine != theirs)
            .map(|((key, _), _)| key)
            .collect()
    }
}

/// One setting's value, as a settings file would hold it.
#[derive(Debug, PartialEq)]
enum Entry {
    Set(toml::Value),
    /// Not set; `here` is what the server computes for it on this machine, if anything.
    Unset {
        here: Option<toml::Value>,
    },
}

impl From<Option<toml::Value>> for Entry {
    fn from(value: Option<toml::Value>) -> Self {
        value.map_or(Entry::Unset { here: None }, Entry::Set)
    }
}

/// A limit that SIGHUP applies to a running server: its settings-file key and how
/// [`Settings::with_live_limits_of`] takes it, side by side so that they cannot drift apart.
struct LiveLimit {
    key: &'static str,
    take: fn(&mut Settings, &Settings),
}

/// The limits a running server applies to what follows; every other change but `log` and
/// `registration` needs a restart.
const LIVE_LIMITS: [LiveLimit; 6] = [
    LiveLimit {
        key: "messages-per-second",
        take: |to, from| to.messages_per_second = from.messages_per_second,
    },
    LiveLimit {
        key: "registrations-per-hour",
        take: |to, from| to.registrations_per_hour = from.registrations_per_hour,
    },
    LiveLimit { key: "no-rate-limits", take: |to, from| to.no_rate_limits = from.no_rate_limits },
    LiveLimit {
        key: "login-deadline-secs",
        take: |to, from| to.login_deadline_secs = from.login_deadline_secs,
    },
    LiveLimit {
        key: "unauthenticated-per-address",
        take: |to, from| to.unauthenticated_per_address = from.unauthenticated_per_address,
    },
    LiveLimit {
        key: "unauthenticated-percent",
        take: |to, from| to.unauthenticated_percent = from.unauthenticated_percent,
    },
];

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        settings: Settings,
    }

    fn parse(args: &[&str]) -> Settings {
        Flags::try_parse_from(std::iter::once("papo-server").chain(args.iter().copied())).unwrap().settings
    }

    /// Flags that change every setting from its default but the TLS ones, which
    /// `--plaintext` excludes.
    const ALL_BUT_TLS: [&str; 21] = [
        "--listen=127.0.0.1:1",
        "--data-dir=/elsewhere",
        "--bcrypt-cost=5",
        "--max-connections=9",
        "--plaintext",
        "--wal-segment-kib=128",
        "--commit-gap-us=7",
        "--messages-per-second=3",
        "--registrations-per-hour=2",
        "--registration=closed",
        "--no-rate-limits",
        "--login-deadline-secs=5",
        "--unauthenticated-per-address=4",
        "--unauthenticated-percent=25",
        "--password-threads=3",
        "--cache-mib=9",
        "--min-free-mib=1",
        "--no-announce",
        "--name=elsewhere",
        "--log=debug",
        "--log-format=json",
    ];

    #[test]
    fn with_live_limits_of_takes_every_live_limit_and_nothing_else() {
        let live: Vec<&str> = LIVE_LIMITS.iter().map(|limit| limit.key).collect();
        let current = parse(&[]);
        let others = [parse(&ALL_BUT_TLS), parse(&["--tls-cert=/cert.pem", "--tls-key=/key.pem"])];
        let mut covered: Vec<&str> = others.iter().flat_map(|other| current.changes(other)).collect();
        covered.sort_unstable();
        covered.dedup();
        assert_eq!(covered.len(), current.entries(None).len(), "the others differ in every setting");
        for other in &others {
            let taken = current.clone().with_live_limits_of(other);
            let changed = current.changes(other);
            let expected: Vec<&str> = live.iter().copied().filter(|key| changed.contains(key)).collect();
            assert_eq!(current.changes(&taken), expected, "what it takes is what the list names");
            assert!(
                taken.changes(other).iter().all(|key| !Settings::is_live_limit(key)),
                "no live limit is left behind"
            );
        }
    }
}
