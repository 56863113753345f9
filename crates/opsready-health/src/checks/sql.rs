use crate::check::{Check, Reading};

#[cfg(feature = "postgres")]
/// Passes when `SELECT 1` runs on a connection from `pool`.
pub fn postgres(pool: sqlx::PgPool) -> impl Check {
    move || {
        let pool = pool.clone();
        async move { select_one(&pool).await }
    }
}

#[cfg(feature = "sqlite")]
/// Passes when `SELECT 1` runs on a connection from `pool`.
pub fn sqlite(pool: sqlx::SqlitePool) -> impl Check {
    move || {
        let pool = pool.clone();
        async move { select_one(&pool).await }
    }
}

async fn select_one<DB>(pool: &sqlx::Pool<DB>) -> Reading
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    let mut connection = match pool.acquire().await {
        Ok(connection) => connection,
        Err(error) => return Reading::fail(format!("cannot get a connection: {error}")),
    };
    match sqlx::query("SELECT 1").execute(&mut *connection).await {
        Ok(_) => Reading::pass(),
        Err(error) => Reading::fail(format!("SELECT 1 failed: {error}")),
    }
}
