//! The few escape sequences papo writes itself, around what ratatui draws: the bell, the
//! window title (OSC 2, with xterm's title stack to give the old one back), and desktop
//! notifications through the terminal (OSC 777 `notify` or OSC 9).
//!
//! Everything here builds bytes and decides nothing about when to send them, so it is
//! tested as plain functions; `tui.rs` writes them.

use crate::app::Alert;
use crate::sanitize;

/// The terminal bell.
const BELL: &str = "\x07";

/// Saves the current window title on xterm's title stack (XTWINOPS 22): terminals without
/// the stack ignore it.
pub const PUSH_TITLE: &str = "\x1b[22;0t";

/// Restores the title saved by [`PUSH_TITLE`].
pub const POP_TITLE: &str = "\x1b[23;0t";

/// Longest preview a desktop notification carries, in characters.
const PREVIEW_CHARS: usize = 100;

/// Sets the window title (inside tmux, the pane title) to `title`, made harmless.
pub fn title(title: &str) -> String {
    format!("\x1b]2;{}\x07", osc_text(title))
}

/// What papo leaves as the title on exit, in terminals without a title stack: nothing in
/// particular, where the terminal then shows its own.
pub fn neutral_title() -> String {
    title("")
}

/// How the terminal shows desktop notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desktop {
    /// `OSC 777 ; notify ; title ; body` (foot, WezTerm, Ghostty, urxvt, VTE with the patch).
    Osc777,
    /// `OSC 9 ; text` (iTerm2, Windows Terminal, kitty, ConEmu).
    Osc9,
}

impl Desktop {
    /// The one the terminal named by the environment understands; OSC 777 when it says
    /// nothing that points to OSC 9. Terminals that know neither ignore them.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Self {
        let program = var("TERM_PROGRAM").unwrap_or_default();
        let osc9 = program == "iTerm.app"
            || var("WT_SESSION").is_some()
            || var("KITTY_WINDOW_ID").is_some()
            || var("ConEmuPID").is_some();
        if osc9 {
            Self::Osc9
        } else {
            Self::Osc777
        }
    }
}

/// The bytes for `alert`, wrapped for tmux's passthrough when `in_tmux` (tmux drops
/// unknown OSC sequences otherwise; it needs `allow-passthrough on` for these).
pub fn alert(alert: &Alert, desktop: Desktop, in_tmux: bool) -> String {
    let Alert::Desktop { from, group, preview } = alert else { return BELL.to_owned() };
    let heading = match group {
        Some(group) => format!("papo: {from} in {group}"),
        None => format!("papo: {from}"),
    };
    let body = match preview {
        Some(text) => osc_text(&text.chars().take(PREVIEW_CHARS).collect::<String>()),
        None => "new message".to_owned(),
    };
    let sequence = match desktop {
        Desktop::Osc777 => format!("\x1b]777;notify;{heading};{body}\x1b\\"),
        Desktop::Osc9 => format!("\x1b]9;{heading}: {body}\x1b\\"),
    };
    if in_tmux {
        format!("\x1bPtmux;{}\x1b\\", sequence.replace('\x1b', "\x1b\x1b"))
    } else {
        sequence
    }
}

/// `text` fit to sit inside an OSC string: every control and invisible character escaped
/// (so nothing ends the sequence early or acts on the terminal), and `;`, which separates
/// OSC 777's fields, as `,`.
fn osc_text(text: &str) -> String {
    sanitize::line(text).replace(';', ",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use papo_protocol::Username;

    fn bia() -> Username {
        Username::parse("bia").unwrap()
    }

    #[test]
    fn titles_are_osc_2_and_cannot_break_out() {
        assert_eq!(title("papo (3)"), "\x1b]2;papo (3)\x07");
        assert_eq!(title("a\x07\x1b]0;x"), "\x1b]2;a\\u{7}\\u{1b}]0,x\x07");
        assert_eq!(neutral_title(), "\x1b]2;\x07");
    }

    #[test]
    fn notifications_name_the_sender_and_show_text_only_with_previews() {
        let hidden = Alert::Desktop { from: bia(), group: None, preview: None };
        assert_eq!(alert(&hidden, Desktop::Osc777, false), "\x1b]777;notify;papo: bia;new message\x1b\\");
        let shown = Alert::Desktop { from: bia(), group: None, preview: Some("oi; tudo\x1b[31m bem".into()) };
        assert_eq!(alert(&shown, Desktop::Osc9, false), "\x1b]9;papo: bia: oi, tudo\\u{1b}[31m bem\x1b\\");
        let lab = papo_protocol::GroupName::parse("#lab").ok();
        let in_group = Alert::Desktop { from: bia(), group: lab, preview: None };
        assert_eq!(
            alert(&in_group, Desktop::Osc777, false),
            "\x1b]777;notify;papo: bia in #lab;new message\x1b\\"
        );
        assert_eq!(alert(&Alert::Bell, Desktop::Osc9, true), BELL);
        assert_eq!(
            alert(&hidden, Desktop::Osc9, true),
            "\x1bPtmux;\x1b\x1b]9;papo: bia: new message\x1b\x1b\\\x1b\\"
        );
    }

    #[test]
    fn the_environment_picks_the_protocol() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(Desktop::from_env(env(&[])), Desktop::Osc777);
        assert_eq!(Desktop::from_env(env(&[("TERM_PROGRAM", "iTerm.app")])), Desktop::Osc9);
        assert_eq!(Desktop::from_env(env(&[("WT_SESSION", "1")])), Desktop::Osc9);
        assert_eq!(Desktop::from_env(env(&[("TERM_PROGRAM", "WezTerm")])), Desktop::Osc777);
    }
}
