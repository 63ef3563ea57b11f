//! The screen `papo` opens when it is given no server and remembers none: the servers that
//! announced themselves on the LAN ([`crate::discover`]), one to pick with the arrows.
//!
//! Picking only chooses an address. The announced fingerprint is shown for comparison, and
//! the chat's usual first-contact prompt still decides whether to trust the certificate; the
//! transport stays what the flags say, so an announcement can never talk papo out of TLS.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use crate::discover::{self, Found};
use crate::sanitize;

/// How long `papo` listens for announcements before showing them.
pub const BROWSE_TIME: Duration = Duration::from_secs(2);

/// The list and which row is selected.
#[derive(Debug)]
pub struct Picker {
    servers: Vec<Found>,
    selected: usize,
}

/// What a key press decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picked {
    /// Connect there.
    Server(SocketAddr),
    /// Leave papo.
    Quit,
}

impl Picker {
    /// A picker over `servers` (at least one), the first selected.
    pub fn new(servers: Vec<Found>) -> Self {
        Self { servers, selected: 0 }
    }

    /// Moves the selection or decides; `None` while the user is still choosing.
    pub fn key(&mut self, code: KeyCode, modifiers: KeyModifiers) -> Option<Picked> {
        let last = self.servers.len().saturating_sub(1);
        match code {
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => self.selected = (self.selected + 1).min(last),
            KeyCode::Enter => {
                return self.servers.get(self.selected).map(|server| Picked::Server(server.address))
            }
            KeyCode::Esc | KeyCode::Char('q') => return Some(Picked::Quit),
            KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => return Some(Picked::Quit),
            _ => {}
        }
        None
    }

    /// Draws the list, the selected server's fingerprint and the keys.
    pub fn view(&self, frame: &mut Frame) {
        let [list, details, keys] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(4), Constraint::Length(1)])
                .areas(frame.area());
        let rows = self.servers.iter().map(|server| {
            let security = if server.announcement.tls.is_some() { "tls" } else { "plaintext" };
            Row::new([
                sanitize::line(&server.name).into_owned(),
                server.address.to_string(),
                security.to_owned(),
            ])
        });
        let table = Table::new(rows, [Constraint::Fill(1), Constraint::Length(40), Constraint::Length(9)])
            .block(Block::bordered().title(" Papo servers on this network "))
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .highlight_symbol("> ");
        let mut state = TableState::new().with_selected(Some(self.selected));
        frame.render_stateful_widget(table, list, &mut state);

        let detail = match self.servers.get(self.selected).map(|server| server.announcement.tls) {
            Some(Some(fingerprint)) => format!(
                "Announced certificate fingerprint (SHA-256), not yet trusted: {fingerprint}. \
                 Compare it with the one papo shows before you accept."
            ),
            Some(None) => "This server runs without TLS: connect with papo --plaintext.".to_owned(),
            None => String::new(),
        };
        frame.render_widget(Paragraph::new(detail).wrap(Wrap { trim: true }), details);
        frame.render_widget(Line::from("Up/Down: choose   Enter: connect   Esc: quit"), keys);
    }
}

/// Browses the LAN and lets the user pick a server: its address, `None` if they quit.
/// `no_server` is the error to return when nothing announced itself.
pub fn choose(no_server: anyhow::Error) -> Result<Option<String>> {
    eprintln!("No server given or remembered: looking for papo servers on the LAN…");
    let browsed = discover::browse(BROWSE_TIME)?;
    if browsed.found.is_empty() {
        return Err(no_server.context("no papo server announced itself on the LAN either"));
    }
    let mut picker = Picker::new(browsed.found);
    let mut terminal = ratatui::init();
    let picked = loop {
        if let Err(e) = terminal.draw(|frame| picker.view(frame)) {
            break Err(e).context("cannot draw the server list");
        }
        match event::read() {
            Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => {
                if let Some(picked) = picker.key(key.code, key.modifiers) {
                    break Ok(picked);
                }
            }
            Ok(_) => {}
            Err(e) => break Err(e).context("cannot read the terminal"),
        }
    };
    ratatui::restore();
    Ok(match picked? {
        Picked::Server(address) => Some(address.to_string()),
        Picked::Quit => None,
    })
}

#[cfg(test)]
mod tests {
    use papo_protocol::discovery::Announcement;
    use papo_protocol::PROTOCOL_VERSION;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;

    const FINGERPRINT: &str =
        "11:88:F8:65:BA:AC:B2:8D:1E:13:14:63:09:F8:8E:49:AA:8A:EA:3A:5F:EE:3A:50:82:B9:E1:F1:6D:CC:85:F0";

    fn servers() -> Vec<Found> {
        vec![
            Found {
                name: "lab\u{1b}[2J".to_owned(),
                address: "10.0.0.2:7878".parse().unwrap(),
                announcement: Announcement {
                    protocol_version: PROTOCOL_VERSION,
                    tls: Some(FINGERPRINT.parse().unwrap()),
                },
            },
            Found {
                name: "test bench".to_owned(),
                address: "10.0.0.9:7000".parse().unwrap(),
                announcement: Announcement { protocol_version: PROTOCOL_VERSION, tls: None },
            },
        ]
    }

    fn screen(picker: &Picker) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(100, 12)).unwrap();
        terminal.draw(|frame| picker.view(frame)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..12).map(|y| (0..100).map(|x| buffer[(x, y)].symbol()).collect::<String>()).collect()
    }

    #[test]
    fn arrows_move_within_the_list_and_enter_picks_the_selected_address() {
        let mut picker = Picker::new(servers());
        assert_eq!(picker.key(KeyCode::Up, KeyModifiers::NONE), None);
        assert_eq!(picker.key(KeyCode::Down, KeyModifiers::NONE), None);
        assert_eq!(picker.key(KeyCode::Down, KeyModifiers::NONE), None, "stays on the last row");
        assert_eq!(
            picker.key(KeyCode::Enter, KeyModifiers::NONE),
            Some(Picked::Server("10.0.0.9:7000".parse().unwrap()))
        );
        assert_eq!(picker.key(KeyCode::Up, KeyModifiers::NONE), None);
        assert_eq!(
            picker.key(KeyCode::Enter, KeyModifiers::NONE),
            Some(Picked::Server("10.0.0.2:7878".parse().unwrap()))
        );
    }

    #[test]
    fn esc_and_ctrl_c_quit_and_other_keys_do_nothing() {
        let mut picker = Picker::new(servers());
        assert_eq!(picker.key(KeyCode::Char('x'), KeyModifiers::NONE), None);
        assert_eq!(picker.key(KeyCode::Char('c'), KeyModifiers::NONE), None);
        assert_eq!(picker.key(KeyCode::Char('c'), KeyModifiers::CONTROL), Some(Picked::Quit));
        assert_eq!(picker.key(KeyCode::Esc, KeyModifiers::NONE), Some(Picked::Quit));
    }

    #[test]
    fn the_screen_lists_every_server_sanitised_and_the_selected_fingerprint() {
        let mut picker = Picker::new(servers());
        let rows = screen(&picker);
        let text = rows.join("\n");
        assert!(!text.contains('\u{1b}'), "{text}");
        let lab = rows.iter().find(|row| row.contains("10.0.0.2:7878")).expect("the first server's row");
        assert!(lab.contains("> lab") && lab.contains("tls"), "{lab}");
        assert!(rows.iter().any(|row| row.contains("test bench")
            && row.contains("10.0.0.9:7000")
            && row.contains("plaintext")));
        assert!(text.contains("not yet trusted") && text.replace('\n', "").contains("11:88:F8:65"), "{text}");
        assert!(rows[11].starts_with("Up/Down: choose"), "{:?}", rows[11]);

        picker.key(KeyCode::Down, KeyModifiers::NONE);
        let text = screen(&picker).join("\n");
        assert!(text.contains("papo --plaintext"), "{text}");
    }
}
