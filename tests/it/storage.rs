//! Storage: restarts keep everything, a wrong master key stops start-up, tampered or
//! swapped records are refused, and an acknowledged write survives kill -9.

use crate::common::*;
use kvault::server::config::StorageConfig;
use kvault::server::store::redb::RedbBackend;
use kvault::server::store::{Backend, Batch, Op};
use kvault::server::{Server, StartError};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn restart_keeps_every_object_and_no_plaintext_reaches_the_file() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    c.set_secret("persist", &set("plaintext-marker-1"))
        .await
        .unwrap();
    c.set_secret("persist", &set("plaintext-marker-2"))
        .await
        .unwrap();
    c.set_secret("deleted-one", &set("plaintext-marker-3"))
        .await
        .unwrap();
    c.delete_secret("deleted-one").await.unwrap();
    v.stop().await;

    let bytes = std::fs::read(fx.data_dir().join("kvault.redb")).unwrap();
    for needle in ["plaintext-marker", "persist", "deleted-one"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} found in the data file"
        );
    }

    let v = fx.start(Options::default()).await;
    let c = v.client();
    assert_eq!(
        c.get_secret("persist", None)
            .await
            .unwrap()
            .value
            .as_deref(),
        Some("plaintext-marker-2")
    );
    assert_eq!(c.list_secret_versions("persist").await.unwrap().len(), 2);
    assert!(c.get_deleted_secret("deleted-one").await.is_ok());
    v.stop().await;
}

#[tokio::test]
async fn a_master_key_that_does_not_open_the_data_stops_start_up() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    v.client().set_secret("x", &set("1")).await.unwrap();
    v.stop().await;
    std::fs::write(
        &fx.master_key,
        kvault::crypto::MasterKey::generate()
            .unwrap()
            .to_base64()
            .as_bytes(),
    )
    .unwrap();
    let err = Server::start(fx.config(&Options::default()))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StartError::Store { .. }), "{err}");
    assert!(err.to_string().contains("master key"), "{err}");
    // The port never opened.
    assert!(std::net::TcpStream::connect(("127.0.0.1", fx.port)).is_err());
}

#[tokio::test]
async fn tampered_and_swapped_records_are_refused_not_served() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    c.set_secret("a", &set("value-a")).await.unwrap();
    c.set_secret("b", &set("value-b")).await.unwrap();
    v.stop().await;

    let backend = RedbBackend::open(&fx.data_dir().join("kvault.redb")).unwrap();
    let values = backend.scan(b"v").await.unwrap();
    assert_eq!(values.len(), 2);
    // Swap the two value records.
    backend
        .commit(Batch {
            expect: vec![],
            ops: vec![
                Op::Put(values[0].0.clone(), values[1].1.clone()),
                Op::Put(values[1].0.clone(), values[0].1.clone()),
            ],
        })
        .await
        .unwrap();
    drop(backend);

    let v = fx.start(Options::default()).await;
    let http = v.http();
    for name in ["a", "b"] {
        let r = http
            .get(v.at(&format!("/secrets/{name}/?api-version=7.4")))
            .bearer_auth(&v.token)
            .send()
            .await
            .unwrap();
        let body = r.text().await.unwrap();
        assert!(body.contains("RecordIntegrityFailure"), "{body}");
        assert!(!body.contains("value-"), "{body}");
    }
    v.stop().await;

    // Flip one bit inside a head record: listing refuses rather than serving garbage.
    let backend = RedbBackend::open(&fx.data_dir().join("kvault.redb")).unwrap();
    let heads = backend.scan(b"h").await.unwrap();
    let (k, mut val) = heads[0].clone();
    let mid = val.len() / 2;
    val[mid] ^= 0x01;
    backend
        .commit(Batch {
            expect: vec![],
            ops: vec![Op::Put(k, val)],
        })
        .await
        .unwrap();
    drop(backend);
    let v = fx.start(Options::default()).await;
    let r = v
        .http()
        .get(v.at("/secrets?api-version=7.4"))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(r).await,
        (500, "RecordIntegrityFailure".to_string())
    );
    v.stop().await;
}

/// Writers race a SIGKILL of the real binary: every acknowledged write is there after a
/// restart, and every listed secret reads back whole.
async fn acknowledged_writes_survive_kill_9(storage: StorageConfig) {
    let fx = Fixture::new();
    let port = free_port();
    let mut child = fx.spawn_process(port, &storage);
    child.wait_healthy().await;

    let acked = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let c = child.vault.client();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..1000 {
                let name = format!("w{w}-{i}");
                let value = format!("value-{w}-{i}");
                match c.set_secret(&name, &set(&value)).await {
                    Ok(_) => acked.lock().unwrap().push((name, value)),
                    Err(_) => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill(); // SIGKILL
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 10, "only {} writes acknowledged", acked.len());

    let child = fx.spawn_process(port, &storage);
    child.wait_healthy().await;
    let c = child.vault.client();
    for (name, value) in &acked {
        let got = c.get_secret(name, None).await.unwrap();
        assert_eq!(got.value.as_deref(), Some(value.as_str()), "{name}");
    }
    // Nothing half-written: every listed secret reads back whole.
    for item in c.list_secrets().await.unwrap() {
        let name = item.id.rsplit('/').next().unwrap().to_string();
        let got = c.get_secret(&name, None).await.unwrap();
        assert!(got.value.unwrap().starts_with("value-"));
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_embedded() {
    let dir = tempfile::tempdir().unwrap();
    acknowledged_writes_survive_kill_9(StorageConfig::Embedded {
        dir: dir.path().join("data"),
    })
    .await;
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_postgres() {
    acknowledged_writes_survive_kill_9(StorageConfig::Postgres(postgres("kill9"))).await;
}
