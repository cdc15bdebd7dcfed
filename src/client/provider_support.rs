//! What the CSI provider needs from the client beyond the CLI's methods: a client built
//! from a CA bundle held in memory (a SecretProviderClass may carry the PEM inline; the
//! provider writes nothing to disk), and a certificate's DER.

use super::{ClientError, VaultClient};
use reqwest::{Certificate, Method, Url};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use zeroize::Zeroizing;

/// The parts of a CertificateBundle the provider reads.
#[derive(Debug, Clone)]
pub struct CertificateDer {
    /// `…/certificates/{name}/{version}`.
    pub id: String,
    /// The certificate, DER (decoded from the bundle's standard-base64 `cer`).
    pub cer: Vec<u8>,
}

/// A CertificateBundle as read: while the first version is being issued it has no `cer`.
#[derive(serde::Deserialize)]
struct PendingOrIssued {
    id: String,
    #[serde(default, deserialize_with = "optional_cer_from_base64")]
    cer: Option<Vec<u8>>,
}

fn optional_cer_from_base64<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<u8>>, D::Error> {
    use base64::Engine;
    let s: Option<String> = serde::Deserialize::deserialize(d)?;
    s.map(|s| {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|_| serde::de::Error::custom("cer is not base64"))
    })
    .transpose()
}

impl VaultClient {
    /// A client for `url` trusting only the CA certificates in `ca_pem`, with no token
    /// (give it one per request with [`VaultClient::with_token`]). One such client per
    /// vault shares its connection pool across every pod that mounts from that vault.
    pub fn for_provider(
        url: &str,
        ca_pem: &[u8],
        request_timeout: Duration,
    ) -> Result<Self, ClientError> {
        crate::install_crypto_provider();
        let origin = Url::parse(url)
            .map_err(|e| ClientError::config_with(format!("invalid vault URL '{url}'"), e))?;
        if origin.scheme() != "https" {
            return Err(ClientError::config(format!(
                "the vault URL must be https:// (got '{url}')"
            )));
        }
        let host = origin
            .host_str()
            .ok_or_else(|| ClientError::config("the vault URL has no host"))?
            .to_string();
        let certs = Certificate::from_pem_bundle(ca_pem)
            .map_err(|e| ClientError::config_with("parsing the CA bundle", e))?;
        if certs.is_empty() {
            return Err(ClientError::config("the CA bundle holds no certificate"));
        }
        let mut b = reqwest::Client::builder()
            .https_only(true)
            .user_agent(concat!("kvault-provider/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .timeout(request_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tls_certs_only(certs);
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
            token: Zeroizing::new(String::new()),
            retry: None,
        })
    }

    /// `GET /certificates/{name}/{version}` (latest when `version` is `None`): the
    /// certificate's id and DER.
    pub async fn get_certificate_der(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<CertificateDer, ClientError> {
        let path = format!(
            "/certificates/{}/{}",
            Self::seg(name),
            Self::seg(version.unwrap_or(""))
        );
        let bundle: PendingOrIssued = self.call(Method::GET, &path, &[], None::<&()>).await?;
        match bundle.cer {
            Some(cer) => Ok(CertificateDer { id: bundle.id, cer }),
            // A certificate whose first issuance is pending has nothing to mount yet.
            None => Err(ClientError::Api {
                status: 404,
                code: "CertificateNotFound".into(),
                message: format!(
                    "Certificate '{name}' has no issued version yet (its issuance is pending)."
                ),
            }),
        }
    }

    /// `GET /certificates/{name}/versions`: every version's id, `created` and `enabled`.
    pub async fn list_certificate_versions_for_mount(
        &self,
        name: &str,
    ) -> Result<Vec<crate::wire::SecretItem>, ClientError> {
        // A CertificateItem has the same `id` and `attributes` members as a SecretItem.
        self.list_all(&format!("/certificates/{}/versions", Self::seg(name)))
            .await
    }
}
