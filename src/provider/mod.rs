//! `kvault provider`: the Secrets Store CSI Driver provider. It serves the driver's
//! `v1alpha1.CSIDriverProvider` gRPC service on a Unix socket and mounts vault secrets,
//! keys and certificates into pods, authenticating to the vault as each pod (with the
//! service-account token the driver passes: with `--identity-authority`, its token for the
//! one workload-identity audience, exchanged at kvault's token service for the vault's
//! audience; without it (legacy), its token for the vault's own audience). It writes
//! nothing to the node: files go back to the driver in the Mount response.
//!
//! Parts: `params` (pure request parsing), `render` (pure file rendering), `fetch` (vault
//! access: cache, de-duplication, concurrency bound, backoff), `service` (the gRPC
//! service), `authority` (the HTTP/2 shim that lets older drivers in), `socket` (an
//! owner-only socket), `metrics`.

pub mod authority;
pub mod error;
pub mod exchange;
pub mod fetch;
pub mod metrics;
pub mod params;
pub mod render;
pub mod service;
pub mod socket;

/// The generated gRPC types, server and (transport-agnostic) client.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("v1alpha1");
}

use exchange::{ExchangeSettings, Exchanger};
use fetch::{FetchSettings, Fetcher};
use metrics::ProviderMetrics;
use service::{MountSettings, Provider};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::{TcpListener, UnixListener, UnixStream};

pub const DEFAULT_SOCKET: &str = "/var/run/secrets-store-csi-providers/kvault.sock";
pub const DEFAULT_CA_FILE: &str = "/etc/kvault/ca/ca.crt";
pub const DEFAULT_CA_DIR: &str = "/etc/kvault/ca";

/// Options of `kvault provider`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProviderOptions {
    /// The Unix socket the driver connects to (`<provider dir>/kvault.sock`).
    #[arg(long, env = "KVAULT_PROVIDER_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// The vaults' CA bundle used when a SecretProviderClass names none (mount the
    /// cluster's `kvault-ca` ConfigMap here).
    #[arg(long, env = "KVAULT_CA_FILE", default_value = DEFAULT_CA_FILE)]
    pub ca_file: PathBuf,
    /// Directories a SecretProviderClass's `vaultCACertPath` may name files in
    /// (repeatable).
    #[arg(long = "ca-dir", env = "KVAULT_PROVIDER_CA_DIRS", value_delimiter = ',', default_value = DEFAULT_CA_DIR)]
    pub ca_dirs: Vec<PathBuf>,
    /// Plain-HTTP listener for /healthz, /readyz and /metrics; `off` disables it.
    #[arg(
        long,
        env = "KVAULT_PROVIDER_ADMIN_LISTEN",
        default_value = "0.0.0.0:8989"
    )]
    pub admin_listen: String,
    /// How long a fetched object is reused for the same pod token, object and version
    /// (0 turns the cache off; identical fetches in flight are still shared).
    #[arg(long, default_value = "30s", value_parser = crate::clock::parse_duration)]
    pub cache_ttl: Duration,
    /// Bytes of fetched content the cache may hold.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub cache_max_bytes: usize,
    /// Vault requests in flight at once, across all mounts.
    #[arg(long, default_value_t = 32)]
    pub max_concurrent_requests: usize,
    /// Retries of a vault request after 429, 5xx or a transport error.
    #[arg(long, default_value_t = 3)]
    pub max_retries: u32,
    /// Timeout of one vault request.
    #[arg(long, default_value = "15s", value_parser = crate::clock::parse_duration)]
    pub request_timeout: Duration,
    /// Budget of one Mount (kubelet gives the whole call 2 minutes).
    #[arg(long, default_value = "90s", value_parser = crate::clock::parse_duration)]
    pub mount_timeout: Duration,
    /// Largest Mount response; the driver refuses more than its --max-call-recv-msg-size
    /// (default 4 MiB).
    #[arg(long, default_value_t = service::DRIVER_DEFAULT_MAX_MESSAGE)]
    pub max_response_bytes: usize,
    /// Open connections at most, on the socket and (separately) on the admin listener;
    /// more are closed at once and counted.
    #[arg(long, env = "KVAULT_PROVIDER_MAX_CONNECTIONS", default_value_t = crate::listener::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// A connection with no call in flight and no traffic for this long is closed (the
    /// driver reconnects); on the socket it is also the time to make a first call.
    #[arg(long, env = "KVAULT_PROVIDER_IDLE_TIMEOUT", default_value = "60s", value_parser = crate::clock::parse_duration)]
    pub idle_timeout: Duration,
    /// Time an admin-listener client has to send a whole request head.
    #[arg(long, env = "KVAULT_PROVIDER_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = crate::clock::parse_duration)]
    pub header_read_timeout: Duration,
    /// The workload-identity token service's authority
    /// (`https://<release>-operator-webhook.<namespace>.svc/adfs`). When set, the pod's
    /// token for `--identity-audience` is exchanged there for the vault's audience and only
    /// the exchanged token goes to the vault. Unset: the legacy mode (the driver passes a
    /// token for each vault's own audience, sent to the vault as is).
    #[arg(long, env = "KVAULT_IDENTITY_AUTHORITY")]
    pub identity_authority: Option<String>,
    /// The audience of the pod tokens exchanged at the token service (the one audience of
    /// the CSIDriver's tokenRequests).
    #[arg(long, env = "KVAULT_IDENTITY_AUDIENCE", default_value = exchange::DEFAULT_IDENTITY_AUDIENCE)]
    pub identity_audience: String,
}

impl ProviderOptions {
    /// Parses options as the command line would (tests, embedding).
    pub fn from_args(args: &[&str]) -> Result<Self, clap::Error> {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            opts: ProviderOptions,
        }
        let argv = std::iter::once("kvault-provider").chain(args.iter().copied());
        <Wrapper as clap::Parser>::try_parse_from(argv).map(|w| w.opts)
    }
}

/// A connection from the driver, behind the `:authority` shim.
pub struct ShimmedConnection {
    inner: DuplexStream,
}

impl tonic::transport::server::Connected for ShimmedConnection {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for ShimmedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ShimmedConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Puts the shim between an accepted socket and tonic.
fn shim(stream: UnixStream, metrics: &ProviderMetrics) -> ShimmedConnection {
    let (server_side, shim_side) = tokio::io::duplex(64 * 1024);
    let (mut client_r, mut client_w) = stream.into_split();
    let (mut shim_r, mut shim_w) = tokio::io::split(shim_side);
    let mut rewriter = authority::Rewriter::with_counter(metrics.authority_rewrites.clone());
    tokio::spawn(async move {
        let to_server = async {
            let r = rewriter.pump(&mut client_r, &mut shim_w).await;
            if r.is_ok() {
                let _ = shim_w.shutdown().await;
            }
            r
        };
        let to_client = async {
            let _ = tokio::io::copy(&mut shim_r, &mut client_w).await;
            let _ = client_w.shutdown().await;
        };
        tokio::pin!(to_server, to_client);
        tokio::select! {
            r = &mut to_server => match r {
                Ok(()) => to_client.await,
                Err(e) => tracing::debug!(error = %e, "closing a driver connection"),
            },
            () = &mut to_client => {}
        }
    });
    ShimmedConnection { inner: server_side }
}

/// A started provider: socket bound, admin listener bound, not yet serving.
pub struct ProviderServer {
    listener: UnixListener,
    socket: PathBuf,
    admin: Option<TcpListener>,
    provider: Provider,
    fetcher: Arc<Fetcher>,
    exchanger: Option<Arc<Exchanger>>,
    metrics: Arc<ProviderMetrics>,
    limits: crate::listener::Limits,
}

impl ProviderServer {
    pub async fn start(opts: ProviderOptions) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        let metrics = Arc::new(ProviderMetrics::new());
        let fetcher = Arc::new(Fetcher::new(
            FetchSettings {
                cache_ttl: opts.cache_ttl,
                max_cache_bytes: opts.cache_max_bytes,
                max_concurrent_requests: opts.max_concurrent_requests,
                max_retries: opts.max_retries,
                request_timeout: opts.request_timeout,
                ca_file: Some(opts.ca_file.clone()),
                ca_dirs: opts.ca_dirs.clone(),
                ..FetchSettings::default()
            },
            metrics.clone(),
        ));
        let exchanger = match opts
            .identity_authority
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            None => None,
            Some(authority) => {
                let url = reqwest::Url::parse(authority)
                    .map_err(|e| anyhow::anyhow!("--identity-authority '{authority}': {e}"))?;
                if url.scheme() != "https" {
                    anyhow::bail!("--identity-authority must be an https:// URL");
                }
                if opts.identity_audience.trim().is_empty() {
                    anyhow::bail!("--identity-audience must not be empty");
                }
                Some(Arc::new(Exchanger::new(
                    ExchangeSettings {
                        authority: authority.trim_end_matches('/').to_string(),
                        audience: opts.identity_audience.trim().to_string(),
                        request_timeout: opts.request_timeout,
                        max_cached: exchange::MAX_CACHED_TOKENS,
                    },
                    metrics.clone(),
                )))
            }
        };
        let provider = Provider::new(
            fetcher.clone(),
            MountSettings {
                max_response_bytes: opts.max_response_bytes,
                mount_timeout: opts.mount_timeout,
            },
            metrics.clone(),
        )
        .with_exchanger(exchanger.clone());
        let limits = crate::listener::Limits {
            header_read_timeout: opts.header_read_timeout,
            idle_timeout: opts.idle_timeout,
            max_connections: opts.max_connections,
            ..crate::listener::Limits::default()
        };
        limits
            .validate()
            .map_err(|(name, reason)| anyhow::anyhow!("--{name}: {reason}"))?;
        let listener = socket::bind_private(&opts.socket)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.socket.display()))?;
        let admin = match opts.admin_listen.trim() {
            "" | "off" | "none" => None,
            addr => {
                let addr: SocketAddr = addr
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--admin-listen '{addr}': {e}"))?;
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?,
                )
            }
        };
        Ok(Self {
            listener,
            socket: opts.socket,
            admin,
            provider,
            fetcher,
            exchanger,
            metrics,
            limits,
        })
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Serves until `shutdown` completes, then finishes in-flight calls and removes the
    /// socket.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            socket,
            admin,
            provider,
            fetcher,
            exchanger,
            metrics,
            limits,
        } = self;
        let admin_task =
            admin.map(|l| tokio::spawn(serve_admin(l, metrics.clone(), socket.clone(), limits)));
        let sweeper = {
            let f = fetcher.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(30));
                loop {
                    tick.tick().await;
                    f.sweep();
                    if let Some(x) = &exchanger {
                        x.sweep();
                    }
                }
            })
        };
        tracing::info!(socket = %socket.display(), "provider serving");
        let svc = pb::csi_driver_provider_server::CsiDriverProviderServer::new(provider)
            .max_decoding_message_size(4 * 1024 * 1024)
            .max_encoding_message_size(usize::MAX);
        let router = tonic::service::Routes::new(svc)
            .prepare()
            .into_axum_router();
        // The driver keeps its gRPC connection open between calls: a connection has the
        // idle timeout (not the header-read timeout) to make its first call.
        let limits = crate::listener::Limits {
            header_read_timeout: limits.idle_timeout,
            ..limits
        };
        let gate = crate::listener::Gate::new(limits, metrics.connections.clone());
        let shutdown = shutdown;
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a driver connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Some(admitted) = gate.admit() else {
                tracing::warn!("driver connection refused: at the connection cap");
                continue;
            };
            let conn = shim(stream, &metrics);
            let router = router.clone();
            tokio::spawn(async move {
                let ended = crate::listener::serve_connection(conn, router, admitted).await;
                tracing::debug!(?ended, "driver connection ended");
            });
        }
        drop(listener);
        if !gate.shutdown().await {
            tracing::warn!("Mount calls did not finish within the drain timeout");
        }
        sweeper.abort();
        if let Some(t) = admin_task {
            t.abort();
        }
        let _ = socket::remove_stale(&socket);
        tracing::info!("provider stopped");
        Ok(())
    }
}

/// `/healthz` and `/readyz`: the socket accepts connections; `/metrics`: Prometheus text.
async fn serve_admin(
    listener: TcpListener,
    metrics: Arc<ProviderMetrics>,
    socket: PathBuf,
    limits: crate::listener::Limits,
) {
    let connections = metrics.admin_connections.clone();
    let health = move || {
        let socket = socket.clone();
        async move {
            let ok = tokio::time::timeout(Duration::from_secs(2), UnixStream::connect(&socket))
                .await
                .is_ok_and(|r| r.is_ok());
            if ok {
                (axum::http::StatusCode::OK, "ok\n")
            } else {
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "the provider socket does not accept connections\n",
                )
            }
        }
    };
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(health.clone()))
        .route("/readyz", axum::routing::get(health))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let m = metrics.clone();
                async move { m.response() }
            }),
        );
    crate::listener::serve_plain(listener, app, limits, connections, std::future::pending()).await;
}

/// Runs the provider until SIGTERM or SIGINT.
pub async fn run(opts: ProviderOptions) -> anyhow::Result<()> {
    let server = ProviderServer::start(opts).await?;
    if let Some(addr) = server.admin_addr() {
        tracing::info!(%addr, "health and metrics listening");
    }
    server.serve(crate::signal::shutdown_signal()).await
}
