//! The HTTP vocabulary opsready's crates share, kept in one place so that
//! telemetry, metrics and error reporting agree: which methods are named,
//! and which paths are too regular to trace, count or report.
//!
//! # Example
//!
//! ```
//! use http::Method;
//! use opsready_vocab::{is_quiet, method_name};
//!
//! assert_eq!(method_name(&Method::GET), "GET");
//! assert_eq!(method_name(&Method::from_bytes(b"BREW").unwrap()), "_OTHER");
//! assert!(is_quiet("/readyz/database"));
//! assert!(!is_quiet("/readyzz"));
//! ```
//!
//! # Feature flags
//!
//! This crate has no optional features.

use http::Method;

/// Paths of probes and of the metrics scrape: many, regular, and saying
/// nothing a dashboard does not, so not traced, logged, counted or sent to
/// error tracking unless asked.
pub const QUIET_PATHS: [&str; 4] = ["/livez", "/readyz", "/startupz", "/metrics"];

/// Whether `path` is one of [`QUIET_PATHS`] or below one.
pub fn is_quiet(path: &str) -> bool {
    QUIET_PATHS.iter().any(|quiet| {
        path.strip_prefix(quiet)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The method as OpenTelemetry names it: known methods as they are, any
/// other as `_OTHER`, so a client cannot invent span names or series.
pub fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}
