//! Reaching vaults on behalf of pods, under load: one HTTPS client per (vault, CA bundle),
//! a short-lived cache keyed by the *pod's token digest*, object and version (a pod only
//! ever gets answers fetched with its own token, so it can never read through the cache
//! what its identity may not), de-duplication of identical fetches in flight, a global
//! bound on concurrent vault requests, and retries with jittered exponential backoff on
//! 429, 5xx and transport errors.

use super::error::{ErrorCode, MountError, MountResult};
use super::metrics::{CacheLabel, ObjectTypeLabel, ProviderMetrics, VaultCallLabels};
use super::params::{CaSource, MAX_CA_BUNDLE, ObjectType};
use super::render::Material;
use crate::client::{ClientError, VaultClient};
use crate::error_chain::{render, with_cause};
use crate::wire::ObjectId;
use crate::wire::secrets::SecretItem;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OnceCell, Semaphore};
use zeroize::Zeroizing;

#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// How long an answer is reused for the same token, object and version (0: never).
    pub cache_ttl: Duration,
    pub max_cache_entries: usize,
    /// Bytes of cached content at most (secret values, certificates, keys).
    pub max_cache_bytes: usize,
    /// Concurrent vault requests across all mounts.
    pub max_concurrent_requests: usize,
    /// Retries after 429, 5xx or a transport error.
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub request_timeout: Duration,
    /// The default CA bundle (the cluster's `kvault-ca` ConfigMap).
    pub ca_file: Option<PathBuf>,
    /// Directories `vaultCACertPath` may name files in.
    pub ca_dirs: Vec<PathBuf>,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(30),
            max_cache_entries: 4096,
            max_cache_bytes: 16 * 1024 * 1024,
            max_concurrent_requests: 32,
            max_retries: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            ca_file: None,
            ca_dirs: Vec::new(),
        }
    }
}

/// One object version as fetched.
#[derive(Debug)]
pub struct Versioned {
    /// The vault's version id.
    pub version: String,
    pub material: Material,
}

/// One entry of an object's version listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: String,
    pub created: i64,
    pub enabled: bool,
}

/// A cached answer: one object version, a version listing, or the listing of a vault's
/// secrets (names, attributes and tags; never values) for selections.
#[derive(Debug)]
pub enum Answer {
    One(Box<Versioned>),
    Versions(Vec<VersionInfo>),
    Secrets(Vec<SecretItem>),
}

impl Answer {
    /// Approximate memory held, for the cache's byte budget.
    fn size(&self) -> usize {
        match self {
            Answer::One(v) => {
                v.version.len()
                    + match &v.material {
                        Material::Secret {
                            value,
                            content_type,
                            ..
                        } => value.len() + content_type.as_ref().map_or(0, String::len),
                        Material::Key(jwk) => {
                            [&jwk.n, &jwk.e, &jwk.x, &jwk.y, &jwk.kid]
                                .iter()
                                .map(|m| m.as_ref().map_or(0, String::len))
                                .sum::<usize>()
                                + 64
                        }
                        Material::Cert(der) => der.len(),
                    }
                    + 128
            }
            Answer::Versions(v) => v.len() * 96 + 64,
            Answer::Secrets(items) => {
                items
                    .iter()
                    .map(|i| {
                        i.id.len()
                            + i.content_type.as_ref().map_or(0, String::len)
                            + i.tags
                                .as_ref()
                                .map_or(0, |t| t.iter().map(|(k, v)| k.len() + v.len() + 48).sum())
                            + 128
                    })
                    .sum::<usize>()
                    + 64
            }
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    /// SHA-256 of the pod's token: answers are never shared between tokens.
    identity: [u8; 32],
    vault: String,
    /// SHA-256 of the CA bundle the answer was verified with.
    ca: [u8; 32],
    kind: ObjectType,
    /// Lower-cased: object names compare case-insensitively. `""` with `listing`: the
    /// listing of every object of `kind` (object names are never empty).
    name: String,
    /// `""` for the latest version.
    version: String,
    listing: bool,
}

type Shared = Result<Arc<Answer>, MountError>;

struct Slot {
    cell: OnceCell<Shared>,
    fresh_until: Instant,
    /// Content bytes, once fetched.
    size: std::sync::atomic::AtomicUsize,
}

impl Slot {
    fn usable(&self, now: Instant) -> bool {
        match self.cell.get() {
            // In flight: join it, whatever the TTL.
            None => true,
            Some(Ok(_)) => now < self.fresh_until,
            Some(Err(_)) => false,
        }
    }
}

/// A pod's view of one vault: the shared client with the pod's token.
pub struct PodClient {
    client: VaultClient,
    identity: [u8; 32],
    vault: String,
    ca: [u8; 32],
    /// Cached answers never outlive the token.
    token_expiry: Option<i64>,
}

pub struct Fetcher {
    settings: FetchSettings,
    clients: Mutex<HashMap<(String, [u8; 32]), VaultClient>>,
    slots: Mutex<HashMap<CacheKey, Arc<Slot>>>,
    limiter: Semaphore,
    metrics: Arc<ProviderMetrics>,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The version an object id names (empty when it names none).
fn version_of(id: &str) -> String {
    ObjectId::version_of(id).unwrap_or_default().to_string()
}

/// One object version as the vault returns it to `c`: its version id and content (for a
/// key, only the public members). Shared by mounts and the operator's SecretSync.
pub async fn material_of(
    c: &crate::client::VaultClient,
    kind: ObjectType,
    name: &str,
    version: Option<&str>,
) -> Result<(String, Material), ClientError> {
    match kind {
        ObjectType::Secret => {
            let b = c.get_secret(name, version).await?;
            let value = b
                .value
                .ok_or_else(|| ClientError::decode("the secret bundle has no value"))?;
            Ok((
                version_of(&b.id),
                Material::Secret {
                    value: Zeroizing::new(value),
                    content_type: b.content_type,
                    certificate_backed: b.kid.is_some(),
                },
            ))
        }
        ObjectType::Key => {
            let mut jwk = c.get_key(name, version).await?.key;
            let version = version_of(jwk.kid.as_deref().unwrap_or_default());
            // Only public members are ever used (the API never returns others).
            jwk.d = None;
            jwk.p = None;
            jwk.q = None;
            jwk.dp = None;
            jwk.dq = None;
            jwk.qi = None;
            jwk.k = None;
            Ok((version, Material::Key(Box::new(jwk))))
        }
        ObjectType::Cert => {
            let b = c.get_certificate_der(name, version).await?;
            Ok((version_of(&b.id), Material::Cert(b.cer)))
        }
    }
}

fn outcome(r: &Result<(), &ClientError>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(ClientError::Api { status, .. }) => match status {
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            429 => "throttled",
            500..=599 => "server_error",
            _ => "client_error",
        },
        Err(ClientError::Transport(_)) => "transport",
        Err(_) => "client_error",
    }
}

fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Transport(_) => true,
        ClientError::Api { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
        _ => false,
    }
}

/// A uniformly random fraction in [0.5, 1) for full-ish jitter.
fn jitter() -> f64 {
    let r = crate::crypto::random::<2>().unwrap_or([0x80, 0]);
    0.5 + f64::from(u16::from_be_bytes(r)) / f64::from(u16::MAX) / 2.0
}

/// Maps a vault error to the pod-facing error, naming the object and what to do.
pub fn describe_error(e: &ClientError, what: &str, vault: &str, audience: &str) -> MountError {
    match e {
        ClientError::Api {
            status, message, ..
        } => match status {
            401 => MountError::new(
                ErrorCode::Unauthorized,
                format!(
                    "the vault {vault} rejected the pod's service-account token ({message}); the vault must trust the cluster's service-account issuer and accept the audience '{audience}'"
                ),
            ),
            403 => MountError::new(
                ErrorCode::Forbidden,
                format!(
                    "the pod's service account may not read {what} in {vault}: {message}; grant it access in the vault's policy (e.g. role Key Vault Secrets User, Crypto User or Certificate User on the object)"
                ),
            ),
            404 => MountError::new(
                ErrorCode::NotFound,
                format!("{what} was not found in {vault}: {message}"),
            ),
            429 => MountError::new(
                ErrorCode::Throttled,
                format!("the vault {vault} kept throttling requests for {what}: {message}"),
            ),
            500..=599 => MountError::new(
                ErrorCode::VaultUnavailable,
                format!("the vault {vault} failed to serve {what} (HTTP {status}): {message}"),
            ),
            _ => MountError::new(
                ErrorCode::InvalidParameters,
                format!(
                    "the vault {vault} refused the request for {what} (HTTP {status}): {message}"
                ),
            ),
        },
        ClientError::Transport(cause) => MountError::new(
            ErrorCode::VaultUnavailable,
            format!(
                "cannot reach the vault at {vault}: {}",
                render(cause.as_ref())
            ),
        ),
        ClientError::Decode { what: d, source } => MountError::new(
            ErrorCode::VaultUnavailable,
            format!(
                "unexpected answer from the vault {vault} for {what}: {}",
                with_cause(d, source.as_ref())
            ),
        ),
        ClientError::Config { what: c, source } => MountError::new(
            ErrorCode::VaultUnavailable,
            format!(
                "cannot set up a client for the vault {vault}: {}",
                with_cause(c, source.as_ref())
            ),
        ),
        ClientError::Identity { .. } => {
            super::exchange::describe_exchange_error(e, "the token service", "", vault)
        }
        ClientError::Token { what: t, source } => MountError::new(
            ErrorCode::Unauthorized,
            format!(
                "no token for the vault {vault}: {}",
                with_cause(t, source.as_ref())
            ),
        ),
    }
}

impl Fetcher {
    pub fn new(settings: FetchSettings, metrics: Arc<ProviderMetrics>) -> Self {
        Self {
            limiter: Semaphore::new(settings.max_concurrent_requests.max(1)),
            settings,
            clients: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Drops expired cache entries (called periodically).
    pub fn sweep(&self) {
        let now = Instant::now();
        if let Ok(mut slots) = self.slots.lock() {
            slots.retain(|_, s| s.cell.get().is_none() || s.usable(now));
        }
    }

    /// The number of cache entries (tests, metrics).
    pub fn cache_len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Reads the CA bundle for a mount.
    pub async fn load_ca(&self, src: &CaSource) -> MountResult<Zeroizing<Vec<u8>>> {
        let unavailable = |m: String| MountError::new(ErrorCode::VaultUnavailable, m);
        let path = match src {
            CaSource::Inline(pem) => return Ok(Zeroizing::new(pem.clone())),
            CaSource::Default => self.settings.ca_file.clone().ok_or_else(|| {
                unavailable(
                    "no CA bundle for the vault's TLS: the provider runs without --ca-file; set vaultCACert or vaultCACertPath in the SecretProviderClass".into(),
                )
            })?,
            CaSource::File(p) => {
                // One answer whether the file is missing or outside the CA directories, so
                // a SecretProviderClass cannot probe the node's file system.
                let refused = || {
                    MountError::invalid(format!(
                        "vaultCACertPath {} is not a file in the directories the provider reads CA bundles from ({}); mount the bundle there (--ca-dir) or use vaultCACert",
                        p.display(),
                        self.settings
                            .ca_dirs
                            .iter()
                            .map(|d| d.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                };
                let real = tokio::fs::canonicalize(p).await.map_err(|_| refused())?;
                let mut allowed = false;
                for dir in &self.settings.ca_dirs {
                    if let Ok(d) = tokio::fs::canonicalize(dir).await
                        && real.starts_with(&d)
                    {
                        allowed = true;
                    }
                }
                if !allowed {
                    return Err(refused());
                }
                real
            }
        };
        let meta = tokio::fs::metadata(&path).await.map_err(|e| {
            unavailable(format!(
                "cannot read the CA bundle {}: {e} (mount the kvault-ca ConfigMap there, or set vaultCACert in the SecretProviderClass)",
                path.display()
            ))
        })?;
        if !meta.is_file() || meta.len() > MAX_CA_BUNDLE as u64 {
            return Err(unavailable(format!(
                "the CA bundle {} is not a file of at most {MAX_CA_BUNDLE} bytes",
                path.display()
            )));
        }
        let pem = tokio::fs::read(&path).await.map_err(|e| {
            unavailable(format!("cannot read the CA bundle {}: {e}", path.display()))
        })?;
        Ok(Zeroizing::new(pem))
    }

    /// The shared client for a vault and CA bundle, with the pod's token.
    pub fn pod_client(
        &self,
        vault: &str,
        ca_pem: &[u8],
        token: &Zeroizing<String>,
        token_expiry: Option<i64>,
    ) -> MountResult<PodClient> {
        let ca_digest = crate::crypto::sha256(ca_pem);
        let key = (vault.to_string(), ca_digest);
        let base = {
            let mut clients = self
                .clients
                .lock()
                .map_err(|_| MountError::new(ErrorCode::Internal, "client cache poisoned"))?;
            match clients.get(&key) {
                Some(c) => c.clone(),
                None => {
                    let c = VaultClient::for_provider(vault, ca_pem, self.settings.request_timeout)
                        .map_err(|e| describe_error(&e, "", vault, ""))?;
                    if clients.len() >= 256 {
                        clients.clear();
                    }
                    clients.insert(key, c.clone());
                    c
                }
            }
        };
        Ok(PodClient {
            client: base.with_token(token.clone()),
            identity: crate::crypto::sha256(token.as_bytes()),
            vault: vault.to_string(),
            ca: ca_digest,
            token_expiry,
        })
    }

    fn fresh_until(&self, pod: &PodClient) -> Instant {
        let now = Instant::now();
        let mut ttl = self.settings.cache_ttl;
        if let Some(exp) = pod.token_expiry {
            let left = exp.saturating_sub(now_unix()).max(0) as u64;
            ttl = ttl.min(Duration::from_secs(left));
        }
        now + ttl
    }

    // Kept over moka (future): +10 crates (crossbeam-*, async-lock, tagptr …; a 20 s single-job debug build of its tree, measured) for a map and a OnceCell, and moka evicts asynchronously, so the byte cap and the per-token expiry enforced exactly here (and tested) would become approximate.
    async fn cached<F, Fut>(&self, key: CacheKey, fresh_until: Instant, fetch: F) -> Shared
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Shared>,
    {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .map_err(|_| MountError::new(ErrorCode::Internal, "cache poisoned"))?;
            let now = Instant::now();
            match slots.get(&key) {
                Some(s) if s.usable(now) => {
                    let result = if s.cell.initialized() {
                        "hit"
                    } else {
                        "shared"
                    };
                    self.metrics
                        .cache
                        .get_or_create(&CacheLabel { result })
                        .inc();
                    s.clone()
                }
                _ => {
                    self.metrics
                        .cache
                        .get_or_create(&CacheLabel { result: "miss" })
                        .inc();
                    if slots.len() >= self.settings.max_cache_entries {
                        slots.retain(|_, s| s.cell.get().is_none() || s.usable(now));
                    }
                    let s = Arc::new(Slot {
                        cell: OnceCell::new(),
                        fresh_until,
                        size: std::sync::atomic::AtomicUsize::new(0),
                    });
                    if slots.len() < self.settings.max_cache_entries {
                        slots.insert(key.clone(), s.clone());
                    }
                    s
                }
            }
        };
        let result = slot.cell.get_or_init(fetch).await.clone();
        if let Ok(mut slots) = self.slots.lock()
            && slots.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot))
        {
            use std::sync::atomic::Ordering::Relaxed;
            match &result {
                // Errors are never kept.
                Err(_) => {
                    slots.remove(&key);
                }
                Ok(answer) if slot.size.load(Relaxed) == 0 => {
                    let size = answer.size().max(1);
                    slot.size.store(size, Relaxed);
                    let total = |m: &HashMap<CacheKey, Arc<Slot>>| {
                        m.values().map(|s| s.size.load(Relaxed)).sum::<usize>()
                    };
                    if total(&slots) > self.settings.max_cache_bytes {
                        let now = Instant::now();
                        slots.retain(|_, s| s.cell.get().is_none() || s.usable(now));
                        if total(&slots) > self.settings.max_cache_bytes {
                            slots.remove(&key);
                        }
                    }
                }
                Ok(_) => {}
            }
        }
        result
    }

    /// Bytes of cached content (tests, metrics).
    pub fn cache_bytes(&self) -> usize {
        self.slots
            .lock()
            .map(|m| {
                m.values()
                    .map(|s| s.size.load(std::sync::atomic::Ordering::Relaxed))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Runs one vault request under the concurrency bound, retrying 429/5xx/transport
    /// errors with jittered exponential backoff.
    async fn call<T, F, Fut>(&self, kind: ObjectType, mut op: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let object_type = kind.as_str();
        let mut attempt = 0u32;
        loop {
            let permit = self.limiter.acquire().await;
            let started = Instant::now();
            let r = op().await;
            drop(permit);
            self.metrics
                .vault_call_duration
                .get_or_create(&ObjectTypeLabel { object_type })
                .observe(started.elapsed().as_secs_f64());
            self.metrics
                .vault_calls
                .get_or_create(&VaultCallLabels {
                    object_type,
                    outcome: outcome(&r.as_ref().map(|_| ())),
                })
                .inc();
            match r {
                Err(e) if retryable(&e) && attempt < self.settings.max_retries => {
                    attempt += 1;
                    self.metrics.vault_retries.inc();
                    let delay = crate::clock::exponential_backoff(
                        attempt,
                        self.settings.initial_backoff,
                        self.settings.max_backoff,
                    )
                    .mul_f64(jitter());
                    tracing::debug!(object_type, attempt, delay_ms = delay.as_millis() as u64, error = %e, "retrying vault request");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// One object version (`None`: the latest).
    pub async fn get(
        &self,
        pod: &PodClient,
        kind: ObjectType,
        name: &str,
        version: Option<&str>,
        audience: &str,
    ) -> MountResult<Arc<Answer>> {
        let key = CacheKey {
            identity: pod.identity,
            vault: pod.vault.clone(),
            ca: pod.ca,
            kind,
            name: name.to_ascii_lowercase(),
            version: version.unwrap_or("").to_ascii_lowercase(),
            listing: false,
        };
        let what = match version {
            Some(v) => format!("{} '{name}' version {v}", kind.as_str()),
            None => format!("{} '{name}'", kind.as_str()),
        };
        self.cached(key, self.fresh_until(pod), || async {
            let c = &pod.client;
            let fetched = self
                .call(kind, || material_of(c, kind, name, version))
                .await
                .map(|(version, material)| Versioned { version, material });
            fetched
                .map(|v| Arc::new(Answer::One(Box::new(v))))
                .map_err(|e| describe_error(&e, &what, &pod.vault, audience))
        })
        .await
    }

    /// The vault's secrets as the pod may list them (for selections): one listing per
    /// mount, cached like any answer (for the same token only).
    pub async fn secrets(&self, pod: &PodClient, audience: &str) -> MountResult<Arc<Answer>> {
        let key = CacheKey {
            identity: pod.identity,
            vault: pod.vault.clone(),
            ca: pod.ca,
            kind: ObjectType::Secret,
            name: String::new(),
            version: String::new(),
            listing: true,
        };
        self.cached(key, self.fresh_until(pod), || async {
            self.call(ObjectType::Secret, || pod.client.list_secrets())
                .await
                .map(|items| Arc::new(Answer::Secrets(items)))
                .map_err(|e| describe_error(&e, "the list of secrets", &pod.vault, audience))
        })
        .await
    }

    /// Every version of an object, newest first.
    pub async fn versions(
        &self,
        pod: &PodClient,
        kind: ObjectType,
        name: &str,
        audience: &str,
    ) -> MountResult<Vec<VersionInfo>> {
        let key = CacheKey {
            identity: pod.identity,
            vault: pod.vault.clone(),
            ca: pod.ca,
            kind,
            name: name.to_ascii_lowercase(),
            version: String::new(),
            listing: true,
        };
        let what = format!("the versions of {} '{name}'", kind.as_str());
        let answer = self
            .cached(key, self.fresh_until(pod), || async {
                let c = &pod.client;
                let listed: Result<Vec<VersionInfo>, ClientError> = match kind {
                    ObjectType::Secret => self
                        .call(kind, || c.list_secret_versions(name))
                        .await
                        .map(|items| {
                            items
                                .into_iter()
                                .map(|i| VersionInfo {
                                    version: version_of(&i.id),
                                    created: i.attributes.created.unwrap_or(0),
                                    enabled: i.attributes.enabled.unwrap_or(true),
                                })
                                .collect()
                        }),
                    ObjectType::Key => {
                        self.call(kind, || c.list_key_versions(name))
                            .await
                            .map(|items| {
                                items
                                    .into_iter()
                                    .map(|i| VersionInfo {
                                        version: version_of(&i.kid),
                                        created: i.attributes.created.unwrap_or(0),
                                        enabled: i.attributes.enabled.unwrap_or(true),
                                    })
                                    .collect()
                            })
                    }
                    ObjectType::Cert => self
                        .call(kind, || c.list_certificate_versions_for_mount(name))
                        .await
                        .map(|items| {
                            items
                                .into_iter()
                                .map(|i| VersionInfo {
                                    version: version_of(&i.id),
                                    created: i.attributes.created.unwrap_or(0),
                                    enabled: i.attributes.enabled.unwrap_or(true),
                                })
                                .collect()
                        }),
                };
                let listed = listed.map_err(|e| describe_error(&e, &what, &pod.vault, audience))?;
                Ok(Arc::new(Answer::Versions(newest_first(listed))))
            })
            .await?;
        match answer.as_ref() {
            Answer::Versions(v) => Ok(v.clone()),
            _ => Err(MountError::new(ErrorCode::Internal, "cache mix-up")),
        }
    }
}

/// A version listing newest first. `created` has one-second resolution, so versions made
/// within one second tie; a vault lists versions in creation order (oldest first), so among
/// ties the one listed later is the newer (a random version id would put them in any order).
pub fn newest_first(mut listed: Vec<VersionInfo>) -> Vec<VersionInfo> {
    listed.reverse();
    // Stable: ties keep the reversed listing order, newest first.
    listed.sort_by_key(|b| std::cmp::Reverse(b.created));
    listed
}

/// The fetched object version inside a cache answer.
pub fn one(answer: &Answer) -> MountResult<&Versioned> {
    match answer {
        Answer::One(v) => Ok(v.as_ref()),
        _ => Err(MountError::new(ErrorCode::Internal, "cache mix-up")),
    }
}

/// The listed secrets inside a cache answer.
pub fn secrets(answer: &Answer) -> MountResult<&[SecretItem]> {
    match answer {
        Answer::Secrets(items) => Ok(items),
        _ => Err(MountError::new(ErrorCode::Internal, "cache mix-up")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_made_within_one_second_are_ordered_by_the_vaults_listing() {
        let v = |version: &str, created| VersionInfo {
            version: version.into(),
            created,
            enabled: true,
        };
        // As the vault lists them: creation order, three in the same second with ids that
        // sort the other way.
        let listed = vec![
            v("zz", 100),
            v("ff", 200),
            v("cc", 200),
            v("aa", 200),
            v("yy", 150),
        ];
        let order: Vec<String> = newest_first(listed)
            .into_iter()
            .map(|i| i.version)
            .collect();
        assert_eq!(order, ["aa", "cc", "ff", "yy", "zz"]);
    }

    #[test]
    fn ids_to_versions() {
        assert_eq!(version_of("https://v/secrets/a/0123abc"), "0123abc");
        assert_eq!(version_of("https://v/keys/a/0123abc/"), "0123abc");
    }

    #[test]
    fn errors_name_the_object_and_the_fix() {
        let api = |status: u16| ClientError::Api {
            status,
            code: "X".into(),
            message: "m".into(),
        };
        let d = |e| describe_error(&e, "secret 'db'", "https://v.ns.svc", "aud");
        assert_eq!(d(api(401)).code, ErrorCode::Unauthorized);
        assert!(d(api(401)).message.contains("'aud'"));
        let f = d(api(403));
        assert_eq!(f.code, ErrorCode::Forbidden);
        assert!(f.message.contains("secret 'db'") && f.message.contains("https://v.ns.svc"));
        assert_eq!(d(api(404)).code, ErrorCode::NotFound);
        assert_eq!(d(api(429)).code, ErrorCode::Throttled);
        assert_eq!(d(api(503)).code, ErrorCode::VaultUnavailable);
        assert_eq!(
            d(ClientError::Transport("refused".into())).code,
            ErrorCode::VaultUnavailable
        );
        assert!(retryable(&api(429)) && retryable(&api(503)) && !retryable(&api(403)));
        let j = jitter();
        assert!((0.5..=1.0).contains(&j));
    }

    #[tokio::test]
    async fn identical_fetches_in_flight_are_shared_and_errors_not_cached() {
        let f = Fetcher::new(FetchSettings::default(), Arc::new(ProviderMetrics::new()));
        let key = |name: &str| CacheKey {
            identity: [1; 32],
            vault: "v".into(),
            ca: [0; 32],
            kind: ObjectType::Secret,
            name: name.into(),
            version: String::new(),
            listing: false,
        };
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let until = Instant::now() + Duration::from_secs(30);
        let fetch = |calls: Arc<std::sync::atomic::AtomicUsize>| async move {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(Arc::new(Answer::Versions(vec![])))
        };
        let (a, b) = tokio::join!(
            f.cached(key("a"), until, || fetch(calls.clone())),
            f.cached(key("a"), until, || fetch(calls.clone()))
        );
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Cached within the TTL …
        f.cached(key("a"), until, || fetch(calls.clone()))
            .await
            .unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        // … but another identity never sees it.
        let mut other = key("a");
        other.identity = [2; 32];
        f.cached(other, until, || fetch(calls.clone()))
            .await
            .unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        // Errors are shared with concurrent waiters but not kept.
        let r = f
            .cached(key("e"), until, || async {
                Err(MountError::new(ErrorCode::Forbidden, "no"))
            })
            .await;
        assert!(r.is_err());
        f.cached(key("e"), until, || fetch(calls.clone()))
            .await
            .unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
        // Expired entries are fetched again and swept.
        let past = Instant::now();
        f.cached(key("x"), past, || fetch(calls.clone()))
            .await
            .unwrap();
        f.cached(key("x"), past, || fetch(calls.clone()))
            .await
            .unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 5);
        let before = f.cache_len();
        f.sweep();
        assert_eq!(f.cache_len(), before - 1);
    }

    #[tokio::test]
    async fn the_cache_keeps_to_its_byte_budget() {
        let settings = FetchSettings {
            max_cache_bytes: 3000,
            ..FetchSettings::default()
        };
        let f = Fetcher::new(settings, Arc::new(ProviderMetrics::new()));
        let until = Instant::now() + Duration::from_secs(30);
        let big = || async {
            Ok(Arc::new(Answer::One(Box::new(Versioned {
                version: "v".into(),
                material: Material::Cert(vec![0; 1000]),
            }))))
        };
        for i in 0..5 {
            let key = CacheKey {
                identity: [1; 32],
                vault: "v".into(),
                ca: [0; 32],
                kind: ObjectType::Cert,
                name: format!("c{i}"),
                version: String::new(),
                listing: false,
            };
            f.cached(key, until, big).await.unwrap();
        }
        assert_eq!(f.cache_len(), 2);
        assert!(f.cache_bytes() <= 3000);
    }
}
