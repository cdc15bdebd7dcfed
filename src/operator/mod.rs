//! `kvault operator`: reconciles `Vault`, `AccessPolicy` and `RoleAssignment` resources into
//! running, secured vaults.
//!
//! Split the way the style anchors do it: pure desired-state functions (spec in, objects
//! out) in [`policy`] and [`desired`], tested directly; the I/O shell (watches, server-side
//! apply, status, events, policy push) stays thin on top of them.

pub mod app;
pub mod ca;
pub mod controller;
pub mod desired;
pub mod expiry;
pub mod identity;
pub mod leader;
pub mod policy;
pub mod push;
pub mod rbac;
pub mod relocation;
pub mod scope;
pub mod service_accounts;
pub mod soft_delete;
pub mod status;
pub mod sync;
pub mod volumes;
pub mod webhook;

pub use app::{OperatorOptions, run};

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "kvault-operator";

/// The API server's non-resource URL of the cluster's service-account JWKS.
pub const CLUSTER_JWKS_API_PATH: &str = "/openid/v1/jwks";

/// What the operator knows about its cluster and itself; the same for every vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSettings {
    /// The operator's namespace (its CA Secret lives there).
    pub namespace: String,
    /// The operator's service account: the only principal a vault lets replace its policy.
    pub service_account: String,
    /// The kvault image the vault StatefulSets run.
    pub image: String,
    pub image_pull_policy: Option<String>,
    /// The cluster's DNS domain (`cluster.local`), for the certificate's long name.
    pub cluster_domain: String,
    /// The `iss` of the cluster's service-account tokens.
    pub cluster_issuer: String,
    /// The cluster's pod network(s). With `network.defaultAction: Deny` and `allowedPeers`,
    /// the server itself can only judge addresses: it admits the pod network and leaves the
    /// per-pod choice to the NetworkPolicy.
    pub pod_cidrs: Vec<String>,
    /// The workload-identity token service, when the operator serves it: vaults trust its
    /// tokens and name it in their challenge.
    pub token_service: Option<identity::TokenServiceSettings>,
}

impl OperatorSettings {
    /// `ServiceAccount <ns>/<name>`, as `kvault server --admin-principal` takes it.
    pub fn admin_principal(&self) -> String {
        format!("ServiceAccount {}/{}", self.namespace, self.service_account)
    }

    #[cfg(test)]
    pub fn test() -> Self {
        Self {
            namespace: "kvault-system".into(),
            service_account: "kvault-operator".into(),
            image: "ghcr.io/kvault/kvault:0.1.0".into(),
            image_pull_policy: None,
            cluster_domain: "cluster.local".into(),
            cluster_issuer: "https://kubernetes.default.svc.cluster.local".into(),
            pod_cidrs: vec![],
            token_service: None,
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod mock_api_server_tests;
