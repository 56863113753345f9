//! OTLP/HTTP (protobuf) export of the request spans, to a collector in the
//! test that decodes the real request bodies. A binary of its own: `init`
//! installs a global subscriber.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod otlp_support;

use opsready_telemetry::{LogFormat, OtlpProtocol, TelemetrySettings};
use otlp_support::{assert_request_span, export_one_request, exported_span, http_collector};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_are_exported_over_http_with_the_callers_trace() {
    // Arrange
    let (endpoint, mut exports) = http_collector().await;
    let mut settings = TelemetrySettings::default();
    settings.log.format = Some(LogFormat::Json);
    // A trailing slash is forgiven: spans still go to `/v1/traces`.
    settings.otlp.endpoint = Some(format!("{endpoint}/"));
    settings.otlp.protocol = OtlpProtocol::Http;

    // Act
    let traceparent = export_one_request(&settings, "orders").await;

    // Assert
    let (span, service) = exported_span(&mut exports, "GET /hello/{name}").await;
    assert_request_span(&span, &traceparent);
    assert_eq!(service, "orders", "the package name names the service");
}
