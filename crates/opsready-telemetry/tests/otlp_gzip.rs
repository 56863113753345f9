//! OTLP/gRPC export compressed with gzip (`telemetry.otlp.compression`), to a
//! collector in the test that takes gzip and says what each call declared.
//! A binary of its own: `init` installs a global subscriber.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod otlp_support;

use opsready_telemetry::OtlpProtocol;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_grpc_compressed_with_gzip() {
    otlp_support::spans_are_exported_gzip_compressed(OtlpProtocol::Grpc).await;
}
