//! [`bare::app`] with nothing but one JSON line per request, written to
//! standard output through the same background writer as the opsready
//! stack's: the second baseline of `scripts/load.sh`, which tells what
//! logging every request to a file costs by itself, whatever the stack.
//!
//! The line has the fields of the stack's request line (time, level,
//! target, message, status, latency, method, route, request id, trace id,
//! span id), made with `format!` in an `axum::middleware::from_fn`
//! function, as a service might log its requests by hand.
//!
//! ```sh
//! BARE_ADDR=127.0.0.1:8091 cargo run --release -p bare --bin logged > requests.log
//! ```

use std::io::Write as _;
use std::time::{Instant, SystemTime};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use opsready::telemetry::BatchWriter;

async fn log(State(writer): State<BatchWriter>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|route| route.as_str().to_owned())
        .unwrap_or_default();
    let response = next.run(request).await;
    let line = format!(
        "{{\"timestamp\":\"{}\",\"level\":\"INFO\",\"target\":\"logged::request\",\"message\":\"request finished\",\"status\":{},\"latency_ms\":{},\"method\":\"{method}\",\"route\":\"{route}\",\"request_id\":\"{}\",\"trace_id\":\"{:032x}\",\"span_id\":\"{:016x}\"}}\n",
        humantime::format_rfc3339_micros(SystemTime::now()),
        response.status().as_u16(),
        start.elapsed().as_secs_f64() * 1000.0,
        uuid::Uuid::now_v7().hyphenated(),
        fastrand::u128(..),
        fastrand::u64(..),
    );
    // Lines are dropped rather than a request failed when output fails.
    let _ = (&writer).write_all(line.as_bytes());
    response
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("BARE_ADDR").unwrap_or_else(|_| "127.0.0.1:8091".to_owned());
    let (writer, _written) = BatchWriter::new(std::io::stdout());
    let app = bare::app().layer(from_fn_with_state(writer, log));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
