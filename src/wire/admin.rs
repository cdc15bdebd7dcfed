//! The kvault-only documents of the `/_kvault/` endpoints, shared by the server that answers
//! them and the client (and so the operator and CLI) that reads them.

use crate::clock::UnixTime;
use crate::policy::PolicyDocument;
use crate::wire::events::DeadLetter;
use serde::{Deserialize, Serialize};

/// `GET`/`PUT /_kvault/policy`: the generation the vault applies and its document (header
/// values of event subscriptions redacted).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    pub applied_generation: u64,
    /// `Applied` or `Unchanged` for a push; absent for a read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    pub policy: PolicyDocument,
}

/// `GET /_kvault/events/expiry`: the live objects whose current version is expired or near
/// expiry (vault-wide threshold), the soonest expiry first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryReport {
    pub near_expiry_days: u32,
    /// How many there are in all (`value` holds at most the server's reporting cap).
    pub count: usize,
    pub value: Vec<ExpiringObject>,
}

/// One object version that is expired or near expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiringObject {
    /// The event type it stands for, e.g. `Microsoft.KeyVault.SecretNearExpiry`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub object_type: String,
    pub object_name: String,
    pub version: String,
    pub exp: UnixTime,
}

/// `GET /_kvault/events/dead-letters`: events given up, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetters {
    /// How many are kept in all (`value` holds at most the `top` asked for).
    pub count: usize,
    pub value: Vec<ListedDeadLetter>,
}

/// One dead letter and its record id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedDeadLetter {
    pub id: String,
    #[serde(flatten)]
    pub letter: DeadLetter,
}
