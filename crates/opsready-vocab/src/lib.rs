//! The HTTP vocabulary opsready's crates share, kept in one place so that
//! telemetry, metrics and error reporting agree: which methods are named,
//! and which paths are too regular to trace, count or report.
//!
//! # Example
//!
//! ```
//! use http::Method;
//! use opsready_vocab::{is_quiet, method_name};
//!
//! assert_eq!(method_name(&Method::GET), "GET");
//! assert_eq!(method_name(&Method::from_bytes(b"BREW").unwrap()), "_OTHER");
//! assert!(is_quiet("/readyz/database"));
//! assert!(!is_quiet("/readyzz"));
//! ```
//!
//! [`Traceparent`] parses the W3C trace context header, for the layers that
//! continue a trace and those that only quote its id.
//!
//! [`RequestObserver`] lets one request layer tell another when a request
//! starts and ends, so that a stack measures each request once: opsready's
//! telemetry layer drives its metrics this way. [`BodyEnd`], in a
//! response's extensions, tells the layers outside when a streamed body
//! ends.
//!
//! [`answering_panics`] and [`panic_is_answered`] let a panic catcher tell
//! a panic hook that a panic becomes a reported answer, so that an error
//! tracker gets one event for it, not two.
//!
//! [`redact_secrets`] masks the credentials a message quotes (a URL's
//! password, `password=…`, a bearer token) before it reaches a log line, an
//! error tracker or a probe; [`is_sensitive_name`] says which names hold
//! credentials, for settings dumps and the same masking.
//!
//! # Feature flags
//!
//! This crate has no optional features.

use std::cell::Cell;
use std::time::Duration;

use http::{Extensions, Method, Request};

mod redact;

thread_local! {
    /// How many [`answering_panics`] calls this thread is inside.
    static ANSWERING: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`, from inside a `catch_unwind` whose panic becomes an answer
/// that is reported in its own right (a request's 500 problem, which the
/// error tracker sends with the request's details), marked as such for a
/// panic hook: [`panic_is_answered`] says so while `f` runs, so that a hook
/// reporting panics leaves this one to the answer instead of reporting it
/// twice. opsready's panic catcher marks every poll of a handler's future.
pub fn answering_panics<R>(f: impl FnOnce() -> R) -> R {
    /// Counts the call out however it ends, unwinding included.
    struct Inside;
    impl Drop for Inside {
        fn drop(&mut self) {
            ANSWERING.set(ANSWERING.get().saturating_sub(1));
        }
    }
    ANSWERING.set(ANSWERING.get().saturating_add(1));
    let _inside = Inside;
    f()
}

/// Whether a panic on this thread now happens inside [`answering_panics`]:
/// for a panic hook, whether the panic will be answered and reported as a
/// request's failure.
pub fn panic_is_answered() -> bool {
    ANSWERING.get() > 0
}

pub use redact::{REDACTED, is_sensitive_name, redact_secrets, redact_secrets_in};

/// Paths of probes and of the metrics scrape: many, regular, and saying
/// nothing a dashboard does not, so not traced, logged, counted or sent to
/// error tracking unless asked.
pub const QUIET_PATHS: [&str; 4] = ["/livez", "/readyz", "/startupz", "/metrics"];

/// Whether `path` is one of [`QUIET_PATHS`], or the probe of one check
/// (`/readyz/{check}`). A service's own routes below them
/// (`/metrics/dashboards`) are not quiet: they are traced, counted and
/// given the timeout like any other.
///
/// ```
/// use opsready_vocab::is_quiet;
///
/// assert!(is_quiet("/metrics"));
/// assert!(is_quiet("/readyz/database"));
/// assert!(!is_quiet("/metrics/dashboards/7"));
/// assert!(!is_quiet("/readyz/database/extra"));
/// ```
pub fn is_quiet(path: &str) -> bool {
    match path {
        "/livez" | "/readyz" | "/startupz" | "/metrics" => true,
        _ => path
            .strip_prefix("/readyz/")
            .is_some_and(|check| !check.is_empty() && !check.contains('/')),
    }
}

/// The method as OpenTelemetry names it: known methods as they are, any
/// other as `_OTHER`, so a client cannot invent span names or series.
pub fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// What a [`RequestObserver`] learns of a request when it starts.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ObservedRequest<'a> {
    /// The request's method.
    pub method: &'a Method,
    /// The request's path, without the query.
    pub path: &'a str,
    /// The route template the path matched (`/hello/{name}`); `None` when it
    /// matched no route.
    pub route: Option<&'a str>,
    /// The request's extensions, as the layers outside left them.
    pub extensions: &'a Extensions,
}

impl<'a> ObservedRequest<'a> {
    /// `request`, matching `route`: its method, path and extensions.
    pub fn of<B>(request: &'a Request<B>, route: Option<&'a str>) -> Self {
        Self::new(
            request.method(),
            request.uri().path(),
            route,
            request.extensions(),
        )
    }

    /// A request of this method and path, matching `route`.
    pub fn new(
        method: &'a Method,
        path: &'a str,
        route: Option<&'a str>,
        extensions: &'a Extensions,
    ) -> Self {
        Self {
            method,
            path,
            route,
            extensions,
        }
    }
}

/// Watches requests on behalf of a layer that serves them: told when each
/// starts and, with its status and duration, when it ends. A layer that
/// takes an observer (opsready's `TelemetryLayer::observe`) spares the
/// stack a layer of its own, and a second reading of the clock.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
///
/// use opsready_vocab::{ObservedRequest, RequestObserver};
///
/// /// Counts the requests that ended with a 5xx.
/// #[derive(Clone, Default)]
/// struct Failures(Arc<AtomicU64>);
///
/// impl RequestObserver for Failures {
///     type Observation = Arc<AtomicU64>;
///
///     fn start(&self, _request: &ObservedRequest<'_>) -> Option<Self::Observation> {
///         Some(Arc::clone(&self.0))
///     }
///
///     fn finish(failures: Self::Observation, status: u16, _elapsed: Duration) {
///         if status >= 500 {
///             failures.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
///
/// let failures = Failures::default();
/// let method = http::Method::GET;
/// let extensions = http::Extensions::new();
/// let request = ObservedRequest::new(&method, "/orders/7", Some("/orders/{id}"), &extensions);
/// let observation = failures.start(&request).unwrap();
/// Failures::finish(observation, 503, Duration::from_millis(3));
/// assert_eq!(failures.0.load(Ordering::Relaxed), 1);
/// ```
pub trait RequestObserver: Clone + Send + Sync + 'static {
    /// What the observer keeps from a request's start to its end. When the
    /// request is dropped unanswered (the client went away), it goes to
    /// [`cancel`](Self::cancel) instead of [`finish`](Self::finish).
    type Observation: Send + 'static;

    /// A request starts; `None` when the observer does not watch it.
    fn start(&self, request: &ObservedRequest<'_>) -> Option<Self::Observation>;

    /// The request's response is ready: its status, and the time since
    /// the request started. For a streamed body whose response carries a
    /// [`BodyEnd`], opsready's telemetry layer calls it when the body
    /// ends instead, with the time until then.
    fn finish(observation: Self::Observation, status: u16, elapsed: Duration);

    /// The request was dropped unanswered after `elapsed` (the client went
    /// away, a deadline passed): the slowest requests of an incident often
    /// end this way. By default the observation is only dropped.
    fn cancel(observation: Self::Observation, elapsed: Duration) {
        let _ = elapsed;
        drop(observation);
    }
}

/// Put in a response's extensions by the layer that wraps a streamed body
/// (one whose length is not known up front: a download, a stream of
/// events), so that the layers outside, which see only the response's
/// head, learn when the body ends: its last frame handed to the server,
/// an error, or dropped because the client went away. opsready's guard
/// puts it there; its telemetry and
/// metrics layers then count a streaming request as active, and time it,
/// until its body ends instead of until its head is ready.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use opsready_vocab::BodyEnd;
///
/// let end = BodyEnd::new();
/// let ended = Arc::new(AtomicBool::new(false));
/// let seen = Arc::clone(&ended);
/// end.on_end(move || seen.store(true, Ordering::SeqCst));
/// assert!(!ended.load(Ordering::SeqCst));
/// end.end(); // the body's wrapper, at its last frame or when dropped
/// assert!(ended.load(Ordering::SeqCst));
/// ```
#[derive(Clone, Default)]
pub struct BodyEnd {
    state: std::sync::Arc<std::sync::Mutex<EndState>>,
}

#[derive(Default)]
struct EndState {
    ended: bool,
    hooks: Vec<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for BodyEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyEnd")
            .field("ended", &self.lock().ended)
            .finish_non_exhaustive()
    }
}

impl BodyEnd {
    /// A body that has not ended yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `hook` when the body ends, or at once if it has.
    pub fn on_end(&self, hook: impl FnOnce() + Send + 'static) {
        let mut state = self.lock();
        if state.ended {
            drop(state);
            hook();
        } else {
            state.hooks.push(Box::new(hook));
        }
    }

    /// The body has ended: runs the hooks, in the order they came, once.
    /// Later calls do nothing.
    pub fn end(&self) {
        let hooks = {
            let mut state = self.lock();
            state.ended = true;
            std::mem::take(&mut state.hooks)
        };
        for hook in hooks {
            hook();
        }
    }

    /// Whether the body has ended.
    #[must_use]
    pub fn has_ended(&self) -> bool {
        self.lock().ended
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EndState> {
        // A hook runs outside the lock; nothing can leave it half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// No observer.
impl RequestObserver for () {
    type Observation = ();

    fn start(&self, _request: &ObservedRequest<'_>) -> Option<Self::Observation> {
        None
    }

    fn finish(_observation: Self::Observation, _status: u16, _elapsed: Duration) {}
}

/// The fields of a valid W3C `traceparent` header
/// (`{version}-{trace-id}-{parent-id}-{flags}`).
///
/// ```
/// use opsready_vocab::Traceparent;
///
/// let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let parsed = Traceparent::parse(header).unwrap();
/// assert_eq!(parsed.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(parsed.parent_id, "00f067aa0ba902b7");
/// assert!(parsed.sampled);
/// // Uppercase hex, all-zero ids, version `ff`: not a trace context.
/// assert!(Traceparent::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Traceparent<'a> {
    /// The trace id: 32 lowercase hex digits, not all zeros.
    pub trace_id: &'a str,
    /// The caller's span id: 16 lowercase hex digits, not all zeros.
    pub parent_id: &'a str,
    /// Whether the caller records the trace (bit 0 of the flags).
    pub sampled: bool,
}

impl<'a> Traceparent<'a> {
    /// The fields of `value`, or `None` when it is not a valid
    /// `traceparent`. Versions after `00` may append fields, which are
    /// ignored; version `00` has exactly four.
    pub fn parse(value: &'a str) -> Option<Self> {
        let mut fields = value.trim().split('-');
        let version = fields.next()?;
        let trace_id = fields.next()?;
        let parent_id = fields.next()?;
        let flags = fields.next()?;
        let valid = is_lower_hex(version, 2)
            && version != "ff"
            && (version != "00" || fields.next().is_none())
            && is_lower_hex(trace_id, 32)
            && !is_all_zeros(trace_id)
            && is_lower_hex(parent_id, 16)
            && !is_all_zeros(parent_id)
            && is_lower_hex(flags, 2);
        if !valid {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            parent_id,
            sampled: flags & 1 == 1,
        })
    }
}

fn is_lower_hex(field: &str, len: usize) -> bool {
    field.len() == len
        && field
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_all_zeros(field: &str) -> bool {
    field.bytes().all(|b| b == b'0')
}

#[cfg(test)]
mod tests {
    use super::{QUIET_PATHS, Traceparent, is_quiet};

    #[test]
    fn only_the_probes_and_the_scrape_are_quiet_not_routes_below_them() {
        for path in QUIET_PATHS {
            assert!(is_quiet(path), "{path}");
        }
        assert!(is_quiet("/readyz/db"));
        for path in [
            "/metrics/dashboards/7",
            "/livez/extra",
            "/startupz/x",
            "/readyz/",
            "/readyz/db/x",
            "/readyzz",
            "/metricsx",
            "/",
            "",
        ] {
            assert!(!is_quiet(path), "{path}");
        }
    }

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn trace_id(value: &str) -> Option<&str> {
        Traceparent::parse(value).map(|parsed| parsed.trace_id)
    }

    #[test]
    fn a_valid_traceparent_yields_its_fields() {
        assert_eq!(
            Traceparent::parse(VALID),
            Some(Traceparent {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
                parent_id: "00f067aa0ba902b7",
                sampled: true,
            })
        );
        let unsampled = VALID.replace("-01", "-00");
        assert!(!Traceparent::parse(&unsampled).unwrap().sampled);
        assert!(Traceparent::parse(&format!("  {VALID} ")).is_some());
    }

    #[test]
    fn all_zero_ids_uppercase_and_short_fields_are_rejected() {
        for value in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        ] {
            assert_eq!(trace_id(value), None, "{value}");
        }
    }

    #[test]
    fn version_ff_is_rejected() {
        let value = "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(value), None);
    }

    #[test]
    fn version_00_with_extra_fields_is_rejected_but_a_later_version_is_accepted() {
        let extra = "-what-ever";
        assert_eq!(trace_id(&format!("{VALID}{extra}")), None);
        let future = format!("01{}{extra}", &VALID[2..]);
        assert_eq!(trace_id(&future), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    }

    #[test]
    fn garbage_is_not_a_traceparent() {
        assert_eq!(trace_id(""), None);
        assert_eq!(trace_id("hello"), None);
        assert_eq!(trace_id("00-x-y-z"), None);
    }
}
