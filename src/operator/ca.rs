//! The operator's cluster CA and the vaults' server certificates.
//!
//! The CA (EC P-256, ten years) lives in the Secret `kvault-operator-ca` of the operator's
//! namespace, created at first start and never replaced. Each vault's `<vault>-tls` Secret
//! holds a certificate it signed (see [`super::desired::server_certificate_request`]),
//! renewed when fewer than 30 days remain or when the CA changed. Nothing here logs key
//! material.

use super::OperatorSettings;
use super::desired::{self, DesiredError, NOT_AFTER_ANNOTATION};
use crate::api::Vault;
use crate::crypto::keys::{Curve, KeyMaterial};
use crate::crypto::x509::{self, CertRequest, Signer};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// The CA Secret in the operator's namespace.
pub const CA_SECRET: &str = "kvault-operator-ca";
pub const CA_VALIDITY_MONTHS: u32 = 120;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("the operator CA: {0}")]
    Ca(String),
    #[error(transparent)]
    Desired(#[from] DesiredError),
}

/// The CA: its certificate and key.
pub struct Ca {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    key: KeyMaterial,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn ca_err(e: impl std::fmt::Display) -> CaError {
    CaError::Ca(e.to_string())
}

fn pem_cert(der: &[u8]) -> String {
    crate::crypto::pem::encode("CERTIFICATE", der).to_string()
}

impl Ca {
    /// A MAC key for `purpose`, derived from the CA's private key: every replica holding
    /// the CA derives the same key, and nobody without it can.
    pub fn derive_mac_key(&self, purpose: &str) -> aws_lc_rs::hmac::Key {
        let stored = self.key.to_stored();
        let root = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &stored);
        let derived = aws_lc_rs::hmac::sign(&root, purpose.as_bytes());
        aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, derived.as_ref())
    }

    /// A new CA.
    pub fn generate(now: i64) -> Result<Self, CaError> {
        let key = KeyMaterial::generate_ec(Curve::P256).map_err(ca_err)?;
        let req = CertRequest {
            subject: "CN=kvault operator CA,O=kvault".into(),
            key_usage: vec![
                "keyCertSign".into(),
                "cRLSign".into(),
                "digitalSignature".into(),
            ],
            validity_months: CA_VALIDITY_MONTHS,
            ca: true,
            now,
            ..Default::default()
        };
        let cert_der = x509::issue(&req, &key, Signer::SelfSigned).map_err(ca_err)?;
        Ok(Self {
            cert_pem: pem_cert(&cert_der),
            cert_der,
            key,
        })
    }

    /// The CA Secret (`kubernetes.io/tls`). Never log or `Debug`-print it.
    pub fn to_secret(&self, namespace: &str) -> Result<Secret, CaError> {
        let key_pem = x509::pem_bundle(Some(&self.key), &[]);
        Ok(Secret {
            metadata: ObjectMeta {
                name: Some(CA_SECRET.into()),
                namespace: Some(namespace.into()),
                labels: Some(BTreeMap::from([
                    ("app.kubernetes.io/part-of".into(), "kvault".into()),
                    (
                        "app.kubernetes.io/managed-by".into(),
                        super::FIELD_MANAGER.into(),
                    ),
                ])),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            immutable: Some(true),
            data: Some(BTreeMap::from([
                (
                    "tls.crt".into(),
                    ByteString(self.cert_pem.as_bytes().to_vec()),
                ),
                ("tls.key".into(), ByteString(key_pem.as_bytes().to_vec())),
            ])),
            ..Default::default()
        })
    }

    /// The CA from its Secret.
    pub fn from_secret(secret: &Secret) -> Result<Self, CaError> {
        let data = secret
            .data
            .as_ref()
            .ok_or_else(|| ca_err(format!("Secret {CA_SECRET} has no data")))?;
        let part = |k: &str| {
            data.get(k)
                .map(|b| b.0.as_slice())
                .ok_or_else(|| ca_err(format!("Secret {CA_SECRET} has no {k}")))
        };
        let mut pem = Zeroizing::new(part("tls.key")?.to_vec());
        pem.extend_from_slice(part("tls.crt")?);
        let imported = x509::import_pem(&pem).map_err(ca_err)?;
        let cert_der = imported
            .chain
            .into_iter()
            .next()
            .ok_or_else(|| ca_err(format!("Secret {CA_SECRET} has no certificate")))?;
        Ok(Self {
            cert_pem: pem_cert(&cert_der),
            cert_der,
            key: imported.key,
        })
    }

    /// A fresh server certificate for a vault: its `<vault>-tls` Secret.
    pub fn server_secret(
        &self,
        vault: &Vault,
        settings: &OperatorSettings,
        now: i64,
    ) -> Result<Secret, CaError> {
        let req = desired::server_certificate_request(vault, settings, now)?;
        let (leaf, chain, key_pem) = self.issue_leaf(&req)?;
        let not_after = x509::parse(&leaf).map_err(ca_err)?.exp;
        let not_after = k8s_openapi::jiff::Timestamp::from_second(not_after)
            .map_err(ca_err)?
            .to_string();
        Ok(desired::tls_secret(
            vault,
            &chain,
            &key_pem,
            &self.cert_pem,
            &not_after,
        )?)
    }
}

impl Ca {
    /// A serving certificate for the operator's own HTTPS port (the token service and the
    /// webhook): PEM chain and key, for `dns_names` and the loopback addresses.
    pub fn operator_serving_pair(
        &self,
        dns_names: Vec<String>,
        now: i64,
    ) -> Result<(String, Zeroizing<String>), CaError> {
        let req = CertRequest {
            subject: format!(
                "CN={}",
                dns_names.first().map_or("kvault-operator", String::as_str)
            ),
            dns_names,
            ip_addresses: vec![
                std::net::IpAddr::from([127, 0, 0, 1]),
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
            key_usage: vec!["digitalSignature".into(), "keyEncipherment".into()],
            ekus: vec!["1.3.6.1.5.5.7.3.1".into()],
            validity_months: desired::CERT_VALIDITY_MONTHS,
            now,
            ..Default::default()
        };
        let (_, chain, key_pem) = self.issue_leaf(&req)?;
        Ok((chain, key_pem))
    }

    /// A leaf for `req` with a fresh P-256 key, signed by this CA: its DER, its PEM chain
    /// (leaf then CA) and its PEM key.
    fn issue_leaf(
        &self,
        req: &CertRequest,
    ) -> Result<(Vec<u8>, String, Zeroizing<String>), CaError> {
        let key = KeyMaterial::generate_ec(Curve::P256).map_err(ca_err)?;
        let leaf = x509::issue(
            req,
            &key,
            Signer::Ca {
                cert_der: &self.cert_der,
                key: &self.key,
            },
        )
        .map_err(ca_err)?;
        let chain = format!("{}{}", pem_cert(&leaf), self.cert_pem);
        Ok((leaf, chain, x509::pem_bundle(Some(&key), &[])))
    }
}

/// Whether a vault's TLS Secret must be (re)issued: missing, expiring within 30 days, or
/// signed by another CA.
pub fn needs_new_certificate(existing: Option<&Secret>, ca_pem: &str, now: i64) -> bool {
    let Some(s) = existing else { return true };
    let not_after = s
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NOT_AFTER_ANNOTATION))
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(|t| t.as_second());
    let same_ca = s
        .data
        .as_ref()
        .and_then(|d| d.get("ca.crt"))
        .is_some_and(|c| c.0 == ca_pem.as_bytes());
    !same_ca || desired::certificate_needs_renewal(not_after, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::VaultSpec;
    use crate::operator::fixtures;

    const NOW: i64 = 1_790_000_000;

    #[test]
    fn the_ca_survives_its_secret() {
        let ca = Ca::generate(NOW).unwrap();
        let secret = ca.to_secret("kvault-system").unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some(CA_SECRET));
        assert_eq!(secret.immutable, Some(true));
        let back = Ca::from_secret(&secret).unwrap();
        assert_eq!(back.cert_der, ca.cert_der);
        assert!(x509::parse(&ca.cert_der).unwrap().is_ca);
    }

    #[test]
    fn server_certificates_are_signed_by_the_ca_and_renewed_in_time() {
        let ca = Ca::generate(NOW).unwrap();
        let vault = fixtures::vault("team-a", "payments", VaultSpec::default());
        let s = ca
            .server_secret(&vault, &OperatorSettings::test(), NOW)
            .unwrap();
        let data = s.data.as_ref().unwrap();
        assert_eq!(data["ca.crt"].0, ca.cert_pem.as_bytes());
        let chain =
            x509::import_pem(&[data["tls.key"].0.clone(), data["tls.crt"].0.clone()].concat())
                .unwrap();
        assert_eq!(chain.chain.len(), 2);
        let leaf = x509::parse(&chain.chain[0]).unwrap();
        assert!(!leaf.is_ca);
        assert!(leaf.subject.contains("payments.team-a.svc"));

        assert!(!needs_new_certificate(Some(&s), &ca.cert_pem, NOW));
        // Within 30 days of expiry: renew.
        assert!(needs_new_certificate(
            Some(&s),
            &ca.cert_pem,
            leaf.exp - 29 * 86_400
        ));
        // Another CA: reissue.
        let other = Ca::generate(NOW).unwrap();
        assert!(needs_new_certificate(Some(&s), &other.cert_pem, NOW));
        assert!(needs_new_certificate(None, &ca.cert_pem, NOW));
    }

    #[test]
    fn the_server_loads_the_issued_secret_as_mounted() {
        crate::install_crypto_provider();
        let ca = Ca::generate(NOW).unwrap();
        let vault = fixtures::vault("team-a", "payments", VaultSpec::default());
        let s = ca
            .server_secret(&vault, &OperatorSettings::test(), NOW)
            .unwrap();
        let data = s.data.unwrap();
        let dir = tempfile::tempdir().unwrap();
        for file in ["tls.crt", "tls.key"] {
            std::fs::write(dir.path().join(file), &data[file].0).unwrap();
        }
        let loaded = crate::server::tls::load_certified_key(
            &dir.path().join("tls.crt"),
            &dir.path().join("tls.key"),
        );
        assert!(loaded.is_ok(), "{:?}", loaded.err());
        assert_eq!(loaded.unwrap().cert.len(), 2);
    }
}
