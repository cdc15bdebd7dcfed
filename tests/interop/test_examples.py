"""The README's Python quickstart (examples/python/quickstart.py) runs against kvault dev."""

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
    for key, value in _dev_env(v.state_dir).items():
        monkeypatch.setenv(key, value)
    runpy.run_path(str(REPO_ROOT / "examples" / "python" / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "db-password = s3cret" in out
    assert "listed: db-password" in out
    assert "deleted and recovered: s3cret" in out
