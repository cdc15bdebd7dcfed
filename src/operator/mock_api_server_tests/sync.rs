//! SecretSync reconciles against the **mocked** API server, with a **fake** vault (an
//! in-memory [`VaultAccess`]): the requests, their field manager and bodies, the status and
//! the restart patches. The real vault and API server are in tests/k8s (served.rs, sync.rs).

use super::{ApiServer, NS, Seen, within};
use crate::api::{SecretSync, SecretSyncStatus, Vault};
use crate::client::ClientError;
use crate::operator::fixtures;
use crate::operator::sync::reconcile::{
    ReasonLabel, SyncContext, SyncFailure, VaultAccess, VaultReader, reconcile_sync,
};
use crate::operator::sync::restart::RestartTiming;
use crate::provider::params::ObjectSpec;
use crate::provider::render::Material;
use crate::wire::secrets::SecretItem;
use base64::Engine;
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zeroize::Zeroizing;

const SYNC: &str = "web-env";

/// The fake vault: secret values by name, and which principals may read.
#[derive(Default)]
struct FakeVault {
    secrets: Mutex<BTreeMap<String, String>>,
    forbidden: bool,
}

struct Reader(Arc<FakeVault>);

#[async_trait::async_trait]
impl VaultReader for Reader {
    async fn list_secrets(&self) -> Result<Vec<SecretItem>, ClientError> {
        Ok(vec![])
    }
    async fn fetch(&self, spec: &ObjectSpec) -> Result<(String, Material), ClientError> {
        if self.0.forbidden {
            return Err(ClientError::Api {
                status: 403,
                code: "Forbidden".into(),
                message: "the caller lacks secrets/get".into(),
            });
        }
        let secrets = self.0.secrets.lock().unwrap();
        let value = secrets.get(&spec.name).ok_or_else(|| ClientError::Api {
            status: 404,
            code: "SecretNotFound".into(),
            message: format!("no secret {}", spec.name),
        })?;
        Ok((
            "v1".into(),
            Material::Secret {
                value: Zeroizing::new(value.clone()),
                content_type: None,
                certificate_backed: false,
            },
        ))
    }
}

#[async_trait::async_trait]
impl VaultAccess for Arc<FakeVault> {
    async fn reader(
        &self,
        _vault: &Vault,
        _ns: &str,
        _sa: &str,
    ) -> Result<Box<dyn VaultReader>, SyncFailure> {
        Ok(Box::new(Reader(self.clone())))
    }
}

fn context(vault: Arc<FakeVault>, timing: RestartTiming) -> (Arc<SyncContext>, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let ctx = SyncContext::new(client, Arc::new(vault), timing);
    (Arc::new(ctx), ApiServer(handle))
}

fn fake_vault(forbidden: bool) -> Arc<FakeVault> {
    let v = FakeVault {
        forbidden,
        ..Default::default()
    };
    v.secrets
        .lock()
        .unwrap()
        .insert("db-password".into(), "s3cret".into());
    Arc::new(v)
}

fn secret_sync(status: Option<SecretSyncStatus>) -> Arc<SecretSync> {
    let spec = serde_json::from_value(json!({
        "vaultRef": {"name": "payments"},
        "serviceAccountName": "web",
        "objects": [{"objectName": "db-password"}],
        "rolloutRestartTargets": [{"kind": "Deployment", "name": "web"}],
    }))
    .unwrap();
    let mut s = SecretSync::new(SYNC, spec);
    s.metadata.namespace = Some(NS.into());
    s.metadata.uid = Some("uid-sync".into());
    s.metadata.generation = Some(1);
    s.status = status;
    Arc::new(s)
}

fn vault_json() -> Value {
    serde_json::to_value(fixtures::vault(NS, "payments", Default::default())).unwrap()
}

fn path(p: &str) -> String {
    format!("/api/v1/namespaces/{NS}/{p}")
}

fn status_path() -> String {
    format!("/apis/kvault.dev/v1alpha1/namespaces/{NS}/secretsyncs/{SYNC}/status")
}

impl Seen {
    /// A server-side apply by the sync's own field manager, forced.
    fn assert_sync_apply(&self, path: &str) {
        assert_eq!(
            (self.method.clone(), self.path.as_str()),
            (Method::PATCH, path)
        );
        assert_eq!(
            self.param("fieldManager"),
            Some("kvault-secretsync"),
            "{}",
            self.query
        );
        assert_eq!(self.param("force"), Some("true"), "{}", self.query);
        assert_eq!(self.content_type, "application/apply-patch+yaml");
    }
}

/// The vault is read, then the target Secret (`existing`), then applied.
async fn vault_read_and_secret_applied(api: &mut ApiServer, existing: Option<Value>) -> Seen {
    let get = api.answer(StatusCode::OK, |_| vault_json()).await;
    assert_eq!(
        get.path,
        format!("/apis/kvault.dev/v1alpha1/namespaces/{NS}/vaults/payments")
    );
    let get = match existing {
        None => api.not_found().await,
        Some(s) => api.answer(StatusCode::OK, move |_| s).await,
    };
    assert_eq!(
        (get.method, get.path),
        (Method::GET, path("secrets/web-env"))
    );
    let apply = api.echo(StatusCode::OK).await;
    apply.assert_sync_apply(&path("secrets/web-env"));
    apply
}

impl ApiServer {
    /// A status apply, answered with the whole SecretSync as the API server does.
    async fn sync_status_patched(&mut self) -> Seen {
        let seen = self
            .answer(StatusCode::OK, |s| {
                let mut obj = serde_json::to_value(secret_sync(None).as_ref()).unwrap();
                obj["status"] = s.body["status"].clone();
                obj
            })
            .await;
        seen.assert_sync_apply(&status_path());
        seen
    }

    /// A restart patch of Deployment `name`, answered with a whole Deployment.
    async fn deployment_restarted(&mut self, name: &str) -> Seen {
        let name = name.to_string();
        self.answer(StatusCode::OK, move |s| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": name, "namespace": NS},
                   "spec": {"selector": {"matchLabels": {"app": name}},
                            "template": {"metadata": s.body["spec"]["template"]["metadata"].clone(),
                                         "spec": {"containers": [{"name": "app", "image": "busybox"}]}}}})
        })
        .await
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn ready(status: &Value) -> &Value {
    status["conditions"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == "Ready"))
        .unwrap()
}

#[tokio::test]
async fn a_first_sync_writes_an_owned_secret_and_restarts_nothing() {
    let (ctx, mut api) = context(fake_vault(false), RestartTiming::default());
    let metrics = ctx.metrics.clone();
    let sync = secret_sync(None);
    let reconcile = tokio::spawn(reconcile_sync(sync, ctx));
    within(async {
        let apply = vault_read_and_secret_applied(&mut api, None).await;
        let body = &apply.body;
        assert_eq!(body["type"], "Opaque");
        assert_eq!(body["data"]["db-password"], b64("s3cret"));
        let owner = &body["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                owner["kind"].as_str(),
                owner["uid"].as_str(),
                owner["controller"].as_bool()
            ),
            (Some("SecretSync"), Some("uid-sync"), Some(true))
        );
        assert_eq!(body["metadata"]["labels"]["kvault.dev/secret-sync"], SYNC);
        // No restart patch: the next request is the status.
        let status = api.sync_status_patched().await;
        let st = &status.body["status"];
        assert_eq!(ready(st)["status"], "True");
        assert_eq!(ready(st)["reason"], "Synced");
        assert_eq!(st["keyCount"], 1);
        assert_eq!(st["syncedObjects"], json!(["secret/db-password@v1"]));
        let hash = st["dataHash"].as_str().unwrap();
        assert_eq!(hash.len(), 64);
        assert_eq!(st["restartedHash"], hash, "the first sync is the baseline");
        assert!(st["lastRestartTime"].is_null());
        // Ready became True: one Normal event.
        let event = api.echo(StatusCode::CREATED).await;
        assert_eq!(event.method, Method::POST);
        assert_eq!(event.body["reason"], "Synced");
        // Never a value in an event or the status.
        assert!(!event.body.to_string().contains("s3cret"));
        assert!(!status.body.to_string().contains("s3cret"));
    })
    .await;
    let action = reconcile.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let synced = ReasonLabel {
        reason: "Synced".into(),
    };
    assert_eq!(metrics.syncs.get_or_create(&synced).get(), 1);
    assert_eq!(metrics.restarts.get(), 0);
}

fn synced_status(hash: &str, restarted: &str, last_restart: Option<&str>) -> SecretSyncStatus {
    serde_json::from_value(json!({
        "conditions": [{"type": "Ready", "status": "True", "reason": "Synced",
                        "message": "1 keys from 1 objects in Secret web-env",
                        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}],
        "observedGeneration": 1,
        "secretName": "web-env",
        "keyCount": 1,
        "dataHash": hash,
        "restartedHash": restarted,
        "lastChangeTime": "2026-01-01T00:00:00Z",
        "lastRestartTime": last_restart,
        "lastSyncTime": k8s_openapi::jiff::Timestamp::now().to_string(),
        "syncedObjects": ["secret/db-password@v1"],
    }))
    .unwrap()
}

fn ours() -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": "web-env", "namespace": NS,
                        "ownerReferences": [{"apiVersion": "kvault.dev/v1alpha1", "kind": "SecretSync",
                                             "name": SYNC, "uid": "uid-sync", "controller": true}]}})
}

#[tokio::test]
async fn changed_data_restarts_the_targets_once() {
    let timing = RestartTiming {
        debounce: Duration::ZERO,
        min_interval: Duration::from_secs(60),
    };
    let (ctx, mut api) = context(fake_vault(false), timing);
    let sync = secret_sync(Some(synced_status("old", "old", None)));
    let reconcile = tokio::spawn(reconcile_sync(sync, ctx));
    let new_hash = within(async {
        vault_read_and_secret_applied(&mut api, Some(ours())).await;
        // The restart, as `kubectl rollout restart` does it.
        let restart = api.deployment_restarted("web").await;
        assert_eq!(
            (restart.method.clone(), restart.path.as_str()),
            (
                Method::PATCH,
                format!("/apis/apps/v1/namespaces/{NS}/deployments/web").as_str()
            )
        );
        assert_eq!(restart.content_type, "application/merge-patch+json");
        let ann = &restart.body["spec"]["template"]["metadata"]["annotations"];
        assert!(ann["kubectl.kubernetes.io/restartedAt"].is_string());
        assert_eq!(ann["kvault.dev/restarted-by"], "SecretSync web-env");
        let event = api.echo(StatusCode::CREATED).await;
        assert_eq!(event.body["reason"], "RolloutRestart");
        assert!(
            event.body["note"]
                .as_str()
                .unwrap()
                .contains("Deployment web")
        );
        let status = api.sync_status_patched().await;
        let st = &status.body["status"];
        assert_ne!(st["dataHash"], "old");
        assert_eq!(st["restartedHash"], st["dataHash"]);
        assert!(st["lastRestartTime"].is_string());
        assert_ne!(st["lastChangeTime"], "2026-01-01T00:00:00Z");
        let event = api.echo(StatusCode::CREATED).await;
        assert_eq!(event.body["reason"], "Updated");
        st["dataHash"].as_str().unwrap().to_string()
    })
    .await;
    reconcile.await.unwrap().unwrap();

    // The same data again: no restart, no event, and no status patch (each would be a
    // watch event, and another pass).
    let (ctx, mut api) = context(fake_vault(false), timing);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let sync = secret_sync(Some(synced_status(&new_hash, &new_hash, Some(&now))));
    let reconcile = tokio::spawn(reconcile_sync(sync, ctx));
    within(vault_read_and_secret_applied(&mut api, Some(ours()))).await;
    reconcile.await.unwrap().unwrap();
    // Nothing more was asked of the API server.
    within(async { assert!(api.0.next_request().await.is_none()) }).await;
}

#[tokio::test]
async fn a_restart_inside_the_rate_limit_waits_for_it() {
    let timing = RestartTiming {
        debounce: Duration::ZERO,
        min_interval: Duration::from_secs(60),
    };
    let (ctx, mut api) = context(fake_vault(false), timing);
    let ten_seconds_ago = (k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::from_secs(10))
    .to_string();
    let sync = secret_sync(Some(synced_status("old", "old", Some(&ten_seconds_ago))));
    let reconcile = tokio::spawn(reconcile_sync(sync, ctx));
    within(async {
        vault_read_and_secret_applied(&mut api, Some(ours())).await;
        // No restart patch yet: the status comes next and keeps the old restartedHash.
        let status = api.sync_status_patched().await;
        assert_eq!(status.body["status"]["restartedHash"], "old");
        let event = api.echo(StatusCode::CREATED).await;
        assert_eq!(event.body["reason"], "Updated");
    })
    .await;
    // Requeued for the end of the interval (about 50 s), not the 5-minute refresh.
    let action = reconcile.await.unwrap().unwrap();
    let waits = (45..=51).any(|s| action == Action::requeue(Duration::from_secs(s)));
    assert!(waits, "requeued as {action:?}");
}

#[tokio::test]
async fn a_secret_it_did_not_create_is_left_alone() {
    let (ctx, mut api) = context(fake_vault(false), RestartTiming::default());
    let sync = secret_sync(None);
    let reconcile = tokio::spawn(reconcile_sync(sync, ctx));
    within(async {
        api.answer(StatusCode::OK, |_| vault_json()).await;
        let theirs = json!({"apiVersion": "v1", "kind": "Secret",
                            "metadata": {"name": "web-env", "namespace": NS}, "data": {"x": "eQ=="}});
        let get = api.answer(StatusCode::OK, move |_| theirs).await;
        assert_eq!(get.method, Method::GET);
        // No apply: the status says why.
        let status = api.sync_status_patched().await;
        let r = ready(&status.body["status"]);
        assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("False"), Some("SecretNotOwned")));
        assert!(r["message"].as_str().unwrap().contains("adopt"));
        let event = api.echo(StatusCode::CREATED).await;
        assert_eq!(event.body["type"], "Warning");
    })
    .await;
    reconcile.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_principal_without_grants_gets_no_secret_and_a_reason() {
    let (ctx, mut api) = context(fake_vault(true), RestartTiming::default());
    let sync = secret_sync(None);
    let reconcile = tokio::spawn(reconcile_sync(sync, ctx));
    within(async {
        api.answer(StatusCode::OK, |_| vault_json()).await;
        // Neither read nor written: straight to the status.
        let status = api.sync_status_patched().await;
        let r = ready(&status.body["status"]);
        assert_eq!(
            (r["status"].as_str(), r["reason"].as_str()),
            (Some("False"), Some("Forbidden"))
        );
        let m = r["message"].as_str().unwrap();
        assert!(
            m.contains("ServiceAccount team-a/web") && m.contains("secrets/get"),
            "{m}"
        );
        assert!(status.body["status"]["dataHash"].is_null());
        api.echo(StatusCode::CREATED).await;
    })
    .await;
    let action = reconcile.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
}

#[tokio::test]
async fn a_missing_vault_is_said_and_retried_soon() {
    let (ctx, mut api) = context(fake_vault(false), RestartTiming::default());
    let reconcile = tokio::spawn(reconcile_sync(secret_sync(None), ctx));
    within(async {
        api.not_found().await;
        let status = api.sync_status_patched().await;
        let r = ready(&status.body["status"]);
        assert_eq!(r["reason"], "VaultNotFound");
        api.echo(StatusCode::CREATED).await;
    })
    .await;
    assert_eq!(
        reconcile.await.unwrap().unwrap(),
        Action::requeue(Duration::from_secs(30))
    );
}
