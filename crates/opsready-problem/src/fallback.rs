//! A router fallback answering 404 `NOT_FOUND` problems.
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, http::Request, routing::get};
//! use opsready_problem::fallback;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/users", get(|| async { "[]" }))
//!     .fallback(fallback::not_found);
//!
//! let response = app
//!     .oneshot(Request::get("/usres").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//!
//! assert_eq!(response.status(), 404);
//! let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
//! let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(body["code"], "NOT_FOUND");
//! assert_eq!(body["detail"], "No route matches `GET /usres`.");
//! # }
//! ```
//!
//! # Gotchas
//!
//! - Without this fallback, [`ProblemLayer`](crate::ProblemLayer) still turns
//!   axum's empty 404 into a problem; the fallback only makes the detail
//!   name the route and works without the layer.
//! - A wrong method on an existing route is not a fallback case: axum's
//!   method router answers 405 with `Allow`, and the layer rewrites it.
//! - The path is quoted as sent (cut to 256 bytes); it is client input, not
//!   a secret.

use axum::http::{Method, Uri};

use crate::Problem;
use crate::layer::quoted_path;

/// Answers 404 `NOT_FOUND` with a detail naming the method and path.
pub async fn not_found(method: Method, uri: Uri) -> Problem {
    let path = quoted_path(uri.path());
    Problem::not_found(format!("No route matches `{method} {path}`."))
}
