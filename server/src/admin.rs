//! The administration socket: `admin.sock` in the data directory, through which
//! `papo-server export` (and later commands) reach a running server.
//!
//! Who may use it is decided by the file system: the socket is created owner-only inside the
//! owner-only data directory, so only the server's own user (and root) can connect. A
//! request is one JSON line; the answer is JSON lines, the last one `{"done":…}` or
//! `{"error":…}`, so a client can tell a complete answer from a broken connection.

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::clock::now_millis;
use crate::store::Store;

/// The socket's file name in the data directory.
pub const SOCKET: &str = "admin.sock";

/// What an administrator asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// The whole store as export lines (see `store::Line`).
    Export,
}

/// The last line of every answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The request was carried out; a short summary.
    Done(String),
    /// It was not; why.
    Error(String),
}

/// The socket's listening thread.
pub struct Admin {
    path: PathBuf,
    /// The listening socket, to wake its accept at stop.
    listener: UnixListener,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Admin {
    /// Listens on the data directory's socket, answering from `store` while it exists.
    pub fn start(dir: &Path, store: Weak<impl AsRef<Store> + Send + Sync + 'static>) -> io::Result<Self> {
        let path = dir.join(SOCKET);
        // A socket left by a server that did not stop cleanly: the store's lock, which this
        // process holds, says no one else is using it.
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let accepting = listener.try_clone()?;
        let thread = {
            let stopping = Arc::clone(&stopping);
            let listener = accepting;
            thread::Builder::new().name("admin".into()).spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(stream) = stream else {
                        // Out of descriptors, say: back off instead of spinning.
                        thread::sleep(std::time::Duration::from_millis(10));
                        continue;
                    };
                    let store = store.clone();
                    let _ = thread::Builder::new().name("admin-request".into()).spawn(move || {
                        if let Err(e) = serve(&stream, &store) {
                            warn!(error = %e, "an administration request failed");
                        }
                    });
                }
            })?
        };
        Ok(Self { path, listener, stopping, thread: Some(thread) })
    }

    /// Stops listening and removes the socket.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::Release);
        // Wakes the blocking accept (which then fails), even if the socket's file is gone:
        // connecting to it would not.
        // SAFETY: shutdown only changes the state of a socket this struct owns.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(stream: &UnixStream, store: &Weak<impl AsRef<Store>>) -> io::Result<()> {
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let mut out = BufWriter::new(stream);
    let outcome = match serde_json::from_str::<Request>(&line) {
        Err(e) => Outcome::Error(format!("not a request: {e}")),
        Ok(request) => match store.upgrade() {
            None => Outcome::Error("the server is stopping".into()),
            Some(shared) => answer(&request, shared.as_ref().as_ref(), &mut out),
        },
    };
    serde_json::to_writer(&mut out, &outcome)?;
    out.write_all(b"\n")?;
    out.flush()
}

fn answer(request: &Request, store: &Store, out: &mut impl Write) -> Outcome {
    match request {
        Request::Export => match store.export(out, now_millis()) {
            Ok(counts) => {
                info!(users = counts.users, messages = counts.messages, "exported the store");
                Outcome::Done(format!("exported {} users and {} messages", counts.users, counts.messages))
            }
            Err(e) => Outcome::Error(e.to_string()),
        },
    }
}

/// Sends `request` to the server running on `dir`, copying the answer's lines to `out`;
/// `None` if no server answers there.
pub fn request(dir: &Path, request: &Request, out: &mut impl Write) -> io::Result<Option<Outcome>> {
    let stream = match UnixStream::connect(dir.join(SOCKET)) {
        Ok(stream) => stream,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let mut line = serde_json::to_string(request).map_err(io::Error::other)?;
    line.push('\n');
    (&stream).write_all(line.as_bytes())?;
    let mut last = None;
    for line in BufReader::new(&stream).lines() {
        let line = line?;
        if let Ok(outcome) = serde_json::from_str::<Outcome>(&line) {
            last = Some(outcome);
            break;
        }
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    last.map(Some).ok_or_else(|| io::Error::other("the server closed the administration socket mid-answer"))
}
