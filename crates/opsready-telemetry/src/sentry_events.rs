//! Sentry: one event for every 5xx answer (a caught panic is a 500 problem,
//! so panics are included), with the request id as a tag, the trace context,
//! the route as transaction and the release; and one for every panic that
//! no request answers (a background task's, a blocking job's), sent by the
//! panic hook. 4xx answers are the client's
//! and send nothing; nor do probes, deliberate `Exempt` answers and shed
//! load (503 `OVERLOADED`).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use axum::extract::MatchedPath;
use http::{Request, Response};
use opsready_problem::layer::Exempt;
use opsready_problem::{Problem, codes};
use pin_project_lite::pin_project;
use sentry::protocol::{self, Event, Exception, Level};
use tower::{Layer, Service};

use crate::context::TraceContext;
use opsready_vocab::{
    REDACTED, is_quiet, is_sensitive_name, method_name, redact_secrets, redact_secrets_in,
};

use crate::layer::X_REQUEST_ID;
use crate::settings::SentrySettings;
use crate::subscriber::TelemetryError;

/// Keeps the Sentry client alive; events still queued when it drops are sent
/// first (for up to two seconds).
#[must_use = "dropping the guard shuts the Sentry client down"]
pub struct SentryGuard {
    _client: sentry::ClientInitGuard,
}

impl std::fmt::Debug for SentryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentryGuard").finish_non_exhaustive()
    }
}

/// Starts the Sentry client of `settings`, if a DSN is set.
///
/// `release` names the build (`name@version+gitsha`); `environment` is used
/// when `telemetry.sentry.environment` is unset.
///
/// # Errors
///
/// When the DSN does not parse or the client does not start: a configured
/// Sentry that silently sends nothing is worse than none.
pub fn init_sentry(
    settings: &SentrySettings,
    release: &str,
    environment: &str,
) -> Result<Option<SentryGuard>, TelemetryError> {
    let Some(dsn) = &settings.dsn else {
        return Ok(None);
    };
    // The DSN holds a key: the error names the setting, never the value.
    let dsn: sentry::types::Dsn = dsn.expose_secret().parse().map_err(|_| {
        TelemetryError::new(
            "telemetry.sentry.dsn is not a Sentry DSN (expected https://KEY@HOST/PROJECT)",
        )
    })?;
    let environment = settings
        .environment
        .clone()
        .unwrap_or_else(|| environment.to_owned());
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(dsn);
    options.release = Some(Cow::Owned(release.to_owned()));
    options.environment = Some(Cow::Owned(environment));
    // Never user data (IP addresses, cookies) in events.
    options.send_default_pii = false;
    // Nor credentials, in the events the service captures itself too.
    options.before_send = Some(Arc::new(|event| Some(masked_event(event))));
    let guard = sentry::init(options);
    STARTED.store(true, Ordering::Relaxed);
    // Panics outside requests (a background task, a blocking job, start-up
    // code) have no 500 to be reported by: the panic hook sends them.
    crate::panics::ensure_hook();
    if !guard.is_enabled() {
        return Err(TelemetryError::new(
            "the Sentry client did not start although telemetry.sentry.dsn is set",
        ));
    }
    Ok(Some(SentryGuard { _client: guard }))
}

/// `event` with the credentials its texts quote masked
/// ([`opsready_vocab::redact_secrets`]): the message and its parameters,
/// the exceptions' values, the breadcrumbs' messages and data, tags, extra
/// data, contexts and the request (its URL, query, headers, body and
/// environment; its cookies whole); a tag, header or field of data named
/// like a credential, whole. The events of [`SentryLayer`] are masked
/// already; this catches what a service captures itself
/// (`sentry::capture_error`, `scope.set_context`, a request it attaches).
fn masked_event(mut event: Event<'static>) -> Event<'static> {
    if let Some(message) = &mut event.message {
        redact_secrets_in(message);
    }
    if let Some(entry) = &mut event.logentry {
        redact_secrets_in(&mut entry.message);
        entry.params.iter_mut().for_each(mask_json);
    }
    for exception in &mut event.exception.values {
        if let Some(value) = &mut exception.value {
            redact_secrets_in(value);
        }
    }
    for breadcrumb in &mut event.breadcrumbs.values {
        if let Some(message) = &mut breadcrumb.message {
            redact_secrets_in(message);
        }
        mask_json_fields(&mut breadcrumb.data);
    }
    mask_text_fields(&mut event.tags);
    mask_json_fields(&mut event.extra);
    event.contexts.values_mut().for_each(mask_context);
    if let Some(request) = &mut event.request {
        mask_request(request);
    }
    event
}

/// Masks a context: a service's own (`Context::Other`) as JSON fields, the
/// typed ones' extra fields, an OpenTelemetry context's attributes and
/// resource and a trace's data likewise, a response's
/// cookies and headers as a request's.
fn mask_context(context: &mut protocol::Context) {
    use protocol::Context as C;
    let other = match context {
        C::Other(fields) => fields,
        C::Device(c) => &mut c.other,
        C::Os(c) => &mut c.other,
        C::Runtime(c) => &mut c.other,
        C::App(c) => &mut c.other,
        C::Browser(c) => &mut c.other,
        C::Trace(c) => {
            if let Some(description) = &mut c.description {
                redact_secrets_in(description);
            }
            &mut c.data
        }
        C::Gpu(c) => &mut c.other,
        C::Otel(c) => {
            mask_json_fields(c.attributes.iter_mut());
            mask_json_fields(c.resource.iter_mut());
            &mut c.other
        }
        C::Response(c) => {
            mask_cookies(&mut c.cookies);
            mask_text_fields(&mut c.headers);
            if let Some(data) = &mut c.data {
                mask_json(data);
            }
            return;
        }
        // A context this version of the protocol does not name: nothing to
        // reach into.
        _ => return,
    };
    mask_json_fields(other.iter_mut());
}

/// Masks what a request quotes: the password, token user and credential
/// parameters of its URL and query, its headers and environment as tags
/// are, its body's text, and its cookies whole (they are sessions).
fn mask_request(request: &mut protocol::Request) {
    if let Some(url) = &mut request.url {
        let masked = redact_secrets(url.as_str());
        if let Cow::Owned(masked) = masked {
            // A URL that no longer parses once masked is dropped rather
            // than sent with its credential.
            request.url = protocol::Url::parse(&masked).ok();
        }
    }
    if let Some(query) = &mut request.query_string {
        redact_secrets_in(query);
    }
    if let Some(data) = &mut request.data {
        redact_secrets_in(data);
    }
    mask_cookies(&mut request.cookies);
    mask_text_fields(&mut request.headers);
    mask_text_fields(&mut request.env);
}

fn mask_cookies(cookies: &mut Option<String>) {
    if let Some(cookies) = cookies.as_mut().filter(|cookies| !cookies.is_empty()) {
        REDACTED.clone_into(cookies);
    }
}

/// Masks text fields as tags are: those named like a credential (or a
/// cookie header) whole, the others' quoted credentials.
fn mask_text_fields(fields: &mut protocol::Map<String, String>) {
    for (name, value) in fields {
        if is_sensitive_name(name)
            || name.eq_ignore_ascii_case("cookie")
            || name.eq_ignore_ascii_case("set-cookie")
        {
            REDACTED.clone_into(value);
        } else {
            redact_secrets_in(value);
        }
    }
}

/// Masks the fields of a JSON object: those named like a credential whole
/// when they are text, the others as [`mask_json`] does.
fn mask_json_fields<'a>(fields: impl IntoIterator<Item = (&'a String, &'a mut protocol::Value)>) {
    for (name, value) in fields {
        if value.is_string() && is_sensitive_name(name) {
            *value = REDACTED.into();
        } else {
            mask_json(value);
        }
    }
}

/// Masks the credentials that the text in a JSON value quotes, at any depth.
fn mask_json(value: &mut protocol::Value) {
    match value {
        protocol::Value::String(text) => {
            redact_secrets_in(text);
        }
        protocol::Value::Array(items) => items.iter_mut().for_each(mask_json),
        protocol::Value::Object(fields) => mask_json_fields(fields.iter_mut()),
        _ => {}
    }
}

/// Whether [`init_sentry`] ever started a client in this process: until it
/// has, [`SentryLayer`] costs a load of this flag per request.
static STARTED: AtomicBool = AtomicBool::new(false);

/// Whether [`init_sentry`] has started a client in this process: a stack
/// built before that has nothing to send with, and may leave
/// [`SentryLayer`] out.
pub fn sentry_started() -> bool {
    STARTED.load(Ordering::Relaxed)
}

/// Sends a Sentry event for every 5xx answer. Put it inside the telemetry
/// layer (it reads the trace context that layer leaves on the request) and
/// outside the panic catcher (so caught panics are seen as the 500s they
/// become). It sends through the client [`init_sentry`] started; until then
/// (or with a client started otherwise) it does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct SentryLayer;

impl<S> Layer<S> for SentryLayer {
    type Service = SentryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SentryService { inner }
    }
}

/// The service of [`SentryLayer`].
#[derive(Debug, Clone)]
pub struct SentryService<S> {
    inner: S,
}

/// What an event needs to know of its request.
struct RequestInfo {
    method: &'static str,
    route: Option<String>,
    path: String,
    request_id: Option<String>,
    context: Option<TraceContext>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SentryService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = SentryFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Only gathered when a client exists: without one this layer costs
        // a check per request.
        // Probes answer 503 by design while starting and draining: one event
        // per probe would bury the real ones.
        // `with_active` borrows the thread's hub: no reference count moves.
        let wanted = STARTED.load(Ordering::Relaxed)
            && !is_quiet(request.uri().path())
            && sentry::Hub::with_active(|_| true);
        // Boxed: only with a client, and the future stays small without.
        let info = wanted.then(|| {
            Box::new(RequestInfo {
                method: method_name(request.method()),
                route: request
                    .extensions()
                    .get::<MatchedPath>()
                    .map(|p| p.as_str().to_owned()),
                path: request.uri().path().to_owned(),
                request_id: request
                    .headers()
                    .get(X_REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                context: request.extensions().get::<TraceContext>().copied(),
            })
        });
        SentryFuture {
            future: self.inner.call(request),
            info,
        }
    }
}

pin_project! {
    /// The response future of [`SentryService`].
    pub struct SentryFuture<F> {
        #[pin]
        future: F,
        info: Option<Box<RequestInfo>>,
    }
}

impl<F> std::fmt::Debug for SentryFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentryFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for SentryFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        if let (Ok(response), Some(info)) = (&result, this.info.take())
            && worth_an_event(response)
        {
            sentry::capture_event(event(&info, response));
        }
        Poll::Ready(result)
    }
}

/// Sends an event for a panic, from the panic hook, unless a request's
/// answer reports it ([`opsready_vocab::panic_is_answered`]: the panic
/// catcher makes it a 500, which [`SentryLayer`] sends with the request's
/// details). The event is unhandled (mechanism `panic`), with the panic's
/// location and thread as tags. When the panic most likely ends the
/// process (built with `panic = "abort"`, or on the main thread outside
/// any Tokio task: `main` itself and the future `#[tokio::main]` runs) it
/// is at level fatal, else at level error: a task's panic, which its
/// runtime catches, leaves the process serving, also on a current-thread
/// runtime's main thread. Only with `panic = "abort"`
/// does the hook wait (up to 2 s) for the event to leave: an unwinding
/// panic that ends `main` drops the Sentry guard on its way, which
/// flushes, and a runtime worker is not held while the event leaves.
pub(crate) fn report_panic(info: &std::panic::PanicHookInfo<'_>) {
    if !sentry_started() || opsready_vocab::panic_is_answered() {
        return;
    }
    let thread = std::thread::current();
    // `main`'s own code, or the future `#[tokio::main]` blocks on (not a
    // task: the runtime does not catch its panic).
    let ends_the_process =
        cfg!(panic = "abort") || (thread.name() == Some("main") && tokio::task::try_id().is_none());
    let message = crate::panics::message_of(info).to_owned();
    let mut event = Event {
        level: if ends_the_process {
            Level::Fatal
        } else {
            Level::Error
        },
        message: Some(format!("panicked: {message}")),
        exception: vec![Exception {
            ty: "panic".to_owned(),
            value: Some(message),
            mechanism: Some(protocol::Mechanism {
                ty: "panic".to_owned(),
                handled: Some(false),
                ..protocol::Mechanism::default()
            }),
            ..Exception::default()
        }]
        .into(),
        ..Event::default()
    };
    if let Some(location) = crate::panics::location_of(info) {
        event.tags.insert("panic.location".to_owned(), location);
    }
    event.tags.insert(
        "thread.name".to_owned(),
        thread.name().unwrap_or("unnamed").to_owned(),
    );
    // Masked on its way out, as every event is (`before_send`).
    sentry::capture_event(event);
    if cfg!(panic = "abort")
        && let Some(client) = sentry::Hub::current().client()
    {
        client.flush(Some(std::time::Duration::from_secs(2)));
    }
}

/// Whether an answer is a failure worth an event: a 5xx that is not a
/// deliberate answer in a format of its own (`Exempt`) nor load being shed,
/// which is saturation for metrics and alerts, not an error to triage one
/// request at a time (and events then would spend the quota when it hurts).
fn worth_an_event<B>(response: &Response<B>) -> bool {
    // As the problem layer outside will answer it.
    let (status, problem) =
        opsready_problem::answered(response.status(), response.extensions().get::<Problem>());
    status.is_server_error()
        && response.extensions().get::<Exempt>().is_none()
        && problem.is_none_or(|p| p.code() != codes::OVERLOADED)
}

/// The event of one 5xx answer.
fn event<B>(info: &RequestInfo, response: &Response<B>) -> Event<'static> {
    let (status, problem) =
        opsready_problem::answered(response.status(), response.extensions().get::<Problem>());
    let (code, what) = match problem {
        Some(problem) => (
            problem.code().code().to_owned(),
            problem
                .internal_report()
                .unwrap_or_else(|| problem.code().title().to_owned()),
        ),
        None => (
            format!("HTTP_{}", status.as_u16()),
            format!("the service answered {status}"),
        ),
    };
    let transaction = match &info.route {
        Some(route) => format!("{} {route}", info.method),
        None => info.method.to_owned(),
    };
    let mut event = Event {
        level: Level::Error,
        message: Some(format!(
            "{transaction} answered {}: {what}",
            status.as_u16()
        )),
        transaction: Some(transaction),
        exception: vec![Exception {
            ty: code,
            value: Some(what),
            ..Exception::default()
        }]
        .into(),
        request: Some(protocol::Request {
            method: Some(info.method.to_owned()),
            ..protocol::Request::default()
        }),
        ..Event::default()
    };
    let tags = &mut event.tags;
    if let Some(request_id) = &info.request_id {
        tags.insert("request_id".to_owned(), request_id.clone());
    }
    tags.insert("http.method".to_owned(), info.method.to_owned());
    tags.insert(
        "http.route".to_owned(),
        info.route.clone().unwrap_or_else(|| "unmatched".to_owned()),
    );
    tags.insert("http.status_code".to_owned(), status.as_u16().to_string());
    tags.insert("url.path".to_owned(), info.path.clone());
    if let Some(context) = info.context {
        event.contexts.insert(
            "trace".to_owned(),
            protocol::TraceContext {
                trace_id: context.trace_id.to_u128().to_be_bytes().into(),
                span_id: context.span_id.to_u64().to_be_bytes().into(),
                parent_span_id: context.parent_id.map(|id| id.to_u64().to_be_bytes().into()),
                op: Some("http.server".to_owned()),
                status: Some(protocol::SpanStatus::InternalError),
                ..protocol::TraceContext::default()
            }
            .into(),
        );
    }
    event
}
