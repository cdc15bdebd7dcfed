//! The vocabulary of grants: access-policy permission names (exactly the cloud's), the
//! data actions of the cloud's RBAC model, and the built-in data roles defined — as in the
//! cloud — by data-action patterns with `*` wildcards.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The object family a permission or action is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Keys,
    Secrets,
    Certificates,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Keys => "keys",
            ObjectKind::Secrets => "secrets",
            ObjectKind::Certificates => "certificates",
        }
    }
}

macro_rules! permission_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
            /// Case-insensitive, as the cloud accepts `Get` and `get`.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|p| p.as_str().eq_ignore_ascii_case(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format!(
                    "unknown {} permission '{}' (allowed: {})",
                    stringify!($name),
                    s,
                    Self::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
                )))
            }
        }
    };
}

permission_enum!(
    /// Access-policy permissions on keys.
    KeyPermission {
        Encrypt = "encrypt", Decrypt = "decrypt", WrapKey = "wrapKey", UnwrapKey = "unwrapKey",
        Sign = "sign", Verify = "verify", Get = "get", List = "list", Create = "create",
        Update = "update", Import = "import", Delete = "delete", Recover = "recover",
        Backup = "backup", Restore = "restore", Purge = "purge", Rotate = "rotate",
        GetRotationPolicy = "getrotationpolicy", SetRotationPolicy = "setrotationpolicy",
        Release = "release",
    }
);

permission_enum!(
    /// Access-policy permissions on secrets.
    SecretPermission {
        Get = "get", List = "list", Set = "set", Delete = "delete", Recover = "recover",
        Backup = "backup", Restore = "restore", Purge = "purge",
    }
);

permission_enum!(
    /// Access-policy permissions on certificates.
    CertificatePermission {
        Get = "get", List = "list", Create = "create", Import = "import", Update = "update",
        Delete = "delete", Recover = "recover", Backup = "backup", Restore = "restore",
        Purge = "purge", ManageContacts = "managecontacts", GetIssuers = "getissuers",
        ListIssuers = "listissuers", SetIssuers = "setissuers", DeleteIssuers = "deleteissuers",
        ManageIssuers = "manageissuers",
    }
);

/// One access-policy permission of any family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Key(KeyPermission),
    Secret(SecretPermission),
    Certificate(CertificatePermission),
}

impl Permission {
    pub fn kind(self) -> ObjectKind {
        match self {
            Permission::Key(_) => ObjectKind::Keys,
            Permission::Secret(_) => ObjectKind::Secrets,
            Permission::Certificate(_) => ObjectKind::Certificates,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Permission::Key(p) => p.as_str(),
            Permission::Secret(p) => p.as_str(),
            Permission::Certificate(p) => p.as_str(),
        }
    }
}

impl fmt::Display for Permission {
    /// `secrets get`, the way the cloud's denial message names it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind().as_str(), self.name())
    }
}

macro_rules! data_actions {
    ($($variant:ident = $text:literal),* $(,)?) => {
        /// The data actions of a vault in the cloud's RBAC model.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum DataAction { $($variant),* }

        impl DataAction {
            pub const ALL: &'static [DataAction] = &[$(DataAction::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $(DataAction::$variant => concat!("Microsoft.KeyVault/vaults/", $text)),* }
            }
            fn bit(self) -> u64 { 1u64 << (self as u8) }
        }
    };
}

data_actions!(
    SecretsReadMetadata = "secrets/readMetadata/action",
    SecretsGetSecret = "secrets/getSecret/action",
    SecretsSetSecret = "secrets/setSecret/action",
    SecretsUpdate = "secrets/update/action",
    SecretsDelete = "secrets/delete",
    SecretsBackup = "secrets/backup/action",
    SecretsRestore = "secrets/restore/action",
    SecretsRecover = "secrets/recover/action",
    SecretsPurge = "secrets/purge/action",
    KeysRead = "keys/read",
    KeysUpdate = "keys/update/action",
    KeysCreate = "keys/create/action",
    KeysImport = "keys/import/action",
    KeysDelete = "keys/delete",
    KeysBackup = "keys/backup/action",
    KeysRestore = "keys/restore/action",
    KeysRecover = "keys/recover/action",
    KeysPurge = "keys/purge/action",
    KeysEncrypt = "keys/encrypt/action",
    KeysDecrypt = "keys/decrypt/action",
    KeysWrap = "keys/wrap/action",
    KeysUnwrap = "keys/unwrap/action",
    KeysSign = "keys/sign/action",
    KeysVerify = "keys/verify/action",
    KeysRelease = "keys/release/action",
    KeysRotate = "keys/rotate/action",
    KeyRotationPoliciesRead = "keyrotationpolicies/read",
    KeyRotationPoliciesWrite = "keyrotationpolicies/write",
    CertificatesRead = "certificates/read",
    CertificatesCreate = "certificates/create/action",
    CertificatesImport = "certificates/import/action",
    CertificatesUpdate = "certificates/update/action",
    CertificatesDelete = "certificates/delete",
    CertificatesBackup = "certificates/backup/action",
    CertificatesRestore = "certificates/restore/action",
    CertificatesRecover = "certificates/recover/action",
    CertificatesPurge = "certificates/purge/action",
    CertificateCasRead = "certificatecas/read",
    CertificateCasWrite = "certificatecas/write",
    CertificateCasDelete = "certificatecas/delete",
    CertificateContactsRead = "certificatecontacts/read",
    CertificateContactsWrite = "certificatecontacts/write",
    Rng = "rng/action",
);

impl fmt::Display for DataAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of data actions (one bit each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActionSet(u64);

impl ActionSet {
    pub fn contains(self, a: DataAction) -> bool {
        self.0 & a.bit() != 0
    }
    pub fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }
    pub fn iter(self) -> impl Iterator<Item = DataAction> {
        DataAction::ALL
            .iter()
            .copied()
            .filter(move |a| self.contains(*a))
    }
    fn from_patterns(patterns: &[&str]) -> ActionSet {
        let mut bits = 0;
        for a in DataAction::ALL {
            if patterns.iter().any(|p| wildcard_match(p, a.as_str())) {
                bits |= a.bit();
            }
        }
        ActionSet(bits)
    }
}

/// The cloud's action-pattern matching: `*` matches any run of characters (slashes too),
/// compared case-insensitively.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    let (p, t) = (p.as_bytes(), t.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if p.get(pi) == Some(&b'*') {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if p.get(pi).is_some_and(|c| Some(c) == t.get(ti)) {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while p.get(pi) == Some(&b'*') {
        pi += 1;
    }
    pi == p.len()
}

/// The cloud's built-in Key Vault data roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltInRole {
    Administrator,
    Reader,
    SecretsOfficer,
    SecretsUser,
    CryptoOfficer,
    CryptoUser,
    CryptoServiceEncryptionUser,
    CryptoServiceReleaseUser,
    CertificatesOfficer,
    CertificateUser,
}

const V: &str = "Microsoft.KeyVault/vaults/";

impl BuiltInRole {
    pub const ALL: &'static [BuiltInRole] = &[
        BuiltInRole::Administrator,
        BuiltInRole::Reader,
        BuiltInRole::SecretsOfficer,
        BuiltInRole::SecretsUser,
        BuiltInRole::CryptoOfficer,
        BuiltInRole::CryptoUser,
        BuiltInRole::CryptoServiceEncryptionUser,
        BuiltInRole::CryptoServiceReleaseUser,
        BuiltInRole::CertificatesOfficer,
        BuiltInRole::CertificateUser,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BuiltInRole::Administrator => "Key Vault Administrator",
            BuiltInRole::Reader => "Key Vault Reader",
            BuiltInRole::SecretsOfficer => "Key Vault Secrets Officer",
            BuiltInRole::SecretsUser => "Key Vault Secrets User",
            BuiltInRole::CryptoOfficer => "Key Vault Crypto Officer",
            BuiltInRole::CryptoUser => "Key Vault Crypto User",
            BuiltInRole::CryptoServiceEncryptionUser => "Key Vault Crypto Service Encryption User",
            BuiltInRole::CryptoServiceReleaseUser => "Key Vault Crypto Service Release User",
            BuiltInRole::CertificatesOfficer => "Key Vault Certificates Officer",
            BuiltInRole::CertificateUser => "Key Vault Certificate User",
        }
    }

    /// The cloud's role definition id, so people can cross-reference.
    pub fn id(self) -> &'static str {
        match self {
            BuiltInRole::Administrator => "00482a5a-887f-4fb3-b363-3b7fe8e74483",
            BuiltInRole::Reader => "21090545-7ca7-4776-b22c-e363652d74d2",
            BuiltInRole::SecretsOfficer => "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
            BuiltInRole::SecretsUser => "4633458b-17de-408a-b874-0445c86b69e6",
            BuiltInRole::CryptoOfficer => "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
            BuiltInRole::CryptoUser => "12338af0-0e69-4776-bea7-57ae8d297424",
            BuiltInRole::CryptoServiceEncryptionUser => "e147488a-f6f5-4113-8e2d-b22465e65bf6",
            BuiltInRole::CryptoServiceReleaseUser => "08bbd89e-9f13-488c-ac41-acfcb10c90ab",
            BuiltInRole::CertificatesOfficer => "a4417e6f-fecd-4de8-b567-7b0420556985",
            BuiltInRole::CertificateUser => "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba",
        }
    }

    /// The role's `dataActions` as the cloud defines them (patterns).
    pub fn data_action_patterns(self) -> Vec<String> {
        let p = |s: &str| format!("{V}{s}");
        match self {
            BuiltInRole::Administrator => vec![p("*")],
            BuiltInRole::Reader => vec![p("*/read"), p("secrets/readMetadata/action")],
            BuiltInRole::SecretsOfficer => vec![p("secrets/*")],
            BuiltInRole::SecretsUser => {
                vec![
                    p("secrets/getSecret/action"),
                    p("secrets/readMetadata/action"),
                ]
            }
            BuiltInRole::CryptoOfficer => vec![p("keys/*"), p("keyrotationpolicies/*")],
            BuiltInRole::CryptoUser => vec![
                p("keys/read"),
                p("keys/update/action"),
                p("keys/backup/action"),
                p("keys/encrypt/action"),
                p("keys/decrypt/action"),
                p("keys/wrap/action"),
                p("keys/unwrap/action"),
                p("keys/sign/action"),
                p("keys/verify/action"),
            ],
            BuiltInRole::CryptoServiceEncryptionUser => {
                vec![
                    p("keys/read"),
                    p("keys/wrap/action"),
                    p("keys/unwrap/action"),
                ]
            }
            BuiltInRole::CryptoServiceReleaseUser => vec![p("keys/release/action")],
            BuiltInRole::CertificatesOfficer => vec![
                p("certificatecas/*"),
                p("certificates/*"),
                p("certificatecontacts/write"),
            ],
            BuiltInRole::CertificateUser => vec![
                p("certificates/read"),
                p("secrets/getSecret/action"),
                p("secrets/readMetadata/action"),
                p("keys/read"),
            ],
        }
    }

    /// The concrete data actions the role grants.
    pub fn actions(self) -> ActionSet {
        let patterns = self.data_action_patterns();
        let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
        ActionSet::from_patterns(&refs)
    }

    /// By display name (case-insensitive) or role definition id.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| {
            r.name().eq_ignore_ascii_case(s.trim()) || r.id().eq_ignore_ascii_case(s.trim())
        })
    }
}

impl fmt::Display for BuiltInRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for BuiltInRole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for BuiltInRole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown role '{s}' (built-in roles: {})",
                Self::ALL
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataAction as A;

    #[test]
    fn wildcards_follow_the_cloud() {
        assert!(wildcard_match("a/*", "a/b/c"));
        assert!(wildcard_match("a/*/read", "a/keys/read"));
        assert!(!wildcard_match("a/*/read", "a/secrets/readMetadata/action"));
        assert!(wildcard_match("A/*", "a/x"));
        assert!(!wildcard_match("a/b", "a/bc"));
        assert!(wildcard_match("*", ""));
    }

    fn set(role: BuiltInRole) -> Vec<DataAction> {
        role.actions().iter().collect()
    }

    #[test]
    fn every_role_grants_exactly_the_clouds_actions() {
        assert_eq!(set(BuiltInRole::Administrator), DataAction::ALL.to_vec());
        assert_eq!(
            set(BuiltInRole::Reader),
            vec![
                A::SecretsReadMetadata,
                A::KeysRead,
                A::KeyRotationPoliciesRead,
                A::CertificatesRead,
                A::CertificateCasRead,
                A::CertificateContactsRead
            ]
        );
        assert_eq!(
            set(BuiltInRole::SecretsOfficer),
            vec![
                A::SecretsReadMetadata,
                A::SecretsGetSecret,
                A::SecretsSetSecret,
                A::SecretsUpdate,
                A::SecretsDelete,
                A::SecretsBackup,
                A::SecretsRestore,
                A::SecretsRecover,
                A::SecretsPurge
            ]
        );
        assert_eq!(
            set(BuiltInRole::SecretsUser),
            vec![A::SecretsReadMetadata, A::SecretsGetSecret]
        );
        let officer = set(BuiltInRole::CryptoOfficer);
        assert!(
            officer.iter().all(
                |a| a.as_str().contains("/keys/") || a.as_str().contains("keyrotationpolicies")
            )
        );
        assert_eq!(officer.len(), 19);
        assert_eq!(
            set(BuiltInRole::CryptoUser),
            vec![
                A::KeysRead,
                A::KeysUpdate,
                A::KeysBackup,
                A::KeysEncrypt,
                A::KeysDecrypt,
                A::KeysWrap,
                A::KeysUnwrap,
                A::KeysSign,
                A::KeysVerify
            ]
        );
        assert_eq!(
            set(BuiltInRole::CryptoServiceEncryptionUser),
            vec![A::KeysRead, A::KeysWrap, A::KeysUnwrap]
        );
        assert_eq!(
            set(BuiltInRole::CryptoServiceReleaseUser),
            vec![A::KeysRelease]
        );
        let certs = set(BuiltInRole::CertificatesOfficer);
        assert!(!certs.contains(&A::SecretsGetSecret));
        assert!(
            certs.contains(&A::CertificatesPurge) && certs.contains(&A::CertificateContactsWrite)
        );
        assert!(!certs.contains(&A::CertificateContactsRead));
        assert_eq!(
            set(BuiltInRole::CertificateUser),
            vec![
                A::SecretsReadMetadata,
                A::SecretsGetSecret,
                A::KeysRead,
                A::CertificatesRead
            ]
        );
    }

    #[test]
    fn names_parse_case_insensitively_and_unknown_ones_are_refused() {
        assert_eq!(SecretPermission::parse("Get"), Some(SecretPermission::Get));
        assert_eq!(
            KeyPermission::parse("WRAPKEY"),
            Some(KeyPermission::WrapKey)
        );
        assert_eq!(SecretPermission::parse("encrypt"), None);
        assert_eq!(
            BuiltInRole::parse("key vault secrets user"),
            Some(BuiltInRole::SecretsUser)
        );
        assert_eq!(
            BuiltInRole::parse("4633458b-17de-408a-b874-0445c86b69e6"),
            Some(BuiltInRole::SecretsUser)
        );
        assert!(serde_json::from_str::<BuiltInRole>("\"Owner\"").is_err());
        assert!(serde_json::from_str::<SecretPermission>("\"sign\"").is_err());
        assert!(DataAction::ALL.len() <= 64);
    }
}

/// The built-in role table of `docs/security.md` (a test keeps the two in sync).
pub fn role_table_markdown() -> String {
    let mut out = String::from(
        "| role | cloud role id | data actions (as defined) | what it grants here |\n|---|---|---|---|\n",
    );
    for role in BuiltInRole::ALL {
        let patterns = role
            .data_action_patterns()
            .iter()
            .map(|p| format!("`{}`", p.trim_start_matches(V)))
            .collect::<Vec<_>>()
            .join("<br>");
        let actions = role
            .actions()
            .iter()
            .map(|a| a.as_str().trim_start_matches(V).to_string())
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            role.name(),
            role.id(),
            patterns,
            actions
        ));
    }
    out
}

#[cfg(test)]
mod doc_tests {
    #[test]
    fn the_security_doc_lists_the_roles_as_the_code_defines_them() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md"))
            .expect("docs/security.md");
        let table = super::role_table_markdown();
        assert!(
            doc.contains(&table),
            "docs/security.md is out of date; its role table must be exactly:\n{table}"
        );
    }
}
