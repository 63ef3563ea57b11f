//! A store as plain text, one JSON object a line, for backups and for moving to another
//! storage engine (sled 0.34 has no migration path of its own).
//!
//! Every line has a `type`. An export is: one `papo-export` header; every `user` (with when
//! their last session ended, if one has); every `message`, conversation by conversation,
//! oldest first; every `read_state` (a user's read and delivered watermarks for one peer);
//! every `resend` entry still in the resend window (`to` a user, or `group` by id); every
//! `group` (by its id, which never changes: the id of its first line); every
//! `group_message`, group by group, oldest first, system lines included (`kind` is `text`,
//! `created`, `left`, or an object: `{"added":{"member":…}}`, `{"removed":{"member":…}}`,
//! `{"renamed":{"from":"#old"}}`, `{"owner_changed":{"to":…}}`); every `member` of every
//! group, with the line that added them and their watermarks; every `invite` code not used
//! up or revoked (format 2; format 1 had none and still imports); and one `end` line with the
//! counts, so a truncated file is told from a whole one. Unread counts, previews, per-message
//! positions, member counts and a user's group count are derived and not exported. Resume
//! tokens are not exported: after an import, everyone logs in again with their password. The
//! history of a deleted group that the pruner has not removed yet is not exported either,
//! nor the names groups gave up by a rename (after an import, a text a member's client
//! queued under an old name is refused as for a missing group, and reported to them).
//!
//! ```text
//! {"type":"papo-export","format":2,"exported_at":1764600000000,"last_id":5}
//! {"type":"user","name":"ana","password_hash":"$2b$12$…","created_at":1764500000000,"last_seen":1764590000000}
//! {"type":"message","id":1,"from":"ana","to":"bob","body":"oi","sent_at":1764500000100}
//! {"type":"read_state","owner":"bob","peer":"ana","read_up_to":1,"delivered_up_to":1}
//! {"type":"resend","sender":"ana","client_msg_id":7,"id":1,"to":"bob"}
//! {"type":"resend","sender":"ana","client_msg_id":8,"id":4,"group":2}
//! {"type":"group","id":2,"name":"#lab","owner":"ana","created_at":1764500000200,"hide_history":false}
//! {"type":"group_message","id":2,"group":2,"from":"ana","body":"","sent_at":1764500000200,"kind":"created"}
//! {"type":"group_message","id":3,"group":2,"from":"ana","body":"","sent_at":1764500000300,"kind":{"added":{"member":"bob"}}}
//! {"type":"group_message","id":4,"group":2,"from":"ana","body":"bem-vindo","sent_at":1764500000400,"kind":"text"}
//! {"type":"member","group":2,"name":"ana","joined_at":2,"read_up_to":4,"delivered_up_to":4}
//! {"type":"member","group":2,"name":"bob","joined_at":3,"read_up_to":2,"delivered_up_to":2}
//! {"type":"invite","code":"Q4…","created_at":1764500000500,"expires_at":null,"uses_left":1}
//! {"type":"end","users":1,"messages":1,"groups":1,"group_messages":3,"invites":1}
//! ```
//!
//! An export of a running server reads while it serves: it holds every message and group
//! line up to the header's `last_id` (and the groups and members that existed by then), and
//! watermarks may point past it (an import caps them).

use std::io::{BufRead, Write};

use papo_protocol::{GroupName, MessageId, UnixMillis, Username};
use serde::{Deserialize, Serialize};

use super::commit::{Growth, Staged, TreeName};
use super::group_writes::{self, load, save, Line as GroupLine, Place};
use super::records::{
    corrupt, decode, encode, AccountStatus, DedupRecord, GroupId, GroupLineRecord, GroupRecord, InviteRecord,
    LineKind, MemberRecord, MessageRecord, Summary, Target, UserRecord,
};
use super::{commit, keys, writes, Result, Store, StoreError};

/// The export format this server writes; it reads this one and every older one.
pub const FORMAT: u32 = 2;

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
        /// `disabled` if the administrator disabled it; left out while it is active, so
        /// exports of stores without disabled accounts read as before.
        #[serde(default, skip_serializing_if = "AccountStatus::is_active")]
        status: AccountStatus,
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
        /// Its recipient, for a direct message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Username>,
        /// Its group, for a group text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<GroupId>,
    },
    /// A group.
    Group {
        /// Its id: the id of its first line.
        id: GroupId,
        /// Its name.
        name: GroupName,
        /// Its owner.
        owner: Username,
        /// When it was created.
        created_at: UnixMillis,
        /// Whether members added later see only what was said from then on.
        hide_history: bool,
    },
    /// A line of a group's history.
    GroupMessage {
        /// Its id.
        id: MessageId,
        /// Its group.
        group: GroupId,
        /// Who sent it, or did what it says.
        from: Username,
        /// Its text (empty but for texts).
        body: String,
        /// When the server stored it.
        sent_at: UnixMillis,
        /// A text, or which change.
        kind: LineKind,
    },
    /// A member of a group.
    Member {
        /// The group.
        group: GroupId,
        /// The member.
        name: Username,
        /// The line that added them (or created the group).
        joined_at: MessageId,
        /// Newest line read.
        read_up_to: MessageId,
        /// Newest line received by a client.
        delivered_up_to: MessageId,
    },
    /// An invite code, with what is left of it.
    Invite {
        /// The code.
        code: String,
        /// When it was created.
        created_at: UnixMillis,
        /// When it stops working, if ever.
        expires_at: Option<UnixMillis>,
        /// Registrations it still allows.
        uses_left: u32,
    },
    /// The last line.
    End {
        /// Users exported.
        users: u64,
        /// Messages exported.
        messages: u64,
        /// Groups exported.
        #[serde(default)]
        groups: u64,
        /// Group lines exported.
        #[serde(default)]
        group_messages: u64,
        /// Invite codes exported (format 2; left out when there are none).
        #[serde(default, skip_serializing_if = "is_zero")]
        invites: u64,
    },
}

fn is_zero(count: &u64) -> bool {
    *count == 0
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
    /// Groups.
    pub groups: u64,
    /// Lines of groups.
    pub group_messages: u64,
    /// Members of groups.
    pub members: u64,
    /// Invite codes.
    pub invites: u64,
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
            let (created_at, status) = (record.created_at, record.status);
            write_line(
                out,
                &Line::User { name, password_hash: record.password_hash, created_at, last_seen, status },
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
            let (to, group) = match to {
                Target::User(user) => (Some(user), None),
                Target::Group(group) => (None, Some(group)),
            };
            write_line(out, &Line::Resend { sender, client_msg_id, id, to, group })?;
            counts.resends += 1;
        }
        self.export_groups(out, last_id, &mut counts)?;
        for (code, InviteRecord { created_at, expires_at, uses_left }) in self.invites()? {
            write_line(out, &Line::Invite { code, created_at, expires_at, uses_left })?;
            counts.invites += 1;
        }
        let end = Line::End {
            users: counts.users,
            messages: counts.messages,
            groups: counts.groups,
            group_messages: counts.group_messages,
            invites: counts.invites,
        };
        write_line(out, &end)?;
        out.flush().map_err(|source| StoreError::Io {
            action: "write the export to",
            path: "the output".into(),
            source,
        })?;
        Ok(counts)
    }

    /// Writes every group that existed by `last_id`, then their lines, then their members.
    fn export_groups(&self, out: &mut impl Write, last_id: MessageId, counts: &mut Counts) -> Result<()> {
        let mut exported = std::collections::HashSet::new();
        for entry in self.trees.chat.scan_prefix(keys::GROUPS) {
            let (key, raw) = entry?;
            let id = keys::group_of(&key).ok_or_else(|| corrupt(&key, "bad group key"))?;
            if id.0 > last_id {
                continue;
            }
            let GroupRecord { name, owner, created_at, hide_history, .. } = decode(&key, &raw)?;
            write_line(out, &Line::Group { id, name, owner, created_at, hide_history })?;
            exported.insert(id);
            counts.groups += 1;
        }
        // Lines of a deleted group still waiting for the pruner have no group line: left out.
        for entry in self.trees.chat.scan_prefix(keys::GROUP_LINES) {
            let (key, raw) = entry?;
            let group = keys::group_of(&key).ok_or_else(|| corrupt(&key, "bad group line key"))?;
            let id = keys::trailing_id(&key).ok_or_else(|| corrupt(&key, "short key"))?;
            if id > last_id || !exported.contains(&group) {
                continue;
            }
            let GroupLineRecord { from, body, sent_at, kind, .. } = decode(&key, &raw)?;
            write_line(out, &Line::GroupMessage { id, group, from, body, sent_at, kind })?;
            counts.group_messages += 1;
        }
        for entry in self.trees.chat.scan_prefix(keys::MEMBERS) {
            let (key, raw) = entry?;
            let group = keys::group_of(&key).ok_or_else(|| corrupt(&key, "bad member key"))?;
            let name = keys::member_name(&key).ok_or_else(|| corrupt(&key, "bad member key"))?;
            let member: MemberRecord = decode(&key, &raw)?;
            if member.joined_at > last_id || !exported.contains(&group) {
                continue;
            }
            let (read_up_to, delivered_up_to) = (member.read.id, member.delivered.id);
            write_line(
                out,
                &Line::Member { group, name, joined_at: member.joined_at, read_up_to, delivered_up_to },
            )?;
            counts.members += 1;
        }
        Ok(())
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
        let mut codes = std::collections::HashSet::new();
        let mut header_last_id = 0;
        for (index, line) in input.lines().enumerate() {
            let number = index as u64 + 1;
            let bad = |reason: String| StoreError::Import { line: number, reason };
            let text = line.map_err(|e| bad(e.to_string()))?;
            if ended {
                return Err(bad("a line after the end line".into()));
            }
            let parsed: Line = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            match (&parsed, number) {
                (Line::Header { format, last_id, .. }, 1) if (1..=FORMAT).contains(format) => {
                    header_last_id = *last_id;
                }
                (Line::Header { format, .. }, 1) => {
                    return Err(bad(format!(
                        "export format {format}; this server reads formats 1 to {FORMAT}"
                    )));
                }
                (_, 1) => return Err(bad("the first line must be the papo-export header".into())),
                (Line::Header { .. }, _) => return Err(bad("a second header".into())),
                (Line::End { users, messages, groups, group_messages, invites }, _) => {
                    let told = (*users, *messages, *groups, *group_messages, *invites);
                    let held =
                        (counts.users, counts.messages, counts.groups, counts.group_messages, counts.invites);
                    if told != held {
                        return Err(bad(format!(
                            "the end line counts {users} users, {messages} messages, {groups} groups, {group_messages} group messages and {invites} invite codes; the file holds {}, {}, {}, {} and {}",
                            held.0, held.1, held.2, held.3, held.4
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
                Line::GroupMessage { id, .. } => {
                    if !ids.insert(*id) {
                        return Err(bad(format!("message id {id} appears twice")));
                    }
                    counts.group_messages += 1;
                }
                Line::ReadState { .. } => counts.read_states += 1,
                Line::Resend { .. } => counts.resends += 1,
                Line::Group { .. } => counts.groups += 1,
                Line::Member { .. } => counts.members += 1,
                Line::Invite { code, .. } => {
                    if !codes.insert(code.clone()) {
                        return Err(bad(format!("the invite code {code} appears twice")));
                    }
                    counts.invites += 1;
                }
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
        // Ids go on from the exported store's newest, not from the newest line exported: a
        // deleted group's id (and its resend entries' ids) must never be handed out again.
        self.committer.call(Growth::Maintains, move |staged: &mut commit::Staged<'_>| {
            staged.last_id = staged.last_id.max(header_last_id);
            Ok(())
        })?;
        Ok(counts)
    }

    /// Stages one batch of lines in one group.
    fn import_batch(&self, lines: Vec<(u64, Line)>, now: UnixMillis) -> Result<()> {
        let generation = keys::dedup_generation(now);
        self.committer.call(Growth::Grows, move |staged: &mut commit::Staged<'_>| {
            for (number, line) in lines {
                let bad = |reason: String| StoreError::Import { line: number, reason };
                match line {
                    Line::User { name, password_hash, created_at, last_seen, status } => {
                        let record = UserRecord { password_hash, created_at, status };
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
                    Line::Resend { sender, client_msg_id, id, to, group } => {
                        let to = match (to, group) {
                            (Some(user), None) => Target::User(user),
                            (None, Some(group)) => Target::Group(group),
                            _ => return Err(bad("a resend entry needs either `to` or `group`".into())),
                        };
                        staged.insert(
                            TreeName::Chat,
                            keys::dedup(generation, &sender, client_msg_id),
                            encode(&DedupRecord { id, to }),
                        );
                    }
                    Line::Group { id, name, owner, created_at, hide_history } => {
                        import_group(staged, id, name, owner, created_at, hide_history).map_err(&bad)?;
                    }
                    Line::GroupMessage { id, group, from, body, sent_at, kind } => {
                        import_line(staged, group, GroupLine { id, from: &from, body, sent_at, kind })
                            .map_err(&bad)?;
                    }
                    Line::Member { group, name, joined_at, read_up_to, delivered_up_to } => {
                        import_member(staged, group, &name, joined_at)?.map_err(&bad)?;
                        group_writes::mark_delivered(staged, group, &name, delivered_up_to.max(read_up_to))?;
                        group_writes::mark_read(staged, group, &name, read_up_to)?;
                    }
                    Line::Invite { code, created_at, expires_at, uses_left } => {
                        let record = InviteRecord { created_at, expires_at, uses_left };
                        staged.insert(TreeName::Chat, keys::invite(&code), encode(&record));
                    }
                    Line::Header { .. } | Line::End { .. } => {}
                }
            }
            Ok(())
        })
    }
}

/// Files an exported group under its id and name, without lines yet.
fn import_group(
    staged: &mut Staged<'_>,
    id: GroupId,
    name: GroupName,
    owner: Username,
    created_at: UnixMillis,
    hide_history: bool,
) -> std::result::Result<(), String> {
    let taken = staged.get(TreeName::Chat, &keys::group_name(&name)).map_err(|e| e.to_string())?;
    if taken.is_some() {
        return Err(format!("the group name {name} appears twice"));
    }
    staged.insert(TreeName::Chat, keys::group_name(&name), encode(&id));
    let record = GroupRecord {
        name,
        owner,
        created_at,
        hide_history,
        members: 0,
        lines: 0,
        texts: 0,
        last_line: 0,
        last: None,
    };
    save(staged, keys::group(id), &record);
    Ok(())
}

/// Appends an exported line to its group, which must come before it, as must older lines.
fn import_line(
    staged: &mut Staged<'_>,
    group: GroupId,
    line: GroupLine<'_>,
) -> std::result::Result<(), String> {
    let key = keys::group(group);
    let Some(mut record) = load::<GroupRecord>(staged, &key).map_err(|e| e.to_string())? else {
        return Err(format!("a line of group {}, which no group line before it names", group.0));
    };
    if line.id <= record.last_line {
        return Err(format!("line {} is not newer than its group's line {}", line.id, record.last_line));
    }
    group_writes::post(staged, group, &mut record, line, None);
    save(staged, key, &record);
    Ok(())
}

/// Makes an exported member a member as of the line that added them, which must come
/// before; their watermarks follow.
fn import_member(
    staged: &mut Staged<'_>,
    group: GroupId,
    name: &Username,
    joined_at: MessageId,
) -> Result<std::result::Result<(), String>> {
    let key = keys::group(group);
    let Some(mut record) = load::<GroupRecord>(staged, &key)? else {
        return Ok(Err(format!("a member of group {}, which no group line before it names", group.0)));
    };
    let Some(line) = load::<GroupLineRecord>(staged, &keys::group_line(group, joined_at))? else {
        return Ok(Err(format!("{name} joined at line {joined_at}, which the group does not have")));
    };
    if load::<MemberRecord>(staged, &keys::member(group, name))?.is_some() {
        return Ok(Err(format!("{name} is a member of group {} twice", group.0)));
    }
    let count = load::<u32>(staged, &keys::membership_count(name))?.unwrap_or(0);
    let place = Place { id: joined_at, position: line.position, texts: line.texts };
    let member = group_writes::join(staged, group, name, place, count);
    save(staged, keys::member(group, name), &member);
    record.members += 1;
    save(staged, key, &record);
    Ok(Ok(()))
}
