use crate::check::{Check, Reading};

#[cfg(feature = "postgres")]
/// Passes when `SELECT 1` runs on a connection from `pool`; fails when no
/// connection comes within 500 ms. When every connection of the pool is in
/// use, it does not wait for one: it runs the query on a connection of its
/// own, opened with the pool's options and closed after, and warns that
/// the pool is full when the database answers, or fails when it does not
/// (a database that went away while the pool was full).
pub fn postgres(pool: sqlx::PgPool) -> impl Check {
    move || {
        let pool = pool.clone();
        async move { probe(&pool, "SELECT 1", true).await }
    }
}

#[cfg(feature = "sqlite")]
/// Passes when the schema can be read on a connection from `pool`. Not
/// `SELECT 1`, which SQLite answers without touching the database file, so
/// a corrupt or unreadable file would still pass. Warns, without waiting,
/// when every connection of the pool is in use; fails when no connection
/// comes within 500 ms otherwise.
pub fn sqlite(pool: sqlx::SqlitePool) -> impl Check {
    move || {
        let pool = pool.clone();
        // A connection of its own would open another database for
        // `sqlite::memory:`: a full pool only warns.
        async move { probe(&pool, "SELECT count(*) FROM sqlite_master", false).await }
    }
}

/// How long a check waits for a connection: well within a check's
/// default timeout of 1 s, leaving the query its time.
const ACQUIRE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// How long a check of a full pool has, from its start, for its own
/// connection and query: within a check's default timeout of 1 s also
/// after [`ACQUIRE_WAIT`] was spent waiting for a pooled one.
const OWN_CONNECTION_BY: std::time::Duration = std::time::Duration::from_millis(800);

/// The reading of a pool whose every connection (`max`) is in use: a warning when
/// the database answers on a connection of the check's own (when
/// `own_connection`), even with an error (at its connection limit: a
/// failure there would take every instance out at once, as waiting
/// would); a failure when nothing answers by `started` plus
/// [`OWN_CONNECTION_BY`].
async fn busy<DB>(
    pool: &sqlx::Pool<DB>,
    max: u32,
    query: &'static str,
    own_connection: bool,
    started: tokio::time::Instant,
) -> Reading
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    use sqlx::{ConnectOptions as _, Connection as _};
    let full = format!("every one of the pool's {max} connections is in use");
    if !own_connection {
        return Reading::warn(format!("{full}; the check does not wait for one"));
    }
    let options = pool.connect_options();
    let answered = tokio::time::timeout_at(started + OWN_CONNECTION_BY, async {
        let mut connection = options.connect().await?;
        let ran = sqlx::query(query)
            .execute(&mut connection)
            .await
            .map(|_| ());
        let _ = connection.close().await;
        ran
    })
    .await;
    match answered {
        Ok(Ok(())) => Reading::warn(format!(
            "{full}; the database answers on a connection of the check's own"
        )),
        // The server answered, with an error: it is there (too many
        // clients, starting up).
        Ok(Err(sqlx::Error::Database(error))) => Reading::warn(format!(
            "{full}; the database refuses a connection of the check's own: {error}"
        )),
        Ok(Err(error)) => Reading::fail(format!(
            "{full}, and a connection of the check's own fails: {error}"
        )),
        Err(_) => Reading::fail(format!(
            "{full}, and a connection of the check's own gets no answer within {} ms of the check's start",
            OWN_CONNECTION_BY.as_millis()
        )),
    }
}

async fn probe<DB>(pool: &sqlx::Pool<DB>, query: &'static str, own_connection: bool) -> Reading
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    // Every connection serves the service: queueing behind its requests
    // would time the check out and take the instance out of the load
    // balancer, every instance at once under load, which moves the load
    // rather than sheds it. The pool's own metrics show the saturation.
    let started = tokio::time::Instant::now();
    let max = pool.options().get_max_connections();
    if pool.num_idle() == 0 && pool.size() >= max {
        return busy(pool, max, query, own_connection, started).await;
    }
    // `acquire`, not `try_acquire`: it tests an idle connection before
    // handing it out, so one a database restart left dead is replaced,
    // not failed on. Bounded, for the pool may fill up meanwhile.
    let mut connection = match tokio::time::timeout(ACQUIRE_WAIT, pool.acquire()).await {
        Ok(Ok(connection)) => connection,
        // The pool's own acquire timeout, shorter than the wait here, ran
        // out behind the service's requests: as busy as the wait's.
        Ok(Err(sqlx::Error::PoolTimedOut)) if pool.size() >= max => {
            return busy(pool, max, query, own_connection, started).await;
        }
        Ok(Err(error)) => return Reading::fail(format!("cannot get a connection: {error}")),
        Err(_) if pool.size() >= max => {
            return busy(pool, max, query, own_connection, started).await;
        }
        Err(_) => {
            return Reading::fail(format!(
                "cannot get a connection within {} ms",
                ACQUIRE_WAIT.as_millis()
            ));
        }
    };
    match sqlx::query(query).execute(&mut *connection).await {
        Ok(_) => Reading::pass(),
        Err(error) => Reading::fail(format!("{query} failed: {error}")),
    }
}
