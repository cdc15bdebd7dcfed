//! Staying in step with the other replicas of a vault on shared storage: their policy
//! pushes and key changes reach this one through the backend's change notices, and the
//! background-job lease is published as a metric.

use crate::server::state::AppState;
use crate::server::store::{ChangeNotice, Kind};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// What a notice means for this replica's in-memory state.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stale {
    pub policy: bool,
    pub keys: bool,
    /// Another replica staged events: the delivery loop (if this replica runs it) looks now.
    pub outbox: bool,
}

/// Pure: which caches a notice makes stale.
pub fn stale(notice: &ChangeNotice) -> Stale {
    Stale {
        policy: notice.touches(b"m/policy"),
        keys: notice.touches(&[b'h', Kind::Key.tag()]),
        outbox: notice.touches(format!("m/{}", crate::server::events::OUTBOX).as_bytes()),
    }
}

async fn apply(state: &AppState, notice: &ChangeNotice) {
    let s = stale(notice);
    if s.keys {
        state.key_cache.clear();
    }
    if s.outbox {
        state.events.wake();
    }
    if s.policy
        && let Err(e) = state.policy.refresh(&state.store).await
    {
        tracing::warn!(error = %e, "could not take up the policy stored by another replica");
    }
}

/// Follows the backend's change notices (when it has any) and publishes the job lease.
pub fn spawn(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut notices = state.store.changes();
        let mut lease = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                n = async {
                    match notices.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match n {
                    Ok(n) => apply(&state, &n).await,
                    Err(RecvError::Lagged(_)) => apply(&state, &ChangeNotice::Everything).await,
                    Err(RecvError::Closed) => notices = None,
                },
                _ = lease.tick() => {
                    let held = state.store.holds_job_lease().await;
                    state.metrics.job_lease_held.set(i64::from(held));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_make_only_what_they_touch_stale() {
        let t =
            |topics: &[&[u8]]| ChangeNotice::Topics(topics.iter().map(|t| t.to_vec()).collect());
        assert_eq!(stale(&t(&[b"hs", b"vs"])), Stale::default());
        assert_eq!(
            stale(&t(&[b"hk"])),
            Stale {
                keys: true,
                ..Stale::default()
            }
        );
        assert_eq!(
            stale(&t(&[b"m/policy"])),
            Stale {
                policy: true,
                ..Stale::default()
            }
        );
        assert_eq!(
            stale(&t(&[b"m/ev/o/"])),
            Stale {
                outbox: true,
                ..Stale::default()
            }
        );
        assert_eq!(
            stale(&ChangeNotice::Everything),
            Stale {
                policy: true,
                keys: true,
                outbox: true
            }
        );
    }
}
