//! [`UserName`]: how a person is called in the service.

use std::fmt;

/// A display name: trimmed, 1 to 100 characters, none of them a control
/// character or one of `/()"<>\{}` (which have no business in a name and
/// much in an injection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserName(String);

/// Why a string is not a [`UserName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UserNameError(&'static str);

/// The longest name, in characters.
const MAX_LEN: usize = 100;
const FORBIDDEN: [char; 9] = ['/', '(', ')', '"', '<', '>', '\\', '{', '}'];

impl UserName {
    /// Parses `input`, trimming surrounding whitespace.
    pub(crate) fn parse(input: &str) -> Result<Self, UserNameError> {
        let name = input.trim();
        if name.is_empty() {
            return Err(UserNameError("must not be empty"));
        }
        // Characters, not bytes: "Zoë" is three long, as a person counts.
        if name.chars().count() > MAX_LEN {
            return Err(UserNameError("must be at most 100 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(UserNameError("must not contain control characters"));
        }
        if name.chars().any(super::text::is_invisible_or_bidi) {
            return Err(UserNameError(
                "must not contain invisible or direction-changing characters",
            ));
        }
        if name.chars().any(|c| FORBIDDEN.contains(&c)) {
            return Err(UserNameError(
                r#"must not contain any of / ( ) " < > \ { }"#,
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_name_is_accepted() {
        assert_eq!(UserName::parse("Ann Lee").unwrap().as_str(), "Ann Lee");
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        assert_eq!(UserName::parse("  Ann  ").unwrap().as_str(), "Ann");
    }

    #[test]
    fn invisible_or_direction_changing_characters_are_rejected() {
        assert!(UserName::parse("\u{200b}").is_err());
        assert!(UserName::parse("Ann\u{202e}eeL").is_err());
        // The joiners Persian names need are letters' company, not tricks.
        assert!(UserName::parse("\u{645}\u{6cc}\u{200c}\u{62f}\u{627}\u{646}").is_ok());
    }

    #[test]
    fn an_empty_name_is_rejected() {
        assert!(UserName::parse("").is_err());
    }

    #[test]
    fn whitespace_only_names_are_rejected() {
        assert!(UserName::parse(" \t ").is_err());
    }

    #[test]
    fn a_name_of_100_characters_is_accepted_even_when_they_are_multibyte() {
        assert!(UserName::parse(&"ë".repeat(100)).is_ok());
    }

    #[test]
    fn a_name_longer_than_100_characters_is_rejected() {
        assert!(UserName::parse(&"a".repeat(101)).is_err());
    }

    #[test]
    fn names_with_forbidden_characters_are_rejected() {
        for c in FORBIDDEN {
            assert!(UserName::parse(&format!("Ann{c}")).is_err(), "{c}");
        }
    }

    #[test]
    fn names_with_control_characters_are_rejected() {
        assert!(UserName::parse("Ann\u{0}Lee").is_err());
    }
}
