//! Black-box tests of a service served by `Ops`: lifecycle, drain, deadline,
//! admin authentication, request ids. Each test binds its own ports (0).

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use opsready::health::{Component, Phase, Reading};
use opsready::settings::{Loader, Validate};
use opsready::{Ops, ServeError, Settings};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

#[derive(Debug, Default, Deserialize, Serialize)]
struct AppSettings {}

impl Validate for AppSettings {}

const TOKEN: &str = "a-long-enough-admin-token";

/// Settings as a deployment would give them, through the real loader.
fn settings(extra: &[(&str, &str)]) -> Settings<AppSettings> {
    let mut vars = vec![
        ("TEST__SERVER__ADDR", "127.0.0.1:0"),
        ("TEST__ADMIN__ADDR", "127.0.0.1:0"),
        ("TEST__SHUTDOWN__DRAIN_DELAY", "300ms"),
        ("TEST__SHUTDOWN__DEADLINE", "5s"),
    ];
    vars.extend_from_slice(extra);
    let dir = no_config_dir();
    opsready::load(&Loader::new("TEST").config_dir(dir).env(vars)).unwrap()
}

/// A config directory that does not exist: no files, only variables.
fn no_config_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("opsready-no-config-here")
}

/// The running service and what the test needs to steer it.
struct Running {
    base: String,
    admin: Option<String>,
    lifecycle: opsready::health::Lifecycle,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), ServeError>>,
    client: reqwest::Client,
}

impl Running {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// The admin listener's `/metrics`, as text.
    async fn metrics(&self) -> String {
        let admin = self.admin.clone().unwrap();
        self.client
            .get(format!("{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn shut_down(&mut self) {
        self.stop.take().unwrap().send(()).unwrap();
    }

    /// Waits until the lifecycle reaches `phase`, with a deadline.
    async fn reach(&self, phase: Phase) {
        tokio::time::timeout(Duration::from_secs(10), self.lifecycle.reached(phase))
            .await
            .unwrap_or_else(|_| panic!("the service never reached {phase}"));
    }
}

async fn spawn(ops: Ops, app: Router) -> Running {
    let server = ops.bind(app).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let admin = server.admin_addr().map(|addr| format!("http://{addr}"));
    let lifecycle = server.lifecycle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    Running {
        base,
        admin,
        lifecycle,
        stop: Some(stop),
        done,
        client: reqwest::Client::new(),
    }
}

/// An app whose `/slow` signals when it started and then waits for `release`.
fn slow_app(started: Arc<Notify>, release: Arc<Notify>) -> Router {
    Router::new()
        .route("/fast", get(|| async { "fast" }))
        .route(
            "/slow",
            get(move || {
                let (started, release) = (Arc::clone(&started), Arc::clone(&release));
                async move {
                    started.notify_one();
                    release.notified().await;
                    "slow"
                }
            }),
        )
}

#[tokio::test]
async fn draining_keeps_serving_finishes_in_flight_requests_and_stops() {
    // Arrange
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    // A drain delay long enough for three requests on a loaded machine.
    let settings = settings(&[
        ("TEST__SHUTDOWN__DRAIN_DELAY", "3s"),
        ("TEST__SHUTDOWN__DEADLINE", "20s"),
    ]);
    let mut running = spawn(
        Ops::new(&settings),
        slow_app(Arc::clone(&started), Arc::clone(&release)),
    )
    .await;
    running.reach(Phase::Ready).await;
    let in_flight = {
        let request = running.client.get(format!("{}/slow", running.base)).send();
        tokio::spawn(request)
    };
    started.notified().await;

    // Act
    running.shut_down();
    running.reach(Phase::Draining).await;
    let ready = running.get("/readyz").await.status();
    let live = running.get("/livez").await.status();
    let fresh = running.get("/fast").await;
    let fresh_status = fresh.status();
    release.notify_one();
    let in_flight = in_flight.await.unwrap().unwrap();

    // Assert
    assert_eq!(
        ready, 503,
        "readiness fails from the first moment of draining"
    );
    assert_eq!(live, 200, "liveness holds while draining");
    assert_eq!(
        fresh_status, 200,
        "requests inside the drain delay are served"
    );
    assert_eq!(in_flight.status(), 200);
    assert_eq!(in_flight.text().await.unwrap(), "slow");
    let stopped = tokio::time::timeout(Duration::from_secs(10), running.done)
        .await
        .unwrap()
        .unwrap();
    assert!(stopped.is_ok(), "{stopped:?}");
    assert_eq!(running.lifecycle.phase(), Phase::Stopped);
}

#[tokio::test]
async fn a_request_still_running_at_the_deadline_is_cut_and_the_server_stops_in_time() {
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let settings = settings(&[
        ("TEST__SHUTDOWN__DRAIN_DELAY", "100ms"),
        ("TEST__SHUTDOWN__DEADLINE", "1s"),
    ]);
    let mut running = spawn(Ops::new(&settings), slow_app(Arc::clone(&started), release)).await;
    running.reach(Phase::Ready).await;
    let _hung = tokio::spawn(running.client.get(format!("{}/slow", running.base)).send());
    started.notified().await;

    let signalled = Instant::now();
    running.shut_down();
    let outcome = tokio::time::timeout(Duration::from_secs(10), running.done)
        .await
        .unwrap()
        .unwrap();
    let took = signalled.elapsed();

    assert!(outcome.unwrap_err().is_deadline());
    // Bounded by the deadline (1 s); the margin absorbs a loaded machine.
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

#[tokio::test]
async fn admin_routes_on_the_main_listener_are_under_the_request_timeout() {
    // `/admin/...` on the main listener: outside the concurrency limit,
    // under the timeout, so a hung admin handler still gets its answer.
    let settings = settings(&[
        ("TEST__ADMIN__ADDR", ""),
        ("TEST__HTTP__REQUEST_TIMEOUT", "300ms"),
    ]);
    let app = Router::new().route("/admin/hung", get(std::future::pending::<&'static str>));
    let running = spawn(Ops::new(&settings), app).await;
    running.reach(Phase::Ready).await;

    let response = running
        .client
        .get(format!("{}/admin/hung", running.base))
        // A hang fails the test instead of holding it for ever.
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 503);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "HANDLER_TIMEOUT");
}

#[tokio::test]
async fn a_service_stopped_before_it_was_ready_skips_the_drain_delay() {
    let settings = settings(&[
        ("TEST__SHUTDOWN__DRAIN_DELAY", "20s"),
        ("TEST__SHUTDOWN__DEADLINE", "30s"),
    ]);
    let hook_started = Arc::new(Notify::new());
    let started = Arc::clone(&hook_started);
    let ops = Ops::new(&settings).on_startup(move || async move {
        started.notify_one();
        std::future::pending::<()>().await;
        Ok::<(), std::io::Error>(())
    });
    let mut running = spawn(ops, Router::new()).await;
    hook_started.notified().await;

    running.shut_down();
    // Never ready, so no load balancer sent it requests: it stops without
    // the 20 s drain delay (the wait gives up long before).
    let outcome = tokio::time::timeout(Duration::from_secs(10), running.done)
        .await
        .expect("still waiting out the drain delay")
        .unwrap();

    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(running.lifecycle.phase(), Phase::Stopped);
}

#[tokio::test]
async fn a_service_told_to_stop_before_it_runs_skips_the_drain_delay() {
    // No startup hooks, and a stop that came before `run_until`.
    let settings = settings(&[
        ("TEST__SHUTDOWN__DRAIN_DELAY", "20s"),
        ("TEST__SHUTDOWN__DEADLINE", "30s"),
    ]);
    let server = Ops::new(&settings).bind(Router::new()).await.unwrap();
    let lifecycle = server.lifecycle().clone();

    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        server.run_until(std::future::ready(())),
    )
    .await
    .expect("still waiting out the drain delay");

    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(lifecycle.phase(), Phase::Stopped);
}

#[tokio::test]
async fn the_service_is_not_ready_until_its_startup_hooks_finish() {
    let gate = Arc::new(Notify::new());
    let settings = settings(&[]);
    let hook_gate = Arc::clone(&gate);
    let ops = Ops::new(&settings)
        .check(Component::new("database", || async { Reading::pass() }))
        .on_startup(move || async move {
            hook_gate.notified().await;
            Ok::<(), std::io::Error>(())
        });
    let running = spawn(ops, Router::new()).await;

    let startup_before = running.get("/startupz").await.status();
    let ready_before = running.get("/readyz").await.status();
    gate.notify_one();
    running.reach(Phase::Ready).await;
    let startup_after = running.get("/startupz").await.status();
    let ready_after = running.get("/readyz").await.status();

    assert_eq!((startup_before.as_u16(), ready_before.as_u16()), (503, 503));
    assert_eq!((startup_after.as_u16(), ready_after.as_u16()), (200, 200));
}

#[tokio::test]
async fn a_failing_startup_hook_stops_the_service_with_its_reason() {
    let settings = settings(&[]);
    let ops = Ops::new(&settings).on_startup(|| async {
        Err::<(), _>(std::io::Error::other(
            "migrations failed on postgres://app:hunter2@db/app",
        ))
    });
    let running = spawn(ops, Router::new()).await;

    let outcome = tokio::time::timeout(Duration::from_secs(10), running.done)
        .await
        .unwrap()
        .unwrap();

    let error = outcome.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("migrations failed"), "{message}");
    // `main` prints it: the credential it quotes is masked, and an error
    // report walking the causes finds no unmasked one.
    assert!(!message.contains("hunter2"), "{message}");
    assert!(std::error::Error::source(&error).is_none());
}

/// An error with a context and a cause, as `anyhow`'s `.context(…)` makes.
#[derive(Debug)]
struct Context(&'static str, std::io::Error);

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Context {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.1)
    }
}

#[tokio::test]
async fn a_failing_startup_hook_says_the_cause_under_its_context() {
    let settings = settings(&[]);
    let ops = Ops::new(&settings).on_startup(|| async {
        Err::<(), _>(Context(
            "running migrations",
            std::io::Error::other("connection refused by postgres://app:hunter2@db/app"),
        ))
    });
    let running = spawn(ops, Router::new()).await;

    let outcome = tokio::time::timeout(Duration::from_secs(10), running.done)
        .await
        .unwrap()
        .unwrap();

    let message = outcome.unwrap_err().to_string();
    assert!(
        message.contains("running migrations: connection refused by postgres://app:"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn a_handler_gets_the_peers_address() {
    let app =
        Router::new().route(
            "/peer",
            get(
                |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<
                    std::net::SocketAddr,
                >| async move { peer.ip().to_string() },
            ),
        );
    let running = spawn(Ops::new(&settings(&[])), app).await;

    let response = running.get("/peer").await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "127.0.0.1");
}

#[tokio::test]
async fn a_busy_port_is_an_error_naming_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let settings = settings(&[("TEST__SERVER__ADDR", addr.as_str())]);

    let error = Ops::new(&settings).bind(Router::new()).await.unwrap_err();

    let message = error.to_string();
    assert!(message.contains(&addr), "{message}");
    assert!(message.contains("server.addr"), "{message}");
}

#[tokio::test]
async fn admin_config_needs_the_token_and_never_shows_it() {
    const OTLP_KEY: &str = "otlp-api-key-never-shown";
    let headers = format!("x-api-key={OTLP_KEY}");
    let settings = settings(&[
        ("TEST__ADMIN__TOKEN", TOKEN),
        ("TEST__TELEMETRY__OTLP__HEADERS", headers.as_str()),
    ]);
    let running = spawn(Ops::new(&settings), Router::new()).await;
    let admin = running.admin.clone().unwrap();
    let config = format!("{admin}/admin/config");

    let none = running.client.get(&config).send().await.unwrap();
    let wrong = running
        .client
        .get(&config)
        .bearer_auth("a-wrong-token-of-some-length")
        .send()
        .await
        .unwrap();
    let right = running
        .client
        .get(&config)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let lower_case_scheme = running
        .client
        .get(&config)
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap()
        .status();

    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["content-type"], "application/problem+json");
    assert_eq!(none.headers()["www-authenticate"], "Bearer realm=\"admin\"");
    assert_eq!(wrong.status(), 401);
    let wrong: Value = wrong.json().await.unwrap();
    assert_eq!(wrong["code"], "UNAUTHORIZED");
    assert_eq!(right.status(), 200);
    assert_eq!(lower_case_scheme, 200, "the scheme is case-insensitive");
    let dump = right.text().await.unwrap();
    assert!(!dump.contains(TOKEN), "{dump}");
    assert!(!dump.contains(OTLP_KEY), "{dump}");
    let dump: Value = serde_json::from_str(&dump).unwrap();
    assert_eq!(dump["admin.token"]["value"], "[REDACTED]");
    assert_eq!(dump["telemetry.otlp.headers"]["value"], "[REDACTED]");
    assert_eq!(
        dump["admin.token"]["origin"],
        "environment variable TEST__ADMIN__TOKEN"
    );
    assert_eq!(dump["shutdown.drain_delay"]["value"], "300ms");
    assert_eq!(dump["http.concurrency_limit"]["origin"], "default");
}

#[tokio::test]
async fn without_a_token_admin_config_is_disabled_not_open() {
    let settings = settings(&[]);
    let running = spawn(Ops::new(&settings), Router::new()).await;
    let admin = running.admin.clone().unwrap();

    let response = running
        .client
        .get(format!("{admin}/admin/config"))
        .bearer_auth("anything-at-all-here")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("admin.token"),
        "{body}"
    );
}

#[tokio::test]
async fn admin_info_reports_the_build() {
    let settings = settings(&[]);
    let ops = Ops::new(&settings).build_info(opsready::build_info!());
    let running = spawn(ops, Router::new()).await;
    let admin = running.admin.clone().unwrap();

    let info: Value = running
        .client
        .get(format!("{admin}/admin/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(info["name"], "opsready");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(info["git_sha"].is_string());
}

#[tokio::test]
async fn with_an_empty_admin_address_admin_routes_live_on_the_main_listener() {
    let settings = settings(&[("TEST__ADMIN__ADDR", ""), ("TEST__ADMIN__TOKEN", TOKEN)]);
    let running = spawn(Ops::new(&settings), Router::new()).await;

    let info = running.get("/admin/info").await.status();
    let config = running.get("/admin/config").await.status();
    // The admin routes' token check stays on them: a path no route has is
    // the service's plain 404, not a demand for the admin token.
    let unknown = running.get("/typo").await;

    assert!(running.admin.is_none());
    assert_eq!(info, 200);
    assert_eq!(config, 401);
    assert_eq!(unknown.status(), 404);
    assert!(unknown.headers().get("www-authenticate").is_none());
}

#[tokio::test]
async fn every_answer_carries_a_request_id_kept_when_sane_and_made_otherwise() {
    let settings = settings(&[]);
    let running = spawn(Ops::new(&settings), Router::new()).await;
    let url = format!("{}/nowhere", running.base);

    let kept = running
        .client
        .get(&url)
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    let replaced = running
        .client
        .get(&url)
        .header("x-request-id", "x".repeat(200))
        .send()
        .await
        .unwrap();
    let made = running.client.get(&url).send().await.unwrap();

    assert_eq!(kept.status(), 404);
    assert_eq!(kept.headers()["x-request-id"], "req-42");
    let kept: Value = kept.json().await.unwrap();
    assert_eq!(kept["request_id"], "req-42");
    let replaced_id = replaced.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(replaced_id.len(), 36, "{replaced_id}");
    let made_id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(&made_id[14..15], "7", "a UUIDv7: {made_id}");
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["request_id"], made_id.as_str());
}

#[tokio::test]
async fn the_limits_of_the_settings_apply_to_the_service_routes_but_not_the_probes() {
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    // No admin listener: the admin routes share the main one and its limit.
    let settings = settings(&[
        ("TEST__HTTP__CONCURRENCY_LIMIT", "1"),
        ("TEST__HTTP__REQUEST_TIMEOUT", "10s"),
        ("TEST__ADMIN__ADDR", ""),
    ]);
    let running = spawn(
        Ops::new(&settings),
        slow_app(Arc::clone(&started), Arc::clone(&release)),
    )
    .await;
    running.reach(Phase::Ready).await;
    let holder = tokio::spawn(running.client.get(format!("{}/slow", running.base)).send());
    started.notified().await;

    let shed = running.get("/fast").await;
    let probe = running.get("/readyz").await.status();
    let metrics = running.get("/metrics").await.status();
    let admin = running.get("/admin/info").await.status();
    release.notify_one();
    holder.await.unwrap().unwrap();

    assert_eq!(shed.status(), 503);
    assert!(shed.headers().contains_key("retry-after"));
    let shed: Value = shed.json().await.unwrap();
    assert_eq!(shed["code"], "OVERLOADED");
    assert_eq!(probe, 200, "probes are not shed");
    assert_eq!(metrics, 200, "/metrics is not shed");
    assert_eq!(admin, 200, "the admin routes are not shed");
}

#[tokio::test]
async fn request_bodies_are_limited_by_http_body_limit_and_to_2_mib_by_default() {
    let echo = || {
        Router::new().route(
            "/echo",
            axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
    };
    let default = spawn(Ops::new(&settings(&[])), echo()).await;
    let small = spawn(
        Ops::new(&settings(&[("TEST__HTTP__BODY_LIMIT", "1KiB")])),
        echo(),
    )
    .await;
    let post = |running: &Running, len: usize| {
        running
            .client
            .post(format!("{}/echo", running.base))
            .body(vec![b'x'; len])
            .send()
    };

    let under_default = post(&default, 2 * 1024 * 1024).await.unwrap();
    let over_default = post(&default, 2 * 1024 * 1024 + 1).await.unwrap();
    let under_small = post(&small, 1024).await.unwrap();
    let over_small = post(&small, 1025).await.unwrap();

    assert_eq!(under_default.status(), 200);
    assert_eq!(under_default.text().await.unwrap(), "2097152");
    assert_eq!(over_default.status(), 413);
    assert_eq!(under_small.status(), 200);
    assert_eq!(over_small.status(), 413);
    let problem: Value = over_small.json().await.unwrap();
    assert_eq!(problem["status"], 413);
}

#[tokio::test]
async fn the_latency_buckets_come_from_the_settings() {
    let settings = settings(&[("TEST__METRICS__LATENCY_BUCKETS", "0.02,0.3,1.5")]);
    let ops = Ops::new(&settings);
    let blocking = ops.blocking();
    let running = spawn(ops, Router::new().route("/x", get(|| async { "x" }))).await;

    running.get("/x").await;
    blocking.run(|| ()).await.unwrap();
    let exposition = running.metrics().await;

    let requests: Vec<&str> = exposition
        .lines()
        .filter(|line| line.starts_with("http_server_request_duration_seconds_bucket{"))
        .collect();
    assert!(
        requests.iter().any(|line| line.contains("le=\"0.3\"")),
        "{exposition}"
    );
    assert!(
        !requests.iter().any(|line| line.contains("le=\"0.005\"")),
        "{exposition}"
    );
    // The waits that are not requests keep their own, finer buckets.
    assert!(
        exposition.contains("blocking_run_seconds_bucket{le=\"0.0001\"}"),
        "{exposition}"
    );
    assert!(
        !exposition.contains("blocking_run_seconds_bucket{le=\"0.3\"}"),
        "{exposition}"
    );
}

#[tokio::test]
async fn health_show_output_false_keeps_a_failing_checks_error_out_of_the_probes() {
    for (show, shown) in [("true", true), ("false", false)] {
        let settings = settings(&[("TEST__HEALTH__SHOW_OUTPUT", show)]);
        let ops = Ops::new(&settings).check(Component::new("database", || async {
            Err::<(), _>("db.internal:5432: connection refused")
        }));
        let running = spawn(ops, Router::new()).await;
        running.reach(Phase::Ready).await;

        let response = running.get("/readyz").await;

        assert_eq!(response.status(), 503, "{show}");
        let body = response.text().await.unwrap();
        assert_eq!(body.contains("db.internal"), shown, "{show}: {body}");
    }
}

#[tokio::test]
async fn probes_are_counted_when_asked_and_routes_below_a_quiet_path_always() {
    for (measure, probes_counted) in [("false", false), ("true", true)] {
        // Arrange: a service route below `/metrics`, which is not the scrape.
        let settings = settings(&[("TEST__METRICS__MEASURE_PROBES", measure)]);
        let app = Router::new().route("/metrics/dashboards/{id}", get(|| async { "board" }));
        let running = spawn(Ops::new(&settings), app).await;

        // Act
        let board = running.get("/metrics/dashboards/7").await.status();
        running.get("/readyz").await;
        running.get("/livez").await;
        let exposition = running.metrics().await;

        // Assert
        assert_eq!(board, 200);
        assert!(
            exposition.contains("http_route=\"/metrics/dashboards/{id}\""),
            "{measure}: {exposition}"
        );
        assert_eq!(
            exposition.contains("http_route=\"/readyz\""),
            probes_counted,
            "{measure}: {exposition}"
        );
        assert_eq!(
            exposition.contains("http_route=\"/livez\""),
            probes_counted,
            "{measure}: {exposition}"
        );
    }
}

#[tokio::test]
async fn blocking_jobs_show_their_queue_wait_and_run_time_in_the_metrics() {
    let settings = settings(&[]);
    let ops = Ops::new(&settings);
    let blocking = ops.blocking();
    let metrics = ops.metrics().clone();

    let answer = blocking.run(|| 6 * 7).await.unwrap();

    assert_eq!(answer, 42);
    let exposition = metrics.render();
    assert!(
        exposition.contains("blocking_queue_wait_seconds_count 1"),
        "{exposition}"
    );
    assert!(
        exposition.contains("blocking_run_seconds_count 1"),
        "{exposition}"
    );
}

#[test]
fn latency_buckets_out_of_order_are_refused() {
    let error = opsready::load::<AppSettings>(
        &Loader::new("TEST")
            .config_dir(no_config_dir())
            .env([("TEST__METRICS__LATENCY_BUCKETS", "0.5,0.1")]),
    )
    .unwrap_err();

    assert_eq!(
        error.diagnostics()[0].key(),
        Some("metrics.latency_buckets")
    );
}

#[test]
fn an_admin_listener_on_the_main_listeners_port_is_refused_when_the_addresses_overlap() {
    let refused = |server: &str, admin: &str| {
        opsready::load::<AppSettings>(
            &Loader::new("TEST")
                .config_dir(no_config_dir())
                .env([("TEST__SERVER__ADDR", server), ("TEST__ADMIN__ADDR", admin)]),
        )
        .err()
        .map(|error| error.diagnostics()[0].key().map(str::to_owned))
    };
    let admin = Some(Some("admin.addr".to_owned()));

    assert_eq!(refused("127.0.0.1:8080", "127.0.0.1:8080"), admin);
    assert_eq!(refused("0.0.0.0:8080", "127.0.0.1:8080"), admin);
    assert_eq!(refused("127.0.0.1:8080", "0.0.0.0:8080"), admin);
    assert_eq!(refused("127.0.0.1:8080", "127.0.0.2:8080"), None);
    assert_eq!(refused("0.0.0.0:8080", "0.0.0.0:9091"), None);
    assert_eq!(refused("127.0.0.1:0", "127.0.0.1:0"), None);
}

#[test]
fn a_flag_store_the_start_could_not_open_is_refused_with_the_settings() {
    let refused = |store: &str| {
        opsready::load::<AppSettings>(
            &Loader::new("TEST")
                .config_dir(no_config_dir())
                .env([("TEST__FLAGS__STORE", store)]),
        )
        .err()
        .map(|error| error.diagnostics()[0].key().map(str::to_owned))
    };

    // Only what `opsready_flags::open` takes passes, so `--check-config`
    // and the start agree (78, not 1 at start).
    assert_eq!(refused("memory:test"), Some(Some("flags.store".to_owned())));
    assert_eq!(refused("file://"), Some(Some("flags.store".to_owned())));
    assert_eq!(
        refused("consul://flags"),
        Some(Some("flags.store".to_owned()))
    );
    assert_eq!(
        refused("file://./flags.yaml"),
        Some(Some("flags.store".to_owned()))
    );
    assert_eq!(
        refused("file://./flags"),
        Some(Some("flags.store".to_owned()))
    );
    assert_eq!(refused("memory:"), None);
    assert_eq!(refused("file://./flags.json"), None);
    assert_eq!(refused("file://./flags.TOML"), None);
    // Postgres only in a build that can open it.
    let postgres = refused("postgres://db/flags");
    if cfg!(feature = "flags-postgres") {
        assert_eq!(postgres, None);
    } else {
        assert_eq!(postgres, Some(Some("flags.store".to_owned())));
    }
}

#[test]
fn ops_settings_refuse_a_drain_delay_longer_than_the_deadline_and_a_short_token() {
    let error =
        opsready::load::<AppSettings>(&Loader::new("TEST").config_dir(no_config_dir()).env([
            ("TEST__SHUTDOWN__DRAIN_DELAY", "40s"),
            ("TEST__ADMIN__TOKEN", "short"),
        ]))
        .unwrap_err();

    let keys: Vec<_> = error
        .diagnostics()
        .iter()
        .map(|d| d.key().unwrap())
        .collect();
    assert_eq!(keys, ["shutdown.drain_delay", "admin.token"], "{error}");
    assert!(!error.to_string().contains("short\""), "{error}");
}

#[tokio::test]
async fn settings_set_in_code_that_break_their_rules_are_refused_at_bind() {
    // A token from a secret store, set after loading: too short, and with
    // the secret file's final newline.
    let mut settings = settings(&[]);
    settings.ops.admin.token = Some(opsready::settings::Secret::from("s3cr\n".to_owned()));

    let error = Ops::new(&settings)
        .bind(Router::new())
        .await
        .expect_err("bound with a token no request can match");

    let message = error.to_string();
    assert!(
        message.contains("admin.token must be at least 16 characters"),
        "{message}"
    );
    assert!(
        !message.contains("s3cr"),
        "the token is not quoted: {message}"
    );
}

#[test]
fn an_admin_token_no_header_can_carry_is_refused_rather_than_never_matching() {
    for token in ["a-long-enough-admin-token\n", "a-long-enough-admin-tokén"] {
        let error = opsready::load::<AppSettings>(
            &Loader::new("TEST")
                .config_dir(no_config_dir())
                .env([("TEST__ADMIN__TOKEN", token)]),
        )
        .unwrap_err();

        let diagnostic = &error.diagnostics()[0];
        assert_eq!(diagnostic.key(), Some("admin.token"), "{error}");
        assert!(error.to_string().contains("newline"), "{error}");
        assert!(!error.to_string().contains("a-long-enough"), "{error}");
    }
}

#[tokio::test]
async fn a_service_fallback_is_kept_and_unknown_routes_are_otherwise_404_problems() {
    let settings = settings(&[]);
    let with_fallback = Router::new().fallback(|| async { "the service's own fallback" });
    let own = spawn(Ops::new(&settings), with_fallback).await;
    let plain = spawn(Ops::new(&settings), Router::new()).await;

    let own = own.get("/anything").await;
    let plain = plain.get("/anything").await;

    assert_eq!(own.status(), 200);
    assert_eq!(own.text().await.unwrap(), "the service's own fallback");
    assert_eq!(plain.status(), 404);
    assert_eq!(plain.headers()["content-type"], "application/problem+json");
}

#[test]
fn an_otlp_endpoint_that_cannot_be_exported_to_is_a_settings_error() {
    // Without the `otlp` feature any endpoint is refused; with it, one that
    // is neither http:// nor https:// is.
    let vars = vec![("TEST__TELEMETRY__OTLP__ENDPOINT", "ftp://collector:4317")];

    let error =
        opsready::load::<AppSettings>(&Loader::new("TEST").config_dir(no_config_dir()).env(vars))
            .unwrap_err();

    let message = error.to_string();
    assert!(message.contains("telemetry.otlp.endpoint"), "{message}");
}

#[tokio::test]
async fn the_admin_listener_serves_metrics_where_a_panic_counts_as_a_500() {
    let settings = settings(&[]);
    #[allow(clippy::panic)] // the route exists to panic
    async fn explode() -> &'static str {
        panic!("boom")
    }
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .route("/explode", get(explode));
    let ops = Ops::new(&settings).build_info(opsready::build_info!());
    let running = spawn(ops, app).await;
    let admin = running.admin.clone().unwrap();

    running.get("/orders/1").await;
    running.get("/orders/2").await;
    running.get("/explode").await;
    running.get("/readyz").await;
    let response = running
        .client
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let exposition = response.text().await.unwrap();
    let count = |route: &str, status: &str| {
        let series = format!(
            "http_server_request_duration_seconds_count{{http_request_method=\"GET\",http_route=\"{route}\",http_response_status_code=\"{status}\"}} "
        );
        exposition
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .map(str::to_owned)
    };
    assert_eq!(
        count("/orders/{id}", "200").as_deref(),
        Some("2"),
        "{exposition}"
    );
    assert_eq!(
        count("/explode", "500").as_deref(),
        Some("1"),
        "{exposition}"
    );
    assert!(
        !exposition.contains("http_route=\"/readyz\""),
        "{exposition}"
    );
    assert!(
        exposition.contains("build_info{service=\"opsready\""),
        "{exposition}"
    );
}

/// An app whose `/events` streams what the test sends, one chunk per
/// message, until the sender is dropped.
fn streaming_app() -> (Router, tokio::sync::mpsc::Sender<String>) {
    let (send, receive) = tokio::sync::mpsc::channel::<String>(4);
    let receive = Arc::new(std::sync::Mutex::new(Some(receive)));
    let app = Router::new().route(
        "/events",
        get(move || {
            let mut receive = receive.lock().unwrap().take().unwrap();
            async move {
                axum::body::Body::from_stream(futures_util::stream::poll_fn(move |cx| {
                    receive
                        .poll_recv(cx)
                        .map(|chunk| chunk.map(Ok::<_, std::io::Error>))
                }))
            }
        }),
    );
    (app, send)
}

/// The value of the series `series` (its name and labels) in `exposition`.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

const EVENTS_ACTIVE: &str =
    "http_server_active_requests{http_request_method=\"GET\",http_route=\"/events\"}";
const EVENTS_COUNT: &str = "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/events\",http_response_status_code=\"200\"}";

/// Scrapes until the `/events` request is over and counted once, with a
/// deadline.
async fn wait_until_the_stream_is_counted(running: &Running) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let exposition = running.metrics().await;
        if sample(&exposition, EVENTS_ACTIVE) == Some(0.0)
            && sample(&exposition, EVENTS_COUNT) == Some(1.0)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{exposition}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_streamed_response_is_in_flight_until_its_body_ends() {
    // Arrange: a response whose head and first chunk have arrived.
    let (app, send) = streaming_app();
    let running = spawn(Ops::new(&settings(&[])), app).await;
    let mut response = running.get("/events").await;
    send.send("first\n".to_owned()).await.unwrap();
    assert_eq!(response.chunk().await.unwrap().unwrap(), "first\n");

    // Act: a scrape while the body streams, then the body ends.
    let streaming = running.metrics().await;
    drop(send);
    assert!(response.chunk().await.unwrap().is_none());

    // Assert: active, and not yet timed, while it streamed; then over and
    // counted once.
    assert_eq!(sample(&streaming, EVENTS_ACTIVE), Some(1.0), "{streaming}");
    assert_eq!(sample(&streaming, EVENTS_COUNT), None, "{streaming}");
    wait_until_the_stream_is_counted(&running).await;
}

#[tokio::test]
async fn a_streamed_response_the_client_leaves_is_over_when_it_leaves() {
    // Arrange: a response whose head and first chunk have arrived.
    let (app, send) = streaming_app();
    let running = spawn(Ops::new(&settings(&[])), app).await;
    let mut response = running.get("/events").await;
    send.send("first\n".to_owned()).await.unwrap();
    response.chunk().await.unwrap();
    let streaming = running.metrics().await;

    // Act: the client goes away with the body still open.
    drop(response);

    // Assert: active while it streamed; once the client left, no longer
    // active, and counted with the status its head had, though the
    // service's stream was never closed.
    assert_eq!(sample(&streaming, EVENTS_ACTIVE), Some(1.0), "{streaming}");
    wait_until_the_stream_is_counted(&running).await;
    drop(send);
}

#[tokio::test]
async fn problem_types_point_at_the_services_own_documentation() {
    let settings = settings(&[(
        "TEST__HTTP__PROBLEM_TYPE_BASE",
        "https://docs.example.com/problems/",
    )]);
    let running = spawn(Ops::new(&settings), Router::new()).await;

    let problem: Value = running.get("/no/such/route").await.json().await.unwrap();

    assert_eq!(
        problem["type"],
        "https://docs.example.com/problems/not-found"
    );
}

#[test]
fn a_problem_type_base_that_is_no_url_ending_with_a_slash_is_refused() {
    for base in [
        "docs.example.com/problems/",
        "https://docs.example.com/problems",
    ] {
        let error = opsready::load::<AppSettings>(
            &Loader::new("TEST")
                .config_dir(no_config_dir())
                .env([("TEST__HTTP__PROBLEM_TYPE_BASE", base)]),
        )
        .unwrap_err();
        assert_eq!(
            error.diagnostics()[0].key(),
            Some("http.problem_type_base"),
            "{base}"
        );
    }
}

#[tokio::test]
async fn build_info_is_one_series_set_or_not() {
    let settings = settings(&[]);
    let app = Router::new().route("/", get(|| async { "ok" }));
    let mut first = opsready::build_info!();
    first.version = "0.0.1".to_owned();
    // Said twice: the last is what the service is.
    let told = spawn(
        Ops::new(&settings)
            .build_info(first)
            .build_info(opsready::build_info!()),
        app.clone(),
    )
    .await;
    let untold = spawn(Ops::new(&settings), app).await;

    let told = build_info_series(&told).await;
    let untold = build_info_series(&untold).await;

    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{told:?}"
    );
    assert_eq!(untold.len(), 1, "{untold:?}");
    assert!(untold[0].ends_with(" 1"), "{untold:?}");
}

#[tokio::test]
async fn an_openmetrics_scrape_links_a_duration_bucket_to_the_requests_trace() {
    let settings = settings(&[]);
    let running = spawn(
        Ops::new(&settings),
        Router::new().route("/orders/{id}", get(|| async { "order" })),
    )
    .await;
    let admin = running.admin.clone().unwrap();

    let traced = running.get("/orders/7").await;
    let trace_id = traced.headers()["traceparent"].to_str().unwrap()[3..35].to_owned();
    let response = running
        .client
        .get(format!("{admin}/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await
        .unwrap();

    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let exposition = response.text().await.unwrap();
    assert!(exposition.ends_with("# EOF\n"), "{exposition}");
    let exemplar = format!("# {{trace_id=\"{trace_id}\"}} ");
    assert!(
        exposition.lines().any(|line| line
            .starts_with("http_server_request_duration_seconds_bucket{http_request_method=\"GET\",http_route=\"/orders/{id}\"")
            && line.contains(&exemplar)),
        "{exposition}"
    );
}

#[tokio::test]
async fn an_accept_list_split_over_two_header_lines_is_read_whole() {
    let settings = settings(&[]);
    let running = spawn(Ops::new(&settings), Router::new()).await;
    let admin = running.admin.clone().unwrap();

    let response = running
        .client
        .get(format!("{admin}/metrics"))
        .header("accept", "text/plain;q=0.5")
        .header("accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await
        .unwrap();

    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
}

#[tokio::test]
async fn a_service_that_binds_itself_installs_telemetry_and_shuts_it_down() {
    let settings = settings(&[]);
    let ops = Ops::new(&settings);

    // Another test of this binary may have installed a subscriber already:
    // that is a warning, not an error, without an exporter configured.
    let guards = ops.install_telemetry().unwrap();
    let running = spawn(ops, Router::new().route("/x", get(|| async { "x" }))).await;
    let answer = running.get("/x").await.status();

    assert_eq!(answer, 200);
    tokio::time::timeout(Duration::from_secs(10), guards.shutdown())
        .await
        .expect("shutting telemetry down must not hang");
}

/// The `build_info` lines of `running`'s `/metrics`.
async fn build_info_series(running: &Running) -> Vec<String> {
    running
        .metrics()
        .await
        .lines()
        .filter(|line| line.starts_with("build_info{"))
        .map(str::to_owned)
        .collect()
}
