//! `/_kvault/events/…`: what the control plane reads about event notifications.
//!
//! - `GET /_kvault/events/dead-letters[?top=N]`: events given up (newest first, at most
//!   `top`, default 100, up to 1000), with the subscription, reason, attempts, last error
//!   and the event itself (never a value: events carry none).
//! - `GET /_kvault/events/expiry`: live objects whose current version is expired or near
//!   expiry (the operator turns them into Kubernetes Events on the `Vault`).
//!
//! Only the control-plane principals may read them, and, like the policy endpoint, they are
//! exempt from the network rules.

use super::{Query, Reply, Trace};
use crate::server::AppState;
use crate::server::error::{ApiError, ApiResult};
use crate::server::events::{DEAD_LETTERS, DeadLetter, scanner};
use crate::server::runtime::Runtime;
use axum::extract::Request;
use axum::http::Method;
use serde::Serialize;

pub const PREFIX: &str = "/_kvault/events/";
pub const DEAD_LETTERS_PATH: &str = "/_kvault/events/dead-letters";
pub const EXPIRY_PATH: &str = "/_kvault/events/expiry";
const DEFAULT_TOP: usize = 100;
const MAX_TOP: usize = 1000;

pub(super) fn is_events_path(path: &str) -> bool {
    path.get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

/// The audit log's operation name.
pub(super) fn operation(path: &str) -> &'static str {
    if path.eq_ignore_ascii_case(DEAD_LETTERS_PATH) {
        "GetEventDeadLetters"
    } else if path.eq_ignore_ascii_case(EXPIRY_PATH) {
        "GetExpiringObjects"
    } else {
        "EventsAdmin"
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedDeadLetter {
    /// The record's id.
    id: String,
    #[serde(flatten)]
    letter: DeadLetter,
}

#[derive(Serialize)]
struct DeadLetters {
    /// How many are kept in all.
    count: usize,
    value: Vec<ListedDeadLetter>,
}

pub(super) async fn handle(
    state: &AppState,
    rt: &Runtime,
    req: Request,
    trace: &mut Trace,
) -> ApiResult<Reply> {
    let (parts, _body) = req.into_parts();
    super::admin::control_plane(
        state,
        rt,
        &parts.headers,
        trace,
        parts.uri.path(),
        "read its event notifications",
    )
    .await?;
    if parts.method != Method::GET {
        return Err(ApiError::MethodNotAllowed(format!(
            "The requested resource does not support http method '{}'.",
            parts.method
        )));
    }
    let path = parts.uri.path();
    if path.eq_ignore_ascii_case(DEAD_LETTERS_PATH) {
        let query = Query::parse(parts.uri.query());
        let top = match query.get("top") {
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
            let letter: DeadLetter =
                serde_json::from_slice(&plain).map_err(|_| ApiError::Integrity)?;
            value.push(ListedDeadLetter {
                id: name.trim_start_matches(DEAD_LETTERS).to_string(),
                letter,
            });
        }
        return Reply::ok(&DeadLetters { count, value });
    }
    if path.eq_ignore_ascii_case(EXPIRY_PATH) {
        return Reply::ok(&scanner::expiry_report(state).await?);
    }
    Err(ApiError::NotFound {
        code: "NotFound",
        message: "No such kvault events resource.".into(),
    })
}
