//! The I/O shell of the operator: the `Vault` controller, its reconcile and the grants' own
//! reconcile (the program around them is [`super::app`]). Everything it decides comes from
//! the pure functions in [`super::desired`], [`super::policy`], [`super::status`],
//! [`super::ca`] and [`super::soft_delete`]; this file only reads, applies and reports.
//!
//! Habits (controller-rs): one field manager for every server-side apply
//! ([`FIELD_MANAGER`], forced), status patched only when it changed, an event only on a
//! transition of the Ready condition, a short backed-off requeue after errors and a long
//! periodic one after success.

use super::ca::{self, Ca, CaError};
use super::desired::{self, DesiredError, DesiredObjects};
use super::expiry;
use super::policy::{self, GrantKind, GrantOutcome};
use super::push::{self, PolicyEndpoint};
use super::relocation;
use super::scope::{WatchScope, api_in};
use super::soft_delete;
use super::status::{self, Outcome, Rollout};
use super::volumes;
use super::{FIELD_MANAGER, OperatorSettings};
use crate::api::{AccessPolicy, CreateMode, GrantStatus, RoleAssignment, Vault, VaultStatus};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, ListParams, PartialObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod deleted;
mod grants;
mod objects;
pub use deleted::*;
pub use grants::*;
use objects::*;

/// Periodic resync of a healthy vault (certificate renewal, drift).
pub const RESYNC: Duration = Duration::from_secs(300);
/// Requeue while pods are still coming up (the StatefulSet watch usually comes first).
pub const WAIT_FOR_PODS: Duration = Duration::from_secs(30);
/// Requeue while a StatefulSet is deleted for re-creation (its deletion event usually
/// comes first).
pub const RECREATE_RECHECK: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot generate the master key: {0}")]
    MasterKey(String),
    #[error(transparent)]
    Certificate(#[from] CaError),
    /// The ConfigMap that carries the cluster's JWKS to the vault cannot be built.
    #[error("cannot build the cluster JWKS ConfigMap: {0}")]
    JwksConfigMap(#[source] DesiredError),
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The API server refused an object the operator applies (or the change it needs):
    /// reported as `Degraded=True` with this message, and retried with backoff.
    #[error("{kind} {name}: {message}")]
    Refused {
        kind: String,
        name: String,
        message: String,
    },
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::MasterKey(_) => "master_key",
            Error::Certificate(_) => "certificate",
            Error::JwksConfigMap(_) => "jwks",
            Error::Finalizer(_) => "finalizer",
            Error::Refused { .. } => "refused",
        }
    }
}

/// The operator's own metrics.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub reconciliations: Counter,
    pub failures: Counter,
    /// Expired or near-expiry object versions per vault, from its expiry report.
    pub expiring: Family<VaultLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VaultLabels {
    pub namespace: String,
    pub vault: String,
}

impl Metrics {
    pub fn register(self, registry: &mut Registry) -> Self {
        registry.register(
            "kvault_operator_reconciliations",
            "Vault reconciliations started",
            self.reconciliations.clone(),
        );
        registry.register(
            "kvault_operator_reconcile_failures",
            "Vault reconciliations that failed (and were requeued)",
            self.failures.clone(),
        );
        registry.register(
            "kvault_operator_expiring_objects",
            "Expired or near-expiry object versions of each vault (its expiry report)",
            self.expiring.clone(),
        );
        self
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub settings: OperatorSettings,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// The CA that signs the vaults' server certificates.
    pub ca: Arc<Ca>,
    /// Where policy documents go (the vaults; a fake in tests).
    pub policy: Arc<dyn PolicyEndpoint>,
    /// Consecutive failures per vault, for the error backoff.
    failures: Mutex<HashMap<ObjectRef<Vault>, u32>>,
    /// The cluster JWKS and when it was fetched.
    jwks: tokio::sync::Mutex<Option<(std::time::Instant, String)>>,
    /// The token service's keys, which vaults are told to trust.
    token_service_keys: Option<Arc<std::sync::RwLock<crate::identity::signing::KeyRing>>>,
}

impl Context {
    pub fn new(
        client: Client,
        settings: OperatorSettings,
        metrics: Metrics,
        ca: Arc<Ca>,
        policy: Arc<dyn PolicyEndpoint>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            metrics,
            ca,
            policy,
            failures: Mutex::default(),
            jwks: tokio::sync::Mutex::default(),
            token_service_keys: None,
        }
    }

    pub fn with_token_service_keys(
        mut self,
        keys: Option<Arc<std::sync::RwLock<crate::identity::signing::KeyRing>>>,
    ) -> Self {
        self.token_service_keys = keys;
        self
    }

    /// The settings with the token service's current public keys, for a policy document.
    pub fn settings_now(&self) -> OperatorSettings {
        let mut settings = self.settings.clone();
        if let (Some(ts), Some(keys)) = (&mut settings.token_service, &self.token_service_keys) {
            ts.jwks = keys.read().ok().and_then(|ring| ring.jwks().ok());
        }
        settings
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<Vault>, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Requeue delay after `failures` consecutive failures: 5 s, doubling, at most 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    crate::clock::exponential_backoff(failures, Duration::from_secs(5), Duration::from_secs(300))
}

/// The Vault a grant names (same namespace).
pub fn grant_vault(meta: &ObjectMeta, vault_name: &str) -> Option<ObjectRef<Vault>> {
    let ns = meta.namespace.as_deref()?;
    Some(ObjectRef::new(vault_name).within(ns))
}

/// One vault, one pass, behind the soft-delete finalizer: master key, certificate, objects,
/// policy, status; or, when the Vault is being deleted, marking what is kept.
pub async fn reconcile(vault: Arc<Vault>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciliations.inc();
    let Some(ns) = vault.metadata.namespace.clone() else {
        return Ok(Action::await_change());
    };
    let key = ObjectRef::from_obj(vault.as_ref());
    let api: Api<Vault> = Api::namespaced(ctx.client.clone(), &ns);
    // A Vault without our finalizer is new, or the cache has not seen the finalizer we just
    // added (several triggers for one `kubectl apply`): read it fresh rather than send a
    // finalizer patch that the API server refuses as stale.
    let vault = if vault.metadata.deletion_timestamp.is_none()
        && !vault
            .finalizers()
            .iter()
            .any(|f| f == soft_delete::VAULT_FINALIZER)
    {
        match api.get_opt(&vault.name_any()).await? {
            Some(fresh) => Arc::new(fresh),
            None => return Ok(Action::await_change()),
        }
    } else {
        vault
    };
    let action = finalizer(&api, soft_delete::VAULT_FINALIZER, vault, |event| async {
        match event {
            FinalizerEvent::Apply(v) => apply_vault(v, &ctx).await,
            FinalizerEvent::Cleanup(v) => keep_deleted_vault(v, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))?;
    ctx.failures().remove(&key);
    Ok(action)
}

async fn apply_vault(vault: Arc<Vault>, ctx: &Context) -> Result<Action, Error> {
    let (Some(name), Some(ns)) = (
        vault.metadata.name.clone(),
        vault.metadata.namespace.clone(),
    ) else {
        return Ok(Action::await_change());
    };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut refusal = None;
    let (outcome, applied_policy) = match plan(&vault, &ctx.settings) {
        Err(invalid) => (invalid, None),
        Ok(objects) => match converge(ctx, &vault, &ns, &name, &objects, &now).await {
            Ok(Some(done)) => done,
            Ok(None) => return Ok(Action::requeue(RECREATE_RECHECK)),
            Err(e @ Error::Refused { .. }) => {
                let outcome = Outcome::ApplyFailed {
                    message: e.to_string(),
                    serving: status::ready_state(vault.status.as_ref())
                        .is_some_and(|(s, _)| s == "True"),
                };
                refusal = Some(e);
                (outcome, None)
            }
            Err(e) => return Err(e),
        },
    };
    let mut new_status = status::vault_status(&vault, &outcome, &now);
    let policy_applied = applied_policy.is_some();
    if let Some((generation, digest)) = applied_policy {
        new_status.applied_policy_generation = Some(generation);
        new_status.applied_policy_digest = Some(digest);
    }
    if vault.status.as_ref() != Some(&new_status) {
        apply_status::<Vault>(&ctx.client, &ns, &name, &new_status, FIELD_MANAGER).await?;
        publish_transition(ctx, &vault, &new_status).await;
    }
    if let Some(e) = refusal {
        // Said in the status and an event; the error policy retries with backoff.
        return Err(e);
    }
    if policy_applied {
        report_expiry(ctx, &vault).await;
    }
    Ok(match outcome {
        Outcome::Invalid { .. } => Action::await_change(),
        Outcome::Applied(r) if r.serving() || r.desired == 0 => Action::requeue(RESYNC),
        Outcome::Applied(_)
        | Outcome::PolicyNotApplied { .. }
        | Outcome::ApplyFailed { .. }
        | Outcome::PodsFailing { .. } => Action::requeue(WAIT_FOR_PODS),
    })
}

/// The applied policy's generation and digest, when this pass pushed it.
type AppliedPolicy = Option<(i64, String)>;

/// Master key, certificate, the vault's objects and its policy; `None` while the
/// StatefulSet is re-created for larger volumes.
async fn converge(
    ctx: &Context,
    vault: &Vault,
    ns: &str,
    name: &str,
    objects: &DesiredObjects,
    now: &Time,
) -> Result<Option<(Outcome, AppliedPolicy)>, Error> {
    if let Some(refused) = ensure_master_key(ctx, vault, ns, name).await? {
        return Ok(Some((refused, None)));
    }
    if vault.spec.soft_delete.purge_protection {
        protect_kept_objects(&ctx.client, ns, name).await?;
    }
    ensure_certificate(ctx, vault, ns, name, now.0.as_second()).await?;
    apply(
        &ctx.client,
        ns,
        &desired::ca_config_map(ns, &ctx.ca.cert_pem),
    )
    .await?;
    let jwks = cluster_jwks(ctx).await?;
    let jwks_map = desired::cluster_jwks_config_map(vault, &jwks).map_err(Error::JwksConfigMap)?;
    apply(&ctx.client, ns, &jwks_map).await?;
    let Some(sts) = apply_objects(&ctx.client, ns, name, objects).await? else {
        return Ok(None);
    };
    let rollout = Rollout::of(&sts, vault.spec.replicas);
    if !rollout.serving() {
        if rollout.desired > 0
            && let Some(trouble) = pod_trouble(ctx, ns, name).await?
        {
            return Ok(Some((Outcome::PodsFailing { rollout, trouble }, None)));
        }
        return Ok(Some((Outcome::Applied(rollout), None)));
    }
    let (outcome, applied) = sync_policy(ctx, vault, ns, rollout, now).await?;
    Ok(Some((outcome, applied)))
}

fn ignore_not_found<T>(r: Result<T, kube::Error>) -> Result<(), Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Compiles the vault's grants and settings, pushes the document when its content changed,
/// and reports on every grant. Returns the outcome and the (generation, digest) the vault
/// now holds.
async fn sync_policy(
    ctx: &Context,
    vault: &Vault,
    ns: &str,
    rollout: Rollout,
    now: &Time,
) -> Result<(Outcome, Option<(i64, String)>), Error> {
    let lp = ListParams::default();
    let access_policies = Api::<AccessPolicy>::namespaced(ctx.client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    let role_assignments = Api::<RoleAssignment>::namespaced(ctx.client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    let headers = resolve_event_headers(ctx, vault, ns).await?;
    let compiled = match policy::compile_with(
        vault,
        &access_policies,
        &role_assignments,
        0,
        &ctx.settings_now(),
        &headers,
    ) {
        Ok(c) => c,
        Err(e) => {
            let outcome = Outcome::Invalid {
                reason: status::reason::INVALID_POLICY,
                message: e.to_string(),
            };
            return Ok((outcome, None));
        }
    };
    let old = vault.status.as_ref();
    let (generation, needed) = policy::next_generation(
        old.and_then(|s| s.applied_policy_generation),
        old.and_then(|s| s.applied_policy_digest.as_deref()),
        &compiled.digest,
    );
    let applied = if needed {
        let mut document = compiled.document.clone();
        document.generation = generation;
        match push::push(ctx.policy.as_ref(), vault, document).await {
            Ok(g) => {
                tracing::info!(vault = %vault.name_any(), namespace = ns, generation = g, "policy pushed");
                for warning in &compiled.warnings {
                    publish(ctx, vault, EventType::Warning, "PolicyWarning", warning).await;
                }
                g
            }
            Err(e) => {
                let outcome = Outcome::PolicyNotApplied {
                    rollout,
                    message: format!("cannot push the policy: {e}"),
                };
                return Ok((outcome, None));
            }
        }
    } else {
        generation
    };
    let applied = i64::try_from(applied).unwrap_or(i64::MAX);
    for grant in &compiled.grants {
        report_grant(
            ctx,
            ns,
            grant,
            &access_policies,
            &role_assignments,
            applied,
            now,
        )
        .await?;
    }
    Ok((Outcome::Applied(rollout), Some((applied, compiled.digest))))
}

/// A finalizer patch the API server refused because the object changed meanwhile (its
/// `test` operation failed) or is already gone (a second pass on a stale cached Vault after
/// its deletion completed): not a failure, the next pass sees the object as it is.
pub fn is_stale_finalizer_patch(error: &Error) -> bool {
    use kube::runtime::finalizer::Error as F;
    match error {
        Error::Finalizer(e) => matches!(
            e.as_ref(),
            F::AddFinalizer(kube::Error::Api(s)) | F::RemoveFinalizer(kube::Error::Api(s))
                if s.code == 422 || s.code == 409 || s.code == 404
        ),
        _ => false,
    }
}

/// Logs, counts and requeues with a per-vault exponential backoff.
pub fn error_policy(vault: Arc<Vault>, error: &Error, ctx: Arc<Context>) -> Action {
    if is_stale_finalizer_patch(error) {
        tracing::debug!(vault = %vault.name_any(), "finalizer patch on a stale object; retrying");
        return Action::requeue(Duration::from_secs(1));
    }
    ctx.metrics.failures.inc();
    let n = {
        let mut failures = ctx.failures();
        let n = failures
            .entry(ObjectRef::from_obj(vault.as_ref()))
            .or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = backoff(n);
    tracing::warn!(
        vault = %vault.name_any(),
        namespace = vault.namespace().unwrap_or_default(),
        error = %error,
        kind = error.metric_label(),
        retry_in_secs = delay.as_secs(),
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// The objects to apply, or why there are none.
fn plan(vault: &Vault, settings: &OperatorSettings) -> Result<DesiredObjects, Outcome> {
    let name = vault.name_any();
    let invalid = |e: DesiredError| {
        let reason = match e {
            DesiredError::Name(_) => status::reason::INVALID_NAME,
            _ => status::reason::INVALID_SPEC,
        };
        Outcome::Invalid {
            reason,
            message: e.to_string(),
        }
    };
    desired::check_vault_name(&name).map_err(invalid)?;
    desired::desired_objects(vault, settings).map_err(invalid)
}

/// Creates `<vault>-master-key` if it does not exist. Never replaces or reads it: only its
/// metadata is fetched, and the key itself is neither logged nor kept. A deleted vault's
/// kept key is taken back with `createMode: Recover` and refuses the name otherwise;
/// `Recover` with nothing to recover is refused too.
async fn ensure_master_key(
    ctx: &Context,
    vault: &Vault,
    ns: &str,
    name: &str,
) -> Result<Option<Outcome>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret_name = desired::master_key_secret_name(name);
    let recover_asked = vault.spec.create_mode == CreateMode::Recover;
    match secrets.get_metadata_opt(&secret_name).await? {
        Some(m) if soft_delete::is_kept(&m.metadata) => {
            if recover_asked {
                recover(ctx, vault, ns, name, &m.metadata).await?;
                return Ok(None);
            }
            let until = m
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(soft_delete::PURGE_AFTER_ANNOTATION))
                .cloned()
                .unwrap_or_default();
            return Ok(Some(Outcome::Invalid {
                reason: status::reason::DELETED_VAULT_EXISTS,
                message: format!(
                    "a deleted vault named {name} keeps its data until {until}: set \
                     createMode: Recover to take it back, or purge it first"
                ),
            }));
        }
        Some(_) => return Ok(None),
        None => {}
    }
    // Relocated when its namespace was deleted?
    let copies: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    match copies
        .get_opt(&relocation::kept_copy_name(ns, name))
        .await?
    {
        Some(copy) if recover_asked => {
            recover_relocated(ctx, vault, ns, name, &copy).await?;
            return Ok(None);
        }
        Some(copy) => {
            let until = copy
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(soft_delete::PURGE_AFTER_ANNOTATION))
                .cloned()
                .unwrap_or_default();
            return Ok(Some(Outcome::Invalid {
                reason: status::reason::DELETED_VAULT_EXISTS,
                message: format!(
                    "a deleted vault named {name} of a former namespace {ns} keeps its data \
                     until {until}: set createMode: Recover to take it back, or purge it first"
                ),
            }));
        }
        None if recover_asked => {
            return Ok(Some(Outcome::Invalid {
                reason: status::reason::NOTHING_TO_RECOVER,
                message: format!("createMode is Recover but no deleted vault named {name} is kept"),
            }));
        }
        None => {}
    }
    let key = crate::crypto::MasterKey::generate().map_err(|e| Error::MasterKey(e.to_string()))?;
    let secret = desired::master_key_secret(vault, &key.to_base64())
        .map_err(|e| Error::MasterKey(e.to_string()))?;
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match secrets.create(&pp, &secret).await {
        Ok(_) => {
            tracing::info!(vault = name, namespace = ns, secret = %secret_name, "master key created");
            Ok(None)
        }
        // Created meanwhile by another pass: the existing key wins.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Issues `<vault>-tls` when it is missing, expiring or signed by another CA. The server
/// re-reads the Secret's files without a restart.
async fn ensure_certificate(
    ctx: &Context,
    vault: &Vault,
    ns: &str,
    name: &str,
    now: i64,
) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let existing = secrets.get_opt(&desired::tls_secret_name(name)).await?;
    if ca::needs_new_certificate(existing.as_ref(), &ctx.ca.cert_pem, now) {
        let secret = ctx.ca.server_secret(vault, &ctx.settings, now)?;
        apply(&ctx.client, ns, &secret).await?;
        tracing::info!(vault = name, namespace = ns, "server certificate issued");
    }
    Ok(())
}

/// How long the cluster JWKS is reused before it is fetched again (key rotation reaches the
/// vaults within this time plus the kubelet's ConfigMap sync).
pub const JWKS_TTL: Duration = Duration::from_secs(300);

/// The cluster's service-account JWKS (`/openid/v1/jwks`), for the vault to check pods'
/// tokens offline; fetched at most every [`JWKS_TTL`].
async fn cluster_jwks(ctx: &Context) -> Result<String, Error> {
    let mut cached = ctx.jwks.lock().await;
    if let Some((at, jwks)) = cached.as_ref()
        && at.elapsed() < JWKS_TTL
    {
        return Ok(jwks.clone());
    }
    let request = axum::http::Request::get(super::CLUSTER_JWKS_API_PATH)
        .body(Vec::new())
        .map_err(|e| Error::Kube(kube::Error::HttpError(e)))?;
    let jwks = ctx.client.request_text(request).await?;
    *cached = Some((std::time::Instant::now(), jwks.clone()));
    Ok(jwks)
}

/// Server-side apply of `status` to the status subresource of `K` `ns/name`, as
/// `field_manager`, forced: the one way every controller of the operator writes a status.
pub async fn apply_status<K>(
    client: &Client,
    ns: &str,
    name: &str,
    status: &impl Serialize,
    field_manager: &str,
) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let pp = PatchParams::apply(field_manager).force();
    api.patch_status(name, &pp, &Patch::Apply(&body)).await?;
    Ok(())
}

/// An event when Ready changes status or reason (not on every pass). Best effort: a failed
/// event never fails the reconcile.
async fn publish_transition(ctx: &Context, vault: &Vault, new: &VaultStatus) {
    let state = status::condition_state;
    use crate::api::condition::{DEGRADED, READY};
    let ready_changed = state(vault.status.as_ref(), READY) != state(Some(new), READY);
    let degraded_changed = state(vault.status.as_ref(), DEGRADED) != state(Some(new), DEGRADED);
    if !ready_changed && !degraded_changed {
        return;
    }
    let degraded = new
        .conditions
        .iter()
        .find(|c| c.type_ == DEGRADED && c.status == "True");
    // A degraded vault's event says what is wrong (which may not be Ready's concern:
    // a vault can serve its previous spec while the new one is refused).
    let (type_, shown) = match degraded {
        Some(d) => (EventType::Warning, Some(d)),
        None => (
            EventType::Normal,
            new.conditions.iter().find(|c| c.type_ == READY),
        ),
    };
    let Some(c) = shown else { return };
    publish(ctx, vault, type_, &c.reason, &c.message).await;
}

/// One event about a vault; best effort.
async fn publish(ctx: &Context, vault: &Vault, type_: EventType, reason: &str, note: &str) {
    publish_action(ctx, vault, type_, reason, note, "Reconcile").await
}

/// One event with its own `action` (the recorder's series key besides type and reason).
async fn publish_action(
    ctx: &Context,
    vault: &Vault,
    type_: EventType,
    reason: &str,
    note: &str,
    action: &str,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.to_string()).filter(|n| !n.is_empty()),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &vault.object_ref(&())).await {
        tracing::warn!(vault = %vault.name_any(), error = %e, "cannot publish an event");
    }
}

/// Warning events for the vault's expired and near-expiry objects, from its expiry report;
/// best effort (a vault that cannot answer is skipped until the next pass).
async fn report_expiry(ctx: &Context, vault: &Vault) {
    match ctx.policy.expiring(vault).await {
        Ok(report) => {
            ctx.metrics
                .expiring
                .get_or_create(&VaultLabels {
                    namespace: vault.namespace().unwrap_or_default(),
                    vault: vault.name_any(),
                })
                .set(i64::try_from(report.count).unwrap_or(i64::MAX));
            for n in expiry::notices(&report) {
                publish_action(
                    ctx,
                    vault,
                    EventType::Warning,
                    &n.reason,
                    &n.note,
                    &n.action,
                )
                .await;
            }
        }
        Err(e) => tracing::debug!(
            vault = %vault.name_any(),
            error = %e,
            "cannot read the vault's expiry report"
        ),
    }
}

/// Reads the Secrets holding the event subscriptions' header values (only Secrets labelled
/// `kvault.dev/event-auth: "true"` are used). The values go into the pushed document and
/// nowhere else: never a log, an event or the Vault's status.
async fn resolve_event_headers(
    ctx: &Context,
    vault: &Vault,
    ns: &str,
) -> Result<policy::ResolvedHeaders, Error> {
    let mut out = policy::ResolvedHeaders::new();
    let Some(n) = &vault.spec.notifications else {
        return Ok(out);
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for s in &n.subscriptions {
        let Some(h) = &s.auth_header else { continue };
        let r = &h.secret_key_ref;
        let found = secrets.get_opt(&r.name).await?;
        out.insert(
            s.name.clone(),
            policy::header_from_secret(found.as_ref(), &r.name, &r.key),
        );
    }
    Ok(out)
}

/// The `Vault` controller over one namespace (or all of them): owned objects and the
/// vault's grants trigger its reconcile.
pub fn controller(client: Client, namespace: Option<&str>) -> Controller<Vault> {
    let all = watcher::Config::default().any_semantic();
    // Only objects the operator made (not every Secret of the cluster).
    let ours = watcher::Config::default()
        .labels(&format!("app.kubernetes.io/managed-by={FIELD_MANAGER}"))
        .any_semantic();
    // The server TLS Secrets only, by label, and only their metadata (`PartialObjectMeta`):
    // a changed or deleted one is repaired at once, and no private key is ever held in the
    // operator's caches. Master keys are never watched.
    let tls_secrets = watcher::Config::default()
        .labels(&format!(
            "app.kubernetes.io/managed-by={FIELD_MANAGER},{}={}",
            desired::SECRET_ROLE_LABEL.0,
            desired::SECRET_ROLE_LABEL.1
        ))
        .any_semantic();
    Controller::new(api_in::<Vault>(&client, namespace), all.clone())
        .owns(api_in::<StatefulSet>(&client, namespace), ours.clone())
        .owns(api_in::<Service>(&client, namespace), ours.clone())
        .owns(api_in::<ServiceAccount>(&client, namespace), ours.clone())
        .owns(api_in::<NetworkPolicy>(&client, namespace), ours.clone())
        .owns(
            api_in::<PodDisruptionBudget>(&client, namespace),
            ours.clone(),
        )
        .owns(
            api_in::<PartialObjectMeta<Secret>>(&client, namespace),
            tls_secrets,
        )
        // The JWKS ConfigMap.
        .owns(api_in::<ConfigMap>(&client, namespace), ours)
        .watches(
            api_in::<AccessPolicy>(&client, namespace),
            all.clone(),
            |g: AccessPolicy| grant_vault(&g.metadata, &g.spec.vault_ref.name),
        )
        .watches(
            api_in::<RoleAssignment>(&client, namespace),
            all,
            |g: RoleAssignment| grant_vault(&g.metadata, &g.spec.vault_ref.name),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vaults_change_triggers_exactly_its_grants() {
        use crate::operator::fixtures::{access_policy, sa, vault};
        let grants = vec![
            Arc::new(access_policy("team-a", "web", "payments", sa("web"))),
            Arc::new(access_policy("team-a", "batch", "other", sa("batch"))),
            Arc::new(access_policy("team-b", "web", "payments", sa("web"))),
        ];
        let v = vault("team-a", "payments", Default::default());
        let hit = grants_of(&grants, &v);
        assert_eq!(hit, vec![ObjectRef::from_obj(grants[0].as_ref())]);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(20));
        assert_eq!(backoff(7), Duration::from_secs(300));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn grants_map_to_the_vault_in_their_namespace() {
        let g = crate::operator::fixtures::access_policy(
            "team-a",
            "worker",
            "payments",
            crate::operator::fixtures::sa("web"),
        );
        let r = grant_vault(&g.metadata, &g.spec.vault_ref.name).unwrap();
        assert_eq!(r, ObjectRef::new("payments").within("team-a"));
    }
}
