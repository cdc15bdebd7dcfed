//! The API's operations: what a request means, once it is routed.
//!
//! Everything the pipeline knows about an operation — its route (method + path pattern), the
//! access it needs, its throttle category, its body limit and its audit name — is one row of
//! [`OPERATIONS`] (`table.rs`); the router (`router.rs`) is built from that table. The
//! operation itself is typed per family, so each family's handler matches its own enum
//! exhaustively and a request can never reach the wrong family.

mod router;
mod table;

use crate::crypto::keys::JwkOperation;

pub use router::{RouteError, Routed, route};
pub use table::{Access, BodyLimit, OPERATIONS, OperationSpec, Scope};

/// A routed operation with the arguments its path carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Secrets(SecretsOp),
    Keys(KeysOp),
    Certificates(CertificatesOp),
    /// kvault's own `/_kvault/` control-plane endpoints.
    Admin(AdminOp),
}

/// `version` is `None` for the latest (an empty or absent version segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsOp {
    Set {
        name: String,
    },
    Get {
        name: String,
        version: Option<String>,
    },
    Update {
        name: String,
        version: Option<String>,
    },
    Delete {
        name: String,
    },
    List,
    ListVersions {
        name: String,
    },
    ListDeleted,
    GetDeleted {
        name: String,
    },
    Purge {
        name: String,
    },
    Recover {
        name: String,
    },
    Backup {
        name: String,
    },
    Restore,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysOp {
    Create {
        name: String,
    },
    Import {
        name: String,
    },
    Get {
        name: String,
        version: Option<String>,
    },
    Update {
        name: String,
        version: Option<String>,
    },
    Delete {
        name: String,
    },
    List,
    ListVersions {
        name: String,
    },
    ListDeleted,
    GetDeleted {
        name: String,
    },
    Purge {
        name: String,
    },
    Recover {
        name: String,
    },
    Backup {
        name: String,
    },
    Restore,
    Rotate {
        name: String,
    },
    GetRotationPolicy {
        name: String,
    },
    SetRotationPolicy {
        name: String,
    },
    /// A cryptographic operation on one key version (`None`: the latest).
    Crypto {
        name: String,
        version: Option<String>,
        op: KeyOp,
    },
    GetRandomBytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificatesOp {
    Create {
        name: String,
    },
    Import {
        name: String,
    },
    Get {
        name: String,
        version: Option<String>,
    },
    Update {
        name: String,
        version: Option<String>,
    },
    Delete {
        name: String,
    },
    List,
    ListVersions {
        name: String,
    },
    ListDeleted,
    GetDeleted {
        name: String,
    },
    Purge {
        name: String,
    },
    Recover {
        name: String,
    },
    Backup {
        name: String,
    },
    Restore,
    GetPolicy {
        name: String,
    },
    UpdatePolicy {
        name: String,
    },
    GetOperation {
        name: String,
    },
    UpdateOperation {
        name: String,
    },
    DeleteOperation {
        name: String,
    },
    Merge {
        name: String,
    },
    Contacts(ContactsOp),
    Issuers(IssuersOp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactsOp {
    Get,
    Set,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuersOp {
    List,
    Get { name: String },
    Set { name: String },
    Update { name: String },
    Delete { name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOp {
    GetPolicy,
    PutPolicy,
    GetEventDeadLetters,
    GetExpiringObjects,
}

/// The cryptographic operations addressed as `/keys/{name}/{version}/<op>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOp {
    Encrypt,
    Decrypt,
    WrapKey,
    UnwrapKey,
    Sign,
    Verify,
    Release,
}

impl KeyOp {
    /// The `key_ops` entry the operation needs (release has none).
    pub fn key_op(self) -> Option<JwkOperation> {
        Some(match self {
            KeyOp::Encrypt => JwkOperation::Encrypt,
            KeyOp::Decrypt => JwkOperation::Decrypt,
            KeyOp::WrapKey => JwkOperation::WrapKey,
            KeyOp::UnwrapKey => JwkOperation::UnwrapKey,
            KeyOp::Sign => JwkOperation::Sign,
            KeyOp::Verify => JwkOperation::Verify,
            KeyOp::Release => return None,
        })
    }
}

/// What a path's placeholders captured: `{name}` (percent-decoded, case kept) and
/// `{version}` (`None` when the segment is empty). Rows without them ignore them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    pub name: String,
    pub version: Option<String>,
}
