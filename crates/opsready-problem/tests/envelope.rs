//! Black-box tests of the error envelope: a small axum app served on
//! `127.0.0.1:0`, called over HTTP, every failure path checked against what
//! clients rely on (status, content type, schema, ids, no internals).

// The helpers outside `#[test]` functions fail tests the same way the tests
// do; `.clippy.toml` only exempts the test functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opsready_problem::extract::{Json, Path, Query, ValidJson, Validate, ValidationErrors};
use opsready_problem::limit::ConcurrencyLimitLayer;
use opsready_problem::panic::catch_panic_layer;
use opsready_problem::timeout::TimeoutLayer;
use opsready_problem::{Problem, ProblemLayer, codes, fallback};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower::Layer as _;
use tower::util::MapResponseLayer;

// ---------------------------------------------------------------- the app

/// Strings that exist only inside the server. None may reach a 5xx body.
const INTERNALS: &[&str] = &[
    "SELECT",
    "hunter2",
    "secret-panic-token",
    "/srv/",
    "src/",
    ".rs",
    "Pool<",
    "opsready_problem::",
    "envelope::",
    "panicked",
];

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct NewUser {
    name: String,
    email: String,
    age: u8,
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Signup {
    email: String,
    password: String,
    age: u32,
}

impl Validate for Signup {
    fn validate(&self, errors: &mut ValidationErrors) {
        if !self.email.contains('@') {
            errors.add("/email", "INVALID_EMAIL", "must be an email address");
        }
        if self.password.len() < 12 {
            errors.add("/password", "TOO_SHORT", "must have at least 12 characters");
        }
        if self.age < 16 {
            errors.add("/age", "TOO_YOUNG", "must be at least 16");
        }
    }
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Search {
    q: String,
    limit: u32,
}

#[derive(Debug, Serialize)]
struct User {
    id: u64,
}

/// Lets a test hold the only concurrency permit without sleeping.
#[derive(Debug, Default)]
struct Hooks {
    started: Notify,
    release: Notify,
    /// The open end of `/stream`'s body: dropping it ends the body.
    stream: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<bytes::Bytes>>>,
}

/// A response body fed through a channel: it streams (no length known up
/// front) until the sender is dropped.
struct Channel(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl http_body::Body for Channel {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok(http_body::Frame::data(chunk))))
    }
}

#[derive(Debug, Clone, Copy)]
struct Options {
    timeout: Duration,
    max_in_flight: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(200),
            max_in_flight: 8,
        }
    }
}

fn routes(hooks: Arc<Hooks>) -> Router {
    let streams = Arc::clone(&hooks);
    Router::new()
        .route("/users", post(create_user))
        .route("/users/{id}", get(get_user))
        .route("/signups", post(signup))
        .route("/search", get(search))
        .route("/panic", get(panics))
        .route("/slow", get(std::future::pending::<()>))
        .route(
            "/hold",
            get(move || async move {
                hooks.started.notify_one();
                hooks.release.notified().await;
                "released"
            }),
        )
        .route("/db", get(db_failure))
        .route(
            "/stream",
            get(move || async move {
                let (sender, receiver) = tokio::sync::mpsc::channel(4);
                sender.send(bytes::Bytes::from("first")).await.unwrap();
                *streams.stream.lock().unwrap() = Some(sender);
                axum::body::Body::new(Channel(receiver))
            }),
        )
        .route(
            "/teapot",
            get(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") }),
        )
        .route(
            "/storage",
            get(|| async { (StatusCode::INSUFFICIENT_STORAGE, "volume at 10.0.0.7 full") }),
        )
        .route(
            // nginx's "client closed request": no reason phrase.
            "/unnamed",
            get(|| async { StatusCode::from_u16(499).unwrap() }),
        )
        .route(
            "/legacy",
            // An inner layer that answers a bare text 500 full of internals.
            get(|| async { "never seen" }).layer(MapResponseLayer::new(|_: Response| {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Pool<Postgres> error at /srv/app/src/db.rs:42: SELECT * FROM users",
                )
                    .into_response()
            })),
        )
}

fn app(hooks: Arc<Hooks>, options: Options) -> Router {
    routes(hooks)
        .fallback(fallback::not_found)
        .layer(DefaultBodyLimit::max(1024))
        .layer(ConcurrencyLimitLayer::new(options.max_in_flight))
        .layer(TimeoutLayer::new(options.timeout))
        .layer(catch_panic_layer())
        .layer(ProblemLayer::new())
}

async fn create_user(Json(user): Json<NewUser>) -> Json<Value> {
    Json(json!({ "name": user.name }))
}

async fn get_user(Path(id): Path<u64>) -> Json<User> {
    Json(User { id })
}

async fn signup(ValidJson(signup): ValidJson<Signup>) -> StatusCode {
    let _ = signup;
    StatusCode::CREATED
}

async fn search(Query(search): Query<Search>) -> String {
    search.q
}

async fn panics() -> &'static str {
    panic!("secret-panic-token at /srv/app/src/handlers.rs")
}

async fn db_failure() -> Result<&'static str, Problem> {
    let cause = std::io::Error::other("SELECT password FROM users WHERE id = 42");
    Err(Problem::internal(cause).detail("postgres://admin:hunter2@db/app refused"))
}

// ---------------------------------------------------------------- helpers

struct TestApp {
    base: String,
    client: reqwest::Client,
    hooks: Arc<Hooks>,
}

async fn spawn_with(options: Options) -> TestApp {
    let hooks = Arc::new(Hooks::default());
    let router = app(Arc::clone(&hooks), options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        hooks,
    }
}

/// An app that admits one request at a time, with a timeout long enough
/// never to free the slot itself.
async fn spawn_with_one_slot() -> TestApp {
    spawn_with(Options {
        timeout: Duration::from_secs(60),
        max_in_flight: 1,
    })
    .await
}

async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

/// Ids the client sends with one request, to find them in the answer.
struct Sent {
    request_id: String,
    trace_id: String,
}

impl Sent {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self {
            request_id: format!("req-{n:04}"),
            trace_id: format!("4bf92f3577b34da6a3ce9{n:011x}"),
        }
    }

    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.header("x-request-id", &self.request_id).header(
            "traceparent",
            format!("00-{}-00f067aa0ba902b7-01", self.trace_id),
        )
    }
}

fn schema_validator() -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(opsready_problem::JSON_SCHEMA).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// Checks everything every problem answer promises and returns its body.
async fn assert_problem(
    response: reqwest::Response,
    sent: &Sent,
    status: u16,
    code: &str,
) -> (Value, HeaderMap) {
    let headers = response.headers().clone();
    assert_eq!(response.status().as_u16(), status, "HTTP status");
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "content type"
    );
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));

    let validator = schema_validator();
    let violations: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(violations.is_empty(), "{violations:?} in {body:#}");

    assert_eq!(body["status"], status, "status field == HTTP status");
    assert_eq!(body["code"], code, "{body:#}");
    assert_eq!(body["request_id"], sent.request_id.as_str());
    assert_eq!(
        body["instance"],
        format!("urn:request:{}", sent.request_id).as_str()
    );
    assert_eq!(body["trace_id"], sent.trace_id.as_str());
    if code == "CLIENT_ERROR" || code == "SERVER_ERROR" {
        // A status the catalog does not name: RFC 9457's `about:blank`,
        // titled with the status' reason phrase.
        let class = if status < 500 {
            "Client error"
        } else {
            "Server error"
        };
        let title = StatusCode::from_u16(status).unwrap().canonical_reason();
        assert_eq!(body["type"], "about:blank", "{body:#}");
        assert_eq!(body["title"], title.unwrap_or(class), "{body:#}");
    } else {
        let slug = code.to_ascii_lowercase().replace('_', "-");
        assert_eq!(
            body["type"],
            format!("https://opsready.dev/problems/{slug}").as_str()
        );
    }

    if status >= 500 {
        for internal in INTERNALS {
            assert!(!text.contains(internal), "{internal:?} leaked: {text}");
        }
        let description = codes::CATALOG
            .iter()
            .find(|c| c.code() == code)
            .map(|c| c.description())
            .unwrap();
        assert_eq!(body["detail"], description, "5xx detail is the catalog's");
    }
    if status == 503 {
        let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry_after >= 1);
    }
    (body, headers)
}

fn field_errors(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {body:#}"))
        .iter()
        .map(|e| {
            let at = e["pointer"].as_str().or(e["parameter"].as_str()).unwrap();
            (at.to_owned(), e["code"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn has(errors: &[(String, String)], at: &str, code: &str) -> bool {
    errors.iter().any(|(a, c)| a == at && c == code)
}

// ------------------------------------------------------------ the table

type Build = fn(&reqwest::Client, &str) -> reqwest::RequestBuilder;
type Check = fn(&Value, &HeaderMap);

struct Case {
    name: &'static str,
    request: Build,
    status: u16,
    code: &'static str,
    check: Check,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "malformed JSON is a 400 naming the position",
            request: |c, base| {
                c.post(format!("{base}/users"))
                    .header("content-type", "application/json")
                    .body(r#"{"name": "a", "#)
            },
            status: 400,
            code: "MALFORMED_JSON",
            check: |body, _| {
                let detail = body["detail"].as_str().unwrap();
                assert!(detail.contains("line 1"), "{detail}");
                assert!(detail.contains("column"), "{detail}");
            },
        },
        Case {
            name: "a body without content type is a 415",
            request: |c, base| c.post(format!("{base}/users")).body(r#"{"name": "a"}"#),
            status: 415,
            code: "UNSUPPORTED_MEDIA_TYPE",
            check: |_, _| {},
        },
        Case {
            name: "a text body is a 415",
            request: |c, base| {
                c.post(format!("{base}/users"))
                    .header("content-type", "text/plain")
                    .body("name=a")
            },
            status: 415,
            code: "UNSUPPORTED_MEDIA_TYPE",
            check: |_, _| {},
        },
        Case {
            name: "a body over the limit is a 413",
            request: |c, base| {
                let big = json!({ "name": "x".repeat(2048) }).to_string();
                c.post(format!("{base}/users"))
                    .header("content-type", "application/json")
                    .body(big)
            },
            status: 413,
            code: "PAYLOAD_TOO_LARGE",
            check: |_, _| {},
        },
        Case {
            name: "every structural error is listed in one 422",
            request: |c, base| {
                c.post(format!("{base}/users")).json(&json!({
                    "email": 5,
                    "age": "old",
                    "tags": ["ok", 7]
                }))
            },
            status: 422,
            code: "VALIDATION_FAILED",
            check: |body, _| {
                let errors = field_errors(body);
                assert!(has(&errors, "/name", "MISSING_FIELD"), "{errors:?}");
                assert!(has(&errors, "/email", "INVALID_TYPE"), "{errors:?}");
                assert!(has(&errors, "/age", "INVALID_TYPE"), "{errors:?}");
                assert!(has(&errors, "/tags/1", "INVALID_TYPE"), "{errors:?}");
                assert_eq!(errors.len(), 4, "{errors:?}");
                assert_eq!(body["detail"], "4 fields are invalid");
            },
        },
        Case {
            name: "every rule violation is listed in one 422",
            request: |c, base| {
                c.post(format!("{base}/signups")).json(&json!({
                    "email": "nope",
                    "password": "short",
                    "age": 12
                }))
            },
            status: 422,
            code: "VALIDATION_FAILED",
            check: |body, _| {
                let errors = field_errors(body);
                assert!(has(&errors, "/email", "INVALID_EMAIL"), "{errors:?}");
                assert!(has(&errors, "/password", "TOO_SHORT"), "{errors:?}");
                assert!(has(&errors, "/age", "TOO_YOUNG"), "{errors:?}");
                assert_eq!(errors.len(), 3, "{errors:?}");
            },
        },
        Case {
            name: "structural errors and rule violations come together",
            request: |c, base| {
                c.post(format!("{base}/signups")).json(&json!({
                    "email": "nope",
                    "password": "short",
                    "age": "twelve"
                }))
            },
            status: 422,
            code: "VALIDATION_FAILED",
            check: |body, _| {
                let errors = field_errors(body);
                assert!(has(&errors, "/age", "INVALID_TYPE"), "{errors:?}");
                assert!(has(&errors, "/email", "INVALID_EMAIL"), "{errors:?}");
                assert!(has(&errors, "/password", "TOO_SHORT"), "{errors:?}");
                // The placeholder standing in for the broken age must not
                // also be reported as too young.
                assert_eq!(errors.len(), 3, "{errors:?}");
            },
        },
        Case {
            name: "a bad path parameter is a 400 naming it",
            request: |c, base| c.get(format!("{base}/users/abc")),
            status: 400,
            code: "INVALID_PATH_PARAMETER",
            check: |body, _| {
                assert_eq!(body["errors"][0]["parameter"], "id");
                assert!(body["errors"][0].get("pointer").is_none());
                let detail = body["detail"].as_str().unwrap();
                assert!(detail.contains("`id`"), "{detail}");
                assert!(detail.contains("abc"), "{detail}");
            },
        },
        Case {
            name: "a bad query parameter is a 400 naming it",
            request: |c, base| c.get(format!("{base}/search?q=rust&limit=many")),
            status: 400,
            code: "INVALID_QUERY_PARAMETER",
            check: |body, _| {
                assert_eq!(
                    field_errors(body),
                    // A word for a number: the wrong type, as `Path` says.
                    [("limit".into(), "INVALID_TYPE".into())]
                );
                let detail = body["detail"].as_str().unwrap();
                assert!(detail.contains("`limit`"), "{detail}");
            },
        },
        Case {
            name: "all bad and missing query parameters are named",
            request: |c, base| c.get(format!("{base}/search?limit=-1")),
            status: 400,
            code: "INVALID_QUERY_PARAMETER",
            check: |body, _| {
                let errors = field_errors(body);
                assert!(has(&errors, "limit", "INVALID_VALUE"), "{errors:?}");
                assert!(has(&errors, "q", "MISSING_FIELD"), "{errors:?}");
            },
        },
        Case {
            name: "an unknown route is a 404 naming the path",
            request: |c, base| c.get(format!("{base}/nowhere")),
            status: 404,
            code: "NOT_FOUND",
            check: |body, _| {
                assert_eq!(body["detail"], "No route matches `GET /nowhere`.");
            },
        },
        Case {
            name: "a wrong method is a 405 with Allow",
            request: |c, base| c.delete(format!("{base}/users/1")),
            status: 405,
            code: "METHOD_NOT_ALLOWED",
            check: |_, headers| {
                let allow = headers["allow"].to_str().unwrap();
                assert!(allow.split(',').any(|m| m.trim() == "GET"), "{allow}");
                assert!(!allow.contains("DELETE"), "{allow}");
            },
        },
        Case {
            name: "a handler's 5xx problem keeps its cause and detail inside",
            request: |c, base| c.get(format!("{base}/db")),
            status: 500,
            code: "INTERNAL_ERROR",
            check: |_, _| {},
        },
        Case {
            name: "a plain-text 500 from an inner layer becomes a problem without its text",
            request: |c, base| c.get(format!("{base}/legacy")),
            status: 500,
            code: "INTERNAL_ERROR",
            check: |_, _| {},
        },
        Case {
            name: "a short plain-text 4xx keeps its text as detail",
            request: |c, base| c.get(format!("{base}/teapot")),
            status: 418,
            code: "CLIENT_ERROR",
            check: |body, _| {
                assert_eq!(body["detail"], "short and stout");
                assert_eq!(body["title"], "I'm a teapot");
            },
        },
        Case {
            name: "a 5xx the catalog does not name is about:blank, titled with its reason phrase",
            request: |c, base| c.get(format!("{base}/storage")),
            status: 507,
            code: "SERVER_ERROR",
            check: |body, _| {
                assert_eq!(body["title"], "Insufficient Storage");
                assert!(!body.to_string().contains("10.0.0.7"), "{body}");
            },
        },
        Case {
            name: "a status without a reason phrase is titled by its class",
            request: |c, base| c.get(format!("{base}/unnamed")),
            status: 499,
            code: "CLIENT_ERROR",
            check: |body, _| assert_eq!(body["title"], "Client error"),
        },
        Case {
            name: "a stuck handler is a 503 with Retry-After, not a 408",
            request: |c, base| c.get(format!("{base}/slow")),
            status: 503,
            code: "HANDLER_TIMEOUT",
            check: |_, _| {},
        },
    ]
}

#[tokio::test]
async fn every_failure_path_answers_with_the_envelope() {
    for case in cases() {
        // Arrange
        let app = spawn_app().await;
        let sent = Sent::new();

        // Act
        let response = sent
            .apply((case.request)(&app.client, &app.base))
            .send()
            .await
            .unwrap();

        // Assert
        println!("case: {}", case.name);
        let (body, headers) = assert_problem(response, &sent, case.status, case.code).await;
        (case.check)(&body, &headers);
    }
}

// ------------------------------------------------- choreographed paths

#[tokio::test]
async fn a_panic_is_a_500_without_the_message_and_the_server_keeps_serving() {
    // Arrange
    let app = spawn_app().await;
    let sent = Sent::new();

    // Act
    let response = sent
        .apply(app.client.get(format!("{}/panic", app.base)))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, &sent, 500, "INTERNAL_ERROR").await;
    let next = app
        .client
        .get(format!("{}/users/7", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(next.json::<Value>().await.unwrap(), json!({ "id": 7 }));
}

#[tokio::test]
async fn a_request_over_the_concurrency_limit_is_shed_with_a_503_and_retry_after() {
    // Arrange: one permit, held by a request parked in its handler. The
    // timeout is long so that it cannot release the permit early.
    let app = spawn_with_one_slot().await;
    let holder = tokio::spawn(app.client.get(format!("{}/hold", app.base)).send());
    app.hooks.started.notified().await;
    let sent = Sent::new();

    // Act
    let response = sent
        .apply(app.client.get(format!("{}/users/1", app.base)))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, &sent, 503, "OVERLOADED").await;
    app.hooks.release.notify_one();
    let held = holder.await.unwrap().unwrap();
    assert_eq!(held.status(), 200);
    assert_eq!(held.text().await.unwrap(), "released");
    // The permit is back: the next request is served.
    let after = app
        .client
        .get(format!("{}/users/2", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200);
}

#[tokio::test]
async fn a_streaming_response_holds_its_concurrency_slot_until_its_body_ends() {
    // Arrange: one permit, and a response whose body is still streaming.
    let app = spawn_with_one_slot().await;
    let mut streaming = app
        .client
        .get(format!("{}/stream", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(streaming.status(), 200);
    assert_eq!(streaming.chunk().await.unwrap().unwrap(), "first");

    // Act: a request while it streams, then one after its end.
    let sent = Sent::new();
    let during = sent
        .apply(app.client.get(format!("{}/users/1", app.base)))
        .send()
        .await
        .unwrap();
    drop(app.hooks.stream.lock().unwrap().take());
    assert_eq!(
        streaming.chunk().await.unwrap(),
        None,
        "the body did not end"
    );
    let after = app
        .client
        .get(format!("{}/users/2", app.base))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(during, &sent, 503, "OVERLOADED").await;
    assert_eq!(after.status(), 200, "the slot was not given back");
}

#[tokio::test]
async fn exempt_paths_are_neither_shed_nor_timed() {
    use tower::ServiceExt as _;

    // Arrange: one permit, held by a parked request; a timeout shorter than
    // the exempt route's wait.
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (s, r) = (Arc::clone(&started), Arc::clone(&release));
    let exempt = |path: &str| path.starts_with("/free");
    let app = Router::new()
        .route(
            "/hold",
            get(move || async move {
                s.notify_one();
                r.notified().await;
                "released"
            }),
        )
        .route("/busy", get(|| async { "busy" }))
        .route(
            "/free/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "slow but free"
            }),
        )
        .layer(ConcurrencyLimitLayer::new(1).exempt(exempt))
        .layer(TimeoutLayer::new(Duration::from_secs(1)).exempt(exempt))
        .layer(ProblemLayer::new());
    let call = |path: &'static str| {
        app.clone()
            .oneshot(Request::get(path).body(axum::body::Body::empty()).unwrap())
    };
    let holder = tokio::spawn(call("/hold"));
    started.notified().await;

    // Act
    let shed = call("/busy").await.unwrap();
    let free = call("/free/slow").await.unwrap();
    release.notify_one();
    let held = holder.await.unwrap().unwrap();

    // Assert: the counted route is shed; the exempt one is neither shed nor
    // cut by the timeout, which the parked, counted one ran into meanwhile.
    assert_eq!(shed.status(), 503);
    assert_eq!(free.status(), 200);
    let body = axum::body::to_bytes(free.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(&body[..], b"slow but free");
    assert_eq!(
        held.status(),
        503,
        "/hold is timed: its second passed first"
    );
}

#[tokio::test]
async fn success_responses_pass_through_untouched() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .client
        .get(format!("{}/users/42", app.base))
        .header("x-request-id", "req-ok")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), r#"{"id":42}"#);
}

#[tokio::test]
async fn the_layer_around_the_whole_router_keeps_allow_and_rewrites_the_bare_404() {
    // Arrange: no fallback, no other layers; the layer wraps the router
    // instead of going through `Router::layer`.
    let service = ProblemLayer::new()
        .type_base("https://docs.example.com/problems/")
        .layer(routes(Arc::new(Hooks::default())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let service = axum::ServiceExt::<axum::extract::Request>::into_make_service(service);
        axum::serve(listener, service).await.unwrap();
    });
    let client = reqwest::Client::new();

    // Act
    let wrong_method = client
        .put(format!("{base}/users/1"))
        .header("x-request-id", "req-405")
        .send()
        .await
        .unwrap();
    let unknown = client
        .get(format!("{base}/nowhere"))
        .header("x-request-id", "req-404")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "GET,HEAD");
    let body: Value = wrong_method.json().await.unwrap();
    assert_eq!(body["code"], "METHOD_NOT_ALLOWED");
    assert_eq!(
        body["type"],
        "https://docs.example.com/problems/method-not-allowed"
    );
    assert_eq!(
        body["detail"],
        "`PUT` is not allowed on `/users/1`; see `Allow`."
    );

    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["code"], "NOT_FOUND");
    assert_eq!(body["request_id"], "req-404");
    assert!(schema_validator().is_valid(&body), "{body:#}");
}

#[test]
fn the_schema_rejects_bodies_that_break_the_envelope() {
    let validator = schema_validator();
    let valid = json!({
        "type": "https://opsready.dev/problems/not-found", "title": "Not found",
        "status": 404, "code": "NOT_FOUND"
    });
    assert!(validator.is_valid(&valid));
    for broken in [
        json!({ "type": "https://x/y", "title": "t", "status": 404 }),
        json!({ "type": "https://x/y", "title": "t", "status": 200, "code": "OK" }),
        json!({ "type": "https://x/y", "title": "t", "status": 404, "code": "not-found" }),
        json!({ "type": "https://x/y", "title": "t", "status": 404, "code": "X", "trace_id": "xyz" }),
        json!({ "type": "https://x/y", "title": "t", "status": 404, "code": "X",
                "errors": [{ "pointer": "/a", "parameter": "a", "code": "X", "detail": "d" }] }),
    ] {
        assert!(!validator.is_valid(&broken), "{broken}");
    }
}

#[cfg(feature = "utoipa")]
#[test]
fn the_openapi_schema_describes_the_same_envelope_as_the_json_schema() {
    use utoipa::PartialSchema;

    let openapi = serde_json::to_value(Problem::schema()).unwrap();
    let json_schema: Value = serde_json::from_str(opsready_problem::JSON_SCHEMA).unwrap();

    let keys = |v: &Value| -> Vec<String> {
        let mut keys: Vec<String> = v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    let required = |v: &Value| -> Vec<String> {
        let mut required: Vec<String> = serde_json::from_value(v["required"].clone()).unwrap();
        required.sort();
        required
    };
    assert_eq!(keys(&openapi), keys(&json_schema));
    assert_eq!(required(&openapi), ["code", "status", "title", "type"]);
    assert_eq!(required(&openapi), required(&json_schema));
    assert_eq!(
        openapi["properties"]["errors"]["items"]["$ref"],
        "#/components/schemas/FieldError"
    );

    let field = serde_json::to_value(opsready_problem::FieldError::schema()).unwrap();
    assert_eq!(keys(&field), keys(&json_schema["$defs"]["FieldError"]));
    assert_eq!(required(&field), ["code", "detail"]);
}
