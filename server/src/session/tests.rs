//! The session over in-memory connections: the handshake, the frames it refuses, pipelined
//! sends, live delivery, the backlog, presence, and a clean hub however a session ends.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use papo_protocol::{
    frame, ClientFrame, ErrorCode, Event, Hello, Reply, Request, ServerFrame, MAX_FRAME_LEN, PROTOCOL_VERSION,
};

use super::MAX_UNACKED;
use crate::fixture::{Fixture, MemoryClient};
use crate::memory::MemoryInbound;
use crate::testing::PASSWORD;
use crate::transport::Inbound;

fn encoded(frame: &ClientFrame) -> Vec<u8> {
    frame::encode(frame, MAX_FRAME_LEN).unwrap()
}

fn hello(version: u32) -> Vec<u8> {
    encoded(&ClientFrame::Hello(Hello { protocol_version: version, client_name: "unit".into() }))
}

fn request(id: u64, request: Request) -> Vec<u8> {
    encoded(&ClientFrame::Request { id, request })
}

/// Every frame the server sent over a whole connection that sent `input`.
fn frames(fixture: &Fixture, input: &[u8]) -> Vec<ServerFrame> {
    let output = fixture.server.serve(input);
    let mut frames = Vec::new();
    let mut at = 0;
    while let Some((frame, used)) = frame::decode::<ServerFrame>(&output[at..], MAX_FRAME_LEN).unwrap() {
        frames.push(frame);
        at += used;
    }
    assert_eq!(at, output.len(), "only whole frames");
    frames
}

fn fatal(frames: &[ServerFrame]) -> Option<ErrorCode> {
    match frames.last() {
        Some(ServerFrame::Fatal(e)) => Some(e.code),
        _ => None,
    }
}

#[test]
fn a_connection_is_welcomed_answered_and_ends_when_the_client_hangs_up() {
    let fixture = Fixture::new();
    let got = frames(&fixture, &[hello(PROTOCOL_VERSION), request(1, Request::Ping)].concat());
    assert!(matches!(got[0], ServerFrame::Welcome(ref w) if w.protocol_version == PROTOCOL_VERSION));
    assert_eq!(got[1..], [ServerFrame::Reply { id: 1, result: Ok(Reply::Pong) }]);
    assert!(frames(&fixture, &[]).is_empty(), "a client that says nothing is not answered");
}

#[test]
fn a_bad_opening_is_refused_by_name() {
    let fixture = Fixture::new();
    let cases = [
        (request(1, Request::Ping), ErrorCode::Malformed),
        (hello(PROTOCOL_VERSION + 1), ErrorCode::UnsupportedVersion),
        ([hello(PROTOCOL_VERSION), hello(PROTOCOL_VERSION)].concat(), ErrorCode::Malformed),
        ([hello(PROTOCOL_VERSION), u32::MAX.to_be_bytes().to_vec()].concat(), ErrorCode::TooLarge),
        ([hello(PROTOCOL_VERSION), vec![0, 0, 0, 3, 0xff, 0xff, 0xff]].concat(), ErrorCode::Malformed),
        (vec![0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0x99], ErrorCode::Malformed),
    ];
    for (input, expected) in cases {
        assert_eq!(fatal(&frames(&fixture, &input)), Some(expected), "{input:?}");
    }
    // A frame cut short by the hang-up just ends the connection.
    let whole = [hello(PROTOCOL_VERSION), request(1, Request::Ping)].concat();
    assert_eq!(frames(&fixture, &whole[..whole.len() - 1]).len(), 1);
}

#[test]
fn an_old_client_is_told_to_upgrade_and_a_newer_one_that_the_server_is_old() {
    let fixture = Fixture::new();
    for (version, upgrade) in
        [(PROTOCOL_VERSION - 1, "please upgrade papo "), (PROTOCOL_VERSION + 1, "please upgrade papo-server")]
    {
        let got = frames(&fixture, &hello(version));
        let [ServerFrame::Fatal(refused)] = &got[..] else { panic!("expected one refusal: {got:?}") };
        assert_eq!(refused.code, ErrorCode::UnsupportedVersion);
        assert!(refused.message.contains(upgrade), "{}", refused.message);
    }
}

#[test]
fn a_silent_connection_is_told_it_idled_and_closed() {
    let fixture = Fixture::with(|config| config.idle_timeout = Duration::from_millis(50));
    let mut client = fixture.connect();
    assert!(matches!(client.next_frame(), Some(ServerFrame::Fatal(e)) if e.code == ErrorCode::IdleTimeout));
    assert_eq!(client.next_frame(), None);
}

#[test]
fn pipelined_sends_are_acknowledged_in_order_and_delivered_live_to_every_session() {
    let fixture = Fixture::new();
    let (ana, bia) = (fixture.user("ana"), fixture.user("bia"));
    let (mut sender, mut other_device, mut receiver) =
        (fixture.login_client(&ana), fixture.login_client(&ana), fixture.login_client(&bia));
    // More than one round of acknowledgements, all written before any is read.
    let count = MAX_UNACKED as u64 + 44;
    let bytes: Vec<u8> = (0..count)
        .flat_map(|n| {
            request(n + 1, Request::Send { to: bia.to_string(), body: format!("m{n}"), client_msg_id: n })
        })
        .collect();
    sender.write_bytes(&bytes);
    let mut acked = Vec::new();
    for n in 0..count {
        match sender.reply_to(n + 1) {
            Ok(Reply::Sent { id, .. }) => acked.push(id),
            other => panic!("send {n}: {other:?}"),
        }
    }
    assert!(acked.windows(2).all(|w| w[0] < w[1]), "acknowledged in order");
    for client in [&mut receiver, &mut other_device] {
        let live: Vec<_> = (0..count).map(|_| next_message(client)).collect();
        assert_eq!(live.iter().map(|m| m.id).collect::<Vec<_>>(), acked);
        assert_eq!(live[0].body, "m0");
    }
}

#[test]
fn a_steady_conversation_and_a_flood_are_each_delivered_in_order_whichever_thread_answers() {
    // One sender waits for each acknowledgement (lone groups, which the committer answers
    // itself once nothing else is in hand) while another pipelines bursts (groups the
    // answerer's thread answers): no conversation may overtake itself.
    let fixture = Fixture::new();
    let [ana, bia, caio, dara] = ["ana", "bia", "caio", "dara"].map(|name| fixture.user(name));
    let (mut steady, mut flood) = (fixture.login_client(&ana), fixture.login_client(&caio));
    let (mut steady_inbox, mut flood_inbox) = (fixture.login_client(&bia), fixture.login_client(&dara));
    let (bursts, burst) = (10, 40);
    let sent = |reply| match reply {
        Ok(Reply::Sent { id, .. }) => id,
        other => panic!("not stored: {other:?}"),
    };
    let (steady_ids, flood_ids) = std::thread::scope(|scope| {
        let (steady, flood) = (&mut steady, &mut flood);
        let steady = scope.spawn(move || {
            (0..200)
                .map(|n| {
                    sent(steady.request(Request::Send {
                        to: bia.to_string(),
                        body: format!("s{n}"),
                        client_msg_id: n,
                    }))
                })
                .collect::<Vec<_>>()
        });
        let flood = scope.spawn(move || {
            let mut ids = Vec::new();
            for first in (0..bursts).map(|b| b * burst) {
                let requests: Vec<_> = (first..first + burst)
                    .map(|n| {
                        flood.send_request(Request::Send {
                            to: dara.to_string(),
                            body: format!("f{n}"),
                            client_msg_id: n,
                        })
                    })
                    .collect();
                ids.extend(requests.into_iter().map(|request| sent(flood.reply_to(request))));
            }
            ids
        });
        (steady.join().unwrap(), flood.join().unwrap())
    });
    for (inbox, ids, prefix) in [(&mut steady_inbox, steady_ids, "s"), (&mut flood_inbox, flood_ids, "f")] {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{prefix}: acknowledged in order");
        let live: Vec<_> = (0..ids.len()).map(|_| next_message(inbox)).collect();
        assert_eq!(live.iter().map(|m| m.id).collect::<Vec<_>>(), ids, "{prefix}: delivered in order");
        let bodies: Vec<_> = live.iter().map(|m| m.body.clone()).collect();
        let expected: Vec<_> = (0..ids.len()).map(|n| format!("{prefix}{n}")).collect();
        assert_eq!(bodies, expected);
    }
}

fn next_message(client: &mut MemoryClient) -> papo_protocol::ChatMessage {
    loop {
        if let Event::Message(message) = client.next_event() {
            return message;
        }
    }
}

#[test]
fn logging_in_streams_what_waited_then_goes_live() {
    let fixture = Fixture::new();
    let (ana, bia) = (fixture.user("ana"), fixture.user("bia"));
    let mut sender = fixture.login_client(&ana);
    for n in 0..3 {
        let sent =
            sender.request(Request::Send { to: bia.to_string(), body: format!("w{n}"), client_msg_id: n });
        assert!(matches!(sent, Ok(Reply::Sent { .. })), "{sent:?}");
    }
    let mut receiver = fixture.connect();
    let reply = receiver.request(Request::Login { name: bia.to_string(), password: PASSWORD.into() });
    assert!(matches!(reply, Ok(Reply::LoggedIn(ref session)) if session.pending == 3), "{reply:?}");
    let waited: Vec<_> = (0..3).map(|_| next_message(&mut receiver).body).collect();
    assert_eq!(waited, ["w0", "w1", "w2"]);
}

#[test]
fn presence_and_new_accounts_reach_the_sessions_that_listed_contacts() {
    let fixture = Fixture::new();
    let (ana, bia) = (fixture.user("ana"), fixture.user("bia"));
    let mut watcher = fixture.login_client(&ana);
    assert!(matches!(watcher.request(Request::Contacts { after: None }), Ok(Reply::Contacts(_))));
    let other = fixture.login_client(&bia);
    assert_eq!(watcher.next_event(), Event::Presence { user: bia.clone(), online: true });
    other.hang_up();
    assert!(other.finish().0.is_ok());
    assert_eq!(watcher.next_event(), Event::Presence { user: bia, online: false });
    let mut anonymous = fixture.connect();
    let reply = anonymous.request(Request::Register {
        name: "newcomer".into(),
        password: PASSWORD.into(),
        invite: None,
    });
    assert_eq!(reply, Ok(Reply::Registered));
    let newcomer = papo_protocol::Username::parse("newcomer").unwrap();
    assert_eq!(watcher.next_event(), Event::UserRegistered { user: newcomer });
}

#[test]
fn logout_answers_then_closes_and_leaves_the_hub() {
    let fixture = Fixture::new();
    let ana = fixture.user("ana");
    let mut client = fixture.login_client(&ana);
    assert!(fixture.shared().hub.is_online(&ana));
    assert_eq!(client.request(Request::Logout), Ok(Reply::Done));
    assert_eq!(client.next_frame(), None);
    assert!(client.finish().0.is_ok());
    assert!(!fixture.shared().hub.is_online(&ana));
}

#[test]
fn a_handler_that_panics_leaves_the_hub_and_closes_the_connection() {
    let fixture = Fixture::new();
    let (ana, bia) = (fixture.user("ana"), fixture.user("bia"));
    let mut client = fixture.login_client(&ana);
    assert!(fixture.shared().hub.is_online(&ana));
    // A send reads the clock: the handler panics.
    fixture.clock.panic_from_now_on();
    client.send_request(Request::Send { to: bia.to_string(), body: "boom".into(), client_msg_id: 1 });
    let (ended, closed) = client.finish();
    assert!(ended.is_err(), "the session thread panicked");
    assert!(!fixture.shared().hub.is_online(&ana), "a panicked session must not stay online");
    assert!(closed, "and its connection is closed");
}

/// Reads as its pipe does until told to panic, then panics once bytes arrive.
struct PanicsMidRead {
    inner: MemoryInbound,
    armed: Arc<AtomicBool>,
}

impl Read for PanicsMidRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        assert!(!self.armed.load(Ordering::SeqCst), "the transport failed mid-read");
        Ok(n)
    }
}

impl Inbound for PanicsMidRead {
    fn handshaken(&self, idle: Duration, login_by: Duration) {
        self.inner.handshaken(idle, login_by);
    }

    fn logged_in(&self) {
        self.inner.logged_in();
    }
}

#[test]
fn a_transport_that_panics_mid_read_leaves_the_hub_and_closes_the_connection() {
    let fixture = Fixture::new();
    let ana = fixture.user("ana");
    let armed = Arc::new(AtomicBool::new(false));
    let trigger = Arc::clone(&armed);
    let mut client = fixture.connect_through(|inner| PanicsMidRead { inner, armed: trigger });
    let reply = client.request(Request::Login { name: ana.to_string(), password: PASSWORD.into() });
    assert!(matches!(reply, Ok(Reply::LoggedIn(_))), "{reply:?}");
    assert!(fixture.shared().hub.is_online(&ana));
    armed.store(true, Ordering::SeqCst);
    client.send_request(Request::Ping);
    let (ended, closed) = client.finish();
    assert!(ended.is_err(), "the session thread panicked");
    assert!(!fixture.shared().hub.is_online(&ana), "a panicked session must not stay online");
    assert!(closed, "and its connection is closed");
}
