//! The scriptable group subcommands (`papo group …`, `papo groups`) and the group half of
//! `papo history`: one connection, one job, plain-text output, as in [`crate::commands`].

use std::io::Write;

use anyhow::{Context, Result};
use papo_protocol::{GroupMessageKind, GroupName, Request, Username};

use crate::commands::{login, logout, newest, write_line, Account, Kept};

/// What `papo group` does to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    /// Add these users (the owner only); those already in it are skipped.
    Add(Vec<Username>),
    /// Remove this member (the owner only).
    Remove(Username),
    /// Leave it (anyone but the owner).
    Leave,
    /// Give it this name (the owner only).
    Rename(GroupName),
    /// Delete it with its history (the owner only).
    Delete,
    /// Make this member its owner (the owner only).
    Handover(Username),
}

/// `papo group create`: a group owned by the caller, with `members` in it too.
pub fn create(
    account: &Account,
    group: &GroupName,
    members: &[Username],
    out: &mut impl Write,
) -> Result<()> {
    let mut client = login(account)?;
    let members: Vec<&str> = members.iter().map(Username::as_str).collect();
    let info = client
        .create_group(group.as_str(), &members, false)
        .with_context(|| format!("cannot create {group}"))?;
    logout(client);
    writeln!(out, "created {} with {} members", info.name, info.members.len())?;
    Ok(())
}

/// `papo group add|remove|leave|rename|delete|handover`: one change to `group`, confirmed on
/// one line once the server has stored it.
pub fn change(account: &Account, group: &GroupName, change: GroupChange, out: &mut impl Write) -> Result<()> {
    let name = group.to_string();
    let (request, failed, done) = match change {
        GroupChange::Add(members) => (
            Request::AddMembers { group: name, members: members.iter().map(|m| m.to_string()).collect() },
            format!("cannot add to {group}"),
            format!("added {} to {group}", names(&members)),
        ),
        GroupChange::Remove(member) => (
            Request::RemoveMember { group: name, member: member.to_string() },
            format!("cannot remove {member} from {group}"),
            format!("removed {member} from {group}"),
        ),
        GroupChange::Leave => {
            (Request::LeaveGroup { group: name }, format!("cannot leave {group}"), format!("left {group}"))
        }
        GroupChange::Rename(to) => (
            Request::RenameGroup { group: name, to: to.to_string() },
            format!("cannot rename {group}"),
            format!("renamed {group} to {to}"),
        ),
        GroupChange::Delete => (
            Request::DeleteGroup { group: name },
            format!("cannot delete {group}"),
            format!("deleted {group}"),
        ),
        GroupChange::Handover(to) => (
            Request::TransferGroup { group: name, to: to.to_string() },
            format!("cannot hand {group} over"),
            format!("handed {group} over to {to}"),
        ),
    };
    let mut client = login(account)?;
    client.request_done(request).context(failed)?;
    logout(client);
    writeln!(out, "{done}")?;
    Ok(())
}

/// `papo group members`: `<name> <online|offline> <owner|member>` per member, in name order.
pub fn members(account: &Account, group: &GroupName, out: &mut impl Write) -> Result<()> {
    let mut client = login(account)?;
    let info =
        client.group_info(group.as_str()).with_context(|| format!("cannot list the members of {group}"))?;
    logout(client);
    for member in info.members {
        let presence = if member.online { "online" } else { "offline" };
        let role = if member.name == info.owner { "owner" } else { "member" };
        writeln!(out, "{} {presence} {role}", member.name)?;
    }
    Ok(())
}

/// `papo groups`: `<#name> <members> <unread>` per group of the caller, in name order.
pub fn list(account: &Account, out: &mut impl Write) -> Result<()> {
    let mut client = login(account)?;
    let groups = client.groups().context("cannot list your groups")?;
    logout(client);
    for group in groups {
        writeln!(out, "{} {} {}", group.name, group.members, group.unread)?;
    }
    Ok(())
}

/// `papo history` with a `#group`: its last `limit` texts, oldest first, in the format of
/// direct messages with the group as the recipient. Joins, leaves and the other changes
/// are left out, so every line is a message.
pub fn history(account: &Account, group: &str, limit: usize, out: &mut impl Write) -> Result<()> {
    let mut client = login(account)?;
    let newest_first = newest(limit, |before, want| {
        let page = client
            .group_history(group, before, want)
            .with_context(|| format!("cannot read the history of {group}"))?;
        Ok(Kept {
            before: page.messages.last().map(|line| line.id),
            more: page.more,
            items: page.messages.into_iter().filter(|line| line.kind == GroupMessageKind::Text).collect(),
        })
    })?;
    logout(client);
    for line in newest_first.iter().rev() {
        write_line(out, line.sent_at, line.from.as_str(), line.group.as_str(), &line.body)?;
    }
    Ok(())
}

fn names(users: &[Username]) -> String {
    users.iter().map(Username::as_str).collect::<Vec<_>>().join(", ")
}
