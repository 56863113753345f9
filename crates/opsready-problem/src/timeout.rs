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

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::Request;
use http_body::Body as HttpBody;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::{Problem, codes};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            layer: *self,
        }
    }
}

/// The service [`TimeoutLayer`] wraps around a service.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    layer: TimeoutLayer,
}

impl<S> Timeout<S> {
    /// Wraps `inner`, answering 503 after `timeout`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        TimeoutLayer::new(timeout).layer(inner)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Timeout<S>
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
        let exempt = self
            .layer
            .exempt
            .is_some_and(|exempt| exempt(request.uri().path()));
        ResponseFuture {
            deadline: (!exempt).then(|| tokio::time::Instant::now() + self.layer.timeout),
            inner: self.inner.call(request),
            sleep: None,
            layer: self.layer,
        }
    }
}

pin_project! {
    /// Response future of [`Timeout`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // `None` for an exempt request.
        deadline: Option<tokio::time::Instant>,
        // The timer is made when the handler first waits: one that answers
        // at once costs a clock reading, not a timer. Boxed, so that the
        // future every layer outside moves around stays small.
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
        layer: TimeoutLayer,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
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
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map(|response| response.map(Body::new)));
        }
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        let timeout = this.layer.timeout;
        let problem = Problem::new(codes::HANDLER_TIMEOUT)
            .detail(format!("The handler did not answer within {timeout:?}."))
            .retry_after(this.layer.retry_after);
        Poll::Ready(Ok(problem.into_response()))
    }
}
