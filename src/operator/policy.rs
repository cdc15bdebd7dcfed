//! Policy compilation: a `Vault` and its `AccessPolicy` / `RoleAssignment` objects into the
//! vault's policy document. Pure; the controller pushes the result.
//!
//! Every grant gets an outcome, so its status can say whether the vault enforces it and, if
//! not, why. One bad grant never blocks the others: each is checked on its own with the same
//! validation the server runs (`PolicyDocument::compile`), and left out when it fails.

use super::OperatorSettings;
use crate::api::NotificationsSpec;
use crate::api::{AccessPolicy, RoleAssignment, Vault};
use crate::policy::{
    AccessPolicyEntry, AuthHeader, AuthorizationMode, EventSettings, EventSubscription,
    HeaderSecret, IdentitySettings, IssuerContext, IssuerSpec, MAX_ACCESS_POLICIES, NetworkRules,
    PolicyDocument, PolicyError, PrincipalKind, PrincipalRef, RoleAssignmentEntry,
};
use crate::wire::{VaultUrl, default_audiences};

/// Where the vault pod finds the cluster's service-account JWKS (a ConfigMap the operator
/// keeps current).
pub const CLUSTER_JWKS_PATH: &str = "/etc/kvault/cluster-jwks/jwks.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    AccessPolicy,
    RoleAssignment,
}

/// What became of one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantState {
    /// In the document and enforced.
    Applied,
    /// In the document, but the vault's mode does not use this kind of grant.
    Inactive(AuthorizationMode),
    /// Left out: the reason, for the grant's status.
    Invalid(String),
    /// Left out: the vault already holds the most access policies it allows.
    OverLimit,
}

impl GrantState {
    /// The `Applied` condition's (status, reason).
    pub fn condition(&self) -> (&'static str, &'static str) {
        match self {
            GrantState::Applied => ("True", "Applied"),
            GrantState::Inactive(_) => ("False", "InactiveInThisMode"),
            GrantState::Invalid(_) => ("False", "Invalid"),
            GrantState::OverLimit => ("False", "TooManyAccessPolicies"),
        }
    }

    pub fn message(&self) -> String {
        match self {
            GrantState::Applied => "the vault enforces this grant".into(),
            GrantState::Inactive(AuthorizationMode::Rbac) => {
                "the vault uses RBAC: access policies have no effect until it switches to AccessPolicy mode".into()
            }
            GrantState::Inactive(AuthorizationMode::AccessPolicy) => {
                "the vault uses access policies: role assignments have no effect until it switches to RBAC".into()
            }
            GrantState::Invalid(why) => why.clone(),
            GrantState::OverLimit => {
                format!("the vault allows at most {MAX_ACCESS_POLICIES} access policies")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantOutcome {
    pub kind: GrantKind,
    pub name: String,
    pub state: GrantState,
}

/// The document to push, and what became of each grant.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledVaultPolicy {
    pub document: PolicyDocument,
    /// SHA-256 (hex) of the document without its generation: equal digests, equal policy.
    pub digest: String,
    pub grants: Vec<GrantOutcome>,
    /// Settings the vault cannot honour as written (for a Warning event).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("the Vault has no name or namespace")]
    Unnamed,
    #[error("the vault URL {url} is unusable: {reason}")]
    Url { url: String, reason: String },
    #[error("the vault's settings make an invalid policy: {0}")]
    Invalid(#[source] PolicyError),
}

fn belongs_to(meta: &kube::api::ObjectMeta, vault_ref: &str, ns: &str, name: &str) -> bool {
    meta.namespace.as_deref() == Some(ns) && vault_ref == name && meta.deletion_timestamp.is_none()
}

/// A ServiceAccount without a namespace is one of the grant's namespace.
fn resolve_principal(p: &PrincipalRef, grant_ns: &str) -> PrincipalRef {
    let mut p = p.clone();
    p.issuer = p.issuer.filter(|i| !i.is_empty());
    if p.kind == PrincipalKind::ServiceAccount && p.namespace.as_deref().is_none_or(str::is_empty) {
        p.namespace = Some(grant_ns.to_string());
    }
    p
}

/// Checks one grant as the server will: with the vault's issuers, so a grant that names no
/// issuer on a vault trusting several people issuers is reported on its own status.
fn check_alone(
    entry: PolicyDocument,
    principal: &PrincipalRef,
    identity: &IdentitySettings,
) -> Result<(), String> {
    let alone = PolicyDocument {
        identity: Some(identity.clone()),
        ..entry
    };
    // The issuer binding first, so that its refusal names the principal rather than its
    // index in this one-grant document.
    IssuerContext::new(&alone.trusted_issuers(&[]))
        .and_then(|c| principal.bind_issuer(&c, &format!("the principal {principal}")))
        .map_err(|e| e.to_string())?;
    alone.compile(&[]).map(|_| ()).map_err(|e| e.to_string())
}

/// Compiles the vault's policy document at `generation`. `access_policies` and
/// `role_assignments` may hold objects of other vaults; only this vault's are used.
pub fn compile(
    vault: &Vault,
    access_policies: &[AccessPolicy],
    role_assignments: &[RoleAssignment],
    generation: u64,
    settings: &OperatorSettings,
) -> Result<CompiledVaultPolicy, CompileError> {
    compile_with(
        vault,
        access_policies,
        role_assignments,
        generation,
        settings,
        &ResolvedHeaders::new(),
    )
}

/// An event subscription's authentication-header value as the controller found it in its
/// Secret.
#[derive(Debug, Clone, PartialEq)]
pub enum ResolvedHeader {
    /// The value, and a version of it (the Secret's uid and resourceVersion) that changes
    /// when it changes: the digest names the version, never the value.
    Found {
        value: HeaderSecret,
        version: String,
    },
    /// Why there is no value (the subscription is left out, with a warning).
    Missing(String),
}

/// Resolved header values by subscription name.
pub type ResolvedHeaders = std::collections::BTreeMap<String, ResolvedHeader>;

/// [`compile`] with the event subscriptions' header values (read from Secrets by the
/// controller).
pub fn compile_with(
    vault: &Vault,
    access_policies: &[AccessPolicy],
    role_assignments: &[RoleAssignment],
    generation: u64,
    settings: &OperatorSettings,
    headers: &ResolvedHeaders,
) -> Result<CompiledVaultPolicy, CompileError> {
    let (Some(name), Some(ns)) = (
        vault.metadata.name.as_deref(),
        vault.metadata.namespace.as_deref(),
    ) else {
        return Err(CompileError::Unnamed);
    };
    let spec = &vault.spec;
    let mode = spec.authorization;
    let mut warnings = Vec::new();
    let mut grants = Vec::new();

    let identity = compile_identity(vault, settings, &mut warnings)?;

    // Stable order (by name) so that an unchanged set compiles to the same digest.
    let mut aps: Vec<&AccessPolicy> = access_policies
        .iter()
        .filter(|a| belongs_to(&a.metadata, &a.spec.vault_ref.name, ns, name))
        .collect();
    aps.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut ras: Vec<&RoleAssignment> = role_assignments
        .iter()
        .filter(|r| belongs_to(&r.metadata, &r.spec.vault_ref.name, ns, name))
        .collect();
    ras.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    let mut access_entries = Vec::new();
    for ap in aps {
        let entry = AccessPolicyEntry {
            principal: resolve_principal(&ap.spec.principal, ns),
            application: ap.spec.application.clone().filter(|a| !a.is_empty()),
            permissions: ap.spec.permissions.clone(),
        };
        let state = if access_entries.len() >= MAX_ACCESS_POLICIES {
            GrantState::OverLimit
        } else {
            let alone = PolicyDocument {
                access_policies: vec![entry.clone()],
                ..PolicyDocument::empty()
            };
            match check_alone(alone, &entry.principal, &identity) {
                Err(why) => GrantState::Invalid(why),
                Ok(()) => {
                    access_entries.push(entry);
                    if mode == AuthorizationMode::AccessPolicy {
                        GrantState::Applied
                    } else {
                        GrantState::Inactive(mode)
                    }
                }
            }
        };
        grants.push(GrantOutcome {
            kind: GrantKind::AccessPolicy,
            name: ap.metadata.name.clone().unwrap_or_default(),
            state,
        });
    }

    let mut role_entries = Vec::new();
    for ra in ras {
        let entry = RoleAssignmentEntry {
            principal: resolve_principal(&ra.spec.principal, ns),
            application: ra.spec.application.clone().filter(|a| !a.is_empty()),
            role: ra.spec.role,
            scope: ra.spec.scope.clone().filter(|s| !s.is_empty()),
        };
        let alone = PolicyDocument {
            role_assignments: vec![entry.clone()],
            ..PolicyDocument::empty()
        };
        let state = match check_alone(alone, &entry.principal, &identity) {
            Err(why) => GrantState::Invalid(why),
            Ok(()) => {
                role_entries.push(entry);
                if mode == AuthorizationMode::Rbac {
                    GrantState::Applied
                } else {
                    GrantState::Inactive(mode)
                }
            }
        };
        grants.push(GrantOutcome {
            kind: GrantKind::RoleAssignment,
            name: ra.metadata.name.clone().unwrap_or_default(),
            state,
        });
    }

    let net = &spec.network;
    let ip_rules = server_ip_rules(net, settings, &mut warnings);

    let mut document = PolicyDocument {
        generation: 0,
        authorization: mode,
        access_policies: access_entries,
        role_assignments: role_entries,
        network: NetworkRules {
            default_action: net.default_action,
            ip_rules,
            trusted_proxies: net.trusted_proxies.clone(),
        },
        tls: Some(spec.tls.clone()),
        identity: Some(identity),
        soft_delete: Some(spec.soft_delete),
        throttling: spec.throttling,
        events: None,
    };
    let mut header_versions = Vec::new();
    if let Some(n) = &spec.notifications {
        document.events = Some(compile_notifications(
            n,
            headers,
            &mut header_versions,
            &mut warnings,
        ));
    }
    if let Some(sync) = &settings.sync_events {
        add_sync_subscription(
            &mut document,
            sync,
            ns,
            name,
            &mut header_versions,
            &mut warnings,
        );
    }
    // The document names its issuers, so the server's own do not matter here.
    document.compile(&[]).map_err(CompileError::Invalid)?;
    let digest = digest_with(&document, &header_versions);
    document.generation = generation;
    Ok(CompiledVaultPolicy {
        document,
        digest,
        grants,
        warnings,
    })
}

/// The document's identity settings: the cluster's service-account issuer (the only one
/// whose `system:serviceaccount` subjects are service accounts), then the spec's issuers,
/// and every audience the vault accepts.
fn compile_identity(
    vault: &Vault,
    settings: &OperatorSettings,
    warnings: &mut Vec<String>,
) -> Result<IdentitySettings, CompileError> {
    let spec = &vault.spec;
    // Identity: the cluster's service-account issuer (the only one whose
    // system:serviceaccount subjects are service accounts), then the spec's issuers.
    let url_text = vault.url().ok_or(CompileError::Unnamed)?;
    let url = VaultUrl::parse(&url_text).map_err(|reason| CompileError::Url {
        url: url_text.clone(),
        reason,
    })?;
    let mut issuers = vec![IssuerSpec {
        issuer: settings.cluster_issuer.clone(),
        jwks_uri: None,
        jwks_file: Some(CLUSTER_JWKS_PATH.to_string()),
        jwks: None,
        service_accounts: true,
        speaks_for: None,
    }];
    // The token service re-issues the cluster's service accounts (and only them: it
    // accepts no other assertion), so its tokens count as the cluster issuer's.
    if let Some(jwks) = settings
        .token_service
        .as_ref()
        .and_then(|ts| ts.jwks.clone().map(|keys| (ts.authority.clone(), keys)))
    {
        issuers.push(IssuerSpec {
            issuer: jwks.0,
            jwks_uri: None,
            jwks_file: None,
            jwks: Some(jwks.1),
            service_accounts: true,
            speaks_for: Some(settings.cluster_issuer.clone()),
        });
    }
    let mut audiences = default_audiences(&url, &url.default_resource());
    for (i, extra) in spec.identity.issuers.iter().enumerate() {
        if issuers.iter().any(|known| known.issuer == extra.issuer) {
            warnings.push(format!(
                "identity.issuers[{i}]: {} is already trusted; the entry is ignored",
                extra.issuer
            ));
            continue;
        }
        issuers.push(IssuerSpec {
            issuer: extra.issuer.clone(),
            jwks_uri: extra.jwks_uri.clone(),
            jwks_file: None,
            jwks: None,
            service_accounts: false,
            speaks_for: None,
        });
        for a in &extra.audiences {
            if !audiences.contains(a) {
                audiences.push(a.clone());
            }
        }
        let custom = |c: &Option<String>, default: &[&str]| {
            c.as_deref().is_some_and(|c| !default.contains(&c))
        };
        if custom(&extra.user_claim, &["oid", "sub"]) || custom(&extra.groups_claim, &["groups"]) {
            warnings.push(format!(
                "identity.issuers[{i}]: custom claim names are not honoured yet; the vault reads \
                 the user from oid (then sub) and groups from groups"
            ));
        }
    }

    Ok(IdentitySettings { issuers, audiences })
}

/// The server's own IP rules: the spec's, plus the pod network when `allowedPeers` are set
/// under `Deny` (the NetworkPolicy does the per-pod choice).
fn server_ip_rules(
    net: &crate::api::NetworkSpec,
    settings: &OperatorSettings,
    warnings: &mut Vec<String>,
) -> Vec<String> {
    // Network: the spec's rules; selectors become the pod network server-side (the
    // NetworkPolicy does the per-pod choice).
    let mut ip_rules = net.ip_rules.clone();
    if !net.allowed_peers.is_empty() && net.default_action == crate::policy::DefaultAction::Deny {
        if settings.pod_cidrs.is_empty() {
            warnings.push(
                "network.allowedPeers is enforced by the NetworkPolicy only: the operator was \
                 started without --pod-cidr, so the server's own firewall admits only ipRules"
                    .to_string(),
            );
        } else {
            for cidr in &settings.pod_cidrs {
                if !ip_rules.contains(cidr) {
                    ip_rules.push(cidr.clone());
                }
            }
        }
    }
    ip_rules
}

/// The operator's own subscription (the trigger of `SecretSync`s), next to the user's. Its
/// header value is derived, so the digest names the key's fingerprint instead.
fn add_sync_subscription(
    document: &mut PolicyDocument,
    sync: &crate::operator::sync::events::SyncEventSettings,
    namespace: &str,
    vault: &str,
    header_versions: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let events = document.events.get_or_insert_with(|| EventSettings {
        near_expiry_days: None,
        subscriptions: Vec::new(),
    });
    let sub = sync.subscription(namespace, vault);
    if events.subscriptions.iter().any(|s| s.name == sub.name) {
        warnings.push(format!(
            "notifications: the subscription name '{}' is the operator's own; yours is replaced",
            sub.name
        ));
        events.subscriptions.retain(|s| s.name != sub.name);
    }
    if events.subscriptions.len() >= crate::policy::events::MAX_SUBSCRIPTIONS {
        warnings.push(format!(
            "notifications: {} subscriptions leave no room for the operator's own; SecretSyncs of this vault refresh every refreshInterval only",
            events.subscriptions.len()
        ));
        return;
    }
    header_versions.push(format!("{}={}", sub.name, sync.proof.fingerprint()));
    events.subscriptions.push(sub);
}

/// `spec.notifications` as the document's `events`: each subscription is checked on its
/// own and left out (with a warning) when it is invalid or its header value is missing.
fn compile_notifications(
    n: &NotificationsSpec,
    headers: &ResolvedHeaders,
    header_versions: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> EventSettings {
    let mut subscriptions = Vec::new();
    for (i, s) in n.subscriptions.iter().enumerate() {
        let what = format!("notifications.subscriptions[{i}] ({})", s.name);
        let auth_header = match &s.auth_header {
            None => None,
            Some(h) => match headers.get(&s.name) {
                Some(ResolvedHeader::Found { value, version }) => {
                    header_versions.push(format!("{}={version}", s.name));
                    Some(AuthHeader {
                        name: h.name.clone(),
                        value: Some(value.clone()),
                    })
                }
                Some(ResolvedHeader::Missing(why)) => {
                    warnings.push(format!("{what}: {why}; the subscription is left out"));
                    continue;
                }
                None => {
                    warnings.push(format!(
                        "{what}: the authHeader's Secret was not read; the subscription is left out"
                    ));
                    continue;
                }
            },
        };
        let sub = EventSubscription {
            name: s.name.clone(),
            endpoint: s.endpoint.clone(),
            included_event_types: s.included_event_types.clone(),
            subject_begins_with: s.subject_begins_with.clone().filter(|p| !p.is_empty()),
            auth_header,
            near_expiry_days: s.near_expiry_days,
            ca_bundle: s.ca_bundle.clone().filter(|c| !c.trim().is_empty()),
            ttl_minutes: s.ttl_minutes,
        };
        if subscriptions
            .iter()
            .any(|o: &EventSubscription| o.name == sub.name)
        {
            warnings.push(format!(
                "{what}: the name is used twice; the subscription is left out"
            ));
            continue;
        }
        let alone = EventSettings {
            near_expiry_days: None,
            subscriptions: vec![sub.clone()],
        };
        match alone.validate() {
            Ok(()) => subscriptions.push(sub),
            Err(e) => warnings.push(format!("{what}: {e}; the subscription is left out")),
        }
    }
    EventSettings {
        near_expiry_days: n
            .near_expiry_days
            .filter(|d| (1..=crate::policy::events::MAX_NEAR_EXPIRY_DAYS).contains(d)),
        subscriptions,
    }
}

/// An event subscription's header value from its Secret (`None`: the Secret does not
/// exist). Only a Secret labelled `kvault.dev/event-auth: "true"` is used, so that whoever
/// may edit a Vault cannot send any Secret of the namespace to a webhook. A trailing line
/// break (as files put there) is dropped.
pub fn header_from_secret(
    secret: Option<&k8s_openapi::api::core::v1::Secret>,
    name: &str,
    key: &str,
) -> ResolvedHeader {
    use crate::api::notifications::EVENT_AUTH_LABEL;
    let Some(secret) = secret else {
        return ResolvedHeader::Missing(format!("Secret {name} does not exist"));
    };
    let labelled = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(EVENT_AUTH_LABEL))
        .is_some_and(|v| v == "true");
    if !labelled {
        return ResolvedHeader::Missing(format!(
            "Secret {name} lacks the label {EVENT_AUTH_LABEL}: \"true\" that allows its use as a webhook header"
        ));
    }
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) else {
        return ResolvedHeader::Missing(format!("Secret {name} has no key {key}"));
    };
    let Ok(text) = std::str::from_utf8(&bytes.0) else {
        return ResolvedHeader::Missing(format!("Secret {name} key {key} is not UTF-8 text"));
    };
    let value = text.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        return ResolvedHeader::Missing(format!("Secret {name} key {key} is empty"));
    }
    ResolvedHeader::Found {
        value: HeaderSecret::new(value),
        version: format!(
            "{}/{}",
            secret.metadata.uid.as_deref().unwrap_or_default(),
            secret
                .metadata
                .resource_version
                .as_deref()
                .unwrap_or_default()
        ),
    }
}

/// SHA-256 (hex) of the document's content, generation excluded (header values excluded
/// too: see [`digest_with`]).
pub fn digest(doc: &PolicyDocument) -> String {
    digest_with(doc, &[])
}

/// The digest of a document whose subscription header values have these versions: the
/// values themselves never enter it (it is shown in the Vault's status), their versions
/// do, so a changed Secret still changes the digest and is pushed.
pub fn digest_with(doc: &PolicyDocument, header_versions: &[String]) -> String {
    let mut canonical = doc.redacted();
    canonical.generation = 0;
    // Serializing a plain struct of strings and numbers cannot fail.
    let mut bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    for v in header_versions {
        bytes.push(b'\n');
        bytes.extend_from_slice(v.as_bytes());
    }
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The generation to push, and whether a push is needed: the same content keeps the
/// generation the vault already has; any change takes the next one.
pub fn next_generation(
    applied_generation: Option<i64>,
    applied_digest: Option<&str>,
    digest: &str,
) -> (u64, bool) {
    let applied = applied_generation.and_then(|g| u64::try_from(g).ok());
    match (applied, applied_digest) {
        (Some(g), Some(d)) if d == digest => (g, false),
        (Some(g), _) => (g + 1, true),
        (None, _) => (1, true),
    }
}

#[cfg(test)]
mod tests;
