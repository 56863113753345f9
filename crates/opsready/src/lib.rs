//! Production readiness for an axum service in about ten lines: typed
//! settings from files and environment, liveness/readiness/startup probes,
//! one error envelope for every failure, request ids, limits that answer
//! instead of dropping connections, an admin listener, and a graceful
//! shutdown that drains before it stops.
//!
//! # Example
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use opsready::{Ops, settings::Validate};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, Serialize)]
//! struct AppSettings {
//!     greeting: String,
//! }
//!
//! impl Validate for AppSettings {}
//!
//! #[tokio::main]
//! async fn main() -> Result<(), opsready::ServeError> {
//!     // MINIMAL__SERVER__ADDR, MINIMAL__GREETING, config/*.toml, --set …;
//!     // exits 78 naming every bad key.
//!     let settings = opsready::settings::<AppSettings>("MINIMAL");
//!     let greeting = settings.greeting.clone();
//!     let app = Router::new().route("/hello", get(move || async move { greeting }));
//!     Ops::new(&settings)
//!         .build_info(opsready::build_info!())
//!         .serve(app)
//!         .await
//! }
//! ```
//!
//! # The HTTP contract
//!
//! | listener | path | answer |
//! |---|---|---|
//! | main (`server.addr`) | `/livez`, `/readyz`, `/readyz/{check}`, `/startupz` | the probes of [`opsready_health`] |
//! | main | the service's routes | with a body limit, a timeout and load shedding |
//! | main | anything else | 404 problem (or the service's own fallback, when it set one) |
//! | admin (`admin.addr`) | `/admin/info` | name, version, git commit, build time |
//! | admin | `/admin/config` | the redacted settings with origins; needs `Authorization: Bearer <admin.token>` (401 without or wrong, 404 when no token is configured) |
//! | admin | `/metrics` | Prometheus text 0.0.4, or OpenMetrics 1.0.0 with exemplars when asked |
//! | admin | `/admin/flags…` | the flags API once [`Ops::open_flags`] ran (list, read, `PUT` and rollback with `If-Match`, kill, history); behind the token like `/admin/config` |
//!
//! Every response carries `x-request-id` and `traceparent`; every request
//! gets a span and a log line ([`opsready_telemetry`]); every 4xx and 5xx is
//! `application/problem+json` ([`opsready_problem`]).
//!
//! # Settings
//!
//! [`OpsSettings`] documents the keys opsready reads; they share the
//! service's namespace (`MINIMAL__SERVER__ADDR`, `MINIMAL__ADMIN__TOKEN`),
//! loaded by [`settings()`] with [`opsready_settings`].
//!
//! # Feature flags
//!
//! | feature | adds |
//! |---|---|
//! | `http-check` | the HTTP upstream check of [`opsready_health::checks`] |
//! | `postgres` | the Postgres check (sqlx) |
//! | `sqlite` | the SQLite check (sqlx) |
//! | `redis` | the Redis check |
//! | `utoipa` | the envelope's OpenAPI schema |
//! | `sentry` | Sentry events for 5xx answers and panics (`telemetry.sentry.dsn`) |
//! | `otlp` | OTLP export of the request spans to an OpenTelemetry collector (`telemetry.otlp.*`) |
//! | `flags-postgres` | a Postgres flag store (`flags.store = "postgres://…"`), changes pushed to every instance |

mod admin;
mod build_info;
mod flags_admin;
mod ops_settings;
mod reference;
mod serve;

pub use build_info::BuildInfo;
pub use ops_settings::{
    AdminSettings, DEFAULT_FLAG_STORE, FlagsSettings, HealthSettings, HttpSettings,
    MAX_CONCURRENCY, MIN_TOKEN_LEN, MetricsSettings, OpsSettings, ServerSettings, Settings,
    ShutdownSettings, load, settings,
};
pub use reference::config_reference;
pub use serve::{DEADLINE_EXIT_CODE, Ops, ServeError, Server, TelemetryGuards, shutdown_signal};

/// Feature flags: definitions, evaluation, stores, history and rollback.
pub use opsready_flags as flags;
/// Probes, checks and the lifecycle.
pub use opsready_health as health;
/// RED metrics and their catalog.
pub use opsready_metrics as metrics;
/// The error envelope.
pub use opsready_problem as problem;
/// Typed layered settings (a module beside the [`settings()`] function).
pub use opsready_settings as settings;
/// Request ids, trace context, logs and blocking work.
pub use opsready_telemetry as telemetry;
