//! Wrapping text to a width in terminal cells, so emoji and CJK never overflow a pane.

use unicode_width::UnicodeWidthChar;

use crate::sanitize;

/// Width of one character in cells.
pub fn char_width(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Splits `text` into lines at most `width` cells wide: at `\n`, else between words, else
/// inside a word that is wider than a line. Characters that would act on the terminal are
/// made visible first ([`sanitize::text`]).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(2);
    let text = sanitize::text(text);
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        let mut line_width = 0;
        for word in split_keeping_spaces(paragraph) {
            let word_width: usize = word.chars().map(char_width).sum();
            if line_width + word_width > width && line_width > 0 {
                lines.push(std::mem::take(&mut line).trim_end().to_owned());
                line_width = 0;
                if word.trim().is_empty() {
                    continue;
                }
            }
            for c in word.chars() {
                let w = char_width(c);
                if line_width + w > width {
                    lines.push(std::mem::take(&mut line));
                    line_width = 0;
                }
                line.push(c);
                line_width += w;
            }
        }
        lines.push(line.trim_end().to_owned());
    }
    lines
}

/// Words with the spaces that follow them, so re-joining loses nothing.
fn split_keeping_spaces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let word_end = rest.find(' ').unwrap_or(rest.len());
        let end = rest[word_end..].find(|c| c != ' ').map_or(rest.len(), |at| word_end + at);
        let (word, tail) = rest.split_at(end);
        rest = tail;
        Some(word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_width::UnicodeWidthStr;

    #[test]
    fn wraps_between_words() {
        assert_eq!(wrap("the quick brown fox", 10), ["the quick", "brown fox"]);
    }

    #[test]
    fn breaks_words_longer_than_a_line() {
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
    }

    #[test]
    fn wide_characters_count_two_cells() {
        let lines = wrap("日本語のテキスト👋👋", 6);
        assert_eq!(lines, ["日本語", "のテキ", "スト👋", "👋"]);
        assert!(lines.iter().all(|line| line.width() <= 6));
    }

    #[test]
    fn keeps_explicit_newlines_and_neutralises_control_characters() {
        assert_eq!(wrap("a\n\nb\x1b[31m\tc", 20), ["a", "", "b\\u{1b}[31m c"]);
        assert_eq!(wrap("x\u{2028}y", 20), ["x\\u{2028}y"]);
    }
}
