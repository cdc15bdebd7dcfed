//! AutoRenew and EmailContacts lifetime actions, run by the server's scheduler on the
//! injectable clock. Whether an action is due follows from the current version's validity,
//! so a restart never renews twice.

use super::{CertMeta, issue_new_version};
use crate::clock::UnixTime;
use crate::server::state::AppState;
use crate::server::store::{Kind, StoreError, Version};
use crate::wire::CertificatePolicy;
use std::sync::Arc;
use std::time::Duration;

/// Whether an action of `action_type` is due for version `v` under `policy`.
pub fn due<M>(
    policy: &CertificatePolicy,
    action_type: &str,
    v: &Version<M>,
    now: UnixTime,
) -> bool {
    let (Some(nbf), Some(exp)) = (v.nbf, v.exp) else {
        return false;
    };
    policy.lifetime_actions.iter().flatten().any(|a| {
        a.action.action_type == action_type
            && match (a.trigger.lifetime_percentage, a.trigger.days_before_expiry) {
                (Some(pct), _) => now >= nbf + (exp - nbf) * i64::from(pct) / 100,
                (None, Some(days)) => now >= exp - i64::from(days) * 86_400,
                _ => false,
            }
    })
}

/// One pass: renews certificates whose AutoRenew is due (Self and kvault issuers) and
/// records due EmailContacts actions once per version. Returns (renewed, notified).
pub async fn run_once(state: &AppState) -> Result<(usize, usize), StoreError> {
    let now = state.clock.now();
    let (mut renewed, mut notified) = (0, 0);
    for head in state.store.heads::<CertMeta>(Kind::Certificate).await? {
        if head.deleted.is_some() {
            continue;
        }
        let (Some(cs), Some(current)) = (&head.certificate, head.current()) else {
            continue;
        };
        let issuer = cs
            .policy
            .issuer
            .as_ref()
            .and_then(|i| i.name.clone())
            .unwrap_or_default();
        let pending = cs
            .pending
            .as_ref()
            .is_some_and(|p| p.status == "inProgress");
        if due(&cs.policy, "AutoRenew", current, now)
            && !issuer.eq_ignore_ascii_case("Unknown")
            && !pending
        {
            match issue_new_version(
                state,
                &head.name,
                cs.policy.clone(),
                current.enabled,
                current.tags.clone(),
                current.meta.preserve_order,
            )
            .await
            {
                Ok(_) => {
                    renewed += 1;
                    tracing::info!("renewed a certificate under its AutoRenew lifetime action");
                }
                Err(e) => tracing::warn!(error = %e, "automatic certificate renewal failed"),
            }
            continue;
        }
        if due(&cs.policy, "EmailContacts", current, now)
            && cs.notified_version.as_deref() != Some(current.id.as_str())
        {
            let version = current.id.clone();
            let recorded = state
                .store
                .record_for_current::<CertMeta>(Kind::Certificate, &head.name, &version, |h| {
                    if let Some(c) = h.certificate.as_mut() {
                        c.notified_version = Some(version.clone());
                    }
                })
                .await?;
            if recorded {
                notified += 1;
                tracing::info!("a certificate is near expiry (EmailContacts lifetime action)");
            }
        }
    }
    Ok((renewed, notified))
}

pub fn spawn(state: Arc<AppState>, every: Duration) -> tokio::task::JoinHandle<()> {
    crate::server::jobs::periodic(state, every, "certificate renewal pass", |s| async move {
        run_once(&s).await
    })
}
