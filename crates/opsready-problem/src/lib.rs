//! One [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) error envelope for
//! every failure path of an axum service.
//!
//! Every 4xx and 5xx, wherever it comes from (a handler's [`Problem`], an
//! extractor rejection, an unknown route, a wrong method, a panic, a
//! timeout, an overload, a body that is too large), answers
//! `application/problem+json`:
//!
//! ```json
//! { "type": "https://opsready.dev/problems/validation-failed", "title": "Validation failed",
//!   "status": 422, "detail": "2 fields are invalid", "instance": "urn:request:0192…",
//!   "code": "VALIDATION_FAILED", "request_id": "0192…", "trace_id": "4bf9…",
//!   "errors": [ { "pointer": "/email", "code": "INVALID_EMAIL", "detail": "…" } ] }
//! ```
//!
//! `status` equals the HTTP status, `code` comes from a [catalog](codes)
//! rendered into `docs/errors.md`, `request_id` equals the `x-request-id`
//! header and a 5xx never carries internals. The JSON Schema of the
//! envelope ships with the crate as `problem.schema.json`, also available
//! as [`JSON_SCHEMA`].
//!
//! # Adoption
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::{Router, body::Body, extract::DefaultBodyLimit, http::Request, routing::get};
//! use opsready_problem::{
//!     Problem, ProblemLayer, extract::Path, fallback, limit::ConcurrencyLimitLayer,
//!     panic::catch_panic_layer, timeout::TimeoutLayer,
//! };
//! use tower::ServiceExt;
//!
//! async fn user(Path(id): Path<u64>) -> Result<String, Problem> {
//!     Err(Problem::not_found(format!("no user {id}")))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/users/{id}", get(user))
//!     .fallback(fallback::not_found)
//!     .layer(DefaultBodyLimit::max(64 * 1024))
//!     .layer(ConcurrencyLimitLayer::new(512))
//!     .layer(TimeoutLayer::new(Duration::from_secs(10)))
//!     .layer(catch_panic_layer())
//!     .layer(ProblemLayer::new()); // last: sees every other layer's answers
//!
//! let response = app
//!     .oneshot(Request::get("/users/abc").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), 400);
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! # }
//! ```
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `utoipa` | no | `utoipa::ToSchema` for [`Problem`] and [`FieldError`], so OpenAPI documents reference the envelope |
//!
//! # Modules
//!
//! - [`problem`]: the [`Problem`] builder and [`FieldError`].
//! - [`codes`] and [`catalog`]: the built-in [`Code`]s and the reference page.
//! - [`layer`]: [`ProblemLayer`], which renders every error response as a problem.
//! - [`panic`](mod@panic), [`timeout`], [`limit`]: panics, slow handlers and overload as problems;
//!   [`guard`] does all three in one layer.
//! - [`extract`]: `Json`, `ValidJson`, `Path`, `Query` rejecting with problems.
//! - [`fallback`]: a 404 handler for `Router::fallback`.

pub mod catalog;
mod code;
pub mod codes;
pub mod extract;
pub mod fallback;
pub mod guard;
pub mod layer;
pub mod limit;
pub mod panic;
pub mod problem;
#[cfg(feature = "utoipa")]
mod schema;
pub mod timeout;

pub use code::Code;
pub use layer::{ProblemLayer, ProblemService};
pub use problem::{FieldError, Problem, answered};

/// The JSON Schema (draft 2020-12) of the envelope, as shipped in the
/// crate's `problem.schema.json`: for contract tests of clients and
/// services.
///
/// ```
/// let schema: serde_json::Value = serde_json::from_str(opsready_problem::JSON_SCHEMA).unwrap();
/// assert_eq!(schema["required"], serde_json::json!(["type", "title", "status", "code"]));
/// ```
pub const JSON_SCHEMA: &str = include_str!("../problem.schema.json");
