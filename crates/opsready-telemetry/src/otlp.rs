//! OTLP export of the spans (feature `otlp`): the tracer provider built from
//! `telemetry.otlp.*`, and the hand-over of the incoming trace context to the
//! exported request span. Spans and log records leave with the credentials
//! they quote masked, as the JSON lines do.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::HeaderValue;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{
    SpanContext, SpanKind, Status, TraceContextExt as _, TraceFlags, TracerProvider as _,
};
use opentelemetry::{InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use opentelemetry_otlp::{
    Compression, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord, SdkLoggerProvider};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanProcessor,
    TracerProviderBuilder,
};
use opsready_vocab::{REDACTED, is_sensitive_name, redact_secrets};
use tracing::Span;
use tracing::Subscriber;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt as _};
use tracing_subscriber::filter::{FilterFn, Filtered};
use tracing_subscriber::registry::LookupSpan;

use crate::context::{SpanId, TraceContext, TraceId, TraceState};
use crate::layer::REQUEST_TARGET;
use crate::settings::{
    OtlpCompression, OtlpProtocol, TelemetrySettings, is_https, otlp_endpoint_problem, otlp_headers,
};
use crate::subscriber::{ServiceInfo, TelemetryError};

/// How long one export may take, as the OTLP exporters' own default.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// `scheme://user:password@host/…` without `user:password@`.
fn without_userinfo(endpoint: &str) -> String {
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return endpoint.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => endpoint.to_owned(),
    }
}

/// The providers of `settings`: spans, and log records when
/// `telemetry.otlp.logs` asks for them. `None` when no endpoint is set.
pub(crate) struct Providers {
    pub(crate) tracer: SdkTracerProvider,
    pub(crate) logger: Option<SdkLoggerProvider>,
}

/// The providers of `settings`, or `None` when no endpoint is set.
///
/// # Errors
///
/// When the endpoint is malformed or an exporter cannot be built: a
/// configured exporter that does not run is an error, never silence.
pub(crate) fn providers(
    settings: &TelemetrySettings,
    service: &ServiceInfo,
) -> Result<Option<Providers>, TelemetryError> {
    let Some(transport) = Transport::of(settings)? else {
        return Ok(None);
    };
    if !(0.0..=1.0).contains(&settings.sample_ratio) {
        return Err(TelemetryError::new(format!(
            "telemetry.sample_ratio {} must be between 0.0 and 1.0",
            settings.sample_ratio
        )));
    }
    let resource = resource(settings, service);
    let spans = match transport.protocol {
        OtlpProtocol::Grpc => transport
            .tonic(opentelemetry_otlp::SpanExporter::builder().with_tonic())
            .build(),
        OtlpProtocol::Http => transport
            .http(
                opentelemetry_otlp::SpanExporter::builder().with_http(),
                "traces",
            )
            .build(),
    }
    .map_err(|error| transport.cannot_start(&error))?;
    // A dedicated thread batches and sends the spans, off the request path.
    let tracer = provider_builder(settings, service)
        .with_span_processor(MaskSpanCredentials {
            next: BatchSpanProcessor::builder(spans).build(),
        })
        .build();
    let logger = if settings.otlp.logs {
        let records = match transport.protocol {
            OtlpProtocol::Grpc => transport
                .tonic(opentelemetry_otlp::LogExporter::builder().with_tonic())
                .build(),
            OtlpProtocol::Http => transport
                .http(
                    opentelemetry_otlp::LogExporter::builder().with_http(),
                    "logs",
                )
                .build(),
        }
        .map_err(|error| transport.cannot_start(&error))?;
        Some(
            SdkLoggerProvider::builder()
                .with_resource(resource)
                // Processors run in order on the same record: the batch
                // takes it masked.
                .with_log_processor(MaskCredentials::new())
                .with_batch_exporter(records)
                .build(),
        )
    } else {
        None
    };
    Ok(Some(Providers { tracer, logger }))
}

/// How the exporters reach the collector: `telemetry.otlp.*` read and
/// checked once, for spans and log records alike.
struct Transport {
    endpoint: String,
    /// The endpoint without credentials, for messages.
    shown: String,
    protocol: OtlpProtocol,
    compression: Option<Compression>,
    headers: Vec<(String, String)>,
    authorities: Option<(Vec<u8>, Vec<otlp_reqwest::Certificate>)>,
    identity: Option<ClientIdentity>,
    /// The OTLP/HTTP client over https, made once and shared.
    http_client: Option<otlp_reqwest::blocking::Client>,
}

impl Transport {
    fn of(settings: &TelemetrySettings) -> Result<Option<Self>, TelemetryError> {
        let Some(endpoint) = settings.otlp.endpoint.as_deref() else {
            return Ok(None);
        };
        // Messages show the endpoint without its credentials, if it has any.
        let shown = without_userinfo(endpoint);
        if let Some(problem) = otlp_endpoint_problem(endpoint) {
            return Err(TelemetryError::new(format!(
                "telemetry.otlp.endpoint `{shown}` {problem}"
            )));
        }
        let headers = match &settings.otlp.headers {
            Some(text) => otlp_headers(text.expose_secret()).map_err(|problem| {
                TelemetryError::new(format!("telemetry.otlp.headers: {problem}"))
            })?,
            None => Vec::new(),
        };
        let authorities = match &settings.otlp.ca_file {
            Some(path) => Some(authorities(path)?),
            None => None,
        };
        let identity = match (
            &settings.otlp.client_cert_file,
            &settings.otlp.client_key_file,
        ) {
            (Some(cert), Some(key)) => Some(ClientIdentity::read(cert, key)?),
            (None, None) => None,
            _ => {
                return Err(TelemetryError::new(
                    "telemetry.otlp.client_cert_file and telemetry.otlp.client_key_file must be set together",
                ));
            }
        };
        let mut transport = Self {
            endpoint: endpoint.to_owned(),
            shown,
            protocol: settings.otlp.protocol,
            compression: match settings.otlp.compression {
                OtlpCompression::None => None,
                OtlpCompression::Gzip => Some(Compression::Gzip),
            },
            headers,
            authorities,
            identity,
            http_client: None,
        };
        match transport.protocol {
            // The gRPC channel spawns its connection task when it is built.
            OtlpProtocol::Grpc if tokio::runtime::Handle::try_current().is_err() => {
                return Err(transport.cannot_start(
                    &"gRPC export needs `init` to be called inside a Tokio runtime",
                ));
            }
            // Over https, always a client of this crate's making, with TLS
            // built in, rather than the exporter's default one.
            OtlpProtocol::Http if is_https(endpoint) => {
                let certificates = transport
                    .authorities
                    .as_ref()
                    .map(|(_, certificates)| certificates.clone())
                    .unwrap_or_default();
                let identity = transport
                    .identity
                    .as_ref()
                    .map(|identity| identity.http.clone());
                transport.http_client = Some(
                    http_client(certificates, identity)
                        .map_err(|error| transport.cannot_start(&error))?,
                );
            }
            _ => {}
        }
        Ok(Some(transport))
    }

    fn cannot_start(&self, error: &dyn std::fmt::Display) -> TelemetryError {
        TelemetryError::new(format!(
            "the OTLP exporter for telemetry.otlp.endpoint `{}` cannot start: {error}",
            self.shown
        ))
    }

    /// A gRPC exporter's builder pointed at the collector, with the
    /// headers as metadata and TLS for an `https://` endpoint.
    fn tonic<B: WithExportConfig + WithTonicConfig>(&self, builder: B) -> B {
        let mut builder = builder
            .with_protocol(Protocol::Grpc)
            .with_endpoint(self.endpoint.clone());
        if !self.headers.is_empty() {
            builder = builder.with_metadata(metadata(&self.headers));
        }
        if let Some(compression) = self.compression {
            builder = builder.with_compression(compression);
        }
        if is_https(&self.endpoint) {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some((pem, _)) = &self.authorities {
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            if let Some(identity) = &self.identity {
                tls = tls.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
            }
            builder = builder.with_tls_config(tls);
        }
        builder
    }

    /// An HTTP exporter's builder pointed at `{endpoint}/v1/{signal}`, with
    /// the headers and, over https, the crate's client.
    fn http<B: WithExportConfig + WithHttpConfig>(&self, builder: B, signal: &str) -> B {
        // The setting is the collector's base address, as
        // OTEL_EXPORTER_OTLP_ENDPOINT is; each signal goes to its path.
        let mut builder = builder
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!(
                "{}/v1/{signal}",
                self.endpoint.trim_end_matches('/')
            ));
        if !self.headers.is_empty() {
            builder = builder.with_headers(self.headers.iter().cloned().collect());
        }
        if let Some(compression) = self.compression {
            builder = builder.with_compression(compression);
        }
        if let Some(client) = &self.http_client {
            builder = builder.with_http_client(client.clone());
        }
        builder
    }
}

/// The certificate authorities of `telemetry.otlp.ca_file`: the PEM text,
/// for gRPC, and the certificates read from it, for HTTP. Reading them here
/// makes a missing or malformed file an error at start-up rather than
/// exports failing later.
fn authorities(path: &Path) -> Result<(Vec<u8>, Vec<otlp_reqwest::Certificate>), TelemetryError> {
    let problem = |what: String| {
        TelemetryError::new(format!(
            "telemetry.otlp.ca_file `{}` {what}",
            path.display()
        ))
    };
    let pem = std::fs::read(path).map_err(|error| problem(format!("cannot be read: {error}")))?;
    let certificates = otlp_reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|error| problem(format!("is not a PEM file of certificates: {error}")))?;
    if certificates.is_empty() {
        return Err(problem(
            "holds no certificate: expected `-----BEGIN CERTIFICATE-----` blocks".to_owned(),
        ));
    }
    Ok((pem, certificates))
}

/// The certificate and key of `telemetry.otlp.client_cert_file` and
/// `client_key_file`, read at start-up: as PEM for gRPC, and as the HTTP
/// client's identity, whose parsing checks that both files are what they
/// should be.
struct ClientIdentity {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    http: otlp_reqwest::Identity,
}

impl ClientIdentity {
    fn read(cert: &Path, key: &Path) -> Result<Self, TelemetryError> {
        let read = |key: &str, path: &Path| {
            std::fs::read(path).map_err(|error| {
                TelemetryError::new(format!(
                    "telemetry.otlp.{key} `{}` cannot be read: {error}",
                    path.display()
                ))
            })
        };
        let cert_pem = read("client_cert_file", cert)?;
        let key_pem = read("client_key_file", key)?;
        let http = otlp_reqwest::Identity::from_pkcs8_pem(&cert_pem, &key_pem).map_err(|error| {
            TelemetryError::new(format!(
                "telemetry.otlp.client_cert_file `{}` and client_key_file `{}` are not a PEM certificate and its PKCS#8 key (`-----BEGIN PRIVATE KEY-----`): {error}",
                cert.display(),
                key.display()
            ))
        })?;
        Ok(Self {
            cert_pem,
            key_pem,
            http,
        })
    }
}

/// The headers as gRPC metadata. Their names and values were checked by
/// [`otlp_headers`], so none is skipped.
fn metadata(headers: &[(String, String)]) -> MetadataMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.append(name, value);
        }
    }
    MetadataMap::from_headers(map)
}

/// The blocking HTTP client of the OTLP/HTTP exporter, trusting
/// `certificates` besides the system's authorities and showing `identity`
/// to a collector that asks, with the exporter's usual 10 s timeout. Built
/// on a thread of its own: a blocking client starts a runtime, which cannot
/// be done inside the caller's.
fn http_client(
    certificates: Vec<otlp_reqwest::Certificate>,
    identity: Option<otlp_reqwest::Identity>,
) -> Result<otlp_reqwest::blocking::Client, String> {
    std::thread::spawn(move || {
        let mut builder = certificates.into_iter().fold(
            otlp_reqwest::blocking::Client::builder().timeout(EXPORT_TIMEOUT),
            otlp_reqwest::blocking::ClientBuilder::add_root_certificate,
        );
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        builder.build().map_err(|error| error.to_string())
    })
    .join()
    .map_err(|_| "building the HTTP client failed".to_owned())?
}

/// The tracer provider's sampler and resource, without an exporter.
fn provider_builder(settings: &TelemetrySettings, service: &ServiceInfo) -> TracerProviderBuilder {
    // A continued trace keeps the caller's decision, so that a trace is
    // whole or absent; only new traces are sampled by the ratio.
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio)));
    SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_resource(resource(settings, service))
}

/// The resource every exported span and log record names: the service's
/// name and version.
fn resource(settings: &TelemetrySettings, service: &ServiceInfo) -> Resource {
    let name = settings
        .service_name
        .clone()
        .unwrap_or_else(|| service.name.clone());
    Resource::builder()
        .with_service_name(name)
        .with_attribute(KeyValue::new("service.version", service.version.clone()))
        .build()
}

/// The tracing layer that turns spans into OpenTelemetry spans of
/// `provider`. The exporters' own spans (`h2`, `tonic`, `hyper`, …, at a
/// `debug` or `trace` level) are left out, as their events are from log
/// export: exporting them would make more of them, a batch of spans about
/// each batch sent.
pub(crate) fn layer<S>(
    provider: &SdkTracerProvider,
) -> Filtered<OpenTelemetryLayer<S, SdkTracer>, FilterFn, S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    let scope = InstrumentationScope::builder("opsready-telemetry")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer_with_scope(scope))
        // Source locations and threads would name this crate's files and
        // the runtime's workers, not the service's code.
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(not_the_exporters_own())
}

/// The filter that leaves out what the export machinery itself records.
fn not_the_exporters_own() -> FilterFn {
    tracing_subscriber::filter::filter_fn(|metadata| !is_exporters_own(metadata.target()))
}

/// The request span's fields that each log record of the request carries
/// as attributes, as its JSON lines do: a backend finds a request's
/// records by its id or route, not only by trace.
pub(crate) const LOG_RECORD_SPAN_FIELDS: [&str; 3] =
    ["request_id", "http.route", "http.request.method"];

/// The tracing layer that turns events into OpenTelemetry log records of
/// `provider`, in the span's trace when there is one, with the request
/// span's [`LOG_RECORD_SPAN_FIELDS`]. The exporters' own events are left
/// out: sending them would make more of them.
pub(crate) fn log_layer<S>(provider: &SdkLoggerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    use opentelemetry_appender_tracing::layer::TracingSpanAttributes;
    use tracing_subscriber::Layer as _;
    OpenTelemetryTracingBridge::builder(provider)
        .with_tracing_span_attributes(TracingSpanAttributes::allowlist(LOG_RECORD_SPAN_FIELDS))
        .build()
        .with_filter(not_the_exporters_own())
}

/// Masks the credentials of log records before they are batched for
/// export, as the JSON lines do: an attribute named like a credential
/// (`password`, `api_key`, …) whole, and in the body and every other
/// string attribute, the credentials the text quotes
/// ([`opsready_vocab::redact_secrets`]). The request line's own records are
/// left as they are: their one free text, `error`, is masked already.
#[derive(Debug)]
struct MaskCredentials {
    /// An empty record. A processor cannot change a record's attributes in
    /// place, so a record with something to mask is rebuilt from a copy of
    /// this one.
    empty: SdkLogRecord,
}

impl MaskCredentials {
    fn new() -> Self {
        // Records are made only by loggers; one of a provider without
        // processors makes the empty one, and is dropped with it.
        let empty = SdkLoggerProvider::builder()
            .build()
            .logger("opsready-telemetry")
            .create_log_record();
        Self { empty }
    }
}

/// `text` with the credentials it quotes masked, or `None` when it quotes
/// none.
fn masked(text: &str) -> Option<String> {
    match redact_secrets(text) {
        Cow::Owned(masked) => Some(masked),
        Cow::Borrowed(_) => None,
    }
}

/// The masked value of an attribute, or `None` when it has nothing to mask.
/// Only text is masked: a number under a credential-like name
/// (`gen_ai.usage.input_tokens`) is a count, not a secret.
fn masked_attribute(key: &Key, value: &AnyValue) -> Option<AnyValue> {
    if matches!(value, AnyValue::String(_)) && is_sensitive_name(key.as_str()) {
        return Some(AnyValue::from(REDACTED));
    }
    masked_text(value)
}

/// A value with the credentials its text quotes masked, in lists and maps
/// at any depth, or `None` when it has none (or no text).
fn masked_text(value: &AnyValue) -> Option<AnyValue> {
    match value {
        AnyValue::String(text) => masked(text.as_str()).map(AnyValue::from),
        // Lists and maps at any depth: copied only when something in them
        // is masked.
        AnyValue::ListAny(items) => {
            let masked: Vec<Option<AnyValue>> = items.iter().map(masked_text).collect();
            masked.iter().any(Option::is_some).then(|| {
                AnyValue::ListAny(Box::new(
                    masked
                        .into_iter()
                        .zip(items.iter())
                        .map(|(masked, item)| masked.unwrap_or_else(|| item.clone()))
                        .collect(),
                ))
            })
        }
        AnyValue::Map(fields) => {
            let masked: Vec<(&Key, &AnyValue, Option<AnyValue>)> = fields
                .iter()
                .map(|(key, value)| (key, value, masked_attribute(key, value)))
                .collect();
            masked
                .iter()
                .any(|(_, _, masked)| masked.is_some())
                .then(|| {
                    AnyValue::Map(Box::new(
                        masked
                            .into_iter()
                            .map(|(key, value, masked)| {
                                (key.clone(), masked.unwrap_or_else(|| value.clone()))
                            })
                            .collect(),
                    ))
                })
        }
        _ => None,
    }
}

impl LogProcessor for MaskCredentials {
    fn emit(&self, record: &mut SdkLogRecord, _scope: &InstrumentationScope) {
        if record
            .target()
            .is_some_and(|target| target == REQUEST_TARGET)
        {
            return;
        }
        let body = record.body().and_then(masked_text);
        let attributes = record
            .attributes_iter()
            .any(|(key, value)| masked_attribute(key, value).is_some());
        if body.is_none() && !attributes {
            return;
        }
        let mut masked = self.empty.clone();
        if let Some(name) = record.event_name() {
            masked.set_event_name(name);
        }
        if let Some(target) = record.target() {
            masked.set_target(target.clone());
        }
        if let Some(time) = record.timestamp() {
            masked.set_timestamp(time);
        }
        if let Some(time) = record.observed_timestamp() {
            masked.set_observed_timestamp(time);
        }
        if let Some(context) = record.trace_context() {
            masked.set_trace_context(context.trace_id, context.span_id, context.trace_flags);
        }
        if let Some(text) = record.severity_text() {
            masked.set_severity_text(text);
        }
        if let Some(number) = record.severity_number() {
            masked.set_severity_number(number);
        }
        if let Some(body) = body.or_else(|| record.body().cloned()) {
            masked.set_body(body);
        }
        for (key, value) in record.attributes_iter() {
            let value = masked_attribute(key, value).unwrap_or_else(|| value.clone());
            masked.add_attribute(key.clone(), value);
        }
        *record = masked;
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    // Nothing to release: the batch processor after it has the thread.
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The request span's attributes that the telemetry layer sets itself,
/// none of which can hold a credential: not scanned in the request span
/// (the one server span), scanned in any other. `url.path` is the
/// client's, and is scanned (`/reset/token=…`, `;jsessionid=…`). The
/// request id may be the caller's too, but it is the key that joins the
/// span to the log lines and the problem body, which show it as it is.
const OWN_SPAN_ATTRIBUTES: [&str; 7] = [
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "request_id",
    "trace_id",
    "span_id",
    "parent_span_id",
];

/// Masks the credentials of spans before `next` (the batch processor)
/// takes them, as the log lines do: an attribute named like a credential
/// whole, and the credentials that other string attributes quote; and in
/// the span's events (the log events inside it, which tracing-opentelemetry
/// adds), their names, which are the messages, and their attributes.
#[derive(Debug)]
struct MaskSpanCredentials<P> {
    next: P,
}

impl<P: SpanProcessor> SpanProcessor for MaskSpanCredentials<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.next.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        // The request span is the one server span the layer makes.
        let own: &[&str] = if span.span_kind == SpanKind::Server {
            &OWN_SPAN_ATTRIBUTES
        } else {
            &[]
        };
        mask_attributes(&mut span.attributes, own);
        // An error event's message becomes the status's description.
        if let Status::Error { description } = &mut span.status
            && let Some(text) = masked(description)
        {
            *description = Cow::Owned(text);
        }
        for event in &mut span.events.events {
            if let Some(name) = masked(&event.name) {
                event.name = Cow::Owned(name);
            }
            mask_attributes(&mut event.attributes, &[]);
        }
        self.next.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.next.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.next.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.next.set_resource(resource);
    }
}

/// Masks, in place, the attributes that are credentials or quote one.
fn mask_attributes(attributes: &mut [KeyValue], own: &[&str]) {
    for attribute in attributes {
        let key = attribute.key.as_str();
        if own.contains(&key) {
            continue;
        }
        // Only text is masked: a number under a credential-like name is a
        // count (`gen_ai.usage.input_tokens`), not a secret.
        let Value::String(text) = &attribute.value else {
            continue;
        };
        if is_sensitive_name(key) {
            attribute.value = Value::from(REDACTED);
            continue;
        }
        if let Some(text) = masked(text.as_str()) {
            attribute.value = Value::from(text);
        }
    }
}

/// Whether spans and events of `target` come from the export machinery
/// itself: the OpenTelemetry crates, and the crates its gRPC and HTTP
/// clients are made of. Whole crate names: `hyperloglog` is not `hyper`.
fn is_exporters_own(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    krate.starts_with("opentelemetry")
        || [
            "tonic",
            "h2",
            "hyper",
            "hyper_util",
            "reqwest",
            "tower",
            "rustls",
        ]
        .contains(&krate)
}

/// A layer that does nothing but mark a subscriber as exporting spans, so
/// that [`active`] can tell with a type check rather than per-request work.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exporting {
    // Made only by `exporting`, which notes that one exists.
    _private: (),
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for Exporting {}

/// Whether an [`Exporting`] marker was ever made in this process: until
/// then no subscriber can export, and [`active`] need not look.
static EVER_EXPORTING: AtomicBool = AtomicBool::new(false);

/// The marker of a subscriber that exports spans.
pub(crate) fn exporting() -> Exporting {
    EVER_EXPORTING.store(true, Ordering::Release);
    Exporting { _private: () }
}

/// Whether the current subscriber exports spans over OTLP.
pub(crate) fn active() -> bool {
    EVER_EXPORTING.load(Ordering::Acquire)
        && tracing::dispatcher::get_default(|dispatch| dispatch.is::<Exporting>())
}

/// Makes `span`'s OpenTelemetry span the child of the incoming trace
/// context, and takes its ids into `context` and into the span's
/// `trace_id` and `span_id` fields: the `traceparent` returned to the
/// caller, the log lines and the exported span then name the same span.
///
/// Without an incoming parent the span starts a trace of its own, even if it
/// was opened inside another span: a request is a root in this service.
pub(crate) fn adopt(span: &Span, context: &mut TraceContext, tracestate: Option<&TraceState>) {
    let parent = match context.parent_id {
        Some(parent_id) => {
            let state = tracestate
                .and_then(|state| opentelemetry::trace::TraceState::from_str(state.as_str()).ok())
                .unwrap_or_default();
            let flags = if context.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            let remote = SpanContext::new(
                opentelemetry::TraceId::from(context.trace_id.to_u128()),
                opentelemetry::SpanId::from(parent_id.to_u64()),
                flags,
                true,
                state,
            );
            opentelemetry::Context::new().with_remote_span_context(remote)
        }
        None => opentelemetry::Context::new(),
    };
    // Fails only for a span the filter disabled, which has no ids to share.
    let _ = span.set_parent(parent);
    let otel = span.context();
    let exported = otel.span().span_context().clone();
    if exported.is_valid()
        && let Some(trace_id) =
            TraceId::from_u128(u128::from_be_bytes(exported.trace_id().to_bytes()))
        && let Some(span_id) = SpanId::from_u64(u64::from_be_bytes(exported.span_id().to_bytes()))
    {
        context.trace_id = trace_id;
        context.span_id = span_id;
        context.sampled = exported.is_sampled();
    }
    span.record("trace_id", context.trace_id.to_hex().as_str());
    span.record("span_id", context.span_id.to_hex().as_str());
}

/// The longest `user_agent.original` an exported span carries, in bytes:
/// the caller chooses the header, and a span is no place for a kilobyte of
/// it.
const USER_AGENT_MAX: usize = 256;

/// Adds to the request's exported span the attributes of the HTTP semantic
/// conventions that only an exporter reads, so that a service that does
/// not export spans does not pay for them: `url.scheme`, `server.address`
/// and `server.port`, `network.protocol.version`, `user_agent.original`,
/// `client.address`, `network.peer.address` and `network.peer.port` (when
/// the server gives `ConnectInfo`), and `http.request.method_original` for
/// a method outside the known set.
///
/// The scheme, host and client come from `X-Forwarded-Proto`,
/// `X-Forwarded-Host` and `X-Forwarded-For` when a proxy set them, as the
/// conventions ask; they say what the caller claims, not what it proved.
pub(crate) fn describe<B>(span: &Span, request: &http::Request<B>) {
    let headers = request.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    // The first entry of a list a proxy appended to.
    let first = |name: &str| {
        header(name)?
            .split(',')
            .next()
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
    };

    let scheme = first("x-forwarded-proto")
        .map(str::to_ascii_lowercase)
        .filter(|scheme| scheme == "http" || scheme == "https")
        .or_else(|| request.uri().scheme_str().map(str::to_owned))
        .unwrap_or_else(|| "http".to_owned());
    span.set_attribute("url.scheme", scheme);

    let authority = match first("x-forwarded-host") {
        Some(forwarded) => forwarded.parse::<http::uri::Authority>().ok(),
        None => request
            .uri()
            .authority()
            .cloned()
            .or_else(|| header("host")?.parse().ok()),
    };
    if let Some(authority) = authority {
        span.set_attribute("server.address", authority.host().to_owned());
        if let Some(port) = authority.port_u16() {
            span.set_attribute("server.port", i64::from(port));
        }
    }

    let version = match request.version() {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    };
    span.set_attribute("network.protocol.version", version);

    if let Some(agent) = header("user-agent") {
        let mut end = agent.len().min(USER_AGENT_MAX);
        while !agent.is_char_boundary(end) {
            end -= 1;
        }
        span.set_attribute("user_agent.original", agent[..end].to_owned());
    }

    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0);
    if let Some(peer) = peer {
        span.set_attribute("network.peer.address", peer.ip().to_string());
        span.set_attribute("network.peer.port", i64::from(peer.port()));
    }
    let client = first("x-forwarded-for")
        .map(str::to_owned)
        .or_else(|| peer.map(|peer| peer.ip().to_string()));
    if let Some(client) = client {
        span.set_attribute("client.address", client);
    }

    if opsready_vocab::method_name(request.method()) == "_OTHER" {
        span.set_attribute(
            "http.request.method_original",
            request.method().as_str().to_owned(),
        );
    }
}

/// Marks a request span that ended in a server error (`status` 500 and
/// above) with `error.type`, the status code as text, as the HTTP semantic
/// conventions name it. A span that is not exported ignores it.
pub(crate) fn failed_with(span: &Span, status: u16) {
    span.set_attribute("error.type", status.to_string());
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::Request;
    use tower::ServiceExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::{LogFormat, TelemetryLayer};

    /// Keeps the spans it is handed; clones share them.
    #[derive(Debug, Default, Clone)]
    struct Keep(Arc<Mutex<Vec<SpanData>>>);

    impl SpanProcessor for Keep {
        fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}

        fn on_end(&self, span: SpanData) {
            self.0.lock().unwrap().push(span);
        }

        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }

        fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    /// The exported span of one request through `TelemetryLayer` to a route
    /// `/orders/{id}` that answers `status`.
    fn exported_span(request: Request<Body>, status: http::StatusCode) -> SpanData {
        let kept = Keep::default();
        let provider = provider_builder(
            &TelemetrySettings::default(),
            &ServiceInfo::new("svc", "1.0.0"),
        )
        .with_span_processor(kept.clone())
        .build();
        let mut settings = TelemetrySettings::default();
        settings.log.format = Some(LogFormat::Json);
        let subscriber = crate::subscriber(&settings, std::io::sink)
            .unwrap()
            .with(layer(&provider))
            .with(exporting());
        let app = Router::new()
            .route(
                "/orders/{id}",
                axum::routing::any(move || async move { status }),
            )
            .layer(TelemetryLayer::new());

        tracing::subscriber::with_default(subscriber, || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(app.oneshot(request))
                .unwrap()
        });

        let mut spans = kept.0.lock().unwrap();
        assert_eq!(spans.len(), 1, "{spans:?}");
        spans.remove(0)
    }

    /// The exported span's attribute `key`, as text.
    fn attribute(span: &SpanData, key: &str) -> Option<String> {
        span.attributes
            .iter()
            .find(|attribute| attribute.key.as_str() == key)
            .map(|attribute| attribute.value.to_string())
    }

    #[test]
    fn an_exported_request_span_names_the_server_the_client_and_the_protocol() {
        let request = Request::get("/orders/7")
            .header("host", "orders.internal:8443")
            .header("user-agent", format!("checkout/2.1 {}", "x".repeat(400)))
            .header("x-forwarded-for", "203.0.113.7, 10.0.0.1")
            .header("x-forwarded-proto", "HTTPS")
            .body(Body::empty())
            .unwrap();

        let span = exported_span(request, http::StatusCode::OK);

        assert_eq!(span.name, "GET /orders/{id}");
        assert_eq!(attribute(&span, "url.scheme").as_deref(), Some("https"));
        assert_eq!(
            attribute(&span, "server.address").as_deref(),
            Some("orders.internal")
        );
        assert_eq!(attribute(&span, "server.port").as_deref(), Some("8443"));
        assert_eq!(
            attribute(&span, "network.protocol.version").as_deref(),
            Some("1.1")
        );
        assert_eq!(
            attribute(&span, "client.address").as_deref(),
            Some("203.0.113.7")
        );
        let agent = attribute(&span, "user_agent.original").unwrap();
        assert!(agent.starts_with("checkout/2.1 x"), "{agent}");
        assert_eq!(agent.len(), USER_AGENT_MAX);
        assert_eq!(attribute(&span, "error.type"), None);
        assert_eq!(attribute(&span, "http.request.method_original"), None);
    }

    #[test]
    fn a_request_without_a_proxy_is_http_on_its_host_from_its_peer() {
        let get = || {
            Request::get("/orders/7")
                .header("host", "localhost")
                .body(Body::empty())
                .unwrap()
        };
        let mut with_peer = get();
        let peer: std::net::SocketAddr = "192.0.2.9:50123".parse().unwrap();
        with_peer
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));

        let span = exported_span(with_peer, http::StatusCode::OK);
        let unknown = exported_span(get(), http::StatusCode::OK);

        assert_eq!(attribute(&span, "url.scheme").as_deref(), Some("http"));
        assert_eq!(
            attribute(&span, "server.address").as_deref(),
            Some("localhost")
        );
        assert_eq!(attribute(&span, "server.port"), None);
        assert_eq!(attribute(&span, "user_agent.original"), None);
        assert_eq!(
            attribute(&span, "network.peer.address").as_deref(),
            Some("192.0.2.9")
        );
        assert_eq!(
            attribute(&span, "network.peer.port").as_deref(),
            Some("50123")
        );
        assert_eq!(
            attribute(&span, "client.address").as_deref(),
            Some("192.0.2.9")
        );
        // Without `ConnectInfo` nor a proxy's header, no one to name.
        assert_eq!(attribute(&unknown, "client.address"), None);
        assert_eq!(attribute(&unknown, "network.peer.address"), None);
    }

    #[test]
    fn a_server_error_has_an_error_type_and_a_client_error_has_none() {
        let get = || Request::get("/orders/7").body(Body::empty()).unwrap();

        let failed = exported_span(get(), http::StatusCode::SERVICE_UNAVAILABLE);
        let refused = exported_span(get(), http::StatusCode::NOT_FOUND);

        assert_eq!(attribute(&failed, "error.type").as_deref(), Some("503"));
        assert_eq!(attribute(&refused, "error.type"), None);
    }

    #[test]
    fn an_unknown_method_names_its_span_http_and_keeps_the_method_aside() {
        let request = Request::builder()
            .method("PURGE")
            .uri("/orders/7")
            .body(Body::empty())
            .unwrap();

        let span = exported_span(request, http::StatusCode::OK);

        assert_eq!(span.name, "HTTP /orders/{id}");
        assert_eq!(
            attribute(&span, "http.request.method").as_deref(),
            Some("_OTHER")
        );
        assert_eq!(
            attribute(&span, "http.request.method_original").as_deref(),
            Some("PURGE")
        );
    }

    #[test]
    fn the_exporters_own_crates_are_known_by_their_whole_name() {
        for target in [
            "h2::proto::connection",
            "tonic::transport",
            "hyper_util::client::legacy::pool",
            "tower::buffer::worker",
            "opentelemetry_sdk",
            "opentelemetry-otlp",
            "reqwest::connect",
        ] {
            assert!(is_exporters_own(target), "{target}");
        }
        for target in [
            "hyperloglog::sketch",
            "h2o",
            "towers::db",
            "orders::checkout",
        ] {
            assert!(!is_exporters_own(target), "{target}");
        }
    }

    #[test]
    fn the_exporters_own_spans_are_not_exported_at_any_level() {
        let kept = Keep::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(kept.clone())
            .build();
        let mut settings = TelemetrySettings::default();
        settings.log.format = Some(LogFormat::Json);
        settings.log.level = "trace".to_owned();
        let subscriber = crate::subscriber(&settings, std::io::sink)
            .unwrap()
            .with(layer(&provider));

        tracing::subscriber::with_default(subscriber, || {
            let _sending = tracing::trace_span!(target: "h2::proto::streams", "send").entered();
            let _inner = tracing::trace_span!(target: "hyper_util::client", "connect").entered();
            // The service's own span, even inside theirs, is exported.
            drop(tracing::info_span!(target: "orders::checkout", "charge").entered());
        });

        let names: Vec<String> = kept
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|span| span.name.to_string())
            .collect();
        assert_eq!(names, ["charge"]);
    }

    #[test]
    fn a_spans_text_is_masked_and_its_numbers_and_own_attributes_are_not() {
        let processor = MaskSpanCredentials {
            next: Keep::default(),
        };
        let mut events = opentelemetry_sdk::trace::SpanEvents::default();
        events.events.push(opentelemetry::trace::Event::new(
            "retrying postgres://app:hunter2@db/app",
            std::time::SystemTime::UNIX_EPOCH,
            vec![KeyValue::new("api_key", "k-123")],
            0,
        ));
        let span = SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: opentelemetry::trace::SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "query".into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: vec![
                KeyValue::new("db.password", "hunter2"),
                KeyValue::new("gen_ai.usage.input_tokens", 512),
                KeyValue::new("url.full", "https://h/x?token=abc&page=2"),
                KeyValue::new("url.path", "/reset/token=abc"),
            ],
            dropped_attributes_count: 0,
            events,
            links: opentelemetry_sdk::trace::SpanLinks::default(),
            status: Status::error("cannot reach redis://:hunter2@cache:6379"),
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        };

        let mut request = span.clone();
        request.span_kind = SpanKind::Server;
        processor.on_end(span);
        processor.on_end(request);

        let kept = processor.next.0.lock().unwrap();
        let span = &kept[0];
        let attribute = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.clone())
        };
        assert_eq!(attribute("db.password"), Some(Value::from(REDACTED)));
        assert_eq!(
            attribute("gen_ai.usage.input_tokens"),
            Some(Value::I64(512))
        );
        assert_eq!(
            attribute("url.full"),
            Some(Value::from("https://h/x?token=[REDACTED]&page=2"))
        );
        assert_eq!(
            attribute("url.path"),
            Some(Value::from("/reset/token=[REDACTED]"))
        );
        // The client's path is scanned in the request span too.
        let request = &kept[1];
        assert!(
            request
                .attributes
                .contains(&KeyValue::new("url.path", "/reset/token=[REDACTED]"))
        );
        assert_eq!(
            span.status,
            Status::error("cannot reach redis://:[REDACTED]@cache:6379")
        );
        let event = &span.events.events[0];
        assert_eq!(event.name, "retrying postgres://app:[REDACTED]@db/app");
        assert_eq!(event.attributes[0].value, Value::from(REDACTED));
    }

    #[test]
    fn text_nested_in_a_log_attribute_is_masked_at_any_depth() {
        let value = AnyValue::Map(Box::new(
            [
                (Key::from("password"), AnyValue::from("hunter2")),
                (Key::from("retries"), AnyValue::from(3)),
                (
                    Key::from("urls"),
                    AnyValue::ListAny(Box::new(vec![AnyValue::from(
                        "redis://:hunter2@cache:6379",
                    )])),
                ),
            ]
            .into_iter()
            .collect(),
        ));

        let Some(AnyValue::Map(masked)) = masked_text(&value) else {
            panic!("nothing masked in {value:?}");
        };

        assert_eq!(masked[&Key::from("password")], AnyValue::from(REDACTED));
        assert_eq!(masked[&Key::from("retries")], AnyValue::from(3));
        assert_eq!(
            masked[&Key::from("urls")],
            AnyValue::ListAny(Box::new(vec![AnyValue::from(
                "redis://:[REDACTED]@cache:6379"
            )]))
        );
        assert_eq!(masked_text(&AnyValue::from("plain")), None);
    }

    #[test]
    fn credentials_in_an_endpoint_are_left_out_of_messages() {
        assert_eq!(
            without_userinfo("http://user:hunter2@collector:4318/x"),
            "http://collector:4318/x"
        );
        assert_eq!(
            without_userinfo("http://collector:4317"),
            "http://collector:4317"
        );
        assert_eq!(without_userinfo("not a url"), "not a url");
    }

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Serves one request in a subscriber that exports to nowhere, and
    /// returns the response's `traceparent`, the ids the handler saw in the
    /// request's `TraceContext`, and the request's log line.
    fn one_request(
        sample_ratio: f64,
        traceparent: Option<&str>,
    ) -> (String, TraceContext, serde_json::Value) {
        let mut settings = TelemetrySettings::default();
        settings.log.format = Some(LogFormat::Json);
        settings.sample_ratio = sample_ratio;
        let provider = provider_builder(&settings, &ServiceInfo::new("svc", "1.0.0")).build();
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = crate::subscriber(&settings, move || writer.clone())
            .unwrap()
            .with(Some(layer(&provider)))
            .with(Some(exporting()));
        let seen = Arc::new(Mutex::new(None));
        let app = {
            let seen = Arc::clone(&seen);
            Router::new()
                .route(
                    "/hello/{name}",
                    get(move |request: Request<Body>| async move {
                        *seen.lock().unwrap() = request.extensions().get::<TraceContext>().copied();
                        "hi"
                    }),
                )
                .layer(TelemetryLayer::new())
        };
        let mut request = Request::get("/hello/ops");
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        let request = request.body(Body::empty()).unwrap();

        let response = tracing::subscriber::with_default(subscriber, || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(app.oneshot(request))
                .unwrap()
        });

        let returned = response.headers()["traceparent"]
            .to_str()
            .unwrap()
            .to_owned();
        let line = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line = line
            .lines()
            .find(|line| line.contains("request finished"))
            .unwrap();
        let seen = seen.lock().unwrap().unwrap();
        (returned, seen, serde_json::from_str(line).unwrap())
    }

    #[test]
    fn the_response_the_handler_and_the_log_line_name_the_exported_span() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

        let (returned, seen, line) = one_request(1.0, Some(incoming));

        assert_eq!(returned, seen.traceparent());
        assert_eq!(line["span_id"], seen.span_id.to_string());
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(seen.parent_id.unwrap().to_string(), "00f067aa0ba902b7");
        assert!(returned.ends_with("-01"));
    }

    #[test]
    fn a_new_trace_takes_the_exported_spans_trace_id_and_sampling_decision() {
        let (returned, seen, line) = one_request(0.0, None);

        assert_eq!(line["trace_id"], seen.trace_id.to_string());
        assert_eq!(line["span_id"], seen.span_id.to_string());
        assert_eq!(returned, seen.traceparent());
        // Ratio 0: the new trace is not sampled, and callees are told so.
        assert!(returned.ends_with("-00"), "{returned}");
    }

    #[test]
    fn a_continued_trace_follows_the_callers_sampling_decision() {
        let sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (returned, _, _) = one_request(0.0, Some(sampled));
        assert!(returned.ends_with("-01"), "{returned}");

        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let (returned, _, _) = one_request(1.0, Some(unsampled));
        assert!(returned.ends_with("-00"), "{returned}");
    }
}
