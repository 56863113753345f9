//! The HTTP check against a real HTTPS upstream on loopback, whose
//! certificate a test authority signed: trusted through `http_with`, not
//! trusted by the system's authorities through `http`.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]
#![cfg(feature = "http")]

use std::sync::Arc;

use opsready_health::checks::{self, reqwest};
use opsready_health::{Check, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTPS server on loopback answering every request with `status`: its
/// port and the PEM of the authority that signed its certificate (for
/// `localhost`).
async fn https_upstream(status: u16) -> (u16, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "opsready test authority");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "upstream");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // The request head, then one answer and the end.
                let mut head = Vec::new();
                let mut buffer = [0_u8; 1024];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => head.extend_from_slice(&buffer[..read]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 {status} Status\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, ca_cert.pem())
}

/// A client builder trusting `authority`.
fn trusting(authority: &str) -> reqwest::ClientBuilder {
    let authority = reqwest::Certificate::from_pem(authority.as_bytes()).unwrap();
    reqwest::Client::builder().add_root_certificate(authority)
}

#[tokio::test]
async fn an_https_upstream_is_checked_over_tls() {
    let (port, authority) = https_upstream(200).await;
    let url = format!("https://localhost:{port}/health");

    let trusted = checks::http_with(url.clone(), trusting(&authority))
        .check()
        .await;
    // The system's authorities do not know this one.
    let untrusted = checks::http(url).check().await;

    assert_eq!(trusted.status(), Status::Pass, "{trusted:?}");
    assert_eq!(untrusted.status(), Status::Fail, "{untrusted:?}");
}

#[tokio::test]
async fn an_https_upstream_answering_5xx_fails_and_names_the_status() {
    let (port, authority) = https_upstream(503).await;
    let url = format!("https://localhost:{port}/health?token=kept-out");

    let reading = checks::http_with(url, trusting(&authority)).check().await;

    assert_eq!(reading.status(), Status::Fail, "{reading:?}");
    let output = reading.output().unwrap();
    assert!(output.contains("503"), "{output}");
    assert!(!output.contains("kept-out"), "{output}");
}
