//! `Register`, `Login`, `Resume` and `Logout`, straight through the handlers.

use std::time::Duration;

use papo_protocol::{ErrorCode, Event, Reply, Request};

use super::hash_token;
use crate::clock::Clock;
use crate::fixture::{logged_in, Fixture};
use crate::handlers::{Audience, Delivery, Then};
use crate::limits::rate::Window;
use crate::testing::PASSWORD;
use crate::LimitPolicy;

fn register(name: &str, password: &str) -> Request {
    Request::Register { name: name.into(), password: password.into(), invite: None }
}

fn login(name: &str, password: &str) -> Request {
    Request::Login { name: name.into(), password: password.into() }
}

fn code(handled: &crate::handlers::Handled) -> Option<ErrorCode> {
    handled.reply.as_ref().and_then(|reply| reply.as_ref().err()).map(|e| e.code)
}

#[test]
fn register_stores_the_account_and_announces_it_to_subscribers() {
    let fixture = Fixture::new();
    let handled = fixture.handle(None, register("Nova", PASSWORD));
    assert_eq!(handled.reply, Some(Ok(Reply::Registered)));
    let nova = papo_protocol::Username::parse("nova").unwrap();
    assert_eq!(
        handled.deliveries,
        [Delivery { to: Audience::Subscribers, events: vec![Event::UserRegistered { user: nova.clone() }] }]
    );
    assert_eq!(handled.then, Then::Continue);
    let record = fixture.shared().store.user(&nova).unwrap().expect("stored");
    assert!(bcrypt::verify(PASSWORD, &record.password_hash).unwrap(), "the password is stored as its hash");
    assert_eq!(record.created_at, fixture.clock.now_millis());
}

#[test]
fn register_refuses_bad_names_bad_passwords_and_taken_names() {
    let fixture = Fixture::new();
    for bad in ["", "../etc", "has space", "\u{430}na", &"x".repeat(33)] {
        assert_eq!(
            code(&fixture.handle(None, register(bad, PASSWORD))),
            Some(ErrorCode::InvalidName),
            "{bad:?}"
        );
    }
    for (password, fits) in
        [("x".repeat(7), false), ("x".repeat(8), true), ("x".repeat(128), true), ("x".repeat(129), false)]
    {
        let name = crate::testing::unique_name("pw");
        let handled = fixture.handle(None, register(&name, &password));
        let expected = if fits { None } else { Some(ErrorCode::InvalidPassword) };
        assert_eq!(code(&handled), expected, "{} bytes", password.len());
    }
    let taken = fixture.user("taken");
    let handled = fixture.handle(None, register(&taken.as_str().to_uppercase(), PASSWORD));
    assert_eq!(code(&handled), Some(ErrorCode::NameTaken));
    assert!(handled.deliveries.is_empty(), "a refusal announces nothing");
}

#[test]
fn register_on_a_full_disk_says_so_and_stores_nothing() {
    let fixture = Fixture::with(|config| config.store.reserve_bytes = u64::MAX);
    let handled = fixture.handle(None, register("nova", PASSWORD));
    assert_eq!(code(&handled), Some(ErrorCode::StorageFull));
    assert!(handled.deliveries.is_empty());
    assert!(fixture.shared().store.user(&papo_protocol::Username::parse("nova").unwrap()).unwrap().is_none());
}

#[test]
fn register_works_logged_in_too() {
    let fixture = Fixture::new();
    let (me, _) = fixture.login(&fixture.user("ana"));
    assert_eq!(fixture.handle(Some(&me), register("newcomer", PASSWORD)).reply, Some(Ok(Reply::Registered)));
}

#[test]
fn login_hands_out_a_token_whose_hash_is_stored_and_counts_the_waiting_messages() {
    let fixture = Fixture::new();
    let (ana, bia) = (fixture.user("ana"), fixture.user("bia"));
    let (me, _) = fixture.login(&ana);
    fixture.send(&me, bia.as_str(), "one", 1).0.unwrap();
    fixture.send(&me, bia.as_str(), "two", 2).0.unwrap();
    let handled = fixture.handle(None, login(&bia.as_str().to_uppercase(), PASSWORD));
    let Some(Ok(Reply::LoggedIn(session))) = &handled.reply else { panic!("{handled:?}") };
    assert_eq!((&session.name, session.pending, session.token.len()), (&bia, 2, 64));
    let token = session.token.clone();
    let (identity, _) = logged_in(handled);
    assert_eq!(identity.token_hash, hash_token(&token));
    let stored =
        fixture.shared().store.token(&identity.token_hash).unwrap().expect("the token's hash is stored");
    assert_eq!(stored.user, bia);
    assert!(fixture.shared().store.token(token.as_bytes()).unwrap().is_none(), "never the token itself");
}

#[test]
fn wrong_passwords_unknown_names_and_invalid_names_get_the_same_reply() {
    let fixture = Fixture::new();
    let ana = fixture.user("ana");
    let replies: Vec<_> =
        [login(ana.as_str(), "not the password"), login("nobody", PASSWORD), login("no/such", PASSWORD)]
            .into_iter()
            .map(|request| {
                let handled = fixture.handle(None, request);
                assert_eq!(handled.then, Then::Continue);
                handled.reply
            })
            .collect();
    assert_eq!(replies[0].as_ref().unwrap().as_ref().unwrap_err().code, ErrorCode::InvalidCredentials);
    assert!(replies.iter().all(|reply| *reply == replies[0]), "{replies:?}");
}

/// Limits with `logins` attempts a minute for one name from one address, the rest off.
fn per_name_and_address(logins: usize) -> LimitPolicy {
    LimitPolicy {
        logins_per_address_and_name: Window { limit: logins, span: Duration::from_secs(60) },
        ..LimitPolicy::unlimited()
    }
}

#[test]
fn failed_logins_lock_the_name_in_any_case_until_the_window_passes() {
    let fixture = Fixture::with(|config| config.limits = per_name_and_address(3));
    let (eva, other) = (fixture.user("eva"), fixture.user("other"));
    for _ in 0..3 {
        assert_eq!(
            code(&fixture.handle(None, login(eva.as_str(), "guess guess"))),
            Some(ErrorCode::InvalidCredentials)
        );
    }
    for name in [eva.to_string(), eva.as_str().to_uppercase()] {
        let handled = fixture.handle(None, login(&name, PASSWORD));
        assert_eq!(code(&handled), Some(ErrorCode::RateLimited), "{name}");
        let message = &handled.reply.unwrap().unwrap_err().message;
        assert!(message.contains("try again in 60 s"), "{message}");
    }
    fixture.login(&other);
    fixture.clock.advance(Duration::from_secs(30));
    assert_eq!(code(&fixture.handle(None, login(eva.as_str(), PASSWORD))), Some(ErrorCode::RateLimited));
    fixture.clock.advance(Duration::from_secs(31));
    fixture.login(&eva);
}

#[test]
fn a_successful_login_forgives_the_owners_typos() {
    let fixture = Fixture::with(|config| config.limits = per_name_and_address(2));
    let eva = fixture.user("eva");
    for _ in 0..3 {
        assert_eq!(
            code(&fixture.handle(None, login(eva.as_str(), "guess guess"))),
            Some(ErrorCode::InvalidCredentials)
        );
        fixture.login(&eva);
    }
}

#[test]
fn registrations_are_counted_by_address_before_hashing() {
    let fixture = Fixture::with(|config| {
        config.limits = LimitPolicy {
            registrations_per_address: Window { limit: 2, span: Duration::from_secs(3600) },
            ..LimitPolicy::unlimited()
        }
    });
    for name in ["reg0", "reg1"] {
        assert_eq!(fixture.handle(None, register(name, PASSWORD)).reply, Some(Ok(Reply::Registered)));
    }
    let handled = fixture.handle(None, register("reg2", PASSWORD));
    assert_eq!(code(&handled), Some(ErrorCode::RateLimited));
    assert!(handled.reply.unwrap().unwrap_err().message.contains("try again in 3600 s"));
    assert!(fixture.shared().store.user(&papo_protocol::Username::parse("reg2").unwrap()).unwrap().is_none());
}

#[test]
fn login_and_resume_are_refused_once_logged_in() {
    let fixture = Fixture::new();
    let ana = fixture.user("ana");
    let (me, token) = fixture.login(&ana);
    for request in [login(ana.as_str(), PASSWORD), Request::Resume { token }] {
        let handled = fixture.handle(Some(&me), request);
        assert_eq!((code(&handled), handled.then), (Some(ErrorCode::AlreadyLoggedIn), Then::Continue));
    }
}

#[test]
fn a_full_disk_still_lets_people_log_in_without_a_saved_session() {
    let dir = tempfile::tempdir().unwrap();
    let ana = papo_protocol::Username::parse("ana").unwrap();
    {
        let fixture = Fixture::in_dir(dir.path(), |_| {});
        assert_eq!(fixture.handle(None, register("ana", PASSWORD)).reply, Some(Ok(Reply::Registered)));
    }
    let fixture = Fixture::in_dir(dir.path(), |config| config.store.reserve_bytes = u64::MAX);
    let (identity, token) = fixture.login(&ana);
    assert!(fixture.shared().store.token(&identity.token_hash).unwrap().is_none());
    assert_eq!(code(&fixture.handle(None, Request::Resume { token })), Some(ErrorCode::InvalidToken));
}

#[test]
fn resume_is_single_use_hands_out_a_new_token_and_expires() {
    let fixture = Fixture::with(|config| config.token_lifetime = Duration::from_secs(60));
    let ana = fixture.user("ana");
    let (_, token) = fixture.login(&ana);
    let (identity, fresh) = logged_in(fixture.handle(None, Request::Resume { token: token.clone() }));
    assert_eq!(identity.name, ana);
    assert_ne!(fresh, token);
    assert_eq!(code(&fixture.handle(None, Request::Resume { token })), Some(ErrorCode::InvalidToken));
    assert_eq!(
        code(&fixture.handle(None, Request::Resume { token: "garbage".into() })),
        Some(ErrorCode::InvalidToken)
    );

    fixture.clock.advance(Duration::from_secs(61));
    let handled = fixture.handle(None, Request::Resume { token: fresh });
    assert_eq!((code(&handled), handled.then), (Some(ErrorCode::InvalidToken), Then::Continue));
}

#[test]
fn logout_revokes_the_token_and_closes() {
    let fixture = Fixture::new();
    let (me, token) = fixture.login(&fixture.user("ana"));
    let handled = fixture.handle(Some(&me), Request::Logout);
    assert_eq!((handled.reply, handled.then), (Some(Ok(Reply::Done)), Then::Close));
    assert_eq!(code(&fixture.handle(None, Request::Resume { token })), Some(ErrorCode::InvalidToken));
}

#[test]
fn only_register_login_resume_and_ping_work_before_login() {
    let fixture = Fixture::new();
    let ana = fixture.user("ana");
    for request in [
        Request::Logout,
        Request::Send { to: ana.to_string(), body: "hi".into(), client_msg_id: 1 },
        Request::History { with: ana.to_string(), before: None, limit: 10 },
        Request::Contacts { after: None },
        Request::MarkRead { with: ana.to_string(), up_to: 1 },
        Request::Delivered { from: ana.to_string(), up_to: 1 },
    ] {
        let handled = fixture.handle(None, request.clone());
        assert_eq!(
            (code(&handled), handled.then),
            (Some(ErrorCode::NotLoggedIn), Then::Continue),
            "{request:?}"
        );
    }
    assert_eq!(fixture.handle(None, Request::Ping).reply, Some(Ok(Reply::Pong)));
    let (me, _) = fixture.login(&ana);
    assert_eq!(fixture.handle(Some(&me), Request::Ping).reply, Some(Ok(Reply::Pong)));
}

fn change_password(old: &str, new: &str) -> Request {
    Request::ChangePassword { old: old.into(), new: new.into() }
}

#[test]
fn change_password_stores_the_new_one_and_revokes_every_other_session_of_the_user() {
    let fixture = Fixture::new();
    let (ana, bia) = (fixture.user("ana"), fixture.user("bia"));
    let (me, mine) = fixture.login(&ana);
    let (_, other) = fixture.login(&ana);
    let (_, third) = fixture.login(&ana);
    let (_, bias) = fixture.login(&bia);
    let handled = fixture.handle(Some(&me), change_password(PASSWORD, "a new password"));
    assert_eq!((handled.reply, handled.then), (Some(Ok(Reply::Done)), Then::Continue));

    for token in [other, third] {
        assert_eq!(code(&fixture.handle(None, Request::Resume { token })), Some(ErrorCode::InvalidToken));
    }
    assert_eq!(logged_in(fixture.handle(None, Request::Resume { token: mine })).0.name, ana);
    assert_eq!(logged_in(fixture.handle(None, Request::Resume { token: bias })).0.name, bia);
    assert_eq!(
        code(&fixture.handle(None, login(ana.as_str(), PASSWORD))),
        Some(ErrorCode::InvalidCredentials)
    );
    assert_eq!(logged_in(fixture.handle(None, login(ana.as_str(), "a new password"))).0.name, ana);
}

#[test]
fn change_password_with_a_wrong_old_one_changes_nothing_and_counts_as_a_failed_login() {
    let fixture = Fixture::with(|config| {
        let mut limits = LimitPolicy::unlimited();
        limits.logins_per_address_and_name = Window { limit: 2, span: Duration::from_secs(60) };
        config.limits = limits;
    });
    let ana = fixture.user("ana");
    let (me, _) = fixture.login(&ana);
    let (_, other) = fixture.login(&ana);
    for _ in 0..2 {
        let handled = fixture.handle(Some(&me), change_password("not the password", "a new password"));
        assert_eq!(code(&handled), Some(ErrorCode::InvalidCredentials));
    }
    // The two wrong guesses used up the name's attempts from this address, logins included.
    let handled = fixture.handle(Some(&me), change_password(PASSWORD, "a new password"));
    assert_eq!(code(&handled), Some(ErrorCode::RateLimited));
    assert_eq!(code(&fixture.handle(None, login(ana.as_str(), PASSWORD))), Some(ErrorCode::RateLimited));
    let record = fixture.shared().store.user(&ana).unwrap().unwrap();
    assert!(bcrypt::verify(PASSWORD, &record.password_hash).unwrap(), "the password is unchanged");
    assert_eq!(logged_in(fixture.handle(None, Request::Resume { token: other })).0.name, ana);
}

#[test]
fn change_password_refuses_a_new_password_of_the_wrong_length() {
    let fixture = Fixture::new();
    let (me, _) = fixture.login(&fixture.user("ana"));
    for new in ["short".to_owned(), "x".repeat(129)] {
        let handled = fixture.handle(Some(&me), change_password(PASSWORD, &new));
        assert_eq!(code(&handled), Some(ErrorCode::InvalidPassword));
    }
}

#[test]
fn change_password_needs_a_login() {
    let fixture = Fixture::new();
    let handled = fixture.handle(None, change_password(PASSWORD, "a new password"));
    assert_eq!(code(&handled), Some(ErrorCode::NotLoggedIn));
}

/// Hashes made by another implementation (glibc's libxcrypt, through Python's `crypt`), in
/// the three prefixes bcrypt hashes are stored with: an account whose hash a bcrypt crate
/// upgrade or an import from elsewhere brought still logs in, and only with its password.
#[test]
fn hashes_from_another_bcrypt_implementation_log_in() {
    let password = "correct horse ☃";
    let hashes = [
        "$2b$04$abcdefghijklmnopqrstuu2.TS5EMX8u3c.yl2EVprIEhnWxjNeBa",
        "$2y$04$ABCDEFGHIJKLMNOPQRSTUudvi2bOqTQZ9vbF4iZtH0jVd77sBy5Oe",
        "$2a$05$0123456789abcdefghijku2uMRkbY05F1Wzuju.7ubXPclggvH94m",
    ];
    let fixture = Fixture::new();
    for (i, password_hash) in hashes.into_iter().enumerate() {
        let name = papo_protocol::Username::parse(&format!("legacy{i}")).unwrap();
        let record = crate::store::UserRecord {
            password_hash: password_hash.into(),
            created_at: 0,
            status: crate::store::AccountStatus::Active,
        };
        assert!(fixture.shared().store.create_user(&name, &record).unwrap());
        let wrong = fixture.handle(None, login(name.as_str(), "correct horse"));
        assert_eq!(code(&wrong), Some(ErrorCode::InvalidCredentials), "{password_hash}");
        let right = fixture.handle(None, login(name.as_str(), password));
        assert!(matches!(right.reply, Some(Ok(Reply::LoggedIn(_)))), "{password_hash}: {:?}", right.reply);
    }
}
