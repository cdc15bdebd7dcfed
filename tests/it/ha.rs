//! High availability: several `kvault server` processes of one vault on one PostgreSQL
//! database (the test database of `scripts/test-postgres`).

use crate::common::*;
use kvault::server::config::StorageConfig;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

async fn two_replicas(fx: &Fixture, name: &str) -> (ServerProcess, ServerProcess) {
    let storage = StorageConfig::Postgres(postgres(name));
    let a = fx.spawn_process(free_port(), &storage);
    // B after A is up: both would migrate the schema safely, but A first keeps the test
    // about replication, not start-up.
    a.wait_healthy().await;
    let b = fx.spawn_process(free_port(), &storage);
    b.wait_healthy().await;
    (a, b)
}

#[tokio::test]
async fn writes_from_both_replicas_all_land_and_the_last_is_current() {
    let fx = Fixture::new();
    let (a, b) = two_replicas(&fx, "writes").await;
    let (ca, cb) = (a.vault.client(), b.vault.client());

    // In turn: every version listed, the last acknowledged one current on both.
    let mut acked = Vec::new();
    for i in 0..10 {
        let c = if i % 2 == 0 { &ca } else { &cb };
        let s = c
            .set_secret("shared", &set(&format!("turn-{i}")))
            .await
            .unwrap();
        acked.push(s.id.rsplit('/').next().unwrap().to_string());
    }
    for c in [&ca, &cb] {
        assert_eq!(
            c.get_secret("shared", None).await.unwrap().value.as_deref(),
            Some("turn-9")
        );
    }

    // At once: 2 × 10 concurrent sets of one secret give 20 more versions, none lost.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = if i % 2 == 0 { ca.clone() } else { cb.clone() };
        tasks.push(tokio::spawn(async move {
            let s = c
                .set_secret("shared", &set(&format!("race-{i}")))
                .await
                .unwrap();
            s.id.rsplit('/').next().unwrap().to_string()
        }));
    }
    for t in tasks {
        acked.push(t.await.unwrap());
    }
    let listed: Vec<String> = cb
        .list_secret_versions("shared")
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.id.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(listed.len(), 30, "{listed:?}");
    for id in &acked {
        assert!(
            listed.contains(id),
            "version {id} acknowledged but not listed"
        );
    }
    let current = ca.get_secret("shared", None).await.unwrap();
    assert!(current.value.unwrap().starts_with("race-"));
}

#[tokio::test]
async fn a_read_on_one_replica_returns_a_write_just_acknowledged_by_the_other() {
    let fx = Fixture::new();
    let (a, b) = two_replicas(&fx, "reads").await;
    let (ca, cb) = (a.vault.client(), b.vault.client());
    for i in 0..40 {
        let (w, r) = if i % 2 == 0 { (&ca, &cb) } else { (&cb, &ca) };
        let value = format!("value-{i}");
        w.set_secret("fresh", &set(&value)).await.unwrap();
        let got = r.get_secret("fresh", None).await.unwrap();
        assert_eq!(got.value.as_deref(), Some(value.as_str()), "round {i}");
    }
    // Deletes too: gone on the other replica at once.
    ca.delete_secret("fresh").await.unwrap();
    assert!(cb.get_secret("fresh", None).await.is_err());
    assert!(cb.get_deleted_secret("fresh").await.is_ok());
}

#[tokio::test]
async fn a_policy_push_to_one_replica_applies_on_the_other() {
    let fx = Fixture::new();
    let (a, b) = two_replicas(&fx, "policy").await;
    a.vault.client().set_secret("s", &set("v")).await.unwrap();
    let bob = b.vault.client_with(&fx.token_for("bob", json!({})));
    assert!(
        bob.get_secret("s", None).await.is_err(),
        "bob has no grant yet"
    );

    let operator = a.vault.client_with(&fx.token_for(OPERATOR, json!({})));
    let mut doc = kvault::server::dev_policy("alice");
    doc.generation = 2;
    let mut grant = doc.role_assignments[0].clone();
    grant.principal.name = "bob".into();
    grant.role = kvault::policy::BuiltInRole::SecretsUser;
    doc.role_assignments.push(grant);
    let pushed = Instant::now();
    operator.put_policy(&doc).await.unwrap();

    // B learns of it through the database's notification, not by polling.
    let mut took = None;
    while pushed.elapsed() < Duration::from_secs(5) {
        if bob.get_secret("s", None).await.is_ok() {
            took = Some(pushed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = took.expect("the pushed policy never applied on the other replica");
    eprintln!("policy applied on the other replica after {took:?}");
    let status = b
        .vault
        .client_with(&fx.token_for(OPERATOR, json!({})))
        .get_policy()
        .await
        .unwrap();
    assert_eq!(status.applied_generation, 2);
}

async fn leaders(replicas: &[&ServerProcess]) -> Vec<f64> {
    let mut out = Vec::new();
    for r in replicas {
        out.push(
            r.metric("kvault_background_jobs_leader")
                .await
                .unwrap_or(-1.0),
        );
    }
    out
}

#[tokio::test]
async fn background_jobs_run_on_one_replica_and_move_when_it_dies() {
    let fx = Fixture::new();
    let (a, b) = two_replicas(&fx, "lease").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = leaders(&[&a, &b]).await;
    while seen.iter().filter(|v| **v == 1.0).count() != 1 || seen.contains(&-1.0) {
        assert!(Instant::now() < deadline, "no single leader: {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen = leaders(&[&a, &b]).await;
    }
    // Stable: still exactly one a while later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = leaders(&[&a, &b]).await;
    assert_eq!(again, seen, "the lease moved without a failure");

    let (mut holder, other) = if seen[0] == 1.0 { (a, b) } else { (b, a) };
    holder.kill(); // SIGKILL: its database session ends with it
    let killed = Instant::now();
    loop {
        if other.metric("kvault_background_jobs_leader").await == Some(1.0) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "the lease never moved to the surviving replica"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("lease moved after {:?}", killed.elapsed());
}

/// A TCP proxy in front of the database that can cut every connection and refuse new ones.
struct CutProxy {
    port: u16,
    open: Arc<AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let links = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (o, l) = (open.clone(), links.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    return;
                };
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut up) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                l.lock().unwrap().push(link);
            }
        });
        Self {
            port,
            open,
            links,
            accept,
        }
    }
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for l in self.links.lock().unwrap().drain(..) {
            l.abort();
        }
    }
    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

#[tokio::test]
async fn a_lost_database_answers_503_with_retry_after_and_recovers_by_itself() {
    let mut pg = postgres("lost");
    let upstream = pg
        .url
        .parse::<tokio_postgres::Config>()
        .unwrap()
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432);
    let proxy = CutProxy::start(upstream).await;
    pg.url = pg
        .url
        .replace(&format!(":{upstream}/"), &format!(":{}/", proxy.port));
    let fx = Fixture::new();
    let v = fx
        .start(Options {
            storage: Some(StorageConfig::Postgres(pg)),
            ..Options::default()
        })
        .await;
    let c = v.client();
    c.set_secret("before", &set("1")).await.unwrap();

    proxy.cut();
    for attempt in [
        v.http()
            .get(v.at("/secrets/before?api-version=7.4"))
            .bearer_auth(&v.token)
            .send()
            .await
            .unwrap(),
        v.http()
            .put(v.at("/secrets/during?api-version=7.4"))
            .bearer_auth(&v.token)
            .json(&json!({"value": "never acknowledged"}))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(attempt.status().as_u16(), 503);
        assert!(attempt.headers().get("retry-after").is_some());
        let (_, code) = error_code(attempt).await;
        assert_eq!(code, "ServiceUnavailable");
    }

    proxy.restore();
    let back = Instant::now();
    loop {
        match c.get_secret("before", None).await {
            Ok(s) => {
                assert_eq!(s.value.as_deref(), Some("1"));
                break;
            }
            Err(e) => assert!(
                back.elapsed() < Duration::from_secs(15),
                "never reconnected: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("reconnected after {:?}", back.elapsed());
    // The write refused while the database was away did not happen.
    assert!(c.get_secret("during", None).await.is_err());
    c.set_secret("after", &set("2")).await.unwrap();
    v.stop().await;
}
