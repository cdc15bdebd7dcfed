//! The vault's current policy snapshot and how it changes.
//!
//! Every request reads one `Arc<Runtime>` — compiled grants, network rules, minimum TLS
//! version, token verifier, soft-delete settings, throttle — so a decision is a pure
//! in-memory lookup. A push validates the new document, persists it (sealed, with a
//! compare-and-swap on the stored one) and swaps the snapshot: the very next request sees
//! it, so a revoked grant stops working at once.

use crate::clock::SharedClock;
use crate::policy::{
    CompiledPolicy, Grantee, IssuerBinding, IssuerContext, PolicyDocument, PrincipalRef,
    TlsVersion, TrustedIssuer,
};
use crate::server::auth::{Authenticator, IssuerConfig, JwksSource};
use crate::server::error::ApiError;
use crate::server::objects::SoftDelete;
use crate::server::store::{StoreError, VaultStore};
use crate::server::throttle::Throttle;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

const POLICY_RECORD: &str = "policy";

/// What the server's own configuration says where the policy document is silent.
#[derive(Clone)]
pub struct Defaults {
    pub soft_delete: SoftDelete,
    pub tls_min: TlsVersion,
    pub issuers: Vec<IssuerConfig>,
    pub audiences: Vec<String>,
    pub jwks_refresh_interval: Duration,
    pub http: reqwest::Client,
    pub clock: SharedClock,
    /// Where a policy change is announced (`VaultAccessPolicyChanged`).
    pub events: Option<Arc<crate::server::events::Events>>,
    /// Who may read and replace the policy (bound to issuers with each policy).
    pub admins: Vec<PrincipalRef>,
}

pub struct Runtime {
    pub policy: CompiledPolicy,
    /// The control-plane principals, bound to this policy's issuers.
    pub admins: Vec<Grantee>,
    pub soft_delete: SoftDelete,
    pub tls_min: TlsVersion,
    pub throttle: Throttle,
    pub auth: Arc<Authenticator>,
}

impl Runtime {
    pub fn generation(&self) -> u64 {
        self.policy.doc.generation
    }
}

pub struct PolicyManager {
    defaults: Defaults,
    current: RwLock<Arc<Runtime>>,
    push_lock: tokio::sync::Mutex<()>,
}

/// How a push ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Applied,
    /// The same generation with the same content: nothing to do.
    Unchanged,
}

fn issuers_from(doc: &PolicyDocument, defaults: &Defaults) -> (Vec<IssuerConfig>, Vec<String>) {
    match &doc.identity {
        None => (defaults.issuers.clone(), defaults.audiences.clone()),
        Some(id) => {
            let issuers = id
                .issuers
                .iter()
                .map(|i| IssuerConfig {
                    issuer: i.issuer.clone(),
                    jwks: match (&i.jwks, &i.jwks_uri, &i.jwks_file) {
                        (Some(keys), _, _) => JwksSource::Static(keys.clone()),
                        (None, Some(u), _) => JwksSource::Url(u.clone()),
                        (None, None, Some(f)) => JwksSource::File(PathBuf::from(f)),
                        (None, None, None) => JwksSource::Discovery,
                    },
                    service_accounts: i.service_accounts,
                    speaks_for: i.speaks_for.clone(),
                })
                .collect();
            let audiences = if id.audiences.is_empty() {
                defaults.audiences.clone()
            } else {
                id.audiences.clone()
            };
            (issuers, audiences)
        }
    }
}

impl PolicyManager {
    /// Loads the stored policy, or installs `initial` (a `--policy-file`, or dev's) when
    /// it is newer or nothing is stored. Without either the vault denies every data request.
    pub async fn load(
        defaults: Defaults,
        store: &VaultStore,
        initial: Option<PolicyDocument>,
    ) -> Result<Self, String> {
        let stored = match store.meta(POLICY_RECORD).await.map_err(|e| e.to_string())? {
            Some((plain, _)) => Some(
                serde_json::from_slice::<PolicyDocument>(&plain)
                    .map_err(|e| format!("the stored policy document is unreadable: {e}"))?,
            ),
            None => None,
        };
        let start = match (&stored, &initial) {
            (Some(s), Some(i)) if i.generation > s.generation => i.clone(),
            (Some(s), _) => s.clone(),
            (None, Some(i)) => i.clone(),
            (None, None) => PolicyDocument::empty(),
        };
        let placeholder = build(&defaults, &PolicyDocument::empty(), None)
            .await
            .map_err(|e| e.to_string())?;
        let me = Self {
            defaults,
            current: RwLock::new(Arc::new(placeholder)),
            push_lock: tokio::sync::Mutex::new(()),
        };
        if stored.as_ref() != Some(&start) {
            me.push(store, start, true)
                .await
                .map_err(|e| e.to_string())?;
        } else {
            let rt = build(&me.defaults, &start, None)
                .await
                .map_err(|e| e.to_string())?;
            me.swap(rt);
        }
        Ok(me)
    }

    pub fn current(&self) -> Arc<Runtime> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn swap(&self, rt: Runtime) {
        match self.current.write() {
            Ok(mut c) => *c = Arc::new(rt),
            Err(p) => *p.into_inner() = Arc::new(rt),
        }
    }

    /// Takes up a policy another replica stored (shared storage): the stored document
    /// replaces the snapshot when its generation is higher.
    pub async fn refresh(&self, store: &VaultStore) -> Result<bool, ApiError> {
        let _guard = self.push_lock.lock().await;
        let Some((plain, _)) = store.meta(POLICY_RECORD).await? else {
            return Ok(false);
        };
        let doc: PolicyDocument =
            serde_json::from_slice(&plain).map_err(|_| ApiError::Integrity)?;
        let current = self.current();
        if doc.generation <= current.generation() {
            return Ok(false);
        }
        let rt = build(&self.defaults, &doc, Some(&*current)).await?;
        tracing::info!(
            generation = doc.generation,
            "policy applied (stored by another replica)"
        );
        self.swap(rt);
        Ok(true)
    }

    /// Replaces the policy: refused (409) when older than the applied one or when it
    /// would turn purge protection off; idempotent for the same generation and content.
    pub async fn push(
        &self,
        store: &VaultStore,
        doc: PolicyDocument,
        at_start: bool,
    ) -> Result<PushOutcome, ApiError> {
        let _guard = self.push_lock.lock().await;
        let (stored, raw) = match store.meta(POLICY_RECORD).await? {
            Some((plain, raw)) => (
                serde_json::from_slice::<PolicyDocument>(&plain)
                    .map_err(|_| ApiError::Integrity)?,
                Some(raw),
            ),
            None => (PolicyDocument::empty(), None),
        };
        // Subscription header values are write-only: a document read back keeps them.
        let mut doc = doc;
        doc.keep_header_values_from(&stored);
        if let Some(name) = doc.subscription_without_header_value() {
            return Err(ApiError::bad(format!(
                "Invalid policy document: event subscription '{name}' has an authHeader without a value, and none is stored for it."
            )));
        }
        let applied = if raw.is_some() { Some(&stored) } else { None };
        if let Some(applied) = applied {
            if doc.generation < applied.generation {
                return Err(ApiError::Conflict {
                    message: format!(
                        "Policy generation {} is older than the applied generation {}.",
                        doc.generation, applied.generation
                    ),
                    inner: Some("StaleGeneration"),
                });
            }
            if doc.generation == applied.generation {
                if doc == *applied {
                    return Ok(PushOutcome::Unchanged);
                }
                return Err(ApiError::Conflict {
                    message: format!(
                        "Policy generation {} is already applied with different content; push a higher generation.",
                        doc.generation
                    ),
                    inner: Some("GenerationConflict"),
                });
            }
            let was_protected = self.defaults.soft_delete.purge_protection
                || applied.soft_delete.is_some_and(|s| s.purge_protection);
            let will_be_protected = self.defaults.soft_delete.purge_protection
                || doc.soft_delete.is_some_and(|s| s.purge_protection);
            if was_protected && !will_be_protected {
                return Err(ApiError::Conflict {
                    message: "Purge protection cannot be turned off once it is on.".into(),
                    inner: Some("PurgeProtectionIsPermanent"),
                });
            }
        }
        let current = self.current();
        let rt = build(&self.defaults, &doc, (!at_start).then_some(&*current)).await?;
        let bytes =
            zeroize::Zeroizing::new(serde_json::to_vec(&doc).map_err(|_| ApiError::Internal)?);
        // The policy and its `VaultAccessPolicyChanged` events are written together.
        let mut batch = crate::server::store::Batch::default();
        store.expect_meta(&mut batch, POLICY_RECORD, raw);
        store.stage_meta(&mut batch, POLICY_RECORD, &bytes)?;
        let announced = match &self.defaults.events {
            Some(events) => events.stage_policy_changed(store, doc.events.as_ref(), &mut batch)?,
            None => 0,
        };
        match store.commit(batch).await {
            Ok(()) => {
                if announced > 0
                    && let Some(events) = &self.defaults.events
                {
                    events.wake();
                }
            }
            Err(StoreError::Conflict) => {
                return Err(ApiError::Conflict {
                    message: "The policy changed concurrently; retry the push.".into(),
                    inner: None,
                });
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(generation = doc.generation, "policy applied");
        self.swap(rt);
        Ok(PushOutcome::Applied)
    }
}

/// Compiles a document into a runtime snapshot, keeping the current token verifier (and
/// its caches) when the identity settings did not change.
async fn build(
    defaults: &Defaults,
    doc: &PolicyDocument,
    previous: Option<&Runtime>,
) -> Result<Runtime, ApiError> {
    let server_issuers: Vec<TrustedIssuer> = defaults
        .issuers
        .iter()
        .filter_map(IssuerConfig::trusted)
        .collect();
    let policy = doc
        .compile(&server_issuers)
        .map_err(|e| ApiError::bad(format!("Invalid policy document: {e}")))?;
    let admins = bind_admins(&defaults.admins, &doc.trusted_issuers(&server_issuers))?;
    let soft_delete = match doc.soft_delete {
        Some(s) => SoftDelete {
            retention_days: s.retention_days,
            purge_protection: s.purge_protection || defaults.soft_delete.purge_protection,
        },
        None => defaults.soft_delete,
    };
    let tls_min = doc
        .tls
        .as_ref()
        .map(|t| t.min_version)
        .unwrap_or(defaults.tls_min);
    let auth = match previous {
        Some(prev) if prev.policy.doc.identity == doc.identity => prev.auth.clone(),
        _ => {
            let (issuers, audiences) = issuers_from(doc, defaults);
            Arc::new(
                Authenticator::new(
                    issuers,
                    audiences,
                    defaults.jwks_refresh_interval,
                    defaults.http.clone(),
                    defaults.clock.clone(),
                )
                .await
                .map_err(|e| ApiError::bad(format!("Invalid policy document: {e}")))?,
            )
        }
    };
    Ok(Runtime {
        throttle: Throttle::new(&doc.throttling),
        policy,
        admins,
        soft_delete,
        tls_min,
        auth,
    })
}

/// The control plane bound to the issuers a policy trusts. A document whose issuers would
/// make a control-plane principal ambiguous is refused, so that no policy can hand the
/// control plane to a second issuer; so is one under which no issuer could speak for it
/// (a service account without a cluster issuer), which would lock the control plane out.
fn bind_admins(
    admins: &[PrincipalRef],
    issuers: &[TrustedIssuer],
) -> Result<Vec<Grantee>, ApiError> {
    let invalid = |e: String| ApiError::bad(format!("Invalid policy document: {e}"));
    let context = IssuerContext::new(issuers).map_err(|e| invalid(e.to_string()))?;
    admins
        .iter()
        .map(|who| {
            let what = format!("the control-plane principal {who}");
            let grantee = Grantee::bind(who.clone(), None, &context, &what)
                .map_err(|e| invalid(e.to_string()))?;
            if grantee.issuer == IssuerBinding::Nobody {
                return Err(invalid(format!(
                    "{what} would match no token: no trusted issuer asserts service accounts"
                )));
            }
            Ok(grantee)
        })
        .collect()
}
