//! `papo`, the Papo chat client, as a library so its pieces can be tested: the Elm-style
//! [`app`], the [`net`] thread, the scriptable [`commands`], the [`settings`] it keeps and
//! the servers it trusts ([`known_servers`]).

pub mod app;
pub mod commands;
pub mod known_servers;
pub mod net;
pub mod settings;
pub mod tui;
