//! Searching a user's own conversations, direct ones and the groups they are in, for a
//! text, newest first.
//!
//! There is no index: a search reads messages newest first, conversation by conversation
//! merged by id, and keeps those whose text contains the query, ignoring case. So that no
//! request costs time in proportion to a long history, one request reads at most
//! [`SEARCH_BUDGET`] messages; if the page is not full by then, it says where it stopped,
//! and the client asks again from there. Searches read sled directly, never through the
//! committer, so they cannot delay anyone's messages.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use papo_protocol::{ChatMessage, GroupMessage, GroupName, MessageId, Username};

use super::groups::{group_line, Membership};
use super::{keys, to_message, Result, Store};

/// Messages one search request reads at most.
pub const SEARCH_BUDGET: usize = 50_000;

/// A page of matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// Matches of direct conversations, newest first.
    pub hits: Vec<ChatMessage>,
    /// Matches of groups, newest first; with `hits`, one page.
    pub group_hits: Vec<GroupMessage>,
    /// Where to go on (search again with `before` set to this); `None` when every message
    /// older than the page was read.
    pub next_before: Option<MessageId>,
}

/// Which conversations a search reads.
#[derive(Debug, Clone, Copy)]
pub enum SearchIn<'a> {
    /// Every direct conversation of the user and every group they are in.
    Everything,
    /// Only the direct conversation with this user.
    User(&'a Username),
    /// Only this group, as its member sees it.
    Group(&'a Membership),
}

/// A message read by a search, from either kind of conversation.
enum Found {
    Direct(ChatMessage),
    Group(GroupMessage),
}

impl Found {
    fn id(&self) -> MessageId {
        match self {
            Self::Direct(message) => message.id,
            Self::Group(line) => line.id,
        }
    }

    fn body(&self) -> &str {
        match self {
            Self::Direct(message) => &message.body,
            Self::Group(line) => &line.body,
        }
    }
}

/// One conversation's messages older than the search's start, newest first.
struct Source<'a> {
    lines: sled::Iter,
    /// The group's name, for a group; `None` for a direct conversation.
    group: Option<&'a GroupName>,
}

impl Source<'_> {
    fn next(&mut self) -> Result<Option<Found>> {
        let Some(entry) = self.lines.next_back() else { return Ok(None) };
        let (key, raw) = entry?;
        Ok(Some(match self.group {
            None => Found::Direct(to_message(&key, &raw)?),
            Some(group) => Found::Group(group_line(&key, &raw, group)?),
        }))
    }
}

impl Store {
    /// Messages of `user`'s conversations (all, or the one `scope` names) older than
    /// `before` whose text contains `query`, ignoring case; at most `limit`.
    pub fn search(
        &self,
        user: &Username,
        query: &str,
        scope: SearchIn<'_>,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<SearchPage> {
        let needle = query.to_lowercase();
        let end = before.unwrap_or(MessageId::MAX);
        let (peers, memberships) = match scope {
            SearchIn::Everything => {
                let mut memberships = Vec::new();
                for group in self.groups_of(user)? {
                    memberships.extend(self.membership_of(user, group)?);
                }
                (self.conversation_peers(user)?, memberships)
            }
            SearchIn::User(peer) => (vec![peer.clone()], Vec::new()),
            SearchIn::Group(membership) => (Vec::new(), vec![membership.clone()]),
        };
        let direct = peers.iter().map(|peer| Source {
            lines: self.trees.chat.range(keys::message(user, peer, 0)..keys::message(user, peer, end)),
            group: None,
        });
        let groups = memberships.iter().map(|Membership { id, group, member }| {
            // A member who joined a group that hides its past reads from their joining on.
            let oldest = if group.hide_history { member.joined_at } else { 0 };
            Source {
                lines: self.trees.chat.range(keys::group_line(*id, oldest)..keys::group_line(*id, end)),
                group: Some(&group.name),
            }
        });
        let mut sources: Vec<Source<'_>> = direct.chain(groups).collect();
        // Each conversation's newest message not yet read, and the heap of their ids.
        let mut heads: Vec<Option<Found>> = Vec::with_capacity(sources.len());
        let mut order = BinaryHeap::new();
        for (index, source) in sources.iter_mut().enumerate() {
            let head = source.next()?;
            if let Some(found) = &head {
                order.push((found.id(), Reverse(index)));
            }
            heads.push(head);
        }
        let mut page = SearchPage { hits: Vec::new(), group_hits: Vec::new(), next_before: None };
        let mut read = 0;
        while let Some((id, Reverse(index))) = order.pop() {
            if page.hits.len() + page.group_hits.len() == limit || read == SEARCH_BUDGET {
                page.next_before = Some(id + 1);
                break;
            }
            read += 1;
            let found = heads[index].take().expect("a conversation in the heap has a head");
            if found.body().to_lowercase().contains(&needle) {
                match found {
                    Found::Direct(message) => page.hits.push(message),
                    Found::Group(line) => page.group_hits.push(line),
                }
            }
            let next = sources[index].next()?;
            if let Some(found) = &next {
                order.push((found.id(), Reverse(index)));
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
