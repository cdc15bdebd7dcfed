//! `kvault dev`: a working vault on this machine with embedded defaults — a state directory
//! with a CA and server certificate, a master key, a local token issuer and the data — and
//! `kvault token`, which mints tokens from that issuer.

use crate::crypto::MasterKey;
use crate::policy::{PrincipalKind, PrincipalRef};
use crate::server::audit::AuditSinks;
use crate::server::auth::{IssuerConfig, JwksSource};
use crate::server::config::{MasterKeySource, ServerConfig};
use crate::server::objects::{MAX_RETENTION_DAYS, MIN_RETENTION_DAYS, SoftDelete};
use crate::server::tls::TlsMinVersion;
use crate::wire::{VaultUrl, default_audiences};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair as RcKeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

pub const DEFAULT_STATE_DIR: &str = ".kvault";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// The principal `KVAULT_TOKEN` in `dev.env` names.
pub const DEV_ADMIN: &str = "dev-admin";

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
    #[error(
        "{path} is not a kvault dev state directory (run `kvault dev --state-dir {path}` first)"
    )]
    NotInitialised { path: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DevError + '_ {
    move |source| DevError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct DevOptions {
    /// Where the CA, certificates, master key, issuer key and data live.
    #[arg(long, env = "KVAULT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// The vault URL clients use; its host goes into the certificate and its parent domain
    /// becomes the challenge resource. Default: https://dev.kvault.localhost:<port>.
    #[arg(long)]
    pub url: Option<String>,
    /// Days a deleted object stays recoverable (7-90).
    #[arg(long, default_value_t = MAX_RETENTION_DAYS)]
    pub retention_days: u32,
    /// Refuse purges.
    #[arg(long)]
    pub purge_protection: bool,
    /// Oldest TLS version accepted: 1.2 or 1.3.
    #[arg(long, default_value = "1.2")]
    pub tls_min_version: String,
    /// Plain-HTTP listener for Prometheus `/metrics` (off unless given).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// "embedded" (default: in the state directory) or a postgres:// URL, to try several
    /// replicas on one database (see `kvault server --storage`).
    #[arg(long)]
    pub storage: Option<String>,
    /// File holding the database password.
    #[arg(long)]
    pub storage_password_file: Option<PathBuf>,
    /// PEM bundle that verifies the database's certificate.
    #[arg(long)]
    pub storage_ca_file: Option<PathBuf>,
    /// The PostgreSQL schema of the vault's records (default "kvault").
    #[arg(long)]
    pub storage_schema: Option<String>,
    /// Address of the workload-identity token service (`AZURE_AUTHORITY_HOST` in dev.env).
    /// Default: the vault's address with the next port (any free port when that is 0).
    #[arg(long)]
    pub identity_listen: Option<SocketAddr>,
}

/// What `kvault token` needs to know about a running dev vault.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DevInfo {
    url: String,
    issuer: String,
    kid: String,
    /// The token service's origin (`AZURE_AUTHORITY_HOST`), once it listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authority_host: Option<String>,
}

/// Writes a file readable only by its owner, replacing it atomically.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), DevError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(contents).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn write_public(path: &Path, contents: &[u8]) -> Result<(), DevError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Creates a file that must never be overwritten (the master key).
fn create_once(path: &Path, contents: &[u8]) -> Result<(), DevError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(contents).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

struct Paths {
    dir: PathBuf,
}

impl Paths {
    fn p(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }
}

/// A loaded (or freshly created) dev state directory.
pub struct DevState {
    pub dir: PathBuf,
    pub url: VaultUrl,
    pub ca_file: PathBuf,
    pub env_file: PathBuf,
    issuer: String,
    info: DevInfo,
    dev_issuer: IssuerConfig,
    /// The token service's listener, until it serves.
    identity_listener: Option<std::net::TcpListener>,
    /// The token service's origin (`AZURE_AUTHORITY_HOST`).
    pub authority_host: String,
    identity_issuer: String,
    /// The dev issuer's key, until the token service takes it.
    issuer_key: Option<Zeroizing<Vec<u8>>>,
}

fn load_or_create_ca(paths: &Paths) -> Result<(String, RcKeyPair), DevError> {
    let (cert_p, key_p) = (paths.p("ca.pem"), paths.p("ca-key.pem"));
    if cert_p.exists() && key_p.exists() {
        let cert = std::fs::read_to_string(&cert_p).map_err(io_err(&cert_p))?;
        let key_pem = Zeroizing::new(std::fs::read_to_string(&key_p).map_err(io_err(&key_p))?);
        let key = RcKeyPair::from_pem(&key_pem)?;
        return Ok((cert, key));
    }
    let key = RcKeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kvault dev CA");
    dn.push(DnType::OrganizationName, "kvault");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params.self_signed(&key)?;
    write_private(&key_p, key.serialize_pem().as_bytes())?;
    write_public(&cert_p, cert.pem().as_bytes())?;
    Ok((cert.pem(), key))
}

fn issue_server_cert(
    paths: &Paths,
    ca_pem: &str,
    ca_key: &RcKeyPair,
    host: &str,
) -> Result<(PathBuf, PathBuf), DevError> {
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key)?;
    let key = RcKeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, host);
    params.distinguished_name = dn;
    let mut sans = vec![host.to_string(), "localhost".to_string()];
    sans.dedup();
    params.subject_alt_names = sans
        .into_iter()
        .map(|h| match h.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => h.try_into().map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()?;
    for ip in ["127.0.0.1", "::1"] {
        if let Ok(a) = ip.parse() {
            params.subject_alt_names.push(SanType::IpAddress(a));
        }
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365);
    let cert = params.signed_by(&key, &issuer)?;
    let (cert_p, key_p) = (paths.p("server.pem"), paths.p("server-key.pem"));
    write_private(&key_p, key.serialize_pem().as_bytes())?;
    write_public(&cert_p, format!("{}{}", cert.pem(), ca_pem).as_bytes())?;
    Ok((cert_p, key_p))
}

fn load_or_create_master_key(paths: &Paths) -> Result<MasterKey, DevError> {
    let p = paths.p("master.key");
    if p.exists() {
        let bytes = Zeroizing::new(std::fs::read(&p).map_err(io_err(&p))?);
        return MasterKey::from_file_contents(&bytes)
            .map_err(|e| DevError::Invalid(format!("{}: {e}", p.display())));
    }
    let key = MasterKey::generate().map_err(|e| DevError::Invalid(e.to_string()))?;
    create_once(&p, key.to_base64().as_bytes())?;
    Ok(key)
}

/// The dev issuer's signing key (ES256), PKCS#8 DER.
fn load_or_create_issuer_key(paths: &Paths) -> Result<Zeroizing<Vec<u8>>, DevError> {
    let p = paths.p("issuer-key.pem");
    if p.exists() {
        let pem = Zeroizing::new(std::fs::read(&p).map_err(io_err(&p))?);
        let der = PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|e| DevError::Invalid(format!("{}: {e}", p.display())))?;
        return Ok(Zeroizing::new(der.secret_der().to_vec()));
    }
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| DevError::Invalid("generating the issuer key failed".into()))?;
    let der = Zeroizing::new(doc.as_ref().to_vec());
    write_private(
        &p,
        crate::crypto::pem::encode("PRIVATE KEY", &der).as_bytes(),
    )?;
    Ok(der)
}

fn issuer_kid(pkcs8: &[u8]) -> Result<String, DevError> {
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
        .map_err(|_| DevError::Invalid("the issuer key is not an ECDSA P-256 key".into()))?;
    Ok(crate::crypto::hex(
        &crate::crypto::sha256(kp.public_key().as_ref())[..8],
    ))
}

fn issuer_jwks(pkcs8: &[u8], kid: &str) -> Result<JwkSet, DevError> {
    let mut jwk = Jwk::from_encoding_key(&EncodingKey::from_ec_der(pkcs8), Algorithm::ES256)
        .map_err(|e| DevError::Invalid(format!("issuer JWK: {e}")))?;
    jwk.common.key_id = Some(kid.to_string());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(JwkSet { keys: vec![jwk] })
}

/// Prepares the state directory and the server configuration for `kvault dev`.
pub fn prepare(opts: &DevOptions) -> Result<(ServerConfig, DevState), DevError> {
    if !(MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS).contains(&opts.retention_days) {
        return Err(DevError::Invalid(format!(
            "--retention-days must be {MIN_RETENTION_DAYS}-{MAX_RETENTION_DAYS}"
        )));
    }
    let tls_min_version: TlsMinVersion = opts.tls_min_version.parse().map_err(DevError::Invalid)?;
    let url_text = opts
        .url
        .clone()
        .unwrap_or_else(|| format!("https://dev.kvault.localhost:{}", opts.listen.port()));
    let url = VaultUrl::parse(&url_text).map_err(|e| DevError::Invalid(format!("--url: {e}")))?;
    std::fs::create_dir_all(&opts.state_dir).map_err(io_err(&opts.state_dir))?;
    let dir = std::fs::canonicalize(&opts.state_dir).map_err(io_err(&opts.state_dir))?;
    let paths = Paths { dir: dir.clone() };
    let (ca_pem, ca_key) = load_or_create_ca(&paths)?;
    let (tls_cert, tls_key) = issue_server_cert(&paths, &ca_pem, &ca_key, &url.host)?;
    let master = load_or_create_master_key(&paths)?;
    let issuer_key = load_or_create_issuer_key(&paths)?;
    let kid = issuer_kid(&issuer_key)?;
    let issuer = format!("{}/_kvault/issuer", url.origin);
    let info = DevInfo {
        url: url.origin.clone(),
        issuer: issuer.clone(),
        kid: kid.clone(),
        authority_host: None,
    };
    let identity_listen = opts.identity_listen.unwrap_or_else(|| {
        let port = match opts.listen.port() {
            0 | u16::MAX => 0,
            p => p + 1,
        };
        SocketAddr::new(opts.listen.ip(), port)
    });
    // Bound now: the token service's origin is its issuer's name, which the vault must know.
    let identity_listener = std::net::TcpListener::bind(identity_listen).map_err(|e| {
        DevError::Invalid(format!(
            "cannot listen on {identity_listen} (--identity-listen): {e}"
        ))
    })?;
    let identity_port = identity_listener
        .local_addr()
        .map_err(|e| DevError::Invalid(e.to_string()))?
        .port();
    let authority_host = format!("https://{}:{identity_port}", url.host);
    let identity_issuer = format!(
        "{authority_host}/{}",
        crate::identity::exchange::DEFAULT_TENANT
    );
    let resource = url.default_resource();
    let dev_jwks = issuer_jwks(&issuer_key, &kid)?;
    let dev_issuer = IssuerConfig {
        issuer: issuer.clone(),
        jwks: JwksSource::Static(dev_jwks.clone()),
        service_accounts: true,
        speaks_for: None,
    };
    // The token service signs with the dev issuer's key under its own name (MSAL checks that
    // the issuer of its OpenID configuration is on the authority's origin), speaking for
    // the dev issuer.
    let token_service_issuer = IssuerConfig {
        issuer: identity_issuer.clone(),
        jwks: JwksSource::Static(dev_jwks),
        service_accounts: true,
        speaks_for: Some(issuer.clone()),
    };
    let config = ServerConfig {
        listen: opts.listen,
        resource: resource.clone(),
        authority: Some(identity_issuer.clone()),
        tls_cert,
        tls_key,
        tls_min_version,
        storage: crate::server::config::storage_from(&crate::server::config::ServerOptions {
            data_dir: Some(paths.p("data")),
            storage: opts.storage.clone(),
            storage_password_file: opts.storage_password_file.clone(),
            storage_ca_file: opts.storage_ca_file.clone(),
            storage_schema: opts.storage_schema.clone(),
            ..Default::default()
        })
        .map_err(|e| DevError::Invalid(e.to_string()))?,
        master_key: MasterKeySource::Given(master),
        // The dev issuer stands in for the cluster's: `kvault token` mints service-account
        // tokens too, and grants naming no issuer are its (there is no people issuer).
        issuers: vec![dev_issuer.clone(), token_service_issuer],
        audiences: default_audiences(&url, &resource),
        soft_delete: SoftDelete {
            retention_days: opts.retention_days,
            purge_protection: opts.purge_protection,
        },
        url: url.clone(),
        extra_ca: Vec::new(),
        tls_reload_interval: Duration::from_secs(5),
        jwks_refresh_interval: Duration::from_secs(30),
        sweep_interval: Duration::from_secs(60),
        events: Default::default(),
        clock: crate::clock::system(),
        admins: vec![PrincipalRef {
            kind: PrincipalKind::User,
            name: DEV_ADMIN.into(),
            namespace: None,
            issuer: None,
        }],
        initial_policy: Some(crate::server::dev_policy(DEV_ADMIN)),
        audit: AuditSinks {
            stdout: false,
            file: Some(paths.p("audit.log")),
        },
        metrics_listen: opts.metrics_listen,
        limits: crate::listener::Limits::default(),
    };
    let state = DevState {
        ca_file: paths.p("ca.pem"),
        env_file: paths.p("dev.env"),
        dir,
        url,
        issuer,
        info,
        dev_issuer,
        identity_listener: Some(identity_listener),
        authority_host,
        identity_issuer,
        issuer_key: Some(issuer_key),
    };
    Ok((config, state))
}

impl DevState {
    /// Records where the token service listens (`dev.json`), mints the administrator's
    /// tokens and writes `dev.env`.
    pub fn write_env(&mut self, authority_host: Option<String>) -> Result<(), DevError> {
        self.info.authority_host = authority_host;
        write_public(
            &self.dir.join("dev.json"),
            &serde_json::to_vec_pretty(&self.info).map_err(|e| DevError::Invalid(e.to_string()))?,
        )?;
        let token = mint_token(
            &self.dir,
            &TokenRequest {
                user: Some(DEV_ADMIN.into()),
                ttl: Duration::from_secs(7 * 86_400),
                ..Default::default()
            },
        )?;
        // KVAULT_STATE_DIR (absolute) lets `kvault token` and `kvault dev` find this state
        // from any directory. SSL_CERT_FILE and REQUESTS_CA_BUNDLE replace the system roots for the shell that
        // sources dev.env, so they get the system bundle plus the dev CA.
        let ca = std::fs::read_to_string(&self.ca_file).map_err(io_err(&self.ca_file))?;
        let system = crate::crypto::pem::system_ca_bundle().unwrap_or_default();
        let bundle = self.dir.join("ca-bundle.pem");
        write_public(&bundle, format!("{system}\n{ca}").as_bytes())?;
        let q = |p: &Path| shell_quote(&p.display().to_string());
        // Workload identity, as the webhook injects it into pods: the SDKs'
        // DefaultAzureCredential exchanges this federated token at the token service.
        let identity = match &self.info.authority_host {
            Some(host) => {
                let file = self.dir.join(DEV_ADMIN_FEDERATED_TOKEN);
                write_federated_token(
                    &self.dir,
                    &file,
                    &TokenRequest {
                        user: Some(DEV_ADMIN.into()),
                        ttl: Duration::from_secs(7 * 86_400),
                        ..Default::default()
                    },
                )?;
                format!(
                    "export AZURE_AUTHORITY_HOST={host}\n\
                     export AZURE_TENANT_ID={tenant}\n\
                     export AZURE_CLIENT_ID={DEV_ADMIN}\n\
                     export AZURE_FEDERATED_TOKEN_FILE={file}\n",
                    tenant = crate::identity::exchange::DEFAULT_TENANT,
                    file = q(&file),
                )
            }
            None => String::new(),
        };
        let env = format!(
            "# kvault dev: source this file (. {env}) to use the vault from this shell.\n\
             export KVAULT_URL={url}\n\
             export KVAULT_TOKEN={token}\n\
             export KVAULT_CA_FILE={ca}\n\
             export REQUESTS_CA_BUNDLE={bundle}\n\
             export SSL_CERT_FILE={bundle}\n\
             export NODE_EXTRA_CA_CERTS={ca}\n\
             export KVAULT_STATE_DIR={state}\n{identity}",
            env = q(&self.env_file),
            state = q(&self.dir),
            url = self.url.origin,
            token = token.as_str(),
            ca = q(&self.ca_file),
            bundle = q(&bundle),
        );
        write_private(&self.env_file, env.as_bytes())
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token service of this dev vault: it accepts the dev issuer's tokens for the
    /// workload-identity audience and signs as the dev issuer (so the vault trusts what it
    /// issues with no further configuration).
    pub async fn token_service(
        &mut self,
        audit: crate::server::audit::AuditLog,
        metrics: crate::identity::IdentityMetrics,
    ) -> Result<(crate::identity::TokenService, tokio::net::TcpListener), DevError> {
        use crate::identity::{IdentityConfig, TokenService, exchange, signing};
        let der = self
            .issuer_key
            .take()
            .ok_or_else(|| DevError::Invalid("the token service is already running".into()))?;
        let key = signing::SigningKey::from_pkcs8(Some(self.info.kid.clone()), 0, der)
            .map_err(|e| DevError::Invalid(e.to_string()))?;
        let ring = std::sync::Arc::new(std::sync::RwLock::new(signing::KeyRing::new(vec![key])));
        let listener = self
            .identity_listener
            .take()
            .ok_or_else(|| DevError::Invalid("the token service is already running".into()))
            .and_then(|l| {
                l.set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpListener::from_std(l))
                    .map_err(|e| DevError::Invalid(format!("the token service's listener: {e}")))
            })?;
        let config = IdentityConfig {
            issuer: self.identity_issuer.clone(),
            tenant: exchange::DEFAULT_TENANT.into(),
            authority_host: self.authority_host.clone(),
            assertion_issuers: vec![self.dev_issuer.clone()],
            assertion_audience: exchange::DEFAULT_AUDIENCE.into(),
            token_ttl: crate::identity::DEFAULT_TOKEN_TTL,
            jwks_refresh_interval: Duration::from_secs(30),
        };
        let service = TokenService::new(config, ring, None, audit, metrics, crate::clock::system())
            .await
            .map_err(|e| DevError::Invalid(e.to_string()))?;
        Ok((service, listener))
    }
}

/// The dev administrator's federated token (`AZURE_FEDERATED_TOKEN_FILE` in dev.env).
pub const DEV_ADMIN_FEDERATED_TOKEN: &str = "dev-admin.federated-token";

/// Mints a token for the workload-identity audience and writes it to `file` (0600), as the
/// kubelet writes a pod's projected token.
pub fn write_federated_token(
    state_dir: &Path,
    file: &Path,
    req: &TokenRequest,
) -> Result<(), DevError> {
    let req = TokenRequest {
        audience: Some(crate::identity::exchange::DEFAULT_AUDIENCE.into()),
        ..req.clone()
    };
    let token = mint_token(state_dir, &req)?;
    write_private(file, token.as_bytes())
}

/// What `kvault token --federated-token-file` prints: the variables a process needs to use
/// the token through `DefaultAzureCredential`.
pub fn workload_identity_env(
    state_dir: &Path,
    client_id: &str,
    file: &Path,
) -> Result<String, DevError> {
    let info = read_info(state_dir)?;
    let host = info.authority_host.ok_or_else(|| {
        DevError::Invalid(
            "the dev vault has not started its token service yet (start `kvault dev`)".into(),
        )
    })?;
    Ok(format!(
        "export AZURE_AUTHORITY_HOST={host}\nexport AZURE_TENANT_ID={}\nexport AZURE_CLIENT_ID={}\nexport AZURE_FEDERATED_TOKEN_FILE={}\n",
        crate::identity::exchange::DEFAULT_TENANT,
        shell_quote(client_id),
        shell_quote(&file.display().to_string()),
    ))
}

fn read_info(state_dir: &Path) -> Result<DevInfo, DevError> {
    let info_p = state_dir.join("dev.json");
    match std::fs::read(&info_p) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| DevError::Invalid(format!("{}: {e}", info_p.display()))),
        Err(_) => Err(DevError::NotInitialised {
            path: state_dir.display().to_string(),
        }),
    }
}

fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Whom a dev token names.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// `NAMESPACE/NAME` of a service account.
    pub sa: Option<String>,
    pub user: Option<String>,
    pub groups: Vec<String>,
    pub app: Option<String>,
    pub ttl: Duration,
    /// Default: the vault URL.
    pub audience: Option<String>,
}

#[derive(Serialize)]
struct MintClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    azp: Option<&'a str>,
}

/// The subject a dev token for `req` carries (also the `client_id` it exchanges under).
pub fn subject_of(req: &TokenRequest) -> Result<String, DevError> {
    Ok(match (&req.sa, &req.user, &req.app) {
        (Some(sa), None, _) => {
            let (ns, name) = sa
                .split_once('/')
                .filter(|(n, s)| !n.is_empty() && !s.is_empty() && !s.contains('/'))
                .ok_or_else(|| DevError::Invalid("--sa must be NAMESPACE/NAME".into()))?;
            format!("system:serviceaccount:{ns}:{name}")
        }
        (None, Some(user), _) => user.clone(),
        (None, None, Some(app)) => app.clone(),
        (Some(_), Some(_), _) => {
            return Err(DevError::Invalid("give --sa or --user, not both".into()));
        }
        (None, None, None) => {
            return Err(DevError::Invalid(
                "say whom the token is for: --sa NAMESPACE/NAME, --user ID or --app ID".into(),
            ));
        }
    })
}

/// Signs a token with the dev issuer of `state_dir`.
pub fn mint_token(state_dir: &Path, req: &TokenRequest) -> Result<Zeroizing<String>, DevError> {
    let info = read_info(state_dir)?;
    let key_p = state_dir.join("issuer-key.pem");
    let pem = Zeroizing::new(std::fs::read(&key_p).map_err(io_err(&key_p))?);
    let der = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| DevError::Invalid(format!("{}: {e}", key_p.display())))?;
    let sub = subject_of(req)?;
    if req.ttl.is_zero() {
        return Err(DevError::Invalid("--ttl must be positive".into()));
    }
    let now = crate::clock::SystemClock.now_secs();
    let claims = MintClaims {
        iss: &info.issuer,
        aud: req.audience.as_deref().unwrap_or(&info.url),
        sub,
        iat: now,
        nbf: now,
        exp: now + req.ttl.as_secs() as i64,
        groups: &req.groups,
        azp: req.app.as_deref(),
    };
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(info.kid);
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ec_der(der.secret_der()),
    )
    .map_err(|e| DevError::Invalid(format!("signing the token: {e}")))?;
    Ok(Zeroizing::new(token))
}

/// Runs `kvault dev` until SIGINT/SIGTERM.
pub async fn run(opts: DevOptions) -> anyhow::Result<()> {
    let (config, mut state) = prepare(&opts)?;
    let (tls_cert, tls_key) = (config.tls_cert.clone(), config.tls_key.clone());
    let limits = config.limits;
    let server = crate::server::Server::start(config).await?;
    let authority_host = state.authority_host.clone();
    let (service, identity_listener) = state
        .token_service(
            server.state().audit.clone(),
            server.state().metrics.identity.clone(),
        )
        .await?;
    let certs = std::sync::Arc::new(crate::server::tls::ReloadingCert::load(tls_cert, tls_key)?);
    let tls = crate::server::tls::server_config(certs, TlsMinVersion::Tls12)?;
    let (stop_identity, identity_stopped) = tokio::sync::oneshot::channel::<()>();
    let identity = tokio::spawn(crate::identity::serve(
        identity_listener,
        tls,
        std::sync::Arc::new(service).router(),
        limits,
        async move {
            let _ = identity_stopped.await;
        },
    ));
    state.write_env(Some(authority_host.clone()))?;
    let addr = server.local_addr()?;
    println!(
        "kvault dev: vault {url} listening on {addr}\n\
         \n  state directory  {dir}\n  CA certificate   {ca}\n  token service    {authority_host} (AZURE_AUTHORITY_HOST)\n\
         \nUse it from a shell:\n  . {env}\n  kvault secret set hello world\n  kvault secret get hello\n\
         \nThe official SDKs need the vault's host to resolve; if `{host}` does not, add\n  127.0.0.1 {host}\nto /etc/hosts.\n\
         Mint more tokens with: kvault token --state-dir {dir} --user alice\n\
         Ctrl-C stops the vault; its data stays in the state directory.",
        url = state.url.origin,
        dir = state.dir.display(),
        ca = state.ca_file.display(),
        env = state.env_file.display(),
        host = state.url.host,
    );
    server.serve(crate::signal::shutdown_signal()).await;
    let _ = stop_identity.send(());
    let _ = identity.await;
    println!("kvault dev: stopped");
    Ok(())
}
