//! What `init` does for the whole process: the panic hook that never
//! loses a panic's line nor the lines before it, `flush_logs` before an
//! exit, and the sampling decision new traces pass on.
//!
//! `init` installs a subscriber and a panic hook for the whole process,
//! and the panic and exit cases end it, so each case runs in a child: this
//! binary started again with `OPSREADY_TELEMETRY_CHILD` naming the case,
//! running only the `child` test, whose output is read.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fmt;
use std::process::{Command, Output};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use opsready_telemetry::{LogFormat, ServiceInfo, TelemetryLayer, TelemetrySettings};
use serde_json::Value;
use service_process::ServiceProcess;

const CHILD: &str = "OPSREADY_TELEMETRY_CHILD";

/// Installs `init`'s subscriber with `format` and `level`, and keeps its
/// guard for the rest of the process.
fn init(format: LogFormat, level: &str, sample_ratio: f64) {
    let mut settings = TelemetrySettings::default();
    settings.log.format = Some(format);
    settings.log.level = level.to_owned();
    settings.sample_ratio = sample_ratio;
    let guard = opsready_telemetry::init(&settings, &ServiceInfo::new("process", "1.0.0")).unwrap();
    std::mem::forget(guard);
}

/// Makes the process abort right after the panic hook `init` installed,
/// as `panic = "abort"` does: nothing unwinds, no destructor runs.
fn abort_after_the_hook() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        hook(info);
        std::process::abort();
    }));
}

/// A value whose `Debug` panics, as a buggy one can while a line is
/// formatted.
struct Explodes;

impl fmt::Debug for Explodes {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("boom in a Debug");
    }
}

/// The cases, each run in a child process of its own.
#[test]
fn child() {
    let Ok(case) = std::env::var(CHILD) else {
        return;
    };
    match case.as_str() {
        "abort" => {
            init(LogFormat::Json, "info", 1.0);
            abort_after_the_hook();
            tracing::info!("the line before the panic");
            panic!("boom before an abort");
        }
        "logging-off" => {
            init(LogFormat::Json, "off", 1.0);
            abort_after_the_hook();
            panic!("boom with logging off");
        }
        "in-debug" => {
            init(LogFormat::Json, "info", 1.0);
            abort_after_the_hook();
            tracing::info!(value = ?Explodes, "a line that cannot be formatted");
        }
        "pretty" => {
            init(LogFormat::Pretty, "info", 1.0);
            abort_after_the_hook();
            tracing::info!("the pretty line before the panic");
            panic!("boom in pretty");
        }
        "sampling" => tokio::runtime::Runtime::new().unwrap().block_on(sampling()),
        "exit" => {
            init(LogFormat::Json, "info", 1.0);
            tracing::warn!("exiting at once");
            opsready_telemetry::flush_logs();
            std::process::exit(3);
        }
        other => panic!("no case {other}"),
    }
}

/// Runs `case` in a child and returns its output.
fn run(case: &str) -> Output {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .env_remove("RUST_BACKTRACE");
    ServiceProcess::run(command, Duration::from_secs(60))
}

/// The JSON lines of a child's standard output (the test harness's own
/// text may stand before one on its line).
fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(&line[line.find('{')?..]).ok())
        .collect()
}

/// The child's line whose message is `message`, or a failure showing all.
fn line_of<'a>(lines: &'a [Value], output: &Output, message: &str) -> &'a Value {
    lines
        .iter()
        .find(|line| line["message"] == message)
        .unwrap_or_else(|| {
            panic!(
                "no line `{message}`; standard output:\n{}\nstandard error:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

#[test]
fn a_panic_that_aborts_the_process_keeps_its_line_and_the_lines_before() {
    let output = run("abort");
    assert!(!output.status.success());
    let lines = json_lines(&output);
    line_of(&lines, &output, "the line before the panic");
    let panic = line_of(&lines, &output, "panicked: boom before an abort");
    assert_eq!(panic["level"], "ERROR");
    assert_eq!(panic["target"], "opsready::panic");
    assert!(
        panic["location"].as_str().unwrap().contains("process.rs"),
        "{panic}"
    );
}

#[test]
fn a_panic_is_written_when_the_level_filter_leaves_every_event_out() {
    let output = run("logging-off");
    let lines = json_lines(&output);
    let panic = line_of(&lines, &output, "panicked: boom with logging off");
    assert_eq!(panic["target"], "opsready::panic");
    assert_eq!(panic["level"], "ERROR");
    assert!(panic["thread"].is_string(), "{panic}");
    assert_eq!(lines.len(), 1, "only the panic is written: {lines:?}");
}

#[test]
fn a_panic_while_a_line_is_formatted_is_written_all_the_same() {
    let output = run("in-debug");
    let lines = json_lines(&output);
    let panic = line_of(&lines, &output, "panicked: boom in a Debug");
    assert_eq!(panic["target"], "opsready::panic");
}

#[test]
fn with_pretty_lines_a_panic_keeps_the_lines_before_and_rusts_own_message() {
    let output = run("pretty");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("the pretty line before the panic"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("boom in pretty"), "{stderr}");
}

#[test]
fn flush_logs_writes_the_last_line_before_an_exit() {
    let output = run("exit");
    assert_eq!(output.status.code(), Some(3));
    let lines = json_lines(&output);
    let line = line_of(&lines, &output, "exiting at once");
    assert_eq!(line["level"], "WARN");
}

#[test]
fn a_new_trace_passes_on_the_sample_ratios_decision() {
    let output = run("sampling");
    assert!(
        output.status.success(),
        "standard output:\n{}\nstandard error:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The `sampling` case: a ratio of 0 with no exporter, yet new traces'
/// flags follow it; a caller's decision is kept.
async fn sampling() {
    init(LogFormat::Json, "info", 0.0);
    let app: Router = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(TelemetryLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hello", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();

    for _ in 0..20 {
        let response = client.get(&url).send().await.unwrap();
        let traceparent = response.headers()["traceparent"].to_str().unwrap();
        assert!(traceparent.ends_with("-00"), "{traceparent}");
    }
    let response = client
        .get(&url)
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    let traceparent = response.headers()["traceparent"].to_str().unwrap();
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
            && traceparent.ends_with("-01"),
        "{traceparent}"
    );
}
