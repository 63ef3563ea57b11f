//! The shortcut list shown by the help overlay (and checked against the README by a test).

/// Every shortcut of the chat screen: key, then what it does.
pub const HELP: &[(&str, &str)] = &[
    ("Enter", "send the message, or run a /command"),
    ("Alt+Enter", "new line in the message"),
    ("Tab", "move focus between contacts and input"),
    ("Ctrl+N / Alt+Down", "next contact"),
    ("Ctrl+P / Alt+Up", "previous contact"),
    ("Alt+1..9", "jump to the n-th contact (numbered in the list)"),
    ("Ctrl+K", "quick switch: fuzzy-find any user"),
    ("Alt+A", "next conversation with unread messages"),
    ("Ctrl+F", "search messages; Tab: only this conversation"),
    ("PageUp / PageDown", "scroll the conversation (or the mouse wheel)"),
    ("End / Ctrl+End", "jump to the newest message"),
    ("Up / Down", "move between lines of the message; on a one-line message, recall earlier inputs"),
    ("PageUp PageDown Home End", "in the contacts pane: page through the list, first, last"),
    ("Left Right Home End", "move in the input (also Ctrl+A / Ctrl+E)"),
    ("Ctrl+W / Ctrl+U", "delete a word / everything before the cursor"),
    ("/msg NAME [text]", "open a conversation with a user or a #group, and send text if given"),
    ("/help  /quit", "show this help; log out and quit"),
    ("/search [--here] TEXT", "search messages, or only this conversation"),
    ("/mute  /unmute [USER]", "silence a conversation (⊘ in the list), or ring again"),
    ("/passwd", "change your password"),
    ("? / F1", "show this help (? on an empty input; arrows and PageDown scroll it)"),
    ("Esc", "close a box, dismiss the banner"),
    ("Ctrl+C", "log out and quit, from any screen"),
];
