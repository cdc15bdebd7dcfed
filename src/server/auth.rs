//! Authentication: every request carries `Authorization: Bearer <JWT>`, verified on its own.
//!
//! Signature algorithms are restricted to the RSA and ECDSA families (never `none`, never
//! HMAC, so a public key can never be used as a MAC secret). `iss` must be a trusted issuer,
//! `aud` one of the vault's audiences, `exp`/`nbf` hold with a small leeway. Keys come from
//! each issuer's JWKS (a file, an HTTPS URL, or OIDC discovery), re-fetched — at most once per
//! refresh interval — when a token names an unknown `kid`. Verified identities are cached by
//! the token's SHA-256 until the token expires, so a busy client costs one verification.

use crate::clock::SharedClock;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Accepted signature algorithms.
pub const ALLOWED_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

const LEEWAY_SECS: u64 = 60;
const CACHE_CAPACITY: usize = 10_000;

pub use crate::policy::principal::{Identity, Principal};

/// Where an issuer's signing keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A JWKS document on disk, re-read on an unknown `kid`.
    File(PathBuf),
    /// A JWKS document over HTTPS.
    Url(String),
    /// OIDC discovery: `<issuer>/.well-known/openid-configuration` names the JWKS URL.
    Discovery,
    /// Keys known up front (the dev issuer).
    Static(JwkSet),
}

#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub issuer: String,
    pub jwks: JwksSource,
    /// Whether this issuer may assert `system:serviceaccount:` subjects (the cluster's own
    /// issuer). From any other issuer such a subject is an ordinary user, so a people's
    /// OIDC provider can never impersonate a workload.
    pub service_accounts: bool,
    /// Another trusted issuer whose principals this one re-issues (the workload-identity
    /// token service speaks for the cluster issuer): its callers are recorded under that
    /// issuer's name, so grants bound to it match them.
    pub speaks_for: Option<String>,
}

impl IssuerConfig {
    /// Parses `ISSUER=SOURCE` where SOURCE is `https://…` (a JWKS URL) or a file path, or
    /// a bare `ISSUER` (OIDC discovery). The issuer is a people's issuer: its
    /// `system:serviceaccount:` subjects are users (see [`IssuerConfig::parse_cluster`]).
    pub fn parse(spec: &str) -> Result<Self, String> {
        Self::parse_as(spec, false)
    }

    /// [`IssuerConfig::parse`] for the cluster's service-account issuer, the one issuer
    /// whose `system:serviceaccount:` subjects are service accounts.
    pub fn parse_cluster(spec: &str) -> Result<Self, String> {
        Self::parse_as(spec, true)
    }

    /// What grants need to know of this issuer; none for one that speaks for another
    /// (grants are bound to the issuer it speaks for).
    pub fn trusted(&self) -> Option<crate::policy::TrustedIssuer> {
        self.speaks_for
            .is_none()
            .then(|| crate::policy::TrustedIssuer {
                issuer: self.issuer.clone(),
                service_accounts: self.service_accounts,
            })
    }

    fn parse_as(spec: &str, service_accounts: bool) -> Result<Self, String> {
        let (issuer, source) = match spec.split_once('=') {
            None => (spec, None),
            Some((i, s)) => (i, Some(s)),
        };
        if issuer.is_empty() {
            return Err(format!("issuer spec '{spec}' has an empty issuer"));
        }
        let jwks = match source {
            None => {
                if !issuer.starts_with("https://") {
                    return Err(format!(
                        "issuer '{issuer}': OIDC discovery needs an https:// issuer, or give ISSUER=JWKS_FILE_OR_URL"
                    ));
                }
                JwksSource::Discovery
            }
            Some(s) if s.starts_with("https://") => JwksSource::Url(s.to_string()),
            Some(s) if s.starts_with("http://") => {
                return Err(format!(
                    "issuer '{issuer}': JWKS must be fetched over https"
                ));
            }
            Some("") => return Err(format!("issuer '{issuer}': empty JWKS source")),
            Some(s) => JwksSource::File(PathBuf::from(s.strip_prefix("file:").unwrap_or(s))),
        };
        Ok(Self {
            issuer: issuer.to_string(),
            jwks,
            service_accounts,
            speaks_for: None,
        })
    }
}

#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum AuthError {
    #[error("Request is missing a Bearer or PoP token.")]
    Missing,
    #[error("The token is malformed.")]
    Malformed,
    #[error("The token was not issued by a trusted issuer.")]
    UntrustedIssuer,
    #[error("The token's signing algorithm is not accepted.")]
    Algorithm,
    #[error("The token's signing key is unknown.")]
    UnknownKey,
    #[error("AKV10022: Invalid audience.")]
    Audience,
    #[error("The token has expired.")]
    Expired,
    #[error("The token is not valid yet.")]
    NotYetValid,
    #[error("The token failed validation.")]
    Invalid,
}

impl AuthError {
    /// A short label for metrics.
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::UntrustedIssuer => "issuer",
            AuthError::Algorithm => "algorithm",
            AuthError::UnknownKey => "unknown_key",
            AuthError::Audience => "audience",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::Invalid => "invalid",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("reading JWKS file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing JWKS from {from}: {reason}")]
    Parse { from: String, reason: String },
    #[error("fetching {url}: {reason}")]
    Fetch { url: String, reason: String },
}

struct IssuerState {
    config: IssuerConfig,
    keys: RwLock<Arc<JwkSet>>,
    last_refresh: Mutex<Option<Instant>>,
}

struct Cached {
    principal: Arc<Principal>,
    exp: i64,
}

pub struct Authenticator {
    issuers: Vec<IssuerState>,
    audiences: Vec<String>,
    refresh_interval: Duration,
    http: reqwest::Client,
    clock: SharedClock,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    exp: i64,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    groups: Option<Vec<String>>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    appid: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
}

#[derive(Deserialize)]
struct IssuerOnly {
    iss: String,
}

impl Authenticator {
    /// Loads every issuer's keys. File and static sources must load now (a bad file is a
    /// configuration error); remote sources that cannot be reached yet are retried on demand.
    pub async fn new(
        issuers: Vec<IssuerConfig>,
        audiences: Vec<String>,
        refresh_interval: Duration,
        http: reqwest::Client,
        clock: SharedClock,
    ) -> Result<Self, JwksError> {
        let mut states = Vec::with_capacity(issuers.len());
        for config in issuers {
            let keys = match &config.jwks {
                JwksSource::File(_) | JwksSource::Static(_) => fetch_jwks(&config, &http).await?,
                JwksSource::Url(_) | JwksSource::Discovery => {
                    match fetch_jwks(&config, &http).await {
                        Ok(k) => k,
                        Err(e) => {
                            tracing::warn!(issuer = %config.issuer, error = %e, "issuer keys not reachable yet; will retry on demand");
                            JwkSet { keys: vec![] }
                        }
                    }
                }
            };
            let loaded = !keys.keys.is_empty();
            states.push(IssuerState {
                config,
                keys: RwLock::new(Arc::new(keys)),
                last_refresh: Mutex::new(loaded.then(Instant::now)),
            });
        }
        Ok(Self {
            issuers: states,
            audiences,
            refresh_interval,
            http,
            clock,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Verifies the `Authorization` header value and returns the caller.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Arc<Principal>, AuthError> {
        let token = header
            .and_then(|h| {
                let (scheme, rest) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let digest = crate::crypto::sha256(token.as_bytes());
        let now = self.clock.now();
        if let Some(p) = self.cached(&digest, now) {
            return Ok(p);
        }
        let (principal, exp) = self.verify(token).await?;
        let principal = Arc::new(principal);
        self.remember(digest, principal.clone(), exp, now);
        Ok(principal)
    }

    fn cached(&self, digest: &[u8; 32], now: i64) -> Option<Arc<Principal>> {
        let cache = self.cache.lock().ok()?;
        let hit = cache.get(digest)?;
        (hit.exp > now).then(|| hit.principal.clone())
    }

    fn remember(&self, digest: [u8; 32], principal: Arc<Principal>, exp: i64, now: i64) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, c| c.exp > now);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(digest, Cached { principal, exp });
    }

    async fn verify(&self, token: &str) -> Result<(Principal, i64), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::Algorithm);
        }
        // Only to pick the issuer's keys; everything is verified below.
        let unverified: IssuerOnly = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| AuthError::Malformed)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == unverified.iss)
            .ok_or(AuthError::UntrustedIssuer)?;
        let jwk = match self.find_key(issuer, header.kid.as_deref(), header.alg) {
            Some(k) => k,
            None => {
                self.refresh(issuer).await;
                self.find_key(issuer, header.kid.as_deref(), header.alg)
                    .ok_or(AuthError::UnknownKey)?
            }
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::UnknownKey)?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer.config.issuer.as_str()]);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => AuthError::Expired,
                K::ImmatureSignature => AuthError::NotYetValid,
                K::InvalidAudience => AuthError::Audience,
                K::InvalidIssuer => AuthError::UntrustedIssuer,
                K::InvalidAlgorithm => AuthError::Algorithm,
                _ => AuthError::Invalid,
            }
        })?;
        let claims = data.claims;
        let mut principal = principal_from_claims(&claims, issuer.config.service_accounts)
            .ok_or(AuthError::Invalid)?;
        if let Some(vouched) = &issuer.config.speaks_for {
            principal.issuer = vouched.clone();
        }
        Ok((principal, claims.exp))
    }

    fn find_key(&self, issuer: &IssuerState, kid: Option<&str>, alg: Algorithm) -> Option<Jwk> {
        let keys = issuer.keys.read().ok()?.clone();
        let usable = |k: &&Jwk| {
            k.common
                .key_algorithm
                .and_then(|a| Algorithm::try_from(a).ok())
                .is_none_or(|a| a == alg)
        };
        match kid {
            Some(kid) => keys
                .keys
                .iter()
                .filter(usable)
                .find(|k| k.common.key_id.as_deref() == Some(kid))
                .cloned(),
            // Without a kid only an unambiguous key set will do.
            None => {
                let mut candidates = keys.keys.iter().filter(usable);
                let first = candidates.next()?;
                candidates.next().is_none().then(|| first.clone())
            }
        }
    }

    /// Re-fetches an issuer's keys unless that happened less than the refresh interval ago.
    async fn refresh(&self, issuer: &IssuerState) {
        {
            let Ok(mut last) = issuer.last_refresh.lock() else {
                return;
            };
            if let Some(t) = *last
                && t.elapsed() < self.refresh_interval
            {
                return;
            }
            *last = Some(Instant::now());
        }
        match fetch_jwks(&issuer.config, &self.http).await {
            Ok(keys) => {
                if let Ok(mut k) = issuer.keys.write() {
                    *k = Arc::new(keys);
                }
                tracing::info!(issuer = %issuer.config.issuer, "refreshed issuer keys");
            }
            Err(e) => {
                tracing::warn!(issuer = %issuer.config.issuer, error = %e, "refreshing issuer keys failed")
            }
        }
    }
}

fn principal_from_claims(c: &Claims, service_accounts: bool) -> Option<Principal> {
    let application = c
        .azp
        .clone()
        .or_else(|| c.appid.clone())
        .or_else(|| c.client_id.clone());
    let identity = match (c.oid.as_deref(), c.sub.as_deref()) {
        (_, Some(sub)) if service_accounts && sub.starts_with("system:serviceaccount:") => {
            let rest = &sub["system:serviceaccount:".len()..];
            let (ns, name) = rest.split_once(':')?;
            if ns.is_empty() || name.is_empty() || name.contains(':') {
                return None;
            }
            Identity::ServiceAccount {
                namespace: ns.to_string(),
                name: name.to_string(),
            }
        }
        (Some(oid), _) | (None, Some(oid)) => {
            if Some(oid) == application.as_deref() {
                Identity::Application(oid.to_string())
            } else {
                Identity::User(oid.to_string())
            }
        }
        (None, None) => Identity::Application(application.clone()?),
    };
    Some(Principal {
        identity,
        groups: c.groups.clone().unwrap_or_default(),
        application,
        issuer: c.iss.clone(),
    })
}

async fn fetch_jwks(config: &IssuerConfig, http: &reqwest::Client) -> Result<JwkSet, JwksError> {
    let parse = |from: &str, bytes: &[u8]| -> Result<JwkSet, JwksError> {
        serde_json::from_slice::<JwkSet>(bytes).map_err(|e| JwksError::Parse {
            from: from.to_string(),
            reason: e.to_string(),
        })
    };
    match &config.jwks {
        JwksSource::Static(set) => Ok(set.clone()),
        JwksSource::File(path) => {
            let bytes = tokio::fs::read(path).await.map_err(|e| JwksError::File {
                path: path.display().to_string(),
                source: e,
            })?;
            parse(&path.display().to_string(), &bytes)
        }
        JwksSource::Url(url) => {
            let bytes = get_bytes(http, url).await?;
            parse(url, &bytes)
        }
        JwksSource::Discovery => {
            #[derive(Deserialize)]
            struct Discovery {
                jwks_uri: String,
            }
            let url = format!(
                "{}/.well-known/openid-configuration",
                config.issuer.trim_end_matches('/')
            );
            let bytes = get_bytes(http, &url).await?;
            let doc: Discovery = serde_json::from_slice(&bytes).map_err(|e| JwksError::Parse {
                from: url.clone(),
                reason: e.to_string(),
            })?;
            if !doc.jwks_uri.starts_with("https://") {
                return Err(JwksError::Parse {
                    from: url,
                    reason: "jwks_uri is not https".into(),
                });
            }
            let bytes = get_bytes(http, &doc.jwks_uri).await?;
            parse(&doc.jwks_uri, &bytes)
        }
    }
}

async fn get_bytes(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, JwksError> {
    let fail = |reason: String| JwksError::Fetch {
        url: url.to_string(),
        reason,
    };
    let resp = http
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP {}", resp.status())));
    }
    // A JWKS or discovery document is a few KiB; an issuer cannot make the vault buffer more.
    crate::client::read_capped(resp, MAX_ISSUER_DOCUMENT_BYTES)
        .await
        .map_err(|e| fail(e.to_string()))
}

/// The largest OIDC discovery or JWKS document read from an issuer.
const MAX_ISSUER_DOCUMENT_BYTES: usize = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: Option<&str>, oid: Option<&str>, azp: Option<&str>) -> Claims {
        Claims {
            iss: "i".into(),
            exp: 0,
            sub: sub.map(Into::into),
            oid: oid.map(Into::into),
            groups: Some(vec!["g1".into()]),
            azp: azp.map(Into::into),
            appid: None,
            client_id: None,
        }
    }

    #[test]
    fn service_account_subjects_become_service_account_principals() {
        let p = principal_from_claims(
            &claims(Some("system:serviceaccount:team-a:web"), None, None),
            true,
        )
        .unwrap();
        assert_eq!(
            p.identity,
            Identity::ServiceAccount {
                namespace: "team-a".into(),
                name: "web".into()
            }
        );
        assert_eq!(p.groups, vec!["g1".to_string()]);
        assert!(
            principal_from_claims(&claims(Some("system:serviceaccount:bad"), None, None), true)
                .is_none()
        );
        // Only the cluster's issuer speaks for service accounts: from any other issuer the
        // subject is an ordinary user, which no ServiceAccount grant matches.
        let p = principal_from_claims(
            &claims(Some("system:serviceaccount:kube-system:admin"), None, None),
            false,
        )
        .unwrap();
        assert_eq!(
            p.identity,
            Identity::User("system:serviceaccount:kube-system:admin".into())
        );
    }

    #[test]
    fn users_prefer_oid_and_keep_their_application() {
        let p = principal_from_claims(&claims(Some("s"), Some("o"), Some("app")), true).unwrap();
        assert_eq!(p.identity, Identity::User("o".into()));
        assert_eq!(p.application.as_deref(), Some("app"));
        assert_eq!(p.to_string(), "User o (application app)");
        let app = principal_from_claims(&claims(Some("app"), None, Some("app")), true).unwrap();
        assert_eq!(app.identity, Identity::Application("app".into()));
        assert_eq!(app.to_string(), "Application app");
    }

    #[test]
    fn issuer_specs_parse() {
        assert!(matches!(
            IssuerConfig::parse("https://i=https://i/keys")
                .unwrap()
                .jwks,
            JwksSource::Url(_)
        ));
        assert!(matches!(
            IssuerConfig::parse("https://i=/etc/jwks.json")
                .unwrap()
                .jwks,
            JwksSource::File(_)
        ));
        assert!(matches!(
            IssuerConfig::parse("https://i").unwrap().jwks,
            JwksSource::Discovery
        ));
        assert!(IssuerConfig::parse("https://i=http://plain").is_err());
        assert!(IssuerConfig::parse_cluster("https://i=http://plain").is_err());
        assert!(IssuerConfig::parse("=x").is_err());
        assert!(IssuerConfig::parse("plain-issuer").is_err());
    }

    #[test]
    fn only_the_cluster_issuer_asserts_service_accounts() {
        // `--issuer`: a people's issuer, whatever its source.
        for spec in [
            "https://i=https://i/keys",
            "https://i=/etc/jwks.json",
            "https://i",
        ] {
            assert!(
                !IssuerConfig::parse(spec).unwrap().service_accounts,
                "{spec}"
            );
        }
        // `--cluster-issuer`: the same syntax, with service accounts.
        let cluster = IssuerConfig::parse_cluster("https://k=/etc/jwks.json").unwrap();
        assert!(cluster.service_accounts);
        assert!(matches!(cluster.jwks, JwksSource::File(_)));
        assert_eq!(
            cluster.trusted().unwrap(),
            crate::policy::TrustedIssuer::cluster("https://k")
        );
        // So a people's token naming the operator's service account is a mere user.
        let people = IssuerConfig::parse("https://dex=/jwks.json").unwrap();
        let p = principal_from_claims(
            &claims(
                Some("system:serviceaccount:kvault-system:kvault-operator"),
                None,
                None,
            ),
            people.service_accounts,
        )
        .unwrap();
        assert!(matches!(p.identity, Identity::User(_)));
    }
}
