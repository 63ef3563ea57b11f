//! What a fuzz target against a live server over TCP does with one input.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use papo_server::testing::TestServer;

/// Sends `prefix` then `data` on a new connection, reads until the server closes it, then
/// checks that the server still answers everyone else.
pub fn send_and_probe(server: &TestServer, prefix: &[u8], data: &[u8]) {
    let mut stream = TcpStream::connect(server.addr).expect("the server is still accepting");
    stream.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let _ = stream.write_all(prefix);
    let _ = stream.write_all(data);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    let mut probe = server.connect();
    assert_eq!(probe.request(papo_protocol::Request::Ping).expect("ping"), papo_protocol::Reply::Pong);
}
