//! The records a vault keeps for each object: a head with every version's metadata, and
//! one value record per version.

use crate::clock::UnixTime;
use crate::wire::Tags;
use serde::{Deserialize, Serialize};

/// The three object families of the key-vault API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Secret,
    Key,
    Certificate,
}

impl Kind {
    pub fn tag(self) -> u8 {
        match self {
            Kind::Secret => b's',
            Kind::Key => b'k',
            Kind::Certificate => b'c',
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Key => "key",
            Kind::Certificate => "certificate",
        }
    }
    /// The URL collection: `secrets`, `keys`, `certificates`.
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Secret => "secrets",
            Kind::Key => "keys",
            Kind::Certificate => "certificates",
        }
    }
    /// The deleted-objects collection: `deletedsecrets` …
    pub fn deleted_collection(self) -> &'static str {
        match self {
            Kind::Secret => "deletedsecrets",
            Kind::Key => "deletedkeys",
            Kind::Certificate => "deletedcertificates",
        }
    }
}

/// An object: its name as first written, its versions in creation order (the last is the
/// current one), and its soft-deletion state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Head<M> {
    pub name: String,
    pub versions: Vec<Version<M>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Deleted>,
    /// Keys only: the rotation policy and what the scheduler has done under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationState>,
    /// Certificates only: the policy and the current (or last) issuance operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateState>,
}

/// A certificate's policy, its issuance operation, and the last version an
/// `EmailContacts` action fired for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CertificateState {
    pub policy: crate::wire::CertificatePolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified_version: Option<String>,
}

/// An issuance: completed at once for `Self` and kvault issuers, waiting for a merge for
/// `Unknown` (the private key then waits as a value record under the version id).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct PendingOperation {
    pub version: String,
    pub issuer: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
    #[serde(default)]
    pub cancellation_requested: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::wire::OperationError>,
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<crate::wire::Tags>,
    /// The create request's `preserveCertOrder`, applied when the merge brings the chain.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preserve_cert_order: bool,
}

/// A key's rotation policy as stored, and the last version a `Notify` action fired for
/// (so it fires once per version, across restarts).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RotationState {
    pub policy: crate::wire::KeyRotationPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified_version: Option<String>,
}

impl<M> Head<M> {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            versions: Vec::new(),
            deleted: None,
            rotation: None,
            certificate: None,
        }
    }

    pub fn current(&self) -> Option<&Version<M>> {
        self.versions.last()
    }

    /// A version by id (ids are compared case-insensitively, like names).
    pub fn version(&self, id: &str) -> Option<&Version<M>> {
        self.versions.iter().find(|v| v.id.eq_ignore_ascii_case(id))
    }

    pub fn version_mut(&mut self, id: &str) -> Option<&mut Version<M>> {
        self.versions
            .iter_mut()
            .find(|v| v.id.eq_ignore_ascii_case(id))
    }
}

/// Metadata of one version; `M` holds what only one object family has.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Version<M> {
    pub id: String,
    pub created: UnixTime,
    pub updated: UnixTime,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<UnixTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<UnixTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    pub meta: M,
}

impl<M> Version<M> {
    pub fn new(id: String, now: UnixTime, meta: M) -> Self {
        Self {
            id,
            created: now,
            updated: now,
            enabled: true,
            nbf: None,
            exp: None,
            tags: None,
            meta,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Deleted {
    pub deleted_date: UnixTime,
    pub scheduled_purge_date: UnixTime,
}
