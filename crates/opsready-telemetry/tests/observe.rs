//! `TelemetryLayer::observe`: the request metrics recorded by the telemetry
//! layer, through the `RequestObserver` the metrics layer is.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use opsready_metrics::{Metrics, MetricsLayer};
use opsready_telemetry::TelemetryLayer;
use opsready_vocab::{ObservedRequest, RequestObserver};
use tower::ServiceExt as _;

/// Every active-requests series of `exposition` is back at zero.
fn assert_nothing_in_flight(exposition: &str) {
    assert!(
        exposition
            .lines()
            .filter(|line| line.starts_with("http_server_active_requests{"))
            .all(|line| line.ends_with(" 0")),
        "{exposition}"
    );
}

fn get_request(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn observed_metrics_count_requests_by_route_and_status_and_skip_probes() {
    let metrics = Metrics::new();
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .route("/fails", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route("/livez", get(|| async { "alive" }))
        .layer(TelemetryLayer::new().observe(MetricsLayer::new(metrics.clone())))
        .with_state(());

    for path in ["/orders/1", "/orders/2", "/fails", "/livez", "/nowhere"] {
        app.clone().oneshot(get_request(path)).await.unwrap();
    }

    let exposition = metrics.render();
    let count = |route: &str, status: u16| {
        let series = format!(
            "http_server_request_duration_seconds_count{{http_request_method=\"GET\",http_route=\"{route}\",http_response_status_code=\"{status}\"}} "
        );
        exposition
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .map(str::to_owned)
    };
    assert_eq!(
        count("/orders/{id}", 200).as_deref(),
        Some("2"),
        "{exposition}"
    );
    assert_eq!(count("/fails", 503).as_deref(), Some("1"), "{exposition}");
    assert_eq!(
        count("unmatched", 404).as_deref(),
        Some("1"),
        "{exposition}"
    );
    assert!(
        !exposition.contains("http_route=\"/livez\""),
        "{exposition}"
    );
    // Nothing is left in flight.
    assert_nothing_in_flight(&exposition);
}

/// Records what it is told.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl RequestObserver for Recorder {
    type Observation = (Self, String);

    fn start(&self, request: &ObservedRequest<'_>) -> Option<Self::Observation> {
        let seen = format!(
            "{} {} {}",
            request.method,
            request.path,
            request.route.unwrap_or("-")
        );
        Some((self.clone(), seen))
    }

    fn finish((recorder, seen): Self::Observation, status: u16, elapsed: Duration) {
        assert!(elapsed >= Duration::from_millis(20), "{elapsed:?}");
        recorder.0.lock().unwrap().push(format!("{seen} {status}"));
    }
}

#[tokio::test]
async fn an_observer_sees_the_route_the_status_and_the_whole_duration() {
    let recorder = Recorder::default();
    let app = Router::new()
        .route(
            "/slow/{n}",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                StatusCode::ACCEPTED
            }),
        )
        .layer(TelemetryLayer::new().observe(recorder.clone()))
        .with_state(());

    let response = app.oneshot(get_request("/slow/3?x=1")).await.unwrap();

    assert_eq!(response.status(), 202);
    assert_eq!(
        *recorder.0.lock().unwrap(),
        ["GET /slow/3 /slow/{n} 202".to_owned()]
    );
}

#[tokio::test]
async fn a_request_dropped_unanswered_is_recorded_with_status_499() {
    let metrics = Metrics::new();
    let app = Router::new()
        .route("/stall", get(std::future::pending::<&'static str>))
        .layer(TelemetryLayer::new().observe(MetricsLayer::new(metrics.clone())))
        .with_state(());

    // The client gives up: the request's future is dropped unanswered.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        app.oneshot(get_request("/stall")),
    )
    .await;

    assert!(gave_up.is_err());
    let exposition = metrics.render();
    let series = format!(
        "http_server_request_duration_seconds_count{{http_request_method=\"GET\",http_route=\"/stall\",http_response_status_code=\"{}\"}} 1",
        opsready_metrics::CANCELLED_STATUS
    );
    assert!(
        exposition.lines().any(|line| line == series),
        "{exposition}"
    );
    assert_nothing_in_flight(&exposition);
}
