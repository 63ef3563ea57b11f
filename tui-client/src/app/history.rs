//! Lays out a conversation as screen lines from the newest upwards, stopping as soon as
//! enough lines exist: drawing costs the same for 100 messages or 100,000.

use papo_protocol::{GroupMessageKind, UnixMillis, Username};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use time::{macros::format_description, OffsetDateTime, UtcOffset};
use unicode_width::UnicodeWidthStr;

use super::mention;
use super::model::{Conversation, Delivery, GroupDelivery, OutgoingView, Post};
use super::wrap::wrap;
use crate::sanitize;

/// Style of the other side's name.
const PEER: Style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
/// Style of my name.
const ME: Style = Style::new().fg(Color::Green).add_modifier(Modifier::BOLD);
/// Style of times, separators and hints.
const DIM: Style = Style::new().fg(Color::DarkGray);
/// Style of the `── new ──` line above the first unread message.
const NEW: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
/// Style of a group's system lines (joins, leaves, removals, renames): apart from texts by
/// more than colour.
const SYSTEM: Style = Style::new().fg(Color::DarkGray).add_modifier(Modifier::ITALIC);
/// Style of the search result a conversation was opened at.
const FOUND: Style = Style::new().bg(Color::DarkGray).add_modifier(Modifier::BOLD);
/// Style of an `@name` that mentions me: reversed, so it shows without colour too.
const MENTION: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD.union(Modifier::REVERSED));

/// The last `needed` lines of the conversation (or all, if fewer), bottom line first.
///
/// `offline` marks unacknowledged messages as queued rather than sending.
pub fn lines_from_bottom(
    conversation: &Conversation,
    me: &Username,
    offset: UtcOffset,
    width: usize,
    needed: usize,
    offline: bool,
) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for pending in conversation.outgoing.iter().rev() {
        if lines.len() >= needed {
            return lines;
        }
        push_reversed(&mut lines, outgoing_lines(pending, width, offline));
    }
    let newest_read = newest_read(conversation, me);
    for at in (0..conversation.messages.len()).rev() {
        if lines.len() >= needed {
            return lines;
        }
        lines.extend(block(conversation, at, me, newest_read, offset, width));
    }
    if conversation.loading {
        lines.push(Line::styled("loading older messages…", DIM));
    } else if !conversation.more && conversation.requested {
        lines.push(Line::styled("— start of the conversation —", DIM));
    }
    lines
}

/// How many lines the newest `count` stored messages take (with their date separators): what
/// a view scrolled back must move by to stay where it is.
pub fn newest_height(
    conversation: &Conversation,
    me: &Username,
    offset: UtcOffset,
    width: usize,
    count: usize,
) -> usize {
    let newest_read = newest_read(conversation, me);
    let len = conversation.messages.len();
    (len.saturating_sub(count)..len)
        .map(|at| block(conversation, at, me, newest_read, offset, width).len())
        .sum()
}

/// The lines of message `at`, bottom line first: the message, the `── new ──` line above
/// the first unread one, and the date above the first message of a day.
fn block(
    conversation: &Conversation,
    at: usize,
    me: &Username,
    newest_read: Option<u64>,
    offset: UtcOffset,
    width: usize,
) -> Vec<Line<'static>> {
    let messages = &conversation.messages;
    let message = &messages[at];
    let mine = message.from == *me && message.kind == GroupMessageKind::Text;
    let mark = mine.then(|| match &conversation.roster {
        Some(roster) => group_mark(roster.delivery(message.id, me)),
        None => match conversation.delivery(message.id) {
            Delivery::Read if Some(message.id) == newest_read => Span::styled(" ✓✓ read", READ),
            status => delivery_mark(status),
        },
    });
    let mut shown = message_lines(message, me, mark, offset, width);
    if conversation.highlight == Some(message.id) {
        shown = shown.into_iter().map(|line| line.patch_style(FOUND)).collect();
    }
    let mut lines: Vec<Line<'static>> = shown.into_iter().rev().collect();
    if conversation.marker == Some(message.id) {
        lines.push(rule(" new ", width, NEW));
    }
    let older = at.checked_sub(1).map(|before| &messages[before]);
    let new_day = older.is_none_or(|older| day(older.sent_at, offset) != day(message.sent_at, offset));
    if new_day && (older.is_some() || !conversation.more) {
        lines.push(date_separator(message.sent_at, offset, width));
    }
    lines
}

/// My newest message the peer has read: it carries the word "read", so read and delivered
/// differ by more than colour.
fn newest_read(conversation: &Conversation, me: &Username) -> Option<u64> {
    let read = conversation.peer_read_up_to;
    if read == 0 {
        return None;
    }
    let end = conversation.messages.partition_point(|m| m.id <= read);
    conversation.messages[..end].iter().rev().find(|m| m.from == *me).map(|m| m.id)
}

fn push_reversed(lines: &mut Vec<Line<'static>>, shown: Vec<Line<'static>>) {
    lines.extend(shown.into_iter().rev());
}

fn message_lines(
    message: &Post,
    me: &Username,
    mark: Option<Span<'static>>,
    offset: UtcOffset,
    width: usize,
) -> Vec<Line<'static>> {
    let time = clock(message.sent_at, offset);
    if let Some(what) = system_text(message, me) {
        return layout(vec![Span::styled(format!("{time} "), DIM)], &format!("· {what}"), None, None, width)
            .into_iter()
            .map(|line| line.patch_style(SYSTEM))
            .collect();
    }
    let (name, style, mentioned) = if message.from == *me {
        ("you".to_owned(), ME, None)
    } else {
        (message.from.to_string(), PEER, Some(me))
    };
    layout(
        vec![Span::styled(format!("{time} "), DIM), Span::styled(format!("{name}: "), style)],
        &message.body,
        mentioned,
        mark,
        width,
    )
}

/// The mark after one of my texts in a group: `✓` while no other member has it, `✓✓ 3/5`
/// once some do, and `· read by 2` once some read it; bold blue once everyone did.
fn group_mark(delivery: GroupDelivery) -> Span<'static> {
    let GroupDelivery { delivered, read, of } = delivery;
    let style = if of > 0 && read == of { READ } else { DIM };
    match (delivered, read) {
        _ if of == 0 => Span::styled(" ✓", DIM),
        (0, _) => Span::styled(format!(" ✓ 0/{of}"), DIM),
        (_, 0) => Span::styled(format!(" ✓✓ {delivered}/{of}"), style),
        _ => Span::styled(format!(" ✓✓ {delivered}/{of} · read by {read}"), style),
    }
}

/// What a group's system line says, `None` for a text.
fn system_text(message: &Post, me: &Username) -> Option<String> {
    let name = |user: &Username| if user == me { "you".to_owned() } else { user.to_string() };
    let who = name(&message.from);
    Some(match &message.kind {
        GroupMessageKind::Text => return None,
        GroupMessageKind::Created => format!("{who} created the group"),
        GroupMessageKind::Added { member } => format!("{who} added {}", name(member)),
        GroupMessageKind::Left => format!("{who} left"),
        GroupMessageKind::Removed { member } => format!("{who} removed {}", name(member)),
        GroupMessageKind::Renamed { from } => format!("{who} renamed the group (it was {from})"),
        GroupMessageKind::OwnerChanged { to } => format!("{who} handed the group over to {}", name(to)),
    })
}

fn outgoing_lines(pending: &OutgoingView, width: usize, offline: bool) -> Vec<Line<'static>> {
    let suffix = match &pending.failed {
        Some(reason) => Span::styled(format!(" ✗ {}", sanitize::line(reason)), Style::new().fg(Color::Red)),
        None if offline => Span::styled(" ◷ queued", Style::new().fg(Color::Yellow)),
        None => delivery_mark(Delivery::Sending),
    };
    layout(
        vec![Span::styled("      ", DIM), Span::styled("you: ", ME)],
        &pending.outgoing.body,
        None,
        Some(suffix),
        width,
    )
}

/// The mark after one of my messages. Read messages are blue and bold, and the newest of
/// them also says "read", so the difference survives a terminal without colour.
pub fn delivery_mark(delivery: Delivery) -> Span<'static> {
    match delivery {
        Delivery::Sending => Span::styled(" …", DIM),
        Delivery::Sent => Span::styled(" ✓", DIM),
        Delivery::Delivered => Span::styled(" ✓✓", DIM),
        Delivery::Read => Span::styled(" ✓✓", READ),
    }
}

/// Style of the read mark.
const READ: Style = Style::new().fg(Color::LightBlue).add_modifier(Modifier::BOLD);

/// Prefix spans, then the body wrapped under an indent as wide as the prefix (or on its own
/// lines when the pane is too narrow for that), with mentions of `mentioned` highlighted,
/// then the suffix where it fits.
fn layout(
    prefix: Vec<Span<'static>>,
    body: &str,
    mentioned: Option<&Username>,
    suffix: Option<Span<'static>>,
    width: usize,
) -> Vec<Line<'static>> {
    let prefix_width: usize = prefix.iter().map(|span| span.content.width()).sum();
    let hanging = prefix_width <= width / 2;
    let indent = if hanging { prefix_width } else { 2 };
    let mut lines: Vec<Line<'static>> = Vec::new();
    let mut body_lines = wrap(body, width.saturating_sub(indent)).into_iter();
    if hanging {
        let mut first = prefix;
        first.extend(body_spans(body_lines.next().unwrap_or_default(), mentioned));
        lines.push(Line::from(first));
    } else {
        lines.push(Line::from(prefix));
    }
    lines.extend(body_lines.map(|text| {
        let mut spans = vec![Span::raw(" ".repeat(indent))];
        spans.extend(body_spans(text, mentioned));
        Line::from(spans)
    }));
    if let Some(suffix) = suffix {
        let last = lines.last_mut().expect("at least the prefix line");
        if last.width() + suffix.content.width() <= width {
            last.spans.push(suffix);
        } else {
            lines.push(Line::from(vec![Span::raw(" ".repeat(indent)), suffix]));
        }
    }
    lines
}

/// A wrapped line of a body, its mentions of `mentioned` (if any) highlighted.
fn body_spans(text: String, mentioned: Option<&Username>) -> Vec<Span<'static>> {
    let ranges = mentioned.map(|me| mention::ranges(&text, me)).unwrap_or_default();
    if ranges.is_empty() {
        return vec![Span::raw(text)];
    }
    let mut spans = Vec::with_capacity(2 * ranges.len() + 1);
    let mut from = 0;
    for range in ranges {
        if range.start > from {
            spans.push(Span::raw(text[from..range.start].to_owned()));
        }
        spans.push(Span::styled(text[range.clone()].to_owned(), MENTION));
        from = range.end;
    }
    if from < text.len() {
        spans.push(Span::raw(text[from..].to_owned()));
    }
    spans
}

fn date_separator(at: UnixMillis, offset: UtcOffset, width: usize) -> Line<'static> {
    let date = local(at, offset)
        .format(format_description!("[weekday repr:short] [day padding:none] [month repr:short] [year]"))
        .unwrap_or_default();
    rule(&format!(" {date} "), width, DIM)
}

/// `label` centred on a horizontal rule as wide as the pane.
fn rule(label: &str, width: usize, style: Style) -> Line<'static> {
    let side = width.saturating_sub(label.width()) / 2;
    Line::styled(format!("{}{label}{}", "─".repeat(side), "─".repeat(side)), style)
}

/// "today 14:03", "3 Nov", or "3 Nov 2025" in another year: when someone was last seen.
pub fn when(at: UnixMillis, now: UnixMillis, offset: UtcOffset) -> String {
    let (then, today) = (local(at, offset), local(now, offset));
    if then.date() == today.date() {
        return format!("today {}", clock(at, offset));
    }
    let format = if then.year() == today.year() {
        format_description!("[day padding:none] [month repr:short]")
    } else {
        format_description!("[day padding:none] [month repr:short] [year]")
    };
    then.format(format).unwrap_or_default()
}

fn local(at: UnixMillis, offset: UtcOffset) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset)
}

fn day(at: UnixMillis, offset: UtcOffset) -> time::Date {
    local(at, offset).date()
}

/// `HH:MM` in local time.
pub fn clock(at: UnixMillis, offset: UtcOffset) -> String {
    local(at, offset).format(format_description!("[hour]:[minute]")).unwrap_or_default()
}
