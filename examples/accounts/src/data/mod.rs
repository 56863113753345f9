//! Data access: one repository per aggregate ([`Users`], [`Invoices`]) over
//! a [`Database`] that is SQLite or Postgres, as `database.url` says.
//!
//! # One enum, not a trait
//!
//! [`Database`] holds an enum of the two typed pools, and each repository
//! method writes its SQL once inside [`on_connection!`], which expands it
//! for both: the compiler checks the same code against each driver's types,
//! and there is no `dyn` trait with boxed futures, no generic parameter
//! leaking into the handlers, and no `AnyPool`, whose lowest-common-
//! denominator types lose UUIDs and timestamps. The SQL itself is shared:
//! both databases accept `$1` placeholders, `RETURNING` and
//! `ON CONFLICT`. Where they differ (column types), the migrations do,
//! one directory per backend (`migrations/sqlite`, `migrations/postgres`),
//! embedded in the binary. A query that must differ would match on the
//! pool instead of using the macro.
//!
//! # Connections
//!
//! Every repository call takes its connection through
//! [`PoolWait::acquire`], so `db_client_connection_wait_time_seconds` on
//! `/metrics` shows how long requests queue for the pool, and
//! [`Database::watch`] reports the pool's used and idle connections.

mod idempotency;
mod invoices;
mod users;

use std::str::FromStr as _;

use opsready::health::{Component, checks};
use opsready::metrics::{Metrics, PoolWait};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::settings::{Backend, DatabaseSettings};

pub(crate) use idempotency::{IdempotencyRecord, Outcome};
pub(crate) use invoices::Invoices;
pub(crate) use users::Users;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The name of the pool in metrics (`pool_name`) and of the readiness check.
pub(crate) const POOL_NAME: &str = "database";

/// The service's database: a pool of SQLite or Postgres connections.
/// Cheap to clone.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    wait: PoolWait,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        let backend = match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        };
        f.debug_struct("Database")
            .field("backend", &backend)
            .finish_non_exhaustive()
    }
}

/// Acquires a measured connection from the database's pool and runs
/// `$body` with it bound to `$conn` (a `&mut` connection of either
/// driver): the body is compiled once per backend.
macro_rules! on_connection {
    ($db:expr, |$conn:ident| $body:expr) => {
        match &$db.pool {
            $crate::data::Pool::Sqlite(pool) => {
                let mut connection = $db.wait.acquire(pool).await?;
                let $conn = &mut *connection;
                $body
            }
            $crate::data::Pool::Postgres(pool) => {
                let mut connection = $db.wait.acquire(pool).await?;
                let $conn = &mut *connection;
                $body
            }
        }
    };
}
pub(crate) use on_connection;

/// The database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// `database.url` is not a URL sqlx accepts.
    #[error("database.url is not a valid {backend} URL: {source}")]
    Url {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What sqlx said.
        source: sqlx::Error,
    },
    /// `database.url` names no backend this service speaks (settings
    /// validation refuses it first).
    #[error("database.url must start with sqlite: or postgres://")]
    UnknownBackend,
    /// The SQLite file's directory could not be created.
    #[error("cannot create the directory {path} for the SQLite database: {source}")]
    Directory {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The migrations failed.
    #[error("the database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Database {
    /// A pool for `settings`; connections open on first use, so a
    /// database that is down at start makes the service not ready rather
    /// than not start. A SQLite file's directory is created now, and the
    /// file on first connection.
    pub(crate) fn connect(
        settings: &DatabaseSettings,
        metrics: &Metrics,
    ) -> Result<Self, DatabaseError> {
        let url = settings.url.expose_secret();
        let acquire_timeout = settings.acquire_timeout.as_std();
        let pool = match settings.backend() {
            Some(Backend::Sqlite) => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|source| DatabaseError::Url {
                        backend: "sqlite",
                        source,
                    })?
                    .create_if_missing(true)
                    // Readers do not wait for the writer, and a crash
                    // loses nothing committed.
                    .journal_mode(SqliteJournalMode::Wal);
                create_parent_dir(options.get_filename())?;
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(settings.max_connections)
                        .acquire_timeout(acquire_timeout)
                        .connect_lazy_with(options),
                )
            }
            Some(Backend::Postgres) => {
                let options =
                    PgConnectOptions::from_str(url).map_err(|source| DatabaseError::Url {
                        backend: "postgres",
                        source,
                    })?;
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(settings.max_connections)
                        .acquire_timeout(acquire_timeout)
                        .connect_lazy_with(options),
                )
            }
            None => return Err(DatabaseError::UnknownBackend),
        };
        Ok(Self {
            pool,
            wait: metrics.pool_wait(POOL_NAME),
        })
    }

    /// Applies the migrations embedded in the binary that the database
    /// lacks. Safe with several instances starting at once: sqlx takes a
    /// lock (an advisory lock on Postgres, the write lock on SQLite).
    pub(crate) async fn migrate(&self) -> Result<(), DatabaseError> {
        match &self.pool {
            Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// The readiness check: critical, since without its database the
    /// service can answer nothing but errors.
    pub(crate) fn check(&self) -> Component {
        let component = match &self.pool {
            Pool::Sqlite(pool) => Component::new(POOL_NAME, checks::sqlite(pool.clone())),
            Pool::Postgres(pool) => Component::new(POOL_NAME, checks::postgres(pool.clone())),
        };
        component.component_type("datastore")
    }

    /// Reports the pool's connections on `/metrics`.
    pub(crate) fn watch(&self, metrics: &Metrics) {
        match &self.pool {
            Pool::Sqlite(pool) => metrics.watch_sqlx_pool(POOL_NAME, pool.clone()),
            Pool::Postgres(pool) => metrics.watch_sqlx_pool(POOL_NAME, pool.clone()),
        }
    }

    /// Closes the pool: waiting callers and new ones get an error, open
    /// connections close as they are returned. What a shutdown does, and
    /// what readiness reports as a database it cannot reach.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// The users.
    pub(crate) fn users(&self) -> Users<'_> {
        Users::new(self)
    }

    /// The invoices and their idempotency keys.
    pub(crate) fn invoices(&self) -> Invoices<'_> {
        Invoices::new(self)
    }
}

fn create_parent_dir(file: &std::path::Path) -> Result<(), DatabaseError> {
    let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    std::fs::create_dir_all(dir).map_err(|source| DatabaseError::Directory {
        path: dir.display().to_string(),
        source,
    })
}

/// One page of a list, oldest first.
#[derive(Debug)]
pub(crate) struct Slice<T> {
    pub(crate) items: Vec<T>,
    /// Whether more items follow the last one.
    pub(crate) has_more: bool,
}

impl<T> Slice<T> {
    /// `rows` fetched with one more than `limit`: the extra one, dropped,
    /// says whether a next page exists, so the last page is never empty.
    fn of(mut rows: Vec<T>, limit: crate::domain::Limit) -> Self {
        let limit = usize::try_from(limit.get()).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        Self {
            items: rows,
            has_more,
        }
    }
}

/// The row count to fetch for a page of `limit`: one more, for [`Slice::of`].
fn fetch_count(limit: crate::domain::Limit) -> i64 {
    i64::from(limit.get()) + 1
}

/// Why a repository call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DataError {
    /// No row with that id.
    #[error("not found")]
    NotFound,
    /// Another user has the email address.
    #[error("the email address belongs to another user")]
    EmailTaken,
    /// The user is the customer of invoices, which must not lose their
    /// customer.
    #[error("the user has invoices")]
    HasInvoices,
    /// The invoice's customer does not exist.
    #[error("no user is the invoice's customer")]
    UnknownCustomer,
    /// The invoice was paid before.
    #[error(transparent)]
    AlreadyPaid(#[from] crate::domain::AlreadyPaid),
    /// A stored row breaks a rule of the domain: a bug or a hand edit.
    #[error("a stored row is invalid: {0}")]
    Corrupt(String),
    /// The database failed or could not be reached.
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
}

impl DataError {
    fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }
}

/// Whether `error` is the database refusing a duplicate of a unique column.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// Whether `error` is the database refusing a dangling or still-referenced
/// foreign key.
fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_foreign_key_violation())
}
