//! Reconcile flows against a **mocked** API server (kube's `tower-test` style): no cluster.
//!
//! Each test plays the API server: it takes the reconcile's requests one by one, checks the
//! method, path, query (field manager, force) and body, and answers as the API server would.
//! A request the script does not expect fails the test (the mock is dropped, so the
//! reconcile sees a closed connection); a missing one times out.

use super::ca::Ca;
use super::controller::{Context, Metrics, RESYNC, WAIT_FOR_PODS, purge_expired, reconcile};
use super::push::fake::FakeEndpoint;
use super::soft_delete::{DELETED_LABEL, PURGE_AFTER_ANNOTATION, VAULT_FINALIZER};
use super::status::{self, Outcome, Rollout};
use super::{FIELD_MANAGER, OperatorSettings, fixtures};
use crate::api::{Vault, VaultSpec};
use crate::policy::BuiltInRole;
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

mod sync;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
type Reply = tower_test::mock::SendResponse<Response<Body>>;

const NS: &str = "team-a";
const NAME: &str = "payments";

fn context() -> (Arc<Context>, ApiServer) {
    context_with(Arc::new(FakeEndpoint::default()))
}

/// A context whose policy pushes go to `vault` (an in-memory vault).
fn context_with(vault: Arc<FakeEndpoint>) -> (Arc<Context>, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let ca = Arc::new(Ca::generate(1_790_000_000).unwrap());
    let ctx = Context::new(
        client,
        OperatorSettings::test(),
        Metrics::default(),
        ca,
        vault,
    );
    (Arc::new(ctx), ApiServer(handle))
}

/// One request as the mock received it.
#[derive(Debug)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

impl Seen {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// A server-side apply by the operator's one field manager, forced.
    fn assert_apply(&self, path: &str) {
        assert_eq!(self.method, Method::PATCH, "{}", self.path);
        assert_eq!(self.path, path);
        assert_eq!(
            self.param("fieldManager"),
            Some(FIELD_MANAGER),
            "{}",
            self.query
        );
        assert_eq!(self.param("force"), Some("true"), "{}", self.query);
        assert_eq!(self.content_type, "application/apply-patch+yaml");
    }
}

struct ApiServer(Handle);

impl ApiServer {
    async fn next(&mut self) -> (Seen, Reply) {
        let (req, reply) = self
            .0
            .next_request()
            .await
            .expect("the reconcile stopped sending requests");
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        super::rbac::check::assert_allowed(method.as_str(), &path, &query);
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (
            Seen {
                method,
                path,
                query,
                content_type,
                body,
            },
            reply,
        )
    }

    /// Takes the next request and answers `status` with `body`.
    async fn answer(&mut self, status: StatusCode, body: impl FnOnce(&Seen) -> Value) -> Seen {
        let (seen, reply) = self.next().await;
        let out = serde_json::to_vec(&body(&seen)).unwrap();
        reply.send_response(
            Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(out))
                .unwrap(),
        );
        seen
    }

    /// Answers with the request's own body (what an apply or create returns, near enough).
    async fn echo(&mut self, status: StatusCode) -> Seen {
        self.answer(status, |s| s.body.clone()).await
    }

    async fn not_found(&mut self) -> Seen {
        self.answer(StatusCode::NOT_FOUND, |s| {
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("{} not found", s.path), "reason": "NotFound", "code": 404
            })
        })
        .await
    }

    /// The server certificate (issued: there is none yet), the CA ConfigMap, the cluster's
    /// JWKS and its ConfigMap.
    async fn certificate_and_jwks(&mut self) {
        self.certificate_and_jwks_with(true).await
    }

    /// `fetch`: whether the JWKS is fetched (it is reused for a while once fetched).
    async fn certificate_and_jwks_with(&mut self, fetch: bool) {
        let core = format!("/api/v1/namespaces/{NS}");
        let get = self.not_found().await;
        assert_eq!(get.method, Method::GET);
        assert_eq!(get.path, format!("{core}/secrets/{NAME}-tls"));
        let tls = self.echo(StatusCode::OK).await;
        tls.assert_apply(&format!("{core}/secrets/{NAME}-tls"));
        assert_eq!(tls.body["type"], "kubernetes.io/tls");
        assert_eq!(tls.body["metadata"]["ownerReferences"][0]["kind"], "Vault");
        assert!(tls.body["metadata"]["annotations"]["kvault.dev/not-after"].is_string());
        let ca = self.echo(StatusCode::OK).await;
        ca.assert_apply(&format!("{core}/configmaps/kvault-ca"));
        assert!(
            ca.body["data"]["ca.crt"]
                .as_str()
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        if fetch {
            let (jwks, reply) = self.next().await;
            assert_eq!(
                (jwks.method, jwks.path.as_str()),
                (Method::GET, "/openid/v1/jwks")
            );
            reply.send_response(
                Response::builder()
                    .status(StatusCode::OK)
                    .body(Body::from(
                        br#"{"keys":[{"kty":"EC","kid":"k1"}]}"#.to_vec(),
                    ))
                    .unwrap(),
            );
        }
        let cm = self.echo(StatusCode::OK).await;
        cm.assert_apply(&format!("{core}/configmaps/{NAME}-cluster-jwks"));
        assert_eq!(
            cm.body["data"]["jwks.json"],
            r#"{"keys":[{"kty":"EC","kid":"k1"}]}"#
        );
    }

    /// The objects every valid vault gets, applied in this order; no PDB with one replica.
    async fn objects_applied(&mut self) {
        self.objects_applied_with(false).await
    }

    /// With `serving`, the StatefulSet comes back with all its pods ready.
    async fn objects_applied_with(&mut self, serving: bool) {
        self.certificate_and_jwks().await;
        self.owned_objects_applied(serving).await;
    }

    async fn objects_applied_after_certificate(&mut self) {
        self.owned_objects_applied(false).await;
    }

    async fn owned_objects_applied(&mut self, serving: bool) {
        let core = format!("/api/v1/namespaces/{NS}");
        self.echo(StatusCode::OK)
            .await
            .assert_apply(&format!("{core}/serviceaccounts/{NAME}"));
        self.echo(StatusCode::OK)
            .await
            .assert_apply(&format!("{core}/services/{NAME}"));
        // The StatefulSet as it is, for a change of its volumes (none yet).
        let current = self.not_found().await;
        assert_eq!(current.method, Method::GET);
        assert_eq!(
            current.path,
            format!("/apis/apps/v1/namespaces/{NS}/statefulsets/{NAME}")
        );
        let sts = self
            .answer(StatusCode::OK, |s| {
                let mut sts = s.body.clone();
                if serving {
                    sts["metadata"]["generation"] = json!(1);
                    sts["status"] = json!({
                        "observedGeneration": 1, "replicas": 1, "readyReplicas": 1,
                        "updatedReplicas": 1, "currentRevision": "r1", "updateRevision": "r1"
                    });
                }
                sts
            })
            .await;
        sts.assert_apply(&format!(
            "/apis/apps/v1/namespaces/{NS}/statefulsets/{NAME}"
        ));
        assert_eq!(sts.body["kind"], "StatefulSet");
        assert_eq!(sts.body["metadata"]["ownerReferences"][0]["kind"], "Vault");
        self.echo(StatusCode::OK).await.assert_apply(&format!(
            "/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/{NAME}"
        ));
        let pdb = self.not_found().await;
        assert_eq!(pdb.method, Method::DELETE);
        assert_eq!(
            pdb.path,
            format!("/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{NAME}")
        );
        if !serving {
            // Not ready yet: the pods are asked why (none has trouble here).
            let pods = self
                .answer(StatusCode::OK, |_| {
                    json!({"apiVersion": "v1", "kind": "PodList",
                           "metadata": {"resourceVersion": "1"}, "items": []})
                })
                .await;
            assert_eq!(pods.path, format!("/api/v1/namespaces/{NS}/pods"));
        }
    }

    async fn status_patched(&mut self) -> Seen {
        let s = self.answer(StatusCode::OK, vault_with_status).await;
        s.assert_apply(&format!(
            "/apis/kvault.dev/v1alpha1/namespaces/{NS}/vaults/{NAME}/status"
        ));
        assert_eq!(s.body["kind"], "Vault");
        s
    }

    async fn event_published(&mut self) -> Seen {
        let e = self.echo(StatusCode::CREATED).await;
        assert_eq!(e.method, Method::POST);
        assert_eq!(
            e.path,
            format!("/apis/events.k8s.io/v1/namespaces/{NS}/events")
        );
        e
    }
}

/// The API server answers a status patch with the whole object.
fn vault_with_status(patch: &Seen) -> Value {
    let name = patch.path.rsplit('/').nth(1).unwrap_or_default();
    let mut v = patch.body.clone();
    v["metadata"] = json!({"name": name, "namespace": NS, "generation": 1});
    v["spec"] = json!({});
    v
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out: a request the test expected was never sent")
}

fn new_vault(name: &str) -> Arc<Vault> {
    Arc::new(finalized(fixtures::vault(NS, name, VaultSpec::default())))
}

/// A Vault as it is after its first pass: with the soft-delete finalizer.
fn finalized(mut v: Vault) -> Vault {
    v.metadata.finalizers = Some(vec![VAULT_FINALIZER.into()]);
    v
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()
}

#[tokio::test]
async fn a_new_vault_gets_its_objects_applied_and_its_status_patched() {
    let (ctx, mut api) = context();
    let server = tokio::spawn(async move {
        // The master key does not exist: only its metadata is read, then it is created.
        let get = api.not_found().await;
        assert_eq!(get.method, Method::GET);
        assert_eq!(
            get.path,
            format!("/api/v1/namespaces/{NS}/secrets/{NAME}-master-key")
        );
        // Nor was it relocated from a deleted namespace of that name.
        let copy = api.not_found().await;
        assert_eq!(
            copy.path,
            "/api/v1/namespaces/kvault-system/secrets/kvault-kept.team-a.payments"
        );
        let create = api.echo(StatusCode::CREATED).await;
        assert_eq!(create.method, Method::POST);
        assert_eq!(create.path, format!("/api/v1/namespaces/{NS}/secrets"));
        assert_eq!(create.param("fieldManager"), Some(FIELD_MANAGER));
        assert_eq!(create.body["metadata"]["name"], "payments-master-key");
        assert_eq!(create.body["immutable"], true);
        assert!(create.body["data"]["master.key"].is_string());
        // Not owned by the Vault: soft delete keeps it.
        assert!(create.body["metadata"]["ownerReferences"].is_null());

        api.objects_applied().await;
        let status = api.status_patched().await;
        let event = api.event_published().await;
        (status, event)
    });
    let action = within(reconcile(new_vault(NAME), ctx)).await.unwrap();
    // No pods yet (the mock's StatefulSet has no status): check again soon.
    assert_eq!(action, Action::requeue(WAIT_FOR_PODS));

    let (status, event) = within(server).await.unwrap();
    let st = &status.body["status"];
    assert_eq!(st["vaultUri"], "https://payments.team-a.svc");
    assert_eq!(st["observedGeneration"], 1);
    assert_eq!(condition(st, "Ready")["status"], "False");
    assert_eq!(condition(st, "Ready")["reason"], "PodsNotReady");
    assert_eq!(condition(st, "Progressing")["status"], "True");
    assert_eq!(condition(st, "Degraded")["status"], "False");
    assert_eq!(event.body["reason"], "PodsNotReady");
    assert_eq!(event.body["type"], "Normal");
    assert_eq!(event.body["regarding"]["name"], NAME);
}

#[tokio::test]
async fn the_master_key_secret_is_not_overwritten_when_it_exists() {
    let (ctx, mut api) = context();
    let server = tokio::spawn(async move {
        let get = api
            .answer(StatusCode::OK, |_| {
                json!({
                    "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                    "metadata": {"name": "payments-master-key", "namespace": NS}
                })
            })
            .await;
        assert_eq!(get.method, Method::GET);
        assert_eq!(
            get.path,
            format!("/api/v1/namespaces/{NS}/secrets/{NAME}-master-key")
        );
        // Straight on to the certificate and the owned objects: no create, no apply, no
        // update of the master-key Secret.
        api.objects_applied().await;
        api.status_patched().await;
        api.event_published().await;
    });
    within(reconcile(new_vault(NAME), ctx)).await.unwrap();
    within(server).await.unwrap();
}

#[tokio::test]
async fn an_unchanged_vault_gets_no_status_patch_and_no_event() {
    let (ctx, mut api) = context();
    let mut vault = finalized(fixtures::vault(NS, NAME, VaultSpec::default()));
    let earlier = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
    );
    let pending = Outcome::Applied(Rollout {
        desired: 1,
        ..Default::default()
    });
    vault.status = Some(status::vault_status(&vault, &pending, &earlier));
    let server = tokio::spawn(async move {
        api.answer(StatusCode::OK, |_| {
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                   "metadata": {"name": "payments-master-key"}})
        })
        .await;
        api.objects_applied().await;
        // Nothing else: the handle is dropped here, so a status patch would fail the
        // reconcile.
    });
    let action = within(reconcile(Arc::new(vault), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(WAIT_FOR_PODS));
    within(server).await.unwrap();
}

#[tokio::test]
async fn an_invalid_name_creates_nothing_and_says_why() {
    let (ctx, mut api) = context();
    // Not a DNS label: it could not name the Service or the StatefulSet.
    let name = "9-lives";
    let server = tokio::spawn(async move {
        let status = api.answer(StatusCode::OK, vault_with_status).await;
        status.assert_apply(&format!(
            "/apis/kvault.dev/v1alpha1/namespaces/{NS}/vaults/{name}/status"
        ));
        let event = api.event_published().await;
        (status, event)
    });
    let action = within(reconcile(new_vault(name), ctx)).await.unwrap();
    assert_eq!(action, Action::await_change());
    let (status, event) = within(server).await.unwrap();
    let st = &status.body["status"];
    assert_eq!(condition(st, "Degraded")["status"], "True");
    assert_eq!(condition(st, "Degraded")["reason"], "InvalidName");
    assert!(
        condition(st, "Ready")["message"]
            .as_str()
            .unwrap()
            .contains("9-lives")
    );
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["reason"], "InvalidName");
}

fn master_key_exists(_: &Seen) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
           "metadata": {"name": "payments-master-key", "namespace": NS}})
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "kvault.dev/v1alpha1", "kind": format!("{kind}List"),
           "metadata": {"resourceVersion": "1"}, "items": items})
}

fn web_reads_secrets() -> Value {
    let g = fixtures::role_assignment(
        NS,
        "web-reads",
        NAME,
        BuiltInRole::SecretsUser,
        fixtures::sa("web"),
    );
    serde_json::to_value(g).unwrap()
}

fn other_vaults_grant() -> Value {
    let g = fixtures::role_assignment(
        NS,
        "elsewhere",
        "other",
        BuiltInRole::Reader,
        fixtures::sa("web"),
    );
    serde_json::to_value(g).unwrap()
}

/// Lists the grants of the namespace: no access policies, the given role assignments.
async fn grants_listed(api: &mut ApiServer, role_assignments: Vec<Value>) {
    let aps = api
        .answer(StatusCode::OK, |_| list("AccessPolicy", vec![]))
        .await;
    assert_eq!(aps.method, Method::GET);
    assert_eq!(
        aps.path,
        format!("/apis/kvault.dev/v1alpha1/namespaces/{NS}/accesspolicies")
    );
    let ras = api
        .answer(StatusCode::OK, move |_| {
            list("RoleAssignment", role_assignments)
        })
        .await;
    assert_eq!(
        ras.path,
        format!("/apis/kvault.dev/v1alpha1/namespaces/{NS}/roleassignments")
    );
}

/// The API server answers a grant's status patch with the whole grant.
fn grant_with_status(patch: &Seen) -> Value {
    let mut g = web_reads_secrets();
    g["status"] = patch.body["status"].clone();
    g
}

#[tokio::test]
async fn a_ready_vault_gets_its_policy_pushed_and_its_grants_report_applied() {
    let vault_side = Arc::new(FakeEndpoint::default());
    let (ctx, mut api) = context_with(vault_side.clone());
    let server = tokio::spawn(async move {
        api.answer(StatusCode::OK, master_key_exists).await;
        api.objects_applied_with(true).await;
        grants_listed(&mut api, vec![web_reads_secrets(), other_vaults_grant()]).await;
        // The policy goes to the vault here (the fake), then each grant of this vault
        // says whether it is enforced; the other vault's grant is not touched.
        let grant = api.answer(StatusCode::OK, grant_with_status).await;
        grant.assert_apply(&format!(
            "/apis/kvault.dev/v1alpha1/namespaces/{NS}/roleassignments/web-reads/status"
        ));
        let status = api.status_patched().await;
        let event = api.event_published().await;
        (grant, status, event)
    });
    let action = within(reconcile(new_vault(NAME), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(RESYNC));
    let (grant, status, event) = within(server).await.unwrap();

    assert_eq!(*vault_side.puts.lock().unwrap(), vec![1]);
    let pushed = vault_side.held.lock().unwrap().clone().unwrap();
    assert_eq!(pushed.role_assignments.len(), 1);

    let g = &grant.body["status"];
    assert_eq!(condition(g, "Applied")["status"], "True");
    assert_eq!(g["appliedPolicyGeneration"], 1);
    let st = &status.body["status"];
    assert_eq!(condition(st, "Ready")["status"], "True");
    assert_eq!(condition(st, "Ready")["reason"], "Serving");
    assert_eq!(st["appliedPolicyGeneration"], 1);
    assert!(
        st["appliedPolicyDigest"]
            .as_str()
            .is_some_and(|d| d.len() == 64)
    );
    assert_eq!(event.body["reason"], "Serving");
}

#[tokio::test]
async fn a_changed_grant_pushes_the_next_generation_and_a_conflict_is_resolved() {
    // The vault holds generation 5 (recovered, say) while the status remembers 1 with
    // another content: the operator pushes 2, is refused, reads 5 and pushes 6.
    let vault_side = Arc::new(FakeEndpoint::holding(5));
    let (ctx, mut api) = context_with(vault_side.clone());
    let mut vault = finalized(fixtures::vault(NS, NAME, VaultSpec::default()));
    vault.status = Some(crate::api::VaultStatus {
        applied_policy_generation: Some(1),
        applied_policy_digest: Some("content before the grant changed".into()),
        ..Default::default()
    });
    let server = tokio::spawn(async move {
        api.answer(StatusCode::OK, master_key_exists).await;
        api.objects_applied_with(true).await;
        grants_listed(&mut api, vec![web_reads_secrets()]).await;
        api.answer(StatusCode::OK, grant_with_status).await;
        let status = api.status_patched().await;
        api.event_published().await;
        status
    });
    within(reconcile(Arc::new(vault), ctx)).await.unwrap();
    let status = within(server).await.unwrap();
    assert_eq!(*vault_side.puts.lock().unwrap(), vec![2, 6]);
    assert_eq!(status.body["status"]["appliedPolicyGeneration"], 6);
}

#[tokio::test]
async fn a_new_vault_first_gets_the_soft_delete_finalizer() {
    let (ctx, mut api) = context();
    let server = tokio::spawn(async move {
        // Read fresh first: the cache may not have seen a finalizer added a moment ago.
        let get = api
            .answer(StatusCode::OK, |_| {
                serde_json::to_value(fixtures::vault(NS, NAME, VaultSpec::default())).unwrap()
            })
            .await;
        assert_eq!(get.method, Method::GET);
        assert_eq!(
            get.path,
            format!("/apis/kvault.dev/v1alpha1/namespaces/{NS}/vaults/{NAME}")
        );
        let add = api
            .answer(StatusCode::OK, |_| {
                let mut v = serde_json::to_value(finalized(fixtures::vault(
                    NS,
                    NAME,
                    VaultSpec::default(),
                )))
                .unwrap();
                v["metadata"]["finalizers"] = json!([VAULT_FINALIZER]);
                v
            })
            .await;
        assert_eq!(add.method, Method::PATCH);
        assert_eq!(
            add.path,
            format!("/apis/kvault.dev/v1alpha1/namespaces/{NS}/vaults/{NAME}")
        );
        assert_eq!(add.content_type, "application/json-patch+json");
        assert!(add.body.to_string().contains(VAULT_FINALIZER));
    });
    let fresh = Arc::new(fixtures::vault(NS, NAME, VaultSpec::default()));
    // Nothing else this pass: the finalizer's own change brings the vault back.
    assert_eq!(
        within(reconcile(fresh, ctx)).await.unwrap(),
        Action::await_change()
    );
    within(server).await.unwrap();
}

/// `kubectl apply` of a Vault and its grants triggers several reconciles; one may run on a
/// cached Vault that does not show the finalizer the previous one added. It must not send a
/// finalizer patch the API server refuses (422 on every apply of the walkthrough before).
#[tokio::test]
async fn a_stale_cached_vault_without_the_finalizer_is_read_fresh_and_not_patched() {
    let (ctx, mut api) = context();
    let ctx2 = ctx.clone();
    let server = tokio::spawn(async move {
        let get = api
            .answer(StatusCode::OK, |_| {
                serde_json::to_value(finalized(fixtures::vault(NS, NAME, VaultSpec::default())))
                    .unwrap()
            })
            .await;
        assert_eq!(get.method, Method::GET);
        // Then the ordinary pass of a vault that has its finalizer: the master key first.
        let next = api.not_found().await;
        assert_eq!(next.method, Method::GET, "{}", next.path);
        assert!(
            next.path.ends_with("/secrets/payments-master-key"),
            "{}",
            next.path
        );
    });
    let stale = Arc::new(fixtures::vault(NS, NAME, VaultSpec::default()));
    let _ = tokio::time::timeout(Duration::from_secs(2), reconcile(stale, ctx)).await;
    within(server).await.unwrap();
    // And a refused finalizer patch (the same race, lost) is no failure: a quick retry.
    let refused = kube::Error::Api(
        kube::core::Status::failure("the server rejected our request", "Invalid")
            .with_code(422)
            .boxed(),
    );
    let e = super::controller::Error::Finalizer(Box::new(
        kube::runtime::finalizer::Error::AddFinalizer(refused),
    ));
    assert!(super::controller::is_stale_finalizer_patch(&e));
    let vault = Arc::new(fixtures::vault(NS, NAME, VaultSpec::default()));
    assert_eq!(
        super::controller::error_policy(vault, &e, ctx2.clone()),
        Action::requeue(Duration::from_secs(1))
    );
}

#[tokio::test]
async fn deleting_a_vault_keeps_its_master_key_and_volumes_with_a_purge_time() {
    let (ctx, mut api) = context();
    let mut spec = VaultSpec::default();
    spec.soft_delete.retention_days = 7;
    spec.soft_delete.purge_protection = true;
    let mut vault = finalized(fixtures::vault(NS, NAME, spec));
    vault.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    let server = tokio::spawn(async move {
        let core = format!("/api/v1/namespaces/{NS}");
        // Not relocated: its namespace stays.
        let namespace = api
            .answer(
                StatusCode::OK,
                |_| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
            )
            .await;
        assert_eq!(namespace.path, format!("/api/v1/namespaces/{NS}"));
        api.answer(StatusCode::OK, master_key_exists).await;
        let key = api.answer(StatusCode::OK, master_key_exists).await;
        assert_eq!(key.method, Method::PATCH);
        assert_eq!(key.path, format!("{core}/secrets/{NAME}-master-key"));
        assert_eq!(key.content_type, "application/merge-patch+json");
        let list = api
            .answer(StatusCode::OK, |_| {
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                       "metadata": {}, "items": [{"apiVersion": "meta.k8s.io/v1",
                       "kind": "PartialObjectMetadata", "metadata": {"name": "data-payments-0",
                       "namespace": NS, "finalizers": ["kubernetes.io/pvc-protection"]}}]})
            })
            .await;
        assert_eq!(list.path, format!("{core}/persistentvolumeclaims"));
        assert_eq!(
            list.param("labelSelector"),
            Some("kvault.dev%2Fvault%3Dpayments")
        );
        let pvc = api
            .answer(StatusCode::OK, |_| {
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                       "metadata": {"name": "data-payments-0", "namespace": NS}})
            })
            .await;
        assert_eq!(
            pvc.path,
            format!("{core}/persistentvolumeclaims/data-payments-0")
        );
        // The namespace stays: nothing moves.
        let namespace = api
            .answer(
                StatusCode::OK,
                |_| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
            )
            .await;
        assert_eq!(namespace.path, format!("/api/v1/namespaces/{NS}"));
        api.event_published().await;
        let done = api
            .answer(StatusCode::OK, |_| {
                let mut v =
                    serde_json::to_value(fixtures::vault(NS, NAME, VaultSpec::default())).unwrap();
                v["metadata"]["finalizers"] = json!([]);
                v
            })
            .await;
        assert_eq!(done.method, Method::PATCH);
        assert_eq!(
            done.path,
            format!("/apis/kvault.dev/v1alpha1/namespaces/{NS}/vaults/{NAME}")
        );
        (key, pvc)
    });
    assert_eq!(
        within(reconcile(Arc::new(vault), ctx)).await.unwrap(),
        Action::await_change()
    );
    let (key, pvc) = within(server).await.unwrap();
    for kept in [&key.body, &pvc.body] {
        assert_eq!(kept["metadata"]["labels"][DELETED_LABEL], "true");
        assert!(kept["metadata"]["annotations"][PURGE_AFTER_ANNOTATION].is_string());
        assert!(
            kept["metadata"]["finalizers"]
                .as_array()
                .unwrap()
                .contains(&json!("kvault.dev/purge-protection"))
        );
    }
    // The PVC's own protection is kept.
    assert!(
        pvc.body["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .contains(&json!("kubernetes.io/pvc-protection"))
    );
}

#[tokio::test]
async fn a_new_vault_over_a_deleted_ones_data_is_refused_without_recover() {
    let (ctx, mut api) = context();
    let server = tokio::spawn(async move {
        api.answer(StatusCode::OK, |_| {
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                   "metadata": {"name": "payments-master-key", "namespace": NS,
                     "labels": {DELETED_LABEL: "true"},
                     "annotations": {PURGE_AFTER_ANNOTATION: "2027-01-01T00:00:00Z"}}})
        })
        .await;
        // Nothing is created or applied: only the status says why.
        let status = api.status_patched().await;
        api.event_published().await;
        status
    });
    assert_eq!(
        within(reconcile(new_vault(NAME), ctx)).await.unwrap(),
        Action::await_change()
    );
    let status = within(server).await.unwrap();
    let degraded = condition(&status.body["status"], "Degraded");
    assert_eq!(degraded["reason"], "DeletedVaultExists");
    assert!(
        degraded["message"]
            .as_str()
            .unwrap()
            .contains("createMode: Recover")
    );
}

fn kept_key(purge_after: &str) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
           "metadata": {"name": "payments-master-key", "namespace": NS,
             "labels": {DELETED_LABEL: "true", "kvault.dev/vault": NAME},
             "annotations": {PURGE_AFTER_ANNOTATION: purge_after},
             "finalizers": ["kvault.dev/purge-protection"]}})
}

fn kept_pvcs() -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {},
           "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
             "metadata": {"name": "data-payments-0", "namespace": NS,
               "labels": {DELETED_LABEL: "true", "kvault.dev/vault": NAME},
               "finalizers": ["kubernetes.io/pvc-protection", "kvault.dev/purge-protection"]}}]})
}

#[tokio::test]
async fn recover_takes_back_the_deleted_vaults_key_and_volumes() {
    let (ctx, mut api) = context();
    let spec = VaultSpec {
        create_mode: crate::api::CreateMode::Recover,
        ..Default::default()
    };
    let vault = Arc::new(finalized(fixtures::vault(NS, NAME, spec)));
    let server = tokio::spawn(async move {
        let core = format!("/api/v1/namespaces/{NS}");
        api.answer(StatusCode::OK, |_| kept_key("2027-01-01T00:00:00Z"))
            .await;
        let key = api
            .answer(StatusCode::OK, |_| kept_key("2027-01-01T00:00:00Z"))
            .await;
        assert_eq!(
            (key.method.clone(), key.path.as_str()),
            (
                Method::PATCH,
                format!("{core}/secrets/{NAME}-master-key").as_str()
            )
        );
        assert_eq!(key.body["metadata"]["labels"][DELETED_LABEL], Value::Null);
        assert_eq!(key.body["metadata"]["finalizers"], json!([]));
        api.answer(StatusCode::OK, |_| kept_pvcs()).await;
        let pvc = api
            .answer(StatusCode::OK, |_| kept_pvcs()["items"][0].clone())
            .await;
        assert_eq!(
            pvc.path,
            format!("{core}/persistentvolumeclaims/data-payments-0")
        );
        assert_eq!(
            pvc.body["metadata"]["finalizers"],
            json!(["kubernetes.io/pvc-protection"])
        );
        let recovered = api.event_published().await;
        assert_eq!(recovered.body["reason"], "Recovered");
        // Then the usual pass, on the same key (no new one is created).
        api.objects_applied().await;
        api.status_patched().await;
        api.event_published().await;
    });
    within(reconcile(vault, ctx)).await.unwrap();
    within(server).await.unwrap();
}

#[tokio::test]
async fn recover_with_nothing_kept_is_refused() {
    let (ctx, mut api) = context();
    let spec = VaultSpec {
        create_mode: crate::api::CreateMode::Recover,
        ..Default::default()
    };
    let vault = Arc::new(finalized(fixtures::vault(NS, NAME, spec)));
    let server = tokio::spawn(async move {
        api.not_found().await;
        // No relocated copy either.
        api.not_found().await;
        let status = api.status_patched().await;
        api.event_published().await;
        status
    });
    within(reconcile(vault, ctx)).await.unwrap();
    let status = within(server).await.unwrap();
    assert_eq!(
        condition(&status.body["status"], "Degraded")["reason"],
        "NothingToRecover"
    );
}

#[tokio::test]
async fn kept_objects_are_purged_after_the_retention_period() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut api = ApiServer(handle);
    let server = tokio::spawn(async move {
        let core = format!("/api/v1/namespaces/{NS}");
        let list = api
            .answer(StatusCode::OK, |_| {
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                       "metadata": {}, "items": [kept_key("2026-01-01T00:00:00Z")]})
            })
            .await;
        assert_eq!(list.path, "/api/v1/secrets");
        assert_eq!(
            list.param("labelSelector"),
            Some("kvault.dev%2Fdeleted%3Dtrue%2C%21kvault.dev%2Fvault-namespace")
        );
        // No relocated copy in the operator's namespace.
        let copies = api
            .answer(
                StatusCode::OK,
                |_| json!({"apiVersion": "v1", "kind": "SecretList", "metadata": {}, "items": []}),
            )
            .await;
        assert_eq!(copies.path, "/api/v1/namespaces/kvault-system/secrets");
        // Its namespace is not being deleted.
        let namespace = api
            .answer(
                StatusCode::OK,
                |_| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
            )
            .await;
        assert_eq!(namespace.path, format!("/api/v1/namespaces/{NS}"));
        // No Vault of that name again.
        let vault = api.not_found().await;
        assert_eq!(
            vault.path,
            format!("/apis/kvault.dev/v1alpha1/namespaces/{NS}/vaults/{NAME}")
        );
        api.answer(StatusCode::OK, |_| kept_pvcs()).await;
        let unprotect = api
            .answer(StatusCode::OK, |_| kept_pvcs()["items"][0].clone())
            .await;
        assert_eq!(
            unprotect.body["metadata"]["finalizers"],
            json!(["kubernetes.io/pvc-protection"])
        );
        let del = api.answer(StatusCode::OK, |_| json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})).await;
        assert_eq!(
            (del.method.clone(), del.path.clone()),
            (
                Method::DELETE,
                format!("{core}/persistentvolumeclaims/data-payments-0")
            )
        );
        api.answer(StatusCode::OK, |_| kept_key("2026-01-01T00:00:00Z"))
            .await;
        let del = api.answer(StatusCode::OK, |_| json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})).await;
        assert_eq!(
            (del.method.clone(), del.path.clone()),
            (Method::DELETE, format!("{core}/secrets/{NAME}-master-key"))
        );
    });
    let now = k8s_openapi::jiff::Timestamp::from_second(1_790_000_000)
        .unwrap()
        .as_second();
    assert_eq!(
        within(purge_expired(
            &client,
            &crate::operator::scope::WatchScope::Cluster,
            "kvault-system",
            now
        ))
        .await
        .unwrap(),
        1
    );
    within(server).await.unwrap();
}

#[tokio::test]
async fn the_leader_lease_is_created_when_free_and_not_taken_while_held() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut api = ApiServer(handle);
    let server = tokio::spawn(async move {
        let path = "/apis/coordination.k8s.io/v1/namespaces/kvault-system/leases";
        let get = api.not_found().await;
        assert_eq!(get.path, format!("{path}/kvault-operator"));
        let create = api.echo(StatusCode::CREATED).await;
        assert_eq!(
            (create.method.clone(), create.path.as_str()),
            (Method::POST, path)
        );
        assert_eq!(create.body["spec"]["holderIdentity"], "replica-a");
        // Replica b finds it held and fresh: it waits, writing nothing.
        let held = create.body.clone();
        api.answer(StatusCode::OK, move |_| held).await;
    });
    assert!(
        within(super::leader::try_hold(
            &client,
            "kvault-system",
            "replica-a"
        ))
        .await
        .unwrap()
    );
    assert!(
        !within(super::leader::try_hold(
            &client,
            "kvault-system",
            "replica-b"
        ))
        .await
        .unwrap()
    );
    within(server).await.unwrap();
}

#[tokio::test]
async fn a_grant_of_a_missing_vault_says_vault_not_found() {
    let (ctx, mut api) = context();
    let grant = Arc::new(fixtures::access_policy(
        NS,
        "worker",
        "nowhere",
        fixtures::sa("web"),
    ));
    let server = tokio::spawn(async move {
        let get = api.not_found().await;
        assert_eq!(
            get.path,
            format!("/apis/kvault.dev/v1alpha1/namespaces/{NS}/vaults/nowhere")
        );
        let patch = api
            .answer(StatusCode::OK, |p| {
                let mut g = serde_json::to_value(fixtures::access_policy(
                    NS,
                    "worker",
                    "nowhere",
                    fixtures::sa("web"),
                ))
                .unwrap();
                g["status"] = p.body["status"].clone();
                g
            })
            .await;
        patch.assert_apply(&format!(
            "/apis/kvault.dev/v1alpha1/namespaces/{NS}/accesspolicies/worker/status"
        ));
        patch
    });
    let action = within(super::controller::reconcile_grant(grant, ctx))
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(super::controller::GRANT_RECHECK));
    let patch = within(server).await.unwrap();
    let applied = condition(&patch.body["status"], "Applied");
    assert_eq!(applied["status"], "False");
    assert_eq!(applied["reason"], "VaultNotFound");
}

#[tokio::test]
async fn the_cluster_jwks_is_fetched_once_and_reused() {
    let (ctx, mut api) = context();
    let server = tokio::spawn(async move {
        api.answer(StatusCode::OK, master_key_exists).await;
        api.objects_applied().await;
        api.status_patched().await;
        api.event_published().await;
        // Second pass (the vault still has no status: the mock does not store it).
        api.answer(StatusCode::OK, master_key_exists).await;
        api.certificate_and_jwks_with(false).await;
        api.objects_applied_after_certificate().await;
        api.status_patched().await;
    });
    within(reconcile(new_vault(NAME), ctx.clone()))
        .await
        .unwrap();
    within(reconcile(new_vault(NAME), ctx)).await.unwrap();
    within(server).await.unwrap();
}

#[tokio::test]
async fn a_missing_crd_stops_the_operator_with_instructions() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut api = ApiServer(handle);
    let server = tokio::spawn(async move {
        let vaults = api.answer(StatusCode::OK, |_| list("Vault", vec![])).await;
        assert_eq!(vaults.path, "/apis/kvault.dev/v1alpha1/vaults");
        assert_eq!(vaults.param("limit"), Some("1"));
        api.answer(StatusCode::OK, |_| list("AccessPolicy", vec![]))
            .await;
        api.not_found().await;
    });
    let err = within(super::app::check_crds(
        &client,
        &crate::operator::scope::WatchScope::Cluster,
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("roleassignments.kvault.dev is not installed"),
        "{err}"
    );
    assert!(err.contains("kubectl apply -f crds/"), "{err}");
    within(server).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_vault_leaves_the_policy_unapplied_and_says_why() {
    let unreachable = Arc::new(FakeEndpoint {
        down: true,
        ..Default::default()
    });
    let (ctx, mut api) = context_with(unreachable);
    let server = tokio::spawn(async move {
        api.answer(StatusCode::OK, master_key_exists).await;
        api.objects_applied_with(true).await;
        grants_listed(&mut api, vec![web_reads_secrets()]).await;
        // No grant status: nothing was applied. The vault says why.
        let status = api.status_patched().await;
        let event = api.event_published().await;
        (status, event)
    });
    let action = within(reconcile(new_vault(NAME), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(WAIT_FOR_PODS));
    let (status, event) = within(server).await.unwrap();
    let st = &status.body["status"];
    assert_eq!(condition(st, "Ready")["reason"], "PolicyNotApplied");
    assert_eq!(condition(st, "Degraded")["status"], "True");
    assert!(
        condition(st, "Ready")["message"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );
    assert!(st["appliedPolicyGeneration"].is_null());
    assert_eq!(event.body["type"], "Warning");
}

#[tokio::test]
async fn notifications_take_their_header_from_a_secret_and_expiring_objects_become_events() {
    use crate::wire::{ExpiringObject, ExpiryReport};
    let vault_side = Arc::new(FakeEndpoint::default());
    *vault_side.expiring.lock().unwrap() = ExpiryReport {
        near_expiry_days: 30,
        count: 2,
        value: vec![
            ExpiringObject {
                event_type: "Microsoft.KeyVault.SecretExpired".into(),
                object_type: "Secret".into(),
                object_name: "db-password".into(),
                version: "0123456789abcdef0123456789abcdef".into(),
                exp: 1_700_000_000,
            },
            ExpiringObject {
                event_type: "Microsoft.KeyVault.CertificateNearExpiry".into(),
                object_type: "Certificate".into(),
                object_name: "web".into(),
                version: "fedcba9876543210fedcba9876543210".into(),
                exp: 1_800_000_000,
            },
        ],
    };
    let (ctx, mut api) = context_with(vault_side.clone());
    let spec = VaultSpec {
        notifications: Some(
            serde_json::from_value(json!({"subscriptions": [{
                "name": "ops",
                "endpoint": "https://hooks.example.test/kv",
                "authHeader": {"name": "Authorization",
                               "secretKeyRef": {"name": "ops-hook", "key": "header"}}
            }]}))
            .unwrap(),
        ),
        ..Default::default()
    };
    let vault = Arc::new(finalized(fixtures::vault(NS, NAME, spec)));
    let server = tokio::spawn(async move {
        api.answer(StatusCode::OK, master_key_exists).await;
        api.objects_applied_with(true).await;
        grants_listed(&mut api, vec![]).await;
        // The header's Secret is read (it carries the opt-in label) before the push.
        let secret = api
            .answer(StatusCode::OK, |_| {
                json!({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "ops-hook", "namespace": NS, "uid": "s1",
                                    "resourceVersion": "9",
                                    "labels": {"kvault.dev/event-auth": "true"}},
                       "data": {"header": "QmVhcmVyIGZyb20tc2VjcmV0"}})
            })
            .await;
        assert_eq!(secret.method, Method::GET);
        assert_eq!(
            secret.path,
            format!("/api/v1/namespaces/{NS}/secrets/ops-hook")
        );
        let status = api.status_patched().await;
        let ready = api.event_published().await;
        // Then one Warning per expiring object.
        let expired = api.event_published().await;
        let near = api.event_published().await;
        (status, ready, expired, near)
    });
    let action = within(reconcile(vault, ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(RESYNC));
    let (status, ready, expired, near) = within(server).await.unwrap();

    let pushed = vault_side.held.lock().unwrap().clone().unwrap();
    let sub = &pushed.events.as_ref().unwrap().subscriptions[0];
    let header = sub.auth_header.as_ref().unwrap();
    assert_eq!(
        header.value.as_ref().unwrap().expose(),
        "Bearer from-secret"
    );
    // The value reaches neither the status nor an event.
    for seen in [&status, &ready, &expired, &near] {
        assert!(
            !seen.body.to_string().contains("from-secret"),
            "{}",
            seen.body
        );
    }
    assert_eq!(ready.body["reason"], "Serving");
    assert_eq!(expired.body["type"], "Warning");
    assert_eq!(expired.body["reason"], "SecretExpired");
    assert_eq!(
        expired.body["note"],
        "secret db-password (version 0123456789abcdef0123456789abcdef) expired at 2023-11-14T22:13:20Z"
    );
    assert_eq!(near.body["reason"], "CertificateNearExpiry");
    assert!(
        near.body["note"]
            .as_str()
            .unwrap()
            .starts_with("certificate web ")
    );
    assert_ne!(expired.body["action"], near.body["action"]);
    assert_eq!(
        expired.body["regarding"]["kind"], "Vault",
        "{}",
        expired.body
    );
}

/// A Vault whose `storage.embedded.size` is `size`, with the finalizer.
fn vault_of_size(size: &str) -> Arc<Vault> {
    let spec: VaultSpec =
        serde_json::from_value(json!({"storage": {"embedded": {"size": size}}})).unwrap();
    Arc::new(finalized(fixtures::vault(NS, NAME, spec)))
}

/// The StatefulSet as the API server has it, with a `size` claim template.
fn stateful_set_of_size(size: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": NAME, "namespace": NS},
           "spec": {"selector": {}, "serviceName": NAME, "template": {},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"},
                        "spec": {"resources": {"requests": {"storage": size}}}}]}})
}

/// The steps up to the StatefulSet: master key, certificate, JWKS, ServiceAccount, Service.
async fn up_to_the_stateful_set(api: &mut ApiServer) {
    api.answer(StatusCode::OK, master_key_exists).await;
    api.certificate_and_jwks().await;
    let core = format!("/api/v1/namespaces/{NS}");
    api.echo(StatusCode::OK)
        .await
        .assert_apply(&format!("{core}/serviceaccounts/{NAME}"));
    api.echo(StatusCode::OK)
        .await
        .assert_apply(&format!("{core}/services/{NAME}"));
}

/// Growing the volumes: every claim is expanded, then the StatefulSet is deleted with its
/// pods orphaned (its claim templates are immutable) and applied again on the next pass.
#[tokio::test]
async fn a_larger_size_expands_the_claims_and_recreates_the_stateful_set_orphaning_its_pods() {
    let (ctx, mut api) = context();
    let server = tokio::spawn(async move {
        up_to_the_stateful_set(&mut api).await;
        let get = api
            .answer(StatusCode::OK, |_| stateful_set_of_size("1Gi"))
            .await;
        assert_eq!(get.method, Method::GET);
        let claims = api
            .answer(StatusCode::OK, |_| {
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaimList",
                       "metadata": {"resourceVersion": "1"}, "items": [
                    {"metadata": {"name": "data-payments-0", "namespace": NS},
                     "spec": {"resources": {"requests": {"storage": "1Gi"}}}},
                    {"metadata": {"name": "data-payments-1", "namespace": NS},
                     "spec": {"resources": {"requests": {"storage": "2Gi"}}}}
                ]})
            })
            .await;
        assert_eq!(
            claims.path,
            format!("/api/v1/namespaces/{NS}/persistentvolumeclaims")
        );
        assert_eq!(
            claims.param("labelSelector"),
            Some("kvault.dev%2Fvault%3Dpayments")
        );
        // Only the claim that is smaller.
        let expand = api.echo(StatusCode::OK).await;
        assert_eq!(expand.method, Method::PATCH);
        assert_eq!(
            expand.path,
            format!("/api/v1/namespaces/{NS}/persistentvolumeclaims/data-payments-0")
        );
        assert_eq!(
            expand.body["spec"]["resources"]["requests"]["storage"],
            "2Gi"
        );
        let delete = api
            .answer(StatusCode::OK, |_| stateful_set_of_size("1Gi"))
            .await;
        assert_eq!(delete.method, Method::DELETE);
        assert_eq!(
            delete.path,
            format!("/apis/apps/v1/namespaces/{NS}/statefulsets/{NAME}")
        );
        assert_eq!(delete.body["propagationPolicy"], "Orphan");
        // The other objects are applied as usual; no status until the new StatefulSet.
        api.echo(StatusCode::OK).await.assert_apply(&format!(
            "/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/{NAME}"
        ));
        assert_eq!(api.not_found().await.method, Method::DELETE);
    });
    let action = within(reconcile(vault_of_size("2Gi"), ctx)).await.unwrap();
    assert_eq!(action, Action::requeue(super::controller::RECREATE_RECHECK));
    within(server).await.unwrap();
}

/// A change the API server refuses (here: a claim whose StorageClass cannot expand) is said
/// in the status (`Degraded=True`, the API server's message) and an event, before anything is
/// deleted; the reconcile fails so that it is retried with backoff.
#[tokio::test]
async fn a_refused_change_makes_the_vault_degraded_with_the_api_servers_message() {
    let (ctx, mut api) = context();
    let message = "persistentvolumeclaims \"data-payments-0\" is forbidden: only dynamically \
                   provisioned pvc can be resized and the storageclass that provisions the pvc \
                   must support resize";
    let server = tokio::spawn(async move {
        up_to_the_stateful_set(&mut api).await;
        api.answer(StatusCode::OK, |_| stateful_set_of_size("1Gi"))
            .await;
        api.answer(StatusCode::OK, |_| {
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaimList",
                   "metadata": {"resourceVersion": "1"}, "items": [
                {"metadata": {"name": "data-payments-0", "namespace": NS},
                 "spec": {"resources": {"requests": {"storage": "1Gi"}}}}]})
        })
        .await;
        let refused = api
            .answer(StatusCode::FORBIDDEN, |_| {
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                       "status": "Failure", "message": message, "reason": "Forbidden",
                       "code": 403})
            })
            .await;
        assert_eq!(refused.method, Method::PATCH);
        // No DELETE of the StatefulSet: the status comes next.
        let status = api.status_patched().await;
        let event = api.event_published().await;
        (status, event)
    });
    let err = within(reconcile(vault_of_size("2Gi"), ctx))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("only dynamically provisioned"),
        "{err}"
    );
    let (status, event) = within(server).await.unwrap();
    let st = &status.body["status"];
    assert_eq!(condition(st, "Degraded")["status"], "True");
    assert_eq!(condition(st, "Degraded")["reason"], "ApplyFailed");
    let shown = condition(st, "Degraded")["message"].as_str().unwrap();
    assert!(
        shown.contains("data-payments-0") && shown.contains("must support resize"),
        "{shown}"
    );
    assert_eq!(condition(st, "Progressing")["status"], "False");
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["reason"], "ApplyFailed");
}

/// Shrinking is refused before any request about the volumes.
#[tokio::test]
async fn a_smaller_size_is_refused_without_touching_the_volumes() {
    let (ctx, mut api) = context();
    let server = tokio::spawn(async move {
        up_to_the_stateful_set(&mut api).await;
        api.answer(StatusCode::OK, |_| stateful_set_of_size("2Gi"))
            .await;
        api.status_patched().await
    });
    let err = within(reconcile(vault_of_size("1Gi"), ctx))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot shrink"), "{err}");
    let status = within(server).await.unwrap();
    assert_eq!(
        condition(&status.body["status"], "Degraded")["reason"],
        "ApplyFailed"
    );
}

/// The namespace of a purge-protected vault is deleted: the master key moves to the
/// operator's namespace and the volume is retained as a PersistentVolume before the
/// namespace's objects are released, so the namespace deletion completes.
#[tokio::test]
async fn a_deleted_namespace_moves_a_protected_vaults_key_and_retains_its_volumes() {
    let (ctx, mut api) = context();
    let mut spec = VaultSpec::default();
    spec.soft_delete.purge_protection = true;
    let vault = Arc::new(fixtures::vault(NS, NAME, spec));
    let protected = json!([
        "kubernetes.io/pvc-protection",
        "kvault.dev/purge-protection"
    ]);
    let server = tokio::spawn(async move {
        let core = format!("/api/v1/namespaces/{NS}");
        let namespace = api
            .answer(StatusCode::OK, |_| {
                json!({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": NS, "deletionTimestamp": "2026-12-03T00:00:00Z"}})
            })
            .await;
        assert_eq!(namespace.path, format!("/api/v1/namespaces/{NS}"));
        let key = api
            .answer(StatusCode::OK, |_| {
                json!({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "payments-master-key", "namespace": NS,
                                    "labels": {"kvault.dev/deleted": "true"},
                                    "annotations": {"kvault.dev/purge-after": "2027-03-01T00:00:00Z"},
                                    "finalizers": ["kvault.dev/purge-protection"]},
                       "data": {"master.key": "a2V5"}})
            })
            .await;
        assert_eq!(key.path, format!("{core}/secrets/{NAME}-master-key"));
        let claims = api
            .answer(StatusCode::OK, |_| {
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaimList", "metadata": {},
                       "items": [{"metadata": {"name": "data-payments-0", "namespace": NS,
                                  "finalizers": protected},
                                  "spec": {"volumeName": "pv-7"}}]})
            })
            .await;
        assert_eq!(claims.path, format!("{core}/persistentvolumeclaims"));
        let pv = api
            .answer(StatusCode::OK, |_| {
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-7"},
                       "spec": {"persistentVolumeReclaimPolicy": "Delete"}})
            })
            .await;
        assert_eq!(pv.path, "/api/v1/persistentvolumes/pv-7");
        let retain = api
            .answer(StatusCode::OK, |_| {
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-7"}})
            })
            .await;
        assert_eq!(retain.method, Method::PATCH);
        assert_eq!(
            retain.body["spec"]["persistentVolumeReclaimPolicy"],
            "Retain"
        );
        assert_eq!(
            retain.body["metadata"]["annotations"]["kvault.dev/reclaim-policy"],
            "Delete"
        );
        let copy = api.echo(StatusCode::CREATED).await;
        assert_eq!(copy.method, Method::POST);
        assert_eq!(copy.path, "/api/v1/namespaces/kvault-system/secrets");
        assert_eq!(copy.body["metadata"]["name"], "kvault-kept.team-a.payments");
        assert_eq!(copy.body["data"]["master.key"], "a2V5");
        assert_eq!(
            copy.body["metadata"]["annotations"]["kvault.dev/volumes"],
            "pv-7"
        );
        assert_eq!(
            copy.body["metadata"]["finalizers"],
            json!(["kvault.dev/purge-protection"])
        );
        // Only then are the namespace's objects released.
        let meta = |name: &str| {
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                   "metadata": {"name": name, "namespace": NS}})
        };
        // Released from what they are now (read again).
        let key_now = api
            .answer(StatusCode::OK, |_| {
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                       "metadata": {"name": "payments-master-key", "namespace": NS,
                                    "finalizers": ["kvault.dev/purge-protection"]}})
            })
            .await;
        assert_eq!(key_now.path, format!("{core}/secrets/{NAME}-master-key"));
        let key_release = api
            .answer(StatusCode::OK, |_| meta("payments-master-key"))
            .await;
        assert_eq!(
            key_release.path,
            format!("{core}/secrets/{NAME}-master-key")
        );
        assert_eq!(key_release.body["metadata"]["finalizers"], json!([]));
        let claims_now = api
            .answer(StatusCode::OK, move |_| {
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                       "metadata": {}, "items": [{"apiVersion": "meta.k8s.io/v1",
                       "kind": "PartialObjectMetadata", "metadata": {"name": "data-payments-0",
                       "namespace": NS, "finalizers": protected}}]})
            })
            .await;
        assert_eq!(claims_now.path, format!("{core}/persistentvolumeclaims"));
        let pvc_release = api
            .answer(StatusCode::OK, |_| meta("data-payments-0"))
            .await;
        assert_eq!(
            pvc_release.path,
            format!("{core}/persistentvolumeclaims/data-payments-0")
        );
        assert_eq!(
            pvc_release.body["metadata"]["finalizers"],
            json!(["kubernetes.io/pvc-protection"])
        );
    });
    assert!(
        within(super::controller::relocate_if_namespace_ends(
            &ctx, NS, NAME
        ))
        .await
        .unwrap()
    );
    within(server).await.unwrap();
    drop(vault);
}

/// A Vault created again, with `createMode: Recover`, in a namespace of the same name as
/// the deleted one: the master key comes back from the copy and the retained volume is
/// pre-bound to the claim its StatefulSet creates; the copy goes.
#[tokio::test]
async fn recover_in_a_new_namespace_takes_back_the_relocated_key_and_volume() {
    let (ctx, mut api) = context();
    let spec = VaultSpec {
        create_mode: crate::api::CreateMode::Recover,
        ..Default::default()
    };
    let vault = Arc::new(finalized(fixtures::vault(NS, NAME, spec)));
    let server = tokio::spawn(async move {
        assert_eq!(api.not_found().await.method, Method::GET);
        let copy = api
            .answer(StatusCode::OK, |_| {
                json!({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "kvault-kept.team-a.payments", "namespace": "kvault-system",
                                    "labels": {"kvault.dev/deleted": "true", "kvault.dev/vault": NAME,
                                               "kvault.dev/vault-namespace": NS},
                                    "annotations": {"kvault.dev/volumes": "pv-7"},
                                    "finalizers": ["kvault.dev/purge-protection"]},
                       "data": {"master.key": "a2V5"}})
            })
            .await;
        assert_eq!(
            copy.path,
            "/api/v1/namespaces/kvault-system/secrets/kvault-kept.team-a.payments"
        );
        let key = api.echo(StatusCode::CREATED).await;
        assert_eq!(key.path, format!("/api/v1/namespaces/{NS}/secrets"));
        assert_eq!(key.body["metadata"]["name"], "payments-master-key");
        assert_eq!(key.body["data"]["master.key"], "a2V5");
        let retained = json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "pv-7",
                "labels": {"kvault.dev/deleted": "true", "kvault.dev/vault": NAME,
                           "kvault.dev/vault-namespace": NS},
                "annotations": {"kvault.dev/claim": "data-payments-0",
                                "kvault.dev/reclaim-policy": "Delete"}},
            "spec": {"persistentVolumeReclaimPolicy": "Retain"}});
        let r = retained.clone();
        api.answer(StatusCode::OK, move |_| r).await;
        let rebind = api.answer(StatusCode::OK, move |_| retained).await;
        assert_eq!(rebind.method, Method::PATCH);
        assert_eq!(rebind.path, "/api/v1/persistentvolumes/pv-7");
        assert_eq!(rebind.body["spec"]["claimRef"]["name"], "data-payments-0");
        assert_eq!(rebind.body["spec"]["claimRef"]["namespace"], NS);
        assert_eq!(
            rebind.body["spec"]["persistentVolumeReclaimPolicy"],
            "Delete"
        );
        let release = api
            .answer(StatusCode::OK, |_| {
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                       "metadata": {"name": "kvault-kept.team-a.payments"}})
            })
            .await;
        assert_eq!(release.body["metadata"]["finalizers"], json!([]));
        let delete = api
            .answer(StatusCode::OK, |_| {
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
            })
            .await;
        assert_eq!(delete.method, Method::DELETE);
        assert_eq!(
            delete.path,
            "/api/v1/namespaces/kvault-system/secrets/kvault-kept.team-a.payments"
        );
        let event = api.event_published().await;
        assert_eq!(event.body["reason"], "Recovered");
    });
    let _ = tokio::time::timeout(Duration::from_secs(3), reconcile(vault, ctx)).await;
    within(server).await.unwrap();
}
