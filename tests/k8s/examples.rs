//! Every Kubernetes manifest under `examples/` on a real API server: applied as written in
//! one fresh cluster, in name order and then in the reverse order (so no two examples define
//! the same object differently, and none depends on another's settings), and every example
//! pod admitted by a namespace enforcing the `restricted` Pod Security level.

use crate::cluster::{Cluster, manifests, repo};
use anyhow::{Result, ensure};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The YAML files under examples/ that hold Kubernetes objects, in name order.
fn example_files() -> Result<Vec<(PathBuf, Vec<Value>)>> {
    let mut files = vec![];
    let mut stack = vec![repo().join("examples")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let docs = manifests(&path)?;
                if !docs.is_empty() {
                    files.push((path, docs));
                }
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

fn rel(p: &std::path::Path) -> String {
    p.strip_prefix(repo()).unwrap_or(p).display().to_string()
}

/// The SecretProviderClass resource of the Secrets Store CSI Driver (a minimal stand-in for
/// the driver's CRD, which the suite does not install).
fn secret_provider_class_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "secretproviderclasses.secrets-store.csi.x-k8s.io"},
        "spec": {
            "group": "secrets-store.csi.x-k8s.io",
            "names": {"kind": "SecretProviderClass", "plural": "secretproviderclasses",
                      "singular": "secretproviderclass", "listKind": "SecretProviderClassList"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]
        }
    })
}

pub async fn apply_in_any_order(c: Cluster) -> Result<()> {
    c.crds().await?;
    c.apply(&secret_provider_class_crd(), false).await?;
    crate::cluster::wait_for(
        "the SecretProviderClass resource",
        std::time::Duration::from_secs(30),
        || {
            let c = c.clone();
            async move {
                Ok(
                    c.resource("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass")
                        .await
                        .ok()
                        .map(|_| ()),
                )
            }
        },
    )
    .await?;
    let files = example_files()?;
    // No object is defined twice with different content.
    let mut seen: BTreeMap<(String, String, String), (String, Value)> = BTreeMap::new();
    let mut dupes = vec![];
    let mut namespaces = BTreeSet::new();
    for (path, docs) in &files {
        for d in docs {
            let key = (
                d["kind"].as_str().unwrap_or_default().to_string(),
                d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            if let Some(ns) = d["metadata"]["namespace"].as_str() {
                namespaces.insert(ns.to_string());
            }
            if let Some((other, first)) = seen.get(&key)
                && first != d
            {
                dupes.push(format!("{key:?} in {other} and {}", rel(path)));
            }
            seen.insert(key, (rel(path), d.clone()));
        }
    }
    ensure!(
        dupes.is_empty(),
        "examples define the same object differently: {dupes:?}"
    );
    // The namespaces a user would create first (the walk-through's own Namespace, with its
    // Pod Security label, is applied with its file).
    for ns in &namespaces {
        c.namespace(ns, json!({})).await?;
    }
    let mut failures = vec![];
    for pass in ["name order", "reverse order"] {
        let ordered: Vec<&(PathBuf, Vec<Value>)> = if pass == "name order" {
            files.iter().collect()
        } else {
            files.iter().rev().collect()
        };
        for (path, docs) in ordered {
            for d in docs {
                if let Err(e) = c.apply(d, false).await {
                    failures.push(format!("{pass}: {}: {e:#}", rel(path)));
                }
            }
        }
    }
    ensure!(
        failures.is_empty(),
        "examples refused:\n    {}",
        failures.join("\n    ")
    );
    Ok(())
}

pub async fn pods_pass_restricted(c: Cluster) -> Result<()> {
    let ns = "examples-restricted";
    c.namespace(
        ns,
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
    )
    .await?;
    let files = example_files()?;
    // The pods' service accounts first (the ServiceAccount admission plugin wants them).
    for (_, docs) in &files {
        for d in docs.iter().filter(|d| d["kind"] == "ServiceAccount") {
            let mut sa = d.clone();
            sa["metadata"]["namespace"] = json!(ns);
            c.apply(&sa, false).await?;
        }
    }
    let mut pods = 0;
    let mut failures = vec![];
    for (path, docs) in files {
        for d in docs.iter().filter(|d| d["kind"] == "Pod") {
            let mut pod = d.clone();
            pod["metadata"]["namespace"] = json!(ns);
            pods += 1;
            // Dry run: admission (Pod Security included) without storing the pod.
            if let Err(e) = c.apply(&pod, true).await {
                failures.push(format!("{}: {e:#}", rel(&path)));
            }
        }
    }
    ensure!(pods >= 3, "expected the example pods, found {pods}");
    ensure!(
        failures.is_empty(),
        "example pods refused by the restricted level:\n    {}",
        failures.join("\n    ")
    );
    Ok(())
}
