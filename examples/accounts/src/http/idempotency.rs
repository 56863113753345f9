//! The `Idempotency-Key` header, and the fingerprint of a request that
//! tells a retry from a different request under the same key.
//!
//! The semantics follow the IETF draft "The Idempotency-Key HTTP Header
//! Field": a missing key is a 400, the same key with another body a 422,
//! and the same key with the same body gets the first response again,
//! marked `Idempotent-Replayed: true`. Keys are global to the service
//! (there are no client accounts to scope them by yet) and kept forever
//! (expiry is left for later).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use opsready::problem::Problem;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::problems::{IDEMPOTENCY_KEY_MISSING, INVALID_IDEMPOTENCY_KEY};

/// The request header.
pub(crate) const HEADER: &str = "idempotency-key";

/// The response header of a replayed answer.
pub(crate) const REPLAYED: &str = "idempotent-replayed";

/// The longest key stored.
const MAX_LEN: usize = 255;

/// A valid `Idempotency-Key`: 1 to 255 visible ASCII characters. As an
/// extractor it runs before the body is read, so a missing key is reported
/// whatever the body holds.
#[derive(Debug, Clone)]
pub(crate) struct IdempotencyKey(String);

impl IdempotencyKey {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get(HEADER) else {
            return Err(Problem::new(IDEMPOTENCY_KEY_MISSING));
        };
        let key = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|key| {
                !key.is_empty() && key.len() <= MAX_LEN && key.bytes().all(|b| b.is_ascii_graphic())
            })
            .ok_or_else(|| Problem::new(INVALID_IDEMPOTENCY_KEY))?;
        Ok(Self(key.to_owned()))
    }
}

/// The SHA-256, hex, of `request` as the service understood it (its
/// serialized form): whitespace and member order do not make two bodies
/// different, a changed value does.
pub(crate) fn fingerprint(route: &str, request: &impl Serialize) -> Result<String, Problem> {
    let body = serde_json::to_vec(request).map_err(Problem::internal)?;
    let mut hasher = Sha256::new();
    // The route too, so a key cannot replay an answer of another route.
    hasher.update(route.as_bytes());
    hasher.update([0]);
    hasher.update(&body);
    let digest = hasher.finalize();
    Ok(digest.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn member_order_and_whitespace_do_not_change_the_fingerprint() {
        #[derive(serde::Deserialize, Serialize)]
        struct Request {
            a: i32,
            b: i32,
        }
        let a: Request = serde_json::from_str(r#"{"a": 1, "b": 2}"#).unwrap();
        let b: Request = serde_json::from_str(r#"{ "b":2,"a":1 }"#).unwrap();
        assert_eq!(fingerprint("r", &a).unwrap(), fingerprint("r", &b).unwrap());
    }

    #[test]
    fn a_changed_value_changes_the_fingerprint() {
        assert_ne!(
            fingerprint("r", &json!({"a": 1})).unwrap(),
            fingerprint("r", &json!({"a": 2})).unwrap()
        );
    }

    #[test]
    fn the_route_is_part_of_the_fingerprint() {
        assert_ne!(
            fingerprint("r", &json!({"a": 1})).unwrap(),
            fingerprint("s", &json!({"a": 1})).unwrap()
        );
    }

    #[test]
    fn a_fingerprint_is_64_hex_digits() {
        let print = fingerprint("r", &json!({})).unwrap();
        assert_eq!(print.len(), 64);
        assert!(print.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
