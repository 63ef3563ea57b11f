//! `Typing` and last seen, through the handlers and over in-memory sessions.

use std::time::Duration;

use papo_protocol::{ErrorCode, Event, Reply, Request};

use super::TYPING_GAP_MILLIS;
use crate::clock::Clock;
use crate::fixture::Fixture;
use crate::handlers::{Audience, Delivery};

#[test]
fn typing_goes_to_the_peer_at_most_once_per_gap_and_is_never_stored() {
    let fixture = Fixture::new();
    let (ana, bia) = (fixture.user("ana"), fixture.user("bia"));
    let (me, _) = fixture.login(&ana);
    let typing = || fixture.handle(Some(&me), Request::Typing { to: bia.to_string() });
    let first = typing();
    assert_eq!(first.reply, Some(Ok(Reply::Done)));
    assert_eq!(
        first.deliveries,
        [Delivery { to: Audience::User(bia.clone()), events: vec![Event::Typing { from: ana.clone() }] }]
    );
    assert!(typing().deliveries.is_empty(), "a second event within the gap is dropped");
    fixture.clock.advance(Duration::from_millis(u64::try_from(TYPING_GAP_MILLIS).unwrap()));
    assert_eq!(typing().deliveries.len(), 1);
    assert_eq!(fixture.shared().store.history(&ana, &bia, None, 10).unwrap().messages, []);
}

#[test]
fn typing_to_oneself_or_nobody_is_refused() {
    let fixture = Fixture::new();
    let ana = fixture.user("ana");
    let (me, _) = fixture.login(&ana);
    for (to, code) in [(ana.as_str(), ErrorCode::InvalidRequest), ("nobody-here", ErrorCode::UnknownUser)] {
        let handled = fixture.handle(Some(&me), Request::Typing { to: to.into() });
        assert_eq!(handled.reply.unwrap().unwrap_err().code, code);
    }
}

#[test]
fn the_last_session_leaving_records_last_seen_and_contacts_carry_it_while_offline() {
    let fixture = Fixture::new();
    let (ana, bia) = (fixture.user("ana"), fixture.user("bia"));
    let first = fixture.login_client(&ana);
    let second = fixture.login_client(&ana);
    let mut watcher = fixture.login_client(&bia);
    let contact = |watcher: &mut crate::fixture::MemoryClient| {
        let Ok(Reply::Contacts(page)) = watcher.request(Request::Contacts { after: None }) else { panic!() };
        page.contacts.into_iter().find(|c| c.name == ana).unwrap()
    };
    assert_eq!((contact(&mut watcher).online, contact(&mut watcher).last_seen), (true, None));
    first.hang_up();
    assert!(first.finish().0.is_ok());
    assert_eq!(fixture.shared().store.last_seen(&ana).unwrap(), None, "another session is still there");
    fixture.clock.advance(Duration::from_secs(60));
    second.hang_up();
    assert!(second.finish().0.is_ok());
    assert_eq!(watcher.next_event(), Event::Presence { user: ana.clone(), online: false });
    let seen = fixture.shared().store.last_seen(&ana).unwrap().expect("recorded");
    assert_eq!(seen, fixture.clock.now_millis());
    let offline = contact(&mut watcher);
    assert_eq!((offline.online, offline.last_seen), (false, Some(seen)));
}
