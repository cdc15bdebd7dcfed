//! The policy document's JSON shape, its validation, and its compiled form.

use super::issuers::{IssuerBinding, IssuerContext, SubjectKind, TrustedIssuer};
use super::permissions::{
    ActionSet, BuiltInRole, CertificatePermission, KeyPermission, ObjectKind, Permission,
    SecretPermission,
};
use super::principal::{Identity, Principal};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The cloud's limit on access-policy entries per vault.
pub const MAX_ACCESS_POLICIES: usize = 1024;

/// The highest policy generation a push may carry (2^53, the largest integer every JSON
/// parser keeps exactly). Generations must increase, so a document at `u64::MAX` would
/// freeze the policy for good.
pub const MAX_GENERATION: u64 = 1 << 53;

impl PolicyDocument {
    /// Refuses a generation above [`MAX_GENERATION`], which would leave no room for later
    /// changes.
    pub fn check_generation(&self) -> Result<(), PolicyError> {
        if self.generation > MAX_GENERATION {
            return Err(err(format!(
                "generation {} is above the highest accepted generation {MAX_GENERATION} \
                 (2^53): generations must increase, so it would leave no room for later changes",
                self.generation
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyDocument {
    /// Monotonically increasing; a push with a lower generation is refused.
    pub generation: u64,
    #[serde(default)]
    pub authorization: AuthorizationMode,
    #[serde(default)]
    pub access_policies: Vec<AccessPolicyEntry>,
    #[serde(default)]
    pub role_assignments: Vec<RoleAssignmentEntry>,
    #[serde(default)]
    pub network: NetworkRules,
    /// Absent: the server's configured minimum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
    /// Absent: the server's configured issuers and audiences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentitySettings>,
    /// Absent: the server's configured retention and purge protection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_delete: Option<SoftDeleteSettings>,
    #[serde(default)]
    pub throttling: ThrottlingSettings,
    /// Event notifications (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<super::events::EventSettings>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum AuthorizationMode {
    #[default]
    #[serde(rename = "RBAC", alias = "Rbac", alias = "rbac")]
    Rbac,
    #[serde(alias = "accessPolicy")]
    AccessPolicy,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum PrincipalKind {
    ServiceAccount,
    User,
    Group,
    Application,
}

/// Whom a grant names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrincipalRef {
    pub kind: PrincipalKind,
    pub name: String,
    /// Service accounts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The issuer whose tokens this grant trusts. Absent: the vault's one people issuer
    /// (or, without any, the cluster issuer); a ServiceAccount is always the cluster
    /// issuer's. See [`super::issuers`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl PrincipalRef {
    /// The issuer whose tokens can match this principal among `issuers`; `what` names the
    /// grant in a refusal (see [`super::issuers`]).
    pub fn bind_issuer(
        &self,
        issuers: &IssuerContext,
        what: &str,
    ) -> Result<IssuerBinding, PolicyError> {
        let kind = match self.kind {
            PrincipalKind::ServiceAccount => SubjectKind::ServiceAccount,
            PrincipalKind::User | PrincipalKind::Group | PrincipalKind::Application => {
                SubjectKind::Other
            }
        };
        issuers.bind(kind, self.issuer.as_deref(), what)
    }
}

impl std::fmt::Display for PrincipalRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.kind, &self.namespace) {
            (PrincipalKind::ServiceAccount, Some(ns)) => {
                write!(f, "ServiceAccount {ns}/{}", self.name)
            }
            (k, _) => write!(f, "{k:?} {}", self.name),
        }?;
        match &self.issuer {
            Some(i) => write!(f, " of issuer {i}"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PermissionSet {
    #[serde(default)]
    pub keys: Vec<KeyPermission>,
    #[serde(default)]
    pub secrets: Vec<SecretPermission>,
    #[serde(default)]
    pub certificates: Vec<CertificatePermission>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessPolicyEntry {
    pub principal: PrincipalRef,
    /// Compound identity: the entry applies only to this principal calling through this
    /// application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    pub permissions: PermissionSet,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleAssignmentEntry {
    pub principal: PrincipalRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    pub role: BuiltInRole,
    /// `/` (or absent) for the whole vault, or `/secrets/<name>`, `/keys/<name>`,
    /// `/certificates/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum DefaultAction {
    #[default]
    Allow,
    Deny,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkRules {
    #[serde(default)]
    pub default_action: DefaultAction,
    /// IPv4/IPv6 addresses or CIDRs allowed when the default action is Deny.
    #[serde(default)]
    pub ip_rules: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSettings {
    pub min_version: TlsVersion,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerSpec {
    pub issuer: String,
    /// A JWKS URL (https); absent with no file: OIDC discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    /// The keys themselves (the workload-identity token service's, pushed by the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<jsonwebtoken::jwk::JwkSet>,
    /// Only an issuer marked here may assert `system:serviceaccount:` subjects (the
    /// cluster's own issuer); from any other issuer such a subject is an ordinary user.
    #[serde(default)]
    pub service_accounts: bool,
    /// Another issuer of this document whose principals this one re-issues (the token
    /// service speaks for the cluster issuer): its callers count as that issuer's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaks_for: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentitySettings {
    pub issuers: Vec<IssuerSpec>,
    #[serde(default)]
    pub audiences: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SoftDeleteSettings {
    pub retention_days: u32,
    #[serde(default)]
    pub purge_protection: bool,
}

/// Request budgets per window, in the style of the cloud's service limits.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThrottlingSettings {
    pub enabled: bool,
    #[serde(default = "default_window")]
    pub window_seconds: u32,
    /// Secret creations (set, restore) per window.
    #[serde(default = "default_secret_writes")]
    pub secret_writes: u32,
    /// Every other transaction per window.
    #[serde(default = "default_requests")]
    pub requests: u32,
    /// The percentage of each budget one principal may use (1–100): one busy caller cannot
    /// spend everyone's budget, as the cloud limits each caller within a vault's limits.
    #[serde(default = "default_principal_share")]
    pub principal_share: u8,
}

fn default_window() -> u32 {
    10
}
fn default_secret_writes() -> u32 {
    300
}
fn default_requests() -> u32 {
    4000
}
fn default_principal_share() -> u8 {
    50
}

impl Default for ThrottlingSettings {
    /// The cloud's numbers: 300 secret writes and 4,000 other transactions per 10 s.
    fn default() -> Self {
        Self {
            enabled: true,
            window_seconds: default_window(),
            secret_writes: default_secret_writes(),
            requests: default_requests(),
            principal_share: default_principal_share(),
        }
    }
}

pub use super::error::PolicyError;

fn err(s: impl Into<String>) -> PolicyError {
    PolicyError(s.into())
}

/// Where a role assignment applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Vault,
    Object(ObjectKind, String),
}

impl Scope {
    pub fn parse(s: Option<&str>) -> Result<Scope, PolicyError> {
        let s = match s {
            None | Some("") | Some("/") => return Ok(Scope::Vault),
            Some(s) => s,
        };
        let parts: Vec<&str> = s.trim_start_matches('/').split('/').collect();
        let kind = match parts.first().map(|p| p.to_ascii_lowercase()).as_deref() {
            Some("secrets") => ObjectKind::Secrets,
            Some("keys") => ObjectKind::Keys,
            Some("certificates") => ObjectKind::Certificates,
            _ => {
                return Err(err(format!(
                    "scope '{s}' must be '/', /secrets/<name>, /keys/<name> or /certificates/<name>"
                )));
            }
        };
        match parts.as_slice() {
            [_, name]
                if !name.is_empty()
                    && name.len() <= 127
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                Ok(Scope::Object(kind, name.to_ascii_lowercase()))
            }
            _ => Err(err(format!("scope '{s}' does not name one object"))),
        }
    }

    pub fn covers(&self, object: Option<(ObjectKind, &str)>) -> bool {
        match (self, object) {
            (Scope::Vault, _) => true,
            (Scope::Object(k, n), Some((ok, on))) => *k == ok && n.eq_ignore_ascii_case(on),
            (Scope::Object(..), None) => false,
        }
    }
}

/// The caller side of a grant: who, vouched for by which issuer, and through which
/// application (compound identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grantee {
    pub who: PrincipalRef,
    pub application: Option<String>,
    /// The only issuer whose tokens can match (resolved when the policy is compiled).
    pub issuer: IssuerBinding,
}

impl Grantee {
    /// `who` bound to its issuer in `issuers`; `what` names the grant in a refusal.
    pub fn bind(
        who: PrincipalRef,
        application: Option<String>,
        issuers: &IssuerContext,
        what: &str,
    ) -> Result<Self, PolicyError> {
        let issuer = who.bind_issuer(issuers, what)?;
        Ok(Self {
            who,
            application,
            issuer,
        })
    }

    pub fn matches(&self, p: &Principal) -> bool {
        // The same name from another issuer is someone else.
        if !self.issuer.admits(p) {
            return false;
        }
        let who = &self.who;
        let identity = match who.kind {
            PrincipalKind::ServiceAccount => matches!(
                &p.identity,
                Identity::ServiceAccount { namespace, name }
                    if Some(namespace.as_str()) == who.namespace.as_deref() && *name == who.name
            ),
            PrincipalKind::User => matches!(&p.identity, Identity::User(id) if *id == who.name),
            PrincipalKind::Application => {
                matches!(&p.identity, Identity::Application(id) if *id == who.name)
            }
            PrincipalKind::Group => p.groups.contains(&who.name),
        };
        identity
            && match &self.application {
                None => true,
                // Compound: the named principal acting through this application, never the
                // application on its own.
                Some(app) => {
                    p.application.as_deref() == Some(app.as_str())
                        && !matches!(&p.identity, Identity::Application(_))
                }
            }
    }
}

#[derive(Debug, Clone)]
pub struct CompiledAccessEntry {
    pub grantee: Grantee,
    keys: Vec<KeyPermission>,
    secrets: Vec<SecretPermission>,
    certificates: Vec<CertificatePermission>,
}

impl CompiledAccessEntry {
    pub fn permits(&self, p: Permission) -> bool {
        match p {
            Permission::Key(k) => self.keys.contains(&k),
            Permission::Secret(s) => self.secrets.contains(&s),
            Permission::Certificate(c) => self.certificates.contains(&c),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CompiledAssignment {
    pub grantee: Grantee,
    pub role: BuiltInRole,
    pub actions: ActionSet,
    pub scope: Scope,
}

#[derive(Debug, Clone, Default)]
pub struct CompiledNetwork {
    pub default_deny: bool,
    pub allowed: Vec<IpNet>,
    pub trusted_proxies: Vec<IpNet>,
}

impl CompiledNetwork {
    /// The address to judge: the peer, unless the peer is a trusted proxy, in which case
    /// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub fn client_address(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusted_proxies.iter().any(|n| n.contains(&peer)) {
            return peer;
        }
        let Some(xff) = forwarded_for else {
            return peer;
        };
        let mut addr = peer;
        for hop in xff.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    addr = canonical(ip);
                    if !self.trusted_proxies.iter().any(|n| n.contains(&addr)) {
                        return addr;
                    }
                }
                Err(_) => return addr,
            }
        }
        addr
    }

    pub fn allows(&self, client: IpAddr) -> bool {
        !self.default_deny || self.allowed.iter().any(|n| n.contains(&canonical(client)))
    }
}

/// IPv4-mapped IPv6 addresses are judged as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// An address or CIDR, truncated to its network; IPv4-mapped IPv6 (`::ffff:a.b.c.d`,
/// prefixes of 96 bits or more) becomes the IPv4 network it maps, as client addresses do.
fn parse_net(s: &str) -> Result<IpNet, PolicyError> {
    let s = s.trim();
    let net = s
        .parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| err(format!("'{s}' is not an IP address or CIDR")))?;
    Ok(canonical_net(net))
}

fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(|n| IpNet::V4(n.trunc()))
                .unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

/// A validated policy, ready for per-request decisions.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub doc: PolicyDocument,
    pub mode: AuthorizationMode,
    pub access: Vec<CompiledAccessEntry>,
    pub assignments: Vec<CompiledAssignment>,
    pub network: CompiledNetwork,
}

fn check_principal(p: &PrincipalRef) -> Result<(), PolicyError> {
    if p.name.trim().is_empty() {
        return Err(err("a principal needs a name"));
    }
    match (p.kind, &p.namespace) {
        (PrincipalKind::ServiceAccount, Some(ns)) if !ns.is_empty() => Ok(()),
        (PrincipalKind::ServiceAccount, _) => Err(err(format!(
            "service account '{}' needs a namespace",
            p.name
        ))),
        (_, Some(_)) => Err(err(format!(
            "only service accounts have a namespace ({:?} '{}')",
            p.kind, p.name
        ))),
        _ => Ok(()),
    }
}

impl PolicyDocument {
    /// An empty policy: RBAC, no grants (deny everything), network open.
    pub fn empty() -> Self {
        Self {
            generation: 0,
            authorization: AuthorizationMode::Rbac,
            access_policies: vec![],
            role_assignments: vec![],
            network: NetworkRules::default(),
            tls: None,
            identity: None,
            soft_delete: None,
            throttling: ThrottlingSettings::default(),
            events: None,
        }
    }

    /// The issuers this document's grants are judged against: its own `identity`, or the
    /// server's configured ones when it has none.
    pub fn trusted_issuers(&self, server_issuers: &[TrustedIssuer]) -> Vec<TrustedIssuer> {
        match &self.identity {
            Some(id) => id
                .issuers
                .iter()
                .filter(|i| i.speaks_for.is_none())
                .map(|i| TrustedIssuer {
                    issuer: i.issuer.clone(),
                    service_accounts: i.service_accounts,
                })
                .collect(),
            None => server_issuers.to_vec(),
        }
    }

    /// Each issuer names at most one key source, and one that speaks for another names an
    /// issuer of this document that speaks for no one, with the same service-account rule.
    fn check_issuer_sources(&self) -> Result<(), PolicyError> {
        let Some(id) = &self.identity else {
            return Ok(());
        };
        for i in &id.issuers {
            let sources = [
                i.jwks.is_some(),
                i.jwks_uri.is_some(),
                i.jwks_file.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() > 1 {
                return Err(err(format!(
                    "issuer {}: give one of jwks, jwksUri and jwksFile",
                    i.issuer
                )));
            }
            let Some(target) = &i.speaks_for else {
                continue;
            };
            let found = id
                .issuers
                .iter()
                .find(|t| &t.issuer == target && t.speaks_for.is_none());
            match found {
                Some(t) if t.service_accounts == i.service_accounts => {}
                Some(_) => {
                    return Err(err(format!(
                        "issuer {} speaks for {target} but does not share its serviceAccounts setting",
                        i.issuer
                    )));
                }
                None => {
                    return Err(err(format!(
                        "issuer {} speaks for {target}, which is not a trusted issuer of this document (or itself speaks for another)",
                        i.issuer
                    )));
                }
            }
        }
        Ok(())
    }

    /// Validates the document and builds its lookup form. `server_issuers` are the
    /// server's configured issuers, used when the document names none of its own; every
    /// grant is bound to one of them (a grant that could be several is refused).
    pub fn compile(&self, server_issuers: &[TrustedIssuer]) -> Result<CompiledPolicy, PolicyError> {
        if self.access_policies.len() > MAX_ACCESS_POLICIES {
            return Err(err(format!(
                "{} access policies: a vault allows at most {MAX_ACCESS_POLICIES}",
                self.access_policies.len()
            )));
        }
        self.check_issuer_sources()?;
        let issuers = IssuerContext::new(&self.trusted_issuers(server_issuers))?;
        let mut access = Vec::with_capacity(self.access_policies.len());
        for (i, e) in self.access_policies.iter().enumerate() {
            check_principal(&e.principal)?;
            access.push(CompiledAccessEntry {
                grantee: Grantee::bind(
                    e.principal.clone(),
                    e.application.clone().filter(|a| !a.is_empty()),
                    &issuers,
                    &format!("accessPolicies[{i}] ({})", e.principal),
                )?,
                keys: e.permissions.keys.clone(),
                secrets: e.permissions.secrets.clone(),
                certificates: e.permissions.certificates.clone(),
            });
        }
        let mut assignments = Vec::with_capacity(self.role_assignments.len());
        for (i, a) in self.role_assignments.iter().enumerate() {
            check_principal(&a.principal)?;
            assignments.push(CompiledAssignment {
                grantee: Grantee::bind(
                    a.principal.clone(),
                    a.application.clone().filter(|a| !a.is_empty()),
                    &issuers,
                    &format!("roleAssignments[{i}] ({})", a.principal),
                )?,
                role: a.role,
                actions: a.role.actions(),
                scope: Scope::parse(a.scope.as_deref())?,
            });
        }
        let network = CompiledNetwork {
            default_deny: self.network.default_action == DefaultAction::Deny,
            allowed: self
                .network
                .ip_rules
                .iter()
                .map(|s| parse_net(s))
                .collect::<Result<_, _>>()?,
            trusted_proxies: self
                .network
                .trusted_proxies
                .iter()
                .map(|s| parse_net(s))
                .collect::<Result<_, _>>()?,
        };
        if let Some(sd) = &self.soft_delete
            && !(7..=90).contains(&sd.retention_days)
        {
            return Err(err(format!(
                "softDelete.retentionDays {} is outside 7-90",
                sd.retention_days
            )));
        }
        let t = &self.throttling;
        if t.enabled && (t.window_seconds == 0 || t.secret_writes == 0 || t.requests == 0) {
            return Err(err("throttling budgets and window must be positive"));
        }
        if !(1..=100).contains(&t.principal_share) {
            return Err(err(
                "throttling.principalShare must be a percentage from 1 to 100",
            ));
        }
        if let Some(id) = &self.identity {
            if id.issuers.is_empty() {
                return Err(err("identity.issuers must name at least one issuer"));
            }
            for i in &id.issuers {
                if i.issuer.is_empty() {
                    return Err(err("an issuer needs its issuer id"));
                }
                if let Some(u) = &i.jwks_uri
                    && !u.starts_with("https://")
                {
                    return Err(err(format!("issuer '{}': jwksUri must be https", i.issuer)));
                }
                if i.jwks_uri.is_none()
                    && i.jwks_file.is_none()
                    && !i.issuer.starts_with("https://")
                {
                    return Err(err(format!(
                        "issuer '{}': OIDC discovery needs an https issuer, or give jwksUri/jwksFile",
                        i.issuer
                    )));
                }
            }
        }
        if let Some(events) = &self.events {
            events.validate()?;
        }
        Ok(CompiledPolicy {
            doc: self.clone(),
            mode: self.authorization,
            access,
            assignments,
            network,
        })
    }
}

impl PolicyDocument {
    /// The document without authentication-header values (what is shown and logged).
    pub fn redacted(&self) -> PolicyDocument {
        let mut doc = self.clone();
        if let Some(e) = doc.events.as_mut() {
            e.redact();
        }
        doc
    }

    /// A subscription pushed without its header value keeps the value `stored` has for the
    /// same subscription and header name (so a document read back can be pushed again).
    pub fn keep_header_values_from(&mut self, stored: &PolicyDocument) {
        if let Some(events) = self.events.as_mut() {
            events.keep_header_values_from(stored.events.as_ref());
        }
    }

    /// The first subscription whose authentication header has no value.
    pub fn subscription_without_header_value(&self) -> Option<&str> {
        self.events.as_ref()?.subscription_without_header_value()
    }
}
