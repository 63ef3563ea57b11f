//! `Search`: a page of the messages of the caller's own conversations that contain a text.
//!
//! The store does the reading ([`crate::store::Store::search`]: straight from sled, never
//! through the committer, and a bounded number of messages per request); here the request
//! is checked and the page cut to what one frame carries. The caller's own name is the only
//! owner ever searched, so no request can reach someone else's conversations.

use papo_protocol::{ErrorCode, ErrorReply, MessageId, Reply, SearchPage, MAX_SEARCH_PAGE, MAX_SEARCH_QUERY};

use super::{chat, Context, Handled, Identity};
use crate::errors;

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
    let with = with.map(|peer| chat::registered_user(ctx, peer)).transpose()?;
    let limit = limit.clamp(1, MAX_SEARCH_PAGE) as usize;
    let found = ctx
        .store
        .search(&me.name, query, with.as_ref(), before, limit)
        .map_err(|e| errors::from_store(&e))?;
    Ok(Handled::reply(Reply::Search(fit(SearchPage { hits: found.hits, next_before: found.next_before }))))
}

/// Cuts a page whose bodies pass [`SEARCH_PAGE_BYTES`] after the last match that fits (at
/// least one), and says to go on from there.
fn fit(mut page: SearchPage) -> SearchPage {
    let mut bytes = 0;
    let over = page.hits.iter().position(|hit| {
        bytes += hit.body.len();
        bytes > SEARCH_PAGE_BYTES
    });
    if let Some(over) = over {
        page.hits.truncate(over.max(1));
        page.next_before = page.hits.last().map(|hit| hit.id);
    }
    page
}

#[cfg(test)]
mod tests;
