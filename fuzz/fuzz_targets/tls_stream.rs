//! Arbitrary bytes after a TLS record header to a real in-process TLS server over TCP: the
//! handshake and record layer (rustls fed by the session's reader) must refuse or close,
//! never crash, and the server must keep serving TLS clients.
#![no_main]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use papo_protocol::tls::TLS_HANDSHAKE_BYTE;
use papo_server::testing::TestServer;

fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| TestServer::start_with(|config| config.handshake_timeout = Duration::from_millis(200)))
}

fuzz_target!(|data: &[u8]| {
    let server = server();
    let mut stream = TcpStream::connect(server.addr).expect("the server is still accepting");
    stream.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let _ = stream.write_all(&[TLS_HANDSHAKE_BYTE]);
    let _ = stream.write_all(data);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    // The server is still there for everyone else, over TLS.
    let mut probe = server.connect();
    assert_eq!(probe.request(papo_protocol::Request::Ping).expect("ping"), papo_protocol::Reply::Pong);
});
