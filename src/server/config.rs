//! `kvault server` configuration: flags and environment variables, over an optional YAML
//! file, validated into a [`ServerConfig`] before anything listens.

use crate::clock::SharedClock;
use crate::crypto::MasterKey;
use crate::policy::{PolicyDocument, PrincipalKind, PrincipalRef, TrustedIssuer};
use crate::server::audit::AuditSinks;
use crate::server::auth::IssuerConfig;
use crate::server::objects::{MAX_RETENTION_DAYS, MIN_RETENTION_DAYS, SoftDelete};
use crate::server::store::postgres::PostgresConfig;
use crate::server::tls::TlsMinVersion;
use crate::wire::{VaultUrl, default_audiences};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Options as given on the command line, in the environment or in the YAML file (same
/// names, kebab-case). The command line wins over the file.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServerOptions {
    /// YAML file with any of these options.
    #[arg(long, env = "KVAULT_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "KVAULT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The vault's URL as clients use it, e.g. https://payments.team-a.svc.
    #[arg(long, env = "KVAULT_URL")]
    pub url: Option<String>,
    /// The challenge's `resource` (default: https:// + the URL host's parent domain [+ port]).
    #[arg(long, env = "KVAULT_RESOURCE")]
    pub resource: Option<String>,
    /// The challenge's `authorization`: the authority clients get tokens from, e.g. the
    /// workload-identity token service `https://kvault-operator-webhook.kvault-system.svc/adfs`
    /// (default: the vault URL + /kvault, which no SDK contacts).
    #[arg(long, env = "KVAULT_AUTHORITY")]
    pub authority: Option<String>,
    /// PEM certificate chain for HTTPS (re-read when it changes).
    #[arg(long, env = "KVAULT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(long, env = "KVAULT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Oldest TLS version accepted: 1.2 (default) or 1.3.
    #[arg(long, env = "KVAULT_TLS_MIN_VERSION")]
    pub tls_min_version: Option<String>,
    /// Directory of the embedded database.
    #[arg(long, env = "KVAULT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where the vault's records live: "embedded" (default: a database file in --data-dir)
    /// or a PostgreSQL URL, postgres://USER@HOST:PORT/DB?sslmode=require, shared by every
    /// replica of the vault. Give the password with --storage-password-file.
    #[arg(long, env = "KVAULT_STORAGE")]
    pub storage: Option<String>,
    /// File holding the database password.
    #[arg(long, env = "KVAULT_STORAGE_PASSWORD_FILE")]
    pub storage_password_file: Option<PathBuf>,
    /// PEM bundle that verifies the database's TLS certificate (default: system roots).
    #[arg(long, env = "KVAULT_STORAGE_CA_FILE")]
    pub storage_ca_file: Option<PathBuf>,
    /// The PostgreSQL schema of this vault's table (one vault per schema; default "kvault").
    #[arg(long, env = "KVAULT_STORAGE_SCHEMA")]
    pub storage_schema: Option<String>,
    /// Database connections per replica (default 16).
    #[arg(long, env = "KVAULT_STORAGE_MAX_CONNECTIONS")]
    pub storage_max_connections: Option<usize>,
    /// File holding the 32-byte master key (raw or base64).
    #[arg(long, env = "KVAULT_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The cluster's service-account issuer, the only one whose
    /// `system:serviceaccount:NS:NAME` subjects are service accounts. Same syntax as
    /// --issuer.
    #[arg(long, env = "KVAULT_CLUSTER_ISSUER")]
    pub cluster_issuer: Option<String>,
    /// Trusted people's token issuer (an OIDC provider): ISSUER=JWKS_FILE,
    /// ISSUER=https://JWKS_URL, or ISSUER alone for OIDC discovery. Its subjects are always
    /// users, never service accounts. Repeatable.
    #[arg(long = "issuer", env = "KVAULT_ISSUERS", value_delimiter = ',')]
    #[serde(default)]
    pub issuers: Vec<String>,
    /// Accepted token audience. Repeatable. Default: the vault URL and the challenge resource.
    #[arg(long = "audience", env = "KVAULT_AUDIENCES", value_delimiter = ',')]
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Days a deleted object stays recoverable (7-90, default 90).
    #[arg(long, env = "KVAULT_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// Refuse purges; deleted objects are only removed when their retention ends.
    #[arg(long, env = "KVAULT_PURGE_PROTECTION")]
    #[serde(default)]
    pub purge_protection: bool,
    /// A policy document (JSON) applied at start when nothing newer is stored.
    #[arg(long, env = "KVAULT_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,
    /// The control-plane principal allowed to read and replace the policy
    /// ("ServiceAccount NS/NAME", "User ID", "Application ID" or "Group NAME"). Repeatable.
    #[arg(
        long = "admin-principal",
        env = "KVAULT_ADMIN_PRINCIPALS",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub admin_principals: Vec<String>,
    /// Audit log destinations: "stdout", a file path, or "none". Repeatable (default stdout).
    #[arg(long = "audit-log", env = "KVAULT_AUDIT_LOG", value_delimiter = ',')]
    #[serde(default)]
    pub audit_log: Vec<String>,
    /// Plain-HTTP listener for Prometheus `/metrics` (default 0.0.0.0:9090; "none" to disable).
    #[arg(long, env = "KVAULT_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Time a client has to finish the TLS handshake before its connection is closed
    /// (default 10s).
    #[arg(long, env = "KVAULT_TLS_HANDSHAKE_TIMEOUT")]
    pub tls_handshake_timeout: Option<String>,
    /// Time a client has to send a whole request head — and, on a kept-alive HTTP/1.1
    /// connection, to start its next request — before the connection is closed (default 10s).
    #[arg(long, env = "KVAULT_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<String>,
    /// A connection with no request in flight and no traffic for this long is closed
    /// (HTTP/1.1 and HTTP/2; default 60s).
    #[arg(long, env = "KVAULT_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,
    /// Open connections at most on the HTTPS port (and, separately, on the metrics port);
    /// more are closed at once and counted in kvault_connections_refused_total (default 1024).
    #[arg(long, env = "KVAULT_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// At shutdown, how long in-flight requests may take before their connections are
    /// dropped; idle connections are closed at once (default 10s).
    #[arg(long, env = "KVAULT_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<String>,
}

impl ServerOptions {
    /// Reads the YAML file named by `--config` (if any) and lays these options over it.
    pub fn resolve(self) -> Result<ServerOptions, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let file: ServerOptions = serde_saphyr::from_str(&text).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(ServerOptions {
            config: self.config,
            listen: self.listen.or(file.listen),
            url: self.url.or(file.url),
            resource: self.resource.or(file.resource),
            authority: self.authority.or(file.authority),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            tls_min_version: self.tls_min_version.or(file.tls_min_version),
            data_dir: self.data_dir.or(file.data_dir),
            storage: self.storage.or(file.storage),
            storage_password_file: self.storage_password_file.or(file.storage_password_file),
            storage_ca_file: self.storage_ca_file.or(file.storage_ca_file),
            storage_schema: self.storage_schema.or(file.storage_schema),
            storage_max_connections: self
                .storage_max_connections
                .or(file.storage_max_connections),
            master_key_file: self.master_key_file.or(file.master_key_file),
            cluster_issuer: self.cluster_issuer.or(file.cluster_issuer),
            issuers: if self.issuers.is_empty() {
                file.issuers
            } else {
                self.issuers
            },
            audiences: if self.audiences.is_empty() {
                file.audiences
            } else {
                self.audiences
            },
            retention_days: self.retention_days.or(file.retention_days),
            purge_protection: self.purge_protection || file.purge_protection,
            policy_file: self.policy_file.or(file.policy_file),
            admin_principals: if self.admin_principals.is_empty() {
                file.admin_principals
            } else {
                self.admin_principals
            },
            audit_log: if self.audit_log.is_empty() {
                file.audit_log
            } else {
                self.audit_log
            },
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            tls_handshake_timeout: self.tls_handshake_timeout.or(file.tls_handshake_timeout),
            header_read_timeout: self.header_read_timeout.or(file.header_read_timeout),
            idle_timeout: self.idle_timeout.or(file.idle_timeout),
            max_connections: self.max_connections.or(file.max_connections),
            drain_timeout: self.drain_timeout.or(file.drain_timeout),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("missing required setting --{0}")]
    Missing(&'static str),
    #[error("no trusted issuer: give --cluster-issuer and/or --issuer")]
    NoIssuer,
    #[error("invalid --{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("master key file {path}: {reason}")]
    MasterKey { path: String, reason: String },
}

/// Where the vault's records live.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// One redb file in this directory; one process at a time.
    Embedded { dir: PathBuf },
    /// A PostgreSQL database shared by every replica.
    Postgres(PostgresConfig),
}

impl StorageConfig {
    /// Where, for messages (never with a password).
    pub fn describe(&self) -> String {
        match self {
            StorageConfig::Embedded { dir } => dir.display().to_string(),
            StorageConfig::Postgres(p) => format!(
                "{} (schema {})",
                crate::server::store::postgres::redact_url(&p.url),
                p.schema
            ),
        }
    }
}

/// The storage settings of a set of options (`--storage` and its companions).
pub fn storage_from(o: &ServerOptions) -> Result<StorageConfig, ConfigError> {
    let invalid = |name: &'static str, reason: String| ConfigError::Invalid { name, reason };
    let url = match o.storage.as_deref().map(str::trim) {
        None | Some("") | Some("embedded") => {
            let dir = o.data_dir.clone().ok_or(ConfigError::Missing("data-dir"))?;
            return Ok(StorageConfig::Embedded { dir });
        }
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => u,
        Some(other) => {
            return Err(invalid(
                "storage",
                format!(
                    "'{}' is neither 'embedded' nor a postgres:// URL",
                    crate::server::store::postgres::redact_url(other)
                ),
            ));
        }
    };
    // A password in the URL would end up in process listings and manifests.
    let parsed: tokio_postgres::Config = url.parse().map_err(|e| {
        invalid(
            "storage",
            format!("{}: {e}", crate::server::store::postgres::redact_url(url)),
        )
    })?;
    if parsed.get_password().is_some() {
        return Err(invalid(
            "storage",
            "the URL carries a password; put it in --storage-password-file instead".into(),
        ));
    }
    let password = match &o.storage_password_file {
        None => None,
        Some(p) => {
            let text =
                zeroize::Zeroizing::new(std::fs::read_to_string(p).map_err(|e| {
                    invalid("storage-password-file", format!("{}: {e}", p.display()))
                })?);
            Some(zeroize::Zeroizing::new(
                text.trim_end_matches(['\r', '\n']).to_string(),
            ))
        }
    };
    let ca_pem = match &o.storage_ca_file {
        None => None,
        Some(p) => Some(
            std::fs::read(p)
                .map_err(|e| invalid("storage-ca-file", format!("{}: {e}", p.display())))?,
        ),
    };
    let schema = o.storage_schema.clone().unwrap_or_else(|| "kvault".into());
    crate::server::store::postgres::validate_schema(&schema)
        .map_err(|reason| invalid("storage-schema", reason))?;
    let max_connections = o.storage_max_connections.unwrap_or(16);
    if !(2..=256).contains(&max_connections) {
        return Err(invalid(
            "storage-max-connections",
            format!("{max_connections} is outside 2-256"),
        ));
    }
    Ok(StorageConfig::Postgres(PostgresConfig {
        url: url.to_string(),
        password,
        ca_pem,
        schema,
        max_connections,
    }))
}

pub enum MasterKeySource {
    File(PathBuf),
    Given(MasterKey),
}

/// A validated server configuration.
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub url: VaultUrl,
    pub resource: String,
    /// The challenge's `authorization` (None: the vault URL + /kvault).
    pub authority: Option<String>,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub tls_min_version: TlsMinVersion,
    pub storage: StorageConfig,
    pub master_key: MasterKeySource,
    pub issuers: Vec<IssuerConfig>,
    pub audiences: Vec<String>,
    pub soft_delete: SoftDelete,
    /// CA bundle for fetching remote JWKS (besides the system roots).
    pub extra_ca: Vec<PathBuf>,
    pub tls_reload_interval: Duration,
    pub jwks_refresh_interval: Duration,
    pub sweep_interval: Duration,
    /// Event delivery timings (backoff, time to live, scan interval).
    pub events: crate::server::events::EventsConfig,
    pub clock: SharedClock,
    /// Principals allowed on `/_kvault/policy`.
    pub admins: Vec<PrincipalRef>,
    /// Applied at start when nothing newer is stored.
    pub initial_policy: Option<PolicyDocument>,
    pub audit: AuditSinks,
    pub metrics_listen: Option<SocketAddr>,
    /// Connection cap and timeouts of the HTTPS and metrics ports.
    pub limits: crate::listener::Limits,
}

/// The connection limits of a set of options (`--max-connections` and the timeouts).
pub fn limits_from(o: &ServerOptions) -> Result<crate::listener::Limits, ConfigError> {
    let d = crate::listener::Limits::default();
    let duration = |name: &'static str, v: &Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(s) => {
            crate::clock::parse_duration(s).map_err(|reason| ConfigError::Invalid { name, reason })
        }
    };
    let limits = crate::listener::Limits {
        handshake_timeout: duration(
            "tls-handshake-timeout",
            &o.tls_handshake_timeout,
            d.handshake_timeout,
        )?,
        header_read_timeout: duration(
            "header-read-timeout",
            &o.header_read_timeout,
            d.header_read_timeout,
        )?,
        idle_timeout: duration("idle-timeout", &o.idle_timeout, d.idle_timeout)?,
        max_connections: o.max_connections.unwrap_or(d.max_connections),
        drain_timeout: duration("drain-timeout", &o.drain_timeout, d.drain_timeout)?,
    };
    limits
        .validate()
        .map_err(|(name, reason)| ConfigError::Invalid { name, reason })?;
    Ok(limits)
}

/// Separates a principal from the issuer it is bound to ("User alice issuer=https://dex").
const ISSUER_SUFFIX: &str = " issuer=";

/// Parses "ServiceAccount NS/NAME", "User ID", "Application ID" or "Group NAME", each
/// optionally followed by " issuer=ISSUER" (the issuer whose tokens it trusts; see
/// `crate::policy::issuers`).
pub fn parse_principal(s: &str) -> Result<PrincipalRef, String> {
    let (who, issuer) = match s.trim().rsplit_once(ISSUER_SUFFIX) {
        Some((who, issuer)) if !issuer.trim().is_empty() => (who, Some(issuer.trim())),
        Some(_) => return Err(format!("'{s}' has an empty issuer")),
        None => (s, None),
    };
    let mut p = parse_bare_principal(who)?;
    p.issuer = issuer.map(str::to_string);
    Ok(p)
}

fn parse_bare_principal(s: &str) -> Result<PrincipalRef, String> {
    let (kind, rest) = s.trim().split_once(char::is_whitespace).ok_or_else(|| {
        format!("'{s}' is not KIND NAME (e.g. 'ServiceAccount kvault-system/kvault-operator')")
    })?;
    let rest = rest.trim();
    let kind = match kind.to_ascii_lowercase().as_str() {
        "serviceaccount" => PrincipalKind::ServiceAccount,
        "user" => PrincipalKind::User,
        "application" => PrincipalKind::Application,
        "group" => PrincipalKind::Group,
        other => return Err(format!("unknown principal kind '{other}'")),
    };
    if rest.is_empty() {
        return Err(format!("'{s}' has no name"));
    }
    if kind == PrincipalKind::ServiceAccount {
        let (ns, name) = rest
            .split_once('/')
            .filter(|(n, m)| !n.is_empty() && !m.is_empty())
            .ok_or_else(|| format!("service account '{rest}' must be NAMESPACE/NAME"))?;
        return Ok(PrincipalRef {
            kind,
            name: name.to_string(),
            namespace: Some(ns.to_string()),
            issuer: None,
        });
    }
    Ok(PrincipalRef {
        kind,
        name: rest.to_string(),
        namespace: None,
        issuer: None,
    })
}

fn parse_audit(v: &[String]) -> Result<AuditSinks, String> {
    if v.is_empty() {
        return Ok(AuditSinks {
            stdout: true,
            file: None,
        });
    }
    let mut sinks = AuditSinks::default();
    for d in v {
        match d.as_str() {
            "none" => {}
            "stdout" | "-" => sinks.stdout = true,
            path if sinks.file.is_none() => sinks.file = Some(PathBuf::from(path)),
            _ => return Err("at most one audit file".into()),
        }
    }
    Ok(sinks)
}

/// Reads and validates a policy document file against the server's issuers (so a grant
/// that could belong to several of them stops the start).
pub fn read_policy_file(
    path: &std::path::Path,
    issuers: &[IssuerConfig],
) -> Result<PolicyDocument, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "policy-file",
        reason: format!("{}: {reason}", path.display()),
    };
    let text = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
    let doc: PolicyDocument = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
    doc.check_generation().map_err(|e| invalid(e.to_string()))?;
    let trusted: Vec<TrustedIssuer> = issuers.iter().filter_map(IssuerConfig::trusted).collect();
    doc.compile(&trusted).map_err(|e| invalid(e.to_string()))?;
    Ok(doc)
}

/// The cluster issuer (if any) first, then the people's issuers; one issuer id once.
fn issuers_from(o: &ServerOptions) -> Result<Vec<IssuerConfig>, ConfigError> {
    let mut issuers = Vec::with_capacity(o.issuers.len() + 1);
    if let Some(spec) = &o.cluster_issuer {
        issuers.push(
            IssuerConfig::parse_cluster(spec).map_err(|reason| ConfigError::Invalid {
                name: "cluster-issuer",
                reason,
            })?,
        );
    }
    for spec in &o.issuers {
        let issuer = IssuerConfig::parse(spec).map_err(|reason| ConfigError::Invalid {
            name: "issuer",
            reason,
        })?;
        // Trusted twice, once with service accounts and once without, would be ambiguous.
        if issuers.iter().any(|i| i.issuer == issuer.issuer) {
            return Err(ConfigError::Invalid {
                name: "issuer",
                reason: format!("{} is given more than once", issuer.issuer),
            });
        }
        issuers.push(issuer);
    }
    if issuers.is_empty() {
        return Err(ConfigError::NoIssuer);
    }
    Ok(issuers)
}

/// Every control-plane principal must be one some issuer can speak for: a service account
/// needs the cluster issuer (an `--issuer` no longer asserts them), and a user, group or
/// application must not be claimable by several people's issuers.
fn check_admins(admins: &[PrincipalRef], issuers: &[IssuerConfig]) -> Result<(), ConfigError> {
    let trusted: Vec<TrustedIssuer> = issuers.iter().filter_map(IssuerConfig::trusted).collect();
    let context =
        crate::policy::IssuerContext::new(&trusted).map_err(|e| ConfigError::Invalid {
            name: "issuer",
            reason: e.to_string(),
        })?;
    for admin in admins {
        let what = format!("--admin-principal '{admin}'");
        let bound = admin
            .bind_issuer(&context, &what)
            .map_err(|e| ConfigError::Invalid {
                name: "admin-principal",
                reason: e.to_string(),
            })?;
        if bound == crate::policy::IssuerBinding::Nobody {
            return Err(ConfigError::Invalid {
                name: "admin-principal",
                reason: format!(
                    "{what}: only the cluster issuer asserts service accounts; give it with --cluster-issuer"
                ),
            });
        }
    }
    Ok(())
}

impl ServerConfig {
    pub fn from_options(o: ServerOptions) -> Result<Self, ConfigError> {
        let o = o.resolve()?;
        let storage = storage_from(&o)?;
        let issuers = issuers_from(&o)?;
        let limits = limits_from(&o)?;
        let url = VaultUrl::parse(o.url.as_deref().ok_or(ConfigError::Missing("url"))?).map_err(
            |reason| ConfigError::Invalid {
                name: "url",
                reason,
            },
        )?;
        let resource = match o.resource {
            Some(r) => {
                VaultUrl::parse(&r)
                    .map_err(|reason| ConfigError::Invalid {
                        name: "resource",
                        reason,
                    })?
                    .origin
            }
            None => url.default_resource(),
        };
        let tls_min_version = match o.tls_min_version {
            None => TlsMinVersion::Tls12,
            Some(v) => v.parse().map_err(|reason| ConfigError::Invalid {
                name: "tls-min-version",
                reason,
            })?,
        };
        let retention_days = o.retention_days.unwrap_or(MAX_RETENTION_DAYS);
        if !(MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS).contains(&retention_days) {
            return Err(ConfigError::Invalid {
                name: "retention-days",
                reason: format!(
                    "{retention_days} is outside {MIN_RETENTION_DAYS}-{MAX_RETENTION_DAYS}"
                ),
            });
        }
        let admins = o
            .admin_principals
            .iter()
            .map(|s| parse_principal(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| ConfigError::Invalid {
                name: "admin-principal",
                reason,
            })?;
        check_admins(&admins, &issuers)?;
        let initial_policy = match &o.policy_file {
            Some(p) => Some(read_policy_file(p, &issuers)?),
            None => None,
        };
        let audit = parse_audit(&o.audit_log).map_err(|reason| ConfigError::Invalid {
            name: "audit-log",
            reason,
        })?;
        let metrics_listen = match o.metrics_listen.as_deref() {
            None => Some(SocketAddr::from(([0, 0, 0, 0], 9090))),
            Some("none") => None,
            Some(a) => {
                Some(
                    a.parse()
                        .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                            name: "metrics-listen",
                            reason: e.to_string(),
                        })?,
                )
            }
        };
        let audiences = if o.audiences.is_empty() {
            default_audiences(&url, &resource)
        } else {
            o.audiences
        };
        Ok(Self {
            listen: o
                .listen
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8443))),
            resource,
            authority: match o.authority {
                Some(a) if !a.starts_with("https://") || a.contains(['"', ',', '=', ' ']) => {
                    return Err(ConfigError::Invalid {
                        name: "authority",
                        reason: format!(
                            "{a}: must be an https:// URL without quotes, commas, '=' or spaces"
                        ),
                    });
                }
                other => other,
            },
            tls_cert: o.tls_cert.ok_or(ConfigError::Missing("tls-cert"))?,
            tls_key: o.tls_key.ok_or(ConfigError::Missing("tls-key"))?,
            tls_min_version,
            storage,
            master_key: MasterKeySource::File(
                o.master_key_file
                    .ok_or(ConfigError::Missing("master-key-file"))?,
            ),
            issuers,
            audiences,
            soft_delete: SoftDelete {
                retention_days,
                purge_protection: o.purge_protection,
            },
            url,
            extra_ca: Vec::new(),
            tls_reload_interval: Duration::from_secs(5),
            jwks_refresh_interval: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(300),
            events: Default::default(),
            clock: crate::clock::system(),
            admins,
            initial_policy,
            audit,
            metrics_listen,
            limits,
        })
    }

    pub fn load_master_key(&self) -> Result<MasterKey, ConfigError> {
        match &self.master_key {
            MasterKeySource::Given(k) => MasterKey::from_file_contents(k.to_base64().as_bytes())
                .map_err(|e| ConfigError::MasterKey {
                    path: "(given)".into(),
                    reason: e.to_string(),
                }),
            MasterKeySource::File(p) => {
                let bytes = zeroize::Zeroizing::new(std::fs::read(p).map_err(|e| {
                    ConfigError::MasterKey {
                        path: p.display().to_string(),
                        reason: e.to_string(),
                    }
                })?);
                MasterKey::from_file_contents(&bytes).map_err(|e| ConfigError::MasterKey {
                    path: p.display().to_string(),
                    reason: e.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_invalid_settings_are_named() {
        let base = ServerOptions {
            url: Some("https://v.ns.svc".into()),
            tls_cert: Some("c".into()),
            tls_key: Some("k".into()),
            data_dir: Some("d".into()),
            master_key_file: Some("m".into()),
            issuers: vec!["https://issuer=/jwks.json".into()],
            ..Default::default()
        };
        assert!(ServerConfig::from_options(base.clone()).is_ok());
        let e = ServerConfig::from_options(ServerOptions {
            url: None,
            ..base.clone()
        })
        .err()
        .unwrap();
        assert_eq!(e.to_string(), "missing required setting --url");
        let e = ServerConfig::from_options(ServerOptions {
            retention_days: Some(5),
            ..base.clone()
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("retention-days"));
        let e = ServerConfig::from_options(ServerOptions {
            tls_min_version: Some("1.1".into()),
            ..base
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("tls-min-version"));
    }

    fn base() -> ServerOptions {
        ServerOptions {
            url: Some("https://v.ns.svc".into()),
            tls_cert: Some("c".into()),
            tls_key: Some("k".into()),
            data_dir: Some("d".into()),
            master_key_file: Some("m".into()),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_cluster_issuer_asserts_service_accounts() {
        let config = ServerConfig::from_options(ServerOptions {
            cluster_issuer: Some("https://k8s=/cluster.json".into()),
            issuers: vec!["https://dex=/dex.json".into(), "https://idp".into()],
            ..base()
        })
        .unwrap();
        let flags: Vec<(&str, bool)> = config
            .issuers
            .iter()
            .map(|i| (i.issuer.as_str(), i.service_accounts))
            .collect();
        assert_eq!(
            flags,
            [
                ("https://k8s", true),
                ("https://dex", false),
                ("https://idp", false)
            ]
        );
        // `--issuer` alone: nobody asserts service accounts.
        let config = ServerConfig::from_options(ServerOptions {
            issuers: vec!["https://dex=/dex.json".into()],
            ..base()
        })
        .unwrap();
        assert!(config.issuers.iter().all(|i| !i.service_accounts));
        // No issuer at all, or one issuer given both ways: refused.
        let e = ServerConfig::from_options(base()).err().unwrap();
        assert!(e.to_string().contains("--cluster-issuer"), "{e}");
        let e = ServerConfig::from_options(ServerOptions {
            cluster_issuer: Some("https://k8s=/cluster.json".into()),
            issuers: vec!["https://k8s=/cluster.json".into()],
            ..base()
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("more than once"), "{e}");
    }

    #[test]
    fn control_plane_principals_need_an_issuer_that_speaks_for_them() {
        // A service account needs the cluster issuer: `--issuer` no longer makes one.
        let e = ServerConfig::from_options(ServerOptions {
            issuers: vec!["https://k8s=/cluster.json".into()],
            admin_principals: vec!["ServiceAccount kvault-system/kvault-operator".into()],
            ..base()
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("--cluster-issuer"), "{e}");
        // A user claimable by two people's issuers must name one.
        let two = vec!["https://a=/a.json".into(), "https://b=/b.json".into()];
        let e = ServerConfig::from_options(ServerOptions {
            issuers: two.clone(),
            admin_principals: vec!["User ops".into()],
            ..base()
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("names no issuer"), "{e}");
        let config = ServerConfig::from_options(ServerOptions {
            issuers: two,
            admin_principals: vec!["User ops issuer=https://b".into()],
            ..base()
        })
        .unwrap();
        assert_eq!(config.admins[0].issuer.as_deref(), Some("https://b"));
    }

    #[test]
    fn an_ambiguous_policy_file_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("policy.json");
        std::fs::write(
            &f,
            r#"{"generation": 1, "roleAssignments": [{"principal": {"kind": "User", "name": "dev-admin"}, "role": "Key Vault Reader"}]}"#,
        )
        .unwrap();
        let with = |issuers: Vec<String>| {
            ServerConfig::from_options(ServerOptions {
                cluster_issuer: Some("https://k8s=/cluster.json".into()),
                issuers,
                policy_file: Some(f.clone()),
                ..base()
            })
        };
        // One people issuer: the grant is that issuer's.
        assert!(with(vec!["https://a=/a.json".into()]).is_ok());
        let e = with(vec!["https://a=/a.json".into(), "https://b=/b.json".into()])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("policy-file"), "{e}");
        assert!(e.contains("roleAssignments[0] (User dev-admin)"), "{e}");
        assert!(e.contains("names no issuer"), "{e}");
    }

    #[test]
    fn principals_parse() {
        let p = parse_principal("ServiceAccount kvault-system/kvault-operator").unwrap();
        assert_eq!(p.kind, PrincipalKind::ServiceAccount);
        assert_eq!(p.namespace.as_deref(), Some("kvault-system"));
        assert_eq!(p.name, "kvault-operator");
        assert_eq!(
            parse_principal("user alice").unwrap().kind,
            PrincipalKind::User
        );
        assert!(parse_principal("ServiceAccount nope").is_err());
        assert!(parse_principal("Robot r2").is_err());
        assert!(parse_principal("User").is_err());
        let p = parse_principal("Group Team Admins issuer=https://dex.example.com").unwrap();
        assert_eq!(p.name, "Team Admins");
        assert_eq!(p.issuer.as_deref(), Some("https://dex.example.com"));
        assert!(parse_principal("User alice issuer=").is_err());
    }

    #[test]
    fn yaml_file_is_overridden_by_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yaml");
        std::fs::write(
            &f,
            "url: https://a.b.c\nretention-days: 30\npurge-protection: true\nissuers: [\"https://i=/j\"]\n",
        )
        .unwrap();
        let o = ServerOptions {
            config: Some(f),
            url: Some("https://x.y.z".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(o.url.as_deref(), Some("https://x.y.z"));
        assert_eq!(o.retention_days, Some(30));
        assert!(o.purge_protection);
        assert_eq!(o.issuers, vec!["https://i=/j".to_string()]);
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_example_config_file_is_valid() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/server/config.yaml");
        let config = ServerConfig::from_options(ServerOptions {
            config: Some(path),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.url.origin, "https://payments.team-a.svc");
        assert_eq!(config.resource, "https://team-a.svc");
        assert_eq!(config.issuers.len(), 2);
        assert_eq!(config.audiences.len(), 2);
        assert_eq!(config.soft_delete.retention_days, 90);
    }
}
