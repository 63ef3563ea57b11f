//! Group requests straight through the handlers: who hears of what, and who is refused.

use papo_protocol::{
    ErrorCode, Event, GroupInfo, GroupMessageKind, GroupName, ReceiptKind, Reply, Request, Username,
    MAX_GROUPS_PER_USER, MAX_GROUP_MEMBERS,
};

use crate::fixture::Fixture;
use crate::handlers::{deliveries, Audience, Delivery, Handled, Identity};
use crate::store::Posted;

fn code(handled: &Handled) -> Option<ErrorCode> {
    handled.reply.as_ref().and_then(|reply| reply.as_ref().err()).map(|e| e.code)
}

fn info(handled: Handled) -> GroupInfo {
    match handled.reply {
        Some(Ok(Reply::Group(info))) => info,
        other => panic!("expected a group, got {other:?}"),
    }
}

/// Three users logged in, the first owning `#lab` with the other two in it.
fn lab(fixture: &Fixture) -> [Identity; 3] {
    let [ana, bob, cris] = ["ana", "bob", "cris"].map(|raw| fixture.login(&fixture.user(raw)).0);
    let create = Request::CreateGroup {
        name: "#lab".into(),
        members: vec![bob.name.to_string(), cris.name.to_string()],
        hide_history: false,
    };
    assert!(fixture.handle(Some(&ana), create).reply.is_some_and(|reply| reply.is_ok()));
    [ana, bob, cris]
}

fn group(raw: &str) -> GroupName {
    GroupName::parse(raw).unwrap()
}

fn sorted(mut names: Vec<Username>) -> Vec<Username> {
    names.sort();
    names
}

#[test]
fn a_new_group_answers_with_its_members_and_tells_them_they_are_in_it() {
    let fixture = Fixture::new();
    let [ana, bob] = ["ana", "bob"].map(|raw| fixture.login(&fixture.user(raw)).0);
    let create = Request::CreateGroup {
        name: "#Lab".into(),
        members: vec![bob.name.to_string(), bob.name.to_string(), ana.name.to_string()],
        hide_history: false,
    };
    let handled = fixture.handle(Some(&ana), create);
    let deliveries = handled.deliveries.clone();
    let info = info(handled);
    assert_eq!((info.name.as_str(), &info.owner), ("#lab", &ana.name));
    let members: Vec<Username> = info.members.iter().map(|member| member.name.clone()).collect();
    assert_eq!(members, sorted(vec![ana.name.clone(), bob.name.clone()]));
    let [Delivery { to: Audience::Users(to), events }, Delivery { to: Audience::OwnOtherSessions, .. }] =
        &deliveries[..]
    else {
        panic!("expected the members and the owner's other sessions: {deliveries:?}");
    };
    assert_eq!(to, std::slice::from_ref(&bob.name));
    assert!(matches!(&events[..], [Event::GroupMessage(line)] if line.kind == GroupMessageKind::Created));
}

#[test]
fn a_text_is_acknowledged_once_durable_and_goes_to_every_other_member_once() {
    let fixture = Fixture::new();
    let [ana, bob, cris] = lab(&fixture);
    let (reply, line) = fixture.send_group(&bob, "#lab", "oi", 1);
    let line = line.expect("stored just now");
    assert_eq!(reply, Ok(Reply::Sent { id: line.id, sent_at: line.sent_at }));
    let group = fixture.shared().store.membership(&bob.name, &line.group).unwrap().unwrap().id;
    let posted = Posted::Group { group, message: line.clone() };
    let sent = deliveries(&fixture.shared().store, vec![posted]);
    let event = Event::GroupMessage(line);
    assert_eq!(
        sent,
        [
            Delivery { to: Audience::Users(sorted(vec![ana.name, cris.name])), events: vec![event.clone()] },
            Delivery { to: Audience::OwnOtherSessions, events: vec![event] },
        ]
    );
    // A resend is answered as the original and delivered to nobody again.
    let (again, deliver) = fixture.send_group(&bob, "#lab", "oi", 1);
    assert_eq!((again, deliver), (reply, None));
}

#[test]
fn outsiders_hear_the_same_for_a_group_they_are_not_in_as_for_none_at_all() {
    let fixture = Fixture::new();
    lab(&fixture);
    let (eve, _) = fixture.login(&fixture.user("eve"));
    for group in ["#lab", "#nothing"] {
        let requests = [
            Request::History { with: group.into(), before: None, limit: 10 },
            Request::GroupInfo { group: group.into() },
            Request::AddMembers { group: group.into(), members: vec![eve.name.to_string()] },
            Request::LeaveGroup { group: group.into() },
            Request::MarkRead { with: group.into(), up_to: u64::MAX },
            Request::Delivered { from: group.into(), up_to: u64::MAX },
            Request::DeleteGroup { group: group.into() },
        ];
        for request in requests {
            let shown = format!("{request:?}");
            let handled = fixture.handle(Some(&eve), request);
            assert_eq!(code(&handled), Some(ErrorCode::NoSuchGroup), "{shown}");
            assert!(handled.deliveries.is_empty(), "{shown}");
        }
        let (sent, line) = fixture.send_group(&eve, group, "let me in", 1);
        assert_eq!((sent.unwrap_err().code, line), (ErrorCode::NoSuchGroup, None), "{group}");
    }
    let handled = fixture.handle(Some(&eve), Request::Groups);
    assert_eq!(handled.reply, Some(Ok(Reply::Groups(Vec::new()))));
}

#[test]
fn a_removed_member_is_told_and_can_neither_send_nor_read_nor_receive() {
    let fixture = Fixture::new();
    let [ana, bob, cris] = lab(&fixture);
    let remove = Request::RemoveMember { group: "#lab".into(), member: bob.name.to_string() };
    let handled = fixture.handle(Some(&ana), remove);
    assert_eq!(handled.reply, Some(Ok(Reply::Done)));
    let told = handled.deliveries.iter().find(|delivery| delivery.to == Audience::User(bob.name.clone()));
    let removed = Event::GroupRemoved { group: group("#lab"), by: ana.name.clone() };
    assert_eq!(told.map(|delivery| &delivery.events[..]), Some(&[removed][..]));
    let line = handled.deliveries.iter().find_map(|delivery| match (&delivery.to, &delivery.events[..]) {
        (Audience::Users(to), [Event::GroupMessage(line)]) => Some((to.clone(), line.kind.clone())),
        _ => None,
    });
    assert_eq!(line, Some((vec![cris.name.clone()], GroupMessageKind::Removed { member: bob.name.clone() })));

    let (sent, _) = fixture.send_group(&bob, "#lab", "still here?", 1);
    assert_eq!(sent.unwrap_err().code, ErrorCode::NoSuchGroup);
    let history = Request::History { with: "#lab".into(), before: None, limit: 10 };
    assert_eq!(code(&fixture.handle(Some(&bob), history)), Some(ErrorCode::NoSuchGroup));
    let (_, line) = fixture.send_group(&cris, "#lab", "after bob", 1);
    let store = &fixture.shared().store;
    let pending = store.pending_after(&bob.name, 0, 100).unwrap();
    assert!(pending.iter().all(|posted| posted.id() != line.as_ref().unwrap().id), "{pending:?}");
    assert!(!store
        .member_names(store.membership(&cris.name, &group("#lab")).unwrap().unwrap().id)
        .unwrap()
        .contains(&bob.name));
}

#[test]
fn only_the_owner_changes_the_group_and_the_owner_cannot_walk_away_from_it() {
    let fixture = Fixture::new();
    let [ana, bob, cris] = lab(&fixture);
    let by_member = [
        Request::AddMembers { group: "#lab".into(), members: vec![ana.name.to_string()] },
        Request::RemoveMember { group: "#lab".into(), member: cris.name.to_string() },
        Request::RenameGroup { group: "#lab".into(), to: "#mine".into() },
        Request::TransferGroup { group: "#lab".into(), to: bob.name.to_string() },
        Request::DeleteGroup { group: "#lab".into() },
    ];
    for request in by_member {
        let shown = format!("{request:?}");
        assert_eq!(code(&fixture.handle(Some(&bob), request)), Some(ErrorCode::NotGroupOwner), "{shown}");
    }
    let leave = Request::LeaveGroup { group: "#lab".into() };
    assert_eq!(code(&fixture.handle(Some(&ana), leave.clone())), Some(ErrorCode::InvalidRequest));
    let transfer = Request::TransferGroup { group: "#lab".into(), to: bob.name.to_string() };
    assert_eq!(fixture.handle(Some(&ana), transfer).reply, Some(Ok(Reply::Done)));
    assert_eq!(fixture.handle(Some(&ana), leave).reply, Some(Ok(Reply::Done)));
    let info = info(fixture.handle(Some(&bob), Request::GroupInfo { group: "#lab".into() }));
    assert_eq!(info.owner, bob.name);
    assert!(info.members.iter().all(|member| member.name != ana.name));
}

#[test]
fn limits_are_refused_with_their_own_code_and_change_nothing() {
    let fixture = Fixture::new();
    let (ana, _) = fixture.login(&fixture.user("ana"));
    // Too many names is refused before any of them is looked up.
    let crowd: Vec<String> = (0..MAX_GROUP_MEMBERS).map(|i| format!("m{i}")).collect();
    let create = Request::CreateGroup { name: "#all".into(), members: crowd, hide_history: false };
    assert_eq!(code(&fixture.handle(Some(&ana), create)), Some(ErrorCode::LimitReached));
    for i in 0..MAX_GROUPS_PER_USER {
        let create = Request::CreateGroup { name: format!("#g{i}"), members: vec![], hide_history: false };
        assert!(fixture.handle(Some(&ana), create).reply.is_some_and(|reply| reply.is_ok()), "group {i}");
    }
    let create = Request::CreateGroup { name: "#onemore".into(), members: vec![], hide_history: false };
    let handled = fixture.handle(Some(&ana), create);
    assert_eq!(code(&handled), Some(ErrorCode::LimitReached));
    let Some(Ok(Reply::Groups(groups))) = fixture.handle(Some(&ana), Request::Groups).reply else {
        panic!("expected the groups");
    };
    assert_eq!(groups.len(), MAX_GROUPS_PER_USER);
    assert!(groups.iter().all(|group| group.name.as_str() != "#onemore"));
}

#[test]
fn unread_counts_and_receipts_follow_each_member() {
    let fixture = Fixture::new();
    let [ana, bob, cris] = lab(&fixture);
    let (_, first) = fixture.send_group(&ana, "#lab", "one", 1);
    let (_, second) = fixture.send_group(&ana, "#lab", "two", 2);
    let unread = |me: &Identity| {
        let Some(Ok(Reply::Groups(groups))) = fixture.handle(Some(me), Request::Groups).reply else {
            panic!("expected the groups");
        };
        groups[0].unread
    };
    assert_eq!((unread(&ana), unread(&bob), unread(&cris)), (0, 2, 2), "the sender has read what they sent");

    let first = first.unwrap().id;
    let read = fixture.handle(Some(&bob), Request::MarkRead { with: "#lab".into(), up_to: first });
    assert_eq!(read.reply, Some(Ok(Reply::Done)));
    let receipt = Event::GroupReceipt {
        group: group("#lab"),
        member: bob.name.clone(),
        kind: ReceiptKind::Read,
        up_to: first,
    };
    assert!(read
        .deliveries
        .contains(&Delivery { to: Audience::User(ana.name.clone()), events: vec![receipt] }));
    assert_eq!((unread(&bob), unread(&cris)), (1, 2));

    let second = second.unwrap().id;
    let delivered = Request::Delivered { from: "#lab".into(), up_to: second };
    assert_eq!(fixture.handle(Some(&cris), delivered.clone()).reply, Some(Ok(Reply::Done)));
    assert!(fixture.handle(Some(&cris), delivered).deliveries.is_empty(), "nothing moved the second time");
    let info = info(fixture.handle(Some(&ana), Request::GroupInfo { group: "#lab".into() }));
    let marks: Vec<(Username, u64, u64)> =
        info.members.iter().map(|m| (m.name.clone(), m.delivered_up_to, m.read_up_to)).collect();
    let bob_mark = marks.iter().find(|(name, ..)| *name == bob.name).unwrap();
    let cris_mark = marks.iter().find(|(name, ..)| *name == cris.name).unwrap();
    assert_eq!((bob_mark.1, bob_mark.2), (first, first));
    assert_eq!(cris_mark.1, second);
    assert!(cris_mark.2 < first, "delivered is not read");
}

#[test]
fn system_lines_mark_joins_leaves_and_renames_in_the_history() {
    let fixture = Fixture::new();
    let [ana, bob, _] = lab(&fixture);
    let (dan, _) = fixture.login(&fixture.user("dan"));
    let add = Request::AddMembers { group: "#lab".into(), members: vec![dan.name.to_string()] };
    assert_eq!(fixture.handle(Some(&ana), add).reply, Some(Ok(Reply::Done)));
    assert_eq!(
        fixture.handle(Some(&bob), Request::LeaveGroup { group: "#lab".into() }).reply,
        Some(Ok(Reply::Done))
    );
    let rename = Request::RenameGroup { group: "#lab".into(), to: "#lab2".into() };
    assert_eq!(fixture.handle(Some(&ana), rename).reply, Some(Ok(Reply::Done)));
    let old = Request::History { with: "#lab".into(), before: None, limit: 10 };
    assert_eq!(code(&fixture.handle(Some(&dan), old)), Some(ErrorCode::NoSuchGroup));
    let history = Request::History { with: "#lab2".into(), before: None, limit: 10 };
    let Some(Ok(Reply::GroupHistory(page))) = fixture.handle(Some(&dan), history).reply else {
        panic!("expected a page");
    };
    let kinds: Vec<GroupMessageKind> = page.messages.iter().map(|line| line.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            GroupMessageKind::Renamed { from: group("#lab") },
            GroupMessageKind::Left,
            GroupMessageKind::Added { member: dan.name.clone() },
            GroupMessageKind::Created,
        ],
        "newest first, and the member added later sees what came before"
    );
    assert!(!page.more);
}

#[test]
fn a_deleted_group_is_gone_for_everyone_who_was_in_it() {
    let fixture = Fixture::new();
    let [ana, bob, cris] = lab(&fixture);
    let handled = fixture.handle(Some(&ana), Request::DeleteGroup { group: "#lab".into() });
    assert_eq!(handled.reply, Some(Ok(Reply::Done)));
    let deleted = Event::GroupDeleted { group: group("#lab"), by: ana.name.clone() };
    assert_eq!(
        handled.deliveries,
        [
            Delivery {
                to: Audience::Users(sorted(vec![bob.name.clone(), cris.name])),
                events: vec![deleted.clone()]
            },
            Delivery { to: Audience::OwnOtherSessions, events: vec![deleted] },
        ]
    );
    let (sent, _) = fixture.send_group(&bob, "#lab", "hello?", 1);
    assert_eq!(sent.unwrap_err().code, ErrorCode::NoSuchGroup);
    // The name is free again.
    let create = Request::CreateGroup { name: "#lab".into(), members: vec![], hide_history: false };
    assert!(fixture.handle(Some(&bob), create).reply.is_some_and(|reply| reply.is_ok()));
}
