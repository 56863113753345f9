//! [`Metrics`], a recorder and exposition per app, and [`MetricsLayer`],
//! the RED metrics of every request.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU128;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::extract::MatchedPath;
use http::{Request, Response};
use metrics::{Label, Recorder as _};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use opsready_vocab::{
    BodyEnd, ObservedRequest, RequestObserver, is_quiet, method_name as method_label,
};

use crate::catalog::{self, CATALOG};
use crate::exposition::{
    DurationCounts, Exemplars, Format, duration_family, label_text, process_families,
    to_openmetrics,
};

/// The route label of every path that matches no route: a scan of random
/// URLs adds one series, not one per URL.
pub const UNMATCHED: &str = "unmatched";

/// Request duration buckets in seconds, from 5 ms to 10 s: the boundaries
/// OpenTelemetry recommends, fine where latency objectives usually sit.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The metrics of one app: its own recorder, so that several apps (tests
/// running in parallel in one process) never share or fight over a global
/// one. Cheap to clone.
///
/// ```
/// use opsready_metrics::Metrics;
///
/// let metrics = Metrics::new();
/// metrics.set_build_info("accounts", "1.4.2", "0c1d2e3");
/// assert!(metrics.render().contains(r#"build_info{service="accounts",version="1.4.2",git_sha="0c1d2e3"} 1"#));
/// ```
#[derive(Clone)]
pub struct Metrics {
    // One pointer: the layer clones it for every request.
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// The duration buckets, of the histograms and to place exemplars.
    buckets: Arc<[f64]>,
    /// Handles of the request series already registered, by route: a
    /// request then costs a lookup, not a key built and registered anew.
    series: RwLock<FastMap<String, Arc<RouteSeries>>>,
    /// Gauges read at each collection (connection pools).
    collectors: RwLock<Vec<Collector>>,
}

type Collector = Box<dyn Fn() + Send + Sync>;

/// The series caches are read for every request, and their keys are route
/// templates and methods, never raw input: a fast hasher rather than the
/// standard library's flood-resistant one.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The registered series of one route template, shared by its requests
/// from start to end.
struct RouteSeries {
    route: String,
    /// The active-requests gauge by method (index into [`METHODS`]).
    active: [OnceLock<metrics::Gauge>; METHODS.len()],
    durations: RwLock<FastMap<(&'static str, u16), DurationSeries>>,
}

/// Every value `method_label` returns.
const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "_OTHER",
];

/// One series of the duration histogram, kept here rather than in the
/// recorder: fixed buckets of atomic counts, where the recorder keeps each
/// sample (and reads a clock for it) until the next drain.
#[derive(Clone)]
struct DurationSeries {
    histogram: metrics::Histogram,
    counts: Arc<DurationCounts>,
    /// Its labels as the exposition writes them.
    labels: Arc<str>,
    exemplars: Arc<Exemplars>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A recorder with [`DEFAULT_BUCKETS`] for the request durations.
    pub fn new() -> Self {
        Self::with_buckets(DEFAULT_BUCKETS)
    }

    /// A recorder with these buckets (seconds) for the request durations
    /// (and any histogram of the service's own), put in order, once each;
    /// bounds that are not positive finite seconds are left out (a
    /// bucket's count relies on its bounds being in order). Falls back to
    /// [`DEFAULT_BUCKETS`] when none is left. The toolkit's other
    /// histograms keep buckets of their own: the scheduling lag
    /// [`LAG_BUCKETS`](crate::LAG_BUCKETS), pool and blocking-job waits
    /// [`WAIT_BUCKETS`](crate::WAIT_BUCKETS).
    ///
    /// ```
    /// use opsready_metrics::Metrics;
    ///
    /// let metrics = Metrics::with_buckets(&[0.5, 0.1, f64::NAN, 0.1, -1.0]);
    /// assert_eq!(metrics.buckets(), [0.1, 0.5]);
    /// ```
    pub fn with_buckets(buckets: &[f64]) -> Self {
        let mut usable: Vec<f64> = buckets
            .iter()
            .copied()
            .filter(|bound| bound.is_finite() && *bound > 0.0)
            .collect();
        usable.sort_by(f64::total_cmp);
        usable.dedup();
        let buckets: &[f64] = if usable.is_empty() {
            DEFAULT_BUCKETS
        } else {
            &usable
        };
        let lag = Matcher::Full(catalog::TOKIO_SCHEDULING_LAG.name.to_owned());
        // Only an empty list of buckets is refused, and none is empty.
        let mut builder = PrometheusBuilder::new()
            .set_buckets(buckets)
            .and_then(|builder| builder.set_buckets_for_metric(lag, crate::system::LAG_BUCKETS));
        for wait in [
            catalog::DB_CLIENT_CONNECTION_WAIT_TIME,
            catalog::BLOCKING_QUEUE_WAIT,
            catalog::BLOCKING_RUN,
        ] {
            builder = builder.and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full(wait.name.to_owned()),
                    crate::system::WAIT_BUCKETS,
                )
            });
        }
        let builder = builder.unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Self {
            inner: Arc::new(Inner {
                recorder,
                handle,
                buckets: buckets.into(),
                series: RwLock::default(),
                collectors: RwLock::default(),
            }),
        };
        metrics.describe();
        metrics
    }

    /// Gives each cataloged metric its help text and unit.
    fn describe(&self) {
        for def in CATALOG {
            let unit = match def.unit {
                "seconds" => Some(metrics::Unit::Seconds),
                _ => None,
            };
            let name = metrics::KeyName::from_const_str(def.name);
            match def.kind {
                catalog::Kind::Counter => {
                    self.inner
                        .recorder
                        .describe_counter(name, unit, def.help.into());
                }
                catalog::Kind::Gauge => {
                    self.inner
                        .recorder
                        .describe_gauge(name, unit, def.help.into());
                }
                catalog::Kind::Histogram => {
                    self.inner
                        .recorder
                        .describe_histogram(name, unit, def.help.into());
                }
            }
        }
    }

    /// The histograms' bucket bounds, in seconds, in order.
    #[must_use]
    pub fn buckets(&self) -> &[f64] {
        &self.inner.buckets
    }

    /// Sets `build_info{service, version, git_sha}` to 1.
    pub fn set_build_info(&self, service: &str, version: &str, git_sha: &str) {
        let labels = vec![
            Label::new("service", service.to_owned()),
            Label::new("version", version.to_owned()),
            Label::new("git_sha", git_sha.to_owned()),
        ];
        let key = metrics::Key::from_parts(catalog::BUILD_INFO.name, labels);
        self.inner.recorder.register_gauge(&key, &METADATA).set(1.0);
    }

    pub(crate) fn add_collector(&self, collector: Collector) {
        self.inner
            .collectors
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(collector);
    }

    pub(crate) fn run_collectors(&self) {
        let collectors = self
            .inner
            .collectors
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for collector in collectors.iter() {
            // A service's own reader (of a pool, say) that panics keeps its
            // gauges at their last values; it must not fail every scrape,
            // nor end the probe that also measures the scheduling lag. The
            // panic hook reports the panic.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(collector));
        }
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<Self> {
        weak.upgrade().map(|inner| Self { inner })
    }

    pub(crate) fn recorder(&self) -> &PrometheusRecorder {
        &self.inner.recorder
    }

    /// The exposition, Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        self.render_with(&self.durations())
    }

    /// [`Metrics::render`], with the request-duration series of `durations`.
    fn render_with(&self, durations: &[DurationSeries]) -> String {
        let mut text = self.inner.handle.render();
        if !text.is_empty() && !text.ends_with("\n\n") {
            text.push('\n');
        }
        let mut series: Vec<(&str, &DurationCounts)> = durations
            .iter()
            .map(|duration| (&*duration.labels, &*duration.counts))
            .collect();
        series.sort_unstable_by_key(|(labels, _)| *labels);
        duration_family(&mut text, &series);
        process_families(&mut text);
        text
    }

    /// Every request-duration series so far.
    fn durations(&self) -> Vec<DurationSeries> {
        read(&self.inner.series)
            .values()
            .flat_map(|route| read(&route.durations).values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// The exposition as OpenMetrics 1.0.0 text, with the trace of a recent
    /// request as the exemplar of each request-duration bucket (when
    /// [`MetricsLayer::exemplars`] is set).
    pub fn render_openmetrics(&self) -> String {
        let durations = self.durations();
        let text = self.render_with(&durations);
        let by_labels: HashMap<&str, &Exemplars> = durations
            .iter()
            .map(|duration| (&*duration.labels, &*duration.exemplars))
            .collect();
        to_openmetrics(&text, &self.inner.buckets, |labels| {
            by_labels.get(labels).copied()
        })
    }

    /// The exposition in `format`.
    pub fn render_as(&self, format: Format) -> String {
        match format {
            Format::OpenMetrics => self.render_openmetrics(),
            _ => self.render(),
        }
    }

    /// Drains recorded observations into the histograms. [`Metrics::render`]
    /// does it too; call this every few seconds when scrapes may be rare, so
    /// that samples do not pile up in memory in between.
    pub fn run_upkeep(&self) {
        self.inner.handle.run_upkeep();
    }

    /// The content type of [`Metrics::render`]'s output.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// The series of `route`, registered on its first request.
    fn route_series(&self, route: &str) -> Arc<RouteSeries> {
        if let Some(series) = read(&self.inner.series).get(route) {
            return Arc::clone(series);
        }
        let mut all = write(&self.inner.series);
        Arc::clone(all.entry(route.to_owned()).or_insert_with(|| {
            Arc::new(RouteSeries {
                route: route.to_owned(),
                active: Default::default(),
                durations: RwLock::default(),
            })
        }))
    }

    fn active<'s>(&self, series: &'s RouteSeries, method: &'static str) -> &'s metrics::Gauge {
        let index = METHODS
            .iter()
            .position(|known| *known == method)
            .unwrap_or(METHODS.len() - 1);
        series.active[index].get_or_init(|| {
            let labels = vec![
                Label::from_static_parts("http_request_method", method),
                Label::new("http_route", series.route.clone()),
            ];
            let key = metrics::Key::from_parts(catalog::HTTP_SERVER_ACTIVE_REQUESTS.name, labels);
            self.inner.recorder.register_gauge(&key, &METADATA)
        })
    }

    fn record_request(
        &self,
        series: &RouteSeries,
        method: &'static str,
        status: u16,
        elapsed: Duration,
        trace_id: Option<u128>,
    ) {
        let seconds = elapsed.as_secs_f64();
        let record = |duration: &DurationSeries| {
            duration.histogram.record(seconds);
            if let Some(trace_id) = trace_id {
                duration
                    .exemplars
                    .record(&self.inner.buckets, seconds, trace_id);
            }
        };
        if let Some(duration) = read(&series.durations).get(&(method, status)) {
            record(duration);
            return;
        }
        let status_text = status.to_string();
        let counts = Arc::new(DurationCounts::new(Arc::clone(&self.inner.buckets)));
        let duration = DurationSeries {
            histogram: metrics::Histogram::from_arc(Arc::clone(&counts)),
            counts,
            labels: label_text(&[
                ("http_request_method", method),
                ("http_route", &series.route),
                ("http_response_status_code", &status_text),
            ])
            .into(),
            exemplars: Arc::new(Exemplars::new(self.inner.buckets.len())),
        };
        record(
            write(&series.durations)
                .entry((method, status))
                .or_insert(duration),
        );
    }
}

/// A lock of the series caches. They are only ever written with complete
/// entries, so a poisoned lock is still consistent and used as is.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// Records the RED metrics of each request into a [`Metrics`]: the duration
/// histogram by method, route template and status, and the active-requests
/// gauge. Apply it with `Router::layer`, so the route template is known;
/// paths that match no route are labelled [`UNMATCHED`].
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: Metrics,
    measure_probes: bool,
    trace_id: Option<TraceIdOf>,
}

/// Reads the trace id of a sampled request from its extensions.
pub type TraceIdOf = fn(&http::Extensions) -> Option<u128>;

impl MetricsLayer {
    /// Records into `metrics`; probes and `/metrics` are not measured.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics,
            measure_probes: false,
            trace_id: None,
        }
    }

    /// Keeps, per duration bucket, the trace of a recent request as its
    /// exemplar (served with [`Metrics::render_openmetrics`]): `trace_id`
    /// reads a sampled request's trace id from its extensions, set by a
    /// tracing layer outside this one. Defaults to no exemplars.
    ///
    /// ```
    /// use opsready_metrics::{Metrics, MetricsLayer};
    ///
    /// #[derive(Clone)]
    /// struct Trace(u128);
    ///
    /// let layer = MetricsLayer::new(Metrics::new())
    ///     .exemplars(|extensions| extensions.get::<Trace>().map(|trace| trace.0));
    /// # let _ = layer;
    /// ```
    pub fn exemplars(mut self, trace_id: TraceIdOf) -> Self {
        self.trace_id = Some(trace_id);
        self
    }

    /// Whether probes and `/metrics` are measured too. Defaults to `false`.
    pub fn measure_probes(mut self, measure: bool) -> Self {
        self.measure_probes = measure;
        self
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    layer: MetricsLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        // Timed from here, before the inner service's own `call`.
        let measured = self
            .layer
            .start(&ObservedRequest::of(&request, route))
            .map(|measured| (measured, Instant::now()));
        MetricsFuture {
            future: self.inner.call(request),
            measured,
        }
    }
}

/// The metrics layer as an observer of another layer's requests: what the
/// facade uses, through `TelemetryLayer::observe`, so that the telemetry
/// layer's clock and route serve both.
impl RequestObserver for MetricsLayer {
    type Observation = Measured;

    fn start(&self, request: &ObservedRequest<'_>) -> Option<Measured> {
        if !self.measure_probes && is_quiet(request.path) {
            return None;
        }
        let method = method_label(request.method);
        let route = request.route.unwrap_or(UNMATCHED);
        let metrics = &self.metrics;
        let series = metrics.route_series(route);
        metrics.active(&series, method).increment(1.0);
        Some(Measured {
            metrics: metrics.clone(),
            method,
            series,
            trace_id: self
                .trace_id
                .and_then(|trace_id| trace_id(request.extensions))
                .and_then(NonZeroU128::new),
        })
    }

    fn finish(measured: Measured, status: u16, elapsed: Duration) {
        measured.metrics.record_request(
            &measured.series,
            measured.method,
            status,
            elapsed,
            measured.trace_id.map(NonZeroU128::get),
        );
    }

    fn cancel(measured: Measured, elapsed: Duration) {
        Self::finish(measured, CANCELLED_STATUS, elapsed);
    }
}

/// The `http_response_status_code` of a request dropped unanswered (the
/// client went away, a deadline passed): 499, as nginx logs a request its
/// client closed. No response had a status; recording it keeps the
/// slowest requests of an incident, those clients gave up on, in the
/// duration histogram.
pub const CANCELLED_STATUS: u16 = 499;

/// What a measured request needs when it ends: the observation of
/// [`MetricsLayer`] as a [`RequestObserver`]. Dropped, it takes the request
/// off the active-requests gauge; a request dropped unanswered is recorded
/// by [`RequestObserver::cancel`] first, with [`CANCELLED_STATUS`].
pub struct Measured {
    metrics: Metrics,
    method: &'static str,
    series: Arc<RouteSeries>,
    // 16 bytes where `Option<u128>` takes 32: a trace id is never zero.
    trace_id: Option<NonZeroU128>,
}

impl std::fmt::Debug for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Measured")
            .field("method", &self.method)
            .field("route", &self.series.route)
            .finish_non_exhaustive()
    }
}

impl Drop for Measured {
    // Also when the request is dropped unanswered (client gone), so the
    // gauge never drifts upwards.
    fn drop(&mut self) {
        self.metrics
            .active(&self.series, self.method)
            .decrement(1.0);
    }
}

pin_project! {
    /// The response future of [`MetricsService`].
    pub struct MetricsFuture<F> {
        #[pin]
        future: F,
        measured: Option<(Measured, Instant)>,
    }

    impl<F> PinnedDrop for MetricsFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the inner service answered: the client gave
            // up, or, while a panic unwinds through it with no panic catcher
            // inside, the server failed.
            if let Some((measured, start)) = this.project().measured.take() {
                if std::thread::panicking() {
                    MetricsLayer::finish(measured, 500, start.elapsed());
                } else {
                    MetricsLayer::cancel(measured, start.elapsed());
                }
            }
        }
    }
}

impl<F> std::fmt::Debug for MetricsFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        if let (Ok(response), Some((measured, start))) = (&result, this.measured.take()) {
            let status = response.status().as_u16();
            // A streamed body is work in flight until it ends.
            match response.extensions().get::<BodyEnd>() {
                Some(end) => {
                    end.on_end(move || MetricsLayer::finish(measured, status, start.elapsed()));
                }
                None => MetricsLayer::finish(measured, status, start.elapsed()),
            }
        }
        Poll::Ready(result)
    }
}
