use crate::check::{Check, Reading};

/// Passes when Redis answers `PING`. Each run opens its own connection, so a
/// broken one is never reused and a Redis restart heals by itself; the
/// component's cache interval bounds how often that happens.
///
/// It says whether Redis answers, not whether the service's own connection
/// works: a service that holds one connection (a
/// `MultiplexedConnection`, a `ConnectionManager`) checks that one with
/// [`redis_connection`]. At Redis' `maxclients` this check fails while the
/// service's connection still works.
pub fn redis(client: ::redis::Client) -> impl Check {
    move || {
        let client = client.clone();
        async move {
            let mut connection = match client.get_multiplexed_async_connection().await {
                Ok(connection) => connection,
                Err(error) => return Reading::fail(format!("cannot connect: {error}")),
            };
            ping(&mut connection).await
        }
    }
}

/// Passes when Redis answers `PING` on `connection`, the service's own
/// (a clone of a `MultiplexedConnection` or `ConnectionManager` shares the
/// connection): a connection that broke fails the check, as it fails the
/// service's commands, and one that reconnects by itself
/// (`ConnectionManager`) passes again once it has.
///
/// ```no_run
/// # async fn example() -> redis::RedisResult<()> {
/// use opsready_health::{Component, checks};
///
/// let client = redis::Client::open("redis://cache:6379")?;
/// let connection = client.get_multiplexed_async_connection().await?;
/// // The service keeps `connection` (a clone) for its own commands.
/// let cache = Component::new("cache", checks::redis_connection(connection.clone()));
/// # Ok(())
/// # }
/// ```
pub fn redis_connection<C>(connection: C) -> impl Check
where
    C: ::redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    move || {
        let mut connection = connection.clone();
        async move { ping(&mut connection).await }
    }
}

async fn ping<C: ::redis::aio::ConnectionLike + Send>(connection: &mut C) -> Reading {
    match ::redis::cmd("PING").query_async::<String>(connection).await {
        Ok(pong) if pong == "PONG" => Reading::pass(),
        Ok(other) => Reading::fail(format!("PING answered {other:?}")),
        Err(error) => Reading::fail(format!("PING failed: {error}")),
    }
}
