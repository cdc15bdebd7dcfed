//! `SecretSync`: vault objects rendered into one Kubernetes Secret of the same namespace,
//! read as a ServiceAccount of that namespace (never the operator's identity), refreshed by
//! the vault's event notifications with a periodic resync as the safety net, and restarting
//! the workloads it names when the rendered data changes.
//!
//! The objects use the SecretProviderClass's field names (`objectName`, `objectType`, …)
//! so that an entry can be copied between the two.

// Several `printcolumn(…, type_ = "string", …)` read to clippy as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use super::grants::VaultRef;
use super::schema;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// At most this many explicit objects per SecretSync.
pub const MAX_SYNC_OBJECTS: usize = 64;
/// At most this many selectors per SecretSync.
pub const MAX_SYNC_SELECTORS: usize = 8;
/// What one selector takes at most (default 100); a larger match fails the whole sync.
pub const MAX_SELECTED: u32 = 500;
pub const DEFAULT_MAX_SELECTED: u32 = 100;
/// At most this many templates.
pub const MAX_TEMPLATES: usize = 32;
/// At most this many restart targets.
pub const MAX_RESTART_TARGETS: usize = 16;

/// Vault objects synced into a Kubernetes Secret.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kvault.dev",
    version = "v1alpha1",
    kind = "SecretSync",
    namespaced,
    status = "SecretSyncStatus",
    shortname = "kvss",
    category = "kvault",
    derive = "PartialEq",
    doc = "Vault secrets, keys and certificates synced into a Kubernetes Secret, read as a ServiceAccount of the namespace.",
    printcolumn(name = "Vault", type_ = "string", json_path = ".spec.vaultRef.name"),
    printcolumn(name = "Secret", type_ = "string", json_path = ".status.secretName"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Keys", type_ = "integer", json_path = ".status.keyCount"),
    printcolumn(name = "Synced", type_ = "date", json_path = ".status.lastSyncTime"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.objects) && size(self.objects) > 0) || (has(self.selectors) && size(self.selectors) > 0)",
        "message": "a SecretSync needs at least one entry in objects or selectors"
    },
    {
        "rule": "!has(self.target) || !has(self.target.type) || self.target.type != 'kubernetes.io/tls' || (!has(self.selectors) || size(self.selectors) == 0)",
        "message": "a kubernetes.io/tls target takes one certificate's secret in objects (or templates for tls.crt and tls.key), not selectors"
    }
]))]
pub struct SecretSyncSpec {
    /// The vault read from (same namespace).
    pub vault_ref: VaultRef,
    /// The ServiceAccount of this namespace the sync reads as: the vault's grants for it
    /// decide what may be read, exactly as for a pod running as it.
    #[schemars(length(min = 1, max = 253), regex(pattern = schema::DNS_SUBDOMAIN))]
    pub service_account_name: String,
    /// Objects by name, in the SecretProviderClass's shape; `objectAlias` is the Secret key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub objects: Vec<SyncObject>,
    /// Every secret whose name starts with a prefix and/or carries tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub selectors: Vec<SyncSelector>,
    /// The Secret written.
    #[serde(default)]
    pub target: SyncTarget,
    /// How often the sync runs without an event (a Go duration such as `5m`; default 5m,
    /// at least 10s). Events from the vault trigger it within a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub refresh_interval: Option<String>,
    /// Workloads restarted (`kubectl rollout restart`) when the Secret's data changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub rollout_restart_targets: Vec<RestartTarget>,
}

/// One object, as a SecretProviderClass names it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncObject {
    #[schemars(length(min = 1, max = 127), regex(pattern = r"^[0-9A-Za-z-]+$"))]
    pub object_name: String,
    /// `secret` (default), `key` (the public key, PEM) or `cert` (the certificate, PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "object_type")]
    pub object_type: Option<String>,
    /// A version id; latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 127), regex(pattern = r"^[0-9A-Za-z-]+$"))]
    pub object_version: Option<String>,
    /// The Secret key (default: the object's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub object_alias: Option<String>,
    /// A certificate's secret as `pem` (key and chain, default) or `pfx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "object_format")]
    pub object_format: Option<String>,
    /// How a secret's value is decoded before it is stored: `utf-8` (default), `hex` or
    /// `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "object_encoding")]
    pub object_encoding: Option<String>,
}

/// Bulk selection of secrets: by name prefix, by tags, or both (all secrets when neither).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncSelector {
    /// Secrets whose name starts with this (case-insensitive, as vault names compare).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 127), regex(pattern = r"^[0-9A-Za-z-]+$"))]
    pub name_prefix: Option<String>,
    /// Secrets carrying every one of these tags with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 15))]
    pub tags: BTreeMap<String, String>,
    /// How a selected secret's name becomes a Secret key: `Name` (default, as is),
    /// `StripPrefix` (without namePrefix) or `EnvVar` (upper case, `-` as `_`:
    /// `db-password` → `DB_PASSWORD`, for `envFrom`).
    #[serde(default)]
    pub key_naming: KeyNaming,
    /// Put before every key after naming (e.g. `APP_`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = SECRET_KEY_PATTERN))]
    pub key_prefix: Option<String>,
    /// The most secrets this selector may take (default 100, at most 500): a larger match
    /// fails the sync rather than write part of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 500))]
    pub max_objects: Option<u32>,
}

/// The key-naming rule of bulk selection, shared with the provider's `objectKeyNaming`.
pub use crate::client::select::KeyNaming;

/// The Secret a SecretSync writes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncTarget {
    /// The Secret's name (default: the SecretSync's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = schema::DNS_SUBDOMAIN))]
    pub name: Option<String>,
    /// `Opaque` (default), `kubernetes.io/tls` (tls.crt and tls.key from a certificate's
    /// secret) or `kubernetes.io/dockerconfigjson` (a `.dockerconfigjson` key).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "secret_type")]
    pub secret_type: Option<String>,
    /// Labels and annotations put on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Keys rendered by templates (minijinja, Jinja2 syntax) from the objects: each object
    /// is `objects["<key>"]`; filters `b64encode`, `b64decode`, `tojson` and the usual ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 32))]
    pub templates: BTreeMap<String, String>,
    /// With templates: `Replace` (default; the Secret holds the templates' keys only) or
    /// `Merge` (the objects' keys too, templates winning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "merge_policy")]
    pub merge_policy: Option<String>,
    /// When the SecretSync is deleted: `Delete` (default; the Secret goes with it, by
    /// owner reference) or `Orphan` (the Secret stays).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Take over a Secret of that name that this SecretSync did not create (default false:
    /// such a Secret is left alone and the status says so).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Orphan,
}

/// A workload restarted when the Secret's data changes: by name or by label selector.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.name) != has(self.selector)",
        "message": "a rollout restart target needs exactly one of name and selector"
    }
]))]
pub struct RestartTarget {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    #[schemars(schema_with = "workload_kind")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = schema::DNS_SUBDOMAIN))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// What the last sync did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretSyncStatus {
    /// `Ready`: True when the Secret holds the current data; False with the reason
    /// (VaultNotFound, Forbidden, ObjectNotFound, TooManyObjects, TemplateError,
    /// SecretNotOwned, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Secret written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_count: Option<u32>,
    /// SHA-256 (hex) of the rendered data, keys and values: a sync that changes nothing
    /// leaves it, and restarts nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_hash: Option<String>,
    /// When the Secret was last written with changed data (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_time: Option<String>,
    /// When the sync last ran successfully (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// The data hash the restart targets were last restarted for (or started with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_hash: Option<String>,
    /// When the targets were last restarted (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart_time: Option<String>,
    /// The objects and versions in the Secret (`<type>/<name>@<version>`, at most 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synced_objects: Vec<String>,
}

/// A Secret key: what Kubernetes accepts in `data`.
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";

fn string_enum(description: &str, values: &[&str]) -> schemars::Schema {
    schema::object(serde_json::json!({
        "description": description,
        "type": "string",
        "enum": values
    }))
}

fn object_type(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    string_enum(
        "`secret` (default), `key` (the public key, PEM) or `cert` (the certificate, PEM).",
        &["secret", "key", "cert"],
    )
}

fn object_format(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    string_enum(
        "A certificate's secret as `pem` (key and chain, default) or `pfx`.",
        &["pem", "pfx"],
    )
}

fn object_encoding(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    string_enum(
        "How a secret's value is decoded: `utf-8` (default), `hex` or `base64`.",
        &["utf-8", "hex", "base64"],
    )
}

fn secret_type(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    string_enum(
        "The Secret's type: Opaque (default), kubernetes.io/tls or kubernetes.io/dockerconfigjson.",
        &[
            "Opaque",
            "kubernetes.io/tls",
            "kubernetes.io/dockerconfigjson",
        ],
    )
}

fn merge_policy(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    string_enum(
        "With templates: Replace (default, templates only) or Merge (objects' keys too).",
        &["Replace", "Merge"],
    )
}

fn workload_kind(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    string_enum(
        "Deployment, StatefulSet or DaemonSet.",
        &["Deployment", "StatefulSet", "DaemonSet"],
    )
}
