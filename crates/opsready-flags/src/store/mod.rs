//! Where definitions live, the changes applied to them and the audit log.

mod file;
mod memory;
mod open;
#[cfg(feature = "postgres")]
mod postgres;
mod toml_layout;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::watch;

pub use file::FileStore;
pub use memory::MemoryStore;
pub use open::open;
#[cfg(feature = "postgres")]
pub use postgres::{CHANGE_LOCK_WITHIN, PostgresStore, PostgresStoreBuilder};

use crate::error::Error;
use crate::flag::Flag;
use crate::validate::{Violation, key_problem};

/// A boxed future that is `Send`, as [`Store`] methods return: it keeps
/// the trait usable as `dyn Store` without a macro.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where flag definitions, their versions and their audit log live.
///
/// Implementations: [`MemoryStore`] here; files, Postgres and others
/// elsewhere. Every method returns a boxed future, so the trait is usable
/// as `dyn Store` (and `Arc<dyn Store>` is a `Store` too).
///
/// # Example
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use opsready_flags::{Change, ErrorKind, Flag, MemoryStore, Store};
///
/// let store = MemoryStore::new();
/// let created = store
///     .apply(Change::create(Flag::boolean("a"), "alice", "new checkout").unwrap())
///     .await
///     .unwrap();
/// assert_eq!(created.version, 1);
///
/// // Two updates based on version 1: the second is refused.
/// let update = |description: &str| {
///     Change::update(Flag::boolean("a").description(description), 1, "bob", "describe it").unwrap()
/// };
/// store.apply(update("first")).await.unwrap();
/// let refused = store.apply(update("second")).await.unwrap_err();
/// assert_eq!(refused.kind(), ErrorKind::Conflict);
/// assert_eq!(refused.current_version(), Some(2));
/// # });
/// ```
///
/// # Writing a store
///
/// A store keeps, per key, the latest version (counting deletes) and the
/// live definition, and an append-only log of [`AuditEntry`]s. Its
/// [`apply`](Store::apply) does, atomically (one transaction, one lock):
///
/// 1. read the key's latest version and whether it is live;
/// 2. [`Change::check`] them, which gives the new version or the error to
///    return (so every store refuses the same things the same way);
/// 3. [`Change::record`] the entry with the previous live definition as
///    `before`, append it, and set or clear the live definition;
/// 4. after committing, bump the revision that [`Store::subscribe`]rs
///    watch.
///
/// # Gotchas
///
/// - Versions count per key from 1 and keep counting across a delete: a
///   flag deleted at version 4 and created again is at version 5, and its
///   history shows both lives.
/// - A [`Change`] is validated when built, so a store can trust it.
/// - The revision watched by [`Store::subscribe`] says only that something
///   changed; readers [`load`](Store::load) again.
pub trait Store: Send + Sync {
    /// Every live flag, with its version.
    fn load(&self) -> BoxFuture<'_, Result<Vec<StoredFlag>, Error>>;

    /// The live flag `key`, if there is one.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<StoredFlag>, Error>>;

    /// Applies `change` atomically if its precondition holds, recording it
    /// in the audit log; returns the recorded entry.
    ///
    /// Errors: [`Conflict`](crate::ErrorKind::Conflict) when the key is
    /// not at the expected version (or exists, for a create);
    /// [`NotFound`](crate::ErrorKind::NotFound) when it has no live
    /// definition to change; [`BadEdit`](crate::ErrorKind::BadEdit) when
    /// the store holds a hand edit it cannot take in;
    /// [`Backend`](crate::ErrorKind::Backend).
    fn apply(&self, change: Change) -> BoxFuture<'_, Result<AuditEntry, Error>>;

    /// Every recorded change of `key`, oldest first; empty for a key never
    /// written.
    fn history<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<AuditEntry>, Error>>;

    /// A receiver whose value changes after every change applied by any
    /// writer, this process or another: wait on `changed()`, then
    /// [`load`](Self::load).
    fn subscribe(&self) -> watch::Receiver<u64>;
}

impl<S: Store + ?Sized> Store for Arc<S> {
    fn load(&self) -> BoxFuture<'_, Result<Vec<StoredFlag>, Error>> {
        (**self).load()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<StoredFlag>, Error>> {
        (**self).get(key)
    }

    fn apply(&self, change: Change) -> BoxFuture<'_, Result<AuditEntry, Error>> {
        (**self).apply(change)
    }

    fn history<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<AuditEntry>, Error>> {
        (**self).history(key)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        (**self).subscribe()
    }
}

/// A live definition and its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredFlag {
    /// The version of the change that wrote this definition.
    pub version: u64,
    /// The definition.
    pub flag: Flag,
}

impl StoredFlag {
    /// `flag` at `version`.
    #[must_use]
    pub fn new(flag: Flag, version: u64) -> Self {
        Self { version, flag }
    }
}

/// What a change did.
///
/// An action this version does not know reads as [`Action::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// `create`: a new flag (or a new life of a deleted one).
    Create,
    /// `update`: a new definition replaced the flag's.
    Update,
    /// `kill`: the flag was disabled.
    Kill,
    /// `ramp`: the rollout's percentage changed.
    Ramp,
    /// `delete`: the flag was removed.
    Delete,
    /// `rollback`: an earlier version's definition was restored.
    Rollback,
    /// An action this version does not know, as written.
    Other(String),
}

impl Action {
    /// The name used in the audit log.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Kill => "kill",
            Self::Ramp => "ramp",
            Self::Delete => "delete",
            Self::Rollback => "rollback",
            Self::Other(other) => other,
        }
    }

    /// The action named `name`; unknown names give [`Action::Other`].
    #[must_use]
    pub fn parse(name: &str) -> Self {
        match name {
            "create" => Self::Create,
            "update" => Self::Update,
            "kill" => Self::Kill,
            "ramp" => Self::Ramp,
            "delete" => Self::Delete,
            "rollback" => Self::Rollback,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(Self::parse(&name))
    }
}

/// The state of the key a change is based on: its precondition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Expected {
    /// The key has no live definition (never written, or deleted).
    Absent,
    /// The key is live at this version.
    Version(u64),
    /// The key's latest version, live or deleted, is this one (what a
    /// rollback, which may revive a deleted flag, expects).
    Latest(u64),
}

/// A change to one flag, validated when built: what to write, the version
/// it is based on, who and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    key: String,
    action: Action,
    expected: Expected,
    after: Option<Flag>,
    actor: String,
    reason: String,
    restores: Option<u64>,
}

impl Change {
    /// Creates `flag`, which must not exist.
    ///
    /// # Errors
    ///
    /// [`Invalid`](crate::ErrorKind::Invalid): see [`Change::new`].
    pub fn create(flag: Flag, actor: &str, reason: &str) -> Result<Self, Error> {
        let key = flag.key.clone();
        Self::new(
            Action::Create,
            key,
            Expected::Absent,
            Some(flag),
            actor,
            reason,
        )
    }

    /// Replaces the flag's definition with `flag`, provided the flag is
    /// still at `expected_version`.
    ///
    /// # Errors
    ///
    /// [`Invalid`](crate::ErrorKind::Invalid): see [`Change::new`].
    pub fn update(
        flag: Flag,
        expected_version: u64,
        actor: &str,
        reason: &str,
    ) -> Result<Self, Error> {
        let key = flag.key.clone();
        Self::new(
            Action::Update,
            key,
            Expected::Version(expected_version),
            Some(flag),
            actor,
            reason,
        )
    }

    /// A change of any action: `after` is the new definition (`None`
    /// removes the flag).
    ///
    /// # Errors
    ///
    /// [`Invalid`](crate::ErrorKind::Invalid), listing every problem: an
    /// invalid key; an empty actor (`/actor`) or reason (`/reason`); a
    /// definition whose key differs from `key` (`/key`) or that fails
    /// [`Flag::validate`]; a definition missing for any action but
    /// delete, or given for a delete; a rollback (`/action`), which only
    /// [`Flags::rollback`](crate::Flags::rollback) makes, from the flag's
    /// own history: it is the one change whose definition is not
    /// validated, as it was valid where it was written.
    pub fn new(
        action: Action,
        key: impl Into<String>,
        expected: Expected,
        after: Option<Flag>,
        actor: &str,
        reason: &str,
    ) -> Result<Self, Error> {
        if action == Action::Rollback {
            return Err(Error::invalid_flag(
                key,
                vec![Violation::new(
                    "/action",
                    "a rollback restores a version from the flag's history: use Flags::rollback",
                )],
            ));
        }
        Self::checked(action, key, expected, after, actor, reason, &[])
    }

    /// [`Change::new`], except that the definition's violations listed in
    /// `already` are not refused: an edit of a stored definition (a kill, a
    /// ramp) answers only for the problems it brings in, not for what a
    /// newer release wrote there (an unknown kind or operator).
    pub(crate) fn checked(
        action: Action,
        key: impl Into<String>,
        expected: Expected,
        after: Option<Flag>,
        actor: &str,
        reason: &str,
        already: &[Violation],
    ) -> Result<Self, Error> {
        let key = key.into();
        let mut violations = Vec::new();
        if let Some(problem) = key_problem(&key) {
            violations.push(Violation::new("/key", problem));
        }
        if actor.trim().is_empty() {
            violations.push(Violation::new("/actor", "say who makes the change"));
        }
        if reason.trim().is_empty() {
            violations.push(Violation::new("/reason", "say why the change is made"));
        }
        match (&action, &after) {
            (Action::Delete, Some(_)) => {
                violations.push(Violation::new("", "a delete carries no definition"));
            }
            (Action::Delete | Action::Rollback, None) => {}
            (_, None) => {
                violations.push(Violation::new("", format!("a {action} needs a definition")));
            }
            (_, Some(flag)) => {
                if flag.key != key {
                    violations.push(Violation::new(
                        "/key",
                        format!(
                            "the definition's key `{}` is not the flag's key `{key}`",
                            flag.key
                        ),
                    ));
                }
                // A rollback restores what was stored before, which may
                // come from a newer release (an unknown kind, say): it was
                // valid where it was written.
                if action != Action::Rollback
                    && let Err(problems) = flag.validate()
                {
                    violations.extend(problems.into_iter().filter(|p| !already.contains(p)));
                }
            }
        }
        if !violations.is_empty() {
            return Err(Error::invalid_flag(key, violations));
        }
        Ok(Self {
            key,
            action,
            expected,
            after,
            actor: actor.to_owned(),
            reason: reason.to_owned(),
            restores: None,
        })
    }

    /// A rollback of `key`, whose latest version is `latest`, to the
    /// definition `after` of its version `to` (`None`: that version
    /// deleted the flag).
    ///
    /// # Errors
    ///
    /// [`Invalid`](crate::ErrorKind::Invalid): see [`Change::new`].
    /// `after` itself is not validated: it comes from the flag's history.
    pub(crate) fn rollback(
        key: impl Into<String>,
        latest: u64,
        to: u64,
        after: Option<Flag>,
        actor: &str,
        reason: &str,
    ) -> Result<Self, Error> {
        let mut change = Self::checked(
            Action::Rollback,
            key,
            Expected::Latest(latest),
            after,
            actor,
            reason,
            &[],
        )?;
        change.restores = Some(to);
        Ok(change)
    }

    /// The flag's key.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What the change does.
    #[must_use]
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// The precondition.
    #[must_use]
    pub fn expected(&self) -> Expected {
        self.expected
    }

    /// The definition written; `None` removes the flag.
    #[must_use]
    pub fn after(&self) -> Option<&Flag> {
        self.after.as_ref()
    }

    /// Who makes the change.
    #[must_use]
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Why.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// For a rollback, the version whose definition it restores.
    #[must_use]
    pub fn restores(&self) -> Option<u64> {
        self.restores
    }

    /// Checks the precondition against the key's state in the store: its
    /// `latest` version (counting deletes; `None` if never written) and
    /// whether it is `live`. Returns the version to record.
    ///
    /// # Errors
    ///
    /// [`Conflict`](crate::ErrorKind::Conflict) when the version is not
    /// the expected one or a created flag is live;
    /// [`NotFound`](crate::ErrorKind::NotFound) when there is nothing to
    /// change (never written; not live for an update, kill, ramp or
    /// delete; a rollback to a delete of a flag already gone).
    pub fn check(&self, latest: Option<u64>, live: bool) -> Result<u64, Error> {
        let next = |version: u64| {
            version
                .checked_add(1)
                .ok_or_else(|| Error::conflict(self.key.as_str(), version, latest))
        };
        match self.expected {
            Expected::Absent if live => Err(Error::already_exists(self.key.as_str(), latest)),
            Expected::Absent => latest.map_or(Ok(1), next),
            Expected::Version(_) if !live => Err(Error::not_found(self.key.as_str())),
            Expected::Version(expected) | Expected::Latest(expected) => match latest {
                None => Err(Error::not_found(self.key.as_str())),
                Some(current) if current != expected => {
                    Err(Error::conflict(self.key.as_str(), expected, Some(current)))
                }
                Some(_) if self.after.is_none() && !live => {
                    Err(Error::not_found(self.key.as_str()))
                }
                Some(current) => next(current),
            },
        }
    }

    /// The audit entry of this change, applied as `version` at `at` over
    /// the previous live definition `before`.
    #[must_use]
    pub fn record(self, version: u64, before: Option<Flag>, at: SystemTime) -> AuditEntry {
        AuditEntry {
            key: self.key,
            version,
            action: self.action,
            actor: self.actor,
            reason: self.reason,
            at,
            before,
            after: self.after,
            restores: self.restores,
        }
    }
}

/// One recorded change: a version of a flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEntry {
    /// The flag's key.
    pub key: String,
    /// The version this change made, from 1.
    pub version: u64,
    /// What the change did.
    pub action: Action,
    /// Who made it.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// When it was applied; RFC 3339 in UTC when serialized.
    #[serde(with = "crate::time::rfc3339")]
    pub at: SystemTime,
    /// The live definition before the change; `None` if there was none.
    pub before: Option<Flag>,
    /// The live definition after the change; `None` after a delete.
    pub after: Option<Flag>,
    /// For a rollback, the version whose definition it restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restores: Option<u64>,
}

impl AuditEntry {
    /// [`at`](Self::at) as RFC 3339 in UTC, e.g. `2030-01-31T09:30:00.123Z`.
    #[must_use]
    pub fn at_rfc3339(&self) -> String {
        crate::time::format(self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn kinds(result: Result<u64, Error>) -> Result<u64, ErrorKind> {
        result.map_err(|error| error.kind())
    }

    #[test]
    fn a_change_without_a_reason_or_actor_is_invalid() {
        let error = Change::create(Flag::boolean("a"), " ", "").unwrap_err();
        let pointers: Vec<&str> = error
            .violations()
            .iter()
            .map(|v| v.pointer.as_str())
            .collect();
        assert_eq!(pointers, ["/actor", "/reason"]);
    }

    #[test]
    fn a_change_carries_the_definitions_violations() {
        let error = Change::create(Flag::boolean("a").default_variant("maybe"), "alice", "why")
            .unwrap_err();
        assert_eq!(error.violations()[0].pointer, "/default_variant");
    }

    #[test]
    fn a_definition_under_another_key_is_refused() {
        let error = Change::new(
            Action::Update,
            "a",
            Expected::Version(1),
            Some(Flag::boolean("b")),
            "x",
            "y",
        )
        .unwrap_err();
        assert_eq!(error.violations()[0].pointer, "/key");
    }

    #[test]
    fn only_deletes_and_rollbacks_may_carry_no_definition() {
        assert!(Change::new(Action::Delete, "a", Expected::Version(1), None, "x", "y").is_ok());
        assert!(Change::new(Action::Kill, "a", Expected::Version(1), None, "x", "y").is_err());
        assert!(
            Change::new(
                Action::Delete,
                "a",
                Expected::Version(1),
                Some(Flag::boolean("a")),
                "x",
                "y"
            )
            .is_err()
        );
    }

    #[test]
    fn a_create_starts_at_one_or_after_the_last_life() {
        let create = Change::create(Flag::boolean("a"), "x", "y").unwrap();
        assert_eq!(kinds(create.check(None, false)), Ok(1));
        assert_eq!(kinds(create.check(Some(4), false)), Ok(5));
        assert_eq!(kinds(create.check(Some(4), true)), Err(ErrorKind::Conflict));
    }

    #[test]
    fn an_update_needs_a_live_flag_at_the_expected_version() {
        let update = Change::update(Flag::boolean("a"), 3, "x", "y").unwrap();
        assert_eq!(kinds(update.check(Some(3), true)), Ok(4));
        assert_eq!(kinds(update.check(Some(4), true)), Err(ErrorKind::Conflict));
        assert_eq!(
            kinds(update.check(Some(3), false)),
            Err(ErrorKind::NotFound)
        );
        assert_eq!(kinds(update.check(None, false)), Err(ErrorKind::NotFound));
    }

    #[test]
    fn a_rollback_is_not_made_by_hand() {
        // A definition no store would take: the variant does not exist.
        let invalid = Flag::boolean("a").default_variant("maybe");
        assert!(invalid.validate().is_err());

        let by_hand = Change::new(
            Action::Rollback,
            "a",
            Expected::Latest(4),
            Some(invalid),
            "x",
            "y",
        );

        let error = by_hand.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid);
        assert_eq!(error.violations()[0].pointer, "/action");
    }

    #[test]
    fn a_rollback_may_revive_a_deleted_flag_but_not_delete_it_twice() {
        let revive = Change::rollback("a", 4, 3, Some(Flag::boolean("a")), "x", "y").unwrap();
        assert_eq!(kinds(revive.check(Some(4), false)), Ok(5));
        assert_eq!(
            kinds(revive.check(Some(5), false)),
            Err(ErrorKind::Conflict)
        );
        let to_delete = Change::rollback("a", 4, 3, None, "x", "y").unwrap();
        assert_eq!(kinds(to_delete.check(Some(4), true)), Ok(5));
        assert_eq!(
            kinds(to_delete.check(Some(4), false)),
            Err(ErrorKind::NotFound)
        );
    }

    #[test]
    fn an_audit_entry_round_trips_through_json_with_an_rfc3339_time() {
        let change = Change::create(Flag::boolean("a"), "alice", "launch").unwrap();
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_900_000_000_123);
        let entry = change.record(1, None, at);
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["at"], "2030-03-17T17:46:40.123Z");
        assert_eq!(json["action"], "create");
        let back: AuditEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, entry);
    }
}
