//! The administration socket of a running server (an online export that imports whole,
//! accounts, sessions) and `papo-server admin` on a stopped one.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{unique_name, TestServer, PASSWORD};
use papo_protocol::{ErrorCode, Event, GroupMessageKind, Request as ClientRequest, Username};
use papo_server::admin::{self, Account, InviteCode, LiveSession, Outcome, Request};
use papo_server::store::{AccountStatus, Line, Store};

/// Sends `request` to the server on `dir`: its outcome and the lines before it.
fn ask(dir: &Path, request: &Request) -> (Outcome, Vec<String>) {
    let mut out = Vec::new();
    let outcome = admin::request(dir, request, &mut out).unwrap().expect("a server answers");
    (outcome, String::from_utf8(out).unwrap().lines().map(str::to_owned).collect())
}

fn parse<T: serde::de::DeserializeOwned>(lines: &[String]) -> Vec<T> {
    lines.iter().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// Waits until the server on `dir` lists `count` live sessions.
fn wait_for_sessions(dir: &Path, count: usize) -> Vec<LiveSession> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sessions: Vec<LiveSession> = parse(&ask(dir, &Request::Sessions).1);
        if sessions.len() == count || Instant::now() > deadline {
            return sessions;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `papo-server admin ARGS` on `dir`, with the new password (if any) in `PAPO_PASSWORD`.
fn admin_command(dir: &Path, args: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_papo-server"));
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("PAPO_")) {
        command.env_remove(key);
    }
    command
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .arg("--data-dir")
        .arg(dir)
        .arg("admin");
    if let Some(password) = password {
        command.env("PAPO_PASSWORD", password);
    }
    command.args(args).output().unwrap()
}

#[test]
fn a_running_server_exports_through_its_socket_and_the_export_imports_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {});
    let (ana, bia) = (unique_name("ana"), unique_name("bia"));
    let mut client = server.connect();
    client.register(&ana, PASSWORD).unwrap();
    client.register(&bia, PASSWORD).unwrap();
    client.login(&ana, PASSWORD).unwrap();
    for i in 0..25 {
        client.send(&bia, &format!("online {i}"), i).unwrap();
    }
    let socket = dir.path().join(admin::SOCKET);
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);

    let mut export = Vec::new();
    let outcome = admin::request(dir.path(), &Request::Export, &mut export).unwrap();
    assert_eq!(outcome, Some(Outcome::Done("exported 2 users and 25 messages".into())));
    let lines: Vec<Line> = String::from_utf8(export.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(matches!(lines.first(), Some(Line::Header { last_id: 25, .. })));
    assert!(matches!(
        lines.last(),
        Some(Line::End { users: 2, messages: 25, groups: 0, group_messages: 0, invites: 0 })
    ));

    let copy_dir = tempfile::tempdir().unwrap();
    let copy = Store::open(copy_dir.path()).unwrap();
    copy.import(export.as_slice(), 0).unwrap();
    let (ana, bia) = (Username::parse(&ana).unwrap(), Username::parse(&bia).unwrap());
    let page = copy.history(&bia, &ana, None, 50).unwrap();
    assert_eq!(page.messages.len(), 25);
    assert_eq!(page.messages[0].body, "online 24");

    server.stop().unwrap();
    assert!(!socket.exists(), "a stopped server removes its socket");
    let mut nothing = Vec::new();
    assert_eq!(admin::request(dir.path(), &Request::Export, &mut nothing).unwrap(), None);
}

#[test]
fn a_running_server_lists_accounts_and_live_sessions_and_disconnects_a_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {});
    let (ana, bia) = (unique_name("ana"), unique_name("bia"));
    server.connect().register(&ana, PASSWORD).unwrap();
    server.connect().register(&bia, PASSWORD).unwrap();
    let (mut first, _) = server.login(&ana);
    let (mut second, _) = server.login(&ana);
    let (mut bias, _) = server.login(&bia);

    let (outcome, lines) = ask(dir.path(), &Request::Users);
    assert_eq!(outcome, Outcome::Done("2 accounts".into()));
    let accounts: Vec<Account> = parse(&lines);
    let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, [ana.as_str(), bia.as_str()]);
    assert!(accounts.iter().all(|a| a.created_at > 0 && a.last_seen.is_none()));

    let sessions = wait_for_sessions(dir.path(), 3);
    let listed: Vec<&str> = sessions.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(listed, [ana.as_str(), ana.as_str(), bia.as_str()]);
    assert!(sessions.iter().all(|s| s.peer.ip().is_loopback() && s.since > 0));

    let (outcome, _) = ask(dir.path(), &Request::Disconnect { name: ana.to_uppercase(), peer: None });
    assert_eq!(outcome, Outcome::Done(format!("disconnected 2 sessions of {ana}")));
    for client in [&mut first, &mut second] {
        assert!(client.request(ClientRequest::Ping).is_err(), "a disconnected session is closed");
    }
    assert_eq!(bias.request(ClientRequest::Ping).unwrap(), papo_protocol::Reply::Pong);
    assert_eq!(wait_for_sessions(dir.path(), 1).len(), 1);
    // Disconnected is not locked out.
    server.login(&ana);

    let (outcome, _) = ask(dir.path(), &Request::Disconnect { name: "nobody".into(), peer: None });
    assert!(matches!(&outcome, Outcome::Error(e) if e.contains("no account called nobody")), "{outcome:?}");
}

#[test]
fn a_password_reset_on_a_running_server_revokes_and_disconnects_every_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {});
    let ana = unique_name("ana");
    server.connect().register(&ana, PASSWORD).unwrap();
    let (mut live, session) = server.login(&ana);

    let reset = Request::ResetPassword { name: ana.clone(), password: "short".into() };
    assert!(matches!(ask(dir.path(), &reset).0, Outcome::Error(e) if e.contains("8 to 128 bytes")));
    let reset = Request::ResetPassword { name: ana.clone(), password: "a new password".into() };
    assert_eq!(
        ask(dir.path(), &reset).0,
        Outcome::Done(format!(
            "reset the password of {ana}, revoked 1 saved sessions, disconnected 1 sessions"
        ))
    );
    assert!(live.request(ClientRequest::Ping).is_err());
    assert_eq!(server.connect().resume(&session.token).unwrap_err().code(), Some(ErrorCode::InvalidToken));
    assert_eq!(
        server.connect().login(&ana, PASSWORD).unwrap_err().code(),
        Some(ErrorCode::InvalidCredentials)
    );
    server.connect().login(&ana, "a new password").unwrap();
}

#[test]
fn the_admin_command_works_on_a_stopped_server_for_accounts_only() {
    let dir = tempfile::tempdir().unwrap();
    let ana = unique_name("ana");
    let server = TestServer::start_in(dir.path(), |_| {});
    server.connect().register(&ana, PASSWORD).unwrap();
    let (_, session) = server.login(&ana);
    server.stop().unwrap();

    let output = admin_command(dir.path(), &["reset-password", &ana], Some("a new password"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("reset the password of {ana}, revoked 1 saved sessions")), "{stderr}");

    assert!(stderr.contains("administrator reset a password"), "the action is logged: {stderr}");

    let output = admin_command(dir.path(), &["users"], None);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let accounts: Vec<Account> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].name.as_str(), ana);
    assert!(accounts[0].last_seen.is_some(), "the session ended when the server stopped");

    let output = admin_command(dir.path(), &["sessions"], None);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no server is running"));

    let server = TestServer::start_in(dir.path(), |_| {});
    assert_eq!(server.connect().resume(&session.token).unwrap_err().code(), Some(ErrorCode::InvalidToken));
    server.connect().login(&ana, "a new password").unwrap();
}

#[test]
fn a_disabled_account_is_closed_at_once_refused_at_login_and_resume_until_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {});
    let (ana, bia) = (unique_name("ana"), unique_name("bia"));
    server.connect().register(&ana, PASSWORD).unwrap();
    server.connect().register(&bia, PASSWORD).unwrap();
    let (mut live, session) = server.login(&ana);
    let (mut bias, _) = server.login(&bia);
    wait_for_sessions(dir.path(), 2);

    let (outcome, _) = ask(dir.path(), &Request::Disable { name: ana.clone() });
    assert_eq!(outcome, Outcome::Done(format!("disabled {ana}, disconnected 1 sessions")));
    // The live session is told why, then closed.
    let closed = live.next_event().unwrap_err();
    assert_eq!(closed.code(), Some(ErrorCode::AccountDisabled), "{closed}");
    assert!(closed.to_string().contains("this account is disabled by the administrator"), "{closed}");
    assert_eq!(bias.request(ClientRequest::Ping).unwrap(), papo_protocol::Reply::Pong);

    let refused = server.connect().login(&ana, PASSWORD).unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::AccountDisabled), "{refused}");
    assert_eq!(server.connect().resume(&session.token).unwrap_err().code(), Some(ErrorCode::AccountDisabled));
    // Only someone who knows the password learns that the account is disabled.
    let guessed = server.connect().login(&ana, "not the password").unwrap_err();
    assert_eq!(guessed.code(), Some(ErrorCode::InvalidCredentials));
    let accounts: Vec<Account> = parse(&ask(dir.path(), &Request::Users).1);
    let statuses: Vec<(&str, AccountStatus)> = accounts.iter().map(|a| (a.name.as_str(), a.status)).collect();
    assert_eq!(statuses, [(ana.as_str(), AccountStatus::Disabled), (bia.as_str(), AccountStatus::Active)]);
    // Messages to a disabled account are still stored, for when it comes back.
    bias.send(&ana, "while you were away", 1).unwrap();

    let (outcome, _) = ask(dir.path(), &Request::Disable { name: ana.clone() });
    assert_eq!(outcome, Outcome::Done(format!("{ana} was already disabled, disconnected 0 sessions")));
    let (outcome, _) = ask(dir.path(), &Request::Enable { name: ana.clone() });
    assert_eq!(outcome, Outcome::Done(format!("enabled {ana}")));
    let (outcome, _) = ask(dir.path(), &Request::Enable { name: "nobody".into() });
    assert!(matches!(&outcome, Outcome::Error(e) if e.contains("no account called nobody")), "{outcome:?}");
    let (_, back) = server.login(&ana);
    assert_eq!(back.pending, 1);
}

#[test]
fn an_account_disabled_on_a_stopped_server_stays_disabled_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let ana = unique_name("ana");
    let server = TestServer::start_in(dir.path(), |_| {});
    server.connect().register(&ana, PASSWORD).unwrap();
    let (_, session) = server.login(&ana);
    server.stop().unwrap();

    let output = admin_command(dir.path(), &["disable", &ana], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("disabled {ana}")), "{stderr}");

    let server = TestServer::start_in(dir.path(), |_| {});
    assert_eq!(server.connect().login(&ana, PASSWORD).unwrap_err().code(), Some(ErrorCode::AccountDisabled));
    assert_eq!(server.connect().resume(&session.token).unwrap_err().code(), Some(ErrorCode::AccountDisabled));
    server.stop().unwrap();
    let output = admin_command(dir.path(), &["enable", &ana], None);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let server = TestServer::start_in(dir.path(), |_| {});
    server.login(&ana);
}

#[test]
fn a_deleted_account_is_closed_its_messages_stay_and_its_name_is_never_given_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {});
    let (ana, bia, cris) = (unique_name("ana"), unique_name("bia"), unique_name("cris"));
    for user in [&ana, &bia, &cris] {
        server.connect().register(user, PASSWORD).unwrap();
    }
    let (mut anas, session) = server.login(&ana);
    let (mut bias, _) = server.login(&bia);
    anas.send(&bia, "first", 1).unwrap();
    anas.send(&bia, "second", 2).unwrap();
    let (lab, solo) = (format!("#{}", unique_name("lab")), format!("#{}", unique_name("solo")));
    anas.create_group(&lab, &[&bia], false).unwrap();
    anas.request(ClientRequest::AddMembers { group: lab.clone(), members: vec![cris.clone()] }).unwrap();
    anas.create_group(&solo, &[], false).unwrap();
    common::contacts(&mut bias);
    wait_for_sessions(dir.path(), 2);

    let (outcome, _) = ask(dir.path(), &Request::Delete { name: ana.clone() });
    assert_eq!(
        outcome,
        Outcome::Done(format!(
            "deleted {ana}, revoked 1 saved sessions, left 1 groups, deleted 1 groups, disconnected 1 sessions"
        ))
    );
    let closed = anas.next_event().unwrap_err();
    assert!(closed.to_string().contains("deleted this account"), "{closed}");

    // Bia is told, and sees the group she has been in longest handed to her.
    let (mut told, mut handed, mut left) = (false, false, false);
    for _ in 0..50 {
        match bias.next_event().unwrap() {
            Event::UserDeleted { user } => told |= user.as_str() == ana,
            Event::GroupMessage(line) => match line.kind {
                GroupMessageKind::OwnerChanged { to } => handed |= to.as_str() == bia,
                GroupMessageKind::Left => left |= line.from.as_str() == ana,
                _ => {}
            },
            _ => {}
        }
        if told && handed && left {
            break;
        }
    }
    assert!(told && handed && left, "told {told}, handed over {handed}, left {left}");
    let info = bias.group_info(&lab).unwrap();
    assert_eq!(info.owner.as_str(), bia);
    let members: Vec<&str> = info.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(members, [bia.as_str(), cris.as_str()]);

    // Her messages stay in Bia's history, from an account the contact list marks deleted.
    let page = common::history(&mut bias, &ana, None, 10);
    let bodies: Vec<&str> = page.messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["second", "first"]);
    let listed = common::contacts(&mut bias);
    let deleted: Vec<(&str, bool)> = listed.iter().map(|c| (c.name.as_str(), c.deleted)).collect();
    assert!(
        deleted.contains(&(ana.as_str(), true)) && deleted.contains(&(cris.as_str(), false)),
        "{deleted:?}"
    );
    let refused = bias.send(&ana, "are you there?", 3).unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::UnknownUser));
    assert!(refused.to_string().contains("was deleted"), "{refused}");
    assert_eq!(bias.history(&ana, None, 10).unwrap().messages.len(), 2, "a refused send stores nothing");

    // The account is gone, and its name is not given to anyone else.
    assert_eq!(
        server.connect().login(&ana, PASSWORD).unwrap_err().code(),
        Some(ErrorCode::InvalidCredentials)
    );
    assert_eq!(server.connect().resume(&session.token).unwrap_err().code(), Some(ErrorCode::InvalidToken));
    assert_eq!(server.connect().register(&ana, PASSWORD).unwrap_err().code(), Some(ErrorCode::NameTaken));
    let (outcome, _) = ask(dir.path(), &Request::Delete { name: ana.clone() });
    assert!(matches!(&outcome, Outcome::Error(e) if e.contains("no account called")), "{outcome:?}");
    let (outcome, _) = ask(dir.path(), &Request::Enable { name: ana.clone() });
    assert!(matches!(&outcome, Outcome::Error(e) if e.contains("no account called")), "{outcome:?}");
    let accounts: Vec<Account> = parse(&ask(dir.path(), &Request::Users).1);
    assert_eq!(accounts.iter().find(|a| a.name.as_str() == ana).unwrap().status, AccountStatus::Deleted);

    server.stop().unwrap();
    let report = papo_server::store::check(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn an_account_deleted_on_a_stopped_server_is_gone_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let ana = unique_name("ana");
    let server = TestServer::start_in(dir.path(), |_| {});
    server.connect().register(&ana, PASSWORD).unwrap();
    server.login(&ana);
    server.stop().unwrap();

    let output = admin_command(dir.path(), &["delete", &ana], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("deleted {ana}, revoked 1 saved sessions")), "{stderr}");
    let output = admin_command(dir.path(), &["delete", &ana], None);
    assert!(!output.status.success());

    let server = TestServer::start_in(dir.path(), |_| {});
    assert_eq!(
        server.connect().login(&ana, PASSWORD).unwrap_err().code(),
        Some(ErrorCode::InvalidCredentials)
    );
    assert_eq!(server.connect().register(&ana, PASSWORD).unwrap_err().code(), Some(ErrorCode::NameTaken));
}

#[test]
fn invite_codes_are_created_listed_and_revoked_on_a_stopped_server_and_each_action_logged() {
    let dir = tempfile::tempdir().unwrap();
    TestServer::start_in(dir.path(), |_| {}).stop().unwrap();

    let output = admin_command(dir.path(), &["invite", "create", "--uses", "3"], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("administrator created an invite code"), "the action is logged: {stderr}");
    let created: InviteCode = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(created.uses_left, 3);

    let output = admin_command(dir.path(), &["invite", "list"], None);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let listed: Vec<InviteCode> =
        parse(&String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect::<Vec<_>>());
    assert_eq!(listed, std::slice::from_ref(&created));

    let output = admin_command(dir.path(), &["invite", "revoke", &created.code], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("administrator revoked an invite code"), "the action is logged: {stderr}");
    let output = admin_command(dir.path(), &["invite", "list"], None);
    assert!(output.stdout.is_empty(), "revoked: {}", String::from_utf8_lossy(&output.stdout));
}

#[test]
fn a_running_server_disconnects_one_chosen_session_of_a_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {});
    let ana = unique_name("ana");
    server.connect().register(&ana, PASSWORD).unwrap();
    let (mut first, _) = server.login(&ana);
    let (mut second, _) = server.login(&ana);
    let sessions = wait_for_sessions(dir.path(), 2);
    let chosen = sessions[1].peer;

    let (outcome, _) = ask(dir.path(), &Request::Disconnect { name: ana.clone(), peer: Some(chosen) });
    assert_eq!(outcome, Outcome::Done(format!("disconnected the session of {ana} from {chosen}")));
    let left = wait_for_sessions(dir.path(), 1);
    assert_eq!(left[0].peer, sessions[0].peer, "only the chosen session is closed");
    let pongs = [&mut first, &mut second].map(|client| client.request(ClientRequest::Ping).is_ok());
    assert_eq!(pongs.iter().filter(|&&alive| alive).count(), 1, "one session stays: {pongs:?}");

    let (outcome, _) = ask(dir.path(), &Request::Disconnect { name: ana.clone(), peer: Some(chosen) });
    assert!(matches!(&outcome, Outcome::Error(e) if e.contains("no live session from")), "{outcome:?}");

    let output = admin_command(dir.path(), &["disconnect", &ana, "--peer", &left[0].peer.to_string()], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("disconnected the session of {ana} from {}", left[0].peer)), "{stderr}");
    assert!(wait_for_sessions(dir.path(), 0).is_empty(), "both sessions closed");
}
