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

/// Like [`wrap`] for text in pieces that each carry a style `T` (already made safe to show):
/// rows of pieces at most `width` cells wide, broken between words where it can be.
pub fn wrap_styled<T: Copy + PartialEq>(pieces: &[(&str, T)], width: usize) -> Vec<Vec<(String, T)>> {
    let width = width.max(2);
    let mut rows: Vec<Vec<(String, T)>> = vec![Vec::new()];
    let mut row_width = 0;
    for &(piece, style) in pieces {
        for word in split_keeping_spaces(piece) {
            let word_width: usize = word.chars().map(char_width).sum();
            if row_width + word_width > width && row_width > 0 {
                rows.push(Vec::new());
                row_width = 0;
                if word.trim().is_empty() {
                    continue;
                }
            }
            let mut chunk = String::new();
            for c in word.chars() {
                let w = char_width(c);
                if row_width + w > width {
                    add(rows.last_mut().expect("a row"), std::mem::take(&mut chunk), style);
                    rows.push(Vec::new());
                    row_width = 0;
                }
                chunk.push(c);
                row_width += w;
            }
            add(rows.last_mut().expect("a row"), chunk, style);
        }
    }
    for row in &mut rows {
        if let Some((last, _)) = row.last_mut() {
            last.truncate(last.trim_end().len());
        }
        row.retain(|(text, _)| !text.is_empty());
    }
    rows
}

/// Appends `text` to a row, to its last piece if that has the same style.
fn add<T: PartialEq>(row: &mut Vec<(String, T)>, text: String, style: T) {
    match row.last_mut() {
        Some((last, last_style)) if *last_style == style => last.push_str(&text),
        _ => row.push((text, style)),
    }
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
    fn styled_pieces_wrap_between_words_and_keep_their_styles() {
        let rows = wrap_styled(&[("ana @ lab", 1), (" │ cannot keep unsent messages on disk", 2)], 16);
        let text: Vec<String> =
            rows.iter().map(|row| row.iter().map(|(t, _)| t.as_str()).collect()).collect();
        assert_eq!(text, ["ana @ lab │", "cannot keep", "unsent messages", "on disk"]);
        assert_eq!(rows[0], [("ana @ lab".to_owned(), 1), (" │".to_owned(), 2)]);
        assert!(rows[1..].iter().flatten().all(|(_, style)| *style == 2));
        assert_eq!(wrap_styled(&[("abcdefghij", 0)], 4).len(), 3, "a long word is broken");
    }

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
