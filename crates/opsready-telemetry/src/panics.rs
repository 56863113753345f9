//! Panics as log events: with JSON logs, [`init`](crate::init) replaces the
//! process's panic hook with one that logs each panic at `ERROR` through
//! `tracing`, so that it is a JSON line like the others and, inside a
//! request, carries the request's `request_id` and `trace_id`. Rust's
//! default hook would print plain text to standard error instead.
//!
//! A panic may be the process's last act (`panic = "abort"`, a panic in
//! `main`, a supervisor that exits on it), so the hook also writes the
//! lines the batch writer holds before it returns; with pretty lines it
//! does that, then runs the hook it replaced. With Sentry started, it also
//! sends each panic that no request answers (a panic in a handler becomes
//! a 500, which [`SentryLayer`](crate::SentryLayer) reports with the
//! request's details).

use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::Cell;
use std::io::Write as _;
use std::panic::PanicHookInfo;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::settings::LogFormat;
use crate::writer::BatchWriter;

/// The target of panic events.
pub(crate) const PANIC_TARGET: &str = "opsready::panic";

thread_local! {
    /// Set by the JSON layer when it wrote a panic event's line on this
    /// thread: the hook writes a line of its own when it was not.
    static LINE_WRITTEN: Cell<bool> = const { Cell::new(false) };
}

/// Called by the JSON layer once a [`PANIC_TARGET`] line is written.
pub(crate) fn panic_line_written() {
    LINE_WRITTEN.set(true);
}

/// What the hook does, set by [`init`](crate::init): lines as JSON, and
/// the writer whose buffered lines a panic writes out.
static JSON: AtomicBool = AtomicBool::new(false);

/// Makes the process's panic hook write `writer`'s buffered lines before it
/// returns and, with JSON lines, log the panic as one ([`log_panic`]).
pub(crate) fn install_hook(format: LogFormat, writer: BatchWriter) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    crate::writer::set_process_writer(writer);
    ensure_hook();
}

/// Installs the hook once for the process, around the hook in place then:
/// [`init`](crate::init) and, with Sentry, `init_sentry` both need it,
/// in either order. Once installed, it reads what `init` set when a panic
/// comes; a hook a service sets after either call replaces it.
pub(crate) fn ensure_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| on_panic(info, &*previous)));
    });
}

/// The hook: the panic's line (or, with pretty lines or no `init`, the
/// hook it replaced) and the lines before it written out, then the panic
/// reported to Sentry unless a request's answer reports it.
fn on_panic(info: &PanicHookInfo<'_>, previous: &(dyn Fn(&PanicHookInfo<'_>) + Send + Sync)) {
    // A panic the panic catcher answers leaves the process serving: its
    // lines go out with the others, and a burst of them does not make each
    // request write the buffer itself.
    let ends_nothing = cfg!(panic = "unwind") && opsready_vocab::panic_is_answered();
    match crate::writer::process_writer() {
        Some(writer) if JSON.load(Ordering::Relaxed) => {
            log_panic(info, writer);
            if !ends_nothing {
                writer.write_buffered();
            }
        }
        Some(writer) => {
            if !ends_nothing {
                writer.write_buffered();
            }
            previous(info);
        }
        None => previous(info),
    }
    #[cfg(feature = "sentry")]
    crate::sentry_events::report_panic(info);
}

/// A panic's message, or a placeholder for a payload that is not text.
pub(crate) fn message_of<'a>(info: &'a PanicHookInfo<'_>) -> &'a str {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

/// Where a panic happened, as `file:line:column`.
pub(crate) fn location_of(info: &PanicHookInfo<'_>) -> Option<String> {
    info.location().map(|location| {
        format!(
            "{}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        )
    })
}

/// Logs a panic's message, its credentials masked, and location, and its
/// backtrace when `RUST_BACKTRACE` (or `RUST_LIB_BACKTRACE`) asks for one.
///
/// When no line came of the event (the level filter leaves `ERROR` of
/// `opsready::panic` out, or the panic happened while this thread was
/// writing a line, whose buffer is still in use), the line is made here,
/// without the request's fields: a panic is never silent, as Rust's own
/// hook never is.
fn log_panic(info: &PanicHookInfo<'_>, writer: &BatchWriter) {
    // `unwrap` on a driver's error prints the error's `Debug`, which may
    // quote the URL or options it failed with.
    let message = opsready_vocab::redact_secrets(message_of(info));
    let location = location_of(info);
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    let backtrace = Backtrace::capture();
    let backtrace =
        (backtrace.status() == BacktraceStatus::Captured).then(|| backtrace.to_string());
    LINE_WRITTEN.set(false);
    tracing::error!(
        target: PANIC_TARGET,
        location = location.as_deref(),
        thread,
        backtrace = backtrace.as_deref(),
        "panicked: {message}"
    );
    if !LINE_WRITTEN.replace(false) {
        let line = crate::subscriber::panic_line(
            &message,
            location.as_deref(),
            thread,
            backtrace.as_deref(),
        );
        let mut out = writer;
        let _ = out.write_all(line.as_bytes());
    }
}
