//! The reference of opsready's settings keys, rendered from the code into
//! `docs/config.md`.

use std::fmt::Write as _;

use opsready_settings::Loader;

use crate::OpsSettings;

/// What each key does. A test fails when a key of [`OpsSettings`] has no
/// line here, so the reference cannot fall behind the code.
const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "flags.store",
        "Where feature flags and their history live: `memory:`, `file://PATH` (`.json` or `.toml`, written atomically, hand edits picked up) or `postgres://…` (a fleet: changes reach every instance within a second; `?schema=`, `heartbeat=` and `heartbeat_timeout=` set the store's schema and the listener's heartbeat). Secret.",
    ),
    (
        "metrics.latency_buckets",
        "Upper bounds in seconds of the request-duration histogram's buckets, increasing (`0.05,0.1,0.25,0.5,1`); put one at each latency objective.",
    ),
    (
        "metrics.measure_probes",
        "Whether requests to the probes (`/livez`, `/readyz`, `/readyz/{check}`, `/startupz`) and to `/metrics` are in the request metrics; off, they do not dilute the service's rates and latencies.",
    ),
    (
        "health.show_output",
        "Whether `/readyz` and `/readyz/{check}` show a failing or warning check's `output` (a driver's error, which can name hosts, ports and users) to whoever reaches the main listener; off, each check's status only, and the log still says why.",
    ),
    (
        "server.addr",
        "Where the main listener binds. Loopback by default: in a container set `0.0.0.0:8080`, or the kubelet's probes cannot reach it.",
    ),
    (
        "admin.addr",
        "Where the admin listener binds; empty mounts `/admin`, and `/metrics` without a token, on the main listener.",
    ),
    (
        "admin.token",
        "Bearer token of sensitive admin routes (`/admin/config`); unset, they answer 404. At least 16 visible ASCII characters (no spaces, line breaks or accents). Secret.",
    ),
    (
        "shutdown.drain_delay",
        "How long a draining service still serves new requests while readiness is 503. Match the pod's `preStop` sleep.",
    ),
    (
        "shutdown.deadline",
        "Time from the signal to exit; the server stops waiting for requests still running then. Must exceed `shutdown.drain_delay`; the pod's grace period must cover the `preStop` sleep plus this plus the last telemetry: 5 s for spans, 10 s with `telemetry.otlp.logs`, 2 s more with Sentry.",
    ),
    (
        "http.request_timeout",
        "A handler running longer answers 503 `HANDLER_TIMEOUT`. Keep it, plus `shutdown.drain_delay`, under `shutdown.deadline`, so that a request accepted at the end of the drain is answered before the deadline cuts it off; `serve` warns at start otherwise.",
    ),
    (
        "http.body_limit",
        "Largest request body the extractors accept; larger answers 413.",
    ),
    (
        "http.concurrency_limit",
        "Requests in flight beyond this answer 503 `OVERLOADED` at once. 1 to 1,000,000.",
    ),
    (
        "http.problem_type_base",
        "Base of every problem's `type` URI; the code's slug is appended (`…/email-taken`). A status the catalog does not name (`CLIENT_ERROR`, `SERVER_ERROR`) is `about:blank` instead. Point it at the service's own error documentation. An `http://` or `https://` URL ending with `/`.",
    ),
    (
        "telemetry.log.format",
        "`json` or `pretty`; unset, `pretty` on a terminal and `json` otherwise.",
    ),
    (
        "telemetry.log.level",
        "What to log, as an `EnvFilter` directive (`info,sqlx=warn`).",
    ),
    (
        "telemetry.trace_probes",
        "Whether probes and `/metrics` get spans and log lines.",
    ),
    (
        "telemetry.blocking.max_concurrency",
        "Blocking jobs run at once by `Ops::blocking()`; more wait their turn.",
    ),
    (
        "telemetry.sentry.dsn",
        "Sentry DSN; events for 5xx answers and panics (feature `sentry`). Secret.",
    ),
    (
        "telemetry.sentry.environment",
        "Sentry environment; unset, the settings environment (`{PREFIX}_ENV`).",
    ),
    (
        "telemetry.service_name",
        "`service.name` of exported spans; unset, the service's package name.",
    ),
    (
        "telemetry.otlp.endpoint",
        "OTLP collector's base address (`http://localhost:4317`, or `https://…` for TLS), not a signal's own URL (`…/v1/traces`) and without a query; unset, no span is exported (feature `otlp`).",
    ),
    (
        "telemetry.otlp.protocol",
        "`grpc` or `http` (HTTP/protobuf to `{endpoint}/v1/traces`).",
    ),
    (
        "telemetry.otlp.compression",
        "`none` or `gzip`: how exports are compressed.",
    ),
    (
        "telemetry.otlp.logs",
        "Also send log events (at `telemetry.log.level`, request lines included) as OTLP log records, in their span's trace.",
    ),
    (
        "telemetry.otlp.headers",
        "Headers of every export, `name=value` pairs separated by commas, values percent-encoded as in `OTEL_EXPORTER_OTLP_HEADERS` (`x-api-key=…`). Secret.",
    ),
    (
        "telemetry.otlp.ca_file",
        "PEM file of certificate authorities trusted for an `https://` endpoint, besides the system's.",
    ),
    (
        "telemetry.otlp.client_cert_file",
        "PEM file of the certificate shown to an `https://` collector that asks for one (mutual TLS); with `client_key_file`.",
    ),
    (
        "telemetry.otlp.client_key_file",
        "PEM file of the PKCS#8 key (`BEGIN PRIVATE KEY`) of `client_cert_file`.",
    ),
    (
        "telemetry.sample_ratio",
        "Share of new traces exported, 0.0 to 1.0; continued traces follow the caller's decision.",
    ),
];

/// The description of a key, if it has one.
pub(crate) fn description(key: &str) -> Option<&'static str> {
    DESCRIPTIONS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, description)| *description)
}

/// Renders the reference of opsready's settings keys: key, environment
/// variable, default, description.
///
/// # Errors
///
/// A key without a description, named in the error.
pub fn config_reference() -> Result<String, String> {
    let defaults = Loader::new("APP")
        .config_dir("/nonexistent/opsready/config")
        .env(Vec::<(String, String)>::new())
        .load::<OpsSettings>()
        .map_err(|error| error.to_string())?;
    let mut page = String::from(
        "<!-- Generated by opsready::config_reference. Do not edit by hand:\n     \
         OPSREADY_BLESS=1 cargo test -p opsready --test reference -->\n\n\
         # Settings reference\n\n\
         The keys opsready reads beside a service's own settings, with their\n\
         defaults. Set them in `config/default.toml`, `config/{env}.toml`, the\n\
         environment (`APP` stands for the service's prefix) or with\n\
         `--set key=value`; see [settings](settings.md) for the layers.\n\n\
         | key | variable | default | what it does |\n|---|---|---|---|\n",
    );
    for (key, entry) in defaults.dump().iter() {
        let description = description(key).ok_or_else(|| format!("`{key}` has no description"))?;
        let variable = format!("APP__{}", key.to_ascii_uppercase().replace('.', "__"));
        let default = match (key, &entry.value) {
            // A secret's default is no secret: the dump masks it all the same.
            ("flags.store", _) => format!("`{}`", crate::ops_settings::DEFAULT_FLAG_STORE),
            (_, serde_json::Value::Null) => "unset".to_owned(),
            // As a variable holds a list: `a,b,c`.
            (_, serde_json::Value::Array(items)) => format!(
                "`{}`",
                items
                    .iter()
                    .map(|item| item
                        .as_str()
                        .map_or_else(|| item.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            (_, value) => format!(
                "`{}`",
                value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned)
            ),
        };
        // Writing into a String cannot fail.
        let _ = writeln!(
            page,
            "| `{key}` | `{variable}` | {default} | {description} |"
        );
    }
    Ok(page)
}
