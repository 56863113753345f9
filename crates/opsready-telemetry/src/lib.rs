//! Request tracing for axum services: request ids, W3C trace context, one
//! span and one log line per request, JSON or pretty logs, and blocking work
//! kept off the async workers.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use axum::{Router, body::Body, http::Request, routing::get};
//! use opsready_telemetry::TelemetryLayer;
//! use tower::ServiceExt as _;
//!
//! let app: Router = Router::new()
//!     .route("/hello/{name}", get(|| async { "hi" }))
//!     .layer(TelemetryLayer::new());
//!
//! let request = Request::get("/hello/ops")
//!     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
//!     .body(Body::empty())
//!     .unwrap();
//! let response = app.oneshot(request).await.unwrap();
//!
//! // The trace continues, with this service's span as the new parent.
//! let traceparent = response.headers()["traceparent"].to_str().unwrap();
//! assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
//! assert_ne!(&traceparent[36..52], "00f067aa0ba902b7");
//! // A request id was made: a UUIDv7.
//! assert_eq!(response.headers()["x-request-id"].len(), 36);
//! # });
//! ```
//!
//! Install the log subscriber once per process with [`init`] (the `opsready`
//! facade does it from the `telemetry` settings); [`subscriber`] builds the
//! same subscriber with another writer, for tests.
//!
//! # What is logged
//!
//! - One line per finished request (`request finished`, or `request failed`
//!   at error level for a 5xx) with `status` and `latency_ms`.
//! - In JSON mode every line is one object with `timestamp`, `level`,
//!   `target`, `message`, the event's fields and, inside a request,
//!   `request_id`, `trace_id`, `span_id`, `method` and `route`.
//! - Probes and `/metrics` are neither traced nor logged unless
//!   `telemetry.trace_probes` is set.
//!
//! # What is never logged
//!
//! Header values (so `Authorization`, `Cookie`, `Set-Cookie`,
//! `Proxy-Authorization`, API keys) and query strings. The span records the
//! method, the route template, the path and the status only.
//!
//! # Not yet
//!
//! OTLP export of the spans and Sentry events are not part of this version;
//! the settings keys for them do not exist yet, so configuring them is an
//! unknown-key error rather than a silently inactive exporter.
//!
//! # Feature flags
//!
//! This crate has no optional features yet.

mod blocking;
mod context;
mod layer;
mod settings;
mod subscriber;

pub use blocking::{Blocking, BlockingError};
pub use context::{
    MAX_REQUEST_ID_LEN, SpanId, TraceContext, TraceId, is_sane_request_id, new_request_id,
};
pub use layer::{
    REQUEST_TARGET, ResponseFuture, TRACEPARENT, TRACESTATE, Telemetry, TelemetryLayer,
    X_REQUEST_ID,
};
pub use settings::{BlockingSettings, LogFormat, LogSettings, TelemetrySettings};
pub use subscriber::{TelemetryError, init, subscriber};
