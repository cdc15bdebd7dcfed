//! `SecretSync`: vault objects written into a Kubernetes Secret, read as a ServiceAccount of
//! the namespace, refreshed on the vault's events and periodically, with rollout restarts
//! of the workloads that use them (docs/sync.md).
//!
//! Pure parts: [`plan`] (the spec validated and expanded), [`render`] (the Secret's data,
//! templates, hash, ownership), [`restart`] (when to restart) and [`events`] (the trigger's
//! proof); [`reconcile`] is the I/O shell around them.

pub mod events;
pub mod plan;
pub mod reconcile;
pub mod render;
pub mod restart;

/// The reasons of the `Ready` condition.
pub mod reason {
    pub const SYNCED: &str = "Synced";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const VAULT_NOT_FOUND: &str = "VaultNotFound";
    pub const SERVICE_ACCOUNT_NOT_FOUND: &str = "ServiceAccountNotFound";
    pub const TOKEN_SERVICE_DISABLED: &str = "TokenServiceDisabled";
    pub const FORBIDDEN: &str = "Forbidden";
    pub const OBJECT_NOT_FOUND: &str = "ObjectNotFound";
    pub const TOO_MANY_OBJECTS: &str = "TooManyObjects";
    pub const TEMPLATE_ERROR: &str = "TemplateError";
    pub const SECRET_NOT_OWNED: &str = "SecretNotOwned";
    pub const VAULT_UNAVAILABLE: &str = "VaultUnavailable";
    pub const APPLY_FAILED: &str = "ApplyFailed";
}
