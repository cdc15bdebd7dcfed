//! The operator binary (`kvault operator`) against the real API server: a Vault in each
//! authorization mode becomes its objects (StatefulSet, Services, Secrets, ConfigMap), its
//! status says what it is waiting for, and each grant gets an `Applied` condition.
//! No kubelet runs the vault pods, so no policy is pushed here: the grants say the vault is
//! not ready.

use crate::cluster::{Cluster, wait_for};
use anyhow::{Context, Result, anyhow, ensure};
use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OPERATOR_NS: &str = "kvault-suite-operator";

/// A running `kvault operator`, killed when dropped; its log in a temporary file.
struct Operator {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Operator {
    fn start(c: &Cluster) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("operator.log");
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new(env!("CARGO_BIN_EXE_kvault"))
            .args([
                "operator",
                "--namespace",
                OPERATOR_NS,
                "--listen",
                "127.0.0.1:0",
                "--identity",
                "k8s-suite",
            ])
            .env("KUBECONFIG", &c.kubeconfig)
            .env("RUST_LOG", "info,kvault=debug")
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("starting kvault operator")?;
        Ok(Self {
            child,
            log,
            _dir: dir,
        })
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n      ")
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn condition<'a>(obj: &'a DynamicObject, type_: &str) -> Option<&'a Value> {
    obj.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

async fn get(
    c: &Cluster,
    api_version: &str,
    kind: &str,
    ns: &str,
    name: &str,
) -> Result<DynamicObject> {
    let api: Api<DynamicObject> = c.dynamic_api(api_version, kind, Some(ns)).await?;
    api.get(name)
        .await
        .map_err(|e| anyhow!("{kind} {ns}/{name}: {}", crate::cluster::api_error(&e)))
}

/// A Vault's objects and status, once the operator has made them.
async fn check_vault(c: &Cluster, ns: &str, name: &str, size: &str) -> Result<()> {
    let t0 = Instant::now();
    let wait = Duration::from_secs(60);
    let sts = wait_for(&format!("StatefulSet {ns}/{name}"), wait, || async {
        Ok(get(c, "apps/v1", "StatefulSet", ns, name).await.ok())
    })
    .await?;
    println!(
        "    {ns}/{name}: StatefulSet after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let claim =
        &sts.data["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"];
    ensure!(
        claim == &json!(size),
        "StatefulSet {ns}/{name} claims {claim}, the Vault says {size}"
    );
    ensure!(
        sts.metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|r| r.kind == "Vault" && r.name == name)),
        "StatefulSet {ns}/{name} is not owned by its Vault"
    );
    for (api_version, kind, object) in [
        ("v1", "Service", name.to_string()),
        ("v1", "Secret", format!("{name}-master-key")),
        ("v1", "Secret", format!("{name}-tls")),
        ("v1", "ConfigMap", format!("{name}-cluster-jwks")),
    ] {
        wait_for(&format!("{kind} {ns}/{object}"), wait, || async {
            Ok(get(c, api_version, kind, ns, &object).await.ok())
        })
        .await?;
    }
    let vault = wait_for(&format!("status of Vault {ns}/{name}"), wait, || async {
        let v = get(c, "kvault.dev/v1alpha1", "Vault", ns, name).await?;
        let observed = v.data["status"]["observedGeneration"].as_i64();
        Ok((observed.is_some() && observed == v.metadata.generation).then_some(v))
    })
    .await?;
    let want_uri = format!("https://{name}.{ns}.svc");
    ensure!(
        vault.data["status"]["vaultUri"] == json!(want_uri),
        "Vault {ns}/{name}: vaultUri {} (want {want_uri})",
        vault.data["status"]["vaultUri"]
    );
    let ready = condition(&vault, "Ready")
        .ok_or_else(|| anyhow!("Vault {ns}/{name} has no Ready condition"))?;
    // No kubelet: the pods never start.
    ensure!(
        ready["status"] == "False" && ready["reason"] == "PodsNotReady",
        "Vault {ns}/{name}: Ready is {ready}"
    );
    Ok(())
}

async fn check_grant(c: &Cluster, kind: &str, ns: &str, name: &str, reason: &str) -> Result<()> {
    let what = format!("{kind} {ns}/{name} Applied=False/{reason}");
    wait_for(&what, Duration::from_secs(60), || async {
        let g = get(c, "kvault.dev/v1alpha1", kind, ns, name).await?;
        Ok(condition(&g, "Applied")
            .filter(|cond| cond["status"] == "False" && cond["reason"] == reason)
            .map(|_| ()))
    })
    .await
}

pub async fn reconciles_both_modes(c: Cluster) -> Result<()> {
    c.crds().await?;
    c.namespace(OPERATOR_NS, json!({})).await?;
    for ns in ["op-rbac", "op-access-policy"] {
        c.namespace(ns, json!({})).await?;
    }
    let mut operator = Operator::start(&c)?;
    let result = async {
        let objects = [
            json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "Vault",
                   "metadata": {"name": "payments", "namespace": "op-rbac"},
                   "spec": {"authorization": "RBAC", "storage": {"embedded": {"size": "2Gi"}}}}),
            json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "RoleAssignment",
                   "metadata": {"name": "web-reads-secrets", "namespace": "op-rbac"},
                   "spec": {"vaultRef": {"name": "payments"}, "role": "Key Vault Secrets User",
                            "principal": {"kind": "ServiceAccount", "name": "web"}}}),
            json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "RoleAssignment",
                   "metadata": {"name": "orphan", "namespace": "op-rbac"},
                   "spec": {"vaultRef": {"name": "nowhere"}, "role": "Key Vault Secrets User",
                            "principal": {"kind": "ServiceAccount", "name": "web"}}}),
            json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "Vault",
                   "metadata": {"name": "legacy", "namespace": "op-access-policy"},
                   "spec": {"authorization": "AccessPolicy"}}),
            json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "AccessPolicy",
                   "metadata": {"name": "worker", "namespace": "op-access-policy"},
                   "spec": {"vaultRef": {"name": "legacy"},
                            "principal": {"kind": "ServiceAccount", "name": "worker"},
                            "permissions": {"secrets": ["get", "list"]}}}),
        ];
        for o in &objects {
            c.apply(o, false).await?;
        }
        check_vault(&c, "op-rbac", "payments", "2Gi").await?;
        check_vault(&c, "op-access-policy", "legacy", "1Gi").await?;
        check_grant(
            &c,
            "RoleAssignment",
            "op-rbac",
            "web-reads-secrets",
            "VaultNotReady",
        )
        .await?;
        check_grant(&c, "RoleAssignment", "op-rbac", "orphan", "VaultNotFound").await?;
        check_grant(
            &c,
            "AccessPolicy",
            "op-access-policy",
            "worker",
            "VaultNotReady",
        )
        .await?;
        // The operator published its CA and holds its Lease.
        get(&c, "v1", "ConfigMap", OPERATOR_NS, "kvault-ca").await?;
        anyhow::Ok(())
    }
    .await;
    match (result, operator.exited()) {
        (Ok(()), None) => Ok(()),
        (Ok(()), Some(status)) => Err(anyhow!(
            "the operator exited ({status}):\n      {}",
            operator.log_tail()
        )),
        (Err(e), _) => Err(anyhow!(
            "{e:#}\n    operator log:\n      {}",
            operator.log_tail()
        )),
    }
}
