//! The embedded backend: one redb file. ACID, crash-safe (copy-on-write B-trees with a
//! checksummed commit), and every commit is durable before it returns. Concurrent commits
//! share one write transaction and one fsync (group commit, see `RedbBackend::committer`).

use super::{Backend, Batch, Op, StoreError};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");

/// A batch waiting for the committer, and where its outcome goes.
struct Pending {
    batch: Batch,
    reply: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

/// redb's page cache (its default is 1 GiB, which a large vault fills: memory in proportion
/// to the vault). Pages beyond it are read again from the file, through the OS page cache.
const CACHE_BYTES: usize = 32 << 20;

/// Batches one group commit takes at most.
const MAX_GROUP: usize = 256;

pub struct RedbBackend {
    db: Arc<Database>,
    /// The committer thread's queue (`None` only while dropping).
    queue: Option<std::sync::mpsc::Sender<Pending>>,
    committer: Option<std::thread::JoinHandle<()>>,
}

fn backend_err(e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    StoreError::backend("the redb file", e)
}

impl RedbBackend {
    /// Opens (or creates) the database file. A second process holding the file open makes
    /// this fail instead of corrupting it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::backend(format!("creating {}", parent.display()), e))?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| StoreError::backend(format!("opening {}", path.display()), e))?;
        // Create the table up front so readers never see it missing.
        let tx = db.begin_write().map_err(backend_err)?;
        tx.open_table(RECORDS).map_err(backend_err)?;
        tx.commit().map_err(backend_err)?;
        let db = Arc::new(db);
        let (queue, pending) = std::sync::mpsc::channel::<Pending>();
        let committer = {
            let db = db.clone();
            std::thread::Builder::new()
                .name("kvault-redb-commit".into())
                .spawn(move || Self::committer(&db, &pending))
                .map_err(|e| StoreError::backend("starting the commit thread", e))?
        };
        Ok(Self {
            db,
            queue: Some(queue),
            committer: Some(committer),
        })
    }

    /// Group commit: every batch waiting when a commit starts goes into one write
    /// transaction and shares its fsync. Each batch's expectations are checked against the
    /// transaction's view (the batches before it in the group included), so a batch that
    /// lost its race is left out alone; the others apply in queue order. Nobody hears back
    /// before the transaction is durable, and if it fails, every batch in it fails.
    fn committer(db: &Database, pending: &std::sync::mpsc::Receiver<Pending>) {
        while let Ok(first) = pending.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match pending.try_recv() {
                    Ok(p) => group.push(p),
                    Err(_) => break,
                }
            }
            match Self::commit_group(db, &group) {
                Ok(outcomes) => {
                    for (p, outcome) in group.into_iter().zip(outcomes) {
                        // The caller may have gone away (a cancelled request): its write is
                        // durable all the same.
                        let _ = p.reply.send(outcome);
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    let mut first = Some(e);
                    for p in group {
                        let err = first
                            .take()
                            .unwrap_or_else(|| StoreError::backend_msg(message.clone()));
                        let _ = p.reply.send(Err(err));
                    }
                }
            }
        }
    }

    /// One transaction for the group: per batch `Ok(())` (applied) or `Err(Conflict)`;
    /// `Err` for the whole group when the transaction failed.
    fn commit_group(
        db: &Database,
        group: &[Pending],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let tx = db.begin_write().map_err(backend_err)?;
        let mut outcomes = Vec::with_capacity(group.len());
        {
            let mut table = tx.open_table(RECORDS).map_err(backend_err)?;
            for p in group {
                outcomes.push(Self::apply(&mut table, &p.batch)?);
            }
        }
        if outcomes.iter().any(Result::is_ok) {
            tx.commit().map_err(backend_err)?;
        }
        // Else dropping the transaction aborts it: nothing to write.
        Ok(outcomes)
    }

    /// Checks a batch's expectations, then applies its ops. The inner `Err(Conflict)`: an
    /// expectation failed and nothing was written; the outer `Err`: the transaction broke.
    fn apply(
        table: &mut redb::Table<&[u8], &[u8]>,
        batch: &Batch,
    ) -> Result<Result<(), StoreError>, StoreError> {
        for (key, expected) in &batch.expect {
            let current = table.get(key.as_slice()).map_err(backend_err)?;
            let holds = match (current, expected) {
                (None, None) => true,
                (Some(cur), Some(exp)) => cur.value() == exp.as_slice(),
                _ => false,
            };
            if !holds {
                return Ok(Err(StoreError::Conflict));
            }
        }
        for op in &batch.ops {
            match op {
                Op::Put(k, v) => {
                    table
                        .insert(k.as_slice(), v.as_slice())
                        .map_err(backend_err)?;
                }
                Op::Delete(k) => {
                    table.remove(k.as_slice()).map_err(backend_err)?;
                }
                Op::DeletePrefix(prefix) => {
                    let keys: Vec<Vec<u8>> = table
                        .range(prefix.as_slice()..)
                        .map_err(backend_err)?
                        .map(|r| r.map(|(k, _)| k.value().to_vec()))
                        .take_while(|r| r.as_ref().map_or(true, |k| k.starts_with(prefix)))
                        .collect::<Result<_, _>>()
                        .map_err(backend_err)?;
                    for k in keys {
                        table.remove(k.as_slice()).map_err(backend_err)?;
                    }
                }
            }
        }
        Ok(Ok(()))
    }
}

impl Drop for RedbBackend {
    fn drop(&mut self) {
        // Closing the queue ends the committer after the batches already queued; joining
        // it releases its handle on the file, so the file can be opened again at once.
        self.queue = None;
        if let Some(t) = self.committer.take() {
            let _ = t.join();
        }
    }
}

#[async_trait]
impl Backend for RedbBackend {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        // Reads are short and never wait on a writer (MVCC), so they run inline.
        let tx = self.db.begin_read().map_err(backend_err)?;
        let table = tx.open_table(RECORDS).map_err(backend_err)?;
        let v = table.get(key).map_err(backend_err)?;
        Ok(v.map(|g| g.value().to_vec()))
    }

    async fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(backend_err)?;
        let table = tx.open_table(RECORDS).map_err(backend_err)?;
        let mut out = Vec::new();
        for row in table.range(prefix..).map_err(backend_err)? {
            let (k, v) = row.map_err(backend_err)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    async fn scan_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        use std::ops::Bound;
        let tx = self.db.begin_read().map_err(backend_err)?;
        let table = tx.open_table(RECORDS).map_err(backend_err)?;
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for row in table
            .range::<&[u8]>((start, Bound::Unbounded))
            .map_err(backend_err)?
        {
            if out.len() >= limit {
                break;
            }
            let (k, v) = row.map_err(backend_err)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        // One read transaction: the values come from one snapshot.
        let tx = self.db.begin_read().map_err(backend_err)?;
        let table = tx.open_table(RECORDS).map_err(backend_err)?;
        keys.iter()
            .map(|k| {
                table
                    .get(k.as_slice())
                    .map(|v| v.map(|g| g.value().to_vec()))
                    .map_err(backend_err)
            })
            .collect()
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        // A durable commit waits for fsync: the committer thread does it, for every batch
        // queued meanwhile at once.
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let queued = self
            .queue
            .as_ref()
            .is_some_and(|q| q.send(Pending { batch, reply }).is_ok());
        if !queued {
            return Err(StoreError::Unavailable(
                "the redb commit thread has stopped".into(),
            ));
        }
        outcome
            .await
            .map_err(|_| StoreError::Unavailable("the redb commit thread has stopped".into()))?
    }
}
