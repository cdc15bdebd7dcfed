//! The workload-identity injection as a JSON Patch: a pure function of the pod, its
//! ServiceAccount and the webhook's settings.
//!
//! Modelled on Azure Workload Identity's mutating webhook (`pkg/webhook/webhook.go` of
//! Azure/azure-workload-identity), so that manifests written for it apply unchanged; the
//! variables point at kvault's token service instead of Entra ID.
//!
//! # Honoured
//!
//! - the pod label `azure.workload.identity/use: "true"`: only such pods are mutated (any
//!   other value, or no label, gives an empty patch). The chart's objectSelector matches the
//!   same label, so the API server only calls for labelled pods; the check here is the second
//!   line.
//! - the ServiceAccount annotation `azure.workload.identity/client-id` → `AZURE_CLIENT_ID`.
//!   Without it, kvault's convention: `system:serviceaccount:<namespace>:<name>` (the token
//!   service accepts that as the client id of the pod's own service account).
//! - the ServiceAccount annotation `azure.workload.identity/tenant-id` → `AZURE_TENANT_ID`
//!   (default: the webhook's tenant, `adfs`).
//! - the pod annotation `azure.workload.identity/skip-containers`: semicolon-separated
//!   container names (init containers included) that get neither variables nor mounts.
//! - `azure.workload.identity/service-account-token-expiration` on the pod, else on the
//!   ServiceAccount: the projected token's `expirationSeconds`, 3600 to 86400 (as Azure's);
//!   anything else refuses the pod with a message naming the annotation.
//!
//! # Not honoured
//!
//! - `azure.workload.identity/inject-proxy-sidecar` and `…/proxy-sidecar-port`: ignored.
//!   Azure's proxy sidecar intercepts IMDS calls for SDKs too old to read the federated token
//!   file; it needs a privileged init container rewriting the pod's iptables, and kvault
//!   serves no IMDS endpoint for it to forward to. Such pods get the same injection as
//!   others (current SDKs use it).
//!
//! # What a pod gets
//!
//! In every container and init container not skipped: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
//! `AZURE_FEDERATED_TOKEN_FILE` (`/var/run/secrets/azure/tokens/azure-identity-token`, Azure
//! Workload Identity's long-standing path), `AZURE_AUTHORITY_HOST` (the token service), and
//! CA trust for the token service's and the vaults' certificates: `NODE_EXTRA_CA_CERTS` (the
//! kvault CA alone: Node adds it to its own roots) and `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`
//! (a bundle of the operator image's system roots plus the kvault CA, since both variables
//! *replace* the roots: OpenSSL-based runtimes (Python, Ruby, .NET on Linux), Go and rustls'
//! native roots read `SSL_CERT_FILE`, Python `requests` reads `REQUESTS_CA_BUNDLE`). Java
//! reads none of them: it needs the CA in a truststore (`javax.net.ssl.trustStore`), which
//! the webhook does not touch. A variable the container already sets is left as it is: the
//! user wins. Read-only mounts of the token volume at `/var/run/secrets/azure/tokens` and of
//! the CA volume at `/var/run/secrets/kvault/ca` (unless the container already mounts a
//! volume of that name or something at that path).
//!
//! In the pod: the volume `azure-identity-token` (a projected service-account token for the
//! workload-identity audience) and `kvault-ca` (the ConfigMap the webhook publishes in the
//! pod's namespace, keys `ca.crt` and `ca-bundle.crt`), unless volumes of those names exist.
//!
//! Idempotent: the patch of an already injected pod is empty, so the API server's
//! reinvocation (`reinvocationPolicy: IfNeeded`) changes nothing. Ephemeral containers are
//! not touched (they are not part of a pod's CREATE).

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EnvVar, KeyToPath, Pod, ProjectedVolumeSource,
    ServiceAccount, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use serde_json::Value;
use std::collections::BTreeMap;

/// The pod label that opts a pod in (Azure Workload Identity's).
pub const USE_LABEL: &str = "azure.workload.identity/use";
/// ServiceAccount annotation: the client id the SDK sends.
pub const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
/// ServiceAccount annotation: the tenant the SDK names in the authority URL.
pub const TENANT_ID_ANNOTATION: &str = "azure.workload.identity/tenant-id";
/// Pod annotation: `;`-separated names of containers to leave alone.
pub const SKIP_CONTAINERS_ANNOTATION: &str = "azure.workload.identity/skip-containers";
/// Pod or ServiceAccount annotation: the projected token's lifetime in seconds.
pub const TOKEN_EXPIRATION_ANNOTATION: &str =
    "azure.workload.identity/service-account-token-expiration";
/// Azure's bounds of that lifetime.
pub const MIN_TOKEN_EXPIRATION_SECS: i64 = 3600;
pub const MAX_TOKEN_EXPIRATION_SECS: i64 = 86400;

/// The projected token volume, where it is mounted, and its file.
pub const TOKEN_VOLUME: &str = "azure-identity-token";
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/azure/tokens";
pub const TOKEN_FILE: &str = "azure-identity-token";
/// The CA volume (from the `kvault-ca` ConfigMap) and where it is mounted.
pub const CA_VOLUME: &str = "kvault-ca";
pub const CA_MOUNT_PATH: &str = "/var/run/secrets/kvault/ca";
/// The ConfigMap keys (and file names) of the kvault CA and of the bundle of system roots
/// plus the kvault CA.
pub const CA_FILE: &str = "ca.crt";
pub const CA_BUNDLE_FILE: &str = "ca-bundle.crt";

/// The environment variable names the webhook sets.
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
pub const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";

/// Azure Workload Identity's defaults, which the chart's `workloadIdentity` values repeat.
pub const DEFAULT_TENANT_ID: &str = "adfs";
pub const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";
pub const DEFAULT_TOKEN_EXPIRATION_SECS: i64 = 3600;

/// What the webhook injects that does not come from the pod or its ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// `AZURE_AUTHORITY_HOST`: the token service, e.g.
    /// `https://kvault-identity.kvault-system.svc`.
    pub authority_host: String,
    /// `AZURE_TENANT_ID` when the ServiceAccount names none (`adfs`: the authority form the
    /// SDKs use without any public-cloud instance discovery).
    pub tenant_id: String,
    /// The projected token's audience (`api://AzureADTokenExchange`, as Azure's).
    pub audience: String,
    /// The projected token's lifetime when no annotation names one (3600).
    pub default_token_expiration_secs: i64,
    /// The ConfigMap with the kvault CA (`kvault-ca`).
    pub ca_config_map: String,
}

/// Why a labelled pod cannot be injected (the webhook refuses it with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("{TOKEN_EXPIRATION_ANNOTATION} on {on}: {value:?} is not a whole number of seconds")]
    TokenExpirationNotANumber { on: String, value: String },
    #[error(
        "{TOKEN_EXPIRATION_ANNOTATION} on {on}: {value} is out of range \
         (from {MIN_TOKEN_EXPIRATION_SECS} to {MAX_TOKEN_EXPIRATION_SECS} seconds)"
    )]
    TokenExpirationOutOfRange { on: String, value: i64 },
}

/// Whether the pod opted in (`azure.workload.identity/use: "true"`, exactly as the
/// webhook configuration's objectSelector matches it).
pub fn wants_injection(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(USE_LABEL))
        .is_some_and(|v| v == "true")
}

/// The pod's service account name (`default` when the pod names none, as the API server's
/// ServiceAccount admission assigns it).
pub fn service_account_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
}

/// The JSON Patch that injects workload identity into `pod`, created in `namespace` (the
/// AdmissionRequest's: a pod made by a controller has no namespace in its object), with its
/// ServiceAccount when it could be read (`None`: it does not exist). Empty for pods that did
/// not opt in and for pods already injected.
pub fn pod_patch(
    pod: &Pod,
    namespace: &str,
    service_account: Option<&ServiceAccount>,
    inj: &Injection,
) -> Result<Patch, PatchError> {
    let Some(spec) = pod.spec.as_ref().filter(|_| wants_injection(pod)) else {
        return Ok(Patch(Vec::new()));
    };
    let pod_annotations = pod.metadata.annotations.as_ref();
    let sa_annotations = service_account.and_then(|sa| sa.metadata.annotations.as_ref());
    let sa_name = service_account_name(pod);
    let expiration = token_expiration(
        pod_annotations,
        sa_annotations,
        &pod_label(pod, namespace),
        &format!("ServiceAccount {namespace}/{sa_name}"),
        inj.default_token_expiration_secs,
    )?;
    let annotation = |on: Option<&BTreeMap<String, String>>, key: &str| {
        on.and_then(|a| a.get(key))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let client_id = annotation(sa_annotations, CLIENT_ID_ANNOTATION)
        .unwrap_or_else(|| format!("system:serviceaccount:{namespace}:{sa_name}"));
    let tenant_id =
        annotation(sa_annotations, TENANT_ID_ANNOTATION).unwrap_or_else(|| inj.tenant_id.clone());
    let skipped: Vec<&str> = pod_annotations
        .and_then(|a| a.get(SKIP_CONTAINERS_ANNOTATION))
        .map(|s| {
            s.split(';')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();

    let env = desired_env(&client_id, &tenant_id, &inj.authority_host);
    let mounts = desired_mounts();
    let mut ops = Vec::new();
    let mut injected_any = false;
    let lists = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("containers", spec.containers.as_slice()),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            if skipped.contains(&c.name.as_str()) {
                continue;
            }
            injected_any = true;
            let base = ["spec".to_string(), list.to_string(), i.to_string()];
            container_ops(&mut ops, &base, c, &env, &mounts);
        }
    }
    if injected_any {
        let volumes = [
            token_volume(&inj.audience, expiration),
            ca_volume(&inj.ca_config_map),
        ];
        let have = spec.volumes.as_deref();
        let missing: Vec<&Volume> = volumes
            .iter()
            .filter(|v| !have.unwrap_or_default().iter().any(|h| h.name == v.name))
            .collect();
        let base = ["spec".to_string(), "volumes".to_string()];
        append_ops(&mut ops, &base, have.is_some(), &missing);
    }
    Ok(Patch(ops))
}

/// `pod <ns>/<name>` (or `<generateName>…` for a pod whose name the API server will pick),
/// for messages.
fn pod_label(pod: &Pod, namespace: &str) -> String {
    match (&pod.metadata.name, &pod.metadata.generate_name) {
        (Some(n), _) if !n.is_empty() => format!("pod {namespace}/{n}"),
        (_, Some(g)) if !g.is_empty() => format!("pod {namespace}/{g}…"),
        _ => format!("a pod in {namespace}"),
    }
}

fn token_expiration(
    pod: Option<&BTreeMap<String, String>>,
    sa: Option<&BTreeMap<String, String>>,
    pod_label: &str,
    sa_label: &str,
    default: i64,
) -> Result<i64, PatchError> {
    let set = |a: Option<&BTreeMap<String, String>>| {
        a.and_then(|a| a.get(TOKEN_EXPIRATION_ANNOTATION))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let (on, value) = match (set(pod), set(sa)) {
        (Some(v), _) => (pod_label.to_string(), v),
        (None, Some(v)) => (sa_label.to_string(), v),
        (None, None) => ("the webhook's default".to_string(), default.to_string()),
    };
    let secs: i64 = value
        .parse()
        .map_err(|_| PatchError::TokenExpirationNotANumber {
            on: on.clone(),
            value: value.clone(),
        })?;
    if !(MIN_TOKEN_EXPIRATION_SECS..=MAX_TOKEN_EXPIRATION_SECS).contains(&secs) {
        return Err(PatchError::TokenExpirationOutOfRange { on, value: secs });
    }
    Ok(secs)
}

fn desired_env(client_id: &str, tenant_id: &str, authority_host: &str) -> Vec<EnvVar> {
    let ca = |file: &str| format!("{CA_MOUNT_PATH}/{file}");
    [
        (AZURE_CLIENT_ID, client_id.to_string()),
        (AZURE_TENANT_ID, tenant_id.to_string()),
        (
            AZURE_FEDERATED_TOKEN_FILE,
            format!("{TOKEN_MOUNT_PATH}/{TOKEN_FILE}"),
        ),
        (AZURE_AUTHORITY_HOST, authority_host.to_string()),
        ("NODE_EXTRA_CA_CERTS", ca(CA_FILE)),
        ("SSL_CERT_FILE", ca(CA_BUNDLE_FILE)),
        ("REQUESTS_CA_BUNDLE", ca(CA_BUNDLE_FILE)),
    ]
    .into_iter()
    .map(|(name, value)| EnvVar {
        name: name.to_string(),
        value: Some(value),
        ..Default::default()
    })
    .collect()
}

fn desired_mounts() -> Vec<VolumeMount> {
    [(TOKEN_VOLUME, TOKEN_MOUNT_PATH), (CA_VOLUME, CA_MOUNT_PATH)]
        .into_iter()
        .map(|(name, path)| VolumeMount {
            name: name.to_string(),
            mount_path: path.to_string(),
            read_only: Some(true),
            ..Default::default()
        })
        .collect()
}

/// The operations for one container at `base` (`/spec/containers/<i>`): the variables it
/// does not set, the mounts it does not have.
fn container_ops(
    ops: &mut Vec<PatchOperation>,
    base: &[String],
    c: &Container,
    env: &[EnvVar],
    mounts: &[VolumeMount],
) {
    let have_env = c.env.as_deref().unwrap_or_default();
    let missing_env: Vec<&EnvVar> = env
        .iter()
        .filter(|e| !have_env.iter().any(|h| h.name == e.name))
        .collect();
    append_ops(ops, &extend(base, "env"), c.env.is_some(), &missing_env);
    let have_mounts = c.volume_mounts.as_deref().unwrap_or_default();
    let missing_mounts: Vec<&VolumeMount> = mounts
        .iter()
        .filter(|m| {
            !have_mounts
                .iter()
                .any(|h| h.name == m.name || h.mount_path == m.mount_path)
        })
        .collect();
    append_ops(
        ops,
        &extend(base, "volumeMounts"),
        c.volume_mounts.is_some(),
        &missing_mounts,
    );
}

fn extend(base: &[String], last: &str) -> Vec<String> {
    let mut p = base.to_vec();
    p.push(last.to_string());
    p
}

/// Adds `items` to the array at `path`: one `add` of the whole array when the object has
/// none (`exists` false), else one `add` at `<path>/-` per item.
fn append_ops<T: serde::Serialize>(
    ops: &mut Vec<PatchOperation>,
    path: &[String],
    exists: bool,
    items: &[&T],
) {
    if items.is_empty() {
        return;
    }
    let value = |v: &T| serde_json::to_value(v).unwrap_or(Value::Null);
    if exists {
        for item in items {
            ops.push(PatchOperation::Add(AddOperation {
                path: PointerBuf::from_tokens(extend(path, "-")),
                value: value(item),
            }));
        }
    } else {
        ops.push(PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(path),
            value: Value::Array(items.iter().map(|i| value(i)).collect()),
        }));
    }
}

fn token_volume(audience: &str, expiration_secs: i64) -> Volume {
    Volume {
        name: TOKEN_VOLUME.to_string(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(audience.to_string()),
                    expiration_seconds: Some(expiration_secs),
                    path: TOKEN_FILE.to_string(),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn ca_volume(config_map: &str) -> Volume {
    let item = |key: &str| KeyToPath {
        key: key.to_string(),
        path: key.to_string(),
        ..Default::default()
    };
    Volume {
        name: CA_VOLUME.to_string(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.to_string(),
            items: Some(vec![item(CA_FILE), item(CA_BUNDLE_FILE)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
