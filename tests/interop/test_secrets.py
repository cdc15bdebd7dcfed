"""azure-keyvault-secrets (unmodified) against a live `kvault dev`.

A failing assertion here is a kvault compatibility bug: fix the server, not the test.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.keyvault.secrets import DeletedSecret, KeyVaultSecret, SecretClient, SecretProperties
from azure.keyvault.secrets.aio import SecretClient as AsyncSecretClient

from conftest import AsyncKvaultCredential, StaticCredential, unique_name

VERSION_RE = re.compile(r"[0-9a-f]{32}")
CLOCK_SLACK = timedelta(minutes=5)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _versions(client: SecretClient, name: str) -> list:
    return [p.version for p in client.list_properties_of_secret_versions(name)]


def _delete(client: SecretClient, name: str) -> DeletedSecret:
    poller = client.begin_delete_secret(name)
    poller.wait()
    assert poller.done()
    return poller.result()


def _assert_status(exc_info, status: int) -> None:
    err = exc_info.value
    assert err.status_code == status, f"expected HTTP {status}, got {err.status_code}: {err}"


# --------------------------------------------------------------------------- 0. dev contract


def test_dev_env_file(vault):
    """`kvault dev` writes DIR/dev.env with KVAULT_URL, KVAULT_TOKEN and KVAULT_CA_FILE exports."""
    values = {}
    for line in (vault.state_dir / "dev.env").read_text().splitlines():
        m = re.match(r"\s*export\s+(KVAULT_[A-Z_]+)=(.*)$", line)
        if m:
            values[m.group(1)] = m.group(2).strip().strip("'\"")
    assert set(values) >= {"KVAULT_URL", "KVAULT_TOKEN", "KVAULT_CA_FILE"}, values
    assert values["KVAULT_URL"].rstrip("/") == vault.url
    assert values["KVAULT_TOKEN"]
    assert values["KVAULT_CA_FILE"]
    assert vault.ca.exists()


# --------------------------------------------------------------------------- 1. set / get


def test_set_and_get(vault, client):
    name = unique_name("setget")
    not_before = datetime(2025, 1, 1, tzinfo=timezone.utc)
    tags = {"env": "interop", "n": "1"}

    created = client.set_secret(name, "value-1", content_type="text/plain", tags=tags, not_before=not_before)
    assert isinstance(created, KeyVaultSecret)
    assert created.name == name
    assert created.value == "value-1"
    v1 = created.properties.version
    assert v1 is not None and VERSION_RE.fullmatch(v1), f"version {v1!r} is not 32 lowercase hex chars"

    got = client.get_secret(name)
    assert got.value == "value-1"
    props = got.properties
    assert props.name == name
    assert props.version == v1
    assert props.id.startswith(vault.url + "/"), props.id
    assert props.id == f"{vault.url}/secrets/{name}/{v1}"
    assert props.vault_url == vault.url
    assert props.content_type == "text/plain"
    assert props.tags == tags
    assert props.not_before == not_before
    assert props.enabled is True
    assert props.recovery_level == "Recoverable+Purgeable"
    assert props.recoverable_days == 90
    assert isinstance(props.created_on, datetime)
    assert isinstance(props.updated_on, datetime)
    assert abs(props.created_on - _now()) < CLOCK_SLACK, props.created_on

    by_version = client.get_secret(name, v1)
    assert by_version.value == "value-1"
    assert by_version.properties.version == v1

    second = client.set_secret(name, "value-2")
    v2 = second.properties.version
    assert v2 is not None and VERSION_RE.fullmatch(v2)
    assert v2 != v1

    latest = client.get_secret(name)
    assert latest.value == "value-2"
    assert latest.properties.version == v2

    old = client.get_secret(name, v1)
    assert old.value == "value-1"
    assert old.properties.version == v1


def test_sync_client_trusts_requests_ca_bundle(vault, monkeypatch):
    """Without connection_verify, the sync SDK (requests) trusts the CA from REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(vault.ca))
    with SecretClient(vault.url, vault.credential, logging_enable=True) as c:
        name = unique_name("cabundle")
        c.set_secret(name, "trusted")
        assert c.get_secret(name).value == "trusted"


# --------------------------------------------------------------------------- 2. update


def test_update_properties_and_disable(client):
    name = unique_name("update")
    created = client.set_secret(name, "secret-value", tags={"a": "1"})
    version = created.properties.version

    updated = client.update_secret_properties(
        name, enabled=False, tags={"state": "disabled"}, content_type="application/x-interop"
    )
    assert isinstance(updated, SecretProperties)
    assert updated.name == name
    assert updated.version == version
    assert updated.enabled is False
    assert updated.tags == {"state": "disabled"}
    assert updated.content_type == "application/x-interop"

    with pytest.raises(HttpResponseError) as ei:
        client.get_secret(name)
    _assert_status(ei, 403)

    reenabled = client.update_secret_properties(name, enabled=True)
    assert reenabled.enabled is True
    # PATCH semantics: fields not sent are left unchanged.
    assert reenabled.tags == {"state": "disabled"}
    assert reenabled.content_type == "application/x-interop"

    got = client.get_secret(name)
    assert got.value == "secret-value"
    assert got.properties.enabled is True


# --------------------------------------------------------------------------- 3. list (paging)


def test_list_secrets_pages_beyond_25(list_vault):
    prefix = unique_name("list")
    expected = {f"{prefix}-{i:02d}" for i in range(30)}
    with list_vault.client() as c:
        for name in sorted(expected):
            c.set_secret(name, "v", content_type="text/plain")

        items = list(c.list_properties_of_secrets())
        listed = [p.name for p in items if p.name and p.name.startswith(prefix + "-")]
        assert sorted(listed) == sorted(expected), f"missing: {sorted(expected - set(listed))}"
        for p in items:
            if p.name in expected:
                assert p.enabled is True
                assert p.content_type == "text/plain"

        pages = [list(page) for page in c.list_properties_of_secrets().by_page()]
        assert len(pages) >= 2, f"30 secrets came back in {len(pages)} page(s); expected paging at 25"
        assert all(len(page) <= 25 for page in pages), [len(p) for p in pages]


def test_list_versions_pages_beyond_25(list_vault):
    name = unique_name("versions")
    with list_vault.client() as c:
        created = [c.set_secret(name, f"value-{i}").properties.version for i in range(27)]
        assert len(set(created)) == 27

        versions = _versions(c, name)
        assert len(versions) == 27, versions
        assert len(set(versions)) == 27
        assert set(versions) == set(created)

        pages = [list(page) for page in c.list_properties_of_secret_versions(name).by_page()]
        assert len(pages) >= 2, f"27 versions came back in {len(pages)} page(s); expected paging at 25"


# --------------------------------------------------------------------------- 4. delete / recover


def test_delete_and_recover(vault, client):
    name = unique_name("delrec")
    v1 = client.set_secret(name, "first").properties.version
    v2 = client.set_secret(name, "second").properties.version

    deleted = _delete(client, name)
    assert isinstance(deleted, DeletedSecret)
    assert deleted.name == name
    assert deleted.recovery_id == f"{vault.url}/deletedsecrets/{name}"
    assert isinstance(deleted.deleted_date, datetime)
    assert isinstance(deleted.scheduled_purge_date, datetime)
    assert abs(deleted.deleted_date - _now()) < CLOCK_SLACK
    purge_after = deleted.scheduled_purge_date - deleted.deleted_date
    assert abs(purge_after - timedelta(days=90)) < timedelta(minutes=1), purge_after

    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)

    fetched = client.get_deleted_secret(name)
    assert fetched.name == name
    assert fetched.recovery_id == deleted.recovery_id
    assert isinstance(fetched.deleted_date, datetime)
    assert isinstance(fetched.scheduled_purge_date, datetime)

    listed = {d.name: d for d in client.list_deleted_secrets()}
    assert name in listed
    assert listed[name].recovery_id == deleted.recovery_id

    with pytest.raises(ResourceExistsError) as ei:
        client.set_secret(name, "reuse while soft-deleted")
    _assert_status(ei, 409)

    poller = client.begin_recover_deleted_secret(name)
    poller.wait()
    recovered = poller.result()
    assert recovered.name == name

    got = client.get_secret(name)
    assert got.value == "second"
    assert got.properties.version == v2
    assert client.get_secret(name, v1).value == "first"
    assert set(_versions(client, name)) == {v1, v2}

    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret(name)


# --------------------------------------------------------------------------- 5. purge


def test_purge(client):
    name = unique_name("purge")
    client.set_secret(name, "old-1")
    client.set_secret(name, "old-2")
    _delete(client, name)

    assert client.purge_deleted_secret(name) is None  # SDK requires exactly 204

    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret(name)
    assert name not in {d.name for d in client.list_deleted_secrets()}

    again = client.set_secret(name, "new")
    assert client.get_secret(name).value == "new"
    assert _versions(client, name) == [again.properties.version]


# --------------------------------------------------------------------------- 6. backup / restore


def test_backup_and_restore(client, foreign_vault):
    name = unique_name("backup")
    v1 = client.set_secret(name, "b-1", content_type="text/plain", tags={"k": "v"}).properties.version
    v2 = client.set_secret(name, "b-2").properties.version

    blob = client.backup_secret(name)
    assert isinstance(blob, bytes)
    assert len(blob) > 0

    _delete(client, name)
    client.purge_deleted_secret(name)
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)

    # Tampered blob (one byte flipped in the middle) is rejected while the name is free.
    tampered = bytearray(blob)
    tampered[len(tampered) // 2] ^= 0x01
    with pytest.raises(HttpResponseError) as ei:
        client.restore_secret_backup(bytes(tampered))
    _assert_status(ei, 400)

    # A blob made by a vault with another master key is rejected.
    foreign_name = unique_name("foreign")
    with foreign_vault.client() as fc:
        fc.set_secret(foreign_name, "from another vault")
        foreign_blob = fc.backup_secret(foreign_name)
    with pytest.raises(HttpResponseError) as ei:
        client.restore_secret_backup(foreign_blob)
    _assert_status(ei, 400)
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(foreign_name)

    restored = client.restore_secret_backup(blob)
    assert isinstance(restored, SecretProperties)
    assert restored.name == name

    got = client.get_secret(name)
    assert got.value == "b-2"
    assert got.properties.version == v2
    old = client.get_secret(name, v1)
    assert old.value == "b-1"
    assert old.properties.content_type == "text/plain"
    assert old.properties.tags == {"k": "v"}
    assert set(_versions(client, name)) == {v1, v2}

    with pytest.raises(ResourceExistsError) as ei:
        client.restore_secret_backup(blob)
    _assert_status(ei, 409)


# --------------------------------------------------------------------------- 7. errors


def test_missing_secret_is_secret_not_found(client):
    with pytest.raises(ResourceNotFoundError) as ei:
        client.get_secret(unique_name("missing"))
    _assert_status(ei, 404)
    assert ei.value.error is not None, "404 body is not a Key Vault error envelope"
    assert ei.value.error.code == "SecretNotFound"


def test_invalid_name_is_400(client):
    with pytest.raises(HttpResponseError) as ei:
        client.set_secret("bad_name!", "value")
    _assert_status(ei, 400)


def test_value_over_25_kib_is_bad_parameter(client):
    name = unique_name("big")
    with pytest.raises(HttpResponseError) as ei:
        client.set_secret(name, "x" * (25 * 1024 + 1))
    _assert_status(ei, 400)
    assert ei.value.error is not None, "400 body is not a Key Vault error envelope"
    assert ei.value.error.code == "BadParameter"

    # The limit itself is accepted.
    at_limit = "y" * (25 * 1024)
    client.set_secret(name, at_limit)
    assert client.get_secret(name).value == at_limit


# --------------------------------------------------------------------------- 8. purge protection


def test_purge_protection_and_custom_retention(protected_vault):
    name = unique_name("protected")
    with protected_vault.client() as c:
        created = c.set_secret(name, "keep me")
        assert created.properties.recovery_level == "CustomizedRecoverable"
        assert created.properties.recoverable_days == 7
        got = c.get_secret(name)
        assert got.properties.recovery_level == "CustomizedRecoverable"
        assert got.properties.recoverable_days == 7

        deleted = _delete(c, name)
        assert deleted.recovery_id == f"{protected_vault.url}/deletedsecrets/{name}"
        purge_after = deleted.scheduled_purge_date - deleted.deleted_date
        assert abs(purge_after - timedelta(days=7)) < timedelta(minutes=1), purge_after

        with pytest.raises(HttpResponseError) as ei:
            c.purge_deleted_secret(name)
        _assert_status(ei, 403)
        assert ei.value.error is not None, "403 body is not a Key Vault error envelope"
        assert ei.value.error.code == "Forbidden"

        assert c.get_deleted_secret(name).name == name

        poller = c.begin_recover_deleted_secret(name)
        poller.wait()
        assert poller.result().name == name
        assert c.get_secret(name).value == "keep me"


# --------------------------------------------------------------------------- 9. authentication


@pytest.mark.parametrize("kind", ["garbage", "jwt-shaped", "other-vault"])
def test_bad_token_is_rejected(vault, foreign_vault, kind):
    if kind == "garbage":
        token = "garbage"
    elif kind == "jwt-shaped":
        token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    else:  # a real token, but minted by another vault (other key, other audience)
        token = foreign_vault.token("--user", "interop-user", "--ttl", "1h")
    credential = StaticCredential(token)
    with vault.client(credential=credential) as c:
        with pytest.raises(ClientAuthenticationError) as ei:
            c.get_secret(unique_name("auth"))
    _assert_status(ei, 401)
    asked = {scope for scopes, _ in credential.calls for scope in scopes}
    assert asked == {vault.expected_scope}, asked


def test_credential_asked_for_vault_scope(vault, client):
    client.set_secret(unique_name("scope"), "v")
    assert vault.credential.calls, "the SDK never asked the credential for a token"
    asked = {scope for scopes, _ in vault.credential.calls for scope in scopes}
    assert asked == {vault.expected_scope}, asked
    assert vault.expected_scope == f"https://kvault.localhost:{vault.port}/.default"


# --------------------------------------------------------------------------- 10. api-version


@pytest.mark.parametrize("api_version", ["7.4", "7.0"])
def test_older_api_versions(vault, api_version):
    name = unique_name("apiver")
    with vault.client(api_version=api_version) as c:
        created = c.set_secret(name, f"value for {api_version}", content_type="text/plain")
        assert created.value == f"value for {api_version}"
        got = c.get_secret(name)
        assert got.value == f"value for {api_version}"
        assert got.properties.content_type == "text/plain"
        assert got.properties.version == created.properties.version
        assert c.get_secret(name, created.properties.version).value == f"value for {api_version}"


# --------------------------------------------------------------------------- 11. async client


def test_async_client(vault):
    credential = AsyncKvaultCredential(vault.state_dir)
    prefix = unique_name("async")

    async def scenario():
        async with AsyncSecretClient(
            vault.url, credential, connection_verify=str(vault.ca), logging_enable=True
        ) as c:
            names = [f"{prefix}-{i}" for i in range(3)]
            created = {}
            for n in names:
                created[n] = await c.set_secret(n, f"async value {n}", tags={"mode": "async"})
            for n in names:
                got = await c.get_secret(n)
                assert got.value == f"async value {n}"
                assert got.properties.version == created[n].properties.version
                assert got.properties.tags == {"mode": "async"}
            listed = set()
            async for p in c.list_properties_of_secrets():
                if p.name and p.name.startswith(prefix + "-"):
                    listed.add(p.name)
            assert listed == set(names)
            versions = [p.version async for p in c.list_properties_of_secret_versions(names[0])]
            assert versions == [created[names[0]].properties.version]

    asyncio.run(scenario())
    assert credential.scopes == {vault.expected_scope}, credential.scopes
