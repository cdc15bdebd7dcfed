//! `kvault provider` end to end: a real gRPC client (generated from the same proto) over
//! the provider's Unix socket, against a real vault with real TLS. Pods are simulated the
//! way the Secrets Store CSI Driver presents them: attributes JSON with the pod's
//! service-account token for the vault's audience (legacy mode), or, with a real
//! workload-identity token service, for `api://AzureADTokenExchange`, exchanged by the
//! provider for the vault's audience.

use crate::common::*;
use base64::Engine;
use kvault::provider::pb;
use kvault::provider::pb::csi_driver_provider_client::CsiDriverProviderClient;
use kvault::provider::{ProviderOptions, ProviderServer};
use kvault::wire::{CertificateCreateParameters, KeyCreateParameters};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tonic::transport::Channel;

const WEB: &str = "system:serviceaccount:team-a:web";
const OTHER: &str = "system:serviceaccount:team-b:other";
const OLD_AUTHORITY: &str = "/var/run/secrets-store-csi-providers/kvault.sock";

/// alice administers; team-a/web may read secrets, keys and certificates; team-b/other
/// may read nothing.
fn pod_policy(throttle: Value) -> kvault::policy::PolicyDocument {
    let sa = json!({"kind": "ServiceAccount", "name": "web", "namespace": "team-a"});
    serde_json::from_value(json!({
        "generation": 1,
        "roleAssignments": [
            {"principal": {"kind": "User", "name": "alice"}, "role": "Key Vault Administrator"},
            {"principal": sa, "role": "Key Vault Secrets User"},
            {"principal": sa, "role": "Key Vault Crypto User"},
            {"principal": sa, "role": "Key Vault Certificate User"},
        ],
        "throttling": throttle,
    }))
    .unwrap()
}

struct Provider {
    socket: PathBuf,
    admin: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Provider {
    async fn start(fx: &Fixture, extra: &[&str]) -> Self {
        let socket = fx.dir.path().join("providers/kvault.sock");
        let (s, ca, dir) = (
            socket.to_str().unwrap().to_string(),
            fx.certs.ca_pem.to_str().unwrap().to_string(),
            fx.dir.path().to_str().unwrap().to_string(),
        );
        let mut args = vec![
            "--socket",
            &s,
            "--ca-file",
            &ca,
            "--ca-dir",
            &dir,
            "--admin-listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let server = ProviderServer::start(ProviderOptions::from_args(&args).unwrap())
            .await
            .unwrap();
        let admin = server.admin_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(server.serve(async move {
            let _ = rx.await;
        }));
        Self {
            socket,
            admin,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// A client as driver v1.6+ makes it: `:authority` is `localhost`.
    async fn client(&self) -> CsiDriverProviderClient<Channel> {
        let path = self.socket.clone();
        let channel = tonic::transport::Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_| {
                let p = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        UnixStream::connect(p).await?,
                    ))
                }
            }))
            .await
            .unwrap();
        CsiDriverProviderClient::new(channel)
    }

    async fn admin_get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{}{path}", self.admin))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn metric(&self, line_prefix: &str) -> f64 {
        let (_, text) = self.admin_get("/metrics").await;
        text.lines()
            .filter(|l| l.starts_with(line_prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

/// The attributes the driver builds: SPC parameters, pod info, the tokens attribute.
fn attributes(vault_url: &str, token: &str, objects: &str, extra: Value) -> String {
    let tokens =
        json!({vault_url: {"token": token, "expirationTimestamp": "2099-01-01T00:00:00Z"}});
    let mut a = json!({
        "secretProviderClass": "app-secrets",
        "csi.storage.k8s.io/pod.name": "web-0",
        "csi.storage.k8s.io/pod.namespace": "team-a",
        "csi.storage.k8s.io/pod.uid": "0c3b9a1e-0000-4000-8000-000000000001",
        "csi.storage.k8s.io/serviceAccount.name": "web",
        "csi.storage.k8s.io/ephemeral": "true",
        "csi.storage.k8s.io/serviceAccount.tokens": tokens.to_string(),
        "vaultUrl": vault_url,
        "objects": objects,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            a.as_object_mut().unwrap().remove(k);
        } else {
            a[k] = v.clone();
        }
    }
    a.to_string()
}

fn mount_request(attributes: String) -> pb::MountRequest {
    pb::MountRequest {
        attributes,
        secrets: "null".into(),
        target_path: "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount".into(),
        permission: "420".into(),
        current_object_version: vec![],
    }
}

async fn mount(
    c: &mut CsiDriverProviderClient<Channel>,
    attributes: String,
) -> Result<pb::MountResponse, tonic::Status> {
    c.mount(mount_request(attributes))
        .await
        .map(|r| r.into_inner())
}

fn file<'a>(r: &'a pb::MountResponse, path: &str) -> &'a pb::File {
    r.files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no file {path} in {:?}", paths(r)))
}

fn paths(r: &pb::MountResponse) -> Vec<&str> {
    r.files.iter().map(|f| f.path.as_str()).collect()
}

fn version_of<'a>(r: &'a pb::MountResponse, id: &str) -> &'a str {
    &r.object_version
        .iter()
        .find(|v| v.id == id)
        .unwrap_or_else(|| panic!("no object version {id} in {:?}", r.object_version))
        .version
}

fn last(id: &str) -> String {
    id.rsplit('/').next().unwrap().to_string()
}

fn pem_blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    text.split(&begin)
        .skip(1)
        .map(|rest| {
            let body: String = rest
                .split(&end)
                .next()
                .unwrap()
                .split_whitespace()
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
        })
        .collect()
}

async fn started(
    policy: kvault::policy::PolicyDocument,
    extra: &[&str],
) -> (Fixture, TestVault, Provider) {
    let fx = Fixture::new();
    let vault = fx
        .start(Options {
            policy: Some(policy),
            ..Options::default()
        })
        .await;
    let p = Provider::start(&fx, extra).await;
    (fx, vault, p)
}

#[tokio::test]
async fn mounts_secrets_keys_and_certificates_in_every_format() {
    let (fx, v, p) = started(pod_policy(json!({"enabled": false})), &[]).await;
    let admin = v.client();
    let db = admin.set_secret("db", &set("s3cret\n")).await.unwrap();
    admin.set_secret("hexy", &set("00ff10ab")).await.unwrap();
    admin.set_secret("b64", &set("AP8QqQ==")).await.unwrap();
    let key = |kty: &str, crv: Option<&str>| KeyCreateParameters {
        kty: kty.into(),
        key_size: (kty == "RSA").then_some(2048),
        crv: crv.map(str::to_string),
        ..Default::default()
    };
    let rsa = admin.create_key("rsa", &key("RSA", None)).await.unwrap();
    let ec = admin
        .create_key("ec", &key("EC", Some("P-384")))
        .await
        .unwrap();
    let cert_policy = |ct: &str| {
        serde_json::from_value(json!({
            "key_props": {"kty": "EC", "crv": "P-256", "exportable": true},
            "secret_props": {"contentType": ct},
            "x509_props": {"subject": "CN=web.team-a.svc", "sans": {"dns_names": ["web.team-a.svc"]}},
            "issuer": {"name": "Self"}
        }))
        .unwrap()
    };
    for (name, ct) in [
        ("tls", "application/x-pkcs12"),
        ("tls-pem", "application/x-pem-file"),
    ] {
        admin
            .create_certificate(
                name,
                &CertificateCreateParameters {
                    policy: Some(cert_policy(ct)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let tls = admin.get_certificate("tls", None).await.unwrap();
    let tls_der = base64::engine::general_purpose::STANDARD
        .decode(tls.cer.as_ref().unwrap())
        .unwrap();

    let objects = r#"
- objectName: db
  objectType: secret
  objectAlias: db/password
  filePermission: "0400"
- objectName: hexy
  objectType: secret
  objectEncoding: hex
- objectName: b64
  objectType: secret
  objectEncoding: base64
- objectName: rsa
  objectType: key
  objectAlias: rsa.pem
- objectName: ec
  objectType: key
  objectAlias: ec.pem
- objectName: tls
  objectType: cert
  objectAlias: tls.crt
- objectName: tls
  objectType: secret
  objectAlias: tls.pem
- objectName: tls
  objectType: secret
  objectFormat: pfx
  objectEncoding: base64
  objectAlias: tls.pfx
- objectName: tls-pem
  objectType: secret
"#;
    let token = fx.token_for(WEB, json!({}));
    let mut c = p.client().await;
    let r = mount(&mut c, attributes(&v.url, &token, objects, json!({})))
        .await
        .unwrap();
    assert!(r.error.is_none());
    assert_eq!(r.files.len(), 9, "{:?}", paths(&r));
    assert_eq!(r.object_version.len(), 9);

    // Secrets: value, hex- and base64-decoded; modes from filePermission or the request.
    let f = file(&r, "db/password");
    assert_eq!((f.contents.as_slice(), f.mode), (&b"s3cret\n"[..], 0o400));
    assert_eq!(file(&r, "hexy").contents, vec![0, 0xff, 0x10, 0xab]);
    assert_eq!(file(&r, "hexy").mode, 0o644);
    assert_eq!(file(&r, "b64").contents, vec![0, 0xff, 0x10, 0xa9]);
    assert_eq!(version_of(&r, "secret/db"), last(&db.id));

    // Keys: SubjectPublicKeyInfo PEM matching the vault's JWK.
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    let spki = |path: &str| {
        let text = String::from_utf8(file(&r, path).contents.clone()).unwrap();
        assert!(!text.contains("PRIVATE"));
        pem_blocks(&text, "PUBLIC KEY").remove(0)
    };
    let der = spki("rsa.pem");
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&der).unwrap();
    let PublicKey::RSA(k) = info.parsed().unwrap() else {
        panic!("not RSA")
    };
    let n = kvault::wire::from_b64url(rsa.key.n.as_ref().unwrap()).unwrap();
    assert_eq!(
        k.modulus
            .iter()
            .skip_while(|b| **b == 0)
            .collect::<Vec<_>>(),
        n.iter().skip_while(|b| **b == 0).collect::<Vec<_>>()
    );
    assert_eq!(
        version_of(&r, "key/rsa"),
        last(rsa.key.kid.as_ref().unwrap())
    );
    let der = spki("ec.pem");
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&der).unwrap();
    let PublicKey::EC(point) = info.parsed().unwrap() else {
        panic!("not EC")
    };
    let mut expected = vec![4u8];
    expected.extend(kvault::wire::from_b64url(ec.key.x.as_ref().unwrap()).unwrap());
    expected.extend(kvault::wire::from_b64url(ec.key.y.as_ref().unwrap()).unwrap());
    assert_eq!(point.data(), expected.as_slice());
    // openssl reads both.
    for name in ["rsa.pem", "ec.pem"] {
        let path = fx.dir.path().join(name);
        std::fs::write(&path, &file(&r, name).contents).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-pubin", "-noout", "-in", path.to_str().unwrap()])
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // cert → the leaf certificate; its version is the certificate's.
    let crt = String::from_utf8(file(&r, "tls.crt").contents.clone()).unwrap();
    assert_eq!(pem_blocks(&crt, "CERTIFICATE"), vec![tls_der.clone()]);
    assert_eq!(version_of(&r, "cert/tls"), last(&tls.id));
    // secret of a PFX-backed certificate → private key + chain as PEM.
    let pem = String::from_utf8(file(&r, "tls.pem").contents.clone()).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    assert_eq!(pem_blocks(&pem, "CERTIFICATE"), vec![tls_der.clone()]);
    let key_der = pem_blocks(&pem, "PRIVATE KEY").remove(0);
    let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &key_der,
    )
    .unwrap();
    let (_, x) = x509_parser::parse_x509_certificate(&tls_der).unwrap();
    use aws_lc_rs::signature::KeyPair;
    assert_eq!(
        pair.public_key().as_ref(),
        x.public_key().subject_public_key.data.as_ref(),
        "the mounted key belongs to the certificate"
    );
    // objectFormat pfx + base64 → the binary PFX, which opens without a password.
    let pfx = &file(&r, "tls.pfx").contents;
    let store =
        p12_keystore::KeyStore::from_pkcs12(pfx, "", p12_keystore::Pkcs12ImportPolicy::Relaxed)
            .unwrap();
    let (_, chain) = store.private_key_chain().unwrap();
    assert_eq!(chain.certs()[0].as_der(), tls_der.as_slice());
    // A PEM-stored certificate's secret is returned as stored.
    let stored = admin.get_secret("tls-pem", None).await.unwrap();
    assert_eq!(
        file(&r, "tls-pem").contents,
        stored.value.unwrap().into_bytes()
    );
    // Every object version id is distinct (same object under two aliases included).
    let mut ids: Vec<_> = r.object_version.iter().map(|v| v.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 9, "{ids:?}");

    // The Azure `array:` shape works too.
    let azure = "array:\n  - |\n    objectName: db\n    objectType: secret\n  - |\n    objectName: ec\n    objectType: key\n";
    let r = mount(&mut c, attributes(&v.url, &token, azure, json!({})))
        .await
        .unwrap();
    assert_eq!(paths(&r), vec!["db", "ec"]);
    p.stop().await;
    v.stop().await;
}

#[tokio::test]
async fn a_pod_without_permission_gets_no_files_and_clear_errors() {
    let (fx, v, p) = started(pod_policy(json!({"enabled": false})), &[]).await;
    let admin = v.client();
    admin.set_secret("db", &set("s3cret")).await.unwrap();
    let mut c = p.client().await;
    let one = "- objectName: db\n  objectType: secret\n";

    // team-a/web reads it first, so it is in the provider's cache …
    let web = fx.token_for(WEB, json!({}));
    mount(&mut c, attributes(&v.url, &web, one, json!({})))
        .await
        .unwrap();
    // … and team-b/other still may not read it, even claiming to be web-0 of team-a.
    let other = fx.token_for(OTHER, json!({}));
    let e = mount(&mut c, attributes(&v.url, &other, one, json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("Forbidden"), "{}", e.message());
    assert!(e.message().contains("secret 'db'"), "{}", e.message());
    assert!(!e.message().contains("s3cret"));

    // One object missing: the whole mount fails, no partial files.
    let two = "- objectName: db\n  objectType: secret\n- objectName: nope\n  objectType: secret\n";
    let e = mount(&mut c, attributes(&v.url, &web, two, json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().contains("secret 'nope'"), "{}", e.message());

    // A key the pod may read but that is symmetric: a clear InvalidObject.
    admin
        .create_key(
            "aes",
            &KeyCreateParameters {
                kty: "oct".into(),
                key_size: Some(256),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let e = mount(
        &mut c,
        attributes(
            &v.url,
            &web,
            "- objectName: aes\n  objectType: key",
            json!({}),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("symmetric"), "{}", e.message());

    // No token for the vault's audience: the driver's tokenRequests need it.
    let wrong_aud = json!({"csi.storage.k8s.io/serviceAccount.tokens": json!({"api://AzureADTokenExchange": {"token": web}}).to_string()});
    let e = mount(&mut c, attributes(&v.url, &web, one, wrong_aud))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(e.message().contains("tokenRequests"), "{}", e.message());
    assert!(!e.message().contains(&web));

    // A token the vault does not accept (another audience inside the JWT).
    let mut claims = fx.issuer.claims(
        "https://elsewhere.example",
        "system:serviceaccount:team-a:web",
    );
    claims["aud"] = json!("https://elsewhere.example");
    let foreign = fx
        .issuer
        .sign(jsonwebtoken::Algorithm::ES256, "ec", &claims);
    let e = mount(&mut c, attributes(&v.url, &foreign, one, json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(
        e.message()
            .contains("rejected the pod's service-account token"),
        "{}",
        e.message()
    );

    // The provider's own CA file is used by default; a wrong inline CA fails the TLS check.
    let other_ca = make_certs(fx.dir.path(), "other");
    let pem = std::fs::read_to_string(&other_ca.ca_pem).unwrap();
    let e = mount(
        &mut c,
        attributes(&v.url, &web, one, json!({"vaultCACert": pem})),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{}", e.message());
    // The right one, inline or by path under --ca-dir, works; a path elsewhere does not.
    let good = std::fs::read_to_string(&fx.certs.ca_pem).unwrap();
    mount(
        &mut c,
        attributes(&v.url, &web, one, json!({"vaultCACert": good})),
    )
    .await
    .unwrap();
    mount(
        &mut c,
        attributes(
            &v.url,
            &web,
            one,
            json!({"vaultCACertPath": fx.certs.ca_pem.to_str().unwrap()}),
        ),
    )
    .await
    .unwrap();
    let e = mount(
        &mut c,
        attributes(&v.url, &web, one, json!({"vaultCACertPath": "/etc/passwd"})),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("--ca-dir"), "{}", e.message());
    // A missing file gets the same answer as a file outside the CA directories, so the
    // attribute cannot probe which files exist on the node.
    let missing = mount(
        &mut c,
        attributes(
            &v.url,
            &web,
            one,
            json!({"vaultCACertPath": "/etc/no-such-file"}),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(missing.code(), e.code());
    assert_eq!(
        missing.message().replace("/etc/no-such-file", "P"),
        e.message().replace("/etc/passwd", "P")
    );

    // Unreachable vault: Unavailable, naming the vault.
    let gone = format!("https://t.kvault.localhost:{}", free_port());
    let tokens = json!({&gone: {"token": web}}).to_string();
    let e = mount(
        &mut c,
        attributes(
            &gone,
            &web,
            one,
            json!({"csi.storage.k8s.io/serviceAccount.tokens": tokens}),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    assert!(e.message().contains(&gone), "{}", e.message());

    let failed = p
        .metric("kvault_provider_mounts_total{result=\"Forbidden\"}")
        .await;
    assert_eq!(failed, 1.0);
    p.stop().await;
    v.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_yields_a_new_object_version_and_history() {
    let (fx, v, p) = started(
        pod_policy(json!({"enabled": false})),
        &["--cache-ttl", "1s"],
    )
    .await;
    let admin = v.client();
    let v1 = admin.set_secret("db", &set("one")).await.unwrap();
    let mut c = p.client().await;
    let web = fx.token_for(WEB, json!({}));
    let one = "- objectName: db\n  objectType: secret\n";
    let r1 = mount(&mut c, attributes(&v.url, &web, one, json!({})))
        .await
        .unwrap();
    assert_eq!(version_of(&r1, "secret/db"), last(&v1.id));
    // Make sure the next version's `created` differs from this one's.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let v2 = admin.set_secret("db", &set("two")).await.unwrap();
    let r2 = mount(&mut c, attributes(&v.url, &web, one, json!({})))
        .await
        .unwrap();
    assert_eq!(version_of(&r2, "secret/db"), last(&v2.id));
    assert_ne!(last(&v1.id), last(&v2.id));
    assert_eq!(file(&r2, "db").contents, b"two");

    // Version history: newest first as <name>/<index>; a pinned version stays.
    let history = "- objectName: db\n  objectType: secret\n  objectVersionHistory: 5\n";
    let r = mount(&mut c, attributes(&v.url, &web, history, json!({})))
        .await
        .unwrap();
    assert_eq!(paths(&r), vec!["db/0", "db/1"]);
    assert_eq!(file(&r, "db/0").contents, b"two");
    assert_eq!(file(&r, "db/1").contents, b"one");
    assert_eq!(version_of(&r, "secret/db/0"), last(&v2.id));
    assert_eq!(version_of(&r, "secret/db/1"), last(&v1.id));
    let pinned = format!(
        "- objectName: db\n  objectType: secret\n  objectVersion: {}\n",
        last(&v1.id)
    );
    let r = mount(&mut c, attributes(&v.url, &web, &pinned, json!({})))
        .await
        .unwrap();
    assert_eq!(file(&r, "db").contents, b"one");
    p.stop().await;
    v.stop().await;
}

#[tokio::test]
async fn concurrent_identical_mounts_share_one_vault_request_per_identity() {
    let (fx, v, p) = started(pod_policy(json!({"enabled": false})), &[]).await;
    v.client().set_secret("db", &set("s3cret")).await.unwrap();
    let web = fx.token_for(WEB, json!({}));
    let one = "- objectName: db\n  objectType: secret\n";
    let c = p.client().await;
    let calls = futures_util::future::join_all((0..10).map(|_| {
        let mut c = c.clone();
        let a = attributes(&v.url, &web, one, json!({}));
        async move { mount(&mut c, a).await }
    }))
    .await;
    assert!(calls.iter().all(|r| r.is_ok()));
    let ok = "kvault_provider_vault_requests_total{object_type=\"secret\",outcome=\"ok\"}";
    assert_eq!(p.metric(ok).await, 1.0);
    // Another pod of the same service account has another token: its own request.
    let web2 = fx.token_for(WEB, json!({"jti": "pod-2"}));
    mount(&mut c.clone(), attributes(&v.url, &web2, one, json!({})))
        .await
        .unwrap();
    assert_eq!(p.metric(ok).await, 2.0);
    assert!(
        p.metric("kvault_provider_cache_lookups_total{result=\"hit\"}")
            .await
            + p.metric("kvault_provider_cache_lookups_total{result=\"shared\"}")
                .await
            >= 9.0
    );
    p.stop().await;
    v.stop().await;
}

#[tokio::test]
async fn throttled_vault_requests_are_retried_with_backoff() {
    let throttle = json!({"enabled": true, "windowSeconds": 1, "secretWrites": 100, "requests": 3});
    let (fx, v, p) = started(
        pod_policy(throttle),
        &["--max-retries", "6", "--cache-ttl", "0"],
    )
    .await;
    let admin = v.client();
    let mut objects = String::new();
    for i in 0..6 {
        admin.set_secret(&format!("s{i}"), &set("x")).await.unwrap();
        objects.push_str(&format!("- objectName: s{i}\n  objectType: secret\n"));
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let web = fx.token_for(WEB, json!({}));
    let mut c = p.client().await;
    let r = mount(&mut c, attributes(&v.url, &web, &objects, json!({})))
        .await
        .unwrap();
    assert_eq!(r.files.len(), 6);
    assert!(p.metric("kvault_provider_vault_retries_total").await >= 1.0);
    assert!(
        p.metric(
            "kvault_provider_vault_requests_total{object_type=\"secret\",outcome=\"throttled\"}"
        )
        .await
            >= 1.0
    );
    p.stop().await;
    v.stop().await;
}

#[tokio::test]
async fn malformed_requests_fail_with_actionable_errors() {
    let (fx, v, p) = started(pod_policy(json!({"enabled": false})), &[]).await;
    let web = fx.token_for(WEB, json!({}));
    let mut c = p.client().await;
    let ok_objects = "- objectName: db\n  objectType: secret\n";
    for (attrs, permission, needle) in [
        ("not json".to_string(), "420", "not a JSON object"),
        (
            attributes(&v.url, &web, ok_objects, json!({"vaultUrl": null})),
            "420",
            "name the vault",
        ),
        (
            attributes(&v.url, &web, ok_objects, json!({"vaulturl": "x"})),
            "420",
            "did you mean vaultUrl",
        ),
        (
            attributes(
                &v.url,
                &web,
                "- objectName: db\n  objectTyp: secret",
                json!({}),
            ),
            "420",
            "objectTyp",
        ),
        (
            attributes(&v.url, &web, "- [unclosed", json!({})),
            "420",
            "not a valid list",
        ),
        (
            attributes(&v.url, &web, "array:\n  - |\n    objectName: [", json!({})),
            "420",
            "objects[0]",
        ),
        (
            attributes(&v.url, &web, "", json!({})),
            "420",
            "'objects' parameter is missing",
        ),
        (
            attributes(
                &v.url,
                &web,
                "- objectName: db\n  objectType: secret\n  objectAlias: ../../etc/passwd",
                json!({}),
            ),
            "420",
            "'..'",
        ),
        (
            attributes(
                &v.url,
                &web,
                &format!(
                    "- objectName: db\n  objectType: secret\n  objectAlias: {}",
                    "a".repeat(300)
                ),
                json!({}),
            ),
            "420",
            "255",
        ),
        (
            attributes(
                &v.url,
                &web,
                &(0..300)
                    .map(|i| format!("- objectName: s{i}\n  objectType: secret\n"))
                    .collect::<String>(),
                json!({}),
            ),
            "420",
            "at most 256",
        ),
        (
            attributes(&v.url, &web, ok_objects, json!({})),
            "rw-r--r--",
            "decimal mode",
        ),
    ] {
        let mut req = mount_request(attrs);
        req.permission = permission.into();
        let e = c.mount(req).await.unwrap_err();
        assert_eq!(
            e.code(),
            tonic::Code::InvalidArgument,
            "{needle}: {}",
            e.message()
        );
        assert!(e.message().contains(needle), "{needle}: {}", e.message());
        assert!(
            e.message().starts_with("kvault: InvalidParameters: "),
            "{}",
            e.message()
        );
        assert!(!e.message().contains(&web), "never echo the token");
    }
    p.stop().await;
    v.stop().await;
}

#[tokio::test]
async fn responses_larger_than_the_drivers_limit_fail_whole() {
    let (fx, v, p) = started(
        pod_policy(json!({"enabled": false})),
        &["--max-response-bytes", "65536"],
    )
    .await;
    let admin = v.client();
    let big = "x".repeat(kvault::wire::MAX_SECRET_VALUE_LEN);
    let mut objects = String::new();
    for i in 0..3 {
        admin
            .set_secret(&format!("big{i}"), &set(&big))
            .await
            .unwrap();
        objects.push_str(&format!("- objectName: big{i}\n  objectType: secret\n"));
    }
    let web = fx.token_for(WEB, json!({}));
    let mut c = p.client().await;
    let e = mount(&mut c, attributes(&v.url, &web, &objects, json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(
        e.message().contains("max-call-recv-msg-size"),
        "{}",
        e.message()
    );
    // Two fit.
    let two: String = objects.lines().take(4).map(|l| format!("{l}\n")).collect();
    let r = mount(&mut c, attributes(&v.url, &web, &two, json!({})))
        .await
        .unwrap();
    assert_eq!(r.files.len(), 2);
    // The default is the driver's default receive limit, 4 MiB.
    assert_eq!(
        ProviderOptions::from_args(&[]).unwrap().max_response_bytes,
        4 * 1024 * 1024
    );
    p.stop().await;
    v.stop().await;
}

// --- The `:authority` of drivers up to v1.5: a raw HTTP/2 client ---------------------------

/// A minimal HTTP/2 client that sends whatever `:authority` it is given, as grpc-go did
/// in drivers up to v1.5 (the socket path), with an incrementally indexing, Huffman-coding
/// HPACK encoder like grpc-go's.
struct RawH2 {
    io: UnixStream,
    enc: loona_hpack::Encoder<'static>,
    dec: loona_hpack::Decoder<'static>,
    next_stream: u32,
}

struct RawResponse {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .chain(self.trailers.iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn message<M: prost::Message + Default>(&self) -> M {
        assert!(self.body.len() >= 5, "no gRPC message");
        M::decode(&self.body[5..]).unwrap()
    }
}

impl RawH2 {
    async fn connect(path: &Path) -> Self {
        let mut io = UnixStream::connect(path).await.unwrap();
        io.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        Self::write_frame(&mut io, 0x4, 0, 0, &[]).await;
        Self {
            io,
            enc: loona_hpack::Encoder::new(),
            dec: loona_hpack::Decoder::new(),
            next_stream: 1,
        }
    }

    async fn write_frame(io: &mut UnixStream, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let l = (payload.len() as u32).to_be_bytes();
        let mut f = vec![l[1], l[2], l[3], kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        io.write_all(&f).await.unwrap();
    }

    async fn read_frame(&mut self) -> (u8, u8, u32, Vec<u8>) {
        let mut h = [0u8; 9];
        self.io.read_exact(&mut h).await.unwrap();
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        let mut payload = vec![0u8; len];
        self.io.read_exact(&mut payload).await.unwrap();
        (
            h[3],
            h[4],
            u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
            payload,
        )
    }

    async fn unary(
        &mut self,
        authority: &str,
        path: &str,
        msg: &impl prost::Message,
    ) -> RawResponse {
        let stream = self.next_stream;
        self.next_stream += 2;
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path.as_bytes()),
            (b":authority", authority.as_bytes()),
            (b"content-type", b"application/grpc"),
            (b"user-agent", b"grpc-go/1.56.3"),
            (b"te", b"trailers"),
            (b"grpc-timeout", b"119S"),
        ];
        let block = self.enc.encode(headers);
        Self::write_frame(&mut self.io, 0x1, 0x4, stream, &block).await;
        let body = msg.encode_to_vec();
        let mut data = vec![0u8];
        data.extend_from_slice(&(body.len() as u32).to_be_bytes());
        data.extend_from_slice(&body);
        Self::write_frame(&mut self.io, 0x0, 0x1, stream, &data).await;
        let mut resp = RawResponse {
            headers: vec![],
            body: vec![],
            trailers: vec![],
        };
        let mut block: Vec<u8> = Vec::new();
        loop {
            let (kind, flags, sid, payload) = self.read_frame().await;
            match kind {
                0x4 if flags & 0x1 == 0 => Self::write_frame(&mut self.io, 0x4, 0x1, 0, &[]).await,
                0x6 if flags & 0x1 == 0 => {
                    Self::write_frame(&mut self.io, 0x6, 0x1, 0, &payload).await
                }
                0x3 if sid == stream => panic!("RST_STREAM {:?}", payload),
                0x7 => panic!("GOAWAY {:?}", payload),
                0x0 if sid == stream => {
                    resp.body.extend_from_slice(&payload);
                    if !payload.is_empty() {
                        let inc = (payload.len() as u32).to_be_bytes();
                        Self::write_frame(&mut self.io, 0x8, 0, 0, &inc).await;
                        Self::write_frame(&mut self.io, 0x8, 0, stream, &inc).await;
                    }
                    if flags & 0x1 != 0 {
                        return resp;
                    }
                }
                0x1 | 0x9 if sid == stream => {
                    block.extend_from_slice(&payload);
                    if flags & 0x4 != 0 {
                        let decoded: Vec<(String, String)> = self
                            .dec
                            .decode(&block)
                            .unwrap()
                            .into_iter()
                            .map(|(n, v)| {
                                (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap())
                            })
                            .collect();
                        block.clear();
                        if resp.headers.is_empty() {
                            resp.headers = decoded;
                        } else {
                            resp.trailers = decoded;
                        }
                        // Trailers (or a trailers-only error) end the stream.
                        if flags & 0x1 != 0 {
                            return resp;
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn both_authority_forms_are_served() {
    let (fx, v, p) = started(pod_policy(json!({"enabled": false})), &[]).await;
    v.client().set_secret("db", &set("s3cret")).await.unwrap();
    let web = fx.token_for(WEB, json!({}));
    let one = "- objectName: db\n  objectType: secret\n";

    // Driver v1.6+: tonic's own client, `:authority: localhost`.
    let mut c = p.client().await;
    let version = c
        .version(pb::VersionRequest {
            version: "v1alpha1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (version.version.as_str(), version.runtime_name.as_str()),
        ("v1alpha1", "kvault")
    );
    assert!(!version.runtime_version.is_empty());
    mount(&mut c, attributes(&v.url, &web, one, json!({})))
        .await
        .unwrap();

    // Driver ≤ v1.5: the socket path as `:authority`, several calls on one connection (the
    // later ones refer to the authority through HPACK's dynamic table).
    let mut raw = RawH2::connect(&p.socket).await;
    for _ in 0..3 {
        let r = raw
            .unary(
                OLD_AUTHORITY,
                "/v1alpha1.CSIDriverProvider/Version",
                &pb::VersionRequest {
                    version: "v1alpha1".into(),
                },
            )
            .await;
        assert_eq!(r.header("grpc-status"), Some("0"), "{:?}", r.trailers);
        assert_eq!(r.message::<pb::VersionResponse>().runtime_name, "kvault");
        let r = raw
            .unary(
                OLD_AUTHORITY,
                "/v1alpha1.CSIDriverProvider/Mount",
                &mount_request(attributes(&v.url, &web, one, json!({}))),
            )
            .await;
        assert_eq!(r.header("grpc-status"), Some("0"), "{:?}", r.trailers);
        let m: pb::MountResponse = r.message();
        assert_eq!(file(&m, "db").contents, b"s3cret");
    }
    // Errors reach the old client too.
    let r = raw
        .unary(
            OLD_AUTHORITY,
            "/v1alpha1.CSIDriverProvider/Mount",
            &mount_request("{}".into()),
        )
        .await;
    assert_eq!(r.header("grpc-status"), Some("3"));
    assert!(
        r.header("grpc-message")
            .unwrap()
            .contains("InvalidParameters")
    );
    assert_eq!(
        p.metric("kvault_provider_authority_rewrites_total").await,
        7.0
    );

    // Health and metrics.
    let (status, body) = p.admin_get("/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let (_, metrics) = p.admin_get("/metrics").await;
    for name in [
        "kvault_provider_mounts_total{result=\"ok\"}",
        "kvault_provider_mount_duration_seconds_count",
        "kvault_provider_vault_requests_total",
        "kvault_provider_vault_request_duration_seconds_count",
        "kvault_provider_cache_lookups_total",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    assert!(!metrics.contains("s3cret") && !metrics.contains("team-a"));

    // The socket is owner-only; stopping removes it.
    let meta = std::fs::symlink_metadata(&p.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let socket = p.socket.clone();
    drop(raw);
    p.stop().await;
    assert!(!socket.exists(), "the socket is removed on shutdown");
    v.stop().await;
}

/// Mount latency for 1 and 20 objects (run with `--nocapture` to see the figures): cold
/// (cache off: every object fetched from the vault over TLS) and warm (cached).
#[tokio::test]
async fn mount_latency_for_1_and_20_objects() {
    let (fx, v, p_cold) =
        started(pod_policy(json!({"enabled": false})), &["--cache-ttl", "0"]).await;
    let admin = v.client();
    let mut objects = String::new();
    for i in 0..20 {
        admin
            .set_secret(&format!("s{i}"), &set(&format!("value-{i}")))
            .await
            .unwrap();
        objects.push_str(&format!("- objectName: s{i}\n  objectType: secret\n"));
    }
    let one: String = objects.lines().take(2).map(|l| format!("{l}\n")).collect();
    let web = fx.token_for(WEB, json!({}));
    const N: usize = 50;
    async fn measure(
        c: &mut CsiDriverProviderClient<Channel>,
        attrs: &str,
        n: usize,
    ) -> (f64, f64, f64) {
        // Warm-up: connections to the vault and the socket.
        for _ in 0..3 {
            mount(c, attrs.to_string()).await.unwrap();
        }
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            mount(c, attrs.to_string()).await.unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        (
            p(0.5),
            p(0.99),
            times.iter().sum::<f64>() / times.len() as f64,
        )
    }
    let mut c = p_cold.client().await;
    let cold1 = measure(&mut c, &attributes(&v.url, &web, &one, json!({})), N).await;
    let cold20 = measure(&mut c, &attributes(&v.url, &web, &objects, json!({})), N).await;
    p_cold.stop().await;
    let socket_dir = fx.dir.path().join("providers");
    let _ = std::fs::remove_dir_all(&socket_dir);
    let p_warm = Provider::start(&fx, &[]).await;
    let mut c = p_warm.client().await;
    let warm1 = measure(&mut c, &attributes(&v.url, &web, &one, json!({})), N).await;
    let warm20 = measure(&mut c, &attributes(&v.url, &web, &objects, json!({})), N).await;
    for (label, (p50, p99, mean)) in [
        ("1 object, cache off ", cold1),
        ("20 objects, cache off", cold20),
        ("1 object, cached    ", warm1),
        ("20 objects, cached  ", warm20),
    ] {
        println!(
            "mount latency, {label}: p50 {p50:.2} ms, p99 {p99:.2} ms, mean {mean:.2} ms ({N} mounts)"
        );
    }
    // Generous bounds for a debug build on a loaded 2-core machine; the design target
    // (p99 < 50 ms for 20 objects) is measured in release builds.
    assert!(cold20.1 < 2000.0, "{cold20:?}");
    p_warm.stop().await;
    v.stop().await;
}

/// The SecretProviderClass in examples/provider/ mounts as written (pointed at the test
/// vault instead of the in-cluster Service).
#[tokio::test]
async fn the_example_secret_provider_class_mounts() {
    let spc: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples/provider/secretproviderclass.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(spc["spec"]["provider"], "kvault");
    let params = spc["spec"]["parameters"].as_object().unwrap().clone();
    assert_eq!(params["vaultName"], "payments");
    let objects = params["objects"].as_str().unwrap();

    let (fx, v, p) = started(pod_policy(json!({"enabled": false})), &[]).await;
    let admin = v.client();
    admin.set_secret("db-password", &set("pw")).await.unwrap();
    admin.set_secret("api-token", &set("old")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    admin.set_secret("api-token", &set("new")).await.unwrap();
    admin
        .create_key(
            "signing",
            &KeyCreateParameters {
                kty: "EC".into(),
                crv: Some("P-256".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    admin
        .create_certificate(
            "web-tls",
            &CertificateCreateParameters {
                policy: Some(
                    serde_json::from_value(json!({
                        "x509_props": {"subject": "CN=web.team-a.svc"},
                        "issuer": {"name": "Self"}
                    }))
                    .unwrap(),
                ),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let web = fx.token_for(WEB, json!({}));
    let mut c = p.client().await;
    let r = mount(&mut c, attributes(&v.url, &web, objects, json!({})))
        .await
        .unwrap();
    assert_eq!(
        paths(&r),
        vec![
            "db/password",
            "tls.crt",
            "tls.pem",
            "tls.pfx",
            "signing.pub",
            "api-token/0",
            "api-token/1"
        ]
    );
    assert_eq!(file(&r, "tls.pem").mode, 0o400);
    assert_eq!(file(&r, "api-token/0").contents, b"new");
    // The synced Secret's objectName is one of the files.
    let synced = &spc["spec"]["secretObjects"][0]["data"][0]["objectName"];
    assert!(paths(&r).contains(&synced.as_str().unwrap()));
    p.stop().await;
    v.stop().await;
}

fn tagged(value: &str, tags: &[(&str, &str)]) -> kvault::wire::SecretSetParameters {
    kvault::wire::SecretSetParameters {
        tags: Some(
            tags.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..set(value)
    }
}

#[tokio::test]
async fn selections_mount_every_tagged_secret_and_fail_whole_over_their_bound() {
    let spc: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/provider/bulk-selection.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(spc["spec"]["provider"], "kvault");
    let example = spc["spec"]["parameters"]["objects"].as_str().unwrap();

    // No cache: every mount lists the vault again.
    let (fx, v, p) = started(pod_policy(json!({"enabled": false})), &["--cache-ttl", "0"]).await;
    let admin = v.client();
    let web_a = admin
        .set_secret("web-a", &tagged("value-a", &[("app", "web")]))
        .await
        .unwrap();
    admin
        .set_secret(
            "web-b",
            &tagged("value-b", &[("app", "web"), ("tier", "front")]),
        )
        .await
        .unwrap();
    admin
        .set_secret("api", &tagged("value-x", &[("app", "api")]))
        .await
        .unwrap();
    admin
        .set_secret("web-upper", &tagged("value-u", &[("app", "WEB")]))
        .await
        .unwrap();
    let mut off = tagged("value-off", &[("app", "web")]);
    off.attributes = Some(kvault::wire::secrets::SecretAttributes {
        enabled: Some(false),
        ..Default::default()
    });
    admin.set_secret("web-off", &off).await.unwrap();
    admin
        .set_secret("DB-User", &set("value-user"))
        .await
        .unwrap();
    admin
        .set_secret("db-password", &set("value-pw"))
        .await
        .unwrap();
    admin
        .set_secret("api-token", &set("value-tok"))
        .await
        .unwrap();
    let web = fx.token_for(WEB, json!({}));
    let mut c = p.client().await;

    // Every secret tagged app=web: exactly that value, enabled ones only.
    let tagged_web = "- objectTags: app=web\n  objectType: secret\n";
    let r = mount(&mut c, attributes(&v.url, &web, tagged_web, json!({})))
        .await
        .unwrap();
    assert_eq!(paths(&r), vec!["web-a", "web-b"]);
    assert_eq!(file(&r, "web-a").contents, b"value-a");
    assert_eq!(file(&r, "web-b").contents, b"value-b");
    assert_eq!(file(&r, "web-a").mode, 0o644);
    assert_eq!(version_of(&r, "secret/web-a"), last(&web_a.id));

    // The example: tags under web/, the db- prefix as environment names, a named object.
    let r = mount(&mut c, attributes(&v.url, &web, example, json!({})))
        .await
        .unwrap();
    assert_eq!(
        paths(&r),
        vec![
            "api-token",
            "web/web-a",
            "web/web-b",
            "env/DB_PASSWORD",
            "env/DB_USER"
        ]
    );
    assert_eq!(file(&r, "env/DB_USER").contents, b"value-user");
    assert_eq!(file(&r, "env/DB_PASSWORD").mode, 0o440);
    assert_eq!(file(&r, "web/web-b").mode, 0o644);
    assert_eq!(file(&r, "api-token").contents, b"value-tok");

    // A new secret with the tag shows up on the next mount.
    admin
        .set_secret("web-c", &tagged("value-c", &[("app", "web")]))
        .await
        .unwrap();
    let r = mount(&mut c, attributes(&v.url, &web, tagged_web, json!({})))
        .await
        .unwrap();
    assert_eq!(paths(&r), vec!["web-a", "web-b", "web-c"]);

    // Over its bound: the whole mount fails, the named object with it.
    let bounded = "- objectName: api-token\n  objectType: secret\n- objectTags: app=web\n  objectType: secret\n  objectMaxCount: 2\n";
    let e = mount(&mut c, attributes(&v.url, &web, bounded, json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
    assert!(
        e.message()
            .contains("objects[1]: the selector of tags app=web matches 3 secrets; at most 2"),
        "{}",
        e.message()
    );
    assert!(!e.message().contains("value-"), "{}", e.message());
    // A selected secret colliding with a named one.
    let clash = "- objectName: api\n  objectType: secret\n  objectAlias: web-a\n- objectTags: app=web\n  objectType: secret\n";
    let e = mount(&mut c, attributes(&v.url, &web, clash, json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("two objects write the file 'web-a'"),
        "{}",
        e.message()
    );
    // A pod that may not list the vault's secrets gets nothing, and no value leaks.
    let other = fx.token_for(OTHER, json!({}));
    let e = mount(&mut c, attributes(&v.url, &other, tagged_web, json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{}", e.message());
    assert!(
        e.message().contains("the list of secrets"),
        "{}",
        e.message()
    );
    assert!(!e.message().contains("value-"), "{}", e.message());
    p.stop().await;
    v.stop().await;
}

/// A token service as the operator runs it: it trusts the cluster issuer (the fixture's)
/// for assertions with the workload-identity audience and signs access tokens the vault
/// trusts as speaking for that issuer. Returns its authority and the vault issuer entry.
async fn start_token_service(
    fx: &Fixture,
) -> (
    String,
    kvault::server::auth::IssuerConfig,
    tokio::sync::oneshot::Sender<()>,
) {
    use kvault::identity::{IdentityConfig, TokenService, exchange, signing};
    use kvault::server::auth::{IssuerConfig, JwksSource};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let authority_host = format!("https://localhost:{port}");
    let issuer = format!("{authority_host}/adfs");
    let ring = signing::KeyRing::new(vec![signing::SigningKey::generate(now()).unwrap()]);
    let jwks = ring.jwks().unwrap();
    let ring = std::sync::Arc::new(std::sync::RwLock::new(ring));
    let config = IdentityConfig {
        issuer: issuer.clone(),
        tenant: exchange::DEFAULT_TENANT.into(),
        authority_host,
        assertion_issuers: vec![IssuerConfig {
            issuer: ISSUER.into(),
            jwks: JwksSource::File(fx.issuer.jwks_path.clone()),
            service_accounts: true,
            speaks_for: None,
        }],
        assertion_audience: exchange::DEFAULT_AUDIENCE.into(),
        token_ttl: kvault::identity::DEFAULT_TOKEN_TTL,
        jwks_refresh_interval: Duration::from_secs(0),
    };
    let service = TokenService::new(
        config,
        ring,
        None,
        kvault::server::audit::AuditLog::disabled(),
        kvault::identity::IdentityMetrics::default(),
        kvault::clock::system(),
    )
    .await
    .unwrap();
    let certs = std::sync::Arc::new(
        kvault::server::tls::ReloadingCert::load(fx.certs.cert.clone(), fx.certs.key.clone())
            .unwrap(),
    );
    let tls = kvault::server::tls::server_config(certs, kvault::server::tls::TlsMinVersion::Tls12)
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(kvault::identity::serve(
        listener,
        tls,
        std::sync::Arc::new(service).router(),
        kvault::listener::Limits::default(),
        async move {
            let _ = rx.await;
        },
    ));
    let vault_issuer = IssuerConfig {
        issuer: issuer.clone(),
        jwks: JwksSource::Static(jwks),
        service_accounts: true,
        speaks_for: Some(ISSUER.into()),
    };
    (issuer, vault_issuer, tx)
}

#[tokio::test]
async fn the_pods_workload_identity_token_is_exchanged_and_never_sent_to_the_vault() {
    let fx = Fixture::new();
    let (authority, vault_issuer, stop_ts) = start_token_service(&fx).await;
    let mut config = fx.config(&Options {
        policy: Some(pod_policy(json!({"enabled": false}))),
        ..Options::default()
    });
    config.issuers.push(vault_issuer);
    let v = fx.start_with(config).await;
    v.client().set_secret("db", &set("s3cret")).await.unwrap();
    let p = Provider::start(&fx, &["--identity-authority", &authority]).await;
    let mut c = p.client().await;

    // The pod's token for the one workload-identity audience (what the CSIDriver requests).
    let wi = kvault::identity::exchange::DEFAULT_AUDIENCE;
    let pod_token = fx.issuer.sign(
        jsonwebtoken::Algorithm::ES256,
        "ec",
        &fx.issuer.claims(wi, WEB),
    );
    let with_tokens = |aud: &str, token: &str| {
        json!({"csi.storage.k8s.io/serviceAccount.tokens":
            json!({aud: {"token": token, "expirationTimestamp": "2099-01-01T00:00:00Z"}}).to_string()})
    };
    let objects = "- {objectName: db, objectType: secret}";
    let r = mount(
        &mut c,
        attributes(&v.url, "unused", objects, with_tokens(wi, &pod_token)),
    )
    .await
    .unwrap();
    assert_eq!(file(&r, "db").contents, b"s3cret");
    // Again: the exchanged token is reused.
    mount(
        &mut c,
        attributes(&v.url, "unused", objects, with_tokens(wi, &pod_token)),
    )
    .await
    .unwrap();
    assert_eq!(
        p.metric("kvault_provider_token_exchanges_total{result=\"ok\"}")
            .await,
        1.0
    );

    // The vault itself refuses the pod's own token: it only ever got the exchanged one.
    let direct = v.client_with(&pod_token).get_secret("db", None).await;
    assert_eq!(direct.unwrap_err().status(), Some(401));

    // A pod token for the vault's own audience is not exchanged (nor sent anywhere).
    let direct_token = fx.token_for(WEB, json!({}));
    let e = mount(
        &mut c,
        attributes(&v.url, &direct_token, objects, json!({})),
    )
    .await
    .unwrap_err();
    assert!(
        e.message().contains("MissingToken")
            && e.message()
                .contains("workload-identity audience 'api://AzureADTokenExchange'"),
        "{}",
        e.message()
    );
    assert!(!e.message().contains(&direct_token));

    // A token under the identity audience's key that the token service refuses (minted
    // for another audience): the mount fails with the AADSTS code, never the token.
    let wrong = fx.issuer.sign(
        jsonwebtoken::Algorithm::ES256,
        "ec",
        &fx.issuer.claims("https://elsewhere.example", WEB),
    );
    let e = mount(
        &mut c,
        attributes(&v.url, "unused", objects, with_tokens(wi, &wrong)),
    )
    .await
    .unwrap_err();
    assert!(
        e.message().contains("Unauthorized")
            && e.message().contains("AADSTS")
            && e.message().contains("token service"),
        "{}",
        e.message()
    );
    assert!(!e.message().contains(&wrong));

    // A pod whose service account the token service does not see as the client: refused.
    let e = mount(
        &mut c,
        attributes(
            &v.url,
            "unused",
            objects,
            json!({
                "csi.storage.k8s.io/serviceAccount.name": "other",
                "csi.storage.k8s.io/serviceAccount.tokens":
                    json!({wi: {"token": pod_token, "expirationTimestamp": "2099-01-01T00:00:00Z"}}).to_string(),
            }),
        ),
    )
    .await
    .unwrap_err();
    assert!(e.message().contains("AADSTS"), "{}", e.message());

    p.stop().await;
    let _ = stop_ts.send(());
    v.stop().await;
}
