//! Feature flags for axum services: typed definitions, evaluation that
//! takes no lock and allocates nothing, and versioned changes with an
//! audit log and rollback.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use opsready_flags::{Condition, EvaluationContext, Flag, Flags, MemoryStore, Reason, Rule};
//!
//! let flags = Flags::new(MemoryStore::new()).await?;
//!
//! // Declared in code with its defaults: created when absent, never
//! // overwriting what an operator stored.
//! flags
//!     .declare([Flag::boolean("greeting.shout")
//!         .rule(Rule::new("on").when(Condition::equals("plan", "pro")))
//!         .owner("team-greetings")])
//!     .await?;
//!
//! let pro = EvaluationContext::new().targeting_key("user-1").attribute("plan", "pro");
//! let details = flags.bool_details("greeting.shout", &pro, false);
//! assert!(details.value);
//! assert_eq!(details.reason, Reason::TargetingMatch);
//! assert_eq!(details.variant.as_deref(), Some("on"));
//!
//! // An incident: kill it, then undo the kill.
//! flags.kill("greeting.shout", "alice", "shouting broke the mobile app").await?;
//! assert!(!flags.bool_value("greeting.shout", &pro, true));
//! let restored = flags.rollback("greeting.shout", None, "alice", "fixed in 2.4.1").await?;
//! assert_eq!(restored.version, 3);
//! assert!(flags.bool_value("greeting.shout", &pro, false));
//!
//! let history = flags.history("greeting.shout").await?;
//! let actions: Vec<&str> = history.iter().map(|entry| entry.action.as_str()).collect();
//! assert_eq!(actions, ["create", "kill", "rollback"]);
//! # Ok::<(), opsready_flags::Error>(())
//! # }).unwrap();
//! ```
//!
//! # How a flag is evaluated
//!
//! 1. A disabled flag (`enabled: false`, the kill switch) serves its
//!    default variant: `DISABLED`.
//! 2. The first rule whose conditions all hold serves its variant:
//!    `TARGETING_MATCH`.
//! 3. The rollout serves its variant to its percentage of targeting keys:
//!    `SPLIT` ([`bucket`] says who).
//! 4. Otherwise the default variant: `STATIC` when the flag has no rules
//!    and no rollout, `DEFAULT` when it has.
//!
//! On any problem (no such flag, another type, a percentage without a
//! targeting key, a definition this version cannot evaluate) the caller's
//! default is served with `ERROR` and an [`ErrorCode`]: evaluation never
//! fails and never panics.
//!
//! # Gotchas
//!
//! - Evaluations read the last snapshot this handle loaded or wrote. To see
//!   changes made by other instances, spawn [`Flags::follow`] (or call
//!   [`Flags::refresh`]).
//! - Pass a targeting key whenever a flag may use a percentage: without
//!   one, a rollout between 0% and 100% evaluates to the caller's default
//!   with `TARGETING_KEY_MISSING`.
//! - The default you pass to a getter is what users get when anything goes
//!   wrong, including a typo in the key: make it the safe value.
//! - [`Flags::declare`] revives a flag that an operator deleted while code
//!   still declares it: delete the declaration first.
//! - Counters in [`Flags::evaluation_counts`] belong to the handle and
//!   start at zero; a series appears once it has counted.
//! - Definitions may carry fields this version does not know; they are
//!   kept and written back, so rolling a binary back never loses them.
//!
//! # Feature flags
//!
//! None is enabled by default.
//!
//! | Feature | Adds |
//! | --- | --- |
//! | `postgres` | `PostgresStore`: flags in Postgres for a fleet, changes pushed to every instance with LISTEN/NOTIFY (`postgres://…` in [`open`]). |
//! | `openfeature` | `OpenFeatureProvider`: these flags behind the `open-feature` SDK, so that code written against OpenFeature evaluates them. |
//!
//! # Modules
//!
//! Everything is exported at the crate root. [`Flag`], [`Rule`],
//! [`Condition`] and [`Rollout`] are the definitions;
//! [`EvaluationContext`] and [`Details`] are evaluation's input and
//! output; [`Store`], [`Change`] and [`AuditEntry`] are what other stores
//! (files, Postgres) implement and record; [`Flags`] ties them together.

mod bucket;
mod context;
mod date;
mod error;
mod eval;
mod flag;
mod flags;
#[cfg(feature = "openfeature")]
pub mod openfeature;
mod rule;
mod store;
mod time;
mod validate;

pub use bucket::{BUCKETS, bucket, murmur3_32};
pub use context::{AttributeValue, EvaluationContext};
pub use date::{Date, ParseDateError};
pub use error::{Error, ErrorKind};
pub use eval::{Details, ErrorCode, EvaluationCount, Reason, UNKNOWN_FLAG};
pub use flag::{Flag, FlagType, Kind, Rollout};
pub use flags::{DECLARED_BY, Flags, LOAD_WITHIN};
#[cfg(feature = "openfeature")]
pub use openfeature::OpenFeatureProvider;
pub use rule::{Condition, Operator, Rule};
pub use store::{
    Action, AuditEntry, BoxFuture, Change, Expected, FileStore, MemoryStore, Store, StoredFlag,
    open,
};
#[cfg(feature = "postgres")]
pub use store::{CHANGE_LOCK_WITHIN, PostgresStore, PostgresStoreBuilder};
pub use validate::{MAX_KEY_LEN, MAX_VARIANT_LEN, Violation};

/// The JSON Schema (draft 2020-12) of a flag definition, as the admin API,
/// the audit log and the flag files hold it: for editors that check a flag
/// file as it is typed, for a CI step that checks flag files before they
/// ship, and for clients of the admin API.
///
/// It describes the structure (names, types, operators and their operands,
/// percentages); that the default, rule and rollout variants name one of
/// the flag's variants is left to [`Flag::validate`], which every store
/// runs. `docs/flag-definition.schema.json` is the same document.
///
/// ```
/// let schema: serde_json::Value =
///     serde_json::from_str(opsready_flags::DEFINITION_SCHEMA).unwrap();
/// assert_eq!(schema["title"], "opsready feature flag definition");
/// ```
pub const DEFINITION_SCHEMA: &str = include_str!("../schema/flag-definition.schema.json");
