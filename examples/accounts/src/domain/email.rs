//! [`Email`]: an address the service can store and compare.

use std::fmt;

/// A syntactically plausible email address, trimmed and lower-cased, so
/// that `Ann@Example.com` and `ann@example.com ` are the same account.
///
/// The check is deliberately shallow (one `@`, a dotted domain, no spaces
/// or control characters, RFC 5321 lengths in bytes): the only real proof
/// of an address is a message that arrives, which is not this service's
/// job. It takes no more than the API document's `format: email` (RFC
/// 5321, ASCII) does: an international domain in its `xn--` form, no
/// letters outside ASCII before the `@`, so that every address the service
/// returns passes a client's schema check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Email(String);

/// Why a string is not an [`Email`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct EmailError(&'static str);

/// The longest address RFC 5321 lets through a mail server, in bytes.
const MAX_LEN: usize = 254;
/// The longest local part (before the `@`), in bytes.
const MAX_LOCAL_LEN: usize = 64;
/// The longest label of a domain name (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

impl Email {
    /// Parses `input`, trimming surrounding whitespace and lower-casing it.
    pub(crate) fn parse(input: &str) -> Result<Self, EmailError> {
        let email = input.trim().to_lowercase();
        if email.is_empty() {
            return Err(EmailError("must not be empty"));
        }
        if email.len() > MAX_LEN {
            return Err(EmailError("must be at most 254 bytes"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError("must not contain spaces or control characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(EmailError("must contain an @"));
        };
        if domain.contains('@') {
            return Err(EmailError("must contain only one @"));
        }
        if local.is_empty() || local.len() > MAX_LOCAL_LEN {
            return Err(EmailError("must have 1 to 64 bytes before the @"));
        }
        // RFC 5322's dot-atom, in ASCII as `format: email` is: no quoted
        // local parts, no comments, no empty dot-separated part, and
        // nothing invisible (`ann\u{200b}@…` is no second account for
        // `ann@…`).
        let atom_ok = |atom: &str| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c))
        };
        if !local.split('.').all(atom_ok) {
            return Err(EmailError(
                "must have before the @ only letters a to z, digits, dots between them and !#$%&'*+-/=?^_`{|}~",
            ));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |label: &&str| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(EmailError(
                "must have a domain such as example.com after the @ (letters a to z, digits and \
                 hyphens, at most 63 between dots; an international domain in its xn-- form)",
            ));
        }
        Ok(Self(email))
    }

    /// The normalised address.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Gives the normalised address up.
    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_address_is_accepted() {
        assert_eq!(
            Email::parse("ann@example.com").map(Email::into_string),
            Ok("ann@example.com".to_owned())
        );
    }

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Ann.Lee@Example.COM ").map(Email::into_string),
            Ok("ann.lee@example.com".to_owned())
        );
    }

    #[test]
    fn an_empty_address_is_rejected() {
        assert!(Email::parse("").is_err());
        assert!(Email::parse("   ").is_err());
    }

    #[test]
    fn an_address_without_an_at_is_rejected() {
        assert_eq!(
            Email::parse("ann.example.com"),
            Err(EmailError("must contain an @"))
        );
    }

    #[test]
    fn an_address_with_two_ats_is_rejected() {
        assert!(Email::parse("ann@lee@example.com").is_err());
    }

    #[test]
    fn an_address_without_a_local_part_is_rejected() {
        assert!(Email::parse("@example.com").is_err());
    }

    #[test]
    fn a_domain_without_a_dot_is_rejected() {
        assert!(Email::parse("ann@localhost").is_err());
    }

    #[test]
    fn a_domain_with_an_empty_label_is_rejected() {
        assert!(Email::parse("ann@example..com").is_err());
        assert!(Email::parse("ann@.example.com").is_err());
    }

    #[test]
    fn a_local_part_outside_the_dot_atom_is_rejected() {
        for address in [
            "ann..lee@example.com",
            ".ann@example.com",
            "ann.@example.com",
            "ann(x@example.com",
            "a<b>@example.com",
            "\"ann\"@example.com",
            "ann\u{200b}@example.com",
            "jose\u{301}@example.com",
            // Not in `format: email`, which is ASCII.
            "josé@example.com",
            "用户@example.com",
        ] {
            assert!(Email::parse(address).is_err(), "{address:?}");
        }
    }

    #[test]
    fn a_local_part_with_signs_is_accepted() {
        for address in ["ann.lee+billing@example.com", "o'neil@example.com"] {
            assert!(Email::parse(address).is_ok(), "{address:?}");
        }
    }

    #[test]
    fn spaces_inside_an_address_are_rejected() {
        assert!(Email::parse("ann lee@example.com").is_err());
    }

    #[test]
    fn an_address_longer_than_254_bytes_is_rejected() {
        let long = format!("ann@{}com", format!("{}.", "a".repeat(60)).repeat(5));
        assert!(long.len() > 254);
        assert_eq!(
            Email::parse(&long),
            Err(EmailError("must be at most 254 bytes"))
        );
    }

    #[test]
    fn a_local_part_longer_than_64_bytes_is_rejected() {
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn a_domain_is_ascii_with_labels_of_at_most_63_bytes() {
        for address in [
            "ann@bücher.de".to_owned(),
            format!("ann@{}.com", "a".repeat(64)),
            "ann@exa_mple.com".to_owned(),
        ] {
            assert!(Email::parse(&address).is_err(), "{address:?}");
        }
        for address in [
            "ann@xn--bcher-kva.de".to_owned(),
            format!("ann@{}.com", "a".repeat(63)),
        ] {
            assert!(Email::parse(&address).is_ok(), "{address:?}");
        }
    }
}
