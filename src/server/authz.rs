//! Authorization: one decision per request, `authorize(policy, principal, operation)`,
//! a pure lookup on the current policy snapshot.

use crate::policy::{
    CertificatePermission, CompiledPolicy, DataAction, KeyPermission, ObjectKind, Permission,
    Principal, Requirement, SecretPermission,
};
use crate::server::error::{ApiError, ApiResult};
use crate::server::ops::{KeyOp, Operation};

/// What an operation needs. Metadata operations (list, get properties, deleted objects)
/// and value-reading operations are distinct, as in the cloud.
pub fn requirement(op: &Operation) -> Requirement<'_> {
    use CertificatePermission as C;
    use DataAction as A;
    use KeyPermission as K;
    use Operation as O;
    use SecretPermission as S;
    let (permission, action) = match op {
        O::SetSecret { .. } => (Permission::Secret(S::Set), A::SecretsSetSecret),
        O::GetSecret { .. } => (Permission::Secret(S::Get), A::SecretsGetSecret),
        O::UpdateSecret { .. } => (Permission::Secret(S::Set), A::SecretsUpdate),
        O::DeleteSecret { .. } => (Permission::Secret(S::Delete), A::SecretsDelete),
        O::ListSecrets
        | O::ListSecretVersions { .. }
        | O::ListDeletedSecrets
        | O::GetDeletedSecret { .. } => (Permission::Secret(S::List), A::SecretsReadMetadata),
        O::PurgeDeletedSecret { .. } => (Permission::Secret(S::Purge), A::SecretsPurge),
        O::RecoverDeletedSecret { .. } => (Permission::Secret(S::Recover), A::SecretsRecover),
        O::BackupSecret { .. } => (Permission::Secret(S::Backup), A::SecretsBackup),
        O::RestoreSecret => (Permission::Secret(S::Restore), A::SecretsRestore),
        O::CreateKey { .. } => (Permission::Key(K::Create), A::KeysCreate),
        O::ImportKey { .. } => (Permission::Key(K::Import), A::KeysImport),
        O::GetKey { .. } | O::GetDeletedKey { .. } => (Permission::Key(K::Get), A::KeysRead),
        O::ListKeys | O::ListKeyVersions { .. } | O::ListDeletedKeys => {
            (Permission::Key(K::List), A::KeysRead)
        }
        O::UpdateKey { .. } => (Permission::Key(K::Update), A::KeysUpdate),
        O::DeleteKey { .. } => (Permission::Key(K::Delete), A::KeysDelete),
        O::PurgeDeletedKey { .. } => (Permission::Key(K::Purge), A::KeysPurge),
        O::RecoverDeletedKey { .. } => (Permission::Key(K::Recover), A::KeysRecover),
        O::BackupKey { .. } => (Permission::Key(K::Backup), A::KeysBackup),
        O::RestoreKey => (Permission::Key(K::Restore), A::KeysRestore),
        O::RotateKey { .. } => (Permission::Key(K::Rotate), A::KeysRotate),
        O::GetRotationPolicy { .. } => (
            Permission::Key(K::GetRotationPolicy),
            A::KeyRotationPoliciesRead,
        ),
        O::SetRotationPolicy { .. } => (
            Permission::Key(K::SetRotationPolicy),
            A::KeyRotationPoliciesWrite,
        ),
        O::KeyOperation { op, .. } => match op {
            KeyOp::Encrypt => (Permission::Key(K::Encrypt), A::KeysEncrypt),
            KeyOp::Decrypt => (Permission::Key(K::Decrypt), A::KeysDecrypt),
            KeyOp::WrapKey => (Permission::Key(K::WrapKey), A::KeysWrap),
            KeyOp::UnwrapKey => (Permission::Key(K::UnwrapKey), A::KeysUnwrap),
            KeyOp::Sign => (Permission::Key(K::Sign), A::KeysSign),
            KeyOp::Verify => (Permission::Key(K::Verify), A::KeysVerify),
            KeyOp::Release => (Permission::Key(K::Release), A::KeysRelease),
        },
        // The cloud has no vault permission for random bytes; kvault asks for `get` on
        // keys (or its own data action) so an unprivileged caller cannot drain entropy.
        O::GetRandomBytes => (Permission::Key(K::Get), A::Rng),
        O::CreateCertificate { .. } | O::MergeCertificate { .. } => {
            (Permission::Certificate(C::Create), A::CertificatesCreate)
        }
        O::ImportCertificate { .. } => (Permission::Certificate(C::Import), A::CertificatesImport),
        O::GetCertificate { .. }
        | O::GetDeletedCertificate { .. }
        | O::GetCertificatePolicy { .. }
        | O::GetCertificateOperation { .. } => {
            (Permission::Certificate(C::Get), A::CertificatesRead)
        }
        O::ListCertificates | O::ListCertificateVersions { .. } | O::ListDeletedCertificates => {
            (Permission::Certificate(C::List), A::CertificatesRead)
        }
        O::UpdateCertificate { .. }
        | O::UpdateCertificatePolicy { .. }
        | O::UpdateCertificateOperation { .. } => {
            (Permission::Certificate(C::Update), A::CertificatesUpdate)
        }
        O::DeleteCertificate { .. } | O::DeleteCertificateOperation { .. } => {
            (Permission::Certificate(C::Delete), A::CertificatesDelete)
        }
        O::PurgeDeletedCertificate { .. } => {
            (Permission::Certificate(C::Purge), A::CertificatesPurge)
        }
        O::RecoverDeletedCertificate { .. } => {
            (Permission::Certificate(C::Recover), A::CertificatesRecover)
        }
        O::BackupCertificate { .. } => (Permission::Certificate(C::Backup), A::CertificatesBackup),
        O::RestoreCertificate => (Permission::Certificate(C::Restore), A::CertificatesRestore),
        O::GetContacts => (
            Permission::Certificate(C::ManageContacts),
            A::CertificateContactsRead,
        ),
        O::SetContacts | O::DeleteContacts => (
            Permission::Certificate(C::ManageContacts),
            A::CertificateContactsWrite,
        ),
        O::ListIssuers => (
            Permission::Certificate(C::ListIssuers),
            A::CertificateCasRead,
        ),
        O::GetIssuer { .. } => (
            Permission::Certificate(C::GetIssuers),
            A::CertificateCasRead,
        ),
        O::SetIssuer { .. } | O::UpdateIssuer { .. } => (
            Permission::Certificate(C::SetIssuers),
            A::CertificateCasWrite,
        ),
        O::DeleteIssuer { .. } => (
            Permission::Certificate(C::DeleteIssuers),
            A::CertificateCasDelete,
        ),
    };
    // `manageissuers` covers every issuer operation.
    let alternative = matches!(
        op,
        O::ListIssuers
            | O::GetIssuer { .. }
            | O::SetIssuer { .. }
            | O::UpdateIssuer { .. }
            | O::DeleteIssuer { .. }
    )
    .then_some(Permission::Certificate(C::ManageIssuers));
    let object = op.object().map(|(collection, name)| {
        let kind = match collection {
            "keys" => ObjectKind::Keys,
            "certificates" => ObjectKind::Certificates,
            _ => ObjectKind::Secrets,
        };
        (kind, name)
    });
    Requirement {
        permission,
        alternative,
        action,
        object,
    }
}

/// Allows or refuses `op` for `who`; the refusal names the caller, what was missing and
/// the vault, never whether the object exists.
pub fn authorize(
    policy: &CompiledPolicy,
    who: &Principal,
    op: &Operation,
    vault: &str,
) -> ApiResult<()> {
    let req = requirement(op);
    if policy.allows(who, &req) {
        return Ok(());
    }
    Err(match policy.mode {
        crate::policy::AuthorizationMode::AccessPolicy => ApiError::Forbidden {
            message: format!(
                "The user, group or application '{who}' does not have {} permission on key vault '{vault}'.",
                req.permission
            ),
            inner: Some("AccessDenied"),
        },
        crate::policy::AuthorizationMode::Rbac => ApiError::Forbidden {
            message: format!(
                "Caller is not authorized to perform action on resource. Caller: {who}; Action: '{}'; Vault: '{vault}'.",
                req.action
            ),
            inner: Some("ForbiddenByRbac"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{BuiltInRole, Identity, PolicyDocument, TrustedIssuer};
    use serde_json::json;

    /// The one issuer `alice` comes from.
    fn issuers() -> Vec<TrustedIssuer> {
        vec![TrustedIssuer::cluster("i")]
    }

    fn every_secret_operation() -> Vec<Operation> {
        let n = || "s1".to_string();
        vec![
            Operation::SetSecret { name: n() },
            Operation::GetSecret {
                name: n(),
                version: None,
            },
            Operation::UpdateSecret {
                name: n(),
                version: None,
            },
            Operation::DeleteSecret { name: n() },
            Operation::ListSecrets,
            Operation::ListSecretVersions { name: n() },
            Operation::ListDeletedSecrets,
            Operation::GetDeletedSecret { name: n() },
            Operation::PurgeDeletedSecret { name: n() },
            Operation::RecoverDeletedSecret { name: n() },
            Operation::BackupSecret { name: n() },
            Operation::RestoreSecret,
        ]
    }

    fn alice() -> Principal {
        Principal {
            identity: Identity::User("alice".into()),
            groups: vec![],
            application: None,
            issuer: "i".into(),
        }
    }

    /// The cloud's documented permission per secrets operation.
    fn expected_permission(op: &Operation) -> &'static str {
        match op {
            Operation::SetSecret { .. } | Operation::UpdateSecret { .. } => "set",
            Operation::GetSecret { .. } => "get",
            Operation::DeleteSecret { .. } => "delete",
            Operation::ListSecrets
            | Operation::ListSecretVersions { .. }
            | Operation::ListDeletedSecrets
            | Operation::GetDeletedSecret { .. } => "list",
            Operation::PurgeDeletedSecret { .. } => "purge",
            Operation::RecoverDeletedSecret { .. } => "recover",
            Operation::BackupSecret { .. } => "backup",
            Operation::RestoreSecret => "restore",
            _ => unreachable!("secrets operations only"),
        }
    }

    fn every_key_operation() -> Vec<(Operation, &'static str)> {
        let n = || "k1".to_string();
        let kop = |op| Operation::KeyOperation {
            name: n(),
            version: None,
            op,
        };
        vec![
            (Operation::CreateKey { name: n() }, "create"),
            (Operation::ImportKey { name: n() }, "import"),
            (
                Operation::GetKey {
                    name: n(),
                    version: None,
                },
                "get",
            ),
            (Operation::GetDeletedKey { name: n() }, "get"),
            (
                Operation::UpdateKey {
                    name: n(),
                    version: None,
                },
                "update",
            ),
            (Operation::DeleteKey { name: n() }, "delete"),
            (Operation::ListKeys, "list"),
            (Operation::ListKeyVersions { name: n() }, "list"),
            (Operation::ListDeletedKeys, "list"),
            (Operation::PurgeDeletedKey { name: n() }, "purge"),
            (Operation::RecoverDeletedKey { name: n() }, "recover"),
            (Operation::BackupKey { name: n() }, "backup"),
            (Operation::RestoreKey, "restore"),
            (Operation::RotateKey { name: n() }, "rotate"),
            (
                Operation::GetRotationPolicy { name: n() },
                "getrotationpolicy",
            ),
            (
                Operation::SetRotationPolicy { name: n() },
                "setrotationpolicy",
            ),
            (kop(KeyOp::Encrypt), "encrypt"),
            (kop(KeyOp::Decrypt), "decrypt"),
            (kop(KeyOp::WrapKey), "wrapKey"),
            (kop(KeyOp::UnwrapKey), "unwrapKey"),
            (kop(KeyOp::Sign), "sign"),
            (kop(KeyOp::Verify), "verify"),
            (kop(KeyOp::Release), "release"),
        ]
    }

    fn every_certificate_operation() -> Vec<(Operation, &'static str)> {
        let n = || "c1".to_string();
        vec![
            (Operation::CreateCertificate { name: n() }, "create"),
            (Operation::MergeCertificate { name: n() }, "create"),
            (Operation::ImportCertificate { name: n() }, "import"),
            (
                Operation::GetCertificate {
                    name: n(),
                    version: None,
                },
                "get",
            ),
            (Operation::GetDeletedCertificate { name: n() }, "get"),
            (Operation::GetCertificatePolicy { name: n() }, "get"),
            (Operation::GetCertificateOperation { name: n() }, "get"),
            (Operation::ListCertificates, "list"),
            (Operation::ListCertificateVersions { name: n() }, "list"),
            (Operation::ListDeletedCertificates, "list"),
            (
                Operation::UpdateCertificate {
                    name: n(),
                    version: None,
                },
                "update",
            ),
            (Operation::UpdateCertificatePolicy { name: n() }, "update"),
            (
                Operation::UpdateCertificateOperation { name: n() },
                "update",
            ),
            (Operation::DeleteCertificate { name: n() }, "delete"),
            (
                Operation::DeleteCertificateOperation { name: n() },
                "delete",
            ),
            (Operation::PurgeDeletedCertificate { name: n() }, "purge"),
            (
                Operation::RecoverDeletedCertificate { name: n() },
                "recover",
            ),
            (Operation::BackupCertificate { name: n() }, "backup"),
            (Operation::RestoreCertificate, "restore"),
            (Operation::GetContacts, "managecontacts"),
            (Operation::SetContacts, "managecontacts"),
            (Operation::DeleteContacts, "managecontacts"),
            (Operation::ListIssuers, "listissuers"),
            (Operation::GetIssuer { name: n() }, "getissuers"),
            (Operation::SetIssuer { name: n() }, "setissuers"),
            (Operation::UpdateIssuer { name: n() }, "setissuers"),
            (Operation::DeleteIssuer { name: n() }, "deleteissuers"),
        ]
    }

    #[test]
    fn every_certificate_permission_times_every_certificate_operation() {
        for perm in CertificatePermission::ALL {
            let policy: PolicyDocument = serde_json::from_value(json!({
                "generation": 1, "authorization": "AccessPolicy",
                "accessPolicies": [{"principal": {"kind": "User", "name": "alice"},
                    "permissions": {"certificates": [perm.as_str()], "keys": ["get", "create"], "secrets": ["get"]}}]
            }))
            .unwrap();
            let policy = policy.compile(&issuers()).unwrap();
            for (op, needed) in every_certificate_operation() {
                let allowed = authorize(&policy, &alice(), &op, "v").is_ok();
                let issuer_op = needed.ends_with("issuers");
                let expected =
                    needed == perm.as_str() || (issuer_op && perm.as_str() == "manageissuers");
                assert_eq!(allowed, expected, "certificates {perm} vs {op:?}");
            }
        }
    }

    #[test]
    fn every_role_times_every_certificate_operation() {
        for role in BuiltInRole::ALL {
            let policy: PolicyDocument = serde_json::from_value(json!({
                "generation": 1,
                "roleAssignments": [{"principal": {"kind": "User", "name": "alice"}, "role": role.name()}]
            }))
            .unwrap();
            let policy = policy.compile(&issuers()).unwrap();
            for (op, needed) in every_certificate_operation() {
                let allowed = authorize(&policy, &alice(), &op, "v").is_ok();
                let read = matches!(needed, "get" | "list");
                let expected = match role {
                    BuiltInRole::Administrator => true,
                    // certificates/*, certificatecas/*, certificatecontacts/write.
                    BuiltInRole::CertificatesOfficer => !matches!(op, Operation::GetContacts),
                    // */read covers certificates, issuers and contacts.
                    BuiltInRole::Reader => {
                        read || matches!(
                            op,
                            Operation::GetContacts
                                | Operation::ListIssuers
                                | Operation::GetIssuer { .. }
                        )
                    }
                    BuiltInRole::CertificateUser => read,
                    _ => false,
                };
                assert_eq!(allowed, expected, "{role} vs {op:?}");
            }
        }
    }

    #[test]
    fn every_key_permission_times_every_key_operation() {
        for perm in KeyPermission::ALL {
            let policy: PolicyDocument = serde_json::from_value(json!({
                "generation": 1, "authorization": "AccessPolicy",
                "accessPolicies": [{"principal": {"kind": "User", "name": "alice"},
                    "permissions": {"keys": [perm.as_str()], "secrets": ["get", "list", "set"]}}]
            }))
            .unwrap();
            let policy = policy.compile(&issuers()).unwrap();
            for (op, needed) in every_key_operation() {
                let allowed = authorize(&policy, &alice(), &op, "v").is_ok();
                assert_eq!(allowed, needed == perm.as_str(), "keys {perm} vs {op:?}");
            }
        }
    }

    #[test]
    fn every_role_times_every_key_operation() {
        for role in BuiltInRole::ALL {
            let policy: PolicyDocument = serde_json::from_value(json!({
                "generation": 1,
                "roleAssignments": [{"principal": {"kind": "User", "name": "alice"}, "role": role.name()}]
            }))
            .unwrap();
            let policy = policy.compile(&issuers()).unwrap();
            for (op, needed) in every_key_operation() {
                let allowed = authorize(&policy, &alice(), &op, "v").is_ok();
                let read = matches!(needed, "get" | "list");
                let expected = match role {
                    BuiltInRole::Administrator | BuiltInRole::CryptoOfficer => true,
                    BuiltInRole::Reader => read || needed == "getrotationpolicy",
                    BuiltInRole::CryptoUser => {
                        read || matches!(
                            needed,
                            "update"
                                | "backup"
                                | "encrypt"
                                | "decrypt"
                                | "wrapKey"
                                | "unwrapKey"
                                | "sign"
                                | "verify"
                        )
                    }
                    BuiltInRole::CryptoServiceEncryptionUser => {
                        read || matches!(needed, "wrapKey" | "unwrapKey")
                    }
                    BuiltInRole::CryptoServiceReleaseUser => needed == "release",
                    BuiltInRole::CertificateUser => read,
                    BuiltInRole::SecretsOfficer
                    | BuiltInRole::SecretsUser
                    | BuiltInRole::CertificatesOfficer => false,
                };
                assert_eq!(allowed, expected, "{role} vs {op:?}");
            }
        }
    }

    #[test]
    fn every_access_policy_permission_times_every_operation() {
        for perm in SecretPermission::ALL {
            let policy: PolicyDocument = serde_json::from_value(json!({
                "generation": 1, "authorization": "AccessPolicy",
                "accessPolicies": [{"principal": {"kind": "User", "name": "alice"},
                    "permissions": {"secrets": [perm.as_str()], "keys": ["get", "list", "sign"], "certificates": ["get", "list"]}}]
            }))
            .unwrap();
            let policy = policy.compile(&issuers()).unwrap();
            for op in every_secret_operation() {
                let allowed = authorize(&policy, &alice(), &op, "v").is_ok();
                assert_eq!(
                    allowed,
                    expected_permission(&op) == perm.as_str(),
                    "secrets {perm} vs {op:?}"
                );
            }
        }
    }

    #[test]
    fn every_role_times_every_operation() {
        use Operation as O;
        for role in BuiltInRole::ALL {
            let policy: PolicyDocument = serde_json::from_value(json!({
                "generation": 1,
                "roleAssignments": [{"principal": {"kind": "User", "name": "alice"}, "role": role.name()}]
            }))
            .unwrap();
            let policy = policy.compile(&issuers()).unwrap();
            for op in every_secret_operation() {
                let allowed = authorize(&policy, &alice(), &op, "v").is_ok();
                let metadata = matches!(
                    op,
                    O::ListSecrets
                        | O::ListSecretVersions { .. }
                        | O::ListDeletedSecrets
                        | O::GetDeletedSecret { .. }
                );
                let expected = match role {
                    BuiltInRole::Administrator | BuiltInRole::SecretsOfficer => true,
                    BuiltInRole::SecretsUser | BuiltInRole::CertificateUser => {
                        metadata || matches!(op, O::GetSecret { .. })
                    }
                    BuiltInRole::Reader => metadata,
                    BuiltInRole::CryptoOfficer
                    | BuiltInRole::CryptoUser
                    | BuiltInRole::CryptoServiceEncryptionUser
                    | BuiltInRole::CryptoServiceReleaseUser
                    | BuiltInRole::CertificatesOfficer => false,
                };
                assert_eq!(allowed, expected, "{role} vs {op:?}");
            }
        }
    }

    #[test]
    fn denials_name_caller_permission_and_vault_but_not_existence() {
        let p = PolicyDocument::empty().compile(&issuers()).unwrap();
        let e = authorize(
            &p,
            &alice(),
            &Operation::GetSecret {
                name: "s1".into(),
                version: None,
            },
            "payments",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("User alice"), "{msg}");
        assert!(msg.contains("secrets/getSecret/action"), "{msg}");
        assert!(msg.contains("payments"), "{msg}");
        assert!(
            !msg.contains("not found") && !msg.contains("exist"),
            "{msg}"
        );
        assert_eq!(e.code(), "Forbidden");
        let mut ap = PolicyDocument::empty();
        ap.authorization = crate::policy::AuthorizationMode::AccessPolicy;
        let e = authorize(
            &ap.compile(&issuers()).unwrap(),
            &alice(),
            &Operation::ListSecrets,
            "payments",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("does not have secrets list permission"),
            "{e}"
        );
    }
}
