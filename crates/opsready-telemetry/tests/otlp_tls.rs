//! OTLP/gRPC export over TLS to a collector in the test whose certificate a
//! per-test authority signed, trusted through `telemetry.otlp.ca_file`, with
//! the headers of `telemetry.otlp.headers`. A binary of its own: `init`
//! installs a global subscriber.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod otlp_support;

use opsready_telemetry::OtlpProtocol;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_are_exported_over_grpc_with_tls_and_the_configured_headers() {
    otlp_support::spans_are_exported_over_tls_with_headers(OtlpProtocol::Grpc, false).await;
}
