//! The real `papo-server` binary: it starts, serves, and stops cleanly on SIGTERM and SIGINT.

#[path = "support/process.rs"]
mod process;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use papo_protocol::{frame, ClientFrame, Event, Hello, Security, MAX_FRAME_LEN, PROTOCOL_VERSION};
use papo_server::testing::PASSWORD;
use process::ServerProcess;

#[test]
fn sigterm_and_sigint_stop_cleanly_and_data_survives() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = process::spawn(dir.path(), "info");
    let mut client = server.connect("process-test");
    client.register("ana", PASSWORD).unwrap();
    client.register("bia", PASSWORD).unwrap();
    client.login("ana", PASSWORD).unwrap();
    let (id, _) = client.send("bia", "survives restarts", 1).unwrap();

    server.signal(libc::SIGTERM);
    client.stream().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(client.next_event().unwrap(), Event::ShuttingDown);
    assert!(server.wait_exit().success());

    let mut server = process::spawn(dir.path(), "info");
    let mut bia = server.connect("process-test");
    let session = bia.login("bia", PASSWORD).unwrap();
    assert_eq!(session.pending, 1);
    bia.stream().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    match bia.next_event().unwrap() {
        Event::Message(message) => assert_eq!((message.id, message.body.as_str()), (id, "survives restarts")),
        other => panic!("expected the stored message, got {other:?}"),
    }
    server.signal(libc::SIGINT);
    assert!(server.wait_exit().success());
}

/// Every byte of every file under `dir`.
fn files_under(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            all.extend(files_under(&path));
        } else {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[test]
fn no_password_or_token_reaches_the_logs_or_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = process::spawn(dir.path(), "trace");
    let secret = "Sup3r-secret-pa55word";
    let body = "a private message body";
    let mut client = server.connect("secrets-test");
    client.register("ana", secret).unwrap();
    client.register("bia", secret).unwrap();
    let session = client.login("ana", secret).unwrap();
    client.send("bia", body, 1).unwrap();
    let mut second = server.connect("secrets-test");
    second.resume(&session.token).unwrap();
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());

    let log: String = server.log.try_iter().collect::<Vec<_>>().join("\n");
    assert!(log.contains("logged in"), "the trace log was not captured");
    for needle in [secret, session.token.as_str()] {
        assert!(!log.contains(needle), "{needle:?} appears in the server log");
        assert!(!contains(&files_under(dir.path()), needle), "{needle:?} is stored in clear");
    }
    let info: Vec<_> = log.lines().filter(|line| line.contains(" INFO ")).collect();
    assert!(!info.is_empty(), "no info lines to check");
    assert!(info.iter().all(|line| !line.contains(body)), "a message body was logged at info");
}

/// Opens 200 connections per round, each sending one of `attacks`, all held open until the
/// round ends and then dropped, for 11 rounds (2,200 connections, 200 at a time): what the
/// server spent on them must be freed. Returns the server's RSS in KiB after the first
/// round and after the last.
fn rss_around_attacks(server: &ServerProcess, attacks: &[Vec<u8>]) -> (u64, u64) {
    let round = || {
        let mut streams = Vec::new();
        for attack in attacks.iter().cycle().take(200) {
            let Ok(mut stream) = TcpStream::connect(&server.addr) else { continue };
            let _ = stream.write_all(attack);
            streams.push(stream);
        }
        assert!(streams.len() >= 180, "only {} of 200 connections opened", streams.len());
    };
    round();
    std::thread::sleep(Duration::from_millis(300));
    let before = server.rss_kib();
    for _ in 0..10 {
        round();
    }
    std::thread::sleep(Duration::from_millis(500));
    (before, server.rss_kib())
}

/// A genuine TLS ClientHello, as papo sends it, caught by a listener that then hangs up.
fn client_hello() -> Vec<u8> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let dialer = std::thread::spawn(move || {
        let _ = papo_protocol::Client::connect(
            &addr,
            &Security::tls(None),
            "hello-catcher",
            Duration::from_secs(2),
        );
    });
    let (mut stream, _) = listener.accept().unwrap();
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).unwrap();
    let mut body = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
    stream.read_exact(&mut body).unwrap();
    drop(stream);
    dialer.join().unwrap();
    [header.to_vec(), body].concat()
}

#[test]
fn hostile_clients_do_not_grow_server_memory() {
    let dir = tempfile::tempdir().unwrap();
    // In plaintext the attacks reach the frame decoder.
    let server = process::spawn_with_args(
        dir.path(),
        "warn,papo_server::server=info",
        &["--bcrypt-cost", "4", "--plaintext"],
    );
    let hello = frame::encode(
        &ClientFrame::Hello(Hello { protocol_version: PROTOCOL_VERSION, client_name: "hostile".into() }),
        MAX_FRAME_LEN,
    )
    .unwrap();
    let frame_attacks = [
        [hello.clone(), u32::MAX.to_be_bytes().to_vec()].concat(),
        vec![0, 0, 0, 9, 0xde, 0xad, 0xbe, 0xef],
        hello[..hello.len() - 2].to_vec(),
        [hello.clone(), vec![0, 0, 0xff, 0xff], vec![7; 60_000]].concat(),
    ];
    let (before, after) = rss_around_attacks(&server, &frame_attacks);
    assert!(after < before + 16 * 1024, "plaintext: RSS grew from {before} KiB to {after} KiB");
    eprintln!(
        "plaintext server RSS {before} KiB after 200 hostile connections, {after} KiB after 2,000 more"
    );
    server.connect("after-attack").register("still-ok", PASSWORD).unwrap();

    // With TLS the attacks hit the handshake and the record layer.
    let tls_dir = tempfile::tempdir().unwrap();
    let server = process::spawn(tls_dir.path(), "warn,papo_server::server=info");
    let client_hello = client_hello();
    let tls_attacks = [
        client_hello.clone(),
        [client_hello.clone(), vec![0x17; 60_000]].concat(),
        [vec![0x16, 0x03, 0x01, 0xff, 0xff], vec![7; 60_000]].concat(),
        client_hello[..client_hello.len() / 2].to_vec(),
    ];
    let (before, after) = rss_around_attacks(&server, &tls_attacks);
    assert!(after < before + 16 * 1024, "TLS: RSS grew from {before} KiB to {after} KiB");
    eprintln!("TLS server RSS {before} KiB after 200 hostile connections, {after} KiB after 2,000 more");
    let mut client = server.connect("after-attack");
    client.register("still-ok", PASSWORD).unwrap();
}
