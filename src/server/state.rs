//! What every request handler and background job of a vault shares.

use crate::clock::SharedClock;
use crate::server::audit::AuditLog;
use crate::server::events::Events;
use crate::server::keys::cache::KeyCache;
use crate::server::metrics::Metrics;
use crate::server::runtime::PolicyManager;
use crate::server::store::VaultStore;
use axum::http::HeaderValue;
use std::sync::Arc;

/// Everything a request handler may use.
pub struct AppState {
    pub store: VaultStore,
    /// The current policy snapshot (grants, network, TLS minimum, token verifier, …).
    pub policy: PolicyManager,
    pub audit: AuditLog,
    pub metrics: Arc<Metrics>,
    /// The vault's name (the first label of its host), as denial messages name it.
    pub vault_name: String,
    /// Parsed key material of recently used key versions.
    pub key_cache: KeyCache,
    pub clock: SharedClock,
    /// The `WWW-Authenticate` value of every 401.
    pub challenge: HeaderValue,
    /// The advertised origin, used when a request's Host is unusable.
    pub vault_origin: String,
    /// Event notifications: staging into the outbox, waking the delivery loop.
    pub events: Arc<Events>,
    /// Room for request bodies being read or handled (see [`http::MAX_BODIES_IN_FLIGHT`]).
    pub body_budget: Arc<tokio::sync::Semaphore>,
}
