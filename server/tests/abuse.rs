//! No one client can keep the others out: login attempts counted before the password is
//! checked, by name and address; connections that never log in capped and cut off; floods
//! refused; all against a real server, with clients from two loopback addresses (127.0.0.1
//! the attacker, 127.0.0.2 everyone else).

mod common;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{history, TestServer, PASSWORD};
use papo_protocol::{Client, ClientError, ErrorCode, Reply, Request};
use papo_server::LimitPolicy;
use socket2::{Domain, Socket, Type};

const ATTACKER: [u8; 4] = [127, 0, 0, 1];
const OWNER: [u8; 4] = [127, 0, 0, 2];

/// A server with the production limits (and test-sized deadlines).
fn limited(tweak: impl FnOnce(&mut LimitPolicy)) -> TestServer {
    TestServer::start_with(|config| {
        let mut limits = LimitPolicy::default();
        tweak(&mut limits);
        config.limits = limits;
    })
}

/// A handshaken connection to `server` from the loopback address `from`.
fn connect_from(server: &TestServer, from: [u8; 4]) -> Result<Client, ClientError> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.bind(&SocketAddr::new(IpAddr::from(from), 0).into()).expect("bind a loopback address");
    socket
        .connect(&server.addr.into())
        .map_err(|source| ClientError::Connect { addr: server.addr.to_string(), source })?;
    Client::handshake(
        TcpStream::from(socket),
        &server.addr.to_string(),
        &server.security,
        "abuse-test",
        Duration::from_secs(10),
    )
}

fn code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> Option<ErrorCode> {
    result.err().and_then(|e| e.code())
}

#[test]
fn concurrent_guesses_are_counted_before_hashing_and_the_owner_is_not_locked_out() {
    const GUESSES: usize = 40;
    // Room for every guessing connection: the limit under test is the one on attempts.
    let server = limited(|limits| limits.unauthenticated_per_address = GUESSES);
    connect_from(&server, OWNER).unwrap().register("alice", PASSWORD).unwrap();
    // 40 wrong guesses at once: at most five may be checked at all (guesses the password
    // pool had no room for are not checked and do not count).
    let start = Arc::new(Barrier::new(GUESSES));
    let guesses: Vec<_> = (0..GUESSES)
        .map(|n| {
            let start = Arc::clone(&start);
            let connected = connect_from(&server, ATTACKER);
            std::thread::spawn(move || {
                start.wait();
                let password = format!("guess {n:04}");
                connected
                    .expect("a guessing connection")
                    .login("alice", &password)
                    .map(drop)
                    .map_err(|e| e.code())
            })
        })
        .collect();
    let results: Vec<_> = guesses.into_iter().map(|guess| guess.join().unwrap()).collect();
    let checked =
        results.iter().filter(|result| **result == Err(Some(ErrorCode::InvalidCredentials))).count();
    let limited = results.iter().filter(|result| **result == Err(Some(ErrorCode::RateLimited))).count();
    assert!(
        (1..=5).contains(&checked),
        "{checked} of {GUESSES} concurrent guesses were checked: {results:?}"
    );
    assert_eq!(checked + limited, GUESSES, "{results:?}");

    // The owner, from her own machine, logs in at once.
    let mut owner = connect_from(&server, OWNER).unwrap();
    owner.login("alice", PASSWORD).expect("the owner is not locked out by someone else's guesses");
    // The guesser's machine stays locked out of her name, with a time to wait: even the
    // right password is not checked from there.
    let mut again = connect_from(&server, ATTACKER).unwrap();
    match again.login("alice", PASSWORD) {
        Err(ClientError::Rejected(e)) => {
            assert_eq!(e.code, ErrorCode::RateLimited);
            assert!(e.message.contains("try again in"), "{}", e.message);
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[test]
fn one_machine_guessing_many_names_is_stopped() {
    let server = limited(|_| {});
    let mut guesser = connect_from(&server, ATTACKER).unwrap();
    let mut limited_after = None;
    for n in 0..40 {
        match code(guesser.login(&format!("user{n}"), "guess guess")) {
            Some(ErrorCode::InvalidCredentials) => {}
            Some(ErrorCode::RateLimited) => {
                limited_after = Some(n);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
        if n % 3 == 2 {
            // Every third failure closes the connection: reconnect and go on.
            guesser = connect_from(&server, ATTACKER).unwrap();
        }
    }
    assert_eq!(limited_after, Some(30), "30 attempts a minute from one address");
}

#[test]
fn a_connection_is_closed_after_three_failed_logins() {
    let server = limited(|_| {});
    let mut client = connect_from(&server, ATTACKER).unwrap();
    for _ in 0..3 {
        assert_eq!(code(client.login("nobody", "guess guess")), Some(ErrorCode::InvalidCredentials));
    }
    match client.request(Request::Ping) {
        Err(ClientError::Fatal(e)) => assert_eq!(e.code, ErrorCode::RateLimited),
        Err(ClientError::Closed) => {}
        other => panic!("the connection should be closed, got {other:?}"),
    }
}

#[test]
fn connections_that_never_log_in_are_capped_by_address_and_cut_off_even_while_pinging() {
    let server = limited(|limits| {
        limits.unauthenticated_per_address = 4;
        limits.login_deadline = Duration::from_secs(2);
    });
    connect_from(&server, OWNER).unwrap().register("owner", PASSWORD).unwrap();
    let mut held: Vec<Client> = (0..4).map(|_| connect_from(&server, ATTACKER).unwrap()).collect();
    assert_eq!(
        code(connect_from(&server, ATTACKER)),
        Some(ErrorCode::ServerFull),
        "a fifth from the same machine"
    );
    // Everyone else still gets in.
    let mut owner = connect_from(&server, OWNER).unwrap();
    owner.login("owner", PASSWORD).unwrap();
    // Pinging does not extend the deadline to log in.
    let started = Instant::now();
    let mut cut_off = 0;
    while cut_off < held.len() && started.elapsed() < Duration::from_secs(10) {
        cut_off = held
            .iter_mut()
            .map(|client| client.request(Request::Ping).is_err())
            .filter(|&closed| closed)
            .count();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(cut_off, 4, "connections that never logged in are closed after the deadline");
    assert!(started.elapsed() >= Duration::from_millis(1500), "not before it");
    // Their places came back.
    connect_from(&server, ATTACKER).expect("a new connection from that machine is served again");
    assert_eq!(owner.request(Request::Ping).unwrap(), Reply::Pong, "a logged-in session is never cut off");
}

#[test]
fn a_message_flood_is_refused_and_nothing_refused_is_stored() {
    let server = limited(|_| {});
    let mut client = connect_from(&server, OWNER).unwrap();
    client.register("flood", PASSWORD).unwrap();
    client.register("victim", PASSWORD).unwrap();
    client.login("flood", PASSWORD).unwrap();
    let requests: Vec<_> = (0..400u64)
        .map(|n| {
            let send = Request::Send { to: "victim".into(), body: format!("spam {n}"), client_msg_id: n };
            client.send_request(send).unwrap()
        })
        .collect();
    let mut acked = 0;
    let mut refused = 0;
    for request in requests {
        match client.wait_reply(request) {
            Ok(Reply::Sent { .. }) => acked += 1,
            Err(ClientError::Rejected(e)) if e.code == ErrorCode::RateLimited => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(refused > 0 && acked >= 200, "{acked} stored, {refused} refused");
    let mut victim = connect_from(&server, OWNER).unwrap();
    victim.login("victim", PASSWORD).unwrap();
    let mut stored = 0;
    let mut before = None;
    loop {
        let page = history(&mut victim, "flood", before, 200);
        stored += page.messages.len();
        before = page.messages.last().map(|m| m.id);
        if !page.more {
            break;
        }
    }
    assert_eq!(stored, acked, "exactly the acknowledged messages are stored");
}

#[test]
fn registrations_are_limited_by_address() {
    let server = limited(|limits| limits.registrations_per_address.limit = 3);
    let mut client = connect_from(&server, ATTACKER).unwrap();
    for n in 0..3 {
        client.register(&format!("bulk{n}"), PASSWORD).unwrap();
    }
    assert_eq!(code(client.register("bulk3", PASSWORD)), Some(ErrorCode::RateLimited));
    connect_from(&server, OWNER).unwrap().register("someone", PASSWORD).expect("another machine registers");
}
