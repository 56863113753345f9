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
//! # Exporting spans (feature `otlp`)
//!
//! With `telemetry.otlp.endpoint` set, [`init`] also exports the spans to an
//! OpenTelemetry collector over gRPC or HTTP/protobuf, in batches, over TLS
//! for an `https://` endpoint (with the authorities of
//! `telemetry.otlp.ca_file` besides the system's) and with the headers of
//! `telemetry.otlp.headers`; with `telemetry.otlp.logs`, the log events
//! too, as OTLP log records in their span's trace. The
//! exported request span continues the caller's `traceparent`, and its span
//! id is the one in the response's `traceparent` and in the log lines. Keep
//! the returned [`TelemetryGuard`] and shut it down once the server has
//! stopped, so that no span is lost at exit:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use opsready_telemetry::{OtlpProtocol, ServiceInfo, TelemetrySettings};
//!
//! let mut settings = TelemetrySettings::default();
//! settings.otlp.endpoint = Some("http://localhost:4317".to_owned());
//! settings.otlp.protocol = OtlpProtocol::Grpc;
//! let service = ServiceInfo::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
//! // Inside the Tokio runtime: the gRPC exporter needs it.
//! let telemetry = opsready_telemetry::init(&settings, &service)?;
//!
//! // ... serve until a shutdown signal, then:
//! tokio::task::spawn_blocking(move || telemetry.shutdown()).await??;
//! # Ok(())
//! # }
//! ```
//!
//! An endpoint that cannot be exported to (not an `http://` or `https://`
//! URL with a host, or a build without the feature) is an error from
//! [`init`] and from the settings' validation, never a silently inactive
//! exporter.
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
//! - A request the client gave up on gets `request cancelled`, without a
//!   status; one whose handler panicked with no panic catcher inside the
//!   layer, `request failed` with status 500. An inner service's `Err`
//!   (axum's routes have none) goes to the caller with no line and no
//!   observer record: turn errors into responses inside the layer (axum's
//!   `HandleErrorLayer`).
//!
//! # What is never logged
//!
//! Credential-bearing headers (`Authorization`, `Cookie`, `Set-Cookie`,
//! `Proxy-Authorization`, API keys) and query strings. Log lines record no
//! header value at all; the span records the method, the route template,
//! the path and the status, and, only when exported (feature `otlp`),
//! `User-Agent`, `Host` and the proxy headers, as the HTTP conventions ask.
//!
//! # Sentry (feature `sentry`)
//!
//! [`init_sentry`] starts the client from `telemetry.sentry.*`, and
//! [`SentryLayer`] sends one event per 5xx answer (caught panics included;
//! probes, `Exempt` answers and shed load excepted). Without the feature a
//! configured DSN is a settings error, never a silently inactive client.
//!
//! # Feature flags
//!
//! | feature | adds |
//! |---|---|
//! | `otlp` | OTLP export of the spans over gRPC or HTTP/protobuf, plain or TLS (`telemetry.otlp.*`) |
//! | `sentry` | Sentry events for 5xx answers and panics ([`SentryLayer`], `telemetry.sentry.*`) |

mod blocking;
#[cfg(test)]
mod captured;
mod context;
mod layer;
#[cfg(feature = "otlp")]
mod otlp;
mod panics;
#[cfg(feature = "sentry")]
mod sentry_events;
mod settings;
mod subscriber;
mod writer;

pub use blocking::{Blocking, BlockingError};
pub use context::{
    MAX_REQUEST_ID_LEN, SpanId, TraceContext, TraceId, TraceState, is_sane_request_id,
    new_request_id,
};
pub use layer::{
    REQUEST_SPAN_TARGET, REQUEST_TARGET, ResponseFuture, TRACEPARENT, TRACESTATE, Telemetry,
    TelemetryLayer, X_REQUEST_ID,
};
#[cfg(feature = "sentry")]
pub use sentry_events::{
    SentryFuture, SentryGuard, SentryLayer, SentryService, init_sentry, sentry_started,
};
pub use settings::{
    BlockingSettings, LogFormat, LogSettings, OtlpCompression, OtlpProtocol, OtlpSettings,
    SentrySettings, TelemetrySettings,
};
pub use subscriber::{ServiceInfo, TelemetryError, TelemetryGuard, flush_logs, init, subscriber};
pub use writer::{BatchGuard, BatchWriter};
