//! Certificate behaviours the official SDKs' own live tests expect of the cloud service, on
//! the wire (raw JSON, so field names are checked too): x5c encodings in merge, the contacts
//! 404, EC key sizes in policies, `preserveCertOrder`, `status_details`, `platformManaged`.

use crate::common::*;
use base64::Engine;
use kvault::crypto::keys::{Curve, KeyMaterial};
use kvault::crypto::x509::{self, CertRequest, Signer};
use serde_json::{Value, json};
use std::process::Command;

const API: &str = "api-version=2026-04-01";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(s: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().unwrap())
        .unwrap()
}

async fn call(
    v: &TestVault,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut req = v
        .http()
        .request(method, v.at(&format!("{path}{sep}{API}")))
        .bearer_auth(&v.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn request(subject: &str, ca: bool) -> CertRequest {
    CertRequest {
        subject: subject.into(),
        key_usage: vec!["digitalSignature".into(), "keyCertSign".into()],
        validity_months: 12,
        ca,
        now: chrono_now(),
        ..Default::default()
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 60
}

/// A CA (certificate and key) made in-process.
fn ca(subject: &str) -> (Vec<u8>, KeyMaterial) {
    let key = KeyMaterial::generate_ec(Curve::P256).unwrap();
    let cert = x509::issue(&request(subject, true), &key, Signer::SelfSigned).unwrap();
    (cert, key)
}

/// Signs a pending operation's CSR (standard base64 DER) with openssl under a CA of its own;
/// returns (leaf DER, CA DER).
fn sign_csr(dir: &std::path::Path, csr_b64: &Value) -> (Vec<u8>, Vec<u8>) {
    let csr = dir.join("req.der");
    std::fs::write(&csr, unb64(csr_b64)).unwrap();
    let (ca_key, ca_crt, leaf) = (dir.join("ca.key"), dir.join("ca.crt"), dir.join("leaf.der"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        ca_key.to_str().unwrap(),
        "-out",
        ca_crt.to_str().unwrap(),
        "-subj",
        "/CN=Merge CA",
        "-days",
        "30",
    ]);
    run(&[
        "x509",
        "-req",
        "-inform",
        "DER",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        ca_crt.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-days",
        "10",
        "-outform",
        "DER",
        "-out",
        leaf.to_str().unwrap(),
    ]);
    let ca_der = dir.join("ca.der");
    run(&[
        "x509",
        "-in",
        ca_crt.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        ca_der.to_str().unwrap(),
    ]);
    (std::fs::read(leaf).unwrap(), std::fs::read(ca_der).unwrap())
}

async fn create_unknown(v: &TestVault, name: &str, preserve: Option<bool>) -> Value {
    let mut body = json!({"policy": {"x509_props": {"subject": format!("CN={name}")}, "issuer": {"name": "Unknown"}}});
    if let Some(p) = preserve {
        body["preserveCertOrder"] = json!(p);
    }
    let (status, op) = call(
        v,
        reqwest::Method::POST,
        &format!("/certificates/{name}/create"),
        Some(body),
    )
    .await;
    assert_eq!(status, 202, "{op}");
    op
}

/// The certificates of a certificate's secret (PEM content type), in the stored order.
async fn secret_chain(v: &TestVault, name: &str) -> Vec<Vec<u8>> {
    let (status, secret) = call(v, reqwest::Method::GET, &format!("/secrets/{name}"), None).await;
    assert_eq!(status, 200, "{secret}");
    let text = secret["value"].as_str().unwrap();
    kvault::crypto::x509::x5c_entry(text).unwrap()
}

#[tokio::test]
async fn merge_takes_x5c_as_der_as_pem_and_as_base64_text() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let pem_body = |der: &[u8]| {
        // The body of a PEM block: base64 in 64-character lines, as the SDK tests send it.
        let text = b64(der);
        text.as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap().to_string() + "\n")
            .collect::<String>()
    };
    type Encode = fn(&[u8], &dyn Fn(&[u8]) -> String) -> String;
    let encodings: [(&str, Encode); 4] = [
        ("der", |der, _| b64(der)),
        ("pem", |der, _| {
            b64(kvault::crypto::pem::encode("CERTIFICATE", der).as_bytes())
        }),
        ("pembody", |der, body| b64(body(der).as_bytes())),
        ("rawpem", |der, _| {
            kvault::crypto::pem::encode("CERTIFICATE", der).to_string()
        }),
    ];
    for (label, encode) in encodings {
        let name = format!("merge-{label}");
        let op = create_unknown(&v, &name, None).await;
        let dir = fx.dir.path().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let (leaf, ca) = sign_csr(&dir, &op["csr"]);
        // Issuer first: without preserveCertOrder the vault puts the leaf first.
        let x5c = vec![encode(&ca, &pem_body), encode(&leaf, &pem_body)];
        let (status, bundle) = call(
            &v,
            reqwest::Method::POST,
            &format!("/certificates/{name}/pending/merge"),
            Some(json!({"x5c": x5c})),
        )
        .await;
        assert_eq!(status, 201, "{label}: {bundle}");
        assert_eq!(unb64(&bundle["cer"]), leaf, "{label}");
        assert!(
            bundle.get("preserveCertOrder").is_none(),
            "{label}: {bundle}"
        );
    }
    // What is neither is refused with the API's error, and the pending request survives.
    let op = create_unknown(&v, "merge-bad", None).await;
    assert!(op["csr"].is_string());
    for junk in ["not base64 at all!", &b64(b"plain text, not a certificate")] {
        let (status, e) = call(
            &v,
            reqwest::Method::POST,
            "/certificates/merge-bad/pending/merge",
            Some(json!({"x5c": [junk]})),
        )
        .await;
        assert_eq!(status, 400, "{e}");
        assert_eq!(e["error"]["code"], "BadParameter");
    }
    let (status, op) = call(
        &v,
        reqwest::Method::GET,
        "/certificates/merge-bad/pending",
        None,
    )
    .await;
    assert_eq!((status, op["status"].as_str()), (200, Some("inProgress")));
    v.stop().await;
}

#[tokio::test]
async fn pending_operations_carry_the_clouds_status_details() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let op = create_unknown(&v, "ext", None).await;
    assert_eq!(
        op["status_details"],
        "Pending certificate created. Please Perform Merge to complete the request."
    );
    let (_, again) = call(&v, reqwest::Method::GET, "/certificates/ext/pending", None).await;
    assert_eq!(again["status_details"], op["status_details"]);

    let (status, op) = call(
        &v,
        reqwest::Method::POST,
        "/certificates/self/create",
        Some(json!({"policy": {"x509_props": {"subject": "CN=self"}, "issuer": {"name": "Self"}}})),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(op["status"], "inProgress");
    assert!(
        op["status_details"]
            .as_str()
            .unwrap()
            .starts_with("Pending certificate created. Certificate request is in progress."),
        "{op}"
    );
    // Completed operations say nothing more.
    let (_, done) = call(&v, reqwest::Method::GET, "/certificates/self/pending", None).await;
    assert_eq!(done["status"], "completed");
    assert!(done.get("status_details").is_none(), "{done}");
    v.stop().await;
}

#[tokio::test]
async fn contacts_after_delete_are_not_found() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let contacts =
        json!({"contacts": [{"email": "ops@example.test", "name": "Ops", "phone": "1"}]});
    let (status, _) = call(
        &v,
        reqwest::Method::PUT,
        "/certificates/contacts",
        Some(contacts),
    )
    .await;
    assert_eq!(status, 200);
    let (status, deleted) = call(&v, reqwest::Method::DELETE, "/certificates/contacts", None).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["contacts"][0]["email"], "ops@example.test");
    let (status, e) = call(&v, reqwest::Method::GET, "/certificates/contacts", None).await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["code"], "ContactsNotFound");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("not found"),
        "{e}"
    );
    v.stop().await;
}

#[tokio::test]
async fn ec_policies_echo_key_size_and_refuse_a_size_of_another_curve() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let (status, _) = call(
        &v,
        reqwest::Method::POST,
        "/certificates/ec/create",
        Some(json!({"policy": {"x509_props": {"subject": "CN=ec"}, "issuer": {"name": "Self"}}})),
    )
    .await;
    assert_eq!(status, 202);
    let patch = json!({"key_props": {"kty": "EC", "crv": "P-256", "key_size": 256, "exportable": true, "reuse_key": false}});
    let (status, p) = call(
        &v,
        reqwest::Method::PATCH,
        "/certificates/ec/policy",
        Some(patch),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["key_props"]["kty"], "EC");
    assert_eq!(p["key_props"]["crv"], "P-256");
    assert_eq!(p["key_props"]["key_size"], 256);
    let (_, got) = call(&v, reqwest::Method::GET, "/certificates/ec/policy", None).await;
    assert_eq!(got["key_props"], p["key_props"]);

    // A size alone names the curve; a size of another curve is refused and changes nothing.
    let (status, p) = call(
        &v,
        reqwest::Method::PATCH,
        "/certificates/ec/policy",
        Some(json!({"key_props": {"kty": "EC", "key_size": 384}})),
    )
    .await;
    assert_eq!(
        (status, p["key_props"]["crv"].as_str()),
        (200, Some("P-384")),
        "{p}"
    );
    let (status, e) = call(
        &v,
        reqwest::Method::PATCH,
        "/certificates/ec/policy",
        Some(json!({"key_props": {"kty": "EC", "crv": "P-256", "key_size": 384}})),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["code"], "BadParameter");
    let (_, got) = call(&v, reqwest::Method::GET, "/certificates/ec/policy", None).await;
    assert_eq!(got["key_props"]["crv"], "P-384");
    v.stop().await;
}

#[tokio::test]
async fn preserve_cert_order_round_trips_and_keeps_the_given_chain_order() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    // Root first, then the leaf: the order a caller may need kept.
    let (root, root_key) = ca("CN=Order Root");
    let leaf_key = KeyMaterial::generate_ec(Curve::P256).unwrap();
    let leaf = x509::issue(
        &request("CN=ordered", false),
        &leaf_key,
        Signer::Ca {
            cert_der: &root,
            key: &root_key,
        },
    )
    .unwrap();
    let pem = x509::pem_bundle(Some(&leaf_key), &[root.clone(), leaf.clone()]);
    for (name, preserve) in [("kept", true), ("reordered", false)] {
        let body = json!({
            "value": b64(pem.as_bytes()),
            "policy": {"secret_props": {"contentType": "application/x-pem-file"}},
            "preserveCertOrder": preserve,
        });
        let (status, bundle) = call(
            &v,
            reqwest::Method::POST,
            &format!("/certificates/{name}/import"),
            Some(body),
        )
        .await;
        assert_eq!(status, 200, "{bundle}");
        // `cer` is the leaf either way.
        assert_eq!(unb64(&bundle["cer"]), leaf, "{name}");
        let (_, got) = call(
            &v,
            reqwest::Method::GET,
            &format!("/certificates/{name}"),
            None,
        )
        .await;
        let expected = if preserve {
            vec![root.clone(), leaf.clone()]
        } else {
            vec![leaf.clone(), root.clone()]
        };
        assert_eq!(secret_chain(&v, name).await, expected, "{name}");
        if preserve {
            assert_eq!(bundle["preserveCertOrder"], true);
            assert_eq!(got["preserveCertOrder"], true);
        } else {
            assert!(got.get("preserveCertOrder").is_none(), "{got}");
        }
    }

    // Create with preserveCertOrder, then merge issuer-first: the order stays as merged.
    let op = create_unknown(&v, "merged-kept", Some(true)).await;
    assert_eq!(op["preserveCertOrder"], true);
    let (leaf, issuer) = sign_csr(fx.dir.path(), &op["csr"]);
    let (status, bundle) = call(
        &v,
        reqwest::Method::POST,
        "/certificates/merged-kept/pending/merge",
        Some(json!({"x5c": [b64(&issuer), b64(&leaf)]})),
    )
    .await;
    assert_eq!(status, 201, "{bundle}");
    assert_eq!(bundle["preserveCertOrder"], true);
    assert_eq!(unb64(&bundle["cer"]), leaf);
    // A PFX secret still opens: PKCS#12 links the key to the first certificate of its chain,
    // so there the key's certificate leads.
    let (_, secret) = call(&v, reqwest::Method::GET, "/secrets/merged-kept", None).await;
    let pfx = base64::engine::general_purpose::STANDARD
        .decode(secret["value"].as_str().unwrap())
        .unwrap();
    let opened = x509::import_pfx(&pfx, "").unwrap();
    assert!(x509::key_matches(&leaf, &opened.key).unwrap());
    v.stop().await;
}

#[tokio::test]
async fn platform_managed_policies_are_stored_and_returned() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let platform =
        json!({"certificateUsage": "tls-server", "metadata": {"env": "prod", "tier": 2}});
    let (status, op) = call(
        &v,
        reqwest::Method::POST,
        "/certificates/pm/create",
        Some(json!({"policy": {"issuer": {"name": "Self"}, "platformManaged": platform}})),
    )
    .await;
    assert_eq!(status, 202, "{op}");
    assert_eq!(op["status"], "inProgress");
    // kvault has no platform issuer: the operation fails with the reason, the policy stays.
    let (_, op) = call(&v, reqwest::Method::GET, "/certificates/pm/pending", None).await;
    assert_eq!(op["status"], "failed");
    assert_eq!(op["error"]["code"], "IssuerNotAvailable");
    let (status, policy) = call(&v, reqwest::Method::GET, "/certificates/pm/policy", None).await;
    assert_eq!(status, 200, "{policy}");
    assert_eq!(policy["platformManaged"], platform);
    let (status, _) = call(&v, reqwest::Method::GET, "/certificates/pm", None).await;
    assert_eq!(status, 404);

    // On a certificate that has a subject, platformManaged is one more section of the policy.
    let (status, _) = call(
        &v,
        reqwest::Method::POST,
        "/certificates/web/create",
        Some(json!({"policy": {"x509_props": {"subject": "CN=web"}, "issuer": {"name": "Self"}}})),
    )
    .await;
    assert_eq!(status, 202);
    let (status, p) = call(
        &v,
        reqwest::Method::PATCH,
        "/certificates/web/policy",
        Some(json!({"platformManaged": {"certificateUsage": "tls-client"}})),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["platformManaged"]["certificateUsage"], "tls-client");
    assert_eq!(p["x509_props"]["subject"], "CN=web");
    let (_, cert) = call(&v, reqwest::Method::GET, "/certificates/web", None).await;
    assert_eq!(
        cert["policy"]["platformManaged"]["certificateUsage"],
        "tls-client"
    );

    // Without a subject, SAN or platformManaged a policy is still refused.
    let (status, e) = call(
        &v,
        reqwest::Method::POST,
        "/certificates/none/create",
        Some(json!({"policy": {"issuer": {"name": "Self"}}})),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    let (status, _) = call(
        &v,
        reqwest::Method::POST,
        "/certificates/blank/create",
        Some(json!({"policy": {"issuer": {"name": "Self"}, "platformManaged": {"certificateUsage": " "}}})),
    )
    .await;
    assert_eq!(status, 400);
    v.stop().await;
}
