//! `papo-server`: the command-line front of the Papo chat server.

mod cli {
    pub mod admin;
    pub mod health;
    pub mod layers;
    pub mod logging;
    pub mod settings;
    pub mod store;
}

use std::ffi::OsString;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use cli::layers::Layered;
use cli::logging::Logging;
use cli::settings::Settings;
use papo_server::{LimitsDial, RegistrationPolicy, Shutdown};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
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
/// or SIGTERM: it tells the clients, flushes the database and exits 0. SIGHUP rereads the
/// settings file and applies the log filter, the registration policy and the limits (all but
/// --password-threads) at once.
///
/// Every setting is a flag, an environment variable and a key of the settings file (the
/// long flag without its dashes); a flag beats the environment, which beats the file.
#[derive(Debug, Parser)]
#[command(name = "papo-server", version, about, long_about, after_help = EXAMPLES)]
pub struct Cli {
    /// Settings file in TOML, e.g. `listen = "0.0.0.0:7878"` [default: $XDG_CONFIG_HOME/papo-server/config.toml,
    /// else /etc/papo/server.toml, whichever exists].
    #[arg(long, env = "PAPO_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Print the effective settings (in the settings file's format) and exit.
    #[arg(long)]
    print_config: bool,

    #[command(flatten)]
    settings: Settings,

    #[command(subcommand)]
    command: Option<Command>,
}

const EXAMPLES: &str = "\
Examples:
  papo-server                                  serve on 0.0.0.0:7878 with the defaults
  papo-server --listen 192.168.0.10:7878 --data-dir /srv/papo
  papo-server --config /etc/papo/server.toml --print-config
  papo-server health                           check a running server on its own port
  papo-server export backup.jsonl              back the store up (while it runs, too)
  papo-server admin users                      list the accounts (see admin --help)";

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that the server answers on its own port (the one --listen names; 127.0.0.1 for
    /// 0.0.0.0): exits 0 once it completes a handshake, 1 if it does not within 5 s.
    #[command(after_help = "\
The same settings as the server's (flags, environment, settings file) tell it where to connect
and which certificate to expect (the one in --data-dir, or --tls-cert); run it beside the server.

Example:
  papo-server --listen 0.0.0.0:7878 health")]
    Health,
    /// Read the whole store and its log (of a stopped server) and list any damage: exits 0
    /// if there is none, 1 if there is.
    #[command(after_help = "\
It changes nothing. Run it when a start is refused, or before trusting a restored backup.

Example:
  papo-server --data-dir /var/lib/papo-server check")]
    Check,
    /// Write every account, message, read state, resend entry, group and invite code as JSON
    /// lines (documented in the README), from the running server (through admin.sock in its
    /// data directory) or from a stopped one's directory.
    #[command(after_help = "\
Resume tokens are not exported: after an import everyone logs in again with their password.
Exports of format 1 (before invite codes were carried) still import.

Examples:
  papo-server export backup.jsonl
  papo-server --data-dir /var/lib/papo-server export - | gzip > papo-$(date +%F).jsonl.gz")]
    Export {
        /// The file to write, or - for standard output.
        #[arg(value_name = "FILE", default_value = "-")]
        file: PathBuf,
    },
    /// Load an export into a new data directory (--data-dir must hold no store yet).
    #[command(after_help = "\
Example:
  papo-server --data-dir /srv/papo-new import backup.jsonl")]
    Import {
        /// The export to read, or - for standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Administer accounts, invite codes and sessions: on the running server (through admin.sock
    /// in its data directory) or, for accounts and invite codes, on a stopped one's directory.
    /// Every action is logged: by the running server, or on a stopped one by this command.
    #[command(subcommand)]
    Admin(cli::admin::AdminCommand),
    /// Print a shell completion script for papo-server.
    #[command(after_help = "\
Examples:
  papo-server completions bash > /etc/bash_completion.d/papo-server
  papo-server completions zsh > \"${fpath[1]}/_papo-server\"
  papo-server completions fish > ~/.config/fish/completions/papo-server.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print papo-server's manual page (roff).
    #[command(after_help = "\
Example:
  papo-server man > /usr/local/share/man/man1/papo-server.1")]
    Man,
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let Layered { matches, file } = Layered::load(Cli::command(), &args).unwrap_or_else(|e| e.exit());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(cli, file.as_deref(), args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, file: Option<&Path>, args: Vec<OsString>) -> Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Some(Command::Health) => return cli::health::check(&cli.settings),
        Some(Command::Check) => return cli::store::check(&cli.settings.data_dir()?),
        Some(Command::Export { file }) => {
            let options = cli.settings.server_config(cli.settings.data_dir()?).store;
            return cli::store::export(&cli.settings.data_dir()?, Some(&file), options);
        }
        Some(Command::Import { file }) => {
            let options = cli.settings.server_config(cli.settings.data_dir()?).store;
            return cli::store::import(&cli.settings.data_dir()?, &file, options);
        }
        Some(Command::Admin(command)) => {
            // A running server logs what it is asked in its own log; on a stopped one the
            // command does the work, and logs it here, on stderr, the same way.
            let _logging = Logging::init(cli.settings.log(), cli.settings.log_format())?;
            let config = cli.settings.server_config(cli.settings.data_dir()?);
            return cli::admin::run(command, &config.data_dir, config.store, config.bcrypt_cost);
        }
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "papo-server", &mut stdout);
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::Man) => {
            clap_mangen::Man::new(Cli::command()).render(&mut stdout)?;
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    if cli.print_config {
        let data_dir = cli.settings.data_dir()?;
        stdout.write_all(cli.settings.to_toml(&data_dir, file).as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    serve(cli.settings, file, args)?;
    Ok(ExitCode::SUCCESS)
}

fn serve(settings: Settings, file: Option<&Path>, args: Vec<OsString>) -> Result<()> {
    // Everything the server creates (the database, the log, the TLS key) holds messages or
    // secrets: readable by its owner only, whoever else shares the machine.
    // SAFETY: umask only sets this process's file creation mask.
    unsafe { libc::umask(0o077) };
    let logging = Logging::init(settings.log(), settings.log_format())?;
    match file {
        Some(file) => info!(file = %file.display(), "read the settings file"),
        None => info!("no settings file; flags, environment and defaults only"),
    }
    let data_dir = settings.data_dir()?;
    raise_file_limit(settings.max_connections());

    let listen = settings.listen();
    let listener = bind(listen).with_context(|| {
        format!("cannot listen on {listen}; is another server running there? choose another with --listen")
    })?;
    let shutdown = Shutdown::new();
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot install signal handlers")?;
    let config = settings.server_config(data_dir);
    {
        let shutdown = shutdown.clone();
        let mut current = settings;
        let registration = Arc::clone(&config.registration);
        let limits = Arc::clone(&config.limits_dial);
        thread::Builder::new().name("signals".into()).spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    current = reload(current, &args, &logging, &registration, &limits);
                    continue;
                }
                if shutdown.is_triggered() {
                    warn!("second signal: exiting without waiting");
                    std::process::exit(1);
                }
                shutdown.trigger();
                info!(signal, "stopping");
            }
        })?;
    }
    papo_server::run(listener, config, &shutdown)?;
    Ok(())
}

/// SIGHUP: reads the settings again (the file may have changed; the command line and the
/// environment cannot), applies what can change while serving and names what needs a
/// restart. A file that no longer parses changes nothing.
fn reload(
    current: Settings,
    args: &[OsString],
    logging: &Logging,
    registration: &RegistrationPolicy,
    limits: &LimitsDial,
) -> Settings {
    let reloaded = Layered::load(Cli::command(), args)
        .and_then(|layered| Cli::from_arg_matches(&layered.matches).map(|cli| (cli, layered.file)));
    let (cli, file) = match reloaded {
        Ok(reloaded) => reloaded,
        Err(e) => {
            let reason = cli::layers::message(&e);
            warn!(%reason, "SIGHUP: cannot reload the settings; keeping the current ones");
            return current;
        }
    };
    let file = file.map_or_else(|| "none".to_owned(), |file| file.display().to_string());
    let changes = current.changes(&cli.settings);
    if changes.is_empty() {
        info!(%file, "SIGHUP: settings reread; nothing changed");
        return current;
    }
    let mut now = current;
    // Changes that could apply live but failed, and are already warned about.
    let mut refused: Vec<&str> = Vec::new();
    if changes.contains(&"log") {
        let log = cli.settings.log();
        let applied = Logging::filter(log).and_then(|filter| {
            // Said before the switch, so that the filter which showed the earlier lines shows
            // this one too.
            info!(%file, %log, "SIGHUP: applying the new log filter");
            logging.replace(filter)
        });
        match applied {
            Ok(()) => now = now.with_log(log),
            Err(e) => {
                warn!(error = %format!("{e:#}"), "SIGHUP: keeping the current log filter");
                refused.push("log");
            }
        }
    }
    if changes.contains(&"registration") {
        let policy = cli.settings.registration();
        registration.set(policy);
        info!(%file, registration = ?policy, "SIGHUP: applied the new registration policy");
        now = now.with_registration(policy);
    }
    let changed_limits: Vec<&str> =
        changes.iter().copied().filter(|key| Settings::is_live_limit(key)).collect();
    if !changed_limits.is_empty() {
        // The whole policy is put in force again, so that turning `no-rate-limits` off brings
        // back the limits the file asks for now.
        let next = now.clone().with_live_limits_of(&cli.settings);
        if limits.retune(&next.limit_policy()) {
            let applied = next.describe(&changed_limits);
            info!(%file, %applied, "SIGHUP: applied the new limits to what follows");
            now = next;
        } else {
            refused.extend(&changed_limits);
        }
    }
    // What still differs was not applied above, so it is the list of what needs a restart:
    // there is no second list of the live settings to keep in step.
    let needs_restart: Vec<&str> =
        now.changes(&cli.settings).into_iter().filter(|key| !refused.contains(key)).collect();
    if !needs_restart.is_empty() {
        warn!(%file, changed = %needs_restart.join(" "), "SIGHUP: these settings take effect only after a restart");
    }
    // Only what was applied becomes current, so a later SIGHUP still names the rest.
    now
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
