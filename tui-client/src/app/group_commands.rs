//! The group commands: `/group create`, `/invite`, `/kick`, `/leave`, `/members`,
//! `/rename`, `/delete` (after a yes), `/handover` become a [`GroupCommand`] for the network
//! thread, and its outcome a line in the status bar; `/who` and `/notify` are answered here.
//! All but `/group create` act on the open group.
//!
//! This file also keeps each group's [`Roster`] (owner, members, presence, receipts) in step
//! with what the server says, for the header, the members pane and "✓✓ 3/5".

use std::collections::hash_map::Entry;

use papo_protocol::{GroupInfo, GroupMessage, GroupMessageKind, GroupName, MessageId, ReceiptKind, Username};
use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::editor::Editor;
use super::model::{ConvKey, Model, Overlay, Roster};
use super::update::remember_input;
use crate::net::{GroupCommand, NetCommand};
use crate::settings::GroupNotify;

/// The commands this file handles, for the list of known ones.
pub(super) const NAMES: &[&str] =
    &["group", "invite", "kick", "leave", "members", "rename", "delete", "handover", "who", "notify"];

/// Runs `/name rest`, or says in the status line why it cannot.
pub(super) fn run(model: &mut Model, name: &str, rest: &str, out: &mut Vec<NetCommand>) {
    match parse(model, name, rest) {
        Ok(action) => {
            remember_input(model);
            match action {
                Action::Ask(command) => out.push(NetCommand::Group(command)),
                Action::ConfirmDelete(group) => model.overlay = Some(Overlay::ConfirmDelete(group)),
                Action::Who(group) => model.notice = Some(who(model, &group)),
                Action::Notify(group, mode) => {
                    model.notice = Some(notify_line(&group, mode));
                    if mode == GroupNotify::default() {
                        model.prefs.group_notify.remove(&group);
                    } else {
                        model.prefs.group_notify.insert(group, mode);
                    }
                }
            }
        }
        Err(problem) => model.notice = Some(problem),
    }
}

/// A key in the `/delete` box: `y` deletes, anything else keeps the group.
pub(super) fn confirm_delete_key(
    model: &mut Model,
    group: GroupName,
    key: KeyEvent,
    out: &mut Vec<NetCommand>,
) {
    if matches!(key.code, KeyCode::Char('y' | 'Y')) {
        model.notice = Some(format!("deleting {group}…"));
        out.push(NetCommand::Group(GroupCommand::Delete(group)));
    } else {
        model.notice = Some(format!("{group} was not deleted"));
    }
}

/// Shows how a group command went, and files what it tells about the group.
pub(super) fn outcome(model: &mut Model, command: &GroupCommand, result: Result<Option<GroupInfo>, String>) {
    if let Ok(Some(info)) = &result {
        file_roster(model, info.clone());
    }
    model.notice = Some(match (command, result) {
        (GroupCommand::Info(group), Err(_)) => {
            // Asked by the client itself: the next time the group is opened asks again.
            if let Some(conversation) = model.conversations.get_mut(&ConvKey::Group(group.clone())) {
                conversation.roster_asked = false;
            }
            return;
        }
        (GroupCommand::Info(_), Ok(_)) => return,
        (GroupCommand::Members(_), Ok(Some(info))) => members_line(&info),
        (GroupCommand::Create { name, .. }, Ok(_)) => format!("created {name}; /invite USER adds more"),
        (GroupCommand::Invite { group, user }, Ok(_)) => format!("{user} is now in {group}"),
        (GroupCommand::Kick { group, user }, Ok(_)) => format!("{user} was removed from {group}"),
        (GroupCommand::Leave(group), Ok(_)) => format!("you left {group}"),
        (GroupCommand::Members(group), Ok(None)) => format!("the server sent no members of {group}"),
        (GroupCommand::Rename { group, to }, Ok(_)) => {
            renamed(model, group, to);
            format!("{group} is now called {to}")
        }
        (GroupCommand::Delete(group), Ok(_)) => {
            model.contact_mut(&ConvKey::Group(group.clone())).gone = Some("you deleted it".into());
            format!("{group} was deleted, with its history, for every member")
        }
        (GroupCommand::Handover { group, to }, Ok(_)) => {
            if let Some(roster) = roster_mut(model, group) {
                roster.owner = to.clone();
            }
            format!("{to} now owns {group}")
        }
        (GroupCommand::Create { name, .. }, Err(reason)) => format!("cannot create {name}: {reason}"),
        (GroupCommand::Invite { group, user }, Err(reason)) => {
            format!("cannot add {user} to {group}: {reason}")
        }
        (GroupCommand::Kick { group, user }, Err(reason)) => {
            format!("cannot remove {user} from {group}: {reason}")
        }
        (GroupCommand::Leave(group), Err(reason)) => format!("cannot leave {group}: {reason}"),
        (GroupCommand::Members(group), Err(reason)) => {
            format!("cannot list the members of {group}: {reason}")
        }
        (GroupCommand::Rename { group, to }, Err(reason)) => {
            format!("cannot rename {group} to {to}: {reason}")
        }
        (GroupCommand::Delete(group), Err(reason)) => format!("cannot delete {group}: {reason}"),
        (GroupCommand::Handover { group, to }, Err(reason)) => {
            format!("cannot hand {group} over to {to}: {reason}")
        }
    });
}

/// Asks for the roster of `key`, a group, unless it was asked for since the last connect.
pub(super) fn ask_roster(model: &mut Model, key: &ConvKey, out: &mut Vec<NetCommand>) {
    let ConvKey::Group(group) = key else { return };
    let conversation = model.conversations.entry(key.clone()).or_default();
    if !conversation.roster_asked {
        conversation.roster_asked = true;
        out.push(NetCommand::Group(GroupCommand::Info(group.clone())));
    }
}

/// What a live line of a group changes in its roster: a join, a leave or removal, a new
/// owner, a new name; and its sender got and read everything up to it (sending marks a
/// group read). Lines from history pages are old news and do not come here.
pub(super) fn live_line(model: &mut Model, line: &GroupMessage) {
    if let GroupMessageKind::Renamed { from } = &line.kind {
        renamed(model, from, &line.group);
    }
    let joined_online = match &line.kind {
        GroupMessageKind::Added { member } => {
            model.contact(&ConvKey::User(member.clone())).is_some_and(|c| c.online)
        }
        _ => false,
    };
    let Some(roster) = roster_mut(model, &line.group) else { return };
    match &line.kind {
        GroupMessageKind::Added { member } => roster.add(member.clone(), line.id, joined_online),
        GroupMessageKind::Removed { member } => roster.remove(member),
        GroupMessageKind::Left => roster.remove(&line.from),
        GroupMessageKind::OwnerChanged { to } => roster.owner = to.clone(),
        GroupMessageKind::Text | GroupMessageKind::Created | GroupMessageKind::Renamed { .. } => {}
    }
    if line.kind == GroupMessageKind::Text {
        roster.receipt(&line.from, ReceiptKind::Read, line.id);
    }
}

/// A member's receipt for `group`: how far they got.
pub(super) fn receipt(
    model: &mut Model,
    group: &GroupName,
    member: &Username,
    kind: ReceiptKind,
    up_to: MessageId,
) {
    if let Some(roster) = roster_mut(model, group) {
        roster.receipt(member, kind, up_to);
    }
}

/// `user` came or went: every known roster with them in it follows.
pub(super) fn presence(model: &mut Model, user: &Username, online: bool) {
    let rosters = model.conversations.values_mut().filter_map(|c| c.roster.as_mut());
    for member in rosters.filter_map(|roster| roster.member_mut(user)) {
        member.online = online;
    }
}

/// After a reconnect every roster may be out of date: the open group's is asked for again,
/// the others when next opened.
pub(super) fn rosters_stale(model: &mut Model, out: &mut Vec<NetCommand>) {
    for conversation in model.conversations.values_mut() {
        conversation.roster_asked = false;
    }
    if let Some(selected) = model.selected.clone() {
        ask_roster(model, &selected, out);
    }
}

/// `from` is now called `to`: its conversation, contact entry, draft, selection and
/// `/notify` setting move over (the server keeps one history under the new name). A
/// conversation already open under the new name takes in the old one's lines and queue.
pub(super) fn renamed(model: &mut Model, from: &GroupName, to: &GroupName) {
    if from == to {
        return;
    }
    let (old, new) = (ConvKey::Group(from.clone()), ConvKey::Group(to.clone()));
    if let Some(conversation) = model.conversations.remove(&old) {
        match model.conversations.entry(new.clone()) {
            Entry::Vacant(slot) => {
                slot.insert(conversation);
            }
            Entry::Occupied(mut slot) => slot.get_mut().take_in(conversation),
        }
    }
    if let Some(at) = model.contacts.iter().position(|c| c.name == old) {
        if model.contact(&new).is_some() {
            model.contacts.remove(at);
        } else {
            model.contacts[at].name = new.clone();
        }
    }
    // A draft under each name: both are kept, joined (old, newline, new).
    let old_draft = take_draft(model, &old);
    let mut new_draft = take_draft(model, &new);
    if model.selected.as_ref() == Some(&old) {
        model.selected = Some(new.clone());
    }
    let draft = if new_draft.is_empty() {
        old_draft
    } else {
        if !old_draft.is_empty() {
            new_draft.set(&format!("{}\n{}", old_draft.text(), new_draft.text()));
        }
        new_draft
    };
    if model.selected.as_ref() == Some(&new) {
        model.input = draft;
    } else if !draft.is_empty() {
        model.drafts.insert(new, draft);
    }
    if let Some(mode) = model.prefs.group_notify.remove(from) {
        model.prefs.group_notify.insert(to.clone(), mode);
    }
}

/// The draft of `key`: the input box when it is open, else the one kept for it.
fn take_draft(model: &mut Model, key: &ConvKey) -> Editor {
    if model.selected.as_ref() == Some(key) {
        std::mem::take(&mut model.input)
    } else {
        model.drafts.remove(key).unwrap_or_default()
    }
}

/// What the commands of this file ask for.
enum Action {
    /// A request to the server.
    Ask(GroupCommand),
    /// `/delete`: asked first.
    ConfirmDelete(GroupName),
    /// `/who`: answered from the roster.
    Who(GroupName),
    /// `/notify MODE`: a setting of this client.
    Notify(GroupName, GroupNotify),
}

fn parse(model: &Model, name: &str, rest: &str) -> Result<Action, String> {
    let mut words = rest.split_whitespace();
    let in_group = |usage: &str| open_group(model, usage);
    match name {
        "group" => {
            let usage = "usage: /group create #NAME [USER...]";
            if words.next() != Some("create") {
                return Err(usage.into());
            }
            let name = group_name(words.next(), usage)?;
            let members = words.map(|w| user(w, usage)).collect::<Result<_, _>>()?;
            Ok(Action::Ask(GroupCommand::Create { name, members }))
        }
        "invite" | "kick" | "handover" => {
            let usage = format!("usage: /{name} USER, in the group's conversation");
            let group = in_group(&usage)?;
            let (Some(who), None) = (words.next(), words.next()) else { return Err(usage) };
            let user = user(who, &usage)?;
            if name == "handover" && model.me.as_ref() == Some(&user) {
                return Err("/handover names the member who will own the group: someone else".into());
            }
            Ok(Action::Ask(match name {
                "invite" => GroupCommand::Invite { group, user },
                "kick" => GroupCommand::Kick { group, user },
                _ => GroupCommand::Handover { group, to: user },
            }))
        }
        "rename" => {
            let usage = "usage: /rename #NEW, in the group's conversation";
            let group = in_group(usage)?;
            let (new, None) = (words.next(), words.next()) else { return Err(usage.into()) };
            let to = group_name(new, usage)?;
            if to == group {
                return Err(format!("{group} is called that already"));
            }
            Ok(Action::Ask(GroupCommand::Rename { group, to }))
        }
        "notify" => {
            let usage = "usage: /notify all|mentions|none, in the group's conversation";
            let group = in_group(usage)?;
            let (Some(mode), None) = (words.next().and_then(GroupNotify::parse), words.next()) else {
                return Err(usage.into());
            };
            Ok(Action::Notify(group, mode))
        }
        "leave" => {
            Ok(Action::Ask(GroupCommand::Leave(in_group("usage: /leave, in the group's conversation")?)))
        }
        "delete" => Ok(Action::ConfirmDelete(in_group("usage: /delete, in the group's conversation")?)),
        "who" => Ok(Action::Who(in_group("usage: /who, in the group's conversation")?)),
        _ => {
            Ok(Action::Ask(GroupCommand::Members(in_group("usage: /members, in the group's conversation")?)))
        }
    }
}

fn user(raw: &str, usage: &str) -> Result<Username, String> {
    Username::parse(raw).map_err(|e| format!("{usage} ({e})"))
}

fn group_name(raw: Option<&str>, usage: &str) -> Result<GroupName, String> {
    GroupName::parse(raw.unwrap_or_default()).map_err(|e| format!("{usage} ({e})"))
}

fn open_group(model: &Model, usage: &str) -> Result<GroupName, String> {
    match &model.selected {
        Some(ConvKey::Group(group)) => Ok(group.clone()),
        _ => Err(format!("{usage}: open a group first")),
    }
}

fn roster_mut<'a>(model: &'a mut Model, group: &GroupName) -> Option<&'a mut Roster> {
    model.conversations.get_mut(&ConvKey::Group(group.clone()))?.roster.as_mut()
}

fn file_roster(model: &mut Model, info: GroupInfo) {
    let conversation = model.conversations.entry(ConvKey::Group(info.name.clone())).or_default();
    conversation.roster = Some(Roster::from_info(info));
    conversation.roster_asked = true;
}

/// `/who`: who received and read my newest text in `group` (the newest loaded one), from the
/// members' watermarks.
fn who(model: &Model, group: &GroupName) -> String {
    let Some(me) = model.me.as_ref() else { return "log in first".into() };
    let Some(conversation) = model.conversations.get(&ConvKey::Group(group.clone())) else {
        return format!("nothing of yours in {group} yet");
    };
    let Some(roster) = &conversation.roster else {
        return format!("the members of {group} are not loaded yet; try again in a moment");
    };
    // My newest text: the search ends at it, however far back; nothing else is walked.
    let mine = conversation.messages.iter().rev().find(|m| m.from == *me && m.kind == GroupMessageKind::Text);
    let Some(mine) = mine else {
        return format!("you have sent nothing in {group} that is loaded here");
    };
    let (mut read, mut delivered, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
    for member in roster.audience(mine.id, me) {
        let name = member.name.as_str();
        if member.read_up_to >= mine.id {
            read.push(name);
        } else if member.delivered_up_to >= mine.id {
            delivered.push(name);
        } else {
            waiting.push(name);
        }
    }
    let mut parts = Vec::new();
    for (what, names) in [("read by", read), ("delivered to", delivered), ("not yet", waiting)] {
        if !names.is_empty() {
            parts.push(format!("{what} {}", names.join(", ")));
        }
    }
    if parts.is_empty() {
        return "your last message: nobody else was in the group".into();
    }
    format!("your last message: {}", parts.join("; "))
}

fn notify_line(group: &GroupName, mode: GroupNotify) -> String {
    match mode {
        GroupNotify::All => format!("{group} rings for every message"),
        GroupNotify::Mentions => format!("{group} rings only when someone writes @you"),
        GroupNotify::None => format!("{group} never rings; it still counts unread messages"),
    }
}

/// `#lab, owned by bia: ana online, bia offline`.
fn members_line(info: &GroupInfo) -> String {
    let members: Vec<String> = info
        .members
        .iter()
        .map(|m| format!("{} {}", m.name, if m.online { "online" } else { "offline" }))
        .collect();
    format!("{}, owned by {}: {}", info.name, info.owner, members.join(", "))
}
