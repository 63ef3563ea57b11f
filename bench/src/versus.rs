//! Papo against its peer: the same pairs workload, run against `papo-server` (plaintext,
//! every message durable before its acknowledgement) and against ngircd (IRC, in memory),
//! each on a fresh server, alternating which goes first from run to run so a drifting
//! machine does not favour either. Every run computes its own ratios; the table gives the
//! median and range of each figure and of each ratio, with the disk's `fdatasync` p50 timed
//! in the same runs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::disk;
use crate::irc;
use crate::ngircd::{self, Ngircd};
use crate::pairs::{self, PairsConfig, PairsResult};
use crate::papo_pairs;
use crate::report::{self, latency_line, Row, Spread};
use crate::target::{self, PhaseCpu, Target};

/// What to run.
#[derive(Debug, Clone)]
pub struct VersusConfig {
    /// The workload both servers get.
    pub pairs: PairsConfig,
    /// How many times to run both.
    pub runs: usize,
    /// The `papo-server` binary.
    pub papo_bin: PathBuf,
    /// bcrypt cost of the Papo server (logins are not measured).
    pub bcrypt_cost: u32,
    /// Where ngircd comes from.
    pub ngircd: ngircd::Source,
}

/// The figures of one server in one run.
#[derive(Debug, Clone, Copy)]
struct Figures {
    per_second: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    /// Server CPU per delivered message, when the server's `/proc` entry could be read and
    /// counted at least one tick.
    cpu_us: Option<f64>,
}

/// Both servers' figures in one run, and the disk's sync time measured in it.
#[derive(Debug, Clone, Copy)]
struct Run {
    papo: Figures,
    ngircd: Figures,
    disk_p50_us: f64,
}

/// Runs `config` and prints each run, then the table.
pub fn run(config: &VersusConfig) -> Result<()> {
    check_irc_limits(&config.pairs)?;
    let binary = ngircd::Binary::get(&config.ngircd)?;
    let work = &config.pairs;
    println!(
        "versus: {} pairs, window {}, {}-byte bodies, {} messages per pair, rate {}; {} run(s); \
         plaintext, loopback",
        work.pairs,
        work.window,
        work.body_len.max(pairs::MIN_BODY),
        work.messages_per_pair,
        work.rate.map_or("max".to_owned(), |rate| format!("{rate}/s")),
        config.runs
    );
    println!("peer: {} ({})", binary.version()?, binary.path().display());
    let load_before = report::load_average();
    println!("load average before: {load_before}");
    let mut runs = Vec::with_capacity(config.runs);
    for i in 0..config.runs {
        // Alternate the order, so neither server always runs on a machine warmed (or
        // loaded) by the other.
        let papo_first = i % 2 == 0;
        println!(
            "run {} of {}: {}",
            i + 1,
            config.runs,
            if papo_first { "papo, then ngircd" } else { "ngircd, then papo" }
        );
        let (papo, disk_p50_us, ngircd) = if papo_first {
            let (papo, disk) = measure_papo(config)?;
            (papo, disk, measure_ngircd(&binary, work)?)
        } else {
            let ngircd = measure_ngircd(&binary, work)?;
            let (papo, disk) = measure_papo(config)?;
            (papo, disk, ngircd)
        };
        runs.push(Run { papo, ngircd, disk_p50_us });
    }
    let load_after = report::load_average();
    println!();
    print!("{}", table(&runs));
    println!();
    let disk =
        Spread::of(&runs.iter().map(|run| run.disk_p50_us).collect::<Vec<_>>()).expect("at least one run");
    println!(
        "disk fdatasync p50 (512-byte overwrite, {} syncs in papo's data directory before each papo run): {}",
        disk::QUICK_PROBE,
        disk.show(report::micros)
    );
    println!("load average before: {load_before}; after: {load_after}");
    Ok(())
}

/// Refuses a workload ngircd cannot carry at all, with the limit that stops it.
fn check_irc_limits(config: &PairsConfig) -> Result<()> {
    let max_body = irc::max_body();
    anyhow::ensure!(
        config.body_len <= max_body,
        "an IRC line holds at most {} bytes, so bodies of up to {max_body} bytes: lower --body",
        irc::MAX_LINE
    );
    let max_window = irc::max_window(config.body_len, config.messages_per_pair);
    anyhow::ensure!(
        config.window <= max_window,
        "ngircd disconnects a client with {} bytes of unprocessed input (its READBUFFER_LEN, fixed \
         when it is built), so {}-byte bodies allow at most --window {max_window}",
        irc::NGIRCD_READ_BUFFER,
        config.body_len
    );
    Ok(())
}

/// Runs the workload on a fresh plaintext `papo-server`; returns its figures and the disk's
/// sync p50 under its data directory.
fn measure_papo(config: &VersusConfig) -> Result<(Figures, f64)> {
    let work = &config.pairs;
    let target = Target::spawn(&target::Spawn {
        server_bin: &config.papo_bin,
        bcrypt_cost: config.bcrypt_cost,
        max_connections: work.pairs * 2 + 100,
        plaintext: true,
        rate_limits: false,
    })?;
    let data_dir = target.data_dir().context("a started server has a data directory")?;
    let probe = disk::sync_latency(data_dir, disk::QUICK_PROBE, Duration::MAX, Duration::ZERO)
        .context("cannot time the disk under the data directory")?;
    let ends = papo_pairs::connect(&target, work.pairs, "pair")?;
    let (result, cpu) = target.cpu_during(|| pairs::drive(ends, work));
    let figures = report_side("papo", &result, &cpu);
    result.ensure_complete(work).context("papo")?;
    Ok((figures, probe.latency.value_at_quantile(0.5) as f64))
}

/// Runs the workload on a fresh ngircd.
fn measure_ngircd(binary: &ngircd::Binary, work: &PairsConfig) -> Result<Figures> {
    let server = Ngircd::start(binary)?;
    let connected = irc::connect(&server.addr, &server.oper, work.pairs, "pair")?;
    if connected.relaxed < work.pairs * 2 {
        println!(
            "  ngircd: only {} of {} clients got user mode +F: the rest are throttled",
            connected.relaxed,
            work.pairs * 2
        );
    }
    let (result, cpu) = target::cpu_during(|| server.cpu_time(), || pairs::drive(connected.ends, work));
    let figures = report_side("ngircd", &result, &cpu);
    result.ensure_complete(work).context("ngircd")?;
    Ok(figures)
}

/// Prints one server's run and returns its figures.
fn report_side(name: &str, result: &PairsResult, cpu: &PhaseCpu) -> Figures {
    let per_message = |cpu: Duration| cpu.as_secs_f64() * 1e6 / result.delivered.max(1) as f64;
    // /proc counts CPU time in clock ticks: a run shorter than a few dozen of them gives a
    // coarse figure, and one under a tick none at all.
    let tick = target::clock_tick();
    let show = |cpu: Option<Duration>| {
        cpu.map_or(format!("under one {} ms tick", tick.as_millis()), |cpu| {
            format!(
                "{:.2}s ({} ticks) = {:.2} µs/message",
                cpu.as_secs_f64(),
                cpu.as_nanos() / tick.as_nanos().max(1),
                per_message(cpu)
            )
        })
    };
    let server = cpu.server.filter(|cpu| !cpu.is_zero());
    println!(
        "  {name}: delivered {} = {:.0} msg/s; server CPU {}; load generator CPU {}",
        result.delivered,
        result.delivered_per_sec(),
        show(server),
        show(cpu.generator.filter(|cpu| !cpu.is_zero()))
    );
    println!("  {name}: {}", latency_line("send→deliver", &result.latency));
    let h = &result.latency;
    Figures {
        per_second: result.delivered_per_sec(),
        p50_us: h.value_at_quantile(0.50) as f64,
        p99_us: h.value_at_quantile(0.99) as f64,
        max_us: h.max() as f64,
        cpu_us: server.map(per_message),
    }
}

/// The side-by-side table, in Markdown: each cell the median over the runs and, after
/// several, the range; the ratio column is papo ÷ ngircd, computed within each run.
fn table(runs: &[Run]) -> String {
    let rows: [Row<Figures>; 5] = [
        ("messages/s", |f| Some(f.per_second), report::per_second),
        ("send→deliver p50", |f| Some(f.p50_us), report::micros),
        ("p99", |f| Some(f.p99_us), report::micros),
        ("max", |f| Some(f.max_us), report::micros),
        ("server CPU per message", |f| f.cpu_us, report::micros),
    ];
    let sides: Vec<(Figures, Figures)> = runs.iter().map(|run| (run.ngircd, run.papo)).collect();
    report::side_by_side(&sides, ["ngircd", "papo"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(per_second: f64, p50_us: f64, cpu_us: Option<f64>) -> Figures {
        Figures { per_second, p50_us, p99_us: 2.0 * p50_us, max_us: 4.0 * p50_us, cpu_us }
    }

    #[test]
    fn the_table_takes_ratios_within_each_run_then_their_median() {
        let runs = [
            Run {
                papo: figures(40_000.0, 16_000.0, Some(20.0)),
                ngircd: figures(160_000.0, 1_600.0, Some(4.0)),
                disk_p50_us: 90.0,
            },
            Run {
                papo: figures(50_000.0, 18_000.0, Some(24.0)),
                ngircd: figures(100_000.0, 1_800.0, Some(3.0)),
                disk_p50_us: 80.0,
            },
            Run {
                papo: figures(44_000.0, 17_600.0, None),
                ngircd: figures(148_000.0, 1_600.0, Some(3.1)),
                disk_p50_us: 85.0,
            },
        ];
        let table = table(&runs);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "| | ngircd | papo | papo ÷ ngircd |");
        // Ratios 0.25, 0.50, 0.297: the median ratio is the third run's, not 44,000 ÷ 148,000
        // by accident of the medians.
        assert_eq!(
            lines[2],
            "| messages/s | 148,000 (100,000–160,000) | 44,000 (40,000–50,000) | 0.30× (0.25×–0.50×) |"
        );
        assert_eq!(
            lines[3],
            "| send→deliver p50 | 1.60 ms (1.60 ms–1.80 ms) | 17.6 ms (16.0 ms–18.0 ms) | 10× (10×–11×) |"
        );
        // A run without papo's CPU figure drops out of that row only.
        assert_eq!(
            lines[6],
            "| server CPU per message | 3.1 µs (3.0 µs–4.0 µs) | 22 µs (20 µs–24 µs) | 6.5× (5.0×–8.0×) |"
        );
    }

    #[test]
    fn workloads_ngircd_cannot_carry_are_refused_with_the_limit() {
        let config = |window, body_len| PairsConfig {
            pairs: 1,
            messages_per_pair: 10,
            rate: None,
            window,
            body_len,
            time_limit: Duration::from_secs(1),
        };
        assert!(check_irc_limits(&config(8, 64)).is_ok());
        let error = check_irc_limits(&config(64, 64)).unwrap_err().to_string();
        assert!(error.contains("READBUFFER_LEN") && error.contains("--window"), "{error}");
        let error = check_irc_limits(&config(1, 600)).unwrap_err().to_string();
        assert!(error.contains("--body"), "{error}");
    }
}
