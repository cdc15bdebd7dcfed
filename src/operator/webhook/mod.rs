//! The workload-identity mutating admission webhook: `POST /mutate-pods`.
//!
//! The API server sends an AdmissionReview (v1) for every pod CREATE that the
//! MutatingWebhookConfiguration `kvault-workload-identity` selects (the chart's
//! `templates/webhook.yaml`: pods labelled `azure.workload.identity/use: "true"`); the answer
//! carries the JSON Patch of [`patch::pod_patch`]. This module is the I/O around that pure
//! function:
//!
//! - the pod's ServiceAccount is read through [`ServiceAccountDirectory`] (cached). When it
//!   cannot be read the pod is refused ("cannot read ServiceAccount ns/name"): injecting
//!   kvault's convention client id in place of an annotated one would start the pod with an
//!   identity it was not given. What the API server does then is the webhook
//!   configuration's `failurePolicy`.
//! - before the first injection in a namespace (per operator process; not for dry runs:
//!   `sideEffects: NoneOnDryRun`), the `kvault-ca` ConfigMap the pod's CA volume reads is
//!   applied there (`desired::ca_config_map`: the CA and the bundle of system roots plus the
//!   CA). A pod is refused when that fails: it would never start without the ConfigMap.
//! - a patch the webhook cannot make ([`PatchError`], e.g. a token lifetime out of range) is
//!   a refusal with its message; a body that is not an AdmissionReview is a 400.
//!
//! The pod's contents are never logged (its env may hold secrets); only its namespace, name
//! and service account.
//!
//! The TLS listener that serves [`router`] is the operator's HTTPS listener (its certificate
//! from the operator CA), and the operator sets the configuration's `caBundle` at start.

pub mod patch;

pub use patch::{Injection, PatchError};

pub use crate::operator::service_accounts::ServiceAccountDirectory;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Client;
use kube::api::{Api, PatchParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The name of the MutatingWebhookConfiguration (the chart's; the operator patches its
/// `caBundle`).
pub const WEBHOOK_CONFIGURATION: &str = "kvault-workload-identity";
/// The webhook's name inside it.
pub const WEBHOOK_NAME: &str = "pods.workload-identity.kvault.dev";
/// The path the configuration's clientConfig names.
pub const MUTATE_PODS_PATH: &str = "/mutate-pods";

/// Each API call of an admission must answer within this, well inside the configuration's
/// `timeoutSeconds: 5`.
const API_TIMEOUT: Duration = Duration::from_secs(3);

/// What the webhook needs: the injection settings, a client for the API server, the CA PEM
/// published as `kvault-ca`, and the ServiceAccount reader.
#[derive(Clone)]
pub struct WebhookState {
    inner: Arc<Inner>,
}

struct Inner {
    injection: Injection,
    client: Client,
    ca_pem: String,
    service_accounts: ServiceAccountDirectory,
    /// Namespaces where `kvault-ca` was applied by this process.
    published: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookState")
            .field("injection", &self.inner.injection)
            .finish_non_exhaustive()
    }
}

impl WebhookState {
    pub fn new(
        injection: Injection,
        client: Client,
        ca_pem: String,
        service_accounts: ServiceAccountDirectory,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                injection,
                client,
                ca_pem,
                service_accounts,
                published: Mutex::default(),
            }),
        }
    }

    pub fn injection(&self) -> &Injection {
        &self.inner.injection
    }

    /// Applies `kvault-ca` in `namespace` unless this process already did.
    async fn publish_ca(&self, namespace: &str) -> Result<(), kube::Error> {
        let done = |set: &Mutex<HashSet<String>>| {
            set.lock()
                .map(|s| s.contains(namespace))
                .unwrap_or_default()
        };
        if done(&self.inner.published) {
            return Ok(());
        }
        let name = self.inner.injection.ca_config_map.as_str();
        let mut cm = crate::operator::desired::ca_config_map(namespace, &self.inner.ca_pem);
        cm.metadata.name = Some(name.to_string());
        let api: Api<ConfigMap> = Api::namespaced(self.inner.client.clone(), namespace);
        let pp = PatchParams::apply(crate::operator::FIELD_MANAGER).force();
        api.patch(name, &pp, &kube::api::Patch::Apply(&cm)).await?;
        if let Ok(mut set) = self.inner.published.lock() {
            set.insert(namespace.to_string());
        }
        Ok(())
    }
}

/// `POST /mutate-pods`, to be served over TLS by the operator.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route(MUTATE_PODS_PATH, post(mutate_pods))
        .with_state(state)
}

async fn mutate_pods(State(state): State<WebhookState>, body: Bytes) -> Response {
    let review: AdmissionReview<Pod> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not an AdmissionReview of a Pod: {e}"),
            )
                .into_response();
        }
    };
    let request: AdmissionRequest<Pod> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let response = admit(&state, &request).await;
    review_response(response)
}

/// The AdmissionReview answer as JSON, with the patch base64-encoded as the API server's
/// `[]byte` field reads it.
fn review_response(response: AdmissionResponse) -> Response {
    let patch = response.patch.clone();
    let mut review = match serde_json::to_value(response.into_review()) {
        Ok(v) => v,
        Err(e) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
    };
    if let (Some(patch), Some(r)) = (patch, review.get_mut("response"))
        && let Some(obj) = r.as_object_mut()
    {
        obj.insert(
            "patch".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(patch)),
        );
    }
    axum::Json(review).into_response()
}

/// A refusal, as controller-runtime's `Denied` gives it (403 Forbidden with the reason): the
/// API server tells the pod's creator "admission webhook … denied the request: <message>".
fn refuse(allowed: AdmissionResponse, message: impl ToString) -> AdmissionResponse {
    let mut r = allowed.deny(message);
    r.result.code = 403;
    r.result.reason = "Forbidden".into();
    r
}

/// The answer to one admission request.
async fn admit(state: &WebhookState, req: &AdmissionRequest<Pod>) -> AdmissionResponse {
    let allowed = AdmissionResponse::from(req);
    let Some(pod) = req.object.as_ref() else {
        return allowed;
    };
    if req.operation != Operation::Create || !patch::wants_injection(pod) {
        return allowed;
    }
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let Some(namespace) = non_empty(&req.namespace).or_else(|| non_empty(&pod.metadata.namespace))
    else {
        return refuse(allowed, "the pod has no namespace");
    };
    let pod_name = non_empty(&pod.metadata.name)
        .or_else(|| non_empty(&pod.metadata.generate_name).map(|g| format!("{g}…")))
        .unwrap_or_default();
    let sa_name = patch::service_account_name(pod);
    let cannot_read = format!("cannot read ServiceAccount {namespace}/{sa_name}");
    let sa = match tokio::time::timeout(
        API_TIMEOUT,
        state.inner.service_accounts.get(&namespace, sa_name),
    )
    .await
    {
        Ok(Ok(sa)) => sa,
        Ok(Err(e)) => {
            tracing::warn!(%namespace, pod = %pod_name, service_account = sa_name, error = %e,
                "workload identity: {cannot_read}");
            return refuse(allowed, cannot_read);
        }
        Err(_) => {
            tracing::warn!(%namespace, pod = %pod_name, service_account = sa_name,
                "workload identity: {cannot_read}: no answer in time");
            return refuse(allowed, format!("{cannot_read}: no answer in time"));
        }
    };
    let patch = match patch::pod_patch(pod, &namespace, sa.as_ref(), &state.inner.injection) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(%namespace, pod = %pod_name, error = %e,
                "workload identity: pod refused");
            return refuse(allowed, e);
        }
    };
    if patch.0.is_empty() {
        return allowed;
    }
    if !req.dry_run {
        let cm = &state.inner.injection.ca_config_map;
        let failed = match tokio::time::timeout(API_TIMEOUT, state.publish_ca(&namespace)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("no answer in time".to_string()),
        };
        if let Some(error) = failed {
            tracing::warn!(%namespace, pod = %pod_name, %error,
                "workload identity: cannot apply the ConfigMap {cm}");
            return refuse(
                allowed,
                format!("cannot apply the ConfigMap {namespace}/{cm}"),
            );
        }
    }
    tracing::info!(%namespace, pod = %pod_name, service_account = sa_name,
        dry_run = req.dry_run, "workload identity injected");
    match allowed.clone().with_patch(patch) {
        Ok(r) => r,
        Err(e) => refuse(allowed, e),
    }
}

#[cfg(test)]
mod tests;
