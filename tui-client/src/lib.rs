//! `papo`, the Papo chat client, as a library so its pieces can be tested: the Elm-style
//! [`app`], the [`net`] thread, the scriptable [`commands`] and the [`settings`] it keeps.

pub mod app;
pub mod commands;
pub mod net;
pub mod settings;
pub mod tui;
