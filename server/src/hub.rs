//! Who is online: every logged-in session's outbound queue, by user.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use papo_protocol::{ErrorReply, Event, ServerFrame, UnixMillis, Username};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::frames;
use crate::transport::Sink;

/// The online sessions, grouped by user.
#[derive(Debug, Default)]
pub struct Hub {
    online: RwLock<HashMap<Username, Vec<Member>>>,
}

/// A logged-in session, as the administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSession {
    /// Whose it is.
    pub name: Username,
    /// The client's address.
    pub peer: SocketAddr,
    /// When it logged in.
    pub since: UnixMillis,
}

#[derive(Debug)]
struct Member {
    session: u64,
    sink: Arc<dyn Sink>,
    wants_presence: bool,
    peer: SocketAddr,
    since: UnixMillis,
}

impl Hub {
    /// Adds a session of a client at `peer` that logged in at `since`; tells presence
    /// subscribers if it is the user's first.
    pub(crate) fn join(
        &self,
        user: &Username,
        session: u64,
        sink: Arc<dyn Sink>,
        peer: SocketAddr,
        since: UnixMillis,
    ) {
        let mut online = self.online.write().unwrap_or_else(PoisonError::into_inner);
        let sessions = online.entry(user.clone()).or_default();
        sessions.push(Member { session, sink, wants_presence: false, peer, since });
        if sessions.len() == 1 {
            broadcast_presence(&online, user, true);
        }
    }

    /// Removes a session; tells presence subscribers if it was the user's last, and says
    /// whether it was.
    pub fn leave(&self, user: &Username, session: u64) -> bool {
        let mut online = self.online.write().unwrap_or_else(PoisonError::into_inner);
        let Some(sessions) = online.get_mut(user) else { return false };
        sessions.retain(|member| member.session != session);
        if !sessions.is_empty() {
            return false;
        }
        online.remove(user);
        broadcast_presence(&online, user, false);
        true
    }

    /// Sends this session every later presence change.
    pub fn subscribe_presence(&self, user: &Username, session: u64) {
        let mut online = self.online.write().unwrap_or_else(PoisonError::into_inner);
        let members = online.get_mut(user).into_iter().flatten();
        for member in members.filter(|member| member.session == session) {
            member.wants_presence = true;
        }
    }

    /// Queues encoded frames to every presence subscriber (every session that listed
    /// contacts), such as a new account, so contact lists grow without a restart.
    pub fn send_to_subscribers(&self, frames: &[u8]) {
        let online = self.online.read().unwrap_or_else(PoisonError::into_inner);
        for member in online.values().flatten().filter(|member| member.wants_presence) {
            let _ = member.sink.push(frames);
        }
    }

    /// Whether any session of `user` is online.
    pub fn is_online(&self, user: &Username) -> bool {
        self.online.read().unwrap_or_else(PoisonError::into_inner).contains_key(user)
    }

    /// Every logged-in session, by name and then login time.
    pub fn sessions(&self) -> Vec<LiveSession> {
        let online = self.online.read().unwrap_or_else(PoisonError::into_inner);
        let mut sessions: Vec<LiveSession> = online
            .iter()
            .flat_map(|(name, members)| {
                members.iter().map(|member| LiveSession {
                    name: name.clone(),
                    peer: member.peer,
                    since: member.since,
                })
            })
            .collect();
        sessions.sort_unstable_by(|a, b| (&a.name, a.since).cmp(&(&b.name, b.since)));
        sessions
    }

    /// Closes every session of `user` but `keep`, telling each why with a `Fatal` frame
    /// first (if `farewell` is given), and says how many it closed. Each then leaves the hub
    /// from its own thread, as when its client hangs up.
    pub fn disconnect(&self, user: &Username, keep: Option<u64>, farewell: Option<&ErrorReply>) -> usize {
        self.close_where(user, |member| Some(member.session) != keep, farewell)
    }

    /// Closes the session of `user` whose client is at `peer` (as [`Hub::sessions`] lists
    /// it), if there is one: whether there was.
    pub fn disconnect_peer(&self, user: &Username, peer: SocketAddr) -> bool {
        self.close_where(user, |member| member.peer == peer, None) > 0
    }

    fn close_where(
        &self,
        user: &Username,
        chosen: impl Fn(&Member) -> bool,
        farewell: Option<&ErrorReply>,
    ) -> usize {
        let farewell = farewell.map(|reason| frames::encode(&ServerFrame::Fatal(reason.clone())));
        let online = self.online.read().unwrap_or_else(PoisonError::into_inner);
        let members = online.get(user).into_iter().flatten().filter(|member| chosen(member));
        let mut closed = 0;
        for member in members {
            if let Some(frame) = &farewell {
                // A client that does not read is closed anyway, without it.
                let _ = member.sink.push(frame);
            }
            member.sink.close();
            closed += 1;
        }
        closed
    }

    /// How many users have a session online.
    #[cfg(any(test, feature = "test-support"))]
    pub fn online_users(&self) -> usize {
        self.online.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Queues encoded frames to every session of each of `users`: a group's members, under
    /// one lock.
    pub fn send_to_each(&self, users: &[Username], frames: &[u8]) {
        let online = self.online.read().unwrap_or_else(PoisonError::into_inner);
        for user in users {
            for member in online.get(user).into_iter().flatten() {
                if let Err(e) = member.sink.push(frames) {
                    debug!(%user, error = %e, "a session missed a live frame; it stays in the store");
                }
            }
        }
    }

    /// Queues encoded frames to every session of `user` except `skip`.
    pub fn send_to(&self, user: &Username, frames: &[u8], skip: Option<u64>) {
        let online = self.online.read().unwrap_or_else(PoisonError::into_inner);
        let members = online.get(user).into_iter().flatten();
        for member in members.filter(|member| Some(member.session) != skip) {
            if let Err(e) = member.sink.push(frames) {
                debug!(%user, error = %e, "a session missed a live frame; it stays in the store");
            }
        }
    }
}

fn broadcast_presence(online: &HashMap<Username, Vec<Member>>, user: &Username, is_online: bool) {
    let encoded =
        frames::encode(&ServerFrame::Event(Event::Presence { user: user.clone(), online: is_online }));
    let subscribers = online.iter().filter(|(name, _)| *name != user).flat_map(|(_, members)| members);
    for member in subscribers.filter(|member| member.wants_presence) {
        // A subscriber that cannot keep up is closed by its queue; nothing else to do here.
        let _ = member.sink.push(&encoded);
    }
}
