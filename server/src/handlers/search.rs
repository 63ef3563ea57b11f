//! `Search`: a page of the messages of the caller's own conversations (direct ones and the
//! groups they are in) that contain a text.
//!
//! The store does the reading ([`crate::store::Store::search`]: straight from sled, never
//! through the committer, and a bounded number of messages per request); here the request
//! is checked and the page cut to what one frame carries. The caller's own name is the only
//! owner ever searched, and a group only as its member sees it (a non-member gets the same
//! error as for a group that does not exist), so no request can reach someone else's
//! conversations.

use papo_protocol::{
    ErrorCode, ErrorReply, GroupName, MessageId, Reply, SearchPage, MAX_SEARCH_PAGE, MAX_SEARCH_QUERY,
};

use super::{chat, groups, Context, Handled, Identity};
use crate::errors;
use crate::store::SearchIn;

/// Body bytes one page of matches carries at most, as a history page, so it fits a frame.
const SEARCH_PAGE_BYTES: usize = 48 * 1024;

/// One page of matches, newest first.
pub(super) fn search(
    ctx: &Context<'_>,
    me: &Identity,
    query: &str,
    with: Option<&str>,
    before: Option<MessageId>,
    limit: u32,
) -> Result<Handled, ErrorReply> {
    if query.trim().is_empty() {
        return Err(ErrorReply::new(ErrorCode::InvalidRequest, "type something to search for"));
    }
    if query.len() > MAX_SEARCH_QUERY {
        return Err(ErrorReply::new(
            ErrorCode::TooLarge,
            format!("the search text has {} bytes; the limit is {MAX_SEARCH_QUERY}", query.len()),
        ));
    }
    let limit = limit.clamp(1, MAX_SEARCH_PAGE) as usize;
    let found = match with {
        Some(group) if GroupName::is_group(group) => {
            let membership = groups::member_of(ctx, me, group)?;
            ctx.store.search(&me.name, query, SearchIn::Group(&membership), before, limit)
        }
        Some(peer) => {
            let peer = chat::registered_user(ctx, peer)?;
            ctx.store.search(&me.name, query, SearchIn::User(&peer), before, limit)
        }
        None => ctx.store.search(&me.name, query, SearchIn::Everything, before, limit),
    }
    .map_err(|e| errors::from_store(&e))?;
    let page = SearchPage { hits: found.hits, group_hits: found.group_hits, next_before: found.next_before };
    Ok(Handled::reply(Reply::Search(fit(page))))
}

/// Cuts a page whose bodies pass [`SEARCH_PAGE_BYTES`] after the newest matches that fit
/// (at least one), and says to go on from there.
fn fit(mut page: SearchPage) -> SearchPage {
    let mut bodies: Vec<(MessageId, usize)> = page.hits.iter().map(|hit| (hit.id, hit.body.len())).collect();
    bodies.extend(page.group_hits.iter().map(|hit| (hit.id, hit.body.len())));
    bodies.sort_unstable_by(|a, b| b.cmp(a));
    let mut bytes = 0;
    let over = bodies.iter().position(|&(_, len)| {
        bytes += len;
        bytes > SEARCH_PAGE_BYTES
    });
    if let Some(over) = over {
        let oldest_kept = bodies[over.max(1) - 1].0;
        page.hits.retain(|hit| hit.id >= oldest_kept);
        page.group_hits.retain(|hit| hit.id >= oldest_kept);
        page.next_before = Some(oldest_kept);
    }
    page
}

#[cfg(test)]
mod tests;
