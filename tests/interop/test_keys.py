"""azure-keyvault-keys (unmodified KeyClient and CryptographyClient) against a live `kvault dev`.

Every cryptographic result kvault produces is checked independently with `cryptography`:
signatures verify with the public key from the returned JWK (or the original key, for
imported keys), ciphertexts of imported keys decrypt locally, and ciphertexts made locally
decrypt in the vault.

Two vaults: `keys` (RBAC; interop-user is Key Vault Crypto Officer) for the KeyClient
lifecycle, rotation, errors and the SDK's default CryptographyClient behaviour (it fetches the
key and does public-key operations -- RSA encrypt/wrap/verify, EC verify -- itself), and
`crypto` (AccessPolicy) whose `crypto-remote` principal may use keys but not `get` them, so the
SDK performs *every* operation in the vault (it stops fetching the key after the 403).

A failing assertion here is a kvault compatibility bug: fix the server, not the test.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Tuple

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.keys import (
    DeletedKey,
    JsonWebKey,
    KeyClient,
    KeyCurveName,
    KeyOperation,
    KeyProperties,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyRotationPolicyAction,
    KeyType,
    KeyVaultKey,
)
from azure.keyvault.keys.aio import KeyClient as AsyncKeyClient
from azure.keyvault.keys.crypto import (
    CryptographyClient,
    EncryptionAlgorithm,
    KeyWrapAlgorithm,
    SignatureAlgorithm,
)
from azure.keyvault.keys.crypto.aio import CryptographyClient as AsyncCryptographyClient
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from conftest import DEV_ADMIN, AsyncKvaultCredential, KvaultCredential, unique_name

VERSION_RE = re.compile(r"[0-9a-f]{32}")
CLOCK_SLACK = timedelta(minutes=5)
PRIVATE_MEMBERS = ("d", "dp", "dq", "qi", "p", "q", "k", "t")
DEFAULT_RSA_OPS = {"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}

# crv -> (cryptography curve, coordinate length, hash, signature algorithm)
CURVES: Dict[str, Tuple[ec.EllipticCurve, int, hashes.HashAlgorithm, SignatureAlgorithm]] = {
    "P-256": (ec.SECP256R1(), 32, hashes.SHA256(), SignatureAlgorithm.es256),
    "P-384": (ec.SECP384R1(), 48, hashes.SHA384(), SignatureAlgorithm.es384),
    "P-521": (ec.SECP521R1(), 66, hashes.SHA512(), SignatureAlgorithm.es512),
    "P-256K": (ec.SECP256K1(), 32, hashes.SHA256(), SignatureAlgorithm.es256_k),
}
RSA_SIGNATURES = {
    SignatureAlgorithm.rs256: hashes.SHA256,
    SignatureAlgorithm.rs384: hashes.SHA384,
    SignatureAlgorithm.rs512: hashes.SHA512,
    SignatureAlgorithm.ps256: hashes.SHA256,
    SignatureAlgorithm.ps384: hashes.SHA384,
    SignatureAlgorithm.ps512: hashes.SHA512,
}
RSA_ENCRYPTIONS = [EncryptionAlgorithm.rsa_oaep, EncryptionAlgorithm.rsa_oaep_256, EncryptionAlgorithm.rsa1_5]
RSA_WRAPS = [KeyWrapAlgorithm.rsa_oaep, KeyWrapAlgorithm.rsa_oaep_256, KeyWrapAlgorithm.rsa1_5]
# bits -> (GCM, CBCPAD, CBC, KW)
AES = {
    128: (EncryptionAlgorithm.a128_gcm, EncryptionAlgorithm.a128_cbcpad, EncryptionAlgorithm.a128_cbc, KeyWrapAlgorithm.aes_128),
    192: (EncryptionAlgorithm.a192_gcm, EncryptionAlgorithm.a192_cbcpad, EncryptionAlgorithm.a192_cbc, KeyWrapAlgorithm.aes_192),
    256: (EncryptionAlgorithm.a256_gcm, EncryptionAlgorithm.a256_cbcpad, EncryptionAlgorithm.a256_cbc, KeyWrapAlgorithm.aes_256),
}


# --------------------------------------------------------------------------- helpers


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _int(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _be(i: int, length: Optional[int] = None) -> bytes:
    return i.to_bytes(length or (i.bit_length() + 7) // 8, "big")


def _digest(hash_alg: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(hash_alg)
    h.update(data)
    return h.finalize()


def _assert_status(exc_info, status: int) -> None:
    err = exc_info.value
    assert err.status_code == status, f"expected HTTP {status}, got {err.status_code}: {err}"


def _error_code(exc_info) -> Optional[str]:
    err = exc_info.value
    return err.error.code if getattr(err, "error", None) is not None else None


def _assert_public_only(key: KeyVaultKey) -> None:
    for member in PRIVATE_MEMBERS:
        assert getattr(key.key, member, None) is None, f"JWK of {key.id} exposes private member {member!r}"


def _rsa_public(key: KeyVaultKey) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(_int(key.key.e), _int(key.key.n)).public_key()


def _ec_public(key: KeyVaultKey) -> ec.EllipticCurvePublicKey:
    crv = key.key.crv
    curve = CURVES[getattr(crv, "value", crv)][0]
    # Raises ValueError if the point is not on the curve.
    return ec.EllipticCurvePublicNumbers(_int(key.key.x), _int(key.key.y), curve).public_key()


def _rsa_sig_padding(alg: SignatureAlgorithm) -> padding.AsymmetricPadding:
    hash_cls = RSA_SIGNATURES[alg]
    if alg.value.startswith("PS"):
        # Key Vault's RSASSA-PSS: MGF1 with the same hash, salt as long as the digest.
        return padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size)
    return padding.PKCS1v15()


def _rsa_enc_padding(alg: str) -> padding.AsymmetricPadding:
    if alg == "RSA-OAEP":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    if alg == "RSA-OAEP-256":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    assert alg == "RSA1_5", alg
    return padding.PKCS1v15()


def _rsa_jwk(private_key: rsa.RSAPrivateKey, key_ops: Optional[List[str]] = None, private: bool = True) -> JsonWebKey:
    priv = private_key.private_numbers()
    pub = priv.public_numbers
    members: Dict[str, Any] = {"kty": KeyType.rsa, "n": _be(pub.n), "e": _be(pub.e)}
    if private:
        members.update(
            d=_be(priv.d), p=_be(priv.p), q=_be(priv.q), dp=_be(priv.dmp1), dq=_be(priv.dmq1), qi=_be(priv.iqmp)
        )
    if key_ops is not None:
        members["key_ops"] = key_ops
    return JsonWebKey(**members)


def _ec_jwk(private_key: ec.EllipticCurvePrivateKey, crv: str, private: bool = True) -> JsonWebKey:
    size = CURVES[crv][1]
    priv = private_key.private_numbers()
    members: Dict[str, Any] = {
        "kty": KeyType.ec,
        "crv": crv,
        "x": _be(priv.public_numbers.x, size),
        "y": _be(priv.public_numbers.y, size),
        "key_ops": ["sign", "verify"],
    }
    if private:
        members["d"] = _be(priv.private_value, size)
    return JsonWebKey(**members)


def _raw_to_der(raw: bytes) -> bytes:
    """Key Vault's ECDSA signature (r || s, each the curve's coordinate length) as DER."""
    assert len(raw) % 2 == 0, f"odd-length raw ECDSA signature ({len(raw)} bytes)"
    half = len(raw) // 2
    return encode_dss_signature(_int(raw[:half]), _int(raw[half:]))


def _der_to_raw(der: bytes, size: int) -> bytes:
    r, s = decode_dss_signature(der)
    return _be(r, size) + _be(s, size)


def _tamper(b: bytes) -> bytes:
    return bytes([b[0] ^ 0x01]) + b[1:]


def _delete(client: KeyClient, name: str) -> DeletedKey:
    poller = client.begin_delete_key(name)
    poller.wait()
    assert poller.done()
    return poller.result()


class RequestLog:
    """A `raw_response_hook`: remembers (method, path, JSON body) of every request answered.

    (A response hook, not a request hook: azure-core calls a per-operation request hook only
    for the first attempt, which for a client's first call is Key Vault's bodiless challenge
    request; the response hook sees the request that was actually answered.)
    """

    def __init__(self) -> None:
        self.requests: List[Tuple[str, str, Any]] = []
        self.statuses: List[int] = []

    def __call__(self, response) -> None:
        self.statuses.append(response.http_response.status_code)
        http = response.http_request
        body = getattr(http, "content", None)
        if body is None:
            body = getattr(http, "body", None)
        if isinstance(body, (bytes, bytearray)):
            body = body.decode()
        try:
            parsed = json.loads(body) if body else None
        except (TypeError, ValueError):
            parsed = body
        path = http.url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        self.requests.append((http.method, "/" + path, parsed))

    def paths(self, method: Optional[str] = None) -> List[str]:
        return [p for m, p, _ in self.requests if method is None or m == method]

    def last(self, suffix: str) -> Tuple[str, str, Any]:
        for entry in reversed(self.requests):
            if entry[1].endswith(suffix):
                return entry
        raise AssertionError(f"no request to a path ending in {suffix!r}; sent: {self.requests}")


def _versions(client: KeyClient, name: str) -> List[str]:
    return [p.version for p in client.list_properties_of_key_versions(name)]


# --------------------------------------------------------------------------- 1. create


@pytest.mark.parametrize("size", [2048, 3072])
def test_create_rsa_key(keys_vault, key_client, size):
    name = unique_name(f"rsa{size}")
    log = RequestLog()
    key = key_client.create_rsa_key(name, size=size, public_exponent=65537, raw_response_hook=log)

    _, path, body = log.last("/create")
    assert path == f"/keys/{name}/create"
    assert body["kty"] == "RSA" and body["key_size"] == size and body["public_exponent"] == 65537, body

    assert isinstance(key, KeyVaultKey)
    assert key.name == name
    assert key.key_type == KeyType.rsa
    assert len(key.key.n) * 8 == size, f"modulus is {len(key.key.n) * 8} bits, asked for {size}"
    assert _int(key.key.e) == 65537
    assert set(key.key_operations) == DEFAULT_RSA_OPS
    _assert_public_only(key)
    props = key.properties
    assert VERSION_RE.fullmatch(props.version or ""), props.version
    assert key.id == f"{keys_vault.url}/keys/{name}/{props.version}"
    assert key.key.kid == key.id
    assert props.vault_url == keys_vault.url
    assert props.enabled is True
    assert props.recovery_level and props.recovery_level.startswith("Recoverable")
    assert props.recoverable_days == 90
    assert abs(props.created_on - _now()) < CLOCK_SLACK
    assert props.updated_on == props.created_on
    assert props.managed is None
    assert props.exportable is False
    # The public numbers form a usable key.
    assert _rsa_public(key).key_size == size


@pytest.mark.parametrize("crv", ["P-256", "P-384", "P-521", "P-256K"])
def test_create_ec_key(key_client, crv):
    name = unique_name("ec")
    log = RequestLog()
    key = key_client.create_ec_key(name, curve=crv, raw_response_hook=log)
    assert log.last("/create")[2] == {"kty": "EC", "crv": crv}

    assert key.key_type == KeyType.ec
    assert key.key.crv == crv
    size = CURVES[crv][1]
    assert len(key.key.x) == size and len(key.key.y) == size, (len(key.key.x), len(key.key.y))
    assert set(key.key_operations) == {"sign", "verify"}
    assert key.key.n is None and key.key.e is None
    _assert_public_only(key)
    assert _ec_public(key).curve.name == CURVES[crv][0].name


@pytest.mark.parametrize("size", [128, 192, 256])
def test_create_oct_key(key_client, size):
    name = unique_name("oct")
    log = RequestLog()
    key = key_client.create_oct_key(name, size=size, raw_response_hook=log)
    # The SDK sends kty "oct" (not "oct-HSM"): kvault accepts software symmetric keys.
    assert log.last("/create")[2] == {"kty": "oct", "key_size": size}

    assert key.key_type == KeyType.oct
    assert set(key.key_operations) == {"encrypt", "decrypt", "wrapKey", "unwrapKey"}
    assert key.key.n is None and key.key.x is None
    _assert_public_only(key)  # in particular no `k`


def test_create_key_with_options(key_client):
    name = unique_name("opts")
    nbf = datetime(2024, 1, 1, tzinfo=timezone.utc)
    exp = datetime(2100, 1, 1, tzinfo=timezone.utc)
    key = key_client.create_ec_key(
        name,
        curve=KeyCurveName.p_384,
        key_operations=[KeyOperation.sign],
        tags={"team": "interop"},
        not_before=nbf,
        expires_on=exp,
        enabled=True,
    )
    assert key.key_operations == ["sign"]
    assert key.properties.tags == {"team": "interop"}
    assert key.properties.not_before == nbf
    assert key.properties.expires_on == exp
    got = key_client.get_key(name)
    assert got.key_operations == ["sign"] and got.properties.tags == {"team": "interop"}
    assert got.properties.not_before == nbf and got.properties.expires_on == exp


@pytest.mark.parametrize("how", ["create_rsa_key(hardware_protected=True)", "create_key(RSA-HSM)", "create_ec_key(hardware_protected=True)"])
def test_hsm_key_types_are_refused(key_client, how):
    name = unique_name("hsm")
    log = RequestLog()
    with pytest.raises(HttpResponseError) as exc:
        if how == "create_rsa_key(hardware_protected=True)":
            key_client.create_rsa_key(name, hardware_protected=True, raw_response_hook=log)
        elif how == "create_key(RSA-HSM)":
            key_client.create_key(name, KeyType.rsa_hsm, raw_response_hook=log)
        else:
            key_client.create_ec_key(name, hardware_protected=True, raw_response_hook=log)
    assert log.last("/create")[2]["kty"].endswith("-HSM")
    _assert_status(exc, 400)
    assert _error_code(exc) == "BadParameter"
    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(name)


def test_create_invalid_parameters(key_client):
    for kwargs in ({"size": 1024}, {"size": 2049}):
        with pytest.raises(HttpResponseError) as exc:
            key_client.create_rsa_key(unique_name("badrsa"), **kwargs)
        _assert_status(exc, 400)
    with pytest.raises(HttpResponseError) as exc:
        key_client.create_ec_key(unique_name("badec"), curve="P-224")
    _assert_status(exc, 400)
    with pytest.raises(HttpResponseError) as exc:
        key_client.create_oct_key(unique_name("badoct"), size=100)
    _assert_status(exc, 400)


# --------------------------------------------------------------------------- 2. get / list


def test_get_key_latest_and_by_version(keys_vault, key_client):
    name = unique_name("getver")
    v1 = key_client.create_rsa_key(name, size=2048, tags={"v": "1"})
    v2 = key_client.create_rsa_key(name, size=2048, tags={"v": "2"})
    assert v1.properties.version != v2.properties.version
    assert v1.key.n != v2.key.n

    latest = key_client.get_key(name)
    assert latest.id == v2.id
    assert latest.key.n == v2.key.n and latest.key.e == v2.key.e
    assert latest.properties.tags == {"v": "2"}
    _assert_public_only(latest)

    first = key_client.get_key(name, v1.properties.version)
    assert first.id == f"{keys_vault.url}/keys/{name}/{v1.properties.version}"
    assert first.key.n == v1.key.n
    assert first.properties.tags == {"v": "1"}
    _assert_public_only(first)
    assert first.key.d is None and first.key.k is None and first.key.p is None

    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(name, "0" * 32)
    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(unique_name("missing"))


def test_list_keys_pages_past_25(key_client):
    prefix = unique_name("page")
    names = {f"{prefix}-{i:02d}" for i in range(27)}
    for n in sorted(names):
        key_client.create_ec_key(n, curve="P-256", tags={"i": n[-2:]})

    pages = [list(page) for page in key_client.list_properties_of_keys().by_page()]
    assert all(len(p) <= 25 for p in pages), [len(p) for p in pages]
    assert len(pages) >= 2, "27 new keys should need more than one page"
    listed = [p for page in pages for p in page]
    assert all(isinstance(p, KeyProperties) for p in listed)
    all_names = [p.name for p in listed]
    assert len(all_names) == len(set(all_names)), "a key was listed twice across pages"
    mine = [p for p in listed if p.name.startswith(prefix + "-")]
    assert {p.name for p in mine} == names
    for p in mine:
        assert p.version is None, f"list items carry the unversioned id, got {p.id}"
        assert p.id == f"{p.vault_url}/keys/{p.name}"
        assert p.enabled is True
        assert p.tags == {"i": p.name[-2:]}

    # maxresults is honoured.
    small = [list(page) for page in key_client.list_properties_of_keys(max_page_size=5).by_page()]
    assert all(len(p) <= 5 for p in small)
    assert {p.name for page in small for p in page} >= names


def test_list_key_versions(key_client):
    name = unique_name("versions")
    created = [key_client.create_oct_key(name, size=256).properties.version for _ in range(3)]
    listed = list(key_client.list_properties_of_key_versions(name))
    assert sorted(p.version for p in listed) == sorted(created)
    for p in listed:
        assert p.name == name
        assert p.id == f"{p.vault_url}/keys/{name}/{p.version}"
        assert p.enabled is True
    assert list(key_client.list_properties_of_key_versions(unique_name("none"))) == []


# --------------------------------------------------------------------------- 3. update


def test_update_key_properties(key_client):
    name = unique_name("update")
    key = key_client.create_rsa_key(name, size=2048)
    version = key.properties.version
    expires = (_now() + timedelta(days=30)).replace(microsecond=0)

    updated = key_client.update_key_properties(
        name,
        enabled=False,
        expires_on=expires,
        tags={"state": "off"},
        key_operations=[KeyOperation.verify, KeyOperation.sign],
    )
    assert updated.properties.version == version
    assert updated.properties.enabled is False
    assert updated.properties.expires_on == expires
    assert updated.properties.tags == {"state": "off"}
    assert set(updated.key_operations) == {"sign", "verify"}
    assert updated.key.n == key.key.n
    assert updated.properties.updated_on >= key.properties.updated_on

    # Read back through the listing (metadata; whether a GET of a *disabled* key is served is
    # not what this test is about).
    (listed,) = list(key_client.list_properties_of_key_versions(name))
    assert listed.version == version
    assert listed.enabled is False
    assert listed.expires_on == expires
    assert listed.tags == {"state": "off"}

    # Re-enable by version; unspecified properties are kept.
    again = key_client.update_key_properties(name, version, enabled=True)
    assert again.properties.enabled is True
    assert again.properties.expires_on == expires
    assert again.properties.tags == {"state": "off"}
    assert set(again.key_operations) == {"sign", "verify"}
    got = key_client.get_key(name)
    assert got.properties.enabled is True
    assert got.properties.expires_on == expires
    assert got.properties.tags == {"state": "off"}
    assert set(got.key_operations) == {"sign", "verify"}

    with pytest.raises(ResourceNotFoundError):
        key_client.update_key_properties(unique_name("missing"), enabled=False)


# --------------------------------------------------------------------------- 4. soft delete


def test_delete_get_deleted_list_recover_purge(keys_vault, key_client):
    name = unique_name("lifecycle")
    key = key_client.create_ec_key(name, curve="P-256")

    deleted = _delete(key_client, name)
    assert isinstance(deleted, DeletedKey)
    assert deleted.name == name
    assert deleted.recovery_id == f"{keys_vault.url}/deletedkeys/{name}"
    assert abs(deleted.deleted_date - _now()) < CLOCK_SLACK
    assert abs(deleted.scheduled_purge_date - (deleted.deleted_date + timedelta(days=90))) < timedelta(minutes=1)
    assert deleted.key.x == key.key.x
    assert deleted.properties.version == key.properties.version

    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(name)
    got = key_client.get_deleted_key(name)
    assert got.recovery_id == deleted.recovery_id
    assert got.key.x == key.key.x and got.key.y == key.key.y
    _assert_public_only(got)

    listed = {d.name: d for d in key_client.list_deleted_keys()}
    assert name in listed
    assert listed[name].recovery_id == deleted.recovery_id
    assert listed[name].deleted_date is not None and listed[name].scheduled_purge_date is not None
    assert name not in {p.name for p in key_client.list_properties_of_keys()}

    # The name is taken while the key is soft-deleted.
    with pytest.raises(HttpResponseError) as exc:
        key_client.create_ec_key(name)
    _assert_status(exc, 409)

    recovered = key_client.begin_recover_deleted_key(name).result()
    assert recovered.id == key.id
    back = key_client.get_key(name)
    assert back.key.x == key.key.x
    with pytest.raises(ResourceNotFoundError):
        key_client.get_deleted_key(name)

    _delete(key_client, name)
    key_client.purge_deleted_key(name)
    with pytest.raises(ResourceNotFoundError):
        key_client.get_deleted_key(name)
    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(name)
    assert name not in {d.name for d in key_client.list_deleted_keys()}
    # The name is free again.
    assert key_client.create_ec_key(name).properties.version != key.properties.version


def test_delete_and_purge_missing(key_client):
    with pytest.raises(ResourceNotFoundError):
        key_client.begin_delete_key(unique_name("missing"))
    with pytest.raises(ResourceNotFoundError):
        key_client.get_deleted_key(unique_name("missing"))
    with pytest.raises(ResourceNotFoundError):
        key_client.purge_deleted_key(unique_name("missing"))
    with pytest.raises(ResourceNotFoundError):
        key_client.begin_recover_deleted_key(unique_name("missing"))


# --------------------------------------------------------------------------- 5. backup / restore


def test_backup_restore_brings_back_every_version(key_client):
    name = unique_name("backup")
    v1 = key_client.create_rsa_key(name, size=2048, tags={"v": "1"})
    v2 = key_client.create_rsa_key(name, size=2048, tags={"v": "2"})
    blob = key_client.backup_key(name)
    assert isinstance(blob, bytes) and len(blob) > 0

    _delete(key_client, name)
    key_client.purge_deleted_key(name)
    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(name)

    restored = key_client.restore_key_backup(blob)
    assert isinstance(restored, KeyVaultKey)
    assert restored.name == name
    assert restored.id == v2.id
    assert restored.key.n == v2.key.n
    assert sorted(_versions(key_client, name)) == sorted([v1.properties.version, v2.properties.version])
    old = key_client.get_key(name, v1.properties.version)
    assert old.key.n == v1.key.n and old.properties.tags == {"v": "1"}

    # Restoring over an existing key is a conflict.
    with pytest.raises(HttpResponseError) as exc:
        key_client.restore_key_backup(blob)
    _assert_status(exc, 409)
    # A garbled blob is refused.
    with pytest.raises(HttpResponseError) as exc:
        key_client.restore_key_backup(b"not a kvault backup")
    _assert_status(exc, 400)
    with pytest.raises(ResourceNotFoundError):
        key_client.backup_key(unique_name("missing"))


def test_restored_key_still_works(keys_vault, key_client):
    name = unique_name("bkcrypto")
    key = key_client.create_ec_key(name, curve="P-256")
    blob = key_client.backup_key(name)
    _delete(key_client, name)
    key_client.purge_deleted_key(name)
    restored = key_client.restore_key_backup(blob)
    digest = _digest(hashes.SHA256(), b"after restore")
    with keys_vault.crypto_client(restored.id) as crypto:
        sig = crypto.sign(SignatureAlgorithm.es256, digest).signature
    _ec_public(key).verify(_raw_to_der(sig), digest, ec.ECDSA(Prehashed(hashes.SHA256())))


# --------------------------------------------------------------------------- 6. import


def test_import_rsa_key_and_sign(keys_vault, key_client):
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = unique_name("imprsa")
    log = RequestLog()
    imported = key_client.import_key(name, _rsa_jwk(private_key), tags={"src": "local"}, raw_response_hook=log)
    method, path, body = log.last(f"/keys/{name}")
    assert method == "PUT" and set(body["key"]) >= {"kty", "n", "e", "d", "p", "q", "dp", "dq", "qi"}, body

    assert imported.key_type == KeyType.rsa
    assert _int(imported.key.n) == private_key.public_key().public_numbers().n
    assert _int(imported.key.e) == 65537
    assert imported.properties.tags == {"src": "local"}
    assert set(imported.key_operations) == DEFAULT_RSA_OPS
    _assert_public_only(imported)
    _assert_public_only(key_client.get_key(name))

    digest = _digest(hashes.SHA256(), b"imported rsa")
    with keys_vault.crypto_client(imported) as crypto:
        for alg in (SignatureAlgorithm.rs256, SignatureAlgorithm.ps256):
            signed = crypto.sign(alg, digest)
            assert signed.key_id == imported.id
            private_key.public_key().verify(signed.signature, digest, _rsa_sig_padding(alg), Prehashed(hashes.SHA256()))
        # A locally-made ciphertext decrypts in the vault.
        ct = private_key.public_key().encrypt(b"to the vault", _rsa_enc_padding("RSA-OAEP-256"))
        assert crypto.decrypt(EncryptionAlgorithm.rsa_oaep_256, ct).plaintext == b"to the vault"


@pytest.mark.parametrize("crv", ["P-256", "P-384", "P-521", "P-256K"])
def test_import_ec_key_and_sign(keys_vault, key_client, crv):
    curve, size, hash_alg, alg = CURVES[crv]
    private_key = ec.generate_private_key(curve)
    name = unique_name("impec")
    imported = key_client.import_key(name, _ec_jwk(private_key, crv))
    assert imported.key_type == KeyType.ec
    assert imported.key.crv == crv
    pub = private_key.public_key().public_numbers()
    assert _int(imported.key.x) == pub.x and _int(imported.key.y) == pub.y
    assert len(imported.key.x) == size and len(imported.key.y) == size
    _assert_public_only(imported)

    digest = _digest(hash_alg, b"imported ec " + crv.encode())
    with keys_vault.crypto_client(imported.id) as crypto:
        sig = crypto.sign(alg, digest).signature
    assert len(sig) == 2 * size, f"{alg} signature is {len(sig)} bytes, expected raw r||s of {2 * size}"
    private_key.public_key().verify(_raw_to_der(sig), digest, ec.ECDSA(Prehashed(hash_alg)))


def test_import_oct_key(key_client):
    name = unique_name("impoct")
    k = os.urandom(32)
    imported = key_client.import_key(name, JsonWebKey(kty=KeyType.oct, k=k))
    assert imported.key_type == KeyType.oct
    assert set(imported.key_operations) == {"encrypt", "decrypt", "wrapKey", "unwrapKey"}
    _assert_public_only(imported)
    _assert_public_only(key_client.get_key(name))


@pytest.mark.parametrize("what", ["rsa-public", "ec-public", "oct-without-k"])
def test_import_without_private_members_is_refused(key_client, what):
    if what == "rsa-public":
        jwk = _rsa_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048), private=False)
    elif what == "ec-public":
        jwk = _ec_jwk(ec.generate_private_key(ec.SECP256R1()), "P-256", private=False)
    else:
        jwk = JsonWebKey(kty=KeyType.oct)
    name = unique_name("imppub")
    with pytest.raises(HttpResponseError) as exc:
        key_client.import_key(name, jwk)
    _assert_status(exc, 400)
    with pytest.raises(ResourceNotFoundError):
        key_client.get_key(name)


def test_import_inconsistent_rsa_key_is_refused(key_client):
    a = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    b = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = _rsa_jwk(a)
    jwk.n = _be(b.public_key().public_numbers().n)
    with pytest.raises(HttpResponseError) as exc:
        key_client.import_key(unique_name("impbad"), jwk)
    _assert_status(exc, 400)


def test_import_hsm_is_refused(key_client):
    jwk = _ec_jwk(ec.generate_private_key(ec.SECP256R1()), "P-256")
    with pytest.raises(HttpResponseError) as exc:
        key_client.import_key(unique_name("imphsm"), jwk, hardware_protected=True)
    _assert_status(exc, 400)


# --------------------------------------------------------------------------- 7. rotation


def _actions(policy: KeyRotationPolicy) -> Dict[str, Tuple[Optional[str], Optional[str]]]:
    return {
        getattr(a.action, "value", a.action).lower(): (a.time_after_create, a.time_before_expiry)
        for a in policy.lifetime_actions
    }


def test_rotation_policy_round_trip_and_merge(keys_vault, key_client):
    name = unique_name("rotpol")
    key_client.create_rsa_key(name, size=2048)
    actions = [
        KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P90D"),
        KeyRotationLifetimeAction(KeyRotationPolicyAction.notify, time_before_expiry="P30D"),
    ]
    set_policy = key_client.update_key_rotation_policy(name, KeyRotationPolicy(), lifetime_actions=actions, expires_in="P2Y")
    policy_id = f"{keys_vault.url}/keys/{name}/rotationpolicy"
    assert set_policy.id == policy_id
    assert _actions(set_policy) == {"rotate": ("P90D", None), "notify": (None, "P30D")}
    assert {a.action for a in set_policy.lifetime_actions} == {KeyRotationPolicyAction.rotate, KeyRotationPolicyAction.notify}
    assert set_policy.expires_in == "P2Y"
    assert set_policy.created_on is not None and abs(set_policy.created_on - _now()) < CLOCK_SLACK
    assert set_policy.updated_on is not None

    got = key_client.get_key_rotation_policy(name)
    assert got.id == policy_id
    assert _actions(got) == {"rotate": ("P90D", None), "notify": (None, "P30D")}
    assert got.expires_in == "P2Y"
    assert got.created_on == set_policy.created_on

    # The key_rotation.py sample: a later update that does not mention expires_in keeps it.
    newer = key_client.update_key_rotation_policy(
        name,
        KeyRotationPolicy(),
        lifetime_actions=[KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_before_expiry="P60D")],
    )
    assert _actions(newer) == {"rotate": (None, "P60D")}
    assert newer.expires_in == "P2Y"
    assert newer.created_on == set_policy.created_on
    again = key_client.get_key_rotation_policy(name)
    assert _actions(again) == {"rotate": (None, "P60D")}
    assert again.expires_in == "P2Y"

    # Passing the fetched policy back (another way the samples update) keeps everything.
    echoed = key_client.update_key_rotation_policy(name, again)
    assert _actions(echoed) == {"rotate": (None, "P60D")} and echoed.expires_in == "P2Y"


def test_rotation_policy_of_key_without_one(keys_vault, key_client):
    name = unique_name("nopol")
    key_client.create_ec_key(name)
    policy = key_client.get_key_rotation_policy(name)
    assert policy.id == f"{keys_vault.url}/keys/{name}/rotationpolicy"
    # The cloud's default: notify 30 days before expiry, nothing else.
    assert _actions(policy) == {"notify": (None, "P30D")}
    with pytest.raises(ResourceNotFoundError):
        key_client.get_key_rotation_policy(unique_name("missing"))


@pytest.mark.parametrize(
    "actions,expires_in",
    [
        ([KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P1D")], None),
        ([KeyRotationLifetimeAction(KeyRotationPolicyAction.notify, time_after_create="P30D")], "P1Y"),
        ([KeyRotationLifetimeAction(KeyRotationPolicyAction.notify, time_before_expiry="P30D")], None),
        ([KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P90D")], "P10D"),
        ([KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="ninety days")], None),
    ],
    ids=["rotate-P1D", "notify-after-create", "before-expiry-without-expiry", "expiry-too-short", "not-iso8601"],
)
def test_invalid_rotation_policy_is_refused(key_client, actions, expires_in):
    name = unique_name("badpol")
    key_client.create_ec_key(name)
    with pytest.raises(HttpResponseError) as exc:
        key_client.update_key_rotation_policy(name, KeyRotationPolicy(), lifetime_actions=actions, expires_in=expires_in)
    _assert_status(exc, 400)
    # Nothing was stored.
    assert _actions(key_client.get_key_rotation_policy(name)) == {"notify": (None, "P30D")}


def test_rotate_key_keeps_type_size_curve_ops_and_applies_expiry(key_client):
    rsa_name = unique_name("rotrsa")
    original = key_client.create_rsa_key(
        rsa_name, size=3072, key_operations=["sign", "verify", "encrypt", "decrypt"], tags={"app": "x"}
    )
    key_client.update_key_rotation_policy(
        rsa_name,
        KeyRotationPolicy(),
        lifetime_actions=[KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P90D")],
        expires_in="P2Y",
    )
    rotated = key_client.rotate_key(rsa_name)
    assert rotated.name == rsa_name
    assert rotated.properties.version != original.properties.version
    assert rotated.key_type == KeyType.rsa
    assert len(rotated.key.n) == len(original.key.n) == 384
    assert rotated.key.n != original.key.n
    assert rotated.key.e == original.key.e
    assert set(rotated.key_operations) == {"sign", "verify", "encrypt", "decrypt"}
    assert rotated.properties.tags == {"app": "x"}
    assert rotated.properties.enabled is True
    # The policy's expiryTime applies to the new version.
    assert rotated.properties.expires_on is not None
    assert abs(rotated.properties.expires_on - (_now() + timedelta(days=730))) < CLOCK_SLACK
    _assert_public_only(rotated)
    assert key_client.get_key(rsa_name).id == rotated.id
    assert sorted(_versions(key_client, rsa_name)) == sorted([original.properties.version, rotated.properties.version])

    ec_name = unique_name("rotec")
    ec_key = key_client.create_ec_key(ec_name, curve="P-521")
    ec_rotated = key_client.rotate_key(ec_name)
    assert ec_rotated.key_type == KeyType.ec and ec_rotated.key.crv == "P-521"
    assert len(ec_rotated.key.x) == 66 and ec_rotated.key.x != ec_key.key.x
    assert set(ec_rotated.key_operations) == {"sign", "verify"}
    assert ec_rotated.properties.expires_on is None  # no policy, no expiry

    oct_name = unique_name("rotoct")
    key_client.create_oct_key(oct_name, size=128, key_operations=["wrapKey", "unwrapKey"])
    oct_rotated = key_client.rotate_key(oct_name)
    assert oct_rotated.key_type == KeyType.oct
    assert set(oct_rotated.key_operations) == {"wrapKey", "unwrapKey"}

    with pytest.raises(ResourceNotFoundError):
        key_client.rotate_key(unique_name("missing"))


# --------------------------------------------------------------------------- 8. crypto: SDK default client (keys vault)
#
# The client gets the key; RSA encrypt/wrap/verify and EC verify happen locally in the SDK with
# the JWK kvault returned, decrypt/unwrap/sign go to kvault.


@pytest.fixture(scope="module")
def rsa_key(key_client) -> KeyVaultKey:
    return key_client.create_rsa_key(unique_name("rsaops"), size=2048)


@pytest.mark.parametrize("alg", RSA_ENCRYPTIONS, ids=lambda a: a.value)
def test_rsa_decrypt_of_local_ciphertext(keys_vault, rsa_key, alg):
    plaintext = b"interop plaintext " + alg.value.encode()
    with keys_vault.crypto_client(rsa_key.id) as crypto:
        local_ct = _rsa_public(rsa_key).encrypt(plaintext, _rsa_enc_padding(alg.value))
        result = crypto.decrypt(alg, local_ct)
        assert result.plaintext == plaintext
        assert result.key_id == rsa_key.id
        # And the SDK's own encrypt (local, with kvault's n/e) round-trips through kvault.
        sdk = crypto.encrypt(alg, plaintext)
        assert len(sdk.ciphertext) == 256
        assert crypto.decrypt(alg, sdk.ciphertext).plaintext == plaintext


@pytest.mark.parametrize("alg", RSA_WRAPS, ids=lambda a: a.value)
def test_rsa_unwrap_of_local_wrap(keys_vault, rsa_key, alg):
    cek = os.urandom(32)
    with keys_vault.crypto_client(rsa_key) as crypto:
        wrapped = crypto.wrap_key(alg, cek)
        assert crypto.unwrap_key(alg, wrapped.encrypted_key).key == cek
        local = _rsa_public(rsa_key).encrypt(cek, _rsa_enc_padding(alg.value))
        unwrapped = crypto.unwrap_key(alg, local)
        assert unwrapped.key == cek
        assert unwrapped.key_id == rsa_key.id


@pytest.mark.parametrize("alg", list(RSA_SIGNATURES), ids=lambda a: a.value)
def test_rsa_signature_verifies_locally(keys_vault, rsa_key, alg):
    hash_alg = RSA_SIGNATURES[alg]()
    digest = _digest(hash_alg, b"signed by kvault with " + alg.value.encode())
    with keys_vault.crypto_client(rsa_key.id) as crypto:
        signed = crypto.sign(alg, digest)
        assert signed.algorithm == alg and signed.key_id == rsa_key.id
        assert len(signed.signature) == 256
        _rsa_public(rsa_key).verify(signed.signature, digest, _rsa_sig_padding(alg), Prehashed(hash_alg))
        with pytest.raises(InvalidSignature):
            _rsa_public(rsa_key).verify(_tamper(signed.signature), digest, _rsa_sig_padding(alg), Prehashed(hash_alg))
        assert crypto.verify(alg, digest, signed.signature).is_valid is True
        assert crypto.verify(alg, digest, _tamper(signed.signature)).is_valid is False


@pytest.mark.parametrize("crv", ["P-256", "P-384", "P-521", "P-256K"])
def test_ec_signature_verifies_locally(keys_vault, key_client, crv):
    _, size, hash_alg, alg = CURVES[crv]
    key = key_client.create_ec_key(unique_name("ecops"), curve=crv)
    digest = _digest(hash_alg, b"signed by kvault on " + crv.encode())
    with keys_vault.crypto_client(key) as crypto:
        signed = crypto.sign(alg, digest)
        assert len(signed.signature) == 2 * size, f"{alg} signature is {len(signed.signature)} bytes"
        _ec_public(key).verify(_raw_to_der(signed.signature), digest, ec.ECDSA(Prehashed(hash_alg)))
        with pytest.raises(InvalidSignature):
            _ec_public(key).verify(_raw_to_der(_tamper(signed.signature)), digest, ec.ECDSA(Prehashed(hash_alg)))
        assert crypto.verify(alg, digest, signed.signature).is_valid is True
        assert crypto.verify(alg, digest, _tamper(signed.signature)).is_valid is False


@pytest.mark.parametrize("size", [128, 192, 256])
def test_oct_gcm_round_trip_default_client(keys_vault, key_client, size):
    """The SDK has no local AES-GCM, so these go to kvault even with the default client."""
    gcm = AES[size][0]
    key = key_client.create_oct_key(unique_name("octgcm"), size=size)
    aad = b"header"
    with keys_vault.crypto_client(key.id) as crypto:
        enc = crypto.encrypt(gcm, b"gcm plaintext", additional_authenticated_data=aad)
        assert enc.ciphertext != b"gcm plaintext" and len(enc.ciphertext) == len(b"gcm plaintext")
        assert enc.iv is not None and len(enc.iv) == 12
        assert enc.tag is not None and len(enc.tag) == 16
        dec = crypto.decrypt(gcm, enc.ciphertext, iv=enc.iv, authentication_tag=enc.tag, additional_authenticated_data=aad)
        assert dec.plaintext == b"gcm plaintext"


# --------------------------------------------------------------------------- 9. crypto: remote-only client (crypto vault)
#
# `crypto-remote` may not `get` keys, so the SDK performs every operation in kvault.


@pytest.fixture
def remote(crypto_vault, remote_credential):
    """remote(key) -> (CryptographyClient that does everything in kvault, RequestLog)."""
    clients: List[CryptographyClient] = []

    def make(key: KeyVaultKey) -> Tuple[CryptographyClient, RequestLog]:
        log = RequestLog()
        c = crypto_vault.crypto_client(key.id, credential=remote_credential, raw_response_hook=log)
        clients.append(c)
        return c, log

    yield make
    for c in clients:
        c.close()


def _assert_remote(log: RequestLog, key: KeyVaultKey, ops: List[str]) -> None:
    """Every operation in `ops` was sent to kvault for `key`'s version."""
    base = f"/keys/{key.name}/{key.properties.version}/"
    sent = [p[len(base):] for p in log.paths("POST") if p.startswith(base)]
    for op in ops:
        assert op in sent, f"{op} was not sent to kvault (sent: {log.requests})"


@pytest.fixture(scope="module")
def imported_rsa(crypto_key_client) -> Tuple[rsa.RSAPrivateKey, KeyVaultKey]:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private_key, crypto_key_client.import_key(unique_name("rrsa"), _rsa_jwk(private_key))


@pytest.mark.parametrize("alg", RSA_ENCRYPTIONS, ids=lambda a: a.value)
def test_remote_rsa_encrypt_decrypt(remote, imported_rsa, alg):
    private_key, key = imported_rsa
    crypto, log = remote(key)
    plaintext = b"remote rsa " + alg.value.encode()
    enc = crypto.encrypt(alg, plaintext)
    assert enc.key_id == key.id and len(enc.ciphertext) == 256
    # kvault's ciphertext decrypts with the original private key ...
    assert private_key.decrypt(enc.ciphertext, _rsa_enc_padding(alg.value)) == plaintext
    # ... and with kvault itself.
    assert crypto.decrypt(alg, enc.ciphertext).plaintext == plaintext
    # A locally-made ciphertext decrypts in kvault.
    local = private_key.public_key().encrypt(plaintext, _rsa_enc_padding(alg.value))
    assert crypto.decrypt(alg, local).plaintext == plaintext
    _assert_remote(log, key, ["encrypt", "decrypt"])


@pytest.mark.parametrize("alg", RSA_WRAPS, ids=lambda a: a.value)
def test_remote_rsa_wrap_unwrap(remote, imported_rsa, alg):
    private_key, key = imported_rsa
    crypto, log = remote(key)
    cek = os.urandom(32)
    wrapped = crypto.wrap_key(alg, cek)
    assert private_key.decrypt(wrapped.encrypted_key, _rsa_enc_padding(alg.value)) == cek
    assert crypto.unwrap_key(alg, wrapped.encrypted_key).key == cek
    local = private_key.public_key().encrypt(cek, _rsa_enc_padding(alg.value))
    assert crypto.unwrap_key(alg, local).key == cek
    _assert_remote(log, key, ["wrapkey", "unwrapkey"])


@pytest.mark.parametrize("alg", list(RSA_SIGNATURES), ids=lambda a: a.value)
def test_remote_rsa_sign_verify(remote, imported_rsa, alg):
    private_key, key = imported_rsa
    crypto, log = remote(key)
    hash_alg = RSA_SIGNATURES[alg]()
    digest = _digest(hash_alg, b"remote " + alg.value.encode())
    sig = crypto.sign(alg, digest).signature
    private_key.public_key().verify(sig, digest, _rsa_sig_padding(alg), Prehashed(hash_alg))
    assert crypto.verify(alg, digest, sig).is_valid is True
    assert crypto.verify(alg, digest, _tamper(sig)).is_valid is False
    assert crypto.verify(alg, _tamper(digest), sig).is_valid is False
    # A signature made locally with the original key verifies in kvault.
    local = private_key.sign(digest, _rsa_sig_padding(alg), Prehashed(hash_alg))
    assert crypto.verify(alg, digest, local).is_valid is True
    _assert_remote(log, key, ["sign", "verify"])


@pytest.mark.parametrize("crv", ["P-256", "P-384", "P-521", "P-256K"])
def test_remote_ec_sign_verify(remote, crypto_key_client, crv):
    curve, size, hash_alg, alg = CURVES[crv]
    private_key = ec.generate_private_key(curve)
    key = crypto_key_client.import_key(unique_name("rec"), _ec_jwk(private_key, crv))
    crypto, log = remote(key)
    digest = _digest(hash_alg, b"remote ec " + crv.encode())
    sig = crypto.sign(alg, digest).signature
    assert len(sig) == 2 * size
    private_key.public_key().verify(_raw_to_der(sig), digest, ec.ECDSA(Prehashed(hash_alg)))
    assert crypto.verify(alg, digest, sig).is_valid is True
    assert crypto.verify(alg, digest, _tamper(sig)).is_valid is False
    local = _der_to_raw(private_key.sign(digest, ec.ECDSA(Prehashed(hash_alg))), size)
    assert crypto.verify(alg, digest, local).is_valid is True
    _assert_remote(log, key, ["sign", "verify"])

    # A generated key too: its signature verifies with the JWK's x/y.
    generated = crypto_key_client.create_ec_key(unique_name("recg"), curve=crv)
    gcrypto, _ = remote(generated)
    gsig = gcrypto.sign(alg, digest).signature
    _ec_public(generated).verify(_raw_to_der(gsig), digest, ec.ECDSA(Prehashed(hash_alg)))


@pytest.mark.parametrize("size", [128, 192, 256])
def test_remote_oct_generated_round_trips(remote, crypto_key_client, size):
    gcm, cbcpad, _, kw = AES[size]
    key = crypto_key_client.create_oct_key(unique_name("roct"), size=size)
    crypto, log = remote(key)
    aad = b"associated " + str(size).encode()
    plaintext = b"symmetric plaintext, not a multiple of 16"

    enc = crypto.encrypt(gcm, plaintext, additional_authenticated_data=aad)
    assert len(enc.iv) == 12 and len(enc.tag) == 16 and len(enc.ciphertext) == len(plaintext)
    assert enc.aad == aad
    dec = crypto.decrypt(gcm, enc.ciphertext, iv=enc.iv, authentication_tag=enc.tag, additional_authenticated_data=aad)
    assert dec.plaintext == plaintext
    # Wrong AAD or tag: refused.
    with pytest.raises(HttpResponseError) as exc:
        crypto.decrypt(gcm, enc.ciphertext, iv=enc.iv, authentication_tag=enc.tag, additional_authenticated_data=b"other")
    _assert_status(exc, 400)
    with pytest.raises(HttpResponseError) as exc:
        crypto.decrypt(gcm, enc.ciphertext, iv=enc.iv, authentication_tag=_tamper(enc.tag), additional_authenticated_data=aad)
    _assert_status(exc, 400)

    iv = os.urandom(16)
    cbc = crypto.encrypt(cbcpad, plaintext, iv=iv)
    assert cbc.iv == iv
    assert len(cbc.ciphertext) == 48  # 41 bytes + PKCS#7 padding
    assert crypto.decrypt(cbcpad, cbc.ciphertext, iv=iv).plaintext == plaintext

    cek = os.urandom(32)
    wrapped = crypto.wrap_key(kw, cek)
    assert len(wrapped.encrypted_key) == 40
    assert crypto.unwrap_key(kw, wrapped.encrypted_key).key == cek
    _assert_remote(log, key, ["encrypt", "decrypt", "wrapkey", "unwrapkey"])

    # The key's size is enforced: another size's algorithm is refused.
    other = AES[256 if size != 256 else 128][0]
    with pytest.raises(HttpResponseError) as exc:
        crypto.encrypt(other, plaintext)
    _assert_status(exc, 400)


@pytest.mark.parametrize("size", [128, 192, 256])
def test_remote_oct_imported_matches_cryptography(remote, crypto_key_client, size):
    gcm, cbcpad, cbc, kw = AES[size]
    k = os.urandom(size // 8)
    key = crypto_key_client.import_key(unique_name("roctimp"), JsonWebKey(kty=KeyType.oct, k=k))
    crypto, log = remote(key)
    aad = b"aad for " + gcm.value.encode()
    plaintext = b"known-key plaintext " + os.urandom(11)

    # AES-GCM: kvault's ciphertext + tag decrypt locally, and a local one decrypts in kvault.
    enc = crypto.encrypt(gcm, plaintext, additional_authenticated_data=aad)
    assert AESGCM(k).decrypt(enc.iv, enc.ciphertext + enc.tag, aad) == plaintext
    nonce = os.urandom(12)
    local = AESGCM(k).encrypt(nonce, plaintext, aad)
    dec = crypto.decrypt(gcm, local[:-16], iv=nonce, authentication_tag=local[-16:], additional_authenticated_data=aad)
    assert dec.plaintext == plaintext

    # AES-CBC with PKCS#7 padding, explicit iv.
    iv = os.urandom(16)
    cbc_enc = crypto.encrypt(cbcpad, plaintext, iv=iv)
    decryptor = Cipher(algorithms.AES(k), modes.CBC(iv)).decryptor()
    padded = decryptor.update(cbc_enc.ciphertext) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(128).unpadder()
    assert unpadder.update(padded) + unpadder.finalize() == plaintext
    padder = sym_padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(k), modes.CBC(iv)).encryptor()
    local_cbc = encryptor.update(padder.update(plaintext) + padder.finalize()) + encryptor.finalize()
    assert local_cbc == cbc_enc.ciphertext
    assert crypto.decrypt(cbcpad, local_cbc, iv=iv).plaintext == plaintext

    # AES-CBC without padding (block-aligned input).
    block = os.urandom(32)
    raw = crypto.encrypt(cbc, block, iv=iv)
    encryptor = Cipher(algorithms.AES(k), modes.CBC(iv)).encryptor()
    assert raw.ciphertext == encryptor.update(block) + encryptor.finalize()
    assert crypto.decrypt(cbc, raw.ciphertext, iv=iv).plaintext == block

    # AES key wrap (RFC 3394) is deterministic: byte-for-byte what cryptography produces.
    for cek in (os.urandom(16), os.urandom(24), os.urandom(32), os.urandom(64)):
        wrapped = crypto.wrap_key(kw, cek).encrypted_key
        assert wrapped == aes_key_wrap(k, cek)
        assert aes_key_unwrap(k, wrapped) == cek
        assert crypto.unwrap_key(kw, aes_key_wrap(k, cek)).key == cek
    _assert_remote(log, key, ["encrypt", "decrypt", "wrapkey", "unwrapkey"])


# --------------------------------------------------------------------------- 10. crypto errors


def test_wrong_digest_length_is_400(keys_vault, rsa_key, key_client):
    with keys_vault.crypto_client(rsa_key.id) as crypto:
        with pytest.raises(HttpResponseError) as exc:
            crypto.sign(SignatureAlgorithm.rs256, os.urandom(31))
        _assert_status(exc, 400)
        with pytest.raises(HttpResponseError) as exc:
            crypto.sign(SignatureAlgorithm.ps512, os.urandom(32))
        _assert_status(exc, 400)
    ec_key = key_client.create_ec_key(unique_name("digest"), curve="P-256")
    with keys_vault.crypto_client(ec_key.id) as crypto:
        with pytest.raises(HttpResponseError) as exc:
            crypto.sign(SignatureAlgorithm.es256, os.urandom(48))
        _assert_status(exc, 400)


def test_algorithm_that_does_not_fit_the_key_is_400(keys_vault, rsa_key, key_client):
    ec_key = key_client.create_ec_key(unique_name("misfit"), curve="P-256")
    digest = _digest(hashes.SHA384(), b"x")
    with keys_vault.crypto_client(ec_key.id) as crypto:
        with pytest.raises(HttpResponseError) as exc:
            crypto.sign(SignatureAlgorithm.es384, digest)
        _assert_status(exc, 400)
        with pytest.raises(HttpResponseError) as exc:
            crypto.sign(SignatureAlgorithm.rs256, digest[:32])
        _assert_status(exc, 400)
    with keys_vault.crypto_client(rsa_key.id) as crypto:
        with pytest.raises(HttpResponseError) as exc:
            crypto.encrypt(EncryptionAlgorithm.a256_gcm, b"plaintext")
        _assert_status(exc, 400)
        with pytest.raises(HttpResponseError) as exc:
            crypto.sign(SignatureAlgorithm.es256, _digest(hashes.SHA256(), b"x"))
        _assert_status(exc, 400)
        with pytest.raises(HttpResponseError) as exc:
            crypto.unwrap_key(KeyWrapAlgorithm.aes_256, os.urandom(40))
        _assert_status(exc, 400)


def test_disabled_key_sign_is_403(keys_vault, key_client):
    name = unique_name("disabled")
    key = key_client.create_rsa_key(name, size=2048)
    key_client.update_key_properties(name, enabled=False)
    with keys_vault.crypto_client(key.id) as crypto:
        with pytest.raises(HttpResponseError) as exc:
            crypto.sign(SignatureAlgorithm.rs256, _digest(hashes.SHA256(), b"x"))
    _assert_status(exc, 403)
    assert _error_code(exc) == "Forbidden"


@pytest.mark.parametrize("window", ["expired", "not-yet-valid"])
def test_validity_window_blocks_only_encrypt_wrap_sign(remote, crypto_key_client, window):
    """Azure's date-time controlled operations: outside nbf/exp, encrypt, wrapKey and sign are
    refused (403) while decrypt, unwrapKey and verify still work."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    day = timedelta(days=1)
    times = {"expires_on": _now() - day} if window == "expired" else {"not_before": _now() + day}
    key = crypto_key_client.import_key(unique_name(window), _rsa_jwk(private_key), **times)
    crypto, log = remote(key)
    digest = _digest(hashes.SHA256(), b"window")
    for refused in (
        lambda: crypto.sign(SignatureAlgorithm.rs256, digest),
        lambda: crypto.encrypt(EncryptionAlgorithm.rsa_oaep_256, b"x"),
        lambda: crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, os.urandom(32)),
    ):
        with pytest.raises(HttpResponseError) as exc:
            refused()
        _assert_status(exc, 403)
        assert _error_code(exc) == "Forbidden"
    oaep = _rsa_enc_padding("RSA-OAEP-256")
    assert crypto.decrypt(EncryptionAlgorithm.rsa_oaep_256, private_key.public_key().encrypt(b"x", oaep)).plaintext == b"x"
    cek = os.urandom(32)
    assert crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, private_key.public_key().encrypt(cek, oaep)).key == cek
    local_sig = private_key.sign(digest, _rsa_sig_padding(SignatureAlgorithm.rs256), Prehashed(hashes.SHA256()))
    assert crypto.verify(SignatureAlgorithm.rs256, digest, local_sig).is_valid is True
    _assert_remote(log, key, ["sign", "encrypt", "wrapkey", "decrypt", "unwrapkey", "verify"])


def test_sign_without_sign_in_key_ops_is_403(keys_vault, key_client):
    key = key_client.create_rsa_key(unique_name("nosign"), size=2048, key_operations=["verify", "encrypt", "decrypt"])
    digest = _digest(hashes.SHA256(), b"x")
    with keys_vault.crypto_client(key.id) as crypto:
        with pytest.raises(HttpResponseError) as exc:
            crypto.sign(SignatureAlgorithm.rs256, digest)
        _assert_status(exc, 403)
        assert _error_code(exc) == "Forbidden"
        # The operations it does allow still work.
        ct = _rsa_public(key).encrypt(b"ok", _rsa_enc_padding("RSA-OAEP"))
        assert crypto.decrypt(EncryptionAlgorithm.rsa_oaep, ct).plaintext == b"ok"
        with pytest.raises(HttpResponseError) as exc:
            crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep, ct)
        _assert_status(exc, 403)


def test_missing_key_is_not_found(keys_vault, key_client):
    missing = f"{keys_vault.url}/keys/{unique_name('missing')}/{'0' * 32}"
    with keys_vault.crypto_client(missing) as crypto:
        with pytest.raises(ResourceNotFoundError):
            crypto.sign(SignatureAlgorithm.rs256, _digest(hashes.SHA256(), b"x"))
        with pytest.raises(ResourceNotFoundError):
            crypto.decrypt(EncryptionAlgorithm.rsa_oaep, os.urandom(256))
    # An existing key, a version it does not have.
    key = key_client.create_ec_key(unique_name("ver"))
    with keys_vault.crypto_client(f"{keys_vault.url}/keys/{key.name}/{'f' * 32}") as crypto:
        with pytest.raises(ResourceNotFoundError):
            crypto.sign(SignatureAlgorithm.es256, _digest(hashes.SHA256(), b"x"))


# --------------------------------------------------------------------------- 11. random bytes, async


def test_get_random_bytes(keys_vault, key_client):
    # docs/security.md: `rng/action` is in Key Vault Administrator only (not Crypto Officer).
    with pytest.raises(HttpResponseError) as exc:
        key_client.get_random_bytes(16)
    _assert_status(exc, 403)
    admin = KvaultCredential(keys_vault.state_dir, user=DEV_ADMIN)
    with keys_vault.key_client(credential=admin) as c:
        first = c.get_random_bytes(16)
        second = c.get_random_bytes(16)
        assert isinstance(first, bytes) and len(first) == 16
        assert len(second) == 16 and first != second
        assert len(c.get_random_bytes(128)) == 128
        with pytest.raises(HttpResponseError) as exc:
            c.get_random_bytes(129)
        _assert_status(exc, 400)


def test_async_key_and_crypto_clients(keys_vault):
    async def main() -> None:
        credential = AsyncKvaultCredential(keys_vault.state_dir)
        name = unique_name("async")
        async with AsyncKeyClient(keys_vault.url, credential, connection_verify=str(keys_vault.ca)) as client:
            key = await client.create_ec_key(name, curve="P-384")
            assert key.key.crv == "P-384"
            got = await client.get_key(name)
            assert got.id == key.id
            names = [p.name async for p in client.list_properties_of_keys()]
            assert name in names
            async with AsyncCryptographyClient(key.id, credential, connection_verify=str(keys_vault.ca)) as crypto:
                digest = _digest(hashes.SHA384(), b"async")
                sig = (await crypto.sign(SignatureAlgorithm.es384, digest)).signature
                _ec_public(key).verify(_raw_to_der(sig), digest, ec.ECDSA(Prehashed(hashes.SHA384())))
                assert (await crypto.verify(SignatureAlgorithm.es384, digest, sig)).is_valid is True
            deleted = await client.delete_key(name)
            assert deleted.name == name and deleted.recovery_id is not None

    asyncio.run(main())
