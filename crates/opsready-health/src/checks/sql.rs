use crate::check::{Check, Reading};

#[cfg(feature = "postgres")]
/// Passes when `SELECT 1` runs on a connection from `pool`; warns, without
/// waiting, when every connection of the pool is in use.
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
/// when every connection of the pool is in use.
pub fn sqlite(pool: sqlx::SqlitePool) -> impl Check {
    move || {
        let pool = pool.clone();
        async move { probe(&pool, "SELECT count(*) FROM sqlite_master").await }
    }
}

async fn probe<DB>(pool: &sqlx::Pool<DB>, query: &'static str) -> Reading
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    let mut connection = match pool.try_acquire() {
        Some(connection) => connection,
        None => {
            let max = pool.options().get_max_connections();
            if pool.num_idle() == 0 && pool.size() >= max {
                // Every connection serves the service. Queueing behind its
                // requests would time the check out and take the instance
                // out of the load balancer, every instance at once under
                // load, which moves the load rather than shedding it. The
                // pool's own metrics show the saturation.
                return Reading::warn(format!(
                    "every one of the pool's {max} connections is in use; \
                     the check does not wait for one"
                ));
            }
            match pool.acquire().await {
                Ok(connection) => connection,
                Err(error) => return Reading::fail(format!("cannot get a connection: {error}")),
            }
        }
    };
    match sqlx::query(query).execute(&mut *connection).await {
        Ok(_) => Reading::pass(),
        Err(error) => Reading::fail(format!("{query} failed: {error}")),
    }
}
