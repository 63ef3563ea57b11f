//! Searching a user's own conversations for a text, newest first.
//!
//! There is no index: a search reads messages newest first, conversation by conversation
//! merged by id, and keeps those whose text contains the query, ignoring case. So that no
//! request costs time in proportion to a long history, one request reads at most
//! [`SEARCH_BUDGET`] messages; if the page is not full by then, it says where it stopped,
//! and the client asks again from there. Searches read sled directly, never through the
//! committer, so they cannot delay anyone's messages.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Bound;

use papo_protocol::{ChatMessage, MessageId, Username};

use super::{keys, to_message, Result, Store};

/// Messages one search request reads at most.
pub const SEARCH_BUDGET: usize = 50_000;

/// A page of matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// Matches, newest first.
    pub hits: Vec<ChatMessage>,
    /// Where to go on (search again with `before` set to this); `None` when every message
    /// older than the page was read.
    pub next_before: Option<MessageId>,
}

impl Store {
    /// Messages of `user`'s conversations (or only the one with `with`) older than `before`
    /// whose text contains `query`, ignoring case; at most `limit`.
    pub fn search(
        &self,
        user: &Username,
        query: &str,
        with: Option<&Username>,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<SearchPage> {
        let needle = query.to_lowercase();
        let peers = match with {
            Some(peer) => vec![peer.clone()],
            None => self.conversation_peers(user)?,
        };
        let end = before.unwrap_or(MessageId::MAX);
        let mut conversations: Vec<_> = peers
            .iter()
            .map(|peer| {
                let range = (
                    Bound::Included(keys::message(user, peer, 0)),
                    Bound::Excluded(keys::message(user, peer, end)),
                );
                self.trees.chat.range(range).rev()
            })
            .collect();
        // Each conversation's newest message not yet read, and the heap of their ids.
        let mut heads: Vec<Option<ChatMessage>> = Vec::with_capacity(conversations.len());
        let mut order = BinaryHeap::new();
        for (index, conversation) in conversations.iter_mut().enumerate() {
            let head = next_message(conversation)?;
            if let Some(message) = &head {
                order.push((message.id, Reverse(index)));
            }
            heads.push(head);
        }
        let mut page = SearchPage { hits: Vec::new(), next_before: None };
        let mut read = 0;
        while let Some((id, Reverse(index))) = order.pop() {
            if page.hits.len() == limit || read == SEARCH_BUDGET {
                page.next_before = Some(id + 1);
                break;
            }
            read += 1;
            let message = heads[index].take().expect("a conversation in the heap has a head");
            if message.body.to_lowercase().contains(&needle) {
                page.hits.push(message);
            }
            let next = next_message(&mut conversations[index])?;
            if let Some(message) = &next {
                order.push((message.id, Reverse(index)));
            }
            heads[index] = next;
        }
        Ok(page)
    }

    /// Everyone `user` has a conversation with.
    fn conversation_peers(&self, user: &Username) -> Result<Vec<Username>> {
        let prefix = keys::summary_prefix(user);
        let mut peers = Vec::new();
        for key in self.trees.chat.scan_prefix(&prefix).keys() {
            let key = key?;
            peers.extend(keys::summary_peer(&prefix, &key));
        }
        Ok(peers)
    }
}

fn next_message(
    conversation: &mut impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
) -> Result<Option<ChatMessage>> {
    match conversation.next() {
        Some(entry) => {
            let (key, raw) = entry?;
            Ok(Some(to_message(&key, &raw)?))
        }
        None => Ok(None),
    }
}
