use crate::check::{Check, Reading};

#[cfg(feature = "postgres")]
/// Passes when `SELECT 1` runs on a connection from `pool`; warns, without
/// waiting, when every connection of the pool is in use; fails when no
/// connection comes within 500 ms otherwise.
pub fn postgres(pool: sqlx::PgPool) -> impl Check {
    move || {
        let pool = pool.clone();
        async move { probe(&pool, "SELECT 1").await }
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
        async move { probe(&pool, "SELECT count(*) FROM sqlite_master").await }
    }
}

/// How long a check waits for a connection: well within a check's
/// default timeout of 1 s, leaving the query its time.
const ACQUIRE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// The reading of a pool whose every connection is in use.
fn busy(max: u32) -> Reading {
    Reading::warn(format!(
        "every one of the pool's {max} connections is in use; the check does not wait for one"
    ))
}

async fn probe<DB>(pool: &sqlx::Pool<DB>, query: &'static str) -> Reading
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    // Every connection serves the service: queueing behind its requests
    // would time the check out and take the instance out of the load
    // balancer, every instance at once under load, which moves the load
    // rather than sheds it. The pool's own metrics show the saturation.
    let max = pool.options().get_max_connections();
    if pool.num_idle() == 0 && pool.size() >= max {
        return busy(max);
    }
    // `acquire`, not `try_acquire`: it tests an idle connection before
    // handing it out, so one a database restart left dead is replaced,
    // not failed on. Bounded, for the pool may fill up meanwhile.
    let mut connection = match tokio::time::timeout(ACQUIRE_WAIT, pool.acquire()).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => return Reading::fail(format!("cannot get a connection: {error}")),
        Err(_) if pool.size() >= max => return busy(max),
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
