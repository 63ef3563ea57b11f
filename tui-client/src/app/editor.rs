//! A readline-style text field: the input box and the login form fields.

use unicode_width::UnicodeWidthStr;

use crate::sanitize;

/// Editable text with a cursor (a byte offset on a char boundary).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Editor {
    text: String,
    cursor: usize,
}

impl Editor {
    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether there is no text.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Whether the cursor is after the last character.
    pub fn at_end(&self) -> bool {
        self.cursor == self.text.len()
    }

    /// Replaces the text, with the cursor at its end.
    pub fn set(&mut self, text: &str) {
        text.clone_into(&mut self.text);
        self.cursor = self.text.len();
    }

    /// Empties the field and returns what it held.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    /// Inserts text at the cursor.
    pub fn insert(&mut self, text: &str) {
        self.text.insert_str(self.cursor, text);
        self.cursor += text.len();
    }

    /// Deletes the character before the cursor (Backspace).
    pub fn backspace(&mut self) {
        if let Some(prev) = self.prev_boundary() {
            self.text.replace_range(prev..self.cursor, "");
            self.cursor = prev;
        }
    }

    /// Deletes the character under the cursor (Delete).
    pub fn delete(&mut self) {
        if let Some(next) = self.next_boundary() {
            self.text.replace_range(self.cursor..next, "");
        }
    }

    /// Moves one character left.
    pub fn left(&mut self) {
        self.cursor = self.prev_boundary().unwrap_or(self.cursor);
    }

    /// Moves one character right.
    pub fn right(&mut self) {
        self.cursor = self.next_boundary().unwrap_or(self.cursor);
    }

    /// Moves to the start of the text (Home, Ctrl+A).
    pub fn home(&mut self) {
        self.cursor = 0;
    }

    /// Moves to the end of the text (End, Ctrl+E).
    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Deletes the word before the cursor, and the spaces after it (Ctrl+W).
    pub fn delete_word(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end_matches(char::is_whitespace);
        let start = trimmed.rfind(char::is_whitespace).map_or(0, |at| at + 1);
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Deletes everything before the cursor (Ctrl+U).
    pub fn delete_to_start(&mut self) {
        self.text.replace_range(..self.cursor, "");
        self.cursor = 0;
    }

    /// The cursor's line (counting `\n`) and its column in terminal cells.
    pub fn cursor_position(&self) -> (usize, usize) {
        let before = &self.text[..self.cursor];
        let line = before.matches('\n').count();
        let line_start = before.rfind('\n').map_or(0, |at| at + 1);
        (line, before[line_start..].width())
    }

    /// The text as drawn in a box `width` cells wide, and where the cursor is on it: each
    /// line wrapped at the width (a character never split; a line break starts a row), and
    /// every unsafe character drawn as its visible escape, so a pasted U+202E cannot reorder
    /// what is shown.
    pub fn layout(&self, width: usize) -> (Vec<String>, (usize, usize)) {
        let width = width.max(1);
        let mut rows = vec![String::new()];
        let mut column = 0;
        let mut cursor = None;
        for (at, c) in self.text.char_indices() {
            if c == '\n' {
                if at == self.cursor {
                    cursor = Some((rows.len() - 1, column));
                }
                rows.push(String::new());
                column = 0;
                continue;
            }
            let shown = sanitize::shown_char(c);
            let cells = shown.width();
            if column + cells > width && column > 0 {
                rows.push(String::new());
                column = 0;
            }
            if at == self.cursor {
                cursor = Some((rows.len() - 1, column));
            }
            rows.last_mut().expect("at least one row").push_str(&shown);
            column += cells;
        }
        let cursor = cursor.unwrap_or_else(|| {
            // After the last character: on a new row if that one is full.
            if column >= width {
                rows.push(String::new());
                (rows.len() - 1, 0)
            } else {
                (rows.len() - 1, column)
            }
        });
        (rows, cursor)
    }

    /// How many lines the text has (a trailing line break starts an empty last line).
    pub fn line_count(&self) -> usize {
        self.text.split('\n').count()
    }

    /// Moves to the line above at the same column (in cells); `false` on the first line.
    pub fn up(&mut self) -> bool {
        let (line, column) = self.cursor_position();
        if line == 0 {
            return false;
        }
        self.cursor = self.line_start(line - 1) + self.byte_at_column(line - 1, column);
        true
    }

    /// Moves to the line below at the same column (in cells); `false` on the last line.
    pub fn down(&mut self) -> bool {
        let (line, column) = self.cursor_position();
        if line + 1 >= self.line_count() {
            return false;
        }
        self.cursor = self.line_start(line + 1) + self.byte_at_column(line + 1, column);
        true
    }

    fn line_start(&self, line: usize) -> usize {
        self.text.split('\n').take(line).map(|l| l.len() + 1).sum()
    }

    /// The byte offset in line `line` of the last character boundary at most `column`
    /// cells from its start.
    fn byte_at_column(&self, line: usize, column: usize) -> usize {
        let text = self.text.split('\n').nth(line).unwrap_or("");
        let mut width = 0;
        for (at, c) in text.char_indices() {
            width += c.to_string().width();
            if width > column {
                return at;
            }
        }
        text.len()
    }

    fn prev_boundary(&self) -> Option<usize> {
        self.text[..self.cursor].char_indices().next_back().map(|(at, _)| at)
    }

    fn next_boundary(&self) -> Option<usize> {
        self.text[self.cursor..].chars().next().map(|c| self.cursor + c.len_utf8())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn editor(text: &str) -> Editor {
        let mut editor = Editor::default();
        editor.set(text);
        editor
    }

    #[test]
    fn edits_at_the_cursor_across_multibyte_characters() {
        let mut e = editor("olá 👋");
        e.left();
        e.backspace();
        assert_eq!(e.text(), "olá👋");
        e.home();
        e.delete();
        e.insert("O");
        assert_eq!(e.text(), "Olá👋");
        e.end();
        e.backspace();
        assert_eq!(e.text(), "Olá");
    }

    #[test]
    fn ctrl_w_and_ctrl_u_delete_backwards() {
        let mut e = editor("send this  now  ");
        e.delete_word();
        assert_eq!(e.text(), "send this  ");
        e.delete_word();
        assert_eq!(e.text(), "send ");
        e.insert("x y");
        e.left();
        e.delete_to_start();
        assert_eq!((e.text(), e.at_end()), ("y", false));
    }

    #[test]
    fn up_and_down_move_by_line_keeping_the_column() {
        let mut e = editor("first line\n日本\nthird");
        assert!(!e.down());
        assert!(e.up());
        assert_eq!(e.cursor_position(), (1, 4));
        assert!(e.up());
        assert_eq!(e.cursor_position(), (0, 4));
        assert!(!e.up());
        e.home();
        assert!(e.down() && e.down());
        assert_eq!(e.cursor_position(), (2, 0));
        assert_eq!(editor("one\n").line_count(), 2);
    }

    #[test]
    fn layout_wraps_by_cells_and_shows_invisible_characters() {
        let (rows, cursor) = editor("abcdef\n日本語").layout(4);
        assert_eq!(rows, ["abcd", "ef", "日本", "語"]);
        assert_eq!(cursor, (3, 2));
        let mut e = editor("/msg ev\u{202e}il\u{2028}x hi");
        e.home();
        let (rows, cursor) = e.layout(80);
        assert_eq!(rows, ["/msg ev\\u{202e}il\\u{2028}x hi"]);
        assert_eq!(cursor, (0, 0));
        assert_eq!(editor("abcd").layout(4), (vec!["abcd".to_owned(), String::new()], (1, 0)));
    }

    #[test]
    fn cursor_column_counts_cells_not_bytes() {
        let e = editor("日本\n語👋x");
        assert_eq!(e.cursor_position(), (1, 5));
    }
}
