//! Connection limits of the HTTPS port: partial request heads, stalled TLS handshakes and
//! idle connections are closed after their timeouts, connections over the cap are closed at
//! once and counted, and shutdown does not wait on idle connections.

use crate::common::*;
use kvault::listener::Limits;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

fn short(max_connections: usize) -> Limits {
    Limits {
        handshake_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(30),
        max_connections,
        drain_timeout: Duration::from_secs(10),
    }
}

async fn tls_connect(
    port: u16,
    ca: &std::path::Path,
) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
}

/// Reads until the server closes (EOF, a reset or a TLS close); panics after `within`.
async fn closed_within(s: &mut (impl AsyncRead + Unpin), within: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server did not close the connection in time");
    out
}

async fn get_health(s: &mut TlsStream<tokio::net::TcpStream>) -> String {
    s.write_all(format!("GET /_kvault/health HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn partial_request_heads_are_closed_after_the_header_read_timeout() {
    let fx = Fixture::new();
    let v = fx
        .start(Options {
            limits: short(16),
            ..Options::default()
        })
        .await;
    let mut s = tls_connect(v.port, &v.ca).await.unwrap();
    s.write_all(format!("GET /_kvault/health HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: 1").as_bytes())
        .await
        .unwrap();
    let t = Instant::now();
    closed_within(&mut s, Duration::from_secs(5)).await;
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    // A TLS connection that sends nothing at all is closed just the same.
    let mut silent = tls_connect(v.port, &v.ca).await.unwrap();
    closed_within(&mut silent, Duration::from_secs(5)).await;
    // A kept-alive connection waiting for its next request too.
    let mut kept = tls_connect(v.port, &v.ca).await.unwrap();
    assert!(get_health(&mut kept).await.starts_with("HTTP/1.1 200"));
    closed_within(&mut kept, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn stalled_tls_handshakes_are_closed_after_the_handshake_timeout() {
    let fx = Fixture::new();
    let v = fx
        .start(Options {
            limits: short(16),
            ..Options::default()
        })
        .await;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", v.port))
        .await
        .unwrap();
    // Half a TLS record header, then nothing.
    tcp.write_all(&[0x16, 0x03]).await.unwrap();
    let t = Instant::now();
    closed_within(&mut tcp, Duration::from_secs(5)).await;
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let fx = Fixture::new();
    let v = fx
        .start(Options {
            limits: Limits {
                header_read_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(1),
                ..short(16)
            },
            ..Options::default()
        })
        .await;
    let mut s = tls_connect(v.port, &v.ca).await.unwrap();
    assert!(get_health(&mut s).await.starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    closed_within(&mut s, Duration::from_secs(5)).await;
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_and_counted() {
    const CAP: usize = 3;
    let fx = Fixture::new();
    let v = fx
        .start(Options {
            limits: Limits {
                header_read_timeout: Duration::from_secs(30),
                ..short(CAP)
            },
            ..Options::default()
        })
        .await;
    let mut open = Vec::new();
    for _ in 0..CAP {
        let mut s = tls_connect(v.port, &v.ca).await.unwrap();
        assert!(get_health(&mut s).await.starts_with("HTTP/1.1 200"));
        open.push(s);
    }
    // The one over the cap is closed before (or during) its handshake.
    let t = Instant::now();
    match tls_connect(v.port, &v.ca).await {
        Err(_) => {}
        Ok(mut extra) => {
            closed_within(&mut extra, Duration::from_secs(1)).await;
        }
    }
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let metrics = v.metrics_addr.unwrap();
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l == "kvault_connections_refused_total 1"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == format!("kvault_connections_open {CAP}")),
        "{text}"
    );
    // A closed connection frees its slot.
    drop(open.pop());
    let mut admitted = false;
    for _ in 0..50 {
        if let Ok(mut s) = tls_connect(v.port, &v.ca).await
            && get_health(&mut s).await.starts_with("HTTP/1.1 200")
        {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted);
}

#[tokio::test]
async fn shutdown_does_not_wait_on_idle_connections() {
    let fx = Fixture::new();
    let v = fx
        .start(Options {
            limits: Limits {
                header_read_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(30),
                ..short(16)
            },
            ..Options::default()
        })
        .await;
    // One connection kept alive after a request, one that never sent a byte.
    let mut kept = tls_connect(v.port, &v.ca).await.unwrap();
    assert!(get_health(&mut kept).await.starts_with("HTTP/1.1 200"));
    let mut silent = tls_connect(v.port, &v.ca).await.unwrap();
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), v.stop())
        .await
        .expect("shutdown waited on idle connections");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    closed_within(&mut kept, Duration::from_secs(1)).await;
    closed_within(&mut silent, Duration::from_secs(1)).await;
}
