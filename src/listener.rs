//! Connection limits shared by every listener kvault opens (the vault's HTTPS port and its
//! metrics port, the operator's health port, the provider's gRPC socket and admin port):
//!
//! - a cap on open connections: one over the cap is closed at once and counted;
//! - a TLS-handshake timeout (where there is TLS, see [`handshake`]);
//! - an HTTP/1 header-read timeout, which hyper also applies while a keep-alive connection
//!   waits for its next request, and a first-request deadline of the same length for any
//!   protocol (a connection that never sends a whole request head is closed);
//! - an idle timeout: no request in flight and no byte read or written for that long closes
//!   the connection (HTTP/2 included);
//! - shutdown that closes idle connections at once, lets in-flight requests finish within a
//!   drain timeout and then drops whatever is left.

use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest connection cap accepted.
pub const MAX_CONNECTIONS_CEILING: usize = 1 << 20;

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time a TLS client has to finish its handshake.
    pub handshake_timeout: Duration,
    /// Time a client has to send a whole request head (and, on HTTP/1, to start its next
    /// request on a keep-alive connection).
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// At shutdown, how long in-flight requests may take before their connections are
    /// dropped.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

impl Limits {
    /// Refuses zero values, which would close every connection (or admit none): the
    /// setting's flag name and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (name, d) in [
            ("tls-handshake-timeout", self.handshake_timeout),
            ("header-read-timeout", self.header_read_timeout),
            ("idle-timeout", self.idle_timeout),
        ] {
            if d.is_zero() {
                return Err((name, "must be more than 0s".into()));
            }
        }
        if self.max_connections == 0 || self.max_connections > MAX_CONNECTIONS_CEILING {
            return Err((
                "max-connections",
                format!(
                    "{} is outside 1-{MAX_CONNECTIONS_CEILING}",
                    self.max_connections
                ),
            ));
        }
        Ok(())
    }
}

/// `connections_refused_total` and `connections_open` (the registry's prefix in front).
#[derive(Clone, Debug, Default)]
pub struct ConnectionMetrics {
    pub refused: Counter,
    pub open: Gauge,
}

impl ConnectionMetrics {
    /// Registers both metrics as `<prefix>connections_refused` and `<prefix>connections_open`
    /// (pass "" when the registry has a prefix of its own).
    pub fn register(registry: &mut Registry, prefix: &str) -> Self {
        let m = Self::default();
        registry.register(
            format!("{prefix}connections_refused"),
            "Connections closed at once because the listener was at its connection cap",
            m.refused.clone(),
        );
        registry.register(
            format!("{prefix}connections_open"),
            "Connections currently open",
            m.open.clone(),
        );
        m
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Serving,
    /// Idle connections close, in-flight requests finish, nothing new starts.
    Draining,
    /// Everything left is dropped.
    Closing,
}

/// Admits connections up to the cap and tells them when to stop.
pub struct Gate {
    permits: Arc<Semaphore>,
    max: usize,
    limits: Limits,
    metrics: ConnectionMetrics,
    stage: watch::Sender<Stage>,
}

/// One admitted connection: holds its slot until dropped.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
    stage: watch::Receiver<Stage>,
    limits: Limits,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl Gate {
    pub fn new(limits: Limits, metrics: ConnectionMetrics) -> Self {
        let max = limits.max_connections.clamp(1, MAX_CONNECTIONS_CEILING);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            limits,
            metrics,
            stage: watch::Sender::new(Stage::Serving),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A slot for a new connection, or `None` (counted) when all are taken or the listener
    /// is stopping; the caller closes the connection.
    pub fn admit(&self) -> Option<Admitted> {
        if *self.stage.borrow() != Stage::Serving {
            return None;
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                self.metrics.open.inc();
                Some(Admitted {
                    _permit: permit,
                    open: self.metrics.open.clone(),
                    stage: self.stage.subscribe(),
                    limits: self.limits,
                })
            }
            Err(_) => {
                self.metrics.refused.inc();
                None
            }
        }
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// Closes idle connections, waits up to the drain timeout for the others, then drops
    /// what is left. True when every connection ended within the drain timeout.
    pub async fn shutdown(&self) -> bool {
        self.stage.send_replace(Stage::Draining);
        let all = self.max as u32;
        let drained = tokio::time::timeout(
            self.limits.drain_timeout,
            self.permits.clone().acquire_many_owned(all),
        )
        .await
        .is_ok();
        if !drained {
            self.stage.send_replace(Stage::Closing);
            // The connection tasks drop their connections on their next poll.
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                self.permits.clone().acquire_many_owned(all),
            )
            .await;
        }
        drained
    }
}

/// Runs a TLS (or other) handshake within the handshake timeout.
pub async fn handshake<T, E>(
    limits: &Limits,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, HandshakeError<E>> {
    match tokio::time::timeout(limits.handshake_timeout, fut).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(HandshakeError::Failed(e)),
        Err(_) => Err(HandshakeError::TimedOut),
    }
}

#[derive(Debug)]
pub enum HandshakeError<E> {
    Failed(E),
    TimedOut,
}

/// What a connection's watchdog sees: when it started, its last traffic, requests.
struct Activity {
    started: Instant,
    /// Milliseconds after `started` of the last byte read or written.
    last_io_ms: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_io_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(a: &Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        a.requests.fetch_add(1, Ordering::Relaxed);
        Self(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// An I/O stream that records when bytes pass.
struct Tracked<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Why a connection ended, for debug logs.
#[derive(Debug)]
pub enum Ended {
    /// The client closed it or the protocol ended it (an error included).
    Done(Result<(), Box<dyn std::error::Error + Send + Sync>>),
    /// No whole request head within the header-read timeout.
    NoRequest,
    /// Idle for the idle timeout.
    Idle,
    /// Dropped at shutdown after the drain timeout.
    Dropped,
}

/// Serves HTTP/1.1 and HTTP/2 on one admitted connection under its limits.
pub async fn serve_connection<I, S>(io: I, service: S, admitted: Admitted) -> Ended
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<axum::http::Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let limits = admitted.limits;
    let activity = Arc::new(Activity::new());
    let io = Tracked {
        inner: io,
        activity: activity.clone(),
    };
    let counted = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: axum::http::Request<Incoming>| {
            let guard = InFlight::begin(&activity);
            let svc = service.clone();
            async move {
                let r = tower::ServiceExt::oneshot(svc, req).await;
                drop(guard);
                r
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(io), counted);
    tokio::pin!(conn);
    let tick = (limits.header_read_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Set once the connection was asked to close: why, and since when.
    let mut closing: Option<(Ended, Instant)> = None;
    let mut stage_rx = admitted.stage.clone();
    if *stage_rx.borrow_and_update() != Stage::Serving {
        conn.as_mut().graceful_shutdown();
        closing = Some((Ended::Dropped, Instant::now()));
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                return match closing {
                    Some((why @ (Ended::NoRequest | Ended::Idle), _)) => why,
                    _ => Ended::Done(r),
                };
            }
            changed = stage_rx.changed() => {
                let stage = if changed.is_ok() { *stage_rx.borrow_and_update() } else { Stage::Closing };
                match stage {
                    Stage::Serving => {}
                    Stage::Draining => {
                        if closing.is_none() {
                            conn.as_mut().graceful_shutdown();
                            closing = Some((Ended::Dropped, Instant::now()));
                        }
                    }
                    Stage::Closing => return Ended::Dropped,
                }
            }
            _ = ticker.tick() => {
                if let Some((_, since)) = &closing {
                    // A client that ignores the close gets no more time than the drain.
                    if since.elapsed() >= limits.drain_timeout {
                        return match closing.take() {
                            Some((why, _)) => why,
                            None => Ended::Dropped,
                        };
                    }
                    continue;
                }
                if activity.in_flight.load(Ordering::Relaxed) > 0 {
                    continue;
                }
                let why = if activity.requests.load(Ordering::Relaxed) == 0
                    && activity.started.elapsed() >= limits.header_read_timeout
                {
                    Some(Ended::NoRequest)
                } else if activity.idle_for() >= limits.idle_timeout {
                    Some(Ended::Idle)
                } else {
                    None
                };
                if let Some(why) = why {
                    conn.as_mut().graceful_shutdown();
                    closing = Some((why, Instant::now()));
                }
            }
        }
    }
}

/// What a handler learns of its connection (a request extension on TLS listeners).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: std::net::SocketAddr,
    pub tls_version: &'static str,
}

/// Accepts TLS connections on `listener` until `shutdown` completes, each through the
/// acceptor `acceptor()` returns at that moment (so a policy can change the TLS settings of
/// new connections), and serves `router` on them with a [`ConnInfo`] extension.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    gate: &Gate,
    acceptor: impl Fn() -> tokio_rustls::TlsAcceptor,
    router: axum::Router,
    shutdown: impl Future<Output = ()>,
) {
    accept_until(listener, gate, shutdown, |tcp, peer, admitted| {
        let acceptor = acceptor();
        let router = router.clone();
        let limits = gate.limits();
        tokio::spawn(async move {
            let tls = match handshake(&limits, acceptor.accept(tcp)).await {
                Ok(s) => s,
                Err(HandshakeError::Failed(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(HandshakeError::TimedOut) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let info = ConnInfo {
                peer,
                tls_version: crate::server::tls::version_name(tls.get_ref().1.protocol_version()),
            };
            let svc = tower::ServiceExt::map_request(
                router,
                move |mut req: axum::http::Request<Incoming>| {
                    req.extensions_mut().insert(info.clone());
                    req
                },
            );
            let ended = serve_connection(tls, svc, admitted).await;
            tracing::debug!(%peer, ?ended, "connection ended");
        });
    })
    .await;
}

/// Accepts plain-HTTP connections on `listener` under `limits` until `shutdown`
/// completes, then closes idle connections and drains the rest (see [`Gate::shutdown`]).
pub async fn serve_plain(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: Limits,
    metrics: ConnectionMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let gate = Gate::new(limits, metrics);
    accept_until(listener, &gate, shutdown, |tcp, peer, admitted| {
        let router = router.clone();
        tokio::spawn(async move {
            let ended = serve_connection(tcp, router, admitted).await;
            tracing::debug!(%peer, ?ended, "connection ended");
        });
    })
    .await;
    gate.shutdown().await;
}

/// The accept step every listener shares: accepts connections on `listener` until
/// `shutdown` completes (a failed accept is logged and retried after 50 ms), closes those
/// over the gate's cap at once, and hands each admitted one, with `TCP_NODELAY` set, to
/// `serve`. The listener is closed when this returns.
pub async fn accept_until(
    listener: tokio::net::TcpListener,
    gate: &Gate,
    shutdown: impl Future<Output = ()>,
    mut serve: impl FnMut(tokio::net::TcpStream, std::net::SocketAddr, Admitted),
) {
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Over the connection cap: closed at once (and counted).
        let Some(admitted) = gate.admit() else {
            tracing::debug!(%peer, "connection refused: at the connection cap");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        serve(tcp, peer, admitted);
    }
    drop(listener);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn short() -> Limits {
        Limits {
            handshake_timeout: Duration::from_millis(500),
            header_read_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_millis(800),
            max_connections: 2,
            drain_timeout: Duration::from_secs(2),
        }
    }

    async fn start(
        limits: Limits,
    ) -> (
        std::net::SocketAddr,
        ConnectionMetrics,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = ConnectionMetrics::default();
        let router = axum::Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    "slow"
                }),
            );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_plain(
            listener,
            router,
            limits,
            metrics.clone(),
            async {
                let _ = rx.await;
            },
        ));
        (addr, metrics, tx, task)
    }

    /// Reads until EOF (or a reset); panics after `within`.
    async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> Vec<u8> {
        let mut out = Vec::new();
        tokio::time::timeout(within, async {
            let mut buf = [0u8; 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
        .expect("the server did not close the connection in time");
        out
    }

    #[tokio::test]
    async fn partial_headers_and_silence_are_closed() {
        let (addr, _, _tx, _t) = start(short()).await;
        let mut partial = tokio::net::TcpStream::connect(addr).await.unwrap();
        partial
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
            .await
            .unwrap();
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let t = Instant::now();
        closed_within(&mut partial, Duration::from_secs(3)).await;
        closed_within(&mut silent, Duration::from_secs(3)).await;
        assert!(
            t.elapsed() >= Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn idle_keep_alive_is_closed_and_busy_connections_are_not() {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(5),
            ..short()
        };
        let (addr, _, _tx, _t) = start(limits).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        // A request longer than the idle timeout is not cut.
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(4), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(std::str::from_utf8(&buf[..n]).unwrap().contains("200 OK"));
        // Then, idle, it is closed after the idle timeout (before the 5 s header timeout).
        let t = Instant::now();
        closed_within(&mut s, Duration::from_secs(3)).await;
        assert!(
            t.elapsed() >= Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_and_counted() {
        let (addr, metrics, _tx, _t) = start(short()).await;
        let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        closed_within(&mut c, Duration::from_millis(400)).await;
        assert_eq!(metrics.refused.get(), 1);
        assert_eq!(metrics.open.get(), 2);
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_finishes_requests() {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            ..short()
        };
        let (addr, metrics, tx, task) = start(limits).await;
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let _ = idle.read(&mut buf).await.unwrap();
        let mut busy = tokio::net::TcpStream::connect(addr).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        tx.send(()).unwrap();
        closed_within(&mut idle, Duration::from_millis(500)).await;
        let answer = closed_within(&mut busy, Duration::from_secs(3)).await;
        assert!(String::from_utf8_lossy(&answer).contains("slow"));
        tokio::time::timeout(Duration::from_secs(3), task)
            .await
            .unwrap()
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(metrics.open.get(), 0);
    }

    #[test]
    fn zero_limits_are_refused() {
        assert!(Limits::default().validate().is_ok());
        let e = Limits {
            max_connections: 0,
            ..Limits::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.0, "max-connections");
        let e = Limits {
            idle_timeout: Duration::ZERO,
            ..Limits::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.0, "idle-timeout");
    }
}
