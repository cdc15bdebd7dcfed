//! The handler with constructed AdmissionReviews; the API server is kube's tower-test mock
//! (every request it gets is checked against the operator's RBAC).

use super::*;
use crate::operator::rbac::check::assert_allowed;
use http::{Request, StatusCode as HttpStatus};
use kube::client::Body;
use serde_json::json;
use tower::ServiceExt;

type Handle = tower_test::mock::Handle<Request<Body>, http::Response<Body>>;

fn injection() -> Injection {
    Injection {
        authority_host: "https://kvault-identity.kvault-system.svc".into(),
        tenant_id: "adfs".into(),
        audience: "api://AzureADTokenExchange".into(),
        default_token_expiration_secs: 3600,
        ca_config_map: "kvault-ca".into(),
    }
}

fn state() -> (WebhookState, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, http::Response<Body>>();
    let client = Client::new(service, "default");
    let dir = ServiceAccountDirectory::new(client.clone());
    let state = WebhookState::new(injection(), client, "KVAULT-CA-PEM\n".into(), dir);
    (state, handle)
}

fn pod(labels: Value, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "app-5f7c-", "labels": labels, "annotations": annotations},
        "spec": {"serviceAccountName": "payments",
                 "containers": [{"name": "app", "image": "app:1"}]},
    })
}

fn review(object: Value, dry_run: bool) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "", "namespace": "team-a", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": object, "oldObject": null, "dryRun": dry_run,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    })
}

fn labelled() -> Value {
    pod(json!({"azure.workload.identity/use": "true"}), json!({}))
}

async fn post(state: &WebhookState, body: Vec<u8>) -> (HttpStatus, Vec<u8>) {
    let req = Request::post(MUTATE_PODS_PATH)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    let res = router(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

/// The AdmissionReview answer: its `response`.
async fn admit_json(state: &WebhookState, review: &Value) -> Value {
    let (status, body) = post(state, serde_json::to_vec(review).unwrap()).await;
    assert_eq!(status, HttpStatus::OK, "{}", String::from_utf8_lossy(&body));
    let out: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["kind"], "AdmissionReview");
    let r = out["response"].clone();
    assert_eq!(r["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    r
}

/// The response's patch, decoded (base64, as the API server reads it) and applied to the
/// pod's JSON.
fn patched(response: &Value, pod: &Value) -> Pod {
    assert_eq!(response["patchType"], "JSONPatch");
    let b64 = response["patch"].as_str().expect("a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let p: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut doc = pod.clone();
    json_patch::patch(&mut doc, &p).unwrap();
    serde_json::from_value(doc).unwrap()
}

fn env(pod: &Pod) -> std::collections::BTreeMap<String, String> {
    pod.spec.clone().unwrap().containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect()
}

fn reply(reply: tower_test::mock::SendResponse<http::Response<Body>>, status: u16, body: &Value) {
    reply.send_response(
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn service_account(annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": "payments", "namespace": "team-a", "annotations": annotations}})
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "reason": reason, "code": code})
}

/// The next request of the mocked API server: method, path, body (checked against the
/// operator's RBAC).
async fn next(
    handle: &mut Handle,
) -> (
    String,
    String,
    Value,
    tower_test::mock::SendResponse<http::Response<Body>>,
) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
        .await
        .expect("a request within 10 s")
        .expect("the client is alive");
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    assert_allowed(&method, &path, req.uri().query().unwrap_or_default());
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (method, path, body, send)
}

async fn nothing_more(handle: &mut Handle) {
    let more = tokio::time::timeout(Duration::from_millis(100), handle.next_request()).await;
    assert!(more.is_err(), "an unexpected request to the API server");
}

#[tokio::test]
async fn an_unlabelled_pod_is_allowed_unchanged_without_asking_the_api_server() {
    let (state, mut handle) = state();
    for labels in [json!({}), json!({"azure.workload.identity/use": "false"})] {
        let r = admit_json(&state, &review(pod(labels, json!({})), false)).await;
        assert_eq!(r["allowed"], true);
        assert!(
            r.get("patch").is_none() && r.get("patchType").is_none(),
            "{r}"
        );
    }
    nothing_more(&mut handle).await;
}

#[tokio::test]
async fn what_is_not_an_admission_review_is_a_400() {
    let (state, _handle) = state();
    for body in [
        b"not json".to_vec(),
        b"{}".to_vec(),
        // A review without a request.
        serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1",
                                     "kind": "AdmissionReview"}))
        .unwrap(),
        // An object that is not a Pod.
        serde_json::to_vec(&review(json!({"spec": "nope"}), false)).unwrap(),
    ] {
        let (status, _) = post(&state, body.clone()).await;
        assert_eq!(
            status,
            HttpStatus::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[tokio::test]
async fn a_labelled_pod_is_injected_with_a_mock_api_server() {
    let (state, mut handle) = state();
    let server = tokio::spawn(async move {
        let (method, path, _, send) = next(&mut handle).await;
        assert_eq!(
            (method.as_str(), path.as_str()),
            ("GET", "/api/v1/namespaces/team-a/serviceaccounts/payments")
        );
        let annotations = json!({"azure.workload.identity/client-id": "app-123",
                                 "azure.workload.identity/service-account-token-expiration": "7200"});
        reply(send, 200, &service_account(annotations));
        // kvault-ca, by server-side apply in the pod's namespace.
        let (method, path, body, send) = next(&mut handle).await;
        assert_eq!(
            (method.as_str(), path.as_str()),
            ("PATCH", "/api/v1/namespaces/team-a/configmaps/kvault-ca")
        );
        assert_eq!(body["data"]["ca.crt"], "KVAULT-CA-PEM\n");
        assert!(
            body["data"]["ca-bundle.crt"]
                .as_str()
                .unwrap()
                .ends_with("KVAULT-CA-PEM\n")
        );
        reply(send, 200, &body);
        handle
    });
    let object = labelled();
    let r = admit_json(&state, &review(object.clone(), false)).await;
    assert_eq!(r["allowed"], true, "{r}");
    let out = patched(&r, &object);
    let e = env(&out);
    assert_eq!(e["AZURE_CLIENT_ID"], "app-123");
    assert_eq!(e["AZURE_TENANT_ID"], "adfs");
    assert_eq!(
        e["AZURE_AUTHORITY_HOST"],
        "https://kvault-identity.kvault-system.svc"
    );
    let volumes = out.spec.clone().unwrap().volumes.unwrap();
    let token = volumes[0].projected.clone().unwrap().sources.unwrap()[0]
        .service_account_token
        .clone()
        .unwrap();
    assert_eq!(token.expiration_seconds, Some(7200));
    let mut handle = server.await.unwrap();
    // A second pod in the namespace: the ServiceAccount is cached, kvault-ca already applied.
    let r = admit_json(&state, &review(object.clone(), false)).await;
    assert_eq!(r["allowed"], true);
    assert_eq!(env(&patched(&r, &object))["AZURE_CLIENT_ID"], "app-123");
    // The injected pod, as reinvocation sends it: allowed, no patch.
    let again = serde_json::to_value(&out).unwrap();
    let r = admit_json(&state, &review(again, false)).await;
    assert_eq!(r["allowed"], true);
    assert!(r.get("patch").is_none(), "{r}");
    nothing_more(&mut handle).await;
}

#[tokio::test]
async fn a_dry_run_applies_nothing_with_a_mock_api_server() {
    let (state, mut handle) = state();
    let server = tokio::spawn(async move {
        let (method, _, _, send) = next(&mut handle).await;
        assert_eq!(method, "GET");
        reply(send, 404, &status(404, "NotFound"));
        handle
    });
    let object = labelled();
    let r = admit_json(&state, &review(object.clone(), true)).await;
    assert_eq!(r["allowed"], true, "{r}");
    // No ServiceAccount (yet): kvault's convention.
    assert_eq!(
        env(&patched(&r, &object))["AZURE_CLIENT_ID"],
        "system:serviceaccount:team-a:payments"
    );
    let mut handle = server.await.unwrap();
    nothing_more(&mut handle).await;
}

#[tokio::test]
async fn an_unreadable_service_account_refuses_the_pod_with_a_mock_api_server() {
    let (state, mut handle) = state();
    let server = tokio::spawn(async move {
        let (_, _, _, send) = next(&mut handle).await;
        reply(send, 403, &status(403, "Forbidden"));
        handle
    });
    let r = admit_json(&state, &review(labelled(), false)).await;
    assert_eq!(r["allowed"], false);
    assert_eq!(
        r["status"]["message"],
        "cannot read ServiceAccount team-a/payments"
    );
    assert_eq!(r["status"]["code"], 403);
    assert!(r.get("patch").is_none());
    server.await.unwrap();
}

#[tokio::test]
async fn a_bad_token_lifetime_refuses_the_pod_with_its_reason_with_a_mock_api_server() {
    let (state, mut handle) = state();
    let server = tokio::spawn(async move {
        let (_, _, _, send) = next(&mut handle).await;
        reply(send, 200, &service_account(json!({})));
        handle
    });
    let object = pod(
        json!({"azure.workload.identity/use": "true"}),
        json!({"azure.workload.identity/service-account-token-expiration": "60"}),
    );
    let r = admit_json(&state, &review(object, false)).await;
    assert_eq!(r["allowed"], false);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("pod team-a/app-5f7c-…: 60 is out of range"),
        "{msg}"
    );
    let mut handle = server.await.unwrap();
    nothing_more(&mut handle).await;
}

#[tokio::test]
async fn a_failed_ca_apply_refuses_the_pod_and_is_retried_with_a_mock_api_server() {
    let (state, mut handle) = state();
    let server = tokio::spawn(async move {
        let (_, _, _, send) = next(&mut handle).await;
        reply(send, 200, &service_account(json!({})));
        let (method, _, _, send) = next(&mut handle).await;
        assert_eq!(method, "PATCH");
        reply(send, 403, &status(403, "Forbidden"));
        // The next pod: the ServiceAccount is cached, the ConfigMap is tried again.
        let (method, _, body, send) = next(&mut handle).await;
        assert_eq!(method, "PATCH");
        reply(send, 200, &body);
        handle
    });
    let object = labelled();
    let r = admit_json(&state, &review(object.clone(), false)).await;
    assert_eq!(r["allowed"], false);
    assert_eq!(
        r["status"]["message"],
        "cannot apply the ConfigMap team-a/kvault-ca"
    );
    let r = admit_json(&state, &review(object, false)).await;
    assert_eq!(r["allowed"], true);
    server.await.unwrap();
}

#[tokio::test]
async fn updates_and_deletes_are_allowed_unchanged() {
    let (state, mut handle) = state();
    let mut r = review(labelled(), false);
    r["request"]["operation"] = json!("UPDATE");
    r["request"]["oldObject"] = labelled();
    let out = admit_json(&state, &r).await;
    assert_eq!(out["allowed"], true);
    assert!(out.get("patch").is_none());
    let mut r = review(Value::Null, false);
    r["request"]["operation"] = json!("DELETE");
    r["request"]["oldObject"] = labelled();
    let out = admit_json(&state, &r).await;
    assert_eq!(out["allowed"], true);
    nothing_more(&mut handle).await;
}

#[tokio::test]
async fn a_pod_without_any_namespace_is_refused() {
    let (state, mut handle) = state();
    let mut r = review(labelled(), false);
    r["request"]["namespace"] = json!("");
    let out = admit_json(&state, &r).await;
    assert_eq!(out["allowed"], false);
    assert_eq!(out["status"]["message"], "the pod has no namespace");
    // The object's namespace serves when the request has none.
    let mut object = labelled();
    object["metadata"]["namespace"] = json!("team-b");
    let mut r = review(object, true);
    r["request"]["namespace"] = Value::Null;
    let server = tokio::spawn(async move {
        let (_, path, _, send) = next(&mut handle).await;
        assert_eq!(path, "/api/v1/namespaces/team-b/serviceaccounts/payments");
        reply(send, 200, &service_account(json!({})));
        handle
    });
    let out = admit_json(&state, &r).await;
    assert_eq!(out["allowed"], true, "{out}");
    server.await.unwrap();
}
