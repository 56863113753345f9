//! The accounts service: users and billing over SQLite or Postgres, the
//! full adoption of opsready.
//!
//! # Where to look
//!
//! - [`settings`](Settings): the service's own settings (`database.*`,
//!   `passwords.*`), loaded beside opsready's with one prefix, `ACCOUNTS`.
//! - `http/`: one router per domain (`users`, `billing`), thin handlers
//!   that extract with opsready's problem extractors, call the domain and
//!   the data layer, and map errors to problems.
//! - `domain/`: the rules, as types with `parse` constructors (`Email`,
//!   `UserName`, `Password`, `Money`, `InvoiceState`, tax engines), each
//!   unit-tested.
//! - `data/`: a repository per aggregate over [`Database`], which is
//!   SQLite or Postgres as `database.url` says, with embedded migrations.
//! - This file: [`Application::build`], which wires opsready (readiness
//!   check, pool metrics, the feature flag, migrations at startup) around
//!   [`app`].
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = opsready::settings::<accounts::Settings>("ACCOUNTS");
//! let application = accounts::Application::build(&settings).await?;
//! println!("listening on {}", application.local_addr());
//! application.run_until_stopped().await?;
//! # Ok(()) }
//! ```

mod data;
mod domain;
mod http;
mod settings;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use opsready::flags::{Flag, Flags, Kind};
use opsready::telemetry::Blocking;
use opsready::{Ops, ServeError, Server};

pub use data::{Database, DatabaseError};
pub use settings::{DEFAULT_DATABASE_URL, DatabaseSettings, PasswordSettings, Settings};

use domain::Hasher;

/// The feature flag that picks the tax engine of new invoices: off, v1
/// (20 % of the subtotal, rounded once); on, v2 (20 % of each line, each
/// rounded). Evaluated with the customer's id as targeting key.
pub const TAX_ENGINE_V2: &str = "billing.tax_engine_v2";

/// The flags this service declares: created in the store on first start
/// (off), never overwriting what an operator changed since.
pub fn flags() -> Vec<Flag> {
    vec![
        Flag::boolean(TAX_ENGINE_V2)
            .kind(Kind::Release)
            .owner("team-billing")
            .description(
                "Computes the tax of new invoices per line (v2) instead of per invoice (v1). \
                 Safe to kill: invoices made meanwhile keep the engine they were taxed with.",
            ),
    ]
}

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    db: Database,
    blocking: Blocking,
    flags: Flags,
    hasher: Hasher,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.db)
            .field("blocking", &self.blocking)
            .field("hasher", &self.hasher)
            .finish_non_exhaustive()
    }
}

/// The OpenAPI 3.1 document of the service, as `GET /openapi.json`
/// answers it: pretty-printed JSON, members sorted, so that the committed
/// `docs/openapi.json` changes only when the contract does.
pub fn openapi_json() -> String {
    http::openapi_json()
}

/// The service's routes (users and billing, `/openapi.json`), without opsready's layers:
/// [`Ops::router`] adds those, as [`Application::build`] does.
pub fn app(state: AppState) -> Router {
    http::router().with_state(state)
}

/// The service, bound and ready to run.
pub struct Application {
    server: Server,
    database: Database,
}

impl fmt::Debug for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Application")
            .field("server", &self.server)
            .field("database", &self.database)
            .finish()
    }
}

/// The service could not be built.
///
/// Its `Debug` is its message, so that `main` returning it prints a
/// sentence an operator can act on.
pub struct BuildError {
    kind: BuildErrorKind,
}

enum BuildErrorKind {
    Database(DatabaseError),
    Passwords(String),
    Serve(ServeError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BuildErrorKind::Database(error) => error.fmt(f),
            BuildErrorKind::Passwords(error) => write!(f, "the passwords settings: {error}"),
            BuildErrorKind::Serve(error) => error.fmt(f),
        }
    }
}

impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            BuildErrorKind::Database(error) => Some(error),
            BuildErrorKind::Passwords(_) => None,
            BuildErrorKind::Serve(error) => Some(error),
        }
    }
}

impl From<DatabaseError> for BuildError {
    fn from(error: DatabaseError) -> Self {
        Self {
            kind: BuildErrorKind::Database(error),
        }
    }
}

impl From<ServeError> for BuildError {
    fn from(error: ServeError) -> Self {
        Self {
            kind: BuildErrorKind::Serve(error),
        }
    }
}

impl Application {
    /// Opens the flags and the database pool, registers the readiness
    /// check, the pool metrics and the migrations (a startup hook, so
    /// `/startupz` and `/readyz` say 503 until they ran), and binds the
    /// listeners of `server.addr` and `admin.addr` (port 0 works).
    ///
    /// The database is connected lazily: one that is down makes the
    /// service fail its startup hook (and stop) rather than this call.
    pub async fn build(settings: &opsready::Settings<Settings>) -> Result<Self, BuildError> {
        let hasher = settings.passwords.hasher().map_err(|error| BuildError {
            kind: BuildErrorKind::Passwords(error.to_string()),
        })?;
        let mut ops = Ops::new(settings).build_info(opsready::build_info!());
        let flags = ops.open_flags(flags()).await?;
        let database = Database::connect(&settings.database, ops.metrics())?;
        database.watch(ops.metrics());
        let migrating = database.clone();
        let ops = ops
            .check(database.check())
            .on_startup(move || async move { migrating.migrate().await });
        let state = AppState {
            db: database.clone(),
            blocking: ops.blocking(),
            flags,
            hasher,
        };
        let server = ops.bind(app(state)).await?;
        Ok(Self { server, database })
    }

    /// The main listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The admin listener's address, unless the admin routes are mounted
    /// under `/admin` on the main listener.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.server.admin_addr()
    }

    /// The database, e.g. to close it.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Serves until SIGTERM or Ctrl-C, then drains and stops.
    pub async fn run_until_stopped(self) -> Result<(), ServeError> {
        self.run_until(opsready::shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then drains and stops; closes
    /// the pool once the last request finished.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let outcome = self.server.run_until(shutdown).await;
        self.database.close().await;
        outcome
    }
}
