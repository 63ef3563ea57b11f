//! Arbitrary byte streams to a server session in-process, over an in-memory connection
//! after a valid handshake (and, for inputs whose first byte is odd, a login): the session
//! must answer or close, never panic, and leave nobody online once it ends.
//!
//! No socket, no thread and no timeout per input, so it runs far more inputs a second than
//! a fuzz target over TCP would, and the handlers behind a login are reached too. Logins
//! resume the token the previous one handed out, which costs no bcrypt; only after a resume
//! failed (an input logged out, revoking its token) is the password used again.
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use papo_protocol::{frame, ClientFrame, Hello, Reply, Request, ServerFrame, MAX_FRAME_LEN, PROTOCOL_VERSION};
use papo_server::testing::MemoryServer;

const PASSWORD: &str = "fuzzer password";

struct Setup {
    server: MemoryServer,
    hello: Vec<u8>,
    /// The resume token of the account "fuzzer", from the last login.
    token: Mutex<String>,
}

fn encode(frame: &ClientFrame) -> Vec<u8> {
    frame::encode(frame, MAX_FRAME_LEN).expect("a short frame encodes")
}

fn request(request: Request) -> Vec<u8> {
    encode(&ClientFrame::Request { id: 0, request })
}

/// The token of the first reply in `output`, if it is a login.
fn token(output: &[u8]) -> Option<String> {
    let mut at = 0;
    while let Ok(Some((frame, used))) = frame::decode::<ServerFrame>(&output[at..], MAX_FRAME_LEN) {
        at += used;
        match frame {
            ServerFrame::Reply { result: Ok(Reply::LoggedIn(session)), .. } => return Some(session.token),
            ServerFrame::Reply { .. } => return None,
            _ => {}
        }
    }
    None
}

impl Setup {
    fn password_login(&self) -> String {
        let login = request(Request::Login { name: "fuzzer".into(), password: PASSWORD.into() });
        token(&self.server.serve(&[self.hello.clone(), login].concat())).expect("the fuzzer logs in")
    }
}

/// The server, with an account to log in as and one to write to.
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let server = MemoryServer::start_with(|_| {});
        let hello = encode(&ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            client_name: "fuzz".into(),
        }));
        let register = |name: &str| request(Request::Register { name: name.into(), password: PASSWORD.into(), invite: None });
        server.serve(&[hello.clone(), register("fuzzer"), register("peer")].concat());
        let mut setup = Setup { server, hello, token: Mutex::default() };
        *setup.token.get_mut().unwrap() = setup.password_login();
        setup
    })
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let mut token = setup.token.lock().unwrap();
    let logs_in = data.first().is_some_and(|first| first % 2 == 1);
    let opening = if logs_in {
        [setup.hello.clone(), request(Request::Resume { token: token.clone() })].concat()
    } else {
        setup.hello.clone()
    };
    let output = setup.server.serve(&[opening.as_slice(), data].concat());
    assert_eq!(setup.server.online_users(), 0, "a session that ended left someone online");
    if logs_in {
        // A token resumes once: keep the fresh one, or log in again if the resume failed.
        *token = match self::token(&output) {
            Some(fresh) => fresh,
            None => setup.password_login(),
        };
    }
});
