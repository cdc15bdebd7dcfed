//! `kvault secret …`: the secrets API for people.

use super::lifecycle::{self, Lifecycle, Secrets};
use crate::client::{ClientConfig, ClientError, VaultClient};
use crate::wire::{ObjectId, SecretAttributes, SecretSetParameters, SecretUpdateParameters, Tags};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use std::io::Read;
use std::path::PathBuf;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Args)]
pub(crate) struct Connection {
    /// The vault URL.
    #[arg(long, env = "KVAULT_URL", global = true)]
    url: Option<String>,
    /// A bearer token (prefer --token-file or the environment: flags show up in `ps`).
    #[arg(long, env = "KVAULT_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// A file holding the bearer token.
    #[arg(long, env = "KVAULT_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    /// CA bundle to trust for the vault's certificate.
    #[arg(long, env = "KVAULT_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "human", global = true)]
    pub(crate) output: Output,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum Output {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Set a secret (a new version). The value comes from the argument, --file, or stdin.
    Set {
        name: String,
        value: Option<String>,
        /// Read the value from a file ('-' for stdin).
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long)]
        content_type: Option<String>,
        /// KEY=VALUE (repeatable).
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        /// Create the version disabled.
        #[arg(long)]
        disabled: bool,
        /// Not valid before (Unix seconds).
        #[arg(long)]
        nbf: Option<i64>,
        /// Expires at (Unix seconds).
        #[arg(long)]
        exp: Option<i64>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Print a secret's value (or the whole bundle with -o json).
    Get {
        name: String,
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List secrets (names and attributes; never values).
    List {
        /// List deleted secrets instead.
        #[arg(long)]
        deleted: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// List a secret's versions.
    Versions {
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change a version's attributes, tags or content type.
    Update {
        name: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        enabled: Option<bool>,
        #[arg(long)]
        content_type: Option<String>,
        /// KEY=VALUE (repeatable; replaces all tags).
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        #[arg(long)]
        nbf: Option<i64>,
        #[arg(long)]
        exp: Option<i64>,
        #[command(flatten)]
        conn: Connection,
    },
    #[command(flatten)]
    Lifecycle(Lifecycle),
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the applied policy document (JSON).
    Get {
        #[command(flatten)]
        conn: Connection,
    },
    /// Replace the policy document from a JSON file ('-' or absent: stdin).
    Put {
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
}

pub async fn run_policy(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Get { conn } => {
            let status = conn.client()?.get_policy().await?;
            if conn.output == Output::Json {
                return print_json(&status);
            }
            print_json(&status.policy)
        }
        PolicyCommand::Put { file, conn } => {
            let text = read_input(file.as_ref())?;
            let doc: crate::policy::PolicyDocument = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("the policy document is not valid: {e}"))?;
            let status = conn.client()?.put_policy(&doc).await?;
            if conn.output == Output::Json {
                return print_json(&status);
            }
            println!(
                "policy generation {} {}",
                status.applied_generation,
                status
                    .outcome
                    .as_deref()
                    .unwrap_or("applied")
                    .to_lowercase()
            );
            Ok(())
        }
    }
}

pub(crate) fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))
}

pub(crate) fn tags(t: Vec<(String, String)>) -> Option<Tags> {
    (!t.is_empty()).then(|| t.into_iter().collect())
}

impl Connection {
    pub(crate) fn client(&self) -> anyhow::Result<VaultClient> {
        let url = self
            .url
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no vault URL: set KVAULT_URL or pass --url"))?;
        let token = match (&self.token, &self.token_file) {
            (_, Some(f)) => Zeroizing::new(
                std::fs::read_to_string(f)
                    .map_err(|e| anyhow::anyhow!("reading token file {}: {e}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            (Some(t), None) => Zeroizing::new(t.clone()),
            (None, None) => anyhow::bail!(
                "no token: set KVAULT_TOKEN or KVAULT_TOKEN_FILE, or pass --token-file"
            ),
        };
        Ok(VaultClient::new(ClientConfig {
            url,
            token,
            ca_file: self.ca_file.clone(),
        })?)
    }
}

/// Writes a backup blob to `file`, or prints it when there is none; returns the file.
pub(crate) fn write_backup<'a>(
    blob: &str,
    file: Option<&'a PathBuf>,
) -> anyhow::Result<Option<&'a PathBuf>> {
    match file {
        Some(p) => {
            std::fs::write(p, blob.as_bytes())
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?;
            Ok(Some(p))
        }
        None => {
            println!("{blob}");
            Ok(None)
        }
    }
}

pub(crate) fn read_input(file: Option<&PathBuf>) -> anyhow::Result<Zeroizing<String>> {
    let mut buf = Zeroizing::new(String::new());
    match file {
        Some(p) if p.as_os_str() != "-" => {
            *buf = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?;
        }
        _ => {
            std::io::stdin().read_to_string(&mut buf)?;
        }
    }
    Ok(buf)
}

pub(crate) fn time(t: Option<i64>) -> String {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

pub(crate) fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn print_attrs(a: &SecretAttributes) {
    println!("enabled:       {}", a.enabled.unwrap_or(true));
    println!("created:       {}", time(a.created));
    println!("updated:       {}", time(a.updated));
    if a.nbf.is_some() {
        println!("not before:    {}", time(a.nbf));
    }
    if a.exp.is_some() {
        println!("expires:       {}", time(a.exp));
    }
    println!(
        "recovery:      {} ({} days)",
        a.recovery_level.as_deref().unwrap_or("-"),
        a.recoverable_days.unwrap_or(0)
    );
}

pub async fn run(cmd: SecretCommand) -> anyhow::Result<()> {
    match cmd {
        SecretCommand::Set {
            name,
            value,
            file,
            content_type,
            tags: t,
            disabled,
            nbf,
            exp,
            conn,
        } => {
            let value = match (value, file) {
                (Some(v), None) => Zeroizing::new(v),
                (None, f) => read_input(f.as_ref())?,
                (Some(_), Some(_)) => anyhow::bail!("give the value or --file, not both"),
            };
            let params = SecretSetParameters {
                value: value.to_string(),
                content_type,
                tags: tags(t),
                attributes: Some(SecretAttributes {
                    enabled: Some(!disabled),
                    nbf,
                    exp,
                    ..Default::default()
                }),
            };
            let b = conn.client()?.set_secret(&name, &params).await?;
            if conn.output == Output::Json {
                let mut b = b;
                b.value = None;
                return print_json(&b);
            }
            println!(
                "set secret {name}, version {}",
                ObjectId::version_of(&b.id).unwrap_or("-")
            );
        }
        SecretCommand::Get {
            name,
            version,
            conn,
        } => {
            let b = conn.client()?.get_secret(&name, version.as_deref()).await?;
            if conn.output == Output::Json {
                return print_json(&b);
            }
            println!("{}", b.value.as_deref().unwrap_or(""));
        }
        SecretCommand::List { deleted, conn } => {
            let c = conn.client()?;
            if deleted {
                let items = c.list_deleted_secrets().await?;
                if conn.output == Output::Json {
                    return print_json(&items);
                }
                println!("{:<40} {:<26} {:<26}", "NAME", "DELETED", "PURGE AFTER");
                for i in items {
                    println!(
                        "{:<40} {:<26} {:<26}",
                        ObjectId::name_of(&i.item.id),
                        time(i.deletion.deleted_date),
                        time(i.deletion.scheduled_purge_date)
                    );
                }
            } else {
                let items = c.list_secrets().await?;
                if conn.output == Output::Json {
                    return print_json(&items);
                }
                println!(
                    "{:<40} {:<8} {:<26} CONTENT-TYPE",
                    "NAME", "ENABLED", "UPDATED"
                );
                for i in items {
                    println!(
                        "{:<40} {:<8} {:<26} {}",
                        ObjectId::name_of(&i.id),
                        i.attributes.enabled.unwrap_or(true),
                        time(i.attributes.updated),
                        i.content_type.as_deref().unwrap_or("")
                    );
                }
            }
        }
        SecretCommand::Versions { name, conn } => {
            let items = conn.client()?.list_secret_versions(&name).await?;
            if conn.output == Output::Json {
                return print_json(&items);
            }
            println!("{:<34} {:<8} {:<26}", "VERSION", "ENABLED", "CREATED");
            for i in items {
                println!(
                    "{:<34} {:<8} {:<26}",
                    ObjectId::version_of(&i.id).unwrap_or("-"),
                    i.attributes.enabled.unwrap_or(true),
                    time(i.attributes.created)
                );
            }
        }
        SecretCommand::Update {
            name,
            version,
            enabled,
            content_type,
            tags: t,
            nbf,
            exp,
            conn,
        } => {
            let params = SecretUpdateParameters {
                content_type,
                tags: tags(t),
                attributes: (enabled.is_some() || nbf.is_some() || exp.is_some()).then(|| {
                    SecretAttributes {
                        enabled,
                        nbf,
                        exp,
                        ..Default::default()
                    }
                }),
            };
            let b = conn
                .client()?
                .update_secret(&name, version.as_deref(), &params)
                .await?;
            if conn.output == Output::Json {
                return print_json(&b);
            }
            println!(
                "updated secret {name}, version {}",
                ObjectId::version_of(&b.id).unwrap_or("-")
            );
            print_attrs(&b.attributes);
        }
        SecretCommand::Lifecycle(cmd) => return lifecycle::run::<Secrets>(cmd).await,
    }
    Ok(())
}

impl From<ClientError> for std::io::Error {
    fn from(e: ClientError) -> Self {
        std::io::Error::other(e.to_string())
    }
}
