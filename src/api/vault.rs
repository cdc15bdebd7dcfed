//! `Vault`: one vault — a `kvault server` StatefulSet with its storage, certificate, master
//! key, Service and network policy — and the settings of its policy document.

// Several `printcolumn(…, type_ = "string", …)` read to clippy as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use super::schema;
use crate::policy::{
    AuthorizationMode, DefaultAction, SoftDeleteSettings, ThrottlingSettings, TlsSettings,
    TlsVersion,
};
use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A key vault: an HTTPS endpoint at `https://<name>.<namespace>.svc` speaking the Azure Key
/// Vault data-plane API, with its own storage, master key and policy.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kvault.dev",
    version = "v1alpha1",
    kind = "Vault",
    namespaced,
    status = "VaultStatus",
    shortname = "kv",
    category = "kvault",
    derive = "PartialEq",
    doc = "A key vault: secrets, keys and certificates behind the Azure Key Vault data-plane API.",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.authorization"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = "1"
    ),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.vaultUri"),
    printcolumn(
        name = "Policy",
        type_ = "integer",
        json_path = ".status.appliedPolicyGeneration",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new(
        "!has(oldSelf.softDelete) || !has(oldSelf.softDelete.purgeProtection) || !oldSelf.softDelete.purgeProtection || (has(self.softDelete) && has(self.softDelete.purgeProtection) && self.softDelete.purgeProtection)"
    ).message("softDelete.purgeProtection cannot be turned off once it is on").field_path(".softDelete.purgeProtection").reason(Reason::FieldValueForbidden),
    validation = Rule::new(
        "!has(self.replicas) || self.replicas <= 1 || !has(self.storage) || !has(self.storage.embedded)"
    ).message("embedded storage serves one replica; more replicas need a shared storage backend").field_path(".replicas").reason(Reason::FieldValueInvalid),
    validation = Rule::new(
        "!has(oldSelf.storage) || !has(oldSelf.storage.embedded) || !has(self.storage) || !has(self.storage.embedded) || (has(self.storage.embedded.storageClassName) == has(oldSelf.storage.embedded.storageClassName) && (!has(oldSelf.storage.embedded.storageClassName) || self.storage.embedded.storageClassName == oldSelf.storage.embedded.storageClassName))"
    ).message("storage.embedded.storageClassName cannot change once the Vault exists, not even from unset to set (the volume already exists)").field_path(".storage.embedded.storageClassName"),
    validation = Rule::new(
        "!has(oldSelf.createMode) || !has(self.createMode) || self.createMode == oldSelf.createMode || self.createMode != 'Recover'"
    ).message("createMode: Recover only applies when a Vault is created: delete this Vault and create it again with createMode: Recover to take over a deleted vault").field_path(".createMode").reason(Reason::FieldValueForbidden),
    validation = Rule::new(
        "!has(oldSelf.storage) || !has(self.storage) || has(self.storage.postgres) == has(oldSelf.storage.postgres)"
    ).message("storage cannot move between embedded and postgres (the data would stay behind)").field_path(".storage"),
    validation = Rule::new(
        "!has(self.storage) || !has(self.storage.postgres) || !has(self.audit) || !has(self.audit.destinations) || !self.audit.destinations.exists(d, d == 'File')"
    ).message("the File audit destination needs embedded storage (its data volume); use Stdout with postgres").field_path(".audit.destinations"),
)]
#[serde(rename_all = "camelCase")]
pub struct VaultSpec {
    /// RBAC (role assignments, the default) or AccessPolicy.
    #[serde(default)]
    #[schemars(schema_with = "schema::authorization_mode")]
    pub authorization: AuthorizationMode,

    /// Soft delete of objects, and of the vault itself when this resource is deleted.
    #[serde(default = "default_soft_delete")]
    #[schemars(schema_with = "schema::soft_delete")]
    pub soft_delete: SoftDeleteSettings,

    /// Default: a new, empty vault. Recover: take over the data and master key a deleted
    /// vault of the same name left behind (within its retention period).
    #[serde(default)]
    pub create_mode: CreateMode,

    /// Who may connect.
    #[serde(default)]
    pub network: NetworkSpec,

    /// Transport settings.
    #[serde(default = "default_tls")]
    #[schemars(schema_with = "schema::tls_settings")]
    pub tls: TlsSettings,

    /// Token issuers trusted besides the cluster's service-account issuer.
    #[serde(default)]
    pub identity: VaultIdentity,

    /// Where the vault keeps its data.
    #[serde(default)]
    pub storage: StorageSpec,

    /// Server pods (0 stops the vault and keeps its data).
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 7))]
    pub replicas: i32,

    /// Request budgets.
    #[serde(default)]
    #[schemars(schema_with = "schema::throttling")]
    pub throttling: ThrottlingSettings,

    /// Where the audit log goes.
    #[serde(default)]
    pub audit: AuditSpec,

    /// Event notifications: CloudEvents webhooks (new versions, near expiry, expiry, policy
    /// changes) and the near-expiry threshold of the Kubernetes Events on this Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<super::notifications::NotificationsSpec>,

    /// Compute resources of the server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Pod scheduling.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

fn one() -> i32 {
    1
}

pub fn default_soft_delete() -> SoftDeleteSettings {
    SoftDeleteSettings {
        retention_days: 90,
        purge_protection: false,
    }
}

pub fn default_tls() -> TlsSettings {
    TlsSettings {
        min_version: TlsVersion::Tls12,
    }
}

impl Default for VaultSpec {
    fn default() -> Self {
        Self {
            authorization: AuthorizationMode::Rbac,
            soft_delete: default_soft_delete(),
            create_mode: CreateMode::Default,
            network: NetworkSpec::default(),
            tls: default_tls(),
            identity: VaultIdentity::default(),
            storage: StorageSpec::default(),
            replicas: 1,
            throttling: ThrottlingSettings::default(),
            audit: AuditSpec::default(),
            notifications: None,
            resources: None,
            node_selector: BTreeMap::new(),
            tolerations: vec![],
            affinity: None,
            topology_spread_constraints: vec![],
            priority_class_name: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CreateMode {
    #[default]
    Default,
    Recover,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PublicNetworkAccess {
    /// Reachable from inside the cluster only (a ClusterIP Service).
    #[default]
    Disabled,
    /// Also exposed outside the cluster (a LoadBalancer Service).
    Enabled,
}

/// Who may connect: the vault firewall, enforced as a NetworkPolicy and again by the server
/// on the peer address.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Allow (default) or Deny callers that no rule below names.
    #[serde(default)]
    #[schemars(schema_with = "schema::default_action")]
    pub default_action: DefaultAction,
    /// IPv4/IPv6 addresses or CIDRs allowed when the default action is Deny.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 400), inner(length(max = 43)))]
    #[x_kube(validation = Rule::new("self.all(r, isCIDR(r) || isIP(r))").message("every ipRules entry must be an IP address or CIDR"))]
    pub ip_rules: Vec<String>,
    /// Pods allowed when the default action is Deny, by namespace and pod labels (the
    /// cluster's counterpart of the cloud's virtual-network rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub allowed_peers: Vec<NetworkPeer>,
    /// Proxies (addresses or CIDRs) whose X-Forwarded-For the server believes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 43)))]
    #[x_kube(validation = Rule::new("self.all(r, isCIDR(r) || isIP(r))").message("every trustedProxies entry must be an IP address or CIDR"))]
    pub trusted_proxies: Vec<String>,
    /// Disabled (default): a ClusterIP Service. Enabled: a LoadBalancer Service.
    #[serde(default)]
    pub public_network_access: PublicNetworkAccess,
}

/// Pods in namespaces matching `namespaceSelector` (default: the vault's namespace) and
/// matching `podSelector` (default: all pods there).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.namespaceSelector) || has(self.podSelector)").message("a peer needs a namespaceSelector, a podSelector or both"))]
pub struct NetworkPeer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
}

/// Token issuers for people and external workloads.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultIdentity {
    /// Extra OIDC issuers (Dex, Keycloak, Entra ID …). Their tokens never count as the
    /// cluster's service accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub issuers: Vec<OidcIssuer>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcIssuer {
    /// The `iss` claim, an https URL.
    #[schemars(regex(pattern = r"^https://[^\s]+$"), length(max = 512))]
    pub issuer: String,
    /// Where the signing keys are (https). Absent: OIDC discovery on the issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https://[^\s]+$"), length(max = 512))]
    pub jwks_uri: Option<String>,
    /// Accepted `aud` values for tokens of this issuer, besides the vault URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub audiences: Vec<String>,
    /// Claim holding the user id (default `oid`, then `sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub user_claim: Option<String>,
    /// Claim holding the group list (default `groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub groups_claim: Option<String>,
}

/// Where the vault keeps its data: exactly one of `embedded` and `postgres`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.embedded) != has(self.postgres)",
    "message": "storage needs exactly one of embedded and postgres"
}]))]
pub struct StorageSpec {
    /// The embedded database on a PersistentVolumeClaim (one replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<EmbeddedStorage>,
    /// A PostgreSQL database you operate, shared by every replica (replicas may exceed 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresStorage>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            embedded: Some(EmbeddedStorage::default()),
            postgres: None,
        }
    }
}

/// Connection details of a PostgreSQL database, from a Secret in the vault's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresStorage {
    /// Secret with `url` (postgres://USER@HOST:PORT/DB?sslmode=require, no password),
    /// `password`, and, with `caFromSecret`, `ca.crt`.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Verify the database's certificate with the Secret's `ca.crt` (default: system roots).
    #[serde(default)]
    pub ca_from_secret: bool,
    /// The PostgreSQL schema of this vault's records (default: from namespace and name).
    /// Two vaults must never share one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z_][a-z0-9_]{0,47}$"))]
    pub schema: Option<String>,
    /// Database connections per replica.
    #[serde(default = "default_max_connections")]
    #[schemars(range(min = 2, max = 256))]
    pub max_connections: i32,
}

fn default_max_connections() -> i32 {
    16
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.size) || (isQuantity(string(self.size)) && quantity(string(self.size)).isGreaterThan(quantity('0')))",
        "message": "storage.embedded.size must be a positive quantity such as 1Gi or 500Mi",
        "fieldPath": ".size"
    },
    {
        "rule": "!has(self.size) || !has(oldSelf.size) || !isQuantity(string(self.size)) || !isQuantity(string(oldSelf.size)) || quantity(string(self.size)).compareTo(quantity(string(oldSelf.size))) >= 0",
        "message": "storage.embedded.size cannot shrink (a volume never gets smaller); it may grow",
        "fieldPath": ".size"
    }
]))]
pub struct EmbeddedStorage {
    /// Size of the data volume.
    #[serde(default = "default_size")]
    pub size: Quantity,
    /// StorageClass of the data volume (default: the cluster's default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

fn default_size() -> Quantity {
    Quantity("1Gi".into())
}

impl Default for EmbeddedStorage {
    fn default() -> Self {
        Self {
            size: default_size(),
            storage_class_name: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AuditDestination {
    /// One JSON line per request on the server's standard output.
    Stdout,
    /// `audit.log` on the vault's data volume (kept with the data).
    File,
}

/// The audit log: every data-plane and admin request, never a value, key or token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditSpec {
    /// Destinations; empty turns the audit log off.
    #[serde(default = "default_audit")]
    #[schemars(length(max = 2))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub destinations: Vec<AuditDestination>,
}

fn default_audit() -> Vec<AuditDestination> {
    vec![AuditDestination::Stdout]
}

impl Default for AuditSpec {
    fn default() -> Self {
        Self {
            destinations: default_audit(),
        }
    }
}

/// What the operator last saw and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultStatus {
    /// Ready, Progressing and Degraded, each with a reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The URL clients use: `https://<name>.<namespace>.svc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_uri: Option<String>,
    /// The generation of the policy document the vault last accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_policy_generation: Option<i64>,
    /// A digest of that document's content (without its generation): a change of any
    /// grant or setting changes it and makes the operator push a new generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_policy_digest: Option<String>,
}

/// Longest Vault name: the StatefulSet's pods and revision labels add a suffix (the
/// operator's `desired::MAX_VAULT_NAME`; a unit test keeps the two equal).
pub const MAX_VAULT_NAME: usize = 52;

/// The root-level rule on `metadata.name` (kube-derive emits none; `crate::api::crds` adds
/// it): a DNS label of at most [`MAX_VAULT_NAME`] characters starting with a letter.
pub fn name_rule() -> serde_json::Value {
    serde_json::json!({
        "rule": format!(
            "size(self.metadata.name) <= {MAX_VAULT_NAME} && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')"
        ),
        "message": format!(
            "a Vault name must be a DNS label of at most {MAX_VAULT_NAME} characters starting with a letter (it names the StatefulSet, its pods and the Service)"
        ),
        "reason": "FieldValueInvalid"
    })
}

impl Vault {
    /// The URL clients use (and the server's `--url`).
    pub fn url(&self) -> Option<String> {
        let name = self.metadata.name.as_deref()?;
        let ns = self.metadata.namespace.as_deref()?;
        Some(format!("https://{name}.{ns}.svc"))
    }
}
