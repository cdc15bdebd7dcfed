"""Authorization (RBAC roles and scopes, groups, access policies, revocation) seen through
the unmodified azure-keyvault-secrets SDK, and the generation rules of kvault's
`/_kvault/policy` control plane (raw HTTP: the SDK has no client for it).

Every test pushes the whole policy it needs (policy_doc keeps dev-admin as Administrator
and interop-user as Secrets Officer for seeding), so the tests do not depend on each
other's order. They share one vault of their own, apart from test_secrets.py's.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from conftest import (
    DEV_ADMIN,
    KVAULT_BIN,
    TOKEN_USER,
    KvaultCredential,
    access_policy,
    get_policy,
    policy_doc,
    policy_request,
    push_policy,
    role_assignment,
    unique_name,
)


@pytest.fixture(scope="module")
def authz_vault(vault_factory):
    return vault_factory.start("authz")


@pytest.fixture(scope="module")
def seed(authz_vault):
    """Creates secrets as the suite's principal (Secrets Officer in every pushed policy)."""
    with authz_vault.client() as c:

        def _seed(prefix: str, value: str = "seeded") -> str:
            name = unique_name(prefix)
            c.set_secret(name, value)
            return name

        yield _seed


def _client_for(vault, user: str, groups=()) -> SecretClient:
    return vault.client(credential=KvaultCredential(vault.state_dir, user=user, groups=groups))


def _forbidden(call) -> HttpResponseError:
    """Runs `call`, which must fail with the Key Vault 403 envelope; returns the error."""
    with pytest.raises(HttpResponseError) as ei:
        call()
    err = ei.value
    assert err.status_code == 403, f"expected HTTP 403, got {err.status_code}: {err}"
    assert not isinstance(err, ResourceNotFoundError), err
    assert err.error is not None, f"403 body is not a Key Vault error envelope: {err}"
    assert err.error.code == "Forbidden", err.error
    return err


def _inner_code(err: HttpResponseError):
    return (err.error.innererror or {}).get("code")


# --------------------------------------------------------------------------- no grant


def test_principal_without_grant_is_forbidden_everywhere(authz_vault, seed):
    push_policy(authz_vault, policy_doc())
    existing = seed("nogrant-target")
    user = unique_name("nobody")
    with _client_for(authz_vault, user) as c:
        err = _forbidden(lambda: c.get_secret(existing))
        assert user in err.error.message, err.error.message
        assert _inner_code(err) == "ForbiddenByRbac", err.error.innererror

        err = _forbidden(lambda: c.set_secret(unique_name("nogrant-new"), "v"))
        assert user in err.error.message, err.error.message

        err = _forbidden(lambda: list(c.list_properties_of_secrets()))
        assert user in err.error.message, err.error.message

        # A secret that does not exist is refused the same way: 403, not 404 (no existence leak).
        missing_err = _forbidden(lambda: c.get_secret(unique_name("nogrant-missing")))
        assert user in missing_err.error.message, missing_err.error.message
        assert _inner_code(missing_err) == _inner_code(err)

    # The denials are audited under the caller's identity.
    denied = authz_vault.wait_for_audit(
        lambda r: r.get("principalId") == user and r.get("status") == 403 and r.get("result") == "Forbidden",
        minimum=4,
    )
    assert [r["operation"] for r in denied] == ["GetSecret", "SetSecret", "GetSecrets", "GetSecret"], denied
    assert all(r.get("principalKind") == "User" for r in denied), denied


# --------------------------------------------------------------------------- RBAC roles


def test_grant_applies_to_running_client_and_secrets_user_cannot_write(authz_vault, seed):
    push_policy(authz_vault, policy_doc())
    name = seed("grant", "granted-value")
    user = unique_name("late-grant")
    credential = KvaultCredential(authz_vault.state_dir, user=user)
    with authz_vault.client(credential=credential) as c:
        _forbidden(lambda: c.get_secret(name))

        push_policy(authz_vault, policy_doc([role_assignment(user, "Key Vault Secrets User")]))

        # Same client, same credential object, no restart: the next request is allowed.
        got = c.get_secret(name)
        assert got.value == "granted-value"
        assert name in {p.name for p in c.list_properties_of_secrets()}

        err = _forbidden(lambda: c.set_secret(name, "overwrite attempt"))
        assert user in err.error.message, err.error.message
        err = _forbidden(lambda: c.set_secret(unique_name("grant-new"), "v"))
        assert user in err.error.message, err.error.message

    with authz_vault.client() as owner:
        assert owner.get_secret(name).value == "granted-value"


def test_reader_lists_properties_but_cannot_read_values(authz_vault, seed):
    name = seed("reader")
    user = unique_name("reader")
    push_policy(authz_vault, policy_doc([role_assignment(user, "Key Vault Reader")]))
    with _client_for(authz_vault, user) as c:
        listed = {p.name for p in c.list_properties_of_secrets()}
        assert name in listed
        err = _forbidden(lambda: c.get_secret(name))
        assert user in err.error.message, err.error.message
        _forbidden(lambda: c.set_secret(name, "v"))


def test_object_scope_grant_covers_only_that_secret(authz_vault, seed):
    name = seed("scoped", "in-scope")
    other = seed("unscoped")
    user = unique_name("scoped")
    push_policy(authz_vault, policy_doc([role_assignment(user, "Key Vault Secrets User", scope=f"/secrets/{name}")]))
    with _client_for(authz_vault, user) as c:
        got = c.get_secret(name)
        assert got.value == "in-scope"
        assert c.get_secret(name, got.properties.version).value == "in-scope"
        assert [p.version for p in c.list_properties_of_secret_versions(name)] == [got.properties.version]

        err = _forbidden(lambda: c.get_secret(other))
        assert user in err.error.message, err.error.message
        _forbidden(lambda: list(c.list_properties_of_secrets()))
        _forbidden(lambda: c.set_secret(name, "v"))


def test_group_grant(authz_vault, seed):
    name = seed("group", "for-the-group")
    group = unique_name("team")
    user = unique_name("member")
    push_policy(
        authz_vault, policy_doc([role_assignment(group, "Key Vault Secrets User", kind="Group")])
    )
    with _client_for(authz_vault, user, groups=[group]) as c:
        assert c.get_secret(name).value == "for-the-group"
    # The same user without the group claim has nothing.
    with _client_for(authz_vault, user) as c:
        _forbidden(lambda: c.get_secret(name))
    # Another group does not match.
    with _client_for(authz_vault, user, groups=[group + "-other"]) as c:
        _forbidden(lambda: c.get_secret(name))


# --------------------------------------------------------------------------- access policies


def test_access_policy_mode(authz_vault, seed):
    name = seed("ap", "ap-value")
    user = unique_name("ap")
    # In RBAC mode an access policy entry grants nothing.
    push_policy(authz_vault, policy_doc(access_policies=[access_policy(user, ["get", "list"])]))
    with _client_for(authz_vault, user) as c:
        _forbidden(lambda: c.get_secret(name))

    push_policy(
        authz_vault,
        policy_doc(authorization="AccessPolicy", access_policies=[access_policy(user, ["get", "list"])]),
    )
    with _client_for(authz_vault, user) as c:
        assert c.get_secret(name).value == "ap-value"
        assert name in {p.name for p in c.list_properties_of_secrets()}

        err = _forbidden(lambda: c.set_secret(name, "not allowed"))
        assert user in err.error.message, err.error.message
        assert "set" in err.error.message, err.error.message
        assert _inner_code(err), f"no innererror code in the access-policy denial: {err.error.innererror}"
        assert _inner_code(err) != "ForbiddenByRbac", err.error.innererror
        _forbidden(lambda: c.begin_delete_secret(name))

    # In AccessPolicy mode role assignments grant nothing.
    rbac_user = unique_name("ap-rbac")
    push_policy(
        authz_vault,
        policy_doc(
            [role_assignment(rbac_user, "Key Vault Secrets User")],
            authorization="AccessPolicy",
            access_policies=[access_policy(user, ["get", "list"])],
        ),
    )
    with _client_for(authz_vault, rbac_user) as c:
        _forbidden(lambda: c.get_secret(name))

    push_policy(authz_vault, policy_doc())


# --------------------------------------------------------------------------- revocation


def test_revocation_applies_to_the_very_next_request(authz_vault, seed):
    name = seed("revoke", "until-revoked")
    user = unique_name("revoked")
    push_policy(authz_vault, policy_doc([role_assignment(user, "Key Vault Secrets User")]))
    with _client_for(authz_vault, user) as c:
        assert c.get_secret(name).value == "until-revoked"
        assert c.get_secret(name).value == "until-revoked"
        push_policy(authz_vault, policy_doc())
        err = _forbidden(lambda: c.get_secret(name))
        assert user in err.error.message, err.error.message


# --------------------------------------------------------------------------- control plane


def test_policy_generation_rules(authz_vault):
    doc = policy_doc([role_assignment(unique_name("gen"), "Key Vault Reader")])
    pushed = push_policy(authz_vault, doc)
    assert pushed["outcome"] == "Applied"
    gen = authz_vault.generation
    assert gen >= 3  # dev's 1, the factory's suite grant, this push
    sent = dict(doc, generation=gen)

    status = get_policy(authz_vault)
    assert status["appliedGeneration"] == gen
    assert status["policy"]["generation"] == gen
    assert status["policy"]["authorization"] == "RBAC"
    assert status["policy"]["roleAssignments"] == sent["roleAssignments"]
    assert status["policy"]["throttling"]["enabled"] is False

    # Same generation, identical content: 200 Unchanged.
    same = policy_request(authz_vault, "PUT", sent)
    assert same.status == 200, same.describe("PUT", authz_vault.policy_url, json.dumps(sent).encode())
    assert same.json["outcome"] == "Unchanged", same.json
    assert same.json["appliedGeneration"] == gen

    # Lower generation: 409, nothing changes.
    older = dict(policy_doc(), generation=gen - 1)
    stale = policy_request(authz_vault, "PUT", older)
    assert stale.status == 409, stale.describe("PUT", authz_vault.policy_url, json.dumps(older).encode())
    assert stale.json["error"]["code"] == "Conflict", stale.json

    # Same generation, different content: 409 too.
    changed = dict(policy_doc(), generation=gen)
    clash = policy_request(authz_vault, "PUT", changed)
    assert clash.status == 409, clash.describe("PUT", authz_vault.policy_url, json.dumps(changed).encode())

    assert get_policy(authz_vault)["appliedGeneration"] == gen
    assert get_policy(authz_vault)["policy"]["roleAssignments"] == sent["roleAssignments"]


@pytest.mark.parametrize("who", ["suite-user", "data-plane-administrator"])
def test_policy_endpoint_refuses_non_admin(authz_vault, who):
    if who == "suite-user":
        user = TOKEN_USER  # Secrets Officer on the data plane
        push_policy(authz_vault, policy_doc())
    else:  # Key Vault Administrator on the data plane is still not the control plane.
        user = unique_name("kv-admin")
        push_policy(authz_vault, policy_doc([role_assignment(user, "Key Vault Administrator")]))
    gen = authz_vault.generation
    token = authz_vault.token("--user", user, "--ttl", "1h")

    read = policy_request(authz_vault, "GET", token=token)
    assert read.status == 403, read.describe("GET", authz_vault.policy_url, None)
    assert read.json["error"]["code"] == "Forbidden", read.json
    assert user in read.json["error"]["message"], read.json

    takeover = policy_doc([role_assignment(user, "Key Vault Administrator")])
    takeover["generation"] = gen + 1
    write = policy_request(authz_vault, "PUT", takeover, token=token)
    assert write.status == 403, write.describe("PUT", authz_vault.policy_url, json.dumps(takeover).encode())
    assert write.json["error"]["code"] == "Forbidden", write.json

    assert get_policy(authz_vault)["appliedGeneration"] == gen


def test_policy_endpoint_requires_a_token(authz_vault):
    resp = policy_request(authz_vault, "GET", token="")
    assert resp.status == 401, resp.describe("GET", authz_vault.policy_url, None)
    assert resp.headers.get("www-authenticate", "").startswith("Bearer "), resp.headers


def test_cli_policy_get_and_put(authz_vault, tmp_path):
    """`kvault policy get|put` with dev.env's environment agrees with the HTTP endpoint."""
    env = dict(os.environ)
    env.update({k: v for k, v in authz_vault.dev_env().items() if k.startswith("KVAULT_")})
    user = unique_name("cli")
    doc = policy_doc([role_assignment(user, "Key Vault Secrets User")])
    doc["generation"] = authz_vault.generation + 1
    f = tmp_path / "policy.json"
    f.write_text(json.dumps(doc))

    put = subprocess.run(
        [KVAULT_BIN, "policy", "put", "--file", str(f)], env=env, capture_output=True, text=True, timeout=60
    )
    assert put.returncode == 0, put
    assert str(doc["generation"]) in put.stdout, put.stdout

    got = subprocess.run([KVAULT_BIN, "policy", "get"], env=env, capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got
    printed = json.loads(got.stdout)
    assert printed["generation"] == doc["generation"]
    assert printed["roleAssignments"] == doc["roleAssignments"]
    assert get_policy(authz_vault)["appliedGeneration"] == doc["generation"]
    assert DEV_ADMIN in json.dumps(printed["roleAssignments"])
