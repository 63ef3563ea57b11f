//! The full-screen search (Ctrl+F, `/search`) over direct conversations and groups at once:
//! one list newest first, each match labelled with its conversation, Enter opening a group
//! at its match as it opens a direct conversation, paging on, and hostile text made harmless.

mod common;

use common::groups::*;
use common::*;
use papo::app::{update, Model, Msg, Overlay};
use papo::net::{NetCommand, NetEvent, SearchQuery};
use papo::sanitize::is_unsafe;
use papo_protocol::{
    frame, ChatMessage, GroupHistoryPage, GroupMessage, Reply, SearchPage, ServerFrame, MAX_FRAME_LEN,
};
use ratatui::crossterm::event::KeyCode;

fn query(text: &str, with: Option<papo::app::ConvKey>, before: Option<u64>) -> SearchQuery {
    SearchQuery { text: text.into(), with, before }
}

/// The answer to `query` with these matches.
fn answer(
    query: SearchQuery,
    hits: Vec<ChatMessage>,
    group_hits: Vec<GroupMessage>,
    next: Option<u64>,
) -> Msg {
    Msg::Net(NetEvent::SearchResults { query, page: SearchPage { hits, group_hits, next_before: next } })
}

/// ana with `#lab` and bia in the list, and "lunch" searched everywhere.
fn searched_lunch() -> Model {
    let mut model = with_lab();
    update(&mut model, ctrl('f'));
    assert_eq!(enter(&mut model, "lunch"), [NetCommand::Search(query("lunch", None, None))]);
    model
}

/// The matches the search box lists, top to bottom, with runs of spaces squeezed.
fn listed(screen: &[String]) -> Vec<String> {
    let first = screen.iter().position(|r| r.contains("› lunch")).expect("the search box") + 1;
    screen[first..]
        .iter()
        .take_while(|r| !r.contains("found"))
        .filter(|r| r.contains(" · "))
        .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn direct_and_group_matches_are_listed_together_newest_first_each_with_its_conversation() {
    let mut model = searched_lunch();
    let hits = vec![message(40, "bia", "ana", "lunch at noon?"), message(7, "ana", "bia", "LUNCH today?")];
    let group_hits = vec![text(41, "caio", "who wants lunch"), text(20, "ana", "lunch in the lab")];
    let commands = update(&mut model, answer(query("lunch", None, None), hits, group_hits, None));
    assert_eq!(commands, [], "everything was searched");
    let (screen, highlighted) = render_with_highlight(&model, 100, 24);
    let rows = listed(&screen);
    let expected = [
        "#lab · 10:41 · caio: who wants lunch",
        "bia · 10:40 · bia: lunch at noon?",
        "#lab · 10:20 · you: lunch in the lab",
        "bia · 10:07 · you: LUNCH today?",
    ];
    for (row, expected) in rows.iter().zip(expected) {
        assert!(row.contains(expected), "{row:?} is not {expected:?}\n{}", screen.join("\n"));
    }
    assert_eq!(rows.len(), expected.len(), "{}", screen.join("\n"));
    assert_eq!(
        highlighted,
        ["lunch", "lunch", "lunch", "LUNCH"],
        "group bodies are highlighted as direct ones"
    );
    row(&screen, "4 found · Enter opens");
    row(&screen, "Search every conversation and group");
}

#[test]
fn enter_on_a_group_match_opens_the_group_loaded_back_to_it_and_esc_returns() {
    let mut model = searched_lunch();
    let hits = vec![message(40, "bia", "ana", "lunch at noon?")];
    update(
        &mut model,
        answer(query("lunch", None, None), hits, vec![text(7, "caio", "LUNCH in the lab")], None),
    );
    update(&mut model, key(KeyCode::Down));
    let commands = update(&mut model, key(KeyCode::Enter));
    assert_eq!(model.overlay, None);
    assert_eq!(model.selected, Some(lab()));
    assert!(commands.contains(&NetCommand::History { with: lab(), before: None }), "{commands:?}");
    // The newest page does not reach the match: the one before it is asked for.
    let newest = GroupHistoryPage {
        group: group("#lab"),
        messages: (8..=60).rev().map(|id| text(id, "bia", &format!("later {id}"))).collect(),
        more: true,
    };
    let commands = update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page: newest }));
    assert_eq!(commands, [NetCommand::History { with: lab(), before: Some(8) }]);
    let older = GroupHistoryPage {
        group: group("#lab"),
        messages: vec![text(7, "caio", "LUNCH in the lab"), text(6, "bia", "before")],
        more: false,
    };
    update(&mut model, Msg::Net(NetEvent::GroupHistory { before: Some(8), page: older }));
    assert_eq!(model.conversations[&lab()].highlight, Some(7));
    let screen = render(&model, 80, 24);
    row(&screen, "LUNCH in the lab");
    assert!(!screen.concat().contains("later 60"), "scrolled back to the match\n{}", screen.join("\n"));
    update(&mut model, key(KeyCode::Esc));
    assert_eq!(model.overlay, Some(Overlay::Search));
    // The direct match opens its conversation as before.
    update(&mut model, key(KeyCode::Up));
    let commands = update(&mut model, key(KeyCode::Enter));
    assert_eq!(model.selected, Some(user("bia")));
    assert_eq!(commands, [NetCommand::History { with: user("bia"), before: None }]);
    assert_eq!(model.conversations[&lab()].highlight, None, "left behind");
}

#[test]
fn search_here_in_a_group_searches_that_group_and_tab_switches_to_everything() {
    let mut model = with_lab();
    update(&mut model, alt(KeyCode::Char('1')));
    assert_eq!(model.selected, Some(lab()));
    let commands = enter(&mut model, "/search --here lunch");
    assert_eq!(commands, [NetCommand::Search(query("lunch", Some(lab()), None))]);
    let screen = render(&model, 100, 24);
    row(&screen, "Search in #lab · Tab: everyone");
    update(
        &mut model,
        answer(query("lunch", Some(lab()), None), vec![], vec![text(3, "bia", "lunch?")], None),
    );
    row(&render(&model, 100, 24), "#lab · 10:03 · bia: lunch?");
    let commands = update(&mut model, key(KeyCode::Tab));
    assert_eq!(commands, [NetCommand::Search(query("lunch", None, None))]);
    assert!(model.search.as_ref().unwrap().hits.is_empty(), "the group's results made way");
    let commands = update(&mut model, key(KeyCode::Tab));
    assert_eq!(commands, [NetCommand::Search(query("lunch", Some(lab()), None))]);
}

#[test]
fn search_here_with_nothing_open_says_to_open_a_conversation_and_sends_nothing() {
    let mut model = with_lab();
    assert_eq!(enter(&mut model, "/search --here lunch"), []);
    assert_eq!(model.notice.as_deref(), Some("--here searches the open conversation: open one first"));
}

#[test]
fn pages_of_group_matches_page_on_and_the_next_page_goes_below() {
    let mut model = searched_lunch();
    // A short page of group matches only asks for the next at once.
    let first = vec![text(90, "bia", "lunch 90"), text(85, "caio", "lunch 85")];
    let commands = update(&mut model, answer(query("lunch", None, None), vec![], first, Some(80)));
    assert_eq!(commands, [NetCommand::Search(query("lunch", None, Some(80)))]);
    let hits = vec![message(50, "bia", "ana", "lunch 50")];
    let second = vec![text(60, "bia", "lunch 60"), text(3, "bia", "lunch 3")];
    let commands = update(&mut model, answer(query("lunch", None, Some(80)), hits, second, None));
    assert_eq!(commands, []);
    let ids: Vec<u64> = model.search.as_ref().unwrap().hits.iter().map(|hit| hit.id).collect();
    assert_eq!(ids, [90, 85, 60, 50, 3]);
    // Walking to the end asks for nothing once everything was searched.
    for _ in 0..5 {
        assert_eq!(update(&mut model, key(KeyCode::Down)), []);
    }
}

#[test]
fn a_long_list_of_group_matches_asks_for_more_once_the_end_is_reached() {
    let mut model = searched_lunch();
    let many: Vec<_> = (0..25).map(|at| text(500 - at, "bia", &format!("lunch {at}"))).collect();
    let commands = update(&mut model, answer(query("lunch", None, None), vec![], many, Some(476)));
    assert_eq!(commands, [], "enough to look at");
    row(&render(&model, 100, 24), "25 found · Down for more");
    let mut asked = Vec::new();
    for _ in 0..3 {
        asked.extend(update(&mut model, key(KeyCode::PageDown)));
    }
    assert_eq!(asked, [NetCommand::Search(query("lunch", None, Some(476)))], "once, while it is on its way");
    update(
        &mut model,
        answer(query("lunch", None, Some(476)), vec![], vec![text(9, "bia", "old lunch")], None),
    );
    assert_eq!(model.search.as_ref().unwrap().hits.last().map(|hit| hit.id), Some(9));
}

/// Retitles the window, turns everything red, reverses the text after it, forges a line.
const HOSTILE: &str = "\x1b]0;pwned\x07\x1b[31mbad\u{202E}txt\u{2028}forged";

#[test]
fn a_hostile_group_match_is_drawn_visibly_and_harmlessly() {
    let mut model = searched_lunch();
    let body = format!("lunch {HOSTILE}");
    update(&mut model, answer(query("lunch", None, None), vec![], vec![text(5, "bia", &body)], None));
    let screen = render(&model, 120, 24);
    for shown in &screen {
        let bad: Vec<char> = shown.chars().filter(|&c| is_unsafe(c)).collect();
        assert!(bad.is_empty(), "{bad:?} reached the screen: {shown:?}");
    }
    row(&screen, "#lab · 10:05 · bia: lunch \\u{1b}]0;pwned\\u{7}\\u{1b}[31mbad\\u{202e}txt\\u{2028}forged");
    let failed = NetEvent::SearchFailed { query: query("lunch", None, None), reason: HOSTILE.into() };
    update(&mut model, Msg::Net(failed));
    row(&render(&model, 120, 24), "\\u{1b}]0;pwned");
}

/// Group and sender names are checked as they are decoded, so a server cannot put escape
/// sequences in them: the whole reply is refused before anything of it is shown.
#[test]
fn a_search_reply_with_a_hostile_group_or_sender_name_is_refused_whole() {
    let hostile = "#\x1b]0;x\x07";
    let placeholder = "#abcdef";
    assert_eq!(hostile.len(), placeholder.len());
    let mut line = text(5, "bia", "lunch");
    line.group = group(placeholder);
    let fine = ServerFrame::Reply {
        id: 1,
        result: Ok(Reply::Search(SearchPage { hits: vec![], group_hits: vec![line], next_before: None })),
    };
    let bytes = frame::encode(&fine, MAX_FRAME_LEN).unwrap();
    assert!(
        matches!(frame::decode::<ServerFrame>(&bytes, MAX_FRAME_LEN), Ok(Some((decoded, _))) if decoded == fine)
    );
    for (valid, bad) in [(placeholder, hostile), ("bia", "b\x1bi")] {
        let at = bytes.windows(valid.len()).position(|w| w == valid.as_bytes()).unwrap();
        let mut forged = bytes.clone();
        forged[at..at + valid.len()].copy_from_slice(bad.as_bytes());
        assert!(frame::decode::<ServerFrame>(&forged, MAX_FRAME_LEN).is_err(), "{bad:?} was accepted");
    }
}
