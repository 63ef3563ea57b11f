//! `papo-server`: the command-line front of the Papo chat server.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use papo_server::store::StoreOptions;
use papo_server::tls::TlsMode;
use papo_server::{Config, Shutdown};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use socket2::{Domain, Socket, Type};
use tracing::{info, warn};

// sled copies tree nodes on every write, and glibc's allocator spent a third of the
// committer's time on that churn; jemalloc takes ~40% more messages per second through.
// Thread caches are off: with them every connection thread would hold ~80 KiB of cached
// memory (mimalloc's per-thread pages cost ~750 KiB), and 10,000 connections must fit
// comfortably; without them a connection costs ~40 KiB, as with glibc.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its options from this symbol at start-up.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"tcache:false\0";

/// Pending connections the kernel may queue; the default 128 overflows when a whole lab
/// (or a load test) connects at once.
const LISTEN_BACKLOG: i32 = 4096;

/// Papo's LAN chat server.
///
/// Keeps accounts (bcrypt-hashed passwords) and every conversation in a sled database,
/// delivers messages live to everyone online and keeps the rest until their recipient logs
/// in. Clients connect with `papo HOST`. Connections are encrypted with TLS: on first start
/// the server generates a self-signed certificate in its data directory and logs its
/// SHA-256 fingerprint, which clients show before trusting the server. Stop it with Ctrl+C
/// or SIGTERM: it tells the clients, flushes the database and exits 0.
#[derive(Debug, Parser)]
#[command(name = "papo-server", version, about, long_about)]
struct Cli {
    /// Address and port to listen on; 0.0.0.0 accepts connections from the whole LAN.
    #[arg(long, env = "PAPO_LISTEN", default_value = "0.0.0.0:7878", value_name = "ADDR")]
    listen: SocketAddr,

    /// Directory of the database [default: $XDG_DATA_HOME/papo-server, e.g. ~/.local/share/papo-server].
    #[arg(long, env = "PAPO_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// bcrypt cost of password hashes (4-31). Each step doubles the work per login: 12 takes
    /// about 0.3 s on a modest CPU, which slows password guessing; lower it only for tests.
    #[arg(long, env = "PAPO_BCRYPT_COST", default_value_t = 12, value_parser = clap::value_parser!(u32).range(4..=31))]
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
    /// and comparisons only; clients must then connect with `papo --plaintext`.
    #[arg(long, env = "PAPO_PLAINTEXT")]
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

    /// Log filter, e.g. `info`, `debug` or `papo_server=debug` (logs go to stderr).
    #[arg(long, env = "PAPO_LOG", default_value = "info", value_name = "FILTER")]
    log: String,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Everything the server creates (the database, the log, the TLS key) holds messages or
    // secrets: readable by its owner only, whoever else shares the machine.
    // SAFETY: umask only sets this process's file creation mask.
    unsafe { libc::umask(0o077) };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).context("invalid --log filter")?)
        .with_writer(std::io::stderr)
        // If stderr goes away (a closed pipe), lose the logs but keep serving: by default
        // a failed write panics the logging thread.
        .log_internal_errors(false)
        .init();

    let data_dir = match cli.data_dir {
        Some(dir) => dir,
        None => directories::ProjectDirs::from("", "", "papo-server")
            .context("cannot find a home directory for the data; pass --data-dir")?
            .data_dir()
            .to_owned(),
    };
    raise_file_limit(cli.max_connections);

    let listener = bind(cli.listen).with_context(|| {
        format!(
            "cannot listen on {}; is another server running there? choose another with --listen",
            cli.listen
        )
    })?;
    let shutdown = Shutdown::new();
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;
    {
        let shutdown = shutdown.clone();
        thread::Builder::new().name("signals".into()).spawn(move || {
            for signal in signals.forever() {
                if shutdown.is_triggered() {
                    warn!("second signal: exiting without waiting");
                    std::process::exit(1);
                }
                shutdown.trigger();
                info!(signal, "stopping");
            }
        })?;
    }

    let mut config = Config::new(data_dir);
    config.bcrypt_cost = cli.bcrypt_cost;
    config.max_connections = cli.max_connections;
    config.store = StoreOptions {
        wal_segment: cli.wal_segment_kib * 1024,
        commit_gap: Duration::from_micros(cli.commit_gap_us),
        cache_bytes: cli.cache_mib << 20,
        reserve_bytes: cli.min_free_mib << 20,
    };
    config.tls = match (cli.plaintext, cli.tls_cert, cli.tls_key) {
        (true, ..) => TlsMode::Off,
        (false, Some(cert), Some(key)) => TlsMode::Files { cert, key },
        (false, ..) => TlsMode::SelfSigned,
    };
    papo_server::run(listener, config, &shutdown)?;
    Ok(())
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Each connection needs a descriptor; lift the soft limit to the hard one so the
/// connection cap, not the default 1024, decides how many clients fit.
fn raise_file_limit(max_connections: usize) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    let current = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
        limit.rlim_cur
    };
    let needed = max_connections as u64 + 64;
    if current < needed {
        warn!(
            open_files = current,
            max_connections, "the open-file limit is below --max-connections; raise `ulimit -n`"
        );
    }
}
