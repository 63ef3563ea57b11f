//! Building models and messages for the app tests.

#![allow(dead_code)] // Each test binary uses a different part of this helper.

pub mod device;
pub mod fault_proxy;
pub mod groups;

use papo::app::{update, Model, Msg};
use papo::net::{NetCommand, NetEvent};
use papo_protocol::{ChatMessage, Contact, LastMessage, Username};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;
use ratatui::Terminal;
use time::UtcOffset;

/// 2026-11-25 10:00 UTC.
pub const NOW: i64 = 1_795_600_800_000;

pub fn name(raw: &str) -> Username {
    Username::parse(raw).unwrap()
}

/// A direct conversation's key.
pub fn user(raw: &str) -> papo::app::ConvKey {
    papo::app::ConvKey::User(name(raw))
}

pub fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

pub fn alt(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::ALT))
}

/// Feeds each character as a key press; returns every command produced.
pub fn type_text(model: &mut Model, text: &str) -> Vec<NetCommand> {
    text.chars().flat_map(|c| update(model, key(KeyCode::Char(c)))).collect()
}

/// Types `line`, presses Enter and returns what it asked of the network.
pub fn enter(model: &mut Model, line: &str) -> Vec<NetCommand> {
    let mut commands = type_text(model, line);
    commands.extend(update(model, key(KeyCode::Enter)));
    commands
}

pub fn message(id: u64, from: &str, to: &str, body: &str) -> ChatMessage {
    ChatMessage { id, from: name(from), to: name(to), body: body.into(), sent_at: NOW + id as i64 * 60_000 }
}

pub fn contact(raw: &str, online: bool, unread: u64, last_id: u64) -> Contact {
    Contact {
        name: name(raw),
        online,
        unread,
        last: (last_id > 0).then(|| LastMessage {
            id: last_id,
            from: name(raw),
            sent_at: NOW + last_id as i64 * 60_000,
            preview: "…".into(),
        }),
        last_seen: None,
        deleted: false,
    }
}

/// A model logged in as `ana` on the chat screen with the given contacts.
pub fn logged_in(contacts: Vec<Contact>) -> Model {
    let mut model = Model::new("lab:7878".into(), UtcOffset::UTC, (80, 24), 1000);
    update(&mut model, Msg::Net(NetEvent::LoggedIn { name: name("ana"), pending: 0 }));
    update(&mut model, Msg::Net(NetEvent::Link(papo::net::Link::Online)));
    update(&mut model, Msg::Net(NetEvent::Contacts(contacts)));
    model
}

/// The screen as text, one string per row (wide characters appear once).
pub fn render(model: &Model, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| papo::app::view(model, frame)).unwrap();
    let buffer = terminal.backend().buffer();
    (0..height)
        .map(|y| {
            let mut row = String::new();
            let mut x = 0;
            while x < width {
                let symbol = buffer[(x, y)].symbol();
                row.push_str(symbol);
                // A wide character covers the next cell too.
                x += u16::try_from(unicode_width::UnicodeWidthStr::width(symbol).max(1)).unwrap();
            }
            row
        })
        .collect()
}

/// The first row of `screen` that holds `needle`.
pub fn row<'a>(screen: &'a [String], needle: &str) -> &'a str {
    screen
        .iter()
        .find(|r| r.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in\n{}", screen.join("\n")))
}

/// The screen, and the texts drawn with the match highlight (black on yellow), in order.
pub fn render_with_highlight(model: &Model, width: u16, height: u16) -> (Vec<String>, Vec<String>) {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| papo::app::view(model, frame)).unwrap();
    let buffer = terminal.backend().buffer();
    let mut found = Vec::new();
    for y in 0..height {
        let mut run = String::new();
        for x in 0..width {
            let cell = &buffer[(x, y)];
            if cell.bg == Color::Yellow {
                run.push_str(cell.symbol());
            } else if !run.is_empty() {
                found.push(std::mem::take(&mut run));
            }
        }
        if !run.is_empty() {
            found.push(run);
        }
    }
    (render(model, width, height), found)
}
