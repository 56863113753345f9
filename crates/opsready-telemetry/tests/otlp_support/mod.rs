//! Shared by the OTLP test binaries: collectors that speak the real
//! protocols, an app behind `TelemetryLayer`, and the checks of an exported
//! request span.

// Each binary uses one of the two collectors.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opsready_telemetry::TelemetryLayer;
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::TcpListenerStream;

/// The trace the test requests continue, and the caller's span in it.
pub(crate) const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub(crate) const PARENT_ID: &str = "00f067aa0ba902b7";

/// What a collector received, one export call at a time.
pub(crate) type Exports = mpsc::UnboundedReceiver<ExportTraceServiceRequest>;

/// An OTLP/gRPC collector on a free port: its address and what it receives.
pub(crate) async fn grpc_collector() -> (String, Exports) {
    struct Collector(mpsc::UnboundedSender<ExportTraceServiceRequest>);

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let _ = self.0.send(request.into_inner());
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, exports) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(sender)))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), exports)
}

/// An OTLP/HTTP collector on a free port, `POST /v1/traces` with protobuf
/// bodies: its base address and what it receives.
pub(crate) async fn http_collector() -> (String, Exports) {
    let (sender, exports) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| async move {
            let request = ExportTraceServiceRequest::decode(body).unwrap();
            let _ = sender.send(request);
            (
                [(CONTENT_TYPE, "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), exports)
}

/// A served app with `TelemetryLayer`; sending on the handle stops it, and
/// the join handle ends once every connection is closed.
pub(crate) async fn serve_app() -> (
    SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let app = Router::new()
        .route("/hello/{name}", get(|| async { "hi" }))
        .layer(TelemetryLayer::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    (addr, stop, server)
}

/// Sends `GET /hello/ops` continuing [`TRACE_ID`] from [`PARENT_ID`], and
/// returns the response's `traceparent`.
pub(crate) async fn traced_request(addr: SocketAddr) -> String {
    // A client of its own, dropped here: its connection closes, so the
    // server's graceful shutdown does not wait for it.
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{addr}/hello/ops"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The first exported span named `name`, with the `service.name` of its
/// resource, waiting at most a few seconds for it.
pub(crate) async fn exported_span(exports: &mut Exports, name: &str) -> (Span, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let Ok(Some(request)) = tokio::time::timeout_at(deadline, exports.recv()).await else {
            panic!("no span named {name:?} was exported in time");
        };
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| string(kv.value.as_ref()))
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                if let Some(span) = scope_spans.spans.into_iter().find(|span| span.name == name) {
                    return (span, service);
                }
            }
        }
    }
}

/// Checks what a caller and a tracing backend rely on: name, kind, HTTP
/// attributes, the continued trace, the caller as parent, and the span id
/// the response's `traceparent` passed on.
pub(crate) fn assert_request_span(span: &Span, traceparent: &str) {
    assert_eq!(span.name, "GET /hello/{name}");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(
        string(attribute(span, "http.request.method")).as_deref(),
        Some("GET")
    );
    assert_eq!(
        string(attribute(span, "http.route")).as_deref(),
        Some("/hello/{name}")
    );
    assert_eq!(
        attribute(span, "http.response.status_code").and_then(|value| match value.value {
            Some(Value::IntValue(status)) => Some(status),
            _ => None,
        }),
        Some(200),
        "{:?}",
        span.attributes
    );
    assert_eq!(hex(&span.trace_id), TRACE_ID);
    assert_eq!(hex(&span.parent_span_id), PARENT_ID);

    let returned: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(returned[1], TRACE_ID);
    assert_eq!(
        hex(&span.span_id),
        returned[2],
        "the response names another span"
    );
    assert_eq!(returned[3], "01");
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

fn string(value: Option<&AnyValue>) -> Option<String> {
    match value?.value.as_ref()? {
        Value::StringValue(text) => Some(text.clone()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
