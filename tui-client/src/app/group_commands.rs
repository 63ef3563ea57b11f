//! The group-management commands: `/group create`, `/invite`, `/kick`, `/leave` and
//! `/members` become a [`GroupCommand`] for the network thread, and its outcome a line in
//! the status bar. All but `/group create` act on the open group.

use papo_protocol::{GroupInfo, GroupName, Username};

use super::model::{ConvKey, Model};
use super::update::remember_input;
use crate::net::{GroupCommand, NetCommand};

/// The commands this file handles, for the list of known ones.
pub(super) const NAMES: &[&str] = &["group", "invite", "kick", "leave", "members"];

/// Runs `/name rest`, or says in the status line why it cannot.
pub(super) fn run(model: &mut Model, name: &str, rest: &str, out: &mut Vec<NetCommand>) {
    match parse(model, name, rest) {
        Ok(command) => {
            remember_input(model);
            out.push(NetCommand::Group(command));
        }
        Err(problem) => model.notice = Some(problem),
    }
}

/// Shows how a group command went.
pub(super) fn outcome(model: &mut Model, command: &GroupCommand, result: Result<Option<GroupInfo>, String>) {
    model.notice = Some(match (command, result) {
        (GroupCommand::Members(_), Ok(Some(info))) => members_line(&info),
        (GroupCommand::Create { name, .. }, Ok(_)) => format!("created {name}; /invite USER adds more"),
        (GroupCommand::Invite { group, user }, Ok(_)) => format!("{user} is now in {group}"),
        (GroupCommand::Kick { group, user }, Ok(_)) => format!("{user} was removed from {group}"),
        (GroupCommand::Leave(group), Ok(_)) => format!("you left {group}"),
        (GroupCommand::Members(group), Ok(None)) => format!("the server sent no members of {group}"),
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
    });
}

fn parse(model: &Model, name: &str, rest: &str) -> Result<GroupCommand, String> {
    let mut words = rest.split_whitespace();
    match name {
        "group" => {
            let usage = "usage: /group create #NAME [USER...]";
            if words.next() != Some("create") {
                return Err(usage.into());
            }
            let name =
                GroupName::parse(words.next().unwrap_or_default()).map_err(|e| format!("{usage} ({e})"))?;
            let members = words.map(|w| user(w, usage)).collect::<Result<_, _>>()?;
            Ok(GroupCommand::Create { name, members })
        }
        "invite" | "kick" => {
            let usage = format!("usage: /{name} USER, in the group's conversation");
            let group = open_group(model, &usage)?;
            let (Some(who), None) = (words.next(), words.next()) else { return Err(usage) };
            let user = user(who, &usage)?;
            Ok(if name == "invite" {
                GroupCommand::Invite { group, user }
            } else {
                GroupCommand::Kick { group, user }
            })
        }
        "leave" => Ok(GroupCommand::Leave(open_group(model, "usage: /leave, in the group's conversation")?)),
        _ => Ok(GroupCommand::Members(open_group(model, "usage: /members, in the group's conversation")?)),
    }
}

fn user(raw: &str, usage: &str) -> Result<Username, String> {
    Username::parse(raw).map_err(|e| format!("{usage} ({e})"))
}

fn open_group(model: &Model, usage: &str) -> Result<GroupName, String> {
    match &model.selected {
        Some(ConvKey::Group(group)) => Ok(group.clone()),
        _ => Err(format!("{usage}: open a group first")),
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
