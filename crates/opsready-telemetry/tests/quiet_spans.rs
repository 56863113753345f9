//! Request lines when the request span's target is filtered out but the
//! lines' is not (`info,opsready::http=warn`): every request still has its
//! line, with its ids, a cancelled one's too. This binary installs a
//! global subscriber that writes into a buffer.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod capture;

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use opsready_telemetry::{LogFormat, TelemetryLayer};
use serde_json::Value;

fn captured() -> &'static capture::Capture {
    capture::installed(LogFormat::Json, "info,opsready::http=warn")
}

async fn spawn_app() -> String {
    captured();
    let app: Router = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/teapot", get(|| async { StatusCode::IM_A_TEAPOT }))
        .route("/stall", get(std::future::pending::<&'static str>))
        .layer(TelemetryLayer::new());
    capture::serve(app).await
}

/// The request line of `request_id`, waited for with a deadline.
async fn request_line_of(request_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = captured().text();
        if let Some(line) = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["request_id"] == request_id && line["target"] == "opsready::request")
        {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no line of {request_id} in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn requests_that_went_well_or_were_refused_keep_their_lines() {
    let base = spawn_app().await;
    let client = reqwest::Client::new();

    for (path, id) in [("/hello", "req-quiet-ok"), ("/teapot", "req-quiet-418")] {
        client
            .get(format!("{base}{path}"))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
    }

    let ok = request_line_of("req-quiet-ok").await;
    let teapot = request_line_of("req-quiet-418").await;
    assert_eq!(ok["message"], "request finished");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["route"], "/hello");
    assert_eq!(ok["method"], "GET");
    assert_eq!(teapot["status"], 418);
}

#[tokio::test]
async fn a_cancelled_request_keeps_its_line() {
    let base = spawn_app().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();

    let gave_up = client
        .get(format!("{base}/stall"))
        .header("x-request-id", "req-quiet-cancelled")
        .send()
        .await;

    assert!(gave_up.is_err());
    let line = request_line_of("req-quiet-cancelled").await;
    assert_eq!(line["message"], "request cancelled");
    assert_eq!(line["route"], "/stall");
}
