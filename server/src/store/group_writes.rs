//! The committer's half of every group write: what each group operation stages.
//!
//! A group's lines are stored once, under the group's id. Whatever the group's size, a text
//! changes three records (the line, the group's counts, the sender's watermarks) and a resend
//! entry; membership changes cost a few records per member they touch, and only deleting a
//! group reads its member list (at most [`MAX_GROUP_MEMBERS`] keys). As in `writes.rs`,
//! every operation finishes its reads that can fail, and decides whether it is refused,
//! before its first change.

use std::collections::BTreeSet;

use papo_protocol::{
    GroupMessage, GroupName, MessageId, UnixMillis, Username, MAX_GROUPS_PER_USER, MAX_GROUP_MEMBERS,
};
use serde::{de::DeserializeOwned, Serialize};

use super::commit::{Staged, TreeName};
use super::records::{
    corrupt, decode, encode, DedupRecord, FormerName, GroupId, GroupLineRecord, GroupRecord, LineKind, Mark,
    MemberRecord, StoredLast, Target,
};
use super::writes::{first_send, remember_send, Appended, Posted};
use super::{keys, preview, Result};

/// Why a group request was refused; nothing of it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// There is no such group, or the caller is not in it: the two are told alike, so
    /// nobody learns which groups exist by asking.
    NoSuchGroup,
    /// Only the group's owner may do this.
    NotOwner,
    /// Another group has that name.
    NameTaken,
    /// That user is not a member of the group.
    NotAMember(Username),
    /// The owner cannot leave or be removed: they hand the group over, or delete it.
    OwnerStays,
    /// The group would have more than [`MAX_GROUP_MEMBERS`] members.
    GroupFull,
    /// This user is in [`MAX_GROUPS_PER_USER`] groups already.
    TooManyGroups(Username),
}

/// A group operation's outcome: done (with what it returns), or refused.
pub type Refusable<T> = std::result::Result<T, Refusal>;

/// A group to create.
#[derive(Debug, Clone)]
pub struct NewGroup {
    /// Its name.
    pub name: GroupName,
    /// Its creator and owner.
    pub owner: Username,
    /// Everyone else in it from the start (duplicates and the owner are skipped).
    pub members: Vec<Username>,
    /// Whether members added later see only what was said from then on.
    pub hide_history: bool,
    /// When.
    pub now: UnixMillis,
}

/// A text to a group.
#[derive(Debug, Clone)]
pub struct NewText {
    /// The group.
    pub group: GroupId,
    /// Its sender, who must be a member.
    pub from: Username,
    /// The text.
    pub body: String,
    /// The sender's id for it, for resends.
    pub client_msg_id: u64,
    /// When.
    pub now: UnixMillis,
}

/// A group that was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// Its last name.
    pub name: GroupName,
    /// Who was in it.
    pub members: Vec<Username>,
}

/// A watermark that moved, from one line to a newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// Where it was.
    pub from: MessageId,
    /// Where it is now: a line of the group.
    pub to: MessageId,
}

/// Creates a group; the line that says so is its first, and its id the group's.
pub fn create(staged: &mut Staged<'_>, new: NewGroup) -> Result<Refusable<GroupMessage>> {
    let NewGroup { name, owner, members, hide_history, now } = new;
    if staged.get(TreeName::Chat, &keys::group_name(&name))?.is_some() {
        return Ok(Err(Refusal::NameTaken));
    }
    let mut seen = BTreeSet::from([owner.clone()]);
    let others: Vec<Username> = members.into_iter().filter(|member| seen.insert(member.clone())).collect();
    if others.len() + 1 > MAX_GROUP_MEMBERS {
        return Ok(Err(Refusal::GroupFull));
    }
    let everyone: Vec<Username> = std::iter::once(owner.clone()).chain(others).collect();
    let counts = match membership_counts(staged, &everyone)? {
        Ok(counts) => counts,
        Err(refusal) => return Ok(Err(refusal)),
    };

    let former = load::<FormerName>(staged, &keys::former_group_name(&name))?;

    let id = staged.last_id + 1;
    let group = GroupId(id);
    let mut record = GroupRecord {
        name,
        owner: owner.clone(),
        created_at: now,
        hide_history,
        members: u32::try_from(everyone.len()).expect("at most MAX_GROUP_MEMBERS"),
        lines: 0,
        texts: 0,
        last_line: 0,
        last: None,
    };
    let created = post(staged, group, &mut record, Line::new(id, &owner, now, LineKind::Created), None);
    for (member, count) in everyone.iter().zip(counts) {
        let mut joined = join(staged, group, member, Place::newest(&record), count);
        if *member == owner {
            cover(&mut joined, id, &record);
        }
        save(staged, keys::member(group, member), &joined);
    }
    take_name(staged, &record.name, group, former);
    staged.insert(TreeName::Chat, keys::group_name(&record.name), encode(&group));
    save(staged, keys::group(group), &record);
    Ok(Ok(created))
}

/// Adds `members` (those not in it yet) to a group, one line each; by its owner only.
pub fn add(
    staged: &mut Staged<'_>,
    group: GroupId,
    actor: &Username,
    members: Vec<Username>,
    now: UnixMillis,
) -> Result<Refusable<Vec<GroupMessage>>> {
    let (mut record, mut owner) = match owned(staged, group, actor)? {
        Ok(found) => found,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let mut seen = BTreeSet::new();
    let mut joining = Vec::new();
    for member in members {
        if seen.insert(member.clone())
            && load::<MemberRecord>(staged, &keys::member(group, &member))?.is_none()
        {
            joining.push(member);
        }
    }
    if record.members as usize + joining.len() > MAX_GROUP_MEMBERS {
        return Ok(Err(Refusal::GroupFull));
    }
    let counts = match membership_counts(staged, &joining)? {
        Ok(counts) => counts,
        Err(refusal) => return Ok(Err(refusal)),
    };

    let mut lines = Vec::with_capacity(joining.len());
    for (member, count) in joining.into_iter().zip(counts) {
        let id = staged.last_id + 1;
        let kind = LineKind::Added { member: member.clone() };
        lines.push(post(staged, group, &mut record, Line::new(id, actor, now, kind), Some(&mut owner)));
        let joined = join(staged, group, &member, Place::newest(&record), count);
        save(staged, keys::member(group, &member), &joined);
        record.members += 1;
    }
    save(staged, keys::member(group, actor), &owner);
    save(staged, keys::group(group), &record);
    Ok(Ok(lines))
}

/// Removes `member` from a group; by its owner only, who cannot remove themselves.
pub fn remove(
    staged: &mut Staged<'_>,
    group: GroupId,
    actor: &Username,
    member: &Username,
    now: UnixMillis,
) -> Result<Refusable<GroupMessage>> {
    let (mut record, mut owner) = match owned(staged, group, actor)? {
        Ok(found) => found,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if member == actor {
        return Ok(Err(Refusal::OwnerStays));
    }
    if load::<MemberRecord>(staged, &keys::member(group, member))?.is_none() {
        return Ok(Err(Refusal::NotAMember(member.clone())));
    }
    let count = membership_count(staged, member)?;

    part(staged, group, &mut record, member, count);
    let id = staged.last_id + 1;
    let kind = LineKind::Removed { member: member.clone() };
    let line = post(staged, group, &mut record, Line::new(id, actor, now, kind), Some(&mut owner));
    save(staged, keys::member(group, actor), &owner);
    save(staged, keys::group(group), &record);
    Ok(Ok(line))
}

/// `actor` leaves a group; its owner cannot (they hand it over or delete it).
pub fn leave(
    staged: &mut Staged<'_>,
    group: GroupId,
    actor: &Username,
    now: UnixMillis,
) -> Result<Refusable<GroupMessage>> {
    let (mut record, _) = match membered(staged, group, actor)? {
        Ok(found) => found,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if record.owner == *actor {
        return Ok(Err(Refusal::OwnerStays));
    }
    let count = membership_count(staged, actor)?;

    part(staged, group, &mut record, actor, count);
    let id = staged.last_id + 1;
    let line = post(staged, group, &mut record, Line::new(id, actor, now, LineKind::Left), None);
    save(staged, keys::group(group), &record);
    Ok(Ok(line))
}

/// Renames a group; by its owner only. `None` if it already has that name.
pub fn rename(
    staged: &mut Staged<'_>,
    group: GroupId,
    actor: &Username,
    to: GroupName,
    now: UnixMillis,
) -> Result<Refusable<Option<GroupMessage>>> {
    let (mut record, mut owner) = match owned(staged, group, actor)? {
        Ok(found) => found,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if record.name == to {
        return Ok(Ok(None));
    }
    if staged.get(TreeName::Chat, &keys::group_name(&to))?.is_some() {
        return Ok(Err(Refusal::NameTaken));
    }
    let given_up = load::<FormerName>(staged, &keys::former_group_name(&record.name))?;
    let taken = load::<FormerName>(staged, &keys::former_group_name(&to))?;

    let id = staged.last_id + 1;
    staged.remove(TreeName::Chat, keys::group_name(&record.name));
    if given_up != Some(FormerName::Ambiguous) {
        let former = FormerName::Renamed { group, renamed_at: id };
        save(staged, keys::former_group_name(&record.name), &former);
    }
    take_name(staged, &to, group, taken);
    staged.insert(TreeName::Chat, keys::group_name(&to), encode(&group));
    let from = std::mem::replace(&mut record.name, to);
    let kind = LineKind::Renamed { from };
    let line = post(staged, group, &mut record, Line::new(id, actor, now, kind), Some(&mut owner));
    save(staged, keys::member(group, actor), &owner);
    save(staged, keys::group(group), &record);
    Ok(Ok(Some(line)))
}

/// Hands a group over to another member; by its owner only. `None` if `to` owns it already.
pub fn transfer(
    staged: &mut Staged<'_>,
    group: GroupId,
    actor: &Username,
    to: &Username,
    now: UnixMillis,
) -> Result<Refusable<Option<GroupMessage>>> {
    let (mut record, mut owner) = match owned(staged, group, actor)? {
        Ok(found) => found,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if to == actor {
        return Ok(Ok(None));
    }
    if load::<MemberRecord>(staged, &keys::member(group, to))?.is_none() {
        return Ok(Err(Refusal::NotAMember(to.clone())));
    }

    record.owner = to.clone();
    let id = staged.last_id + 1;
    let kind = LineKind::OwnerChanged { to: to.clone() };
    let line = post(staged, group, &mut record, Line::new(id, actor, now, kind), Some(&mut owner));
    save(staged, keys::member(group, actor), &owner);
    save(staged, keys::group(group), &record);
    Ok(Ok(Some(line)))
}

/// Deletes a group; by its owner only. Its name and memberships go now; its history is
/// marked for the pruner, which removes it in batches, off the committer.
pub fn delete(staged: &mut Staged<'_>, group: GroupId, actor: &Username) -> Result<Refusable<Deleted>> {
    let (record, _) = match owned(staged, group, actor)? {
        Ok(found) => found,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let mut members = Vec::with_capacity(record.members as usize);
    for (key, _) in staged.scan_prefix(TreeName::Chat, &keys::members_of(group))? {
        members.push(keys::member_name(&key).ok_or_else(|| corrupt(&key, "bad member key"))?);
    }
    let counts: Vec<u32> =
        members.iter().map(|member| membership_count(staged, member)).collect::<Result<_>>()?;

    for (member, count) in members.iter().zip(counts) {
        staged.remove(TreeName::Chat, keys::member(group, member));
        leave_membership(staged, group, member, count);
    }
    staged.remove(TreeName::Chat, keys::group_name(&record.name));
    staged.remove(TreeName::Chat, keys::group(group));
    staged.insert(TreeName::Chat, keys::deleted_group(group), encode(&()));
    Ok(Ok(Deleted { name: record.name, members }))
}

/// Stores a text from a member, unless its sender stored this client id before.
pub fn append_text(staged: &mut Staged<'_>, text: NewText) -> Result<Appended> {
    let NewText { group, from, body, client_msg_id, now } = text;
    let Some(mut record) = load::<GroupRecord>(staged, &keys::group(group))? else {
        return Ok(Appended::Refused(Refusal::NoSuchGroup));
    };
    if let Some(first) = first_send(staged, &from, client_msg_id, now)? {
        if first.to != Target::Group(group) {
            return Ok(Appended::Reused { original: first.id });
        }
        let key = keys::group_line(group, first.id);
        let original: GroupLineRecord = load(staged, &key)?.ok_or_else(|| corrupt(&key, "no line"))?;
        if original.body != body {
            return Ok(Appended::Reused { original: first.id });
        }
        let message = to_message(first.id, &record.name, original);
        return Ok(Appended::Resent(Posted::Group { group, message }));
    }
    // A resend is answered even after its sender left: it was stored while they were in.
    let Some(mut sender) = load::<MemberRecord>(staged, &keys::member(group, &from))? else {
        return Ok(Appended::Refused(Refusal::NoSuchGroup));
    };

    let id = staged.last_id + 1;
    let line = Line { id, from: &from, body, sent_at: now, kind: LineKind::Text };
    let message = post(staged, group, &mut record, line, Some(&mut sender));
    save(staged, keys::member(group, &from), &sender);
    save(staged, keys::group(group), &record);
    remember_send(staged, &from, client_msg_id, now, &DedupRecord { id, to: Target::Group(group) });
    Ok(Appended::New(Posted::Group { group, message }))
}

/// Moves `user`'s delivered watermark in `group` to its newest line up to `up_to`.
pub fn mark_delivered(
    staged: &mut Staged<'_>,
    group: GroupId,
    user: &Username,
    up_to: MessageId,
) -> Result<Option<Moved>> {
    move_watermark(staged, group, user, up_to, Watermark::Delivered)
}

/// Moves `user`'s read watermark in `group` to its newest line up to `up_to` (and the
/// delivered one with it, if it was behind).
pub fn mark_read(
    staged: &mut Staged<'_>,
    group: GroupId,
    user: &Username,
    up_to: MessageId,
) -> Result<Option<Moved>> {
    move_watermark(staged, group, user, up_to, Watermark::Read)
}

/// Which of a member's watermarks a receipt moves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Watermark {
    Delivered,
    Read,
}

/// Moves `watermark` forward to the group's newest line up to `up_to`; the delivered one
/// never stays behind the read one. `None` if it would not move.
fn move_watermark(
    staged: &mut Staged<'_>,
    group: GroupId,
    user: &Username,
    up_to: MessageId,
    watermark: Watermark,
) -> Result<Option<Moved>> {
    let key = keys::member(group, user);
    let Some(mut member) = load::<MemberRecord>(staged, &key)? else { return Ok(None) };
    let Some((id, line)) = staged.group_line_at_or_before(group, up_to)? else { return Ok(None) };
    let from = match watermark {
        Watermark::Delivered => member.delivered.id,
        Watermark::Read => member.read.id,
    };
    if id <= from {
        return Ok(None);
    }
    if watermark == Watermark::Read {
        member.read = Mark { id, count: line.texts };
    }
    if member.delivered.id < id {
        member.delivered = Mark { id, count: line.position };
    }
    save(staged, key, &member);
    Ok(Some(Moved { from, to: id }))
}

/// A line to post: its id (newer than every stored one), sender, text, time and kind.
pub struct Line<'a> {
    pub id: MessageId,
    pub from: &'a Username,
    pub body: String,
    pub sent_at: UnixMillis,
    pub kind: LineKind,
}

impl<'a> Line<'a> {
    /// A system line, which has no text.
    fn new(id: MessageId, from: &'a Username, sent_at: UnixMillis, kind: LineKind) -> Self {
        Self { id, from, body: String::new(), sent_at, kind }
    }
}

/// Stores a line of `group` and counts it in `record`; `sender`, if given, has read and
/// received everything up to it (whoever writes in a group has seen it).
pub fn post(
    staged: &mut Staged<'_>,
    group: GroupId,
    record: &mut GroupRecord,
    line: Line<'_>,
    sender: Option<&mut MemberRecord>,
) -> GroupMessage {
    let Line { id, from, body, sent_at, kind } = line;
    staged.last_id = staged.last_id.max(id);
    record.lines += 1;
    record.last_line = id;
    if kind == LineKind::Text {
        record.texts += 1;
        record.last = Some(StoredLast { id, from: from.clone(), sent_at, preview: preview(&body) });
    }
    if let Some(sender) = sender {
        cover(sender, id, record);
    }
    let stored = GroupLineRecord {
        from: from.clone(),
        body,
        sent_at,
        position: record.lines,
        texts: record.texts,
        kind,
    };
    let message = to_message(id, &record.name, stored.clone());
    staged.insert_group_line(keys::group_line(group, id), &stored);
    message
}

/// Where a line sits in its group: its id, position and the texts up to it.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    pub id: MessageId,
    pub position: u64,
    pub texts: u64,
}

impl Place {
    /// The newest line of `record`.
    fn newest(record: &GroupRecord) -> Self {
        Self { id: record.last_line, position: record.lines, texts: record.texts }
    }
}

/// A new member as of the line that added them, at `joined`: it and what follows are theirs
/// to receive, and everything before counts as read. Files the membership under the user,
/// whose group count was `count`; the caller saves the member record.
pub fn join(
    staged: &mut Staged<'_>,
    group: GroupId,
    user: &Username,
    joined: Place,
    count: u32,
) -> MemberRecord {
    let before = joined.id.saturating_sub(1);
    staged.insert(TreeName::Chat, keys::membership(user, group), encode(&()));
    staged.insert(TreeName::Chat, keys::membership_count(user), encode(&(count + 1)));
    MemberRecord {
        joined_at: joined.id,
        delivered: Mark { id: before, count: joined.position.saturating_sub(1) },
        read: Mark { id: before, count: joined.texts },
    }
}

/// Moves both of a member's watermarks to line `id`, the newest of `record`.
fn cover(member: &mut MemberRecord, id: MessageId, record: &GroupRecord) {
    member.delivered = Mark { id, count: record.lines };
    member.read = Mark { id, count: record.texts };
}

/// Takes `user` out of a group; `count` is how many groups they were in.
fn part(staged: &mut Staged<'_>, group: GroupId, record: &mut GroupRecord, user: &Username, count: u32) {
    staged.remove(TreeName::Chat, keys::member(group, user));
    leave_membership(staged, group, user, count);
    record.members = record.members.saturating_sub(1);
}

/// Unfiles a membership under its user.
fn leave_membership(staged: &mut Staged<'_>, group: GroupId, user: &Username, count: u32) {
    staged.remove(TreeName::Chat, keys::membership(user, group));
    match count.saturating_sub(1) {
        0 => staged.remove(TreeName::Chat, keys::membership_count(user)),
        left => staged.insert(TreeName::Chat, keys::membership_count(user), encode(&left)),
    }
}

/// The group and the actor's member record, if the actor is in it.
fn membered(
    staged: &Staged<'_>,
    group: GroupId,
    actor: &Username,
) -> Result<Refusable<(GroupRecord, MemberRecord)>> {
    let Some(record) = load::<GroupRecord>(staged, &keys::group(group))? else {
        return Ok(Err(Refusal::NoSuchGroup));
    };
    let Some(member) = load::<MemberRecord>(staged, &keys::member(group, actor))? else {
        return Ok(Err(Refusal::NoSuchGroup));
    };
    Ok(Ok((record, member)))
}

/// Like [`membered`], and the actor must own it.
fn owned(
    staged: &Staged<'_>,
    group: GroupId,
    actor: &Username,
) -> Result<Refusable<(GroupRecord, MemberRecord)>> {
    Ok(membered(staged, group, actor)?.and_then(|(record, member)| {
        if record.owner == *actor {
            Ok((record, member))
        } else {
            Err(Refusal::NotOwner)
        }
    }))
}

/// How many groups each of `users` is in, unless one of them is in too many to join another.
fn membership_counts(staged: &Staged<'_>, users: &[Username]) -> Result<Refusable<Vec<u32>>> {
    let mut counts = Vec::with_capacity(users.len());
    for user in users {
        let count = membership_count(staged, user)?;
        if count as usize >= MAX_GROUPS_PER_USER {
            return Ok(Err(Refusal::TooManyGroups(user.clone())));
        }
        counts.push(count);
    }
    Ok(Ok(counts))
}

fn membership_count(staged: &Staged<'_>, user: &Username) -> Result<u32> {
    Ok(load(staged, &keys::membership_count(user))?.unwrap_or(0))
}

/// The record under `key` in the chat tree, this group's writes included.
pub fn load<T: DeserializeOwned>(staged: &Staged<'_>, key: &[u8]) -> Result<Option<T>> {
    staged.get(TreeName::Chat, key)?.map(|raw| decode(key, &raw)).transpose()
}

/// `group` takes `name`, which `former` says who gave up before: a group taking back its
/// own former name owns it again, and a name that passes from one group to another leads
/// nowhere once given up again (what was queued under it could be meant for either).
fn take_name(staged: &mut Staged<'_>, name: &GroupName, group: GroupId, former: Option<FormerName>) {
    let key = keys::former_group_name(name);
    match former {
        None => {}
        Some(FormerName::Renamed { group: held, .. }) if held == group => staged.remove(TreeName::Chat, key),
        Some(_) => save(staged, key, &FormerName::Ambiguous),
    }
}

/// Stages `value` under `key` in the chat tree.
pub fn save<T: Serialize>(staged: &mut Staged<'_>, key: Vec<u8>, value: &T) {
    staged.insert(TreeName::Chat, key, encode(value));
}

/// A stored line as the wire shows it, under the group's current name.
pub fn to_message(id: MessageId, group: &GroupName, line: GroupLineRecord) -> GroupMessage {
    GroupMessage {
        id,
        group: group.clone(),
        from: line.from,
        body: line.body,
        sent_at: line.sent_at,
        kind: line.kind.into(),
    }
}
