//! Black-box tests of the probes, through HTTP on port 0.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use opsready_health::{Component, Health, Reading, Stamped, checks};
use opsready_problem::ProblemLayer;
use serde_json::Value;

struct App {
    base: String,
    client: reqwest::Client,
}

impl App {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn json(&self, path: &str) -> (u16, String, Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (status, content_type, response.json().await.unwrap())
    }

    async fn text(&self, path: &str) -> (u16, String) {
        let response = self.get(path).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

async fn spawn_app(health: &Health) -> App {
    let app: Router = health.router().layer(ProblemLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    App {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
    }
}

fn passing() -> impl opsready_health::Check {
    || async { Reading::pass() }
}

fn failing(output: &'static str) -> impl opsready_health::Check {
    move || async move { Reading::fail(output) }
}

/// A check that counts its runs.
fn counted(runs: &Arc<AtomicUsize>) -> impl opsready_health::Check {
    let runs = Arc::clone(runs);
    move || {
        runs.fetch_add(1, Ordering::SeqCst);
        async { Reading::pass() }
    }
}

#[tokio::test]
async fn startup_is_503_until_the_service_is_ready() {
    let health = Health::new();
    let app = spawn_app(&health).await;

    let (before, _, body) = app.json("/startupz").await;
    health.lifecycle().set_ready();
    let (after, _, _) = app.json("/startupz").await;

    assert_eq!(before, 503);
    assert_eq!(body["status"], "fail");
    assert_eq!(after, 200);
}

#[tokio::test]
async fn a_service_shut_down_during_startup_never_reports_started() {
    let health = Health::new();
    let app = spawn_app(&health).await;

    // A SIGTERM while the startup hooks (a migration) still run.
    health.lifecycle().start_draining();
    let (status, _, body) = app.json("/startupz").await;
    let verbose = app.text("/startupz?verbose").await;

    assert_eq!(status, 503);
    assert_eq!(body["status"], "fail");
    assert_eq!(body["output"], "draining");
    assert_eq!(
        verbose.1,
        "[-]startup failed: draining\nstartupz check failed\n"
    );
}

#[tokio::test]
async fn readiness_is_503_before_startup_even_with_passing_checks() {
    let health = Health::new().component(Component::new("database", passing()));
    let app = spawn_app(&health).await;

    let (status, _, body) = app.json("/readyz").await;

    assert_eq!(status, 503);
    assert_eq!(body["status"], "fail");
    assert_eq!(body["output"], "starting");
}

#[tokio::test]
async fn readiness_answers_in_the_health_check_draft_form() {
    let health = Health::new()
        .component(Component::new("database", passing()).component_type("datastore"))
        .component(Component::new("quota", || async {
            Reading::pass().observed(42.0, "percent")
        }));
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;

    let (status, content_type, body) = app.json("/readyz").await;

    assert_eq!(status, 200);
    assert_eq!(content_type, "application/health+json");
    assert_eq!(body["status"], "pass");
    let database = &body["checks"]["database"][0];
    assert_eq!(database["componentId"], "database");
    assert_eq!(database["componentType"], "datastore");
    assert_eq!(database["status"], "pass");
    assert_eq!(database["observedUnit"], "ms");
    assert!(database["observedValue"].as_f64().unwrap() >= 0.0);
    assert!(database.get("output").is_none(), "output only on failure");
    let time = database["time"].as_str().unwrap();
    assert!(time.len() == 24 && time.ends_with('Z'), "{time}");
    assert_eq!(body["checks"]["quota"][0]["observedValue"], 42.0);
    assert_eq!(body["checks"]["quota"][0]["observedUnit"], "percent");
}

#[tokio::test]
async fn a_failing_critical_check_makes_the_service_not_ready() {
    let health = Health::new()
        .component(Component::new("database", failing("connection refused")))
        .component(Component::new("cache", passing()));
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;

    let (status, _, body) = app.json("/readyz").await;

    assert_eq!(status, 503);
    assert_eq!(body["status"], "fail");
    assert_eq!(body["checks"]["database"][0]["status"], "fail");
    assert_eq!(
        body["checks"]["database"][0]["output"],
        "connection refused"
    );
}

#[tokio::test]
async fn with_output_withheld_the_probes_say_each_status_but_not_why() {
    const WHY: &str = "db.internal:5432: password authentication failed for user \"app\"";
    let health = Health::new()
        .component(Component::new("database", failing(WHY)))
        .component(Component::new("cache", failing(WHY)).non_critical())
        .show_output(false);
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;

    let (status, _, body) = app.json("/readyz").await;
    let (_, text) = app.text("/readyz?verbose").await;
    let (one, _, one_body) = app.json("/readyz/database").await;

    assert_eq!(status, 503);
    assert_eq!(body["checks"]["database"][0]["status"], "fail");
    assert_eq!(one, 503);
    assert_eq!(one_body["checks"]["database"][0]["status"], "fail");
    for answer in [body.to_string(), text.clone(), one_body.to_string()] {
        assert!(!answer.contains("db.internal"), "{answer}");
        assert!(!answer.contains("output"), "{answer}");
    }
    assert_eq!(
        text,
        "[-]database failed\n[-]cache failed (non-critical)\nreadyz check failed\n"
    );
}

#[tokio::test]
async fn a_failing_non_critical_check_warns_but_stays_ready() {
    let health = Health::new()
        .component(Component::new("database", passing()))
        .component(Component::new("cache", failing("connection refused")).non_critical());
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;

    let (status, _, body) = app.json("/readyz").await;

    assert_eq!(status, 200);
    assert_eq!(body["status"], "warn");
    assert_eq!(body["checks"]["cache"][0]["status"], "fail");
}

#[tokio::test]
async fn verbose_readiness_is_the_kubernetes_text_form_and_honours_exclude() {
    let health = Health::new()
        .component(Component::new("database", passing()))
        .component(Component::new("cache", failing("connection refused")))
        .component(Component::new("search", failing("down")));
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;

    let (failed, failed_text) = app.text("/readyz?verbose").await;
    let (passed, passed_text) = app
        .text("/readyz?verbose&exclude=cache&exclude=search")
        .await;

    assert_eq!(failed, 503);
    assert_eq!(
        failed_text,
        "[+]database ok\n[-]cache failed: connection refused\n[-]search failed: down\nreadyz check failed\n"
    );
    assert_eq!(passed, 200);
    assert_eq!(
        passed_text,
        "[+]database ok\n[+]cache excluded: ok\n[+]search excluded: ok\nreadyz check passed\n"
    );
}

#[tokio::test]
async fn one_check_can_be_asked_for_by_name_and_an_unknown_name_is_a_404_problem() {
    let health = Health::new()
        .component(Component::new("database", passing()))
        .component(Component::new("cache", failing("connection refused")).non_critical());
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;

    let (database, _, database_body) = app.json("/readyz/database").await;
    let (cache, _, _) = app.json("/readyz/cache").await;
    let (unknown, content_type, problem) = app.json("/readyz/nope").await;

    assert_eq!(database, 200);
    assert_eq!(database_body["checks"]["database"][0]["status"], "pass");
    assert!(database_body["checks"].get("cache").is_none());
    assert_eq!(cache, 503);
    assert_eq!(unknown, 404);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["status"], 404);
    assert_eq!(problem["code"], "NOT_FOUND");
    assert!(problem["detail"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn a_hung_check_is_answered_within_its_timeout_as_a_failure() {
    let timeout = Duration::from_millis(300);
    let health = Health::new()
        .component(Component::new("hung", std::future::pending::<Reading>).timeout(timeout));
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;

    let started = Instant::now();
    let (status, _, body) = app.json("/readyz").await;
    let took = started.elapsed();

    assert_eq!(status, 503);
    let output = body["checks"]["hung"][0]["output"].as_str().unwrap();
    assert!(output.contains("timed out after 300ms"), "{output}");
    // The margin is generous: this asserts an answer bounded by the timeout,
    // not a speed.
    assert!(took < timeout + Duration::from_secs(2), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_blocks_its_thread_is_answered_soon_after_its_timeout() {
    // Installed before the probes log.
    let _ = logged();
    // A check that never waits: its own timeout cannot interrupt it. It
    // blocks through `block_in_place`, as a synchronous driver's call
    // may, so that the runtime's other tasks go on meanwhile whichever
    // worker the check runs on (a check blocking a worker outright can
    // hold tasks queued behind it on that worker too).
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let blocked = Arc::new(std::sync::Mutex::new(blocked));
    let timeout = Duration::from_millis(300);
    let health = Health::new().component(
        Component::new("blocking", move || {
            let blocked = Arc::clone(&blocked);
            async move {
                tokio::task::block_in_place(|| {
                    let _ = blocked
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(60));
                });
                Reading::pass()
            }
        })
        .timeout(timeout),
    );
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;

    let started = Instant::now();
    let (status, _, body) = app.json("/readyz").await;
    let took = started.elapsed();
    // A probe while the run still blocks is answered the same way.
    let (again, _, body_again) = app.json("/readyz").await;
    drop(release);

    assert_eq!(status, 503);
    let output = body["checks"]["blocking"][0]["output"].as_str().unwrap();
    assert!(output.contains("blocks its thread"), "{output}");
    assert_eq!(again, 503);
    let output = body_again["checks"]["blocking"][0]["output"]
        .as_str()
        .unwrap();
    assert!(output.contains("blocks its thread"), "{output}");
    // Bounded by the timeout, not a speed: the check alone would hold the
    // probe for a minute.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    // And said in the log, by the check's name, at each probe it fails.
    let warnings = logged()
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("check=blocking"))
        .count();
    assert!(warnings >= 2, "{}", logged());
}

/// A runtime of one worker, held by other code (a task that blocks it)
/// until the sender returned is dropped.
fn runtime_with_its_worker_held() -> (tokio::runtime::Runtime, std::sync::mpsc::Sender<()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (holding, busy) = std::sync::mpsc::channel::<()>();
    runtime.spawn(async move {
        let _ = holding.send(());
        let _ = held.recv_timeout(Duration::from_secs(60));
    });
    assert!(
        busy.recv_timeout(Duration::from_secs(10)).is_ok(),
        "the worker never ran the task that holds it"
    );
    (runtime, release)
}

/// A probe of `component`, whose run started at `since`, once the probe
/// limit of its `timeout` has passed (its timeout and 250 ms of grace): a
/// run still under way is then reported as stuck, at once.
fn a_probe_past_the_limit(component: &Component, since: Instant, timeout: Duration) -> Stamped {
    use futures_util::FutureExt as _;
    let past = since + timeout + Duration::from_millis(300);
    while Instant::now() < past {
        std::thread::sleep(Duration::from_millis(10));
    }
    let Some(stamped) = component.read().now_or_never() else {
        panic!("a stuck run is answered at once");
    };
    stamped
}

#[test]
fn a_run_the_runtime_never_starts_is_reported_as_such_not_as_a_blocking_check() {
    use futures_util::FutureExt as _;
    // Arrange: the only worker is held by other code; a probe starts a run,
    // which cannot start.
    let (runtime, release) = runtime_with_its_worker_held();
    let timeout = Duration::from_millis(50);
    let component = Component::new("starved", || async { Reading::pass() }).timeout(timeout);
    let context = runtime.enter();
    let since = Instant::now();
    assert!(component.read().now_or_never().is_none());

    // Act: a later probe, past the probe limit.
    let stamped = a_probe_past_the_limit(&component, since, timeout);
    drop(release);
    drop(context);

    // Assert: it fails, naming the runtime, not the check.
    let output = stamped.reading.output().unwrap().to_owned();
    assert_eq!(stamped.reading.status(), opsready_health::Status::Fail);
    assert!(output.contains("the check has not started"), "{output}");
    assert!(
        output.contains("a worker blocked by other code"),
        "{output}"
    );
    assert!(!output.contains("blocks its thread"), "{output}");
}

/// A runtime of one worker.
fn one_worker() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Queues, from inside a check's first poll, a task that holds the only
/// worker (other code blocking it) until `held` says: run next on that
/// worker, before the check can run again or any timer fire, whatever the
/// machine's load. Sends on `holding` once it holds the worker.
fn hold_the_worker_next(
    holding: std::sync::mpsc::Sender<()>,
    held: impl FnOnce() + Send + 'static,
) {
    tokio::spawn(async move {
        let _ = holding.send(());
        held();
    });
}

#[test]
fn a_waiting_check_the_runtime_stops_running_is_reported_as_such_not_as_a_blocking_check() {
    use futures_util::FutureExt as _;
    // Arrange: a check that waits (for an answer that never comes), after
    // queueing other code that then holds the only worker.
    let runtime = one_worker();
    let (holding, held) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let queued = Arc::new(std::sync::Mutex::new(Some((holding, released))));
    let timeout = Duration::from_millis(50);
    let component = Component::new("waits", move || {
        if let Some((holding, released)) = queued.lock().unwrap().take() {
            hold_the_worker_next(holding, move || {
                let _ = released.recv_timeout(Duration::from_secs(60));
            });
        }
        std::future::pending::<Reading>()
    })
    .timeout(timeout);
    let context = runtime.enter();
    let since = Instant::now();
    assert!(component.read().now_or_never().is_none());
    assert!(
        held.recv_timeout(Duration::from_secs(10)).is_ok(),
        "the check never ran"
    );

    // Act: a later probe, past the probe limit.
    let stamped = a_probe_past_the_limit(&component, since, timeout);
    drop(release);
    drop(context);

    // Assert: it fails, naming the runtime, not the check.
    let output = stamped.reading.output().unwrap().to_owned();
    assert!(output.contains("the check waits"), "{output}");
    assert!(
        output.contains("a worker blocked by other code"),
        "{output}"
    );
    assert!(!output.contains("blocks its thread"), "{output}");
}

/// Probes `component` on `runtime` until its run is over, with a
/// deadline; the output of the reading it left.
fn output_once_the_run_is_over(runtime: &tokio::runtime::Runtime, component: &Component) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stamped = runtime.block_on(component.read());
        let output = stamped.reading.output().unwrap_or_default().to_owned();
        if !output.starts_with("no reading after") {
            return output;
        }
        assert!(Instant::now() < deadline, "the run never ended: {output}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_check_answering_late_because_the_runtime_did_not_run_it_says_so() {
    use futures_util::FutureExt as _;
    // Arrange: a check that waits for other code it queued, which holds
    // the only worker for longer than the check's timeout before it lets
    // the check go on.
    let runtime = one_worker();
    let (holding, held) = std::sync::mpsc::channel::<()>();
    let queued = Arc::new(std::sync::Mutex::new(Some(holding)));
    let timeout = Duration::from_millis(50);
    let component = Component::new("late", move || {
        let (answer, answered) = tokio::sync::oneshot::channel::<()>();
        if let Some(holding) = queued.lock().unwrap().take() {
            hold_the_worker_next(holding, move || {
                let _ = answer.send(());
                std::thread::sleep(Duration::from_millis(300));
            });
        }
        async move {
            let _ = answered.await;
            Reading::pass()
        }
    })
    .timeout(timeout)
    .cache_interval(Duration::from_secs(3600));
    let context = runtime.enter();
    assert!(component.read().now_or_never().is_none());
    assert!(
        held.recv_timeout(Duration::from_secs(10)).is_ok(),
        "the check never ran"
    );
    drop(context);

    // Act
    let output = output_once_the_run_is_over(&runtime, &component);

    // Assert: a failure, put down to the runtime, not to the check.
    assert!(
        output.starts_with("timed out after 50ms: the check answered after"),
        "{output}"
    );
    assert!(
        output.contains("a worker blocked by other code"),
        "{output}"
    );
    assert!(!output.contains("blocked its thread"), "{output}");
}

#[test]
fn a_check_that_blocks_its_thread_in_several_calls_is_blamed_for_it() {
    // Arrange: a check that blocks its thread twice, 150 ms each, with a
    // wait between: no one call outlasts its 200 ms timeout, both do.
    let runtime = one_worker();
    let component = Component::new("blocks-twice", || async {
        std::thread::sleep(Duration::from_millis(150));
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(150));
        Reading::pass()
    })
    .timeout(Duration::from_millis(200))
    .cache_interval(Duration::from_secs(3600));

    // Act
    let output = output_once_the_run_is_over(&runtime, &component);

    // Assert
    assert!(
        output.starts_with("timed out after 200ms: the check blocked its thread for"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_blocked_past_its_timeout_and_then_passed_is_still_a_failure() {
    let timeout = Duration::from_millis(200);
    let health = Health::new().component(
        Component::new("slow-driver", || async {
            // A synchronous driver call, three times the timeout.
            tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(600)));
            Reading::pass()
        })
        .timeout(timeout)
        .cache_interval(Duration::from_secs(3600)),
    );
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;

    // Act: probes until the run is over and its reading is cached.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let (status, _, body) = app.json("/readyz").await;
        let output = body["checks"]["slow-driver"][0]["output"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !output.starts_with("no reading after") {
            break (status, body);
        }
        assert!(Instant::now() < deadline, "the run never ended: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Assert: the late pass is not taken.
    assert_eq!(status, 503, "{body}");
    let output = body["checks"]["slow-driver"][0]["output"].as_str().unwrap();
    assert!(output.starts_with("timed out after 200ms"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_dies_with_no_probe_waiting_does_not_leave_the_check_stuck() {
    // A check whose future panics when dropped at its timeout: outside the
    // check's own panic catching, its task dies without a reading.
    struct PanicsWhenDropped;
    impl Drop for PanicsWhenDropped {
        fn drop(&mut self) {
            panic!("dropped");
        }
    }
    let timeout = Duration::from_millis(100);
    let component = Component::new("fragile", || async {
        let _guard = PanicsWhenDropped;
        std::future::pending::<Reading>().await
    })
    .timeout(timeout)
    .cache_interval(Duration::ZERO);

    // Act: a probe that gives up before the run ends.
    let gave_up = tokio::time::timeout(Duration::from_millis(20), component.read()).await;
    assert!(gave_up.is_err());
    // Past the probe's limit (the timeout and 250 ms of grace), after which
    // a run still marked as under way is reported as stuck, not joined: the
    // state the next probe finds once the run died with no one waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Assert: once the run has died, a probe starts a new one rather than
    // report the dead one as stuck, which it would do for ever.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let later = component.read().await;
        let output = later.reading.output().unwrap_or_default().to_owned();
        if !output.starts_with("no reading after") {
            break;
        }
        assert!(Instant::now() < deadline, "stuck for good: {output}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What this test binary logged so far, through a subscriber installed on
/// first use: the probes run on the runtime's workers, so a subscriber of
/// the test's own thread would not see them.
fn logged() -> String {
    static LOG: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    let log = LOG.get_or_init(|| {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = Arc::clone(&log);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Appender(Arc::clone(&writer)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        log
    });
    String::from_utf8_lossy(&log.lock().unwrap()).into_owned()
}

/// Appends what the subscriber writes to a shared buffer.
struct Appender(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Appender {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_check_that_starts_failing_and_recovers_is_logged_once_each_way() {
    // Arrange: a check that fails while `down` is set; the log captured.
    logged();
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&down);
    let health = Health::new().component(
        Component::new("accounts-ledger", move || {
            let failing = flag.load(Ordering::SeqCst);
            async move {
                if failing {
                    Reading::fail("postgres://app:LEDGER-SECRET@db/ledger: connection refused")
                } else {
                    Reading::pass()
                }
            }
        })
        .cache_interval(Duration::ZERO),
    );
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;
    let lines = || -> Vec<String> {
        logged()
            .lines()
            .filter(|line| line.contains("check=accounts-ledger"))
            .map(str::to_owned)
            .collect()
    };

    // Act: passing, failing three probes long, passing again.
    app.get("/readyz").await;
    down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        app.get("/readyz").await;
    }
    down.store(false, Ordering::SeqCst);
    app.get("/readyz").await;
    app.get("/readyz").await;

    // Assert: one line when it failed, with the reason, its credentials
    // masked, and one when it recovered; none for readings that did not
    // change.
    let lines = lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].contains("ERROR"), "{}", lines[0]);
    assert!(lines[0].contains("connection refused"), "{}", lines[0]);
    assert!(!lines[0].contains("LEDGER-SECRET"), "{}", lines[0]);
    assert!(lines[1].contains("INFO"), "{}", lines[1]);
    assert!(lines[1].contains("passes again"), "{}", lines[1]);
}

#[tokio::test]
async fn a_probe_storm_reaches_the_dependency_once_per_cache_interval() {
    let runs = Arc::new(AtomicUsize::new(0));
    let health = Health::new().component(
        Component::new("database", counted(&runs)).cache_interval(Duration::from_secs(3600)),
    );
    health.lifecycle().set_ready();
    let app = Arc::new(spawn_app(&health).await);

    let probes = (0..1000).map(|_| {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.get("/readyz").await.status().as_u16() })
    });
    let statuses = futures_util::future::join_all(probes).await;

    assert!(statuses.into_iter().all(|s| s.unwrap() == 200));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_probe_that_gives_up_does_not_cancel_the_run_others_share() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (release, gate) = tokio::sync::watch::channel(false);
    let counter = Arc::clone(&runs);
    let component = Component::new("slow", move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let mut gate = gate.clone();
        async move {
            let _ = gate.wait_for(|open| *open).await;
            Reading::pass()
        }
    })
    .timeout(Duration::from_secs(10))
    .cache_interval(Duration::from_secs(3600));

    // A caller that gives up while the run is under way...
    let impatient = tokio::time::timeout(Duration::from_millis(50), component.read()).await;
    // ...and one that waits for it.
    let patient = tokio::spawn({
        let component = component.clone();
        async move { component.read().await }
    });
    release.send(true).unwrap();
    let reading = patient.await.unwrap();

    assert!(impatient.is_err());
    assert_eq!(reading.reading.status(), opsready_health::Status::Pass);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the second caller shared the first run"
    );
}

#[tokio::test]
async fn cached_readings_keep_the_time_they_were_taken() {
    let runs = Arc::new(AtomicUsize::new(0));
    let health = Health::new().component(
        Component::new("database", counted(&runs)).cache_interval(Duration::from_secs(3600)),
    );
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;

    let (_, _, first) = app.json("/readyz").await;
    let (_, _, second) = app.json("/readyz").await;

    assert_eq!(
        first["checks"]["database"][0]["time"],
        second["checks"]["database"][0]["time"]
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_zero_cache_interval_runs_the_check_on_every_probe() {
    let runs = Arc::new(AtomicUsize::new(0));
    let health = Health::new()
        .component(Component::new("database", counted(&runs)).cache_interval(Duration::ZERO));
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;

    app.get("/readyz").await;
    app.get("/readyz").await;

    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_panicking_check_is_a_failure_and_the_probe_still_answers() {
    let health = Health::new().component(Component::new("broken", || async {
        if true {
            panic!("check exploded");
        }
        Reading::pass()
    }));
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;

    let (status, _, body) = app.json("/readyz").await;

    assert_eq!(status, 503);
    assert_eq!(body["checks"]["broken"][0]["output"], "the check panicked");
}

#[tokio::test]
async fn a_check_that_panics_before_its_first_wait_fails_and_runs_again_next_time() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted_runs = Arc::clone(&runs);
    let health = Health::new().component(
        Component::new("ledger", move || {
            // The closure's own body, outside the future it returns: a
            // poisoned lock or an `expect` there panics in `Check::check`.
            assert!(
                counted_runs.fetch_add(1, Ordering::SeqCst) > 0,
                "lock poisoned"
            );
            async { Reading::pass() }
        })
        .cache_interval(Duration::ZERO),
    );
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;

    let (first, _, body) = app.json("/readyz").await;
    assert_eq!(first, 503);
    assert_eq!(body["checks"]["ledger"][0]["output"], "the check panicked");

    let (second, _, body) = app.json("/readyz").await;
    assert_eq!(second, 200, "{body}");
    assert_eq!(body["checks"]["ledger"][0]["status"], "pass");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn shutdown_that_begins_while_a_probe_waits_for_its_checks_answers_503() {
    let started = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (check_started, check_release) = (Arc::clone(&started), Arc::clone(&release));
    let health = Health::new().component(
        Component::new("database", move || {
            let (started, release) = (Arc::clone(&check_started), Arc::clone(&check_release));
            async move {
                started.notify_one();
                release.notified().await;
                Reading::pass()
            }
        })
        .timeout(Duration::from_secs(30)),
    );
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;
    let probe = tokio::spawn(async move { app.json("/readyz").await });
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the check never started");

    health.lifecycle().start_draining();
    release.notify_one();
    let (status, _, body) = probe.await.unwrap();

    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "fail");
    assert_eq!(body["output"], "draining");
}

#[tokio::test]
async fn draining_makes_readiness_503_while_liveness_stays_200() {
    let health = Health::new().component(Component::new("database", passing()));
    health.lifecycle().set_ready();
    let app = spawn_app(&health).await;
    let (ready_before, _, _) = app.json("/readyz").await;

    health.lifecycle().start_draining();
    let (ready, _, body) = app.json("/readyz").await;
    let (live, _, live_body) = app.json("/livez").await;
    let (_, verbose) = app.text("/readyz?verbose").await;

    assert_eq!(ready_before, 200);
    assert_eq!(ready, 503);
    assert_eq!(body["output"], "draining");
    assert_eq!(live, 200);
    assert_eq!(live_body["status"], "pass");
    assert!(
        verbose.starts_with("[-]lifecycle failed: draining\n"),
        "{verbose}"
    );
}

#[tokio::test]
async fn the_tcp_check_passes_on_an_open_port_and_fails_on_a_closed_one() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap().to_string();
    // A port that was just free: bind, read the port, release it.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };

    let open = Component::new("open", checks::tcp(open)).read().await;
    let closed = Component::new("closed", checks::tcp(closed)).read().await;

    assert_eq!(open.reading.status(), opsready_health::Status::Pass);
    assert_eq!(closed.reading.status(), opsready_health::Status::Fail);
    assert!(closed.reading.output().unwrap().contains("cannot connect"));
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_postgres_check_replaces_an_idle_connection_the_server_closed() {
    use sqlx::Connection as _;

    let Ok(url) = std::env::var("OPSREADY_TEST_DATABASE_URL") else {
        pg_scratch::skip("OPSREADY_TEST_DATABASE_URL is not set");
        return;
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    // The server ends the pool's idle connection, as a restart or a
    // failover would.
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut admin)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
            .bind(pid)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        if alive == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the backend never ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let reading = Component::new("database", checks::postgres(pool))
        .read()
        .await;

    assert_eq!(
        reading.reading.status(),
        opsready_health::Status::Pass,
        "{reading:?}"
    );
}

/// A full Postgres pool: the check does not wait for a connection but
/// asks the database on one of its own, so a database that went away
/// while the pool was full fails rather than warns.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_postgres_check_of_a_full_pool_asks_the_database_on_a_connection_of_its_own() {
    use std::str::FromStr as _;

    let Ok(url) = std::env::var("OPSREADY_TEST_DATABASE_URL") else {
        pg_scratch::skip("OPSREADY_TEST_DATABASE_URL is not set");
        return;
    };
    // The pool reaches the database through a forwarder the test can
    // close, as a failover or a network cut would.
    let server = sqlx::postgres::PgConnectOptions::from_str(&url).unwrap();
    let target = format!("{}:{}", server.get_host(), server.get_port());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let forwarder = tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut database) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut database).await;
                }
            });
        }
    });
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(server.host("127.0.0.1").port(port))
        .await
        .unwrap();
    let held = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
    let check = || Component::new("database", checks::postgres(pool.clone()));

    let answering = check().read().await;
    // No new connection reaches the database any more.
    forwarder.abort();
    let _ = forwarder.await;
    let gone = check().read().await;
    drop(held);

    assert_eq!(
        answering.reading.status(),
        opsready_health::Status::Warn,
        "{answering:?}"
    );
    assert!(
        answering
            .reading
            .output()
            .unwrap()
            .contains("the database answers on a connection of the check's own"),
        "{answering:?}"
    );
    assert_eq!(
        gone.reading.status(),
        opsready_health::Status::Fail,
        "{gone:?}"
    );
}

/// A full pool of a database that is there but refuses new connections
/// (at its connection limit, starting up): the server answered, so the
/// check warns; failing would take every instance out at once.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_postgres_check_of_a_full_pool_warns_when_the_database_refuses_a_connection() {
    use sqlx::{Connection as _, Executor as _};

    let Some(scratch) = pg_scratch::Scratch::database("opsready_health_full_").await else {
        return;
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&scratch.url)
        .await
        .unwrap();
    let held = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
    // Refused by the server itself, superusers included.
    let mut admin = sqlx::PgConnection::connect(&scratch.admin_url)
        .await
        .unwrap();
    let allow = |on: bool| {
        format!(
            r#"ALTER DATABASE "{}" ALLOW_CONNECTIONS {on}"#,
            scratch.name
        )
    };
    admin.execute(&*allow(false)).await.unwrap();

    let reading = Component::new("database", checks::postgres(pool.clone()))
        .read()
        .await;
    admin.execute(&*allow(true)).await.unwrap();
    drop(held);
    let _ = admin.close().await;
    pool.close().await;
    scratch.drop_now().await;

    assert_eq!(
        reading.reading.status(),
        opsready_health::Status::Warn,
        "{reading:?}"
    );
    assert!(
        reading
            .reading
            .output()
            .unwrap()
            .contains("the database refuses a connection of the check's own"),
        "{reading:?}"
    );
}

#[cfg(feature = "http")]
#[tokio::test]
async fn the_http_check_follows_the_status_class_of_the_upstream() {
    use axum::http::StatusCode;
    use axum::routing::get;

    let upstream: Router = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/broken", get(|| async { StatusCode::BAD_GATEWAY }))
        .route(
            "/moved",
            get(|| async { axum::response::Redirect::temporary("/ok") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, upstream).await.unwrap() });
    let component =
        |path: &str| Component::new("upstream", checks::http(format!("http://{addr}{path}")));

    let ok = component("/ok").read().await;
    let broken = component("/broken").read().await;
    let missing = component("/missing").read().await;
    let moved = component("/moved").read().await;

    // A redirect is the answer judged, not the page behind it.
    assert_eq!(moved.reading.status(), opsready_health::Status::Warn);
    assert!(moved.reading.output().unwrap().contains("307"), "{moved:?}");
    assert_eq!(ok.reading.status(), opsready_health::Status::Pass);
    assert_eq!(broken.reading.status(), opsready_health::Status::Fail);
    assert!(broken.reading.output().unwrap().contains("502"));
    assert_eq!(missing.reading.status(), opsready_health::Status::Warn);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_postgres_check_passes_on_the_real_server_and_fails_on_a_missing_database() {
    let Ok(url) = std::env::var("OPSREADY_TEST_DATABASE_URL") else {
        pg_scratch::skip("OPSREADY_TEST_DATABASE_URL is not set");
        return;
    };
    let good = sqlx::PgPool::connect_lazy(&url).unwrap();
    let missing_url = match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/opsready_no_such_database"),
        None => panic!("OPSREADY_TEST_DATABASE_URL has no database name: {url}"),
    };
    let missing = sqlx::PgPool::connect_lazy(&missing_url).unwrap();

    let good = Component::new("database", checks::postgres(good))
        .read()
        .await;
    let missing = Component::new("database", checks::postgres(missing))
        .timeout(Duration::from_secs(5))
        .read()
        .await;

    assert_eq!(
        good.reading.status(),
        opsready_health::Status::Pass,
        "{good:?}"
    );
    assert_eq!(missing.reading.status(), opsready_health::Status::Fail);
    assert!(
        missing
            .reading
            .output()
            .unwrap()
            .contains("opsready_no_such_database"),
        "{missing:?}"
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn the_sqlite_check_passes_on_a_working_pool() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();

    let reading = Component::new("database", checks::sqlite(pool))
        .read()
        .await;

    assert_eq!(reading.reading.status(), opsready_health::Status::Pass);
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn the_sqlite_check_warns_without_waiting_when_every_connection_is_in_use() {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(2)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let check = || Component::new("database", checks::sqlite(pool.clone()));

    // One connection busy, the pool may open another: the check takes it.
    let first = pool.acquire().await.unwrap();
    let one_busy = check().read().await;
    // Both busy: waiting would time the check out (a failure, and every
    // instance unready at once under load).
    let second = pool.acquire().await.unwrap();
    let saturated = check().read().await;
    drop((first, second));
    // A connection goes back to the pool on a task of its own.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.num_idle() < 2 {
        assert!(Instant::now() < deadline, "the connections never came back");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let released = check().read().await;

    assert_eq!(
        one_busy.reading.status(),
        opsready_health::Status::Pass,
        "{one_busy:?}"
    );
    assert_eq!(
        saturated.reading.status(),
        opsready_health::Status::Warn,
        "{saturated:?}"
    );
    assert_eq!(
        saturated.reading.output(),
        Some("every one of the pool's 2 connections is in use; the check does not wait for one")
    );
    assert_eq!(
        released.reading.status(),
        opsready_health::Status::Pass,
        "{released:?}"
    );
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn the_redis_check_passes_on_the_real_server_and_fails_on_a_closed_port() {
    let Ok(url) = std::env::var("OPSREADY_TEST_REDIS_URL") else {
        pg_scratch::skip("OPSREADY_TEST_REDIS_URL is not set");
        return;
    };
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let good = redis::Client::open(url).unwrap();
    let closed = redis::Client::open(format!("redis://127.0.0.1:{closed_port}")).unwrap();

    let good = Component::new("cache", checks::redis(good)).read().await;
    let closed = Component::new("cache", checks::redis(closed)).read().await;

    assert_eq!(
        good.reading.status(),
        opsready_health::Status::Pass,
        "{good:?}"
    );
    assert_eq!(closed.reading.status(), opsready_health::Status::Fail);
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn the_redis_connection_check_fails_when_the_services_own_connection_broke() {
    let Ok(url) = std::env::var("OPSREADY_TEST_REDIS_URL") else {
        pg_scratch::skip("OPSREADY_TEST_REDIS_URL is not set");
        return;
    };
    let client = redis::Client::open(url).unwrap();
    // The service's connection, and the operator's, which kills it.
    let mut service = client.get_multiplexed_async_connection().await.unwrap();
    let mut operator = client.get_multiplexed_async_connection().await.unwrap();
    let service_id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut service)
        .await
        .unwrap();
    let own = Component::new("cache", checks::redis_connection(service.clone()));
    let fresh = Component::new("cache-fresh", checks::redis(client));
    let before = own.read().await;

    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(service_id)
        .query_async(&mut operator)
        .await
        .unwrap();
    assert_eq!(killed, 1, "the service's connection was not found");
    // The components cache their readings: new ones read afresh.
    let own = Component::new("cache", checks::redis_connection(service.clone()));
    let after = own.read().await;
    let fresh = fresh.read().await;

    assert_eq!(
        before.reading.status(),
        opsready_health::Status::Pass,
        "{before:?}"
    );
    assert_eq!(
        after.reading.status(),
        opsready_health::Status::Fail,
        "{after:?}"
    );
    assert!(
        after.reading.output().unwrap().starts_with("PING failed"),
        "{after:?}"
    );
    // A check on a connection of its own passes: Redis itself is fine.
    assert_eq!(
        fresh.reading.status(),
        opsready_health::Status::Pass,
        "{fresh:?}"
    );
    let command: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut service).await;
    assert!(command.is_err(), "the service's own commands fail too");
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn the_sqlite_check_fails_when_the_file_is_no_longer_a_database() {
    let dir = std::env::temp_dir().join(format!(
        "opsready-sqlite-check-{}-{}",
        std::process::id(),
        line!()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("app.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    let healthy = Component::new("database", checks::sqlite(pool.clone()))
        .read()
        .await;

    // Overwrite the header under the open connection, as a disk fault or a
    // stray copy would.
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let broken = Component::new("database", checks::sqlite(pool.clone()))
        .read()
        .await;
    pool.close().await;
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(healthy.reading.status(), opsready_health::Status::Pass);
    assert_eq!(
        broken.reading.status(),
        opsready_health::Status::Fail,
        "{broken:?}"
    );
}
