//! The catalog: every metric the toolkit emits, described once. The
//! reference page `docs/metrics.md` and the help text of the exposition are
//! rendered from it, and tests hold the exposition of a running app to it.

use std::fmt::Write as _;

/// The Prometheus type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets (never a summary: buckets aggregate across
    /// instances).
    Histogram,
}

impl Kind {
    /// The name in the exposition's `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One metric of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// The name, as exposed.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its unit (`seconds`, `requests`, `1`).
    pub unit: &'static str,
    /// Its label names.
    pub labels: &'static [&'static str],
    /// What it measures (the exposition's help text).
    pub help: &'static str,
    /// What an SRE does when it moves.
    pub action: &'static str,
}

/// The request duration histogram: the R and E of RED (rate and errors are
/// its count by status), and the D.
pub const HTTP_SERVER_REQUEST_DURATION: MetricDef = MetricDef {
    name: "http_server_request_duration_seconds",
    kind: Kind::Histogram,
    unit: "seconds",
    labels: &[
        "http_request_method",
        "http_route",
        "http_response_status_code",
    ],
    help: "Duration of HTTP requests, from when the service receives the request to its response (to the end of the body when the body streams), by method, route template and status; a request dropped unanswered (the client gave up, or the shutdown deadline cut it) has status 499.",
    action: "Rate of 5xx by route rising: check the route's dependencies and recent deploys, roll back a suspect change. p99 rising: look for saturation (active requests, runtime lag) or a slow dependency.",
};

/// Requests being served.
pub const HTTP_SERVER_ACTIVE_REQUESTS: MetricDef = MetricDef {
    name: "http_server_active_requests",
    kind: Kind::Gauge,
    unit: "requests",
    labels: &["http_request_method", "http_route"],
    help: "HTTP requests being served now, by method and route template: from the request's arrival to its response, or to the end of its body when the body streams (a download, server-sent events).",
    action: "Near http.concurrency_limit: the service sheds load (503 OVERLOADED); scale out or find what got slower.",
};

/// What is running.
pub const BUILD_INFO: MetricDef = MetricDef {
    name: "build_info",
    kind: Kind::Gauge,
    unit: "1",
    labels: &["service", "version", "git_sha"],
    help: "Always 1; its labels say which build is running.",
    action: "Join on it to see which version served a spike; two versions at once means a rollout is in progress.",
};

/// CPU time of the process.
pub const PROCESS_CPU_SECONDS_TOTAL: MetricDef = MetricDef {
    name: "process_cpu_seconds_total",
    kind: Kind::Counter,
    unit: "seconds",
    labels: &[],
    help: "User and system CPU time spent by the process (Linux), read at each scrape.",
    action: "Its rate near the CPU limit of the container: the service is CPU-bound; profile it or give it more CPU.",
};

/// Resident memory.
pub const PROCESS_RESIDENT_MEMORY_BYTES: MetricDef = MetricDef {
    name: "process_resident_memory_bytes",
    kind: Kind::Gauge,
    unit: "bytes",
    labels: &[],
    help: "Resident memory of the process (Linux).",
    action: "Growing without bound: a leak; near the memory limit: an OOM kill is coming; take a heap profile.",
};

/// Open file descriptors.
pub const PROCESS_OPEN_FDS: MetricDef = MetricDef {
    name: "process_open_fds",
    kind: Kind::Gauge,
    unit: "1",
    labels: &[],
    help: "File descriptors the process has open (Linux).",
    action: "Near the limit (ulimit -n): connections or files leak; new connections will fail.",
};

/// When the process started.
pub const PROCESS_START_TIME_SECONDS: MetricDef = MetricDef {
    name: "process_start_time_seconds",
    kind: Kind::Gauge,
    unit: "seconds",
    labels: &[],
    help: "Start time of the process since the Unix epoch (Linux).",
    action: "Changing often: the process restarts (crashes, OOM kills, failing liveness probes).",
};

/// Tokio worker threads.
pub const TOKIO_WORKERS: MetricDef = MetricDef {
    name: "tokio_workers",
    kind: Kind::Gauge,
    unit: "1",
    labels: &[],
    help: "Worker threads of the Tokio runtime.",
    action: "Below the CPUs available: the runtime is configured smaller than the machine.",
};

/// Tokio alive tasks.
pub const TOKIO_ALIVE_TASKS: MetricDef = MetricDef {
    name: "tokio_alive_tasks",
    kind: Kind::Gauge,
    unit: "1",
    labels: &[],
    help: "Tasks alive in the Tokio runtime.",
    action: "Growing without bound: tasks are spawned and never end (a leak).",
};

/// Tokio global queue.
pub const TOKIO_GLOBAL_QUEUE_DEPTH: MetricDef = MetricDef {
    name: "tokio_global_queue_depth",
    kind: Kind::Gauge,
    unit: "1",
    labels: &[],
    help: "Tasks waiting in the Tokio runtime's global queue.",
    action: "Staying above zero: the workers cannot keep up; look at scheduling lag and CPU.",
};

/// How late the runtime wakes a timer.
pub const TOKIO_SCHEDULING_LAG: MetricDef = MetricDef {
    name: "tokio_scheduling_lag_seconds",
    kind: Kind::Histogram,
    unit: "seconds",
    labels: &[],
    help: "How late a 100 ms timer is woken, beyond the timer's 1 ms resolution: time the async workers were too busy (or blocked) to run it. An idle runtime can still read up to about 1 ms (its timer rounds twice).",
    action: "p99 above a few milliseconds: a handler blocks the async workers; move CPU-bound or blocking work to Ops::blocking().",
};

/// Connections of a pool, by state.
pub const DB_CLIENT_CONNECTION_COUNT: MetricDef = MetricDef {
    name: "db_client_connection_count",
    kind: Kind::Gauge,
    unit: "connections",
    labels: &["pool_name", "state"],
    help: "Connections of a pool, by state (`used`, `idle`), read at collection.",
    action: "`used` at db_client_connection_max: requests wait for a connection; raise the pool size or find the slow queries holding them.",
};

/// The most connections a pool opens.
pub const DB_CLIENT_CONNECTION_MAX: MetricDef = MetricDef {
    name: "db_client_connection_max",
    kind: Kind::Gauge,
    unit: "connections",
    labels: &["pool_name"],
    help: "The most connections a pool opens.",
    action: "Compare with db_client_connection_count{state=\"used\"} for saturation.",
};

/// How long callers wait for a pooled connection.
pub const DB_CLIENT_CONNECTION_WAIT_TIME: MetricDef = MetricDef {
    name: "db_client_connection_wait_time_seconds",
    kind: Kind::Histogram,
    unit: "seconds",
    labels: &["pool_name"],
    help: "Time callers waited to acquire a connection from a pool (acquires made through Metrics::pool_wait).",
    action: "p99 rising while db_client_connection_count{state=\"used\"} sits at db_client_connection_max: the pool is exhausted; raise its size or find the queries holding connections.",
};

/// Feature-flag evaluations.
pub const FEATURE_FLAG_EVALUATIONS: MetricDef = MetricDef {
    name: "feature_flag_evaluations_total",
    kind: Kind::Counter,
    unit: "evaluations",
    labels: &["flag", "variant", "reason"],
    help: "Feature-flag evaluations by flag, variant served and reason (STATIC, DEFAULT, TARGETING_MATCH, SPLIT, DISABLED, ERROR); unknown keys count as flag `_unknown`.",
    action: "reason=\"ERROR\" rising: code asks for a flag that is missing or of another type (a typo, a deleted flag); after a kill or rollback, check the variant mix moved as intended.",
};

/// How long blocking jobs wait for a slot.
pub const BLOCKING_QUEUE_WAIT: MetricDef = MetricDef {
    name: "blocking_queue_wait_seconds",
    kind: Kind::Histogram,
    unit: "seconds",
    labels: &[],
    help: "Time blocking jobs (Ops::blocking) waited for a free slot.",
    action: "Rising: more blocking work than telemetry.blocking.max_concurrency allows; raise it (CPU permitting) or make the work cheaper.",
};

/// How long blocking jobs run.
pub const BLOCKING_RUN: MetricDef = MetricDef {
    name: "blocking_run_seconds",
    kind: Kind::Histogram,
    unit: "seconds",
    labels: &[],
    help: "Time blocking jobs (Ops::blocking) ran on the blocking threads.",
    action: "Rising: the blocking work itself got slower (bigger inputs, a slower library, CPU contention).",
};

/// Every metric the toolkit emits today.
pub const CATALOG: &[MetricDef] = &[
    HTTP_SERVER_REQUEST_DURATION,
    HTTP_SERVER_ACTIVE_REQUESTS,
    BUILD_INFO,
    PROCESS_CPU_SECONDS_TOTAL,
    PROCESS_RESIDENT_MEMORY_BYTES,
    PROCESS_OPEN_FDS,
    PROCESS_START_TIME_SECONDS,
    TOKIO_WORKERS,
    TOKIO_ALIVE_TASKS,
    TOKIO_GLOBAL_QUEUE_DEPTH,
    TOKIO_SCHEDULING_LAG,
    DB_CLIENT_CONNECTION_COUNT,
    DB_CLIENT_CONNECTION_MAX,
    DB_CLIENT_CONNECTION_WAIT_TIME,
    FEATURE_FLAG_EVALUATIONS,
    BLOCKING_QUEUE_WAIT,
    BLOCKING_RUN,
];

/// Looks a metric up by name.
pub fn find(name: &str) -> Option<&'static MetricDef> {
    CATALOG.iter().find(|def| def.name == name)
}

/// Renders the reference page of `metrics`.
pub fn render_markdown(metrics: &[MetricDef]) -> String {
    let mut page = String::from(
        "<!-- Generated by opsready_metrics::catalog::render_markdown. Do not edit by hand:\n     \
         OPSREADY_BLESS=1 cargo test -p opsready-metrics --test catalog -->\n\n\
         # Metrics reference\n\n\
         Every metric opsready exposes on `GET /metrics` (admin listener), in the\n\
         Prometheus text format 0.0.4, or OpenMetrics 1.0.0 with exemplars when the\n\
         scraper asks for it. Durations are histograms with explicit buckets,\n\
         never summaries, so they aggregate across instances.\n\n\
         | name | type | unit | labels | what it measures | when it moves |\n\
         |---|---|---|---|---|---|\n",
    );
    for def in metrics {
        let labels = def
            .labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ");
        // Writing into a String cannot fail.
        let _ = writeln!(
            page,
            "| `{}` | {} | {} | {} | {} | {} |",
            def.name,
            def.kind.as_str(),
            def.unit,
            labels,
            def.help,
            def.action
        );
    }
    page.push_str(PROMQL);
    page
}

const PROMQL: &str = r#"
## PromQL for the common questions

Rate of 5xx answers by route, per second:

```promql
sum by (http_route) (rate(http_server_request_duration_seconds_count{http_response_status_code=~"5.."}[5m]))
```

Share of answered requests that failed (the error ratio an SLO is
written on; requests the clients gave up on, status 499, had no answer
and are counted apart, below):

```promql
sum(rate(http_server_request_duration_seconds_count{http_response_status_code=~"5.."}[5m]))
/ sum(rate(http_server_request_duration_seconds_count{http_response_status_code!="499"}[5m]))
```

p99 latency by route:

```promql
histogram_quantile(0.99, sum by (http_route, le) (rate(http_server_request_duration_seconds_bucket[5m])))
```

Requests the clients gave up on (dropped unanswered, recorded as status
499), by route: rising with p99, a slow dependency or saturation is
making callers time out.

```promql
sum by (http_route) (rate(http_server_request_duration_seconds_count{http_response_status_code="499"}[5m]))
```

Saturation: requests in flight per instance (a streamed response until
its body ends), against `http.concurrency_limit`:

```promql
sum by (instance) (http_server_active_requests)
```

Load shed or timed out (503), per instance:

```promql
sum by (instance) (rate(http_server_request_duration_seconds_count{http_response_status_code="503"}[5m]))
```

A handler blocking the async workers (p99 scheduling lag):

```promql
histogram_quantile(0.99, sum by (le) (rate(tokio_scheduling_lag_seconds_bucket[5m])))
```

Which build served it:

```promql
build_info
```

## Exemplars: from a slow bucket to its trace

When the scraper sends `Accept: application/openmetrics-text` (Prometheus
does by default), `/metrics` answers in OpenMetrics 1.0.0 and each
`http_server_request_duration_seconds_bucket` line carries the trace of a
recent request that landed in it:

```text
http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/hello/{name}",http_response_status_code="200",le="0.25"} 7 # {trace_id="0af7651916cd43dd8448eb211c80319c"} 0.131 1763942400.123
```

Prometheus keeps them with `--enable-feature=exemplar-storage`; Grafana then
shows them as dots on a latency panel that link to the trace. Only sampled
traces are used, one exemplar per bucket and series: the first request
to land there, then every 16th, so a recent one without a lock taken per
request; a rare bucket (the slow requests) gets its first at once.

The exporter underneath (`metrics-exporter-prometheus`) writes only the 0.0.4
format and knows nothing of exemplars; opsready rewrites its output as
OpenMetrics (counter families without `_total`, `# EOF`) and adds the
exemplars it keeps per bucket itself.

## Connection pools

`Metrics::watch_sqlx_pool(name, pool)` (feature `sqlx`) or
`Metrics::watch_pool(name, read)` report used, idle and maximum connections.
The time to acquire one is measured where the connection is acquired:

```rust,ignore
let wait = metrics.pool_wait("primary");
let mut connection = wait.acquire(&pool).await?; // recorded, even when it fails
```
"#;
