//! The certificates API over real TLS. Issued certificates are checked with an X.509 parser
//! and with `openssl verify`; imports use files made by `openssl`.

use crate::common::*;
use base64::Engine;
use kvault::client::VaultClient;
use kvault::clock::ManualClock;
use kvault::wire::{
    CertificateCreateParameters, CertificateImportParameters, CertificateMergeParameters,
    CertificatePolicy, Contact, Contacts, IssuerBundle, IssuerCredentials,
};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn policy(v: Value) -> CertificatePolicy {
    serde_json::from_value(v).unwrap()
}

async fn create(c: &VaultClient, name: &str, p: Value) -> kvault::wire::CertificateOperation {
    c.create_certificate(
        name,
        &CertificateCreateParameters {
            policy: Some(policy(p)),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl")
}

fn write_pem(path: &Path, der: &[u8]) {
    std::fs::write(
        path,
        kvault::crypto::pem::encode("CERTIFICATE", der).as_bytes(),
    )
    .unwrap();
}

#[tokio::test]
async fn self_signed_issuance_with_key_and_secret() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    let op = create(&c, "web", json!({
        "key_props": {"kty": "RSA", "key_size": 2048, "exportable": true},
        "x509_props": {"subject": "CN=web.example.test, O=kvault", "sans": {"dns_names": ["web.example.test", "www.example.test"], "ipAddresses": ["10.1.2.3"]},
                        "validity_months": 6, "key_usage": ["digitalSignature", "keyEncipherment"]},
        "issuer": {"name": "Self"}
    })).await;
    // The SDK's poller contract: inProgress first, completed on the next GET.
    assert_eq!(op.status, "inProgress");
    assert_eq!(
        c.get_certificate_operation("web").await.unwrap().status,
        "completed"
    );

    let cert = c.get_certificate("web", None).await.unwrap();
    let der = b64().decode(cert.cer.as_ref().unwrap()).unwrap();
    let (_, x) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(x.subject().to_string().contains("CN=web.example.test"));
    let sans = x
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|g| format!("{g:?}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        sans.contains("web.example.test") && sans.contains("www.example.test"),
        "{sans}"
    );
    let days = (x.validity().not_after.timestamp() - x.validity().not_before.timestamp()) / 86_400;
    assert!((180..=186).contains(&days), "{days}");
    let ku = x.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
    assert_eq!(
        cert.attributes.exp,
        Some(x.validity().not_after.timestamp())
    );
    let version = cert.id.rsplit('/').next().unwrap().to_string();
    assert!(
        cert.kid
            .as_ref()
            .unwrap()
            .ends_with(&format!("/keys/web/{version}"))
    );
    assert!(
        cert.sid
            .as_ref()
            .unwrap()
            .ends_with(&format!("/secrets/web/{version}"))
    );
    assert_eq!(
        kvault::wire::from_b64url(cert.x5t.as_ref().unwrap()).unwrap(),
        kvault::crypto::x509::thumbprint(&der)
    );
    // openssl agrees it is a valid self-signed certificate.
    let pem = fx.dir.path().join("web.pem");
    write_pem(&pem, &der);
    let out = openssl(&[
        "verify",
        "-CAfile",
        pem.to_str().unwrap(),
        pem.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The managed key and secret: same version, the secret is a PFX holding the matching key.
    let key = c.get_key("web", Some(&version)).await.unwrap();
    assert_eq!(key.managed, Some(true));
    let secret = c.get_secret("web", Some(&version)).await.unwrap();
    assert_eq!(secret.managed, Some(true));
    assert_eq!(secret.content_type.as_deref(), Some("application/x-pkcs12"));
    let pfx = b64().decode(secret.value.unwrap()).unwrap();
    let imported = kvault::crypto::x509::import_pfx(&pfx, "").unwrap();
    assert_eq!(imported.chain[0], der);
    assert!(kvault::crypto::x509::key_matches(&der, &imported.key).unwrap());
    // openssl opens the PFX with an empty password.
    let pfx_path = fx.dir.path().join("web.pfx");
    std::fs::write(&pfx_path, &pfx).unwrap();
    let out = openssl(&[
        "pkcs12",
        "-in",
        pfx_path.to_str().unwrap(),
        "-passin",
        "pass:",
        "-nokeys",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // outContentType converts to PEM.
    let r = v
        .http()
        .get(v.at(&format!(
            "/secrets/web/{version}?api-version=7.4&outContentType=application%2Fx-pem-file"
        )))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let pem_value = body["value"].as_str().unwrap();
    assert!(pem_value.contains("BEGIN PRIVATE KEY") && pem_value.contains("BEGIN CERTIFICATE"));
    assert_eq!(body["contentType"], "application/x-pem-file");

    // A managed key is not rotated or deleted by hand; neither is the secret deleted alone.
    assert_eq!(c.rotate_key("web").await.unwrap_err().status(), Some(403));
    assert_eq!(c.delete_key("web").await.unwrap_err().status(), Some(403));
    assert_eq!(
        c.delete_secret("web").await.unwrap_err().status(),
        Some(403)
    );
    let e = c
        .set_secret(
            "web",
            &kvault::wire::SecretSetParameters {
                value: "x".into(),
                content_type: None,
                tags: None,
                attributes: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.status(),
        Some(403),
        "a certificate's secret is written only by the certificate"
    );
    // The secret links its key by absolute id.
    let s = c.get_secret("web", None).await.unwrap();
    assert_eq!(s.kid.as_deref(), cert.kid.as_deref());
    v.stop().await;
}

#[tokio::test]
async fn a_kvault_ca_issuer_signs_chains_openssl_verifies() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    create(&c, "ca", json!({
        "key_props": {"kty": "EC", "crv": "P-384"},
        "x509_props": {"subject": "CN=kvault test CA", "key_usage": ["keyCertSign", "cRLSign"], "basic_constraints": {"ca": true}, "validity_months": 24},
        "issuer": {"name": "Self"}
    })).await;
    c.set_certificate_issuer(
        "internal",
        &IssuerBundle {
            provider: Some("kvault".into()),
            credentials: Some(IssuerCredentials {
                account_id: Some("ca".into()),
                pwd: Some("unused-secret".into()),
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let got = c.get_certificate_issuer("internal").await.unwrap();
    assert!(
        got.credentials.unwrap().pwd.is_none(),
        "issuer passwords are never returned"
    );
    assert_eq!(c.list_certificate_issuers().await.unwrap().len(), 1);

    create(&c, "svc", json!({
        "key_props": {"kty": "EC", "crv": "P-256"},
        "secret_props": {"contentType": "application/x-pem-file"},
        "x509_props": {"subject": "CN=svc.team-a.svc", "sans": {"dns_names": ["svc.team-a.svc"]}},
        "issuer": {"name": "internal"}
    })).await;
    let leaf = b64()
        .decode(c.get_certificate("svc", None).await.unwrap().cer.unwrap())
        .unwrap();
    let ca = b64()
        .decode(c.get_certificate("ca", None).await.unwrap().cer.unwrap())
        .unwrap();
    let (leaf_p, ca_p) = (fx.dir.path().join("leaf.pem"), fx.dir.path().join("ca.pem"));
    write_pem(&leaf_p, &leaf);
    write_pem(&ca_p, &ca);
    let out = openssl(&[
        "verify",
        "-CAfile",
        ca_p.to_str().unwrap(),
        leaf_p.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The PEM secret holds key, leaf and CA.
    let s = c.get_secret("svc", None).await.unwrap().value.unwrap();
    assert_eq!(s.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(s.contains("BEGIN PRIVATE KEY"));
    // A non-CA certificate cannot back an issuer; an unknown issuer is refused.
    c.set_certificate_issuer(
        "bad",
        &IssuerBundle {
            provider: Some("kvault".into()),
            credentials: Some(IssuerCredentials {
                account_id: Some("svc".into()),
                pwd: None,
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for issuer in ["bad", "nobody"] {
        let e = c
            .create_certificate(
                "x",
                &CertificateCreateParameters {
                    policy: Some(policy(
                        json!({"x509_props": {"subject": "CN=x"}, "issuer": {"name": issuer}}),
                    )),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(400), "{issuer}");
    }
    c.delete_certificate_issuer("bad").await.unwrap();
    assert_eq!(
        c.get_certificate_issuer("bad").await.unwrap_err().status(),
        Some(404)
    );
    v.stop().await;
}

#[tokio::test]
async fn unknown_issuer_csr_merge_and_mismatch() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    let op = create(
        &c,
        "ext",
        json!({"x509_props": {"subject": "CN=ext.example.test"}, "issuer": {"name": "Unknown"}}),
    )
    .await;
    assert_eq!(op.status, "inProgress");
    let csr = b64().decode(op.csr.unwrap()).unwrap();
    assert_eq!(
        c.get_certificate_operation("ext").await.unwrap().status,
        "inProgress"
    );
    // As in the cloud, the certificate reads while pending: disabled, without `cer`, pointing
    // at its operation (the JavaScript SDK's getCertificateOperation reads it first).
    let pending = c.get_certificate("ext", None).await.unwrap();
    assert!(pending.cer.is_none());
    assert_eq!(pending.attributes.enabled, Some(false));
    assert!(
        pending
            .pending
            .unwrap()
            .id
            .ends_with("/certificates/ext/pending")
    );
    assert_eq!(
        pending.policy.unwrap().issuer.unwrap().name.as_deref(),
        Some("Unknown")
    );

    // Sign the CSR with an outside CA (openssl).
    let dir = fx.dir.path();
    let csr_p = dir.join("req.der");
    std::fs::write(&csr_p, &csr).unwrap();
    let ca_key = dir.join("ca.key");
    let ca_crt = dir.join("ca.crt");
    assert!(
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            ca_key.to_str().unwrap(),
            "-out",
            ca_crt.to_str().unwrap(),
            "-subj",
            "/CN=Outside CA",
            "-days",
            "30"
        ])
        .status
        .success()
    );
    let signed = dir.join("signed.der");
    let out = openssl(&[
        "x509",
        "-req",
        "-inform",
        "DER",
        "-in",
        csr_p.to_str().unwrap(),
        "-CA",
        ca_crt.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-days",
        "10",
        "-outform",
        "DER",
        "-out",
        signed.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed_der = std::fs::read(&signed).unwrap();

    // A certificate for another key is refused.
    let other = dir.join("other.der");
    assert!(
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            dir.join("o.key").to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            other.to_str().unwrap(),
            "-subj",
            "/CN=other",
            "-days",
            "5"
        ])
        .status
        .success()
    );
    let e = c
        .merge_certificate(
            "ext",
            &CertificateMergeParameters {
                x5c: vec![b64().encode(std::fs::read(&other).unwrap())],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));

    let merged = c
        .merge_certificate(
            "ext",
            &CertificateMergeParameters {
                x5c: vec![b64().encode(&signed_der)],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(b64().decode(merged.cer.unwrap()).unwrap(), signed_der);
    assert_eq!(
        c.get_certificate_operation("ext").await.unwrap().status,
        "completed"
    );
    let secret = c.get_secret("ext", None).await.unwrap();
    let imported =
        kvault::crypto::x509::import_pfx(&b64().decode(secret.value.unwrap()).unwrap(), "")
            .unwrap();
    assert!(kvault::crypto::x509::key_matches(&signed_der, &imported.key).unwrap());
    // A second merge has nothing to merge into.
    let e = c
        .merge_certificate(
            "ext",
            &CertificateMergeParameters {
                x5c: vec![b64().encode(&signed_der)],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));

    // Cancel and delete of a pending operation.
    create(
        &c,
        "later",
        json!({"x509_props": {"subject": "CN=later"}, "issuer": {"name": "Unknown"}}),
    )
    .await;
    let r = v
        .http()
        .patch(v.at("/certificates/later/pending?api-version=7.4"))
        .bearer_auth(&v.token)
        .json(&json!({"cancellation_requested": true}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["cancellation_requested"], true);
    let r = v
        .http()
        .delete(v.at("/certificates/later/pending?api-version=7.4"))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        c.get_certificate_operation("later")
            .await
            .unwrap_err()
            .code(),
        Some("PendingCertificateNotFound")
    );
    v.stop().await;
}

#[tokio::test]
async fn imports_from_openssl_and_bad_input() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    let dir = fx.dir.path();
    let (key, crt, pfx) = (dir.join("k.pem"), dir.join("c.pem"), dir.join("c.pfx"));
    assert!(
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            crt.to_str().unwrap(),
            "-subj",
            "/CN=imported",
            "-days",
            "30"
        ])
        .status
        .success()
    );
    assert!(
        openssl(&[
            "pkcs12",
            "-export",
            "-inkey",
            key.to_str().unwrap(),
            "-in",
            crt.to_str().unwrap(),
            "-out",
            pfx.to_str().unwrap(),
            "-passout",
            "pass:s3cret"
        ])
        .status
        .success()
    );
    let pfx_bytes = std::fs::read(&pfx).unwrap();

    let imp = |value: String, pwd: Option<&str>| CertificateImportParameters {
        value,
        pwd: pwd.map(Into::into),
        ..Default::default()
    };
    let b = c
        .import_certificate("imp", &imp(b64().encode(&pfx_bytes), Some("s3cret")))
        .await
        .unwrap();
    let policy = b.policy.unwrap();
    assert_eq!(
        policy.key_props.as_ref().unwrap().kty.as_deref(),
        Some("EC")
    );
    assert_eq!(policy.issuer.unwrap().name.as_deref(), Some("Unknown"));
    assert_eq!(
        c.get_key("imp", None).await.unwrap().key.crv.as_deref(),
        Some("P-256")
    );

    // PEM: key + certificate.
    let pem = format!(
        "{}{}",
        std::fs::read_to_string(&key).unwrap(),
        std::fs::read_to_string(&crt).unwrap()
    );
    let b = c
        .import_certificate("imp-pem", &imp(b64().encode(pem.as_bytes()), None))
        .await
        .unwrap();
    assert_eq!(b.content_type.as_deref(), Some("application/x-pem-file"));

    // Wrong password, garbage, a certificate without its key, a key with a foreign certificate.
    let other_crt = dir.join("o.pem");
    assert!(
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            dir.join("o.key").to_str().unwrap(),
            "-out",
            other_crt.to_str().unwrap(),
            "-subj",
            "/CN=o",
            "-days",
            "30"
        ])
        .status
        .success()
    );
    let mismatched = format!(
        "{}{}",
        std::fs::read_to_string(&key).unwrap(),
        std::fs::read_to_string(&other_crt).unwrap()
    );
    for (what, params) in [
        (
            "wrong password",
            imp(b64().encode(&pfx_bytes), Some("nope")),
        ),
        (
            "garbage",
            imp(b64().encode(b"this is not a certificate"), None),
        ),
        ("not base64", imp("%%%".into(), None)),
        (
            "no key",
            imp(b64().encode(std::fs::read(&crt).unwrap()), None),
        ),
        ("mismatched", imp(b64().encode(mismatched.as_bytes()), None)),
    ] {
        let e = c.import_certificate("bad", &params).await.unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (Some(400), Some("BadParameter")),
            "{what}"
        );
    }
    // Bad policies on create.
    for p in [
        json!({"x509_props": {}}),
        json!({"x509_props": {"subject": "CN=x"}, "key_props": {"kty": "EC", "crv": "P-256K"}}),
        json!({"x509_props": {"subject": "CN=x"}, "key_props": {"kty": "RSA-HSM"}}),
        json!({"x509_props": {"subject": "CN=x"}, "secret_props": {"contentType": "text/plain"}}),
        json!({"x509_props": {"subject": "NOPE"}}),
        json!({"x509_props": {"subject": "CN=x", "validity_months": 0}}),
        json!({"x509_props": {"subject": "CN=x"}, "lifetime_actions": [{"trigger": {"lifetime_percentage": 120}, "action": {"action_type": "AutoRenew"}}]}),
    ] {
        let r = v
            .http()
            .post(v.at("/certificates/bad/create?api-version=7.4"))
            .bearer_auth(&v.token)
            .json(&json!({"policy": p}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(r).await,
            (400, "BadParameter".to_string()),
            "{p}"
        );
    }
    // A plain secret's name cannot be taken by a certificate.
    c.set_secret(
        "plain",
        &kvault::wire::SecretSetParameters {
            value: "x".into(),
            content_type: None,
            tags: None,
            attributes: None,
        },
    )
    .await
    .unwrap();
    let e = c
        .import_certificate("plain", &imp(b64().encode(&pfx_bytes), Some("s3cret")))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409));
    v.stop().await;
}

#[tokio::test]
async fn lifecycle_policy_contacts_delete_recover_purge_backup_restore() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    let p = json!({"x509_props": {"subject": "CN=life"}, "issuer": {"name": "Self"}});
    create(&c, "life", p.clone()).await;
    create(&c, "life", p.clone()).await;
    assert_eq!(c.list_certificate_versions("life").await.unwrap().len(), 2);
    assert_eq!(c.list_key_versions("life").await.unwrap().len(), 2);
    assert_eq!(c.list_certificates().await.unwrap().len(), 1);

    // Policy: PATCH merges, GET shows the defaults the cloud fills in.
    let pol = c.get_certificate_policy("life").await.unwrap();
    assert_eq!(pol.key_props.as_ref().unwrap().key_size, Some(2048));
    assert_eq!(
        pol.lifetime_actions.as_ref().unwrap()[0].action.action_type,
        "AutoRenew"
    );
    let updated = c
        .update_certificate_policy(
            "life",
            &policy(json!({"secret_props": {"contentType": "application/x-pem-file"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        updated.secret_props.unwrap().content_type.as_deref(),
        Some("application/x-pem-file")
    );
    assert_eq!(
        updated.x509_props.unwrap().subject.as_deref(),
        Some("CN=life")
    );
    // Update: disabling the certificate disables its key and secret too.
    c.update_certificate(
        "life",
        None,
        &kvault::wire::CertificateUpdateParameters {
            attributes: Some(kvault::wire::CertificateAttributes {
                enabled: Some(false),
                ..Default::default()
            }),
            tags: Some([("a".to_string(), "b".to_string())].into()),
            policy: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        c.get_secret("life", None).await.unwrap_err().status(),
        Some(403)
    );
    assert_eq!(
        c.get_key("life", None).await.unwrap().attributes.enabled,
        Some(false)
    );
    c.update_certificate(
        "life",
        None,
        &kvault::wire::CertificateUpdateParameters {
            attributes: Some(kvault::wire::CertificateAttributes {
                enabled: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    // Contacts.
    assert_eq!(
        c.get_certificate_contacts().await.unwrap_err().status(),
        Some(404)
    );
    c.set_certificate_contacts(&Contacts {
        id: None,
        contacts: vec![Contact {
            email: Some("ops@example.test".into()),
            name: Some("Ops".into()),
            phone: None,
        }],
    })
    .await
    .unwrap();
    assert_eq!(
        c.get_certificate_contacts().await.unwrap().contacts.len(),
        1
    );
    assert_eq!(
        c.delete_certificate_contacts()
            .await
            .unwrap()
            .contacts
            .len(),
        1
    );

    // Backup first, then delete: the key and the secret follow the certificate.
    let blob = c.backup_certificate("life").await.unwrap();
    c.delete_certificate("life").await.unwrap();
    assert_eq!(
        c.get_secret("life", None).await.unwrap_err().status(),
        Some(404)
    );
    assert_eq!(
        c.get_key("life", None).await.unwrap_err().status(),
        Some(404)
    );
    assert_eq!(c.list_deleted_certificates().await.unwrap().len(), 1);
    assert!(c.get_deleted_secret("life").await.is_ok());
    assert_eq!(
        c.create_certificate(
            "life",
            &CertificateCreateParameters {
                policy: Some(policy(p.clone())),
                ..Default::default()
            }
        )
        .await
        .unwrap_err()
        .status(),
        Some(409)
    );
    c.recover_deleted_certificate("life").await.unwrap();
    assert!(c.get_secret("life", None).await.is_ok());
    assert!(c.get_key("life", None).await.is_ok());
    c.delete_certificate("life").await.unwrap();
    c.purge_deleted_certificate("life").await.unwrap();
    assert_eq!(
        c.get_deleted_secret("life").await.unwrap_err().status(),
        Some(404)
    );
    assert_eq!(
        c.get_deleted_key("life").await.unwrap_err().status(),
        Some(404)
    );

    // Restore brings back all three with every version.
    let restored = c.restore_certificate(&blob).await.unwrap();
    assert!(restored.id.contains("/certificates/life/"));
    assert_eq!(c.list_certificate_versions("life").await.unwrap().len(), 2);
    assert_eq!(c.list_secret_versions("life").await.unwrap().len(), 2);
    assert!(c.get_key("life", None).await.is_ok());
    assert_eq!(
        c.restore_certificate(&blob).await.unwrap_err().status(),
        Some(409)
    );
    let mut tampered: Vec<char> = blob.chars().collect();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == 'A' { 'B' } else { 'A' };
    let e = c
        .restore_certificate(&tampered.into_iter().collect::<String>())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    v.stop().await;
}

#[tokio::test]
async fn auto_renew_on_an_injected_clock() {
    let fx = Fixture::new();
    let clock = ManualClock::new(now());
    let v = fx
        .start(Options {
            clock: Some(clock.clone()),
            ..Default::default()
        })
        .await;
    let c = v.client();
    create(&c, "renew", json!({
        "x509_props": {"subject": "CN=renew", "validity_months": 10},
        "lifetime_actions": [{"trigger": {"days_before_expiry": 30}, "action": {"action_type": "AutoRenew"}}],
        "issuer": {"name": "Self"}
    })).await;
    let state = v.state.clone().unwrap();
    use kvault::server::certificates::renewal::run_once;
    assert_eq!(run_once(&state).await.unwrap(), (0, 0));
    let first = c.get_certificate("renew", None).await.unwrap();
    let exp = first.attributes.exp.unwrap();
    clock.set(exp - 31 * 86_400);
    assert_eq!(run_once(&state).await.unwrap(), (0, 0));
    clock.set(exp - 29 * 86_400);
    assert_eq!(run_once(&state).await.unwrap(), (1, 0));
    // Running again (as after a restart) does not renew twice.
    assert_eq!(run_once(&state).await.unwrap(), (0, 0));
    let renewed = c.get_certificate("renew", None).await.unwrap();
    assert_ne!(renewed.id, first.id);
    assert!(renewed.attributes.exp.unwrap() > exp);
    assert_eq!(c.list_secret_versions("renew").await.unwrap().len(), 2);
    assert_eq!(c.list_key_versions("renew").await.unwrap().len(), 2);
    v.stop().await;
}

/// `includePending` holds across pages: the nextLink keeps it, so a pending certificate on
/// any page of the listing shows.
#[tokio::test]
async fn include_pending_pages_keep_pending_certificates() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    for i in 0..12 {
        create(
            &c,
            &format!("pending-{i:02}"),
            json!({"x509_props": {"subject": "CN=p"}, "issuer": {"name": "Unknown"},
                   "key_props": {"kty": "EC", "crv": "P-256"}}),
        )
        .await;
    }
    let http = v.http();
    let mut url = v.at("/certificates?api-version=7.4&includePending=true&maxresults=5");
    let mut names = Vec::new();
    loop {
        let page: Value = http
            .get(&url)
            .bearer_auth(&v.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for item in page["value"].as_array().unwrap() {
            names.push(
                item["id"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
            );
        }
        match page["nextLink"].as_str() {
            Some(next) => {
                assert!(next.contains("includePending=true"), "{next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    names.sort();
    let expected: Vec<String> = (0..12).map(|i| format!("pending-{i:02}")).collect();
    assert_eq!(names, expected);
    v.stop().await;
}
