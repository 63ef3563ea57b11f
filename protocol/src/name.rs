//! User and group names, valid by construction.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A validated, lowercase username: 1–32 characters of `a-z 0-9 _ . -`, starting with a
/// letter or digit.
///
/// Names are case-insensitive, so parsing folds ASCII upper case to lower case; everything
/// that is stored or compared holds the folded form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

/// Why a string is not a valid [`Username`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    /// The name is empty.
    #[error("the name is empty")]
    Empty,
    /// The name is longer than [`Username::MAX_LEN`].
    #[error("the name is longer than {} characters", Username::MAX_LEN)]
    TooLong,
    /// The name holds a character outside the allowed set.
    #[error("the name may only hold letters a-z, digits, '_', '.' and '-' (found {0:?})")]
    BadCharacter(char),
    /// The name starts with punctuation.
    #[error("the name must start with a letter or a digit")]
    BadStart,
}

impl Username {
    /// Longest name in characters (all allowed characters are one byte).
    pub const MAX_LEN: usize = 32;

    /// Validates `raw` and folds it to lower case.
    pub fn parse(raw: &str) -> Result<Self, InvalidName> {
        if raw.is_empty() {
            return Err(InvalidName::Empty);
        }
        if let Some(bad) = raw.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(InvalidName::BadCharacter(bad));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(InvalidName::TooLong);
        }
        if !raw.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(InvalidName::BadStart);
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// The folded name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated group name: `#` followed by what a [`Username`] may be (`#lab`,
/// `#redes-g3`), folded to lower case like user names.
///
/// Users and groups never clash: only group names start with `#`. The text held (and sent,
/// and shown) includes the `#`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupName(String);

/// Why a string is not a valid [`GroupName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidGroupName {
    /// It does not start with `#`.
    #[error("a group name starts with '#', as in #lab")]
    NoHash,
    /// What follows the `#` is not a valid name.
    #[error("{0}")]
    Name(InvalidName),
}

impl GroupName {
    /// What starts every group name, and so tells a group from a user wherever either may be
    /// named.
    pub const SIGIL: char = '#';

    /// Validates `raw` (with its `#`) and folds it to lower case.
    pub fn parse(raw: &str) -> Result<Self, InvalidGroupName> {
        let rest = raw.strip_prefix(Self::SIGIL).ok_or(InvalidGroupName::NoHash)?;
        let name = Username::parse(rest).map_err(InvalidGroupName::Name)?;
        Ok(Self(format!("{}{name}", Self::SIGIL)))
    }

    /// Whether `raw` names a group rather than a user (whether or not it is a valid name).
    pub fn is_group(raw: &str) -> bool {
        raw.starts_with(Self::SIGIL)
    }

    /// The folded name with its `#`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The folded name without its `#`.
    pub fn bare(&self) -> &str {
        &self.0[Self::SIGIL.len_utf8()..]
    }
}

impl TryFrom<String> for GroupName {
    type Error = InvalidGroupName;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<GroupName> for String {
    fn from(name: GroupName) -> Self {
        name.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Username {
    type Error = InvalidName;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Username> for String {
    fn from(name: Username) -> Self {
        name.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case() {
        assert_eq!(Username::parse("Alice.B-2_x").unwrap().as_str(), "alice.b-2_x");
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(Username::parse(""), Err(InvalidName::Empty));
        assert_eq!(Username::parse(&"a".repeat(33)), Err(InvalidName::TooLong));
        assert!(Username::parse(&"a".repeat(32)).is_ok());
        assert_eq!(Username::parse("../etc"), Err(InvalidName::BadCharacter('/')));
        assert_eq!(Username::parse(".hidden"), Err(InvalidName::BadStart));
        assert_eq!(Username::parse("a/b"), Err(InvalidName::BadCharacter('/')));
        assert_eq!(Username::parse("a b"), Err(InvalidName::BadCharacter(' ')));
        assert_eq!(Username::parse("a\u{7}"), Err(InvalidName::BadCharacter('\u{7}')));
        // Cyrillic 'а' looks like Latin 'a' but is not allowed.
        assert_eq!(Username::parse("\u{430}lice"), Err(InvalidName::BadCharacter('\u{430}')));
    }

    #[test]
    fn group_names_are_a_hash_and_a_user_name() {
        let lab = GroupName::parse("#Redes-G3").unwrap();
        assert_eq!((lab.as_str(), lab.bare()), ("#redes-g3", "redes-g3"));
        assert_eq!(GroupName::parse("lab"), Err(InvalidGroupName::NoHash));
        assert_eq!(GroupName::parse("#"), Err(InvalidGroupName::Name(InvalidName::Empty)));
        assert_eq!(GroupName::parse("##lab"), Err(InvalidGroupName::Name(InvalidName::BadCharacter('#'))));
        assert_eq!(
            GroupName::parse(&format!("#{}", "a".repeat(33))),
            Err(InvalidGroupName::Name(InvalidName::TooLong))
        );
        assert!(GroupName::is_group("#x") && !GroupName::is_group("x#"));
    }
}
