//! Workload identity end to end, inside the served-vault test (served.rs): a
//! MutatingWebhookConfiguration like the chart's, pointing at the operator's webhook on
//! loopback; a labelled pod created through the API server and stored with the injection; a
//! TokenRequest token for its service account (bound to the pod, as the kubelet asks for it)
//! exchanged at the operator's token service; and a secret read by the unmodified Python SDK
//! with `DefaultAzureCredential` from a process given the pod's injected environment. The
//! injected files (token, CA) are written under a directory of the suite and the variables
//! naming them point there: there is no container filesystem here.

use crate::cluster::{Cluster, wait_for};
use anyhow::{Context, Result, anyhow, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const APP_SA: &str = "web";
const CLIENT_ID: &str = "5b1f0e9c-2c47-4f3e-9d2b-0d6f0c0b7a11";

/// The chart's webhook configuration, with a loopback URL instead of the Service (no pods
/// run here) and only the suite's namespace selected. caBundle is left for the operator.
pub async fn install_webhook_configuration(c: &Cluster, port: u16) -> Result<()> {
    c.apply(
        &json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "kvault-workload-identity"},
            "webhooks": [{
                "name": "pods.workload-identity.kvault.dev",
                "clientConfig": {"url": format!("https://127.0.0.1:{port}/mutate-pods")},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": ["pods"]}],
                "objectSelector": {"matchLabels": {"azure.workload.identity/use": "true"}},
                "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                    "operator": "In", "values": ["op-served"]}]},
                "failurePolicy": "Fail",
                "sideEffects": "NoneOnDryRun",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
                "reinvocationPolicy": "IfNeeded",
            }],
        }),
        false,
    )
    .await
    .context("applying the MutatingWebhookConfiguration")?;
    Ok(())
}

/// The configuration is cluster-scoped: it goes with the test (the chart test installs its
/// own under the same name).
pub async fn remove_webhook_configuration(c: &Cluster) {
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    let api: Api<MutatingWebhookConfiguration> = Api::all(c.client.clone());
    let _ = api
        .delete("kvault-workload-identity", &Default::default())
        .await;
}

fn env_of(pod: &Pod) -> Result<BTreeMap<String, String>> {
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .ok_or_else(|| anyhow!("the pod has no container"))?;
    Ok(container
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect())
}

/// The Python program the "pod" runs: nothing of kvault in it. Only name resolution is
/// adjusted (the vault's Service name answers on 127.0.0.1, every other non-local name is
/// refused and reported), as a cluster's DNS would.
const APP: &str = r#"
import socket, sys
real = socket.getaddrinfo
looked_up = []
def getaddrinfo(host, *a, **k):
    h = (host.decode() if isinstance(host, bytes) else str(host)).rstrip(".").lower()
    looked_up.append(h)
    if h == VAULT_HOST:
        return real("127.0.0.1", *a, **k)
    if h in ("localhost", "127.0.0.1", "::1"):
        return real(host, *a, **k)
    raise socket.gaierror(f"refused by the suite: {h}")
socket.getaddrinfo = getaddrinfo
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from azure.core.exceptions import ResourceNotFoundError
client = SecretClient(VAULT_URL, DefaultAzureCredential())
try:
    client.get_secret("missing")
    print("unexpected: the secret exists")
    sys.exit(2)
except ResourceNotFoundError:
    public = [h for h in looked_up if h not in (VAULT_HOST, "localhost")]
    print("404 as web; lookups:", sorted(set(looked_up)))
    sys.exit(3 if public else 0)
"#;

pub async fn pod_reads_with_default_azure_credential(
    c: &Cluster,
    ns: &str,
    vault_url: &str,
    suite_ca: &Path,
    dir: &Path,
) -> Result<()> {
    let sas: Api<ServiceAccount> = Api::namespaced(c.client.clone(), ns);
    // A manifest written for Azure Workload Identity: the client id is an annotation.
    sas.patch(
        APP_SA,
        &PatchParams::apply("k8s-suite"),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": APP_SA, "namespace": ns,
                         "annotations": {"azure.workload.identity/client-id": CLIENT_ID}}})),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "wi-app", "namespace": ns,
                     "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": APP_SA,
                 "containers": [{"name": "app", "image": "python:3.13",
                                 "env": [{"name": "LOG_LEVEL", "value": "info"}]}]},
    }))?;
    // The webhook answers once the operator has set the configuration's caBundle.
    let stored = wait_for(
        "the labelled pod admitted through the webhook",
        Duration::from_secs(60),
        || async {
            match pods.create(&PostParams::default(), &pod).await {
                Ok(p) => Ok(Some(p)),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Some(pods.get("wi-app").await?)),
                Err(e) => Err(anyhow!("{e}")),
            }
        },
    )
    .await?;
    let env = env_of(&stored)?;
    let want = |k: &str| {
        env.get(k)
            .cloned()
            .ok_or_else(|| anyhow!("{k} not injected: {env:?}"))
    };
    ensure!(
        want("AZURE_CLIENT_ID")? == CLIENT_ID,
        "AZURE_CLIENT_ID: {env:?}"
    );
    ensure!(
        want("AZURE_TENANT_ID")? == "adfs",
        "AZURE_TENANT_ID: {env:?}"
    );
    ensure!(
        env.get("LOG_LEVEL").map(String::as_str) == Some("info"),
        "the pod's own env: {env:?}"
    );
    let token_file = want("AZURE_FEDERATED_TOKEN_FILE")?;
    let authority = want("AZURE_AUTHORITY_HOST")?;
    let volumes = stored
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let projected = volumes
        .iter()
        .find(|v| v.name == "azure-identity-token")
        .and_then(|v| v.projected.as_ref())
        .and_then(|p| {
            p.sources
                .as_ref()?
                .iter()
                .find_map(|s| s.service_account_token.clone())
        })
        .ok_or_else(|| anyhow!("no projected service-account token volume: {volumes:?}"))?;
    ensure!(
        projected.audience.as_deref() == Some("api://AzureADTokenExchange"),
        "{projected:?}"
    );
    println!(
        "    webhook: pod stored with the injection ({} env vars, token audience {})",
        env.len(),
        projected.audience.clone().unwrap_or_default()
    );

    // What the kubelet would do: the CA ConfigMap the webhook published, and a token bound
    // to the pod.
    let maps: Api<ConfigMap> = Api::namespaced(c.client.clone(), ns);
    let ca_map = maps.get("kvault-ca").await.context("ConfigMap kvault-ca")?;
    let data = ca_map.data.unwrap_or_default();
    let bundle = data
        .get("ca-bundle.crt")
        .ok_or_else(|| anyhow!("kvault-ca has no ca-bundle.crt"))?;
    let root = dir.join("wi-pod");
    let remap = |path: &str| root.join(path.trim_start_matches('/'));
    let uid = stored.metadata.uid.clone().unwrap_or_default();
    let request = k8s_openapi::api::authentication::v1::TokenRequest {
        spec: k8s_openapi::api::authentication::v1::TokenRequestSpec {
            audiences: vec![projected.audience.clone().unwrap_or_default()],
            expiration_seconds: Some(3600),
            bound_object_ref: Some(k8s_openapi::api::authentication::v1::BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some("wi-app".into()),
                uid: Some(uid),
            }),
        },
        ..Default::default()
    };
    let token = sas
        .create_token_request(APP_SA, &Default::default(), &request)
        .await?
        .status
        .map(|s| s.token)
        .ok_or_else(|| anyhow!("no token"))?;
    let token_path = remap(&token_file);
    std::fs::create_dir_all(token_path.parent().unwrap_or(&root))?;
    std::fs::write(&token_path, token)?;
    // The suite's vault serves the suite's own certificate (for 127.0.0.1 and its name), so
    // the bundle also carries the suite's CA.
    let suite_ca = std::fs::read_to_string(suite_ca)?;
    let mut child_env: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &env {
        let v = if v.starts_with("/var/run/secrets/") {
            let local = remap(v);
            if let Some(parent) = local.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if v.ends_with(".crt") {
                let pem = match v.ends_with("ca-bundle.crt") {
                    true => format!("{bundle}\n{suite_ca}"),
                    false => format!(
                        "{}\n{suite_ca}",
                        data.get("ca.crt").cloned().unwrap_or_default()
                    ),
                };
                std::fs::write(&local, pem)?;
            }
            local.display().to_string()
        } else {
            v.clone()
        };
        child_env.insert(k.clone(), v);
    }
    let host = vault_url.trim_start_matches("https://").to_string();
    let program = format!("VAULT_URL = {vault_url:?}\nVAULT_HOST = {host:?}\n{APP}");
    let home = dir.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(program)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .envs(&child_env)
            .output()
    })
    .await?
    .context("running python3")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "the Python SDK with DefaultAzureCredential and the pod's environment (authority {authority}): {}\n{stdout}\n{}",
        out.status,
        stderr
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("    workload identity: {}", stdout.trim());
    Ok(())
}
