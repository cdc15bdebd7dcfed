//! `kvault vault …`: deleted vaults in a cluster — list them, purge one when allowed. Talks
//! to the Kubernetes API (in-cluster configuration or your kubeconfig), not to a vault.

use super::common::out;
use crate::api::Vault;
use crate::operator::controller::purge_vault;
use crate::operator::soft_delete::{self, DeletedVault};
use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::{Api, Client};

#[derive(Debug, clap::Subcommand)]
pub enum VaultCommand {
    /// List deleted vaults (kept master key and data, waiting for recovery or purge).
    Deleted {
        /// Only this namespace (default: every namespace).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
    },
    /// Purge a deleted vault now: delete its master key and data volumes for good. Refused
    /// while purge protection holds it.
    Purge {
        /// The deleted vault's name.
        name: String,
        /// The namespace the vault was in.
        #[arg(long, short = 'n')]
        namespace: String,
    },
}

fn time(t: Option<i64>) -> String {
    t.and_then(|t| k8s_openapi::jiff::Timestamp::from_second(t).ok())
        .map_or_else(|| "-".to_string(), |t| t.to_string())
}

/// The table `kvault vault deleted` prints.
pub fn deleted_table(vaults: &[DeletedVault]) -> String {
    let mut rows = vec![[
        "NAMESPACE".to_string(),
        "VAULT".to_string(),
        "PURGE AFTER".to_string(),
        "PURGE PROTECTION".to_string(),
    ]];
    for v in vaults {
        rows.push([
            v.namespace.clone(),
            v.name.clone(),
            time(v.purge_after),
            if v.purge_protection { "on" } else { "off" }.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let line: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            line.join("  ").trim_end().to_string() + "\n"
        })
        .collect()
}

async fn deleted_vaults(
    client: &Client,
    namespace: Option<&str>,
) -> anyhow::Result<Vec<DeletedVault>> {
    let api: Api<Secret> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let lp = ListParams::default().labels(&format!("{}=true", soft_delete::DELETED_LABEL));
    // Metadata only: the master keys' contents never leave the API server.
    let mut out: Vec<DeletedVault> = api
        .list_metadata(&lp)
        .await
        .context("listing deleted vaults' master keys")?
        .items
        .iter()
        .filter_map(|m| soft_delete::deleted_vault(&m.metadata))
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}

pub async fn run(cmd: VaultCommand) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API (kubeconfig or in-cluster)")?;
    match cmd {
        VaultCommand::Deleted { namespace } => {
            let vaults = deleted_vaults(&client, namespace.as_deref()).await?;
            if vaults.is_empty() {
                eprintln!("no deleted vaults");
            } else {
                out!("{}", deleted_table(&vaults))?;
            }
        }
        VaultCommand::Purge { name, namespace } => {
            if Api::<Vault>::namespaced(client.clone(), &namespace)
                .get_opt(&name)
                .await?
                .is_some()
            {
                bail!(
                    "vault {namespace}/{name} exists: delete it first (it is soft-deleted, then purgeable)"
                );
            }
            let key_name = crate::operator::desired::master_key_secret_name(&name);
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
            let key = secrets
                .get_metadata_opt(&key_name)
                .await?
                .with_context(|| format!("no deleted vault {namespace}/{name}"))?;
            let vault = soft_delete::deleted_vault(&key.metadata)
                .with_context(|| format!("{namespace}/{name} is not a deleted vault"))?;
            let now = k8s_openapi::jiff::Timestamp::now().as_second();
            soft_delete::may_purge(&vault, now).map_err(anyhow::Error::msg)?;
            purge_vault(&client, &namespace, &name, &key.metadata).await?;
            eprintln!(
                "purged deleted vault {namespace}/{name}: its master key and data volumes are gone"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deleted_table_lines_up() {
        let t = deleted_table(&[
            DeletedVault {
                namespace: "team-a".into(),
                name: "payments".into(),
                purge_after: Some(1_790_000_000),
                purge_protection: true,
            },
            DeletedVault {
                namespace: "b".into(),
                name: "x".into(),
                purge_after: None,
                purge_protection: false,
            },
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAMESPACE  VAULT     PURGE AFTER"));
        assert!(lines[1].contains("2026-09-21T") && lines[1].ends_with("on"));
        assert!(lines[2].starts_with("b          x         -"));
    }
}
