//! The scriptable subcommands: one connection, one job, plain-text output.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use papo_protocol::{
    ChatMessage, Client, ClientError, Fingerprint, GroupName, MessageId, Reply, Request, Security,
    TrustError, UnixMillis, MAX_HISTORY_PAGE, MAX_SEARCH_PAGE,
};
use time::OffsetDateTime;

use crate::known_servers::KnownServers;
use crate::{group_cli, sanitize};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How the commands introduce themselves in the handshake.
const CLIENT_NAME: &str = concat!("papo-cli ", env!("CARGO_PKG_VERSION"));

/// Who runs a command, and where.
#[derive(Debug, Clone)]
pub struct Account {
    /// `HOST:PORT`.
    pub server: String,
    /// Account name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Plaintext, or TLS with the fingerprint from `--trust-fingerprint` or `known_servers`.
    pub security: Security,
    /// The `known_servers` file, named in advice about a changed certificate.
    pub known_servers: PathBuf,
    /// Whether the fingerprint to trust was given (`--trust-fingerprint`) rather than read
    /// from `known_servers`, for the advice when the server presents another.
    pub fingerprint_given: bool,
}

/// Advice of several lines about an untrusted certificate: our own text, so its line breaks
/// may reach the terminal (every other error is printed on one line).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrustAdvice(pub String);

/// Reads the password from `PAPO_PASSWORD` or, if asked, the first line of standard input.
pub fn password(from_stdin: bool) -> Result<String> {
    secret(from_stdin, "PAPO_PASSWORD", "password", "pass --password-stdin and pipe it in")
}

/// The new password for `papo passwd`: from `PAPO_NEW_PASSWORD` or, if asked, the line of
/// standard input after the current password.
pub fn new_password(from_stdin: bool) -> Result<String> {
    secret(
        from_stdin,
        "PAPO_NEW_PASSWORD",
        "new password",
        "pass --password-stdin with it on the second line",
    )
}

/// The next line of standard input if `from_stdin`, else the variable `var`.
fn secret(from_stdin: bool, var: &str, what: &str, stdin_hint: &str) -> Result<String> {
    if from_stdin {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .with_context(|| format!("cannot read the {what} from standard input"))?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("standard input held no {what}");
        }
        return Ok(password);
    }
    std::env::var(var).map_err(|_| anyhow::anyhow!("no {what} given: set {var} or {stdin_hint}"))
}

/// `papo register`: creates the account, with an invite code if one is given.
pub fn register(account: &Account, invite: Option<&str>) -> Result<()> {
    let mut client = connect(account)?;
    client
        .register_with_invite(&account.user, &account.password, invite)
        .context("cannot create the account")?;
    println!("created account {}", account.user.to_ascii_lowercase());
    Ok(())
}

/// `papo send`: sends one message and waits until the server has stored it.
pub fn send(account: &Account, to: &str, body: &str, client_msg_id: u64) -> Result<()> {
    let mut client = login(account)?;
    client.send(to, body, client_msg_id).with_context(|| format!("cannot send to {to}"))?;
    logout(client);
    Ok(())
}

/// `papo history`: the last `limit` messages with `with`, oldest first.
pub fn history(account: &Account, with: &str, limit: usize, out: &mut impl Write) -> Result<()> {
    if GroupName::is_group(with) {
        return group_cli::history(account, with, limit, out);
    }
    let mut client = login(account)?;
    let newest_first = newest(limit, |before, want| {
        let page =
            client.history(with, before, want).with_context(|| format!("cannot read history with {with}"))?;
        Ok(Kept { before: page.messages.last().map(|m| m.id), more: page.more, items: page.messages })
    })?;
    logout(client);
    for message in newest_first.iter().rev() {
        write_message(out, message)?;
    }
    Ok(())
}

/// What `papo history` keeps of one page of a history: its items, newest first, where the
/// next (older) page starts, and whether there is one.
pub(crate) struct Kept<T> {
    pub items: Vec<T>,
    pub before: Option<MessageId>,
    pub more: bool,
}

/// The newest `limit` items of a history, newest first, read a page at a time by
/// `read(before, want)`.
pub(crate) fn newest<T>(
    limit: usize,
    mut read: impl FnMut(Option<MessageId>, u32) -> Result<Kept<T>>,
) -> Result<Vec<T>> {
    let mut newest_first = Vec::new();
    let mut before = None;
    while newest_first.len() < limit {
        let want = u32::try_from(limit - newest_first.len())
            .map_or(MAX_HISTORY_PAGE, |left| left.min(MAX_HISTORY_PAGE));
        let page = read(before, want)?;
        before = page.before;
        newest_first.extend(page.items);
        if !page.more {
            break;
        }
    }
    newest_first.truncate(limit);
    Ok(newest_first)
}

/// One message as scripts read it: `<RFC 3339 time> <from> -> <to>: <body>`.
fn write_message(out: &mut impl Write, message: &ChatMessage) -> io::Result<()> {
    write_line(out, message.sent_at, message.from.as_str(), message.to.as_str(), &message.body)
}

/// A message of a user or a group in that format, the body sanitised.
pub(crate) fn write_line(
    out: &mut impl Write,
    sent_at: UnixMillis,
    from: &str,
    to: &str,
    body: &str,
) -> io::Result<()> {
    writeln!(out, "{} {from} -> {to}: {}", rfc3339(sent_at), sanitize::script_line(body))
}

/// `papo search`: up to `limit` of the newest messages holding `text` (ignoring case) in
/// the user's conversations and groups, or only the one with `with` (a user or `#group`), printed oldest first as
/// [`history`] prints them; nothing at all when nothing matches.
pub fn search(
    account: &Account,
    text: &str,
    with: Option<&str>,
    limit: usize,
    out: &mut impl Write,
) -> Result<()> {
    let mut client = login(account)?;
    // (id, sent at, from, to, body) of direct and group matches alike.
    let mut newest_first: Vec<(MessageId, UnixMillis, String, String, String)> = Vec::new();
    let mut before = None;
    while newest_first.len() < limit {
        let want = u32::try_from(limit - newest_first.len())
            .map_or(MAX_SEARCH_PAGE, |left| left.min(MAX_SEARCH_PAGE));
        let page = client.search(text, with, before, want).context("cannot search")?;
        let mut hits: Vec<_> = page
            .hits
            .into_iter()
            .map(|m| (m.id, m.sent_at, m.from.to_string(), m.to.to_string(), m.body))
            .chain(
                page.group_hits
                    .into_iter()
                    .map(|l| (l.id, l.sent_at, l.from.to_string(), l.group.to_string(), l.body)),
            )
            .collect();
        hits.sort_unstable_by_key(|hit| std::cmp::Reverse(hit.0));
        newest_first.extend(hits);
        // A page may hold fewer matches than asked and still go on: the server reads a
        // bounded number of messages per request.
        match page.next_before {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    logout(client);
    newest_first.truncate(limit);
    for (_, sent_at, from, to, body) in newest_first.iter().rev() {
        write_line(out, *sent_at, from, to, body)?;
    }
    Ok(())
}

/// `papo contacts`: every other user with presence and unread count, and with `long` when
/// they were last seen online (RFC 3339, `-` if never or online now).
pub fn contacts(account: &Account, long: bool, out: &mut impl Write) -> Result<()> {
    let mut client = login(account)?;
    let all = client.contacts().context("cannot list contacts")?;
    logout(client);
    for contact in all {
        let presence = if contact.online { "online" } else { "offline" };
        write!(out, "{} {presence} {}", contact.name, contact.unread)?;
        if long {
            let seen = contact.last_seen.filter(|_| !contact.online).map_or_else(|| "-".to_owned(), rfc3339);
            write!(out, " {seen}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// `papo passwd`: changes the account's password to `new`; the sessions already open stay.
pub fn passwd(account: &Account, new: &str) -> Result<()> {
    let mut client = login(account)?;
    let request = Request::ChangePassword { old: account.password.clone(), new: new.to_owned() };
    let reply = client.request(request).context("cannot change the password")?;
    logout(client);
    if reply != Reply::Done {
        bail!("the server answered {reply:?} to the password change; nothing may have changed");
    }
    println!("changed the password of {}", account.user.to_ascii_lowercase());
    Ok(())
}

/// `papo logout-all`: revokes every saved session of the account and closes its
/// connections; the server then closes this one too.
pub fn logout_all(account: &Account) -> Result<()> {
    let mut client = login(account)?;
    let reply = client.request(Request::LogoutEverywhere).context("cannot log out everywhere")?;
    if reply != Reply::Done {
        bail!("the server answered {reply:?} to logging out everywhere; nothing may have changed");
    }
    println!("logged out every session of {}", account.user.to_ascii_lowercase());
    Ok(())
}

fn connect(account: &Account) -> Result<Client> {
    Client::connect(&account.server, &account.security, CLIENT_NAME, CONNECT_TIMEOUT).map_err(|e| match e {
        ClientError::Trust(refusal) => anyhow::Error::new(TrustAdvice(trust_advice(
            &refusal,
            &account.server,
            &account.known_servers,
            account.fingerprint_given,
        ))),
        // Its message already ends with the cause, which anyhow would print a second time.
        unreachable @ ClientError::Connect { .. } => anyhow::anyhow!(unreachable.to_string()),
        other => other.into(),
    })
}

/// `papo trust`: remembers the certificate `server` presents in `known` once the user has
/// confirmed it, by giving its fingerprint or by answering the question on `input`.
pub fn trust(
    server: &str,
    given: Option<Fingerprint>,
    known: &KnownServers,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> Result<()> {
    let presented = match Client::connect(server, &Security::tls(None), CLIENT_NAME, CONNECT_TIMEOUT) {
        Ok(_) => {
            writeln!(
                out,
                "{server} has a certificate from an authority this system trusts; nothing to remember"
            )?;
            return Ok(());
        }
        Err(ClientError::Trust(TrustError::Unknown { presented })) => presented,
        Err(unreachable @ ClientError::Connect { .. }) => bail!("{unreachable}"),
        Err(e) => return Err(e).with_context(|| format!("cannot check the certificate of {server}")),
    };
    if let Some(pinned) = known.lookup(server)? {
        if pinned == presented {
            writeln!(out, "{server} is already trusted: {presented}")?;
            return Ok(());
        }
        return Err(TrustAdvice(trust_advice(
            &TrustError::Changed { pinned, presented },
            server,
            known.path(),
            false,
        ))
        .into());
    }
    match given {
        Some(given) if given == presented => {}
        Some(given) => return Err(TrustAdvice(mismatch_advice(server, given, presented)).into()),
        None => {
            write!(
                out,
                "{server} presents a certificate that no trusted authority signed. Its SHA-256 fingerprint is\n  \
                 {presented}\n\
                 Compare it with the fingerprint papo-server logged at startup (ask whoever runs it).\n\
                 Trust it? Type yes (or paste the fingerprint): "
            )?;
            out.flush()?;
            let mut answer = String::new();
            input.read_line(&mut answer).context("cannot read the answer")?;
            let answer = answer.trim();
            if !answer.eq_ignore_ascii_case("yes") && answer.parse::<Fingerprint>() != Ok(presented) {
                bail!("{server} is not trusted; nothing was saved");
            }
        }
    }
    known.trust(server, presented)?;
    writeln!(out, "trusted {server} {presented} (remembered in {})", known.path().display())?;
    Ok(())
}

/// What a script's user must check and do when the certificate is not trusted.
fn trust_advice(refusal: &TrustError, server: &str, known_servers: &Path, fingerprint_given: bool) -> String {
    match refusal {
        TrustError::Unknown { presented } => format!(
            "the TLS certificate of {server} is not signed by a trusted authority and is not in {} yet.\n\
             Its SHA-256 fingerprint is {presented}\n\
             Compare it with the fingerprint papo-server logged at startup; if they match, remember it with\n  \
             papo trust {server} {presented}\n\
             (or pass --trust-fingerprint {presented} to each command).",
            known_servers.display()
        ),
        TrustError::Changed { pinned, presented } if fingerprint_given => {
            mismatch_advice(server, *pinned, *presented)
        }
        TrustError::Changed { pinned, presented } => format!(
            "the TLS certificate of {server} CHANGED; nothing was sent.\n\
             expected:  {pinned}\n\
             presented: {presented}\n\
             Someone on the network may be impersonating the server to read your password. If the\n\
             server's certificate was replaced on purpose (ask whoever runs it), remove the line for\n\
             {server} from {} or pass the new --trust-fingerprint.",
            known_servers.display()
        ),
    }
}

/// A fingerprint the user gave that the server's certificate does not have.
fn mismatch_advice(server: &str, given: Fingerprint, presented: Fingerprint) -> String {
    format!(
        "the TLS certificate of {server} does not match the fingerprint you gave; nothing was sent.\n\
         given:     {given}\n\
         presented: {presented}\n\
         Check the fingerprint against the one papo-server logged at startup, and that this is the\n\
         server you mean: anyone on the network could be answering in its place."
    )
}

pub(crate) fn login(account: &Account) -> Result<Client> {
    let mut client = connect(account)?;
    client
        .login(&account.user, &account.password)
        .with_context(|| format!("cannot log in as {}", account.user))?;
    Ok(client)
}

/// Revokes the session's token; a command leaves nothing behind on the server.
pub(crate) fn logout(mut client: Client) {
    let _ = client.request(Request::Logout);
}

/// The server's milliseconds, always three digits of them: times of one width sort as text
/// in the order they happened (`…:20Z` would sort after `…:20.123Z`).
fn rfc3339(at: UnixMillis) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .ok()
        .and_then(|time| time.format(&format).ok())
        .unwrap_or_else(|| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(1_700_000_000_020), "2023-11-14T22:13:20.020Z");
        let mut times = [rfc3339(1_700_000_000_123), rfc3339(1_700_000_000_000), rfc3339(1_700_000_000_999)];
        times.sort();
        assert_eq!(
            times,
            [rfc3339(1_700_000_000_000), rfc3339(1_700_000_000_123), rfc3339(1_700_000_000_999)]
        );
    }
}
