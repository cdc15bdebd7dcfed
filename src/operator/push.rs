//! Pushing a vault's policy document to `PUT /_kvault/policy`, as the operator's service
//! account.
//!
//! The vault accepts only tokens whose audience is the vault itself, so a single projected
//! token cannot serve every vault: the operator asks the API server for a short-lived token
//! of its own service account with the vault's URL as audience (TokenRequest) for each push.
//! The token is kept only for the duration of the call and never logged.

use crate::api::Vault;
use crate::client::{ClientConfig, ClientError, VaultClient};
use crate::policy::PolicyDocument;
use crate::wire::{ExpiryReport, PolicyStatus};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use std::path::PathBuf;
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// Tests only (`kvault operator --test-vault-address`, a hidden option; unset in
/// production): where policy pushes connect instead of the vault's Service URL, so that the
/// real-API-server suite (tests/k8s) can run the vault as a local `kvault server`. Tokens
/// keep the vault URL as their audience.
static TEST_VAULT_ADDRESS: OnceLock<String> = OnceLock::new();

/// Sets [`TEST_VAULT_ADDRESS`] (once per process).
pub fn set_test_vault_address(url: String) {
    let _ = TEST_VAULT_ADDRESS.set(url);
}

/// Where a client of the vault at `url` connects: the URL itself, or in tests
/// [`TEST_VAULT_ADDRESS`] (the token keeps `url` as its audience).
pub fn vault_address(url: String) -> String {
    TEST_VAULT_ADDRESS.get().cloned().unwrap_or(url)
}

/// Lifetime of the token minted for one push.
pub const PUSH_TOKEN_SECONDS: i64 = 600;

/// A vault's policy endpoint (a trait, so that reconcile tests need no vault).
#[async_trait::async_trait]
pub trait PolicyEndpoint: Send + Sync {
    async fn get(&self, vault: &Vault) -> Result<PolicyStatus, ClientError>;
    async fn put(&self, vault: &Vault, doc: &PolicyDocument) -> Result<PolicyStatus, ClientError>;
    /// The vault's expired and near-expiry objects (`GET /_kvault/events/expiry`).
    async fn expiring(&self, _vault: &Vault) -> Result<ExpiryReport, ClientError> {
        Ok(ExpiryReport::default())
    }
}

/// Pushes `doc`; when the vault already holds a generation at least as high (409, for
/// example a recovered vault), reads it and pushes the next one. Returns the generation
/// the vault accepted.
pub async fn push(
    endpoint: &dyn PolicyEndpoint,
    vault: &Vault,
    mut doc: PolicyDocument,
) -> Result<u64, ClientError> {
    match endpoint.put(vault, &doc).await {
        Ok(status) => Ok(status.applied_generation),
        Err(e) if e.status() == Some(409) => {
            let current = endpoint.get(vault).await?;
            doc.generation = current.applied_generation.max(doc.generation) + 1;
            Ok(endpoint.put(vault, &doc).await?.applied_generation)
        }
        Err(e) => Err(e),
    }
}

/// The real endpoint: HTTPS to `https://<vault>.<ns>.svc` with a TokenRequest token.
pub struct ServiceAccountEndpoint {
    pub client: kube::Client,
    pub namespace: String,
    pub service_account: String,
    /// The CA that signs the vaults' server certificates.
    pub ca_file: Option<PathBuf>,
}

impl ServiceAccountEndpoint {
    async fn vault_client(&self, vault: &Vault) -> Result<VaultClient, ClientError> {
        let url = vault
            .url()
            .ok_or_else(|| ClientError::config("the Vault has no name or namespace"))?;
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![url.clone()],
                expiration_seconds: Some(PUSH_TOKEN_SECONDS),
                bound_object_ref: None,
            },
            ..Default::default()
        };
        let minted = sas
            .create_token_request(&self.service_account, &PostParams::default(), &request)
            .await
            .map_err(|e| {
                ClientError::token(
                    format!(
                        "cannot get a token of ServiceAccount {}/{} for {url}",
                        self.namespace, self.service_account
                    ),
                    Some(Box::new(e)),
                )
            })?;
        let token = minted
            .status
            .map(|s| Zeroizing::new(s.token))
            .ok_or_else(|| ClientError::token("the TokenRequest returned no token", None))?;
        let url = vault_address(url);
        VaultClient::new(ClientConfig {
            url,
            token,
            ca_file: self.ca_file.clone(),
        })
    }
}

#[async_trait::async_trait]
impl PolicyEndpoint for ServiceAccountEndpoint {
    async fn get(&self, vault: &Vault) -> Result<PolicyStatus, ClientError> {
        self.vault_client(vault).await?.get_policy().await
    }
    async fn put(&self, vault: &Vault, doc: &PolicyDocument) -> Result<PolicyStatus, ClientError> {
        self.vault_client(vault).await?.put_policy(doc).await
    }
    async fn expiring(&self, vault: &Vault) -> Result<ExpiryReport, ClientError> {
        self.vault_client(vault).await?.get_expiring().await
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::sync::Mutex;

    /// An empty document at `generation`.
    pub fn doc_at(generation: u64) -> PolicyDocument {
        serde_json::from_value(serde_json::json!({ "generation": generation })).unwrap()
    }

    /// A vault's policy endpoint in memory: it holds a generation and refuses (409) any
    /// push that does not raise it, as the server does.
    #[derive(Default)]
    pub struct FakeEndpoint {
        pub held: Mutex<Option<PolicyDocument>>,
        pub puts: Mutex<Vec<u64>>,
        pub down: bool,
        /// What `expiring` answers.
        pub expiring: Mutex<ExpiryReport>,
    }

    impl FakeEndpoint {
        pub fn holding(generation: u64) -> Self {
            let f = Self::default();
            *f.held.lock().unwrap() = Some(doc_at(generation));
            f
        }
        fn status(doc: &PolicyDocument) -> PolicyStatus {
            PolicyStatus {
                applied_generation: doc.generation,
                outcome: None,
                policy: doc.clone(),
            }
        }
    }

    #[async_trait::async_trait]
    impl PolicyEndpoint for FakeEndpoint {
        async fn get(&self, _: &Vault) -> Result<PolicyStatus, ClientError> {
            let held = self
                .held
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| doc_at(0));
            Ok(Self::status(&held))
        }
        async fn put(&self, _: &Vault, doc: &PolicyDocument) -> Result<PolicyStatus, ClientError> {
            if self.down {
                return Err(ClientError::Transport("connection refused".into()));
            }
            self.puts.lock().unwrap().push(doc.generation);
            let mut held = self.held.lock().unwrap();
            if held
                .as_ref()
                .is_some_and(|h| h.generation >= doc.generation)
            {
                return Err(ClientError::Api {
                    status: 409,
                    code: "Conflict".into(),
                    message: "the policy generation must increase".into(),
                });
            }
            *held = Some(doc.clone());
            Ok(Self::status(doc))
        }
        async fn expiring(&self, _: &Vault) -> Result<ExpiryReport, ClientError> {
            Ok(self.expiring.lock().unwrap().clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeEndpoint;
    use super::*;
    use crate::api::VaultSpec;
    use crate::operator::fixtures;

    use super::fake::doc_at as doc;

    #[tokio::test]
    async fn a_first_push_is_accepted_as_is() {
        let vault = fixtures::vault("team-a", "payments", VaultSpec::default());
        let f = FakeEndpoint::default();
        assert_eq!(push(&f, &vault, doc(1)).await.unwrap(), 1);
        assert_eq!(*f.puts.lock().unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn after_a_conflict_the_next_generation_of_the_vaults_is_pushed() {
        // A recovered vault that already holds generation 7.
        let vault = fixtures::vault("team-a", "payments", VaultSpec::default());
        let f = FakeEndpoint::holding(7);
        assert_eq!(push(&f, &vault, doc(2)).await.unwrap(), 8);
        assert_eq!(*f.puts.lock().unwrap(), vec![2, 8]);
    }

    #[tokio::test]
    async fn other_errors_are_returned() {
        let vault = fixtures::vault("team-a", "payments", VaultSpec::default());
        let f = FakeEndpoint {
            down: true,
            ..Default::default()
        };
        assert!(matches!(
            push(&f, &vault, doc(1)).await,
            Err(ClientError::Transport(_))
        ));
    }
}
