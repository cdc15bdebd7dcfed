"""azure-keyvault-certificates (unmodified CertificateClient, with SecretClient and KeyClient)
against a live `kvault dev`.

Everything kvault issues is checked independently with `cryptography`: the DER certificate
(subject, SANs, key usage, EKUs, validity, key type and size, who signed it), the private key in
the certificate's secret (PKCS#12 opened with `password=None`, or PEM) and the key's public JWK
must all belong together. CSRs of the merge flow are signed by a CA made here, and imports use
PFX/PEM files made here.

Own vault `certs` (RBAC, throttling off): interop-user is Key Vault Certificates Officer, Secrets
User and Crypto Officer on top of the suite's usual Secrets Officer grant (`certs_policy_doc()`).

A failing assertion here is a kvault compatibility bug: fix the server, not the test.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.certificates import (
    AdministratorContact,
    CertificateClient,
    CertificateContact,
    CertificateContentType,
    CertificateOperation,
    CertificatePolicy,
    CertificatePolicyAction,
    KeyCurveName,
    KeyType,
    KeyUsageType,
    KeyVaultCertificate,
    LifetimeAction,
    WellKnownIssuerNames,
)
from azure.keyvault.certificates.aio import CertificateClient as AsyncCertificateClient
from azure.keyvault.keys import KeyClient, KeyVaultKey
from azure.keyvault.secrets import ContentType as SecretContentType, SecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import (
    AsyncKvaultCredential,
    KvaultCredential,
    DEV_ADMIN,
    data_plane_request,
    unique_name,
)

VERSION_RE = re.compile(r"[0-9a-f]{32}")
PFX = "application/x-pkcs12"
PEM = "application/x-pem-file"
SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"
UPN_OID = "1.3.6.1.4.1.311.20.2.3"
DEFAULT_CERT_KEY_OPS = {"sign", "verify", "encrypt", "decrypt", "wrapKey", "unwrapKey"}
CURVES = {
    "P-256": (ec.SECP256R1, hashes.SHA256),
    "P-384": (ec.SECP384R1, hashes.SHA384),
    "P-521": (ec.SECP521R1, hashes.SHA512),
}
# cryptography.x509.KeyUsage attribute -> the API's key usage name.
KEY_USAGE_NAMES = {
    "digital_signature": "digitalSignature",
    "content_commitment": "nonRepudiation",
    "key_encipherment": "keyEncipherment",
    "data_encipherment": "dataEncipherment",
    "key_agreement": "keyAgreement",
    "key_cert_sign": "keyCertSign",
    "crl_sign": "cRLSign",
}


# --------------------------------------------------------------------------- helpers


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _assert_status(exc_info, status: int) -> None:
    err = exc_info.value
    assert err.status_code == status, f"expected HTTP {status}, got {err.status_code}: {err}"


class RequestLog:
    """A `raw_response_hook` remembering (method, path, status) of every answered request."""

    def __init__(self) -> None:
        self.entries: List[Tuple[str, str, int]] = []

    def __call__(self, response) -> None:
        http = response.http_request
        path = "/" + http.url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        self.entries.append((http.method, path, response.http_response.status_code))


def _create(client: CertificateClient, name: str, policy: CertificatePolicy, **kwargs: Any) -> KeyVaultCertificate:
    """begin_create_certificate(...).result(): must be the certificate, not None or an operation."""
    poller = client.begin_create_certificate(name, policy, **kwargs)
    cert = poller.result()
    assert poller.done()
    assert isinstance(cert, KeyVaultCertificate), f"the create poller returned {cert!r}, not a KeyVaultCertificate"
    return cert


def _x509(cert: KeyVaultCertificate) -> x509.Certificate:
    assert cert.cer, f"{cert.id} has no cer"
    return x509.load_der_x509_certificate(bytes(cert.cer))


def _spki(key: Any) -> bytes:
    """SubjectPublicKeyInfo DER of a public key, private key or certificate."""
    if isinstance(key, x509.Certificate):
        key = key.public_key()
    if hasattr(key, "public_key"):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _jwk_public(key: KeyVaultKey) -> Any:
    jwk = key.key
    if getattr(jwk.kty, "value", jwk.kty) == "EC":
        crv = getattr(jwk.crv, "value", jwk.crv)
        curve = CURVES[crv][0]()
        return ec.EllipticCurvePublicNumbers(
            int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big"), curve
        ).public_key()
    return rsa.RSAPublicNumbers(int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")).public_key()


def _cn(name: x509.Name) -> str:
    return name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def _key_usages(cert: x509.Certificate) -> Set[str]:
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    found = {api for attr, api in KEY_USAGE_NAMES.items() if getattr(ku, attr)}
    if ku.key_agreement:
        if ku.encipher_only:
            found.add("encipherOnly")
        if ku.decipher_only:
            found.add("decipherOnly")
    return found


def _ekus(cert: x509.Certificate) -> List[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return []
    return [oid.dotted_string for oid in ext.value]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _sans(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def _months_between(start: datetime, end: datetime, months: int) -> None:
    days = (end - start).days
    assert months * 28 <= days <= months * 31 + 1, f"validity of {days} days for {months} months"


def _secret_pfx(secret_client: SecretClient, name: str, version: Optional[str] = None):
    secret = secret_client.get_secret(name, version)
    assert secret.properties.content_type == PFX, secret.properties.content_type
    key, leaf, extra = pkcs12.load_key_and_certificates(base64.b64decode(secret.value), password=None)
    assert key is not None, f"the PKCS#12 of secret {secret.id} has no private key"
    assert leaf is not None, f"the PKCS#12 of secret {secret.id} has no certificate"
    return secret, key, leaf, extra


def _secret_pem(secret_client: SecretClient, name: str):
    secret = secret_client.get_secret(name)
    assert secret.properties.content_type == PEM, secret.properties.content_type
    data = secret.value.encode()
    key = serialization.load_pem_private_key(data, password=None)
    certs = x509.load_pem_x509_certificates(data)
    return secret, key, certs


def _check_trio(
    cert: KeyVaultCertificate,
    secret_client: SecretClient,
    key_client: KeyClient,
    content_type: str = PFX,
) -> Any:
    """The certificate's secret holds the private key of its certificate, and its key's JWK is
    that public key; ids and `managed` flags tie the three together. Returns the private key."""
    leaf = _x509(cert)
    if content_type == PFX:
        secret, private, secret_leaf, _ = _secret_pfx(secret_client, cert.name)
        assert secret_leaf.public_bytes(serialization.Encoding.DER) == bytes(cert.cer)
    else:
        secret, private, certs = _secret_pem(secret_client, cert.name)
        assert certs[0].public_bytes(serialization.Encoding.DER) == bytes(cert.cer)
    assert _spki(private) == _spki(leaf), "the secret's private key does not belong to the certificate"
    assert secret.id == cert.secret_id, (secret.id, cert.secret_id)
    assert secret.properties.managed is True
    # (The secret's `kid` is checked by test_certificate_secret_kid_is_the_key_id.)
    key = key_client.get_key(cert.name)
    assert key.id == cert.key_id, (key.id, cert.key_id)
    assert key.properties.managed is True
    assert _spki(_jwk_public(key)) == _spki(leaf), "the key's JWK is not the certificate's public key"
    return private


# A CA made here (for merges and imports with a chain).


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _make_ca(cn: str = "kvault interop local CA") -> Tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue(
    public_key: Any,
    subject: x509.Name,
    ca_key: Any,
    ca_cert: Optional[x509.Certificate],
    extensions: Sequence[x509.Extension] = (),
    days: int = 90,
) -> x509.Certificate:
    """A certificate for `public_key` signed by the CA (or self-signed when ca_cert is None)."""
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject if ca_cert is not None else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
    )
    for ext in extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    return builder.sign(ca_key, hashes.SHA256())


def _self_signed(key: Any, cn: str, dns: Optional[str] = None) -> x509.Certificate:
    exts = []
    if dns:
        exts.append(x509.Extension(x509.SubjectAlternativeName.oid, False, x509.SubjectAlternativeName([x509.DNSName(dns)])))
    return _issue(key.public_key(), _name(cn), key, None, exts)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _delete(client: CertificateClient, name: str):
    poller = client.begin_delete_certificate(name)
    poller.wait()
    assert poller.done()
    return poller.result()


# --------------------------------------------------------------------------- create


def test_create_default_policy_poller_finishes(certs_vault, cert_client, cert_secret_client, cert_key_client):
    name = unique_name("default")
    log = RequestLog()
    started = _now()
    poller = cert_client.begin_create_certificate(name, CertificatePolicy.get_default(), raw_response_hook=log)
    assert poller.status() == "inprogress", "the 202 must say inProgress (else .result() is None)"
    cert = poller.result()
    assert isinstance(cert, KeyVaultCertificate), f"poller result: {cert!r}"
    # 202 inProgress, one GET of the operation (completed: no 5 s sleep), then the certificate.
    answered = [(m, p, s) for m, p, s in log.entries if s != 401]
    assert answered == [
        ("POST", f"/certificates/{name}/create", 202),
        ("GET", f"/certificates/{name}/pending", 200),
        ("GET", f"/certificates/{name}/", 200),
    ], answered

    assert cert.name == name
    assert cert.id == f"{certs_vault.url}/certificates/{name}/{cert.properties.version}"
    assert VERSION_RE.fullmatch(cert.properties.version)
    assert cert.key_id == f"{certs_vault.url}/keys/{name}/{cert.properties.version}"
    assert cert.secret_id == f"{certs_vault.url}/secrets/{name}/{cert.properties.version}"
    props = cert.properties
    assert props.enabled is True
    assert props.x509_thumbprint == hashlib.sha1(bytes(cert.cer)).digest()
    assert props.recovery_level and props.recovery_level.startswith("Recoverable")

    c = _x509(cert)
    assert c.subject == c.issuer and _cn(c.subject) == "DefaultPolicy"
    c.verify_directly_issued_by(c)  # self-signed
    pub = c.public_key()
    assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == 2048
    assert _key_usages(c) == {"digitalSignature", "keyEncipherment"}
    assert set(_ekus(c)) == {SERVER_AUTH, CLIENT_AUTH}
    assert not _is_ca(c)
    assert c.not_valid_before_utc <= started + timedelta(seconds=5)
    _months_between(started, c.not_valid_after_utc, 12)
    assert props.not_before == c.not_valid_before_utc
    assert props.expires_on == c.not_valid_after_utc

    # The cloud's stored defaults fill the policy.
    policy = cert.policy
    assert policy.issuer_name == "Self"
    assert policy.subject == "CN=DefaultPolicy"
    assert policy.key_type == KeyType.rsa and policy.key_size == 2048
    assert policy.exportable is True and policy.reuse_key is False
    assert policy.content_type == CertificateContentType.pkcs12
    assert policy.validity_in_months == 12
    assert set(policy.enhanced_key_usage) == {SERVER_AUTH, CLIENT_AUTH}
    assert set(policy.key_usage) == {KeyUsageType.digital_signature, KeyUsageType.key_encipherment}
    actions = [(a.action, a.lifetime_percentage, a.days_before_expiry) for a in policy.lifetime_actions]
    assert actions == [(CertificatePolicyAction.auto_renew, 80, None)]

    op = cert_client.get_certificate_operation(name)
    assert op.status == "completed" and op.issuer_name == "Self"
    assert op.target == f"{certs_vault.url}/certificates/{name}"

    key = cert_key_client.get_key(name)
    assert set(key.key_operations) == DEFAULT_CERT_KEY_OPS
    _check_trio(cert, cert_secret_client, cert_key_client)


@pytest.mark.parametrize("size", [2048, 3072, 4096])
def test_create_rsa_sizes(cert_client, cert_secret_client, cert_key_client, size):
    name = unique_name(f"rsa{size}")
    policy = CertificatePolicy(
        issuer_name=WellKnownIssuerNames.self, subject=f"CN=rsa{size}.interop", key_type=KeyType.rsa, key_size=size
    )
    cert = _create(cert_client, name, policy)
    pub = _x509(cert).public_key()
    assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == size
    assert cert.policy.key_type == KeyType.rsa and cert.policy.key_size == size
    _x509(cert).verify_directly_issued_by(_x509(cert))
    key = cert_key_client.get_key(name)
    assert key.key_type == "RSA" and len(key.key.n) * 8 == size
    _check_trio(cert, cert_secret_client, cert_key_client)


@pytest.mark.parametrize("crv", ["P-256", "P-384", "P-521"])
def test_create_ec_curves(cert_client, cert_secret_client, cert_key_client, crv):
    name = unique_name("ec")
    policy = CertificatePolicy(
        issuer_name=WellKnownIssuerNames.self,
        subject=f"CN=ec-{crv}.interop",
        key_type=KeyType.ec,
        key_curve_name=KeyCurveName(crv),
        key_usage=[KeyUsageType.digital_signature],
    )
    cert = _create(cert_client, name, policy)
    c = _x509(cert)
    pub = c.public_key()
    curve_cls, hash_cls = CURVES[crv]
    assert isinstance(pub, ec.EllipticCurvePublicKey) and isinstance(pub.curve, curve_cls)
    assert isinstance(c.signature_hash_algorithm, hash_cls)
    c.verify_directly_issued_by(c)
    assert cert.policy.key_type == KeyType.ec and cert.policy.key_curve_name == KeyCurveName(crv)
    key = cert_key_client.get_key(name)
    assert key.key_type == "EC" and key.key.crv == crv
    assert set(key.key_operations) == {"sign", "verify"}
    _check_trio(cert, cert_secret_client, cert_key_client)


def test_create_with_sans_subject_and_usages(cert_client, cert_secret_client, cert_key_client):
    name = unique_name("sans")
    policy = CertificatePolicy(
        issuer_name=WellKnownIssuerNames.self,
        subject="CN=web.interop.test, O=Interop Org, OU=QA, C=US",
        san_dns_names=["web.interop.test", "*.web.interop.test"],
        san_emails=["ops@interop.test"],
        san_user_principal_names=["svc@interop.test"],
        san_ip_addresses=["10.1.2.3", "fd00::1"],
        san_uris=["https://interop.test/id"],
        key_usage=[
            KeyUsageType.digital_signature,
            KeyUsageType.non_repudiation,
            KeyUsageType.data_encipherment,
            KeyUsageType.key_agreement,
        ],
        enhanced_key_usage=[
            ExtendedKeyUsageOID.CODE_SIGNING.dotted_string,
            ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string,
            "1.3.6.1.4.1.311.10.3.12",  # document signing, not one rcgen knows by name
        ],
        validity_in_months=3,
    )
    started = _now()
    cert = _create(cert_client, name, policy)
    c = _x509(cert)

    def attr(oid):
        return [a.value for a in c.subject.get_attributes_for_oid(oid)]

    assert attr(NameOID.COMMON_NAME) == ["web.interop.test"]
    assert attr(NameOID.ORGANIZATION_NAME) == ["Interop Org"]
    assert attr(NameOID.ORGANIZATIONAL_UNIT_NAME) == ["QA"]
    assert attr(NameOID.COUNTRY_NAME) == ["US"]

    sans = _sans(c)
    assert sans.get_values_for_type(x509.DNSName) == ["web.interop.test", "*.web.interop.test"]
    assert sans.get_values_for_type(x509.RFC822Name) == ["ops@interop.test"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3"), ipaddress.ip_address("fd00::1")]
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == ["https://interop.test/id"]
    upns = [o for o in sans.get_values_for_type(x509.OtherName) if o.type_id.dotted_string == UPN_OID]
    assert len(upns) == 1, sans
    upn = b"svc@interop.test"
    assert upns[0].value == bytes([0x0C, len(upn)]) + upn, upns[0].value  # DER UTF8String

    assert _key_usages(c) == {"digitalSignature", "nonRepudiation", "dataEncipherment", "keyAgreement"}
    assert _ekus(c) == [
        ExtendedKeyUsageOID.CODE_SIGNING.dotted_string,
        ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string,
        "1.3.6.1.4.1.311.10.3.12",
    ]
    _months_between(started, c.not_valid_after_utc, 3)

    p = cert.policy
    assert p.subject == "CN=web.interop.test, O=Interop Org, OU=QA, C=US"
    assert p.san_dns_names == ["web.interop.test", "*.web.interop.test"]
    assert p.san_emails == ["ops@interop.test"]
    assert p.san_user_principal_names == ["svc@interop.test"]
    assert p.san_ip_addresses == ["10.1.2.3", "fd00::1"]
    assert p.san_uris == ["https://interop.test/id"]
    assert p.validity_in_months == 3
    assert set(p.key_usage) == {
        KeyUsageType.digital_signature, KeyUsageType.non_repudiation,
        KeyUsageType.data_encipherment, KeyUsageType.key_agreement,
    }
    _check_trio(cert, cert_secret_client, cert_key_client)


def _merged(client: CertificateClient, name: str) -> KeyVaultCertificate:
    op = _pending(client, name, f"CN={name}", f"{name}.interop.test")
    ca_key, ca_cert = _make_ca()
    leaf = _sign_csr(x509.load_der_x509_csr(bytes(op.csr)), ca_key, ca_cert)
    return client.merge_certificate(name, [_der(leaf), _der(ca_cert)])


def _imported(client: CertificateClient, name: str) -> KeyVaultCertificate:
    key = ec.generate_private_key(ec.SECP256R1())
    pfx = pkcs12.serialize_key_and_certificates(b"kid", key, _self_signed(key, name), None, serialization.NoEncryption())
    return client.import_certificate(name, pfx)


@pytest.mark.parametrize("how", ["created-pfx", "created-pem", "imported", "merged"])
def test_certificate_secret_kid_is_the_key_id(cert_client, cert_secret_client, how):
    """A certificate-backed secret's `kid` is the certificate's key identifier (an absolute URL
    like every identifier, equal to the certificate's `kid`)."""
    name = unique_name("kid")
    if how == "created-pfx":
        cert = _create(cert_client, name, CertificatePolicy.get_default())
    elif how == "created-pem":
        cert = _create(
            cert_client, name, CertificatePolicy(issuer_name="Self", subject="CN=kid", content_type=CertificateContentType.pem)
        )
    elif how == "imported":
        cert = _imported(cert_client, name)
    else:
        cert = _merged(cert_client, name)
    listed = [p for p in cert_secret_client.list_properties_of_secret_versions(name)]
    assert [(p.version, p.managed) for p in listed] == [(cert.properties.version, True)]
    secret = cert_secret_client.get_secret(name)
    assert secret.properties.key_id == cert.key_id, (
        f"GET /secrets/{name}/ answers kid={secret.properties.key_id!r}; the certificate's kid is {cert.key_id!r}"
    )


def test_create_from_sans_only(cert_client):
    """A policy with SANs and no subject is valid (the SDK only needs one of them)."""
    name = unique_name("sanonly")
    cert = _create(
        cert_client, name, CertificatePolicy(issuer_name=WellKnownIssuerNames.self, san_dns_names=["only.interop.test"])
    )
    assert _sans(_x509(cert)).get_values_for_type(x509.DNSName) == ["only.interop.test"]


@pytest.mark.parametrize("months", [1, 24])
def test_validity_in_months(cert_client, months):
    name = unique_name("validity")
    started = _now()
    cert = _create(
        cert_client,
        name,
        CertificatePolicy(issuer_name=WellKnownIssuerNames.self, subject="CN=validity", validity_in_months=months),
    )
    c = _x509(cert)
    _months_between(started, c.not_valid_after_utc, months)
    assert cert.properties.expires_on == c.not_valid_after_utc
    assert cert.policy.validity_in_months == months


@pytest.mark.parametrize("kty", ["RSA", "EC"])
def test_create_pem_content_type(cert_client, cert_secret_client, cert_key_client, kty):
    name = unique_name("pem")
    policy = CertificatePolicy(
        issuer_name=WellKnownIssuerNames.self,
        subject="CN=pem.interop",
        content_type=CertificateContentType.pem,
        key_type=KeyType(kty),
    )
    cert = _create(cert_client, name, policy)
    assert cert.policy.content_type == CertificateContentType.pem
    secret = cert_secret_client.get_secret(name)
    assert secret.value.startswith("-----BEGIN PRIVATE KEY-----"), secret.value[:40]
    assert "-----BEGIN CERTIFICATE-----" in secret.value
    _check_trio(cert, cert_secret_client, cert_key_client, content_type=PEM)


def test_create_with_tags_and_disabled(cert_client):
    name = unique_name("tagged")
    cert = _create(cert_client, name, CertificatePolicy.get_default(), tags={"team": "interop"}, enabled=False)
    assert cert.properties.tags == {"team": "interop"}
    assert cert.properties.enabled is False


def test_non_exportable_key_keeps_the_private_key_in_the_vault(cert_client, cert_secret_client, cert_key_client):
    """exportable=false: the secret holds the certificate only; the key still signs in the vault."""
    name = unique_name("noexport")
    policy = CertificatePolicy(issuer_name="Self", subject="CN=noexport", key_type=KeyType.rsa, exportable=False)
    cert = _create(cert_client, name, policy)
    assert cert.policy.exportable is False
    secret = cert_secret_client.get_secret(name)
    key, leaf, extra = pkcs12.load_key_and_certificates(base64.b64decode(secret.value), password=None)
    assert key is None, "a non-exportable certificate key must not be in its secret"
    # Without a key, cryptography reports the certificate among the "additional" ones.
    assert [_der(c) for c in ([leaf] if leaf is not None else []) + extra] == [bytes(cert.cer)]
    vault_key = cert_key_client.get_key(name)
    assert _spki(_jwk_public(vault_key)) == _spki(_x509(cert))


@pytest.mark.parametrize("reuse", [True, False])
def test_reuse_key_on_a_new_version(cert_client, cert_key_client, reuse):
    name = unique_name("reuse")
    policy = CertificatePolicy(issuer_name="Self", subject="CN=reuse", key_type=KeyType.ec, reuse_key=reuse)
    first = _create(cert_client, name, policy)
    second = _create(cert_client, name, policy)
    assert first.properties.version != second.properties.version
    same = _spki(_x509(first)) == _spki(_x509(second))
    assert same is reuse, f"reuse_key={reuse} but the new version's key is {'the same' if same else 'new'}"
    assert _spki(_jwk_public(cert_key_client.get_key(name))) == _spki(_x509(second))


@pytest.mark.parametrize("kty", ["RSA", "EC"])
def test_secret_out_content_type_converts(cert_client, cert_secret_client, kty):
    """get_secret(out_content_type=...) (api-version 2025-07-01+) converts a certificate's
    secret between PKCS#12 and PEM; the key and certificate stay the same."""
    pfx_name, pem_name = unique_name("outpfx"), unique_name("outpem")
    pfx_cert = _create(cert_client, pfx_name, CertificatePolicy(issuer_name="Self", subject="CN=out", key_type=KeyType(kty)))
    pem_cert = _create(
        cert_client,
        pem_name,
        CertificatePolicy(issuer_name="Self", subject="CN=out", key_type=KeyType(kty), content_type=CertificateContentType.pem),
    )
    _, pfx_key, _, _ = _secret_pfx(cert_secret_client, pfx_name)
    as_pem = cert_secret_client.get_secret(pfx_name, out_content_type=SecretContentType.PEM)
    key = serialization.load_pem_private_key(as_pem.value.encode(), password=None)
    assert key.private_numbers() == pfx_key.private_numbers()
    assert _der(x509.load_pem_x509_certificates(as_pem.value.encode())[0]) == bytes(pfx_cert.cer)

    _, pem_key, _ = _secret_pem(cert_secret_client, pem_name)
    as_pfx = cert_secret_client.get_secret(pem_name, out_content_type=SecretContentType.PFX)
    key, leaf, _ = pkcs12.load_key_and_certificates(base64.b64decode(as_pfx.value), password=None)
    assert key.private_numbers() == pem_key.private_numbers()
    assert _der(leaf) == bytes(pem_cert.cer)


def test_managed_key_and_secret_change_only_through_the_certificate(cert_client, cert_secret_client, cert_key_client):
    """A certificate's key and secret are managed: kvault refuses `begin_delete_key` on the
    managed key and attribute updates of the managed secret (403)."""
    name = unique_name("managed")
    cert = _create(cert_client, name, CertificatePolicy.get_default())
    with pytest.raises(HttpResponseError) as exc:
        cert_key_client.begin_delete_key(name)
    _assert_status(exc, 403)
    with pytest.raises(HttpResponseError) as exc:
        cert_secret_client.update_secret_properties(name, enabled=False)
    _assert_status(exc, 403)
    _check_trio(cert_client.get_certificate(name), cert_secret_client, cert_key_client)
    assert cert_secret_client.get_secret(name).id == cert.secret_id


def test_set_secret_over_a_managed_secret_is_refused(cert_client, cert_secret_client, cert_key_client):
    """`set_secret` with a certificate's name must not put an unmanaged version on top of the
    certificate's secret (the certificate's secret would then not be its PFX)."""
    name = unique_name("managedset")
    cert = _create(cert_client, name, CertificatePolicy.get_default())
    with pytest.raises(HttpResponseError) as exc:
        cert_secret_client.set_secret(name, "not a certificate")
    assert exc.value.status_code in (403, 409), exc.value
    assert cert_secret_client.get_secret(name).id == cert.secret_id
    _check_trio(cert_client.get_certificate(name), cert_secret_client, cert_key_client)


def test_delete_secret_of_a_certificate_is_refused(cert_client, cert_secret_client, cert_key_client):
    """`begin_delete_secret` on a certificate's secret is refused like `begin_delete_key` on its
    key (403): the secret goes only with its certificate."""
    name = unique_name("manageddel")
    cert = _create(cert_client, name, CertificatePolicy.get_default())
    with pytest.raises(HttpResponseError) as exc:
        cert_secret_client.begin_delete_secret(name)
    _assert_status(exc, 403)
    assert cert_secret_client.get_secret(name).id == cert.secret_id
    _check_trio(cert_client.get_certificate(name), cert_secret_client, cert_key_client)


def test_credential_scope_and_older_api_versions(certs_vault):
    credential = KvaultCredential(certs_vault.state_dir)
    for api_version in ("7.0", "7.4", "2025-07-01"):
        with certs_vault.certificate_client(credential, api_version=api_version) as client:
            name = unique_name("apiver")
            cert = _create(client, name, CertificatePolicy.get_default())
            assert _cn(_x509(cert).subject) == "DefaultPolicy"
            assert client.get_certificate(name).id == cert.id
            assert name in {p.name for p in client.list_properties_of_certificates()}
    assert credential.scopes == {certs_vault.expected_scope}


def test_invalid_policies_are_400(cert_client):
    for policy in (
        CertificatePolicy(issuer_name="Self", subject="CN=bad", key_type=KeyType.rsa, key_size=1024),
        CertificatePolicy(issuer_name="Self", subject="CN=bad", key_type=KeyType.ec, key_curve_name=KeyCurveName.p_256_k),
        CertificatePolicy(issuer_name="Self", subject="CN=bad", content_type="text/plain"),
        CertificatePolicy(issuer_name="Self", san_ip_addresses=["not-an-ip"]),
    ):
        with pytest.raises(HttpResponseError) as exc:
            cert_client.begin_create_certificate(unique_name("bad"), policy)
        _assert_status(exc, 400)
    with pytest.raises(ValueError):  # the SDK itself refuses a policy with neither subject nor SAN
        cert_client.begin_create_certificate(unique_name("bad"), CertificatePolicy(issuer_name="Self"))


# --------------------------------------------------------------------------- get, list, update, policy


def test_versions_get_and_list(certs_vault, cert_client):
    name = unique_name("versions")
    first = _create(cert_client, name, CertificatePolicy.get_default())
    second = _create(
        cert_client,
        name,
        CertificatePolicy(issuer_name="Self", subject="CN=second", key_type=KeyType.ec, key_curve_name=KeyCurveName.p_384),
    )
    assert first.properties.version != second.properties.version
    assert first.cer != second.cer

    latest = cert_client.get_certificate(name)
    assert latest.id == second.id and latest.cer == second.cer
    assert _cn(_x509(latest).subject) == "second"
    older = cert_client.get_certificate_version(name, first.properties.version)
    assert older.id == first.id and older.cer == first.cer
    assert older.properties.x509_thumbprint == hashlib.sha1(bytes(first.cer)).digest()

    versions = {p.version: p for p in cert_client.list_properties_of_certificate_versions(name)}
    assert set(versions) == {first.properties.version, second.properties.version}
    for version, props in versions.items():
        assert props.id == f"{certs_vault.url}/certificates/{name}/{version}"
        assert props.name == name
    assert versions[first.properties.version].x509_thumbprint == first.properties.x509_thumbprint

    listed = {p.name: p for p in cert_client.list_properties_of_certificates()}
    assert name in listed
    assert listed[name].id == f"{certs_vault.url}/certificates/{name}"
    assert listed[name].x509_thumbprint == second.properties.x509_thumbprint


def test_list_pages(cert_client):
    names = {unique_name("page") for _ in range(4)}
    for n in names:
        _create(cert_client, n, CertificatePolicy(issuer_name="Self", subject="CN=page", key_type=KeyType.ec))
    pages = cert_client.list_properties_of_certificates(max_page_size=2).by_page()
    seen: List[str] = []
    page_count = 0
    for page in pages:
        items = list(page)
        assert len(items) <= 2
        page_count += 1
        seen += [p.name for p in items]
    assert names <= set(seen)
    assert page_count >= 2
    assert len(seen) == len(set(seen)), "a certificate was listed twice"


def test_update_certificate_properties(cert_client, cert_secret_client, cert_key_client):
    name = unique_name("update")
    first = _create(cert_client, name, CertificatePolicy.get_default())
    second = _create(cert_client, name, CertificatePolicy.get_default())

    updated = cert_client.update_certificate_properties(name, enabled=False, tags={"env": "test", "n": "1"})
    assert updated.id == second.id
    assert updated.properties.enabled is False
    assert updated.properties.tags == {"env": "test", "n": "1"}
    assert updated.cer == second.cer
    got = cert_client.get_certificate(name)
    assert got.properties.enabled is False and got.properties.tags == {"env": "test", "n": "1"}
    assert got.properties.updated_on >= got.properties.created_on
    # The certificate's attributes are mirrored to its key and secret.
    with pytest.raises(HttpResponseError) as exc:
        cert_secret_client.get_secret(name)
    _assert_status(exc, 403)
    key_versions = {p.version: p.enabled for p in cert_key_client.list_properties_of_key_versions(name)}
    assert key_versions == {first.properties.version: True, second.properties.version: False}

    # A given version only.
    older = cert_client.update_certificate_properties(name, first.properties.version, tags={"old": "yes"})
    assert older.id == first.id and older.properties.tags == {"old": "yes"}
    assert cert_client.get_certificate(name).properties.tags == {"env": "test", "n": "1"}

    back = cert_client.update_certificate_properties(name, enabled=True)
    assert back.properties.enabled is True
    assert back.properties.tags == {"env": "test", "n": "1"}, "tags must survive an update that does not send them"
    assert cert_secret_client.get_secret(name).properties.enabled is True


def test_get_and_update_certificate_policy(cert_client, cert_secret_client, cert_key_client):
    name = unique_name("policy")
    _create(cert_client, name, CertificatePolicy.get_default())
    policy = cert_client.get_certificate_policy(name)
    assert policy.subject == "CN=DefaultPolicy" and policy.issuer_name == "Self"
    assert policy.key_type == KeyType.rsa and policy.key_size == 2048

    new = CertificatePolicy(
        issuer_name=WellKnownIssuerNames.self,
        subject="CN=updated.interop",
        san_dns_names=["updated.interop.test"],
        key_type=KeyType.ec,
        key_curve_name=KeyCurveName.p_384,
        content_type=CertificateContentType.pem,
        validity_in_months=6,
    )
    returned = cert_client.update_certificate_policy(name, new)
    for p in (returned, cert_client.get_certificate_policy(name)):
        assert p.subject == "CN=updated.interop"
        assert p.san_dns_names == ["updated.interop.test"]
        assert p.key_type == KeyType.ec and p.key_curve_name == KeyCurveName.p_384
        assert p.content_type == CertificateContentType.pem
        assert p.validity_in_months == 6
        assert p.issuer_name == "Self"
    # The certificate shows the policy it has now.
    assert cert_client.get_certificate(name).policy.subject == "CN=updated.interop"

    # A policy with only lifetime actions changes only those.
    emails = CertificatePolicy(
        lifetime_actions=[LifetimeAction(CertificatePolicyAction.email_contacts, days_before_expiry=30)]
    )
    p = cert_client.update_certificate_policy(name, emails)
    assert [(a.action, a.lifetime_percentage, a.days_before_expiry) for a in p.lifetime_actions] == [
        (CertificatePolicyAction.email_contacts, None, 30)
    ]
    assert p.subject == "CN=updated.interop" and p.key_curve_name == KeyCurveName.p_384
    assert p.content_type == CertificateContentType.pem and p.validity_in_months == 6

    bad = CertificatePolicy(lifetime_actions=[LifetimeAction(CertificatePolicyAction.auto_renew, lifetime_percentage=100)])
    with pytest.raises(HttpResponseError) as exc:
        cert_client.update_certificate_policy(name, bad)
    _assert_status(exc, 400)
    assert cert_client.get_certificate_policy(name).lifetime_actions[0].days_before_expiry == 30

    # The next version follows the stored policy.
    cert = _create(cert_client, name, cert_client.get_certificate_policy(name))
    c = _x509(cert)
    assert _cn(c.subject) == "updated.interop"
    assert isinstance(c.public_key(), ec.EllipticCurvePublicKey) and isinstance(c.public_key().curve, ec.SECP384R1)
    _check_trio(cert, cert_secret_client, cert_key_client, content_type=PEM)


# --------------------------------------------------------------------------- Unknown issuer: CSR and merge


def _pending(client: CertificateClient, name: str, subject: str, dns: str) -> CertificateOperation:
    policy = CertificatePolicy(issuer_name=WellKnownIssuerNames.unknown, subject=subject, san_dns_names=[dns])
    poller = client.begin_create_certificate(name, policy)
    op = poller.result()  # the SDK's poller finishes at once for Unknown
    assert poller.done()
    assert isinstance(op, CertificateOperation), f"expected a CertificateOperation, got {op!r}"
    return op


def _sign_csr(csr: x509.CertificateSigningRequest, ca_key, ca_cert) -> x509.Certificate:
    exts = [e for e in csr.extensions if isinstance(e.value, (x509.SubjectAlternativeName, x509.KeyUsage, x509.ExtendedKeyUsage))]
    exts.append(x509.Extension(x509.BasicConstraints.oid, True, x509.BasicConstraints(ca=False, path_length=None)))
    exts.append(
        x509.Extension(
            x509.AuthorityKeyIdentifier.oid,
            False,
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
        )
    )
    return _issue(csr.public_key(), csr.subject, ca_key, ca_cert, exts)


def test_unknown_issuer_csr_and_merge(certs_vault, cert_client, cert_secret_client, cert_key_client):
    name = unique_name("merge")
    op = _pending(cert_client, name, "CN=merge.interop", "merge.interop.test")
    assert op.issuer_name == "Unknown"
    assert op.status.lower() == "inprogress"
    assert op.id == f"{certs_vault.url}/certificates/{name}/pending"
    assert op.target == f"{certs_vault.url}/certificates/{name}"
    assert op.cancellation_requested is False
    assert op.csr, "the operation has no CSR"

    got = cert_client.get_certificate_operation(name)
    assert got.status.lower() == "inprogress" and got.csr == op.csr and got.request_id == op.request_id

    csr = x509.load_der_x509_csr(bytes(got.csr))
    assert csr.is_signature_valid
    assert _cn(csr.subject) == "merge.interop"
    requested = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert requested.get_values_for_type(x509.DNSName) == ["merge.interop.test"]

    # Pending: listed only with include_pending.
    assert name not in {p.name for p in cert_client.list_properties_of_certificates()}
    assert name in {p.name for p in cert_client.list_properties_of_certificates(include_pending=True)}

    ca_key, ca_cert = _make_ca()
    leaf = _sign_csr(csr, ca_key, ca_cert)
    merged = cert_client.merge_certificate(name, [_der(leaf), _der(ca_cert)])
    assert isinstance(merged, KeyVaultCertificate)
    assert bytes(merged.cer) == _der(leaf)
    assert merged.properties.x509_thumbprint == hashlib.sha1(_der(leaf)).digest()
    assert merged.policy.issuer_name == "Unknown"
    assert merged.properties.expires_on == leaf.not_valid_after_utc

    done = cert_client.get_certificate_operation(name)
    assert done.status == "completed"
    assert cert_client.get_certificate(name).id == merged.id
    assert name in {p.name for p in cert_client.list_properties_of_certificates()}

    private = _check_trio(merged, cert_secret_client, cert_key_client)
    assert _spki(private) == _spki(csr.public_key())
    _, _, pfx_leaf, extra = _secret_pfx(cert_secret_client, name)
    assert [_der(c) for c in extra] == [_der(ca_cert)], "the secret's PFX must carry the merged chain"
    _x509(merged).verify_directly_issued_by(ca_cert)


def test_merge_of_a_foreign_key_is_400_then_cancel_and_delete(cert_client):
    name = unique_name("cancel")
    op = _pending(cert_client, name, "CN=cancel.interop", "cancel.interop.test")
    ca_key, ca_cert = _make_ca()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = _issue(other.public_key(), _name("cancel.interop"), ca_key, ca_cert)
    with pytest.raises(HttpResponseError) as exc:
        cert_client.merge_certificate(name, [_der(wrong)])
    _assert_status(exc, 400)
    assert cert_client.get_certificate_operation(name).status.lower() == "inprogress"

    cancelled = cert_client.cancel_certificate_operation(name)
    assert cancelled.cancellation_requested is True
    assert cancelled.csr == op.csr
    assert cert_client.get_certificate_operation(name).cancellation_requested is True

    deleted = cert_client.delete_certificate_operation(name)
    assert deleted.id == op.id
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_certificate_operation(name)
    # Nothing left to merge into.
    csr = x509.load_der_x509_csr(bytes(op.csr))
    with pytest.raises(HttpResponseError) as exc:
        cert_client.merge_certificate(name, [_der(_sign_csr(csr, ca_key, ca_cert))])
    assert exc.value.status_code in (400, 404), exc.value


def test_operation_of_missing_certificate_is_404(cert_client):
    for call in (cert_client.get_certificate_operation, cert_client.cancel_certificate_operation,
                 cert_client.delete_certificate_operation):
        with pytest.raises(ResourceNotFoundError):
            call(unique_name("nope"))


# --------------------------------------------------------------------------- import


def _pfx_encryption(kind: str):
    if kind == "none":
        return serialization.NoEncryption(), None
    if kind == "aes":
        return serialization.BestAvailableEncryption(b"pfx-pass"), "pfx-pass"
    # The classic Windows/OpenSSL 1.x PFX: 3DES with SHA-1 MAC.
    enc = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(b"legacy-pass")
    )
    return enc, "legacy-pass"


@pytest.mark.parametrize("protection", ["none", "aes", "legacy"])
def test_import_pfx(cert_client, cert_secret_client, cert_key_client, protection):
    name = unique_name("pfx")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _self_signed(key, "pfx.interop", dns="pfx.interop.test")
    encryption, password = _pfx_encryption(protection)
    pfx = pkcs12.serialize_key_and_certificates(b"interop", key, cert, None, encryption)
    imported = cert_client.import_certificate(name, pfx, password=password, tags={"src": "pfx"})
    assert bytes(imported.cer) == _der(cert)
    assert imported.properties.tags == {"src": "pfx"}
    assert imported.properties.x509_thumbprint == hashlib.sha1(_der(cert)).digest()
    assert imported.properties.not_before == cert.not_valid_before_utc
    assert imported.properties.expires_on == cert.not_valid_after_utc
    p = imported.policy
    assert p.content_type == CertificateContentType.pkcs12
    assert p.key_type == KeyType.rsa and p.key_size == 2048
    assert p.subject == "CN=pfx.interop"
    assert p.issuer_name == "Unknown"
    private = _check_trio(imported, cert_secret_client, cert_key_client)
    assert private.private_numbers() == key.private_numbers()


def test_import_pfx_with_chain_and_ec_key(cert_client, cert_secret_client, cert_key_client):
    name = unique_name("pfxchain")
    ca_key, ca_cert = _make_ca()
    key = ec.generate_private_key(ec.SECP384R1())
    leaf = _issue(key.public_key(), _name("chain.interop"), ca_key, ca_cert)
    pfx = pkcs12.serialize_key_and_certificates(b"chain", key, leaf, [ca_cert], serialization.NoEncryption())
    imported = cert_client.import_certificate(name, pfx)
    assert bytes(imported.cer) == _der(leaf)
    assert imported.policy.key_type == KeyType.ec and imported.policy.key_curve_name == KeyCurveName.p_384
    private = _check_trio(imported, cert_secret_client, cert_key_client)
    assert private.private_numbers() == key.private_numbers()
    _, _, _, extra = _secret_pfx(cert_secret_client, name)
    assert [_der(c) for c in extra] == [_der(ca_cert)]


@pytest.mark.parametrize("key_format", ["pkcs8", "traditional"])
@pytest.mark.parametrize("kty", ["RSA", "EC"])
def test_import_pem(cert_client, cert_secret_client, cert_key_client, kty, key_format):
    name = unique_name("pemimport")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if kty == "RSA" else ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key, "pem.interop")
    fmt = serialization.PrivateFormat.PKCS8 if key_format == "pkcs8" else serialization.PrivateFormat.TraditionalOpenSSL
    pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()) + cert.public_bytes(
        serialization.Encoding.PEM
    )
    imported = cert_client.import_certificate(
        name, pem, policy=CertificatePolicy(content_type=CertificateContentType.pem)
    )
    assert bytes(imported.cer) == _der(cert)
    assert imported.policy.content_type == CertificateContentType.pem
    assert imported.policy.key_type == KeyType(kty)
    private = _check_trio(imported, cert_secret_client, cert_key_client, content_type=PEM)
    assert private.private_numbers() == key.private_numbers()


def test_import_bad_input_is_400(cert_client):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _self_signed(other, "mismatch.interop")
    mismatched = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + cert.public_bytes(serialization.Encoding.PEM)
    pem_policy = CertificatePolicy(content_type=CertificateContentType.pem)
    pfx = pkcs12.serialize_key_and_certificates(
        b"x", key, _self_signed(key, "pw.interop"), None, serialization.BestAvailableEncryption(b"right")
    )
    cases = [
        ("mismatched key and certificate", dict(certificate_bytes=mismatched, policy=pem_policy)),
        ("garbage", dict(certificate_bytes=b"this is not a certificate at all")),
        ("certificate without key", dict(certificate_bytes=cert.public_bytes(serialization.Encoding.PEM), policy=pem_policy)),
        ("wrong PFX password", dict(certificate_bytes=pfx, password="wrong")),
        ("PFX without its password", dict(certificate_bytes=pfx)),
    ]
    for what, kwargs in cases:
        name = unique_name("badimport")
        with pytest.raises(HttpResponseError) as exc:
            cert_client.import_certificate(name, **kwargs)
        assert exc.value.status_code == 400, f"{what}: {exc.value}"
        with pytest.raises(ResourceNotFoundError):
            cert_client.get_certificate(name)


# --------------------------------------------------------------------------- issuers


def test_issuer_crud(certs_vault, cert_client):
    name = unique_name("issuer")
    admins = [
        AdministratorContact(first_name="Jane", last_name="Doe", email="jane@interop.test", phone="4255550100"),
        AdministratorContact(first_name="John", last_name="Roe", email="john@interop.test", phone="4255550101"),
    ]
    created = cert_client.create_issuer(
        name, "Test", account_id="keyvaultuser", password="issuer-pw", organization_id="org-1",
        admin_contacts=admins, enabled=True,
    )
    assert created.name == name
    assert created.id == f"{certs_vault.url}/certificates/issuers/{name}"
    assert created.provider == "Test"
    assert created.account_id == "keyvaultuser"
    assert created.password is None, "the issuer's password must not be returned"
    assert created.organization_id == "org-1"
    assert [(a.first_name, a.last_name, a.email, a.phone) for a in created.admin_contacts] == [
        ("Jane", "Doe", "jane@interop.test", "4255550100"),
        ("John", "Roe", "john@interop.test", "4255550101"),
    ]
    assert created.enabled is True and created.created_on is not None

    got = cert_client.get_issuer(name)
    assert (got.id, got.provider, got.account_id, got.organization_id) == (created.id, "Test", "keyvaultuser", "org-1")
    assert len(got.admin_contacts) == 2

    listed = {p.name: p for p in cert_client.list_properties_of_issuers()}
    assert name in listed and listed[name].provider == "Test"
    assert listed[name].id == created.id

    updated = cert_client.update_issuer(name, enabled=False, account_id="otheruser")
    assert updated.enabled is False and updated.account_id == "otheruser"
    assert updated.provider == "Test" and updated.organization_id == "org-1" and len(updated.admin_contacts) == 2
    assert cert_client.get_issuer(name).enabled is False

    # kvault stores issuers of other providers but cannot reach them to issue.
    with pytest.raises(HttpResponseError) as exc:
        cert_client.begin_create_certificate(
            unique_name("viatest"), CertificatePolicy(issuer_name=name, subject="CN=via-test")
        )
    _assert_status(exc, 400)

    deleted = cert_client.delete_issuer(name)
    assert deleted.id == created.id and deleted.provider == "Test"
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_issuer(name)
    with pytest.raises(ResourceNotFoundError):
        cert_client.delete_issuer(name)
    assert name not in {p.name for p in cert_client.list_properties_of_issuers()}


def _create_ca_raw(vault, client: CertificateClient, name: str, kty: str = "RSA") -> KeyVaultCertificate:
    """A CA certificate: the SDK's CertificatePolicy has no basic_constraints, so this one
    request is sent raw (as dev-admin)."""
    key_props: Dict[str, Any] = {"kty": kty, "exportable": True, "reuse_key": False}
    if kty == "EC":
        key_props["crv"] = "P-384"
    else:
        key_props["key_size"] = 3072
    body = {
        "policy": {
            "key_props": key_props,
            "secret_props": {"contentType": PFX},
            "x509_props": {
                "subject": f"CN={name} interop CA, O=kvault interop",
                "key_usage": ["keyCertSign", "cRLSign", "digitalSignature"],
                "ekus": [],
                "validity_months": 24,
                "basic_constraints": {"ca": True},
            },
            "issuer": {"name": "Self"},
        }
    }
    resp = data_plane_request(vault, "POST", f"/certificates/{name}/create", body)
    assert resp.status == 202, resp.describe("POST", f"/certificates/{name}/create", json.dumps(body).encode())
    assert resp.json["status"] == "inProgress", resp.text
    op = client.get_certificate_operation(name)
    assert op.status == "completed", op.status
    ca = client.get_certificate(name)
    c = _x509(ca)
    assert _is_ca(c), "basic_constraints.ca=true must give a CA certificate"
    assert {"keyCertSign", "cRLSign"} <= _key_usages(c)
    c.verify_directly_issued_by(c)
    return ca


@pytest.mark.parametrize("ca_kty", ["RSA", "EC"])
def test_kvault_ca_issuer_chain(certs_vault, cert_client, cert_secret_client, cert_key_client, ca_kty):
    ca_name = unique_name("ca")
    issuer = unique_name("internal")
    ca = _create_ca_raw(certs_vault, cert_client, ca_name, ca_kty)
    ca_x509 = _x509(ca)
    made = cert_client.create_issuer(issuer, provider="kvault", account_id=ca_name)
    assert made.provider == "kvault" and made.account_id == ca_name

    leaf_name = unique_name("leaf")
    policy = CertificatePolicy(
        issuer_name=issuer, subject="CN=leaf.interop", san_dns_names=["leaf.interop.test"], key_type=KeyType.rsa
    )
    cert = _create(cert_client, leaf_name, policy)
    leaf = _x509(cert)
    assert leaf.issuer == ca_x509.subject
    leaf.verify_directly_issued_by(ca_x509)  # the leaf's signature is the CA key's
    assert not _is_ca(leaf)
    assert _sans(leaf).get_values_for_type(x509.DNSName) == ["leaf.interop.test"]
    # RFC 5280 4.2.1.1: the leaf's authority key id is the CA certificate's subject key id.
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca_x509.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert cert.policy.issuer_name == issuer
    assert cert_client.get_certificate_operation(leaf_name).issuer_name == issuer

    _check_trio(cert, cert_secret_client, cert_key_client)
    _, _, _, extra = _secret_pfx(cert_secret_client, leaf_name)
    assert [_der(c) for c in extra] == [bytes(ca.cer)], "the leaf's PFX carries the CA"

    # The CA's own key is a certificate key like any other: the secret has it.
    _check_trio(ca, cert_secret_client, cert_key_client)


def test_kvault_issuer_needs_a_ca_certificate(certs_vault, cert_client):
    not_ca = unique_name("notca")
    _create(cert_client, not_ca, CertificatePolicy.get_default())
    issuer = unique_name("badca")
    cert_client.create_issuer(issuer, provider="kvault", account_id=not_ca)
    with pytest.raises(HttpResponseError) as exc:
        cert_client.begin_create_certificate(unique_name("leaf"), CertificatePolicy(issuer_name=issuer, subject="CN=x"))
    _assert_status(exc, 400)
    missing = unique_name("noca")
    cert_client.create_issuer(missing, provider="kvault", account_id=unique_name("absent"))
    with pytest.raises(HttpResponseError) as exc:
        cert_client.begin_create_certificate(unique_name("leaf"), CertificatePolicy(issuer_name=missing, subject="CN=x"))
    _assert_status(exc, 400)
    cert_client.delete_issuer(issuer)
    cert_client.delete_issuer(missing)


# --------------------------------------------------------------------------- contacts


def test_contacts(certs_vault, cert_client):
    contacts = [
        CertificateContact(email="admin@interop.test", name="Admin", phone="4255550199"),
        CertificateContact(email="ops@interop.test", name="Ops", phone="4255550198"),
    ]
    set_ = cert_client.set_contacts(contacts)
    assert [(c.email, c.name, c.phone) for c in set_] == [(c.email, c.name, c.phone) for c in contacts]

    # Key Vault Certificates Officer has certificatecontacts/write but not /read (as in Azure's
    # built-in role); the Administrator reads them.
    with pytest.raises(HttpResponseError) as exc:
        cert_client.get_contacts()
    _assert_status(exc, 403)
    with certs_vault.certificate_client(KvaultCredential(certs_vault.state_dir, user=DEV_ADMIN)) as admin:
        got = admin.get_contacts()
        assert [(c.email, c.name, c.phone) for c in got] == [(c.email, c.name, c.phone) for c in contacts]

        deleted = cert_client.delete_contacts()
        assert [(c.email, c.name, c.phone) for c in deleted] == [(c.email, c.name, c.phone) for c in contacts]
        with pytest.raises(ResourceNotFoundError):
            admin.get_contacts()


# --------------------------------------------------------------------------- delete, recover, purge


def test_delete_recover_purge_with_key_and_secret(certs_vault, cert_client, cert_secret_client, cert_key_client):
    name = unique_name("lifecycle")
    cert = _create(cert_client, name, CertificatePolicy.get_default(), tags={"k": "v"})
    before = _check_trio(cert, cert_secret_client, cert_key_client)

    deleted = _delete(cert_client, name)
    assert deleted.name == name and deleted.id == cert.id
    assert deleted.recovery_id == f"{certs_vault.url}/deletedcertificates/{name}"
    assert deleted.deleted_on is not None and deleted.scheduled_purge_date > deleted.deleted_on
    assert bytes(deleted.cer) == bytes(cert.cer)

    got = cert_client.get_deleted_certificate(name)
    assert got.id == cert.id and got.recovery_id == deleted.recovery_id
    assert got.properties.tags == {"k": "v"}
    assert name in {d.name for d in cert_client.list_deleted_certificates()}
    assert name not in {p.name for p in cert_client.list_properties_of_certificates()}
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_certificate(name)
    # The key and secret went with it.
    with pytest.raises(ResourceNotFoundError):
        cert_secret_client.get_secret(name)
    with pytest.raises(ResourceNotFoundError):
        cert_key_client.get_key(name)
    assert cert_secret_client.get_deleted_secret(name).name == name
    assert cert_key_client.get_deleted_key(name).name == name

    # The name is taken while soft-deleted.
    with pytest.raises(ResourceExistsError) as exc:
        cert_client.begin_create_certificate(name, CertificatePolicy.get_default())
    _assert_status(exc, 409)

    poller = cert_client.begin_recover_deleted_certificate(name)
    poller.wait()
    recovered = poller.result()
    assert recovered.id == cert.id and bytes(recovered.cer) == bytes(cert.cer)
    after = _check_trio(cert_client.get_certificate(name), cert_secret_client, cert_key_client)
    assert _spki(after) == _spki(before)
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_deleted_certificate(name)

    _delete(cert_client, name)
    cert_client.purge_deleted_certificate(name)
    for call in (
        cert_client.get_deleted_certificate,
        cert_secret_client.get_deleted_secret,
        cert_key_client.get_deleted_key,
        cert_secret_client.get_secret,
        cert_key_client.get_key,
    ):
        with pytest.raises(ResourceNotFoundError):
            call(name)
    assert name not in {d.name for d in cert_client.list_deleted_certificates()}
    # The name is free again, for a new certificate with a new key.
    again = _create(cert_client, name, CertificatePolicy.get_default())
    assert again.properties.version != cert.properties.version
    assert _spki(_check_trio(again, cert_secret_client, cert_key_client)) != _spki(before)


def test_delete_and_purge_missing(cert_client):
    with pytest.raises(ResourceNotFoundError):
        cert_client.begin_delete_certificate(unique_name("missing"))
    with pytest.raises(ResourceNotFoundError):
        cert_client.purge_deleted_certificate(unique_name("missing"))
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_deleted_certificate(unique_name("missing"))
    with pytest.raises(ResourceNotFoundError):
        cert_client.begin_recover_deleted_certificate(unique_name("missing"))


# --------------------------------------------------------------------------- backup and restore


def test_backup_restore_with_key_and_secret(cert_client, cert_secret_client, cert_key_client):
    name = unique_name("backup")
    first = _create(cert_client, name, CertificatePolicy.get_default())
    second = _create(
        cert_client, name, CertificatePolicy(issuer_name="Self", subject="CN=backup-2", content_type=CertificateContentType.pem)
    )
    private = _check_trio(second, cert_secret_client, cert_key_client, content_type=PEM)
    blob = cert_client.backup_certificate(name)
    assert isinstance(blob, bytes) and len(blob) > 0

    with pytest.raises(ResourceExistsError):
        cert_client.restore_certificate_backup(blob)

    _delete(cert_client, name)
    cert_client.purge_deleted_certificate(name)
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_certificate(name)

    restored = cert_client.restore_certificate_backup(blob)
    assert restored.id == second.id and bytes(restored.cer) == bytes(second.cer)
    assert restored.policy.subject == "CN=backup-2"
    after = _check_trio(restored, cert_secret_client, cert_key_client, content_type=PEM)
    assert _spki(after) == _spki(private)
    assert after.private_numbers() == private.private_numbers()
    versions = {p.version for p in cert_client.list_properties_of_certificate_versions(name)}
    assert versions == {first.properties.version, second.properties.version}
    assert cert_client.get_certificate_version(name, first.properties.version).cer == first.cer
    # The older version's secret came back too.
    _, old_key, old_leaf, _ = _secret_pfx(cert_secret_client, name, first.properties.version)
    assert _der(old_leaf) == bytes(first.cer) and _spki(old_key) == _spki(_x509(first))

    with pytest.raises(HttpResponseError) as exc:
        cert_client.restore_certificate_backup(b"not a backup blob")
    _assert_status(exc, 400)


# --------------------------------------------------------------------------- errors, async


def test_missing_certificate_errors(cert_client):
    name = unique_name("missing")
    for call in (cert_client.get_certificate, cert_client.get_certificate_policy, cert_client.backup_certificate):
        with pytest.raises(ResourceNotFoundError):
            call(name)
    with pytest.raises(ResourceNotFoundError):
        cert_client.update_certificate_properties(name, enabled=False)
    existing = unique_name("present")
    _create(cert_client, existing, CertificatePolicy.get_default())
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_certificate_version(existing, "0" * 32)
    with pytest.raises(ResourceNotFoundError):
        cert_client.get_issuer(unique_name("noissuer"))


def test_async_certificate_client(certs_vault):
    async def main() -> None:
        credential = AsyncKvaultCredential(certs_vault.state_dir)
        name = unique_name("async")
        async with AsyncCertificateClient(certs_vault.url, credential, connection_verify=str(certs_vault.ca)) as client:
            # The async client awaits its create poller itself.
            cert = await client.create_certificate(name, CertificatePolicy.get_default())
            assert isinstance(cert, KeyVaultCertificate), f"async create_certificate returned {cert!r}"
            assert _cn(_x509(cert).subject) == "DefaultPolicy"
            got = await client.get_certificate(name)
            assert got.id == cert.id
            names = [p.name async for p in client.list_properties_of_certificates()]
            assert name in names
            deleted = await client.delete_certificate(name)
            assert deleted.name == name and deleted.recovery_id is not None

    asyncio.run(main())
