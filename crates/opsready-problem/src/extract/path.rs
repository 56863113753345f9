use std::fmt;
use std::ops::{Deref, DerefMut};

use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, RawPathParams};
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::field_codes::{INVALID_TYPE, INVALID_VALUE};
use crate::{FieldError, Problem, codes};

/// Path parameters, rejected with 400 `INVALID_PATH_PARAMETER` naming the
/// parameter in `detail` and in `errors[].parameter`.
///
/// A mismatch between the route and `T` (wrong number of parameters, an
/// unsupported type) is a programming error and answers 500.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<T> Path<T> {
    /// The parsed parameters.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => {
                // Positional errors (tuples, single values) carry an index,
                // not a name; the raw parameters give the names in order.
                let names: Vec<String> = RawPathParams::from_request_parts(parts, state)
                    .await
                    .map(|raw| raw.iter().map(|(name, _)| name.to_owned()).collect())
                    .unwrap_or_default();
                Err(problem_for(rejection, &names))
            }
        }
    }
}

fn problem_for(rejection: PathRejection, names: &[String]) -> Problem {
    let kind = match rejection {
        PathRejection::FailedToDeserializePathParams(error) => error.into_kind(),
        other => return Problem::internal(RouteMismatch(other.body_text())),
    };
    let single = || (names.len() == 1).then(|| names[0].clone());
    let (name, code, detail) = match kind {
        ErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } => (Some(key), INVALID_TYPE, invalid(&value, expected_type)),
        ErrorKind::ParseErrorAtIndex {
            index,
            value,
            expected_type,
        } => (
            names.get(index).cloned(),
            INVALID_TYPE,
            invalid(&value, expected_type),
        ),
        ErrorKind::ParseError {
            value,
            expected_type,
        } => (single(), INVALID_TYPE, invalid(&value, expected_type)),
        ErrorKind::InvalidUtf8InPathParam { key } => (
            Some(key),
            INVALID_VALUE,
            "is not valid UTF-8 once percent-decoded".to_owned(),
        ),
        ErrorKind::DeserializeError { key, message, .. } => (Some(key), INVALID_VALUE, message),
        ErrorKind::Message(message) => (single(), INVALID_VALUE, message),
        other => return Problem::internal(RouteMismatch(other.to_string())),
    };
    let problem = Problem::new(codes::INVALID_PATH_PARAMETER);
    match name {
        Some(name) => problem
            .detail(format!("Path parameter `{name}` {detail}."))
            .with_error(FieldError::parameter(name, code, detail)),
        None => problem.detail(format!("A path parameter {detail}.")),
    }
}

fn invalid(value: &str, expected_type: &str) -> String {
    format!("must be {}, got `{value}`", describe(expected_type))
}

/// Says what a Rust type expects in words a client understands, rather
/// than echoing type names.
pub(super) fn describe(expected_type: &str) -> String {
    let name = expected_type.rsplit("::").next().unwrap_or(expected_type);
    match name {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "bool" => "`true` or `false`".to_owned(),
        "char" => "a single character".to_owned(),
        "String" | "str" => "text".to_owned(),
        other => format!("a valid {}", other.to_ascii_lowercase()),
    }
}

/// The route and the extractor disagree: a bug in the service.
#[derive(Debug)]
struct RouteMismatch(String);

impl fmt::Display for RouteMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "path extractor does not match the route: {}", self.0)
    }
}

impl std::error::Error for RouteMismatch {}

impl<T> Deref for Path<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Path<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_types_are_described_in_words() {
        assert_eq!(describe("u32"), "a non-negative integer");
        assert_eq!(describe("i64"), "an integer");
        assert_eq!(describe("alloc::string::String"), "text");
        assert_eq!(describe("uuid::Uuid"), "a valid uuid");
    }
}
