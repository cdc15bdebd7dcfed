//! Prometheus metrics, served as text on a separate plain-HTTP port (`/metrics`), away
//! from the TLS data port: requests, latency, authentication and authorization failures,
//! firewall denials, throttling and store latency.

use crate::server::store::{Backend, Batch, StoreError};
use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub operation: &'static str,
    /// The HTTP status code (`code`, as the ecosystem's HTTP metrics name it).
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabel {
    pub category: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<OperationLabel, Histogram, fn() -> Histogram>,
    pub authn_failures: Family<ReasonLabel, Counter>,
    pub authz_denials: Family<OperationLabel, Counter>,
    pub firewall_denials: Counter,
    pub throttled: Family<CategoryLabel, Counter>,
    pub store_latency: Family<OperationLabel, Histogram, fn() -> Histogram>,
    /// 1 while this replica holds the background-job lease.
    pub job_lease_held: prometheus_client::metrics::gauge::Gauge,
    /// Event notifications: deliveries, dead letters, outbox size.
    pub events: crate::server::events::EventMetrics,
    /// Data-port connections refused at the cap, and open now.
    pub connections: crate::listener::ConnectionMetrics,
    /// The token service `kvault dev` serves next to its vault (zero elsewhere).
    pub identity: crate::identity::IdentityMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        crate::openmetrics::register_build_and_process(&mut root, "server");
        let registry = root.sub_registry_with_prefix("kvault");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Family<OperationLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let authn_failures = Family::<ReasonLabel, Counter>::default();
        let authz_denials = Family::<OperationLabel, Counter>::default();
        let firewall_denials = Counter::default();
        let throttled = Family::<CategoryLabel, Counter>::default();
        let store_latency: Family<OperationLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "requests",
            "Data-plane requests by operation and HTTP status code",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Request latency by operation",
            latency.clone(),
        );
        registry.register(
            "authentication_failures",
            "Requests refused by authentication, by reason",
            authn_failures.clone(),
        );
        registry.register(
            "authorization_denials",
            "Requests refused by authorization, by operation",
            authz_denials.clone(),
        );
        registry.register(
            "firewall_denials",
            "Requests refused by the network rules",
            firewall_denials.clone(),
        );
        registry.register(
            "throttled_requests",
            "Requests refused with 429, by budget",
            throttled.clone(),
        );
        registry.register(
            "store_operation_duration_seconds",
            "Storage backend latency by operation",
            store_latency.clone(),
        );
        let job_lease_held = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "background_jobs_leader",
            "1 while this replica runs the vault's background jobs (purge, rotation, renewal, notifications)",
            job_lease_held.clone(),
        );
        let events = crate::server::events::EventMetrics::register(registry);
        let connections = crate::listener::ConnectionMetrics::register(registry, "");
        let identity = crate::identity::IdentityMetrics::register(registry, "");
        Self {
            connections,
            identity,
            job_lease_held,
            events,
            registry: root,
            requests,
            latency,
            authn_failures,
            authz_denials,
            firewall_denials,
            throttled,
            store_latency,
        }
    }

    /// The `/metrics` answer.
    pub fn response(&self) -> axum::response::Response {
        crate::openmetrics::response(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A backend wrapper that times every call.
pub struct MeteredBackend {
    inner: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
}

impl MeteredBackend {
    pub fn new(inner: Arc<dyn Backend>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn observe(&self, operation: &'static str, started: Instant) {
        self.metrics
            .store_latency
            .get_or_create(&OperationLabel { operation })
            .observe(started.elapsed().as_secs_f64());
    }
}

#[async_trait]
impl Backend for MeteredBackend {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let t = Instant::now();
        let r = self.inner.get(key).await;
        self.observe("get", t);
        r
    }
    async fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let t = Instant::now();
        let r = self.inner.scan(prefix).await;
        self.observe("scan", t);
        r
    }
    async fn scan_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let t = Instant::now();
        let r = self.inner.scan_page(prefix, after, limit).await;
        self.observe("scan", t);
        r
    }
    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let t = Instant::now();
        let r = self.inner.get_many(keys).await;
        self.observe("get", t);
        r
    }
    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.commit(batch).await;
        self.observe("commit", t);
        r
    }
    async fn holds_job_lease(&self) -> bool {
        self.inner.holds_job_lease().await
    }
    fn changes(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<crate::server::store::ChangeNotice>> {
        self.inner.changes()
    }
}

/// Serves `/metrics` on its own listener, under the data port's connection limits (its
/// connections are not counted in the data port's metrics), until the task is aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    limits: crate::listener::Limits,
) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move { m.response() }
        }),
    );
    crate::listener::serve_plain(
        listener,
        app,
        limits,
        crate::listener::ConnectionMetrics::default(),
        std::future::pending(),
    )
    .await;
}
