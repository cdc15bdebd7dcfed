// An unmodified app: @azure/identity DefaultAzureCredential + @azure/keyvault-secrets, configured
// only by the environment (exactly DIR/dev.env of a `kvault dev`). Run by
// tests/interop/test_workload_identity.py as
//
//   env -i $(cat dev.env) node --import ./netguard.mjs workload_identity.mjs NAME VALUE
//
// Sets secret NAME to VALUE, reads it back and prints `RESULT {json}`; exits 1 on any error.
import { DefaultAzureCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";

const [name, value] = process.argv.slice(2);

try {
  const client = new SecretClient(process.env.KVAULT_URL, new DefaultAzureCredential());
  const set = await client.setSecret(name, value);
  const got = await client.getSecret(name);
  console.log(`RESULT ${JSON.stringify({ setId: set.properties.id, value: got.value, id: got.properties.id })}`);
} catch (e) {
  console.error(`FAIL ${e && e.name}: ${e && e.message}`);
  process.exitCode = 1;
}
