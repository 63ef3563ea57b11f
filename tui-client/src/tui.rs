//! The terminal side: sets the terminal up, feeds key, mouse and network events into
//! `update`, draws after each batch, and always restores the terminal.

use std::io::stdout;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use ratatui::crossterm::event::{
    self, DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    MouseEventKind,
};
use ratatui::crossterm::execute;
use time::UtcOffset;
use tracing::{info, warn};

use crate::app::{update, view, Model, Msg};
use crate::net::{NetHandle, Transport};
use crate::settings;

/// Lines one mouse wheel step scrolls.
const WHEEL_LINES: i32 = 3;

/// Runs the full-screen client against `server` until the user quits.
pub fn run(
    server: String,
    transport: Transport,
    utc_offset: UtcOffset,
    first_client_msg_id: u64,
) -> Result<()> {
    let (tx, rx) = mpsc::channel::<Msg>();
    let net = {
        let tx = tx.clone();
        NetHandle::spawn(server.clone(), transport, move |event| {
            let _ = tx.send(Msg::Net(event));
        })
        .context("cannot start the network thread")?
    };

    let mut terminal = ratatui::init();
    install_panic_cleanup();
    execute!(stdout(), EnableBracketedPaste, EnableMouseCapture).context("cannot set up the terminal")?;
    thread::Builder::new().name("terminal-input".into()).spawn(move || read_terminal(&tx))?;

    let size = terminal.size().context("cannot read the terminal size")?;
    let mut model = Model::new(server.clone(), utc_offset, (size.width, size.height), first_client_msg_id);
    let mut remembered = false;
    let outcome = loop {
        if let Err(e) = terminal.draw(|frame| view(&model, frame)) {
            break Err(e).context("cannot draw");
        }
        // Blocks until something happens: an idle client uses no CPU.
        let Ok(first) = rx.recv() else { break Ok(()) };
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            for command in update(&mut model, msg) {
                net.send(command);
            }
        }
        if !remembered && model.me.is_some() {
            remembered = true;
            if let Err(e) = settings::remember_server(&server) {
                warn!(error = %e, "cannot remember the server");
            }
        }
        if model.quit {
            break Ok(());
        }
    };
    restore();
    info!("quitting");
    net.quit(Duration::from_secs(2));
    outcome
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
