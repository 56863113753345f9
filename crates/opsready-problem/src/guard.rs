//! [`GuardLayer`]: the panic catcher, the timeout and load shedding in one
//! service, so a stack that wants all three pays for one service clone and
//! one future per request rather than three.
//!
//! [`catch_panic_layer`](crate::panic::catch_panic_layer),
//! [`TimeoutLayer`] and [`ConcurrencyLimitLayer`] are this layer with one
//! guard each; they answer exactly as the combined layer does.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::{Router, body::Body, http::Request, routing::get};
//! use opsready_problem::guard::GuardLayer;
//! use opsready_problem::limit::ConcurrencyLimitLayer;
//! use opsready_problem::timeout::TimeoutLayer;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let probes = |path: &str| path == "/livez";
//! let app = Router::new()
//!     .route("/stuck", get(|| std::future::pending::<()>()))
//!     .layer(
//!         GuardLayer::new()
//!             .catch_panics()
//!             .timeout(TimeoutLayer::new(Duration::from_millis(10)).exempt(probes))
//!             .concurrency_limit(ConcurrencyLimitLayer::new(512).exempt(probes)),
//!     );
//!
//! let response = app
//!     .oneshot(Request::get("/stuck").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), 503);
//! # }
//! ```
//!
//! # Gotchas
//!
//! - The order is fixed: a request is first admitted (or shed), then timed,
//!   and a panic anywhere in the inner service, when it is called or
//!   polled, becomes a 500. A shed request is never timed.
//! - The answers are the same as those of the single layers: see
//!   [`panic`](crate::panic), [`timeout`](crate::timeout) and
//!   [`limit`](crate::limit) for what each guard does and does not cover.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::Request;
use http_body::Body as HttpBody;
use opsready_vocab::{BodyEnd, answering_panics};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::limit::ConcurrencyLimitLayer;
use crate::timeout::TimeoutLayer;
use crate::{Problem, codes};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A [`Layer`] that catches panics, bounds how long the inner service may
/// take and sheds load, each only when asked for.
#[derive(Debug, Clone, Default)]
pub struct GuardLayer {
    catch_panics: bool,
    timeout: Option<TimeoutLayer>,
    limit: Option<ConcurrencyLimitLayer>,
}

impl GuardLayer {
    /// A layer with no guard yet: it passes every request through.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers a panic of the inner service with a 500 `INTERNAL_ERROR`
    /// problem, as [`catch_panic_layer`](crate::panic::catch_panic_layer)
    /// does.
    #[must_use]
    pub fn catch_panics(mut self) -> Self {
        self.catch_panics = true;
        self
    }

    /// Answers 503 `HANDLER_TIMEOUT` as `timeout` says.
    #[must_use]
    pub fn timeout(mut self, timeout: TimeoutLayer) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Answers 503 `OVERLOADED` beyond `limit`'s requests in flight. The
    /// limit is shared with every clone of `limit`.
    #[must_use]
    pub fn concurrency_limit(mut self, limit: ConcurrencyLimitLayer) -> Self {
        self.limit = Some(limit);
        self
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`GuardLayer`] (and of [`TimeoutLayer`] and
/// [`ConcurrencyLimitLayer`]).
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    layer: GuardLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Guard<S>
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
        let path = request.uri().path();
        // The permit is taken here, not in `poll_ready`: axum calls
        // `poll_ready` on a fresh clone per request, so a permit reserved
        // there would not reliably belong to the call that follows.
        let permit = match &self.layer.limit {
            Some(limit) if !limit.exempts(path) => match limit.try_admit() {
                Some(permit) => Some(permit),
                // The answer is made when polled: the future every layer
                // outside moves around stays small.
                None => {
                    return ResponseFuture::answer(Answer::Shed {
                        max: limit.max(),
                        retry_after: limit.retry_after_value(),
                    });
                }
            },
            _ => None,
        };
        let timer = self
            .layer
            .timeout
            .as_ref()
            .filter(|timeout| !timeout.exempts(path))
            .map(|timeout| Timer {
                timeout: timeout.duration(),
                retry_after: timeout.retry_after_value(),
                sleep: None,
            });
        let future = if self.layer.catch_panics {
            // Marked: the hook of an error tracker leaves the panic to the
            // 500 it becomes.
            match catch_unwind(AssertUnwindSafe(|| {
                answering_panics(|| self.inner.call(request))
            })) {
                Ok(future) => future,
                Err(payload) => return ResponseFuture::answer(Answer::Panicked { payload }),
            }
        } else {
            self.inner.call(request)
        };
        ResponseFuture {
            state: State::Running {
                future,
                permit,
                timer,
                catch_panics: self.layer.catch_panics,
            },
        }
    }
}

/// A timed request's timeout, and its timer once the handler has waited.
struct Timer {
    timeout: Duration,
    retry_after: Duration,
    // Started when the handler first waits: one that answers at once costs
    // neither a timer nor a clock reading. Boxed, so that the future every
    // layer outside moves around stays small.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// An answer the guard gives itself, made when polled.
enum Answer {
    Shed { max: usize, retry_after: Duration },
    Panicked { payload: Box<dyn Any + Send> },
}

impl Answer {
    fn into_response(self) -> Response {
        match self {
            Self::Shed { max, retry_after } => Problem::new(codes::OVERLOADED)
                .detail(format!("{max} requests already in flight; request shed."))
                .retry_after(retry_after)
                .into_response(),
            Self::Panicked { payload } => crate::panic::panic_response(payload.as_ref()),
        }
    }
}

pin_project! {
    /// Response future of [`Guard`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running {
            #[pin]
            future: F,
            // Released when the response is ready or the future is dropped.
            permit: Option<crate::limit::Slot>,
            // `None` when untimed.
            timer: Option<Timer>,
            catch_panics: bool,
        },
        Answer { answer: Option<Answer> },
    }
}

impl<F> ResponseFuture<F> {
    fn answer(answer: Answer) -> Self {
        Self {
            state: State::Answer {
                answer: Some(answer),
            },
        }
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
        let mut state = self.project().state;
        let answer = match state.as_mut().project() {
            StateProj::Running {
                future,
                permit,
                timer,
                catch_panics,
            } => {
                let polled = if *catch_panics {
                    catch_unwind(AssertUnwindSafe(|| answering_panics(|| future.poll(cx))))
                } else {
                    Ok(future.poll(cx))
                };
                match polled {
                    Ok(Poll::Ready(result)) => {
                        let permit = permit.take();
                        return Poll::Ready(result.map(|response| holding(response, permit)));
                    }
                    Ok(Poll::Pending) => {
                        let Some(timer) = timer else {
                            return Poll::Pending;
                        };
                        let timeout = timer.timeout;
                        let sleep = timer
                            .sleep
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                        ready!(sleep.as_mut().poll(cx));
                        timeout_response(timer.timeout, timer.retry_after)
                    }
                    Err(payload) => crate::panic::panic_response(payload.as_ref()),
                }
            }
            StateProj::Answer { answer } => answer.take().map_or_else(
                // Polled again after it answered: a bug of the caller,
                // answered rather than panicking.
                || Problem::internal(PolledAfterAnswer).into_response(),
                Answer::into_response,
            ),
        };
        // The inner future (and with it the permit) is dropped now, not
        // when the caller drops this one.
        state.set(State::Answer { answer: None });
        Poll::Ready(Ok(answer))
    }
}

/// The response, its body keeping the request's `permit` (its concurrency
/// slot) until the body has been sent when it streams: a download or a
/// stream of events is work in flight. Such a response also carries a
/// [`BodyEnd`] in its extensions, so that the layers outside (telemetry,
/// metrics) see the request as in flight until then too. A body whose
/// length is known up front (in memory, the usual case) gives the slot
/// back with the head, and costs no wrapper.
fn holding<B>(mut response: Response<B>, permit: Option<crate::limit::Slot>) -> Response
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let body = response.body();
    if body.size_hint().exact().is_some() || body.is_end_stream() {
        return response.map(Body::new);
    }
    let end = BodyEnd::new();
    response.extensions_mut().insert(end.clone());
    response.map(|body| {
        Body::new(Holding {
            body,
            slot: permit,
            end: Some(EndsWhenDropped(end)),
        })
    })
}

/// Ends its [`BodyEnd`] when dropped: at the body's last frame, or with
/// the body when the client goes away first.
struct EndsWhenDropped(BodyEnd);

impl Drop for EndsWhenDropped {
    fn drop(&mut self) {
        self.0.end();
    }
}

pin_project! {
    /// A streaming body, the concurrency slot it holds until its end, and
    /// the end the layers outside wait for.
    struct Holding<B> {
        #[pin]
        body: B,
        slot: Option<crate::limit::Slot>,
        end: Option<EndsWhenDropped>,
    }
}

impl<B: HttpBody> HttpBody for Holding<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.body.as_mut().poll_frame(cx));
        // The end (no frame, or the last one), or an error that ends it:
        // the slot is free now, not when the server gets round to dropping
        // the body.
        if !matches!(frame, Some(Ok(_))) || this.body.is_end_stream() {
            this.slot.take();
            this.end.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The answer to a handler that did not answer in time.
fn timeout_response(timeout: Duration, retry_after: Duration) -> Response {
    Problem::new(codes::HANDLER_TIMEOUT)
        .detail(format!("The handler did not answer within {timeout:?}."))
        .retry_after(retry_after)
        .into_response()
}

/// The internal cause of answering a future polled after it answered.
#[derive(Debug)]
struct PolledAfterAnswer;

impl std::fmt::Display for PolledAfterAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a guard's response future was polled after it answered")
    }
}

impl std::error::Error for PolledAfterAnswer {}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::Router;
    use axum::routing::get;
    use tokio::sync::Notify;
    use tower::ServiceExt as _;

    use super::*;

    /// Every guard at once, exempting `/livez`, with room for one request.
    fn guard() -> GuardLayer {
        let exempt = |path: &str| path == "/livez";
        GuardLayer::new()
            .catch_panics()
            .timeout(TimeoutLayer::new(Duration::from_millis(50)).exempt(exempt))
            .concurrency_limit(ConcurrencyLimitLayer::new(1).exempt(exempt))
    }

    fn get_request(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    fn code_of(response: &Response) -> (u16, String) {
        let status = response.status().as_u16();
        let code = response
            .extensions()
            .get::<Problem>()
            .map_or_else(String::new, |problem| problem.code().code().to_owned());
        (status, code)
    }

    /// A streamed body that yields `frames`, then ends or fails.
    fn streamed(frames: Vec<Result<&'static str, std::io::Error>>) -> Response {
        Response::new(Body::from_stream(futures_util::stream::iter(frames)))
    }

    /// How many times the response's `BodyEnd` hooks ran.
    fn count_ends(response: &Response) -> Arc<std::sync::atomic::AtomicUsize> {
        let ends = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&ends);
        response
            .extensions()
            .get::<BodyEnd>()
            .expect("a streamed body is marked")
            .on_end(move || {
                counted.fetch_add(1, Ordering::SeqCst);
            });
        ends
    }

    #[tokio::test]
    async fn a_streamed_body_ends_once_at_its_end_at_an_error_or_when_dropped() {
        use http_body_util::BodyExt as _;
        // Read to its end: once, and not before.
        let response = holding(streamed(vec![Ok("a"), Ok("b")]), None);
        let ends = count_ends(&response);
        let mut body = response.into_body();
        body.frame().await.unwrap().unwrap();
        assert_eq!(ends.load(Ordering::SeqCst), 0, "ended before its end");
        while body.frame().await.is_some() {}
        drop(body);
        assert_eq!(ends.load(Ordering::SeqCst), 1);

        // An error ends it.
        let response = holding(streamed(vec![Err(std::io::Error::other("gone"))]), None);
        let ends = count_ends(&response);
        let mut body = response.into_body();
        assert!(body.frame().await.unwrap().is_err());
        assert_eq!(ends.load(Ordering::SeqCst), 1);
        drop(body);
        assert_eq!(ends.load(Ordering::SeqCst), 1, "ended twice");

        // Dropped unread (the client went away) ends it.
        let response = holding(streamed(vec![Ok("a")]), None);
        let ends = count_ends(&response);
        drop(response);
        assert_eq!(ends.load(Ordering::SeqCst), 1);

        // A body in memory is not marked.
        let response = holding(Response::new(Body::from("whole")), None);
        assert!(response.extensions().get::<BodyEnd>().is_none());
    }

    #[tokio::test]
    async fn a_panic_when_polled_is_a_500_and_frees_its_slot() {
        #[allow(clippy::panic)] // the route exists to panic
        async fn explode() -> &'static str {
            panic!("secret-panic-token")
        }
        let app = Router::new()
            .route("/explode", get(explode))
            .route("/ok", get(|| async { "ok" }))
            .layer(guard());

        let response = app.clone().oneshot(get_request("/explode")).await.unwrap();
        let problem = response.extensions().get::<Problem>().unwrap();
        assert!(
            problem
                .cause()
                .unwrap()
                .to_string()
                .contains("secret-panic-token")
        );
        assert_eq!(code_of(&response), (500, "INTERNAL_ERROR".to_owned()));
        // The one slot was given back: the next request is admitted.
        let response = app.oneshot(get_request("/ok")).await.unwrap();
        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn a_panic_when_called_is_a_500() {
        let service = guard().layer(tower::service_fn(|_: Request<Body>| {
            #[allow(clippy::panic)] // the service exists to panic
            if true {
                panic!("panicked in call");
            }
            std::future::ready(Ok::<_, Infallible>(Response::new(Body::empty())))
        }));
        let response = service.oneshot(get_request("/x")).await.unwrap();
        assert_eq!(code_of(&response), (500, "INTERNAL_ERROR".to_owned()));
    }

    #[tokio::test]
    async fn beyond_the_limit_requests_are_shed_but_exempt_paths_pass() {
        let release = Arc::new(Notify::new());
        let entered = Arc::new(Notify::new());
        let app = {
            let (release, entered) = (Arc::clone(&release), Arc::clone(&entered));
            Router::new()
                .route(
                    "/slow",
                    get(move || async move {
                        entered.notify_one();
                        release.notified().await;
                        "done"
                    }),
                )
                .route("/livez", get(|| async { "alive" }))
                .route("/ok", get(|| async { "ok" }))
                .layer(GuardLayer::new().catch_panics().concurrency_limit(
                    ConcurrencyLimitLayer::new(1).exempt(|path| path == "/livez"),
                ))
        };

        let in_flight = tokio::spawn(app.clone().oneshot(get_request("/slow")));
        entered.notified().await;
        let shed = app.clone().oneshot(get_request("/ok")).await.unwrap();
        assert_eq!(shed.headers()["retry-after"], "1");
        assert_eq!(code_of(&shed), (503, "OVERLOADED".to_owned()));
        let probe = app.clone().oneshot(get_request("/livez")).await.unwrap();
        assert_eq!(probe.status(), 200);

        release.notify_one();
        assert_eq!(in_flight.await.unwrap().unwrap().status(), 200);
        let after = app.oneshot(get_request("/ok")).await.unwrap();
        assert_eq!(after.status(), 200);
    }

    #[tokio::test]
    async fn a_slow_handler_times_out_and_its_slot_is_freed_but_exempt_paths_wait() {
        let dropped = Arc::new(AtomicBool::new(false));
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let app = {
            let dropped = Arc::clone(&dropped);
            Router::new()
                .route(
                    "/stuck",
                    get(move || {
                        let flag = Flag(Arc::clone(&dropped));
                        async move {
                            let _flag = flag;
                            std::future::pending::<()>().await;
                        }
                    }),
                )
                .route(
                    "/livez",
                    get(|| async {
                        tokio::time::sleep(Duration::from_millis(120)).await;
                        "alive"
                    }),
                )
                .route("/ok", get(|| async { "ok" }))
                .layer(guard())
        };

        let response = app.clone().oneshot(get_request("/stuck")).await.unwrap();
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(code_of(&response), (503, "HANDLER_TIMEOUT".to_owned()));
        // The handler's future was dropped with the answer, and with it the
        // slot: the next request is admitted.
        assert!(dropped.load(Ordering::SeqCst));
        assert_eq!(
            app.clone()
                .oneshot(get_request("/ok"))
                .await
                .unwrap()
                .status(),
            200
        );
        // An exempt path may take longer than the timeout.
        assert_eq!(
            app.oneshot(get_request("/livez")).await.unwrap().status(),
            200
        );
    }

    #[tokio::test]
    async fn without_guards_the_answer_is_the_inner_one() {
        let app = Router::new()
            .route("/teapot", get(|| async { http::StatusCode::IM_A_TEAPOT }))
            .layer(GuardLayer::new());
        let response = app.oneshot(get_request("/teapot")).await.unwrap();
        assert_eq!(response.status(), 418);
        assert!(response.extensions().get::<Problem>().is_none());
    }
}
