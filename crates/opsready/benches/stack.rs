//! The in-process cost per request of the whole stack `Ops::serve` puts
//! around a service (request id, trace context, span and JSON line written
//! to a file, metrics, problem layer, panic catcher, timeout, load
//! shedding): the same trivial route with and without it. No sockets, so
//! the number is the stack's own work, steady from run to run; the load
//! benchmark (`scripts/load.sh`) shows what it costs over HTTP.
//!
//! ```sh
//! cargo bench -p opsready --bench stack
//! ```

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use opsready::settings::{Loader, Validate};
use opsready::telemetry::{BatchWriter, LogFormat, TelemetrySettings};
use tower::ServiceExt as _;

#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
struct NoSettings {}

impl Validate for NoSettings {}

fn app() -> Router {
    Router::new().route("/hello", get(|| async { "Hello, world!" }))
}

fn request() -> Request<Body> {
    Request::get("/hello").body(Body::empty()).unwrap()
}

fn stack(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    // As `Ops::serve` installs it, with the lines going to a file instead
    // of standard output.
    let (writer, _guard) = BatchWriter::new(File::create(dir.path().join("bench.log")).unwrap());
    let mut telemetry = TelemetrySettings::default();
    telemetry.log.format = Some(LogFormat::Json);
    let subscriber = opsready::telemetry::subscriber(&telemetry, writer).unwrap();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let loader = Loader::new("BENCH")
        .config_dir(dir.path().join("no-config"))
        .env([("BENCH__TELEMETRY__LOG__FORMAT", "json")]);
    let settings = opsready::load::<NoSettings>(&loader).unwrap();
    let ops = opsready::Ops::new(&settings);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // With the state given, as `axum::serve` does: the handlers become
    // routes once, not at every request.
    let bare = app().with_state(());
    let full = ops.router(app()).with_state(());

    let mut group = c.benchmark_group("stack");
    group.bench_function("bare axum", |b| {
        b.to_async(&runtime)
            .iter(|| async { bare.clone().oneshot(request()).await.unwrap() });
    });
    group.bench_function("opsready stack", |b| {
        b.to_async(&runtime)
            .iter(|| async { full.clone().oneshot(request()).await.unwrap() });
    });
    group.finish();
}

criterion_group!(benches, stack);
criterion_main!(benches);
