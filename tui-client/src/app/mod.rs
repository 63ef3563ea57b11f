//! The full-screen app, Elm-style: [`Model`] is the state, [`update`] applies a [`Msg`] and
//! returns network commands, [`view`] draws the model and does nothing else.

mod editor;
mod fuzzy;
mod group_commands;
mod history;
pub mod keys;
mod mention;
mod model;
mod search;
mod unlisted;
mod unread;
mod update;
mod view;
mod wrap;

pub use model::{
    Alert, ContactEntry, ConvKey, Conversation, Delivery, Focus, GroupDelivery, HelpState, LoginField,
    LoginMode, Look, Model, Overlay, PasswordForm, Post, Roster, Screen, SearchHit, SearchState,
};
pub use update::{update, Msg};
pub use view::view;
