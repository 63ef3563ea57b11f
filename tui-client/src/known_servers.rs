//! The `known_servers` file: which certificate each server had when the user first trusted it,
//! as SSH's `known_hosts` does for host keys.
//!
//! One `HOST:PORT FINGERPRINT` per line; `#` starts a comment. The client only ever appends;
//! replacing a changed fingerprint is left to the user on purpose, because a change is also
//! what an attacker in the middle looks like.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use papo_protocol::Fingerprint;

const HEADER: &str = "# Servers papo trusts: HOST:PORT then the SHA-256 fingerprint of its TLS certificate.\n\
                      # Remove a server's line to be asked again (only if you know why its certificate changed).\n";

/// A `known_servers` file (which need not exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownServers {
    path: PathBuf,
}

impl KnownServers {
    /// The file at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fingerprint trusted for `server`, if any.
    pub fn lookup(&self, server: &str) -> Result<Option<Fingerprint>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        };
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((address, fingerprint)) = line.split_once(char::is_whitespace) else {
                bail!("{}:{}: expected `HOST:PORT FINGERPRINT`", self.path.display(), number + 1);
            };
            if address == server {
                let fingerprint = fingerprint
                    .parse()
                    .with_context(|| format!("{}:{}: bad fingerprint", self.path.display(), number + 1))?;
                return Ok(Some(fingerprint));
            }
        }
        Ok(None)
    }

    /// Remembers `fingerprint` for `server`; refuses if the server already has an entry.
    pub fn trust(&self, server: &str, fingerprint: Fingerprint) -> Result<()> {
        if let Some(known) = self.lookup(server)? {
            if known == fingerprint {
                return Ok(());
            }
            bail!("{} already holds another fingerprint for {server}", self.path.display());
        }
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        let new = file.metadata().map(|m| m.len() == 0).unwrap_or(false);
        let header = if new { HEADER } else { "" };
        file.write_all(format!("{header}{server} {fingerprint}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_appended_found_per_server_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownServers::at(dir.path().join("papo/known_servers"));
        let (first, second) = (Fingerprint::of(b"one"), Fingerprint::of(b"two"));
        assert_eq!(known.lookup("10.0.0.5:7878").unwrap(), None);
        known.trust("10.0.0.5:7878", first).unwrap();
        known.trust("10.0.0.6:7878", second).unwrap();
        known.trust("10.0.0.5:7878", first).unwrap();
        assert_eq!(known.lookup("10.0.0.5:7878").unwrap(), Some(first));
        assert_eq!(known.lookup("10.0.0.6:7878").unwrap(), Some(second));
        assert_eq!(known.lookup("10.0.0.5:9999").unwrap(), None);
        assert!(known.trust("10.0.0.5:7878", second).is_err());
        let text = fs::read_to_string(known.path()).unwrap();
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 2, "{text}");
    }

    #[test]
    fn a_damaged_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownServers::at(dir.path().join("known_servers"));
        fs::write(known.path(), "# comment\n10.0.0.5:7878 not-a-fingerprint\n").unwrap();
        let err = format!("{:#}", known.lookup("10.0.0.5:7878").unwrap_err());
        assert!(err.contains("known_servers:2"), "{err}");
    }
}
