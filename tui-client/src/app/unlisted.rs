//! A group renamed or deleted, or one I was removed from, while this machine was offline:
//! the client never saw the `Renamed`, `GroupDeleted` or `GroupRemoved` (another machine of
//! mine may have acknowledged it), and only the next list of groups, asked for after every
//! reconnect, shows that the group is no longer there under the name shown.
//!
//! The client then asks for the newest page of each group in that list it did not know. A
//! `Renamed { from }` line there naming a missing group moves its conversation to the new
//! name (lines, unread, draft, selection, and what is queued, in the network thread too);
//! a missing group that no page names is marked gone instead of looking live. What was
//! queued for it is never dropped: the server still finds a renamed group by a former name,
//! and otherwise refuses, which shows as a failed message with the server's reason.
//!
//! Only the newest page of each new group is read, so nothing here costs more than one page
//! per group: a rename followed by more than a page of traffic reads as gone, though what was
//! queued for it still reaches it.

use papo_protocol::{GroupMessage, GroupMessageKind, GroupName, GroupSummary};

use super::group_commands;
use super::model::{ConvKey, Model};
use crate::net::NetCommand;

/// A fresh list of groups, before it is merged into the contacts: which groups shown here
/// it lacks, and which of its groups are new here and so may be one of those renamed.
pub(super) fn listed(model: &mut Model, groups: &[GroupSummary], out: &mut Vec<NetCommand>) {
    let in_list = |group: &GroupName| groups.iter().any(|g| g.name == *group);
    let unlisted = &mut model.unlisted;
    unlisted.missing.retain(|group| !in_list(group));
    unlisted.asked.retain(in_list);
    let shown = model.contacts.iter().filter(|c| c.gone.is_none()).filter_map(|c| c.name.group());
    for group in shown.filter(|group| !in_list(group)) {
        if !unlisted.missing.contains(group) {
            unlisted.missing.push(group.clone());
        }
    }
    if unlisted.missing.is_empty() {
        unlisted.asked.clear();
        return;
    }
    for summary in groups {
        let key = ConvKey::Group(summary.name.clone());
        let known = model.contacts.iter().any(|c| c.name == key);
        if !known && !unlisted.asked.contains(&summary.name) {
            unlisted.asked.push(summary.name.clone());
            out.push(NetCommand::History { with: key, before: None });
        }
    }
}

/// Whether `group` is one the last list lacked and whose fate is still being found out:
/// such a group stays listed as it was meanwhile.
pub(super) fn is_missing(model: &Model, group: &GroupName) -> bool {
    model.unlisted.missing.contains(group)
}

/// The newest page of `group` arrived, before it is filed: if it was asked for here, its
/// `Renamed` lines tell which missing groups it was.
pub(super) fn newest_page(
    model: &mut Model,
    group: &GroupName,
    lines: &[GroupMessage],
    out: &mut Vec<NetCommand>,
) {
    if !model.unlisted.asked.contains(group) {
        return;
    }
    model.unlisted.asked.retain(|asked| asked != group);
    for line in lines {
        let GroupMessageKind::Renamed { from } = &line.kind else { continue };
        if is_missing(model, from) {
            model.unlisted.missing.retain(|missing| missing != from);
            group_commands::renamed(model, from, group);
            out.push(NetCommand::FollowRename { from: from.clone(), to: group.clone() });
        }
    }
    settle(model);
}

/// A page of `group` could not be had: if it was asked for here, it names nobody.
pub(super) fn page_failed(model: &mut Model, group: &GroupName) {
    if model.unlisted.asked.contains(group) {
        model.unlisted.asked.retain(|asked| asked != group);
        settle(model);
    }
}

/// Once no page is awaited, every group still missing is gone.
pub(super) fn settle(model: &mut Model) {
    if !model.unlisted.asked.is_empty() {
        return;
    }
    for group in std::mem::take(&mut model.unlisted.missing) {
        let gone = format!("you are no longer in {group}, or it was deleted");
        model.contact_mut(&ConvKey::Group(group)).gone = Some(gone);
    }
}
