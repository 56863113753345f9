//! Scratch Postgres databases and schemas for the workspace's tests. Each
//! test gets a database or schema of its own, with a name of its own, and
//! drops it when its guard goes, passed or failed; the leftovers of runs
//! that were killed are swept by the next run after an hour.
//!
//! The server comes from `OPSREADY_TEST_DATABASE_URL`
//! (`postgres://USER@HOST:PORT/DB`, a role that may create schemas and
//! databases; PostgreSQL 13 or later, whose `DROP DATABASE … WITH (FORCE)`
//! ends the connections a test left open); without it [`Scratch::database`] and [`Scratch::schema`]
//! say on standard error that the test is skipped and return `None`, or,
//! under CI (`CI` set), fail the test: see [`skip`], which tests of other
//! real services (Redis, Prometheus) call too.
//!
//! ```no_run
//! # async fn test() {
//! let Some(scratch) = pg_scratch::Scratch::database("orders_test_").await else {
//!     return; // skipped, and said so
//! };
//! // ... connect to scratch.url ...
//! # }
//! ```

// Test support: a server that refuses a scratch database is the test's
// failure, which a panic reports.
#![allow(clippy::panic)]

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{Connection as _, Executor as _, PgConnection};

/// The variable naming the test server.
pub const URL_VAR: &str = "OPSREADY_TEST_DATABASE_URL";

/// How old a leftover must be before a run sweeps it: older than any test.
const STALE_MILLIS: u128 = 3_600_000;

/// How long a clean-up or a sweep may take before it gives up, saying so:
/// a guard is dropped on the test's thread, which must not hang on it.
const CLEANUP_DEADLINE: Duration = Duration::from_secs(15);

/// How long a drop waits for a lock that a connection the test left open
/// holds (a transaction in the scratch schema, say) before it fails.
const LOCK_TIMEOUT: &str = "SET lock_timeout = '5s'";

/// A database or a schema of one test, dropped with this guard.
#[derive(Debug)]
pub struct Scratch {
    /// The database to connect to: the scratch one, or the test database
    /// that holds the scratch schema.
    pub url: String,
    /// The test database, through which a scratch database is dropped.
    pub admin_url: String,
    /// The scratch database's or schema's name: the prefix, then the time
    /// and process it was made by.
    pub name: String,
    is_database: bool,
}

impl Scratch {
    /// A fresh database named with `prefix`, created now; `None` when the
    /// tests are not configured for Postgres.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached or refuses to create it.
    pub async fn database(prefix: &'static str) -> Option<Self> {
        let admin_url = server_url(prefix)?;
        let name = unique_name(prefix);
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {URL_VAR}: {error}"));
        conn.execute(&*format!(r#"CREATE DATABASE "{name}""#))
            .await
            .unwrap_or_else(|error| panic!("cannot create the database {name}: {error}"));
        let _ = conn.close().await;
        Some(Self {
            url: with_database(&admin_url, &name),
            admin_url,
            name,
            is_database: true,
        })
    }

    /// A fresh schema name in the test database, for code that creates
    /// the schema itself; `None` when the tests are not configured for
    /// Postgres. Dropped with the guard, if it was created.
    pub fn schema(prefix: &'static str) -> Option<Self> {
        let url = server_url(prefix)?;
        Some(Self {
            url: url.clone(),
            admin_url: url,
            name: unique_name(prefix),
            is_database: false,
        })
    }

    /// Drops the database or schema now, connections and all.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached or refuses.
    pub async fn drop_now(&self) {
        let mut conn = PgConnection::connect(&self.admin_url)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {URL_VAR}: {error}"));
        conn.execute(LOCK_TIMEOUT)
            .await
            .unwrap_or_else(|error| panic!("cannot set a lock timeout: {error}"));
        conn.execute(&*self.drop_statement())
            .await
            .unwrap_or_else(|error| panic!("cannot drop {}: {error}", self.name));
    }

    fn drop_statement(&self) -> String {
        if self.is_database {
            format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name)
        } else {
            format!(r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#, self.name)
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let url = self.admin_url.clone();
        let statement = self.drop_statement();
        on_the_side(async move {
            let cleanup = async {
                let mut conn = PgConnection::connect(&url).await?;
                conn.execute(LOCK_TIMEOUT).await?;
                conn.execute(&*statement).await?;
                Ok::<_, sqlx::Error>(())
            };
            match tokio::time::timeout(CLEANUP_DEADLINE, cleanup).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => eprintln!(
                    "could not clean up: {statement}: {error} (a later run sweeps it after an hour)"
                ),
                Err(_) => eprintln!(
                    "could not clean up within {CLEANUP_DEADLINE:?}: {statement} (a later run sweeps it after an hour)"
                ),
            }
        });
    }
}

/// Says on standard error that a test is skipped, and why. Under CI (the
/// `CI` variable set, as `.ci/run` runs) it fails the test instead: a CI
/// run that skips the tests of a real service has lost part of its set-up,
/// and must not pass as if it had run them.
///
/// # Panics
///
/// Under CI, always.
pub fn skip(reason: &str) {
    if std::env::var_os("CI").is_some_and(|ci| !ci.is_empty()) {
        panic!("not skipped under CI: {reason}");
    }
    eprintln!("skipped: {reason}");
}

/// The test server's URL, or `None` after saying why the test is skipped.
/// The first call for each prefix sweeps that prefix's leftovers.
fn server_url(prefix: &'static str) -> Option<String> {
    let url = std::env::var(URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty());
    let Some(url) = url else {
        skip(&format!(
            "set {URL_VAR} (postgres://USER@HOST:PORT/DB) to run the Postgres tests"
        ));
        return None;
    };
    static SWEPT: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let first = {
        let mut swept = SWEPT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let first = !swept.contains(&prefix);
        if first {
            swept.push(prefix);
        }
        first
    };
    if first {
        let sweeping = url.clone();
        on_the_side(async move {
            if tokio::time::timeout(CLEANUP_DEADLINE, sweep(sweeping, prefix))
                .await
                .is_err()
            {
                eprintln!(
                    "gave up sweeping the leftovers named {prefix}* after {CLEANUP_DEADLINE:?}"
                );
            }
        });
    }
    Some(url)
}

/// `{prefix}{milliseconds since the epoch}_{process id}_{counter}`: unique,
/// and dated for the sweep.
fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}{}_{}_{}",
        millis_now(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn millis_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis())
}

/// `url` with its database replaced by `database`, its query kept.
///
/// ```
/// assert_eq!(
///     pg_scratch::with_database("postgres://u@h:5432/test?sslmode=disable", "x"),
///     "postgres://u@h:5432/x?sslmode=disable"
/// );
/// ```
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(base, query)| (base, Some(query)));
    let authority = base.find("://").map_or(0, |at| at + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |at| authority + at);
    let mut with = format!("{}/{database}", &base[..path]);
    if let Some(query) = query {
        with.push('?');
        with.push_str(query);
    }
    with
}

/// Drops the schemas and databases named with `prefix` whose runs began
/// over an hour ago: killed runs that could not drop their own.
async fn sweep(url: String, prefix: &'static str) {
    let Ok(mut conn) = PgConnection::connect(&url).await else {
        return;
    };
    if conn.execute(LOCK_TIMEOUT).await.is_err() {
        return;
    }
    let stale = |name: &String| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.split('_').next())
            .and_then(|millis| millis.parse::<u128>().ok())
            .is_some_and(|millis| millis + STALE_MILLIS < millis_now())
    };
    let pattern = format!("{}%", prefix.replace('_', r"\_"));
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1")
            .bind(&pattern)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    for schema in schemas.iter().filter(|name| stale(name)) {
        // Another test binary may be sweeping too: its drop wins.
        let _ = conn
            .execute(&*format!(r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#))
            .await;
    }
    let databases: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
            .bind(&pattern)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    for database in databases.iter().filter(|name| stale(name)) {
        let _ = conn
            .execute(&*format!(
                r#"DROP DATABASE IF EXISTS "{database}" WITH (FORCE)"#
            ))
            .await;
    }
}

/// Runs `work` to the end on a thread and runtime of its own: a guard is
/// dropped while the test's runtime ends or unwinds, which could neither
/// run a spawned task nor block on one.
pub fn on_the_side(work: impl Future<Output = ()> + Send + 'static) {
    let thread = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(work);
        }
    });
    let _ = thread.join();
}
