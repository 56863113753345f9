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
        "unknown flag store {}: use `memory:`, `file://PATH` or `postgres://…`",
        scheme(location)
    )))
}

/// What a location's scheme looks like, for a message: never the rest of
/// the location, which may hold a password (`postgres:/app:pw@db`, a URL
/// whose `//` was lost, or `app:pw@db` with no scheme at all).
fn scheme(location: &str) -> String {
    let candidate = location.split(':').next().unwrap_or_default();
    let is_scheme = location.contains(':')
        && (1..=16).contains(&candidate.len())
        && candidate.starts_with(|c: char| c.is_ascii_alphabetic())
        && candidate
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if is_scheme {
        format!("with the scheme `{candidate}:`")
    } else {
        "(the location has no scheme)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_mistyped_location_is_refused_without_quoting_its_credentials() {
        for (location, shown) in [
            ("postgres:/app:S3cret@db/shop", "`postgres:`"),
            ("postgres//app:S3cret@db/shop", "no scheme"),
            ("app:S3cret@db:5432/shop", "`app:`"),
            ("consul://flags", "`consul:`"),
            ("S3cret", "no scheme"),
        ] {
            let error = open(location).await.err().unwrap().to_string();

            assert!(error.contains(shown), "{location}: {error}");
            assert!(!error.contains("S3cret"), "{location}: {error}");
            assert!(error.contains("file://PATH"), "{error}");
        }
    }
}
