//! RED metrics for axum services: the duration of every request by method,
//! route template and status (rate and errors are its count), requests in
//! flight, `build_info`, process and Tokio runtime gauges and a
//! scheduling-lag probe, exposed in the Prometheus text format by a recorder
//! of the app's own.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use axum::{Router, body::Body, http::Request, routing::get};
//! use opsready_metrics::{Metrics, MetricsLayer};
//! use tower::ServiceExt as _;
//!
//! let metrics = Metrics::new();
//! let app: Router = Router::new()
//!     .route("/hello/{name}", get(|| async { "hi" }))
//!     .layer(MetricsLayer::new(metrics.clone()));
//!
//! for path in ["/hello/a", "/hello/b", "/nope"] {
//!     let request = Request::get(path).body(Body::empty()).unwrap();
//!     app.clone().oneshot(request).await.unwrap();
//! }
//!
//! let exposition = metrics.render();
//! assert!(exposition.contains(
//!     r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/hello/{name}",http_response_status_code="200"} 2"#
//! ));
//! assert!(exposition.contains(r#"http_route="unmatched""#));
//! # });
//! ```
//!
//! # Gotchas
//!
//! - Apply [`MetricsLayer`] with `Router::layer`, so that the route template
//!   (`MatchedPath`) is known. Every path that matches no route counts under
//!   `http_route="unmatched"`: a scan of random URLs adds one series.
//! - It records the status of the response it sees. With
//!   `opsready_problem::ProblemLayer`, layer it outside the problem layer
//!   (a later `.layer` call), so that it records the status the client
//!   gets: the problem layer may change it (a status beyond 599 answers
//!   500; a success status set around a problem gives way to the
//!   problem's).
//! - Each [`Metrics`] is its own recorder: nothing is global, so tests and
//!   several apps in one process never share series. Metrics recorded with
//!   the `metrics` crate's macros go to the global recorder, not here.
//! - Durations are histograms with explicit buckets ([`DEFAULT_BUCKETS`]),
//!   never summaries, so they aggregate across instances. A request's
//!   duration and its place in `http_server_active_requests` end with its
//!   response, or, when the body streams and the response carries an
//!   [`opsready_vocab::BodyEnd`] (opsready's guard puts one there), with
//!   the end of the body: its last frame handed to the server, an error,
//!   or the body dropped by a client that
//!   went away.
//! - A request is recorded when the inner service answers (its status) or
//!   is dropped unanswered: status 499 when the client gave up, 500 when a
//!   panic unwound through the layer (put a panic catcher inside it, such
//!   as `opsready_problem::GuardLayer::catch_panics`, so the client gets the
//!   500 too). An inner service's `Err` is not recorded: turn errors into
//!   responses inside the layer (axum's `HandleErrorLayer`).
//! - Two formats: the Prometheus text format 0.0.4 ([`Metrics::render`]) and
//!   OpenMetrics 1.0.0 with exemplars ([`Metrics::render_openmetrics`]);
//!   [`Format::negotiate`] picks one from a scrape's `Accept` header.
//!   Exemplars (a `trace_id` on each request-duration bucket) need
//!   [`MetricsLayer::exemplars`] and a tracing layer outside it.
//! - A `MetricsLayer` is also an `opsready_vocab::RequestObserver`: hand it
//!   to opsready's `TelemetryLayer::observe` instead of layering it, and the
//!   telemetry layer times the requests for both (what the `opsready`
//!   facade does).
//!
//! The [`catalog`] describes every metric; `docs/metrics.md` is rendered
//! from it.
//!
//! # Feature flags
//!
//! | feature | adds |
//! |---|---|
//! | `sqlx` | [`Metrics::watch_sqlx_pool`]: a sqlx pool's used, idle and maximum connections; [`PoolWait::acquire`]: a measured acquire |

pub mod catalog;
mod exposition;
mod layer;
mod system;

pub use exposition::Format;
pub use layer::{
    CANCELLED_STATUS, DEFAULT_BUCKETS, Measured, Metrics, MetricsFuture, MetricsLayer,
    MetricsService, TraceIdOf, UNMATCHED,
};
pub use system::{LAG_BUCKETS, LAG_PROBE_INTERVAL, PoolWait, WAIT_BUCKETS};
