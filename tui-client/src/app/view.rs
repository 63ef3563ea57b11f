//! Drawing: a pure function of the [`Model`]. Nothing here changes state or does I/O.

use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::history::lines_from_bottom;
use super::keys::HELP;
use super::model::{Focus, LoginField, LoginMode, Model, Overlay, QuickSwitch, Screen, TrustPrompt};
use crate::net::{Link, TrustProblem};
use crate::sanitize;
use papo_protocol::Fingerprint;

const ACCENT: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
const DIM: Style = Style::new().fg(Color::DarkGray);
const ERROR: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
const SELECTED: Style = Style::new().add_modifier(Modifier::REVERSED);
const ONLINE: Style = Style::new().fg(Color::Green);

/// Most input lines shown before the box scrolls.
const MAX_INPUT_LINES: usize = 5;

/// Where the chat screen's panes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatLayout {
    /// Contacts pane, with border.
    pub contacts: Rect,
    /// History pane, with border.
    pub history: Rect,
    /// Input box, with border.
    pub input: Rect,
    /// One-line status bar.
    pub status: Rect,
}

impl ChatLayout {
    /// Splits `area` for an input of `input_lines` lines.
    pub fn new(area: Rect, input_lines: usize) -> Self {
        let input_height = input_lines.clamp(1, MAX_INPUT_LINES) as u16 + 2;
        let [main, input, status] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(input_height), Constraint::Length(1)])
                .areas(area);
        let contacts_width = (area.width / 4).clamp(14, 28);
        let [contacts, history] =
            Layout::horizontal([Constraint::Length(contacts_width), Constraint::Min(10)]).areas(main);
        Self { contacts, history, input, status }
    }

    /// Cells inside the history pane's border: (width, height).
    pub fn history_inner(&self) -> (usize, usize) {
        (self.history.width.saturating_sub(2) as usize, self.history.height.saturating_sub(2) as usize)
    }
}

/// Draws the whole screen.
pub fn view(model: &Model, frame: &mut Frame<'_>) {
    match (&model.trust, model.screen) {
        (Some(prompt), _) => trust(prompt, &model.server, frame),
        (None, Screen::Login) => login(model, frame),
        (None, Screen::Chat) => chat(model, frame),
    }
}

fn login(model: &Model, frame: &mut Frame<'_>) {
    let area = frame.area();
    let form = &model.login;
    let registering = form.mode == LoginMode::Register;
    let height = if registering { 13 } else { 11 };
    let boxed = centered(area, 56, height);
    let title = if registering { " Papo · create account " } else { " Papo · log in " };
    let block = Block::bordered().border_type(BorderType::Rounded).title(Span::styled(title, ACCENT));
    let inner = block.inner(boxed);
    frame.render_widget(Clear, boxed);
    frame.render_widget(block, boxed);

    let mut lines =
        vec![Line::from(vec![Span::raw("Server   "), link_span(&model.link, &model.server)]), Line::raw("")];
    let mut cursor = None;
    for &field in form.fields() {
        let (label, editor, secret) = match field {
            LoginField::Name => ("Name     ", &form.name, false),
            LoginField::Password => ("Password ", &form.password, true),
            LoginField::Confirm => ("Confirm  ", &form.confirm, true),
        };
        let shown =
            if secret { "•".repeat(editor.text().chars().count()) } else { editor.text().to_owned() };
        let focused = field == form.field;
        if focused {
            let column = if secret { editor.text().chars().count() } else { editor.cursor_position().1 };
            cursor = Some((lines.len(), label.width() + 1 + column));
        }
        let field_style =
            if focused { Style::new().add_modifier(Modifier::UNDERLINED) } else { Style::new() };
        lines.push(Line::from(vec![
            Span::raw(label),
            Span::raw("["),
            Span::styled(shown, field_style),
            Span::raw("]"),
        ]));
    }
    lines.push(Line::raw(""));
    let status = match (&form.error, form.busy) {
        (Some(error), _) => Line::styled(sanitize::line(error).into_owned(), ERROR),
        (None, true) => Line::styled("working…", DIM),
        (None, false) => Line::raw(""),
    };
    lines.push(status);
    lines.push(Line::raw(""));
    let switch = if registering { "F2 back to log in" } else { "F2 create account" };
    lines.push(Line::styled(format!("Enter submit · Tab next field · {switch} · Ctrl+C quit"), DIM));
    frame.render_widget(Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }), inner);
    if let Some((row, column)) = cursor {
        place_cursor(frame, inner, row, column);
    }
}

/// Asks to trust a new server's certificate, or explains why a changed one is refused.
fn trust(prompt: &TrustPrompt, server: &str, frame: &mut Frame<'_>) {
    let indent =
        |fingerprint: &Fingerprint| fingerprint_lines(fingerprint).map(|half| Line::raw(format!("  {half}")));
    let (title, border, lines, answer, height) = match &prompt.problem {
        TrustProblem::Unknown { presented } => {
            let mut lines = vec![
                Line::raw(format!("First connection to {server}.")),
                Line::raw("No trusted authority vouches for its certificate; its SHA-256 fingerprint is:"),
            ];
            lines.extend(indent(presented));
            lines.extend([
                Line::raw(""),
                Line::raw("Compare it with the fingerprint papo-server logged when it started (ask whoever runs it). If they match, trust it: papo remembers it and warns if it ever changes."),
            ]);
            (" Papo · new server ", ACCENT, lines, Some(&prompt.answer), 14)
        }
        TrustProblem::Changed { trusted, presented, file } => {
            let mut lines = vec![
                Line::styled(format!("The certificate of {server} CHANGED. Nothing was sent."), ERROR),
                Line::raw("Trusted before:"),
            ];
            lines.extend(indent(trusted));
            lines.push(Line::raw("Presented now:"));
            lines.extend(indent(presented));
            lines.extend([
                Line::raw(""),
                Line::raw("Someone on the network may be impersonating the server to read your password. If its certificate was replaced on purpose (ask whoever runs it), remove the line for this server from:"),
                Line::raw(format!("  {}", file.display())),
                Line::raw("then start papo again."),
            ]);
            (" Papo · certificate changed ", ERROR, lines, None, 18)
        }
    };
    let boxed = centered(frame.area(), 72, height);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(border)
        .title(Span::styled(title, border));
    let inner = block.inner(boxed);
    frame.render_widget(Clear, boxed);
    frame.render_widget(block, boxed);
    let [body, footer] = Layout::vertical([Constraint::Min(0), Constraint::Length(2)]).areas(inner);
    let hint = match (&prompt.error, answer) {
        (Some(error), _) => Line::styled(error.clone(), ERROR),
        (None, Some(_)) => Line::styled("Enter to answer · Esc quit", DIM),
        (None, None) => Line::styled("Esc or Ctrl+C quit", DIM),
    };
    let mut bottom = Vec::new();
    if let Some(answer) = answer {
        let label = "Trust it? Type yes (or paste the fingerprint): ";
        bottom.push(Line::from(vec![Span::styled(label, ACCENT), Span::raw(answer.text().to_owned())]));
        place_cursor(frame, footer, 0, label.width() + answer.cursor_position().1);
    }
    bottom.push(hint);
    frame.render_widget(Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }), body);
    frame.render_widget(Paragraph::new(bottom), footer);
}

/// A fingerprint as two lines of 16 bytes each, which fit a narrow box.
fn fingerprint_lines(fingerprint: &Fingerprint) -> [String; 2] {
    let shown = fingerprint.to_string();
    let (first, second) = shown.split_at(47);
    [first.to_owned(), second.trim_start_matches(':').to_owned()]
}

fn chat(model: &Model, frame: &mut Frame<'_>) {
    let layout = ChatLayout::new(frame.area(), model.input.text().lines().count().max(1));
    contacts(model, frame, layout.contacts);
    history(model, frame, layout.history);
    input(model, frame, layout.input);
    status(model, frame, layout.status);
    match &model.overlay {
        Some(Overlay::Help) => help(frame),
        Some(Overlay::QuickSwitch(switch)) => quick_switch(switch, frame),
        None => {}
    }
}

fn contacts(model: &Model, frame: &mut Frame<'_>, area: Rect) {
    let focused = model.focus == Focus::Contacts && model.overlay.is_none();
    let block = pane(" Contacts ", focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = inner.height as usize;
    let selected_at = model.selected.as_ref().and_then(|s| model.contacts.iter().position(|c| c.name == *s));
    let first = selected_at.map_or(0, |at| (at + 1).saturating_sub(height));
    let width = inner.width as usize;
    let lines: Vec<Line<'_>> = model
        .contacts
        .iter()
        .skip(first)
        .take(height)
        .map(|contact| {
            let (dot, dot_style) = if contact.online { ("●", ONLINE) } else { ("○", DIM) };
            let badge = if contact.unread > 0 { format!(" {}", contact.unread) } else { String::new() };
            let name_room = width.saturating_sub(2 + badge.width());
            let name = truncate(contact.name.as_str(), name_room);
            let pad = " ".repeat(name_room.saturating_sub(name.width()));
            let mut line = Line::from(vec![
                Span::styled(dot, dot_style),
                Span::raw(" "),
                Span::raw(name),
                Span::raw(pad),
                Span::styled(badge, ACCENT),
            ]);
            if Some(&contact.name) == model.selected.as_ref() {
                line = line.patch_style(SELECTED);
            }
            line
        })
        .collect();
    if lines.is_empty() {
        frame.render_widget(Paragraph::new(Line::styled("nobody else yet", DIM)), inner);
    } else {
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

fn history(model: &Model, frame: &mut Frame<'_>, area: Rect) {
    let Some((peer, conversation)) = model.current() else {
        let block = pane(" Papo ", false);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let mut lines = banner_lines(model);
        lines.push(Line::styled(
            "Pick someone to talk to: Ctrl+N/Ctrl+P, Alt+1..9, or Ctrl+K to search.",
            DIM,
        ));
        frame.render_widget(Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: true }), inner);
        return;
    };
    let online = model.contact(peer).is_some_and(|c| c.online);
    let title = Line::from(vec![
        Span::raw(format!(" {peer} ")),
        if online { Span::styled("● online ", ONLINE) } else { Span::styled("○ offline ", DIM) },
    ]);
    let block = pane("", false).title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (Some(conversation), Some(me)) = (conversation, model.me.as_ref()) else { return };

    let mut top = banner_lines(model);
    let mut bottom = Vec::new();
    if conversation.scroll > 0 && conversation.new_below > 0 {
        bottom.push(Line::styled(format!("▼ {} new below · End to jump", conversation.new_below), ACCENT));
    }
    let height = (inner.height as usize).saturating_sub(top.len() + bottom.len());
    let width = inner.width as usize;
    let needed = conversation.scroll + height;
    let lines = lines_from_bottom(conversation, me, model.utc_offset, width, needed, model.is_offline());
    let scroll = conversation.scroll.min(lines.len().saturating_sub(height));
    let mut window: Vec<Line<'_>> = lines.into_iter().skip(scroll).take(height).collect();
    window.reverse();
    // Short conversations sit at the bottom, next to the input box.
    let blank = height.saturating_sub(window.len());
    top.extend(std::iter::repeat_n(Line::raw(""), blank));
    top.extend(window);
    top.extend(bottom);
    frame.render_widget(Paragraph::new(top), inner);
}

fn banner_lines(model: &Model) -> Vec<Line<'static>> {
    model.banner.iter().map(|banner| Line::styled(format!("★ {banner}"), ACCENT)).collect()
}

fn input(model: &Model, frame: &mut Frame<'_>, area: Rect) {
    let focused = model.focus == Focus::Input && model.overlay.is_none();
    let title = match &model.selected {
        Some(peer) => format!(" Message to {peer} "),
        None => " Message (pick a contact first) ".to_owned(),
    };
    let block = pane(&title, focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (row, column) = model.input.cursor_position();
    let first = (row + 1).saturating_sub(inner.height as usize);
    let lines: Vec<Line<'_>> =
        model.input.text().split('\n').skip(first).map(|line| Line::raw(line.to_owned())).collect();
    let scroll_x = column.saturating_sub((inner.width as usize).saturating_sub(1));
    frame.render_widget(Paragraph::new(lines).scroll((0, scroll_x as u16)), inner);
    if focused {
        place_cursor(frame, inner, row.saturating_sub(first), column - scroll_x);
    }
}

fn status(model: &Model, frame: &mut Frame<'_>, area: Rect) {
    let me = model.me.as_ref().map_or("?", |me| me.as_str());
    let mut spans =
        vec![Span::styled(format!(" {me}"), ACCENT), Span::raw(" @ "), link_span(&model.link, &model.server)];
    let unread = model.total_unread();
    if unread > 0 {
        spans.push(Span::styled(format!(" │ {unread} unread"), ACCENT));
    }
    match &model.notice {
        Some(notice) => spans.push(Span::styled(format!(" │ {}", sanitize::line(notice)), ERROR)),
        None => spans.push(Span::styled(" │ ? or F1 help · Ctrl+C quit", DIM)),
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn link_span(link: &Link, server: &str) -> Span<'static> {
    match link {
        Link::Connecting => Span::styled(format!("{server} ◌ connecting…"), DIM),
        Link::Online => Span::styled(format!("{server} ● online"), ONLINE),
        Link::Offline { reason, retry_in } => Span::styled(
            format!(
                "{server} ○ offline: {}; retrying in {:.0}s",
                sanitize::line(reason),
                retry_in.as_secs_f32().ceil()
            ),
            ERROR,
        ),
    }
}

fn help(frame: &mut Frame<'_>) {
    let area = centered(frame.area(), 64, HELP.len() as u16 + 4);
    let block =
        Block::bordered().border_type(BorderType::Rounded).title(Span::styled(" Keys · Esc closes ", ACCENT));
    let inner = block.inner(area);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    let key_width = HELP.iter().map(|(key, _)| key.width()).max().unwrap_or(0);
    let lines: Vec<Line<'_>> = HELP
        .iter()
        .map(|(key, what)| {
            Line::from(vec![Span::styled(format!("{key:<key_width$}  "), ACCENT), Span::raw(*what)])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn quick_switch(switch: &QuickSwitch, frame: &mut Frame<'_>) {
    let area = centered(frame.area(), 40, 12);
    let block =
        Block::bordered().border_type(BorderType::Rounded).title(Span::styled(" Go to (Ctrl+K) ", ACCENT));
    let inner = block.inner(area);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    let mut lines =
        vec![Line::from(vec![Span::styled("› ", ACCENT), Span::raw(switch.query.text().to_owned())])];
    let room = (inner.height as usize).saturating_sub(1);
    let first = (switch.selected + 1).saturating_sub(room);
    for (at, name) in switch.matches.iter().enumerate().skip(first).take(room) {
        let line = Line::raw(format!("  {name}"));
        lines.push(if at == switch.selected { line.patch_style(SELECTED) } else { line });
    }
    if switch.matches.is_empty() {
        lines.push(Line::styled("  no match", DIM));
    }
    frame.render_widget(Paragraph::new(lines), inner);
    place_cursor(frame, inner, 0, 2 + switch.query.cursor_position().1);
}

fn pane(title: &str, focused: bool) -> Block<'static> {
    let border = if focused { Style::new().fg(Color::Yellow) } else { DIM };
    Block::bordered().border_type(BorderType::Rounded).border_style(border).title(title.to_owned())
}

/// A `width` × `height` rectangle in the middle of `area`, shrunk to fit.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect { x: area.x + (area.width - width) / 2, y: area.y + (area.height - height) / 2, width, height }
}

fn place_cursor(frame: &mut Frame<'_>, inner: Rect, row: usize, column: usize) {
    if inner.is_empty() {
        return;
    }
    let x = inner.x.saturating_add(column as u16).min(inner.right().saturating_sub(1));
    let y = inner.y.saturating_add(row as u16).min(inner.bottom().saturating_sub(1));
    frame.set_cursor_position(Position { x, y });
}

/// The longest prefix of `text` at most `width` cells wide, with `…` if cut.
fn truncate(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    for c in text.chars() {
        if out.width() + c.to_string().width() + 1 > width {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}
