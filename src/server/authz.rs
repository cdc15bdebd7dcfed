//! Authorization: one decision per request, a pure lookup on the current policy snapshot.
//! What an operation needs is its row of the operation table ([`crate::server::ops`]);
//! metadata operations (list, get properties, deleted objects) and value-reading operations
//! are distinct there, as in the cloud.

use crate::policy::{CompiledPolicy, Grantee, Principal, Requirement};
use crate::server::error::{ApiError, ApiResult};
use crate::server::ops::{Access, Routed};

/// What a routed data-plane operation needs; `None` for the control plane's endpoints,
/// which [`authorize_control_plane`] decides.
pub fn requirement(routed: &Routed) -> Option<Requirement<'_>> {
    match routed.spec.access {
        Access::Data {
            permission,
            alternative,
            action,
        } => Some(Requirement {
            permission,
            alternative,
            action,
            object: routed.object(),
        }),
        Access::ControlPlane => None,
    }
}

/// Allows or refuses `routed` for `who`; the refusal names the caller, what was missing and
/// the vault, never whether the object exists.
pub fn authorize(
    policy: &CompiledPolicy,
    who: &Principal,
    routed: &Routed,
    vault: &str,
) -> ApiResult<()> {
    let Some(req) = requirement(routed) else {
        // A control-plane row never reaches the data-plane decision; refuse if it does.
        return Err(ApiError::Forbidden {
            message: format!("'{who}' may not call the control plane of key vault '{vault}'."),
            inner: Some("AccessDenied"),
        });
    };
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

/// Admits only the vault's control-plane principals (from the server's configuration, not
/// from the policy document; bound to the policy's issuers, and a policy under which one
/// would match no token is refused, so a policy can never lock the operator out).
pub fn authorize_control_plane(
    admins: &[Grantee],
    who: &Principal,
    vault: &str,
    denied: &str,
) -> ApiResult<()> {
    if admins.iter().any(|a| a.matches(who)) {
        return Ok(());
    }
    Err(ApiError::Forbidden {
        message: format!(
            "'{who}' is not the control plane of key vault '{vault}' and may not {denied}."
        ),
        inner: Some("AccessDenied"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{
        BuiltInRole, CertificatePermission, Identity, KeyPermission, PolicyDocument,
        SecretPermission, TrustedIssuer,
    };
    use crate::server::ops::{CertificatesOp, ContactsOp, IssuersOp, Operation, SecretsOp, route};
    use axum::http::Method;

    const GET: Method = Method::GET;
    const PUT: Method = Method::PUT;
    const PATCH: Method = Method::PATCH;
    const POST: Method = Method::POST;
    const DELETE: Method = Method::DELETE;

    fn routed(method: Method, path: &str) -> Routed {
        route(&method, path).unwrap_or_else(|e| panic!("{method} {path}: {e:?}"))
    }
    use serde_json::json;

    /// The one issuer `alice` comes from.
    fn issuers() -> Vec<TrustedIssuer> {
        vec![TrustedIssuer::cluster("i")]
    }

    fn every_secret_operation() -> Vec<Routed> {
        vec![
            routed(PUT, "/secrets/s1"),
            routed(GET, "/secrets/s1"),
            routed(PATCH, "/secrets/s1"),
            routed(DELETE, "/secrets/s1"),
            routed(GET, "/secrets"),
            routed(GET, "/secrets/s1/versions"),
            routed(GET, "/deletedsecrets"),
            routed(GET, "/deletedsecrets/s1"),
            routed(DELETE, "/deletedsecrets/s1"),
            routed(POST, "/deletedsecrets/s1/recover"),
            routed(POST, "/secrets/s1/backup"),
            routed(POST, "/secrets/restore"),
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
    fn expected_permission(op: &Routed) -> &'static str {
        use SecretsOp as S;
        match &op.op {
            Operation::Secrets(op) => match op {
                S::Set { .. } | S::Update { .. } => "set",
                S::Get { .. } => "get",
                S::Delete { .. } => "delete",
                S::List | S::ListVersions { .. } | S::ListDeleted | S::GetDeleted { .. } => "list",
                S::Purge { .. } => "purge",
                S::Recover { .. } => "recover",
                S::Backup { .. } => "backup",
                S::Restore => "restore",
            },
            _ => unreachable!("secrets operations only"),
        }
    }

    fn every_key_operation() -> Vec<(Routed, &'static str)> {
        let kop = |op: &str| routed(POST, &format!("/keys/k1/{op}"));
        vec![
            (routed(POST, "/keys/k1/create"), "create"),
            (routed(PUT, "/keys/k1"), "import"),
            (routed(GET, "/keys/k1"), "get"),
            (routed(GET, "/deletedkeys/k1"), "get"),
            (routed(PATCH, "/keys/k1"), "update"),
            (routed(DELETE, "/keys/k1"), "delete"),
            (routed(GET, "/keys"), "list"),
            (routed(GET, "/keys/k1/versions"), "list"),
            (routed(GET, "/deletedkeys"), "list"),
            (routed(DELETE, "/deletedkeys/k1"), "purge"),
            (routed(POST, "/deletedkeys/k1/recover"), "recover"),
            (routed(POST, "/keys/k1/backup"), "backup"),
            (routed(POST, "/keys/restore"), "restore"),
            (routed(POST, "/keys/k1/rotate"), "rotate"),
            (routed(GET, "/keys/k1/rotationpolicy"), "getrotationpolicy"),
            (routed(PUT, "/keys/k1/rotationpolicy"), "setrotationpolicy"),
            (kop("encrypt"), "encrypt"),
            (kop("decrypt"), "decrypt"),
            (kop("wrapkey"), "wrapKey"),
            (kop("unwrapkey"), "unwrapKey"),
            (kop("sign"), "sign"),
            (kop("verify"), "verify"),
            (kop("release"), "release"),
        ]
    }

    fn every_certificate_operation() -> Vec<(Routed, &'static str)> {
        vec![
            (routed(POST, "/certificates/c1/create"), "create"),
            (routed(POST, "/certificates/c1/pending/merge"), "create"),
            (routed(POST, "/certificates/c1/import"), "import"),
            (routed(GET, "/certificates/c1"), "get"),
            (routed(GET, "/deletedcertificates/c1"), "get"),
            (routed(GET, "/certificates/c1/policy"), "get"),
            (routed(GET, "/certificates/c1/pending"), "get"),
            (routed(GET, "/certificates"), "list"),
            (routed(GET, "/certificates/c1/versions"), "list"),
            (routed(GET, "/deletedcertificates"), "list"),
            (routed(PATCH, "/certificates/c1"), "update"),
            (routed(PATCH, "/certificates/c1/policy"), "update"),
            (routed(PATCH, "/certificates/c1/pending"), "update"),
            (routed(DELETE, "/certificates/c1"), "delete"),
            (routed(DELETE, "/certificates/c1/pending"), "delete"),
            (routed(DELETE, "/deletedcertificates/c1"), "purge"),
            (routed(POST, "/deletedcertificates/c1/recover"), "recover"),
            (routed(POST, "/certificates/c1/backup"), "backup"),
            (routed(POST, "/certificates/restore"), "restore"),
            (routed(GET, "/certificates/contacts"), "managecontacts"),
            (routed(PUT, "/certificates/contacts"), "managecontacts"),
            (routed(DELETE, "/certificates/contacts"), "managecontacts"),
            (routed(GET, "/certificates/issuers"), "listissuers"),
            (routed(GET, "/certificates/issuers/c1"), "getissuers"),
            (routed(PUT, "/certificates/issuers/c1"), "setissuers"),
            (routed(PATCH, "/certificates/issuers/c1"), "setissuers"),
            (routed(DELETE, "/certificates/issuers/c1"), "deleteissuers"),
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
                    BuiltInRole::CertificatesOfficer => !matches!(
                        op.op,
                        Operation::Certificates(CertificatesOp::Contacts(ContactsOp::Get))
                    ),
                    // */read covers certificates, issuers and contacts.
                    BuiltInRole::Reader => {
                        read || matches!(
                            op.op,
                            Operation::Certificates(
                                CertificatesOp::Contacts(ContactsOp::Get)
                                    | CertificatesOp::Issuers(
                                        IssuersOp::List | IssuersOp::Get { .. }
                                    )
                            )
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
        use SecretsOp as S;
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
                    op.op,
                    O::Secrets(
                        S::List | S::ListVersions { .. } | S::ListDeleted | S::GetDeleted { .. }
                    )
                );
                let expected = match role {
                    BuiltInRole::Administrator | BuiltInRole::SecretsOfficer => true,
                    BuiltInRole::SecretsUser | BuiltInRole::CertificateUser => {
                        metadata || matches!(op.op, O::Secrets(S::Get { .. }))
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
    fn every_data_row_is_authorized_by_administrator_and_denied_by_default() {
        let admin: PolicyDocument = serde_json::from_value(json!({
            "generation": 1,
            "roleAssignments": [{"principal": {"kind": "User", "name": "alice"}, "role": BuiltInRole::Administrator.name()}]
        }))
        .unwrap();
        let admin = admin.compile(&issuers()).unwrap();
        let empty = PolicyDocument::empty().compile(&issuers()).unwrap();
        for spec in crate::server::ops::OPERATIONS {
            let path = spec
                .path
                .trim_end_matches("[/]")
                .replace("{name}", "n1")
                .replace("{version}", "v1");
            let op = routed(spec.method.clone(), &path);
            match spec.access {
                Access::Data { .. } => {
                    assert!(authorize(&admin, &alice(), &op, "v").is_ok(), "{path}");
                    assert!(authorize(&empty, &alice(), &op, "v").is_err(), "{path}");
                }
                // Not even an Administrator of the data plane may call the control plane.
                Access::ControlPlane => {
                    assert!(authorize(&admin, &alice(), &op, "v").is_err(), "{path}");
                }
            }
        }
    }

    #[test]
    fn denials_name_caller_permission_and_vault_but_not_existence() {
        let p = PolicyDocument::empty().compile(&issuers()).unwrap();
        let e = authorize(&p, &alice(), &routed(GET, "/secrets/s1"), "payments").unwrap_err();
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
            &routed(GET, "/secrets"),
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
