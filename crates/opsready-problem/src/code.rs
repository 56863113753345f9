//! A stable, machine-readable error code: one entry of the problem catalog.
//!
//! # Example
//!
//! ```
//! use http::StatusCode;
//! use opsready_problem::Code;
//!
//! const INSUFFICIENT_FUNDS: Code = Code::new(
//!     "INSUFFICIENT_FUNDS",
//!     StatusCode::CONFLICT,
//!     "Insufficient funds",
//!     "The account balance does not cover the amount. Top up the account or lower the amount.",
//! );
//!
//! assert_eq!(INSUFFICIENT_FUNDS.slug(), "insufficient-funds");
//! assert_eq!(
//!     INSUFFICIENT_FUNDS.type_uri("https://docs.example.com/problems/"),
//!     "https://docs.example.com/problems/insufficient-funds",
//! );
//! ```
//!
//! # Gotchas
//!
//! - A code is a contract with clients: once shipped, never rename it. Add a
//!   new code instead.
//! - [`Code::new`] checks the identifier when the constant is evaluated, so a
//!   typo such as `"insufficient-funds"` is a compile error in a `const`.
//! - The description is shown to clients (it is the `detail` of every 5xx),
//!   so write it for them: what happened and what to do next.

use std::fmt;

use http::StatusCode;

/// A catalog entry: a stable UPPER_SNAKE identifier with its HTTP status,
/// a short title and a description written for API clients.
///
/// The built-in entries live in [`codes`](crate::codes); services declare their
/// own as constants with [`Code::new`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code {
    code: &'static str,
    status: StatusCode,
    title: &'static str,
    description: &'static str,
    generic: bool,
}

impl Code {
    /// Declares a catalog entry.
    ///
    /// `code` must be UPPER_SNAKE (`A-Z`, `0-9`, `_`, starting with a letter);
    /// the type URI slug is derived from it (`VALIDATION_FAILED` becomes
    /// `validation-failed`).
    ///
    /// # Panics
    ///
    /// Panics if `code` is not UPPER_SNAKE or `status` is not a 4xx or 5xx
    /// status. In a `const` this is a compile-time error.
    #[must_use]
    pub const fn new(
        code: &'static str,
        status: StatusCode,
        title: &'static str,
        description: &'static str,
    ) -> Self {
        assert!(
            is_upper_snake(code),
            "a problem code must be UPPER_SNAKE, e.g. VALIDATION_FAILED"
        );
        assert!(
            status.as_u16() >= 400 && status.as_u16() <= 599,
            "a problem code needs a 4xx or 5xx status"
        );
        Self {
            code,
            status,
            title,
            description,
            generic: false,
        }
    }

    /// The fallback entries used by [`Code::for_status`] when the catalog has
    /// nothing for a status.
    pub(crate) const fn generic(
        code: &'static str,
        status: StatusCode,
        title: &'static str,
        description: &'static str,
    ) -> Self {
        let mut this = Self::new(code, status, title, description);
        this.generic = true;
        this
    }

    /// The catalog entry for `status`: the first built-in code with that
    /// status (`SERVICE_UNAVAILABLE` for 503, `BAD_REQUEST` for 400), or a
    /// generic `CLIENT_ERROR` / `SERVER_ERROR` entry titled with the status'
    /// reason phrase (`Client error` or `Server error` for a status without
    /// one, such as 499).
    ///
    /// A status below 400 is treated as 500: something asked for an error
    /// response without an error status, which is a server bug.
    ///
    /// ```
    /// use http::StatusCode;
    /// use opsready_problem::{Code, codes};
    ///
    /// assert_eq!(Code::for_status(StatusCode::NOT_FOUND), codes::NOT_FOUND);
    /// let gone = Code::for_status(StatusCode::GONE);
    /// assert_eq!(gone.code(), "CLIENT_ERROR");
    /// assert_eq!(gone.status(), StatusCode::GONE);
    /// assert_eq!(gone.title(), "Gone");
    /// ```
    #[must_use]
    pub fn for_status(status: StatusCode) -> Self {
        if let Some(code) = crate::codes::CATALOG
            .iter()
            .find(|code| !code.generic && code.status == status)
        {
            return *code;
        }
        let (template, unnamed) = match status.as_u16() {
            400..=499 => (crate::codes::CLIENT_ERROR, "Client error"),
            500..=599 => (crate::codes::SERVER_ERROR, "Server error"),
            _ => return crate::codes::INTERNAL_ERROR,
        };
        Self {
            status,
            title: status.canonical_reason().unwrap_or(unnamed),
            ..template
        }
    }

    /// The stable identifier, e.g. `VALIDATION_FAILED`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        self.code
    }

    /// The HTTP status every problem with this code answers with.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        self.status
    }

    /// A short, human-readable summary; the same for every occurrence.
    #[must_use]
    pub const fn title(&self) -> &'static str {
        self.title
    }

    /// What the code means and what a client should do about it.
    #[must_use]
    pub const fn description(&self) -> &'static str {
        self.description
    }

    /// Whether this is one of the generic fallbacks standing for a whole
    /// status class rather than one status.
    #[must_use]
    pub const fn is_generic(&self) -> bool {
        self.generic
    }

    /// The last segment of the type URI: the code in lower kebab case.
    #[must_use]
    pub fn slug(&self) -> String {
        slug(self.code)
    }

    /// The problem type URI: `base` followed by the slug, verbatim (so a
    /// base usually ends with `/`); `about:blank` for the generic
    /// [`CLIENT_ERROR`](crate::codes::CLIENT_ERROR) and
    /// [`SERVER_ERROR`](crate::codes::SERVER_ERROR), whose `title` is the
    /// status' reason phrase: RFC 9457 wants one title per type, and
    /// `about:blank` is the type that says "nothing beyond the status".
    ///
    /// ```
    /// use http::StatusCode;
    /// use opsready_problem::{Code, codes};
    ///
    /// let base = "https://docs.example.com/problems/";
    /// assert_eq!(codes::CONFLICT.type_uri(base), "https://docs.example.com/problems/conflict");
    /// assert_eq!(Code::for_status(StatusCode::GONE).type_uri(base), "about:blank");
    /// ```
    #[must_use]
    pub fn type_uri(&self, base: &str) -> String {
        if self.generic {
            return "about:blank".to_owned();
        }
        let mut uri = String::with_capacity(base.len() + self.code.len());
        uri.push_str(base);
        uri.push_str(&self.slug());
        uri
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Code")
            .field("code", &self.code)
            .field("status", &self.status.as_u16())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

const fn is_upper_snake(code: &str) -> bool {
    let bytes = code.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_uppercase() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
            return false;
        }
        i += 1;
    }
    true
}

fn slug(code: &str) -> String {
    code.chars()
        .map(|c| {
            if c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slug_is_the_code_in_lower_kebab_case() {
        assert_eq!(slug("VALIDATION_FAILED"), "validation-failed");
        assert_eq!(slug("HTTP2_ERROR"), "http2-error");
        assert_eq!(slug("NOT_FOUND"), "not-found");
    }

    #[test]
    fn only_upper_snake_identifiers_are_codes() {
        assert!(is_upper_snake("VALIDATION_FAILED"));
        assert!(is_upper_snake("E1"));
        assert!(!is_upper_snake(""));
        assert!(!is_upper_snake("validation_failed"));
        assert!(!is_upper_snake("VALIDATION-FAILED"));
        assert!(!is_upper_snake("_LEADING"));
        assert!(!is_upper_snake("1ST"));
    }

    #[test]
    fn a_status_without_a_catalog_entry_gets_a_generic_code_with_its_reason() {
        let code = Code::for_status(StatusCode::IM_A_TEAPOT);
        assert_eq!(code.code(), "CLIENT_ERROR");
        assert_eq!(code.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(code.title(), "I'm a teapot");

        let code = Code::for_status(StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(code.code(), "SERVER_ERROR");
        assert_eq!(code.status(), StatusCode::INSUFFICIENT_STORAGE);
    }

    #[test]
    fn a_status_shared_by_several_codes_maps_to_the_general_one() {
        assert_eq!(
            Code::for_status(StatusCode::SERVICE_UNAVAILABLE).code(),
            "SERVICE_UNAVAILABLE"
        );
        assert_eq!(
            Code::for_status(StatusCode::BAD_REQUEST).code(),
            "BAD_REQUEST"
        );
    }

    #[test]
    fn a_success_status_maps_to_an_internal_error() {
        assert_eq!(Code::for_status(StatusCode::OK).code(), "INTERNAL_ERROR");
    }
}
