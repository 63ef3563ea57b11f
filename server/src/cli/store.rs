//! `papo-server check`, `export` and `import`: the store's maintenance from the command line.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use papo_server::admin::{self, Outcome, Request};
use papo_server::store::{self, Store, StoreOptions};

/// Whether `dir` holds a store (its manifest, or a database from before manifests).
fn holds_store(dir: &Path) -> bool {
    dir.join("papo-store").exists() || dir.join("db").exists()
}

/// Reads the whole store and log of a stopped server; exit 1 if anything is damaged.
pub fn check(dir: &Path) -> Result<ExitCode> {
    if !holds_store(dir) {
        bail!("{} holds no papo store; pass the server's --data-dir", dir.display());
    }
    let report = store::check(dir).with_context(|| format!("cannot check {}", dir.display()))?;
    println!(
        "{}: {} accounts, {} messages, {} conversation summaries, {} resend entries, {} saved sessions, {} group conversations with {} members and {} lines; {} groups of writes in the log not yet checkpointed",
        dir.display(),
        report.users,
        report.messages,
        report.summaries,
        report.resends,
        report.tokens,
        report.groups,
        report.members,
        report.group_lines,
        report.log_records
    );
    if report.problems.is_empty() {
        println!("no damage found");
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &report.problems {
        println!("damaged: {problem}");
    }
    println!(
        "{} problems. Keep a copy of the data directory before anything else; then restore a backup, or start a new directory from an export",
        report.problems.len()
    );
    Ok(ExitCode::from(1))
}

/// Writes the store as JSON lines to `to` (standard output for `-` or none): from the
/// running server through its administration socket, or from the directory if none runs.
pub fn export(dir: &Path, to: Option<&Path>, options: StoreOptions) -> Result<ExitCode> {
    if !holds_store(dir) {
        bail!("{} holds no papo store; pass the server's --data-dir", dir.display());
    }
    let mut out: Box<dyn Write> = match to {
        None => Box::new(io::stdout().lock()),
        Some(path) if path == Path::new("-") => Box::new(io::stdout().lock()),
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("cannot create {}", path.display()))?)
        }
    };
    let summary = match admin::request(dir, &Request::Export, &mut out)
        .with_context(|| format!("cannot reach the server through {}", dir.join(admin::SOCKET).display()))?
    {
        Some(Outcome::Done(summary)) => format!("{summary}, from the running server"),
        Some(Outcome::Error(reason)) => bail!("the running server could not export: {reason}"),
        None => {
            let store =
                Store::open_with(dir, options).with_context(|| format!("cannot open {}", dir.display()))?;
            let counts = store.export(&mut out, papo_server::clock::now_millis())?;
            format!("exported {} users and {} messages", counts.users, counts.messages)
        }
    };
    out.flush()?;
    eprintln!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// Loads an export from `from` (standard input for `-`) into a new data directory.
pub fn import(dir: &Path, from: &Path, options: StoreOptions) -> Result<ExitCode> {
    if holds_store(dir) {
        bail!("{} already holds a store; import into a new data directory", dir.display());
    }
    let input: Box<dyn io::BufRead> = match from {
        path if path == Path::new("-") => Box::new(io::stdin().lock()),
        path => Box::new(BufReader::new(
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
    };
    let store = Store::open_with(dir, options)
        .with_context(|| format!("cannot create a store in {}", dir.display()))?;
    match store.import(input, papo_server::clock::now_millis()) {
        Ok(counts) => {
            eprintln!(
                "imported {} users, {} messages, {} read states and {} resend entries into {}; everyone logs in again with their password",
                counts.users,
                counts.messages,
                counts.read_states,
                counts.resends,
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "{} now holds a partial import: delete it, mend the file and import again",
            dir.display()
        ))),
    }
}
