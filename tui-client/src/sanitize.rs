//! The one place that decides what text from the network may reach a terminal.
//!
//! Anything a server (or someone between us and it, before TLS) sends can hold bytes that
//! act on a terminal instead of showing: escape sequences that retitle the window or recolour
//! everything after them, carriage returns that overwrite a line, bidi overrides that show
//! text in another order than it reads, line separators that some terminals treat as line
//! breaks, and invisible characters that make two different strings look the same. Every
//! string from the network goes through one of these functions before it is drawn or
//! printed: message bodies, error messages, notices and the reasons shown on the status line.
//! Each such character becomes a visible `\u{…}` escape, so nothing is hidden either.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not reach a terminal as it is: C0 and C1 controls (escape, bell,
/// carriage return, line feed, tab…), DEL, bidi embeddings, overrides, isolates and marks,
/// the Unicode line and paragraph separators, and invisible format characters.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'                    // Arabic letter mark
            | '\u{180E}'                  // Mongolian vowel separator
            | '\u{200B}'                  // zero-width space
            | '\u{200E}' | '\u{200F}'     // left-to-right and right-to-left marks
            | '\u{2028}' | '\u{2029}'     // line and paragraph separators
            | '\u{202A}'..='\u{202E}'     // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'     // word joiner and invisible operators
            | '\u{2066}'..='\u{2069}'     // bidi isolates
            | '\u{206A}'..='\u{206F}'     // deprecated format characters
            | '\u{FEFF}'                  // zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
        )
}

/// `text` as one harmless line: every unsafe character, line breaks included, becomes a
/// visible escape. For names, error messages, notices and anything else on one line.
pub fn line(text: &str) -> Cow<'_, str> {
    escape(text, |c, out| {
        push_escape(out, c);
    })
}

/// `text` with its line breaks kept, tabs as a space and every other unsafe character as a
/// visible escape: message bodies before they are wrapped into the history pane.
pub fn text(text: &str) -> Cow<'_, str> {
    escape(text, |c, out| match c {
        '\n' => out.push('\n'),
        '\t' => out.push(' '),
        c => push_escape(out, c),
    })
}

/// `text` as one line of script output that can be split on line breaks and read back:
/// backslashes are doubled, a line feed is `\n`, and every other unsafe character is an
/// escape such as `\u{2028}`.
pub fn script_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if is_unsafe(c) => push_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

fn escape<'a>(text: &'a str, mut replace: impl FnMut(char, &mut String)) -> Cow<'a, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            replace(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn push_escape(out: &mut String, c: char) {
    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a rogue host answered the ClientHello with (issue 14, item 7).
    const HOSTILE: &str = "\x1b]0;pwned\x07\x1b[31mred\r\u{9b}2J";

    #[test]
    fn escape_sequences_and_controls_become_visible_text() {
        assert_eq!(line(HOSTILE), "\\u{1b}]0;pwned\\u{7}\\u{1b}[31mred\\u{d}\\u{9b}2J");
        assert!(!line(HOSTILE).chars().any(is_unsafe));
        assert_eq!(line("two\nlines\ttab"), "two\\u{a}lines\\u{9}tab");
    }

    #[test]
    fn bidi_separators_and_invisibles_are_shown_not_obeyed() {
        let forged = "a\u{202E}evil\u{2066}x\u{2069}\u{2028}b\u{2029}c\u{200B}d\u{FEFF}";
        assert_eq!(line(forged), "a\\u{202e}evil\\u{2066}x\\u{2069}\\u{2028}b\\u{2029}c\\u{200b}d\\u{feff}");
        for c in ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{2067}', '\u{2068}', '\u{200F}'] {
            assert!(is_unsafe(c), "{c:?}");
        }
    }

    #[test]
    fn ordinary_text_is_borrowed_untouched() {
        for ok in ["olá 👋", "日本語", "👨\u{200D}👩\u{200D}👧 family", "عربي", "a\\b"] {
            assert!(matches!(line(ok), Cow::Borrowed(_)), "{ok}");
        }
    }

    #[test]
    fn bodies_keep_line_breaks_and_scripts_get_one_line_each() {
        assert_eq!(text("a\n\tb\u{2028}c"), "a\n b\\u{2028}c");
        assert_eq!(script_line("a\nb\\c\x1b\u{2029}"), "a\\nb\\\\c\\u{1b}\\u{2029}");
        assert!(!script_line(HOSTILE).contains(['\n', '\r', '\x1b']));
    }
}
