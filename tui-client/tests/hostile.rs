//! Hostile text from the network never reaches a terminal as it is: a fake server that
//! answers with escape sequences, bidi overrides and line separators, through every path
//! that shows server text (the command line's stderr, `papo history`, the TUI's status line,
//! login form and history pane).

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use papo::app::{update, Model, Msg};
use papo::net::{Link, NetCommand, NetEvent, NetHandle, Transport};
use papo::sanitize::is_unsafe;
use papo_protocol::{
    frame, ClientFrame, Connection, ErrorCode, ErrorReply, Event, Fingerprint, ServerFrame, Welcome,
    MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use papo_server::testing::{TestServer, PASSWORD};
use time::UtcOffset;

/// Retitles the window, turns everything red, reverses the text after it, forges a line.
const HOSTILE: &str = "\x1b]0;pwned\x07\x1b[31mbad\u{202E}txt\u{2066}\u{2028}forged\u{200B}";

/// How the hostile text must look once made harmless.
const SHOWN: &str = "\\u{1b}]0;pwned\\u{7}\\u{1b}[31mbad\\u{202e}txt\\u{2066}\\u{2028}forged\\u{200b}";

/// A rogue host that answers every connection (TLS or not) with a plaintext `Fatal` before
/// any TLS, as issue 14 found.
fn fatal_before_tls() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok).take(50) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut hello = [0u8; 512];
            let _ = std::io::Read::read(&mut stream, &mut hello);
            let fatal = ServerFrame::Fatal(ErrorReply::new(ErrorCode::Malformed, HOSTILE));
            let _ = std::io::Write::write_all(&mut stream, &frame::encode(&fatal, MAX_FRAME_LEN).unwrap());
        }
    });
    addr
}

/// A plaintext server that shakes hands, then refuses every request with hostile text.
fn refuses_with_hostile_text() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok).take(20) {
            std::thread::spawn(move || serve_hostile(stream));
        }
    });
    addr
}

fn serve_hostile(stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut conn = Connection::plain(stream);
    let Ok(Some(ClientFrame::Hello(_))) = conn.read_message::<ClientFrame>() else { return };
    let welcome = Welcome { protocol_version: PROTOCOL_VERSION, server_version: HOSTILE.into() };
    if conn.write_message(&ServerFrame::Welcome(welcome)).is_err() {
        return;
    }
    while let Ok(Some(ClientFrame::Request { id, .. })) = conn.read_message::<ClientFrame>() {
        let result = Err(ErrorReply::new(ErrorCode::InvalidCredentials, HOSTILE));
        if conn.write_message(&ServerFrame::Reply { id, result }).is_err() {
            return;
        }
    }
}

fn papo(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_papo"))
        .args(args)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_DATA_HOME", home.path())
        .env("PAPO_PASSWORD", PASSWORD)
        .env("PAPO_TRUST_FINGERPRINT", Fingerprint::of(b"whatever").to_string())
        .env_remove("PAPO_PLAINTEXT")
        .output()
        .unwrap()
}

fn assert_harmless(what: &str, text: &str) {
    let bad: Vec<char> = text.chars().filter(|&c| is_unsafe(c) && c != '\n').collect();
    assert!(bad.is_empty(), "{what} passed {bad:?} raw: {text:?}");
}

/// The screen's text without borders and spaces, so wrapped text reads as one string.
fn squeezed(screen: &[String]) -> String {
    screen.concat().chars().filter(|c| !c.is_whitespace() && !"│╭╮╰╯─".contains(*c)).collect()
}

fn assert_screen_harmless(screen: &[String]) {
    for row in screen {
        assert_harmless("the screen", row);
    }
}

#[test]
fn a_fatal_before_tls_reaches_stderr_escaped_on_one_line() {
    let addr = fatal_before_tls().to_string();
    let output = papo(&["contacts", "--server", &addr, "--user", "ana"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_harmless("stderr", &stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(SHOWN), "{stderr}");
}

#[test]
fn a_refusal_with_hostile_text_reaches_stderr_escaped() {
    let addr = refuses_with_hostile_text().to_string();
    let output = papo(&["contacts", "--plaintext", "--server", &addr, "--user", "ana"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_harmless("stderr", &stderr);
    assert!(stderr.contains(SHOWN), "{stderr}");
}

#[test]
fn history_prints_one_line_per_message_whatever_the_body_holds() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let (_bia, b) = server.user("bia");
    ana.send(b.name.as_str(), &format!("first{HOSTILE}\u{2029}second\nthird\r\u{2067}"), 1).unwrap();
    ana.send(b.name.as_str(), "plain", 2).unwrap();
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_papo"))
        .args(["history", "--server", &server.addr.to_string(), "--user", a.name.as_str(), b.name.as_str()])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_DATA_HOME", home.path())
        .env("PAPO_PASSWORD", PASSWORD)
        .env("PAPO_TRUST_FINGERPRINT", server.fingerprint.unwrap().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_harmless("papo history", &stdout);
    // A script splitting on any Unicode line break sees exactly two lines.
    let lines: Vec<&str> = stdout.split(['\n', '\r', '\u{2028}', '\u{2029}', '\u{85}']).collect();
    assert_eq!(lines.len(), 3, "{stdout:?}");
    assert!(
        lines[0].ends_with(&format!("first{SHOWN}\\u{{2029}}second\\nthird\\u{{d}}\\u{{2067}}")),
        "{stdout}"
    );
    assert!(lines[1].ends_with(": plain"));
}

fn spawn(server: &str) -> (NetHandle, mpsc::Receiver<NetEvent>) {
    let (tx, rx) = mpsc::channel();
    let handle = NetHandle::spawn(papo::net::NetConfig::new(server, Transport::Plaintext), move |event| {
        let _ = tx.send(event);
    })
    .unwrap();
    (handle, rx)
}

/// Feeds network events into `model` until `done` holds.
fn drive(
    model: &mut Model,
    net: &NetHandle,
    events: &mpsc::Receiver<NetEvent>,
    done: impl Fn(&Model) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(model) {
        let left = deadline.checked_duration_since(Instant::now()).expect("timed out");
        let event = events.recv_timeout(left).expect("timed out");
        for command in update(model, Msg::Net(event)) {
            net.send(command);
        }
    }
}

#[test]
fn the_tui_shows_a_hostile_offline_reason_harmlessly() {
    let addr = fatal_before_tls().to_string();
    let (net, events) = spawn(&addr);
    let mut model = Model::new(addr.clone(), UtcOffset::UTC, (200, 24), 1);
    drive(&mut model, &net, &events, |m| matches!(m.link, Link::Offline { .. }));
    let screen = render(&model, 200, 24);
    assert_screen_harmless(&screen);
    assert!(squeezed(&screen).contains(&format!("offline:{SHOWN}")), "{}", screen.join("\n"));
    // The chat screen's status line too.
    let mut chat = logged_in(vec![]);
    update(&mut chat, Msg::Net(NetEvent::Link(model.link.clone())));
    let screen = render(&chat, 200, 24);
    assert_screen_harmless(&screen);
    assert!(screen.concat().contains("offline: \\u{1b}]0;pwned"), "{}", screen.join("\n"));
    net.quit(Duration::from_secs(2));
}

#[test]
fn the_tui_shows_hostile_refusals_and_notices_harmlessly() {
    let addr = refuses_with_hostile_text().to_string();
    let (net, events) = spawn(&addr);
    let mut model = Model::new(addr.clone(), UtcOffset::UTC, (200, 24), 1);
    drive(&mut model, &net, &events, |m| m.link == Link::Online);
    net.send(NetCommand::Login { name: "ana".into(), password: PASSWORD.into() });
    drive(&mut model, &net, &events, |m| m.login.error.is_some());
    let screen = render(&model, 200, 24);
    assert_screen_harmless(&screen);
    assert!(squeezed(&screen).contains(SHOWN), "{}", screen.join("\n"));
    net.quit(Duration::from_secs(2));

    let mut chat = logged_in(vec![contact("bia", true, 0, 1)]);
    update(&mut chat, Msg::Net(NetEvent::Notice(HOSTILE.into())));
    assert_screen_harmless(&render(&chat, 200, 24));
}

#[test]
fn hostile_message_bodies_are_drawn_visibly_and_harmlessly() {
    let mut model = logged_in(vec![contact("bia", true, 1, 1)]);
    update(&mut model, ctrl('n'));
    let body = format!("{HOSTILE}\ttab\u{2029}end");
    update(&mut model, Msg::Net(NetEvent::Server(Event::Message(message(1, "bia", "ana", &body)))));
    let screen = render(&model, 200, 24);
    assert_screen_harmless(&screen);
    assert!(screen.concat().contains(&format!("{SHOWN} tab\\u{{2029}}end")), "{}", screen.join("\n"));
}
