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

/// Writes `names` as one-version secrets, many objects per batch (one commit each).
async fn put_many(s: &VaultStore, names: &[String]) {
    for chunk in names.chunks(500) {
        let mut batch = Batch::default();
        for name in chunk {
            s.stage(
                &mut batch,
                Kind::Secret,
                name,
                None,
                Change::Put {
                    head: head(name, &["v1"]),
                    values: vec![("v1".into(), Zeroizing::new(name.as_bytes().to_vec()))],
                },
            )
            .unwrap();
        }
        s.commit(batch).await.unwrap();
    }
}

/// Walks a whole listing with `limit` per page; `between(page number)` runs between pages.
async fn walk_listing(s: &VaultStore, deleted: bool, limit: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = s
            .heads_page::<Meta>(Kind::Secret, deleted, after.as_deref(), limit)
            .await
            .unwrap();
        assert!(page.heads.len() <= limit);
        names.extend(page.heads.into_iter().map(|h| h.name));
        match page.next {
            Some(n) => after = Some(n),
            None => return names,
        }
    }
}

async fn paging_through_10000_objects_with_changes_between_pages(subject: Subject) {
    let master = MasterKey::generate().unwrap();
    let s = VaultStore::open(subject.open().await, &master)
        .await
        .unwrap();
    let initial: Vec<String> = (0..10_000).map(|i| format!("obj-{i:05}")).collect();
    put_many(&s, &initial).await;
    // Objects the walk changes: purged, soft-deleted, or added while it runs.
    let touched: Vec<String> = (0..10_000)
        .step_by(37)
        .map(|i| format!("obj-{i:05}"))
        .collect();
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let mut after: Option<Vec<u8>> = None;
    let mut pages = 0usize;
    let mut next_touched = touched.iter();
    loop {
        let page = s
            .heads_page::<Meta>(Kind::Secret, false, after.as_deref(), 25)
            .await
            .unwrap();
        assert!(page.heads.len() <= 25);
        for h in page.heads {
            assert!(h.deleted.is_none());
            *seen.entry(h.name).or_default() += 1;
        }
        pages += 1;
        // Between pages: add two objects, purge one, soft-delete another.
        let added = [format!("new-{pages:04}-a"), format!("new-{pages:04}-b")];
        put_many(&s, &added).await;
        if let Some(name) = next_touched.next() {
            s.modify::<Meta, (), StoreError>(Kind::Secret, name, |_| Ok((Change::Purge, ())))
                .await
                .unwrap();
        }
        if let Some(name) = next_touched.next() {
            s.modify::<Meta, (), StoreError>(Kind::Secret, name, |cur| {
                let mut h = cur.unwrap();
                h.deleted = Some(kvault::server::store::Deleted {
                    deleted_date: 1,
                    scheduled_purge_date: 2,
                });
                Ok((
                    Change::Put {
                        head: h,
                        values: vec![],
                    },
                    (),
                ))
            })
            .await
            .unwrap();
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert!(pages >= 400, "{pages} pages");
    // Nothing twice; everything that existed throughout exactly once.
    assert!(seen.values().all(|&n| n == 1), "an object was listed twice");
    let touched: std::collections::HashSet<&String> = touched.iter().collect();
    for name in initial.iter().filter(|n| !touched.contains(n)) {
        assert_eq!(seen.get(name), Some(&1), "{name} was skipped");
    }
    // The deleted listing has exactly the soft-deleted ones.
    let deleted = walk_listing(&s, true, 25).await;
    assert_eq!(deleted.len(), touched.len() / 2, "{}", touched.len());
}

async fn many_versions_round_trip(subject: Subject) {
    let master = MasterKey::generate().unwrap();
    let s = VaultStore::open(subject.open().await, &master)
        .await
        .unwrap();
    for i in 0..300 {
        put(
            &s,
            "rotated",
            &format!("v{i:04}"),
            format!("value-{i}").as_bytes(),
        )
        .await;
    }
    let h = s
        .head::<Meta>(Kind::Secret, "rotated")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.versions.len(), 300);
    assert_eq!(h.current().unwrap().id, "v0299");
    for (i, v) in h.versions.iter().enumerate() {
        let value = s.value(Kind::Secret, "rotated", &v.id).await.unwrap();
        assert_eq!(value.as_slice(), format!("value-{i}").as_bytes());
    }
    // One object, one listing entry.
    assert_eq!(
        walk_listing(&s, false, 25).await,
        vec!["rotated".to_string()]
    );
}

async fn cursors_refuse_tampering_and_other_listings(subject: Subject) {
    let master = MasterKey::generate().unwrap();
    let s = VaultStore::open(subject.open().await, &master)
        .await
        .unwrap();
    let live = s.listing_id(Kind::Secret, false, None);
    let token = s.seal_cursor(&live, b"position").unwrap();
    assert!(!token.contains(['+', '/', '=']));
    assert_eq!(
        s.open_cursor(&live, &token).as_deref(),
        Some(&b"position"[..])
    );
    // Every single-character change is refused.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for i in 0..token.len() {
        let mut t = token.clone().into_bytes();
        t[i] = if t[i] == alphabet[0] {
            alphabet[1]
        } else {
            alphabet[0]
        };
        let t = String::from_utf8(t).unwrap();
        assert_eq!(s.open_cursor(&live, &t), None, "tampered at {i}");
    }
    // Bound to its listing and to its vault.
    for other in [
        s.listing_id(Kind::Secret, true, None),
        s.listing_id(Kind::Key, false, None),
        s.listing_id(Kind::Secret, false, Some("a")),
    ] {
        assert_eq!(s.open_cursor(&other, &token), None);
    }
    let other_vault = VaultStore::open(
        Subject::redb().open().await,
        &MasterKey::generate().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(other_vault.open_cursor(&live, &token), None);
    assert_eq!(s.open_cursor(&live, "!!"), None);
    assert_eq!(s.open_cursor(&live, ""), None);
}

/// The layout before the listing index (main ≤ bc8b060) is this one without the index
/// entries and the schema record: strip them through the raw backend, as if an old kvault
/// had written the data, and open it again.
async fn an_old_layout_is_migrated_in_place(subject: Subject) {
    let master = MasterKey::generate().unwrap();
    let names: Vec<String> = (0..700).map(|i| format!("old-{i:04}")).collect();
    {
        let s = VaultStore::open(subject.open().await, &master)
            .await
            .unwrap();
        put_many(&s, &names).await;
        put(&s, "old-0001", "v2", b"second").await;
        s.modify::<Meta, (), StoreError>(Kind::Secret, "old-0002", |cur| {
            let mut h = cur.unwrap();
            h.deleted = Some(kvault::server::store::Deleted {
                deleted_date: 1,
                scheduled_purge_date: 2,
            });
            Ok((
                Change::Put {
                    head: h,
                    values: vec![],
                },
                (),
            ))
        })
        .await
        .unwrap();
        assert_eq!(s.schema_version().await.unwrap(), 2);
    }
    let backend = subject.open().await;
    backend
        .commit(Batch {
            expect: vec![],
            ops: vec![
                Op::DeletePrefix(b"l".to_vec()),
                Op::Delete(b"m/schema".to_vec()),
            ],
        })
        .await
        .unwrap();
    assert!(backend.scan(b"l").await.unwrap().is_empty());
    let before = backend.scan(b"").await.unwrap();
    let s = VaultStore::open(backend.clone(), &master).await.unwrap();
    assert_eq!(s.schema_version().await.unwrap(), 2);
    // Nothing lost or changed: every earlier record is still there, byte for byte.
    let after = backend.scan(b"").await.unwrap();
    for row in &before {
        assert!(after.contains(row), "a record changed in the migration");
    }
    let mut live = walk_listing(&s, false, 25).await;
    live.sort();
    let mut expected: Vec<String> = names.iter().filter(|n| *n != "old-0002").cloned().collect();
    expected.sort();
    assert_eq!(live, expected);
    assert_eq!(
        walk_listing(&s, true, 25).await,
        vec!["old-0002".to_string()]
    );
    assert_eq!(
        s.value(Kind::Secret, "old-0001", "v2")
            .await
            .unwrap()
            .as_slice(),
        b"second"
    );
    // Opening again does not migrate again.
    drop(s);
    let s = VaultStore::open(backend, &master).await.unwrap();
    assert_eq!(
        walk_listing(&s, true, 25).await,
        vec!["old-0002".to_string()]
    );
}

/// A data directory written by kvault main at bc8b060 (`kvault dev`, before the listing
/// index; see fixtures/main-layout-v1/README.md) opens, is migrated, and reads back whole.
#[tokio::test]
async fn a_data_directory_written_by_main_opens_migrated_and_whole() {
    use serde_json::Value;
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/main-layout-v1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kvault.redb");
    std::fs::copy(fixture.join("kvault.redb"), &file).unwrap();
    let master =
        MasterKey::from_file_contents(&std::fs::read(fixture.join("master.key")).unwrap()).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(RedbBackend::open(&file).unwrap());
    assert!(
        backend.scan(b"l").await.unwrap().is_empty(),
        "the fixture predates the index"
    );
    let s = VaultStore::open(backend.clone(), &master).await.unwrap();
    assert_eq!(s.schema_version().await.unwrap(), 2);

    let listed = |kind, deleted| {
        let s = &s;
        async move {
            let mut names = Vec::new();
            let mut after: Option<Vec<u8>> = None;
            loop {
                let page = s
                    .heads_page::<Value>(kind, deleted, after.as_deref(), 2)
                    .await
                    .unwrap();
                names.extend(page.heads.into_iter().map(|h| h.name));
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            names.sort();
            names
        }
    };
    let mut secrets: Vec<String> = (0..5).map(|i| format!("Fx-Secret-{i}")).collect();
    secrets.push("fx-cert".into());
    secrets.sort();
    assert_eq!(listed(Kind::Secret, false).await, secrets);
    assert_eq!(
        listed(Kind::Secret, true).await,
        vec!["fx-gone".to_string()]
    );
    assert_eq!(
        listed(Kind::Key, false).await,
        vec![
            "fx-cert".to_string(),
            "fx-key-ec".into(),
            "fx-key-oct".into()
        ]
    );
    assert_eq!(
        listed(Kind::Certificate, false).await,
        vec!["fx-cert".to_string()]
    );

    // Every version of every object reads back.
    for i in 0..5 {
        let name = format!("fx-secret-{i}");
        let h = s.head::<Value>(Kind::Secret, &name).await.unwrap().unwrap();
        assert_eq!(h.versions.len(), 3);
        for (v, version) in h.versions.iter().enumerate() {
            let value = s.value(Kind::Secret, &name, &version.id).await.unwrap();
            assert_eq!(value.as_slice(), format!("fx-{i}-{v}").as_bytes());
        }
    }
    let gone = s
        .head::<Value>(Kind::Secret, "fx-gone")
        .await
        .unwrap()
        .unwrap();
    assert!(gone.deleted.is_some());
    for (v, version) in gone.versions.iter().enumerate() {
        let value = s.value(Kind::Secret, "fx-gone", &version.id).await.unwrap();
        assert_eq!(value.as_slice(), format!("gone-{v}").as_bytes());
    }
    for (kind, name, versions) in [
        (Kind::Key, "fx-key-ec", 2),
        (Kind::Key, "fx-key-oct", 1),
        (Kind::Key, "fx-cert", 1),
        (Kind::Certificate, "fx-cert", 1),
        (Kind::Secret, "fx-cert", 1),
    ] {
        let h = s.head::<Value>(kind, name).await.unwrap().unwrap();
        assert_eq!(h.versions.len(), versions, "{name}");
        for version in &h.versions {
            assert!(!s.value(kind, name, &version.id).await.unwrap().is_empty());
        }
    }
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
    paging_through_10000_objects_with_changes_between_pages,
    many_versions_round_trip,
    cursors_refuse_tampering_and_other_listings,
    an_old_layout_is_migrated_in_place,
);
