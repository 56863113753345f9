//! [`Settings`]: the service's own sections, beside opsready's.
//!
//! | key | default | what |
//! |---|---|---|
//! | `database.url` | `sqlite://./data/accounts.db` | `sqlite://PATH` (the file and its directory are created on first run) or `postgres://USER:PASSWORD@HOST:PORT/DB` |
//! | `database.max_connections` | `10` | the pool's size |
//! | `database.acquire_timeout` | `5s` | how long a request waits for a pooled connection before it fails |
//! | `passwords.memory_kib` | `19456` | argon2id memory per hash (OWASP's 19 MiB) |
//! | `passwords.iterations` | `2` | argon2id passes |
//! | `passwords.parallelism` | `1` | argon2id lanes |
//!
//! As environment variables: `ACCOUNTS__DATABASE__URL`,
//! `ACCOUNTS__PASSWORDS__MEMORY_KIB`, …; opsready's own keys
//! (`ACCOUNTS__SERVER__ADDR`, `ACCOUNTS__FLAGS__STORE`, …) share the prefix.

use opsready::settings::{Duration, Secret, Validate, Violations};
use serde::{Deserialize, Serialize};

use crate::domain::Hasher;

/// The settings of the accounts service (opsready's are beside them).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    /// Where users and invoices live.
    pub database: DatabaseSettings,
    /// How passwords are hashed.
    pub passwords: PasswordSettings,
}

/// `database.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://…`; secret, since a Postgres URL may
    /// hold a password. Defaults to `sqlite://./data/accounts.db`, relative
    /// to the working directory.
    pub url: Secret<String>,
    /// The most connections the pool opens. Defaults to 10.
    pub max_connections: u32,
    /// How long a query waits for a connection from a busy or unreachable
    /// database before failing. Defaults to 5 s.
    pub acquire_timeout: Duration,
}

/// The database when none is configured: a file beside the service.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/accounts.db";

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: Secret::new(DEFAULT_DATABASE_URL.to_owned()),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// `passwords.*`: the argon2id cost of one password hash.
///
/// Raise them as hardware allows; hashes made with older values still
/// verify, since each hash records its own.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct PasswordSettings {
    /// Memory per hash, in KiB. Defaults to 19456 (19 MiB), OWASP's
    /// recommendation for argon2id.
    pub memory_kib: u32,
    /// Passes over the memory. Defaults to 2.
    pub iterations: u32,
    /// Lanes. Defaults to 1.
    pub parallelism: u32,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordSettings {
    pub(crate) fn hasher(&self) -> Result<Hasher, crate::domain::HashError> {
        Hasher::new(self.memory_kib, self.iterations, self.parallelism)
    }
}

/// The database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The most lanes argon2 takes (2^24 − 1).
const MAX_PARALLELISM: u32 = 0x00ff_ffff;

impl DatabaseSettings {
    /// Whether `url` names an in-memory SQLite database, which lives only
    /// as long as one of its connections.
    fn is_in_memory_sqlite(&self) -> bool {
        let url = self.url.expose_secret();
        url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory"))
    }

    /// The backend of `url`, if it names one this service speaks.
    pub(crate) fn backend(&self) -> Option<Backend> {
        let url = self.url.expose_secret();
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

impl Validate for Settings {
    fn validate(&self, v: &mut Violations) {
        if self.database.backend().is_none() {
            v.add(
                "database.url",
                "must be `sqlite://PATH` (e.g. `sqlite://./data/accounts.db`) or `postgres://USER@HOST:PORT/DB`",
            );
        }
        if !(1..=1_000).contains(&self.database.max_connections) {
            v.add("database.max_connections", "must be between 1 and 1000");
        }
        if self.database.acquire_timeout == Duration::ZERO {
            v.add("database.acquire_timeout", "must be longer than 0s");
        }
        if self.database.is_in_memory_sqlite() {
            v.add(
                "database.url",
                "is an in-memory SQLite database, which is lost with its last connection (an idle pool closes them): give a file, e.g. `sqlite://./data/accounts.db`",
            );
        }
        let passwords = &self.passwords;
        if passwords.iterations == 0 {
            v.add("passwords.iterations", "must be at least 1");
        }
        if !(1..=MAX_PARALLELISM).contains(&passwords.parallelism) {
            v.add(
                "passwords.parallelism",
                format!("must be between 1 and {MAX_PARALLELISM}"),
            );
        } else if u64::from(passwords.memory_kib) < 8 * u64::from(passwords.parallelism) {
            v.add(
                "passwords.memory_kib",
                format!(
                    "must be at least 8 × passwords.parallelism ({})",
                    8 * u64::from(passwords.parallelism)
                ),
            );
        } else if passwords.iterations != 0
            && let Err(error) = passwords.hasher()
        {
            v.add(
                "passwords.memory_kib",
                format!("and the other passwords settings are not argon2id parameters: {error}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use opsready::settings::Loader;

    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<opsready::Settings<Settings>, String> {
        let loader = Loader::new("ACCOUNTS")
            .config_dir("no-such-config-dir")
            .env(env.iter().copied());
        opsready::load::<Settings>(&loader).map_err(|error| error.to_string())
    }

    #[test]
    fn without_configuration_the_database_is_a_sqlite_file_under_data() {
        let settings = load(&[]).unwrap();
        assert_eq!(settings.database.url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(settings.database.backend(), Some(Backend::Sqlite));
    }

    #[test]
    fn a_postgres_url_in_the_environment_selects_postgres() {
        let settings =
            load(&[("ACCOUNTS__DATABASE__URL", "postgres://app@db:5432/accounts")]).unwrap();
        assert_eq!(settings.database.backend(), Some(Backend::Postgres));
    }

    #[test]
    fn an_unknown_database_scheme_is_refused_naming_the_key() {
        let error = load(&[("ACCOUNTS__DATABASE__URL", "mysql://db/accounts")]).unwrap_err();
        assert!(error.contains("database.url"), "{error}");
    }

    #[test]
    fn argon2_parameters_out_of_range_are_refused_each_under_its_own_key() {
        let error = load(&[("ACCOUNTS__PASSWORDS__MEMORY_KIB", "1")]).unwrap_err();
        assert!(error.contains("passwords.memory_kib"), "{error}");
        assert!(
            error.contains("at least 8 × passwords.parallelism (8)"),
            "{error}"
        );

        let error = load(&[("ACCOUNTS__PASSWORDS__ITERATIONS", "0")]).unwrap_err();
        assert!(error.contains("passwords.iterations"), "{error}");
        assert!(!error.contains("passwords.memory_kib"), "{error}");

        let error = load(&[("ACCOUNTS__PASSWORDS__PARALLELISM", "0")]).unwrap_err();
        assert!(error.contains("passwords.parallelism"), "{error}");
        assert!(!error.contains("passwords.memory_kib"), "{error}");
    }

    #[test]
    fn an_in_memory_sqlite_database_is_refused() {
        for url in [
            "sqlite::memory:",
            "sqlite://file:accounts?mode=memory&cache=shared",
        ] {
            let error = load(&[("ACCOUNTS__DATABASE__URL", url)]).unwrap_err();
            assert!(error.contains("database.url"), "{error}");
            assert!(error.contains("in-memory SQLite"), "{error}");
        }
    }

    #[test]
    fn the_database_url_is_redacted_in_the_dump() {
        let settings = load(&[(
            "ACCOUNTS__DATABASE__URL",
            "postgres://app:hunter2@db/accounts",
        )])
        .unwrap();
        let dump = settings.dump().to_json_pretty();
        assert!(!dump.contains("hunter2"), "{dump}");
    }
}
