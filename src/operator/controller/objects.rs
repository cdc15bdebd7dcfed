//! Applying a vault's objects: server-side apply with refusals told apart from transient
//! errors, volume growth (claims expanded, the StatefulSet re-created), and why pods are not
//! ready.

use super::*;

/// Server-side apply of one namespaced object with the operator's field manager.
pub(super) async fn apply<K>(client: &Client, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = obj.meta().name.clone().unwrap_or_default();
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &pp, &Patch::Apply(obj))
        .await
        .map_err(|e| refused::<K>(&name, e))
}

/// An answer of the API server that retrying the same request cannot change (invalid,
/// forbidden, immutable field, a 500 from a value it cannot handle) becomes
/// [`Error::Refused`]; throttling, conflicts and unavailability stay transient.
pub(super) fn refused<K: Resource<DynamicType = ()>>(name: &str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(s) if (400..=500).contains(&s.code) && !matches!(s.code, 409 | 429) => {
            Error::Refused {
                kind: K::kind(&()).into_owned(),
                name: name.to_string(),
                message: s.message.clone(),
            }
        }
        other => Error::Kube(other),
    }
}

/// Why the vault's pods are not ready, when they say so (their conditions and container
/// states; only the vault's own pods, by their selector labels).
pub(super) async fn pod_trouble(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Option<status::PodTrouble>, Error> {
    let selector = desired::selector_labels(name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    Ok(status::pod_trouble(&list.items))
}

/// Applies everything and returns the StatefulSet as the API server has it now, or `None`
/// while it is being re-created for larger volumes.
pub(super) async fn apply_objects(
    client: &Client,
    ns: &str,
    name: &str,
    objects: &DesiredObjects,
) -> Result<Option<StatefulSet>, Error> {
    apply(client, ns, &objects.service_account).await?;
    apply(client, ns, &objects.service).await?;
    let sts = match prepare_volumes(client, ns, name, &objects.stateful_set).await? {
        VolumesReady::Yes => Some(apply(client, ns, &objects.stateful_set).await?),
        VolumesReady::Recreating => None,
    };
    apply(client, ns, &objects.network_policy).await?;
    match &objects.pod_disruption_budget {
        Some(pdb) => {
            apply(client, ns, pdb).await?;
        }
        None => {
            // Scaled down to one replica: a PDB would block node drains.
            let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
            match pdbs.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(sts)
}

pub(super) enum VolumesReady {
    Yes,
    /// The old StatefulSet is going away (its pods orphaned); apply once it is gone.
    Recreating,
}

/// A larger `storage.embedded.size`: expand every data claim, then delete the StatefulSet
/// with its pods orphaned, so that the next pass applies it with the new claim template
/// (`volumeClaimTemplates` are immutable). The pods keep serving throughout; the claims keep
/// their data. A claim the API server will not expand (its StorageClass lacks
/// `allowVolumeExpansion`) stops here with its message, before anything is deleted.
pub(super) async fn prepare_volumes(
    client: &Client,
    ns: &str,
    name: &str,
    desired: &StatefulSet,
) -> Result<VolumesReady, Error> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let Some(current) = sets.get_opt(name).await? else {
        return Ok(VolumesReady::Yes);
    };
    if current.metadata.deletion_timestamp.is_some() {
        return Ok(VolumesReady::Recreating);
    }
    let size = match volumes::claim_change(&current, desired) {
        None => return Ok(VolumesReady::Yes),
        Some(volumes::ClaimChange::Refused(message)) => {
            return Err(Error::Refused {
                kind: "StatefulSet".into(),
                name: name.to_string(),
                message,
            });
        }
        Some(volumes::ClaimChange::Grow { size }) => size,
    };
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("{}={name}", desired::VAULT_LABEL));
    for pvc in pvcs.list(&lp).await?.items {
        if volumes::claim_has(&pvc, &size) {
            continue;
        }
        let claim = pvc.metadata.name.clone().unwrap_or_default();
        let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": size}}}});
        pvcs.patch(&claim, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| refused::<PersistentVolumeClaim>(&claim, e))?;
        tracing::info!(vault = name, namespace = ns, claim = %claim, size = %size, "data volume expansion requested");
    }
    let orphan = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
        ..Default::default()
    };
    match sets.delete(name, &orphan).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_not_found() => {}
        Err(e) => return Err(refused::<StatefulSet>(name, e)),
    }
    tracing::info!(vault = name, namespace = ns, size = %size, "StatefulSet re-created for larger volumes (pods keep running)");
    Ok(VolumesReady::Recreating)
}
