//! Group conversations in the full-screen client: listed, received, sent, drawn.

mod common;

use common::*;
use papo::app::{update, ConvKey, Msg};
use papo::net::{GroupCommand, NetCommand, NetEvent, Outgoing};
use papo_protocol::{
    Event, GroupHistoryPage, GroupInfo, GroupMember, GroupMessage, GroupMessageKind, GroupName, GroupSummary,
};
use ratatui::crossterm::event::KeyCode;

fn group(raw: &str) -> GroupName {
    GroupName::parse(raw).unwrap()
}

fn lab() -> ConvKey {
    ConvKey::Group(group("#lab"))
}

fn summary(raw: &str, unread: u64) -> GroupSummary {
    GroupSummary { name: group(raw), owner: name("bia"), members: 3, unread, last: None }
}

fn line(id: u64, from: &str, body: &str, kind: GroupMessageKind) -> GroupMessage {
    GroupMessage {
        id,
        group: group("#lab"),
        from: name(from),
        body: body.into(),
        sent_at: NOW + id as i64 * 60_000,
        kind,
    }
}

fn text(id: u64, from: &str, body: &str) -> GroupMessage {
    line(id, from, body, GroupMessageKind::Text)
}

fn with_lab() -> papo::app::Model {
    let mut model = logged_in(vec![contact("bia", true, 0, 0)]);
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#lab", 2)])));
    model
}

#[test]
fn groups_join_the_contact_list_with_their_unread_count_and_survive_a_contacts_refresh() {
    let mut model = with_lab();
    let lab = model.contact(&lab()).expect("the group is listed");
    assert_eq!(lab.unread, 2);
    update(
        &mut model,
        Msg::Net(NetEvent::Contacts(vec![contact("bia", true, 0, 0), contact("caio", false, 0, 0)])),
    );
    let names: Vec<String> = model.contacts.iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names, ["#lab", "bia", "caio"]);
    // A group I am no longer in goes with the next list of groups; the users stay.
    update(&mut model, Msg::Net(NetEvent::Groups(vec![])));
    let names: Vec<String> = model.contacts.iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names, ["bia", "caio"]);
}

#[test]
fn opening_a_group_asks_for_its_history_and_marks_it_read() {
    let mut model = with_lab();
    let commands = update(&mut model, alt(KeyCode::Char('1')));
    assert_eq!(commands, [NetCommand::History { with: lab(), before: None }]);
    let page = GroupHistoryPage {
        group: group("#lab"),
        messages: vec![
            text(3, "caio", "second"),
            text(2, "bia", "first"),
            line(1, "bia", "", GroupMessageKind::Created),
        ],
        more: false,
    };
    let commands = update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page }));
    assert_eq!(commands, [NetCommand::MarkRead { with: lab(), up_to: 3 }]);
    assert_eq!(model.conversations[&lab()].messages.len(), 3);
    assert_eq!(model.contact(&lab()).map(|c| c.unread), Some(0));
}

#[test]
fn live_group_texts_count_as_unread_without_ringing_and_system_lines_do_not_count() {
    let mut model = with_lab();
    update(&mut model, Msg::Net(NetEvent::Server(Event::GroupMessage(text(5, "bia", "hello all")))));
    update(&mut model, Msg::Net(NetEvent::Server(Event::GroupMessage(text(5, "bia", "hello all")))));
    let added = GroupMessageKind::Added { member: name("caio") };
    update(&mut model, Msg::Net(NetEvent::Server(Event::GroupMessage(line(6, "bia", "", added)))));
    assert_eq!(model.contact(&lab()).map(|c| c.unread), Some(3));
    assert_eq!(model.conversations[&lab()].messages.len(), 2);
    assert!(model.alerts.is_empty(), "plain group traffic does not ring");
}

#[test]
fn typing_in_an_open_group_sends_to_the_group_and_the_ack_files_it_with_my_name() {
    let mut model = with_lab();
    update(&mut model, alt(KeyCode::Char('1')));
    let commands = type_text(&mut model, "hi");
    assert!(commands.is_empty(), "no typing event goes to a group: {commands:?}");
    let commands = update(&mut model, key(KeyCode::Enter));
    let outgoing = Outgoing { to: lab(), body: "hi".into(), client_msg_id: 1000 };
    assert_eq!(commands, [NetCommand::Send(outgoing.clone())]);
    update(&mut model, Msg::Net(NetEvent::Sent { outgoing, id: 9, sent_at: NOW }));
    let conversation = &model.conversations[&lab()];
    assert!(conversation.outgoing.is_empty());
    assert_eq!((conversation.messages[0].id, conversation.messages[0].from.as_str()), (9, "ana"));
}

#[test]
fn slash_msg_opens_a_group_and_sends_to_it_but_not_to_a_group_i_am_not_in() {
    let mut model = with_lab();
    let commands = type_text(&mut model, "/msg #lab meeting at 3");
    assert!(commands.is_empty());
    let commands = update(&mut model, key(KeyCode::Enter));
    assert_eq!(model.selected, Some(lab()));
    let send = Outgoing { to: lab(), body: "meeting at 3".into(), client_msg_id: 1000 };
    assert!(commands.contains(&NetCommand::Send(send)), "{commands:?}");
    type_text(&mut model, "/msg #other hi");
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert_eq!(model.notice.as_deref(), Some("you are in no group called #other"));
}

#[test]
fn a_group_is_drawn_with_its_hash_and_each_line_with_its_sender() {
    let mut model = with_lab();
    update(&mut model, alt(KeyCode::Char('1')));
    let page = GroupHistoryPage {
        group: group("#lab"),
        messages: vec![
            text(3, "caio", "oi"),
            line(2, "bia", "", GroupMessageKind::Added { member: name("caio") }),
            text(1, "bia", "bem-vindos"),
        ],
        more: false,
    };
    update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page }));
    let screen = render(&model, 80, 16).join("\n");
    assert!(screen.contains("1   #lab"), "{screen}");
    assert!(screen.contains(" #lab group"), "{screen}");
    assert!(screen.contains("bia: bem-vindos"), "{screen}");
    assert!(screen.contains("· bia added caio"), "{screen}");
    assert!(screen.contains("caio: oi"), "{screen}");
}

#[test]
fn a_group_i_was_removed_from_says_so_and_refuses_new_messages() {
    let mut model = with_lab();
    update(&mut model, alt(KeyCode::Char('1')));
    let removed = Event::GroupRemoved { group: group("#lab"), by: name("bia") };
    update(&mut model, Msg::Net(NetEvent::Server(removed)));
    type_text(&mut model, "still here?");
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert_eq!(model.notice.as_deref(), Some("#lab can no longer be written to: bia removed you"));
    let screen = render(&model, 80, 16).join("\n");
    assert!(screen.contains("#lab group · bia removed you"), "{screen}");
    let deleted = Event::GroupDeleted { group: group("#lab"), by: name("bia") };
    update(&mut model, Msg::Net(NetEvent::Server(deleted)));
    assert_eq!(model.contact(&lab()).and_then(|c| c.gone.as_deref()), Some("bia deleted it"));
}

/// `with_lab` with `#lab` open.
fn in_lab() -> papo::app::Model {
    let mut model = with_lab();
    update(&mut model, alt(KeyCode::Char('1')));
    model
}

/// Types `line`, presses Enter and returns what it asked of the network.
fn enter(model: &mut papo::app::Model, line: &str) -> Vec<NetCommand> {
    let mut commands = type_text(model, line);
    commands.extend(update(model, key(KeyCode::Enter)));
    commands
}

fn answer(model: &mut papo::app::Model, command: GroupCommand, result: Result<Option<GroupInfo>, String>) {
    update(model, Msg::Net(NetEvent::Group { command, result }));
}

#[test]
fn group_create_asks_for_the_group_with_its_members_and_says_so() {
    let mut model = with_lab();
    let create = GroupCommand::Create { name: group("#redes"), members: vec![name("bia"), name("caio")] };
    assert_eq!(enter(&mut model, "/group create #redes bia caio"), [NetCommand::Group(create.clone())]);
    answer(&mut model, create.clone(), Ok(None));
    assert_eq!(model.notice.as_deref(), Some("created #redes; /invite USER adds more"));
    answer(&mut model, create, Err("a group called #redes exists".into()));
    assert_eq!(model.notice.as_deref(), Some("cannot create #redes: a group called #redes exists"));
    assert!(enter(&mut model, "/group create redes").is_empty(), "a name without # is refused here");
    assert!(model.notice.as_deref().is_some_and(|n| n.starts_with("usage: /group create #NAME")));
}

#[test]
fn invite_and_kick_act_on_the_open_group_and_show_the_servers_refusal() {
    let mut model = in_lab();
    let invite = GroupCommand::Invite { group: group("#lab"), user: name("caio") };
    assert_eq!(enter(&mut model, "/invite caio"), [NetCommand::Group(invite.clone())]);
    answer(&mut model, invite, Ok(None));
    assert_eq!(model.notice.as_deref(), Some("caio is now in #lab"));
    let kick = GroupCommand::Kick { group: group("#lab"), user: name("bia") };
    assert_eq!(enter(&mut model, "/kick bia"), [NetCommand::Group(kick.clone())]);
    answer(&mut model, kick.clone(), Ok(None));
    assert_eq!(model.notice.as_deref(), Some("bia was removed from #lab"));
    answer(&mut model, kick, Err("only the owner of #lab may do that".into()));
    assert_eq!(
        model.notice.as_deref(),
        Some("cannot remove bia from #lab: only the owner of #lab may do that")
    );
}

#[test]
fn group_commands_outside_a_group_ask_to_open_one_and_send_nothing() {
    let mut model = with_lab();
    update(&mut model, alt(KeyCode::Char('2')));
    for line in ["/invite caio", "/kick caio", "/leave", "/members"] {
        assert!(enter(&mut model, line).is_empty(), "{line} sent a request");
        assert!(model.notice.as_deref().is_some_and(|n| n.ends_with("open a group first")), "{line}");
    }
}

#[test]
fn leave_asks_to_leave_the_open_group_and_says_how_it_went() {
    let mut model = in_lab();
    let leave = GroupCommand::Leave(group("#lab"));
    assert_eq!(enter(&mut model, "/leave"), [NetCommand::Group(leave.clone())]);
    answer(&mut model, leave.clone(), Err("the owner hands a group over or deletes it".into()));
    assert_eq!(
        model.notice.as_deref(),
        Some("cannot leave #lab: the owner hands a group over or deletes it")
    );
    answer(&mut model, leave, Ok(None));
    assert_eq!(model.notice.as_deref(), Some("you left #lab"));
}

#[test]
fn members_lists_the_open_groups_members_with_presence_in_the_status_line() {
    let mut model = in_lab();
    let members = GroupCommand::Members(group("#lab"));
    assert_eq!(enter(&mut model, "/members"), [NetCommand::Group(members.clone())]);
    let member = |raw: &str, online| GroupMember {
        name: name(raw),
        online,
        joined_at: 1,
        delivered_up_to: 0,
        read_up_to: 0,
    };
    let info = GroupInfo {
        name: group("#lab"),
        owner: name("bia"),
        created_at: NOW,
        hide_history: false,
        members: vec![member("ana", true), member("bia", false)],
    };
    answer(&mut model, members.clone(), Ok(Some(info)));
    let screen = render(&model, 100, 16).join("\n");
    assert!(screen.contains("#lab, owned by bia: ana online, bia offline"), "{screen}");
    // A hostile server's error text cannot steer the terminal.
    answer(&mut model, members, Err("no\u{1b}[2Jsuch group".into()));
    let screen = render(&model, 100, 16).join("\n");
    assert!(!screen.contains('\u{1b}'), "{screen}");
    assert!(screen.contains("cannot list the members of #lab: no"), "{screen}");
}
