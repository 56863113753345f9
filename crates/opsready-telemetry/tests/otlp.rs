//! OTLP/gRPC export of the request spans, to a collector in the test that
//! speaks the real protocol; and the errors of an exporter that cannot
//! start. `init` installs a global subscriber, so only one test here does.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod otlp_support;

use opsready_settings::{Secret, Validate as _, Violations};
use opsready_telemetry::{LogFormat, OtlpProtocol, ServiceInfo, TelemetrySettings};
use otlp_support::{assert_request_span, export_one_request, exported_span, grpc_collector};

fn settings(endpoint: &str, protocol: OtlpProtocol) -> TelemetrySettings {
    let mut settings = TelemetrySettings::default();
    settings.log.format = Some(LogFormat::Json);
    settings.otlp.endpoint = Some(endpoint.to_owned());
    settings.otlp.protocol = protocol;
    settings
}

/// Why `init` refuses `settings`, and what validating them finds.
fn refusals(settings: &TelemetrySettings) -> (String, Violations) {
    let error = opsready_telemetry::init(settings, &ServiceInfo::new("svc", "1.0.0"))
        .unwrap_err()
        .to_string();
    let mut violations = Violations::new();
    settings.validate(&mut violations);
    (error, violations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_are_exported_over_grpc_with_the_callers_trace() {
    // Arrange
    let (endpoint, mut exports) = grpc_collector().await;
    let mut settings = settings(&endpoint, OtlpProtocol::Grpc);
    settings.service_name = Some("orders".to_owned());

    // Act
    let traceparent = export_one_request(&settings, "orders-bin").await;

    // Assert
    let (span, service) = exported_span(&mut exports, "GET /hello/{name}").await;
    assert_request_span(&span, &traceparent);
    assert_eq!(
        service, "orders",
        "telemetry.service_name names the service"
    );
}

#[tokio::test]
async fn a_malformed_endpoint_is_an_error_from_init_and_from_validation() {
    for endpoint in [
        "not a url",
        "localhost:4317",
        "ftp://collector:4317",
        "https://:4317",
    ] {
        let settings = settings(endpoint, OtlpProtocol::Grpc);

        let (error, violations) = refusals(&settings);

        assert!(
            error.contains("telemetry.otlp.endpoint"),
            "{endpoint}: {error}"
        );
        assert!(
            violations.iter().any(|(key, _)| key == "otlp.endpoint"),
            "{endpoint} passed validation"
        );
    }
}

#[test]
fn grpc_export_outside_a_tokio_runtime_is_an_error() {
    let settings = settings("http://127.0.0.1:4317", OtlpProtocol::Grpc);

    let error = opsready_telemetry::init(&settings, &ServiceInfo::new("svc", "1.0.0"))
        .unwrap_err()
        .to_string();

    assert!(error.contains("Tokio runtime"), "{error}");
}

#[test]
fn a_sample_ratio_outside_zero_to_one_is_a_validation_error() {
    let mut settings = TelemetrySettings::default();
    for ratio in [-0.1, 1.5, f64::NAN] {
        settings.sample_ratio = ratio;
        let mut violations = Violations::new();
        settings.validate(&mut violations);
        assert!(
            violations.iter().any(|(key, _)| key == "sample_ratio"),
            "{ratio} passed"
        );
    }
    settings.sample_ratio = 0.25;
    let mut violations = Violations::new();
    settings.validate(&mut violations);
    assert!(violations.is_empty());
}

#[test]
fn the_workspace_locks_one_version_of_each_opentelemetry_crate() {
    // Two versions would compile apart from each other and quietly drop
    // context between them; the workspace pins the family in one place.
    let lock = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock");
    let Ok(lock) = std::fs::read_to_string(lock) else {
        // Built outside the workspace (from a package): nothing to check.
        return;
    };
    for name in [
        "opentelemetry",
        "opentelemetry_sdk",
        "opentelemetry-otlp",
        "opentelemetry-proto",
        "tracing-opentelemetry",
    ] {
        let entry = format!("name = \"{name}\"\n");
        assert_eq!(
            lock.matches(&entry).count(),
            1,
            "{name} is locked at more than one version, or at none"
        );
    }
}

#[test]
fn malformed_headers_are_refused_without_quoting_their_values() {
    for (headers, expected) in [
        ("x-api-key", "pair 1 has no `=`"),
        (
            "x-tenant=shop,bad name=hunter2",
            "pair 2 has an invalid header name",
        ),
        (
            "x-api-key=hunter2%zz",
            "a `%` not followed by two hex digits",
        ),
        (
            "x-api-key=hunter2\u{7}",
            "a character a header cannot carry",
        ),
    ] {
        let mut settings = settings("http://localhost:4317", OtlpProtocol::Http);
        settings.otlp.headers = Some(Secret::new(headers.to_owned()));

        let (error, violations) = refusals(&settings);

        assert!(
            error.contains("telemetry.otlp.headers"),
            "{headers}: {error}"
        );
        assert!(error.contains(expected), "{headers}: {error}");
        let (key, message) = violations.iter().next().expect("no violation");
        assert_eq!(key, "otlp.headers");
        assert!(message.contains(expected), "{headers}: {message}");
        assert!(
            !error.contains("hunter2") && !message.contains("hunter2"),
            "a secret value was quoted: {error}"
        );
    }
}

#[test]
fn a_ca_file_that_is_missing_or_holds_no_certificate_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not-pem.txt");
    std::fs::write(&not_pem, "just text\n").unwrap();
    for (path, expected) in [
        (dir.path().join("missing.pem"), "cannot be read"),
        (not_pem, "holds no certificate"),
    ] {
        let mut settings = settings("https://localhost:4318", OtlpProtocol::Http);
        settings.otlp.ca_file = Some(path.clone());

        let error = opsready_telemetry::init(&settings, &ServiceInfo::new("svc", "1.0.0"))
            .unwrap_err()
            .to_string();

        assert!(error.contains("telemetry.otlp.ca_file"), "{error}");
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains(expected), "{error}");
    }
}

#[test]
fn a_ca_file_without_an_https_endpoint_is_a_settings_error() {
    let mut settings = settings("http://localhost:4317", OtlpProtocol::Grpc);
    settings.otlp.ca_file = Some("/etc/collector-ca.pem".into());

    let mut violations = Violations::new();
    settings.validate(&mut violations);

    let keys: Vec<_> = violations.iter().map(|(key, _)| key).collect();
    assert_eq!(keys, ["otlp.ca_file"]);
}

#[test]
fn a_client_certificate_needs_its_key_and_tls() {
    let cases: [(&str, bool, bool, &str); 3] = [
        (
            "https://localhost:4317",
            true,
            false,
            "otlp.client_key_file",
        ),
        (
            "https://localhost:4317",
            false,
            true,
            "otlp.client_cert_file",
        ),
        ("http://localhost:4317", true, true, "otlp.client_cert_file"),
    ];
    for (endpoint, cert, key, expected) in cases {
        let mut settings = settings(endpoint, OtlpProtocol::Grpc);
        settings.otlp.client_cert_file = cert.then(|| "/etc/client.pem".into());
        settings.otlp.client_key_file = key.then(|| "/etc/client-key.pem".into());

        let mut violations = Violations::new();
        settings.validate(&mut violations);

        let keys: Vec<_> = violations.iter().map(|(key, _)| key).collect();
        assert_eq!(keys, [expected], "{endpoint} {cert} {key}");
    }
}

#[test]
fn client_certificate_files_that_are_missing_or_not_pem_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not-pem.txt");
    std::fs::write(&not_pem, "just text\n").unwrap();
    let missing = dir.path().join("missing.pem");
    // A missing file is a settings error (so `--check-config` says so);
    // one that is not PEM stops `init`.
    for (cert, key, violated, expected) in [
        (
            &missing,
            &not_pem,
            Some("otlp.client_cert_file"),
            "client_cert_file",
        ),
        (
            &not_pem,
            &missing,
            Some("otlp.client_key_file"),
            "client_key_file",
        ),
        (&not_pem, &not_pem, None, "PKCS#8"),
    ] {
        let mut settings = settings("https://localhost:4318", OtlpProtocol::Http);
        settings.otlp.client_cert_file = Some(cert.clone());
        settings.otlp.client_key_file = Some(key.clone());

        let (error, violations) = refusals(&settings);

        assert!(error.contains(expected), "{error}");
        assert!(error.contains("telemetry.otlp."), "{error}");
        let keys: Vec<_> = violations.iter().map(|(key, _)| key).collect();
        assert_eq!(keys, violated.into_iter().collect::<Vec<_>>(), "{error}");
    }
}
