//! The recording cost of the RED metrics per request: the same in-process
//! router with and without `MetricsLayer` (which includes the boxing axum
//! does for any layered router), and the layer alone around a bare service,
//! which is the recording itself: the active-requests gauge up and down,
//! the duration histogram, and an exemplar.
//!
//! ```sh
//! cargo bench -p opsready-metrics --bench record
//! ```

#![allow(missing_docs, clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use opsready_metrics::{Metrics, MetricsLayer};
use tower::{Layer as _, ServiceExt as _};

fn app() -> Router {
    Router::new().route("/hello/{name}", get(|| async { "hi" }))
}

fn record(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // With the state given, as `axum::serve` does: the handlers become
    // routes once, not at every request.
    let bare = app().with_state(());
    let metrics = Metrics::new();
    let measured = app()
        .layer(MetricsLayer::new(metrics.clone()))
        .with_state(());
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

    // The layer around a service that answers at once: what remains is
    // the layer's own work. No router, so the route is `unmatched`; a
    // matched route costs the same cached lookup.
    let answer = tower::service_fn(|_request: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
    });
    let layered = MetricsLayer::new(metrics.clone()).layer(answer);
    let exemplars = MetricsLayer::new(metrics.clone())
        .exemplars(|_| Some(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c))
        .layer(answer);
    let mut group = c.benchmark_group("recording");
    group.bench_function("bare service", |b| {
        b.to_async(&runtime)
            .iter(|| async { answer.oneshot(request()).await.unwrap() });
    });
    group.bench_function("with metrics", |b| {
        b.to_async(&runtime)
            .iter(|| async { layered.clone().oneshot(request()).await.unwrap() });
    });
    group.bench_function("with metrics and exemplars", |b| {
        b.to_async(&runtime)
            .iter(|| async { exemplars.clone().oneshot(request()).await.unwrap() });
    });
    group.finish();
    // Keep the samples drained, as the facade's probe does.
    metrics.run_upkeep();
}

criterion_group!(benches, record);
criterion_main!(benches);
