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
//! - A slot is held until the response head is ready, not while the body
//!   streams.
//! - A refused request never reaches the inner service, so refusing is
//!   cheap and safe to retry.
//! - [`ConcurrencyLimitLayer::exempt`] lets some paths through uncounted
//!   (probes, an admin API) when the layer wraps a whole router, so that an
//!   overloaded service still answers its orchestrator and its operators.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::Request;
use http_body::Body as HttpBody;
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::{Problem, codes};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A [`Layer`] allowing at most `max` requests in flight, shedding the rest.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    semaphore: Arc<Semaphore>,
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
            semaphore: Arc::new(Semaphore::new(max)),
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

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ConcurrencyLimitLayer`] wraps around a service.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    layer: ConcurrencyLimitLayer,
}

impl<S> ConcurrencyLimit<S> {
    /// Wraps `inner`, allowing `max` requests in flight.
    pub fn new(inner: S, max: usize) -> Self {
        ConcurrencyLimitLayer::new(max).layer(inner)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ConcurrencyLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The permit is taken here, not in `poll_ready`: axum calls
        // `poll_ready` on a fresh clone per request, so a permit reserved
        // there would not reliably belong to the call that follows.
        if self
            .layer
            .exempt
            .is_some_and(|exempt| exempt(request.uri().path()))
        {
            return ResponseFuture {
                state: State::Admitted {
                    future: self.inner.call(request),
                    permit: None,
                },
            };
        }
        match Arc::clone(&self.layer.semaphore).try_acquire_owned() {
            Ok(permit) => ResponseFuture {
                state: State::Admitted {
                    future: self.inner.call(request),
                    permit: Some(permit),
                },
            },
            // The answer is made when polled: the future every layer
            // outside moves around stays small.
            Err(_) => ResponseFuture {
                state: State::Shed {
                    max: self.layer.max,
                    retry_after: self.layer.retry_after,
                },
            },
        }
    }
}

pin_project! {
    /// Response future of [`ConcurrencyLimit`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Admitted {
            #[pin]
            future: F,
            // Released when the response is ready or the future is dropped.
            permit: Option<OwnedSemaphorePermit>,
        },
        Shed { max: usize, retry_after: Duration },
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Admitted { future, permit } => {
                let result = ready!(future.poll(cx));
                drop(permit.take());
                Poll::Ready(result.map(|response| response.map(Body::new)))
            }
            StateProj::Shed { max, retry_after } => {
                let problem = Problem::new(codes::OVERLOADED)
                    .detail(format!("{max} requests already in flight; request shed."))
                    .retry_after(*retry_after);
                Poll::Ready(Ok(problem.into_response()))
            }
        }
    }
}
