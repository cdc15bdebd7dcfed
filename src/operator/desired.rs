//! Desired objects of one vault: spec in, manifests out. Pure; the controller applies them
//! with server-side apply.
//!
//! | object | name | owned by the Vault |
//! |---|---|---|
//! | ServiceAccount | `<vault>` | yes |
//! | Service | `<vault>` (443 → 8443, 9090 metrics) | yes |
//! | StatefulSet | `<vault>` (PVC template `data`, kept when the set goes) | yes |
//! | NetworkPolicy | `<vault>` | yes |
//! | PodDisruptionBudget | `<vault>` (replicas > 1 only) | yes |
//! | TLS Secret | `<vault>-tls` | yes |
//! | cluster JWKS ConfigMap | `<vault>-cluster-jwks` | yes |
//! | master-key Secret | `<vault>-master-key` (immutable, created once) | **no**: soft delete keeps it |

use super::OperatorSettings;
use super::policy::CLUSTER_JWKS_PATH;
use crate::api::{AuditDestination, PublicNetworkAccess, Vault};
use crate::crypto::x509::CertRequest;
use crate::policy::{DefaultAction, TlsVersion};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, EnvVarSource, PodAffinityTerm, PodAntiAffinity, SecretKeySelector,
    WeightedPodAffinityTerm,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    HTTPGetAction, KeyToPath, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret,
    SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use std::collections::BTreeMap;

/// The server's HTTPS port in the pod; the Service maps 443 to it.
pub const HTTPS_PORT: i32 = 8443;
/// The server's plain-HTTP Prometheus port.
pub const METRICS_PORT: i32 = 9090;
/// The non-root user and group the server runs as (and owns the data volume as).
pub const RUN_AS: i64 = 65532;
pub const HEALTH_PATH: &str = "/_kvault/health";

pub const TLS_DIR: &str = "/etc/kvault/tls";
pub const MASTER_KEY_DIR: &str = "/etc/kvault/master-key";
pub const MASTER_KEY_FILE: &str = "master.key";
pub const DATA_MOUNT: &str = "/var/lib/kvault";
pub const DATA_DIR: &str = "/var/lib/kvault/data";
pub const AUDIT_FILE: &str = "/var/lib/kvault/audit.log";
pub const JWKS_FILE: &str = "jwks.json";
/// Where the PostgreSQL Secret (`password`, `ca.crt`) is mounted.
pub const STORAGE_SECRET_DIR: &str = "/etc/kvault/storage";

/// Labels of the operator's own pods (the chart sets them); the NetworkPolicy always admits
/// them so that a policy push is never locked out.
pub const OPERATOR_POD_LABEL: (&str, &str) = ("app.kubernetes.io/name", "kvault-operator");
/// The ConfigMap holding the operator CA's certificate, in every namespace with a vault.
pub const CA_CONFIG_MAP: &str = "kvault-ca";
/// Annotation on the TLS Secret: when its certificate expires (RFC 3339).
pub const NOT_AFTER_ANNOTATION: &str = "kvault.dev/not-after";
/// Label on every object of a vault.
pub const VAULT_LABEL: &str = "kvault.dev/vault";
/// Label on the server TLS Secret, so the operator can watch just those Secrets (never the
/// master keys) and repair one at once when it is changed or deleted.
pub const SECRET_ROLE_LABEL: (&str, &str) = ("kvault.dev/secret", "tls");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DesiredError {
    #[error("the Vault has no name, namespace or uid yet")]
    Unnamed,
    #[error("network.ipRules entry '{0}' is not an IP address or CIDR")]
    IpRule(String),
    #[error(
        "vault name '{0}' cannot name a Service and a StatefulSet: use a DNS label of at most \
         {MAX_VAULT_NAME} characters starting with a letter"
    )]
    Name(String),
}

/// Longest vault name: the StatefulSet's pods and revision labels add a suffix.
pub const MAX_VAULT_NAME: usize = 52;

/// The CRD cannot check `metadata.name` (kube-derive emits no root-level rule), so the
/// operator does, before creating anything.
pub fn check_vault_name(name: &str) -> Result<(), DesiredError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= MAX_VAULT_NAME
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.last() != Some(&b'-')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(DesiredError::Name(name.to_string()))
    }
}

pub fn master_key_secret_name(vault: &str) -> String {
    format!("{vault}-master-key")
}
pub fn tls_secret_name(vault: &str) -> String {
    format!("{vault}-tls")
}
pub fn jwks_config_map_name(vault: &str) -> String {
    format!("{vault}-cluster-jwks")
}

/// The labels that select a vault's pods (never change: StatefulSet selectors are
/// immutable).
pub fn selector_labels(vault: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "kvault".into()),
        ("app.kubernetes.io/instance".into(), vault.into()),
        ("app.kubernetes.io/component".into(), "vault".into()),
    ])
}

/// Every object of a vault carries these.
pub fn labels(vault: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(vault);
    l.insert("app.kubernetes.io/part-of".into(), "kvault".into());
    l.insert(
        "app.kubernetes.io/managed-by".into(),
        super::FIELD_MANAGER.into(),
    );
    l.insert(VAULT_LABEL.into(), vault.into());
    l
}

/// Name, namespace and the Vault's controller owner reference.
struct Identity {
    name: String,
    namespace: String,
    owner: OwnerReference,
}

fn identity(vault: &Vault) -> Result<Identity, DesiredError> {
    let name = vault.metadata.name.clone().ok_or(DesiredError::Unnamed)?;
    check_vault_name(&name)?;
    let namespace = vault
        .metadata
        .namespace
        .clone()
        .ok_or(DesiredError::Unnamed)?;
    let owner = vault
        .controller_owner_ref(&())
        .ok_or(DesiredError::Unnamed)?;
    Ok(Identity {
        name,
        namespace,
        owner,
    })
}

fn meta(id: &Identity, name: String, owned: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(id.namespace.clone()),
        labels: Some(labels(&id.name)),
        owner_references: owned.then(|| vec![id.owner.clone()]),
        ..Default::default()
    }
}

/// Host names the server certificate covers.
pub fn certificate_sans(vault: &str, namespace: &str, cluster_domain: &str) -> Vec<String> {
    vec![
        format!("{vault}.{namespace}.svc"),
        format!("{vault}.{namespace}.svc.{cluster_domain}"),
        format!("{vault}.{namespace}"),
        vault.to_string(),
    ]
}

/// Server certificates live 90 days and are renewed when fewer than 30 remain.
pub const CERT_VALIDITY_MONTHS: u32 = 3;
pub const CERT_RENEW_BEFORE_SECS: i64 = 30 * 86_400;

/// What the operator's CA signs for the vault's HTTPS endpoint.
pub fn server_certificate_request(
    vault: &Vault,
    settings: &OperatorSettings,
    now: i64,
) -> Result<CertRequest, DesiredError> {
    let id = identity(vault)?;
    let sans = certificate_sans(&id.name, &id.namespace, &settings.cluster_domain);
    Ok(CertRequest {
        subject: format!("CN={}", sans.first().map_or("", String::as_str)),
        dns_names: sans,
        key_usage: vec!["digitalSignature".into(), "keyEncipherment".into()],
        ekus: vec!["1.3.6.1.5.5.7.3.1".into()],
        validity_months: CERT_VALIDITY_MONTHS,
        now,
        ..Default::default()
    })
}

/// Whether a certificate expiring at `not_after` (unix seconds) must be replaced now.
pub fn certificate_needs_renewal(not_after: Option<i64>, now: i64) -> bool {
    not_after.is_none_or(|t| t - now < CERT_RENEW_BEFORE_SECS)
}

pub fn service_account(vault: &Vault) -> Result<ServiceAccount, DesiredError> {
    let id = identity(vault)?;
    Ok(ServiceAccount {
        metadata: meta(&id, id.name.clone(), true),
        // The server never talks to the API server.
        automount_service_account_token: Some(false),
        ..Default::default()
    })
}

pub fn service(vault: &Vault) -> Result<Service, DesiredError> {
    let id = identity(vault)?;
    let public = vault.spec.network.public_network_access == PublicNetworkAccess::Enabled;
    Ok(Service {
        metadata: meta(&id, id.name.clone(), true),
        spec: Some(ServiceSpec {
            type_: Some(if public { "LoadBalancer" } else { "ClusterIP" }.into()),
            selector: Some(selector_labels(&id.name)),
            ports: Some(vec![
                ServicePort {
                    name: Some("https".into()),
                    port: 443,
                    target_port: Some(IntOrString::String("https".into())),
                    protocol: Some("TCP".into()),
                    app_protocol: Some("https".into()),
                    ..Default::default()
                },
                ServicePort {
                    name: Some("metrics".into()),
                    port: METRICS_PORT,
                    target_port: Some(IntOrString::String("metrics".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The `kvault server` command line.
pub fn server_args(
    vault: &Vault,
    settings: &OperatorSettings,
) -> Result<Vec<String>, DesiredError> {
    let url = vault.url().ok_or(DesiredError::Unnamed)?;
    let spec = &vault.spec;
    let tls_min = match spec.tls.min_version {
        TlsVersion::Tls12 => "1.2",
        TlsVersion::Tls13 => "1.3",
    };
    let mut args: Vec<String> = [
        "server",
        "--listen",
        &format!("0.0.0.0:{HTTPS_PORT}"),
        "--url",
        &url,
        "--tls-cert",
        &format!("{TLS_DIR}/tls.crt"),
        "--tls-key",
        &format!("{TLS_DIR}/tls.key"),
        "--tls-min-version",
        tls_min,
        "--master-key-file",
        &format!("{MASTER_KEY_DIR}/{MASTER_KEY_FILE}"),
        // The cluster issuer speaks for service accounts (the operator's own included); the
        // spec's people issuers come with the pushed policy document.
        "--cluster-issuer",
        &format!("{}={CLUSTER_JWKS_PATH}", settings.cluster_issuer),
        "--admin-principal",
        &settings.admin_principal(),
        "--retention-days",
        &spec.soft_delete.retention_days.to_string(),
        "--metrics-listen",
        &format!("0.0.0.0:{METRICS_PORT}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(ts) = &settings.token_service {
        // The challenge sends the SDKs to the token service (Go and Java check its tenant).
        args.extend(["--authority".to_string(), ts.authority.clone()]);
    }
    match &spec.storage.postgres {
        // The URL comes from the Secret as KVAULT_STORAGE (see `stateful_set`).
        Some(pg) => {
            args.extend([
                "--storage-password-file".into(),
                format!("{STORAGE_SECRET_DIR}/password"),
                "--storage-schema".into(),
                match &pg.schema {
                    Some(s) => s.clone(),
                    None => postgres_schema(
                        vault.metadata.namespace.as_deref().unwrap_or_default(),
                        vault.metadata.name.as_deref().unwrap_or_default(),
                    ),
                },
                "--storage-max-connections".into(),
                pg.max_connections.to_string(),
            ]);
            if pg.ca_from_secret {
                args.extend([
                    "--storage-ca-file".into(),
                    format!("{STORAGE_SECRET_DIR}/ca.crt"),
                ]);
            }
        }
        None => args.extend(["--data-dir".into(), DATA_DIR.into()]),
    }
    if spec.soft_delete.purge_protection {
        args.push("--purge-protection".into());
    }
    let audit: Vec<&str> = spec
        .audit
        .destinations
        .iter()
        .map(|d| match d {
            AuditDestination::Stdout => "stdout",
            AuditDestination::File => AUDIT_FILE,
        })
        .collect();
    args.push("--audit-log".into());
    args.push(if audit.is_empty() {
        "none".into()
    } else {
        audit.join(",")
    });
    Ok(args)
}

/// The default PostgreSQL schema of a vault: `kv_<namespace>_<name>` in identifier
/// characters, shortened with a hash when too long (both parts are DNS labels, so two
/// vaults never map to one schema unless the hash collides).
pub fn postgres_schema(namespace: &str, name: &str) -> String {
    let clean = |s: &str| s.replace(['-', '.'], "_");
    let full = format!("kv_{}_{}", clean(namespace), clean(name));
    if full.len() <= 48 {
        return full;
    }
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{namespace}/{name}").as_bytes(),
    );
    let hash: String = d
        .as_ref()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{}_{hash}", full.get(..39).unwrap_or(&full))
}

fn https_probe(period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(HEALTH_PATH.into()),
            port: IntOrString::String("https".into()),
            scheme: Some("HTTPS".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity("50m".into())),
            ("memory".into(), Quantity("32Mi".into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".into(),
            Quantity("256Mi".into()),
        )])),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..Default::default()
    }
}

fn secret_volume(name: &str, secret: String, items: &[(&str, &str)]) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            default_mode: Some(0o400),
            items: Some(
                items
                    .iter()
                    .map(|(k, p)| KeyToPath {
                        key: (*k).into(),
                        path: (*p).into(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Replicas prefer different nodes, so that losing one node leaves the vault serving.
fn spread_replicas(name: &str) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector_labels(name)),
                            ..Default::default()
                        }),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..Default::default()
                    },
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `192.0.2.7` → `192.0.2.7/32`; a CIDR is normalised to its network address.
fn cidr(rule: &str) -> Result<String, DesiredError> {
    let t = rule.trim();
    t.parse::<ipnet::IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map(|n| n.to_string())
        .map_err(|_| DesiredError::IpRule(rule.to_string()))
}

fn port(name: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// The vault firewall as a NetworkPolicy on the vault's pods (ingress only: the server
/// needs egress to its token issuers).
///
/// - `defaultAction: Allow`: every source may reach HTTPS and metrics.
/// - `defaultAction: Deny`: HTTPS only from the operator, the `ipRules` and the
///   `allowedPeers`; metrics from pods of any namespace (they carry no secret data).
pub fn network_policy(
    vault: &Vault,
    settings: &OperatorSettings,
) -> Result<NetworkPolicy, DesiredError> {
    let id = identity(vault)?;
    let net = &vault.spec.network;
    let ingress = match net.default_action {
        DefaultAction::Allow => vec![NetworkPolicyIngressRule {
            from: None,
            ports: Some(vec![port("https"), port("metrics")]),
        }],
        DefaultAction::Deny => {
            let mut from = vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        "kubernetes.io/metadata.name".into(),
                        settings.namespace.clone(),
                    )])),
                    ..Default::default()
                }),
                pod_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        OPERATOR_POD_LABEL.0.into(),
                        OPERATOR_POD_LABEL.1.into(),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }];
            for rule in &net.ip_rules {
                from.push(NetworkPolicyPeer {
                    ip_block: Some(IPBlock {
                        cidr: cidr(rule)?,
                        except: None,
                    }),
                    ..Default::default()
                });
            }
            for peer in &net.allowed_peers {
                from.push(NetworkPolicyPeer {
                    namespace_selector: peer.namespace_selector.clone(),
                    pod_selector: peer.pod_selector.clone(),
                    ..Default::default()
                });
            }
            vec![
                NetworkPolicyIngressRule {
                    from: Some(from),
                    ports: Some(vec![port("https")]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector::default()),
                        ..Default::default()
                    }]),
                    ports: Some(vec![port("metrics")]),
                },
            ]
        }
    };
    Ok(NetworkPolicy {
        metadata: meta(&id, id.name.clone(), true),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&id.name)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            egress: None,
        }),
    })
}

/// Only with more than one replica: at most one pod down at a time.
pub fn pod_disruption_budget(vault: &Vault) -> Result<Option<PodDisruptionBudget>, DesiredError> {
    let id = identity(vault)?;
    if vault.spec.replicas <= 1 {
        return Ok(None);
    }
    Ok(Some(PodDisruptionBudget {
        metadata: meta(&id, id.name.clone(), true),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&id.name)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// The master-key Secret: made once (the caller generates the key), immutable, and not
/// owned by the Vault, so deleting the Vault keeps it for the retention period. Never log
/// or `Debug`-print the result.
pub fn master_key_secret(vault: &Vault, key_base64: &str) -> Result<Secret, DesiredError> {
    let id = identity(vault)?;
    Ok(Secret {
        metadata: meta(&id, master_key_secret_name(&id.name), false),
        immutable: Some(true),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            MASTER_KEY_FILE.into(),
            ByteString(key_base64.as_bytes().to_vec()),
        )])),
        ..Default::default()
    })
}

/// The server's certificate Secret (`kubernetes.io/tls`, with the CA as `ca.crt`), annotated
/// with its expiry so that renewal needs no parsing.
pub fn tls_secret(
    vault: &Vault,
    cert_chain_pem: &str,
    key_pem: &str,
    ca_pem: &str,
    not_after_rfc3339: &str,
) -> Result<Secret, DesiredError> {
    let id = identity(vault)?;
    let mut metadata = meta(&id, tls_secret_name(&id.name), true);
    if let Some(l) = metadata.labels.as_mut() {
        l.insert(SECRET_ROLE_LABEL.0.into(), SECRET_ROLE_LABEL.1.into());
    }
    metadata.annotations = Some(BTreeMap::from([(
        NOT_AFTER_ANNOTATION.into(),
        not_after_rfc3339.into(),
    )]));
    Ok(Secret {
        metadata,
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            (
                "tls.crt".into(),
                ByteString(cert_chain_pem.as_bytes().to_vec()),
            ),
            ("tls.key".into(), ByteString(key_pem.as_bytes().to_vec())),
            ("ca.crt".into(), ByteString(ca_pem.as_bytes().to_vec())),
        ])),
        ..Default::default()
    })
}

/// The cluster's service-account JWKS for the server (the API server's
/// `/openid/v1/jwks`, fetched by the operator).
pub fn cluster_jwks_config_map(vault: &Vault, jwks_json: &str) -> Result<ConfigMap, DesiredError> {
    let id = identity(vault)?;
    Ok(ConfigMap {
        metadata: meta(&id, jwks_config_map_name(&id.name), true),
        data: Some(BTreeMap::from([(JWKS_FILE.into(), jwks_json.into())])),
        ..Default::default()
    })
}

/// `kvault-ca` in a vault's namespace (and, from the workload-identity webhook, in the
/// namespace of every pod it injects): the CA certificate clients trust (`ca.crt`), and a
/// bundle of the operator image's system roots plus that CA (`ca-bundle.crt`) for the
/// runtimes whose `SSL_CERT_FILE`/`REQUESTS_CA_BUNDLE` replace their roots. The same two
/// keys from every caller: all apply it with the same field manager, and a key one of them
/// left out would be removed by the next apply of the other.
pub fn ca_config_map(namespace: &str, ca_pem: &str) -> ConfigMap {
    ca_config_map_with_roots(namespace, ca_pem, system_roots())
}

/// The system roots of the operator's image, read once per process (`None`: no bundle found;
/// `ca-bundle.crt` then holds the kvault CA alone).
fn system_roots() -> Option<&'static str> {
    static ROOTS: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(crate::crypto::pem::system_ca_bundle)
        .as_deref()
}

/// [`ca_config_map`] with the system roots given. Pure.
pub fn ca_config_map_with_roots(
    namespace: &str,
    ca_pem: &str,
    system_roots: Option<&str>,
) -> ConfigMap {
    let mut bundle = system_roots.unwrap_or_default().to_string();
    if !bundle.is_empty() && !bundle.ends_with('\n') {
        bundle.push('\n');
    }
    bundle.push_str(ca_pem);
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(CA_CONFIG_MAP.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/part-of".into(), "kvault".into()),
                (
                    "app.kubernetes.io/managed-by".into(),
                    super::FIELD_MANAGER.into(),
                ),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            (CA_FILE_KEY.into(), ca_pem.into()),
            (CA_BUNDLE_KEY.into(), bundle),
        ])),
        ..Default::default()
    }
}

/// The keys of `kvault-ca`.
pub const CA_FILE_KEY: &str = "ca.crt";
pub const CA_BUNDLE_KEY: &str = "ca-bundle.crt";

/// Everything applied on every reconcile (the Secrets are handled on their own: the master
/// key is created once, the certificate renewed on its schedule).
#[derive(Debug, Clone)]
pub struct DesiredObjects {
    pub service_account: ServiceAccount,
    pub service: Service,
    pub stateful_set: StatefulSet,
    pub network_policy: NetworkPolicy,
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
}

pub fn desired_objects(
    vault: &Vault,
    settings: &OperatorSettings,
) -> Result<DesiredObjects, DesiredError> {
    Ok(DesiredObjects {
        service_account: service_account(vault)?,
        service: service(vault)?,
        stateful_set: stateful_set(vault, settings)?,
        network_policy: network_policy(vault, settings)?,
        pod_disruption_budget: pod_disruption_budget(vault)?,
    })
}

mod stateful_set;
pub use stateful_set::stateful_set;

#[cfg(test)]
mod tests;
