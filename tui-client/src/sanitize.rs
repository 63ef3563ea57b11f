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

use icu_properties::props::{
    DefaultIgnorableCodePoint, EmojiModifier, ExtendedPictographic, GeneralCategory,
};
use icu_properties::{CodePointMapData, CodePointSetData};

/// Zero-width joiner: between emoji it builds one (👩‍💻), anywhere else it only hides.
const ZWJ: char = '\u{200D}';
/// The waving black flag that starts an emoji tag sequence (the flags of England, Scotland…).
const BLACK_FLAG: char = '\u{1F3F4}';

/// Whether `c` must not reach a terminal as it is, wherever it stands: C0 and C1 controls
/// (escape, bell, carriage return, line feed, tab…) and DEL; every format character
/// (general category Cf: bidi embeddings, overrides, isolates and marks, soft hyphens,
/// zero-width spaces and joiners, tags…); every default-ignorable code point (invisible by
/// definition: variation selectors, Hangul fillers, U+180E…); the line and paragraph
/// separators; and the blank Braille pattern, which draws as a space yet is no space. Only
/// emoji sequences get some of them back, see [`marked`].
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || c == '\u{2800}'
        || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        || matches!(
            CodePointMapData::<GeneralCategory>::new().get(c),
            GeneralCategory::Format | GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
        )
}

/// The tag sequences that follow the black flag in the only flag emoji built from tags
/// (England, Scotland, Wales), cancel tag included.
const FLAG_TAGS: [&str; 3] = [
    "\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
    "\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
    "\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}",
];

/// Each character of `text`, and whether it must be escaped: [`is_unsafe`] ones are, except
/// where an emoji needs them, since escaping those would break emoji apart without hiding
/// anything: a joiner between two emoji, a presentation selector right after one, and the
/// tags of the three subdivision flags right after the black flag. Any other tag run is
/// escaped whole: tags spell ASCII invisibly, so they can smuggle a hidden text.
fn marked(text: &str) -> impl Iterator<Item = (char, bool)> + '_ {
    let mut chars = text.char_indices().peekable();
    let mut previous: Option<char> = None;
    let mut flag_tags_left: usize = 0;
    std::iter::from_fn(move || {
        let (at, c) = chars.next()?;
        let next = chars.peek().map(|&(_, next)| next);
        let emoji_needs_it = match c {
            ZWJ => previous.is_some_and(ends_emoji) && next.is_some_and(is_pictographic),
            '\u{FE0E}' | '\u{FE0F}' => previous.is_some_and(is_pictographic),
            '\u{E0020}'..='\u{E007F}' => flag_tags_left > 0,
            _ => false,
        };
        flag_tags_left = if c == BLACK_FLAG {
            let after = &text[at + c.len_utf8()..];
            if FLAG_TAGS.iter().any(|tags| after.starts_with(tags)) {
                FLAG_TAGS[0].chars().count()
            } else {
                0
            }
        } else {
            flag_tags_left.saturating_sub(1)
        };
        previous = Some(c);
        Some((c, !emoji_needs_it && is_unsafe(c)))
    })
}

fn is_pictographic(c: char) -> bool {
    CodePointSetData::new::<ExtendedPictographic>().contains(c)
}

/// Whether `c` can end the emoji before a joiner: the emoji itself, a skin tone, or its
/// presentation selector.
fn ends_emoji(c: char) -> bool {
    is_pictographic(c) || c == '\u{FE0F}' || CodePointSetData::new::<EmojiModifier>().contains(c)
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
    for (c, unsafe_here) in marked(text) {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if unsafe_here => push_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

/// How `c` is drawn where the user edits text (the input box): as itself, or as its
/// visible escape when it is unsafe anywhere (what is typed is not yet a finished emoji,
/// so no exception applies).
pub fn shown_char(c: char) -> String {
    let mut out = String::new();
    if is_unsafe(c) {
        push_escape(&mut out, c);
    } else {
        out.push(c);
    }
    out
}

fn escape<'a>(text: &'a str, mut replace: impl FnMut(char, &mut String)) -> Cow<'a, str> {
    // Most text has nothing to escape, and is lent back as it is.
    if !marked(text).any(|(_, unsafe_here)| unsafe_here) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for (c, unsafe_here) in marked(text) {
        if unsafe_here {
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
    fn every_c0_and_c1_control_and_del_is_escaped() {
        let controls = ('\0'..='\u{1F}').chain(['\u{7F}']).chain('\u{80}'..='\u{9F}');
        for c in controls {
            assert!(is_unsafe(c), "{c:?}");
            assert_eq!(line(&format!("<{c}>")), format!("<\\u{{{:x}}}>", u32::from(c)));
        }
    }

    #[test]
    fn fillers_and_joiners_that_draw_nothing_are_escaped() {
        // Hangul choseong and jungseong fillers, the halfwidth filler, the combining grapheme
        // joiner, the word joiner, the invisible separator, the Arabic letter mark.
        for c in ['\u{115F}', '\u{1160}', '\u{FFA0}', '\u{34F}', '\u{2060}', '\u{2063}', '\u{61C}'] {
            assert!(is_unsafe(c), "{c:?}");
        }
        // Visible spaces and letters are no such thing.
        for c in [' ', '\u{3000}', '\u{A0}', 'ㅎ', '⠁'] {
            assert!(!is_unsafe(c), "{c:?}");
        }
    }

    #[test]
    fn invisible_and_blank_looking_characters_are_escaped_by_their_properties() {
        // Joiner, soft hyphen, a tag, the Hangul filler, the blank Braille pattern, a
        // variation selector with nothing to select, the Mongolian vowel separator, and a
        // format character no list names (U+110BD, Kaithi number sign).
        for c in
            ['\u{200D}', '\u{AD}', '\u{E0041}', '\u{3164}', '\u{2800}', '\u{FE0F}', '\u{180E}', '\u{110BD}']
        {
            assert!(is_unsafe(c), "{c:?}");
            assert_eq!(line(&format!("a{c}b")), format!("a\\u{{{:x}}}b", u32::from(c)));
        }
        assert_eq!(script_line("x\u{E0041}\u{E007F}"), "x\\u{e0041}\\u{e007f}");
        assert_eq!(shown_char('\u{202E}'), "\\u{202e}");
        assert_eq!(shown_char('é'), "é");
    }

    #[test]
    fn emoji_keep_their_joiners_selectors_and_flag_tags() {
        let scotland = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
        for ok in ["❤\u{FE0F}", "👩\u{1F3FD}\u{200D}💻", "❤\u{FE0F}\u{200D}🔥", scotland] {
            assert!(matches!(line(ok), Cow::Borrowed(_)), "{ok:?}");
        }
        assert_eq!(line("👩\u{200D}"), "👩\\u{200d}", "a joiner with no emoji after it");
        // Tags after the black flag that spell no flag are a hidden text: shown, all of them.
        assert_eq!(line("\u{1F3F4}\u{E0068}\u{E0069}\u{E007F}"), "\u{1F3F4}\\u{e0068}\\u{e0069}\\u{e007f}");
        let trailing = format!("{scotland}\u{E0041}");
        assert_eq!(line(&trailing), format!("{scotland}\\u{{e0041}}"), "tags after a whole flag");
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
