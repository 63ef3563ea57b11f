//! Messaging requests: `Send`, `History`, `Contacts`, `MarkRead`, `Delivered`, and live delivery.

use std::collections::BTreeMap;

use papo_protocol::{
    ChatMessage, Contact, ContactPage, ErrorCode, ErrorReply, Event, MessageId, ReceiptKind, Reply,
    ServerFrame, Username, MAX_BODY_LEN, MAX_HISTORY_PAGE,
};

use crate::clock::now_millis;
use crate::session::{encode, encode_into, internal, Outcome, Session};

/// Contacts per page; with names and previews this stays well inside one frame.
const CONTACTS_PAGE: usize = 256;

/// Body bytes one history page carries at most, so a page of long messages fits a frame.
const HISTORY_PAGE_BYTES: usize = 48 * 1024;

/// Queues a message for storing; the session acknowledges it once it is durable.
pub(crate) fn send(
    session: &Session<'_>,
    to: &str,
    body: &str,
    client_msg_id: u64,
) -> Result<(), ErrorReply> {
    let me = logged_in(session);
    let to = existing_user(session, to)?;
    if to == *me {
        return Err(ErrorReply::new(ErrorCode::InvalidRequest, "you cannot send a message to yourself"));
    }
    if body.is_empty() {
        return Err(ErrorReply::new(ErrorCode::InvalidRequest, "the message is empty"));
    }
    if body.len() > MAX_BODY_LEN {
        return Err(ErrorReply::new(
            ErrorCode::TooLarge,
            format!("the message has {} bytes; the limit is {MAX_BODY_LEN}", body.len()),
        ));
    }
    let store = &session.shared.store;
    store.append(me, &to, body, client_msg_id, now_millis(), &session.appends).map_err(|e| internal(&e))
}

/// Pushes durable messages of this session's user to each recipient's sessions and to the
/// sender's other sessions, one write per connection.
pub(crate) fn deliver(session: &Session<'_>, messages: Vec<ChatMessage>) {
    if messages.is_empty() {
        return;
    }
    let mut by_recipient: BTreeMap<Username, Vec<u8>> = BTreeMap::new();
    let mut all = Vec::new();
    for message in messages {
        let frames = by_recipient.entry(message.to.clone()).or_default();
        let start = frames.len();
        encode_into(&ServerFrame::Event(Event::Message(message)), frames);
        all.extend_from_slice(&frames[start..]);
    }
    let hub = &session.shared.hub;
    for (recipient, frames) in &by_recipient {
        hub.send_to(recipient, frames, None);
    }
    hub.send_to(logged_in(session), &all, Some(session.id));
}

/// A page of one conversation.
pub(crate) fn history(session: &Session<'_>, with: &str, before: Option<MessageId>, limit: u32) -> Outcome {
    let me = logged_in(session);
    let peer = existing_user(session, with)?;
    let limit = limit.clamp(1, MAX_HISTORY_PAGE) as usize;
    let mut page = session.shared.store.history(me, &peer, before, limit).map_err(|e| internal(&e))?;
    let mut bytes = 0;
    if let Some(fits) = page.messages.iter().position(|m| {
        bytes += m.body.len();
        bytes > HISTORY_PAGE_BYTES
    }) {
        page.messages.truncate(fits.max(1));
        page.more = true;
    }
    Ok(Reply::History(page))
}

/// A page of contacts, and a subscription to presence changes.
pub(crate) fn contacts(session: &Session<'_>, after: Option<&str>) -> Outcome {
    let me = logged_in(session);
    let shared = session.shared;
    shared.hub.subscribe_presence(me, session.id);
    let after = after.map(Username::parse).transpose().map_err(invalid_name)?;
    let (names, more) =
        shared.store.users_after(after.as_ref(), CONTACTS_PAGE + 1).map_err(|e| internal(&e))?;
    let mut contacts = Vec::with_capacity(names.len());
    for name in names.into_iter().filter(|name| name != me) {
        if contacts.len() == CONTACTS_PAGE {
            break;
        }
        let summary = shared.store.summary(me, &name).map_err(|e| internal(&e))?;
        let online = shared.hub.is_online(&name);
        contacts.push(Contact { name, online, unread: summary.unread, last: summary.last.map(Into::into) });
    }
    let next_after = if more || contacts.len() == CONTACTS_PAGE {
        contacts.last().map(|contact| contact.name.clone())
    } else {
        None
    };
    Ok(Reply::Contacts(ContactPage { contacts, next_after }))
}

/// Marks a conversation read and sends the peer a read receipt.
pub(crate) fn mark_read(session: &Session<'_>, with: &str, up_to: MessageId) -> Outcome {
    let me = logged_in(session);
    let peer = existing_user(session, with)?;
    if let Some(read_up_to) = session.shared.store.mark_read(me, &peer, up_to).map_err(|e| internal(&e))? {
        receipt(session, &peer, ReceiptKind::Read, read_up_to);
    }
    Ok(Reply::Done)
}

/// Confirms received messages and sends their sender a delivered receipt.
pub(crate) fn delivered(session: &Session<'_>, from: &str, up_to: MessageId) -> Outcome {
    let me = logged_in(session);
    let sender = existing_user(session, from)?;
    if let Some(delivered_up_to) =
        session.shared.store.mark_delivered(me, &sender, up_to).map_err(|e| internal(&e))?
    {
        receipt(session, &sender, ReceiptKind::Delivered, delivered_up_to);
    }
    Ok(Reply::Done)
}

/// Tells `sender` how far this user got with their messages, and this user's other
/// sessions that this one got there, so they all show the same unread counts.
fn receipt(session: &Session<'_>, sender: &Username, kind: ReceiptKind, up_to: MessageId) {
    let me = logged_in(session);
    let hub = &session.shared.hub;
    let event = ServerFrame::Event(Event::Receipt { peer: me.clone(), kind, up_to });
    hub.send_to(sender, &encode(&event), None);
    let own = ServerFrame::Event(Event::OwnReceipt { peer: sender.clone(), kind, up_to });
    hub.send_to(me, &encode(&own), Some(session.id));
}

fn logged_in<'s>(session: &'s Session<'_>) -> &'s Username {
    &session.identity.as_ref().expect("the dispatcher only routes logged-in sessions here").name
}

fn existing_user(session: &Session<'_>, raw: &str) -> Result<Username, ErrorReply> {
    let name = Username::parse(raw).map_err(invalid_name)?;
    if !session.shared.store.user_exists(&name).map_err(|e| internal(&e))? {
        return Err(ErrorReply::new(ErrorCode::UnknownUser, format!("there is no user called {name}")));
    }
    Ok(name)
}

fn invalid_name(error: papo_protocol::InvalidName) -> ErrorReply {
    ErrorReply::new(ErrorCode::InvalidName, format!("invalid name: {error}"))
}
