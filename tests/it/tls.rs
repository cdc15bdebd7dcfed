//! Transport: TLS 1.2 and 1.3 accepted, anything older refused, a 1.3 minimum enforced,
//! and a replaced certificate picked up without dropping open connections.

use crate::common::*;
use kvault::server::tls::TlsMinVersion;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;

async fn handshake(
    port: u16,
    ca: &std::path::Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<rustls::ProtocolVersion, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let conn = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    Ok(conn.get_ref().1.protocol_version().unwrap())
}

/// Runs `openssl s_client` forcing one old protocol version; returns its combined output.
fn openssl_old_protocol(port: u16, flag: &str) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            flag,
            // Let the client even offer the old protocol; the server must refuse it.
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl must be installed (the test script installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn tls_12_and_13_accepted_older_refused() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    assert_eq!(
        handshake(v.port, &v.ca, &[&rustls::version::TLS12])
            .await
            .unwrap(),
        rustls::ProtocolVersion::TLSv1_2
    );
    assert_eq!(
        handshake(v.port, &v.ca, &[&rustls::version::TLS13])
            .await
            .unwrap(),
        rustls::ProtocolVersion::TLSv1_3
    );
    for flag in ["-tls1", "-tls1_1"] {
        let port = v.port;
        let (ok, out) = tokio::task::spawn_blocking(move || openssl_old_protocol(port, flag))
            .await
            .unwrap();
        assert!(!ok, "{flag} handshake must fail:\n{out}");
        // The refusal comes from the server: openssl reports the alert it *received*
        // (rustls answers a pre-1.2 ClientHello with a fatal alert), and no session.
        assert!(out.contains("SSL alert number"), "{flag}:\n{out}");
        assert!(out.contains("Cipher is (NONE)"), "{flag}:\n{out}");
    }
    // A modern openssl client negotiates fine (so the failures above are the protocol).
    let port = v.port;
    let (ok, out) = tokio::task::spawn_blocking(move || openssl_old_protocol(port, "-tls1_2"))
        .await
        .unwrap();
    assert!(ok && out.contains("TLSv1.2"), "{out}");
    v.stop().await;
}

#[tokio::test]
async fn minimum_tls_13_refuses_12() {
    let fx = Fixture::new();
    let v = fx
        .start(Options {
            tls_min_version: TlsMinVersion::Tls13,
            ..Default::default()
        })
        .await;
    assert!(
        handshake(v.port, &v.ca, &[&rustls::version::TLS12])
            .await
            .is_err()
    );
    assert_eq!(
        handshake(v.port, &v.ca, &[&rustls::version::TLS13])
            .await
            .unwrap(),
        rustls::ProtocolVersion::TLSv1_3
    );
    v.stop().await;
}

#[tokio::test]
async fn a_replaced_certificate_is_served_without_dropping_connections() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let old_client = v.client();
    old_client.list_secrets().await.unwrap();

    // New certificate from another CA, written over the configured files.
    let new = make_certs(fx.dir.path(), "b");
    std::fs::copy(&new.key, &fx.certs.key).unwrap();
    std::fs::copy(&new.cert, &fx.certs.cert).unwrap();

    let mut switched = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if handshake(v.port, &new.ca_pem, &[&rustls::version::TLS13])
            .await
            .is_ok()
        {
            switched = true;
            break;
        }
    }
    assert!(switched, "the new certificate was never served");
    // New handshakes no longer present the old certificate…
    assert!(
        handshake(v.port, &v.ca, &[&rustls::version::TLS13])
            .await
            .is_err()
    );
    // …but the connection opened before the switch still works.
    old_client.list_secrets().await.unwrap();
    v.stop().await;
}
