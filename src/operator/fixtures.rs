//! Test objects: builders for vaults and grants as the API server would return them.

use crate::api::{
    AccessPolicy, AccessPolicySpec, RoleAssignment, RoleAssignmentSpec, Vault, VaultRef, VaultSpec,
};
use crate::policy::{BuiltInRole, PermissionSet, PrincipalKind, PrincipalRef, SecretPermission};

pub fn vault(ns: &str, name: &str, spec: VaultSpec) -> Vault {
    let mut v = Vault::new(name, spec);
    v.metadata.namespace = Some(ns.into());
    v.metadata.uid = Some(format!("uid-{ns}-{name}"));
    v.metadata.generation = Some(1);
    v
}

pub fn sa(name: &str) -> PrincipalRef {
    PrincipalRef {
        kind: PrincipalKind::ServiceAccount,
        name: name.into(),
        namespace: None,
        issuer: None,
    }
}

pub fn principal(kind: PrincipalKind, name: &str) -> PrincipalRef {
    PrincipalRef {
        kind,
        name: name.into(),
        namespace: None,
        issuer: None,
    }
}

pub fn access_policy(ns: &str, name: &str, vault: &str, who: PrincipalRef) -> AccessPolicy {
    let mut a = AccessPolicy::new(
        name,
        AccessPolicySpec {
            vault_ref: VaultRef { name: vault.into() },
            principal: who,
            application: None,
            permissions: PermissionSet {
                secrets: vec![SecretPermission::Get, SecretPermission::List],
                ..Default::default()
            },
        },
    );
    a.metadata.namespace = Some(ns.into());
    a.metadata.generation = Some(1);
    a
}

pub fn role_assignment(
    ns: &str,
    name: &str,
    vault: &str,
    role: BuiltInRole,
    who: PrincipalRef,
) -> RoleAssignment {
    let mut r = RoleAssignment::new(
        name,
        RoleAssignmentSpec {
            vault_ref: VaultRef { name: vault.into() },
            role,
            principal: who,
            application: None,
            scope: None,
        },
    );
    r.metadata.namespace = Some(ns.into());
    r.metadata.generation = Some(1);
    r
}
