//! Shared by the OTLP test binaries: collectors that speak the real
//! protocols, an app behind `TelemetryLayer`, and the checks of an exported
//! request span.

// Each binary uses one of the collectors.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opsready_settings::Secret;
use opsready_telemetry::{
    LogFormat, OtlpCompression, OtlpProtocol, ServiceInfo, TelemetryLayer, TelemetrySettings,
};
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::TcpListenerStream;

/// The trace the test requests continue, and the caller's span in it.
pub(crate) const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub(crate) const PARENT_ID: &str = "00f067aa0ba902b7";
/// The `x-request-id` of [`traced_request`], kept by the layer.
pub(crate) const REQUEST_ID: &str = "req-7f3a";

/// What a collector received, one export call at a time.
pub(crate) type Exports = mpsc::UnboundedReceiver<ExportTraceServiceRequest>;

/// The log records a collector received, one export call at a time.
pub(crate) type LogExports = mpsc::UnboundedReceiver<ExportLogsServiceRequest>;

/// The header a TLS collector reports of each export call.
pub(crate) const API_KEY: &str = "x-api-key";

/// The value of one header (or gRPC metadata key) of each export call a
/// collector received: the [`API_KEY`] for the TLS collectors, the declared
/// encoding for the gzip one.
pub(crate) type HeaderValues = mpsc::UnboundedReceiver<Option<String>>;

/// A certificate authority made for one test, and a server certificate it
/// signed for `localhost` and `127.0.0.1`.
pub(crate) struct Authority {
    /// The authority's certificate, PEM: what a client trusts.
    pub(crate) ca_pem: String,
    /// The server's certificate and key, PEM.
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Authority {
    pub(crate) fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "opsready test authority");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();

        let key = KeyPair::generate().unwrap();
        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "collector");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            ca_cert,
            ca_key,
        }
    }

    /// A client certificate the authority signed and its PKCS#8 key, in
    /// files of `dir`, for `telemetry.otlp.client_cert_file` and
    /// `client_key_file`.
    pub(crate) fn client_files(
        &self,
        dir: &std::path::Path,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client.distinguished_name.push(DnType::CommonName, "orders");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = client.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        let (cert_file, key_file) = (dir.join("client.pem"), dir.join("client-key.pem"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    /// The authority's certificate in a file of `dir`, for
    /// `telemetry.otlp.ca_file`.
    pub(crate) fn ca_file(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("authority.pem");
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }
}

/// An OTLP/gRPC collector over TLS with `authority`'s server certificate:
/// its `https://` address, what it receives, and the [`API_KEY`] metadata
/// of each call.
pub(crate) async fn grpc_tls_collector(
    authority: &Authority,
    mutual: bool,
) -> (String, Exports, HeaderValues) {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (exports_sender, exports) = mpsc::unbounded_channel();
    let (keys_sender, keys) = mpsc::unbounded_channel();
    let identity = Identity::from_pem(&authority.cert_pem, &authority.key_pem);
    let mut tls = ServerTlsConfig::new().identity(identity);
    if mutual {
        // A client certificate the authority signed, or no handshake.
        tls = tls.client_ca_root(Certificate::from_pem(&authority.ca_pem));
    }
    let server = tonic::transport::Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(TraceServiceServer::new(GrpcCollector {
            exports: exports_sender,
            seen: Some((API_KEY, keys_sender)),
        }))
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
    (format!("https://{addr}"), exports, keys)
}

/// An OTLP/HTTP collector over TLS with `authority`'s server certificate:
/// its `https://` base address, what it receives, and the [`API_KEY`]
/// header of each call.
pub(crate) async fn https_collector(
    authority: &Authority,
    mutual: bool,
) -> (String, Exports, HeaderValues) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let (exports_sender, exports) = mpsc::unbounded_channel();
    let (keys_sender, keys) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| async move {
            let _ = keys_sender.send(header(&headers, API_KEY));
            let _ = exports_sender.send(ExportTraceServiceRequest::decode(body).unwrap());
            (
                [(CONTENT_TYPE, "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
        }),
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let clients = if mutual {
        // A client certificate the authority signed, or no handshake.
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(authority.ca_cert.der().to_vec()))
            .unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        versions.with_client_cert_verifier(verifier)
    } else {
        versions.with_no_client_auth()
    };
    let config = clients
        .with_single_cert(
            vec![CertificateDer::from(authority.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(authority.key_der.clone())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                // A client that gives up on the handshake is not this
                // collector's failure: the test sees what arrives.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (format!("https://{addr}"), exports, keys)
}

/// The OTLP/gRPC trace service of the test collectors: passes on what it
/// receives and, when asked, the [`API_KEY`] metadata of each call.
struct GrpcCollector {
    exports: mpsc::UnboundedSender<ExportTraceServiceRequest>,
    /// A metadata key, and where to send its value of each call.
    seen: Option<(&'static str, mpsc::UnboundedSender<Option<String>>)>,
}

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if let Some((key, values)) = &self.seen {
            let metadata = request.metadata().clone().into_headers();
            let _ = values.send(header(&metadata, key));
        }
        let _ = self.exports.send(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC collector on a free port: its address and what it receives.
pub(crate) async fn grpc_collector() -> (String, Exports) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, exports) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(GrpcCollector {
                exports: sender,
                seen: None,
            }))
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

/// The OTLP/gRPC logs service of the test collectors.
struct GrpcLogs(mpsc::UnboundedSender<ExportLogsServiceRequest>);

#[tonic::async_trait]
impl LogsService for GrpcLogs {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// An OTLP/gRPC collector of spans and log records on a free port: its
/// address and what it receives.
pub(crate) async fn grpc_collector_with_logs() -> (String, Exports, LogExports) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, exports) = mpsc::unbounded_channel();
    let (logs_sender, logs) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(GrpcCollector {
                exports: sender,
                seen: None,
            }))
            .add_service(LogsServiceServer::new(GrpcLogs(logs_sender)))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), exports, logs)
}

/// An OTLP/HTTP collector of spans (`/v1/traces`) and log records
/// (`/v1/logs`) on a free port: its base address and what it receives.
pub(crate) async fn http_collector_with_logs() -> (String, Exports, LogExports) {
    let (sender, exports) = mpsc::unbounded_channel();
    let (logs_sender, logs) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(move |body: Bytes| async move {
                let _ = sender.send(ExportTraceServiceRequest::decode(body).unwrap());
                (
                    [(CONTENT_TYPE, "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }),
        )
        .route(
            "/v1/logs",
            post(move |body: Bytes| async move {
                let _ = logs_sender.send(ExportLogsServiceRequest::decode(body).unwrap());
                (
                    [(CONTENT_TYPE, "application/x-protobuf")],
                    ExportLogsServiceResponse::default().encode_to_vec(),
                )
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), exports, logs)
}

/// The first exported log record of each of `bodies`, in that order,
/// waiting at most a few seconds for them.
pub(crate) async fn exported_logs(logs: &mut LogExports, bodies: &[&str]) -> Vec<LogRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut received: Vec<LogRecord> = Vec::new();
    loop {
        let found: Vec<Option<&LogRecord>> = bodies
            .iter()
            .map(|body| {
                received
                    .iter()
                    .find(|record| string(record.body.as_ref()).as_deref() == Some(*body))
            })
            .collect();
        if found.iter().all(Option::is_some) {
            return found.into_iter().flatten().cloned().collect();
        }
        let Ok(Some(request)) = tokio::time::timeout_at(deadline, logs.recv()).await else {
            panic!("not every one of the log records {bodies:?} was exported in time");
        };
        received.extend(
            request
                .resource_logs
                .into_iter()
                .flat_map(|resource| resource.scope_logs)
                .flat_map(|scope| scope.log_records),
        );
    }
}

/// Log export with `protocol`: the handler's event and the request's line
/// arrive as log records in the request's trace and span, with their
/// fields and the request span's id, route and method as attributes; the
/// credentials an event quotes arrive masked.
pub(crate) async fn log_events_are_exported_in_the_request_trace(protocol: OtlpProtocol) {
    // Arrange
    let (endpoint, mut exports, mut logs) = match protocol {
        OtlpProtocol::Grpc => grpc_collector_with_logs().await,
        OtlpProtocol::Http => http_collector_with_logs().await,
    };
    let mut settings = TelemetrySettings::default();
    settings.log.format = Some(LogFormat::Json);
    settings.otlp.endpoint = Some(endpoint);
    settings.otlp.protocol = protocol;
    settings.otlp.logs = true;

    // Act
    let traceparent = export_one_request(&settings, "orders").await;

    // Assert
    let span_id = traceparent.split('-').nth(2).unwrap().to_owned();
    let records = exported_logs(
        &mut logs,
        &[
            "order handled",
            "request finished",
            "retrying postgres://app:[REDACTED]@db/app",
        ],
    )
    .await;
    let (handled, line, retrying) = (&records[0], &records[1], &records[2]);
    let masked = |key: &str| string_attribute(&retrying.attributes, key);
    assert_eq!(masked("password").as_deref(), Some("[REDACTED]"));
    assert_eq!(
        masked("upstream").as_deref(),
        Some("https://api.example/v1?api_key=[REDACTED]")
    );
    assert_eq!(
        hex(&retrying.trace_id),
        TRACE_ID,
        "the masked copy lost its trace"
    );
    assert_eq!(retrying.severity_number, 13, "not WARN: {retrying:?}");
    assert!(!format!("{records:?}").contains("OTLP-SECRET"));
    assert_eq!(hex(&handled.trace_id), TRACE_ID);
    assert_eq!(hex(&handled.span_id), span_id, "not in the request's span");
    assert_eq!(handled.severity_number, 9, "not INFO: {handled:?}");
    let order = handled
        .attributes
        .iter()
        .find(|kv| kv.key == "order")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|value| value.value.clone());
    assert_eq!(order, Some(Value::IntValue(7)), "{:?}", handled.attributes);
    assert_eq!(hex(&line.trace_id), TRACE_ID);
    assert_eq!(hex(&line.span_id), span_id);
    for record in [handled, line] {
        let attribute = |key: &str| string_attribute(&record.attributes, key);
        assert_eq!(
            attribute("request_id").as_deref(),
            Some(REQUEST_ID),
            "{record:?}"
        );
        assert_eq!(attribute("http.route").as_deref(), Some("/hello/{name}"));
        assert_eq!(attribute("http.request.method").as_deref(), Some("GET"));
        // Only those: not the span's other fields.
        assert_eq!(attribute("url.path"), None);
    }
    // The spans still go as before.
    let (span, _) = exported_span(&mut exports, "GET /hello/{name}").await;
    assert_request_span(&span, &traceparent);
    // The events inside it, the log events of the request, are masked too.
    let event = span
        .events
        .iter()
        .find(|event| event.name.starts_with("retrying"))
        .unwrap_or_else(|| panic!("no event of the warning in {:?}", span.events));
    assert_eq!(event.name, "retrying postgres://app:[REDACTED]@db/app");
    assert_eq!(
        string_attribute(&event.attributes, "password").as_deref(),
        Some("[REDACTED]")
    );
    assert!(!format!("{span:?}").contains("OTLP-SECRET"), "{span:?}");
}

/// A served app with `TelemetryLayer`; sending on the handle stops it, and
/// the join handle ends once every connection is closed.
pub(crate) async fn serve_app() -> (
    SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let app = Router::new()
        .route(
            "/hello/{name}",
            get(|| async {
                // A log event of the handler, inside the request's span.
                tracing::info!(order = 7, "order handled");
                // One that quotes credentials, which must not leave masked.
                tracing::warn!(
                    password = "OTLP-SECRET-1",
                    upstream = "https://api.example/v1?api_key=OTLP-SECRET-2",
                    "retrying postgres://app:OTLP-SECRET-3@db/app"
                );
                "hi"
            }),
        )
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

/// The value of `name` among `headers`.
fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// A collector on a free port that takes gzip-compressed exports with
/// `protocol`: its address, what it receives, and the encoding each call
/// declared (`grpc-encoding` or `content-encoding`).
pub(crate) async fn gzip_collector(protocol: OtlpProtocol) -> (String, Exports, HeaderValues) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, exports) = mpsc::unbounded_channel();
    let (encodings_sender, encodings) = mpsc::unbounded_channel();
    match protocol {
        OtlpProtocol::Grpc => {
            let service = TraceServiceServer::new(GrpcCollector {
                exports: sender,
                seen: Some(("grpc-encoding", encodings_sender)),
            })
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(TcpListenerStream::new(listener)),
            );
        }
        OtlpProtocol::Http => {
            let app = Router::new().route(
                "/v1/traces",
                post(move |headers: HeaderMap, body: Bytes| async move {
                    let encoding = header(&headers, "content-encoding");
                    let body = if encoding.as_deref() == Some("gzip") {
                        let mut plain = Vec::new();
                        std::io::Read::read_to_end(
                            &mut flate2::read::GzDecoder::new(&body[..]),
                            &mut plain,
                        )
                        .unwrap();
                        Bytes::from(plain)
                    } else {
                        body
                    };
                    let _ = encodings_sender.send(encoding);
                    let _ = sender.send(ExportTraceServiceRequest::decode(body).unwrap());
                    (
                        [(CONTENT_TYPE, "application/x-protobuf")],
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
    }
    (format!("http://{addr}"), exports, encodings)
}

/// Export with `telemetry.otlp.compression = gzip` and `protocol`: the
/// calls say gzip, and the request span arrives whole.
pub(crate) async fn spans_are_exported_gzip_compressed(protocol: OtlpProtocol) {
    // Arrange
    let (endpoint, mut exports, mut encodings) = gzip_collector(protocol).await;
    let mut settings = TelemetrySettings::default();
    settings.log.format = Some(LogFormat::Json);
    settings.otlp.endpoint = Some(endpoint);
    settings.otlp.protocol = protocol;
    settings.otlp.compression = OtlpCompression::Gzip;

    // Act
    let traceparent = export_one_request(&settings, "orders").await;

    // Assert
    let (span, _) = exported_span(&mut exports, "GET /hello/{name}").await;
    assert_request_span(&span, &traceparent);
    assert_eq!(encodings.recv().await.unwrap().as_deref(), Some("gzip"));
}

/// Installs telemetry with `settings` for `service`, sends one traced
/// request (see [`traced_request`]) to an app behind `TelemetryLayer`, stops
/// the app and, as the facade does once its server has stopped, sends every
/// span before returning. Returns the response's `traceparent`.
pub(crate) async fn export_one_request(settings: &TelemetrySettings, service: &str) -> String {
    let telemetry =
        opsready_telemetry::init(settings, &ServiceInfo::new(service, "1.2.3")).unwrap();
    let (addr, stop, server) = serve_app().await;
    let traceparent = traced_request(addr).await;
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap()
        .unwrap();
    traceparent
}

/// Export over TLS with `protocol` to a collector whose certificate a
/// per-test authority signed, trusted through `telemetry.otlp.ca_file`:
/// the request span arrives, with the API key of `telemetry.otlp.headers`.
///
/// With `mutual`, the collector asks for a client certificate the authority
/// signed, which the exporter shows from `telemetry.otlp.client_cert_file`
/// and `client_key_file`.
pub(crate) async fn spans_are_exported_over_tls_with_headers(protocol: OtlpProtocol, mutual: bool) {
    // Arrange
    let authority = Authority::new();
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, mut exports, mut keys) = match protocol {
        OtlpProtocol::Grpc => grpc_tls_collector(&authority, mutual).await,
        OtlpProtocol::Http => https_collector(&authority, mutual).await,
    };
    let mut settings = TelemetrySettings::default();
    settings.log.format = Some(LogFormat::Json);
    settings.otlp.endpoint = Some(endpoint);
    settings.otlp.protocol = protocol;
    // Percent-encoded, as OTEL_EXPORTER_OTLP_HEADERS allows; names in any case.
    settings.otlp.headers = Some(Secret::new(
        "X-Api-Key=s3cret%2C1, x-tenant=shop".to_owned(),
    ));
    settings.otlp.ca_file = Some(authority.ca_file(dir.path()));
    if mutual {
        let (cert, key) = authority.client_files(dir.path());
        settings.otlp.client_cert_file = Some(cert);
        settings.otlp.client_key_file = Some(key);
    }

    // Act
    let traceparent = export_one_request(&settings, "orders").await;

    // Assert
    let (span, _) = exported_span(&mut exports, "GET /hello/{name}").await;
    assert_request_span(&span, &traceparent);
    assert_eq!(keys.recv().await.unwrap().as_deref(), Some("s3cret,1"));
}

/// Sends `GET /hello/ops` continuing [`TRACE_ID`] from [`PARENT_ID`], with
/// [`REQUEST_ID`], and returns the response's `traceparent`.
pub(crate) async fn traced_request(addr: SocketAddr) -> String {
    // A client of its own, dropped here: its connection closes, so the
    // server's graceful shutdown does not wait for it.
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{addr}/hello/ops"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .header("x-request-id", REQUEST_ID)
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

/// The string value of the attribute `key` among `attributes`.
fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| string(kv.value.as_ref()))
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
