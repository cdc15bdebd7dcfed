//! The API's operations and the pure routing from method + path to an operation.
//!
//! Authorization, audit and metrics all speak in these operations, so the mapping from
//! URL shapes to meaning lives in exactly one place.

use axum::http::Method;
use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    SetSecret {
        name: String,
    },
    /// `version` is `None` for the latest (empty version segment).
    GetSecret {
        name: String,
        version: Option<String>,
    },
    UpdateSecret {
        name: String,
        version: Option<String>,
    },
    DeleteSecret {
        name: String,
    },
    ListSecrets,
    ListSecretVersions {
        name: String,
    },
    ListDeletedSecrets,
    GetDeletedSecret {
        name: String,
    },
    PurgeDeletedSecret {
        name: String,
    },
    RecoverDeletedSecret {
        name: String,
    },
    BackupSecret {
        name: String,
    },
    RestoreSecret,
    CreateKey {
        name: String,
    },
    ImportKey {
        name: String,
    },
    GetKey {
        name: String,
        version: Option<String>,
    },
    UpdateKey {
        name: String,
        version: Option<String>,
    },
    DeleteKey {
        name: String,
    },
    ListKeys,
    ListKeyVersions {
        name: String,
    },
    ListDeletedKeys,
    GetDeletedKey {
        name: String,
    },
    PurgeDeletedKey {
        name: String,
    },
    RecoverDeletedKey {
        name: String,
    },
    BackupKey {
        name: String,
    },
    RestoreKey,
    RotateKey {
        name: String,
    },
    GetRotationPolicy {
        name: String,
    },
    SetRotationPolicy {
        name: String,
    },
    /// A cryptographic operation on one key version (`None`: the latest).
    KeyOperation {
        name: String,
        version: Option<String>,
        op: KeyOp,
    },
    GetRandomBytes,
    CreateCertificate {
        name: String,
    },
    ImportCertificate {
        name: String,
    },
    GetCertificate {
        name: String,
        version: Option<String>,
    },
    UpdateCertificate {
        name: String,
        version: Option<String>,
    },
    DeleteCertificate {
        name: String,
    },
    ListCertificates,
    ListCertificateVersions {
        name: String,
    },
    ListDeletedCertificates,
    GetDeletedCertificate {
        name: String,
    },
    PurgeDeletedCertificate {
        name: String,
    },
    RecoverDeletedCertificate {
        name: String,
    },
    BackupCertificate {
        name: String,
    },
    RestoreCertificate,
    GetCertificatePolicy {
        name: String,
    },
    UpdateCertificatePolicy {
        name: String,
    },
    GetCertificateOperation {
        name: String,
    },
    UpdateCertificateOperation {
        name: String,
    },
    DeleteCertificateOperation {
        name: String,
    },
    MergeCertificate {
        name: String,
    },
    GetContacts,
    SetContacts,
    DeleteContacts,
    ListIssuers,
    GetIssuer {
        name: String,
    },
    SetIssuer {
        name: String,
    },
    UpdateIssuer {
        name: String,
    },
    DeleteIssuer {
        name: String,
    },
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
    fn parse(segment: &str) -> Option<KeyOp> {
        Some(match segment {
            "encrypt" => KeyOp::Encrypt,
            "decrypt" => KeyOp::Decrypt,
            "wrapkey" => KeyOp::WrapKey,
            "unwrapkey" => KeyOp::UnwrapKey,
            "sign" => KeyOp::Sign,
            "verify" => KeyOp::Verify,
            "release" => KeyOp::Release,
            _ => return None,
        })
    }

    /// The `key_ops` entry the operation needs (release has none).
    pub fn key_op(self) -> Option<&'static str> {
        Some(match self {
            KeyOp::Encrypt => "encrypt",
            KeyOp::Decrypt => "decrypt",
            KeyOp::WrapKey => "wrapKey",
            KeyOp::UnwrapKey => "unwrapKey",
            KeyOp::Sign => "sign",
            KeyOp::Verify => "verify",
            KeyOp::Release => return None,
        })
    }
}

impl Operation {
    /// The operation's name in logs and metrics (the API's operation ids).
    pub fn name(&self) -> &'static str {
        match self {
            Operation::SetSecret { .. } => "SetSecret",
            Operation::GetSecret { .. } => "GetSecret",
            Operation::UpdateSecret { .. } => "UpdateSecret",
            Operation::DeleteSecret { .. } => "DeleteSecret",
            Operation::ListSecrets => "GetSecrets",
            Operation::ListSecretVersions { .. } => "GetSecretVersions",
            Operation::ListDeletedSecrets => "GetDeletedSecrets",
            Operation::GetDeletedSecret { .. } => "GetDeletedSecret",
            Operation::PurgeDeletedSecret { .. } => "PurgeDeletedSecret",
            Operation::RecoverDeletedSecret { .. } => "RecoverDeletedSecret",
            Operation::BackupSecret { .. } => "BackupSecret",
            Operation::RestoreSecret => "RestoreSecret",
            Operation::CreateKey { .. } => "CreateKey",
            Operation::ImportKey { .. } => "ImportKey",
            Operation::GetKey { .. } => "GetKey",
            Operation::UpdateKey { .. } => "UpdateKey",
            Operation::DeleteKey { .. } => "DeleteKey",
            Operation::ListKeys => "GetKeys",
            Operation::ListKeyVersions { .. } => "GetKeyVersions",
            Operation::ListDeletedKeys => "GetDeletedKeys",
            Operation::GetDeletedKey { .. } => "GetDeletedKey",
            Operation::PurgeDeletedKey { .. } => "PurgeDeletedKey",
            Operation::RecoverDeletedKey { .. } => "RecoverDeletedKey",
            Operation::BackupKey { .. } => "BackupKey",
            Operation::RestoreKey => "RestoreKey",
            Operation::RotateKey { .. } => "RotateKey",
            Operation::GetRotationPolicy { .. } => "GetKeyRotationPolicy",
            Operation::SetRotationPolicy { .. } => "UpdateKeyRotationPolicy",
            Operation::KeyOperation { op, .. } => match op {
                KeyOp::Encrypt => "Encrypt",
                KeyOp::Decrypt => "Decrypt",
                KeyOp::WrapKey => "WrapKey",
                KeyOp::UnwrapKey => "UnwrapKey",
                KeyOp::Sign => "Sign",
                KeyOp::Verify => "Verify",
                KeyOp::Release => "Release",
            },
            Operation::GetRandomBytes => "GetRandomBytes",
            Operation::CreateCertificate { .. } => "CreateCertificate",
            Operation::ImportCertificate { .. } => "ImportCertificate",
            Operation::GetCertificate { .. } => "GetCertificate",
            Operation::UpdateCertificate { .. } => "UpdateCertificate",
            Operation::DeleteCertificate { .. } => "DeleteCertificate",
            Operation::ListCertificates => "GetCertificates",
            Operation::ListCertificateVersions { .. } => "GetCertificateVersions",
            Operation::ListDeletedCertificates => "GetDeletedCertificates",
            Operation::GetDeletedCertificate { .. } => "GetDeletedCertificate",
            Operation::PurgeDeletedCertificate { .. } => "PurgeDeletedCertificate",
            Operation::RecoverDeletedCertificate { .. } => "RecoverDeletedCertificate",
            Operation::BackupCertificate { .. } => "BackupCertificate",
            Operation::RestoreCertificate => "RestoreCertificate",
            Operation::GetCertificatePolicy { .. } => "GetCertificatePolicy",
            Operation::UpdateCertificatePolicy { .. } => "UpdateCertificatePolicy",
            Operation::GetCertificateOperation { .. } => "GetCertificateOperation",
            Operation::UpdateCertificateOperation { .. } => "UpdateCertificateOperation",
            Operation::DeleteCertificateOperation { .. } => "DeleteCertificateOperation",
            Operation::MergeCertificate { .. } => "MergeCertificate",
            Operation::GetContacts => "GetCertificateContacts",
            Operation::SetContacts => "SetCertificateContacts",
            Operation::DeleteContacts => "DeleteCertificateContacts",
            Operation::ListIssuers => "GetCertificateIssuers",
            Operation::GetIssuer { .. } => "GetCertificateIssuer",
            Operation::SetIssuer { .. } => "SetCertificateIssuer",
            Operation::UpdateIssuer { .. } => "UpdateCertificateIssuer",
            Operation::DeleteIssuer { .. } => "DeleteCertificateIssuer",
        }
    }

    /// The object the operation touches, if any (`/secrets/<name>`).
    pub fn object(&self) -> Option<(&'static str, &str)> {
        match self {
            Operation::SetSecret { name }
            | Operation::GetSecret { name, .. }
            | Operation::UpdateSecret { name, .. }
            | Operation::DeleteSecret { name }
            | Operation::ListSecretVersions { name }
            | Operation::GetDeletedSecret { name }
            | Operation::PurgeDeletedSecret { name }
            | Operation::RecoverDeletedSecret { name }
            | Operation::BackupSecret { name } => Some(("secrets", name)),
            Operation::CreateKey { name }
            | Operation::ImportKey { name }
            | Operation::GetKey { name, .. }
            | Operation::UpdateKey { name, .. }
            | Operation::DeleteKey { name }
            | Operation::ListKeyVersions { name }
            | Operation::GetDeletedKey { name }
            | Operation::PurgeDeletedKey { name }
            | Operation::RecoverDeletedKey { name }
            | Operation::BackupKey { name }
            | Operation::RotateKey { name }
            | Operation::GetRotationPolicy { name }
            | Operation::SetRotationPolicy { name }
            | Operation::KeyOperation { name, .. } => Some(("keys", name)),
            Operation::CreateCertificate { name }
            | Operation::ImportCertificate { name }
            | Operation::GetCertificate { name, .. }
            | Operation::UpdateCertificate { name, .. }
            | Operation::DeleteCertificate { name }
            | Operation::ListCertificateVersions { name }
            | Operation::GetDeletedCertificate { name }
            | Operation::PurgeDeletedCertificate { name }
            | Operation::RecoverDeletedCertificate { name }
            | Operation::BackupCertificate { name }
            | Operation::GetCertificatePolicy { name }
            | Operation::UpdateCertificatePolicy { name }
            | Operation::GetCertificateOperation { name }
            | Operation::UpdateCertificateOperation { name }
            | Operation::DeleteCertificateOperation { name }
            | Operation::MergeCertificate { name } => Some(("certificates", name)),
            Operation::ListSecrets
            | Operation::ListDeletedSecrets
            | Operation::RestoreSecret
            | Operation::ListKeys
            | Operation::ListDeletedKeys
            | Operation::RestoreKey
            | Operation::GetRandomBytes
            | Operation::ListCertificates
            | Operation::ListDeletedCertificates
            | Operation::RestoreCertificate
            | Operation::GetContacts
            | Operation::SetContacts
            | Operation::DeleteContacts
            | Operation::ListIssuers
            | Operation::GetIssuer { .. }
            | Operation::SetIssuer { .. }
            | Operation::UpdateIssuer { .. }
            | Operation::DeleteIssuer { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed,
}

fn version(seg: &str) -> Option<String> {
    (!seg.is_empty()).then(|| seg.to_string())
}

/// Maps a request to its operation. Collection names match case-insensitively, path
/// segments are percent-decoded, and an empty last segment addresses the latest version.
pub fn route(method: &Method, path: &str) -> Result<Operation, RouteError> {
    let raw: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let segs: Vec<String> = raw
        .iter()
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let name = |i: usize| segs[i].clone();
    let m = method.clone();
    use Operation as O;
    let op = match l.as_slice() {
        ["secrets"] | ["secrets", ""] => match m {
            Method::GET => O::ListSecrets,
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["secrets", "restore"] if m == Method::POST => O::RestoreSecret,
        ["secrets", _] => match m {
            Method::PUT => O::SetSecret { name: name(1) },
            Method::DELETE => O::DeleteSecret { name: name(1) },
            Method::GET => O::GetSecret {
                name: name(1),
                version: None,
            },
            Method::PATCH => O::UpdateSecret {
                name: name(1),
                version: None,
            },
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["secrets", _, "versions"] if m == Method::GET => O::ListSecretVersions { name: name(1) },
        ["secrets", _, "backup"] if m == Method::POST => O::BackupSecret { name: name(1) },
        ["secrets", _, v] => match m {
            Method::GET => O::GetSecret {
                name: name(1),
                version: version(v),
            },
            Method::PATCH => O::UpdateSecret {
                name: name(1),
                version: version(v),
            },
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["deletedsecrets"] | ["deletedsecrets", ""] => match m {
            Method::GET => O::ListDeletedSecrets,
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["deletedsecrets", _] => match m {
            Method::GET => O::GetDeletedSecret { name: name(1) },
            Method::DELETE => O::PurgeDeletedSecret { name: name(1) },
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["deletedsecrets", _, "recover"] if m == Method::POST => {
            O::RecoverDeletedSecret { name: name(1) }
        }
        ["keys"] | ["keys", ""] => match m {
            Method::GET => O::ListKeys,
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["keys", "restore"] if m == Method::POST => O::RestoreKey,
        ["keys", _] => match m {
            Method::PUT => O::ImportKey { name: name(1) },
            Method::DELETE => O::DeleteKey { name: name(1) },
            Method::GET => O::GetKey {
                name: name(1),
                version: None,
            },
            Method::PATCH => O::UpdateKey {
                name: name(1),
                version: None,
            },
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["keys", _, "versions"] if m == Method::GET => O::ListKeyVersions { name: name(1) },
        ["keys", _, "rotationpolicy"] => match m {
            Method::GET => O::GetRotationPolicy { name: name(1) },
            Method::PUT => O::SetRotationPolicy { name: name(1) },
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["keys", _, third] if m == Method::POST => match *third {
            "create" => O::CreateKey { name: name(1) },
            "backup" => O::BackupKey { name: name(1) },
            "rotate" => O::RotateKey { name: name(1) },
            other => match KeyOp::parse(other) {
                Some(op) => O::KeyOperation {
                    name: name(1),
                    version: None,
                    op,
                },
                None => return Err(RouteError::MethodNotAllowed),
            },
        },
        ["keys", _, v] => match m {
            Method::GET => O::GetKey {
                name: name(1),
                version: version(v),
            },
            Method::PATCH => O::UpdateKey {
                name: name(1),
                version: version(v),
            },
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["keys", _, v, op] => match KeyOp::parse(op) {
            Some(op) if m == Method::POST => O::KeyOperation {
                name: name(1),
                version: version(v),
                op,
            },
            Some(_) => return Err(RouteError::MethodNotAllowed),
            None => return Err(RouteError::NotFound),
        },
        ["deletedkeys"] | ["deletedkeys", ""] => match m {
            Method::GET => O::ListDeletedKeys,
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["deletedkeys", _] => match m {
            Method::GET => O::GetDeletedKey { name: name(1) },
            Method::DELETE => O::PurgeDeletedKey { name: name(1) },
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["deletedkeys", _, "recover"] if m == Method::POST => {
            O::RecoverDeletedKey { name: name(1) }
        }
        ["rng"] if m == Method::POST => O::GetRandomBytes,
        ["certificates"] | ["certificates", ""] => match m {
            Method::GET => O::ListCertificates,
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["certificates", "contacts"] => match m {
            Method::GET => O::GetContacts,
            Method::PUT => O::SetContacts,
            Method::DELETE => O::DeleteContacts,
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["certificates", "issuers"] | ["certificates", "issuers", ""] => match m {
            Method::GET => O::ListIssuers,
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["certificates", "issuers", _] => match m {
            Method::GET => O::GetIssuer { name: name(2) },
            Method::PUT => O::SetIssuer { name: name(2) },
            Method::PATCH => O::UpdateIssuer { name: name(2) },
            Method::DELETE => O::DeleteIssuer { name: name(2) },
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["certificates", "restore"] if m == Method::POST => O::RestoreCertificate,
        ["certificates", _] => match m {
            Method::GET => O::GetCertificate {
                name: name(1),
                version: None,
            },
            Method::PATCH => O::UpdateCertificate {
                name: name(1),
                version: None,
            },
            Method::DELETE => O::DeleteCertificate { name: name(1) },
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["certificates", _, "create"] if m == Method::POST => {
            O::CreateCertificate { name: name(1) }
        }
        ["certificates", _, "import"] if m == Method::POST => {
            O::ImportCertificate { name: name(1) }
        }
        ["certificates", _, "backup"] if m == Method::POST => {
            O::BackupCertificate { name: name(1) }
        }
        ["certificates", _, "versions"] if m == Method::GET => {
            O::ListCertificateVersions { name: name(1) }
        }
        ["certificates", _, "policy"] => match m {
            Method::GET => O::GetCertificatePolicy { name: name(1) },
            Method::PATCH => O::UpdateCertificatePolicy { name: name(1) },
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["certificates", _, "pending"] => match m {
            Method::GET => O::GetCertificateOperation { name: name(1) },
            Method::PATCH => O::UpdateCertificateOperation { name: name(1) },
            Method::DELETE => O::DeleteCertificateOperation { name: name(1) },
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["certificates", _, "pending", "merge"] if m == Method::POST => {
            O::MergeCertificate { name: name(1) }
        }
        ["certificates", _, v] => match m {
            Method::GET => O::GetCertificate {
                name: name(1),
                version: version(v),
            },
            Method::PATCH => O::UpdateCertificate {
                name: name(1),
                version: version(v),
            },
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["deletedcertificates"] | ["deletedcertificates", ""] => match m {
            Method::GET => O::ListDeletedCertificates,
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["deletedcertificates", _] => match m {
            Method::GET => O::GetDeletedCertificate { name: name(1) },
            Method::DELETE => O::PurgeDeletedCertificate { name: name(1) },
            _ => return Err(RouteError::MethodNotAllowed),
        },
        ["deletedcertificates", _, "recover"] if m == Method::POST => {
            O::RecoverDeletedCertificate { name: name(1) }
        }
        _ => return Err(RouteError::NotFound),
    };
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation as O;

    fn r(m: Method, p: &str) -> Result<Operation, RouteError> {
        route(&m, p)
    }

    #[test]
    fn secret_routes() {
        assert_eq!(
            r(Method::PUT, "/secrets/a"),
            Ok(O::SetSecret { name: "a".into() })
        );
        assert_eq!(
            r(Method::GET, "/secrets/a/"),
            Ok(O::GetSecret {
                name: "a".into(),
                version: None
            })
        );
        assert_eq!(
            r(Method::GET, "/Secrets/A/0123"),
            Ok(O::GetSecret {
                name: "A".into(),
                version: Some("0123".into())
            })
        );
        assert_eq!(
            r(Method::PATCH, "/secrets/a/"),
            Ok(O::UpdateSecret {
                name: "a".into(),
                version: None
            })
        );
        assert_eq!(r(Method::GET, "/secrets"), Ok(O::ListSecrets));
        assert_eq!(r(Method::GET, "/secrets/"), Ok(O::ListSecrets));
        assert_eq!(
            r(Method::GET, "/secrets/a/versions"),
            Ok(O::ListSecretVersions { name: "a".into() })
        );
        assert_eq!(r(Method::POST, "/secrets/restore"), Ok(O::RestoreSecret));
        // A secret may be called "restore": only POST means the restore operation.
        assert_eq!(
            r(Method::PUT, "/secrets/restore"),
            Ok(O::SetSecret {
                name: "restore".into()
            })
        );
        assert_eq!(
            r(Method::POST, "/secrets/a/backup"),
            Ok(O::BackupSecret { name: "a".into() })
        );
        assert_eq!(
            r(Method::DELETE, "/secrets/a"),
            Ok(O::DeleteSecret { name: "a".into() })
        );
        assert_eq!(r(Method::GET, "/deletedsecrets"), Ok(O::ListDeletedSecrets));
        assert_eq!(
            r(Method::DELETE, "/deletedsecrets/a"),
            Ok(O::PurgeDeletedSecret { name: "a".into() })
        );
        assert_eq!(
            r(Method::POST, "/deletedsecrets/a/recover"),
            Ok(O::RecoverDeletedSecret { name: "a".into() })
        );
        assert_eq!(
            r(Method::GET, "/secrets/bad%20name"),
            Ok(O::GetSecret {
                name: "bad name".into(),
                version: None
            })
        );
    }

    #[test]
    fn key_routes() {
        assert_eq!(
            r(Method::POST, "/keys/k/create"),
            Ok(O::CreateKey { name: "k".into() })
        );
        assert_eq!(
            r(Method::PUT, "/keys/k"),
            Ok(O::ImportKey { name: "k".into() })
        );
        assert_eq!(
            r(Method::GET, "/keys/k/"),
            Ok(O::GetKey {
                name: "k".into(),
                version: None
            })
        );
        assert_eq!(
            r(Method::POST, "/keys/k/abc/sign"),
            Ok(O::KeyOperation {
                name: "k".into(),
                version: Some("abc".into()),
                op: KeyOp::Sign
            })
        );
        // An unversioned key id gives an empty version segment.
        assert_eq!(
            r(Method::POST, "/keys/k//wrapkey"),
            Ok(O::KeyOperation {
                name: "k".into(),
                version: None,
                op: KeyOp::WrapKey
            })
        );
        assert_eq!(
            r(Method::POST, "/keys/k/encrypt"),
            Ok(O::KeyOperation {
                name: "k".into(),
                version: None,
                op: KeyOp::Encrypt
            })
        );
        assert_eq!(
            r(Method::POST, "/keys/k/rotate"),
            Ok(O::RotateKey { name: "k".into() })
        );
        assert_eq!(
            r(Method::PUT, "/keys/k/rotationpolicy"),
            Ok(O::SetRotationPolicy { name: "k".into() })
        );
        assert_eq!(r(Method::POST, "/keys/restore"), Ok(O::RestoreKey));
        assert_eq!(r(Method::POST, "/rng"), Ok(O::GetRandomBytes));
        assert_eq!(
            r(Method::DELETE, "/deletedkeys/k"),
            Ok(O::PurgeDeletedKey { name: "k".into() })
        );
        assert_eq!(
            r(Method::POST, "/keys/k/v/nothing"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            r(Method::GET, "/keys/k/v/sign"),
            Err(RouteError::MethodNotAllowed)
        );
    }

    #[test]
    fn certificate_routes() {
        let n = || "c".to_string();
        assert_eq!(
            r(Method::POST, "/certificates/c/create"),
            Ok(O::CreateCertificate { name: n() })
        );
        assert_eq!(
            r(Method::GET, "/certificates/c/"),
            Ok(O::GetCertificate {
                name: n(),
                version: None
            })
        );
        assert_eq!(
            r(Method::GET, "/certificates/c/pending"),
            Ok(O::GetCertificateOperation { name: n() })
        );
        assert_eq!(
            r(Method::POST, "/certificates/c/pending/merge"),
            Ok(O::MergeCertificate { name: n() })
        );
        assert_eq!(
            r(Method::PATCH, "/certificates/c/policy"),
            Ok(O::UpdateCertificatePolicy { name: n() })
        );
        assert_eq!(r(Method::PUT, "/certificates/contacts"), Ok(O::SetContacts));
        assert_eq!(r(Method::GET, "/certificates/issuers"), Ok(O::ListIssuers));
        assert_eq!(
            r(Method::PUT, "/certificates/issuers/ca"),
            Ok(O::SetIssuer { name: "ca".into() })
        );
        assert_eq!(
            r(Method::POST, "/certificates/restore"),
            Ok(O::RestoreCertificate)
        );
        assert_eq!(
            r(Method::DELETE, "/deletedcertificates/c"),
            Ok(O::PurgeDeletedCertificate { name: n() })
        );
    }

    #[test]
    fn unknown_paths_and_methods() {
        assert_eq!(r(Method::GET, "/nothing"), Err(RouteError::NotFound));
        assert_eq!(r(Method::GET, "/secrets/a/b/c"), Err(RouteError::NotFound));
        assert_eq!(
            r(Method::POST, "/secrets"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            r(Method::PUT, "/secrets/a/v1"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            r(Method::POST, "/deletedsecrets/a"),
            Err(RouteError::MethodNotAllowed)
        );
    }
}
