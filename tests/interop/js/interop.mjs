// The official Azure Key Vault SDKs for JavaScript (@azure/keyvault-secrets, -keys,
// -certificates), unmodified, against a real kvault. Run by tests/interop/test_sdk_js.py:
//
//   KVAULT_URL=https://certs.kvault.localhost:PORT KVAULT_TOKEN=… KVAULT_ADMIN_TOKEN=… \
//   NODE_EXTRA_CA_CERTS=ca.pem node --import ./resolve.mjs interop.mjs
//
// Prints `ok <check>` or `FAIL <check>: <error>` per check, then `api-versions <list>` (what the
// SDKs sent, recorded by a per-call pipeline policy), and exits 1 if any check failed. The only
// kvault-specific code is the credential, which hands the SDK a token from the environment.

import { createHash, randomBytes } from "node:crypto";
import { CertificateClient } from "@azure/keyvault-certificates";
import { CryptographyClient, KeyClient } from "@azure/keyvault-keys";
import { SecretClient } from "@azure/keyvault-secrets";

const url = process.env.KVAULT_URL;
if (!url || !process.env.KVAULT_TOKEN || !process.env.KVAULT_ADMIN_TOKEN) {
  console.error("KVAULT_URL, KVAULT_TOKEN and KVAULT_ADMIN_TOKEN must be set");
  process.exit(2);
}

/** A TokenCredential over a token minted by `kvault token` (never printed). */
function envCredential(variable) {
  return {
    async getToken() {
      return { token: process.env[variable], expiresOnTimestamp: Date.now() + 30 * 60 * 1000 };
    },
  };
}

const apiVersions = new Set();
const recordApiVersion = {
  policy: {
    name: "recordApiVersion",
    async sendRequest(request, next) {
      apiVersions.add(new URL(request.url).searchParams.get("api-version"));
      return next(request);
    },
  },
  position: "perCall",
};
const options = { additionalPolicies: [recordApiVersion] };
const credential = envCredential("KVAULT_TOKEN");
const secrets = new SecretClient(url, credential, options);
const keys = new KeyClient(url, credential, options);
const certs = new CertificateClient(url, credential, options);
// Reading contacts (certificatecontacts/read) and random bytes (rng/action) are the
// Administrator's.
const adminCerts = new CertificateClient(url, envCredential("KVAULT_ADMIN_TOKEN"), options);
const adminKeys = new KeyClient(url, envCredential("KVAULT_ADMIN_TOKEN"), options);
const fast = { intervalInMs: 50 };

const suffix = randomBytes(4).toString("hex");
const n = (base) => `js-${base}-${suffix}`;
let failures = 0;

async function check(name, body) {
  try {
    await body();
    console.log(`ok ${name}`);
  } catch (e) {
    failures += 1;
    const detail = e && (e.code || e.statusCode) ? `${e.statusCode ?? ""} ${e.code ?? ""} ${e.message}` : String(e);
    console.log(`FAIL ${name}: ${detail.replace(/\s+/g, " ").slice(0, 500)}`);
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

async function collect(iterable) {
  const out = [];
  for await (const item of iterable) out.push(item);
  return out;
}

async function expectStatus(status, body) {
  try {
    await body();
  } catch (e) {
    assert(e.statusCode === status, `expected ${status}, got ${e.statusCode} ${e.code}`);
    return;
  }
  throw new Error(`expected ${status}, the call succeeded`);
}

// ---------------------------------------------------------------- secrets
const secretName = n("secret");
let firstVersion;
await check("secret.set", async () => {
  const s = await secrets.setSecret(secretName, "one", { contentType: "text/plain", tags: { a: "1" } });
  assert(s.value === "one" && s.properties.contentType === "text/plain", "value and contentType");
  firstVersion = s.properties.version;
  assert(/^[0-9a-f]{32}$/.test(firstVersion), "32-hex version id");
});
await check("secret.get", async () => {
  await secrets.setSecret(secretName, "two");
  assert((await secrets.getSecret(secretName)).value === "two", "latest value");
});
await check("secret.get_version", async () => {
  assert((await secrets.getSecret(secretName, { version: firstVersion })).value === "one", "old version");
});
await check("secret.update_properties", async () => {
  const p = await secrets.updateSecretProperties(secretName, firstVersion, { enabled: false, tags: { b: "2" } });
  assert(p.enabled === false && p.tags.b === "2", "updated");
  await expectStatus(403, () => secrets.getSecret(secretName, { version: firstVersion }));
});
await check("secret.list_paged", async () => {
  for (let i = 0; i < 27; i++) await secrets.setSecret(n(`page-${i}`), "v");
  const names = new Set((await collect(secrets.listPropertiesOfSecrets())).map((p) => p.name));
  for (let i = 0; i < 27; i++) assert(names.has(n(`page-${i}`)), `listed ${i}`);
});
await check("secret.list_versions", async () => {
  const versions = await collect(secrets.listPropertiesOfSecretVersions(secretName));
  assert(versions.length === 2, `2 versions, got ${versions.length}`);
});
await check("secret.delete_get_deleted_recover", async () => {
  const deleted = await (await secrets.beginDeleteSecret(secretName, fast)).pollUntilDone();
  assert(deleted.recoveryId && deleted.scheduledPurgeDate, "soft-delete fields");
  assert((await secrets.getDeletedSecret(secretName)).name === secretName, "get deleted");
  await (await secrets.beginRecoverDeletedSecret(secretName, fast)).pollUntilDone();
  assert((await secrets.getSecret(secretName)).value === "two", "recovered");
});
await check("secret.backup_restore", async () => {
  const blob = await secrets.backupSecret(secretName);
  await (await secrets.beginDeleteSecret(secretName, fast)).pollUntilDone();
  await secrets.purgeDeletedSecret(secretName);
  const restored = await secrets.restoreSecretBackup(blob);
  assert(restored.name === secretName, "restored");
  assert((await secrets.getSecret(secretName)).value === "two", "restored value");
});
await check("secret.purge", async () => {
  await (await secrets.beginDeleteSecret(secretName, fast)).pollUntilDone();
  await secrets.purgeDeletedSecret(secretName);
  await expectStatus(404, () => secrets.getDeletedSecret(secretName));
});

// ---------------------------------------------------------------- keys
const rsaName = n("rsa");
const ecName = n("ec");
let rsaKey;
let ecKey;
await check("key.create_rsa_ec", async () => {
  rsaKey = await keys.createRsaKey(rsaName, { keySize: 2048 });
  ecKey = await keys.createEcKey(ecName, { curve: "P-256" });
  assert(rsaKey.keyType === "RSA" && rsaKey.key.n.length === 256, "RSA-2048 public key");
  assert(ecKey.keyType === "EC" && ecKey.key.crv === "P-256", "EC P-256");
});
await check("key.get_list_update", async () => {
  assert((await keys.getKey(rsaName)).id === rsaKey.id, "get");
  const names = (await collect(keys.listPropertiesOfKeys())).map((p) => p.name);
  assert(names.includes(rsaName) && names.includes(ecName), "listed");
  const p = await keys.updateKeyProperties(rsaName, rsaKey.properties.version, { tags: { t: "x" } });
  assert(p.properties.tags.t === "x", "tags");
});
await check("key.rotate_and_rotation_policy", async () => {
  const rotated = await keys.rotateKey(rsaName);
  assert(rotated.properties.version !== rsaKey.properties.version, "new version");
  const policy = await keys.updateKeyRotationPolicy(rsaName, {
    lifetimeActions: [{ action: "Rotate", timeBeforeExpiry: "P30D" }],
    expiresIn: "P90D",
  });
  assert(policy.expiresIn === "P90D", `expiresIn ${policy.expiresIn}`);
  const got = await keys.getKeyRotationPolicy(rsaName);
  assert(got.lifetimeActions.some((a) => a.action === "Rotate" && a.timeBeforeExpiry === "P30D"), "rotate action");
});
await check("crypto.encrypt_decrypt_rsa_oaep", async () => {
  const client = new CryptographyClient(rsaKey.id, credential, options);
  const plaintext = Buffer.from("kvault from javascript");
  const enc = await client.encrypt({ algorithm: "RSA-OAEP", plaintext });
  const dec = await client.decrypt({ algorithm: "RSA-OAEP", ciphertext: enc.result });
  assert(Buffer.from(dec.result).equals(plaintext), "round trip");
});
await check("crypto.wrap_unwrap", async () => {
  const client = new CryptographyClient(rsaKey.id, credential, options);
  const cek = randomBytes(32);
  const wrapped = await client.wrapKey("RSA-OAEP-256", cek);
  const unwrapped = await client.unwrapKey("RSA-OAEP-256", wrapped.result);
  assert(Buffer.from(unwrapped.result).equals(cek), "round trip");
});
await check("crypto.sign_verify_es256_rs256", async () => {
  const digest = createHash("sha256").update("message").digest();
  for (const [key, alg] of [
    [ecKey, "ES256"],
    [rsaKey, "RS256"],
  ]) {
    const client = new CryptographyClient(key.id, credential, options);
    const signed = await client.sign(alg, digest);
    assert((await client.verify(alg, digest, signed.result)).result === true, `${alg} verifies`);
    const other = createHash("sha256").update("other").digest();
    assert((await client.verify(alg, other, signed.result)).result === false, `${alg} refuses another digest`);
  }
});
await check("key.random_bytes", async () => {
  // rng/action is the Administrator's (the cloud offers it on Managed HSM).
  const bytes = await adminKeys.getRandomBytes(32);
  assert(bytes.length === 32, "32 bytes");
});
await check("key.backup_restore_delete_purge", async () => {
  const blob = await keys.backupKey(ecName);
  await (await keys.beginDeleteKey(ecName, fast)).pollUntilDone();
  await keys.purgeDeletedKey(ecName);
  await expectStatus(404, () => keys.getKey(ecName));
  const restored = await keys.restoreKeyBackup(blob);
  assert(restored.key.x.length === 32, "restored EC key");
  await (await keys.beginDeleteKey(ecName, fast)).pollUntilDone();
  await keys.purgeDeletedKey(ecName);
});

// ---------------------------------------------------------------- certificates
const certName = n("cert");
await check("cert.create_self_signed", async () => {
  const poller = await certs.beginCreateCertificate(
    certName,
    { issuerName: "Self", subject: "CN=js.interop.test", subjectAlternativeNames: { dnsNames: ["js.interop.test"] } },
    fast,
  );
  const cert = await poller.pollUntilDone();
  assert(cert.cer && cert.cer.length > 100, "DER certificate");
  assert(cert.policy.subject === "CN=js.interop.test", "policy subject");
});
await check("cert.get_and_operation", async () => {
  const cert = await certs.getCertificate(certName);
  assert(cert.name === certName && cert.keyId && cert.secretId, "kid and sid");
  const op = await certs.getCertificateOperation(certName);
  assert(op.getOperationState().isCompleted, "operation completed");
});
await check("cert.policy_get_update", async () => {
  const policy = await certs.getCertificatePolicy(certName);
  assert(policy.keyType === "RSA" && policy.keySize === 2048, "stored defaults");
  // This SDK version returns nothing useful from updateCertificatePolicy (it drops the
  // response body), so the stored policy is read back.
  await certs.updateCertificatePolicy(certName, { ...policy, validityInMonths: 6 });
  assert((await certs.getCertificatePolicy(certName)).validityInMonths === 6, "validity updated");
});
await check("cert.import_pfx", async () => {
  const secret = await secrets.getSecret(certName);
  const pfx = Buffer.from(secret.value, "base64");
  const imported = await certs.importCertificate(n("imported"), pfx);
  const original = await certs.getCertificate(certName);
  assert(Buffer.from(imported.cer).equals(Buffer.from(original.cer)), "same certificate");
});
await check("cert.contacts", async () => {
  const contacts = [{ email: "js@interop.test", name: "JS", phone: "1" }];
  await certs.setContacts(contacts);
  const got = await adminCerts.getContacts();
  assert(got.length === 1 && got[0].email === "js@interop.test", "contacts read");
  await certs.deleteContacts();
  await expectStatus(404, () => adminCerts.getContacts());
});
await check("cert.issuers", async () => {
  const issuer = n("issuer");
  await certs.createIssuer(issuer, "Test", { accountId: "acct" });
  assert((await certs.getIssuer(issuer)).provider === "Test", "provider");
  // The SDK hands out the listing's raw items: `id` and `provider`, no `name`.
  const listed = (await collect(certs.listPropertiesOfIssuers())).map((i) => i.id);
  assert(listed.some((id) => id.endsWith(`/certificates/issuers/${issuer}`)), "listed");
  await certs.deleteIssuer(issuer);
  await expectStatus(404, () => certs.getIssuer(issuer));
});
await check("cert.list", async () => {
  const names = (await collect(certs.listPropertiesOfCertificates())).map((p) => p.name);
  assert(names.includes(certName) && names.includes(n("imported")), "listed");
});
await check("cert.unknown_issuer_pending", async () => {
  const poller = await certs.beginCreateCertificate(n("pending"), { issuerName: "Unknown", subject: "CN=pending" }, fast);
  const op = await certs.getCertificateOperation(n("pending"));
  const state = op.getOperationState().certificateOperation;
  assert(state.status === "inProgress" && state.csr && state.csr.length > 100, "CSR waiting");
  assert(/merge/i.test(state.statusDetails ?? ""), `statusDetails ${state.statusDetails}`);
  poller.stopPolling();
});
await check("cert.delete_purge", async () => {
  const deleted = await (await certs.beginDeleteCertificate(certName, fast)).pollUntilDone();
  assert(deleted.recoveryId, "recoveryId");
  await certs.purgeDeletedCertificate(certName);
  await expectStatus(404, () => certs.getDeletedCertificate(certName));
});

console.log(`api-versions ${[...apiVersions].sort().join(",")}`);
process.exit(failures ? 1 : 0);
