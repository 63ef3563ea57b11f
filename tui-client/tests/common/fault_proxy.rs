//! A TCP proxy for tests that understands Papo frames (on plaintext servers) and injects
//! faults: it drops a chosen frame in either direction, holds connections silent, or cuts
//! them after a number of bytes. It exists only in the tests.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use papo_protocol::{frame, ClientFrame, ServerFrame, MAX_FRAME_LEN};

/// Picks the frame to drop.
type Rule<T> = Box<dyn FnMut(&T) -> bool + Send>;
type ToServerRule = Rule<ClientFrame>;
type ToClientRule = Rule<ServerFrame>;

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the server.
    ToServer,
    /// From the server to the client.
    ToClient,
}

#[derive(Default)]
struct State {
    next_id: usize,
    /// Each proxied connection: id, client side, server side.
    connections: Vec<(usize, TcpStream, TcpStream)>,
    drop_to_server: Vec<ToServerRule>,
    drop_to_client: Vec<ToClientRule>,
    dropped: usize,
    /// Connections that forward nothing any more (both ways), though they stay open.
    held: Vec<usize>,
    /// Bytes each direction of a connection may still forward before it is cut.
    budgets: Vec<(usize, Direction, usize)>,
}

/// The proxy; its threads live as long as the test process.
pub struct FaultProxy {
    /// Where clients connect instead of the server.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// Forwards to `target` until told otherwise.
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok).take(1000) {
                let Ok(server) = TcpStream::connect(target) else { continue };
                let id = {
                    let mut state = shared.lock().unwrap();
                    state.next_id += 1;
                    let id = state.next_id;
                    state.connections.push((id, client.try_clone().unwrap(), server.try_clone().unwrap()));
                    id
                };
                for direction in [Direction::ToServer, Direction::ToClient] {
                    let (from, to) = match direction {
                        Direction::ToServer => (&client, &server),
                        Direction::ToClient => (&server, &client),
                    };
                    let (from, to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    let state = Arc::clone(&shared);
                    std::thread::spawn(move || pump(id, direction, from, to, &state));
                }
            }
        });
        Self { addr, state }
    }

    /// Drops the next client frame `pick` accepts.
    pub fn drop_to_server(&self, pick: impl FnMut(&ClientFrame) -> bool + Send + 'static) {
        self.state.lock().unwrap().drop_to_server.push(Box::new(pick));
    }

    /// Drops the next server frame `pick` accepts.
    pub fn drop_to_client(&self, pick: impl FnMut(&ServerFrame) -> bool + Send + 'static) {
        self.state.lock().unwrap().drop_to_client.push(Box::new(pick));
    }

    /// How many frames were dropped so far.
    pub fn dropped(&self) -> usize {
        self.state.lock().unwrap().dropped
    }

    /// How many connections were made through the proxy so far.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().next_id
    }

    /// The connections open now forward nothing more in either direction but stay open,
    /// like a machine that froze; later connections are not affected.
    pub fn hold_current(&self) {
        let mut state = self.state.lock().unwrap();
        let ids: Vec<usize> = state.connections.iter().map(|(id, ..)| *id).collect();
        state.held.extend(ids);
    }

    /// The connections open now are cut after forwarding `bytes` more bytes in `direction`.
    pub fn cut_after(&self, direction: Direction, bytes: usize) {
        let mut state = self.state.lock().unwrap();
        let ids: Vec<usize> = state.connections.iter().map(|(id, ..)| *id).collect();
        state.budgets.extend(ids.into_iter().map(|id| (id, direction, bytes)));
    }

    /// Cuts every connection open now.
    pub fn cut_current(&self) {
        let state = self.state.lock().unwrap();
        for (_, client, server) in &state.connections {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }
}

/// Forwards whole frames from `from` to `to`, applying the faults in `state`.
fn pump(id: usize, direction: Direction, mut from: TcpStream, mut to: TcpStream, state: &Mutex<State>) {
    let mut buffered = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut chunk) {
        buffered.extend_from_slice(&chunk[..n]);
        while let Ok(Some(len)) = frame::payload_len(&buffered, MAX_FRAME_LEN) {
            let total = frame::HEADER_LEN + len;
            if buffered.len() < total {
                break;
            }
            let bytes: Vec<u8> = buffered.drain(..total).collect();
            match decide(id, direction, &bytes, state) {
                Verdict::Forward(n) if n == bytes.len() => {
                    if to.write_all(&bytes).is_err() {
                        return;
                    }
                }
                Verdict::Forward(n) => {
                    let _ = to.write_all(&bytes[..n]);
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                    return;
                }
                Verdict::Skip => {}
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

enum Verdict {
    /// Forward this many bytes of the frame (all of it, or fewer before a cut).
    Forward(usize),
    Skip,
}

fn decide(id: usize, direction: Direction, bytes: &[u8], state: &Mutex<State>) -> Verdict {
    let mut state = state.lock().unwrap();
    if state.held.contains(&id) {
        return Verdict::Skip;
    }
    let dropped = match direction {
        Direction::ToServer => match frame::decode::<ClientFrame>(bytes, MAX_FRAME_LEN) {
            Ok(Some((decoded, _))) => take_rule(&mut state.drop_to_server, &decoded),
            _ => false,
        },
        Direction::ToClient => match frame::decode::<ServerFrame>(bytes, MAX_FRAME_LEN) {
            Ok(Some((decoded, _))) => take_rule(&mut state.drop_to_client, &decoded),
            _ => false,
        },
    };
    if dropped {
        state.dropped += 1;
        return Verdict::Skip;
    }
    if let Some(budget) = state.budgets.iter_mut().find(|(c, d, _)| *c == id && *d == direction) {
        if budget.2 < bytes.len() {
            return Verdict::Forward(budget.2);
        }
        budget.2 -= bytes.len();
    }
    Verdict::Forward(bytes.len())
}

/// Removes and reports the first rule that matches `frame`.
fn take_rule<T>(rules: &mut Vec<Rule<T>>, frame: &T) -> bool {
    match rules.iter_mut().position(|pick| pick(frame)) {
        Some(at) => {
            drop(rules.remove(at));
            true
        }
        None => false,
    }
}
