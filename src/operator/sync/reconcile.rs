//! The `SecretSync` controller: read the vault as the sync's ServiceAccount, render, apply
//! the Secret with its own field manager, report, and restart what uses it. Decisions are
//! the pure functions of [`super::plan`], [`super::render`] and [`super::restart`].

use super::events::VaultChange;
use super::plan::{self, SYNC_LABEL, SyncPlan};
use super::reason;
use super::render::{self, Ownership, SYNC_FIELD_MANAGER};
use super::restart::{self, RestartDecision, RestartState, RestartTiming};
use crate::api::{RestartTarget, SecretSync, Vault};
use crate::client::{ClientConfig, ClientError, VaultClient};
use crate::operator::scope::api_in;
use crate::operator::status::{Wanted, merge_conditions};
use crate::provider::params::ObjectSpec;
use crate::provider::render::Material;
use crate::wire::secrets::SecretItem;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zeroize::Zeroizing;

/// Lifetime of the token minted for one sync.
pub const SYNC_TOKEN_SECONDS: i64 = 600;
/// Requeue when the vault or the ServiceAccount is missing (they usually come soon).
pub const WAIT_FOR_VAULT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// Why a sync wrote nothing: the `Ready=False` reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFailure {
    pub reason: &'static str,
    pub message: String,
}

impl SyncFailure {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    /// The vault's answer for `what`, as a reason: the vault's own message says which
    /// permission is missing.
    pub fn from_client(e: &ClientError, what: &str, principal: &str) -> Self {
        let reason = match e.status() {
            Some(401) | Some(403) => reason::FORBIDDEN,
            Some(404) => reason::OBJECT_NOT_FOUND,
            _ => reason::VAULT_UNAVAILABLE,
        };
        Self::new(reason, format!("{what} as {principal}: {e}"))
    }

    /// Whether waiting may fix it without a change of the spec.
    fn transient(&self) -> bool {
        self.reason == reason::VAULT_UNAVAILABLE || self.reason == reason::APPLY_FAILED
    }
}

/// Reads one vault as one ServiceAccount (a trait, so reconcile tests need no vault).
#[async_trait::async_trait]
pub trait VaultReader: Send + Sync {
    async fn list_secrets(&self) -> Result<Vec<SecretItem>, ClientError>;
    /// The object's version id and content.
    async fn fetch(&self, spec: &ObjectSpec) -> Result<(String, Material), ClientError>;
}

/// Opens [`VaultReader`]s.
#[async_trait::async_trait]
pub trait VaultAccess: Send + Sync {
    async fn reader(
        &self,
        vault: &Vault,
        namespace: &str,
        service_account: &str,
    ) -> Result<Box<dyn VaultReader>, SyncFailure>;
}

/// The operator's token service, as the vaults trust it: its signing keys, issuer and
/// tenant.
#[derive(Clone)]
pub struct TokenIssuer {
    pub keys: Arc<std::sync::RwLock<crate::identity::signing::KeyRing>>,
    pub issuer: String,
    pub tenant: String,
}

/// The real access: an access token for the sync's ServiceAccount from the operator's own
/// token service (the issuer every vault trusts for service accounts), with the vault's URL
/// as audience — the token a pod of that ServiceAccount would get by workload identity, so
/// the vault's grants decide. No TokenRequest: the operator needs no right to mint
/// Kubernetes tokens of other accounts. The token lives only for the sync, never logged.
pub struct ServiceAccountAccess {
    pub client: Client,
    pub ca_file: Option<PathBuf>,
    /// `None`: the operator runs without workload identity, so it has no token service.
    pub issuer: Option<TokenIssuer>,
}

impl ServiceAccountAccess {
    fn token(
        issuer: &TokenIssuer,
        namespace: &str,
        service_account: &str,
        audience: &str,
    ) -> Result<Zeroizing<String>, String> {
        let principal = crate::policy::Principal {
            identity: crate::policy::Identity::ServiceAccount {
                namespace: namespace.into(),
                name: service_account.into(),
            },
            groups: vec![],
            application: None,
            issuer: issuer.issuer.clone(),
        };
        let now = Timestamp::now().as_second();
        let uti = crate::crypto::random::<12>()
            .map(|b| crate::crypto::hex(&b))
            .map_err(|_| "no randomness".to_string())?;
        let claims = crate::identity::exchange::access_claims(
            &issuer.issuer,
            &issuer.tenant,
            &principal,
            audience,
            now,
            SYNC_TOKEN_SECONDS,
            uti,
        );
        let ring = issuer
            .keys
            .read()
            .map_err(|_| "the signing keys are unavailable".to_string())?;
        let key = ring
            .active(now)
            .ok_or_else(|| "the token service has no signing key yet".to_string())?;
        key.sign(&claims)
            .map_err(|e| format!("signing failed: {e}"))
    }
}

#[async_trait::async_trait]
impl VaultAccess for ServiceAccountAccess {
    async fn reader(
        &self,
        vault: &Vault,
        namespace: &str,
        service_account: &str,
    ) -> Result<Box<dyn VaultReader>, SyncFailure> {
        let Some(issuer) = &self.issuer else {
            return Err(SyncFailure::new(
                reason::TOKEN_SERVICE_DISABLED,
                "SecretSync reads as its ServiceAccount through the operator's token service; run the operator with --workload-identity true",
            ));
        };
        let url = vault
            .url()
            .ok_or_else(|| SyncFailure::new(reason::VAULT_NOT_FOUND, "the Vault has no name"))?;
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        match sas.get_opt(service_account).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(SyncFailure::new(
                    reason::SERVICE_ACCOUNT_NOT_FOUND,
                    format!("ServiceAccount {namespace}/{service_account} does not exist"),
                ));
            }
            Err(e) => return Err(SyncFailure::new(reason::VAULT_UNAVAILABLE, e.to_string())),
        }
        let token = Self::token(issuer, namespace, service_account, &url)
            .map_err(|e| SyncFailure::new(reason::VAULT_UNAVAILABLE, e))?;
        let client = VaultClient::new(ClientConfig {
            url: crate::operator::push::vault_address(url),
            token,
            ca_file: self.ca_file.clone(),
        })
        .map_err(|e| SyncFailure::new(reason::VAULT_UNAVAILABLE, e.to_string()))?;
        Ok(Box::new(client))
    }
}

#[async_trait::async_trait]
impl VaultReader for VaultClient {
    async fn list_secrets(&self) -> Result<Vec<SecretItem>, ClientError> {
        VaultClient::list_secrets(self).await
    }
    async fn fetch(&self, spec: &ObjectSpec) -> Result<(String, Material), ClientError> {
        crate::provider::fetch::material_of(self, spec.kind, &spec.name, spec.version.as_deref())
            .await
    }
}

/// The SecretSync metrics.
#[derive(Debug, Default, Clone)]
pub struct SyncMetrics {
    /// Passes by their `Ready` reason (`Synced` or why not).
    pub syncs: Family<ReasonLabel, Counter>,
    /// Workloads restarted (targets and `kvault.dev/restart-on`).
    pub restarts: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

impl SyncMetrics {
    pub fn register(self, registry: &mut Registry) -> Self {
        registry.register(
            "kvault_operator_secret_syncs",
            "SecretSync passes, by the reason of their Ready condition",
            self.syncs.clone(),
        );
        registry.register(
            "kvault_operator_rollout_restarts",
            "Workloads restarted because vault data they use changed",
            self.restarts.clone(),
        );
        self
    }
}

/// What every sync reconcile shares.
pub struct SyncContext {
    pub client: Client,
    pub recorder: Recorder,
    pub access: Arc<dyn VaultAccess>,
    pub timing: RestartTiming,
    pub metrics: SyncMetrics,
    failures: Mutex<HashMap<ObjectRef<SecretSync>, u32>>,
}

impl SyncContext {
    pub fn new(client: Client, access: Arc<dyn VaultAccess>, timing: RestartTiming) -> Self {
        let reporter = Reporter {
            controller: "kvault-secretsync".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            access,
            timing,
            metrics: SyncMetrics::default(),
            failures: Mutex::default(),
        }
    }

    pub fn with_metrics(mut self, metrics: SyncMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<SecretSync>, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What one successful sync wrote.
struct Written {
    hash: String,
    keys: u32,
    objects: Vec<String>,
}

/// One SecretSync, one pass.
pub async fn reconcile_sync(sync: Arc<SecretSync>, ctx: Arc<SyncContext>) -> Result<Action, Error> {
    let (Some(ns), Some(name)) = (sync.metadata.namespace.clone(), sync.metadata.name.clone())
    else {
        return Ok(Action::await_change());
    };
    if sync.metadata.deletion_timestamp.is_some() {
        // The Secret goes by garbage collection (or stays, Orphan): nothing to do.
        return Ok(Action::await_change());
    }
    let key = ObjectRef::from_obj(sync.as_ref());
    let now = Timestamp::now();
    let old = sync.status.clone().unwrap_or_default();
    let planned = plan::plan(&name, &sync.spec);
    let refresh = planned
        .as_ref()
        .map_or(plan::DEFAULT_REFRESH_INTERVAL, |p| p.refresh_interval);
    let result = match &planned {
        Err(e) => Err(SyncFailure::new(e.reason(), e.to_string())),
        Ok(p) => sync_once(&sync, p, &ns, &name, &ctx).await,
    };
    let mut status = old.clone();
    status.observed_generation = sync.metadata.generation;
    let mut next = refresh;
    let mut restart_now = false;
    let ready = match &result {
        Ok(w) => {
            if old.data_hash.as_deref() != Some(w.hash.as_str()) {
                status.last_change_time = Some(now.to_string());
            }
            status.data_hash = Some(w.hash.clone());
            status.key_count = Some(w.keys);
            status.secret_name = planned.as_ref().ok().map(|p| p.target_name.clone());
            status.synced_objects = w.objects.clone();
            status.last_sync_time = Some(now.to_string());
            let state = RestartState {
                data_hash: &w.hash,
                restarted_hash: old.restarted_hash.as_deref(),
                last_change: status.last_change_time.as_deref().and_then(seconds_of),
                last_restart: old.last_restart_time.as_deref().and_then(seconds_of),
            };
            let targets = !sync.spec.rollout_restart_targets.is_empty();
            match restart::decide(&state, targets, now.as_second(), ctx.timing) {
                RestartDecision::Baseline => status.restarted_hash = Some(w.hash.clone()),
                // Without targets the data is the baseline of targets added later.
                RestartDecision::Nothing if !targets => {
                    status.restarted_hash = Some(w.hash.clone())
                }
                RestartDecision::Nothing => {}
                RestartDecision::Now => restart_now = true,
                RestartDecision::Wait(d) => next = next.min(d.max(Duration::from_millis(500))),
            }
            Wanted {
                type_: crate::api::condition::READY,
                status: true,
                reason: reason::SYNCED,
                message: format!(
                    "{} keys from {} objects in Secret {}",
                    w.keys,
                    w.objects.len(),
                    status.secret_name.as_deref().unwrap_or_default()
                ),
            }
        }
        Err(f) => {
            next = match f.reason {
                // Only a new spec fixes a spec the plan refused; data the render refused
                // may change in the vault, so that is retried every refresh.
                reason::INVALID_SPEC if planned.is_err() => Duration::MAX,
                reason::VAULT_NOT_FOUND | reason::SERVICE_ACCOUNT_NOT_FOUND => {
                    WAIT_FOR_VAULT.min(refresh)
                }
                _ if f.transient() => backoff(&ctx, &key).min(refresh),
                _ => refresh,
            };
            Wanted {
                type_: crate::api::condition::READY,
                status: false,
                reason: f.reason,
                message: f.message.clone(),
            }
        }
    };
    if result.is_ok() {
        ctx.failures().remove(&key);
    }
    if restart_now {
        let by = format!("SecretSync {name}");
        let restarted = restart_targets(&ctx, &sync, &ns, &by, &now).await;
        status.restarted_hash = status.data_hash.clone();
        status.last_restart_time = Some(now.to_string());
        if !restarted.is_empty() {
            let note = format!(
                "restarted {}: the Secret's data changed",
                restarted.join(", ")
            );
            publish(&ctx, &sync, EventType::Normal, "RolloutRestart", &note).await;
        }
    }
    ctx.metrics
        .syncs
        .get_or_create(&ReasonLabel {
            reason: ready.reason.to_string(),
        })
        .inc();
    let time = Time(now);
    status.conditions =
        merge_conditions(&old.conditions, &[ready], sync.metadata.generation, &time);
    // Patched only when it says something new, or to refresh a sync time older than half
    // the refresh interval: every status patch is a watch event that triggers another pass,
    // so patching each pass's time would loop.
    let changed = {
        let mut a = status.clone();
        let mut b = old.clone();
        a.last_sync_time = None;
        b.last_sync_time = None;
        a != b
    };
    let stale = old
        .last_sync_time
        .as_deref()
        .and_then(seconds_of)
        .is_none_or(|t| now.as_second() - t >= (refresh.as_secs() / 2) as i64);
    if changed || (result.is_ok() && stale) {
        crate::operator::controller::apply_status::<SecretSync>(
            &ctx.client,
            &ns,
            &name,
            &status,
            SYNC_FIELD_MANAGER,
        )
        .await?;
    }
    let was = old
        .conditions
        .iter()
        .find(|c| c.type_ == crate::api::condition::READY)
        .map(|c| (c.status.clone(), c.reason.clone()));
    let now_ready = status
        .conditions
        .first()
        .map(|c| (c.status.clone(), c.reason.clone()));
    if was != now_ready
        && let Some(c) = status.conditions.first()
    {
        let type_ = if c.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        publish(&ctx, &sync, type_, &c.reason, &c.message).await;
    } else if result.is_ok() && old.data_hash != status.data_hash && old.data_hash.is_some() {
        publish(
            &ctx,
            &sync,
            EventType::Normal,
            "Updated",
            "the Secret's data changed",
        )
        .await;
    }
    Ok(if next == Duration::MAX {
        Action::await_change()
    } else {
        Action::requeue(next)
    })
}

fn backoff(ctx: &SyncContext, key: &ObjectRef<SecretSync>) -> Duration {
    let mut f = ctx.failures();
    let n = f.entry(key.clone()).or_insert(0);
    *n = n.saturating_add(1);
    crate::operator::controller::backoff(*n)
}

fn seconds_of(rfc3339: &str) -> Option<i64> {
    rfc3339.parse::<Timestamp>().ok().map(|t| t.as_second())
}

/// Reads, renders and applies; the Secret is written only when everything succeeded.
async fn sync_once(
    sync: &SecretSync,
    plan: &SyncPlan,
    ns: &str,
    name: &str,
    ctx: &SyncContext,
) -> Result<Written, SyncFailure> {
    let vaults: Api<Vault> = Api::namespaced(ctx.client.clone(), ns);
    let vault_name = &sync.spec.vault_ref.name;
    let vault = match vaults.get_opt(vault_name).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return Err(SyncFailure::new(
                reason::VAULT_NOT_FOUND,
                format!("Vault {ns}/{vault_name} does not exist"),
            ));
        }
        Err(e) => return Err(SyncFailure::new(reason::VAULT_UNAVAILABLE, e.to_string())),
    };
    let sa = &sync.spec.service_account_name;
    let principal = format!("ServiceAccount {ns}/{sa}");
    let reader = ctx.access.reader(&vault, ns, sa).await?;
    let listing = if plan.selectors.is_empty() {
        None
    } else {
        Some(
            reader
                .list_secrets()
                .await
                .map_err(|e| SyncFailure::from_client(&e, "listing the secrets", &principal))?,
        )
    };
    let objects = plan::expand(plan, listing.as_deref())
        .map_err(|e| SyncFailure::new(e.reason(), e.to_string()))?;
    let mut fetched = Vec::with_capacity(objects.len());
    let mut names = Vec::new();
    for o in objects {
        let what = o.spec.describe();
        let (version, material) = reader
            .fetch(&o.spec)
            .await
            .map_err(|e| SyncFailure::from_client(&e, &format!("reading {what}"), &principal))?;
        if names.len() < crate::api::sync::MAX_SYNCED_OBJECTS_SHOWN {
            names.push(format!(
                "{}/{}@{version}",
                o.spec.kind.as_str(),
                o.spec.name
            ));
        }
        fetched.push((o.key, o.spec, material));
    }
    let rendered = render::render_data(plan.secret_type, plan.merge, &plan.templates, fetched)
        .map_err(|e| SyncFailure::new(e.reason(), e.to_string()))?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let uid = sync.metadata.uid.clone().unwrap_or_default();
    let existing = secrets
        .get_opt(&plan.target_name)
        .await
        .map_err(|e| SyncFailure::new(reason::APPLY_FAILED, e.to_string()))?;
    if render::ownership(existing.as_ref(), name, &uid) == Ownership::Foreign && !plan.adopt {
        return Err(SyncFailure::new(
            reason::SECRET_NOT_OWNED,
            format!(
                "Secret {ns}/{} exists and was not created by this SecretSync; set target.adopt: true to take it over",
                plan.target_name
            ),
        ));
    }
    let desired = render::desired_secret(
        name,
        &uid,
        ns,
        &plan.target_name,
        plan.secret_type,
        &plan.labels,
        &plan.annotations,
        plan.deletion_policy,
        &rendered,
    );
    let pp = PatchParams::apply(SYNC_FIELD_MANAGER).force();
    secrets
        .patch(&plan.target_name, &pp, &Patch::Apply(&desired))
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) => SyncFailure::new(
                reason::APPLY_FAILED,
                format!("Secret {ns}/{}: {}", plan.target_name, s.message),
            ),
            e => SyncFailure::new(reason::APPLY_FAILED, e.to_string()),
        })?;
    Ok(Written {
        hash: rendered.hash.clone(),
        keys: u32::try_from(rendered.data.len()).unwrap_or(u32::MAX),
        objects: names,
    })
}

/// One event about a SecretSync; best effort.
async fn publish(ctx: &SyncContext, sync: &SecretSync, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &sync.object_ref(&())).await {
        tracing::warn!(sync = %sync.name_any(), error = %e, "cannot publish an event");
    }
}

/// A workload kind rollout restarts apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 3] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }
}

/// A workload in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.name)
    }
}

/// A listed workload: its name and its pod template's annotations.
struct Listed {
    name: String,
    template_annotations: std::collections::BTreeMap<String, String>,
}

async fn list_workloads(
    client: &Client,
    kind: WorkloadKind,
    ns: &str,
    lp: &ListParams,
) -> Result<Vec<Listed>, kube::Error> {
    fn listed<T>(
        items: Vec<T>,
        template: impl Fn(&T) -> Option<&k8s_openapi::api::core::v1::PodTemplateSpec>,
    ) -> Vec<Listed>
    where
        T: ResourceExt,
    {
        items
            .into_iter()
            .map(|w| Listed {
                template_annotations: template(&w)
                    .and_then(|t| t.metadata.as_ref())
                    .and_then(|m| m.annotations.clone())
                    .unwrap_or_default(),
                name: w.name_any(),
            })
            .collect()
    }
    Ok(match kind {
        WorkloadKind::Deployment => listed(
            Api::<Deployment>::namespaced(client.clone(), ns)
                .list(lp)
                .await?
                .items,
            |d| d.spec.as_ref().map(|s| &s.template),
        ),
        WorkloadKind::StatefulSet => listed(
            Api::<StatefulSet>::namespaced(client.clone(), ns)
                .list(lp)
                .await?
                .items,
            |d| d.spec.as_ref().map(|s| &s.template),
        ),
        WorkloadKind::DaemonSet => listed(
            Api::<DaemonSet>::namespaced(client.clone(), ns)
                .list(lp)
                .await?
                .items,
            |d| d.spec.as_ref().map(|s| &s.template),
        ),
    })
}

/// `kubectl rollout restart` of one workload.
pub async fn restart_workload(
    client: &Client,
    w: &Workload,
    by: &str,
    at: &Timestamp,
) -> Result<(), kube::Error> {
    let patch = restart::restart_patch(&at.to_string(), by);
    let pp = PatchParams::default();
    let p = Patch::Merge(&patch);
    match w.kind {
        WorkloadKind::Deployment => {
            Api::<Deployment>::namespaced(client.clone(), &w.namespace)
                .patch(&w.name, &pp, &p)
                .await?;
        }
        WorkloadKind::StatefulSet => {
            Api::<StatefulSet>::namespaced(client.clone(), &w.namespace)
                .patch(&w.name, &pp, &p)
                .await?;
        }
        WorkloadKind::DaemonSet => {
            Api::<DaemonSet>::namespaced(client.clone(), &w.namespace)
                .patch(&w.name, &pp, &p)
                .await?;
        }
    }
    Ok(())
}

/// The workloads a target names (a missing one by name is skipped with an event).
async fn resolve_target(
    client: &Client,
    ns: &str,
    t: &RestartTarget,
) -> Result<Vec<Workload>, String> {
    let kind = WorkloadKind::parse(&t.kind).ok_or_else(|| format!("unknown kind {}", t.kind))?;
    let names = match (&t.name, &t.selector) {
        (Some(name), _) => vec![name.clone()],
        (None, Some(sel)) => {
            let selector = kube::core::Selector::try_from(LabelSelector::clone(sel))
                .map_err(|e| format!("{} selector: {e}", t.kind))?;
            let lp = ListParams::default().labels_from(&selector);
            list_workloads(client, kind, ns, &lp)
                .await
                .map_err(|e| format!("cannot list {}s: {e}", t.kind))?
                .into_iter()
                .map(|l| l.name)
                .collect()
        }
        (None, None) => vec![],
    };
    Ok(names
        .into_iter()
        .map(|name| Workload {
            kind,
            namespace: ns.to_string(),
            name,
        })
        .collect())
}

/// Restarts every target; returns what was restarted (failures become Warning events).
async fn restart_targets(
    ctx: &SyncContext,
    sync: &SecretSync,
    ns: &str,
    by: &str,
    at: &Timestamp,
) -> Vec<String> {
    let mut done = Vec::new();
    for t in &sync.spec.rollout_restart_targets {
        let workloads = match resolve_target(&ctx.client, ns, t).await {
            Ok(w) => w,
            Err(e) => {
                publish(ctx, sync, EventType::Warning, "RolloutRestartFailed", &e).await;
                continue;
            }
        };
        for w in workloads {
            match restart_workload(&ctx.client, &w, by, at).await {
                Ok(()) => {
                    tracing::info!(namespace = ns, workload = %w, by, "rollout restart");
                    ctx.metrics.restarts.inc();
                    done.push(w.to_string());
                }
                Err(e) => {
                    let note = format!("cannot restart {w}: {e}");
                    publish(ctx, sync, EventType::Warning, "RolloutRestartFailed", &note).await;
                }
            }
        }
    }
    done
}

pub fn error_policy(sync: Arc<SecretSync>, error: &Error, ctx: Arc<SyncContext>) -> Action {
    let key = ObjectRef::from_obj(sync.as_ref());
    tracing::warn!(sync = %sync.name_any(), error = %error, "secret sync failed; retrying");
    Action::requeue(backoff(&ctx, &key))
}

/// Whether a change in a vault concerns a sync: its vault, and an object it names or may
/// select (selectors and policy changes: always).
pub fn affected(sync: &SecretSync, change: &VaultChange) -> bool {
    if sync.metadata.namespace.as_deref() != Some(change.namespace.as_str())
        || sync.spec.vault_ref.name != change.vault
    {
        return false;
    }
    let Some(object) = &change.object else {
        return true;
    };
    !sync.spec.selectors.is_empty()
        || sync
            .spec
            .objects
            .iter()
            .any(|o| o.object_name.eq_ignore_ascii_case(object))
}

/// The SecretSync controller over one namespace (or all), with the Secrets it writes
/// watched by metadata only (a changed or deleted Secret is rewritten at once; values are
/// never cached).
pub fn controller(client: &Client, namespace: Option<&str>) -> Controller<SecretSync> {
    let written = watcher::Config::default().labels(SYNC_LABEL).any_semantic();
    Controller::new(
        api_in::<SecretSync>(client, namespace),
        watcher::Config::default().any_semantic(),
    )
    .owns(
        api_in::<PartialObjectMeta<Secret>>(client, namespace),
        written,
    )
}

/// Workloads that mount through the CSI provider and name the changed objects in their
/// pod template's [`restart::RESTART_ON_ANNOTATION`], restarted with the same debounce and
/// rate limit as a sync's targets. The rate limit reads the workload's own `restartedAt`,
/// so it survives an operator restart; a pending debounce does not (the next event or the
/// user redoes it).
pub struct WatcherRestarts {
    client: Client,
    recorder: Recorder,
    restarts: Counter,
    timing: RestartTiming,
    pending: Mutex<HashMap<Workload, i64>>,
    wake: tokio::sync::Notify,
}

impl WatcherRestarts {
    pub fn new(
        client: Client,
        recorder: Recorder,
        restarts: Counter,
        timing: RestartTiming,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            recorder,
            restarts,
            timing,
            pending: Mutex::default(),
            wake: tokio::sync::Notify::new(),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Workload, i64>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the workloads of the change's namespace that watch the changed object.
    pub async fn on_change(&self, change: &VaultChange) {
        let Some(object) = &change.object else { return };
        let now = Timestamp::now().as_second();
        let mut hit = Vec::new();
        for kind in WorkloadKind::ALL {
            match list_workloads(
                &self.client,
                kind,
                &change.namespace,
                &ListParams::default(),
            )
            .await
            {
                Ok(listed) => {
                    for l in listed {
                        let Some(value) =
                            l.template_annotations.get(restart::RESTART_ON_ANNOTATION)
                        else {
                            continue;
                        };
                        match restart::parse_restart_on(value) {
                            Ok(w) if restart::watches(&w, &change.vault, object) => {
                                hit.push(Workload {
                                    kind,
                                    namespace: change.namespace.clone(),
                                    name: l.name,
                                })
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(namespace = %change.namespace, workload = %l.name, error = %e, "bad kvault.dev/restart-on annotation")
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(namespace = %change.namespace, kind = kind.as_str(), error = %e, "cannot list workloads for restart-on")
                }
            }
        }
        if hit.is_empty() {
            return;
        }
        let mut p = self.pending();
        for w in hit {
            p.insert(w, now);
        }
        drop(p);
        self.wake.notify_one();
    }

    /// Restarts pending workloads when due; runs until the operator stops.
    pub async fn run(self: Arc<Self>) {
        loop {
            let now = Timestamp::now();
            let due: Vec<(Workload, i64)> = self
                .pending()
                .iter()
                .map(|(w, t)| (w.clone(), *t))
                .collect();
            let mut next = Duration::from_secs(3600);
            for (w, changed) in due {
                let last = self.last_restart(&w).await;
                match restart::due(Some(changed), last, now.as_second(), self.timing) {
                    RestartDecision::Now => {
                        // Taken out first: a change arriving during the patch re-marks it.
                        self.pending().remove(&w);
                        match restart_workload(&self.client, &w, "kvault.dev/restart-on", &now)
                            .await
                        {
                            Ok(()) => {
                                tracing::info!(workload = %w, namespace = %w.namespace, "rollout restart (restart-on)");
                                self.restarts.inc();
                                self.record(&w).await;
                            }
                            Err(e) => {
                                tracing::warn!(workload = %w, namespace = %w.namespace, error = %e, "cannot restart (restart-on)")
                            }
                        }
                    }
                    RestartDecision::Wait(d) => next = next.min(d),
                    _ => {}
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(next.max(Duration::from_millis(200))) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// A `RolloutRestart` Event on the workload; best effort.
    async fn record(&self, w: &Workload) {
        let reference = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some(w.kind.as_str().into()),
            name: Some(w.name.clone()),
            namespace: Some(w.namespace.clone()),
            ..Default::default()
        };
        let event = Event {
            type_: EventType::Normal,
            reason: "RolloutRestart".into(),
            note: Some(format!(
                "restarted by the operator: a vault object named in {} has a new version",
                restart::RESTART_ON_ANNOTATION
            )),
            action: "Restart".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(workload = %w, error = %e, "cannot publish an event");
        }
    }

    async fn last_restart(&self, w: &Workload) -> Option<i64> {
        let lp = ListParams::default().fields(&format!("metadata.name={}", w.name));
        let listed = list_workloads(&self.client, w.kind, &w.namespace, &lp)
            .await
            .ok()?;
        listed
            .first()?
            .template_annotations
            .get(restart::RESTARTED_AT_ANNOTATION)
            .and_then(|t| seconds_of(t))
    }
}

/// Turns vault changes into reconciles of the affected syncs and restart-on restarts.
pub async fn dispatch(
    mut changes: tokio::sync::mpsc::Receiver<VaultChange>,
    controllers: Vec<(
        Store<SecretSync>,
        tokio::sync::mpsc::UnboundedSender<ObjectRef<SecretSync>>,
    )>,
    watchers: Arc<WatcherRestarts>,
) {
    while let Some(change) = changes.recv().await {
        for (store, trigger) in &controllers {
            for s in store.state() {
                if affected(&s, &change) {
                    let _ = trigger.send(ObjectRef::from_obj(s.as_ref()));
                }
            }
        }
        watchers.on_change(&change).await;
    }
}

/// Runs one SecretSync controller per namespace target (one for the whole cluster by
/// default) until shutdown, fed by `changes` (the vault events) when the operator receives
/// them.
pub async fn run(
    client: Client,
    targets: Vec<Option<String>>,
    ctx: Arc<SyncContext>,
    changes: Option<tokio::sync::mpsc::Receiver<VaultChange>>,
) {
    use futures_util::StreamExt;
    let mut routes = Vec::new();
    let mut running = Vec::new();
    for ns in targets {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<ObjectRef<SecretSync>>();
        let c = controller(&client, ns.as_deref());
        routes.push((c.store(), tx));
        running.push(
            c.reconcile_on(stream_of(rx))
                .shutdown_on_signal()
                .run(reconcile_sync, error_policy, ctx.clone())
                .for_each(|_| async {}),
        );
    }
    let tasks = changes.map(|changes| {
        let watchers = WatcherRestarts::new(
            client.clone(),
            ctx.recorder.clone(),
            ctx.metrics.restarts.clone(),
            ctx.timing,
        );
        (
            tokio::spawn(dispatch(changes, routes, watchers.clone())),
            tokio::spawn(watchers.run()),
        )
    });
    futures_util::future::join_all(running).await;
    if let Some((d, w)) = tasks {
        d.abort();
        w.abort();
    }
}

fn stream_of(
    rx: tokio::sync::mpsc::UnboundedReceiver<ObjectRef<SecretSync>>,
) -> impl futures_util::Stream<Item = ObjectRef<SecretSync>> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(ns: &str, vault: &str, objects: &[&str], selectors: bool) -> SecretSync {
        let mut spec: crate::api::SecretSyncSpec = serde_json::from_value(serde_json::json!({
            "vaultRef": {"name": vault},
            "serviceAccountName": "web",
            "objects": objects.iter().map(|o| serde_json::json!({"objectName": o})).collect::<Vec<_>>(),
        }))
        .unwrap();
        if selectors {
            spec.selectors = vec![Default::default()];
        }
        let mut s = SecretSync::new("s", spec);
        s.metadata.namespace = Some(ns.into());
        s
    }

    fn change(ns: &str, vault: &str, object: Option<&str>) -> VaultChange {
        VaultChange {
            namespace: ns.into(),
            vault: vault.into(),
            object: object.map(str::to_string),
            event_id: "e".into(),
            received: std::time::Instant::now(),
        }
    }

    #[test]
    fn a_change_reaches_the_syncs_that_read_it() {
        let s = sync("team-a", "payments", &["db-password"], false);
        assert!(affected(
            &s,
            &change("team-a", "payments", Some("DB-password"))
        ));
        assert!(!affected(&s, &change("team-a", "payments", Some("other"))));
        assert!(!affected(
            &s,
            &change("team-b", "payments", Some("db-password"))
        ));
        assert!(!affected(
            &s,
            &change("team-a", "orders", Some("db-password"))
        ));
        // A policy change may change what the sync may read.
        assert!(affected(&s, &change("team-a", "payments", None)));
        // A selector may take any new secret.
        let s = sync("team-a", "payments", &[], true);
        assert!(affected(
            &s,
            &change("team-a", "payments", Some("anything"))
        ));
    }

    #[test]
    fn vault_answers_become_reasons() {
        let forbidden = ClientError::Api {
            status: 403,
            code: "Forbidden".into(),
            message: "the caller lacks secrets/get".into(),
        };
        let f = SyncFailure::from_client(&forbidden, "reading secret 'db'", "ServiceAccount a/b");
        assert_eq!(f.reason, reason::FORBIDDEN);
        assert!(f.message.contains("ServiceAccount a/b"), "{}", f.message);
        assert!(f.message.contains("secrets/get"), "{}", f.message);
        assert!(!f.transient());
        let missing = ClientError::Api {
            status: 404,
            code: "SecretNotFound".into(),
            message: "no such secret".into(),
        };
        assert_eq!(
            SyncFailure::from_client(&missing, "x", "y").reason,
            reason::OBJECT_NOT_FOUND
        );
    }

    #[test]
    fn workload_kinds_parse() {
        for k in WorkloadKind::ALL {
            assert_eq!(WorkloadKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(WorkloadKind::parse("Pod"), None);
    }
}
