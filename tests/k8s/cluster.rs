//! The control plane's lifecycle and the helpers every test uses: server-side apply of
//! arbitrary YAML, namespaces, the CRDs, bounded waits.

use anyhow::{Context, Result, anyhow, bail};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const FIELD_MANAGER: &str = "kvault-k8s-suite";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The control plane `scripts/k8s-control-plane` started; stopped when dropped.
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
}

impl ControlPlane {
    pub fn start() -> Result<Self> {
        let script = repo().join("scripts/k8s-control-plane");
        let out = Command::new(&script)
            .arg("start")
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            // The script's last line says what it needs.
            let last = stderr.lines().last().unwrap_or("no output");
            bail!("{last}");
        }
        let kubeconfig = stdout
            .lines()
            .filter_map(|l| l.split_once("KUBECONFIG=").map(|(_, p)| p.trim()))
            .next_back()
            .ok_or_else(|| anyhow!("scripts/k8s-control-plane start printed no KUBECONFIG="))?;
        Ok(Self {
            kubeconfig: PathBuf::from(kubeconfig),
        })
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let status = Command::new(repo().join("scripts/k8s-control-plane"))
            .arg("stop")
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("k8s suite: stopping the control plane failed: {status:?}");
        }
    }
}

#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    pub async fn connect(cp: &ControlPlane) -> Result<Self> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&cp.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        let client = kube::Client::try_from(config)?;
        Ok(Self {
            client,
            kubeconfig: cp.kubeconfig.clone(),
        })
    }

    /// The API resource of a kind (`apps/v1`, `Deployment`).
    pub async fn resource(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, ApiCapabilities)> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .with_context(|| format!("discovering {api_version} {kind}"))
    }

    pub async fn dynamic_api(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Api<DynamicObject>> {
        let (ar, caps) = self.resource(api_version, kind).await?;
        Ok(match (caps.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            (Scope::Namespaced, None) => bail!("{kind} is namespaced: a namespace is needed"),
            (Scope::Cluster, _) => Api::all_with(self.client.clone(), &ar),
        })
    }

    /// Server-side apply of one object (the namespace in `metadata`, or `namespace`).
    pub async fn apply(&self, obj: &Value, dry_run: bool) -> Result<DynamicObject> {
        let api_version = obj["apiVersion"]
            .as_str()
            .ok_or_else(|| anyhow!("no apiVersion"))?;
        let kind = obj["kind"].as_str().ok_or_else(|| anyhow!("no kind"))?;
        let name = obj["metadata"]["name"]
            .as_str()
            .ok_or_else(|| anyhow!("{kind} without a name"))?;
        let ns = obj["metadata"]["namespace"].as_str();
        let api = self.dynamic_api(api_version, kind, ns).await?;
        let mut pp = PatchParams::apply(FIELD_MANAGER).force();
        pp.dry_run = dry_run;
        api.patch(name, &pp, &Patch::Apply(obj))
            .await
            .map_err(|e| anyhow!("{kind} {}/{name}: {}", ns.unwrap_or("-"), api_error(&e)))
    }

    /// A namespace (with labels), applied server-side.
    pub async fn namespace(&self, name: &str, labels: Value) -> Result<()> {
        self.apply(
            &json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": labels}}),
            false,
        )
        .await
        .map(|_| ())
    }

    /// The CRDs from `crds/`, applied server-side and established.
    pub async fn crds(&self) -> Result<()> {
        for crd in crd_documents()? {
            self.apply(&crd, false).await?;
        }
        self.crds_established().await
    }

    pub async fn crds_established(&self) -> Result<()> {
        let api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            Api::all(self.client.clone());
        for crd in crd_documents()? {
            let name = crd["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let api = api.clone();
            wait_for(
                &format!("CRD {name} Established"),
                Duration::from_secs(30),
                || {
                    let api = api.clone();
                    let name = name.clone();
                    async move {
                        let crd = api.get(&name).await?;
                        let established = crd
                            .status
                            .and_then(|s| s.conditions)
                            .unwrap_or_default()
                            .iter()
                            .any(|c| c.type_ == "Established" && c.status == "True");
                        Ok(established.then_some(()))
                    }
                },
            )
            .await?;
        }
        Ok(())
    }
}

/// The message of an API error (the API server's `Status.message` when there is one).
pub fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.reason),
        other => other.to_string(),
    }
}

/// The documents of a YAML file that are Kubernetes objects (with `apiVersion` and `kind`).
pub fn manifests(path: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .with_context(|| format!("parsing {}", path.display()))?;
    Ok(docs
        .into_iter()
        .filter(|d| d.get("apiVersion").is_some() && d.get("kind").is_some())
        .collect())
}

pub fn crd_documents() -> Result<Vec<Value>> {
    let mut out = vec![];
    for name in [
        "vaults.kvault.dev.yaml",
        "accesspolicies.kvault.dev.yaml",
        "roleassignments.kvault.dev.yaml",
        "secretsyncs.kvault.dev.yaml",
    ] {
        out.extend(manifests(&repo().join("crds").join(name))?);
    }
    Ok(out)
}

/// Polls `check` until it returns `Some`, at most `timeout`; errors from `check` are
/// retried and the last one is reported on timeout.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("not yet");
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {}s waiting for {what} (last: {last})",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
