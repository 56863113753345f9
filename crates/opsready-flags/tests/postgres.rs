//! Black-box tests of `PostgresStore` against a real Postgres: versions and
//! the audit log, racing writers, and changes reaching other instances.
//!
//! They need `OPSREADY_TEST_DATABASE_URL` (`postgres://USER@HOST:PORT/DB`, a
//! role that may create schemas and databases); without it each test says
//! it was skipped and passes. Each test works in a schema (or database) of
//! its own, dropped when it ends, passed or failed; ones left behind by a
//! killed run are dropped by the next run after an hour.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opsready_flags::{
    Action, Change, ErrorKind, EvaluationContext, Expected, Flag, Flags, PostgresStore, Rule,
    Store, StoredFlag,
};
use pg_scratch::{Scratch, URL_VAR, with_database};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// What the tests name their schemas and databases with, to find the ones
/// a killed run left.
const PREFIX: &str = "flags_test_";

/// How soon a change must be evaluated by another instance.
const PROPAGATION: Duration = Duration::from_secs(1);

// Helpers ---------------------------------------------------------------

/// What the flag store tests need of a scratch schema or database.
trait ScratchExt {
    /// A pool of the scratch database (or of the test database, for a
    /// scratch schema).
    async fn pool(&self) -> PgPool;
    /// A store in the scratch schema, with a pool of its own: another
    /// instance of a service.
    async fn store(&self) -> PostgresStore;
    /// The scratch schema's `table`, quoted.
    fn table(&self, table: &str) -> String;
}

impl ScratchExt for Scratch {
    async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.url)
            .await
            .unwrap()
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::from_pool_in_schema(self.pool().await, &self.name)
            .await
            .unwrap()
    }

    fn table(&self, table: &str) -> String {
        format!(r#""{}".{table}"#, self.name)
    }
}

/// `url` with `password` as its user's password.
fn with_password(url: &str, password: &str) -> String {
    let authority = url.find("://").unwrap() + 3;
    let rest = &url[authority..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (user, host) = match rest[..end].rsplit_once('@') {
        Some((userinfo, host)) => (userinfo.split(':').next().unwrap(), host),
        None => ("postgres", &rest[..end]),
    };
    format!(
        "{}{user}:{password}@{host}{}",
        &url[..authority],
        &rest[end..]
    )
}

/// The connections listening on the channel `$1` (`<schema>_changes`):
/// the store names them after their schema.
const LISTENERS_ON: &str = "FROM pg_stat_activity \
    WHERE application_name = 'opsready-flags listener ' || left($1, -length('_changes'))";

/// Kills the connections listening on `channel`, as a failover or a
/// firewall would; returns how many there were.
async fn terminate_listeners(pool: &PgPool, channel: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(pg_terminate_backend(pid)) {LISTENERS_ON}"
    ))
    .bind(channel)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn listening(pool: &PgPool, channel: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) {LISTENERS_ON}"))
        .bind(channel)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A TCP proxy to the test database that can silence the connections of
/// the stores' listeners, as a firewall that drops them without a reset
/// does: bytes stop flowing both ways, and nothing is closed.
struct SilencingProxy {
    addr: std::net::SocketAddr,
    /// The listener connections seen, in the order they came.
    listeners: Arc<Mutex<Vec<Arc<Tap>>>>,
    /// How long a new connection waits before it reaches the database, in
    /// milliseconds.
    delay: Arc<AtomicU64>,
    accepting: tokio::task::AbortHandle,
}

impl SilencingProxy {
    /// What a listener's startup message holds: its `application_name`.
    const LISTENER_MARK: &[u8] = b"opsready-flags listener";

    async fn start(url: &str) -> Self {
        let options: PgConnectOptions = url.parse().unwrap();
        let upstream = format!("{}:{}", options.get_host(), options.get_port());
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let listeners = Arc::new(Mutex::new(Vec::new()));
        let registry = Arc::clone(&listeners);
        let delay = Arc::new(AtomicU64::new(0));
        let delay_of_new = Arc::clone(&delay);
        let accepting = tokio::spawn(async move {
            // Dropped with this task, the set stops every connection's pumps.
            let mut pumps = tokio::task::JoinSet::new();
            loop {
                let (client, _) = socket.accept().await.unwrap();
                let delay = delay_of_new.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let server = TcpStream::connect(&upstream).await.unwrap();
                let tap = Arc::new(Tap::default());
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let mark = Some(Arc::clone(&registry));
                pumps.spawn(pump(client_read, server_write, Arc::clone(&tap), mark));
                pumps.spawn(pump(server_read, client_write, tap, None));
            }
        })
        .abort_handle();
        Self {
            addr,
            listeners,
            delay,
            accepting,
        }
    }

    /// `url`'s options, through this proxy.
    fn options(&self, url: &str) -> PgConnectOptions {
        let options: PgConnectOptions = url.parse().unwrap();
        options
            .host(&self.addr.ip().to_string())
            .port(self.addr.port())
    }

    /// `url`, through this proxy: its `host:port` replaced.
    fn url(&self, url: &str) -> String {
        let options: PgConnectOptions = url.parse().unwrap();
        let upstream = format!("{}:{}", options.get_host(), options.get_port());
        assert!(url.contains(&upstream), "write the port in {URL_VAR}");
        url.replacen(&upstream, &self.addr.to_string(), 1)
    }

    /// A store in `scratch`'s schema whose connections all go through this
    /// proxy, with the heartbeat given.
    async fn store(
        &self,
        scratch: &Scratch,
        quiet_for: Duration,
        answer_within: Duration,
    ) -> PostgresStore {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(self.options(&scratch.url))
            .await
            .unwrap();
        PostgresStore::builder(pool)
            .schema(&scratch.name)
            .heartbeat(quiet_for, answer_within)
            .build()
            .await
            .unwrap()
    }

    /// Silences the listener connections open now; returns how many.
    fn silence_listeners(&self) -> usize {
        let listeners = self.listeners.lock().unwrap();
        for tap in listeners.iter() {
            tap.silenced.store(true, Ordering::SeqCst);
        }
        listeners.len()
    }

    /// Makes each new connection wait `delay` before it reaches the
    /// database, as a slow network or a busy server would.
    fn delay_new_connections(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap();
        self.delay.store(millis, Ordering::SeqCst);
    }

    /// How many listener connections came through so far.
    fn listeners_seen(&self) -> usize {
        self.listeners.lock().unwrap().len()
    }

    /// How many reads the first listener connection has sent to the
    /// server, its startup included.
    fn first_listener_sent(&self) -> usize {
        self.listeners
            .lock()
            .unwrap()
            .first()
            .map_or(0, |tap| tap.sent.load(Ordering::SeqCst))
    }
}

impl Drop for SilencingProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// One proxied connection: its switch, and what its client sent.
#[derive(Default)]
struct Tap {
    silenced: AtomicBool,
    /// Reads from the client passed on to the server.
    sent: AtomicUsize,
}

/// Copies `from` to `to` until either ends, or forever nothing once the
/// tap is silenced. With `mark` (the client's side), counts the reads
/// passed on and registers the tap there if the bytes are a listener's.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    tap: Arc<Tap>,
    mut mark: Option<Arc<Mutex<Vec<Arc<Tap>>>>>,
) {
    let client_side = mark.is_some();
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            let _ = to.shutdown().await;
            return;
        }
        let bytes = &buffer[..read];
        if let Some(registry) = mark.take_if(|_| {
            bytes
                .windows(SilencingProxy::LISTENER_MARK.len())
                .any(|window| window == SilencingProxy::LISTENER_MARK)
        }) {
            registry.lock().unwrap().push(Arc::clone(&tap));
        }
        if tap.silenced.load(Ordering::SeqCst) {
            // Holds both sockets open and answers nothing, as a black hole.
            std::future::pending::<()>().await;
        }
        if to.write_all(bytes).await.is_err() {
            return;
        }
        if client_side {
            tap.sent.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Polls `condition` until it holds, failing with `what` after `within`.
async fn eventually(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn create(flag: Flag) -> Change {
    Change::create(flag, "alice", "launch").unwrap()
}

fn user() -> EvaluationContext {
    EvaluationContext::new().targeting_key("user-1")
}

// Tests -----------------------------------------------------------------

#[tokio::test]
async fn a_change_gives_up_on_a_row_held_by_another_transaction() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let store = scratch.store().await;
    store.apply(create(Flag::boolean("held"))).await.unwrap();
    // Another transaction (a stuck admin session) holds the flag's row.
    let mut holder = PgConnection::connect(&scratch.url).await.unwrap();
    holder.execute("BEGIN").await.unwrap();
    holder
        .execute(
            format!(
                "SELECT version FROM {} WHERE key = 'held' FOR UPDATE",
                scratch.table("definitions")
            )
            .as_str(),
        )
        .await
        .unwrap();

    let kill = |version| {
        Change::update(
            Flag::boolean("held").enabled(false),
            version,
            "oncall",
            "incident",
        )
        .unwrap()
    };

    let started = Instant::now();
    let outcome = tokio::time::timeout(
        opsready_flags::CHANGE_LOCK_WITHIN + Duration::from_secs(20),
        store.apply(kill(1)),
    )
    .await
    .expect("the change waited on the lock for ever");

    let error = outcome.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");
    assert!(error.to_string().contains("lock timeout"), "{error}");
    assert!(started.elapsed() >= opsready_flags::CHANGE_LOCK_WITHIN - Duration::from_millis(500));
    // Nothing was written, and once the row is free the change lands.
    holder.execute("ROLLBACK").await.unwrap();
    assert_eq!(store.get("held").await.unwrap().unwrap().version, 1);
    let killed = store.apply(kill(1)).await.unwrap();
    assert_eq!(killed.version, 2);
}

#[tokio::test]
async fn a_created_flag_is_loaded_and_every_change_is_audited() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let store = scratch.store().await;

    // Act
    let created = store
        .apply(create(Flag::boolean("a").owner("team")))
        .await
        .unwrap();
    let described = Flag::boolean("a").description("now described");
    store
        .apply(Change::update(described.clone(), 1, "bob", "describe it").unwrap())
        .await
        .unwrap();

    // Assert
    assert_eq!(created.version, 1);
    assert_eq!(
        store.load().await.unwrap(),
        [StoredFlag::new(described.clone(), 2)]
    );
    assert_eq!(store.get("a").await.unwrap().unwrap().version, 2);
    assert_eq!(store.get("b").await.unwrap(), None);
    let history = store.history("a").await.unwrap();
    assert_eq!(history.len(), 2);
    // Time included, to the microsecond.
    assert_eq!(history[0], created);
    assert_eq!(history[1].version, 2);
    assert_eq!(history[1].action, Action::Update);
    assert_eq!(
        (&*history[1].actor, &*history[1].reason),
        ("bob", "describe it")
    );
    assert_eq!(history[1].before, Some(Flag::boolean("a").owner("team")));
    assert_eq!(history[1].after, Some(described));
    assert!(history[0].at <= history[1].at);
    assert!(store.history("never-written").await.unwrap().is_empty());
}

#[tokio::test]
async fn versions_keep_counting_across_a_delete_and_a_rollback_revives_the_flag() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let flags = Flags::new(scratch.store().await).await.unwrap();
    flags
        .create(Flag::boolean("a").rule(Rule::new("on")), "alice", "launch")
        .await
        .unwrap();
    flags.kill("a", "bob", "incident 42").await.unwrap();
    flags.delete("a", "bob", "cleanup").await.unwrap();

    // Act
    let revived = flags
        .rollback("a", Some(1), "alice", "still used")
        .await
        .unwrap();

    // Assert
    assert_eq!((revived.version, revived.restores), (4, Some(1)));
    let history = flags.history("a").await.unwrap();
    let actions: Vec<&str> = history.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["create", "kill", "delete", "rollback"]);
    assert_eq!(history[2].after, None);
    // Another instance, starting now, reads the revived flag.
    let other = Flags::new(scratch.store().await).await.unwrap();
    assert_eq!(other.get("a").unwrap().version, 4);
    assert!(other.bool_value("a", &user(), false));
}

#[tokio::test]
async fn definitions_keep_fields_this_version_does_not_know() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let store = scratch.store().await;
    let mut flag = Flag::boolean("a");
    flag.extra.insert("ticket".to_owned(), json!("SHOP-123"));
    store.apply(create(flag)).await.unwrap();
    // A newer release adds a field of its own.
    sqlx::query(&format!(
        r#"UPDATE {} SET definition = definition || '{{"review": {{"by": "2030-01-31"}}}}'"#,
        scratch.table("definitions")
    ))
    .execute(store.pool())
    .await
    .unwrap();

    // Act: this release changes the flag.
    let stored = store.get("a").await.unwrap().unwrap();
    let killed = Change::new(
        Action::Kill,
        "a",
        Expected::Version(stored.version),
        Some(stored.flag.enabled(false)),
        "bob",
        "incident",
    )
    .unwrap();
    store.apply(killed).await.unwrap();

    // Assert: both fields survived, in the table and when read.
    let reloaded = store.get("a").await.unwrap().unwrap().flag;
    assert!(!reloaded.enabled);
    assert_eq!(reloaded.extra["ticket"], "SHOP-123");
    assert_eq!(reloaded.extra["review"], json!({ "by": "2030-01-31" }));
    let review: String = sqlx::query_scalar(&format!(
        "SELECT definition #>> '{{review,by}}' FROM {} WHERE key = 'a'",
        scratch.table("definitions")
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(review, "2030-01-31");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_instances_writing_on_the_same_version_exactly_one_wins() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let (first, second) = (scratch.store().await, scratch.store().await);
    first.apply(create(Flag::boolean("race"))).await.unwrap();

    for base in 1..=10 {
        // Act: both replace the flag based on the same version.
        let claim = |owner: &str| {
            Change::update(Flag::boolean("race").owner(owner), base, owner, "claim it").unwrap()
        };
        let (a, b) = tokio::join!(first.apply(claim("a")), second.apply(claim("b")));

        // Assert
        let (winner, loser) = match (a, b) {
            (Ok(winner), Err(loser)) | (Err(loser), Ok(winner)) => (winner, loser),
            (a, b) => panic!("version {base}: expected one winner, got {a:?} and {b:?}"),
        };
        assert_eq!(winner.version, base + 1);
        assert_eq!(loser.kind(), ErrorKind::Conflict, "{loser}");
        assert_eq!(loser.current_version(), Some(base + 1));
        let history = second.history("race").await.unwrap();
        assert_eq!(history.len() as u64, base + 1, "the loser was recorded");
        assert_eq!(history.last().unwrap().after, winner.after);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_instances_creating_the_same_flag_exactly_one_wins() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let (first, second) = (scratch.store().await, scratch.store().await);

    for round in 0..10 {
        // Act
        let key = format!("new-{round}");
        let (a, b) = tokio::join!(
            first.apply(create(Flag::boolean(&key).owner("a"))),
            second.apply(create(Flag::boolean(&key).owner("b")))
        );

        // Assert
        let loser = match (a, b) {
            (Ok(_), Err(loser)) | (Err(loser), Ok(_)) => loser,
            (a, b) => panic!("{key}: expected one winner, got {a:?} and {b:?}"),
        };
        assert_eq!(loser.kind(), ErrorKind::Conflict, "{loser}");
        assert_eq!(loser.current_version(), Some(1));
        assert_eq!(first.history(&key).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_refused_change_records_nothing_and_announces_nothing() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let store = scratch.store().await;
    let mut changes = store.subscribe();
    // Written by another instance, so that this one hears of it exactly
    // once, and nothing is on its way when the refused changes are made.
    let other = scratch.store().await;
    other.apply(create(Flag::boolean("a"))).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("the creation was not announced")
        .unwrap();

    // Act
    let stale = store
        .apply(Change::update(Flag::boolean("a"), 7, "bob", "stale").unwrap())
        .await
        .unwrap_err();
    let missing = store
        .apply(Change::update(Flag::boolean("b"), 1, "bob", "no such flag").unwrap())
        .await
        .unwrap_err();

    // Assert
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    assert_eq!(stale.current_version(), Some(1));
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert_eq!(store.history("a").await.unwrap().len(), 1);
    // Not even the row reserved for a key never written is left.
    let rows: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {}",
        scratch.table("definitions")
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(rows, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!changes.has_changed().unwrap());
}

#[tokio::test]
async fn a_change_through_one_instance_is_evaluated_by_another_within_a_second() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let here = Flags::new(scratch.store().await).await.unwrap();
    let there = Flags::new(scratch.store().await).await.unwrap();
    tokio::spawn(here.follow());
    tokio::spawn(there.follow());

    // Act
    there
        .create(Flag::boolean("a").rule(Rule::new("on")), "alice", "launch")
        .await
        .unwrap();

    // Assert
    eventually(PROPAGATION, "the created flag is evaluated here", || {
        here.bool_value("a", &user(), false)
    })
    .await;

    // And the other way round.
    here.kill("a", "bob", "incident").await.unwrap();
    eventually(PROPAGATION, "the kill is evaluated there", || {
        !there.bool_value("a", &user(), true)
    })
    .await;
}

#[tokio::test]
async fn an_instance_whose_listening_connection_drops_listens_again_and_loads_again() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let admin = scratch.pool().await;
    let store = scratch.store().await;
    let here = Flags::new(store.clone()).await.unwrap();
    let there = Flags::new(scratch.store().await).await.unwrap();
    tokio::spawn(here.follow());
    let mut changes = store.subscribe();
    changes.borrow_and_update();

    // Act
    assert_eq!(terminate_listeners(&admin, store.channel()).await, 2);

    // Assert: back, it reports a change, since it may have missed one...
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("no change reported after reconnecting")
        .unwrap();
    // ... and hears the next ones.
    there
        .create(Flag::boolean("a").rule(Rule::new("on")), "alice", "launch")
        .await
        .unwrap();
    eventually(PROPAGATION, "the change is evaluated here", || {
        here.bool_value("a", &user(), false)
    })
    .await;
}

#[tokio::test]
async fn an_instance_whose_listening_connection_goes_silent_listens_again_and_loads_again() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let proxy = SilencingProxy::start(&scratch.url).await;
    let store = proxy
        .store(
            &scratch,
            Duration::from_millis(200),
            Duration::from_millis(500),
        )
        .await;
    let here = Flags::new(store).await.unwrap();
    tokio::spawn(here.follow());
    // Another instance, straight to the database.
    let there = Flags::new(scratch.store().await).await.unwrap();

    // Act: the listener's connection goes silent, then a flag changes.
    assert_eq!(proxy.silence_listeners(), 1);
    there
        .create(Flag::boolean("a").rule(Rule::new("on")), "alice", "launch")
        .await
        .unwrap();

    // Assert: the heartbeat finds it dead, a new connection listens, and
    // the change missed meanwhile is loaded.
    eventually(
        Duration::from_secs(10),
        "the change is evaluated after the silent connection is replaced",
        || here.bool_value("a", &user(), false),
    )
    .await;
    assert_eq!(proxy.listeners_seen(), 2);
    // ... and the next change is heard on the new connection.
    there.kill("a", "bob", "incident").await.unwrap();
    eventually(PROPAGATION, "the kill is evaluated here", || {
        !here.bool_value("a", &user(), true)
    })
    .await;
}

#[tokio::test]
async fn a_change_made_while_a_quiet_listener_reconnects_is_loaded() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let admin = scratch.pool().await;
    let proxy = SilencingProxy::start(&scratch.url).await;
    // Quiet for less than a reconnection takes: the receive that notices
    // the lost connection is cancelled while sqlx connects again, and the
    // heartbeat's query finishes the reconnection on its own.
    let store = proxy
        .store(&scratch, Duration::from_millis(50), Duration::from_secs(5))
        .await;
    let here = Flags::new(store.clone()).await.unwrap();
    tokio::spawn(here.follow());
    let there = Flags::new(scratch.store().await).await.unwrap();

    // Act: the listening connection dies, and a flag changes before the
    // new one listens.
    proxy.delay_new_connections(Duration::from_millis(700));
    // Both instances' listeners: the other one writes, so its own
    // reconnection does not matter.
    assert_eq!(terminate_listeners(&admin, store.channel()).await, 2);
    there
        .create(Flag::boolean("a").rule(Rule::new("on")), "alice", "launch")
        .await
        .unwrap();

    // Assert
    eventually(
        Duration::from_secs(10),
        "the change made while reconnecting is evaluated here",
        || here.bool_value("a", &user(), false),
    )
    .await;
}

#[tokio::test]
async fn a_quiet_listening_connection_that_answers_the_heartbeat_is_kept() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let proxy = SilencingProxy::start(&scratch.url).await;
    let store = proxy
        .store(&scratch, Duration::from_millis(50), Duration::from_secs(5))
        .await;
    let mut changes = store.subscribe();
    changes.borrow_and_update();
    let here = Flags::new(store).await.unwrap();
    tokio::spawn(here.follow());
    let started = proxy.first_listener_sent();

    // Act: nothing happens for a few heartbeats.
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.first_listener_sent() < started + 3 {
        assert!(Instant::now() < deadline, "no heartbeat sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Assert: the connection answered each time, so it is kept and no
    // change was reported...
    assert_eq!(proxy.listeners_seen(), 1);
    assert!(
        !changes.has_changed().unwrap(),
        "a reconnection was reported"
    );
    // ... and it still hears changes.
    let there = Flags::new(scratch.store().await).await.unwrap();
    there
        .create(Flag::boolean("a").rule(Rule::new("on")), "alice", "launch")
        .await
        .unwrap();
    eventually(PROPAGATION, "the change is evaluated here", || {
        here.bool_value("a", &user(), false)
    })
    .await;
    assert_eq!(proxy.listeners_seen(), 1);
}

#[tokio::test]
async fn a_url_names_the_schema_and_the_heartbeat() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let proxy = SilencingProxy::start(&scratch.url).await;
    let base = proxy.url(&scratch.url);
    let joint = if base.contains('?') { '&' } else { '?' };
    let url = format!(
        "{base}{joint}schema={}&heartbeat=50ms&heartbeat_timeout=5s",
        scratch.name
    );

    // Act
    let store = PostgresStore::connect(&url).await.unwrap();
    let opened = opsready_flags::open(&url).await.unwrap();

    // Assert: the schema is the URL's, for both...
    assert_eq!(store.schema(), scratch.name);
    store
        .apply(create(Flag::boolean("a").rule(Rule::new("on"))))
        .await
        .unwrap();
    let loaded = opened.load().await.unwrap();
    assert_eq!(loaded.len(), 1, "the opened store reads another schema");
    // ... and so is the heartbeat: several within a few seconds, where the
    // default would send none for 30.
    let started = proxy.first_listener_sent();
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.first_listener_sent() < started + 3 {
        assert!(Instant::now() < deadline, "no heartbeat sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_change_made_while_an_instance_could_not_listen_is_loaded_once_it_can() {
    let Some(scratch) = Scratch::database(PREFIX).await else {
        return;
    };
    let store = PostgresStore::connect(&scratch.url).await.unwrap();
    let here = Flags::new(store.clone()).await.unwrap();
    let there = Flags::new(PostgresStore::connect(&scratch.url).await.unwrap())
        .await
        .unwrap();
    tokio::spawn(here.follow());
    let mut admin = PgConnection::connect(&scratch.admin_url).await.unwrap();
    // `there` keeps the connection it has; no new one may open.
    there.refresh().await.unwrap();
    let allow = |allowed: bool| {
        format!(
            r#"ALTER DATABASE "{}" WITH ALLOW_CONNECTIONS {allowed}"#,
            scratch.name
        )
    };
    admin.execute(&*allow(false)).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name LIKE 'opsready-flags listener %'",
    )
    .bind(&scratch.name)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, 2);

    // Act: a change no listener hears.
    there
        .create(Flag::boolean("a").rule(Rule::new("on")), "alice", "launch")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!here.bool_value("a", &user(), false), "heard while deaf");
    admin.execute(&*allow(true)).await.unwrap();

    // Assert: reconnected, it loads again and finds it.
    eventually(
        Duration::from_secs(15),
        "the change is evaluated after reconnecting",
        || here.bool_value("a", &user(), false),
    )
    .await;
}

#[tokio::test]
async fn dropping_the_store_stops_listening() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let admin = scratch.pool().await;
    let store = scratch.store().await;
    let channel = store.channel().to_owned();
    let mut changes = store.subscribe();
    assert_eq!(listening(&admin, &channel).await, 1);

    // Act
    drop(store);

    // Assert
    let closed = tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("the store's notifications did not end");
    assert!(closed.is_err(), "a change was reported instead");
    let deadline = Instant::now() + Duration::from_secs(5);
    while listening(&admin, &channel).await > 0 {
        assert!(Instant::now() < deadline, "still listening");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_on_an_empty_schema_all_start() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let (a, b, c) = (
        scratch.pool().await,
        scratch.pool().await,
        scratch.pool().await,
    );

    // Act
    let (a, b, c) = tokio::join!(
        PostgresStore::from_pool_in_schema(a, &scratch.name),
        PostgresStore::from_pool_in_schema(b, &scratch.name),
        PostgresStore::from_pool_in_schema(c, &scratch.name),
    );

    // Assert
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    a.apply(create(Flag::boolean("a"))).await.unwrap();
    assert_eq!(b.load().await.unwrap().len(), 1);
    assert_eq!(c.get("a").await.unwrap().unwrap().version, 1);
    // The record of migrations is the schema's own, apart from the
    // application's.
    let migrations: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {} WHERE success",
        scratch.table("_sqlx_migrations")
    ))
    .fetch_one(a.pool())
    .await
    .unwrap();
    assert!(migrations >= 1);
}

#[tokio::test]
async fn the_audit_log_refuses_to_be_rewritten() {
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let store = scratch.store().await;
    store.apply(create(Flag::boolean("a"))).await.unwrap();
    let audit_log = scratch.table("audit_log");

    for statement in [
        format!("UPDATE {audit_log} SET actor = 'mallory'"),
        format!("DELETE FROM {audit_log}"),
        format!("TRUNCATE {audit_log}"),
    ] {
        // Act
        let error = sqlx::query(&statement)
            .execute(store.pool())
            .await
            .unwrap_err();

        // Assert
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
    assert_eq!(store.history("a").await.unwrap()[0].actor, "alice");
}

#[tokio::test]
async fn connect_and_open_use_the_default_schema() {
    let Some(scratch) = Scratch::database(PREFIX).await else {
        return;
    };

    // Act
    let store = PostgresStore::connect(&scratch.url).await.unwrap();
    store.apply(create(Flag::boolean("a"))).await.unwrap();
    let opened = opsready_flags::open(&scratch.url).await.unwrap();

    // Assert
    assert_eq!(store.schema(), PostgresStore::DEFAULT_SCHEMA);
    assert_eq!(store.channel(), "opsready_flags_changes");
    assert_eq!(opened.load().await.unwrap().len(), 1);
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'opsready_flags' \
         AND tablename IN ('definitions', 'audit_log')",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(tables, 2);
}

#[tokio::test]
async fn a_failed_connection_names_the_database_but_never_the_password() {
    // Only its server: the database named is one that does not exist.
    let Some(scratch) = Scratch::schema(PREFIX) else {
        return;
    };
    let password = "not-the-password-7f3a";
    let url = with_password(
        &with_database(&scratch.admin_url, "flags_test_no_such_database"),
        password,
    );

    // Act
    let error = PostgresStore::connect(&url).await.unwrap_err();

    // Assert
    assert_eq!(error.kind(), ErrorKind::Backend);
    let message = error.to_string();
    assert!(message.contains("connecting to Postgres at "), "{message}");
    assert!(
        message.contains("/flags_test_no_such_database"),
        "{message}"
    );
    assert!(!message.contains(password), "{message}");
    assert!(!format!("{error:?}").contains(password));
}
