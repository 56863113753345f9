//! [`bare::app`] behind the kind of stack a team assembles by hand from the
//! usual crates, the issue's reference point for the load benchmark:
//! tower-http's request-id and trace layers, a Prometheus layer (a
//! `from_fn` route layer recording through `metrics` into
//! metrics-exporter-prometheus) and JSON logs from tracing-subscriber's
//! `fmt` layer. `scripts/load.sh` measures it beside bare axum and the
//! opsready stack, so that the three shares of one run share the day's
//! machine.
//!
//! The lines go through the same background writer as the opsready
//! stack's, so that the comparison is of the work per request and not of
//! the writers.
//!
//! ```sh
//! BARE_ADDR=127.0.0.1:8092 cargo run --release -p bare --bin handmade > requests.log
//! ```

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderName;
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opsready::telemetry::BatchWriter;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// The latency buckets of the duration histogram, in seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Records a request's count and duration by method, route and status.
async fn track(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|route| route.as_str().to_owned())
        .unwrap_or_default();
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

fn recorder() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("http_request_duration_seconds".to_owned()),
            BUCKETS,
        )
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|error| error.to_string())?;
    // The exporter keeps histogram samples until upkeep drains them.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let addr = std::env::var("BARE_ADDR").unwrap_or_else(|_| "127.0.0.1:8092".to_owned());
    let (writer, _written) = BatchWriter::new(std::io::stdout());
    tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_max_level(Level::INFO)
        .init();
    let handle = recorder()?;

    let request_id = HeaderName::from_static("x-request-id");
    let app = bare::app()
        .route_layer(from_fn(track))
        .route("/metrics", get(move || async move { handle.render() }))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request| {
                            let id = request
                                .headers()
                                .get("x-request-id")
                                .and_then(|id| id.to_str().ok())
                                .unwrap_or_default();
                            tracing::info_span!(
                                "request",
                                method = %request.method(),
                                uri = %request.uri(),
                                request_id = id,
                            )
                        })
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(request_id)),
        );
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|error| format!("{addr}: {error}"))?;
    axum::serve(listener, app)
        .await
        .map_err(|error| error.to_string())
}
