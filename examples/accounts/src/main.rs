//! The accounts example service: users and billing over SQLite or
//! Postgres, with probes, the error envelope, metrics, a feature flag and
//! a graceful shutdown from opsready.
//!
//! ```sh
//! cargo run -p accounts                       # SQLite in ./data/accounts.db
//! ACCOUNTS__DATABASE__URL=postgres://postgres@127.0.0.1:5432/accounts cargo run -p accounts
//! curl -i localhost:8080/readyz?verbose
//! curl -i localhost:8080/users -H 'content-type: application/json' \
//!   -d '{"email": "ann@example.com", "name": "Ann", "password": "correct horse"}'
//! ```
//!
//! See `examples/accounts/README.md` for the billing routes, the
//! `Idempotency-Key` and the flag `billing.tax_engine_v2`.

use opsready::telemetry::ServiceInfo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = opsready::settings::<accounts::Settings>("ACCOUNTS");
    // Before anything logs. Ops::serve does this itself; Application binds
    // first so that tests know the port, and so installs it here.
    let service = ServiceInfo::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
    let telemetry = match opsready::telemetry::init(&settings.ops.telemetry, &service) {
        Ok(guard) => Some(guard),
        Err(error) => {
            eprintln!("warning: {error}");
            None
        }
    };
    let application = accounts::Application::build(&settings).await?;
    let outcome = application.run_until_stopped().await;
    if let Some(telemetry) = telemetry {
        // Blocks while the last log lines are written.
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    }
    Ok(outcome?)
}
