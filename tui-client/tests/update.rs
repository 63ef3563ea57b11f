//! `update` as a plain function: every shortcut and state change, no terminal, no network.

mod common;

use common::*;
use papo::app::{update, Focus, LoginField, LoginMode, Model, Msg, Overlay, Screen};
use papo::net::{NetCommand, NetEvent, Outgoing, TrustProblem};
use papo_protocol::{ErrorCode, Event, Fingerprint, HistoryPage, ReceiptKind};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use time::UtcOffset;

fn page_of(peer: &str, oldest_first: Vec<papo_protocol::ChatMessage>) -> Msg {
    let page = HistoryPage {
        messages: oldest_first.into_iter().rev().collect(),
        more: false,
        peer_delivered_up_to: 0,
        peer_read_up_to: 0,
    };
    Msg::Net(NetEvent::History { with: name(peer), before: None, page })
}

fn fresh() -> Model {
    Model::new("lab:7878".into(), UtcOffset::UTC, (80, 24), 1000)
}

#[test]
fn login_form_tabs_between_fields_and_submits() {
    let mut model = fresh();
    type_text(&mut model, "ana");
    update(&mut model, key(KeyCode::Tab));
    assert_eq!(model.login.field, LoginField::Password);
    type_text(&mut model, "secret123");
    update(&mut model, key(KeyCode::BackTab));
    assert_eq!(model.login.field, LoginField::Name);
    let commands = update(&mut model, key(KeyCode::Enter));
    assert_eq!(commands, [NetCommand::Login { name: "ana".into(), password: "secret123".into() }]);
    assert!(model.login.busy);
    // A second Enter while waiting sends nothing.
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
}

#[test]
fn login_form_explains_missing_fields() {
    let mut model = fresh();
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert_eq!(model.login.error.as_deref(), Some("type your name"));
    type_text(&mut model, "ana");
    // Enter on a filled name goes on to the password, as on any form, and blames nothing yet.
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert_eq!((model.login.field, model.login.error.as_deref()), (LoginField::Password, None));
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert_eq!(
        (model.login.field, model.login.error.as_deref()),
        (LoginField::Password, Some("type your password"))
    );
}

/// Creating an account is typing each field and Enter after each: no error on the way, and
/// the last Enter submits.
#[test]
fn create_account_is_enter_after_each_field() {
    let mut model = fresh();
    update(&mut model, key(KeyCode::F(2)));
    type_text(&mut model, "novo");
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert_eq!((model.login.field, model.login.error.as_deref()), (LoginField::Password, None));
    type_text(&mut model, "password1");
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert_eq!((model.login.field, model.login.error.as_deref()), (LoginField::Confirm, None));
    type_text(&mut model, "password1");
    let commands = update(&mut model, key(KeyCode::Enter));
    assert_eq!(
        commands,
        [NetCommand::Register { name: "novo".into(), password: "password1".into(), invite: None }]
    );
}

/// An error from the last attempt goes as soon as the user changes what was tried; one that
/// says there is no connection stays until there is one.
#[test]
fn a_login_error_does_not_outlive_the_attempt_it_was_about() {
    let mut model = fresh();
    type_text(&mut model, "ana");
    update(&mut model, key(KeyCode::Tab));
    type_text(&mut model, "wrongpass");
    update(&mut model, key(KeyCode::Enter));
    let failed = NetEvent::AuthFailed {
        code: Some(ErrorCode::InvalidCredentials),
        message: "wrong name or password".into(),
    };
    update(&mut model, Msg::Net(failed));
    update(&mut model, key(KeyCode::Left));
    assert_eq!(
        model.login.error.as_deref(),
        Some("wrong name or password"),
        "moving the cursor changes nothing"
    );
    update(&mut model, key(KeyCode::Backspace));
    assert_eq!(model.login.error, None);
    update(&mut model, Msg::Paste("s".into()));
    update(&mut model, key(KeyCode::Enter));
    let offline =
        NetEvent::AuthFailed { code: None, message: "not connected to lab:7878 yet; retrying".into() };
    update(&mut model, Msg::Net(offline));
    update(&mut model, key(KeyCode::Backspace));
    assert!(model.login.error.as_deref().is_some_and(|e| e.starts_with("not connected")));
    update(&mut model, Msg::Net(NetEvent::Link(papo::net::Link::Online)));
    assert_eq!(model.login.error, None);
}

#[test]
fn create_account_mode_checks_the_confirmation() {
    let mut model = fresh();
    update(&mut model, key(KeyCode::F(2)));
    assert_eq!(model.login.mode, LoginMode::Register);
    type_text(&mut model, "novo");
    update(&mut model, key(KeyCode::Tab));
    type_text(&mut model, "password1");
    update(&mut model, key(KeyCode::Tab));
    type_text(&mut model, "password2");
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert_eq!(model.login.field, LoginField::Confirm);
    update(&mut model, key(KeyCode::Backspace));
    type_text(&mut model, "1");
    let commands = update(&mut model, key(KeyCode::Enter));
    assert_eq!(
        commands,
        [NetCommand::Register { name: "novo".into(), password: "password1".into(), invite: None }]
    );
    update(&mut model, ctrl('r'));
    assert_eq!(model.login.mode, LoginMode::LogIn);
}

#[test]
fn server_errors_show_on_the_form_and_success_opens_the_chat() {
    let mut model = fresh();
    type_text(&mut model, "ana");
    update(&mut model, key(KeyCode::Tab));
    type_text(&mut model, "wrongpass");
    update(&mut model, key(KeyCode::Enter));
    let failed = NetEvent::AuthFailed {
        code: Some(ErrorCode::InvalidCredentials),
        message: "wrong name or password".into(),
    };
    update(&mut model, Msg::Net(failed));
    assert_eq!((model.login.busy, model.login.error.as_deref()), (false, Some("wrong name or password")));

    update(&mut model, Msg::Net(NetEvent::LoggedIn { name: name("ana"), pending: 3 }));
    assert_eq!(model.screen, Screen::Chat);
    assert_eq!(model.banner.as_deref(), Some("3 messages arrived while you were away"));
    assert!(model.login.password.is_empty(), "the password is not kept after login");
}

#[test]
fn contacts_sort_unread_then_online_then_recent_then_name() {
    let model = logged_in(vec![
        contact("zeca", false, 0, 0),
        contact("bia", true, 0, 5),
        contact("carla", false, 2, 1),
        contact("davi", true, 0, 9),
        contact("eva", true, 0, 0),
        contact("ana", true, 0, 0), // the caller is not listed
    ]);
    let order: Vec<_> = model.contacts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(order, ["carla", "davi", "bia", "eva", "zeca"]);
}

#[test]
fn ctrl_n_and_ctrl_p_walk_contacts_and_load_and_mark_read() {
    let mut model = logged_in(vec![contact("bia", true, 2, 7), contact("caio", true, 0, 0)]);
    let commands = update(&mut model, ctrl('n'));
    assert_eq!(model.selected, Some(user("bia")));
    assert_eq!(commands, [NetCommand::History { with: user("bia"), before: None }]);
    // Marked read once what it shows is on screen.
    let commands =
        update(&mut model, page_of("bia", (6..=7).map(|id| message(id, "bia", "ana", "oi")).collect()));
    assert_eq!(commands, [NetCommand::MarkRead { with: user("bia"), up_to: 7 }]);
    assert_eq!(model.contact(&user("bia")).unwrap().unread, 0);
    update(&mut model, ctrl('n'));
    assert_eq!(model.selected, Some(user("caio")));
    update(&mut model, ctrl('n'));
    assert_eq!(model.selected, Some(user("bia")), "wraps around");
    // Already loaded and read: switching back asks for nothing.
    assert!(update(&mut model, ctrl('p'))
        .iter()
        .all(|c| !matches!(c, NetCommand::History { with, .. } if with.as_str() == "bia")));
    assert_eq!(model.selected, Some(user("caio")));
    update(&mut model, alt(KeyCode::Up));
    assert_eq!(model.selected, Some(user("bia")));
    update(&mut model, alt(KeyCode::Down));
    assert_eq!(model.selected, Some(user("caio")));
    update(&mut model, alt(KeyCode::Char('1')));
    assert_eq!(model.selected, Some(user("bia")));
    update(&mut model, alt(KeyCode::Char('9')));
    assert_eq!(model.selected, Some(user("bia")), "no ninth contact: nothing changes");
}

#[test]
fn enter_sends_to_the_selected_contact_and_up_recalls() {
    let mut model = logged_in(vec![contact("bia", true, 0, 0)]);
    type_text(&mut model, "before picking");
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert!(model.notice.as_deref().unwrap().contains("pick someone"));
    assert_eq!(model.input.text(), "before picking", "nothing typed is lost");
    update(&mut model, ctrl('u'));

    update(&mut model, ctrl('n'));
    type_text(&mut model, "oi bia");
    let commands = update(&mut model, key(KeyCode::Enter));
    let sent = Outgoing { to: user("bia"), body: "oi bia".into(), client_msg_id: 1000 };
    assert_eq!(commands, [NetCommand::Send(sent.clone())]);
    assert!(model.input.is_empty());
    assert_eq!(model.conversations[&user("bia")].outgoing[0].outgoing, sent);

    update(&mut model, key(KeyCode::Up));
    assert_eq!(model.input.text(), "oi bia");
    update(&mut model, key(KeyCode::Down));
    assert!(model.input.is_empty());
    // Blank input sends nothing.
    type_text(&mut model, "   ");
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
}

#[test]
fn alt_enter_adds_a_line_and_paste_never_sends() {
    let mut model = logged_in(vec![contact("bia", true, 0, 0)]);
    update(&mut model, ctrl('n'));
    type_text(&mut model, "one");
    update(&mut model, alt(KeyCode::Enter));
    type_text(&mut model, "two");
    assert!(update(&mut model, Msg::Paste("\r\nthree\r\nfour".into())).is_empty());
    assert_eq!(model.input.text(), "one\ntwo\nthree\nfour");
    let commands = update(&mut model, key(KeyCode::Enter));
    assert!(matches!(&commands[..], [NetCommand::Send(o)] if o.body == "one\ntwo\nthree\nfour"));
}

#[test]
fn readline_keys_edit_the_input() {
    let mut model = logged_in(vec![]);
    type_text(&mut model, "hello big world");
    update(&mut model, ctrl('w'));
    assert_eq!(model.input.text(), "hello big ");
    update(&mut model, ctrl('a'));
    update(&mut model, key(KeyCode::Delete));
    update(&mut model, ctrl('e'));
    update(&mut model, key(KeyCode::Backspace));
    update(&mut model, key(KeyCode::Left));
    type_text(&mut model, "!");
    assert_eq!(model.input.text(), "ello bi!g");
    update(&mut model, key(KeyCode::Home));
    update(&mut model, key(KeyCode::Right));
    update(&mut model, ctrl('u'));
    assert_eq!(model.input.text(), "llo bi!g");
}

#[test]
fn slash_commands() {
    let mut model = logged_in(vec![contact("bia", true, 0, 0)]);
    type_text(&mut model, "/msg nobody hi");
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert_eq!(model.notice.as_deref(), Some("there is no user called nobody"));
    assert!(model.contact(&user("nobody")).is_none(), "no phantom contact");
    assert_eq!(model.input.text(), "/msg nobody hi", "the typed command is kept");
    update(&mut model, ctrl('u'));
    update(&mut model, Msg::Net(NetEvent::Server(Event::UserRegistered { user: name("caio") })));
    type_text(&mut model, "/msg caio oi caio");
    let commands = update(&mut model, key(KeyCode::Enter));
    assert_eq!(model.selected, Some(user("caio")), "works for users who registered since the list loaded");
    assert!(
        matches!(&commands[..], [NetCommand::History { .. }, NetCommand::Send(o)] if o.body == "oi caio" && o.to.as_str() == "caio")
    );

    type_text(&mut model, "/msg BIA");
    assert!(update(&mut model, key(KeyCode::Enter)).iter().all(|c| !matches!(c, NetCommand::Send(_))));
    assert_eq!(model.selected, Some(user("bia")));

    type_text(&mut model, "//not a command");
    let commands = update(&mut model, key(KeyCode::Enter));
    assert!(matches!(&commands[..], [NetCommand::Send(o)] if o.body == "/not a command"));

    type_text(&mut model, "/nope and text");
    update(&mut model, key(KeyCode::Enter));
    assert!(model.notice.as_deref().unwrap().contains("unknown command /nope"));
    assert_eq!(model.input.text(), "/nope and text", "an unknown command keeps what was typed");
    update(&mut model, ctrl('u'));
    type_text(&mut model, "/help");
    update(&mut model, key(KeyCode::Enter));
    assert!(matches!(model.overlay, Some(Overlay::Help(_))));
    update(&mut model, key(KeyCode::Esc));
    type_text(&mut model, "/quit");
    update(&mut model, key(KeyCode::Enter));
    assert!(model.quit);
}

#[test]
fn quick_switch_fuzzy_finds_and_opens() {
    let mut model = logged_in(vec![contact("bianca", true, 0, 0), contact("roberto", false, 0, 0)]);
    update(&mut model, ctrl('k'));
    assert!(matches!(&model.overlay, Some(Overlay::QuickSwitch(s)) if s.matches.len() == 2));
    type_text(&mut model, "rbt");
    let Some(Overlay::QuickSwitch(switch)) = &model.overlay else { panic!("closed") };
    assert_eq!(switch.matches[0].as_str(), "roberto");
    let commands = update(&mut model, key(KeyCode::Enter));
    assert_eq!(model.selected, Some(user("roberto")));
    assert_eq!(model.overlay, None);
    assert_eq!(commands, [NetCommand::History { with: user("roberto"), before: None }]);
    update(&mut model, ctrl('k'));
    update(&mut model, key(KeyCode::Esc));
    assert_eq!((model.overlay.clone(), model.selected.clone()), (None, Some(user("roberto"))));
}

#[test]
fn help_opens_with_question_mark_or_f1_and_any_key_closes_it() {
    let mut model = logged_in(vec![]);
    update(&mut model, key(KeyCode::Char('?')));
    assert!(matches!(model.overlay, Some(Overlay::Help(_))));
    update(&mut model, key(KeyCode::Esc));
    assert_eq!((model.overlay.clone(), model.input.text()), (None, ""));
    // A character right after the '?' meant a message starting with '?': nothing is lost.
    update(&mut model, key(KeyCode::Char('?')));
    update(&mut model, key(KeyCode::Char('x')));
    assert_eq!((model.overlay.clone(), model.input.text()), (None, "?x"));
    update(&mut model, ctrl('u'));
    update(&mut model, key(KeyCode::F(1)));
    assert!(matches!(model.overlay, Some(Overlay::Help(_))));
    update(&mut model, key(KeyCode::Esc));
    // With text typed, '?' is just a character.
    type_text(&mut model, "why?");
    assert_eq!((model.overlay.clone(), model.input.text()), (None, "why?"));
}

#[test]
fn tab_moves_focus_and_contacts_focus_uses_arrows() {
    let mut model = logged_in(vec![contact("bia", true, 0, 0), contact("caio", true, 0, 0)]);
    update(&mut model, key(KeyCode::Tab));
    assert_eq!(model.focus, Focus::Contacts);
    update(&mut model, key(KeyCode::Down));
    update(&mut model, key(KeyCode::Down));
    assert_eq!(model.selected, Some(user("caio")));
    update(&mut model, key(KeyCode::Enter));
    assert_eq!(model.focus, Focus::Input);
}

#[test]
fn incoming_messages_count_unread_unless_open_and_reorder_contacts() {
    let mut model = logged_in(vec![contact("bia", true, 0, 0), contact("caio", true, 0, 0)]);
    update(&mut model, alt(KeyCode::Char('1')));
    assert_eq!(model.selected, Some(user("bia")));
    let commands =
        update(&mut model, Msg::Net(NetEvent::Server(Event::Message(message(40, "caio", "ana", "psst")))));
    assert!(commands.is_empty());
    assert_eq!(model.contacts[0].name.as_str(), "bia", "no re-sort while walking the list");
    type_text(&mut model, "x");
    assert_eq!(model.contacts[0].name.as_str(), "caio", "unread goes first once the walk ends");
    assert_eq!(model.contacts[0].unread, 1);
    assert_eq!(model.total_unread(), 1);

    let commands =
        update(&mut model, Msg::Net(NetEvent::Server(Event::Message(message(41, "bia", "ana", "oi")))));
    assert_eq!(commands, [NetCommand::MarkRead { with: user("bia"), up_to: 41 }]);
    assert_eq!(model.contact(&user("bia")).unwrap().unread, 0);
    // The same message again (backlog and live) is filed once.
    update(&mut model, Msg::Net(NetEvent::Server(Event::Message(message(40, "caio", "ana", "psst")))));
    assert_eq!(model.contact(&user("caio")).unwrap().unread, 1);
    assert_eq!(model.conversations[&user("caio")].messages.len(), 1);
}

#[test]
fn acknowledgements_and_receipts_move_delivery_marks() {
    use papo::app::Delivery;
    let mut model = logged_in(vec![contact("bia", true, 0, 0)]);
    update(&mut model, ctrl('n'));
    type_text(&mut model, "oi");
    update(&mut model, key(KeyCode::Enter));
    let outgoing = Outgoing { to: user("bia"), body: "oi".into(), client_msg_id: 1000 };
    update(&mut model, Msg::Net(NetEvent::Sent { outgoing, id: 50, sent_at: NOW }));
    let conversation = &model.conversations[&user("bia")];
    assert!(conversation.outgoing.is_empty());
    assert_eq!(conversation.delivery(50), Delivery::Sent);
    let receipt = |kind| Msg::Net(NetEvent::Server(Event::Receipt { peer: name("bia"), kind, up_to: 50 }));
    update(&mut model, receipt(ReceiptKind::Delivered));
    assert_eq!(model.conversations[&user("bia")].delivery(50), Delivery::Delivered);
    update(&mut model, receipt(ReceiptKind::Read));
    assert_eq!(model.conversations[&user("bia")].delivery(50), Delivery::Read);

    update(&mut model, Msg::Net(NetEvent::SendFailed { client_msg_id: 7, reason: "nope".into() }));
    assert_eq!(model.notice.as_deref(), Some("not sent: nope"));
}

#[test]
fn scrolling_fetches_older_pages_and_end_returns() {
    let mut model = logged_in(vec![contact("bia", true, 0, 300)]);
    update(&mut model, ctrl('n'));
    let page = HistoryPage {
        messages: (201..=300).rev().map(|id| message(id, "bia", "ana", "line")).collect(),
        more: true,
        peer_delivered_up_to: 0,
        peer_read_up_to: 0,
    };
    update(&mut model, Msg::Net(NetEvent::History { with: name("bia"), before: None, page }));
    assert!(update(&mut model, key(KeyCode::PageUp)).is_empty(), "plenty loaded below the top");
    let scrolled = model.conversations[&user("bia")].scroll;
    assert!(scrolled > 0);
    let mut fetched = Vec::new();
    for _ in 0..10 {
        fetched.extend(update(&mut model, key(KeyCode::PageUp)));
    }
    assert_eq!(
        fetched,
        [NetCommand::History { with: user("bia"), before: Some(201) }],
        "one request at a time"
    );
    update(&mut model, Msg::Scroll(-3));
    update(&mut model, Msg::Net(NetEvent::Server(Event::Message(message(301, "bia", "ana", "new")))));
    assert_eq!(model.conversations[&user("bia")].new_below, 1);
    update(&mut model, key(KeyCode::End));
    assert_eq!(model.conversations[&user("bia")].scroll, 0);
    assert_eq!(model.conversations[&user("bia")].new_below, 0);
    update(&mut model, key(KeyCode::PageUp));
    update(&mut model, key(KeyCode::PageDown));
    update(&mut model, key(KeyCode::PageDown));
    assert_eq!(model.conversations[&user("bia")].scroll, 0, "never below the newest");
}

#[test]
fn ctrl_c_quits_from_every_screen_and_releases_are_ignored() {
    let mut model = fresh();
    let release = KeyEvent::new_with_kind(KeyCode::Char('x'), KeyModifiers::NONE, KeyEventKind::Release);
    update(&mut model, Msg::Key(release));
    assert!(model.login.name.is_empty());
    update(&mut model, ctrl('c'));
    assert!(model.quit);
    let mut chat = logged_in(vec![]);
    update(&mut chat, ctrl('k'));
    update(&mut chat, ctrl('c'));
    assert!(chat.quit);
}

#[test]
fn an_expired_session_returns_to_login() {
    let mut model = logged_in(vec![contact("bia", true, 1, 3)]);
    update(&mut model, Msg::Net(NetEvent::SessionExpired { why: None }));
    assert_eq!(model.screen, Screen::Login);
    assert!(model.contacts.is_empty() && model.me.is_none());
    assert!(model.login.error.as_deref().unwrap().contains("log in again"));
}

#[test]
fn a_session_ended_by_a_disabled_account_says_so_on_the_login_screen() {
    let mut model = logged_in(vec![contact("bia", true, 1, 3)]);
    let why = Some("this account is disabled by the administrator; ask them to enable it again".into());
    update(&mut model, Msg::Net(NetEvent::SessionExpired { why }));
    assert_eq!(model.screen, Screen::Login);
    assert!(model.login.error.as_deref().unwrap().contains("disabled by the administrator"));
}

#[test]
fn a_deleted_account_says_so_and_refuses_new_messages() {
    let mut model = logged_in(vec![contact("bia", true, 0, 2), contact("caio", false, 0, 0)]);
    update(&mut model, ctrl('n'));
    update(&mut model, Msg::Net(NetEvent::Server(Event::UserDeleted { user: name("bia") })));
    type_text(&mut model, "still there?");
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert_eq!(model.notice.as_deref(), Some("bia can no longer be written to: the account was deleted"));
    let screen = render(&model, 80, 16).join("\n");
    assert!(screen.contains("bia the account was deleted"), "{screen}");
    // A later contact list says so too.
    let mut listed = contact("caio", false, 0, 0);
    listed.deleted = true;
    update(&mut model, Msg::Net(NetEvent::Contacts(vec![listed])));
    assert_eq!(model.contact(&user("caio")).and_then(|c| c.gone.as_deref()), Some("the account was deleted"));
}

#[test]
fn logout_all_asks_the_server_and_its_answer_returns_to_login() {
    let mut model = logged_in(vec![contact("bia", true, 0, 0)]);
    type_text(&mut model, "/logout-all");
    assert_eq!(update(&mut model, key(KeyCode::Enter)), [NetCommand::LogoutEverywhere]);
    assert!(model.input.is_empty());
    let why = Some("you logged out everywhere; log in again".into());
    update(&mut model, Msg::Net(NetEvent::SessionExpired { why }));
    assert_eq!(model.screen, Screen::Login);
    assert_eq!(model.login.error.as_deref(), Some("you logged out everywhere; log in again"));
}

#[test]
fn presence_events_update_and_add_contacts() {
    let mut model = logged_in(vec![contact("bia", false, 0, 0)]);
    let presence =
        |user: &str, online| Msg::Net(NetEvent::Server(Event::Presence { user: name(user), online }));
    update(&mut model, presence("bia", true));
    assert!(model.contact(&user("bia")).unwrap().online);
    update(&mut model, presence("newbie", true));
    assert!(model.contact(&user("newbie")).is_some_and(|c| c.online));
    update(&mut model, Msg::Resize(100, 40));
    assert_eq!(model.viewport, (100, 40));
}

#[test]
fn a_new_server_is_trusted_only_by_typing_yes_or_its_fingerprint() {
    let mut model = fresh();
    let presented = Fingerprint::of(b"server certificate");
    update(&mut model, Msg::Net(NetEvent::Untrusted(TrustProblem::Unknown { presented })));
    // A name typed a moment too early neither reaches the hidden form nor trusts anything.
    type_text(&mut model, "yann");
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert_eq!(model.login.name.text(), "");
    let prompt = model.trust.as_ref().unwrap();
    assert!(prompt.error.as_deref().unwrap().contains("type yes"), "{prompt:?}");
    // Another fingerprint is refused with a warning.
    update(&mut model, Msg::Paste(Fingerprint::of(b"impostor").to_string()));
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert!(model.trust.as_ref().unwrap().error.as_deref().unwrap().contains("not the fingerprint"));
    // Its own fingerprint, pasted, is accepted; so is "yes".
    update(&mut model, Msg::Paste(format!("{presented}\n")));
    assert_eq!(update(&mut model, key(KeyCode::Enter)), [NetCommand::Trust(presented)]);
    assert_eq!(model.trust, None);
    update(&mut model, Msg::Net(NetEvent::Untrusted(TrustProblem::Unknown { presented })));
    type_text(&mut model, "YES");
    assert_eq!(update(&mut model, key(KeyCode::Enter)), [NetCommand::Trust(presented)]);
    assert!(!model.quit);

    update(&mut model, Msg::Net(NetEvent::Untrusted(TrustProblem::Unknown { presented })));
    update(&mut model, key(KeyCode::Esc));
    assert!(model.quit, "Esc declines and quits");
}

#[test]
fn a_changed_certificate_offers_no_way_to_trust_it() {
    let mut model = fresh();
    let problem = TrustProblem::Changed {
        trusted: Fingerprint::of(b"old"),
        presented: Fingerprint::of(b"new"),
        file: "/home/ana/.local/share/papo/known_servers".into(),
    };
    update(&mut model, Msg::Net(NetEvent::Untrusted(problem.clone())));
    type_text(&mut model, "yes");
    update(&mut model, Msg::Paste(Fingerprint::of(b"new").to_string()));
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert_eq!(model.trust.as_ref().map(|p| &p.problem), Some(&problem));
    assert!(!model.quit);
    update(&mut model, key(KeyCode::Esc));
    assert!(model.quit);
}

#[test]
fn a_certificate_question_after_a_reconnect_interrupts_the_chat_until_answered() {
    let mut model = logged_in(vec![contact("bia", true, 0, 0)]);
    let presented = Fingerprint::of(b"server certificate");
    update(&mut model, Msg::Net(NetEvent::Untrusted(TrustProblem::Unknown { presented })));
    update(&mut model, Msg::Paste("not for the chat".into()));
    assert!(update(&mut model, key(KeyCode::Enter)).is_empty());
    assert_eq!(model.input.text(), "", "nothing typed reaches the message box");
    type_text(&mut model, "yes");
    assert_eq!(update(&mut model, key(KeyCode::Enter)), [NetCommand::Trust(presented)]);
    assert_eq!(model.screen, Screen::Chat, "the chat goes on once answered");
    type_text(&mut model, "oi");
    assert_eq!(model.input.text(), "oi");
}

/// The invite code is an optional last field: Tab reaches it, a code typed there goes with
/// the registration (trimmed), and a server asking for one (or refusing the one given)
/// puts the cursor in it.
#[test]
fn create_account_sends_the_invite_code_and_a_refusal_focuses_it() {
    let mut model = fresh();
    update(&mut model, key(KeyCode::F(2)));
    type_text(&mut model, "novo");
    update(&mut model, key(KeyCode::Tab));
    type_text(&mut model, "password1");
    update(&mut model, key(KeyCode::Tab));
    type_text(&mut model, "password1");
    let commands = update(&mut model, key(KeyCode::Enter));
    assert_eq!(
        commands,
        [NetCommand::Register { name: "novo".into(), password: "password1".into(), invite: None }]
    );
    let required = NetEvent::AuthFailed {
        code: Some(ErrorCode::InviteRequired),
        message: "this server needs an invite code".into(),
    };
    update(&mut model, Msg::Net(required));
    assert_eq!(
        (model.login.field, model.login.busy, model.login.error.as_deref()),
        (LoginField::Invite, false, Some("this server needs an invite code"))
    );
    type_text(&mut model, " K7Q2 ");
    assert_eq!(model.login.error, None, "typing a code answers the refusal");
    let commands = update(&mut model, key(KeyCode::Enter));
    assert_eq!(
        commands,
        [NetCommand::Register {
            name: "novo".into(),
            password: "password1".into(),
            invite: Some("K7Q2".into())
        }]
    );
    let invalid =
        NetEvent::AuthFailed { code: Some(ErrorCode::InviteInvalid), message: "unknown code".into() };
    update(&mut model, key(KeyCode::Tab));
    update(&mut model, Msg::Net(invalid));
    assert_eq!(model.login.field, LoginField::Invite);
    // Tab goes round through it, and logging in has no such field.
    update(&mut model, key(KeyCode::Tab));
    assert_eq!(model.login.field, LoginField::Name);
    update(&mut model, key(KeyCode::BackTab));
    assert_eq!(model.login.field, LoginField::Invite);
    update(&mut model, key(KeyCode::F(2)));
    assert_eq!((model.login.mode, model.login.field), (LoginMode::LogIn, LoginField::Password));
    // Another refusal while logging in moves nothing.
    let other = NetEvent::AuthFailed { code: Some(ErrorCode::InvalidCredentials), message: "wrong".into() };
    update(&mut model, Msg::Net(other));
    assert_eq!(model.login.field, LoginField::Password);
}
