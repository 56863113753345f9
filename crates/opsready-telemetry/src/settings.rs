//! [`TelemetrySettings`]: the `telemetry` section.

use std::io::IsTerminal as _;

use opsready_settings::{Validate, Violations};
use serde::{Deserialize, Serialize};

/// The `telemetry` section of a service's settings.
///
/// | key | default | what |
/// |---|---|---|
/// | `telemetry.log.format` | `pretty` on a terminal, `json` otherwise | `json` or `pretty` |
/// | `telemetry.log.level` | `info` | an `EnvFilter` directive, e.g. `info,sqlx=warn` |
/// | `telemetry.trace_probes` | `false` | whether probes and `/metrics` get spans and log lines |
/// | `telemetry.blocking.max_concurrency` | `16` | blocking jobs running at once ([`crate::Blocking`]) |
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
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
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            v.add(
                "log.level",
                format!("must be a filter directive such as `info` or `info,sqlx=warn`: {error}"),
            );
        }
        if self.blocking.max_concurrency == 0 {
            v.add("blocking.max_concurrency", "must be at least 1");
        }
    }
}
