//! The built-in catalog: one [`Code`] per failure every service shares.
//!
//! # Example
//!
//! ```
//! use http::StatusCode;
//! use opsready_problem::codes;
//!
//! assert_eq!(codes::VALIDATION_FAILED.status(), StatusCode::UNPROCESSABLE_ENTITY);
//! assert!(codes::CATALOG.contains(&codes::OVERLOADED));
//! ```
//!
//! # Gotchas
//!
//! - Several codes share a status (three 503s, three 400s). Clients should
//!   branch on `code`, not on `status`.
//! - [`CLIENT_ERROR`] and [`SERVER_ERROR`] stand for any status the catalog
//!   does not name; [`Code::for_status`] returns them with the real status
//!   and its reason phrase as title.
//! - The reference page `docs/errors.md` is rendered from [`CATALOG`] by
//!   [`render_markdown`](crate::catalog::render_markdown); a test fails when
//!   the two drift apart.

use http::StatusCode;

use crate::Code;

/// 400: a request the server cannot process, with no more specific code.
pub const BAD_REQUEST: Code = Code::new(
    "BAD_REQUEST",
    StatusCode::BAD_REQUEST,
    "Bad request",
    "The request is malformed. Read `detail`, fix the request and do not retry it unchanged.",
);

/// 400: the body is not syntactically valid JSON.
pub const MALFORMED_JSON: Code = Code::new(
    "MALFORMED_JSON",
    StatusCode::BAD_REQUEST,
    "Malformed JSON",
    "The body is not valid JSON; `detail` gives the line and column of the first syntax error. Fix the body before retrying.",
);

/// 400: a path parameter cannot be parsed into the expected type.
pub const INVALID_PATH_PARAMETER: Code = Code::new(
    "INVALID_PATH_PARAMETER",
    StatusCode::BAD_REQUEST,
    "Invalid path parameter",
    "A path segment has the wrong format (e.g. letters where an id is a number). `errors[].parameter` names it.",
);

/// 400: a query parameter is missing or cannot be parsed.
pub const INVALID_QUERY_PARAMETER: Code = Code::new(
    "INVALID_QUERY_PARAMETER",
    StatusCode::BAD_REQUEST,
    "Invalid query parameter",
    "A query parameter is missing or has the wrong format. `errors[].parameter` names it.",
);

/// 401: credentials are missing or wrong.
pub const UNAUTHORIZED: Code = Code::new(
    "UNAUTHORIZED",
    StatusCode::UNAUTHORIZED,
    "Unauthorized",
    "Credentials are missing, expired or wrong. Authenticate (see `WWW-Authenticate`) and retry.",
);

/// 403: the caller is known but not allowed to do this.
pub const FORBIDDEN: Code = Code::new(
    "FORBIDDEN",
    StatusCode::FORBIDDEN,
    "Forbidden",
    "The caller is authenticated but not allowed to do this. Retrying will not help; ask for access.",
);

/// 404: no such route or resource.
pub const NOT_FOUND: Code = Code::new(
    "NOT_FOUND",
    StatusCode::NOT_FOUND,
    "Not found",
    "No route or resource exists at this URL. Check the path and identifiers.",
);

/// 405: the route exists but not for this method.
pub const METHOD_NOT_ALLOWED: Code = Code::new(
    "METHOD_NOT_ALLOWED",
    StatusCode::METHOD_NOT_ALLOWED,
    "Method not allowed",
    "The route exists but does not accept this HTTP method. The `Allow` header lists the methods it accepts.",
);

/// 406: no representation matches the `Accept` header.
pub const NOT_ACCEPTABLE: Code = Code::new(
    "NOT_ACCEPTABLE",
    StatusCode::NOT_ACCEPTABLE,
    "Not acceptable",
    "The server cannot produce a representation matching the `Accept` header. Accept `application/json`.",
);

/// 409: the request conflicts with the current state of the resource.
pub const CONFLICT: Code = Code::new(
    "CONFLICT",
    StatusCode::CONFLICT,
    "Conflict",
    "The request conflicts with the current state of the resource. Fetch the current state, reconcile and retry.",
);

/// 412: a precondition such as `If-Match` does not hold.
pub const PRECONDITION_FAILED: Code = Code::new(
    "PRECONDITION_FAILED",
    StatusCode::PRECONDITION_FAILED,
    "Precondition failed",
    "The resource changed since you read it (`If-Match` or a version did not match). Re-read it, re-apply your change and retry.",
);

/// 428: a change to a resource that exists must say which version it is
/// based on.
pub const PRECONDITION_REQUIRED: Code = Code::new(
    "PRECONDITION_REQUIRED",
    StatusCode::PRECONDITION_REQUIRED,
    "Precondition required",
    "Replacing this resource needs `If-Match` with the version you read (its `ETag`), so that a change made since is not overwritten. Read it, then retry with the header.",
);

/// 413: the body is larger than the server accepts.
pub const PAYLOAD_TOO_LARGE: Code = Code::new(
    "PAYLOAD_TOO_LARGE",
    StatusCode::PAYLOAD_TOO_LARGE,
    "Payload too large",
    "The body is larger than this endpoint accepts. Send less data, e.g. split it into several requests.",
);

/// 415: the body's content type is missing or not supported.
pub const UNSUPPORTED_MEDIA_TYPE: Code = Code::new(
    "UNSUPPORTED_MEDIA_TYPE",
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    "Unsupported media type",
    "The `Content-Type` is missing or not supported. Send `Content-Type: application/json` with a JSON body.",
);

/// 422: well-formed input that breaks the rules; `errors` lists every field.
pub const VALIDATION_FAILED: Code = Code::new(
    "VALIDATION_FAILED",
    StatusCode::UNPROCESSABLE_ENTITY,
    "Validation failed",
    "One or more fields are invalid. `errors` lists every failing field with a JSON Pointer; fix them all and retry.",
);

/// 429: the caller sent too many requests.
pub const TOO_MANY_REQUESTS: Code = Code::new(
    "TOO_MANY_REQUESTS",
    StatusCode::TOO_MANY_REQUESTS,
    "Too many requests",
    "The caller exceeded its rate limit. Wait for `Retry-After` seconds before retrying.",
);

/// 500: an unexpected failure on the server.
pub const INTERNAL_ERROR: Code = Code::new(
    "INTERNAL_ERROR",
    StatusCode::INTERNAL_SERVER_ERROR,
    "Internal error",
    "The server failed unexpectedly. Retry later; when reporting it, quote `request_id`.",
);

/// 501: the server does not implement this yet.
pub const NOT_IMPLEMENTED: Code = Code::new(
    "NOT_IMPLEMENTED",
    StatusCode::NOT_IMPLEMENTED,
    "Not implemented",
    "The server does not support this operation. Retrying will not help.",
);

/// 502: an upstream answered with something unusable.
pub const BAD_GATEWAY: Code = Code::new(
    "BAD_GATEWAY",
    StatusCode::BAD_GATEWAY,
    "Bad gateway",
    "A service this one depends on gave an invalid answer. Retry later with backoff.",
);

/// 503: the service cannot serve right now (starting, draining, a
/// dependency is down).
pub const SERVICE_UNAVAILABLE: Code = Code::new(
    "SERVICE_UNAVAILABLE",
    StatusCode::SERVICE_UNAVAILABLE,
    "Service unavailable",
    "The service cannot handle requests right now. Retry after `Retry-After` seconds, with backoff.",
);

/// 503: too many requests in flight; the request was shed before any work.
pub const OVERLOADED: Code = Code::new(
    "OVERLOADED",
    StatusCode::SERVICE_UNAVAILABLE,
    "Overloaded",
    "The service is at its concurrency limit and refused the request before doing any work. Retrying after `Retry-After` seconds is safe.",
);

/// 503: the handler did not finish within its time budget.
pub const HANDLER_TIMEOUT: Code = Code::new(
    "HANDLER_TIMEOUT",
    StatusCode::SERVICE_UNAVAILABLE,
    "Handler timeout",
    "The request took longer than the server allows and was abandoned; some of its effects may have happened. Retry idempotent requests after `Retry-After` seconds.",
);

/// 504: an upstream did not answer in time.
pub const GATEWAY_TIMEOUT: Code = Code::new(
    "GATEWAY_TIMEOUT",
    StatusCode::GATEWAY_TIMEOUT,
    "Gateway timeout",
    "A service this one depends on did not answer in time. Retry later with backoff.",
);

/// Any other 4xx: the status' reason phrase is the title (`Client error`
/// for a status without one), and the `type` is `about:blank`.
pub const CLIENT_ERROR: Code = Code::generic(
    "CLIENT_ERROR",
    StatusCode::BAD_REQUEST,
    "Bad Request",
    "The request failed for a reason the catalog does not name; the HTTP status and `title` tell which (`type` is `about:blank`). Do not retry it unchanged.",
);

/// Any other 5xx: the status' reason phrase is the title (`Server error`
/// for a status without one), and the `type` is `about:blank`.
pub const SERVER_ERROR: Code = Code::generic(
    "SERVER_ERROR",
    StatusCode::INTERNAL_SERVER_ERROR,
    "Internal Server Error",
    "The server failed for a reason the catalog does not name; the HTTP status and `title` tell which (`type` is `about:blank`). Retry later.",
);

/// Every built-in code, in the order of the reference page.
pub const CATALOG: &[Code] = &[
    BAD_REQUEST,
    MALFORMED_JSON,
    INVALID_PATH_PARAMETER,
    INVALID_QUERY_PARAMETER,
    UNAUTHORIZED,
    FORBIDDEN,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    NOT_ACCEPTABLE,
    CONFLICT,
    PRECONDITION_FAILED,
    PRECONDITION_REQUIRED,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION_FAILED,
    TOO_MANY_REQUESTS,
    INTERNAL_ERROR,
    NOT_IMPLEMENTED,
    BAD_GATEWAY,
    SERVICE_UNAVAILABLE,
    OVERLOADED,
    HANDLER_TIMEOUT,
    GATEWAY_TIMEOUT,
    CLIENT_ERROR,
    SERVER_ERROR,
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_catalog_code_is_unique() {
        let mut seen = HashSet::new();
        for code in CATALOG {
            assert!(seen.insert(code.code()), "{} is listed twice", code.code());
        }
    }

    #[test]
    fn every_catalog_description_is_written_for_clients() {
        for code in CATALOG {
            assert!(!code.title().is_empty());
            assert!(code.description().ends_with('.'), "{}", code.code());
            assert!(
                !code.description().contains('|'),
                "{} breaks the table",
                code.code()
            );
        }
    }
}
