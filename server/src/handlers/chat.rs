//! Messaging: `Send` (queued, then settled once durable), `History`, `Contacts`,
//! `MarkRead`, `Delivered`, and who gets a stored message live. Each of the first four
//! hands a `#group` to [`super::groups`].

use std::collections::BTreeMap;

use papo_protocol::{
    Contact, ContactPage, ErrorCode, ErrorReply, Event, GroupName, MessageId, ReceiptKind, Reply, Username,
    MAX_BODY_LEN, MAX_HISTORY_PAGE,
};

use super::{groups, Audience, Context, Delivery, Handled, Identity, Outcome};
use crate::errors;
use crate::store::{AccountStatus, AppendAnswers, Appended, GroupId, MemberNames, Posted, StoreError};

/// Contacts per page; with names and previews this stays well inside one frame.
const CONTACTS_PAGE: usize = 256;

/// Body bytes one history page carries at most, so a page of long messages fits a frame.
const HISTORY_PAGE_BYTES: usize = 48 * 1024;

/// Queues a message with the store; [`settle`] turns the store's answer into the reply.
pub(super) fn send(
    ctx: &Context<'_>,
    me: &Identity,
    to: &str,
    body: &str,
    client_msg_id: u64,
    appends: &dyn AppendAnswers,
) -> Result<Handled, ErrorReply> {
    if GroupName::is_group(to) {
        return groups::send(ctx, me, to, body, client_msg_id, appends);
    }
    let to = existing_user(ctx, to)?;
    if to == me.name {
        return Err(ErrorReply::new(ErrorCode::InvalidRequest, "you cannot send a message to yourself"));
    }
    check_body(body)?;
    check_rate(ctx, me)?;
    ctx.store
        .append(&me.name, &to, body, client_msg_id, ctx.clock.now_millis(), appends)
        .map_err(|e| errors::from_store(&e))?;
    Ok(Handled::queued())
}

/// Refuses an empty body or one over the limit.
pub(super) fn check_body(body: &str) -> Result<(), ErrorReply> {
    if body.is_empty() {
        return Err(ErrorReply::new(ErrorCode::InvalidRequest, "the message is empty"));
    }
    if body.len() > MAX_BODY_LEN {
        return Err(ErrorReply::new(
            ErrorCode::TooLarge,
            format!("the message has {} bytes; the limit is {MAX_BODY_LEN}", body.len()),
        ));
    }
    Ok(())
}

/// Takes one message from the sender's allowance. Nobody types twenty messages a second; a
/// flood would fill the recipients' screens and the committer's queue for everyone else.
/// Refused means not stored: the client resends.
pub(super) fn check_rate(ctx: &Context<'_>, me: &Identity) -> Result<(), ErrorReply> {
    ctx.limits.message(&me.name, ctx.clock.instant()).map_err(|wait| {
        ErrorReply::new(
            ErrorCode::RateLimited,
            format!("you are sending too fast; wait {} ms and send again", wait.as_millis().max(1)),
        )
    })
}

/// A settled send: its reply, and the message to deliver if it was stored just now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Acknowledged {
    pub reply: Outcome,
    pub deliver: Option<Posted>,
}

/// What to answer a send once the store has settled it; `None` if the store stopped before
/// answering, when the outcome is unknown and no reply may claim either way (the client
/// resends with the same client id after reconnecting).
pub(crate) fn settle(settled: Result<Appended, StoreError>) -> Option<Acknowledged> {
    let sent = |message: &Posted| Ok(Reply::Sent { id: message.id(), sent_at: message.sent_at() });
    Some(match settled {
        Ok(Appended::New(message)) => Acknowledged { reply: sent(&message), deliver: Some(message) },
        Ok(Appended::Resent(message)) => Acknowledged { reply: sent(&message), deliver: None },
        Ok(Appended::Reused { original }) => Acknowledged {
            reply: Err(ErrorReply::new(
                ErrorCode::InvalidRequest,
                format!("this client_msg_id was already used for another message (id {original}); nothing was stored"),
            )),
            deliver: None,
        },
        Ok(Appended::Refused(refusal)) => Acknowledged { reply: Err(groups::refusal(&refusal)), deliver: None },
        Err(StoreError::Stopped) => return None,
        Err(e) => Acknowledged { reply: Err(errors::from_store(&e)), deliver: None },
    })
}

/// Who gets durable messages of one sender live: each recipient's sessions, and each
/// group's members, in one write per recipient and group, and the sender's other sessions,
/// all of them in order.
pub(crate) fn deliveries(store: &dyn MemberNames, messages: Vec<Posted>) -> Vec<Delivery> {
    let Some(sender) = messages.first().map(|posted| match posted {
        Posted::Direct(message) => message.from.clone(),
        Posted::Group { message, .. } => message.from.clone(),
    }) else {
        return Vec::new();
    };
    let mut own = Vec::with_capacity(messages.len());
    let mut by_recipient: BTreeMap<Username, Vec<Event>> = BTreeMap::new();
    let mut by_group: BTreeMap<GroupId, Vec<Event>> = BTreeMap::new();
    for posted in messages {
        let (event, events) = match posted {
            Posted::Direct(message) => {
                let to = by_recipient.entry(message.to.clone()).or_default();
                (Event::Message(message), to)
            }
            Posted::Group { group, message } => {
                (Event::GroupMessage(message), by_group.entry(group).or_default())
            }
        };
        events.push(event.clone());
        own.push(event);
    }
    let mut deliveries: Vec<Delivery> = by_recipient
        .into_iter()
        .map(|(user, events)| Delivery { to: Audience::User(user), events })
        .collect();
    deliveries.extend(
        by_group
            .into_iter()
            .filter_map(|(group, events)| groups::members_delivery(store, group, &sender, events)),
    );
    deliveries.push(Delivery { to: Audience::OwnOtherSessions, events: own });
    deliveries
}

/// A page of one conversation.
pub(super) fn history(
    ctx: &Context<'_>,
    me: &Identity,
    with: &str,
    before: Option<MessageId>,
    limit: u32,
) -> Result<Handled, ErrorReply> {
    if GroupName::is_group(with) {
        return groups::history(ctx, me, with, before, limit);
    }
    let peer = registered_user(ctx, with)?;
    let limit = limit.clamp(1, MAX_HISTORY_PAGE) as usize;
    let mut page = ctx.store.history(&me.name, &peer, before, limit).map_err(|e| errors::from_store(&e))?;
    page.more |= fit_page(&mut page.messages, |m| m.body.len());
    Ok(Handled::reply(Reply::History(page)))
}

/// Cuts a page, newest first, before its bodies pass [`HISTORY_PAGE_BYTES`] (keeping at least
/// one), so it fits a frame; whether it cut.
pub(super) fn fit_page<T>(messages: &mut Vec<T>, body_len: impl Fn(&T) -> usize) -> bool {
    let mut bytes = 0;
    let Some(fits) = messages.iter().position(|m| {
        bytes += body_len(m);
        bytes > HISTORY_PAGE_BYTES
    }) else {
        return false;
    };
    messages.truncate(fits.max(1));
    true
}

/// A page of contacts, and a subscription to presence changes and new accounts.
pub(super) fn contacts(ctx: &Context<'_>, me: &Identity, after: Option<&str>) -> Result<Handled, ErrorReply> {
    // Subscribed before reading who is online, so no change falls between the two.
    ctx.hub.subscribe_presence(&me.name, ctx.session);
    let after = after.map(Username::parse).transpose().map_err(|e| invalid_name(&e))?;
    let (names, more) =
        ctx.store.users_after(after.as_ref(), CONTACTS_PAGE + 1).map_err(|e| errors::from_store(&e))?;
    let mut contacts = Vec::with_capacity(names.len());
    for name in names.into_iter().filter(|name| *name != me.name) {
        if contacts.len() == CONTACTS_PAGE {
            break;
        }
        let summary = ctx.store.summary(&me.name, &name).map_err(|e| errors::from_store(&e))?;
        let deleted = ctx
            .store
            .user(&name)
            .map_err(|e| errors::from_store(&e))?
            .is_some_and(|record| record.status == AccountStatus::Deleted);
        let online = ctx.hub.is_online(&name);
        // When they left is shown only while they are away.
        let last_seen =
            if online { None } else { ctx.store.last_seen(&name).map_err(|e| errors::from_store(&e))? };
        contacts.push(Contact {
            name,
            online,
            unread: summary.unread,
            last: summary.last.map(Into::into),
            last_seen,
            deleted,
        });
    }
    let next_after = if more || contacts.len() == CONTACTS_PAGE {
        contacts.last().map(|contact| contact.name.clone())
    } else {
        None
    };
    Ok(Handled::reply(Reply::Contacts(ContactPage { contacts, next_after })))
}

/// Marks a conversation read and sends the peer a read receipt.
pub(super) fn mark_read(
    ctx: &Context<'_>,
    me: &Identity,
    with: &str,
    up_to: MessageId,
) -> Result<Handled, ErrorReply> {
    if GroupName::is_group(with) {
        return groups::mark_read(ctx, me, with, up_to);
    }
    let peer = registered_user(ctx, with)?;
    let moved = ctx.store.mark_read(&me.name, &peer, up_to).map_err(|e| errors::from_store(&e))?;
    Ok(Handled::reply(Reply::Done).delivering(receipts(me, peer, ReceiptKind::Read, moved)))
}

/// Confirms received messages and sends their sender a delivered receipt.
pub(super) fn delivered(
    ctx: &Context<'_>,
    me: &Identity,
    from: &str,
    up_to: MessageId,
) -> Result<Handled, ErrorReply> {
    if GroupName::is_group(from) {
        return groups::delivered(ctx, me, from, up_to);
    }
    let sender = registered_user(ctx, from)?;
    let moved = ctx.store.mark_delivered(&me.name, &sender, up_to).map_err(|e| errors::from_store(&e))?;
    Ok(Handled::reply(Reply::Done).delivering(receipts(me, sender, ReceiptKind::Delivered, moved)))
}

/// If a watermark moved to `up_to`: tells `sender` how far this user got with their
/// messages, and this user's other sessions that this one got there, so they all show the
/// same unread counts.
fn receipts(me: &Identity, sender: Username, kind: ReceiptKind, up_to: Option<MessageId>) -> Vec<Delivery> {
    let Some(up_to) = up_to else { return Vec::new() };
    vec![
        Delivery {
            to: Audience::User(sender.clone()),
            events: vec![Event::Receipt { peer: me.name.clone(), kind, up_to }],
        },
        Delivery {
            to: Audience::OwnOtherSessions,
            events: vec![Event::OwnReceipt { peer: sender, kind, up_to }],
        },
    ]
}

/// The account called `raw`, to send to or act on: a deleted one is refused.
pub(super) fn existing_user(ctx: &Context<'_>, raw: &str) -> Result<Username, ErrorReply> {
    let name = Username::parse(raw).map_err(|e| invalid_name(&e))?;
    if ctx.store.user_exists(&name).map_err(|e| errors::from_store(&e))? {
        return Ok(name);
    }
    if ctx.store.user_was_registered(&name).map_err(|e| errors::from_store(&e))? {
        return Err(ErrorReply::new(
            ErrorCode::UnknownUser,
            format!("the account {name} was deleted; its messages stay, but nothing can be sent to it"),
        ));
    }
    Err(ErrorReply::new(ErrorCode::UnknownUser, format!("there is no user called {name}")))
}

/// The account called `raw`, to read a conversation with: a deleted one's history stays.
pub(super) fn registered_user(ctx: &Context<'_>, raw: &str) -> Result<Username, ErrorReply> {
    let name = Username::parse(raw).map_err(|e| invalid_name(&e))?;
    if !ctx.store.user_was_registered(&name).map_err(|e| errors::from_store(&e))? {
        return Err(ErrorReply::new(ErrorCode::UnknownUser, format!("there is no user called {name}")));
    }
    Ok(name)
}

pub(super) fn invalid_name(error: &papo_protocol::InvalidName) -> ErrorReply {
    ErrorReply::new(ErrorCode::InvalidName, format!("invalid name: {error}"))
}

#[cfg(test)]
mod tests;
