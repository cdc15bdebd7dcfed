"""The workload-identity webhook's objects: the MutatingWebhookConfiguration
(templates/webhook.yaml), the Service and container port behind it, the operator's rights on
it, and the values that drive them, checked against the names the code uses
(src/operator/webhook)."""

import re

import pytest

from conftest import NAMESPACE, REPO_ROOT, render
from test_chart import IDS, VALUE_SETS, by_kind, one, rules_as_set

WEBHOOK_SRC = REPO_ROOT / "src" / "operator" / "webhook"


def rust_const(path, name):
    m = re.search(rf'pub const {name}: &str =\s*"([^"]+)";', path.read_text())
    assert m, f"{name} not found in {path}"
    return m.group(1)


CONFIGURATION = rust_const(WEBHOOK_SRC / "mod.rs", "WEBHOOK_CONFIGURATION")
WEBHOOK_NAME = rust_const(WEBHOOK_SRC / "mod.rs", "WEBHOOK_NAME")
PATH = rust_const(WEBHOOK_SRC / "mod.rs", "MUTATE_PODS_PATH")
USE_LABEL = rust_const(WEBHOOK_SRC / "patch.rs", "USE_LABEL")


def webhook_of(objects):
    configuration = one(objects, "MutatingWebhookConfiguration")
    assert configuration["metadata"]["name"] == CONFIGURATION
    (webhook,) = configuration["webhooks"]
    return webhook


def operator_container(objects):
    deployment = one(objects, "Deployment", "operator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


@pytest.mark.parametrize("values", VALUE_SETS, ids=IDS)
def test_webhook_configuration_points_at_the_operator(values):
    objects = render(values)
    webhook = webhook_of(objects)
    assert webhook["name"] == WEBHOOK_NAME
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["rules"] == [{"apiGroups": [""], "apiVersions": ["v1"],
                                 "operations": ["CREATE"], "resources": ["pods"],
                                 "scope": "Namespaced"}]
    # Only labelled pods are sent (the label the code checks too).
    assert webhook["objectSelector"] == {"matchLabels": {USE_LABEL: "true"}}
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["sideEffects"] == "NoneOnDryRun"
    assert webhook["timeoutSeconds"] == 5
    assert webhook["reinvocationPolicy"] == "IfNeeded"
    # The operator sets caBundle at start; the chart never renders it.
    assert "caBundle" not in webhook["clientConfig"] and "url" not in webhook["clientConfig"]
    # clientConfig → the webhook Service → the operator's container port named https.
    ref = webhook["clientConfig"]["service"]
    assert ref["namespace"] == NAMESPACE and ref["path"] == PATH
    service = next(s for s in by_kind(objects, "Service") if s["metadata"]["name"] == ref["name"])
    assert service["metadata"]["namespace"] == NAMESPACE
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == ref["port"]]
    assert port["name"] == "webhook" and port["targetPort"] == "https"
    deployment, container = operator_container(objects)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    https = next(p for p in container["ports"] if p["name"] == "https")
    # The Service listens on 443 (the token service's authority names no port) and forwards
    # to the container's HTTPS port.
    assert ref["port"] == 443 and https["containerPort"] == 9443
    # Never kube-system or the operator's own namespace (its pods must always start).
    exprs = webhook["namespaceSelector"]["matchExpressions"]
    not_in = [e for e in exprs if e["operator"] == "NotIn"]
    assert not_in == [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                       "values": ["kube-system", NAMESPACE]}]
    watched = [e for e in exprs if e["operator"] == "In"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    watch = [n for n in (env.get("KVAULT_WATCH_NAMESPACES") or "").split(",") if n]
    if watch:
        # Where the operator may read ServiceAccounts: the watched namespaces only.
        assert watched == [{"key": "kubernetes.io/metadata.name", "operator": "In",
                            "values": watch}]
    else:
        assert not watched


@pytest.mark.parametrize("values", VALUE_SETS, ids=IDS)
def test_webhook_rights_of_the_operator(values):
    objects = render(values)
    cluster = rules_as_set(one(objects, "ClusterRole", "operator")["rules"])
    assert ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", CONFIGURATION,
            "patch") in cluster
    # Its own configuration only, never all of them.
    assert not any(res == "mutatingwebhookconfigurations" and name != CONFIGURATION
                   for _, res, name, _ in cluster)
    roles = [r for r in by_kind(objects, "Role") if r["metadata"]["name"].endswith("-vaults")]
    where = [rules_as_set(r["rules"]) for r in roles] or [cluster]
    for rules in where:
        assert ("", "serviceaccounts", "", "get") in rules
        assert ("", "configmaps", "", "patch") in rules and ("", "configmaps", "", "create") in rules


def test_webhook_disabled():
    objects = render(sets=["workloadIdentity.enabled=false"])
    assert not by_kind(objects, "MutatingWebhookConfiguration")
    assert not [s for s in by_kind(objects, "Service")
                if s["metadata"]["labels"].get("app.kubernetes.io/component") == "webhook"]
    _, container = operator_container(objects)
    assert [p["name"] for p in container["ports"]] == ["http-metrics"]
    # No operator, no webhook.
    assert not by_kind(render(sets=["operator.enabled=false"]), "MutatingWebhookConfiguration")


def test_webhook_values():
    objects = render(sets=["workloadIdentity.failurePolicy=Ignore", "operator.httpsPort=10443"])
    webhook = webhook_of(objects)
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["clientConfig"]["service"]["port"] == 443
    _, container = operator_container(objects)
    assert next(p for p in container["ports"] if p["name"] == "https")["containerPort"] == 10443
    # Azure Workload Identity's defaults.
    defaults = (REPO_ROOT / "charts" / "kvault" / "values.yaml").read_text()
    block = defaults.split("\nworkloadIdentity:\n", 1)[1].split("\n\n", 1)[0]
    for line in ("enabled: true", "tenantId: adfs", "audience: api://AzureADTokenExchange",
                 "tokenExpirationSeconds: 3600", "failurePolicy: Fail"):
        assert f"  {line}\n" in block + "\n", line
    for sets in (
        ["workloadIdentity.failurePolicy=Sometimes"],
        ["workloadIdentity.tokenExpirationSeconds=600"],
        ["workloadIdentity.tokenExpirationSeconds=86401"],
        ["workloadIdentity.tenantId="],
        ["workloadIdentity.injectProxySidecar=true"],  # unknown key
        ["operator.httpsPort=0"],
    ):
        out = render(sets=sets, check=False)
        assert out.returncode != 0, f"{sets} was accepted"
        assert "schema" in out.stderr, out.stderr


def test_webhook_values_are_documented():
    readme = (REPO_ROOT / "charts" / "kvault" / "README.md").read_text()
    for key in ("workloadIdentity.enabled", "workloadIdentity.failurePolicy",
                "workloadIdentity.tenantId", "operator.httpsPort"):
        assert f"| `{key}` |" in readme, key
