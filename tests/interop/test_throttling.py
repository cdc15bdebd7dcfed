"""Throttling (429 + Retry-After) seen through the unmodified azure-keyvault-secrets SDK.

azure-core's RetryPolicy retries a 429 after the server's Retry-After, so an SDK caller
over budget is slowed down, not failed. The vault's audit log (DIR/audit.log) proves the
throttling happened. Uses a vault of its own; throttling is switched off again at the end.
"""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import HttpResponseError

from conftest import KvaultCredential, policy_doc, push_policy, role_assignment, unique_name

WINDOW_SECONDS = 2
REQUEST_BUDGET = 3
CALLS = 8
TIME_LIMIT_S = 20.0

THROTTLING = {
    "enabled": True,
    "windowSeconds": WINDOW_SECONDS,
    "secretWrites": 300,
    "requests": REQUEST_BUDGET,
    # One caller may use the whole budget: these tests are about the vault's budget (a
    # caller's share of it is tested in tests/it/authz.rs).
    "principalShare": 100,
}


@pytest.fixture(scope="module")
def throttle_vault(vault_factory):
    return vault_factory.start("throttle")


@pytest.fixture
def throttled(throttle_vault):
    """A seeded secret and a fresh principal allowed to read it, under the throttling
    budget; throttling is off again afterwards whatever the test did."""
    name = unique_name("throttled")
    with throttle_vault.client() as c:
        c.set_secret(name, "busy")
    user = unique_name("throttled-reader")
    push_policy(
        throttle_vault,
        policy_doc([role_assignment(user, "Key Vault Secrets User")], throttling=THROTTLING),
    )
    try:
        yield name, user
    finally:
        push_policy(throttle_vault, policy_doc())


def _client(vault, user, **kwargs):
    return vault.client(credential=KvaultCredential(vault.state_dir, user=user), **kwargs)


def test_sdk_retries_through_throttling(throttle_vault, throttled):
    name, user = throttled
    attempts = []  # every HTTP attempt the SDK made (the hook sits after the retry policy)

    def hook(pipeline_response):
        r = pipeline_response.http_response
        attempts.append(
            (
                r.status_code,
                r.headers.get("Retry-After"),
                r.text() if r.status_code == 429 else None,
                r.headers.get("x-ms-request-id"),
            )
        )

    started = time.monotonic()
    with _client(throttle_vault, user, raw_response_hook=hook) as c:
        for _ in range(CALLS):
            assert c.get_secret(name).value == "busy"
    elapsed = time.monotonic() - started
    assert elapsed < TIME_LIMIT_S, f"{CALLS} throttled reads took {elapsed:.1f}s"

    throttled_attempts = [a for a in attempts if a[0] == 429]
    assert throttled_attempts, f"no attempt was throttled: {attempts}"
    assert [a[0] for a in attempts].count(200) == CALLS, attempts
    for _, retry_after, body, _ in throttled_attempts:
        assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1, retry_after
        assert '"code":"Throttled"' in body.replace(" ", ""), body
    # The SDK waited as told: at least one Retry-After second per throttled attempt.
    assert elapsed >= sum(int(a[1]) for a in throttled_attempts) - 0.5, (elapsed, throttled_attempts)

    # The vault's own record of it.
    mine = lambda r: r.get("operation") == "GetSecret" and r.get("principalId") == user  # noqa: E731
    throttle_vault.wait_for_audit(lambda r: mine(r) and r.get("status") == 200, minimum=CALLS)
    records = [r for r in throttle_vault.audit_records() if mine(r)]
    refused = [r for r in records if r.get("status") == 429]
    served = [r for r in records if r.get("status") == 200]
    assert len(served) == CALLS, records
    assert refused, f"audit log has no throttled GetSecret for {user}: {records}"
    # Exactly the attempts the SDK saw refused, matched by x-ms-request-id.
    assert {r["requestId"] for r in refused} == {a[3] for a in throttled_attempts}, (refused, throttled_attempts)
    for r in refused:
        assert r["result"] == "Throttled", r
        assert r["objectId"].lower() == f"/secrets/{name}".lower(), r
        assert r["principalKind"] == "User", r


def test_throttled_response_without_retries(throttle_vault, throttled):
    """With retries off, the SDK surfaces the 429 itself: Throttled envelope and Retry-After."""
    name, user = throttled
    results = []
    with _client(throttle_vault, user, retry_total=0) as c:
        for _ in range(REQUEST_BUDGET + 3):
            try:
                c.get_secret(name)
                results.append(200)
            except HttpResponseError as e:
                results.append(e)
                break
    assert results[:REQUEST_BUDGET] == [200] * REQUEST_BUDGET, results
    err = results[-1]
    assert isinstance(err, HttpResponseError), f"never throttled: {results}"
    assert err.status_code == 429, err
    assert err.error is not None, f"429 body is not a Key Vault error envelope: {err}"
    assert err.error.code == "Throttled", err.error
    retry_after = err.response.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit() and 1 <= int(retry_after) <= WINDOW_SECONDS, retry_after


def test_throttling_off_again(throttle_vault):
    """After throttling is switched off, a burst well over the old budget is served."""
    name = unique_name("unthrottled")
    user = unique_name("unthrottled-reader")
    push_policy(throttle_vault, policy_doc([role_assignment(user, "Key Vault Secrets User")], throttling=THROTTLING))
    push_policy(throttle_vault, policy_doc([role_assignment(user, "Key Vault Secrets User")]))
    with throttle_vault.client() as c:
        c.set_secret(name, "free")
    with _client(throttle_vault, user, retry_total=0) as c:
        for _ in range(REQUEST_BUDGET * 5):
            assert c.get_secret(name).value == "free"
