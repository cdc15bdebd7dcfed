//! ServiceAccounts read by name for the workload-identity webhook, cached briefly.
//!
//! The webhook reads the ServiceAccount of every labelled pod it admits (its
//! `azure.workload.identity/*` annotations). A Deployment scaled to 50 replicas asks 50
//! times for the same one within seconds, so a ServiceAccount read is kept for [`TTL`]: an
//! annotation changed on it reaches new pods within that time. The cache holds at most
//! [`CAPACITY`] entries (expired ones are dropped first, then the oldest). Neither a failed
//! read nor a 404 is cached: a ServiceAccount created just after its pod was first refused
//! (a chart installing both) must be seen at the next try, or that pod would get the
//! convention client id instead of its annotated one.

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::{Api, Client};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an answer is reused.
pub const TTL: Duration = Duration::from_secs(30);
/// The most ServiceAccounts kept.
pub const CAPACITY: usize = 1024;

type Key = (String, String);
/// When an answer was read, and the answer (`None`: 404).
type Entry = (Instant, ServiceAccount);

#[derive(Clone)]
pub struct ServiceAccountDirectory {
    client: Client,
    ttl: Duration,
    capacity: usize,
    cache: Arc<Mutex<HashMap<Key, Entry>>>,
}

impl std::fmt::Debug for ServiceAccountDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountDirectory")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountDirectory {
    pub fn new(client: Client) -> Self {
        Self::with_limits(client, TTL, CAPACITY)
    }

    pub fn with_limits(client: Client, ttl: Duration, capacity: usize) -> Self {
        Self {
            client,
            ttl,
            capacity: capacity.max(1),
            cache: Arc::default(),
        }
    }

    /// The ServiceAccount `namespace/name`; `None` when it does not exist.
    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ServiceAccount>, kube::Error> {
        let key = (namespace.to_string(), name.to_string());
        if let Some(hit) = self.cached(&key) {
            return Ok(Some(hit));
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let found = api.get_opt(name).await?;
        if let Some(sa) = &found {
            self.remember(key, sa.clone());
        }
        Ok(found)
    }

    fn cached(&self, key: &Key) -> Option<ServiceAccount> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, sa)| sa.clone())
    }

    fn remember(&self, key: Key, sa: ServiceAccount) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.capacity && !cache.contains_key(&key) {
            let ttl = self.ttl;
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            while cache.len() >= self.capacity {
                let oldest = cache
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => cache.remove(&k),
                    None => break,
                };
            }
        }
        cache.insert(key, (Instant::now(), sa));
    }

    #[cfg(test)]
    pub(crate) fn cached_len(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::json;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn mock() -> (Client, Handle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(service, "default"), handle)
    }

    /// Answers the next request (which must be a GET of this ServiceAccount, allowed by the
    /// operator's RBAC) with this status and body.
    async fn answer(handle: &mut Handle, ns: &str, name: &str, status: StatusCode) {
        let (req, reply) = handle.next_request().await.expect("a request");
        assert_eq!(req.method(), "GET");
        assert_eq!(
            req.uri().path(),
            format!("/api/v1/namespaces/{ns}/serviceaccounts/{name}")
        );
        crate::operator::rbac::check::assert_allowed("GET", req.uri().path(), "");
        let body = if status == StatusCode::OK {
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": name, "namespace": ns,
                                "annotations": {"azure.workload.identity/client-id": "abc"}}})
        } else {
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "reason": if status == StatusCode::NOT_FOUND { "NotFound" } else { "Forbidden" },
                   "code": status.as_u16()})
        };
        reply.send_response(
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
    }

    #[tokio::test]
    async fn reads_once_per_ttl_with_a_mock_api_server() {
        let (client, mut handle) = mock();
        let dir = ServiceAccountDirectory::new(client);
        let d = dir.clone();
        let server = tokio::spawn(async move {
            answer(&mut handle, "team-a", "payments", StatusCode::OK).await;
            answer(&mut handle, "team-a", "missing", StatusCode::NOT_FOUND).await;
            answer(&mut handle, "team-a", "missing", StatusCode::NOT_FOUND).await;
            answer(&mut handle, "team-a", "secret", StatusCode::FORBIDDEN).await;
            answer(&mut handle, "team-a", "secret", StatusCode::FORBIDDEN).await;
            handle
        });
        let sa = d.get("team-a", "payments").await.unwrap().unwrap();
        assert_eq!(sa.metadata.name.as_deref(), Some("payments"));
        // The second read is the cache's: the mocked API server is asked nothing.
        assert!(d.get("team-a", "payments").await.unwrap().is_some());
        // 404: None, asked again each time (it may be created any moment).
        assert!(d.get("team-a", "missing").await.unwrap().is_none());
        assert!(d.get("team-a", "missing").await.unwrap().is_none());
        // A failure is an error, and is not cached.
        assert!(d.get("team-a", "secret").await.is_err());
        assert!(d.get("team-a", "secret").await.is_err());
        let _handle = server.await.unwrap();
        assert_eq!(dir.cached_len(), 1);
    }

    #[tokio::test]
    async fn expired_answers_are_read_again_and_the_cache_is_bounded_with_a_mock_api_server() {
        let (client, mut handle) = mock();
        let dir = ServiceAccountDirectory::with_limits(client, Duration::from_millis(50), 2);
        let server = tokio::spawn(async move {
            for name in ["a", "b", "c", "a"] {
                answer(&mut handle, "ns", name, StatusCode::OK).await;
            }
            handle
        });
        dir.get("ns", "a").await.unwrap();
        dir.get("ns", "b").await.unwrap();
        dir.get("ns", "c").await.unwrap();
        assert_eq!(dir.cached_len(), 2);
        tokio::time::sleep(Duration::from_millis(80)).await;
        // "a" was evicted (or expired): read again.
        dir.get("ns", "a").await.unwrap();
        assert!(dir.cached_len() <= 2);
        let _handle = server.await.unwrap();
    }
}
