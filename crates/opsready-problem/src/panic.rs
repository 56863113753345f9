//! Turns a panicking handler into a 500 `INTERNAL_ERROR` problem; the
//! process keeps serving.
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, http::Request, routing::get};
//! use opsready_problem::{Problem, ProblemLayer, panic::catch_panic_layer};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! async fn boom() -> &'static str {
//!     panic!("invariant broken: user 42 has two emails")
//! }
//!
//! let app = Router::new()
//!     .route("/boom", get(boom))
//!     .layer(catch_panic_layer())
//!     .layer(ProblemLayer::new());
//!
//! let response = app
//!     .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//!
//! assert_eq!(response.status(), 500);
//! let problem = response.extensions().get::<Problem>().unwrap();
//! // The message is there for the logs...
//! assert!(problem.cause().unwrap().to_string().contains("user 42"));
//! // ...and nowhere in the body.
//! let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
//! assert!(!String::from_utf8_lossy(&body).contains("user 42"));
//! # }
//! ```
//!
//! # Gotchas
//!
//! - The panic message is kept as the problem's [cause](crate::Problem::cause)
//!   so a logging layer outside can record it; it never reaches the body.
//! - The default panic hook still prints the panic to stderr. Install a hook
//!   (e.g. one that logs through `tracing`) if that is not wanted.
//! - Only panics inside the wrapped service are caught; put the layer inside
//!   [`ProblemLayer`](crate::ProblemLayer) and outside the handlers.
//! - A panic while holding a `std::sync::Mutex` poisons it: catching the
//!   panic keeps the process up, not the state consistent.

use std::any::Any;
use std::fmt;

use axum::response::{IntoResponse, Response};

use crate::Problem;
use crate::guard::GuardLayer;

/// A layer answering a panic of the inner service, when it is called or
/// polled, with a 500 problem: a [`GuardLayer`] with only that guard.
#[must_use]
pub fn catch_panic_layer() -> GuardLayer {
    GuardLayer::new().catch_panics()
}

/// The answer to a panic: a 500 `INTERNAL_ERROR` problem whose internal
/// cause is the panic message.
pub(crate) fn panic_response(payload: &(dyn Any + Send)) -> Response {
    Problem::internal(Panicked::from_payload(payload)).into_response()
}

/// The cause recorded for a caught panic.
#[derive(Debug)]
struct Panicked {
    message: String,
}

impl Panicked {
    fn from_payload(payload: &(dyn Any + Send)) -> Self {
        let message = if let Some(message) = payload.downcast_ref::<&'static str>() {
            (*message).to_owned()
        } else if let Some(message) = payload.downcast_ref::<String>() {
            message.clone()
        } else {
            "a panic with a non-string payload".to_owned()
        };
        Self { message }
    }
}

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handler panicked: {}", self.message)
    }
}

impl std::error::Error for Panicked {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_and_str_payloads_keep_their_message() {
        let payload: Box<dyn Any + Send> = Box::new("static message");
        assert_eq!(
            Panicked::from_payload(payload.as_ref()).message,
            "static message"
        );
        let payload: Box<dyn Any + Send> = Box::new(String::from("owned message"));
        assert_eq!(
            Panicked::from_payload(payload.as_ref()).message,
            "owned message"
        );
    }

    #[test]
    fn the_panic_response_is_a_500_problem_with_the_message_only_in_the_cause() {
        let response = panic_response(&"secret path /etc/app.toml");
        assert_eq!(response.status(), 500);
        let problem = response.extensions().get::<Problem>().unwrap();
        assert_eq!(problem.code().code(), "INTERNAL_ERROR");
        assert!(
            problem
                .cause()
                .unwrap()
                .to_string()
                .contains("/etc/app.toml")
        );
        assert!(!problem.public_detail().contains("/etc/app.toml"));
    }
}
