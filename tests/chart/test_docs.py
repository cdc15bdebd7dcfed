"""Generated references stay current: docs/crd-reference.md (from the CRDs) and the chart's
README (from values.yaml), both written by scripts/regen-docs."""

import subprocess

from conftest import REPO_ROOT


def test_generated_references_are_current():
    out = subprocess.run([REPO_ROOT / "scripts" / "regen-docs", "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_every_value_and_every_spec_field_is_documented():
    readme = (REPO_ROOT / "charts" / "kvault" / "README.md").read_text()
    for key in ("operator.watchNamespaces", "monitoring.prometheusRule.enabled",
                "provider.adminPort", "rbac.create"):
        assert f"| `{key}` |" in readme, key
    reference = (REPO_ROOT / "docs" / "crd-reference.md").read_text()
    for field in ("softDelete.purgeProtection", "storage.embedded.size", "principal.issuer"):
        assert f"`{field}" in reference, field
