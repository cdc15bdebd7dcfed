//! The per-vault policy document: everything the control plane decides about one vault
//! (authorization mode, access policies, role assignments, network rules, minimum TLS
//! version, trusted issuers and audiences, soft-delete settings, throttling), the pure
//! compilation of it into fast lookups, and the authorization decision.
//!
//! The operator builds this document from `Vault`, `AccessPolicy` and `RoleAssignment`
//! resources and pushes it to the vault; the server enforces it. Nothing here does I/O.

pub mod document;
pub mod error;
pub mod events;
pub mod issuers;
pub mod permissions;
pub mod principal;

pub use document::*;
pub use events::{
    AuthHeader, EventObject, EventSettings, EventSubscription, EventType, HeaderSecret, Occurrence,
};
pub use issuers::{IssuerBinding, IssuerContext, SubjectKind, TrustedIssuer};
pub use permissions::{
    ActionSet, BuiltInRole, CertificatePermission, DataAction, KeyPermission, ObjectKind,
    Permission, SecretPermission,
};
pub use principal::{Identity, Principal};

/// What one operation needs: the access-policy permission (AccessPolicy mode) or the data
/// action (RBAC mode), on the vault or on one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement<'a> {
    pub permission: Permission,
    /// Another permission that also suffices (e.g. `manageissuers` for every issuer
    /// operation).
    pub alternative: Option<Permission>,
    pub action: DataAction,
    /// The object (family, name) when the operation addresses one; `None` for listings
    /// and vault-wide operations, which only vault-scope grants allow.
    pub object: Option<(ObjectKind, &'a str)>,
}

impl CompiledPolicy {
    /// Deny by default: allowed only when a grant matching the caller covers the requirement.
    pub fn allows(&self, who: &Principal, req: &Requirement<'_>) -> bool {
        match self.mode {
            AuthorizationMode::AccessPolicy => self
                .access
                .iter()
                .filter(|e| e.grantee.matches(who))
                .any(|e| {
                    e.permits(req.permission) || req.alternative.is_some_and(|a| e.permits(a))
                }),
            AuthorizationMode::Rbac => self
                .assignments
                .iter()
                .filter(|a| a.grantee.matches(who))
                .filter(|a| a.scope.covers(req.object))
                .any(|a| a.actions.contains(req.action)),
        }
    }
}

#[cfg(test)]
mod tests;
