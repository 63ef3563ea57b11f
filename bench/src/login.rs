//! Password logins per second, and how fast logged-in clients come back with resume tokens.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::target::Target;
use crate::users::{self, PASSWORD};

/// What the login run measured.
#[derive(Debug)]
pub struct LoginResult {
    /// Password logins done.
    pub logins: usize,
    /// Time they took.
    pub login_span: Duration,
    /// Clients that resumed.
    pub resumes: usize,
    /// Time from all disconnecting to all resumed.
    pub resume_span: Duration,
}

/// `logins` password logins on `threads` threads, then `resumes` clients reconnecting at once.
pub fn run(target: &Target, logins: usize, resumes: usize, threads: usize) -> Result<LoginResult> {
    let users = users::logged_in(target, "login", threads.max(1), threads)?;
    let names: Vec<String> = users.iter().map(|(_, s)| s.name.to_string()).collect();
    drop(users);
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = names
            .iter()
            .map(|name| {
                let next = &next;
                scope.spawn(move || -> Result<()> {
                    while next.fetch_add(1, Ordering::Relaxed) < logins {
                        target.connect()?.login(name, PASSWORD).context("login")?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().expect("login thread"))
    })?;
    let login_span = started.elapsed();

    let sessions = users::logged_in(target, "resume", resumes, threads)?;
    let tokens: Vec<String> = sessions.iter().map(|(_, s)| s.token.clone()).collect();
    drop(sessions);
    let started = Instant::now();
    let chunk = tokens.len().div_ceil(threads.max(1)).max(1);
    thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = tokens
            .chunks(chunk)
            .map(|tokens| {
                scope.spawn(move || -> Result<Vec<papo_protocol::Client>> {
                    let mut kept = Vec::with_capacity(tokens.len());
                    for token in tokens {
                        let mut client = target.connect()?;
                        client.resume(token).context("resume")?;
                        kept.push(client);
                    }
                    Ok(kept)
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("resume thread")?;
        }
        Ok(())
    })?;
    Ok(LoginResult { logins, login_span, resumes: tokens.len(), resume_span: started.elapsed() })
}
