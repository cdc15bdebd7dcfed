//! `kvault server`: one vault's data plane — HTTPS, authentication, authorization, sealed
//! storage and the key-vault REST API. Nothing here depends on Kubernetes.

pub mod auth;
pub mod authz;
pub mod config;
pub mod error;
pub mod http;
pub mod objects;
pub mod ops;
pub mod secrets;
pub mod store;
pub mod sweeper;
pub mod tls;

use crate::clock::SharedClock;
use crate::server::auth::Authenticator;
use crate::server::config::{ConfigError, ServerConfig};
use crate::server::objects::SoftDelete;
use crate::server::store::VaultStore;
use axum::Router;
use axum::http::HeaderValue;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Everything a request handler may use.
pub struct AppState {
    pub store: VaultStore,
    pub auth: Authenticator,
    pub soft_delete: SoftDelete,
    pub clock: SharedClock,
    /// The `WWW-Authenticate` value of every 401.
    pub challenge: HeaderValue,
    /// The advertised origin, used when a request's Host is unusable.
    pub vault_origin: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("opening storage in {dir}: {source}")]
    Store {
        dir: String,
        source: store::StoreError,
    },
    #[error("loading token issuer keys: {0}")]
    Issuers(#[from] auth::JwksError),
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
    acceptor: TlsAcceptor,
    certs: Arc<tls::ReloadingCert>,
    state: Arc<AppState>,
    tls_reload_interval: Duration,
    sweep_interval: Duration,
}

/// `Bearer authorization="…", resource="…"`: values quoted (the JS SDK needs that) and free
/// of `,` and `=` (the Python SDK's parser drops such items).
pub fn challenge_value(origin: &str, resource: &str) -> String {
    format!("Bearer authorization=\"{origin}/kvault\", resource=\"{resource}\"")
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
        let tls_config = tls::server_config(certs.clone(), config.tls_min_version)?;
        let master = config.load_master_key()?;
        let backend = store::redb::RedbBackend::open(&config.data_dir.join("kvault.redb"))
            .map_err(|source| StartError::Store {
                dir: config.data_dir.display().to_string(),
                source,
            })?;
        let store = VaultStore::open(Arc::new(backend), &master)
            .await
            .map_err(|source| StartError::Store {
                dir: config.data_dir.display().to_string(),
                source,
            })?;
        drop(master);
        let http = crate::client::http_client_builder(&config.extra_ca)
            .map_err(|e| StartError::HttpClient(e.to_string()))?
            .build()
            .map_err(|e| StartError::HttpClient(e.to_string()))?;
        let auth = Authenticator::new(
            config.issuers.clone(),
            config.audiences.clone(),
            config.jwks_refresh_interval,
            http,
            config.clock.clone(),
        )
        .await?;
        let challenge =
            HeaderValue::from_str(&challenge_value(&config.url.origin, &config.resource)).map_err(
                |e| {
                    StartError::Config(ConfigError::Invalid {
                        name: "url",
                        reason: e.to_string(),
                    })
                },
            )?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen,
                    source,
                })?;
        Ok(Self {
            listener,
            acceptor: TlsAcceptor::from(tls_config),
            certs,
            state: Arc::new(AppState {
                store,
                auth,
                soft_delete: config.soft_delete,
                clock: config.clock,
                challenge,
                vault_origin: config.url.origin,
            }),
            tls_reload_interval: config.tls_reload_interval,
            sweep_interval: config.sweep_interval,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish (up to 10 s) and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let router = router(self.state.clone());
        let watcher = self.certs.spawn_watcher(self.tls_reload_interval);
        let sweeper = sweeper::spawn(self.state.clone(), self.sweep_interval);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let router = router.clone();
            let watch = graceful.watcher();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let info = http::ConnInfo {
                    peer,
                    tls_version: tls::version_name(tls.get_ref().1.protocol_version()),
                };
                let svc = tower::ServiceExt::map_request(
                    router,
                    move |mut req: axum::http::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(info.clone());
                        req
                    },
                );
                let svc = hyper_util::service::TowerToHyperService::new(svc);
                let builder = auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection(TokioIo::new(tls), svc);
                if let Err(e) = watch.watch(conn.into_owned()).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        watcher.abort();
        sweeper.abort();
        if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within 10 s");
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

/// Runs a vault until SIGINT or SIGTERM.
pub async fn run(config: ServerConfig) -> Result<(), StartError> {
    let url = config.url.origin.clone();
    let server = Server::start(config).await?;
    let addr = server.local_addr().map_err(|source| StartError::Listen {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    tracing::info!(%addr, %url, "vault serving");
    server.serve(shutdown_signal()).await;
    tracing::info!("vault stopped");
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
