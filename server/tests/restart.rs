//! Stopping and starting the server on the same data directory keeps everything.

mod common;

use common::{history, next_message, unique_name, TestServer, PASSWORD};

#[test]
fn restart_keeps_users_messages_and_pending_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let (ana, bia) = (unique_name("ana"), unique_name("bia"));
    let sent_ids = {
        let server = TestServer::start_in(dir.path(), |_| {});
        let mut client = server.connect();
        client.register(&ana, PASSWORD).unwrap();
        client.register(&bia, PASSWORD).unwrap();
        client.login(&ana, PASSWORD).unwrap();
        let ids: Vec<_> = (0..5).map(|i| client.send(&bia, &format!("before {i}"), i).unwrap().0).collect();
        server.stop().unwrap();
        ids
    };

    let server = TestServer::start_in(dir.path(), |_| {});
    let (mut bia_client, session) = server.login(&bia);
    assert_eq!(session.pending, 5);
    assert_eq!(next_message(&mut bia_client).body, "before 0");
    let page = history(&mut bia_client, &ana, None, 50);
    let ids: Vec<_> = page.messages.iter().rev().map(|m| m.id).collect();
    assert_eq!(ids, sent_ids);
    // Ids keep increasing across restarts, and resends are still recognised.
    let (mut ana_client, _) = server.login(&ana);
    assert_eq!(ana_client.send(&bia, "before 4", 4).unwrap().0, sent_ids[4]);
    assert!(ana_client.send(&bia, "after", 100).unwrap().0 > sent_ids[4]);
}
