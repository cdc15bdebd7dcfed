"""charts/kvault with the real helm: lint, render with the default and several other value
sets, validate every object against the Kubernetes (or kvault CRD) schemas, and check the
chart against the code: CRDs, version, the operator's RBAC, flags and environment."""

import re
import subprocess

import pytest
import yaml

from conftest import (
    CHART, NAMESPACE, REPO_ROOT, helm, kvault_bin, load_yaml_documents, render,
    validate_object, value_args, values_files,
)

VALUE_SETS = [None, *values_files()]
IDS = ["defaults", *[p.stem for p in values_files()]]


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def one(objects, kind, component=None):
    found = [o for o in by_kind(objects, kind)
             if component is None
             or o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component]
    assert len(found) == 1, f"expected one {kind} ({component}), got {[o['metadata']['name'] for o in found]}"
    return found[0]


def cargo_version():
    text = (REPO_ROOT / "Cargo.toml").read_text()
    m = re.search(r'^\[package\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.M | re.S)
    assert m, "no [package] version in Cargo.toml"
    return m.group(1)


# --- the chart and the repository ----------------------------------------------------------


def test_chart_version_and_app_version_are_the_crates():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == cargo_version()
    assert str(chart["appVersion"]) == cargo_version()


def test_chart_crds_are_the_generated_ones():
    repo = {p.name: p.read_text() for p in (REPO_ROOT / "crds").glob("*.yaml")}
    chart = {p.name: p.read_text() for p in (CHART / "crds").glob("*")}
    stale = sorted(n for n in repo.keys() | chart.keys() if repo.get(n) != chart.get(n))
    assert not stale, (
        f"charts/kvault/crds/ differs from crds/ ({', '.join(stale)}): run scripts/regen-crds"
    )


def test_crds_are_valid_custom_resource_definitions():
    for path in sorted((CHART / "crds").glob("*.yaml")):
        for crd in load_yaml_documents(path):
            validate_object(crd)


# --- helm lint and template ------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS, ids=IDS)
def test_helm_lint(values):
    out = helm("lint", str(CHART), "--namespace", NAMESPACE, "--kube-version", "1.33.0",
               *value_args(values), check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("values", VALUE_SETS, ids=IDS)
def test_every_rendered_object_is_valid(values):
    objects = render(values, include_crds=True)
    kinds = set()
    for obj in objects:
        validate_object(obj)
        kinds.add(obj["kind"])
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                               "CSIDriver", "MutatingWebhookConfiguration"):
            # Everything in the release namespace, but the Roles of watched namespaces.
            watched = obj["kind"] in ("Role", "RoleBinding") and \
                obj["metadata"]["name"].endswith("-operator-vaults")
            if not watched:
                assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]
    assert "CustomResourceDefinition" in kinds
    assert "Deployment" in kinds


def test_values_the_schema_refuses():
    for sets in (
        ["operator.replicaz=2"],                       # unknown key
        ["image.pullPolicy=Sometimes"],
        ["operator.podCIDRs={pods}"],
        ["operator.clusterIssuer=http://insecure"],
        ["operator.serviceAccount.name=Not_A_Name"],
        ["provider.cacheTTL=soon"],
        ["secretsStoreCsiDriver.vaults[0].name=payments"],  # no namespace
    ):
        out = render(sets=sets, check=False)
        assert out.returncode != 0, f"{sets} was accepted"
        assert "schema" in out.stderr, out.stderr


# --- the operator --------------------------------------------------------------------------


def rules_as_set(rules):
    """Rules as (group, resource, resourceName, verb) / ("nonResourceURL", path, "", verb)
    tuples, so that how rules are grouped does not matter."""
    out = set()
    for r in rules or []:
        for verb in r["verbs"]:
            for url in r.get("nonResourceURLs") or []:
                out.add(("nonResourceURL", url, "", verb))
            for group in r.get("apiGroups") or []:
                for res in r.get("resources") or []:
                    for name in r.get("resourceNames") or [""]:
                        out.add((group, res, name, verb))
    return out


@pytest.mark.parametrize("values", VALUE_SETS, ids=IDS)
def test_operator_rbac_is_what_the_code_needs(values):
    objects = render(values)
    deployment = one(objects, "Deployment", "operator")
    sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    env = {e["name"]: e.get("value") for e in
           deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    watch = [n for n in (env.get("KVAULT_WATCH_NAMESPACES") or "").split(",") if n]
    printed = subprocess.run(
        [kvault_bin(), "operator", "--print-rbac", "--namespace", NAMESPACE,
         "--service-account", sa, *[a for n in watch for a in ("--watch-namespace", n)]],
        capture_output=True, text=True, check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(printed) if d]
    code = {d["kind"]: d for d in docs if d["kind"].startswith("Cluster")}
    code_roles = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Role"}

    cluster_role = one(objects, "ClusterRole", "operator")
    assert rules_as_set(cluster_role["rules"]) == rules_as_set(code["ClusterRole"]["rules"]), (
        "the chart's operator ClusterRole differs from src/operator/rbac.rs "
        "(kvault operator --print-rbac): update charts/kvault/templates/operator-rbac.yaml"
    )
    roles = {r["metadata"]["namespace"]: r for r in by_kind(objects, "Role")
             if r["metadata"]["labels"].get("app.kubernetes.io/component") == "operator"}
    assert sorted(roles) == sorted(code_roles) == sorted({NAMESPACE, *watch})
    for ns, role in roles.items():
        assert rules_as_set(role["rules"]) == rules_as_set(code_roles[ns]["rules"]), (
            f"the chart's operator Role in {ns} differs from src/operator/rbac.rs"
        )
    if watch:
        # No cluster-wide rights on any namespaced object: the JWKS URL, the watched
        # namespaces by name, PersistentVolumes and the webhook's configuration
        # (cluster-scoped).
        resources = {res for r in cluster_role["rules"] for res in r.get("resources") or []}
        assert resources == {"namespaces", "persistentvolumes", "mutatingwebhookconfigurations"}
        ns_rule = next(r for r in cluster_role["rules"] if "namespaces" in r.get("resources", []))
        assert sorted(ns_rule["resourceNames"]) == sorted(watch)
    role = roles[NAMESPACE]
    # Bound to the operator's service account, the Role in the operator's namespace.
    subject = {"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}
    crb = one(objects, "ClusterRoleBinding", "operator")
    bindings = [b for b in by_kind(objects, "RoleBinding")
                if b["metadata"]["labels"].get("app.kubernetes.io/component") == "operator"]
    assert crb["subjects"] == [subject] and all(b["subjects"] == [subject] for b in bindings)
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(roles)
    for b in bindings:
        assert b["roleRef"]["name"] == roles[b["metadata"]["namespace"]]["metadata"]["name"]
    assert crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": cluster_role["metadata"]["name"]}
    assert role["metadata"]["namespace"] == NAMESPACE
    assert one(objects, "ServiceAccount", "operator")["metadata"]["name"] == sa


def help_envs_and_flags(*subcommand):
    text = subprocess.run([kvault_bin(), *subcommand, "--help"], capture_output=True,
                          text=True, check=True).stdout
    return set(re.findall(r"\[env: ([A-Z0-9_]+)=", text)), set(re.findall(r"(--[a-z0-9-]+)", text))


def check_container_against_binary(container, subcommand):
    envs, flags = help_envs_and_flags(subcommand)
    global_envs, global_flags = help_envs_and_flags()
    known_envs = envs | global_envs | {"RUST_LOG"}  # RUST_LOG: the log filter
    for env in container.get("env", []):
        assert env["name"] in known_envs, f"kvault {subcommand} has no environment variable {env['name']}"
    args = container["args"]
    assert args[0] == subcommand
    for arg in args[1:]:
        flag = arg.split("=", 1)[0]
        assert flag in flags | global_flags, f"kvault {subcommand} has no flag {flag}"


@pytest.mark.parametrize("values", VALUE_SETS, ids=IDS)
def test_operator_deployment(values):
    objects = render(values)
    deployment = one(objects, "Deployment", "operator")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    check_container_against_binary(container, "operator")
    env = {e["name"]: e for e in container["env"]}
    # Its namespace, service account and name in the Lease come from the downward API.
    assert env["KVAULT_OPERATOR_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["KVAULT_OPERATOR_SERVICE_ACCOUNT"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.serviceAccountName"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # The vaults' NetworkPolicies admit the operator by this label (src/operator/desired.rs).
    m = re.search(r'OPERATOR_POD_LABEL: \(&str, &str\) = \("([^"]+)", "([^"]+)"\)',
                  (REPO_ROOT / "src" / "operator" / "desired.rs").read_text())
    assert m, "OPERATOR_POD_LABEL not found in src/operator/desired.rs"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels.get(m.group(1)) == m.group(2)
    assert deployment["spec"]["selector"]["matchLabels"][m.group(1)] == m.group(2)
    # Probes and metrics on one port, the one it listens on.
    port = container["ports"][0]
    assert port["name"] == "http-metrics"
    assert env["KVAULT_OPERATOR_LISTEN"]["value"] == f"0.0.0.0:{port['containerPort']}"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    # Restricted: non-root, read-only root filesystem (with a writable /tmp for its CA
    # file), no capabilities, no privilege escalation, the runtime's seccomp profile.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    replicas = deployment["spec"]["replicas"]
    pdbs = [o for o in by_kind(objects, "PodDisruptionBudget")]
    if replicas > 1 and values is not None and "operator-only" not in values.name:
        assert len(pdbs) == 1
    if replicas == 1:
        assert not pdbs


def test_default_operator_settings():
    objects = render()
    pod = one(objects, "Deployment", "operator")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert pod["serviceAccountName"] == "kvault-operator"
    assert env["KVAULT_IMAGE"] == "ghcr.io/kvault/kvault:0.1.0"
    assert pod["containers"][0]["image"] == "ghcr.io/kvault/kvault:0.1.0"
    assert "KVAULT_POD_CIDRS" not in env and "KVAULT_CLUSTER_ISSUER" not in env
    assert one(objects, "Service", "operator")["spec"]["ports"][0]["port"] == 8080


def test_non_default_operator_settings():
    objects = render(next(p for p in values_files() if p.stem == "ha"))
    deployment = one(objects, "Deployment", "operator")
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert deployment["spec"]["replicas"] == 2
    assert pod["containers"][0]["image"].endswith("@sha256:" + "0123456789abcdef" * 4)
    assert env["KVAULT_IMAGE"] == "registry.example.com/platform/kvault:0.1.0"
    assert env["KVAULT_POD_CIDRS"] == "10.244.0.0/16,fd00:10:244::/56"
    assert env["KVAULT_CLUSTER_ISSUER"] == "https://oidc.eks.example.com/id/ABC"
    assert env["KVAULT_IMAGE_PULL_POLICY"] == "IfNotPresent"
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    for o in objects:
        assert o["metadata"]["labels"]["team"] == "platform", o["metadata"]["name"]


# --- the provider --------------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS, ids=IDS)
def test_provider_daemonset(values):
    objects = render(values)
    daemonsets = by_kind(objects, "DaemonSet")
    if values is not None and values.stem == "operator-only":
        assert not daemonsets
        return
    (ds,) = daemonsets
    pod = ds["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    check_container_against_binary(container, "provider")
    env = {e["name"]: e.get("value") for e in container["env"]}
    # The socket in the host's provider directory, where the driver looks for it.
    providers = next(v for v in pod["volumes"] if v["name"] == "providers")
    mount = next(m for m in container["volumeMounts"] if m["name"] == "providers")
    assert env["KVAULT_PROVIDER_SOCKET"] == mount["mountPath"] + "/kvault.sock"
    assert providers["hostPath"]["path"] in (
        "/etc/kubernetes/secrets-store-csi-providers", "/var/run/secrets-store-csi-providers")
    assert providers["hostPath"]["type"] == "DirectoryOrCreate"
    # The vaults' CA from the operator's kvault-ca ConfigMap, optional until it exists.
    ca = next(v for v in pod["volumes"] if v["name"] == "vault-ca")
    assert ca["configMap"] == {"name": "kvault-ca", "optional": True}
    ca_mount = next(m for m in container["volumeMounts"] if m["name"] == "vault-ca")
    assert env["KVAULT_CA_FILE"] == ca_mount["mountPath"] + "/ca.crt" and ca_mount["readOnly"]
    # No API access, no host network, every node.
    assert pod["automountServiceAccountToken"] is False
    assert one(objects, "ServiceAccount", "provider")["automountServiceAccountToken"] is False
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    assert pod["priorityClassName"] == "system-node-critical"
    assert any(t.get("operator") == "Exists" for t in pod["tolerations"])
    # As tight as a CSI provider can be: root only for the root-owned host directory, but no
    # capability, no privilege escalation, read-only root filesystem, seccomp.
    sc = container["securityContext"]
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert [v for v in pod["volumes"] if "hostPath" in v] == [providers]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


# --- management roles and the CSI driver ---------------------------------------------------


def test_management_roles_are_aggregated_into_the_built_in_roles():
    objects = render()
    contributor = next(o for o in by_kind(objects, "ClusterRole")
                       if o["metadata"]["name"].endswith("-contributor"))
    reader = next(o for o in by_kind(objects, "ClusterRole")
                  if o["metadata"]["name"].endswith("-reader"))
    cl, rl = contributor["metadata"]["labels"], reader["metadata"]["labels"]
    assert cl["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert cl["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in cl
    assert rl["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert not any(k.startswith("rbac.authorization.k8s.io/aggregate-to-") and k.endswith(("admin", "edit"))
                   for k in rl)
    kinds = {"vaults", "accesspolicies", "roleassignments"}
    c = rules_as_set(contributor["rules"])
    r = rules_as_set(reader["rules"])
    for kind in kinds:
        for verb in ("create", "update", "patch", "delete"):
            assert ("kvault.dev", kind, "", verb) in c
        for verb in ("get", "list", "watch"):
            assert ("kvault.dev", kind, "", verb) in r
    # The reader reads nothing but kvault resources, and changes nothing.
    assert {g for g, *_ in r} == {"kvault.dev"}
    assert {v for *_, v in r} == {"get", "list", "watch"}
    # Neither role touches Secrets (the master keys).
    assert not any(res == "secrets" for _, res, _, _ in c | r)

    renamed = render(next(p for p in values_files() if p.stem == "renamed"))
    for role in by_kind(renamed, "ClusterRole"):
        assert not any(k.startswith("rbac.authorization.k8s.io/aggregate-to-")
                       for k in role["metadata"]["labels"])


def test_the_csi_driver_is_not_touched_by_default():
    assert not by_kind(render(), "CSIDriver")


def test_the_csi_driver_gets_one_token_audience_for_every_vault():
    values = next(p for p in values_files() if p.stem == "csi-driver")
    driver = one(render(values), "CSIDriver")
    assert driver["metadata"]["name"] == "secrets-store.csi.k8s.io"
    # Workload identity: one audience, whatever vaults are listed (they are legacy values).
    assert driver["spec"]["tokenRequests"] == [{"audience": "api://AzureADTokenExchange"}]
    assert driver["spec"]["podInfoOnMount"] is True
    assert driver["spec"]["requiresRepublish"] is True
    assert driver["spec"]["volumeLifecycleModes"] == ["Ephemeral"]
    custom = one(render(values, sets=["provider.tokenAudience=api://kvault"]), "CSIDriver")
    assert custom["spec"]["tokenRequests"] == [{"audience": "api://kvault"}]
    # No vault needs to be listed any more.
    assert one(render(sets=["secretsStoreCsiDriver.manageCSIDriver=true"]), "CSIDriver")


def test_the_legacy_csi_driver_gets_the_vaults_urls_as_token_audiences():
    values = next(p for p in values_files() if p.stem == "csi-driver")
    driver = one(render(values, sets=["workloadIdentity.enabled=false"]), "CSIDriver")
    assert driver["spec"]["tokenRequests"] == [
        {"audience": "https://payments.team-a.svc"},
        {"audience": "https://legacy.team-b.svc"},
        {"audience": "kvault"},
    ]
    out = render(sets=["secretsStoreCsiDriver.manageCSIDriver=true",
                       "workloadIdentity.enabled=false"], check=False)
    assert out.returncode != 0 and "at least one audience" in out.stderr


def test_the_provider_exchanges_its_token_at_the_token_service():
    def provider_env(objects):
        ds = one(objects, "DaemonSet", "provider")
        (container,) = ds["spec"]["template"]["spec"]["containers"]
        check_container_against_binary(container, "provider")
        return {e["name"]: e.get("value") for e in container["env"]}

    env = provider_env(render())
    assert env["KVAULT_IDENTITY_AUTHORITY"] == \
        f"https://kv-kvault-operator-webhook.{NAMESPACE}.svc/adfs"
    assert env["KVAULT_IDENTITY_AUDIENCE"] == "api://AzureADTokenExchange"
    # The authority names the webhook's Service.
    service = next(o for o in by_kind(render(), "Service")
                   if o["metadata"]["name"] == "kv-kvault-operator-webhook")
    assert service["metadata"]["namespace"] == NAMESPACE
    legacy = provider_env(render(sets=["workloadIdentity.enabled=false"]))
    assert "KVAULT_IDENTITY_AUTHORITY" not in legacy


def test_notes_say_what_to_do_next():
    out = helm("install", "kv", str(CHART), "--dry-run=client", "--namespace", NAMESPACE,
               "--set", "secretsStoreCsiDriver.vaults[0].name=payments",
               "--set", "secretsStoreCsiDriver.vaults[0].namespace=team-a")
    notes = out.stdout.split("NOTES:", 1)[1]
    assert "rollout status deployment/kv-kvault-operator" in notes
    assert "tokenRequests[0].audience=api://AzureADTokenExchange" in notes
    # Nothing points into a repository checkout (an installed chart has none).
    assert "helm show crds" in notes and "kubectl apply --server-side -f -" in notes
    assert "-f examples/" not in notes and "-f charts/" not in notes
