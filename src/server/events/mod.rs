//! Event notifications: CloudEvents 1.0 (structured JSON) with the cloud key vault's event
//! types and data fields, delivered over HTTPS to the policy document's subscriptions.
//!
//! Nothing is lost between a change and its delivery: an event is staged in the **outbox**
//! (a sealed vault-level record per event and subscription) in the same atomic batch as the
//! change that caused it ([`modify_with_events`], the certificate writes, the policy push),
//! so a change is never committed without its events nor an event without its change. The
//! [`delivery`] loop posts outbox records at least once, with exponential backoff and jitter
//! per subscription, until a 2xx or until the time to live ends, and then moves them to the
//! dead letters (`GET /_kvault/events/dead-letters`, `kvault_events_dead_lettered_total`).
//! The [`scanner`] raises near-expiry and expiry events once per object version and
//! subscription on the injectable clock, remembering what it fired in sealed marker records
//! written with the events. Both loops run only where the job lease is held.
//!
//! An event never carries a value: only the vault, the object's type, name, version, id and
//! `nbf`/`exp`.

pub mod delivery;
pub mod scanner;
pub mod staging;

use crate::clock::{SharedClock, UnixTime};
use crate::policy::{EventObject, EventSettings, EventType, Occurrence};
use crate::server::store::{Batch, Kind, StoreError, VaultStore, Version};
pub use crate::wire::events::{CloudEvent, DeadLetter, DeadLetterReason, EventData};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Outbox records: `ev/o/<created>-<id>`, one per event and subscription.
pub const OUTBOX: &str = "ev/o/";
/// Dead letters: `ev/d/<dead-lettered>-<id>`.
pub const DEAD_LETTERS: &str = "ev/d/";
/// What the scanner fired: `ev/f/<opaque tag of object, version, occurrence, subscription>`.
pub const FIRED: &str = "ev/f/";

/// The CloudEvents `datacontenttype` and the delivery's content type (structured mode).
pub const DATA_CONTENT_TYPE: &str = "application/json";
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";

/// Delivery timings (the server's configuration; the policy may shorten the TTL per
/// subscription).
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// The first retry waits about this long; each failure doubles it (with jitter).
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// How long an event waits for a 2xx before it is dead-lettered (a subscription's
    /// `ttlMinutes` overrides it).
    pub ttl: Duration,
    /// The delivery loop looks at the outbox at least this often (new events wake it at
    /// once).
    pub poll_interval: Duration,
    /// How often the near-expiry / expiry scanner runs.
    pub scan_interval: Duration,
    /// Time limit of one delivery request.
    pub request_timeout: Duration,
    /// Dead letters older than this are removed.
    pub dead_letter_retention: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(3600),
            ttl: Duration::from_secs(24 * 3600),
            poll_interval: Duration::from_secs(1),
            scan_interval: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            dead_letter_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The version an event is about.
#[derive(Debug, Clone, Copy)]
pub struct ObjectVersion<'a> {
    pub object: EventObject,
    pub name: &'a str,
    pub version: &'a str,
    pub nbf: Option<UnixTime>,
    pub exp: Option<UnixTime>,
}

impl<'a> ObjectVersion<'a> {
    pub fn of<M>(kind: Kind, name: &'a str, v: &'a Version<M>) -> Self {
        Self {
            object: object_of(kind),
            name,
            version: &v.id,
            nbf: v.nbf,
            exp: v.exp,
        }
    }
}

pub fn object_of(kind: Kind) -> EventObject {
    match kind {
        Kind::Secret => EventObject::Secret,
        Kind::Key => EventObject::Key,
        Kind::Certificate => EventObject::Certificate,
    }
}

fn collection(object: EventObject) -> &'static str {
    match object {
        EventObject::Secret => "secrets",
        EventObject::Key => "keys",
        EventObject::Certificate => "certificates",
    }
}

/// A random event id in the UUID shape.
pub fn new_event_id() -> Result<String, StoreError> {
    let h = crate::crypto::new_version_id()?;
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// An event about an object version.
pub fn object_event(
    origin: &str,
    vault_name: &str,
    what: Occurrence,
    o: ObjectVersion<'_>,
    now: UnixTime,
    id: String,
) -> CloudEvent {
    CloudEvent {
        specversion: "1.0".into(),
        id,
        source: origin.to_string(),
        type_: EventType::for_object(o.object, what).as_str().to_string(),
        subject: o.name.to_string(),
        time: crate::clock::rfc3339(now),
        datacontenttype: DATA_CONTENT_TYPE.into(),
        data: EventData {
            id: format!("{origin}/{}/{}/{}", collection(o.object), o.name, o.version),
            vault_name: vault_name.to_string(),
            object_type: o.object.as_str().to_string(),
            object_name: o.name.to_string(),
            version: Some(o.version.to_string()),
            nbf: o.nbf,
            exp: o.exp,
        },
        kvaultcontacts: None,
    }
}

/// `VaultAccessPolicyChanged`: about the vault itself.
pub fn policy_event(origin: &str, vault_name: &str, now: UnixTime, id: String) -> CloudEvent {
    CloudEvent {
        specversion: "1.0".into(),
        id,
        source: origin.to_string(),
        type_: EventType::VaultAccessPolicyChanged.as_str().to_string(),
        subject: vault_name.to_string(),
        time: crate::clock::rfc3339(now),
        datacontenttype: DATA_CONTENT_TYPE.into(),
        data: EventData {
            id: origin.to_string(),
            vault_name: vault_name.to_string(),
            object_type: "Vault".into(),
            object_name: vault_name.to_string(),
            version: None,
            nbf: None,
            exp: None,
        },
        kvaultcontacts: None,
    }
}

/// One outbox record: an event on its way to one subscription.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    pub subscription: String,
    pub event: CloudEvent,
    /// When it was staged (vault clock): the time to live counts from here.
    pub created: UnixTime,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub subscription: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLetterLabels {
    pub subscription: String,
    pub reason: &'static str,
}

/// The notification metrics (registered with the server's).
#[derive(Clone, Debug, Default)]
pub struct EventMetrics {
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub dead_lettered: Family<DeadLetterLabels, Counter>,
    pub pending: Gauge,
    pub dead_letters: Gauge,
}

impl EventMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "event_deliveries",
            "Event delivery attempts by subscription and outcome (delivered, failed)",
            m.deliveries.clone(),
        );
        registry.register(
            "events_dead_lettered",
            "Events given up, by subscription and reason",
            m.dead_lettered.clone(),
        );
        registry.register(
            "events_pending",
            "Events waiting in the outbox",
            m.pending.clone(),
        );
        registry.register(
            "events_dead_letters",
            "Dead-lettered events kept",
            m.dead_letters.clone(),
        );
        m
    }
}

/// The vault's event hub: where events come from and how they are staged.
pub struct Events {
    pub config: EventsConfig,
    /// The vault URL (`source`).
    origin: String,
    vault_name: String,
    clock: SharedClock,
    wake: tokio::sync::Notify,
}

impl Events {
    pub fn new(
        config: EventsConfig,
        origin: String,
        vault_name: String,
        clock: SharedClock,
    ) -> Self {
        Self {
            config,
            origin,
            vault_name,
            clock,
            wake: tokio::sync::Notify::new(),
        }
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn vault_name(&self) -> &str {
        &self.vault_name
    }

    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// Tells the delivery loop that the outbox has new records.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Stages `event` for one subscription.
    pub fn stage_for(
        &self,
        store: &VaultStore,
        batch: &mut Batch,
        subscription: &str,
        event: &CloudEvent,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let record = Pending {
            subscription: subscription.to_string(),
            event: event.clone(),
            created: now,
            attempts: 0,
            last_error: None,
        };
        let bytes =
            serde_json::to_vec(&record).map_err(|e| StoreError::backend("encoding an event", e))?;
        let name = format!(
            "{OUTBOX}{:012}-{}",
            now.max(0),
            crate::crypto::new_version_id()?
        );
        store.stage_meta(batch, &name, &bytes)
    }

    /// Stages `event` for every subscription that wants it; returns how many.
    pub fn stage(
        &self,
        store: &VaultStore,
        settings: Option<&EventSettings>,
        batch: &mut Batch,
        event: &CloudEvent,
    ) -> Result<usize, StoreError> {
        let Some(settings) = settings else {
            return Ok(0);
        };
        let Some(t) = EventType::parse(&event.type_) else {
            return Ok(0);
        };
        let mut n = 0;
        for s in settings.matching(t, &event.subject) {
            self.stage_for(store, batch, &s.name, event)?;
            n += 1;
        }
        Ok(n)
    }

    /// Stages a `…NewVersionCreated` event for each version given.
    pub fn stage_new_versions(
        &self,
        store: &VaultStore,
        settings: Option<&EventSettings>,
        batch: &mut Batch,
        versions: &[ObjectVersion<'_>],
    ) -> Result<usize, StoreError> {
        if settings.is_none_or(|s| s.subscriptions.is_empty()) {
            return Ok(0);
        }
        let mut n = 0;
        for v in versions {
            let event = object_event(
                &self.origin,
                &self.vault_name,
                Occurrence::NewVersionCreated,
                *v,
                self.now(),
                new_event_id()?,
            );
            n += self.stage(store, settings, batch, &event)?;
        }
        Ok(n)
    }

    /// Stages `VaultAccessPolicyChanged` for the subscriptions of the new document.
    pub fn stage_policy_changed(
        &self,
        store: &VaultStore,
        settings: Option<&EventSettings>,
        batch: &mut Batch,
    ) -> Result<usize, StoreError> {
        if settings.is_none_or(|s| s.subscriptions.is_empty()) {
            return Ok(0);
        }
        let event = policy_event(&self.origin, &self.vault_name, self.now(), new_event_id()?);
        self.stage(store, settings, batch, &event)
    }
}

/// Whether a batch writes outbox records (to wake the delivery loop after its commit).
pub fn stages_events(batch: &Batch) -> bool {
    let prefix = format!("m/{OUTBOX}");
    batch.ops.iter().any(|op| match op {
        crate::server::store::Op::Put(k, _) => k.starts_with(prefix.as_bytes()),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> ObjectVersion<'static> {
        ObjectVersion {
            object: EventObject::Secret,
            name: "db-password",
            version: "0123456789abcdef0123456789abcdef",
            nbf: Some(1_700_000_000),
            exp: Some(1_800_000_000),
        }
    }

    #[test]
    fn object_events_have_the_cloudevents_attributes_and_the_clouds_data_fields() {
        let e = object_event(
            "https://payments.team-a.svc",
            "payments",
            Occurrence::NearExpiry,
            v(),
            1_750_000_000,
            "id-1".into(),
        );
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(j["specversion"], "1.0");
        assert_eq!(j["id"], "id-1");
        assert_eq!(j["source"], "https://payments.team-a.svc");
        assert_eq!(j["type"], "Microsoft.KeyVault.SecretNearExpiry");
        assert_eq!(j["subject"], "db-password");
        assert_eq!(j["time"], "2025-06-15T15:06:40Z");
        assert_eq!(j["datacontenttype"], "application/json");
        let d = &j["data"];
        assert_eq!(
            d["Id"],
            "https://payments.team-a.svc/secrets/db-password/0123456789abcdef0123456789abcdef"
        );
        assert_eq!(d["VaultName"], "payments");
        assert_eq!(d["ObjectType"], "Secret");
        assert_eq!(d["ObjectName"], "db-password");
        assert_eq!(d["Version"], "0123456789abcdef0123456789abcdef");
        assert_eq!(d["NBF"], 1_700_000_000);
        assert_eq!(d["EXP"], 1_800_000_000);
        assert_eq!(d.as_object().unwrap().len(), 7);
        assert!(j.get("kvaultcontacts").is_none());
        let back: CloudEvent = serde_json::from_value(j).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn the_policy_event_is_about_the_vault() {
        let e = policy_event("https://p.ns.svc", "p", 0, "x".into());
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(j["type"], "Microsoft.KeyVault.VaultAccessPolicyChanged");
        assert_eq!(j["subject"], "p");
        assert_eq!(j["data"]["ObjectType"], "Vault");
        assert_eq!(j["data"]["Id"], "https://p.ns.svc");
        assert!(j["data"].get("Version").is_none());
        assert_eq!(j["time"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn event_ids_look_like_uuids_and_differ() {
        let a = new_event_id().unwrap();
        let b = new_event_id().unwrap();
        assert_ne!(a, b);
        let parts: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
    }
}
