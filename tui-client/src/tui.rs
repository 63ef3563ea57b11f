//! The terminal side: sets the terminal up, feeds key, mouse, focus, signal and network
//! events into `update`, draws after each batch, writes the bells, notifications and title
//! the model asks for, and always restores the terminal (and its title).

use std::io::{stdout, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ratatui::crossterm::event::{
    self, DisableBracketedPaste, DisableFocusChange, DisableMouseCapture, EnableBracketedPaste,
    EnableFocusChange, EnableMouseCapture, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
    MouseEventKind,
};
use ratatui::crossterm::execute;
use time::UtcOffset;
use tracing::{info, warn};

use crate::app::{update, view, Alert, Look, Model, Msg};
use crate::escapes::{self, Desktop};
use crate::net::{NetConfig, NetHandle, Transport};
use crate::settings;

/// Lines one mouse wheel step scrolls.
const WHEEL_LINES: i32 = 3;

/// How the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// Who was logged in.
    pub user: Option<String>,
    /// Messages still unsent; they wait in the outbox file for the next login.
    pub unsent: usize,
}

/// Runs the full-screen client against `server` until the user quits (or a signal says so).
pub fn run(
    server: &str,
    transport: Transport,
    utc_offset: UtcOffset,
    first_client_msg_id: u64,
) -> Result<Ending> {
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut config = NetConfig::new(server, transport);
    config.outbox_dir = settings::outbox_dir();
    let net = {
        let tx = tx.clone();
        NetHandle::spawn(config, move |event| {
            let _ = tx.send(Msg::Net(event));
        })
        .context("cannot start the network thread")?
    };
    watch_signals(tx.clone())?;

    let mut terminal = ratatui::init();
    install_panic_cleanup();
    execute!(stdout(), EnableBracketedPaste, EnableMouseCapture, EnableFocusChange)
        .context("cannot set up the terminal")?;
    thread::Builder::new().name("terminal-input".into()).spawn(move || read_terminal(&tx))?;

    let size = terminal.size().context("cannot read the terminal size")?;
    let mut model = Model::new(server.to_owned(), utc_offset, (size.width, size.height), first_client_msg_id);
    model.look = Look::from_env(|name| std::env::var(name).ok());
    let (prefs, warnings) = settings::load_prefs();
    model.prefs = prefs;
    if !warnings.is_empty() {
        model.notice = Some(warnings.join("; "));
    }
    let env = |name: &str| std::env::var(name).ok();
    let (desktop, in_tmux) = (Desktop::from_env(env), env("TMUX").is_some());
    let mut title = model.title();
    write_terminal(&format!("{}{}", escapes::PUSH_TITLE, escapes::title(&title)));
    let mut muted = model.prefs.muted.clone();
    let mut group_notify = model.prefs.group_notify.clone();
    let mut remembered = false;
    let mut last_tick = Instant::now();
    let outcome = loop {
        if let Err(e) = terminal.draw(|frame| view(&model, frame)) {
            break Err(e).context("cannot draw");
        }
        // Blocks until something happens: an idle client uses no CPU. A countdown on screen
        // (the retry, a `typing…` that expires) wakes it when the screen must change.
        let first = match model.wake_in() {
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => Msg::Tick(Duration::ZERO),
                Err(RecvTimeoutError::Disconnected) => break Ok(()),
            },
            None => match rx.recv() {
                Ok(msg) => msg,
                Err(_) => break Ok(()),
            },
        };
        let elapsed = last_tick.elapsed();
        last_tick = Instant::now();
        for command in update(&mut model, Msg::Clock(crate::net::now_millis())) {
            net.send(command);
        }
        let first = match first {
            Msg::Tick(_) => Msg::Tick(elapsed),
            other => {
                for command in update(&mut model, Msg::Tick(elapsed)) {
                    net.send(command);
                }
                other
            }
        };
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            for command in update(&mut model, msg) {
                net.send(command);
            }
        }
        signal_news(&mut model, desktop, in_tmux);
        if model.title() != title {
            title = model.title();
            write_terminal(&escapes::title(&title));
        }
        if model.prefs.muted != muted {
            muted = model.prefs.muted.clone();
            if let Err(e) = settings::save_muted(&muted) {
                model.notice = Some(format!("cannot remember the muted conversations: {e:#}"));
            }
        }
        if model.prefs.group_notify != group_notify {
            group_notify = model.prefs.group_notify.clone();
            if let Err(e) = settings::save_group_notify(&group_notify) {
                model.notice = Some(format!("cannot remember the groups' /notify settings: {e:#}"));
            }
        }
        if !remembered && model.me.is_some() {
            remembered = true;
            if let Err(e) = settings::remember_server(server) {
                warn!(error = %e, "cannot remember the server");
            }
        }
        if model.quit {
            break Ok(());
        }
    };
    restore();
    info!("quitting");
    let unsent = net.quit(Duration::from_secs(3));
    outcome.map(|()| Ending { user: model.me.map(|me| me.to_string()), unsent })
}

/// SIGTERM, SIGHUP and SIGINT end the session as Ctrl+C does: the terminal is restored and
/// unsent messages stay in the outbox file.
fn watch_signals(tx: mpsc::Sender<Msg>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGHUP, SIGINT]).context("cannot watch for signals")?;
    thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            info!(signal, "quitting on a signal");
            if tx.send(Msg::Terminate).is_err() {
                return;
            }
        }
    })?;
    Ok(())
}

/// Writes the alerts the last batch asked for: one bell and one notification at most, however
/// many messages came at once.
fn signal_news(model: &mut Model, desktop: Desktop, in_tmux: bool) {
    let alerts = std::mem::take(&mut model.alerts);
    let bell = alerts.iter().find(|alert| **alert == Alert::Bell);
    let notification = alerts.iter().rev().find(|alert| matches!(alert, Alert::Desktop { .. }));
    let bytes: String =
        bell.into_iter().chain(notification).map(|alert| escapes::alert(alert, desktop, in_tmux)).collect();
    if !bytes.is_empty() {
        write_terminal(&bytes);
    }
}

/// Writes bytes of our own between ratatui's frames; a terminal that cannot take them has
/// nothing to lose by it.
fn write_terminal(bytes: &str) {
    let mut out = stdout().lock();
    let _ = out.write_all(bytes.as_bytes());
    let _ = out.flush();
}

fn read_terminal(tx: &mpsc::Sender<Msg>) {
    let mut next = None;
    loop {
        let read = match next.take() {
            Some(event) => Ok(event),
            None => event::read(),
        };
        let msg = match read {
            Ok(Event::Paste(text)) => {
                let (text, after) = rest_of_paste(text);
                next = after;
                Msg::Paste(text)
            }
            Ok(Event::Key(key)) if is_text_key(&key) && matches!(key.code, KeyCode::Char(_)) => {
                let (keys, after) = rest_of_burst(key);
                next = after;
                let mut msgs = burst_to_msgs(keys);
                let last = msgs.pop().expect("a burst holds its first key");
                if msgs.into_iter().any(|msg| tx.send(msg).is_err()) {
                    return;
                }
                last
            }
            Ok(event) => match to_msg(event) {
                Some(msg) => msg,
                None => continue,
            },
            Err(e) => {
                warn!(error = %e, "cannot read the terminal");
                return;
            }
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

/// A paste, with the keys that came in the same burst of input after its end: pasted text
/// that holds the end-of-paste sequence (`\e[201~`) would otherwise turn its own tail into
/// key presses, and a carriage return there into Enter, sending a message nobody sent.
/// Nobody types within the microseconds of one read, so those keys are pasted text too.
/// Returns the whole text and the first event that is not part of it.
fn rest_of_paste(mut text: String) -> (String, Option<Event>) {
    // Bounded by what the terminal already sent: `poll` with no wait ends at the first lull.
    while let Ok(true) = event::poll(Duration::ZERO) {
        let Ok(event) = event::read() else { break };
        match event {
            Event::Key(key) if key.kind == KeyEventKind::Press => match key.code {
                KeyCode::Char(c) => text.push(c),
                KeyCode::Enter => text.push('\n'),
                KeyCode::Tab => text.push('\t'),
                _ => return (text, Some(Event::Key(key))),
            },
            Event::Key(_) => {}
            Event::Paste(more) => text.push_str(&more),
            other => return (text, Some(other)),
        }
    }
    (text, None)
}

/// A key that types text (or a line break) into whatever has the focus.
fn is_text_key(key: &KeyEvent) -> bool {
    key.kind == KeyEventKind::Press
        && !key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
        && matches!(key.code, KeyCode::Char(_) | KeyCode::Enter | KeyCode::Tab)
}

/// The text keys that came in the same burst of input as `first` (nobody types within the
/// microseconds of one read), and the first event that is not one.
fn rest_of_burst(first: KeyEvent) -> (Vec<KeyEvent>, Option<Event>) {
    let mut keys = vec![first];
    // Bounded by what the terminal already sent: `poll` with no wait ends at the first lull.
    while let Ok(true) = event::poll(Duration::ZERO) {
        match event::read() {
            Ok(Event::Key(key)) if key.kind != KeyEventKind::Press => {}
            Ok(Event::Key(key)) if is_text_key(&key) => keys.push(key),
            Ok(other) => return (keys, Some(other)),
            Err(_) => break,
        }
    }
    (keys, None)
}

/// A terminal without bracketed paste sends pasted text as keys, its line breaks as Enter:
/// a burst with an Enter followed by more text is pasted text, not one message per line.
/// It goes into the input as a paste; an Enter that ends the burst stays a key (text and
/// Enter typed faster than a read still sends), and a burst with no line break inside stays
/// the keys it was.
fn burst_to_msgs(keys: Vec<KeyEvent>) -> Vec<Msg> {
    let ends_with_enter = keys.last().is_some_and(|key| key.code == KeyCode::Enter);
    let body = &keys[..keys.len() - usize::from(ends_with_enter)];
    if !body.iter().any(|key| key.code == KeyCode::Enter) {
        return keys.into_iter().map(Msg::Key).collect();
    }
    let text: String = body
        .iter()
        .map(|key| match key.code {
            KeyCode::Char(c) => c,
            KeyCode::Tab => '\t',
            _ => '\n',
        })
        .collect();
    let mut msgs = vec![Msg::Paste(text)];
    msgs.extend(keys.last().filter(|_| ends_with_enter).map(|key| Msg::Key(*key)));
    msgs
}

/// The message for a terminal event that means anything to the app.
fn to_msg(event: Event) -> Option<Msg> {
    Some(match event {
        Event::Key(key) => Msg::Key(key),
        Event::Paste(text) => Msg::Paste(text),
        Event::Resize(width, height) => Msg::Resize(width, height),
        Event::Mouse(mouse) => match mouse.kind {
            MouseEventKind::ScrollUp => Msg::Scroll(WHEEL_LINES),
            MouseEventKind::ScrollDown => Msg::Scroll(-WHEEL_LINES),
            _ => return None,
        },
        Event::FocusGained => Msg::Focus(true),
        Event::FocusLost => Msg::Focus(false),
    })
}

fn restore() {
    restore_title();
    let _ = execute!(stdout(), DisableFocusChange, DisableMouseCapture, DisableBracketedPaste);
    ratatui::restore();
}

/// The title papo set goes: the saved one comes back where the terminal keeps a stack, and
/// elsewhere a neutral one stays instead of a stale unread count.
fn restore_title() {
    write_terminal(&format!("{}{}", escapes::neutral_title(), escapes::POP_TITLE));
}

/// `ratatui::init` restores raw mode and the screen on panic; this also turns off mouse
/// capture and bracketed paste, which it does not know about.
fn install_panic_cleanup() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_title();
        let _ = execute!(stdout(), DisableFocusChange, DisableMouseCapture, DisableBracketedPaste);
        previous(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<KeyEvent> {
        text.chars()
            .map(|c| match c {
                '\n' => KeyEvent::from(KeyCode::Enter),
                c => KeyEvent::from(KeyCode::Char(c)),
            })
            .collect()
    }

    #[test]
    fn lines_pasted_as_keys_become_one_paste() {
        assert_eq!(burst_to_msgs(keys("one\ntwo\nthree")), [Msg::Paste("one\ntwo\nthree".into())]);
        assert_eq!(
            burst_to_msgs(keys("one\ntwo\n")),
            [Msg::Paste("one\ntwo".into()), Msg::Key(KeyEvent::from(KeyCode::Enter))],
            "a final Enter is still Enter"
        );
    }

    #[test]
    fn typed_keys_stay_keys() {
        assert_eq!(burst_to_msgs(keys("hi")), keys("hi").into_iter().map(Msg::Key).collect::<Vec<_>>());
        assert_eq!(burst_to_msgs(keys("hi\n")), keys("hi\n").into_iter().map(Msg::Key).collect::<Vec<_>>());
    }
}
