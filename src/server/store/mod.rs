//! Storage: a raw key-value [`Backend`] (embedded redb today, PostgreSQL later) under a
//! [`VaultStore`] that seals every record and maps object identities to opaque keys.
//!
//! Layout (all values sealed with AES-256-GCM, the storage key as associated data):
//! - `m/data-key`: the per-vault data key, wrapped by the master key (not sealed twice);
//! - `h ‖ kind ‖ HMAC(name)`: an object's head — display name, versions' metadata, deletion;
//! - `v ‖ kind ‖ HMAC(name) ‖ version`: one version's value (a secret value, key material).
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
}

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
        Ok(Self {
            backend,
            records: data_key.record_key()?,
            names: data_key.name_key()?,
            backup: master.backup_key()?,
        })
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
                for (version, value) in values {
                    let key = self.value_key(kind, name, &version);
                    let sealed = self.records.seal(&Self::aad(&key), &value)?;
                    batch.ops.push(Op::Put(key, sealed));
                }
            }
            Change::Purge => {
                batch.ops.push(Op::Delete(head_key));
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
