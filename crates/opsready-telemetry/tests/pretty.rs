//! The request lines in the pretty format, which go through `tracing`
//! events inside the request span rather than the JSON lines' direct
//! writer: a finished request's and a cancelled one's. This binary
//! installs a global subscriber that writes into a buffer.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod capture;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use opsready_telemetry::{LogFormat, TelemetryLayer};

fn captured() -> &'static capture::Capture {
    capture::installed(LogFormat::Pretty, "info")
}

async fn spawn_app() -> String {
    captured();
    let app: Router = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/stall", get(std::future::pending::<&'static str>))
        .layer(TelemetryLayer::new());
    capture::serve(app).await
}

/// The text logged so far.
fn text() -> String {
    captured().text()
}

/// Waits, with a deadline, for a logged line holding every one of `parts`.
async fn line_with(parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = text()
            .lines()
            .find(|line| parts.iter().all(|part| line.contains(part)))
        {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {parts:?} in:\n{}",
            text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_finished_request_has_its_line_with_its_request_id() {
    let base = spawn_app().await;

    let response = reqwest::Client::new()
        .get(format!("{base}/hello"))
        .header("x-request-id", "req-pretty-1")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    line_with(&["request finished", "req-pretty-1"]).await;
}

#[tokio::test]
async fn a_request_whose_client_gives_up_is_logged_as_cancelled() {
    let base = spawn_app().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();

    let gave_up = client
        .get(format!("{base}/stall"))
        .header("x-request-id", "req-pretty-cancelled")
        .send()
        .await;

    assert!(gave_up.is_err());
    let line = line_with(&["request cancelled", "req-pretty-cancelled"]).await;
    assert!(line.contains("latency_ms"), "{line}");
}
