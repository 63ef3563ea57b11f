//! Announces the server on the LAN over mDNS/DNS-SD, so that `papo discover` (and any DNS-SD
//! browser, such as `avahi-browse`) finds it without being given an address.
//!
//! mdns-sd answers queries from one thread of its own and needs no async runtime. Announcing
//! is a convenience: whatever goes wrong with it is logged and the server serves on, found by
//! its address as before.

use std::net::SocketAddr;
use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceInfo};
use papo_protocol::discovery::{Announcement, SERVICE_TYPE};
use papo_protocol::{Fingerprint, PROTOCOL_VERSION};
use tracing::{debug, info, warn};

/// How long stopping waits for the daemon to send its goodbye (which tells browsers at once
/// that the server is gone) before the server exits anyway.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// A running announcement; [`Announcer::stop`] withdraws it.
pub(crate) struct Announcer {
    daemon: ServiceDaemon,
}

impl Announcer {
    /// Announces `instance` at `listening` (every interface's addresses when it is a wildcard
    /// address), or logs why it cannot and returns `None`.
    pub(crate) fn start(instance: &str, listening: SocketAddr, tls: Option<Fingerprint>) -> Option<Self> {
        if listening.ip().is_loopback() {
            info!(address = %listening, "listening on loopback only: not announced on the LAN");
            return None;
        }
        match has_lan_interface() {
            Ok(true) => {}
            Ok(false) => {
                warn!("no network interface besides loopback is up: the server is not announced on the LAN, and clients need its address");
                return None;
            }
            Err(e) => {
                warn!(error = %e, "cannot list the network interfaces: the server is not announced on the LAN, and clients need its address");
                return None;
            }
        }
        let announcement = Announcement { protocol_version: PROTOCOL_VERSION, tls };
        match announce(instance, listening, &announcement) {
            Ok(daemon) => {
                info!(
                    instance,
                    service = SERVICE_TYPE,
                    "announced on the LAN (mDNS); --no-announce turns it off"
                );
                Some(Self { daemon })
            }
            Err(e) => {
                warn!(error = %e, "cannot announce the server on the LAN; clients need its address");
                None
            }
        }
    }

    /// Withdraws the announcement (browsers forget the server at once) and stops the
    /// daemon's thread.
    pub(crate) fn stop(self) {
        match self.daemon.shutdown() {
            Ok(done) => {
                if done.recv_timeout(GOODBYE_TIMEOUT).is_err() {
                    debug!("the mDNS daemon did not confirm its shutdown in time");
                }
            }
            Err(e) => debug!(error = %e, "the mDNS daemon had already stopped"),
        }
    }
}

fn announce(
    instance: &str,
    listening: SocketAddr,
    announcement: &Announcement,
) -> mdns_sd::Result<ServiceDaemon> {
    let host = format!("{}.local.", host_label());
    let txt = announcement.to_txt();
    let service = if listening.ip().is_unspecified() {
        // Every interface's addresses, kept current as they come and go.
        ServiceInfo::new(SERVICE_TYPE, instance, &host, (), listening.port(), txt.as_slice())?
            .enable_addr_auto()
    } else {
        ServiceInfo::new(SERVICE_TYPE, instance, &host, listening.ip(), listening.port(), txt.as_slice())?
    };
    let daemon = ServiceDaemon::new()?;
    daemon.register(service)?;
    Ok(daemon)
}

/// This machine's host name: the default instance name, and (its first label) the mDNS
/// host name the service's address records are under.
pub fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `buffer.len()` bytes into the buffer we own.
    let written = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    let name = if written == 0 {
        let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
        String::from_utf8_lossy(&buffer[..end]).into_owned()
    } else {
        String::new()
    };
    if name.is_empty() {
        "papo-server".to_owned()
    } else {
        name
    }
}

/// The first label of the host name: `lab1.example.org` answers as `lab1.local.` on mDNS.
fn host_label() -> String {
    host_name().split('.').next().unwrap_or_default().to_owned()
}

/// Whether any interface besides loopback is up: mDNS has nowhere to send otherwise.
fn has_lan_interface() -> std::io::Result<bool> {
    let interfaces = if_addrs::get_if_addrs()?;
    Ok(interfaces.iter().any(|interface| interface.is_oper_up() && !interface.is_loopback()))
}
