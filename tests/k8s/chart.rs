//! The Helm chart with the real helm (`scripts/install-helm`): installed next to the
//! provider example (whose DaemonSet must not take the chart's name), upgraded, and
//! uninstalled; every object of the release exists after install and is gone after
//! uninstall.

use crate::cluster::{Cluster, manifests, repo, wait_for};
use anyhow::{Context, Result, anyhow, bail, ensure};
use kube::discovery::Scope;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const RELEASE: &str = "kvault";
const NAMESPACE: &str = "kvault-system";

fn helm_binary() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("HELM") {
        return Ok(PathBuf::from(h));
    }
    let out = Command::new(repo().join("scripts/install-helm"))
        .output()
        .context("running scripts/install-helm")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "scripts/install-helm failed: {}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
    let last = stdout
        .lines()
        .last()
        .ok_or_else(|| anyhow!("scripts/install-helm printed nothing"))?;
    Ok(PathBuf::from(last.trim()))
}

fn helm(bin: &Path, kubeconfig: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .args(["--kubeconfig", &kubeconfig.display().to_string()])
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("kvault-k8s-helm/cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("kvault-k8s-helm/config"),
        )
        .env(
            "HELM_DATA_HOME",
            std::env::temp_dir().join("kvault-k8s-helm/data"),
        )
        .output()
        .with_context(|| format!("running helm {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "helm {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether an object of the release manifest exists.
async fn exists(c: &Cluster, obj: &Value) -> Result<bool> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let (_, caps) = c.resource(api_version, kind).await?;
    let ns = match caps.scope {
        Scope::Namespaced => Some(obj["metadata"]["namespace"].as_str().unwrap_or(NAMESPACE)),
        Scope::Cluster => None,
    };
    let api = c.dynamic_api(api_version, kind, ns).await?;
    Ok(api.get_opt(name).await?.is_some())
}

fn describe(obj: &Value) -> String {
    format!(
        "{} {}",
        obj["kind"].as_str().unwrap_or("?"),
        obj["metadata"]["name"].as_str().unwrap_or("?")
    )
}

pub async fn install_and_uninstall(c: Cluster) -> Result<()> {
    c.crds().await?;
    let helm_bin = helm_binary()?;
    // A user who tried the provider example first.
    c.namespace(NAMESPACE, serde_json::json!({})).await?;
    for d in manifests(&repo().join("examples/provider/daemonset.yaml"))? {
        c.apply(&d, false).await?;
    }
    let chart = repo().join("charts/kvault");
    let chart = chart.display().to_string();
    let kc = c.kubeconfig.clone();
    helm(
        &helm_bin,
        &kc,
        &[
            "install",
            RELEASE,
            &chart,
            "--namespace",
            NAMESPACE,
            "--create-namespace",
        ],
    )?;
    let manifest = helm(
        &helm_bin,
        &kc,
        &["get", "manifest", RELEASE, "--namespace", NAMESPACE],
    )?;
    let objects: Vec<Value> = serde_saphyr::from_multiple::<Value>(&manifest)?
        .into_iter()
        .filter(|d| d.get("kind").is_some())
        .collect();
    ensure!(
        objects.iter().any(|o| o["kind"] == "Deployment")
            && objects.iter().any(|o| o["kind"] == "ClusterRole"),
        "the release has no operator Deployment or ClusterRole: {:?}",
        objects.iter().map(describe).collect::<Vec<_>>()
    );
    for o in &objects {
        ensure!(
            exists(&c, o).await?,
            "{} of the release is not in the cluster",
            describe(o)
        );
    }
    helm(
        &helm_bin,
        &kc,
        &["upgrade", RELEASE, &chart, "--namespace", NAMESPACE],
    )?;
    helm(
        &helm_bin,
        &kc,
        &["uninstall", RELEASE, "--namespace", NAMESPACE],
    )?;
    for o in &objects {
        let what = format!("{} to be deleted by helm uninstall", describe(o));
        wait_for(&what, Duration::from_secs(60), || async {
            Ok((!exists(&c, o).await?).then_some(()))
        })
        .await?;
    }
    // The CRDs (and so every Vault) stay: helm never deletes crds/.
    c.crds_established().await?;
    Ok(())
}
