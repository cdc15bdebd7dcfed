"""Read and write a kvault secret with the official Azure SDK, unmodified.

Run after `kvault dev` and `. ./.kvault/dev.env` (see the README's quickstart).
"""

import os
import time

from azure.core.credentials import AccessToken
from azure.keyvault.secrets import SecretClient


class EnvTokenCredential:
    """Hands the SDK the bearer token from $KVAULT_TOKEN (minted by `kvault dev`)."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken(os.environ["KVAULT_TOKEN"], int(time.time()) + 3600)


def main():
    client = SecretClient(vault_url=os.environ["KVAULT_URL"], credential=EnvTokenCredential())
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
