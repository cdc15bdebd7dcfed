"""Certificate behaviours the official SDK's own live tests expect of the cloud, checked with the
unmodified azure-keyvault-certificates client (sync and async) against a live `kvault dev`:
merge of `x5c` entries given as PEM text, the contacts 404 after a delete, EC key sizes in
policies, `preserve_order`, the pending operation's `status_details`, and platform-managed
policies. Written for kvault (not copies of the SDK's tests); see issue 14.

Vault `certs` (conftest.certs_policy_doc): interop-user is Certificates Officer, Secrets User and
Crypto Officer. A failing assertion is a kvault compatibility bug: fix the server, not the test.
"""

from __future__ import annotations

import asyncio
import base64

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.keyvault.certificates import (
    CertificateContact,
    CertificateOperation,
    CertificatePolicy,
    KeyCurveName,
    KeyType,
    KeyVaultCertificate,
    PlatformManaged,
    WellKnownIssuerNames,
)
from azure.keyvault.certificates.aio import CertificateClient as AsyncCertificateClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from conftest import DEV_ADMIN, AsyncKvaultCredential, KvaultCredential, unique_name
from test_certificates import _der, _make_ca, _pending, _self_signed, _sign_csr

MERGE_DETAILS = "Pending certificate created. Please Perform Merge to complete the request."


def _pem_body(cert: x509.Certificate) -> bytes:
    """The base64 body of the certificate's PEM block, newlines kept, headers dropped: what the
    SDK's own merge test hands to merge_certificate (the SDK then base64-encodes it again)."""
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return "\n".join(line for line in pem.splitlines() if not line.startswith("-----")).encode()


@pytest.mark.parametrize("encoding", ["pem-body", "pem"])
def test_merge_takes_pem_encoded_x5c_entries(cert_client, encoding):
    name = unique_name(f"x5c-{encoding}")
    op = _pending(cert_client, name, f"CN={name}", f"{name}.interop.test")
    assert op.status_details == MERGE_DETAILS
    ca_key, ca_cert = _make_ca()
    leaf = _sign_csr(x509.load_der_x509_csr(bytes(op.csr)), ca_key, ca_cert)
    encode = _pem_body if encoding == "pem-body" else (lambda c: c.public_bytes(serialization.Encoding.PEM))
    merged = cert_client.merge_certificate(name, [encode(leaf), encode(ca_cert)])
    assert isinstance(merged, KeyVaultCertificate)
    assert bytes(merged.cer) == _der(leaf)
    assert cert_client.get_certificate_operation(name).status == "completed"


def test_unknown_issuer_operation_says_a_merge_is_needed(cert_client):
    name = unique_name("details")
    op = _pending(cert_client, name, f"CN={name}", f"{name}.interop.test")
    assert op.status == "inProgress"
    assert op.status_details == MERGE_DETAILS
    again = cert_client.get_certificate_operation(name)
    assert again.status_details == MERGE_DETAILS


def test_get_contacts_after_delete_is_not_found(certs_vault):
    # Reading contacts takes certificatecontacts/read, which the Administrator has.
    with certs_vault.certificate_client(KvaultCredential(certs_vault.state_dir, user=DEV_ADMIN)) as admin:
        admin.set_contacts([CertificateContact(email="ops@interop.test", name="Ops", phone="1111111111")])
        deleted = admin.delete_contacts()
        assert [c.email for c in deleted] == ["ops@interop.test"]
        with pytest.raises(ResourceNotFoundError) as exc:
            admin.get_contacts()
    assert "not found" in str(exc.value).lower()


def test_ec_policy_update_echoes_key_size(cert_client):
    name = unique_name("ecpolicy")
    cert_client.begin_create_certificate(name, CertificatePolicy.get_default()).result()
    policy = CertificatePolicy(
        issuer_name=WellKnownIssuerNames.self,
        subject=f"CN={name}",
        key_type=KeyType.ec,
        key_curve_name=KeyCurveName.p_256,
        key_size=256,
        exportable=True,
        reuse_key=False,
    )
    updated = cert_client.update_certificate_policy(name, policy)
    assert (updated.key_type, updated.key_curve_name, updated.key_size) == (KeyType.ec, KeyCurveName.p_256, 256)
    stored = cert_client.get_certificate_policy(name)
    assert (stored.key_type, stored.key_curve_name, stored.key_size) == (KeyType.ec, KeyCurveName.p_256, 256)


def test_preserve_order_round_trips_on_create_and_import(cert_client, cert_secret_client):
    name = unique_name("keep-created")
    created = cert_client.begin_create_certificate(name, CertificatePolicy.get_default(), preserve_order=True).result()
    assert created.properties.preserve_order is True
    assert cert_client.get_certificate(name).properties.preserve_order is True

    # A PEM file with the issuer first: kept as given when asked, leaf first otherwise.
    ca_key, ca_cert = _make_ca("kvault interop order CA")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ordered")]))
        .sign(key, hashes.SHA256())
    )
    leaf = _sign_csr(csr, ca_key, ca_cert)
    pem = (
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + ca_cert.public_bytes(serialization.Encoding.PEM)
        + leaf.public_bytes(serialization.Encoding.PEM)
    )
    pem_policy = CertificatePolicy(issuer_name=WellKnownIssuerNames.unknown, subject="CN=ordered", content_type="application/x-pem-file")
    for preserve, expected in [(True, [ca_cert, leaf]), (False, [leaf, ca_cert])]:
        name = unique_name(f"keep-imported-{str(preserve).lower()}")
        imported = cert_client.import_certificate(name, pem, policy=pem_policy, preserve_order=preserve)
        assert bytes(imported.cer) == _der(leaf)
        assert bool(imported.properties.preserve_order) is preserve
        value = cert_secret_client.get_secret(name).value
        chain = x509.load_pem_x509_certificates(value.encode())
        assert [_der(c) for c in chain] == [_der(c) for c in expected]


def test_platform_managed_policy_is_stored_and_returned(cert_client):
    name = unique_name("platform")
    platform = PlatformManaged(certificate_usage="tls-server", metadata={"env": "prod"})
    policy = CertificatePolicy(issuer_name=WellKnownIssuerNames.self, platform_managed=platform)
    result = cert_client.begin_create_certificate(name, policy, _polling_interval=0).result()
    # kvault has no platform issuer: the operation reports why, and the policy is kept.
    assert isinstance(result, CertificateOperation)
    assert result.status == "failed"
    assert result.error is not None and result.error.code == "IssuerNotAvailable"
    stored = cert_client.get_certificate_policy(name)
    assert stored.platform_managed is not None
    assert stored.platform_managed.certificate_usage == "tls-server"
    assert stored.platform_managed.metadata == {"env": "prod"}


def test_async_client_sees_the_same_behaviours(certs_vault):
    async def run() -> None:
        credential = AsyncKvaultCredential(certs_vault.state_dir, user=DEV_ADMIN)
        async with AsyncCertificateClient(certs_vault.url, credential, connection_verify=str(certs_vault.ca)) as client:
            name = unique_name("async-details")
            policy = CertificatePolicy(issuer_name=WellKnownIssuerNames.unknown, subject=f"CN={name}")
            op = await client.create_certificate(name, policy)
            assert isinstance(op, CertificateOperation)
            assert op.status_details == MERGE_DETAILS
            ca_key, ca_cert = _make_ca()
            leaf = _sign_csr(x509.load_der_x509_csr(bytes(op.csr)), ca_key, ca_cert)
            merged = await client.merge_certificate(name, [_pem_body(leaf)])
            assert bytes(merged.cer) == _der(leaf)

            await client.set_contacts([CertificateContact(email="a@interop.test", name="A", phone="1")])
            await client.delete_contacts()
            with pytest.raises(ResourceNotFoundError) as exc:
                await client.get_contacts()
            assert "not found" in str(exc.value).lower()

            name = unique_name("async-keep")
            ec_key = ec.generate_private_key(ec.SECP256R1())
            pfx = pkcs12.serialize_key_and_certificates(b"k", ec_key, _self_signed(ec_key, name), None, serialization.NoEncryption())
            imported = await client.import_certificate(name, pfx, preserve_order=True)
            assert imported.properties.preserve_order is True

    asyncio.run(run())
