//! The scriptable subcommands: one connection, one job, plain-text output.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use papo_protocol::{
    ChatMessage, Client, ClientError, Request, Security, TrustError, UnixMillis, MAX_HISTORY_PAGE,
};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::sanitize;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// Advice of several lines about an untrusted certificate: our own text, so its line breaks
/// may reach the terminal (every other error is printed on one line).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrustAdvice(pub String);

/// Reads the password from `PAPO_PASSWORD` or, if asked, the first line of standard input.
pub fn password(from_stdin: bool) -> Result<String> {
    if from_stdin {
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("standard input held no password");
        }
        return Ok(password);
    }
    std::env::var("PAPO_PASSWORD").map_err(|_| {
        anyhow::anyhow!("no password given: set PAPO_PASSWORD or pass --password-stdin and pipe it in")
    })
}

/// `papo register`: creates the account.
pub fn register(account: &Account) -> Result<()> {
    let mut client = connect(account)?;
    client.register(&account.user, &account.password).context("cannot create the account")?;
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
    let mut client = login(account)?;
    let mut newest_first: Vec<ChatMessage> = Vec::new();
    let mut before = None;
    while newest_first.len() < limit {
        let want = u32::try_from(limit - newest_first.len())
            .map_or(MAX_HISTORY_PAGE, |left| left.min(MAX_HISTORY_PAGE));
        let page =
            client.history(with, before, want).with_context(|| format!("cannot read history with {with}"))?;
        before = page.messages.last().map(|m| m.id);
        newest_first.extend(page.messages);
        if !page.more {
            break;
        }
    }
    logout(client);
    for message in newest_first.iter().rev() {
        writeln!(
            out,
            "{} {} -> {}: {}",
            rfc3339(message.sent_at),
            message.from,
            message.to,
            sanitize::script_line(&message.body)
        )?;
    }
    Ok(())
}

/// `papo contacts`: every other user with presence and unread count.
pub fn contacts(account: &Account, out: &mut impl Write) -> Result<()> {
    let mut client = login(account)?;
    let all = client.contacts().context("cannot list contacts")?;
    logout(client);
    for contact in all {
        let presence = if contact.online { "online" } else { "offline" };
        writeln!(out, "{} {presence} {}", contact.name, contact.unread)?;
    }
    Ok(())
}

fn connect(account: &Account) -> Result<Client> {
    let name = concat!("papo-cli ", env!("CARGO_PKG_VERSION"));
    Client::connect(&account.server, &account.security, name, CONNECT_TIMEOUT).map_err(|e| match e {
        ClientError::Trust(refusal) => anyhow::Error::new(TrustAdvice(trust_advice(&refusal, account))),
        other => other.into(),
    })
}

/// What a script's user must check and do when the certificate is not trusted.
fn trust_advice(refusal: &TrustError, account: &Account) -> String {
    let server = &account.server;
    match refusal {
        TrustError::Unknown { presented } => format!(
            "the TLS certificate of {server} is not signed by a trusted authority and is not in {} yet.\n\
             Its SHA-256 fingerprint is {presented}\n\
             Compare it with the fingerprint papo-server logged at startup; if they match, pass\n\
             --trust-fingerprint {presented} (or log in once with the full-screen papo, which remembers it).",
            account.known_servers.display()
        ),
        TrustError::Changed { pinned, presented } => format!(
            "the TLS certificate of {server} CHANGED; nothing was sent.\n\
             expected:  {pinned}\n\
             presented: {presented}\n\
             Someone on the network may be impersonating the server to read your password. If the\n\
             server's certificate was replaced on purpose (ask whoever runs it), remove the line for\n\
             {server} from {} or pass the new --trust-fingerprint.",
            account.known_servers.display()
        ),
    }
}

fn login(account: &Account) -> Result<Client> {
    let mut client = connect(account)?;
    client
        .login(&account.user, &account.password)
        .with_context(|| format!("cannot log in as {}", account.user))?;
    Ok(client)
}

/// Revokes the session's token; a command leaves nothing behind on the server.
fn logout(mut client: Client) {
    let _ = client.request(Request::Logout);
}

fn rfc3339(at: UnixMillis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_else(|| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
