//! Bare axum serving the same trivial route as `examples/minimal`, with
//! nothing else: the baseline of `scripts/load.sh`.
//!
//! ```sh
//! BARE_ADDR=127.0.0.1:8090 cargo run --release -p bare
//! ```

use axum::routing::get;
use axum::{Json, Router};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("BARE_ADDR").unwrap_or_else(|_| "127.0.0.1:8090".to_owned());
    let app = Router::new().route("/hello", get(|| async { Json(greeting()) }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}

/// The same body `minimal` answers on `/hello`.
fn greeting() -> std::collections::BTreeMap<&'static str, &'static str> {
    std::collections::BTreeMap::from([("message", "Hello, world!")])
}
