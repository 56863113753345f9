//! Typed, layered settings for services, built on [figment]: files, then
//! environment, then overrides, into your own `#[derive(Deserialize)]`
//! struct, with human units, secrets that never print, semantic validation,
//! every problem reported at once, and the origin of every value.
//!
//! # Example
//!
//! ```
//! use opsready_settings::{Duration, Loader, Secret, Validate, Violations};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Deserialize, Serialize)]
//! struct Settings {
//!     #[serde(default)]
//!     server: Server,
//!     database: Database,
//! }
//!
//! #[derive(Debug, Deserialize, Serialize)]
//! #[serde(default)]
//! struct Server {
//!     port: u16,
//!     read_timeout: Duration,
//! }
//!
//! impl Default for Server {
//!     fn default() -> Self {
//!         Self { port: 8080, read_timeout: Duration::from_secs(30) }
//!     }
//! }
//!
//! #[derive(Debug, Deserialize, Serialize)]
//! struct Database {
//!     url: String,
//!     password: Secret<String>,
//! }
//!
//! impl Validate for Settings {
//!     fn validate(&self, v: &mut Violations) {
//!         if self.server.port <= 1024 {
//!             v.add("server.port", "must be > 1024");
//!         }
//!     }
//! }
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # std::fs::write(dir.path().join("default.toml"), "[database]\nurl = \"postgres://db/app\"\n").unwrap();
//! // In `main`, `opsready_settings::load_or_exit::<Settings>("ACCOUNTS")` does
//! // all of this with the process's environment and command line.
//! let settings = Loader::new("ACCOUNTS")
//!     .config_dir(dir.path())
//!     .env([
//!         ("ACCOUNTS__SERVER__READ_TIMEOUT", "250ms"),
//!         ("ACCOUNTS__DATABASE__PASSWORD", "hunter2"),
//!     ])
//!     .load::<Settings>()
//!     .unwrap();
//!
//! assert_eq!(settings.server.read_timeout, Duration::from_millis(250));
//! assert_eq!(settings.database.password.expose_secret(), "hunter2");
//! let dump = settings.dump().to_json_pretty();
//! assert!(dump.contains("ACCOUNTS__SERVER__READ_TIMEOUT"));
//! assert!(!dump.contains("hunter2"));
//!
//! // Every problem at once, each with its key, origin and fix.
//! let error = Loader::new("ACCOUNTS")
//!     .env([
//!         ("ACCOUNTS__SERVER__PORT", "eighty"),
//!         ("ACCOUNTS__SERVER__READ_TIMOUT", "5s"),
//!     ])
//!     .load::<Settings>()
//!     .unwrap_err()
//!     .to_string();
//! assert!(error.contains("4 problems")); // database.password is missing too
//! assert!(error.contains("from: environment variable ACCOUNTS__SERVER__PORT"));
//! assert!(error.contains("did you mean `server.read_timeout`"));
//! assert!(error.contains("set the environment variable ACCOUNTS__DATABASE__URL"));
//! ```
//!
//! # Layers
//!
//! Lowest first; a higher layer replaces single values and merges tables:
//!
//! | layer | example | origin in errors and dumps |
//! |---|---|---|
//! | defaults in code | `#[serde(default)]` | `default` |
//! | `config/default.toml` | `[server]`<br>`port = 8080` | `file config/default.toml` |
//! | `config/{env}.toml`, env from `{PREFIX}_ENV`, default `local` | `config/production.toml` | `file config/production.toml` |
//! | environment `{PREFIX}__SECTION__KEY` | `ACCOUNTS__SERVER__READ_TIMEOUT=5s` | `environment variable ACCOUNTS__SERVER__READ_TIMEOUT` |
//! | overrides: `--set key=value`, [`Loader::set`] | `--set server.port=9000` | `--set server.port` |
//!
//! Missing files are skipped; unreadable or malformed files are errors that
//! name the file and the line. A `{PREFIX}_ENV` that names no file while
//! the directory has files for other environments is an error listing
//! them (a typo would otherwise run the service on the defaults).
//!
//! # Gotchas
//!
//! - Only a double underscore nests: `ACCOUNTS__SERVER__READ_TIMEOUT` is
//!   `server.read_timeout`. Names are lower-cased, so keys are snake_case.
//! - Environment and `--set` values are strings read as the field's type:
//!   `"8080"` for a `u16`, `"true"`/`"false"`/`1`/`0` for a `bool`, `a,b,c`
//!   for a list, and an empty value is `None` for an `Option`.
//! - An unknown key is an error with a "did you mean" hint, so a typo in a
//!   variable never silently falls back to a default. Keys below a map
//!   (`HashMap<String, _>`) are free-form and never unknown.
//! - Load errors hold every problem found, but semantic rules
//!   ([`Validate`]) run only once every value parsed.
//! - Avoid `#[serde(flatten)]`: serde buffers a flattened section, which
//!   loses the typed reading of environment strings and the key of its
//!   errors. Combine two settings types with [`Loader::load_with`].
//! - Mark credentials [`Secret`]: they are redacted everywhere. Keys whose
//!   name looks like a credential (`password`, `token`, `secret`, …) and
//!   passwords in URLs are redacted in dumps and errors as a safety net.
//!
//! # Command line and exit status
//!
//! [`load_or_exit`] handles `--set key=value`, `--print-config` (the
//! redacted dump with origins, as JSON) and `--check-config` (validate,
//! print, exit 0), and exits with status 78 ([`EX_CONFIG`]) on bad
//! settings, after printing every problem.
//!
//! # Feature flags
//!
//! This crate has no optional features.

pub(crate) mod de;
mod dump;
mod error;
mod loader;
mod origin;
mod secret;
mod sources;
pub mod units;
mod validate;

pub use dump::{Dump, DumpEntry};
pub use error::{Diagnostic, DiagnosticKind, EX_CONFIG, EX_USAGE, LoadError};
pub use loader::{Action, CommandLine, Loaded, Loader, UsageError, load_or_exit};
pub use origin::Origin;
pub use secret::{REDACTED, Secret};
pub use units::{ByteSize, Duration, ParseUnitError};
pub use validate::{Validate, Violations};
