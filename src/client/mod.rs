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
mod keys;
pub mod provider_support;

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

#[derive(Clone)]
pub struct VaultClient {
    http: reqwest::Client,
    origin: Url,
    token: Zeroizing<String>,
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
        })
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
        // Never send the token anywhere but the vault we were configured for.
        if url.origin() != self.origin.origin() {
            return Err(ClientError::decode(format!(
                "refusing to follow a link to another origin: {}",
                url.origin().ascii_serialization()
            )));
        }
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(self.token.as_str());
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let resp = req.send().await.map_err(transport_error)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let bytes = read_capped(resp, 64 * 1024).await.unwrap_or_default();
        Err(match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
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
        })
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
}
