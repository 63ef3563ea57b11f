//! Building groups for the app tests: `#lab`, its lines, and its member list.

use papo::app::{update, ConvKey, Model, Msg};
use papo::net::{GroupCommand, NetEvent};
use papo_protocol::{GroupInfo, GroupMember, GroupMessage, GroupMessageKind, GroupName, GroupSummary};

use super::{contact, logged_in, name, NOW};

pub fn group(raw: &str) -> GroupName {
    GroupName::parse(raw).unwrap()
}

/// `#lab`'s conversation key.
pub fn lab() -> ConvKey {
    ConvKey::Group(group("#lab"))
}

/// A group of three owned by bia, as the group list shows it.
pub fn summary(raw: &str, unread: u64) -> GroupSummary {
    GroupSummary { name: group(raw), owner: name("bia"), members: 3, unread, last: None }
}

/// A line of `#lab`, sent a minute after [`NOW`] per id.
pub fn line(id: u64, from: &str, body: &str, kind: GroupMessageKind) -> GroupMessage {
    GroupMessage {
        id,
        group: group("#lab"),
        from: name(from),
        body: body.into(),
        sent_at: NOW + id as i64 * 60_000,
        kind,
    }
}

/// A text in `#lab`.
pub fn text(id: u64, from: &str, body: &str) -> GroupMessage {
    line(id, from, body, GroupMessageKind::Text)
}

/// Logged in as ana with bia in the contacts and `#lab` (2 unread) in the groups.
pub fn with_lab() -> Model {
    let mut model = logged_in(vec![contact("bia", true, 0, 0)]);
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#lab", 2)])));
    model
}

pub fn member(raw: &str, online: bool, joined_at: u64) -> GroupMember {
    GroupMember { name: name(raw), online, joined_at, delivered_up_to: 0, read_up_to: 0 }
}

/// `#lab`, owned by bia, with `members`.
pub fn lab_info(members: Vec<GroupMember>) -> GroupInfo {
    GroupInfo { name: group("#lab"), owner: name("bia"), created_at: NOW, hide_history: false, members }
}

/// The answer to the roster the app asks for when a group opens.
pub fn roster(model: &mut Model, info: GroupInfo) {
    let command = GroupCommand::Info(info.name.clone());
    update(model, Msg::Net(NetEvent::Group { command, result: Ok(Some(info)) }));
}
