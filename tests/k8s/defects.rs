//! The operator defects a real API server showed (issue 17), each against the real thing:
//! a refused storage change and unschedulable pods said in the status, grants following
//! their Vault's deletion, no finalizer warning on a normal apply, and a purge-protected
//! vault that survives the deletion of its namespace and is recovered on the same key and
//! volume.

use crate::cluster::{Cluster, wait_for};
use crate::operator::{Operator, condition, get, with_log};
use anyhow::{Result, anyhow, ensure};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

fn vault(ns: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "Vault",
           "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

async fn condition_is(
    c: &Cluster,
    ns: &str,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> Result<DynamicObject> {
    wait_for(
        &format!("Vault {ns}/{name} {type_}={status}/{reason}"),
        WAIT,
        || async {
            let v = get(c, "kvault.dev/v1alpha1", "Vault", ns, name).await?;
            Ok(condition(&v, type_)
                .is_some_and(|cond| cond["status"] == status && cond["reason"] == reason)
                .then_some(v))
        },
    )
    .await
}

/// Growing a Vault whose claims cannot expand (here: not bound, no provisioner) is refused
/// by the API server; the Vault says so (`Degraded=True/ApplyFailed` with the API server's
/// message) and the StatefulSet is not touched. A pod the scheduler cannot place is named
/// in `Ready` (`PodsUnschedulable`), and so is an image that cannot be pulled
/// (`ImagePullFailed`).
pub async fn refused_growth_and_unschedulable_pods_are_said(c: Cluster) -> Result<()> {
    c.crds().await?;
    let operator_ns = "kvault-suite-defects";
    let ns = "op-defects";
    c.namespace(operator_ns, json!({})).await?;
    c.namespace(ns, json!({})).await?;
    let mut operator = Operator::start_with(
        &c,
        operator_ns,
        "k8s-suite-defects",
        &["--watch-namespace", ns],
    )?;
    let result =
        async {
            c.apply(&vault(ns, "grow", json!({})), false).await?;
            wait_for("the claim data-grow-0", WAIT, || async {
                Ok(get(&c, "v1", "PersistentVolumeClaim", ns, "data-grow-0")
                    .await
                    .ok())
            })
            .await?;
            c.apply(
                &vault(
                    ns,
                    "grow",
                    json!({"storage": {"embedded": {"size": "2Gi"}}}),
                ),
                false,
            )
            .await?;
            let v = condition_is(&c, ns, "grow", "Degraded", "True", "ApplyFailed").await?;
            let message = condition(&v, "Degraded").map(|d| d["message"].to_string());
            println!(
                "    refused growth: {}",
                message.clone().unwrap_or_default()
            );
            ensure!(
                message
                    .as_deref()
                    .is_some_and(|m| m.contains("data-grow-0")),
                "the Degraded message does not name the claim: {message:?}"
            );
            let sts = get(&c, "apps/v1", "StatefulSet", ns, "grow").await?;
            let size = &sts.data["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]
                ["storage"];
            ensure!(size == "1Gi", "the StatefulSet was changed: claims {size}");
            ensure!(
                sts.metadata.deletion_timestamp.is_none(),
                "the StatefulSet was deleted although the claims could not grow"
            );

            // A pod the scheduler cannot place (no scheduler runs here: its condition is set as
            // the scheduler would), then any change of the Vault triggers a pass.
            c.apply(&vault(ns, "pending", json!({})), false).await?;
            let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(c.client.clone(), ns);
            wait_for("the pod pending-0", WAIT, || async {
                Ok(pods.get_opt("pending-0").await?)
            })
            .await?;
            let unschedulable = json!({"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient memory.",
            "lastTransitionTime": "2026-12-03T00:00:00Z"}]}});
            pods.patch_status(
                "pending-0",
                &PatchParams::default(),
                &Patch::Merge(&unschedulable),
            )
            .await?;
            let vaults = c
                .dynamic_api("kvault.dev/v1alpha1", "Vault", Some(ns))
                .await?;
            vaults
                .patch(
                    "pending",
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"metadata": {"annotations": {"suite/touch": "1"}}})),
                )
                .await?;
            let v = condition_is(&c, ns, "pending", "Ready", "False", "PodsUnschedulable").await?;
            let ready = condition(&v, "Ready").map(|r| r["message"].to_string());
            ensure!(
                ready
                    .as_deref()
                    .is_some_and(|m| m.contains("Insufficient memory")),
                "Ready does not quote the scheduler: {ready:?}"
            );
            // An image that cannot be pulled (as the kubelet would report it).
            c.apply(&vault(ns, "nopull", json!({})), false).await?;
            wait_for("the pod nopull-0", WAIT, || async {
                Ok(pods.get_opt("nopull-0").await?)
            })
            .await?;
            let pulling = json!({"status": {"containerStatuses": [{
            "name": "kvault", "image": "ghcr.io/kvault/kvault:0.1.0", "imageID": "",
            "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff",
                                  "message": "Back-off pulling image"}}}]}});
            pods.patch_status("nopull-0", &PatchParams::default(), &Patch::Merge(&pulling))
                .await?;
            vaults
                .patch(
                    "nopull",
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"metadata": {"annotations": {"suite/touch": "1"}}})),
                )
                .await?;
            let v = condition_is(&c, ns, "nopull", "Degraded", "True", "ImagePullFailed").await?;
            let ready = condition(&v, "Ready").map(|r| r["message"].to_string());
            ensure!(
                ready.as_deref().is_some_and(
                    |m| m.contains("ImagePullBackOff") && m.contains("ghcr.io/kvault/kvault")
                ),
                "Ready does not name the image and the reason: {ready:?}"
            );
            anyhow::Ok(())
        }
        .await;
    with_log(result, &mut [&mut operator])
}

/// A grant says `VaultNotFound` within seconds of its Vault's deletion, and a normal
/// `kubectl apply` of a Vault with its grants logs no finalizer warning.
pub async fn grants_follow_their_vault_and_no_finalizer_warning(c: Cluster) -> Result<()> {
    c.crds().await?;
    let operator_ns = "kvault-suite-grants";
    let ns = "op-grants";
    c.namespace(operator_ns, json!({})).await?;
    c.namespace(ns, json!({})).await?;
    // Namespaced mode: this operator sees only its namespace (and says nothing of others').
    let mut operator = Operator::start_with(
        &c,
        operator_ns,
        "k8s-suite-grants",
        &["--watch-namespace", ns],
    )?;
    let result = async {
        // Applied together, as `kubectl apply -f dir/` does.
        c.apply(
            &vault(
                ns,
                "payments",
                json!({"softDelete": {"purgeProtection": false}}),
            ),
            false,
        )
        .await?;
        for g in ["web", "batch", "cron"] {
            c.apply(
                &json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "RoleAssignment",
                        "metadata": {"name": g, "namespace": ns},
                        "spec": {"vaultRef": {"name": "payments"}, "role": "Key Vault Secrets User",
                                 "principal": {"kind": "ServiceAccount", "name": g}}}),
                false,
            )
            .await?;
        }
        wait_for("grant web VaultNotReady", WAIT, || async {
            let g = get(&c, "kvault.dev/v1alpha1", "RoleAssignment", ns, "web").await?;
            Ok(condition(&g, "Applied")
                .is_some_and(|a| a["reason"] == "VaultNotReady")
                .then_some(()))
        })
        .await?;
        let vaults = c
            .dynamic_api("kvault.dev/v1alpha1", "Vault", Some(ns))
            .await?;
        vaults.delete("payments", &Default::default()).await?;
        let t0 = Instant::now();
        for g in ["web", "batch", "cron"] {
            wait_for(
                &format!("grant {g} VaultNotFound"),
                Duration::from_secs(15),
                || async {
                    let o = get(&c, "kvault.dev/v1alpha1", "RoleAssignment", ns, g).await?;
                    Ok(condition(&o, "Applied")
                        .is_some_and(|a| a["reason"] == "VaultNotFound")
                        .then_some(()))
                },
            )
            .await?;
        }
        println!(
            "    grants VaultNotFound {:.1}s after their Vault's delete",
            t0.elapsed().as_secs_f64()
        );
        let log = std::fs::read_to_string(&operator.log)?;
        ensure!(
            !log.contains("failed to add finalizer") && !log.contains("reconcile failed"),
            "the operator warned on a normal apply:\n{}",
            operator.log_tail()
        );
        anyhow::Ok(())
    }
    .await;
    with_log(result, &mut [&mut operator])
}

/// A purge-protected vault whose namespace is deleted: the namespace goes, the master key
/// moves to the operator's namespace and the volume (a PersistentVolume bound by the real PV
/// controller) is retained; created again with `createMode: Recover`, the vault gets the
/// same key and its claim is bound to the same volume.
pub async fn a_protected_vault_survives_its_namespace(c: Cluster) -> Result<()> {
    c.crds().await?;
    let operator_ns = "kvault-suite-relocate";
    let ns = "op-relocate";
    c.namespace(operator_ns, json!({})).await?;
    c.namespace(ns, json!({})).await?;
    let pv_name = "kvault-suite-pv-relocate";
    c.apply(
        &json!({"apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": pv_name},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                         "persistentVolumeReclaimPolicy": "Delete",
                         "hostPath": {"path": "/tmp/kvault-suite-pv"}}}),
        false,
    )
    .await?;
    let mut operator = Operator::start_with(
        &c,
        operator_ns,
        "k8s-suite-relocate",
        &["--watch-namespace", ns],
    )?;
    let result = async {
        let spec = json!({"softDelete": {"retentionDays": 7, "purgeProtection": true}});
        c.apply(&vault(ns, "kept", spec.clone()), false).await?;
        let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
            Api::namespaced(c.client.clone(), ns);
        wait_for("data-kept-0 bound to the volume", WAIT, || async {
            Ok(claims.get_opt("data-kept-0").await?.filter(|p| {
                p.spec.as_ref().and_then(|s| s.volume_name.as_deref()) == Some(pv_name)
            }))
        })
        .await?;
        let key = wait_for("the master key", WAIT, || async {
            Ok(get(&c, "v1", "Secret", ns, "kept-master-key").await.ok())
        })
        .await?;
        let key_data = key.data["data"]["master.key"].clone();
        ensure!(key_data.is_string(), "the master key has no data");

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
            "    namespace with a purge-protected vault deleted {:.1}s after the delete",
            t0.elapsed().as_secs_f64()
        );
        let copy_name = format!("kvault-kept.{ns}.kept");
        let copy = get(&c, "v1", "Secret", operator_ns, &copy_name).await?;
        ensure!(
            copy.data["data"]["master.key"] == key_data,
            "the copy holds another key"
        );
        ensure!(
            copy.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|x| x == "kvault.dev/purge-protection")),
            "the copy lost its purge protection"
        );
        let pvs: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(c.client.clone());
        let pv = pvs
            .get_opt(pv_name)
            .await?
            .ok_or_else(|| anyhow!("the volume was deleted with its namespace"))?;
        ensure!(
            pv.spec
                .as_ref()
                .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
                == Some("Retain"),
            "the volume is not retained"
        );

        // Recover in a namespace of the same name.
        c.namespace(ns, json!({})).await?;
        let mut recover = spec.clone();
        recover["createMode"] = json!("Recover");
        c.apply(&vault(ns, "kept", recover), false).await?;
        let key = wait_for("the recovered master key", WAIT, || async {
            Ok(get(&c, "v1", "Secret", ns, "kept-master-key").await.ok())
        })
        .await?;
        ensure!(
            key.data["data"]["master.key"] == key_data,
            "the recovered vault has another key"
        );
        wait_for(
            "data-kept-0 bound to the same volume again",
            WAIT,
            || async {
                Ok(claims.get_opt("data-kept-0").await?.filter(|p| {
                    p.spec.as_ref().and_then(|s| s.volume_name.as_deref()) == Some(pv_name)
                        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
                }))
            },
        )
        .await?;
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(c.client.clone(), operator_ns);
        wait_for("the copy to go", WAIT, || async {
            Ok(secrets.get_opt(&copy_name).await?.is_none().then_some(()))
        })
        .await?;
        anyhow::Ok(())
    }
    .await;
    with_log(result, &mut [&mut operator])
}

/// After the retention period the purge deletes a deleted vault's kept master key and data
/// claim. The operator's purge clock is shifted 8 days ahead (a hidden tests-only flag) and
/// checks every second, so the test does not wait a week.
pub async fn kept_objects_are_purged_after_the_retention_period(c: Cluster) -> Result<()> {
    c.crds().await?;
    let operator_ns = "kvault-suite-purge";
    let ns = "op-purge";
    c.namespace(operator_ns, json!({})).await?;
    c.namespace(ns, json!({})).await?;
    let spec = json!({"softDelete": {"retentionDays": 7, "purgeProtection": true}});
    let mut first = Operator::start_with(
        &c,
        operator_ns,
        "k8s-suite-purge",
        &["--watch-namespace", ns],
    )?;
    let result = async {
        c.apply(&vault(ns, "old", spec.clone()), false).await?;
        wait_for("the claim data-old-0", WAIT, || async {
            Ok(get(&c, "v1", "PersistentVolumeClaim", ns, "data-old-0")
                .await
                .ok())
        })
        .await?;
        let vaults = c
            .dynamic_api("kvault.dev/v1alpha1", "Vault", Some(ns))
            .await?;
        vaults.delete("old", &Default::default()).await?;
        wait_for("the master key marked as kept", WAIT, || async {
            let k = get(&c, "v1", "Secret", ns, "old-master-key").await?;
            Ok(k.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.get("kvault.dev/deleted").is_some_and(|v| v == "true"))
                .then_some(()))
        })
        .await?;
        anyhow::Ok(())
    }
    .await;
    with_log(result, &mut [&mut first])?;
    drop(first);
    let eight_days = (8 * 86_400).to_string();
    let mut later = Operator::start_with(
        &c,
        operator_ns,
        "k8s-suite-purge-later",
        &[
            "--watch-namespace",
            ns,
            "--purge-interval",
            "1s",
            "--test-clock-offset",
            &eight_days,
        ],
    )?;
    let result = async {
        let t0 = Instant::now();
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(c.client.clone(), ns);
        let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
            Api::namespaced(c.client.clone(), ns);
        wait_for("the kept key and claim purged", WAIT, || async {
            let key = secrets.get_opt("old-master-key").await?;
            let claim = claims.get_opt("data-old-0").await?;
            Ok((key.is_none() && claim.is_none()).then_some(()))
        })
        .await?;
        println!(
            "    purged {:.1}s after the operator started 8 days later",
            t0.elapsed().as_secs_f64()
        );
        anyhow::Ok(())
    }
    .await;
    with_log(result, &mut [&mut later])
}
