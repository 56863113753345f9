//! The tracing subscriber: a level filter and JSON or pretty log lines, with
//! the request's id, trace id, method and route on every line logged inside
//! a request.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use opsready_vocab::{REDACTED, is_sensitive_name, redact_secrets, redact_secrets_in};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_core::callsite::{Callsite as _, DefaultCallsite, Identifier};
use tracing_core::field::FieldSet;
use tracing_core::metadata::Kind;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Registry;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layered, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

use crate::layer::{REQUEST_SPAN_TARGET, REQUEST_TARGET};
use crate::settings::{LogFormat, TelemetrySettings};

/// Telemetry could not be set up.
#[derive(Debug)]
pub struct TelemetryError {
    message: String,
}

impl fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl TelemetryError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl std::error::Error for TelemetryError {}

/// Builds the subscriber of `settings`, writing log lines to `writer`.
///
/// Separate from [`init`] so that tests can capture the lines. It exports no
/// span: [`init`] adds the exporter of `telemetry.otlp`.
pub fn subscriber<W>(
    settings: &TelemetrySettings,
    writer: W,
) -> Result<impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let directives = tidy_directives(&settings.log.level);
    let filter = EnvFilter::try_new(&directives).map_err(|error| TelemetryError {
        message: format!(
            "telemetry.log.level `{}` is not a filter directive: {error}",
            settings.log.level
        ),
    })?;
    // `Targets` serves plain `target=level` directives without any work on
    // span creation, entry and exit, which `EnvFilter` does for every span
    // in case a directive names a span or a field; those keep `EnvFilter`.
    //
    // One boxed layer for the filter and one for the lines, rather than an
    // `Option` of each kind: every layer of the stack is a level that each
    // span's creation, entry, exit and close goes through, and closing
    // checks each level for the registry beneath it.
    let filter: FilterLayer = match static_targets(&directives) {
        Some(targets) => Box::new(targets),
        None => Box::new(filter),
    };
    let lines: LinesLayer = if settings.log.format() == LogFormat::Json {
        Box::new(JsonLayer::new(writer))
    } else {
        Box::new(
            tracing_subscriber::fmt::layer()
                .with_ansi(settings.log.ansi())
                .fmt_fields(MaskedFields::default())
                .with_writer(writer),
        )
    };
    Ok(tracing_subscriber::registry().with(filter).with(lines))
}

/// The fields of pretty lines, events' and spans' alike: as
/// tracing-subscriber formats them, then with the credentials the text
/// quotes masked, as in JSON lines (`password="[REDACTED]"`). Field names
/// lose their italics in a terminal: masking reads the text without the
/// escape codes around each name.
#[derive(Debug, Default)]
struct MaskedFields(tracing_subscriber::fmt::format::DefaultFields);

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for MaskedFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> fmt::Result {
        let mut text = String::new();
        self.0.format_fields(
            tracing_subscriber::fmt::format::Writer::new(&mut text),
            fields,
        )?;
        redact_secrets_in(&mut text);
        writer.write_str(&text)
    }
}

/// The level filter of [`subscriber`]: `Targets` or `EnvFilter`.
type FilterLayer = Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>;

/// The log lines of [`subscriber`]: JSON or pretty.
type LinesLayer = Box<dyn tracing_subscriber::Layer<Layered<FilterLayer, Registry>> + Send + Sync>;

/// `telemetry.log.level` without spaces around its directives or empty
/// ones (`info, sqlx=warn,`): both filters would read ` sqlx` as a target
/// of its own (` info` alone switches every line off), and `Targets` an
/// empty directive as "errors only".
pub(crate) fn tidy_directives(level: &str) -> String {
    let directives: Vec<&str> = level
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty())
        .collect();
    directives.join(",")
}

/// The directives as a static [`Targets`] filter, when none of them names a
/// span or a field (`[span{field=value}]=debug`).
fn static_targets(directives: &str) -> Option<Targets> {
    if directives.contains(['[', '{', '"']) {
        return None;
    }
    directives.parse().ok()
}

/// The service whose telemetry this is: the `service.name` and
/// `service.version` of exported spans (`telemetry.service_name`, when set,
/// overrides the name).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceInfo {
    /// The service's name, usually its package name.
    pub name: String,
    /// The service's version.
    pub version: String,
}

impl ServiceInfo {
    /// A service of this name and version.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
        }
    }
}

/// Exports the spans and writes the log lines still buffered when dropped
/// or shut down: keep it until the server has stopped.
#[must_use = "spans and log lines still buffered are flushed when the guard drops; dropping it early stops span export"]
pub struct TelemetryGuard {
    #[cfg(feature = "otlp")]
    providers: Option<crate::otlp::Providers>,
    _writer: crate::writer::BatchGuard,
}

impl TelemetryGuard {
    /// Exports the spans still buffered, waiting up to 5 seconds for the
    /// collector, and stops the exporter; the log lines still buffered are
    /// written when it returns. Spans ended after this are not exported, so
    /// call it once the server has stopped.
    ///
    /// It blocks: from async code call it in
    /// [`tokio::task::spawn_blocking`] (on a current-thread runtime the gRPC
    /// exporter needs the runtime's thread to send).
    ///
    /// # Errors
    ///
    /// When the spans could not all be sent.
    pub fn shutdown(mut self) -> Result<(), TelemetryError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), TelemetryError> {
        #[cfg(feature = "otlp")]
        if let Some(providers) = self.providers.take() {
            // Both, whatever the first says.
            let spans = providers.tracer.shutdown().map_err(|error| {
                TelemetryError::new(format!(
                    "the last spans may not have reached telemetry.otlp.endpoint: {error}"
                ))
            });
            if let Some(logger) = providers.logger {
                logger.shutdown().map_err(|error| {
                    TelemetryError::new(format!(
                        "the last log records may not have reached telemetry.otlp.endpoint: {error}"
                    ))
                })?;
            }
            spans?;
        }
        Ok(())
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            // The log writer is still running: it stops after this.
            tracing::warn!("{error}");
        }
    }
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard").finish_non_exhaustive()
    }
}

/// Installs the subscriber of `settings` for the whole process, writing to
/// standard output from a background thread, so that a slow terminal or
/// pipe never blocks a request, and, when `telemetry.otlp.endpoint` is set,
/// exporting the spans to that collector in batches from another thread.
///
/// Lines are dropped only when more than 16 MiB of them (some 50,000 request
/// lines) are waiting to be written; a line then says how many.
/// Spans below `telemetry.log.level` are neither logged nor exported.
///
/// With JSON lines it also replaces the process's panic hook: a panic is
/// logged at `ERROR` (target `opsready::panic`, message `panicked: …`) with
/// its `location`, `thread` and, when `RUST_BACKTRACE` asks, `backtrace`,
/// and inside a request with the request's ids, instead of plain text on
/// standard error. When the level filter leaves that event out, or the
/// panic happened while its thread was writing a line, the hook writes
/// the line itself (without the request's ids): a panic is never silent.
/// With pretty lines, the hook it installs runs the one it replaced. Either
/// way the hook writes the buffered lines before it returns, so that a
/// panic that ends the process (`panic = "abort"`, a panic in `main`) loses
/// none of them. Set a hook of your own after this call. Before
/// `std::process::exit`, call [`flush_logs`].
///
/// Call it inside a Tokio runtime when `telemetry.otlp.protocol` is `grpc`.
///
/// # Errors
///
/// When the level directive is malformed; when an OTLP endpoint is set but
/// its exporter cannot start (a malformed endpoint, gRPC outside a Tokio
/// runtime, a binary built without the `otlp` feature); or when another
/// subscriber is already installed (opsready's settings would then silently
/// not apply).
pub fn init(
    settings: &TelemetrySettings,
    service: &ServiceInfo,
) -> Result<TelemetryGuard, TelemetryError> {
    #[cfg(feature = "otlp")]
    let providers = crate::otlp::providers(settings, service)?;
    #[cfg(not(feature = "otlp"))]
    {
        let _ = service;
        if settings.otlp.endpoint.is_some() {
            return Err(TelemetryError::new(
                "telemetry.otlp.endpoint is set, but this binary was built without the `otlp` feature of opsready: no span would be exported",
            ));
        }
    }
    // Lines are gathered and written in batches by a thread of their own:
    // a request pays a copy, not a system call or a wake-up.
    let (writer, guard) = crate::writer::BatchWriter::new(std::io::stdout());
    let writer_handle = writer.clone();
    let subscriber = subscriber(settings, writer)?;
    // The exporter's layers only when there is an exporter: a layer that
    // is there to do nothing still costs each span a level.
    #[cfg(feature = "otlp")]
    match providers.as_ref() {
        Some(providers) => install(
            subscriber
                .with(crate::otlp::layer(&providers.tracer))
                .with(crate::otlp::exporting())
                .with(providers.logger.as_ref().map(crate::otlp::log_layer)),
        )?,
        None => install(subscriber)?,
    }
    #[cfg(not(feature = "otlp"))]
    install(subscriber)?;
    // New traces pass on the decision their exported span gets, or would
    // get: with no exporter too, a downstream service keeps this ratio.
    crate::context::set_sample_ratio(settings.sample_ratio);
    // Panics as JSON lines too, in the request they happened in; and,
    // whatever the format, the lines before a panic written before the
    // process can end on it.
    crate::panics::install_hook(settings.log.format(), writer_handle);
    Ok(TelemetryGuard {
        #[cfg(feature = "otlp")]
        providers,
        _writer: guard,
    })
}

/// Writes the log lines that [`init`]'s subscriber has buffered, now, and
/// returns once they are written, or once the output has taken nothing
/// for 2 s. Other threads' lines meanwhile are buffered as usual: they do
/// not wait for a slow output.
///
/// Lines are written by a background thread a few milliseconds after they
/// are logged, and the [`TelemetryGuard`] writes the rest when dropped.
/// `std::process::exit` runs no destructors: call this just before it, or
/// the last lines (often the one saying why the process exits) are lost.
/// Panics need nothing: `init`'s panic hook writes the buffered lines
/// itself. Without `init`, this does nothing.
///
/// ```no_run
/// tracing::error!("the database is gone for good; exiting");
/// opsready_telemetry::flush_logs();
/// std::process::exit(1);
/// ```
pub fn flush_logs() {
    if let Some(writer) = crate::writer::process_writer() {
        writer.write_buffered();
    }
}

/// Makes `subscriber` the process's subscriber.
fn install<S>(subscriber: S) -> Result<(), TelemetryError>
where
    S: Subscriber + Send + Sync + 'static,
{
    tracing::subscriber::set_global_default(subscriber).map_err(|_| TelemetryError {
        message: "a tracing subscriber is already installed, so the telemetry settings cannot apply; remove the other initialisation".to_owned(),
    })
}

/// The request fields kept on a request span for log lines, already as the
/// JSON they are written as (`,"request_id":"…","trace_id":"…"`): rendered
/// once per request, copied into each of its lines. Shared with the
/// telemetry layer, which writes the request's own line with them.
#[derive(Debug, Clone)]
pub(crate) struct RequestFields {
    json: Arc<str>,
    /// Which of the five fields are in `json` (a bit each), so a field
    /// recorded again is not written twice.
    present: u8,
}

impl Default for RequestFields {
    fn default() -> Self {
        Self {
            json: Arc::from(""),
            present: 0,
        }
    }
}

impl RequestFields {
    // The JSON key of each field a line shows, and its bit.
    const REQUEST_ID: (&str, u8) = (",\"request_id\":", 1);
    const TRACE_ID: (&str, u8) = (",\"trace_id\":", 2);
    const SPAN_ID: (&str, u8) = (",\"span_id\":", 4);
    const METHOD: (&str, u8) = (",\"method\":", 8);
    const ROUTE: (&str, u8) = (",\"route\":", 16);

    /// The JSON key of a span field a line shows, and its bit.
    fn key(field: &Field) -> Option<(&'static str, u8)> {
        Some(match field.name() {
            "request_id" => Self::REQUEST_ID,
            "trace_id" => Self::TRACE_ID,
            "span_id" => Self::SPAN_ID,
            "http.request.method" => Self::METHOD,
            "http.route" => Self::ROUTE,
            _ => return None,
        })
    }

    fn push(&mut self, key: &str, bit: u8, value: &str) {
        if self.present & bit == 0 {
            self.present |= bit;
            let mut json = String::with_capacity(self.json.len() + key.len() + value.len() + 2);
            json.push_str(&self.json);
            json.push_str(key);
            // Writing into a String cannot fail.
            let _ = write_json_str(&mut json, value);
            self.json = Arc::from(json);
        }
    }

    /// The fields of a request span, rendered by the telemetry layer from
    /// the values it has at hand (ids left out are recorded later).
    /// `plain_id` says the request id needs no escaping (one this service
    /// made).
    pub(crate) fn render(
        method: &str,
        route: Option<&str>,
        (request_id, plain_id): (&str, bool),
        ids: Option<(&str, &str)>,
    ) -> Self {
        thread_local! {
            // Rendered here, then copied into one shared allocation.
            static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        SCRATCH.with(|scratch| {
            let mut owned = String::new();
            let mut scratch = scratch.try_borrow_mut();
            let json = match scratch.as_deref_mut() {
                Ok(json) => json,
                Err(_) => &mut owned,
            };
            json.clear();
            let mut present = 0;
            let mut push = |(key, bit): (&str, u8), value: &str, escape: bool| {
                present |= bit;
                json.push_str(key);
                if escape {
                    let _ = write_json_str(json, value);
                } else {
                    json.push('"');
                    json.push_str(value);
                    json.push('"');
                }
            };
            // One of the names of `method_name`: nothing to escape.
            push(Self::METHOD, method, false);
            if let Some(route) = route {
                push(Self::ROUTE, route, true);
            }
            push(Self::REQUEST_ID, request_id, !plain_id);
            if let Some((trace_id, span_id)) = ids {
                // Hex digits: nothing to escape.
                push(Self::TRACE_ID, trace_id, false);
                push(Self::SPAN_ID, span_id, false);
            }
            Self {
                json: Arc::from(json.as_str()),
                present,
            }
        })
    }

    /// Runs `create`, which creates a request span, handing the JSON layer
    /// a copy of `self`: it takes the fields instead of visiting the span's
    /// attributes one by one, a sixth of a request span's cost. Returns the
    /// span and, when a JSON layer took the fields, the request's line
    /// writer: the telemetry layer writes the line that ends the request
    /// itself, without a `tracing` event.
    pub(crate) fn hand_to(
        self,
        create: impl FnOnce() -> tracing::Span,
    ) -> (tracing::Span, Option<RequestLine>) {
        HANDED.set(Some(Handed {
            fields: self,
            lines: None,
        }));
        let span = create();
        // Taken back whether or not a JSON layer saw the span (pretty logs,
        // a span filtered out): nothing may be left for another span.
        let line = HANDED.take().and_then(|handed| {
            handed.lines.map(|lines| RequestLine {
                lines,
                fields: handed.fields,
            })
        });
        (span, line)
    }
}

/// What [`RequestFields::hand_to`] and the JSON layer exchange while a
/// request span is created on this thread.
struct Handed {
    fields: RequestFields,
    /// Set by the JSON layer when it took the fields.
    lines: Option<Arc<Lines>>,
}

thread_local! {
    static HANDED: std::cell::Cell<Option<Handed>> = const { std::cell::Cell::new(None) };
}

/// Where the JSON layer writes its lines, shared with the requests whose
/// line the telemetry layer writes.
struct Lines {
    write: WriteLine,
}

/// Writes one whole line, of the event whose metadata is given: a writer
/// may send lines to different places by level or target
/// (`MakeWriter::make_writer_for`), the request lines as the others.
type WriteLine = Box<dyn Fn(&Metadata<'static>, &[u8]) + Send + Sync>;

/// The line that ends a request, written by the telemetry layer straight to
/// the JSON layer's writer: the same JSON as the `tracing` event it stands
/// for, at a third of the cost (no dispatch, no field visitors, no span
/// lookup).
pub(crate) struct RequestLine {
    lines: Arc<Lines>,
    fields: RequestFields,
}

impl fmt::Debug for RequestLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestLine").finish_non_exhaustive()
    }
}

impl RequestLine {
    /// Writes `request finished` at info, or `request failed` at error for
    /// a 5xx, as the JSON layer would format the event; with the problem's
    /// `code` of an error answer, and for a 5xx what the problem kept from
    /// the client as `error`. Without a status (the request was dropped
    /// before it had an answer), `request cancelled` at info.
    pub(crate) fn write(
        &self,
        status: Option<u16>,
        elapsed: std::time::Duration,
        at: SystemTime,
        (code, error): (Option<&str>, Option<&str>),
    ) {
        // The line has a target and level of its own, apart from the
        // span's: `opsready::request=warn` keeps the span and drops this
        // line for a request that went well.
        let callsite = match status {
            Some(500..) => &REQUEST_FAILED,
            _ => &REQUEST_FINISHED,
        };
        if !line_enabled(callsite) {
            return;
        }
        // The fields between the time and the latency, as one string and
        // the status.
        let middle = match status {
            Some(500..) => {
                "\",\"level\":\"ERROR\",\"target\":\"opsready::request\",\"message\":\"request failed\",\"status\":"
            }
            Some(_) => {
                "\",\"level\":\"INFO\",\"target\":\"opsready::request\",\"message\":\"request finished\",\"status\":"
            }
            None => {
                "\",\"level\":\"INFO\",\"target\":\"opsready::request\",\"message\":\"request cancelled\""
            }
        };
        with_line(|line| {
            line.push_str("{\"timestamp\":\"");
            push_timestamp(line, at);
            line.push_str(middle);
            if let Some(status) = status {
                line.push_str(itoa::Buffer::new().format(status));
            }
            line.push_str(",\"latency_ms\":");
            push_millis(line, elapsed);
            if let Some(code) = code {
                // A catalog code: capitals and underscores, nothing to
                // escape.
                line.push_str(",\"code\":\"");
                line.push_str(code);
                line.push('"');
            }
            if let Some(error) = error {
                line.push_str(",\"error\":");
                // Writing into a String cannot fail.
                let _ = write_json_str(line, error);
            }
            line.push_str(&self.fields.json);
            line.push_str("}\n");
            (self.lines.write)(callsite.metadata(), line.as_bytes());
        });
    }
}

/// The callsites of the request line, at its two levels: whether a line is
/// enabled is read from the interest the subscriber registered for them
/// (with a static filter, once for good), not asked of the subscriber for
/// each request as `tracing::enabled!` does.
static REQUEST_FINISHED: DefaultCallsite = DefaultCallsite::new(&REQUEST_FINISHED_META);
static REQUEST_FINISHED_META: Metadata<'static> = Metadata::new(
    "request finished",
    REQUEST_TARGET,
    Level::INFO,
    Some(file!()),
    Some(line!()),
    Some(module_path!()),
    FieldSet::new(&[], Identifier(&REQUEST_FINISHED)),
    Kind::EVENT,
);
static REQUEST_FAILED: DefaultCallsite = DefaultCallsite::new(&REQUEST_FAILED_META);
static REQUEST_FAILED_META: Metadata<'static> = Metadata::new(
    "request failed",
    REQUEST_TARGET,
    Level::ERROR,
    Some(file!()),
    Some(line!()),
    Some(module_path!()),
    FieldSet::new(&[], Identifier(&REQUEST_FAILED)),
    Kind::EVENT,
);

/// Whether the subscriber wants the event of `callsite`.
fn line_enabled(callsite: &'static DefaultCallsite) -> bool {
    let metadata = callsite.metadata();
    if *metadata.level() > tracing::level_filters::LevelFilter::current() {
        return false;
    }
    let interest = callsite.interest();
    if interest.is_never() {
        return false;
    }
    interest.is_always() || tracing::dispatcher::get_default(|current| current.enabled(metadata))
}

/// `elapsed` in milliseconds, to the nanosecond, as a JSON number
/// (`0.102231`): integers only, where a float would need formatting.
fn push_millis(line: &mut String, elapsed: std::time::Duration) {
    // No 128-bit arithmetic: whole seconds and the nanoseconds within.
    let nanos = elapsed.subsec_nanos();
    let millis = elapsed
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(nanos / 1_000_000));
    line.push_str(itoa::Buffer::new().format(millis));
    let fraction = nanos % 1_000_000;
    if fraction == 0 {
        line.push_str(".0");
        return;
    }
    // A point and six digits, less the trailing zeros (there is a non-zero
    // one), appended at once.
    let mut tail = [b'.'; 7];
    tail[1..].copy_from_slice(&six_digits(fraction));
    let end = tail
        .iter()
        .rposition(|byte| *byte != b'0')
        .map_or(2, |last| last + 1);
    push_ascii(line, &tail[..end]);
}

/// Runs `f` with this thread's line buffer, emptied; a line costs no
/// allocation. Nothing runs when the buffer is in use (a line logged from
/// inside a writer): that nested line is dropped.
fn with_line(f: impl FnOnce(&mut String)) {
    thread_local! {
        static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    LINE.with(|line| {
        if let Ok(mut line) = line.try_borrow_mut() {
            line.clear();
            f(&mut line);
        }
    });
}

impl Visit for RequestFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some((key, bit)) = Self::key(field) {
            self.push(key, bit, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Formatted only for the fields a line shows.
        if let Some((key, bit)) = Self::key(field) {
            self.push(key, bit, &format!("{value:?}"));
        }
    }
}

/// One JSON object per line: `timestamp`, `level`, `target`, `message`, the
/// event's fields, and `request_id`, `trace_id`, `span_id`, `method`,
/// `route` of the request the event happened in.
///
/// A layer of its own rather than a format of tracing-subscriber's `fmt`
/// layer, which renders every span's fields to text whether or not a line
/// ever shows them: here only request spans keep fields, and only the five
/// a line carries.
struct JsonLayer<W> {
    writer: Arc<W>,
    lines: Arc<Lines>,
}

impl<W> JsonLayer<W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    fn new(writer: W) -> Self {
        let writer = Arc::new(writer);
        let shared = Arc::clone(&writer);
        Self {
            writer,
            lines: Arc::new(Lines {
                write: Box::new(move |metadata, line| {
                    let _ = shared.make_writer_for(metadata).write_all(line);
                }),
            }),
        }
    }
}

impl<S, W> tracing_subscriber::Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().target() != REQUEST_SPAN_TARGET {
            return;
        }
        let fields = match HANDED.take() {
            Some(mut handed) => {
                let fields = handed.fields.clone();
                handed.lines = Some(Arc::clone(&self.lines));
                HANDED.set(Some(handed));
                fields
            }
            None => {
                let mut fields = RequestFields::default();
                attrs.record(&mut fields);
                fields
            }
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<RequestFields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        with_line(|line| {
            // The request's fields, found first: an event's own field named
            // as one of them is renamed only when they are on the line.
            let request = ctx.event_scope(event).and_then(|scope| {
                scope.into_iter().find_map(|span| {
                    span.extensions()
                        .get::<RequestFields>()
                        .map(|fields| Arc::clone(&fields.json))
                })
            });
            let formatted = format_event(line, event, request.is_some());
            if let Some(json) = &request {
                line.push_str(json);
            }
            line.push_str("}\n");
            if formatted.is_ok() {
                let mut writer = self.writer.make_writer_for(event.metadata());
                if writer.write_all(line.as_bytes()).is_ok()
                    && event.metadata().target() == crate::panics::PANIC_TARGET
                {
                    crate::panics::panic_line_written();
                }
            }
        });
    }
}

/// The line of a panic whose event made none (see `panics`): what the
/// event would have shown, without the request's fields. The message is
/// masked already.
pub(crate) fn panic_line(
    message: &str,
    location: Option<&str>,
    thread: &str,
    backtrace: Option<&str>,
) -> String {
    let mut line = String::with_capacity(256);
    line.push_str("{\"timestamp\":\"");
    push_timestamp(&mut line, SystemTime::now());
    line.push_str("\",\"level\":\"ERROR\",\"target\":");
    let _ = write_json_str(&mut line, crate::panics::PANIC_TARGET);
    line.push_str(",\"message\":");
    let _ = write_json_str(&mut line, &format!("panicked: {message}"));
    let fields = [
        ("location", location),
        ("thread", Some(thread)),
        ("backtrace", backtrace),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            let _ = write!(line, ",\"{key}\":");
            let _ = write_json_str(&mut line, value);
        }
    }
    line.push_str("}\n");
    line
}

/// The line up to the request fields: time, level, target, event fields.
fn format_event(line: &mut String, event: &Event<'_>, in_request: bool) -> fmt::Result {
    let metadata = event.metadata();
    line.push_str("{\"timestamp\":\"");
    push_timestamp(line, SystemTime::now());
    line.push_str("\",\"level\":\"");
    line.push_str(metadata.level().as_str());
    line.push_str("\",\"target\":");
    write_json_str(line, metadata.target())?;
    let mut visitor = JsonFields {
        line: &mut *line,
        // The request line's fields are the layer's own (its `error` is
        // masked already): no scan for credentials on the hot path.
        redact: metadata.target() != REQUEST_TARGET,
        in_request,
        result: Ok(()),
    };
    event.record(&mut visitor);
    visitor.result
}

/// Appends `time` as RFC 3339 with microseconds. The calendar part is
/// formatted once per second per thread; lines within that second only add
/// their microseconds.
fn push_timestamp(line: &mut String, time: SystemTime) {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|second| {
        let mut second = second.borrow_mut();
        if second.0 != secs {
            // `2026-11-23T21:14:03Z` without the `Z`.
            let whole = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            let text = humantime::format_rfc3339_seconds(whole).to_string();
            second.1 = text.trim_end_matches('Z').to_owned();
            second.0 = secs;
        }
        line.push_str(&second.1);
    });
    // `.123456Z`, appended at once.
    let mut tail = [b'Z'; 8];
    tail[0] = b'.';
    tail[1..7].copy_from_slice(&six_digits(since.subsec_micros()));
    push_ascii(line, &tail);
}

/// The two decimal digits of each number below 100.
const DECIMAL_PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0; 2]; 100];
    let mut n = 0;
    while n < 100 {
        // Both below 10: the casts cannot truncate.
        pairs[n] = [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        n += 1;
    }
    pairs
};

/// The last six decimal digits of `value`, most significant first: three
/// table lookups instead of six divisions.
fn six_digits(value: u32) -> [u8; 6] {
    let pair = |n: u32| DECIMAL_PAIRS[usize::try_from(n % 100).unwrap_or(0)];
    let [a, b] = pair(value / 10_000);
    let [c, d] = pair(value / 100);
    let [e, f] = pair(value);
    [a, b, c, d, e, f]
}

/// Appends ASCII bytes (digits, punctuation) with one copy.
fn push_ascii(line: &mut String, bytes: &[u8]) {
    // Only ASCII is ever passed, so the check cannot fail.
    line.push_str(std::str::from_utf8(bytes).unwrap_or_default());
}

struct JsonFields<'a> {
    line: &'a mut String,
    /// Mask credentials in the values: a field named like one
    /// (`password = …`) whole, others where their text quotes one
    /// ([`redact_secrets`]).
    redact: bool,
    /// Whether the line gets a request's fields too.
    in_request: bool,
    result: fmt::Result,
}

/// The keys every line has, and those a request's lines have besides: an
/// event field of the same name is written as `fields.NAME`, so that no
/// line has a key twice (which search engines refuse, and JSON readers
/// resolve by dropping one).
const LINE_KEYS: [&str; 3] = ["timestamp", "level", "target"];
const REQUEST_KEYS: [&str; 5] = ["request_id", "trace_id", "span_id", "method", "route"];

impl JsonFields<'_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.line.push(',');
        let name = field.name();
        // The request line's own fields are the layer's, never doubled.
        if self.redact
            && (LINE_KEYS.contains(&name) || (self.in_request && REQUEST_KEYS.contains(&name)))
        {
            self.line.push_str("\"fields.");
            self.line.push_str(name);
            self.line.push('"');
        } else {
            write_json_str(self.line, name)?;
        }
        self.line.push(':');
        Ok(())
    }

    /// Whether the field's value is a credential by its name alone.
    fn hides(&self, field: &Field) -> bool {
        self.redact && is_sensitive_name(field.name())
    }
}

impl Visit for JsonFields<'_> {
    // Numbers are written with `ryu` and `itoa`, several times faster than
    // `core::fmt`; the latency of every request line is a float.

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.result.is_ok() {
            self.result = self.key(field).map(|()| {
                if value.is_finite() {
                    self.line.push_str(ryu::Buffer::new().format_finite(value));
                } else {
                    self.line.push_str("null");
                }
            });
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.result.is_ok() {
            self.result = self
                .key(field)
                .map(|()| self.line.push_str(itoa::Buffer::new().format(value)));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.result.is_ok() {
            self.result = self
                .key(field)
                .map(|()| self.line.push_str(itoa::Buffer::new().format(value)));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.result.is_ok() {
            self.result = self
                .key(field)
                .map(|()| self.line.push_str(if value { "true" } else { "false" }));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            let value = if self.hides(field) {
                Cow::Borrowed(REDACTED)
            } else if self.redact {
                redact_secrets(value)
            } else {
                Cow::Borrowed(value)
            };
            self.result = self
                .key(field)
                .and_then(|()| write_json_str(self.line, &value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            if self.hides(field) {
                self.record_str(field, REDACTED);
                return;
            }
            // `message` arrives as `format_args!`, whose Debug is its text.
            // It is formatted at the end of the line as it is, and copied
            // again only when it needs escaping or masking: most messages
            // need neither.
            self.result = self.key(field).and_then(|()| {
                self.line.push('"');
                let start = self.line.len();
                write!(self.line, "{value:?}")?;
                let text = &self.line[start..];
                let masked = if self.redact {
                    match redact_secrets(text) {
                        Cow::Owned(masked) => Some(masked),
                        Cow::Borrowed(_) => None,
                    }
                } else {
                    None
                };
                if masked.is_some() || !is_plain(text.as_bytes()) {
                    let raw = self.line.split_off(start);
                    write_json_chars(self.line, masked.as_deref().unwrap_or(&raw))?;
                }
                self.line.push('"');
                Ok(())
            });
        }
    }
}

/// Writes `value` as a JSON string.
fn write_json_str(writer: &mut impl fmt::Write, value: &str) -> fmt::Result {
    writer.write_char('"')?;
    write_json_chars(writer, value)?;
    writer.write_char('"')
}

/// Whether `value` goes into a JSON string as it is: no control character,
/// quote or backslash. Eight bytes at a time, with the bit tricks that find
/// a byte below a bound or equal to a value in a word.
fn is_plain(value: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Some byte of `word` is below `bound` (at most 0x80).
    let below =
        |word: u64, bound: u8| word.wrapping_sub(ONES * u64::from(bound)) & !word & HIGHS != 0;
    let quote = ONES * u64::from(b'"');
    let backslash = ONES * u64::from(b'\\');
    let mut words = value.chunks_exact(8);
    for word in &mut words {
        let word = u64::from_le_bytes(<[u8; 8]>::try_from(word).unwrap_or_default());
        if below(word, 0x20) || below(word ^ quote, 1) || below(word ^ backslash, 1) {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|&byte| byte >= 0x20 && byte != b'"' && byte != b'\\')
}

/// Writes `value` escaped for the inside of a JSON string.
fn write_json_chars(writer: &mut impl fmt::Write, value: &str) -> fmt::Result {
    // Most values (ids, routes, messages) need no escaping: one scan, one
    // copy.
    if is_plain(value.as_bytes()) {
        return writer.write_str(value);
    }
    let mut start = 0;
    for (i, byte) in value.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        writer.write_str(&value[start..i])?;
        if escape.is_empty() {
            write!(writer, "\\u{byte:04x}")?;
        } else {
            writer.write_str(escape)?;
        }
        start = i + 1;
    }
    writer.write_str(&value[start..])
}

#[cfg(test)]
mod tests {
    use super::write_json_str;

    #[test]
    fn latencies_are_milliseconds_to_the_nanosecond() {
        use std::time::Duration;
        for (elapsed, text) in [
            (Duration::ZERO, "0.0"),
            (Duration::from_nanos(102_231), "0.102231"),
            (Duration::from_nanos(1), "0.000001"),
            (Duration::from_millis(1500), "1500.0"),
            (Duration::from_nanos(2_500_000), "2.5"),
            (Duration::from_secs(90_000), "90000000.0"),
            (Duration::new(3, 40_000_001), "3040.000001"),
            (Duration::from_nanos(987_654_321), "987.654321"),
            (Duration::from_nanos(10_000_000), "10.0"),
            (Duration::from_nanos(10_100_000), "10.1"),
        ] {
            let mut line = String::new();
            super::push_millis(&mut line, elapsed);
            assert_eq!(line, text);
            let number: f64 = serde_json::from_str(&line).unwrap();
            assert!((number - elapsed.as_secs_f64() * 1000.0).abs() < 1e-6);
        }
    }

    #[test]
    fn timestamps_are_rfc_3339_with_microseconds() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_795_466_647_000_042);
        let mut line = String::new();
        super::push_timestamp(&mut line, time);
        assert_eq!(line, "2026-11-23T20:44:07.000042Z");
        let mut again = String::new();
        super::push_timestamp(&mut again, time + std::time::Duration::from_micros(5));
        assert_eq!(again, "2026-11-23T20:44:07.000047Z");
        let mut all = String::new();
        super::push_timestamp(&mut all, time + std::time::Duration::from_micros(987_654));
        assert_eq!(all, "2026-11-23T20:44:07.987696Z");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn quieting_request_lines_keeps_the_request_fields_on_a_handlers_lines() {
        use axum::Router;
        use axum::body::Body;
        use axum::routing::get;
        use tower::ServiceExt as _;

        let written = crate::captured::Captured::default();
        let mut settings = crate::TelemetrySettings::default();
        settings.log.format = Some(crate::LogFormat::Json);
        settings.log.level = "info,opsready::request=warn".to_owned();
        let sink = written.clone();
        let subscriber = super::subscriber(&settings, move || sink.clone()).unwrap();
        let _default = tracing::subscriber::set_default(subscriber);
        let app: Router = Router::new()
            .route(
                "/ok",
                get(|| async {
                    tracing::info!("inside");
                    "fine"
                }),
            )
            .route(
                "/broken",
                get(|| async { http::StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .layer(crate::TelemetryLayer::new());

        for (path, id) in [("/ok", "req-quiet-1"), ("/broken", "req-quiet-2")] {
            let request = http::Request::get(path)
                .header("x-request-id", id)
                .body(Body::empty())
                .unwrap();
            app.clone().oneshot(request).await.unwrap();
        }

        let lines: Vec<serde_json::Value> = written
            .text()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let inside = lines
            .iter()
            .find(|line| line["message"] == "inside")
            .unwrap();
        assert_eq!(inside["request_id"], "req-quiet-1", "{inside}");
        assert_eq!(inside["route"], "/ok");
        let request_lines: Vec<_> = lines
            .iter()
            .filter(|line| line["target"] == "opsready::request")
            .collect();
        assert_eq!(request_lines.len(), 1, "{lines:?}");
        assert_eq!(request_lines[0]["message"], "request failed");
        assert_eq!(request_lines[0]["request_id"], "req-quiet-2");
    }

    /// Lines at `ERROR` to one buffer, the others to another, as a
    /// service sending errors to standard error would.
    #[derive(Clone, Default)]
    struct ByLevel {
        errors: crate::captured::Captured,
        rest: crate::captured::Captured,
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ByLevel {
        type Writer = crate::captured::Captured;

        fn make_writer(&'a self) -> Self::Writer {
            self.rest.clone()
        }

        fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
            if *meta.level() == tracing::Level::ERROR {
                self.errors.clone()
            } else {
                self.rest.clone()
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn request_lines_go_where_the_writer_sends_their_level() {
        use axum::body::Body;
        use axum::routing::get;
        use tower::ServiceExt as _;

        let writer = ByLevel::default();
        let mut settings = crate::TelemetrySettings::default();
        settings.log.format = Some(crate::LogFormat::Json);
        let subscriber = super::subscriber(&settings, writer.clone()).unwrap();
        let _default = tracing::subscriber::set_default(subscriber);
        let app = axum::Router::new()
            .route("/ok", get(|| async { "fine" }))
            .route(
                "/broken",
                get(|| async { http::StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .layer(crate::TelemetryLayer::new());

        for path in ["/ok", "/broken"] {
            let request = http::Request::get(path).body(Body::empty()).unwrap();
            app.clone().oneshot(request).await.unwrap();
        }

        let errors = writer.errors.text();
        let rest = writer.rest.text();
        assert!(errors.contains("\"request failed\""), "{errors}");
        assert!(!errors.contains("\"request finished\""), "{errors}");
        assert!(rest.contains("\"request finished\""), "{rest}");
        assert!(!rest.contains("\"request failed\""), "{rest}");
    }

    #[test]
    fn the_json_layer_hands_over_its_writer_for_request_lines_and_no_other_does() {
        use super::RequestFields;
        use crate::layer::{REQUEST_SPAN_TARGET, REQUEST_TARGET};

        let written = crate::captured::Captured::default();
        for (format, expected) in [
            (crate::LogFormat::Json, true),
            (crate::LogFormat::Pretty, false),
        ] {
            let mut settings = crate::TelemetrySettings::default();
            settings.log.format = Some(format);
            let sink = written.clone();
            let subscriber = super::subscriber(&settings, move || sink.clone()).unwrap();
            let _default = tracing::subscriber::set_default(subscriber);

            let fields =
                RequestFields::render("GET", Some("/x"), ("req-1", false), Some(("ab", "cd")));
            let (span, line) =
                fields.hand_to(|| tracing::info_span!(target: REQUEST_SPAN_TARGET, "request"));

            assert!(!span.is_disabled());
            assert_eq!(line.is_some(), expected, "{format:?}");
            if let Some(line) = line {
                line.write(
                    Some(503),
                    std::time::Duration::from_micros(1500),
                    std::time::SystemTime::now(),
                    (
                        Some("SERVICE_UNAVAILABLE"),
                        Some("pool timed out: \"primary\""),
                    ),
                );
            }
        }
        let text = written.text();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["target"], REQUEST_TARGET);
        assert_eq!(line["message"], "request failed");
        assert_eq!(line["status"], 503);
        assert_eq!(line["latency_ms"], 1.5);
        assert_eq!(line["code"], "SERVICE_UNAVAILABLE");
        assert_eq!(line["error"], "pool timed out: \"primary\"");
        assert_eq!(line["route"], "/x");
        assert_eq!(line["trace_id"], "ab");
    }

    #[test]
    fn pretty_lines_mask_the_credentials_their_fields_and_spans_quote() {
        let written = crate::captured::Captured::default();
        let mut settings = crate::TelemetrySettings::default();
        settings.log.format = Some(crate::LogFormat::Pretty);
        let sink = written.clone();
        let subscriber = super::subscriber(&settings, move || sink.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("job", upstream = "https://h/x?token=SPAN-SECRET");
            let _entered = span.enter();
            tracing::warn!(
                password = "FIELD-SECRET",
                error = %"cannot reach postgres://app:ERROR-SECRET@db/app",
                "retrying redis://:MESSAGE-SECRET@cache:6379"
            );
        });

        let text = written.text();
        assert!(
            text.contains("retrying redis://:[REDACTED]@cache:6379"),
            "{text}"
        );
        assert!(text.contains("password=\"[REDACTED]\""), "{text}");
        assert!(text.contains("postgres://app:[REDACTED]@db/app"), "{text}");
        assert!(text.contains("token=[REDACTED]"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
    }

    #[test]
    fn plain_directives_use_the_static_filter_and_filter_as_env_filter_would() {
        use tracing::Level;
        use tracing_subscriber::layer::SubscriberExt as _;

        assert!(super::static_targets("[request]=debug").is_none());
        assert!(super::static_targets("info,[{user=\"x\"}]=trace").is_none());
        for directives in [
            "info",
            "warn",
            "debug,hyper=info",
            "opsready::request=warn,info",
            "error,app=trace",
            "info,",
            " info",
            "info, app=warn",
            "warn ,app=trace",
            ",debug,,hyper=info ,",
        ] {
            let tidy = super::tidy_directives(directives);
            let fixed = super::static_targets(&tidy).unwrap();
            let dynamic = tracing_subscriber::EnvFilter::try_new(&tidy).unwrap();
            let check = |filter: &dyn Fn() -> tracing::Dispatch| {
                tracing::dispatcher::with_default(&filter(), || {
                    [
                        tracing::enabled!(target: "app", Level::TRACE),
                        tracing::enabled!(target: "app::db", Level::DEBUG),
                        tracing::enabled!(target: "hyper::proto", Level::DEBUG),
                        tracing::enabled!(target: "hyper", Level::INFO),
                        tracing::enabled!(target: "opsready::request", Level::INFO),
                        tracing::enabled!(target: "opsready::request", Level::ERROR),
                        tracing::enabled!(target: "other", Level::WARN),
                        tracing::enabled!(target: "other", Level::INFO),
                    ]
                })
            };
            let fixed = check(&|| {
                tracing::Dispatch::new(tracing_subscriber::registry().with(fixed.clone()))
            });
            let dynamic = check(&|| {
                tracing::Dispatch::new(tracing_subscriber::registry().with(dynamic.clone()))
            });
            assert_eq!(fixed, dynamic, "{directives}");
        }
    }

    #[test]
    fn spaces_and_empty_directives_filter_as_the_directives_without_them() {
        use tracing::Level;
        use tracing_subscriber::layer::SubscriberExt as _;

        for level in [" info", "info,", "info , hyper=warn", ",info"] {
            let tidy = super::tidy_directives(level);
            let targets = super::static_targets(&tidy).unwrap();
            let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(targets));
            tracing::dispatcher::with_default(&dispatch, || {
                assert!(tracing::enabled!(target: "other", Level::INFO), "{level}");
                assert!(!tracing::enabled!(target: "other", Level::DEBUG), "{level}");
            });
        }
        assert_eq!(
            super::tidy_directives(" info , hyper=warn,"),
            "info,hyper=warn"
        );
    }

    #[test]
    fn strings_are_escaped_as_json() {
        let mut out = String::new();
        write_json_str(&mut out, "a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn a_character_to_escape_is_found_wherever_it_is() {
        // Each position in words of eight bytes and in the rest after them,
        // among bytes just outside the escaped ranges and multi-byte UTF-8.
        let others = ['a', ' ', '!', '#', '[', ']', '~', 'é'];
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
            for len in 1..=19 {
                for at in 0..len {
                    let value: String = (0..len)
                        .map(|i| if i == at { special } else { others[i % 8] })
                        .collect();
                    assert!(!super::is_plain(value.as_bytes()), "{value:?}");
                    let mut out = String::new();
                    write_json_str(&mut out, &value).unwrap();
                    let parsed: String = serde_json::from_str(&out).unwrap();
                    assert_eq!(parsed, value, "{out}");
                }
            }
        }
        assert!(super::is_plain(
            b"0193b5d4-7e4c-7abc-9def-0123456789ab /orders/{id} \x7f~ !#"
        ));
        assert!(super::is_plain("caf\u{e9} \u{1f600}".as_bytes()));
    }

    #[cfg(not(feature = "otlp"))]
    #[test]
    fn an_otlp_endpoint_in_a_build_without_the_feature_is_an_error() {
        use opsready_settings::{Validate as _, Violations};

        let mut settings = crate::TelemetrySettings::default();
        settings.otlp.endpoint = Some("http://localhost:4317".to_owned());

        let error = super::init(&settings, &super::ServiceInfo::new("svc", "1.0.0")).unwrap_err();
        let mut violations = Violations::new();
        settings.validate(&mut violations);

        assert!(error.to_string().contains("`otlp` feature"), "{error}");
        let (key, message) = violations.iter().next().unwrap();
        assert_eq!(key, "otlp.endpoint");
        assert!(message.contains("`otlp` feature"), "{message}");
    }
}
