//! OTLP/HTTP (protobuf) export of the request spans, to a collector in the
//! test that decodes the real request bodies. A binary of its own: `init`
//! installs a global subscriber.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod otlp_support;

use opsready_telemetry::{LogFormat, OtlpProtocol, ServiceInfo, TelemetrySettings};
use otlp_support::{assert_request_span, exported_span, http_collector, serve_app, traced_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_are_exported_over_http_with_the_callers_trace() {
    // Arrange
    let (endpoint, mut exports) = http_collector().await;
    let mut settings = TelemetrySettings::default();
    settings.log.format = Some(LogFormat::Json);
    // A trailing slash is forgiven: spans still go to `/v1/traces`.
    settings.otlp.endpoint = Some(format!("{endpoint}/"));
    settings.otlp.protocol = OtlpProtocol::Http;
    let telemetry =
        opsready_telemetry::init(&settings, &ServiceInfo::new("orders", "1.2.3")).unwrap();
    let (addr, stop, server) = serve_app().await;

    // Act
    let traceparent = traced_request(addr).await;
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap()
        .unwrap();

    // Assert
    let (span, service) = exported_span(&mut exports, "GET /hello/{name}").await;
    assert_request_span(&span, &traceparent);
    assert_eq!(service, "orders", "the package name names the service");
}
