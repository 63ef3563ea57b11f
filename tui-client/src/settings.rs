//! Where the client keeps things, and which server it talks to.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use directories::ProjectDirs;
use papo_protocol::DEFAULT_PORT;

const CONFIG_FILE: &str = "config";
const SERVER_KEY: &str = "server=";

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

/// The config file, `$XDG_CONFIG_HOME/papo/config`.
pub fn config_file() -> Option<PathBuf> {
    dirs().map(|dirs| dirs.config_dir().join(CONFIG_FILE))
}

/// The server used last time, if remembered.
pub fn last_server() -> Option<String> {
    let text = fs::read_to_string(config_file()?).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(SERVER_KEY))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Remembers `server` for the next start without a server argument.
pub fn remember_server(server: &str) -> Result<()> {
    let path = config_file().context("no home directory to keep the config in")?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(&path, format!("# Written by papo; the server used last.\n{SERVER_KEY}{server}\n"))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `HOST`, `HOST:PORT`, `IPv6` or `[IPv6]:PORT` as a connectable `HOST:PORT`.
pub fn server_address(raw: &str) -> String {
    let raw = raw.trim();
    if raw.parse::<std::net::SocketAddr>().is_ok() {
        return raw.to_owned();
    }
    if let Ok(ip) = raw.parse::<std::net::IpAddr>() {
        return std::net::SocketAddr::new(ip, DEFAULT_PORT).to_string();
    }
    match raw.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => raw.to_owned(),
        _ => format!("{raw}:{DEFAULT_PORT}"),
    }
}

/// The server from the first of: argument, `--server`/`PAPO_SERVER`, the remembered one.
pub fn choose_server(positional: Option<&str>, flag: Option<&str>) -> Result<String> {
    positional
        .or(flag)
        .map(str::to_owned)
        .or_else(last_server)
        .map(|raw| server_address(&raw))
        .context("which server? run `papo HOST` (for example `papo 192.168.0.10`) or set PAPO_SERVER")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_default_port_where_missing() {
        assert_eq!(server_address("10.0.0.5"), "10.0.0.5:7878");
        assert_eq!(server_address("10.0.0.5:9000"), "10.0.0.5:9000");
        assert_eq!(server_address("lab-server"), "lab-server:7878");
        assert_eq!(server_address("lab-server:1"), "lab-server:1");
        assert_eq!(server_address("::1"), "[::1]:7878");
        assert_eq!(server_address("[::1]:9"), "[::1]:9");
    }
}
