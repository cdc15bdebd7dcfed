//! `/_kvault/policy`: the control plane reads and replaces the vault's policy document.
//! Only the configured control-plane principals may; the network rules do not apply (the
//! operator must always be able to repair a policy that locked everyone out).

use super::{Reply, Trace, authenticate};
use crate::policy::PolicyDocument;
use crate::server::AppState;
use crate::server::error::{ApiError, ApiResult};
use crate::server::runtime::{PushOutcome, Runtime};
use crate::wire::PolicyStatus;
use axum::body::Body;
use axum::extract::Request;
use axum::http::Method;

/// Authenticates the caller (the audit log must be writable first) and admits only the
/// vault's control-plane principals; `denied` ends the message "… may not {denied}".
pub(super) async fn control_plane(
    state: &AppState,
    rt: &Runtime,
    headers: &axum::http::HeaderMap,
    trace: &mut Trace,
    object: &str,
    denied: &str,
) -> ApiResult<()> {
    if !state.audit.healthy() {
        return Err(ApiError::Unavailable);
    }
    let principal = authenticate(state, rt, headers).await?;
    trace.principal = Some(principal.clone());
    trace.object_id = Some(object.to_string());
    if !rt.admins.iter().any(|a| a.matches(&principal)) {
        return Err(ApiError::Forbidden {
            message: format!(
                "'{principal}' is not the control plane of key vault '{}' and may not {denied}.",
                state.vault_name
            ),
            inner: Some("AccessDenied"),
        });
    }
    Ok(())
}

/// Largest policy document accepted (1,024 access policies fit comfortably).
const MAX_POLICY_BYTES: usize = 4 * 1024 * 1024;

pub(super) async fn handle(
    state: &AppState,
    rt: &Runtime,
    req: Request,
    trace: &mut Trace,
) -> ApiResult<Reply> {
    let (parts, body) = req.into_parts();
    control_plane(
        state,
        rt,
        &parts.headers,
        trace,
        super::ADMIN_POLICY_PATH,
        "read or change its policy",
    )
    .await?;
    match parts.method {
        Method::GET => {
            let current = state.policy.current();
            // Subscription header values are write-only.
            let shown = current.policy.doc.redacted();
            Reply::ok(&PolicyStatus {
                applied_generation: current.generation(),
                outcome: None,
                policy: shown,
            })
        }
        Method::PUT => {
            let bytes = axum::body::to_bytes(Body::new(body), MAX_POLICY_BYTES)
                .await
                .map_err(|_| ApiError::bad("The policy document is too large."))?;
            let doc: PolicyDocument = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad(format!("Invalid policy document: {e}")))?;
            let outcome = state.policy.push(&state.store, doc, false).await?;
            let current = state.policy.current();
            let shown = current.policy.doc.redacted();
            Reply::ok(&PolicyStatus {
                applied_generation: current.generation(),
                outcome: Some(
                    match outcome {
                        PushOutcome::Applied => "Applied",
                        PushOutcome::Unchanged => "Unchanged",
                    }
                    .to_string(),
                ),
                policy: shown,
            })
        }
        ref m => Err(ApiError::MethodNotAllowed(format!(
            "The requested resource does not support http method '{m}'."
        ))),
    }
}
