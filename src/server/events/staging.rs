//! Writes that stage their events in the same atomic batch.

use crate::server::events::ObjectVersion;
use crate::server::state::AppState;
use crate::server::store::{Batch, Change, Head, Kind, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;

const MAX_RETRIES: usize = 32;

/// [`VaultStore::modify`] that also stages, in the same atomic batch, a
/// `…NewVersionCreated` event for every version the change adds. Without subscriptions it
/// is `modify` itself.
pub async fn modify_with_events<M, R, E>(
    state: &AppState,
    kind: Kind,
    name: &str,
    mut decide: impl FnMut(Option<Head<M>>) -> Result<(Change<M>, R), E>,
) -> Result<R, E>
where
    M: Serialize + DeserializeOwned,
    E: From<StoreError>,
{
    let rt = state.policy.current();
    let settings = rt.policy.doc.events.as_ref();
    if settings.is_none_or(|s| s.subscriptions.is_empty()) {
        return state.store.modify(kind, name, decide).await;
    }
    for attempt in 0..MAX_RETRIES {
        let (head, raw) = state.store.head_for_update::<M>(kind, name).await?;
        let before: Vec<String> = head
            .as_ref()
            .map(|h| h.versions.iter().map(|v| v.id.clone()).collect())
            .unwrap_or_default();
        let (change, result) = decide(head)?;
        let mut batch = Batch::default();
        let staged = match &change {
            Change::Keep => return Ok(result),
            Change::Put { head, .. } => {
                let added: Vec<ObjectVersion<'_>> = head
                    .versions
                    .iter()
                    .filter(|v| !before.iter().any(|b| b.eq_ignore_ascii_case(&v.id)))
                    .map(|v| ObjectVersion::of(kind, &head.name, v))
                    .collect();
                state
                    .events
                    .stage_new_versions(&state.store, settings, &mut batch, &added)?
            }
            Change::Purge => 0,
        };
        state.store.stage(&mut batch, kind, name, raw, change)?;
        match state.store.commit(batch).await {
            Ok(()) => {
                if staged > 0 {
                    state.events.wake();
                }
                return Ok(result);
            }
            Err(StoreError::Conflict) => {
                crate::server::store::after_conflict(attempt).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Unavailable("too many concurrent writers on one object".into()).into())
}
