//! `@name` mentions: where a text names me, for ringing (a mention in a group rings like a
//! direct message) and for drawing it highlighted.
//!
//! A mention is `@` and a user name, case aside as user names are, standing as a word of its
//! own: not inside an address (`x@ana`), nor the start of a longer name (`@anabel`). Trailing
//! `.` and `-` end a sentence rather than the name (`thanks @ana.`), unless my name has them.

use std::ops::Range;

use papo_protocol::Username;

/// The byte ranges of `text` that mention `me`, `@` included, in order.
pub fn ranges(text: &str, me: &Username) -> Vec<Range<usize>> {
    let me = me.as_str();
    let mut found = Vec::new();
    for (at, _) in text.match_indices('@') {
        if text[..at].chars().next_back().is_some_and(|c| is_name_char(c) || c == '@') {
            continue;
        }
        let rest = &text[at + 1..];
        let word = &rest[..rest.find(|c| !is_name_char(c)).unwrap_or(rest.len())];
        let name = if word.eq_ignore_ascii_case(me) { word } else { word.trim_end_matches(['.', '-']) };
        if name.eq_ignore_ascii_case(me) {
            found.push(at..at + 1 + name.len());
        }
    }
    found
}

/// Whether `text` mentions `me`.
pub fn mentions(text: &str, me: &Username) -> bool {
    !ranges(text, me).is_empty()
}

/// What a user name may hold (see [`Username::parse`]).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ana() -> Username {
        Username::parse("ana").unwrap()
    }

    #[test]
    fn a_mention_is_a_word_of_its_own_case_aside() {
        assert_eq!(ranges("@ana oi", &ana()), vec![Range { start: 0, end: 4 }]);
        assert_eq!(ranges("oi @ANA, tudo bem? @Ana.", &ana()), [3..7, 19..23]);
        assert!(mentions("(@ana)", &ana()));
        assert!(mentions("thanks @ana-", &ana()));
        for text in ["ana", "@anabel", "mail x@ana", "@@ana", "@an", "@ana_b", "@ana.b"] {
            assert!(!mentions(text, &ana()), "{text}");
        }
        let dotted = Username::parse("ana.").unwrap();
        assert_eq!(ranges("hi @ana.", &dotted), vec![Range { start: 3, end: 8 }]);
    }
}
