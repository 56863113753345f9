use crate::check::{Check, Reading};

/// Passes when Redis answers `PING`. Each run opens its own connection, so a
/// broken one is never reused and a Redis restart heals by itself; the
/// component's cache interval bounds how often that happens.
pub fn redis(client: ::redis::Client) -> impl Check {
    move || {
        let client = client.clone();
        async move {
            let mut connection = match client.get_multiplexed_async_connection().await {
                Ok(connection) => connection,
                Err(error) => return Reading::fail(format!("cannot connect: {error}")),
            };
            match ::redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
            {
                Ok(pong) if pong == "PONG" => Reading::pass(),
                Ok(other) => Reading::fail(format!("PING answered {other:?}")),
                Err(error) => Reading::fail(format!("PING failed: {error}")),
            }
        }
    }
}
