//! Changes to a vault's data volumes. A StatefulSet's `volumeClaimTemplates` cannot change,
//! so growing `storage.embedded.size` is done the way Kubernetes allows: each existing claim
//! is expanded (where its StorageClass allows it), then the StatefulSet is deleted with its
//! pods orphaned and applied again with the new template. Pure decisions; the I/O is in
//! `controller.rs`.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;

/// What the data volumes need before the desired StatefulSet can be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimChange {
    /// Expand every claim to this size (the desired template's request, as written), then
    /// re-create the StatefulSet.
    Grow { size: String },
    /// Not possible: shrinking, or another storage class. Says why.
    Refused(String),
}

/// Bytes of a Kubernetes quantity (`1Gi`, `500M`, `1.5Gi`, `1e9`); `None` when it is not one.
pub fn quantity_bytes(q: &str) -> Option<u128> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let multiplier: u128 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        s => {
            let exp: u32 = s.strip_prefix(['e', 'E'])?.parse().ok()?;
            10u128.checked_pow(exp)?
        }
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut bytes = whole.checked_mul(multiplier)?;
    if !frac.is_empty() {
        let digits: u32 = frac.len().try_into().ok()?;
        let scale = 10u128.checked_pow(digits)?;
        let frac: u128 = frac.parse().ok()?;
        // Kubernetes rounds a fractional byte count up.
        bytes = bytes.checked_add(frac.checked_mul(multiplier)?.div_ceil(scale))?;
    }
    Some(bytes)
}

fn first_claim(sts: &StatefulSet) -> Option<&PersistentVolumeClaim> {
    sts.spec.as_ref()?.volume_claim_templates.as_ref()?.first()
}

fn requested(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.as_str())
}

fn class(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim.spec.as_ref()?.storage_class_name.as_deref()
}

/// What must happen to the volumes of `current` (the StatefulSet as it is) before
/// `desired` can be applied; `None` when the claim template is unchanged.
pub fn claim_change(current: &StatefulSet, desired: &StatefulSet) -> Option<ClaimChange> {
    let (have, want) = (first_claim(current)?, first_claim(desired)?);
    if class(want).is_some() && class(have) != class(want) {
        return Some(ClaimChange::Refused(format!(
            "storage.embedded.storageClassName cannot change once the volumes exist (they \
             are {}): a volume cannot move to another class; create a new Vault and move the \
             objects with backup and restore",
            class(have).unwrap_or("the cluster's default class")
        )));
    }
    let (have_size, want_size) = (requested(have)?, requested(want)?);
    match (quantity_bytes(have_size), quantity_bytes(want_size)) {
        (Some(h), Some(w)) if w > h => Some(ClaimChange::Grow {
            size: want_size.to_string(),
        }),
        (Some(h), Some(w)) if w < h => Some(ClaimChange::Refused(format!(
            "storage.embedded.size cannot shrink ({have_size} to {want_size}): volumes only grow"
        ))),
        (Some(_), Some(_)) => None,
        _ => Some(ClaimChange::Refused(format!(
            "storage.embedded.size '{want_size}' is not a quantity like 2Gi"
        ))),
    }
}

/// Whether a claim already has at least `size` requested (nothing to expand).
pub fn claim_has(claim: &PersistentVolumeClaim, size: &str) -> bool {
    match (
        requested(claim).and_then(quantity_bytes),
        quantity_bytes(size),
    ) {
        (Some(have), Some(want)) => have >= want,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetSpec;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use std::collections::BTreeMap;

    fn claim(size: &str, class: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            spec: Some(PersistentVolumeClaimSpec {
                storage_class_name: class.map(str::to_string),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        Quantity(size.into()),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sts(size: &str, class: Option<&str>) -> StatefulSet {
        StatefulSet {
            spec: Some(StatefulSetSpec {
                volume_claim_templates: Some(vec![claim(size, class)]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn quantities_are_read_as_kubernetes_reads_them() {
        assert_eq!(quantity_bytes("1Gi"), Some(1 << 30));
        assert_eq!(quantity_bytes("1024Mi"), Some(1 << 30));
        assert_eq!(quantity_bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(quantity_bytes("2G"), Some(2_000_000_000));
        assert_eq!(quantity_bytes("1e3"), Some(1000));
        assert_eq!(quantity_bytes("100"), Some(100));
        for bad in ["lots", "", "Gi", "1Xi", "1.2.3Gi", "-1Gi"] {
            assert_eq!(quantity_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn growing_is_planned_and_shrinking_or_another_class_refused() {
        assert_eq!(claim_change(&sts("1Gi", None), &sts("1Gi", None)), None);
        assert_eq!(claim_change(&sts("1Gi", None), &sts("1024Mi", None)), None);
        assert_eq!(
            claim_change(&sts("1Gi", None), &sts("2Gi", None)),
            Some(ClaimChange::Grow { size: "2Gi".into() })
        );
        let Some(ClaimChange::Refused(why)) = claim_change(&sts("2Gi", None), &sts("1Gi", None))
        else {
            panic!("shrinking must be refused")
        };
        assert!(why.contains("cannot shrink"), "{why}");
        let Some(ClaimChange::Refused(why)) =
            claim_change(&sts("1Gi", None), &sts("1Gi", Some("fast")))
        else {
            panic!("a class change must be refused")
        };
        assert!(why.contains("storageClassName"), "{why}");
        // The class the API server filled in is kept when the spec names none.
        assert_eq!(
            claim_change(&sts("1Gi", Some("std")), &sts("1Gi", None)),
            None
        );
        assert!(claim_has(&claim("2Gi", None), "2Gi"));
        assert!(!claim_has(&claim("1Gi", None), "2Gi"));
    }
}
