//! The search box (Ctrl+F, `/search`): what is typed becomes a [`NetCommand::Search`], pages
//! of matches from direct conversations and groups arrive and are listed together newest
//! first, and Enter opens the conversation of one (a user's or a group's alike) at that
//! message, with its history loaded back to it. Esc closes the box; from a conversation
//! opened out of it, Esc comes back to the results.

use std::cmp::Reverse;

use papo_protocol::SearchPage;
use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::history::newest_height;
use super::model::{ConvKey, Model, Overlay, SearchHit, SearchState};
use super::update::{edit, fetch_older, history_size, select};
use crate::net::{NetCommand, SearchQuery};

/// Matches listed before the next page waits for the user to scroll down to it.
const ENOUGH: usize = 20;

/// Opens the search box, limited to the open conversation if `here`, and searches for
/// `text` at once if it is not empty.
pub(super) fn open(model: &mut Model, here: bool, text: &str, out: &mut Vec<NetCommand>) {
    let state = model.search.get_or_insert_with(|| SearchState {
        input: Default::default(),
        here: None,
        ran: None,
        hits: Vec::new(),
        next_before: None,
        loading: false,
        selected: 0,
        error: None,
    });
    if here {
        state.here = model.selected.clone();
    }
    if !text.is_empty() {
        state.input.set(text);
    }
    model.overlay = Some(Overlay::Search);
    model.from_search = false;
    if !text.is_empty() {
        run(model, out);
    }
}

/// Keys while the search box is open.
pub(super) fn key(model: &mut Model, key: KeyEvent, out: &mut Vec<NetCommand>) {
    let selected = model.selected.clone();
    let Some(state) = &mut model.search else { return };
    model.overlay = Some(Overlay::Search);
    match key.code {
        KeyCode::Esc => model.overlay = None,
        KeyCode::Enter => {
            let typed = state.input.text().trim();
            let asked = state.ran.as_ref().is_some_and(|ran| ran.text == typed && ran.with == state.here);
            if asked && !state.hits.is_empty() {
                open_hit(model, out);
            } else {
                run(model, out);
            }
        }
        KeyCode::Tab => {
            state.here = if state.here.is_some() { None } else { selected };
            if state.ran.is_some() {
                run(model, out);
            }
        }
        KeyCode::Down => move_selection(model, 1, out),
        KeyCode::Up => move_selection(model, -1, out),
        KeyCode::PageDown => move_selection(model, 10, out),
        KeyCode::PageUp => move_selection(model, -10, out),
        _ => {
            edit(&mut state.input, key);
        }
    }
}

/// Inserts pasted text into the search box (its first line: a search is one line).
pub(super) fn paste(model: &mut Model, text: &str) {
    if let Some(state) = &mut model.search {
        state.input.insert(text.lines().next().unwrap_or(""));
    }
}

fn move_selection(model: &mut Model, step: isize, out: &mut Vec<NetCommand>) {
    let Some(state) = &mut model.search else { return };
    let last = state.hits.len().saturating_sub(1);
    state.selected = state.selected.saturating_add_signed(step).min(last);
    if state.selected + 1 >= state.hits.len() {
        more(state, out);
    }
}

/// Starts the search that is typed, from the newest message.
fn run(model: &mut Model, out: &mut Vec<NetCommand>) {
    let Some(state) = &mut model.search else { return };
    let text = state.input.text().trim().to_owned();
    state.hits.clear();
    state.selected = 0;
    state.next_before = None;
    state.error = None;
    if text.is_empty() {
        state.ran = None;
        state.error = Some("type what to look for".into());
        return;
    }
    let query = SearchQuery { text, with: state.here.clone(), before: None };
    state.ran = Some(query.clone());
    state.loading = true;
    out.push(NetCommand::Search(query));
}

/// Asks for the next page, if there is one and none is on its way.
fn more(state: &mut SearchState, out: &mut Vec<NetCommand>) {
    let (Some(ran), Some(before)) = (&state.ran, state.next_before) else { return };
    if state.loading {
        return;
    }
    state.loading = true;
    out.push(NetCommand::Search(SearchQuery { before: Some(before), ..ran.clone() }));
}

/// A page of matches: listed if it belongs to the search shown, and followed by the next
/// page while the list is short (a page may come back empty when the server stopped at its
/// reading budget).
pub(super) fn results(model: &mut Model, query: &SearchQuery, page: SearchPage, out: &mut Vec<NetCommand>) {
    let (Some(state), Some(me)) = (&mut model.search, &model.me) else { return };
    if !state.ran.as_ref().is_some_and(|ran| ran.text == query.text && ran.with == query.with) {
        return; // An answer to a search the user has since replaced.
    }
    state.loading = false;
    // Both lists hold the matches of one range of ids, and the next page starts below it:
    // so the page sorted newest first continues the list.
    let mut hits: Vec<SearchHit> =
        page.hits.into_iter().map(|message| SearchHit::direct(message, me)).collect();
    hits.extend(page.group_hits.into_iter().map(SearchHit::from));
    hits.sort_unstable_by_key(|hit| Reverse(hit.id));
    state.hits.extend(hits);
    state.next_before = page.next_before;
    if state.hits.len() < ENOUGH {
        more(state, out);
    }
}

/// A page that failed: said in the box.
pub(super) fn failed(model: &mut Model, query: &SearchQuery, reason: String) {
    let Some(state) = &mut model.search else { return };
    if state.ran.as_ref().is_some_and(|ran| ran.text == query.text && ran.with == query.with) {
        state.loading = false;
        state.error = Some(reason);
    }
}

/// Opens the selected match's conversation at that message.
fn open_hit(model: &mut Model, out: &mut Vec<NetCommand>) {
    let Some(state) = &model.search else { return };
    let Some(hit) = state.hits.get(state.selected) else { return };
    let (peer, id) = (hit.conversation.clone(), hit.id);
    model.overlay = None;
    select(model, peer.clone(), out);
    let conversation = model.conversations.entry(peer.clone()).or_default();
    conversation.jump_to = Some(id);
    conversation.highlight = Some(id);
    conversation.marker_pending = 0;
    model.from_search = true;
    position(model, &peer, out);
}

/// Scrolls `peer`'s conversation so that the message it should jump to is in the middle,
/// once it is loaded; asks for older pages until it is.
pub(super) fn position(model: &mut Model, peer: &ConvKey, out: &mut Vec<NetCommand>) {
    let (width, height) = history_size(model);
    let (Some(me), offset) = (model.me.clone(), model.utc_offset) else { return };
    let Some(conversation) = model.conversations.get_mut(peer) else { return };
    let Some(target) = conversation.jump_to else { return };
    if conversation.loading {
        return;
    }
    let Ok(at) = conversation.messages.binary_search_by_key(&target, |m| m.id) else {
        if conversation.more {
            fetch_older(peer, conversation, out);
        } else {
            conversation.jump_to = None; // Not in this conversation any more.
        }
        return;
    };
    conversation.jump_to = None;
    let below = newest_height(conversation, &me, offset, width, conversation.messages.len() - at);
    conversation.scroll = below.saturating_sub(height / 2 + 1);
    conversation.new_below = 0;
}
