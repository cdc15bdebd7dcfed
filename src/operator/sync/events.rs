//! The vault events that trigger syncs: the operator subscribes to every vault it runs
//! (one subscription, [`SUBSCRIPTION_NAME`], added to the pushed policy) and receives the
//! CloudEvents on its HTTPS listener at `POST /sync/events/<namespace>/<vault>`.
//!
//! Proof: the subscription's write-only header carries `Bearer <HMAC(key, namespace/vault)>`,
//! the key derived from the operator CA's private key. A vault can only prove its own
//! namespace and name, and nobody else can forge a trigger; the comparison is constant-time.
//! A trigger never carries values — the sync reads the vault itself, as its service account.

use crate::policy::events::{AuthHeader, EventSubscription, EventType, HeaderSecret};
use crate::wire::events::CloudEvent;
use aws_lc_rs::hmac;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The operator's subscription in every vault's policy.
pub const SUBSCRIPTION_NAME: &str = "kvault-operator-sync";
/// Where the events arrive on the operator's HTTPS listener.
pub const EVENTS_ROUTE: &str = "/sync/events/{namespace}/{vault}";
/// The header that carries the proof.
pub const PROOF_HEADER: &str = "Authorization";
/// The purpose the proof key is derived for from the operator CA's private key
/// (`Ca::derive_mac_key`): every replica derives the same key.
pub const PROOF_PURPOSE: &str = "kvault operator: secret sync event proof v1";
/// The event types that may change what a sync writes: new versions, and policy changes
/// (grants may have changed).
pub const TRIGGERS: [EventType; 4] = [
    EventType::SecretNewVersionCreated,
    EventType::KeyNewVersionCreated,
    EventType::CertificateNewVersionCreated,
    EventType::VaultAccessPolicyChanged,
];
/// Triggers waiting for the dispatcher; a full queue answers 503 and the vault retries.
pub const QUEUE: usize = 1024;

/// Proves and checks that an event comes from a vault the operator subscribed.
#[derive(Clone)]
pub struct EventProof {
    key: Arc<hmac::Key>,
    /// Names this key in the policy digest (a hash of a proof, never the key).
    fingerprint: String,
}

impl std::fmt::Debug for EventProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProof")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl PartialEq for EventProof {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}
impl Eq for EventProof {}

impl EventProof {
    pub fn new(key: hmac::Key) -> Self {
        let probe = hmac::sign(&key, b"fingerprint");
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, probe.as_ref());
        Self {
            key: Arc::new(key),
            fingerprint: hex::encode(digest.as_ref().get(..8).unwrap_or_default()),
        }
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn message(namespace: &str, vault: &str) -> Vec<u8> {
        format!("{namespace}/{vault}").into_bytes()
    }

    /// The header value a vault sends.
    pub fn header_value(&self, namespace: &str, vault: &str) -> HeaderSecret {
        let tag = hmac::sign(&self.key, &Self::message(namespace, vault));
        HeaderSecret::new(format!("Bearer {}", hex::encode(tag.as_ref())))
    }

    /// Whether `header` proves `namespace/vault` (constant-time in the tag).
    pub fn verify(&self, namespace: &str, vault: &str, header: Option<&str>) -> bool {
        let Some(tag) = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .and_then(|t| hex::decode(t.trim()).ok())
        else {
            return false;
        };
        hmac::verify(&self.key, &Self::message(namespace, vault), &tag).is_ok()
    }
}

/// What the vaults need to deliver to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEventSettings {
    /// `https://<operator service>.<ns>.svc` (the token service's host).
    pub endpoint_base: String,
    /// The CA that signs the operator's serving certificate.
    pub ca_bundle: String,
    pub proof: EventProof,
}

impl SyncEventSettings {
    /// The operator's subscription in the policy of `namespace/vault`.
    pub fn subscription(&self, namespace: &str, vault: &str) -> EventSubscription {
        EventSubscription {
            name: SUBSCRIPTION_NAME.into(),
            endpoint: format!(
                "{}/sync/events/{namespace}/{vault}",
                self.endpoint_base.trim_end_matches('/')
            ),
            included_event_types: TRIGGERS.to_vec(),
            subject_begins_with: None,
            auth_header: Some(AuthHeader {
                name: PROOF_HEADER.into(),
                value: Some(self.proof.header_value(namespace, vault)),
            }),
            near_expiry_days: None,
            ca_bundle: Some(self.ca_bundle.clone()),
            // Lost events are covered by the periodic resync: don't keep them for a day.
            ttl_minutes: Some(10),
        }
    }
}

/// A change in a vault that may change what syncs of it write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultChange {
    pub namespace: String,
    pub vault: String,
    /// The object's name; `None` for a change of the vault's policy (grants may have
    /// changed: every sync of the vault is redone).
    pub object: Option<String>,
    /// The event's id (for logs; the vault repeats it on retries).
    pub event_id: String,
    /// When the receiver got it (for the latency figures).
    pub received: std::time::Instant,
}

/// The trigger an accepted event becomes (`None`: an event type that changes no data).
pub fn change_of(namespace: &str, vault: &str, event: &CloudEvent) -> Option<VaultChange> {
    let kind = TRIGGERS.into_iter().find(|t| t.as_str() == event.type_)?;
    let object =
        (kind != EventType::VaultAccessPolicyChanged).then(|| event.data.object_name.clone());
    Some(VaultChange {
        namespace: namespace.into(),
        vault: vault.into(),
        object,
        event_id: event.id.clone(),
        received: std::time::Instant::now(),
    })
}

#[derive(Clone)]
struct Receiver {
    proof: EventProof,
    tx: tokio::sync::mpsc::Sender<VaultChange>,
    /// Only the leader syncs: another replica answers 503 and the vault retries (the
    /// Service may send the retry to the leader).
    leading: Arc<AtomicBool>,
}

/// `POST /sync/events/{namespace}/{vault}`, to be merged into the operator's HTTPS router.
pub fn router(
    proof: EventProof,
    tx: tokio::sync::mpsc::Sender<VaultChange>,
    leading: Arc<AtomicBool>,
) -> Router {
    Router::new()
        .route(EVENTS_ROUTE, post(receive))
        .with_state(Receiver { proof, tx, leading })
}

async fn receive(
    State(r): State<Receiver>,
    Path((namespace, vault)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = headers.get(PROOF_HEADER).and_then(|h| h.to_str().ok());
    if !r.proof.verify(&namespace, &vault, header) {
        tracing::warn!(%namespace, %vault, "sync event refused: no valid proof");
        return StatusCode::UNAUTHORIZED;
    }
    let event: CloudEvent = match serde_json::from_slice(&body) {
        Ok(e) => e,
        // 400 makes the vault dead-letter it rather than retry a malformed event.
        Err(_) => return StatusCode::BAD_REQUEST,
    };
    let Some(change) = change_of(&namespace, &vault, &event) else {
        return StatusCode::NO_CONTENT;
    };
    if !r.leading.load(Ordering::Relaxed) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    tracing::debug!(%namespace, %vault, object = ?change.object, id = %change.event_id, "vault event");
    match r.tx.try_send(change) {
        Ok(()) => StatusCode::NO_CONTENT,
        // The vault retries with backoff; the periodic resync covers the rest.
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::events::EventData;
    use tower::ServiceExt;

    fn proof(seed: &[u8]) -> EventProof {
        EventProof::new(hmac::Key::new(hmac::HMAC_SHA256, seed))
    }

    fn event(kind: &str, object: &str) -> CloudEvent {
        CloudEvent {
            specversion: "1.0".into(),
            id: "e1".into(),
            source: "https://payments.team-a.svc".into(),
            type_: format!("Microsoft.KeyVault.{kind}"),
            subject: object.into(),
            time: "2026-12-04T10:00:00Z".into(),
            datacontenttype: "application/json".into(),
            data: EventData {
                id: format!("https://payments.team-a.svc/secrets/{object}/v1"),
                vault_name: "payments".into(),
                object_type: "Secret".into(),
                object_name: object.into(),
                version: Some("v1".into()),
                nbf: None,
                exp: None,
            },
            kvaultcontacts: None,
        }
    }

    #[test]
    fn a_proof_is_bound_to_its_vault_and_key() {
        let p = proof(b"k1");
        let h = p.header_value("team-a", "payments");
        assert!(p.verify("team-a", "payments", Some(h.expose())));
        assert!(!p.verify("team-b", "payments", Some(h.expose())));
        assert!(!p.verify("team-a", "orders", Some(h.expose())));
        assert!(!proof(b"k2").verify("team-a", "payments", Some(h.expose())));
        assert!(!p.verify("team-a", "payments", None));
        assert!(!p.verify("team-a", "payments", Some("Bearer zz")));
        let bare = h.expose().trim_start_matches("Bearer ").to_string();
        assert!(!p.verify("team-a", "payments", Some(&bare)));
        assert_ne!(p.fingerprint(), proof(b"k2").fingerprint());
        assert!(!format!("{p:?}").contains(bare.as_str()));
    }

    #[test]
    fn the_subscription_is_valid_and_carries_the_proof() {
        let s = SyncEventSettings {
            endpoint_base: "https://kvault-operator-webhook.kvault-system.svc/".into(),
            ca_bundle: "-----BEGIN CERTIFICATE-----\n".into(),
            proof: proof(b"k"),
        };
        let sub = s.subscription("team-a", "payments");
        assert_eq!(
            sub.endpoint,
            "https://kvault-operator-webhook.kvault-system.svc/sync/events/team-a/payments"
        );
        let value = sub.auth_header.as_ref().unwrap().value.as_ref().unwrap();
        assert!(s.proof.verify("team-a", "payments", Some(value.expose())));
        assert!(
            !sub.included_event_types
                .contains(&EventType::SecretNearExpiry)
        );
    }

    #[test]
    fn only_new_versions_and_policy_changes_trigger() {
        let c = change_of("ns", "v", &event("SecretNewVersionCreated", "db")).unwrap();
        assert_eq!(c.object.as_deref(), Some("db"));
        let c = change_of("ns", "v", &event("VaultAccessPolicyChanged", "v")).unwrap();
        assert_eq!(c.object, None);
        assert!(change_of("ns", "v", &event("SecretNearExpiry", "db")).is_none());
        assert!(change_of("ns", "v", &event("Other", "db")).is_none());
    }

    async fn post_event(app: Router, path: &str, auth: Option<&str>, body: Vec<u8>) -> StatusCode {
        let mut req = axum::http::Request::post(path);
        if let Some(a) = auth {
            req = req.header(PROOF_HEADER, a);
        }
        app.oneshot(req.body(axum::body::Body::from(body)).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn the_receiver_checks_the_proof_and_queues_the_change() {
        let p = proof(b"k");
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let leading = Arc::new(AtomicBool::new(false));
        let app = router(p.clone(), tx, leading.clone());
        let good = p.header_value("team-a", "payments");
        let body = serde_json::to_vec(&event("SecretNewVersionCreated", "db")).unwrap();
        let path = "/sync/events/team-a/payments";
        assert_eq!(
            post_event(app.clone(), path, None, body.clone()).await,
            StatusCode::UNAUTHORIZED
        );
        // A proof for another vault does not open this one.
        let other = p.header_value("team-a", "orders");
        assert_eq!(
            post_event(app.clone(), path, Some(other.expose()), body.clone()).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            post_event(app.clone(), path, Some(good.expose()), b"{".to_vec()).await,
            StatusCode::BAD_REQUEST
        );
        // Not the leader (yet): the vault is told to retry.
        assert_eq!(
            post_event(app.clone(), path, Some(good.expose()), body.clone()).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        leading.store(true, Ordering::Relaxed);
        assert_eq!(
            post_event(app.clone(), path, Some(good.expose()), body.clone()).await,
            StatusCode::NO_CONTENT
        );
        let got = rx.try_recv().unwrap();
        assert_eq!(
            (got.namespace.as_str(), got.vault.as_str()),
            ("team-a", "payments")
        );
        assert_eq!(got.object.as_deref(), Some("db"));
        // Queue full (capacity 1): 503, the vault retries.
        assert_eq!(
            post_event(app.clone(), path, Some(good.expose()), body.clone()).await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            post_event(app, path, Some(good.expose()), body).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
