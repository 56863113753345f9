//! The tracing subscriber: a level filter and JSON or pretty log lines, with
//! the request's id, trace id, method and route on every line logged inside
//! a request.

use std::fmt;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

use crate::layer::REQUEST_TARGET;
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

impl std::error::Error for TelemetryError {}

/// Builds the subscriber of `settings`, writing log lines to `writer`.
///
/// Separate from [`init`] so that tests can capture the lines.
pub fn subscriber<W>(
    settings: &TelemetrySettings,
    writer: W,
) -> Result<impl Subscriber + Send + Sync + 'static, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&settings.log.level).map_err(|error| TelemetryError {
        message: format!(
            "telemetry.log.level `{}` is not a filter directive: {error}",
            settings.log.level
        ),
    })?;
    let (json, pretty) = if settings.log.format() == LogFormat::Json {
        let json = tracing_subscriber::fmt::layer()
            .event_format(JsonLines)
            .with_writer(writer);
        (Some(json), None)
    } else {
        let pretty = tracing_subscriber::fmt::layer()
            .with_ansi(settings.log.ansi())
            .with_writer(writer);
        (None, Some(pretty))
    };
    Ok(tracing_subscriber::registry()
        .with(filter)
        .with(RequestFieldsLayer)
        .with(json)
        .with(pretty))
}

/// Installs the subscriber of `settings` for the whole process, writing to
/// standard output.
///
/// # Errors
///
/// When the level directive is malformed, or another subscriber is already
/// installed (opsready's settings would then silently not apply).
pub fn init(settings: &TelemetrySettings) -> Result<(), TelemetryError> {
    let subscriber = subscriber(settings, std::io::stdout)?;
    tracing::subscriber::set_global_default(subscriber).map_err(|_| TelemetryError {
        message: "a tracing subscriber is already installed, so the telemetry.log settings cannot apply; remove the other initialisation".to_owned(),
    })
}

/// The request fields kept on a request span for log lines.
#[derive(Debug, Default, Clone)]
struct RequestFields {
    request_id: Option<String>,
    trace_id: Option<String>,
    span_id: Option<String>,
    method: Option<String>,
    route: Option<String>,
}

impl Visit for RequestFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let slot = match field.name() {
            "request_id" => &mut self.request_id,
            "trace_id" => &mut self.trace_id,
            "span_id" => &mut self.span_id,
            "http.request.method" => &mut self.method,
            "http.route" => &mut self.route,
            _ => return,
        };
        *slot = Some(value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// Keeps the fields of request spans where the JSON formatter finds them.
struct RequestFieldsLayer;

impl<S> tracing_subscriber::Layer<S> for RequestFieldsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().target() != REQUEST_TARGET {
            return;
        }
        let mut fields = RequestFields::default();
        attrs.record(&mut fields);
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
}

/// One JSON object per line: `timestamp`, `level`, `target`, `message`, the
/// event's fields, and `request_id`, `trace_id`, `span_id`, `method`,
/// `route` of the request the event happened in.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        write!(
            writer,
            "{}",
            humantime::format_rfc3339_micros(SystemTime::now())
        )?;
        write!(writer, "\",\"level\":\"{}\",\"target\":", metadata.level())?;
        write_json_str(&mut writer, metadata.target())?;
        let mut visitor = JsonFields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut visitor);
        visitor.result?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<RequestFields>() else {
                    continue;
                };
                for (key, value) in [
                    ("request_id", &fields.request_id),
                    ("trace_id", &fields.trace_id),
                    ("span_id", &fields.span_id),
                    ("method", &fields.method),
                    ("route", &fields.route),
                ] {
                    if let Some(value) = value {
                        write!(writer, ",\"{key}\":")?;
                        write_json_str(&mut writer, value)?;
                    }
                }
                break;
            }
        }
        writer.write_str("}\n")
    }
}

struct JsonFields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl JsonFields<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.writer.write_char(',')?;
        write_json_str(self.writer, field.name())?;
        self.writer.write_char(':')
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| {
                if value.is_finite() {
                    write!(self.writer, "{value}")
                } else {
                    self.writer.write_str("null")
                }
            });
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.result.is_ok() {
            self.result = self
                .key(field)
                .and_then(|()| write!(self.writer, "{value}"));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.result.is_ok() {
            self.result = self
                .key(field)
                .and_then(|()| write!(self.writer, "{value}"));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.result.is_ok() {
            self.result = self
                .key(field)
                .and_then(|()| write!(self.writer, "{value}"));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            self.result = self
                .key(field)
                .and_then(|()| write_json_str(self.writer, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            // `message` arrives as `format_args!`, whose Debug is its text.
            let text = format!("{value:?}");
            self.result = self
                .key(field)
                .and_then(|()| write_json_str(self.writer, &text));
        }
    }
}

/// Writes `value` as a JSON string.
fn write_json_str(writer: &mut impl fmt::Write, value: &str) -> fmt::Result {
    writer.write_char('"')?;
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
    writer.write_str(&value[start..])?;
    writer.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::write_json_str;

    #[test]
    fn strings_are_escaped_as_json() {
        let mut out = String::new();
        write_json_str(&mut out, "a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }
}
