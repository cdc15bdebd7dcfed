"""The chart's monitoring bundle: its PromQL parses (Prometheus' grammar), and every metric it
names is one kvault's code registers, so a renamed metric cannot silently empty an alert or a
dashboard panel."""

import json
import re

import promql_parser
import pytest

from conftest import REPO_ROOT, render

VALUES = REPO_ROOT / "tests" / "chart" / "values" / "monitoring.yaml"


def registered_metrics():
    """Every metric name the Rust code registers, with the suffixes Prometheus adds."""
    names = set()
    prefixes = {
        "src/server": "kvault_", "src/provider": "kvault_provider_", "src/listener.rs": "",
    }
    for path in (REPO_ROOT / "src").rglob("*.rs"):
        text = path.read_text()
        rel = str(path.relative_to(REPO_ROOT))
        prefix = next((p for d, p in prefixes.items() if rel.startswith(d)), "")
        for name in re.findall(r'register\(\s*"([a-z_]+)"', text):
            names.add(name if name.startswith(("kvault_", "process_")) else prefix + name)
        names.update(re.findall(r'"(process_[a-z_]+)"', text))
    # The listener's connection metrics are registered under each program's prefix.
    out = set()
    for n in names:
        out.update({n, f"{n}_total", f"{n}_bucket", f"{n}_count", f"{n}_sum"})
    out.add("up")
    return out


def metric_names(expr):
    return set(re.findall(r"\b((?:kvault|process)_[a-z_]+|up)\b(?=\s*[{\[)\s]|$)", expr))


def bundle():
    objects = render(VALUES)
    rule = next(o for o in objects if o["kind"] == "PrometheusRule")
    dash = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard"))
    return objects, rule, json.loads(dash["data"]["kvault.json"])


def test_the_bundle_renders_its_four_kinds():
    objects, _, _ = bundle()
    kinds = sorted(o["kind"] for o in objects if o["apiVersion"] == "monitoring.coreos.com/v1")
    assert kinds == ["PodMonitor", "PodMonitor", "PrometheusRule", "ServiceMonitor"]
    assert not any(o["apiVersion"] == "monitoring.coreos.com/v1" for o in render(None))


def test_alerts_parse_and_name_only_registered_metrics():
    _, rule, _ = bundle()
    known = registered_metrics()
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert {a["alert"] for a in alerts} >= {
        "KvaultVaultDown", "KvaultFailingClosed", "KvaultThrottling", "KvaultObjectsNearExpiry",
        "KvaultOperatorReconcileErrors", "KvaultProviderMountErrors"}
    for a in alerts:
        promql_parser.parse(a["expr"])
        missing = metric_names(a["expr"]) - known
        assert not missing, f"{a['alert']}: {missing} are not metrics kvault registers"


def test_dashboard_panels_parse_and_name_only_registered_metrics():
    _, _, dash = bundle()
    known = registered_metrics()
    assert dash["uid"] == "kvault-overview" and dash["panels"]
    for p in dash["panels"]:
        for t in p["targets"]:
            expr = t["expr"].replace("$namespace", ".*")
            promql_parser.parse(expr)
            missing = metric_names(expr) - known
            assert not missing, f"panel {p['title']!r}: {missing} are not registered metrics"


@pytest.mark.parametrize("name", ["kvault_requests_total", "kvault_operator_expiring_objects",
                                  "kvault_build_info", "process_resident_memory_bytes"])
def test_the_metrics_the_bundle_relies_on_are_registered(name):
    assert name in registered_metrics()
