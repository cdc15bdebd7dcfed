//! One conformance suite for every storage backend: the same test bodies run against the
//! embedded redb file and against PostgreSQL (the test database of `scripts/test-postgres`).
//! For PostgreSQL, "another replica" is a second backend with its own connections on the
//! same schema; for redb (one process only) it is the same backend.

use crate::common::postgres;
use kvault::crypto::MasterKey;
use kvault::server::store::postgres::PostgresBackend;
use kvault::server::store::redb::RedbBackend;
use kvault::server::store::{
    Backend, Batch, Change, Head, Kind, Op, StoreError, VaultStore, Version,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
struct Meta {
    note: String,
}

/// How to open (and reopen) one backend under test.
enum Subject {
    Redb(tempfile::TempDir),
    Postgres(kvault::server::store::postgres::PostgresConfig),
}

impl Subject {
    fn redb() -> Self {
        Subject::Redb(tempfile::tempdir().unwrap())
    }
    fn postgres() -> Self {
        Subject::Postgres(postgres("conformance"))
    }
    async fn open(&self) -> Arc<dyn Backend> {
        match self {
            Subject::Redb(dir) => Arc::new(RedbBackend::open(&dir.path().join("kv.redb")).unwrap()),
            Subject::Postgres(cfg) => Arc::new(PostgresBackend::open(cfg).await.unwrap()),
        }
    }
    /// Another replica's view of the same data.
    async fn replica(&self, first: &Arc<dyn Backend>) -> Arc<dyn Backend> {
        match self {
            Subject::Redb(_) => first.clone(),
            Subject::Postgres(_) => self.open().await,
        }
    }
}

fn head(name: &str, versions: &[&str]) -> Head<Meta> {
    Head {
        name: name.into(),
        versions: versions
            .iter()
            .enumerate()
            .map(|(i, v)| Version::new((*v).into(), i as i64 + 1, Meta::default()))
            .collect(),
        deleted: None,
        rotation: None,
        certificate: None,
    }
}

async fn put(s: &VaultStore, name: &str, version: &str, value: &[u8]) {
    let value = Zeroizing::new(value.to_vec());
    let version = version.to_string();
    s.modify::<Meta, (), StoreError>(Kind::Secret, name, |cur| {
        let mut h = cur.unwrap_or_else(|| head(name, &[]));
        h.versions.push(Version::new(
            version.clone(),
            h.versions.len() as i64,
            Meta::default(),
        ));
        Ok((
            Change::Put {
                head: h,
                values: vec![(version.clone(), value.clone())],
            },
            (),
        ))
    })
    .await
    .unwrap();
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn sealed_round_trip_reveals_nothing(subject: Subject) {
    let master = MasterKey::generate().unwrap();
    let backend = subject.open().await;
    let s = VaultStore::open(backend.clone(), &master).await.unwrap();
    put(&s, "Db-Password", "v1", b"hunter2-plaintext").await;
    let v = s.value(Kind::Secret, "db-password", "v1").await.unwrap();
    assert_eq!(v.as_slice(), b"hunter2-plaintext");
    let heads = s.heads::<Meta>(Kind::Secret).await.unwrap();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].name, "Db-Password");
    // Everything the database holds: no value, no name.
    let rows = backend.scan(b"").await.unwrap();
    assert!(rows.len() >= 3, "data key, head, version: {}", rows.len());
    for (k, v) in rows {
        for needle in [&b"hunter2-plaintext"[..], b"Db-Password", b"db-password"] {
            assert!(!contains(&k, needle) && !contains(&v, needle));
        }
    }
}

async fn reopening_needs_the_same_master_key(subject: Subject) {
    let master = MasterKey::generate().unwrap();
    {
        let s = VaultStore::open(subject.open().await, &master)
            .await
            .unwrap();
        put(&s, "kept", "v1", b"1").await;
    }
    let s = VaultStore::open(subject.open().await, &master)
        .await
        .unwrap();
    assert!(
        s.head::<Meta>(Kind::Secret, "KEPT")
            .await
            .unwrap()
            .is_some()
    );
    drop(s);
    let other = MasterKey::generate().unwrap();
    assert!(matches!(
        VaultStore::open(subject.open().await, &other).await,
        Err(StoreError::MasterKeyMismatch)
    ));
}

async fn a_record_moved_to_another_name_is_refused(subject: Subject) {
    let master = MasterKey::generate().unwrap();
    let backend = subject.open().await;
    let s = VaultStore::open(backend.clone(), &master).await.unwrap();
    put(&s, "a", "v1", b"a").await;
    put(&s, "b", "v1", b"b").await;
    // Copy b's head over a's: the record's identity no longer matches where it is.
    let rows = backend.scan(b"hs").await.unwrap();
    assert_eq!(rows.len(), 2);
    let (a_key, b_val) = (rows[0].0.clone(), rows[1].1.clone());
    backend
        .commit(Batch {
            expect: vec![],
            ops: vec![Op::Put(a_key, b_val)],
        })
        .await
        .unwrap();
    let heads = s.heads::<Meta>(Kind::Secret).await;
    assert!(matches!(heads, Err(StoreError::Integrity(_))), "{heads:?}");
}

async fn concurrent_writers_on_two_replicas_lose_no_update(subject: Subject) {
    let master = MasterKey::generate().unwrap();
    let a = subject.open().await;
    let b = subject.replica(&a).await;
    let sa = Arc::new(VaultStore::open(a, &master).await.unwrap());
    let sb = Arc::new(VaultStore::open(b, &master).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = if i % 2 == 0 { sa.clone() } else { sb.clone() };
        tasks.push(tokio::spawn(async move {
            put(
                &s,
                "counter",
                &format!("v{i:02}"),
                format!("{i}").as_bytes(),
            )
            .await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let h = sa
        .head::<Meta>(Kind::Secret, "counter")
        .await
        .unwrap()
        .unwrap();
    let mut ids: Vec<String> = h.versions.iter().map(|v| v.id.clone()).collect();
    ids.sort();
    let want: Vec<String> = (0..16).map(|i| format!("v{i:02}")).collect();
    assert_eq!(ids, want);
    for i in 0..16 {
        let v = sb
            .value(Kind::Secret, "counter", &format!("v{i:02}"))
            .await
            .unwrap();
        assert_eq!(v.as_slice(), format!("{i}").as_bytes());
    }
}

async fn conditional_batches_apply_all_or_nothing(subject: Subject) {
    let backend = subject.open().await;
    let k = |s: &str| format!("zz/{s}").into_bytes();
    // Expect absent, then put.
    backend
        .commit(Batch {
            expect: vec![(k("a"), None)],
            ops: vec![Op::Put(k("a"), b"1".to_vec())],
        })
        .await
        .unwrap();
    // The same again: the key exists now.
    let again = backend
        .commit(Batch {
            expect: vec![(k("a"), None)],
            ops: vec![Op::Put(k("a"), b"2".to_vec())],
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    // A wrong expectation applies none of the batch's ops.
    let wrong = backend
        .commit(Batch {
            expect: vec![(k("a"), Some(b"9".to_vec()))],
            ops: vec![Op::Put(k("b"), b"x".to_vec()), Op::Delete(k("a"))],
        })
        .await;
    assert!(matches!(wrong, Err(StoreError::Conflict)));
    assert_eq!(backend.get(&k("a")).await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(backend.get(&k("b")).await.unwrap(), None);
    // The right expectation applies all of them.
    backend
        .commit(Batch {
            expect: vec![(k("a"), Some(b"1".to_vec())), (k("b"), None)],
            ops: vec![Op::Put(k("b"), b"x".to_vec()), Op::Delete(k("a"))],
        })
        .await
        .unwrap();
    assert_eq!(backend.get(&k("a")).await.unwrap(), None);
    assert_eq!(backend.get(&k("b")).await.unwrap(), Some(b"x".to_vec()));
}

async fn scans_and_prefix_deletes_keep_to_their_prefix(subject: Subject) {
    let backend = subject.open().await;
    let keys: Vec<Vec<u8>> = vec![
        vec![b'q', 0x00],
        vec![b'q', 0x01, 0xff],
        vec![b'q', 0x01, 0xff, 0xff],
        vec![b'q', 0x01],
        vec![b'q', 0x02],
        vec![b'q', 0xff, 0xff],
        vec![b'r'],
        vec![b'p', 0xff],
    ];
    backend
        .commit(Batch {
            expect: vec![],
            ops: keys.iter().map(|k| Op::Put(k.clone(), k.clone())).collect(),
        })
        .await
        .unwrap();
    let got: Vec<Vec<u8>> = backend
        .scan(&[b'q', 0x01])
        .await
        .unwrap()
        .into_iter()
        .map(|(k, v)| {
            assert_eq!(k, v);
            k
        })
        .collect();
    assert_eq!(
        got,
        vec![
            vec![b'q', 0x01],
            vec![b'q', 0x01, 0xff],
            vec![b'q', 0x01, 0xff, 0xff]
        ]
    );
    assert_eq!(backend.scan(&[b'q', 0xff]).await.unwrap().len(), 1);
    assert_eq!(backend.scan(b"q").await.unwrap().len(), 6);
    backend
        .commit(Batch {
            expect: vec![],
            ops: vec![
                Op::DeletePrefix(vec![b'q', 0x01]),
                Op::DeletePrefix(vec![b'q', 0xff]),
            ],
        })
        .await
        .unwrap();
    let left: Vec<Vec<u8>> = backend
        .scan(b"")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        left,
        vec![
            vec![b'p', 0xff],
            vec![b'q', 0x00],
            vec![b'q', 0x02],
            vec![b'r']
        ]
    );
}

async fn purge_removes_head_and_versions(subject: Subject) {
    let master = MasterKey::generate().unwrap();
    let s = VaultStore::open(subject.open().await, &master)
        .await
        .unwrap();
    put(&s, "x", "v1", b"1").await;
    put(&s, "x", "v2", b"2").await;
    put(&s, "xy", "v1", b"kept").await;
    s.modify::<Meta, (), StoreError>(Kind::Secret, "x", |_| Ok((Change::Purge, ())))
        .await
        .unwrap();
    assert!(s.head::<Meta>(Kind::Secret, "x").await.unwrap().is_none());
    assert!(s.value(Kind::Secret, "x", "v1").await.is_err());
    assert!(s.value(Kind::Secret, "x", "v2").await.is_err());
    assert_eq!(
        s.value(Kind::Secret, "xy", "v1").await.unwrap().as_slice(),
        b"kept"
    );
}

async fn large_values_round_trip(subject: Subject) {
    let master = MasterKey::generate().unwrap();
    let s = VaultStore::open(subject.open().await, &master)
        .await
        .unwrap();
    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i * 7 % 251) as u8).collect();
    put(&s, "big", "v1", &big).await;
    assert_eq!(
        s.value(Kind::Secret, "big", "v1").await.unwrap().as_slice(),
        &big[..]
    );
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Subject::redb()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Subject::postgres()).await;
                }
            )*
        }
    };
}

conformance!(
    sealed_round_trip_reveals_nothing,
    reopening_needs_the_same_master_key,
    a_record_moved_to_another_name_is_refused,
    concurrent_writers_on_two_replicas_lose_no_update,
    conditional_batches_apply_all_or_nothing,
    scans_and_prefix_deletes_keep_to_their_prefix,
    purge_removes_head_and_versions,
    large_values_round_trip,
);
