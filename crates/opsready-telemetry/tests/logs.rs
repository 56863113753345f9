//! Black-box tests of request telemetry through HTTP: ids, trace context and
//! the JSON log lines. This binary installs a global subscriber that writes
//! into a buffer; each test finds its own lines by its own request id.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod capture;

use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use opsready_problem::{Problem, ProblemLayer};
use opsready_telemetry::{LogFormat, TelemetryLayer, TelemetrySettings};
use serde_json::Value;
use tracing::Subscriber;
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, SubscriberExt as _};

/// The `otel.name` of every span opened, in order.
#[derive(Clone, Default)]
struct SpanNames(Arc<Mutex<Vec<String>>>);

impl<S: Subscriber> tracing_subscriber::Layer<S> for SpanNames {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        struct Name(Option<String>);
        impl tracing::field::Visit for Name {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "otel.name" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        let mut name = Name(None);
        attrs.record(&mut name);
        if let Some(name) = name.0 {
            self.0.lock().unwrap().push(name);
        }
    }
}

struct Captured {
    logs: capture::Capture,
    spans: SpanNames,
}

fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let logs = capture::Capture::default();
        let spans = SpanNames::default();
        let mut settings = TelemetrySettings::default();
        settings.log.format = Some(LogFormat::Json);
        settings.log.level = "info".to_owned();
        let writer = logs.clone();
        let subscriber = opsready_telemetry::subscriber(&settings, move || writer.clone())
            .unwrap()
            .with(spans.clone());
        tracing::subscriber::set_global_default(subscriber).unwrap();
        Captured { logs, spans }
    })
}

/// Every log line so far, parsed; a line that is not JSON fails the test.
fn lines() -> Vec<Value> {
    let bytes = captured().logs.0.lock().unwrap().clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

fn lines_of(request_id: &str) -> Vec<Value> {
    lines()
        .into_iter()
        .filter(|line| line["request_id"] == request_id)
        .collect()
}

async fn spawn_app() -> String {
    captured();
    let app: Router = Router::new()
        .route(
            "/hello/{name}",
            get(
                |axum::extract::Path(name): axum::extract::Path<String>| async move {
                    tracing::info!(name = %name, "greeting someone");
                    format!("hello {name}")
                },
            ),
        )
        .route(
            "/boom",
            get(|| async {
                Err::<(), _>(Problem::internal(std::io::Error::other("disk on fire")))
            }),
        )
        .route("/teapot", get(|| async { StatusCode::IM_A_TEAPOT }))
        .route(
            // What a handler passes on to the services it calls.
            "/onward",
            get(|request: axum::extract::Request| async move {
                request
                    .extensions()
                    .get::<opsready_telemetry::TraceState>()
                    .map_or_else(|| "none".to_owned(), |state| state.as_str().to_owned())
            }),
        )
        .route(
            "/hidden",
            get(|| async {
                // A problem inside a success status: answered as the 500 it is.
                (
                    StatusCode::OK,
                    Problem::internal(std::io::Error::other("quiet failure")),
                )
            }),
        )
        .route("/stall", get(std::future::pending::<&'static str>))
        // No panic catcher in this stack: the panic drops the connection.
        .route("/explode", get(explode))
        .route(
            "/leaky",
            get(|| async {
                let refused = std::io::Error::other(
                    "https://api.example/v1?page=2&api_key=ERROR-SECRET-2: connection refused",
                );
                let used = 512;
                tracing::warn!(
                    password = "FIELD-SECRET-1",
                    token_count = %used,
                    max_tokens = "4096",
                    error = %refused,
                    "retrying postgres://app:MESSAGE-SECRET-3@db/app"
                );
                Err::<(), _>(Problem::internal(std::io::Error::other(
                    "redis://:CAUSE-SECRET-4@cache:6379 refused",
                )))
            }),
        )
        .route(
            "/mimic",
            get(|| async {
                // The event the request line stands for, through `tracing`.
                tracing::info!(
                    target: "opsready::request",
                    message = "request finished",
                    status = 299_u16,
                    latency_ms = 0.25
                );
            }),
        )
        .route(
            "/charge",
            get(|| async {
                // Fields named as a line's own keys.
                tracing::info!(
                    method = "card",
                    trace_id = "upstream-7",
                    level = 3,
                    "charging"
                );
                "charged"
            }),
        )
        .route("/readyz", get(|| async { "ready" }))
        .layer(TelemetryLayer::new())
        .layer(ProblemLayer::new());
    capture::serve(app).await
}

/// The request line of `request_id`, waited for: a line may come after the
/// answer (a cancelled request's, once the server sees the client gone).
async fn request_line_of(request_id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(line) = lines_of(request_id)
            .into_iter()
            .find(|line| line["target"] == "opsready::request")
        {
            return line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no request line for {request_id}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn one_request_id_in_the_header_the_log_line_and_the_problem_body() {
    let base = spawn_app().await;

    let response = reqwest::Client::new()
        .get(format!("{base}/boom"))
        .header("x-request-id", "req-boom-1")
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-request-id"], "req-boom-1");
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], "req-boom-1");
    assert_eq!(body["trace_id"], TRACE_ID);
    assert!(traceparent.starts_with(&format!("00-{TRACE_ID}-")));
    let lines = lines_of("req-boom-1");
    let finished = lines
        .iter()
        .find(|line| line["status"] == 500)
        .unwrap_or_else(|| panic!("no request line in {lines:?}"));
    assert_eq!(finished["level"], "ERROR");
    assert_eq!(finished["trace_id"], TRACE_ID);
    assert_eq!(finished["route"], "/boom");
    assert_eq!(finished["method"], "GET");
    assert!(finished["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(finished["timestamp"].as_str().unwrap().ends_with('Z'));
    // The span id in the line is the one the response passed on.
    assert_eq!(finished["span_id"], &traceparent[36..52]);
}

#[tokio::test]
async fn lines_logged_inside_a_handler_carry_the_request_and_trace_ids() {
    let base = spawn_app().await;

    reqwest::Client::new()
        .get(format!("{base}/hello/ops"))
        .header("x-request-id", "req-hello-1")
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();

    let lines = lines_of("req-hello-1");
    let greeting = lines
        .iter()
        .find(|line| line["message"] == "greeting someone")
        .unwrap_or_else(|| panic!("no handler line in {lines:?}"));
    assert_eq!(greeting["name"], "ops");
    assert_eq!(greeting["trace_id"], TRACE_ID);
    assert_eq!(greeting["route"], "/hello/{name}");
    let finished = lines.iter().find(|line| line["status"] == 200).unwrap();
    assert_eq!(finished["level"], "INFO");
}

#[tokio::test]
async fn a_request_whose_client_gives_up_is_logged_as_cancelled() {
    let base = spawn_app().await;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(200))
        .build()
        .unwrap();

    let gave_up = client
        .get(format!("{base}/stall"))
        .header("x-request-id", "req-cancelled-1")
        .send()
        .await;

    assert!(gave_up.is_err());
    let line = request_line_of("req-cancelled-1").await;
    assert_eq!(line["message"], "request cancelled", "{line}");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["route"], "/stall");
    assert!(line.get("status").is_none(), "{line}");
    assert!(line["latency_ms"].as_f64().unwrap() >= 150.0, "{line}");
}

#[tokio::test]
async fn a_handler_panic_with_no_catcher_is_logged_as_a_failure_not_a_cancellation() {
    let base = spawn_app().await;

    let dropped = reqwest::Client::new()
        .get(format!("{base}/explode"))
        .header("x-request-id", "req-explode-1")
        .send()
        .await;

    assert!(dropped.is_err(), "{dropped:?}");
    let line = request_line_of("req-explode-1").await;
    assert_eq!(line["message"], "request failed", "{line}");
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["status"], 500);
    assert_eq!(line["route"], "/explode");
    assert!(
        line["error"].as_str().unwrap().contains("panicked"),
        "{line}"
    );
}

#[tokio::test]
async fn the_line_says_the_status_and_code_the_client_got() {
    let base = spawn_app().await;

    let response = reqwest::Client::new()
        .get(format!("{base}/hidden"))
        .header("x-request-id", "req-hidden-1")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 500);
    let line = request_line_of("req-hidden-1").await;
    assert_eq!(line["status"], 500, "{line}");
    assert_eq!(line["message"], "request failed");
    assert_eq!(line["code"], "INTERNAL_ERROR");
    assert!(
        line["error"].as_str().unwrap().contains("quiet failure"),
        "{line}"
    );
}

#[tokio::test]
async fn the_callers_tracestate_comes_back_as_one_list() {
    let base = spawn_app().await;
    let client = reqwest::Client::new();
    let send = |states: &[&str], traceparent: bool| {
        let mut request = client.get(format!("{base}/hello/ada"));
        if traceparent {
            request = request.header("traceparent", TRACEPARENT);
        }
        for state in states {
            request = request.header("tracestate", *state);
        }
        request.send()
    };

    let two = send(&["vendor1=a", "vendor2=b,vendor3=c"], true)
        .await
        .unwrap();
    let one = send(&["vendor1=a"], true).await.unwrap();
    let without_parent = send(&["vendor1=a"], false).await.unwrap();

    let states = |response: &reqwest::Response| -> Vec<String> {
        response
            .headers()
            .get_all("tracestate")
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(states(&two), ["vendor1=a,vendor2=b,vendor3=c"]);
    assert_eq!(states(&one), ["vendor1=a"]);
    assert!(states(&without_parent).is_empty());
}

#[tokio::test]
async fn a_handler_finds_the_callers_tracestate_only_when_it_is_well_formed() {
    let base = spawn_app().await;
    let client = reqwest::Client::new();
    let send = |state: &'static str| {
        client
            .get(format!("{base}/onward"))
            .header("traceparent", TRACEPARENT)
            .header("tracestate", state)
            .send()
    };

    let good = send("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE")
        .await
        .unwrap();
    let bad = send("rojo=1,Congo=2").await.unwrap();

    assert_eq!(
        good.headers()["tracestate"],
        "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"
    );
    assert_eq!(
        good.text().await.unwrap(),
        "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"
    );
    // A malformed list is dropped whole: not passed on, not echoed.
    assert!(bad.headers().get("tracestate").is_none());
    assert_eq!(bad.text().await.unwrap(), "none");
}

#[tokio::test]
async fn client_errors_are_logged_at_info() {
    let base = spawn_app().await;

    reqwest::Client::new()
        .get(format!("{base}/teapot"))
        .header("x-request-id", "req-teapot-1")
        .send()
        .await
        .unwrap();

    let lines = lines_of("req-teapot-1");
    let finished = lines.iter().find(|line| line["status"] == 418).unwrap();
    assert_eq!(finished["level"], "INFO");
}

#[tokio::test]
async fn the_span_is_named_after_the_route_template() {
    let base = spawn_app().await;

    reqwest::get(format!("{base}/hello/span-name-test"))
        .await
        .unwrap();
    reqwest::get(format!("{base}/no/such/route")).await.unwrap();

    let names = captured().spans.0.lock().unwrap().clone();
    assert!(names.contains(&"GET /hello/{name}".to_owned()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.contains("span-name-test")),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("/no/such")), "{names:?}");
}

#[tokio::test]
async fn credentials_in_headers_and_queries_never_reach_the_logs() {
    let base = spawn_app().await;

    reqwest::Client::new()
        .get(format!("{base}/hello/ops?token=QUERY-SECRET-42"))
        .header("x-request-id", "req-secret-1")
        .header("authorization", "Bearer AUTH-SECRET-42")
        .header("cookie", "session=COOKIE-SECRET-42")
        .header("x-api-key", "KEY-SECRET-42")
        .send()
        .await
        .unwrap();

    assert!(!lines_of("req-secret-1").is_empty());
    let all = String::from_utf8(captured().logs.0.lock().unwrap().clone()).unwrap();
    for secret in ["QUERY-SECRET", "AUTH-SECRET", "COOKIE-SECRET", "KEY-SECRET"] {
        assert!(!all.contains(secret), "{secret} leaked");
    }
}

#[tokio::test]
async fn credentials_that_messages_and_errors_quote_are_masked_in_their_lines() {
    let base = spawn_app().await;

    let response = reqwest::Client::new()
        .get(format!("{base}/leaky"))
        .header("x-request-id", "req-leaky-1")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 500);
    let lines = lines_of("req-leaky-1");
    let warning = lines
        .iter()
        .find(|line| line["level"] == "WARN")
        .unwrap_or_else(|| panic!("no handler line in {lines:?}"));
    assert_eq!(warning["password"], "[REDACTED]");
    // Counts named after a credential are not credentials.
    assert_eq!(warning["token_count"], "512");
    assert_eq!(warning["max_tokens"], "4096");
    assert_eq!(
        warning["error"],
        "https://api.example/v1?page=2&api_key=[REDACTED]: connection refused"
    );
    assert_eq!(
        warning["message"],
        "retrying postgres://app:[REDACTED]@db/app"
    );
    let finished = lines.iter().find(|line| line["status"] == 500).unwrap();
    assert_eq!(finished["error"], "redis://:[REDACTED]@cache:6379 refused");
    let all = String::from_utf8(captured().logs.0.lock().unwrap().clone()).unwrap();
    for secret in [
        "FIELD-SECRET",
        "ERROR-SECRET",
        "MESSAGE-SECRET",
        "CAUSE-SECRET",
    ] {
        assert!(!all.contains(secret), "{secret} leaked");
    }
}

#[tokio::test]
async fn probes_are_neither_traced_nor_logged() {
    let base = spawn_app().await;

    let response = reqwest::Client::new()
        .get(format!("{base}/readyz"))
        .header("x-request-id", "req-probe-1")
        .send()
        .await
        .unwrap();

    assert_eq!(response.headers()["x-request-id"], "req-probe-1");
    assert!(lines_of("req-probe-1").is_empty());
}

#[tokio::test]
async fn a_generated_request_id_is_a_uuid_v7_and_reaches_the_log_line() {
    let base = spawn_app().await;

    let response = reqwest::get(format!("{base}/hello/anonymous"))
        .await
        .unwrap();

    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(&id[14..15], "7", "{id}");
    assert!(!lines_of(&id).is_empty());
}

#[tokio::test]
async fn every_log_line_is_a_json_object_with_the_basic_fields() {
    let base = spawn_app().await;
    reqwest::get(format!("{base}/hello/json")).await.unwrap();

    let lines = lines();

    assert!(!lines.is_empty());
    for line in lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
}

/// The keys of a raw JSON line, in the order they are written.
fn keys_in_order(line: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(line).unwrap();
    let mut keys: Vec<(usize, String)> = value
        .as_object()
        .unwrap()
        .keys()
        .map(|key| (line.find(&format!("\"{key}\":")).unwrap(), key.clone()))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, key)| key).collect()
}

#[tokio::test]
async fn the_request_line_is_written_as_the_event_it_stands_for_would_be() {
    let base = spawn_app().await;

    reqwest::Client::new()
        .get(format!("{base}/mimic"))
        .header("x-request-id", "req-mimic-1")
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();

    let bytes = captured().logs.0.lock().unwrap().clone();
    let text = String::from_utf8(bytes).unwrap();
    let raw: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("\"req-mimic-1\""))
        .collect();
    let written = raw
        .iter()
        .find(|line| line.contains("\"status\":200"))
        .unwrap();
    let through_tracing = raw
        .iter()
        .find(|line| line.contains("\"status\":299"))
        .unwrap();
    assert_eq!(keys_in_order(written), keys_in_order(through_tracing));
    assert_eq!(
        keys_in_order(written),
        [
            "timestamp",
            "level",
            "target",
            "message",
            "status",
            "latency_ms",
            "method",
            "route",
            "request_id",
            "trace_id",
            "span_id"
        ]
    );
    let (written, through_tracing): (Value, Value) = (
        serde_json::from_str(written).unwrap(),
        serde_json::from_str(through_tracing).unwrap(),
    );
    for key in [
        "level",
        "target",
        "message",
        "method",
        "route",
        "request_id",
        "trace_id",
        "span_id",
    ] {
        assert_eq!(written[key], through_tracing[key], "{key}");
    }
}

#[tokio::test]
async fn an_events_fields_named_as_a_lines_keys_do_not_double_them() {
    let base = spawn_app().await;

    reqwest::Client::new()
        .get(format!("{base}/charge"))
        .header("x-request-id", "req-charge-1")
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();

    let raw = String::from_utf8(captured().logs.0.lock().unwrap().clone()).unwrap();
    let line = raw
        .lines()
        .find(|line| line.contains("charging") && line.contains("req-charge-1"))
        .unwrap_or_else(|| panic!("no handler line in {raw}"));
    for key in ["\"method\":", "\"trace_id\":", "\"level\":"] {
        assert_eq!(line.matches(key).count(), 1, "{key} twice in {line}");
    }
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["method"], "GET");
    assert_eq!(line["fields.method"], "card");
    assert_eq!(line["trace_id"], TRACE_ID);
    assert_eq!(line["fields.trace_id"], "upstream-7");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["fields.level"], 3);
}

#[tokio::test]
async fn outside_a_request_an_events_trace_id_keeps_its_name() {
    captured();

    // A background job's line: no request's fields to collide with.
    tracing::info!(trace_id = "bg-trace-1", "background job ran");

    let raw = String::from_utf8(captured().logs.0.lock().unwrap().clone()).unwrap();
    let line = raw
        .lines()
        .find(|line| line.contains("background job ran"))
        .unwrap_or_else(|| panic!("no line in {raw}"));
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["trace_id"], "bg-trace-1");
    assert!(line.get("fields.trace_id").is_none(), "{line}");
}

#[tokio::test]
async fn two_traceparents_or_two_request_ids_are_neither_taken() {
    let base = spawn_app().await;
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    let response = reqwest::Client::new()
        .get(format!("{base}/hello/twice"))
        .header("traceparent", TRACEPARENT)
        .header("traceparent", other)
        .header("x-request-id", "req-twice-1")
        .header("x-request-id", "req-twice-2")
        .send()
        .await
        .unwrap();

    let traceparent = response.headers()["traceparent"].to_str().unwrap();
    let request_id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(!traceparent.contains(TRACE_ID), "{traceparent}");
    assert!(
        !traceparent.contains("0af7651916cd43dd8448eb211c80319c"),
        "{traceparent}"
    );
    assert!(!request_id.starts_with("req-twice"), "{request_id}");
    assert_eq!(response.headers().get_all("x-request-id").iter().count(), 1);
}

/// A handler that panics.
async fn explode() -> &'static str {
    panic!("boom")
}
