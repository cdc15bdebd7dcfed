//! The least Kubernetes RBAC the operator needs, derived from the calls it makes. Pure.
//!
//! Two sets of rules:
//!
//! - [`cluster_rules`] (a ClusterRole): vaults and grants live in every namespace, and so do
//!   the objects the operator makes for them;
//! - [`namespace_rules`] (a Role in the operator's namespace): its leader Lease and the
//!   tokens of its own service account.
//!
//! The workload-identity webhook ([`super::webhook`]) adds [`webhook_rules`] wherever the
//! vault rules apply, and its MutatingWebhookConfiguration (by name) to the cluster-scoped
//! rules.
//!
//! Every rule names the code that needs it. The tests below check the other direction: every
//! request of the reconcile tests against the mocked API server
//! (`mock_api_server_tests.rs`), of the controllers' watches, of leader election, of the CA
//! set-up and of the policy push's TokenRequest is allowed by these rules, as the API
//! server's RBAC authorizer would decide it. `kvault operator --print-rbac` prints them; the
//! Helm chart's operator ClusterRole and Role are compared with that output by
//! `tests/chart`.

use super::leader::LEASE_NAME;
use super::scope::WatchScope;
use crate::api::{AccessPolicy, RoleAssignment, SecretSync, Vault};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use std::collections::BTreeMap;

/// The name of the ClusterRole, Role and bindings `kvault operator --print-rbac` prints.
pub const OPERATOR_ROLE_NAME: &str = "kvault-operator";

/// The non-resource URL of the cluster's service-account JWKS (read by `controller.rs`
/// `cluster_jwks` and by the token service, identity.rs).
pub use super::CLUSTER_JWKS_API_PATH as JWKS_PATH;

/// One rule on the resource of `K` (or one of its subresources) with these verbs.
fn rule<K: Resource<DynamicType = ()>>(subresource: Option<&str>, verbs: &[&str]) -> PolicyRule {
    let plural = K::plural(&());
    let resource = match subresource {
        Some(sub) => format!("{plural}/{sub}"),
        None => plural.into_owned(),
    };
    let mut verbs: Vec<String> = verbs.iter().map(|v| (*v).to_string()).collect();
    verbs.sort();
    PolicyRule {
        api_groups: Some(vec![K::group(&()).into_owned()]),
        resources: Some(vec![resource]),
        verbs,
        ..Default::default()
    }
}

fn named(mut r: PolicyRule, name: &str) -> PolicyRule {
    r.resource_names = Some(vec![name.to_string()]);
    r
}

/// Server-side apply of an object that may not exist yet: the API server authorizes the
/// PATCH and, when it creates the object, `create` as well.
const APPLY: [&str; 2] = ["create", "patch"];
/// What `Controller::owns` / `watches` / `Controller::new` need (a list, then a watch).
const WATCH: [&str; 2] = ["list", "watch"];

fn join<const A: usize, const B: usize>(
    a: [&'static str; A],
    b: [&'static str; B],
) -> Vec<&'static str> {
    a.into_iter().chain(b).collect()
}

/// The ClusterRole when the operator watches the whole cluster: the vault rules in every
/// namespace, and the cluster-scoped rules.
pub fn cluster_rules() -> Vec<PolicyRule> {
    let mut rules = vault_rules();
    rules.extend(webhook_rules());
    rules.extend(cluster_scoped_rules(None));
    rules
}

/// What only a ClusterRole can grant, in both modes: the cluster's JWKS; the namespaces of
/// deleted vaults (`get`, by name: is it being deleted too?) — with `--watch-namespace`, only
/// the watched ones; and the PersistentVolumes of deleted vaults whose namespace is deleted
/// (relocation.rs: retained, re-bound on recover, handed back to their reclaim policy by the
/// purge; read and patched by name, never listed or deleted); and the workload-identity
/// webhook's MutatingWebhookConfiguration, by name: read, and patched with the operator's CA
/// as its `caBundle` at start.
fn cluster_scoped_rules(namespaces: Option<&[String]>) -> Vec<PolicyRule> {
    let mut ns_rule = rule::<Namespace>(None, &["get"]);
    if let Some(names) = namespaces {
        ns_rule.resource_names = Some(names.to_vec());
    }
    vec![
        jwks_rule(),
        ns_rule,
        rule::<PersistentVolume>(None, &["get", "patch"]),
        named(
            rule::<MutatingWebhookConfiguration>(None, &["get", "patch"]),
            super::webhook::WEBHOOK_CONFIGURATION,
        ),
    ]
}

/// What the workload-identity webhook does in the namespaces of the pods it admits (all of
/// them, or the watched ones with `--watch-namespace`): read the pod's ServiceAccount
/// (service_accounts.rs, by name; never listed or watched). It also applies `kvault-ca` in
/// the pod's namespace, which the ConfigMap rule of [`vault_rules`] (create, patch) already
/// allows.
pub fn webhook_rules() -> Vec<PolicyRule> {
    vec![rule::<ServiceAccount>(None, &["get"])]
}

/// The cluster's service-account keys (controller.rs `cluster_jwks`), handed to each vault:
/// a non-resource URL, which only a ClusterRole can grant.
fn jwks_rule() -> PolicyRule {
    PolicyRule {
        non_resource_urls: Some(vec![JWKS_PATH.to_string()]),
        verbs: vec!["get".to_string()],
        ..Default::default()
    }
}

/// What the operator does in a namespace whose vaults it reconciles.
pub fn vault_rules() -> Vec<PolicyRule> {
    let owned = join(APPLY, WATCH);
    vec![
        // controller.rs `controller` (watch); `reconcile_grant` and `purge_expired` (get);
        // the soft-delete finalizer (kube's `finalizer` patches metadata.finalizers).
        rule::<Vault>(None, &["get", "list", "watch", "patch"]),
        // controller.rs `apply_status` (server-side apply of the status).
        rule::<Vault>(Some("status"), &["patch"]),
        // The grants' controllers and `watches` (app.rs, controller.rs), `sync_policy` (list).
        rule::<AccessPolicy>(None, &WATCH),
        rule::<RoleAssignment>(None, &WATCH),
        // controller.rs `apply_status`.
        rule::<AccessPolicy>(Some("status"), &["patch"]),
        rule::<RoleAssignment>(Some("status"), &["patch"]),
        // Owned objects: applied by `apply_objects`, watched by `controller`.
        // ... a StatefulSet is also read, and deleted with its pods orphaned, to re-create
        // it with larger volumes (`prepare_volumes`: its claim templates are immutable).
        rule::<StatefulSet>(None, &join(APPLY, ["delete", "get", "list", "watch"])),
        rule::<Service>(None, &owned),
        rule::<ServiceAccount>(None, &owned),
        rule::<NetworkPolicy>(None, &owned),
        // ... and a PDB is deleted when a vault scales down to one replica.
        rule::<PodDisruptionBudget>(None, &join(APPLY, ["delete", "list", "watch"])),
        // `kvault-ca` and `<vault>-cluster-jwks` (applied, and watched as owned objects).
        rule::<ConfigMap>(None, &owned),
        // Master key: get (metadata) and create in `ensure_master_key`; TLS Secret: get and
        // apply in `ensure_certificate`; the CA Secret in app.rs `ensure_ca`; soft delete
        // patches the metadata of kept keys, the purge lists (by label), patches and deletes
        // them. Watched only with the server-TLS label (`controller`); RBAC cannot say "by
        // label", but `get` already reads any Secret, so `watch` grants nothing more.
        rule::<Secret>(None, &["create", "delete", "get", "list", "patch", "watch"]),
        // Soft delete, recover and purge of a vault's data volumes (by label); expanding
        // them for a larger `storage.embedded.size` (patch).
        rule::<PersistentVolumeClaim>(None, &["delete", "list", "patch"]),
        // kube's event Recorder: create, and patch for a repeated event (a series).
        rule::<Event>(None, &["create", "patch"]),
        // controller.rs `pod_trouble`: why a vault's pods are not ready (unschedulable,
        // image pull, crash loop), listed by the vault's selector labels; never watched.
        rule::<Pod>(None, &["list"]),
        // sync/reconcile.rs: the SecretSync controller (watch), its status (apply).
        rule::<SecretSync>(None, &WATCH),
        rule::<SecretSync>(Some("status"), &["patch"]),
        // (A sync reads as its `serviceAccountName` with a token of the operator's own token
        // service: no TokenRequest for other accounts. The ServiceAccount is read by name
        // with the webhook's `get` rule.)
        // ... rollout restarts (`rolloutRestartTargets`, `kvault.dev/restart-on`): listed
        // (by selector, or to find the annotation) and patched like `kubectl rollout
        // restart`. StatefulSets are already covered above.
        rule::<Deployment>(None, &["list", "patch"]),
        rule::<DaemonSet>(None, &["list", "patch"]),
    ]
}

/// In the operator's own namespace, when it does not watch the whole cluster: its CA Secret
/// (app.rs `ensure_ca`: read, or created at first start), the copies of relocated vaults'
/// master keys (relocation.rs: created, read, listed by the purge, released and deleted) and
/// the `kvault-ca` ConfigMap (`publish_ca`, server-side apply). Creates carry no name, so they
/// cannot be limited to one.
fn own_namespace_ca_rules() -> Vec<PolicyRule> {
    vec![
        rule::<Secret>(None, &["create", "delete", "get", "list", "patch"]),
        rule::<ConfigMap>(None, &["create"]),
        named(
            rule::<ConfigMap>(None, &["patch"]),
            super::desired::CA_CONFIG_MAP,
        ),
    ]
}

/// The Role in the operator's own namespace.
pub fn namespace_rules(service_account: &str) -> Vec<PolicyRule> {
    vec![
        // leader.rs: `try_hold` creates the Lease when there is none (a create carries no
        // name, so it cannot be limited to one), reads and replaces it; `release`.
        rule::<Lease>(None, &["create"]),
        named(rule::<Lease>(None, &["get", "update"]), LEASE_NAME),
        // identity.rs: the token service's signing keys, read by every replica and
        // replaced by the one that rotates them (created with the other Secrets' create).
        named(
            rule::<Secret>(None, &["get", "update"]),
            super::identity::SIGNING_SECRET,
        ),
        // push.rs: a TokenRequest of its own service account for each policy push.
        named(
            rule::<ServiceAccount>(Some("token"), &["create"]),
            service_account,
        ),
    ]
}

/// The objects that give `namespace/service_account` the operator's rights.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorRbac {
    pub cluster_role: ClusterRole,
    pub cluster_role_binding: ClusterRoleBinding,
    /// The Role in the operator's namespace first, then (with `--watch-namespace`) one per
    /// watched namespace, each with its binding.
    pub roles: Vec<(Role, RoleBinding)>,
}

/// The name of the Role in each watched namespace (`--watch-namespace`).
pub const VAULTS_ROLE_NAME: &str = "kvault-operator-vaults";

pub fn operator_rbac(namespace: &str, service_account: &str, scope: &WatchScope) -> OperatorRbac {
    let labels = BTreeMap::from([(
        "app.kubernetes.io/name".to_string(),
        OPERATOR_ROLE_NAME.to_string(),
    )]);
    let meta = |name: &str, ns: Option<&str>| ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(str::to_string),
        labels: Some(labels.clone()),
        ..Default::default()
    };
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: service_account.into(),
        namespace: Some(namespace.into()),
        ..Default::default()
    };
    let role_ref = |kind: &str, name: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    };
    let role = |name: &str, ns: &str, rules: Vec<PolicyRule>| {
        (
            Role {
                metadata: meta(name, Some(ns)),
                rules: Some(rules),
            },
            RoleBinding {
                metadata: meta(name, Some(ns)),
                role_ref: role_ref("Role", name),
                subjects: Some(vec![subject.clone()]),
            },
        )
    };
    let (cluster, own) = match scope {
        WatchScope::Cluster => (cluster_rules(), namespace_rules(service_account)),
        WatchScope::Namespaces(names) => (cluster_scoped_rules(Some(names)), {
            let mut r = namespace_rules(service_account);
            r.extend(own_namespace_ca_rules());
            r
        }),
    };
    let mut roles = vec![role(OPERATOR_ROLE_NAME, namespace, own)];
    for ns in scope.namespaces().unwrap_or_default() {
        let mut rules = vault_rules();
        rules.extend(webhook_rules());
        roles.push(role(VAULTS_ROLE_NAME, ns, rules));
    }
    OperatorRbac {
        cluster_role: ClusterRole {
            metadata: meta(OPERATOR_ROLE_NAME, None),
            rules: Some(cluster),
            ..Default::default()
        },
        cluster_role_binding: ClusterRoleBinding {
            metadata: meta(OPERATOR_ROLE_NAME, None),
            role_ref: role_ref("ClusterRole", OPERATOR_ROLE_NAME),
            subjects: Some(vec![subject.clone()]),
        },
        roles,
    }
}

/// `kvault operator --print-rbac`: the objects as one YAML stream.
pub fn operator_rbac_yaml(
    namespace: &str,
    service_account: &str,
    scope: &WatchScope,
) -> Result<String, serde_saphyr::SerializeError> {
    fn doc<K: Resource<DynamicType = ()> + serde::Serialize>(
        obj: &K,
    ) -> Result<String, serde_saphyr::SerializeError> {
        // k8s-openapi types serialize apiVersion and kind themselves.
        Ok(format!("---\n{}", serde_saphyr::to_string(obj)?))
    }
    let rbac = operator_rbac(namespace, service_account, scope);
    let mut out = vec![
        "# The RBAC of `kvault operator` (generated by `kvault operator --print-rbac`).\n"
            .to_string(),
        doc(&rbac.cluster_role)?,
        doc(&rbac.cluster_role_binding)?,
    ];
    for (role, binding) in &rbac.roles {
        out.push(doc(role)?);
        out.push(doc(binding)?);
    }
    Ok(out.concat())
}

/// A request as the API server's RBAC authorizer sees it, and its decision against the
/// operator's rules. Test-only: the mocked API server checks every request with it.
#[cfg(test)]
pub(crate) mod check {
    use super::*;

    /// `verb group resource[/subresource] namespace name`, as the authorizer sees them.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    pub struct Attributes {
        pub verb: String,
        pub group: String,
        pub resource: String,
        pub namespace: String,
        pub name: String,
        /// For a non-resource request: the path.
        pub path: Option<String>,
    }

    /// The request info of Kubernetes' apiserver (`RequestInfoFactory`), for the paths the
    /// operator uses.
    pub fn attributes(method: &str, path: &str, query: &str) -> Attributes {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let rest: &[&str] = match parts.as_slice() {
            ["api", _version, rest @ ..] => rest,
            ["apis", _group, _version, rest @ ..] => rest,
            _ => {
                return Attributes {
                    verb: method.to_ascii_lowercase(),
                    group: String::new(),
                    resource: String::new(),
                    namespace: String::new(),
                    name: String::new(),
                    path: Some(path.to_string()),
                };
            }
        };
        let group = match parts.as_slice() {
            ["apis", group, ..] => (*group).to_string(),
            _ => String::new(),
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => ((*ns).to_string(), rest),
            _ => (String::new(), rest),
        };
        let (resource, name) = match rest {
            [resource] => ((*resource).to_string(), String::new()),
            [resource, name] => ((*resource).to_string(), (*name).to_string()),
            [resource, name, sub, ..] => (format!("{resource}/{sub}"), (*name).to_string()),
            [] => (String::new(), String::new()),
        };
        let watching = query
            .split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1");
        let verb = match (method, name.is_empty()) {
            ("GET", _) if watching => "watch",
            ("GET", true) => "list",
            ("GET", false) => "get",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", true) => "deletecollection",
            ("DELETE", false) => "delete",
            (other, _) => return attributes_unknown(other, path),
        };
        Attributes {
            verb: verb.into(),
            group,
            resource,
            namespace,
            name,
            path: None,
        }
    }

    fn attributes_unknown(method: &str, path: &str) -> Attributes {
        Attributes {
            verb: method.to_ascii_lowercase(),
            group: "?".into(),
            resource: "?".into(),
            namespace: String::new(),
            name: String::new(),
            path: Some(path.into()),
        }
    }

    fn covers(rule: &PolicyRule, a: &Attributes) -> bool {
        let has = |list: &Option<Vec<String>>, v: &str| {
            list.as_ref()
                .is_some_and(|l| l.iter().any(|x| x == v || x == "*"))
        };
        if !rule.verbs.iter().any(|v| *v == a.verb || v == "*") {
            return false;
        }
        if let Some(path) = &a.path {
            return has(&rule.non_resource_urls, path);
        }
        let names_ok = match &rule.resource_names {
            None => true,
            Some(names) if names.is_empty() => true,
            Some(names) => !a.name.is_empty() && names.contains(&a.name),
        };
        has(&rule.api_groups, &a.group) && has(&rule.resources, &a.resource) && names_ok
    }

    /// Whether the operator's RBAC (its ClusterRole everywhere, each Role in its namespace)
    /// allows it, for the whole cluster.
    pub fn allowed(a: &Attributes, operator_namespace: &str, service_account: &str) -> bool {
        allowed_in(a, operator_namespace, service_account, &WatchScope::Cluster)
    }

    /// The same, for the RBAC `--print-rbac` gives with this watch scope.
    pub fn allowed_in(
        a: &Attributes,
        operator_namespace: &str,
        service_account: &str,
        scope: &WatchScope,
    ) -> bool {
        let rbac = operator_rbac(operator_namespace, service_account, scope);
        let rules = |r: &Option<Vec<PolicyRule>>| r.clone().unwrap_or_default();
        rules(&rbac.cluster_role.rules).iter().any(|r| covers(r, a))
            || rbac.roles.iter().any(|(role, _)| {
                a.path.is_none()
                    && Some(a.namespace.as_str()) == role.metadata.namespace.as_deref()
                    && rules(&role.rules).iter().any(|r| covers(r, a))
            })
    }

    /// Panics when the operator (namespace `kvault-system`, service account
    /// `kvault-operator`, as in `OperatorSettings::test`) may not make this request.
    pub fn assert_allowed(method: &str, path: &str, query: &str) {
        let a = attributes(method, path, query);
        assert!(
            allowed(&a, "kvault-system", "kvault-operator"),
            "the operator made a request its RBAC does not allow: {method} {path}?{query} \
             ({a:?}). Add the permission to src/operator/rbac.rs, then the chart's \
             templates/operator-rbac.yaml (tests/chart compares them)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::check::{Attributes, allowed, assert_allowed, attributes};
    use super::*;
    use crate::api::VaultSpec;
    use crate::operator::OperatorSettings;
    use crate::operator::ca::Ca;
    use crate::operator::controller::{Context, Metrics, controller, error_policy, reconcile};
    use crate::operator::push::fake::FakeEndpoint;
    use crate::operator::push::{PolicyEndpoint, ServiceAccountEndpoint};
    use crate::operator::{desired, fixtures};
    use futures_util::StreamExt;
    use http::{Request, Response, StatusCode};
    use kube::Client;
    use kube::client::Body;
    use serde_json::{Value, json};
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::time::Duration;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
    type Reply = tower_test::mock::SendResponse<Response<Body>>;

    fn mock() -> (Client, Handle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(service, "default"), handle)
    }

    /// Takes the next request: its attributes, its body and the reply handle.
    async fn next(handle: &mut Handle) -> (Attributes, Value, Reply) {
        let (a, _, body, reply) = next_with_accept(handle).await;
        (a, body, reply)
    }

    /// The same, with the request's `Accept` header.
    async fn next_with_accept(handle: &mut Handle) -> (Attributes, String, Value, Reply) {
        let (req, reply) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
            .await
            .expect("no request within 10 s")
            .expect("the client stopped");
        let accept = req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let a = attributes(
            req.method().as_str(),
            req.uri().path(),
            req.uri().query().unwrap_or_default(),
        );
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (a, accept, body, reply)
    }

    fn send(reply: Reply, status: StatusCode, body: &Value) {
        reply.send_response(
            Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        );
    }

    fn not_found() -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "reason": "NotFound", "code": 404})
    }

    fn ours(a: &Attributes) -> bool {
        allowed(a, "kvault-system", "kvault-operator")
    }

    #[test]
    fn requests_are_read_as_the_authorizer_reads_them() {
        let a = attributes(
            "PATCH",
            "/apis/kvault.dev/v1alpha1/namespaces/team-a/vaults/payments/status",
            "fieldManager=kvault-operator&force=true",
        );
        assert_eq!(
            (a.verb.as_str(), a.group.as_str(), a.resource.as_str()),
            ("patch", "kvault.dev", "vaults/status")
        );
        assert_eq!(
            (a.namespace.as_str(), a.name.as_str()),
            ("team-a", "payments")
        );
        let w = attributes("GET", "/api/v1/configmaps", "labelSelector=x&watch=true");
        assert_eq!(
            (w.verb.as_str(), w.resource.as_str()),
            ("watch", "configmaps")
        );
        let l = attributes("GET", "/api/v1/namespaces/a/secrets", "");
        assert_eq!((l.verb.as_str(), l.namespace.as_str()), ("list", "a"));
        let n = attributes("GET", "/openid/v1/jwks", "");
        assert_eq!(n.path.as_deref(), Some(JWKS_PATH));
    }

    #[test]
    fn what_the_operator_may_not_do() {
        for (method, path, query) in [
            // Secrets are never written with PUT.
            ("PUT", "/api/v1/namespaces/a/secrets/x", ""),
            // No pod reads by name, no watch, exec, nodes or namespaces.
            ("GET", "/api/v1/namespaces/a/pods/p", ""),
            ("GET", "/api/v1/namespaces/a/pods", "watch=true"),
            ("POST", "/api/v1/namespaces/a/pods/p/exec", ""),
            ("GET", "/api/v1/nodes", ""),
            ("DELETE", "/api/v1/namespaces/a", ""),
            // It does not delete vaults, grants or ConfigMaps.
            (
                "DELETE",
                "/apis/kvault.dev/v1alpha1/namespaces/a/vaults/v",
                "",
            ),
            ("DELETE", "/api/v1/namespaces/a/configmaps", ""),
            // No RBAC of its own making, no CRDs.
            (
                "POST",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings",
                "",
            ),
            (
                "PATCH",
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/vaults.kvault.dev",
                "",
            ),
            // Tokens only for its own service account, in its own namespace.
            (
                "POST",
                "/api/v1/namespaces/team-a/serviceaccounts/payments/token",
                "",
            ),
            (
                "POST",
                "/api/v1/namespaces/kvault-system/serviceaccounts/other/token",
                "",
            ),
            // Only its own Lease, only in its namespace.
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/kvault-system/leases/other",
                "",
            ),
            (
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/team-a/leases",
                "",
            ),
            // Other non-resource URLs.
            ("GET", "/openid/v1/jwks/extra", ""),
            ("GET", "/metrics", ""),
        ] {
            let a = attributes(method, path, query);
            assert!(
                !ours(&a),
                "{method} {path}?{query} should be refused: {a:?}"
            );
        }
    }

    /// Every watch the controllers start (the Vault controller with its owned and watched
    /// kinds; the grants' controllers watch the same grant kinds), over the whole cluster or
    /// one namespace: each is allowed by the RBAC of that scope, and the Secrets are
    /// watched by metadata only (no private key in the operator's caches).
    async fn controller_watches(scope: &WatchScope) -> BTreeSet<String> {
        let (client, mut handle) = mock();
        let ctx = Arc::new(Context::new(
            client.clone(),
            OperatorSettings::test(),
            Metrics::default(),
            Arc::new(Ca::generate(1_790_000_000).unwrap()),
            Arc::new(FakeEndpoint::default()),
        ));
        let namespace = scope.targets()[0].map(str::to_string);
        let sync_ctx = Arc::new(crate::operator::sync::reconcile::SyncContext::new(
            client.clone(),
            Arc::new(crate::operator::sync::reconcile::ServiceAccountAccess {
                client: client.clone(),
                ca_file: None,
                issuer: None,
            }),
            Default::default(),
        ));
        let syncs = tokio::spawn(
            crate::operator::sync::reconcile::controller(&client, namespace.as_deref())
                .run(
                    crate::operator::sync::reconcile::reconcile_sync,
                    crate::operator::sync::reconcile::error_policy,
                    sync_ctx,
                )
                .for_each(|_| async {}),
        );
        let running = tokio::spawn(
            controller(client, namespace.as_deref())
                .run(reconcile, error_policy, ctx)
                .for_each(|_| async {}),
        );
        let mut seen = BTreeSet::new();
        let mut open_watches = Vec::new();
        // The Vault controller's ten and the SecretSync controller's SecretSyncs (its
        // Secrets are among the ten).
        while seen.iter().filter(|(v, _)| v == "watch").count() < 11 {
            let (a, accept, _, reply) = next_with_accept(&mut handle).await;
            assert!(
                check::allowed_in(&a, "kvault-system", "kvault-operator", scope),
                "not allowed: {a:?}"
            );
            if let Some(ns) = &namespace {
                assert_eq!(&a.namespace, ns, "a request outside the watched namespace");
            }
            if a.resource == "secrets" {
                assert!(
                    accept.contains("as=PartialObjectMetadata"),
                    "Secrets must be listed and watched by metadata only: Accept {accept:?}"
                );
            }
            if a.verb == "watch" {
                open_watches.push(reply);
            } else {
                let empty = json!({"apiVersion": "v1", "kind": "List",
                                   "metadata": {"resourceVersion": "1"}, "items": []});
                send(reply, StatusCode::OK, &empty);
            }
            seen.insert((a.verb.clone(), format!("{}/{}", a.group, a.resource)));
        }
        running.abort();
        syncs.abort();
        seen.iter()
            .filter(|(v, _)| v == "watch")
            .map(|(_, r)| r.clone())
            .collect()
    }

    #[tokio::test]
    async fn the_controllers_watches_are_allowed() {
        let watched = controller_watches(&WatchScope::Cluster).await;
        let in_one_namespace =
            controller_watches(&WatchScope::from_namespaces(&["team-a".into()]).unwrap()).await;
        assert_eq!(watched, in_one_namespace);
        let want: BTreeSet<String> = [
            "kvault.dev/vaults",
            "kvault.dev/secretsyncs",
            "kvault.dev/accesspolicies",
            "kvault.dev/roleassignments",
            "apps/statefulsets",
            "/services",
            "/serviceaccounts",
            "networking.k8s.io/networkpolicies",
            "policy/poddisruptionbudgets",
            "/configmaps",
            "/secrets",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(watched, want);
        // Least: nothing else is watched (list/watch rules exist for exactly these).
        let watchable: BTreeSet<String> = cluster_rules()
            .iter()
            .filter(|r| r.verbs.iter().any(|v| v == "watch"))
            .flat_map(|r| {
                let group = r.api_groups.clone().unwrap_or_default().join("");
                r.resources
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |res| format!("{group}/{res}"))
            })
            .collect();
        assert_eq!(watchable, want);
    }

    #[tokio::test]
    async fn the_ca_secret_and_its_config_map_are_allowed() {
        let (client, mut handle) = mock();
        let server = tokio::spawn(async move {
            let (get, _, reply) = next(&mut handle).await;
            assert_eq!(
                (get.verb.as_str(), get.resource.as_str()),
                ("get", "secrets")
            );
            assert!(ours(&get), "{get:?}");
            send(reply, StatusCode::NOT_FOUND, &not_found());
            let (create, body, reply) = next(&mut handle).await;
            assert_eq!(create.verb, "create");
            assert!(ours(&create), "{create:?}");
            send(reply, StatusCode::CREATED, &body);
            let (cm, body, reply) = next(&mut handle).await;
            assert_eq!(
                (
                    cm.verb.as_str(),
                    cm.resource.as_str(),
                    cm.namespace.as_str()
                ),
                ("patch", "configmaps", "kvault-system")
            );
            assert!(ours(&cm), "{cm:?}");
            send(reply, StatusCode::OK, &body);
        });
        let ca = crate::operator::app::ensure_ca(&client, "kvault-system")
            .await
            .unwrap();
        crate::operator::app::publish_ca(&client, "kvault-system", &ca)
            .await
            .unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn leader_election_is_allowed() {
        let (client, mut handle) = mock();
        let server = tokio::spawn(async move {
            let (get, _, reply) = next(&mut handle).await;
            assert!(ours(&get), "{get:?}");
            send(reply, StatusCode::NOT_FOUND, &not_found());
            let (create, body, reply) = next(&mut handle).await;
            assert_eq!(create.verb, "create");
            assert!(ours(&create), "{create:?}");
            send(reply, StatusCode::CREATED, &body);
            // release: read, then replace with no holder.
            let (get, _, reply) = next(&mut handle).await;
            assert!(ours(&get), "{get:?}");
            send(reply, StatusCode::OK, &body);
            let (put, body, reply) = next(&mut handle).await;
            assert_eq!(put.verb, "update");
            assert!(ours(&put), "{put:?}");
            send(reply, StatusCode::OK, &body);
        });
        let leader = crate::operator::leader::try_hold(&client, "kvault-system", "a");
        assert!(leader.await.unwrap());
        crate::operator::leader::release(&client, "kvault-system", "a").await;
        server.await.unwrap();
    }

    #[tokio::test]
    async fn the_policy_push_token_request_is_allowed() {
        let (client, mut handle) = mock();
        let endpoint = ServiceAccountEndpoint {
            client,
            namespace: "kvault-system".into(),
            service_account: "kvault-operator".into(),
            ca_file: None,
        };
        let server = tokio::spawn(async move {
            let (a, _, reply) = next(&mut handle).await;
            assert_eq!(
                (a.verb.as_str(), a.resource.as_str(), a.name.as_str()),
                ("create", "serviceaccounts/token", "kvault-operator")
            );
            assert!(ours(&a), "{a:?}");
            send(reply, StatusCode::FORBIDDEN, &json!({"code": 403}));
        });
        let vault = fixtures::vault("team-a", "payments", VaultSpec::default());
        assert!(endpoint.get(&vault).await.is_err());
        server.await.unwrap();
    }

    #[test]
    fn the_hook_of_the_mocked_api_server_refuses_what_is_not_granted() {
        assert_allowed("GET", "/openid/v1/jwks", "");
        let refused = std::panic::catch_unwind(|| {
            assert_allowed("POST", "/api/v1/namespaces/a/pods/p/exec", "");
        });
        assert!(refused.is_err());
    }

    /// Owner references without `blockOwnerDeletion`: otherwise the API server's
    /// OwnerReferencesPermissionEnforcement admission (OpenShift, hardened clusters) would
    /// also require `update` on `vaults/finalizers`.
    #[test]
    fn owned_objects_do_not_block_their_vaults_deletion() {
        let spec = VaultSpec {
            replicas: 3,
            ..Default::default()
        };
        let vault = fixtures::vault("team-a", "payments", spec);
        let settings = OperatorSettings::test();
        let refs = |m: &ObjectMeta| m.owner_references.clone().unwrap_or_default();
        let mut all = Vec::new();
        if let Ok(o) = desired::desired_objects(&vault, &settings) {
            all.extend(refs(&o.service_account.metadata));
            all.extend(refs(&o.service.metadata));
            all.extend(refs(&o.stateful_set.metadata));
            all.extend(refs(&o.network_policy.metadata));
            if let Some(p) = &o.pod_disruption_budget {
                all.extend(refs(&p.metadata));
            }
        }
        let cm = desired::cluster_jwks_config_map(&vault, "{}").unwrap();
        all.extend(refs(&cm.metadata));
        assert!(!all.is_empty());
        assert!(all.iter().all(|r| r.block_owner_deletion != Some(true)));
    }

    #[test]
    fn the_printed_rbac_binds_the_given_service_account() {
        let yaml = operator_rbac_yaml("ops", "op", &WatchScope::Cluster).unwrap();
        for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
            assert!(yaml.contains(&format!("kind: {kind}\n")), "{kind}: {yaml}");
        }
        let rbac = operator_rbac("ops", "op", &WatchScope::Cluster);
        let (role, binding) = &rbac.roles[0];
        let subject = &binding.subjects.as_ref().unwrap()[0];
        assert_eq!(
            (subject.namespace.as_deref(), subject.name.as_str()),
            (Some("ops"), "op")
        );
        assert_eq!(role.metadata.namespace.as_deref(), Some("ops"));
        let token_rule = role.rules.as_ref().unwrap().last().unwrap().clone();
        assert_eq!(token_rule.resource_names, Some(vec!["op".to_string()]));
        // Parses back.
        let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        assert_eq!(docs.len(), 4);
    }

    #[test]
    fn watching_namespaces_needs_no_cluster_wide_rights_on_namespaced_objects() {
        let scope = WatchScope::from_namespaces(&["team-a".into(), "team-b".into()]).unwrap();
        let rbac = operator_rbac("ops", "op", &scope);
        // The ClusterRole keeps only what is cluster-scoped: the JWKS, the watched
        // namespaces by name, PersistentVolumes by name (get, patch), the webhook's
        // configuration by name.
        let cluster = rbac.cluster_role.rules.clone().unwrap();
        assert_eq!(cluster.len(), 4);
        assert_eq!(
            cluster[0].non_resource_urls,
            Some(vec![JWKS_PATH.to_string()])
        );
        assert_eq!(
            cluster[1].resource_names,
            Some(vec!["team-a".to_string(), "team-b".to_string()])
        );
        assert_eq!(cluster[2].verbs, ["get", "patch"]);
        // The operator's namespace, then one Role per watched namespace.
        let placed: Vec<(Option<&str>, Option<&str>)> = rbac
            .roles
            .iter()
            .map(|(r, _)| (r.metadata.namespace.as_deref(), r.metadata.name.as_deref()))
            .collect();
        assert_eq!(
            placed,
            [
                (Some("ops"), Some(OPERATOR_ROLE_NAME)),
                (Some("team-a"), Some(VAULTS_ROLE_NAME)),
                (Some("team-b"), Some(VAULTS_ROLE_NAME)),
            ]
        );
        let yaml = operator_rbac_yaml("ops", "op", &scope).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        assert_eq!(docs.len(), 8);
        let may = |method: &str, path: &str, query: &str| {
            check::allowed_in(&attributes(method, path, query), "ops", "op", &scope)
        };
        // In a watched namespace: what a vault needs.
        assert!(may(
            "GET",
            "/api/v1/namespaces/team-a/secrets",
            "watch=true"
        ));
        assert!(may(
            "PATCH",
            "/apis/apps/v1/namespaces/team-b/statefulsets/v",
            ""
        ));
        // Elsewhere and cluster-wide: nothing.
        assert!(!may("GET", "/api/v1/secrets", "watch=true"));
        assert!(!may("GET", "/api/v1/namespaces/team-c/secrets/k", ""));
        assert!(!may(
            "PATCH",
            "/apis/apps/v1/namespaces/team-c/statefulsets/v",
            ""
        ));
        assert!(!may("GET", "/apis/kvault.dev/v1alpha1/vaults", ""));
        // Its own namespace: its CA Secret and the relocated vaults' copies, not watched.
        assert!(may(
            "GET",
            "/api/v1/namespaces/ops/secrets/kvault-operator-ca",
            ""
        ));
        assert!(may("GET", "/api/v1/namespaces/ops/secrets", ""));
        assert!(!may("GET", "/api/v1/namespaces/ops/secrets", "watch=true"));
        assert!(may("GET", "/api/v1/namespaces/team-a", ""));
        assert!(!may("GET", "/api/v1/namespaces/team-c", ""));
        assert!(!may("GET", "/api/v1/persistentvolumes", ""));
        // The webhook reads ServiceAccounts in the watched namespaces only.
        assert!(may(
            "GET",
            "/api/v1/namespaces/team-a/serviceaccounts/payments",
            ""
        ));
        assert!(!may(
            "GET",
            "/api/v1/namespaces/team-c/serviceaccounts/payments",
            ""
        ));
        assert!(may(
            "PATCH",
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/kvault-workload-identity",
            ""
        ));
        assert!(!may("DELETE", "/api/v1/persistentvolumes/pv-1", ""));
        assert!(may("GET", JWKS_PATH, ""));
    }

    #[test]
    fn what_the_webhook_may_do() {
        let mwc = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
        for (method, path, query, want) in [
            // The pod's ServiceAccount, by name, in any namespace.
            (
                "GET",
                "/api/v1/namespaces/team-a/serviceaccounts/payments",
                "",
                true,
            ),
            (
                "GET",
                "/api/v1/namespaces/other/serviceaccounts/default",
                "",
                true,
            ),
            // ... not listed, watched beyond the controller's own watch, or changed.
            ("GET", "/api/v1/namespaces/team-a/serviceaccounts", "", true), // the controller's list
            (
                "PUT",
                "/api/v1/namespaces/team-a/serviceaccounts/payments",
                "",
                false,
            ),
            (
                "DELETE",
                "/api/v1/namespaces/team-a/serviceaccounts/payments",
                "",
                false,
            ),
            // kvault-ca in the pod's namespace: server-side apply.
            (
                "PATCH",
                "/api/v1/namespaces/other/configmaps/kvault-ca",
                "fieldManager=kvault-operator&force=true",
                true,
            ),
            // Its own MutatingWebhookConfiguration: read and patched (caBundle), by name.
            ("GET", &format!("{mwc}/kvault-workload-identity"), "", true),
            (
                "PATCH",
                &format!("{mwc}/kvault-workload-identity"),
                "",
                true,
            ),
            ("PUT", &format!("{mwc}/kvault-workload-identity"), "", false),
            (
                "DELETE",
                &format!("{mwc}/kvault-workload-identity"),
                "",
                false,
            ),
            ("PATCH", &format!("{mwc}/someone-elses"), "", false),
            ("GET", mwc, "", false),
            ("POST", mwc, "", false),
            (
                "PATCH",
                "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/kvault-workload-identity",
                "",
                false,
            ),
        ] {
            let a = attributes(method, path, query);
            assert_eq!(ours(&a), want, "{method} {path}?{query}: {a:?}");
        }
        assert_eq!(
            crate::operator::webhook::WEBHOOK_CONFIGURATION,
            "kvault-workload-identity"
        );
    }
}
