//! TLS over real TCP: the generated certificate, trust decisions, transport mismatches,
//! hostile TLS bytes, what an eavesdropper sees, and full-duplex traffic without stalls.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::thread;
use std::time::Duration;

use common::{assert_healthy, next_message, unique_name, TestServer, PASSWORD};
use papo_protocol::{
    Client, ClientError, ClientFrame, ErrorCode, Event, Fingerprint, Reply, Request, Security, ServerFrame,
    TrustError,
};
use papo_server::testing::RecordingProxy;
use papo_server::tls::{TlsMode, CERT_FILE, KEY_FILE};

const TIMEOUT: Duration = Duration::from_secs(5);

fn connect(addr: &str, security: &Security) -> Result<Client, ClientError> {
    Client::connect(addr, security, "tls-test", TIMEOUT)
}

#[test]
fn the_generated_certificate_is_private_reused_across_restarts_and_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {});
    let fingerprint = server.fingerprint.unwrap();
    let (mut ana, a) = server.user("ana");
    let (_bia, b) = server.user("bia");
    ana.send(b.name.as_str(), "before the restart", 1).unwrap();
    let addr = server.addr;
    server.stop().unwrap();

    let key_mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
    assert_eq!(key_mode & 0o777, 0o600, "the key must be readable by its owner only");
    let pem = std::fs::read_to_string(dir.path().join(CERT_FILE)).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");

    let listener = std::net::TcpListener::bind(addr).unwrap();
    let server = TestServer::start_on(listener, dir.path(), |_| {});
    assert_eq!(server.fingerprint, Some(fingerprint), "a restart must not change the certificate");
    // A client pinned before the restart reconnects without being asked again.
    let mut bia = connect(&addr.to_string(), &Security::tls(Some(fingerprint))).unwrap();
    bia.login(b.name.as_str(), PASSWORD).unwrap();
    let page = bia.history(a.name.as_str(), None, 10).unwrap();
    assert_eq!(page.messages[0].body, "before the restart");
}

#[test]
fn an_unknown_or_changed_certificate_is_refused_and_reports_what_was_presented() {
    let server = TestServer::start();
    let addr = server.addr.to_string();
    let presented = server.fingerprint.unwrap();
    match connect(&addr, &Security::tls(None)) {
        Err(ClientError::Trust(TrustError::Unknown { presented: got })) => assert_eq!(got, presented),
        other => panic!("an unknown certificate was not refused: {other:?}"),
    }
    let pinned = Fingerprint::of(b"what the client trusted before");
    match connect(&addr, &Security::tls(Some(pinned))) {
        Err(ClientError::Trust(TrustError::Changed { pinned: p, presented: got })) => {
            assert_eq!((p, got), (pinned, presented));
        }
        other => panic!("a changed certificate was not refused: {other:?}"),
    }
    connect(&addr, &Security::tls(Some(presented))).unwrap().register(&unique_name("ok"), PASSWORD).unwrap();
    assert_healthy(&server);
}

#[test]
fn a_client_on_the_other_transport_gets_a_clear_error_not_a_hang() {
    let tls = TestServer::start();
    let plain = TestServer::start_with(|config| config.tls = TlsMode::Off);

    let err = connect(&tls.addr.to_string(), &Security::Plaintext).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TlsRequired), "{err}");
    assert!(err.to_string().contains("requires TLS"), "{err}");

    let err = connect(&plain.addr.to_string(), &Security::tls(None)).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::PlaintextOnly), "{err}");
    assert!(err.to_string().contains("--plaintext"), "{err}");

    assert_healthy(&tls);
    assert_healthy(&plain);
}

#[test]
fn hostile_tls_bytes_close_only_their_own_connection() {
    let server = TestServer::start_with(|config| config.handshake_timeout = Duration::from_millis(500));
    let attacks: [&[u8]; 4] = [
        // A handshake record announcing 64 KiB, then hanging up.
        &[0x16, 0x03, 0x01, 0xff, 0xff],
        // A record that is not a ClientHello.
        &[0x16, 0x03, 0x01, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef],
        // Application data before any handshake.
        &[0x17, 0x03, 0x03, 0x00, 0x02, 0x00, 0x00],
        // The start of a handshake record, then silence (the handshake timeout ends it).
        &[0x16, 0x03],
    ];
    let streams: Vec<TcpStream> = attacks
        .iter()
        .map(|bytes| {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            stream.write_all(bytes).unwrap();
            stream
        })
        .collect();
    assert_healthy(&server);
    for mut stream in streams {
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut rest = Vec::new();
        // The server closes each one (an alert may come first); a hang fails here.
        let closed = std::io::Read::read_to_end(&mut stream, &mut rest);
        assert!(closed.is_ok() || closed.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset));
    }
    assert_healthy(&server);
}

/// Registers, logs in and sends one message through a recording proxy; returns all bytes seen.
fn eavesdrop(server: &TestServer, password: &str, body: &str) -> Vec<u8> {
    let proxy = RecordingProxy::start(server.addr);
    let (_bia, b) = server.user("bia");
    let name = unique_name("ana");
    let mut ana = connect(&proxy.addr.to_string(), &server.security).unwrap();
    ana.register(&name, password).unwrap();
    ana.login(&name, password).unwrap();
    ana.send(b.name.as_str(), body, 1).unwrap();
    drop(ana);
    proxy.closed_connections().into_iter().flat_map(|c| [c.to_server, c.to_client].concat()).collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[test]
fn an_eavesdropper_sees_neither_the_password_nor_the_message() {
    let (password, body) = ("tr0ub4dor&3-secret", "the launch code is 0000");
    let tls = TestServer::start();
    let seen = eavesdrop(&tls, password, body);
    assert!(seen.len() > 1000, "the proxy recorded only {} bytes", seen.len());
    assert!(!contains(&seen, password), "the password crossed the wire in the clear");
    assert!(!contains(&seen, body), "the message crossed the wire in the clear");
    // The same capture of a plaintext server shows both: the check can fail.
    let plain = TestServer::start_with(|config| config.tls = TlsMode::Off);
    let seen = eavesdrop(&plain, password, body);
    assert!(contains(&seen, password) && contains(&seen, body));
}

/// Sends `count` pipelined messages to `peer` while reading; returns (acks, distinct messages
/// received). Distinct: a message committed while the receiver's login still streams its
/// backlog may arrive both ways, which the protocol allows (clients de-duplicate by id).
fn send_and_receive(client: Client, peer: String, count: u64) -> (u64, u64) {
    let (conn, _) = client.into_parts();
    conn.stream().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut reader, mut writer) = conn.split();
    let sender = thread::spawn(move || {
        for n in 0..count {
            let request = Request::Send { to: peer.clone(), body: format!("message {n}"), client_msg_id: n };
            writer.queue_message(&ClientFrame::Request { id: n + 1, request }).unwrap();
            if n % 16 == 15 {
                writer.flush().unwrap();
            }
        }
        writer.flush().unwrap();
        writer
    });
    let (mut acked, mut received) = (0, BTreeSet::new());
    while acked < count || (received.len() as u64) < count {
        // A stall shows up as a read timeout here, not as a hung test.
        match reader.read_message::<ServerFrame>().expect("no stall").expect("open") {
            ServerFrame::Reply { result: Ok(Reply::Sent { .. }), .. } => acked += 1,
            ServerFrame::Event(Event::Message(message)) => {
                received.insert(message.id);
            }
            ServerFrame::Reply { result: Err(e), .. } => panic!("send failed: {e:?}"),
            _ => {}
        }
    }
    drop(sender.join().unwrap());
    (acked, received.len() as u64)
}

#[test]
fn both_sides_sending_and_receiving_at_full_speed_never_stall() {
    const COUNT: u64 = 3_000;
    let server = TestServer::start();
    let (ana, a) = server.user("ana");
    let (bia, b) = server.user("bia");
    let to_bia = thread::spawn(move || send_and_receive(ana, b.name.to_string(), COUNT));
    let to_ana = thread::spawn(move || send_and_receive(bia, a.name.to_string(), COUNT));
    assert_eq!(to_bia.join().unwrap(), (COUNT, COUNT));
    assert_eq!(to_ana.join().unwrap(), (COUNT, COUNT));
    let (mut carla, _) = server.user("carla");
    let (_, d) = server.user("dora");
    carla.send(d.name.as_str(), "after the storm", 1).unwrap();
    let (mut dora, _) = server.login(d.name.as_str());
    assert_eq!(next_message(&mut dora).body, "after the storm");
}
