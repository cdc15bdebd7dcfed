//! The vault's periodic background jobs (purge sweeper, key rotation, certificate renewal,
//! the events' expiry scanner): one pass every interval, and only while this replica holds
//! the job lease ([`crate::server::store::Backend::holds_job_lease`]), so that on shared
//! storage each pass runs on one replica.

use crate::server::state::AppState;
use crate::server::store::StoreError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Runs `pass` every `every` (a late tick is delayed, not repeated) while this replica
/// holds the job lease; a failed pass is logged as "`what` failed" and retried next time.
pub fn periodic<F, Fut, T>(
    state: Arc<AppState>,
    every: Duration,
    what: &'static str,
    pass: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(Arc<AppState>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, StoreError>> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !state.store.holds_job_lease().await {
                continue;
            }
            if let Err(e) = pass(state.clone()).await {
                tracing::warn!(error = %e, "{what} failed");
            }
        }
    })
}
