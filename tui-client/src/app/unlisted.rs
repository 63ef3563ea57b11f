//! A group renamed or deleted, or one I was removed from, while this machine was offline:
//! the client never saw the `Renamed`, `GroupDeleted` or `GroupRemoved` (another machine of
//! mine may have acknowledged it), and only the next list of groups, asked for after every
//! reconnect, shows that the group is no longer there under the name shown.
//!
//! The client then asks for the newest page of each group in that list it did not know. A
//! `Renamed { from }` line there naming a missing group is only a claim: anyone may create a
//! group, rename it to a name I had, and add me. The client follows it only when it is the
//! same group: line ids are unique across the server, so the new group must hold the newest
//! line this client has of the old one that someone else wrote (found in that page, or
//! asked for with one one-line request), and the rename must be newer than that line. Then the conversation
//! moves to the new name (lines, unread, draft, selection, and what is queued, in the
//! network thread too). A missing group that nothing proves renamed is marked gone instead
//! of looking live, also one of which this client has no line, whose queue it must never
//! send to an audience nobody chose. What was queued for it is never dropped: the server
//! still finds a renamed group by a former name, and otherwise refuses, which shows as a
//! failed message with the server's reason. A page or check that fails for another reason
//! than "no such group" settles nothing: the missing groups stay as they were, and are
//! asked about again with the next list of groups (one follows every reconnect).
//!
//! Only the newest page of each new group is read, and at most one one-line page per
//! claimed rename, so nothing here costs more than one page per group: a rename followed by
//! more than a page of traffic reads as gone, though what was queued for it still reaches
//! it.

use papo_protocol::{ErrorCode, GroupMessage, GroupMessageKind, GroupName, GroupSummary, MessageId};

use super::group_commands;
use super::model::{ConvKey, Model, RenameProof};
use crate::net::NetCommand;

/// A fresh list of groups, before it is merged into the contacts: which groups shown here
/// it lacks, and which of its groups are new here (or were unsure last time) and so may be
/// one of those renamed.
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
    let missing = &unlisted.missing;
    unlisted.proving.retain(|proof| in_list(&proof.to) && missing.contains(&proof.from));
    let unsure = std::mem::take(&mut unlisted.unsure);
    if unlisted.missing.is_empty() {
        unlisted.asked.clear();
        unlisted.proving.clear();
        return;
    }
    for summary in groups {
        let key = ConvKey::Group(summary.name.clone());
        let known = model.contacts.iter().any(|c| c.name == key);
        if (!known || unsure.contains(&summary.name)) && !unlisted.asked.contains(&summary.name) {
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
/// `Renamed` lines name missing groups it may be; each is followed once proven the same.
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
    for rename in lines {
        let GroupMessageKind::Renamed { from } = &rename.kind else { continue };
        // Another group may claim the same former name: each claim is put to the test.
        let asked = model.unlisted.proving.iter().any(|proof| proof.from == *from && proof.to == *group);
        if !is_missing(model, from) || asked {
            continue;
        }
        // With no line of it held, nothing can prove it the same: it settles as gone.
        let Some(line) = newest_line(model, from) else { continue };
        // A rename older than what was seen under the old name is not how it went away.
        if rename.id <= line {
            continue;
        }
        if lines.iter().any(|held| held.id == line) {
            follow(model, from, group, out);
        } else {
            model.unlisted.proving.push(RenameProof { from: from.clone(), to: group.clone(), line });
            out.push(NetCommand::GroupHoldsLine { group: group.clone(), line });
        }
    }
    settle(model);
}

/// The server said whether `group` holds `line`: if that was asked here, the claimed rename
/// is followed when it does, and when the server could not say, asked about again later.
pub(super) fn line_checked(
    model: &mut Model,
    group: &GroupName,
    line: MessageId,
    held: Result<bool, ErrorCode>,
    out: &mut Vec<NetCommand>,
) {
    let unlisted = &mut model.unlisted;
    let Some(at) = unlisted.proving.iter().position(|proof| proof.to == *group && proof.line == line) else {
        return;
    };
    let proof = unlisted.proving.remove(at);
    match held {
        Ok(true) if is_missing(model, &proof.from) => follow(model, &proof.from, group, out),
        Ok(_) | Err(ErrorCode::NoSuchGroup) => {}
        Err(_) => unsure(model, group),
    }
    settle(model);
}

/// A page of `group` could not be had: if it was asked for here, a group that does not
/// exist names nobody; any other failure leaves the missing groups as they are for now.
pub(super) fn page_failed(model: &mut Model, group: &GroupName, code: ErrorCode) {
    if model.unlisted.asked.contains(group) {
        model.unlisted.asked.retain(|asked| asked != group);
        if code != ErrorCode::NoSuchGroup {
            unsure(model, group);
        }
        settle(model);
    }
}

/// Once no page or check is awaited, and none failed without an answer, every group still
/// missing is gone.
pub(super) fn settle(model: &mut Model) {
    let unlisted = &model.unlisted;
    if !unlisted.asked.is_empty() || !unlisted.proving.is_empty() || !unlisted.unsure.is_empty() {
        return;
    }
    for group in std::mem::take(&mut model.unlisted.missing) {
        let gone = format!("you are no longer in {group}, or it was deleted");
        model.contact_mut(&ConvKey::Group(group)).gone = Some(gone);
    }
}

/// The newest line id this client holds of `group` that someone else wrote. Not one of
/// mine: what this client queued under the old name may have been stored after the rename
/// (the server takes a former name for it), so it says nothing about when the group went
/// away, and whether it arrives before the newest page is a race.
fn newest_line(model: &Model, group: &GroupName) -> Option<MessageId> {
    let conversation = model.conversations.get(&ConvKey::Group(group.clone()))?;
    let mine = |post: &&super::model::Post| model.me.as_ref() == Some(&post.from);
    conversation.messages.iter().filter(|post| !mine(post)).map(|post| post.id).max()
}

fn unsure(model: &mut Model, group: &GroupName) {
    if !model.unlisted.unsure.contains(group) {
        model.unlisted.unsure.push(group.clone());
    }
}

/// `from` is proven to be `to`: its conversation moves there, here and in the network thread.
fn follow(model: &mut Model, from: &GroupName, to: &GroupName, out: &mut Vec<NetCommand>) {
    model.unlisted.missing.retain(|missing| missing != from);
    group_commands::renamed(model, from, to);
    out.push(NetCommand::FollowRename { from: from.clone(), to: to.clone() });
}
