//! Changes: concurrent writers, the audit log, rollback, and fields a
//! newer release wrote.

use std::sync::Arc;

use opsready_flags::{
    Action, Condition, ErrorKind, EvaluationContext, Flag, Flags, MemoryStore, Reason, Rollout,
    Rule, Store,
};
use serde_json::json;
use tokio::sync::Barrier;

fn pro() -> EvaluationContext {
    EvaluationContext::new()
        .targeting_key("user-1")
        .attribute("plan", "pro")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_writers_with_the_same_base_version_exactly_one_wins() {
    for round in 0..50 {
        // Arrange: two instances of a service over one store.
        let store = MemoryStore::new();
        let first = Flags::new(store.clone()).await.unwrap();
        let second = Flags::new(store.clone()).await.unwrap();
        first
            .create(Flag::boolean("race"), "setup", "arrange")
            .await
            .unwrap();
        second.refresh().await.unwrap();
        let base = second.get("race").unwrap().version;
        let barrier = Arc::new(Barrier::new(2));

        // Act: both replace the flag based on the version they read.
        let write = |flags: Flags, owner: &'static str| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                let flag = Flag::boolean("race").owner(owner);
                flags.replace("race", flag, base, owner, "claim it").await
            })
        };
        let a = write(first.clone(), "a");
        let b = write(second.clone(), "b");
        let results = [a.await.unwrap(), b.await.unwrap()];

        // Assert
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let losers: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert_eq!(losers.len(), 1, "round {round}: {results:?}");
        assert_eq!(losers[0].kind(), ErrorKind::Conflict);
        assert_eq!(losers[0].current_version(), Some(base + 1));
        assert!(losers[0].to_string().contains("version 2"), "{}", losers[0]);
        let history = store.history("race").await.unwrap();
        assert_eq!(history.len(), 2, "the loser's change was not recorded");
        assert_eq!(
            history[1].after.as_ref().unwrap().owner,
            winners[0].after.as_ref().unwrap().owner
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_sharing_one_handle_cannot_both_win_either() {
    let flags = Flags::new(MemoryStore::new()).await.unwrap();
    flags
        .create(Flag::boolean("race"), "setup", "arrange")
        .await
        .unwrap();
    let tasks: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|owner| {
            let flags = flags.clone();
            tokio::spawn(async move {
                flags
                    .replace(
                        "race",
                        Flag::boolean("race").owner(owner),
                        1,
                        owner,
                        "claim it",
                    )
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap().map_err(|e| e.kind()));
    }
    assert_eq!(outcomes.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(outcomes.contains(&Err(ErrorKind::Conflict)));
}

#[tokio::test]
async fn rollback_restores_the_earlier_definition_and_appears_in_history() {
    // Arrange: v1 targets pro users; v2 drops the rule.
    let flags = Flags::new(MemoryStore::new()).await.unwrap();
    let v1 = Flag::boolean("greeting.shout")
        .rule(Rule::new("on").when(Condition::equals("plan", "pro")));
    flags
        .create(v1.clone(), "alice", "launch to pro")
        .await
        .unwrap();
    let v2 = Flag::boolean("greeting.shout");
    flags
        .replace("greeting.shout", v2.clone(), 1, "bob", "pause it")
        .await
        .unwrap();
    assert!(!flags.bool_value("greeting.shout", &pro(), true));

    // Act
    let entry = flags
        .rollback("greeting.shout", None, "alice", "pausing was a mistake")
        .await
        .unwrap();

    // Assert: a new version with v1's definition, recorded like any change.
    assert_eq!(entry.version, 3);
    assert_eq!(entry.action, Action::Rollback);
    assert_eq!(entry.restores, Some(1));
    assert_eq!(entry.before.as_ref(), Some(&v2));
    assert_eq!(entry.after.as_ref(), Some(&v1));
    assert_eq!(flags.get("greeting.shout").unwrap().flag, v1);
    let details = flags.bool_details("greeting.shout", &pro(), false);
    assert!(details.value);
    assert_eq!(details.reason, Reason::TargetingMatch);

    let history = flags.history("greeting.shout").await.unwrap();
    let summary: Vec<(u64, &str, &str, &str)> = history
        .iter()
        .map(|e| {
            (
                e.version,
                e.action.as_str(),
                e.actor.as_str(),
                e.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "create", "alice", "launch to pro"),
            (2, "update", "bob", "pause it"),
            (3, "rollback", "alice", "pausing was a mistake"),
        ]
    );
    for entry in &history {
        let at = entry.at_rfc3339();
        assert!(at.ends_with('Z') && at.len() == 24, "{at}");
    }
}

#[tokio::test]
async fn rolling_back_twice_undoes_the_rollback() {
    let flags = Flags::new(MemoryStore::new()).await.unwrap();
    flags
        .create(Flag::boolean("a"), "alice", "v1")
        .await
        .unwrap();
    let v2 = Flag::boolean("a").rule(Rule::new("on"));
    flags
        .replace("a", v2.clone(), 1, "alice", "v2")
        .await
        .unwrap();
    flags
        .rollback("a", None, "alice", "back to v1")
        .await
        .unwrap();
    let entry = flags
        .rollback("a", None, "alice", "v2 after all")
        .await
        .unwrap();
    assert_eq!((entry.version, entry.restores), (4, Some(2)));
    assert_eq!(flags.get("a").unwrap().flag, v2);
}

#[tokio::test]
async fn rolling_back_to_a_chosen_version_restores_that_one() {
    let flags = Flags::new(MemoryStore::new()).await.unwrap();
    let v1 = Flag::boolean("a").rollout(Rollout::new("on", 1.0));
    flags.create(v1.clone(), "alice", "1%").await.unwrap();
    flags.ramp("a", 10.0, "alice", "10%").await.unwrap();
    flags.ramp("a", 50.0, "alice", "50%").await.unwrap();
    let entry = flags
        .rollback("a", Some(1), "alice", "errors up")
        .await
        .unwrap();
    assert_eq!(entry.version, 4);
    assert_eq!(flags.get("a").unwrap().flag, v1);
}

#[tokio::test]
async fn fields_written_by_a_newer_release_survive_changes_made_by_this_one() {
    // Arrange: a definition with fields this version does not know.
    let stored: Flag = serde_json::from_value(json!({
        "key": "checkout.new-flow",
        "type": "bool",
        "variants": { "on": true, "off": false },
        "default_variant": "off",
        "rollout": { "variant": "on", "percentage": 5, "guard": { "metric": "http_5xx", "max": 0.01 } },
        "stages": [5, 25, 100]
    }))
    .unwrap();
    let flags = Flags::new(MemoryStore::new()).await.unwrap();
    flags
        .create(stored, "newer-release", "staged rollout")
        .await
        .unwrap();

    // Act: this release ramps and kills it.
    flags
        .ramp("checkout.new-flow", 25.0, "alice", "next stage")
        .await
        .unwrap();
    flags
        .kill("checkout.new-flow", "alice", "incident")
        .await
        .unwrap();

    // Assert: the unknown fields are still there, as written.
    let written = serde_json::to_value(&flags.get("checkout.new-flow").unwrap().flag).unwrap();
    assert_eq!(written["stages"], json!([5, 25, 100]));
    assert_eq!(
        written["rollout"]["guard"],
        json!({ "metric": "http_5xx", "max": 0.01 })
    );
    assert_eq!(written["rollout"]["percentage"], json!(25.0));
    assert_eq!(written["enabled"], json!(false));
}

#[tokio::test]
async fn a_change_without_a_reason_is_refused_and_not_recorded() {
    let store = MemoryStore::new();
    let flags = Flags::new(store.clone()).await.unwrap();
    let error = flags
        .create(Flag::boolean("a"), "alice", "  ")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid);
    assert_eq!(error.violations()[0].pointer, "/reason");
    assert!(store.audit_log().is_empty());
}

#[tokio::test]
async fn an_update_of_a_missing_flag_is_not_found() {
    let flags = Flags::new(MemoryStore::new()).await.unwrap();
    let error = flags
        .replace("ghost", Flag::boolean("ghost"), 1, "alice", "edit")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    let error = flags.kill("ghost", "alice", "stop").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
}

/// A store whose next load, once armed, reads the flags and then waits to
/// be released before returning them: a slow load that has read the store
/// before the writes that follow. Its next write, once armed, waits the
/// same way before it is applied.
#[derive(Clone)]
struct GatedStore {
    inner: MemoryStore,
    armed: Arc<std::sync::atomic::AtomicBool>,
    armed_apply: Arc<std::sync::atomic::AtomicBool>,
    loading: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl GatedStore {
    fn new(inner: MemoryStore) -> Self {
        Self {
            inner,
            armed: Arc::default(),
            armed_apply: Arc::default(),
            loading: Arc::default(),
            release: Arc::default(),
        }
    }
}

impl Store for GatedStore {
    fn load(
        &self,
    ) -> opsready_flags::BoxFuture<'_, Result<Vec<opsready_flags::StoredFlag>, opsready_flags::Error>>
    {
        Box::pin(async move {
            let flags = self.inner.load().await?;
            if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
                self.loading.notify_one();
                self.release.notified().await;
            }
            Ok(flags)
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> opsready_flags::BoxFuture<
        'a,
        Result<Option<opsready_flags::StoredFlag>, opsready_flags::Error>,
    > {
        self.inner.get(key)
    }

    fn apply(
        &self,
        change: opsready_flags::Change,
    ) -> opsready_flags::BoxFuture<'_, Result<opsready_flags::AuditEntry, opsready_flags::Error>>
    {
        Box::pin(async move {
            if self
                .armed_apply
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                self.loading.notify_one();
                self.release.notified().await;
            }
            self.inner.apply(change).await
        })
    }

    fn history<'a>(
        &'a self,
        key: &'a str,
    ) -> opsready_flags::BoxFuture<'a, Result<Vec<opsready_flags::AuditEntry>, opsready_flags::Error>>
    {
        self.inner.history(key)
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.subscribe()
    }
}

#[tokio::test(start_paused = true)]
async fn a_load_the_store_never_answers_is_given_up_and_made_again() {
    // Arrange: an instance following a store whose next load hangs.
    let memory = MemoryStore::new();
    let other = Flags::new(memory.clone()).await.unwrap();
    let gated = GatedStore::new(memory);
    let flags = Flags::new(gated.clone()).await.unwrap();
    tokio::spawn(flags.follow());
    gated.armed.store(true, std::sync::atomic::Ordering::SeqCst);

    // Act: another instance's change; the load it causes here never ends
    // (time is paused: the runtime skips ahead when it is idle).
    other
        .create(Flag::boolean("checkout").enabled(true), "ann", "launch")
        .await
        .unwrap();
    gated.loading.notified().await;

    // Assert: the change arrives all the same, by a later load.
    let mut waited = std::time::Duration::ZERO;
    while flags.get("checkout").is_none() {
        assert!(
            waited < opsready_flags::LOAD_WITHIN * 3,
            "the follower waits on the hung load"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += std::time::Duration::from_millis(100);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_does_not_wait_behind_a_slow_load_nor_is_undone_by_it() {
    // Arrange: a live flag, and a refresh whose load read it live and is
    // still running.
    let store = GatedStore::new(MemoryStore::new());
    let flags = Flags::new(store.clone()).await.unwrap();
    flags
        .create(Flag::boolean("checkout").enabled(true), "setup", "arrange")
        .await
        .unwrap();
    store.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let refreshing = {
        let flags = flags.clone();
        tokio::spawn(async move { flags.refresh().await })
    };
    store.loading.notified().await;

    // Act: the kill, while that load is under way.
    let killed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        flags.kill("checkout", "oncall", "errors"),
    )
    .await
    .expect("the kill waited behind the load")
    .unwrap();
    store.release.notify_one();
    refreshing.await.unwrap().unwrap();

    // Assert: the load that read the flag live did not swap it back in.
    assert_eq!(flags.get("checkout").unwrap().version, killed.version);
    assert!(!flags.get("checkout").unwrap().flag.enabled);
}

#[tokio::test]
async fn a_second_kill_writes_nothing_so_one_rollback_brings_the_flag_back() {
    let store = MemoryStore::new();
    let first = Flags::new(store.clone()).await.unwrap();
    let second = Flags::new(store.clone()).await.unwrap();
    first
        .create(Flag::boolean("checkout").enabled(true), "setup", "arrange")
        .await
        .unwrap();

    // Two responders kill it.
    let one = first.kill("checkout", "ann", "errors").await.unwrap();
    let two = second.kill("checkout", "bob", "errors too").await.unwrap();

    assert_eq!(two.version, one.version);
    assert_eq!(store.history("checkout").await.unwrap().len(), 2);
    // The second handle, which had not seen the flag yet, serves the kill.
    assert!(!second.get("checkout").unwrap().flag.enabled);
    // Who and why are required all the same.
    let refused = second.kill("checkout", "", "").await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Invalid);
    // The one rollback from the kill's version brings it back on.
    second
        .rollback_from("checkout", one.version, None, "ann", "fixed")
        .await
        .unwrap();
    assert!(second.get("checkout").unwrap().flag.enabled);
}

#[tokio::test]
async fn a_flag_an_edit_disabled_is_killed_by_a_change_of_its_own() {
    let flags = Flags::new(MemoryStore::new()).await.unwrap();
    let created = flags
        .create(Flag::boolean("checkout").enabled(true), "setup", "arrange")
        .await
        .unwrap();
    let edited = flags
        .replace(
            "checkout",
            Flag::boolean("checkout")
                .enabled(false)
                .owner("team-checkout"),
            created.version,
            "carol",
            "off while we rework it",
        )
        .await
        .unwrap();

    let killed = flags.kill("checkout", "bob", "errors").await.unwrap();

    // Its own version, so that rolling the kill back keeps carol's edit.
    assert_eq!(killed.version, edited.version + 1);
    assert_eq!(killed.action, Action::Kill);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_kills_at_once_leave_one() {
    // Arrange: bob's kill has read the flag live and waits to write.
    let memory = MemoryStore::new();
    let ann = Flags::new(memory.clone()).await.unwrap();
    let gated = GatedStore::new(memory.clone());
    let bob = Flags::new(gated.clone()).await.unwrap();
    ann.create(Flag::boolean("checkout").enabled(true), "setup", "arrange")
        .await
        .unwrap();
    gated
        .armed_apply
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let bobs = {
        let bob = bob.clone();
        tokio::spawn(async move { bob.kill("checkout", "bob", "errors").await })
    };
    gated.loading.notified().await;

    // Act: ann's kill lands first; then bob's write goes on.
    let anns = ann.kill("checkout", "ann", "errors").await.unwrap();
    gated.release.notify_one();
    let bobs = bobs.await.unwrap().unwrap();

    // Assert: one kill, which both answered with.
    assert_eq!(bobs.version, anns.version);
    assert_eq!(memory.history("checkout").await.unwrap().len(), 2);
}
