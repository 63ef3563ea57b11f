//! Finds papo servers on the LAN: browses mDNS/DNS-SD for `_papo._tcp` for a while and
//! collects what answers (`papo discover`).
//!
//! Everything here came from whoever answered on the LAN: names are sanitised before they are
//! printed, and the fingerprint is only shown. Trust still comes from the TLS handshake and
//! the user's yes (or `papo trust HOST FINGERPRINT`).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mdns_sd::{ResolvedService, ServiceDaemon, ServiceEvent};
use papo_protocol::discovery::{Announcement, BadAnnouncement, SERVICE_TYPE};
use papo_protocol::PROTOCOL_VERSION;

use crate::sanitize;

/// One server that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its instance name, as it announced it (not yet sanitised).
    pub name: String,
    /// Where to connect: the first of its addresses, IPv4 before IPv6.
    pub address: SocketAddr,
    /// Its protocol version and TLS fingerprint.
    pub announcement: Announcement,
}

/// An answer that is not a server this papo can use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    /// Its instance name, as it announced it (not yet sanitised).
    pub name: String,
    /// Why it is left out.
    pub reason: String,
}

/// What a browse found.
#[derive(Debug, Default)]
pub struct Browsed {
    /// The usable servers, by name.
    pub found: Vec<Found>,
    /// The rest.
    pub unusable: Vec<Unusable>,
}

/// Browses the LAN for `duration` and returns every server that answered, sorted by name.
pub fn browse(duration: Duration) -> Result<Browsed> {
    let daemon = ServiceDaemon::new().context("cannot start mDNS (is there a network interface?)")?;
    let events = daemon.browse(SERVICE_TYPE).context("cannot browse the LAN with mDNS")?;
    let deadline = Instant::now() + duration;
    let mut answers = BTreeMap::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(service)) => {
                let answer = read(&service);
                answers.insert(service.fullname.clone(), answer);
            }
            Ok(ServiceEvent::ServiceRemoved(_, fullname)) => {
                answers.remove(&fullname);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // The goodbye needs no wait: a browser has nothing registered to withdraw.
    let _ = daemon.shutdown();
    let mut browsed = Browsed::default();
    for answer in answers.into_values() {
        match answer {
            Ok(found) => browsed.found.push(found),
            Err(unusable) => browsed.unusable.push(unusable),
        }
    }
    browsed.found.sort_by(|a, b| (&a.name, a.address).cmp(&(&b.name, b.address)));
    Ok(browsed)
}

/// Writes one line per server, for scripts: `NAME<TAB>ADDRESS:PORT<TAB>tls|plaintext<TAB>FINGERPRINT`
/// (`-` for a plaintext server), names escaped as `papo history` escapes text.
pub fn print(found: &[Found], out: &mut impl Write) -> std::io::Result<()> {
    for server in found {
        let (security, fingerprint) = match server.announcement.tls {
            Some(fingerprint) => ("tls", fingerprint.to_string()),
            None => ("plaintext", "-".to_owned()),
        };
        writeln!(
            out,
            "{}\t{}\t{security}\t{fingerprint}",
            sanitize::script_line(&server.name),
            server.address
        )?;
    }
    Ok(())
}

fn read(service: &ResolvedService) -> Result<Found, Unusable> {
    let name = instance_name(&service.fullname);
    let unusable = |reason: String| Unusable { name: name.clone(), reason };
    let properties = &service.txt_properties;
    let announcement = Announcement::from_txt(|key| properties.get_property_val_str(key))
        .map_err(|e: BadAnnouncement| unusable(e.to_string()))?;
    if announcement.protocol_version != PROTOCOL_VERSION {
        return Err(unusable(format!(
            "it speaks protocol {}, this papo speaks {PROTOCOL_VERSION}",
            announcement.protocol_version
        )));
    }
    let ip = best_address(service.addresses.iter().map(mdns_sd::ScopedIp::to_ip_addr))
        .ok_or_else(|| unusable("it announced no address".to_owned()))?;
    Ok(Found { name: name.clone(), address: SocketAddr::new(ip, service.port), announcement })
}

/// IPv4 before IPv6 (a link-local IPv6 address needs its interface, which papo cannot be
/// told), then the lowest, so that the same server is always listed the same way.
fn best_address(addresses: impl Iterator<Item = IpAddr>) -> Option<IpAddr> {
    addresses.min_by_key(|ip| (ip.is_ipv6(), *ip))
}

/// The instance part of `fullname` (`Lab server._papo._tcp.local.`), with DNS-SD's escapes
/// (`\.` for a dot in the name, `\\` for a backslash) undone.
fn instance_name(fullname: &str) -> String {
    let escaped =
        fullname.strip_suffix(SERVICE_TYPE).and_then(|rest| rest.strip_suffix('.')).unwrap_or(fullname);
    let mut name = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.extend(chars.next()),
            c => name.push(c),
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_lose_the_service_type_and_their_escapes() {
        assert_eq!(instance_name("lab._papo._tcp.local."), "lab");
        assert_eq!(instance_name("room 2\\.1 \\\\ east._papo._tcp.local."), "room 2.1 \\ east");
    }

    #[test]
    fn ipv4_is_preferred_and_the_choice_is_stable() {
        let ips: Vec<IpAddr> =
            ["fe80::1", "10.0.0.9", "10.0.0.2"].iter().map(|ip| ip.parse().unwrap()).collect();
        assert_eq!(best_address(ips.iter().copied()), Some("10.0.0.2".parse().unwrap()));
        assert_eq!(best_address(std::iter::empty()), None);
    }

    #[test]
    fn printed_lines_split_on_tabs_and_escape_what_the_network_sent() {
        let fingerprint =
            "11:88:F8:65:BA:AC:B2:8D:1E:13:14:63:09:F8:8E:49:AA:8A:EA:3A:5F:EE:3A:50:82:B9:E1:F1:6D:CC:85:F0";
        let found = [
            Found {
                name: "evil\t\u{1b}[31mname\n".to_owned(),
                address: "10.0.0.2:7878".parse().unwrap(),
                announcement: Announcement {
                    protocol_version: PROTOCOL_VERSION,
                    tls: Some(fingerprint.parse().unwrap()),
                },
            },
            Found {
                name: "plain".to_owned(),
                address: "[fd00::2]:7000".parse().unwrap(),
                announcement: Announcement { protocol_version: PROTOCOL_VERSION, tls: None },
            },
        ];
        let mut out = Vec::new();
        print(&found, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<Vec<&str>> = out.lines().map(|line| line.split('\t').collect()).collect();
        assert_eq!(lines.len(), 2, "{out:?}");
        assert_eq!(lines[0][1..], ["10.0.0.2:7878", "tls", fingerprint]);
        assert!(!lines[0][0].contains(['\u{1b}', '\n']), "{:?}", lines[0][0]);
        assert!(lines[0][0].starts_with("evil"), "{:?}", lines[0][0]);
        assert_eq!(lines[1], ["plain", "[fd00::2]:7000", "plaintext", "-"]);
    }
}
