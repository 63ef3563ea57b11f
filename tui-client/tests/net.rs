//! The network thread against a real server: login, live traffic, receipts, and
//! reconnecting after the server restarts with queued messages sent exactly once.

mod common;

use std::net::TcpListener;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{alt, key, render, type_text};

use papo::app::ConvKey;
use papo::known_servers::KnownServers;
use papo::net::{GroupCommand, Link, NetCommand, NetEvent, NetHandle, Outgoing, Transport, TrustProblem};
use papo_protocol::{ChatMessage, ErrorCode, Event, ReceiptKind, Username};
use papo_server::testing::{unique_name, RecordingProxy, TestServer, PASSWORD};
use papo_server::tls::TlsMode;
use ratatui::crossterm::event::KeyCode;
use tempfile::TempDir;

fn spawn(server: &str, transport: Transport) -> (NetHandle, Receiver<NetEvent>) {
    let (tx, rx) = mpsc::channel();
    let handle = NetHandle::spawn(papo::net::NetConfig::new(server, transport), move |event| {
        let _ = tx.send(event);
    })
    .unwrap();
    (handle, rx)
}

/// A `known_servers` file in `dir` that trusts `server` at `addr`, as after the user said yes.
fn trusting(dir: &TempDir, addr: &str, server: &TestServer) -> Transport {
    let known = KnownServers::at(dir.path().join("known_servers"));
    known.trust(addr, server.fingerprint.expect("a TLS server")).unwrap();
    Transport::Tls(known)
}

/// The (content type, length) of each TLS record in one direction of a connection.
fn records(mut stream: &[u8]) -> Vec<(u8, usize)> {
    let mut found = Vec::new();
    while stream.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([stream[3], stream[4]]));
        found.push((stream[0], len));
        stream = &stream[(5 + len).min(stream.len())..];
    }
    found
}

/// Waits for the first event `pick` accepts, skipping others.
fn wait_for<T>(events: &Receiver<NetEvent>, mut pick: impl FnMut(NetEvent) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.checked_duration_since(Instant::now()).expect("timed out waiting for an event");
        let event = events.recv_timeout(left).expect("timed out waiting for an event");
        if let Some(found) = pick(event) {
            return found;
        }
    }
}

fn login(handle: &NetHandle, events: &Receiver<NetEvent>, name: &str) -> Username {
    wait_for(events, |e| matches!(e, NetEvent::Link(Link::Online)).then_some(()));
    handle.send(NetCommand::Login { name: name.into(), password: PASSWORD.into() });
    wait_for(events, |e| match e {
        NetEvent::LoggedIn { name, .. } => Some(name),
        _ => None,
    })
}

#[test]
fn register_log_in_chat_and_get_receipts() {
    let server = TestServer::start();
    let known = tempfile::tempdir().unwrap();
    let addr = server.addr.to_string();
    let (ana_net, ana_events) = spawn(&addr, trusting(&known, &addr, &server));
    wait_for(&ana_events, |e| matches!(e, NetEvent::Link(Link::Online)).then_some(()));
    let ana = unique_name("ana");
    ana_net.send(NetCommand::Register { name: ana.clone(), password: "short".into(), invite: None });
    let code = wait_for(&ana_events, |e| match e {
        NetEvent::AuthFailed { code, .. } => Some(code),
        _ => None,
    });
    assert_eq!(code, Some(ErrorCode::InvalidPassword));
    ana_net.send(NetCommand::Register { name: ana.clone(), password: PASSWORD.into(), invite: None });
    let ana = wait_for(&ana_events, |e| match e {
        NetEvent::LoggedIn { name, pending: 0 } => Some(name),
        _ => None,
    });

    let (_bia_client, bia) = server.user("bia");
    let (bia_net, bia_events) =
        spawn(&addr, Transport::Tls(KnownServers::at(known.path().join("known_servers"))));
    login(&bia_net, &bia_events, bia.name.as_str());
    let outgoing = Outgoing { to: ConvKey::User(bia.name.clone()), body: "olá".into(), client_msg_id: 5 };
    ana_net.send(NetCommand::Send(outgoing.clone()));
    let (sent, id, sent_at) = wait_for(&ana_events, |e| match e {
        NetEvent::Sent { outgoing, id, sent_at } => Some((outgoing, id, sent_at)),
        _ => None,
    });
    assert_eq!(sent, outgoing);
    let received = wait_for(&bia_events, |e| match e {
        NetEvent::Server(Event::Message(m)) => Some(m),
        _ => None,
    });
    let stored = ChatMessage { id, from: ana.clone(), to: bia.name.clone(), body: "olá".into(), sent_at };
    assert_eq!(received, stored);
    // The network thread confirms receipt by itself.
    let up_to = wait_for(&ana_events, |e| match e {
        NetEvent::Server(Event::Receipt { kind: ReceiptKind::Delivered, up_to, .. }) => Some(up_to),
        _ => None,
    });
    assert_eq!(up_to, stored.id);
    bia_net.send(NetCommand::MarkRead { with: ConvKey::User(ana.clone()), up_to: stored.id });
    wait_for(&ana_events, |e| {
        matches!(e, NetEvent::Server(Event::Receipt { kind: ReceiptKind::Read, .. })).then_some(())
    });
    ana_net.quit(Duration::from_secs(2));
    bia_net.quit(Duration::from_secs(2));
}

#[test]
fn messages_typed_while_the_server_is_down_are_sent_exactly_once_after_reconnecting() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {});
    let addr = server.addr;
    let (_peer_client, peer) = server.user("peer");
    let me = unique_name("me");
    server.connect().register(&me, PASSWORD).unwrap();

    let known = tempfile::tempdir().unwrap();
    let (net, events) = spawn(&addr.to_string(), trusting(&known, &addr.to_string(), &server));
    login(&net, &events, &me);
    server.stop().unwrap();
    wait_for(&events, |e| matches!(e, NetEvent::Link(Link::Offline { .. })).then_some(()));

    for i in 0..3 {
        let body = format!("queued {i}");
        net.send(NetCommand::Send(Outgoing {
            to: ConvKey::User(peer.name.clone()),
            body,
            client_msg_id: 100 + i,
        }));
    }
    let server = TestServer::start_on(TcpListener::bind(addr).unwrap(), dir.path(), |_| {});
    let mut acked = Vec::new();
    while acked.len() < 3 {
        acked.push(wait_for(&events, |e| match e {
            NetEvent::Sent { outgoing, .. } => Some(outgoing.client_msg_id),
            _ => None,
        }));
    }
    acked.sort_unstable();
    assert_eq!(acked, [100, 101, 102]);

    let (mut peer_client, _) = server.login(peer.name.as_str());
    let page = peer_client.history(&me, None, 50).unwrap();
    let mut bodies: Vec<_> = page.messages.iter().map(|m| m.body.as_str()).collect();
    bodies.sort_unstable();
    assert_eq!(bodies, ["queued 0", "queued 1", "queued 2"], "each message stored exactly once");
    net.quit(Duration::from_secs(2));
}

#[test]
fn an_unreachable_server_is_reported_and_retried() {
    // A port nobody listens on: bind, note it, close.
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (net, events) = spawn(&addr.to_string(), Transport::Plaintext);
    let reason = wait_for(&events, |e| match e {
        NetEvent::Link(Link::Offline { reason, .. }) => Some(reason),
        _ => None,
    });
    assert!(reason.contains("cannot reach"), "{reason}");
    net.send(NetCommand::Login { name: "x".into(), password: "y".into() });
    let message = wait_for(&events, |e| match e {
        NetEvent::AuthFailed { message, .. } => Some(message),
        _ => None,
    });
    assert!(message.contains("not connected"), "{message}");
    // It keeps trying: a server appearing there is picked up.
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind(addr).unwrap();
    let _server = TestServer::start_on(listener, dir.path(), |config| config.tls = TlsMode::Off);
    wait_for(&events, |e| matches!(e, NetEvent::Link(Link::Online)).then_some(()));
    net.quit(Duration::from_secs(2));
}

#[test]
fn a_new_server_is_trusted_only_when_the_user_says_so_and_a_changed_one_never() {
    let server = TestServer::start();
    let addr = server.addr.to_string();
    let me = unique_name("tofu");
    server.connect().register(&me, PASSWORD).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let known = KnownServers::at(dir.path().join("papo/known_servers"));

    // First contact: the fingerprint is shown, nothing is retried, a login goes nowhere.
    let (net, events) = spawn(&addr, Transport::Tls(known.clone()));
    let presented = wait_for(&events, |e| match e {
        NetEvent::Untrusted(TrustProblem::Unknown { presented }) => Some(presented),
        NetEvent::Link(Link::Online) => panic!("online before the user trusted the server"),
        _ => None,
    });
    assert_eq!(Some(presented), server.fingerprint);
    assert_eq!(known.lookup(&addr).unwrap(), None, "nothing remembered before the user agrees");
    net.send(NetCommand::Login { name: me.clone(), password: PASSWORD.into() });
    wait_for(&events, |e| matches!(e, NetEvent::AuthFailed { code: None, .. }).then_some(()));
    net.send(NetCommand::Trust(presented));
    login(&net, &events, &me);
    assert_eq!(known.lookup(&addr).unwrap(), Some(presented));
    net.quit(Duration::from_secs(2));

    // Later runs connect to the pinned certificate without asking.
    let (net, events) = spawn(&addr, Transport::Tls(known.clone()));
    wait_for(&events, |e| match e {
        NetEvent::Untrusted(problem) => panic!("asked again: {problem:?}"),
        NetEvent::Link(Link::Online) => Some(()),
        _ => None,
    });
    net.quit(Duration::from_secs(2));

    // Another certificate at a trusted address (a proxy that records what reaches the
    // server) is refused before the client sends anything but its TLS handshake.
    let impostor = TestServer::start();
    impostor.connect().register(&me, PASSWORD).unwrap();
    let proxy = RecordingProxy::start(impostor.addr);
    let proxied = proxy.addr.to_string();
    known.trust(&proxied, presented).unwrap();
    let (net, events) = spawn(&proxied, Transport::Tls(known.clone()));
    let problem = wait_for(&events, |e| match e {
        NetEvent::Untrusted(problem) => Some(problem),
        NetEvent::Link(Link::Online) => panic!("online with a changed certificate"),
        _ => None,
    });
    let expected = TrustProblem::Changed {
        trusted: presented,
        presented: impostor.fingerprint.unwrap(),
        file: known.path().to_owned(),
    };
    assert_eq!(problem, expected);
    net.send(NetCommand::Login { name: me.clone(), password: PASSWORD.into() });
    wait_for(&events, |e| matches!(e, NetEvent::AuthFailed { code: None, .. }).then_some(()));
    net.quit(Duration::from_secs(2));
    let connections = proxy.closed_connections();
    assert_eq!(connections.len(), 1, "no retry after a refusal");
    // The client hello (0x16), change_cipher_spec (0x14), and at most one encrypted record
    // (0x17) of 19 bytes: its alert (2 bytes, content type, 16-byte tag). Any frame, even the
    // Hello, would be a longer record.
    let sent = records(&connections[0].to_server);
    let encrypted: Vec<_> = sent.iter().filter(|(kind, _)| *kind == 0x17).collect();
    assert_eq!(sent.first().map(|r| r.0), Some(0x16), "client sent {sent:?}");
    assert!(encrypted.len() <= 1 && encrypted.iter().all(|(_, len)| *len == 19), "client sent {sent:?}");
    assert_eq!(known.lookup(&proxied).unwrap(), Some(presented), "the old entry is left alone");
}

#[test]
fn group_commands_reach_the_server_and_only_the_owner_may_kick() {
    let server = TestServer::start();
    let known = tempfile::tempdir().unwrap();
    let addr = server.addr.to_string();
    let (_ana_client, ana) = server.user("ana");
    let (_bia_client, bia) = server.user("bia");
    let (ana_net, ana_events) = spawn(&addr, trusting(&known, &addr, &server));
    login(&ana_net, &ana_events, ana.name.as_str());
    let lab = papo_protocol::GroupName::parse(&format!("#{}", unique_name("lab"))).unwrap();
    let create = GroupCommand::Create { name: lab.clone(), members: vec![bia.name.clone()] };
    ana_net.send(NetCommand::Group(create.clone()));
    let info = wait_for(&ana_events, |e| match e {
        NetEvent::Group { command, result } if command == create => Some(result),
        _ => None,
    });
    assert_eq!(info.unwrap().map(|i| i.owner), Some(ana.name.clone()));
    // The contact list follows by itself.
    wait_for(&ana_events, |e| match e {
        NetEvent::Groups(groups) => groups.iter().any(|g| g.name == lab).then_some(()),
        _ => None,
    });
    let (bia_net, bia_events) = spawn(&addr, trusting(&known, &addr, &server));
    login(&bia_net, &bia_events, bia.name.as_str());
    let kick = GroupCommand::Kick { group: lab.clone(), user: ana.name.clone() };
    bia_net.send(NetCommand::Group(kick.clone()));
    let refused = wait_for(&bia_events, |e| match e {
        NetEvent::Group { command, result } if command == kick => Some(result),
        _ => None,
    });
    assert!(refused.is_err(), "{refused:?}");
    let members = GroupCommand::Members(lab.clone());
    bia_net.send(NetCommand::Group(members.clone()));
    let info = wait_for(&bia_events, |e| match e {
        NetEvent::Group { command, result } if command == members => Some(result),
        _ => None,
    });
    let names: Vec<Username> = info.unwrap().unwrap().members.into_iter().map(|m| m.name).collect();
    assert!(names.contains(&ana.name) && names.contains(&bia.name), "{names:?}");
    ana_net.quit(Duration::from_secs(2));
    bia_net.quit(Duration::from_secs(2));
}

/// Feeds `ana`'s network events into the app until `done` holds, handing the app's commands
/// to the network thread as the real event loop does.
fn drive(
    model: &mut papo::app::Model,
    net: &NetHandle,
    events: &Receiver<NetEvent>,
    commands: Vec<NetCommand>,
    done: impl Fn(&papo::app::Model) -> bool,
) {
    for command in commands {
        net.send(command);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(model) {
        let left = deadline.checked_duration_since(Instant::now()).expect("timed out driving the app");
        let event = events.recv_timeout(left).expect("timed out driving the app");
        for command in papo::app::update(model, papo::app::Msg::Net(event)) {
            net.send(command);
        }
    }
}

/// Types `line` into the app and presses Enter; returns what it asked of the network.
fn enter(model: &mut papo::app::Model, line: &str) -> Vec<NetCommand> {
    let mut commands = type_text(model, line);
    commands.extend(papo::app::update(model, key(KeyCode::Enter)));
    commands
}

fn notice_starts(prefix: &str) -> impl Fn(&papo::app::Model) -> bool + '_ {
    move |model| model.notice.as_deref().is_some_and(|notice| notice.starts_with(prefix))
}

#[test]
fn rename_and_handover_from_the_app_through_the_real_server() {
    use papo::app::{update, Model, Msg};
    use papo_protocol::{GroupMessageKind, GroupName};
    let server = TestServer::start();
    let known = tempfile::tempdir().unwrap();
    let addr = server.addr.to_string();
    let (_ana_client, ana) = server.user("ana");
    let (_bia_client, bia) = server.user("bia");
    let (bia_net, bia_events) = spawn(&addr, trusting(&known, &addr, &server));
    login(&bia_net, &bia_events, bia.name.as_str());
    let (ana_net, ana_events) = spawn(&addr, trusting(&known, &addr, &server));
    let me = login(&ana_net, &ana_events, ana.name.as_str());
    let mut app = Model::new(addr.clone(), time::UtcOffset::UTC, (100, 24), 1);
    let mut commands = update(&mut app, Msg::Net(NetEvent::LoggedIn { name: me, pending: 0 }));
    commands.extend(update(&mut app, Msg::Net(NetEvent::Link(Link::Online))));

    let lab = GroupName::parse(&format!("#{}", unique_name("lab"))).unwrap();
    let lab_key = ConvKey::Group(lab.clone());
    commands.extend(enter(&mut app, &format!("/group create {lab} {}", bia.name)));
    drive(&mut app, &ana_net, &ana_events, commands, |app| app.contact(&lab_key).is_some());
    let commands = enter(&mut app, &format!("/msg {lab}"));
    let has_roster = |app: &Model| {
        app.conversations.get(&app.selected.clone().unwrap()).is_some_and(|c| c.roster.is_some())
    };
    drive(&mut app, &ana_net, &ana_events, commands, has_roster);
    let screen = render(&app, 100, 24).join("\n");
    assert!(screen.contains(&format!("{lab} · 2/2 online")), "{screen}");

    // The owner renames it: the app follows, and the other member is told by a line.
    let renamed = GroupName::parse(&format!("#{}", unique_name("redes"))).unwrap();
    let commands = enter(&mut app, &format!("/rename {renamed}"));
    drive(&mut app, &ana_net, &ana_events, commands, notice_starts(&format!("{lab} is now called")));
    assert_eq!(app.selected, Some(ConvKey::Group(renamed.clone())));
    assert!(render(&app, 100, 24).join("\n").contains(&format!("{renamed} · 2/2 online")));
    wait_for(&bia_events, |e| match e {
        NetEvent::Server(Event::GroupMessage(line)) => (line.group == renamed
            && line.kind == GroupMessageKind::Renamed { from: lab.clone() })
        .then_some(()),
        _ => None,
    });

    // A member who does not own it is refused, with the server's reason.
    let grab = GroupCommand::Handover { group: renamed.clone(), to: bia.name.clone() };
    bia_net.send(NetCommand::Group(grab.clone()));
    let refused = wait_for(&bia_events, |e| match e {
        NetEvent::Group { command, result } if command == grab => Some(result),
        _ => None,
    });
    assert_eq!(refused, Err("only the group's owner can do that".to_owned()));

    // The owner hands it over; from then on renaming and deleting are bia's to do.
    let commands = enter(&mut app, &format!("/handover {}", bia.name));
    drive(&mut app, &ana_net, &ana_events, commands, notice_starts(&format!("{} now owns", bia.name)));
    update(&mut app, alt(KeyCode::Char('m')));
    assert!(
        render(&app, 100, 24).join("\n").contains(&format!("{} ★", bia.name)),
        "{}",
        render(&app, 100, 24).join("\n")
    );
    let commands = enter(&mut app, "/rename #elsewhere");
    drive(&mut app, &ana_net, &ana_events, commands, notice_starts("cannot rename"));
    assert_eq!(
        app.notice.as_deref(),
        Some(format!("cannot rename {renamed} to #elsewhere: only the group's owner can do that").as_str())
    );
    let mut commands = enter(&mut app, "/delete");
    commands.extend(update(&mut app, key(KeyCode::Char('y'))));
    drive(&mut app, &ana_net, &ana_events, commands, notice_starts("cannot delete"));
    ana_net.quit(Duration::from_secs(2));
    bia_net.quit(Duration::from_secs(2));
}

/// On an `--registration invite` server the network thread carries the code: none is
/// refused with InviteRequired, an administrator's code registers and logs in.
#[test]
fn registering_with_an_invite_code_on_an_invite_server() {
    use papo_server::admin::{self, Outcome, Request};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |config| {
        config.registration =
            std::sync::Arc::new(papo_server::RegistrationPolicy::new(papo_server::Registration::Invite));
    });
    server.connect();
    let mut out = Vec::new();
    let outcome =
        admin::request(dir.path(), &Request::CreateInvite { uses: 1, expires_in_secs: None }, &mut out)
            .unwrap()
            .expect("the server answers");
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    let code = serde_json::from_slice::<admin::InviteCode>(&out).unwrap().code;

    let known = tempfile::tempdir().unwrap();
    let addr = server.addr.to_string();
    let (net, events) = spawn(&addr, trusting(&known, &addr, &server));
    wait_for(&events, |e| matches!(e, NetEvent::Link(Link::Online)).then_some(()));
    let novo = unique_name("novo");
    net.send(NetCommand::Register { name: novo.clone(), password: PASSWORD.into(), invite: None });
    let code_given = wait_for(&events, |e| match e {
        NetEvent::AuthFailed { code, .. } => Some(code),
        _ => None,
    });
    assert_eq!(code_given, Some(ErrorCode::InviteRequired));
    net.send(NetCommand::Register { name: novo.clone(), password: PASSWORD.into(), invite: Some(code) });
    let logged_in = wait_for(&events, |e| match e {
        NetEvent::LoggedIn { name, .. } => Some(name),
        NetEvent::AuthFailed { message, .. } => panic!("refused: {message}"),
        _ => None,
    });
    assert_eq!(logged_in.as_str(), novo);
    net.quit(Duration::from_secs(2));
}

/// A proxy in front of `target` for one connection, passing the server's bytes at once and
/// the client's only while the returned flag is false: what the client writes meanwhile is
/// in flight, unanswered.
fn holding_proxy(target: std::net::SocketAddr) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let held = Arc::new(AtomicBool::new(false));
    let holding = Arc::clone(&held);
    std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let server = std::net::TcpStream::connect(target).unwrap();
        let (mut from_server, mut to_client) = (server.try_clone().unwrap(), client.try_clone().unwrap());
        std::thread::spawn(move || std::io::copy(&mut from_server, &mut to_client));
        let (mut from_client, mut to_server) = (client, server);
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n @ 1..) = from_client.read(&mut buf) {
            let deadline = Instant::now() + Duration::from_secs(20);
            while holding.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if to_server.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    (addr, held)
}

#[test]
fn a_message_in_flight_when_its_group_is_renamed_is_stored_once_under_the_new_name() {
    use std::sync::atomic::Ordering;
    let server = TestServer::start();
    let (mut ana_client, _ana) = server.user("ana");
    let (_bia_client, bia) = server.user("bia");
    let old = format!("#{}", unique_name("lab"));
    let new = format!("#{}", unique_name("redes"));
    ana_client.create_group(&old, &[bia.name.as_str()], false).unwrap();

    let known = tempfile::tempdir().unwrap();
    let (proxy, held) = holding_proxy(server.addr);
    let (bia_net, bia_events) = spawn(&proxy, trusting(&known, &proxy, &server));
    login(&bia_net, &bia_events, bia.name.as_str());
    wait_for(&bia_events, |e| matches!(e, NetEvent::Groups(_)).then_some(()));

    // Written under the old name, held before the server reads it; the rename lands first.
    held.store(true, Ordering::SeqCst);
    let old_key = ConvKey::parse(&old).unwrap();
    bia_net.send(NetCommand::Send(Outgoing { to: old_key, body: "in flight".into(), client_msg_id: 77 }));
    std::thread::sleep(Duration::from_millis(200));
    ana_client
        .request_done(papo_protocol::Request::RenameGroup { group: old.clone(), to: new.clone() })
        .unwrap();
    wait_for(&bia_events, |e| match e {
        NetEvent::Server(Event::GroupMessage(line)) => (line.group.as_str() == new).then_some(()),
        _ => None,
    });
    held.store(false, Ordering::SeqCst);

    let acked = wait_for(&bia_events, |e| match e {
        NetEvent::Sent { outgoing, .. } => Some(outgoing),
        NetEvent::SendFailed { reason, .. } => panic!("refused: {reason}"),
        _ => None,
    });
    assert_eq!((acked.to.as_str(), acked.client_msg_id), (new.as_str(), 77));
    let page = ana_client.group_history(&new, None, 50).unwrap();
    let texts: Vec<_> = page.messages.iter().filter(|m| m.body == "in flight").collect();
    assert_eq!(texts.len(), 1, "stored exactly once: {:?}", page.messages);
    assert_eq!(texts[0].from, bia.name);
    bia_net.quit(Duration::from_secs(2));
}

#[test]
fn a_message_queued_offline_while_its_group_is_renamed_is_sent_once_under_the_new_name() {
    queued_offline_during_a_rename(false);
}

#[test]
fn a_message_queued_offline_during_a_rename_another_machine_saw_is_sent_once_under_the_new_name() {
    queued_offline_during_a_rename(true);
}

fn queued_offline_during_a_rename(another_machine_saw_it: bool) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {});
    let addr = server.addr;
    let (mut ana_client, ana) = server.user("ana");
    let (_bia_client, bia) = server.user("bia");
    let old = format!("#{}", unique_name("lab"));
    let new = format!("#{}", unique_name("redes"));
    ana_client.create_group(&old, &[bia.name.as_str()], false).unwrap();
    drop(ana_client);

    let known = tempfile::tempdir().unwrap();
    let (bia_net, bia_events) = spawn(&addr.to_string(), trusting(&known, &addr.to_string(), &server));
    login(&bia_net, &bia_events, bia.name.as_str());
    wait_for(&bia_events, |e| matches!(e, NetEvent::Groups(_)).then_some(()));
    server.stop().unwrap();
    wait_for(&bia_events, |e| matches!(e, NetEvent::Link(Link::Offline { .. })).then_some(()));
    let old_key = ConvKey::parse(&old).unwrap();
    bia_net.send(NetCommand::Send(Outgoing {
        to: old_key,
        body: "queued offline".into(),
        client_msg_id: 91,
    }));

    // The owner renames the group while bia's client cannot reach the server: on another
    // port, so that it does not reconnect before the rename.
    let elsewhere = TestServer::start_in(dir.path(), |_| {});
    let (mut ana_client, _) = elsewhere.login(ana.name.as_str());
    ana_client
        .request_done(papo_protocol::Request::RenameGroup { group: old.clone(), to: new.clone() })
        .unwrap();
    drop(ana_client);
    if another_machine_saw_it {
        // bia's other machine is online then: it receives the rename, so it is not pending
        // for this one at its next login.
        let (mut other_machine, _) = elsewhere.login(bia.name.as_str());
        let renamed = other_machine.group_history(&new, None, 1).unwrap().messages[0].id;
        other_machine
            .request_done(papo_protocol::Request::Delivered { from: new.clone(), up_to: renamed })
            .unwrap();
    }
    elsewhere.stop().unwrap();

    let server = TestServer::start_on(TcpListener::bind(addr).unwrap(), dir.path(), |_| {});
    let acked = wait_for(&bia_events, |e| match e {
        NetEvent::Sent { outgoing, .. } => Some(outgoing),
        NetEvent::SendFailed { reason, .. } => panic!("refused: {reason}"),
        _ => None,
    });
    // Told of the rename at login, the client moved it to the new name; otherwise the
    // server finds the group by the name it had.
    let sent_as = if another_machine_saw_it { &old } else { &new };
    assert_eq!((acked.to.as_str(), acked.client_msg_id), (sent_as.as_str(), 91));
    let (mut ana_client, _) = server.login(ana.name.as_str());
    let page = ana_client.group_history(&new, None, 50).unwrap();
    let texts: Vec<_> = page.messages.iter().filter(|m| m.body == "queued offline").collect();
    assert_eq!(texts.len(), 1, "stored exactly once: {:?}", page.messages);
    assert_eq!(texts[0].from, bia.name);
    bia_net.quit(Duration::from_secs(2));
}

#[test]
fn ctrl_f_finds_a_group_text_beside_a_direct_one_and_opens_the_group_at_it() {
    use papo::app::{update, Model, Msg};
    let server = TestServer::start();
    let (mut bia_client, bia) = server.user("bia");
    let (_ana_client, ana) = server.user("ana");
    let (_caio_client, caio) = server.user("caio");
    let lab = format!("#{}", unique_name("lab"));
    bia_client.create_group(&lab, &[ana.name.as_str()], false).unwrap();
    let (in_group, _) = bia_client.send(&lab, "the lab KEY is under the mat", 1).unwrap();
    bia_client.send(&lab, "nothing to find here", 2).unwrap();
    let (direct, _) = bia_client.send(ana.name.as_str(), "got the key?", 3).unwrap();
    let lab_key = ConvKey::parse(&lab).unwrap();

    let known = tempfile::tempdir().unwrap();
    let addr = server.addr.to_string();
    let (ana_net, ana_events) = spawn(&addr, trusting(&known, &addr, &server));
    let me = login(&ana_net, &ana_events, ana.name.as_str());
    let mut app = Model::new(addr.clone(), time::UtcOffset::UTC, (100, 24), 1);
    let mut commands = update(&mut app, Msg::Net(NetEvent::LoggedIn { name: me, pending: 0 }));
    commands.extend(update(&mut app, Msg::Net(NetEvent::Link(Link::Online))));
    commands.extend(update(&mut app, common::ctrl('f')));
    commands.extend(enter(&mut app, "key"));
    let searched = |app: &Model| app.search.as_ref().is_some_and(|s| !s.loading && s.next_before.is_none());
    drive(&mut app, &ana_net, &ana_events, commands, searched);
    let hits: Vec<_> =
        app.search.as_ref().unwrap().hits.iter().map(|hit| (hit.id, hit.conversation.clone())).collect();
    assert_eq!(hits, [(direct, ConvKey::User(bia.name.clone())), (in_group, lab_key.clone())]);
    let screen = render(&app, 100, 24).join("\n");
    assert!(
        screen.contains(&format!("{lab} · ")) && screen.contains(&format!("{}: the lab KEY", bia.name)),
        "{screen}"
    );

    // Enter on the group's match opens the group, loaded, at it.
    update(&mut app, key(KeyCode::Down));
    let commands = update(&mut app, key(KeyCode::Enter));
    let at_match = |app: &Model| {
        app.conversations
            .get(&lab_key)
            .is_some_and(|c| c.jump_to.is_none() && !c.loading && c.messages.iter().any(|m| m.id == in_group))
    };
    drive(&mut app, &ana_net, &ana_events, commands, at_match);
    assert_eq!(app.selected, Some(lab_key.clone()));
    assert_eq!(app.conversations[&lab_key].highlight, Some(in_group));

    // Searching here asks the server for this group only.
    let commands = enter(&mut app, "/search --here key");
    drive(&mut app, &ana_net, &ana_events, commands, searched);
    let ids: Vec<_> = app.search.as_ref().unwrap().hits.iter().map(|hit| hit.id).collect();
    assert_eq!(ids, [in_group]);
    ana_net.quit(Duration::from_secs(2));

    // Someone outside the group is refused, and told no more than for a group that is not.
    let (caio_net, caio_events) = spawn(&addr, trusting(&known, &addr, &server));
    login(&caio_net, &caio_events, caio.name.as_str());
    let mut refusals = Vec::new();
    for group in [lab.as_str(), "#no-such-group"] {
        let query = papo::net::SearchQuery {
            text: "key".into(),
            with: Some(ConvKey::parse(group).unwrap()),
            before: None,
        };
        caio_net.send(NetCommand::Search(query.clone()));
        refusals.push(wait_for(&caio_events, |e| match e {
            NetEvent::SearchFailed { query: failed, reason } if failed == query => Some(reason),
            NetEvent::SearchResults { query: answered, page } if answered == query => {
                panic!("an outsider read {page:?}")
            }
            _ => None,
        }));
    }
    assert_eq!(refusals[0], refusals[1]);
    assert!(refusals[0].contains("no such group"), "{refusals:?}");
    caio_net.quit(Duration::from_secs(2));
}

/// bia's machine, on a plaintext server in `dir`, with `#old` (owned by ana) open and a line
/// of ana's in it; then the server stops, and bia queues a text and types a draft.
struct OfflineInGroup {
    dir: TempDir,
    addr: std::net::SocketAddr,
    ana: String,
    bia: String,
    old: String,
    machine: common::device::Device,
}

fn offline_in_a_group() -> OfflineInGroup {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |config| config.tls = TlsMode::Off);
    let addr = server.addr;
    let (mut ana_client, ana) = server.user("ana");
    let (_bia_client, bia) = server.user("bia");
    let old = format!("#{}", unique_name("lab"));
    ana_client.create_group(&old, &[bia.name.as_str()], false).unwrap();
    ana_client.send(&old, "before the rename", 1).unwrap();
    drop(ana_client);

    let mut machine = common::device::Device::start(&addr.to_string(), None);
    machine.log_in(bia.name.as_str());
    let typed = |machine: &mut common::device::Device, text: &str| {
        for c in text.chars() {
            machine.apply(key(KeyCode::Char(c)));
        }
    };
    typed(&mut machine, &format!("/msg {old}"));
    machine.apply(key(KeyCode::Enter));
    let old_key = ConvKey::parse(&old).unwrap();
    machine.until("the group's line is shown", |m| {
        m.conversations
            .get(&old_key)
            .is_some_and(|c| c.messages.iter().any(|p| p.body == "before the rename"))
    });
    server.stop().unwrap();
    machine.until("offline", |m| matches!(m.link, Link::Offline { .. }));
    typed(&mut machine, "queued offline");
    machine.apply(key(KeyCode::Enter));
    typed(&mut machine, "half typed");
    assert_eq!(machine.model.conversations[&old_key].outgoing.len(), 1);
    OfflineInGroup { dir, addr, ana: ana.name.to_string(), bia: bia.name.to_string(), old, machine }
}

#[test]
fn the_app_follows_a_group_renamed_while_offline_with_its_lines_draft_and_queue() {
    let OfflineInGroup { dir, addr, ana, bia, old, mut machine } = offline_in_a_group();
    let new = format!("#{}", unique_name("redes"));
    // Renamed while bia's machine cannot reach the server (another port), and bia's other
    // machine acknowledges the `Renamed` line, so this one never gets it.
    let elsewhere = TestServer::start_in(dir.path(), |config| config.tls = TlsMode::Off);
    let (mut ana_client, _) = elsewhere.login(&ana);
    ana_client
        .request_done(papo_protocol::Request::RenameGroup { group: old.clone(), to: new.clone() })
        .unwrap();
    drop(ana_client);
    let (mut other_machine, _) = elsewhere.login(&bia);
    let renamed = other_machine.group_history(&new, None, 1).unwrap().messages[0].id;
    other_machine
        .request_done(papo_protocol::Request::Delivered { from: new.clone(), up_to: renamed })
        .unwrap();
    drop(other_machine);
    elsewhere.stop().unwrap();

    let server = TestServer::start_on(TcpListener::bind(addr).unwrap(), dir.path(), |config| {
        config.tls = TlsMode::Off;
    });
    let (old_key, new_key) = (ConvKey::parse(&old).unwrap(), ConvKey::parse(&new).unwrap());
    machine.until("the conversation follows the new name and the queued text is sent", |m| {
        m.selected.as_ref() == Some(&new_key)
            && m.conversations.get(&new_key).is_some_and(|c| {
                c.outgoing.is_empty() && c.messages.iter().any(|p| p.body == "queued offline")
            })
    });
    let model = &machine.model;
    assert!(model.contact(&old_key).is_none() && !model.conversations.contains_key(&old_key));
    assert!(model.contact(&new_key).is_some_and(|c| c.gone.is_none()));
    assert_eq!(model.input.text(), "half typed", "the draft moved with it");
    let bodies: Vec<&str> = model.conversations[&new_key].messages.iter().map(|p| p.body.as_str()).collect();
    assert!(bodies.contains(&"before the rename"), "{bodies:?}");
    let renames = model.conversations[&new_key]
        .messages
        .iter()
        .filter(|p| p.kind != papo_protocol::GroupMessageKind::Text);
    assert!(renames.into_iter().any(
        |p| matches!(&p.kind, papo_protocol::GroupMessageKind::Renamed { from } if from.as_str() == old)
    ));
    let screen = render(model, 100, 30).join("\n");
    assert!(screen.contains(&new) && !screen.contains(&format!("{old} ")), "{screen}");

    let (mut ana_client, _) = server.login(&ana);
    let page = ana_client.group_history(&new, None, 50).unwrap();
    let texts = page.messages.iter().filter(|m| m.body == "queued offline").count();
    assert_eq!(texts, 1, "stored exactly once: {:?}", page.messages);
}

#[test]
fn the_app_marks_a_group_deleted_while_offline_gone_and_shows_why_its_queued_text_failed() {
    let OfflineInGroup { dir, addr, ana, old, mut machine, .. } = offline_in_a_group();
    let elsewhere = TestServer::start_in(dir.path(), |config| config.tls = TlsMode::Off);
    let (mut ana_client, _) = elsewhere.login(&ana);
    ana_client.request_done(papo_protocol::Request::DeleteGroup { group: old.clone() }).unwrap();
    drop(ana_client);
    elsewhere.stop().unwrap();

    let _server = TestServer::start_on(TcpListener::bind(addr).unwrap(), dir.path(), |config| {
        config.tls = TlsMode::Off;
    });
    let old_key = ConvKey::parse(&old).unwrap();
    machine.until("the group is gone and its queued text failed", |m| {
        m.contact(&old_key).is_some_and(|c| c.gone.is_some())
            && m.conversations.get(&old_key).is_some_and(|c| c.outgoing.iter().all(|o| o.failed.is_some()))
    });
    let model = &machine.model;
    let conversation = &model.conversations[&old_key];
    assert_eq!(conversation.outgoing.len(), 1, "reported failed, not dropped");
    assert!(conversation.messages.iter().any(|p| p.body == "before the rename"), "what it showed stays");
    assert_eq!(model.selected.as_ref(), Some(&old_key));
    let gone = format!("you are no longer in {old}, or it was deleted");
    assert_eq!(model.contact(&old_key).and_then(|c| c.gone.as_deref()), Some(gone.as_str()));
    let failed = conversation.outgoing[0].failed.as_deref();
    assert_eq!(failed, Some("there is no such group, or you are not in it"), "the server's reason");
    let screen = render(model, 100, 30);
    let header = screen.iter().find(|row| row.contains(&format!(" {old} "))).cloned().unwrap_or_default();
    assert!(header.contains(&gone), "{header}");
    assert!(screen.join("\n").contains("queued offline"));
}

#[test]
fn the_app_never_follows_a_group_deleted_while_offline_to_a_new_group_renamed_from_its_name() {
    let OfflineInGroup { dir, addr, ana, bia, old, mut machine } = offline_in_a_group();
    // While bia's machine is offline #old is deleted, and eve creates another #old, renames
    // it and adds bia: its newest page says "renamed from #old", but it is not bia's group.
    let secret = format!("#{}", unique_name("secret"));
    let elsewhere = TestServer::start_in(dir.path(), |config| config.tls = TlsMode::Off);
    let (mut ana_client, _) = elsewhere.login(&ana);
    ana_client.request_done(papo_protocol::Request::DeleteGroup { group: old.clone() }).unwrap();
    drop(ana_client);
    let (mut eve_client, _) = elsewhere.user("eve");
    eve_client.create_group(&old, &[], false).unwrap();
    eve_client.send(&old, "for eve's group only", 1).unwrap();
    eve_client
        .request_done(papo_protocol::Request::RenameGroup { group: old.clone(), to: secret.clone() })
        .unwrap();
    let members = vec![bia.clone()];
    eve_client.request_done(papo_protocol::Request::AddMembers { group: secret.clone(), members }).unwrap();
    drop(eve_client);
    // bia's other machine acknowledges being added, so this one hears of #secret only from
    // the list of groups, where it is new and its page says "renamed from #old".
    let (mut other_machine, _) = elsewhere.login(&bia);
    let added = other_machine.group_history(&secret, None, 1).unwrap().messages[0].id;
    other_machine
        .request_done(papo_protocol::Request::Delivered { from: secret.clone(), up_to: added })
        .unwrap();
    drop(other_machine);
    elsewhere.stop().unwrap();

    let _server = TestServer::start_on(TcpListener::bind(addr).unwrap(), dir.path(), |config| {
        config.tls = TlsMode::Off;
    });
    let (old_key, secret_key) = (ConvKey::parse(&old).unwrap(), ConvKey::parse(&secret).unwrap());
    machine.until("#old is marked gone, #secret is listed and the queued text is answered", |m| {
        m.contact(&old_key).is_some_and(|c| c.gone.is_some())
            && m.contact(&secret_key).is_some()
            && m.conversations.get(&old_key).is_some_and(|c| c.outgoing.iter().all(|o| o.failed.is_some()))
    });
    let model = &machine.model;
    assert_eq!(model.selected.as_ref(), Some(&old_key), "the open conversation stays where it was");
    assert_eq!(model.input.text(), "half typed", "and so does its draft");
    let conversation = &model.conversations[&old_key];
    assert!(conversation.messages.iter().any(|p| p.body == "before the rename"), "its lines stay");
    let moved = model.conversations.get(&secret_key).is_some_and(|c| {
        !c.outgoing.is_empty()
            || c.messages.iter().any(|p| p.body == "before the rename" || p.body == "queued offline")
    });
    assert!(!moved, "nothing of #old moved into {secret}");
    let gone = format!("you are no longer in {old}, or it was deleted");
    assert_eq!(model.contact(&old_key).and_then(|c| c.gone.as_deref()), Some(gone.as_str()));
}

#[test]
fn group_holds_line_asks_the_server_whether_a_group_holds_a_line_under_any_later_name() {
    let server = TestServer::start();
    let known = tempfile::tempdir().unwrap();
    let addr = server.addr.to_string();
    let (mut ana_client, _) = server.user("ana");
    let (_bia_client, bia) = server.user("bia");
    let (lab, other) = (format!("#{}", unique_name("lab")), format!("#{}", unique_name("other")));
    ana_client.create_group(&lab, &[bia.name.as_str()], false).unwrap();
    ana_client.create_group(&other, &[bia.name.as_str()], false).unwrap();
    let (line, _) = ana_client.send(&lab, "the line bia holds", 1).unwrap();
    // Newer lines in both groups: only the one line asked for counts.
    ana_client.send(&lab, "later", 2).unwrap();
    ana_client.send(&other, "in the other group", 3).unwrap();
    let redes = format!("#{}", unique_name("redes"));
    ana_client.request_done(papo_protocol::Request::RenameGroup { group: lab, to: redes.clone() }).unwrap();

    let (bia_net, bia_events) = spawn(&addr, trusting(&known, &addr, &server));
    login(&bia_net, &bia_events, bia.name.as_str());
    let ask = |group: &str| {
        let group = papo_protocol::GroupName::parse(group).unwrap();
        bia_net.send(NetCommand::GroupHoldsLine { group: group.clone(), line });
        wait_for(&bia_events, |e| match e {
            NetEvent::GroupHoldsLine { group: asked, line: l, held } if asked == group && l == line => {
                Some(held)
            }
            _ => None,
        })
    };
    assert_eq!(ask(&redes), Ok(true), "the same group under its new name");
    assert_eq!(ask(&other), Ok(false), "another group of mine");
    let nowhere = format!("#{}", unique_name("nowhere"));
    assert_eq!(ask(&nowhere), Err(ErrorCode::NoSuchGroup));
    bia_net.quit(Duration::from_secs(2));
}
