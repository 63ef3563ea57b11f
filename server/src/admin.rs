//! The administration socket: `admin.sock` in the data directory, through which
//! `papo-server export` and `papo-server admin …` reach a running server.
//!
//! What needs only the store ([`answer_from_store`]) is answered the same way from a stopped
//! server's directory; what needs live sessions (listing, disconnecting) only by a running one.
//!
//! Who may use it is decided by the file system: the socket is created owner-only inside the
//! owner-only data directory, so only the server's own user (and root) can connect. A
//! request is one JSON line; the answer is JSON lines, the last one `{"done":…}` or
//! `{"error":…}`, so a client can tell a complete answer from a broken connection.

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};

use papo_protocol::{ErrorCode, ErrorReply, Event, ServerFrame, UnixMillis, Username, PASSWORD_LEN};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::clock::now_millis;
use crate::errors;
use crate::frames;
use crate::shared::Shared;
use crate::store::{AccountStatus, DeletedAccount, InviteRecord, Store};

pub use crate::hub::LiveSession;

/// The socket's file name in the data directory.
pub const SOCKET: &str = "admin.sock";

/// What an administrator asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// The whole store as export lines (see `store::Line`).
    Export,
    /// Every account, as [`Account`] lines, in name order.
    Users,
    /// Sets an account's password, revokes all its resume tokens and disconnects its live
    /// sessions: for someone who forgot theirs, or whose account was taken over.
    ResetPassword {
        /// The account.
        name: String,
        /// Its new password.
        password: String,
    },
    /// Every logged-in session, as [`LiveSession`] lines.
    Sessions,
    /// Closes the live sessions of an account (it may log in again): every one, or only the
    /// one whose client is at `peer`.
    Disconnect {
        /// The account.
        name: String,
        /// The client's address, as [`Request::Sessions`] lists it.
        #[serde(default)]
        peer: Option<SocketAddr>,
    },
    /// Keeps an account from logging in or resuming, and closes its live sessions; its
    /// name, messages and groups stay.
    Disable {
        /// The account.
        name: String,
    },
    /// Lets a disabled account log in again.
    Enable {
        /// The account.
        name: String,
    },
    /// Deletes an account: its tokens, its view of its conversations and its place in
    /// groups go (groups it owns pass to their longest member, or go if it was alone), its
    /// live sessions are closed; its messages stay in the other side's history, and its
    /// name is never registered again.
    Delete {
        /// The account.
        name: String,
    },
    /// Creates an invite code, answered as one [`InviteCode`] line.
    CreateInvite {
        /// Registrations it allows.
        uses: u32,
        /// Seconds it works for; `None` for ever.
        expires_in_secs: Option<u64>,
    },
    /// Every invite code, as [`InviteCode`] lines.
    Invites,
    /// Revokes an invite code.
    RevokeInvite {
        /// The code.
        code: String,
    },
}

/// One invite code, as `CreateInvite` and `Invites` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteCode {
    /// The code, for `papo register --invite`.
    pub code: String,
    /// When it was created.
    pub created_at: UnixMillis,
    /// When it stops working, if ever.
    pub expires_at: Option<UnixMillis>,
    /// Registrations it still allows.
    pub uses_left: u32,
}

/// One account, as `Users` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Its name.
    pub name: Username,
    /// When it was created.
    pub created_at: UnixMillis,
    /// When its last session ended, if one ever did (while one is live, when the one before ended).
    pub last_seen: Option<UnixMillis>,
    /// `active`, or `disabled` by the administrator.
    pub status: AccountStatus,
}

/// How many names `Users` reads at a time, so a large store is listed in bounded memory.
const USERS_PAGE: usize = 256;

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
    /// Listens on the data directory's socket, answering from `shared` while it exists.
    pub(crate) fn start(dir: &Path, store: Weak<Shared>) -> io::Result<Self> {
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

fn serve(stream: &UnixStream, store: &Weak<Shared>) -> io::Result<()> {
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let mut out = BufWriter::new(stream);
    let outcome = match serde_json::from_str::<Request>(&line) {
        Err(e) => Outcome::Error(format!("not a request: {e}")),
        Ok(request) => match store.upgrade() {
            None => Outcome::Error("the server is stopping".into()),
            Some(shared) => answer(&request, &shared, &mut out),
        },
    };
    serde_json::to_writer(&mut out, &outcome)?;
    out.write_all(b"\n")?;
    out.flush()
}

fn answer(request: &Request, shared: &Shared, out: &mut impl Write) -> Outcome {
    let hub = &shared.hub;
    match request {
        Request::Sessions => {
            let sessions = hub.sessions();
            for session in &sessions {
                if let Err(e) = write_line(out, session) {
                    return Outcome::Error(e.to_string());
                }
            }
            info!(sessions = sessions.len(), "administrator listed the live sessions");
            Outcome::Done(format!("{} live sessions", sessions.len()))
        }
        Request::Disconnect { name, peer } => {
            let name = match account(&shared.store, name) {
                Ok(name) => name,
                Err(outcome) => return outcome,
            };
            match peer {
                None => {
                    let closed = hub.disconnect(&name, None, None);
                    info!(user = %name, sessions = closed, "administrator disconnected a user");
                    Outcome::Done(format!("disconnected {closed} sessions of {name}"))
                }
                Some(peer) if hub.disconnect_peer(&name, *peer) => {
                    info!(user = %name, %peer, "administrator disconnected a session");
                    Outcome::Done(format!("disconnected the session of {name} from {peer}"))
                }
                Some(peer) => Outcome::Error(format!(
                    "{name} has no live session from {peer}; `papo-server admin sessions` lists them"
                )),
            }
        }
        Request::ResetPassword { name, .. } | Request::Disable { name } => {
            let outcome = answer_from_store(request, &shared.store, shared.config.bcrypt_cost, out);
            // Whoever is logged in may still be there: a reset or a disabling that left
            // them there would not take the account back.
            let farewell = match request {
                Request::Disable { .. } => errors::account_disabled(),
                _ => ErrorReply::new(
                    ErrorCode::InvalidToken,
                    "the administrator reset this account's password; log in with the new one",
                ),
            };
            if let (Outcome::Done(summary), Ok(name)) = (&outcome, Username::parse(name)) {
                let closed = hub.disconnect(&name, None, Some(&farewell));
                info!(user = %name, sessions = closed, "disconnected the live sessions of the account");
                return Outcome::Done(format!("{summary}, disconnected {closed} sessions"));
            }
            outcome
        }
        Request::Delete { name } => {
            let (name, deleted) = match delete_account(&shared.store, name) {
                Ok(deleted) => deleted,
                Err(outcome) => return outcome,
            };
            let closed = hub.disconnect(&name, None, Some(&errors::account_deleted()));
            // Whoever lists contacts sees the account marked deleted, and the members of its
            // groups see it leave (and who owns the groups it owned).
            hub.send_to_subscribers(&frames::encode(&ServerFrame::Event(Event::UserDeleted {
                user: name.clone(),
            })));
            for (group, line) in &deleted.lines {
                match shared.store.member_names(*group) {
                    Ok(members) => {
                        let frame = frames::encode(&ServerFrame::Event(Event::GroupMessage(line.clone())));
                        hub.send_to_each(&members, &frame);
                    }
                    Err(e) => warn!(error = %e, "cannot tell a group's members that an account left it"),
                }
            }
            info!(user = %name, sessions = closed, "disconnected the live sessions of the deleted account");
            Outcome::Done(format!("{}, disconnected {closed} sessions", deleted_summary(&name, &deleted)))
        }
        Request::Export
        | Request::Users
        | Request::Enable { .. }
        | Request::CreateInvite { .. }
        | Request::Invites
        | Request::RevokeInvite { .. } => {
            answer_from_store(request, &shared.store, shared.config.bcrypt_cost, out)
        }
    }
}

/// Answers what needs only the store, the same way from a running server and from a stopped
/// one's directory; hashes new passwords at `bcrypt_cost`.
pub fn answer_from_store(
    request: &Request,
    store: &Store,
    bcrypt_cost: u32,
    out: &mut impl Write,
) -> Outcome {
    match request {
        Request::Export => match store.export(out, now_millis()) {
            Ok(counts) => {
                info!(users = counts.users, messages = counts.messages, "exported the store");
                Outcome::Done(format!("exported {} users and {} messages", counts.users, counts.messages))
            }
            Err(e) => Outcome::Error(e.to_string()),
        },
        Request::Users => match list_users(store, out) {
            Ok(users) => {
                info!(users, "administrator listed the accounts");
                Outcome::Done(format!("{users} accounts"))
            }
            Err(e) => Outcome::Error(e),
        },
        Request::ResetPassword { name, password } => {
            reset_password(store, name, password, bcrypt_cost).unwrap_or_else(|refused| refused)
        }
        Request::Disable { name } => {
            let said = ("disabled", "was already disabled");
            set_status(store, name, AccountStatus::Disabled, said).unwrap_or_else(|refused| refused)
        }
        Request::CreateInvite { uses, expires_in_secs } => {
            create_invite(store, *uses, *expires_in_secs, out).unwrap_or_else(|refused| refused)
        }
        Request::Invites => match store.invites() {
            Ok(invites) => {
                for (code, record) in &invites {
                    if let Err(e) = write_line(out, &invite_code(code, *record)) {
                        return Outcome::Error(e.to_string());
                    }
                }
                info!(invites = invites.len(), "administrator listed the invite codes");
                Outcome::Done(format!("{} invite codes", invites.len()))
            }
            Err(e) => Outcome::Error(e.to_string()),
        },
        Request::RevokeInvite { code } => match store.revoke_invite(code) {
            Ok(true) => {
                info!(code = %code, "administrator revoked an invite code");
                Outcome::Done(format!("revoked the invite code {code}"))
            }
            Ok(false) => Outcome::Error(format!(
                "there is no invite code {code:?} (used up, or never created); `papo-server admin invite list` lists them"
            )),
            Err(e) => Outcome::Error(e.to_string()),
        },
        Request::Delete { name } => match delete_account(store, name) {
            Ok((name, deleted)) => Outcome::Done(deleted_summary(&name, &deleted)),
            Err(refused) => refused,
        },
        Request::Enable { name } => {
            let said = ("enabled", "was not disabled");
            set_status(store, name, AccountStatus::Active, said).unwrap_or_else(|refused| refused)
        }
        Request::Sessions | Request::Disconnect { .. } => Outcome::Error(
            "no server is running on this data directory, so there are no live sessions".into(),
        ),
    }
}

fn list_users(store: &Store, out: &mut impl Write) -> Result<u64, String> {
    let mut after = None;
    let mut listed = 0;
    loop {
        let (names, more) = store.users_after(after.as_ref(), USERS_PAGE).map_err(|e| e.to_string())?;
        for name in names {
            let record = store.user(&name).map_err(|e| e.to_string())?;
            let Some(record) = record else { continue };
            let last_seen = store.last_seen(&name).map_err(|e| e.to_string())?;
            let account = Account {
                name: name.clone(),
                created_at: record.created_at,
                last_seen,
                status: record.status,
            };
            write_line(out, &account).map_err(|e| e.to_string())?;
            listed += 1;
            after = Some(name);
        }
        if !more {
            return Ok(listed);
        }
    }
}

fn reset_password(store: &Store, name: &str, password: &str, bcrypt_cost: u32) -> Result<Outcome, Outcome> {
    let name = account(store, name)?;
    if !PASSWORD_LEN.contains(&password.len()) {
        return Err(Outcome::Error(format!(
            "the password must be {} to {} bytes long",
            PASSWORD_LEN.start(),
            PASSWORD_LEN.end()
        )));
    }
    let hash =
        bcrypt::hash(password, bcrypt_cost).map_err(|e| Outcome::Error(format!("cannot hash: {e}")))?;
    match store.change_password(&name, &hash, None) {
        Ok(Some(revoked)) => {
            info!(user = %name, revoked, "administrator reset a password");
            Ok(Outcome::Done(format!("reset the password of {name}, revoked {revoked} saved sessions")))
        }
        Ok(None) => Err(no_such_account(&name)),
        Err(e) => Err(Outcome::Error(e.to_string())),
    }
}

fn create_invite(
    store: &Store,
    uses: u32,
    expires_in_secs: Option<u64>,
    out: &mut impl Write,
) -> Result<Outcome, Outcome> {
    if uses == 0 {
        return Err(Outcome::Error("an invite code must allow at least one registration".into()));
    }
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(|e| Outcome::Error(format!("no randomness for a code: {e}")))?;
    let code: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let now = now_millis();
    let expires_at = expires_in_secs
        .map(|secs| now.saturating_add(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)));
    let record = InviteRecord { created_at: now, expires_at, uses_left: uses };
    store.create_invite(&code, record).map_err(|e| Outcome::Error(e.to_string()))?;
    info!(code = %code, uses, ?expires_at, "administrator created an invite code");
    write_line(out, &invite_code(&code, record)).map_err(|e| Outcome::Error(e.to_string()))?;
    Ok(Outcome::Done(format!("created an invite code for {uses} registrations")))
}

fn invite_code(code: &str, record: InviteRecord) -> InviteCode {
    InviteCode {
        code: code.to_owned(),
        created_at: record.created_at,
        expires_at: record.expires_at,
        uses_left: record.uses_left,
    }
}

/// Deletes the account called `name`, and logs what went with it.
fn delete_account(store: &Store, name: &str) -> Result<(Username, DeletedAccount), Outcome> {
    let name = account(store, name)?;
    match store.delete_account(&name, now_millis()) {
        Ok(Some(deleted)) => {
            info!(
                user = %name,
                revoked = deleted.revoked,
                groups_left = deleted.groups_left(),
                groups_deleted = deleted.groups_deleted.len(),
                "administrator deleted an account"
            );
            Ok((name, deleted))
        }
        Ok(None) => Err(no_such_account(&name)),
        Err(e) => Err(Outcome::Error(e.to_string())),
    }
}

fn deleted_summary(name: &Username, deleted: &DeletedAccount) -> String {
    format!(
        "deleted {name}, revoked {} saved sessions, left {} groups, deleted {} groups",
        deleted.revoked,
        deleted.groups_left(),
        deleted.groups_deleted.len()
    )
}

/// Sets an account's status; `said` is what was done and what it means when nothing changed.
fn set_status(
    store: &Store,
    name: &str,
    status: AccountStatus,
    (done, already): (&str, &str),
) -> Result<Outcome, Outcome> {
    let name = account(store, name)?;
    match store.set_account_status(&name, status) {
        Ok(Some(changed)) => {
            info!(user = %name, changed, "administrator {done} an account");
            Ok(Outcome::Done(if changed { format!("{done} {name}") } else { format!("{name} {already}") }))
        }
        Ok(None) => Err(no_such_account(&name)),
        Err(e) => Err(Outcome::Error(e.to_string())),
    }
}

/// The registered account called `name`, or the error to answer.
fn account(store: &Store, name: &str) -> Result<Username, Outcome> {
    let parsed =
        Username::parse(name).map_err(|e| Outcome::Error(format!("{name:?} is not a user name: {e}")))?;
    match store.user_exists(&parsed) {
        Ok(true) => Ok(parsed),
        Ok(false) => Err(no_such_account(&parsed)),
        Err(e) => Err(Outcome::Error(e.to_string())),
    }
}

fn no_such_account(name: &Username) -> Outcome {
    Outcome::Error(format!("there is no account called {name}; `papo-server admin users` lists them"))
}

fn write_line(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::other)?;
    out.write_all(b"\n")
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
