"""Network guard for child interpreters of test_workload_identity.py.

Imported first by the child script (before any SDK). It changes the environment, not the SDK:

- `socket.getaddrinfo` maps `kvault.localhost` and its sub-domains to 127.0.0.1 (as conftest.py
  does for the suite: glibc does not resolve sub-domains of localhost), lets `localhost` and
  literal loopback addresses through, and REFUSES (socket.gaierror) every other name;
- `socket.socket.connect` / `connect_ex` refuse (ConnectionRefusedError) any IP connection to a
  non-loopback address;
- every name looked up and every connect attempted is recorded; at exit the records are printed
  to stderr as one line `NETGUARD {"lookups": [...], "connects": [...], "refused": [...]}`, which
  the test parses and asserts on.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import socket
import sys

VAULT_DOMAIN = "kvault.localhost"
MARKER = "NETGUARD "

LOOKUPS: list = []
CONNECTS: list = []
REFUSED: list = []

_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_gethostbyname = socket.gethostbyname
_real_gethostbyname_ex = socket.gethostbyname_ex


def _name(host) -> str:
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("ascii", "replace")
    return str(host).rstrip(".").lower()


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False


def _local_target(host):
    """The address to resolve instead of `host`, or None when `host` is not local."""
    name = _name(host)
    if name == VAULT_DOMAIN or name.endswith("." + VAULT_DOMAIN):
        return "127.0.0.1"
    if name == "localhost" or _is_loopback_ip(name):
        return name
    return None


def _guarded_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - socket API
    if host is None:  # passive / wildcard lookups name no host
        return _real_getaddrinfo(host, port, family, type, proto, flags)
    LOOKUPS.append(_name(host))
    target = _local_target(host)
    if target is None:
        REFUSED.append(f"lookup {_name(host)}")
        raise socket.gaierror(socket.EAI_NONAME, f"netguard: refused to resolve non-local name {host!r}")
    return _real_getaddrinfo(target, port, family, type, proto, flags)


def _guarded_gethostbyname(host):
    LOOKUPS.append(_name(host))
    target = _local_target(host)
    if target is None:
        REFUSED.append(f"lookup {_name(host)}")
        raise socket.gaierror(socket.EAI_NONAME, f"netguard: refused to resolve non-local name {host!r}")
    return _real_gethostbyname(target)


def _guarded_gethostbyname_ex(host):
    LOOKUPS.append(_name(host))
    target = _local_target(host)
    if target is None:
        REFUSED.append(f"lookup {_name(host)}")
        raise socket.gaierror(socket.EAI_NONAME, f"netguard: refused to resolve non-local name {host!r}")
    return _real_gethostbyname_ex(target)


def _check_connect(sock, address) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        CONNECTS.append(f"{sock.family.name} {address!r}")
        return
    host, port = address[0], address[1]
    CONNECTS.append(f"{_name(host)}:{port}")
    if not (_is_ip(_name(host)) and _is_loopback_ip(_name(host))):
        REFUSED.append(f"connect {_name(host)}:{port}")
        raise ConnectionRefusedError(f"netguard: refused connection to non-loopback address {address!r}")


def _guarded_connect(self, address):
    _check_connect(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check_connect(self, address)
    return _real_connect_ex(self, address)


socket.getaddrinfo = _guarded_getaddrinfo
socket.gethostbyname = _guarded_gethostbyname
socket.gethostbyname_ex = _guarded_gethostbyname_ex
socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex

try:  # aiohttp with aiodns would bypass getaddrinfo; pin the threaded resolver (as conftest does).
    import aiohttp.connector
    import aiohttp.resolver

    aiohttp.connector.DefaultResolver = aiohttp.resolver.ThreadedResolver  # type: ignore[attr-defined]
except Exception:  # pragma: no cover - aiohttp is optional here
    pass


@atexit.register
def _report() -> None:
    sys.stderr.write(MARKER + json.dumps({"lookups": LOOKUPS, "connects": CONNECTS, "refused": REFUSED}) + "\n")
    sys.stderr.flush()
