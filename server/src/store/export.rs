//! A store as plain text, one JSON object a line, for backups and for moving to another
//! storage engine (sled 0.34 has no migration path of its own).
//!
//! Every line has a `type`. An export is: one `papo-export` header; every `user` (with when their last session ended, if one has); every
//! `message`, conversation by conversation, oldest first; every `read_state` (a user's read
//! and delivered watermarks for one peer); every `resend` entry still in the resend window;
//! and one `end` line with the counts, so a truncated file is told from a whole one. Unread
//! counts, previews and per-message positions are derived and not exported. Resume tokens
//! are not exported: after an import, everyone logs in again with their password.
//!
//! ```text
//! {"type":"papo-export","format":1,"exported_at":1764600000000,"last_id":2}
//! {"type":"user","name":"ana","password_hash":"$2b$12$…","created_at":1764500000000,"last_seen":1764590000000}
//! {"type":"message","id":1,"from":"ana","to":"bob","body":"oi","sent_at":1764500000100}
//! {"type":"read_state","owner":"bob","peer":"ana","read_up_to":1,"delivered_up_to":1}
//! {"type":"resend","sender":"ana","client_msg_id":7,"id":1,"to":"bob"}
//! {"type":"end","users":1,"messages":1}
//! ```
//!
//! An export of a running server reads while it serves: it holds every message up to the
//! header's `last_id`, and watermarks may point past it (an import caps them).

use std::io::{BufRead, Write};

use papo_protocol::{MessageId, UnixMillis, Username};
use serde::{Deserialize, Serialize};

use super::commit::{Growth, TreeName};
use super::records::{corrupt, decode, encode, DedupRecord, MessageRecord, Summary, UserRecord};
use super::{commit, keys, writes, Result, Store, StoreError};

/// The export format this server writes and reads.
pub const FORMAT: u32 = 1;

/// Lines an import hands to the committer in one group.
const IMPORT_BATCH: usize = 2048;

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    /// The first line.
    #[serde(rename = "papo-export")]
    Header {
        /// The export format.
        format: u32,
        /// When the export started.
        exported_at: UnixMillis,
        /// Every message up to this id is in the export.
        last_id: MessageId,
    },
    /// An account.
    User {
        /// Its name.
        name: Username,
        /// Its bcrypt password hash.
        password_hash: String,
        /// When it was created.
        created_at: UnixMillis,
        /// When its last session ended.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen: Option<UnixMillis>,
    },
    /// A message.
    Message {
        /// Its id.
        id: MessageId,
        /// Its sender.
        from: Username,
        /// Its recipient.
        to: Username,
        /// Its text.
        body: String,
        /// When the server stored it.
        sent_at: UnixMillis,
    },
    /// How far `owner` has read and received `peer`'s messages.
    ReadState {
        /// Whose view.
        owner: Username,
        /// Of whose messages.
        peer: Username,
        /// Newest read.
        read_up_to: MessageId,
        /// Newest received by a client.
        delivered_up_to: MessageId,
    },
    /// A resend entry: `sender`'s `client_msg_id` was stored as message `id`.
    Resend {
        /// Who sent it.
        sender: Username,
        /// The client's id for it.
        client_msg_id: u64,
        /// The message id.
        id: MessageId,
        /// Its recipient.
        to: Username,
    },
    /// The last line.
    End {
        /// Users exported.
        users: u64,
        /// Messages exported.
        messages: u64,
    },
}

/// What an export or import carried.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Accounts.
    pub users: u64,
    /// Messages.
    pub messages: u64,
    /// Read states.
    pub read_states: u64,
    /// Resend entries.
    pub resends: u64,
}

fn write_line(out: &mut impl Write, line: &Line) -> Result<()> {
    let io = |source| StoreError::Io { action: "write the export to", path: "the output".into(), source };
    serde_json::to_writer(&mut *out, line).map_err(|e| io(e.into()))?;
    out.write_all(b"\n").map_err(io)
}

impl Store {
    /// Writes the whole store to `out` as JSON lines, while it keeps serving.
    pub fn export(&self, out: &mut impl Write, now: UnixMillis) -> Result<Counts> {
        let last_id = self.last_message_id()?;
        write_line(out, &Line::Header { format: FORMAT, exported_at: now, last_id })?;
        let mut counts = Counts::default();
        for entry in self.trees.users.iter() {
            let (key, raw) = entry?;
            let record: UserRecord = decode(&key, &raw)?;
            let name = Username::parse(&String::from_utf8_lossy(&key)).map_err(|e| corrupt(&key, e))?;
            let last_seen = self.last_seen(&name)?;
            let created_at = record.created_at;
            write_line(
                out,
                &Line::User { name, password_hash: record.password_hash, created_at, last_seen },
            )?;
            counts.users += 1;
        }
        for entry in self.trees.chat.scan_prefix(keys::MESSAGES) {
            let (key, raw) = entry?;
            let id = keys::trailing_id(&key).ok_or_else(|| corrupt(&key, "short key"))?;
            if id > last_id {
                continue;
            }
            let record: MessageRecord = decode(&key, &raw)?;
            let MessageRecord { from, to, body, sent_at, .. } = record;
            write_line(out, &Line::Message { id, from, to, body, sent_at })?;
            counts.messages += 1;
        }
        for entry in self.trees.chat.scan_prefix(keys::SUMMARIES) {
            let (key, raw) = entry?;
            let summary: Summary = decode(&key, &raw)?;
            let (owner, peer) = keys::summary_names(&key).ok_or_else(|| corrupt(&key, "bad summary key"))?;
            if summary.read_up_to > 0 || summary.delivered_up_to > 0 {
                let Summary { read_up_to, delivered_up_to, .. } = summary;
                write_line(out, &Line::ReadState { owner, peer, read_up_to, delivered_up_to })?;
                counts.read_states += 1;
            }
        }
        for entry in self.trees.chat.scan_prefix(keys::DEDUPS) {
            let (key, raw) = entry?;
            let (_, sender, client_msg_id) =
                keys::dedup_parts(&key).ok_or_else(|| corrupt(&key, "bad resend key"))?;
            let DedupRecord { id, to } = decode(&key, &raw)?;
            write_line(out, &Line::Resend { sender, client_msg_id, id, to })?;
            counts.resends += 1;
        }
        write_line(out, &Line::End { users: counts.users, messages: counts.messages })?;
        out.flush().map_err(|source| StoreError::Io {
            action: "write the export to",
            path: "the output".into(),
            source,
        })?;
        Ok(counts)
    }

    /// Loads an export into this store, which must be empty; durable once it returns. A
    /// file found bad part-way leaves what came before it stored (the error names the line).
    pub fn import(&self, input: impl BufRead, now: UnixMillis) -> Result<Counts> {
        if !self.trees.users.is_empty() || self.last_message_id()? > 0 {
            return Err(StoreError::Import {
                line: 0,
                reason: "the store is not empty; import into a new data directory".into(),
            });
        }
        let mut counts = Counts::default();
        let mut batch = Vec::with_capacity(IMPORT_BATCH);
        let mut ended = false;
        let mut ids = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for (index, line) in input.lines().enumerate() {
            let number = index as u64 + 1;
            let bad = |reason: String| StoreError::Import { line: number, reason };
            let text = line.map_err(|e| bad(e.to_string()))?;
            if ended {
                return Err(bad("a line after the end line".into()));
            }
            let parsed: Line = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            match (&parsed, number) {
                (Line::Header { format, .. }, 1) if *format == FORMAT => {}
                (Line::Header { format, .. }, 1) => {
                    return Err(bad(format!("export format {format}; this server reads format {FORMAT}")));
                }
                (_, 1) => return Err(bad("the first line must be the papo-export header".into())),
                (Line::Header { .. }, _) => return Err(bad("a second header".into())),
                (Line::End { users, messages }, _) => {
                    if (*users, *messages) != (counts.users, counts.messages) {
                        return Err(bad(format!(
                            "the end line counts {users} users and {messages} messages, the file holds {} and {}",
                            counts.users, counts.messages
                        )));
                    }
                    ended = true;
                    continue;
                }
                _ => {}
            }
            match &parsed {
                Line::User { name, .. } => {
                    if !names.insert(name.clone()) {
                        return Err(bad(format!("the user {name} appears twice")));
                    }
                    counts.users += 1;
                }
                Line::Message { id, .. } => {
                    if !ids.insert(*id) {
                        return Err(bad(format!("message id {id} appears twice")));
                    }
                    counts.messages += 1;
                }
                Line::ReadState { .. } => counts.read_states += 1,
                Line::Resend { .. } => counts.resends += 1,
                Line::Header { .. } | Line::End { .. } => continue,
            }
            batch.push((number, parsed));
            if batch.len() == IMPORT_BATCH {
                self.import_batch(std::mem::take(&mut batch), now)?;
            }
        }
        if !ended {
            return Err(StoreError::Import {
                line: 0,
                reason: "the file ends without its end line: it was cut short".into(),
            });
        }
        self.import_batch(batch, now)?;
        Ok(counts)
    }

    /// Stages one batch of lines in one group.
    fn import_batch(&self, lines: Vec<(u64, Line)>, now: UnixMillis) -> Result<()> {
        let generation = keys::dedup_generation(now);
        self.committer.call(Growth::Grows, move |staged: &mut commit::Staged<'_>| {
            for (number, line) in lines {
                let bad = |reason: String| StoreError::Import { line: number, reason };
                match line {
                    Line::User { name, password_hash, created_at, last_seen } => {
                        let record = UserRecord { password_hash, created_at };
                        if let Some(at) = last_seen {
                            staged.insert(TreeName::Chat, keys::last_seen(&name), encode(&at));
                        }
                        writes::create_user(staged, name.as_str().as_bytes().to_vec(), encode(&record))?;
                    }
                    Line::Message { id, from, to, body, sent_at } => {
                        if from == to {
                            return Err(bad("a message to its own sender".into()));
                        }
                        let newest =
                            staged.message_at_or_before(&from, &to, MessageId::MAX)?.map(|(id, _)| id);
                        if newest.is_some_and(|newest| newest >= id) {
                            return Err(bad(format!(
                                "message {id} is not newer than the conversation's message {}",
                                newest.unwrap_or(0)
                            )));
                        }
                        writes::store_message(staged, id, from, to, body, sent_at)?;
                    }
                    Line::ReadState { owner, peer, read_up_to, delivered_up_to } => {
                        writes::mark_delivered(staged, &owner, &peer, delivered_up_to.max(read_up_to))?;
                        writes::mark_read(staged, &owner, &peer, read_up_to)?;
                    }
                    Line::Resend { sender, client_msg_id, id, to } => {
                        staged.insert(
                            TreeName::Chat,
                            keys::dedup(generation, &sender, client_msg_id),
                            encode(&DedupRecord { id, to }),
                        );
                    }
                    Line::Header { .. } | Line::End { .. } => {}
                }
            }
            Ok(())
        })
    }
}
