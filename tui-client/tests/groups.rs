//! Group conversations in the full-screen client: listed, received, sent, drawn.

mod common;

use common::groups::*;
use common::*;
use papo::app::{update, ConvKey, Msg};
use papo::net::{GroupCommand, NetCommand, NetEvent, Outgoing};
use papo_protocol::{
    Event, GroupHistoryPage, GroupInfo, GroupMember, GroupMessage, GroupMessageKind, ReceiptKind,
};
use ratatui::crossterm::event::KeyCode;

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
    // A group the list no longer has, and no new group was renamed from, is marked gone;
    // it goes with the list after; the users stay.
    update(&mut model, Msg::Net(NetEvent::Groups(vec![])));
    let gone = model.contact(&common::groups::lab()).and_then(|c| c.gone.as_deref());
    assert_eq!(gone, Some("you are no longer in #lab, or it was deleted"));
    update(&mut model, Msg::Net(NetEvent::Groups(vec![])));
    let names: Vec<String> = model.contacts.iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names, ["bia", "caio"]);
}

#[test]
fn opening_a_group_asks_for_its_history_and_marks_it_read() {
    let mut model = with_lab();
    let commands = update(&mut model, alt(KeyCode::Char('1')));
    let info = NetCommand::Group(GroupCommand::Info(group("#lab")));
    assert_eq!(commands, [NetCommand::History { with: lab(), before: None }, info]);
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

/// `#lab` with ana (me, online), bia (the owner, online), caio, davi and eva, who joined later
/// one after the other.
fn lab_members() -> GroupInfo {
    lab_info(vec![
        member("ana", true, 1),
        member("bia", true, 1),
        member("caio", false, 2),
        member("davi", false, 3),
        member("eva", false, 4),
    ])
}

/// `#lab` open, its roster loaded.
fn in_lab_with_roster() -> papo::app::Model {
    let mut model = in_lab();
    roster(&mut model, lab_members());
    model
}

fn live(model: &mut papo::app::Model, line: GroupMessage) -> Vec<NetCommand> {
    update(model, Msg::Net(NetEvent::Server(Event::GroupMessage(line))))
}

fn header(model: &papo::app::Model) -> String {
    render(model, 80, 24).into_iter().find(|row| row.contains(" #")).unwrap_or_default()
}

#[test]
fn rename_asks_for_the_open_group_and_moves_it_with_its_draft_under_the_new_name() {
    let mut model = in_lab_with_roster();
    live(&mut model, text(5, "bia", "oi"));
    let rename = GroupCommand::Rename { group: group("#lab"), to: group("#redes") };
    assert_eq!(enter(&mut model, "/rename #Redes"), [NetCommand::Group(rename.clone())]);
    type_text(&mut model, "half typed");
    answer(&mut model, rename.clone(), Ok(None));
    assert_eq!(model.notice.as_deref(), Some("#lab is now called #redes"));
    let redes = ConvKey::Group(group("#redes"));
    assert_eq!(model.selected, Some(redes.clone()));
    assert!(model.contact(&lab()).is_none() && model.contact(&redes).is_some());
    assert_eq!(model.conversations[&redes].messages.len(), 1, "the history came along");
    assert!(model.conversations[&redes].roster.is_some());
    assert_eq!(model.input.text(), "half typed");
    assert!(header(&model).contains(" #redes · 2/5 online"), "{}", header(&model));
    model.input.set("");
    // Refusals: said here, or by the server, sanitised.
    assert!(enter(&mut model, "/rename redes2").is_empty());
    assert!(
        model.notice.as_deref().is_some_and(|n| n.starts_with("usage: /rename #NEW")),
        "{:?}",
        model.notice
    );
    model.input.set("");
    assert!(enter(&mut model, "/rename #redes").is_empty());
    assert_eq!(model.notice.as_deref(), Some("#redes is called that already"));
    model.input.set("");
    let again = GroupCommand::Rename { group: group("#redes"), to: group("#x") };
    answer(&mut model, again, Err("only the group's\u{1b}]0;owned\u{7} owner can do that".into()));
    // The status line wraps a long refusal onto the bottom rows.
    let screen = render(&model, 100, 24);
    let status = screen[screen.len() - 2..].iter().map(|row| row.trim()).collect::<Vec<_>>().join(" ");
    assert!(status.contains("cannot rename #redes to #x: only the group's"), "{status}");
    assert!(!status.contains('\u{1b}') && !status.contains('\u{7}'), "{status:?}");
}

#[test]
fn a_rename_by_the_owner_arrives_as_a_line_and_moves_the_group() {
    let mut model = in_lab_with_roster();
    let renamed = GroupMessage {
        group: group("#redes"),
        ..line(7, "bia", "", GroupMessageKind::Renamed { from: group("#lab") })
    };
    live(&mut model, renamed);
    let redes = ConvKey::Group(group("#redes"));
    assert_eq!(model.selected, Some(redes.clone()));
    assert!(model.contact(&lab()).is_none());
    let screen = render(&model, 80, 24).join("\n");
    assert!(screen.contains("· bia renamed the group (it was #lab)"), "{screen}");
    // The list of groups from the server names it the same: one entry, not two.
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 0)])));
    let groups = model.contacts.iter().filter(|c| c.name.user().is_none()).count();
    assert_eq!(groups, 1);
}

#[test]
fn delete_asks_first_and_only_y_deletes() {
    let mut model = in_lab();
    assert!(enter(&mut model, "/delete").is_empty(), "nothing is asked of the server before a yes");
    let screen = render(&model, 80, 24).join("\n");
    assert!(screen.contains("Delete #lab and its whole history, for every member?"), "{screen}");
    assert!(update(&mut model, key(KeyCode::Char('n'))).is_empty());
    assert_eq!(model.notice.as_deref(), Some("#lab was not deleted"));
    assert!(model.overlay.is_none());
    assert!(enter(&mut model, "/delete").is_empty());
    let delete = GroupCommand::Delete(group("#lab"));
    assert_eq!(update(&mut model, key(KeyCode::Char('y'))), [NetCommand::Group(delete.clone())]);
    answer(&mut model, delete.clone(), Err("only the group's owner can do that".into()));
    assert_eq!(model.notice.as_deref(), Some("cannot delete #lab: only the group's owner can do that"));
    answer(&mut model, delete, Ok(None));
    assert_eq!(model.contact(&lab()).and_then(|c| c.gone.as_deref()), Some("you deleted it"));
    type_text(&mut model, "anyone?");
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty(), "a deleted group takes no message");
}

#[test]
fn handover_names_another_member_and_the_new_owner_is_marked() {
    let mut model = in_lab_with_roster();
    assert!(enter(&mut model, "/handover ana").is_empty(), "not to myself");
    assert!(model.notice.as_deref().is_some_and(|n| n.contains("someone else")), "{:?}", model.notice);
    model.input.set("");
    assert!(enter(&mut model, "/handover").is_empty());
    assert_eq!(model.notice.as_deref(), Some("usage: /handover USER, in the group's conversation"));
    model.input.set("");
    let handover = GroupCommand::Handover { group: group("#lab"), to: name("caio") };
    assert_eq!(enter(&mut model, "/handover caio"), [NetCommand::Group(handover.clone())]);
    answer(&mut model, handover.clone(), Err("only the group's owner can do that".into()));
    assert_eq!(
        model.notice.as_deref(),
        Some("cannot hand #lab over to caio: only the group's owner can do that")
    );
    answer(&mut model, handover, Ok(None));
    assert_eq!(model.notice.as_deref(), Some("caio now owns #lab"));
    assert_eq!(model.conversations[&lab()].roster.as_ref().map(|r| r.owner.as_str()), Some("caio"));
    // A hand-over by someone else arrives as a line.
    live(&mut model, line(9, "caio", "", GroupMessageKind::OwnerChanged { to: name("davi") }));
    assert_eq!(model.conversations[&lab()].roster.as_ref().map(|r| r.owner.as_str()), Some("davi"));
}

#[test]
fn the_header_counts_members_online_and_follows_presence_and_membership() {
    let mut model = in_lab();
    assert!(header(&model).contains(" #lab group"), "before the roster: {}", header(&model));
    roster(&mut model, lab_members());
    assert_eq!(model.notice, None, "the client's own request says nothing");
    assert!(header(&model).contains(" #lab · 2/5 online"), "{}", header(&model));
    let presence =
        |user: &str, online| Msg::Net(NetEvent::Server(Event::Presence { user: name(user), online }));
    update(&mut model, presence("caio", true));
    update(&mut model, presence("davi", true));
    update(&mut model, presence("bia", false));
    assert!(header(&model).contains(" #lab · 3/5 online"), "{}", header(&model));
    update(&mut model, presence("zoe", true));
    assert!(header(&model).contains(" #lab · 3/5 online"), "a non-member changes nothing");
    live(&mut model, line(10, "bia", "", GroupMessageKind::Added { member: name("bia") }));
    live(&mut model, line(11, "bia", "", GroupMessageKind::Removed { member: name("caio") }));
    live(&mut model, line(12, "davi", "", GroupMessageKind::Left));
    assert!(header(&model).contains(" #lab · 1/3 online"), "{}", header(&model));
    update(&mut model, Msg::Net(NetEvent::Contacts(vec![contact("zoe", true, 0, 0)])));
    live(&mut model, line(13, "bia", "", GroupMessageKind::Added { member: name("zoe") }));
    assert!(header(&model).contains(" #lab · 2/4 online"), "{}", header(&model));
    let lost =
        papo::net::Link::Offline { reason: "gone".into(), retry_in: std::time::Duration::from_secs(3) };
    update(&mut model, Msg::Net(NetEvent::Link(lost)));
    assert!(header(&model).contains(" #lab · 4 members"), "{}", header(&model));
}

#[test]
fn a_reconnect_asks_for_the_open_groups_roster_again_and_a_failed_ask_is_retried() {
    let mut model = in_lab_with_roster();
    let commands = update(&mut model, Msg::Net(NetEvent::Resumed));
    assert!(commands.contains(&NetCommand::Group(GroupCommand::Info(group("#lab")))), "{commands:?}");
    answer(&mut model, GroupCommand::Info(group("#lab")), Err("the connection was lost".into()));
    assert_eq!(model.notice, None);
    assert!(model.conversations[&lab()].roster.is_some(), "the roster known stays shown");
    enter(&mut model, "/msg bia");
    let commands = enter(&mut model, "/msg #lab");
    assert!(commands.contains(&NetCommand::Group(GroupCommand::Info(group("#lab")))), "{commands:?}");
}

/// `#lab` with my texts 20 and 30 loaded and its roster.
fn lab_with_my_texts() -> papo::app::Model {
    let mut model = in_lab_with_roster();
    let page = GroupHistoryPage {
        group: group("#lab"),
        messages: vec![text(30, "ana", "second of mine"), text(20, "ana", "first of mine")],
        more: false,
    };
    update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page }));
    model
}

fn receipt(model: &mut papo::app::Model, member: &str, kind: ReceiptKind, up_to: u64) {
    let event = Event::GroupReceipt { group: group("#lab"), member: name(member), kind, up_to };
    update(model, Msg::Net(NetEvent::Server(event)));
}

fn row_of(model: &papo::app::Model, needle: &str) -> String {
    let screen = render(model, 80, 24);
    screen.iter().find(|row| row.contains(needle)).cloned().unwrap_or_else(|| screen.join("\n"))
}

#[test]
fn my_group_texts_say_how_many_members_received_and_read_them() {
    let mut model = lab_with_my_texts();
    assert!(
        row_of(&model, "second of mine").contains("second of mine ✓ 0/4"),
        "{}",
        row_of(&model, "second")
    );
    receipt(&mut model, "bia", ReceiptKind::Delivered, 30);
    receipt(&mut model, "caio", ReceiptKind::Read, 20);
    assert!(row_of(&model, "first of mine").contains("first of mine ✓✓ 2/4 · read by 1"));
    assert!(row_of(&model, "second of mine").contains("second of mine ✓✓ 1/4"));
    // A text of a member is their receipt too: sending marks a group read.
    live(&mut model, text(31, "davi", "got it"));
    assert!(row_of(&model, "second of mine").contains("✓✓ 2/4 · read by 1"), "{}", row_of(&model, "second"));
    // Someone added later was not there: the count is of those who were.
    live(&mut model, line(32, "bia", "", GroupMessageKind::Added { member: name("zoe") }));
    assert!(row_of(&model, "second of mine").contains("✓✓ 2/4 · read by 1"));
    // A receipt never moves a watermark back.
    receipt(&mut model, "davi", ReceiptKind::Delivered, 10);
    assert!(row_of(&model, "second of mine").contains("✓✓ 2/4 · read by 1"));
    for member in ["bia", "caio", "eva"] {
        receipt(&mut model, member, ReceiptKind::Read, 31);
    }
    assert!(row_of(&model, "second of mine").contains("✓✓ 4/4 · read by 4"));
}

#[test]
fn who_names_who_read_and_received_my_last_text() {
    let mut model = lab_with_my_texts();
    receipt(&mut model, "bia", ReceiptKind::Read, 30);
    receipt(&mut model, "caio", ReceiptKind::Delivered, 30);
    receipt(&mut model, "davi", ReceiptKind::Read, 20);
    assert!(enter(&mut model, "/who").is_empty(), "answered from what the client knows");
    assert_eq!(
        model.notice.as_deref(),
        Some("your last message: read by bia; delivered to caio; not yet davi, eva")
    );
    let mut fresh = in_lab_with_roster();
    enter(&mut fresh, "/who");
    assert_eq!(fresh.notice.as_deref(), Some("you have sent nothing in #lab that is loaded here"));
    let mut bare = in_lab();
    enter(&mut bare, "/who");
    assert!(bare.notice.as_deref().is_some_and(|n| n.contains("not loaded yet")), "{:?}", bare.notice);
}

#[test]
fn a_mention_rings_like_a_direct_message_and_plain_group_traffic_only_counts() {
    let mut model = with_lab();
    live(&mut model, text(5, "bia", "hello all"));
    assert!(model.alerts.is_empty(), "plain traffic does not ring");
    live(&mut model, text(6, "bia", "@Ana, can you look?"));
    assert_eq!(model.alerts, [papo::app::Alert::Bell]);
    live(&mut model, text(7, "bia", "mail bia@ana.example or @anabel"));
    assert_eq!(model.alerts.len(), 1, "neither is a mention of ana");
    assert_eq!(model.contact(&lab()).map(|c| c.unread), Some(5));
    // A desktop notification says where.
    model.prefs.notify = papo::settings::Notify::Desktop;
    model.alerts.clear();
    live(&mut model, text(9, "caio", "@ana?"));
    let desktop = papo::app::Alert::Desktop { from: name("caio"), group: Some(group("#lab")), preview: None };
    assert_eq!(model.alerts, [papo::app::Alert::Bell, desktop]);
    // A mention I see arrive does not ring either, as for a direct message.
    update(&mut model, alt(KeyCode::Char('1')));
    model.alerts.clear();
    live(&mut model, text(8, "bia", "@ana here"));
    assert!(model.alerts.is_empty());
}

#[test]
fn notify_sets_what_a_group_rings_for_and_is_kept_in_the_settings() {
    let mut model = in_lab();
    assert!(enter(&mut model, "/notify loud").is_empty());
    assert_eq!(
        model.notice.as_deref(),
        Some("usage: /notify all|mentions|none, in the group's conversation")
    );
    model.input.set("");
    enter(&mut model, "/notify all");
    assert_eq!(model.prefs.group_notify.get(&group("#lab")), Some(&papo::settings::GroupNotify::All));
    enter(&mut model, "/msg bia");
    live(&mut model, text(5, "bia", "plain"));
    assert_eq!(model.alerts, [papo::app::Alert::Bell]);
    enter(&mut model, "/msg #lab");
    enter(&mut model, "/notify none");
    assert_eq!(model.notice.as_deref(), Some("#lab never rings; it still counts unread messages"));
    enter(&mut model, "/msg bia");
    model.alerts.clear();
    let unread = model.contact(&lab()).map_or(0, |c| c.unread);
    live(&mut model, text(6, "bia", "@ana urgent"));
    assert!(model.alerts.is_empty(), "none means none");
    assert_eq!(model.contact(&lab()).map(|c| c.unread), Some(unread + 1), "but it counts");
    let listed = row_of(&model, "#lab");
    assert!(listed.contains(&format!("⊘ {}│", unread + 1)), "{listed}");
    enter(&mut model, "/msg #lab");
    enter(&mut model, "/notify mentions");
    assert!(model.prefs.group_notify.is_empty(), "the default is not written down");
}

#[test]
fn a_mention_of_me_is_drawn_highlighted() {
    let mut model = in_lab();
    let page = GroupHistoryPage {
        group: group("#lab"),
        messages: vec![text(3, "bia", "ping @ana now"), text(2, "ana", "me @ana")],
        more: false,
    };
    update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page }));
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(80, 24)).unwrap();
    terminal.draw(|frame| papo::app::view(&model, frame)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    let screen = render(&model, 80, 24);
    let styled_at = |needle: &str| {
        let y = screen.iter().position(|row| row.contains(needle)).unwrap();
        let x = screen[y].find(needle).unwrap() + needle.find("@ana").unwrap();
        let x = u16::try_from(unicode_width::UnicodeWidthStr::width(&screen[y][..x])).unwrap();
        let y = u16::try_from(y).unwrap();
        let cells: Vec<_> = (x..x + 4).map(|x| buffer[(x, y)].modifier).collect();
        cells.iter().all(|m| m.contains(ratatui::style::Modifier::REVERSED))
    };
    assert!(styled_at("ping @ana now"), "{}", screen.join("\n"));
    assert!(!styled_at("me @ana"), "my own text is not a mention of me");
}

/// `#lab` open with two lines, a text queued while offline, and a draft typed after it.
fn lab_with_a_queued_text_and_a_draft() -> papo::app::Model {
    let mut model = in_lab();
    let page = GroupHistoryPage {
        group: group("#lab"),
        messages: vec![text(3, "bia", "see you at the lab"), line(1, "bia", "", GroupMessageKind::Created)],
        more: false,
    };
    update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page }));
    let lost =
        papo::net::Link::Offline { reason: "gone".into(), retry_in: std::time::Duration::from_secs(3) };
    update(&mut model, Msg::Net(NetEvent::Link(lost)));
    enter(&mut model, "queued offline");
    type_text(&mut model, "half typed");
    update(&mut model, Msg::Net(NetEvent::Link(papo::net::Link::Online)));
    model
}

fn redes() -> ConvKey {
    ConvKey::Group(group("#redes"))
}

/// The newest page of `#redes`: a text from before, `#lab` renamed at 7, then a text.
fn redes_page() -> GroupHistoryPage {
    let renamed = GroupMessage {
        group: group("#redes"),
        ..line(7, "bia", "", GroupMessageKind::Renamed { from: group("#lab") })
    };
    let later = GroupMessage { group: group("#redes"), ..text(8, "bia", "new name, same lab") };
    let before = GroupMessage { group: group("#redes"), ..text(3, "bia", "see you at the lab") };
    GroupHistoryPage { group: group("#redes"), messages: vec![later, renamed, before], more: true }
}

#[test]
fn a_group_renamed_while_offline_follows_its_new_name_from_the_refetched_list() {
    let mut model = lab_with_a_queued_text_and_a_draft();
    let commands = update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 1)])));
    assert!(commands.contains(&NetCommand::History { with: redes(), before: None }), "{commands:?}");
    // Until its fate is known the group stays as it was.
    assert!(model.contact(&lab()).is_some_and(|c| c.gone.is_none()));
    assert_eq!(model.selected, Some(lab()));

    let commands = update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page: redes_page() }));
    let follow = NetCommand::FollowRename { from: group("#lab"), to: group("#redes") };
    assert!(commands.contains(&follow), "the network thread's queue follows too: {commands:?}");
    assert_eq!(model.selected, Some(redes()));
    assert!(model.contact(&lab()).is_none() && !model.conversations.contains_key(&lab()));
    assert_eq!(model.input.text(), "half typed", "the draft moves with the conversation");
    let conversation = &model.conversations[&redes()];
    let ids: Vec<u64> = conversation.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 3, 7, 8], "the old lines and the new page, in one conversation");
    let queued: Vec<&str> = conversation.outgoing.iter().map(|o| o.outgoing.body.as_str()).collect();
    assert_eq!(queued, ["queued offline"]);
    let groups: Vec<String> =
        model.contacts.iter().filter(|c| c.name.user().is_none()).map(|c| c.name.to_string()).collect();
    assert_eq!(groups, ["#redes"]);

    // Sent under the old name before the network thread heard of the rename: it is filed
    // where it is shown, and no `#lab` comes back.
    let outgoing = conversation.outgoing[0].outgoing.clone();
    assert_eq!(outgoing.to, lab());
    update(&mut model, Msg::Net(NetEvent::Sent { outgoing, id: 9, sent_at: NOW }));
    let conversation = &model.conversations[&redes()];
    assert!(conversation.outgoing.is_empty());
    assert_eq!(conversation.messages.last().map(|m| (m.id, m.body.as_str())), Some((9, "queued offline")));
    assert!(model.contact(&lab()).is_none() && !model.conversations.contains_key(&lab()));
}

#[test]
fn a_group_no_new_group_was_renamed_from_is_marked_gone_and_keeps_what_was_queued() {
    let mut model = lab_with_a_queued_text_and_a_draft();
    let commands = update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 0)])));
    assert!(commands.contains(&NetCommand::History { with: redes(), before: None }), "{commands:?}");
    // The open group's page, asked again after the reconnect, is refused under the old name:
    // that neither drops the conversation nor its queue.
    let refused = NetEvent::HistoryFailed {
        with: lab(),
        before: None,
        code: papo_protocol::ErrorCode::NoSuchGroup,
        reason: "no such group".into(),
    };
    update(&mut model, Msg::Net(refused.clone()));
    assert!(model.conversations.contains_key(&lab()));
    let page = GroupHistoryPage {
        group: group("#redes"),
        messages: vec![GroupMessage { group: group("#redes"), ..text(40, "caio", "another group") }],
        more: false,
    };
    let commands = update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page }));
    assert!(!commands.iter().any(|c| matches!(c, NetCommand::FollowRename { .. })), "{commands:?}");
    let gone = model.contact(&lab()).and_then(|c| c.gone.as_deref());
    assert_eq!(gone, Some("you are no longer in #lab, or it was deleted"));
    assert_eq!(model.selected, Some(lab()));
    update(&mut model, Msg::Net(refused));
    let conversation = &model.conversations[&lab()];
    assert_eq!(conversation.messages.len(), 2, "what it showed stays");
    assert_eq!(conversation.outgoing.len(), 1, "what was queued stays");

    // The server refuses the queued text: it shows failed, with the server's reason.
    let client_msg_id = conversation.outgoing[0].outgoing.client_msg_id;
    let reason = "no such group, or you are not in it".to_owned();
    update(&mut model, Msg::Net(NetEvent::SendFailed { client_msg_id, reason: reason.clone() }));
    assert_eq!(model.conversations[&lab()].outgoing[0].failed.as_ref(), Some(&reason));

    let screen = render(&model, 100, 30);
    let header = row(&screen, " #lab ");
    assert!(header.contains("you are no longer in #lab, or it was deleted"), "{header}");
    assert!(
        row(&screen, "✗ #lab").starts_with("│2 ✗ #lab"),
        "crossed out in the list: {}",
        screen.join("\n")
    );
    let joined = screen.join("\n");
    assert!(joined.contains("queued offline"), "{joined}");
    assert!(joined.contains("no such group, or you are not in it"), "{joined}");
    assert!(!joined.contains("· 3/5 online"), "{joined}");
    // Writing to it says why not, and keeps the text.
    update(&mut model, key(KeyCode::Enter));
    let notice = model.notice.clone().unwrap_or_default();
    assert!(notice.contains("#lab can no longer be written to"), "{notice}");
    assert_eq!(model.input.text(), "half typed");
}

fn page_failed(group: ConvKey, code: papo_protocol::ErrorCode) -> NetEvent {
    NetEvent::HistoryFailed { with: group, before: None, code, reason: "refused".into() }
}

#[test]
fn a_missing_group_is_marked_gone_when_the_new_groups_page_says_it_does_not_exist() {
    let mut model = lab_with_a_queued_text_and_a_draft();
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 0)])));
    assert!(model.contact(&lab()).is_some_and(|c| c.gone.is_none()));
    update(&mut model, Msg::Net(page_failed(redes(), papo_protocol::ErrorCode::NoSuchGroup)));
    assert!(model.contact(&lab()).is_some_and(|c| c.gone.is_some()));
    assert_eq!(model.conversations[&lab()].outgoing.len(), 1);
}

#[test]
fn a_new_groups_page_failing_otherwise_keeps_the_missing_group_and_asks_again_with_the_next_list() {
    let mut model = lab_with_a_queued_text_and_a_draft();
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 0)])));
    update(&mut model, Msg::Net(page_failed(redes(), papo_protocol::ErrorCode::Internal)));
    assert!(model.contact(&lab()).is_some_and(|c| c.gone.is_none()), "a storage error says nothing of #lab");
    assert_eq!(model.selected, Some(lab()));
    assert_eq!(model.conversations[&lab()].outgoing.len(), 1);

    // The next list (as after a reconnect) asks for the page again, though #redes is known
    // by now; #lab is still listed as it was meanwhile.
    let commands = update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 0)])));
    assert!(commands.contains(&NetCommand::History { with: redes(), before: None }), "{commands:?}");
    assert!(model.contact(&lab()).is_some_and(|c| c.gone.is_none()));
    let commands = update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page: redes_page() }));
    let follow = NetCommand::FollowRename { from: group("#lab"), to: group("#redes") };
    assert!(commands.contains(&follow), "{commands:?}");
    assert_eq!(model.conversations[&redes()].outgoing.len(), 1);
}

/// The newest page of `#redes`, which says it was `#lab` (renamed at 50) but holds none of
/// the lines this client has of `#lab` (1 and 3).
fn claimed_page() -> GroupHistoryPage {
    let renamed = GroupMessage {
        group: group("#redes"),
        ..line(50, "eve", "", GroupMessageKind::Renamed { from: group("#lab") })
    };
    let created = GroupMessage { group: group("#redes"), ..line(49, "eve", "", GroupMessageKind::Created) };
    GroupHistoryPage { group: group("#redes"), messages: vec![renamed, created], more: false }
}

#[test]
fn a_rename_claimed_by_a_group_that_does_not_hold_my_lines_is_not_followed() {
    let mut model = lab_with_a_queued_text_and_a_draft();
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 1)])));
    let commands =
        update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page: claimed_page() }));
    let ask = NetCommand::GroupHoldsLine { group: group("#redes"), line: 3 };
    assert_eq!(
        commands.iter().filter(|c| matches!(c, NetCommand::GroupHoldsLine { .. })).collect::<Vec<_>>(),
        [&ask],
        "the newest line held of #lab is asked for: {commands:?}"
    );
    assert!(!commands.iter().any(|c| matches!(c, NetCommand::FollowRename { .. })), "{commands:?}");
    assert!(model.contact(&lab()).is_some_and(|c| c.gone.is_none()), "undecided until the answer");

    let answer = NetEvent::GroupHoldsLine { group: group("#redes"), line: 3, held: Ok(false) };
    let commands = update(&mut model, Msg::Net(answer));
    assert!(!commands.iter().any(|c| matches!(c, NetCommand::FollowRename { .. })), "{commands:?}");
    let gone = model.contact(&lab()).and_then(|c| c.gone.as_deref());
    assert_eq!(gone, Some("you are no longer in #lab, or it was deleted"));
    assert_eq!(model.selected, Some(lab()));
    assert_eq!(model.input.text(), "half typed", "the draft stays with #lab");
    let conversation = &model.conversations[&lab()];
    let ids: Vec<u64> = conversation.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 3], "#lab's lines stay in #lab");
    let queued: Vec<&str> = conversation.outgoing.iter().map(|o| o.outgoing.body.as_str()).collect();
    assert_eq!(queued, ["queued offline"], "and so does its queue");
    let redes_lines = model.conversations.get(&redes()).map(|c| c.messages.iter().map(|m| m.id).collect());
    assert_eq!(redes_lines, Some(vec![49, 50]), "#redes has only its own lines");
    assert!(model.conversations[&redes()].outgoing.is_empty());
}

#[test]
fn a_rename_proven_by_the_line_the_server_finds_in_the_new_group_is_followed() {
    let mut model = lab_with_a_queued_text_and_a_draft();
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 1)])));
    update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page: claimed_page() }));
    // An answer about another line, or another group, proves nothing.
    let other = NetEvent::GroupHoldsLine { group: group("#redes"), line: 1, held: Ok(true) };
    assert!(update(&mut model, Msg::Net(other)).is_empty());
    assert!(model.contact(&lab()).is_some_and(|c| c.gone.is_none()));
    let answer = NetEvent::GroupHoldsLine { group: group("#redes"), line: 3, held: Ok(true) };
    let commands = update(&mut model, Msg::Net(answer));
    let follow = NetCommand::FollowRename { from: group("#lab"), to: group("#redes") };
    assert!(commands.contains(&follow), "{commands:?}");
    assert_eq!(model.selected, Some(redes()));
    assert_eq!(model.input.text(), "half typed");
    let conversation = &model.conversations[&redes()];
    let ids: Vec<u64> = conversation.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 3, 49, 50]);
    assert_eq!(conversation.outgoing.len(), 1);
    assert!(model.contact(&lab()).is_none());
}

#[test]
fn of_two_groups_claiming_a_missing_groups_name_the_one_that_holds_its_line_is_followed() {
    let mut model = lab_with_a_queued_text_and_a_draft();
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#evil", 1), summary("#redes", 1)])));
    let evil = GroupHistoryPage {
        group: group("#evil"),
        messages: vec![GroupMessage {
            group: group("#evil"),
            ..line(60, "eve", "", GroupMessageKind::Renamed { from: group("#lab") })
        }],
        more: false,
    };
    let commands = update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page: evil }));
    assert!(
        commands.contains(&NetCommand::GroupHoldsLine { group: group("#evil"), line: 3 }),
        "{commands:?}"
    );
    let commands =
        update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page: claimed_page() }));
    assert!(
        commands.contains(&NetCommand::GroupHoldsLine { group: group("#redes"), line: 3 }),
        "{commands:?}"
    );
    let no = NetEvent::GroupHoldsLine { group: group("#evil"), line: 3, held: Ok(false) };
    update(&mut model, Msg::Net(no));
    assert!(model.contact(&lab()).is_some_and(|c| c.gone.is_none()), "#redes is still to answer");
    let yes = NetEvent::GroupHoldsLine { group: group("#redes"), line: 3, held: Ok(true) };
    let commands = update(&mut model, Msg::Net(yes));
    let follow = NetCommand::FollowRename { from: group("#lab"), to: group("#redes") };
    assert!(commands.contains(&follow), "{commands:?}");
    assert_eq!(model.conversations[&redes()].outgoing.len(), 1);
    assert!(model.conversations.get(&ConvKey::Group(group("#evil"))).is_none_or(|c| c.outgoing.is_empty()));
}

#[test]
fn a_check_the_server_could_not_answer_keeps_the_missing_group_and_is_asked_again_with_the_next_list() {
    let mut model = lab_with_a_queued_text_and_a_draft();
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 1)])));
    update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page: claimed_page() }));
    let failed = NetEvent::GroupHoldsLine {
        group: group("#redes"),
        line: 3,
        held: Err(papo_protocol::ErrorCode::Internal),
    };
    update(&mut model, Msg::Net(failed));
    assert!(model.contact(&lab()).is_some_and(|c| c.gone.is_none()));
    let commands = update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 1)])));
    assert!(commands.contains(&NetCommand::History { with: redes(), before: None }), "{commands:?}");
    let commands =
        update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page: claimed_page() }));
    assert!(
        commands.contains(&NetCommand::GroupHoldsLine { group: group("#redes"), line: 3 }),
        "{commands:?}"
    );
    // A group that no longer exists is not the one renamed.
    let gone = NetEvent::GroupHoldsLine {
        group: group("#redes"),
        line: 3,
        held: Err(papo_protocol::ErrorCode::NoSuchGroup),
    };
    update(&mut model, Msg::Net(gone));
    assert!(model.contact(&lab()).is_some_and(|c| c.gone.is_some()));
    assert_eq!(model.conversations[&lab()].outgoing.len(), 1);
}

#[test]
fn a_rename_older_than_a_line_seen_under_the_old_name_is_not_followed() {
    let mut model = lab_with_a_queued_text_and_a_draft();
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 1)])));
    // `#redes` holds line 3, but says it was renamed from #lab at 2, before this client saw
    // line 3 under #lab: not how #lab went away.
    let renamed = GroupMessage {
        group: group("#redes"),
        ..line(2, "eve", "", GroupMessageKind::Renamed { from: group("#lab") })
    };
    let held = GroupMessage { group: group("#redes"), ..text(3, "bia", "see you at the lab") };
    let page = GroupHistoryPage { group: group("#redes"), messages: vec![held, renamed], more: false };
    let commands = update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page }));
    assert!(
        !commands
            .iter()
            .any(|c| matches!(c, NetCommand::FollowRename { .. } | NetCommand::GroupHoldsLine { .. })),
        "{commands:?}"
    );
    assert!(model.contact(&lab()).is_some_and(|c| c.gone.is_some()));
    assert_eq!(model.conversations[&lab()].outgoing.len(), 1);
}

#[test]
fn a_missing_group_of_which_no_line_is_held_is_never_followed() {
    // #lab open, nothing loaded yet, a text queued while offline.
    let mut model = in_lab();
    let lost =
        papo::net::Link::Offline { reason: "gone".into(), retry_in: std::time::Duration::from_secs(3) };
    update(&mut model, Msg::Net(NetEvent::Link(lost)));
    enter(&mut model, "queued offline");
    update(&mut model, Msg::Net(NetEvent::Link(papo::net::Link::Online)));
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 1)])));
    let commands =
        update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page: claimed_page() }));
    assert!(
        !commands
            .iter()
            .any(|c| matches!(c, NetCommand::FollowRename { .. } | NetCommand::GroupHoldsLine { .. })),
        "nothing can prove it the same group: {commands:?}"
    );
    assert!(model.contact(&lab()).is_some_and(|c| c.gone.is_some()));
    assert_eq!(model.conversations[&lab()].outgoing.len(), 1);
    assert!(model.conversations.get(&redes()).is_none_or(|c| c.outgoing.is_empty()));
}

#[test]
fn a_followed_rename_keeps_the_drafts_of_both_names() {
    let mut model = lab_with_a_queued_text_and_a_draft();
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 1)])));
    // A draft kept for #redes (typed there before its page was back), #lab's in the input.
    let mut draft = model.input.clone();
    draft.set("for redes");
    model.drafts.insert(redes(), draft);
    update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page: redes_page() }));
    assert_eq!(model.selected, Some(redes()));
    assert_eq!(model.input.text(), "half typed\nfor redes", "old, newline, new");
    assert!(model.drafts.get(&redes()).is_none_or(|d| d.is_empty()));
    assert!(!model.drafts.contains_key(&lab()));
}

#[test]
fn a_rename_of_a_group_not_open_joins_its_draft_into_the_new_names() {
    let mut model = lab_with_a_queued_text_and_a_draft();
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 1)])));
    // #redes open with a draft; #lab's is kept aside.
    model.input.set("");
    enter(&mut model, "/msg #redes");
    type_text(&mut model, "for redes");
    let mut draft = model.input.clone();
    draft.set("half typed");
    model.drafts.insert(lab(), draft);
    update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page: redes_page() }));
    assert_eq!(model.selected, Some(redes()));
    assert_eq!(model.input.text(), "half typed\nfor redes");
    assert!(!model.drafts.contains_key(&lab()));
}

#[test]
fn a_renamed_group_seen_only_after_its_new_name_was_opened_joins_both_conversations() {
    let mut model = lab_with_a_queued_text_and_a_draft();
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary("#redes", 1)])));
    // The user opens the new group before its page is back: the page lands there, then the
    // old conversation's lines and queue join it.
    model.input.set("");
    enter(&mut model, "/msg #redes");
    assert_eq!(model.selected, Some(redes()));
    update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page: redes_page() }));
    let conversation = &model.conversations[&redes()];
    let ids: Vec<u64> = conversation.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 3, 7, 8]);
    assert_eq!(conversation.outgoing.len(), 1);
    assert!(!model.conversations.contains_key(&lab()));
}
