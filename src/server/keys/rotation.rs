//! Key rotation: `POST /keys/{name}/rotate`, rotation policies (validated as the cloud
//! does), and the scheduler that executes `Rotate` actions when due and records `Notify`.
//!
//! Nothing here keeps its own clock state: whether an action is due follows from the
//! current version's creation and expiry times, so a restart never rotates twice.

use super::{FAMILY, KIND, KeyMeta, add_version, generate};
use crate::clock::UnixTime;
use crate::server::error::{ApiError, ApiResult};
use crate::server::state::AppState;
use crate::server::store::{Head, StoreError, Version};
use crate::wire::{
    KeyRotationPolicy, KeyRotationPolicyAttributes, LifetimeAction, LifetimeActionType,
};
use std::sync::Arc;
use std::time::Duration;

const DAY: i64 = 86_400;

/// An ISO 8601 duration (`P90D`, `P2Y`, `P1M`, `PT12H`, `P1W`) in seconds, with the
/// cloud's calendar: a month is 30 days, a year 365. jiff reads the grammar; the cloud's
/// form has no sign, no fraction and upper-case designators only, which is checked first.
pub fn parse_duration(s: &str) -> Option<i64> {
    if !s.starts_with('P') || s.contains(['.', ',']) || s.bytes().any(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let span: k8s_openapi::jiff::Span = s.parse().ok()?;
    let parts = [
        (i64::from(span.get_years()), 365 * DAY),
        (i64::from(span.get_months()), 30 * DAY),
        (i64::from(span.get_weeks()), 7 * DAY),
        (i64::from(span.get_days()), DAY),
        (i64::from(span.get_hours()), 3600),
        (span.get_minutes(), 60),
        (span.get_seconds(), 1),
    ];
    let total = parts
        .iter()
        .try_fold(0i64, |t, (n, unit)| t.checked_add(n.checked_mul(*unit)?))?;
    (total > 0).then_some(total)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionType {
    Rotate,
    Notify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    AfterCreate(i64),
    BeforeExpiry(i64),
}

/// The parsed, validated form of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub actions: Vec<(ActionType, Trigger)>,
    pub expiry: Option<i64>,
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad(m)
}

/// Checks a policy the way the cloud does and returns the form to store (with `created`
/// kept from the previous policy and `updated` = now; an absent `expiryTime` keeps the
/// previous one).
pub fn validate_policy(
    given: &KeyRotationPolicy,
    previous: Option<&KeyRotationPolicy>,
    now: UnixTime,
) -> ApiResult<KeyRotationPolicy> {
    let expiry_text = given
        .attributes
        .as_ref()
        .and_then(|a| a.expiry_time.clone())
        .or_else(|| {
            previous
                .and_then(|p| p.attributes.as_ref())
                .and_then(|a| a.expiry_time.clone())
        });
    let mut actions = Vec::new();
    for a in given.lifetime_actions.iter().flatten() {
        let kind = if a.action.action_type.eq_ignore_ascii_case("rotate") {
            "Rotate"
        } else if a.action.action_type.eq_ignore_ascii_case("notify") {
            "Notify"
        } else {
            return Err(bad(format!(
                "Unknown lifetime action '{}': use Rotate or Notify.",
                crate::server::objects::printable(&a.action.action_type)
            )));
        };
        actions.push(LifetimeAction {
            trigger: a.trigger.clone(),
            action: LifetimeActionType {
                action_type: kind.into(),
            },
        });
    }
    let stored = KeyRotationPolicy {
        id: None,
        lifetime_actions: Some(actions),
        attributes: Some(KeyRotationPolicyAttributes {
            expiry_time: expiry_text,
            created: previous
                .and_then(|p| p.attributes.as_ref())
                .and_then(|a| a.created)
                .or(Some(now)),
            updated: Some(now),
        }),
    };
    schedule(&stored)?;
    Ok(stored)
}

/// Parses a stored or given policy into its schedule, enforcing the cloud's rules.
pub fn schedule(policy: &KeyRotationPolicy) -> ApiResult<Schedule> {
    let expiry = match policy
        .attributes
        .as_ref()
        .and_then(|a| a.expiry_time.as_deref())
    {
        None => None,
        Some(t) => {
            let secs = parse_duration(t).ok_or_else(|| {
                bad(format!(
                    "expiryTime '{}' is not an ISO 8601 duration.",
                    crate::server::objects::printable(t)
                ))
            })?;
            if secs < 28 * DAY {
                return Err(bad("expiryTime must be at least 28 days (P28D)."));
            }
            Some(secs)
        }
    };
    let mut actions = Vec::new();
    for a in policy.lifetime_actions.iter().flatten() {
        let action = if a.action.action_type == "Rotate" {
            ActionType::Rotate
        } else {
            ActionType::Notify
        };
        let trigger = match (&a.trigger.time_after_create, &a.trigger.time_before_expiry) {
            (Some(t), None) => Trigger::AfterCreate(parse_duration(t).ok_or_else(|| {
                bad(format!(
                    "timeAfterCreate '{}' is not an ISO 8601 duration.",
                    crate::server::objects::printable(t)
                ))
            })?),
            (None, Some(t)) => Trigger::BeforeExpiry(parse_duration(t).ok_or_else(|| {
                bad(format!(
                    "timeBeforeExpiry '{}' is not an ISO 8601 duration.",
                    crate::server::objects::printable(t)
                ))
            })?),
            _ => {
                return Err(bad(
                    "A lifetime action's trigger needs exactly one of timeAfterCreate and timeBeforeExpiry.",
                ));
            }
        };
        match (action, trigger) {
            (ActionType::Notify, Trigger::AfterCreate(_)) => {
                return Err(bad(
                    "A Notify action is triggered by timeBeforeExpiry only.",
                ));
            }
            (_, Trigger::AfterCreate(d)) if d < 7 * DAY => {
                return Err(bad("timeAfterCreate must be at least 7 days (P7D)."));
            }
            (_, Trigger::BeforeExpiry(d)) if d < 7 * DAY => {
                return Err(bad("timeBeforeExpiry must be at least 7 days (P7D)."));
            }
            (_, Trigger::BeforeExpiry(d)) => match expiry {
                None => {
                    return Err(bad(
                        "timeBeforeExpiry needs the policy's expiryTime to be set.",
                    ));
                }
                Some(e) if d >= e => {
                    return Err(bad("timeBeforeExpiry must be shorter than expiryTime."));
                }
                _ => {}
            },
            (_, Trigger::AfterCreate(d)) => {
                if let Some(e) = expiry
                    && d > e - 7 * DAY
                {
                    return Err(bad(
                        "timeAfterCreate must be at least 7 days shorter than expiryTime.",
                    ));
                }
            }
        }
        if actions.iter().any(|(a, _)| *a == action) {
            return Err(bad(
                "A policy has at most one Rotate and one Notify action.",
            ));
        }
        actions.push((action, trigger));
    }
    Ok(Schedule { actions, expiry })
}

/// Whether `action` is due for the current version.
pub fn due<M>(schedule: &Schedule, action: ActionType, v: &Version<M>, now: UnixTime) -> bool {
    schedule.actions.iter().any(|(a, t)| {
        *a == action
            && match t {
                Trigger::AfterCreate(d) => now >= v.created + d,
                Trigger::BeforeExpiry(d) => v.exp.is_some_and(|exp| now >= exp - d),
            }
    })
}

/// Makes a new version with the current one's type, size, curve, operations and tags;
/// its expiry follows the policy's `expiryTime`.
pub async fn rotate(state: &AppState, name: &str) -> ApiResult<Head<KeyMeta>> {
    let head = FAMILY.live::<KeyMeta>(&state.store, name).await?;
    let current = head.current().ok_or(ApiError::Integrity)?.clone();
    if current.meta.managed {
        return Err(ApiError::Forbidden {
            message: format!("Key {name} belongs to a certificate; renew the certificate instead."),
            inner: None,
        });
    }
    let kty = current.meta.kty;
    let crv = current.meta.crv;
    let size = (kty != crate::crypto::keys::KeyType::Ec).then_some(current.meta.key_size);
    let material = generate(kty, size, None, crv).await?;
    let now = state.clock.now();
    let expiry = head
        .rotation
        .as_ref()
        .and_then(|r| schedule(&r.policy).ok())
        .and_then(|s| s.expiry);
    let mut meta = super::meta_for(
        &material,
        current.meta.key_ops.clone(),
        current.meta.exportable,
        current.meta.release_policy.clone(),
    );
    meta.managed = false;
    let mut v = Version::new(String::new(), now, meta);
    v.tags = current.tags.clone();
    v.exp = expiry.map(|e| now + e);
    add_version(state, name, &material, v).await
}

/// One pass of the scheduler: rotates keys whose `Rotate` action is due and records due
/// `Notify` actions once per version. Returns (rotated, notified).
pub async fn run_once(state: &AppState) -> Result<(usize, usize), StoreError> {
    let now = state.clock.now();
    let heads = state.store.heads::<KeyMeta>(KIND).await?;
    let (mut rotated, mut notified) = (0, 0);
    for head in heads {
        if head.deleted.is_some() {
            continue;
        }
        let Some(rot) = &head.rotation else { continue };
        let Ok(sched) = schedule(&rot.policy) else {
            continue;
        };
        let Some(current) = head.current() else {
            continue;
        };
        if due(&sched, ActionType::Rotate, current, now) {
            match rotate(state, &head.name).await {
                Ok(_) => {
                    rotated += 1;
                    tracing::info!("rotated a key under its rotation policy");
                }
                Err(e) => tracing::warn!(error = %e, "scheduled key rotation failed"),
            }
            continue;
        }
        if due(&sched, ActionType::Notify, current, now)
            && rot.notified_version.as_deref() != Some(current.id.as_str())
        {
            let version = current.id.clone();
            let recorded = state
                .store
                .record_for_current::<KeyMeta>(KIND, &head.name, &version, |h| {
                    if let Some(r) = h.rotation.as_mut() {
                        r.notified_version = Some(version.clone());
                    }
                })
                .await?;
            if recorded {
                notified += 1;
                tracing::info!("a key is near expiry (rotation policy Notify action)");
            }
        }
    }
    Ok((rotated, notified))
}

pub fn spawn(state: Arc<AppState>, every: Duration) -> tokio::task::JoinHandle<()> {
    crate::server::jobs::periodic(state, every, "key rotation pass", |s| async move {
        run_once(&s).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::LifetimeActionTrigger;

    #[test]
    fn the_example_rotation_policy_is_valid() {
        let text = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/keys/rotation-policy.json"
        ))
        .unwrap();
        let p: KeyRotationPolicy = serde_json::from_slice(&text).unwrap();
        let stored = validate_policy(&p, None, 1).unwrap();
        assert_eq!(schedule(&stored).unwrap().actions.len(), 2);
    }

    #[test]
    fn iso_durations() {
        assert_eq!(parse_duration("P90D"), Some(90 * DAY));
        assert_eq!(parse_duration("P2Y"), Some(730 * DAY));
        assert_eq!(parse_duration("P1M"), Some(30 * DAY));
        assert_eq!(parse_duration("P1W"), Some(7 * DAY));
        assert_eq!(
            parse_duration("P1Y2M3DT4H5M6S"),
            Some(365 * DAY + 60 * DAY + 3 * DAY + 4 * 3600 + 5 * 60 + 6)
        );
        assert_eq!(parse_duration("PT12H"), Some(12 * 3600));
        for bad in [
            "", "P", "90D", "PD", "P1DT", "P1D1M", "P-1D", "P1.5D", "PT1D", "P0D", "-P1D", "p1d",
            "PT1.5H", "P1Y 2M",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    fn policy(actions: &[(&str, &str, &str)], expiry: Option<&str>) -> KeyRotationPolicy {
        KeyRotationPolicy {
            id: None,
            lifetime_actions: Some(
                actions
                    .iter()
                    .map(|(ty, trig, d)| LifetimeAction {
                        trigger: LifetimeActionTrigger {
                            time_after_create: (*trig == "after").then(|| d.to_string()),
                            time_before_expiry: (*trig == "before").then(|| d.to_string()),
                        },
                        action: LifetimeActionType {
                            action_type: ty.to_string(),
                        },
                    })
                    .collect(),
            ),
            attributes: expiry.map(|e| KeyRotationPolicyAttributes {
                expiry_time: Some(e.into()),
                created: None,
                updated: None,
            }),
        }
    }

    #[test]
    fn policies_are_validated_as_the_cloud_does() {
        let ok = [
            policy(&[("Rotate", "after", "P90D")], None),
            policy(
                &[("rotate", "after", "P90D"), ("Notify", "before", "P30D")],
                Some("P2Y"),
            ),
            policy(&[("Rotate", "before", "P30D")], Some("P1Y")),
            policy(&[], Some("P28D")),
        ];
        for p in ok {
            assert!(validate_policy(&p, None, 1).is_ok(), "{p:?}");
        }
        let bad = [
            policy(&[("Rotate", "after", "P6D")], None),
            policy(&[("Notify", "after", "P30D")], Some("P1Y")),
            policy(&[("Notify", "before", "P30D")], None),
            policy(&[("Rotate", "before", "P1Y")], Some("P1Y")),
            policy(&[], Some("P27D")),
            policy(
                &[("Rotate", "after", "P90D"), ("Rotate", "after", "P100D")],
                None,
            ),
            policy(&[("Expire", "after", "P90D")], None),
            policy(&[("Rotate", "after", "ninety days")], None),
            policy(&[("Rotate", "after", "P360D")], Some("P1Y")),
        ];
        for p in bad {
            assert!(validate_policy(&p, None, 1).is_err(), "{p:?}");
        }
        // A trigger with both (or neither) durations is refused.
        let mut both = policy(&[("Rotate", "after", "P90D")], Some("P1Y"));
        both.lifetime_actions.as_mut().unwrap()[0]
            .trigger
            .time_before_expiry = Some("P30D".into());
        assert!(validate_policy(&both, None, 1).is_err());
    }

    #[test]
    fn an_absent_expiry_time_keeps_the_previous_one_and_created_is_kept() {
        let first = validate_policy(&policy(&[], Some("P2Y")), None, 100).unwrap();
        let second = validate_policy(
            &policy(&[("Rotate", "after", "P30D")], None),
            Some(&first),
            200,
        )
        .unwrap();
        let attrs = second.attributes.unwrap();
        assert_eq!(attrs.expiry_time.as_deref(), Some("P2Y"));
        assert_eq!(attrs.created, Some(100));
        assert_eq!(attrs.updated, Some(200));
    }

    #[test]
    fn due_follows_the_current_versions_times() {
        let sched = schedule(&policy(
            &[("Rotate", "after", "P30D"), ("Notify", "before", "P7D")],
            Some("P60D"),
        ))
        .unwrap();
        let mut v = Version::new("v".into(), 1_000, KeyMeta::default());
        assert!(!due(&sched, ActionType::Rotate, &v, 1_000 + 29 * DAY));
        assert!(due(&sched, ActionType::Rotate, &v, 1_000 + 30 * DAY));
        assert!(
            !due(&sched, ActionType::Notify, &v, 1_000 + 59 * DAY),
            "no exp, no notify"
        );
        v.exp = Some(1_000 + 60 * DAY);
        assert!(due(&sched, ActionType::Notify, &v, 1_000 + 53 * DAY));
        assert!(!due(&sched, ActionType::Notify, &v, 1_000 + 52 * DAY));
    }
}
