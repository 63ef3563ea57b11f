//! Groups against the real server over TLS: fan-out to online, offline and multi-session
//! members, outsiders and removed members refused, limits, concurrent changes, resends and
//! a restart.

mod common;

use std::thread;

use common::*;
use papo_protocol::{Client, ErrorCode, Event, GroupMessage, GroupMessageKind, Request, MAX_GROUP_MEMBERS};

/// The next group line pushed to `client`, skipping everything else.
fn next_line(client: &mut Client) -> GroupMessage {
    loop {
        if let Event::GroupMessage(line) = client.next_event().expect("event") {
            return line;
        }
    }
}

/// The next group text pushed to `client`, skipping system lines and everything else.
fn next_text(client: &mut Client) -> GroupMessage {
    loop {
        let line = next_line(client);
        if line.kind == GroupMessageKind::Text {
            return line;
        }
    }
}

fn refused(result: Result<impl std::fmt::Debug, papo_protocol::ClientError>) -> Option<ErrorCode> {
    result.expect_err("refused").code()
}

#[test]
fn a_text_reaches_every_session_of_every_member_and_waits_for_the_offline_one() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let (mut bob, b) = server.user("bob");
    let (mut bob_phone, _) = server.login(b.name.as_str());
    let (mut ana_laptop, _) = server.login(a.name.as_str());
    let cris = unique_name("cris");
    server.connect().register(&cris, PASSWORD).unwrap();

    let info = ana.create_group("#lab", &[b.name.as_str(), &cris], false).unwrap();
    assert_eq!(info.members.len(), 3);
    let (id, _) = ana.send("#lab", "oi, grupo", 1).unwrap();
    for (who, client) in
        [("bob", &mut bob), ("bob's phone", &mut bob_phone), ("ana's laptop", &mut ana_laptop)]
    {
        let line = next_text(client);
        assert_eq!((line.id, line.body.as_str(), line.group.as_str()), (id, "oi, grupo", "#lab"), "{who}");
    }

    // cris was offline: the creation and the text wait for her login.
    let (mut cris_client, session) = server.login(&cris);
    assert_eq!(session.pending, 2);
    assert_eq!(next_line(&mut cris_client).kind, GroupMessageKind::Created);
    assert_eq!(next_text(&mut cris_client).id, id);
    cris_client.request_done(Request::Delivered { from: "#lab".into(), up_to: id }).unwrap();
    let (_, again) = server.login(&cris);
    assert_eq!(again.pending, 0, "confirmed lines are not pending any more");

    let groups = cris_client.groups().unwrap();
    assert_eq!(
        groups.iter().map(|g| (g.name.as_str(), g.members, g.unread)).collect::<Vec<_>>(),
        [("#lab", 3, 1)]
    );
    let page = cris_client.group_history("#lab", None, 10).unwrap();
    let lines: Vec<_> = page.messages.iter().map(|m| (m.id, m.kind.clone())).collect();
    assert_eq!(lines[0], (id, GroupMessageKind::Text), "newest first");
    assert_eq!((lines.len(), &lines[1].1), (2, &GroupMessageKind::Created));
}

#[test]
fn outsiders_can_neither_send_nor_read_nor_learn_that_the_group_exists() {
    let server = TestServer::start();
    let (mut ana, _) = server.user("ana");
    ana.create_group("#secret", &[], false).unwrap();
    ana.send("#secret", "for my eyes", 1).unwrap();
    let (mut eve, _) = server.user("eve");
    for group in ["#secret", "#nothing-here"] {
        assert_eq!(refused(eve.send(group, "let me in", 1)), Some(ErrorCode::NoSuchGroup), "{group}");
        assert_eq!(refused(eve.group_history(group, None, 10)), Some(ErrorCode::NoSuchGroup), "{group}");
        assert_eq!(refused(eve.group_info(group)), Some(ErrorCode::NoSuchGroup), "{group}");
        let join = Request::AddMembers { group: group.into(), members: vec!["eve".into()] };
        assert_eq!(refused(eve.request_done(join)), Some(ErrorCode::NoSuchGroup), "{group}");
    }
    assert!(eve.groups().unwrap().is_empty());
    assert_eq!(refused(eve.send("#bad name", "x", 2)), Some(ErrorCode::InvalidName));
}

#[test]
fn a_removed_member_is_told_and_gets_nothing_more() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let (mut bob, b) = server.user("bob");
    let (mut cris, c) = server.user("cris");
    ana.create_group("#lab", &[b.name.as_str(), c.name.as_str()], false).unwrap();
    let remove = Request::RemoveMember { group: "#lab".into(), member: b.name.to_string() };
    ana.request_done(remove).unwrap();
    loop {
        match bob.next_event().expect("event") {
            Event::GroupRemoved { group, by } => {
                assert_eq!((group.as_str(), &by), ("#lab", &a.name));
                break;
            }
            _ => continue,
        }
    }
    let (after, _) = ana.send("#lab", "bob is gone", 1).unwrap();
    assert_eq!(next_text(&mut cris).id, after);
    // A direct message after the group's text: whatever bob gets before it is not the text.
    cris.send(b.name.as_str(), "psst", 1).unwrap();
    loop {
        match bob.next_event().expect("event") {
            Event::Message(message) => {
                assert_eq!(message.body, "psst");
                break;
            }
            Event::GroupMessage(line) => assert!(line.id < after, "bob got {line:?} after his removal"),
            _ => continue,
        }
    }
    assert_eq!(refused(bob.send("#lab", "still here?", 2)), Some(ErrorCode::NoSuchGroup));
    assert_eq!(refused(bob.group_history("#lab", None, 10)), Some(ErrorCode::NoSuchGroup));
    let (_, session) = server.login(b.name.as_str());
    assert_eq!(session.pending, 1, "only cris's direct message waits for bob");
}

#[test]
fn a_resent_text_is_stored_and_delivered_once() {
    let server = TestServer::start();
    let (mut ana, _) = server.user("ana");
    let (mut bob, b) = server.user("bob");
    ana.create_group("#lab", &[b.name.as_str()], false).unwrap();
    let first = ana.send("#lab", "once", 7).unwrap();
    assert_eq!(ana.send("#lab", "once", 7).unwrap(), first, "a resend gets the original");
    assert_eq!(refused(ana.send("#lab", "another text", 7)), Some(ErrorCode::InvalidRequest));
    assert_eq!(next_text(&mut bob).id, first.0);
    let texts: Vec<_> = bob
        .group_history("#lab", None, 10)
        .unwrap()
        .messages
        .into_iter()
        .filter(|line| line.kind == GroupMessageKind::Text)
        .collect();
    assert_eq!(texts.len(), 1);
}

/// What a client that was offline during a rename sends later: a text stored before the
/// rename whose answer was lost, one never sent, and a receipt, all under the old name.
#[test]
fn texts_and_receipts_under_a_former_name_reach_the_renamed_group_once() {
    let server = TestServer::start();
    let (mut ana, _) = server.user("ana");
    let (mut bob, b) = server.user("bob");
    let (mut eve, _) = server.user("eve");
    ana.create_group("#lab", &[b.name.as_str()], false).unwrap();
    let before = bob.send("#lab", "sent before", 1).unwrap();
    ana.request_done(Request::RenameGroup { group: "#lab".into(), to: "#redes".into() }).unwrap();

    assert_eq!(bob.send("#lab", "sent before", 1).unwrap(), before, "a resend gets the original");
    let after = bob.send("#lab", "queued", 2).unwrap();
    bob.request_done(Request::MarkRead { with: "#lab".into(), up_to: after.0 }).unwrap();
    let texts: Vec<_> = ana
        .group_history("#redes", None, 10)
        .unwrap()
        .messages
        .into_iter()
        .filter(|line| line.kind == GroupMessageKind::Text)
        .map(|line| (line.id, line.body, line.group.to_string()))
        .collect();
    assert_eq!(
        texts,
        [
            (after.0, "queued".to_owned(), "#redes".to_owned()),
            (before.0, "sent before".into(), "#redes".into())
        ]
    );
    let info = ana.group_info("#redes").unwrap();
    let bob_read = info.members.iter().find(|member| member.name == b.name).unwrap().read_up_to;
    assert_eq!(bob_read, after.0, "the receipt under the old name counted");

    // Commands name the group as it is now; outsiders still learn nothing by the old name.
    assert_eq!(refused(bob.group_history("#lab", None, 10)), Some(ErrorCode::NoSuchGroup));
    assert_eq!(refused(eve.send("#lab", "hi", 1)), Some(ErrorCode::NoSuchGroup));
    // A group that takes the old name takes it for sends too.
    eve.create_group("#lab", &[], false).unwrap();
    assert_eq!(refused(bob.send("#lab", "late", 3)), Some(ErrorCode::NoSuchGroup));
    // And once it gives the name up too, the name reaches neither group: not eve's, which
    // bob joins only now, nor the one he may have meant.
    eve.request_done(Request::RenameGroup { group: "#lab".into(), to: "#eves".into() }).unwrap();
    eve.request_done(Request::AddMembers { group: "#eves".into(), members: vec![b.name.to_string()] })
        .unwrap();
    assert_eq!(refused(bob.send("#lab", "meant for #redes", 4)), Some(ErrorCode::NoSuchGroup));
    assert!(eve.group_history("#eves", None, 10).unwrap().messages.iter().all(|line| line.body.is_empty()));
}

#[test]
fn limits_and_owner_rights_are_refused_with_their_own_codes() {
    let server = TestServer::start();
    let (mut ana, _) = server.user("ana");
    let (mut bob, b) = server.user("bob");
    let crowd: Vec<String> = (0..MAX_GROUP_MEMBERS).map(|i| format!("m{i}")).collect();
    let crowd: Vec<&str> = crowd.iter().map(String::as_str).collect();
    assert_eq!(refused(ana.create_group("#all", &crowd, false)), Some(ErrorCode::LimitReached));
    assert_eq!(refused(ana.create_group("#lab", &["nobody-at-all"], false)), Some(ErrorCode::UnknownUser));
    ana.create_group("#lab", &[b.name.as_str()], false).unwrap();
    assert_eq!(refused(bob.create_group("#lab", &[], false)), Some(ErrorCode::NameTaken));
    let rename = Request::RenameGroup { group: "#lab".into(), to: "#bobs".into() };
    assert_eq!(refused(bob.request_done(rename)), Some(ErrorCode::NotGroupOwner));
    let leave = Request::LeaveGroup { group: "#lab".into() };
    assert_eq!(
        refused(ana.request_done(leave)),
        Some(ErrorCode::InvalidRequest),
        "the owner hands over first"
    );
}

#[test]
fn concurrent_adds_from_two_sessions_add_everyone_once() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let (ana_laptop, _) = server.login(a.name.as_str());
    let names: Vec<String> = (0..12).map(|_| unique_name("m")).collect();
    for name in &names {
        server.connect().register(name, PASSWORD).unwrap();
    }
    ana.create_group("#lab", &[], false).unwrap();
    // Both sessions add overlapping halves at once.
    let (first, second) = (names[..8].to_vec(), names[4..].to_vec());
    let adders = [(ana, first), (ana_laptop, second)].map(|(mut client, members)| {
        thread::spawn(move || {
            for member in members {
                let add = Request::AddMembers { group: "#lab".into(), members: vec![member] };
                client.request_done(add).unwrap();
            }
            client
        })
    });
    let mut clients: Vec<Client> = adders.into_iter().map(|adder| adder.join().unwrap()).collect();
    let info = clients[0].group_info("#lab").unwrap();
    let mut members: Vec<String> = info.members.iter().map(|m| m.name.to_string()).collect();
    members.sort();
    let mut expected: Vec<String> = names.iter().cloned().chain([a.name.to_string()]).collect();
    expected.sort();
    assert_eq!(members, expected);
    let added = clients[1]
        .group_history("#lab", None, 50)
        .unwrap()
        .messages
        .into_iter()
        .filter(|line| matches!(line.kind, GroupMessageKind::Added { .. }))
        .count();
    assert_eq!(added, names.len(), "one line per member added, none for the repeats");
}

#[test]
fn a_restart_keeps_groups_their_history_unread_counts_and_resends() {
    let dir = tempfile::tempdir().unwrap();
    let (ana, bob) = (unique_name("ana"), unique_name("bob"));
    let sent = {
        let server = TestServer::start_in(dir.path(), |_| {});
        server.connect().register(&bob, PASSWORD).unwrap();
        server.connect().register(&ana, PASSWORD).unwrap();
        let (mut client, _) = server.login(&ana);
        client.create_group("#lab", &[&bob], true).unwrap();
        let sent: Vec<u64> = (0..3).map(|i| client.send("#lab", &format!("t{i}"), i).unwrap().0).collect();
        server.stop().unwrap();
        sent
    };
    let server = TestServer::start_in(dir.path(), |_| {});
    let (mut bob_client, session) = server.login(&bob);
    assert_eq!(session.pending, 4, "the creation and three texts");
    let groups = bob_client.groups().unwrap();
    assert_eq!((groups[0].name.as_str(), groups[0].unread), ("#lab", 3));
    let info = bob_client.group_info("#lab").unwrap();
    assert!(info.hide_history, "settings are kept");
    let page = bob_client.group_history("#lab", None, 10).unwrap();
    let texts: Vec<u64> =
        page.messages.iter().rev().filter(|m| m.kind == GroupMessageKind::Text).map(|m| m.id).collect();
    assert_eq!(texts, sent);
    let (mut ana_client, _) = server.login(&ana);
    assert_eq!(ana_client.send("#lab", "t2", 2).unwrap().0, sent[2], "a resend is still recognised");
    assert!(ana_client.send("#lab", "after", 10).unwrap().0 > sent[2]);
}
