//! Sheds load: beyond a number of requests in flight, answers at once with
//! a 503 `OVERLOADED` problem and `Retry-After` instead of queueing.
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, http::Request, routing::get};
//! use opsready_problem::limit::ConcurrencyLimitLayer;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .layer(ConcurrencyLimitLayer::new(64));
//!
//! let response = app
//!     .oneshot(Request::get("/").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), 200);
//! # }
//! ```
//!
//! # Gotchas
//!
//! - Unlike tower's `ConcurrencyLimitLayer`, which makes callers wait for a
//!   slot, this one refuses immediately: under overload, queueing only adds
//!   latency to requests whose clients may already have given up.
//! - All services made by one layer value (and its clones) share one limit.
//!   With `Router::layer` that means one limit for the whole router, which
//!   is usually what is wanted. Create two layers for two limits.
//! - A slot is held until the response has been sent when its body streams
//!   (no length known up front: a download, server-sent events), and until
//!   the response head is ready when its length is known (a body in
//!   memory, the usual case).
//! - A refused request never reaches the inner service, so refusing is
//!   cheap and safe to retry.
//! - [`ConcurrencyLimitLayer::exempt`] lets some paths through uncounted
//!   (probes, an admin API) when the layer wraps a whole router, so that an
//!   overloaded service still answers its orchestrator and its operators.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tower::Layer;

use crate::guard::{Guard, GuardLayer};

/// A [`Layer`] allowing at most `max` requests in flight, shedding the rest.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    // Requests in flight. A counter rather than a semaphore: nothing ever
    // waits for a slot, so taking one is a compare-and-swap and giving it
    // back a subtraction, with no lock.
    in_flight: Arc<AtomicUsize>,
    max: usize,
    retry_after: Duration,
    exempt: Option<fn(&str) -> bool>,
}

impl ConcurrencyLimitLayer {
    /// Allows `max` requests in flight; more are answered with 503
    /// `OVERLOADED`.
    #[must_use]
    pub fn new(max: usize) -> Self {
        Self {
            in_flight: Arc::new(AtomicUsize::new(0)),
            max,
            retry_after: Duration::from_secs(1),
            exempt: None,
        }
    }

    /// Requests whose path `exempt` accepts are neither counted nor shed.
    ///
    /// ```
    /// use opsready_problem::limit::ConcurrencyLimitLayer;
    ///
    /// let layer = ConcurrencyLimitLayer::new(512).exempt(|path| path.starts_with("/admin/"));
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn exempt(mut self, exempt: fn(&str) -> bool) -> Self {
        self.exempt = Some(exempt);
        self
    }

    /// The `Retry-After` of the overload answer.
    ///
    /// Defaults to 1 second.
    #[must_use]
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }
}

impl ConcurrencyLimitLayer {
    pub(crate) fn exempts(&self, path: &str) -> bool {
        self.exempt.is_some_and(|exempt| exempt(path))
    }

    /// A slot, or `None` when all of them are taken.
    pub(crate) fn try_admit(&self) -> Option<Slot> {
        self.in_flight
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        Some(Slot(Arc::clone(&self.in_flight)))
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    pub(crate) fn retry_after_value(&self) -> Duration {
        self.retry_after
    }
}

/// A request's place among those in flight, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardLayer::new()
            .concurrency_limit(self.clone())
            .layer(inner)
    }
}

/// The service [`ConcurrencyLimitLayer`] wraps around a service: a
/// [`Guard`] with only the limit.
pub type ConcurrencyLimit<S> = Guard<S>;

/// Response future of [`ConcurrencyLimit`].
pub type ResponseFuture<F> = crate::guard::ResponseFuture<F>;
