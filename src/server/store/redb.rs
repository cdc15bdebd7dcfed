//! The embedded backend: one redb file. ACID, crash-safe (copy-on-write B-trees with a
//! checksummed commit), and every commit is durable before it returns.

use super::{Backend, Batch, Op, StoreError};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");

pub struct RedbBackend {
    db: Arc<Database>,
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
        let db = Database::create(path)
            .map_err(|e| StoreError::backend(format!("opening {}", path.display()), e))?;
        // Create the table up front so readers never see it missing.
        let tx = db.begin_write().map_err(backend_err)?;
        tx.open_table(RECORDS).map_err(backend_err)?;
        tx.commit().map_err(backend_err)?;
        Ok(Self { db: Arc::new(db) })
    }

    fn commit_blocking(db: &Database, batch: Batch) -> Result<(), StoreError> {
        let tx = db.begin_write().map_err(backend_err)?;
        {
            let mut table = tx.open_table(RECORDS).map_err(backend_err)?;
            for (key, expected) in &batch.expect {
                let current = table.get(key.as_slice()).map_err(backend_err)?;
                let holds = match (current, expected) {
                    (None, None) => true,
                    (Some(cur), Some(exp)) => cur.value() == exp.as_slice(),
                    _ => false,
                };
                if !holds {
                    // Dropping the transaction aborts it.
                    return Err(StoreError::Conflict);
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
        }
        tx.commit().map_err(backend_err)
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
        // A durable commit waits for fsync: keep it off the async workers.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || Self::commit_blocking(&db, batch))
            .await
            .map_err(|e| StoreError::backend("the commit task", e))?
    }
}
