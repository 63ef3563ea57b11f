//! `papo`: the command-line front of the Papo client.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{Context, Result};
use clap::builder::BoolishValueParser;
use clap::{Args, CommandFactory, Parser, Subcommand};
use papo::commands::{self, Account};
use papo::group_cli::{self, GroupChange};
use papo::known_servers::KnownServers;
use papo::net::Transport;
use papo::{discover, sanitize, server_picker, settings, tui};
use papo_protocol::{ClientError, Fingerprint, GroupName, Security, Username};
use time::UtcOffset;

/// Papo, the LAN chat: a full-screen terminal client.
///
/// `papo 192.168.0.10` opens the chat against the server on that host (port 7878 unless
/// given as HOST:PORT). Without a server argument it uses --server / PAPO_SERVER, then the
/// server used last, else it lists the servers announcing themselves on the LAN to pick
/// from. Connections use TLS: the first time papo meets a server whose
/// certificate no trusted authority signed, it shows the certificate's fingerprint and asks
/// before trusting it (remembered in $XDG_DATA_HOME/papo/known_servers). Log in or create an
/// account on the first screen; press ? for every shortcut and Ctrl+C to log out and quit.
/// In the chat, `/search TEXT` looks in every conversation and group, and
/// `/search --here TEXT` only in the open one.
/// The subcommands do one job each for scripts.
#[derive(Debug, Parser)]
#[command(name = "papo", version, about, long_about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Server as HOST, HOST:PORT or [IPv6]:PORT.
    #[arg(value_name = "SERVER", value_parser = settings::server_address)]
    server: Option<String>,

    /// Server as HOST or HOST:PORT (same as the SERVER argument).
    #[arg(long = "server", env = "PAPO_SERVER", value_name = "SERVER", value_parser = settings::server_address)]
    server_flag: Option<String>,

    /// Talk to a server started with `papo-server --plaintext`: no TLS, everything in the clear.
    #[arg(long, env = "PAPO_PLAINTEXT", value_parser = BoolishValueParser::new())]
    plaintext: bool,

    /// Where the client logs [default: $XDG_STATE_HOME/papo/papo.log].
    #[arg(long, env = "PAPO_LOG_FILE", value_name = "FILE")]
    log_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an account.
    #[command(after_help = account_help("register --server 192.168.0.10 --user ana"))]
    Register {
        #[command(flatten)]
        account: AccountArgs,
        /// Invite code from the server's administrator, for a server that registers only
        /// with one.
        #[arg(long, value_name = "CODE")]
        invite: Option<String>,
    },
    /// Send one message and wait until the server has stored it.
    #[command(after_help = account_help("send --server 192.168.0.10 --user ana bia \"oi, tudo bem?\""))]
    Send {
        #[command(flatten)]
        account: AccountArgs,
        /// Recipient: a user, or a #group you are in.
        to: String,
        /// The message; several words are joined with spaces.
        #[arg(required = true, num_args = 1..)]
        message: Vec<String>,
    },
    /// Print a conversation, oldest first: `<RFC 3339 time> <from> -> <to>: <body>`. For a
    /// #group, <to> is the group and only its messages are printed (not who joined or left).
    #[command(after_help = account_help("history --server 192.168.0.10 --user ana bia --limit 20"))]
    History {
        #[command(flatten)]
        account: AccountArgs,
        /// The other side of the conversation: a user, or a #group you are in.
        with: String,
        /// How many of the newest messages to print.
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
    },
    /// Print every other user: `<name> <online|offline> <unread>`, and with --long when
    /// they were last online (RFC 3339, `-` if never or online now).
    #[command(after_help = account_help("contacts --server 192.168.0.10 --user ana --long"))]
    Contacts {
        #[command(flatten)]
        account: AccountArgs,
        /// Add when each offline user was last online.
        #[arg(long)]
        long: bool,
    },
    /// Print the newest messages holding TEXT (case ignored) in your conversations and
    /// groups, oldest first, as `papo history` prints them; nothing when none matches.
    #[command(after_help = account_help("search --server 192.168.0.10 --user ana --with bia lunch"))]
    Search {
        #[command(flatten)]
        account: AccountArgs,
        /// Only the conversation with this user, or this '#group'.
        #[arg(long, value_name = "PEER")]
        with: Option<String>,
        /// How many of the newest matches to print.
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
        /// What to look for; several words are joined with spaces.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Change your password. The new one comes from PAPO_NEW_PASSWORD or, with
    /// --password-stdin, the second line of standard input (the current one is the first).
    #[command(after_help = account_help("passwd --server 192.168.0.10 --user ana"))]
    Passwd(AccountArgs),
    /// Create a group, change one or list its members (`papo group create --help`, …).
    #[command(subcommand)]
    Group(GroupCommand),
    /// Print your groups, one per line: `<#name> <members> <unread>`.
    #[command(after_help = group_help("groups --server 192.168.0.10 --user ana"))]
    Groups(AccountArgs),
    /// Log out everywhere: revoke every saved session of your account (the full-screen
    /// papo's on every machine) and close its open connections; each must log in again.
    #[command(after_help = account_help("logout-all --server 192.168.0.10 --user ana"))]
    LogoutAll(AccountArgs),
    /// Trust a server's TLS certificate from now on (remembered in known_servers, as the
    /// full-screen papo does): shows its fingerprint and asks, unless FINGERPRINT is given.
    #[command(after_help = "\
Without FINGERPRINT, papo shows the one the server presents and asks you to confirm it; with it,
papo remembers the certificate only if the server presents exactly that one. Compare with the
fingerprint papo-server logged at startup (`docker logs papo 2>&1 | grep fingerprint`).

Examples:
  papo trust 192.168.0.10
  papo trust 192.168.0.10:7878 B6:08:96:EE:…:1B:FC")]
    Trust {
        /// Server as HOST or HOST:PORT.
        #[arg(value_name = "SERVER", value_parser = settings::server_address)]
        server: String,
        /// The SHA-256 fingerprint papo-server logged, as AA:BB:… (colons and case optional).
        #[arg(value_name = "FINGERPRINT")]
        fingerprint: Option<Fingerprint>,
    },
    /// List the papo servers that announce themselves on the LAN (mDNS/DNS-SD), one per line:
    /// `NAME<TAB>ADDRESS:PORT<TAB>tls|plaintext<TAB>FINGERPRINT` (`-` without TLS).
    #[command(after_help = "\
The fingerprint is what the server announced, over a network anyone can answer on: compare it
with the one papo-server logged, then `papo trust ADDRESS:PORT FINGERPRINT` pins it. Servers
that announce but cannot be used (another protocol version) are named on standard error.
Nothing found is not an error: the output is empty.

Examples:
  papo discover
  papo discover --seconds 5 | cut -f2")]
    Discover {
        /// How long to listen for answers.
        #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=60))]
        seconds: u64,
    },
    /// Print a shell completion script for papo.
    #[command(after_help = "\
Examples:
  papo completions bash > ~/.local/share/bash-completion/completions/papo
  papo completions zsh > \"${fpath[1]}/_papo\"
  papo completions fish > ~/.config/fish/completions/papo.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print papo's manual page (roff).
    #[command(after_help = "\
Example:
  papo man > ~/.local/share/man/man1/papo.1")]
    Man,
}

/// What `papo group` does. Each prints one line saying what it did once the server stored it.
#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// Create GROUP with you as its owner and member, and USERS as members.
    #[command(after_help = group_help("group create --server 192.168.0.10 --user ana '#lab' bia caio"))]
    Create {
        #[command(flatten)]
        account: AccountArgs,
        /// The new group's name, as #lab.
        #[arg(value_parser = GroupName::parse)]
        group: GroupName,
        /// Who else is in it.
        #[arg(value_parser = Username::parse)]
        users: Vec<Username>,
    },
    /// Add USERS to GROUP (its owner only); a member added later sees the history from before.
    #[command(after_help = group_help("group add --server 192.168.0.10 --user ana '#lab' dani"))]
    Add {
        #[command(flatten)]
        account: AccountArgs,
        /// The group.
        #[arg(value_parser = GroupName::parse)]
        group: GroupName,
        /// Who to add.
        #[arg(required = true, num_args = 1.., value_parser = Username::parse)]
        users: Vec<Username>,
    },
    /// Remove MEMBER from GROUP (its owner only): they get nothing new from it.
    #[command(after_help = group_help("group remove --server 192.168.0.10 --user ana '#lab' dani"))]
    Remove {
        #[command(flatten)]
        account: AccountArgs,
        /// The group.
        #[arg(value_parser = GroupName::parse)]
        group: GroupName,
        /// Who to remove.
        #[arg(value_parser = Username::parse)]
        member: Username,
    },
    /// Leave GROUP (its owner hands it over or deletes it instead).
    #[command(after_help = group_help("group leave --server 192.168.0.10 --user bia '#lab'"))]
    Leave {
        #[command(flatten)]
        account: AccountArgs,
        /// The group.
        #[arg(value_parser = GroupName::parse)]
        group: GroupName,
    },
    /// Rename GROUP to NEW (its owner only); the history stays.
    #[command(after_help = group_help("group rename --server 192.168.0.10 --user ana '#lab' '#lab2'"))]
    Rename {
        #[command(flatten)]
        account: AccountArgs,
        /// The group.
        #[arg(value_parser = GroupName::parse)]
        group: GroupName,
        /// Its new name.
        #[arg(value_parser = GroupName::parse)]
        new: GroupName,
    },
    /// Delete GROUP and its history for every member (its owner only).
    #[command(after_help = group_help("group delete --server 192.168.0.10 --user ana '#lab'"))]
    Delete {
        #[command(flatten)]
        account: AccountArgs,
        /// The group.
        #[arg(value_parser = GroupName::parse)]
        group: GroupName,
    },
    /// Make MEMBER the owner of GROUP (its owner only).
    #[command(after_help = group_help("group handover --server 192.168.0.10 --user ana '#lab' bia"))]
    Handover {
        #[command(flatten)]
        account: AccountArgs,
        /// The group.
        #[arg(value_parser = GroupName::parse)]
        group: GroupName,
        /// The new owner, a member.
        #[arg(value_parser = Username::parse)]
        member: Username,
    },
    /// Print GROUP's members in name order: `<name> <online|offline> <owner|member>`.
    #[command(after_help = group_help("group members --server 192.168.0.10 --user ana '#lab'"))]
    Members {
        #[command(flatten)]
        account: AccountArgs,
        /// The group.
        #[arg(value_parser = GroupName::parse)]
        group: GroupName,
    },
}

/// A group command's example, and the rules for the names it takes.
fn group_help(example: &str) -> String {
    format!(
        "{}\n\nA group's name is '#' and then a name by the same rules (quote it in the shell: '#lab').\n\
         To anyone who is not in a group, it answers as if there were no such group.",
        account_help(example)
    )
}

/// A scriptable command's example, and the rules for the names it takes.
fn account_help(example: &str) -> String {
    format!(
        "Example:\n  PAPO_PASSWORD=... papo {example}\n\n\
         Names (--user and the other side) are 1-32 characters of a-z, 0-9, '_', '.' and '-', starting\n\
         with a letter or a digit; capitals are folded to lower case."
    )
}

/// Who runs a subcommand. The password comes from PAPO_PASSWORD or standard input, never
/// from a flag, so it does not show up in `ps`.
#[derive(Debug, Args)]
struct AccountArgs {
    /// Server as HOST or HOST:PORT [default: PAPO_SERVER, then the server used last].
    #[arg(long, env = "PAPO_SERVER", value_name = "SERVER", value_parser = settings::server_address)]
    server: Option<String>,

    /// Account name.
    #[arg(long, env = "PAPO_USER", value_name = "NAME")]
    user: String,

    /// Read the password from the first line of standard input instead of PAPO_PASSWORD.
    #[arg(long)]
    password_stdin: bool,

    /// Trust the server's TLS certificate if its SHA-256 fingerprint is this (as papo-server
    /// logs it), instead of the one remembered in known_servers. Ignored with --plaintext.
    #[arg(long, env = "PAPO_TRUST_FINGERPRINT", value_name = "SHA256")]
    trust_fingerprint: Option<Fingerprint>,

    /// Talk to a server started with `papo-server --plaintext`: no TLS, everything in the clear.
    #[arg(long, env = "PAPO_PLAINTEXT", value_parser = BoolishValueParser::new())]
    plaintext: bool,
}

impl AccountArgs {
    fn resolve(self) -> Result<Account> {
        let server = choose_server(None, self.server.as_deref())?;
        let transport = transport(self.plaintext)?;
        let security = match (&transport, self.trust_fingerprint) {
            (Transport::Tls(_), Some(fingerprint)) => Security::tls(Some(fingerprint)),
            _ => transport.security(&server)?,
        };
        Ok(Account {
            server,
            password: commands::password(self.password_stdin)?,
            user: self.user,
            security,
            known_servers: transport.known_servers_file(),
            fingerprint_given: self.trust_fingerprint.is_some(),
        })
    }
}

/// In the clear if asked, else TLS trusting what the user's `known_servers` file remembers.
fn transport(plaintext: bool) -> Result<Transport> {
    if plaintext {
        return Ok(Transport::Plaintext);
    }
    Ok(Transport::Tls(known_servers()?))
}

fn known_servers() -> Result<KnownServers> {
    let path = settings::known_servers_file().context("no home directory for the known_servers file")?;
    Ok(KnownServers::at(path))
}

fn main() -> ExitCode {
    // Read before any thread exists: the local offset is only available while single-threaded.
    let utc_offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let cli = Cli::parse();
    if cli.command.is_none() && !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        eprintln!("error: papo needs a terminal; for scripts use papo send/history/contacts");
        return ExitCode::from(2);
    }
    match run(cli, utc_offset) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            if e.is::<UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The error for the terminal: on one line with every unsafe character escaped, since any
/// part of it may come from the server; only our own certificate advice keeps its lines.
fn report(error: &anyhow::Error) -> String {
    if let Some(advice) = error.downcast_ref::<commands::TrustAdvice>() {
        return sanitize::text(&advice.0).into_owned();
    }
    // A broken connection is said as `papo` says it everywhere ("the connection to the
    // server was lost", not "Broken pipe (os error 32)"), after what was being done.
    let broken = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<ClientError>())
        .filter(|e| matches!(e, ClientError::Frame(_) | ClientError::Closed));
    let text = match broken {
        Some(broken) => {
            let mut parts: Vec<String> = error
                .chain()
                .take_while(|cause| !cause.is::<ClientError>())
                .map(ToString::to_string)
                .collect();
            parts.push(papo::net::describe(broken));
            parts.join(": ")
        }
        None => format!("{error:#}"),
    };
    sanitize::line(&text).into_owned()
}

/// A mistake in how papo was run rather than a failure of what it tried: exit status 2, as
/// for the usage errors the argument parser finds.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct UsageError(anyhow::Error);

/// The server to use; naming none anywhere is a usage error.
fn choose_server(positional: Option<&str>, flag: Option<&str>) -> Result<String> {
    settings::choose_server(positional, flag).map_err(|e| UsageError(e).into())
}

fn run(cli: Cli, utc_offset: UtcOffset) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        None => {
            let named = cli.server.is_some() || cli.server_flag.is_some();
            let server = match choose_server(cli.server.as_deref(), cli.server_flag.as_deref()) {
                Err(none) if !named && settings::last_server().is_none() => {
                    match server_picker::choose(none)? {
                        Some(server) => server,
                        None => return Ok(()),
                    }
                }
                chosen => chosen?,
            };
            init_logging(cli.log_file)?;
            let transport = transport(cli.plaintext)?;
            let ending = tui::run(&server, transport, utc_offset, random_id()?)?;
            if ending.unsent > 0 {
                let what = match ending.unsent {
                    1 => "1 message".to_owned(),
                    n => format!("{n} messages"),
                };
                let user = ending.user.unwrap_or_default();
                println!(
                    "{what} will be sent when the server is back (the next time papo logs in as {user})"
                );
            }
            Ok(())
        }
        Some(Command::Register { account, invite }) => {
            commands::register(&account.resolve()?, invite.as_deref())
        }
        Some(Command::Send { account, to, message }) => {
            commands::send(&account.resolve()?, &to, &message.join(" "), random_id()?)
        }
        Some(Command::History { account, with, limit }) => {
            commands::history(&account.resolve()?, &with, limit, &mut stdout)
        }
        Some(Command::Contacts { account, long }) => {
            commands::contacts(&account.resolve()?, long, &mut stdout)
        }
        Some(Command::Search { account, with, limit, text }) => {
            commands::search(&account.resolve()?, &text.join(" "), with.as_deref(), limit, &mut stdout)
        }
        Some(Command::Passwd(account)) => {
            let from_stdin = account.password_stdin;
            let account = account.resolve()?;
            commands::passwd(&account, &commands::new_password(from_stdin)?)
        }
        Some(Command::Group(command)) => run_group(command, &mut stdout),
        Some(Command::Groups(account)) => group_cli::list(&account.resolve()?, &mut stdout),
        Some(Command::LogoutAll(account)) => commands::logout_all(&account.resolve()?),
        Some(Command::Trust { server, fingerprint }) => commands::trust(
            &server,
            fingerprint,
            &known_servers()?,
            &mut std::io::stdin().lock(),
            &mut stdout,
        ),
        Some(Command::Discover { seconds }) => {
            let browsed = discover::browse(std::time::Duration::from_secs(seconds))?;
            for unusable in &browsed.unusable {
                let name = sanitize::line(&unusable.name);
                eprintln!("left out {name}: {}", sanitize::line(&unusable.reason));
            }
            Ok(discover::print(&browsed.found, &mut stdout)?)
        }
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "papo", &mut stdout);
            Ok(())
        }
        Some(Command::Man) => Ok(clap_mangen::Man::new(Cli::command()).render(&mut stdout)?),
    }
}

fn run_group(command: GroupCommand, out: &mut impl std::io::Write) -> Result<()> {
    let (account, group, change) = match command {
        GroupCommand::Create { account, group, users } => {
            return group_cli::create(&account.resolve()?, &group, &users, out);
        }
        GroupCommand::Members { account, group } => {
            return group_cli::members(&account.resolve()?, &group, out);
        }
        GroupCommand::Add { account, group, users } => (account, group, GroupChange::Add(users)),
        GroupCommand::Remove { account, group, member } => (account, group, GroupChange::Remove(member)),
        GroupCommand::Leave { account, group } => (account, group, GroupChange::Leave),
        GroupCommand::Rename { account, group, new } => (account, group, GroupChange::Rename(new)),
        GroupCommand::Delete { account, group } => (account, group, GroupChange::Delete),
        GroupCommand::Handover { account, group, member } => (account, group, GroupChange::Handover(member)),
    };
    group_cli::change(&account.resolve()?, &group, change, out)
}

/// Logs go to a file: anything printed would tear the full-screen interface.
fn init_logging(log_file: Option<PathBuf>) -> Result<()> {
    let path = log_file
        .or_else(settings::default_log_file)
        .context("no home directory for the log; pass --log-file")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open the log file {}", path.display()))?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PAPO_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(false)
        // A failing log file must never print over the full-screen interface.
        .log_internal_errors(false)
        .with_writer(Mutex::new(file))
        .init();
    Ok(())
}

/// A random starting point for client message ids, so ids never repeat across runs.
fn random_id() -> Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).context("no randomness available")?;
    Ok(u64::from_le_bytes(bytes) >> 1)
}
