//! Checks: what a dependency says about itself, bounded in time and cached.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use serde::Serialize;

/// The outcome of a check, in the health-check draft's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Healthy.
    Pass,
    /// Healthy with a concern (also what a failed non-critical check counts
    /// as in the overall status).
    Warn,
    /// Unhealthy.
    Fail,
}

/// What one run of a check observed.
///
/// ```
/// use opsready_health::{Reading, Status};
///
/// let reading = Reading::pass().observed(3.0, "ms");
/// assert_eq!(reading.status(), Status::Pass);
/// let reading = Reading::fail("connection refused");
/// assert_eq!(reading.output(), Some("connection refused"));
/// let reading = Reading::fail("redis://:hunter2@cache:6379: connection refused");
/// assert_eq!(reading.output(), Some("redis://:[REDACTED]@cache:6379: connection refused"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    status: Status,
    observed: Option<(f64, Cow<'static, str>)>,
    output: Option<String>,
}

impl Reading {
    /// A passing reading.
    pub fn pass() -> Self {
        Self {
            status: Status::Pass,
            observed: None,
            output: None,
        }
    }

    /// A reading with a concern, said in `output` (its credentials masked,
    /// as with [`Reading::fail`]).
    pub fn warn(output: impl Into<String>) -> Self {
        Self {
            status: Status::Warn,
            observed: None,
            output: Some(masked(output.into())),
        }
    }

    /// A failing reading; `output` says why. It is shown to whoever can
    /// read the probe, so the credentials it quotes are masked (a driver's
    /// error often quotes the URL it failed on): see
    /// [`opsready_vocab::redact_secrets`].
    pub fn fail(output: impl Into<String>) -> Self {
        Self {
            status: Status::Fail,
            observed: None,
            output: Some(masked(output.into())),
        }
    }

    /// Adds an observed value and its unit (`"ms"`, `"connections"`, …).
    /// Without one, the check's response time in milliseconds is reported.
    pub fn observed(mut self, value: f64, unit: impl Into<Cow<'static, str>>) -> Self {
        self.observed = Some((value, unit.into()));
        self
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The output, on warn and fail.
    pub fn output(&self) -> Option<&str> {
        self.output.as_deref()
    }

    /// The observed value and unit, if the check gave one.
    pub fn observed_value(&self) -> Option<(f64, &str)> {
        self.observed.as_ref().map(|(v, u)| (*v, u.as_ref()))
    }
}

/// `output` with its credentials masked.
fn masked(mut output: String) -> String {
    opsready_vocab::redact_secrets_in(&mut output);
    output
}

/// What a check's future may return: a [`Reading`], or a `Result` whose
/// error becomes a failing reading with the error's message as output.
pub trait IntoReading {
    /// Converts into a reading.
    fn into_reading(self) -> Reading;
}

impl IntoReading for Reading {
    fn into_reading(self) -> Reading {
        self
    }
}

impl<E: fmt::Display> IntoReading for Result<(), E> {
    fn into_reading(self) -> Reading {
        match self {
            Ok(()) => Reading::pass(),
            Err(error) => Reading::fail(error.to_string()),
        }
    }
}

impl<E: fmt::Display> IntoReading for Result<Reading, E> {
    fn into_reading(self) -> Reading {
        self.unwrap_or_else(|error| Reading::fail(error.to_string()))
    }
}

/// Something that can say whether a dependency is healthy.
///
/// Implemented for async closures: `|| async { Ok::<_, MyError>(()) }`.
/// Implementations need not bound their own time nor cache: the
/// [`Component`] that holds them does both.
pub trait Check: Send + Sync + 'static {
    /// Runs the check once.
    fn check(&self) -> BoxFuture<'_, Reading>;
}

impl<F, Fut> Check for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoReading,
{
    fn check(&self) -> BoxFuture<'_, Reading> {
        let future = self();
        Box::pin(async move { future.await.into_reading() })
    }
}

/// The kubelet's default probe timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a reading is reused by default.
pub const DEFAULT_CACHE_INTERVAL: Duration = Duration::from_secs(1);

/// How much longer than a check's timeout a probe waits for its run: the
/// run's own timeout fires only when the check waits, so a check that
/// blocks its thread is cut off here instead.
const PROBE_GRACE: Duration = Duration::from_millis(250);

/// A named check with its timeout, criticality and cache interval.
///
/// ```
/// use std::time::Duration;
/// use opsready_health::Component;
///
/// let cache = Component::new("cache", || async { Ok::<(), std::io::Error>(()) })
///     .non_critical()
///     .component_type("datastore")
///     .timeout(Duration::from_millis(500))
///     .cache_interval(Duration::from_secs(5));
/// assert_eq!(cache.name(), "cache");
/// assert!(!cache.is_critical());
/// ```
#[derive(Clone)]
pub struct Component {
    name: Cow<'static, str>,
    component_type: Option<Cow<'static, str>>,
    timeout: Duration,
    critical: bool,
    cache_interval: Duration,
    check: Arc<dyn Check>,
    state: Arc<Mutex<RunState>>,
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .field("component_type", &self.component_type)
            .field("timeout", &self.timeout)
            .field("critical", &self.critical)
            .field("cache_interval", &self.cache_interval)
            .finish_non_exhaustive()
    }
}

/// Logs a reading whose status differs from the one before (the first
/// reading, when it does not pass): the log then tells when and why an
/// instance left the load balancer, and when it came back, with the
/// output the probe answers.
fn log_change(name: &str, critical: bool, before: Option<&Stamped>, now: &Stamped) {
    let status = now.reading.status();
    let was = before.map(|before| before.reading.status());
    if was == Some(status) || (was.is_none() && status == Status::Pass) {
        return;
    }
    let output = now.reading.output().unwrap_or("no output");
    match status {
        Status::Pass => tracing::info!(check = %name, "health check passes again"),
        Status::Warn => tracing::warn!(check = %name, output, "health check warns: {output}"),
        Status::Fail if critical => tracing::error!(
            check = %name,
            output,
            "health check failed: {output}; the instance is not ready"
        ),
        Status::Fail => tracing::warn!(
            check = %name,
            output,
            "health check failed (non-critical, the instance stays ready): {output}"
        ),
    }
}

/// The cache of a component: the last reading and the run under way.
#[derive(Default)]
struct RunState {
    last: Option<Stamped>,
    /// The run under way.
    running: Option<Running>,
    /// Runs started so far: each run's number.
    runs: u64,
}

/// A run under way: its reading to come, when it started, its number and
/// where it is.
struct Running {
    reading: Shared<BoxFuture<'static, Stamped>>,
    since: Instant,
    number: u64,
    progress: Arc<Progress>,
}

/// Where a run is, so that one without a reading in time is reported for
/// what holds it: the check itself, or the runtime that does not run it.
#[derive(Default)]
struct Progress {
    /// [`NOT_STARTED`], [`POLLING`] or [`WAITING`].
    stage: AtomicU8,
    /// The time the check held its thread, over all its polls, in
    /// microseconds.
    polled_for: AtomicU64,
}

/// The run's task has not been polled yet.
const NOT_STARTED: u8 = 0;
/// The check is being polled: it runs on its thread.
const POLLING: u8 = 1;
/// The check waits to be woken.
const WAITING: u8 = 2;

impl Progress {
    /// Why a run gave no reading within `running_for`.
    fn stuck_cause(&self, running_for: Duration) -> String {
        match self.stage.load(Ordering::Acquire) {
            NOT_STARTED => format!(
                "no reading after {running_for:?}: the check has not started; the runtime \
                 does not run it (a worker blocked by other code, or an overloaded runtime)"
            ),
            WAITING => format!(
                "no reading after {running_for:?}: the check waits, and the runtime has not \
                 run it since (a worker blocked by other code, or an overloaded runtime)"
            ),
            _ => format!(
                "no reading after {running_for:?}: the check blocks its thread instead of waiting"
            ),
        }
    }

    /// The time the check held its thread so far.
    fn polled_for(&self) -> Duration {
        Duration::from_micros(self.polled_for.load(Ordering::Relaxed))
    }
}

/// Clears the run under way when its task ends, however it ends (its
/// reading recorded, a panic outside the check's own, its runtime shut
/// down), unless another run has started since: a run left marked as under
/// way would fail every probe after it as stuck, and start no other.
struct EndOfRun {
    state: Arc<Mutex<RunState>>,
    run: u64,
}

impl Drop for EndOfRun {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        if state
            .running
            .as_ref()
            .is_some_and(|running| running.number == self.run)
        {
            state.running = None;
        }
    }
}

/// Locks the state; a panic while it was held cannot leave it inconsistent
/// (every write is one assignment), so a poisoned lock is used as is.
fn lock(state: &Mutex<RunState>) -> std::sync::MutexGuard<'_, RunState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A reading with when it was taken.
#[derive(Debug, Clone)]
pub struct Stamped {
    /// What was observed.
    pub reading: Reading,
    /// When the reading was taken (cached readings keep their time).
    pub time: SystemTime,
    taken: Instant,
    elapsed: Duration,
}

impl Stamped {
    /// How long the check took.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

impl Component {
    /// A critical check named `name`, with a timeout of 1 s and a cache
    /// interval of 1 s.
    pub fn new(name: impl Into<Cow<'static, str>>, check: impl Check) -> Self {
        Self {
            name: name.into(),
            component_type: None,
            timeout: DEFAULT_TIMEOUT,
            critical: true,
            cache_interval: DEFAULT_CACHE_INTERVAL,
            check: Arc::new(check),
            state: Arc::default(),
        }
    }

    /// A failure of a non-critical check makes readiness `warn` (still 200),
    /// not `fail`. Checks are critical by default.
    pub fn non_critical(mut self) -> Self {
        self.critical = false;
        self
    }

    /// The draft's `componentType` (`datastore`, `component`, `system`, …).
    /// Defaults to none.
    pub fn component_type(mut self, kind: impl Into<Cow<'static, str>>) -> Self {
        self.component_type = Some(kind.into());
        self
    }

    /// How long a run may take before it counts as a failure. Defaults to
    /// 1 s, the kubelet's probe timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a reading is reused, so that a probe storm reaches the
    /// dependency at most once per interval. Defaults to 1 s.
    pub fn cache_interval(mut self, interval: Duration) -> Self {
        self.cache_interval = interval;
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a failure makes the service not ready.
    pub fn is_critical(&self) -> bool {
        self.critical
    }

    pub(crate) fn kind(&self) -> Option<&str> {
        self.component_type.as_deref()
    }

    /// A fresh enough reading: the cached one if younger than the cache
    /// interval, else a new run bounded by the timeout.
    ///
    /// Callers that arrive while a run is under way wait for it and share
    /// its reading, so the dependency sees one call however many probes
    /// arrive. The run is a task of its own: a probe that gives up (the
    /// kubelet's timeout equals the default check timeout) does not cancel
    /// it, and the callers after it still share its reading.
    pub async fn read(&self) -> Stamped {
        // The run's own timeout fires only at a wait: a check that blocks
        // its thread, or never yields, would hold every probe after it.
        // The probe answers anyway, a little after that timeout, and at
        // once while such a run goes on.
        let limit = self.timeout.saturating_add(PROBE_GRACE);
        let stuck = |since: Instant, progress: &Progress| {
            let running_for = since.elapsed();
            let cause = progress.stuck_cause(running_for);
            // Logged at each probe it fails: until the run returns, the
            // component fails every probe, and nothing else would say why.
            tracing::warn!(
                check = %self.name,
                ?running_for,
                "a health check gave no reading in time; its probes fail until it returns: {cause}"
            );
            Stamped {
                reading: Reading::fail(cause),
                time: SystemTime::now(),
                taken: Instant::now(),
                elapsed: running_for,
            }
        };
        let (run, since, progress) = {
            let mut state = lock(&self.state);
            if let Some(stamped) = &state.last
                && stamped.taken.elapsed() < self.cache_interval
            {
                return stamped.clone();
            }
            match &state.running {
                Some(running) if running.since.elapsed() >= limit => {
                    return stuck(running.since, &running.progress);
                }
                Some(running) => (
                    running.reading.clone(),
                    running.since,
                    Arc::clone(&running.progress),
                ),
                None => {
                    state.runs += 1;
                    let number = state.runs;
                    let progress = Arc::new(Progress::default());
                    let reading = self.start_run(number, Arc::clone(&progress));
                    let since = Instant::now();
                    state.running = Some(Running {
                        reading: reading.clone(),
                        since,
                        number,
                        progress: Arc::clone(&progress),
                    });
                    (reading, since, progress)
                }
            }
        };
        let left = limit.saturating_sub(since.elapsed());
        tokio::time::timeout(left, run)
            .await
            .unwrap_or_else(|_| stuck(since, &progress))
    }

    /// Spawns run number `number`, which records its reading in the
    /// cache when done, and where it is in `progress`.
    fn start_run(
        &self,
        number: u64,
        progress: Arc<Progress>,
    ) -> Shared<BoxFuture<'static, Stamped>> {
        let (check, timeout, state) = (
            Arc::clone(&self.check),
            self.timeout,
            Arc::clone(&self.state),
        );
        let (name, critical) = (self.name.clone(), self.critical);
        let end = EndOfRun {
            state: Arc::clone(&state),
            run: number,
        };
        let task = tokio::spawn(async move {
            let _end = end;
            let started = Instant::now();
            // A check that panics is a failing check, not a failing probe:
            // also when it panics before its first wait, in `check` itself
            // (a closure's body before its `async` block).
            // Each poll is marked as answering its panic (a failing
            // reading), so that a panic hook does not report it as a crash.
            let mut checking = Box::pin(async move { check.check().await });
            let polled = Arc::clone(&progress);
            let marked = std::future::poll_fn(move |cx| {
                polled.stage.store(POLLING, Ordering::Release);
                let poll_started = Instant::now();
                let poll = opsready_vocab::answering_panics(|| checking.as_mut().poll(cx));
                let took = u64::try_from(poll_started.elapsed().as_micros()).unwrap_or(u64::MAX);
                polled.polled_for.fetch_add(took, Ordering::Relaxed);
                polled.stage.store(WAITING, Ordering::Release);
                poll
            });
            let run = AssertUnwindSafe(marked).catch_unwind();
            let reading = match tokio::time::timeout(timeout, run).await {
                // A check that answers past the timeout, which could not
                // interrupt it, timed out all the same, whatever it says:
                // it blocked its thread, or the runtime did not run it.
                Ok(Ok(_)) if started.elapsed() > timeout => {
                    // The check's own: most of the time it took was spent
                    // running it, in one call or several.
                    let polled_for = progress.polled_for();
                    Reading::fail(if polled_for * 2 > started.elapsed() {
                        format!(
                            "timed out after {timeout:?}: the check blocked its thread for \
                             {polled_for:?} instead of waiting"
                        )
                    } else {
                        format!(
                            "timed out after {timeout:?}: the check answered after {:?}, \
                             the runtime not running it meanwhile (a worker blocked by other \
                             code, or an overloaded runtime)",
                            started.elapsed()
                        )
                    })
                }
                Ok(Ok(reading)) => reading,
                Ok(Err(_panic)) => Reading::fail("the check panicked"),
                Err(_) => Reading::fail(format!("timed out after {timeout:?}")),
            };
            let stamped = Stamped {
                reading,
                time: SystemTime::now(),
                taken: Instant::now(),
                elapsed: started.elapsed(),
            };
            let before = {
                let mut state = lock(&state);
                state.running = None;
                state.last.replace(stamped.clone())
            };
            log_change(&name, critical, before.as_ref(), &stamped);
            stamped
        });
        async move {
            task.await.unwrap_or_else(|_| {
                // The run ended without recording its reading (its runtime
                // shut down, a panic outside the check's own): `EndOfRun`
                // let the next read start a new one.
                Stamped {
                    reading: Reading::fail("the check was cancelled"),
                    time: SystemTime::now(),
                    taken: Instant::now(),
                    elapsed: Duration::ZERO,
                }
            })
        }
        .boxed()
        .shared()
    }
}
