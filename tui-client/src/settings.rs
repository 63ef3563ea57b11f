//! Where the client keeps things, which server it talks to, and the user's preferences.
//!
//! The config file holds `key = value` lines (`#` starts a comment):
//!
//! ```text
//! server = 192.168.0.10:7878   # the server used last, written by papo
//! notify = bell                # bell | desktop | none
//! notify_preview = false       # desktop notifications show the text, not only the sender
//! send_typing = true           # tell the other side while you type
//! mute = bia caio              # conversations that never ring (/mute, /unmute)
//! group_notify = lab:all x:none # groups that ring for every message or never (/notify)
//! ```
//!
//! papo rewrites only the lines of the keys it changes (`server`, `mute`, `group_notify`),
//! so comments and everything else stay as the user wrote them. Group names are written
//! there without their `#`, which would start a comment.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use directories::ProjectDirs;
use papo_protocol::{GroupName, Username, DEFAULT_PORT};

const CONFIG_FILE: &str = "config";
const SERVER_KEY: &str = "server";
const MUTE_KEY: &str = "mute";
const GROUP_NOTIFY_KEY: &str = "group_notify";

/// How papo tells you about a message you are not looking at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// The terminal bell (BEL), which terminals and tmux turn into a sound or an urgent hint.
    Bell,
    /// The bell and a desktop notification through the terminal (OSC 777 or OSC 9).
    Desktop,
    /// Nothing but the unread counts and the title.
    None,
}

/// Which messages of a group ring (as a direct message does), set with `/notify`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupNotify {
    /// Every message of someone else.
    All,
    /// Only messages that mention me (`@name`): a busy room does not ring all day.
    #[default]
    Mentions,
    /// None: the group only counts unread messages.
    None,
}

impl GroupNotify {
    /// `all`, `mentions` or `none`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "all" => Some(Self::All),
            "mentions" => Some(Self::Mentions),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// The word [`GroupNotify::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Mentions => "mentions",
            Self::None => "none",
        }
    }
}

/// What the config file asks for, beyond the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefs {
    /// `notify`: bell by default.
    pub notify: Notify,
    /// `notify_preview`: whether desktop notifications carry the text (off by default:
    /// they show on screens others may see).
    pub notify_preview: bool,
    /// `send_typing`: whether the peer is told while you type (on by default).
    pub send_typing: bool,
    /// `mute`: conversations that never ring or notify.
    pub muted: BTreeSet<Username>,
    /// `group_notify`: the groups that do not ring only for mentions of me.
    pub group_notify: BTreeMap<GroupName, GroupNotify>,
}

impl Default for Prefs {
    fn default() -> Self {
        Self {
            notify: Notify::Bell,
            notify_preview: false,
            send_typing: true,
            muted: BTreeSet::new(),
            group_notify: BTreeMap::new(),
        }
    }
}

impl Prefs {
    /// The preferences in a config file's text, and a warning for each line papo cannot use
    /// (which then keeps its default).
    pub fn parse(text: &str) -> (Self, Vec<String>) {
        let mut prefs = Self::default();
        let mut warnings = Vec::new();
        for (key, value) in entries(text) {
            let bad = |what: &str| format!("config: {key} = {value}: {what}");
            match key {
                "notify" => match value {
                    "bell" => prefs.notify = Notify::Bell,
                    "desktop" => prefs.notify = Notify::Desktop,
                    "none" => prefs.notify = Notify::None,
                    _ => warnings.push(bad("use bell, desktop or none")),
                },
                "notify_preview" | "send_typing" => {
                    let Some(on) = boolean(value) else {
                        warnings.push(bad("use true or false"));
                        continue;
                    };
                    if key == "notify_preview" {
                        prefs.notify_preview = on;
                    } else {
                        prefs.send_typing = on;
                    }
                }
                MUTE_KEY => {
                    for name in value.split([' ', ',']).filter(|name| !name.is_empty()) {
                        match Username::parse(name) {
                            Ok(name) => {
                                prefs.muted.insert(name);
                            }
                            Err(e) => warnings.push(bad(&format!("{name}: {e}"))),
                        }
                    }
                }
                GROUP_NOTIFY_KEY => {
                    for entry in value.split([' ', ',']).filter(|entry| !entry.is_empty()) {
                        let parsed = entry.split_once(':').and_then(|(name, mode)| {
                            Some((GroupName::parse(&format!("#{name}")).ok()?, GroupNotify::parse(mode)?))
                        });
                        match parsed {
                            Some((group, mode)) => {
                                prefs.group_notify.insert(group, mode);
                            }
                            None => warnings
                                .push(bad(&format!("{entry}: use GROUP:all, GROUP:mentions or GROUP:none"))),
                        }
                    }
                }
                _ => {}
            }
        }
        (prefs, warnings)
    }

    /// Which messages of `group` ring.
    pub fn group_notify(&self, group: &GroupName) -> GroupNotify {
        self.group_notify.get(group).copied().unwrap_or_default()
    }
}

fn boolean(value: &str) -> Option<bool> {
    match value {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The `key = value` pairs of a config file, trimmed, without comments.
fn entries(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().filter_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let (key, value) = line.split_once('=')?;
        Some((key.trim(), value.trim()))
    })
}

/// `text` with `key` set to `value` (its first line replaced, later ones dropped, or a line
/// added), every other line as it was.
pub fn with_key(text: &str, key: &str, value: &str) -> String {
    let mut out = String::with_capacity(text.len() + key.len() + value.len() + 4);
    let mut written = false;
    for line in text.lines() {
        let is_key =
            line.split('#').next().and_then(|l| l.split_once('=')).is_some_and(|(k, _)| k.trim() == key);
        if !is_key {
            out.push_str(line);
            out.push('\n');
        } else if !written {
            out.push_str(&format!("{key} = {value}\n"));
            written = true;
        }
    }
    if !written {
        out.push_str(&format!("{key} = {value}\n"));
    }
    out
}

/// Sets `key` to `value` in the config file at `path`, keeping every other line.
pub fn save_key(path: &Path, key: &str, value: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# papo's settings; see papo's README.\n".to_owned()
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    fs::write(path, with_key(&text, key, value)).with_context(|| format!("cannot write {}", path.display()))
}

/// The preferences from the config file (the defaults if there is none), with warnings.
pub fn load_prefs() -> (Prefs, Vec<String>) {
    let text = config_file().and_then(|path| fs::read_to_string(path).ok()).unwrap_or_default();
    Prefs::parse(&text)
}

/// Remembers the muted conversations in the config file.
pub fn save_muted(muted: &BTreeSet<Username>) -> Result<()> {
    let path = config_file().context("no home directory to keep the config in")?;
    let names: Vec<&str> = muted.iter().map(Username::as_str).collect();
    save_key(&path, MUTE_KEY, &names.join(" "))
}

/// Remembers which groups ring for every message or never in the config file.
pub fn save_group_notify(modes: &BTreeMap<GroupName, GroupNotify>) -> Result<()> {
    let path = config_file().context("no home directory to keep the config in")?;
    save_key(&path, GROUP_NOTIFY_KEY, &group_notify_value(modes))
}

/// `lab:all x:none`: the groups without their `#`, which would start a comment.
fn group_notify_value(modes: &BTreeMap<GroupName, GroupNotify>) -> String {
    let entries: Vec<String> = modes
        .iter()
        .filter(|(_, mode)| **mode != GroupNotify::default())
        .map(|(group, mode)| {
            format!("{}:{}", group.as_str().trim_start_matches(GroupName::SIGIL), mode.as_str())
        })
        .collect();
    entries.join(" ")
}

fn dirs() -> Option<ProjectDirs> {
    ProjectDirs::from("", "", "papo")
}

/// `papo.log` in the XDG state directory (the cache directory where there is none).
pub fn default_log_file() -> Option<PathBuf> {
    let dirs = dirs()?;
    let dir = dirs.state_dir().unwrap_or_else(|| dirs.cache_dir());
    Some(dir.join("papo.log"))
}

/// The servers trusted so far, `$XDG_DATA_HOME/papo/known_servers`.
pub fn known_servers_file() -> Option<PathBuf> {
    dirs().map(|dirs| dirs.data_dir().join("known_servers"))
}

/// Where unsent messages wait between runs, `$XDG_DATA_HOME/papo/outbox`.
pub fn outbox_dir() -> Option<PathBuf> {
    dirs().map(|dirs| dirs.data_dir().join("outbox"))
}

/// The config file, `$XDG_CONFIG_HOME/papo/config`.
pub fn config_file() -> Option<PathBuf> {
    dirs().map(|dirs| dirs.config_dir().join(CONFIG_FILE))
}

/// The server used last time, if remembered.
pub fn last_server() -> Option<String> {
    let text = fs::read_to_string(config_file()?).ok()?;
    let server = entries(&text).find(|(key, _)| *key == SERVER_KEY).map(|(_, value)| value.to_owned());
    server.filter(|s| !s.is_empty())
}

/// Remembers `server` for the next start without a server argument.
pub fn remember_server(server: &str) -> Result<()> {
    let path = config_file().context("no home directory to keep the config in")?;
    save_key(&path, SERVER_KEY, server)
}

/// `HOST`, `HOST:PORT`, `IPv6` or `[IPv6]:PORT`, checked, as a connectable `HOST:PORT`
/// (port 7878 if none is given). The error says what is wrong, for a usage message.
pub fn server_address(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("the server is empty; give HOST or HOST:PORT".into());
    }
    if let Ok(addr) = raw.parse::<std::net::SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!("{raw}: port 0 cannot be dialled; give a port from 1 to 65535"));
        }
        return Ok(addr.to_string());
    }
    if let Ok(ip) = raw.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, DEFAULT_PORT).to_string());
    }
    let (host, port) = match raw.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|&port| port > 0)
                .ok_or_else(|| format!("{raw}: the port must be a number from 1 to 65535"))?;
            (host, port)
        }
        None => (raw, DEFAULT_PORT),
    };
    if host.contains(':') || host.starts_with('[') {
        return Err(format!("{raw}: write an IPv6 address in brackets, as in [::1]:7878"));
    }
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !valid {
        return Err(format!("{raw}: not a host name or IP address"));
    }
    Ok(format!("{host}:{port}"))
}

/// The server from the first of: argument, `--server`/`PAPO_SERVER` (both checked by
/// [`server_address`] as they were parsed), the remembered one.
pub fn choose_server(positional: Option<&str>, flag: Option<&str>) -> Result<String> {
    if let Some(server) = positional.or(flag) {
        return Ok(server.to_owned());
    }
    let remembered = last_server()
        .context("which server? run `papo HOST` (for example `papo 192.168.0.10`) or set PAPO_SERVER")?;
    server_address(&remembered).map_err(|e| anyhow::anyhow!("the remembered server is not valid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences_parse_with_defaults_and_warnings() {
        let (prefs, warnings) = Prefs::parse("");
        assert_eq!((prefs, warnings.len()), (Prefs::default(), 0));
        let text = "server=lab:7878\nnotify = desktop # loud\nnotify_preview=yes\nsend_typing = off\nmute = bia, caio\n";
        let (prefs, warnings) = Prefs::parse(text);
        assert_eq!(warnings, Vec::<String>::new());
        assert_eq!((prefs.notify, prefs.notify_preview, prefs.send_typing), (Notify::Desktop, true, false));
        assert_eq!(prefs.muted.iter().map(Username::as_str).collect::<Vec<_>>(), ["bia", "caio"]);
        let (prefs, warnings) = Prefs::parse("notify = loud\nsend_typing = maybe\nmute = ../x\n");
        assert_eq!(prefs.notify, Notify::Bell);
        assert!(prefs.send_typing);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
    }

    #[test]
    fn group_notify_reads_back_what_is_written_without_hashes() {
        let (prefs, warnings) = Prefs::parse("group_notify = lab:all redes-g3:none\n");
        assert_eq!(warnings, Vec::<String>::new());
        let lab = GroupName::parse("#lab").unwrap();
        assert_eq!(prefs.group_notify(&lab), GroupNotify::All);
        assert_eq!(prefs.group_notify(&GroupName::parse("#redes-g3").unwrap()), GroupNotify::None);
        assert_eq!(prefs.group_notify(&GroupName::parse("#other").unwrap()), GroupNotify::Mentions);
        let written = group_notify_value(&prefs.group_notify);
        assert_eq!(written, "lab:all redes-g3:none");
        assert_eq!(Prefs::parse(&format!("group_notify = {written}")).0.group_notify, prefs.group_notify);
        let (prefs, warnings) = Prefs::parse("group_notify = lab:loud ../x:all lab\n");
        assert!(prefs.group_notify.is_empty());
        assert_eq!(warnings.len(), 3, "{warnings:?}");
    }

    #[test]
    fn setting_a_key_keeps_every_other_line() {
        let text = "# mine\nnotify = none\nserver=old:1\nserver=older:2\n";
        assert_eq!(with_key(text, "server", "new:7878"), "# mine\nnotify = none\nserver = new:7878\n");
        assert_eq!(with_key("notify = none", "mute", "bia"), "notify = none\nmute = bia\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("papo/config");
        save_key(&path, "server", "lab:7878").unwrap();
        save_key(&path, "mute", "bia").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("server = lab:7878\nmute = bia\n"), "{text}");
    }

    #[test]
    fn adds_the_default_port_where_missing() {
        let ok = |raw| server_address(raw).unwrap();
        assert_eq!(ok("10.0.0.5"), "10.0.0.5:7878");
        assert_eq!(ok(" 10.0.0.5:9000 "), "10.0.0.5:9000");
        assert_eq!(ok("lab-server"), "lab-server:7878");
        assert_eq!(ok("lab-server:1"), "lab-server:1");
        assert_eq!(ok("::1"), "[::1]:7878");
        assert_eq!(ok("[::1]"), "[::1]:7878");
        assert_eq!(ok("[::1]:9"), "[::1]:9");
        assert_eq!(ok("lab.example.org"), "lab.example.org:7878");
    }

    #[test]
    fn bad_addresses_are_refused_with_the_reason() {
        let err = |raw| server_address(raw).unwrap_err();
        assert!(err("127.0.0.1:99999").contains("from 1 to 65535"));
        assert!(err("127.0.0.1:0").contains("port 0"));
        assert!(err("lab:").contains("from 1 to 65535"));
        assert!(err("lab:http").contains("from 1 to 65535"));
        assert!(err("::1:7878:x").contains("port"));
        assert!(err("fe80::1::2:7878").contains("brackets"));
        assert!(err("").contains("empty"));
        assert!(err("bad host").contains("not a host"));
        assert!(err("a..b").contains("not a host"));
        assert!(err("[::1]:99999").contains("from 1 to 65535"));
    }
}
