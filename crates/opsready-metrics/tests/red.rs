//! Black-box tests of the RED metrics through HTTP on port 0.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use opsready_metrics::catalog::{self, CATALOG};
use opsready_metrics::{Metrics, MetricsLayer};

async fn spawn_app(metrics: &Metrics) -> String {
    let app: Router = Router::new()
        .route("/hello/{name}", get(|| async { "hi" }))
        .route("/boom", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route("/readyz", get(|| async { "ready" }))
        .route("/stall", get(std::future::pending::<&'static str>))
        // No panic catcher here: the panic drops the connection.
        .route("/explode", get(explode))
        .layer(MetricsLayer::new(metrics.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// The value of the sample line that starts with `series`.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn requests_are_counted_by_route_template_method_and_status() {
    let metrics = Metrics::new();
    let base = spawn_app(&metrics).await;
    let client = reqwest::Client::new();

    for path in ["/hello/a", "/hello/b", "/hello/c", "/boom", "/readyz"] {
        client.get(format!("{base}{path}")).send().await.unwrap();
    }
    let exposition = metrics.render();

    let count = |route: &str, status: &str| {
        sample(
            &exposition,
            &format!(
                "http_server_request_duration_seconds_count{{http_request_method=\"GET\",http_route=\"{route}\",http_response_status_code=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(count("/hello/{name}", "200"), Some(3.0), "{exposition}");
    assert_eq!(count("/boom", "500"), Some(1.0), "{exposition}");
    assert_eq!(count("/readyz", "200"), None, "probes are not measured");
    assert!(
        exposition.contains("http_server_request_duration_seconds_bucket{http_request_method=\"GET\",http_route=\"/boom\",http_response_status_code=\"500\",le=\"0.005\"}"),
        "{exposition}"
    );
    assert!(
        !exposition.contains("quantile="),
        "histograms, never summaries"
    );
    assert_eq!(
        sample(
            &exposition,
            "http_server_active_requests{http_request_method=\"GET\",http_route=\"/hello/{name}\"}"
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_thousand_random_unmatched_paths_make_one_series() {
    let metrics = Metrics::new();
    let base = spawn_app(&metrics).await;
    let client = reqwest::Client::new();

    for i in 0..1000 {
        client
            .get(format!("{base}/scan/{i}/{}", i * 7919))
            .send()
            .await
            .unwrap();
    }
    let exposition = metrics.render();

    let unmatched: Vec<&str> = exposition
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
        .filter(|l| l.contains("http_route=\"unmatched\""))
        .collect();
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    assert!(unmatched[0].ends_with(" 1000"), "{}", unmatched[0]);
    assert!(!exposition.contains("/scan/"));
}

#[tokio::test]
async fn two_apps_in_one_process_keep_their_own_series() {
    let (first, second) = (Metrics::new(), Metrics::new());
    let (first_base, _second_base) = (spawn_app(&first).await, spawn_app(&second).await);

    reqwest::get(format!("{first_base}/hello/x")).await.unwrap();

    assert!(first.render().contains("http_route=\"/hello/{name}\""));
    assert!(!second.render().contains("http_route=\"/hello/{name}\""));
}

#[tokio::test]
async fn every_exposed_metric_is_in_the_catalog_with_its_type() {
    let metrics = Metrics::new();
    metrics.set_build_info("svc", "1.0.0", "abc");
    metrics.watch_pool("main", || (1, 2, 3));
    metrics.record_blocking(
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(20),
    );
    metrics
        .pool_wait("main")
        .record(std::time::Duration::from_millis(2));
    metrics.watch_counters(&catalog::FEATURE_FLAG_EVALUATIONS, || {
        vec![(
            vec!["a".to_owned(), "on".to_owned(), "STATIC".to_owned()],
            1,
        )]
    });
    metrics.collect();
    metrics.record_scheduling_lag(std::time::Duration::from_micros(300));
    let base = spawn_app(&metrics).await;
    reqwest::get(format!("{base}/hello/x")).await.unwrap();

    let exposition = metrics.render();
    let types: Vec<(&str, &str)> = exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .collect();

    assert!(!types.is_empty(), "{exposition}");
    for (name, kind) in &types {
        let def = catalog::find(name).unwrap_or_else(|| panic!("{name} is not in the catalog"));
        assert_eq!(def.kind.as_str(), *kind, "{name}");
    }
    for def in CATALOG {
        assert!(
            types.iter().any(|(name, _)| *name == def.name),
            "{} is cataloged but not exposed",
            def.name
        );
    }
    assert!(
        exposition
            .contains("# HELP http_server_request_duration_seconds Duration of HTTP requests")
    );
    // Each sample's labels are the catalog's (and `le` of a bucket).
    for line in exposition
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
    {
        let name = line.split(['{', ' ']).next().unwrap();
        let def = catalog::find(name)
            .or_else(|| {
                ["_bucket", "_sum", "_count", "_total"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix).and_then(catalog::find))
            })
            .unwrap_or_else(|| panic!("{name} is not in the catalog: {line}"));
        for label in label_names(line) {
            assert!(
                label == "le" || def.labels.contains(&label.as_str()),
                "{name} has the label {label}, which the catalog does not list: {line}"
            );
        }
    }
}

/// The label names of an exposition sample line.
fn label_names(line: &str) -> Vec<String> {
    let Some((_, rest)) = line.split_once('{') else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut chars = rest.chars();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() || name.starts_with('}') {
            return names;
        }
        names.push(name.trim_start_matches(',').to_owned());
        // The quoted value, escapes and all.
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut escaped = false;
        for c in chars.by_ref() {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => break,
                _ => escaped = false,
            }
        }
        match chars.next() {
            Some(',') => {}
            _ => return names,
        }
    }
}

#[tokio::test]
async fn process_and_runtime_gauges_and_the_lag_histogram_are_exposed() {
    let metrics = Metrics::new();

    metrics.collect();
    metrics.record_scheduling_lag(std::time::Duration::from_micros(300));
    let exposition = metrics.render();

    let value = |name: &str| sample(&exposition, &format!("{name} "));
    assert!(
        value("process_resident_memory_bytes").unwrap() > 1_000_000.0,
        "{exposition}"
    );
    assert!(value("process_open_fds").unwrap() >= 3.0);
    assert!(value("process_cpu_seconds_total").unwrap() >= 0.0);
    let started = value("process_start_time_seconds").unwrap();
    assert!(started > 1_600_000_000.0, "{started}");
    assert!(value("tokio_workers").unwrap() >= 1.0);
    assert!(value("tokio_alive_tasks").is_some());
    // 300 µs lands in the 0.5 ms bucket, not the 0.1 ms one.
    assert_eq!(
        sample(
            &exposition,
            "tokio_scheduling_lag_seconds_bucket{le=\"0.0001\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &exposition,
            "tokio_scheduling_lag_seconds_bucket{le=\"0.0005\"}"
        ),
        Some(1.0)
    );
}

#[cfg(feature = "sqlx")]
#[tokio::test]
async fn a_watched_sqlx_pool_reports_used_idle_and_max_connections() {
    let metrics = Metrics::new();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(3)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    metrics.watch_sqlx_pool("primary", pool.clone());
    let held = pool.acquire().await.unwrap();

    metrics.collect();
    let exposition = metrics.render();
    drop(held);

    let gauge = |series: &str| sample(&exposition, series);
    assert_eq!(
        gauge("db_client_connection_count{pool_name=\"primary\",state=\"used\"}"),
        Some(1.0),
        "{exposition}"
    );
    assert_eq!(
        gauge("db_client_connection_max{pool_name=\"primary\"}"),
        Some(3.0)
    );
    assert!(gauge("db_client_connection_count{pool_name=\"primary\",state=\"idle\"}").is_some());
}

#[tokio::test]
async fn process_cpu_time_is_a_counter_with_fractions() {
    let metrics = Metrics::new();

    let exposition = metrics.render();

    assert!(
        exposition.contains("# TYPE process_cpu_seconds_total counter"),
        "{exposition}"
    );
    assert!(sample(&exposition, "process_cpu_seconds_total ").is_some());
    let openmetrics = metrics.render_openmetrics();
    assert!(
        openmetrics.contains("# TYPE process_cpu_seconds counter\n"),
        "{openmetrics}"
    );
}

#[tokio::test]
async fn openmetrics_carries_the_trace_of_a_request_on_its_bucket() {
    #[derive(Clone)]
    struct Trace(u128);
    let metrics = Metrics::new();
    let app: Router = Router::new()
        .route("/hello/{name}", get(|| async { "hi" }))
        .layer(
            MetricsLayer::new(metrics.clone())
                .exemplars(|extensions| extensions.get::<Trace>().map(|trace| trace.0)),
        )
        .layer(axum::middleware::from_fn(
            |mut request: axum::extract::Request, next: axum::middleware::Next| async move {
                request.extensions_mut().insert(Trace(0xfeed));
                next.run(request).await
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    reqwest::get(format!("http://{addr}/hello/x"))
        .await
        .unwrap();
    let text = metrics.render_openmetrics();

    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(!text.contains("\n\n"), "no blank lines: {text}");
    let bucket = text
        .lines()
        .find(|line| {
            line.starts_with("http_server_request_duration_seconds_bucket{")
                && line.contains("le=\"0.005\"")
        })
        .unwrap();
    assert!(
        bucket.contains("# {trace_id=\"0000000000000000000000000000feed\"} "),
        "{text}"
    );
    assert_eq!(
        text.matches("trace_id=").count(),
        1,
        "one bucket holds the request: {text}"
    );
}

#[cfg(feature = "sqlx")]
#[tokio::test]
async fn a_cancelled_wait_for_a_pooled_connection_is_recorded_too() {
    let metrics = Metrics::new();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let held = pool.acquire().await.unwrap();
    let wait = metrics.pool_wait("main");

    // The pool is exhausted; a request timeout drops the wait.
    let cancelled =
        tokio::time::timeout(std::time::Duration::from_millis(50), wait.acquire(&pool)).await;
    drop(held);
    let served = wait.acquire(&pool).await;

    assert!(cancelled.is_err());
    assert!(served.is_ok());
    let exposition = metrics.render();
    assert!(
        exposition.contains("db_client_connection_wait_time_seconds_count{pool_name=\"main\"} 2"),
        "{exposition}"
    );
}

#[test]
fn a_collector_that_panics_leaves_the_others_and_the_scrape_alone() {
    let metrics = Metrics::new();
    #[allow(clippy::panic)] // the reader exists to panic
    metrics.watch_pool("broken", || panic!("the pool's reader failed"));
    metrics.watch_pool("fine", || (1, 2, 3));

    metrics.collect();
    let exposition = metrics.render();

    assert!(
        exposition.contains("db_client_connection_max{pool_name=\"fine\"} 3"),
        "{exposition}"
    );
}

#[tokio::test]
async fn a_handler_panic_with_no_catcher_is_recorded_as_a_500_not_a_client_giving_up() {
    let metrics = Metrics::new();
    let base = spawn_app(&metrics).await;

    let dropped = reqwest::get(format!("{base}/explode")).await;

    assert!(dropped.is_err(), "{dropped:?}");
    let series = |status: &str| {
        format!(
            "http_server_request_duration_seconds_count{{http_request_method=\"GET\",http_route=\"/explode\",http_response_status_code=\"{status}\"}}"
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let exposition = metrics.render();
        if sample(&exposition, &series("500")) == Some(1.0) {
            assert_eq!(sample(&exposition, &series("499")), None, "{exposition}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failed request recorded:\n{exposition}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_request_whose_client_gave_up_is_recorded_with_status_499() {
    let metrics = Metrics::new();
    let base = spawn_app(&metrics).await;

    // The client gives up; the server drops the request with the connection.
    let gave_up = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(200))
        .build()
        .unwrap()
        .get(format!("{base}/stall"))
        .send()
        .await;
    assert!(gave_up.is_err());

    let series = format!(
        "http_server_request_duration_seconds_count{{http_request_method=\"GET\",http_route=\"/stall\",http_response_status_code=\"{}\"}}",
        opsready_metrics::CANCELLED_STATUS
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let exposition = metrics.render();
        if sample(&exposition, &series) == Some(1.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no cancelled request recorded:\n{exposition}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A handler that panics.
async fn explode() -> &'static str {
    panic!("boom")
}
