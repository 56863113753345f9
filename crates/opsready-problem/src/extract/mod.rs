//! Extractors that reject with problems, listing every failing field.
//!
//! | extractor | checks | rejects with |
//! |---|---|---|
//! | [`Json<T>`] | `content-type` is JSON (`application/json` or `…+json`), size limit, syntax, shape | 415 `UNSUPPORTED_MEDIA_TYPE`, 413 `PAYLOAD_TOO_LARGE`, 400 `MALFORMED_JSON`, 422 `VALIDATION_FAILED` |
//! | [`ValidJson<T>`] | as [`Json<T>`], then [`Validate`] | the same; 422 lists structural and rule violations together |
//! | [`Path<T>`] | path parameters parse | 400 `INVALID_PATH_PARAMETER` |
//! | [`Query<T>`] | query parameters parse | 400 `INVALID_QUERY_PARAMETER` |
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, http::Request, routing::post};
//! use opsready_problem::extract::{Json, Validate, ValidationErrors, ValidJson};
//! use serde::Deserialize;
//! use tower::ServiceExt;
//!
//! #[derive(Deserialize)]
//! struct NewUser {
//!     email: String,
//!     age: u8,
//! }
//!
//! impl Validate for NewUser {
//!     fn validate(&self, errors: &mut ValidationErrors) {
//!         if !self.email.contains('@') {
//!             errors.add("/email", "INVALID_EMAIL", "must contain an @");
//!         }
//!     }
//! }
//!
//! async fn create(ValidJson(user): ValidJson<NewUser>) -> Json<u8> {
//!     Json(user.age)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new().route("/users", post(create));
//! let response = app
//!     .oneshot(
//!         Request::post("/users")
//!             .header("content-type", "application/json")
//!             .body(Body::from(r#"{"email": "nope", "age": "old"}"#))
//!             .unwrap(),
//!     )
//!     .await
//!     .unwrap();
//!
//! assert_eq!(response.status(), 422);
//! let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
//! let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! let pointers: Vec<&str> = body["errors"]
//!     .as_array()
//!     .unwrap()
//!     .iter()
//!     .map(|e| e["pointer"].as_str().unwrap())
//!     .collect();
//! // The wrong type and the broken rule, in one answer.
//! assert_eq!(pointers, ["/age", "/email"]);
//! # }
//! ```
//!
//! # How every field is found
//!
//! serde stops at the first error. The JSON extractors parse the body into a
//! `serde_json::Value`, deserialize `T` from it, and on an error record it,
//! remove the offending member (or fill a missing one with a placeholder:
//! an empty string, `0`, `false`, `{}`, `[]`, `null`, an enum's first
//! variant, or text a UUID, a date and time, a date, a time, an IP address
//! or a URL accepts) and try again, up to a bound: 128 passes for a body of up to 32 KiB,
//! fewer for larger ones (4 MiB read over all passes: two for a 2 MiB
//! body), so a large body with many errors reports its first few and a
//! hostile one cannot hold a worker for long. Field codes are `MISSING_FIELD`,
//! `INVALID_TYPE`, `INVALID_VALUE` and `UNKNOWN_FIELD` (the last only with
//! `#[serde(deny_unknown_fields)]`).
//!
//! # Gotchas
//!
//! - The body limit is axum's [`DefaultBodyLimit`](axum::extract::DefaultBodyLimit):
//!   the body is read through axum's `Bytes` extractor.
//! - Rule violations reported by [`Validate`] at a pointer that already has
//!   a structural error are dropped: that value was a placeholder.
//! - `#[serde(flatten)]` and untagged enums buffer their input, so their
//!   errors may point at the enclosing object rather than the member.
//! - A missing or invalid member whose type takes no placeholder (a type
//!   with a parse rule of its own) ends the list there: serde reports the
//!   missing members after it only once it has a value. `Query<T>` fills
//!   parameters the same way.
//! - Every extractor `Deref`s to the value and has `into_inner()`.

mod json;
mod path;
mod query;
mod repair;
mod validate;

pub use json::{Json, ValidJson};
pub use path::Path;
pub use query::Query;
pub use validate::{Validate, ValidationErrors};

/// Text stand-ins for a missing or removed value whose type takes none of
/// the plain ones (an empty string, `0`, `false`, …): a UUID, a date and
/// time, a date, a time of day, an IP address, a URL, non-empty text.
/// Without one that fits, no pass gets past the value, and every error
/// after it (serde reports missing members in declaration order) would go
/// unreported.
const TEXT_STAND_INS: [&str; 7] = [
    "00000000-0000-0000-0000-000000000000",
    "1970-01-01T00:00:00Z",
    "1970-01-01",
    "00:00:00",
    "0.0.0.0",
    "http://localhost/",
    "a",
];

/// The first variant an enum's rejection names (serde's `unknown variant
/// `x`, expected one of `a`, `b``, `expected `a` or `b``): the stand-in
/// that fits an enum.
fn named_variant(message: &str) -> Option<&str> {
    let expected = message.rsplit_once("expected ")?.1;
    let expected = expected.strip_prefix("one of ").unwrap_or(expected);
    expected
        .strip_prefix('`')?
        .split('`')
        .next()
        .filter(|variant| !variant.is_empty())
}

/// The stand-ins tried in turn at one place: `plain` ones, then
/// [`TEXT_STAND_INS`]; the variant an enum's rejection names as soon as
/// one does.
#[derive(Debug, Default)]
struct StandIns {
    next: usize,
    variant_tried: bool,
}

impl StandIns {
    /// The next stand-in, given the message the last one (or the value
    /// itself) was rejected with: the variant it names, if any, first;
    /// `None` once none is left.
    fn next<T: Clone>(
        &mut self,
        plain: &[T],
        text: impl Fn(&str) -> T,
        message: &str,
    ) -> Option<T> {
        if !self.variant_tried
            && let Some(variant) = named_variant(message)
        {
            self.variant_tried = true;
            return Some(text(variant));
        }
        let next = self.next;
        self.next += 1;
        match plain.get(next) {
            Some(stand_in) => Some(stand_in.clone()),
            None => TEXT_STAND_INS
                .get(next - plain.len())
                .map(|stand_in| text(stand_in)),
        }
    }
}

/// Field codes of the errors the extractors report.
pub mod field_codes {
    /// A required member or parameter is absent.
    pub const MISSING_FIELD: &str = "MISSING_FIELD";
    /// A value has the wrong JSON type (a string where a number belongs).
    pub const INVALID_TYPE: &str = "INVALID_TYPE";
    /// A value has the right type but is not acceptable.
    pub const INVALID_VALUE: &str = "INVALID_VALUE";
    /// A member the type does not know, with `deny_unknown_fields`.
    pub const UNKNOWN_FIELD: &str = "UNKNOWN_FIELD";
}
