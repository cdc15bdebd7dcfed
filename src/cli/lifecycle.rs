//! The subcommands every object family has — `delete`, `recover`, `purge`, `backup`,
//! `restore` — written once over [`Family`] and flattened into `kvault secret | key | cert`.

use super::common::{
    Column, Connection, Output, outln, print_json, print_list, read_input, time, write_backup,
};
use crate::client::{ClientError, VaultClient};
use crate::wire::{DeletionInfo, ObjectId};
use clap::Subcommand;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum Lifecycle {
    /// Soft-delete it (recoverable until its retention ends).
    Delete {
        /// The object's name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Recover a soft-deleted one.
    Recover {
        /// The object's name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Permanently remove a soft-deleted one.
    Purge {
        /// The object's name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Write a sealed backup of it (all versions).
    Backup {
        /// The object's name.
        name: String,
        /// Output file (default: stdout).
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Restore one from a backup.
    Restore {
        /// Backup file ('-' or absent: stdin).
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// One object family as the lifecycle and list commands see it: its client calls and how it
/// prints.
pub(crate) trait Family {
    type Bundle: Serialize;
    type Deleted: Serialize;
    /// An item of `list`.
    type Item: Serialize + 'static;
    /// An item of `list --deleted`.
    type DeletedItem: Serialize;
    /// "deleted secret {name}…", "purged key {name}".
    const NOUN: &'static str;
    /// What else goes with a delete, in the human output (a certificate's key and secret).
    const DELETES_ALSO: &'static str = "";
    /// Whether a purge prints its line in JSON output too (the certificate command does).
    const PURGE_NOTE_ALWAYS: bool = false;
    /// Whether a backup written to a file says so on stderr.
    const BACKUP_NOTE: bool = false;

    async fn delete(c: &VaultClient, name: &str) -> Result<Self::Deleted, ClientError>;
    async fn recover(c: &VaultClient, name: &str) -> Result<Self::Bundle, ClientError>;
    async fn purge(c: &VaultClient, name: &str) -> Result<(), ClientError>;
    async fn backup(c: &VaultClient, name: &str) -> Result<String, ClientError>;
    async fn restore(c: &VaultClient, blob: &str) -> Result<Self::Bundle, ClientError>;
    fn deletion(d: &Self::Deleted) -> &DeletionInfo;
    /// The columns of `list` (the name first).
    const COLUMNS: &'static [Column<Self::Item>];
    async fn list(c: &VaultClient) -> Result<Vec<Self::Item>, ClientError>;
    async fn list_deleted(c: &VaultClient) -> Result<Vec<Self::DeletedItem>, ClientError>;
    /// A deleted item's id and deletion dates.
    fn deleted_item(d: &Self::DeletedItem) -> (&str, &DeletionInfo);
    /// Prints a recovered (`name`) or restored (`None`) bundle.
    fn print(b: &Self::Bundle, name: Option<&str>, output: Output) -> anyhow::Result<()>;
}

/// `list` and `list --deleted` of every family: the family's columns, or name, deletion
/// date and purge date.
pub(crate) async fn list<F: Family>(deleted: bool, conn: &Connection) -> anyhow::Result<()> {
    let c = conn.client()?;
    if deleted {
        let items = F::list_deleted(&c).await?;
        print_list(
            &items,
            &[
                ("name", |d| {
                    ObjectId::name_of(F::deleted_item(d).0).to_string()
                }),
                ("deleted", |d| time(F::deleted_item(d).1.deleted_date)),
                ("purge-after", |d| {
                    time(F::deleted_item(d).1.scheduled_purge_date)
                }),
            ],
        )
    } else {
        print_list(&F::list(&c).await?, F::COLUMNS)
    }
}

pub(crate) async fn run<F: Family>(cmd: Lifecycle) -> anyhow::Result<()> {
    let noun = F::NOUN;
    match cmd {
        Lifecycle::Delete { name, conn } => {
            let d = F::delete(&conn.client()?, &name).await?;
            if conn.output.structured() {
                return print_json(&d);
            }
            outln!(
                "deleted {noun} {name}{}; recoverable until {}",
                F::DELETES_ALSO,
                time(F::deletion(&d).scheduled_purge_date)
            )?;
        }
        Lifecycle::Recover { name, conn } => {
            let b = F::recover(&conn.client()?, &name).await?;
            F::print(&b, Some(&name), conn.output)?;
        }
        Lifecycle::Purge { name, conn } => {
            F::purge(&conn.client()?, &name).await?;
            if F::PURGE_NOTE_ALWAYS || !conn.output.structured() {
                outln!("purged {noun} {name}")?;
            }
        }
        Lifecycle::Backup { name, file, conn } => {
            let blob = F::backup(&conn.client()?, &name).await?;
            if let Some(p) = write_backup(&blob, file.as_ref())?
                && F::BACKUP_NOTE
                && !conn.output.structured()
            {
                eprintln!("backup of {noun} {name} written to {}", p.display());
            }
        }
        Lifecycle::Restore { file, conn } => {
            let blob = read_input(file.as_ref())?;
            let b = F::restore(&conn.client()?, blob.trim()).await?;
            F::print(&b, None, conn.output)?;
        }
    }
    Ok(())
}
