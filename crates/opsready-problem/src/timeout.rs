//! Answers a handler that takes too long with a 503 `HANDLER_TIMEOUT`
//! problem and `Retry-After`, never a 408 and never a `Service` error.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::{Router, body::Body, http::Request, routing::get};
//! use opsready_problem::timeout::TimeoutLayer;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/stuck", get(|| std::future::pending::<()>()))
//!     .layer(TimeoutLayer::new(Duration::from_millis(10)));
//!
//! let response = app
//!     .oneshot(Request::get("/stuck").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//!
//! assert_eq!(response.status(), 503);
//! assert_eq!(response.headers()["retry-after"], "1");
//! # }
//! ```
//!
//! # Gotchas
//!
//! - Why not 408: 408 tells the client *it* was too slow sending the
//!   request, and some clients retry it blindly. A slow handler is the
//!   server's problem, so it is a 503 the client may retry later.
//! - The timeout covers the inner future until the response head is ready,
//!   not the streaming of the body.
//! - It runs from the first time the handler waits (its future is pending),
//!   so a handler that answers at once costs no timer and no clock reading.
//!   Work done before that first `.await` cannot be cut short anyway, and
//!   does not count.
//! - When the timeout fires, the handler's future is dropped at its next
//!   `.await`; work it started elsewhere (spawned tasks, blocking threads,
//!   a database transaction already committed) carries on.
//! - tower-http's `TimeoutLayer` answers 408 unless told otherwise and with
//!   an empty body (which [`ProblemLayer`](crate::ProblemLayer) would still
//!   rewrite, but as a generic 503); tower's returns a `Service` error that
//!   axum cannot turn into a response. This one answers with the catalog's
//!   `HANDLER_TIMEOUT` and `Retry-After`.
//! - [`TimeoutLayer::exempt`] lets some paths through untimed (probes, say)
//!   when the layer wraps a whole router: one `Router::layer` call for many
//!   layers is cheaper than a call per layer, since axum boxes every route
//!   once per call.

use std::time::Duration;

use tower::Layer;

use crate::guard::{Guard, GuardLayer};

/// A [`Layer`] bounding how long the inner service may take to answer.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    timeout: Duration,
    retry_after: Duration,
    exempt: Option<fn(&str) -> bool>,
}

impl TimeoutLayer {
    /// Answers 503 `HANDLER_TIMEOUT` when the inner service takes longer
    /// than `timeout`.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            retry_after: Duration::from_secs(1),
            exempt: None,
        }
    }

    /// Requests whose path `exempt` accepts are not timed.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use opsready_problem::timeout::TimeoutLayer;
    ///
    /// let layer = TimeoutLayer::new(Duration::from_secs(30)).exempt(|path| path == "/livez");
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn exempt(mut self, exempt: fn(&str) -> bool) -> Self {
        self.exempt = Some(exempt);
        self
    }

    /// The `Retry-After` of the timeout answer.
    ///
    /// Defaults to 1 second.
    #[must_use]
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }
}

impl TimeoutLayer {
    pub(crate) fn exempts(&self, path: &str) -> bool {
        self.exempt.is_some_and(|exempt| exempt(path))
    }

    pub(crate) fn duration(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn retry_after_value(&self) -> Duration {
        self.retry_after
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardLayer::new().timeout(*self).layer(inner)
    }
}

/// The service [`TimeoutLayer`] wraps around a service: a [`Guard`] with
/// only the timeout.
pub type Timeout<S> = Guard<S>;

/// Response future of [`Timeout`].
pub type ResponseFuture<F> = crate::guard::ResponseFuture<F>;
