//! The recording cost of the RED metrics per request: the same in-process
//! router with and without `MetricsLayer`.
//!
//! ```sh
//! cargo bench -p opsready-metrics --bench record
//! ```

#![allow(missing_docs, clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use opsready_metrics::{Metrics, MetricsLayer};
use tower::ServiceExt as _;

fn app() -> Router {
    Router::new().route("/hello/{name}", get(|| async { "hi" }))
}

fn record(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bare = app();
    let metrics = Metrics::new();
    let measured = app().layer(MetricsLayer::new(metrics.clone()));
    let request = || Request::get("/hello/bench").body(Body::empty()).unwrap();

    let mut group = c.benchmark_group("request");
    group.bench_function("bare axum", |b| {
        b.to_async(&runtime)
            .iter(|| async { bare.clone().oneshot(request()).await.unwrap() });
    });
    group.bench_function("with metrics", |b| {
        b.to_async(&runtime)
            .iter(|| async { measured.clone().oneshot(request()).await.unwrap() });
    });
    group.finish();
    // Keep the samples drained, as the facade's probe does.
    metrics.run_upkeep();
}

criterion_group!(benches, record);
criterion_main!(benches);
