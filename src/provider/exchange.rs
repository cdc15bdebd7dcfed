//! The workload-identity path of a mount: the pod's service-account token for ONE fixed
//! audience (`api://AzureADTokenExchange`, requested once in the CSIDriver's
//! `tokenRequests`) is exchanged at kvault's token service for an access token for the
//! vault's audience, and only that access token goes to the vault. A pod's own token is
//! thus never sent to a `vaultUrl` a tenant names.
//!
//! Exchanged tokens are cached per (pod token, client id, resource) until 60 s before they expire,
//! in a bounded map keyed by a SHA-256 digest (never the token itself).

use super::error::{ErrorCode, MountError, MountResult};
use super::metrics::{ExchangeLabel, ProviderMetrics};
use crate::client::ClientError;
use crate::client::identity::{exchange_token, identity_http_client};
use crate::error_chain::{render, with_cause};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The audience of the pod tokens the provider exchanges, as the cloud's.
pub const DEFAULT_IDENTITY_AUDIENCE: &str = crate::identity::exchange::DEFAULT_AUDIENCE;

/// An exchanged token is reused until this long before it expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Exchanged tokens kept at most.
pub const MAX_CACHED_TOKENS: usize = 4096;

#[derive(Debug, Clone)]
pub struct ExchangeSettings {
    /// The token service's authority (`https://<svc>/adfs`).
    pub authority: String,
    /// The audience of the pod's token that is exchanged.
    pub audience: String,
    pub request_timeout: Duration,
    pub max_cached: usize,
}

struct Cached {
    token: Zeroizing<String>,
    /// Unix seconds: the token's expiry, for the fetch cache's bound.
    expires_at: i64,
    reuse_until: Instant,
}

/// The client id the token service accepts for a pod's service account: its subject.
pub fn client_id(namespace: &str, service_account: &str) -> MountResult<String> {
    if namespace.trim().is_empty() || service_account.trim().is_empty() {
        return Err(MountError::invalid(
            "the driver passed no pod namespace or service account (csi.storage.k8s.io/pod.namespace, csi.storage.k8s.io/serviceAccount.name); the secrets-store.csi.k8s.io CSIDriver must have podInfoOnMount: true",
        ));
    }
    Ok(format!(
        "system:serviceaccount:{}:{}",
        namespace.trim(),
        service_account.trim()
    ))
}

/// The cache key of an exchange: SHA-256 over the pod token, the client id and the
/// resource (each length-prefixed, so no two triples share a key).
pub fn cache_key(pod_token: &str, client_id: &str, resource: &str) -> [u8; 32] {
    let mut input = Zeroizing::new(Vec::with_capacity(
        pod_token.len() + client_id.len() + resource.len() + 24,
    ));
    for part in [pod_token, client_id, resource] {
        input.extend_from_slice(&(part.len() as u64).to_be_bytes());
        input.extend_from_slice(part.as_bytes());
    }
    crate::crypto::sha256(&input)
}

/// Until when an answer of `expires_in` obtained at `now` is reused (`None`: not at all).
pub fn reuse_until(now: Instant, expires_in: Duration) -> Option<Instant> {
    expires_in
        .checked_sub(REFRESH_MARGIN)
        .filter(|d| !d.is_zero())
        .map(|d| now + d)
}

/// The metric label of an exchange's failure.
fn failure_label(e: &ClientError) -> &'static str {
    match e {
        ClientError::Identity { error, .. } => match error.as_str() {
            "invalid_request" => "invalid_request",
            "invalid_client" => "invalid_client",
            "invalid_scope" => "invalid_scope",
            "unauthorized_client" => "unauthorized_client",
            "unsupported_grant_type" => "unsupported_grant_type",
            "temporarily_unavailable" => "temporarily_unavailable",
            _ => "other_error",
        },
        ClientError::Transport(_) => "transport",
        ClientError::Decode { .. } => "invalid_answer",
        _ => "client_error",
    }
}

/// The pod-facing error of a failed exchange: the AADSTS code and description, and what
/// to check. Never a token.
pub fn describe_exchange_error(
    e: &ClientError,
    authority: &str,
    audience: &str,
    resource: &str,
) -> MountError {
    match e {
        ClientError::Identity {
            status,
            error,
            description,
            codes,
        } => {
            let description = match codes.first() {
                Some(code) if !description.starts_with("AADSTS") => {
                    format!("AADSTS{code}: {description}")
                }
                _ => description.clone(),
            };
            // Room in the message (it is capped) for what to check.
            let description: String = description.chars().take(300).collect();
            let code = if *status >= 500 {
                ErrorCode::VaultUnavailable
            } else {
                ErrorCode::Unauthorized
            };
            MountError::new(
                code,
                format!(
                    "the token service {authority} refused to exchange the pod's service-account token (audience '{audience}') for the vault's audience '{resource}': {error}: {description} (HTTP {status}); check that the CSIDriver's tokenRequests has the audience '{audience}', that the token service trusts the cluster's service-account issuer, and that '{resource}' is the vault's audience (the SecretProviderClass parameter 'audience', default: the vault's URL)"
                ),
            )
        }
        ClientError::Transport(cause) => MountError::new(
            ErrorCode::VaultUnavailable,
            format!(
                "cannot reach the token service at {authority}: {}; check the provider's --identity-authority and that the operator's webhook Service answers",
                render(cause.as_ref())
            ),
        ),
        ClientError::Decode { what, source } => MountError::new(
            ErrorCode::VaultUnavailable,
            format!(
                "unexpected answer from the token service at {authority}: {}",
                with_cause(what, source.as_ref())
            ),
        ),
        other => MountError::new(
            ErrorCode::VaultUnavailable,
            format!("cannot exchange the pod's token at {authority}: {other}"),
        ),
    }
}

pub struct Exchanger {
    settings: ExchangeSettings,
    /// One HTTPS client per CA bundle digest.
    clients: Mutex<HashMap<[u8; 32], reqwest::Client>>,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    metrics: Arc<ProviderMetrics>,
}

impl Exchanger {
    pub fn new(settings: ExchangeSettings, metrics: Arc<ProviderMetrics>) -> Self {
        Self {
            settings,
            clients: Mutex::new(HashMap::new()),
            cache: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The audience of the pod token to select.
    pub fn audience(&self) -> &str {
        &self.settings.audience
    }

    pub fn authority(&self) -> &str {
        &self.settings.authority
    }

    fn count(&self, result: &'static str) {
        self.metrics
            .token_exchanges
            .get_or_create(&ExchangeLabel { result })
            .inc();
    }

    fn http(&self, ca_pem: &[u8]) -> MountResult<reqwest::Client> {
        let digest = crate::crypto::sha256(ca_pem);
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| MountError::new(ErrorCode::Internal, "client cache poisoned"))?;
        if let Some(c) = clients.get(&digest) {
            return Ok(c.clone());
        }
        let c = identity_http_client(ca_pem, self.settings.request_timeout).map_err(|e| {
            MountError::new(
                ErrorCode::VaultUnavailable,
                format!(
                    "cannot set up a client for the token service at {}: {e}",
                    self.settings.authority
                ),
            )
        })?;
        if clients.len() >= 16 {
            clients.clear();
        }
        clients.insert(digest, c.clone());
        Ok(c)
    }

    /// A cached exchange that is still fresh.
    fn cached(&self, key: &[u8; 32], now: Instant) -> Option<(Zeroizing<String>, i64)> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(key)
            .filter(|c| now < c.reuse_until)
            .map(|c| (c.token.clone(), c.expires_at))
    }

    fn remember(&self, key: [u8; 32], entry: Cached) {
        if let Ok(mut cache) = self.cache.lock() {
            let now = Instant::now();
            if cache.len() >= self.settings.max_cached.max(1) {
                cache.retain(|_, c| now < c.reuse_until);
            }
            if cache.len() >= self.settings.max_cached.max(1) {
                cache.clear();
            }
            cache.insert(key, entry);
        }
    }

    /// Drops entries past their reuse time (called periodically).
    pub fn sweep(&self) {
        let now = Instant::now();
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, c| now < c.reuse_until);
        }
    }

    pub fn cache_len(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// The vault token for `resource`, exchanged for `pod_token` (or reused), and its
    /// expiry in Unix seconds.
    pub async fn exchange(
        &self,
        ca_pem: &[u8],
        pod_token: &str,
        client_id: &str,
        resource: &str,
    ) -> MountResult<(Zeroizing<String>, i64)> {
        let key = cache_key(pod_token, client_id, resource);
        let now = Instant::now();
        if let Some(hit) = self.cached(&key, now) {
            self.count("cached");
            return Ok(hit);
        }
        let http = self.http(ca_pem)?;
        let answer = exchange_token(
            &http,
            &self.settings.authority,
            client_id,
            pod_token,
            resource,
        )
        .await
        .map_err(|e| {
            self.count(failure_label(&e));
            tracing::warn!(
                authority = %self.settings.authority,
                resource,
                client_id,
                error = %e,
                "token exchange failed"
            );
            describe_exchange_error(
                &e,
                &self.settings.authority,
                &self.settings.audience,
                resource,
            )
        })?;
        self.count("ok");
        let expires_at = unix_now().saturating_add(answer.expires_in.as_secs() as i64);
        if let Some(until) = reuse_until(now, answer.expires_in) {
            self.remember(
                key,
                Cached {
                    token: answer.token.clone(),
                    expires_at,
                    reuse_until: until,
                },
            );
        }
        Ok((answer.token, expires_at))
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_the_legacy_mode_and_the_clouds_audience() {
        let o = crate::provider::ProviderOptions::from_args(&[]).unwrap();
        assert_eq!(o.identity_authority, None);
        assert_eq!(o.identity_audience, "api://AzureADTokenExchange");
        let o = crate::provider::ProviderOptions::from_args(&[
            "--identity-authority",
            "https://kv-kvault-operator-webhook.kvault-system.svc/adfs",
        ])
        .unwrap();
        assert_eq!(
            o.identity_authority.as_deref(),
            Some("https://kv-kvault-operator-webhook.kvault-system.svc/adfs")
        );
    }

    #[test]
    fn the_client_id_is_the_service_accounts_subject() {
        assert_eq!(
            client_id("team-a", "web").unwrap(),
            "system:serviceaccount:team-a:web"
        );
        let e = client_id("", "web").unwrap_err();
        assert!(e.message.contains("podInfoOnMount"), "{}", e.message);
        assert!(client_id("team-a", " ").is_err());
    }

    #[test]
    fn cache_keys_separate_tokens_clients_and_resources() {
        let a = cache_key("tok", "c", "https://a.ns.svc");
        assert_eq!(a, cache_key("tok", "c", "https://a.ns.svc"));
        assert_ne!(a, cache_key("tok", "c", "https://b.ns.svc"));
        assert_ne!(a, cache_key("tok2", "c", "https://a.ns.svc"));
        assert_ne!(a, cache_key("tok", "d", "https://a.ns.svc"));
        // No ambiguity between where one part ends and the next starts.
        assert_ne!(cache_key("ab", "c", "d"), cache_key("a", "bc", "d"));
    }

    #[test]
    fn exchanged_tokens_are_reused_until_a_minute_before_expiry() {
        let now = Instant::now();
        assert_eq!(
            reuse_until(now, Duration::from_secs(900)),
            Some(now + Duration::from_secs(840))
        );
        assert_eq!(reuse_until(now, Duration::from_secs(60)), None);
        assert_eq!(reuse_until(now, Duration::from_secs(10)), None);
    }

    #[test]
    fn the_cache_is_bounded_and_expires() {
        let ex = Exchanger::new(
            ExchangeSettings {
                authority: "https://ts/adfs".into(),
                audience: DEFAULT_IDENTITY_AUDIENCE.into(),
                request_timeout: Duration::from_secs(1),
                max_cached: 2,
            },
            Arc::new(ProviderMetrics::new()),
        );
        let now = Instant::now();
        let entry = |secs: u64| Cached {
            token: Zeroizing::new("t".into()),
            expires_at: 0,
            reuse_until: now + Duration::from_secs(secs),
        };
        ex.remember([1; 32], entry(100));
        ex.remember([2; 32], entry(100));
        ex.remember([3; 32], entry(100));
        assert!(ex.cache_len() <= 2);
        assert!(ex.cached(&[3; 32], now).is_some());
        assert!(
            ex.cached(&[3; 32], now + Duration::from_secs(101))
                .is_none()
        );
    }

    #[test]
    fn exchange_errors_name_the_code_and_what_to_check() {
        let e = ClientError::Identity {
            status: 401,
            error: "invalid_client".into(),
            description: "AADSTS700211: No matching federated identity record found for presented assertion issuer.".into(),
            codes: vec![700211],
        };
        let m = describe_exchange_error(
            &e,
            "https://ts/adfs",
            DEFAULT_IDENTITY_AUDIENCE,
            "https://v.ns.svc",
        );
        assert_eq!(m.code, ErrorCode::Unauthorized);
        assert!(m.message.contains("AADSTS700211"), "{}", m.message);
        assert!(m.message.contains("tokenRequests"), "{}", m.message);
        let e = ClientError::Identity {
            status: 503,
            error: "temporarily_unavailable".into(),
            description: "busy".into(),
            codes: vec![50001],
        };
        let m = describe_exchange_error(
            &e,
            "https://ts/adfs",
            DEFAULT_IDENTITY_AUDIENCE,
            "https://v.ns.svc",
        );
        assert_eq!(m.code, ErrorCode::VaultUnavailable);
        assert!(m.message.contains("AADSTS50001: busy"), "{}", m.message);
    }
}
