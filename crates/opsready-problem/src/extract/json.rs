use std::ops::{Deref, DerefMut};

use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::repair::{Outcome, deserialize_all, passes_for};
use super::validate::{Validate, ValidationErrors};
use crate::{FieldError, Problem, codes};

/// A JSON body, rejected with a problem that lists every failing field.
///
/// As a response, serializes `T` as `application/json`. See the
/// [module docs](super) for what is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

/// A JSON body that also passes [`Validate`]; the 422 lists structural
/// errors and rule violations together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ValidJson<T>(pub T);

impl<T> Json<T> {
    /// The deserialized value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> ValidJson<T> {
    /// The deserialized, validated value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (value, len) = read_json(request, state).await?;
        let outcome = deserialize_all::<T>(value, passes_for(len));
        match outcome {
            Outcome {
                value: Some(value),
                ref errors,
                ..
            } if errors.is_empty() => Ok(Self(value)),
            outcome => Err(validation_problem(outcome.errors)),
        }
    }
}

impl<T, S> FromRequest<S> for ValidJson<T>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (value, len) = read_json(request, state).await?;
        let outcome = deserialize_all::<T>(value, passes_for(len));
        let mut violations = ValidationErrors::new();
        if let Some(value) = &outcome.value {
            value.validate(&mut violations);
        }
        let violations: Vec<FieldError> = violations
            .into_vec()
            .into_iter()
            .filter(|violation| {
                // A rule broken by a placeholder or by a member already
                // reported says nothing about the request.
                violation
                    .json_pointer()
                    .is_none_or(|pointer| !outcome.is_touched(pointer))
            })
            .collect();
        match outcome {
            Outcome {
                value: Some(value),
                errors,
                ..
            } if errors.is_empty() && violations.is_empty() => Ok(Self(value)),
            Outcome { mut errors, .. } => {
                errors.extend(violations);
                Err(validation_problem(errors))
            }
        }
    }
}

fn validation_problem(mut errors: Vec<FieldError>) -> Problem {
    if errors.is_empty() {
        // The passes ran out before finding what is wrong; still say where.
        errors.push(FieldError::pointer(
            "",
            super::field_codes::INVALID_VALUE,
            "the body does not have the expected shape",
        ));
    }
    Problem::validation(errors)
}

/// Checks the content type, reads the body under axum's body limit and
/// parses it into a [`Value`].
/// The body as JSON, and its size in bytes.
async fn read_json<S: Send + Sync>(request: Request, state: &S) -> Result<(Value, usize), Problem> {
    if !has_json_content_type(request.headers()) {
        return Err(Problem::new(codes::UNSUPPORTED_MEDIA_TYPE)
            .detail("Expected `Content-Type: application/json` (or a `+json` type)."));
    }
    let body = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(codes::PAYLOAD_TOO_LARGE)
                    .detail("The body is larger than this endpoint accepts.")
            } else {
                Problem::bad_request(rejection.body_text())
            }
        })?;
    let value = serde_json::from_slice::<Value>(&body).map_err(|error| {
        Problem::new(codes::MALFORMED_JSON).detail(format!("Invalid JSON: {error}."))
    })?;
    Ok((value, body.len()))
}

/// `application/json` or any `application/…+json`, ignoring parameters and
/// case.
fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let media = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = media.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(error) => Problem::internal(error).into_response(),
        }
    }
}

impl<T> Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> Deref for ValidJson<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for ValidJson<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> From<T> for Json<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers
    }

    #[test]
    fn json_and_plus_json_content_types_are_accepted() {
        assert!(has_json_content_type(&headers("application/json")));
        assert!(has_json_content_type(&headers(
            "application/json; charset=utf-8"
        )));
        assert!(has_json_content_type(&headers("Application/JSON")));
        assert!(has_json_content_type(&headers(
            "application/merge-patch+json"
        )));
    }

    #[test]
    fn other_or_missing_content_types_are_refused() {
        assert!(!has_json_content_type(&HeaderMap::new()));
        assert!(!has_json_content_type(&headers("text/plain")));
        assert!(!has_json_content_type(&headers("text/json")));
        assert!(!has_json_content_type(&headers("application/jsonx")));
        assert!(!has_json_content_type(&headers("json")));
    }
}
