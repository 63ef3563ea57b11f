//! Groups: the store's API for them. Writes go through the committer (staged by
//! `group_writes.rs`); reads go straight to sled, and each costs at most one lookup per
//! member or per group of a user, never a walk through a history.

use std::ops::Bound;

use papo_protocol::{GroupMessage, GroupName, MessageId, UnixMillis, Username};

use super::commit::{Growth, Staged};
use super::group_writes::{self, Deleted, Moved, NewGroup, NewText, Refusable};
use super::records::{
    corrupt, decode, FormerName, GroupId, GroupLineRecord, GroupRecord, LineKind, MemberRecord,
};
use super::writes::Posted;
use super::{keys, AppendAnswers, Result, Store};

/// Who is in a group: what delivering one of its lines needs.
pub trait MemberNames {
    /// Every member of `group`, in name order.
    fn member_names(&self, group: GroupId) -> Result<Vec<Username>>;
}

impl MemberNames for Store {
    fn member_names(&self, group: GroupId) -> Result<Vec<Username>> {
        Store::member_names(self, group)
    }
}

/// Reads groups' member lists, and nothing else (see [`Store::members`]).
#[derive(Debug, Clone)]
pub struct Members(sled::Tree);

impl MemberNames for Members {
    fn member_names(&self, group: GroupId) -> Result<Vec<Username>> {
        let mut members = Vec::new();
        for key in self.0.scan_prefix(keys::members_of(group)).keys() {
            let key = key?;
            members.push(keys::member_name(&key).ok_or_else(|| corrupt(&key, "bad member key"))?);
        }
        Ok(members)
    }
}

/// A group as one of its members reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The group's id.
    pub id: GroupId,
    /// The group.
    pub group: GroupRecord,
    /// The member's own record.
    pub member: MemberRecord,
}

impl Store {
    /// Creates a group durably; its first line says so, and that line's id is the group's.
    pub fn create_group(&self, new: NewGroup) -> Result<Refusable<GroupMessage>> {
        self.committer.call(Growth::Grows, move |staged| group_writes::create(staged, new))
    }

    /// Adds members to a group (as its owner `actor`); returns one line per member added.
    pub fn add_members(
        &self,
        group: GroupId,
        actor: &Username,
        members: Vec<Username>,
        now: UnixMillis,
    ) -> Result<Refusable<Vec<GroupMessage>>> {
        let actor = actor.clone();
        self.committer
            .call(Growth::Grows, move |staged| group_writes::add(staged, group, &actor, members, now))
    }

    /// Removes a member from a group (as its owner `actor`).
    pub fn remove_member(
        &self,
        group: GroupId,
        actor: &Username,
        member: &Username,
        now: UnixMillis,
    ) -> Result<Refusable<GroupMessage>> {
        let (actor, member) = (actor.clone(), member.clone());
        self.committer
            .call(Growth::Grows, move |staged| group_writes::remove(staged, group, &actor, &member, now))
    }

    /// `actor` leaves a group.
    pub fn leave_group(
        &self,
        group: GroupId,
        actor: &Username,
        now: UnixMillis,
    ) -> Result<Refusable<GroupMessage>> {
        let actor = actor.clone();
        self.committer.call(Growth::Grows, move |staged| group_writes::leave(staged, group, &actor, now))
    }

    /// Renames a group (as its owner `actor`); `None` if it had that name already.
    pub fn rename_group(
        &self,
        group: GroupId,
        actor: &Username,
        to: GroupName,
        now: UnixMillis,
    ) -> Result<Refusable<Option<GroupMessage>>> {
        let actor = actor.clone();
        self.committer.call(Growth::Grows, move |staged| group_writes::rename(staged, group, &actor, to, now))
    }

    /// Hands a group over (as its owner `actor`) to the member `to`; `None` if `to` owns it.
    pub fn transfer_group(
        &self,
        group: GroupId,
        actor: &Username,
        to: &Username,
        now: UnixMillis,
    ) -> Result<Refusable<Option<GroupMessage>>> {
        let (actor, to) = (actor.clone(), to.clone());
        self.committer
            .call(Growth::Grows, move |staged| group_writes::transfer(staged, group, &actor, &to, now))
    }

    /// Deletes a group (as its owner `actor`): its name and memberships go durably now, its
    /// history soon after, removed by the pruner in the background.
    pub fn delete_group(&self, group: GroupId, actor: &Username) -> Result<Refusable<Deleted>> {
        let actor = actor.clone();
        // Frees space, so it works on a full disk too.
        let deleted = self
            .committer
            .call(Growth::Maintains, move |staged| group_writes::delete(staged, group, &actor))?;
        if deleted.is_ok() {
            self.pruner.wake();
        }
        Ok(deleted)
    }

    /// Queues a text to a group for storing; its answer arrives through `appends`, as for
    /// [`Store::append`].
    pub fn append_group_text(&self, text: NewText, appends: &dyn AppendAnswers) -> Result<()> {
        let work = move |staged: &mut Staged<'_>| group_writes::append_text(staged, text);
        self.committer.submit_then(Growth::Grows, work, appends.next_answer())
    }

    /// Records that a client of `user` has every line of `group` up to `up_to`.
    pub fn mark_group_delivered(
        &self,
        group: GroupId,
        user: &Username,
        up_to: MessageId,
    ) -> Result<Option<Moved>> {
        let user = user.clone();
        self.committer
            .call(Growth::Maintains, move |staged| group_writes::mark_delivered(staged, group, &user, up_to))
    }

    /// Records that `user` read `group` up to `up_to`.
    pub fn mark_group_read(
        &self,
        group: GroupId,
        user: &Username,
        up_to: MessageId,
    ) -> Result<Option<Moved>> {
        let user = user.clone();
        self.committer
            .call(Growth::Maintains, move |staged| group_writes::mark_read(staged, group, &user, up_to))
    }

    /// The group called `name`, if `user` is in it: anyone else learns nothing, not even
    /// whether it exists.
    pub fn membership(&self, user: &Username, name: &GroupName) -> Result<Option<Membership>> {
        let Some(id) = self.read::<GroupId>(&keys::group_name(name))? else { return Ok(None) };
        self.membership_of(user, id)
    }

    /// Like [`membership`](Self::membership), but also the group that gave `name` up by a
    /// rename, for whoever was in it before the rename: what their client queued under that
    /// name (a text, a receipt) while it could not hear of the rename. Only while no group
    /// is called `name`, and only while no other group has been (see [`FormerName`]).
    pub fn membership_by_any_name(&self, user: &Username, name: &GroupName) -> Result<Option<Membership>> {
        if let Some(membership) = self.membership(user, name)? {
            return Ok(Some(membership));
        }
        let Some(FormerName::Renamed { group, renamed_at }) = self.read(&keys::former_group_name(name))?
        else {
            return Ok(None);
        };
        Ok(self.membership_of(user, group)?.filter(|membership| membership.member.joined_at < renamed_at))
    }

    /// Group `id`, if `user` is in it.
    pub fn membership_of(&self, user: &Username, id: GroupId) -> Result<Option<Membership>> {
        let Some(member) = self.read::<MemberRecord>(&keys::member(id, user))? else { return Ok(None) };
        let Some(group) = self.read::<GroupRecord>(&keys::group(id))? else { return Ok(None) };
        Ok(Some(Membership { id, group, member }))
    }

    /// Group `id`, if it exists.
    pub fn group(&self, id: GroupId) -> Result<Option<GroupRecord>> {
        self.read(&keys::group(id))
    }

    /// Every member of a group with their record, in name order.
    pub fn group_members(&self, group: GroupId) -> Result<Vec<(Username, MemberRecord)>> {
        let mut members = Vec::new();
        for entry in self.trees.chat.scan_prefix(keys::members_of(group)) {
            let (key, raw) = entry?;
            let name = keys::member_name(&key).ok_or_else(|| corrupt(&key, "bad member key"))?;
            members.push((name, decode(&key, &raw)?));
        }
        Ok(members)
    }

    /// Every member of a group, in name order: whom a line goes to.
    pub fn member_names(&self, group: GroupId) -> Result<Vec<Username>> {
        self.members().member_names(group)
    }

    /// A reader of groups' member lists that lives apart from the store, for whoever
    /// delivers lines off a session's thread.
    pub fn members(&self) -> Members {
        Members(self.trees.chat.clone())
    }

    /// Every group `user` is in, by id.
    pub fn groups_of(&self, user: &Username) -> Result<Vec<GroupId>> {
        let prefix = keys::memberships_of(user);
        let mut groups = Vec::new();
        for key in self.trees.chat.scan_prefix(&prefix).keys() {
            let key = key?;
            let (_, group) =
                keys::membership_parts(&key).ok_or_else(|| corrupt(&key, "bad membership key"))?;
            groups.push(group);
        }
        Ok(groups)
    }

    /// A page of what `membership`'s member may read of its group, newest first, older than
    /// `before`, and whether older readable lines exist.
    pub fn group_history(
        &self,
        membership: &Membership,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<(Vec<GroupMessage>, bool)> {
        let Membership { id, group, member } = membership;
        let oldest = if group.hide_history { member.joined_at } else { 0 };
        let end = match before {
            Some(before) => Bound::Excluded(keys::group_line(*id, before)),
            None => Bound::Included(keys::group_line(*id, MessageId::MAX)),
        };
        let mut messages = Vec::with_capacity(limit);
        let mut more = false;
        for entry in self.trees.chat.range((Bound::Included(keys::group_line(*id, oldest)), end)).rev() {
            let (key, raw) = entry?;
            if messages.len() == limit {
                more = true;
                break;
            }
            messages.push(group_line(&key, &raw, &group.name)?);
        }
        Ok((messages, more))
    }

    /// Up to `limit` lines of `user`'s groups with ids above `after` that no client of theirs
    /// has confirmed, oldest first.
    pub fn group_pending_after(
        &self,
        user: &Username,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<Posted>> {
        let mut lines = Vec::new();
        for group in self.groups_of(user)? {
            let Some(Membership { id, group, member }) = self.membership_of(user, group)? else { continue };
            let from = member.delivered.id.max(after).saturating_add(1);
            if group.last_line < from {
                continue;
            }
            let range = keys::group_line(id, from)..=keys::group_line(id, MessageId::MAX);
            for entry in self.trees.chat.range(range).take(limit) {
                let (key, raw) = entry?;
                lines.push(Posted::Group { group: id, message: group_line(&key, &raw, &group.name)? });
            }
        }
        lines.sort_unstable_by_key(Posted::id);
        lines.truncate(limit);
        Ok(lines)
    }

    /// How many lines of `user`'s groups no client of theirs has confirmed.
    pub fn group_pending_count(&self, user: &Username) -> Result<u64> {
        let mut count = 0;
        for group in self.groups_of(user)? {
            if let Some(Membership { group, member, .. }) = self.membership_of(user, group)? {
                count += group.lines.saturating_sub(member.delivered.count);
            }
        }
        Ok(count)
    }

    /// Who sent the newest texts of `group` after `after` up to `up_to`, looking at
    /// `limit` lines at most: whom a watermark's move concerns.
    pub fn text_senders(
        &self,
        group: GroupId,
        after: MessageId,
        up_to: MessageId,
        limit: usize,
    ) -> Result<Vec<Username>> {
        let range = keys::group_line(group, after.saturating_add(1))..=keys::group_line(group, up_to);
        let mut senders = Vec::new();
        for entry in self.trees.chat.range(range).rev().take(limit) {
            let (key, raw) = entry?;
            let line: GroupLineRecord = decode(&key, &raw)?;
            if line.kind == LineKind::Text && !senders.contains(&line.from) {
                senders.push(line.from);
            }
        }
        Ok(senders)
    }

    fn read<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        self.trees.chat.get(key)?.map(|raw| decode(key, &raw)).transpose()
    }
}

pub(super) fn group_line(key: &[u8], raw: &[u8], group: &GroupName) -> Result<GroupMessage> {
    let id = keys::trailing_id(key).ok_or_else(|| corrupt(key, "short key"))?;
    Ok(group_writes::to_message(id, group, decode(key, raw)?))
}

#[cfg(test)]
mod tests;
