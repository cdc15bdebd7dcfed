//! Event notifications on the wire: the CloudEvents the vault delivers, and the dead letters
//! `GET /_kvault/events/dead-letters` shows (server, client and operator share them).

use crate::clock::UnixTime;
use serde::{Deserialize, Serialize};

/// A CloudEvents 1.0 event in structured JSON mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    /// The vault URL.
    pub source: String,
    #[serde(rename = "type")]
    pub type_: String,
    /// The object's name (the vault's name for a policy change), as in the cloud.
    pub subject: String,
    /// RFC 3339, on the vault's clock.
    pub time: String,
    pub datacontenttype: String,
    pub data: EventData,
    /// Extension: the certificate contacts' e-mail addresses, on a certificate's
    /// near-expiry event raised by its `EmailContacts` lifetime action (the cloud e-mails
    /// them; a receiver can).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvaultcontacts: Option<String>,
}

/// The event's `data`, with the cloud's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventData {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "VaultName")]
    pub vault_name: String,
    #[serde(rename = "ObjectType")]
    pub object_type: String,
    #[serde(rename = "ObjectName")]
    pub object_name: String,
    #[serde(rename = "Version", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(rename = "NBF", default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<UnixTime>,
    #[serde(rename = "EXP", default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<UnixTime>,
}

/// Why an event was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeadLetterReason {
    /// No 2xx within the time to live.
    TimeToLiveExpired,
    /// The endpoint refused it for good (400 or 413).
    Rejected,
    /// The subscription left the policy before the event was delivered.
    SubscriptionRemoved,
}

impl DeadLetterReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::TimeToLiveExpired => "TimeToLiveExpired",
            DeadLetterReason::Rejected => "Rejected",
            DeadLetterReason::SubscriptionRemoved => "SubscriptionRemoved",
        }
    }
}

/// A dead-lettered event, as `GET /_kvault/events/dead-letters` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub subscription: String,
    pub reason: DeadLetterReason,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created: UnixTime,
    pub dead_lettered: UnixTime,
    pub event: CloudEvent,
}
