//! The provider's Prometheus metrics (prefix `kvault_provider_`): mounts by result, mount
//! latency, vault calls by object type and outcome, their latency, retries and cache use.
//! Every label is low-cardinality: no pod, object or vault names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or an error code (`Forbidden`, `NotFound`, …).
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VaultCallLabels {
    pub object_type: &'static str,
    /// `ok`, `unauthorized`, `forbidden`, `not_found`, `throttled`, `server_error`,
    /// `client_error`, `transport`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectTypeLabel {
    pub object_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabel {
    /// `hit` (a fresh cached answer), `shared` (joined an identical fetch in flight),
    /// `miss` (fetched).
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExchangeLabel {
    pub result: &'static str,
}

pub struct ProviderMetrics {
    registry: Registry,
    pub mounts: Family<ResultLabel, Counter>,
    pub mount_duration: Histogram,
    pub vault_calls: Family<VaultCallLabels, Counter>,
    pub vault_call_duration: Family<ObjectTypeLabel, Histogram, fn() -> Histogram>,
    pub vault_retries: Counter,
    pub cache: Family<CacheLabel, Counter>,
    pub authority_rewrites: Counter,
    /// Token exchanges at the workload-identity token service by result (`ok`, `cached`,
    /// or the OAuth error / `transport` / `invalid_answer`).
    pub token_exchanges: Family<ExchangeLabel, Counter>,
    /// Driver connections on the socket refused at the cap, and open now.
    pub connections: crate::listener::ConnectionMetrics,
    /// The same for the admin (health and metrics) listener.
    pub admin_connections: crate::listener::ConnectionMetrics,
}

fn latency() -> Histogram {
    // 0.5 ms … ~65 s
    Histogram::new(exponential_buckets(0.000_5, 2.0, 18))
}

impl ProviderMetrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        crate::openmetrics::register_build_and_process(&mut root, "provider");
        let registry = root.sub_registry_with_prefix("kvault_provider");
        let mounts = Family::<ResultLabel, Counter>::default();
        let mount_duration = latency();
        let vault_calls = Family::<VaultCallLabels, Counter>::default();
        let vault_call_duration: Family<ObjectTypeLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency);
        let vault_retries = Counter::default();
        let cache = Family::<CacheLabel, Counter>::default();
        let authority_rewrites = Counter::default();
        let token_exchanges = Family::<ExchangeLabel, Counter>::default();
        registry.register(
            "token_exchanges",
            "Pod tokens exchanged at the workload-identity token service, by result",
            token_exchanges.clone(),
        );
        registry.register("mounts", "Mount calls by result", mounts.clone());
        registry.register(
            "mount_duration_seconds",
            "Mount latency",
            mount_duration.clone(),
        );
        registry.register(
            "vault_requests",
            "Requests to vaults by object type and outcome",
            vault_calls.clone(),
        );
        registry.register(
            "vault_request_duration_seconds",
            "Vault request latency by object type",
            vault_call_duration.clone(),
        );
        registry.register(
            "vault_retries",
            "Vault requests retried after 429, 5xx or a transport error",
            vault_retries.clone(),
        );
        registry.register(
            "cache_lookups",
            "Object lookups by cache result",
            cache.clone(),
        );
        registry.register(
            "authority_rewrites",
            "Request header blocks whose socket-path :authority (driver <= v1.5) was rewritten",
            authority_rewrites.clone(),
        );
        let connections = crate::listener::ConnectionMetrics::register(registry, "");
        let admin_connections = crate::listener::ConnectionMetrics::register(registry, "admin_");
        Self {
            connections,
            admin_connections,
            registry: root,
            mounts,
            mount_duration,
            vault_calls,
            vault_call_duration,
            vault_retries,
            cache,
            authority_rewrites,
            token_exchanges,
        }
    }

    /// The `/metrics` answer.
    pub fn response(&self) -> axum::response::Response {
        crate::openmetrics::response(&self.registry)
    }
}

impl Default for ProviderMetrics {
    fn default() -> Self {
        Self::new()
    }
}
