//! [`Blocking`]: CPU-bound or blocking work off the async workers, in the
//! request's span, with a bound on how much runs at once.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::field::Empty;

use crate::settings::BlockingSettings;

/// Runs closures on Tokio's blocking threads: hashing a password, parsing a
/// large document, calling a synchronous library.
///
/// A handler that blocks an async worker stalls every request that worker
/// carries; this moves the work away while keeping it in the request's span
/// (a `blocking` child span with `queue_wait_ms` and `run_ms`), and bounds
/// how many jobs run at once so a burst cannot exhaust the blocking pool.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use opsready_telemetry::Blocking;
///
/// let blocking = Blocking::new(4);
/// let digest = blocking.run(|| (1..=20u64).product::<u64>()).await.unwrap();
/// assert_eq!(digest, 2_432_902_008_176_640_000);
/// # });
/// ```
#[derive(Clone)]
pub struct Blocking {
    permits: Arc<Semaphore>,
    max_concurrency: usize,
    observer: Option<Observer>,
}

/// Told the queue wait and run time of every job, as metrics want them.
type Observer = Arc<dyn Fn(Duration, Duration) + Send + Sync>;

impl fmt::Debug for Blocking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocking")
            .field("max_concurrency", &self.max_concurrency)
            .field("running", &self.running())
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl Blocking {
    /// At most `max_concurrency` jobs at once (at least 1).
    pub fn new(max_concurrency: usize) -> Self {
        let max_concurrency = max_concurrency.max(1);
        Self {
            permits: Arc::new(Semaphore::new(max_concurrency)),
            max_concurrency,
            observer: None,
        }
    }

    /// Tells `observe(queue_wait, run_time)` about every job that ran, for
    /// metrics (the `opsready` facade connects it to its histograms).
    pub fn with_observer(
        mut self,
        observe: impl Fn(Duration, Duration) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observe));
        self
    }

    /// Sized by `telemetry.blocking.max_concurrency`.
    pub fn from_settings(settings: &BlockingSettings) -> Self {
        Self::new(settings.max_concurrency)
    }

    /// How many jobs are running now.
    pub fn running(&self) -> usize {
        self.max_concurrency - self.permits.available_permits()
    }

    /// Runs `job` on a blocking thread once a slot is free, and returns its
    /// result.
    ///
    /// # Errors
    ///
    /// When the job panicked (the panic does not reach the caller's task).
    pub async fn run<F, T>(&self, job: F) -> Result<T, BlockingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let span = tracing::info_span!("blocking", queue_wait_ms = Empty, run_ms = Empty);
        let queued = Instant::now();
        let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
            // The semaphore is never closed; this is unreachable.
            return Err(BlockingError { panicked: false });
        };
        let queue_wait = queued.elapsed();
        span.record("queue_wait_ms", queue_wait.as_secs_f64() * 1000.0);
        let observer = self.observer.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _entered = span.enter();
            // Recorded however the job ends, a panic included: the slow and
            // failing jobs are the ones the histograms are for.
            let _ran = Ran {
                span: &span,
                observer: observer.as_ref(),
                queue_wait,
                started: Instant::now(),
            };
            job()
        });
        handle.await.map_err(|error| BlockingError {
            panicked: error.is_panic(),
        })
    }
}

/// Records a job's run time, on its span and with the observer, when
/// dropped: after the job returned or while its panic unwinds.
struct Ran<'a> {
    span: &'a tracing::Span,
    observer: Option<&'a Observer>,
    queue_wait: Duration,
    started: Instant,
}

impl Drop for Ran<'_> {
    fn drop(&mut self) {
        let run_time = self.started.elapsed();
        self.span.record("run_ms", run_time.as_secs_f64() * 1000.0);
        if let Some(observe) = self.observer {
            // Maybe while the job's panic unwinds: a second panic here
            // would abort the process.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                observe(self.queue_wait, run_time);
            }));
        }
    }
}

/// A blocking job did not complete.
#[derive(Debug)]
pub struct BlockingError {
    panicked: bool,
}

impl BlockingError {
    /// Whether the job panicked.
    pub fn is_panic(&self) -> bool {
        self.panicked
    }
}

impl fmt::Display for BlockingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.panicked {
            f.write_str("a blocking job panicked")
        } else {
            f.write_str("a blocking job was cancelled")
        }
    }
}

impl std::error::Error for BlockingError {}
