//! `view` drawn into ratatui's `TestBackend` at fixed sizes.

mod common;

use common::groups::*;
use common::*;
use papo::app::{update, Model, Msg};
use papo::net::{Link, NetEvent, TrustProblem};
use papo_protocol::{ErrorCode, Event, Fingerprint, HistoryPage, ReceiptKind};
use ratatui::crossterm::event::KeyCode;
use std::time::Duration;
use time::UtcOffset;

fn with_history(model: &mut Model, peer: &str, messages: Vec<papo_protocol::ChatMessage>) {
    update(
        model,
        Msg::Net(NetEvent::History {
            with: name(peer),
            before: None,
            page: HistoryPage {
                messages: messages.into_iter().rev().collect(),
                more: false,
                peer_delivered_up_to: 0,
                peer_read_up_to: 0,
            },
        }),
    );
}

fn row_containing<'a>(screen: &'a [String], needle: &str) -> &'a str {
    screen
        .iter()
        .find(|row| row.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not on screen:\n{}", screen.join("\n")))
}

#[test]
fn login_screen_masks_the_password_and_shows_errors() {
    let mut model = Model::new("10.0.0.5:7878".into(), UtcOffset::UTC, (60, 15), 1);
    type_text(&mut model, "ana");
    update(&mut model, key(KeyCode::Tab));
    type_text(&mut model, "hunter22");
    update(
        &mut model,
        Msg::Net(NetEvent::AuthFailed { code: None, message: "wrong name or password".into() }),
    );
    let screen = render(&model, 60, 15);
    assert!(row_containing(&screen, "Name").contains("[ana]"));
    assert!(row_containing(&screen, "Password").contains("[••••••••]"));
    assert!(!screen.concat().contains("hunter22"));
    row_containing(&screen, "wrong name or password");
    row_containing(&screen, "10.0.0.5:7878 ◌ connecting…");
    row_containing(&screen, "F2 create account");

    update(&mut model, key(KeyCode::F(2)));
    update(
        &mut model,
        Msg::Net(NetEvent::Link(Link::Offline {
            reason: "cannot reach it".into(),
            retry_in: Duration::from_secs(4),
        })),
    );
    let screen = render(&model, 60, 15);
    row_containing(&screen, "Confirm");
    row_containing(&screen, "create account");
    row_containing(&screen, "offline");
}

#[test]
fn contacts_pane_shows_presence_and_unread_badges() {
    let model = logged_in(vec![
        contact("bia", true, 0, 3),
        contact("caio", false, 12, 2),
        contact("davi", false, 0, 0),
    ]);
    let screen = render(&model, 80, 20);
    assert!(row_containing(&screen, "○ caio").starts_with("│1 ○ caio"));
    assert!(row_containing(&screen, "○ caio").contains("12│"));
    assert!(row_containing(&screen, "● bia").starts_with("│2 ● bia"));
    // Unread first, then online.
    let position = |n: &str| screen.iter().position(|row| row.contains(n)).unwrap();
    assert!(position("caio") < position("bia") && position("bia") < position("davi"));
    row_containing(&screen, "12 unread");
    row_containing(&screen, "ana @ lab:7878 ● online");
}

#[test]
fn history_wraps_by_display_width_with_wide_characters() {
    let mut model = logged_in(vec![contact("bia", true, 0, 2)]);
    update(&mut model, ctrl('n'));
    with_history(
        &mut model,
        "bia",
        vec![
            message(1, "bia", "ana", "日本語のテキストと絵文字👋👋👋がちゃんと折り返されるかな"),
            message(2, "ana", "bia", "sim! every wide character takes two cells and nothing spills over"),
        ],
    );
    let width = 60;
    let screen = render(&model, width, 15);
    for row in &screen {
        assert!(unicode_width::UnicodeWidthStr::width(row.as_str()) <= width as usize, "row too wide: {row}");
    }
    let first = row_containing(&screen, "bia: 日本語");
    assert!(first.ends_with('│'));
    row_containing(&screen, "you: sim! every");
    row_containing(&screen, "— start of the conversation —");
    row_containing(&screen, "Wed 25 Nov 2026");
    row_containing(&screen, "10:01 bia:");
}

#[test]
fn my_messages_show_how_far_they_got() {
    let mut model = logged_in(vec![contact("bia", true, 0, 2)]);
    update(&mut model, ctrl('n'));
    with_history(
        &mut model,
        "bia",
        vec![message(1, "ana", "bia", "first"), message(2, "ana", "bia", "second")],
    );
    type_text(&mut model, "third");
    update(&mut model, key(KeyCode::Enter));
    let screen = render(&model, 70, 15);
    assert!(row_containing(&screen, "first").contains("first ✓"));
    assert!(row_containing(&screen, "third").contains("third …"));
    let offline = Link::Offline { reason: "connection lost".into(), retry_in: Duration::from_secs(2) };
    update(&mut model, Msg::Net(NetEvent::Link(offline)));
    assert!(row_containing(&render(&model, 70, 15), "third").contains("third ◷ queued"));
    update(&mut model, Msg::Net(NetEvent::Link(Link::Online)));
    update(
        &mut model,
        Msg::Net(NetEvent::Server(Event::Receipt {
            peer: name("bia"),
            kind: ReceiptKind::Delivered,
            up_to: 1,
        })),
    );
    let screen = render(&model, 70, 15);
    assert!(row_containing(&screen, "first").contains("first ✓✓"));
    assert!(
        row_containing(&screen, "second").contains("second ✓")
            && !row_containing(&screen, "second").contains("✓✓")
    );
}

#[test]
fn help_overlay_lists_the_shortcuts() {
    let mut model = logged_in(vec![]);
    update(&mut model, key(KeyCode::F(1)));
    let screen = render(&model, 80, 24);
    row_containing(&screen, "Keys · Esc closes");
    row_containing(&screen, "Ctrl+K");
    row_containing(&screen, "quick switch");
    row_containing(&screen, "log out and quit");
}

#[test]
fn banner_and_new_below_hint() {
    let mut model = logged_in(vec![contact("bia", true, 0, 0)]);
    update(&mut model, Msg::Net(NetEvent::LoggedIn { name: name("ana"), pending: 2 }));
    update(&mut model, Msg::Net(NetEvent::Contacts(vec![contact("bia", true, 0, 0)])));
    let screen = render(&model, 80, 20);
    row_containing(&screen, "2 messages arrived while you were away");

    update(&mut model, ctrl('n'));
    with_history(
        &mut model,
        "bia",
        (1..=60).map(|id| message(id, "bia", "ana", &format!("message {id}"))).collect(),
    );
    update(&mut model, key(KeyCode::PageUp));
    update(&mut model, Msg::Net(NetEvent::Server(Event::Message(message(61, "bia", "ana", "fresh")))));
    let screen = render(&model, 80, 20);
    row_containing(&screen, "▼ 1 new below · End to jump");
    assert!(!screen.concat().contains("fresh"));
}

#[test]
fn small_terminals_keep_everything_inside_the_panes() {
    let mut model =
        logged_in(vec![contact("maria-da-conceicao-albuquerque-x", true, 3, 1), contact("bia", false, 0, 0)]);
    update(&mut model, ctrl('n'));
    with_history(
        &mut model,
        "maria-da-conceicao-albuquerque-x",
        vec![message(1, "maria-da-conceicao-albuquerque-x", "ana", "hello there, this is long")],
    );
    type_text(&mut model, "a draft that is longer than the input box is wide, by quite a bit");
    let screen = render(&model, 60, 15);
    assert_eq!(screen.len(), 15);
    // Borders close on both sides of every pane row, so nothing spilled out of a pane.
    for row in &screen[..14] {
        assert!(row.ends_with('│') || row.ends_with('╮') || row.ends_with('╯'), "row spills: {row:?}");
    }
    row_containing(&screen, "│1 ● maria-da…│");
    row_containing(&screen, "hello there");
    // Any size at all, with and without overlays, draws without panicking.
    let mut login = Model::new("lab:7878".into(), UtcOffset::UTC, (1, 1), 1);
    update(&mut login, key(KeyCode::F(2)));
    for overlay in [None, Some(KeyCode::F(1))] {
        if let Some(code) = overlay {
            update(&mut model, key(code));
        }
        for width in 1..=40 {
            for height in 1..=16 {
                render(&model, width, height);
                render(&login, width, height);
            }
        }
    }
}

#[test]
fn the_trust_screens_show_whole_fingerprints_and_what_to_do() {
    let mut model = Model::new("10.0.0.5:7878".into(), UtcOffset::UTC, (80, 24), 1);
    let presented = Fingerprint::of(b"server certificate");
    let shown = presented.to_string();
    update(&mut model, Msg::Net(NetEvent::Untrusted(TrustProblem::Unknown { presented })));
    type_text(&mut model, "ye");
    for (width, height) in (1..=40).flat_map(|w| (1..=16).map(move |h| (w, h))) {
        render(&model, width, height); // Any size draws without panicking.
    }
    let screen = render(&model, 80, 24);
    row_containing(&screen, "First connection to 10.0.0.5:7878");
    row_containing(&screen, &shown[..47]);
    row_containing(&screen, &shown[48..]);
    assert!(row_containing(&screen, "Trust it? Type yes").contains("fingerprint): ye"));
    assert!(!screen.concat().contains("Password"), "the login form must stay hidden");

    let trusted = Fingerprint::of(b"old certificate").to_string();
    let problem = TrustProblem::Changed {
        trusted: Fingerprint::of(b"old certificate"),
        presented,
        file: "/home/ana/.local/share/papo/known_servers".into(),
    };
    update(&mut model, Msg::Net(NetEvent::Untrusted(problem)));
    let screen = render(&model, 80, 24);
    row_containing(&screen, "CHANGED. Nothing was sent.");
    row_containing(&screen, &trusted[..47]);
    row_containing(&screen, &shown[..47]);
    row_containing(&screen, "/home/ana/.local/share/papo/known_servers");
    assert!(!screen.concat().contains("Type yes"), "a changed certificate cannot be accepted here");
}

#[test]
fn a_certificate_question_is_drawn_over_the_chat() {
    let mut model = logged_in(vec![contact("bia", true, 0, 0)]);
    let problem = TrustProblem::Changed {
        trusted: Fingerprint::of(b"old"),
        presented: Fingerprint::of(b"new"),
        file: "/home/ana/.local/share/papo/known_servers".into(),
    };
    update(&mut model, Msg::Net(NetEvent::Untrusted(problem)));
    let screen = render(&model, 80, 24);
    row_containing(&screen, "CHANGED. Nothing was sent.");
    assert!(!screen.concat().contains("Contacts"), "the chat is hidden behind the question");
}

/// Logged in as ana with `#lab` (owned by bia: ana, bia online; caio, davi offline) open.
fn in_lab_with_members() -> Model {
    let mut model = logged_in(vec![contact("bia", true, 0, 0), contact("caio", false, 0, 0)]);
    let summary = papo_protocol::GroupSummary { members: 4, ..summary("#lab", 0) };
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary])));
    type_text(&mut model, "/msg #lab");
    update(&mut model, key(KeyCode::Enter));
    let members = vec![
        member("ana", true, 1),
        member("bia", true, 1),
        member("caio", false, 1),
        member("davi", false, 1),
    ];
    roster(&mut model, lab_info(members));
    model
}

#[test]
fn alt_m_shows_the_members_beside_the_conversation_online_first_with_the_owner_marked() {
    let mut model = in_lab_with_members();
    let screen = render(&model, 80, 24);
    assert!(!screen.concat().contains("Members"), "hidden until asked for");
    update(&mut model, alt(KeyCode::Char('m')));
    let screen = render(&model, 80, 24);
    assert!(row_containing(&screen, "Members 2/4").contains("#lab · 2/4 online"), "{}", screen.join("\n"));
    let at = |needle: &str| screen.iter().position(|row| row.contains(needle)).unwrap();
    assert!(row_containing(&screen, "● ana (you)").starts_with("│1 ● bia"), "the contacts stay");
    assert!(row_containing(&screen, "● bia ★").ends_with('│'));
    let order = ["││● ana (you)", "││● bia ★", "││○ caio", "││○ davi"].map(at);
    assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{order:?}");
    assert!(screen.iter().all(|row| unicode_width::UnicodeWidthStr::width(row.as_str()) == 80));
    update(&mut model, alt(KeyCode::Char('m')));
    assert!(!render(&model, 80, 24).concat().contains("Members"), "Alt+M again hides it");
}

#[test]
fn on_a_narrow_screen_the_members_take_the_contacts_place_and_a_long_list_says_how_many_more() {
    use papo_protocol::{Event, GroupMessage, GroupMessageKind, GroupName};
    let mut model = in_lab_with_members();
    model.viewport = (44, 12);
    update(&mut model, alt(KeyCode::Char('m')));
    let screen = render(&model, 44, 12);
    assert!(!screen.concat().contains("Contacts"), "{}", screen.join("\n"));
    row_containing(&screen, "Members 2/4");
    row_containing(&screen, "#lab · 2/4 online");
    row_containing(&screen, "○ davi");
    for (id, raw) in ["eva", "fabi", "gil", "hugo", "iris"].into_iter().enumerate() {
        let added = GroupMessage {
            id: 10 + id as u64,
            group: GroupName::parse("#lab").unwrap(),
            from: name("bia"),
            body: String::new(),
            sent_at: NOW,
            kind: GroupMessageKind::Added { member: name(raw) },
        };
        update(&mut model, Msg::Net(NetEvent::Server(Event::GroupMessage(added))));
    }
    let screen = render(&model, 44, 12);
    // 9 members in the pane's 6 rows: 5 of them, then how many more.
    row_containing(&screen, "Members 2/9");
    row_containing(&screen, "+4 more");
    assert!(screen.iter().all(|row| unicode_width::UnicodeWidthStr::width(row.as_str()) == 44));
    // A direct conversation has no members pane, even with it asked for.
    type_text(&mut model, "/msg bia");
    update(&mut model, key(KeyCode::Enter));
    let screen = render(&model, 44, 12);
    assert!(!screen.concat().contains("Members"), "{}", screen.join("\n"));
    row_containing(&screen, "Contacts");
}

#[test]
fn the_help_lists_the_group_commands_and_alt_m() {
    let mut model = logged_in(vec![]);
    update(&mut model, key(KeyCode::F(1)));
    let mut seen = String::new();
    for _ in 0..3 {
        seen.push_str(&render(&model, 80, 24).join("\n"));
        update(&mut model, key(KeyCode::PageDown));
    }
    for needle in ["/rename #NEW  /delete", "/handover USER", "Alt+M  /who", "/notify MODE", "Ctrl+C"] {
        assert!(seen.contains(needle), "{needle} is not in the help:\n{seen}");
    }
}

/// Draws `model` and says where the cursor is.
fn cursor_after_drawing(model: &Model, width: u16, height: u16) -> (u16, u16) {
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height)).unwrap();
    let frame = terminal.draw(|frame| papo::app::view(model, frame)).unwrap();
    let _ = frame;
    let position = terminal.get_cursor_position().unwrap();
    (position.x, position.y)
}

#[test]
fn the_trust_prompt_is_whole_and_answerable_at_40x12() {
    let mut model = Model::new("127.0.0.1:17878".into(), UtcOffset::UTC, (40, 12), 1);
    let presented = Fingerprint::of(b"server certificate");
    update(&mut model, Msg::Net(NetEvent::Untrusted(TrustProblem::Unknown { presented })));
    type_text(&mut model, "ye");
    let screen = render(&model, 40, 12);
    assert!(screen.iter().all(|r| unicode_width::UnicodeWidthStr::width(r.as_str()) <= 40));
    // Every byte of the fingerprint is on screen, in order, none split across rows.
    let shown = presented.to_string();
    let rows: Vec<&str> = screen.iter().map(|r| r.trim_matches(['│', ' '])).collect();
    let fingerprint: Vec<&str> =
        rows.iter().filter(|r| r.len() == 23 && r.matches(':').count() == 7).copied().collect();
    assert_eq!(fingerprint.join(":"), shown, "{}", screen.join("\n"));
    // The answer is visible with its label, and the cursor sits right after it.
    let answer = row_containing(&screen, "Type yes: ye");
    let y = screen.iter().position(|r| r == answer).unwrap();
    let label = answer.find("Type yes: ye").unwrap();
    let x = answer[..label].chars().count() + "Type yes: ye".len();
    assert_eq!(cursor_after_drawing(&model, 40, 12), (u16::try_from(x).unwrap(), u16::try_from(y).unwrap()));
    row_containing(&screen, "Enter to answer · Esc quit");
    // A long answer scrolls, keeping the cursor inside the box.
    type_text(&mut model, &"x".repeat(60));
    let (x, _) = cursor_after_drawing(&model, 40, 12);
    assert!(x < 39, "cursor at {x}");
    // What does not fit is marked on the box's edge, and scrolls into view.
    row_containing(&screen, "↓ more: Down, PageDown");
    assert!(!screen.concat().contains("warns if it ever changes"), "{}", screen.join("\n"));
    for _ in 0..10 {
        update(&mut model, key(KeyCode::Down));
    }
    let scrolled = render(&model, 40, 12);
    let joined = scrolled.iter().map(|r| r.trim_matches(['│', ' '])).collect::<Vec<_>>().join(" ");
    assert!(joined.contains("warns if it ever changes."), "{}", scrolled.join("\n"));
    row_containing(&scrolled, "↑ Up, PageUp");
    row_containing(&scrolled, "Type yes: ");
    update(&mut model, key(KeyCode::PageUp));
    update(&mut model, key(KeyCode::PageUp));
    assert_eq!(trust_box_rows(&render(&model, 40, 12), 2).0, trust_box_rows(&screen, 2).0, "back at the top");
    // A wrong answer's explanation wraps and goes as soon as the user types again.
    update(&mut model, Msg::Key(ratatui::crossterm::event::KeyEvent::from(KeyCode::Enter)));
    let screen = render(&model, 40, 12);
    let explained =
        screen.iter().filter(|r| r.contains("type yes") || r.contains("trust the server")).count();
    assert!(explained >= 1, "{}", screen.join("\n"));
    assert!(screen.concat().contains("Esc to"), "{}", screen.join("\n"));
    type_text(&mut model, "y");
    assert_eq!(model.trust.as_ref().unwrap().error, None);
}

#[test]
fn a_narrow_input_box_wraps_keeps_the_cursor_and_the_recipient_in_sight() {
    let mut model = logged_in(vec![contact("alice", true, 0, 0)]);
    update(&mut model, ctrl('n'));
    with_history(&mut model, "alice", vec![]);
    model.viewport = (30, 16);
    let text = "this is a long message typed into a narrow terminal to see whether it wraps properly and the cursor shows";
    type_text(&mut model, text);
    let screen = render(&model, 30, 16);
    let top = screen.iter().position(|r| r.contains("Message to")).unwrap();
    assert!(screen[top].contains("Message to alice"), "{}", screen.join("\n"));
    assert!(screen[top].contains("↑"), "what scrolled out above is marked:\n{}", screen.join("\n"));
    let (x, y) = cursor_after_drawing(&model, 30, 16);
    assert!(usize::from(y) > top && usize::from(y) < 15 && x < 29, "cursor ({x}, {y}) outside the box");
    let bottom = screen[usize::from(y)].trim_matches(['│', ' ']).to_owned();
    assert!(text.ends_with(&bottom), "the cursor's row shows the end: {bottom:?}");
    assert!(screen.iter().all(|r| unicode_width::UnicodeWidthStr::width(r.as_str()) <= 30));
}

/// The create-account form has an optional invite code field; the whole form, the invite
/// row and the reason a code was refused included, shows at 80x24 and at 40x12.
#[test]
fn the_create_account_form_with_its_invite_field_is_whole_at_80x24_and_40x12() {
    for (width, height) in [(80, 24), (40, 12)] {
        let mut model = Model::new("127.0.0.1:7878".into(), UtcOffset::UTC, (width, height), 1);
        update(&mut model, Msg::Net(NetEvent::Link(Link::Online)));
        update(&mut model, key(KeyCode::F(2)));
        type_text(&mut model, "novo");
        for _ in 0..3 {
            update(&mut model, key(KeyCode::Tab));
        }
        type_text(&mut model, "K7Q2-\u{1b}]0;x\u{7}");
        update(
            &mut model,
            Msg::Net(NetEvent::AuthFailed {
                code: Some(ErrorCode::InviteInvalid),
                message: "that invite code is not valid\u{1b}[31m".into(),
            }),
        );
        let screen = render(&model, width, height);
        let shown = screen.join("\n");
        for needle in [
            "create account",
            "Name",
            "[novo]",
            "Password",
            "Confirm",
            "Invite",
            "that invite code",
            "Ctrl+C quit",
        ] {
            assert!(shown.contains(needle), "{needle:?} missing at {width}x{height}:\n{shown}");
        }
        assert!(!shown.contains('\u{1b}') && !shown.contains('\u{7}'), "{shown}");
    }
}

/// The box's rows as text: the body rows (all but the last `footer` inner rows), the footer
/// rows, and its bottom edge.
fn trust_box_rows(screen: &[String], footer: usize) -> (Vec<String>, Vec<String>, String) {
    let top = screen.iter().position(|r| r.contains('╭')).expect("a box");
    let bottom = screen.iter().rposition(|r| r.contains('╰')).expect("a box");
    let inner: Vec<String> =
        screen[top + 1..bottom].iter().map(|r| r.trim().trim_matches('│').trim_end().to_owned()).collect();
    let (body, footer) = inner.split_at(inner.len() - footer);
    (body.to_vec(), footer.to_vec(), screen[bottom].clone())
}

/// What a text says whatever its wrapping: no spaces, no fingerprint colons.
fn squeezed(rows: &[String]) -> String {
    rows.concat().chars().filter(|c| !c.is_whitespace() && *c != ':').collect()
}

fn changed_certificate(viewport: (u16, u16)) -> Model {
    let mut model = Model::new("10.0.0.5:7878".into(), UtcOffset::UTC, viewport, 1);
    let problem = TrustProblem::Changed {
        trusted: Fingerprint::of(b"old certificate"),
        presented: Fingerprint::of(b"new certificate"),
        file: "/home/ana/.local/share/papo/known\u{1b}]0;owned\u{7}_servers".into(),
    };
    update(&mut model, Msg::Net(NetEvent::Untrusted(problem)));
    model
}

#[test]
fn the_changed_certificate_box_scrolls_so_every_line_and_the_keys_are_reachable_on_small_screens() {
    // At 100×30 all of it fits: that is the text to reach at every size.
    let model = changed_certificate((100, 30));
    let screen = render(&model, 100, 30);
    let (whole, footer, edge) = trust_box_rows(&screen, 1);
    assert_eq!(footer, ["Esc or Ctrl+C quit"]);
    assert!(!edge.contains("more") && !edge.contains("PageUp"), "{edge}");
    let whole_text = whole.join(" ");
    for needed in [
        "CHANGED. Nothing was sent.",
        "impersonating the server",
        "remove the line for this server from:",
        "then start papo again.",
    ] {
        assert!(whole_text.contains(needed), "{needed:?} in {whole_text}");
    }
    let expected = squeezed(&whole);
    for fingerprint in [Fingerprint::of(b"old certificate"), Fingerprint::of(b"new certificate")] {
        assert!(expected.contains(&fingerprint.to_string().replace(':', "")), "{expected}");
    }
    assert!(!screen.concat().contains('\u{1b}') && !screen.concat().contains('\u{7}'), "sanitised");

    for (width, height) in [(40, 12), (60, 15)] {
        let mut model = changed_certificate((width, height));
        let first = render(&model, width, height);
        let (mut seen, _, edge) = trust_box_rows(&first, 1);
        assert!(edge.contains("↓ more: Down, PageDown"), "{width}×{height}: {edge}");
        // One row at a time, every row comes into view, and the keys never leave it.
        let mut steps = 0;
        loop {
            update(&mut model, key(KeyCode::Down));
            let screen = render(&model, width, height);
            assert!(screen
                .iter()
                .all(|r| unicode_width::UnicodeWidthStr::width(r.as_str()) <= usize::from(width)));
            let (body, footer, edge) = trust_box_rows(&screen, 1);
            assert_eq!(footer, ["Esc or Ctrl+C quit"], "{width}×{height}:\n{}", screen.join("\n"));
            if body == seen[seen.len() - body.len()..] {
                assert!(edge.contains("↑ Up, PageUp"), "at the end: {edge}");
                break;
            }
            seen.push(body.last().cloned().unwrap_or_default());
            steps += 1;
            assert!(steps < 100, "the box never reached its end");
        }
        assert_eq!(squeezed(&seen), expected, "{width}×{height}: every line, in order");
        // PageUp, PageDown, Home and End jump; nothing scrolls past either end.
        update(&mut model, key(KeyCode::Home));
        assert_eq!(render(&model, width, height), first, "Home is the top");
        update(&mut model, key(KeyCode::PageDown));
        let paged = trust_box_rows(&render(&model, width, height), 1).0;
        assert!(paged.len() > 1 && paged[0] != trust_box_rows(&first, 1).0[0]);
        update(&mut model, key(KeyCode::End));
        let end = render(&model, width, height);
        update(&mut model, key(KeyCode::Down));
        assert_eq!(render(&model, width, height), end, "End is the end");
        update(&mut model, key(KeyCode::PageUp));
        for _ in 0..20 {
            update(&mut model, key(KeyCode::PageUp));
        }
        assert_eq!(render(&model, width, height), first, "PageUp stops at the top");
        assert!(!model.quit);
        update(&mut model, key(KeyCode::Esc));
        assert!(model.quit, "Esc, shown as the way out, quits");
    }
}

#[test]
fn the_new_server_box_keeps_its_answer_in_sight_while_its_text_scrolls_at_every_size() {
    let presented = Fingerprint::of(b"server certificate");
    for (width, height) in [(40, 12), (60, 15), (100, 30)] {
        let mut model = Model::new("10.0.0.5:7878".into(), UtcOffset::UTC, (width, height), 1);
        update(&mut model, Msg::Net(NetEvent::Untrusted(TrustProblem::Unknown { presented })));
        type_text(&mut model, "ye");
        let mut seen = String::new();
        for _ in 0..30 {
            let screen = render(&model, width, height);
            let (body, footer, _) = trust_box_rows(&screen, 2);
            assert!(
                footer[0].contains("Type yes") && footer[0].ends_with("ye"),
                "{width}×{height}: {footer:?}"
            );
            assert_eq!(footer[1], "Enter to answer · Esc quit");
            seen.push_str(&squeezed(&body));
            update(&mut model, key(KeyCode::Down));
        }
        assert!(seen.contains(&presented.to_string().replace(':', "")), "{width}×{height}: {seen}");
        assert!(seen.contains("warnsifiteverchanges."), "{width}×{height}: {seen}");
        assert_eq!(
            model.trust.as_ref().map(|p| p.answer.text()),
            Some("ye"),
            "arrows do not edit the answer"
        );
        update(&mut model, key(KeyCode::Char('s')));
        assert_eq!(update(&mut model, key(KeyCode::Enter)), [papo::net::NetCommand::Trust(presented)]);
    }
}
