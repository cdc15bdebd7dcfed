//! `spec.notifications` of a `Vault`: CloudEvents webhooks for new versions, near expiry
//! and expiry of secrets, keys and certificates, and policy changes. The operator compiles
//! it into the policy document's `events` section; an authentication header's value comes
//! from a Secret in the vault's namespace (read by the operator, never written into the
//! `Vault`).

use crate::policy::EventType;
use schemars::{Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The label a Secret must carry before the operator sends its value to a webhook (so
/// that whoever may edit a `Vault` cannot ship any Secret of the namespace elsewhere).
pub const EVENT_AUTH_LABEL: &str = "kvault.dev/event-auth";

/// Event notifications of the vault.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsSpec {
    /// Days before an object's current version expires from which it counts as near
    /// expiry (default 30, as in the cloud). Also the threshold of the Kubernetes Events the
    /// operator records on this Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 365))]
    pub near_expiry_days: Option<u32>,
    /// Webhooks (at most 16), each with its own filters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub subscriptions: Vec<SubscriptionSpec>,
}

/// One webhook.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSpec {
    /// Unique in the vault; dead letters and metrics name it.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    pub name: String,
    /// Where events are POSTed (CloudEvents 1.0, structured JSON): an https URL.
    #[schemars(regex(pattern = r"^https://[^\s]+$"), length(max = 2048))]
    pub endpoint: String,
    /// Event types delivered (default: all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "event_types")]
    pub included_event_types: Vec<EventType>,
    /// Only events whose subject (the object's name) starts with this, ignoring case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub subject_begins_with: Option<String>,
    /// A header sent with every delivery, its value taken from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_header: Option<AuthHeaderSpec>,
    /// This subscription's near-expiry threshold in days (default: nearExpiryDays above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 365))]
    pub near_expiry_days: Option<u32>,
    /// PEM certificates trusted for the endpoint instead of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub ca_bundle: Option<String>,
    /// How long an event may wait for a 2xx answer before it is dead-lettered (default 24
    /// hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10080))]
    pub ttl_minutes: Option<u32>,
}

/// A header whose value lives in a Secret of the vault's namespace. The Secret must carry
/// the label `kvault.dev/event-auth: "true"`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthHeaderSpec {
    /// The header's name, e.g. `Authorization`.
    #[schemars(
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"),
        length(min = 1, max = 64)
    )]
    pub name: String,
    /// The Secret key holding the header's value (the whole value, e.g. `Bearer …`).
    pub secret_key_ref: SecretKeyRef,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(min = 1, max = 253)
    )]
    pub name: String,
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub key: String,
}

fn event_types(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    super::schema::object(json!({
        "description": "Event types delivered (default: all of them).",
        "type": "array",
        "maxItems": EventType::ALL.len(),
        "items": {"type": "string", "enum": names}
    }))
}
