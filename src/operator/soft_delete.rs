//! Soft delete of vaults: what is kept, how it is marked, when it may go. Pure; the
//! controller applies the patches.
//!
//! Deleting a `Vault` deletes what it owns, but its master-key Secret and its data PVCs are
//! not owned: the Vault's finalizer marks them (label [`DELETED_LABEL`], annotation
//! [`PURGE_AFTER_ANNOTATION`]) and, with purge protection, adds [`PURGE_PROTECTION_FINALIZER`]
//! so nobody deletes them before the retention period ends. A new Vault of the same name
//! with `createMode: Recover` unmarks them and runs on the same data; after the retention
//! period the operator purges them.

use crate::api::Vault;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

/// On the Vault: its kept objects are marked before it goes.
pub const VAULT_FINALIZER: &str = "kvault.dev/soft-delete";
/// On kept objects while purge protection is on: only the operator's purge removes it.
pub const PURGE_PROTECTION_FINALIZER: &str = "kvault.dev/purge-protection";
/// `"true"` on the master key and PVCs of a deleted vault.
pub const DELETED_LABEL: &str = "kvault.dev/deleted";
/// When the kept objects of a deleted vault may be purged (RFC 3339).
pub const PURGE_AFTER_ANNOTATION: &str = "kvault.dev/purge-after";

/// The merge patch that marks a kept object. `finalizers` are the object's current ones
/// (the list is replaced as a whole, so others such as `kubernetes.io/pvc-protection` are
/// carried over).
pub fn keep_patch(vault: &Vault, finalizers: &[String], now: i64) -> Value {
    let days = i64::from(vault.spec.soft_delete.retention_days);
    let purge_after = k8s_openapi::jiff::Timestamp::from_second(now + days * 86_400)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut fins: Vec<String> = finalizers
        .iter()
        .filter(|f| *f != PURGE_PROTECTION_FINALIZER)
        .cloned()
        .collect();
    if vault.spec.soft_delete.purge_protection {
        fins.push(PURGE_PROTECTION_FINALIZER.into());
    }
    json!({"metadata": {
        "labels": {DELETED_LABEL: "true"},
        "annotations": {PURGE_AFTER_ANNOTATION: purge_after},
        "finalizers": fins,
    }})
}

/// With purge protection, the master key and the data volumes carry
/// [`PURGE_PROTECTION_FINALIZER`] while the vault lives too, so that nothing deletes them
/// before the operator has kept them — not a `kubectl delete`, not a namespace deletion
/// racing the Vault's own. The merge patch that adds it (`None`: already there).
pub fn protect_patch(finalizers: &[String]) -> Option<Value> {
    if finalizers.iter().any(|f| f == PURGE_PROTECTION_FINALIZER) {
        return None;
    }
    let mut fins = finalizers.to_vec();
    fins.push(PURGE_PROTECTION_FINALIZER.into());
    Some(json!({"metadata": {"finalizers": fins}}))
}

/// The merge patch that unmarks a kept object (recover, or just before a purge).
pub fn restore_patch(finalizers: &[String]) -> Value {
    let fins: Vec<&String> = finalizers
        .iter()
        .filter(|f| *f != PURGE_PROTECTION_FINALIZER)
        .collect();
    json!({"metadata": {
        "labels": {DELETED_LABEL: null},
        "annotations": {PURGE_AFTER_ANNOTATION: null},
        "finalizers": fins,
    }})
}

/// Whether the object belongs to a deleted vault.
pub fn is_kept(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(DELETED_LABEL))
        .is_some_and(|v| v == "true")
}

/// When a kept object may be purged (unix seconds); `None` when it is not kept or the
/// annotation is unreadable (then it is never purged automatically).
pub fn purge_after(meta: &ObjectMeta) -> Option<i64> {
    if !is_kept(meta) {
        return None;
    }
    meta.annotations
        .as_ref()?
        .get(PURGE_AFTER_ANNOTATION)?
        .parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

pub fn purge_due(meta: &ObjectMeta, now: i64) -> bool {
    purge_after(meta).is_some_and(|t| t <= now)
}

/// A deleted vault, as its kept master-key Secret describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedVault {
    pub namespace: String,
    pub name: String,
    /// When the operator purges it (unix seconds); `None`: unreadable, never automatically.
    pub purge_after: Option<i64>,
    pub purge_protection: bool,
}

/// The deleted vault a kept master-key Secret stands for (`None` for a live vault's key).
pub fn deleted_vault(key: &ObjectMeta) -> Option<DeletedVault> {
    if !is_kept(key) {
        return None;
    }
    Some(DeletedVault {
        namespace: key.namespace.clone()?,
        name: key
            .labels
            .as_ref()?
            .get(super::desired::VAULT_LABEL)?
            .clone(),
        purge_after: purge_after(key),
        purge_protection: key
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == PURGE_PROTECTION_FINALIZER)),
    })
}

/// Whether a person may purge the deleted vault now: always without purge protection;
/// with it, only once its retention period is over (as the operator would).
pub fn may_purge(v: &DeletedVault, now: i64) -> Result<(), String> {
    if !v.purge_protection || v.purge_after.is_some_and(|t| t <= now) {
        return Ok(());
    }
    let when = v
        .purge_after
        .and_then(|t| k8s_openapi::jiff::Timestamp::from_second(t).ok())
        .map_or_else(
            || "never (its purge-after annotation is unreadable)".to_string(),
            |t| t.to_string(),
        );
    Err(format!(
        "vault {}/{} has purge protection: it cannot be purged before its retention period ends ({when}); recover it with createMode: Recover or wait",
        v.namespace, v.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::VaultSpec;
    use crate::operator::fixtures;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_790_000_000;

    fn meta_from(patch: &Value) -> ObjectMeta {
        serde_json::from_value(patch["metadata"].clone()).unwrap()
    }

    #[test]
    fn kept_objects_are_marked_with_their_purge_time() {
        let mut spec = VaultSpec::default();
        spec.soft_delete.retention_days = 7;
        let v = fixtures::vault("team-a", "payments", spec);
        let p = keep_patch(&v, &["kubernetes.io/pvc-protection".into()], NOW);
        let m = meta_from(&p);
        assert!(is_kept(&m));
        assert_eq!(purge_after(&m), Some(NOW + 7 * 86_400));
        assert!(!purge_due(&m, NOW + 7 * 86_400 - 1));
        assert!(purge_due(&m, NOW + 7 * 86_400));
        // Other finalizers stay; without purge protection ours is not added.
        assert_eq!(
            m.finalizers.unwrap(),
            vec!["kubernetes.io/pvc-protection".to_string()]
        );
    }

    #[test]
    fn protection_is_added_once_and_keeps_other_finalizers() {
        let p = protect_patch(&["kubernetes.io/pvc-protection".into()]).unwrap();
        assert_eq!(
            p["metadata"]["finalizers"],
            json!(["kubernetes.io/pvc-protection", PURGE_PROTECTION_FINALIZER])
        );
        assert!(protect_patch(&[PURGE_PROTECTION_FINALIZER.into()]).is_none());
    }

    #[test]
    fn purge_protection_adds_a_finalizer_and_restore_removes_it() {
        let mut spec = VaultSpec::default();
        spec.soft_delete.purge_protection = true;
        let v = fixtures::vault("team-a", "payments", spec);
        let m = meta_from(&keep_patch(&v, &[], NOW));
        let fins = m.finalizers.clone().unwrap();
        assert_eq!(fins, vec![PURGE_PROTECTION_FINALIZER.to_string()]);
        let r = restore_patch(&fins);
        assert_eq!(r["metadata"]["labels"][DELETED_LABEL], Value::Null);
        assert_eq!(r["metadata"]["finalizers"], json!([]));
    }

    fn kept_key(spec: VaultSpec) -> ObjectMeta {
        let v = fixtures::vault("team-a", "payments", spec);
        let mut m = meta_from(&keep_patch(&v, &[], NOW));
        m.namespace = Some("team-a".into());
        m.name = Some("payments-master-key".into());
        m.labels.get_or_insert_with(BTreeMap::new).insert(
            crate::operator::desired::VAULT_LABEL.into(),
            "payments".into(),
        );
        m
    }

    #[test]
    fn a_kept_master_key_describes_its_deleted_vault() {
        let mut spec = VaultSpec::default();
        spec.soft_delete.retention_days = 7;
        let d = deleted_vault(&kept_key(spec)).unwrap();
        assert_eq!(
            d,
            DeletedVault {
                namespace: "team-a".into(),
                name: "payments".into(),
                purge_after: Some(NOW + 7 * 86_400),
                purge_protection: false,
            }
        );
        assert!(may_purge(&d, NOW).is_ok(), "no protection: purge any time");
        // A live vault's key is not a deleted vault.
        let mut live = kept_key(VaultSpec::default());
        live.labels.as_mut().unwrap().remove(DELETED_LABEL);
        assert!(deleted_vault(&live).is_none());
    }

    #[test]
    fn purge_protection_holds_a_deleted_vault_until_its_time() {
        let mut spec = VaultSpec::default();
        spec.soft_delete.retention_days = 30;
        spec.soft_delete.purge_protection = true;
        let d = deleted_vault(&kept_key(spec)).unwrap();
        assert!(d.purge_protection);
        let refused = may_purge(&d, NOW + 86_400).unwrap_err();
        assert!(refused.contains("purge protection"), "{refused}");
        assert!(may_purge(&d, NOW + 30 * 86_400).is_ok());
    }

    #[test]
    fn live_objects_are_never_due() {
        let m = ObjectMeta {
            annotations: Some(BTreeMap::from([(
                PURGE_AFTER_ANNOTATION.into(),
                "2000-01-01T00:00:00Z".into(),
            )])),
            ..Default::default()
        };
        assert!(!purge_due(&m, NOW));
    }
}
