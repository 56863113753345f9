//! The servers of `scripts/load.sh`: one trivial route served by bare axum
//! (`bare`), by bare axum logging one JSON line per request to standard
//! output (`logged`), behind a stack assembled by hand from tower-http,
//! metrics-exporter-prometheus and tracing-subscriber (`handmade`), and
//! behind the whole opsready stack (`stack`), so that the load benchmark
//! measures the stack and nothing else. `requests` runs the route in
//! process, for instruction counts.
//!
//! ```sh
//! BARE_ADDR=127.0.0.1:8090 cargo run --release -p bare --bin bare
//! BARE_ADDR=127.0.0.1:8091 cargo run --release -p bare --bin logged > requests.log
//! BARE_ADDR=127.0.0.1:8092 cargo run --release -p bare --bin handmade > requests.log
//! STACK__SERVER__ADDR=127.0.0.1:8080 cargo run --release -p bare --bin stack
//! ```

use std::collections::BTreeMap;

use axum::routing::get;
use axum::{Json, Router};

/// `GET /hello`, answering `{"message":"Hello, world!"}`.
pub fn app() -> Router {
    Router::new().route("/hello", get(hello))
}

async fn hello() -> Json<BTreeMap<&'static str, &'static str>> {
    Json(BTreeMap::from([("message", "Hello, world!")]))
}
