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
//! [`RequestObserver`] lets one request layer tell another when a request
//! starts and ends, so that a stack measures each request once: opsready's
//! telemetry layer drives its metrics this way.
//!
//! # Feature flags
//!
//! This crate has no optional features.

use std::time::Duration;

use http::{Extensions, Method};

/// Paths of probes and of the metrics scrape: many, regular, and saying
/// nothing a dashboard does not, so not traced, logged, counted or sent to
/// error tracking unless asked.
pub const QUIET_PATHS: [&str; 4] = ["/livez", "/readyz", "/startupz", "/metrics"];

/// Whether `path` is one of [`QUIET_PATHS`] or below one.
pub fn is_quiet(path: &str) -> bool {
    QUIET_PATHS.iter().any(|quiet| {
        path.strip_prefix(quiet)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
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
    /// request is dropped unanswered (the client went away), it is dropped
    /// without [`finish`](Self::finish).
    type Observation: Send + 'static;

    /// A request starts; `None` when the observer does not watch it.
    fn start(&self, request: &ObservedRequest<'_>) -> Option<Self::Observation>;

    /// The request's response is ready: its status, and the time since
    /// the request started.
    fn finish(observation: Self::Observation, status: u16, elapsed: Duration);
}

/// No observer.
impl RequestObserver for () {
    type Observation = ();

    fn start(&self, _request: &ObservedRequest<'_>) -> Option<Self::Observation> {
        None
    }

    fn finish(_observation: Self::Observation, _status: u16, _elapsed: Duration) {}
}
