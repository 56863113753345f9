//! Liveness, readiness and startup probes for axum services: dependency
//! checks bounded in time and cached against probe storms, a lifecycle that
//! drains before shutdown, and the Kubernetes and health-check-draft answers.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use axum::{Router, body::Body, http::Request};
//! use opsready_health::{Component, Health, checks};
//! use tower::ServiceExt as _;
//!
//! let health = Health::new()
//!     .component(Component::new("database", || async { Ok::<(), std::io::Error>(()) }))
//!     .component(
//!         Component::new("search", checks::tcp("127.0.0.1:1"))
//!             .non_critical()
//!             .timeout(Duration::from_millis(200)),
//!     );
//! let app: Router = Router::new().merge(health.router());
//!
//! // Before startup finishes, readiness is 503.
//! let probe = || Request::get("/readyz?verbose").body(Body::empty()).unwrap();
//! let response = app.clone().oneshot(probe()).await.unwrap();
//! assert_eq!(response.status(), 503);
//!
//! // Ready, with a non-critical dependency down: 200, with the failure shown.
//! health.lifecycle().set_ready();
//! let response = app.clone().oneshot(probe()).await.unwrap();
//! assert_eq!(response.status(), 200);
//! let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
//! let body = String::from_utf8(body.to_vec()).unwrap();
//! assert!(body.starts_with("[+]database ok\n[-]search failed (non-critical): cannot connect"));
//! assert!(body.ends_with("readyz check passed\n"));
//!
//! // Draining: readiness is 503 at once, liveness stays 200.
//! health.lifecycle().start_draining();
//! let response = app.clone().oneshot(probe()).await.unwrap();
//! assert_eq!(response.status(), 503);
//! let live = Request::get("/livez").body(Body::empty()).unwrap();
//! assert_eq!(app.oneshot(live).await.unwrap().status(), 200);
//! # });
//! ```
//!
//! # What each probe means
//!
//! - `/livez`: the process can serve. It runs no check and does no I/O: a
//!   failing liveness probe restarts the container, and a database outage
//!   must not restart every replica at once.
//! - `/readyz`: send me traffic. Critical checks that fail make it 503;
//!   non-critical ones make it `warn` (still 200). It is 503 before startup
//!   finishes and from the first instant of draining.
//! - `/startupz`: startup hooks finished. Until then the kubelet holds off the
//!   other probes.
//!
//! # Gotchas
//!
//! - Each check runs at most once per cache interval, however many probes
//!   arrive: concurrent probes wait for the run under way and share its
//!   reading, whose `time` is when it was taken.
//! - A check that exceeds its timeout, or panics, is a failing reading; the
//!   probe itself answers at most 250 ms after the timeout, also when a
//!   check never yields (a synchronous call in `block_in_place`), which
//!   the timeout alone cannot interrupt. Checks must wait, not block: one
//!   that blocks a runtime worker outright holds that thread, and can hold
//!   the tasks queued on it, the probe's among them, until it returns.
//! - The `output` of a failing check is visible to anyone who can reach the
//!   probe, unless [`Health::show_output`]`(false)` (`health.show_output`
//!   in opsready) hides it: say what failed, not credentials.
//! - A check whose status changes is logged once: `error` when a critical
//!   check fails (the instance leaves the load balancer), `warn` for a
//!   warning or a non-critical failure, `info` when it passes again, each
//!   with the check's name and output. Readings that repeat the status
//!   before them are not logged.
//! - The SQL checks (`postgres`, `sqlite`) do not wait for a connection
//!   when every connection of the pool is in use (none idle, the pool at
//!   its maximum size), rather than time out and fail on every instance at
//!   once under load. The Postgres check asks the database on a connection
//!   of its own instead: it warns, so the instance stays ready, when the
//!   database answers (with an error too: at its connection limit), and
//!   fails when nothing answers; the SQLite check warns. The price: a
//!   database that accepts connections but hangs with every pooled one
//!   stuck can still show as `warn`; the pool metrics
//!   (`db_client_connection_count{state="used"}` at
//!   `db_client_connection_max`) and the error rate show it.
//!
//! # Feature flags
//!
//! | feature | adds |
//! |---|---|
//! | `http` | [`checks::http`][crate::checks]: an upstream answers 2xx (3xx and 4xx warn; 5xx and no answer fail), over `http://` or `https://` (the system's TLS library) |
//! | `postgres` | `checks::postgres`: `SELECT 1` on a sqlx `PgPool` |
//! | `sqlite` | `checks::sqlite`: `SELECT count(*) FROM sqlite_master` on a sqlx `SqlitePool` |
//! | `redis` | `checks::redis`: `PING` |
//!
//! The TCP check needs no feature.

mod check;
pub mod checks;
mod health;
mod lifecycle;

pub use check::{
    Check, Component, DEFAULT_CACHE_INTERVAL, DEFAULT_TIMEOUT, IntoReading, Reading, Stamped,
    Status,
};
pub use health::{HEALTH_JSON, Health, Report};
pub use lifecycle::{Lifecycle, Phase};
