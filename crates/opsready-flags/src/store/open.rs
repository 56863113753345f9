//! [`open`]: a store from the location `flags.store` names.

use std::sync::Arc;

use crate::error::Error;
use crate::store::{FileStore, MemoryStore, Store};

/// Opens the store at `location`:
///
/// - `memory:`: in this process only, lost at exit (tests, demos);
/// - `file://PATH`: a JSON or TOML file (by its extension), created when
///   missing; `file://./data/flags.json` is relative to the working
///   directory, `file:///var/lib/app/flags.toml` absolute;
/// - `postgres://…` or `postgresql://…`: a database shared by a fleet (the
///   `postgres` feature).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = opsready_flags::open("memory:").await.unwrap();
/// assert!(store.load().await.unwrap().is_empty());
///
/// let error = opsready_flags::open("consul://flags").await.err().unwrap();
/// assert!(error.to_string().contains("memory:"), "{error}");
/// # });
/// ```
pub async fn open(location: &str) -> Result<Arc<dyn Store>, Error> {
    if location == "memory:" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    if let Some(path) = location.strip_prefix("file://") {
        return Ok(Arc::new(FileStore::open(path).await?));
    }
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Arc::new(
            crate::store::PostgresStore::connect(location).await?,
        ));
        #[cfg(not(feature = "postgres"))]
        return Err(Error::backend(
            "a postgres:// flag store needs the `postgres` feature of opsready-flags (`flags-postgres` of opsready)",
        ));
    }
    Err(Error::backend(format!(
        "unknown flag store `{}`: use `memory:`, `file://PATH` or `postgres://…`",
        scheme(location)
    )))
}

/// The scheme of a location, never its credentials.
fn scheme(location: &str) -> &str {
    location
        .split_once("://")
        .map_or(location, |(scheme, _)| scheme)
}
