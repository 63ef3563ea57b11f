//! Bad input, slow clients and limits over real TCP; after each, a healthy pair still chats.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{assert_healthy, next_message, TestServer};
use papo_protocol::{
    frame, Client, ClientFrame, ErrorCode, Event, FrameReader, Hello, Request, ServerFrame, MAX_FRAME_LEN,
    PROTOCOL_VERSION,
};
use papo_server::tls::TlsMode;

fn raw(server: &TestServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

fn hello() -> Vec<u8> {
    let hello = ClientFrame::Hello(Hello { protocol_version: PROTOCOL_VERSION, client_name: "raw".into() });
    frame::encode(&hello, MAX_FRAME_LEN).unwrap()
}

/// A server in plaintext: these attacks aim at the frame decoder, which TLS would hide
/// behind its handshake (hostile TLS bytes are tests/tls.rs's business).
fn plaintext_server() -> TestServer {
    TestServer::start_with(|config| config.tls = TlsMode::Off)
}

/// Every frame the server sends until it closes the connection.
fn frames_until_close(mut reader: FrameReader<impl Read>) -> Vec<ServerFrame> {
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = reader.read_message::<ServerFrame>() {
        frames.push(frame);
    }
    frames
}

fn fatal_code(frames: &[ServerFrame]) -> Option<ErrorCode> {
    frames.iter().find_map(|frame| match frame {
        ServerFrame::Fatal(e) => Some(e.code),
        _ => None,
    })
}

#[test]
fn a_four_gigabyte_length_prefix_is_refused_without_allocating() {
    let server = plaintext_server();
    let mut stream = raw(&server);
    stream.write_all(&hello()).unwrap();
    stream.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let frames = frames_until_close(FrameReader::new(&stream));
    assert!(matches!(frames[0], ServerFrame::Welcome(_)));
    assert_eq!(fatal_code(&frames), Some(ErrorCode::TooLarge));
    assert_healthy(&server);
}

#[test]
fn garbage_before_and_after_the_handshake_is_malformed() {
    let server = plaintext_server();
    let mut first = raw(&server);
    first.write_all(&[0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0x99]).unwrap();
    assert_eq!(fatal_code(&frames_until_close(FrameReader::new(&first))), Some(ErrorCode::Malformed));

    let mut after_valid = raw(&server);
    let ping = frame::encode(&ClientFrame::Request { id: 1, request: Request::Ping }, MAX_FRAME_LEN).unwrap();
    let garbage = [0, 0, 0, 3, 0xff, 0xff, 0xff];
    after_valid.write_all(&[hello(), ping, garbage.to_vec()].concat()).unwrap();
    let frames = frames_until_close(FrameReader::new(&after_valid));
    assert!(frames.iter().any(|f| matches!(f, ServerFrame::Reply { id: 1, result: Ok(_) })), "{frames:?}");
    assert_eq!(fatal_code(&frames), Some(ErrorCode::Malformed));
    assert_healthy(&server);
}

#[test]
fn requests_before_hello_and_wrong_versions_are_refused() {
    let server = plaintext_server();
    let mut early = raw(&server);
    let ping = frame::encode(&ClientFrame::Request { id: 1, request: Request::Ping }, MAX_FRAME_LEN).unwrap();
    early.write_all(&ping).unwrap();
    assert_eq!(fatal_code(&frames_until_close(FrameReader::new(&early))), Some(ErrorCode::Malformed));

    let mut future = raw(&server);
    let hello =
        ClientFrame::Hello(Hello { protocol_version: PROTOCOL_VERSION + 1, client_name: "future".into() });
    future.write_all(&frame::encode(&hello, MAX_FRAME_LEN).unwrap()).unwrap();
    assert_eq!(
        fatal_code(&frames_until_close(FrameReader::new(&future))),
        Some(ErrorCode::UnsupportedVersion)
    );
    assert_healthy(&server);
}

#[test]
fn a_truncated_frame_then_hang_up_leaves_the_server_serving() {
    let server = plaintext_server();
    let mut stream = raw(&server);
    let mut frame = hello();
    frame.truncate(frame.len() - 2);
    stream.write_all(&frame).unwrap();
    drop(stream);
    assert_healthy(&server);
}

#[test]
fn a_one_megabyte_body_is_refused_by_the_client_codec_and_by_the_server() {
    let server = plaintext_server();
    let (mut ana, _) = server.user("ana");
    let (_bia, b) = server.user("bia");
    let err = ana.send(b.name.as_str(), &"x".repeat(1 << 20), 1).unwrap_err();
    // The client refuses to encode a frame over the limit before anything is sent.
    assert!(err.to_string().contains("exceeds"), "{err}");

    let mut stream = raw(&server);
    stream.write_all(&hello()).unwrap();
    let mut header = ((1u32 << 20) + 100).to_be_bytes().to_vec();
    header.extend(std::iter::repeat_n(b'x', 4096));
    stream.write_all(&header).unwrap();
    assert_eq!(fatal_code(&frames_until_close(FrameReader::new(&stream))), Some(ErrorCode::TooLarge));
    assert_healthy(&server);
}

#[test]
fn silent_connections_are_dropped() {
    // The idle timeout leaves the healthy clients at the end room for a busy machine's stalls.
    let server = TestServer::start_with(|config| {
        config.handshake_timeout = Duration::from_millis(300);
        config.idle_timeout = Duration::from_millis(1500);
    });
    let silent = raw(&server);
    let started = Instant::now();
    // Without a first byte the server cannot know whether to answer in TLS or in the clear,
    // so it closes without a word.
    let frames = frames_until_close(FrameReader::new(&silent));
    assert!(frames.is_empty(), "{frames:?}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "closed after {took:?}, not at the handshake timeout");

    let (idle, _) = server.user("idle");
    let (conn, _) = idle.into_parts();
    assert_eq!(fatal_code(&frames_until_close(conn.split().0)), Some(ErrorCode::IdleTimeout));
    assert_healthy(&server);
}

#[test]
fn connections_over_the_limit_are_told_the_server_is_full() {
    let server = TestServer::start_with(|config| config.max_connections = 2);
    // Two handshaken connections (and no short-lived ones whose close might lag).
    let (_first, _second) = (server.connect(), server.connect());
    let third = raw(&server);
    assert_eq!(fatal_code(&frames_until_close(FrameReader::new(&third))), Some(ErrorCode::ServerFull));
    // A TLS client reads the same plaintext refusal instead of a broken handshake.
    let refused =
        Client::connect(&server.addr.to_string(), &server.security, "fourth", Duration::from_secs(5));
    assert_eq!(refused.err().and_then(|e| e.code()), Some(ErrorCode::ServerFull));
}

#[test]
fn a_thousand_connections_opened_and_dropped_at_once() {
    let server = TestServer::start();
    let streams: Vec<_> = (0..1000).filter_map(|_| TcpStream::connect(server.addr).ok()).collect();
    assert!(streams.len() >= 900, "only {} connections succeeded", streams.len());
    drop(streams);
    assert_healthy(&server);
}

#[test]
fn a_client_that_never_reads_does_not_delay_others_and_loses_nothing() {
    let server = TestServer::start();
    let (stuck, s) = server.user("stuck");
    let (mut flooder, _) = server.user("flood");
    let (mut ana, _) = server.user("ana");
    let (mut bia, b) = server.user("bia");

    // Far more than the stuck client's socket buffers and outbound queue hold.
    let body = "x".repeat(4000);
    let mut worst = Duration::ZERO;
    for i in 0..1500u64 {
        flooder.send(s.name.as_str(), &body, i).unwrap();
        if i % 100 == 0 {
            let started = Instant::now();
            let (id, _) = ana.send(b.name.as_str(), "ping", i).unwrap();
            assert_eq!(next_message(&mut bia).id, id);
            worst = worst.max(started.elapsed());
        }
    }
    // Generous for a debug build on a loaded CI machine; a blocked sender would take the
    // 90-second idle timeout instead.
    eprintln!("slowest live round trip while another client was stuck: {worst:?}");
    assert!(worst < Duration::from_secs(1), "a live message took {worst:?}");
    drop(stuck);
    let (_stuck_again, session) = server.login(s.name.as_str());
    assert_eq!(session.pending, 1500, "undelivered messages must stay pending");
}

#[test]
fn shutdown_tells_connected_clients() {
    let server = TestServer::start();
    let (ana, _) = server.user("ana");
    let (conn, _) = ana.into_parts();
    server.stop().unwrap();
    let frames = frames_until_close(conn.split().0);
    assert!(frames.contains(&ServerFrame::Event(Event::ShuttingDown)), "{frames:?}");
}

#[test]
fn invalid_utf8_in_names_and_bodies_is_malformed() {
    let server = plaintext_server();
    for (to, body) in [("xx", "\u{1}\u{1}"), ("\u{1}\u{1}", "hi")] {
        let send = ClientFrame::Request {
            id: 1,
            request: Request::Send { to: to.into(), body: body.into(), client_msg_id: 1 },
        };
        let mut bytes = frame::encode(&send, MAX_FRAME_LEN).unwrap();
        // Turn the two marker bytes into a sequence that is not UTF-8.
        let at = bytes.windows(2).position(|w| w == [1, 1]).unwrap();
        bytes[at..at + 2].copy_from_slice(&[0xff, 0xfe]);
        let mut stream = raw(&server);
        stream.write_all(&[hello(), bytes].concat()).unwrap();
        assert_eq!(fatal_code(&frames_until_close(FrameReader::new(&stream))), Some(ErrorCode::Malformed));
    }
    assert_healthy(&server);
}

#[test]
fn requests_before_login_names_with_tricks_and_self_sends_get_typed_errors() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let mut anonymous = server.connect();
    for request in [
        Request::Send { to: a.name.to_string(), body: "hi".into(), client_msg_id: 1 },
        Request::History { with: a.name.to_string(), before: None, limit: 10 },
        Request::MarkRead { with: a.name.to_string(), up_to: 1 },
        Request::Delivered { from: a.name.to_string(), up_to: 1 },
        Request::Logout,
    ] {
        assert_eq!(anonymous.request(request).unwrap_err().code(), Some(ErrorCode::NotLoggedIn));
    }
    for tricky in ["../ana", "ana ", " ana", "an\u{0}a", "аna", "ana\n"] {
        let err = ana.send(tricky, "hi", 2).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidName), "{tricky:?}");
    }
    assert_eq!(ana.send(a.name.as_str(), "me", 3).unwrap_err().code(), Some(ErrorCode::InvalidRequest));
    assert_healthy(&server);
}

/// Sends `bytes` one every 100 ms (each arriving well within the per-read timeout) and
/// returns how long the server took to close the connection, giving up after 8 s.
fn time_until_cut_off(server: &TestServer, bytes: &[u8]) -> Duration {
    let mut stream = raw(server);
    let started = Instant::now();
    for byte in bytes {
        if stream.write_all(&[*byte]).is_err() || started.elapsed() > Duration::from_secs(8) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        // A closed connection shows as a reset or end of stream on a non-blocking read.
        stream.set_nonblocking(true).unwrap();
        let mut probe = [0u8; 64];
        let closed = matches!(stream.read(&mut probe), Ok(0))
            || matches!(stream.read(&mut probe), Err(e) if e.kind() != std::io::ErrorKind::WouldBlock);
        stream.set_nonblocking(false).unwrap();
        if closed {
            break;
        }
    }
    started.elapsed()
}

#[test]
fn a_handshake_trickled_byte_by_byte_is_cut_off_at_the_deadline() {
    let tweak = |config: &mut papo_server::Config| config.handshake_timeout = Duration::from_millis(600);
    // A long Hello (about 260 bytes, 26 s at this pace) to a plaintext server.
    let plain = TestServer::start_with(|config| {
        tweak(config);
        config.tls = TlsMode::Off;
    });
    let long_hello =
        ClientFrame::Hello(Hello { protocol_version: PROTOCOL_VERSION, client_name: "x".repeat(250) });
    let took = time_until_cut_off(&plain, &frame::encode(&long_hello, MAX_FRAME_LEN).unwrap());
    assert!(took < Duration::from_secs(3), "plaintext: still open after {took:?}");
    assert_healthy(&plain);

    // A TLS record header announcing a large hello, then its body, to a TLS server.
    let tls = TestServer::start_with(tweak);
    let mut record = vec![0x16, 0x03, 0x01, 0x01, 0x00];
    record.extend(std::iter::repeat_n(0x01, 256));
    let took = time_until_cut_off(&tls, &record);
    assert!(took < Duration::from_secs(3), "TLS: still open after {took:?}");
    assert_healthy(&tls);
}
