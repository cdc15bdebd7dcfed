//! The PostgreSQL backend: several replicas of one vault share one database.
//!
//! The database holds the same sealed records as the embedded backend (keys are opaque
//! HMAC-derived bytes, values AES-256-GCM sealed), in one table of a schema of its own.
//! - **Writes** are SERIALIZABLE transactions: the batch's expectations are read and
//!   checked, its ops applied, and a `NOTIFY` queued, all or nothing. A serialization
//!   failure or a duplicate insert becomes [`StoreError::Conflict`], which the caller retries
//!   after re-reading, so two replicas writing one object at once both land, in some order.
//! - **Changes** made by other replicas arrive through `LISTEN`/`NOTIFY` on a session
//!   connection of our own and are handed to the server (policy reload, key cache), see
//!   [`ChangeNotice`].
//! - **Background jobs** run on the replica whose session holds a PostgreSQL advisory lock;
//!   when that session dies, the database releases the lock and another replica takes it.
//! - **A lost connection** answers [`StoreError::Unavailable`] (503 + Retry-After); the
//!   pool reconnects by itself. A commit whose outcome is unknown is never acknowledged.

mod session;
mod tls;

use super::{Backend, Batch, ChangeNotice, Op, StoreError};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_postgres::error::SqlState;
use zeroize::Zeroizing;

pub use tls::RustlsConnect;

/// How to reach the database (from `--storage postgres://…` and its companions).
#[derive(Clone)]
pub struct PostgresConfig {
    /// The connection URL without a password (`postgres://user@host:5432/db?sslmode=require`).
    pub url: String,
    /// The password, read from `--storage-password-file` (never from the URL in logs).
    pub password: Option<Zeroizing<String>>,
    /// PEM bundle to verify the database's certificate; system roots otherwise.
    pub ca_pem: Option<Vec<u8>>,
    /// The PostgreSQL schema holding this vault's table: one vault per schema.
    pub schema: String,
    /// Pool size per replica.
    pub max_connections: usize,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("schema", &self.schema)
            .finish()
    }
}

/// The URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A schema name we can put in SQL unquoted-safe: lower-case letters, digits, `_`.
pub fn validate_schema(schema: &str) -> Result<(), String> {
    let ok = !schema.is_empty()
        && schema.len() <= 48
        && schema
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "schema '{schema}' must be 1-48 lower-case letters, digits or '_', start with a letter or '_' and not with 'pg_'"
        ))
    }
}

/// The schema versions this build knows, in order. A database at a newer version than
/// the last one here was migrated by a newer kvault, and this one refuses to run on it.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "records: one row per sealed record",
        "CREATE TABLE {schema}.records (key bytea PRIMARY KEY, value bytea NOT NULL)",
    ),
    // The listing index lives in `records` like everything else (keys `l…`); the vault
    // builds it itself at open (`store::migrate`). The version is here so that a kvault
    // that writes objects without index entries refuses this database ("upgrade kvault").
    (
        2,
        "listing index records (l...) kept by the vault",
        "SELECT 1",
    ),
];

/// The advisory-lock id of a purpose in a schema (64 bits of SHA-256).
fn lock_id(purpose: &str, schema: &str) -> i64 {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("kvault/{purpose}/{schema}").as_bytes(),
    );
    let mut b = [0u8; 8];
    for (x, y) in b.iter_mut().zip(d.as_ref()) {
        *x = *y;
    }
    i64::from_be_bytes(b)
}

/// The smallest key greater than every key starting with `prefix` (`None`: no bound).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// What a `NOTIFY` says changed, for what other replicas keep in memory or wait for:
/// vault records (`m/…`, by name up to the last `/`, e.g. `m/policy`, `m/ev/o/`) and key
/// heads (`hk`). Other object writes send nothing: replicas do not cache them, and a
/// notice per write would cost a round trip on every commit. Names never appear.
pub fn change_topics(batch: &Batch) -> Vec<Vec<u8>> {
    const KEY_HEADS: &[u8] = b"hk";
    let mut topics: Vec<Vec<u8>> = Vec::new();
    for op in &batch.ops {
        let key = match op {
            Op::Put(k, _) | Op::Delete(k) | Op::DeletePrefix(k) => k,
        };
        let topic = if key.starts_with(b"m/") {
            let end = key
                .iter()
                .skip(2)
                .rposition(|b| *b == b'/')
                .map_or(key.len(), |i| i + 3);
            key.iter().take(end).copied().collect()
        } else if key.starts_with(KEY_HEADS) {
            KEY_HEADS.to_vec()
        } else {
            continue;
        };
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }
    topics
}

fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    ::hex::decode(s).ok()
}

/// `<sender> <topic-hex> <topic-hex> …`
pub fn encode_notice(sender: &str, topics: &[Vec<u8>]) -> String {
    let mut s = sender.to_string();
    for t in topics {
        s.push(' ');
        s.push_str(&hex(t));
    }
    s
}

/// The topics of a notice sent by another replica (`None` for our own, or garbage).
pub fn decode_notice(me: &str, payload: &str) -> Option<Vec<Vec<u8>>> {
    let mut parts = payload.split(' ');
    let sender = parts.next()?;
    if sender == me {
        return None;
    }
    parts.map(unhex).collect()
}

/// Maps a driver error: lost connections and server shutdowns are `Unavailable` (the
/// client retries), serialization failures and duplicate inserts are `Conflict`.
fn map_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::UNIQUE_VIOLATION
        {
            return StoreError::Conflict;
        }
        let class = &code.code()[..2];
        // 08: connection exception, 57: operator intervention (shutdown), 53: insufficient
        // resources (too many connections).
        if matches!(class, "08" | "57" | "53") {
            return StoreError::Unavailable(format!("database: {}", db.message()));
        }
        let what = format!("database: {} ({})", db.message(), code.code());
        return StoreError::backend(what, e);
    }
    StoreError::Unavailable(format!("database connection: {e}"))
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => map_err(e),
        other => StoreError::Unavailable(format!("database connection: {other}")),
    }
}

struct Sql {
    get: String,
    scan_bounded: String,
    scan_from: String,
    page_bounded: String,
    page_from: String,
    expect: String,
    put: String,
    delete: String,
    delete_bounded: String,
    delete_from: String,
}

impl Sql {
    fn new(schema: &str) -> Self {
        let t = format!("{schema}.records");
        Self {
            get: format!("SELECT value FROM {t} WHERE key = $1"),
            scan_bounded: format!(
                "SELECT key, value FROM {t} WHERE key >= $1 AND key < $2 ORDER BY key"
            ),
            scan_from: format!("SELECT key, value FROM {t} WHERE key >= $1 ORDER BY key"),
            page_bounded: format!(
                "SELECT key, value FROM {t} WHERE key > $1 AND key >= $2 AND key < $3 ORDER BY key LIMIT $4"
            ),
            page_from: format!(
                "SELECT key, value FROM {t} WHERE key > $1 AND key >= $2 ORDER BY key LIMIT $3"
            ),
            expect: format!("SELECT key, value FROM {t} WHERE key = ANY($1)"),
            put: format!(
                "INSERT INTO {t} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            delete: format!("DELETE FROM {t} WHERE key = $1"),
            delete_bounded: format!("DELETE FROM {t} WHERE key >= $1 AND key < $2"),
            delete_from: format!("DELETE FROM {t} WHERE key >= $1"),
        }
    }
}

pub struct PostgresBackend {
    pool: Pool,
    sql: Sql,
    channel: String,
    /// This replica's id in notices, so it ignores its own.
    instance: String,
    leader: Arc<AtomicBool>,
    changes: broadcast::Sender<ChangeNotice>,
    session: tokio::task::JoinHandle<()>,
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        // Ending the session releases the job lease and stops listening.
        self.session.abort();
    }
}

impl PostgresBackend {
    /// Connects, creates or migrates the schema, and starts the session that listens for
    /// other replicas' changes and competes for the job lease.
    pub async fn open(config: &PostgresConfig) -> Result<Self, StoreError> {
        validate_schema(&config.schema).map_err(StoreError::backend_msg)?;
        let mut pg: tokio_postgres::Config = config.url.parse().map_err(|e| {
            StoreError::backend(format!("the database URL {}", redact_url(&config.url)), e)
        })?;
        if let Some(pw) = &config.password {
            pg.password(pw.as_bytes());
        }
        if pg.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
            // Records are sealed either way, but names' HMACs, sizes and timing are not.
            tracing::warn!(
                "the database connection may run without TLS; add sslmode=require to the URL"
            );
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(5));
        }
        pg.keepalives(true);
        pg.keepalives_idle(Duration::from_secs(30));
        if pg.get_application_name().is_none() {
            pg.application_name("kvault");
        }
        let tls = RustlsConnect::new(config.ca_pem.as_deref()).map_err(StoreError::backend_msg)?;
        let manager = Manager::from_config(
            pg.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.max_connections.max(2))
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(Duration::from_secs(5)),
                create: Some(Duration::from_secs(5)),
                recycle: Some(Duration::from_secs(5)),
            })
            .build()
            .map_err(|e| StoreError::backend("database pool", e))?;
        migrate(&pool, &config.schema).await?;
        let channel = format!("kvault_{}", config.schema);
        let instance = {
            let mut b = [0u8; 8];
            aws_lc_rs::rand::fill(&mut b)
                .map_err(|_| StoreError::backend_msg("no randomness for the instance id"))?;
            hex(&b)
        };
        let leader = Arc::new(AtomicBool::new(false));
        let (changes, _) = broadcast::channel(256);
        let session = tokio::spawn(session::run(session::Session {
            pg,
            tls,
            channel: channel.clone(),
            instance: instance.clone(),
            job_lock: lock_id("jobs", &config.schema),
            leader: leader.clone(),
            changes: changes.clone(),
        }));
        Ok(Self {
            pool,
            sql: Sql::new(&config.schema),
            channel,
            instance,
            leader,
            changes,
            session,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_err)
    }
}

/// Creates the schema and applies the migrations this build knows, under an advisory lock
/// so replicas starting together do not race.
async fn migrate(pool: &Pool, schema: &str) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let tx = client.transaction().await.map_err(map_err)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&lock_id("migrate", schema)],
    )
    .await
    .map_err(map_err)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
            version integer PRIMARY KEY,
            description text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .await
    .map_err(map_err)?;
    let row = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations"),
            &[],
        )
        .await
        .map_err(map_err)?;
    let current: i32 = row.get(0);
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > known {
        return Err(StoreError::backend_msg(format!(
            "the database schema {schema} is at version {current}, newer than this kvault knows ({known}); upgrade kvault"
        )));
    }
    for (version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(&sql.replace("{schema}", schema))
            .await
            .map_err(map_err)?;
        tx.execute(
            &format!(
                "INSERT INTO {schema}.schema_migrations (version, description) VALUES ($1, $2)"
            ),
            &[version, description],
        )
        .await
        .map_err(map_err)?;
        tracing::info!(schema, version, description, "database schema migrated");
    }
    tx.commit().await.map_err(map_err)
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.sql.get)
            .await
            .map_err(map_err)?;
        let row = client.query_opt(&stmt, &[&key]).await.map_err(map_err)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let client = self.client().await?;
        let rows = match prefix_end(prefix) {
            Some(end) => {
                let stmt = client
                    .prepare_cached(&self.sql.scan_bounded)
                    .await
                    .map_err(map_err)?;
                client.query(&stmt, &[&prefix, &end]).await
            }
            None => {
                let stmt = client
                    .prepare_cached(&self.sql.scan_from)
                    .await
                    .map_err(map_err)?;
                client.query(&stmt, &[&prefix]).await
            }
        }
        .map_err(map_err)?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn scan_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let client = self.client().await?;
        // `key > after AND key >= prefix`: the empty `after` excludes nothing but itself.
        let after = after.unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match prefix_end(prefix) {
            Some(end) => {
                let stmt = client
                    .prepare_cached(&self.sql.page_bounded)
                    .await
                    .map_err(map_err)?;
                client.query(&stmt, &[&after, &prefix, &end, &limit]).await
            }
            None => {
                let stmt = client
                    .prepare_cached(&self.sql.page_from)
                    .await
                    .map_err(map_err)?;
                client.query(&stmt, &[&after, &prefix, &limit]).await
            }
        }
        .map_err(map_err)?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One round trip for the page's records.
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.sql.expect)
            .await
            .map_err(map_err)?;
        let wanted: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        let rows = client.query(&stmt, &[&wanted]).await.map_err(map_err)?;
        Ok(keys
            .iter()
            .map(|k| {
                rows.iter()
                    .find(|r| r.get::<_, &[u8]>(0) == k.as_slice())
                    .map(|r| r.get::<_, Vec<u8>>(1))
            })
            .collect())
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::Serializable)
            .start()
            .await
            .map_err(map_err)?;
        if !batch.expect.is_empty() {
            let keys: Vec<&[u8]> = batch.expect.iter().map(|(k, _)| k.as_slice()).collect();
            let stmt = tx.prepare_cached(&self.sql.expect).await.map_err(map_err)?;
            let rows = tx.query(&stmt, &[&keys]).await.map_err(map_err)?;
            for (key, expected) in &batch.expect {
                let current = rows
                    .iter()
                    .find(|r| r.get::<_, &[u8]>(0) == key.as_slice())
                    .map(|r| r.get::<_, &[u8]>(1));
                if current != expected.as_deref() {
                    // Dropping the transaction rolls it back.
                    return Err(StoreError::Conflict);
                }
            }
        }
        for op in &batch.ops {
            match op {
                Op::Put(k, v) => {
                    let stmt = tx.prepare_cached(&self.sql.put).await.map_err(map_err)?;
                    tx.execute(&stmt, &[k, v]).await.map_err(map_err)?;
                }
                Op::Delete(k) => {
                    let stmt = tx.prepare_cached(&self.sql.delete).await.map_err(map_err)?;
                    tx.execute(&stmt, &[k]).await.map_err(map_err)?;
                }
                Op::DeletePrefix(p) => match prefix_end(p) {
                    Some(end) => {
                        let stmt = tx
                            .prepare_cached(&self.sql.delete_bounded)
                            .await
                            .map_err(map_err)?;
                        tx.execute(&stmt, &[p, &end]).await.map_err(map_err)?;
                    }
                    None => {
                        let stmt = tx
                            .prepare_cached(&self.sql.delete_from)
                            .await
                            .map_err(map_err)?;
                        tx.execute(&stmt, &[p]).await.map_err(map_err)?;
                    }
                },
            }
        }
        let topics = change_topics(&batch);
        if !topics.is_empty() {
            // Delivered to the listeners only if, and when, the transaction commits.
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&self.channel, &encode_notice(&self.instance, &topics)],
            )
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn holds_job_lease(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    fn changes(&self) -> Option<broadcast::Receiver<ChangeNotice>> {
        Some(self.changes.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_first_key_after_the_prefix() {
        assert_eq!(prefix_end(b"hs"), Some(b"ht".to_vec()));
        assert_eq!(prefix_end(&[b'v', 0xff]), Some(vec![b'w']));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn notices_name_topics_not_objects() {
        let batch = Batch {
            expect: vec![],
            ops: vec![
                Op::Put(b"hs0123456789".to_vec(), vec![1]),
                Op::Put(b"vs0123456789v1".to_vec(), vec![2]),
                Op::Put(b"hk9876543210".to_vec(), vec![3]),
                Op::Put(b"hk0000000000".to_vec(), vec![3]),
                Op::Put(b"m/policy".to_vec(), vec![4]),
                Op::Put(b"m/ev/o/0001-abc".to_vec(), vec![5]),
                Op::Put(b"m/ev/o/0002-def".to_vec(), vec![5]),
            ],
        };
        let topics = change_topics(&batch);
        assert_eq!(
            topics,
            vec![b"hk".to_vec(), b"m/policy".to_vec(), b"m/ev/o/".to_vec()]
        );
        // A secret write alone sends no notice at all.
        let secret_only = Batch {
            expect: vec![],
            ops: vec![
                Op::Put(b"hs0123456789".to_vec(), vec![1]),
                Op::Put(b"vs0123456789v1".to_vec(), vec![2]),
            ],
        };
        assert!(change_topics(&secret_only).is_empty());
        let wire = encode_notice("me", &topics);
        assert_eq!(decode_notice("other", &wire), Some(topics));
        assert_eq!(decode_notice("me", &wire), None);
        assert_eq!(decode_notice("other", "x zz"), None);
    }

    #[test]
    fn passwords_never_appear_in_messages() {
        assert_eq!(
            redact_url("postgres://kv:s3cret@db:5432/kvault"),
            "postgres://kv:***@db:5432/kvault"
        );
        assert_eq!(
            redact_url("postgres://kv@db/kvault"),
            "postgres://kv@db/kvault"
        );
        let c = PostgresConfig {
            url: "postgres://kv:s3cret@db/x".into(),
            password: Some(Zeroizing::new("hunter2".into())),
            ca_pem: None,
            schema: "kvault".into(),
            max_connections: 4,
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn schema_names_are_safe_identifiers() {
        for ok in ["kvault", "team_a_payments", "_x1"] {
            assert!(validate_schema(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Kvault",
            "a-b",
            "a;drop",
            "1a",
            "pg_catalog",
            &"a".repeat(49),
        ] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lock_ids_differ_per_schema_and_purpose() {
        assert_ne!(lock_id("jobs", "a"), lock_id("jobs", "b"));
        assert_ne!(lock_id("jobs", "a"), lock_id("migrate", "a"));
    }
}
