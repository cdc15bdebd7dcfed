//! Bad input of every kind is refused with the API's own codes, and never changes data.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn bad_requests_get_bad_parameter_and_leave_data_alone() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let http = v.http();
    let put = |path: &str, body: Vec<u8>| {
        http.put(v.at(path))
            .bearer_auth(&v.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let ok = put(
        "/secrets/keep?api-version=7.4",
        br#"{"value":"original"}"#.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(ok.status().as_u16(), 200);

    let big = "x".repeat(25 * 1024 + 1);
    let long_name = format!("/secrets/{}?api-version=7.4", "n".repeat(128));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/secrets/keep?api-version=7.4", b"{not json".to_vec(), 400, "BadParameter"),
        ("/secrets/keep?api-version=7.4", b"".to_vec(), 400, "BadParameter"),
        ("/secrets/keep?api-version=7.4", br#"{"value": 12}"#.to_vec(), 400, "BadParameter"),
        ("/secrets/keep?api-version=7.4", br#"{"contentType":"x"}"#.to_vec(), 400, "BadParameter"),
        ("/secrets/keep?api-version=7.4", br#"{"value":"v","attributes":{"enabled":"yes"}}"#.to_vec(), 400, "BadParameter"),
        ("/secrets/keep?api-version=7.4", br#"{"value":"v","tags":{"a":1}}"#.to_vec(), 400, "BadParameter"),
        ("/secrets/keep?api-version=7.4", br#"{"value":"v","attributes":{"nbf":200,"exp":100}}"#.to_vec(), 400, "BadParameter"),
        ("/secrets/keep?api-version=7.4", json!({"value": big}).to_string().into_bytes(), 400, "BadParameter"),
        ("/secrets/keep?api-version=7.4", json!({"value": "v", "contentType": "c".repeat(256)}).to_string().into_bytes(), 400, "BadParameter"),
        ("/secrets/keep?api-version=7.4", json!({"value": "v", "tags": (0..16).map(|i| (format!("t{i}"), "v")).collect::<std::collections::BTreeMap<_,_>>()}).to_string().into_bytes(), 400, "BadParameter"),
        ("/secrets/bad_name?api-version=7.4", br#"{"value":"v"}"#.to_vec(), 400, "BadParameter"),
        ("/secrets/bad%20name?api-version=7.4", br#"{"value":"v"}"#.to_vec(), 400, "BadParameter"),
        (long_name.as_str(), br#"{"value":"v"}"#.to_vec(), 400, "BadParameter"),
        ("/secrets/keep?api-version=1999-01-01", br#"{"value":"v"}"#.to_vec(), 400, "BadParameter"),
        ("/secrets/keep", br#"{"value":"v"}"#.to_vec(), 400, "BadParameter"),
    ];
    for (path, body, status, code) in cases {
        let r = put(path, body).await.unwrap();
        let (s, c) = error_code(r).await;
        assert_eq!((s, c.as_str()), (status, code), "PUT {path}");
    }
    // An error about a wrongly typed value does not echo it.
    let r = put(
        "/secrets/keep?api-version=7.4",
        br#"{"value": 987654321}"#.to_vec(),
    )
    .await
    .unwrap();
    assert!(!r.text().await.unwrap().contains("987654321"));

    // Paging parameters.
    for q in [
        "maxresults=0",
        "maxresults=26",
        "maxresults=abc",
        "$skiptoken=%21%21",
        "$skiptoken=eyJ4IjoxfQ",
    ] {
        let r = http
            .get(v.at(&format!("/secrets?api-version=7.4&{q}")))
            .bearer_auth(&v.token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(r).await,
            (400, "BadParameter".to_string()),
            "{q}"
        );
    }

    // JS clients percent-encode the api-version key.
    let r = http
        .get(v.at("/secrets/keep/?api%2Dversion=2026-04-01"))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Unknown paths and methods.
    let r = http
        .get(v.at("/nothing/here?api-version=7.4"))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .post(v.at("/secrets?api-version=7.4"))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);

    // Exactly 25 KiB is accepted.
    let r = put(
        "/secrets/max?api-version=7.4",
        json!({"value": "y".repeat(25 * 1024)})
            .to_string()
            .into_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Nothing above changed the stored secret.
    let c = v.client();
    assert_eq!(c.list_secret_versions("keep").await.unwrap().len(), 1);
    assert_eq!(
        c.get_secret("keep", None).await.unwrap().value.as_deref(),
        Some("original")
    );
    v.stop().await;
}

#[tokio::test]
async fn every_api_version_the_sdks_send_and_later_ones_are_accepted_malformed_refused() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let http = v.http();
    let put = |ver: String| {
        http.put(v.at(&format!("/secrets/ver?api-version={ver}")))
            .bearer_auth(&v.token)
            .json(&json!({"value": "v"}))
            .send()
    };
    // The Rust SDK 1.x's version, a later GA and a later preview get the newest behaviour.
    let later = ["2026-03-01-preview", "2027-01-01", "2027-05-01-preview"];
    for ver in kvault::wire::KNOWN_API_VERSIONS.iter().chain(&later) {
        let r = put(ver.to_string()).await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{ver}");
    }
    for ver in ["7.9", "2024-01-01", "2027-02-30", "next", "2027-01-01-beta"] {
        let r = put(ver.to_string()).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{ver}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "BadParameter", "{ver}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("is not recognized"), "{message}");
    }
    v.stop().await;
}

/// A TLS connection to the vault on which the test writes raw HTTP/1.1.
async fn raw_tls(v: &TestVault) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&v.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", v.port))
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(rustls::pki_types::ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn bodies_are_read_only_by_operations_that_take_one_and_within_their_limit() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let http = v.http();
    let c = v.client();
    c.set_secret("keep", &set("original")).await.unwrap();

    // A GET or DELETE that carries a body is refused before it is read.
    let r = http
        .get(v.at("/secrets/keep?api-version=7.4"))
        .bearer_auth(&v.token)
        .body(vec![b'x'; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("GetSecret takes no request body"), "{text}");
    let r = http
        .delete(v.at("/secrets/keep?api-version=7.4"))
        .bearer_auth(&v.token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (400, "BadParameter".to_string()));
    assert_eq!(
        c.get_secret("keep", None).await.unwrap().value.as_deref(),
        Some("original")
    );
    // An empty body (Content-Length: 0) is no body.
    let r = http
        .get(v.at("/secrets/keep?api-version=7.4"))
        .bearer_auth(&v.token)
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // A set is limited to what a 25 KiB value can take, not to the restore limit.
    let r = http
        .put(v.at("/secrets/keep?api-version=7.4"))
        .bearer_auth(&v.token)
        .header("content-type", "application/json")
        .body(json!({"value": "x".repeat(512 * 1024)}).to_string())
        .send()
        .await
        .unwrap();
    let (status, code) = error_code(r).await;
    assert_eq!((status, code.as_str()), (400, "BadParameter"));
    assert_eq!(
        c.get_secret("keep", None).await.unwrap().value.as_deref(),
        Some("original")
    );

    // The bodies in flight are bounded: four 16 MiB restores that are still being sent hold
    // the whole budget, so a fifth large request waits its turn (429) instead of growing
    // the server's memory; once they go, large requests are served again.
    use tokio::io::AsyncWriteExt;
    let restore_head = format!(
        "POST /secrets/restore?api-version=7.4 HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{",
        v.token,
        16 * 1024 * 1024
    );
    let mut holders = Vec::new();
    for _ in 0..4 {
        let mut s = raw_tls(&v).await;
        s.write_all(restore_head.as_bytes()).await.unwrap();
        s.flush().await.unwrap();
        holders.push(s);
    }
    let restore = || {
        http.post(v.at("/secrets/restore?api-version=7.4"))
            .bearer_auth(&v.token)
            .header("content-type", "application/json")
            .body(r#"{"value":"not-a-backup"}"#)
            .send()
    };
    let mut throttled = false;
    for _ in 0..100 {
        let r = restore().await.unwrap();
        if r.status().as_u16() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            throttled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        throttled,
        "a fifth large body was accepted while 64 MiB were in flight"
    );
    // Small requests that take no body are not held up.
    c.get_secret("keep", None).await.unwrap();
    drop(holders);
    let mut served = false;
    for _ in 0..100 {
        if restore().await.unwrap().status().as_u16() == 400 {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        served,
        "the budget was not given back when the senders went away"
    );
    v.stop().await;
}
