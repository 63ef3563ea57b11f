//! The administration socket of a running server: an online export that imports whole.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{unique_name, TestServer, PASSWORD};
use papo_protocol::Username;
use papo_server::admin::{self, Outcome, Request};
use papo_server::store::{Line, Store};

#[test]
fn a_running_server_exports_through_its_socket_and_the_export_imports_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {});
    let (ana, bia) = (unique_name("ana"), unique_name("bia"));
    let mut client = server.connect();
    client.register(&ana, PASSWORD).unwrap();
    client.register(&bia, PASSWORD).unwrap();
    client.login(&ana, PASSWORD).unwrap();
    for i in 0..25 {
        client.send(&bia, &format!("online {i}"), i).unwrap();
    }
    let socket = dir.path().join(admin::SOCKET);
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);

    let mut export = Vec::new();
    let outcome = admin::request(dir.path(), &Request::Export, &mut export).unwrap();
    assert_eq!(outcome, Some(Outcome::Done("exported 2 users and 25 messages".into())));
    let lines: Vec<Line> = String::from_utf8(export.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(matches!(lines.first(), Some(Line::Header { last_id: 25, .. })));
    assert!(matches!(lines.last(), Some(Line::End { users: 2, messages: 25, groups: 0, group_messages: 0 })));

    let copy_dir = tempfile::tempdir().unwrap();
    let copy = Store::open(copy_dir.path()).unwrap();
    copy.import(export.as_slice(), 0).unwrap();
    let (ana, bia) = (Username::parse(&ana).unwrap(), Username::parse(&bia).unwrap());
    let page = copy.history(&bia, &ana, None, 50).unwrap();
    assert_eq!(page.messages.len(), 25);
    assert_eq!(page.messages[0].body, "online 24");

    server.stop().unwrap();
    assert!(!socket.exists(), "a stopped server removes its socket");
    let mut nothing = Vec::new();
    assert_eq!(admin::request(dir.path(), &Request::Export, &mut nothing).unwrap(), None);
}
