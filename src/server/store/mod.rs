//! Storage: a raw key-value [`Backend`] (embedded redb today, PostgreSQL later) under a
//! [`VaultStore`] that seals every record and maps object identities to opaque keys.
//!
//! Layout (all values sealed with AES-256-GCM, the storage key as associated data):
//! - `m/data-key`: the per-vault data key, wrapped by the master key (not sealed twice);
//! - `h ‖ kind ‖ HMAC(name)`: an object's head — display name, versions' metadata, deletion;
//! - `v ‖ kind ‖ HMAC(name) ‖ version`: one version's value (a secret value, key material);
//! - `l ‖ kind ‖ state ‖ HMAC(name)` (empty value): the listing index, one entry per object
//!   in its listing (`l` live, `d` deleted), written in the same batch as the head. A page of
//!   a listing is one bounded range read of the index after a cursor, in HMAC order;
//! - `m/schema`: the layout's version ([`SCHEMA_VERSION`]); older layouts are migrated in
//!   place when the vault opens ([`VaultStore::open`]).
//!
//! Names are lower-cased before the HMAC (object names are case-insensitive), and nothing
//! in the database reveals a name, a value, or which value belongs to which name.

pub mod postgres;
pub mod record;
pub mod redb;

pub use record::{CertificateState, Deleted, Head, Kind, PendingOperation, RotationState, Version};

use crate::crypto::seal::DataKeyMaterial;
use crate::crypto::{CryptoError, MasterKey, SealKey};
use async_trait::async_trait;
use aws_lc_rs::hmac;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed at `what` (opening the file, encoding a record, a query); the
    /// backend's own error is kept as the source.
    #[error("storage backend failed: {}", crate::error_chain::with_cause(.what, .source.as_ref()))]
    Backend {
        what: String,
        #[source]
        source: Option<crate::error_chain::BoxError>,
    },
    #[error("storage backend is unavailable: {0}")]
    Unavailable(String),
    /// A record failed authentication or does not match where it is stored.
    #[error("stored record failed its integrity check: {0}")]
    Integrity(String),
    /// A conditional write lost a race; the caller re-reads and retries.
    #[error("concurrent modification")]
    Conflict,
    #[error(
        "the master key does not open this vault's data (wrong master key for this data directory)"
    )]
    MasterKeyMismatch,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl StoreError {
    /// The backend failed at `what`, for the reason `source`.
    pub fn backend(
        what: impl Into<String>,
        source: impl Into<crate::error_chain::BoxError>,
    ) -> Self {
        Self::Backend {
            what: what.into(),
            source: Some(source.into()),
        }
    }
    /// The backend failed at `what`, for a reason of its own.
    pub fn backend_msg(what: impl Into<String>) -> Self {
        Self::Backend {
            what: what.into(),
            source: None,
        }
    }
}

/// One write in an atomic batch.
#[derive(Debug, Clone)]
pub enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    DeletePrefix(Vec<u8>),
}

/// An atomic, conditional write: every `expect` must still hold (`None` = key absent), then
/// every op applies, all or nothing, durably before `commit` returns.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub expect: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub ops: Vec<Op>,
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// All pairs whose key starts with `prefix`, in key order.
    async fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>;
    /// At most `limit` pairs whose key starts with `prefix` and sorts after `after` (all of
    /// the prefix for `None`), in key order: one page of an ordered index. The default reads
    /// the whole prefix; backends answer it with a bounded range read.
    async fn scan_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let mut rows = self.scan(prefix).await?;
        if let Some(after) = after {
            rows.retain(|(k, _)| k.as_slice() > after);
        }
        rows.truncate(limit);
        Ok(rows)
    }
    /// The values of `keys`, in their order (`None` where absent).
    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.get(k).await?);
        }
        Ok(out)
    }
    /// Applies the batch atomically; `StoreError::Conflict` when an expectation failed.
    async fn commit(&self, batch: Batch) -> Result<(), StoreError>;
    /// Whether this process holds the vault's background-job lease now (purge sweeper,
    /// rotation, renewal, notifications run on exactly one replica). A backend that only one
    /// process can open always holds it.
    async fn holds_job_lease(&self) -> bool {
        true
    }
    /// Changes committed by other processes sharing this storage (`None`: nobody else
    /// writes it, so the server's in-memory state cannot go stale).
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<ChangeNotice>> {
        None
    }
}

/// What another replica changed, as far as this one needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeNotice {
    /// Records whose keys start with one of these (a vault record's key up to its last
    /// `/`, e.g. `m/policy` or `m/ev/o/`, or `hk` for key heads).
    Topics(Vec<Vec<u8>>),
    /// Notices may have been lost (a reconnect): assume everything changed.
    Everything,
}

impl ChangeNotice {
    /// Whether a change of records under `prefix` may be part of this notice.
    pub fn touches(&self, prefix: &[u8]) -> bool {
        match self {
            ChangeNotice::Everything => true,
            ChangeNotice::Topics(t) => t
                .iter()
                .any(|topic| prefix.starts_with(topic) || topic.starts_with(prefix)),
        }
    }
}

const DATA_KEY: &[u8] = b"m/data-key";

/// The layout this build writes: 1 = heads and values only (kvault ≤ 0.1 main), 2 = with
/// the listing index.
pub const SCHEMA_VERSION: u32 = 2;
const SCHEMA_RECORD: &str = "schema";
/// Heads indexed per batch while migrating (bounded memory, one commit each).
const MIGRATION_CHUNK: usize = 256;
/// The index entry's state byte.
const LISTED_LIVE: u8 = b'l';
const LISTED_DELETED: u8 = b'd';

/// One page of a listing: the objects, and where the next page starts (`None`: the last).
pub struct HeadPage<M> {
    pub heads: Vec<Head<M>>,
    pub next: Option<Vec<u8>>,
}

/// The part of a head the migration needs.
#[derive(serde::Deserialize)]
struct HeadState {
    name: String,
    #[serde(default)]
    deleted: Option<Deleted>,
}

/// Waits a random time before retry `attempt` of a write that lost a race (up to 2^attempt
/// ms, 64 ms at most): writers on several replicas collide again if they retry in step.
/// Every read-decide-write loop calls it on `StoreError::Conflict`.
pub async fn after_conflict(attempt: usize) {
    let cap_us = 1000u64 << attempt.min(6);
    let mut b = [0u8; 8];
    let r = aws_lc_rs::rand::fill(&mut b)
        .map(|_| u64::from_le_bytes(b))
        .unwrap_or(cap_us / 2);
    tokio::time::sleep(std::time::Duration::from_micros(r % cap_us)).await;
}

const MAX_RETRIES: usize = 32;

/// What a modification of one object does.
// A `Change` lives for one write and is moved once; boxing the head would only add an
// allocation per write.
#[allow(clippy::large_enum_variant)]
pub enum Change<M> {
    /// Nothing to write.
    Keep,
    /// Write the head and these new version values.
    Put {
        head: Head<M>,
        values: Vec<(String, Zeroizing<Vec<u8>>)>,
    },
    /// Remove the object and all its versions for good.
    Purge,
}

/// The sealed view of one vault's records.
pub struct VaultStore {
    backend: Arc<dyn Backend>,
    records: SealKey,
    names: hmac::Key,
    backup: SealKey,
    /// Writers of one object in this process take turns ([`modify`](Self::modify)), by
    /// stripe of the name's HMAC: with group commit, writers racing on one object would
    /// otherwise mostly lose to each other and spin through their retries. Other replicas
    /// are still met by the conditional write.
    write_turns: Vec<tokio::sync::Mutex<()>>,
}

const WRITE_STRIPES: usize = 256;

impl VaultStore {
    /// Opens the vault's data, creating its data key on first use. Fails with
    /// [`StoreError::MasterKeyMismatch`] when `master` did not create this data.
    pub async fn open(backend: Arc<dyn Backend>, master: &MasterKey) -> Result<Self, StoreError> {
        let data_key = match backend.get(DATA_KEY).await? {
            Some(wrapped) => master
                .unwrap_data_key(&wrapped)
                .map_err(|_| StoreError::MasterKeyMismatch)?,
            None => {
                let dk = DataKeyMaterial::generate()?;
                let wrapped = master.wrap_data_key(&dk)?;
                let batch = Batch {
                    expect: vec![(DATA_KEY.to_vec(), None)],
                    ops: vec![Op::Put(DATA_KEY.to_vec(), wrapped)],
                };
                match backend.commit(batch).await {
                    Ok(()) => dk,
                    // Another replica initialised the vault first: use its key.
                    Err(StoreError::Conflict) => {
                        let wrapped = backend.get(DATA_KEY).await?.ok_or_else(|| {
                            StoreError::Integrity("data key vanished during initialisation".into())
                        })?;
                        master
                            .unwrap_data_key(&wrapped)
                            .map_err(|_| StoreError::MasterKeyMismatch)?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let store = Self {
            backend,
            records: data_key.record_key()?,
            names: data_key.name_key()?,
            backup: master.backup_key()?,
            write_turns: (0..WRITE_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The layout version the store is at (1 when it has no schema record).
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self.schema_record().await?.0)
    }

    async fn schema_record(&self) -> Result<(u32, Option<Vec<u8>>), StoreError> {
        match self.meta(SCHEMA_RECORD).await? {
            None => Ok((1, None)),
            Some((plain, raw)) => {
                let v = std::str::from_utf8(&plain)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok())
                    .ok_or_else(|| StoreError::Integrity("schema record is malformed".into()))?;
                Ok((v, Some(raw)))
            }
        }
    }

    /// Brings an older layout up to [`SCHEMA_VERSION`] in place. Crash-safe and resumable:
    /// it only adds index entries (idempotently, each batch conditional on the heads it
    /// read, so a concurrent writer on another replica is never overridden), and records the
    /// new version last; an interrupted migration runs again at the next open.
    async fn migrate(&self) -> Result<(), StoreError> {
        for _ in 0..MAX_RETRIES {
            let (version, raw) = self.schema_record().await?;
            if version > SCHEMA_VERSION {
                return Err(StoreError::backend_msg(format!(
                    "the vault's data is at layout version {version}, newer than this kvault knows ({SCHEMA_VERSION}); upgrade kvault"
                )));
            }
            if version == SCHEMA_VERSION {
                return Ok(());
            }
            // 1 → 2: index every object.
            let mut indexed = 0usize;
            for kind in [Kind::Secret, Kind::Key, Kind::Certificate] {
                indexed += self.build_index(kind).await?;
            }
            match self
                .put_meta(SCHEMA_RECORD, SCHEMA_VERSION.to_string().as_bytes(), raw)
                .await
            {
                Ok(()) => {
                    tracing::info!(
                        from = version,
                        to = SCHEMA_VERSION,
                        objects = indexed,
                        "storage layout migrated"
                    );
                    return Ok(());
                }
                // Another replica recorded a version meanwhile: look again.
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "the storage migration kept losing races".into(),
        ))
    }

    /// Writes the listing-index entry of every head of `kind`, a chunk per batch.
    async fn build_index(&self, kind: Kind) -> Result<usize, StoreError> {
        let prefix = [b'h', kind.tag()];
        let mut after: Option<Vec<u8>> = None;
        let mut count = 0;
        let mut attempt = 0;
        loop {
            let rows = self
                .backend
                .scan_page(&prefix, after.as_deref(), MIGRATION_CHUNK)
                .await?;
            let Some(last) = rows.last().map(|(k, _)| k.clone()) else {
                return Ok(count);
            };
            let mut batch = Batch::default();
            for (key, raw) in &rows {
                let plain = self
                    .records
                    .open(&Self::aad(key), raw)
                    .map_err(|_| StoreError::Integrity(format!("{} head record", kind.as_str())))?;
                let state: HeadState = serde_json::from_slice(&plain).map_err(|_| {
                    StoreError::Integrity(format!("{} head record is malformed", kind.as_str()))
                })?;
                if self.head_key(kind, &state.name) != *key {
                    return Err(StoreError::Integrity(format!(
                        "{} head record is stored under another name",
                        kind.as_str()
                    )));
                }
                batch.expect.push((key.clone(), Some(raw.clone())));
                self.index_ops(&mut batch, kind, &state.name, Some(state.deleted.is_some()));
            }
            match self.backend.commit(batch).await {
                Ok(()) => {
                    count += rows.len();
                    after = Some(last);
                    attempt = 0;
                }
                Err(StoreError::Conflict) if attempt < MAX_RETRIES => {
                    attempt += 1;
                    after_conflict(attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether this replica runs the vault's background jobs now (see
    /// [`Backend::holds_job_lease`]); every background loop asks before each pass.
    pub async fn holds_job_lease(&self) -> bool {
        self.backend.holds_job_lease().await
    }

    /// Changes made by other replicas (see [`Backend::changes`]).
    pub fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<ChangeNotice>> {
        self.backend.changes()
    }

    /// The key that seals backup blobs (derived from the master key, not the data key).
    pub fn backup_key(&self) -> &SealKey {
        &self.backup
    }

    fn name_mac(&self, name: &str) -> hmac::Tag {
        hmac::sign(&self.names, name.to_ascii_lowercase().as_bytes())
    }

    fn head_key(&self, kind: Kind, name: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(34);
        k.push(b'h');
        k.push(kind.tag());
        k.extend_from_slice(self.name_mac(name).as_ref());
        k
    }

    fn index_prefix(kind: Kind, deleted: bool) -> [u8; 3] {
        let state = if deleted { LISTED_DELETED } else { LISTED_LIVE };
        [b'l', kind.tag(), state]
    }

    fn index_key(&self, kind: Kind, deleted: bool, name: &str) -> Vec<u8> {
        let mut k = Self::index_prefix(kind, deleted).to_vec();
        k.extend_from_slice(self.name_mac(name).as_ref());
        k
    }

    /// The index writes that go with a head write: listed as live or deleted
    /// (`Some(deleted)`), or not at all (`None`, a purge).
    fn index_ops(&self, batch: &mut Batch, kind: Kind, name: &str, listed: Option<bool>) {
        for deleted in [false, true] {
            let key = self.index_key(kind, deleted, name);
            if listed == Some(deleted) {
                batch.ops.push(Op::Put(key, Vec::new()));
            } else {
                batch.ops.push(Op::Delete(key));
            }
        }
    }

    /// What a listing's cursor is bound to: the family and state (`versions = None`), or
    /// one object's versions.
    pub fn listing_id(&self, kind: Kind, deleted: bool, versions_of: Option<&str>) -> Vec<u8> {
        match versions_of {
            None => Self::index_prefix(kind, deleted).to_vec(),
            Some(name) => {
                let mut k = vec![b'v', kind.tag()];
                k.extend_from_slice(self.name_mac(name).as_ref());
                k
            }
        }
    }

    fn cursor_aad(listing: &[u8]) -> Vec<u8> {
        let mut a = b"kvault/v1/cursor/".to_vec();
        a.extend_from_slice(listing);
        a
    }

    /// A listing position, sealed for a `$skiptoken` (base64url): opaque to the client, and
    /// it opens only for the listing (and vault) it came from.
    pub fn seal_cursor(&self, listing: &[u8], position: &[u8]) -> Result<String, StoreError> {
        use base64::Engine;
        let sealed = self.records.seal(&Self::cursor_aad(listing), position)?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The position in a sealed cursor; `None` when it was tampered with, is foreign, or
    /// belongs to another listing.
    pub fn open_cursor(&self, listing: &[u8], token: &str) -> Option<Vec<u8>> {
        use base64::Engine;
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        self.records
            .open(&Self::cursor_aad(listing), &sealed)
            .ok()
            .map(|p| p.to_vec())
    }

    /// One page of a listing (live or deleted objects of `kind`), after `after` (a position
    /// an earlier page returned): at most `limit` objects, read through the index — one
    /// bounded range read and one read of the page's heads, whatever the vault holds.
    /// Objects appear in the order of their name's HMAC; each object that exists
    /// throughout a walk appears exactly once in it.
    pub async fn heads_page<M: DeserializeOwned>(
        &self,
        kind: Kind,
        deleted: bool,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<HeadPage<M>, StoreError> {
        let prefix = Self::index_prefix(kind, deleted);
        let after_key = after.map(|mac| {
            let mut k = prefix.to_vec();
            k.extend_from_slice(mac);
            k
        });
        let limit = limit.max(1);
        let mut rows = self
            .backend
            .scan_page(&prefix, after_key.as_deref(), limit + 1)
            .await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let macs: Vec<&[u8]> = rows
            .iter()
            .filter_map(|(k, _)| k.get(prefix.len()..))
            .collect();
        let head_keys: Vec<Vec<u8>> = macs
            .iter()
            .map(|mac| {
                let mut k = vec![b'h', kind.tag()];
                k.extend_from_slice(mac);
                k
            })
            .collect();
        let raws = self.backend.get_many(&head_keys).await?;
        let mut heads = Vec::with_capacity(head_keys.len());
        for (key, raw) in head_keys.iter().zip(raws) {
            // An object changed between the two reads (another replica): it belongs to the
            // listing it moved to, or to none.
            let Some(raw) = raw else { continue };
            let head: Head<M> = self.open_head(kind, key, &raw)?;
            if head.deleted.is_some() == deleted {
                heads.push(head);
            }
        }
        let next = if more {
            macs.last().map(|m| m.to_vec())
        } else {
            None
        };
        Ok(HeadPage { heads, next })
    }

    fn versions_prefix(&self, kind: Kind, name: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(50);
        k.push(b'v');
        k.push(kind.tag());
        k.extend_from_slice(self.name_mac(name).as_ref());
        k
    }

    fn value_key(&self, kind: Kind, name: &str, version: &str) -> Vec<u8> {
        let mut k = self.versions_prefix(kind, name);
        k.extend_from_slice(version.as_bytes());
        k
    }

    fn aad(storage_key: &[u8]) -> Vec<u8> {
        let mut a = Vec::with_capacity(storage_key.len() + 10);
        a.extend_from_slice(b"kvault/v1/");
        a.extend_from_slice(storage_key);
        a
    }

    fn open_head<M: DeserializeOwned>(
        &self,
        kind: Kind,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<Head<M>, StoreError> {
        let plain = self
            .records
            .open(&Self::aad(key), sealed)
            .map_err(|_| StoreError::Integrity(format!("{} head record", kind.as_str())))?;
        let head: Head<M> = serde_json::from_slice(&plain).map_err(|_| {
            StoreError::Integrity(format!("{} head record is malformed", kind.as_str()))
        })?;
        // Defence in depth: the head must be the one its key names.
        if self.head_key(kind, &head.name) != key {
            return Err(StoreError::Integrity(format!(
                "{} head record is stored under another name",
                kind.as_str()
            )));
        }
        Ok(head)
    }

    fn meta_key(name: &str) -> Vec<u8> {
        let mut k = b"m/".to_vec();
        k.extend_from_slice(name.as_bytes());
        k
    }

    /// A sealed vault-level record (the policy document) and its raw stored form.
    pub async fn meta(
        &self,
        name: &str,
    ) -> Result<Option<(Zeroizing<Vec<u8>>, Vec<u8>)>, StoreError> {
        let key = Self::meta_key(name);
        match self.backend.get(&key).await? {
            None => Ok(None),
            Some(raw) => {
                let plain = self
                    .records
                    .open(&Self::aad(&key), &raw)
                    .map_err(|_| StoreError::Integrity(format!("vault record {name}")))?;
                Ok(Some((plain, raw)))
            }
        }
    }

    /// Every vault-level record whose name starts with `prefix`, opened: (name, value).
    pub async fn meta_scan(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, Zeroizing<Vec<u8>>)>, StoreError> {
        let key_prefix = Self::meta_key(prefix);
        let mut out = Vec::new();
        for (k, raw) in self.backend.scan(&key_prefix).await? {
            let name = String::from_utf8_lossy(k.get(2..).unwrap_or_default()).into_owned();
            let plain = self
                .records
                .open(&Self::aad(&k), &raw)
                .map_err(|_| StoreError::Integrity(format!("vault record {name}")))?;
            out.push((name, plain));
        }
        Ok(out)
    }

    /// Removes a vault-level record if its stored form is still `expect`.
    pub async fn delete_meta(&self, name: &str, expect: Vec<u8>) -> Result<(), StoreError> {
        let key = Self::meta_key(name);
        self.backend
            .commit(Batch {
                expect: vec![(key.clone(), Some(expect))],
                ops: vec![Op::Delete(key)],
            })
            .await
    }

    /// Writes a sealed vault-level record if its stored form is still `expect`.
    pub async fn put_meta(
        &self,
        name: &str,
        value: &[u8],
        expect: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let key = Self::meta_key(name);
        let sealed = self.records.seal(&Self::aad(&key), value)?;
        self.backend
            .commit(Batch {
                expect: vec![(key.clone(), expect)],
                ops: vec![Op::Put(key, sealed)],
            })
            .await
    }

    /// Adds the write of a sealed vault-level record to a batch (e.g. an event staged in the
    /// outbox by the change that caused it, committed together).
    pub fn stage_meta(
        &self,
        batch: &mut Batch,
        name: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        let key = Self::meta_key(name);
        let sealed = self.records.seal(&Self::aad(&key), value)?;
        batch.ops.push(Op::Put(key, sealed));
        Ok(())
    }

    /// Makes a batch conditional on a vault-level record's stored form (`None`: absent).
    pub fn expect_meta(&self, batch: &mut Batch, name: &str, expected: Option<Vec<u8>>) {
        batch.expect.push((Self::meta_key(name), expected));
    }

    /// Adds the removal of a vault-level record to a batch.
    pub fn stage_delete_meta(&self, batch: &mut Batch, name: &str) {
        batch.ops.push(Op::Delete(Self::meta_key(name)));
    }

    /// A keyed, opaque tag (hex) of `text`: a record name that must not reveal what it is
    /// about (object names are stored only as such tags).
    pub fn opaque_tag(&self, text: &str) -> String {
        let mut msg = b"kvault/v1/tag/".to_vec();
        msg.extend_from_slice(text.as_bytes());
        crate::crypto::hex(hmac::sign(&self.names, &msg).as_ref())
    }

    /// The object's head with the raw record it came from (for conditional writes).
    pub async fn head<M: DeserializeOwned>(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<Option<Head<M>>, StoreError> {
        Ok(self.head_raw(kind, name).await?.map(|(h, _)| h))
    }

    async fn head_raw<M: DeserializeOwned>(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<Option<(Head<M>, Vec<u8>)>, StoreError> {
        let key = self.head_key(kind, name);
        match self.backend.get(&key).await? {
            None => Ok(None),
            Some(raw) => Ok(Some((self.open_head(kind, &key, &raw)?, raw))),
        }
    }

    /// Every head of one kind (live and deleted), sorted by lower-cased name.
    pub async fn heads<M: DeserializeOwned>(&self, kind: Kind) -> Result<Vec<Head<M>>, StoreError> {
        let rows = self.backend.scan(&[b'h', kind.tag()]).await?;
        let mut heads = rows
            .iter()
            .map(|(k, v)| self.open_head(kind, k, v))
            .collect::<Result<Vec<Head<M>>, _>>()?;
        heads.sort_by_cached_key(|h| h.name.to_ascii_lowercase());
        Ok(heads)
    }

    /// One version's sealed value, opened.
    pub async fn value(
        &self,
        kind: Kind,
        name: &str,
        version: &str,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let key = self.value_key(kind, name, version);
        let sealed = self.backend.get(&key).await?.ok_or_else(|| {
            StoreError::Integrity(format!("{} version record is missing", kind.as_str()))
        })?;
        self.records
            .open(&Self::aad(&key), &sealed)
            .map_err(|_| StoreError::Integrity(format!("{} version record", kind.as_str())))
    }

    /// Marks, once, that a lifetime notification fired for `version`: `mark` runs only
    /// while `version` is still the object's current version. Returns whether it ran.
    pub async fn record_for_current<M: Serialize + DeserializeOwned>(
        &self,
        kind: Kind,
        name: &str,
        version: &str,
        mark: impl Fn(&mut Head<M>),
    ) -> Result<bool, StoreError> {
        self.modify::<M, bool, StoreError>(kind, name, |cur| match cur {
            Some(mut h) if h.current().is_some_and(|v| v.id == version) => {
                mark(&mut h);
                Ok((
                    Change::Put {
                        head: h,
                        values: vec![],
                    },
                    true,
                ))
            }
            _ => Ok((Change::Keep, false)),
        })
        .await
    }

    /// An object's head and the raw record it came from, for a multi-object write
    /// ([`stage`](Self::stage) + [`commit`](Self::commit)).
    pub async fn head_for_update<M: DeserializeOwned>(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<(Option<Head<M>>, Option<Vec<u8>>), StoreError> {
        Ok(match self.head_raw::<M>(kind, name).await? {
            Some((h, raw)) => (Some(h), Some(raw)),
            None => (None, None),
        })
    }

    /// Adds one object's change to a batch, conditional on its head still being `expected`
    /// (the raw record [`head_for_update`](Self::head_for_update) returned).
    pub fn stage<M: Serialize>(
        &self,
        batch: &mut Batch,
        kind: Kind,
        name: &str,
        expected: Option<Vec<u8>>,
        change: Change<M>,
    ) -> Result<(), StoreError> {
        let head_key = self.head_key(kind, name);
        batch.expect.push((head_key.clone(), expected));
        match change {
            Change::Keep => {}
            Change::Put { head, values } => {
                if !head.name.eq_ignore_ascii_case(name) {
                    return Err(StoreError::Integrity("head renamed".into()));
                }
                let plain = Zeroizing::new(
                    serde_json::to_vec(&head)
                        .map_err(|e| StoreError::backend("encoding head", e))?,
                );
                batch.ops.push(Op::Put(
                    head_key.clone(),
                    self.records.seal(&Self::aad(&head_key), &plain)?,
                ));
                self.index_ops(batch, kind, name, Some(head.deleted.is_some()));
                for (version, value) in values {
                    let key = self.value_key(kind, name, &version);
                    let sealed = self.records.seal(&Self::aad(&key), &value)?;
                    batch.ops.push(Op::Put(key, sealed));
                }
            }
            Change::Purge => {
                batch.ops.push(Op::Delete(head_key));
                self.index_ops(batch, kind, name, None);
                batch
                    .ops
                    .push(Op::DeletePrefix(self.versions_prefix(kind, name)));
            }
        }
        Ok(())
    }

    /// Removes one value record (e.g. a pending certificate's key once it is merged).
    pub fn stage_delete_value(&self, batch: &mut Batch, kind: Kind, name: &str, version: &str) {
        batch
            .ops
            .push(Op::Delete(self.value_key(kind, name, version)));
    }

    /// Applies a staged batch atomically; `StoreError::Conflict` means re-read and retry.
    pub async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        self.backend.commit(batch).await
    }

    /// Reads the object's head, lets `decide` choose a change, and writes it atomically,
    /// conditional on the head being unchanged; retries when another writer won the race.
    /// `decide` may run more than once and must not have side effects.
    pub async fn modify<M, R, E>(
        &self,
        kind: Kind,
        name: &str,
        mut decide: impl FnMut(Option<Head<M>>) -> Result<(Change<M>, R), E>,
    ) -> Result<R, E>
    where
        M: Serialize + DeserializeOwned,
        E: From<StoreError>,
    {
        let head_key = self.head_key(kind, name);
        let stripe = head_key
            .get(2)
            .map_or(0, |b| usize::from(*b ^ kind.tag()) % WRITE_STRIPES);
        let _turn = match self.write_turns.get(stripe) {
            Some(turn) => Some(turn.lock().await),
            None => None,
        };
        for attempt in 0..MAX_RETRIES {
            let current = self.head_raw::<M>(kind, name).await?;
            let (head, raw) = match current {
                Some((h, raw)) => (Some(h), Some(raw)),
                None => (None, None),
            };
            let (change, result) = decide(head)?;
            let mut batch = Batch {
                expect: vec![(head_key.clone(), raw)],
                ops: Vec::new(),
            };
            match change {
                Change::Keep => return Ok(result),
                Change::Put { head, values } => {
                    if !head.name.eq_ignore_ascii_case(name) {
                        return Err(StoreError::Integrity("head renamed".into()).into());
                    }
                    let plain = Zeroizing::new(
                        serde_json::to_vec(&head)
                            .map_err(|e| StoreError::backend("encoding head", e))?,
                    );
                    let sealed = self
                        .records
                        .seal(&Self::aad(&head_key), &plain)
                        .map_err(StoreError::from)?;
                    batch.ops.push(Op::Put(head_key.clone(), sealed));
                    self.index_ops(&mut batch, kind, name, Some(head.deleted.is_some()));
                    for (version, value) in values {
                        let key = self.value_key(kind, name, &version);
                        let sealed = self
                            .records
                            .seal(&Self::aad(&key), &value)
                            .map_err(StoreError::from)?;
                        batch.ops.push(Op::Put(key, sealed));
                    }
                }
                Change::Purge => {
                    batch.ops.push(Op::Delete(head_key.clone()));
                    self.index_ops(&mut batch, kind, name, None);
                    batch
                        .ops
                        .push(Op::DeletePrefix(self.versions_prefix(kind, name)));
                }
            }
            match self.backend.commit(batch).await {
                Ok(()) => return Ok(result),
                Err(StoreError::Conflict) => {
                    after_conflict(attempt).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Unavailable("too many concurrent writers on one object".into()).into())
    }
}

/// Unit tests of the embedded file; the behaviour every backend shares is in the
/// conformance suite (`tests/it/store_conformance.rs`), run against redb and PostgreSQL.
#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
    struct Meta {
        note: String,
    }

    async fn store(dir: &std::path::Path, master: &MasterKey) -> VaultStore {
        let backend = Arc::new(redb::RedbBackend::open(&dir.join("kv.redb")).unwrap());
        VaultStore::open(backend, master).await.unwrap()
    }

    fn new_head(name: &str, version: &str) -> Head<Meta> {
        Head {
            name: name.into(),
            versions: vec![Version::new(version.into(), 1, Meta::default())],
            deleted: None,
            rotation: None,
            certificate: None,
        }
    }

    #[tokio::test]
    async fn values_round_trip_and_nothing_plain_reaches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate().unwrap();
        {
            let s = store(dir.path(), &master).await;
            s.modify::<Meta, (), StoreError>(Kind::Secret, "Db-Password", |h| {
                assert!(h.is_none());
                Ok((
                    Change::Put {
                        head: new_head("Db-Password", "v1"),
                        values: vec![("v1".into(), Zeroizing::new(b"hunter2-plaintext".to_vec()))],
                    },
                    (),
                ))
            })
            .await
            .unwrap();
            let v = s.value(Kind::Secret, "db-password", "v1").await.unwrap();
            assert_eq!(v.as_slice(), b"hunter2-plaintext");
            let heads = s.heads::<Meta>(Kind::Secret).await.unwrap();
            assert_eq!(heads.len(), 1);
            assert_eq!(heads[0].name, "Db-Password");
        }
        let bytes = std::fs::read(dir.path().join("kv.redb")).unwrap();
        for needle in [&b"hunter2-plaintext"[..], b"Db-Password", b"db-password"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
        // Reopen with the same master key: data is there. Another master key: refused.
        let s = store(dir.path(), &master).await;
        assert!(
            s.head::<Meta>(Kind::Secret, "DB-PASSWORD")
                .await
                .unwrap()
                .is_some()
        );
        drop(s);
        let backend = Arc::new(redb::RedbBackend::open(&dir.path().join("kv.redb")).unwrap());
        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            VaultStore::open(backend, &other).await,
            Err(StoreError::MasterKeyMismatch)
        ));
    }
}
