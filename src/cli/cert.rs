//! `kvault cert …`: the certificates API for people.

use super::common::{
    Column, Connection, Output, outln, parse_tag, print_json, print_list, print_record, tags, time,
};
use super::lifecycle::{self, Family, Lifecycle};
use crate::client::{ClientError, VaultClient};
use crate::wire::ObjectId;
use crate::wire::{
    BasicConstraints, CertificateAttributes, CertificateBundle, CertificateCreateParameters,
    CertificateImportParameters, CertificateMergeParameters, CertificatePolicy,
    CertificateUpdateParameters, Contact, Contacts, IssuerBundle, IssuerCredentials,
    IssuerParameters, KeyProperties, SecretProperties, SubjectAlternativeNames, X509Properties,
};
use crate::wire::{
    CertificateItem, DeletedCertificateBundle, DeletedCertificateItem, DeletionInfo,
};
use base64::Engine;
use clap::Subcommand;
use rustls::pki_types::pem::PemObject;
use std::path::PathBuf;

// The arguments of `create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The certificate's name.
    pub name: String,
    /// e.g. "CN=web.example.test, O=Example".
    #[arg(long)]
    pub subject: Option<String>,
    /// DNS subject alternative name (repeatable).
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Self, Unknown, or the name of an issuer.
    #[arg(long, default_value = "Self")]
    pub issuer: String,
    /// RSA or EC.
    #[arg(long, default_value = "RSA")]
    pub kty: String,
    /// RSA key size: 2048, 3072 or 4096.
    #[arg(long)]
    pub size: Option<u32>,
    /// EC curve: P-256, P-384, P-521, P-256K.
    #[arg(long)]
    pub curve: Option<String>,
    /// application/x-pkcs12 or application/x-pem-file.
    #[arg(long)]
    pub content_type: Option<String>,
    /// Validity in months (default: 12).
    #[arg(long)]
    pub validity_months: Option<u32>,
    /// Make a CA certificate (for a kvault issuer).
    #[arg(long)]
    pub ca: bool,
    /// A whole CertificatePolicy as JSON (overrides the flags above).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// KEY=VALUE (repeatable).
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    #[command(flatten)]
    pub conn: Connection,
}

// The arguments of `list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// List deleted certificates instead.
    #[arg(long)]
    pub deleted: bool,
    #[command(flatten)]
    pub conn: Connection,
}

// The arguments of `merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The certificate's name.
    pub name: String,
    /// The signed certificate and its chain (PEM or DER).
    #[arg(long)]
    pub file: PathBuf,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Issue a certificate (self-signed, through an issuer, or pending a merge).
    Create(CreateArgs),
    /// Import a PFX or PEM file (certificate and private key).
    Import {
        /// The certificate's name.
        name: String,
        /// The PFX (PKCS #12) or PEM file.
        #[arg(long)]
        file: PathBuf,
        /// The PFX password.
        #[arg(long, env = "KVAULT_PFX_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show a certificate; with --out, write cert.pem, chain.pem and key.pem there.
    Get {
        /// The certificate's name.
        name: String,
        /// A version (default: the latest).
        #[arg(long)]
        version: Option<String>,
        /// A directory to write cert.pem, chain.pem and key.pem (mode 0600) to.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List certificates (names and expiry), or --deleted ones.
    List(ListArgs),
    /// List a certificate's versions.
    Versions {
        /// The certificate's name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Enable or disable a version, or replace its tags.
    Update {
        /// The certificate's name.
        name: String,
        /// The version to change (default: the latest).
        #[arg(long)]
        version: Option<String>,
        /// Enable (true) or disable (false) the version.
        #[arg(long)]
        enabled: Option<bool>,
        /// KEY=VALUE (repeatable; replaces all tags).
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        #[command(flatten)]
        conn: Connection,
    },
    #[command(flatten)]
    Lifecycle(Lifecycle),
    /// Complete a pending (issuer Unknown) certificate with the signed certificate (PEM or DER).
    Merge(MergeArgs),
    /// Show the pending operation (and its CSR).
    Pending {
        /// The certificate's name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show the policy, or replace parts of it with --set FILE (JSON).
    Policy {
        /// The certificate's name.
        name: String,
        /// A JSON CertificatePolicy whose members replace the current ones.
        #[arg(long)]
        set: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Create or replace an issuer (provider "kvault": --account-id names a CA certificate).
    IssuerSet {
        /// The issuer's name.
        name: String,
        /// The issuer provider ("kvault": a CA certificate in this vault).
        #[arg(long)]
        provider: String,
        /// The provider's account (for "kvault": the CA certificate's name).
        #[arg(long)]
        account_id: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show an issuer.
    IssuerGet {
        /// The issuer's name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// List the issuers.
    IssuerList {
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete an issuer.
    IssuerDelete {
        /// The issuer's name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Set the certificate contacts (repeat --email), show them, or --delete them.
    Contacts {
        /// A contact's e-mail address (repeatable; replaces the list).
        #[arg(long = "email")]
        emails: Vec<String>,
        /// Delete all contacts.
        #[arg(long)]
        delete: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

pub(crate) fn print_cert(b: &CertificateBundle, _: Output) -> anyhow::Result<()> {
    let subject = b
        .policy
        .as_ref()
        .and_then(|p| p.x509_props.as_ref())
        .and_then(|x| x.subject.clone());
    print_record(
        b,
        &[
            ("id", Some(b.id.clone())),
            ("x5t", Some(b.x5t.clone().unwrap_or_default())),
            (
                "enabled",
                Some(b.attributes.enabled.unwrap_or(true).to_string()),
            ),
            (
                "valid",
                Some(format!(
                    "{} .. {}",
                    time(b.attributes.nbf),
                    time(b.attributes.exp)
                )),
            ),
            ("subject", subject),
        ],
    )
}

fn read_json<T: serde::de::DeserializeOwned>(path: &PathBuf) -> anyhow::Result<T> {
    let text =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes cert.pem, chain.pem and (when the secret holds it) key.pem, owner-only.
async fn write_out(
    conn: &Connection,
    name: &str,
    version: Option<&str>,
    dir: &PathBuf,
) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let c = conn.client()?;
    let secret = c.get_secret(name, version).await?;
    let value = zeroize::Zeroizing::new(secret.value.unwrap_or_default());
    let imported = if secret.content_type.as_deref() == Some(crate::wire::certificates::PEM) {
        crate::crypto::x509::import_pem(value.as_bytes())
    } else {
        let der = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD.decode(value.trim())?,
        );
        crate::crypto::x509::import_pfx(&der, "")
    }
    .map_err(|e| anyhow::anyhow!("the certificate's secret cannot be read: {e}"))?;
    std::fs::create_dir_all(dir)?;
    let write = |file: &str, text: &str, mode: u32| -> anyhow::Result<()> {
        let p = dir.join(file);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&p)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?;
        f.write_all(text.as_bytes())?;
        Ok(())
    };
    write(
        "cert.pem",
        &crate::crypto::x509::pem_bundle(None, imported.chain.get(..1).unwrap_or_default()),
        0o644,
    )?;
    write(
        "chain.pem",
        &crate::crypto::x509::pem_bundle(None, &imported.chain),
        0o644,
    )?;
    if let Some(pkcs8) = imported.key.pkcs8() {
        write(
            "key.pem",
            &crate::crypto::pem::encode("PRIVATE KEY", pkcs8),
            0o600,
        )?;
    }
    eprintln!("wrote cert.pem, chain.pem and key.pem to {}", dir.display());
    Ok(())
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let CreateArgs {
        name,
        subject,
        dns,
        issuer,
        kty,
        size,
        curve,
        content_type,
        validity_months,
        ca,
        policy,
        tags: t,
        conn,
    } = args;
    let policy = match policy {
        Some(p) => read_json::<CertificatePolicy>(&p)?,
        None => CertificatePolicy {
            key_props: Some(KeyProperties {
                kty: Some(kty),
                key_size: size,
                crv: curve,
                ..Default::default()
            }),
            secret_props: content_type.map(|c| SecretProperties {
                content_type: Some(c),
            }),
            x509_props: Some(X509Properties {
                subject,
                sans: (!dns.is_empty()).then(|| SubjectAlternativeNames {
                    dns_names: Some(dns),
                    ..Default::default()
                }),
                validity_months,
                key_usage: ca.then(|| {
                    vec![
                        "keyCertSign".into(),
                        "cRLSign".into(),
                        "digitalSignature".into(),
                    ]
                }),
                basic_constraints: ca.then_some(BasicConstraints { ca: true }),
                ..Default::default()
            }),
            issuer: Some(IssuerParameters {
                name: Some(issuer),
                ..Default::default()
            }),
            ..Default::default()
        },
    };
    let c = conn.client()?;
    let op = c
        .create_certificate(
            &name,
            &CertificateCreateParameters {
                policy: Some(policy),
                tags: tags(t),
                ..Default::default()
            },
        )
        .await?;
    let op = if op.csr.is_some() {
        op
    } else {
        c.get_certificate_operation(&name).await?
    };
    if conn.output.structured() {
        return print_json(&op);
    }
    outln!("certificate {name}: {}", op.status)?;
    if let Some(csr) = &op.csr {
        outln!(
            "{}",
            crate::crypto::pem::encode(
                "CERTIFICATE REQUEST",
                &base64::engine::general_purpose::STANDARD.decode(csr)?
            )
            .as_str()
        )?;
    }
    Ok(())
}

async fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let MergeArgs { name, file, conn } = args;
    let bytes =
        std::fs::read(&file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
    let ders: Vec<Vec<u8>> = if bytes.starts_with(b"-----BEGIN") {
        rustls::pki_types::CertificateDer::pem_slice_iter(&bytes)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|_| anyhow::anyhow!("{} is not PEM", file.display()))?
    } else {
        vec![bytes]
    };
    let x5c = ders
        .iter()
        .map(|d| base64::engine::general_purpose::STANDARD.encode(d))
        .collect();
    let b = conn
        .client()?
        .merge_certificate(
            &name,
            &CertificateMergeParameters {
                x5c,
                ..Default::default()
            },
        )
        .await?;
    print_cert(&b, conn.output)
}

pub async fn run(cmd: CertCommand) -> anyhow::Result<()> {
    match cmd {
        CertCommand::Create(args) => create(args).await,
        CertCommand::Import {
            name,
            file,
            password,
            conn,
        } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            let b = conn
                .client()?
                .import_certificate(
                    &name,
                    &CertificateImportParameters {
                        value: base64::engine::general_purpose::STANDARD.encode(&bytes),
                        pwd: password,
                        ..Default::default()
                    },
                )
                .await?;
            print_cert(&b, conn.output)
        }
        CertCommand::Get {
            name,
            version,
            out,
            conn,
        } => {
            let b = conn
                .client()?
                .get_certificate(&name, version.as_deref())
                .await?;
            if let Some(dir) = out {
                write_out(&conn, &name, version.as_deref(), &dir).await?;
            }
            print_cert(&b, conn.output)
        }
        CertCommand::List(ListArgs { deleted, conn }) => {
            lifecycle::list::<Certificates>(deleted, &conn).await
        }
        CertCommand::Versions { name, conn } => {
            let items = conn.client()?.list_certificate_versions(&name).await?;
            print_list(
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
            )
        }
        CertCommand::Update {
            name,
            version,
            enabled,
            tags: t,
            conn,
        } => {
            let b = conn
                .client()?
                .update_certificate(
                    &name,
                    version.as_deref(),
                    &CertificateUpdateParameters {
                        attributes: enabled.map(|e| CertificateAttributes {
                            enabled: Some(e),
                            ..Default::default()
                        }),
                        tags: tags(t),
                        policy: None,
                    },
                )
                .await?;
            print_cert(&b, conn.output)
        }
        CertCommand::Lifecycle(cmd) => lifecycle::run::<Certificates>(cmd).await,
        CertCommand::Merge(args) => merge(args).await,
        CertCommand::Pending { name, conn } => {
            print_json(&conn.client()?.get_certificate_operation(&name).await?)
        }
        CertCommand::Policy { name, set, conn } => {
            let c = conn.client()?;
            let p = match set {
                Some(f) => c.update_certificate_policy(&name, &read_json(&f)?).await?,
                None => c.get_certificate_policy(&name).await?,
            };
            print_json(&p)
        }
        CertCommand::IssuerSet {
            name,
            provider,
            account_id,
            conn,
        } => {
            let b = conn
                .client()?
                .set_certificate_issuer(
                    &name,
                    &IssuerBundle {
                        provider: Some(provider),
                        credentials: account_id.map(|a| IssuerCredentials {
                            account_id: Some(a),
                            pwd: None,
                        }),
                        ..Default::default()
                    },
                )
                .await?;
            print_json(&b)
        }
        CertCommand::IssuerGet { name, conn } => {
            print_json(&conn.client()?.get_certificate_issuer(&name).await?)
        }
        CertCommand::IssuerList { conn } => {
            print_json(&conn.client()?.list_certificate_issuers().await?)
        }
        CertCommand::IssuerDelete { name, conn } => {
            print_json(&conn.client()?.delete_certificate_issuer(&name).await?)
        }
        CertCommand::Contacts {
            emails,
            delete,
            conn,
        } => {
            let c = conn.client()?;
            let r = if delete {
                c.delete_certificate_contacts().await?
            } else if emails.is_empty() {
                c.get_certificate_contacts().await?
            } else {
                c.set_certificate_contacts(&Contacts {
                    id: None,
                    contacts: emails
                        .into_iter()
                        .map(|e| Contact {
                            email: Some(e),
                            name: None,
                            phone: None,
                        })
                        .collect(),
                })
                .await?
            };
            print_json(&r)
        }
    }
}

pub(crate) struct Certificates;

impl Family for Certificates {
    type Bundle = CertificateBundle;
    type Deleted = DeletedCertificateBundle;
    type Item = CertificateItem;
    type DeletedItem = DeletedCertificateItem;
    const NOUN: &'static str = "certificate";
    const COLUMNS: &'static [Column<CertificateItem>] = &[
        ("name", |i| ObjectId::name_of(&i.id).to_string()),
        ("enabled", |i| {
            i.attributes.enabled.unwrap_or(true).to_string()
        }),
        ("updated", |i| time(i.attributes.updated)),
        ("expires", |i| time(i.attributes.exp)),
    ];

    async fn list(c: &VaultClient) -> Result<Vec<CertificateItem>, ClientError> {
        c.list_certificates().await
    }
    async fn list_deleted(c: &VaultClient) -> Result<Vec<DeletedCertificateItem>, ClientError> {
        c.list_deleted_certificates().await
    }
    fn deleted_item(d: &DeletedCertificateItem) -> (&str, &DeletionInfo) {
        (&d.item.id, &d.deletion)
    }
    const DELETES_ALSO: &'static str = " (with its key and secret)";
    const PURGE_NOTE_ALWAYS: bool = true;

    async fn delete(c: &VaultClient, name: &str) -> Result<Self::Deleted, ClientError> {
        c.delete_certificate(name).await
    }
    async fn recover(c: &VaultClient, name: &str) -> Result<Self::Bundle, ClientError> {
        c.recover_deleted_certificate(name).await
    }
    async fn purge(c: &VaultClient, name: &str) -> Result<(), ClientError> {
        c.purge_deleted_certificate(name).await
    }
    async fn backup(c: &VaultClient, name: &str) -> Result<String, ClientError> {
        c.backup_certificate(name).await
    }
    async fn restore(c: &VaultClient, blob: &str) -> Result<Self::Bundle, ClientError> {
        c.restore_certificate(blob).await
    }
    fn deletion(d: &Self::Deleted) -> &DeletionInfo {
        &d.deletion
    }
    fn print(b: &Self::Bundle, _: Option<&str>, output: Output) -> anyhow::Result<()> {
        print_cert(b, output)
    }
}
