//! Live and offline delivery, multiple sessions, history, contacts and receipts.

mod common;

use common::{contacts, history, next_message, TestServer};
use papo_protocol::{Client, ClientError, ErrorCode, Event, ReceiptKind, Reply, Request};

#[test]
fn live_message_reaches_the_recipient_and_is_acknowledged_with_its_id() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let (mut bia, b) = server.user("bia");
    let (id, sent_at) = ana.send(b.name.as_str(), "olá, tudo bem? 👋", 1).unwrap();
    let got = next_message(&mut bia);
    assert_eq!(got.id, id);
    assert_eq!(got.sent_at, sent_at);
    assert_eq!(got.from, a.name);
    assert_eq!(got.to, b.name);
    assert_eq!(got.body, "olá, tudo bem? 👋");
}

#[test]
fn offline_messages_are_counted_and_delivered_at_login_until_confirmed() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let (bia, b) = server.user("bia");
    drop(bia);
    let ids: Vec<_> = (0..3).map(|i| ana.send(b.name.as_str(), &format!("m{i}"), i).unwrap().0).collect();

    let (mut bia, session) = server.login(b.name.as_str());
    assert_eq!(session.pending, 3);
    let got: Vec<_> = (0..3).map(|_| next_message(&mut bia)).collect();
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    assert_eq!(got[2].body, "m2");
    // Confirm only two: the third is still pending at the next login.
    bia.request(Request::Delivered { from: a.name.to_string(), up_to: ids[1] }).unwrap();
    drop(bia);
    let (mut bia, session) = server.login(b.name.as_str());
    assert_eq!(session.pending, 1);
    assert_eq!(next_message(&mut bia).id, ids[2]);
}

#[test]
fn every_session_of_both_users_sees_the_message() {
    let server = TestServer::start();
    let (mut ana_laptop, a) = server.user("ana");
    let (mut ana_lab, _) = server.login(a.name.as_str());
    let (mut bia_one, b) = server.user("bia");
    let (mut bia_two, _) = server.login(b.name.as_str());

    let (id, _) = ana_laptop.send(b.name.as_str(), "everyone", 7).unwrap();
    for client in [&mut bia_one, &mut bia_two, &mut ana_lab] {
        assert_eq!(next_message(client).id, id);
    }
    // The sending session gets the acknowledgement, not a copy: the next message it sees
    // is the reply.
    let (reply_id, _) = bia_two.send(a.name.as_str(), "back", 1).unwrap();
    assert_eq!(next_message(&mut ana_laptop).id, reply_id);
}

#[test]
fn resending_a_client_msg_id_stores_once() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let (mut bia, b) = server.user("bia");
    let first = ana.send(b.name.as_str(), "once", 99).unwrap();
    let again = ana.send(b.name.as_str(), "once", 99).unwrap();
    assert_eq!(first, again);
    let page = history(&mut bia, a.name.as_str(), None, 50);
    assert_eq!(page.messages.len(), 1);
    // The same client id for another message is a client's mistake, refused, never taken
    // for a resend: cris must not be told bia's message was sent to her.
    let (mut cris, c) = server.user("cris");
    for (to, body) in [(c.name.as_str(), "once"), (b.name.as_str(), "other text")] {
        match ana.send(to, body, 99) {
            Err(ClientError::Rejected(e)) => {
                assert_eq!(e.code, ErrorCode::InvalidRequest);
                assert!(e.message.contains("already used"), "{}", e.message);
            }
            other => panic!("expected an InvalidRequest error, got {other:?}"),
        }
    }
    assert!(history(&mut cris, a.name.as_str(), None, 50).messages.is_empty());
    assert_eq!(history(&mut bia, a.name.as_str(), None, 50).messages.len(), 1);
}

#[test]
fn history_pages_through_a_thousand_messages_newest_first() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let (mut bia, b) = server.user("bia");
    // Pipelined sends: all requests first, then all acknowledgements.
    let requests: Vec<_> = (0..1000u64)
        .map(|i| {
            let body = format!("message {i}");
            let sender = if i % 2 == 0 { &mut ana } else { &mut bia };
            let to = if i % 2 == 0 { b.name.as_str() } else { a.name.as_str() };
            (i % 2, sender.send_request(Request::Send { to: to.into(), body, client_msg_id: i }).unwrap())
        })
        .collect();
    for (who, request) in requests {
        let client = if who == 0 { &mut ana } else { &mut bia };
        assert!(matches!(client.wait_reply(request).unwrap(), Reply::Sent { .. }));
    }

    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = history(&mut ana, b.name.as_str(), before, 200);
        assert!(page.messages.len() <= 200);
        seen.extend(page.messages.iter().map(|m| (m.id, m.body.clone())));
        before = page.messages.last().map(|m| m.id);
        if !page.more {
            break;
        }
    }
    // Two senders interleave, so the server's ids define the order: strictly newest first.
    assert_eq!(seen.len(), 1000);
    assert!(seen.windows(2).all(|pair| pair[0].0 > pair[1].0), "pages are not newest first");
    let mut bodies: Vec<_> = seen.into_iter().map(|(_, body)| body).collect();
    bodies.sort();
    let mut expected: Vec<_> = (0..1000).map(|i| format!("message {i}")).collect();
    expected.sort();
    assert!(bodies == expected, "some messages are missing or repeated");
    // Oversized limits are clamped to a full page.
    assert_eq!(history(&mut bia, a.name.as_str(), None, 100_000).messages.len(), 200);
}

#[test]
fn contacts_show_presence_unread_and_last_message() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let (mut bia, b) = server.user("bia");
    let (cris, c) = server.user("cris");
    drop(cris);
    bia.send(a.name.as_str(), "first", 1).unwrap();
    let (last_id, _) = bia.send(a.name.as_str(), "second", 2).unwrap();

    // The server notices cris's hang-up asynchronously.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let contacts = loop {
        let contacts = contacts(&mut ana);
        if contacts.iter().any(|x| x.name == c.name && !x.online) || std::time::Instant::now() > deadline {
            break contacts;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let bia_entry = contacts.iter().find(|c| c.name == b.name).unwrap();
    assert!(bia_entry.online);
    assert_eq!(bia_entry.unread, 2);
    let last = bia_entry.last.as_ref().unwrap();
    assert_eq!((last.id, last.preview.as_str(), &last.from), (last_id, "second", &b.name));
    let cris_entry = contacts.iter().find(|x| x.name == c.name).unwrap();
    assert!(!cris_entry.online);
    assert_eq!((cris_entry.unread, cris_entry.last.is_none()), (0, true));
    assert!(contacts.iter().all(|x| x.name != a.name), "the caller is not their own contact");
}

#[test]
fn presence_events_follow_first_and_last_session() {
    let server = TestServer::start();
    let (mut ana, _) = server.user("ana");
    contacts(&mut ana); // subscribes to presence
    let (bia, b) = server.user("bia");
    assert_eq!(next_presence(&mut ana), (b.name.to_string(), true));
    let (second, _) = server.login(b.name.as_str());
    drop(bia);
    drop(second);
    // Only the last session leaving counts: exactly one offline event follows.
    assert_eq!(next_presence(&mut ana), (b.name.to_string(), false));
    let (_cris, c) = server.user("cris");
    assert_eq!(next_presence(&mut ana), (c.name.to_string(), true));
}

#[test]
fn delivered_and_read_receipts_reach_the_sender() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let (mut bia, b) = server.user("bia");
    let (id, _) = ana.send(b.name.as_str(), "did you get it?", 1).unwrap();
    let got = next_message(&mut bia);
    bia.request(Request::Delivered { from: a.name.to_string(), up_to: got.id }).unwrap();
    assert_eq!(next_receipt(&mut ana), (b.name.to_string(), ReceiptKind::Delivered, id));

    assert_eq!(contacts(&mut bia).iter().find(|c| c.name == a.name).unwrap().unread, 1);
    bia.request(Request::MarkRead { with: a.name.to_string(), up_to: id }).unwrap();
    assert_eq!(next_receipt(&mut ana), (b.name.to_string(), ReceiptKind::Read, id));
    assert_eq!(contacts(&mut bia).iter().find(|c| c.name == a.name).unwrap().unread, 0);
    let page = history(&mut ana, b.name.as_str(), None, 10);
    assert_eq!((page.peer_delivered_up_to, page.peer_read_up_to), (id, id));
    // Nobody can confirm messages that were not sent to them.
    let (mut eve, _) = server.user("eve");
    eve.request(Request::Delivered { from: a.name.to_string(), up_to: id }).unwrap();
    eve.request(Request::MarkRead { with: a.name.to_string(), up_to: id }).unwrap();
    assert_eq!(history(&mut bia, a.name.as_str(), None, 10).peer_read_up_to, 0);
}

#[test]
fn a_sessions_own_receipts_reach_the_users_other_sessions_only() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let (mut bob_desk, b) = server.user("bob");
    let (mut bob_laptop, _) = server.login(b.name.as_str());
    let (id, _) = ana.send(b.name.as_str(), "read me on one machine", 1).unwrap();
    assert_eq!(next_message(&mut bob_desk).id, id);
    assert_eq!(next_message(&mut bob_laptop).id, id);

    bob_desk.request(Request::Delivered { from: a.name.to_string(), up_to: id }).unwrap();
    bob_desk.request(Request::MarkRead { with: a.name.to_string(), up_to: id }).unwrap();
    let own = |client: &mut Client| loop {
        if let Event::OwnReceipt { peer, kind, up_to } = client.next_event().unwrap() {
            return (peer.to_string(), kind, up_to);
        }
    };
    assert_eq!(own(&mut bob_laptop), (a.name.to_string(), ReceiptKind::Delivered, id));
    assert_eq!(own(&mut bob_laptop), (a.name.to_string(), ReceiptKind::Read, id));
    // The sender hears only the ordinary receipts; the session that moved hears nothing.
    assert_eq!(next_receipt(&mut ana), (b.name.to_string(), ReceiptKind::Delivered, id));
    assert_eq!(next_receipt(&mut ana), (b.name.to_string(), ReceiptKind::Read, id));
    bob_desk.request(Request::Ping).unwrap();
    assert!(bob_desk.stream().set_read_timeout(Some(std::time::Duration::from_millis(300))).is_ok());
    assert!(bob_desk.next_event().is_err(), "the moving session got an event of its own");
    // A watermark that does not move sends nothing.
    bob_desk.request(Request::MarkRead { with: a.name.to_string(), up_to: id }).unwrap();
    bob_laptop.request(Request::Ping).unwrap();
    bob_laptop.stream().set_read_timeout(Some(std::time::Duration::from_millis(300))).unwrap();
    assert!(bob_laptop.next_event().is_err(), "an unmoved watermark was announced");
}

#[test]
fn new_accounts_are_announced_to_sessions_that_listed_contacts() {
    let server = TestServer::start();
    let (mut watcher, _) = server.user("watch");
    let (mut quiet, _) = server.user("quiet");
    contacts(&mut watcher);
    let newbie = papo_server::testing::unique_name("newbie");
    server.connect().register(&newbie, papo_server::testing::PASSWORD).unwrap();
    let announced = loop {
        if let Event::UserRegistered { user } = watcher.next_event().unwrap() {
            break user;
        }
    };
    assert_eq!(announced.as_str(), newbie);
    assert!(contacts(&mut watcher).iter().any(|c| c.name == announced && !c.online));
    // A session that never asked for contacts is not told.
    quiet.request(Request::Ping).unwrap();
    quiet.stream().set_read_timeout(Some(std::time::Duration::from_millis(300))).unwrap();
    assert!(quiet.next_event().is_err());
}

fn next_presence(client: &mut Client) -> (String, bool) {
    loop {
        if let Event::Presence { user, online } = client.next_event().unwrap() {
            return (user.to_string(), online);
        }
    }
}

fn next_receipt(client: &mut Client) -> (String, ReceiptKind, u64) {
    loop {
        if let Event::Receipt { peer, kind, up_to } = client.next_event().unwrap() {
            return (peer.to_string(), kind, up_to);
        }
    }
}

#[test]
fn bad_sends_get_typed_errors() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let (_bia, b) = server.user("bia");
    let code = |r: Result<_, papo_protocol::ClientError>| r.unwrap_err().code();
    assert_eq!(code(ana.send("ghost", "hi", 1)), Some(ErrorCode::UnknownUser));
    assert_eq!(code(ana.send("bad name", "hi", 2)), Some(ErrorCode::InvalidName));
    assert_eq!(code(ana.send(a.name.as_str(), "me", 3)), Some(ErrorCode::InvalidRequest));
    assert_eq!(code(ana.send(b.name.as_str(), "", 4)), Some(ErrorCode::InvalidRequest));
    assert_eq!(code(ana.send(b.name.as_str(), &"x".repeat(4097), 5)), Some(ErrorCode::TooLarge));
    ana.send(b.name.as_str(), &"x".repeat(4096), 6).unwrap();
}

#[test]
fn a_pipelined_burst_of_long_messages_reaches_a_reading_recipient() {
    let server = TestServer::start();
    let (mut ana, _) = server.user("ana");
    let (mut bia, b) = server.user("bia");
    // 256 pipelined sends of 4,000 bytes: one acknowledgement batch and one delivery batch
    // of more than a megabyte, larger than a connection's queue limit on its own.
    let body = "y".repeat(4000);
    let requests: Vec<_> = (0..256)
        .map(|i| {
            ana.send_request(Request::Send { to: b.name.to_string(), body: body.clone(), client_msg_id: i })
        })
        .collect::<Result<_, _>>()
        .unwrap();
    let reader = std::thread::spawn(move || (0..256).map(|_| next_message(&mut bia).id).collect::<Vec<_>>());
    for request in requests {
        assert!(matches!(ana.wait_reply(request).unwrap(), Reply::Sent { .. }));
    }
    assert_eq!(reader.join().unwrap().len(), 256);
}
