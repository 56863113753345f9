//! The accounts example service: users and billing over SQLite or
//! Postgres, with probes, the error envelope, metrics, a feature flag and
//! a graceful shutdown from opsready.
//!
//! ```sh
//! cargo run -p accounts                       # SQLite in ./data/accounts.db
//! ACCOUNTS__DATABASE__URL=postgres://postgres@127.0.0.1:5432/accounts cargo run -p accounts
//! curl -i 'localhost:8080/readyz?verbose'
//! curl -i localhost:8080/users -H 'content-type: application/json' \
//!   -d '{"email": "ann@example.com", "name": "Ann", "password": "correct horse"}'
//! ```
//!
//! See `examples/accounts/README.md` for the billing routes, the
//! `Idempotency-Key` and the flag `billing.tax_engine_v2`.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = opsready::settings::<accounts::Settings>("ACCOUNTS");
    // Before anything logs, as Ops::serve would: logs, span export
    // (telemetry.otlp) and error events (telemetry.sentry). Application
    // binds itself, so that tests learn its port, and so installs them here.
    let telemetry = opsready::Ops::new(&settings)
        .build_info(opsready::build_info!())
        .install_telemetry()?;
    let outcome = match accounts::Application::build(&settings).await {
        Ok(application) => application.run_until_stopped().await.map_err(Into::into),
        Err(error) => Err(error.into()),
    };
    // Blocks while the last spans and log lines are sent and written.
    telemetry.shutdown().await;
    outcome
}
