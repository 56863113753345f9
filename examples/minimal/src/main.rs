//! The smallest real adoption of opsready: typed settings, probes, the error
//! envelope, request ids, an admin listener and a graceful shutdown.
//!
//! ```sh
//! cargo run -p minimal
//! curl -i localhost:8080/hello/ops
//! curl -i 'localhost:8080/readyz?verbose'
//! MINIMAL__ADMIN__TOKEN=change-me-to-16-chars cargo run -p minimal
//! curl -H 'Authorization: Bearer change-me-to-16-chars' localhost:9091/admin/config
//! MINIMAL__TELEMETRY__LOG__FORMAT=json cargo run -p minimal   # JSON log lines
//! MINIMAL__TELEMETRY__OTLP__ENDPOINT=http://localhost:4317 cargo run -p minimal
//! ```
//!
//! The flag `greeting.shout` lives in `./data/flags.json` (`flags.store`);
//! turn it on, kill it and roll it back through `/admin/flags` (see
//! `docs/flags.md`) or by editing the file.

#[tokio::main]
async fn main() -> Result<(), opsready::ServeError> {
    let settings = opsready::settings::<minimal::Settings>("MINIMAL");
    let mut ops = opsready::Ops::new(&settings).build_info(opsready::build_info!());
    let flags = ops.open_flags(minimal::flags()).await?;
    ops.serve(minimal::app(&settings, flags)).await
}
