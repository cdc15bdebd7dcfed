//! kvault's own control-plane endpoints under `/_kvault/`; the pipeline has already admitted
//! only the vault's control-plane principals (and exempted these paths from the network
//! rules: the operator must always be able to repair a policy that locked everyone out).
//!
//! - `GET`/`PUT /_kvault/policy`: the control plane reads and replaces the policy document.
//! - `GET /_kvault/events/dead-letters[?top=N]`: events given up (newest first, at most
//!   `top`, default 100, up to 1000), with the subscription, reason, attempts, last error and
//!   the event itself (never a value: events carry none).
//! - `GET /_kvault/events/expiry`: live objects whose current version is expired or near
//!   expiry (the operator turns them into Kubernetes Events on the `Vault`).

use crate::policy::PolicyDocument;
use crate::server::error::{ApiError, ApiResult};
use crate::server::events::{DEAD_LETTERS, scanner};
use crate::server::ops::AdminOp;
use crate::server::request::{Reply, RequestContext};
use crate::server::runtime::PushOutcome;
use crate::server::state::AppState;
use crate::wire::admin::{DeadLetters, ListedDeadLetter, PolicyStatus};

const DEFAULT_TOP: usize = 100;
const MAX_TOP: usize = 1000;

pub async fn handle(
    state: &AppState,
    ctx: &RequestContext,
    op: AdminOp,
    body: &[u8],
) -> ApiResult<Reply> {
    match op {
        AdminOp::GetPolicy => policy_status(state, None),
        AdminOp::PutPolicy => {
            let doc: PolicyDocument = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad(format!("Invalid policy document: {e}")))?;
            doc.check_generation()
                .map_err(|e| ApiError::bad(format!("Invalid policy document: {e}")))?;
            let outcome = state.policy.push(&state.store, doc, false).await?;
            let outcome = match outcome {
                PushOutcome::Applied => "Applied",
                PushOutcome::Unchanged => "Unchanged",
            };
            policy_status(state, Some(outcome))
        }
        AdminOp::GetEventDeadLetters => dead_letters(state, ctx).await,
        AdminOp::GetExpiringObjects => Reply::ok(&scanner::expiry_report(state).await?),
    }
}

/// What the control plane learns about the policy in force; subscription header values are
/// write-only and never shown.
fn policy_status(state: &AppState, outcome: Option<&str>) -> ApiResult<Reply> {
    let current = state.policy.current();
    Reply::ok(&PolicyStatus {
        applied_generation: current.generation(),
        outcome: outcome.map(str::to_string),
        policy: current.policy.doc.redacted(),
    })
}

async fn dead_letters(state: &AppState, ctx: &RequestContext) -> ApiResult<Reply> {
    let top = match ctx.query.get("top") {
        None => DEFAULT_TOP,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_TOP).contains(n))
            .ok_or_else(|| ApiError::bad(format!("top must be 1-{MAX_TOP}.")))?,
    };
    let all = state.store.meta_scan(DEAD_LETTERS).await?;
    let count = all.len();
    let mut value = Vec::new();
    // Stored oldest first: the newest `top`, newest first.
    for (name, plain) in all.into_iter().rev().take(top) {
        let letter = serde_json::from_slice(&plain).map_err(|_| ApiError::Integrity)?;
        value.push(ListedDeadLetter {
            id: name.trim_start_matches(DEAD_LETTERS).to_string(),
            letter,
        });
    }
    Reply::ok(&DeadLetters { count, value })
}
