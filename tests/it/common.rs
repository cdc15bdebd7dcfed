//! A test vault: CA and server certificate from rcgen, a token issuer with RSA and EC keys
//! published as a JWKS file, and a server started in-process on 127.0.0.1.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kvault::client::{ClientConfig, VaultClient};
use kvault::clock::{ManualClock, SharedClock};
use kvault::crypto::MasterKey;
use kvault::policy::PolicyDocument;
use kvault::server::audit::AuditSinks;
use kvault::server::auth::{IssuerConfig, JwksSource};
use kvault::server::config::{MasterKeySource, ServerConfig, StorageConfig, parse_principal};
use kvault::server::objects::SoftDelete;
use kvault::server::store::postgres::PostgresConfig;
use kvault::server::tls::TlsMinVersion;
use kvault::server::{AppState, Server};
use kvault::wire::{VaultUrl, default_audiences};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

pub const HOST: &str = "t.kvault.localhost";
pub const ISSUER: &str = "https://issuer.test";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token issuer with one RSA and one EC P-256 key.
pub struct TestIssuer {
    pub rsa: KeyPair,
    pub ec: KeyPair,
    pub ec384: KeyPair,
    pub jwks_path: PathBuf,
}

impl TestIssuer {
    pub fn new(dir: &Path) -> Self {
        let rsa =
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        let ec = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ec384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let jwks_path = dir.join("jwks.json");
        let me = Self {
            rsa,
            ec,
            ec384,
            jwks_path,
        };
        me.write_jwks(&["rsa", "ec", "ec384"]);
        me
    }

    pub fn encoding_key(&self, kid: &str) -> EncodingKey {
        match kid {
            "rsa" => EncodingKey::from_rsa_pem(self.rsa.serialize_pem().as_bytes()).unwrap(),
            "ec" => EncodingKey::from_ec_pem(self.ec.serialize_pem().as_bytes()).unwrap(),
            "ec384" => EncodingKey::from_ec_pem(self.ec384.serialize_pem().as_bytes()).unwrap(),
            other => panic!("no key {other}"),
        }
    }

    pub fn jwk(&self, kid: &str) -> Jwk {
        let alg = match kid {
            "rsa" => Algorithm::RS256,
            "ec" => Algorithm::ES256,
            _ => Algorithm::ES384,
        };
        let mut jwk = Jwk::from_encoding_key(&self.encoding_key(kid), alg).unwrap();
        jwk.common.key_id = Some(kid.to_string());
        // RSA keys sign RS* and PS*: no alg pin on the RSA JWK.
        if kid == "rsa" {
            jwk.common.key_algorithm = None;
        }
        jwk
    }

    pub fn write_jwks(&self, kids: &[&str]) {
        let set = JwkSet {
            keys: kids.iter().map(|k| self.jwk(k)).collect(),
        };
        std::fs::write(&self.jwks_path, serde_json::to_vec(&set).unwrap()).unwrap();
    }

    pub fn sign(&self, alg: Algorithm, kid: &str, claims: &Value) -> String {
        let mut h = Header::new(alg);
        h.kid = Some(kid.to_string());
        jsonwebtoken::encode(&h, claims, &self.encoding_key(kid)).unwrap()
    }

    pub fn claims(&self, aud: &str, sub: &str) -> Value {
        let n = now();
        json!({"iss": ISSUER, "aud": aud, "sub": sub, "iat": n, "nbf": n, "exp": n + 3600})
    }
}

pub struct Certs {
    pub ca_pem: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_certs(dir: &Path, name: &str) -> Certs {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("test CA {name}"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca, &ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![HOST.to_string(), "localhost".into()]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    p.distinguished_name
        .push(rcgen::DnType::CommonName, format!("server {name}"));
    let cert = p.signed_by(&key, &issuer).unwrap();
    let certs = Certs {
        ca_pem: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}-cert.pem")),
        key: dir.join(format!("{name}-key.pem")),
    };
    std::fs::write(&certs.ca_pem, ca_cert.pem()).unwrap();
    std::fs::write(&certs.cert, cert.pem()).unwrap();
    std::fs::write(&certs.key, key.serialize_pem()).unwrap();
    certs
}

pub struct Options {
    pub soft_delete: SoftDelete,
    pub tls_min_version: TlsMinVersion,
    pub clock: Option<ManualClock>,
    /// Default: `alice` is Key Vault Administrator, nothing throttled.
    pub policy: Option<PolicyDocument>,
    /// Default: the embedded database in the fixture's data directory.
    pub storage: Option<StorageConfig>,
    /// Connection cap and timeouts (default: the server's defaults).
    pub limits: kvault::listener::Limits,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            soft_delete: SoftDelete::default(),
            tls_min_version: TlsMinVersion::Tls12,
            clock: None,
            policy: Some(kvault::server::dev_policy("alice")),
            storage: None,
            limits: kvault::listener::Limits::default(),
        }
    }
}

/// The control-plane principal of test vaults.
pub const OPERATOR: &str = "operator";

/// Files that outlive one server process: data, master key, certificates, issuer.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub certs: Certs,
    pub issuer: TestIssuer,
    pub master_key: PathBuf,
    pub port: u16,
}

impl Fixture {
    pub fn new() -> Self {
        kvault::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let certs = make_certs(dir.path(), "a");
        let issuer = TestIssuer::new(dir.path());
        let master_key = dir.path().join("master.key");
        std::fs::write(
            &master_key,
            MasterKey::generate().unwrap().to_base64().as_bytes(),
        )
        .unwrap();
        Self {
            dir,
            certs,
            issuer,
            master_key,
            port: free_port(),
        }
    }

    pub fn url(&self) -> String {
        format!("https://{HOST}:{}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config(&self, opts: &Options) -> ServerConfig {
        let url = VaultUrl::parse(&self.url()).unwrap();
        let resource = url.default_resource();
        let clock: SharedClock = match &opts.clock {
            Some(c) => Arc::new(c.clone()),
            None => kvault::clock::system(),
        };
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], self.port)),
            audiences: default_audiences(&url, &resource),
            resource,
            authority: None,
            url,
            tls_cert: self.certs.cert.clone(),
            tls_key: self.certs.key.clone(),
            tls_min_version: opts.tls_min_version,
            storage: opts
                .storage
                .clone()
                .unwrap_or_else(|| StorageConfig::Embedded {
                    dir: self.data_dir(),
                }),
            master_key: MasterKeySource::File(self.master_key.clone()),
            issuers: vec![IssuerConfig {
                issuer: ISSUER.into(),
                jwks: JwksSource::File(self.issuer.jwks_path.clone()),
                service_accounts: true,
                speaks_for: None,
            }],
            soft_delete: opts.soft_delete,
            extra_ca: vec![],
            tls_reload_interval: Duration::from_millis(100),
            jwks_refresh_interval: Duration::from_millis(0),
            sweep_interval: Duration::from_secs(3600),
            events: Default::default(),
            clock,
            admins: vec![parse_principal(&format!("User {OPERATOR}")).unwrap()],
            initial_policy: opts.policy.clone(),
            audit: AuditSinks {
                stdout: false,
                file: Some(self.audit_path()),
            },
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            limits: opts.limits,
        }
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// A token for `sub` (a user id or `system:serviceaccount:…`) with extra claims.
    pub fn token_for(&self, sub: &str, extra: Value) -> String {
        let mut c = self.issuer.claims(&self.url(), sub);
        if let (Some(obj), Some(more)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in more {
                obj.insert(k.clone(), v.clone());
            }
        }
        self.issuer.sign(Algorithm::ES256, "ec", &c)
    }

    pub async fn start(&self, opts: Options) -> TestVault {
        self.start_with(self.config(&opts)).await
    }

    /// Starts a server with a configuration made from [`Fixture::config`] and changed.
    pub async fn start_with(&self, config: ServerConfig) -> TestVault {
        let server = Server::start(config).await.unwrap();
        let state = server.state();
        let metrics_addr = server.metrics_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(server.serve(async move {
            let _ = rx.await;
        }));
        TestVault {
            url: self.url(),
            port: self.port,
            ca: self.certs.ca_pem.clone(),
            token: self.issuer.sign(
                Algorithm::ES256,
                "ec",
                &self.issuer.claims(&self.url(), "alice"),
            ),
            metrics_addr,
            state: Some(state),
            stop: Some(tx),
            handle: Some(handle),
        }
    }
}

pub struct TestVault {
    pub url: String,
    pub port: u16,
    pub ca: PathBuf,
    pub token: String,
    pub metrics_addr: Option<SocketAddr>,
    pub state: Option<Arc<AppState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestVault {
    pub fn client(&self) -> VaultClient {
        self.client_with(&self.token)
    }

    pub fn client_with(&self, token: &str) -> VaultClient {
        VaultClient::new(ClientConfig {
            url: self.url.clone(),
            token: Zeroizing::new(token.to_string()),
            ca_file: Some(self.ca.clone()),
        })
        .unwrap()
    }

    /// A raw HTTPS client for requests the typed client would never send.
    pub fn http(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&self.ca).unwrap()).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .resolve(HOST, SocketAddr::from(([127, 0, 0, 1], self.port)))
            .build()
            .unwrap()
    }

    pub fn at(&self, path_and_query: &str) -> String {
        format!("{}{}", self.url, path_and_query)
    }

    /// Stops accepting and waits for in-flight requests.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap();
        }
    }
}

impl Drop for TestVault {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Reads a JSON error envelope's code.
pub async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    (
        status,
        v["error"]["code"].as_str().unwrap_or("<none>").to_string(),
    )
}

impl TestVault {
    /// A handle on a vault served by another process (no in-process server).
    pub fn detached(url: String, port: u16, ca: PathBuf, token: String) -> Self {
        Self {
            url,
            port,
            ca,
            token,
            metrics_addr: None,
            state: None,
            stop: None,
            handle: None,
        }
    }
}

/// The test database (`scripts/test-postgres start` prints the variables; `./scripts/test`
/// sets them). A fresh schema per call, so tests never share records.
pub fn postgres(name: &str) -> PostgresConfig {
    let url = std::env::var("KVAULT_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "KVAULT_TEST_POSTGRES_URL is not set: run `eval \"$(scripts/test-postgres start)\"` first (./scripts/test does)"
        )
    });
    let password = std::env::var("KVAULT_TEST_POSTGRES_PASSWORD_FILE")
        .ok()
        .map(|p| Zeroizing::new(std::fs::read_to_string(p).unwrap().trim().to_string()));
    let ca_pem = std::env::var("KVAULT_TEST_POSTGRES_CA_FILE")
        .ok()
        .map(|p| std::fs::read(p).unwrap());
    let mut rnd = [0u8; 6];
    aws_lc_rs::rand::fill(&mut rnd).unwrap();
    let suffix: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    PostgresConfig {
        url,
        password,
        ca_pem,
        schema: format!("t_{name}_{suffix}"),
        max_connections: 8,
    }
}

/// `kvault server` flags for a storage configuration (the password and CA as files).
pub fn storage_args(dir: &Path, storage: &StorageConfig) -> Vec<std::ffi::OsString> {
    match storage {
        StorageConfig::Embedded { dir } => vec!["--data-dir".into(), dir.into()],
        StorageConfig::Postgres(pg) => {
            let mut args: Vec<std::ffi::OsString> = vec![
                "--storage".into(),
                pg.url.clone().into(),
                "--storage-schema".into(),
                pg.schema.clone().into(),
            ];
            if let Some(pw) = &pg.password {
                let f = dir.join("db-password");
                std::fs::write(&f, pw.as_bytes()).unwrap();
                args.extend(["--storage-password-file".into(), f.into()]);
            }
            if let Some(ca) = &pg.ca_pem {
                let f = dir.join("db-ca.pem");
                std::fs::write(&f, ca).unwrap();
                args.extend(["--storage-ca-file".into(), f.into()]);
            }
            args
        }
    }
}

/// The real binary (`kvault server`) as a child process; killed (SIGKILL) when dropped.
pub struct ServerProcess {
    child: std::process::Child,
    pub vault: TestVault,
    pub metrics_port: u16,
}

impl ServerProcess {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn wait_healthy(&self) {
        for _ in 0..300 {
            if let Ok(r) = self
                .vault
                .http()
                .get(self.vault.at("/_kvault/health"))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server on port {} never became healthy", self.vault.port);
    }

    /// One gauge or counter value from `/metrics`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.split([' ', '{']).next() == Some(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Fixture {
    /// Starts `kvault server` on `port` over `storage`; every replica accepts tokens minted
    /// for the fixture's URL (`alice` is administrator).
    pub fn spawn_process(&self, port: u16, storage: &StorageConfig) -> ServerProcess {
        let policy = self.dir.path().join("policy.json");
        std::fs::write(
            &policy,
            serde_json::to_vec(&kvault::server::dev_policy("alice")).unwrap(),
        )
        .unwrap();
        let metrics_port = free_port();
        let url = format!("https://{HOST}:{port}");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_kvault"))
            .args(["server", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--url", &url, "--audience", &self.url(), "--audience", &url])
            .arg("--tls-cert")
            .arg(&self.certs.cert)
            .arg("--tls-key")
            .arg(&self.certs.key)
            .args(storage_args(self.dir.path(), storage))
            .arg("--master-key-file")
            .arg(&self.master_key)
            .arg("--cluster-issuer")
            .arg(format!("{ISSUER}={}", self.issuer.jwks_path.display()))
            .arg("--policy-file")
            .arg(&policy)
            .args(["--admin-principal", &format!("User {OPERATOR}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(["--audit-log", "none"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let token = self.issuer.sign(
            Algorithm::ES256,
            "ec",
            &self.issuer.claims(&self.url(), "alice"),
        );
        ServerProcess {
            child,
            vault: TestVault::detached(url, port, self.certs.ca_pem.clone(), token),
            metrics_port,
        }
    }
}

/// A secret's value with no other attributes (`set_secret`'s parameters).
pub fn set(value: &str) -> kvault::wire::SecretSetParameters {
    kvault::wire::SecretSetParameters {
        value: value.into(),
        content_type: None,
        tags: None,
        attributes: None,
    }
}
