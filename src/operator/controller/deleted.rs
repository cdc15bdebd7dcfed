//! Deleted vaults: what is kept when a Vault goes (soft delete), recovery, the purge after
//! the retention period, purge protection while the vault lives, and relocation out of a
//! namespace being deleted ([`super::super::relocation`]).

use super::*;

/// The Vault is being deleted: mark its master key and data volumes as kept (and protect
/// them with a finalizer when purge protection is on). What it owns goes with it.
pub(super) async fn keep_deleted_vault(vault: Arc<Vault>, ctx: &Context) -> Result<Action, Error> {
    let (Some(name), Some(ns)) = (
        vault.metadata.name.clone(),
        vault.metadata.namespace.clone(),
    ) else {
        return Ok(Action::await_change());
    };
    // Already relocated (a second pass on a stale cached Vault while its namespace goes):
    // marking again would put the finalizer back on what relocation released.
    if namespace_ending(&ctx.client, &ns).await?
        && Api::<Secret>::namespaced(ctx.client.clone(), &ctx.settings.namespace)
            .get_metadata_opt(&relocation::kept_copy_name(&ns, &name))
            .await?
            .is_some()
    {
        release_kept(&ctx.client, &ns, &name).await?;
        return Ok(Action::await_change());
    }
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let merge = PatchParams::default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let key_name = desired::master_key_secret_name(&name);
    let mut kept = 0;
    if let Some(m) = secrets.get_metadata_opt(&key_name).await?
        && !soft_delete::is_kept(&m.metadata)
    {
        let patch =
            soft_delete::keep_patch(&vault, &m.metadata.finalizers.unwrap_or_default(), now);
        secrets
            .patch_metadata(&key_name, &merge, &Patch::Merge(&patch))
            .await?;
        kept += 1;
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let lp = ListParams::default().labels(&format!("{}={name}", desired::VAULT_LABEL));
    for pvc in pvcs.list_metadata(&lp).await?.items {
        if soft_delete::is_kept(&pvc.metadata) {
            continue;
        }
        let pvc_name = pvc.metadata.name.clone().unwrap_or_default();
        let patch =
            soft_delete::keep_patch(&vault, &pvc.metadata.finalizers.unwrap_or_default(), now);
        pvcs.patch_metadata(&pvc_name, &merge, &Patch::Merge(&patch))
            .await?;
        kept += 1;
    }
    let days = vault.spec.soft_delete.retention_days;
    tracing::info!(vault = %name, namespace = %ns, kept, retention_days = days, "vault soft-deleted");
    if relocate_if_namespace_ends(ctx, &ns, &name).await? {
        publish(
            ctx,
            &vault,
            EventType::Normal,
            "Relocated",
            &format!(
                "the namespace is being deleted: the master key moved to {}/{} and the data volumes are retained; a Vault named {name} created again in a namespace {ns} with createMode: Recover takes them back",
                ctx.settings.namespace,
                relocation::kept_copy_name(&ns, &name)
            ),
        )
        .await;
    }
    let note = format!(
        "master key and data kept for {days} days; a new Vault named {name} with createMode: Recover takes them back"
    );
    publish(ctx, &vault, EventType::Normal, "SoftDeleted", &note).await;
    Ok(Action::await_change())
}

/// Takes back a deleted vault's master key and volumes.
pub(super) async fn recover(
    ctx: &Context,
    vault: &Vault,
    ns: &str,
    name: &str,
    key_meta: &ObjectMeta,
) -> Result<(), Error> {
    let merge = PatchParams::default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let key_name = desired::master_key_secret_name(name);
    let patch = soft_delete::restore_patch(&key_meta.finalizers.clone().unwrap_or_default());
    secrets
        .patch_metadata(&key_name, &merge, &Patch::Merge(&patch))
        .await?;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let lp = ListParams::default().labels(&format!("{}={name}", desired::VAULT_LABEL));
    for pvc in pvcs.list_metadata(&lp).await?.items {
        if soft_delete::is_kept(&pvc.metadata) {
            let pvc_name = pvc.metadata.name.clone().unwrap_or_default();
            let patch = soft_delete::restore_patch(&pvc.metadata.finalizers.unwrap_or_default());
            pvcs.patch_metadata(&pvc_name, &merge, &Patch::Merge(&patch))
                .await?;
        }
    }
    tracing::info!(vault = name, namespace = ns, "deleted vault recovered");
    publish(
        ctx,
        vault,
        EventType::Normal,
        "Recovered",
        "the deleted vault's master key and data are in use again",
    )
    .await;
    Ok(())
}

/// When the deleted vault's namespace is being deleted too, moves what is kept out of it
/// ([`relocation`]): the master key to a copy in the operator's namespace, the volumes
/// retained as PersistentVolumes; then releases the namespace's objects so that its deletion
/// completes. Returns whether it did.
pub async fn relocate_if_namespace_ends(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<bool, Error> {
    relocate_kept(&ctx.client, &ctx.settings.namespace, ns, name).await
}

pub(super) async fn relocate_kept(
    client: &Client,
    operator_ns: &str,
    ns: &str,
    name: &str,
) -> Result<bool, Error> {
    if !namespace_ending(client, ns).await? {
        return Ok(false);
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let key_name = desired::master_key_secret_name(name);
    let Some(key) = secrets.get_opt(&key_name).await? else {
        return Ok(false);
    };
    if !soft_delete::is_kept(&key.metadata) {
        return Ok(false);
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("{}={name}", desired::VAULT_LABEL));
    let claims = pvcs.list(&lp).await?.items;
    let mut volumes = Vec::new();
    for pvc in &claims {
        let claim = pvc.metadata.name.clone().unwrap_or_default();
        let Some(pv_name) = pvc.spec.as_ref().and_then(|s| s.volume_name.clone()) else {
            continue;
        };
        let Some(pv) = pvs.get_opt(&pv_name).await? else {
            continue;
        };
        let patch = relocation::retain_patch(&pv, ns, name, &claim);
        pvs.patch(&pv_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| refused::<PersistentVolume>(&pv_name, e))?;
        volumes.push(pv_name);
    }
    let copy = relocation::kept_copy(&key, ns, name, operator_ns, &volumes)
        .ok_or_else(|| Error::MasterKey(format!("Secret {ns}/{key_name} holds no key")))?;
    let copies: Api<Secret> = Api::namespaced(client.clone(), operator_ns);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match copies.create(&pp, &copy).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    // Only now, with the copy and the volumes safe, let the namespace's objects go.
    release_kept(client, ns, name).await?;
    tracing::info!(
        vault = name,
        namespace = ns,
        volumes = volumes.len(),
        "namespace ends: deleted vault relocated to the operator's namespace"
    );
    Ok(true)
}

/// `createMode: Recover` for a vault relocated when its namespace was deleted: the master
/// key is created again from the copy, each retained volume is pre-bound to the claim the
/// StatefulSet creates, and the copy goes.
pub(super) async fn recover_relocated(
    ctx: &Context,
    vault: &Vault,
    ns: &str,
    name: &str,
    copy: &Secret,
) -> Result<(), Error> {
    let key_text = relocation::copy_key(copy)
        .ok_or_else(|| Error::MasterKey("the relocated copy holds no key".into()))?;
    let secret = desired::master_key_secret(vault, &key_text)
        .map_err(|e| Error::MasterKey(e.to_string()))?;
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .create(&pp, &secret)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    for pv_name in relocation::copy_volumes(copy) {
        let Some(pv) = pvs.get_opt(&pv_name).await? else {
            continue;
        };
        if !relocation::retained_for(&pv, ns, name) {
            continue;
        }
        if let Some(patch) = relocation::rebind_patch(&pv, ns) {
            pvs.patch(&pv_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| refused::<PersistentVolume>(&pv_name, e))?;
        }
    }
    remove_copy(&ctx.client, &ctx.settings.namespace, copy).await?;
    tracing::info!(vault = name, namespace = ns, "relocated vault recovered");
    publish(
        ctx,
        vault,
        EventType::Normal,
        "Recovered",
        "the deleted vault's master key and data volumes are in use again",
    )
    .await;
    Ok(())
}

/// Deletes a relocated copy (its purge-protection finalizer removed first).
pub(super) async fn remove_copy(
    client: &Client,
    operator_ns: &str,
    copy: &Secret,
) -> Result<(), Error> {
    let copies: Api<Secret> = Api::namespaced(client.clone(), operator_ns);
    let copy_name = copy.metadata.name.clone().unwrap_or_default();
    let release = soft_delete::restore_patch(&copy.metadata.finalizers.clone().unwrap_or_default());
    copies
        .patch_metadata(&copy_name, &PatchParams::default(), &Patch::Merge(&release))
        .await?;
    ignore_not_found(copies.delete(&copy_name, &DeleteParams::default()).await)
}

/// Purges the relocated copies whose retention period is over: each retained volume gets its
/// former reclaim policy back (with `Delete`, Kubernetes deletes it), then the copy goes.
pub(super) async fn purge_relocated(
    client: &Client,
    operator_ns: &str,
    now: i64,
) -> Result<usize, Error> {
    let copies: Api<Secret> = Api::namespaced(client.clone(), operator_ns);
    let lp = ListParams::default().labels(&format!(
        "{}=true,{}",
        soft_delete::DELETED_LABEL,
        relocation::VAULT_NAMESPACE_LABEL
    ));
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let mut purged = 0;
    for copy in copies.list(&lp).await?.items {
        if !soft_delete::purge_due(&copy.metadata, now) {
            continue;
        }
        let labels = copy.metadata.labels.clone().unwrap_or_default();
        let (Some(ns), Some(vault)) = (
            labels.get(relocation::VAULT_NAMESPACE_LABEL),
            labels.get(desired::VAULT_LABEL),
        ) else {
            continue;
        };
        for pv_name in relocation::copy_volumes(&copy) {
            if let Some(pv) = pvs.get_opt(&pv_name).await?
                && relocation::retained_for(&pv, ns, vault)
            {
                let patch = relocation::purge_patch(&pv);
                pvs.patch(&pv_name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
        }
        remove_copy(client, operator_ns, &copy).await?;
        tracing::info!(vault = %vault, namespace = %ns, "relocated vault purged after its retention period");
        purged += 1;
    }
    Ok(purged)
}

/// Deletes the kept objects of deleted vaults whose retention period is over (unless a
/// Vault of that name exists again). Returns how many vaults were purged.
pub async fn purge_expired(
    client: &Client,
    scope: &WatchScope,
    operator_ns: &str,
    now: i64,
) -> Result<usize, Error> {
    // Relocated copies (their own label says where the vault lived) are purged apart.
    let lp = ListParams::default().labels(&format!(
        "{}=true,!{}",
        soft_delete::DELETED_LABEL,
        relocation::VAULT_NAMESPACE_LABEL
    ));
    let mut kept = Vec::new();
    for api in scope.apis::<Secret>(client) {
        kept.extend(api.list_metadata(&lp).await?.items);
    }
    let mut purged = purge_relocated(client, operator_ns, now).await?;
    for key in kept {
        // A vault deleted earlier whose namespace is deleted now: move it out.
        if let (Some(ns), Some(vault)) = (
            key.metadata.namespace.as_deref(),
            key.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(desired::VAULT_LABEL)),
        ) && relocate_kept(client, operator_ns, ns, vault).await?
        {
            continue;
        }
        if !soft_delete::purge_due(&key.metadata, now) {
            continue;
        }
        let (Some(ns), Some(vault)) = (
            key.metadata.namespace.clone(),
            key.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(desired::VAULT_LABEL))
                .cloned(),
        ) else {
            continue;
        };
        if Api::<Vault>::namespaced(client.clone(), &ns)
            .get_opt(&vault)
            .await?
            .is_some()
        {
            continue;
        }
        purge_vault(client, &ns, &vault, &key.metadata).await?;
        tracing::info!(vault = %vault, namespace = %ns, "deleted vault purged after its retention period");
        purged += 1;
    }
    Ok(purged)
}

/// Deletes a deleted vault's kept objects: its data PVCs, then its master key (`key` is
/// the master-key Secret's metadata). The caller has decided that it may go.
pub async fn purge_vault(
    client: &Client,
    ns: &str,
    vault: &str,
    key: &ObjectMeta,
) -> Result<(), Error> {
    let merge = PatchParams::default();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let by_vault = ListParams::default().labels(&format!("{}={vault}", desired::VAULT_LABEL));
    for pvc in pvcs.list_metadata(&by_vault).await?.items {
        if !soft_delete::is_kept(&pvc.metadata) {
            continue;
        }
        let pvc_name = pvc.metadata.name.clone().unwrap_or_default();
        let patch = soft_delete::restore_patch(&pvc.metadata.finalizers.unwrap_or_default());
        pvcs.patch_metadata(&pvc_name, &merge, &Patch::Merge(&patch))
            .await?;
        ignore_not_found(pvcs.delete(&pvc_name, &DeleteParams::default()).await)?;
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let key_name = key.name.clone().unwrap_or_default();
    let patch = soft_delete::restore_patch(&key.finalizers.clone().unwrap_or_default());
    secrets
        .patch_metadata(&key_name, &merge, &Patch::Merge(&patch))
        .await?;
    ignore_not_found(secrets.delete(&key_name, &DeleteParams::default()).await)
}

/// Purge protection from the start: the master key and each data claim carry the
/// purge-protection finalizer while the vault lives ([`soft_delete::protect_patch`]).
pub(super) async fn protect_kept_objects(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<(), Error> {
    // A namespace being deleted: the Vault's own deletion keeps (or relocates) them.
    if namespace_ending(client, ns).await? {
        return Ok(());
    }
    let merge = PatchParams::default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let key_name = desired::master_key_secret_name(name);
    if let Some(m) = secrets.get_metadata_opt(&key_name).await?
        && m.metadata.deletion_timestamp.is_none()
        && let Some(patch) = soft_delete::protect_patch(&m.metadata.finalizers.unwrap_or_default())
    {
        secrets
            .patch_metadata(&key_name, &merge, &Patch::Merge(&patch))
            .await?;
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("{}={name}", desired::VAULT_LABEL));
    for pvc in pvcs.list_metadata(&lp).await?.items {
        if pvc.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(patch) =
            soft_delete::protect_patch(&pvc.metadata.finalizers.clone().unwrap_or_default())
        {
            let claim = pvc.metadata.name.clone().unwrap_or_default();
            pvcs.patch_metadata(&claim, &merge, &Patch::Merge(&patch))
                .await?;
        }
    }
    Ok(())
}

/// Whether a namespace is being deleted (or gone).
pub(super) async fn namespace_ending(client: &Client, ns: &str) -> Result<bool, Error> {
    Ok(Api::<Namespace>::all(client.clone())
        .get_opt(ns)
        .await?
        .is_none_or(|n| n.metadata.deletion_timestamp.is_some()))
}

/// Removes the purge-protection finalizer from a vault's master key and data claims (they
/// were relocated: the copies hold the vault now).
async fn release_kept(client: &Client, ns: &str, name: &str) -> Result<(), Error> {
    let merge = PatchParams::default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let key_name = desired::master_key_secret_name(name);
    let protected = |f: &Option<Vec<String>>| {
        f.iter()
            .flatten()
            .any(|x| x == soft_delete::PURGE_PROTECTION_FINALIZER)
    };
    if let Some(m) = secrets.get_metadata_opt(&key_name).await?
        && protected(&m.metadata.finalizers)
    {
        let release = soft_delete::restore_patch(&m.metadata.finalizers.unwrap_or_default());
        secrets
            .patch_metadata(&key_name, &merge, &Patch::Merge(&release))
            .await?;
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("{}={name}", desired::VAULT_LABEL));
    for pvc in pvcs.list_metadata(&lp).await?.items {
        if protected(&pvc.metadata.finalizers) {
            let claim = pvc.metadata.name.clone().unwrap_or_default();
            let release = soft_delete::restore_patch(&pvc.metadata.finalizers.unwrap_or_default());
            pvcs.patch_metadata(&claim, &merge, &Patch::Merge(&release))
                .await?;
        }
    }
    Ok(())
}
