//! `AccessPolicy` and `RoleAssignment`: grants on one vault in the same namespace. The
//! operator compiles them with the vault's settings into its policy document.

// Several `printcolumn(…, type_ = "string", …)` read to clippy as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use super::schema;
use crate::policy::{BuiltInRole, PermissionSet, PrincipalRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The vault a grant belongs to (same namespace).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultRef {
    /// Name of a `Vault` in this namespace.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// In AccessPolicy mode: a principal's permissions on the vault's keys, secrets and
/// certificates.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kvault.dev",
    version = "v1alpha1",
    kind = "AccessPolicy",
    namespaced,
    status = "GrantStatus",
    shortname = "kvap",
    category = "kvault",
    derive = "PartialEq",
    doc = "A vault access policy: permissions of one principal (AccessPolicy mode).",
    printcolumn(name = "Vault", type_ = "string", json_path = ".spec.vaultRef.name"),
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.principal.kind"),
    printcolumn(
        name = "Principal",
        type_ = "string",
        json_path = ".spec.principal.name"
    ),
    printcolumn(
        name = "Applied",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Applied\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Applied\")].reason",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicySpec {
    pub vault_ref: VaultRef,
    #[schemars(schema_with = "schema::principal")]
    pub principal: PrincipalRef,
    /// Compound identity: the entry applies only when the principal calls through this
    /// application (client id), never to either alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub application: Option<String>,
    #[schemars(schema_with = "schema::permissions")]
    pub permissions: PermissionSet,
}

/// In RBAC mode: a built-in role for a principal, on the whole vault or on one object.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kvault.dev",
    version = "v1alpha1",
    kind = "RoleAssignment",
    namespaced,
    status = "GrantStatus",
    shortname = "kvra",
    category = "kvault",
    derive = "PartialEq",
    doc = "A vault role assignment: a built-in data role for one principal (RBAC mode).",
    printcolumn(name = "Vault", type_ = "string", json_path = ".spec.vaultRef.name"),
    printcolumn(name = "Role", type_ = "string", json_path = ".spec.role"),
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.principal.kind"),
    printcolumn(
        name = "Principal",
        type_ = "string",
        json_path = ".spec.principal.name"
    ),
    printcolumn(name = "Scope", type_ = "string", json_path = ".spec.scope"),
    printcolumn(
        name = "Applied",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Applied\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignmentSpec {
    pub vault_ref: VaultRef,
    #[schemars(schema_with = "schema::role")]
    pub role: BuiltInRole,
    #[schemars(schema_with = "schema::principal")]
    pub principal: PrincipalRef,
    /// Compound identity, as for access policies (a kvault extension in RBAC mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub application: Option<String>,
    /// `/` (default) for the whole vault, or `/secrets/<name>`, `/keys/<name>`,
    /// `/certificates/<name>` for one object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = schema::SCOPE_PATTERN))]
    pub scope: Option<String>,
}

/// Whether the grant is part of the policy its vault enforces.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantStatus {
    /// `Applied`: True when the vault enforces the grant; False with the reason otherwise
    /// (VaultNotFound, InvalidPrincipal, InactiveInThisMode, VaultNotReady …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The vault's policy generation that last included this grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_policy_generation: Option<i64>,
}
