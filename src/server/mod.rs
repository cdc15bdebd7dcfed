//! `kvault server`: one vault's data plane — HTTPS, authentication, authorization, sealed
//! storage and the key-vault REST API. Nothing here depends on Kubernetes.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod certificates;
pub mod config;
pub mod error;
pub mod events;
pub mod http;
pub mod jobs;
pub mod keys;
pub mod lifecycle;
pub mod metrics;
pub mod objects;
pub mod ops;
pub mod replicas;
pub mod request;
pub mod retention;
pub mod runtime;
pub mod secrets;
pub mod state;
pub mod store;
pub mod sweeper;
pub mod throttle;
pub mod tls;

use crate::policy::{PolicyDocument, PrincipalKind, PrincipalRef, RoleAssignmentEntry};
use crate::server::audit::AuditLog;
use crate::server::config::{ConfigError, ServerConfig};
use crate::server::metrics::Metrics;
use crate::server::runtime::{Defaults, PolicyManager};
pub use crate::server::state::AppState;
use crate::server::store::VaultStore;
use axum::Router;
use axum::http::HeaderValue;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("opening storage {dir}: {source}")]
    Store {
        dir: String,
        source: store::StoreError,
    },
    #[error("loading the policy: {0}")]
    Policy(String),
    #[error("opening the audit log: {0}")]
    Audit(std::io::Error),
    #[error("building the HTTPS client for issuer keys: {0}")]
    HttpClient(String),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A vault whose configuration is loaded and whose port is bound.
pub struct Server {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    /// TLS 1.2 and 1.3, and TLS 1.3 only: the policy's minimum picks one per connection.
    acceptor_12: TlsAcceptor,
    acceptor_13: TlsAcceptor,
    certs: Arc<tls::ReloadingCert>,
    state: Arc<AppState>,
    tls_reload_interval: Duration,
    sweep_interval: Duration,
    /// Connection cap and timeouts of the data port (and the metrics port).
    limits: crate::listener::Limits,
}

/// `Bearer authorization="…", resource="…"`: values quoted (the JS SDK needs that) and free
/// of `,` and `=` (the Python SDK's parser drops such items).
/// The authority is the token service's when there is one: the Go and Java SDKs refuse a
/// challenge whose tenant (the authority's path) is not the one they were configured with.
pub fn challenge_value(origin: &str, authority: Option<&str>, resource: &str) -> String {
    match authority {
        Some(a) => format!("Bearer authorization=\"{a}\", resource=\"{resource}\""),
        None => format!("Bearer authorization=\"{origin}/kvault\", resource=\"{resource}\""),
    }
}

impl Server {
    /// Loads and checks everything (certificate, master key, storage, issuers) and only
    /// then binds the port, so a bad configuration never answers a request.
    pub async fn start(config: ServerConfig) -> Result<Self, StartError> {
        crate::install_crypto_provider();
        let certs = Arc::new(tls::ReloadingCert::load(
            config.tls_cert.clone(),
            config.tls_key.clone(),
        )?);
        let tls_12 = tls::server_config(certs.clone(), tls::TlsMinVersion::Tls12)?;
        let tls_13 = tls::server_config(certs.clone(), tls::TlsMinVersion::Tls13)?;
        let master = config.load_master_key()?;
        let metrics = Arc::new(Metrics::new());
        let store_err = |source| StartError::Store {
            dir: config.storage.describe(),
            source,
        };
        let backend: Arc<dyn store::Backend> = match &config.storage {
            config::StorageConfig::Embedded { dir } => Arc::new(
                store::redb::RedbBackend::open(&dir.join("kvault.redb")).map_err(store_err)?,
            ),
            config::StorageConfig::Postgres(pg) => Arc::new(
                store::postgres::PostgresBackend::open(pg)
                    .await
                    .map_err(store_err)?,
            ),
        };
        let backend = metrics::MeteredBackend::new(backend, metrics.clone());
        let store = VaultStore::open(Arc::new(backend), &master)
            .await
            .map_err(store_err)?;
        drop(master);
        let http = crate::client::http_client_builder(&config.extra_ca)
            .map_err(|e| StartError::HttpClient(e.to_string()))?
            .build()
            .map_err(|e| StartError::HttpClient(e.to_string()))?;
        let vault_name = config
            .url
            .host
            .split('.')
            .next()
            .unwrap_or(&config.url.host)
            .to_string();
        let events = Arc::new(events::Events::new(
            config.events.clone(),
            config.url.origin.clone(),
            vault_name.clone(),
            config.clock.clone(),
        ));
        let defaults = Defaults {
            events: Some(events.clone()),
            soft_delete: config.soft_delete,
            tls_min: config.tls_min_version,
            issuers: config.issuers.clone(),
            audiences: config.audiences.clone(),
            jwks_refresh_interval: config.jwks_refresh_interval,
            http,
            clock: config.clock.clone(),
            admins: config.admins.clone(),
        };
        let policy = PolicyManager::load(defaults, &store, config.initial_policy.clone())
            .await
            .map_err(StartError::Policy)?;
        let challenge = HeaderValue::from_str(&challenge_value(
            &config.url.origin,
            config.authority.as_deref(),
            &config.resource,
        ))
        .map_err(|e| {
            StartError::Config(ConfigError::Invalid {
                name: "url",
                reason: e.to_string(),
            })
        })?;
        let audit = AuditLog::start(config.audit.clone())
            .await
            .map_err(StartError::Audit)?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Listen { addr, source })?,
            ),
            None => None,
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen,
                    source,
                })?;
        Ok(Self {
            listener,
            metrics_listener,
            acceptor_12: TlsAcceptor::from(tls_12),
            acceptor_13: TlsAcceptor::from(tls_13),
            certs,
            state: Arc::new(AppState {
                store,
                policy,
                audit,
                metrics,
                vault_name,
                key_cache: keys::cache::KeyCache::default(),
                clock: config.clock,
                challenge,
                vault_origin: config.url.origin,
                events,
                body_budget: http::body_budget(),
            }),
            tls_reload_interval: config.tls_reload_interval,
            sweep_interval: config.sweep_interval,
            limits: config.limits,
        })
    }

    /// The metrics listener's address, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, closes idle connections,
    /// lets in-flight requests finish (up to the drain timeout) and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let router = router(self.state.clone());
        let watcher = self.certs.spawn_watcher(self.tls_reload_interval);
        let replicas = replicas::spawn(self.state.clone());
        let sweeper = sweeper::spawn(self.state.clone(), self.sweep_interval);
        let rotation = keys::rotation::spawn(self.state.clone(), self.sweep_interval);
        let renewal = certificates::renewal::spawn(self.state.clone(), self.sweep_interval);
        let event_delivery = events::delivery::spawn(self.state.clone());
        let event_scanner = events::scanner::spawn(self.state.clone());
        let metrics_task = self
            .metrics_listener
            .map(|l| tokio::spawn(metrics::serve(l, self.state.metrics.clone(), self.limits)));
        let gate = crate::listener::Gate::new(self.limits, self.state.metrics.connections.clone());
        let state = self.state.clone();
        let (acceptor_12, acceptor_13) = (self.acceptor_12.clone(), self.acceptor_13.clone());
        // The minimum TLS version of the current policy applies to each new connection.
        let acceptor = move || match state.policy.current().tls_min {
            tls::TlsMinVersion::Tls12 => acceptor_12.clone(),
            tls::TlsMinVersion::Tls13 => acceptor_13.clone(),
        };
        crate::listener::serve_tls(self.listener, &gate, acceptor, router, shutdown).await;
        watcher.abort();
        replicas.abort();
        sweeper.abort();
        rotation.abort();
        renewal.abort();
        event_delivery.abort();
        event_scanner.abort();
        if let Some(m) = metrics_task {
            m.abort();
        }
        // Idle connections close now; in-flight requests get the drain timeout.
        if !gate.shutdown().await {
            tracing::warn!(
                open = gate.open(),
                "in-flight requests did not finish within the drain timeout; their connections were dropped"
            );
        }
        if !self.state.audit.flush().await {
            tracing::error!("the last audit lines could not be written");
        }
    }
}

/// The data-plane router: kvault's own endpoints under `/_kvault/`, everything else is
/// the key-vault API.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/_kvault/health", axum::routing::get(http::health))
        .fallback(http::dispatch)
        .with_state(state)
}

/// The policy `kvault dev` starts with: its administrator is Key Vault Administrator, and
/// nothing is throttled.
pub fn dev_policy(admin: &str) -> PolicyDocument {
    let mut doc = PolicyDocument::empty();
    doc.generation = 1;
    doc.role_assignments.push(RoleAssignmentEntry {
        principal: PrincipalRef {
            kind: PrincipalKind::User,
            name: admin.to_string(),
            namespace: None,
            issuer: None,
        },
        application: None,
        role: crate::policy::BuiltInRole::Administrator,
        scope: None,
    });
    doc.throttling.enabled = false;
    doc
}

/// Runs a vault until SIGINT or SIGTERM.
pub async fn run(config: ServerConfig) -> Result<(), StartError> {
    let url = config.url.origin.clone();
    let server = Server::start(config).await?;
    let addr = server.local_addr().map_err(|source| StartError::Listen {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    tracing::info!(%addr, %url, "vault serving");
    server.serve(crate::signal::shutdown_signal()).await;
    tracing::info!("vault stopped");
    Ok(())
}
