//! The token exchange's decisions, free of I/O: which form fields a request must carry, what
//! its `scope` asks for, which `client_id` its assertion may claim, and the claims of the
//! access token it gets.
//!
//! The request is Entra's client-credentials grant with a federated credential, as
//! `WorkloadIdentityCredential` sends it in every SDK:
//! `grant_type=client_credentials`, `client_id`, `scope=<resource>/.default`,
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
//! `client_assertion=<service-account token>`.

use super::entra::{EntraError, OAuthError};
use crate::policy::{Identity, Principal};
use crate::server::auth::AuthError;
use serde::{Deserialize, Serialize};

pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The audience of the service-account token a pod presents: the cloud's own.
pub const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The tenant in the authority `https://<token service>/adfs`. An ADFS-style authority is the
/// one form every MSAL treats as its own authority, with no instance discovery against the
/// public cloud (docs/workload-identity.md lists what each SDK does).
pub const DEFAULT_TENANT: &str = "adfs";
/// Scopes MSAL may add to any request; they ask for nothing here.
const OIDC_SCOPES: &[&str] = &["openid", "profile", "offline_access"];

/// The form fields the token endpoint reads; others (MSAL's `client_info`, `x-client-*`)
/// are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    pub grant_type: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub client_assertion_type: Option<String>,
    #[serde(default)]
    pub client_assertion: Option<String>,
}

/// A request that names everything a token needs; the assertion is still unverified.
#[derive(Debug, PartialEq, Eq)]
pub struct TokenRequest<'a> {
    pub client_id: &'a str,
    pub assertion: &'a str,
    /// The audience the access token is for (the scope without `/.default`).
    pub resource: String,
}

fn field<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, EntraError> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| EntraError::missing(name))
}

/// Checks the form of a token request.
pub fn check_form(form: &TokenForm) -> Result<TokenRequest<'_>, EntraError> {
    let grant = field(&form.grant_type, "grant_type")?;
    if grant != "client_credentials" {
        return Err(EntraError::new(
            OAuthError::UnsupportedGrantType,
            70003,
            format!(
                "The app requested an unsupported grant type '{grant}'; this token service supports client_credentials with a federated client assertion only."
            ),
        ));
    }
    let client_id = field(&form.client_id, "client_id")?;
    let scope = field(&form.scope, "scope")?;
    let assertion_type = field(&form.client_assertion_type, "client_assertion_type")?;
    if assertion_type != CLIENT_ASSERTION_TYPE {
        return Err(EntraError::new(
            OAuthError::InvalidRequest,
            50027,
            format!("client_assertion_type must be '{CLIENT_ASSERTION_TYPE}'."),
        ));
    }
    let assertion = field(&form.client_assertion, "client_assertion")?;
    Ok(TokenRequest {
        client_id,
        assertion,
        resource: resource_of(scope)?,
    })
}

/// The resource a client-credentials `scope` names: exactly one `<resource>/.default`, an
/// `https://` or `api://` URI (the vault's challenge resource, e.g. `https://team-a.svc`).
pub fn resource_of(scope: &str) -> Result<String, EntraError> {
    let invalid = |why: &str| {
        EntraError::new(
            OAuthError::InvalidScope,
            1002012,
            format!("The provided value for scope '{scope}' is not valid: {why}"),
        )
    };
    let mut wanted = scope
        .split(' ')
        .filter(|s| !s.is_empty() && !OIDC_SCOPES.contains(s));
    let (Some(one), None) = (wanted.next(), wanted.next()) else {
        return Err(invalid(
            "client credential flows must have exactly one scope, of the form <resource>/.default",
        ));
    };
    let resource = one
        .strip_suffix("/.default")
        .ok_or_else(|| invalid("client credential flows must have a scope value with /.default suffixed to the resource identifier"))?;
    let resource = resource.trim_end_matches('/');
    let scheme_ok = resource
        .strip_prefix("https://")
        .or_else(|| resource.strip_prefix("api://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
    if !scheme_ok {
        return Err(invalid("the resource must be an https:// or api:// URI"));
    }
    Ok(resource.to_string())
}

/// The subject a token carries for `identity` (the form the vault reads back).
pub fn subject_of(identity: &Identity) -> String {
    match identity {
        Identity::ServiceAccount { namespace, name } => {
            format!("system:serviceaccount:{namespace}:{name}")
        }
        Identity::User(id) | Identity::Application(id) => id.clone(),
    }
}

/// The `client_id` an assertion may claim: the service account's
/// `azure.workload.identity/client-id` annotation when it has one (manifests written for
/// Azure Workload Identity keep theirs), or the assertion's own subject
/// (`system:serviceaccount:<ns>:<name>`, kvault's convention, which the webhook injects when
/// there is no annotation and the CSI provider always sends). The client id is not carried
/// into the access token, so either form grants the same.
pub fn check_client_id(
    given: &str,
    identity: &Identity,
    annotated: Option<&str>,
) -> Result<(), EntraError> {
    let subject = subject_of(identity);
    let annotated = annotated.filter(|a| !a.is_empty());
    if given == subject || annotated == Some(given) {
        return Ok(());
    }
    let expected = match annotated {
        Some(a) => {
            format!("'{a}' (its azure.workload.identity/client-id annotation) or '{subject}'")
        }
        None => format!("'{subject}' (it has no azure.workload.identity/client-id annotation)"),
    };
    Err(EntraError::new(
        OAuthError::InvalidClient,
        70021,
        format!(
            "No matching federated identity record found for presented assertion. Assertion subject: '{subject}'; client_id '{given}' is not a client id of that identity: expected {expected}."
        ),
    ))
}

/// What a failed assertion check answers, with Entra's code for the same failure.
pub fn assertion_error(e: AuthError) -> EntraError {
    let (code, description) = match e {
        AuthError::Missing | AuthError::Malformed => {
            (50027, "The client assertion is not a well-formed JWT.")
        }
        AuthError::UntrustedIssuer => (
            700211,
            "No matching federated identity record found for presented assertion issuer: the assertion was not issued by the cluster's service-account issuer.",
        ),
        AuthError::Audience => (
            700212,
            "No matching federated identity record found for presented assertion audience.",
        ),
        AuthError::Expired | AuthError::NotYetValid => (
            700024,
            "Client assertion is not within its valid time range.",
        ),
        AuthError::Algorithm | AuthError::UnknownKey => (
            700027,
            "Client assertion failed signature validation: its signing key is unknown or its algorithm is not accepted.",
        ),
        AuthError::Invalid => (700027, "Client assertion failed signature validation."),
    };
    EntraError::new(OAuthError::InvalidClient, code, description)
}

/// The refusal of a token path naming another tenant than the service's.
pub fn unknown_tenant(tenant: &str) -> EntraError {
    EntraError::new(
        OAuthError::InvalidRequest,
        90002,
        format!(
            "Tenant '{tenant}' not found. This token service serves one tenant; check AZURE_TENANT_ID."
        ),
    )
}

/// The claims of an issued access token.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The tenant, as in Entra tokens.
    pub tid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// A unique id, so two tokens issued in one second differ (and an audit trail can
    /// name one).
    pub uti: String,
}

/// The access token for a verified assertion. It names the same principal (subject and
/// groups); the application (`client_id`) is not carried, so a grant's optional
/// application keeps meaning the application a person signed in through.
pub fn access_claims(
    issuer: &str,
    tenant: &str,
    principal: &Principal,
    resource: &str,
    now: i64,
    ttl_secs: i64,
    uti: String,
) -> AccessClaims {
    AccessClaims {
        iss: issuer.to_string(),
        aud: resource.to_string(),
        sub: subject_of(&principal.identity),
        iat: now,
        nbf: now,
        exp: now + ttl_secs,
        tid: tenant.to_string(),
        groups: principal.groups.clone(),
        uti,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> TokenForm {
        let mut f = TokenForm::default();
        for (k, v) in pairs {
            let v = Some(v.to_string());
            match *k {
                "grant_type" => f.grant_type = v,
                "client_id" => f.client_id = v,
                "scope" => f.scope = v,
                "client_assertion_type" => f.client_assertion_type = v,
                "client_assertion" => f.client_assertion = v,
                _ => {}
            }
        }
        f
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", "system:serviceaccount:team-a:web"),
            ("scope", "https://team-a.svc/.default"),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", "a.b.c"),
        ]
    }

    #[test]
    fn a_workload_identity_request_names_its_resource() {
        let f = form(&good());
        let r = check_form(&f).unwrap();
        assert_eq!(r.resource, "https://team-a.svc");
        assert_eq!(r.client_id, "system:serviceaccount:team-a:web");
        assert_eq!(r.assertion, "a.b.c");
    }

    #[test]
    fn every_missing_field_is_named() {
        for missing in [
            "grant_type",
            "client_id",
            "scope",
            "client_assertion_type",
            "client_assertion",
        ] {
            let pairs: Vec<_> = good().into_iter().filter(|(k, _)| *k != missing).collect();
            let e = check_form(&form(&pairs)).unwrap_err();
            assert_eq!(e.code, 900144, "{missing}");
            assert!(
                e.description.contains(missing),
                "{missing}: {}",
                e.description
            );
        }
    }

    #[test]
    fn other_grants_and_assertion_types_are_refused() {
        let mut pairs = good();
        pairs[0] = ("grant_type", "password");
        assert_eq!(
            check_form(&form(&pairs)).unwrap_err().error,
            OAuthError::UnsupportedGrantType
        );
        let mut pairs = good();
        pairs[3] = ("client_assertion_type", "urn:other");
        assert_eq!(check_form(&form(&pairs)).unwrap_err().code, 50027);
    }

    #[test]
    fn scopes_follow_the_client_credentials_rules() {
        assert_eq!(
            resource_of("https://team-a.svc/.default").unwrap(),
            "https://team-a.svc"
        );
        assert_eq!(
            resource_of("openid https://kvault.localhost:8443/.default offline_access").unwrap(),
            "https://kvault.localhost:8443"
        );
        assert_eq!(
            resource_of("api://kvault/.default").unwrap(),
            "api://kvault"
        );
        for bad in [
            "https://team-a.svc",
            "https://a.svc/.default https://b.svc/.default",
            "openid",
            "http://team-a.svc/.default",
            "/.default",
            "https:///.default",
        ] {
            let e = resource_of(bad).unwrap_err();
            assert_eq!(e.error, OAuthError::InvalidScope, "{bad}");
        }
    }

    #[test]
    fn client_id_is_the_annotation_or_the_subject() {
        let sa = Identity::ServiceAccount {
            namespace: "team-a".into(),
            name: "web".into(),
        };
        check_client_id("system:serviceaccount:team-a:web", &sa, None).unwrap();
        check_client_id("1b2c", &sa, Some("1b2c")).unwrap();
        check_client_id("system:serviceaccount:team-a:web", &sa, Some("1b2c")).unwrap();
        let e = check_client_id("9f9f", &sa, Some("1b2c")).unwrap_err();
        assert_eq!((e.error, e.code), (OAuthError::InvalidClient, 70021));
        assert!(e.description.contains("1b2c"), "{}", e.description);
        let e = check_client_id("system:serviceaccount:team-b:web", &sa, None).unwrap_err();
        assert_eq!(e.code, 70021);
        check_client_id("dev-admin", &Identity::User("dev-admin".into()), None).unwrap();
    }

    #[test]
    fn assertion_failures_map_to_entra_codes() {
        assert_eq!(assertion_error(AuthError::Expired).code, 700024);
        assert_eq!(assertion_error(AuthError::Audience).code, 700212);
        assert_eq!(assertion_error(AuthError::UntrustedIssuer).code, 700211);
        assert_eq!(assertion_error(AuthError::UnknownKey).code, 700027);
        assert!(
            [
                AuthError::Missing,
                AuthError::Malformed,
                AuthError::Invalid,
                AuthError::NotYetValid,
                AuthError::Algorithm
            ]
            .into_iter()
            .all(|e| assertion_error(e).error == OAuthError::InvalidClient)
        );
    }

    #[test]
    fn the_access_token_names_the_same_principal_for_the_resource() {
        let p = Principal {
            identity: Identity::ServiceAccount {
                namespace: "team-a".into(),
                name: "web".into(),
            },
            groups: vec!["g".into()],
            application: None,
            issuer: "https://kubernetes.default.svc".into(),
        };
        let c = access_claims(
            "https://id",
            "adfs",
            &p,
            "https://team-a.svc",
            100,
            900,
            "u".into(),
        );
        assert_eq!(c.sub, "system:serviceaccount:team-a:web");
        assert_eq!(c.aud, "https://team-a.svc");
        assert_eq!((c.iat, c.nbf, c.exp), (100, 100, 1000));
        assert_eq!(c.groups, vec!["g".to_string()]);
        assert_eq!(c.iss, "https://id");
    }
}
