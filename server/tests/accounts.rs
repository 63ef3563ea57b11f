//! Registration, login, throttling, resume tokens and logout over real TCP.

mod common;

use std::time::Duration;

use common::{unique_name, TestServer, PASSWORD};
use papo_protocol::{ErrorCode, Reply, Request};
use papo_server::LimitPolicy;

#[test]
fn register_then_login_with_any_case() {
    let server = TestServer::start();
    let name = unique_name("Ana");
    let mut client = server.connect();
    client.register(&name, PASSWORD).unwrap();
    let session = client.login(&name.to_uppercase(), PASSWORD).unwrap();
    assert_eq!(session.name.as_str(), name.to_lowercase());
    assert_eq!(session.pending, 0);
    assert_eq!(session.token.len(), 64);
}

#[test]
fn duplicate_names_are_taken_regardless_of_case() {
    let server = TestServer::start();
    let mut client = server.connect();
    client.register("carla", PASSWORD).unwrap();
    let err = client.register("CARLA", PASSWORD).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NameTaken));
}

#[test]
fn invalid_names_and_passwords_are_rejected_with_reasons() {
    let server = TestServer::start();
    let mut client = server.connect();
    for bad in ["", "../etc", "has space", "tab\there", "\u{430}lice", &"x".repeat(33)] {
        let err = client.register(bad, PASSWORD).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidName), "{bad:?}");
    }
    for bad in ["short".to_owned(), "x".repeat(129)] {
        let err = client.register("okname", &bad).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidPassword));
    }
    client.register("okname", &"x".repeat(128)).unwrap();
}

/// The replies only: equal timing is measured by `cargo bench -p papo-server --bench login`.
#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let server = TestServer::start();
    let mut client = server.connect();
    client.register("dora", PASSWORD).unwrap();
    let wrong = client.login("dora", "not the password").unwrap_err();
    let unknown = client.login("nobody-here", PASSWORD).unwrap_err();
    let invalid = client.login("no/such", PASSWORD).unwrap_err();
    for err in [&wrong, &unknown, &invalid] {
        assert_eq!(err.code(), Some(ErrorCode::InvalidCredentials));
        assert_eq!(err.to_string(), wrong.to_string());
    }
}

#[test]
fn failed_logins_are_limited_per_name_and_address() {
    let server = TestServer::start_with(|config| {
        let mut limits = LimitPolicy::unlimited();
        limits.logins_per_address_and_name.limit = 5;
        limits.logins_per_address_and_name.span = Duration::from_secs(1);
        config.limits = limits;
    });
    let mut client = server.connect();
    client.register("eva", PASSWORD).unwrap();
    for _ in 0..5 {
        assert_eq!(
            client.login("eva", "guess guess").unwrap_err().code(),
            Some(ErrorCode::InvalidCredentials)
        );
    }
    // Even the right password waits until the window has passed.
    assert_eq!(client.login("eva", PASSWORD).unwrap_err().code(), Some(ErrorCode::RateLimited));
    assert_eq!(client.login("EVA", PASSWORD).unwrap_err().code(), Some(ErrorCode::RateLimited));
    // Another name is unaffected.
    client.register("fabio", PASSWORD).unwrap();
    server.login("fabio");
    std::thread::sleep(Duration::from_millis(1100));
    client.login("eva", PASSWORD).unwrap();
}

#[test]
fn requests_before_login_are_refused_and_login_happens_once() {
    let server = TestServer::start();
    let mut client = server.connect();
    let err = client.send("anyone", "hi", 1).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotLoggedIn));
    assert_eq!(
        client.request(Request::Contacts { after: None }).unwrap_err().code(),
        Some(ErrorCode::NotLoggedIn)
    );
    assert_eq!(client.request(Request::Ping).unwrap(), Reply::Pong);
    client.register("gil", PASSWORD).unwrap();
    client.login("gil", PASSWORD).unwrap();
    assert_eq!(client.login("gil", PASSWORD).unwrap_err().code(), Some(ErrorCode::AlreadyLoggedIn));
}

#[test]
fn resume_token_works_once_and_logout_revokes_it() {
    let server = TestServer::start();
    let (mut first, session) = server.user("hugo");
    drop(first.request(Request::Ping));

    let mut second = server.connect();
    let resumed = second.resume(&session.token).unwrap();
    assert_eq!(resumed.name, session.name);
    assert_ne!(resumed.token, session.token);
    // Tokens are single-use.
    let err = server.connect().resume(&session.token).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidToken));

    assert_eq!(second.request(Request::Logout).unwrap(), Reply::Done);
    let err = server.connect().resume(&resumed.token).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidToken));
    assert_eq!(server.connect().resume("garbage").unwrap_err().code(), Some(ErrorCode::InvalidToken));
}

#[test]
fn one_token_resumed_by_eight_connections_at_once_resumes_exactly_one() {
    let server = TestServer::start();
    let (first, session) = server.user("ines");
    drop(first);
    // Every connection is ready before any asks, so the eight Resumes reach the server
    // together.
    let clients: Vec<_> = (0..8).map(|_| server.connect()).collect();
    let start = std::sync::Barrier::new(clients.len());
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let asking: Vec<_> = clients
            .into_iter()
            .map(|mut client| {
                let (start, token) = (&start, &session.token);
                scope.spawn(move || {
                    start.wait();
                    client.resume(token).map(|resumed| resumed.token).map_err(|e| e.code())
                })
            })
            .collect();
        asking.into_iter().map(|thread| thread.join().unwrap()).collect()
    });
    let resumed: Vec<&String> = outcomes.iter().filter_map(|outcome| outcome.as_ref().ok()).collect();
    assert_eq!(resumed.len(), 1, "exactly one resumes: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().err())
            .all(|code| *code == Some(ErrorCode::InvalidToken)),
        "the others are told the token is spent: {outcomes:?}"
    );
    assert_ne!(resumed[0], &session.token);
}

#[test]
fn expired_tokens_do_not_resume() {
    let server = TestServer::start_with(|config| config.token_lifetime = Duration::from_millis(1));
    let (_client, session) = server.user("ivo");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(server.connect().resume(&session.token).unwrap_err().code(), Some(ErrorCode::InvalidToken));
}

#[test]
fn nobody_reads_or_writes_someone_elses_conversations() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let (_bia, b) = server.user("bia");
    let (mut eve, e) = server.user("eve");
    ana.send(b.name.as_str(), "only for bia", 1).unwrap();
    // Eve can only ever see her own side of a conversation: with ana it is empty.
    for with in [a.name.as_str(), b.name.as_str()] {
        let page = eve.history(with, None, 200).unwrap();
        assert!(page.messages.is_empty(), "eve read {with}'s messages");
    }
    // What eve sends is always from eve, whatever she claims in the body.
    let (id, _) = eve.send(b.name.as_str(), "from: ana", 1).unwrap();
    let (mut bia, _) = server.login(b.name.as_str());
    let page = bia.history(e.name.as_str(), None, 5).unwrap();
    assert_eq!((page.messages[0].id, &page.messages[0].from), (id, &e.name));
}

#[test]
fn change_password_keeps_this_session_and_revokes_the_others() {
    let server = TestServer::start();
    let name = unique_name("pat");
    let mut client = server.connect();
    client.register(&name, PASSWORD).unwrap();
    let mine = client.login(&name, PASSWORD).unwrap();
    let other = server.connect().login(&name, PASSWORD).unwrap();

    let wrong = Request::ChangePassword { old: "not the password".into(), new: "a new password".into() };
    assert_eq!(client.request_done(wrong).unwrap_err().code(), Some(ErrorCode::InvalidCredentials));
    let change = Request::ChangePassword { old: PASSWORD.into(), new: "a new password".into() };
    client.request_done(change).unwrap();
    // The session that changed it goes on working.
    assert_eq!(client.request(Request::Ping).unwrap(), Reply::Pong);

    assert_eq!(server.connect().resume(&other.token).unwrap_err().code(), Some(ErrorCode::InvalidToken));
    assert_eq!(
        server.connect().login(&name, PASSWORD).unwrap_err().code(),
        Some(ErrorCode::InvalidCredentials)
    );
    server.connect().login(&name, "a new password").unwrap();
    assert_eq!(server.connect().resume(&mine.token).unwrap().name, mine.name);
}
