//! What a conversation is with: a user or a `#group`. The model, the network thread and the
//! outbox all key conversations by it, so it lives in a module of its own instead of in
//! one of theirs.

use std::fmt;

use papo_protocol::{GroupName, Username};

/// The other side of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConvKey {
    /// A direct conversation with a user.
    User(Username),
    /// A group conversation.
    Group(GroupName),
}

impl ConvKey {
    /// `#name` is a group, anything else a user name (only group names start with `#`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        if GroupName::is_group(raw) {
            GroupName::parse(raw).map(Self::Group).map_err(|e| e.to_string())
        } else {
            Username::parse(raw).map(Self::User).map_err(|e| e.to_string())
        }
    }

    /// The user, for a direct conversation.
    pub fn user(&self) -> Option<&Username> {
        match self {
            Self::User(user) => Some(user),
            Self::Group(_) => None,
        }
    }

    /// The group, for a group's conversation.
    pub fn group(&self) -> Option<&GroupName> {
        match self {
            Self::User(_) => None,
            Self::Group(group) => Some(group),
        }
    }

    /// The name as the protocol and the screen write it: `bia` or `#lab`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::User(user) => user.as_str(),
            Self::Group(group) => group.as_str(),
        }
    }
}

impl fmt::Display for ConvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for ConvKey {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<Username> for ConvKey {
    fn from(user: Username) -> Self {
        Self::User(user)
    }
}

impl From<GroupName> for ConvKey {
    fn from(group: GroupName) -> Self {
        Self::Group(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_makes_a_group_and_both_print_as_parsed() {
        let lab = ConvKey::parse("#Lab").unwrap();
        assert_eq!(lab, ConvKey::Group(GroupName::parse("#lab").unwrap()));
        assert_eq!(lab.to_string(), "#lab");
        let bia = ConvKey::parse("bia").unwrap();
        assert_eq!(bia.user(), Some(&Username::parse("bia").unwrap()));
        assert_eq!(lab.user(), None);
        assert!(ConvKey::parse("#").is_err());
        assert!(ConvKey::parse("b ia").is_err());
    }
}
