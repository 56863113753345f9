//! The facade's layers send a Sentry event for a 5xx with the request's ids.
//! Its own binary: the Sentry client is process-wide.

#![cfg(feature = "sentry")]
// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use opsready::problem::Problem;
use opsready::settings::{Loader, Secret, Validate};
use opsready::telemetry::SentrySettings;
use opsready::{Ops, health::Phase};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Default, Deserialize, Serialize)]
struct AppSettings {}

impl Validate for AppSettings {}

type Events = Arc<Mutex<Vec<String>>>;

async fn receive(State(events): State<Events>, body: Bytes) -> &'static str {
    events
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    "{}"
}

#[tokio::test(flavor = "multi_thread")]
async fn a_5xx_behind_the_facade_reaches_sentry_with_its_request_id_and_route() {
    // Arrange: an ingestion endpoint and a client pointed at it.
    let events: Events = Arc::default();
    let ingest = Router::new()
        .route("/api/{project}/envelope/", post(receive))
        .with_state(Arc::clone(&events));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ingest_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, ingest).await.unwrap() });
    let mut sentry_settings = SentrySettings::default();
    sentry_settings.dsn = Some(Secret::new(format!("http://key@{ingest_addr}/7")));
    let _guard = opsready::telemetry::init_sentry(&sentry_settings, "facade@0.1.0", "test")
        .unwrap()
        .unwrap();
    let settings = opsready::load::<AppSettings>(
        &Loader::new("TEST")
            .config_dir(std::env::temp_dir().join("opsready-no-config-here"))
            .env([
                ("TEST__SERVER__ADDR", "127.0.0.1:0"),
                ("TEST__ADMIN__ADDR", ""),
            ]),
    )
    .unwrap();
    let app = Router::new().route(
        "/orders/{id}",
        get(|| async { Err::<(), _>(Problem::internal(std::io::Error::other("ledger down"))) }),
    );
    let server = Ops::new(&settings).bind(app).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let lifecycle = server.lifecycle().clone();
    tokio::spawn(server.run_until(std::future::pending()));
    tokio::time::timeout(Duration::from_secs(10), lifecycle.reached(Phase::Ready))
        .await
        .unwrap();

    // Act
    let response = reqwest::Client::new()
        .get(format!("{base}/orders/42"))
        .header("x-request-id", "req-facade-sentry")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 500);
    let client = sentry::Hub::current().client().unwrap();
    let give_up = Instant::now() + Duration::from_secs(20);
    let envelope = loop {
        let flushed = Arc::clone(&client);
        tokio::task::spawn_blocking(move || flushed.flush(Some(Duration::from_secs(5))))
            .await
            .unwrap();
        let found = events
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.contains("req-facade-sentry"))
            .cloned();
        if let Some(envelope) = found {
            break envelope;
        }
        assert!(Instant::now() < give_up, "no event arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let event: Value = envelope
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|value| value.get("transaction").is_some())
        .unwrap();
    assert_eq!(event["transaction"], "GET /orders/{id}");
    assert_eq!(event["tags"]["request_id"], "req-facade-sentry");
    assert!(event["contexts"]["trace"]["trace_id"].is_string());
    assert!(envelope.contains("ledger down"));
}
