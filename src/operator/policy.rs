//! Policy compilation: a `Vault` and its `AccessPolicy` / `RoleAssignment` objects into the
//! vault's policy document. Pure; the controller pushes the result.
//!
//! Every grant gets an outcome, so its status can say whether the vault enforces it and, if
//! not, why. One bad grant never blocks the others: each is checked on its own with the same
//! validation the server runs (`PolicyDocument::compile`), and left out when it fails.

use super::OperatorSettings;
use crate::api::{AccessPolicy, RoleAssignment, Vault};
use crate::policy::{
    AccessPolicyEntry, AuthorizationMode, IdentitySettings, IssuerSpec, MAX_ACCESS_POLICIES,
    NetworkRules, PolicyDocument, PolicyError, PrincipalKind, PrincipalRef, RoleAssignmentEntry,
};
use crate::server::config::{VaultUrl, default_audiences};

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
    if p.kind == PrincipalKind::ServiceAccount && p.namespace.as_deref().is_none_or(str::is_empty) {
        p.namespace = Some(grant_ns.to_string());
    }
    p
}

fn check_alone(entry: PolicyDocument) -> Result<(), String> {
    entry.compile().map(|_| ()).map_err(|e| e.to_string())
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
            match check_alone(alone) {
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
        let state = match check_alone(alone) {
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

    // Network: the spec's rules; selectors become the pod network server-side (the
    // NetworkPolicy does the per-pod choice).
    let net = &spec.network;
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
        service_accounts: true,
    }];
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
            service_accounts: false,
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
        identity: Some(IdentitySettings { issuers, audiences }),
        soft_delete: Some(spec.soft_delete),
        throttling: spec.throttling,
        events: None,
    };
    document.compile().map_err(CompileError::Invalid)?;
    let digest = digest(&document);
    document.generation = generation;
    Ok(CompiledVaultPolicy {
        document,
        digest,
        grants,
        warnings,
    })
}

/// SHA-256 (hex) of the document's content, generation excluded.
pub fn digest(doc: &PolicyDocument) -> String {
    let canonical = PolicyDocument {
        generation: 0,
        ..doc.clone()
    };
    // Serializing a plain struct of strings and numbers cannot fail.
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
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
