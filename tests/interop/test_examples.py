"""The README's Python quickstart (examples/python/quickstart.py) runs against kvault dev,
with plain DefaultAzureCredential() and nothing but dev.env's variables."""

import os
import runpy
import shlex

from conftest import REPO_ROOT


def _dev_env(state_dir):
    env = {}
    for line in (state_dir / "dev.env").read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = shlex.split(value)[0]
    return env


def test_quickstart_example_runs_unmodified(vault_factory, monkeypatch, capsys):
    v = vault_factory.start("quickstart")
    # Exactly what `. ./.kvault/dev.env` gives a shell.
    env = _dev_env(v.state_dir)
    for key in ("AZURE_AUTHORITY_HOST", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"):
        assert key in env, f"dev.env does not export {key}"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # The example must get its token through DefaultAzureCredential (workload identity at
    # the dev token service), not from the dev administrator's ready-made vault token.
    monkeypatch.delenv("KVAULT_TOKEN", raising=False)
    for key in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME"):
        monkeypatch.delenv(key, raising=False)
    runpy.run_path(str(REPO_ROOT / "examples" / "python" / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "db-password = s3cret" in out
    assert "listed: db-password" in out
    assert "deleted and recovered: s3cret" in out
