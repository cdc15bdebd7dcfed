//! Grants: their status after a policy push, and their own controller (a grant whose Vault
//! is missing or not ready says so).

use super::*;

/// Patches a grant's status when it changed.
pub(super) async fn report_grant(
    ctx: &Context,
    ns: &str,
    grant: &GrantOutcome,
    access_policies: &[AccessPolicy],
    role_assignments: &[RoleAssignment],
    policy_generation: i64,
    now: &Time,
) -> Result<(), Error> {
    let named = |m: &ObjectMeta| m.name.as_deref() == Some(grant.name.as_str());
    // The grant's current status and generation, whichever kind it is.
    let found = match grant.kind {
        GrantKind::AccessPolicy => access_policies
            .iter()
            .find(|g| named(&g.metadata))
            .map(|g| (g.status.as_ref(), g.metadata.generation)),
        GrantKind::RoleAssignment => role_assignments
            .iter()
            .find(|g| named(&g.metadata))
            .map(|g| (g.status.as_ref(), g.metadata.generation)),
    };
    let Some((current, generation)) = found else {
        return Ok(());
    };
    let new = status::grant_status(current, &grant.state, generation, policy_generation, now);
    if current == Some(&new) {
        return Ok(());
    }
    match grant.kind {
        GrantKind::AccessPolicy => {
            apply_status::<AccessPolicy>(&ctx.client, ns, &grant.name, &new, FIELD_MANAGER).await?
        }
        GrantKind::RoleAssignment => {
            apply_status::<RoleAssignment>(&ctx.client, ns, &grant.name, &new, FIELD_MANAGER)
                .await?
        }
    }
    Ok(())
}

/// What the grants' controller needs of `AccessPolicy` and `RoleAssignment`.
pub trait Grant:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    fn vault_name(&self) -> &str;
    fn grant_status(&self) -> Option<&GrantStatus>;
}

impl Grant for AccessPolicy {
    fn vault_name(&self) -> &str {
        &self.spec.vault_ref.name
    }
    fn grant_status(&self) -> Option<&GrantStatus> {
        self.status.as_ref()
    }
}

impl Grant for RoleAssignment {
    fn vault_name(&self) -> &str {
        &self.spec.vault_ref.name
    }
    fn grant_status(&self) -> Option<&GrantStatus> {
        self.status.as_ref()
    }
}

/// Re-checks a grant whose vault is missing or not ready.
pub const GRANT_RECHECK: Duration = Duration::from_secs(60);

/// A grant's own pass: says `VaultNotFound` or `VaultNotReady` when its vault cannot apply
/// it. Everything else about grants is reported by their Vault's reconcile.
pub async fn reconcile_grant<G: Grant>(grant: Arc<G>, ctx: Arc<Context>) -> Result<Action, Error> {
    let (Some(name), Some(ns)) = (grant.meta().name.clone(), grant.meta().namespace.clone()) else {
        return Ok(Action::await_change());
    };
    if grant.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // A Vault being deleted no longer applies anything.
    let vault = Api::<Vault>::namespaced(ctx.client.clone(), &ns)
        .get_opt(grant.vault_name())
        .await?
        .filter(|v| v.metadata.deletion_timestamp.is_none());
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let pending = status::pending_grant_status(
        grant.grant_status(),
        grant.vault_name(),
        &ns,
        vault.as_ref(),
        grant.meta().generation,
        &now,
    );
    if let Some(new) = pending {
        apply_status::<G>(&ctx.client, &ns, &name, &new, FIELD_MANAGER).await?;
    }
    let vault_ready = vault
        .as_ref()
        .is_some_and(|v| status::ready_state(v.status.as_ref()).is_some_and(|(s, _)| s == "True"));
    Ok(if vault_ready {
        Action::await_change()
    } else {
        Action::requeue(GRANT_RECHECK)
    })
}

pub fn grant_error_policy<G: Grant>(grant: Arc<G>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failures.inc();
    tracing::warn!(
        kind = %G::kind(&()),
        name = %grant.name_any(),
        namespace = grant.namespace().unwrap_or_default(),
        error = %error,
        "grant reconcile failed"
    );
    Action::requeue(backoff(2))
}

/// A grants' controller over one namespace (or all). Its Vault's changes trigger it too, so
/// that a grant says `VaultNotFound` within seconds of its Vault's deletion, and
/// `VaultNotReady` as soon as the Vault stops serving.
pub fn grant_controller<G: Grant>(client: &Client, namespace: Option<&str>) -> Controller<G> {
    let config = watcher::Config::default().any_semantic();
    let grants = Controller::new(api_in::<G>(client, namespace), config.clone());
    let store = grants.store();
    grants.watches(
        api_in::<Vault>(client, namespace),
        config,
        move |v: Vault| grants_of(&store.state(), &v),
    )
}

/// The grants (of one kind) that name this Vault.
pub fn grants_of<G: Grant>(grants: &[Arc<G>], vault: &Vault) -> Vec<ObjectRef<G>> {
    let name = vault.name_any();
    grants
        .iter()
        .filter(|g| g.meta().namespace == vault.metadata.namespace && g.vault_name() == name)
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}
