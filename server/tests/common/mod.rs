//! Shared helpers of the server's integration tests.

#![allow(dead_code, unused_imports)] // Each test binary uses a different part of this helper.

use papo_protocol::{ChatMessage, Client, Contact, Event, HistoryPage};

pub use papo_server::testing::{unique_name, TestServer, PASSWORD};

/// Proves the server still serves: two new users exchange a message live.
pub fn assert_healthy(server: &TestServer) {
    let (mut alice, a) = server.user("ok");
    let (mut bob, b) = server.user("ok");
    let (id, _) = alice.send(b.name.as_str(), "still here?", 1).expect("send");
    let got = next_message(&mut bob);
    assert_eq!((got.id, got.from, got.body.as_str()), (id, a.name, "still here?"));
}

/// The next chat message pushed to `client`, skipping presence and receipts.
pub fn next_message(client: &mut Client) -> ChatMessage {
    loop {
        match client.next_event().expect("event") {
            Event::Message(message) => return message,
            _ => continue,
        }
    }
}

pub fn history(client: &mut Client, with: &str, before: Option<u64>, limit: u32) -> HistoryPage {
    client.history(with, before, limit).expect("history")
}

/// Every contact, following pages.
pub fn contacts(client: &mut Client) -> Vec<Contact> {
    client.contacts().expect("contacts")
}
