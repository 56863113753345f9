#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use opsready::settings::{Loader, Validate};
use tower::ServiceExt as _;

#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
struct NoSettings {}
impl Validate for NoSettings {}

fn app() -> Router {
    Router::new().route("/hello", get(|| async { "Hello, world!" }))
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(20000, |s| s.parse().unwrap());
    let bare_only = std::env::args().nth(2).is_some();
    let dir = tempfile::tempdir().unwrap();
    let loader = Loader::new("BENCH")
        .config_dir(dir.path().join("no-config"))
        .env([("BENCH__TELEMETRY__LOG__FORMAT", "json")]);
    let settings = opsready::load::<NoSettings>(&loader).unwrap();
    let _guard = opsready::telemetry::init(
        &settings.ops.telemetry,
        &opsready::telemetry::ServiceInfo::new("cg", "1"),
    )
    .unwrap();
    let ops = opsready::Ops::new(&settings);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let router = if bare_only {
        app().with_state(())
    } else {
        ops.router(app()).with_state(())
    };
    runtime.block_on(async {
        for _ in 0..n {
            let r = router
                .clone()
                .oneshot(
                    Request::get("/hello")
                        .header("host", "127.0.0.1:18080")
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    });
}
