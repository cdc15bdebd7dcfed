"""Fixtures for the kvault <-> Azure SDK (azure-keyvault-secrets, azure-keyvault-keys,
azure-keyvault-certificates) interoperability suite.

Every vault used by the tests is a real `kvault dev` process started on a free
port with its own state directory. The official Azure SDK talks to it
unmodified; only the *environment* is adjusted (host name resolution, CA trust).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shlex
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest
from azure.core.credentials import AccessToken
from azure.keyvault.certificates import CertificateClient
from azure.keyvault.keys import KeyClient, KeyVaultKey
from azure.keyvault.keys.crypto import CryptographyClient
from azure.keyvault.secrets import SecretClient

REPO_ROOT = Path(__file__).resolve().parents[2]
KVAULT_BIN = os.environ.get("KVAULT_BIN", str(REPO_ROOT / "target" / "debug" / "kvault"))

# Parent domain of every dev vault: vault URLs are https://NAME.kvault.localhost:PORT and
# the server's challenge names resource="https://kvault.localhost:PORT".
VAULT_DOMAIN = "kvault.localhost"
STARTUP_TIMEOUT_S = 30.0
TOKEN_USER = "interop-user"
# The principal whose token `kvault dev` writes to DIR/dev.env (KVAULT_TOKEN): the only one
# the dev vault's initial policy grants anything, and its control plane (`/_kvault/policy`).
DEV_ADMIN = "dev-admin"
# What the suite's own principal (TOKEN_USER) is granted on every vault: every secrets
# operation the SDK exposes (set, get, list, update, delete, recover, purge, backup, restore).
SUITE_ROLE = "Key Vault Secrets Officer"
ALL_SECRET_PERMISSIONS = ["get", "list", "set", "delete", "recover", "backup", "restore", "purge"]
# What the keys tests grant the suite's principal on top (keys vaults only): every key
# operation, rotation policies included (`keys/*`, `keyrotationpolicies/*`).
CRYPTO_ROLE = "Key Vault Crypto Officer"
ALL_KEY_PERMISSIONS = [
    "get", "list", "create", "update", "import", "delete", "recover", "backup", "restore", "purge",
    "encrypt", "decrypt", "wrapKey", "unwrapKey", "sign", "verify",
    "rotate", "getrotationpolicy", "setrotationpolicy",
]
# Cryptographic operations only, and no `get`: a CryptographyClient for this principal gets 403
# when it fetches the key, so (as the SDK does for a caller without keys/get) it performs every
# operation in the vault instead of locally with the public key.
# What the certificates tests grant the suite's principal on top (certs vault only): every
# certificate operation, issuers included (`certificates/*`, `certificatecas/*`,
# `certificatecontacts/write`), reading certificate-backed secrets, and every key operation.
CERTS_ROLES = ["Key Vault Certificates Officer", "Key Vault Secrets User", CRYPTO_ROLE]
# The api-version the suite uses for raw data-plane requests (the certificates SDK's default).
RAW_API_VERSION = "2026-04-01"
CRYPTO_ONLY_PERMISSIONS = ["encrypt", "decrypt", "wrapKey", "unwrapKey", "sign", "verify"]
CRYPTO_REMOTE_USER = "crypto-remote"

# ---------------------------------------------------------------------------
# Host resolution.
#
# `*.kvault.localhost` does not resolve on every machine (glibc does not map
# sub-domains of `localhost` to the loopback address). The SDK must use the
# real vault host name (the challenge resource check requires the vault host to
# be a sub-domain of the resource host, and TLS/SNI use it too), so instead of
# touching the SDK we change the environment: any host equal to or ending in
# `.kvault.localhost` resolves to 127.0.0.1, everything else is passed through
# to the real resolver. requests/urllib3 and aiohttp's default (threaded)
# resolver both call `socket.getaddrinfo` at connection time, so this covers
# the sync and the async SDK.
# ---------------------------------------------------------------------------
_real_getaddrinfo = socket.getaddrinfo


def _is_kvault_host(host: Any) -> bool:
    if isinstance(host, (bytes, bytearray)):
        try:
            host = bytes(host).decode("ascii")
        except UnicodeDecodeError:
            return False
    if not isinstance(host, str):
        return False
    host = host.rstrip(".").lower()
    return host == VAULT_DOMAIN or host.endswith("." + VAULT_DOMAIN)


def _kvault_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - mirrors socket API
    if _is_kvault_host(host):
        host = "127.0.0.1"
    return _real_getaddrinfo(host, port, family, type, proto, flags)


socket.getaddrinfo = _kvault_getaddrinfo

try:  # If aiodns happens to be installed aiohttp would bypass getaddrinfo; pin the threaded resolver.
    import aiohttp.connector
    import aiohttp.resolver

    aiohttp.connector.DefaultResolver = aiohttp.resolver.ThreadedResolver  # type: ignore[attr-defined]
except Exception:  # pragma: no cover - aiohttp is in requirements.txt
    pass

# Never send vault traffic to an HTTP proxy that may be configured in the environment.
for _var in ("NO_PROXY", "no_proxy"):
    _parts = [p for p in os.environ.get(_var, "").split(",") if p]
    for _host in ("127.0.0.1", "localhost", "." + VAULT_DOMAIN, VAULT_DOMAIN):
        if _host not in _parts:
            _parts.append(_host)
    os.environ[_var] = ",".join(_parts)

# Full request/response traces (azure-core's network trace policy) are emitted at DEBUG
# level for clients built with logging_enable=True; pytest shows them for failing tests.
logging.getLogger("azure").setLevel(logging.DEBUG)
# ... and not a second, redacted copy of every exchange.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)


def unique_name(prefix: str) -> str:
    """A fresh secret name (letters, digits and hyphens only)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_port_pair() -> int:
    """A free port P with P+1 free too: `kvault dev --listen P` serves its token service on
    P+1 by default, and a random P+1 may be taken (a flake seen in CI)."""
    for _ in range(50):
        port = _free_port()
        if port >= 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")


def _jwt_exp(token: str) -> Optional[int]:
    """Best-effort read of the `exp` claim (used only to set AccessToken.expires_on)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        exp = json.loads(base64.urlsafe_b64decode(payload)).get("exp")
        return int(exp) if exp is not None else None
    except Exception:
        return None


def run_kvault_token(state_dir: Path, *extra: str) -> str:
    """Run `kvault token --state-dir DIR ...` and return the JWT it prints."""
    cmd = [KVAULT_BIN, "token", "--state-dir", str(state_dir), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(cmd)} exited with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    token = proc.stdout.strip()
    if not token or any(c.isspace() for c in token):
        raise RuntimeError(f"{shlex.join(cmd)} did not print a single token on stdout: {proc.stdout!r}")
    return token


class KvaultCredential:
    """A TokenCredential (legacy `get_token` protocol) backed by `kvault token`.

    Tokens are cached until 10 minutes before expiry. Every call's scopes and
    keyword arguments are recorded so tests can check what the SDK asked for.
    """

    def __init__(self, state_dir: Path, user: str = TOKEN_USER, ttl: str = "1h", groups: Sequence[str] = ()) -> None:
        self._state_dir = state_dir
        self._args = ["--user", user, "--ttl", ttl]
        for group in groups:
            self._args += ["--group", group]
        self._token: Optional[AccessToken] = None
        self.calls: List[Tuple[Tuple[str, ...], Dict[str, Any]]] = []

    @property
    def scopes(self) -> set:
        return {scope for scopes, _ in self.calls for scope in scopes}

    def _fetch(self) -> AccessToken:
        if self._token is None or self._token.expires_on - time.time() < 600:
            token = run_kvault_token(self._state_dir, *self._args)
            expires_on = _jwt_exp(token) or int(time.time()) + 3600
            self._token = AccessToken(token, expires_on)
        return self._token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls.append((tuple(scopes), dict(kwargs)))
        return self._fetch()

    def close(self) -> None:
        pass

    def __enter__(self) -> "KvaultCredential":
        return self

    def __exit__(self, *args: Any) -> None:
        pass


class AsyncKvaultCredential:
    """Async TokenCredential (awaitable `get_token`) backed by `kvault token`."""

    def __init__(self, state_dir: Path, user: str = TOKEN_USER, ttl: str = "1h") -> None:
        self._sync = KvaultCredential(state_dir, user=user, ttl=ttl)

    @property
    def calls(self):
        return self._sync.calls

    @property
    def scopes(self) -> set:
        return self._sync.scopes

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self._sync.calls.append((tuple(scopes), dict(kwargs)))
        return await asyncio.to_thread(self._sync._fetch)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> "AsyncKvaultCredential":
        return self

    async def __aexit__(self, *args: Any) -> None:
        pass


class StaticCredential:
    """Returns a fixed (e.g. garbage) token; records the scopes it was asked for."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.calls: List[Tuple[Tuple[str, ...], Dict[str, Any]]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls.append((tuple(scopes), dict(kwargs)))
        return AccessToken(self._token, int(time.time()) + 3600)

    def close(self) -> None:
        pass


@dataclass
class Vault:
    name: str
    port: int
    url: str
    state_dir: Path
    log_dir: Path
    proc: subprocess.Popen
    credential: KvaultCredential = field(repr=False)
    # The policy generation the vault has applied, as last seen by the suite (learned at
    # start-up, updated by every push_policy/get_policy); the next push uses a higher one.
    generation: int = 0

    @property
    def ca(self) -> Path:
        return self.state_dir / "ca.pem"

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit.log"

    @property
    def policy_url(self) -> str:
        return self.url + POLICY_PATH

    def dev_env(self) -> Dict[str, str]:
        """The `export KEY=VALUE` lines of DIR/dev.env, unquoted as a shell would."""
        values: Dict[str, str] = {}
        for line in (self.state_dir / "dev.env").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export "):].partition("=")
                values[key] = shlex.split(value)[0] if value else ""
        return values

    @property
    def admin_token(self) -> str:
        """dev.env's KVAULT_TOKEN: the dev-admin principal (Administrator, control plane)."""
        return self.dev_env()["KVAULT_TOKEN"]

    @property
    def resource(self) -> str:
        return f"https://{VAULT_DOMAIN}:{self.port}"

    @property
    def expected_scope(self) -> str:
        return self.resource + "/.default"

    def stderr(self) -> str:
        try:
            return (self.log_dir / "stderr.log").read_text(errors="replace")
        except OSError:
            return ""

    def client(self, credential: Any = None, **kwargs: Any) -> SecretClient:
        kwargs.setdefault("connection_verify", str(self.ca))
        kwargs.setdefault("logging_enable", True)
        return SecretClient(self.url, credential or self.credential, **kwargs)

    def key_client(self, credential: Any = None, **kwargs: Any) -> KeyClient:
        kwargs.setdefault("connection_verify", str(self.ca))
        kwargs.setdefault("logging_enable", True)
        return KeyClient(self.url, credential or self.credential, **kwargs)

    def certificate_client(self, credential: Any = None, **kwargs: Any) -> CertificateClient:
        kwargs.setdefault("connection_verify", str(self.ca))
        kwargs.setdefault("logging_enable", True)
        return CertificateClient(self.url, credential or self.credential, **kwargs)

    def crypto_client(self, key: "str | KeyVaultKey", credential: Any = None, **kwargs: Any) -> CryptographyClient:
        """A CryptographyClient for `key` (a KeyVaultKey or a key id) trusting the vault's CA."""
        kwargs.setdefault("connection_verify", str(self.ca))
        kwargs.setdefault("logging_enable", True)
        return CryptographyClient(key, credential or self.credential, **kwargs)

    def token(self, *extra: str) -> str:
        return run_kvault_token(self.state_dir, *extra)

    def audit_records(self) -> List[Dict[str, Any]]:
        """Every complete line of DIR/audit.log (one JSON object per request)."""
        try:
            text = self.audit_log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip() and line.endswith("}")]

    def wait_for_audit(self, predicate, minimum: int = 1, timeout: float = 10.0) -> List[Dict[str, Any]]:
        """The audit records matching `predicate`, once at least `minimum` of them have been
        written (the vault writes its audit log asynchronously, shortly after responding)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.audit_records() if predicate(r)]
            if len(found) >= minimum or time.monotonic() >= deadline:
                return found
            time.sleep(0.1)


# ---------------------------------------------------------------------------
# Policy (kvault-only control plane: `PUT/GET https://<vault>/_kvault/policy`).
#
# Since authorization landed, `kvault dev` starts with generation 1 in which only dev-admin
# holds a role. The SDK has no client for this endpoint, so the suite speaks it with urllib.
# ---------------------------------------------------------------------------
POLICY_PATH = "/_kvault/policy"


def principal_ref(kind: str, name: str, namespace: Optional[str] = None) -> Dict[str, Any]:
    ref: Dict[str, Any] = {"kind": kind, "name": name}
    if namespace is not None:
        ref["namespace"] = namespace
    return ref


def role_assignment(name: str, role: str, scope: Optional[str] = None, kind: str = "User") -> Dict[str, Any]:
    entry: Dict[str, Any] = {"principal": principal_ref(kind, name), "role": role}
    if scope is not None:
        entry["scope"] = scope
    return entry


def access_policy(
    name: str, secrets: Sequence[str], kind: str = "User", keys: Optional[Sequence[str]] = None
) -> Dict[str, Any]:
    permissions: Dict[str, Any] = {"secrets": list(secrets)}
    if keys is not None:
        permissions["keys"] = list(keys)
    return {"principal": principal_ref(kind, name), "permissions": permissions}


def policy_doc(
    role_assignments: Sequence[Dict[str, Any]] = (),
    access_policies: Sequence[Dict[str, Any]] = (),
    authorization: str = "RBAC",
    throttling: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """A whole policy document (no generation: push_policy picks the next one).

    Always keeps dev-admin as Key Vault Administrator and the suite's principal
    (interop-user) as Secrets Officer -- in AccessPolicy mode both also get every secret
    permission -- so fixtures and seeding keep working whatever a test grants on top.
    Throttling is off unless given.
    """
    doc: Dict[str, Any] = {
        "authorization": authorization,
        "roleAssignments": [
            role_assignment(DEV_ADMIN, "Key Vault Administrator"),
            role_assignment(TOKEN_USER, SUITE_ROLE),
            *role_assignments,
        ],
        "accessPolicies": [],
        "throttling": dict(throttling) if throttling is not None else {"enabled": False},
    }
    if authorization == "AccessPolicy":
        doc["accessPolicies"] = [
            access_policy(DEV_ADMIN, ALL_SECRET_PERMISSIONS),
            access_policy(TOKEN_USER, ALL_SECRET_PERMISSIONS),
        ]
    doc["accessPolicies"] += list(access_policies)
    return doc


@dataclass
class PolicyResponse:
    status: int
    headers: Dict[str, str]  # names lower-cased
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text) if self.text else None

    def describe(self, method: str, url: str, body: Optional[bytes]) -> str:
        sent = body.decode(errors="replace") if body is not None else "(none)"
        return f"{method} {url}\nrequest body: {sent}\n-> HTTP {self.status}\nheaders: {self.headers}\nbody: {self.text}"


def policy_request(
    vault: "Vault", method: str, doc: Any = None, token: Optional[str] = None, raw_body: Optional[bytes] = None
) -> PolicyResponse:
    """One raw request to /_kvault/policy (dev-admin's token unless `token` is given; pass
    token="" for none). Never raises for an HTTP error status."""
    body = raw_body if raw_body is not None else (json.dumps(doc).encode() if doc is not None else None)
    req = urllib.request.Request(vault.policy_url, data=body, method=method)
    if token is None:
        token = vault.admin_token
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    ctx = ssl.create_default_context(cafile=str(vault.ca))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(req, timeout=30) as resp:
            return PolicyResponse(resp.status, _lower_keys(resp.headers), resp.read().decode())
    except urllib.error.HTTPError as e:
        return PolicyResponse(e.code, _lower_keys(e.headers), e.read().decode(errors="replace"))


def data_plane_request(
    vault: "Vault",
    method: str,
    path: str,
    doc: Any = None,
    token: Optional[str] = None,
    api_version: str = RAW_API_VERSION,
) -> PolicyResponse:
    """One raw data-plane request, e.g. `POST /certificates/NAME/create`, for what the SDK
    cannot express (as dev-admin unless `token` is given). Never raises for an HTTP error status.
    The Key Vault challenge is skipped: the bearer token goes with the first request."""
    url = f"{vault.url}{path}?api-version={api_version}"
    body = json.dumps(doc).encode() if doc is not None else None
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Authorization", f"Bearer {token if token is not None else vault.admin_token}")
    req.add_header("Accept", "application/json")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    ctx = ssl.create_default_context(cafile=str(vault.ca))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(req, timeout=60) as resp:
            return PolicyResponse(resp.status, _lower_keys(resp.headers), resp.read().decode())
    except urllib.error.HTTPError as e:
        return PolicyResponse(e.code, _lower_keys(e.headers), e.read().decode(errors="replace"))


def _lower_keys(headers: Any) -> Dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def get_policy(vault: "Vault") -> Dict[str, Any]:
    """GET /_kvault/policy as dev-admin: {"appliedGeneration": N, "policy": {...}}."""
    resp = policy_request(vault, "GET")
    if resp.status != 200:
        pytest.fail(f"reading the policy failed:\n{resp.describe('GET', vault.policy_url, None)}", pytrace=False)
    status = resp.json
    vault.generation = status["appliedGeneration"]
    return status


def push_policy(vault: "Vault", doc: Dict[str, Any]) -> Dict[str, Any]:
    """Replaces the vault's policy with `doc` (as dev-admin) and returns the push status.

    Without a `generation` the document gets the vault's current one + 1. The document must
    keep dev-admin as Administrator and must say what throttling is (the server's default,
    when absent, is the cloud's budgets, enabled) -- build it with `policy_doc`.
    """
    doc = json.loads(json.dumps(doc))
    doc.setdefault("generation", vault.generation + 1)
    if role_assignment(DEV_ADMIN, "Key Vault Administrator") not in doc.get("roleAssignments", []):
        raise ValueError(f"a pushed policy must keep {DEV_ADMIN} as Key Vault Administrator: {doc}")
    if "throttling" not in doc:
        raise ValueError(f"a pushed policy must say whether throttling is enabled: {doc}")
    body = json.dumps(doc).encode()
    resp = policy_request(vault, "PUT", raw_body=body)
    if resp.status != 200:
        pytest.fail(f"pushing the policy failed:\n{resp.describe('PUT', vault.policy_url, body)}", pytrace=False)
    status = resp.json
    assert status["appliedGeneration"] == doc["generation"], status
    assert status["outcome"] in ("Applied", "Unchanged"), status
    vault.generation = status["appliedGeneration"]
    return status


def _wait_healthy(proc: subprocess.Popen, port: int, ca: Path, log_dir: Path, cmd: List[str]) -> None:
    health = f"https://127.0.0.1:{port}/_kvault/health"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last_error = "ca.pem not written yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if ca.exists():
            try:
                ctx = ssl.create_default_context(cafile=str(ca))
                opener = urllib.request.build_opener(
                    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
                )
                with opener.open(health, timeout=2) as resp:
                    if resp.status == 200:
                        return
                    last_error = f"health returned {resp.status}"
            except urllib.error.HTTPError as e:
                last_error = f"health returned {e.code}"
            except Exception as e:  # connection refused, TLS not ready, partial ca.pem, ...
                last_error = f"{type(e).__name__}: {e}"
        time.sleep(0.2)

    exit_code = proc.poll()
    if exit_code is None:
        _stop(proc)
    stderr = (log_dir / "stderr.log").read_text(errors="replace")
    stdout = (log_dir / "stdout.log").read_text(errors="replace")
    pytest.fail(
        f"kvault dev did not become healthy within {STARTUP_TIMEOUT_S:.0f}s "
        f"(exit code {exit_code}, last health error: {last_error})\n"
        f"command: {shlex.join(cmd)}\nstderr:\n{stderr}\nstdout:\n{stdout}",
        pytrace=False,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


class VaultFactory:
    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._vaults: List[Vault] = []
        self._log_files: List[Any] = []

    def start(
        self, name: str, retention_days: Optional[int] = None, purge_protection: bool = False, grant_suite: bool = True
    ) -> Vault:
        """Starts `kvault dev`; unless grant_suite=False, then pushes `policy_doc()` so the
        suite's principal (interop-user) may use every secrets operation."""
        if not os.access(KVAULT_BIN, os.X_OK):
            pytest.fail(
                f"kvault binary not found or not executable at {KVAULT_BIN} (set KVAULT_BIN)", pytrace=False
            )
        base = self._tmp.mktemp(f"vault-{name}")
        state_dir = base / "state"
        state_dir.mkdir()
        log_dir = base / "logs"
        log_dir.mkdir()
        port = _free_port_pair()
        url = f"https://{name}.{VAULT_DOMAIN}:{port}"
        cmd = [KVAULT_BIN, "dev", "--state-dir", str(state_dir), "--listen", f"127.0.0.1:{port}", "--url", url]
        if retention_days is not None:
            cmd += ["--retention-days", str(retention_days)]
        if purge_protection:
            cmd.append("--purge-protection")
        out = open(log_dir / "stdout.log", "wb")
        err = open(log_dir / "stderr.log", "wb")
        self._log_files += [out, err]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=str(base))
        vault = Vault(
            name=name,
            port=port,
            url=url,
            state_dir=state_dir,
            log_dir=log_dir,
            proc=proc,
            credential=KvaultCredential(state_dir),
        )
        self._vaults.append(vault)
        _wait_healthy(proc, port, vault.ca, log_dir, cmd)
        get_policy(vault)
        if grant_suite:
            push_policy(vault, policy_doc())
        return vault

    def close(self) -> None:
        for vault in self._vaults:
            _stop(vault.proc)
        for f in self._log_files:
            f.close()


@pytest.fixture(scope="session")
def vault_factory(tmp_path_factory):
    factory = VaultFactory(tmp_path_factory)
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def vault(vault_factory) -> Vault:
    """The main vault: default retention (90 days), no purge protection."""
    return vault_factory.start("interop")


@pytest.fixture(scope="session")
def list_vault(vault_factory) -> Vault:
    """A vault used only by the listing tests, so their counts are exact."""
    return vault_factory.start("listing")


@pytest.fixture(scope="session")
def protected_vault(vault_factory) -> Vault:
    """A vault with purge protection and 7-day retention."""
    return vault_factory.start("protected", retention_days=7, purge_protection=True)


@pytest.fixture(scope="session")
def foreign_vault(vault_factory) -> Vault:
    """Another vault with its own state dir, hence another master key."""
    return vault_factory.start("foreign")


@pytest.fixture(scope="session")
def client(vault) -> SecretClient:
    with vault.client() as c:
        yield c


def keys_policy_doc() -> Dict[str, Any]:
    """RBAC: the usual grants plus interop-user as Key Vault Crypto Officer."""
    return policy_doc(role_assignments=[role_assignment(TOKEN_USER, CRYPTO_ROLE)])


@pytest.fixture(scope="session")
def keys_vault(vault_factory) -> Vault:
    """The keys tests' vault (RBAC): interop-user is Secrets Officer and Crypto Officer."""
    v = vault_factory.start("keys")
    push_policy(v, keys_policy_doc())
    return v


@pytest.fixture(scope="session")
def key_client(keys_vault) -> KeyClient:
    with keys_vault.key_client() as c:
        yield c


@pytest.fixture(scope="session")
def crypto_vault(vault_factory) -> Vault:
    """A vault in AccessPolicy mode for remote-only cryptography: interop-user may do every key
    operation; CRYPTO_REMOTE_USER may only encrypt/decrypt/wrap/unwrap/sign/verify (no `get`)."""
    v = vault_factory.start("crypto")
    push_policy(
        v,
        policy_doc(
            authorization="AccessPolicy",
            access_policies=[
                access_policy(TOKEN_USER, [], keys=ALL_KEY_PERMISSIONS),
                access_policy(CRYPTO_REMOTE_USER, [], keys=CRYPTO_ONLY_PERMISSIONS),
            ],
        ),
    )
    return v


@pytest.fixture(scope="session")
def crypto_key_client(crypto_vault) -> KeyClient:
    """interop-user's KeyClient on the crypto vault (creates and imports the keys)."""
    with crypto_vault.key_client() as c:
        yield c


@pytest.fixture(scope="session")
def remote_credential(crypto_vault) -> KvaultCredential:
    return KvaultCredential(crypto_vault.state_dir, user=CRYPTO_REMOTE_USER)


def certs_policy_doc() -> Dict[str, Any]:
    """RBAC: the usual grants plus interop-user as Certificates Officer, Secrets User and
    Crypto Officer."""
    return policy_doc(role_assignments=[role_assignment(TOKEN_USER, role) for role in CERTS_ROLES])


@pytest.fixture(scope="session")
def certs_vault(vault_factory) -> Vault:
    """The certificates tests' vault (RBAC, throttling off): see certs_policy_doc()."""
    v = vault_factory.start("certs")
    push_policy(v, certs_policy_doc())
    return v


@pytest.fixture(scope="session")
def cert_client(certs_vault) -> CertificateClient:
    with certs_vault.certificate_client() as c:
        yield c


@pytest.fixture(scope="session")
def cert_secret_client(certs_vault) -> SecretClient:
    with certs_vault.client() as c:
        yield c


@pytest.fixture(scope="session")
def cert_key_client(certs_vault) -> KeyClient:
    with certs_vault.key_client() as c:
        yield c
