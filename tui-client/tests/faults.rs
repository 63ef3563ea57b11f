//! The client path under injected faults (a proxy between papo and a real plaintext server):
//! a lost acknowledgement, a connection cut mid-reply, a machine frozen until the server gives
//! up on it, two machines of one user, and messages queued across a quit.

mod common;

use common::device::{until_both, Device};
use common::fault_proxy::{Direction, FaultProxy};
use common::{ctrl, key, type_text, user};
use papo::app::{Model, Msg};
use papo::net::{NetCommand, Outgoing};
use papo_protocol::{Reply, ServerFrame};
use papo_server::testing::{unique_name, TestServer, PASSWORD};
use papo_server::tls::TlsMode;
use ratatui::crossterm::event::KeyCode;

fn plaintext_server() -> TestServer {
    TestServer::start_with(|config| config.tls = TlsMode::Off)
}

fn register(server: &TestServer, prefix: &str) -> String {
    let name = unique_name(prefix);
    server.connect().register(&name, PASSWORD).unwrap();
    name
}

/// Opens the conversation with `peer` through the quick switcher, as a user would.
fn open(device: &mut Device, peer: &str) {
    device.apply(ctrl('k'));
    for msg in type_text_msgs(peer) {
        device.apply(msg);
    }
    device.apply(key(KeyCode::Enter));
    let peer = user(peer);
    device.until("the conversation is open", |m| {
        m.selected.as_ref() == Some(&peer) && m.conversations.get(&peer).is_some_and(|c| !c.loading)
    });
}

fn type_text_msgs(text: &str) -> Vec<Msg> {
    text.chars().map(|c| key(KeyCode::Char(c))).collect()
}

fn bodies(model: &Model, peer: &str) -> Vec<(u64, String)> {
    let peer = user(peer);
    model
        .conversations
        .get(&peer)
        .map_or(Vec::new(), |c| c.messages.iter().map(|m| (m.id, m.body.clone())).collect())
}

fn unread(model: &Model) -> Vec<(String, u64)> {
    let mut counts: Vec<_> = model.contacts.iter().map(|c| (c.name.to_string(), c.unread)).collect();
    counts.sort();
    counts
}

#[test]
fn a_send_whose_ack_is_lost_is_resent_with_its_id_and_shown_once() {
    let server = plaintext_server();
    let (me, peer) = (register(&server, "me"), register(&server, "peer"));
    let proxy = FaultProxy::start(server.addr);
    let mut device = Device::start(&proxy.addr.to_string(), None);
    device.log_in(&me);
    open(&mut device, &peer);
    proxy.drop_to_client(|frame| matches!(frame, ServerFrame::Reply { result: Ok(Reply::Sent { .. }), .. }));
    type_text(&mut device.model, "exactly once");
    device.apply(key(KeyCode::Enter));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while proxy.dropped() == 0 {
        assert!(std::time::Instant::now() < deadline, "the acknowledgement never passed the proxy");
        device.pump(std::time::Duration::from_millis(20));
    }
    assert_eq!(device.model.conversations.values().map(|c| c.outgoing.len()).sum::<usize>(), 1);
    proxy.cut_current();
    device.until("the resend is acknowledged", |m| m.conversations.values().all(|c| c.outgoing.is_empty()));
    assert!(proxy.connections() >= 2, "it reconnected");
    let shown: Vec<_> =
        bodies(&device.model, &peer).into_iter().filter(|(_, b)| b == "exactly once").collect();
    assert_eq!(shown.len(), 1, "shown once: {shown:?}");
    let (mut reader, _) = server.login(&peer);
    let stored = reader.history(&me, None, 50).unwrap();
    assert_eq!(stored.messages.len(), 1, "stored once");
    assert_eq!(stored.messages[0].id, shown[0].0, "the resend got the first id");
}

#[test]
fn a_history_reply_cut_mid_frame_is_asked_again_after_the_reconnect() {
    let server = plaintext_server();
    let (me, peer) = (register(&server, "me"), register(&server, "peer"));
    let (mut writer, _) = server.login(&peer);
    for i in 0..5 {
        writer.send(&me, &format!("history {i}"), i).unwrap();
    }
    let proxy = FaultProxy::start(server.addr);
    let mut device = Device::start(&proxy.addr.to_string(), None);
    device.log_in(&me);
    // The next bytes from the server (the History reply) are cut after 6 bytes.
    proxy.cut_after(Direction::ToClient, 6);
    open(&mut device, &peer);
    device.until("the page arrived", |m| bodies(m, &peer).len() == 5);
    assert!(proxy.connections() >= 2, "the first connection was cut");

    // A dropped reply, then a cut connection: the request is reissued too.
    let other = register(&server, "other");
    let (mut third, _) = server.login(&other);
    third.send(&me, "from other", 1).unwrap();
    device.until("the message arrived", |m| !bodies(m, &other).is_empty());
    proxy.drop_to_client(|frame| matches!(frame, ServerFrame::Reply { result: Ok(Reply::History(_)), .. }));
    device.send(NetCommand::History { with: user(&other), before: None });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while proxy.dropped() == 0 {
        assert!(std::time::Instant::now() < deadline, "the reply never passed the proxy");
        device.pump(std::time::Duration::from_millis(20));
    }
    proxy.cut_current();
    let before = proxy.connections();
    device.until("reconnected", |_| proxy.connections() > before);
    device.until("loaded", |m| m.conversations.get(&user(&other)).is_some_and(|c| c.requested && !c.loading));
}

#[test]
fn two_devices_of_one_user_end_with_the_same_messages_and_unread_counts() {
    let server = plaintext_server();
    let (bob, alice, carol) =
        (register(&server, "bob"), register(&server, "alice"), register(&server, "carol"));
    let proxy = FaultProxy::start(server.addr);
    // The laptop goes through the proxy, the desk directly.
    let mut laptop = Device::start(&proxy.addr.to_string(), None);
    let mut desk = Device::start(&server.addr.to_string(), None);
    laptop.log_in(&bob);
    desk.log_in(&bob);
    open(&mut laptop, &alice);
    open(&mut desk, &alice);

    // The laptop freezes; meanwhile alice and carol write and the desk reads alice's.
    proxy.hold_current();
    let (mut alice_client, _) = server.login(&alice);
    let (mut carol_client, _) = server.login(&carol);
    alice_client.send(&bob, "while you were frozen", 1).unwrap();
    alice_client.send(&bob, "and another", 2).unwrap();
    carol_client.send(&bob, "unread on both", 1).unwrap();
    desk.until("the desk has both", |m| bodies(m, &alice).len() == 2);
    desk.until("the desk sees carol's", |m| {
        m.contacts.iter().any(|c| c.name.as_str() == carol && c.unread == 1)
    });
    // The laptop notices the silence, reconnects (pending is 0: the desk confirmed them) and
    // catches up from the server.
    until_both(&mut laptop, &mut desk, "both show the same conversation", |m| bodies(m, &alice).len() == 2);
    until_both(&mut laptop, &mut desk, "both show the same unread counts", |m| {
        m.contacts.iter().any(|c| c.name.as_str() == carol && c.unread == 1)
            && m.contacts.iter().any(|c| c.name.as_str() == alice && c.unread == 0)
    });
    assert!(proxy.connections() >= 2, "the laptop reconnected");
    assert_eq!(bodies(&laptop.model, &alice), bodies(&desk.model, &alice));
    assert_eq!(unread(&laptop.model), unread(&desk.model));

    // Reading carol's on the desk clears it on the laptop too, live.
    open(&mut desk, &carol);
    until_both(&mut laptop, &mut desk, "carol's read everywhere", |m| {
        m.contacts.iter().any(|c| c.name.as_str() == carol && c.unread == 0)
    });
    assert_eq!(unread(&laptop.model), unread(&desk.model));
}

#[test]
fn messages_queued_when_quitting_are_sent_exactly_once_at_the_next_login() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |config| config.tls = TlsMode::Off);
    let addr = server.addr;
    let (me, peer) = (register(&server, "me"), register(&server, "peer"));
    let mut device = Device::start(&addr.to_string(), Some(outbox.path()));
    device.log_in(&me);
    open(&mut device, &peer);
    server.stop().unwrap();
    device.until("offline", papo::app::Model::is_offline);
    type_text(&mut device.model, "queued then quit");
    device.apply(key(KeyCode::Enter));
    device.send(NetCommand::Send(Outgoing {
        to: user(&peer),
        body: "a second one".into(),
        client_msg_id: 42,
    }));
    assert_eq!(device.quit(), 2, "both wait in the outbox");
    drop(device);

    let server = TestServer::start_on(std::net::TcpListener::bind(addr).unwrap(), dir.path(), |c| {
        c.tls = TlsMode::Off
    });
    let mut again = Device::start(&addr.to_string(), Some(outbox.path()));
    again.log_in(&me);
    again.until("both are sent", |m| {
        bodies(m, &peer).len() == 2 && m.conversations.values().all(|c| c.outgoing.is_empty())
    });
    assert_eq!(again.quit(), 0);
    let (mut reader, _) = server.login(&peer);
    let mut stored: Vec<_> =
        reader.history(&me, None, 50).unwrap().messages.into_iter().map(|m| m.body).collect();
    stored.sort();
    assert_eq!(stored, ["a second one", "queued then quit"], "each stored exactly once");
    // Directories stay (owner-only, for the next run); no queue or lock file does.
    let files: Vec<_> = walk(outbox.path()).into_iter().filter(|p| p.is_file()).collect();
    assert_eq!(files, Vec::<std::path::PathBuf>::new(), "the outbox is empty");
}

/// Issue 14: a flood into an open conversation costs the server a bounded number of
/// receipts (one of each kind per conversation per 200 ms), and the last ones carry the
/// newest id, so nothing stays unread or undelivered.
#[test]
fn a_flood_into_an_open_conversation_sends_few_receipts_and_the_last_watermark() {
    use papo_protocol::{ClientFrame, Request};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    const FLOOD: usize = 300;
    let server = plaintext_server();
    let (me, peer) = (register(&server, "me"), register(&server, "peer"));
    let proxy = FaultProxy::start(server.addr);
    let mut device = Device::start(&proxy.addr.to_string(), None);
    device.log_in(&me);
    open(&mut device, &peer);
    // Every receipt the client sends, seen by the proxy (the rule never drops one).
    let receipts: Arc<Mutex<Vec<(&'static str, u64)>>> = Arc::default();
    let seen = Arc::clone(&receipts);
    proxy.drop_to_server(move |frame| {
        if let ClientFrame::Request { request, .. } = frame {
            match request {
                Request::Delivered { up_to, .. } => seen.lock().unwrap().push(("delivered", *up_to)),
                Request::MarkRead { up_to, .. } => seen.lock().unwrap().push(("read", *up_to)),
                _ => {}
            }
        }
        false
    });

    let started = Instant::now();
    let (mut writer, _) = server.login(&peer);
    let mut newest = 0;
    for i in 0..FLOOD {
        let body = format!("flood {i}");
        newest = writer.send(&me, &body, u64::try_from(i).unwrap() + 1).unwrap().0;
        device.pump(Duration::ZERO);
    }
    device.until("the whole flood is shown", |m| bodies(m, &peer).len() == FLOOD);
    let deadline = Instant::now() + Duration::from_secs(10);
    let last =
        |kind: &str| receipts.lock().unwrap().iter().filter(|(k, _)| *k == kind).map(|(_, id)| *id).max();
    while last("delivered") != Some(newest) || last("read") != Some(newest) {
        assert!(
            Instant::now() < deadline,
            "the newest watermark was never sent: {:?}",
            receipts.lock().unwrap()
        );
        device.pump(Duration::from_millis(20));
    }
    let intervals = usize::try_from(started.elapsed().as_millis() / 200).unwrap() + 2;
    let receipts = receipts.lock().unwrap().clone();
    for kind in ["delivered", "read"] {
        let count = receipts.iter().filter(|(k, _)| *k == kind).count();
        println!("{kind}: {count} receipts for {FLOOD} messages in {:?}", started.elapsed());
        assert!(count <= intervals, "{count} {kind} receipts in {intervals} intervals");
        assert!(count < FLOOD / 3, "{count} {kind} receipts for {FLOOD} messages");
    }
    // The server agrees: nothing from the peer is unread.
    device.until("the contact shows nothing unread", |m| {
        m.contacts.iter().any(|c| c.name.as_str() == peer && c.unread == 0)
    });
    let (mut reader, _) = server.login(&me);
    let contacts = reader.contacts().unwrap();
    let unread = contacts.iter().find(|c| c.name.as_str() == peer).map(|c| c.unread);
    assert_eq!(unread, Some(0), "the server has every message read");
}

/// Two windows of one user on one machine share the outbox directory: each keeps its own
/// queue, and what the one that quit left is sent by the other once the server is back,
/// exactly once, with nothing left behind.
#[test]
fn two_windows_of_one_user_lose_nothing_and_send_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |config| config.tls = TlsMode::Off);
    let addr = server.addr;
    let (me, peer) = (register(&server, "me"), register(&server, "peer"));
    let mut left = Device::start(&addr.to_string(), Some(outbox.path()));
    let mut right = Device::start(&addr.to_string(), Some(outbox.path()));
    left.log_in(&me);
    right.log_in(&me);
    open(&mut left, &peer);
    open(&mut right, &peer);
    server.stop().unwrap();
    left.until("offline", papo::app::Model::is_offline);
    right.until("offline", papo::app::Model::is_offline);
    type_text(&mut left.model, "from the left window");
    left.apply(key(KeyCode::Enter));
    type_text(&mut right.model, "from the right window");
    right.apply(key(KeyCode::Enter));
    assert_eq!(left.quit(), 1, "the left window's message waits on disk");

    let server = TestServer::start_on(std::net::TcpListener::bind(addr).unwrap(), dir.path(), |c| {
        c.tls = TlsMode::Off
    });
    right.until("both are sent", |m| {
        bodies(m, &peer).len() == 2 && m.conversations.values().all(|c| c.outgoing.is_empty())
    });
    assert_eq!(right.quit(), 0);
    let mut again = Device::start(&addr.to_string(), Some(outbox.path()));
    again.log_in(&me);
    open(&mut again, &peer);
    assert_eq!(again.quit(), 0, "nothing was left to send");
    let (mut reader, _) = server.login(&peer);
    let mut stored: Vec<_> =
        reader.history(&me, None, 50).unwrap().messages.into_iter().map(|m| m.body).collect();
    stored.sort();
    assert_eq!(stored, ["from the left window", "from the right window"], "each stored exactly once");
    let files: Vec<_> = walk(outbox.path()).into_iter().filter(|p| p.is_file()).collect();
    assert_eq!(files, Vec::<std::path::PathBuf>::new(), "nothing left in the outbox");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

/// A connection the server drops reads as what happened, on the command line too.
#[test]
fn a_dropped_connection_is_said_in_words_not_an_os_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1) {
            // Read the hello, then go away with it unanswered.
            let mut stream = stream.unwrap();
            let mut hello = [0u8; 4];
            let _ = std::io::Read::read(&mut stream, &mut hello);
            drop(stream);
        }
    });
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_papo"))
        .args(["contacts", "--plaintext", "--server", &addr.to_string(), "--user", "ana"])
        .env("PAPO_PASSWORD", PASSWORD)
        .env("HOME", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("os error"), "{stderr}");
    assert!(
        stderr.contains("the server closed the connection")
            || stderr.contains("the connection to the server was lost"),
        "{stderr}"
    );
}
