//! A store in Postgres, shared by a fleet: every instance sees a change
//! within a second, through `LISTEN`/`NOTIFY`.
//!
//! This module is private: the example, the tables and the gotchas are
//! documented on [`PostgresStore`], where users of the crate read them.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Row};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::{Action, AuditEntry, BoxFuture, Change, Store, StoredFlag};
use crate::error::Error;
use crate::flag::Flag;

/// The tables, embedded in the binary.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connections of the pool [`PostgresStore::connect`] opens. Flags are
/// loaded when they change and written by people: a few connections are
/// plenty, and every instance of a fleet opens this many.
const POOL_SIZE: u32 = 4;

/// How the listener's connection shows in `pg_stat_activity`: this, a
/// space and the schema (Postgres keeps the first 63 bytes).
const LISTENER_NAME: &str = "opsready-flags listener";

/// The `application_name` of the listener of the store in `schema`.
fn listener_name(schema: &str) -> String {
    format!("{LISTENER_NAME} {schema}")
}

/// The longest schema name: Postgres cuts identifiers at 63 bytes, and
/// the channel adds `_changes` to it.
const MAX_SCHEMA_LEN: usize = 63 - "_changes".len();

/// The first wait before connecting again after a listener that had failed
/// at once, and the longest.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(10);

/// After this long without a message on the listening connection, the
/// store asks it for an answer: see [`PostgresStoreBuilder::heartbeat`].
const QUIET_FOR: Duration = Duration::from_secs(30);

/// How long the listening connection has to answer the store's question
/// before it is taken for dead.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// A [`Store`] in Postgres, shared by a fleet: definitions and their audit
/// log in two tables, each change applied in one transaction, and every
/// instance told of every change within a second through
/// `LISTEN`/`NOTIFY`.
///
/// Cheap to clone (one `Arc`): clones share the pool and the listener,
/// which stops when the last clone is dropped.
///
/// # Example
///
/// ```no_run
/// # async fn run() -> Result<(), opsready_flags::Error> {
/// use opsready_flags::{EvaluationContext, Flag, Flags, PostgresStore};
///
/// // Creates the schema `opsready_flags` and its tables when missing.
/// let store = PostgresStore::connect("postgres://app@db.internal/shop").await?;
/// let flags = Flags::new(store).await?;
/// // Refreshes whenever any instance changes a flag.
/// tokio::spawn(flags.follow());
///
/// flags.declare([Flag::boolean("checkout.new-flow")]).await?;
/// let ctx = EvaluationContext::new().targeting_key("user-7");
/// assert!(!flags.bool_value("checkout.new-flow", &ctx, false));
///
/// // Changed by an operator on any instance; audited.
/// flags.kill("checkout.new-flow", "alice", "incident 42").await?;
/// let history = flags.history("checkout.new-flow").await?;
/// assert_eq!(history.last().map(|entry| entry.action.as_str()), Some("kill"));
/// # Ok(())
/// # }
/// ```
///
/// # Tables
///
/// In the store's schema (`opsready_flags` unless chosen with
/// [`PostgresStore::from_pool_in_schema`]):
///
/// - `definitions`: one row per key ever written: `key` (primary key),
///   `version` (the latest, counting deletes), `definition` (`jsonb`,
///   `NULL` once deleted) and `updated_at`;
/// - `audit_log`: one row per change, append-only (a trigger refuses
///   updates, deletes and truncation): `key`, `version`, `action`,
///   `actor`, `reason`, `at`, `before` and `after` (`jsonb`) and
///   `restores`.
///
/// Definitions are stored as written, fields this version does not know
/// included, so an older binary keeps what a newer one stored.
///
/// # Gotchas
///
/// - **Migrations run at every start**, under an advisory lock, so that
///   instances starting together migrate once. The first start creates the
///   schema, which needs `CREATE` on the database (or a schema created and
///   granted beforehand). Applied migrations are recorded in the schema's
///   own `_sqlx_migrations` table, apart from the application's.
/// - **Changes are announced on the channel `<schema>_changes`**
///   (`opsready_flags_changes`) with the key as payload, sent in the
///   change's transaction and so delivered only when it commits. Editing
///   the tables by hand skips the audit log and the announcement: if you
///   must, `SELECT pg_notify('opsready_flags_changes', '')` afterwards so
///   that every instance loads again.
/// - **A change reaches other instances within a second**, usually within
///   milliseconds, provided each one runs [`Flags::follow`](crate::Flags::follow).
///   When the listening connection drops, the store reconnects (at once,
///   then backing off up to ten seconds) and then reports a change, since
///   announcements sent meanwhile were lost.
/// - **A listening connection that dies silently is found by a heartbeat.**
///   A firewall or a failover can drop a connection without a reset, and
///   the operating system would notice only after many minutes, in which
///   no change reaches the instance. So after 30 seconds without a message
///   the store asks that connection for its server's process id
///   (`pg_backend_pid()`); with no answer within 10 seconds it opens a new
///   one and reports a change, as above. Tune both with
///   [`PostgresStore::builder`]. An answer from another process than before
///   means the driver connected again on its own, while the quiet timer
///   cut a receive short: that reports a change too, as does the first
///   answer after a reconnection the driver reported.
/// - **`LISTEN` needs a session of its own**: point the store at Postgres
///   or at a pooler in session mode, not at one in transaction mode.
/// - **Pool sizing**: [`connect`](PostgresStore::connect) opens a pool of
///   at most four connections; [`from_pool`](PostgresStore::from_pool)
///   shares yours, borrowing a connection only while loading or writing.
///   Either way the listener holds one more connection of its own (named
///   `opsready-flags listener <schema>` in `pg_stat_activity`, so that the
///   listeners of several services on one database tell apart), so count
///   one per instance against the server's `max_connections`.
/// - Never log the URL: it may hold a password. Errors of this store name
///   the host, port and database only.
///
/// See the [`Store`] trait for what every store guarantees.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    schema: String,
    channel: String,
    sql: Sql,
    revision: watch::Sender<u64>,
    listener: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The task holds no reference to the store, so nothing else would
        // end it: without this, every dropped store would keep a connection
        // listening until the runtime shuts down.
        self.listener.abort();
    }
}

impl PostgresStore {
    /// The schema of [`connect`](Self::connect) and
    /// [`from_pool`](Self::from_pool).
    pub const DEFAULT_SCHEMA: &'static str = "opsready_flags";

    /// Connects to the database at `url` (`postgres://user:password@host/db`),
    /// with a pool of at most four connections, migrates the schema
    /// `opsready_flags` and starts listening for changes.
    ///
    /// Three query parameters of the URL are the store's, not the
    /// driver's, so that a URL in `flags.store` says everything:
    ///
    /// | parameter | default | what |
    /// |---|---|---|
    /// | `schema` | `opsready_flags` | the schema of the tables (see [`from_pool_in_schema`](Self::from_pool_in_schema)) |
    /// | `heartbeat` | `30s` | quiet time before the listening connection is asked for an answer |
    /// | `heartbeat_timeout` | `10s` | how long it has to answer (see [`PostgresStoreBuilder::heartbeat`]) |
    ///
    /// `postgres://app@db.internal/shop?schema=checkout_flags&heartbeat=20s`
    ///
    /// # Errors
    ///
    /// [`Backend`](crate::ErrorKind::Backend) when the URL or one of the
    /// store's parameters cannot be read, the database cannot be reached,
    /// or migrating or listening fails. The message names the host, port
    /// and database, or the parameter, never the URL, which may hold a
    /// password.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let (url, own) = StoreParameters::take_from(url)?;
        let options: PgConnectOptions = url
            .parse()
            .map_err(|error| failure("reading the Postgres URL of the flag store", error))?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options.clone())
            .await
            .map_err(|error| {
                failure(
                    format!("connecting to Postgres at {}", place(&options)),
                    error,
                )
            })?;
        let mut builder = Self::builder(pool);
        if let Some(schema) = &own.schema {
            builder = builder.schema(schema);
        }
        builder
            .heartbeat(
                own.heartbeat.unwrap_or(QUIET_FOR),
                own.heartbeat_timeout.unwrap_or(ANSWER_WITHIN),
            )
            .build()
            .await
    }

    /// A store in the schema `opsready_flags` of `pool`'s database: see
    /// [`from_pool_in_schema`](Self::from_pool_in_schema).
    ///
    /// # Errors
    ///
    /// As [`from_pool_in_schema`](Self::from_pool_in_schema).
    pub async fn from_pool(pool: PgPool) -> Result<Self, Error> {
        Self::from_pool_in_schema(pool, Self::DEFAULT_SCHEMA).await
    }

    /// A store in `schema` of `pool`'s database: creates the schema and
    /// its tables when missing (or migrates them), then starts listening
    /// on the channel `<schema>_changes` with a connection of its own,
    /// opened with `pool`'s options.
    ///
    /// The schema defaults to [`DEFAULT_SCHEMA`](Self::DEFAULT_SCHEMA)
    /// (`opsready_flags`) in [`connect`](Self::connect) and
    /// [`from_pool`](Self::from_pool). Choose another to keep several sets
    /// of flags in one database (one per environment, or per test): stores
    /// in different schemas share nothing, not even notifications.
    ///
    /// # Errors
    ///
    /// [`Backend`](crate::ErrorKind::Backend) when `schema` is not 1 to 55
    /// lowercase ASCII letters, digits and `_`, starting with a letter or
    /// `_`; or when migrating or listening fails.
    pub async fn from_pool_in_schema(pool: PgPool, schema: &str) -> Result<Self, Error> {
        Self::builder(pool).schema(schema).build().await
    }

    /// A store of `pool`'s database with more than the schema to choose:
    /// see [`PostgresStoreBuilder`].
    ///
    /// ```no_run
    /// # async fn run(pool: sqlx::PgPool) -> Result<(), opsready_flags::Error> {
    /// use std::time::Duration;
    /// use opsready_flags::PostgresStore;
    ///
    /// // Behind a firewall that drops idle connections after a minute.
    /// let store = PostgresStore::builder(pool)
    ///     .schema("checkout_flags")
    ///     .heartbeat(Duration::from_secs(20), Duration::from_secs(5))
    ///     .build()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(pool: PgPool) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            pool,
            schema: Self::DEFAULT_SCHEMA.to_owned(),
            heartbeat: Heartbeat {
                quiet_for: QUIET_FOR,
                answer_within: ANSWER_WITHIN,
            },
        }
    }

    /// The schema holding the tables.
    #[must_use]
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The channel changes are announced on: `<schema>_changes`.
    #[must_use]
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// The pool the store reads and writes with (to watch its gauges, for
    /// instance). The listener's connection is not part of it.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    async fn load_now(&self) -> Result<Vec<StoredFlag>, Error> {
        let rows = sqlx::query(&self.inner.sql.load)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|error| failure("loading the flags", error))?;
        rows.iter().map(stored_flag).collect()
    }

    async fn get_now(&self, key: &str) -> Result<Option<StoredFlag>, Error> {
        let row = sqlx::query(&self.inner.sql.get)
            .bind(key)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|error| failure(format!("loading flag `{key}`"), error))?;
        row.as_ref().map(stored_flag).transpose()
    }

    async fn history_now(&self, key: &str) -> Result<Vec<AuditEntry>, Error> {
        let doing = || format!("reading the history of flag `{key}`");
        let rows = sqlx::query(&self.inner.sql.history)
            .bind(key)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|error| failure(doing(), error))?;
        rows.iter()
            .map(|row| audit_entry(key, row).map_err(|error| failure(doing(), error)))
            .collect()
    }

    async fn apply_now(&self, change: Change) -> Result<AuditEntry, Error> {
        let key = change.key().to_owned();
        let doing = || format!("applying a change to flag `{key}`");
        let db = |error: sqlx::Error| failure(doing(), error);
        let sql = &self.inner.sql;

        let mut tx = self.inner.pool.begin().await.map_err(db)?;
        // A change waits for the row's lock at most this long, in the
        // database too: a caller that gave up (the request timeout, a
        // ramp job's own) would otherwise leave its statement waiting there,
        // holding a connection and this store's writing turn, until the
        // lock clears.
        sqlx::query(&format!(
            "SET LOCAL lock_timeout = '{}ms'",
            CHANGE_LOCK_WITHIN.as_millis()
        ))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        // Reserve the row of a key never written, then lock the row: two
        // writers of one key, new or not, queue here, and the second reads
        // what the first committed. Dropping `tx` on any early return rolls
        // back, reservation included.
        sqlx::query(&sql.reserve)
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let row = sqlx::query(&sql.lock)
            .bind(&key)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let version: i64 = row.try_get("version").map_err(db)?;
        let definition: Option<String> = row.try_get("definition").map_err(db)?;
        // The database's clock, read under the lock: entries of one key are
        // then in time order even when the fleet's clocks disagree.
        let at: i64 = sqlx::query_scalar(CLOCK)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;

        let latest = match version {
            0 => None,
            version => Some(to_u64(version).map_err(|error| failure(doing(), error))?),
        };
        let before = definition
            .as_deref()
            .map(parse_flag)
            .transpose()
            .map_err(|error| failure(doing(), error))?;
        let version = change.check(latest, before.is_some())?;
        let entry = change.record(version, before, from_micros(at));

        let after = entry
            .after
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|error| failure(doing(), error))?;
        let version = to_i64(entry.version).map_err(|error| failure(doing(), error))?;
        let restores = entry
            .restores
            .map(to_i64)
            .transpose()
            .map_err(|error| failure(doing(), error))?;
        sqlx::query(&sql.write)
            .bind(&key)
            .bind(version)
            .bind(after.as_deref())
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(&sql.append)
            .bind(&key)
            .bind(version)
            .bind(entry.action.as_str())
            .bind(&entry.actor)
            .bind(&entry.reason)
            .bind(at)
            // The definition as stored, not as this version would write it.
            .bind(definition.as_deref())
            .bind(after.as_deref())
            .bind(restores)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // Inside the transaction: Postgres delivers it only if the change
        // commits, and after it is visible.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.inner.channel)
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;

        // This instance's own announcement comes back through the
        // listener too, but its subscribers should not wait for it.
        bump(&self.inner.revision);
        Ok(entry)
    }
}

impl fmt::Debug for PostgresStore {
    // By hand: the pool's options hold the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.schema)
            .field("channel", &self.inner.channel)
            .field("connections", &self.inner.pool.size())
            .finish_non_exhaustive()
    }
}

impl Store for PostgresStore {
    fn load(&self) -> BoxFuture<'_, Result<Vec<StoredFlag>, Error>> {
        Box::pin(self.load_now())
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<StoredFlag>, Error>> {
        Box::pin(self.get_now(key))
    }

    fn apply(&self, change: Change) -> BoxFuture<'_, Result<AuditEntry, Error>> {
        Box::pin(self.apply_now(change))
    }

    fn history<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<AuditEntry>, Error>> {
        Box::pin(self.history_now(key))
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.revision.subscribe()
    }
}

/// The statements of one schema, written once.
struct Sql {
    load: String,
    get: String,
    reserve: String,
    lock: String,
    write: String,
    append: String,
    history: String,
}

/// Now, in microseconds since the Unix epoch. `clock_timestamp()` rather
/// than `now()`, which is when the transaction began, before the lock.
const CLOCK: &str = "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

impl Sql {
    /// `schema` is checked by [`check_schema`] and quoted: safe to splice.
    fn new(schema: &str) -> Self {
        let definitions = format!(r#""{schema}".definitions"#);
        let audit_log = format!(r#""{schema}".audit_log"#);
        Self {
            load: format!(
                "SELECT key, version, definition::text AS definition FROM {definitions} \
                 WHERE definition IS NOT NULL ORDER BY key"
            ),
            get: format!(
                "SELECT key, version, definition::text AS definition FROM {definitions} \
                 WHERE key = $1 AND definition IS NOT NULL"
            ),
            reserve: format!(
                "INSERT INTO {definitions} (key, version, definition, updated_at) \
                 VALUES ($1, 0, NULL, clock_timestamp()) ON CONFLICT (key) DO NOTHING"
            ),
            lock: format!(
                "SELECT version, definition::text AS definition FROM {definitions} \
                 WHERE key = $1 FOR UPDATE"
            ),
            write: format!(
                "UPDATE {definitions} SET version = $2, definition = $3::jsonb, \
                 updated_at = {} WHERE key = $1",
                timestamp("$4")
            ),
            append: format!(
                "INSERT INTO {audit_log} \
                 (key, version, action, actor, reason, at, before, after, restores) \
                 VALUES ($1, $2, $3, $4, $5, {}, $7::jsonb, $8::jsonb, $9)",
                timestamp("$6")
            ),
            history: format!(
                "SELECT version, action, actor, reason, \
                 (extract(epoch FROM at) * 1000000)::bigint AS at, \
                 before::text AS before, after::text AS after, restores \
                 FROM {audit_log} WHERE key = $1 ORDER BY version"
            ),
        }
    }
}

/// The `timestamptz` `micros` microseconds after the epoch: exact, where
/// `to_timestamp` would go through a float.
fn timestamp(micros: &str) -> String {
    format!("(to_timestamp(0) + {micros} * interval '1 microsecond')")
}

/// Refuses a schema name that would need escaping or that Postgres would
/// cut short (and with it the channel name).
fn check_schema(schema: &str) -> Result<(), Error> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && schema.len() <= MAX_SCHEMA_LEN {
        Ok(())
    } else {
        Err(Error::backend(format!(
            "`{schema}` cannot name the flag schema: use 1 to {MAX_SCHEMA_LEN} lowercase \
             ASCII letters, digits and `_`, starting with a letter or `_`"
        )))
    }
}

/// Creates `schema` when missing and runs the migrations in it.
async fn migrate(pool: &PgPool, schema: &str) -> Result<(), Error> {
    let doing = || {
        format!(
            "migrating the flag schema `{schema}` at {}",
            place(&pool.connect_options())
        )
    };
    // A connection taken out of the pool: it gets a `search_path` that no
    // other query may inherit, and it is closed at the end, which also
    // releases the advisory lock whatever happened.
    let mut conn = pool
        .acquire()
        .await
        .map_err(|error| failure(doing(), error))?
        .detach();
    let result = async {
        // Instances starting together on an empty database would otherwise
        // race to create the schema, and one would fail.
        sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
            .bind(format!("opsready-flags migrations of {schema}"))
            .execute(&mut conn)
            .await?;
        // Asked first: `CREATE SCHEMA IF NOT EXISTS` needs the `CREATE`
        // privilege even when the schema exists, which a role that was only
        // granted the schema lacks.
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            sqlx::query(&format!(r#"CREATE SCHEMA "{schema}""#))
                .execute(&mut conn)
                .await?;
        }
        // The migrations name their tables unqualified, and sqlx keeps its
        // record of them in `_sqlx_migrations`: both land in `schema`.
        sqlx::query(&format!(r#"SET search_path TO "{schema}""#))
            .execute(&mut conn)
            .await?;
        MIGRATOR.run_direct(&mut conn).await?;
        Ok::<(), Box<dyn StdError + Send + Sync>>(())
    }
    .await;
    // Closing may fail on a broken connection; dropping it then is enough.
    let _ = conn.close().await;
    result.map_err(|error| failure(doing(), error))
}

/// The query parameters of a store URL that are the store's, not the
/// driver's: see [`PostgresStore::connect`].
#[derive(Debug, Default, PartialEq)]
struct StoreParameters {
    schema: Option<String>,
    heartbeat: Option<Duration>,
    heartbeat_timeout: Option<Duration>,
}

impl StoreParameters {
    /// `url` without the store's parameters, and their values. Errors name
    /// the parameter, never the URL, which may hold a password.
    fn take_from(url: &str) -> Result<(String, Self), Error> {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), Self::default()));
        };
        let mut own = Self::default();
        let mut rest = Vec::new();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let duration = || {
                humantime::parse_duration(value)
                    .ok()
                    .filter(|duration| !duration.is_zero())
                    .ok_or_else(|| {
                        Error::backend(format!(
                            "the flag store URL's parameter `{name}` must be a duration such as `30s` or `1m`"
                        ))
                    })
            };
            match name {
                "schema" => own.schema = Some(value.to_owned()),
                "heartbeat" => own.heartbeat = Some(duration()?),
                "heartbeat_timeout" => own.heartbeat_timeout = Some(duration()?),
                _ => rest.push(pair),
            }
        }
        let url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        Ok((url, own))
    }
}

/// Options of a [`PostgresStore`] beyond its pool, from
/// [`PostgresStore::builder`]: the schema and the heartbeat of the
/// listening connection.
#[derive(Debug)]
#[must_use]
pub struct PostgresStoreBuilder {
    pool: PgPool,
    schema: String,
    heartbeat: Heartbeat,
}

/// When the listening connection is asked for a sign of life.
#[derive(Clone, Copy, Debug)]
struct Heartbeat {
    quiet_for: Duration,
    answer_within: Duration,
}

impl PostgresStoreBuilder {
    /// The schema of the tables, and of the channel `<schema>_changes`
    /// (default [`PostgresStore::DEFAULT_SCHEMA`]): see
    /// [`PostgresStore::from_pool_in_schema`].
    pub fn schema(mut self, schema: &str) -> Self {
        schema.clone_into(&mut self.schema);
        self
    }

    /// After `quiet_for` without a message on the listening connection
    /// (default 30 s), the store asks it for its server's process id; if
    /// another process answers, the driver connected again on its own and
    /// subscribers are told to load again; if the answer does
    /// not come within `answer_within` (default 10 s), the connection is
    /// taken for dead, a new one listens, and subscribers are told to load
    /// again. A silently dropped connection is so found within
    /// `quiet_for + answer_within`.
    ///
    /// Keep `quiet_for` below the idle timeout of any firewall or NAT on
    /// the way to Postgres, and `answer_within` above the longest pause a
    /// busy server may take to answer. Zero durations count as one
    /// millisecond.
    pub fn heartbeat(mut self, quiet_for: Duration, answer_within: Duration) -> Self {
        let at_least = |duration: Duration| duration.max(Duration::from_millis(1));
        self.heartbeat = Heartbeat {
            quiet_for: at_least(quiet_for),
            answer_within: at_least(answer_within),
        };
        self
    }

    /// Creates the schema and its tables when missing (or migrates them),
    /// then starts listening for changes.
    ///
    /// # Errors
    ///
    /// As [`PostgresStore::from_pool_in_schema`].
    pub async fn build(self) -> Result<PostgresStore, Error> {
        let Self {
            pool,
            schema,
            heartbeat,
        } = self;
        let schema = schema.as_str();
        check_schema(schema)?;
        migrate(&pool, schema).await?;

        let channel = format!("{schema}_changes");
        let listener_pool = listener_pool(
            (*pool.connect_options())
                .clone()
                .application_name(&listener_name(schema)),
        );
        // Listening before returning, so that no change committed after
        // this store's first load can go unnoticed.
        let (listener, pid) = listen(&listener_pool, &channel).await.map_err(|error| {
            failure(
                format!(
                    "listening on `{channel}` at {}",
                    place(&pool.connect_options())
                ),
                error,
            )
        })?;
        let revision = watch::Sender::new(0);
        let task = tokio::spawn(relay(
            listener,
            pid,
            listener_pool,
            channel.clone(),
            heartbeat,
            revision.clone(),
        ));

        Ok(PostgresStore {
            inner: Arc::new(Inner {
                sql: Sql::new(schema),
                pool,
                schema: schema.to_owned(),
                channel,
                revision,
                listener: task.abort_handle(),
            }),
        })
    }
}

/// A pool of one connection for the listener, with `options`: the
/// listener holds its connection for good, which must not starve the
/// queries, and it reconnects through a pool like this.
fn listener_pool(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(LAST_RETRY)
        .connect_lazy_with(options)
}

/// A listener on `channel`, with the process id of its server.
async fn listen(pool: &PgPool, channel: &str) -> Result<(PgListener, i32), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    let pid = backend_pid(&mut listener).await?;
    Ok((listener, pid))
}

/// The process id of the server of the listener's connection: the
/// heartbeat. Another one than before means sqlx connected again on its
/// own (a receive cancelled by the quiet timer while it reconnected
/// leaves the reconnection to the next query), and the changes announced
/// meanwhile reached no one.
async fn backend_pid(listener: &mut PgListener) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(listener)
        .await
}

/// Notes the server process `now` that answered a heartbeat; true when
/// the changes made meanwhile may have reached no one: another process
/// than the one noted (sqlx connected again on its own), or any process
/// after a reconnection sqlx reported (`None`), since the connection may
/// have been lost again while sqlx was connecting, unreported. One load
/// too many costs little; a kill never heard costs much.
fn heartbeat_finds_unannounced(noted: &mut Option<i32>, now: i32) -> bool {
    noted.replace(now) != Some(now)
}

/// Bumps `revision` on every announcement on `channel`, and after every
/// reconnection. Runs until aborted, when the store is dropped.
async fn relay(
    mut listener: PgListener,
    pid: i32,
    mut pool: PgPool,
    channel: String,
    heartbeat: Heartbeat,
    revision: watch::Sender<u64>,
) {
    let mut retry = Duration::ZERO;
    // `None` once sqlx has connected again, until the next heartbeat.
    let mut pid = Some(pid);
    loop {
        let since = Instant::now();
        let lost = loop {
            let Ok(received) = tokio::time::timeout(heartbeat.quiet_for, listener.try_recv()).await
            else {
                // Quiet for a while: is anyone still there? Notifications
                // that arrive meanwhile are kept for the next `try_recv`.
                match tokio::time::timeout(heartbeat.answer_within, backend_pid(&mut listener))
                    .await
                {
                    Ok(Ok(now)) => {
                        if heartbeat_finds_unannounced(&mut pid, now) {
                            reconnected(&channel, &revision);
                        }
                        continue;
                    }
                    Ok(Err(error)) => break Lost::Failed(error),
                    Err(_) => break Lost::Silent(heartbeat.answer_within),
                }
            };
            match received {
                Ok(Some(notification)) => {
                    tracing::trace!(key = notification.payload(), "a flag changed");
                    bump(&revision);
                }
                // The connection was lost and sqlx has opened another.
                Ok(None) => {
                    reconnected(&channel, &revision);
                    pid = None;
                }
                Err(error) => break Lost::Failed(error),
            }
        };
        tracing::warn!(error = %lost, channel = %channel, "lost the connection listening for flag changes; reconnecting");
        drop(listener);
        // A pool of its own for the next connection: the dead one may go
        // back to the old pool, and a connection that answers nothing would
        // hold its only place.
        pool = listener_pool((*pool.connect_options()).clone());

        // A connection that held for a while failed by accident: connect
        // again at once. One that keeps failing is retried less often.
        retry = if since.elapsed() > LAST_RETRY {
            Duration::ZERO
        } else {
            (retry * 2).clamp(FIRST_RETRY, LAST_RETRY)
        };
        (listener, pid) = loop {
            tokio::time::sleep(retry).await;
            match listen(&pool, &channel).await {
                Ok((listener, now)) => break (listener, Some(now)),
                Err(error) => {
                    retry = (retry * 2).clamp(FIRST_RETRY, LAST_RETRY);
                    tracing::warn!(%error, channel = %channel, retry_in = ?retry, "could not listen for flag changes");
                }
            }
        };
        tracing::info!(channel = %channel, "listening for flag changes again");
        // Changes committed while no one listened were announced to no
        // one: subscribers must load again.
        bump(&revision);
    }
}

/// Why the listening connection was given up.
enum Lost {
    /// It failed: reset, closed, or an error from the server.
    Failed(sqlx::Error),
    /// It did not answer the heartbeat within this long.
    Silent(Duration),
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(error) => error.fmt(f),
            Self::Silent(within) => write!(f, "no answer to a heartbeat within {within:?}"),
        }
    }
}

/// sqlx connected again on its own: whatever was announced in between is
/// lost, so subscribers load again.
fn reconnected(channel: &str, revision: &watch::Sender<u64>) {
    tracing::warn!(
        channel = %channel,
        "reconnected to listen for flag changes; loading the flags again"
    );
    bump(revision);
}

fn bump(revision: &watch::Sender<u64>) {
    revision.send_modify(|revision| *revision = revision.wrapping_add(1));
}

fn stored_flag(row: &PgRow) -> Result<StoredFlag, Error> {
    let key: String = row
        .try_get("key")
        .map_err(|error| failure("reading a flag", error))?;
    let read = || -> Result<StoredFlag, BoxError> {
        let version: i64 = row.try_get("version")?;
        let definition: String = row.try_get("definition")?;
        Ok(StoredFlag::new(parse_flag(&definition)?, to_u64(version)?))
    };
    read().map_err(|error| failure(format!("reading flag `{key}`"), error))
}

fn audit_entry(key: &str, row: &PgRow) -> Result<AuditEntry, BoxError> {
    let version: i64 = row.try_get("version")?;
    let action: String = row.try_get("action")?;
    let at: i64 = row.try_get("at")?;
    let before: Option<String> = row.try_get("before")?;
    let after: Option<String> = row.try_get("after")?;
    let restores: Option<i64> = row.try_get("restores")?;
    Ok(AuditEntry {
        key: key.to_owned(),
        version: to_u64(version)?,
        action: Action::parse(&action),
        actor: row.try_get("actor")?,
        reason: row.try_get("reason")?,
        at: from_micros(at),
        before: before.as_deref().map(parse_flag).transpose()?,
        after: after.as_deref().map(parse_flag).transpose()?,
        restores: restores.map(to_u64).transpose()?,
    })
}

type BoxError = Box<dyn StdError + Send + Sync>;

fn parse_flag(json: &str) -> Result<Flag, serde_json::Error> {
    serde_json::from_str(json)
}

fn to_u64(value: i64) -> Result<u64, BoxError> {
    u64::try_from(value).map_err(|_| format!("version {value} is negative").into())
}

fn to_i64(value: u64) -> Result<i64, BoxError> {
    i64::try_from(value).map_err(|_| format!("version {value} is beyond a Postgres bigint").into())
}

/// `micros` after the Unix epoch (before it, if negative).
fn from_micros(micros: i64) -> SystemTime {
    let offset = Duration::from_micros(micros.unsigned_abs());
    let time = if micros < 0 {
        UNIX_EPOCH.checked_sub(offset)
    } else {
        UNIX_EPOCH.checked_add(offset)
    };
    // Only out of the platform's range, which no database clock reaches.
    time.unwrap_or(UNIX_EPOCH)
}

/// Where `options` point, without the user or password: `host:port/db`.
fn place(options: &PgConnectOptions) -> String {
    let database = options
        .get_database()
        .unwrap_or_else(|| options.get_username());
    format!("{}:{}/{database}", options.get_host(), options.get_port())
}

/// A backend error saying what the store was `doing` when `source` failed.
/// The longest a change waits for its flag's row while another
/// transaction holds it: then it fails (`lock_timeout`), and the caller
/// may send it again.
pub const CHANGE_LOCK_WITHIN: Duration = Duration::from_secs(10);

fn failure(doing: impl Into<String>, source: impl Into<BoxError>) -> Error {
    Error::backend(Failure {
        doing: doing.into(),
        source: source.into(),
    })
}

/// What failed, and why.
#[derive(Debug)]
struct Failure {
    doing: String,
    source: BoxError,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.doing, self.source)
    }
}

impl StdError for Failure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.source.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn a_heartbeat_after_a_reported_reconnection_reloads_as_one_from_another_process() {
        // The same process as noted: nothing was missed.
        let mut noted = Some(41);
        assert!(!heartbeat_finds_unannounced(&mut noted, 41));
        // Another process: sqlx connected again on its own.
        assert!(heartbeat_finds_unannounced(&mut noted, 42));
        assert_eq!(noted, Some(42));
        // After a reconnection sqlx reported, the connection may have been
        // lost again while it connected: reload.
        let mut after_reported = None;
        assert!(heartbeat_finds_unannounced(&mut after_reported, 43));
        assert!(!heartbeat_finds_unannounced(&mut after_reported, 43));
    }

    #[test]
    fn schema_names_that_need_no_quoting_are_accepted() {
        for name in [
            "opsready_flags",
            "_flags",
            "flags_2",
            &"a".repeat(MAX_SCHEMA_LEN),
        ] {
            assert!(check_schema(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn schema_names_that_need_quoting_or_would_be_cut_are_refused() {
        let long = "a".repeat(MAX_SCHEMA_LEN + 1);
        for name in ["", "Flags", "1flags", "flags-prod", "a\"b", "a b", &long] {
            let error = check_schema(name).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Backend, "{name}");
        }
    }

    #[tokio::test]
    async fn a_url_that_cannot_be_read_is_refused_without_repeating_it() {
        let error = PostgresStore::connect("postgres://alice:hunter2@db.internal:port/flags")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Backend);
        let message = error.to_string();
        assert!(message.contains("reading the Postgres URL"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(!message.contains("db.internal"), "{message}");
    }

    #[test]
    fn the_place_names_host_port_and_database_but_no_credentials() {
        let options: PgConnectOptions = "postgres://alice:hunter2@db.internal:6543/shop"
            .parse()
            .unwrap();
        assert_eq!(place(&options), "db.internal:6543/shop");
    }

    #[test]
    fn microseconds_become_times_on_either_side_of_the_epoch() {
        assert_eq!(
            from_micros(1_700_000_000_000_007),
            UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_007)
        );
        assert_eq!(from_micros(-1_000_000), UNIX_EPOCH - Duration::from_secs(1));
    }

    #[test]
    fn a_failure_says_what_failed_and_keeps_its_cause() {
        let error = failure("applying a change to flag `a`", "connection reset");
        assert_eq!(
            error.to_string(),
            "the flag store failed: applying a change to flag `a`: connection reset"
        );
        let cause = StdError::source(&error).and_then(StdError::source);
        assert_eq!(
            cause.map(ToString::to_string).as_deref(),
            Some("connection reset")
        );
    }

    #[test]
    fn the_stores_parameters_are_taken_out_of_the_url_and_the_drivers_kept() {
        let (url, own) = StoreParameters::take_from(
            "postgres://alice:pw@db/shop?sslmode=require&schema=checkout_flags&heartbeat=20s&heartbeat_timeout=5s&application_name=shop",
        )
        .unwrap();

        assert_eq!(
            url,
            "postgres://alice:pw@db/shop?sslmode=require&application_name=shop"
        );
        assert_eq!(
            own,
            StoreParameters {
                schema: Some("checkout_flags".to_owned()),
                heartbeat: Some(Duration::from_secs(20)),
                heartbeat_timeout: Some(Duration::from_secs(5)),
            }
        );
    }

    #[test]
    fn a_url_with_only_the_stores_parameters_keeps_no_query() {
        let (url, own) = StoreParameters::take_from("postgres://db/shop?schema=a").unwrap();

        assert_eq!(url, "postgres://db/shop");
        assert_eq!(own.schema.as_deref(), Some("a"));
        assert_eq!(
            StoreParameters::take_from("postgres://db/shop").unwrap(),
            ("postgres://db/shop".to_owned(), StoreParameters::default())
        );
    }

    #[test]
    fn a_heartbeat_that_is_not_a_duration_names_the_parameter_not_the_url() {
        for query in ["heartbeat=soon", "heartbeat_timeout=0s", "heartbeat="] {
            let url = format!("postgres://alice:hunter2@db/shop?{query}");

            let error = StoreParameters::take_from(&url).unwrap_err().to_string();

            let name = query.split('=').next().unwrap();
            assert!(error.contains(&format!("`{name}`")), "{error}");
            assert!(error.contains("duration"), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }
}
