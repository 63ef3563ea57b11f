//! Accounts and logins: `Register`, `Login`, `Resume`, `Logout`, `LogoutEverywhere`,
//! `ChangePassword`.

use papo_protocol::{ErrorCode, ErrorReply, Event, LoggedIn, Reply, Username, PASSWORD_LEN};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::{Audience, Context, Delivery, Handled, Identity, Then};
use crate::errors;
use crate::store::{AccountChanged, AccountStatus, Invite, Registered, StoreError, TokenRecord, UserRecord};
use crate::Registration;

/// Creates an account, and tells the sessions that follow contacts about it.
///
/// The registration policy is checked first, before any work; an invite code is checked and
/// used up in the same committed write as the account (so that of several registrations
/// with one single-use code exactly one succeeds), and only when the policy asks for one.
pub(super) fn register(
    ctx: &Context<'_>,
    name: &str,
    password: &str,
    invite: Option<&str>,
) -> Result<Handled, ErrorReply> {
    let invite = match (ctx.config.registration.get(), invite) {
        (Registration::Open, _) => None,
        (Registration::Closed, _) => {
            return Err(ErrorReply::new(
                ErrorCode::RegistrationClosed,
                "this server takes no new accounts; ask its administrator",
            ))
        }
        (Registration::Invite, None) => {
            return Err(ErrorReply::new(
                ErrorCode::InviteRequired,
                "this server creates accounts only with an invite code; ask its administrator for one",
            ))
        }
        (Registration::Invite, Some(code)) => {
            Some(Invite { code: code.to_owned(), now: ctx.clock.now_millis() })
        }
    };
    let name = Username::parse(name)
        .map_err(|e| ErrorReply::new(ErrorCode::InvalidName, format!("cannot use that name: {e}")))?;
    check_length(password)?;
    let address = ctx.peer.ip();
    ctx.limits.register(address, ctx.clock.instant()).map_err(|wait| {
        info!(peer = %ctx.peer, "registration refused: too many from this address");
        rate_limited("too many accounts created from your machine", wait)
    })?;
    let password_hash = hash_password(ctx, password)?;
    let record =
        UserRecord { password_hash, created_at: ctx.clock.now_millis(), status: AccountStatus::Active };
    match ctx.store.register(&name, &record, invite).map_err(|e| errors::from_store(&e))? {
        Registered::Created => {}
        Registered::NameTaken => {
            return Err(ErrorReply::new(
                ErrorCode::NameTaken,
                format!("the name {name} is taken; pick another"),
            ))
        }
        Registered::InviteInvalid => {
            info!(peer = %ctx.peer, "registration refused: an invalid invite code");
            return Err(ErrorReply::new(
                ErrorCode::InviteInvalid,
                "that invite code is unknown, used up, expired or revoked; ask the administrator for another",
            ));
        }
    }
    info!(user = %name, peer = %ctx.peer, "account created");
    let announce = Delivery { to: Audience::Subscribers, events: vec![Event::UserRegistered { user: name }] };
    Ok(Handled::reply(Reply::Registered).delivering(vec![announce]))
}

/// Logs in with a password.
///
/// The attempt is counted before any password is checked (so guesses sent at once cannot
/// all slip past the limit), by name from this address, by address, and by name from
/// anywhere; the check runs in the shared password pool, in this address's turn. Unknown
/// names and wrong passwords get the same reply after the same bcrypt work, so replies
/// reveal nothing about which names exist.
pub(super) fn login(ctx: &Context<'_>, name: &str, password: &str) -> Result<Handled, ErrorReply> {
    let address = ctx.peer.ip();
    let attempt = ctx.limits.login(address, name, ctx.clock.instant()).map_err(|wait| {
        info!(peer = %ctx.peer, "login refused: too many attempts");
        rate_limited("too many login attempts from your machine or for this name", wait)
    })?;
    // A deleted account's tombstone is no account: it costs the same as an unknown name.
    let user = match Username::parse(name) {
        Ok(user) => ctx
            .store
            .user(&user)
            .map_err(|e| errors::from_store(&e))?
            .filter(|record| record.status != AccountStatus::Deleted)
            .map(|record| (user, record)),
        Err(_) => None,
    };
    let hash = user.as_ref().map_or(ctx.dummy_hash, |(_, record)| &record.password_hash).to_owned();
    let password = password.to_owned();
    let Ok(matches) = ctx.passwords.run(address, move || bcrypt::verify(password, &hash).unwrap_or(false))
    else {
        ctx.limits.login_unchecked(attempt);
        return Err(busy());
    };
    let Some((user, record)) = user.filter(|_| matches) else {
        info!(peer = %ctx.peer, "failed login");
        return Err(ErrorReply::new(ErrorCode::InvalidCredentials, "wrong name or password"));
    };
    ctx.limits.login_succeeded(attempt);
    // Said only to whoever knows the password, so it reveals nothing to a guesser.
    if record.status == AccountStatus::Disabled {
        info!(user = %user, peer = %ctx.peer, "login refused: the account is disabled");
        return Err(errors::account_disabled());
    }
    start_session(ctx, user, &record.password_hash, Proof::Password)
}

/// Changes the caller's password, and revokes every resume token of theirs but this
/// session's, so a client that knew the old password cannot come back with a saved session.
///
/// The old password is checked like a login's (counted first, in the password pool), so
/// a stolen session cannot guess it any faster than a login could.
pub(super) fn change_password(
    ctx: &Context<'_>,
    me: &Identity,
    old: &str,
    new: &str,
) -> Result<Handled, ErrorReply> {
    check_length(new)?;
    let address = ctx.peer.ip();
    let attempt = ctx.limits.login(address, me.name.as_str(), ctx.clock.instant()).map_err(|wait| {
        info!(user = %me.name, peer = %ctx.peer, "password change refused: too many attempts");
        rate_limited("too many password attempts from your machine or for this name", wait)
    })?;
    let record = ctx.store.user(&me.name).map_err(|e| errors::from_store(&e))?;
    let hash = record.map_or_else(|| ctx.dummy_hash.to_owned(), |record| record.password_hash);
    let old = old.to_owned();
    let Ok(matches) = ctx.passwords.run(address, move || bcrypt::verify(old, &hash).unwrap_or(false)) else {
        ctx.limits.login_unchecked(attempt);
        return Err(busy());
    };
    if !matches {
        info!(user = %me.name, peer = %ctx.peer, "failed password change: wrong old password");
        return Err(ErrorReply::new(ErrorCode::InvalidCredentials, "the current password is wrong"));
    }
    ctx.limits.login_succeeded(attempt);
    let password_hash = hash_password(ctx, new)?;
    let revoked = ctx
        .store
        .change_password(&me.name, &password_hash, Some(&me.token_hash))
        .map_err(|e| errors::from_store(&e))?
        .ok_or_else(|| ErrorReply::new(ErrorCode::Internal, "the account is gone"))?;
    info!(user = %me.name, peer = %ctx.peer, revoked, "password changed");
    Ok(Handled::reply(Reply::Done))
}

/// Refuses a new password outside the protocol's lengths.
fn check_length(password: &str) -> Result<(), ErrorReply> {
    if PASSWORD_LEN.contains(&password.len()) {
        return Ok(());
    }
    Err(ErrorReply::new(
        ErrorCode::InvalidPassword,
        format!("the password must be {} to {} bytes long", PASSWORD_LEN.start(), PASSWORD_LEN.end()),
    ))
}

/// Hashes a new password at the configured cost, in the password pool in this address's turn.
fn hash_password(ctx: &Context<'_>, password: &str) -> Result<String, ErrorReply> {
    let (password, cost) = (password.to_owned(), ctx.config.bcrypt_cost);
    ctx.passwords.run(ctx.peer.ip(), move || bcrypt::hash(password, cost)).map_err(|_| busy())?.map_err(|e| {
        warn!(error = %e, "hashing a password failed");
        ErrorReply::new(ErrorCode::Internal, "the server could not hash the password")
    })
}

/// The reply to an attempt over a limit, saying when to try again.
fn rate_limited(what: &str, wait: std::time::Duration) -> ErrorReply {
    ErrorReply::new(ErrorCode::RateLimited, format!("{what}; try again in {} s", wait.as_secs().max(1)))
}

/// The reply when this address already has its share of password checks waiting.
fn busy() -> ErrorReply {
    ErrorReply::new(
        ErrorCode::RateLimited,
        "too many logins from your machine at once; try again in a few seconds",
    )
}

/// Logs in with a resume token.
pub(super) fn resume(ctx: &Context<'_>, token: &str) -> Result<Handled, ErrorReply> {
    let token_hash = hash_token(token);
    let invalid =
        || ErrorReply::new(ErrorCode::InvalidToken, "the saved session expired; log in with your password");
    // The token is single-use, taken on the committer: of several sessions resuming with it
    // at once, exactly one succeeds. Resuming hands out a fresh one.
    let (record, account) =
        ctx.store.take_token(&token_hash).map_err(|e| errors::from_store(&e))?.ok_or_else(invalid)?;
    if record.expires_at <= ctx.clock.now_millis() {
        return Err(invalid());
    }
    if account.status == AccountStatus::Disabled {
        info!(user = %record.user, peer = %ctx.peer, "resume refused: the account is disabled");
        return Err(errors::account_disabled());
    }
    start_session(ctx, record.user, &account.password_hash, Proof::Token)
}

/// Revokes the session's token; the connection closes after the reply, whatever it says.
pub(super) fn logout(ctx: &Context<'_>, me: &Identity) -> Handled {
    let reply = match ctx.store.remove_token(&me.token_hash) {
        Ok(()) => {
            info!(user = %me.name, peer = %ctx.peer, "logged out");
            Ok(Reply::Done)
        }
        Err(e) => Err(errors::from_store(&e)),
    };
    Handled { reply: Some(reply), deliveries: Vec::new(), then: Then::Close }
}

/// Revokes every resume token of the account and closes its other sessions; this one
/// closes after the reply, as with [`logout`].
pub(super) fn logout_everywhere(ctx: &Context<'_>, me: &Identity) -> Handled {
    let reply = match ctx.store.revoke_tokens(&me.name) {
        Ok(revoked) => {
            let farewell = ErrorReply::new(
                ErrorCode::InvalidToken,
                "this account was logged out everywhere from another session; log in again",
            );
            let closed = ctx.hub.disconnect(&me.name, Some(ctx.session), Some(&farewell));
            info!(user = %me.name, peer = %ctx.peer, revoked, closed, "logged out everywhere");
            Ok(Reply::Done)
        }
        Err(e) => Err(errors::from_store(&e)),
    };
    Handled { reply: Some(reply), deliveries: Vec::new(), then: Then::Close }
}

/// Issues a token and counts the waiting messages; the session then joins the hub.
///
/// `authenticated` is the password hash the session proved itself against (checked by a
/// login, or current when a resume took its token): if a password change came in between,
/// the token is not saved and the session does not start, or it would outlive the change.
fn start_session(
    ctx: &Context<'_>,
    name: Username,
    authenticated: &str,
    proof: Proof,
) -> Result<Handled, ErrorReply> {
    let token = new_token().map_err(|e| {
        warn!(error = %e, "no randomness for a token");
        ErrorReply::new(ErrorCode::Internal, "the server could not create a session")
    })?;
    let token_hash = hash_token(&token);
    let lifetime = i64::try_from(ctx.config.token_lifetime.as_millis()).unwrap_or(i64::MAX);
    let record =
        TokenRecord { user: name.clone(), expires_at: ctx.clock.now_millis().saturating_add(lifetime) };
    match ctx.store.save_token(&token_hash, &record, authenticated) {
        Ok(Ok(())) => {}
        Ok(Err(changed)) => {
            info!(user = %name, peer = %ctx.peer, ?changed, "login refused: the account changed meanwhile");
            return Err(account_changed(changed, proof));
        }
        // A full disk must not keep people out: the session works, only resuming it later
        // asks for the password again.
        Err(e @ StoreError::StorageFull { .. }) => {
            warn!(user = %name, error = %e, "logging in without a saved session: the disk is full")
        }
        Err(e) => return Err(errors::from_store(&e)),
    }
    let pending = ctx.store.pending_count(&name).map_err(|e| errors::from_store(&e))?;
    info!(user = %name, peer = %ctx.peer, pending, "logged in");
    let reply = Reply::LoggedIn(LoggedIn { name: name.clone(), token, pending });
    Ok(Handled { then: Then::LoggedIn(Identity { name, token_hash }), ..Handled::reply(reply) })
}

/// How a session proved who it is.
#[derive(Debug, Clone, Copy)]
enum Proof {
    Password,
    /// A resume token: refusals say the saved session is over, as for an expired token.
    Token,
}

/// The reply to a login or resume that a change of the account overtook.
fn account_changed(changed: AccountChanged, proof: Proof) -> ErrorReply {
    let code = match proof {
        Proof::Password => ErrorCode::InvalidCredentials,
        Proof::Token => ErrorCode::InvalidToken,
    };
    match changed {
        AccountChanged::PasswordChanged => {
            ErrorReply::new(code, "the password was changed meanwhile; log in with the new password")
        }
        AccountChanged::Gone => ErrorReply::new(code, "there is no such account"),
        AccountChanged::Disabled => errors::account_disabled(),
    }
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

#[cfg(test)]
mod tests;
