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
