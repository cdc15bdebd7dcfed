//! The official Azure SDK for Rust (`azure_security_keyvault_secrets`, `…_keys`,
//! `…_certificates`), unmodified, against a real kvault. Run by tests/interop/test_sdk_rust.py:
//!
//!   KVAULT_URL=https://certs.kvault.localhost:PORT KVAULT_TOKEN=… KVAULT_ADMIN_TOKEN=… \
//!   KVAULT_CA_FILE=ca.pem kvault-sdk-interop
//!
//! Prints `ok <check>` or `FAIL <check>: <error>` per check, then `api-versions <list>` (what
//! the SDK sent, recorded by a per-call pipeline policy), and exits 1 if any check failed.
//! The only kvault-specific parts are the environment: a static-token credential, and an HTTP
//! transport that trusts the dev CA and resolves the vault's host to 127.0.0.1.

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{ClientOptions, Context, Request, Transport};
use azure_core::time::{Duration, OffsetDateTime};
use azure_security_keyvault_certificates::CertificateClient;
use azure_security_keyvault_certificates::models as cm;
use azure_security_keyvault_keys::KeyClient;
use azure_security_keyvault_keys::models as km;
use azure_security_keyvault_secrets::SecretClient;
use azure_security_keyvault_secrets::models as sm;
use futures::TryStreamExt;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Outcome = Result<(), Error>;

/// Hands the SDK a token minted by `kvault token` (never printed).
#[derive(Debug)]
struct StaticToken(String);

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.0.clone(),
            OffsetDateTime::now_utc() + Duration::minutes(30),
        ))
    }
}

/// Records the api-version of every request the SDK sends.
#[derive(Debug, Default)]
struct RecordApiVersion(Mutex<BTreeSet<String>>);

#[async_trait::async_trait]
impl Policy for RecordApiVersion {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        if let Some((_, v)) = request
            .url()
            .query_pairs()
            .find(|(k, _)| k == "api-version")
        {
            self.0.lock().unwrap().insert(v.into_owned());
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("{name} must be set");
        std::process::exit(2)
    })
}

fn ensure(condition: bool, what: &str) -> Outcome {
    if condition {
        Ok(())
    } else {
        Err(format!("assertion failed: {what}").into())
    }
}

struct Report {
    failures: usize,
}

impl Report {
    async fn check(&mut self, name: &str, body: impl Future<Output = Outcome>) {
        match body.await {
            Ok(()) => println!("ok {name}"),
            Err(e) => {
                self.failures += 1;
                let detail: String = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                println!(
                    "FAIL {name}: {}",
                    detail.chars().take(500).collect::<String>()
                );
            }
        }
    }
}

/// Expects the call to fail with this HTTP status.
async fn expect_status<T>(
    status: u16,
    call: impl Future<Output = azure_core::Result<T>>,
) -> Outcome {
    match call.await {
        Ok(_) => Err(format!("expected {status}, the call succeeded").into()),
        Err(e) => {
            let got = e.http_status().map(u16::from);
            ensure(
                got == Some(status),
                &format!("expected {status}, got {got:?}: {e}"),
            )
        }
    }
}

fn last_segment(id: &Option<String>) -> String {
    id.as_deref()
        .and_then(|id| id.rsplit('/').next())
        .unwrap_or_default()
        .to_string()
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = env("KVAULT_URL");
    let token = env("KVAULT_TOKEN");
    let admin_token = env("KVAULT_ADMIN_TOKEN");
    let ca = std::fs::read(env("KVAULT_CA_FILE"))?;
    let parsed = url::Url::parse(&url)?;
    let host = parsed
        .host_str()
        .ok_or("KVAULT_URL has no host")?
        .to_string();
    let port = parsed.port().unwrap_or(443);

    let http = reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(&ca)?])
        .resolve(&host, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .build()?;
    let record = Arc::new(RecordApiVersion::default());
    let client_options = ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        per_call_policies: vec![record.clone()],
        ..Default::default()
    };
    let user: Arc<dyn TokenCredential> = Arc::new(StaticToken(token));
    let admin: Arc<dyn TokenCredential> = Arc::new(StaticToken(admin_token));
    let secrets = SecretClient::new(
        &url,
        user.clone(),
        Some(azure_security_keyvault_secrets::SecretClientOptions {
            client_options: client_options.clone(),
            ..Default::default()
        }),
    )?;
    let keys = KeyClient::new(
        &url,
        user.clone(),
        Some(azure_security_keyvault_keys::KeyClientOptions {
            client_options: client_options.clone(),
            ..Default::default()
        }),
    )?;
    let cert_options = azure_security_keyvault_certificates::CertificateClientOptions {
        client_options: client_options.clone(),
        ..Default::default()
    };
    let certs = CertificateClient::new(&url, user.clone(), Some(cert_options.clone()))?;
    // Reading contacts (certificatecontacts/read) is the Administrator's.
    let admin_certs = CertificateClient::new(&url, admin, Some(cert_options))?;

    let suffix = format!(
        "{:08x}",
        std::process::id() ^ OffsetDateTime::now_utc().nanosecond()
    );
    let n = |base: &str| format!("rs-{base}-{suffix}");
    let mut report = Report { failures: 0 };

    // ------------------------------------------------------------ secrets
    let secret = n("secret");
    let first_version = Arc::new(Mutex::new(String::new()));
    report
        .check("secret.set_get", async {
            let params = sm::SetSecretParameters {
                value: Some("one".into()),
                content_type: Some("text/plain".into()),
                ..Default::default()
            };
            let s = secrets
                .set_secret(&secret, params.try_into()?, None)
                .await?
                .into_model()?;
            ensure(s.value.as_deref() == Some("one"), "value")?;
            *first_version.lock().unwrap() = last_segment(&s.id);
            let params = sm::SetSecretParameters {
                value: Some("two".into()),
                ..Default::default()
            };
            secrets
                .set_secret(&secret, params.try_into()?, None)
                .await?;
            let got = secrets.get_secret(&secret, None).await?.into_model()?;
            ensure(got.value.as_deref() == Some("two"), "latest")
        })
        .await;
    report
        .check("secret.get_version", async {
            let options = sm::SecretClientGetSecretOptions {
                secret_version: Some(first_version.lock().unwrap().clone()),
                ..Default::default()
            };
            let got = secrets
                .get_secret(&secret, Some(options))
                .await?
                .into_model()?;
            ensure(got.value.as_deref() == Some("one"), "first version")
        })
        .await;
    report
        .check("secret.update_properties", async {
            let params = sm::UpdateSecretPropertiesParameters {
                tags: Some(HashMap::from([("env".to_string(), "test".to_string())])),
                ..Default::default()
            };
            let s = secrets
                .update_secret_properties(&secret, params.try_into()?, None)
                .await?
                .into_model()?;
            ensure(
                s.tags.and_then(|t| t.get("env").cloned()).as_deref() == Some("test"),
                "tag",
            )
        })
        .await;
    report
        .check("secret.list_paged_and_versions", async {
            for i in 0..27 {
                let params = sm::SetSecretParameters {
                    value: Some("v".into()),
                    ..Default::default()
                };
                secrets
                    .set_secret(&n(&format!("page-{i}")), params.try_into()?, None)
                    .await?;
            }
            let mut names = BTreeSet::new();
            let mut pager = secrets.list_secret_properties(None)?;
            while let Some(p) = pager.try_next().await? {
                names.insert(last_segment(&p.id));
            }
            for i in 0..27 {
                ensure(names.contains(&n(&format!("page-{i}"))), "every page read")?;
            }
            let mut versions = 0;
            let mut pager = secrets.list_secret_properties_versions(&secret, None)?;
            while pager.try_next().await?.is_some() {
                versions += 1;
            }
            ensure(versions == 2, &format!("2 versions, got {versions}"))
        })
        .await;
    report
        .check("secret.delete_recover", async {
            let d = secrets.delete_secret(&secret, None).await?.into_model()?;
            ensure(
                d.recovery_id.is_some() && d.scheduled_purge_date.is_some(),
                "soft delete",
            )?;
            secrets.get_deleted_secret(&secret, None).await?;
            secrets.recover_deleted_secret(&secret, None).await?;
            let got = secrets.get_secret(&secret, None).await?.into_model()?;
            ensure(got.value.as_deref() == Some("two"), "recovered")
        })
        .await;
    report
        .check("secret.backup_purge_restore", async {
            let blob = secrets.backup_secret(&secret, None).await?.into_model()?;
            secrets.delete_secret(&secret, None).await?;
            secrets.purge_deleted_secret(&secret, None).await?;
            expect_status(404, secrets.get_deleted_secret(&secret, None)).await?;
            let params = sm::RestoreSecretParameters {
                secret_backup: blob.value,
            };
            secrets.restore_secret(params.try_into()?, None).await?;
            let got = secrets.get_secret(&secret, None).await?.into_model()?;
            ensure(got.value.as_deref() == Some("two"), "restored")
        })
        .await;

    // ------------------------------------------------------------ keys
    let rsa = n("rsa");
    let ec = n("ec");
    report
        .check("key.create_get_list", async {
            let params = km::CreateKeyParameters {
                kty: Some(km::KeyType::Rsa),
                key_size: Some(2048),
                ..Default::default()
            };
            let k = keys
                .create_key(&rsa, params.try_into()?, None)
                .await?
                .into_model()?;
            ensure(
                k.key.and_then(|j| j.n).map(|n| n.len()) == Some(256),
                "RSA-2048 modulus",
            )?;
            let params = km::CreateKeyParameters {
                kty: Some(km::KeyType::Ec),
                curve: Some(km::CurveName::P256),
                ..Default::default()
            };
            keys.create_key(&ec, params.try_into()?, None).await?;
            keys.get_key(&ec, None).await?;
            let mut names = BTreeSet::new();
            let mut pager = keys.list_key_properties(None)?;
            while let Some(p) = pager.try_next().await? {
                names.insert(last_segment(&p.kid));
            }
            ensure(names.contains(&rsa) && names.contains(&ec), "listed")
        })
        .await;
    report
        .check("crypto.encrypt_decrypt_wrap_unwrap", async {
            let plaintext = b"kvault from rust".to_vec();
            let params = km::KeyOperationParameters {
                algorithm: Some(km::EncryptionAlgorithm::RsaOaep256),
                value: Some(plaintext.clone()),
                ..Default::default()
            };
            let enc = keys
                .encrypt(&rsa, params.try_into()?, None)
                .await?
                .into_model()?;
            let version = last_segment(&enc.kid);
            let params = km::KeyOperationParameters {
                algorithm: Some(km::EncryptionAlgorithm::RsaOaep256),
                value: enc.result,
                ..Default::default()
            };
            let dec = keys
                .decrypt(&rsa, &version, params.try_into()?, None)
                .await?
                .into_model()?;
            ensure(
                dec.result.as_deref() == Some(&plaintext[..]),
                "decrypt round trip",
            )?;
            let cek = vec![7u8; 32];
            let params = km::KeyOperationParameters {
                algorithm: Some(km::EncryptionAlgorithm::RsaOaep),
                value: Some(cek.clone()),
                ..Default::default()
            };
            let wrapped = keys
                .wrap_key(&rsa, params.try_into()?, None)
                .await?
                .into_model()?;
            let params = km::KeyOperationParameters {
                algorithm: Some(km::EncryptionAlgorithm::RsaOaep),
                value: wrapped.result,
                ..Default::default()
            };
            let unwrapped = keys
                .unwrap_key(&rsa, &version, params.try_into()?, None)
                .await?
                .into_model()?;
            ensure(
                unwrapped.result.as_deref() == Some(&cek[..]),
                "unwrap round trip",
            )
        })
        .await;
    report
        .check("crypto.sign_verify_es256", async {
            // SHA-256 of "message", as the caller's digest.
            let digest = sha256(b"message");
            let params = km::SignParameters {
                algorithm: Some(km::SignatureAlgorithm::Es256),
                value: Some(digest.clone()),
            };
            let signed = keys
                .sign(&ec, params.try_into()?, None)
                .await?
                .into_model()?;
            let version = last_segment(&signed.kid);
            let sig = signed.result.ok_or("no signature")?;
            ensure(sig.len() == 64, "r||s")?;
            let verify = |digest: Vec<u8>| km::VerifyParameters {
                algorithm: Some(km::SignatureAlgorithm::Es256),
                digest: Some(digest),
                signature: Some(sig.clone()),
            };
            let ok = keys
                .verify(&ec, &version, verify(digest.clone()).try_into()?, None)
                .await?
                .into_model()?;
            ensure(ok.value == Some(true), "verifies")?;
            let bad = keys
                .verify(&ec, &version, verify(sha256(b"other")).try_into()?, None)
                .await?
                .into_model()?;
            ensure(bad.value == Some(false), "another digest does not verify")
        })
        .await;
    report
        .check("key.rotate_and_rotation_policy", async {
            let before = keys.get_key(&rsa, None).await?.into_model()?;
            let rotated = keys.rotate_key(&rsa, None).await?.into_model()?;
            ensure(
                last_segment(&rotated.key.as_ref().and_then(|k| k.kid.clone()))
                    != last_segment(&before.key.as_ref().and_then(|k| k.kid.clone())),
                "new version",
            )?;
            let policy = km::KeyRotationPolicy {
                lifetime_actions: Some(vec![km::LifetimeAction {
                    action: Some(km::LifetimeActionType {
                        type_prop: Some(km::KeyRotationPolicyAction::Rotate),
                    }),
                    trigger: Some(km::LifetimeActionTrigger {
                        time_before_expiry: Some("P30D".into()),
                        ..Default::default()
                    }),
                }]),
                attributes: Some(km::KeyRotationPolicyAttributes {
                    expiry_time: Some("P90D".into()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            keys.update_key_rotation_policy(&rsa, policy.try_into()?, None)
                .await?;
            let got = keys
                .get_key_rotation_policy(&rsa, None)
                .await?
                .into_model()?;
            ensure(
                got.attributes.and_then(|a| a.expiry_time).as_deref() == Some("P90D"),
                "expiry",
            )
        })
        .await;
    report
        .check("key.update_backup_delete_purge_restore", async {
            let params = km::UpdateKeyPropertiesParameters {
                tags: Some(HashMap::from([("t".to_string(), "x".to_string())])),
                ..Default::default()
            };
            let k = keys
                .update_key_properties(&ec, params.try_into()?, None)
                .await?
                .into_model()?;
            ensure(
                k.tags.and_then(|t| t.get("t").cloned()).as_deref() == Some("x"),
                "tag",
            )?;
            let blob = keys.backup_key(&ec, None).await?.into_model()?;
            keys.delete_key(&ec, None).await?;
            keys.get_deleted_key(&ec, None).await?;
            keys.purge_deleted_key(&ec, None).await?;
            expect_status(404, keys.get_key(&ec, None)).await?;
            let params = km::RestoreKeyParameters {
                key_backup: blob.value,
            };
            keys.restore_key(params.try_into()?, None).await?;
            keys.get_key(&ec, None)
                .await
                .map(|_| ())
                .map_err(Into::into)
        })
        .await;

    // ------------------------------------------------------------ certificates
    let cert = n("cert");
    report
        .check("cert.create_self_signed", async {
            let policy = cm::CertificatePolicy {
                x509_certificate_properties: Some(cm::X509CertificateProperties {
                    subject: Some("CN=rust.interop.test".into()),
                    ..Default::default()
                }),
                issuer_parameters: Some(cm::IssuerParameters { name: Some("Self".into()), ..Default::default() }),
                ..Default::default()
            };
            let body = cm::CreateCertificateParameters { certificate_policy: Some(policy), ..Default::default() };
            // The SDK's poller waits at least a second between polls.
            let mut options = azure_security_keyvault_certificates::models::CertificateClientCreateCertificateOptions::default();
            options.method_options.frequency = Duration::seconds(1);
            let c = certs
                .begin_create_certificate(&cert, body.try_into()?, Some(options))?
                .await?
                .into_model()?;
            ensure(c.cer.map(|d| d.len() > 100) == Some(true), "DER certificate")
        })
        .await;
    report
        .check("cert.get_and_policy", async {
            let c = certs.get_certificate(&cert, None).await?.into_model()?;
            ensure(c.kid.is_some() && c.sid.is_some(), "kid and sid")?;
            let p = certs
                .get_certificate_policy(&cert, None)
                .await?
                .into_model()?;
            let subject = p
                .x509_certificate_properties
                .as_ref()
                .and_then(|x| x.subject.clone());
            ensure(
                subject.as_deref() == Some("CN=rust.interop.test"),
                "subject",
            )?;
            let update = cm::CertificatePolicy {
                x509_certificate_properties: Some(cm::X509CertificateProperties {
                    subject: Some("CN=rust.interop.test".into()),
                    validity_in_months: Some(6),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let updated = certs
                .update_certificate_policy(&cert, update.try_into()?, None)
                .await?
                .into_model()?;
            ensure(
                updated
                    .x509_certificate_properties
                    .and_then(|x| x.validity_in_months)
                    == Some(6),
                "validity",
            )
        })
        .await;
    report
        .check("cert.import_from_secret", async {
            let secret = secrets.get_secret(&cert, None).await?.into_model()?;
            let params = cm::ImportCertificateParameters {
                base64_encoded_certificate: secret.value,
                ..Default::default()
            };
            let imported = certs
                .import_certificate(&n("imported"), params.try_into()?, None)
                .await?
                .into_model()?;
            let original = certs.get_certificate(&cert, None).await?.into_model()?;
            ensure(imported.cer == original.cer, "same certificate")
        })
        .await;
    report
        .check("cert.contacts", async {
            let contacts = cm::Contacts {
                contact_list: Some(vec![cm::Contact {
                    email: Some("rust@interop.test".into()),
                    name: Some("Rust".into()),
                    phone: Some("1".into()),
                }]),
                ..Default::default()
            };
            certs.set_contacts(contacts.try_into()?, None).await?;
            let got = admin_certs.get_contacts(None).await?.into_model()?;
            ensure(got.contact_list.map(|l| l.len()) == Some(1), "one contact")?;
            certs.delete_contacts(None).await?;
            expect_status(404, admin_certs.get_contacts(None)).await
        })
        .await;
    report
        .check("cert.issuers", async {
            let issuer = n("issuer");
            let params = cm::SetIssuerParameters {
                provider: Some("Test".into()),
                ..Default::default()
            };
            certs.set_issuer(&issuer, params.try_into()?, None).await?;
            let got = certs.get_issuer(&issuer, None).await?.into_model()?;
            ensure(got.provider.as_deref() == Some("Test"), "provider")?;
            certs.delete_issuer(&issuer, None).await?;
            expect_status(404, certs.get_issuer(&issuer, None)).await
        })
        .await;
    report
        .check("cert.list_delete_purge", async {
            let mut names = BTreeSet::new();
            let mut pager = certs.list_certificate_properties(None)?;
            while let Some(p) = pager.try_next().await? {
                names.insert(last_segment(&p.id));
            }
            ensure(names.contains(&cert), "listed")?;
            let d = certs.delete_certificate(&cert, None).await?.into_model()?;
            ensure(d.recovery_id.is_some(), "recoveryId")?;
            certs.purge_deleted_certificate(&cert, None).await?;
            expect_status(404, certs.get_deleted_certificate(&cert, None)).await
        })
        .await;

    let versions: Vec<String> = record.0.lock().unwrap().iter().cloned().collect();
    println!("api-versions {}", versions.join(","));
    std::process::exit(if report.failures == 0 { 0 } else { 1 });
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}
