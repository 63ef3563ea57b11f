//! Invite codes: created by the administrator, used up by registrations.
//!
//! A registration with a code consumes it in the same operation of the committer that
//! creates the account, so of several registrations racing with one single-use code exactly
//! one gets an account, and a registration refused for its name keeps the code unused.

use papo_protocol::UnixMillis;

use super::commit::{Growth, Staged, TreeName};
use super::records::{corrupt, decode, encode, InviteRecord};
use super::writes::create_user;
use super::{keys, Result, Store};

/// What registering came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// The account exists now (and the code, if any, was used once).
    Created,
    /// The name is taken: nothing changed, the code is still unused.
    NameTaken,
    /// The code is unknown, used up, expired or revoked: nothing changed.
    InviteInvalid,
}

/// An invite code being used.
#[derive(Debug, Clone)]
pub struct Invite {
    /// The code.
    pub code: String,
    /// When it is used, against its expiry.
    pub now: UnixMillis,
}

/// Creates an account under `key`, using up `invite` if one is given.
pub fn register(
    staged: &mut Staged<'_>,
    key: Vec<u8>,
    value: Vec<u8>,
    invite: Option<&Invite>,
) -> Result<Registered> {
    let Some(invite) = invite else {
        return Ok(if create_user(staged, key, value)? {
            Registered::Created
        } else {
            Registered::NameTaken
        });
    };
    let invite_key = keys::invite(&invite.code);
    let Some(raw) = staged.get(TreeName::Chat, &invite_key)? else { return Ok(Registered::InviteInvalid) };
    let record: InviteRecord = decode(&invite_key, &raw)?;
    if record.uses_left == 0 || record.expires_at.is_some_and(|at| at <= invite.now) {
        return Ok(Registered::InviteInvalid);
    }
    if staged.get(TreeName::Users, &key)?.is_some() {
        return Ok(Registered::NameTaken);
    }
    staged.insert(TreeName::Users, key, value);
    match record.uses_left - 1 {
        0 => staged.remove(TreeName::Chat, invite_key),
        uses_left => staged.insert(TreeName::Chat, invite_key, encode(&InviteRecord { uses_left, ..record })),
    }
    Ok(Registered::Created)
}

impl Store {
    /// Stores a new invite code durably.
    pub fn create_invite(&self, code: &str, record: InviteRecord) -> Result<()> {
        let (key, value) = (keys::invite(code), encode(&record));
        self.committer.call(Growth::Grows, move |staged| {
            staged.insert(TreeName::Chat, key, value);
            Ok(())
        })
    }

    /// Every invite code, in code order, with what is left of it.
    pub fn invites(&self) -> Result<Vec<(String, InviteRecord)>> {
        let mut invites = Vec::new();
        for entry in self.trees.chat.scan_prefix(keys::INVITES) {
            let (key, raw) = entry?;
            let code = keys::invite_code(&key).ok_or_else(|| corrupt(&key, "bad invite key"))?;
            invites.push((code.to_owned(), decode(&key, &raw)?));
        }
        Ok(invites)
    }

    /// Revokes an invite code durably; whether there was one.
    pub fn revoke_invite(&self, code: &str) -> Result<bool> {
        let key = keys::invite(code);
        self.committer.call(Growth::Maintains, move |staged| {
            let existed = staged.get(TreeName::Chat, &key)?.is_some();
            staged.remove(TreeName::Chat, key);
            Ok(existed)
        })
    }
}
