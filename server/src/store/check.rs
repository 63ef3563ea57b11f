//! `papo-server check`: reads a stopped server's whole store and log, changes nothing, and
//! lists every damage it finds.
//!
//! The log is read as a start would read it (the same checks, without applying anything);
//! every record of the database is decoded; and, when the log is empty (the server stopped
//! cleanly), the records are checked against each other: every message's counts, every
//! summary's counts and watermarks, every resend entry's message, every group's name,
//! counts, lines and members (and each member's place among the user's groups), the newest
//! id and the commit number the manifest promises. After a crash the database may hold half a group
//! that the log completes, so those cross-checks wait until a start has replayed it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use papo_protocol::{MessageId, Username};

use super::commit::Trees;
use super::files::DirLock;
use super::manifest::Manifest;
use super::open::{self, WAL_DIR};
use super::records::{
    corrupt, decode, format0, format2, DedupRecord, FormerName, GroupId, GroupLineRecord, GroupRecord,
    InviteRecord, LineKind, MemberRecord, MessageRecord, Summary, Target, TokenRecord, UserRecord,
};
use super::wal::{self, Expect};
use super::{keys, Result, StoreError};

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Every damage, one sentence each.
    pub problems: Vec<String>,
    /// Records read, by kind.
    pub users: u64,
    /// Messages.
    pub messages: u64,
    /// Summaries.
    pub summaries: u64,
    /// Resend entries.
    pub resends: u64,
    /// Resume tokens.
    pub tokens: u64,
    /// Groups.
    pub groups: u64,
    /// Lines of groups (of deleted ones too, until the pruner removes them).
    pub group_lines: u64,
    /// Members of groups.
    pub members: u64,
    /// Groups in the log not yet checkpointed.
    pub log_records: u64,
}

/// Checks the store in `dir`, which no server may be using.
pub fn check(dir: &Path) -> Result<Report> {
    let _lock = DirLock::acquire(dir)?;
    let mut report = Report::default();
    let manifest = match Manifest::read(dir) {
        Ok(Some(manifest)) => Some(manifest),
        Ok(None) => {
            report.problems.push(format!("{} has no store manifest (papo-store)", dir.display()));
            None
        }
        Err(e) => {
            report.problems.push(e.to_string());
            None
        }
    };
    if let Some(manifest) = manifest {
        let expect = Expect {
            retired_through: manifest.retired_through,
            next_segment_exists: manifest.next_segment_exists,
            first_commit: (manifest.format > 0).then_some(manifest.checkpoint_commit + 1),
        };
        let replayed = wal::replay(&dir.join(WAL_DIR), expect, |_, payload| {
            decode::<Vec<(super::commit::TreeName, Vec<u8>, Option<Vec<u8>>)>>(b"log record", payload)
                .map(drop)
        });
        match replayed {
            Ok(replayed) => report.log_records = replayed.records,
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    let trees = match open::open_sled(dir, 64 << 20) {
        Ok(trees) => trees,
        Err(e) => {
            report.problems.push(e.to_string());
            return Ok(report);
        }
    };
    let log_is_clean = report.problems.is_empty();
    // A store of an older format is migrated at its next start; until then its accounts
    // have their old layout.
    let accounts_have_status = manifest.is_none_or(|manifest| manifest.format >= 3);
    let counted = read_records(&trees, accounts_have_status, &mut report);
    if report.log_records == 0 && log_is_clean {
        if let Some(manifest) = manifest {
            cross_check(&trees, &counted, manifest, &mut report)?;
        }
    }
    Ok(report)
}

/// Per conversation direction (sender, recipient): messages and the newest id; and what
/// the groups' records say, to check against each other.
#[derive(Debug, Default)]
struct Counted {
    sent: HashMap<(Username, Username), (u64, MessageId)>,
    newest_id: MessageId,
    summaries: Vec<(Username, Username, Summary)>,
    group_names: Vec<(String, GroupId)>,
    former_group_names: Vec<(String, FormerName)>,
    groups: BTreeMap<GroupId, GroupRecord>,
    /// Per group: lines, texts and the newest line's id.
    lines: BTreeMap<GroupId, (u64, u64, MessageId)>,
    members: BTreeMap<GroupId, Vec<(Username, MemberRecord)>>,
    memberships: BTreeSet<(Username, GroupId)>,
    membership_counts: BTreeMap<Username, u32>,
    deleted: BTreeSet<GroupId>,
}

/// Decodes every record, noting what does not decode.
fn read_records(trees: &Trees, accounts_have_status: bool, report: &mut Report) -> Counted {
    let mut counted = Counted::default();
    let mut note = |problem: String| report.problems.push(problem);
    for entry in trees.users.iter() {
        let decoded = entry.map_err(StoreError::from).and_then(|(key, raw)| {
            if accounts_have_status {
                decode::<UserRecord>(&key, &raw).map(drop)
            } else {
                decode::<format2::UserRecord>(&key, &raw).map(drop)
            }
        });
        match decoded {
            Ok(()) => report.users += 1,
            Err(e) => note(format!("an account: {e}")),
        }
    }
    for entry in trees.tokens.iter() {
        match entry.map_err(StoreError::from).and_then(|(key, raw)| decode::<TokenRecord>(&key, &raw)) {
            Ok(_) => report.tokens += 1,
            Err(e) => note(format!("a resume token: {e}")),
        }
    }
    for entry in trees.chat.iter() {
        let (key, raw) = match entry {
            Ok(entry) => entry,
            Err(e) => {
                note(format!("the chat tree cannot be read on: {e}"));
                break;
            }
        };
        let checked: Result<()> = match key.first() {
            Some(b'm') => decode::<MessageRecord>(&key, &raw).and_then(|record| {
                let id = keys::trailing_id(&key).ok_or_else(|| super::records::corrupt(&key, "short key"))?;
                counted.newest_id = counted.newest_id.max(id);
                let direction = counted.sent.entry((record.from.clone(), record.to.clone())).or_default();
                direction.0 += 1;
                direction.1 = direction.1.max(id);
                if record.position != direction.0 {
                    note(format!(
                        "message {id} from {} says it is number {} of its direction, but is number {}",
                        record.from, record.position, direction.0
                    ));
                }
                report.messages += 1;
                Ok(())
            }),
            Some(b's') => decode::<Summary>(&key, &raw).map(|summary| {
                if let Some((owner, peer)) = keys::summary_names(&key) {
                    counted.summaries.push((owner, peer, summary));
                }
                report.summaries += 1;
            }),
            Some(b'R') => decode::<DedupRecord>(&key, &raw).map(|_| report.resends += 1),
            Some(b'i') => decode::<InviteRecord>(&key, &raw).map(drop),
            // A format-1 store's, refiled under `R` at its next start.
            Some(b'D') => decode::<format0::DedupRecord>(&key, &raw).map(|_| report.resends += 1),
            Some(b'N') => decode::<GroupId>(&key, &raw).map(|group| {
                counted.group_names.push((String::from_utf8_lossy(&key[1..]).into_owned(), group));
            }),
            // May name a group deleted since: it then finds nothing.
            Some(b'O') => decode::<FormerName>(&key, &raw).map(|former| {
                counted.former_group_names.push((String::from_utf8_lossy(&key[1..]).into_owned(), former));
            }),
            Some(b'G') => decode::<GroupRecord>(&key, &raw).and_then(|record| {
                let group = keys::group_of(&key).ok_or_else(|| corrupt(&key, "bad group key"))?;
                counted.groups.insert(group, record);
                report.groups += 1;
                Ok(())
            }),
            Some(b'W') => decode::<MemberRecord>(&key, &raw).and_then(|member| {
                let group = keys::group_of(&key).ok_or_else(|| corrupt(&key, "bad member key"))?;
                let name = keys::member_name(&key).ok_or_else(|| corrupt(&key, "bad member key"))?;
                counted.members.entry(group).or_default().push((name, member));
                report.members += 1;
                Ok(())
            }),
            Some(b'U') => decode::<()>(&key, &raw).and_then(|()| {
                let parts = keys::membership_parts(&key).ok_or_else(|| corrupt(&key, "bad membership key"))?;
                counted.memberships.insert(parts);
                Ok(())
            }),
            Some(b'u') => decode::<u32>(&key, &raw).and_then(|count| {
                let user =
                    keys::membership_count_user(&key).ok_or_else(|| corrupt(&key, "bad group count key"))?;
                counted.membership_counts.insert(user, count);
                Ok(())
            }),
            Some(b'H') => decode::<GroupLineRecord>(&key, &raw).and_then(|line| {
                let group = keys::group_of(&key).ok_or_else(|| corrupt(&key, "bad group line key"))?;
                let id = keys::trailing_id(&key).ok_or_else(|| corrupt(&key, "short key"))?;
                counted.newest_id = counted.newest_id.max(id);
                let (lines, texts, newest) = counted.lines.entry(group).or_default();
                *lines += 1;
                *texts += u64::from(line.kind == LineKind::Text);
                *newest = id;
                if (line.position, line.texts) != (*lines, *texts) {
                    note(format!(
                        "line {id} of group {} says it is line {} after {} texts, but is line {lines} after {texts}",
                        group.0, line.position, line.texts
                    ));
                }
                report.group_lines += 1;
                Ok(())
            }),
            Some(b'X') => decode::<()>(&key, &raw).and_then(|()| {
                counted.deleted.insert(keys::group_of(&key).ok_or_else(|| corrupt(&key, "bad deleted group key"))?);
                Ok(())
            }),
            Some(b'n' | b'c') => decode::<u64>(&key, &raw).map(drop),
            Some(b'l') => decode::<i64>(&key, &raw).map(drop),
            _ => Err(super::records::corrupt(&key, "a key of no known kind")),
        };
        if let Err(e) = checked {
            note(e.to_string());
        }
    }
    counted
}

/// Checks the records against each other and the manifest.
fn cross_check(trees: &Trees, counted: &Counted, manifest: Manifest, report: &mut Report) -> Result<()> {
    let last_id = trees.last_id()?;
    if last_id < counted.newest_id {
        report
            .problems
            .push(format!("the newest id handed out is {last_id}, but message {} exists", counted.newest_id));
    }
    if last_id < manifest.checkpoint_last_id {
        report.problems.push(format!(
            "the newest id is {last_id}, but the last checkpoint reached {}",
            manifest.checkpoint_last_id
        ));
    }
    let applied = trees.applied_commit()?;
    if applied < manifest.checkpoint_commit {
        report.problems.push(format!(
            "the database reaches commit {applied}, but its last checkpoint reached {}",
            manifest.checkpoint_commit
        ));
    }
    for (owner, peer, summary) in &counted.summaries {
        let (received, newest) =
            counted.sent.get(&(peer.clone(), owner.clone())).copied().unwrap_or_default();
        if summary.received != received || summary.last_received != newest {
            report.problems.push(format!(
                "{owner}'s summary of {peer} counts {} received up to {}, the messages {received} up to {newest}",
                summary.received, summary.last_received
            ));
        }
        if summary.unread > summary.received || summary.read_up_to > summary.last_received {
            report
                .problems
                .push(format!("{owner}'s read state for {peer} is past the conversation's messages"));
        }
    }
    for entry in trees.chat.scan_prefix(keys::DEDUPS) {
        let (key, raw) = entry?;
        let Some((_, sender, client_msg_id)) = keys::dedup_parts(&key) else { continue };
        let DedupRecord { id, to } = decode(&key, &raw)?;
        let message = match &to {
            Target::User(to) => keys::message(&sender, to, id),
            // The lines of a deleted group go, while resend entries wait for their window.
            Target::Group(group) if !counted.groups.contains_key(group) => continue,
            Target::Group(group) => keys::group_line(*group, id),
        };
        if !trees.chat.contains_key(message)? {
            report.problems.push(format!(
                "{sender}'s client id {client_msg_id} points at message {id}, which does not exist"
            ));
        }
    }
    cross_check_groups(counted, &mut report.problems);
    Ok(())
}

/// Checks every group's records against each other and against its members' records.
fn cross_check_groups(counted: &Counted, problems: &mut Vec<String>) {
    for (name, group) in &counted.group_names {
        match counted.groups.get(group) {
            Some(record) if record.name.bare() == name => {}
            Some(record) => {
                problems.push(format!("the name #{name} points at group {}, called {}", group.0, record.name))
            }
            None => {
                problems.push(format!("the name #{name} points at group {}, which does not exist", group.0))
            }
        }
    }
    let names: BTreeSet<(&str, GroupId)> =
        counted.group_names.iter().map(|(name, group)| (name.as_str(), *group)).collect();
    let current: BTreeSet<&str> = names.iter().map(|(name, _)| *name).collect();
    for (name, former) in &counted.former_group_names {
        // A name another group held before is filed as ambiguous, also while it is in use.
        if matches!(former, FormerName::Renamed { .. }) && current.contains(name.as_str()) {
            problems.push(format!("#{name} is filed both as a group's name and as the one a group gave up"));
        }
    }
    let no_members = Vec::new();
    for (group, record) in &counted.groups {
        let label = format!("group {} ({})", group.0, record.name);
        if !names.contains(&(record.name.bare(), *group)) {
            problems.push(format!("{label} is not filed under its name"));
        }
        let (lines, texts, newest) = counted.lines.get(group).copied().unwrap_or_default();
        if (record.lines, record.texts, record.last_line) != (lines, texts, newest) {
            problems.push(format!(
                "{label} counts {} lines and {} texts up to {}, its history {lines} and {texts} up to {newest}",
                record.lines, record.texts, record.last_line
            ));
        }
        let members = counted.members.get(group).unwrap_or(&no_members);
        if record.members as usize != members.len() {
            problems.push(format!("{label} counts {} members, {} are filed", record.members, members.len()));
        }
        if !members.iter().any(|(name, _)| *name == record.owner) {
            problems.push(format!("{label} is owned by {}, who is not a member", record.owner));
        }
        for (name, member) in members {
            if member.delivered.id > record.last_line || member.read.id > record.last_line {
                problems.push(format!("{name}'s watermarks in {label} are past its newest line"));
            }
        }
    }
    for (group, members) in &counted.members {
        for (name, _) in members {
            if !counted.groups.contains_key(group) {
                problems.push(format!("{name} is a member of group {}, which does not exist", group.0));
            }
            if !counted.memberships.contains(&(name.clone(), *group)) {
                problems.push(format!("{name}'s membership of group {} is not filed under {name}", group.0));
            }
        }
    }
    let mut per_user: BTreeMap<&Username, u32> = BTreeMap::new();
    for (user, group) in &counted.memberships {
        *per_user.entry(user).or_default() += 1;
        let member =
            counted.members.get(group).is_some_and(|members| members.iter().any(|(name, _)| name == user));
        if !member {
            problems.push(format!("{user} is filed as in group {}, but is not its member", group.0));
        }
    }
    let users: BTreeSet<&Username> =
        per_user.keys().copied().chain(counted.membership_counts.keys()).collect();
    for user in users {
        let (filed, counted_as) = (
            per_user.get(user).copied().unwrap_or(0),
            counted.membership_counts.get(user).copied().unwrap_or(0),
        );
        if filed != counted_as {
            problems.push(format!("{user} is counted in {counted_as} groups, but filed in {filed}"));
        }
    }
    for group in counted.lines.keys() {
        if !counted.groups.contains_key(group) && !counted.deleted.contains(group) {
            problems.push(format!("lines of group {} remain, which neither exists nor was deleted", group.0));
        }
    }
}
