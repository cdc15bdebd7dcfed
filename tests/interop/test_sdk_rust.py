"""The official Azure SDK for Rust (azure_security_keyvault_secrets, -keys, -certificates, pinned
in tests/sdk-rust/Cargo.toml and Cargo.lock), unmodified, against a live `kvault dev`. The
program tests/sdk-rust runs the checks below; this test builds it (or takes the binary named
by KVAULT_SDK_RUST_BIN), runs it on the `certs` vault and requires every check to pass.
tests/sdk-rust is its own Cargo workspace, outside kvault's dependency tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import DEV_ADMIN, REPO_ROOT, TOKEN_USER
from sdk_checks import assert_every_check_passed

CRATE = REPO_ROOT / "tests" / "sdk-rust"

EXPECTED_CHECKS = [
    "secret.set_get",
    "secret.get_version",
    "secret.update_properties",
    "secret.list_paged_and_versions",
    "secret.delete_recover",
    "secret.backup_purge_restore",
    "key.create_get_list",
    "crypto.encrypt_decrypt_wrap_unwrap",
    "crypto.sign_verify_es256",
    "key.rotate_and_rotation_policy",
    "key.update_backup_delete_purge_restore",
    "cert.create_self_signed",
    "cert.get_and_policy",
    "cert.import_from_secret",
    "cert.contacts",
    "cert.issuers",
    "cert.list_delete_purge",
]

# The 1.1 betas send 2026-03-01-preview, a version kvault answers as the newest it knows.
EXPECTED_API_VERSIONS = {"2026-03-01-preview"}


def _program() -> Path:
    given = os.environ.get("KVAULT_SDK_RUST_BIN")
    if given:
        return Path(given)
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.fail("cargo is needed to build tests/sdk-rust (or set KVAULT_SDK_RUST_BIN)", pytrace=False)
    build = subprocess.run(
        [cargo, "build", "--quiet", "--locked", "--manifest-path", str(CRATE / "Cargo.toml")],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if build.returncode != 0:
        pytest.fail(f"building tests/sdk-rust failed:\n{build.stderr[-4000:]}", pytrace=False)
    return CRATE / "target" / "debug" / "kvault-sdk-interop"


def test_rust_sdk_against_kvault(certs_vault):
    program = _program()
    env = dict(os.environ)
    env.update(
        KVAULT_URL=certs_vault.url,
        KVAULT_TOKEN=certs_vault.token("--user", TOKEN_USER),
        KVAULT_ADMIN_TOKEN=certs_vault.token("--user", DEV_ADMIN),
        KVAULT_CA_FILE=str(certs_vault.ca),
    )
    proc = subprocess.run([str(program)], env=env, capture_output=True, text=True, timeout=300)
    assert_every_check_passed(proc, EXPECTED_CHECKS, EXPECTED_API_VERSIONS)
