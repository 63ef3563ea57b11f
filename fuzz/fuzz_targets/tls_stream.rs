//! Arbitrary bytes after a TLS record header to a real in-process TLS server over TCP: the
//! handshake and record layer (rustls fed by the session's reader) must refuse or close,
//! never crash, and the server must keep serving TLS clients.
#![no_main]

#[path = "common.rs"]
mod common;

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
    common::send_and_probe(server(), &[TLS_HANDSHAKE_BYTE], data);
});
