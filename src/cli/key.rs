//! `kvault key …`: the keys API for people. Binary inputs and outputs are base64url, as on
//! the wire; `--file` reads raw bytes instead.

use super::common::{
    Column, Connection, Output, outln, parse_tag, parse_time, print_json, print_list, print_record,
    tags, time,
};
use super::lifecycle::{self, Family, Lifecycle};
use crate::client::{ClientError, VaultClient};
use crate::wire::ObjectId;
use crate::wire::{DeletedKeyBundle, DeletedKeyItem, DeletionInfo, KeyItem};
use crate::wire::{
    JsonWebKey, KeyAttributes, KeyBundle, KeyCreateParameters, KeyImportParameters,
    KeyOperationsParameters, KeyRotationPolicy, KeySignParameters, KeyUpdateParameters,
    KeyVerifyParameters, b64url,
};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct Input {
    /// The input, base64url.
    #[arg(long)]
    value: Option<String>,
    /// Read the input as raw bytes from a file.
    #[arg(long)]
    file: Option<PathBuf>,
}

impl Input {
    fn bytes(&self) -> anyhow::Result<Vec<u8>> {
        match (&self.value, &self.file) {
            (Some(v), None) => crate::wire::from_b64url(v)
                .ok_or_else(|| anyhow::anyhow!("--value is not base64url")),
            (None, Some(f)) => {
                std::fs::read(f).map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))
            }
            _ => anyhow::bail!("give exactly one of --value (base64url) or --file"),
        }
    }
}

// The arguments of `create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The key's name.
    pub name: String,
    /// RSA, EC or oct.
    #[arg(long, default_value = "RSA")]
    pub kty: String,
    /// RSA: 2048, 3072, 4096; oct: 128, 192, 256.
    #[arg(long)]
    pub size: Option<u32>,
    /// EC: P-256, P-384, P-521, P-256K.
    #[arg(long)]
    pub curve: Option<String>,
    /// Permitted operations (repeatable): encrypt, decrypt, sign, verify, wrapKey, unwrapKey.
    #[arg(long = "op")]
    pub ops: Vec<String>,
    /// KEY=VALUE (repeatable).
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Expires at: RFC 3339 (2030-01-31T12:00:00Z), a date (midnight UTC), a duration
    /// from now (90d, 12h, 30m) or Unix seconds.
    #[arg(long, value_parser = parse_time)]
    pub exp: Option<i64>,
    #[command(flatten)]
    pub conn: Connection,
}

// The arguments of `list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// List deleted keys instead.
    #[arg(long)]
    pub deleted: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key (a new version if the name exists).
    Create(CreateArgs),
    /// Import a JSON Web Key (with its private members) from a file.
    Import {
        /// The key's name.
        name: String,
        /// The JSON Web Key file (with its private members).
        #[arg(long)]
        jwk: PathBuf,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show a key (public members only).
    Get {
        /// The key's name.
        name: String,
        /// A version (default: the latest).
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List keys (names and attributes), or --deleted ones.
    List(ListArgs),
    /// List a key's versions.
    Versions {
        /// The key's name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change a version's attributes, operations or tags.
    Update {
        /// The key's name.
        name: String,
        /// The version to change (default: the latest).
        #[arg(long)]
        version: Option<String>,
        /// Enable (true) or disable (false) the version.
        #[arg(long)]
        enabled: Option<bool>,
        /// Expires at: RFC 3339 (2030-01-31T12:00:00Z), a date (midnight UTC), a duration
        /// from now (90d, 12h, 30m) or Unix seconds.
        #[arg(long, value_parser = parse_time)]
        exp: Option<i64>,
        /// Not valid before: RFC 3339 (2030-01-31T12:00:00Z), a date (midnight UTC), a
        /// duration from now (90d, 12h, 30m) or Unix seconds.
        #[arg(long, value_parser = parse_time)]
        nbf: Option<i64>,
        /// Permitted operations (repeatable; replaces them all).
        #[arg(long = "op")]
        ops: Vec<String>,
        /// KEY=VALUE (repeatable; replaces all tags).
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        #[command(flatten)]
        conn: Connection,
    },
    #[command(flatten)]
    Lifecycle(Lifecycle),
    /// Make a new version with the same type, size and operations.
    Rotate {
        /// The key's name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show the rotation policy.
    RotationPolicy {
        /// The key's name.
        name: String,
        /// Replace it with this JSON file (KeyRotationPolicy).
        #[arg(long)]
        set: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Encrypt --value (base64url) or --file with a key; prints the ciphertext (base64url).
    Encrypt(CryptoArgs),
    /// Decrypt --value (base64url) or --file with a key; prints the plaintext (base64url).
    Decrypt(CryptoArgs),
    /// Wrap a key (--value base64url, or --file) with this key; prints the wrapped key.
    Wrap(CryptoArgs),
    /// Unwrap a wrapped key (--value base64url, or --file); prints the key (base64url).
    Unwrap(CryptoArgs),
    /// Sign a digest (or a file, hashed here with the algorithm's SHA-2).
    Sign {
        /// The key's name.
        name: String,
        /// A version (default: the latest).
        #[arg(long)]
        version: Option<String>,
        /// Signature algorithm: RS256…RS512, PS256…PS512, ES256, ES384, ES512, ES256K.
        #[arg(long)]
        alg: String,
        #[command(flatten)]
        input: DigestInput,
        #[command(flatten)]
        conn: Connection,
    },
    /// Verify a signature over a digest (or a file).
    Verify {
        /// The key's name.
        name: String,
        /// A version (default: the latest).
        #[arg(long)]
        version: Option<String>,
        /// Signature algorithm (as for sign).
        #[arg(long)]
        alg: String,
        #[command(flatten)]
        input: DigestInput,
        /// The signature, base64url.
        #[arg(long)]
        signature: String,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Args)]
pub struct CryptoArgs {
    /// The key's name.
    name: String,
    /// A version (default: the latest).
    #[arg(long)]
    version: Option<String>,
    /// Algorithm: RSA-OAEP, RSA-OAEP-256, RSA1_5; A128GCM…A256GCM, A128CBC…A256CBCPAD; A128KW…A256KW.
    #[arg(long)]
    alg: String,
    #[command(flatten)]
    input: Input,
    /// base64url (AES modes).
    #[arg(long)]
    iv: Option<String>,
    /// base64url additional authenticated data (AES-GCM).
    #[arg(long)]
    aad: Option<String>,
    /// base64url authentication tag (AES-GCM decrypt).
    #[arg(long)]
    tag: Option<String>,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Clone, Args)]
pub struct DigestInput {
    /// The digest, base64url.
    #[arg(long)]
    digest: Option<String>,
    /// A file to hash with the algorithm's digest.
    #[arg(long)]
    file: Option<PathBuf>,
}

impl DigestInput {
    fn digest(&self, alg: &str) -> anyhow::Result<String> {
        match (&self.digest, &self.file) {
            (Some(d), None) => Ok(d.clone()),
            (None, Some(f)) => {
                let data = std::fs::read(f)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?;
                let algorithm = match &alg[alg.len().saturating_sub(3)..] {
                    "256" | "56K" => &aws_lc_rs::digest::SHA256,
                    "384" => &aws_lc_rs::digest::SHA384,
                    "512" => &aws_lc_rs::digest::SHA512,
                    _ => anyhow::bail!("cannot tell the digest of algorithm {alg}"),
                };
                Ok(b64url(aws_lc_rs::digest::digest(algorithm, &data).as_ref()))
            }
            _ => anyhow::bail!("give exactly one of --digest (base64url) or --file"),
        }
    }
}

pub(crate) fn print_key(b: &KeyBundle, _: Output) -> anyhow::Result<()> {
    print_record(
        b,
        &[
            ("kid", Some(b.key.kid.clone().unwrap_or_default())),
            ("kty", Some(b.key.kty.clone().unwrap_or_default())),
            ("curve", b.key.crv.clone()),
            (
                "operations",
                Some(b.key.key_ops.clone().unwrap_or_default().join(", ")),
            ),
            (
                "enabled",
                Some(b.attributes.enabled.unwrap_or(true).to_string()),
            ),
            ("created", Some(time(b.attributes.created))),
            ("expires", b.attributes.exp.map(|e| time(Some(e)))),
        ],
    )
}

fn ops(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

async fn crypto(op: &str, a: CryptoArgs) -> anyhow::Result<()> {
    let params = KeyOperationsParameters {
        alg: a.alg.clone(),
        value: b64url(&a.input.bytes()?),
        iv: a.iv.clone(),
        aad: a.aad.clone(),
        tag: a.tag.clone(),
    };
    let r = a
        .conn
        .client()?
        .key_operation(&a.name, a.version.as_deref(), op, &params)
        .await?;
    if a.conn.output.structured() {
        return print_json(&r);
    }
    outln!("{}", r.value)?;
    if let Some(iv) = &r.iv {
        eprintln!("iv:  {iv}");
    }
    if let Some(tag) = &r.tag {
        eprintln!("tag: {tag}");
    }
    Ok(())
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let CreateArgs {
        name,
        kty,
        size,
        curve,
        ops: o,
        tags: t,
        exp,
        conn,
    } = args;
    let params = KeyCreateParameters {
        kty,
        key_size: size,
        crv: curve,
        key_ops: ops(o),
        tags: tags(t),
        attributes: exp.map(|e| KeyAttributes {
            exp: Some(e),
            ..Default::default()
        }),
        ..Default::default()
    };
    let b = conn.client()?.create_key(&name, &params).await?;
    print_key(&b, conn.output)
}

pub async fn run(cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Create(args) => create(args).await,
        KeyCommand::Import { name, jwk, conn } => {
            let text = std::fs::read(&jwk)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", jwk.display()))?;
            let key: JsonWebKey = serde_json::from_slice(&text)
                .map_err(|e| anyhow::anyhow!("{} is not a JSON Web Key: {e}", jwk.display()))?;
            let b = conn
                .client()?
                .import_key(
                    &name,
                    &KeyImportParameters {
                        key,
                        ..Default::default()
                    },
                )
                .await?;
            print_key(&b, conn.output)
        }
        KeyCommand::Get {
            name,
            version,
            conn,
        } => {
            let b = conn.client()?.get_key(&name, version.as_deref()).await?;
            print_key(&b, conn.output)
        }
        KeyCommand::List(ListArgs { deleted, conn }) => {
            lifecycle::list::<Keys>(deleted, &conn).await
        }
        KeyCommand::Versions { name, conn } => {
            let items = conn.client()?.list_key_versions(&name).await?;
            print_list(
                &items,
                &[
                    ("version", |i| {
                        ObjectId::version_of(&i.kid).unwrap_or("-").to_string()
                    }),
                    ("enabled", |i| {
                        i.attributes.enabled.unwrap_or(true).to_string()
                    }),
                    ("created", |i| time(i.attributes.created)),
                    ("expires", |i| time(i.attributes.exp)),
                ],
            )
        }
        KeyCommand::Update {
            name,
            version,
            enabled,
            exp,
            nbf,
            ops: o,
            tags: t,
            conn,
        } => {
            let params = KeyUpdateParameters {
                key_ops: ops(o),
                tags: tags(t),
                attributes: (enabled.is_some() || exp.is_some() || nbf.is_some()).then(|| {
                    KeyAttributes {
                        enabled,
                        exp,
                        nbf,
                        ..Default::default()
                    }
                }),
                release_policy: None,
            };
            let b = conn
                .client()?
                .update_key(&name, version.as_deref(), &params)
                .await?;
            print_key(&b, conn.output)
        }
        KeyCommand::Lifecycle(cmd) => lifecycle::run::<Keys>(cmd).await,
        KeyCommand::Rotate { name, conn } => {
            let b = conn.client()?.rotate_key(&name).await?;
            print_key(&b, conn.output)
        }
        KeyCommand::RotationPolicy { name, set, conn } => {
            let c = conn.client()?;
            let policy = match set {
                Some(f) => {
                    let text = std::fs::read(&f)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?;
                    let p: KeyRotationPolicy = serde_json::from_slice(&text).map_err(|e| {
                        anyhow::anyhow!("{} is not a rotation policy: {e}", f.display())
                    })?;
                    c.set_rotation_policy(&name, &p).await?
                }
                None => c.get_rotation_policy(&name).await?,
            };
            print_json(&policy)
        }
        KeyCommand::Encrypt(a) => crypto("encrypt", a).await,
        KeyCommand::Decrypt(a) => crypto("decrypt", a).await,
        KeyCommand::Wrap(a) => crypto("wrapkey", a).await,
        KeyCommand::Unwrap(a) => crypto("unwrapkey", a).await,
        KeyCommand::Sign {
            name,
            version,
            alg,
            input,
            conn,
        } => {
            let value = input.digest(&alg)?;
            let r = conn
                .client()?
                .sign(&name, version.as_deref(), &KeySignParameters { alg, value })
                .await?;
            if conn.output.structured() {
                return print_json(&r);
            }
            outln!("{}", r.value)?;
            Ok(())
        }
        KeyCommand::Verify {
            name,
            version,
            alg,
            input,
            signature,
            conn,
        } => {
            let digest = input.digest(&alg)?;
            let ok = conn
                .client()?
                .verify(
                    &name,
                    version.as_deref(),
                    &KeyVerifyParameters {
                        alg,
                        digest,
                        value: signature,
                    },
                )
                .await?;
            if conn.output.structured() {
                return print_json(&serde_json::json!({ "value": ok }));
            }
            outln!("{}", if ok { "valid" } else { "INVALID" })?;
            if ok {
                Ok(())
            } else {
                Err(super::exit::Negative("the signature does not verify").into())
            }
        }
    }
}

pub(crate) struct Keys;

impl Family for Keys {
    type Bundle = KeyBundle;
    type Deleted = DeletedKeyBundle;
    type Item = KeyItem;
    type DeletedItem = DeletedKeyItem;
    const NOUN: &'static str = "key";
    const COLUMNS: &'static [Column<KeyItem>] = &[
        ("name", |i| ObjectId::name_of(&i.kid).to_string()),
        ("enabled", |i| {
            i.attributes.enabled.unwrap_or(true).to_string()
        }),
        ("updated", |i| time(i.attributes.updated)),
        ("expires", |i| time(i.attributes.exp)),
    ];

    async fn list(c: &VaultClient) -> Result<Vec<KeyItem>, ClientError> {
        c.list_keys().await
    }
    async fn list_deleted(c: &VaultClient) -> Result<Vec<DeletedKeyItem>, ClientError> {
        c.list_deleted_keys().await
    }
    fn deleted_item(d: &DeletedKeyItem) -> (&str, &DeletionInfo) {
        (&d.item.kid, &d.deletion)
    }

    async fn delete(c: &VaultClient, name: &str) -> Result<Self::Deleted, ClientError> {
        c.delete_key(name).await
    }
    async fn recover(c: &VaultClient, name: &str) -> Result<Self::Bundle, ClientError> {
        c.recover_deleted_key(name).await
    }
    async fn purge(c: &VaultClient, name: &str) -> Result<(), ClientError> {
        c.purge_deleted_key(name).await
    }
    async fn backup(c: &VaultClient, name: &str) -> Result<String, ClientError> {
        c.backup_key(name).await
    }
    async fn restore(c: &VaultClient, blob: &str) -> Result<Self::Bundle, ClientError> {
        c.restore_key(blob).await
    }
    fn deletion(d: &Self::Deleted) -> &DeletionInfo {
        &d.deletion
    }
    fn print(b: &Self::Bundle, _: Option<&str>, output: Output) -> anyhow::Result<()> {
        print_key(b, output)
    }
}
