//! The error of changes and store operations.

use std::fmt;

use crate::validate::Violation;

/// Why a change or a store operation failed.
///
/// Opaque: ask [`kind`](Self::kind) what happened (an HTTP layer maps it
/// to 422, 409, 404 or 503), [`violations`](Self::violations) for the
/// problems of an invalid change and
/// [`current_version`](Self::current_version) for the version a conflict
/// ran into.
///
/// ```
/// use opsready_flags::{Error, ErrorKind};
///
/// let error = Error::conflict("greeting.shout", 3, Some(4));
/// assert_eq!(error.kind(), ErrorKind::Conflict);
/// assert_eq!(error.current_version(), Some(4));
/// assert_eq!(
///     error.to_string(),
///     "flag `greeting.shout` is at version 4, not 3: reload it and apply the change again"
/// );
/// ```
pub struct Error {
    repr: Repr,
}

enum Repr {
    Invalid {
        key: Option<String>,
        violations: Vec<Violation>,
    },
    Stale {
        key: String,
        expected: u64,
        current: Option<u64>,
    },
    Exists {
        key: String,
        current: Option<u64>,
    },
    NotFound {
        key: String,
        version: Option<u64>,
    },
    BadEdit(String),
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The change is invalid; see [`Error::violations`]. (HTTP 422.)
    Invalid,
    /// The flag changed since the version the change was based on, or a
    /// created flag already exists; see [`Error::current_version`].
    /// (HTTP 409.)
    Conflict,
    /// No such flag, or no such version of it. (HTTP 404.)
    NotFound,
    /// The store holds a hand edit it cannot take in (a flag file that
    /// does not parse, or holds an invalid definition): changes are
    /// refused until someone fixes the edit or undoes it, except kills and
    /// rollbacks, which [`FileStore`](crate::FileStore) applies to the
    /// flags in force and sets the edit aside. The message names the file
    /// and the problem: the line and column of a syntax error, the
    /// definition of an invalid one. (HTTP 409.)
    BadEdit,
    /// The store failed (a database or a file system). (HTTP 503.)
    Backend,
}

impl Error {
    /// The change is invalid, for each of `violations`.
    #[must_use]
    pub fn invalid(violations: Vec<Violation>) -> Self {
        Self {
            repr: Repr::Invalid {
                key: None,
                violations,
            },
        }
    }

    /// The change of the flag `key` is invalid, for each of `violations`:
    /// the message names the flag, which a list of declarations needs.
    #[must_use]
    pub fn invalid_flag(key: impl Into<String>, violations: Vec<Violation>) -> Self {
        Self {
            repr: Repr::Invalid {
                key: Some(key.into()),
                violations,
            },
        }
    }

    /// The change expected `key` at version `expected`, but it is at
    /// `current` (`None`: it has no version, which a store reports as not
    /// found instead).
    #[must_use]
    pub fn conflict(key: impl Into<String>, expected: u64, current: Option<u64>) -> Self {
        Self {
            repr: Repr::Stale {
                key: key.into(),
                expected,
                current,
            },
        }
    }

    /// A create found `key` already there, at version `current`.
    #[must_use]
    pub fn already_exists(key: impl Into<String>, current: Option<u64>) -> Self {
        Self {
            repr: Repr::Exists {
                key: key.into(),
                current,
            },
        }
    }

    /// No flag `key`.
    #[must_use]
    pub fn not_found(key: impl Into<String>) -> Self {
        Self {
            repr: Repr::NotFound {
                key: key.into(),
                version: None,
            },
        }
    }

    /// The flag `key` has no version `version`.
    #[must_use]
    pub fn version_not_found(key: impl Into<String>, version: u64) -> Self {
        Self {
            repr: Repr::NotFound {
                key: key.into(),
                version: Some(version),
            },
        }
    }

    /// The store holds a hand edit it cannot take in; `message` says
    /// where, what is wrong and what to do.
    #[must_use]
    pub fn bad_edit(message: impl Into<String>) -> Self {
        Self {
            repr: Repr::BadEdit(message.into()),
        }
    }

    /// The store failed because of `source`.
    #[must_use]
    pub fn backend(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            repr: Repr::Backend(source.into()),
        }
    }

    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match &self.repr {
            Repr::Invalid { .. } => ErrorKind::Invalid,
            Repr::Stale { .. } | Repr::Exists { .. } => ErrorKind::Conflict,
            Repr::NotFound { .. } => ErrorKind::NotFound,
            Repr::BadEdit(_) => ErrorKind::BadEdit,
            Repr::Backend(_) => ErrorKind::Backend,
        }
    }

    /// The problems of an invalid change; empty for other kinds.
    #[must_use]
    pub fn violations(&self) -> &[Violation] {
        match &self.repr {
            Repr::Invalid { violations, .. } => violations,
            _ => &[],
        }
    }

    /// The flag's current version, for a conflict.
    #[must_use]
    pub fn current_version(&self) -> Option<u64> {
        match &self.repr {
            Repr::Stale { current, .. } | Repr::Exists { current, .. } => *current,
            _ => None,
        }
    }

    /// The key of the flag concerned, when there is one.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match &self.repr {
            Repr::Stale { key, .. } | Repr::Exists { key, .. } | Repr::NotFound { key, .. } => {
                Some(key)
            }
            Repr::Invalid { key, .. } => key.as_deref(),
            Repr::BadEdit(_) | Repr::Backend(_) => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Invalid { key, violations } => {
                if let Some(key) = key {
                    write!(f, "the change of flag `{key}` is invalid")?;
                } else {
                    f.write_str("the change is invalid")?;
                }
                for (i, violation) in violations.iter().enumerate() {
                    f.write_str(if i == 0 { ": " } else { "; " })?;
                    write!(f, "{violation}")?;
                }
                Ok(())
            }
            Repr::Stale {
                key,
                expected,
                current: Some(current),
            } => write!(
                f,
                "flag `{key}` is at version {current}, not {expected}: reload it and apply the change again"
            ),
            Repr::Stale {
                key,
                expected,
                current: None,
            } => write!(f, "flag `{key}` has no version yet, not {expected}"),
            Repr::Exists {
                key,
                current: Some(current),
            } => write!(f, "flag `{key}` already exists, at version {current}"),
            Repr::Exists { key, current: None } => write!(f, "flag `{key}` already exists"),
            Repr::NotFound { key, version: None } => write!(f, "no flag `{key}`"),
            Repr::NotFound {
                key,
                version: Some(version),
            } => write!(f, "flag `{key}` has no version {version}"),
            Repr::BadEdit(message) => f.write_str(message),
            Repr::Backend(source) => write!(f, "the flag store failed: {source}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind())
            .field("message", &self.to_string())
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.repr {
            Repr::Backend(source) => Some(source.as_ref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn an_invalid_change_lists_every_violation() {
        let error = Error::invalid(vec![
            Violation::new("/key", "must not be empty"),
            Violation::new("/reason", "must not be empty"),
        ]);
        assert_eq!(error.kind(), ErrorKind::Invalid);
        assert_eq!(error.violations().len(), 2);
        assert_eq!(
            error.to_string(),
            "the change is invalid: /key: must not be empty; /reason: must not be empty"
        );
    }

    #[test]
    fn an_invalid_change_of_a_flag_names_it() {
        let error = Error::invalid_flag(
            "greeting.shout",
            vec![Violation::new("/default_variant", "no such variant")],
        );
        assert_eq!(error.key(), Some("greeting.shout"));
        assert_eq!(
            error.to_string(),
            "the change of flag `greeting.shout` is invalid: /default_variant: no such variant"
        );
    }

    #[test]
    fn creating_an_existing_flag_is_a_conflict_that_names_its_version() {
        let error = Error::already_exists("a", Some(2));
        assert_eq!(error.kind(), ErrorKind::Conflict);
        assert_eq!(error.current_version(), Some(2));
        assert_eq!(error.to_string(), "flag `a` already exists, at version 2");
    }

    #[test]
    fn not_found_says_which_flag_or_version() {
        assert_eq!(Error::not_found("a").to_string(), "no flag `a`");
        assert_eq!(
            Error::version_not_found("a", 9).to_string(),
            "flag `a` has no version 9"
        );
        assert_eq!(Error::not_found("a").key(), Some("a"));
    }

    #[test]
    fn a_bad_edit_says_what_its_message_says() {
        let error = Error::bad_edit("the flag file `f.json` does not parse at line 3");
        assert_eq!(error.kind(), ErrorKind::BadEdit);
        assert_eq!(
            error.to_string(),
            "the flag file `f.json` does not parse at line 3"
        );
        assert!(error.source().is_none());
    }

    #[test]
    fn a_backend_failure_keeps_its_source() {
        let error = Error::backend("connection refused");
        assert_eq!(error.kind(), ErrorKind::Backend);
        assert_eq!(
            error.to_string(),
            "the flag store failed: connection refused"
        );
        assert!(error.source().is_some());
    }
}
