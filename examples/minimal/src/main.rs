//! The smallest real adoption of opsready: typed settings, probes, the error
//! envelope, request ids, an admin listener and a graceful shutdown.
//!
//! ```sh
//! cargo run -p minimal
//! curl -i localhost:8080/hello/ops
//! curl -i localhost:8080/readyz?verbose
//! MINIMAL__ADMIN__TOKEN=change-me-to-16-chars cargo run -p minimal
//! curl -H 'Authorization: Bearer change-me-to-16-chars' localhost:9091/admin/config
//! MINIMAL__TELEMETRY__LOG__FORMAT=json cargo run -p minimal   # JSON log lines
//! MINIMAL__TELEMETRY__OTLP__ENDPOINT=http://localhost:4317 cargo run -p minimal
//! ```

#[tokio::main]
async fn main() -> Result<(), opsready::ServeError> {
    let settings = opsready::settings::<minimal::Settings>("MINIMAL");
    let app = minimal::app(&settings);
    opsready::Ops::new(&settings)
        .build_info(opsready::build_info!())
        .serve(app)
        .await
}
