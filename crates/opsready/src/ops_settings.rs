//! [`OpsSettings`]: the sections opsready reads (`server`, `admin`,
//! `shutdown`, `http`), and [`Settings`], those beside a service's own.

use std::net::SocketAddr;
use std::ops::Deref;

use opsready_settings::{
    ByteSize, CommandLine, Dump, Duration, LoadError, Loader, Secret, Validate, Violations,
};
use opsready_telemetry::TelemetrySettings;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The sections opsready reads from a service's settings.
///
/// | key | default | what |
/// |---|---|---|
/// | `server.addr` | `127.0.0.1:8080` | the main listener; loopback by default, so set `0.0.0.0:8080` in a container |
/// | `admin.addr` | `127.0.0.1:9091` | the admin listener; empty to mount `/admin` (and `/metrics`, without a token) on the main listener |
/// | `admin.token` | none | the bearer token of `/admin/config` and other sensitive admin routes; without it they answer 404 |
/// | `shutdown.drain_delay` | `5s` | how long a draining service keeps serving new requests, so load balancers notice it is not ready |
/// | `shutdown.deadline` | `30s` | the time from the signal to exit; the pod's grace period must cover the `preStop` sleep plus this plus the last telemetry: 5 s for spans, 10 s with `telemetry.otlp.logs`, 2 s more with Sentry |
/// | `http.request_timeout` | `20s` | a handler running longer answers 503 `HANDLER_TIMEOUT`; plus `shutdown.drain_delay`, keep it under `shutdown.deadline` |
/// | `http.body_limit` | `2MiB` | a larger request body answers 413 |
/// | `http.concurrency_limit` | `1024` | requests in flight beyond this answer 503 `OVERLOADED` at once |
/// | `http.problem_type_base` | `https://opsready.dev/problems/` | where problem `type` URIs point: the service's own error documentation |
/// | `telemetry.*` | | logs and tracing: see [`TelemetrySettings`] |
/// | `metrics.latency_buckets` | 5 ms … 10 s | request-duration bucket bounds in seconds |
/// | `metrics.measure_probes` | `false` | whether probes and `/metrics` are in the request metrics |
/// | `health.show_output` | `true` | whether the probes show a failing check's `output` |
/// | `flags.store` | `file://./data/flags.json` | where feature flags live: `memory:`, `file://PATH` (JSON or TOML), `postgres://…` |
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OpsSettings {
    /// The main listener.
    pub server: ServerSettings,
    /// The admin listener and its token.
    pub admin: AdminSettings,
    /// Graceful shutdown.
    pub shutdown: ShutdownSettings,
    /// Limits of the main listener's application routes.
    pub http: HttpSettings,
    /// Logs, request tracing and blocking work.
    pub telemetry: TelemetrySettings,
    /// Metrics.
    pub metrics: MetricsSettings,
    /// The probes.
    pub health: HealthSettings,
    /// Feature flags.
    pub flags: FlagsSettings,
}

/// `health.*`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HealthSettings {
    /// Whether `/readyz` and `/readyz/{check}` show a failing or warning
    /// check's `output`. A driver's error message can name hosts, ports
    /// and users, and the probes answer whoever reaches the main listener:
    /// turn it off where that is the internet. The log says why all the
    /// same (a check whose status changes is logged with its output).
    pub show_output: bool,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self { show_output: true }
    }
}

/// `flags.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct FlagsSettings {
    /// Where flag definitions and their history live: `memory:` (lost at
    /// exit), `file://PATH` (`.json` or `.toml`; a relative path is relative
    /// to the working directory) or `postgres://…` (a fleet; needs the
    /// `flags-postgres` feature). Secret, since a database URL may hold a
    /// password. Defaults to `file://./data/flags.json`.
    pub store: Secret<String>,
}

impl Default for FlagsSettings {
    fn default() -> Self {
        Self {
            store: Secret::new(DEFAULT_FLAG_STORE.to_owned()),
        }
    }
}

impl PartialEq for FlagsSettings {
    fn eq(&self, other: &Self) -> bool {
        self.store.expose_secret() == other.store.expose_secret()
    }
}

/// Where flags live unless `flags.store` says otherwise.
pub const DEFAULT_FLAG_STORE: &str = "file://./data/flags.json";

/// `metrics.*`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MetricsSettings {
    /// Upper bounds, in seconds, of the request-duration buckets. Put one at
    /// each latency objective, so the share of requests under it is exact.
    /// Defaults to OpenTelemetry's recommended 5 ms … 10 s. The toolkit's
    /// other histograms (scheduling lag, pool and blocking-job waits) keep
    /// buckets of their own.
    pub latency_buckets: Vec<f64>,
    /// Whether requests to the probes (`/livez`, `/readyz`,
    /// `/readyz/{check}`, `/startupz`) and to `/metrics` are in the request
    /// metrics. Off by default: many, regular, and saying nothing a
    /// dashboard does not, they would dilute its rates and latencies.
    pub measure_probes: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            latency_buckets: opsready_metrics::DEFAULT_BUCKETS.to_vec(),
            measure_probes: false,
        }
    }
}

/// `server.*`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ServerSettings {
    /// Where the main listener binds. Defaults to `127.0.0.1:8080`.
    pub addr: SocketAddr,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

/// `admin.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AdminSettings {
    /// Where the admin listener binds; `None` (an empty value) mounts the
    /// admin routes under `/admin` on the main listener. Defaults to
    /// `127.0.0.1:9091`.
    pub addr: Option<SocketAddr>,
    /// The bearer token that sensitive admin routes require. Without one they
    /// are disabled (404), never open. Defaults to none.
    pub token: Option<Secret<String>>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            addr: Some(SocketAddr::from(([127, 0, 0, 1], 9091))),
            token: None,
        }
    }
}

impl PartialEq for AdminSettings {
    fn eq(&self, other: &Self) -> bool {
        let token = |s: &Self| s.token.as_ref().map(|t| t.expose_secret().clone());
        self.addr == other.addr && token(self) == token(other)
    }
}

/// `shutdown.*`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ShutdownSettings {
    /// How long a draining service goes on serving new requests after the
    /// signal, while its readiness is already 503. Match it with the
    /// `preStop` sleep of the pod. Defaults to 5 s.
    pub drain_delay: Duration,
    /// The time from the signal to exit; the server stops waiting for
    /// requests still running then. Defaults to 30 s. The kubelet's grace
    /// period also counts the `preStop` sleep: set
    /// `terminationGracePeriodSeconds` to at least the `preStop` sleep plus
    /// this deadline plus what `serve` may take after it to send the last
    /// telemetry: 5 s for the spans, 5 s more for log records with
    /// `telemetry.otlp.logs`, 2 s more for Sentry's last events.
    pub deadline: Duration,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self {
            drain_delay: Duration::from_secs(5),
            deadline: Duration::from_secs(30),
        }
    }
}

/// `http.*`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HttpSettings {
    /// How long a handler may run before the answer is 503
    /// `HANDLER_TIMEOUT`. Defaults to 20 s. Keep it, plus
    /// [`ShutdownSettings::drain_delay`], under
    /// [`ShutdownSettings::deadline`]: a request accepted at the end of the
    /// drain is then answered, by its handler or with the 503, before the
    /// deadline cuts it off. `serve` warns at start when it is not.
    pub request_timeout: Duration,
    /// The largest request body extractors accept. Defaults to 2 MiB.
    pub body_limit: ByteSize,
    /// Requests in flight beyond this are answered 503 `OVERLOADED` at once
    /// rather than queued. Defaults to 1024.
    pub concurrency_limit: usize,
    /// The base of every problem's `type` URI, to which the code's slug is
    /// appended (`…/email-taken`): the page where the service documents its
    /// errors. A status the catalog does not name (`CLIENT_ERROR`,
    /// `SERVER_ERROR`) is `about:blank` instead. Defaults to
    /// `https://opsready.dev/problems/`.
    pub problem_type_base: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(20),
            body_limit: ByteSize::mib(2),
            concurrency_limit: 1024,
            problem_type_base: opsready_problem::problem::DEFAULT_TYPE_BASE.to_owned(),
        }
    }
}

/// The largest `http.concurrency_limit` accepted: far above what one
/// process serves, so that a larger value reads as the typo it likely is.
pub const MAX_CONCURRENCY: usize = 1_000_000;

/// The shortest admin token accepted: a guessable token is worse than none.
pub const MIN_TOKEN_LEN: usize = 16;

impl Validate for OpsSettings {
    fn validate(&self, v: &mut Violations) {
        if self.shutdown.drain_delay >= self.shutdown.deadline {
            v.add(
                "shutdown.drain_delay",
                format!(
                    "must be shorter than shutdown.deadline ({}), or in-flight requests get no time to finish",
                    self.shutdown.deadline
                ),
            );
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.http.concurrency_limit) {
            v.add(
                "http.concurrency_limit",
                format!("must be between 1 and {MAX_CONCURRENCY}"),
            );
        }
        let base = &self.http.problem_type_base;
        if !(base.starts_with("https://") || base.starts_with("http://"))
            || !base.ends_with('/')
            || base.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            v.add(
                "http.problem_type_base",
                "must be an http:// or https:// URL ending with `/`, such as `https://docs.example.com/problems/`: the code's slug is appended to it",
            );
        }
        if self.http.request_timeout == Duration::ZERO {
            v.add("http.request_timeout", "must be longer than 0s");
        }
        if let Some(token) = &self.admin.token {
            let token = token.expose_secret();
            if token.chars().count() < MIN_TOKEN_LEN {
                v.add(
                    "admin.token",
                    format!("must be at least {MIN_TOKEN_LEN} characters"),
                );
            } else if !token.chars().all(|c| c.is_ascii_graphic()) {
                // A header carries no other, so no request could ever
                // match: most often a secret file's final newline.
                v.add(
                    "admin.token",
                    "must hold only visible ASCII characters, without spaces, \
                     line breaks or accents (a secret file's final newline?): remove them",
                );
            }
        }
        v.nested("telemetry", &self.telemetry);
        let buckets = &self.metrics.latency_buckets;
        let increasing = buckets.windows(2).all(|pair| pair[0] < pair[1]);
        let positive = buckets.iter().all(|b| b.is_finite() && *b > 0.0);
        if buckets.is_empty() || !increasing || !positive {
            v.add(
                "metrics.latency_buckets",
                "must be positive seconds in increasing order, as in `0.05,0.1,0.25,0.5,1`",
            );
        }
        // As `opsready_flags::open` reads it, so that `--check-config`
        // refuses what the start would (exit 78, not 1).
        let store = self.flags.store.expose_secret();
        let postgres = store.starts_with("postgres://") || store.starts_with("postgresql://");
        let file = store.strip_prefix("file://");
        let local = store == "memory:" || file.is_some_and(|path| !path.is_empty());
        // The file's extension says its format.
        let formatted = file.is_none_or(|path| {
            std::path::Path::new(path)
                .extension()
                .is_some_and(|extension| {
                    extension.eq_ignore_ascii_case("json") || extension.eq_ignore_ascii_case("toml")
                })
        });
        if local && !formatted {
            v.add(
                "flags.store",
                "is a file without a `.json` or `.toml` extension, which says its format: e.g. `file://./data/flags.json`",
            );
        } else if postgres && !cfg!(feature = "flags-postgres") {
            v.add(
                "flags.store",
                "is a postgres:// store, but this binary was built without the `flags-postgres` feature of opsready",
            );
        } else if !postgres && !local {
            v.add(
                "flags.store",
                "must be `memory:`, `file://PATH` (e.g. `file://./data/flags.json`) or `postgres://…`",
            );
        }
        // One port on two addresses that overlap (one of them 0.0.0.0 or
        // `::`) cannot be bound twice either.
        let overlaps = |a: SocketAddr, b: SocketAddr| {
            a.port() == b.port()
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        };
        if self.server.addr.port() != 0
            && self
                .admin
                .addr
                .is_some_and(|admin| overlaps(admin, self.server.addr))
        {
            v.add(
                "admin.addr",
                "must differ from server.addr; leave it empty to mount /admin on the main listener",
            );
        }
    }
}

/// A service's settings beside opsready's, loaded from one namespace:
/// `PREFIX__SERVER__ADDR` sets `ops.server.addr` and `PREFIX__DATABASE__URL`
/// the service's `database.url`. Dereferences to the service's settings.
///
/// The top-level names of [`OpsSettings`] (`server`, `admin`, `shutdown`,
/// `http`, and those later opsready crates add) belong to opsready: keep
/// the service's own sections under other names.
#[derive(Debug, Clone)]
pub struct Settings<T> {
    /// opsready's sections.
    pub ops: OpsSettings,
    /// The service's own settings.
    pub app: T,
    dump: Dump,
    environment: String,
}

impl<T> Settings<T> {
    /// The redacted effective settings of both, with origins: what
    /// `/admin/config` serves.
    pub fn dump(&self) -> &Dump {
        &self.dump
    }

    /// The environment the settings were loaded for.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// Settings with defaults for opsready's sections and `app` as the
    /// service's, with an empty dump: for tests that build a service without
    /// loading.
    pub fn from_parts(ops: OpsSettings, app: T) -> Self {
        Self {
            ops,
            app,
            dump: Dump::default(),
            environment: "test".to_owned(),
        }
    }
}

impl<T> Deref for Settings<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.app
    }
}

/// Loads opsready's and the service's settings with `loader`.
pub fn load<T>(loader: &Loader) -> Result<Settings<T>, LoadError>
where
    T: DeserializeOwned + Serialize + Validate,
{
    loader.load_with::<OpsSettings, T>().map(into_settings)
}

/// Loads opsready's and the service's settings for `prefix` from
/// `config/`, the environment and the command line: the one call a `main`
/// needs. Handles `--set`, `--print-config` and `--check-config`; exits 78
/// naming every bad key on bad settings.
pub fn settings<T>(prefix: &str) -> Settings<T>
where
    T: DeserializeOwned + Serialize + Validate,
{
    let loaded =
        Loader::new(prefix).load_with_or_exit::<OpsSettings, T>(&CommandLine::from_args_or_exit());
    into_settings(loaded)
}

fn into_settings<T>(loaded: opsready_settings::Loaded<(OpsSettings, T)>) -> Settings<T> {
    let environment = loaded.environment().to_owned();
    let ((ops, app), dump) = loaded.into_parts();
    Settings {
        ops,
        app,
        dump,
        environment,
    }
}
