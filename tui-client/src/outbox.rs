//! Messages typed but not yet acknowledged, kept on disk per server and user, so quitting (or
//! a crash, or SIGTERM) while the server is away loses nothing.
//!
//! The network thread rewrites the file whenever its queue changes and sends what it finds
//! the next time it logs in as that user, with the same client ids, so the server stores each
//! message exactly once however often it is resent.
//!
//! The format is text, versioned by its first line:
//!
//! ```text
//! papo-outbox 2
//! <client id> <recipient: user or #group> <body with \\ as \\\\, line feed as \n, carriage return as \r>
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use papo_protocol::Username;

use crate::conv_key::ConvKey;
use crate::net::Outgoing;

const HEADER: &str = "papo-outbox 2";

/// Version 1 held only user recipients, which version 2 reads the same way; a version-1
/// client meeting a `#group` line says the format is unknown instead of misreading it.
const HEADER_V1: &str = "papo-outbox 1";

/// One user's outbox file for one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxFile {
    path: PathBuf,
}

impl OutboxFile {
    /// The file for `user` on `server` under `dir` (`$XDG_DATA_HOME/papo/outbox`).
    pub fn new(dir: &Path, server: &str, user: &Username) -> Self {
        let server: String =
            server.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
        Self { path: dir.join(server).join(user.as_str()) }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The queued messages, oldest first; none if there is no file.
    pub fn load(&self) -> Result<Vec<Outgoing>> {
        match fs::read_to_string(&self.path) {
            Ok(text) => parse(&text).with_context(|| format!("cannot read {}", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    /// Replaces the file with `queued` (removes it when empty), atomically and durably.
    pub fn save(&self, queued: &[Outgoing]) -> Result<()> {
        if queued.is_empty() {
            return match fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("cannot remove {}", self.path.display()))
                }
                _ => Ok(()),
            };
        }
        let dir = self.path.parent().context("an outbox file has a directory")?;
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let temporary = self.path.with_extension("new");
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&temporary)?;
            file.write_all(encode(queued).as_bytes())?;
            file.sync_all()?;
            fs::rename(&temporary, &self.path)?;
            fs::File::open(dir)?.sync_all()
        };
        write().with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// The file's text for `queued`.
pub fn encode(queued: &[Outgoing]) -> String {
    let mut text = format!("{HEADER}\n");
    for outgoing in queued {
        text.push_str(&format!("{} {} ", outgoing.client_msg_id, outgoing.to));
        for c in outgoing.body.chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                '\n' => text.push_str("\\n"),
                '\r' => text.push_str("\\r"),
                c => text.push(c),
            }
        }
        text.push('\n');
    }
    text
}

/// The messages in a file's text.
pub fn parse(text: &str) -> Result<Vec<Outgoing>> {
    let mut lines = text.lines();
    match lines.next() {
        Some(HEADER | HEADER_V1) => {}
        Some(other) => bail!("unknown outbox format {other:?}"),
        None => return Ok(Vec::new()),
    }
    let mut queued = Vec::new();
    for (number, line) in lines.enumerate() {
        let bad = || format!("line {}: expected `ID RECIPIENT BODY`", number + 2);
        let mut fields = line.splitn(3, ' ');
        let (Some(id), Some(to), Some(body)) = (fields.next(), fields.next(), fields.next()) else {
            bail!(bad());
        };
        let client_msg_id = id.parse().with_context(bad)?;
        let to = ConvKey::parse(to).map_err(anyhow::Error::msg).with_context(bad)?;
        queued.push(Outgoing { to, body: unescape(body), client_msg_id });
    }
    Ok(queued)
}

fn unescape(escaped: &str) -> String {
    let mut body = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            body.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => body.push('\n'),
            Some('r') => body.push('\r'),
            Some(other) => body.push(other),
            None => body.push('\\'),
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(id: u64, to: &str, body: &str) -> Outgoing {
        Outgoing { to: ConvKey::parse(to).unwrap(), body: body.into(), client_msg_id: id }
    }

    /// The format outlives the process: these bytes must keep reading the same.
    #[test]
    fn golden_bytes() {
        let queued = [
            outgoing(7, "bia", "one\ntwo\\ three\r"),
            outgoing(18_446_744_073, "caio", "olá 👋"),
            outgoing(8, "#lab", "to the group"),
        ];
        let text =
            "papo-outbox 2\n7 bia one\\ntwo\\\\ three\\r\n18446744073 caio olá 👋\n8 #lab to the group\n";
        assert_eq!(encode(&queued), text);
        assert_eq!(parse(text).unwrap(), queued);
    }

    /// A file written before groups existed still reads.
    #[test]
    fn version_1_still_reads() {
        assert_eq!(parse("papo-outbox 1\n7 bia hi\n").unwrap(), [outgoing(7, "bia", "hi")]);
    }

    #[test]
    fn saved_per_server_and_user_and_removed_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let ana = Username::parse("ana").unwrap();
        let file = OutboxFile::new(dir.path(), "[::1]:7878", &ana);
        let other = OutboxFile::new(dir.path(), "10.0.0.5:7878", &ana);
        assert_eq!(file.load().unwrap(), []);
        let queued = vec![outgoing(1, "bia", "queued then quit")];
        file.save(&queued).unwrap();
        assert_eq!(file.load().unwrap(), queued);
        assert_eq!(other.load().unwrap(), []);
        file.save(&[]).unwrap();
        assert!(!file.path().exists());
        file.save(&[]).unwrap();
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_loss() {
        assert!(parse("papo-outbox 9\n").is_err());
        assert!(parse("papo-outbox 2\nnot-a-number bia hi\n").is_err());
        assert!(parse("papo-outbox 2\n7 #bad#name hi\n").is_err());
    }
}
