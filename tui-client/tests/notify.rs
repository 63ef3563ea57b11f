//! Never missing a message (issue 17) as `update` and `view` unit tests: bells and
//! notifications, the title, the unread position, Alt+A, search, last seen, typing, mute
//! and the password form.

mod common;

use common::*;
use papo::app::{update, Alert, Model, Msg, Overlay};
use papo::net::{NetCommand, NetEvent, SearchQuery};
use papo::settings::Notify;
use papo_protocol::{ChatMessage, Event, HistoryPage, SearchPage};
use ratatui::crossterm::event::KeyCode;

fn page(peer: &str, oldest_first: Vec<ChatMessage>, more: bool) -> Msg {
    let page = HistoryPage {
        messages: oldest_first.into_iter().rev().collect(),
        more,
        peer_delivered_up_to: 0,
        peer_read_up_to: 0,
    };
    Msg::Net(NetEvent::History { with: name(peer), before: None, page })
}

fn incoming(id: u64, from: &str, to: &str, body: &str) -> Msg {
    Msg::Net(NetEvent::Server(Event::Message(message(id, from, to, body))))
}

fn typed_line(text: &str, model: &mut Model) -> Vec<NetCommand> {
    let mut commands = type_text(model, text);
    commands.extend(update(model, key(KeyCode::Enter)));
    commands
}

/// `ana` with the conversation with `bia` open and loaded, and `caio` in the list.
fn chatting() -> Model {
    let mut model = logged_in(vec![contact("bia", true, 0, 1), contact("caio", true, 0, 0)]);
    update(&mut model, alt(KeyCode::Char('1')));
    update(&mut model, page("bia", vec![message(1, "bia", "ana", "hi")], false));
    model.alerts.clear();
    model
}

#[test]
fn a_message_out_of_sight_rings_and_one_on_screen_does_not() {
    let mut model = chatting();
    update(&mut model, incoming(2, "bia", "ana", "on screen"));
    assert_eq!(model.alerts, [], "the open conversation, focused: seen");
    update(&mut model, incoming(3, "caio", "ana", "elsewhere"));
    assert_eq!(model.alerts, [Alert::Bell]);
    model.alerts.clear();
    // Unfocused, even the open conversation is out of sight.
    update(&mut model, Msg::Focus(false));
    update(&mut model, incoming(4, "bia", "ana", "while away"));
    assert_eq!(model.alerts, [Alert::Bell]);
    model.alerts.clear();
    // My own message from another session, and history being loaded, never ring.
    update(&mut model, incoming(5, "ana", "caio", "from my phone"));
    update(&mut model, page("caio", vec![message(6, "caio", "ana", "old")], false));
    assert_eq!(model.alerts, []);
    // A box over the conversation hides it too.
    update(&mut model, Msg::Focus(true));
    update(&mut model, key(KeyCode::F(1)));
    update(&mut model, incoming(7, "bia", "ana", "behind help"));
    assert_eq!(model.alerts, [Alert::Bell]);
}

#[test]
fn notify_preferences_choose_bell_desktop_or_nothing_and_mute_silences() {
    let mut model = chatting();
    model.prefs.notify = Notify::Desktop;
    update(&mut model, incoming(2, "caio", "ana", "secret plans"));
    assert_eq!(
        model.alerts,
        [Alert::Bell, Alert::Desktop { from: name("caio"), group: None, preview: None }]
    );
    model.alerts.clear();
    model.prefs.notify_preview = true;
    update(&mut model, incoming(3, "caio", "ana", "lunch?"));
    assert_eq!(
        model.alerts[1],
        Alert::Desktop { from: name("caio"), group: None, preview: Some("lunch?".into()) }
    );
    model.alerts.clear();
    model.prefs.notify = Notify::None;
    update(&mut model, incoming(4, "caio", "ana", "quiet"));
    assert_eq!(model.alerts, []);
    model.prefs.notify = Notify::Bell;
    typed_line("/mute caio", &mut model);
    assert!(model.prefs.muted.contains(&name("caio")));
    update(&mut model, incoming(5, "caio", "ana", "muted"));
    assert_eq!(model.alerts, []);
    let screen = render(&model, 80, 24);
    assert!(row(&screen, "caio").contains('⊘'), "{}", screen.join("\n"));
    typed_line("/unmute caio", &mut model);
    assert!(model.prefs.muted.is_empty());
    update(&mut model, incoming(6, "caio", "ana", "loud again"));
    assert_eq!(model.alerts, [Alert::Bell]);
}

#[test]
fn the_title_and_status_bar_say_how_many_are_unread_and_where() {
    let mut model = logged_in(vec![contact("bia", true, 2, 5), contact("caio", true, 1, 3)]);
    assert_eq!(model.title(), "papo (3)");
    let screen = render(&model, 100, 24);
    // Oldest activity first: caio's last message is older than bia's.
    assert!(screen[23].contains("3 unread: caio 1, bia 2"), "{}", screen[23]);
    // Alt+A goes there, oldest first, and then to the next.
    update(&mut model, alt(KeyCode::Char('a')));
    assert_eq!(model.selected, Some(user("caio")));
    update(&mut model, page("caio", vec![message(3, "caio", "ana", "x")], false));
    assert_eq!(model.title(), "papo (2)");
    update(&mut model, alt(KeyCode::Char('a')));
    assert_eq!(model.selected, Some(user("bia")));
    update(
        &mut model,
        page("bia", vec![message(4, "bia", "ana", "y"), message(5, "bia", "ana", "z")], false),
    );
    assert_eq!(model.title(), "papo");
    update(&mut model, alt(KeyCode::Char('a')));
    assert_eq!(model.notice.as_deref(), Some("nothing unread"));
}

#[test]
fn a_conversation_opens_at_its_first_unread_message_under_a_new_line() {
    let mut model = logged_in(vec![contact("bia", true, 30, 60), contact("caio", true, 0, 0)]);
    update(&mut model, alt(KeyCode::Char('1')));
    let history: Vec<_> = (1..=60).map(|id| message(id, "bia", "ana", &format!("line {id}"))).collect();
    let commands = update(&mut model, page("bia", history, false));
    let screen = render(&model, 80, 24);
    // The line sits above message 31 at the top of the pane, the older ones out of sight.
    let new_at = screen.iter().position(|r| r.contains("── new ──")).expect("a new line");
    assert_eq!(new_at, 1, "{}", screen.join("\n"));
    assert!(screen[2].contains("line 31"), "{}", screen.join("\n"));
    assert!(!screen.concat().contains("line 30"), "{}", screen.join("\n"));
    // What is below, out of sight, is not read until it has been on screen.
    assert_eq!(commands, []);
    let commands = update(&mut model, ctrl_end());
    assert_eq!(commands, [NetCommand::MarkRead { with: user("bia"), up_to: 60 }]);
    // The line stays while the conversation is open, and goes once it is left.
    update(&mut model, incoming(61, "bia", "ana", "more"));
    assert_eq!(model.conversations[&user("bia")].marker, Some(31));
    update(&mut model, alt(KeyCode::Char('2')));
    assert_eq!(model.conversations[&user("bia")].marker, None);
    update(&mut model, alt(KeyCode::Char('1')));
    update(&mut model, key(KeyCode::PageUp));
    let screen = render(&model, 80, 24).concat();
    assert!(screen.contains("line 31") && !screen.contains("── new ──"), "{screen}");
}

fn ctrl_end() -> Msg {
    Msg::Key(ratatui::crossterm::event::KeyEvent::new(
        KeyCode::End,
        ratatui::crossterm::event::KeyModifiers::CONTROL,
    ))
}

#[test]
fn the_first_unread_message_is_fetched_from_older_pages_before_anything_is_read() {
    let mut model = logged_in(vec![contact("bia", true, 3, 10)]);
    update(&mut model, alt(KeyCode::Char('1')));
    let newest = vec![message(9, "bia", "ana", "second unread"), message(10, "bia", "ana", "third unread")];
    let commands = update(&mut model, page("bia", newest, true));
    assert_eq!(commands, [NetCommand::History { with: user("bia"), before: Some(9) }]);
    let older = HistoryPage {
        messages: vec![message(8, "bia", "ana", "first unread"), message(7, "bia", "ana", "already read")],
        more: false,
        peer_delivered_up_to: 0,
        peer_read_up_to: 0,
    };
    let commands =
        update(&mut model, Msg::Net(NetEvent::History { with: name("bia"), before: Some(9), page: older }));
    assert_eq!(commands, [NetCommand::MarkRead { with: user("bia"), up_to: 10 }]);
    let screen = render(&model, 80, 24);
    let new_at = screen.iter().position(|r| r.contains("── new ──")).expect("a new line");
    assert!(screen[new_at - 1].contains("already read"), "{}", screen.join("\n"));
    assert!(screen[new_at + 1].contains("first unread"), "{}", screen.join("\n"));
}

fn results(text: &str, hits: Vec<ChatMessage>, next_before: Option<u64>) -> Msg {
    let query = SearchQuery { text: text.into(), with: None, before: None };
    Msg::Net(NetEvent::SearchResults {
        query,
        page: SearchPage { hits, group_hits: Vec::new(), next_before },
    })
}

#[test]
fn ctrl_f_searches_pages_on_and_opens_a_match_at_its_message() {
    let mut model = chatting();
    update(&mut model, ctrl('f'));
    assert_eq!(model.overlay, Some(Overlay::Search));
    let commands = typed_line("Lunch", &mut model);
    assert_eq!(
        commands,
        [NetCommand::Search(SearchQuery { text: "Lunch".into(), with: None, before: None })]
    );
    // A short page asks for the next one at once.
    let commands = update(
        &mut model,
        results("Lunch", vec![message(40, "caio", "ana", "see you at lunch, ok")], Some(40)),
    );
    assert_eq!(
        commands,
        [NetCommand::Search(SearchQuery { text: "Lunch".into(), with: None, before: Some(40) })]
    );
    update(&mut model, results("Lunch", vec![message(7, "ana", "caio", "LUNCH today?")], None));
    let (screen, highlighted) = render_with_highlight(&model, 100, 24);
    assert!(row(&screen, "see you at lunch").contains("caio"), "{}", screen.join("\n"));
    row(&screen, "you: LUNCH today?");
    assert_eq!(highlighted, ["lunch", "LUNCH"], "each match, found ignoring case");
    // Enter opens the conversation of the selected match, loading it back to that message.
    update(&mut model, key(KeyCode::Down));
    let commands = update(&mut model, key(KeyCode::Enter));
    assert_eq!(model.overlay, None);
    assert_eq!(model.selected, Some(user("caio")));
    assert_eq!(commands, [NetCommand::History { with: user("caio"), before: None }]);
    let newest: Vec<_> = (8..=60).map(|id| message(id, "caio", "ana", &format!("later {id}"))).collect();
    let commands = update(&mut model, page("caio", newest, true));
    assert_eq!(commands, [NetCommand::History { with: user("caio"), before: Some(8) }]);
    let older = HistoryPage {
        messages: vec![message(7, "ana", "caio", "LUNCH today?"), message(6, "caio", "ana", "before")],
        more: false,
        peer_delivered_up_to: 0,
        peer_read_up_to: 0,
    };
    update(&mut model, Msg::Net(NetEvent::History { with: name("caio"), before: Some(8), page: older }));
    let screen = render(&model, 80, 24);
    row(&screen, "LUNCH today?");
    // Esc goes back to the results.
    update(&mut model, key(KeyCode::Esc));
    assert_eq!(model.overlay, Some(Overlay::Search));
    update(&mut model, key(KeyCode::Esc));
    assert_eq!(model.overlay, None);
}

#[test]
fn search_here_limits_to_the_open_conversation_and_stale_answers_are_dropped() {
    let mut model = chatting();
    let commands = typed_line("/search --here hi", &mut model);
    assert_eq!(
        commands,
        [NetCommand::Search(SearchQuery { text: "hi".into(), with: Some(user("bia")), before: None })]
    );
    // An answer to another search changes nothing.
    update(&mut model, results("other", vec![message(1, "bia", "ana", "hi")], None));
    assert!(model.search.as_ref().unwrap().hits.is_empty());
    // Tab searches everyone again.
    let commands = update(&mut model, key(KeyCode::Tab));
    assert_eq!(commands, [NetCommand::Search(SearchQuery { text: "hi".into(), with: None, before: None })]);
    let failed = NetEvent::SearchFailed {
        query: SearchQuery { text: "hi".into(), with: None, before: None },
        reason: "boom\x1b[2J".into(),
    };
    update(&mut model, Msg::Net(failed));
    let screen = render(&model, 100, 24);
    row(&screen, "boom\\u{1b}[2J");
}

#[test]
fn the_header_says_when_an_offline_contact_was_last_seen_and_who_is_typing() {
    let mut model = logged_in(vec![contact("bia", false, 0, 1)]);
    update(&mut model, Msg::Clock(NOW + 3_600_000));
    model.contacts[0].last_seen = Some(NOW - 5 * 86_400_000);
    update(&mut model, alt(KeyCode::Char('1')));
    let screen = render(&model, 80, 24);
    assert!(screen[0].contains("bia ○ last seen 20 Nov"), "{}", screen[0]);
    update(&mut model, Msg::Net(NetEvent::Server(Event::Presence { user: name("bia"), online: true })));
    update(&mut model, Msg::Net(NetEvent::Server(Event::Presence { user: name("bia"), online: false })));
    assert!(render(&model, 80, 24)[0].contains("last seen today 11:00"));
    // Typing shows for six seconds, or until the message arrives.
    update(&mut model, Msg::Net(NetEvent::Server(Event::Typing { from: name("bia") })));
    assert!(render(&model, 80, 24)[0].contains("typing…"));
    assert!(model.wake_in().is_some_and(|wait| wait.as_millis() == 6_000), "the loop wakes to take it down");
    update(&mut model, Msg::Clock(NOW + 3_600_000 + 6_000));
    assert!(!render(&model, 80, 24)[0].contains("typing…"));
    update(&mut model, Msg::Net(NetEvent::Server(Event::Typing { from: name("bia") })));
    update(&mut model, incoming(2, "bia", "ana", "done typing"));
    assert!(!render(&model, 80, 24)[0].contains("typing…"));
}

#[test]
fn typing_is_sent_at_most_every_three_seconds_and_never_for_commands() {
    let mut model = chatting();
    update(&mut model, Msg::Clock(NOW));
    let typing =
        |commands: &[NetCommand]| commands.iter().filter(|c| matches!(c, NetCommand::Typing { .. })).count();
    assert_eq!(typing(&type_text(&mut model, "hello")), 1);
    update(&mut model, Msg::Clock(NOW + 2_999));
    assert_eq!(typing(&type_text(&mut model, "x")), 0);
    update(&mut model, Msg::Clock(NOW + 3_000));
    assert_eq!(type_text(&mut model, "y"), [NetCommand::Typing { to: name("bia") }]);
    // Sending ends it: typing again says so at once.
    update(&mut model, key(KeyCode::Enter));
    assert_eq!(typing(&type_text(&mut model, "z")), 1);
    update(&mut model, ctrl('u'));
    update(&mut model, Msg::Clock(NOW + 10_000));
    assert_eq!(typing(&type_text(&mut model, "/help")), 0, "a command is no message");
    update(&mut model, ctrl('u'));
    model.prefs.send_typing = false;
    update(&mut model, Msg::Clock(NOW + 20_000));
    assert_eq!(typing(&type_text(&mut model, "quiet")), 0);
}

#[test]
fn the_password_form_checks_and_sends_change_password() {
    let mut model = chatting();
    typed_line("/passwd", &mut model);
    assert!(matches!(model.overlay, Some(Overlay::Password(_))));
    type_text(&mut model, "old secret");
    update(&mut model, key(KeyCode::Enter));
    type_text(&mut model, "new secret 1");
    update(&mut model, key(KeyCode::Enter));
    type_text(&mut model, "new secret 2");
    assert_eq!(update(&mut model, key(KeyCode::Enter)), []);
    let screen = render(&model, 80, 24);
    row(&screen, "the two new passwords differ");
    assert!(!screen.concat().contains("old secret"), "passwords are masked");
    for _ in 0..12 {
        update(&mut model, key(KeyCode::Backspace));
    }
    type_text(&mut model, "new secret 1");
    let commands = update(&mut model, key(KeyCode::Enter));
    assert_eq!(
        commands,
        [NetCommand::ChangePassword { old: "old secret".into(), new: "new secret 1".into() }]
    );
    update(&mut model, Msg::Net(NetEvent::PasswordChanged(Ok(()))));
    assert_eq!(model.overlay, None);
    assert_eq!(model.notice.as_deref(), Some("your password was changed"));
}
