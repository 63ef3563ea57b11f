//! Arbitrary byte streams to a server session in-process, over an in-memory connection
//! after a valid handshake (and, for inputs whose first byte is odd, a login): the session
//! must answer or close, never panic, and leave nobody online once it ends.
//!
//! No socket, no thread and no timeout per input, so it runs far more inputs a second than
//! a fuzz target over TCP would, and the handlers behind a login are reached too.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use papo_protocol::{frame, ClientFrame, Hello, Request, MAX_FRAME_LEN, PROTOCOL_VERSION};
use papo_server::testing::MemoryServer;

const PASSWORD: &str = "fuzzer password";

fn encode(frame: &ClientFrame) -> Vec<u8> {
    frame::encode(frame, MAX_FRAME_LEN).expect("a short frame encodes")
}

fn request(id: u64, request: Request) -> Vec<u8> {
    encode(&ClientFrame::Request { id, request })
}

/// The server, with two accounts to log in as and to write to, and the openings.
fn setup() -> &'static (MemoryServer, Vec<u8>, Vec<u8>) {
    static SETUP: OnceLock<(MemoryServer, Vec<u8>, Vec<u8>)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let server = MemoryServer::start_with(|_| {});
        let hello = encode(&ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            client_name: "fuzz".into(),
        }));
        let register = |name: &str| request(0, Request::Register { name: name.into(), password: PASSWORD.into() });
        server.serve(&[hello.clone(), register("fuzzer"), register("peer")].concat());
        let login = request(0, Request::Login { name: "fuzzer".into(), password: PASSWORD.into() });
        let logged_in = [hello.clone(), login].concat();
        (server, hello, logged_in)
    })
}

fuzz_target!(|data: &[u8]| {
    let (server, hello, logged_in) = setup();
    let opening = match data.first() {
        Some(first) if first % 2 == 1 => logged_in,
        _ => hello,
    };
    server.serve(&[opening.as_slice(), data].concat());
    assert_eq!(server.online_users(), 0, "a session that ended left someone online");
});
