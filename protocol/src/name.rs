//! Usernames, valid by construction.

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
}
