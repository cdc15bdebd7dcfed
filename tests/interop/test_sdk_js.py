"""The official Azure Key Vault SDKs for JavaScript (@azure/keyvault-secrets, -keys,
-certificates, pinned in tests/interop/js/package.json), unmodified, against a live `kvault dev`:
tests/interop/js/interop.mjs runs the checks below and reports each one; this test runs it on
the `certs` vault and requires every check to pass. Install its packages with
`npm ci --prefix tests/interop/js` (scripts/test does).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import DEV_ADMIN, REPO_ROOT, TOKEN_USER
from sdk_checks import assert_every_check_passed

JS_DIR = REPO_ROOT / "tests" / "interop" / "js"

# Every check interop.mjs must report as `ok`: a check that silently stops running fails here.
EXPECTED_CHECKS = [
    "secret.set",
    "secret.get",
    "secret.get_version",
    "secret.update_properties",
    "secret.list_paged",
    "secret.list_versions",
    "secret.delete_get_deleted_recover",
    "secret.backup_restore",
    "secret.purge",
    "key.create_rsa_ec",
    "key.get_list_update",
    "key.rotate_and_rotation_policy",
    "crypto.encrypt_decrypt_rsa_oaep",
    "crypto.wrap_unwrap",
    "crypto.sign_verify_es256_rs256",
    "key.random_bytes",
    "key.backup_restore_delete_purge",
    "cert.create_self_signed",
    "cert.get_and_operation",
    "cert.policy_get_update",
    "cert.import_pfx",
    "cert.contacts",
    "cert.issuers",
    "cert.list",
    "cert.unknown_issuer_pending",
    "cert.delete_purge",
]

# What the pinned packages send (docs/compatibility.md): certificates and keys 2025-07-01,
# secrets 2026-04-01.
EXPECTED_API_VERSIONS = {"2025-07-01", "2026-04-01"}


def test_javascript_sdks_against_kvault(certs_vault):
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "@azure" / "keyvault-secrets").is_dir():
        pytest.fail(
            "the JavaScript SDKs are not installed: run `npm ci --prefix tests/interop/js` (needs node and npm)",
            pytrace=False,
        )
    env = dict(os.environ)
    env.update(
        KVAULT_URL=certs_vault.url,
        KVAULT_TOKEN=certs_vault.token("--user", TOKEN_USER),
        KVAULT_ADMIN_TOKEN=certs_vault.token("--user", DEV_ADMIN),
        NODE_EXTRA_CA_CERTS=str(certs_vault.ca),
    )
    proc = subprocess.run(
        [node, "--import", "./resolve.mjs", "interop.mjs"],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_every_check_passed(proc, EXPECTED_CHECKS, EXPECTED_API_VERSIONS)
