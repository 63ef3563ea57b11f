//! Deleting an account, in one operation of the committer.
//!
//! The account's messages stay where they are: each conversation is stored once, and the
//! other side keeps its history. What goes is what was the account's own: its resume
//! tokens, its view of each conversation (unread counts, watermarks: its mailbox), when it
//! was last seen, and its place in groups. A group it owned is handed over to the member
//! who has been in it longest, or deleted if it was alone there. The account's record stays
//! as a tombstone (no password, status `Deleted`), so its name is never given to someone
//! else, whose messages would then read as the deleted account's.

use papo_protocol::{GroupMessage, GroupName, UnixMillis, Username};

use super::commit::{Staged, TreeName};
use super::group_writes::{self, load, Refusal};
use super::records::{
    corrupt, decode, encode, AccountStatus, GroupId, GroupRecord, MemberRecord, UserRecord,
};
use super::writes::revoke_tokens;
use super::{keys, Result};

/// What deleting an account changed, for the logs and for the members of its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedAccount {
    /// Resume tokens revoked.
    pub revoked: u64,
    /// Lines its departure added to groups (a hand-over, then its leaving), for their
    /// remaining members.
    pub lines: Vec<(GroupId, GroupMessage)>,
    /// Groups it was the only member of, deleted with it.
    pub groups_deleted: Vec<GroupName>,
}

impl DeletedAccount {
    /// How many groups it left (its own handed over included).
    pub fn groups_left(&self) -> usize {
        let mut groups: Vec<GroupId> = self.lines.iter().map(|(group, _)| *group).collect();
        groups.dedup();
        groups.len()
    }
}

/// What becomes of one of the account's groups.
enum Departure {
    /// It leaves a group someone else owns.
    Leave(GroupId),
    /// It owns the group: hands it over to this member, then leaves.
    HandOver(GroupId, Username),
    /// It owns the group and is alone in it.
    Delete(GroupId),
}

/// Deletes `user`'s account; `None` if there is no such account (or it was deleted before).
pub fn delete_account(
    staged: &mut Staged<'_>,
    user: &Username,
    now: UnixMillis,
) -> Result<Option<DeletedAccount>> {
    let key = user.as_str().as_bytes();
    let Some(raw) = staged.get(TreeName::Users, key)? else { return Ok(None) };
    let record: UserRecord = decode(key, &raw)?;
    if record.status == AccountStatus::Deleted {
        return Ok(None);
    }
    // Every read that decides what happens comes first; the group operations below read
    // again only the records read here.
    let mut departures = Vec::new();
    for (membership, _) in staged.scan_prefix(TreeName::Chat, &keys::memberships_of(user))? {
        let (_, group) =
            keys::membership_parts(&membership).ok_or_else(|| corrupt(&membership, "bad membership key"))?;
        let group_key = keys::group(group);
        let Some(group_record) = load::<GroupRecord>(staged, &group_key)? else {
            return Err(corrupt(&group_key, "a membership of a group that does not exist"));
        };
        departures.push(if group_record.owner != *user {
            Departure::Leave(group)
        } else {
            match longest_member(staged, group, user)? {
                Some(successor) => Departure::HandOver(group, successor),
                None => Departure::Delete(group),
            }
        });
    }
    let summaries = staged.scan_prefix(TreeName::Chat, &keys::summary_prefix(user))?;

    let mut deleted = DeletedAccount { revoked: 0, lines: Vec::new(), groups_deleted: Vec::new() };
    for departure in departures {
        match departure {
            Departure::Leave(group) => deleted.lines.push((group, leave(staged, group, user, now)?)),
            Departure::HandOver(group, successor) => {
                let handed = group_writes::transfer(staged, group, user, &successor, now)?
                    .map_err(|refusal| refused(group, &refusal))?;
                deleted.lines.extend(handed.map(|line| (group, line)));
                deleted.lines.push((group, leave(staged, group, user, now)?));
            }
            Departure::Delete(group) => {
                let gone =
                    group_writes::delete(staged, group, user)?.map_err(|refusal| refused(group, &refusal))?;
                deleted.groups_deleted.push(gone.name);
            }
        }
    }
    deleted.revoked = revoke_tokens(staged, user, None)?;
    for (summary, _) in summaries {
        staged.remove(TreeName::Chat, summary);
    }
    staged.remove(TreeName::Chat, keys::last_seen(user));
    let tombstone = UserRecord {
        password_hash: String::new(),
        created_at: record.created_at,
        status: AccountStatus::Deleted,
    };
    staged.insert(TreeName::Users, key.to_vec(), encode(&tombstone));
    Ok(Some(deleted))
}

/// The member of `group` other than `user` who joined first, if any.
fn longest_member(staged: &Staged<'_>, group: GroupId, user: &Username) -> Result<Option<Username>> {
    let mut longest: Option<(u64, Username)> = None;
    for (key, raw) in staged.scan_prefix(TreeName::Chat, &keys::members_of(group))? {
        let member = keys::member_name(&key).ok_or_else(|| corrupt(&key, "bad member key"))?;
        if member == *user {
            continue;
        }
        let record: MemberRecord = decode(&key, &raw)?;
        if longest.as_ref().is_none_or(|(joined_at, _)| record.joined_at < *joined_at) {
            longest = Some((record.joined_at, member));
        }
    }
    Ok(longest.map(|(_, member)| member))
}

fn leave(staged: &mut Staged<'_>, group: GroupId, user: &Username, now: UnixMillis) -> Result<GroupMessage> {
    group_writes::leave(staged, group, user, now)?.map_err(|refusal| refused(group, &refusal))
}

/// A group operation the records read before said would succeed was refused: they are not
/// what they seemed.
fn refused(group: GroupId, refusal: &Refusal) -> super::StoreError {
    corrupt(&keys::group(group), format!("deleting a member's account was refused: {refusal:?}"))
}
