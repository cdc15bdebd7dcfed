//! A deleted vault whose namespace is being deleted too. Kept in place, its master key and
//! volumes (held by `kvault.dev/purge-protection`) would keep the namespace `Terminating`
//! for the whole retention period, and nothing could recover it meanwhile. Instead, as when
//! the cloud deletes a vault's resource group, the vault stays recoverable elsewhere:
//!
//! - its master key is copied to the operator's namespace as the Secret
//!   `kvault-kept.<namespace>.<vault>` (same marks, same finalizer), with the names of its
//!   volumes;
//! - each data volume's PersistentVolume gets `persistentVolumeReclaimPolicy: Retain` (its
//!   former policy is remembered), so it outlives its claim;
//! - the objects in the namespace are released (finalizer removed) and the namespace goes.
//!
//! A Vault of the same name created later in a namespace of the same name with
//! `createMode: Recover` gets the master key back, and each volume is pre-bound (`claimRef`)
//! to the claim its StatefulSet creates (`data-<vault>-<n>`). After the retention period the
//! purge deletes the copy and hands the volumes back to their former reclaim policy (a
//! released volume with `Delete` is deleted by Kubernetes). Pure; the controller does the I/O.

use super::desired;
use super::soft_delete::{DELETED_LABEL, PURGE_AFTER_ANNOTATION, PURGE_PROTECTION_FINALIZER};
use k8s_openapi::api::core::v1::{PersistentVolume, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// On a relocated copy and on retained volumes: the namespace the vault lived in.
pub const VAULT_NAMESPACE_LABEL: &str = "kvault.dev/vault-namespace";
/// On a relocated copy: the retained volumes, comma-separated PV names.
pub const VOLUMES_ANNOTATION: &str = "kvault.dev/volumes";
/// On a retained volume: the claim it belonged to (`data-<vault>-<n>`).
pub const CLAIM_ANNOTATION: &str = "kvault.dev/claim";
/// On a retained volume: its reclaim policy before it was retained.
pub const RECLAIM_POLICY_ANNOTATION: &str = "kvault.dev/reclaim-policy";

/// The copy's name in the operator's namespace (a DNS subdomain: dots are allowed).
pub fn kept_copy_name(namespace: &str, vault: &str) -> String {
    format!("kvault-kept.{namespace}.{vault}")
}

/// The copy of a deleted vault's master key (`key`, already marked as kept), for the
/// operator's namespace. `None` when the key has no data.
pub fn kept_copy(
    key: &Secret,
    namespace: &str,
    vault: &str,
    operator_namespace: &str,
    volumes: &[String],
) -> Option<Secret> {
    let data = key.data.clone().filter(|d| !d.is_empty())?;
    let mut labels = BTreeMap::from([
        (DELETED_LABEL.to_string(), "true".to_string()),
        (desired::VAULT_LABEL.to_string(), vault.to_string()),
        (VAULT_NAMESPACE_LABEL.to_string(), namespace.to_string()),
    ]);
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        super::FIELD_MANAGER.into(),
    );
    let mut annotations = BTreeMap::from([(VOLUMES_ANNOTATION.to_string(), volumes.join(","))]);
    if let Some(after) = key
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PURGE_AFTER_ANNOTATION))
    {
        annotations.insert(PURGE_AFTER_ANNOTATION.into(), after.clone());
    }
    let protected = key
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == PURGE_PROTECTION_FINALIZER);
    Some(Secret {
        metadata: ObjectMeta {
            name: Some(kept_copy_name(namespace, vault)),
            namespace: Some(operator_namespace.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            finalizers: protected.then(|| vec![PURGE_PROTECTION_FINALIZER.to_string()]),
            ..Default::default()
        },
        immutable: Some(true),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    })
}

/// The volumes a relocated copy names.
pub fn copy_volumes(copy: &Secret) -> Vec<String> {
    copy.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(VOLUMES_ANNOTATION))
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The master key's file content in a copy (the base64 text the server reads).
pub fn copy_key(copy: &Secret) -> Option<String> {
    let bytes = copy.data.as_ref()?.get(desired::MASTER_KEY_FILE)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// The merge patch that keeps a volume after its claim goes: `Retain`, marked with the vault,
/// its namespace, the claim and the former reclaim policy.
pub fn retain_patch(pv: &PersistentVolume, namespace: &str, vault: &str, claim: &str) -> Value {
    let former = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.clone())
        .unwrap_or_else(|| "Delete".into());
    let already = pv
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RECLAIM_POLICY_ANNOTATION))
        .cloned();
    json!({
        "metadata": {
            "labels": {
                DELETED_LABEL: "true",
                desired::VAULT_LABEL: vault,
                VAULT_NAMESPACE_LABEL: namespace,
            },
            "annotations": {
                CLAIM_ANNOTATION: claim,
                RECLAIM_POLICY_ANNOTATION: already.unwrap_or(former),
            },
        },
        "spec": {"persistentVolumeReclaimPolicy": "Retain"},
    })
}

/// The merge patch that pre-binds a retained volume to the claim a recovering vault's
/// StatefulSet creates, and gives it back its reclaim policy and no marks.
pub fn rebind_patch(pv: &PersistentVolume, namespace: &str) -> Option<Value> {
    let annotations = pv.metadata.annotations.as_ref()?;
    let claim = annotations.get(CLAIM_ANNOTATION)?;
    let policy = annotations
        .get(RECLAIM_POLICY_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| "Delete".into());
    Some(json!({
        "metadata": {
            "labels": {DELETED_LABEL: null, VAULT_NAMESPACE_LABEL: null},
            "annotations": {CLAIM_ANNOTATION: null, RECLAIM_POLICY_ANNOTATION: null},
        },
        "spec": {
            "persistentVolumeReclaimPolicy": policy,
            // A new claim of that name binds it; the old claim's uid must go.
            "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                         "namespace": namespace, "name": claim,
                         "uid": null, "resourceVersion": null},
        },
    }))
}

/// The merge patch that gives a purged vault's volume back to its former reclaim policy
/// (with `Delete`, Kubernetes then deletes the released volume and its storage).
pub fn purge_patch(pv: &PersistentVolume) -> Value {
    let policy = pv
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RECLAIM_POLICY_ANNOTATION))
        .cloned()
        .unwrap_or_else(|| "Delete".into());
    json!({
        "metadata": {
            "labels": {DELETED_LABEL: null},
            "annotations": {RECLAIM_POLICY_ANNOTATION: null, PURGE_AFTER_ANNOTATION: null},
        },
        "spec": {"persistentVolumeReclaimPolicy": policy},
    })
}

/// Whether a volume is one this vault retained (so a recovery never takes another's).
pub fn retained_for(pv: &PersistentVolume, namespace: &str, vault: &str) -> bool {
    let labels = pv.metadata.labels.as_ref();
    let is = |k: &str, v: &str| labels.and_then(|l| l.get(k)).is_some_and(|x| x == v);
    is(DELETED_LABEL, "true")
        && is(desired::VAULT_LABEL, vault)
        && is(VAULT_NAMESPACE_LABEL, namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn key(protected: bool) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("payments-master-key".into()),
                namespace: Some("team-a".into()),
                annotations: Some(BTreeMap::from([(
                    PURGE_AFTER_ANNOTATION.to_string(),
                    "2027-03-01T00:00:00Z".to_string(),
                )])),
                finalizers: protected.then(|| vec![PURGE_PROTECTION_FINALIZER.to_string()]),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                desired::MASTER_KEY_FILE.to_string(),
                ByteString(b"a2V5".to_vec()),
            )])),
            ..Default::default()
        }
    }

    fn pv(annotations: Value, labels: Value, policy: &str) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": "pv-1", "annotations": annotations, "labels": labels},
            "spec": {"persistentVolumeReclaimPolicy": policy}
        }))
        .unwrap()
    }

    #[test]
    fn the_copy_keeps_the_key_the_marks_and_the_protection() {
        let copy = kept_copy(
            &key(true),
            "team-a",
            "payments",
            "kvault-system",
            &["pv-1".into()],
        )
        .unwrap();
        assert_eq!(
            copy.metadata.name.as_deref(),
            Some("kvault-kept.team-a.payments")
        );
        assert_eq!(copy.metadata.namespace.as_deref(), Some("kvault-system"));
        let labels = copy.metadata.labels.clone().unwrap();
        assert_eq!(labels[DELETED_LABEL], "true");
        assert_eq!(labels[VAULT_NAMESPACE_LABEL], "team-a");
        assert_eq!(
            copy.metadata.annotations.as_ref().unwrap()[PURGE_AFTER_ANNOTATION],
            "2027-03-01T00:00:00Z"
        );
        assert_eq!(
            copy.metadata.finalizers,
            Some(vec![PURGE_PROTECTION_FINALIZER.to_string()])
        );
        assert_eq!(copy_key(&copy).as_deref(), Some("a2V5"));
        assert_eq!(copy_volumes(&copy), ["pv-1"]);
        let unprotected =
            kept_copy(&key(false), "team-a", "payments", "kvault-system", &[]).unwrap();
        assert_eq!(unprotected.metadata.finalizers, None);
        assert!(copy_volumes(&unprotected).is_empty());
        let mut empty = key(true);
        empty.data = None;
        assert!(kept_copy(&empty, "team-a", "payments", "kvault-system", &[]).is_none());
    }

    #[test]
    fn a_volume_is_retained_then_rebound_with_its_former_policy() {
        let fresh = pv(json!({}), json!({}), "Delete");
        let p = retain_patch(&fresh, "team-a", "payments", "data-payments-0");
        assert_eq!(p["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(
            p["metadata"]["annotations"][RECLAIM_POLICY_ANNOTATION],
            "Delete"
        );
        assert_eq!(p["metadata"]["labels"][VAULT_NAMESPACE_LABEL], "team-a");
        // Retaining twice keeps the first former policy.
        let retained = pv(
            json!({CLAIM_ANNOTATION: "data-payments-0", RECLAIM_POLICY_ANNOTATION: "Delete"}),
            json!({DELETED_LABEL: "true", "kvault.dev/vault": "payments", VAULT_NAMESPACE_LABEL: "team-a"}),
            "Retain",
        );
        let again = retain_patch(&retained, "team-a", "payments", "data-payments-0");
        assert_eq!(
            again["metadata"]["annotations"][RECLAIM_POLICY_ANNOTATION],
            "Delete"
        );
        assert!(retained_for(&retained, "team-a", "payments"));
        assert!(!retained_for(&retained, "team-b", "payments"));
        assert!(!retained_for(&fresh, "team-a", "payments"));
        let r = rebind_patch(&retained, "team-a").unwrap();
        assert_eq!(r["spec"]["claimRef"]["name"], "data-payments-0");
        assert_eq!(r["spec"]["claimRef"]["namespace"], "team-a");
        assert!(r["spec"]["claimRef"]["uid"].is_null());
        assert_eq!(r["spec"]["persistentVolumeReclaimPolicy"], "Delete");
        assert!(rebind_patch(&fresh, "team-a").is_none());
        assert_eq!(
            purge_patch(&retained)["spec"]["persistentVolumeReclaimPolicy"],
            "Delete"
        );
    }
}
