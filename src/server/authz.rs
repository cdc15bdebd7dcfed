//! Authorization: one decision per request, `authorize(policy, principal, operation)`,
//! a pure lookup on the current policy snapshot.

use crate::policy::{
    CompiledPolicy, DataAction, ObjectKind, Permission, Principal, Requirement, SecretPermission,
};
use crate::server::error::{ApiError, ApiResult};
use crate::server::ops::Operation;

/// What an operation needs. Metadata operations (list, get properties, deleted objects)
/// and value-reading operations are distinct, as in the cloud.
pub fn requirement(op: &Operation) -> Requirement<'_> {
    use DataAction as A;
    use Operation as O;
    use SecretPermission as S;
    let (perm, action) = match op {
        O::SetSecret { .. } => (S::Set, A::SecretsSetSecret),
        O::GetSecret { .. } => (S::Get, A::SecretsGetSecret),
        O::UpdateSecret { .. } => (S::Set, A::SecretsUpdate),
        O::DeleteSecret { .. } => (S::Delete, A::SecretsDelete),
        O::ListSecrets | O::ListSecretVersions { .. } | O::ListDeletedSecrets => {
            (S::List, A::SecretsReadMetadata)
        }
        O::GetDeletedSecret { .. } => (S::List, A::SecretsReadMetadata),
        O::PurgeDeletedSecret { .. } => (S::Purge, A::SecretsPurge),
        O::RecoverDeletedSecret { .. } => (S::Recover, A::SecretsRecover),
        O::BackupSecret { .. } => (S::Backup, A::SecretsBackup),
        O::RestoreSecret => (S::Restore, A::SecretsRestore),
    };
    let object = match op {
        // Listing versions is a read of one object's metadata: object-scope grants apply.
        O::ListSecretVersions { name } => Some((ObjectKind::Secrets, name.as_str())),
        _ => op.object().map(|(_, name)| (ObjectKind::Secrets, name)),
    };
    Requirement {
        permission: Permission::Secret(perm),
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
    use crate::policy::{BuiltInRole, Identity, PolicyDocument};
    use serde_json::json;

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
            let policy = policy.compile().unwrap();
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
            let policy = policy.compile().unwrap();
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
        let p = PolicyDocument::empty().compile().unwrap();
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
            &ap.compile().unwrap(),
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
