//! The pairs workload over IRC, for measuring the peer: each client registers with
//! NICK/USER, becomes an operator to set user mode `+F` (ngircd's relaxed flood protection),
//! and then sends `PRIVMSG`s whose text carries the send time and sequence number.
//!
//! IRC has no acknowledgement per message, so the sender follows each batch it writes with a
//! `PING` whose token is the number of messages written so far: a server handles one
//! client's lines in order, so its `PONG` says every message before it was handled (relayed
//! to the receiver's connection), which is what Papo's `Sent` reply says too, without the
//! durability. The window then bounds messages not yet covered by a `PONG`.

use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::pairs::{self, AckSource, Delivery, Inbox, Outbox, PairEnds, Read, Settled};
use crate::users;

/// How long one read waits before the loops look at their deadline again.
const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// How long registering one client may take.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest IRC line, CR LF included (RFC 2812, 2.3).
pub const MAX_LINE: usize = 512;

/// Bytes of unprocessed input at which ngircd disconnects a client ("Receive buffer space
/// exhausted"): its `READBUFFER_LEN`, fixed when it is built.
pub const NGIRCD_READ_BUFFER: usize = 2048;

/// Room a delivered line needs besides the body: `:NICK!~USER@127.0.0.1 PRIVMSG NICK :`
/// and CR LF, for nicks and user names of up to [`MAX_NICK`] bytes.
const RELAY_OVERHEAD: usize = 1 + MAX_NICK + 2 + MAX_NICK + 10 + 9 + MAX_NICK + 2 + 2;

/// The longest nick this module makes (`pair` and up to six digits).
pub const MAX_NICK: usize = 10;

/// An operator account on the server, to set `+F` with.
#[derive(Debug, Clone)]
pub struct Oper {
    /// Account name.
    pub name: String,
    /// Its password.
    pub password: String,
}

/// Connected pairs, and how many of their clients got relaxed flood protection.
pub struct IrcPairs {
    /// The pairs' ends.
    pub ends: Vec<PairEnds<IrcOutbox, IrcAcks, IrcInbox>>,
    /// Clients whose `MODE +F` the server confirmed.
    pub relaxed: usize,
}

/// A sender's outgoing lines, addressed to its receiver's nick.
pub struct IrcOutbox {
    socket: Arc<Socket>,
    to: String,
    pending: Vec<u8>,
    written: u64,
}

/// A sender's incoming lines, where the `PONG`s arrive.
pub struct IrcAcks {
    lines: Lines,
    settled: u64,
}

/// A receiver's incoming lines.
pub struct IrcInbox {
    lines: Lines,
}

/// One parsed line: `[:prefix] COMMAND params… [:trailing]`.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// Who sent it, if it says.
    pub prefix: Option<&'a str>,
    /// Command or three-digit numeric reply.
    pub command: &'a str,
    /// Parameters, the trailing one last.
    pub params: Vec<&'a str>,
}

impl<'a> Line<'a> {
    /// Splits `text` (without its line ending); `None` if it has no command.
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut rest = text;
        let mut prefix = None;
        if let Some(after) = rest.strip_prefix(':') {
            let (head, tail) = after.split_once(' ')?;
            prefix = Some(head);
            rest = tail;
        }
        let mut params = Vec::new();
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return None;
        }
        while !rest.is_empty() {
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing);
                break;
            }
            let (param, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if !param.is_empty() {
                params.push(param);
            }
            rest = tail;
        }
        Some(Self { prefix, command, params })
    }

    /// The last parameter, where the text of a message or the token of a `PONG` is.
    pub fn last(&self) -> &'a str {
        self.params.last().copied().unwrap_or_default()
    }

    /// An error numeric (4xx or 5xx), such as 401 "No such nick".
    pub fn is_error_reply(&self) -> bool {
        self.command.len() == 3
            && self.command.bytes().all(|b| b.is_ascii_digit())
            && matches!(self.command.as_bytes()[0], b'4' | b'5')
    }
}

/// The widest window that keeps a sender's unprocessed lines below ngircd's read buffer, for
/// `body_len`-byte bodies: one `PRIVMSG` and, at worst, one `PING` per message in flight.
pub fn max_window(body_len: usize, messages_per_pair: u64) -> u64 {
    let privmsg = "PRIVMSG  :\r\n".len() + MAX_NICK + body_len.max(pairs::MIN_BODY);
    let ping = "PING :\r\n".len() + messages_per_pair.to_string().len();
    ((NGIRCD_READ_BUFFER - 1) / (privmsg + ping)) as u64
}

/// The longest body a relayed line has room for.
pub fn max_body() -> usize {
    MAX_LINE - RELAY_OVERHEAD
}

/// Registers `2 × pairs` clients named `{prefix}{i}` at `addr` and pairs them up.
pub fn connect(addr: &str, oper: &Oper, pairs: usize, prefix: &str) -> Result<IrcPairs> {
    anyhow::ensure!(
        prefix.len() + (pairs * 2).to_string().len() <= MAX_NICK,
        "nicks would be longer than {MAX_NICK} bytes: use fewer pairs"
    );
    let clients = users::in_parallel(pairs * 2, 8, |i| register(addr, oper, &format!("{prefix}{i}")))?;
    let relaxed = clients.iter().filter(|client| client.relaxed).count();
    let mut ends = Vec::with_capacity(pairs);
    let mut clients = clients.into_iter();
    while let (Some(sender), Some(receiver)) = (clients.next(), clients.next()) {
        ends.push(PairEnds {
            outbox: IrcOutbox {
                socket: Arc::clone(&sender.lines.socket),
                to: receiver.nick,
                pending: Vec::with_capacity(4096),
                written: 0,
            },
            acks: IrcAcks { lines: sender.lines, settled: 0 },
            inbox: IrcInbox { lines: receiver.lines },
        });
    }
    Ok(IrcPairs { ends, relaxed })
}

impl Outbox for IrcOutbox {
    fn queue(&mut self, seq: u64, body: &str) -> io::Result<()> {
        write!(self.pending, "PRIVMSG {} :{body}\r\n", self.to)?;
        self.written = seq + 1;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        write!(self.pending, "PING :{}\r\n", self.written)?;
        let sent = self.socket.send(&self.pending);
        self.pending.clear();
        sent
    }
}

impl AckSource for IrcAcks {
    fn next_settled(&mut self) -> Read<Settled> {
        let settled = &mut self.settled;
        self.lines.next(|line| {
            if line.is_error_reply() {
                return Some(Settled { count: 0, failed: 1 });
            }
            if line.command != "PONG" {
                return None;
            }
            let written: u64 = line.last().parse().ok()?;
            let count = written.checked_sub(*settled)?;
            *settled = written;
            Some(Settled { count, failed: 0 })
        })
    }
}

impl Inbox for IrcInbox {
    fn next_delivery(&mut self) -> Read<Delivery> {
        self.lines.next(|line| {
            if line.command != "PRIVMSG" {
                return None;
            }
            let (sent_at, seq) = pairs::parse_body(line.last())?;
            Some(Delivery { id: seq, sent_at: Some(sent_at) })
        })
    }
}

/// One client's socket: read by one thread, written by any, a whole buffer at a time so
/// a `PONG` answered by the reader never lands inside a sender's batch.
struct Socket {
    stream: TcpStream,
    writing: Mutex<()>,
}

impl Socket {
    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let _writing = self.writing.lock().expect("no panics while writing");
        (&self.stream).write_all(bytes)
    }
}

/// The socket as a reader for [`BufReader`].
struct SocketReader(Arc<Socket>);

impl io::Read for SocketReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.0.stream).read(buf)
    }
}

/// Lines arriving on a socket with a read timeout; answers the server's `PING`s.
struct Lines {
    socket: Arc<Socket>,
    reader: BufReader<SocketReader>,
    /// The line being read: a read that times out keeps what it got, and the next goes on.
    line: Vec<u8>,
}

impl Lines {
    fn new(stream: TcpStream) -> Self {
        let socket = Arc::new(Socket { stream, writing: Mutex::new(()) });
        let reader = BufReader::with_capacity(64 * 1024, SocketReader(Arc::clone(&socket)));
        Self { socket, reader, line: Vec::with_capacity(MAX_LINE) }
    }

    /// Reads one line and hands it to `pick`; what `pick` declines is [`Read::Other`].
    fn next<T>(&mut self, pick: impl FnOnce(&Line<'_>) -> Option<T>) -> Read<T> {
        match self.reader.read_until(b'\n', &mut self.line) {
            Ok(0) => return Read::Closed,
            Ok(_) if self.line.ends_with(b"\n") => {}
            Ok(_) => return Read::Closed,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Read::TimedOut
            }
            Err(_) => return Read::Closed,
        }
        let picked = match std::str::from_utf8(&self.line)
            .ok()
            .and_then(|text| Line::parse(text.trim_end_matches(['\r', '\n'])))
        {
            Some(line) if line.command == "PING" => {
                let pong = format!("PONG :{}\r\n", line.last());
                if self.socket.send(pong.as_bytes()).is_err() {
                    Read::Closed
                } else {
                    Read::Other
                }
            }
            Some(line) if line.command == "ERROR" => Read::Closed,
            Some(line) => pick(&line).map_or(Read::Other, Read::Item),
            None => Read::Other,
        };
        self.line.clear();
        picked
    }
}

/// A registered client.
struct Registered {
    nick: String,
    lines: Lines,
    relaxed: bool,
}

/// Connects, registers as `nick`, asks for operator status and `+F`, and waits until the
/// server has answered all of it (the `PONG` to a final `PING`).
fn register(addr: &str, oper: &Oper, nick: &str) -> Result<Registered> {
    let stream = TcpStream::connect(addr).with_context(|| format!("cannot connect to ngircd at {addr}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(REGISTER_TIMEOUT))?;
    let mut lines = Lines::new(stream);
    let hello = format!(
        "NICK {nick}\r\nUSER {nick} 0 * :papo-bench\r\nOPER {} {}\r\nMODE {nick} +F\r\nPING :registered\r\n",
        oper.name, oper.password
    );
    lines.socket.send(hello.as_bytes()).with_context(|| format!("cannot register {nick}"))?;
    let deadline = Instant::now() + REGISTER_TIMEOUT;
    let (mut welcomed, mut relaxed) = (false, false);
    loop {
        if Instant::now() >= deadline {
            bail!("ngircd did not finish registering {nick} within {REGISTER_TIMEOUT:?}");
        }
        let event = lines.next(|line| match line.command {
            "001" => Some(Step::Welcome),
            "MODE" if line.params.first() == Some(&nick) && line.last().contains('F') => Some(Step::Relaxed),
            "PONG" if line.last() == "registered" => Some(Step::Done),
            // A wrong operator password (464), an operator block that does not match (491),
            // then `MODE +F` refused (481) or unknown (501): the client still works, only
            // without relaxed flood protection, which the caller reports.
            "464" | "491" | "481" | "501" => None,
            _ if line.is_error_reply() => Some(Step::Refused(format!("{} {}", line.command, line.last()))),
            _ => None,
        });
        match event {
            Read::Item(Step::Welcome) => welcomed = true,
            Read::Item(Step::Relaxed) => relaxed = true,
            Read::Item(Step::Done) if welcomed => break,
            Read::Item(Step::Done) => bail!("ngircd answered {nick}'s registration without a welcome"),
            Read::Item(Step::Refused(reply)) => bail!("ngircd refused {nick}: {reply}"),
            Read::Other | Read::TimedOut => {}
            Read::Closed => bail!("ngircd closed {nick}'s connection while registering"),
        }
    }
    Ok(Registered { nick: nick.to_owned(), lines, relaxed })
}

/// What a registration reply means.
enum Step {
    Welcome,
    Relaxed,
    Done,
    Refused(String),
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    #[test]
    fn lines_split_into_prefix_command_and_parameters() {
        let line = Line::parse(":a!~a@127.0.0.1 PRIVMSG bob :hello there").unwrap();
        assert_eq!(line.prefix, Some("a!~a@127.0.0.1"));
        assert_eq!(line.command, "PRIVMSG");
        assert_eq!(line.params, ["bob", "hello there"]);
        assert_eq!(line.last(), "hello there");

        let line = Line::parse("PING :token").unwrap();
        assert_eq!((line.prefix, line.command, line.last()), (None, "PING", "token"));
        let line = Line::parse(":srv 005 me  A=1 B :are supported").unwrap();
        assert_eq!(line.params, ["me", "A=1", "B", "are supported"]);
        assert_eq!(Line::parse(":srv PONG srv :").unwrap().last(), "");
        assert_eq!(Line::parse(":lonely"), None);
        assert_eq!(Line::parse(""), None);
    }

    #[test]
    fn error_replies_are_the_4xx_and_5xx_numerics() {
        assert!(Line::parse(":srv 401 me bob :No such nick").unwrap().is_error_reply());
        assert!(Line::parse(":srv 502 me :no").unwrap().is_error_reply());
        assert!(!Line::parse(":srv 001 me :Welcome").unwrap().is_error_reply());
        assert!(!Line::parse(":srv 4000 me").unwrap().is_error_reply());
        assert!(!Line::parse("PRIVMSG bob :401").unwrap().is_error_reply());
    }

    #[test]
    fn the_window_keeps_unprocessed_input_below_the_read_buffer() {
        let window = max_window(64, 2000);
        let per_message = "PRIVMSG pair123456 :\r\n".len() + 64 + "PING :2000\r\n".len();
        assert!(window as usize * per_message < NGIRCD_READ_BUFFER, "{window}");
        assert!(window >= 8, "the issue's window 8 fits: {window}");
        assert!(max_window(400, 2000) < max_window(64, 2000));
        assert!(max_body() + RELAY_OVERHEAD <= MAX_LINE);
    }

    /// A one-connection fake server that echoes what a test script says.
    fn serve(script: impl FnOnce(TcpStream) + Send + 'static) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        thread::spawn(move || script(listener.accept().unwrap().0));
        addr
    }

    fn read_until(stream: &mut TcpStream, needle: &str) -> String {
        let mut seen = Vec::new();
        let mut buf = [0; 1024];
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "closed before {needle:?}: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(seen).unwrap()
    }

    #[test]
    fn a_client_registers_answers_pings_and_reads_pongs_as_acknowledgements() {
        let addr = serve(|mut stream| {
            let hello = read_until(&mut stream, "PING :registered\r\n");
            assert!(hello.starts_with("NICK pair0\r\nUSER pair0 0 * :papo-bench\r\nOPER op secret\r\n"));
            // Split across writes, as TCP may deliver it.
            stream.write_all(b":srv 001 pair0 :Welcome\r\n:pair0!~pair0@127.0.0.1 MO").unwrap();
            thread::sleep(Duration::from_millis(50));
            stream.write_all(b"DE pair0 :+F\r\n:srv PONG srv :registered\r\n").unwrap();
            stream
                .write_all(b"PING :keepalive\r\n:srv PONG srv :3\r\n:srv 401 pair0 x :No such nick\r\n")
                .unwrap();
            read_until(&mut stream, "PONG :keepalive\r\n");
            stream.write_all(b":srv PONG srv :5\r\n").unwrap();
            thread::sleep(Duration::from_millis(500));
        });
        let oper = Oper { name: "op".into(), password: "secret".into() };
        let client = register(&addr, &oper, "pair0").unwrap();
        assert!(client.relaxed);
        let mut acks = IrcAcks { lines: client.lines, settled: 0 };
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 3 && Instant::now() < deadline {
            if let Read::Item(settled) = acks.next_settled() {
                got.push(settled);
            }
        }
        assert_eq!(
            got,
            [
                Settled { count: 3, failed: 0 },
                Settled { count: 0, failed: 1 },
                Settled { count: 2, failed: 0 }
            ]
        );
    }

    #[test]
    fn a_refused_nick_fails_registration_by_name() {
        let addr = serve(|mut stream| {
            read_until(&mut stream, "PING :registered\r\n");
            stream.write_all(b":srv 433 * pair0 :Nickname already in use\r\n").unwrap();
            thread::sleep(Duration::from_millis(200));
        });
        let oper = Oper { name: "op".into(), password: "secret".into() };
        let error = register(&addr, &oper, "pair0").err().unwrap().to_string();
        assert!(error.contains("pair0") && error.contains("433"), "{error}");
    }

    #[test]
    fn a_body_in_a_privmsg_is_a_timed_delivery() {
        let addr = serve(|mut stream| {
            let text = pairs::body(5_000, 7, &pairs::padding(64));
            let line = format!(":pair0!~pair0@127.0.0.1 PRIVMSG pair1 :{text}\r\n:srv NOTICE pair1 :hi\r\n");
            stream.write_all(line.as_bytes()).unwrap();
            thread::sleep(Duration::from_millis(300));
        });
        let mut inbox = IrcInbox { lines: Lines::new(TcpStream::connect(addr).unwrap()) };
        inbox.lines.socket.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        // Read past timeouts: on a busy machine the fake server may be slow to write.
        let mut next = || loop {
            match inbox.next_delivery() {
                Read::TimedOut => continue,
                other => return other,
            }
        };
        assert!(matches!(next(), Read::Item(Delivery { id: 7, sent_at: Some(5_000) })));
        assert!(matches!(next(), Read::Other));
    }
}
