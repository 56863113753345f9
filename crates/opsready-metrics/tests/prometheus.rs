//! A real Prometheus scrapes a served app; the numbers are read back through
//! the Prometheus HTTP API. Skipped, with a message, when no `prometheus`
//! binary is installed (`.ci/run` installs Debian's).

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use opsready_metrics::{Format, Metrics, MetricsLayer};
use serde_json::Value;

/// The Prometheus process of one test, killed (by its own handle) at the end.
struct Prometheus {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus_binary() -> Option<&'static str> {
    Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .filter(|status| status.success())
        .map(|_| "prometheus")
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(binary: &str, target: &str) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--enable-feature=exemplar-storage")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Prometheus {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// The trace a request belongs to, as a tracing layer would record it.
#[derive(Clone)]
struct Trace(u128);

/// The trace id a test request carries, hex in `x-trace`.
async fn trace_from_header(mut request: Request, next: Next) -> Response {
    let trace = request
        .headers()
        .get("x-trace")
        .and_then(|value| value.to_str().ok())
        .and_then(|hex| u128::from_str_radix(hex, 16).ok());
    if let Some(trace) = trace {
        request.extensions_mut().insert(Trace(trace));
    }
    next.run(request).await
}

async fn spawn_app(metrics: &Metrics) -> String {
    let exposition = metrics.clone();
    let app: Router = Router::new()
        .route("/hello/{name}", get(|| async { "hi" }))
        .route("/boom", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route("/busy", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route("/stall", get(std::future::pending::<&'static str>))
        .route(
            "/metrics",
            get(move |headers: HeaderMap| {
                let metrics = exposition.clone();
                async move {
                    // Prometheus asks for OpenMetrics first.
                    let format = Format::negotiate(headers.get(header::ACCEPT));
                    (
                        [(header::CONTENT_TYPE, format.content_type())],
                        metrics.render_as(format),
                    )
                }
            }),
        )
        .layer(
            MetricsLayer::new(metrics.clone())
                .exemplars(|extensions| extensions.get::<Trace>().map(|trace| trace.0)),
        )
        .layer(middleware::from_fn(trace_from_header));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

/// Runs an instant query; `None` while Prometheus is not up yet.
async fn query(client: &reqwest::Client, prometheus: &Prometheus, promql: &str) -> Option<Value> {
    let response = client
        .get(format!("{}/api/v1/query", prometheus.base))
        .query(&[("query", promql)])
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.ok()?;
    (body["status"] == "success").then(|| body["data"]["result"].clone())
}

/// `{route: value}` of a `sum by (http_route)` result.
fn by_route(result: &Value) -> Vec<(String, f64)> {
    let mut rows: Vec<(String, f64)> = result
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            let route = row["metric"]["http_route"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let value = row["value"][1]
                .as_str()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0.0);
            (route, value)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_sees_the_routes_their_counts_and_one_unmatched_series() {
    let Some(binary) = prometheus_binary() else {
        pg_scratch::skip("no `prometheus` binary on PATH (Debian: apt-get install prometheus)");
        return;
    };
    // Arrange
    let metrics = Metrics::new();
    let target = spawn_app(&metrics).await;
    let prometheus = start_prometheus(binary, &target);
    let client = reqwest::Client::new();

    // Act: traffic, including a scan of 1,000 random paths; one request
    // belongs to a known trace.
    for name in ["a", "b", "c"] {
        let mut request = client.get(format!("http://{target}/hello/{name}"));
        if name == "b" {
            request = request.header("x-trace", TRACE_ID);
        }
        request.send().await.unwrap();
    }
    client
        .get(format!("http://{target}/boom"))
        .send()
        .await
        .unwrap();
    for i in 0..1000u64 {
        let path = format!("/scan/{i}/{}", i.wrapping_mul(2_654_435_761));
        client
            .get(format!("http://{target}{path}"))
            .send()
            .await
            .unwrap();
    }

    // Assert, once a scrape has seen all of it (with a deadline).
    let expected = vec![
        ("/boom".to_owned(), 1.0),
        ("/hello/{name}".to_owned(), 3.0),
        ("unmatched".to_owned(), 1000.0),
    ];
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < give_up {
        if let Some(result) = query(
            &client,
            &prometheus,
            "sum by (http_route) (http_server_request_duration_seconds_count)",
        )
        .await
        {
            seen = by_route(&result);
            if seen == expected {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen, expected);
    let unmatched_series = query(
        &client,
        &prometheus,
        "count(http_server_request_duration_seconds_count{http_route=\"unmatched\"})",
    )
    .await
    .unwrap();
    assert_eq!(unmatched_series[0]["value"][1], "1");

    // The scrape was OpenMetrics, and the traced request's bucket carries
    // its trace id as an exemplar.
    let exemplars = query_exemplars(
        &client,
        &prometheus,
        "http_server_request_duration_seconds_bucket{http_route=\"/hello/{name}\"}",
    )
    .await;
    let trace_ids: Vec<&str> = exemplars
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["exemplars"].as_array().into_iter().flatten())
        .filter_map(|exemplar| exemplar["labels"]["trace_id"].as_str())
        .collect();
    assert!(trace_ids.contains(&TRACE_ID), "{exemplars}");
}

/// The PromQL blocks of a markdown page, in order, also those indented
/// under a list item.
fn promql_blocks(page: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in page.lines().map(str::trim) {
        match (&mut block, line) {
            (None, "```promql") => block = Some(Vec::new()),
            (Some(lines), "```") => {
                blocks.push(lines.join("\n"));
                block = None;
            }
            (Some(lines), line) => lines.push(line),
            (None, _) => {}
        }
    }
    blocks
}

/// The PromQL queries users are shown: those of the metrics reference
/// (`docs/metrics.md`), of the flags guide, and of the runbook templates
/// with their job placeholder set to this test's scrape job.
fn documented_queries() -> Vec<(String, String)> {
    let reference = opsready_metrics::catalog::render_markdown(opsready_metrics::catalog::CATALOG);
    let mut queries: Vec<(String, String)> = promql_blocks(&reference)
        .into_iter()
        .map(|query| ("docs/metrics.md".to_owned(), query))
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut pages: Vec<_> = std::fs::read_dir(root.join("runbooks/templates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    pages.sort();
    pages.push(root.join("docs/flags.md"));
    for page in pages {
        let name = page
            .strip_prefix(&root)
            .unwrap_or(&page)
            .display()
            .to_string();
        let text = std::fs::read_to_string(&page).unwrap();
        for query in promql_blocks(&text) {
            queries.push((name.clone(), query.replace("{{job}}", "app")));
        }
    }
    queries
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_query_finds_series_on_a_real_prometheus() {
    let Some(binary) = prometheus_binary() else {
        pg_scratch::skip("no `prometheus` binary on PATH (Debian: apt-get install prometheus)");
        return;
    };
    // Arrange: an app with every family the queries ask about, scraped:
    // requests, build, process and runtime, a pool, blocking work, flags.
    let metrics = Metrics::new();
    metrics.set_build_info("docs", "1.2.3", "abc1234");
    metrics.watch_pool("primary", || (3, 2, 10));
    let evaluations = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = std::sync::Arc::clone(&evaluations);
    metrics.watch_counters(
        &opsready_metrics::catalog::FEATURE_FLAG_EVALUATIONS,
        move || {
            let count = counted.load(std::sync::atomic::Ordering::Relaxed);
            vec![(
                vec![
                    "checkout.new-flow".to_owned(),
                    "off".to_owned(),
                    "DISABLED".to_owned(),
                ],
                count,
            )]
        },
    );
    let target = spawn_app(&metrics).await;
    let prometheus = start_prometheus(binary, &target);
    let client = reqwest::Client::new();
    // A client that gives up on `/stall`: a cancelled request.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let queries = documented_queries();
    assert!(queries.len() >= 20, "{queries:?}");

    // Act: traffic that fails too, late timers, pool waits, blocking jobs
    // and flag evaluations, for a while, so that rates over the scrapes
    // have two samples.
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut empty: Vec<&(String, String)> = queries.iter().collect();
    while !empty.is_empty() && Instant::now() < give_up {
        for path in ["/hello/a", "/boom", "/busy"] {
            client
                .get(format!("http://{target}{path}"))
                .send()
                .await
                .unwrap();
        }
        let _ = impatient.get(format!("http://{target}/stall")).send().await;
        metrics.record_scheduling_lag(Duration::from_millis(3));
        metrics
            .pool_wait("primary")
            .record(Duration::from_millis(2));
        metrics.record_blocking(Duration::from_millis(1), Duration::from_millis(4));
        evaluations.fetch_add(5, std::sync::atomic::Ordering::Relaxed);
        metrics.collect();
        let mut still = Vec::new();
        for entry in empty {
            let found = query(&client, &prometheus, &entry.1)
                .await
                .is_some_and(|result| result.as_array().is_some_and(|rows| !rows.is_empty()));
            if !found {
                still.push(entry);
            }
        }
        empty = still;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Assert: each query is valid PromQL and names series that exist.
    assert!(
        empty.is_empty(),
        "documented queries that found nothing: {empty:#?}"
    );
}

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

/// The exemplars of the last ten minutes for `selector`.
async fn query_exemplars(
    client: &reqwest::Client,
    prometheus: &Prometheus,
    selector: &str,
) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body: Value = client
        .get(format!("{}/api/v1/query_exemplars", prometheus.base))
        .query(&[
            ("query", selector.to_owned()),
            ("start", (now - 600).to_string()),
            ("end", (now + 60).to_string()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "success", "{body}");
    body["data"].clone()
}
