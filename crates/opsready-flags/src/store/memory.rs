//! A store in memory: for tests, examples and single-instance services
//! whose flags are declared in code.

use std::collections::HashMap;
use std::fmt;
use std::future::ready;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tokio::sync::watch;

use super::{AuditEntry, BoxFuture, Change, Store, StoredFlag};
use crate::error::Error;
use crate::flag::Flag;

/// A [`Store`] in memory, with versions, the audit log and change
/// notifications of any durable store.
///
/// Clones share the same flags: hand one clone to each of several
/// [`Flags`](crate::Flags) handles to play several instances of a service.
/// Everything is lost when the last clone is dropped.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use opsready_flags::{Change, Flag, MemoryStore, Store};
///
/// let store = MemoryStore::new();
/// let mut changes = store.subscribe();
/// store.apply(Change::create(Flag::boolean("a"), "alice", "launch").unwrap()).await.unwrap();
/// assert!(changes.has_changed().unwrap());
/// assert_eq!(store.audit_log().len(), 1);
/// # });
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    revision: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, KeyState>,
    /// Every entry, in the order applied.
    log: Vec<AuditEntry>,
}

struct KeyState {
    latest: u64,
    live: Option<Flag>,
    /// Positions of this key's entries in the log, oldest first.
    entries: Vec<usize>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                revision: watch::Sender::new(0),
            }),
        }
    }

    /// Every recorded change of every flag, in the order applied.
    #[must_use]
    pub fn audit_log(&self) -> Vec<AuditEntry> {
        self.state().log.clone()
    }

    // The lock is never held across an await, and a panic while holding it
    // cannot leave a half-applied change (each change is applied by plain
    // assignments after every check), so a poisoned lock is still usable.
    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn apply_now(&self, change: Change) -> Result<AuditEntry, Error> {
        let mut state = self.state();
        let (latest, before) = match state.keys.get(change.key()) {
            Some(key) => (Some(key.latest), key.live.clone()),
            None => (None, None),
        };
        let version = change.check(latest, before.is_some())?;
        let entry = change.record(version, before, SystemTime::now());
        let position = state.log.len();
        state.log.push(entry.clone());
        let key = state
            .keys
            .entry(entry.key.clone())
            .or_insert_with(|| KeyState {
                latest: 0,
                live: None,
                entries: Vec::new(),
            });
        key.latest = version;
        key.live.clone_from(&entry.after);
        key.entries.push(position);
        drop(state);
        // After the lock is released, so that woken readers find the change.
        self.shared
            .revision
            .send_modify(|revision| *revision = revision.wrapping_add(1));
        Ok(entry)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("MemoryStore")
            .field(
                "flags",
                &state.keys.values().filter(|key| key.live.is_some()).count(),
            )
            .field("changes", &state.log.len())
            .finish()
    }
}

impl Store for MemoryStore {
    fn load(&self) -> BoxFuture<'_, Result<Vec<StoredFlag>, Error>> {
        let state = self.state();
        let flags = state
            .keys
            .values()
            .filter_map(|key| Some(StoredFlag::new(key.live.clone()?, key.latest)))
            .collect();
        Box::pin(ready(Ok(flags)))
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<StoredFlag>, Error>> {
        let state = self.state();
        let flag = state
            .keys
            .get(key)
            .and_then(|key| Some(StoredFlag::new(key.live.clone()?, key.latest)));
        Box::pin(ready(Ok(flag)))
    }

    fn apply(&self, change: Change) -> BoxFuture<'_, Result<AuditEntry, Error>> {
        Box::pin(ready(self.apply_now(change)))
    }

    fn history<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<AuditEntry>, Error>> {
        let state = self.state();
        let entries = state.keys.get(key).map_or_else(Vec::new, |key| {
            key.entries
                .iter()
                .filter_map(|position| state.log.get(*position).cloned())
                .collect()
        });
        Box::pin(ready(Ok(entries)))
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.revision.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::store::Action;

    fn store() -> MemoryStore {
        MemoryStore::new()
    }

    async fn create(store: &MemoryStore, flag: Flag) -> AuditEntry {
        store
            .apply(Change::create(flag, "alice", "launch").unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_created_flag_is_loaded_at_version_one() {
        let store = store();
        create(&store, Flag::boolean("a")).await;
        let loaded = store.load().await.unwrap();
        assert_eq!(loaded, [StoredFlag::new(Flag::boolean("a"), 1)]);
        assert_eq!(store.get("a").await.unwrap().unwrap().version, 1);
        assert_eq!(store.get("b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn creating_an_existing_flag_is_a_conflict() {
        let store = store();
        create(&store, Flag::boolean("a")).await;
        let error = store
            .apply(Change::create(Flag::boolean("a"), "bob", "again").unwrap())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Conflict);
        assert_eq!(error.current_version(), Some(1));
    }

    #[tokio::test]
    async fn updating_a_missing_flag_is_not_found() {
        let error = store()
            .apply(Change::update(Flag::boolean("a"), 1, "bob", "tweak").unwrap())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn every_change_is_recorded_with_before_and_after() {
        let store = store();
        create(&store, Flag::boolean("a")).await;
        let updated = Flag::boolean("a").description("now described");
        store
            .apply(Change::update(updated.clone(), 1, "bob", "describe").unwrap())
            .await
            .unwrap();
        let history = store.history("a").await.unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].version, 2);
        assert_eq!(history[1].action, Action::Update);
        assert_eq!(history[1].actor, "bob");
        assert_eq!(history[1].reason, "describe");
        assert_eq!(history[1].before, Some(Flag::boolean("a")));
        assert_eq!(history[1].after, Some(updated));
        assert!(history[0].at <= history[1].at);
    }

    #[tokio::test]
    async fn versions_keep_counting_across_a_delete() {
        let store = store();
        create(&store, Flag::boolean("a")).await;
        let delete = Change::new(
            Action::Delete,
            "a",
            crate::Expected::Version(1),
            None,
            "x",
            "gone",
        )
        .unwrap();
        store.apply(delete).await.unwrap();
        assert!(store.load().await.unwrap().is_empty());
        let again = create(&store, Flag::boolean("a")).await;
        assert_eq!(again.version, 3);
        assert_eq!(again.before, None);
        assert_eq!(store.history("a").await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_refused_change_records_nothing_and_notifies_no_one() {
        let store = store();
        create(&store, Flag::boolean("a")).await;
        let changes = store.subscribe();
        let stale = Change::update(Flag::boolean("a"), 7, "x", "stale").unwrap();
        assert!(store.apply(stale).await.is_err());
        assert!(!changes.has_changed().unwrap());
        assert_eq!(store.audit_log().len(), 1);
    }

    #[tokio::test]
    async fn clones_share_the_same_flags() {
        let store = store();
        let other = store.clone();
        create(&store, Flag::boolean("a")).await;
        assert_eq!(other.load().await.unwrap().len(), 1);
    }
}
