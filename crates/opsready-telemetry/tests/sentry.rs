//! Sentry events, sent over real HTTP to a local ingestion endpoint. This
//! binary starts the process-wide Sentry client once; each test finds its own
//! events by its own request id.

#![cfg(feature = "sentry")]
// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use opsready_problem::panic::catch_panic_layer;
use opsready_problem::{Problem, ProblemLayer};
use opsready_settings::Secret;
use opsready_telemetry::{SentryLayer, SentrySettings, TelemetryLayer};
use serde_json::Value;

type Events = Arc<Mutex<Vec<Value>>>;

struct Ingest {
    events: Events,
    _guard: opsready_telemetry::SentryGuard,
}

/// A local Sentry ingestion endpoint on its own thread and runtime (the
/// tests' runtimes come and go), and the client pointed at it.
fn ingest() -> &'static Ingest {
    static INGEST: OnceLock<Ingest> = OnceLock::new();
    INGEST.get_or_init(|| {
        let events: Events = Arc::default();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let state = Arc::clone(&events);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                let app = Router::new()
                    .route("/api/{project}/envelope/", post(receive))
                    .with_state(state);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        let mut settings = SentrySettings::default();
        settings.dsn = Some(Secret::new(format!("http://publickey@{addr}/42")));
        let guard = opsready_telemetry::init_sentry(&settings, "svc@1.2.3+abc123", "test")
            .unwrap()
            .unwrap();
        Ingest {
            events,
            _guard: guard,
        }
    })
}

/// Keeps the event items of an envelope: header line, then item header and
/// payload pairs.
async fn receive(State(events): State<Events>, body: Bytes) -> &'static str {
    let text = String::from_utf8_lossy(&body).into_owned();
    let mut lines = text.lines().skip(1);
    while let (Some(header), Some(payload)) = (lines.next(), lines.next()) {
        let header: Value = serde_json::from_str(header).unwrap_or_default();
        if header["type"] == "event" {
            events
                .lock()
                .unwrap()
                .push(serde_json::from_str(payload).unwrap());
        }
    }
    "{}"
}

/// Flushes the client and waits, with a deadline, for the event of
/// `request_id`.
fn event_of(request_id: &str) -> Value {
    let client = sentry::Hub::current().client().unwrap();
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        client.flush(Some(Duration::from_secs(5)));
        let found = ingest()
            .events
            .lock()
            .unwrap()
            .iter()
            .find(|event| event["tags"]["request_id"] == request_id)
            .cloned();
        if let Some(event) = found {
            return event;
        }
        assert!(Instant::now() < give_up, "no event for {request_id}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn events_of(request_id: &str) -> usize {
    ingest()
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|event| event["tags"]["request_id"] == request_id)
        .count()
}

async fn spawn_app() -> String {
    ingest();
    #[allow(clippy::panic)] // the route exists to panic
    async fn explode() -> &'static str {
        panic!("exploded with secret-panic-detail")
    }
    let app: Router = Router::new()
        .route(
            "/boom",
            get(|| async {
                Err::<(), _>(Problem::internal(std::io::Error::other("disk on fire")))
            }),
        )
        .route("/explode", get(explode))
        .route(
            "/missing/{id}",
            get(|| async { Err::<(), _>(Problem::not_found("no such thing")) }),
        )
        .route("/readyz", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route(
            "/busy",
            get(|| async { Err::<(), _>(Problem::new(opsready_problem::codes::OVERLOADED)) }),
        )
        .layer(catch_panic_layer())
        .layer(SentryLayer)
        .layer(TelemetryLayer::new())
        .layer(ProblemLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn get_with_id(url: &str, request_id: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .header("x-request-id", request_id)
        .header("traceparent", TRACEPARENT)
        .header("authorization", "Bearer SENTRY-MUST-NOT-SEE-THIS")
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_5xx_answer_becomes_an_event_with_request_id_trace_route_and_release() {
    let base = spawn_app().await;

    let response = get_with_id(&format!("{base}/boom"), "req-sentry-boom").await;
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    let event = tokio::task::spawn_blocking(|| event_of("req-sentry-boom"))
        .await
        .unwrap();

    assert_eq!(response.status(), 500);
    // The protocol leaves out the default level, which is error.
    assert!(
        event.get("level").is_none() || event["level"] == "error",
        "{event}"
    );
    assert_eq!(event["transaction"], "GET /boom");
    assert_eq!(event["release"], "svc@1.2.3+abc123");
    assert_eq!(event["environment"], "test");
    assert_eq!(event["tags"]["http.route"], "/boom");
    assert_eq!(event["tags"]["http.status_code"], "500");
    let trace = &event["contexts"]["trace"];
    assert_eq!(trace["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(trace["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(trace["span_id"], &traceparent[36..52]);
    let exception = &event["exception"]["values"][0];
    assert_eq!(exception["type"], "INTERNAL_ERROR");
    assert!(
        exception["value"]
            .as_str()
            .unwrap()
            .contains("disk on fire")
    );
    assert!(!event.to_string().contains("SENTRY-MUST-NOT-SEE-THIS"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_becomes_an_event_with_its_message() {
    let base = spawn_app().await;

    let response = get_with_id(&format!("{base}/explode"), "req-sentry-panic").await;
    let event = tokio::task::spawn_blocking(|| event_of("req-sentry-panic"))
        .await
        .unwrap();

    assert_eq!(response.status(), 500);
    let body = response.text().await.unwrap();
    assert!(!body.contains("secret-panic-detail"), "{body}");
    let value = event["exception"]["values"][0]["value"].as_str().unwrap();
    assert!(value.contains("handler panicked"), "{value}");
    assert!(value.contains("secret-panic-detail"), "{value}");
    assert_eq!(event["transaction"], "GET /explode");
    // The 500 reports it; the panic hook leaves it alone. Flushed in order,
    // a hook's event would have arrived before the 500's.
    assert_eq!(panic_events_with("secret-panic-detail").len(), 0);
}

/// The events the panic hook sent whose message holds `text`.
fn panic_events_with(text: &str) -> Vec<Value> {
    ingest()
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|event| {
            event["exception"]["values"][0]["type"] == "panic"
                && event["exception"]["values"][0]["value"]
                    .as_str()
                    .is_some_and(|value| value.contains(text))
        })
        .cloned()
        .collect()
}

#[test]
fn a_panic_no_request_answers_becomes_an_unhandled_event() {
    ingest();

    let joined = std::thread::Builder::new()
        .name("background-job".to_owned())
        .spawn(|| panic!("background job broke, token=t-42-secret"))
        .unwrap()
        .join();

    assert!(joined.is_err());
    let client = sentry::Hub::current().client().unwrap();
    let give_up = Instant::now() + Duration::from_secs(20);
    let event = loop {
        client.flush(Some(Duration::from_secs(5)));
        if let Some(event) = panic_events_with("background job broke").pop() {
            break event;
        }
        assert!(Instant::now() < give_up, "no event for the panic");
        std::thread::sleep(Duration::from_millis(20));
    };
    let exception = &event["exception"]["values"][0];
    assert_eq!(exception["mechanism"]["type"], "panic");
    assert_eq!(exception["mechanism"]["handled"], false);
    // The process serves on: an error (the protocol's default level, left
    // out), not fatal.
    assert!(
        event["level"].is_null() || event["level"] == "error",
        "{}",
        event["level"]
    );
    assert_eq!(event["tags"]["thread.name"], "background-job");
    let location = event["tags"]["panic.location"].as_str().unwrap();
    assert!(location.contains("sentry.rs"), "{location}");
    let text = event.to_string();
    assert!(!text.contains("t-42-secret"), "{text}");
    assert_eq!(event["release"], "svc@1.2.3+abc123");
}

#[test]
fn an_event_the_service_captures_itself_leaves_without_the_credentials_it_quotes() {
    ingest();

    sentry::with_scope(
        |scope| {
            scope.set_tag("request_id", "req-captured-1");
            scope.set_tag("api_token", "SENTRY-SECRET-1");
            scope.set_extra(
                "upstream",
                "https://h/v1?access_token=SENTRY-SECRET-2".into(),
            );
            scope.set_extra(
                "config",
                serde_json::json!({ "db": { "password": "SENTRY-SECRET-4", "pool": 8 } }),
            );
            scope.set_context(
                "upstream",
                sentry::protocol::Context::Other(
                    [
                        ("secret".to_owned(), "SENTRY-SECRET-7".into()),
                        (
                            "url".to_owned(),
                            "amqp://app:SENTRY-SECRET-8@mq:5672/".into(),
                        ),
                        ("region".to_owned(), "eu-1".into()),
                    ]
                    .into_iter()
                    .collect(),
                ),
            );
            scope.set_context(
                "otel",
                sentry::protocol::Context::Otel(Box::new(sentry::protocol::OtelContext {
                    attributes: [(
                        "url.full".to_owned(),
                        "https://h/x?api_key=SENTRY-SECRET-13".into(),
                    )]
                    .into_iter()
                    .collect(),
                    ..Default::default()
                })),
            );
            scope.add_event_processor(|mut event| {
                event.request = Some(sentry::protocol::Request {
                    url: "https://api.example/cb?state=s1&token=SENTRY-SECRET-9"
                        .parse()
                        .ok(),
                    method: Some("POST".to_owned()),
                    query_string: Some("state=s1&token=SENTRY-SECRET-9".to_owned()),
                    cookies: Some("sid=SENTRY-SECRET-10".to_owned()),
                    data: Some(r#"{"password":"SENTRY-SECRET-11"}"#.to_owned()),
                    headers: [
                        ("Authorization", "Bearer SENTRY-SECRET-12"),
                        ("Cookie", "sid=SENTRY-SECRET-10"),
                        ("Accept", "application/json"),
                    ]
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value.to_owned()))
                    .collect(),
                    ..sentry::protocol::Request::default()
                });
                Some(event)
            });
        },
        || {
            sentry::add_breadcrumb(sentry::Breadcrumb {
                message: Some("GET https://h/items?token=SENTRY-SECRET-5".to_owned()),
                data: [(
                    "url".to_owned(),
                    "https://ghp_SENTRY-SECRET-6@github.com/org/repo".into(),
                )]
                .into_iter()
                .collect(),
                ..sentry::Breadcrumb::default()
            });
            let error = std::io::Error::other("cannot reach postgres://app:SENTRY-SECRET-3@db/app");
            sentry::capture_error(&error);
        },
    );
    let event = event_of("req-captured-1");

    assert_eq!(event["tags"]["api_token"], "[REDACTED]");
    assert_eq!(
        event["extra"]["upstream"],
        "https://h/v1?access_token=[REDACTED]"
    );
    assert_eq!(
        event["exception"]["values"][0]["value"], "cannot reach postgres://app:[REDACTED]@db/app",
        "{event}"
    );
    assert_eq!(event["extra"]["config"]["db"]["password"], "[REDACTED]");
    assert_eq!(event["extra"]["config"]["db"]["pool"], 8);
    let breadcrumb = &event["breadcrumbs"]["values"][0];
    assert_eq!(
        breadcrumb["message"],
        "GET https://h/items?token=[REDACTED]"
    );
    assert_eq!(
        breadcrumb["data"]["url"],
        "https://[REDACTED]@github.com/org/repo"
    );
    let upstream = &event["contexts"]["upstream"];
    assert_eq!(upstream["secret"], "[REDACTED]", "{event}");
    assert_eq!(upstream["url"], "amqp://app:[REDACTED]@mq:5672/");
    assert_eq!(upstream["region"], "eu-1");
    assert_eq!(
        event["contexts"]["otel"]["attributes"]["url.full"],
        "https://h/x?api_key=[REDACTED]"
    );
    let request = &event["request"];
    assert_eq!(
        request["url"], "https://api.example/cb?state=s1&token=[REDACTED]",
        "{event}"
    );
    assert_eq!(request["query_string"], "state=s1&token=[REDACTED]");
    assert_eq!(request["cookies"], "[REDACTED]");
    assert_eq!(request["data"], r#"{"password":"[REDACTED]"}"#);
    assert_eq!(request["headers"]["Authorization"], "[REDACTED]");
    assert_eq!(request["headers"]["Cookie"], "[REDACTED]");
    assert_eq!(request["headers"]["Accept"], "application/json");
    assert!(!event.to_string().contains("SENTRY-SECRET"), "{event}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_4xx_answer_sends_no_event() {
    let base = spawn_app().await;

    let missing = get_with_id(&format!("{base}/missing/7"), "req-sentry-404").await;
    // A 5xx after it: once its event has arrived, an event for the 404
    // would have arrived before it.
    get_with_id(&format!("{base}/boom"), "req-sentry-after-404").await;
    tokio::task::spawn_blocking(|| event_of("req-sentry-after-404"))
        .await
        .unwrap();

    assert_eq!(missing.status(), 404);
    assert_eq!(events_of("req-sentry-404"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_and_shed_load_send_no_event() {
    let base = spawn_app().await;

    let probe = get_with_id(&format!("{base}/readyz"), "req-sentry-probe").await;
    let busy = get_with_id(&format!("{base}/busy"), "req-sentry-busy").await;
    get_with_id(&format!("{base}/boom"), "req-sentry-after-busy").await;
    tokio::task::spawn_blocking(|| event_of("req-sentry-after-busy"))
        .await
        .unwrap();

    assert_eq!(probe.status(), 503);
    assert_eq!(busy.status(), 503);
    assert_eq!(events_of("req-sentry-probe"), 0);
    assert_eq!(events_of("req-sentry-busy"), 0);
}

#[test]
fn a_malformed_dsn_is_an_error_that_does_not_print_it() {
    let mut settings = SentrySettings::default();
    settings.dsn = Some(Secret::new("not a dsn with-secret-key".to_owned()));

    let error = opsready_telemetry::init_sentry(&settings, "svc@1", "test").unwrap_err();

    let message = error.to_string();
    assert!(message.contains("telemetry.sentry.dsn"), "{message}");
    assert!(!message.contains("with-secret-key"), "{message}");
}
