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
const SOFT_DELETE_NS: &str = "kvault-suite-operator-sd";
const LEADER_NS: &str = "kvault-suite-operator-leader";
const NS_DELETION_NS: &str = "kvault-suite-operator-nsdel";

/// A running `kvault operator`, killed when dropped; its log in a temporary file.
pub struct Operator {
    child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Operator {
    fn start(c: &Cluster) -> Result<Self> {
        Self::start_in(c, OPERATOR_NS, "k8s-suite")
    }

    pub fn start_in(c: &Cluster, namespace: &str, identity: &str) -> Result<Self> {
        Self::start_with(c, namespace, identity, &[])
    }

    /// With extra `kvault operator` arguments.
    pub fn start_with(
        c: &Cluster,
        namespace: &str,
        identity: &str,
        extra: &[&str],
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("operator.log");
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new(env!("CARGO_BIN_EXE_kvault"))
            .args([
                "operator",
                "--namespace",
                namespace,
                "--listen",
                "127.0.0.1:0",
                "--https-listen",
                "127.0.0.1:0",
                "--identity",
                identity,
            ])
            .args(extra)
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

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n      ")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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

pub fn condition<'a>(obj: &'a DynamicObject, type_: &str) -> Option<&'a Value> {
    obj.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

pub async fn get(
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
    with_log(result, &mut [&mut operator])
}

pub fn with_log(result: Result<()>, operators: &mut [&mut Operator]) -> Result<()> {
    let mut exited = vec![];
    for op in operators.iter_mut() {
        if let Some(status) = op.exited() {
            exited.push(format!(
                "an operator exited ({status}):\n      {}",
                op.log_tail()
            ));
        }
    }
    match result {
        Ok(()) if exited.is_empty() => Ok(()),
        Ok(()) => Err(anyhow!("{}", exited.join("\n"))),
        Err(e) => {
            let logs: Vec<String> = operators.iter().map(|o| o.log_tail()).collect();
            Err(anyhow!(
                "{e:#}\n    operator log:\n      {}",
                logs.join("\n      ---\n      ")
            ))
        }
    }
}

fn labels(obj: &DynamicObject) -> std::collections::BTreeMap<String, String> {
    obj.metadata.labels.clone().unwrap_or_default()
}

async fn ready_reason(c: &Cluster, ns: &str, name: &str, reason: &str) -> Result<DynamicObject> {
    wait_for(
        &format!("Vault {ns}/{name} Ready reason {reason}"),
        Duration::from_secs(60),
        || async {
            let v = get(c, "kvault.dev/v1alpha1", "Vault", ns, name).await?;
            Ok(condition(&v, "Ready")
                .is_some_and(|r| r["reason"] == reason)
                .then_some(v))
        },
    )
    .await
}

/// Soft delete and recover: deleting a Vault keeps its master key (marked, with the
/// purge-protection finalizer), a new Vault of the name is refused until it says
/// `createMode: Recover`, and recovering runs on the same key.
pub async fn soft_delete_and_recover(c: Cluster) -> Result<()> {
    c.crds().await?;
    c.namespace(SOFT_DELETE_NS, json!({})).await?;
    let ns = "op-soft-delete";
    c.namespace(ns, json!({})).await?;
    let mut operator = Operator::start_in(&c, SOFT_DELETE_NS, "k8s-suite-sd")?;
    let result = async {
        let vault = |name: &str, mode: &str| {
            json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "Vault",
                   "metadata": {"name": name, "namespace": ns},
                   "spec": {"createMode": mode,
                            "softDelete": {"retentionDays": 7, "purgeProtection": true}}})
        };
        c.apply(&vault("kept", "Default"), false).await?;
        check_vault(&c, ns, "kept", "1Gi").await?;
        let key = get(&c, "v1", "Secret", ns, "kept-master-key").await?;
        let key_uid = key.metadata.uid.clone();
        // Delete: the Vault goes (its finalizer done), the key stays, marked.
        let vaults = c
            .dynamic_api("kvault.dev/v1alpha1", "Vault", Some(ns))
            .await?;
        vaults.delete("kept", &Default::default()).await?;
        let t0 = Instant::now();
        wait_for(
            "Vault op-soft-delete/kept to be gone",
            Duration::from_secs(60),
            || async { Ok(vaults.get_opt("kept").await?.is_none().then_some(())) },
        )
        .await?;
        println!(
            "    deleted Vault gone after {:.1}s",
            t0.elapsed().as_secs_f64()
        );
        let key = get(&c, "v1", "Secret", ns, "kept-master-key").await?;
        ensure!(
            key.metadata.uid == key_uid,
            "the master key Secret was replaced"
        );
        ensure!(
            labels(&key).get("kvault.dev/deleted").map(String::as_str) == Some("true"),
            "the kept master key is not marked deleted: {:?}",
            key.metadata.labels
        );
        let purge_after = key
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kvault.dev/purge-after"))
            .cloned()
            .ok_or_else(|| anyhow!("the kept master key has no purge-after annotation"))?;
        let purge_after: k8s_openapi::jiff::Timestamp = purge_after.parse()?;
        let days = (purge_after.as_second() - k8s_openapi::jiff::Timestamp::now().as_second())
            as f64
            / 86_400.0;
        ensure!(
            (6.9..=7.01).contains(&days),
            "purge-after is {days:.2} days away, want 7"
        );
        ensure!(
            key.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|f| f == "kvault.dev/purge-protection")),
            "the kept master key has no purge-protection finalizer: {:?}",
            key.metadata.finalizers
        );
        // The owned objects go with the Vault (garbage collection).
        wait_for(
            "StatefulSet op-soft-delete/kept to be collected",
            Duration::from_secs(60),
            || async {
                Ok(get(&c, "apps/v1", "StatefulSet", ns, "kept")
                    .await
                    .is_err()
                    .then_some(()))
            },
        )
        .await?;
        // The same name without Recover: refused while the deleted vault is kept.
        c.apply(&vault("kept", "Default"), false).await?;
        ready_reason(&c, ns, "kept", "DeletedVaultExists").await?;
        vaults.delete("kept", &Default::default()).await?;
        wait_for(
            "Vault op-soft-delete/kept to be gone again",
            Duration::from_secs(60),
            || async { Ok(vaults.get_opt("kept").await?.is_none().then_some(())) },
        )
        .await?;
        // Recover: the same key, unmarked, and the vault's objects again.
        c.apply(&vault("kept", "Recover"), false).await?;
        check_vault(&c, ns, "kept", "1Gi").await?;
        let key = get(&c, "v1", "Secret", ns, "kept-master-key").await?;
        ensure!(
            key.metadata.uid == key_uid,
            "recover did not keep the master key Secret"
        );
        ensure!(
            !labels(&key).contains_key("kvault.dev/deleted"),
            "the recovered master key is still marked deleted"
        );
        // Recover with nothing kept says so.
        c.apply(&vault("never-was", "Recover"), false).await?;
        ready_reason(&c, ns, "never-was", "NothingToRecover").await?;
        anyhow::Ok(())
    }
    .await;
    with_log(result, &mut [&mut operator])
}

/// Two operators: one holds the Lease and reconciles; after `kill -9` of that one, the
/// other takes over and reconciles a new Vault.
pub async fn leader_takeover(c: Cluster) -> Result<()> {
    c.crds().await?;
    c.namespace(LEADER_NS, json!({})).await?;
    let ns = "op-leader";
    c.namespace(ns, json!({})).await?;
    let mut a = Operator::start_in(&c, LEADER_NS, "replica-a")?;
    let mut b = Operator::start_in(&c, LEADER_NS, "replica-b")?;
    let result = async {
        let leases = c
            .dynamic_api("coordination.k8s.io/v1", "Lease", Some(LEADER_NS))
            .await?;
        let holder = |leases: Api<DynamicObject>| async move {
            let l = leases.get_opt("kvault-operator").await?;
            Ok(l.and_then(|l| l.data["spec"]["holderIdentity"].as_str().map(String::from)))
        };
        let first = wait_for("a Lease holder", Duration::from_secs(30), || {
            holder(leases.clone())
        })
        .await?;
        ensure!(
            first == "replica-a" || first == "replica-b",
            "Lease held by {first}"
        );
        let vault = |name: &str| {
            json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "Vault",
                   "metadata": {"name": name, "namespace": ns}, "spec": {}})
        };
        c.apply(&vault("before"), false).await?;
        check_vault(&c, ns, "before", "1Gi").await?;
        let (leader, other) = if first == "replica-a" {
            (&mut a, "replica-b")
        } else {
            (&mut b, "replica-a")
        };
        let pid = leader.pid();
        let t0 = Instant::now();
        let status = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?;
        ensure!(status.success(), "kill -9 {pid} failed");
        let next = wait_for(
            "the other replica to take the Lease",
            Duration::from_secs(60),
            || {
                let leases = leases.clone();
                let first = first.clone();
                async move { Ok(holder(leases).await?.filter(|h| h != &first)) }
            },
        )
        .await?;
        ensure!(next == other, "Lease taken by {next}, want {other}");
        println!(
            "    Lease taken over {:.1}s after kill -9",
            t0.elapsed().as_secs_f64()
        );
        c.apply(&vault("after"), false).await?;
        check_vault(&c, ns, "after", "1Gi").await?;
        println!(
            "    new Vault reconciled {:.1}s after kill -9",
            t0.elapsed().as_secs_f64()
        );
        anyhow::Ok(())
    }
    .await;
    // The killed one "exited" on purpose: only the survivor's exit is a failure.
    let survivor_exited = [a.exited(), b.exited()]
        .iter()
        .filter(|s| s.is_some())
        .count()
        > 1;
    match result {
        Ok(()) if !survivor_exited => Ok(()),
        Ok(()) => Err(anyhow!(
            "both operators exited:\n      {}\n      ---\n      {}",
            a.log_tail(),
            b.log_tail()
        )),
        Err(e) => Err(anyhow!(
            "{e:#}\n    logs:\n      {}\n      ---\n      {}",
            a.log_tail(),
            b.log_tail()
        )),
    }
}

/// Deleting the namespace of a Vault without purge protection completes: the operator's
/// finalizer runs, the kept objects carry no finalizer of their own, and everything goes.
/// (With purge protection the namespace stays Terminating: issue 17 item 3, not yet fixed.)
pub async fn namespace_deletion_completes(c: Cluster) -> Result<()> {
    c.crds().await?;
    c.namespace(NS_DELETION_NS, json!({})).await?;
    let ns = "op-namespace-deletion";
    c.namespace(ns, json!({})).await?;
    let mut operator = Operator::start_in(&c, NS_DELETION_NS, "k8s-suite-nsdel")?;
    let result = async {
        c.apply(
            &json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "Vault",
                    "metadata": {"name": "short-lived", "namespace": ns},
                    "spec": {"softDelete": {"retentionDays": 7, "purgeProtection": false}}}),
            false,
        )
        .await?;
        check_vault(&c, ns, "short-lived", "1Gi").await?;
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.client.clone());
        namespaces.delete(ns, &Default::default()).await?;
        let t0 = Instant::now();
        wait_for(
            &format!("namespace {ns} to be deleted"),
            Duration::from_secs(90),
            || async { Ok(namespaces.get_opt(ns).await?.is_none().then_some(())) },
        )
        .await?;
        println!(
            "    namespace deleted {:.1}s after the delete",
            t0.elapsed().as_secs_f64()
        );
        anyhow::Ok(())
    }
    .await;
    with_log(result, &mut [&mut operator])
}
