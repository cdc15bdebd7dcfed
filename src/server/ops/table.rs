//! The operation table: one row per (method, path pattern), in the order of the REST API's
//! reference. A row is everything the pipeline needs before the handler runs.
//!
//! Path patterns: `/`-separated segments, each a literal (matched case-insensitively), `{name}`
//! (a non-empty object or issuer name) or `{version}` (a version id; empty means the latest).
//! A pattern ending in `[/]` also matches with one trailing slash (collections: `/secrets/`).

use super::{
    AdminOp, Args, CertificatesOp as C, ContactsOp, IssuersOp, KeyOp, KeysOp as K, Operation,
    SecretsOp as S,
};
use crate::policy::{
    CertificatePermission as CP, DataAction as A, KeyPermission as KP, ObjectKind, Permission,
    SecretPermission as SP,
};
use crate::server::throttle::Category;
use axum::http::Method;

/// What a caller needs for an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A vault permission (access-policy mode) and a data action (RBAC mode); `alternative`
    /// is another permission that also suffices (`manageissuers` for every issuer operation).
    Data {
        permission: Permission,
        alternative: Option<Permission>,
        action: A,
    },
    /// Only the vault's control-plane principals (the operator). The network rules do not
    /// apply, so the operator can always repair a policy that locked everyone out, and these
    /// paths are kvault's own: no api-version.
    ControlPlane,
}

/// What a grant's scope is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Listings and vault-wide operations: only vault-scope grants allow them.
    Vault,
    /// One object of a family, named by the path's `{name}`.
    Object(ObjectKind),
}

/// The request body an operation takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// None: a request that carries one is refused before it is read.
    Empty,
    /// At most this many bytes.
    UpTo(usize),
}

impl BodyLimit {
    pub fn max_bytes(self) -> usize {
        match self {
            BodyLimit::Empty => 0,
            BodyLimit::UpTo(n) => n,
        }
    }
}

/// One operation: everything but the handler, which its family's enum selects.
#[derive(Debug)]
pub struct OperationSpec {
    /// The API's operation id, as audit records and metrics name it.
    pub name: &'static str,
    pub method: Method,
    pub path: &'static str,
    pub scope: Scope,
    pub access: Access,
    pub throttle: Category,
    pub body: BodyLimit,
    /// Makes the typed operation from what the path captured.
    pub build: fn(Args) -> Operation,
}

/// A POST whose API defines no body still gets a little room: clients send `{}` or nothing.
const NO_PAYLOAD: BodyLimit = BodyLimit::UpTo(4 * 1024);
/// Ordinary JSON requests: a 25 KiB secret value JSON-escaped up to six-fold, 15 tags, or a
/// key operation's base64url input.
const JSON: BodyLimit = BodyLimit::UpTo(256 * 1024);
/// Certificate import and merge: a PFX or PEM chain with its key, base64-encoded.
const CERTIFICATE: BodyLimit = BodyLimit::UpTo(2 * 1024 * 1024);
/// Restore: a backup of up to 500 versions of 25 KiB secrets.
const RESTORE: BodyLimit = BodyLimit::UpTo(16 * 1024 * 1024);
/// The control plane's policy document (1,024 access policies fit comfortably).
const POLICY: BodyLimit = BodyLimit::UpTo(4 * 1024 * 1024);

const fn row(
    name: &'static str,
    method: Method,
    path: &'static str,
    scope: Scope,
    access: Access,
    build: fn(Args) -> Operation,
) -> OperationSpec {
    OperationSpec {
        name,
        method,
        path,
        scope,
        access,
        throttle: Category::Other,
        body: BodyLimit::Empty,
        build,
    }
}

impl OperationSpec {
    const fn body(mut self, body: BodyLimit) -> Self {
        self.body = body;
        self
    }

    const fn throttle(mut self, category: Category) -> Self {
        self.throttle = category;
        self
    }
}

const fn data(permission: Permission, action: A) -> Access {
    Access::Data {
        permission,
        alternative: None,
        action,
    }
}

const fn secret(p: SP, action: A) -> Access {
    data(Permission::Secret(p), action)
}

const fn key(p: KP, action: A) -> Access {
    data(Permission::Key(p), action)
}

const fn certificate(p: CP, action: A) -> Access {
    data(Permission::Certificate(p), action)
}

/// `manageissuers` covers every issuer operation.
const fn issuer(p: CP, action: A) -> Access {
    Access::Data {
        permission: Permission::Certificate(p),
        alternative: Some(Permission::Certificate(CP::ManageIssuers)),
        action,
    }
}

const SECRET: Scope = Scope::Object(ObjectKind::Secrets);
const KEY: Scope = Scope::Object(ObjectKind::Keys);
const CERT: Scope = Scope::Object(ObjectKind::Certificates);
const VAULT: Scope = Scope::Vault;
const GET: Method = Method::GET;
const PUT: Method = Method::PUT;
const PATCH: Method = Method::PATCH;
const POST: Method = Method::POST;
const DELETE: Method = Method::DELETE;

fn s(op: S) -> Operation {
    Operation::Secrets(op)
}
fn k(op: K) -> Operation {
    Operation::Keys(op)
}
fn c(op: C) -> Operation {
    Operation::Certificates(op)
}
fn crypto(a: Args, op: KeyOp) -> Operation {
    k(K::Crypto {
        name: a.name,
        version: a.version,
        op,
    })
}

/// Every operation of the API, and kvault's control-plane endpoints. One row per line reads
/// as a table, so rustfmt leaves it alone.
#[rustfmt::skip]
pub static OPERATIONS: &[OperationSpec] = &[
    // Secrets.
    row("GetSecrets", GET, "/secrets[/]", VAULT, secret(SP::List, A::SecretsReadMetadata), |_| s(S::List)),
    row("RestoreSecret", POST, "/secrets/restore", VAULT, secret(SP::Restore, A::SecretsRestore), |_| s(S::Restore))
        .body(RESTORE)
        .throttle(Category::SecretWrite),
    row("SetSecret", PUT, "/secrets/{name}", SECRET, secret(SP::Set, A::SecretsSetSecret), |a| s(S::Set { name: a.name }))
        .body(JSON)
        .throttle(Category::SecretWrite),
    row("DeleteSecret", DELETE, "/secrets/{name}", SECRET, secret(SP::Delete, A::SecretsDelete), |a| s(S::Delete { name: a.name })),
    row("GetSecret", GET, "/secrets/{name}", SECRET, secret(SP::Get, A::SecretsGetSecret), |a| s(S::Get { name: a.name, version: None })),
    row("GetSecret", GET, "/secrets/{name}/{version}", SECRET, secret(SP::Get, A::SecretsGetSecret), |a| s(S::Get { name: a.name, version: a.version })),
    row("UpdateSecret", PATCH, "/secrets/{name}", SECRET, secret(SP::Set, A::SecretsUpdate), |a| s(S::Update { name: a.name, version: None }))
        .body(JSON),
    row("UpdateSecret", PATCH, "/secrets/{name}/{version}", SECRET, secret(SP::Set, A::SecretsUpdate), |a| s(S::Update { name: a.name, version: a.version }))
        .body(JSON),
    row("GetSecretVersions", GET, "/secrets/{name}/versions", SECRET, secret(SP::List, A::SecretsReadMetadata), |a| s(S::ListVersions { name: a.name })),
    row("BackupSecret", POST, "/secrets/{name}/backup", SECRET, secret(SP::Backup, A::SecretsBackup), |a| s(S::Backup { name: a.name }))
        .body(NO_PAYLOAD),
    row("GetDeletedSecrets", GET, "/deletedsecrets[/]", VAULT, secret(SP::List, A::SecretsReadMetadata), |_| s(S::ListDeleted)),
    row("GetDeletedSecret", GET, "/deletedsecrets/{name}", SECRET, secret(SP::List, A::SecretsReadMetadata), |a| s(S::GetDeleted { name: a.name })),
    row("PurgeDeletedSecret", DELETE, "/deletedsecrets/{name}", SECRET, secret(SP::Purge, A::SecretsPurge), |a| s(S::Purge { name: a.name })),
    row("RecoverDeletedSecret", POST, "/deletedsecrets/{name}/recover", SECRET, secret(SP::Recover, A::SecretsRecover), |a| s(S::Recover { name: a.name }))
        .body(NO_PAYLOAD),
    // Keys.
    row("GetKeys", GET, "/keys[/]", VAULT, key(KP::List, A::KeysRead), |_| k(K::List)),
    row("RestoreKey", POST, "/keys/restore", VAULT, key(KP::Restore, A::KeysRestore), |_| k(K::Restore))
        .body(RESTORE),
    row("ImportKey", PUT, "/keys/{name}", KEY, key(KP::Import, A::KeysImport), |a| k(K::Import { name: a.name }))
        .body(JSON),
    row("DeleteKey", DELETE, "/keys/{name}", KEY, key(KP::Delete, A::KeysDelete), |a| k(K::Delete { name: a.name })),
    row("GetKey", GET, "/keys/{name}", KEY, key(KP::Get, A::KeysRead), |a| k(K::Get { name: a.name, version: None })),
    row("GetKey", GET, "/keys/{name}/{version}", KEY, key(KP::Get, A::KeysRead), |a| k(K::Get { name: a.name, version: a.version })),
    row("UpdateKey", PATCH, "/keys/{name}", KEY, key(KP::Update, A::KeysUpdate), |a| k(K::Update { name: a.name, version: None }))
        .body(JSON),
    row("UpdateKey", PATCH, "/keys/{name}/{version}", KEY, key(KP::Update, A::KeysUpdate), |a| k(K::Update { name: a.name, version: a.version }))
        .body(JSON),
    row("GetKeyVersions", GET, "/keys/{name}/versions", KEY, key(KP::List, A::KeysRead), |a| k(K::ListVersions { name: a.name })),
    row("CreateKey", POST, "/keys/{name}/create", KEY, key(KP::Create, A::KeysCreate), |a| k(K::Create { name: a.name }))
        .body(JSON),
    row("BackupKey", POST, "/keys/{name}/backup", KEY, key(KP::Backup, A::KeysBackup), |a| k(K::Backup { name: a.name }))
        .body(NO_PAYLOAD),
    row("RotateKey", POST, "/keys/{name}/rotate", KEY, key(KP::Rotate, A::KeysRotate), |a| k(K::Rotate { name: a.name }))
        .body(NO_PAYLOAD),
    row("GetKeyRotationPolicy", GET, "/keys/{name}/rotationpolicy", KEY, key(KP::GetRotationPolicy, A::KeyRotationPoliciesRead), |a| k(K::GetRotationPolicy { name: a.name })),
    row("UpdateKeyRotationPolicy", PUT, "/keys/{name}/rotationpolicy", KEY, key(KP::SetRotationPolicy, A::KeyRotationPoliciesWrite), |a| k(K::SetRotationPolicy { name: a.name }))
        .body(JSON),
    row("Encrypt", POST, "/keys/{name}/encrypt", KEY, key(KP::Encrypt, A::KeysEncrypt), |a| crypto(a, KeyOp::Encrypt)).body(JSON),
    row("Encrypt", POST, "/keys/{name}/{version}/encrypt", KEY, key(KP::Encrypt, A::KeysEncrypt), |a| crypto(a, KeyOp::Encrypt)).body(JSON),
    row("Decrypt", POST, "/keys/{name}/decrypt", KEY, key(KP::Decrypt, A::KeysDecrypt), |a| crypto(a, KeyOp::Decrypt)).body(JSON),
    row("Decrypt", POST, "/keys/{name}/{version}/decrypt", KEY, key(KP::Decrypt, A::KeysDecrypt), |a| crypto(a, KeyOp::Decrypt)).body(JSON),
    row("WrapKey", POST, "/keys/{name}/wrapkey", KEY, key(KP::WrapKey, A::KeysWrap), |a| crypto(a, KeyOp::WrapKey)).body(JSON),
    row("WrapKey", POST, "/keys/{name}/{version}/wrapkey", KEY, key(KP::WrapKey, A::KeysWrap), |a| crypto(a, KeyOp::WrapKey)).body(JSON),
    row("UnwrapKey", POST, "/keys/{name}/unwrapkey", KEY, key(KP::UnwrapKey, A::KeysUnwrap), |a| crypto(a, KeyOp::UnwrapKey)).body(JSON),
    row("UnwrapKey", POST, "/keys/{name}/{version}/unwrapkey", KEY, key(KP::UnwrapKey, A::KeysUnwrap), |a| crypto(a, KeyOp::UnwrapKey)).body(JSON),
    row("Sign", POST, "/keys/{name}/sign", KEY, key(KP::Sign, A::KeysSign), |a| crypto(a, KeyOp::Sign)).body(JSON),
    row("Sign", POST, "/keys/{name}/{version}/sign", KEY, key(KP::Sign, A::KeysSign), |a| crypto(a, KeyOp::Sign)).body(JSON),
    row("Verify", POST, "/keys/{name}/verify", KEY, key(KP::Verify, A::KeysVerify), |a| crypto(a, KeyOp::Verify)).body(JSON),
    row("Verify", POST, "/keys/{name}/{version}/verify", KEY, key(KP::Verify, A::KeysVerify), |a| crypto(a, KeyOp::Verify)).body(JSON),
    row("Release", POST, "/keys/{name}/release", KEY, key(KP::Release, A::KeysRelease), |a| crypto(a, KeyOp::Release)).body(JSON),
    row("Release", POST, "/keys/{name}/{version}/release", KEY, key(KP::Release, A::KeysRelease), |a| crypto(a, KeyOp::Release)).body(JSON),
    row("GetDeletedKeys", GET, "/deletedkeys[/]", VAULT, key(KP::List, A::KeysRead), |_| k(K::ListDeleted)),
    row("GetDeletedKey", GET, "/deletedkeys/{name}", KEY, key(KP::Get, A::KeysRead), |a| k(K::GetDeleted { name: a.name })),
    row("PurgeDeletedKey", DELETE, "/deletedkeys/{name}", KEY, key(KP::Purge, A::KeysPurge), |a| k(K::Purge { name: a.name })),
    row("RecoverDeletedKey", POST, "/deletedkeys/{name}/recover", KEY, key(KP::Recover, A::KeysRecover), |a| k(K::Recover { name: a.name }))
        .body(NO_PAYLOAD),
    // The cloud has no vault permission for random bytes; kvault asks for `get` on keys (or
    // its own data action) so an unprivileged caller cannot drain entropy.
    row("GetRandomBytes", POST, "/rng", VAULT, key(KP::Get, A::Rng), |_| k(K::GetRandomBytes))
        .body(NO_PAYLOAD),
    // Certificates.
    row("GetCertificates", GET, "/certificates[/]", VAULT, certificate(CP::List, A::CertificatesRead), |_| c(C::List)),
    row("GetCertificateContacts", GET, "/certificates/contacts", VAULT, certificate(CP::ManageContacts, A::CertificateContactsRead), |_| c(C::Contacts(ContactsOp::Get))),
    row("SetCertificateContacts", PUT, "/certificates/contacts", VAULT, certificate(CP::ManageContacts, A::CertificateContactsWrite), |_| c(C::Contacts(ContactsOp::Set)))
        .body(JSON),
    row("DeleteCertificateContacts", DELETE, "/certificates/contacts", VAULT, certificate(CP::ManageContacts, A::CertificateContactsWrite), |_| c(C::Contacts(ContactsOp::Delete))),
    row("GetCertificateIssuers", GET, "/certificates/issuers[/]", VAULT, issuer(CP::ListIssuers, A::CertificateCasRead), |_| c(C::Issuers(IssuersOp::List))),
    row("GetCertificateIssuer", GET, "/certificates/issuers/{name}", VAULT, issuer(CP::GetIssuers, A::CertificateCasRead), |a| c(C::Issuers(IssuersOp::Get { name: a.name }))),
    row("SetCertificateIssuer", PUT, "/certificates/issuers/{name}", VAULT, issuer(CP::SetIssuers, A::CertificateCasWrite), |a| c(C::Issuers(IssuersOp::Set { name: a.name })))
        .body(JSON),
    row("UpdateCertificateIssuer", PATCH, "/certificates/issuers/{name}", VAULT, issuer(CP::SetIssuers, A::CertificateCasWrite), |a| c(C::Issuers(IssuersOp::Update { name: a.name })))
        .body(JSON),
    row("DeleteCertificateIssuer", DELETE, "/certificates/issuers/{name}", VAULT, issuer(CP::DeleteIssuers, A::CertificateCasDelete), |a| c(C::Issuers(IssuersOp::Delete { name: a.name }))),
    row("RestoreCertificate", POST, "/certificates/restore", VAULT, certificate(CP::Restore, A::CertificatesRestore), |_| c(C::Restore))
        .body(RESTORE),
    row("GetCertificate", GET, "/certificates/{name}", CERT, certificate(CP::Get, A::CertificatesRead), |a| c(C::Get { name: a.name, version: None })),
    row("GetCertificate", GET, "/certificates/{name}/{version}", CERT, certificate(CP::Get, A::CertificatesRead), |a| c(C::Get { name: a.name, version: a.version })),
    row("UpdateCertificate", PATCH, "/certificates/{name}", CERT, certificate(CP::Update, A::CertificatesUpdate), |a| c(C::Update { name: a.name, version: None }))
        .body(JSON),
    row("UpdateCertificate", PATCH, "/certificates/{name}/{version}", CERT, certificate(CP::Update, A::CertificatesUpdate), |a| c(C::Update { name: a.name, version: a.version }))
        .body(JSON),
    row("DeleteCertificate", DELETE, "/certificates/{name}", CERT, certificate(CP::Delete, A::CertificatesDelete), |a| c(C::Delete { name: a.name })),
    row("CreateCertificate", POST, "/certificates/{name}/create", CERT, certificate(CP::Create, A::CertificatesCreate), |a| c(C::Create { name: a.name }))
        .body(JSON),
    row("ImportCertificate", POST, "/certificates/{name}/import", CERT, certificate(CP::Import, A::CertificatesImport), |a| c(C::Import { name: a.name }))
        .body(CERTIFICATE),
    row("BackupCertificate", POST, "/certificates/{name}/backup", CERT, certificate(CP::Backup, A::CertificatesBackup), |a| c(C::Backup { name: a.name }))
        .body(NO_PAYLOAD),
    row("GetCertificateVersions", GET, "/certificates/{name}/versions", CERT, certificate(CP::List, A::CertificatesRead), |a| c(C::ListVersions { name: a.name })),
    row("GetCertificatePolicy", GET, "/certificates/{name}/policy", CERT, certificate(CP::Get, A::CertificatesRead), |a| c(C::GetPolicy { name: a.name })),
    row("UpdateCertificatePolicy", PATCH, "/certificates/{name}/policy", CERT, certificate(CP::Update, A::CertificatesUpdate), |a| c(C::UpdatePolicy { name: a.name }))
        .body(JSON),
    row("GetCertificateOperation", GET, "/certificates/{name}/pending", CERT, certificate(CP::Get, A::CertificatesRead), |a| c(C::GetOperation { name: a.name })),
    row("UpdateCertificateOperation", PATCH, "/certificates/{name}/pending", CERT, certificate(CP::Update, A::CertificatesUpdate), |a| c(C::UpdateOperation { name: a.name }))
        .body(JSON),
    row("DeleteCertificateOperation", DELETE, "/certificates/{name}/pending", CERT, certificate(CP::Delete, A::CertificatesDelete), |a| c(C::DeleteOperation { name: a.name })),
    row("MergeCertificate", POST, "/certificates/{name}/pending/merge", CERT, certificate(CP::Create, A::CertificatesCreate), |a| c(C::Merge { name: a.name }))
        .body(CERTIFICATE),
    row("GetDeletedCertificates", GET, "/deletedcertificates[/]", VAULT, certificate(CP::List, A::CertificatesRead), |_| c(C::ListDeleted)),
    row("GetDeletedCertificate", GET, "/deletedcertificates/{name}", CERT, certificate(CP::Get, A::CertificatesRead), |a| c(C::GetDeleted { name: a.name })),
    row("PurgeDeletedCertificate", DELETE, "/deletedcertificates/{name}", CERT, certificate(CP::Purge, A::CertificatesPurge), |a| c(C::Purge { name: a.name })),
    row("RecoverDeletedCertificate", POST, "/deletedcertificates/{name}/recover", CERT, certificate(CP::Recover, A::CertificatesRecover), |a| c(C::Recover { name: a.name }))
        .body(NO_PAYLOAD),
    // kvault's control plane.
    row("GetPolicy", GET, "/_kvault/policy", VAULT, Access::ControlPlane, |_| Operation::Admin(AdminOp::GetPolicy)),
    row("PutPolicy", PUT, "/_kvault/policy", VAULT, Access::ControlPlane, |_| Operation::Admin(AdminOp::PutPolicy))
        .body(POLICY),
    row("GetEventDeadLetters", GET, "/_kvault/events/dead-letters", VAULT, Access::ControlPlane, |_| Operation::Admin(AdminOp::GetEventDeadLetters)),
    row("GetExpiringObjects", GET, "/_kvault/events/expiry", VAULT, Access::ControlPlane, |_| Operation::Admin(AdminOp::GetExpiringObjects)),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(spec: &OperationSpec) -> Operation {
        (spec.build)(Args {
            name: "n1".into(),
            version: Some("v1".into()),
        })
    }

    #[test]
    fn every_row_reaches_the_family_its_access_names() {
        for spec in OPERATIONS {
            let op = sample(spec);
            let consistent = match (spec.access, &op) {
                (Access::Data { permission, .. }, op) => matches!(
                    (permission, op),
                    (Permission::Secret(_), Operation::Secrets(_))
                        | (Permission::Key(_), Operation::Keys(_))
                        | (Permission::Certificate(_), Operation::Certificates(_))
                ),
                (Access::ControlPlane, Operation::Admin(_)) => true,
                (Access::ControlPlane, _) => false,
            };
            assert!(consistent, "{} {} builds {op:?}", spec.method, spec.path);
            if let Scope::Object(kind) = spec.scope {
                assert!(spec.path.contains("{name}"), "{}", spec.path);
                assert!(
                    spec.path.starts_with(&format!("/{}/", kind.as_str()))
                        || spec
                            .path
                            .starts_with(&format!("/deleted{}/", kind.as_str())),
                    "{} is scoped to {}",
                    spec.path,
                    kind.as_str()
                );
            }
        }
    }

    #[test]
    fn only_operations_with_a_payload_read_a_body() {
        for spec in OPERATIONS {
            let bodyless = spec.method == Method::GET || spec.method == Method::DELETE;
            assert_eq!(
                spec.body == BodyLimit::Empty,
                bodyless,
                "{} {}",
                spec.method,
                spec.path
            );
        }
    }

    #[test]
    fn audit_names_are_the_apis_operation_ids() {
        let mut names: Vec<&str> = OPERATIONS.iter().map(|s| s.name).collect();
        names.dedup();
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_alphanumeric()))
        );
        // Rows of one operation (with and without a version segment) sit together.
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            names.len(),
            "an operation's rows are split apart"
        );
    }
}
