//! `Search` straight through the handlers: only the caller's conversations, checked
//! arguments, pages that fit a frame.

use papo_protocol::{ErrorCode, Reply, Request, SearchPage, MAX_BODY_LEN, MAX_SEARCH_QUERY};

use super::SEARCH_PAGE_BYTES;
use crate::fixture::Fixture;
use crate::handlers::{Handled, Identity};

fn search(
    fixture: &Fixture,
    me: &Identity,
    query: &str,
    with: Option<&str>,
) -> Result<SearchPage, ErrorCode> {
    let request =
        Request::Search { query: query.into(), with: with.map(Into::into), before: None, limit: 50 };
    match fixture.handle(Some(me), request) {
        Handled { reply: Some(Ok(Reply::Search(page))), deliveries, .. } => {
            assert!(deliveries.is_empty());
            Ok(page)
        }
        Handled { reply: Some(Err(e)), .. } => Err(e.code),
        other => panic!("not a search reply: {other:?}"),
    }
}

#[test]
fn finds_only_the_callers_own_conversations_ignoring_case() {
    let fixture = Fixture::new();
    let (ana, bia, caio) = (fixture.user("ana"), fixture.user("bia"), fixture.user("caio"));
    let (ana_id, _) = fixture.login(&ana);
    let (bia_id, _) = fixture.login(&bia);
    let (caio_id, _) = fixture.login(&caio);
    for (from, to, body) in [
        (&ana_id, &bia, "the Secret plan"),
        (&bia_id, &caio, "another secret"),
        (&caio_id, &ana, "nothing here"),
    ] {
        assert!(fixture.send(from, to.as_str(), body, 1).0.is_ok());
    }

    let bodies = |page: SearchPage| page.hits.into_iter().map(|m| m.body).collect::<Vec<_>>();
    assert_eq!(bodies(search(&fixture, &ana_id, "SECRET", None).unwrap()), ["the Secret plan"]);
    assert_eq!(
        bodies(search(&fixture, &bia_id, "secret", None).unwrap()),
        ["another secret", "the Secret plan"]
    );
    // Caio names the conversation between ana and bia: he still sees only his own.
    assert!(search(&fixture, &caio_id, "secret", Some(bia.as_str()))
        .unwrap()
        .hits
        .iter()
        .all(|m| m.from == caio || m.to == caio));
    assert_eq!(bodies(search(&fixture, &caio_id, "secret", None).unwrap()), ["another secret"]);
    assert_eq!(bodies(search(&fixture, &bia_id, "secret", Some(ana.as_str())).unwrap()), ["the Secret plan"]);
}

#[test]
fn empty_long_or_unknown_arguments_are_refused() {
    let fixture = Fixture::new();
    let (me, _) = fixture.login(&fixture.user("ana"));
    assert_eq!(search(&fixture, &me, "  ", None).unwrap_err(), ErrorCode::InvalidRequest);
    assert_eq!(
        search(&fixture, &me, &"x".repeat(MAX_SEARCH_QUERY + 1), None).unwrap_err(),
        ErrorCode::TooLarge
    );
    assert_eq!(search(&fixture, &me, "hi", Some("nobody-here")).unwrap_err(), ErrorCode::UnknownUser);
    let anonymous =
        fixture.handle(None, Request::Search { query: "x".into(), with: None, before: None, limit: 1 });
    assert_eq!(anonymous.reply.unwrap().unwrap_err().code, ErrorCode::NotLoggedIn);
}

#[test]
fn a_page_of_long_matches_is_cut_to_fit_a_frame_and_goes_on_from_its_last() {
    let fixture = Fixture::new();
    let (me, bia) = (fixture.login(&fixture.user("ana")).0, fixture.user("bia"));
    let body = "m".repeat(MAX_BODY_LEN);
    for id in 0..20 {
        assert!(fixture.send(&me, bia.as_str(), &body, id).0.is_ok());
    }
    let page = search(&fixture, &me, "m", None).unwrap();
    let fits = SEARCH_PAGE_BYTES / MAX_BODY_LEN;
    assert_eq!(page.hits.len(), fits);
    assert_eq!(page.next_before, page.hits.last().map(|m| m.id));
    let request = Request::Search { query: "m".into(), with: None, before: page.next_before, limit: 50 };
    let Some(Ok(Reply::Search(rest))) = fixture.handle(Some(&me), request).reply else { panic!("no page") };
    assert_eq!(rest.hits.len(), 20 - fits);
    assert!(rest.hits.iter().all(|m| Some(m.id) < page.next_before));
}
