//! Which issuer a grant trusts.
//!
//! A token's subject means something only together with the issuer that vouched for it:
//! `sub=alice` from a people's IdP and `sub=alice` from another are different people. So
//! every compiled grant is bound to exactly one issuer, and matches only that issuer's
//! tokens:
//!
//! - a `ServiceAccount` grant: the one issuer that asserts service accounts (the cluster's);
//! - a `User` / `Group` / `Application` grant naming an issuer: that issuer;
//! - one naming none: the vault's single people issuer (every issuer that does not assert
//!   service accounts); with no people issuer at all, the cluster issuer (single-issuer
//!   setups such as `kvault dev` rely on this); with several, the grant is ambiguous and
//!   the document is refused.

use super::error::PolicyError;
use super::principal::Principal;

/// One issuer the vault trusts, as grants see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    pub issuer: String,
    /// Whether `system:serviceaccount:` subjects from this issuer are service accounts.
    pub service_accounts: bool,
}

impl TrustedIssuer {
    /// The cluster's issuer: the one that asserts service accounts.
    pub fn cluster(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            service_accounts: true,
        }
    }

    /// A people's issuer (an OIDC provider): its subjects are always users.
    pub fn people(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            service_accounts: false,
        }
    }
}

/// The issuers of one vault, split by what they may assert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuerContext {
    cluster: Option<String>,
    people: Vec<String>,
}

/// What a grant names, as far as its issuer is concerned (the document's `PrincipalKind`
/// folded to what matters here, so this module needs nothing of the document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    /// Only the cluster issuer asserts these.
    ServiceAccount,
    /// A user, group or application: any issuer may assert these.
    Other,
}

/// The issuer one compiled grant trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerBinding {
    /// Only tokens of this issuer.
    Issuer(String),
    /// No trusted issuer can speak for this grant (a ServiceAccount grant on a vault
    /// without a cluster issuer): it matches nothing.
    Nobody,
}

impl IssuerBinding {
    pub fn admits(&self, p: &Principal) -> bool {
        matches!(self, IssuerBinding::Issuer(i) if *i == p.issuer)
    }
}

impl IssuerContext {
    /// Refuses more than one service-account issuer: two clusters' `system:serviceaccount:`
    /// subjects would collide exactly like two IdPs' users do.
    pub fn new(issuers: &[TrustedIssuer]) -> Result<Self, PolicyError> {
        let mut me = Self::default();
        for i in issuers {
            if i.service_accounts {
                if let Some(first) = &me.cluster {
                    return Err(PolicyError(format!(
                        "issuers {first} and {} both assert service accounts; only the cluster's issuer may",
                        i.issuer
                    )));
                }
                me.cluster = Some(i.issuer.clone());
            } else {
                me.people.push(i.issuer.clone());
            }
        }
        Ok(me)
    }

    /// The issuer a grant of `kind` naming `named` (or no issuer) is bound to; `what` names
    /// the grant in the refusal of an ambiguous one (e.g. "roleAssignments[2] (User alice)").
    pub fn bind(
        &self,
        kind: SubjectKind,
        named: Option<&str>,
        what: &str,
    ) -> Result<IssuerBinding, PolicyError> {
        let named = named.filter(|i| !i.is_empty());
        if kind == SubjectKind::ServiceAccount {
            return match (named, &self.cluster) {
                (Some(n), Some(c)) if n != c => Err(PolicyError(format!(
                    "{what} names issuer {n}, which does not assert service accounts; only the cluster issuer {c} does"
                ))),
                (Some(n), None) => Err(PolicyError(format!(
                    "{what} names issuer {n}, which does not assert service accounts; the vault trusts no issuer that does"
                ))),
                (_, Some(c)) => Ok(IssuerBinding::Issuer(c.clone())),
                (None, None) => Ok(IssuerBinding::Nobody),
            };
        }
        if let Some(n) = named {
            return Ok(IssuerBinding::Issuer(n.to_string()));
        }
        match (self.people.as_slice(), &self.cluster) {
            ([only], _) => Ok(IssuerBinding::Issuer(only.clone())),
            ([], Some(c)) => Ok(IssuerBinding::Issuer(c.clone())),
            ([], None) => Ok(IssuerBinding::Nobody),
            (several, _) => Err(PolicyError(format!(
                "{what} names no issuer, and the vault trusts several people issuers ({}): name the one whose tokens it trusts (principal.issuer)",
                several.join(", ")
            ))),
        }
    }
}
