//! Panics as log events: with JSON logs, [`init`](crate::init) replaces the
//! process's panic hook with one that logs each panic at `ERROR` through
//! `tracing`, so that it is a JSON line like the others and, inside a
//! request, carries the request's `request_id` and `trace_id`. Rust's
//! default hook would print plain text to standard error instead.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::panic::PanicHookInfo;

/// The target of panic events.
pub(crate) const PANIC_TARGET: &str = "opsready::panic";

/// Makes [`log_panic`] the process's panic hook.
pub(crate) fn install_hook() {
    std::panic::set_hook(Box::new(log_panic));
}

/// Logs a panic's message, its credentials masked, and location, and its backtrace when
/// `RUST_BACKTRACE` (or `RUST_LIB_BACKTRACE`) asks for one.
fn log_panic(info: &PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    // `unwrap` on a driver's error prints the error's `Debug`, which may
    // quote the URL or options it failed with.
    let message = opsready_vocab::redact_secrets(message);
    let location = info.location().map(|location| {
        format!(
            "{}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        )
    });
    let thread = std::thread::current();
    let backtrace = Backtrace::capture();
    let backtrace =
        (backtrace.status() == BacktraceStatus::Captured).then(|| backtrace.to_string());
    tracing::error!(
        target: PANIC_TARGET,
        location = location.as_deref(),
        thread = thread.name().unwrap_or("unnamed"),
        backtrace = backtrace.as_deref(),
        "panicked: {message}"
    );
}
