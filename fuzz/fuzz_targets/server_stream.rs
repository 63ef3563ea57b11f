//! Arbitrary byte streams to a real in-process server over TCP, after a valid handshake:
//! the server must answer or close, never crash, and keep serving the next input.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use papo_protocol::{frame, ClientFrame, Hello, MAX_FRAME_LEN, PROTOCOL_VERSION};
use papo_server::testing::TestServer;
use papo_server::tls::TlsMode;

fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        // Plaintext, so the fuzzed bytes reach the frame decoder and the request handlers
        // instead of stopping at the TLS handshake.
        let server = TestServer::start_with(|config| {
            config.idle_timeout = Duration::from_millis(200);
            config.tls = TlsMode::Off;
        });
        server.connect().register("fuzzer", "fuzzer password").expect("register");
        server
    })
}

fuzz_target!(|data: &[u8]| {
    let hello = ClientFrame::Hello(Hello { protocol_version: PROTOCOL_VERSION, client_name: "fuzz".into() });
    common::send_and_probe(server(), &frame::encode(&hello, MAX_FRAME_LEN).expect("hello encodes"), data);
});
