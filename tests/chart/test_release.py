"""The release tooling: the GitHub workflows call only scripts that exist, and the scripts
that need no registry (version agreement, chart packaging) work here."""

import os
import re
import subprocess
import tarfile

import pytest
import yaml

from conftest import REPO_ROOT, helm_bin

WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def crate_version():
    text = (REPO_ROOT / "Cargo.toml").read_text()
    return re.search(r'^version = "([^"]+)"', text, re.M).group(1)


def test_workflows_parse_and_call_existing_scripts():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "release.yml"}
    for f in files:
        doc = yaml.safe_load(f.read_text())
        # YAML 1.1 reads the key `on` as True.
        assert doc.get("on") or doc.get(True), f"{f.name}: no trigger"
        assert doc["jobs"], f"{f.name}: no jobs"
        for name, job in doc["jobs"].items():
            assert job.get("runs-on"), f"{f.name}/{name}: no runs-on"
            for step in job["steps"]:
                for script in re.findall(r"(?:\./)?((?:scripts|\.ci)/[\w.-]+)", step.get("run", "")):
                    path = REPO_ROOT / script
                    assert path.is_file(), f"{f.name}/{name}: {script} does not exist"
                    assert os.access(path, os.X_OK), f"{script} is not executable"


def test_release_version_agrees_and_refuses_another_tag():
    version = crate_version()
    out = subprocess.run([REPO_ROOT / "scripts" / "release-version", f"v{version}"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == version
    bad = subprocess.run([REPO_ROOT / "scripts" / "release-version", "v9.9.9"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "v9.9.9" in bad.stderr


def test_the_chart_packages_with_the_release_image(tmp_path):
    env = dict(os.environ, HELM=str(helm_bin()))
    out = subprocess.run(
        [REPO_ROOT / "scripts" / "package-chart", tmp_path, "ghcr.io/example/kvault"],
        capture_output=True, text=True, env=env, check=True)
    tgz = tmp_path / f"kvault-{crate_version()}.tgz"
    assert out.stdout.strip() == str(tgz)
    with tarfile.open(tgz) as t:
        values = yaml.safe_load(t.extractfile("kvault/values.yaml"))
        chart = yaml.safe_load(t.extractfile("kvault/Chart.yaml"))
    assert values["image"]["repository"] == "ghcr.io/example/kvault"
    assert chart["appVersion"] == chart["version"] == crate_version()


@pytest.mark.parametrize("name", ["LICENSE", "CHANGELOG.md", "SECURITY.md"])
def test_release_documents_exist(name):
    text = (REPO_ROOT / name).read_text()
    if name == "LICENSE":
        assert "Apache License" in text and "Version 2.0" in text
    if name == "CHANGELOG.md":
        assert f"## [{crate_version()}]" in text
