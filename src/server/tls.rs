//! TLS 1.2/1.3 only (rustls on aws-lc-rs), with the certificate re-read from disk when its
//! files change — new handshakes get the new certificate, open connections are untouched.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// The oldest protocol version a vault accepts.
pub use crate::policy::TlsVersion as TlsMinVersion;

impl std::str::FromStr for TlsMinVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s
            .trim()
            .trim_start_matches("TLS")
            .trim_start_matches("tls")
            .trim()
        {
            "1.2" | "1_2" | "12" => Ok(Self::Tls12),
            "1.3" | "1_3" | "13" => Ok(Self::Tls13),
            other => Err(format!(
                "unsupported minimum TLS version '{other}': use 1.2 or 1.3 (older versions are never accepted)"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading TLS certificate {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("reading TLS private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("TLS private key {key} does not match certificate {cert}")]
    Mismatch { cert: String, key: String },
    #[error("building the TLS configuration: {0}")]
    Config(String),
}

/// Loads a PEM chain and key and checks that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Cert {
            path: cert.display().to_string(),
            reason: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert {
            path: cert.display().to_string(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Cert {
            path: cert.display().to_string(),
            reason: "no certificate in the file".into(),
        });
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::Key {
            path: key.display().to_string(),
            reason: e.to_string(),
        })?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|_| TlsError::Mismatch {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
    })?;
    Ok(ck)
}

type Stamp = Option<(SystemTime, u64)>;

fn stamp(p: &Path) -> Stamp {
    std::fs::metadata(p)
        .ok()
        .and_then(|m| Some((m.modified().ok()?, m.len())))
}

/// Serves the current certificate and swaps in a new one when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamps: RwLock<(Stamp, Stamp)>,
}

impl ReloadingCert {
    pub fn load(cert_path: PathBuf, key_path: PathBuf) -> Result<Self, TlsError> {
        let ck = load_certified_key(&cert_path, &key_path)?;
        let stamps = (stamp(&cert_path), stamp(&key_path));
        Ok(Self {
            cert_path,
            key_path,
            current: RwLock::new(Arc::new(ck)),
            stamps: RwLock::new(stamps),
        })
    }

    /// Reloads when either file changed. A half-written or mismatched pair keeps the old
    /// certificate in service (and is retried on the next check).
    pub fn reload_if_changed(&self) -> bool {
        let now = (stamp(&self.cert_path), stamp(&self.key_path));
        if self.stamps.read().map(|s| *s == now).unwrap_or(true) {
            return false;
        }
        match load_certified_key(&self.cert_path, &self.key_path) {
            Ok(ck) => {
                if let Ok(mut cur) = self.current.write() {
                    *cur = Arc::new(ck);
                }
                if let Ok(mut s) = self.stamps.write() {
                    *s = now;
                }
                tracing::info!(cert = %self.cert_path.display(), "reloaded TLS certificate");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate changed but could not be loaded; keeping the current one");
                false
            }
        }
    }

    /// Polls the files until the returned task is aborted.
    pub fn spawn_watcher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.reload_if_changed();
            }
        })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// The server's rustls configuration: explicit protocol versions, ALPN h2 + http/1.1.
pub fn server_config(
    certs: Arc<ReloadingCert>,
    min: TlsMinVersion,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min {
        TlsMinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsMinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

pub fn version_name(v: Option<rustls::ProtocolVersion>) -> &'static str {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_versions_parse_and_old_ones_are_refused() {
        assert_eq!(
            "1.2".parse::<TlsMinVersion>().unwrap(),
            TlsMinVersion::Tls12
        );
        assert_eq!(
            "TLS1.3".parse::<TlsMinVersion>().unwrap(),
            TlsMinVersion::Tls13
        );
        assert!("1.1".parse::<TlsMinVersion>().is_err());
        assert!("1.0".parse::<TlsMinVersion>().is_err());
    }
}
