//! The reading position, the contact list, the input and the screen (issue 15), as `update`
//! and `view` unit tests: models built by hand, drawn into `TestBackend`.

mod common;

use std::time::Duration;

use common::*;
use papo::app::{update, Look, Msg, Overlay};
use papo::net::{Link, NetCommand, NetEvent};
use papo_protocol::{ErrorCode, Event, HistoryPage, ReceiptKind};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::KeyCode;
use ratatui::style::{Color, Modifier};
use ratatui::Terminal;

fn page(peer: &str, oldest_first: Vec<papo_protocol::ChatMessage>, more: bool) -> Msg {
    let page = HistoryPage {
        messages: oldest_first.into_iter().rev().collect(),
        more,
        peer_delivered_up_to: 0,
        peer_read_up_to: 0,
    };
    Msg::Net(NetEvent::History { with: name(peer), before: None, page })
}

fn incoming(id: u64, from: &str, body: &str) -> Msg {
    Msg::Net(NetEvent::Server(Event::Message(message(id, from, "ana", body))))
}

#[test]
fn read_is_sent_only_for_what_is_on_screen() {
    let mut model = logged_in(vec![contact("bia", true, 0, 100)]);
    update(&mut model, ctrl('n'));
    update(&mut model, page("bia", (1..=100).map(|id| message(id, "bia", "ana", "old")).collect(), false));
    for _ in 0..5 {
        update(&mut model, key(KeyCode::PageUp));
    }
    let commands = update(&mut model, incoming(101, "bia", "new while scrolled back"));
    assert!(commands.iter().all(|c| !matches!(c, NetCommand::MarkRead { .. })), "{commands:?}");
    assert_eq!(model.contact(&user("bia")).unwrap().unread, 1);
    // Back at the bottom, it is on screen, so it is read.
    let commands = update(&mut model, ctrl_end());
    assert_eq!(commands, [NetCommand::MarkRead { with: user("bia"), up_to: 101 }]);
    // Behind the help box it is not on screen either.
    update(&mut model, key(KeyCode::F(1)));
    assert!(update(&mut model, incoming(102, "bia", "behind help")).is_empty());
    // Closing the box puts it on screen: read then, not only when the next one arrives.
    assert_eq!(
        update(&mut model, key(KeyCode::Esc)),
        [NetCommand::MarkRead { with: user("bia"), up_to: 102 }]
    );
    assert!(!update(&mut model, incoming(103, "bia", "seen")).is_empty());
}

fn ctrl_end() -> Msg {
    Msg::Key(ratatui::crossterm::event::KeyEvent::new(
        KeyCode::End,
        ratatui::crossterm::event::KeyModifiers::CONTROL,
    ))
}

#[test]
fn a_scrolled_back_view_stays_pinned_as_messages_arrive() {
    let mut model = logged_in(vec![contact("bia", true, 0, 200)]);
    update(&mut model, ctrl('n'));
    update(
        &mut model,
        page("bia", (1..=200).map(|id| message(id, "bia", "ana", &format!("line {id}"))).collect(), false),
    );
    for _ in 0..12 {
        update(&mut model, key(KeyCode::PageUp));
    }
    let before = render(&model, 80, 24);
    for id in 201..=205 {
        update(
            &mut model,
            incoming(id, "bia", "a longer message that wraps onto a second line of the pane, certainly"),
        );
    }
    let after = render(&model, 80, 24);
    // The history rows (below the title, above the hint) did not move.
    let history = |screen: &[String]| -> Vec<String> {
        screen[1..12].iter().map(|r| r.chars().skip(20).collect()).collect()
    };
    assert_eq!(history(&after), history(&before));
    row(&after, "▼ 5 new below");
}

#[test]
fn the_contact_list_keeps_its_order_while_walked_and_numbers_the_first_nine() {
    let contacts = vec![
        contact("user55", true, 2, 9),
        contact("user07", true, 1, 8),
        contact("dave", true, 0, 7),
        contact("carol", false, 0, 6),
        contact("user23", false, 1, 5),
        contact("bob", false, 0, 0),
    ];
    let mut model = logged_in(contacts);
    let order: Vec<String> = model.contacts.iter().map(|c| c.name.to_string()).collect();
    let mut visited = Vec::new();
    for _ in 0..6 {
        update(&mut model, ctrl('n'));
        let selected = model.selected.clone().unwrap();
        visited.push(selected.to_string());
        // Each opened conversation loads and is read: no re-sort under the cursor.
        let last = model.contact(&selected).unwrap().last_id.max(1);
        update(
            &mut model,
            page(selected.as_str(), vec![message(last, selected.as_str(), "ana", "x")], false),
        );
        update(&mut model, Msg::Net(NetEvent::Server(Event::Presence { user: name("bob"), online: true })));
    }
    assert_eq!(visited, order, "every contact once, in the order shown");
    update(&mut model, alt(KeyCode::Char('1')));
    assert_eq!(model.selected.as_ref().map(|n| n.to_string()), Some(order[0].clone()));
    assert_eq!(model.contacts[0].name.to_string(), order[0], "Alt+1 opened what stays first");
    let screen = render(&model, 80, 24);
    assert!(row(&screen, "1 ● user55").starts_with("│1 ● user55"), "{}", screen.join("\n"));
    assert!(row(&screen, "● bob").starts_with("│6 ● bob"), "{}", screen.join("\n"));
}

#[test]
fn a_long_contact_list_pages_and_says_what_is_out_of_sight() {
    let contacts: Vec<_> =
        (0..60).map(|i| contact(&format!("user{i:02}"), false, u64::from(i == 59), 0)).collect();
    let mut model = logged_in(contacts);
    let screen = render(&model, 80, 24);
    assert!(row(&screen, "▼").contains("more"), "{}", screen.join("\n"));
    // At the top nothing is above: no row is spent on an empty mark.
    assert!(screen[1].starts_with("│1 ○ user"), "{}", screen.join("\n"));
    update(&mut model, key(KeyCode::Tab));
    update(&mut model, key(KeyCode::PageDown));
    let first = model.selected.clone().unwrap();
    update(&mut model, key(KeyCode::PageDown));
    assert_ne!(model.selected, Some(first), "PageDown moves a page");
    update(&mut model, key(KeyCode::End));
    let last = model.contacts.last().unwrap().name.clone();
    assert_eq!(model.selected, Some(last));
    // An unread contact out of sight (here above) is announced.
    let screen = render(&model, 80, 24);
    assert!(row(&screen, "▲").contains("43 · 1 unread"), "{}", screen.join("\n"));
    // At the bottom nothing is below: the last contact takes the last row.
    assert!(
        screen[18].starts_with(&format!("│  ○ {}", model.contacts.last().unwrap().name)),
        "{}",
        screen.join("\n")
    );
    assert!(!screen.concat().contains('▼'));
    let blank = screen[1..19].iter().filter(|r| r.starts_with("│                  │")).count();
    assert_eq!(blank, 0, "{}", screen.join("\n"));
    update(&mut model, key(KeyCode::Home));
    assert_eq!(model.selected, Some(model.contacts[0].name.clone()));
}

#[test]
fn each_conversation_keeps_its_own_draft() {
    let mut model = logged_in(vec![contact("alice", true, 0, 0), contact("bob", true, 0, 0)]);
    update(&mut model, alt(KeyCode::Char('1')));
    type_text(&mut model, "for alice");
    update(&mut model, alt(KeyCode::Char('2')));
    assert_eq!(model.input.text(), "");
    type_text(&mut model, "for bob");
    update(&mut model, alt(KeyCode::Char('1')));
    assert_eq!(model.input.text(), "for alice");
    let commands = update(&mut model, key(KeyCode::Enter));
    assert!(
        matches!(&commands[..], [NetCommand::Send(o)] if o.to.as_str() == "alice" && o.body == "for alice")
    );
    update(&mut model, alt(KeyCode::Char('2')));
    assert_eq!(model.input.text(), "for bob");
}

#[test]
fn the_input_box_grows_with_its_lines_and_up_down_move_between_them() {
    let mut model = logged_in(vec![contact("bia", true, 0, 0)]);
    update(&mut model, ctrl('n'));
    type_text(&mut model, "one");
    update(&mut model, alt(KeyCode::Enter));
    type_text(&mut model, "two");
    update(&mut model, alt(KeyCode::Enter));
    let screen = render(&model, 80, 24);
    let title = screen.iter().position(|r| r.contains("Message to bia")).unwrap();
    assert!(screen[title + 1].contains("one") && screen[title + 2].contains("two"), "{}", screen.join("\n"));
    assert!(screen[title + 4].starts_with('╰'), "three lines and the border:\n{}", screen.join("\n"));
    update(&mut model, key(KeyCode::Up));
    update(&mut model, key(KeyCode::Up));
    type_text(&mut model, "!");
    assert_eq!(model.input.text(), "!one\ntwo\n");
    update(&mut model, key(KeyCode::Down));
    type_text(&mut model, "?");
    assert_eq!(model.input.text(), "!one\nt?wo\n");
    // At most a third of the screen, then it scrolls.
    for _ in 0..20 {
        update(&mut model, alt(KeyCode::Enter));
    }
    let screen = render(&model, 80, 24);
    let top = screen.iter().position(|r| r.contains("Message to bia")).unwrap();
    assert!(24 - top - 1 <= 8, "the box is {} rows", 24 - top - 1);
}

#[test]
fn the_help_fits_narrow_screens_wraps_and_scrolls() {
    let mut model = logged_in(vec![]);
    model.viewport = (40, 12);
    update(&mut model, key(KeyCode::F(1)));
    let screen = render(&model, 40, 12);
    assert!(screen.iter().all(|r| unicode_width::UnicodeWidthStr::width(r.as_str()) <= 40));
    row(&screen, "↓ more");
    let before = screen.join("\n");
    for _ in 0..100 {
        update(&mut model, key(KeyCode::Down));
    }
    let screen = render(&model, 40, 12);
    assert_ne!(screen.join("\n"), before, "it scrolled");
    row(&screen, "Ctrl+C");
    assert!(matches!(model.overlay, Some(Overlay::Help(_))));
    // At 100 columns nothing is cut: the longest description shows whole.
    model.viewport = (100, 30);
    update(&mut model, key(KeyCode::Home));
    let screen = render(&model, 100, 30);
    row(&screen, "(or the mouse wheel)");
}

#[test]
fn the_status_line_tells_the_present_and_fits() {
    let mut model = logged_in(vec![contact("bia", true, 3, 1)]);
    update(&mut model, Msg::Net(NetEvent::Server(Event::ShuttingDown)));
    let lost =
        Link::Offline { reason: "the server closed the connection".into(), retry_in: Duration::from_secs(4) };
    update(&mut model, Msg::Net(NetEvent::Link(lost)));
    let screen = render(&model, 100, 24);
    let status = &screen[23];
    assert!(status.contains("restarting; retrying in 4s"), "{status}");
    assert!(!status.contains("● online"));
    update(&mut model, Msg::Tick(Duration::from_secs(3)));
    assert!(render(&model, 100, 24)[23].contains("retrying in 1s"));
    // Presence is unknown while offline.
    assert!(row(&screen, "bia").contains('◌'), "{}", screen.join("\n"));
    update(&mut model, Msg::Net(NetEvent::Link(Link::Online)));
    let screen = render(&model, 100, 24);
    assert!(!screen[23].contains("restarting") && screen[23].contains("● online"), "{}", screen[23]);
    // A long notice wraps onto more status rows and is read whole; only one longer than
    // four rows is shortened, with a mark.
    let long = format!("cannot keep unsent messages on disk: {}", "word ".repeat(25).trim_end());
    update(&mut model, Msg::Net(NetEvent::Notice(long.clone())));
    let screen = render(&model, 100, 24);
    let status_top = |screen: &[String]| screen.iter().rposition(|r| r.starts_with('╰')).unwrap() + 1;
    assert_eq!(status_top(&screen), 21, "the input box moved up to make room:\n{}", screen.join("\n"));
    assert!(screen[21].contains("● online"), "{}", screen.join("\n"));
    let status = screen[21..].iter().map(|r| r.trim()).collect::<Vec<_>>().join(" ");
    assert!(status.contains(&long), "{status}");
    update(&mut model, Msg::Net(NetEvent::Notice("x".repeat(500))));
    let screen = render(&model, 100, 24);
    assert_eq!(status_top(&screen), 20, "{}", screen.join("\n"));
    assert!(screen[20].contains("● online"), "{}", screen.join("\n"));
    assert!(screen[23].trim_end().ends_with('…'), "{}", screen[23]);
    assert!(screen.iter().all(|r| unicode_width::UnicodeWidthStr::width(r.as_str()) <= 100));
}

#[test]
fn delivered_and_read_differ_in_shape_and_style() {
    let mut model = logged_in(vec![contact("bia", true, 0, 3)]);
    update(&mut model, ctrl('n'));
    update(
        &mut model,
        page("bia", (1..=3).map(|id| message(id, "ana", "bia", &format!("mine {id}"))).collect(), false),
    );
    let receipt = |kind, up_to| Msg::Net(NetEvent::Server(Event::Receipt { peer: name("bia"), kind, up_to }));
    update(&mut model, receipt(ReceiptKind::Delivered, 3));
    update(&mut model, receipt(ReceiptKind::Read, 2));
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|frame| papo::app::view(&model, frame)).unwrap();
    let screen = render(&model, 80, 24);
    assert!(row(&screen, "mine 2").contains("mine 2 ✓✓ read"));
    assert!(row(&screen, "mine 1").contains("mine 1 ✓✓") && !row(&screen, "mine 1").contains("read"));
    assert!(row(&screen, "mine 3").contains("mine 3 ✓✓") && !row(&screen, "mine 3").contains("read"));
    let buffer = terminal.backend().buffer();
    let mark_of = |needle: &str| {
        let y = u16::try_from(screen.iter().position(|r| r.contains(needle)).unwrap()).unwrap();
        let x = (0..80).find(|&x| buffer[(x, y)].symbol() == "✓").unwrap();
        buffer[(x, y)].clone()
    };
    let (read, delivered) = (mark_of("mine 2"), mark_of("mine 3"));
    assert_eq!(read.fg, Color::LightBlue);
    assert!(read.modifier.contains(Modifier::BOLD));
    assert_eq!(delivered.fg, Color::DarkGray);
    assert!(!delivered.modifier.contains(Modifier::BOLD));
}

#[test]
fn no_color_and_a_non_utf8_locale_are_honoured() {
    let look = Look::from_env(|name| match name {
        "NO_COLOR" => Some("1".into()),
        "LANG" => Some("C".into()),
        _ => None,
    });
    assert_eq!(look, Look { color: false, unicode: false });
    assert!(Look::from_env(|name| (name == "LC_ALL").then(|| "pt_BR.UTF-8".into())).unicode);
    assert!(Look::from_env(|name| (name == "NO_COLOR").then(String::new)).color, "empty NO_COLOR is unset");

    let mut model = logged_in(vec![contact("bia", true, 1, 1)]);
    update(&mut model, ctrl('n'));
    update(&mut model, page("bia", vec![message(1, "ana", "bia", "oi")], false));
    model.look = look;
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|frame| papo::app::view(&model, frame)).unwrap();
    let buffer = terminal.backend().buffer();
    assert!(buffer.content.iter().all(|cell| cell.fg == Color::Reset && cell.bg == Color::Reset));
    assert!(buffer.content.iter().all(|cell| cell.symbol().is_ascii()), "only ASCII is drawn");
    let screen = render(&model, 80, 24);
    assert!(screen[0].starts_with('+') && screen[1].starts_with('|'), "{}", screen.join("\n"));
    row(&screen, "oi +");
    assert!(row(&screen, "bia").contains('*'));
}

#[test]
fn after_a_reconnect_the_open_conversation_is_fetched_again_and_others_on_open() {
    let mut model = logged_in(vec![contact("bia", true, 0, 2), contact("caio", true, 0, 1)]);
    update(&mut model, alt(KeyCode::Char('2')));
    update(&mut model, page("caio", vec![message(1, "caio", "ana", "c")], false));
    update(&mut model, alt(KeyCode::Char('1')));
    update(&mut model, page("bia", vec![message(2, "bia", "ana", "b")], false));
    let commands = update(&mut model, Msg::Net(NetEvent::Resumed));
    assert_eq!(commands, [NetCommand::History { with: user("bia"), before: None }]);
    // More than a page arrived meanwhile: the page past the gap replaces what was loaded.
    update(&mut model, page("bia", (300..=399).map(|id| message(id, "bia", "ana", "new")).collect(), true));
    let conversation = &model.conversations[&user("bia")];
    assert_eq!(conversation.messages.first().map(|m| m.id), Some(300), "no gap shown");
    assert!(conversation.more);
    let commands = update(&mut model, alt(KeyCode::Char('2')));
    assert!(commands.contains(&NetCommand::History { with: user("caio"), before: None }), "{commands:?}");
}

#[test]
fn a_failed_history_request_is_reported_and_an_unknown_user_removed() {
    let mut model = logged_in(vec![contact("bia", true, 0, 0), contact("gone", false, 0, 0)]);
    update(&mut model, alt(KeyCode::Char('2')));
    let failed = |with: &str, code| {
        Msg::Net(NetEvent::HistoryFailed {
            with: user(with),
            before: None,
            code,
            reason: format!("no {with}"),
        })
    };
    update(&mut model, failed("gone", ErrorCode::UnknownUser));
    assert!(model.contact(&user("gone")).is_none() && model.selected.is_none());
    update(&mut model, alt(KeyCode::Char('1')));
    update(&mut model, failed("bia", ErrorCode::Internal));
    assert!(model.notice.as_deref().unwrap().contains("cannot load"));
    assert!(!model.conversations[&user("bia")].loading, "it can be asked again");
    let commands = update(&mut model, alt(KeyCode::Char('1')));
    assert!(commands.contains(&NetCommand::History { with: user("bia"), before: None }), "{commands:?}");
}

#[test]
fn quick_switch_refuses_unknown_names_and_learns_new_accounts() {
    let mut model = logged_in(vec![contact("bia", true, 0, 0)]);
    update(&mut model, ctrl('k'));
    type_text(&mut model, "zzz");
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert_eq!(model.notice.as_deref(), Some("there is no user called zzz"));
    assert!(model.contact(&user("zzz")).is_none());
    update(&mut model, Msg::Net(NetEvent::Server(Event::UserRegistered { user: name("zzz") })));
    update(&mut model, ctrl('k'));
    type_text(&mut model, "zzz");
    let commands = update(&mut model, key(KeyCode::Enter));
    assert_eq!(commands, [NetCommand::History { with: user("zzz"), before: None }]);
}

#[test]
fn sigterm_quits_like_ctrl_c() {
    let mut model = logged_in(vec![]);
    update(&mut model, Msg::Terminate);
    assert!(model.quit);
}

#[test]
fn the_help_fits_80x24_and_scrolls_to_its_end() {
    let mut model = logged_in(vec![]);
    update(&mut model, key(KeyCode::F(1)));
    let screen = render(&model, 80, 24);
    assert!(screen.iter().all(|r| unicode_width::UnicodeWidthStr::width(r.as_str()) <= 80));
    let top = screen.iter().position(|r| r.contains("Keys · Esc closes")).unwrap();
    let bottom = screen.iter().rposition(|r| r.trim_start().starts_with('╰')).unwrap();
    assert!(bottom < 24 && top < bottom, "{}", screen.join("\n"));
    // Every row of the box is closed on both sides: nothing is cut at the right.
    for row in &screen[top + 1..bottom] {
        assert!(row.trim_end().ends_with('│'), "{row:?}");
    }
    row(&screen, "↓ more");
    for _ in 0..100 {
        update(&mut model, key(KeyCode::PageDown));
    }
    let screen = render(&model, 80, 24);
    row(&screen, "Ctrl+C");
    assert!(!screen.concat().contains("↓ more"), "at the end nothing more below:\n{}", screen.join("\n"));
}

/// Issue 15 item 11: a paste that ends in a line break shows its last line and the empty
/// one after it, where the cursor is.
#[test]
fn a_paste_ending_in_a_newline_grows_the_box_and_keeps_every_line_in_sight() {
    let mut model = logged_in(vec![contact("bia", true, 0, 0)]);
    update(&mut model, ctrl('n'));
    assert!(update(&mut model, Msg::Paste("one\ntwo\n".into())).is_empty());
    let screen = render(&model, 80, 24);
    let title = screen.iter().position(|r| r.contains("Message to bia")).unwrap();
    assert!(screen[title + 1].contains("one") && screen[title + 2].contains("two"), "{}", screen.join("\n"));
    assert!(screen[title + 3].trim_matches(|c| c == '│' || c == ' ').is_empty(), "{}", screen.join("\n"));
    assert!(screen[title + 4].starts_with('╰'), "three lines and the border:\n{}", screen.join("\n"));
}
