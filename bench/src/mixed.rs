//! Groups and direct messages at once, against one server: do a group's texts slow direct
//! messages down, or the other way round?
//!
//! Each run measures three phases, each on a fresh server so that every one starts from an
//! empty store: the group workload alone, the pairs workload alone, and both together. The
//! workloads are `group`'s and `pairs`' own drivers, unchanged; the pairs are paced to send
//! for as long as the group's sender does, so the two overlap for the whole mixed phase.
//! Runs alternate whether the phases alone or the mixed one go first, so a machine whose
//! load drifts favours neither. The table gives each figure's median and range over the
//! runs, alone and mixed, and mixed ÷ alone computed within each run.

use std::thread;
use std::time::Duration;

use anyhow::{ensure, Result};

use crate::group::{self, GroupConfig, GroupResult};
use crate::pairs::{self, PairsConfig, PairsResult};
use crate::papo_pairs;
use crate::report::{self, Row};
use crate::target::{PhaseCpu, Spawn, Target};

/// What to run.
#[derive(Debug, Clone)]
pub struct MixedConfig {
    /// The group workload.
    pub group: GroupConfig,
    /// The direct messages beside it, paced to last as long as the group's sender.
    pub pairs: PairsConfig,
    /// How many times to run the three phases.
    pub runs: usize,
}

impl MixedConfig {
    /// `group` beside `pairs` pairs sending `pair_rate` messages a second in all (bodies as
    /// long as the group's) for as long as each group's sender sends.
    pub fn new(group: GroupConfig, pairs: usize, pair_rate: f64, runs: usize) -> Result<Self> {
        ensure!(pairs >= 1 && runs >= 1, "--pairs and --runs must be at least 1");
        ensure!(pair_rate.is_finite() && pair_rate > 0.0, "--pair-rate must be a positive number");
        ensure!(group.rate.is_finite() && group.rate > 0.0, "--rate must be a positive number");
        let sending = Duration::from_secs_f64(group.messages as f64 / group.rate);
        let direct = PairsConfig::paced(pair_rate, pairs, sending, group.body_len, group.time_limit);
        ensure!(
            direct.messages_per_pair >= 1,
            "{pairs} pairs at {pair_rate} messages/s in all over the group's {:.2} s of sending get no \
             message each: raise --pair-rate or --messages, or lower --pairs",
            sending.as_secs_f64()
        );
        Ok(Self { group, pairs: direct, runs })
    }
}

/// Runs `config`, starting each phase's server as `spawn` says, and prints each phase, then
/// the table; fails after the table if any phase lost or refused a message.
pub fn run(config: &MixedConfig, spawn: &Spawn<'_>) -> Result<()> {
    let (group, direct) = (&config.group, &config.pairs);
    println!(
        "mixed: {} group(s) of {} members, one sender each at {}/s, {} texts each, window {}; \
         beside {} pairs at {}/s in all, {} messages each, window {}; {}-byte bodies; {}; {} run(s)",
        group.groups,
        group.members,
        group.rate,
        group.messages,
        group.window,
        direct.pairs,
        direct.rate.unwrap_or_default(),
        direct.messages_per_pair,
        direct.window,
        group.body_len.max(pairs::MIN_BODY),
        if spawn.plaintext { "plaintext" } else { "TLS" },
        config.runs
    );
    let load_before = report::load_average();
    let mut runs = Vec::with_capacity(config.runs);
    let mut failures = Vec::new();
    for number in 1..=config.runs {
        let order = if number % 2 == 1 {
            [Phase::GroupAlone, Phase::PairsAlone, Phase::Mixed]
        } else {
            [Phase::Mixed, Phase::GroupAlone, Phase::PairsAlone]
        };
        let (mut group_alone, mut pairs_alone, mut mixed) = Default::default();
        for phase in order {
            println!(
                "\n== run {number} of {}, {}: load average {}",
                config.runs,
                phase.name(),
                report::load_average()
            );
            let (figures, failure) = measure(config, spawn, phase)?;
            failures.extend(failure.map(|why| format!("run {number}, {}: {why}", phase.name())));
            *match phase {
                Phase::GroupAlone => &mut group_alone,
                Phase::PairsAlone => &mut pairs_alone,
                Phase::Mixed => &mut mixed,
            } = figures;
        }
        runs.push((Figures::alone(&group_alone, &pairs_alone), mixed));
    }
    println!();
    print!("{}", table(&runs));
    let errors =
        |side: fn(&(Figures, Figures)) -> &Figures| runs.iter().map(|run| side(run).errors).sum::<u64>();
    println!(
        "\nerrors (sends refused or connections lost) over all runs: alone {}, mixed {}",
        errors(|run| &run.0),
        errors(|run| &run.1)
    );
    println!("load average before: {load_before}; after: {}", report::load_average());
    ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

/// The workloads a phase runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    GroupAlone,
    PairsAlone,
    Mixed,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Self::GroupAlone => "group alone",
            Self::PairsAlone => "direct messages alone",
            Self::Mixed => "group and direct messages mixed",
        }
    }

    fn sends_to_groups(self) -> bool {
        self != Self::PairsAlone
    }

    fn sends_direct(self) -> bool {
        self != Self::GroupAlone
    }
}

/// Runs one phase on a fresh server and prints it: its figures, and why it is incomplete if
/// it is.
fn measure(config: &MixedConfig, spawn: &Spawn<'_>, phase: Phase) -> Result<(Figures, Option<String>)> {
    let target = Target::spawn(spawn)?;
    let groups = phase.sends_to_groups().then(|| group::connect(&target, &config.group)).transpose()?;
    let direct =
        phase.sends_direct().then(|| papo_pairs::connect(&target, config.pairs.pairs, "pair")).transpose()?;
    let ((group, direct), cpu) = target.cpu_during(|| {
        thread::scope(|scope| {
            let group = groups.map(|ends| scope.spawn(|| group::drive(ends, &config.group)));
            let direct = direct.map(|ends| pairs::drive(ends, &config.pairs));
            (group.map(|running| running.join().expect("group workload thread")), direct)
        })
    });
    let mut failures = Vec::new();
    if let Some(group) = &group {
        println!("group texts:");
        group.print();
        failures.extend(group.ensure_complete(&config.group).err().map(|why| format!("group: {why}")));
    }
    if let Some(direct) = &direct {
        println!("direct messages:");
        direct.print();
        failures
            .extend(direct.ensure_complete(&config.pairs).err().map(|why| format!("direct messages: {why}")));
    }
    let figures = Figures::of(group.as_ref(), direct.as_ref(), &cpu);
    let show = |us: Option<f64>| us.map_or("not read".to_owned(), |us| format!("{:.2}s", us / 1e6));
    println!(
        "CPU time (user+system) over the measured phase: server {}, load generator {}",
        show(figures.server_cpu_us),
        show(figures.generator_cpu_us)
    );
    Ok((figures, (!failures.is_empty()).then(|| failures.join(", "))))
}

/// The figures of one phase (or, after [`Figures::alone`], of both phases alone) that the
/// table compares; `None` where the phase did not measure it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Figures {
    texts_per_second: Option<f64>,
    to_last_p50_us: Option<f64>,
    to_last_p99_us: Option<f64>,
    to_each_p50_us: Option<f64>,
    to_each_p99_us: Option<f64>,
    direct_per_second: Option<f64>,
    direct_p50_us: Option<f64>,
    direct_p99_us: Option<f64>,
    /// Sends refused or lost, texts and direct messages.
    errors: u64,
    /// The server's CPU time over the measured phase.
    server_cpu_us: Option<f64>,
    /// The load generator's, which shares the cores with the server.
    generator_cpu_us: Option<f64>,
    /// The server's CPU time per acknowledged text, from a phase with texts only.
    cpu_per_text_us: Option<f64>,
    /// The server's CPU time per acknowledged direct message, from a phase with those only.
    cpu_per_direct_us: Option<f64>,
}

impl Figures {
    /// What a phase that ran `group`, `direct` or both measured, using `cpu` meanwhile. The
    /// server's CPU time is only split per message when one workload ran.
    fn of(group: Option<&GroupResult>, direct: Option<&PairsResult>, cpu: &PhaseCpu) -> Self {
        let quantile =
            |h: &hdrhistogram::Histogram<u64>, q| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64);
        let micros =
            |cpu: Option<Duration>| cpu.filter(|cpu| !cpu.is_zero()).map(|cpu| cpu.as_secs_f64() * 1e6);
        let server_cpu_us = micros(cpu.server);
        let per = |count: u64| server_cpu_us.map(|us| us / count.max(1) as f64);
        Self {
            texts_per_second: group.map(GroupResult::acked_per_sec),
            to_last_p50_us: group.and_then(|g| quantile(&g.to_last, 0.50)),
            to_last_p99_us: group.and_then(|g| quantile(&g.to_last, 0.99)),
            to_each_p50_us: group.and_then(|g| quantile(&g.to_each, 0.50)),
            to_each_p99_us: group.and_then(|g| quantile(&g.to_each, 0.99)),
            direct_per_second: direct.map(PairsResult::acked_per_sec),
            direct_p50_us: direct.and_then(|d| quantile(&d.latency, 0.50)),
            direct_p99_us: direct.and_then(|d| quantile(&d.latency, 0.99)),
            errors: group.map_or(0, |g| g.errors) + direct.map_or(0, |d| d.errors),
            server_cpu_us,
            generator_cpu_us: micros(cpu.generator),
            cpu_per_text_us: group.filter(|_| direct.is_none()).and_then(|g| per(g.acked)),
            cpu_per_direct_us: direct.filter(|_| group.is_none()).and_then(|d| per(d.acked)),
        }
    }

    /// The two phases alone as one side of the table: the group's figures from the one,
    /// the direct messages' from the other, and their CPU times and errors added up.
    fn alone(group: &Self, direct: &Self) -> Self {
        Self {
            direct_per_second: direct.direct_per_second,
            direct_p50_us: direct.direct_p50_us,
            direct_p99_us: direct.direct_p99_us,
            errors: group.errors + direct.errors,
            server_cpu_us: group.server_cpu_us.zip(direct.server_cpu_us).map(|(g, d)| g + d),
            generator_cpu_us: group.generator_cpu_us.zip(direct.generator_cpu_us).map(|(g, d)| g + d),
            cpu_per_direct_us: direct.cpu_per_direct_us,
            ..*group
        }
    }
}

/// The table, in Markdown: alone, mixed, and mixed ÷ alone, each the median (and range)
/// over the runs.
fn table(runs: &[(Figures, Figures)]) -> String {
    let rows: [Row<Figures>; 12] = [
        ("group texts acknowledged/s", |f| f.texts_per_second, report::per_second),
        ("send→last member p50", |f| f.to_last_p50_us, report::micros),
        ("send→last member p99", |f| f.to_last_p99_us, report::micros),
        ("send→each member p50", |f| f.to_each_p50_us, report::micros),
        ("send→each member p99", |f| f.to_each_p99_us, report::micros),
        ("direct messages acknowledged/s", |f| f.direct_per_second, report::per_second),
        ("direct send→deliver p50", |f| f.direct_p50_us, report::micros),
        ("direct send→deliver p99", |f| f.direct_p99_us, report::micros),
        ("server CPU, measured phase (alone: both)", |f| f.server_cpu_us, report::micros),
        ("load generator CPU, measured phase (alone: both)", |f| f.generator_cpu_us, report::micros),
        ("server CPU per text (alone only)", |f| f.cpu_per_text_us, report::micros),
        ("server CPU per direct message (alone only)", |f| f.cpu_per_direct_us, report::micros),
    ];
    report::side_by_side(runs, ["alone", "mixed"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_config(messages: u64, rate: f64) -> GroupConfig {
        GroupConfig {
            groups: 1,
            members: 100,
            messages,
            rate,
            window: 16,
            body_len: 64,
            time_limit: Duration::from_secs(120),
        }
    }

    #[test]
    fn the_direct_messages_send_for_as_long_as_the_group_does() {
        let config = MixedConfig::new(group_config(1000, 100.0), 50, 2000.0, 3).unwrap();
        // 1,000 texts at 100/s take 10 s; 2,000 messages/s over 50 pairs for 10 s.
        assert_eq!(config.pairs.messages_per_pair, 400);
        assert_eq!((config.pairs.pairs, config.pairs.rate, config.pairs.body_len), (50, Some(2000.0), 64));
        assert_eq!(config.pairs.expected(), 20_000);
    }

    #[test]
    fn a_workload_that_cannot_run_is_refused_with_what_to_change() {
        let refused = |pairs, pair_rate, runs| {
            MixedConfig::new(group_config(10, 100.0), pairs, pair_rate, runs).unwrap_err().to_string()
        };
        assert!(refused(0, 100.0, 1).contains("--pairs"));
        assert!(refused(1, 100.0, 0).contains("--runs"));
        assert!(refused(1, 0.0, 1).contains("--pair-rate"));
        assert!(refused(1, f64::NAN, 1).contains("--pair-rate"));
        // 10 texts at 100/s last 0.1 s: 5 messages/s over 10 pairs is none each.
        let none_each = refused(10, 5.0, 1);
        assert!(
            none_each.contains("no message each") && none_each.contains("raise --pair-rate"),
            "{none_each}"
        );
        let error = MixedConfig::new(group_config(10, 0.0), 1, 100.0, 1).unwrap_err().to_string();
        assert!(error.contains("--rate"), "{error}");
    }

    fn histogram_of(values_us: &[u64]) -> hdrhistogram::Histogram<u64> {
        let mut h = report::histogram();
        values_us.iter().for_each(|&us| h.record(us).unwrap());
        h
    }

    fn group_result(acked: u64) -> GroupResult {
        GroupResult {
            acked,
            errors: 1,
            ack_span: Duration::from_secs(10),
            complete: acked,
            deliveries: acked * 99,
            to_each: histogram_of(&[1_000, 2_000]),
            to_last: histogram_of(&[3_000, 5_000]),
        }
    }

    fn pairs_result(acked: u64) -> PairsResult {
        PairsResult {
            acked,
            delivered: acked,
            errors: 2,
            ack_span: Duration::from_secs(10),
            deliver_span: Duration::from_secs(10),
            latency: histogram_of(&[700]),
        }
    }

    fn spent(server_secs: u64, generator_secs: u64) -> PhaseCpu {
        PhaseCpu {
            server: Some(Duration::from_secs(server_secs)),
            generator: Some(Duration::from_secs(generator_secs)),
        }
    }

    #[test]
    fn cpu_time_is_split_per_message_only_where_one_workload_ran() {
        let cpu = spent(3, 5);
        let group = Figures::of(Some(&group_result(1000)), None, &cpu);
        assert_eq!(group.texts_per_second, Some(100.0));
        assert!((4_990.0..=5_010.0).contains(&group.to_last_p99_us.unwrap()));
        assert_eq!((group.cpu_per_text_us, group.direct_per_second), (Some(3_000.0), None));
        let direct = Figures::of(None, Some(&pairs_result(20_000)), &spent(1, 2));
        assert_eq!((direct.cpu_per_direct_us, direct.texts_per_second), (Some(50.0), None));
        let mixed = Figures::of(Some(&group_result(1000)), Some(&pairs_result(20_000)), &cpu);
        assert_eq!((mixed.cpu_per_text_us, mixed.cpu_per_direct_us), (None, None));
        assert_eq!((mixed.server_cpu_us, mixed.generator_cpu_us, mixed.errors), (Some(3e6), Some(5e6), 3));
        assert_eq!(mixed.direct_per_second, Some(2000.0));
        let unread = PhaseCpu { server: Some(Duration::ZERO), generator: None };
        assert_eq!(Figures::of(None, Some(&pairs_result(1)), &unread).server_cpu_us, None);
    }

    #[test]
    fn the_phases_alone_add_up_to_one_side() {
        let group = Figures::of(Some(&group_result(1000)), None, &spent(3, 5));
        let direct = Figures::of(None, Some(&pairs_result(20_000)), &spent(1, 2));
        let alone = Figures::alone(&group, &direct);
        assert_eq!((alone.texts_per_second, alone.direct_per_second), (Some(100.0), Some(2000.0)));
        assert_eq!((alone.cpu_per_text_us, alone.cpu_per_direct_us), (Some(3_000.0), Some(50.0)));
        assert_eq!((alone.server_cpu_us, alone.generator_cpu_us, alone.errors), (Some(4e6), Some(7e6), 3));
        assert_eq!(alone.to_last_p99_us, group.to_last_p99_us);
    }

    #[test]
    fn the_table_sets_alone_beside_mixed_with_ratios_within_each_run() {
        let figures = |last_p99_us: f64, cpu_us: f64, per_text: Option<f64>| Figures {
            to_last_p99_us: Some(last_p99_us),
            server_cpu_us: Some(cpu_us),
            cpu_per_text_us: per_text,
            ..Figures::default()
        };
        let runs = [
            (figures(10_000.0, 4e6, Some(2_800.0)), figures(15_000.0, 5.2e6, None)),
            (figures(8_000.0, 4e6, Some(3_000.0)), figures(16_000.0, 4.4e6, None)),
            (figures(12_000.0, 5e6, Some(2_900.0)), figures(12_000.0, 5e6, None)),
        ];
        let table = table(&runs);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "| | alone | mixed | mixed ÷ alone |");
        assert_eq!(lines.len(), 2 + 12);
        // Ratios 1.5, 2.0 and 1.0: the median is the first run's.
        assert_eq!(
            lines[4],
            "| send→last member p99 | 10.0 ms (8.00 ms–12.0 ms) | 15.0 ms (12.0 ms–16.0 ms) | 1.5× (1.0×–2.0×) |"
        );
        assert_eq!(
            lines[10],
            "| server CPU, measured phase (alone: both) | 4.00 s (4.00 s–5.00 s) | 5.00 s (4.40 s–5.20 s) | 1.1× (1.0×–1.3×) |"
        );
        assert_eq!(
            lines[12],
            "| server CPU per text (alone only) | 2.90 ms (2.80 ms–3.00 ms) | not measured | not measured |"
        );
        assert_eq!(lines[2], "| group texts acknowledged/s | not measured | not measured | not measured |");
    }
}
