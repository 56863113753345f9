//! [`TelemetryLayer`]: a request id, the W3C trace context, one span and one
//! log line per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Instant, SystemTime};

use axum::extract::MatchedPath;
use http::header::{Entry, HeaderName};
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Span;
use tracing::field::Empty;

use opsready_problem::Problem;
use opsready_vocab::{BodyEnd, ObservedRequest, RequestObserver, is_quiet, method_name};

use crate::context::{TraceContext, TraceState, is_sane_request_id, request_id_at};
use crate::subscriber::{RequestFields, RequestLine};

/// The request id header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The W3C trace context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The W3C vendor trace state header.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The target of the line logged when a request ends.
pub const REQUEST_TARGET: &str = "opsready::request";

/// The target of request spans, apart from their lines': a level above
/// `info` for [`REQUEST_TARGET`] (`opsready::request=warn`) drops the lines
/// of requests that went well and keeps the span, whose fields every line
/// a handler logs carries.
pub const REQUEST_SPAN_TARGET: &str = "opsready::http";

/// The per-request telemetry layer. Put it inside the problem layer (so that
/// problems carry its request id and trace id) and outside everything else.
///
/// For each request it:
///
/// - keeps a sane incoming `x-request-id` (1–128 visible ASCII characters)
///   or makes a UUIDv7, sets it on the request for the handlers and returns
///   it on the response;
/// - continues an incoming W3C `traceparent` (and echoes `tracestate`) or
///   starts a trace, and returns this service's `traceparent`;
/// - opens a span named `{METHOD} {route template}` (`GET /hello/{name}`;
///   just the method for unmatched paths, so random URLs add no names) with
///   OpenTelemetry HTTP fields, `request_id` and `trace_id`;
/// - logs one line when the response is ready: error for 5xx, info
///   otherwise, with method, route, status and latency.
///
/// No credential-bearing header is recorded anywhere, so `Authorization`,
/// cookies and API keys never reach logs or spans; nor is the query
/// string, which may carry tokens. Lines record no header value at all;
/// exported spans carry `User-Agent`, `Host` and the proxy headers, as the
/// HTTP conventions ask.
///
/// With an [observer](TelemetryLayer::observe) it also tells another
/// component (opsready's metrics) when each request starts and ends, from
/// the same clock reading and route lookup.
#[derive(Debug, Clone, Default)]
pub struct TelemetryLayer<O = ()> {
    trace_probes: bool,
    inner_starts_when_polled: bool,
    observer: O,
}

impl TelemetryLayer {
    /// A layer that leaves probes and `/metrics` untraced.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<O> TelemetryLayer<O> {
    /// Whether probes (`/livez`, `/readyz`, `/startupz`) and `/metrics` get
    /// spans and log lines. Defaults to `false`.
    pub fn trace_probes(mut self, trace: bool) -> Self {
        self.trace_probes = trace;
        self
    }

    /// Says that the inner service does no work in `call`, only when its
    /// future is polled, as axum's routes do: the layer then enters the
    /// request span only around polls, one entry and exit fewer per
    /// request. Defaults to `false`: the span is also entered while the
    /// inner service's `call` runs.
    ///
    /// Under `Router::layer` the inner service is always an axum route,
    /// which only queues the request in `call` (a route's own layers and
    /// handler run when it is first polled), so the span is current
    /// wherever the service's code runs either way:
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use opsready_telemetry::TelemetryLayer;
    ///
    /// let app: Router = Router::new()
    ///     .route("/hello", get(|| async { "hello" }))
    ///     .layer(TelemetryLayer::new().inner_starts_when_polled(true));
    /// # let _ = app;
    /// ```
    ///
    /// Around a service that does work in `call` (logs, opens spans), keep
    /// the default, or that work happens outside the request span.
    pub fn inner_starts_when_polled(mut self, yes: bool) -> Self {
        self.inner_starts_when_polled = yes;
        self
    }

    /// Tells `observer` when each request starts and ends, instead of
    /// another layer timing it again. The observer decides which requests
    /// it watches: probes untraced here may still be observed. A request
    /// ends with its response, or, when the response carries an
    /// [`opsready_vocab::BodyEnd`] (a streamed body behind opsready's
    /// guard), when its body ends; the request's log line is still written
    /// with the response's head.
    ///
    /// ```
    /// use opsready_metrics::{Metrics, MetricsLayer};
    /// use opsready_telemetry::TelemetryLayer;
    ///
    /// let metrics = Metrics::new();
    /// // The same series as `.layer(MetricsLayer::new(metrics.clone()))`
    /// // inside the telemetry layer, at less cost per request.
    /// let layer = TelemetryLayer::new().observe(MetricsLayer::new(metrics.clone()));
    /// # let _ = layer;
    /// ```
    pub fn observe<P: RequestObserver>(self, observer: P) -> TelemetryLayer<P> {
        TelemetryLayer {
            trace_probes: self.trace_probes,
            inner_starts_when_polled: self.inner_starts_when_polled,
            observer,
        }
    }
}

impl<S, O: Clone> Layer<S> for TelemetryLayer<O> {
    type Service = Telemetry<S, O>;

    fn layer(&self, inner: S) -> Self::Service {
        Telemetry {
            inner,
            layer: Arc::new(self.clone()),
        }
    }
}

/// The service of [`TelemetryLayer`].
#[derive(Debug, Clone)]
pub struct Telemetry<S, O = ()> {
    inner: S,
    layer: Arc<TelemetryLayer<O>>,
}

impl<S, O, ReqBody, ResBody> Service<Request<ReqBody>> for Telemetry<S, O>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    O: RequestObserver,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, O>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The wall clock, when read for a new id, also dates the line that
        // ends the request: one reading fewer.
        let mut arrived = None;
        let mut new_id = || {
            let now = SystemTime::now();
            arrived = Some(now);
            request_id_at(now)
        };
        // One lookup for reading and, when needed, replacing the header.
        let request_id = match request.headers_mut().entry(X_REQUEST_ID) {
            // One id, or the request is given one of ours: of two, neither
            // is the request's.
            Entry::Occupied(id) if is_sane_request_id(id.get()) && id.iter().nth(1).is_none() => {
                id.get().clone()
            }
            Entry::Occupied(mut id) => {
                let new = new_id();
                id.insert(new.clone());
                new
            }
            Entry::Vacant(slot) => slot.insert(new_id()).clone(),
        };
        // Two `traceparent` headers continue neither (W3C Trace Context):
        // a new trace starts.
        let traceparent = {
            let mut all = request.headers().get_all(TRACEPARENT).iter();
            all.next().filter(|_| all.next().is_none())
        };
        #[allow(unused_mut)] // changed only when spans are exported
        let mut context = TraceContext::continue_or_start(traceparent);
        // Only with a trace to continue, and only a well-formed list: a
        // handler passes on what it finds in the extensions, and the
        // response echoes the same. Boxed: rare, and the future stays small
        // without it.
        let tracestate = context
            .parent_id
            .and_then(|_| tracestate_of(request.headers()))
            .and_then(|value| TraceState::parse(&value))
            .map(Box::new);
        if let Some(state) = &tracestate {
            request.extensions_mut().insert(TraceState::clone(state));
        }

        // In hex once, for the span, the log lines and the `traceparent`.
        #[allow(unused_mut)] // changed only when spans are exported
        let mut hex_ids = context.hex_ids();

        let path = request.uri().path();
        let quiet = !self.layer.trace_probes && is_quiet(path);
        let (span, line) = if quiet {
            (Span::none(), None)
        } else {
            // When spans are exported, the exported span's ids are the ones
            // this service passes on; they are known once it has started.
            #[cfg(feature = "otlp")]
            let exporting = crate::otlp::active();
            #[cfg(not(feature = "otlp"))]
            let exporting = false;
            // The exported span's ids are filled in by the exporter.
            let ids = (!exporting).then(|| (hex_ids.0.as_str(), hex_ids.1.as_str()));
            // An id made here is hex and hyphens: nothing to escape.
            let plain_id = arrived.is_some();
            let (span, line) = request_span(&request, (&request_id, plain_id), &context, ids);
            #[cfg(feature = "otlp")]
            if exporting {
                crate::otlp::adopt(&span, &mut context, tracestate.as_deref());
                crate::otlp::describe(&span, &request);
                hex_ids = context.hex_ids();
            }
            (span, line)
        };
        // With the level above info the span does not exist, but a failed
        // request's error line must still say which request it was.
        let unspanned = (!quiet && span.is_disabled()).then(|| {
            Box::new(Unspanned {
                method: method_name(request.method()),
                route: request
                    .extensions()
                    .get::<MatchedPath>()
                    .map(|route| route.as_str().to_owned()),
                trace_id: context.trace_id,
            })
        });
        request.extensions_mut().insert(context);
        // Before the inner call, so the latency counts the inner layers too.
        let start = Instant::now();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let observation = self
            .layer
            .observer
            .start(&ObservedRequest::of(&request, route));
        let future = if self.layer.inner_starts_when_polled {
            self.inner.call(request)
        } else {
            let _entered = span.enter();
            self.inner.call(request)
        };
        ResponseFuture {
            future,
            span,
            line,
            quiet,
            unspanned,
            start,
            arrived,
            observation,
            request_id: Some(request_id),
            traceparent: Some(context.traceparent_header_of(&hex_ids)),
            tracestate,
        }
    }
}

/// The request's span, with the `trace_id` and `span_id` of `ids`; without
/// them, they are left for the exporter to fill in. With JSON logs and
/// `ids`, also the writer of the line that ends the request.
fn request_span<B>(
    request: &Request<B>,
    (request_id, plain_id): (&HeaderValue, bool),
    context: &TraceContext,
    ids: Option<(&str, &str)>,
) -> (Span, Option<RequestLine>) {
    let method = method_name(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let request_id = request_id.to_str().unwrap_or_default();
    // Field values are only evaluated when the span is enabled, so the name
    // costs nothing when spans are filtered out.
    let create = || {
        // A root, as a request is in this service (and as its exported span
        // is): no lookup of the span the server runs in.
        tracing::info_span!(
            target: REQUEST_SPAN_TARGET,
            parent: None,
            "request",
            otel.name = %SpanName(method, route),
            otel.kind = "server",
            http.request.method = method,
            http.route = route,
            url.path = request.uri().path(),
            http.response.status_code = Empty,
            request_id,
            // As text rather than `Display`: subscribers copy a `&str` but
            // must format a `Display`.
            trace_id = ids.map(|(trace_id, _)| trace_id),
            span_id = ids.map(|(_, span_id)| span_id),
            parent_span_id = context.parent_id.map(tracing::field::display),
        )
    };
    // The JSON layer's copy of the fields, rendered here, where the values
    // are at hand, and only when info spans can be enabled at all.
    if tracing::level_enabled!(tracing::Level::INFO) {
        let (span, line) =
            RequestFields::render(method, route, (request_id, plain_id), ids).hand_to(create);
        // An exported span keeps the line as its event: the event path.
        (span, line.filter(|_| ids.is_some()))
    } else {
        (create(), None)
    }
}

/// The caller's `tracestate`: several headers are one list, joined with
/// commas in their order (W3C Trace Context, as RFC 9110 combines fields).
fn tracestate_of(headers: &http::HeaderMap) -> Option<HeaderValue> {
    let mut all = headers.get_all(TRACESTATE).iter();
    let first = all.next()?;
    let Some(second) = all.next() else {
        return Some(first.clone());
    };
    let mut joined = first.as_bytes().to_vec();
    for more in std::iter::once(second).chain(all) {
        joined.push(b',');
        joined.extend_from_slice(more.as_bytes());
    }
    HeaderValue::from_bytes(&joined).ok()
}

/// `{METHOD} {route}`, or the method alone for an unmatched path.
struct SpanName<'a>(&'a str, Option<&'a str>);

impl std::fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A method outside the known set is `HTTP` in a span's name (its
        // attribute is `_OTHER`): names stay few, as routes keep them.
        let method = if self.0 == "_OTHER" { "HTTP" } else { self.0 };
        match self.1 {
            Some(route) => write!(f, "{method} {route}"),
            None => f.write_str(method),
        }
    }
}

/// What the request's span would have carried, for the line logged when the
/// span is filtered out.
struct Unspanned {
    method: &'static str,
    route: Option<String>,
    trace_id: crate::context::TraceId,
}

/// The `error` of a request whose handler panicked with no panic catcher
/// to answer it.
const PANICKED: &str =
    "the handler panicked, and no panic catcher answered (the connection was dropped)";

pin_project! {
    /// The response future of [`Telemetry`].
    pub struct ResponseFuture<F, O: RequestObserver = ()> {
        #[pin]
        future: F,
        span: Span,
        // Writes the final line when the JSON layer handed its writer over.
        line: Option<RequestLine>,
        quiet: bool,
        unspanned: Option<Box<Unspanned>>,
        start: Instant,
        // The wall clock at `start`, when it was read.
        arrived: Option<SystemTime>,
        observation: Option<O::Observation>,
        request_id: Option<HeaderValue>,
        traceparent: Option<HeaderValue>,
        tracestate: Option<Box<TraceState>>,
    }

    impl<F, O: RequestObserver> PinnedDrop for ResponseFuture<F, O> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Still held: dropped before the inner service answered (the
            // client went away, the shutdown deadline passed). Such a
            // request gets its line too, without a status.
            let Some(id) = this.request_id.take() else {
                return;
            };
            let elapsed = this.start.elapsed();
            // Dropped by a panic unwinding through it, with no panic catcher
            // inside (`GuardLayer::catch_panics`): the server failed, the
            // client did not give up.
            let panicked = std::thread::panicking();
            if let Some(observation) = this.observation.take() {
                if panicked {
                    O::finish(observation, 500, elapsed);
                } else {
                    O::cancel(observation, elapsed);
                }
            }
            if *this.quiet {
                return;
            }
            if let Some(line) = this.line.take() {
                let at = this
                    .arrived
                    .map_or_else(SystemTime::now, |arrived| arrived + elapsed);
                if panicked {
                    line.write(Some(500), elapsed, at, (None, Some(PANICKED)));
                } else {
                    line.write(None, elapsed, at, (None, None));
                }
            } else if !this.span.is_disabled() {
                let _entered = this.span.enter();
                let latency_ms = elapsed.as_secs_f64() * 1000.0;
                if panicked {
                    tracing::error!(
                        target: REQUEST_TARGET,
                        message = "request failed",
                        status = 500_u16,
                        latency_ms,
                        error = PANICKED,
                    );
                } else {
                    tracing::info!(
                        target: REQUEST_TARGET,
                        message = "request cancelled",
                        latency_ms,
                    );
                }
            } else if let Some(unspanned) = this.unspanned.take() {
                let latency_ms = elapsed.as_secs_f64() * 1000.0;
                let request_id = id.to_str().unwrap_or_default();
                let trace_id = unspanned.trace_id.to_hex();
                if panicked {
                    tracing::error!(
                        target: REQUEST_TARGET,
                        message = "request failed",
                        status = 500_u16,
                        latency_ms,
                        error = PANICKED,
                        request_id,
                        trace_id = trace_id.as_str(),
                        method = unspanned.method,
                        route = unspanned.route.as_deref(),
                    );
                } else {
                    tracing::info!(
                        target: REQUEST_TARGET,
                        message = "request cancelled",
                        latency_ms,
                        request_id,
                        trace_id = trace_id.as_str(),
                        method = unspanned.method,
                        route = unspanned.route.as_deref(),
                    );
                }
            }
        }
    }
}

impl<F, O: RequestObserver> std::fmt::Debug for ResponseFuture<F, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, O, B, E> Future for ResponseFuture<F, O>
where
    F: Future<Output = Result<Response<B>, E>>,
    O: RequestObserver,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = ready!(this.future.poll(cx));
        let Ok(mut response) = result else {
            // Not a cancellation: the service's error goes to its caller.
            this.request_id.take();
            return Poll::Ready(result);
        };
        // One reading of the clock for the line and the observer.
        let elapsed = this.start.elapsed();
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        // The status and problem the client gets once the problem layer
        // outside has rendered the answer (a problem set inside another
        // status, a status beyond 599), so that the line and the metrics
        // say what was answered.
        let (status, problem) =
            opsready_problem::answered(response.status(), response.extensions().get::<Problem>());
        let status = status.as_u16();
        if let Some(observation) = this.observation.take() {
            // A streamed body is work in flight until it ends.
            match response.extensions().get::<BodyEnd>() {
                Some(end) => {
                    let start = *this.start;
                    end.on_end(move || O::finish(observation, status, start.elapsed()));
                }
                None => O::finish(observation, status, elapsed),
            }
        }
        // An error answer's problem code goes on its line, and for a 5xx
        // what the problem kept from the client (its detail, its cause, a
        // caught panic's message).
        let problem = problem.filter(|_| status >= 400);
        let code = problem.as_ref().map(|problem| problem.code().code());
        let error = problem
            .as_ref()
            .filter(|_| status >= 500)
            .and_then(|problem| problem.internal_report());
        let request_id = this.request_id.take();
        if let (Some(unspanned), Some(id)) = (this.unspanned.take(), &request_id) {
            if status >= 500 {
                tracing::error!(
                    target: REQUEST_TARGET,
                    status,
                    latency_ms,
                    code,
                    error = error.as_deref(),
                    request_id = id.to_str().unwrap_or_default(),
                    trace_id = unspanned.trace_id.to_hex().as_str(),
                    method = unspanned.method,
                    route = unspanned.route.as_deref(),
                    "request failed"
                );
            } else {
                // The span's level is filtered out but not the lines'
                // (`info,opsready::http=warn`): the lines still come.
                tracing::info!(
                    target: REQUEST_TARGET,
                    status,
                    latency_ms,
                    code,
                    request_id = id.to_str().unwrap_or_default(),
                    trace_id = unspanned.trace_id.to_hex().as_str(),
                    method = unspanned.method,
                    route = unspanned.route.as_deref(),
                    "request finished"
                );
            }
        }
        let headers = response.headers_mut();
        if let Some(id) = request_id {
            headers.insert(X_REQUEST_ID, id);
        }
        if let Some(traceparent) = this.traceparent.take() {
            headers.insert(TRACEPARENT, traceparent);
        }
        if let Some(tracestate) = this.tracestate.take() {
            headers.insert(TRACESTATE, tracestate.header().clone());
        }
        if let Some(line) = this.line.take() {
            // JSON logs and no span export: nothing reads the span's status.
            // The time of the line: when the request arrived, plus the time
            // it took (a clock step during the request is not seen).
            let at = this
                .arrived
                .map_or_else(SystemTime::now, |arrived| arrived + elapsed);
            line.write(Some(status), elapsed, at, (code, error.as_deref()));
        } else if !*this.quiet && !this.span.is_disabled() {
            // As a signed integer: OpenTelemetry has no unsigned one, and
            // an unsigned value would be exported as text.
            this.span
                .record("http.response.status_code", i64::from(status));
            #[cfg(feature = "otlp")]
            if status >= 500 {
                // What the HTTP conventions name a server error by; a span
                // that is not exported ignores it.
                crate::otlp::failed_with(this.span, status);
            }
            if status >= 500 {
                tracing::error!(
                    target: REQUEST_TARGET,
                    message = "request failed",
                    status,
                    latency_ms,
                    code,
                    error = error.as_deref()
                );
            } else {
                tracing::info!(
                    target: REQUEST_TARGET,
                    message = "request finished",
                    status,
                    latency_ms,
                    code
                );
            }
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_span_is_a_root_even_inside_another_span() {
        use std::sync::Mutex;

        use axum::Router;
        use axum::body::Body;
        use axum::routing::get;
        use tower::ServiceExt as _;
        use tracing_subscriber::registry::LookupSpan as _;

        let registry = Arc::new(tracing_subscriber::registry());
        let _default = tracing::subscriber::set_default(Arc::clone(&registry));
        // The handler's span and its parent, by name, looked up while the
        // request runs.
        let seen = Arc::new(Mutex::new(None));
        let app: Router = {
            let (seen, registry) = (Arc::clone(&seen), Arc::clone(&registry));
            Router::new()
                .route(
                    "/orders/{id}",
                    get(move || {
                        let id = Span::current().id().expect("the handler runs in a span");
                        let span = registry.span(&id).expect("the span is alive");
                        *seen.lock().unwrap() =
                            Some((span.name(), span.parent().map(|parent| parent.name())));
                        async { "order" }
                    }),
                )
                .layer(TelemetryLayer::new())
        };

        let server = tracing::info_span!("server", name = "accounts");
        let _entered = server.enter();
        let request = Request::get("/orders/7").body(Body::empty()).unwrap();
        app.oneshot(request).await.unwrap();

        assert_eq!(*seen.lock().unwrap(), Some(("request", None)));
    }

    /// A service that notes the name of the span current in its `call`.
    #[derive(Clone)]
    struct NoteSpan<S> {
        inner: S,
        registry: Arc<tracing_subscriber::Registry>,
        seen: Arc<std::sync::Mutex<Vec<&'static str>>>,
    }

    impl<S: Service<Request<axum::body::Body>>> Service<Request<axum::body::Body>> for NoteSpan<S> {
        type Response = S::Response;
        type Error = S::Error;
        type Future = S::Future;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, request: Request<axum::body::Body>) -> Self::Future {
            use tracing_subscriber::registry::LookupSpan as _;
            let name = Span::current()
                .id()
                .and_then(|id| self.registry.span(&id).map(|span| span.name()))
                .unwrap_or("none");
            self.seen.lock().unwrap().push(name);
            self.inner.call(request)
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_inner_service_that_starts_when_polled_still_runs_in_the_request_span() {
        use axum::Router;
        use axum::body::Body;
        use axum::routing::get;
        use tower::ServiceExt as _;

        let registry = Arc::new(tracing_subscriber::registry());
        let _default = tracing::subscriber::set_default(Arc::clone(&registry));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        // A route with a layer of the service's own, whose `call` runs when
        // the route is first polled, and a handler.
        let app: Router = {
            let (handler_seen, handler_registry) = (Arc::clone(&seen), Arc::clone(&registry));
            let (layer_seen, layer_registry) = (Arc::clone(&seen), Arc::clone(&registry));
            Router::new()
                .route(
                    "/orders/{id}",
                    get(move || {
                        use tracing_subscriber::registry::LookupSpan as _;
                        let id = Span::current().id().expect("the handler runs in a span");
                        let name = handler_registry.span(&id).unwrap().name();
                        handler_seen.lock().unwrap().push(name);
                        async { "order" }
                    }),
                )
                .layer(tower::layer::layer_fn(move |inner| NoteSpan {
                    inner,
                    registry: Arc::clone(&layer_registry),
                    seen: Arc::clone(&layer_seen),
                }))
                .layer(TelemetryLayer::new().inner_starts_when_polled(true))
        };

        let request = Request::get("/orders/7").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();

        assert_eq!(response.status(), 200);
        assert_eq!(*seen.lock().unwrap(), ["request", "request"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn with_spans_filtered_out_a_failed_request_still_logs_its_ids() {
        use axum::Router;
        use axum::body::Body;
        use axum::routing::get;
        use tower::ServiceExt as _;

        let lines = crate::captured::Captured::default();
        let mut settings = crate::TelemetrySettings::default();
        settings.log.format = Some(crate::LogFormat::Json);
        settings.log.level = "warn".to_owned();
        let writer = lines.clone();
        let subscriber = crate::subscriber(&settings, move || writer.clone()).unwrap();
        let _default = tracing::subscriber::set_default(subscriber);
        let app: Router = Router::new()
            .route(
                "/orders/{id}",
                get(|| async { http::StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .layer(TelemetryLayer::new());

        let request = Request::get("/orders/7")
            .header("x-request-id", "req-warn-level")
            .body(Body::empty())
            .unwrap();
        app.oneshot(request).await.unwrap();

        let text = lines.text();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["request_id"], "req-warn-level");
        assert_eq!(line["route"], "/orders/{id}");
        assert_eq!(line["method"], "GET");
        assert_eq!(line["status"], 500);
        assert_eq!(line["trace_id"].as_str().unwrap().len(), 32);
    }
}
