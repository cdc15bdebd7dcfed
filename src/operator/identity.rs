//! The operator's share of workload identity. Every replica serves, on its HTTPS port, the
//! token service (`crate::identity`) and the pod webhook (`super::webhook`); the token
//! service's signing keys live in one Secret of the operator's namespace, rotated by
//! whichever replica sees a rotation due first (optimistic concurrency keeps one writer);
//! vaults learn the keys from their policy documents (an issuer that speaks for the cluster
//! issuer, see [`TokenServiceSettings`]).

use super::webhook::{self, Injection, ServiceAccountDirectory, WebhookState};
use crate::identity::signing::KeyRing;
use crate::identity::{ClientIds, IdentityConfig, IdentityMetrics, TokenService, exchange};
use crate::server::auth::{IssuerConfig, JwksSource};
use anyhow::Context as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The Secret holding the token service's signing keys.
pub const SIGNING_SECRET: &str = "kvault-identity-signing";
const KEYS_FIELD: &str = "keys.json";
/// How often a replica re-reads the keys (and rotates them when due) and the cluster JWKS.
const REFRESH: Duration = Duration::from_secs(60);
const CA_BUNDLE_MANAGER: &str = "kvault-operator-cabundle";
/// The serving certificate (valid three months) is replaced after this long.
const SERVING_CERT_RENEW_AFTER: Duration = Duration::from_secs(30 * 86_400);

/// What a vault needs to trust the token service: its issuer name and its public keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenServiceSettings {
    /// The authority `https://<host>/<tenant>`: the tokens' `iss` and the vaults' challenge.
    pub authority: String,
    /// The current JWKS (filled per reconcile from the key ring).
    pub jwks: Option<jsonwebtoken::jwk::JwkSet>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct IdentityOptions {
    /// Serve workload identity (the token service and the pod webhook) on --https-listen.
    #[arg(long, env = "KVAULT_WORKLOAD_IDENTITY", default_value_t = true, action = clap::ArgAction::Set)]
    pub workload_identity: bool,
    /// HTTPS address of the token service and the webhook (every replica serves it).
    #[arg(
        long,
        env = "KVAULT_OPERATOR_HTTPS_LISTEN",
        default_value = "0.0.0.0:9443"
    )]
    pub https_listen: SocketAddr,
    /// The Service in front of --https-listen (its DNS names go into the certificate).
    #[arg(
        long,
        env = "KVAULT_WEBHOOK_SERVICE",
        default_value = "kvault-operator-webhook"
    )]
    pub webhook_service: String,
    /// `AZURE_AUTHORITY_HOST` as pods reach the token service (default:
    /// https://<webhook service>.<namespace>.svc, port 443).
    #[arg(long, env = "KVAULT_IDENTITY_AUTHORITY_HOST")]
    pub identity_authority_host: Option<String>,
    /// The tenant of the authority (`AZURE_TENANT_ID`).
    #[arg(long, env = "KVAULT_WORKLOAD_IDENTITY_TENANT", default_value = exchange::DEFAULT_TENANT)]
    pub workload_identity_tenant: String,
    /// The audience of the service-account tokens pods present.
    #[arg(long, env = "KVAULT_WORKLOAD_IDENTITY_AUDIENCE", default_value = exchange::DEFAULT_AUDIENCE)]
    pub workload_identity_audience: String,
    /// Lifetime of the projected token the webhook adds (seconds, 3600-86400).
    #[arg(long, env = "KVAULT_WORKLOAD_IDENTITY_TOKEN_EXPIRATION", default_value_t = webhook::patch::DEFAULT_TOKEN_EXPIRATION_SECS)]
    pub workload_identity_token_expiration: i64,
}

impl IdentityOptions {
    /// The authority host pods use.
    pub fn authority_host(&self, namespace: &str) -> String {
        self.identity_authority_host
            .clone()
            .map(|h| h.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("https://{}.{namespace}.svc", self.webhook_service))
    }

    /// The vaults' view of the token service, when it runs.
    pub fn settings(&self, namespace: &str) -> Option<TokenServiceSettings> {
        self.workload_identity.then(|| TokenServiceSettings {
            authority: format!(
                "{}/{}",
                self.authority_host(namespace),
                self.workload_identity_tenant
            ),
            jwks: None,
        })
    }

    /// The certificate's names: the Service's short and long forms.
    fn dns_names(&self, namespace: &str, cluster_domain: &str) -> Vec<String> {
        let svc = &self.webhook_service;
        let mut names = vec![
            format!("{svc}.{namespace}.svc"),
            format!("{svc}.{namespace}.svc.{cluster_domain}"),
            format!("{svc}.{namespace}"),
            svc.clone(),
            "localhost".into(),
        ];
        if let Some(host) = self
            .identity_authority_host
            .as_deref()
            .and_then(|h| h.strip_prefix("https://"))
            .map(|h| h.split([':', '/']).next().unwrap_or(h).to_string())
            .filter(|h| h.parse::<std::net::IpAddr>().is_err() && !names.contains(h))
        {
            names.push(host);
        }
        names
    }
}

/// The keys as stored, or a new ring (created in the Secret) when there is none.
async fn load_ring(api: &Api<Secret>, namespace: &str, now: i64) -> anyhow::Result<KeyRing> {
    if let Some(s) = api.get_opt(SIGNING_SECRET).await? {
        return ring_of(&s);
    }
    let mut ring = KeyRing::default();
    ring.rotate(now)?;
    let secret = signing_secret(namespace, &ring, None)?;
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(ring),
        // Another replica made it first: use theirs.
        Err(kube::Error::Api(e)) if e.code == 409 => ring_of(&api.get(SIGNING_SECRET).await?),
        Err(e) => Err(e.into()),
    }
}

fn ring_of(secret: &Secret) -> anyhow::Result<KeyRing> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEYS_FIELD))
        .ok_or_else(|| anyhow::anyhow!("Secret {SIGNING_SECRET} has no {KEYS_FIELD}"))?;
    Ok(KeyRing::from_json(&bytes.0)?)
}

fn signing_secret(
    namespace: &str,
    ring: &KeyRing,
    resource_version: Option<String>,
) -> anyhow::Result<Secret> {
    let json = ring.to_json()?;
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(SIGNING_SECRET.into()),
            namespace: Some(namespace.into()),
            resource_version,
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/part-of".into(),
                "kvault".into(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            KEYS_FIELD.into(),
            ByteString(json.to_vec()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    })
}

/// Re-reads the keys, rotates them when due (one replica wins the write; the others read
/// its ring on their next pass) and installs them.
async fn refresh_ring(
    api: &Api<Secret>,
    namespace: &str,
    ring: &RwLock<KeyRing>,
    now: i64,
) -> anyhow::Result<()> {
    let secret = api.get(SIGNING_SECRET).await?;
    let mut stored = ring_of(&secret)?;
    if stored.rotate(now)? {
        let replacement =
            signing_secret(namespace, &stored, secret.metadata.resource_version.clone())?;
        match api
            .replace(SIGNING_SECRET, &PostParams::default(), &replacement)
            .await
        {
            Ok(_) => tracing::info!("rotated the token service's signing keys"),
            Err(kube::Error::Api(e)) if e.code == 409 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Ok(mut current) = ring.write() {
        *current = stored;
    }
    Ok(())
}

/// Writes the cluster's service-account JWKS (fetched through the API server, which the
/// operator may read) to `file`, where the token service's assertion check reads it.
async fn write_cluster_jwks(client: &Client, file: &PathBuf) -> anyhow::Result<()> {
    let request = axum::http::Request::get(super::CLUSTER_JWKS_API_PATH)
        .body(Vec::new())
        .context("building the JWKS request")?;
    let jwks = client.request_text(request).await?;
    let tmp = file.with_extension("tmp");
    tokio::fs::write(&tmp, jwks.as_bytes()).await?;
    tokio::fs::rename(&tmp, file).await?;
    Ok(())
}

struct AnnotatedClientIds(ServiceAccountDirectory);

#[async_trait::async_trait]
impl ClientIds for AnnotatedClientIds {
    async fn annotated_client_id(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, String> {
        let sa = self
            .0
            .get(namespace, name)
            .await
            .map_err(|e| e.to_string())?;
        Ok(sa.and_then(|sa| {
            sa.metadata
                .annotations
                .and_then(|a| a.get(webhook::patch::CLIENT_ID_ANNOTATION).cloned())
        }))
    }
}

/// Sets the webhook configuration's `caBundle` to the operator CA (the chart installs it
/// empty). A missing configuration is not an error: workload identity may be installed
/// without the webhook.
async fn publish_webhook_ca(client: &Client, ca_pem: &str) -> anyhow::Result<()> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let Some(existing) = api.get_opt(webhook::WEBHOOK_CONFIGURATION).await? else {
        tracing::info!(
            configuration = webhook::WEBHOOK_CONFIGURATION,
            "no MutatingWebhookConfiguration to give the CA bundle to"
        );
        return Ok(());
    };
    let bundle = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca_pem);
    let hooks: Vec<serde_json::Value> = existing
        .webhooks
        .unwrap_or_default()
        .iter()
        .map(|w| serde_json::json!({"name": w.name, "clientConfig": {"caBundle": bundle}}))
        .collect();
    let patch = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": webhook::WEBHOOK_CONFIGURATION},
        "webhooks": hooks,
    });
    api.patch(
        webhook::WEBHOOK_CONFIGURATION,
        &PatchParams::apply(CA_BUNDLE_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Everything workload identity needs in one operator replica, running until `shutdown`.
pub struct Running {
    pub ring: Arc<RwLock<KeyRing>>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts the token service, the webhook and `extra` (the SecretSync event receiver) on
/// `opts.https_listen`, and the key and JWKS refresh. Returns the key ring the controller publishes to vaults.
pub async fn start(
    client: &Client,
    opts: &IdentityOptions,
    settings: &super::OperatorSettings,
    ca: Arc<super::ca::Ca>,
    registry: &mut prometheus_client::registry::Registry,
    extra: axum::Router,
) -> anyhow::Result<Running> {
    let ns = settings.namespace.clone();
    let now = crate::clock::SystemClock.now_secs();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let ring = load_ring(&secrets, &ns, now)
        .await
        .with_context(|| format!("cannot load or create Secret {ns}/{SIGNING_SECRET}"))?;
    let ring = Arc::new(RwLock::new(ring));

    let dir = std::env::temp_dir().join(format!("kvault-operator-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let jwks_file = dir.join("cluster-jwks.json");
    write_cluster_jwks(client, &jwks_file)
        .await
        .context("cannot fetch the cluster's service-account keys (/openid/v1/jwks)")?;
    let names = opts.dns_names(&ns, &settings.cluster_domain);
    let (cert_file, key_file) = (dir.join("tls.crt"), dir.join("tls.key"));
    issue_serving_certificate(&ca, &names, now, &cert_file, &key_file)?;

    let authority_host = opts.authority_host(&ns);
    let directory = ServiceAccountDirectory::new(client.clone());
    let config = IdentityConfig {
        issuer: format!("{authority_host}/{}", opts.workload_identity_tenant),
        tenant: opts.workload_identity_tenant.clone(),
        authority_host: authority_host.clone(),
        assertion_issuers: vec![IssuerConfig {
            issuer: settings.cluster_issuer.clone(),
            jwks: JwksSource::File(jwks_file.clone()),
            service_accounts: true,
            speaks_for: None,
        }],
        assertion_audience: opts.workload_identity_audience.clone(),
        token_ttl: crate::identity::DEFAULT_TOKEN_TTL,
        jwks_refresh_interval: Duration::from_secs(10),
    };
    let audit = crate::server::audit::AuditLog::start(crate::server::audit::AuditSinks {
        stdout: true,
        file: None,
    })
    .await?;
    let metrics = IdentityMetrics::register(registry, "kvault_operator_");
    let service = TokenService::new(
        config,
        ring.clone(),
        Some(Arc::new(AnnotatedClientIds(directory.clone()))),
        audit,
        metrics,
        crate::clock::system(),
    )
    .await?;
    let injection = Injection {
        authority_host,
        tenant_id: opts.workload_identity_tenant.clone(),
        audience: opts.workload_identity_audience.clone(),
        default_token_expiration_secs: opts.workload_identity_token_expiration,
        ca_config_map: super::desired::CA_CONFIG_MAP.into(),
    };
    let hooks = WebhookState::new(injection, client.clone(), ca.cert_pem.clone(), directory);
    let router = Arc::new(service)
        .router()
        .merge(webhook::router(hooks))
        .merge(extra);

    let certs = Arc::new(crate::server::tls::ReloadingCert::load(
        cert_file.clone(),
        key_file.clone(),
    )?);
    let watcher = certs.spawn_watcher(Duration::from_secs(10));
    let tls = crate::server::tls::server_config(certs, crate::server::tls::TlsMinVersion::Tls12)?;
    let listener = tokio::net::TcpListener::bind(opts.https_listen)
        .await
        .with_context(|| format!("cannot listen on {} (--https-listen)", opts.https_listen))?;
    if let Err(e) = publish_webhook_ca(client, &ca.cert_pem).await {
        tracing::warn!(error = %e, "cannot set the webhook configuration's CA bundle");
    }
    let serving = tokio::spawn(crate::identity::serve(
        listener,
        tls,
        router,
        crate::listener::Limits::default(),
        std::future::pending(),
    ));
    let refresh = {
        let (client, ring, ca_pem) = (client.clone(), ring.clone(), ca.cert_pem.clone());
        let mut issued = std::time::Instant::now();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                let now = crate::clock::SystemClock.now_secs();
                if issued.elapsed() >= SERVING_CERT_RENEW_AFTER {
                    match issue_serving_certificate(&ca, &names, now, &cert_file, &key_file) {
                        Ok(()) => {
                            issued = std::time::Instant::now();
                            tracing::info!("renewed the token service's serving certificate");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot renew the token service's serving certificate")
                        }
                    }
                }
                if let Err(e) = refresh_ring(&secrets, &ns, &ring, now).await {
                    tracing::warn!(error = %e, "cannot refresh the token service's signing keys");
                }
                if let Err(e) = write_cluster_jwks(&client, &jwks_file).await {
                    tracing::warn!(error = %e, "cannot refresh the cluster's service-account keys");
                }
                if let Err(e) = publish_webhook_ca(&client, &ca_pem).await {
                    tracing::warn!(error = %e, "cannot set the webhook configuration's CA bundle");
                }
            }
        })
    };
    Ok(Running {
        ring,
        tasks: vec![serving, refresh, watcher],
    })
}

/// A serving certificate from the operator CA, written key first and each file replaced
/// atomically (the listener's watcher swaps it in once both match).
fn issue_serving_certificate(
    ca: &super::ca::Ca,
    names: &[String],
    now: i64,
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
) -> anyhow::Result<()> {
    let (cert_pem, key_pem) = ca.operator_serving_pair(names.to_vec(), now)?;
    write_replacing(key_file, key_pem.as_bytes(), 0o600)?;
    write_replacing(cert_file, cert_pem.as_bytes(), 0o644)?;
    Ok(())
}

fn write_replacing(path: &std::path::Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> IdentityOptions {
        IdentityOptions {
            workload_identity: true,
            https_listen: "127.0.0.1:0".parse().unwrap(),
            webhook_service: "kv-kvault-operator-webhook".into(),
            identity_authority_host: None,
            workload_identity_tenant: "adfs".into(),
            workload_identity_audience: exchange::DEFAULT_AUDIENCE.into(),
            workload_identity_token_expiration: 3600,
        }
    }

    #[test]
    fn the_authority_is_the_webhook_service_on_port_443() {
        let o = opts();
        assert_eq!(
            o.settings("kvault-system").unwrap().authority,
            "https://kv-kvault-operator-webhook.kvault-system.svc/adfs"
        );
        let names = o.dns_names("kvault-system", "cluster.local");
        assert!(names.contains(&"kv-kvault-operator-webhook.kvault-system.svc".to_string()));
        assert!(
            names.contains(
                &"kv-kvault-operator-webhook.kvault-system.svc.cluster.local".to_string()
            )
        );
        let off = IdentityOptions {
            workload_identity: false,
            ..opts()
        };
        assert!(off.settings("kvault-system").is_none());
    }

    #[test]
    fn a_given_authority_host_is_named_in_the_certificate() {
        let o = IdentityOptions {
            identity_authority_host: Some("https://identity.example.test:9443/".into()),
            ..opts()
        };
        assert_eq!(
            o.settings("ns").unwrap().authority,
            "https://identity.example.test:9443/adfs"
        );
        assert!(
            o.dns_names("ns", "cluster.local")
                .contains(&"identity.example.test".to_string())
        );
    }

    #[test]
    fn the_serving_certificate_names_the_service_and_is_replaced_in_place() {
        use std::os::unix::fs::PermissionsExt;
        let ca = super::super::ca::Ca::generate(1_700_000_000).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let names = opts().dns_names("kvault-system", "cluster.local");
        issue_serving_certificate(&ca, &names, 1_700_000_000, &cert, &key).unwrap();
        let first = std::fs::read(&cert).unwrap();
        issue_serving_certificate(&ca, &names, 1_700_000_100, &cert, &key).unwrap();
        assert_ne!(first, std::fs::read(&cert).unwrap());
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loaded = crate::server::tls::load_certified_key(&cert, &key).unwrap();
        let leaf = loaded.cert.first().unwrap();
        let parsed = crate::crypto::x509::parse(leaf.as_ref()).unwrap();
        assert!(
            parsed
                .subject
                .contains("kv-kvault-operator-webhook.kvault-system.svc"),
            "{}",
            parsed.subject
        );
        assert!(!parsed.is_ca);
    }

    #[test]
    fn the_signing_secret_round_trips_its_ring() {
        let mut ring = KeyRing::default();
        ring.rotate(10).unwrap();
        let s = signing_secret("kvault-system", &ring, Some("7".into())).unwrap();
        assert_eq!(s.metadata.resource_version.as_deref(), Some("7"));
        let back = ring_of(&s).unwrap();
        assert_eq!(back.keys()[0].kid, ring.keys()[0].kid);
    }
}
