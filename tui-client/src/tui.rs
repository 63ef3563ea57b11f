//! The terminal side: sets the terminal up, feeds key, mouse, signal and network events
//! into `update`, draws after each batch, and always restores the terminal.

use std::io::stdout;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ratatui::crossterm::event::{
    self, DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    MouseEventKind,
};
use ratatui::crossterm::execute;
use time::UtcOffset;
use tracing::{info, warn};

use crate::app::{update, view, Look, Model, Msg};
use crate::net::{Link, NetConfig, NetHandle, Transport};
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
    execute!(stdout(), EnableBracketedPaste, EnableMouseCapture).context("cannot set up the terminal")?;
    thread::Builder::new().name("terminal-input".into()).spawn(move || read_terminal(&tx))?;

    let size = terminal.size().context("cannot read the terminal size")?;
    let mut model = Model::new(server.to_owned(), utc_offset, (size.width, size.height), first_client_msg_id);
    model.look = Look::from_env(|name| std::env::var(name).ok());
    let mut remembered = false;
    let mut last_tick = Instant::now();
    let outcome = loop {
        if let Err(e) = terminal.draw(|frame| view(&model, frame)) {
            break Err(e).context("cannot draw");
        }
        // Blocks until something happens: an idle client uses no CPU. Offline, a tick each
        // second keeps the retry countdown true.
        let counting = matches!(model.link, Link::Offline { .. });
        let first = if counting {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => Msg::Tick(Duration::ZERO),
                Err(RecvTimeoutError::Disconnected) => break Ok(()),
            }
        } else {
            match rx.recv() {
                Ok(msg) => msg,
                Err(_) => break Ok(()),
            }
        };
        let elapsed = last_tick.elapsed();
        last_tick = Instant::now();
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

fn read_terminal(tx: &mpsc::Sender<Msg>) {
    loop {
        let msg = match event::read() {
            Ok(Event::Key(key)) => Msg::Key(key),
            Ok(Event::Paste(text)) => Msg::Paste(text),
            Ok(Event::Resize(width, height)) => Msg::Resize(width, height),
            Ok(Event::Mouse(mouse)) => match mouse.kind {
                MouseEventKind::ScrollUp => Msg::Scroll(WHEEL_LINES),
                MouseEventKind::ScrollDown => Msg::Scroll(-WHEEL_LINES),
                _ => continue,
            },
            Ok(_) => continue,
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

fn restore() {
    let _ = execute!(stdout(), DisableMouseCapture, DisableBracketedPaste);
    ratatui::restore();
}

/// `ratatui::init` restores raw mode and the screen on panic; this also turns off mouse
/// capture and bracketed paste, which it does not know about.
fn install_panic_cleanup() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(stdout(), DisableMouseCapture, DisableBracketedPaste);
        previous(info);
    }));
}
