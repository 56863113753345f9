//! OTLP/gRPC export of log records (`telemetry.otlp.logs`) to a collector in
//! the test that speaks the real protocol: a handler's event and the
//! request's line arrive in the request's trace and span. A binary of its
//! own: `init` installs a global subscriber.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod otlp_support;

use opsready_telemetry::OtlpProtocol;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_events_are_exported_over_grpc_in_the_request_trace() {
    otlp_support::log_events_are_exported_in_the_request_trace(OtlpProtocol::Grpc).await;
}
