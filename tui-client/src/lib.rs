//! `papo`, the Papo chat client, as a library so its pieces can be tested: the Elm-style
//! [`app`], the [`net`] thread, the scriptable [`commands`] (and [`group_cli`] for groups), the [`settings`] it keeps and
//! the servers it trusts ([`known_servers`]) and finds on the LAN ([`discover`], offered by the [`server_picker`]), what a conversation is with ([`conv_key`]), and the one [`sanitize`]r every string from the
//! network passes before it reaches a terminal.

pub mod app;
pub mod commands;
pub mod conv_key;
pub mod discover;
pub mod escapes;
pub mod group_cli;
pub mod known_servers;
pub mod net;
pub mod outbox;
pub mod sanitize;
pub mod server_picker;
pub mod settings;
pub mod tui;
