//! The near-expiry and expiry scanner, on the injectable clock.
//!
//! For the current version of every live object with an expiry and every subscription
//! that wants the event: `…Expired` once `exp` has passed, else `…NearExpiry` from the
//! subscription's `nearExpiryDays` before `exp` — or earlier, from the moment the object's
//! own lifetime action says so (a key's rotation-policy `Notify`, a certificate's
//! `EmailContacts`). Each fires once per (object version, occurrence, subscription): a
//! sealed marker record is written in the same batch as the outbox records, on the
//! condition that it does not exist yet, so restarts and concurrent passes never fire twice.
//! A version first seen already expired gets `…Expired` only. Markers of versions that are no
//! longer current, of purged objects and of removed subscriptions are cleaned up.
//!
//! The same decision, with the vault-wide threshold, answers `GET /_kvault/events/expiry`
//! (which the operator turns into Kubernetes Events on the `Vault`).

use super::{
    DEAD_LETTERS, DeadLetter, FIRED, ObjectVersion, new_event_id, object_event, object_of,
};
use crate::clock::UnixTime;
use crate::policy::{EventSettings, EventType, Occurrence};
use crate::server::state::AppState;
use crate::server::store::{Batch, Head, Kind, StoreError, Version};
use crate::wire::{ExpiringObject, ExpiryReport};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// How many objects the expiry report lists at most (the soonest first).
pub const MAX_REPORTED: usize = 100;

/// Whether a version that expires at `exp` is expired or near expiry at `now`:
/// expired from `exp` on; near expiry from `near_secs` before, or whenever the object's own
/// lifetime action is due.
pub fn expiry_occurrence(
    now: UnixTime,
    exp: UnixTime,
    near_secs: i64,
    action_due: bool,
) -> Option<Occurrence> {
    if now >= exp {
        Some(Occurrence::Expired)
    } else if action_due || now >= exp.saturating_sub(near_secs) {
        Some(Occurrence::NearExpiry)
    } else {
        None
    }
}

/// Whether the object's own near-expiry lifetime action is due: a key's rotation-policy
/// `Notify`, a certificate's `EmailContacts`.
pub fn lifetime_action_due<M>(kind: Kind, head: &Head<M>, v: &Version<M>, now: UnixTime) -> bool {
    match kind {
        Kind::Secret => false,
        Kind::Key => head.rotation.as_ref().is_some_and(|r| {
            crate::server::keys::rotation::schedule(&r.policy).is_ok_and(|s| {
                crate::server::keys::rotation::due(
                    &s,
                    crate::server::keys::rotation::ActionType::Notify,
                    v,
                    now,
                )
            })
        }),
        Kind::Certificate => head.certificate.as_ref().is_some_and(|c| {
            crate::server::certificates::renewal::due(&c.policy, "EmailContacts", v, now)
        }),
    }
}

/// What the scanner remembers having fired.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Marker {
    kind: String,
    /// Lower-cased.
    name: String,
    version: String,
    occurrence: String,
    subscription: String,
}

fn occurrence_name(o: Occurrence) -> &'static str {
    match o {
        Occurrence::NewVersionCreated => "NewVersionCreated",
        Occurrence::NearExpiry => "NearExpiry",
        Occurrence::Expired => "Expired",
    }
}

/// A subscription due an event: its name, the marker's record name and the marker.
type Target = (String, String, Marker);

const KINDS: [Kind; 3] = [Kind::Secret, Kind::Key, Kind::Certificate];

/// What one scan did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanSummary {
    /// Events staged (one per subscription).
    pub fired: usize,
    pub markers_removed: usize,
    pub dead_letters_pruned: usize,
}

async fn contact_emails(state: &AppState) -> Result<Option<String>, StoreError> {
    let Some((plain, _)) = state.store.meta("contacts").await? else {
        return Ok(None);
    };
    let contacts: crate::wire::Contacts = serde_json::from_slice(&plain)
        .map_err(|_| StoreError::Integrity("the certificate contacts are malformed".into()))?;
    let emails: Vec<String> = contacts
        .contacts
        .into_iter()
        .filter_map(|c| c.email)
        .filter(|e| !e.is_empty())
        .collect();
    Ok((!emails.is_empty()).then(|| emails.join(",")))
}

/// Removes dead letters past their retention; returns (removed, kept).
async fn prune_dead_letters(state: &AppState, now: UnixTime) -> Result<(usize, usize), StoreError> {
    let retention =
        i64::try_from(state.events.config.dead_letter_retention.as_secs()).unwrap_or(i64::MAX);
    let mut batch = Batch::default();
    let mut kept = 0;
    let mut removed = 0;
    for (name, plain) in state.store.meta_scan(DEAD_LETTERS).await? {
        let old = serde_json::from_slice::<DeadLetter>(&plain)
            .map(|d| d.dead_lettered.saturating_add(retention) <= now)
            .unwrap_or(true);
        if old {
            state.store.stage_delete_meta(&mut batch, &name);
            removed += 1;
        } else {
            kept += 1;
        }
    }
    if removed > 0 {
        state.store.commit(batch).await?;
    }
    Ok((removed, kept))
}

/// One scan: fires due near-expiry and expiry events, cleans up markers, prunes dead letters.
pub async fn scan_once(state: &AppState) -> Result<ScanSummary, StoreError> {
    let now = state.clock.now();
    let mut summary = ScanSummary::default();
    let (pruned, kept) = prune_dead_letters(state, now).await?;
    summary.dead_letters_pruned = pruned;
    state
        .metrics
        .events
        .dead_letters
        .set(i64::try_from(kept).unwrap_or(i64::MAX));

    let rt = state.policy.current();
    let settings: EventSettings = rt.policy.doc.events.clone().unwrap_or_default();
    let mut fired: HashMap<String, Marker> = HashMap::new();
    for (name, plain) in state.store.meta_scan(FIRED).await? {
        let m: Marker = serde_json::from_slice(&plain)
            .map_err(|_| StoreError::Integrity("an event marker is malformed".into()))?;
        fired.insert(name, m);
    }
    if settings.subscriptions.is_empty() && fired.is_empty() {
        return Ok(summary);
    }
    // (kind, lower-cased name, version) of every current version, live or deleted.
    let mut current: HashSet<(String, String, String)> = HashSet::new();
    let mut contacts: Option<Option<String>> = None;
    for kind in KINDS {
        for head in state.store.heads::<serde_json::Value>(kind).await? {
            let Some(v) = head.current() else { continue };
            current.insert((
                kind.as_str().to_string(),
                head.name.to_ascii_lowercase(),
                v.id.clone(),
            ));
            let (None, Some(exp)) = (head.deleted, v.exp) else {
                continue;
            };
            if settings.subscriptions.is_empty() {
                continue;
            }
            let action = lifetime_action_due(kind, &head, v, now);
            let mut due: Vec<(Occurrence, Vec<Target>)> = Vec::new();
            for sub in &settings.subscriptions {
                let Some(occ) =
                    expiry_occurrence(now, exp, sub.near_expiry_secs(&settings), action)
                else {
                    continue;
                };
                if !sub.wants(EventType::for_object(object_of(kind), occ), &head.name) {
                    continue;
                }
                let marker = Marker {
                    kind: kind.as_str().to_string(),
                    name: head.name.to_ascii_lowercase(),
                    version: v.id.clone(),
                    occurrence: occurrence_name(occ).to_string(),
                    subscription: sub.name.clone(),
                };
                let tag = state.store.opaque_tag(&format!(
                    "{}/{}/{}/{}/{}",
                    marker.kind,
                    marker.name,
                    marker.version,
                    marker.occurrence,
                    marker.subscription
                ));
                let marker_name = format!("{FIRED}{tag}");
                if fired.contains_key(&marker_name) {
                    continue;
                }
                match due.iter_mut().find(|(o, _)| *o == occ) {
                    Some((_, list)) => list.push((sub.name.clone(), marker_name, marker)),
                    None => due.push((occ, vec![(sub.name.clone(), marker_name, marker)])),
                }
            }
            for (occ, targets) in due {
                let mut event = object_event(
                    state.events.origin(),
                    state.events.vault_name(),
                    occ,
                    ObjectVersion::of(kind, &head.name, v),
                    now,
                    new_event_id()?,
                );
                if kind == Kind::Certificate && occ == Occurrence::NearExpiry && action {
                    if contacts.is_none() {
                        contacts = Some(contact_emails(state).await?);
                    }
                    event.kvaultcontacts = contacts.clone().flatten();
                }
                let mut batch = Batch::default();
                for (sub, marker_name, marker) in &targets {
                    let bytes = serde_json::to_vec(marker)
                        .map_err(|e| StoreError::backend("encoding a marker", e))?;
                    state.store.expect_meta(&mut batch, marker_name, None);
                    state.store.stage_meta(&mut batch, marker_name, &bytes)?;
                    state
                        .events
                        .stage_for(&state.store, &mut batch, sub, &event)?;
                }
                match state.store.commit(batch).await {
                    Ok(()) => {
                        summary.fired += targets.len();
                        state.events.wake();
                        tracing::info!(
                            event_type = %event.type_,
                            subscriptions = targets.len(),
                            "expiry event raised"
                        );
                    }
                    // Fired by another pass meanwhile.
                    Err(StoreError::Conflict) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    // Markers whose version is no longer current, whose object is gone, or whose
    // subscription left the policy.
    let stale: Vec<&String> = fired
        .iter()
        .filter(|(_, m)| {
            !current.contains(&(m.kind.clone(), m.name.clone(), m.version.clone()))
                || settings.subscription(&m.subscription).is_none()
        })
        .map(|(k, _)| k)
        .collect();
    for chunk in stale.chunks(256) {
        let mut batch = Batch::default();
        for name in chunk {
            state.store.stage_delete_meta(&mut batch, name);
        }
        state.store.commit(batch).await?;
        summary.markers_removed += chunk.len();
    }
    Ok(summary)
}

pub async fn expiry_report(state: &AppState) -> Result<ExpiryReport, StoreError> {
    let now = state.clock.now();
    let rt = state.policy.current();
    let settings = rt.policy.doc.events.clone().unwrap_or_default();
    let near = i64::from(settings.near_expiry_days()) * 86_400;
    let mut value = Vec::new();
    for kind in KINDS {
        for head in state.store.heads::<serde_json::Value>(kind).await? {
            let Some(v) = head.current() else { continue };
            let (None, Some(exp)) = (head.deleted, v.exp) else {
                continue;
            };
            let action = lifetime_action_due(kind, &head, v, now);
            if let Some(occ) = expiry_occurrence(now, exp, near, action) {
                let object = object_of(kind);
                value.push(ExpiringObject {
                    event_type: EventType::for_object(object, occ).as_str().to_string(),
                    object_type: object.as_str().to_string(),
                    object_name: head.name.clone(),
                    version: v.id.clone(),
                    exp,
                });
            }
        }
    }
    value.sort_by(|a, b| (a.exp, &a.object_name).cmp(&(b.exp, &b.object_name)));
    let count = value.len();
    value.truncate(MAX_REPORTED);
    Ok(ExpiryReport {
        near_expiry_days: settings.near_expiry_days(),
        count,
        value,
    })
}

/// Runs the scanner every `every` until aborted, only while this replica holds the job
/// lease.
pub fn spawn(state: std::sync::Arc<AppState>) -> tokio::task::JoinHandle<()> {
    let every = state.events.config.scan_interval;
    crate::server::jobs::periodic(state, every, "event expiry scan", |s| async move {
        scan_once(&s).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::{CertificateState, RotationState};
    use crate::wire::{
        Action, CertLifetimeAction, CertificatePolicy, KeyRotationPolicy,
        KeyRotationPolicyAttributes, LifetimeAction, LifetimeActionTrigger, LifetimeActionType,
        Trigger,
    };

    const DAY: i64 = 86_400;

    #[test]
    fn near_expiry_starts_at_the_threshold_and_expiry_at_exp() {
        let exp = 100 * DAY;
        let near = 30 * DAY;
        assert_eq!(expiry_occurrence(exp - 31 * DAY, exp, near, false), None);
        assert_eq!(
            expiry_occurrence(exp - 30 * DAY, exp, near, false),
            Some(Occurrence::NearExpiry)
        );
        assert_eq!(
            expiry_occurrence(exp - 1, exp, near, false),
            Some(Occurrence::NearExpiry)
        );
        assert_eq!(
            expiry_occurrence(exp, exp, near, false),
            Some(Occurrence::Expired)
        );
        assert_eq!(
            expiry_occurrence(exp + 400 * DAY, exp, near, true),
            Some(Occurrence::Expired)
        );
        // The object's own lifetime action makes it near expiry earlier.
        assert_eq!(
            expiry_occurrence(exp - 60 * DAY, exp, near, true),
            Some(Occurrence::NearExpiry)
        );
        assert_eq!(
            expiry_occurrence(i64::MIN, i64::MIN + 1, i64::MAX, false),
            Some(Occurrence::NearExpiry)
        );
    }

    fn version(created: i64, nbf: Option<i64>, exp: Option<i64>) -> Version<()> {
        let mut v = Version::new("v1".into(), created, ());
        v.nbf = nbf;
        v.exp = exp;
        v
    }

    #[test]
    fn a_keys_notify_action_and_a_certificates_email_contacts_count_as_near_expiry() {
        let v = version(0, Some(0), Some(100 * DAY));
        let mut key: Head<()> = Head::new("k");
        key.versions.push(v.clone());
        assert!(!lifetime_action_due(Kind::Key, &key, &v, 95 * DAY));
        key.rotation = Some(RotationState {
            policy: KeyRotationPolicy {
                id: None,
                lifetime_actions: Some(vec![LifetimeAction {
                    trigger: LifetimeActionTrigger {
                        time_after_create: None,
                        time_before_expiry: Some("P10D".into()),
                    },
                    action: LifetimeActionType {
                        action_type: "Notify".into(),
                    },
                }]),
                attributes: Some(KeyRotationPolicyAttributes {
                    expiry_time: Some("P100D".into()),
                    created: None,
                    updated: None,
                }),
            },
            notified_version: None,
        });
        assert!(!lifetime_action_due(Kind::Key, &key, &v, 89 * DAY));
        assert!(lifetime_action_due(Kind::Key, &key, &v, 90 * DAY));

        let mut cert: Head<()> = Head::new("c");
        cert.versions.push(v.clone());
        cert.certificate = Some(CertificateState {
            policy: CertificatePolicy {
                lifetime_actions: Some(vec![CertLifetimeAction {
                    trigger: Trigger {
                        lifetime_percentage: Some(50),
                        days_before_expiry: None,
                    },
                    action: Action {
                        action_type: "EmailContacts".into(),
                    },
                }]),
                ..Default::default()
            },
            pending: None,
            notified_version: None,
        });
        assert!(!lifetime_action_due(Kind::Certificate, &cert, &v, 49 * DAY));
        assert!(lifetime_action_due(Kind::Certificate, &cert, &v, 50 * DAY));
        // Secrets have no lifetime actions.
        assert!(!lifetime_action_due(Kind::Secret, &cert, &v, 99 * DAY));
    }
}
