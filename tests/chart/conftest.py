"""Shared helpers of the chart tests: the real helm binary, the kvault binary, and schema
validation of Kubernetes objects.

- Kubernetes' own kinds are validated with kubernetes-validate (the API's OpenAPI schemas,
  strict: unknown fields fail) for KUBERNETES_VERSION.
- kvault's kinds (kvault.dev) are validated against the openAPIV3Schema of the generated
  CRDs in crds/ with jsonschema, strict as `kubectl apply` is (unknown fields fail). The CEL
  rules of those schemas are evaluated by the Rust tests (src/api/tests.rs), not here.
- SecretProviderClass (the Secrets Store CSI Driver's CRD, not installed here) against
  schemas/secretproviderclass.json, written for these tests.
"""

import copy
import functools
import json
import os
import pathlib
import shutil
import subprocess

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "kvault"
VALUES_DIR = pathlib.Path(__file__).resolve().parent / "values"
SCHEMAS_DIR = pathlib.Path(__file__).resolve().parent / "schemas"

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion; k8s-openapi's v1_33).
KUBERNETES_VERSION = "1.33.0"

RELEASE = "kv"
NAMESPACE = "kvault-system"


def _helm_path():
    explicit = os.environ.get("HELM")
    if explicit:
        return explicit
    local = REPO_ROOT / ".tools" / "bin" / "helm"
    if local.exists():
        return str(local)
    found = shutil.which("helm")
    if found:
        return found
    pytest.exit("helm not found: run scripts/install-helm (or set HELM)", returncode=2)


@functools.lru_cache(maxsize=None)
def helm_bin():
    return _helm_path()


@functools.lru_cache(maxsize=None)
def kvault_bin():
    """KVAULT_BIN, else a debug build of the current tree."""
    explicit = os.environ.get("KVAULT_BIN")
    if explicit:
        return explicit
    subprocess.run(["cargo", "build", "--quiet", "--bin", "kvault"], cwd=REPO_ROOT, check=True)
    return str(REPO_ROOT / "target" / "debug" / "kvault")


def helm(*args, check=True):
    return subprocess.run(
        [helm_bin(), *args], cwd=REPO_ROOT, capture_output=True, text=True, check=check
    )


def values_files():
    return sorted(VALUES_DIR.glob("*.yaml"))


def value_args(values_file=None, sets=()):
    args = []
    if values_file is not None:
        args += ["-f", str(values_file)]
    for s in sets:
        args += ["--set", s]
    return args


def render(values_file=None, sets=(), include_crds=False, check=True):
    """`helm template` of the chart; the list of objects (or the failed process)."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE,
            "--kube-version", KUBERNETES_VERSION, *value_args(values_file, sets)]
    if include_crds:
        args.append("--include-crds")
    out = helm(*args, check=False)
    if not check:
        return out
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def load_yaml_documents(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# --- schemas -------------------------------------------------------------------------------


def _crd_to_jsonschema(s):
    """An OpenAPI v3 structural schema (as CRDs write it) as a JSON schema that refuses
    unknown fields, as the API server's strict field validation does."""
    if isinstance(s, list):
        return [_crd_to_jsonschema(x) for x in s]
    if not isinstance(s, dict):
        return s
    out = {k: _crd_to_jsonschema(v) for k, v in s.items()
           if not k.startswith("x-kubernetes-") and k != "nullable"}
    if s.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if s.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (out.get("type") == "object" or out.get("type") == ["object", "null"]) \
            and "properties" in out and "additionalProperties" not in out \
            and not s.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=None)
def crd_schemas():
    """{(apiVersion, kind): JSON schema} from crds/*.yaml."""
    schemas = {}
    for path in sorted((REPO_ROOT / "crds").glob("*.yaml")):
        for crd in load_yaml_documents(path):
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                s = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                js = _crd_to_jsonschema(s)
                js.setdefault("required", [])
                for field in ("apiVersion", "kind", "metadata"):
                    if field not in js["required"]:
                        js["required"].append(field)
                js["properties"]["apiVersion"] = {"const": f"{group}/{version['name']}"}
                js["properties"]["kind"] = {"const": kind}
                js["properties"]["metadata"] = {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 253},
                        "namespace": {"type": "string"},
                    },
                }
                schemas[(f"{group}/{version['name']}", kind)] = js
    return schemas


@functools.lru_cache(maxsize=None)
def extra_schemas():
    schemas = {
        ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"):
            json.loads((SCHEMAS_DIR / "secretproviderclass.json").read_text()),
    }
    monitoring = json.loads((SCHEMAS_DIR / "prometheus-operator.json").read_text())
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        schemas[("monitoring.coreos.com/v1", kind)] = {"$defs": monitoring["$defs"], **monitoring[kind]}
    return schemas


def validate_object(obj):
    """Raises with a readable message when `obj` does not match its kind's schema. Returns
    what validated it."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    assert api_version and kind, f"not a Kubernetes object (no apiVersion/kind): {obj!r:.200}"
    name = f"{kind} {obj.get('metadata', {}).get('name')}"
    schema = crd_schemas().get((api_version, kind)) or extra_schemas().get((api_version, kind))
    if schema is not None:
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(obj),
                        key=lambda e: list(e.absolute_path))
        if errors:
            msgs = [f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}" for e in errors]
            raise AssertionError(f"{name} is invalid:\n  " + "\n  ".join(msgs))
        return "kvault CRD schema" if api_version.startswith("kvault.dev/") else "hand-written schema"
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = "/".join(map(str, e.absolute_path)) or "."
        raise AssertionError(f"{name} is invalid for Kubernetes {KUBERNETES_VERSION}: {path}: {e.message}")
    except kubernetes_validate.SchemaNotFoundError as e:
        raise AssertionError(f"{name}: {e.message}")
    return f"Kubernetes {KUBERNETES_VERSION} OpenAPI"
