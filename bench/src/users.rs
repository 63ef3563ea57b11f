//! Creating and logging in many users quickly, on a few threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

use anyhow::{Context, Result};
use papo_protocol::{Client, LoggedIn};

use crate::target::Target;

/// The password every bench user has.
pub const PASSWORD: &str = "bench password";

/// Registers `count` users named `{prefix}{i}` and logs each in on its own connection.
pub fn logged_in(
    target: &Target,
    prefix: &str,
    count: usize,
    threads: usize,
) -> Result<Vec<(Client, LoggedIn)>> {
    in_parallel(count, threads, |i| {
        let name = format!("{prefix}{i}");
        let mut client = target.connect()?;
        client.register(&name, PASSWORD).with_context(|| format!("cannot register {name}"))?;
        let session = client.login(&name, PASSWORD).with_context(|| format!("cannot log in {name}"))?;
        Ok((client, session))
    })
}

/// Runs `make(i)` for every `i` below `count` on `threads` threads and returns the results
/// in order of `i`, or the first error.
pub fn in_parallel<T: Send>(
    count: usize,
    threads: usize,
    make: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(count));
    thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return Ok(());
                        }
                        let made = make(i)?;
                        done.lock().expect("no panics while holding").push((i, made));
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker panicked")?;
        }
        Ok(())
    })?;
    let mut done = done.into_inner().expect("no panics while holding");
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, made)| made).collect())
}
