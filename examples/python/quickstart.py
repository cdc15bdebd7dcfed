"""Read and write a kvault secret with the official Azure SDK, unmodified.

Run after `kvault dev` and `. ./.kvault/dev.env` (see the README's quickstart): dev.env
exports what Azure Workload Identity's webhook injects into a pod (AZURE_AUTHORITY_HOST,
AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE) plus the CA trust, so plain
DefaultAzureCredential() gets its token from kvault's token service.
"""

import os

from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient


def main():
    client = SecretClient(vault_url=os.environ["KVAULT_URL"], credential=DefaultAzureCredential())
    client.set_secret("db-password", "s3cret", content_type="text/plain", tags={"app": "demo"})
    secret = client.get_secret("db-password")
    print(f"{secret.name} = {secret.value} (version {secret.properties.version})")
    for props in client.list_properties_of_secrets():
        print("listed:", props.name, props.updated_on)
    client.begin_delete_secret("db-password").wait()
    client.begin_recover_deleted_secret("db-password").wait()
    print("deleted and recovered:", client.get_secret("db-password").value)


if __name__ == "__main__":
    main()
