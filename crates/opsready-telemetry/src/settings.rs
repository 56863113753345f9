//! [`TelemetrySettings`]: the `telemetry` section.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use opsready_settings::{Secret, Validate, Violations};
use serde::{Deserialize, Serialize};

/// The `telemetry` section of a service's settings.
///
/// | key | default | what |
/// |---|---|---|
/// | `telemetry.log.format` | `pretty` on a terminal, `json` otherwise | `json` or `pretty` |
/// | `telemetry.log.level` | `info` | an `EnvFilter` directive, e.g. `info,sqlx=warn` |
/// | `telemetry.trace_probes` | `false` | whether probes and `/metrics` get spans and log lines |
/// | `telemetry.blocking.max_concurrency` | `16` | blocking jobs running at once ([`crate::Blocking`]) |
/// | `telemetry.service_name` | the service's package name | `service.name` of the exported spans |
/// | `telemetry.otlp.endpoint` | none: no export | the collector's base address, `http://localhost:4317` (gRPC), `http://localhost:4318` (HTTP), or `https://…` (feature `otlp`) |
/// | `telemetry.otlp.protocol` | `grpc` | `grpc` or `http` (HTTP/protobuf, sent to `{endpoint}/v1/traces`) |
/// | `telemetry.otlp.compression` | `none` | `none` or `gzip` |
/// | `telemetry.otlp.logs` | `false` | also send log events as OTLP log records, in their span's trace |
/// | `telemetry.otlp.headers` | none | headers of every export, `name=value,name=value` (a secret: API keys) |
/// | `telemetry.otlp.ca_file` | none | a PEM file of authorities trusted for an `https://` endpoint, besides the system's |
/// | `telemetry.otlp.client_cert_file`, `telemetry.otlp.client_key_file` | none | PEM files of the certificate and PKCS#8 key shown to a collector that asks for one (mutual TLS) |
/// | `telemetry.sample_ratio` | `1.0` | the share of new traces exported, 0.0 to 1.0; a continued trace follows the caller's decision |
/// | `telemetry.sentry.dsn` | none | a Sentry DSN (a secret); events for 5xx answers and panics (feature `sentry`) |
/// | `telemetry.sentry.environment` | the settings environment | the Sentry environment |
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct TelemetrySettings {
    /// Log lines.
    pub log: LogSettings,
    /// Whether probes (`/livez`, `/readyz`, `/startupz`) and `/metrics` are
    /// traced and logged. Defaults to `false`.
    pub trace_probes: bool,
    /// Blocking work.
    pub blocking: BlockingSettings,
    /// The `service.name` of exported spans. Defaults to none: the service's
    /// package name given to [`crate::init`].
    pub service_name: Option<String>,
    /// OTLP export of the spans.
    pub otlp: OtlpSettings,
    /// The share of new traces whose spans are exported, from 0.0 to 1.0;
    /// a trace continued from a caller follows the caller's sampling
    /// decision. Defaults to 1.0.
    pub sample_ratio: f64,
    /// Sentry events for 5xx answers and panics.
    pub sentry: SentrySettings,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log: LogSettings::default(),
            trace_probes: false,
            blocking: BlockingSettings::default(),
            sentry: SentrySettings::default(),
            service_name: None,
            otlp: OtlpSettings::default(),
            sample_ratio: 1.0,
        }
    }
}

/// `telemetry.otlp.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OtlpSettings {
    /// The collector's base address, `http://host:port` or
    /// `https://host:port`; unset, no span is exported. For `http` the
    /// spans go to `{endpoint}/v1/traces`. Needs the `otlp` feature:
    /// setting it in a binary built without is a settings error. Defaults
    /// to none.
    pub endpoint: Option<String>,
    /// How spans are sent. Defaults to `grpc`.
    pub protocol: OtlpProtocol,
    /// How exports are compressed. Defaults to `none`.
    pub compression: OtlpCompression,
    /// Whether log events (at `telemetry.log.level`, the request lines
    /// included) are also sent to the collector as OTLP log records, in
    /// the trace of the span they happen in, with the request's
    /// `request_id`, `http.route` and `http.request.method`. Defaults to
    /// `false`: lines go to standard output only.
    pub logs: bool,
    /// Headers sent with every export, as `OTEL_EXPORTER_OTLP_HEADERS`
    /// writes them: `name=value` pairs separated by commas, values
    /// percent-encoded where they hold a comma, `%` or spaces
    /// (`x-api-key=abc123,x-tenant=shop`). A secret, since API keys go
    /// here. Defaults to none.
    pub headers: Option<Secret<String>>,
    /// A PEM file of the certificate authorities to trust for an
    /// `https://` endpoint, besides the system's: for a collector whose
    /// certificate an internal authority signed. Defaults to none.
    pub ca_file: Option<PathBuf>,
    /// A PEM file of the certificate (and its chain) this service shows an
    /// `https://` collector that asks for one (mutual TLS); set with
    /// `client_key_file`. Defaults to none.
    pub client_cert_file: Option<PathBuf>,
    /// The PEM file of the private key of `client_cert_file`, in PKCS#8
    /// form (`-----BEGIN PRIVATE KEY-----`). Defaults to none.
    pub client_key_file: Option<PathBuf>,
}

impl PartialEq for OtlpSettings {
    fn eq(&self, other: &Self) -> bool {
        let headers = |s: &Self| s.headers.as_ref().map(|h| h.expose_secret().clone());
        self.endpoint == other.endpoint
            && self.protocol == other.protocol
            && self.compression == other.compression
            && self.logs == other.logs
            && headers(self) == headers(other)
            && self.ca_file == other.ca_file
            && self.client_cert_file == other.client_cert_file
            && self.client_key_file == other.client_key_file
    }
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP/gRPC, usually on port 4317.
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies, usually on port 4318.
    #[serde(alias = "http/protobuf")]
    Http,
}

/// How OTLP exports are compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpCompression {
    /// Sent as they are.
    #[default]
    None,
    /// gzip: fewer bytes to a collector across a network, for some CPU.
    Gzip,
}

/// What is wrong with an OTLP endpoint, if anything: it must be an absolute
/// `http://` or `https://` address with a host, and the collector's base
/// address (as `OTEL_EXPORTER_OTLP_ENDPOINT` is), since each signal's path
/// is appended to it: a signal's own URL (`…/v1/traces`, as
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` takes) would export to
/// `…/v1/traces/v1/traces` and get a 404 for every batch.
pub(crate) fn otlp_endpoint_problem(endpoint: &str) -> Option<String> {
    let uri = match endpoint.parse::<http::Uri>() {
        Ok(uri) => uri,
        Err(error) => return Some(format!("is not a URL: {error}")),
    };
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some_and(|host| !host.is_empty()) => {}
        Some("http" | "https") => return Some("has no host".to_owned()),
        _ => {
            return Some(
                "must be an http:// or https:// URL such as `http://localhost:4317`".to_owned(),
            );
        }
    }
    let path = uri.path().trim_end_matches('/');
    if let Some(signal) = ["/v1/traces", "/v1/logs"]
        .into_iter()
        .find(|signal| path.ends_with(signal))
    {
        // Its password masked: the message reaches a terminal or a log.
        let base =
            opsready_vocab::redact_secrets(endpoint.split(signal).next().unwrap_or(endpoint));
        return Some(format!(
            "is a signal's own URL: give the collector's base address (`{base}`); `/v1/traces` and `/v1/logs` are appended to it"
        ));
    }
    if uri.query().is_some() || endpoint.contains('#') {
        return Some(
            "must not have a query or fragment: the signal's path is appended to it".to_owned(),
        );
    }
    None
}

/// Whether `endpoint` is an `https://` address.
pub(crate) fn is_https(endpoint: &str) -> bool {
    endpoint
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// The headers of `telemetry.otlp.headers`, names in lowercase and values
/// percent-decoded, or what is wrong with them. Messages never quote a
/// value: it is a secret.
pub(crate) fn otlp_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    for (index, pair) in text.split(',').enumerate() {
        let number = index + 1;
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((name, value)) = pair.split_once('=') else {
            return Err(format!(
                "pair {number} has no `=`: write `name=value` pairs separated by commas"
            ));
        };
        let name = name.trim().to_ascii_lowercase();
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!(
                "pair {number} has an invalid header name `{name}`: use letters, digits and `-`"
            ));
        }
        let Some(value) = percent_decode(value.trim()) else {
            return Err(format!(
                "the value of `{name}` has a `%` not followed by two hex digits, or escapes that are not UTF-8: write `%25` for `%`"
            ));
        };
        if http::HeaderValue::from_str(&value).is_err() {
            return Err(format!(
                "the value of `{name}` has a character a header cannot carry (a control character or non-ASCII text)"
            ));
        }
        headers.push((name, value));
    }
    Ok(headers)
}

/// `text` with its `%XX` escapes decoded, or `None` for a malformed one or
/// bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == b'%' {
            let hex = text.get(at + 1..at + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            decoded.push(byte);
            at += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// `telemetry.log.*`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct LogSettings {
    /// `json` or `pretty`; unset picks `pretty` when standard output is a
    /// terminal and `json` otherwise.
    pub format: Option<LogFormat>,
    /// What to log, as an `EnvFilter` directive. Defaults to `info`.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: None,
            level: "info".to_owned(),
        }
    }
}

impl LogSettings {
    /// The format in effect.
    pub fn format(&self) -> LogFormat {
        self.format.unwrap_or_else(|| {
            if std::io::stdout().is_terminal() {
                LogFormat::Pretty
            } else {
                LogFormat::Json
            }
        })
    }

    /// Whether pretty lines are coloured: only on a terminal.
    pub(crate) fn ansi(&self) -> bool {
        std::io::stdout().is_terminal()
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for log pipelines.
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

/// `telemetry.blocking.*`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct BlockingSettings {
    /// How many blocking jobs run at once; more wait their turn. Defaults
    /// to 16.
    pub max_concurrency: usize,
}

impl Default for BlockingSettings {
    fn default() -> Self {
        Self {
            max_concurrency: 16,
        }
    }
}

impl Validate for TelemetrySettings {
    fn validate(&self, v: &mut Violations) {
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(
            crate::subscriber::tidy_directives(&self.log.level),
        ) {
            v.add(
                "log.level",
                format!("must be a filter directive such as `info` or `info,sqlx=warn`: {error}"),
            );
        }
        if !(1..=10_000).contains(&self.blocking.max_concurrency) {
            v.add(
                "blocking.max_concurrency",
                "must be between 1 and 10000 (Tokio's blocking pool has 512 threads)",
            );
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            v.add("sample_ratio", "must be between 0.0 and 1.0");
        }
        if let Some(endpoint) = &self.otlp.endpoint {
            if !cfg!(feature = "otlp") {
                v.add(
                    "otlp.endpoint",
                    "is set, but this binary was built without the `otlp` feature of opsready: no span would be exported",
                );
            } else if let Some(problem) = otlp_endpoint_problem(endpoint) {
                v.add("otlp.endpoint", problem);
            }
        }
        if let Some(headers) = &self.otlp.headers
            && let Err(problem) = otlp_headers(headers.expose_secret())
        {
            v.add("otlp.headers", problem);
        }
        if self.otlp.logs && self.otlp.endpoint.is_none() {
            v.add(
                "otlp.logs",
                "is true, but telemetry.otlp.endpoint is not set: no log record would be sent; set the endpoint or leave logs false",
            );
        }
        let https = self.otlp.endpoint.as_deref().is_some_and(is_https);
        if self.otlp.ca_file.is_some() && !https {
            v.add(
                "otlp.ca_file",
                "is set, but telemetry.otlp.endpoint is not an https:// address: the authorities would trust nothing; use https:// or leave ca_file unset",
            );
        }
        match (&self.otlp.client_cert_file, &self.otlp.client_key_file) {
            (Some(_), None) => v.add(
                "otlp.client_key_file",
                "must be set with telemetry.otlp.client_cert_file: a certificate is shown with its key",
            ),
            (None, Some(_)) => v.add(
                "otlp.client_cert_file",
                "must be set with telemetry.otlp.client_key_file: a key is used with its certificate",
            ),
            (Some(_), Some(_)) if !https => v.add(
                "otlp.client_cert_file",
                "is set, but telemetry.otlp.endpoint is not an https:// address: a client certificate needs TLS; use https:// or leave it unset",
            ),
            _ => {}
        }
        // Read at `init`; a missing file is refused by `--check-config`
        // too, not only by the start. Only files that would be used: with
        // an https:// endpoint, and a certificate with its key.
        let pair = self.otlp.client_cert_file.is_some() && self.otlp.client_key_file.is_some();
        for (key, path, used) in [
            ("otlp.ca_file", &self.otlp.ca_file, https),
            (
                "otlp.client_cert_file",
                &self.otlp.client_cert_file,
                https && pair,
            ),
            (
                "otlp.client_key_file",
                &self.otlp.client_key_file,
                https && pair,
            ),
        ] {
            if used
                && let Some(path) = path
                && let Err(error) = std::fs::File::open(path)
            {
                v.add(key, format!("cannot be read ({error}): {}", path.display()));
            }
        }
        if self.sentry.dsn.is_some() && !cfg!(feature = "sentry") {
            v.add(
                "sentry.dsn",
                "is set, but this binary was built without the `sentry` feature of opsready: no event would be sent",
            );
        }
        // Parsed here, not only when the client starts, so that
        // `--check-config` and a start refuse it alike (exit 78). The
        // message names the shape, never the value: a DSN holds a key.
        #[cfg(feature = "sentry")]
        if let Some(dsn) = &self.sentry.dsn
            && dsn.expose_secret().parse::<sentry::types::Dsn>().is_err()
        {
            v.add(
                "sentry.dsn",
                "is not a Sentry DSN: expected https://KEY@HOST/PROJECT, as the project's settings show it",
            );
        }
    }
}

/// `telemetry.sentry.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SentrySettings {
    /// The project's DSN; unset, nothing is sent. Defaults to none.
    pub dsn: Option<Secret<String>>,
    /// The environment events are filed under. Defaults to the settings
    /// environment (`{PREFIX}_ENV`, `local` when unset).
    pub environment: Option<String>,
}

impl PartialEq for SentrySettings {
    fn eq(&self, other: &Self) -> bool {
        let dsn = |s: &Self| s.dsn.as_ref().map(|d| d.expose_secret().clone());
        dsn(self) == dsn(other) && self.environment == other.environment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_pairs_with_lowercase_names_and_decoded_values() {
        let headers = otlp_headers(" X-Api-Key = abc%2C123 ,, x-tenant=shop%20one,").unwrap();

        assert_eq!(
            headers,
            [
                ("x-api-key".to_owned(), "abc,123".to_owned()),
                ("x-tenant".to_owned(), "shop one".to_owned()),
            ]
        );
    }

    #[test]
    fn a_value_may_hold_an_equals_sign() {
        let headers = otlp_headers("authorization=Basic dXNlcjpwYXNz==").unwrap();

        assert_eq!(headers[0].1, "Basic dXNlcjpwYXNz==");
    }

    #[test]
    fn a_cut_escape_is_refused() {
        for text in ["k=%", "k=%2", "k=%g1", "k=%FF"] {
            assert!(otlp_headers(text).is_err(), "{text} was accepted");
        }
    }

    #[cfg(feature = "sentry")]
    #[test]
    fn a_malformed_sentry_dsn_is_a_violation_that_does_not_quote_it() {
        let mut settings = TelemetrySettings::default();
        settings.sentry.dsn = Some(Secret::new("not-a-dsn-but-a-secret".to_owned()));

        let mut violations = Violations::new();
        settings.validate(&mut violations);

        let found: Vec<(&str, &str)> = violations.iter().collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "sentry.dsn");
        assert!(!found[0].1.contains("not-a-dsn"), "{found:?}");

        settings.sentry.dsn = Some(Secret::new(
            "https://key@o0.ingest.example.com/42".to_owned(),
        ));
        let mut violations = Violations::new();
        settings.validate(&mut violations);
        assert_eq!(violations.iter().count(), 0);
    }

    #[test]
    fn log_export_without_an_endpoint_is_a_violation() {
        let mut settings = TelemetrySettings::default();
        settings.otlp.logs = true;

        let mut violations = Violations::new();
        settings.validate(&mut violations);

        let keys: Vec<&str> = violations.iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["otlp.logs"]);
    }

    #[test]
    fn a_certificate_file_that_cannot_be_read_is_a_violation() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("authority.pem");
        std::fs::write(&present, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let mut settings = TelemetrySettings::default();
        settings.otlp.endpoint = Some("https://collector:4317".to_owned());
        settings.otlp.ca_file = Some(present);
        settings.otlp.client_cert_file = Some(dir.path().join("missing.pem"));
        settings.otlp.client_key_file = Some(dir.path().join("missing-key.pem"));

        let mut violations = Violations::new();
        settings.validate(&mut violations);

        // Without the `otlp` feature the endpoint is a violation too.
        let found: Vec<(&str, &str)> = violations
            .iter()
            .filter(|(key, _)| key.ends_with("_file"))
            .collect();
        let keys: Vec<&str> = found.iter().map(|(key, _)| *key).collect();
        assert_eq!(
            keys,
            ["otlp.client_cert_file", "otlp.client_key_file"],
            "{found:?}"
        );
        assert!(found[0].1.contains("missing.pem"), "{found:?}");
    }

    #[test]
    fn an_endpoint_is_the_collectors_base_address() {
        assert_eq!(otlp_endpoint_problem("https://collector:4318"), None);
        assert_eq!(otlp_endpoint_problem("http://collector:4318/otlp/"), None);
        let signal = otlp_endpoint_problem("https://collector:4318/v1/traces").unwrap();
        assert!(signal.contains("(`https://collector:4318`)"), "{signal}");
        assert!(otlp_endpoint_problem("http://collector:4318/v1/logs/").is_some());
        assert!(otlp_endpoint_problem("http://collector:4318?tenant=a").is_some());
        // The base it quotes has its password masked.
        let quoted = otlp_endpoint_problem("https://u:PW-SECRET@otel:4318/v1/traces").unwrap();
        assert!(!quoted.contains("PW-SECRET"), "{quoted}");
    }

    #[test]
    fn only_https_addresses_are_https() {
        assert!(is_https("https://collector:4317"));
        assert!(is_https("HTTPS://collector:4317"));
        assert!(!is_https("http://collector:4317"));
        assert!(!is_https("https:/"));
    }
}
