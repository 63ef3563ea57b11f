//! `papo-server admin …`: accounts, invite codes and sessions, on the running server through
//! its administration socket, or (for accounts and invite codes) on a stopped server's
//! directory.

use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use papo_server::admin::{self, Outcome, Request};
use papo_server::store::{Store, StoreOptions};

/// What `papo-server admin` does.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List every account, one JSON line each: name, created_at and last_seen (when its last
    /// session ended; null if none ever did), in Unix milliseconds, and status (active or
    /// disabled).
    Users,
    /// Set an account's password (read from PAPO_PASSWORD, or the first line of standard
    /// input), revoke all its saved sessions and disconnect its live ones.
    #[command(after_help = "\
For someone who forgot their password, or whose account was taken over: every client of the
account must log in again with the new password.

Example:
  printf '%s\\n' 'a new password' | papo-server admin reset-password ana")]
    ResetPassword {
        /// The account.
        name: String,
    },
    /// List the live sessions of the running server, one JSON line each: name, peer (the
    /// client's address) and since (when it logged in, in Unix milliseconds).
    Sessions,
    /// Close the live sessions of an account on the running server: every one, or the one
    /// from `--peer` (it may log in again; to keep someone out, disable the account).
    #[command(after_help = "\
Examples:
  papo-server admin disconnect ana
  papo-server admin disconnect ana --peer 192.168.1.23:51644   (a peer from `admin sessions`)")]
    Disconnect {
        /// The account.
        name: String,
        /// Only the session whose client is at this address, as `admin sessions` lists it.
        #[arg(long, value_name = "ADDRESS:PORT")]
        peer: Option<SocketAddr>,
    },
    /// Keep an account from logging in or resuming a saved session, and close its live
    /// sessions at once; its name, messages and groups stay.
    #[command(after_help = "\
Its clients are told \"this account is disabled by the administrator\". Undo with
`papo-server admin enable NAME`.

Example:
  papo-server admin disable ana")]
    Disable {
        /// The account.
        name: String,
    },
    /// Let a disabled account log in again.
    Enable {
        /// The account.
        name: String,
    },
    /// Delete an account for good, and close its live sessions at once.
    #[command(after_help = "\
Its saved sessions, unread counts and group memberships go; a group it owned passes to the
member who has been in it longest (or is deleted if it was alone there). Its messages stay
in the other side's history, shown as from a deleted account. The name is never registered
again, so those messages are never mistaken for someone else's. There is no undo; to keep
someone out for a while, disable the account instead.

Example:
  papo-server admin delete ana")]
    Delete {
        /// The account.
        name: String,
    },
    /// Invite codes, for a server started with --registration invite.
    #[command(subcommand)]
    Invite(InviteCommand),
}

/// What `papo-server admin invite` does.
#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Create an invite code and print it as a JSON line: code, created_at, expires_at
    /// (null: never) and uses_left.
    #[command(after_help = "\
Give the code to the person who registers: `papo register --invite CODE`, or the invite
field of the full-screen papo's create-account form. Each registration uses it once.

Example:
  papo-server admin invite create --uses 30 --expires 7d")]
    Create {
        /// Registrations it allows.
        #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        uses: u32,
        /// How long it works: a number with s, m, h or d (30m, 12h, 7d); for ever if not given.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires: Option<u64>,
    },
    /// List every invite code neither used up nor revoked (expired ones too), one JSON line each.
    List,
    /// Revoke an invite code before it is used up.
    Revoke {
        /// The code.
        code: String,
    },
}

/// Seconds in a duration such as `90s`, `30m`, `12h` or `7d`.
fn parse_duration(raw: &str) -> Result<u64, String> {
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{raw:?} does not start with a number; try 7d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(format!("{raw:?} has no unit s, m, h or d; try 7d")),
    };
    number.checked_mul(seconds).filter(|&secs| secs > 0).ok_or_else(|| format!("{raw:?} is out of range"))
}

/// Runs `command` on the server running on `dir`, or on the store in `dir` if none runs.
pub fn run(command: AdminCommand, dir: &Path, options: StoreOptions, bcrypt_cost: u32) -> Result<ExitCode> {
    if !dir.join("papo-store").exists() {
        bail!("{} holds no papo store; pass the server's --data-dir", dir.display());
    }
    let request = match command {
        AdminCommand::Users => Request::Users,
        AdminCommand::ResetPassword { name } => Request::ResetPassword { name, password: new_password()? },
        AdminCommand::Sessions => Request::Sessions,
        AdminCommand::Disconnect { name, peer } => Request::Disconnect { name, peer },
        AdminCommand::Disable { name } => Request::Disable { name },
        AdminCommand::Enable { name } => Request::Enable { name },
        AdminCommand::Delete { name } => Request::Delete { name },
        AdminCommand::Invite(InviteCommand::Create { uses, expires }) => {
            Request::CreateInvite { uses, expires_in_secs: expires }
        }
        AdminCommand::Invite(InviteCommand::List) => Request::Invites,
        AdminCommand::Invite(InviteCommand::Revoke { code }) => Request::RevokeInvite { code },
    };
    let mut out = io::stdout().lock();
    let outcome = match admin::request(dir, &request, &mut out)
        .with_context(|| format!("cannot reach the server through {}", dir.join(admin::SOCKET).display()))?
    {
        Some(outcome) => outcome,
        None => {
            let store =
                Store::open_with(dir, options).with_context(|| format!("cannot open {}", dir.display()))?;
            admin::answer_from_store(&request, &store, bcrypt_cost, &mut out)
        }
    };
    out.flush()?;
    match outcome {
        Outcome::Done(summary) => {
            eprintln!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Error(reason) => bail!("{reason}"),
    }
}

/// The new password: `PAPO_PASSWORD`, or the first line of standard input.
fn new_password() -> Result<String> {
    if let Ok(password) = std::env::var("PAPO_PASSWORD") {
        return Ok(password);
    }
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line).context("cannot read the new password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("no new password: set PAPO_PASSWORD or write it on standard input");
    }
    Ok(password.to_owned())
}
