//! The purge sweeper: removes soft-deleted objects whose retention has ended. It runs even
//! under purge protection — protection stops early purges by people, not the end of
//! retention.

use crate::server::state::AppState;
use crate::server::store::{Change, Kind, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// Purges every deleted object whose `scheduledPurgeDate` has passed; returns how many.
pub async fn sweep_once(state: &AppState) -> Result<usize, StoreError> {
    let now = state.clock.now();
    let mut purged = 0;
    for kind in [Kind::Secret, Kind::Key, Kind::Certificate] {
        let heads = state.store.heads::<serde_json::Value>(kind).await?;
        for head in heads {
            let due = head.deleted.is_some_and(|d| d.scheduled_purge_date <= now);
            if !due {
                continue;
            }
            // Re-checked inside the write: a recover may have won the race.
            let done = state
                .store
                .modify::<serde_json::Value, bool, StoreError>(kind, &head.name, |cur| match cur {
                    Some(h) if h.deleted.is_some_and(|d| d.scheduled_purge_date <= now) => {
                        Ok((Change::Purge, true))
                    }
                    _ => Ok((Change::Keep, false)),
                })
                .await?;
            if done {
                purged += 1;
                tracing::info!(
                    kind = kind.as_str(),
                    "purged an object at the end of its retention"
                );
            }
        }
    }
    Ok(purged)
}

pub fn spawn(state: Arc<AppState>, every: Duration) -> tokio::task::JoinHandle<()> {
    crate::server::jobs::periodic(state, every, "purge sweep", |s| async move {
        sweep_once(&s).await
    })
}
