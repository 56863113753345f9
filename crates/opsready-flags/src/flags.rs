//! The [`Flags`] handle: evaluation against a lock-free snapshot, and
//! changes written through the store.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::Value;
use tokio::sync::{Mutex, watch};

use crate::context::EvaluationContext;
use crate::error::{Error, ErrorKind};
use crate::eval::{Counters, Details, EvaluationCount, Reason, Snapshot, VariantValue};
use crate::flag::{Flag, FlagType};
use crate::store::{Action, AuditEntry, Change, Expected, Store, StoredFlag};
use crate::validate::{Violation, percentage_problem};

/// The actor recorded for flags created by [`Flags::declare`] and
/// [`Flags::ensure`].
pub const DECLARED_BY: &str = "code";

/// How many times [`Flags::kill`], [`Flags::ramp`] and [`Flags::delete`]
/// read the flag again after another writer changed it in between.
const ATTEMPTS: usize = 5;

/// How long [`Flags::follow`] waits before loading again after a failed
/// load.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long a refresh ([`Flags::refresh`], and so [`Flags::follow`])
/// waits for one load of the store before it fails: a store that stopped
/// answering (a hung database) would otherwise stop every later change
/// from reaching this instance, without a word.
pub const LOAD_WITHIN: Duration = Duration::from_secs(10);

/// Feature flags: evaluates them and changes them.
///
/// Cheap to clone (one `Arc`); every clone sees the same flags. Evaluation
/// reads an immutable snapshot swapped atomically after each change, so it
/// takes no lock, allocates nothing for booleans, numbers and strings
/// (except to read a version a `semver_*` condition compares whose
/// pre-release or build part is longer than 8 bytes), and never fails: on
/// any problem it serves the caller's default with [`Reason::Error`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use opsready_flags::{EvaluationContext, Flag, Flags, MemoryStore, Reason, Rollout};
///
/// let flags = Flags::new(MemoryStore::new()).await.unwrap();
/// flags
///     .create(
///         Flag::boolean("checkout.new-flow").rollout(Rollout::new("on", 0.0)),
///         "alice",
///         "dark launch",
///     )
///     .await
///     .unwrap();
/// let ctx = EvaluationContext::new().targeting_key("user-7");
/// assert!(!flags.bool_value("checkout.new-flow", &ctx, true));
///
/// // Based on what this handle read: refused if someone changed it since.
/// let current = flags.get("checkout.new-flow").unwrap();
/// let described = current.flag.clone().description("The one-page checkout");
/// flags
///     .replace("checkout.new-flow", described, current.version, "alice", "describe it")
///     .await
///     .unwrap();
///
/// flags.ramp("checkout.new-flow", 100.0, "alice", "everyone").await.unwrap();
/// let details = flags.bool_details("checkout.new-flow", &ctx, false);
/// assert!(details.value);
/// assert_eq!(details.reason, Reason::Split);
/// # });
/// ```
#[derive(Clone)]
pub struct Flags {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    snapshot: ArcSwap<Snapshot>,
    counters: Counters,
    /// Serialises this handle's writes and snapshot swaps. Never taken by
    /// evaluations, nor held while a refresh loads: a kill must not wait
    /// behind a slow load.
    writing: Mutex<()>,
    /// Snapshots swapped in so far, under `writing`: a refresh whose load
    /// saw another swap happen meanwhile (a write, another refresh) may
    /// have read the store before it, and loads again.
    swaps: AtomicU64,
    /// Subscribed before the first load, so that no change is missed.
    changes: watch::Receiver<u64>,
    /// Dropped with the last handle, which stops [`Flags::follow`].
    alive: watch::Sender<()>,
}

impl Flags {
    /// Loads every flag from `store`.
    ///
    /// # Errors
    ///
    /// The store's, when it cannot load.
    pub async fn new(store: impl Store + 'static) -> Result<Self, Error> {
        let store: Arc<dyn Store> = Arc::new(store);
        let changes = store.subscribe();
        let counters = Counters::default();
        let stored = store.load().await?;
        let snapshot = Snapshot::empty(&counters).rebuild(stored, &counters);
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                snapshot: ArcSwap::from_pointee(snapshot),
                counters,
                writing: Mutex::new(()),
                swaps: AtomicU64::new(0),
                changes,
                alive: watch::Sender::new(()),
            }),
        })
    }

    /// Loads every flag from the store again and swaps in the result.
    ///
    /// # Errors
    ///
    /// The store's, when it cannot load, or a backend error when a load
    /// takes longer than [`LOAD_WITHIN`]; the flags stay as they were.
    pub async fn refresh(&self) -> Result<(), Error> {
        refresh(&self.inner).await
    }

    /// Follows changes made by other writers (other instances, an admin
    /// tool): refreshes whenever the store reports a change, retrying
    /// every second while loading fails or takes longer than
    /// [`LOAD_WITHIN`]. Spawn it once:
    ///
    /// ```no_run
    /// # async fn run(flags: opsready_flags::Flags) {
    /// tokio::spawn(flags.follow());
    /// # }
    /// ```
    ///
    /// The future ends when every `Flags` handle is dropped or the store
    /// closes its notifications. It holds no strong reference, so it does
    /// not keep the flags alive.
    pub fn follow(&self) -> impl Future<Output = ()> + Send + 'static {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let mut changes = self.inner.changes.clone();
        let mut alive = self.inner.alive.subscribe();
        async move {
            loop {
                let changed = {
                    let mut store_changed = pin!(changes.changed());
                    let mut dropped = pin!(alive.changed());
                    poll_fn(|cx| {
                        // `alive` never sends: it only resolves when its
                        // sender, and so every handle, is gone.
                        if dropped.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(false);
                        }
                        store_changed.as_mut().poll(cx).map(|result| result.is_ok())
                    })
                    .await
                };
                if !changed {
                    return;
                }
                loop {
                    let Some(inner) = weak.upgrade() else {
                        return;
                    };
                    match refresh(&inner).await {
                        Ok(()) => break,
                        Err(error) => {
                            tracing::warn!(%error, "could not load feature flags after a change; retrying");
                        }
                    }
                    drop(inner);
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }

    /// Evaluates the boolean flag `key` for `ctx`, with details.
    #[must_use]
    pub fn bool_details(&self, key: &str, ctx: &EvaluationContext, default: bool) -> Details<bool> {
        self.details(key, ctx, FlagType::Bool, read_bool, || default)
    }

    /// Evaluates the boolean flag `key` for `ctx`.
    #[must_use]
    pub fn bool_value(&self, key: &str, ctx: &EvaluationContext, default: bool) -> bool {
        self.value(key, ctx, FlagType::Bool, read_bool, || default)
    }

    /// Evaluates the string flag `key` for `ctx`, with details. The
    /// default is copied only when it is served.
    #[must_use]
    pub fn string_details(
        &self,
        key: &str,
        ctx: &EvaluationContext,
        default: &str,
    ) -> Details<Arc<str>> {
        self.details(key, ctx, FlagType::String, read_string, || {
            Arc::from(default)
        })
    }

    /// Evaluates the string flag `key` for `ctx`.
    #[must_use]
    pub fn string_value(&self, key: &str, ctx: &EvaluationContext, default: &str) -> Arc<str> {
        self.value(key, ctx, FlagType::String, read_string, || {
            Arc::from(default)
        })
    }

    /// Evaluates the number flag `key` for `ctx`, with details.
    #[must_use]
    pub fn number_details(&self, key: &str, ctx: &EvaluationContext, default: f64) -> Details<f64> {
        self.details(key, ctx, FlagType::Number, read_number, || default)
    }

    /// Evaluates the number flag `key` for `ctx`.
    #[must_use]
    pub fn number_value(&self, key: &str, ctx: &EvaluationContext, default: f64) -> f64 {
        self.value(key, ctx, FlagType::Number, read_number, || default)
    }

    /// Evaluates the JSON flag `key` for `ctx`, with details. The value is
    /// cloned out of the snapshot.
    #[must_use]
    pub fn json_details(
        &self,
        key: &str,
        ctx: &EvaluationContext,
        default: Value,
    ) -> Details<Value> {
        self.details(key, ctx, FlagType::Json, read_json, || default)
    }

    /// Evaluates the JSON flag `key` for `ctx`.
    #[must_use]
    pub fn json_value(&self, key: &str, ctx: &EvaluationContext, default: Value) -> Value {
        self.value(key, ctx, FlagType::Json, read_json, || default)
    }

    /// Evaluates `key` as a flag of type `wanted` and takes the served
    /// value with `read`: a value `read` refuses is a type mismatch,
    /// counted as an error, and `default` is served.
    pub(crate) fn details<T>(
        &self,
        key: &str,
        ctx: &EvaluationContext,
        wanted: FlagType,
        read: impl FnOnce(&VariantValue) -> Option<T>,
        default: impl FnOnce() -> T,
    ) -> Details<T> {
        self.inner.snapshot.load().evaluate(
            key,
            ctx,
            wanted,
            read,
            |version, outcome| match outcome {
                Ok((value, variant, reason)) => Details {
                    value,
                    variant: Some(Arc::clone(variant)),
                    reason,
                    error: None,
                    version,
                },
                Err(code) => Details {
                    value: default(),
                    variant: None,
                    reason: Reason::Error,
                    error: Some(code),
                    version,
                },
            },
        )
    }

    fn value<T>(
        &self,
        key: &str,
        ctx: &EvaluationContext,
        wanted: FlagType,
        read: fn(&VariantValue) -> Option<T>,
        default: impl FnOnce() -> T,
    ) -> T {
        self.inner
            .snapshot
            .load()
            .evaluate(key, ctx, wanted, read, |_, outcome| {
                outcome.ok().map(|(value, _, _)| value)
            })
            .unwrap_or_else(default)
    }

    /// How many evaluations served each (flag, variant, reason) since this
    /// handle was created; only counts above zero. Evaluations of unknown
    /// keys count under the flag [`UNKNOWN_FLAG`](crate::UNKNOWN_FLAG).
    #[must_use]
    pub fn evaluation_counts(&self) -> Vec<EvaluationCount> {
        self.inner.counters.counts()
    }

    /// The flag `key` as last loaded or written by this handle.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<StoredFlag> {
        self.inner.snapshot.load().get(key).cloned()
    }

    /// Every flag as last loaded or written by this handle, by key.
    #[must_use]
    pub fn list(&self) -> Vec<StoredFlag> {
        let snapshot = self.inner.snapshot.load();
        let mut flags: Vec<StoredFlag> = snapshot.stored().cloned().collect();
        flags.sort_by(|a, b| a.flag.key.cmp(&b.flag.key));
        flags
    }

    /// Every recorded change of `key`, oldest first, from the store.
    ///
    /// # Errors
    ///
    /// The store's.
    pub async fn history(&self, key: &str) -> Result<Vec<AuditEntry>, Error> {
        self.inner.store.history(key).await
    }

    /// Creates `flag`, at version 1 (or the version after its last life).
    ///
    /// # Errors
    ///
    /// [`Invalid`](ErrorKind::Invalid) with every violation;
    /// [`Conflict`](ErrorKind::Conflict) when it exists; the store's.
    pub async fn create(&self, flag: Flag, actor: &str, reason: &str) -> Result<AuditEntry, Error> {
        self.apply(Change::create(flag, actor, reason)?).await
    }

    /// Replaces the definition of `key` with `flag`, provided it is still
    /// at `expected_version`: a change based on a stale read is refused,
    /// never lost.
    ///
    /// # Errors
    ///
    /// [`Invalid`](ErrorKind::Invalid); [`Conflict`](ErrorKind::Conflict)
    /// naming the current version; [`NotFound`](ErrorKind::NotFound); the
    /// store's.
    pub async fn replace(
        &self,
        key: &str,
        flag: Flag,
        expected_version: u64,
        actor: &str,
        reason: &str,
    ) -> Result<AuditEntry, Error> {
        let change = Change::new(
            Action::Update,
            key,
            Expected::Version(expected_version),
            Some(flag),
            actor,
            reason,
        )?;
        self.apply(change).await
    }

    /// Disables `key`: it serves its default variant to everyone, whatever
    /// its rules. Undo with [`rollback`](Self::rollback).
    ///
    /// Killing a flag whose current version in the store is a kill writes
    /// nothing and returns that kill's entry: two responders killing one
    /// flag at once leave one kill, whose rollback restores what was there
    /// before it (a second kill's rollback would restore the first kill).
    /// A flag disabled by another change is killed by a change of its own.
    ///
    /// # Errors
    ///
    /// [`Invalid`](ErrorKind::Invalid) without actor or reason;
    /// [`NotFound`](ErrorKind::NotFound); the store's.
    pub async fn kill(&self, key: &str, actor: &str, reason: &str) -> Result<AuditEntry, Error> {
        self.kill_expecting(key, None, actor, reason).await
    }

    /// [`kill`](Self::kill), only while the flag's latest version is
    /// `latest`, the one the caller read, or is the kill that followed it
    /// (this kill sent again, or another responder's: the answer is that
    /// kill, nothing written): a kill sent again after its answer was lost
    /// does not undo a rollback made since.
    ///
    /// # Errors
    ///
    /// [`Conflict`](ErrorKind::Conflict) when the latest version is another
    /// (its [`current_version`](Error::current_version) says which); as
    /// [`kill`](Self::kill) otherwise.
    pub async fn kill_from(
        &self,
        key: &str,
        latest: u64,
        actor: &str,
        reason: &str,
    ) -> Result<AuditEntry, Error> {
        self.kill_expecting(key, Some(latest), actor, reason).await
    }

    async fn kill_expecting(
        &self,
        key: &str,
        expected: Option<u64>,
        actor: &str,
        reason: &str,
    ) -> Result<AuditEntry, Error> {
        self.modify(
            key,
            expected,
            Action::Kill,
            Repeat::WritesNothing,
            actor,
            reason,
            |mut flag| {
                flag.enabled = false;
                Ok(Some(flag))
            },
        )
        .await
    }

    /// Sets the rollout percentage of `key`.
    ///
    /// # Errors
    ///
    /// [`Invalid`](ErrorKind::Invalid) when the percentage is outside
    /// `0..=100` or the flag has no rollout (pointer `/rollout`);
    /// [`NotFound`](ErrorKind::NotFound); the store's.
    pub async fn ramp(
        &self,
        key: &str,
        percentage: f64,
        actor: &str,
        reason: &str,
    ) -> Result<AuditEntry, Error> {
        if let Some(problem) = percentage_problem(&Value::from(percentage)) {
            return Err(Error::invalid_flag(
                key,
                vec![Violation::new("/rollout/percentage", problem)],
            ));
        }
        self.modify(
            key,
            None,
            Action::Ramp,
            Repeat::Writes,
            actor,
            reason,
            |mut flag| {
                let Some(rollout) = flag.rollout.as_mut() else {
                    return Err(Error::invalid_flag(
                        key,
                        vec![Violation::new(
                            "/rollout",
                            "the flag has no rollout to ramp; add one with a replace",
                        )],
                    ));
                };
                rollout.percentage = percentage;
                Ok(Some(flag))
            },
        )
        .await
    }

    /// Deletes `key`. Its history stays; a rollback brings it back.
    ///
    /// # Errors
    ///
    /// [`Invalid`](ErrorKind::Invalid) without actor or reason;
    /// [`NotFound`](ErrorKind::NotFound); the store's.
    pub async fn delete(&self, key: &str, actor: &str, reason: &str) -> Result<AuditEntry, Error> {
        self.modify(
            key,
            None,
            Action::Delete,
            Repeat::Writes,
            actor,
            reason,
            |_| Ok(None),
        )
        .await
    }

    /// Restores the definition `key` had at `to_version` (`None`: the
    /// version before the current one), as a new version. Rolling back a
    /// rollback undoes it; rolling back to a delete deletes; rolling back
    /// a delete revives the flag.
    ///
    /// # Errors
    ///
    /// [`NotFound`](ErrorKind::NotFound) when the flag never existed;
    /// [`Invalid`](ErrorKind::Invalid) (pointer `/to_version`) when it has
    /// no such version, or none before the latest, or `to_version` is the
    /// latest; [`Conflict`](ErrorKind::Conflict) when another writer
    /// changed the flag meanwhile; the store's.
    pub async fn rollback(
        &self,
        key: &str,
        to_version: Option<u64>,
        actor: &str,
        reason: &str,
    ) -> Result<AuditEntry, Error> {
        self.rollback_expecting(key, None, to_version, actor, reason)
            .await
    }

    /// [`rollback`](Self::rollback), only while the flag's latest version
    /// is `latest`, the one the caller read: a rollback meant to undo a
    /// change does not undo another one made since (someone's kill), and a
    /// rollback sent twice does not undo itself.
    ///
    /// # Errors
    ///
    /// [`Conflict`](ErrorKind::Conflict) when the latest version is another
    /// (its [`current_version`](Error::current_version) says which); as
    /// [`rollback`](Self::rollback) otherwise.
    pub async fn rollback_from(
        &self,
        key: &str,
        latest: u64,
        to_version: Option<u64>,
        actor: &str,
        reason: &str,
    ) -> Result<AuditEntry, Error> {
        self.rollback_expecting(key, Some(latest), to_version, actor, reason)
            .await
    }

    async fn rollback_expecting(
        &self,
        key: &str,
        expected: Option<u64>,
        to_version: Option<u64>,
        actor: &str,
        reason: &str,
    ) -> Result<AuditEntry, Error> {
        let history = self.inner.store.history(key).await?;
        let latest = history.last().ok_or_else(|| Error::not_found(key))?.version;
        if let Some(expected) = expected
            && expected != latest
        {
            return Err(Error::conflict(key, expected, Some(latest)));
        }
        // The flag exists: a version it lacks is a wrong request (422 over
        // HTTP), not a missing flag.
        let to = match to_version {
            Some(version) => version,
            None => latest.checked_sub(1).filter(|v| *v > 0).ok_or_else(|| {
                Error::invalid_flag(
                    key,
                    vec![Violation::new(
                        "/to_version",
                        format!("version {latest} is the flag's first: there is nothing earlier to roll back to"),
                    )],
                )
            })?,
        };
        if to == latest {
            return Err(Error::invalid_flag(
                key,
                vec![Violation::new(
                    "/to_version",
                    format!(
                        "version {latest} is the flag's current one: there is nothing to roll back"
                    ),
                )],
            ));
        }
        let target = history
            .iter()
            .find(|entry| entry.version == to)
            .ok_or_else(|| {
                Error::invalid_flag(
                    key,
                    vec![Violation::new(
                        "/to_version",
                        format!("the flag has no version {to}; its versions are 1 to {latest}"),
                    )],
                )
            })?;
        let change = Change::rollback(key, latest, to, target.after.clone(), actor, reason)?;
        self.apply(change).await
    }

    /// Applies any [`Change`] through the store and swaps in a snapshot
    /// that has it.
    ///
    /// # Errors
    ///
    /// The store's refusal or failure.
    pub async fn apply(&self, change: Change) -> Result<AuditEntry, Error> {
        let inner = &self.inner;
        let _writing = inner.writing.lock().await;
        let entry = inner.store.apply(change).await?;
        let stored = entry
            .after
            .clone()
            .map(|flag| StoredFlag::new(flag, entry.version));
        swap_in(inner, &entry.key, stored, entry.version);
        Ok(entry)
    }

    /// Swaps in `stored` as `key`'s version `version`, read from the store.
    async fn install(&self, key: &str, stored: Option<StoredFlag>, version: u64) {
        let _writing = self.inner.writing.lock().await;
        swap_in(&self.inner, key, stored, version);
    }

    /// Creates each of `flags` that the store does not have, by
    /// [`ensure`](Self::ensure); returns the entries of those created.
    ///
    /// # Errors
    ///
    /// The first failure of [`ensure`](Self::ensure); the flags before it
    /// are created.
    pub async fn declare(
        &self,
        flags: impl IntoIterator<Item = Flag>,
    ) -> Result<Vec<AuditEntry>, Error> {
        let mut created = Vec::new();
        for flag in flags {
            if let Some(entry) = self.ensure(flag).await? {
                created.push(entry);
            }
        }
        Ok(created)
    }

    /// Creates `flag`, declared in code with its defaults, when the store
    /// has no live flag of that key; never overwrites what is stored.
    /// Returns the entry when it created the flag.
    ///
    /// # Errors
    ///
    /// [`Invalid`](ErrorKind::Invalid) when the declaration is invalid;
    /// the store's.
    pub async fn ensure(&self, flag: Flag) -> Result<Option<AuditEntry>, Error> {
        let change = Change::create(flag, DECLARED_BY, "declared in code with its defaults")?;
        if self.inner.snapshot.load().get(change.key()).is_some() {
            return Ok(None);
        }
        match self.apply(change).await {
            Ok(entry) => Ok(Some(entry)),
            // Another instance declared it first, or it was created since
            // the last load: what is stored wins.
            Err(error) if error.kind() == ErrorKind::Conflict => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Reads `key` from the store, edits it and writes it back based on the
    /// version read; reads again if another writer got in between. With
    /// `expected`, only while the flag is at that version (or, for a change
    /// that [writes nothing](Repeat::WritesNothing) when repeated, at the
    /// same action right after it).
    #[allow(clippy::too_many_arguments)] // one private helper, seven plain inputs
    async fn modify(
        &self,
        key: &str,
        expected: Option<u64>,
        action: Action,
        repeat: Repeat,
        actor: &str,
        reason: &str,
        edit: impl Fn(Flag) -> Result<Option<Flag>, Error>,
    ) -> Result<AuditEntry, Error> {
        let mut attempt = 1;
        loop {
            let current = self
                .inner
                .store
                .get(key)
                .await?
                .ok_or_else(|| Error::not_found(key))?;
            if let Some(expected) = expected
                && current.version != expected
            {
                // The same change right after the version read (this one
                // sent again, or another's alike) is the answer; anything
                // else changed the flag since.
                if repeat == Repeat::WritesNothing
                    && expected.checked_add(1) == Some(current.version)
                    && let Some(entry) = self.inner.store.history(key).await?.pop()
                    && entry.version == current.version
                    && entry.action == action
                {
                    self.install(key, Some(current), entry.version).await;
                    return Ok(entry);
                }
                return Err(Error::conflict(key, expected, Some(current.version)));
            }
            let already = current.flag.validate().err().unwrap_or_default();
            let after = edit(current.flag.clone())?;
            let unchanged = after.as_ref() == Some(&current.flag);
            // Who and why are required also when nothing is written.
            let change = Change::checked(
                action.clone(),
                key,
                Expected::Version(current.version),
                after,
                actor,
                reason,
                &already,
            )?;
            // Decided on the version the write would be based on, so that
            // two racing alike leave one change: the later one's write
            // conflicts, and its next turn finds the first.
            if repeat == Repeat::WritesNothing
                && unchanged
                && let Some(entry) = self.inner.store.history(key).await?.pop()
                && entry.version == current.version
                && entry.action == action
            {
                // This handle may be behind the store: it serves the
                // change it answers with.
                self.install(key, Some(current), entry.version).await;
                return Ok(entry);
            }
            match self.apply(change).await {
                Err(error) if error.kind() == ErrorKind::Conflict && attempt < ATTEMPTS => {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

/// What [`Flags::modify`] does with a change that would repeat the one
/// that made the flag's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Writes it as a version of its own.
    Writes,
    /// Writes nothing and answers with that change (a second kill: its
    /// rollback would restore the first kill). Only when the current
    /// version came from the same action: a flag an edit disabled is
    /// killed by a change of its own, so that its rollback keeps the edit.
    WritesNothing,
}

/// Swaps in a snapshot with `key` at `version`; the caller holds the
/// writing lock.
fn swap_in(inner: &Inner, key: &str, stored: Option<StoredFlag>, version: u64) {
    let next = inner
        .snapshot
        .load()
        .with(key, stored, version, &inner.counters);
    inner.snapshot.store(Arc::new(next));
    inner.swaps.fetch_add(1, Ordering::Release);
}

/// Loads every flag and swaps in the result, unless a swap happened while
/// the load ran: that load may predate it (a kill), and swapping it in
/// would undo it, so it loads again. The load itself runs without the
/// writing lock, so writes never wait behind it; after a few lost races
/// (writes keep coming) it loads under the lock, as writes wait.
async fn refresh(inner: &Inner) -> Result<(), Error> {
    const UNLOCKED_ATTEMPTS: usize = 3;
    let install = |stored| {
        let next = inner.snapshot.load().rebuild(stored, &inner.counters);
        inner.snapshot.store(Arc::new(next));
        inner.swaps.fetch_add(1, Ordering::Release);
    };
    // A load cancelled at its limit changed nothing: `install` runs
    // whole or not at all.
    let load = || async {
        tokio::time::timeout(LOAD_WITHIN, inner.store.load())
            .await
            .map_err(|_| {
                Error::backend(format!(
                    "the flag store did not answer a load within {}s",
                    LOAD_WITHIN.as_secs()
                ))
            })?
    };
    for _ in 0..UNLOCKED_ATTEMPTS {
        let before = inner.swaps.load(Ordering::Acquire);
        let stored = load().await?;
        let _writing = inner.writing.lock().await;
        if inner.swaps.load(Ordering::Acquire) == before {
            install(stored);
            return Ok(());
        }
    }
    let _writing = inner.writing.lock().await;
    let stored = load().await?;
    install(stored);
    Ok(())
}

fn read_bool(value: &VariantValue) -> Option<bool> {
    match value {
        VariantValue::Bool(b) => Some(*b),
        _ => None,
    }
}

fn read_string(value: &VariantValue) -> Option<Arc<str>> {
    match value {
        VariantValue::String(s) => Some(Arc::clone(s)),
        _ => None,
    }
}

fn read_number(value: &VariantValue) -> Option<f64> {
    match value {
        VariantValue::Number(n) => Some(*n),
        _ => None,
    }
}

fn read_json(value: &VariantValue) -> Option<Value> {
    match value {
        VariantValue::Json(v) => Some(v.clone()),
        _ => None,
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flags")
            .field("flags", &self.inner.snapshot.load().len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::eval::ErrorCode;
    use crate::flag::Rollout;
    use crate::rule::{Condition, Rule};
    use crate::store::MemoryStore;

    async fn flags() -> Flags {
        Flags::new(MemoryStore::new()).await.unwrap()
    }

    fn ctx() -> EvaluationContext {
        EvaluationContext::new().targeting_key("user-1")
    }

    #[tokio::test]
    async fn an_unknown_flag_serves_the_callers_default_with_flag_not_found() {
        let flags = flags().await;
        let details = flags.bool_details("nope", &ctx(), true);
        assert!(details.value);
        assert_eq!(details.reason, Reason::Error);
        assert_eq!(details.error, Some(ErrorCode::FlagNotFound));
        assert_eq!(details.variant, None);
    }

    #[tokio::test]
    async fn every_type_is_served_by_its_getter() {
        let flags = flags().await;
        let string = Flag::new("s", FlagType::String)
            .variant("a", "alpha")
            .default_variant("a");
        let number = Flag::new("n", FlagType::Number)
            .variant("ten", 10)
            .default_variant("ten");
        let object = Flag::new("j", FlagType::Json)
            .variant("cfg", json!({ "limit": 3 }))
            .default_variant("cfg");
        for flag in [string, number, object] {
            flags.create(flag, "alice", "test").await.unwrap();
        }
        assert_eq!(&*flags.string_value("s", &ctx(), "zzz"), "alpha");
        assert_eq!(flags.number_value("n", &ctx(), 0.0), 10.0);
        assert_eq!(
            flags.json_value("j", &ctx(), json!(null)),
            json!({ "limit": 3 })
        );
        let details = flags.string_details("s", &ctx(), "zzz");
        assert_eq!(details.variant.as_deref(), Some("a"));
        assert_eq!(details.reason, Reason::Static);
    }

    #[tokio::test]
    async fn asking_for_the_wrong_type_serves_the_default_with_type_mismatch() {
        let flags = flags().await;
        flags
            .create(Flag::boolean("b"), "alice", "test")
            .await
            .unwrap();
        let details = flags.string_details("b", &ctx(), "fallback");
        assert_eq!(&*details.value, "fallback");
        assert_eq!(details.error, Some(ErrorCode::TypeMismatch));
        assert_eq!(flags.number_value("b", &ctx(), 7.0), 7.0);
    }

    #[tokio::test]
    async fn a_change_is_visible_to_the_next_evaluation() {
        let flags = flags().await;
        flags
            .create(Flag::boolean("a").rule(Rule::new("on")), "alice", "launch")
            .await
            .unwrap();
        assert!(flags.bool_value("a", &ctx(), false));
        flags.kill("a", "bob", "incident 42").await.unwrap();
        let details = flags.bool_details("a", &ctx(), true);
        assert!(!details.value);
        assert_eq!(details.reason, Reason::Disabled);
    }

    /// `a` as a newer release wrote it: a kind and an operator this
    /// version does not know, a rule that serves `on` and a rollout.
    async fn flags_with_a_newer_releases_flag() -> Flags {
        let flags = flags().await;
        flags
            .create(Flag::boolean("a"), "alice", "launch")
            .await
            .unwrap();
        let newer: Flag = serde_json::from_value(json!({
            "key": "a", "type": "bool", "variants": { "off": false, "on": true },
            "default_variant": "off", "kind": "migration",
            "rules": [{ "conditions": [{ "attribute": "ip", "op": "in_cidr", "value": "10.0.0.0/8" }], "variant": "on" }],
            "rollout": { "variant": "on", "percentage": 5.0 }
        }))
        .unwrap();
        flags
            .apply(Change::rollback("a", 1, 1, Some(newer), "deploy", "written by 2.0").unwrap())
            .await
            .unwrap();
        flags
    }

    #[tokio::test]
    async fn a_flag_a_newer_release_wrote_can_still_be_killed_and_ramped() {
        let flags = flags_with_a_newer_releases_flag().await;
        // Its rules cannot be read here: served as the caller's default.
        assert_eq!(
            flags.bool_details("a", &ctx(), true).error,
            Some(ErrorCode::ParseError)
        );

        let ramped = flags.ramp("a", 50.0, "oncall", "more").await.unwrap();
        assert_eq!(ramped.after.unwrap().rollout.unwrap().percentage, 50.0);
        flags.kill("a", "oncall", "incident 42").await.unwrap();

        // Killed, it serves its default variant, rules unread or not.
        let details = flags.bool_details("a", &ctx(), true);
        assert!(!details.value);
        assert_eq!(details.reason, Reason::Disabled);
        assert_eq!(details.error, None);
    }

    #[tokio::test]
    async fn ramping_changes_only_the_percentage() {
        let flags = flags().await;
        let flag = Flag::boolean("a")
            .rollout(Rollout::new("on", 5.0))
            .owner("team");
        flags.create(flag, "alice", "launch").await.unwrap();
        let entry = flags.ramp("a", 50.0, "alice", "looks good").await.unwrap();
        assert_eq!(entry.version, 2);
        assert_eq!(entry.action, Action::Ramp);
        let after = entry.after.unwrap();
        assert_eq!(after.rollout.unwrap().percentage, 50.0);
        assert_eq!(after.owner.as_deref(), Some("team"));
    }

    #[tokio::test]
    async fn ramping_out_of_range_or_without_a_rollout_is_invalid() {
        let flags = flags().await;
        flags
            .create(Flag::boolean("a"), "alice", "launch")
            .await
            .unwrap();
        let error = flags
            .ramp("a", 120.0, "alice", "too far")
            .await
            .unwrap_err();
        assert_eq!(error.violations()[0].pointer, "/rollout/percentage");
        let error = flags
            .ramp("a", 20.0, "alice", "no rollout")
            .await
            .unwrap_err();
        assert_eq!(error.violations()[0].pointer, "/rollout");
    }

    #[tokio::test]
    async fn a_stale_replace_is_refused_with_the_current_version() {
        let flags = flags().await;
        flags
            .create(Flag::boolean("a"), "alice", "launch")
            .await
            .unwrap();
        flags
            .replace("a", Flag::boolean("a").owner("x"), 1, "alice", "own it")
            .await
            .unwrap();
        let error = flags
            .replace("a", Flag::boolean("a").owner("y"), 1, "bob", "own it too")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Conflict);
        assert_eq!(error.current_version(), Some(2));
        assert_eq!(flags.get("a").unwrap().flag.owner.as_deref(), Some("x"));
    }

    #[tokio::test]
    async fn deleting_then_rolling_back_revives_the_flag() {
        let flags = flags().await;
        flags
            .create(Flag::boolean("a"), "alice", "launch")
            .await
            .unwrap();
        flags.delete("a", "bob", "cleanup").await.unwrap();
        assert!(flags.get("a").is_none());
        assert_eq!(
            flags.bool_details("a", &ctx(), true).error,
            Some(ErrorCode::FlagNotFound)
        );
        let entry = flags
            .rollback("a", None, "alice", "still used")
            .await
            .unwrap();
        assert_eq!((entry.version, entry.restores), (3, Some(1)));
        assert_eq!(flags.get("a").unwrap().version, 3);
    }

    #[tokio::test]
    async fn rolling_back_to_a_version_the_flag_lacks_is_invalid() {
        let flags = flags().await;
        flags
            .create(Flag::boolean("a"), "alice", "launch")
            .await
            .unwrap();
        let error = flags
            .rollback("a", None, "alice", "undo")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid);
        assert_eq!(
            error.to_string(),
            "the change of flag `a` is invalid: /to_version: version 1 is the flag's first: there is nothing earlier to roll back to"
        );
        let error = flags
            .rollback("a", Some(9), "alice", "undo")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid);
        assert_eq!(
            error.to_string(),
            "the change of flag `a` is invalid: /to_version: the flag has no version 9; its versions are 1 to 1"
        );
    }

    #[tokio::test]
    async fn an_invalid_declaration_is_refused_naming_its_flag() {
        let flags = Flags::new(MemoryStore::new()).await.unwrap();

        let error = flags
            .declare([
                Flag::boolean("fine"),
                Flag::boolean("broken").default_variant("maybe"),
            ])
            .await
            .unwrap_err();

        assert_eq!(error.kind(), ErrorKind::Invalid);
        assert_eq!(error.key(), Some("broken"));
        assert!(
            error
                .to_string()
                .starts_with("the change of flag `broken` is invalid: "),
            "{error}"
        );
    }

    #[tokio::test]
    async fn declaring_creates_what_is_absent_and_keeps_what_is_stored() {
        let flags = flags().await;
        flags
            .create(
                Flag::boolean("stored").enabled(false),
                "alice",
                "killed earlier",
            )
            .await
            .unwrap();
        let created = flags
            .declare([Flag::boolean("stored"), Flag::boolean("fresh")])
            .await
            .unwrap();
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].key, "fresh");
        assert_eq!(created[0].actor, DECLARED_BY);
        assert!(!flags.get("stored").unwrap().flag.enabled);
        assert!(
            flags
                .declare([Flag::boolean("fresh")])
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn ensure_defers_to_a_flag_another_instance_created_first() {
        let store = MemoryStore::new();
        let here = Flags::new(store.clone()).await.unwrap();
        let there = Flags::new(store).await.unwrap();
        there
            .create(Flag::boolean("a").owner("there"), "alice", "first")
            .await
            .unwrap();
        // `here` has not loaded it yet; the store's conflict settles it.
        assert_eq!(here.ensure(Flag::boolean("a")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn refresh_picks_up_changes_of_other_writers() {
        let store = MemoryStore::new();
        let here = Flags::new(store.clone()).await.unwrap();
        let there = Flags::new(store).await.unwrap();
        there
            .create(Flag::boolean("a"), "alice", "launch")
            .await
            .unwrap();
        assert!(here.get("a").is_none());
        here.refresh().await.unwrap();
        assert_eq!(here.get("a").unwrap().version, 1);
    }

    #[tokio::test]
    async fn following_applies_changes_of_other_writers_and_stops_with_the_handle() {
        let store = MemoryStore::new();
        let here = Flags::new(store.clone()).await.unwrap();
        let there = Flags::new(store).await.unwrap();
        let follower = tokio::spawn(here.follow());
        there
            .create(Flag::boolean("a").rule(Rule::new("on")), "alice", "launch")
            .await
            .unwrap();
        let mut seen = false;
        for _ in 0..200 {
            if here.bool_value("a", &ctx(), false) {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(seen, "the follower never applied the change");
        drop(here);
        tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("the follower did not stop")
            .unwrap();
    }

    #[tokio::test]
    async fn list_is_sorted_by_key() {
        let flags = flags().await;
        for key in ["c", "a", "b"] {
            flags
                .create(Flag::boolean(key), "alice", "test")
                .await
                .unwrap();
        }
        let keys: Vec<String> = flags.list().into_iter().map(|s| s.flag.key).collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn counts_follow_a_flag_across_changes() {
        let flags = flags().await;
        flags
            .create(
                Flag::boolean("a").rule(Rule::new("on").when(Condition::equals("x", 1))),
                "alice",
                "t",
            )
            .await
            .unwrap();
        let hit = EvaluationContext::new().attribute("x", 1);
        let _ = flags.bool_value("a", &hit, false);
        flags.kill("a", "bob", "stop").await.unwrap();
        let _ = flags.bool_value("a", &hit, false);
        let _ = flags.bool_value("a", &hit, false);
        let counts: Vec<(String, Reason, u64)> = flags
            .evaluation_counts()
            .into_iter()
            .map(|c| (c.variant.unwrap().to_string(), c.reason, c.count))
            .collect();
        assert_eq!(
            counts,
            [
                ("off".to_owned(), Reason::Disabled, 2),
                ("on".to_owned(), Reason::TargetingMatch, 1)
            ]
        );
    }
}
