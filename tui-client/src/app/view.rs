//! Drawing: a pure function of the [`Model`]. Nothing here changes state or does I/O.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::history::{clock, lines_from_bottom, when};
use super::keys::HELP;
use super::model::{
    ContactEntry, ConvKey, Focus, LoginField, LoginMode, Look, Model, Overlay, PasswordForm, QuickSwitch,
    Roster, Screen, SearchState, TrustPrompt,
};
use super::unread;
use super::wrap::{wrap, wrap_styled};
use crate::net::{Link, TrustProblem};
use crate::sanitize;
use crate::settings::GroupNotify;
use papo_protocol::{Fingerprint, GroupName};

const ACCENT: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
const DIM: Style = Style::new().fg(Color::DarkGray);
const ERROR: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
const SELECTED: Style = Style::new().add_modifier(Modifier::REVERSED);
const ONLINE: Style = Style::new().fg(Color::Green);
const MATCH: Style = Style::new().fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD);

/// Widest the help box gets.
const HELP_WIDTH: u16 = 78;

/// Narrower than this, the members pane takes the contacts' place instead of the
/// conversation's right side.
const MEMBERS_BESIDE_WIDTH: u16 = 60;

/// Most rows the status line takes when a notice wraps.
const STATUS_MOST_ROWS: usize = 4;

/// Where the chat screen's panes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatLayout {
    /// Contacts pane, with border.
    pub contacts: Rect,
    /// History pane, with border.
    pub history: Rect,
    /// The open group's members pane (Alt+M), with border.
    pub members: Option<Rect>,
    /// Input box, with border.
    pub input: Rect,
    /// Status bar: one row, more while a long notice wraps.
    pub status: Rect,
}

impl ChatLayout {
    /// Splits `area` for an input of `input_lines` lines (the box grows with its text up to
    /// a third of the screen, then scrolls) and a status of `status_lines` rows.
    pub fn new(area: Rect, input_lines: usize, status_lines: usize) -> Self {
        let most = (area.height / 3).saturating_sub(2).max(1) as usize;
        let input_height =
            u16::try_from(input_lines.clamp(1, most)).expect("at most a third of a u16 height") + 2;
        let status_height = u16::try_from(status_lines.clamp(1, STATUS_MOST_ROWS)).expect("a few rows");
        let [main, input, status] = Layout::vertical([
            Constraint::Min(3),
            Constraint::Length(input_height),
            Constraint::Length(status_height),
        ])
        .areas(area);
        let contacts_width = (area.width / 4).clamp(14, 28);
        let [contacts, history] =
            Layout::horizontal([Constraint::Length(contacts_width), Constraint::Min(10)]).areas(main);
        Self { contacts, history, members: None, input, status }
    }

    /// The layout of `model`'s chat screen on `area`: the input box as tall as its text
    /// wraps to, the status as tall as its notice wraps to, and the members pane if shown.
    pub fn for_model(area: Rect, model: &Model) -> Self {
        let inner_width = usize::from(area.width.saturating_sub(2));
        let layout = Self::new(
            area,
            model.input.layout(inner_width).0.len(),
            status_lines(model, usize::from(area.width)).len(),
        );
        if model.members_shown() {
            layout.with_members()
        } else {
            layout
        }
    }

    /// Room for the members pane: at the conversation's right, or, on a narrow screen, in
    /// the contacts' place, so the conversation keeps a readable width.
    fn with_members(mut self) -> Self {
        if self.history.width + self.contacts.width < MEMBERS_BESIDE_WIDTH {
            self.members = Some(self.contacts);
            self.contacts = Rect::new(self.contacts.x, self.contacts.y, 0, self.contacts.height);
            return self;
        }
        let width = (self.history.width / 3).clamp(16, 26);
        let [history, members] =
            Layout::horizontal([Constraint::Min(10), Constraint::Length(width)]).areas(self.history);
        self.history = history;
        self.members = Some(members);
        self
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
    restrict(model.look, frame.buffer_mut());
}

/// Takes colour out (`NO_COLOR`: attributes such as bold and reverse stay), and replaces
/// what a terminal without UTF-8 cannot draw with ASCII.
fn restrict(look: Look, buffer: &mut Buffer) {
    if look.color && look.unicode {
        return;
    }
    for cell in &mut buffer.content {
        if !look.color {
            cell.fg = Color::Reset;
            cell.bg = Color::Reset;
        }
        if !look.unicode {
            let ascii = match cell.symbol() {
                "─" | "—" | "═" | "━" => "-",
                "│" | "║" | "┃" => "|",
                "╭" | "╮" | "╰" | "╯" | "┌" | "┐" | "└" | "┘" | "╔" | "╗" | "╚" | "╝" | "┏" | "┓" | "┗"
                | "┛" => "+",
                "●" | "★" | "•" => "*",
                "⊘" => "-",
                "○" => "o",
                "◌" | "…" | "·" => ".",
                "✓" => "+",
                "✗" => "x",
                "◷" => "~",
                "▼" | "↓" => "v",
                "▲" | "↑" => "^",
                "›" => ">",
                _ => continue,
            };
            cell.set_symbol(ascii);
        }
    }
}

/// Contact rows the contacts pane shows at once (for PageUp/PageDown there).
pub fn contacts_rows(model: &Model) -> usize {
    let (width, height) = model.viewport;
    let layout = ChatLayout::for_model(Rect::new(0, 0, width, height), model);
    let inner = layout.contacts.height.saturating_sub(2) as usize;
    if model.contacts.len() > inner {
        inner.saturating_sub(2).max(1)
    } else {
        inner
    }
}

fn login(model: &Model, frame: &mut Frame<'_>) {
    let area = frame.area();
    let form = &model.login;
    let registering = form.mode == LoginMode::Register;
    // The link's line wraps when the server is unreachable: the box grows with it, and the
    // key hints keep their own row at the bottom whatever happens above them.
    let (link, _) = link_text(model);
    let link_rows = u16::try_from(("Server   ".width() + link.width()).div_ceil(54).max(1)).unwrap_or(1);
    let error_rows = form.error.as_ref().map_or(1, |e| sanitize::line(e).width().div_ceil(54).max(1));
    let height = if registering { 13 } else { 10 } + link_rows + u16::try_from(error_rows).unwrap_or(1);
    // A screen too short for the whole box (40x12 creating an account) loses the blank rows
    // first, so every field, the error and the key hints still show.
    let compact = height > area.height;
    let boxed = centered(area, 56, height);
    let title = if registering { " Papo · create account " } else { " Papo · log in " };
    let block = Block::bordered().border_type(BorderType::Rounded).title(Span::styled(title, ACCENT));
    let inner = block.inner(boxed);
    frame.render_widget(Clear, boxed);
    frame.render_widget(block, boxed);

    let mut lines = vec![Line::from(vec![Span::raw("Server   "), link_span(model)])];
    if !compact {
        lines.push(Line::raw(""));
    }
    let mut cursor = None;
    for &field in form.fields() {
        let (label, editor, secret) = match field {
            LoginField::Name => ("Name     ", &form.name, false),
            LoginField::Password => ("Password ", &form.password, true),
            LoginField::Confirm => ("Confirm  ", &form.confirm, true),
            LoginField::Invite => ("Invite   ", &form.invite, false),
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
    if !compact {
        lines.push(Line::raw(""));
    }
    let status = match (&form.error, form.busy) {
        (Some(error), _) => Line::styled(sanitize::line(error).into_owned(), ERROR),
        (None, true) => Line::styled("working…", DIM),
        (None, false) => Line::raw(""),
    };
    lines.push(status);
    let switch = if registering { "F2 back to log in" } else { "F2 create account" };
    let hints = Line::styled(format!("Enter submit · Tab next field · {switch} · Ctrl+C quit"), DIM);
    let hint_rows = u16::try_from(hints.width().div_ceil(usize::from(inner.width.max(1)))).unwrap_or(1);
    let [body, footer] = Layout::vertical([Constraint::Min(0), Constraint::Length(hint_rows)]).areas(inner);
    // Rows the wrapped link line takes push the fields down: the cursor goes with them.
    let shift = usize::from(link_rows.saturating_sub(1));
    frame.render_widget(Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }), body);
    frame.render_widget(Paragraph::new(hints).wrap(ratatui::widgets::Wrap { trim: false }), footer);
    if let Some((row, column)) = cursor {
        place_cursor(frame, body, row + shift, column);
    }
}

/// Asks to trust a new server's certificate, or explains why a changed one is refused. The
/// box fits the screen down to 40×12 and below: the fingerprint breaks into as many rows as
/// the width needs, the answer row and the keys stay in sight, a new server's explanation is
/// cut down to what a small screen has room for, and what still does not fit scrolls (Up,
/// Down, PageUp, PageDown), marked on the box's bottom edge. A changed certificate's warning
/// is always there in full: it is the point of the box.
fn trust(prompt: &TrustPrompt, server: &str, frame: &mut Frame<'_>) {
    let TrustBox { boxed, title, border, body, footer, body_rows, cursor } =
        trust_box(prompt, server, frame.area());
    let scroll = prompt.scroll.min(body.len().saturating_sub(body_rows));
    let mut block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(border)
        .title(Span::styled(title, border));
    if scroll + body_rows < body.len() {
        block = block.title_bottom(Span::styled(" ↓ more: Down, PageDown ", border));
    } else if scroll > 0 {
        block = block.title_bottom(Span::styled(" ↑ Up, PageUp ", border));
    }
    let inner = block.inner(boxed);
    frame.render_widget(Clear, boxed);
    frame.render_widget(block, boxed);
    let [body_area, footer_area] =
        Layout::vertical([Constraint::Length(u16::try_from(body_rows).unwrap_or(0)), Constraint::Min(0)])
            .areas(inner);
    let shown: Vec<Line<'_>> = body.into_iter().skip(scroll).take(body_rows).collect();
    frame.render_widget(Paragraph::new(shown), body_area);
    frame.render_widget(Paragraph::new(footer), footer_area);
    if let Some(column) = cursor {
        place_cursor(frame, footer_area, 0, column);
    }
}

/// How the certificate box scrolls on a `viewport`-sized screen: the body rows it shows at
/// once, and how far down it can go.
pub fn trust_scroll(prompt: &TrustPrompt, server: &str, viewport: (u16, u16)) -> (usize, usize) {
    let laid_out = trust_box(prompt, server, Rect::new(0, 0, viewport.0, viewport.1));
    (laid_out.body_rows, laid_out.body.len().saturating_sub(laid_out.body_rows))
}

/// The certificate box laid out in `area`, before scrolling.
struct TrustBox {
    boxed: Rect,
    title: &'static str,
    border: Style,
    /// Every line of the explanation; `body_rows` of them show at a time.
    body: Vec<Line<'static>>,
    /// The answer row (if any) and the keys, always shown.
    footer: Vec<Line<'static>>,
    body_rows: usize,
    /// Column of the cursor in the answer row.
    cursor: Option<usize>,
}

fn trust_box(prompt: &TrustPrompt, server: &str, area: Rect) -> TrustBox {
    let width = area.width.min(72);
    let inner_width = usize::from(width.saturating_sub(2)).max(1);
    // Bytes per fingerprint row: "  AB:CD:…" takes 2 + 3n - 1 cells.
    let per_row = [16, 8, 4, 2, 1].into_iter().find(|n| 3 * n < inner_width).unwrap_or(1);
    let fingerprint = |fingerprint: &Fingerprint| -> Vec<Line<'static>> {
        fingerprint_rows(fingerprint, per_row).into_iter().map(|row| Line::raw(format!("  {row}"))).collect()
    };
    let text = |text: &str, style: Style| -> Vec<Line<'static>> {
        wrap(text, inner_width).into_iter().map(|row| Line::styled(row, style)).collect()
    };
    let plain = Style::new();
    // The body in full, or (`short`, for a new server) with the explanation cut down to what
    // a small screen has room for: the fingerprint and what to do come first.
    let body_of = |short: bool| -> Vec<Line<'static>> {
        match &prompt.problem {
            TrustProblem::Unknown { presented } => {
                let mut body = text(&format!("First connection to {server}."), plain);
                let intro = if short {
                    "SHA-256 fingerprint:"
                } else {
                    "No trusted authority vouches for its certificate; its SHA-256 fingerprint is:"
                };
                body.extend(text(intro, plain));
                body.extend(fingerprint(presented));
                if !short {
                    body.push(Line::raw(""));
                }
                body.extend(text("Compare it with the fingerprint papo-server logged when it started (ask whoever runs it). If they match, trust it: papo remembers it and warns if it ever changes.", plain));
                body
            }
            TrustProblem::Changed { trusted, presented, file } => {
                let mut body =
                    text(&format!("The certificate of {server} CHANGED. Nothing was sent."), ERROR);
                body.extend(text("Trusted before:", plain));
                body.extend(fingerprint(trusted));
                body.extend(text("Presented now:", plain));
                body.extend(fingerprint(presented));
                body.push(Line::raw(""));
                body.extend(text("Someone on the network may be impersonating the server to read your password. If its certificate was replaced on purpose (ask whoever runs it), remove the line for this server from:", plain));
                body.extend(text(&format!("  {}", sanitize::line(&file.display().to_string())), plain));
                body.extend(text("then start papo again.", plain));
                body
            }
        }
    };
    let (title, border, answer) = match &prompt.problem {
        TrustProblem::Unknown { .. } => (" Papo · new server ", ACCENT, Some(&prompt.answer)),
        TrustProblem::Changed { .. } => (" Papo · certificate changed ", ERROR, None),
    };
    let mut body = body_of(false);
    let mut footer = Vec::new();
    let mut cursor = None;
    if let Some(answer) = answer {
        let long = "Trust it? Type yes (or paste the fingerprint): ";
        let label = [long, "Type yes: ", ""].into_iter().find(|l| l.width() + 8 <= inner_width).unwrap_or("");
        // The answer scrolls by a box width at a time, so the cursor is always in sight.
        let (rows, (row, column)) = answer.layout(inner_width - label.width());
        cursor = Some(label.width() + column);
        let shown = rows.into_iter().nth(row).unwrap_or_default();
        footer.push(Line::from(vec![Span::styled(label, ACCENT), Span::raw(shown)]));
    }
    footer.extend(match (&prompt.error, answer) {
        (Some(error), _) => text(&sanitize::line(error), ERROR),
        (None, Some(_)) => text("Enter to answer · Esc quit", DIM),
        (None, None) => text("Esc or Ctrl+C quit", DIM),
    });
    let wanted = body.len() + footer.len() + 2;
    let boxed = centered(area, width, u16::try_from(wanted).unwrap_or(u16::MAX));
    let inner_height = usize::from(boxed.height.saturating_sub(2));
    let footer_rows = footer.len().min(inner_height);
    footer.truncate(footer_rows);
    let body_rows = inner_height - footer_rows;
    if body.len() > body_rows && matches!(prompt.problem, TrustProblem::Unknown { .. }) {
        body = body_of(true);
    }
    TrustBox { boxed, title, border, body, footer, body_rows, cursor }
}

/// A fingerprint in rows of `per_row` bytes.
fn fingerprint_rows(fingerprint: &Fingerprint, per_row: usize) -> Vec<String> {
    let shown = fingerprint.to_string();
    let bytes: Vec<&str> = shown.split(':').collect();
    bytes.chunks(per_row.max(1)).map(|row| row.join(":")).collect()
}

fn chat(model: &Model, frame: &mut Frame<'_>) {
    let layout = ChatLayout::for_model(frame.area(), model);
    if !layout.contacts.is_empty() {
        contacts(model, frame, layout.contacts);
    }
    history(model, frame, layout.history);
    if let (Some(area), Some(ConvKey::Group(group))) = (layout.members, &model.selected) {
        members(model, group, frame, area);
    }
    input(model, frame, layout.input);
    status(model, frame, layout.status);
    match &model.overlay {
        Some(Overlay::Help(state)) => help(state.scroll, frame),
        Some(Overlay::QuickSwitch(switch)) => quick_switch(switch, frame),
        Some(Overlay::Search) => {
            if let Some(state) = &model.search {
                search(model, state, frame);
            }
        }
        Some(Overlay::Password(form)) => password(form, frame),
        Some(Overlay::ConfirmDelete(group)) => confirm_delete(group, frame),
        None => {}
    }
}

/// The open group's members: online first, the owner marked `★`, me as `(you)`; a last row
/// says how many do not fit.
fn members(model: &Model, group: &GroupName, frame: &mut Frame<'_>, area: Rect) {
    let roster = model.conversations.get(&ConvKey::Group(group.clone())).and_then(|c| c.roster.as_ref());
    let title = match roster {
        Some(roster) if !model.is_offline() => {
            format!(" Members {}/{} ", roster.online(), roster.members.len())
        }
        Some(roster) => format!(" Members {} ", roster.members.len()),
        None => " Members ".to_owned(),
    };
    let block = pane(&title, false, model.look);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(roster) = roster else {
        frame.render_widget(Paragraph::new(Line::styled("loading…", DIM)), inner);
        return;
    };
    frame.render_widget(Paragraph::new(member_lines(model, roster, inner)), inner);
}

fn member_lines(model: &Model, roster: &Roster, inner: Rect) -> Vec<Line<'static>> {
    let (width, height) = (inner.width as usize, inner.height as usize);
    let mut members: Vec<_> = roster.members.iter().collect();
    members.sort_by_key(|m| !m.online);
    let room = if members.len() > height { height.saturating_sub(1) } else { height };
    let offline = model.is_offline();
    let mut lines: Vec<Line<'static>> = members
        .iter()
        .take(room)
        .map(|member| {
            let (dot, dot_style) = match (offline, member.online) {
                (true, _) => ("◌", DIM),
                (false, true) => ("●", ONLINE),
                (false, false) => ("○", DIM),
            };
            let mut tail = String::new();
            if member.name == roster.owner {
                tail.push_str(" ★");
            }
            if model.me.as_ref() == Some(&member.name) {
                tail.push_str(" (you)");
            }
            let name_room = width.saturating_sub(2 + tail.width());
            let name = truncate(&sanitize::line(member.name.as_str()), name_room);
            Line::from(vec![
                Span::styled(dot, dot_style),
                Span::raw(" "),
                Span::raw(name),
                Span::styled(tail, ACCENT),
            ])
        })
        .collect();
    if members.len() > room {
        lines.push(Line::styled(truncate(&format!("+{} more", members.len() - room), width), DIM));
    }
    lines
}

/// `/delete`: the question, with what it costs.
fn confirm_delete(group: &GroupName, frame: &mut Frame<'_>) {
    let area = centered(frame.area(), 56, 7);
    let title = format!(" Delete {} ", sanitize::line(group.as_str()));
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(ERROR)
        .title(Span::styled(title, ERROR));
    let inner = block.inner(area);
    clear_around(frame, area);
    frame.render_widget(block, area);
    let lines = vec![
        Line::raw(format!(
            "Delete {} and its whole history, for every member?",
            sanitize::line(group.as_str())
        )),
        Line::raw("This cannot be undone."),
        Line::raw(""),
        Line::styled("y delete it · any other key keeps it", DIM),
    ];
    frame.render_widget(Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }), inner);
}

fn contacts(model: &Model, frame: &mut Frame<'_>, area: Rect) {
    let focused = model.focus == Focus::Contacts && model.overlay.is_none();
    let block = pane(" Contacts ", focused, model.look);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = inner.height as usize;
    let total = model.contacts.len();
    let selected_at = model.selected.as_ref().and_then(|s| model.contacts.iter().position(|c| c.name == *s));
    let (first, room) = contacts_window(total, height, selected_at);
    let width = inner.width as usize;
    let offline = model.is_offline();
    let mut lines: Vec<Line<'_>> = Vec::with_capacity(height);
    if first > 0 {
        lines.push(more_line("▲", &model.contacts[..first], width));
    }
    for (at, contact) in model.contacts.iter().enumerate().skip(first).take(room) {
        // While we are offline nobody's presence is known.
        // A group has no presence of its own; its `#` says what it is. One that can no
        // longer be written to is crossed out.
        let (dot, dot_style) = match (offline, contact.online) {
            _ if contact.gone.is_some() => ("✗", ERROR),
            _ if contact.name.user().is_none() => (" ", DIM),
            (true, _) => ("◌", DIM),
            (false, true) => ("●", ONLINE),
            (false, false) => ("○", DIM),
        };
        let number = if at < 9 { format!("{}", at + 1) } else { " ".to_owned() };
        let muted = match &contact.name {
            ConvKey::User(user) => model.prefs.muted.contains(user),
            ConvKey::Group(group) => model.prefs.group_notify(group) == GroupNotify::None,
        };
        let muted = if muted { " ⊘" } else { "" };
        let badge = match contact.unread {
            0 => muted.to_owned(),
            n => format!("{muted} {n}"),
        };
        let name_room = width.saturating_sub(4 + badge.width());
        let name = truncate(&sanitize::line(contact.name.as_str()), name_room);
        let pad = " ".repeat(name_room.saturating_sub(name.width()));
        let mut line = Line::from(vec![
            Span::styled(number, DIM),
            Span::raw(" "),
            Span::styled(dot, dot_style),
            Span::raw(" "),
            Span::raw(name),
            Span::raw(pad),
            Span::styled(badge, ACCENT),
        ]);
        if Some(&contact.name) == model.selected.as_ref() {
            line = line.patch_style(SELECTED);
        }
        lines.push(line);
    }
    if first + room < total {
        lines.push(more_line("▼", &model.contacts[first + room..], width));
    }
    if total == 0 {
        frame.render_widget(Paragraph::new(Line::styled("nobody else yet", DIM)), inner);
    } else {
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

/// Which contacts a pane `height` rows tall shows, as (first, how many), keeping the
/// selected one in sight. Rows say what is out of sight above (`▲`) and below (`▼`) only when
/// something is: a list scrolled to its top or bottom wastes no row on an empty mark.
fn contacts_window(total: usize, height: usize, selected_at: Option<usize>) -> (usize, usize) {
    if total <= height || height < 3 {
        let room = height.min(total);
        let first = selected_at.map_or(0, |at| (at + 1).saturating_sub(room));
        return (first.min(total - room), room);
    }
    let at = selected_at.unwrap_or(0);
    // At the top: only the mark below.
    if at < height - 1 {
        return (0, height - 1);
    }
    // At the bottom: only the mark above.
    let last_page = total - (height - 1);
    if at >= last_page {
        return (last_page, height - 1);
    }
    let room = height - 2;
    ((at + 1).saturating_sub(room).min(total - room), room)
}

/// "▼ 12 more", or "▼ 12 · 2 unread": how many contacts are out of sight, and whether any has news.
fn more_line(arrow: &str, hidden: &[ContactEntry], width: usize) -> Line<'static> {
    if hidden.is_empty() {
        return Line::raw("");
    }
    let unread = hidden.iter().filter(|c| c.unread > 0).count();
    let text = match unread {
        0 => format!("{arrow} {} more", hidden.len()),
        n => format!("{arrow} {} · {n} unread", hidden.len()),
    };
    Line::styled(truncate(&text, width), if unread > 0 { ACCENT } else { DIM })
}

fn history(model: &Model, frame: &mut Frame<'_>, area: Rect) {
    let Some((peer, conversation)) = model.current() else {
        let block = pane(" Papo ", false, model.look);
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
    let contact = model.contact(peer);
    let online = contact.is_some_and(|c| c.online);
    let last_seen = contact.and_then(|c| c.last_seen).filter(|_| model.now > 0);
    let gone = contact.and_then(|c| c.gone.as_deref());
    let roster = conversation.and_then(|c| c.roster.as_ref());
    let presence = match (model.is_offline(), online, last_seen) {
        _ if peer.user().is_none() => match (gone, roster) {
            (Some(gone), _) => Span::styled(format!("group · {} ", sanitize::line(gone)), ERROR),
            (None, Some(roster)) if model.is_offline() => {
                Span::styled(format!("· {} members ", roster.members.len()), DIM)
            }
            (None, Some(roster)) => {
                Span::styled(format!("· {}/{} online ", roster.online(), roster.members.len()), DIM)
            }
            (None, None) => Span::styled("group ", DIM),
        },
        // A deleted account.
        _ if gone.is_some() => Span::styled(format!("{} ", sanitize::line(gone.unwrap_or_default())), ERROR),
        (true, _, _) => Span::styled("◌ presence unknown while offline ", DIM),
        (false, true, _) => Span::styled("● online ", ONLINE),
        (false, false, Some(at)) => {
            Span::styled(format!("○ last seen {} ", when(at, model.now, model.utc_offset)), DIM)
        }
        (false, false, None) => Span::styled("○ offline ", DIM),
    };
    let mut title = vec![Span::raw(format!(" {} ", sanitize::line(peer.as_str()))), presence];
    if peer.user().is_some_and(|user| model.is_typing(user)) {
        title.push(Span::styled("typing… ", ACCENT));
    }
    let block = pane("", false, model.look).title(Line::from(title));
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
    // The hint covers the bottom row rather than pushing the view up: the top stays put.
    let from_bottom = conversation.scroll + bottom.len();
    let needed = from_bottom + height;
    let lines = lines_from_bottom(conversation, me, model.utc_offset, width, needed, model.is_offline());
    let scroll = from_bottom.min(lines.len().saturating_sub(height));
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
    let inner = pane("", focused, model.look).inner(area);
    // Long lines wrap; a message taller than the box keeps the cursor's row in sight, and the
    // border says what is cut above and below, shorter on a narrow screen, so the
    // recipient's name is never drawn over.
    let (rows, (row, column)) = model.input.layout(inner.width as usize);
    let height = (inner.height as usize).max(1);
    let first = (row + 1).saturating_sub(height);
    let border = usize::from(area.width.saturating_sub(2));
    let mark = |arrow: &str, count: usize, words: &str| {
        let long = format!(" {arrow} {count} {words} ");
        if title.width() + long.width() <= border {
            long
        } else {
            format!(" {arrow}{count} ")
        }
    };
    let above = (first > 0).then(|| mark("↑", first, "more above"));
    let title_room = border.saturating_sub(above.as_ref().map_or(0, |a| a.width()));
    let mut block = pane(&truncate(&title, title_room), focused, model.look);
    if let Some(above) = above {
        block = block.title(Line::styled(above, ACCENT).right_aligned());
    }
    let hidden_below = rows.len().saturating_sub(first + height);
    if hidden_below > 0 {
        block =
            block.title_bottom(Line::styled(mark("↓", hidden_below, "more below"), ACCENT).right_aligned());
    }
    frame.render_widget(block, area);
    let lines: Vec<Line<'_>> = rows.into_iter().skip(first).take(height).map(Line::raw).collect();
    frame.render_widget(Paragraph::new(lines), inner);
    if focused {
        place_cursor(frame, inner, row - first, column);
    }
}

/// The status line: who, the link, where unread messages are, then a notice or the key
/// hint. When that does not fit on one row the hint goes, and a long notice or offline
/// reason wraps onto more rows (up to [`STATUS_MOST_ROWS`]) instead of being cut, so an error
/// can always be read whole; only beyond that is it shortened with a mark.
fn status_lines(model: &Model, width: usize) -> Vec<Line<'static>> {
    let me = model.me.as_ref().map_or("?", |me| me.as_str());
    let who = format!(" {me}");
    let (link_text, link_style) = link_text(model);
    let summary = unread::summary(model);
    let mut unread = if summary.is_empty() { String::new() } else { format!(" │ {summary}") };
    // Where the unread messages are is worth less room than the link and the notice.
    let unread_room = (width / 3).max(" │ 99 unread".width());
    if unread.width() > unread_room {
        unread = truncate(&unread, unread_room);
    }
    let notice = model.notice.as_ref().map(|notice| format!(" │ {}", sanitize::line(notice)));
    let mut pieces: Vec<(&str, Style)> =
        vec![(&who, ACCENT), (" @ ", Style::new()), (&link_text, link_style), (&unread, ACCENT)];
    let hint = " │ ? or F1 help · Ctrl+C quit";
    match &notice {
        Some(notice) => pieces.push((notice, ERROR)),
        None => pieces.push((hint, DIM)),
    }
    let cells: usize = pieces.iter().map(|(text, _)| text.width()).sum();
    if cells > width && notice.is_none() {
        pieces.pop();
    }
    let mut rows = wrap_styled(&pieces, width);
    if rows.len() > STATUS_MOST_ROWS {
        rows.truncate(STATUS_MOST_ROWS);
        let last = rows.last_mut().expect("at least one row");
        let text: String = last.iter().map(|(text, _)| text.as_str()).collect();
        let style = last.last().map_or(ERROR, |(_, style)| *style);
        *last = vec![(truncate(&format!("{text}…"), width), style)];
    }
    rows.into_iter()
        .map(|row| {
            Line::from(row.into_iter().map(|(text, style)| Span::styled(text, style)).collect::<Vec<_>>())
        })
        .collect()
}

fn status(model: &Model, frame: &mut Frame<'_>, area: Rect) {
    frame.render_widget(Paragraph::new(status_lines(model, area.width as usize)), area);
}

/// The server and the state of the link, as now.
fn link_text(model: &Model) -> (String, Style) {
    let server = &model.server;
    match &model.link {
        Link::Connecting => (format!("{server} ◌ connecting…"), DIM),
        Link::Online => (format!("{server} ● online"), ONLINE),
        Link::Offline { reason, retry_in } => {
            let reason = if model.server_stopping {
                "the server is restarting".into()
            } else {
                sanitize::line(reason)
            };
            let retry = match retry_in.as_secs_f32().ceil() {
                0.0 => "retrying now".to_owned(),
                secs => format!("retrying in {secs:.0}s"),
            };
            (format!("{server} ○ offline: {reason}; {retry}"), ERROR)
        }
    }
}

fn link_span(model: &Model) -> Span<'static> {
    let (text, style) = link_text(model);
    Span::styled(text, style)
}

/// The help's lines for a box `width` cells wide inside: keys in a column, what they do
/// wrapped beside them.
fn help_lines(width: usize) -> Vec<Line<'static>> {
    let key_width = HELP.iter().map(|(key, _)| key.width()).max().unwrap_or(0).min(width / 2);
    let text_width = width.saturating_sub(key_width + 2).max(1);
    let mut lines = Vec::new();
    for (key, what) in HELP {
        let key = truncate(key, key_width);
        for (at, text) in super::wrap::wrap(what, text_width).into_iter().enumerate() {
            let key = if at == 0 { format!("{key:<key_width$}  ") } else { " ".repeat(key_width + 2) };
            lines.push(Line::from(vec![Span::styled(key, ACCENT), Span::raw(text)]));
        }
    }
    lines
}

/// The help box: a cell short of the screen's edges on every side where there is room, so
/// its border never runs along a pane's (see [`clear_around`]).
fn help_area(area: Rect) -> Rect {
    let inside =
        area.inner(ratatui::layout::Margin::new(u16::from(area.width > 40), u16::from(area.height > 10)));
    let width = HELP_WIDTH.min(inside.width);
    let lines = u16::try_from(help_lines(width.saturating_sub(2) as usize).len()).unwrap_or(u16::MAX);
    centered(inside, width, lines.saturating_add(2))
}

/// Clears `boxed` and a cell around it, so no pane border sits right next to a box's.
fn clear_around(frame: &mut Frame<'_>, boxed: Rect) {
    let area = frame.area();
    let x = boxed.x.saturating_sub(1).max(area.x);
    let y = boxed.y.saturating_sub(1).max(area.y);
    let right = boxed.right().saturating_add(1).min(area.right());
    let bottom = boxed.bottom().saturating_add(1).min(area.bottom());
    frame.render_widget(Clear, Rect::new(x, y, right - x, bottom - y));
}

/// How far the help can scroll on a `viewport`-sized screen.
pub fn help_max_scroll(viewport: (u16, u16)) -> usize {
    let area = help_area(Rect::new(0, 0, viewport.0, viewport.1));
    let lines = help_lines(area.width.saturating_sub(2) as usize).len();
    lines.saturating_sub(area.height.saturating_sub(2) as usize)
}

fn help(scroll: usize, frame: &mut Frame<'_>) {
    let area = help_area(frame.area());
    let lines = help_lines(area.width.saturating_sub(2) as usize);
    let room = area.height.saturating_sub(2) as usize;
    let scroll = scroll.min(lines.len().saturating_sub(room));
    let mut block =
        Block::bordered().border_type(BorderType::Rounded).title(Span::styled(" Keys · Esc closes ", ACCENT));
    if scroll + room < lines.len() {
        block = block.title_bottom(Span::styled(" ↓ more: Down, PageDown ", ACCENT));
    } else if scroll > 0 {
        block = block.title_bottom(Span::styled(" ↑ Up, PageUp ", ACCENT));
    }
    let inner = block.inner(area);
    clear_around(frame, area);
    frame.render_widget(block, area);
    let shown: Vec<Line<'_>> = lines.into_iter().skip(scroll).take(room).collect();
    frame.render_widget(Paragraph::new(shown), inner);
}

fn quick_switch(switch: &QuickSwitch, frame: &mut Frame<'_>) {
    let area = centered(frame.area(), 40, 12);
    let block =
        Block::bordered().border_type(BorderType::Rounded).title(Span::styled(" Go to (Ctrl+K) ", ACCENT));
    let inner = block.inner(area);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    let mut lines = vec![Line::from(vec![
        Span::styled("› ", ACCENT),
        Span::raw(sanitize::line(switch.query.text()).into_owned()),
    ])];
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

/// The search box: what is typed, where it looks, and the matches with the text found
/// highlighted.
fn search(model: &Model, state: &SearchState, frame: &mut Frame<'_>) {
    let screen = frame.area();
    let area =
        centered(screen, 90.min(screen.width.saturating_sub(2)), screen.height.saturating_sub(4).max(5));
    let scope = match &state.here {
        Some(ConvKey::User(peer)) => {
            format!(" Search with {} · Tab: everyone ", sanitize::line(peer.as_str()))
        }
        Some(ConvKey::Group(group)) => {
            format!(" Search in {} · Tab: everyone ", sanitize::line(group.as_str()))
        }
        None => " Search every conversation and group · Tab: only the open one ".to_owned(),
    };
    let block = Block::bordered().border_type(BorderType::Rounded).title(Span::styled(scope, ACCENT));
    let inner = block.inner(area);
    clear_around(frame, area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let mut lines = vec![Line::from(vec![
        Span::styled("› ", ACCENT),
        Span::raw(sanitize::line(state.input.text()).into_owned()),
    ])];
    let room = (inner.height as usize).saturating_sub(2);
    let first = (state.selected + 1).saturating_sub(room);
    let needle = state.ran.as_ref().map_or("", |ran| ran.text.as_str());
    for (at, hit) in state.hits.iter().enumerate().skip(first).take(room) {
        let sender = if model.me.as_ref() == Some(&hit.from) { "you" } else { hit.from.as_str() };
        let date = when(hit.sent_at, model.now.max(hit.sent_at), model.utc_offset);
        let date = if date.starts_with("today") { clock(hit.sent_at, model.utc_offset) } else { date };
        // Names are valid by construction, but nothing from the network reaches the screen
        // unsanitised.
        let prefix = sanitize::line(&format!("{} · {date} · {sender}: ", hit.conversation)).into_owned();
        let mut spans = vec![Span::styled(prefix.clone(), DIM)];
        spans.extend(highlighted(&hit.body, needle, width.saturating_sub(prefix.width())));
        let line = Line::from(spans);
        lines.push(if at == state.selected { line.patch_style(SELECTED) } else { line });
    }
    let status = match (&state.error, state.loading, state.hits.is_empty(), &state.ran) {
        (Some(error), _, _, _) => Line::styled(sanitize::line(error).into_owned(), ERROR),
        (None, true, _, _) => Line::styled("searching…", DIM),
        (None, false, true, Some(_)) => Line::styled("no message matches", DIM),
        (None, false, true, None) => Line::styled("type, then Enter to search · Esc back", DIM),
        (None, false, false, _) => {
            let more = if state.next_before.is_some() { " · Down for more" } else { "" };
            Line::styled(format!("{} found{more} · Enter opens · Esc back", state.hits.len()), DIM)
        }
    };
    let [list, footer] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(inner);
    frame.render_widget(Paragraph::new(lines), list);
    frame.render_widget(Paragraph::new(status), footer);
    place_cursor(frame, list, 0, 2 + state.input.cursor_position().1);
}

/// `body` on one line at most `width` cells wide, starting a little before the first match
/// of `needle` (ignoring case), with the match highlighted.
fn highlighted(body: &str, needle: &str, width: usize) -> Vec<Span<'static>> {
    let shown = sanitize::line(body).into_owned();
    let Some((start, end)) = find_ignoring_case(&shown, needle) else {
        return vec![Span::raw(truncate(&shown, width))];
    };
    // Some context before the match, but the match itself always in sight.
    let mut from = start;
    let mut context = 0;
    for (at, c) in shown[..start].char_indices().rev() {
        context += c.to_string().width();
        if context > 12 {
            break;
        }
        from = at;
    }
    let lead = if from > 0 { "…" } else { "" };
    let before = format!("{lead}{}", &shown[from..start]);
    let found = truncate(&shown[start..end], width.saturating_sub(before.width()));
    let after = truncate(&shown[end..], width.saturating_sub(before.width() + found.width()));
    vec![Span::raw(before), Span::styled(found, MATCH), Span::raw(after)]
}

/// The byte range of the first match of `needle` in `text`, ignoring case as the server
/// does (comparing lower case), mapped back onto `text`.
fn find_ignoring_case(text: &str, needle: &str) -> Option<(usize, usize)> {
    let needle = needle.to_lowercase();
    if needle.is_empty() {
        return None;
    }
    // Each byte of the lowered text, and where in `text` the character it came from starts.
    let mut lowered = String::with_capacity(text.len());
    let mut origin = Vec::with_capacity(text.len());
    for (at, c) in text.char_indices() {
        for low in c.to_lowercase() {
            lowered.push(low);
            origin.resize(lowered.len(), at);
        }
    }
    origin.push(text.len());
    let found = lowered.find(&needle)?;
    let start = origin[found];
    let last = origin[found + needle.len() - 1];
    let end = last + text[last..].chars().next().map_or(0, char::len_utf8);
    Some((start, end))
}

/// `/passwd`: three masked fields.
fn password(form: &PasswordForm, frame: &mut Frame<'_>) {
    let area = centered(frame.area(), 56, 10);
    let block =
        Block::bordered().border_type(BorderType::Rounded).title(Span::styled(" Change password ", ACCENT));
    let inner = block.inner(area);
    clear_around(frame, area);
    frame.render_widget(block, area);
    let mut lines = Vec::new();
    let fields = [("Current  ", &form.old), ("New      ", &form.new), ("Again    ", &form.confirm)];
    for (at, (label, editor)) in fields.into_iter().enumerate() {
        let style =
            if at == form.field { Style::new().add_modifier(Modifier::UNDERLINED) } else { Style::new() };
        let masked = "•".repeat(editor.text().chars().count());
        lines.push(Line::from(vec![
            Span::raw(label),
            Span::raw("["),
            Span::styled(masked, style),
            Span::raw("]"),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(match (&form.error, form.busy) {
        (Some(error), _) => Line::styled(sanitize::line(error).into_owned(), ERROR),
        (None, true) => Line::styled("working…", DIM),
        (None, false) => Line::raw(""),
    });
    lines.push(Line::styled("Enter next / change · Tab move · Esc cancel", DIM));
    frame.render_widget(Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }), inner);
    let fields = [&form.old, &form.new, &form.confirm];
    let column = "Current  [".width() + fields[form.field].text().chars().count();
    place_cursor(frame, inner, form.field, column);
}

/// A pane's frame; the focused one is yellow, or drawn with a heavier line without colour.
fn pane(title: &str, focused: bool, look: Look) -> Block<'static> {
    let border = if focused { Style::new().fg(Color::Yellow) } else { DIM };
    let kind = if focused && !look.color { BorderType::Thick } else { BorderType::Rounded };
    Block::bordered().border_type(kind).border_style(border).title(title.to_owned())
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
    let x = inner
        .x
        .saturating_add(u16::try_from(column).unwrap_or(u16::MAX))
        .min(inner.right().saturating_sub(1));
    let y =
        inner.y.saturating_add(u16::try_from(row).unwrap_or(u16::MAX)).min(inner.bottom().saturating_sub(1));
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
