//! [`Problem`], the RFC 9457 error envelope, and [`FieldError`], one entry of
//! its `errors` list.
//!
//! # Example
//!
//! ```
//! use axum::response::IntoResponse;
//! use opsready_problem::{FieldError, Problem, codes};
//!
//! let response = Problem::new(codes::VALIDATION_FAILED)
//!     .with_error(FieldError::pointer("/email", "INVALID_EMAIL", "not an email address"))
//!     .into_response();
//!
//! assert_eq!(response.status(), 422);
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! ```
//!
//! # Gotchas
//!
//! - **A 5xx never carries internals.** For a status of 500 or more the
//!   serialized `detail` is always the code's catalog description; the
//!   detail you set and the cause stay inside the process. Read them from the
//!   response extension (`response.extensions().get::<Problem>()`) to log
//!   them; `IntoResponse` itself never logs.
//! - Without [`ProblemLayer`](crate::ProblemLayer) the body has no
//!   `request_id`, `trace_id` or `instance`, and the type URI uses the
//!   default base `https://opsready.dev/problems/`. The layer re-renders the
//!   body with the request's context.
//! - `content-type` and `content-length` set through [`Problem::header`] are
//!   ignored: the body decides them.

use std::error::Error as StdError;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use opsready_vocab::redact_secrets_in;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::{Code, codes};

/// The media type of every problem body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The type URI base used when no [`ProblemLayer`](crate::ProblemLayer)
/// overrides it.
pub const DEFAULT_TYPE_BASE: &str = "https://opsready.dev/problems/";

type Cause = Arc<dyn StdError + Send + Sync + 'static>;

/// An RFC 9457 problem: a [`Code`] from the catalog plus what this occurrence
/// adds (detail, field errors, `Retry-After`, headers, an internal cause).
///
/// It is an [`IntoResponse`], an [`Error`](StdError) (so handlers can use
/// `?`) and [`Serialize`] (the envelope without request context; the cause is
/// never serialized).
#[derive(Clone)]
pub struct Problem {
    // Boxed so `Result<T, Problem>` stays one pointer wide on the happy path.
    inner: Box<Inner>,
}

/// What the problem layer answers for a response of `status` that carries
/// `problem` in its extensions: the status the client gets and the problem
/// its body renders. Layers inside the problem layer that record the
/// answer (the request line, metrics, error tracking) read it through this,
/// so that they agree with what the client got.
///
/// - A status beyond 599 answers as a 500.
/// - A success status set around a problem (`(StatusCode::OK, problem)`)
///   gives way to the problem's own.
/// - An error status set around a problem of another status
///   (`(StatusCode::CONFLICT, Problem::not_found(…))`) wins, and the
///   problem is recoded for it, its detail internal if that is a 5xx (and
///   a 5xx problem's detail dropped from a 4xx answer).
///
/// ```
/// use http::StatusCode;
/// use opsready_problem::{Problem, answered};
///
/// let problem = Problem::not_found("no user 42");
/// let (status, body) = answered(StatusCode::CONFLICT, Some(&problem));
/// assert_eq!(status, StatusCode::CONFLICT);
/// assert_eq!(body.unwrap().code().code(), "CONFLICT");
/// assert_eq!(answered(StatusCode::OK, Some(&problem)).0, StatusCode::NOT_FOUND);
/// assert_eq!(answered(StatusCode::from_u16(600).unwrap(), None).0, 500);
/// ```
#[must_use]
pub fn answered(
    status: StatusCode,
    problem: Option<&Problem>,
) -> (StatusCode, Option<std::borrow::Cow<'_, Problem>>) {
    use std::borrow::Cow;
    let status = if status.as_u16() > 599 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        status
    };
    match problem {
        None => (status, None),
        Some(problem) if problem.status() == status => (status, Some(Cow::Borrowed(problem))),
        Some(problem) if status.as_u16() < 400 => (problem.status(), Some(Cow::Borrowed(problem))),
        Some(problem) => (status, Some(Cow::Owned(problem.answering(status)))),
    }
}

#[derive(Clone)]
struct Inner {
    code: Code,
    detail: Option<String>,
    errors: Vec<FieldError>,
    retry_after: Option<Duration>,
    headers: HeaderMap,
    cause: Option<Cause>,
}

impl Problem {
    /// A problem with `code` and nothing else.
    #[must_use]
    pub fn new(code: Code) -> Self {
        Self {
            inner: Box::new(Inner {
                code,
                detail: None,
                errors: Vec::new(),
                retry_after: None,
                headers: HeaderMap::new(),
                cause: None,
            }),
        }
    }

    /// A 500 `INTERNAL_ERROR` keeping `cause` for the logs.
    ///
    /// ```
    /// use opsready_problem::Problem;
    ///
    /// let err = std::io::Error::other("SELECT * FROM users failed");
    /// let problem = Problem::internal(err);
    /// assert_eq!(problem.status(), 500);
    /// assert!(problem.cause().is_some());
    /// let body = serde_json::to_string(&problem).unwrap();
    /// assert!(!body.contains("SELECT"));
    /// ```
    #[must_use]
    pub fn internal(cause: impl StdError + Send + Sync + 'static) -> Self {
        Self::new(codes::INTERNAL_ERROR).with_cause(cause)
    }

    /// A 400 `BAD_REQUEST` with `detail`.
    #[must_use]
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(codes::BAD_REQUEST).detail(detail)
    }

    /// A 401 `UNAUTHORIZED` with `detail`. Add a `WWW-Authenticate` header
    /// with [`Problem::header`].
    #[must_use]
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(codes::UNAUTHORIZED).detail(detail)
    }

    /// A 403 `FORBIDDEN` with `detail`.
    #[must_use]
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(codes::FORBIDDEN).detail(detail)
    }

    /// A 404 `NOT_FOUND` with `detail`.
    #[must_use]
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(codes::NOT_FOUND).detail(detail)
    }

    /// A 409 `CONFLICT` with `detail`.
    #[must_use]
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(codes::CONFLICT).detail(detail)
    }

    /// A 422 `VALIDATION_FAILED` listing `errors`, with a detail counting
    /// them.
    #[must_use]
    pub fn validation(errors: impl IntoIterator<Item = FieldError>) -> Self {
        let errors: Vec<FieldError> = errors.into_iter().collect();
        let detail = match errors.len() {
            1 => "1 field is invalid".to_owned(),
            n => format!("{n} fields are invalid"),
        };
        Self::new(codes::VALIDATION_FAILED)
            .detail(detail)
            .errors(errors)
    }

    /// Sets the occurrence-specific explanation.
    ///
    /// For a 4xx it is sent to the client; for a 5xx it is kept internal
    /// and the client sees the catalog description instead.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.inner.detail = Some(detail.into());
        self
    }

    /// Appends one field error.
    #[must_use]
    pub fn with_error(mut self, error: FieldError) -> Self {
        self.inner.errors.push(error);
        self
    }

    /// Appends field errors.
    #[must_use]
    pub fn errors(mut self, errors: impl IntoIterator<Item = FieldError>) -> Self {
        self.inner.errors.extend(errors);
        self
    }

    /// Sets `Retry-After`, sent in whole seconds, rounded up, at least 1.
    #[must_use]
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.inner.retry_after = Some(after);
        self
    }

    /// Adds a response header, e.g. `Allow` or `WWW-Authenticate`.
    ///
    /// `content-type` and `content-length` are ignored, and `Retry-After` is
    /// replaced by [`Problem::retry_after`] when that is set too.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            self.inner.headers.append(name, value);
        }
        self
    }

    /// Keeps `cause` for logging. It is never serialized.
    #[must_use]
    pub fn with_cause(mut self, cause: impl StdError + Send + Sync + 'static) -> Self {
        self.inner.cause = Some(Arc::new(cause));
        self
    }

    /// The catalog entry.
    #[must_use]
    pub fn code(&self) -> Code {
        self.inner.code
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.inner.code.status()
    }

    /// This problem answered with another error status: the catalog's code
    /// for it, the rest kept. A detail becomes internal if the status is a
    /// 5xx; a 5xx problem's detail and field errors, internal, are dropped
    /// from a 4xx answer rather than shown (its cause stays).
    pub(crate) fn answering(&self, status: StatusCode) -> Self {
        let mut problem = self.clone();
        if self.status().is_server_error() && !status.is_server_error() {
            problem.inner.detail = None;
            problem.inner.errors.clear();
        }
        problem.inner.code = Code::for_status(status);
        problem
    }

    /// The detail set with [`Problem::detail`], which for a 5xx is internal
    /// (see [`Problem::public_detail`]).
    #[must_use]
    pub fn internal_detail(&self) -> Option<&str> {
        self.inner.detail.as_deref()
    }

    /// The `detail` a client sees: the detail set for a 4xx, otherwise the
    /// catalog description.
    #[must_use]
    pub fn public_detail(&self) -> &str {
        match &self.inner.detail {
            Some(detail) if !self.is_server_error() => detail,
            _ => self.inner.code.description(),
        }
    }

    /// The field errors.
    #[must_use]
    pub fn field_errors(&self) -> &[FieldError] {
        &self.inner.errors
    }

    /// The `Retry-After` delay, if set.
    #[must_use]
    pub fn retry_after_duration(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// The internal cause, for logging.
    #[must_use]
    pub fn cause(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.inner.cause.as_deref()
    }

    /// What this problem keeps from the client, for the logs and error
    /// tracking: the detail set with [`Problem::detail`] on a 5xx, a 5xx's
    /// field errors (`field errors: POINTER CODE DETAIL; …`), then the
    /// cause and each of its sources, joined with `: `. `None` when there
    /// is nothing of the kind.
    ///
    /// The credentials the text quotes are masked
    /// ([`opsready_vocab::redact_secrets`]): an error of a database driver or
    /// an HTTP client often quotes the URL it failed on, password or token
    /// included.
    ///
    /// ```
    /// use opsready_problem::{Problem, codes};
    ///
    /// let refused = std::io::Error::other("connection refused");
    /// let problem = Problem::new(codes::INTERNAL_ERROR)
    ///     .detail("loading user 42")
    ///     .with_cause(refused);
    /// assert_eq!(problem.internal_report().as_deref(), Some("loading user 42: connection refused"));
    /// assert_eq!(Problem::new(codes::NOT_FOUND).detail("no user 42").internal_report(), None);
    ///
    /// let quoted = std::io::Error::other("cannot reach postgres://app:hunter2@db/app");
    /// assert_eq!(
    ///     Problem::internal(quoted).internal_report().as_deref(),
    ///     Some("cannot reach postgres://app:[REDACTED]@db/app"),
    /// );
    /// ```
    #[must_use]
    pub fn internal_report(&self) -> Option<String> {
        let detail = self
            .inner
            .detail
            .as_deref()
            .filter(|_| self.is_server_error());
        let mut parts: Vec<String> = detail.map(str::to_owned).into_iter().collect();
        if self.is_server_error() && !self.inner.errors.is_empty() {
            let errors: Vec<String> = self
                .inner
                .errors
                .iter()
                .map(|error| {
                    let at = error
                        .json_pointer()
                        .or_else(|| error.parameter_name())
                        .unwrap_or_default();
                    format!("{at} {} {}", error.code(), error.detail())
                })
                .collect();
            parts.push(format!("field errors: {}", errors.join("; ")));
        }
        let mut cause = self.cause().map(|cause| cause as &(dyn StdError + 'static));
        while let Some(error) = cause {
            parts.push(error.to_string());
            cause = error.source();
        }
        if parts.is_empty() {
            return None;
        }
        let mut report = parts.join(": ");
        redact_secrets_in(&mut report);
        Some(report)
    }

    fn is_server_error(&self) -> bool {
        self.inner.code.status().is_server_error()
    }

    /// Serializes the body with `context`.
    pub(crate) fn to_body(&self, context: &RenderContext<'_>) -> Bytes {
        let envelope = Envelope {
            problem: self,
            context,
        };
        // Every field is a string, number or list of those, so serializing
        // cannot fail; the fallback keeps the response a problem anyway.
        match serde_json::to_vec(&envelope) {
            Ok(body) => Bytes::from(body),
            Err(_) => {
                let internal = codes::INTERNAL_ERROR;
                let fallback = serde_json::json!({
                    "type": internal.type_uri(context.type_base),
                    "title": internal.title(),
                    "status": internal.status().as_u16(),
                    "code": internal.code(),
                });
                Bytes::from(fallback.to_string())
            }
        }
    }

    /// Builds the full response for `context`, keeping a clone of `self` in
    /// the extensions.
    pub(crate) fn to_response(&self, context: &RenderContext<'_>) -> Response {
        let body = self.to_body(context);
        let mut response = Response::new(axum::body::Body::from(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        for (name, value) in &self.inner.headers {
            headers.append(name, value.clone());
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(after) = self.inner.retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(after)),
            );
        }
        response.extensions_mut().insert(self.clone());
        response
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        self.to_response(&RenderContext::default())
    }
}

impl From<Code> for Problem {
    fn from(code: Code) -> Self {
        Self::new(code)
    }
}

impl fmt::Debug for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may hold tokens (e.g. a `WWW-Authenticate` challenge
        // with a realm) and a cause's `Debug` may dump whole configs, so only
        // header names and the cause's `Display` are shown.
        let header_names: Vec<&str> = self.inner.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("Problem")
            .field("code", &self.inner.code.code())
            .field("status", &self.inner.code.status().as_u16())
            .field("detail", &self.inner.detail)
            .field("errors", &self.inner.errors)
            .field("retry_after", &self.inner.retry_after)
            .field("headers", &header_names)
            .field("cause", &self.inner.cause.as_ref().map(ToString::to_string))
            .finish()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.inner.code.code(),
            self.inner.code.status().as_u16(),
            self.inner
                .detail
                .as_deref()
                .unwrap_or(self.inner.code.title())
        )
    }
}

impl StdError for Problem {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .cause
            .as_deref()
            .map(|cause| cause as &(dyn StdError + 'static))
    }
}

impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Envelope {
            problem: self,
            context: &RenderContext::default(),
        }
        .serialize(serializer)
    }
}

/// What the layer knows about the request that the handler did not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RenderContext<'a> {
    pub(crate) type_base: &'a str,
    pub(crate) request_id: Option<&'a str>,
    pub(crate) trace_id: Option<&'a str>,
}

impl Default for RenderContext<'_> {
    fn default() -> Self {
        Self {
            type_base: DEFAULT_TYPE_BASE,
            request_id: None,
            trace_id: None,
        }
    }
}

struct Envelope<'a> {
    problem: &'a Problem,
    context: &'a RenderContext<'a>,
}

/// `urn:request:{request_id}`, the id's characters that a URN may not hold
/// as they are (`"`, `<`, `{`, `#`, `%`…: a caller's id is any visible
/// ASCII) percent-encoded, so that `instance` is always a URI reference as
/// RFC 9457 asks. An id this service made (a UUID) is unchanged.
fn instance_of(request_id: &str) -> String {
    let mut instance = String::with_capacity("urn:request:".len() + request_id.len());
    instance.push_str("urn:request:");
    for byte in request_id.bytes() {
        let keeps = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
            );
        if keeps {
            instance.push(char::from(byte));
        } else {
            let _ = write!(instance, "%{byte:02X}");
        }
    }
    instance
}

impl Serialize for Envelope<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let problem = self.problem;
        let code = problem.inner.code;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", &code.type_uri(self.context.type_base))?;
        map.serialize_entry("title", code.title())?;
        map.serialize_entry("status", &code.status().as_u16())?;
        map.serialize_entry("detail", problem.public_detail())?;
        if let Some(request_id) = self.context.request_id {
            map.serialize_entry("instance", &instance_of(request_id))?;
        }
        map.serialize_entry("code", code.code())?;
        if let Some(request_id) = self.context.request_id {
            map.serialize_entry("request_id", request_id)?;
        }
        if let Some(trace_id) = self.context.trace_id {
            map.serialize_entry("trace_id", trace_id)?;
        }
        // A 5xx carries no internals, field errors included: they go to
        // the log with the internal report.
        if !problem.inner.errors.is_empty() && !problem.is_server_error() {
            map.serialize_entry("errors", &problem.inner.errors)?;
        }
        map.end()
    }
}

/// `Retry-After` in whole seconds: rounded up, never 0 (a 0 invites a
/// thundering herd of immediate retries).
pub(crate) fn retry_after_secs(after: Duration) -> u64 {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    secs.max(1)
}

/// One failing input: a body member (by JSON Pointer) or a path or query
/// parameter (by name), with a machine-readable code and a human detail.
#[derive(Clone, PartialEq, Eq)]
pub struct FieldError {
    location: Location,
    code: String,
    detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Location {
    Pointer(String),
    Parameter(String),
}

impl FieldError {
    /// An error in the body at the JSON Pointer `pointer` (RFC 6901, e.g.
    /// `/items/0/sku`; `""` is the whole body).
    #[must_use]
    pub fn pointer(
        pointer: impl Into<String>,
        code: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            location: Location::Pointer(pointer.into()),
            code: code.into(),
            detail: detail.into(),
        }
    }

    /// An error in the path or query parameter named `name`.
    #[must_use]
    pub fn parameter(
        name: impl Into<String>,
        code: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            location: Location::Parameter(name.into()),
            code: code.into(),
            detail: detail.into(),
        }
    }

    /// The JSON Pointer, for a body error.
    #[must_use]
    pub fn json_pointer(&self) -> Option<&str> {
        match &self.location {
            Location::Pointer(pointer) => Some(pointer),
            Location::Parameter(_) => None,
        }
    }

    /// The parameter name, for a path or query parameter error.
    #[must_use]
    pub fn parameter_name(&self) -> Option<&str> {
        match &self.location {
            Location::Parameter(name) => Some(name),
            Location::Pointer(_) => None,
        }
    }

    /// The machine-readable code, e.g. `INVALID_EMAIL`.
    #[must_use]
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The human-readable explanation.
    #[must_use]
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Debug for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("FieldError");
        match &self.location {
            Location::Pointer(pointer) => s.field("pointer", pointer),
            Location::Parameter(name) => s.field("parameter", name),
        };
        s.field("code", &self.code)
            .field("detail", &self.detail)
            .finish()
    }
}

impl Serialize for FieldError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        match &self.location {
            Location::Pointer(pointer) => map.serialize_entry("pointer", pointer)?,
            Location::Parameter(name) => map.serialize_entry("parameter", name)?,
        }
        map.serialize_entry("code", &self.code)?;
        map.serialize_entry("detail", &self.detail)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::from_nanos(3_000_000_001)), 4);
    }

    #[test]
    fn retry_after_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    }

    #[test]
    fn a_server_error_shows_the_catalog_description_not_the_detail() {
        let problem = Problem::new(codes::INTERNAL_ERROR)
            .detail("connection to 10.0.0.7:5432 refused")
            .with_cause(std::io::Error::other("password authentication failed"));
        let body = String::from_utf8(problem.to_body(&RenderContext::default()).to_vec()).unwrap();
        assert!(!body.contains("10.0.0.7"), "{body}");
        assert!(!body.contains("password"), "{body}");
        assert!(body.contains(codes::INTERNAL_ERROR.description()));
        assert_eq!(
            problem.internal_detail(),
            Some("connection to 10.0.0.7:5432 refused")
        );
    }

    #[test]
    fn a_server_errors_field_errors_go_to_the_report_not_the_body() {
        let problem = Problem::new(codes::BAD_GATEWAY).with_error(FieldError::pointer(
            "/x",
            "UPSTREAM",
            "ledger at 10.0.0.7 said no",
        ));
        let body = String::from_utf8(problem.to_body(&RenderContext::default()).to_vec()).unwrap();
        assert!(!body.contains("errors"), "{body}");
        assert!(!body.contains("10.0.0.7"), "{body}");
        assert_eq!(
            problem.internal_report().as_deref(),
            Some("field errors: /x UPSTREAM ledger at 10.0.0.7 said no")
        );
        // Re-coded from a 4xx, the same.
        let recoded = Problem::validation([FieldError::pointer("/y", "BAD", "internal note")])
            .answering(StatusCode::INTERNAL_SERVER_ERROR);
        let body = String::from_utf8(recoded.to_body(&RenderContext::default()).to_vec()).unwrap();
        assert!(!body.contains("internal note"), "{body}");
    }

    #[test]
    fn a_client_error_shows_its_detail() {
        let problem = Problem::not_found("no user 42");
        assert_eq!(problem.public_detail(), "no user 42");
    }

    #[test]
    fn instance_is_a_uri_whatever_the_callers_request_id_holds() {
        assert_eq!(
            instance_of("0192f0c1-7d1e-7cc0-8d5a-3c1e0b6f2a10"),
            "urn:request:0192f0c1-7d1e-7cc0-8d5a-3c1e0b6f2a10"
        );
        assert_eq!(
            instance_of("a\"b<c>{d}#e%f|g^h`i\\j"),
            "urn:request:a%22b%3Cc%3E%7Bd%7D%23e%25f%7Cg%5Eh%60i%5Cj"
        );
        assert_eq!(instance_of("svc:42@edge/1"), "urn:request:svc:42@edge/1");
    }

    #[test]
    fn the_request_context_fills_instance_request_id_and_trace_id() {
        let problem = Problem::new(codes::CONFLICT);
        let context = RenderContext {
            type_base: "https://docs.example.com/p/",
            request_id: Some("abc"),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736"),
        };
        let body: serde_json::Value = serde_json::from_slice(&problem.to_body(&context)).unwrap();
        assert_eq!(body["type"], "https://docs.example.com/p/conflict");
        assert_eq!(body["instance"], "urn:request:abc");
        assert_eq!(body["request_id"], "abc");
        assert_eq!(body["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(body["status"], 409);
    }

    #[test]
    fn debug_shows_header_names_but_not_their_values() {
        let problem = Problem::unauthorized("no token").header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"s3cr3t\""),
        );
        let debug = format!("{problem:?}");
        assert!(debug.contains("www-authenticate"));
        assert!(!debug.contains("s3cr3t"));
    }

    #[test]
    fn a_parameter_error_serializes_parameter_instead_of_pointer() {
        let error = FieldError::parameter("id", "INVALID_TYPE", "expected a number");
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(json["parameter"], "id");
        assert!(json.get("pointer").is_none());
    }
}
