//! `kvault secret …`: the secrets API for people.

use super::common::{
    Column, Connection, Output, outln, parse_tag, parse_time, print_json, print_list, read_input,
    secret_value, tags, time,
};
use super::lifecycle::{self, Family, Lifecycle};
use crate::client::{ClientError, VaultClient};
use crate::wire::{
    DeletedSecretBundle, DeletedSecretItem, DeletionInfo, ObjectId, SecretAttributes, SecretBundle,
    SecretItem, SecretSetParameters, SecretUpdateParameters,
};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Set a secret (a new version). The value comes from the argument or --value (as
    /// given), --file (byte for byte), or standard input (one trailing newline removed).
    #[command(
        after_help = "Value sources: VALUE or --value V is stored as given (beware: \
        command lines show up in `ps` and shell history); --file PATH stores the file's \
        bytes as they are; otherwise (or with --file -) the value is read from standard \
        input and exactly one trailing line ending (\"\\n\" or \"\\r\\n\") is removed, so \
        `echo x | kvault secret set s` stores \"x\". For exact bytes from a pipe use \
        --file /dev/stdin."
    )]
    Set {
        /// The secret's name (letters, digits and dashes).
        name: String,
        /// The value, stored as given (prefer --file or standard input: command lines show up in `ps`).
        value: Option<String>,
        /// The value, stored as given (same as the VALUE argument).
        #[arg(long = "value", value_name = "VALUE", conflicts_with_all = ["value", "file"])]
        value_flag: Option<String>,
        /// Read the value from a file, bytes as they are ('-': standard input, one trailing
        /// newline removed).
        #[arg(long, conflicts_with = "value")]
        file: Option<PathBuf>,
        /// A content type for the value (free text, e.g. text/plain).
        #[arg(long)]
        content_type: Option<String>,
        /// KEY=VALUE (repeatable).
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        /// Create the version disabled.
        #[arg(long)]
        disabled: bool,
        /// Not valid before: RFC 3339 (2030-01-31T12:00:00Z), a date (midnight UTC), a
        /// duration from now (90d, 12h, 30m) or Unix seconds.
        #[arg(long, value_parser = parse_time)]
        nbf: Option<i64>,
        /// Expires at: RFC 3339 (2030-01-31T12:00:00Z), a date (midnight UTC), a duration
        /// from now (90d, 12h, 30m) or Unix seconds.
        #[arg(long, value_parser = parse_time)]
        exp: Option<i64>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Print a secret's value (or the whole bundle with -o json).
    Get {
        /// The secret's name.
        name: String,
        /// A version (default: the latest).
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
        /// The secret's name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change a version's attributes, tags or content type.
    Update {
        /// The secret's name.
        name: String,
        /// The version to change (default: the latest).
        #[arg(long)]
        version: Option<String>,
        /// Enable (true) or disable (false) the version.
        #[arg(long)]
        enabled: Option<bool>,
        /// A new content type.
        #[arg(long)]
        content_type: Option<String>,
        /// KEY=VALUE (repeatable; replaces all tags).
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        /// Not valid before: RFC 3339 (2030-01-31T12:00:00Z), a date (midnight UTC), a
        /// duration from now (90d, 12h, 30m) or Unix seconds.
        #[arg(long, value_parser = parse_time)]
        nbf: Option<i64>,
        /// Expires at: RFC 3339 (2030-01-31T12:00:00Z), a date (midnight UTC), a duration
        /// from now (90d, 12h, 30m) or Unix seconds.
        #[arg(long, value_parser = parse_time)]
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
        /// The policy document, JSON ('-' or absent: standard input).
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
            if conn.output.structured() {
                return print_json(&status);
            }
            print_json(&status.policy)
        }
        PolicyCommand::Put { file, conn } => {
            let text = read_input(file.as_ref())?;
            let doc: crate::policy::PolicyDocument = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("the policy document is not valid: {e}"))?;
            let status = conn.client()?.put_policy(&doc).await?;
            if conn.output.structured() {
                return print_json(&status);
            }
            outln!(
                "policy generation {} {}",
                status.applied_generation,
                status
                    .outcome
                    .as_deref()
                    .unwrap_or("applied")
                    .to_lowercase()
            )?;
            Ok(())
        }
    }
}

fn print_attrs(a: &SecretAttributes) -> anyhow::Result<()> {
    outln!("enabled:       {}", a.enabled.unwrap_or(true))?;
    outln!("created:       {}", time(a.created))?;
    outln!("updated:       {}", time(a.updated))?;
    if a.nbf.is_some() {
        outln!("not before:    {}", time(a.nbf))?;
    }
    if a.exp.is_some() {
        outln!("expires:       {}", time(a.exp))?;
    }
    outln!(
        "recovery:      {} ({} days)",
        a.recovery_level.as_deref().unwrap_or("-"),
        a.recoverable_days.unwrap_or(0)
    )
}

pub async fn run(cmd: SecretCommand) -> anyhow::Result<()> {
    match cmd {
        SecretCommand::Set {
            name,
            value,
            value_flag,
            file,
            content_type,
            tags: t,
            disabled,
            nbf,
            exp,
            conn,
        } => {
            let value = secret_value(value.or(value_flag), file.as_ref())?;
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
            if conn.output.structured() {
                let mut b = b;
                b.value = None;
                return print_json(&b);
            }
            outln!(
                "set secret {name}, version {}",
                ObjectId::version_of(&b.id).unwrap_or("-")
            )?;
        }
        SecretCommand::Get {
            name,
            version,
            conn,
        } => {
            let b = conn.client()?.get_secret(&name, version.as_deref()).await?;
            if conn.output.structured() {
                return print_json(&b);
            }
            outln!("{}", b.value.as_deref().unwrap_or(""))?;
        }
        SecretCommand::List { deleted, conn } => {
            return lifecycle::list::<Secrets>(deleted, &conn).await;
        }
        SecretCommand::Versions { name, conn } => {
            let items = conn.client()?.list_secret_versions(&name).await?;
            return print_list(
                &items,
                &[
                    ("version", |i| {
                        ObjectId::version_of(&i.id).unwrap_or("-").to_string()
                    }),
                    ("enabled", |i| {
                        i.attributes.enabled.unwrap_or(true).to_string()
                    }),
                    ("created", |i| time(i.attributes.created)),
                    ("expires", |i| time(i.attributes.exp)),
                ],
            );
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
            if conn.output.structured() {
                return print_json(&b);
            }
            outln!(
                "updated secret {name}, version {}",
                ObjectId::version_of(&b.id).unwrap_or("-")
            )?;
            print_attrs(&b.attributes)?;
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

pub(crate) struct Secrets;

impl Family for Secrets {
    type Bundle = SecretBundle;
    type Deleted = DeletedSecretBundle;
    type Item = SecretItem;
    type DeletedItem = DeletedSecretItem;
    const NOUN: &'static str = "secret";
    const COLUMNS: &'static [Column<SecretItem>] = &[
        ("name", |i| ObjectId::name_of(&i.id).to_string()),
        ("enabled", |i| {
            i.attributes.enabled.unwrap_or(true).to_string()
        }),
        ("updated", |i| time(i.attributes.updated)),
        ("expires", |i| time(i.attributes.exp)),
        ("content-type", |i| {
            i.content_type.clone().unwrap_or_default()
        }),
    ];

    async fn list(c: &VaultClient) -> Result<Vec<SecretItem>, ClientError> {
        c.list_secrets().await
    }
    async fn list_deleted(c: &VaultClient) -> Result<Vec<DeletedSecretItem>, ClientError> {
        c.list_deleted_secrets().await
    }
    fn deleted_item(d: &DeletedSecretItem) -> (&str, &DeletionInfo) {
        (&d.item.id, &d.deletion)
    }
    const BACKUP_NOTE: bool = true;

    async fn delete(c: &VaultClient, name: &str) -> Result<Self::Deleted, ClientError> {
        c.delete_secret(name).await
    }
    async fn recover(c: &VaultClient, name: &str) -> Result<Self::Bundle, ClientError> {
        c.recover_deleted_secret(name).await
    }
    async fn purge(c: &VaultClient, name: &str) -> Result<(), ClientError> {
        c.purge_deleted_secret(name).await
    }
    async fn backup(c: &VaultClient, name: &str) -> Result<String, ClientError> {
        c.backup_secret(name).await
    }
    async fn restore(c: &VaultClient, blob: &str) -> Result<Self::Bundle, ClientError> {
        c.restore_secret(blob).await
    }
    fn deletion(d: &Self::Deleted) -> &DeletionInfo {
        &d.deletion
    }
    fn print(b: &Self::Bundle, name: Option<&str>, output: Output) -> anyhow::Result<()> {
        if output.structured() {
            return print_json(b);
        }
        match name {
            Some(name) => outln!("recovered secret {name}"),
            None => outln!("restored secret {}", ObjectId::name_of(&b.id)),
        }
    }
}
