//! [`ProblemLayer`]: turns every 4xx and 5xx leaving a service into an
//! `application/problem+json` body carrying the request's id and trace id.
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, http::Request, routing::get};
//! use opsready_problem::ProblemLayer;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/users", get(|| async { "[]" }))
//!     .layer(ProblemLayer::new());
//!
//! let response = app
//!     .oneshot(
//!         Request::get("/nope")
//!             .header("x-request-id", "req-1")
//!             .body(Body::empty())
//!             .unwrap(),
//!     )
//!     .await
//!     .unwrap();
//!
//! assert_eq!(response.status(), 404);
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
//! let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(body["code"], "NOT_FOUND");
//! assert_eq!(body["request_id"], "req-1");
//! assert_eq!(body["instance"], "urn:request:req-1");
//! # }
//! ```
//!
//! # What it does to a response
//!
//! - A response made from a [`Problem`] (it keeps the problem in its
//!   extensions) gets its body re-rendered with `request_id`, `instance`,
//!   `trace_id` and the configured type base, and always for the status
//!   the response has: an error status set around the problem
//!   (`(StatusCode::CONFLICT, problem)`) picks the code, a success status
//!   gives way to the problem's own. A status beyond 599 answers as 500.
//! - Any other response with a status of 400 or more whose content type is
//!   not already `application/problem+json` is rewritten into a problem with
//!   the code [`Code::for_status`] picks. For a 4xx a short (≤ 1 KiB) UTF-8
//!   `text/plain` body in memory, like axum's rejection messages, becomes
//!   `detail` (one still on its way is not waited for); a
//!   5xx always gets the catalog description, and its original text is kept
//!   only as the problem's internal detail for logs. Headers are kept except
//!   those describing the old body (`content-type`, `content-length`,
//!   `content-encoding`, …), so `Allow`, `Retry-After`, `WWW-Authenticate`
//!   and CORS headers survive.
//! - A 503 without `Retry-After` gets one
//!   ([`ProblemLayer::default_retry_after`]), a problem made elsewhere
//!   (relayed from an upstream, passed through as it is) too.
//! - 1xx, 2xx and 3xx responses pass through untouched and unbuffered.
//! - The answer to a `HEAD` request has no body.
//!
//! # Gotchas
//!
//! - Add it **last** (outermost), so it sees the responses of every other
//!   layer, including the [panic](mod@crate::panic), [timeout](crate::timeout)
//!   and [overload](crate::limit) layers.
//! - The request id is the response's `x-request-id` if an inner layer set
//!   one, else the request's. This layer does not generate ids; a
//!   request-id layer inside it should.
//! - axum's method router answers a wrong method with an empty 405 and adds
//!   `Allow` itself. With `Router::layer` it adds `Allow` *after* this layer
//!   ran, and with the layer wrapped around the whole router this layer
//!   keeps it; either way the client gets the problem and `Allow`. The layer
//!   never invents an `Allow` value.
//! - Errors of the inner service (`Err`) are passed through; with axum they
//!   cannot happen.
//! - An error response that is meant as it is, in a format of its own (a
//!   readiness probe's 503 in the health-check format, say), carries the
//!   [`Exempt`] extension and passes through untouched.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, StatusCode, Uri, response::Parts};
use http_body::Body as HttpBody;
use http_body_util::{BodyExt, Limited};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use opsready_vocab::Traceparent;

use crate::problem::{DEFAULT_TYPE_BASE, PROBLEM_JSON, RenderContext, answered, retry_after_secs};
use crate::{Code, Problem};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request id header this layer reads.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The W3C trace context header this layer reads.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The largest original body that is read to become a `detail`.
const MAX_DETAIL_BODY: usize = 1024;
/// Request ids longer than this are not reflected into the body.
const MAX_REQUEST_ID_LEN: usize = 128;
/// Paths quoted in a `detail` are cut to this many bytes.
const MAX_QUOTED_PATH_LEN: usize = 256;

/// Headers that describe the body being replaced; they must not survive the
/// rewrite, or a client would e.g. gunzip plain JSON.
const REPRESENTATION_HEADERS: [HeaderName; 8] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_RANGE,
    header::CONTENT_LANGUAGE,
    header::CONTENT_DISPOSITION,
    header::TRANSFER_ENCODING,
    header::ETAG,
];

/// A response extension that exempts an error response from rewriting: the
/// response is a deliberate answer in a format of its own, not a failure.
///
/// ```
/// use axum::http::StatusCode;
/// use axum::response::IntoResponse;
/// use opsready_problem::layer::Exempt;
///
/// // A readiness probe's "not ready" is an answer, not an error.
/// let response = (StatusCode::SERVICE_UNAVAILABLE, Exempt, "readyz check failed").into_response();
/// assert!(response.extensions().get::<Exempt>().is_some());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exempt;

impl axum::response::IntoResponseParts for Exempt {
    type Error = std::convert::Infallible;

    fn into_response_parts(
        self,
        mut res: axum::response::ResponseParts,
    ) -> Result<axum::response::ResponseParts, Self::Error> {
        res.extensions_mut().insert(self);
        Ok(res)
    }
}

/// A [`Layer`] that renders every error response as a problem. See the
/// [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct ProblemLayer {
    config: Arc<Config>,
}

#[derive(Debug, Clone)]
struct Config {
    type_base: String,
    default_retry_after: Option<Duration>,
    request_ids: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            type_base: DEFAULT_TYPE_BASE.to_owned(),
            default_retry_after: Some(Duration::from_secs(1)),
            request_ids: true,
        }
    }
}

impl ProblemLayer {
    /// A layer with the default configuration.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The base every problem `type` URI starts with; the code's slug is
    /// appended verbatim, so end it with `/`. The generic `CLIENT_ERROR` and
    /// `SERVER_ERROR` are `about:blank` whatever the base.
    ///
    /// Defaults to `https://opsready.dev/problems/`.
    #[must_use]
    pub fn type_base(mut self, base: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).type_base = base.into();
        self
    }

    /// The `Retry-After` added to a 503 that has none; `None` adds nothing.
    ///
    /// Defaults to 1 second.
    #[must_use]
    pub fn default_retry_after(mut self, after: impl Into<Option<Duration>>) -> Self {
        Arc::make_mut(&mut self.config).default_retry_after = after.into();
        self
    }

    /// Whether the request's own `x-request-id` and `traceparent` are kept
    /// for a problem's `request_id` and `trace_id`, when the response does
    /// not carry them.
    ///
    /// Defaults to `true`. Turn it off when a layer inside always sets
    /// both on the response, as opsready's telemetry layer does: a request
    /// then costs no copies of them.
    ///
    /// ```
    /// use opsready_problem::ProblemLayer;
    ///
    /// let layer = ProblemLayer::new().request_ids(false);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn request_ids(mut self, keep: bool) -> Self {
        Arc::make_mut(&mut self.config).request_ids = keep;
        self
    }
}

impl<S> Layer<S> for ProblemLayer {
    type Service = ProblemService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProblemService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`ProblemLayer`] wraps around a service.
#[derive(Debug, Clone)]
pub struct ProblemService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> ProblemService<S> {
    /// Wraps `inner` with the default configuration.
    pub fn new(inner: S) -> Self {
        ProblemLayer::new().layer(inner)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ProblemService<S>
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
        // Kept as they came (clones share their bytes): they are read only
        // when the answer is an error, so a success costs no parsing.
        let headers = request.headers();
        let ids = self
            .config
            .request_ids
            .then(|| RequestIds {
                request_id: headers.get(X_REQUEST_ID).cloned(),
                traceparent: headers.get(TRACEPARENT).cloned(),
            })
            .filter(|ids| ids.request_id.is_some() || ids.traceparent.is_some())
            .map(Box::new);
        let info = RequestInfo {
            ids,
            method: request.method().clone(),
            path: KeptPath::of(request.uri()),
        };
        ResponseFuture {
            future: self.inner.call(request),
            info: Some(info),
            config: Arc::clone(&self.config),
        }
    }
}

/// What the layer remembers of the request until the response arrives:
/// little, since every layer outside moves the future that holds it.
#[derive(Debug, Default)]
struct RequestInfo {
    // Boxed, and only when the request has either header.
    ids: Option<Box<RequestIds>>,
    method: Method,
    path: KeptPath,
}

/// The request's path, for the detail of an error answer. A short one is
/// copied: the first clone of the bytes of a URI that hyper parsed
/// allocates, and almost every answer is a success that never reads it.
#[derive(Debug, Default)]
enum KeptPath {
    Inline {
        len: u8,
        bytes: [u8; KeptPath::INLINE],
    },
    Shared(PathAndQuery),
    #[default]
    None,
}

impl KeptPath {
    /// As long as a [`PathAndQuery`], so the future grows by nothing.
    const INLINE: usize = 38;

    fn of(uri: &Uri) -> Self {
        let path = uri.path().as_bytes();
        match u8::try_from(path.len()) {
            Ok(len) if path.len() <= Self::INLINE => {
                let mut bytes = [0; Self::INLINE];
                bytes[..path.len()].copy_from_slice(path);
                Self::Inline { len, bytes }
            }
            _ => uri
                .path_and_query()
                .cloned()
                .map_or(Self::None, Self::Shared),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied from a `&str` whole: always UTF-8.
            Self::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("/")
            }
            Self::Shared(path) => path.path(),
            Self::None => "/",
        }
    }
}

/// The request's own ids, for an answer whose headers lack them.
#[derive(Debug)]
struct RequestIds {
    request_id: Option<HeaderValue>,
    traceparent: Option<HeaderValue>,
}

impl RequestInfo {
    fn ids(&self) -> Option<&RequestIds> {
        self.ids.as_deref()
    }

    fn path(&self) -> &str {
        self.path.as_str()
    }
}

pin_project! {
    /// Response future of [`ProblemService`].
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        info: Option<RequestInfo>,
        config: Arc<Config>,
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
        let this = self.project();
        let response = ready!(this.future.poll(cx))?;
        let info = this.info.take().unwrap_or_default();
        Poll::Ready(Ok(process(response, &info, Arc::clone(this.config))))
    }
}

fn process<B>(response: Response<B>, info: &RequestInfo, config: Arc<Config>) -> Response
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let status = response.status();
    if status.as_u16() < 400 && response.extensions().get::<Problem>().is_none() {
        // The hot path: no parsing, no buffering.
        return response.map(Body::new);
    }

    let (mut parts, body) = response.into_parts();
    // The body always says the status the answer has; see `answered`.
    let carried = parts.extensions.get::<Problem>().cloned();
    let (status, problem) = answered(status, carried.as_ref());
    parts.status = status;
    let renderer = Renderer {
        request_id: parts
            .headers
            .get(X_REQUEST_ID)
            .and_then(sane_request_id)
            .or_else(|| {
                info.ids()
                    .and_then(|ids| ids.request_id.as_ref())
                    .and_then(sane_request_id)
            }),
        trace_id: parts
            .headers
            .get(TRACEPARENT)
            .and_then(trace_id_from_header)
            .or_else(|| {
                info.ids()
                    .and_then(|ids| ids.traceparent.as_ref())
                    .and_then(trace_id_from_header)
            }),
        is_head: info.method == Method::HEAD,
        config,
    };

    if let Some(problem) = problem {
        drop(body);
        return renderer.finish(parts, &problem);
    }

    let exempt = parts.extensions.get::<Exempt>().is_some();
    if status.as_u16() < 400 || is_problem_json(&parts.headers) || exempt {
        // A problem made elsewhere (relayed from an upstream) keeps its
        // body, but a 503 still tells the client when to come back.
        if status == StatusCode::SERVICE_UNAVAILABLE
            && !exempt
            && !parts.headers.contains_key(header::RETRY_AFTER)
            && let Some(after) = renderer.config.default_retry_after
        {
            parts.headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(after)),
            );
        }
        return Response::from_parts(parts, Body::new(body));
    }

    let code = Code::for_status(status);
    let fallback = fallback_detail(status, &info.method, &quoted_path(info.path()));
    let text = is_short_text(&parts.headers, &body)
        .then(|| text_in_memory(body))
        .flatten();
    let mut problem = Problem::new(code);
    if let Some(detail) = text.or(fallback) {
        problem = problem.detail(detail);
    }
    renderer.finish(parts, &problem)
}

/// Everything needed to render a problem for this request.
struct Renderer {
    request_id: Option<String>,
    trace_id: Option<String>,
    is_head: bool,
    config: Arc<Config>,
}

impl Renderer {
    fn finish(&self, mut parts: Parts, problem: &Problem) -> Response {
        let body = problem.to_body(&RenderContext {
            type_base: &self.config.type_base,
            request_id: self.request_id.as_deref(),
            trace_id: self.trace_id.as_deref(),
        });

        for name in &REPRESENTATION_HEADERS {
            parts.headers.remove(name);
        }
        // The body's `request_id` is the response's header: a stack that
        // has no layer setting it gets it here, and a header the body could
        // not echo (not a sane id) gives way to the one it did.
        if let Some(id) = &self.request_id
            && parts
                .headers
                .get(X_REQUEST_ID)
                .is_none_or(|header| header.as_bytes() != id.as_bytes())
            && let Ok(value) = HeaderValue::from_str(id)
        {
            parts.headers.insert(X_REQUEST_ID, value);
        }
        parts
            .headers
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        if parts.status == StatusCode::SERVICE_UNAVAILABLE
            && !parts.headers.contains_key(header::RETRY_AFTER)
            && let Some(after) = self.config.default_retry_after
        {
            parts.headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(after)),
            );
        }
        parts.extensions.insert(problem.clone());

        let body = if self.is_head {
            Body::empty()
        } else {
            Body::from(body)
        };
        Response::from_parts(parts, body)
    }
}

/// A detail for empty 404 and 405 answers, which say nothing themselves.
fn fallback_detail(status: StatusCode, method: &Method, path: &str) -> Option<String> {
    match status {
        StatusCode::NOT_FOUND => Some(format!("Nothing exists at `{path}`.")),
        StatusCode::METHOD_NOT_ALLOWED => Some(format!(
            "`{method}` is not allowed on `{path}`; see `Allow`."
        )),
        _ => None,
    }
}

fn is_problem_json(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|media| media.eq_ignore_ascii_case(PROBLEM_JSON))
}

/// Whether the body is plain text small enough to be worth reading, of a
/// known size.
fn is_short_text<B: HttpBody>(headers: &HeaderMap, body: &B) -> bool {
    let is_text = media_type(headers).is_some_and(|media| media.eq_ignore_ascii_case("text/plain"));
    let fits = body
        .size_hint()
        .exact()
        .is_some_and(|size| size > 0 && size as usize <= MAX_DETAIL_BODY);
    is_text && fits
}

/// The media type of `content-type`, without parameters.
fn media_type(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next().unwrap_or(value).trim();
    Some(media)
}

/// The body's text, when all of it is at hand now (a body in memory, as a
/// handler's or axum's own text is): at most [`MAX_DETAIL_BODY`] bytes;
/// anything longer, not UTF-8 or blank is not a usable detail. A body that
/// would have to be waited for is not: one relayed from an upstream, say,
/// whose length is known but whose bytes may never come, with the guard's
/// timer stopped once the answer's head was ready.
fn text_in_memory<B>(body: B) -> Option<String>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut collecting = std::pin::pin!(Limited::new(body, MAX_DETAIL_BODY).collect());
    let Poll::Ready(collected) = collecting
        .as_mut()
        .poll(&mut Context::from_waker(std::task::Waker::noop()))
    else {
        return None;
    };
    let bytes = collected.ok()?.to_bytes();
    let text = String::from_utf8(bytes.to_vec()).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The request id, if it is something that can be safely echoed: visible
/// ASCII, not too long.
fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let value = value.to_str().ok()?;
    let sane = !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value.bytes().all(|b| b.is_ascii_graphic());
    sane.then(|| value.to_owned())
}

fn trace_id_from_header(value: &HeaderValue) -> Option<String> {
    Traceparent::parse(value.to_str().ok()?).map(|parsed| parsed.trace_id.to_owned())
}

/// The path as it may appear in a detail: cut to a sane length.
pub(crate) fn quoted_path(path: &str) -> String {
    if path.len() <= MAX_QUOTED_PATH_LEN {
        return path.to_owned();
    }
    let mut end = MAX_QUOTED_PATH_LEN;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;

    use axum::body::to_bytes;
    use tower::ServiceExt;

    async fn call(
        method: Method,
        request_headers: &[(&'static str, &'static str)],
        response: fn() -> Response,
    ) -> (Response, serde_json::Value) {
        let service = ProblemLayer::new().layer(tower::service_fn(move |_: Request<Body>| {
            std::future::ready(Ok::<_, std::convert::Infallible>(response()))
        }));
        let mut request = Request::builder().method(method).uri("/thing");
        for (name, value) in request_headers {
            request = request.header(*name, *value);
        }
        let response = service
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, usize::MAX).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (Response::from_parts(parts, Body::empty()), json)
    }

    #[tokio::test]
    async fn an_error_status_set_around_a_problem_is_the_status_its_body_says() {
        let (response, body) = call(Method::GET, &[("x-request-id", "r1")], || {
            (StatusCode::CONFLICT, Problem::not_found("no user 42")).into_response()
        })
        .await;

        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(body["status"], 409, "{body}");
        assert_eq!(body["code"], "CONFLICT");
        assert_eq!(body["detail"], "no user 42");
        assert_eq!(body["request_id"], "r1");
    }

    #[tokio::test]
    async fn the_bodys_request_id_is_the_responses_header_when_no_layer_set_one() {
        let (response, body) = call(Method::GET, &[("x-request-id", "req-7")], || {
            (StatusCode::BAD_REQUEST, "bad thing").into_response()
        })
        .await;

        assert_eq!(body["request_id"], "req-7");
        assert_eq!(body["detail"], "bad thing");
        assert_eq!(response.headers()[X_REQUEST_ID], "req-7");
    }

    #[tokio::test]
    async fn a_response_header_the_body_cannot_echo_gives_way_to_the_requests_id() {
        let (response, body) = call(Method::GET, &[("x-request-id", "req-8")], || {
            (
                StatusCode::BAD_REQUEST,
                [("x-request-id", "not a sane id")],
                "bad thing",
            )
                .into_response()
        })
        .await;

        assert_eq!(body["request_id"], "req-8");
        assert_eq!(response.headers()[X_REQUEST_ID], "req-8");
    }

    #[tokio::test]
    async fn a_text_body_of_known_length_still_on_its_way_is_not_waited_for() {
        /// An upstream's body relayed as is: its length announced, its
        /// bytes never coming.
        struct Announced;
        impl HttpBody for Announced {
            type Data = Bytes;
            type Error = std::io::Error;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
                Poll::Pending
            }
            fn size_hint(&self) -> http_body::SizeHint {
                http_body::SizeHint::with_exact(200)
            }
        }
        let (response, body) = tokio::time::timeout(
            Duration::from_secs(10),
            call(Method::GET, &[], || {
                (
                    StatusCode::CONFLICT,
                    [(header::CONTENT_TYPE, "text/plain")],
                    Body::new(Announced),
                )
                    .into_response()
            }),
        )
        .await
        .expect("the layer waited on the body");

        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(body["code"], "CONFLICT", "{body}");
    }

    #[tokio::test]
    async fn a_text_body_of_unknown_length_is_not_waited_for() {
        let (response, body) = tokio::time::timeout(
            Duration::from_secs(10),
            call(Method::GET, &[], || {
                // A stream that never ends.
                let stream = futures_util::stream::pending::<Result<Bytes, std::io::Error>>();
                (
                    StatusCode::BAD_REQUEST,
                    [(header::CONTENT_TYPE, "text/plain")],
                    Body::from_stream(stream),
                )
                    .into_response()
            }),
        )
        .await
        .expect("the layer waited on the body");

        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "BAD_REQUEST", "{body}");
    }

    #[tokio::test]
    async fn a_5xx_set_around_a_4xx_problem_keeps_its_detail_internal() {
        let (response, body) = call(Method::GET, &[], || {
            (
                StatusCode::BAD_GATEWAY,
                Problem::bad_request("upstream said: secret internals"),
            )
                .into_response()
        })
        .await;

        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(body["status"], 502);
        assert!(!body.to_string().contains("secret internals"), "{body}");
        let kept = response.extensions().get::<Problem>().unwrap();
        assert_eq!(
            kept.internal_detail(),
            Some("upstream said: secret internals")
        );
    }

    #[tokio::test]
    async fn a_4xx_set_around_a_5xx_problem_does_not_make_its_detail_or_field_errors_public() {
        let (response, body) = call(Method::GET, &[], || {
            (
                StatusCode::BAD_REQUEST,
                Problem::new(crate::codes::INTERNAL_ERROR)
                    .detail("redis 10.0.0.5:6379: auth failed")
                    .with_error(crate::FieldError::pointer(
                        "/account",
                        "UPSTREAM",
                        "ledger at 10.0.0.7 said no",
                    )),
            )
                .into_response()
        })
        .await;

        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(body["status"], 400);
        assert!(!body.to_string().contains("10.0.0.5"), "{body}");
        assert!(!body.to_string().contains("10.0.0.7"), "{body}");
        assert!(body.get("errors").is_none(), "{body}");
    }

    #[tokio::test]
    async fn a_success_status_set_around_a_problem_gives_way_to_the_problems() {
        let (response, body) = call(Method::GET, &[], || {
            (StatusCode::OK, Problem::not_found("no user 42")).into_response()
        })
        .await;

        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(body["status"], 404);
    }

    #[tokio::test]
    async fn a_status_beyond_599_answers_as_a_500_problem() {
        let (response, body) = call(Method::GET, &[], || {
            StatusCode::from_u16(600).unwrap().into_response()
        })
        .await;

        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["status"], 500);
    }

    #[tokio::test]
    async fn without_request_ids_only_the_response_names_the_request() {
        let request = || {
            Request::get("/thing")
                .header("x-request-id", "from-client")
                .header("traceparent", VALID)
                .body(Body::empty())
                .unwrap()
        };
        let conflict = || StatusCode::CONFLICT.into_response();
        let kept = ProblemLayer::new().layer(tower::service_fn(move |_: Request<Body>| {
            std::future::ready(Ok::<_, std::convert::Infallible>(conflict()))
        }));
        let dropped = ProblemLayer::new()
            .request_ids(false)
            .layer(tower::service_fn(move |_: Request<Body>| {
                std::future::ready(Ok::<_, std::convert::Infallible>(conflict()))
            }));
        let body = |response: Response| async move {
            let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        };

        let with_ids = body(kept.oneshot(request()).await.unwrap()).await;
        assert_eq!(with_ids["request_id"], "from-client");
        assert_eq!(with_ids["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        let without = body(dropped.oneshot(request()).await.unwrap()).await;
        assert_eq!(without["code"], "CONFLICT");
        assert!(without.get("request_id").is_none(), "{without}");
        assert!(without.get("trace_id").is_none(), "{without}");
    }

    #[tokio::test]
    async fn the_response_request_id_and_traceparent_win_over_the_request_ones() {
        let (_, body) = call(
            Method::GET,
            &[("x-request-id", "from-client"), ("traceparent", VALID)],
            || {
                let mut response = StatusCode::CONFLICT.into_response();
                response
                    .headers_mut()
                    .insert(X_REQUEST_ID, HeaderValue::from_static("from-inner-layer"));
                response.headers_mut().insert(
                    TRACEPARENT,
                    HeaderValue::from_static(
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    ),
                );
                response
            },
        )
        .await;
        assert_eq!(body["request_id"], "from-inner-layer");
        assert_eq!(body["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    }

    #[tokio::test]
    async fn a_head_answer_has_headers_but_no_body() {
        let (response, body) =
            call(Method::HEAD, &[], || StatusCode::NOT_FOUND.into_response()).await;
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(body, serde_json::Value::Null);
    }

    #[tokio::test]
    async fn a_503_without_retry_after_gets_the_default() {
        let (response, _) = call(Method::GET, &[], || {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        })
        .await;
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[tokio::test]
    async fn representation_headers_of_the_old_body_are_dropped_and_allow_is_kept() {
        let (response, body) = call(Method::POST, &[], || {
            let mut response = (StatusCode::METHOD_NOT_ALLOWED, "nope").into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            headers.insert(header::ALLOW, HeaderValue::from_static("GET"));
            response
        })
        .await;
        assert!(!response.headers().contains_key(header::CONTENT_ENCODING));
        assert_eq!(response.headers()[header::ALLOW], "GET");
        assert_eq!(body["detail"], "nope");
    }

    #[tokio::test]
    async fn a_long_4xx_text_body_is_replaced_by_the_catalog_description() {
        let (_, body) = call(Method::GET, &[], || {
            (StatusCode::BAD_REQUEST, "x".repeat(MAX_DETAIL_BODY + 1)).into_response()
        })
        .await;
        assert_eq!(body["detail"], crate::codes::BAD_REQUEST.description());
    }

    #[tokio::test]
    async fn a_json_error_body_is_rewritten_but_a_problem_body_is_left_alone() {
        let (_, body) = call(Method::GET, &[], || {
            (
                StatusCode::CONFLICT,
                axum::Json(serde_json::json!({"error": "x"})),
            )
                .into_response()
        })
        .await;
        assert_eq!(body["code"], "CONFLICT");

        let (response, body) = call(Method::GET, &[], || {
            (
                StatusCode::CONFLICT,
                [(header::CONTENT_TYPE, PROBLEM_JSON)],
                r#"{"title":"foreign"}"#,
            )
                .into_response()
        })
        .await;
        assert_eq!(response.status(), 409);
        assert_eq!(body, serde_json::json!({"title": "foreign"}));
    }

    #[tokio::test]
    async fn a_relayed_problem_503_keeps_its_body_and_gets_a_retry_after() {
        let (response, body) = call(Method::GET, &[], || {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, PROBLEM_JSON)],
                r#"{"title":"upstream down"}"#,
            )
                .into_response()
        })
        .await;

        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(body, serde_json::json!({"title": "upstream down"}));
    }

    #[tokio::test]
    async fn an_exempt_error_response_passes_through_untouched() {
        let service = ProblemLayer::new().layer(tower::service_fn(|_: Request<Body>| {
            std::future::ready(Ok::<_, std::convert::Infallible>(
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Exempt,
                    "readyz check failed\n",
                )
                    .into_response(),
            ))
        }));
        let response = service
            .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        assert_eq!(&body[..], b"readyz check failed\n");
    }

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_trace_id_comes_from_a_valid_traceparent_header_only() {
        // The parsing itself is tested in opsready-vocab.
        assert_eq!(
            trace_id_from_header(&HeaderValue::from_static(VALID)).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let uppercase = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id_from_header(&HeaderValue::from_static(uppercase)),
            None
        );
    }

    #[test]
    fn a_request_id_with_spaces_or_too_long_is_not_echoed() {
        assert_eq!(
            sane_request_id(&HeaderValue::from_static("abc-123")),
            Some("abc-123".to_owned())
        );
        assert_eq!(sane_request_id(&HeaderValue::from_static("a b")), None);
        assert_eq!(sane_request_id(&HeaderValue::from_static("")), None);
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        assert_eq!(sane_request_id(&long), None);
    }

    #[test]
    fn the_kept_path_is_the_request_path_whatever_its_length() {
        for len in [
            0,
            1,
            KeptPath::INLINE - 1,
            KeptPath::INLINE,
            KeptPath::INLINE + 1,
            300,
        ] {
            let path = format!("/{}", "é".repeat(len / 2)) + &"a".repeat(len % 2);
            let uri: Uri = format!("{path}?q=1").parse().unwrap();
            assert_eq!(
                KeptPath::of(&uri).as_str(),
                uri.path(),
                "path of {len} bytes"
            );
        }
        assert_eq!(KeptPath::None.as_str(), "/");
    }

    #[test]
    fn a_long_path_is_cut_at_a_char_boundary() {
        let path = format!("/{}", "é".repeat(200));
        let quoted = quoted_path(&path);
        assert!(quoted.len() <= MAX_QUOTED_PATH_LEN + '…'.len_utf8());
        assert!(quoted.ends_with('…'));
    }
}
