"""The report format shared by the interop programs of the other SDKs (tests/interop/js,
tests/sdk-rust): one `ok <check>` or `FAIL <check>: <reason>` line per check, then
`api-versions <comma-separated list>`; exit status 0 only when every check passed."""

from __future__ import annotations

import subprocess
from typing import Iterable, Set



def parse_report(stdout: str):
    passed, failed, versions = set(), {}, set()
    for line in stdout.splitlines():
        if line.startswith("ok "):
            passed.add(line[3:].strip())
        elif line.startswith("FAIL "):
            name, _, reason = line[5:].partition(":")
            failed[name.strip()] = reason.strip()
        elif line.startswith("api-versions "):
            versions = {v for v in line[len("api-versions "):].strip().split(",") if v}
    return passed, failed, versions


def assert_every_check_passed(
    proc: subprocess.CompletedProcess, expected: Iterable[str], expected_versions: Set[str]
) -> None:
    passed, failed, versions = parse_report(proc.stdout)
    context = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    assert not failed, f"checks failed: {failed}\n{context}"
    missing = [c for c in expected if c not in passed]
    assert not missing, f"checks that did not report ok: {missing}\n{context}"
    assert proc.returncode == 0, context
    assert versions == expected_versions, f"api-versions sent: {versions}\n{context}"
