//! Process and Tokio runtime metrics, and the scheduling-lag probe.

use std::time::{Duration, Instant};

use metrics::{Key, Recorder as _};

use crate::catalog;
use crate::layer::{METADATA, Metrics};

/// How often the lag probe wakes.
pub const LAG_PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// Tokio's timer wheel ticks in milliseconds and rounds a sleep's deadline
/// up to the next tick: a timer woken on time is up to this late.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// Buckets of the scheduling-lag histogram, in seconds: 0.1 ms to 1 s. The
/// lag is counted beyond the timer's 1 ms resolution, so a healthy
/// runtime's readings sit in the lowest buckets, up to about 1 ms: an idle
/// runtime's park also rounds its timeout to the millisecond.
pub const LAG_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
];

/// Buckets of the waits and runs that are not requests (a pooled
/// connection's acquire, a blocking job's queue wait and run), in seconds:
/// 0.1 ms to 30 s. A healthy wait is well under a millisecond, and a bad
/// one reaches a pool's acquire timeout (30 s by default in sqlx); the
/// request buckets (`metrics.latency_buckets`), set for latency
/// objectives, would put every healthy wait in their first bucket.
pub const WAIT_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

impl Metrics {
    /// Reads the current Tokio runtime's workers, alive tasks and global
    /// queue depth (when called inside one), and the watched pools, into
    /// their gauges. The process's CPU time, memory, open files and start
    /// time (Linux) need no collection: every render reads them.
    pub fn collect(&self) {
        self.run_collectors();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let metrics = runtime.metrics();
            self.gauge(catalog::TOKIO_WORKERS.name)
                .set(metrics.num_workers() as f64);
            self.gauge(catalog::TOKIO_ALIVE_TASKS.name)
                .set(metrics.num_alive_tasks() as f64);
            self.gauge(catalog::TOKIO_GLOBAL_QUEUE_DEPTH.name)
                .set(metrics.global_queue_depth() as f64);
        }
    }

    /// Reports a connection pool's gauges at every collection: `read`
    /// returns (used, idle, max). For pools other than sqlx's (which
    /// [`Metrics::watch_sqlx_pool`] covers).
    pub fn watch_pool(
        &self,
        name: &str,
        read: impl Fn() -> (u32, u32, u32) + Send + Sync + 'static,
    ) {
        let name = name.to_owned();
        let used = self.labelled_gauge(
            catalog::DB_CLIENT_CONNECTION_COUNT.name,
            &[("pool_name", &name), ("state", "used")],
        );
        let idle = self.labelled_gauge(
            catalog::DB_CLIENT_CONNECTION_COUNT.name,
            &[("pool_name", &name), ("state", "idle")],
        );
        let max = self.labelled_gauge(
            catalog::DB_CLIENT_CONNECTION_MAX.name,
            &[("pool_name", &name)],
        );
        self.add_collector(Box::new(move || {
            let (in_use, idle_now, most) = read();
            used.set(f64::from(in_use));
            idle.set(f64::from(idle_now));
            max.set(f64::from(most));
        }));
    }

    /// Reports a sqlx pool's connections (used, idle, max) at every
    /// collection, as `db_client_connection_*{pool_name}`.
    #[cfg(feature = "sqlx")]
    pub fn watch_sqlx_pool<DB: sqlx::Database>(&self, name: &str, pool: sqlx::Pool<DB>) {
        self.watch_pool(name, move || {
            let size = pool.size();
            let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
            (
                size.saturating_sub(idle),
                idle,
                pool.options().get_max_connections(),
            )
        });
    }

    fn labelled_gauge(
        &self,
        name: &'static str,
        labels: &[(&'static str, &str)],
    ) -> metrics::Gauge {
        debug_assert!(
            catalog::find(name)
                .is_some_and(|def| labels.iter().all(|(label, _)| def.labels.contains(label))),
            "{name} or one of its labels is not in the catalog"
        );
        let labels: Vec<metrics::Label> = labels
            .iter()
            .map(|(key, value)| metrics::Label::new(*key, (*value).to_owned()))
            .collect();
        self.recorder()
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    /// Reports counters kept elsewhere as running totals (a flag
    /// evaluator's counts, say) at every collection: `read` returns each
    /// series' label values, in the order of `def.labels`, and its total.
    /// Keep the label values bounded: each distinct set is a series.
    ///
    /// ```
    /// use opsready_metrics::{Metrics, catalog};
    ///
    /// let metrics = Metrics::new();
    /// metrics.watch_counters(&catalog::FEATURE_FLAG_EVALUATIONS, || {
    ///     vec![(vec!["greeting.shout".to_owned(), "on".to_owned(), "STATIC".to_owned()], 7)]
    /// });
    /// metrics.collect();
    /// assert!(metrics.render().contains(
    ///     r#"feature_flag_evaluations_total{flag="greeting.shout",variant="on",reason="STATIC"} 7"#
    /// ));
    /// ```
    pub fn watch_counters(
        &self,
        def: &'static catalog::MetricDef,
        read: impl Fn() -> Vec<(Vec<String>, u64)> + Send + Sync + 'static,
    ) {
        // Weak: the collector lives inside the metrics it records into.
        let weak = self.downgrade();
        self.add_collector(Box::new(move || {
            let Some(recorder) = Metrics::upgrade(&weak) else {
                return;
            };
            for (values, total) in read() {
                let labels: Vec<metrics::Label> = def
                    .labels
                    .iter()
                    .zip(values)
                    .map(|(name, value)| metrics::Label::new(*name, value))
                    .collect();
                recorder
                    .recorder()
                    .register_counter(&Key::from_parts(def.name, labels), &METADATA)
                    .absolute(total);
            }
        }));
    }

    /// The histogram of the time callers wait to acquire a connection from
    /// the pool `name`, as `db_client_connection_wait_time_seconds{pool_name}`.
    /// Keep the handle: recording through it is a lookup-free observation.
    ///
    /// ```
    /// use std::time::Duration;
    /// use opsready_metrics::Metrics;
    ///
    /// let metrics = Metrics::new();
    /// let wait = metrics.pool_wait("cache");
    /// wait.record(Duration::from_millis(3));
    /// assert!(metrics.render().contains(r#"db_client_connection_wait_time_seconds_count{pool_name="cache"} 1"#));
    /// ```
    pub fn pool_wait(&self, name: &str) -> PoolWait {
        let key = Key::from_parts(
            catalog::DB_CLIENT_CONNECTION_WAIT_TIME.name,
            vec![metrics::Label::new("pool_name", name.to_owned())],
        );
        PoolWait {
            histogram: self.recorder().register_histogram(&key, &METADATA),
        }
    }

    /// Records a blocking job's queue wait and run time; hand it to
    /// `opsready_telemetry::Blocking::with_observer`.
    pub fn record_blocking(&self, queue_wait: Duration, run_time: Duration) {
        let recorder = self.recorder();
        recorder
            .register_histogram(
                &Key::from_static_name(catalog::BLOCKING_QUEUE_WAIT.name),
                &METADATA,
            )
            .record(queue_wait.as_secs_f64());
        recorder
            .register_histogram(
                &Key::from_static_name(catalog::BLOCKING_RUN.name),
                &METADATA,
            )
            .record(run_time.as_secs_f64());
    }

    /// Records how late a timer woke, in seconds.
    pub fn record_scheduling_lag(&self, lag: Duration) {
        let key = Key::from_static_name(catalog::TOKIO_SCHEDULING_LAG.name);
        self.recorder()
            .register_histogram(&key, &METADATA)
            .record(lag.as_secs_f64());
    }

    /// Runs until dropped: every [`LAG_PROBE_INTERVAL`] it records how late
    /// it was woken (a handler blocking the async workers shows up as lag),
    /// and every five seconds it [collects](Metrics::collect) and drains
    /// histogram samples. Spawn it on the service's runtime.
    pub async fn run_probe(self) {
        let mut ticks: u32 = 0;
        loop {
            let asked = Instant::now();
            tokio::time::sleep(LAG_PROBE_INTERVAL).await;
            self.record_scheduling_lag(
                asked
                    .elapsed()
                    .saturating_sub(LAG_PROBE_INTERVAL + TIMER_RESOLUTION),
            );
            ticks = ticks.wrapping_add(1);
            if ticks.is_multiple_of(50) {
                self.collect();
                self.run_upkeep();
            }
        }
    }

    pub(crate) fn gauge(&self, name: &'static str) -> metrics::Gauge {
        debug_assert!(
            catalog::find(name).is_some(),
            "{name} is not in the catalog"
        );
        self.recorder()
            .register_gauge(&Key::from_static_name(name), &METADATA)
    }
}

/// Records how long callers wait for a pooled connection; made by
/// [`Metrics::pool_wait`]. Cheap to clone.
#[derive(Clone)]
pub struct PoolWait {
    histogram: metrics::Histogram,
}

impl std::fmt::Debug for PoolWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolWait").finish_non_exhaustive()
    }
}

impl PoolWait {
    /// Records one wait (a failed or timed-out acquire too: the caller
    /// waited all the same).
    pub fn record(&self, waited: Duration) {
        self.histogram.record(waited.as_secs_f64());
    }

    /// Acquires a connection from a sqlx pool, recording how long it took.
    /// Use it where a handler holds a connection for several queries; a
    /// query run on the pool directly acquires without being measured.
    ///
    /// The wait is recorded however it ends: with a connection, with an
    /// error, or cancelled (a request timeout or a client that went away
    /// drops the handler mid-wait), which is how the longest waits of an
    /// exhausted pool end.
    #[cfg(feature = "sqlx")]
    pub async fn acquire<DB: sqlx::Database>(
        &self,
        pool: &sqlx::Pool<DB>,
    ) -> Result<sqlx::pool::PoolConnection<DB>, sqlx::Error> {
        let _waiting = Waiting {
            wait: self,
            asked: Instant::now(),
        };
        pool.acquire().await
    }
}

/// Records the wait when dropped: at the end of an acquire, or when it is
/// cancelled.
#[cfg(feature = "sqlx")]
struct Waiting<'w> {
    wait: &'w PoolWait,
    asked: Instant,
}

#[cfg(feature = "sqlx")]
impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.wait.record(self.asked.elapsed());
    }
}

/// What `/proc` told of the process: each value read on its own, so that
/// one a hardened `/proc` hides (the descriptor list, say) does not take
/// the others with it.
pub(crate) struct Process {
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) resident_bytes: Option<f64>,
    pub(crate) open_fds: Option<f64>,
    pub(crate) start_time_seconds: Option<f64>,
}

/// Linux reports CPU times and the start time in clock ticks of
/// `USER_HZ`, fixed at 100 on every architecture it supports.
const USER_HZ: f64 = 100.0;

pub(crate) fn read_process() -> Process {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // Fields after the command, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|stat| stat.rsplit_once(')'))
        .map(|(_, after)| after.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the file (index 11 and 12
    // after the command); starttime is field 22 (index 19).
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    let cpu_seconds = ticks(11)
        .zip(ticks(12))
        .map(|(user, system)| (user + system) / USER_HZ);
    let resident_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map(|kib| kib * 1024.0);
    // Less the descriptor the listing itself holds open.
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count().saturating_sub(1) as f64);
    let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|stat| {
        stat.lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|secs| secs.trim().parse::<f64>().ok())
    });
    let start_time_seconds = boot_time
        .zip(ticks(19))
        .map(|(boot, start)| boot + start / USER_HZ);
    Process {
        cpu_seconds,
        resident_bytes,
        open_fds,
        start_time_seconds,
    }
}
