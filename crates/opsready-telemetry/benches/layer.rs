//! The per-request cost of the telemetry layer: the same in-process router
//! with and without it, JSON log lines written to a file.
//!
//! ```sh
//! cargo bench -p opsready-telemetry --bench layer
//! ```

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use opsready_telemetry::{LogFormat, TelemetryLayer, TelemetrySettings};
use tower::ServiceExt as _;

fn app() -> Router {
    Router::new().route("/hello/{name}", get(|| async { "hi" }))
}

fn request() -> Request<Body> {
    Request::get("/hello/bench")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
        .unwrap()
}

fn layer(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let file = File::create(dir.path().join("bench.log")).unwrap();
    // As `init` does for standard output: lines are written by a background
    // thread, off the request path.
    let (writer, _guard) = opsready_telemetry::BatchWriter::new(file);
    let mut settings = TelemetrySettings::default();
    settings.log.format = Some(LogFormat::Json);
    if let Ok(level) = std::env::var("BENCH_LEVEL") {
        settings.log.level = level;
    }
    if std::env::var_os("BENCH_SINK").is_some() {
        let subscriber = opsready_telemetry::subscriber(&settings, std::io::sink).unwrap();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    } else {
        let subscriber = opsready_telemetry::subscriber(&settings, writer).unwrap();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // With the state given, as `axum::serve` does: the handlers become
    // routes once, not at every request.
    let bare = app().with_state(());
    let traced = app().layer(TelemetryLayer::new()).with_state(());

    let mut group = c.benchmark_group("request");
    group.bench_function("bare axum", |b| {
        b.to_async(&runtime)
            .iter(|| async { bare.clone().oneshot(request()).await.unwrap() });
    });
    group.bench_function("with telemetry", |b| {
        b.to_async(&runtime)
            .iter(|| async { traced.clone().oneshot(request()).await.unwrap() });
    });
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
