//! [`Ops`]: composes the layers and routers around a service's router and
//! serves it with the lifecycle; [`Server`]: a bound service, ready to run.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use futures_util::future::BoxFuture;
use opsready_flags::{Flag, Flags};
use opsready_health::{Component, Health, Lifecycle};
use opsready_metrics::{Metrics, MetricsLayer};
use opsready_problem::ProblemLayer;
use opsready_problem::guard::GuardLayer;
use opsready_problem::limit::ConcurrencyLimitLayer;
use opsready_problem::timeout::TimeoutLayer;
use opsready_settings::{Dump, Validate as _, Violations};
use opsready_telemetry::{Blocking, ServiceInfo, TelemetryLayer};
use opsready_vocab::{is_quiet, redact_secrets};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceBuilder;

use crate::admin::{self, AdminState};
use crate::{BuildInfo, OpsSettings, Settings};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Hook = Box<dyn FnOnce() -> BoxFuture<'static, Result<(), BoxError>> + Send>;

/// Everything production asks of an axum service, around its router.
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use opsready::Ops;
/// # #[derive(serde::Deserialize, serde::Serialize)] struct AppSettings {}
/// # impl opsready::settings::Validate for AppSettings {}
///
/// #[tokio::main]
/// async fn main() -> Result<(), opsready::ServeError> {
///     let settings = opsready::settings::<AppSettings>("MINIMAL");
///     let app = Router::new().route("/hello", get(|| async { "hello" }));
///     Ops::new(&settings)
///         .build_info(opsready::build_info!())
///         .serve(app)
///         .await
/// }
/// ```
///
/// # What it adds
///
/// - On the main listener (`server.addr`): the probes of
///   [`opsready_health`] (`/livez`, `/readyz`, `/startupz`), the service's
///   routes with a body limit, a concurrency limit that sheds load (503
///   `OVERLOADED`) and a timeout (503 `HANDLER_TIMEOUT`); around everything a
///   panic catcher, request ids (`x-request-id`, kept when sane, else a
///   UUIDv7) and the problem envelope for every error.
/// - On the admin listener (`admin.addr`, or under `/admin` on the main
///   listener): `/metrics`, `/admin/info` and, behind `admin.token`,
///   `/admin/config` and the flags API (`/admin/flags…`, once
///   [`Ops::open_flags`] ran).
/// - The lifecycle: starting (startup hooks run; not ready) → ready →
///   draining on SIGTERM or Ctrl-C (not ready at once, still serving for
///   `shutdown.drain_delay`, unless the signal came before ready) → stopped (listeners closed, in-flight requests
///   finished), all within `shutdown.deadline`: past it, the process exits
///   with status [`DEADLINE_EXIT_CODE`]. A second signal exits at once.
///
/// # Gotchas
///
/// - The probes, `/metrics` and the admin routes are outside the
///   concurrency limit, so an overloaded service still answers its probes
///   and its operators. The timeout skips the probes and `/metrics` only:
///   an admin request waiting on a hung flag store gets its 503.
/// - Give the service's router its state before handing it over
///   (`Router<()>`).
pub struct Ops {
    settings: OpsSettings,
    dump: Arc<Dump>,
    health: Health,
    hooks: Vec<Hook>,
    info: BuildInfo,
    #[cfg_attr(not(feature = "sentry"), allow(dead_code))]
    environment: String,
    /// One pool for the whole service, so its bound holds across handlers.
    blocking: Blocking,
    metrics: Metrics,
    flags: Option<Flags>,
}

impl fmt::Debug for Ops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ops")
            .field("settings", &self.settings)
            .field("health", &self.health)
            .field("hooks", &self.hooks.len())
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Ops {
    /// Ops for loaded settings, whose dump `/admin/config` serves.
    pub fn new<T>(settings: &Settings<T>) -> Self {
        let metrics = Metrics::with_buckets(&settings.ops.metrics.latency_buckets);
        Self {
            settings: settings.ops.clone(),
            dump: Arc::new(settings.dump().clone()),
            health: Health::new().show_output(settings.ops.health.show_output),
            hooks: Vec::new(),
            info: BuildInfo::default(),
            environment: settings.environment().to_owned(),
            blocking: Blocking::from_settings(&settings.ops.telemetry.blocking).with_observer({
                let metrics = metrics.clone();
                move |queue_wait, run_time| metrics.record_blocking(queue_wait, run_time)
            }),
            metrics,
            flags: None,
        }
    }

    /// Opens the flag store of `flags.store`, creates the flags `declared`
    /// in code that it lacks (never overwriting a stored one), follows the
    /// store's changes, counts evaluations in the metrics, and mounts the
    /// flags admin API (`/admin/flags`, behind `admin.token`). Returns the
    /// handle handlers evaluate with.
    ///
    /// ```no_run
    /// # async fn run(settings: opsready::Settings<()>) -> Result<(), opsready::ServeError> {
    /// use opsready::Ops;
    /// use opsready::flags::{EvaluationContext, Flag};
    ///
    /// let mut ops = Ops::new(&settings);
    /// let flags = ops
    ///     .open_flags([Flag::boolean("greeting.shout").description("uppercase the greeting")])
    ///     .await?;
    /// let shout = flags.bool_value("greeting.shout", &EvaluationContext::new(), false);
    /// # let _ = shout;
    /// # Ok(()) }
    /// ```
    pub async fn open_flags(
        &mut self,
        declared: impl IntoIterator<Item = Flag>,
    ) -> Result<Flags, ServeError> {
        let location = self.settings.flags.store.expose_secret();
        let store = opsready_flags::open(location)
            .await
            .map_err(|error| ServeError::flags("flags.store", error))?;
        let flags = Flags::new(store)
            .await
            .map_err(|error| ServeError::flags("flags.store", error))?;
        flags
            .declare(declared)
            .await
            .map_err(|error| ServeError::flags("declared flags", error))?;
        tokio::spawn(flags.follow());
        let counts = flags.clone();
        self.metrics.watch_counters(
            &opsready_metrics::catalog::FEATURE_FLAG_EVALUATIONS,
            move || {
                counts
                    .evaluation_counts()
                    .into_iter()
                    .map(|count| {
                        let variant = count.variant.as_deref().unwrap_or("").to_owned();
                        (
                            vec![
                                count.flag.to_string(),
                                variant,
                                count.reason.as_str().to_owned(),
                            ],
                            count.count,
                        )
                    })
                    .collect()
            },
        );
        self.flags = Some(flags.clone());
        Ok(flags)
    }

    /// The flags opened by [`Ops::open_flags`], if it was called.
    pub fn flags(&self) -> Option<&Flags> {
        self.flags.as_ref()
    }

    /// Adds a readiness check.
    pub fn check(mut self, component: Component) -> Self {
        self.health = self.health.component(component);
        self
    }

    /// Adds a startup hook (warming a cache, running migrations). Hooks run
    /// in order once the listeners are bound; `/startupz` and `/readyz` say
    /// 503 until all have finished. An error stops the service.
    ///
    /// A shutdown signal while the hooks run (a rollout superseded during
    /// a migration) stops them: the running hook's future is dropped at its
    /// current wait, and the later hooks do not run. Make each hook safe to
    /// stop at any wait and to run again: a migration in a transaction, a
    /// backfill that resumes.
    pub fn on_startup<F, Fut, E>(mut self, hook: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.hooks.push(Box::new(move || {
            Box::pin(async move { hook().await.map_err(Into::into) })
        }));
        self
    }

    /// What `/admin/info` reports; pass [`build_info!()`](crate::build_info).
    /// Defaults to the executable's name.
    pub fn build_info(mut self, info: BuildInfo) -> Self {
        // The `build_info` gauge is set when the router is made: a second
        // call must not leave the first one's series at 1.
        self.info = info;
        self
    }

    /// The checks and lifecycle the probes report.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The lifecycle shared by the probes and the server.
    pub fn lifecycle(&self) -> &Lifecycle {
        self.health.lifecycle()
    }

    /// The admin routes with their outer layers, for the admin listener.
    fn admin_router(&self) -> Router {
        admin::router(AdminState {
            token: self.settings.admin.token.clone(),
            dump: Arc::clone(&self.dump),
            info: Arc::new(self.info.clone()),
            metrics: self.metrics.clone(),
            flags: self.flags.clone(),
        })
    }

    /// The service's metrics: the RED metrics of every request and
    /// `build_info`, served on `/metrics` of the admin listener.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The main listener's router: probes, the service's routes with their
    /// limits, and `/admin` too when there is no admin listener, inside the
    /// layers every answer goes through. Useful for in-process tests with
    /// `oneshot`.
    ///
    /// # Reserved paths
    ///
    /// `/livez`, `/readyz`, `/readyz/{check}` and `/startupz` are the
    /// probes', and with `admin.addr` empty `/metrics` and `/admin/…` too.
    /// Those paths exactly (`opsready_vocab::is_quiet`) are quiet: no
    /// timeout, no load shedding, not in the request metrics unless
    /// `metrics.measure_probes`, not traced unless
    /// `telemetry.trace_probes`. A service's own routes below them
    /// (`/metrics/dashboards`) are served like any other.
    ///
    /// # Panics
    ///
    /// When `app` has a route at one of the reserved paths: axum refuses
    /// to merge routers with a route in common, at start, before anything
    /// is served ([`Ops::bind`] and [`Ops::serve`] call this).
    pub fn router(&self, app: Router) -> Router {
        // Whatever the service said of itself, or the defaults: every
        // service has its `build_info` series, whether it serves this
        // router through `bind` or itself.
        self.metrics
            .set_build_info(&self.info.name, &self.info.version, &self.info.git_sha);
        let mut router = Router::new().merge(self.health.router()).merge(app);
        let unlimited: fn(&str) -> bool = if self.settings.admin.addr.is_none() {
            router = router.merge(self.admin_router());
            |path| is_quiet(path) || is_admin(path)
        } else {
            is_quiet
        };
        self.layered(router, unlimited)
    }

    /// The blocking-work pool sized by `telemetry.blocking.max_concurrency`:
    /// hand a clone to the handlers that hash, parse or call synchronous
    /// libraries.
    pub fn blocking(&self) -> Blocking {
        self.blocking.clone()
    }

    /// The layers every answer of a listener goes through. The concurrency
    /// limit skips the paths `unlimited` accepts: probes and `/metrics`,
    /// and the admin routes, which must answer an operator while the
    /// service is overloaded. The timeout skips probes (whose checks have
    /// timeouts of their own) and `/metrics` (rendered at once) only: an
    /// admin request waiting on a hung flag store is answered with the
    /// timeout's 503 rather than never.
    ///
    /// One `Router::layer` call for the whole stack: axum boxes every route
    /// once per call, and each box costs an allocation and a clone of the
    /// stack per request.
    ///
    /// No fallback is set here: a service's own fallback stays in charge, and
    /// axum's default empty 404 becomes a problem in the problem layer.
    fn layered(&self, router: Router, unlimited: fn(&str) -> bool) -> Router {
        let http = &self.settings.http;
        // The telemetry layer times each request for the metrics too: one
        // layer, one clock reading and one route lookup fewer per request.
        // Probes and /metrics are traced and counted as configured.
        let telemetry = TelemetryLayer::new()
            .trace_probes(self.settings.telemetry.trace_probes)
            // Under `Router::layer` the inner service is an axum route, which
            // runs nothing in `call`: the span is entered only around polls.
            .inner_starts_when_polled(true)
            .observe(
                MetricsLayer::new(self.metrics.clone())
                    .exemplars(sampled_trace_id)
                    .measure_probes(self.settings.metrics.measure_probes),
            );
        // The layers inside the telemetry (or Sentry) layer, and the call;
        // a macro, since each combination is a type of its own.
        macro_rules! finish {
            ($stack:expr) => {{
                let stack = $stack
                    // The panic catcher, the timeout and the limit as one
                    // service: one clone and one future per request.
                    .layer(
                        GuardLayer::new()
                            .catch_panics()
                            .timeout(
                                TimeoutLayer::new(http.request_timeout.as_std()).exempt(is_quiet),
                            )
                            .concurrency_limit(
                                ConcurrencyLimitLayer::new(http.concurrency_limit)
                                    .exempt(unlimited),
                            ),
                    );
                // axum limits bodies to 2 MiB unless told otherwise; telling
                // it costs an extension per request, so only a different
                // limit does.
                if http.body_limit.as_usize() == AXUM_BODY_LIMIT {
                    router.layer(stack)
                } else {
                    router.layer(stack.layer(DefaultBodyLimit::max(http.body_limit.as_usize())))
                }
            }};
        }
        // Outermost first.
        let outer = ServiceBuilder::new()
            // The telemetry layer puts both ids on every response.
            .layer(
                ProblemLayer::new()
                    .request_ids(false)
                    .type_base(self.settings.http.problem_type_base.clone()),
            )
            // Inside the problem layer, so problems carry its ids.
            .layer(telemetry);
        // Outside the panic catcher, so a caught panic is seen as its 500;
        // only with a client to send with: `serve` starts it before it
        // binds, as a service binding itself does with `install_telemetry`.
        #[cfg(feature = "sentry")]
        if opsready_telemetry::sentry_started() || self.settings.telemetry.sentry.dsn.is_some() {
            return finish!(outer.layer(opsready_telemetry::SentryLayer));
        }
        finish!(outer)
    }

    /// Warns when a request accepted at the end of the drain can run past
    /// the deadline: it would be cut off unanswered instead of answered
    /// with its timeout's 503. Not a settings error: a service may choose
    /// long requests over a long deadline.
    fn warn_of_cut_requests(&self) {
        let (shutdown, http) = (&self.settings.shutdown, &self.settings.http);
        let last_answer = shutdown.drain_delay.as_std() + http.request_timeout.as_std();
        if last_answer >= shutdown.deadline.as_std() {
            tracing::warn!(
                http.request_timeout = %http.request_timeout,
                shutdown.drain_delay = %shutdown.drain_delay,
                shutdown.deadline = %shutdown.deadline,
                "a request accepted at the end of the drain can outlive the shutdown deadline and be cut off unanswered: \
                 keep http.request_timeout plus shutdown.drain_delay under shutdown.deadline"
            );
        }
    }

    /// Binds the listeners, so that their addresses are known (port 0 works)
    /// and a busy port is an error before anything runs.
    ///
    /// # Errors
    ///
    /// A port that cannot be bound, naming its setting; opsready settings
    /// that break their rules (set in code after loading, or naming a file
    /// removed since: the loader refuses them), naming each key.
    pub async fn bind(self, app: Router) -> Result<Server, ServeError> {
        // The loader checked them; settings set in code since (a token
        // from a secret store, `Settings::from_parts`) were not.
        let mut violations = Violations::new();
        self.settings.validate(&mut violations);
        if !violations.is_empty() {
            return Err(ServeError {
                kind: ErrorKind::Settings(
                    violations
                        .iter()
                        .map(|(key, rule)| format!("{key} {rule}"))
                        .collect(),
                ),
            });
        }
        self.warn_of_cut_requests();
        let main = bind(self.settings.server.addr, "server.addr").await?;
        let admin = match self.settings.admin.addr {
            Some(addr) => Some((
                bind(addr, "admin.addr").await?,
                self.layered(self.admin_router(), |_| true),
            )),
            None => None,
        };
        let router = self.router(app);
        Ok(Server {
            main: (main, router),
            admin,
            lifecycle: self.health.lifecycle().clone(),
            hooks: self.hooks,
            metrics: self.metrics,
            drain_delay: self.settings.shutdown.drain_delay.as_std(),
            deadline: self.settings.shutdown.deadline.as_std(),
        })
    }

    /// Installs the log subscriber of the `telemetry` settings (and the span
    /// exporter of `telemetry.otlp`), binds, and serves until SIGTERM or
    /// Ctrl-C, then drains, stops, and sends the spans still buffered.
    ///
    /// When the process already has a tracing subscriber, that one stays
    /// and a warning on standard error says the `telemetry` settings do not
    /// apply; with `telemetry.otlp.endpoint` set this is an error instead, as
    /// is an exporter that cannot start: no span would be exported.
    ///
    /// When `shutdown.deadline` passes with requests still running, `serve`
    /// does not return: it logs the error, sends the buffered spans and
    /// lines, and exits the process with status
    /// [`DEADLINE_EXIT_CODE`]. Returning would leave the exit to the
    /// runtime's drop at the end of `main`, which waits without a limit for
    /// blocking jobs ([`Ops::blocking`], `spawn_blocking`) still running: a
    /// stuck one would keep the process alive past the deadline until the
    /// supervisor kills it. A service that must run code after a deadline
    /// failure serves with [`Ops::bind`] and [`Server::run_until`], which
    /// return the error instead. When the drain ends in time but jobs of
    /// [`Ops::blocking`] are still running (one whose request
    /// `http.request_timeout` cut off), `serve` returns, and a thread exits
    /// the process with that status if they still run when the deadline
    /// passes: the runtime's drop would wait for them without a limit.
    /// Jobs of `spawn_blocking` itself are not seen.
    pub async fn serve(self, app: Router) -> Result<(), ServeError> {
        let telemetry = self.install_telemetry()?;
        let deadline = self.settings.shutdown.deadline.as_std();
        let blocking = self.blocking.clone();
        // Handlers first: a signal during start-up must drain, not kill.
        let signal = shutdown_signal();
        let signalled = Arc::new(std::sync::OnceLock::new());
        let signal = {
            let signalled = Arc::clone(&signalled);
            async move {
                signal.await;
                let _ = signalled.set(Instant::now());
            }
        };
        let outcome = match self.bind(app).await {
            Ok(server) => server.run_until(signal).await,
            Err(error) => Err(error),
        };
        let past_deadline = match &outcome {
            Err(error) if error.is_deadline() => {
                tracing::error!(%error, "exiting now: the shutdown deadline has passed");
                true
            }
            _ => false,
        };
        telemetry.shutdown().await;
        if past_deadline {
            std::process::exit(DEADLINE_EXIT_CODE);
        }
        // Drained in time; but the runtime's drop at the end of `main`
        // still waits, without a limit, for blocking jobs that outlived
        // their requests (one cut off by `http.request_timeout`), with the
        // signal handlers gone. The deadline still holds for that wait.
        if let Some(at) = signalled.get()
            && blocking.running() > 0
        {
            exit_at_the_deadline(deadline.saturating_sub(at.elapsed()), blocking);
        }
        outcome
    }

    /// Installs what [`Ops::serve`] installs before it binds: the log
    /// subscriber of `telemetry.log`, the span exporter of
    /// `telemetry.otlp` and the Sentry client of `telemetry.sentry`. For a
    /// service that binds itself ([`Ops::bind`], to know its port) and so
    /// does not call `serve`. Keep the guard until the server has stopped,
    /// then [shut it down](TelemetryGuards::shutdown).
    ///
    /// # Errors
    ///
    /// When an OTLP endpoint or a Sentry DSN is configured but cannot start:
    /// missing traces or errors would be discovered at the worst moment. A
    /// subscriber that is already installed is only a warning.
    pub fn install_telemetry(&self) -> Result<TelemetryGuards, ServeError> {
        let service = ServiceInfo::new(&self.info.name, &self.info.version);
        let telemetry = match opsready_telemetry::init(&self.settings.telemetry, &service) {
            Ok(guard) => Some(guard),
            Err(source) if self.settings.telemetry.otlp.endpoint.is_some() => {
                return Err(ServeError {
                    kind: ErrorKind::Telemetry(source),
                });
            }
            Err(error) => {
                eprintln!("warning: {error}");
                None
            }
        };
        #[cfg(feature = "sentry")]
        let sentry = opsready_telemetry::init_sentry(
            &self.settings.telemetry.sentry,
            &self.info.release(),
            &self.environment,
        )
        .map_err(|source| ServeError {
            kind: ErrorKind::Telemetry(source),
        })?;
        Ok(TelemetryGuards {
            telemetry,
            #[cfg(feature = "sentry")]
            _sentry: sentry,
        })
    }
}

/// The log writer, span exporter and Sentry client installed by
/// [`Ops::install_telemetry`]: lines, spans and events still buffered are
/// written and sent at [`TelemetryGuards::shutdown`] (or, less patiently for
/// spans, on drop).
#[must_use = "dropping the guards stops span export and log writing"]
pub struct TelemetryGuards {
    telemetry: Option<opsready_telemetry::TelemetryGuard>,
    #[cfg(feature = "sentry")]
    _sentry: Option<opsready_telemetry::SentryGuard>,
}

impl fmt::Debug for TelemetryGuards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuards")
            .field("logs", &self.telemetry.is_some())
            .finish_non_exhaustive()
    }
}

impl TelemetryGuards {
    /// Sends the spans still buffered (waiting up to 5 s for the collector)
    /// and writes the last log lines; call it once the server has stopped.
    /// Failures are warnings on standard error: the service is exiting.
    pub async fn shutdown(self) {
        let Some(telemetry) = self.telemetry else {
            return;
        };
        // Shutting down blocks while the last spans are sent.
        match tokio::task::spawn_blocking(move || telemetry.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("warning: {error}"),
            Err(error) => eprintln!("warning: telemetry did not shut down: {error}"),
        }
    }
}

async fn bind(addr: SocketAddr, key: &'static str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| ServeError {
        kind: ErrorKind::Bind { addr, key, source },
    })
}

/// A bound service: [`Server::run_until`] serves it.
pub struct Server {
    main: (TcpListener, Router),
    admin: Option<(TcpListener, Router)>,
    lifecycle: Lifecycle,
    hooks: Vec<Hook>,
    metrics: Metrics,
    drain_delay: Duration,
    deadline: Duration,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.local_addr())
            .field("admin_addr", &self.admin_addr())
            .field("lifecycle", &self.lifecycle.phase())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// The main listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        local_addr(&self.main.0)
    }

    /// The admin listener's address, if it has its own.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .as_ref()
            .map(|(listener, _)| local_addr(listener))
    }

    /// The lifecycle of the service.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Serves until SIGTERM or Ctrl-C, then drains and stops.
    pub async fn run(self) -> Result<(), ServeError> {
        let signal = shutdown_signal();
        self.run_until(signal).await
    }

    /// Serves until `shutdown` completes, then drains: readiness turns 503
    /// at once, new requests are still served for the drain delay (none
    /// when `shutdown` completed during the startup hooks or before this
    /// call: never ready, the service was sent no requests to wait for),
    /// then the listeners close
    /// and in-flight requests finish, all within the deadline counted from
    /// `shutdown`.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let (stop, stopped) = watch::channel(false);
        // The scheduling-lag probe, which also collects process and runtime
        // gauges and drains histogram samples every few seconds.
        let upkeep = tokio::spawn(self.metrics.clone().run_probe());
        let _upkeep = AbortOnDrop(upkeep);
        let main_addr = self.local_addr();
        let admin_addr = self.admin_addr();
        let mut tasks = vec![serve_on(self.main, stopped.clone())];
        if let Some(admin) = self.admin {
            tasks.push(serve_on(admin, stopped));
        }
        if let Some(admin) = admin_addr {
            tracing::info!("listening on http://{main_addr}, admin on http://{admin}");
        } else {
            tracing::info!("listening on http://{main_addr}, admin under /admin");
        }

        tokio::pin!(shutdown);
        let mut signalled = false;
        for hook in self.hooks {
            tokio::select! {
                result = hook() => if let Err(source) = result {
                    let _ = stop.send(true);
                    self.lifecycle.set_stopped();
                    let error = ServeError { kind: ErrorKind::Startup(source) };
                    // In the logs too (JSON, OTLP, Sentry), not only on
                    // the standard error `main` prints it to.
                    tracing::error!("{error}");
                    return Err(error);
                },
                () = &mut shutdown => {
                    // Asked to stop while starting: never become ready.
                    signalled = true;
                    break;
                }
            }
        }
        // Asked to stop before the hooks were done, or with none, before
        // the server ran at all: not ready either.
        if !signalled && futures_util::FutureExt::now_or_never(&mut shutdown).is_some() {
            signalled = true;
        }
        if !signalled {
            self.lifecycle.set_ready();
            tracing::info!("ready");
            shutdown.await;
        }
        let deadline = tokio::time::Instant::now() + self.deadline;
        self.lifecycle.start_draining();
        if signalled {
            // Never ready, so no load balancer sends it requests: nothing
            // to wait for before closing the listeners.
            tracing::info!("stopping before ready: no drain delay");
        } else {
            tracing::info!(
                drain_delay = ?self.drain_delay,
                "draining: not ready, still serving until the drain delay ends"
            );
            // Load balancers take a while to notice a failing readiness
            // probe; closing the listeners at once would refuse requests
            // still on their way.
            tokio::time::sleep(self.drain_delay).await;
        }
        let _ = stop.send(true);
        tracing::info!("listeners closed; waiting for in-flight requests");

        let waiting = futures_util::future::join_all(tasks.iter_mut());
        let outcome = tokio::time::timeout_at(deadline, waiting).await;
        self.lifecycle.set_stopped();
        match outcome {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(source)) => {
                            return Err(ServeError {
                                kind: ErrorKind::Serve(source),
                            });
                        }
                        Err(join) => {
                            return Err(ServeError {
                                kind: ErrorKind::Serve(std::io::Error::other(join)),
                            });
                        }
                    }
                }
                tracing::info!("stopped");
                Ok(())
            }
            Err(_) => {
                for task in &tasks {
                    task.abort();
                }
                Err(ServeError {
                    kind: ErrorKind::Deadline(self.deadline),
                })
            }
        }
    }
}

/// The status [`Ops::serve`] exits with when `shutdown.deadline` passed
/// with requests still running.
pub const DEADLINE_EXIT_CODE: i32 = 1;

/// Aborts a background task when dropped, on every way out of a function.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn local_addr(listener: &TcpListener) -> SocketAddr {
    // A bound listener always has an address; the fallback is unreachable.
    listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

fn serve_on(
    (listener, router): (TcpListener, Router),
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    // With the peer's address: handlers that take `ConnectInfo` work, and
    // exported spans name the peer.
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let serving = axum::serve(listener, service).with_graceful_shutdown(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    });
    tokio::spawn(serving.into_future())
}

/// Exits the process with [`DEADLINE_EXIT_CODE`] in `left`, from a thread
/// of its own, if it has not exited by then and jobs of `blocking` are
/// still running: what `main` does after `serve` returns is its own once
/// they have ended.
fn exit_at_the_deadline(left: Duration, blocking: Blocking) {
    let watchdog = std::thread::Builder::new()
        .name("opsready-deadline".to_owned())
        .spawn(move || {
            std::thread::sleep(left);
            if blocking.running() == 0 {
                return;
            }
            tracing::error!(
                "exiting now: the shutdown deadline has passed with blocking jobs still running"
            );
            opsready_telemetry::flush_logs();
            std::process::exit(DEADLINE_EXIT_CODE);
        });
    // Without the thread, the exit is left to the runtime, as before.
    drop(watchdog);
}

/// Completes on the first SIGTERM or Ctrl-C; a second one exits the process
/// at once (status 130), for an operator who cannot wait for the drain.
///
/// The signal handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives between the two is not
/// lost to the default action (which kills the process without a drain).
/// Call it inside a Tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let mut signals = Signals::install();
    async move {
        signals.recv().await;
        tracing::info!("shutdown signal received; a second one exits at once");
        tokio::spawn(async move {
            signals.recv().await;
            tracing::warn!("second shutdown signal: exiting at once");
            // `exit` runs no destructors: the line above is written first,
            // for a second at most (an output that blocks must not keep
            // the process from exiting "at once").
            let (written, wait) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                opsready_telemetry::flush_logs();
                let _ = written.send(());
            });
            let _ = wait.recv_timeout(Duration::from_secs(1));
            std::process::exit(130);
        });
    }
}

/// SIGTERM and SIGINT, listened to from the moment of installation.
struct Signals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            // Failing to install a handler leaves that signal's default
            // action in place; the other one still drains.
            Self {
                terminate: signal(SignalKind::terminate()).ok(),
                interrupt: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            let terminate = async {
                match &mut self.terminate {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let interrupt = async {
                match &mut self.interrupt {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = terminate => {},
                () = interrupt => {},
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The service could not start or did not stop cleanly.
///
/// Its `Debug` is its message, so that `main` returning it prints a
/// sentence an operator can act on rather than a struct dump.
pub struct ServeError {
    kind: ErrorKind,
}

impl fmt::Debug for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug)]
enum ErrorKind {
    Bind {
        addr: SocketAddr,
        key: &'static str,
        source: std::io::Error,
    },
    Startup(BoxError),
    Telemetry(opsready_telemetry::TelemetryError),
    Serve(std::io::Error),
    Deadline(Duration),
    /// Rules the settings break, each `key rule`.
    Settings(Vec<String>),
    Flags {
        what: &'static str,
        source: opsready_flags::Error,
    },
}

impl ServeError {
    fn flags(what: &'static str, source: opsready_flags::Error) -> Self {
        Self {
            kind: ErrorKind::Flags { what, source },
        }
    }

    /// Whether the shutdown deadline passed with requests still running.
    pub fn is_deadline(&self) -> bool {
        matches!(self.kind, ErrorKind::Deadline(_))
    }
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Bind { addr, key, source } => write!(
                f,
                "cannot listen on {addr} (the setting {key}): {source}; free the port or change {key}"
            ),
            // A hook's error, as a flag store's, may quote the URL it
            // failed on: `main` prints this to standard error, unmasked
            // by any log line.
            ErrorKind::Startup(source) => write!(
                f,
                "a startup hook failed: {}",
                redact_secrets(&with_causes(source.as_ref()))
            ),
            ErrorKind::Telemetry(source) => write!(f, "telemetry could not start: {source}"),
            ErrorKind::Settings(broken) => write!(
                f,
                "the settings break their rules: {}; the loader checked them, so they were changed since (set in code) or what they name changed (a file removed)",
                broken.join("; ")
            ),
            ErrorKind::Serve(source) => write!(f, "serving failed: {source}"),
            ErrorKind::Flags { what, source } => write!(
                f,
                "feature flags could not start ({what}): {}",
                redact_secrets(&with_causes(source))
            ),
            ErrorKind::Deadline(deadline) => write!(
                f,
                "requests were still running when the shutdown deadline ({}) passed; the server stopped waiting for them, and they end when the process exits",
                humantime::format_duration(*deadline)
            ),
        }
    }
}

/// `error` and its causes, `: ` between them, as an error report prints
/// them (`running migrations: connection refused`): `source` gives none of
/// them back for the errors whose text is masked, so `Display` must say
/// the whole of it. A cause that its error's text already ends with is
/// not said twice.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let said = next.to_string();
        if !said.is_empty() && !text.ends_with(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = next.source();
    }
    text
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Bind { source, .. } | ErrorKind::Serve(source) => Some(source),
            // Shown masked by `Display`; the raw error, which an error
            // report would print as its cause, may quote a credential.
            ErrorKind::Startup(_) => None,
            ErrorKind::Telemetry(source) => Some(source),
            ErrorKind::Flags { .. } => None,
            ErrorKind::Deadline(_) | ErrorKind::Settings(_) => None,
        }
    }
}

/// The body limit axum applies when none is set.
const AXUM_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Whether `path` is one of the admin routes merged into the main listener.
fn is_admin(path: &str) -> bool {
    path.strip_prefix("/admin")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The trace id of a sampled request, set by the telemetry layer: the
/// exemplar of the request-duration bucket it lands in.
fn sampled_trace_id(extensions: &axum::http::Extensions) -> Option<u128> {
    extensions
        .get::<opsready_telemetry::TraceContext>()
        .filter(|context| context.sampled)
        .map(|context| context.trace_id.to_u128())
}
