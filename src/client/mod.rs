//! The typed async client for the vault API — the one the CLI, the provider, the operator
//! and the tests use.

use crate::policy::PolicyDocument;
use crate::wire::{
    BackupBlob, DeletedSecretBundle, DeletedSecretItem, ErrorEnvelope, Page, SecretBundle,
    SecretItem, SecretSetParameters, SecretUpdateParameters,
};
use reqwest::{Certificate, ClientBuilder, Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

pub use crate::error_chain::BoxError;
use crate::error_chain::{render, with_cause};

mod certificates;
pub mod identity;
mod keys;
pub mod provider_support;
pub mod select;

/// The api-version this client speaks.
pub const API_VERSION: &str = crate::wire::LATEST_API_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The vault answered with an error envelope.
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer from the vault: the connection, TLS or the transfer failed. The text names
    /// the whole cause chain ("… invalid peer certificate: UnknownIssuer" is not "…
    /// Connection refused"), never the URL.
    #[error("cannot reach the vault: {}", render(.0.as_ref()))]
    Transport(#[source] BoxError),
    /// The vault's answer is not what the call expects (`what` names the call or the field).
    #[error("unexpected response from the vault: {}", with_cause(.what, .source.as_ref()))]
    Decode {
        what: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The client's own configuration: the vault URL, a CA file, the HTTPS client.
    #[error("{}", with_cause(.what, .source.as_ref()))]
    Config {
        what: String,
        #[source]
        source: Option<BoxError>,
    },
    /// No token for the vault could be had (a Kubernetes TokenRequest failed or returned none).
    #[error("{}", with_cause(.what, .source.as_ref()))]
    Token {
        what: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The workload-identity token service refused an exchange: its HTTP status, OAuth
    /// error and (Entra-style, `AADSTS…`) description. Never the assertion or a token.
    #[error("the token service refused the exchange: {error}: {description} (HTTP {status})")]
    Identity {
        status: u16,
        error: String,
        description: String,
        codes: Vec<u32>,
    },
}

/// A transport failure, its cause kept without the URL.
fn transport_error(e: reqwest::Error) -> ClientError {
    ClientError::Transport(Box::new(e.without_url()))
}

impl ClientError {
    /// An answer that is not what `what` expects, for a reason of its own.
    pub fn decode(what: impl Into<String>) -> Self {
        Self::Decode {
            what: what.into(),
            source: None,
        }
    }
    /// An answer that does not decode as `what`, with the decoder's error.
    pub fn decode_with(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Decode {
            what: what.into(),
            source: Some(source.into()),
        }
    }
    /// A configuration the client cannot use.
    pub fn config(what: impl Into<String>) -> Self {
        Self::Config {
            what: what.into(),
            source: None,
        }
    }
    /// A configuration the client cannot use, with the error that says why.
    pub fn config_with(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Config {
            what: what.into(),
            source: Some(source.into()),
        }
    }
    /// No token: `what` names whose token for which audience (never the token).
    pub fn token(what: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::Token {
            what: what.into(),
            source,
        }
    }
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

fn read_certs(path: &Path) -> Result<Vec<Certificate>, ClientError> {
    let pem = std::fs::read(path)
        .map_err(|e| ClientError::config_with(format!("reading CA file {}", path.display()), e))?;
    Certificate::from_pem_bundle(&pem)
        .map_err(|e| ClientError::config_with(format!("parsing CA file {}", path.display()), e))
}

/// The largest answer read from a vault (a backup of 500 versions of a 25 KiB secret, in
/// base64, with room to spare): a server that is not a vault cannot fill the reader's memory.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// The most `nextLink` pages one listing follows (25 items each).
pub const MAX_LIST_PAGES: usize = 4_000;

/// Redirects are followed only within the host they started on (a vault never redirects; a
/// server that does must not send the caller's token elsewhere).
fn same_host_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_host = attempt.previous().first().is_some_and(|first| {
            first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if attempt.previous().len() > 5 {
            attempt.error("too many redirects")
        } else if same_host {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Reads a response body of at most `cap` bytes; a longer one is an error, not a buffer.
pub async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, ClientError> {
    let too_large = || ClientError::decode(format!("the answer is larger than {} KiB", cap / 1024));
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether a `nextLink` stays on the vault the listing started on (the token goes with it).
fn same_origin(base: &Url, link: &Url) -> bool {
    link.scheme() == base.scheme()
        && link.host_str() == base.host_str()
        && link.port_or_known_default() == base.port_or_known_default()
}

/// An HTTPS client builder on rustls (aws-lc-rs) trusting the system roots plus `extra_ca`.
pub fn http_client_builder(extra_ca: &[PathBuf]) -> Result<ClientBuilder, ClientError> {
    let mut b = reqwest::Client::builder()
        .https_only(true)
        .redirect(same_host_redirects())
        .connect_timeout(Duration::from_secs(10));
    for path in extra_ca {
        b = b.tls_certs_merge(read_certs(path)?);
    }
    Ok(b)
}

/// How to reach a vault.
#[derive(Clone)]
pub struct ClientConfig {
    pub url: String,
    pub token: Zeroizing<String>,
    /// Trust only this CA bundle (a vault's CA); system roots otherwise.
    pub ca_file: Option<PathBuf>,
}

/// Retries of the answers that say the vault did not process the request — 429 Too Many
/// Requests and 503 Service Unavailable — so any request, a POST too, is safe to send again.
/// Off unless set with [`VaultClient::with_retries`] (the CLI sets it; the operator and the
/// provider keep their own loops). Transport errors are never retried here: a request whose
/// answer was lost may have been processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1: no retry).
    pub attempts: u32,
    /// The longest wait before one retry: a longer `Retry-After` is cut to this.
    pub max_wait: Duration,
    /// The first wait when the answer has no `Retry-After` (then doubling, with jitter).
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            max_wait: Duration::from_secs(30),
            first_backoff: Duration::from_millis(500),
        }
    }
}

/// An answer of one try: the error, and the wait the vault asked for when it may be retried.
struct Refused {
    error: ClientError,
    /// `Some` for 429/503 (the `Retry-After` seconds, if the answer had them).
    retry: Option<Option<Duration>>,
}

/// The `Retry-After` of an answer in delay-seconds form (the form vaults send; an HTTP-date
/// falls back to the backoff).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[derive(Clone)]
pub struct VaultClient {
    http: reqwest::Client,
    origin: Url,
    token: Zeroizing<String>,
    retry: Option<RetryPolicy>,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("origin", &self.origin.as_str())
            .finish_non_exhaustive()
    }
}

impl VaultClient {
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        crate::install_crypto_provider();
        let origin = Url::parse(&config.url).map_err(|e| {
            ClientError::config_with(format!("invalid vault URL '{}'", config.url), e)
        })?;
        if origin.scheme() != "https" {
            return Err(ClientError::config(format!(
                "the vault URL must be https:// (got '{}')",
                config.url
            )));
        }
        let host = origin
            .host_str()
            .ok_or_else(|| ClientError::config("the vault URL has no host"))?
            .to_string();
        let mut b = reqwest::Client::builder()
            .https_only(true)
            .user_agent(concat!("kvault/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60));
        if let Some(ca) = &config.ca_file {
            b = b.tls_certs_only(read_certs(ca)?);
        }
        // RFC 6761: *.localhost names are loopback, whatever the resolver says.
        if host.ends_with(".localhost") {
            b = b.resolve(&host, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        }
        let http = b
            .build()
            .map_err(|e| ClientError::config_with("building the HTTPS client", e))?;
        Ok(Self {
            http,
            origin,
            token: config.token,
            retry: None,
        })
    }

    /// The same client retrying 429 and 503 answers as `policy` says.
    pub fn with_retries(self, policy: RetryPolicy) -> Self {
        Self {
            retry: Some(policy),
            ..self
        }
    }

    /// The same vault with another token.
    pub fn with_token(&self, token: Zeroizing<String>) -> Self {
        Self {
            token,
            ..self.clone()
        }
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut u = self.origin.clone();
        u.set_path(path);
        {
            let mut q = u.query_pairs_mut();
            q.clear();
            q.append_pair("api-version", API_VERSION);
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        u
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, ClientError> {
        use backon::Retryable;
        // Never send the token anywhere but the vault we were configured for.
        if url.origin() != self.origin.origin() {
            return Err(ClientError::decode(format!(
                "refusing to follow a link to another origin: {}",
                url.origin().ascii_serialization()
            )));
        }
        let body = body.map(bytes::Bytes::from);
        let once = || self.send_once(method.clone(), url.clone(), body.clone());
        let Some(policy) = self.retry.filter(|p| p.attempts > 1) else {
            return once().await.map_err(|r| r.error);
        };
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(policy.first_backoff)
            .with_max_delay(policy.max_wait)
            .with_max_times(usize::try_from(policy.attempts - 1).unwrap_or(usize::MAX))
            .with_jitter();
        once.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|r: &Refused| r.retry.is_some())
            .adjust(|r: &Refused, next| {
                // The vault's own wait, capped, while the backoff still has tries left.
                next.map(|d| match r.retry.flatten() {
                    Some(asked) => asked.min(policy.max_wait),
                    None => d,
                })
            })
            .notify(|r: &Refused, wait| {
                tracing::warn!(
                    status = r.error.status(),
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "the vault is busy; retrying"
                );
            })
            .await
            .map_err(|r| r.error)
    }

    /// One try of a request: the answer, or its error and whether it may be sent again.
    async fn send_once(
        &self,
        method: Method,
        url: Url,
        body: Option<bytes::Bytes>,
    ) -> Result<reqwest::Response, Refused> {
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(self.token.as_str());
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let resp = req.send().await.map_err(|e| Refused {
            error: transport_error(e),
            retry: None,
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let retry = matches!(status, 429 | 503).then(|| retry_after(resp.headers()));
        let bytes = read_capped(resp, 64 * 1024).await.unwrap_or_default();
        let error = match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
            Ok(env) => ClientError::Api {
                status,
                code: env.error.code,
                message: env.error.message,
            },
            Err(_) => ClientError::Api {
                status,
                code: format!("HTTP{status}"),
                message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            },
        };
        Err(Refused { error, retry })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body =
            match body {
                Some(b) => Some(serde_json::to_vec(b).map_err(|e| {
                    ClientError::decode_with(format!("encoding {method} {path}"), e)
                })?),
                None => None,
            };
        let what = format!("{method} {path}");
        let resp = self.send(method, self.url(path, query), body).await?;
        let bytes = read_capped(resp, MAX_RESPONSE_BYTES).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::decode_with(what, e))
    }

    /// Follows `nextLink` until the listing ends.
    async fn list_all<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, ClientError> {
        let mut out = Vec::new();
        let mut url = self.url(path, &[]);
        for _ in 0..MAX_LIST_PAGES {
            let resp = self.send(Method::GET, url, None).await?;
            let bytes = read_capped(resp, MAX_RESPONSE_BYTES).await?;
            let page: Page<T> = serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::decode_with(format!("a page of GET {path}"), e))?;
            out.extend(page.value);
            match page.next_link {
                Some(link) => {
                    url = Url::parse(&link)
                        .map_err(|e| ClientError::decode_with("bad nextLink", e))?;
                    if !same_origin(&self.origin, &url) {
                        return Err(ClientError::decode("a nextLink points away from the vault"));
                    }
                }
                None => return Ok(out),
            }
        }
        Err(ClientError::decode(format!(
            "the listing has more than {MAX_LIST_PAGES} pages"
        )))
    }

    fn seg(s: &str) -> String {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    pub async fn set_secret(
        &self,
        name: &str,
        params: &SecretSetParameters,
    ) -> Result<SecretBundle, ClientError> {
        self.call(
            Method::PUT,
            &format!("/secrets/{}", Self::seg(name)),
            &[],
            Some(params),
        )
        .await
    }

    /// The latest version when `version` is `None`.
    pub async fn get_secret(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<SecretBundle, ClientError> {
        let path = format!(
            "/secrets/{}/{}",
            Self::seg(name),
            Self::seg(version.unwrap_or(""))
        );
        self.call(Method::GET, &path, &[], None::<&()>).await
    }

    pub async fn update_secret(
        &self,
        name: &str,
        version: Option<&str>,
        params: &SecretUpdateParameters,
    ) -> Result<SecretBundle, ClientError> {
        let path = format!(
            "/secrets/{}/{}",
            Self::seg(name),
            Self::seg(version.unwrap_or(""))
        );
        self.call(Method::PATCH, &path, &[], Some(params)).await
    }

    pub async fn list_secrets(&self) -> Result<Vec<SecretItem>, ClientError> {
        self.list_all("/secrets").await
    }

    pub async fn list_secret_versions(&self, name: &str) -> Result<Vec<SecretItem>, ClientError> {
        self.list_all(&format!("/secrets/{}/versions", Self::seg(name)))
            .await
    }

    pub async fn delete_secret(&self, name: &str) -> Result<DeletedSecretBundle, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/secrets/{}", Self::seg(name)),
            &[],
            None::<&()>,
        )
        .await
    }

    pub async fn get_deleted_secret(&self, name: &str) -> Result<DeletedSecretBundle, ClientError> {
        self.call(
            Method::GET,
            &format!("/deletedsecrets/{}", Self::seg(name)),
            &[],
            None::<&()>,
        )
        .await
    }

    pub async fn list_deleted_secrets(&self) -> Result<Vec<DeletedSecretItem>, ClientError> {
        self.list_all("/deletedsecrets").await
    }

    pub async fn recover_deleted_secret(&self, name: &str) -> Result<SecretBundle, ClientError> {
        self.call(
            Method::POST,
            &format!("/deletedsecrets/{}/recover", Self::seg(name)),
            &[],
            None::<&()>,
        )
        .await
    }

    pub async fn purge_deleted_secret(&self, name: &str) -> Result<(), ClientError> {
        let url = self.url(&format!("/deletedsecrets/{}", Self::seg(name)), &[]);
        self.send(Method::DELETE, url, None).await.map(|_| ())
    }

    /// The backup blob (base64url).
    pub async fn backup_secret(&self, name: &str) -> Result<String, ClientError> {
        let b: BackupBlob = self
            .call(
                Method::POST,
                &format!("/secrets/{}/backup", Self::seg(name)),
                &[],
                None::<&()>,
            )
            .await?;
        Ok(b.value)
    }

    pub async fn restore_secret(&self, blob: &str) -> Result<SecretBundle, ClientError> {
        self.call(
            Method::POST,
            "/secrets/restore",
            &[],
            Some(&BackupBlob {
                value: blob.to_string(),
            }),
        )
        .await
    }

    /// `GET /_kvault/policy`: the applied policy document (control plane only).
    pub async fn get_policy(&self) -> Result<crate::wire::PolicyStatus, ClientError> {
        self.call(Method::GET, "/_kvault/policy", &[], None::<&()>)
            .await
    }

    /// `PUT /_kvault/policy`: replaces the policy document (control plane only).
    pub async fn put_policy(
        &self,
        doc: &PolicyDocument,
    ) -> Result<crate::wire::PolicyStatus, ClientError> {
        self.call(Method::PUT, "/_kvault/policy", &[], Some(doc))
            .await
    }

    /// `GET /_kvault/events/expiry`: objects expired or near expiry (control plane only).
    pub async fn get_expiring(&self) -> Result<crate::wire::ExpiryReport, ClientError> {
        self.call(Method::GET, "/_kvault/events/expiry", &[], None::<&()>)
            .await
    }

    /// `GET /_kvault/events/dead-letters`: events given up, newest first (control plane
    /// only).
    pub async fn get_dead_letters(
        &self,
        top: u32,
    ) -> Result<crate::wire::admin::DeadLetters, ClientError> {
        let top = top.to_string();
        self.call(
            Method::GET,
            "/_kvault/events/dead-letters",
            &[("top", top.as_str())],
            None::<&()>,
        )
        .await
    }

    /// `GET /_kvault/health` (no token needed).
    pub async fn health(&self) -> Result<(), ClientError> {
        let mut u = self.origin.clone();
        u.set_path("/_kvault/health");
        let resp = self.http.get(u).send().await.map_err(transport_error)?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(ClientError::Api {
                status: resp.status().as_u16(),
                code: "Unhealthy".into(),
                message: "the vault is not serving".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_stay_on_the_vault() {
        let base = Url::parse("https://v.ns.svc:8443/").unwrap();
        let ok = Url::parse("https://v.ns.svc:8443/secrets?$skiptoken=x").unwrap();
        assert!(same_origin(&base, &ok));
        for away in [
            "https://evil.example:8443/secrets",
            "https://v.ns.svc:9443/secrets",
            "http://v.ns.svc:8443/secrets",
        ] {
            assert!(!same_origin(&base, &Url::parse(away).unwrap()), "{away}");
        }
    }

    /// A plain-HTTP stand-in for a server that is not a vault: it answers `len` bytes.
    async fn serve_body(len: usize, announce_length: bool) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            let head = if announce_length {
                format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n")
            } else {
                "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_string()
            };
            let _ = conn.write_all(head.as_bytes()).await;
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = len;
            while left > 0 {
                let n = left.min(chunk.len());
                if conn.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn answers_beyond_the_cap_are_refused_not_buffered() {
        let http = reqwest::Client::new();
        for announce in [true, false] {
            let url = serve_body(3 * 1024 * 1024, announce).await;
            let resp = http.get(url).send().await.unwrap();
            let err = read_capped(resp, 1024 * 1024).await.unwrap_err();
            assert!(err.to_string().contains("larger than 1024 KiB"), "{err}");
        }
        let url = serve_body(1000, true).await;
        let resp = http.get(url).send().await.unwrap();
        assert_eq!(read_capped(resp, 1024).await.unwrap().len(), 1000);
    }

    #[tokio::test]
    async fn a_stopped_vault_says_the_connection_was_refused() {
        crate::install_crypto_provider();
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = reqwest::Client::new()
            .get(format!("https://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        let err = transport_error(err);
        assert!(
            matches!(err, ClientError::Transport(_)),
            "not a transport error"
        );
        let text = err.to_string();
        assert!(text.to_lowercase().contains("refused"), "{text}");
        assert!(
            !text.contains(&port.to_string()),
            "no URL in the message: {text}"
        );
    }

    /// A stub vault over TLS on 127.0.0.1: it answers the `answers` in turn (status, extra
    /// headers), one per connection, counting the requests. Returns a client configured
    /// for it and the counter.
    async fn stub_server(
        answers: Vec<(u16, &'static str)>,
    ) -> (
        VaultClient,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        tempfile::TempDir,
    ) {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        crate::install_crypto_provider();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            for (status, headers) in answers {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut conn = acceptor.accept(tcp).await.unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = conn.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the client hung up mid-request");
                    head.extend_from_slice(&buf[..n]);
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let body = if status == 200 {
                    r#"{"id":"https://127.0.0.1/secrets/s/v1","value":"ok","attributes":{}}"#
                        .to_string()
                } else {
                    r#"{"error":{"code":"Throttled","message":"slow down"}}"#.to_string()
                };
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{headers}\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                conn.write_all(answer.as_bytes()).await.unwrap();
                conn.shutdown().await.unwrap();
            }
        });
        let client = VaultClient::new(ClientConfig {
            url: format!("https://{addr}"),
            token: Zeroizing::new("t".into()),
            ca_file: Some(ca),
        })
        .unwrap();
        (client, count, dir)
    }

    fn quick() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            max_wait: Duration::from_secs(30),
            first_backoff: Duration::from_millis(10),
        }
    }

    #[tokio::test]
    async fn retries_a_429_after_its_retry_after_against_a_stub_server() {
        use std::sync::atomic::Ordering;
        let (c, count, _dir) = stub_server(vec![(429, "retry-after: 1\r\n"), (200, "")]).await;
        let started = std::time::Instant::now();
        let b = c.with_retries(quick()).get_secret("s", None).await.unwrap();
        assert_eq!(b.value.as_deref(), Some("ok"));
        assert_eq!(count.load(Ordering::SeqCst), 2);
        // The vault's 1 s, not the 10 ms backoff.
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn retries_503s_with_backoff_and_gives_up_after_the_attempts_against_a_stub_server() {
        use std::sync::atomic::Ordering;
        let (c, count, _dir) = stub_server(vec![(503, ""), (503, ""), (503, ""), (200, "")]).await;
        let err = c
            .with_retries(quick())
            .get_secret("s", None)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(503), "{err}");
        assert_eq!(count.load(Ordering::SeqCst), 3, "three tries in all");
    }

    #[tokio::test]
    async fn a_long_retry_after_is_capped_against_a_stub_server() {
        use std::sync::atomic::Ordering;
        let (c, count, _dir) = stub_server(vec![(429, "retry-after: 3600\r\n"), (200, "")]).await;
        let policy = RetryPolicy {
            max_wait: Duration::from_millis(100),
            ..quick()
        };
        let started = std::time::Instant::now();
        c.with_retries(policy).get_secret("s", None).await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn without_a_policy_a_429_and_other_errors_are_not_retried_against_a_stub_server() {
        use std::sync::atomic::Ordering;
        let (c, count, _dir) = stub_server(vec![(429, "retry-after: 1\r\n"), (200, "")]).await;
        let err = c.get_secret("s", None).await.unwrap_err();
        assert_eq!(err.status(), Some(429), "{err}");
        assert_eq!(count.load(Ordering::SeqCst), 1);
        // A 500 may have been processed: not retried even with a policy.
        let (c, count, _dir) = stub_server(vec![(500, ""), (200, "")]).await;
        let err = c
            .with_retries(quick())
            .get_secret("s", None)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(500), "{err}");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
