"""Workload identity (issue 21): unmodified `DefaultAzureCredential` apps against `kvault dev`.

`kvault dev` also serves a token service (AZURE_AUTHORITY_HOST in DIR/dev.env, tenant `adfs`)
that exchanges a federated (service-account style) token for a vault access token. Here the
REAL SDK credentials -- Python azure-identity and JS @azure/identity -- are run with no kvault
code in the client:

- in a fresh child process given exactly dev.env's environment, with a network guard
  (tests/interop/netguard.py, tests/interop/js/netguard.mjs) that maps *.kvault.localhost to
  127.0.0.1, refuses and records every other name and every non-loopback connect: the test
  asserts the SDK worked AND never tried a public host (e.g. login.microsoftonline.com);
- a service-account principal (`kvault token --sa team-a/web --federated-token-file F`) granted
  on the vault through /_kvault/policy;
- bad assertions: the Entra error (AADSTS code) that `ClientAuthenticationError` carries, and
  the raw HTTP answers (status, `error`, `error_codes`);
- the token service's audit line (`"operation":"TokenExchange"`, no token text).
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import WorkloadIdentityCredential
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from conftest import (
    DEV_ADMIN,
    KVAULT_BIN,
    REPO_ROOT,
    VAULT_DOMAIN,
    KvaultCredential,
    PolicyResponse,
    Vault,
    _free_port,
    _lower_keys,
    _stop,
    _wait_healthy,
    data_plane_request,
    get_policy,
    policy_doc,
    principal_ref,
    push_policy,
    unique_name,
)

INTEROP_DIR = REPO_ROOT / "tests" / "interop"
JS_DIR = INTEROP_DIR / "js"
TENANT = "adfs"
WI_AUDIENCE = "api://AzureADTokenExchange"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SA_NAMESPACE, SA_NAME = "team-a", "web"
SA_CLIENT_ID = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
CHILD_TIMEOUT_S = 180


# ---------------------------------------------------------------------------
# The vault (one per module) and its token service.
# ---------------------------------------------------------------------------


class WiVault:
    """A `kvault dev` started with --identity-listen 127.0.0.1:0, wrapped in conftest's Vault
    (so the policy and data-plane helpers work) plus what dev.env / dev.json say."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.env = vault.dev_env()
        self.info = json.loads((vault.state_dir / "dev.json").read_text())

    @property
    def state_dir(self) -> Path:
        return self.vault.state_dir

    @property
    def authority_host(self) -> str:
        return self.info["authority_host"]

    @property
    def token_url(self) -> str:
        return f"{self.authority_host}/{TENANT}/oauth2/v2.0/token"

    @property
    def scope(self) -> str:
        return self.vault.expected_scope

    @property
    def ca_bundle(self) -> str:
        return self.env["REQUESTS_CA_BUNDLE"]

    @property
    def admin_federated_token(self) -> str:
        return Path(self.env["AZURE_FEDERATED_TOKEN_FILE"]).read_text().strip()


@pytest.fixture(scope="module")
def wi(tmp_path_factory) -> WiVault:
    if not os.access(KVAULT_BIN, os.X_OK):
        pytest.fail(f"kvault binary not found or not executable at {KVAULT_BIN} (set KVAULT_BIN)", pytrace=False)
    base = tmp_path_factory.mktemp("vault-wi")
    state_dir = base / "state"
    state_dir.mkdir()
    log_dir = base / "logs"
    log_dir.mkdir()
    port = _free_port()
    url = f"https://wi.{VAULT_DOMAIN}:{port}"
    cmd = [
        KVAULT_BIN, "dev", "--state-dir", str(state_dir), "--listen", f"127.0.0.1:{port}",
        "--identity-listen", "127.0.0.1:0", "--url", url,
    ]
    out = open(log_dir / "stdout.log", "wb")
    err = open(log_dir / "stderr.log", "wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=str(base))
    vault = Vault(
        name="wi", port=port, url=url, state_dir=state_dir, log_dir=log_dir, proc=proc,
        credential=KvaultCredential(state_dir),
    )
    try:
        _wait_healthy(proc, port, vault.ca, log_dir, cmd)
        # dev.env and dev.json are written once both listeners are up.
        deadline = time.monotonic() + 30
        while not ((state_dir / "dev.json").exists() and (state_dir / "dev.env").exists()):
            if time.monotonic() > deadline:
                pytest.fail(f"kvault dev wrote no dev.env/dev.json:\n{vault.stderr()}", pytrace=False)
            time.sleep(0.1)
        get_policy(vault)
        push_policy(vault, policy_doc())
        w = WiVault(vault)
        for key in ("AZURE_AUTHORITY_HOST", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"):
            assert key in w.env, f"dev.env lacks {key}: {w.env}"
        assert w.env["AZURE_TENANT_ID"] == TENANT
        assert w.env["AZURE_CLIENT_ID"] == DEV_ADMIN
        assert w.env["AZURE_AUTHORITY_HOST"] == w.authority_host
        yield w
    finally:
        _stop(proc)
        out.close()
        err.close()


# ---------------------------------------------------------------------------
# Child processes under the network guard.
# ---------------------------------------------------------------------------


def _parse_guard(stderr: str) -> Dict[str, List[str]]:
    for line in reversed(stderr.splitlines()):
        if line.startswith("NETGUARD "):
            return json.loads(line[len("NETGUARD "):])
    return {}


def _assert_local_only(guard: Dict[str, List[str]], what: str, proc: subprocess.CompletedProcess) -> None:
    detail = (
        f"{what}: recorded lookups={guard.get('lookups')}\nconnects={guard.get('connects')}\n"
        f"refused={guard.get('refused')}\nexit={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-6000:]}"
    )
    assert guard, f"the network guard reported nothing (did it load?)\n{detail}"
    assert guard["lookups"], f"the guard recorded no lookup at all (not wired in?)\n{detail}"
    local = lambda n: n == VAULT_DOMAIN or n.endswith("." + VAULT_DOMAIN) or n == "localhost" or n.startswith("127.") or n == "::1"  # noqa: E731
    public = [n for n in guard["lookups"] if not local(n)]
    assert not public, f"the SDK looked up non-local names {public}\n{detail}"
    assert not guard["refused"], f"the guard refused {guard['refused']}\n{detail}"
    for c in guard["connects"]:
        # "host:port" (the JS guard records the host as given, a name the guarded lookup maps
        # to 127.0.0.1, or an address), or a Unix socket.
        host = c.rsplit(":", 1)[0] if not c.startswith(("unix", "AF_UNIX")) else "localhost"
        assert local(host), f"non-loopback connect {c}\n{detail}"


PY_PREAMBLE = f"import sys; sys.path.insert(0, {str(INTEROP_DIR)!r}); import netguard  # noqa\n"


def run_python_child(body: str, env: Dict[str, str], *args: str) -> Tuple[subprocess.CompletedProcess, Dict]:
    """`python -c PREAMBLE+body` with exactly `env` (the preamble imports netguard first)."""
    code = PY_PREAMBLE + textwrap.dedent(body)
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
        timeout=CHILD_TIMEOUT_S, cwd=str(Path(env.get("KVAULT_STATE_DIR", "/"))),
    )
    return proc, _parse_guard(proc.stderr)


def _result(proc: subprocess.CompletedProcess) -> Optional[Dict[str, Any]]:
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return None


PY_APP = """
import json, os, sys
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from azure.keyvault.keys import KeyClient
from azure.keyvault.certificates import CertificateClient

name, value = sys.argv[1], sys.argv[2]
url = os.environ["KVAULT_URL"]
credential = DefaultAzureCredential()
secrets = SecretClient(url, credential)
set_ = secrets.set_secret(name, value)
got = secrets.get_secret(name)
key = KeyClient(url, credential).create_ec_key(name + "-key", curve="P-256")
certs = [c.name for c in CertificateClient(url, credential).list_properties_of_certificates()]
print("RESULT " + json.dumps({"value": got.value, "id": got.id, "setId": set_.id,
                              "keyType": str(key.key_type), "keyId": key.id, "certs": certs}))
"""


def test_python_default_azure_credential_with_dev_env_only(wi):
    name, value = unique_name("wi-py"), f"value-{uuid.uuid4().hex}"
    proc, guard = run_python_child(PY_APP, dict(wi.env), name, value)
    result = _result(proc)
    assert proc.returncode == 0 and result is not None, (
        f"DefaultAzureCredential app failed (exit {proc.returncode})\nguard={guard}\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-8000:]}"
    )
    assert result["value"] == value, result
    assert result["id"].startswith(f"{wi.vault.url}/secrets/{name}/"), result
    assert "EC" in result["keyType"] and result["keyId"].startswith(f"{wi.vault.url}/keys/{name}-key/"), result
    assert isinstance(result["certs"], list)
    _assert_local_only(guard, "python DefaultAzureCredential", proc)
    # The guard really was in the way: a name it must refuse, in the same child, is refused.
    probe, probe_guard = run_python_child(
        "import socket\ntry:\n    socket.getaddrinfo('login.microsoftonline.com', 443)\nexcept OSError as e:\n"
        "    print('RESULT ' + __import__('json').dumps({'refused': str(e)}))\n",
        dict(wi.env),
    )
    assert (_result(probe) or {}).get("refused"), f"the guard let a public name through: {probe.stdout} {probe.stderr}"
    assert probe_guard["refused"] == ["lookup login.microsoftonline.com"], probe_guard


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "@azure" / "identity").is_dir() or not (
        JS_DIR / "node_modules" / "@azure" / "keyvault-secrets"
    ).is_dir():
        pytest.fail(
            "node or the JavaScript packages are missing: run `npm ci --prefix tests/interop/js` (needs node and npm)",
            pytrace=False,
        )
    return node


def test_js_default_azure_credential_with_dev_env_only(wi):
    node = _node()
    name, value = unique_name("wi-js"), f"value-{uuid.uuid4().hex}"
    proc = subprocess.run(
        [node, "--import", "./netguard.mjs", "workload_identity.mjs", name, value],
        cwd=JS_DIR, env=dict(wi.env), capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
    )
    guard = _parse_guard(proc.stderr)
    result = _result(proc)
    assert proc.returncode == 0 and result is not None, (
        f"JS DefaultAzureCredential app failed (exit {proc.returncode})\nguard={guard}\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-8000:]}"
    )
    assert result["value"] == value, result
    assert result["id"].startswith(f"{wi.vault.url}/secrets/{name}/"), result
    _assert_local_only(guard, "JS DefaultAzureCredential", proc)
    # The token service was reached (the guard saw its port), not some other credential.
    authority_port = urllib.parse.urlsplit(wi.authority_host).port
    assert any(c.endswith(f":{authority_port}") for c in guard["connects"]), guard
    # The guard really was in the way: a public name and a public address are refused.
    probe = subprocess.run(
        [node, "--import", "./netguard.mjs", "-e",
         "import('node:https').then(async ({default: https}) => {"
         " const dns = (await import('node:dns')).default;"
         " const look = await new Promise((r) => dns.lookup('login.microsoftonline.com', (e) => r(e ? e.code : 'resolved')));"
         " const go = (h) => new Promise((r) => https.get(`https://${h}/`, () => r('connected')).on('error', (e) => r(e.code)));"
         " console.log('RESULT ' + JSON.stringify({codes: [look, await go('login.microsoftonline.com'), await go('20.190.160.1')]})); })"],
        cwd=JS_DIR, env=dict(wi.env), capture_output=True, text=True, timeout=60,
    )
    probe_guard = _parse_guard(probe.stderr)
    assert (_result(probe) or {}).get("codes") == ["ENOTFOUND", "ECONNREFUSED", "ECONNREFUSED"], (
        f"{probe.stdout}\n{probe.stderr}"
    )
    assert probe_guard["refused"] == [
        "lookup login.microsoftonline.com", "connect login.microsoftonline.com:443", "connect 20.190.160.1:443",
    ], probe_guard


def test_service_account_principal(wi, tmp_path):
    token_file = tmp_path / "web.federated-token"
    cmd = [KVAULT_BIN, "token", "--state-dir", str(wi.state_dir), "--sa", f"{SA_NAMESPACE}/{SA_NAME}",
           "--federated-token-file", str(token_file)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{shlex.join(cmd)}: {out.stdout}\n{out.stderr}"
    exports: Dict[str, str] = {}
    for line in out.stdout.splitlines():
        if line.startswith("export "):
            k, _, v = line[len("export "):].partition("=")
            exports[k] = shlex.split(v)[0]
    assert exports == {
        "AZURE_AUTHORITY_HOST": wi.authority_host,
        "AZURE_TENANT_ID": TENANT,
        "AZURE_CLIENT_ID": SA_CLIENT_ID,
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
    }, out.stdout
    assert token_file.stat().st_mode & 0o077 == 0, oct(token_file.stat().st_mode)

    name, value = unique_name("wi-sa"), f"sa-{uuid.uuid4().hex}"
    wi.vault.client().set_secret(name, value)
    env = dict(wi.env)
    env.update(exports)
    env.pop("KVAULT_TOKEN", None)  # the app has no vault token of its own
    body = """
    import json, os, sys
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient
    from azure.core.exceptions import HttpResponseError
    client = SecretClient(os.environ["KVAULT_URL"], DefaultAzureCredential())
    try:
        print("RESULT " + json.dumps({"value": client.get_secret(sys.argv[1]).value}))
    except HttpResponseError as e:
        print("RESULT " + json.dumps({"status": e.status_code, "message": str(e)}))
    """
    # Without a grant: the service account authenticates but is not allowed (403).
    proc, guard = run_python_child(body, env, name)
    result = _result(proc)
    assert result is not None and result.get("status") == 403, f"{proc.stdout}\n{proc.stderr[-6000:]}"
    assert SA_CLIENT_ID in result["message"] or SA_NAME in result["message"], result

    push_policy(wi.vault, policy_doc(role_assignments=[
        {"principal": principal_ref("ServiceAccount", SA_NAME, SA_NAMESPACE), "role": "Key Vault Secrets User"},
    ]))
    proc, guard = run_python_child(body, env, name)
    result = _result(proc)
    assert proc.returncode == 0 and result == {"value": value}, (
        f"service account read failed: {result}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-8000:]}"
    )
    _assert_local_only(guard, "service-account DefaultAzureCredential", proc)
    recs = wi.vault.wait_for_audit(
        lambda r: r.get("operation") == "TokenExchange" and r.get("principalKind") == "ServiceAccount"
    )
    assert recs, wi.vault.audit_records()[-5:]


# ---------------------------------------------------------------------------
# Bad assertions.
# ---------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(key: ec.EllipticCurvePrivateKey, kid: str, claims: Dict[str, Any]) -> str:
    """A compact ES256 JWT (raw r||s signature), encoded by hand."""
    header = {"typ": "JWT", "alg": "ES256", "kid": kid}
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _claims(wi: WiVault, **over: Any) -> Dict[str, Any]:
    now = int(time.time())
    claims = {"iss": wi.info["issuer"], "aud": WI_AUDIENCE, "sub": DEV_ADMIN, "iat": now, "nbf": now, "exp": now + 600}
    claims.update(over)
    return claims


def _issuer_key(wi: WiVault) -> ec.EllipticCurvePrivateKey:
    return serialization.load_pem_private_key((wi.state_dir / "issuer-key.pem").read_bytes(), password=None)


def _case_assertion(wi: WiVault, case: str, tmp_path: Path) -> str:
    if case == "wrong_audience":
        return _mint(wi, "--user", DEV_ADMIN, "--audience", "https://other")
    if case == "expired":
        now = int(time.time())
        return sign_jwt(_issuer_key(wi), wi.info["kid"],
                        _claims(wi, iat=now - 3600, nbf=now - 3600, exp=now - 600))
    if case == "other_issuer":
        return sign_jwt(ec.generate_private_key(ec.SECP256R1()), "other-kid",
                        _claims(wi, iss="https://issuer.example.com/other"))
    if case == "bad_signature":
        return sign_jwt(ec.generate_private_key(ec.SECP256R1()), wi.info["kid"], _claims(wi))
    return wi.admin_federated_token  # client_id / tenant / scope cases use a valid assertion


def _mint(wi: WiVault, *args: str) -> str:
    cmd = [KVAULT_BIN, "token", "--state-dir", str(wi.state_dir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{shlex.join(cmd)}: {proc.stderr}"
    return proc.stdout.strip()


# case -> (client_id, tenant, scope, expected HTTP status, error, AADSTS code). kvault answers every
# assertion failure as invalid_client with 401 (RFC 6749 5.2), unknown tenant and bad scope with 400.
BAD_CASES = {
    "wrong_audience": (DEV_ADMIN, TENANT, None, 401, "invalid_client", 700212),
    "expired": (DEV_ADMIN, TENANT, None, 401, "invalid_client", 700024),
    "other_issuer": (DEV_ADMIN, TENANT, None, 401, "invalid_client", 700211),
    "bad_signature": (DEV_ADMIN, TENANT, None, 401, "invalid_client", 700027),
    "client_id_mismatch": ("someone-else", TENANT, None, 401, "invalid_client", 70021),
    "other_tenant": (DEV_ADMIN, "contoso", None, 400, "invalid_request", 90002),
    "bad_scope": (DEV_ADMIN, TENANT, "https://kvault.localhost/not-a-scope", 400, "invalid_scope", 1002012),
}


@pytest.mark.parametrize("case", [c for c in BAD_CASES if c != "bad_scope"])
def test_bad_assertion_sdk_error(wi, case, tmp_path, monkeypatch):
    client_id, tenant, _, _, _, code = BAD_CASES[case]
    token_file = tmp_path / "assertion"
    token_file.write_text(_case_assertion(wi, case, tmp_path))
    credential = WorkloadIdentityCredential(
        tenant_id=tenant, client_id=client_id, token_file_path=str(token_file),
        authority=wi.authority_host, connection_verify=wi.ca_bundle,
    )
    # Record what the credential resolves (in this process: conftest's getaddrinfo patch):
    # even for an unknown tenant it must not go looking for a public authority.
    looked_up: List[str] = []
    patched = socket.getaddrinfo

    def recording_getaddrinfo(host, *args, **kwargs):
        looked_up.append(str(host))
        return patched(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording_getaddrinfo)
    with pytest.raises(ClientAuthenticationError) as info:
        credential.get_token(wi.scope)
    assert f"AADSTS{code}" in str(info.value), f"{case}: {info.value}"
    assert looked_up and all(h.endswith("." + VAULT_DOMAIN) for h in looked_up), looked_up


def token_request(wi: WiVault, form: Dict[str, str], tenant: str = TENANT) -> PolicyResponse:
    url = f"{wi.authority_host}/{tenant}/oauth2/v2.0/token"
    req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    ctx = ssl.create_default_context(cafile=str(wi.vault.ca))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(req, timeout=30) as resp:
            return PolicyResponse(resp.status, _lower_keys(resp.headers), resp.read().decode())
    except urllib.error.HTTPError as e:
        return PolicyResponse(e.code, _lower_keys(e.headers), e.read().decode(errors="replace"))


def _form(wi: WiVault, assertion: str, client_id: str = DEV_ADMIN, scope: Optional[str] = None) -> Dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "scope": scope or wi.scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_assertion_raw_http(wi, case, tmp_path):
    client_id, tenant, scope, status, error, code = BAD_CASES[case]
    assertion = _case_assertion(wi, case, tmp_path)
    resp = token_request(wi, _form(wi, assertion, client_id, scope), tenant=tenant)
    body = resp.json
    detail = f"{case}: HTTP {resp.status} {resp.text}"
    assert resp.status == status, detail
    assert body["error"] == error, detail
    assert body["error_codes"] == [code], detail
    assert body["error_description"].startswith(f"AADSTS{code}: "), detail
    assert "access_token" not in body, detail
    assert assertion not in resp.text, f"the answer echoes the assertion: {detail}"


def test_service_token_works_on_vault_and_federated_token_does_not(wi):
    resp = token_request(wi, _form(wi, wi.admin_federated_token))
    assert resp.status == 200, resp.text
    body = resp.json
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0, body
    access = body["access_token"]
    ok = data_plane_request(wi.vault, "GET", "/secrets", token=access)
    assert ok.status == 200, f"the service's token was refused by the vault: {ok.status} {ok.text}"
    # The federated token itself (audience api://AzureADTokenExchange) is not for the vault.
    refused = data_plane_request(wi.vault, "GET", "/secrets", token=wi.admin_federated_token)
    assert refused.status == 401, f"the vault accepted a workload-identity assertion: {refused.status} {refused.text}"
    challenge = refused.headers.get("www-authenticate", "")
    assert f'authorization="{wi.authority_host}/{TENANT}"' in challenge, challenge


def test_token_exchange_is_audited_without_token_text(wi):
    resp = token_request(wi, _form(wi, wi.admin_federated_token))
    assert resp.status == 200, resp.text
    access = resp.json["access_token"]
    bad = token_request(wi, _form(wi, wi.admin_federated_token, client_id="someone-else"))
    assert bad.status == 401, bad.text
    recs = wi.vault.wait_for_audit(lambda r: r.get("operation") == "TokenExchange", minimum=2)
    assert any(r.get("status") == 200 and r.get("principalId") == DEV_ADMIN for r in recs), recs
    assert any(r.get("status") == 401 for r in recs), recs
    text = wi.vault.audit_log.read_text()
    assert '"operation":"TokenExchange"' in text
    for secret in (access, wi.admin_federated_token):
        for part in secret.split("."):
            assert part not in text, "the audit log contains token text"
    assert "eyJ" not in text, "the audit log contains something that looks like a JWT"


def _get_json(wi: WiVault, path: str) -> Any:
    ctx = ssl.create_default_context(cafile=str(wi.vault.ca))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    with opener.open(wi.authority_host + path, timeout=30) as resp:
        assert resp.status == 200, path
        return json.loads(resp.read())


def test_discovery_documents_and_access_token_signature(wi):
    """What MSAL reads first (ADFS-style authority): the OpenID configuration names the token
    endpoint under the authority; the access token verifies with the JWKS it names and is for
    the vault's resource; the v1-style path (MSAL.NET/MSAL4J for ADFS) answers the same way."""
    authority = f"{wi.authority_host}/{TENANT}"
    config = _get_json(wi, f"/{TENANT}/.well-known/openid-configuration")
    assert config["token_endpoint"] == f"{authority}/oauth2/v2.0/token", config
    assert config["issuer"] == authority, config
    assert config["jwks_uri"].startswith(wi.authority_host + "/"), config
    jwks = _get_json(wi, urllib.parse.urlsplit(config["jwks_uri"]).path)

    for path in ("/oauth2/v2.0/token", "/oauth2/token"):
        req = urllib.request.Request(
            authority + path, data=urllib.parse.urlencode(_form(wi, wi.admin_federated_token)).encode(), method="POST"
        )
        ctx = ssl.create_default_context(cafile=str(wi.vault.ca))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
        with opener.open(req, timeout=30) as resp:
            access = json.loads(resp.read())["access_token"]
        head_b64, claims_b64, sig_b64 = access.split(".")
        pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
        header = json.loads(base64.urlsafe_b64decode(pad(head_b64)))
        claims = json.loads(base64.urlsafe_b64decode(pad(claims_b64)))
        assert claims["iss"] == authority and claims["aud"] == wi.vault.resource and claims["sub"] == DEV_ADMIN, claims
        assert claims["exp"] - claims["iat"] <= 3600, claims
        jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
        assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and header["alg"] == "ES256", (jwk, header)
        public = ec.EllipticCurvePublicNumbers(
            int.from_bytes(base64.urlsafe_b64decode(pad(jwk["x"])), "big"),
            int.from_bytes(base64.urlsafe_b64decode(pad(jwk["y"])), "big"),
            ec.SECP256R1(),
        ).public_key()
        raw = base64.urlsafe_b64decode(pad(sig_b64))
        public.verify(
            encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
            f"{head_b64}.{claims_b64}".encode(),
            ec.ECDSA(hashes.SHA256()),
        )
