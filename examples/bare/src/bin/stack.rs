//! [`bare::app`] behind the whole opsready stack, as `Ops::serve` composes
//! it (request ids, trace context, a span and a log line per request,
//! metrics, the problem layer, timeout, load shedding, panic catcher):
//! what `scripts/load.sh` compares with bare axum. Settings come from
//! `STACK__*` variables and `config/`, like any opsready service.
//!
//! ```sh
//! STACK__SERVER__ADDR=127.0.0.1:8080 STACK__TELEMETRY__LOG__FORMAT=json \
//!   cargo run --release -p bare --bin stack
//! ```

/// The route has no settings of its own.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
struct NoSettings {}

impl opsready::settings::Validate for NoSettings {}

#[tokio::main]
async fn main() -> Result<(), opsready::ServeError> {
    let settings = opsready::settings::<NoSettings>("STACK");
    opsready::Ops::new(&settings).serve(bare::app()).await
}
