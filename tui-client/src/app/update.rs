//! Every state change: key presses, pastes, scrolling and network events in, commands for
//! the network thread out. No I/O happens here, so all of it is tested as plain functions.

use std::time::Duration;

use papo_protocol::{
    ChatMessage, ErrorCode, Event, GroupMessage, GroupMessageKind, GroupName, MessageId, ReceiptKind,
    UnixMillis, Username, MAX_BODY_LEN,
};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::Rect;

use super::editor::Editor;
use super::fuzzy;
use super::group_commands;
use super::history::{lines_from_bottom, newest_height};
use super::mention;
use super::model::{
    Alert, ContactEntry, ConvKey, Conversation, Focus, HelpState, LoginField, LoginForm, LoginMode, Model,
    OutgoingView, Overlay, PasswordForm, Post, QuickSwitch, Screen, TrustPrompt, DELETED_ACCOUNT,
};
use super::view::{contacts_rows, help_max_scroll, trust_scroll, ChatLayout};
use super::{search, unlisted, unread};
use crate::net::{Link, NetCommand, NetEvent, Outgoing, TrustProblem};
use crate::sanitize;
use crate::settings::{GroupNotify, Notify};

/// How long a peer's `typing…` shows after their last typing event.
const TYPING_SHOWN_MILLIS: UnixMillis = 6_000;

/// Least time between two typing events we send to the same peer.
const TYPING_EVERY_MILLIS: UnixMillis = 3_000;

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// A key was pressed (releases and repeats of other kinds are ignored).
    Key(KeyEvent),
    /// Text was pasted (bracketed paste): inserted, never sent by itself.
    Paste(String),
    /// Mouse wheel: positive scrolls back in time, negative forward.
    Scroll(i32),
    /// The terminal was resized.
    Resize(u16, u16),
    /// The network thread reported something.
    Net(NetEvent),
    /// Time passed (about a second, while a countdown is shown).
    Tick(Duration),
    /// SIGTERM, SIGHUP or SIGINT: quit as Ctrl+C does.
    Terminate,
    /// The wall-clock time now, sent before each batch of other messages.
    Clock(UnixMillis),
    /// The terminal gained (`true`) or lost focus.
    Focus(bool),
}

/// Applies `msg` to `model`; returns what the network thread must do.
pub fn update(model: &mut Model, msg: Msg) -> Vec<NetCommand> {
    let mut commands = Vec::new();
    match msg {
        Msg::Key(key) if key.kind == KeyEventKind::Press => on_key(model, key, &mut commands),
        Msg::Key(_) => {}
        Msg::Paste(text) => on_paste(model, &text, &mut commands),
        Msg::Scroll(lines) => scroll(model, lines, &mut commands),
        Msg::Resize(width, height) => model.viewport = (width, height),
        Msg::Net(event) => on_net(model, event, &mut commands),
        Msg::Tick(elapsed) => {
            if let Link::Offline { retry_in, .. } = &mut model.link {
                *retry_in = retry_in.saturating_sub(elapsed);
            }
        }
        Msg::Terminate => model.quit = true,
        Msg::Clock(now) => model.now = now,
        Msg::Focus(focused) => model.focused = focused,
    }
    commands
}

fn on_key(model: &mut Model, key: KeyEvent, out: &mut Vec<NetCommand>) {
    if ctrl(&key, 'c') {
        model.quit = true;
        return;
    }
    // A certificate question comes first on any screen: after a reconnect it can interrupt
    // a chat, and nothing else may reach the server until it is answered.
    if model.trust.is_some() {
        return trust_key(model, key, out);
    }
    match model.screen {
        Screen::Login => login_key(&mut model.login, key, out),
        Screen::Chat => chat_key(model, key, out),
    }
}

/// A new server's certificate is trusted by typing `yes` (or its fingerprint) and Enter; Esc
/// quits. A changed certificate offers no answer: the user must edit `known_servers`
/// knowingly. On a small screen Up, Down, PageUp and PageDown (and Home and End, when there
/// is no answer to edit) scroll the explanation.
fn trust_key(model: &mut Model, key: KeyEvent, out: &mut Vec<NetCommand>) {
    let Some(prompt) = &mut model.trust else { return };
    let (page, max_scroll) = trust_scroll(prompt, &model.server, model.viewport);
    let answerable = matches!(prompt.problem, TrustProblem::Unknown { .. });
    // Home and End edit a new server's answer; the box with no answer scrolls with them.
    let scrolled = match key.code {
        KeyCode::Up => Some(prompt.scroll.saturating_sub(1)),
        KeyCode::Down => Some(prompt.scroll + 1),
        KeyCode::PageUp => Some(prompt.scroll.saturating_sub(page.max(1))),
        KeyCode::PageDown => Some(prompt.scroll + page.max(1)),
        KeyCode::Home if !answerable => Some(0),
        KeyCode::End if !answerable => Some(max_scroll),
        _ => None,
    };
    if let Some(scroll) = scrolled {
        prompt.scroll = scroll.min(max_scroll);
        return;
    }
    let TrustProblem::Unknown { presented } = prompt.problem else {
        if key.code == KeyCode::Esc {
            model.quit = true;
        }
        return;
    };
    match key.code {
        KeyCode::Esc => model.quit = true,
        KeyCode::Enter => {
            let answer = prompt.answer.text().trim().to_owned();
            let pasted = answer.parse::<papo_protocol::Fingerprint>().ok();
            if answer.eq_ignore_ascii_case("yes") || pasted == Some(presented) {
                model.trust = None;
                out.push(NetCommand::Trust(presented));
                return;
            }
            prompt.error = Some(match pasted {
                Some(_) => "that is not the fingerprint this server presented; do not trust it".into(),
                None => "type yes and press Enter to trust the server, or Esc to quit".into(),
            });
            prompt.answer = Editor::default();
        }
        _ => {
            if edit(&mut prompt.answer, key) && !prompt.answer.is_empty() {
                prompt.error = None;
            }
        }
    }
}

fn login_key(form: &mut LoginForm, key: KeyEvent, out: &mut Vec<NetCommand>) {
    let fields = form.fields();
    let at = fields.iter().position(|&f| f == form.field).unwrap_or(0);
    match key.code {
        KeyCode::Tab | KeyCode::Down => form.field = fields[(at + 1) % fields.len()],
        KeyCode::BackTab | KeyCode::Up => form.field = fields[(at + fields.len() - 1) % fields.len()],
        KeyCode::F(2) => toggle_mode(form),
        KeyCode::Char('r') if key.modifiers.contains(KeyModifiers::CONTROL) => toggle_mode(form),
        KeyCode::Enter => submit_login(form, out),
        _ => {
            let before = form.focused_mut().text().to_owned();
            edit(form.focused_mut(), key);
            // What the last attempt said no longer holds once the user changes what was tried
            // (a missing connection is another matter: it goes when the link comes up).
            if form.focused_mut().text() != before && !form.offline_error {
                form.error = None;
            }
        }
    }
}

fn toggle_mode(form: &mut LoginForm) {
    form.mode = match form.mode {
        LoginMode::LogIn => LoginMode::Register,
        LoginMode::Register => LoginMode::LogIn,
    };
    if !form.fields().contains(&form.field) {
        form.field = LoginField::Password;
    }
    form.error = None;
}

fn submit_login(form: &mut LoginForm, out: &mut Vec<NetCommand>) {
    if form.busy {
        return;
    }
    let name = form.name.text().trim().to_owned();
    let password = form.password.text().to_owned();
    // Enter on a filled field with an empty one after it means "next", as on any form,
    // before anything is judged: creating an account is Enter after each field. The invite
    // code is optional, so Enter on the confirmation submits without one; a server that
    // wants one says so and the form goes to it.
    let fields = form.fields();
    let at = fields.iter().position(|&f| f == form.field).unwrap_or(0);
    if let Some(&next) = fields.get(at + 1).filter(|&&next| next != LoginField::Invite) {
        if !field_editor(form, form.field).is_empty() && field_editor(form, next).is_empty() {
            form.field = next;
            form.error = None;
            return;
        }
    }
    let problem = if name.is_empty() {
        Some((LoginField::Name, "type your name"))
    } else if password.is_empty() {
        Some((LoginField::Password, "type your password"))
    } else if form.mode == LoginMode::Register && password.len() < *papo_protocol::PASSWORD_LEN.start() {
        Some((LoginField::Password, "the password needs at least 8 characters"))
    } else if form.mode == LoginMode::Register && form.confirm.text() != password {
        Some((LoginField::Confirm, "the two passwords differ; type them again"))
    } else {
        None
    };
    if let Some((field, problem)) = problem {
        form.field = field;
        form.error = Some(problem.to_owned());
        return;
    }
    form.error = None;
    form.offline_error = false;
    form.busy = true;
    out.push(match form.mode {
        LoginMode::LogIn => NetCommand::Login { name, password },
        LoginMode::Register => {
            let invite = Some(form.invite.text().trim()).filter(|code| !code.is_empty()).map(str::to_owned);
            NetCommand::Register { name, password, invite }
        }
    });
}

fn field_editor(form: &LoginForm, field: LoginField) -> &Editor {
    match field {
        LoginField::Name => &form.name,
        LoginField::Password => &form.password,
        LoginField::Confirm => &form.confirm,
        LoginField::Invite => &form.invite,
    }
}

fn chat_key(model: &mut Model, key: KeyEvent, out: &mut Vec<NetCommand>) {
    model.notice = None;
    if let Some(overlay) = model.overlay.take() {
        match overlay {
            Overlay::Help(help) => help_key(model, help, key, out),
            Overlay::QuickSwitch(switch) => quick_switch_key(model, switch, key, out),
            Overlay::Search => search::key(model, key, out),
            Overlay::Password(form) => password_key(model, form, key, out),
            Overlay::ConfirmDelete(group) => group_commands::confirm_delete_key(model, group, key, out),
        }
        // What arrived while the box covered the conversation is read once it shows again.
        return mark_read(model, out);
    }
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let contacts_focused = model.focus == Focus::Contacts;
    let walking = match key.code {
        KeyCode::Char('n' | 'p') => key.modifiers.contains(KeyModifiers::CONTROL),
        KeyCode::Down | KeyCode::Up | KeyCode::Char('1'..='9') => alt || contacts_focused,
        KeyCode::PageUp | KeyCode::PageDown | KeyCode::Home | KeyCode::End | KeyCode::Char('j' | 'k') => {
            contacts_focused
        }
        _ => false,
    };
    // The list keeps its order while the user walks it; what changed meanwhile is sorted in
    // once they do anything else.
    model.navigating = walking;
    if !walking && model.resort_pending {
        model.resort_pending = false;
        model.sort_contacts();
    }
    if key.code != KeyCode::Esc {
        model.from_search = false;
    }
    match key.code {
        KeyCode::F(1) => model.overlay = Some(Overlay::Help(HelpState::default())),
        KeyCode::Char('k') if ctrl(&key, 'k') => open_quick_switch(model),
        KeyCode::Char('f') if ctrl(&key, 'f') => search::open(model, false, "", out),
        KeyCode::Char('a') if alt => match unread::next_unread(model) {
            Some(name) => {
                select(model, name, out);
                model.focus = Focus::Input;
            }
            None => model.notice = Some("nothing unread".into()),
        },
        KeyCode::Char('m') if alt => toggle_members(model, out),
        KeyCode::Char('n') if ctrl(&key, 'n') => select_relative(model, 1, out),
        KeyCode::Char('p') if ctrl(&key, 'p') => select_relative(model, -1, out),
        KeyCode::Down if alt => select_relative(model, 1, out),
        KeyCode::Up if alt => select_relative(model, -1, out),
        KeyCode::Char(digit @ '1'..='9') if alt => {
            let at = digit as usize - '1' as usize;
            if let Some(name) = model.contacts.get(at).map(|c| c.name.clone()) {
                select(model, name, out);
            }
        }
        KeyCode::PageUp if !contacts_focused => {
            scroll(model, i32::try_from(page(model)).unwrap_or(i32::MAX), out)
        }
        KeyCode::PageDown if !contacts_focused => {
            scroll(model, -i32::try_from(page(model)).unwrap_or(i32::MAX), out)
        }
        KeyCode::End if key.modifiers.contains(KeyModifiers::CONTROL) => jump_to_newest(model, out),
        KeyCode::Tab | KeyCode::BackTab => {
            model.focus = match model.focus {
                Focus::Contacts => Focus::Input,
                Focus::Input => Focus::Contacts,
            }
        }
        KeyCode::Esc if model.from_search => {
            model.from_search = false;
            model.overlay = Some(Overlay::Search);
        }
        KeyCode::Esc => model.banner = None,
        _ => match model.focus {
            Focus::Contacts => contacts_key(model, key, out),
            Focus::Input => input_key(model, key, out),
        },
    }
}

/// Alt+M: shows or hides the open group's members (the choice holds for every group).
fn toggle_members(model: &mut Model, out: &mut Vec<NetCommand>) {
    match model.selected.clone() {
        Some(group @ ConvKey::Group(_)) => {
            model.show_members = !model.show_members;
            group_commands::ask_roster(model, &group, out);
        }
        _ => model.notice = Some("Alt+M shows a group's members: open a group first".into()),
    }
}

fn contacts_key(model: &mut Model, key: KeyEvent, out: &mut Vec<NetCommand>) {
    let page = contacts_rows(model).max(1) as isize;
    match key.code {
        KeyCode::Down | KeyCode::Char('j') => select_relative(model, 1, out),
        KeyCode::Up | KeyCode::Char('k') => select_relative(model, -1, out),
        KeyCode::PageDown => select_clamped(model, page, out),
        KeyCode::PageUp => select_clamped(model, -page, out),
        KeyCode::Home => select_clamped(model, isize::MIN / 2, out),
        KeyCode::End => select_clamped(model, isize::MAX / 2, out),
        KeyCode::Enter | KeyCode::Right => model.focus = Focus::Input,
        KeyCode::Char('?') if model.input.is_empty() => {
            model.overlay = Some(Overlay::Help(HelpState { scroll: 0, by_question_mark: true }));
        }
        KeyCode::Char(_) => {
            model.focus = Focus::Input;
            input_key(model, key, out);
        }
        _ => {}
    }
}

fn input_key(model: &mut Model, key: KeyEvent, out: &mut Vec<NetCommand>) {
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    match key.code {
        KeyCode::Enter if alt => model.input.insert("\n"),
        KeyCode::Enter => submit_input(model, out),
        // Up and Down move between the lines of a message, and recall earlier inputs from
        // its first and last line (a message of several lines is never replaced by a recall).
        KeyCode::Up => {
            if !model.input.up() && model.input.line_count() == 1 {
                recall(model, -1);
            }
        }
        KeyCode::Down => {
            if !model.input.down() && model.input.line_count() == 1 {
                recall(model, 1);
            }
        }
        KeyCode::End if model.input.at_end() => jump_to_newest(model, out),
        KeyCode::Char('?') if model.input.is_empty() => {
            model.overlay = Some(Overlay::Help(HelpState { scroll: 0, by_question_mark: true }));
        }
        _ => {
            let before = model.input.text().len();
            if edit(&mut model.input, key) {
                model.recall = None;
                if model.input.text().len() != before {
                    typed(model, out);
                }
            }
        }
    }
}

/// Tells the peer we are typing, at most every [`TYPING_EVERY_MILLIS`], unless the user
/// turned it off, the input is a command, or nobody would hear it (the protocol's typing
/// event goes to a user, never to a group).
fn typed(model: &mut Model, out: &mut Vec<NetCommand>) {
    if !model.prefs.send_typing || model.is_offline() || model.input.text().starts_with('/') {
        return;
    }
    let Some(peer) = model.selected.as_ref().and_then(ConvKey::user).cloned() else { return };
    let recent = model
        .typing_sent
        .as_ref()
        .is_some_and(|(to, at)| *to == peer && model.now.saturating_sub(*at) < TYPING_EVERY_MILLIS);
    if recent {
        return;
    }
    model.typing_sent = Some((peer.clone(), model.now));
    out.push(NetCommand::Typing { to: peer });
}

/// `/passwd`: the current password, the new one twice; Tab, Down and Enter move on, Enter
/// on the last field submits, Esc cancels.
fn password_key(model: &mut Model, mut form: PasswordForm, key: KeyEvent, out: &mut Vec<NetCommand>) {
    match key.code {
        KeyCode::Esc => return,
        KeyCode::Tab | KeyCode::Down => form.field = (form.field + 1) % 3,
        KeyCode::BackTab | KeyCode::Up => form.field = (form.field + 2) % 3,
        KeyCode::Enter if form.field < 2 => form.field += 1,
        KeyCode::Enter if !form.busy => {
            let (old, new) = (form.old.text().to_owned(), form.new.text().to_owned());
            form.error = if old.is_empty() {
                form.field = 0;
                Some("type your current password".into())
            } else if !papo_protocol::PASSWORD_LEN.contains(&new.len()) {
                form.field = 1;
                Some("the new password needs 8 to 128 bytes".into())
            } else if form.confirm.text() != new {
                form.field = 2;
                Some("the two new passwords differ; type them again".into())
            } else {
                form.busy = true;
                out.push(NetCommand::ChangePassword { old, new });
                None
            };
        }
        _ => {
            let field = match form.field {
                0 => &mut form.old,
                1 => &mut form.new,
                _ => &mut form.confirm,
            };
            edit(field, key);
        }
    }
    model.overlay = Some(Overlay::Password(form));
}

/// Keys while the help is open: arrows and paging scroll it, Esc, Enter, F1 and `?` close it.
/// Any other key closes it too; a character typed right after a `?` that opened the help was
/// meant for a message starting with `?`, so both go to the input.
fn help_key(model: &mut Model, mut help: HelpState, key: KeyEvent, out: &mut Vec<NetCommand>) {
    let max = help_max_scroll(model.viewport);
    match key.code {
        KeyCode::Down => help.scroll = (help.scroll + 1).min(max),
        KeyCode::Up => help.scroll = help.scroll.saturating_sub(1),
        KeyCode::PageDown | KeyCode::Char(' ') => help.scroll = (help.scroll + 10).min(max),
        KeyCode::PageUp => help.scroll = help.scroll.saturating_sub(10),
        KeyCode::Home => help.scroll = 0,
        KeyCode::End => help.scroll = max,
        KeyCode::Esc | KeyCode::Enter | KeyCode::F(1) | KeyCode::Char('?') => return,
        KeyCode::Char(_) if help.by_question_mark && !key.modifiers.contains(KeyModifiers::CONTROL) => {
            model.focus = Focus::Input;
            model.input.insert("?");
            return input_key(model, key, out);
        }
        _ => return,
    }
    model.overlay = Some(Overlay::Help(help));
}

fn quick_switch_key(model: &mut Model, mut switch: QuickSwitch, key: KeyEvent, out: &mut Vec<NetCommand>) {
    match key.code {
        KeyCode::Esc => return,
        KeyCode::Enter => {
            match switch.matches.get(switch.selected).cloned() {
                Some(name) => {
                    select(model, name, out);
                    model.focus = Focus::Input;
                }
                None => {
                    let typed = switch.query.text().trim();
                    model.notice = Some(format!("there is no user called {}", sanitize::line(typed)));
                }
            }
            return;
        }
        KeyCode::Down => switch.selected = (switch.selected + 1).min(switch.matches.len().saturating_sub(1)),
        KeyCode::Char('n') if ctrl(&key, 'n') => {
            switch.selected = (switch.selected + 1).min(switch.matches.len().saturating_sub(1));
        }
        KeyCode::Up => switch.selected = switch.selected.saturating_sub(1),
        KeyCode::Char('p') if ctrl(&key, 'p') => switch.selected = switch.selected.saturating_sub(1),
        _ => {
            if edit(&mut switch.query, key) {
                switch.matches = ranked(model, switch.query.text());
                switch.selected = 0;
            }
        }
    }
    model.overlay = Some(Overlay::QuickSwitch(switch));
}

fn open_quick_switch(model: &mut Model) {
    let matches = ranked(model, "");
    model.overlay = Some(Overlay::QuickSwitch(QuickSwitch { matches, ..QuickSwitch::default() }));
}

fn ranked(model: &Model, query: &str) -> Vec<ConvKey> {
    let mut matches = fuzzy::rank(query, model.contacts.iter().map(|c| &c.name));
    matches.retain(|name| model.me.is_none() || name.user() != model.me.as_ref());
    matches
}

/// Applies a readline editing key; `false` if the key is not an editing key.
pub(super) fn edit(editor: &mut Editor, key: KeyEvent) -> bool {
    let control = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char('a') if control => editor.home(),
        KeyCode::Char('e') if control => editor.end(),
        KeyCode::Char('w') if control => editor.delete_word(),
        KeyCode::Char('u') if control => editor.delete_to_start(),
        KeyCode::Char('h') if control => editor.backspace(),
        KeyCode::Char(c) if !control && !key.modifiers.contains(KeyModifiers::ALT) => {
            editor.insert(c.encode_utf8(&mut [0; 4]));
        }
        KeyCode::Backspace => editor.backspace(),
        KeyCode::Delete => editor.delete(),
        KeyCode::Left => editor.left(),
        KeyCode::Right => editor.right(),
        KeyCode::Home => editor.home(),
        KeyCode::End => editor.end(),
        _ => return false,
    }
    true
}

fn on_paste(model: &mut Model, text: &str, out: &mut Vec<NetCommand>) {
    // Terminals send pasted line breaks as CR.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    if let Some(prompt) = &mut model.trust {
        prompt.error = None;
        return prompt.answer.insert(text.trim());
    }
    match (model.screen, &mut model.overlay) {
        (Screen::Login, _) => {
            if !model.login.offline_error {
                model.login.error = None;
            }
            model.login.focused_mut().insert(text.trim_end_matches('\n'));
        }
        (Screen::Chat, Some(Overlay::Search)) => search::paste(model, &text),
        (Screen::Chat, Some(Overlay::Password(form))) => {
            let field = match form.field {
                0 => &mut form.old,
                1 => &mut form.new,
                _ => &mut form.confirm,
            };
            field.insert(text.lines().next().unwrap_or(""));
        }
        (Screen::Chat, Some(Overlay::QuickSwitch(switch))) => {
            switch.query.insert(text.lines().next().unwrap_or(""));
            let query = switch.query.text().to_owned();
            let matches = ranked(model, &query);
            if let Some(Overlay::QuickSwitch(switch)) = &mut model.overlay {
                switch.matches = matches;
                switch.selected = 0;
            }
        }
        (Screen::Chat, _) => {
            model.overlay = None;
            model.focus = Focus::Input;
            model.input.insert(&text);
            // The box is closed now: what it covered is on screen again.
            mark_read(model, out);
        }
    }
}

/// The slash commands there are; anything else is kept in the input as typed.
const COMMANDS: &[&str] =
    &["help", "h", "quit", "q", "exit", "msg", "m", "search", "mute", "unmute", "passwd", "logout-all"];

fn submit_input(model: &mut Model, out: &mut Vec<NetCommand>) {
    let text = model.input.text().to_owned();
    if text.trim().is_empty() {
        return;
    }
    if let Some(command) = text.strip_prefix('/').filter(|rest| !rest.starts_with('/')) {
        return slash_command(model, command, out);
    }
    // "//text" sends "/text".
    let body = text.strip_prefix('/').unwrap_or(&text).to_owned();
    let Some(to) = model.selected.clone() else {
        model.notice = Some("pick someone first: Ctrl+K, Ctrl+N or /msg NAME".into());
        return;
    };
    if let Some(gone) = model.contact(&to).and_then(|c| c.gone.as_ref()) {
        model.notice = Some(format!("{to} can no longer be written to: {gone}"));
        return;
    }
    if body.len() > MAX_BODY_LEN {
        model.notice = Some(format!("the message has {} bytes; the limit is {MAX_BODY_LEN}", body.len()));
        return;
    }
    remember_input(model);
    send(model, to, body, out);
}

pub(super) fn remember_input(model: &mut Model) {
    let text = model.input.take();
    model.recall = None;
    if model.input_history.last() != Some(&text) {
        model.input_history.push(text);
    }
}

fn send(model: &mut Model, to: ConvKey, body: String, out: &mut Vec<NetCommand>) {
    let outgoing = Outgoing { to: to.clone(), body, client_msg_id: model.next_client_msg_id };
    model.next_client_msg_id = model.next_client_msg_id.wrapping_add(1);
    let conversation = model.conversations.entry(to).or_default();
    conversation.outgoing.push(OutgoingView { outgoing: outgoing.clone(), failed: None });
    conversation.scroll = 0;
    conversation.new_below = 0;
    model.banner = None;
    // The message itself ends the peer's `typing…`; typing again says so at once.
    model.typing_sent = None;
    out.push(NetCommand::Send(outgoing));
}

/// Runs a command; a command that fails or does not exist leaves the input as typed.
fn slash_command(model: &mut Model, command: &str, out: &mut Vec<NetCommand>) {
    let (name, rest) = command.split_once(char::is_whitespace).unwrap_or((command, ""));
    if group_commands::NAMES.contains(&name) {
        return group_commands::run(model, name, rest, out);
    }
    if !COMMANDS.contains(&name) {
        model.notice = Some(format!(
            "unknown command /{}; /help lists them, //text sends text starting with /",
            sanitize::line(name)
        ));
        return;
    }
    match name {
        "help" | "h" => {
            remember_input(model);
            model.overlay = Some(Overlay::Help(HelpState::default()));
        }
        "quit" | "q" | "exit" => model.quit = true,
        "search" => {
            let rest = rest.trim();
            let (here, text) = match rest.strip_prefix("--here") {
                Some(text) if text.is_empty() || text.starts_with(' ') => (true, text.trim()),
                _ => (false, rest),
            };
            if here && model.selected.is_none() {
                model.notice = Some("--here searches the open conversation: open one first".into());
                return;
            }
            remember_input(model);
            search::open(model, here, text, out);
        }
        "mute" | "unmute" => {
            let muting = name == "mute";
            let target = match rest.trim() {
                "" => model
                    .selected
                    .as_ref()
                    .and_then(ConvKey::user)
                    .cloned()
                    .ok_or_else(|| format!("usage: /{name} [USER] (or open a conversation with one)")),
                raw => Username::parse(raw).map_err(|e| format!("usage: /{name} [USER] ({e})")),
            };
            let user = match target {
                Ok(user) => user,
                Err(problem) => {
                    model.notice = Some(problem);
                    return;
                }
            };
            remember_input(model);
            let changed =
                if muting { model.prefs.muted.insert(user.clone()) } else { model.prefs.muted.remove(&user) };
            model.notice = Some(match (muting, changed) {
                (true, true) => format!("{user} is muted: no bell or notification for them"),
                (true, false) => format!("{user} was already muted"),
                (false, true) => format!("{user} is no longer muted"),
                (false, false) => format!("{user} was not muted"),
            });
        }
        "passwd" => {
            remember_input(model);
            model.overlay = Some(Overlay::Password(PasswordForm::default()));
        }
        "logout-all" => {
            remember_input(model);
            model.notice = Some("logging out every session of yours…".into());
            out.push(NetCommand::LogoutEverywhere);
        }
        _ => {
            let (name, text) = rest.trim_start().split_once(char::is_whitespace).unwrap_or((rest.trim(), ""));
            let key = match ConvKey::parse(name) {
                Ok(key) if model.me.is_some() && key.user() == model.me.as_ref() => {
                    model.notice = Some("that is you; pick someone else".into());
                    return;
                }
                Ok(key) if model.contact(&key).is_none() => {
                    model.notice = Some(match key {
                        ConvKey::User(user) => format!("there is no user called {user}"),
                        ConvKey::Group(group) => format!("you are in no group called {group}"),
                    });
                    return;
                }
                Ok(key) => key,
                Err(e) => {
                    model.notice = Some(format!("usage: /msg USER|#GROUP [text] ({e})"));
                    return;
                }
            };
            let text = text.trim().to_owned();
            remember_input(model);
            select(model, key.clone(), out);
            model.focus = Focus::Input;
            if !text.is_empty() {
                send(model, key, text, out);
            }
        }
    }
}

fn recall(model: &mut Model, direction: isize) {
    let len = model.input_history.len();
    let next = match (model.recall, direction < 0) {
        (None, true) if len > 0 => Some(len - 1),
        (None, _) => return,
        (Some(at), true) => Some(at.saturating_sub(1)),
        (Some(at), false) if at + 1 < len => Some(at + 1),
        (Some(_), false) => None,
    };
    model.recall = next;
    match next {
        Some(at) => {
            let text = model.input_history[at].clone();
            model.input.set(&text);
        }
        None => model.input.set(""),
    }
}

fn select_relative(model: &mut Model, step: isize, out: &mut Vec<NetCommand>) {
    let count = model.contacts.len() as isize;
    if count == 0 {
        return;
    }
    let current = model.selected.as_ref().and_then(|s| model.contacts.iter().position(|c| c.name == *s));
    let next = match current {
        Some(at) => (at as isize + step).rem_euclid(count),
        None if step > 0 => 0,
        None => count - 1,
    };
    let name = model.contacts[next as usize].name.clone();
    select(model, name, out);
}

/// Moves the selection by `step` rows without wrapping (PageUp/PageDown, Home/End).
fn select_clamped(model: &mut Model, step: isize, out: &mut Vec<NetCommand>) {
    let count = model.contacts.len() as isize;
    if count == 0 {
        return;
    }
    let current = model.selected.as_ref().and_then(|s| model.contacts.iter().position(|c| c.name == *s));
    let next = current.map_or(0, |at| (at as isize).saturating_add(step).clamp(0, count - 1));
    let name = model.contacts[next as usize].name.clone();
    select(model, name, out);
}

/// Opens the conversation with `peer` (with its own draft), loading it if needed and
/// marking read what it shows.
pub(super) fn select(model: &mut Model, peer: ConvKey, out: &mut Vec<NetCommand>) {
    if model.selected.as_ref() != Some(&peer) {
        let draft = model.drafts.remove(&peer).unwrap_or_default();
        let previous = std::mem::replace(&mut model.input, draft);
        let left = model.selected.take();
        // The `── new ──` line and the search highlight last until the conversation is left.
        if let Some(conversation) = left.as_ref().and_then(|old| model.conversations.get_mut(old)) {
            conversation.marker = None;
            conversation.marker_pending = 0;
            conversation.highlight = None;
        }
        match left {
            Some(old) if !previous.is_empty() => {
                model.drafts.insert(old, previous);
            }
            Some(_) => {}
            // Typed before anyone was picked: it was meant for whoever is picked now.
            None if model.input.is_empty() => model.input = previous,
            None => {}
        }
        model.recall = None;
        let unread = model.contact(&peer).map_or(0, |c| c.unread);
        let conversation = model.conversations.entry(peer.clone()).or_default();
        conversation.marker = None;
        conversation.marker_pending = unread;
    }
    model.contact_mut(&peer);
    let conversation = model.conversations.entry(peer.clone()).or_default();
    if (!conversation.requested || conversation.stale) && !conversation.loading {
        conversation.requested = true;
        conversation.stale = false;
        conversation.loading = true;
        out.push(NetCommand::History { with: peer.clone(), before: None });
    }
    unread::place_marker(model, &peer, out);
    group_commands::ask_roster(model, &peer, out);
    model.selected = Some(peer);
    mark_read(model, out);
}

/// Marks the open conversation read up to the newest message on screen: only when the
/// chat shows it at the bottom (not scrolled back, not covered by a box), and only what is
/// loaded.
fn mark_read(model: &mut Model, out: &mut Vec<NetCommand>) {
    let Some(peer) = model.selected.clone() else { return };
    if model.screen != Screen::Chat || model.overlay.is_some() || model.is_offline() {
        return;
    }
    let Some(conversation) = model.conversations.get(&peer) else { return };
    // A conversation still placing its `── new ──` line or a search result is not read yet.
    let placing = conversation.marker_pending > 0 || conversation.jump_to.is_some();
    if conversation.scroll > 0 || placing || conversation.loading && conversation.messages.is_empty() {
        return;
    }
    let Some(newest) = conversation.messages.last().map(|m| m.id) else { return };
    let contact = model.contact_mut(&peer);
    if contact.unread == 0 {
        return;
    }
    contact.unread = 0;
    out.push(NetCommand::MarkRead { with: peer, up_to: newest });
}

/// Sorts the contacts now, or once the user stops walking the list.
fn resort(model: &mut Model) {
    if model.navigating {
        model.resort_pending = true;
    } else {
        model.sort_contacts();
    }
}

fn page(model: &Model) -> usize {
    history_size(model).1.saturating_sub(1).max(1)
}

/// Cells inside the history pane on the current screen: (width, height).
pub(super) fn history_size(model: &Model) -> (usize, usize) {
    let (width, height) = model.viewport;
    ChatLayout::for_model(Rect::new(0, 0, width, height), model).history_inner()
}

/// Scrolls the open conversation by `lines` (positive: back in time), fetching older pages
/// before the top is reached.
fn scroll(model: &mut Model, lines: i32, out: &mut Vec<NetCommand>) {
    let (width, height) = history_size(model);
    let Some(peer) = model.selected.clone() else { return };
    let Some(me) = model.me.clone() else { return };
    let (offset, offline) = (model.utc_offset, model.is_offline());
    let Some(conversation) = model.conversations.get_mut(&peer) else { return };
    let wanted = conversation.scroll.saturating_add_signed(lines as isize);
    let available = lines_from_bottom(conversation, &me, offset, width, wanted + 2 * height, offline).len();
    conversation.scroll = wanted.min(available.saturating_sub(height));
    if conversation.scroll == 0 {
        conversation.new_below = 0;
    }
    if available < wanted + 2 * height {
        fetch_older(&peer, conversation, out);
    }
    mark_read(model, out);
}

/// Asks for the page before the oldest loaded message, if there is one and none is coming.
pub(super) fn fetch_older(peer: &ConvKey, conversation: &mut Conversation, out: &mut Vec<NetCommand>) {
    if conversation.more && !conversation.loading {
        conversation.loading = true;
        out.push(NetCommand::History { with: peer.clone(), before: conversation.oldest_id() });
    }
}

fn jump_to_newest(model: &mut Model, out: &mut Vec<NetCommand>) {
    let selected = model.selected.clone();
    if let Some(conversation) = selected.and_then(|peer| model.conversations.get_mut(&peer)) {
        conversation.scroll = 0;
        conversation.new_below = 0;
    }
    mark_read(model, out);
}

/// After every (re)connect: the open conversation's newest page is fetched again and merged,
/// and every other loaded conversation is fetched again when next opened; the contacts (with
/// their unread counts) come by themselves.
fn refetch(model: &mut Model, out: &mut Vec<NetCommand>) {
    let selected = model.selected.clone();
    for (peer, conversation) in &mut model.conversations {
        if !conversation.requested {
            continue;
        }
        if Some(peer) == selected.as_ref() {
            conversation.loading = true;
            out.push(NetCommand::History { with: peer.clone(), before: None });
        } else {
            conversation.stale = true;
        }
    }
    group_commands::rosters_stale(model, out);
}

fn on_net(model: &mut Model, event: NetEvent, out: &mut Vec<NetCommand>) {
    match event {
        NetEvent::Link(link) => {
            match link {
                Link::Offline { .. } => model.login.busy = false,
                Link::Online => {
                    model.server_stopping = false;
                    // "Not connected yet" is no longer true.
                    if model.login.offline_error {
                        model.login.error = None;
                        model.login.offline_error = false;
                    }
                }
                Link::Connecting => {}
            }
            model.link = link;
            mark_read(model, out);
        }
        NetEvent::Untrusted(problem) => {
            model.login.busy = false;
            model.trust = Some(TrustPrompt::new(problem));
        }
        NetEvent::AuthFailed { code, message } => {
            model.login.busy = false;
            model.login.error = Some(message);
            // Without a code it is the network thread saying there is no connection yet.
            model.login.offline_error = code.is_none();
            if model.login.mode == LoginMode::Register
                && matches!(code, Some(ErrorCode::InviteRequired | ErrorCode::InviteInvalid))
            {
                model.login.field = LoginField::Invite;
            }
        }
        NetEvent::LoggedIn { name, pending } => {
            if model.me.as_ref().is_some_and(|me| *me != name) {
                let fresh = Model::new(
                    model.server.clone(),
                    model.utc_offset,
                    model.viewport,
                    model.next_client_msg_id,
                );
                let (link, look) = (model.link.clone(), model.look);
                *model = fresh;
                model.link = link;
                model.look = look;
            }
            model.me = Some(name);
            model.screen = Screen::Chat;
            model.focus = Focus::Input;
            model.login = LoginForm::default();
            model.banner = (pending > 0).then(|| match pending {
                1 => "1 message arrived while you were away".to_owned(),
                n => format!("{n} messages arrived while you were away"),
            });
            refetch(model, out);
        }
        NetEvent::Resumed => refetch(model, out),
        NetEvent::Restored(queued) => {
            for outgoing in queued {
                let conversation = model.conversations.entry(outgoing.to.clone()).or_default();
                if !conversation.outgoing.iter().any(|o| o.outgoing.client_msg_id == outgoing.client_msg_id) {
                    model.contact_mut(&outgoing.to);
                    let conversation = model.conversations.entry(outgoing.to.clone()).or_default();
                    conversation.outgoing.push(OutgoingView { outgoing, failed: None });
                }
            }
        }
        NetEvent::SessionExpired { why } => {
            let fresh =
                Model::new(model.server.clone(), model.utc_offset, model.viewport, model.next_client_msg_id);
            let (link, look) = (model.link.clone(), model.look);
            *model = fresh;
            model.link = link;
            model.look = look;
            model.login.error = Some(why.unwrap_or_else(|| "your session expired; log in again".into()));
        }
        NetEvent::Contacts(contacts) => {
            let me = model.me.clone();
            let fresh = contacts.into_iter().filter(|c| Some(&c.name) != me.as_ref()).map(Into::into);
            merge_entries(model, fresh.collect(), |key| key.user().is_some(), out);
        }
        NetEvent::Groups(groups) => {
            unlisted::listed(model, &groups, out);
            let fresh = groups.into_iter().map(Into::into).collect();
            merge_entries(model, fresh, |key| key.user().is_none(), out);
            unlisted::settle(model);
        }
        NetEvent::History { with, before, page } => {
            let with = ConvKey::User(with);
            let conversation = model.conversations.entry(with.clone()).or_default();
            conversation.peer_delivered_up_to =
                conversation.peer_delivered_up_to.max(page.peer_delivered_up_to);
            conversation.peer_read_up_to = conversation.peer_read_up_to.max(page.peer_read_up_to);
            let posts = page.messages.into_iter().map(Into::into).collect();
            history_page(model, &with, before, posts, page.more, out);
        }
        NetEvent::GroupHistory { before, page } => {
            if before.is_none() {
                unlisted::newest_page(model, &page.group, &page.messages, out);
            }
            let posts = page.messages.into_iter().map(Into::into).collect();
            history_page(model, &ConvKey::Group(page.group), before, posts, page.more, out);
        }
        NetEvent::SearchResults { query, page } => search::results(model, &query, page, out),
        NetEvent::SearchFailed { query, reason } => search::failed(model, &query, reason),
        NetEvent::Group { command, result } => group_commands::outcome(model, &command, result),
        NetEvent::PasswordChanged(result) => {
            let Some(Overlay::Password(form)) = &mut model.overlay else {
                model.notice = Some(match result {
                    Ok(()) => "your password was changed".into(),
                    Err(reason) => format!("the password was not changed: {reason}"),
                });
                return;
            };
            form.busy = false;
            match result {
                Ok(()) => {
                    model.overlay = None;
                    model.notice = Some("your password was changed".into());
                }
                Err(reason) => form.error = Some(reason),
            }
        }
        NetEvent::GroupHoldsLine { group, line, held } => {
            unlisted::line_checked(model, &group, line, held, out)
        }
        NetEvent::HistoryFailed { with, before, code, reason } => {
            if let (ConvKey::Group(group), None) = (&with, before) {
                unlisted::page_failed(model, group, code);
            }
            let vanished = with.group().is_some_and(|group| unlisted::is_missing(model, group))
                || model.contact(&with).is_some_and(|c| c.gone.is_some());
            if vanished {
                // Its fate is being found out, or known: it stays as it was, queue included.
                if let Some(conversation) = model.conversations.get_mut(&with) {
                    conversation.loading = false;
                }
                return;
            }
            if code == ErrorCode::UnknownUser || code == ErrorCode::NoSuchGroup {
                // Never a contact that does not exist, nor a group I am not in.
                model.contacts.retain(|c| c.name != with);
                model.conversations.remove(&with);
                model.drafts.remove(&with);
                if model.selected.as_ref() == Some(&with) {
                    model.selected = None;
                }
                model.notice = Some(reason);
                return;
            }
            if let Some(conversation) = model.conversations.get_mut(&with) {
                conversation.loading = false;
                conversation.stale = true;
            }
            model.notice = Some(format!("cannot load the conversation with {with}: {reason}"));
        }
        NetEvent::Sent { outgoing, id, sent_at } => {
            let Some(from) = model.me.clone() else { return };
            // Filed where it is shown queued: a group renamed meanwhile has it under the new
            // name, though the network thread may have sent it under the old one.
            let shown_in = model
                .conversations
                .iter()
                .find(|(_, c)| c.outgoing.iter().any(|o| o.outgoing.client_msg_id == outgoing.client_msg_id))
                .map_or_else(|| outgoing.to.clone(), |(key, _)| key.clone());
            let conversation = model.conversations.entry(shown_in.clone()).or_default();
            conversation.outgoing.retain(|o| o.outgoing.client_msg_id != outgoing.client_msg_id);
            let body = outgoing.body;
            match shown_in {
                ConvKey::User(to) => receive(model, ChatMessage { id, from, to, body, sent_at }, out),
                ConvKey::Group(group) => {
                    let kind = GroupMessageKind::Text;
                    receive_group(model, GroupMessage { id, group, from, body, sent_at, kind }, out);
                }
            }
        }
        NetEvent::SendFailed { client_msg_id, reason } => {
            let failed = model
                .conversations
                .values_mut()
                .flat_map(|c| c.outgoing.iter_mut())
                .find(|o| o.outgoing.client_msg_id == client_msg_id);
            if let Some(failed) = failed {
                failed.failed = Some(reason.clone());
            }
            model.notice = Some(format!("not sent: {reason}"));
        }
        NetEvent::Server(Event::Message(message)) => receive(model, message, out),
        NetEvent::Server(Event::Presence { user, online }) => {
            // Presence is no activity: the list keeps its order.
            if Some(&user) != model.me.as_ref() {
                group_commands::presence(model, &user, online);
                let now = model.now;
                let contact = model.contact_mut(&ConvKey::User(user));
                contact.online = online;
                // The server keeps the exact time too; this is when we heard of it.
                if !online && now > 0 {
                    contact.last_seen = Some(now);
                }
            }
        }
        NetEvent::Server(Event::Receipt { peer, kind, up_to }) => {
            let conversation = model.conversations.entry(ConvKey::User(peer)).or_default();
            conversation.peer_delivered_up_to = conversation.peer_delivered_up_to.max(up_to);
            if kind == ReceiptKind::Read {
                conversation.peer_read_up_to = conversation.peer_read_up_to.max(up_to);
            }
        }
        NetEvent::Server(Event::OwnReceipt { peer, kind: ReceiptKind::Read, up_to }) => {
            read_elsewhere(model, &ConvKey::User(peer), up_to);
        }
        NetEvent::Server(Event::OwnReceipt { kind: ReceiptKind::Delivered, .. }) => {}
        NetEvent::Server(Event::UserRegistered { user }) => {
            let key = ConvKey::User(user);
            if model.me.as_ref() != key.user() && model.contact(&key).is_none() {
                model.contact_mut(&key);
                resort(model);
            }
        }
        NetEvent::Server(Event::ShuttingDown) => model.server_stopping = true,
        NetEvent::Server(Event::Typing { from }) => {
            if Some(&from) != model.me.as_ref() {
                model.typing.insert(from, model.now + TYPING_SHOWN_MILLIS);
            }
        }
        NetEvent::Server(Event::GroupMessage(line)) => {
            group_commands::live_line(model, &line);
            receive_group(model, line, out);
        }
        NetEvent::Server(Event::GroupReceipt { group, member, kind: ReceiptKind::Read, up_to })
            if model.me.as_ref() == Some(&member) =>
        {
            read_elsewhere(model, &ConvKey::Group(group), up_to);
        }
        NetEvent::Server(Event::GroupRemoved { group, by }) => {
            let gone = if model.me.as_ref() == Some(&by) {
                "you left it".into()
            } else {
                format!("{by} removed you")
            };
            model.contact_mut(&ConvKey::Group(group)).gone = Some(gone);
        }
        NetEvent::Server(Event::GroupDeleted { group, by }) => {
            model.contact_mut(&ConvKey::Group(group)).gone = Some(format!("{by} deleted it"));
        }
        NetEvent::Server(Event::GroupReceipt { group, member, kind, up_to }) => {
            group_commands::receipt(model, &group, &member, kind, up_to);
        }
        NetEvent::Server(Event::UserDeleted { user }) => {
            model.contact_mut(&ConvKey::User(user)).gone = Some(DELETED_ACCOUNT.into());
        }
        NetEvent::Notice(notice) => model.notice = Some(notice),
    }
}

/// Merges a fresh list of users (or of groups) into the contacts: entries of that kind keep
/// their place until the next sort, new ones are added, gone ones go; the other kind stays.
fn merge_entries(
    model: &mut Model,
    mut fresh: Vec<ContactEntry>,
    of_kind: fn(&ConvKey) -> bool,
    out: &mut Vec<NetCommand>,
) {
    let mut merged = Vec::with_capacity(model.contacts.len() + fresh.len());
    for known in std::mem::take(&mut model.contacts) {
        if !of_kind(&known.name) {
            merged.push(known);
        } else if let Some(at) = fresh.iter().position(|c| c.name == known.name) {
            merged.push(fresh.swap_remove(at));
        } else if known.name.group().is_some_and(|group| unlisted::is_missing(model, group)) {
            merged.push(known);
        }
    }
    merged.extend(fresh);
    model.contacts = merged;
    resort(model);
    mark_read(model, out);
}

/// Files a page of a user's or a group's conversation.
fn history_page(
    model: &mut Model,
    key: &ConvKey,
    before: Option<MessageId>,
    posts: Vec<Post>,
    more: bool,
    out: &mut Vec<NetCommand>,
) {
    let conversation = model.conversations.entry(key.clone()).or_default();
    conversation.requested = true;
    conversation.loading = false;
    conversation.merge_page(before, posts, more);
    if model.selected.as_ref() == Some(key) {
        unread::place_marker(model, key, out);
        search::position(model, key, out);
    }
    mark_read(model, out);
}

/// Another session of mine read `key` up to `up_to`: what is still unread here is the texts
/// of others that came after.
fn read_elsewhere(model: &mut Model, key: &ConvKey, up_to: MessageId) {
    let me = model.me.clone();
    let newer = model.conversations.get(key).map_or(0, |c| {
        c.messages.iter().rev().take_while(|m| m.id > up_to).filter(|m| counts_unread(m, me.as_ref())).count()
            as u64
    });
    let contact = model.contact_mut(key);
    contact.unread = if up_to >= contact.last_id { 0 } else { contact.unread.min(newer) };
}

/// Whether a line counts as unread for `me`: a text someone else wrote (system lines never
/// do, as on the server).
pub(super) fn counts_unread(post: &Post, me: Option<&Username>) -> bool {
    post.kind == GroupMessageKind::Text && Some(&post.from) != me
}

/// Files a stored direct message (live, from the backlog, or my own just acknowledged).
fn receive(model: &mut Model, message: ChatMessage, out: &mut Vec<NetCommand>) {
    let Some(me) = model.me.as_ref() else { return };
    let peer = if message.from != *me { message.from.clone() } else { message.to.clone() };
    file(model, &ConvKey::User(peer), message.into(), out);
}

/// Files a group line (live, pending at login, or my own just acknowledged).
fn receive_group(model: &mut Model, line: GroupMessage, out: &mut Vec<NetCommand>) {
    file(model, &ConvKey::Group(line.group.clone()), line.into(), out);
}

fn file(model: &mut Model, key: &ConvKey, post: Post, out: &mut Vec<NetCommand>) {
    let Some(me) = model.me.clone() else { return };
    let unread = counts_unread(&post, Some(&me));
    let (id, sent_at) = (post.id, post.sent_at);
    let (from, body) = (post.from.clone(), post.body.clone());
    let (width, _) = history_size(model);
    let offset = model.utc_offset;
    let conversation = model.conversations.entry(key.clone()).or_default();
    let newest_before = conversation.messages.last().map_or(0, |m| m.id);
    if conversation.insert([post]) == 0 {
        return; // Already known: a backlog message that also arrived live.
    }
    if conversation.scroll > 0 && id > newest_before {
        // Scrolled back: the view stays where it is, so it moves up by what was added.
        conversation.scroll += newest_height(conversation, &me, offset, width, 1);
        conversation.new_below += 1;
    }
    let viewing = model.selected.as_ref() == Some(key);
    let contact = model.contact_mut(key);
    if id > contact.last_id {
        contact.last_id = id;
        contact.last_at = Some(sent_at);
    }
    if unread {
        contact.unread += 1;
        match key {
            ConvKey::User(peer) => {
                model.typing.remove(peer);
                let muted = model.prefs.muted.contains(peer);
                alert(model, peer, None, viewing, muted, &body);
            }
            // Group traffic counts as unread; by default only a mention of me rings.
            ConvKey::Group(group) => {
                let rings = match model.prefs.group_notify(group) {
                    GroupNotify::All => true,
                    GroupNotify::Mentions => mention::mentions(&body, &me),
                    GroupNotify::None => false,
                };
                alert(model, &from, Some(group), viewing, !rings, &body);
            }
        }
        if viewing {
            mark_read(model, out);
        }
    }
    resort(model);
}

/// Rings (and notifies, if asked) for a new message from `peer` (in `group`, if in one),
/// unless its conversation is `muted` or the user sees it arrive: its conversation is open
/// with nothing over it, in a terminal that has focus.
fn alert(
    model: &mut Model,
    peer: &Username,
    group: Option<&GroupName>,
    viewing: bool,
    muted: bool,
    body: &str,
) {
    let seen = viewing && model.screen == Screen::Chat && model.overlay.is_none() && model.focused;
    if seen || muted {
        return;
    }
    match model.prefs.notify {
        Notify::None => {}
        Notify::Bell => model.alerts.push(Alert::Bell),
        Notify::Desktop => {
            model.alerts.push(Alert::Bell);
            let preview = model.prefs.notify_preview.then(|| body.to_owned());
            model.alerts.push(Alert::Desktop { from: peer.clone(), group: group.cloned(), preview });
        }
    }
}

fn ctrl(key: &KeyEvent, c: char) -> bool {
    key.code == KeyCode::Char(c) && key.modifiers.contains(KeyModifiers::CONTROL)
}
