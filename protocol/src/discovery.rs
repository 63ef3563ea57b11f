//! What a server announces about itself on the LAN over DNS-SD (RFC 6763): the service type
//! and the TXT record, shared by `papo-server`, which announces, and `papo`, which browses.
//!
//! Other programs read the TXT record too (`avahi-browse -r _papo._tcp` shows it), so it is
//! plain `key=value` text. `txtvers` versions its layout, as RFC 6763 section 6.7 suggests: a
//! reader refuses a layout newer than its own instead of misreading it. The fingerprint in it
//! came over an unauthenticated network: a client shows it, and trusts only what the TLS
//! handshake presents and the user accepts.

use crate::tls::Fingerprint;

/// The DNS-SD service type papo servers announce, fully qualified as mDNS names are.
pub const SERVICE_TYPE: &str = "_papo._tcp.local.";

/// The TXT layout this crate writes and the newest it reads.
pub const TXT_VERSION: u32 = 1;

/// A server's announcement: how to talk to it, besides its name and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    /// The server's [`crate::PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// Its certificate's fingerprint when it speaks TLS; `None` when it runs with
    /// `--plaintext`.
    pub tls: Option<Fingerprint>,
}

/// Why a TXT record is not a papo announcement this crate can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadAnnouncement {
    /// A key is missing or its value is not what the layout says.
    #[error("its TXT record has no valid `{0}`")]
    Field(&'static str),
    /// The layout is newer than this crate's.
    #[error("its TXT record has layout {0}, newer than this papo reads ({TXT_VERSION}); update papo")]
    NewerLayout(u32),
}

impl Announcement {
    /// The TXT record's key and value pairs, in the order they are written.
    pub fn to_txt(&self) -> Vec<(&'static str, String)> {
        let mut txt = vec![
            ("txtvers", TXT_VERSION.to_string()),
            ("protovers", self.protocol_version.to_string()),
            ("tls", if self.tls.is_some() { "1" } else { "0" }.to_owned()),
        ];
        if let Some(fingerprint) = self.tls {
            txt.push(("fp", fingerprint.to_string()));
        }
        txt
    }

    /// Reads an announcement from a TXT record, given a lookup of its values by key.
    pub fn from_txt<'a>(value: impl Fn(&str) -> Option<&'a str>) -> Result<Self, BadAnnouncement> {
        let number = |key: &'static str| {
            value(key).and_then(|text| text.parse::<u32>().ok()).ok_or(BadAnnouncement::Field(key))
        };
        let layout = number("txtvers")?;
        if layout > TXT_VERSION {
            return Err(BadAnnouncement::NewerLayout(layout));
        }
        let protocol_version = number("protovers")?;
        let tls = match value("tls") {
            Some("1") => {
                let fingerprint = value("fp").and_then(|text| text.parse().ok());
                Some(fingerprint.ok_or(BadAnnouncement::Field("fp"))?)
            }
            Some("0") => None,
            _ => return Err(BadAnnouncement::Field("tls")),
        };
        Ok(Self { protocol_version, tls })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const FINGERPRINT: &str =
        "B6:08:96:EE:01:23:45:67:89:AB:CD:EF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:10:20:1B:FC";

    fn read(pairs: &[(&str, &str)]) -> Result<Announcement, BadAnnouncement> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        Announcement::from_txt(|key| map.get(key).copied())
    }

    #[test]
    fn the_layout_is_fixed_key_by_key() {
        let tls = Announcement { protocol_version: 2, tls: Some(FINGERPRINT.parse().unwrap()) };
        let expected = [("txtvers", "1"), ("protovers", "2"), ("tls", "1"), ("fp", FINGERPRINT)];
        let written = tls.to_txt();
        assert_eq!(written.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(), expected);

        let plaintext = Announcement { protocol_version: 2, tls: None };
        let written = plaintext.to_txt();
        assert_eq!(
            written.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
            [("txtvers", "1"), ("protovers", "2"), ("tls", "0")]
        );
    }

    #[test]
    fn what_is_written_reads_back() {
        for announcement in [
            Announcement { protocol_version: 2, tls: Some(FINGERPRINT.parse().unwrap()) },
            Announcement { protocol_version: 7, tls: None },
        ] {
            let txt = announcement.to_txt();
            let pairs: Vec<(&str, &str)> = txt.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(read(&pairs), Ok(announcement));
        }
    }

    #[test]
    fn an_older_layout_reads_and_unknown_keys_are_ignored() {
        let read = read(&[("txtvers", "0"), ("protovers", "2"), ("tls", "0"), ("colour", "blue")]);
        assert_eq!(read, Ok(Announcement { protocol_version: 2, tls: None }));
    }

    #[test]
    fn a_newer_layout_is_refused() {
        assert_eq!(
            read(&[("txtvers", "2"), ("protovers", "2"), ("tls", "0")]),
            Err(BadAnnouncement::NewerLayout(2))
        );
    }

    #[test]
    fn broken_records_name_the_bad_key() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("protovers", "2"), ("tls", "0")], "txtvers"),
            (&[("txtvers", "x"), ("protovers", "2"), ("tls", "0")], "txtvers"),
            (&[("txtvers", "1"), ("tls", "0")], "protovers"),
            (&[("txtvers", "1"), ("protovers", "2"), ("tls", "yes")], "tls"),
            (&[("txtvers", "1"), ("protovers", "2"), ("tls", "1")], "fp"),
            (&[("txtvers", "1"), ("protovers", "2"), ("tls", "1"), ("fp", "B6:08")], "fp"),
        ];
        for (pairs, key) in cases {
            assert_eq!(read(pairs), Err(BadAnnouncement::Field(key)), "{pairs:?}");
        }
    }
}
