//! `papo-bench`: load generator for `papo-server`.
//!
//! Starts a `papo-server` child on a loopback port (or targets `--server`), drives it with
//! real protocol clients and prints throughput, latency percentiles and server memory.
//! `versus` runs the same pairs workload against Debian's ngircd over IRC as well, for
//! ratios to a peer measured on the same machine in the same run.
//! Every run is bounded in message count and in time.
// A load generator converts durations to whole microseconds and nanoseconds (u64 holds 584
// years of them) and rates to message counts, rounding on purpose.
#![allow(clippy::cast_possible_truncation)]

mod attack;
mod connections;
mod disk;
mod group;
mod irc;
mod login;
mod mixed;
mod ngircd;
mod pairs;
mod papo_pairs;
mod report;
mod target;
mod users;
mod versus;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use papo_protocol::{Fingerprint, Security};

use attack::AttackConfig;
use group::GroupConfig;
use mixed::MixedConfig;
use pairs::PairsConfig;
use report::{latency_line, mib};
use target::Target;
use versus::VersusConfig;

/// Load generator for papo-server (loopback only).
#[derive(Debug, Parser)]
#[command(name = "papo-bench", version, about)]
struct Cli {
    /// Target a running server at HOST:PORT instead of starting one (no RSS figures then).
    #[arg(long, global = true)]
    server: Option<String>,

    /// The papo-server binary to start [default: next to papo-bench, else on the PATH].
    #[arg(long, global = true)]
    server_bin: Option<PathBuf>,

    /// bcrypt cost of the started server; low by default so logins do not dominate.
    #[arg(long, global = true, default_value_t = 4)]
    bcrypt_cost: u32,

    /// Run without TLS (starts the server with --plaintext), to measure what TLS costs.
    #[arg(long, global = true)]
    plaintext: bool,

    /// With --server: the SHA-256 fingerprint of its certificate, as it logs it.
    #[arg(long, global = true, value_name = "SHA256")]
    trust_fingerprint: Option<Fingerprint>,

    /// Hard time limit of the measured phase, in seconds.
    #[arg(long, global = true, default_value_t = 120)]
    time_limit: u64,

    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    #[command(flatten)]
    Load(Load),
    /// The disk alone: small overwrites + fdatasync back to back, as a loaded committer
    /// syncs, optionally with cores kept busy; starts no server.
    Disk {
        /// Seconds to run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Threads spinning meanwhile, standing in for a busy server and load generator.
        #[arg(long, default_value_t = 0)]
        busy_threads: usize,
        /// Microseconds to wait before each write; 0 syncs back to back. A few thousand
        /// show what a sync alone costs: ext4 without a journal then writes the inode as
        /// well, its modification time having moved.
        #[arg(long, default_value_t = 0)]
        pause_us: u64,
        /// Directory to probe, on the disk a server's data directory would use [default: a
        /// temporary directory].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The pairs workload against papo-server and against Debian's ngircd (IRC, in memory),
    /// alternating, with the ratios papo ÷ ngircd.
    ///
    /// Each run starts a fresh plaintext papo-server and a fresh ngircd, drives both with the
    /// same senders, windows, bodies and clocks, and measures messages/s, send→deliver
    /// percentiles and server CPU per message (from /proc, over the measured phase only).
    /// Over IRC every message is a PRIVMSG whose text carries its send time and sequence
    /// number, and each batch a sender writes ends with a PING: its PONG acknowledges the
    /// batch, so the window counts messages the server has not handled yet. ngircd is
    /// started on a free loopback port with penalties off, no per-address limit, no DNS,
    /// ident or PAM lookups, and every client an operator with user mode +F (no throttle).
    /// It still handles at most 10 commands per client per pass and drops a client with
    /// 2,048 bytes of unprocessed input, which bounds --window.
    ///
    /// Prints each run, then a Markdown table of medians and ranges (ratios taken within
    /// each run), the disk's fdatasync p50 timed in the same runs, and the load average.
    /// For example `versus --runs 5` (100 pairs, window 8) or `versus --pairs 1 --window 1
    /// --messages 5000 --runs 5` (one conversation, one message at a time).
    Versus {
        /// Concurrent sending pairs.
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Messages per pair.
        #[arg(long, default_value_t = 2000)]
        messages: u64,
        /// Unacknowledged sends per sender.
        #[arg(long, default_value_t = 8)]
        window: u64,
        /// Body bytes (at least 30: send time and sequence number; at most 456, for IRC).
        #[arg(long, default_value_t = 64)]
        body: usize,
        /// Total messages per second over all pairs [default: as fast as the window allows].
        #[arg(long)]
        rate: Option<f64>,
        /// Runs of both servers, alternating which goes first.
        #[arg(long, default_value_t = 1)]
        runs: usize,
        /// The ngircd binary, or `auto` to fetch Debian's package with `apt-get download`
        /// and unpack it into a temporary directory (nothing is installed).
        #[arg(long, default_value = "auto", value_name = "PATH|auto")]
        ngircd: ngircd::Source,
    },
    /// A group and direct messages at once against one server, beside each alone: do a
    /// group's texts slow direct messages down, or the other way round?
    ///
    /// Each run has three phases, each on a fresh server: the group workload alone (as
    /// `group` runs it, with the same flags), --pairs pairs sending direct messages at
    /// --pair-rate in all alone (as `latency` runs them), and both at once. The pairs are
    /// paced to send for as long as each group's sender does (--messages ÷ --rate seconds),
    /// so the two overlap throughout; the direct messages' bodies are as long as the texts'.
    /// Each phase prints the texts acknowledged per second, send→each member and send→last
    /// member percentiles, the direct messages acknowledged per second and their
    /// send→deliver percentiles, errors, and the CPU time the server and the load generator
    /// (which share the cores) used over the measured phase; the phases alone also give the
    /// server's per text and per direct message. Runs alternate whether the phases alone or
    /// the mixed one go first. Every phase is bounded by --time-limit.
    ///
    /// Then a Markdown table: each figure alone and mixed (the median and range over the
    /// runs) and mixed ÷ alone, taken within each run. Fails after the table if any message
    /// was refused or did not arrive everywhere within --time-limit. For example `mixed
    /// --members 100 --rate 100 --pairs 50 --pair-rate 2000 --runs 3`.
    Mixed {
        #[command(flatten)]
        group: GroupArgs,
        /// Pairs sending direct messages beside the group.
        #[arg(long, default_value_t = 50)]
        pairs: usize,
        /// Direct messages per second over all pairs.
        #[arg(long, default_value_t = 2000.0)]
        pair_rate: f64,
        /// Runs of the three phases.
        #[arg(long, default_value_t = 1)]
        runs: usize,
    },
    /// What one hostile machine (127.0.0.1) costs a user on another (127.0.0.2), each
    /// figure beside the same one without the attacker, against a server with its
    /// production limits and, with --compare, one with its limits by address and by user
    /// off (the password pool and the deadline to log in stay).
    ///
    /// guessing: --guessers connections send wrong-password logins for random names as fast
    /// as they are answered, reconnecting when closed; the user's login (connect,
    /// handshake, password) is timed --logins times. For the figure run it at
    /// --bcrypt-cost 12 over TLS. holding: the attacker keeps as many connections as the
    /// server's cap (--max-connections) shaken hands and pinging, never logging in, for
    /// --hold-seconds; the user tries to log in every 250 ms. flooding: one session floods
    /// 1 KB messages, then (limits off only) one moves its read marker through a
    /// --conversation-message conversation, while --senders users send ten messages a
    /// second each, timed until acknowledged.
    Attack {
        /// Which attack [default: all three].
        #[arg(value_enum)]
        scenario: Option<Scenario>,
        /// Also run each attack against a server with its limits by address and by user off.
        #[arg(long)]
        compare: bool,
        /// Guessing connections.
        #[arg(long, default_value_t = 64)]
        guessers: usize,
        /// Timed logins of the user, alone and under guessing.
        #[arg(long, default_value_t = 10)]
        logins: usize,
        /// Connection cap of the server the connections are held on.
        #[arg(long, default_value_t = 200)]
        max_connections: usize,
        /// Seconds the connections are held (the server cuts them off after 30 s).
        #[arg(long, default_value_t = 40)]
        hold_seconds: u64,
        /// Users sending while the flood runs.
        #[arg(long, default_value_t = 4)]
        senders: usize,
        /// Seconds of each flooding phase.
        #[arg(long, default_value_t = 5)]
        flood_seconds: u64,
        /// Messages in the conversation the read marker moves through.
        #[arg(long, default_value_t = 20_000)]
        conversation: u64,
    },
}

/// The attacks of `papo-bench attack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    Guessing,
    Holding,
    Flooding,
}

/// The modes that drive a server.
#[derive(Debug, Subcommand)]
enum Load {
    /// Pairs sending as fast as acknowledgements allow.
    Throughput {
        /// Concurrent sending pairs.
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Messages per pair.
        #[arg(long, default_value_t = 2000)]
        messages: u64,
        /// Unacknowledged sends per sender.
        #[arg(long, default_value_t = 64)]
        window: u64,
        /// Body bytes (at least 30: the send time and sequence number).
        #[arg(long, default_value_t = 64)]
        body: usize,
    },
    /// Pairs sending at a fixed total rate, for latency percentiles.
    Latency {
        /// Total messages per second.
        #[arg(long, default_value_t = 10_000.0)]
        rate: f64,
        /// Concurrent sending pairs.
        #[arg(long, default_value_t = 20)]
        pairs: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Many idle logged-in clients plus one active pair.
    Connections {
        /// Idle clients.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// Messages per second of the active pair.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Seconds the active pair runs.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// One sender into a group of --members users, all online, at a fixed rate (or
    /// --groups such groups at once, each with its own members and sender): texts
    /// acknowledged per second, send→each member and send→last member percentiles, and the
    /// server's CPU time per text.
    Group(GroupArgs),
    /// Password logins per second, and resume-token reconnects.
    Login {
        /// Password logins to time.
        #[arg(long, default_value_t = 200)]
        logins: usize,
        /// Clients reconnecting with resume tokens.
        #[arg(long, default_value_t = 1000)]
        resumes: usize,
        /// Client threads.
        #[arg(long, default_value_t = 8)]
        threads: usize,
    },
}

/// The group workload, of `group` and of `mixed`.
#[derive(Debug, Args)]
struct GroupArgs {
    /// Groups sending at once.
    #[arg(long, default_value_t = 1)]
    groups: usize,
    /// Members of each group, the sender included (at most 500).
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Texts each sender sends.
    #[arg(long, default_value_t = 1000)]
    messages: u64,
    /// Texts per second of each sender.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Unacknowledged sends.
    #[arg(long, default_value_t = 16)]
    window: u64,
    /// Body bytes (at least 30: the send time and sequence number).
    #[arg(long, default_value_t = 64)]
    body: usize,
}

impl GroupArgs {
    fn config(&self, time_limit: Duration) -> GroupConfig {
        let Self { groups, members, messages, rate, window, body } = *self;
        GroupConfig { groups, members, messages, rate, window, body_len: body, time_limit }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let time_limit = Duration::from_secs(cli.time_limit);
    match cli.mode {
        Mode::Disk { seconds, busy_threads, pause_us, ref dir } => print_disk(
            Duration::from_secs(seconds).min(time_limit),
            busy_threads,
            Duration::from_micros(pause_us),
            dir.as_deref(),
        ),
        Mode::Load(ref load) => run_load(&cli, load, time_limit),
        Mode::Versus { pairs, messages, window, body, rate, runs, ref ngircd } => {
            anyhow::ensure!(
                cli.server.is_none(),
                "versus starts both servers itself, to read their CPU time: drop --server"
            );
            anyhow::ensure!(
                runs >= 1 && pairs >= 1 && window >= 1,
                "--runs, --pairs and --window must be at least 1"
            );
            let config = VersusConfig {
                pairs: PairsConfig {
                    pairs,
                    messages_per_pair: messages,
                    rate,
                    window,
                    body_len: body,
                    time_limit,
                },
                runs,
                papo_bin: cli.server_bin.clone().unwrap_or_else(target::default_server_bin),
                bcrypt_cost: cli.bcrypt_cost,
                ngircd: ngircd.clone(),
            };
            versus::run(&config)
        }
        Mode::Mixed { ref group, pairs, pair_rate, runs } => {
            anyhow::ensure!(
                cli.server.is_none(),
                "mixed starts a fresh server for each phase, so they compare on equal terms: drop --server"
            );
            let config = MixedConfig::new(group.config(time_limit), pairs, pair_rate, runs)?;
            let bin = cli.server_bin.clone().unwrap_or_else(target::default_server_bin);
            let spawn = target::Spawn {
                server_bin: &bin,
                bcrypt_cost: cli.bcrypt_cost,
                max_connections: 10_000,
                plaintext: cli.plaintext,
                rate_limits: false,
            };
            mixed::run(&config, &spawn)
        }
        Mode::Attack {
            scenario,
            compare,
            guessers,
            logins,
            max_connections,
            hold_seconds,
            senders,
            flood_seconds,
            conversation,
        } => {
            anyhow::ensure!(cli.server.is_none(), "attack starts its own servers: drop --server");
            let config = AttackConfig {
                guessers,
                logins,
                hold: Duration::from_secs(hold_seconds).min(time_limit),
                senders,
                flood: Duration::from_secs(flood_seconds).min(time_limit),
                conversation,
            };
            run_attacks(&cli, scenario, compare, &config, max_connections)
        }
    }
}

/// Each chosen attack against a fresh server with its limits on and, with `compare`, off.
fn run_attacks(
    cli: &Cli,
    scenario: Option<Scenario>,
    compare: bool,
    config: &AttackConfig,
    max_connections: usize,
) -> Result<()> {
    let bin = cli.server_bin.clone().unwrap_or_else(target::default_server_bin);
    let transport = if cli.plaintext { "plaintext" } else { "TLS" };
    let chosen = [Scenario::Guessing, Scenario::Holding, Scenario::Flooding]
        .into_iter()
        .filter(|&one| scenario.is_none_or(|chosen| chosen == one));
    for one in chosen {
        for rate_limits in [true, false].into_iter().take(if compare { 2 } else { 1 }) {
            let target = Target::spawn(&target::Spawn {
                server_bin: &bin,
                bcrypt_cost: cli.bcrypt_cost,
                max_connections: if one == Scenario::Holding { max_connections } else { 10_000 },
                plaintext: cli.plaintext,
                rate_limits,
            })?;
            let limits = if rate_limits { "limits on" } else { "limits by address and user off" };
            println!("\n== {one:?}: {transport}, bcrypt cost {}, {limits}", cli.bcrypt_cost);
            match one {
                Scenario::Guessing => attack::guessing(&target, config)?,
                Scenario::Holding => attack::holding(&target, config, max_connections)?,
                Scenario::Flooding => attack::flooding(&target, config, !rate_limits)?,
            }
        }
    }
    Ok(())
}

/// Starts or reaches the server, runs `load` against it and prints the results.
fn run_load(cli: &Cli, load: &Load, time_limit: Duration) -> Result<()> {
    let max_connections = match load {
        Load::Connections { count, .. } => count + 100,
        _ => 10_000,
    };
    let target = match cli.server.clone() {
        Some(addr) if cli.plaintext => Target::existing(addr, Security::Plaintext),
        Some(addr) => Target::existing(addr, Security::tls(cli.trust_fingerprint)),
        None => {
            let bin = cli.server_bin.clone().unwrap_or_else(target::default_server_bin);
            Target::spawn(&target::Spawn {
                server_bin: &bin,
                bcrypt_cost: cli.bcrypt_cost,
                max_connections,
                plaintext: cli.plaintext,
                rate_limits: false,
            })?
        }
    };
    let transport = if cli.plaintext { "plaintext" } else { "TLS" };
    println!("server {} ({transport}, bcrypt cost {})", target.addr, cli.bcrypt_cost);
    if let Some(dir) = target.data_dir() {
        let probe = disk::sync_latency(dir, disk::QUICK_PROBE, Duration::MAX, Duration::ZERO)
            .context("cannot time the disk under the data directory")?;
        println!("{}", latency_line("disk: 512-byte overwrite + fdatasync", &probe.latency));
    }
    match *load {
        Load::Throughput { pairs, messages, window, body } => {
            let config = PairsConfig {
                pairs,
                messages_per_pair: messages,
                rate: None,
                window,
                body_len: body,
                time_limit,
            };
            print_pairs(&target, &config)?;
        }
        Load::Latency { rate, pairs, seconds } => {
            let config = PairsConfig::paced(rate, pairs, Duration::from_secs(seconds), 64, time_limit);
            print_pairs(&target, &config)?;
        }
        Load::Connections { count, rate, seconds } => {
            let result = connections::run(&target, count, rate, seconds)?;
            println!("idle clients: {} logged in in {:.1}s", result.idle, result.setup.as_secs_f64());
            if let (Some(before), Some(with)) = (result.rss_before, result.rss_with_clients) {
                println!(
                    "server RSS: {} before, {} with {} clients ({:.1} KiB per client)",
                    mib(before),
                    mib(with),
                    result.idle,
                    (with.saturating_sub(before)) as f64 / 1024.0 / result.idle.max(1) as f64
                );
            }
            println!("{}", latency_line("active pair send→deliver", &result.active.latency));
            println!("errors: {}", result.active.errors);
            anyhow::ensure!(result.active.errors == 0, "{} sends failed", result.active.errors);
        }
        Load::Group(ref group) => print_group(&target, &group.config(time_limit))?,
        Load::Login { logins, resumes, threads } => {
            let result = login::run(&target, logins, resumes, threads)?;
            println!(
                "password logins: {} in {:.2}s = {:.1}/s",
                result.logins,
                result.login_span.as_secs_f64(),
                result.logins as f64 / result.login_span.as_secs_f64()
            );
            println!(
                "resume reconnects: {} in {:.3}s = {:.0}/s",
                result.resumes,
                result.resume_span.as_secs_f64(),
                result.resumes as f64 / result.resume_span.as_secs_f64()
            );
        }
    }
    if let Some(rss) = target.rss_bytes() {
        println!("server RSS at end: {}", mib(rss));
    }
    if let Some(cpu) = target.cpu_time() {
        println!("server CPU time (user+system, whole run): {:.2}s", cpu.as_secs_f64());
    }
    Ok(())
}

fn print_disk(duration: Duration, busy_threads: usize, pause: Duration, dir: Option<&Path>) -> Result<()> {
    let scratch;
    let dir = match dir {
        Some(dir) => dir,
        None => {
            scratch = tempfile::tempdir().context("cannot create a directory to probe")?;
            scratch.path()
        }
    };
    let probe = disk::sync_latency_under_load(dir, duration, busy_threads, pause)
        .with_context(|| format!("cannot time the disk under {}", dir.display()))?;
    println!(
        "disk under {}: {:.1}s of syncs with {busy_threads} spinning thread(s), {}",
        dir.display(),
        probe.elapsed.as_secs_f64(),
        if pause.is_zero() { "back to back".to_owned() } else { format!("{} µs apart", pause.as_micros()) }
    );
    println!("{}", latency_line("512-byte overwrite + fdatasync", &probe.latency));
    let budget = Duration::from_millis(2);
    let slow = probe.syncs_over(budget);
    println!(
        "syncs over 2 ms: {slow} ({:.1}/s); messages waiting over 2 ms for the sync in progress alone: {:.2}%",
        slow as f64 / probe.elapsed.as_secs_f64(),
        100.0 * probe.share_beyond(budget)
    );
    Ok(())
}

fn print_group(target: &Target, config: &GroupConfig) -> Result<()> {
    let groups = group::connect(target, config)?;
    let (result, cpu) = target.cpu_during(|| group::drive(groups, config));
    println!(
        "{} group(s) of {} members, one sender each at {}/s, window {}, {} texts each",
        config.groups, config.members, config.rate, config.window, config.messages
    );
    result.print();
    if let Some(cpu) = cpu.server {
        println!(
            "server CPU time (user+system, measured phase): {:.2}s = {:.0} µs per text",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / result.acked.max(1) as f64
        );
    }
    result.ensure_complete(config)
}

fn print_pairs(target: &Target, config: &PairsConfig) -> Result<()> {
    let result = pairs::run(target, config, "pair")?;
    println!(
        "pairs={} window={} rate={} expected={}",
        config.pairs,
        config.window,
        config.rate.map_or("max".to_owned(), |r| format!("{r}/s")),
        config.expected()
    );
    result.print();
    result.ensure_complete(config)
}
