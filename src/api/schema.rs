//! Hand-written schemas for the policy-document types the resources reuse. Enum values come
//! from the same lists the server parses (`KeyPermission::ALL`, `BuiltInRole::ALL`, …), so a
//! name the server would refuse is refused by the API server first.

use crate::policy::{BuiltInRole, CertificatePermission, KeyPermission, SecretPermission};
use schemars::{Schema, SchemaGenerator};
use serde_json::{Value, json};

/// A DNS-1123 label (names of namespaces, service accounts, vaults).
pub const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A DNS-1123 subdomain (names of Secrets, ServiceAccounts and workloads).
pub const DNS_SUBDOMAIN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// `/` for the whole vault, or one object: `/secrets/<name>`, `/keys/<name>`,
/// `/certificates/<name>` (object names as the vault allows them).
pub const SCOPE_PATTERN: &str = "^/((secrets|keys|certificates)/[0-9A-Za-z-]{1,127})?$";

pub(crate) fn object(v: Value) -> Schema {
    match v {
        Value::Object(map) => Schema::from(map),
        // Every schema below is a JSON object literal.
        _ => Schema::default(),
    }
}

pub fn authorization_mode(_: &mut SchemaGenerator) -> Schema {
    object(json!({
        "description": "How data access is decided: RBAC (role assignments) or AccessPolicy \
                        (per-principal permission lists).",
        "type": "string",
        "enum": ["RBAC", "AccessPolicy"],
        "default": "RBAC"
    }))
}

pub fn default_action(_: &mut SchemaGenerator) -> Schema {
    object(json!({
        "description": "What happens to a caller that no rule allows: Allow (default) or Deny.",
        "type": "string",
        "enum": ["Allow", "Deny"],
        "default": "Allow"
    }))
}

pub fn tls_settings(_: &mut SchemaGenerator) -> Schema {
    object(json!({
        "description": "Transport settings.",
        "type": "object",
        "default": {"minVersion": "1.2"},
        "properties": {
            "minVersion": {
                "description": "The oldest TLS version accepted: 1.2 (default) or 1.3.",
                "type": "string",
                "enum": ["1.2", "1.3"],
                "default": "1.2"
            }
        }
    }))
}

pub fn soft_delete(_: &mut SchemaGenerator) -> Schema {
    object(json!({
        "description": "Soft delete of the vault's objects and of the vault itself.",
        "type": "object",
        "default": {"retentionDays": 90, "purgeProtection": false},
        "properties": {
            "retentionDays": {
                "description": "Days a deleted object (or deleted vault) stays recoverable, 7-90.",
                "type": "integer",
                "format": "int32",
                "minimum": 7,
                "maximum": 90,
                "default": 90
            },
            "purgeProtection": {
                "description": "Refuse purges: deleted objects go only when their retention \
                                ends. Can be turned on, never off.",
                "type": "boolean",
                "default": false
            }
        }
    }))
}

pub fn throttling(_: &mut SchemaGenerator) -> Schema {
    object(json!({
        "description": "Request budgets per window (the cloud's service limits by default).",
        "type": "object",
        "default": {"enabled": true, "windowSeconds": 10, "secretWrites": 300, "requests": 4000},
        "properties": {
            "enabled": {"type": "boolean", "default": true},
            "windowSeconds": {
                "type": "integer", "format": "int32", "minimum": 1, "maximum": 3600, "default": 10
            },
            "secretWrites": {
                "description": "Secret creations (set, restore) per window.",
                "type": "integer", "format": "int32", "minimum": 1, "default": 300
            },
            "requests": {
                "description": "Every other transaction per window.",
                "type": "integer", "format": "int32", "minimum": 1, "default": 4000
            },
            "principalShare": {
                "description": "The percentage of each budget one principal may use, so one \
                                busy caller cannot spend everyone's budget.",
                "type": "integer", "minimum": 1, "maximum": 100, "default": 50
            }
        }
    }))
}

pub fn principal(_: &mut SchemaGenerator) -> Schema {
    object(json!({
        "description": "Whom the grant names. A ServiceAccount without a namespace is one in \
                        the grant's own namespace.",
        "type": "object",
        "required": ["kind", "name"],
        "properties": {
            "kind": {
                "type": "string",
                "enum": ["ServiceAccount", "User", "Group", "Application"]
            },
            "name": {
                "description": "Service account name, user id (oid or sub), group name, or \
                                application (client) id.",
                "type": "string",
                "minLength": 1,
                "maxLength": 256
            },
            "namespace": {
                "description": "ServiceAccount only.",
                "type": "string",
                "maxLength": 63,
                "pattern": DNS_LABEL
            },
            "issuer": {
                "description": "The issuer (`iss`) whose tokens this grant trusts: the same \
                                name from another issuer is someone else. Absent: the \
                                vault's one people issuer (spec.identity.issuers), or the \
                                cluster issuer when there is none; a vault with several \
                                people issuers refuses a User, Group or Application grant \
                                without it. Not for a ServiceAccount: it is always the \
                                cluster issuer's.",
                "type": "string",
                "minLength": 1,
                "maxLength": 512
            }
        },
        "x-kubernetes-validations": [
            {
                // `namespace` is a CEL reserved word: Kubernetes escapes it as `__namespace__`.
                "rule": "self.kind == 'ServiceAccount' || !has(self.__namespace__)",
                "message": "only a ServiceAccount principal has a namespace"
            },
            {
                "rule": "self.kind != 'ServiceAccount' || self.name.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",
                "message": "a ServiceAccount name must be a DNS subdomain"
            },
            {
                "rule": "self.kind != 'ServiceAccount' || !has(self.issuer)",
                "message": "a ServiceAccount is always the cluster issuer's: it names no issuer"
            }
        ]
    }))
}

fn name_list(description: &str, names: Vec<&'static str>) -> Value {
    json!({
        "description": description,
        "type": "array",
        "items": {"type": "string", "enum": names},
        "x-kubernetes-list-type": "set",
        "maxItems": 32,
        "default": []
    })
}

pub fn permissions(_: &mut SchemaGenerator) -> Schema {
    object(json!({
        "description": "Access-policy permissions by object family (the cloud's names).",
        "type": "object",
        "properties": {
            "keys": name_list(
                "Permissions on keys.",
                KeyPermission::ALL.iter().map(|p| p.as_str()).collect()
            ),
            "secrets": name_list(
                "Permissions on secrets.",
                SecretPermission::ALL.iter().map(|p| p.as_str()).collect()
            ),
            "certificates": name_list(
                "Permissions on certificates.",
                CertificatePermission::ALL.iter().map(|p| p.as_str()).collect()
            )
        },
        "x-kubernetes-validations": [{
            "rule": "(has(self.keys) && size(self.keys) > 0) || (has(self.secrets) && size(self.secrets) > 0) || (has(self.certificates) && size(self.certificates) > 0)",
            "message": "grant at least one permission"
        }]
    }))
}

/// The role names and, for people copying from the cloud, the role definition ids.
pub fn role_names() -> Vec<&'static str> {
    BuiltInRole::ALL
        .iter()
        .map(|r| r.name())
        .chain(BuiltInRole::ALL.iter().map(|r| r.id()))
        .collect()
}

pub fn role(_: &mut SchemaGenerator) -> Schema {
    object(json!({
        "description": "A built-in data role, by name (e.g. \"Key Vault Secrets User\") or by \
                        the cloud's role definition id.",
        "type": "string",
        "enum": role_names()
    }))
}

/// `conditions` as a list map keyed by `type`, so server-side apply merges per condition.
pub fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let item =
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>();
    object(json!({
        "description": "Latest observations of the object's state.",
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"]
    }))
}
