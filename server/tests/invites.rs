//! The registration policy (`--registration open|invite|closed`) and invite codes, against
//! the real server: every refusal stores nothing, and a code is used up exactly once.

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{unique_name, TestServer, PASSWORD};
use papo_protocol::ErrorCode;
use papo_server::admin::{self, InviteCode, Outcome, Request};
use papo_server::{LimitPolicy, Registration, RegistrationPolicy};

fn server_with(dir: &Path, registration: Registration) -> TestServer {
    let server = TestServer::start_in(dir, |config| {
        config.registration = Arc::new(RegistrationPolicy::new(registration));
        config.limits = LimitPolicy::unlimited();
    });
    // A handshake answered means the server, its administration socket included, is up.
    server.connect();
    server
}

/// Sends `request` to the server on `dir`: its outcome and the lines before it.
fn ask(dir: &Path, request: &Request) -> (Outcome, Vec<String>) {
    let mut out = Vec::new();
    let outcome = admin::request(dir, request, &mut out).unwrap().expect("a server answers");
    (outcome, String::from_utf8(out).unwrap().lines().map(str::to_owned).collect())
}

fn create_invite(dir: &Path, uses: u32, expires_in_secs: Option<u64>) -> InviteCode {
    let (outcome, lines) = ask(dir, &Request::CreateInvite { uses, expires_in_secs });
    assert_eq!(outcome, Outcome::Done(format!("created an invite code for {uses} registrations")));
    serde_json::from_str(&lines[0]).unwrap()
}

fn register(server: &TestServer, name: &str, invite: Option<&str>) -> Option<ErrorCode> {
    server
        .connect()
        .register_with_invite(name, PASSWORD, invite)
        .err()
        .map(|e| e.code().expect("a typed error"))
}

fn invites(dir: &Path) -> Vec<InviteCode> {
    ask(dir, &Request::Invites).1.iter().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn an_invite_server_registers_only_with_a_valid_code_and_uses_it_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), Registration::Invite);
    let code = create_invite(dir.path(), 1, None);
    assert_eq!((code.uses_left, code.expires_at, code.code.len()), (1, None, 20));
    let (ana, bia) = (unique_name("ana"), unique_name("bia"));

    assert_eq!(register(&server, &ana, None), Some(ErrorCode::InviteRequired));
    assert_eq!(register(&server, &ana, Some("not-a-code")), Some(ErrorCode::InviteInvalid));
    assert_eq!(
        server.connect().login(&ana, PASSWORD).unwrap_err().code(),
        Some(ErrorCode::InvalidCredentials)
    );
    assert_eq!(register(&server, &ana, Some(&code.code)), None);
    server.login(&ana);
    // Single use: gone now.
    assert_eq!(register(&server, &bia, Some(&code.code)), Some(ErrorCode::InviteInvalid));
    assert!(invites(dir.path()).is_empty());

    // A registration refused for its name keeps the code.
    let two = create_invite(dir.path(), 2, None);
    assert_eq!(register(&server, &ana, Some(&two.code)), Some(ErrorCode::NameTaken));
    assert_eq!(invites(dir.path())[0].uses_left, 2);
    assert_eq!(register(&server, &bia, Some(&two.code)), None);
    assert_eq!(invites(dir.path())[0].uses_left, 1);

    // Revoked and expired codes are refused.
    let (outcome, _) = ask(dir.path(), &Request::RevokeInvite { code: two.code.clone() });
    assert_eq!(outcome, Outcome::Done(format!("revoked the invite code {}", two.code)));
    assert_eq!(register(&server, &unique_name("cris"), Some(&two.code)), Some(ErrorCode::InviteInvalid));
    let (outcome, _) = ask(dir.path(), &Request::RevokeInvite { code: two.code.clone() });
    assert!(matches!(&outcome, Outcome::Error(e) if e.contains("no invite code")), "{outcome:?}");
    let brief = create_invite(dir.path(), 5, Some(1));
    assert!(brief.expires_at.unwrap() > brief.created_at);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(register(&server, &unique_name("dani"), Some(&brief.code)), Some(ErrorCode::InviteInvalid));
    assert_eq!(invites(dir.path())[0].uses_left, 5, "an expired code is listed until revoked");
    let (outcome, _) = ask(dir.path(), &Request::CreateInvite { uses: 0, expires_in_secs: None });
    assert!(matches!(&outcome, Outcome::Error(e) if e.contains("at least one")), "{outcome:?}");
}

#[test]
fn of_many_registrations_racing_with_one_single_use_code_exactly_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(server_with(dir.path(), Registration::Invite));
    let code = create_invite(dir.path(), 1, None).code;
    let racers = 8;
    let barrier = Arc::new(Barrier::new(racers));
    let names: Vec<String> = (0..racers).map(|i| unique_name(&format!("racer{i}"))).collect();
    let threads: Vec<_> = names
        .iter()
        .cloned()
        .map(|name| {
            let (server, barrier, code) = (Arc::clone(&server), Arc::clone(&barrier), code.clone());
            std::thread::spawn(move || {
                let mut client = server.connect();
                barrier.wait();
                client.register_with_invite(&name, PASSWORD, Some(&code)).err().map(|e| e.code())
            })
        })
        .collect();
    let outcomes: Vec<_> = threads.into_iter().map(|thread| thread.join().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|outcome| outcome.is_none()).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().flatten().all(|code| *code == Some(ErrorCode::InviteInvalid)), "{outcomes:?}");
    let logged_in = names.iter().filter(|name| server.connect().login(name, PASSWORD).is_ok()).count();
    assert_eq!(logged_in, 1, "exactly one account was stored");
}

#[test]
fn a_closed_server_registers_no_one_and_an_open_one_ignores_invites() {
    let dir = tempfile::tempdir().unwrap();
    let closed = server_with(dir.path(), Registration::Closed);
    let code = create_invite(dir.path(), 1, None).code;
    let ana = unique_name("ana");
    assert_eq!(register(&closed, &ana, None), Some(ErrorCode::RegistrationClosed));
    assert_eq!(register(&closed, &ana, Some(&code)), Some(ErrorCode::RegistrationClosed));
    assert_eq!(invites(dir.path()).len(), 1, "the code is still unused");
    closed.stop().unwrap();

    let open = server_with(dir.path(), Registration::Open);
    assert_eq!(register(&open, &ana, Some("anything")), None);
    assert_eq!(invites(dir.path())[0].uses_left, 1, "an open server uses no code");
}
