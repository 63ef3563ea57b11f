//! Accounts and logins: `Register`, `Login`, `Resume`, `Logout`.

use std::time::Instant;

use papo_protocol::{ErrorCode, ErrorReply, LoggedIn, Reply, Username, PASSWORD_LEN};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::clock::now_millis;
use crate::session::{internal, Identity, Outcome, Session};
use crate::store::{StoreError, TokenRecord, UserRecord};

/// Creates an account.
pub(crate) fn register(session: &Session<'_>, name: &str, password: &str) -> Outcome {
    let name = Username::parse(name)
        .map_err(|e| ErrorReply::new(ErrorCode::InvalidName, format!("cannot use that name: {e}")))?;
    if !PASSWORD_LEN.contains(&password.len()) {
        return Err(ErrorReply::new(
            ErrorCode::InvalidPassword,
            format!("the password must be {} to {} bytes long", PASSWORD_LEN.start(), PASSWORD_LEN.end()),
        ));
    }
    let shared = session.shared;
    let password_hash = bcrypt::hash(password, shared.config.bcrypt_cost).map_err(|e| {
        warn!(error = %e, "hashing a password failed");
        ErrorReply::new(ErrorCode::Internal, "the server could not hash the password")
    })?;
    let record = UserRecord { password_hash, created_at: now_millis() };
    if !shared.store.create_user(&name, &record).map_err(|e| internal(&e))? {
        return Err(ErrorReply::new(ErrorCode::NameTaken, format!("the name {name} is taken; pick another")));
    }
    info!(user = %name, peer = %session.peer, "account created");
    shared.hub.announce_user(&name);
    Ok(Reply::Registered)
}

/// Logs in with a password.
///
/// Unknown names and wrong passwords get the same reply after the same bcrypt work, and
/// both count towards the name's throttle, so replies reveal nothing about which names exist.
pub(crate) fn login(session: &mut Session<'_>, name: &str, password: &str) -> Outcome {
    if session.identity.is_some() {
        return Err(ErrorReply::new(ErrorCode::AlreadyLoggedIn, "this connection is already logged in"));
    }
    let shared = session.shared;
    let throttle_key = name.to_ascii_lowercase();
    if let Err(wait) = shared.throttle.check(&throttle_key, Instant::now()) {
        return Err(ErrorReply::new(
            ErrorCode::RateLimited,
            format!("too many failed logins for this name; try again in {} s", wait.as_secs().max(1)),
        ));
    }
    let user = match Username::parse(name) {
        Ok(user) => shared.store.user(&user).map_err(|e| internal(&e))?.map(|record| (user, record)),
        Err(_) => None,
    };
    let hash = user.as_ref().map_or(shared.dummy_hash.as_str(), |(_, record)| &record.password_hash);
    let matches = bcrypt::verify(password, hash).unwrap_or(false);
    let Some((user, _)) = user.filter(|_| matches) else {
        shared.throttle.record_failure(&throttle_key, Instant::now());
        info!(peer = %session.peer, "failed login");
        return Err(ErrorReply::new(ErrorCode::InvalidCredentials, "wrong name or password"));
    };
    shared.throttle.record_success(&throttle_key);
    start_session(session, user)
}

/// Logs in with a resume token.
pub(crate) fn resume(session: &mut Session<'_>, token: &str) -> Outcome {
    if session.identity.is_some() {
        return Err(ErrorReply::new(ErrorCode::AlreadyLoggedIn, "this connection is already logged in"));
    }
    let store = &session.shared.store;
    let token_hash = hash_token(token);
    let invalid =
        || ErrorReply::new(ErrorCode::InvalidToken, "the saved session expired; log in with your password");
    // The token is single-use, taken on the committer: of several sessions resuming with it
    // at once, exactly one succeeds. Resuming hands out a fresh one.
    let record = store.take_token(&token_hash).map_err(|e| internal(&e))?.ok_or_else(invalid)?;
    if record.expires_at <= now_millis() {
        return Err(invalid());
    }
    start_session(session, record.user)
}

/// Revokes the session's token; the caller closes the connection.
pub(crate) fn logout(session: &mut Session<'_>) -> Outcome {
    let Some(identity) = &session.identity else {
        return Err(ErrorReply::new(ErrorCode::NotLoggedIn, "log in first"));
    };
    session.shared.store.remove_token(&identity.token_hash).map_err(|e| internal(&e))?;
    info!(user = %identity.name, peer = %session.peer, "logged out");
    Ok(Reply::Done)
}

/// Issues a token, joins the hub and counts the waiting messages.
fn start_session(session: &mut Session<'_>, name: Username) -> Outcome {
    let shared = session.shared;
    let token = new_token().map_err(|e| {
        warn!(error = %e, "no randomness for a token");
        ErrorReply::new(ErrorCode::Internal, "the server could not create a session")
    })?;
    let token_hash = hash_token(&token);
    let lifetime = i64::try_from(shared.config.token_lifetime.as_millis()).unwrap_or(i64::MAX);
    let record = TokenRecord { user: name.clone(), expires_at: now_millis().saturating_add(lifetime) };
    match shared.store.put_token(&token_hash, &record) {
        Ok(()) => {}
        // A full disk must not keep people out: the session works, only resuming it later
        // asks for the password again.
        Err(e @ StoreError::StorageFull { .. }) => {
            warn!(user = %name, error = %e, "logging in without a saved session: the disk is full")
        }
        Err(e) => return Err(internal(&e)),
    }
    let pending = shared.store.pending_count(&name).map_err(|e| internal(&e))?;
    shared.hub.join(&name, session.id, session.outbox.clone());
    info!(user = %name, peer = %session.peer, pending, "logged in");
    session.identity = Some(Identity { name: name.clone(), token_hash });
    Ok(Reply::LoggedIn(LoggedIn { name, token, pending }))
}

/// 256 random bits, hex-encoded.
fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Tokens are stored only as hashes, so a copy of the data directory cannot resume sessions.
fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A hash to verify against when the user does not exist, at the configured cost.
pub(crate) fn dummy_hash(cost: u32) -> Result<String, bcrypt::BcryptError> {
    bcrypt::hash("papo: no such user, same work", cost)
}
