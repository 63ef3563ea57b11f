//! `Send`, `History`, `Contacts`, `MarkRead` and `Delivered`, straight through the handlers.

use std::sync::Arc;

use papo_protocol::{ChatMessage, ErrorCode, Event, ReceiptKind, Reply, Request, Username, MAX_BODY_LEN};

use super::{deliveries, settle, CONTACTS_PAGE, HISTORY_PAGE_BYTES};
use crate::fixture::Fixture;
use crate::handlers::{Audience, Delivery, Handled, Identity, Then};
use crate::memory::{Pipe, PEER};
use crate::store::{Appended, Posted, Refusal, StoreError};

fn code(handled: &Handled) -> Option<ErrorCode> {
    handled.reply.as_ref().and_then(|reply| reply.as_ref().err()).map(|e| e.code)
}

/// Two users, the first logged in.
fn pair(fixture: &Fixture) -> (Identity, Username) {
    let (me, _) = fixture.login(&fixture.user("ana"));
    (me, fixture.user("bia"))
}

#[test]
fn a_send_is_acknowledged_once_durable_and_delivered_to_both_sides() {
    let fixture = Fixture::new();
    let (me, bia) = pair(&fixture);
    let (reply, stored) = fixture.send(&me, bia.as_str(), "oi", 7);
    let stored = stored.expect("stored just now");
    assert_eq!(reply, Ok(Reply::Sent { id: stored.id, sent_at: stored.sent_at }));
    assert_eq!((&stored.from, &stored.to, stored.body.as_str()), (&me.name, &bia, "oi"));
    let page = fixture.shared().store.history(&bia, &me.name, None, 10).unwrap();
    assert_eq!(page.messages, [stored]);
}

#[test]
fn a_resend_gets_the_original_and_a_reused_client_id_is_refused() {
    let fixture = Fixture::new();
    let (me, bia) = pair(&fixture);
    let (first, _) = fixture.send(&me, bia.as_str(), "oi", 7);
    let (again, deliver) = fixture.send(&me, bia.as_str(), "oi", 7);
    assert_eq!(
        (again, deliver),
        (first, None),
        "a resend is acknowledged as the original, not delivered again"
    );
    let (reused, deliver) = fixture.send(&me, bia.as_str(), "something else", 7);
    assert_eq!((reused.unwrap_err().code, deliver), (ErrorCode::InvalidRequest, None));
    assert_eq!(fixture.shared().store.history(&bia, &me.name, None, 10).unwrap().messages.len(), 1);
}

#[test]
fn sends_to_nobody_to_oneself_empty_or_too_long_are_refused() {
    let fixture = Fixture::new();
    let (me, bia) = pair(&fixture);
    let cases = [
        ("nobody-here", "hi".to_owned(), ErrorCode::UnknownUser),
        ("../bia", "hi".to_owned(), ErrorCode::InvalidName),
        (me.name.as_str(), "hi".to_owned(), ErrorCode::InvalidRequest),
        (bia.as_str(), String::new(), ErrorCode::InvalidRequest),
        (bia.as_str(), "x".repeat(MAX_BODY_LEN + 1), ErrorCode::TooLarge),
    ];
    for (to, body, expected) in cases {
        let (reply, deliver) = fixture.send(&me, to, &body, 1);
        assert_eq!((reply.unwrap_err().code, deliver), (expected, None), "to {to:?}, {} bytes", body.len());
    }
    assert!(fixture.send(&me, bia.as_str(), &"x".repeat(MAX_BODY_LEN), 2).0.is_ok(), "the limit itself fits");
}

#[test]
fn a_send_on_a_full_disk_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (ana, bia) = {
        let fixture = Fixture::in_dir(dir.path(), |_| {});
        (fixture.user("ana"), fixture.user("bia"))
    };
    let fixture = Fixture::in_dir(dir.path(), |config| config.store.reserve_bytes = u64::MAX);
    let (me, _) = fixture.login(&ana);
    let (reply, deliver) = fixture.send(&me, bia.as_str(), "oi", 1);
    assert_eq!((reply.unwrap_err().code, deliver), (ErrorCode::StorageFull, None));
}

#[test]
fn settling_maps_each_store_answer_to_its_reply() {
    let name = Username::parse("ana").unwrap();
    let message = ChatMessage { id: 5, from: name.clone(), to: name, body: "b".into(), sent_at: 9 };
    let stored = settle(Ok(Appended::New(Posted::Direct(message.clone())))).unwrap();
    assert_eq!(
        (stored.reply, stored.deliver),
        (Ok(Reply::Sent { id: 5, sent_at: 9 }), Some(Posted::Direct(message.clone())))
    );
    let resent = settle(Ok(Appended::Resent(Posted::Direct(message)))).unwrap();
    assert_eq!((resent.reply, resent.deliver), (Ok(Reply::Sent { id: 5, sent_at: 9 }), None));
    let reused = settle(Ok(Appended::Reused { original: 3 })).unwrap();
    assert_eq!(reused.reply.unwrap_err().code, ErrorCode::InvalidRequest);
    let refused = settle(Ok(Appended::Refused(Refusal::NoSuchGroup))).unwrap();
    assert_eq!((refused.reply.unwrap_err().code, refused.deliver), (ErrorCode::NoSuchGroup, None));
    let full = settle(Err(StoreError::StorageFull { dir: "/d".into(), free: 0, reserve: 1 })).unwrap();
    assert_eq!(full.reply.unwrap_err().code, ErrorCode::StorageFull);
    assert!(settle(Err(StoreError::Stopped)).is_none(), "an unknown outcome gets no reply");
}

#[test]
fn deliveries_go_to_each_recipient_in_order_and_all_to_the_senders_other_sessions() {
    let fixture = Fixture::new();
    let [ana, bia, caio] = ["ana", "bia", "caio"].map(|name| Username::parse(name).unwrap());
    let message = |id, to: &Username| ChatMessage {
        id,
        from: ana.clone(),
        to: to.clone(),
        body: "b".into(),
        sent_at: 0,
    };
    let messages = [message(1, &caio), message(2, &bia), message(3, &caio)];
    let events = |ids: &[usize]| ids.iter().map(|&i| Event::Message(messages[i].clone())).collect::<Vec<_>>();
    let posted = messages.iter().cloned().map(Posted::Direct).collect();
    assert_eq!(
        deliveries(&fixture.shared().store, posted),
        [
            Delivery { to: Audience::User(bia.clone()), events: events(&[1]) },
            Delivery { to: Audience::User(caio.clone()), events: events(&[0, 2]) },
            Delivery { to: Audience::OwnOtherSessions, events: events(&[0, 1, 2]) },
        ]
    );
    assert!(deliveries(&fixture.shared().store, Vec::new()).is_empty());
}

fn history(fixture: &Fixture, me: &Identity, with: &str, before: Option<u64>, limit: u32) -> Handled {
    fixture.handle(Some(me), Request::History { with: with.into(), before, limit })
}

fn page(handled: Handled) -> papo_protocol::HistoryPage {
    match handled.reply {
        Some(Ok(Reply::History(page))) => page,
        other => panic!("no page: {other:?}"),
    }
}

#[test]
fn history_pages_newest_first_with_its_limit_clamped() {
    let fixture = Fixture::new();
    let (me, bia) = pair(&fixture);
    let ids: Vec<u64> =
        (0..5).map(|n| fixture.send(&me, bia.as_str(), &format!("m{n}"), n).1.unwrap().id).collect();
    let newest = page(history(&fixture, &me, bia.as_str(), None, 2));
    assert_eq!(newest.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[4], ids[3]]);
    assert!(newest.more);
    let older = page(history(&fixture, &me, bia.as_str(), Some(ids[3]), 200));
    assert_eq!(older.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[2], ids[1], ids[0]]);
    assert!(!older.more);
    assert_eq!(page(history(&fixture, &me, bia.as_str(), None, 0)).messages.len(), 1, "a limit of 0 means 1");
    assert_eq!(page(history(&fixture, &me, bia.as_str(), None, u32::MAX)).messages.len(), 5);
}

#[test]
fn a_history_page_of_long_messages_stops_before_it_outgrows_a_frame() {
    let fixture = Fixture::new();
    let (me, bia) = pair(&fixture);
    let count = HISTORY_PAGE_BYTES / MAX_BODY_LEN + 3;
    for n in 0..count {
        fixture.send(&me, bia.as_str(), &"x".repeat(MAX_BODY_LEN), n as u64).0.unwrap();
    }
    let long = page(history(&fixture, &me, bia.as_str(), None, 200));
    assert_eq!(long.messages.len(), HISTORY_PAGE_BYTES / MAX_BODY_LEN);
    assert!(long.more);
}

#[test]
fn history_with_nobody_or_a_bad_name_is_refused() {
    let fixture = Fixture::new();
    let (me, _) = pair(&fixture);
    assert_eq!(code(&history(&fixture, &me, "nobody-here", None, 10)), Some(ErrorCode::UnknownUser));
    assert_eq!(code(&history(&fixture, &me, "no such", None, 10)), Some(ErrorCode::InvalidName));
}

fn contacts(fixture: &Fixture, me: &Identity, after: Option<&str>) -> papo_protocol::ContactPage {
    match fixture.handle(Some(me), Request::Contacts { after: after.map(Into::into) }).reply {
        Some(Ok(Reply::Contacts(page))) => page,
        other => panic!("no contacts: {other:?}"),
    }
}

#[test]
fn contacts_list_everyone_else_with_presence_and_unread_counts_and_subscribe() {
    let fixture = Fixture::new();
    let (me, bia) = pair(&fixture);
    let (caio, _) = fixture.login(&fixture.user("caio"));
    fixture.send(&caio, me.name.as_str(), "oi", 1).0.unwrap();
    // Me as session 1, caio online as session 2.
    let (mine, theirs) = (Pipe::new(usize::MAX), Pipe::new(usize::MAX));
    fixture.shared().hub.join(&me.name, 1, Arc::clone(&mine) as _, PEER, 0);
    fixture.shared().hub.join(&caio.name, 2, Arc::clone(&theirs) as _, PEER, 0);
    let page = contacts(&fixture, &me, None);
    assert_eq!(page.next_after, None);
    let listed: Vec<_> = page.contacts.iter().map(|c| (c.name.clone(), c.online, c.unread)).collect();
    assert_eq!(listed, [(bia.clone(), false, 0), (caio.name.clone(), true, 1)]);
    // Subscribed: bia coming online reaches session 1.
    fixture.shared().hub.join(&bia, 3, Pipe::new(usize::MAX), PEER, 0);
    let mut buf = vec![0; 256];
    let n = mine.read(&mut buf, Some(std::time::Duration::ZERO)).unwrap();
    let (frame, _) =
        papo_protocol::frame::decode::<papo_protocol::ServerFrame>(&buf[..n], papo_protocol::MAX_FRAME_LEN)
            .unwrap()
            .unwrap();
    assert_eq!(frame, papo_protocol::ServerFrame::Event(Event::Presence { user: bia, online: true }));
}

#[test]
fn contacts_come_in_pages() {
    let fixture = Fixture::new();
    let (me, _) = fixture.login(&fixture.user("aaa"));
    // Everyone else, in name order.
    let others: Vec<Username> = (0..CONTACTS_PAGE + 5).map(|_| fixture.user("p")).collect();
    let first = contacts(&fixture, &me, None);
    assert_eq!(first.contacts.len(), CONTACTS_PAGE);
    let after = first.next_after.expect("more follow");
    let second = contacts(&fixture, &me, Some(after.as_str()));
    assert_eq!(second.next_after, None);
    let mut listed: Vec<Username> =
        first.contacts.into_iter().chain(second.contacts).map(|c| c.name).collect();
    let mut expected = others;
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    let refused = fixture.handle(Some(&me), Request::Contacts { after: Some("no such".into()) });
    assert_eq!(code(&refused), Some(ErrorCode::InvalidName));
}

#[test]
fn marking_read_or_delivered_sends_receipts_only_when_the_watermark_moves() {
    let fixture = Fixture::new();
    let (ana, bia) = pair(&fixture);
    let (bia, _) = fixture.login(&bia);
    let id = fixture.send(&ana, bia.name.as_str(), "oi", 1).1.unwrap().id;
    for (kind, request) in [
        (ReceiptKind::Delivered, Request::Delivered { from: ana.name.to_string(), up_to: id }),
        (ReceiptKind::Read, Request::MarkRead { with: ana.name.to_string(), up_to: id }),
    ] {
        let handled = fixture.handle(Some(&bia), request.clone());
        assert_eq!((&handled.reply, &handled.then), (&Some(Ok(Reply::Done)), &Then::Continue));
        assert_eq!(
            handled.deliveries,
            [
                Delivery {
                    to: Audience::User(ana.name.clone()),
                    events: vec![Event::Receipt { peer: bia.name.clone(), kind, up_to: id }]
                },
                Delivery {
                    to: Audience::OwnOtherSessions,
                    events: vec![Event::OwnReceipt { peer: ana.name.clone(), kind, up_to: id }]
                },
            ]
        );
        let again = fixture.handle(Some(&bia), request);
        assert_eq!((again.reply, again.deliveries), (Some(Ok(Reply::Done)), Vec::new()), "{kind:?} twice");
    }
    for request in [
        Request::MarkRead { with: "nobody-here".into(), up_to: 1 },
        Request::Delivered { from: "nobody-here".into(), up_to: 1 },
    ] {
        assert_eq!(code(&fixture.handle(Some(&bia), request)), Some(ErrorCode::UnknownUser));
    }
}
