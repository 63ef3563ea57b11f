//! Groups: creating, changing and listing them, and their half of `Send`, `History`,
//! `MarkRead` and `Delivered` when those name a `#group`.
//!
//! Whoever is not in a group gets the same "no such group" for every request about it as
//! for a group that does not exist, so nobody learns which groups exist by asking (only
//! creating one with a taken name says the name is taken, as registering does for users).
//! Every request costs at most a lookup per member (a group has at most
//! [`MAX_GROUP_MEMBERS`]) or per group of the caller, never a walk through a history.

use std::collections::BTreeSet;

use papo_protocol::{
    ErrorCode, ErrorReply, Event, GroupHistoryPage, GroupInfo, GroupMember, GroupMessage, GroupName,
    GroupSummary, MessageId, ReceiptKind, Reply, Username, MAX_GROUPS_PER_USER, MAX_GROUP_MEMBERS,
    MAX_HISTORY_PAGE,
};
use tracing::warn;

use super::chat::{check_body, check_rate, existing_user, fit_page};
use super::{Audience, Context, Delivery, Handled, Identity};
use crate::errors;
use crate::store::{
    AppendAnswers, GroupId, MemberNames, Membership, Moved, NewGroup, NewText, Refusal, Store,
};

/// Lines a watermark's move looks back over for the senders it concerns: a member coming
/// back after a long absence tells the senders of the newest ones, not of every line since.
const RECEIPT_SCAN: usize = 256;

/// Creates a group with the caller as owner; tells the other members they are in it.
pub(super) fn create(
    ctx: &Context<'_>,
    me: &Identity,
    name: &str,
    members: &[String],
    hide_history: bool,
) -> Result<Handled, ErrorReply> {
    let name = group_name(name)?;
    let members = existing_users(ctx, me, members, 1)?;
    let new = NewGroup { name, owner: me.name.clone(), members, hide_history, now: ctx.clock.now_millis() };
    let created =
        ctx.store.create_group(new).map_err(|e| errors::from_store(&e))?.map_err(|r| refusal(&r))?;
    let group = GroupId(created.id);
    let info = group_info(ctx, group)?;
    let deliveries = lines_to_members(ctx, group, &me.name, vec![created]);
    Ok(Handled::reply(Reply::Group(info)).delivering(deliveries))
}

/// Adds members (the owner only); those already in it are skipped.
pub(super) fn add(
    ctx: &Context<'_>,
    me: &Identity,
    group: &str,
    members: &[String],
) -> Result<Handled, ErrorReply> {
    let membership = member_of(ctx, me, group)?;
    let members = existing_users(ctx, me, members, 0)?;
    let lines = ctx
        .store
        .add_members(membership.id, &me.name, members, ctx.clock.now_millis())
        .map_err(|e| errors::from_store(&e))?
        .map_err(|r| refusal(&r))?;
    Ok(Handled::reply(Reply::Done).delivering(lines_to_members(ctx, membership.id, &me.name, lines)))
}

/// Removes a member (the owner only): they are told, and the others see the line.
pub(super) fn remove(
    ctx: &Context<'_>,
    me: &Identity,
    group: &str,
    member: &str,
) -> Result<Handled, ErrorReply> {
    let membership = member_of(ctx, me, group)?;
    let member = existing_user(ctx, member)?;
    let line = ctx
        .store
        .remove_member(membership.id, &me.name, &member, ctx.clock.now_millis())
        .map_err(|e| errors::from_store(&e))?
        .map_err(|r| refusal(&r))?;
    let removed = Event::GroupRemoved { group: line.group.clone(), by: me.name.clone() };
    let mut deliveries = lines_to_members(ctx, membership.id, &me.name, vec![line]);
    deliveries.push(Delivery { to: Audience::User(member), events: vec![removed] });
    Ok(Handled::reply(Reply::Done).delivering(deliveries))
}

/// Leaves a group (anyone but its owner): the others see the line, and the caller's other
/// sessions are told.
pub(super) fn leave(ctx: &Context<'_>, me: &Identity, group: &str) -> Result<Handled, ErrorReply> {
    let membership = member_of(ctx, me, group)?;
    let line = ctx
        .store
        .leave_group(membership.id, &me.name, ctx.clock.now_millis())
        .map_err(|e| errors::from_store(&e))?
        .map_err(|r| refusal(&r))?;
    let left = Event::GroupRemoved { group: line.group.clone(), by: me.name.clone() };
    let mut deliveries = lines_to_members(ctx, membership.id, &me.name, vec![line]);
    // The line went to the caller's other sessions too; they learn what it means for them.
    deliveries.push(Delivery { to: Audience::OwnOtherSessions, events: vec![left] });
    Ok(Handled::reply(Reply::Done).delivering(deliveries))
}

/// Renames a group (the owner only).
pub(super) fn rename(ctx: &Context<'_>, me: &Identity, group: &str, to: &str) -> Result<Handled, ErrorReply> {
    let membership = member_of(ctx, me, group)?;
    let to = group_name(to)?;
    let line = ctx
        .store
        .rename_group(membership.id, &me.name, to, ctx.clock.now_millis())
        .map_err(|e| errors::from_store(&e))?
        .map_err(|r| refusal(&r))?;
    let deliveries = lines_to_members(ctx, membership.id, &me.name, line.into_iter().collect());
    Ok(Handled::reply(Reply::Done).delivering(deliveries))
}

/// Hands a group over to another member (the owner only).
pub(super) fn transfer(
    ctx: &Context<'_>,
    me: &Identity,
    group: &str,
    to: &str,
) -> Result<Handled, ErrorReply> {
    let membership = member_of(ctx, me, group)?;
    let to = existing_user(ctx, to)?;
    let line = ctx
        .store
        .transfer_group(membership.id, &me.name, &to, ctx.clock.now_millis())
        .map_err(|e| errors::from_store(&e))?
        .map_err(|r| refusal(&r))?;
    let deliveries = lines_to_members(ctx, membership.id, &me.name, line.into_iter().collect());
    Ok(Handled::reply(Reply::Done).delivering(deliveries))
}

/// Deletes a group and its history (the owner only); every member is told.
pub(super) fn delete(ctx: &Context<'_>, me: &Identity, group: &str) -> Result<Handled, ErrorReply> {
    let membership = member_of(ctx, me, group)?;
    let deleted = ctx
        .store
        .delete_group(membership.id, &me.name)
        .map_err(|e| errors::from_store(&e))?
        .map_err(|r| refusal(&r))?;
    let event = Event::GroupDeleted { group: deleted.name, by: me.name.clone() };
    let others: Vec<Username> = deleted.members.into_iter().filter(|member| *member != me.name).collect();
    let deliveries = vec![
        Delivery { to: Audience::Users(others), events: vec![event.clone()] },
        Delivery { to: Audience::OwnOtherSessions, events: vec![event] },
    ];
    Ok(Handled::reply(Reply::Done).delivering(deliveries))
}

/// The caller's groups, in name order, with member and unread counts.
pub(super) fn list(ctx: &Context<'_>, me: &Identity) -> Result<Handled, ErrorReply> {
    let mut groups = Vec::new();
    for group in ctx.store.groups_of(&me.name).map_err(|e| errors::from_store(&e))? {
        let Some(Membership { group, member, .. }) =
            ctx.store.membership_of(&me.name, group).map_err(|e| errors::from_store(&e))?
        else {
            continue;
        };
        groups.push(GroupSummary {
            name: group.name,
            owner: group.owner,
            members: group.members,
            unread: group.texts.saturating_sub(member.read.count),
            last: group.last.map(Into::into),
        });
    }
    groups.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(Handled::reply(Reply::Groups(groups)))
}

/// A group's owner, settings and members with presence and watermarks.
pub(super) fn info(ctx: &Context<'_>, me: &Identity, group: &str) -> Result<Handled, ErrorReply> {
    let membership = member_of(ctx, me, group)?;
    Ok(Handled::reply(Reply::Group(group_info(ctx, membership.id)?)))
}

/// Queues a text to a group; answered once durable, like a direct message.
pub(super) fn send(
    ctx: &Context<'_>,
    me: &Identity,
    group: &str,
    body: &str,
    client_msg_id: u64,
    appends: &dyn AppendAnswers,
) -> Result<Handled, ErrorReply> {
    let membership = member_by_any_name(ctx, me, group)?;
    check_body(body)?;
    check_rate(ctx, me)?;
    let text = NewText {
        group: membership.id,
        from: me.name.clone(),
        body: body.to_owned(),
        client_msg_id,
        now: ctx.clock.now_millis(),
    };
    ctx.store.append_group_text(text, appends).map_err(|e| errors::from_store(&e))?;
    Ok(Handled::queued())
}

/// A page of what the caller may read of a group, newest first.
pub(super) fn history(
    ctx: &Context<'_>,
    me: &Identity,
    group: &str,
    before: Option<MessageId>,
    limit: u32,
) -> Result<Handled, ErrorReply> {
    let membership = member_of(ctx, me, group)?;
    let limit = limit.clamp(1, MAX_HISTORY_PAGE) as usize;
    let (mut messages, mut more) =
        ctx.store.group_history(&membership, before, limit).map_err(|e| errors::from_store(&e))?;
    more |= fit_page(&mut messages, |line| line.body.len());
    let page = GroupHistoryPage { group: membership.group.name, messages, more };
    Ok(Handled::reply(Reply::GroupHistory(page)))
}

/// Marks a group read; the senders of what that covers get a read receipt.
pub(super) fn mark_read(
    ctx: &Context<'_>,
    me: &Identity,
    group: &str,
    up_to: MessageId,
) -> Result<Handled, ErrorReply> {
    let membership = member_by_any_name(ctx, me, group)?;
    let moved =
        ctx.store.mark_group_read(membership.id, &me.name, up_to).map_err(|e| errors::from_store(&e))?;
    let receipts = receipts(ctx.store, me, &membership, ReceiptKind::Read, moved);
    Ok(Handled::reply(Reply::Done).delivering(receipts))
}

/// Confirms received lines of a group; the senders of what that covers get a delivered
/// receipt, and those lines are no longer pending for the caller.
pub(super) fn delivered(
    ctx: &Context<'_>,
    me: &Identity,
    group: &str,
    up_to: MessageId,
) -> Result<Handled, ErrorReply> {
    let membership = member_by_any_name(ctx, me, group)?;
    let moved =
        ctx.store.mark_group_delivered(membership.id, &me.name, up_to).map_err(|e| errors::from_store(&e))?;
    let receipts = receipts(ctx.store, me, &membership, ReceiptKind::Delivered, moved);
    Ok(Handled::reply(Reply::Done).delivering(receipts))
}

/// What a client is told when the store refuses a group request.
pub(crate) fn refusal(refusal: &Refusal) -> ErrorReply {
    match refusal {
        Refusal::NoSuchGroup => no_such_group(),
        Refusal::NotOwner => ErrorReply::new(ErrorCode::NotGroupOwner, "only the group's owner can do that"),
        Refusal::NameTaken => {
            ErrorReply::new(ErrorCode::NameTaken, "another group has that name; pick another")
        }
        Refusal::NotAMember(user) => {
            ErrorReply::new(ErrorCode::InvalidRequest, format!("{user} is not a member of the group"))
        }
        Refusal::OwnerStays => ErrorReply::new(
            ErrorCode::InvalidRequest,
            "the owner cannot leave or be removed: hand the group over to another member first, or delete it",
        ),
        Refusal::GroupFull => ErrorReply::new(
            ErrorCode::LimitReached,
            format!("a group has at most {MAX_GROUP_MEMBERS} members; nobody was added"),
        ),
        Refusal::TooManyGroups(user) => ErrorReply::new(
            ErrorCode::LimitReached,
            format!("{user} is in {MAX_GROUPS_PER_USER} groups already, the most one can be in; nothing was changed"),
        ),
    }
}

/// Who gets `lines` of a group from `sender`, once durable: every member but the sender, in
/// one write each, and the sender's other sessions.
pub(crate) fn lines_to_members(
    ctx: &Context<'_>,
    group: GroupId,
    sender: &Username,
    lines: Vec<GroupMessage>,
) -> Vec<Delivery> {
    let events: Vec<Event> = lines.into_iter().map(Event::GroupMessage).collect();
    if events.is_empty() {
        return Vec::new();
    }
    let mut deliveries: Vec<Delivery> =
        members_delivery(ctx.store, group, sender, events.clone()).into_iter().collect();
    deliveries.push(Delivery { to: Audience::OwnOtherSessions, events });
    deliveries
}

/// `events` for every member of `group` but `sender`; none if the members cannot be read
/// (then they find the lines pending at their next login).
pub(crate) fn members_delivery(
    store: &dyn MemberNames,
    group: GroupId,
    sender: &Username,
    events: Vec<Event>,
) -> Option<Delivery> {
    let members = match store.member_names(group) {
        Ok(members) => members,
        Err(e) => {
            warn!(error = %e, group = group.0, "cannot read a group's members; its new lines wait for their next login");
            return None;
        }
    };
    let others: Vec<Username> = members.into_iter().filter(|member| member != sender).collect();
    Some(Delivery { to: Audience::Users(others), events })
}

/// The group `raw` names, if the caller is in it; the same error whether it does not exist
/// or the caller is not a member.
pub(super) fn member_of(ctx: &Context<'_>, me: &Identity, raw: &str) -> Result<Membership, ErrorReply> {
    let name = group_name(raw)?;
    ctx.store.membership(&me.name, &name).map_err(|e| errors::from_store(&e))?.ok_or_else(no_such_group)
}

/// Like [`member_of`], but a name the group had before a rename still finds it: texts and
/// receipts are what a client queues while it cannot hear of a rename, and sends later.
/// Commands the user types name the group as it is now.
fn member_by_any_name(ctx: &Context<'_>, me: &Identity, raw: &str) -> Result<Membership, ErrorReply> {
    let name = group_name(raw)?;
    ctx.store
        .membership_by_any_name(&me.name, &name)
        .map_err(|e| errors::from_store(&e))?
        .ok_or_else(no_such_group)
}

fn no_such_group() -> ErrorReply {
    ErrorReply::new(ErrorCode::NoSuchGroup, "there is no such group, or you are not in it")
}

fn group_name(raw: &str) -> Result<GroupName, ErrorReply> {
    GroupName::parse(raw)
        .map_err(|e| ErrorReply::new(ErrorCode::InvalidName, format!("invalid group name: {e}")))
}

/// The named users, each once and none of them the caller, if every one exists: at most
/// [`MAX_GROUP_MEMBERS`] less `room`, checked before any is looked up.
fn existing_users(
    ctx: &Context<'_>,
    me: &Identity,
    raw: &[String],
    room: usize,
) -> Result<Vec<Username>, ErrorReply> {
    let mut names = BTreeSet::new();
    for raw in raw {
        let name = Username::parse(raw).map_err(|e| super::chat::invalid_name(&e))?;
        if name != me.name {
            names.insert(name);
        }
        if names.len() + room > MAX_GROUP_MEMBERS {
            return Err(refusal(&Refusal::GroupFull));
        }
    }
    for name in &names {
        existing_user(ctx, name.as_str())?;
    }
    Ok(names.into_iter().collect())
}

/// A group as its members see it, members with presence.
fn group_info(ctx: &Context<'_>, group: GroupId) -> Result<GroupInfo, ErrorReply> {
    // Gone only if it was deleted since the caller's request found it.
    let record = ctx.store.group(group).map_err(|e| errors::from_store(&e))?.ok_or_else(no_such_group)?;
    let members = ctx.store.group_members(group).map_err(|e| errors::from_store(&e))?;
    let members = members
        .into_iter()
        .map(|(name, member)| GroupMember {
            online: ctx.hub.is_online(&name),
            name,
            joined_at: member.joined_at,
            delivered_up_to: member.delivered.id,
            read_up_to: member.read.id,
        })
        .collect();
    Ok(GroupInfo {
        name: record.name,
        owner: record.owner,
        created_at: record.created_at,
        hide_history: record.hide_history,
        members,
    })
}

/// If the caller's watermark moved: tells the senders of the newest texts it covers how far
/// the caller got, and the caller's other sessions that this one got there.
fn receipts(
    store: &Store,
    me: &Identity,
    membership: &Membership,
    kind: ReceiptKind,
    moved: Option<Moved>,
) -> Vec<Delivery> {
    let Some(Moved { from, to }) = moved else { return Vec::new() };
    let receipt = Event::GroupReceipt {
        group: membership.group.name.clone(),
        member: me.name.clone(),
        kind,
        up_to: to,
    };
    let senders = match store.text_senders(membership.id, from, to, RECEIPT_SCAN) {
        Ok(senders) => senders,
        Err(e) => {
            // The watermark is stored; senders see it in the group's info.
            warn!(error = %e, "cannot read whom a receipt concerns");
            Vec::new()
        }
    };
    let mut deliveries: Vec<Delivery> = senders
        .into_iter()
        .filter(|sender| *sender != me.name)
        .map(|sender| Delivery { to: Audience::User(sender), events: vec![receipt.clone()] })
        .collect();
    deliveries.push(Delivery { to: Audience::OwnOtherSessions, events: vec![receipt] });
    deliveries
}

#[cfg(test)]
mod tests;
