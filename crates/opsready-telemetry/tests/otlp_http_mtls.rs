//! OTLP/HTTP (protobuf) export over mutual TLS: the collector in the test asks for a
//! client certificate its per-test authority signed, which the exporter
//! shows from `telemetry.otlp.client_cert_file` and `client_key_file`. A
//! binary of its own: `init` installs a global subscriber.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod otlp_support;

use opsready_telemetry::OtlpProtocol;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_are_exported_over_http_with_mutual_tls() {
    otlp_support::spans_are_exported_over_tls_with_headers(OtlpProtocol::Http, true).await;
}
