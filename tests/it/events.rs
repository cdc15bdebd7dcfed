//! Event notifications end to end: a real `kvault server` delivering CloudEvents to a real
//! in-process HTTPS receiver (its own test CA, given to the subscription as `caBundle`).

use crate::common::{Certs, Fixture, OPERATOR, Options, free_port, make_certs, now};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use kvault::client::{ClientConfig, VaultClient};
use kvault::clock::{Clock, ManualClock};
use kvault::policy::PolicyDocument;
use kvault::server::events::{EventsConfig, OUTBOX, scanner};
use kvault::server::tls::{ReloadingCert, TlsMinVersion, server_config};
use kvault::server::{AppState, Server};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

const DAY: i64 = 86_400;
const HOOK_TOKEN: &str = "Bearer hook-token-s3cr3t-never-logged";
const SECRET_VALUE: &str = "s3cr3t-value-that-no-event-may-carry";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    /// What the receiver answered.
    status: u16,
    content_type: String,
    auth: Option<String>,
    raw: String,
    event: Value,
}

/// A webhook endpoint over HTTPS that answers `fail_status` to its first `fail_first`
/// requests, then 200.
struct Receiver {
    ca_pem: String,
    seen: Arc<Mutex<Vec<Delivery>>>,
    task: tokio::task::JoinHandle<()>,
}

type HookState = (Arc<Mutex<Vec<Delivery>>>, Arc<AtomicUsize>, u16);

async fn hook(
    State((seen, remaining, fail_status)): State<HookState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let fail = remaining
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if fail { fail_status } else { 200 };
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let raw = String::from_utf8_lossy(&body).into_owned();
    seen.lock().unwrap().push(Delivery {
        status,
        content_type: header("content-type").unwrap_or_default(),
        auth: header("authorization"),
        event: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
    });
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    async fn start(dir: &Path, port: u16, fail_first: usize, fail_status: u16) -> Self {
        let certs = make_certs(dir, &format!("hook-{port}"));
        Self::serve(&certs, port, fail_first, fail_status).await
    }

    /// A receiver with certificates made earlier.
    async fn serve(certs: &Certs, port: u16, fail_first: usize, fail_status: u16) -> Self {
        let rc = Arc::new(ReloadingCert::load(certs.cert.clone(), certs.key.clone()).unwrap());
        let acceptor = TlsAcceptor::from(server_config(rc, TlsMinVersion::Tls12).unwrap());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state: HookState = (
            seen.clone(),
            Arc::new(AtomicUsize::new(fail_first)),
            fail_status,
        );
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper_util::service::TowerToHyperService::new(app);
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Self {
            ca_pem: std::fs::read_to_string(&certs.ca_pem).unwrap(),
            seen,
            task,
        }
    }

    fn seen(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().clone()
    }

    /// The acknowledged events.
    fn delivered(&self) -> Vec<Value> {
        self.seen()
            .into_iter()
            .filter(|d| d.status == 200)
            .map(|d| d.event)
            .collect()
    }

    /// Waits (up to 20 s) until `done` holds for what was received.
    async fn wait_until(&self, what: &str, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        for _ in 0..400 {
            let seen = self.seen();
            if done(&seen) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got: Vec<(u16, String, String)> = self
            .seen()
            .iter()
            .map(|d| {
                (
                    d.status,
                    d.event["type"].as_str().unwrap_or_default().to_string(),
                    d.event["subject"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        panic!("timed out waiting for {what}; received: {got:#?}");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn endpoint(port: u16) -> String {
    format!("https://localhost:{port}/hook")
}

/// Quick delivery timings for tests.
fn fast() -> EventsConfig {
    EventsConfig {
        initial_backoff: Duration::from_millis(40),
        max_backoff: Duration::from_millis(300),
        poll_interval: Duration::from_millis(50),
        // The tests run the scanner themselves, on the manual clock.
        scan_interval: Duration::from_secs(3600),
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// `dev_policy("alice")` with these event settings.
fn policy_with(events: Value) -> PolicyDocument {
    let mut doc = kvault::server::dev_policy("alice");
    doc.events = Some(serde_json::from_value(events).unwrap());
    doc
}

fn subscription(name: &str, port: u16, ca_pem: &str, extra: Value) -> Value {
    let mut s = json!({
        "name": name,
        "endpoint": endpoint(port),
        "caBundle": ca_pem,
        "authHeader": {"name": "Authorization", "value": HOOK_TOKEN},
    });
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

/// A vault started with these delivery timings.
struct Running {
    state: Arc<AppState>,
    metrics: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(fx: &Fixture, opts: &Options) -> Self {
        let mut config = fx.config(opts);
        config.events = fast();
        let server = Server::start(config).await.unwrap();
        let state = server.state();
        let metrics = server.metrics_addr().unwrap();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(server.serve(async move {
            let _ = rx.await;
        }));
        Self {
            state,
            metrics,
            stop,
            handle,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap();
    }

    async fn scan(&self) -> scanner::ScanSummary {
        scanner::scan_once(&self.state).await.unwrap()
    }

    /// Waits (up to 10 s) for the outbox to be empty.
    async fn outbox_drains(&self) {
        for _ in 0..200 {
            if self.outbox_len().await == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(self.outbox_len().await, 0, "the outbox did not drain");
    }

    async fn outbox_len(&self) -> usize {
        self.state.store.meta_scan(OUTBOX).await.unwrap().len()
    }

    async fn metrics_text(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn client(fx: &Fixture, who: &str) -> VaultClient {
    VaultClient::new(ClientConfig {
        url: fx.url(),
        token: Zeroizing::new(fx.token_for(who, json!({}))),
        ca_file: Some(fx.certs.ca_pem.clone()),
    })
    .unwrap()
}

async fn set_secret(c: &VaultClient, name: &str, exp: Option<i64>) -> String {
    let params = serde_json::from_value(json!({
        "value": SECRET_VALUE,
        "attributes": {"exp": exp},
    }))
    .unwrap();
    let b = c.set_secret(name, &params).await.unwrap();
    b.id.rsplit('/').next().unwrap().to_string()
}

async fn create_key(c: &VaultClient, name: &str, exp: i64) -> String {
    let params = serde_json::from_value(json!({
        "kty": "EC", "crv": "P-256", "attributes": {"exp": exp}
    }))
    .unwrap();
    let k = c.create_key(name, &params).await.unwrap();
    k.key.kid.unwrap().rsplit('/').next().unwrap().to_string()
}

async fn create_certificate(c: &VaultClient, name: &str, policy: Value) {
    let params = serde_json::from_value(json!({ "policy": policy })).unwrap();
    c.create_certificate(name, &params).await.unwrap();
}

fn types_of(events: &[Value]) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("Microsoft.KeyVault.")
                    .to_string(),
                e["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    t.sort();
    t
}

fn pair(t: &str, s: &str) -> (String, String) {
    (t.to_string(), s.to_string())
}

#[tokio::test]
async fn every_event_type_reaches_a_real_https_receiver_with_the_right_fields() {
    let fx = Fixture::new();
    let hook_port = free_port();
    let rx = Receiver::start(fx.dir.path(), hook_port, 0, 500).await;
    let clock = ManualClock::new(now());
    let t0 = clock.now();
    let opts = Options {
        clock: Some(clock.clone()),
        policy: Some(policy_with(json!({
            "nearExpiryDays": 10,
            "subscriptions": [subscription("hook", hook_port, &rx.ca_pem, json!({}))]
        }))),
        ..Default::default()
    };
    let v = Running::start(&fx, &opts).await;
    let c = client(&fx, "alice");

    // Installing the policy at start is a policy change.
    rx.wait_until("VaultAccessPolicyChanged", |s| s.len() == 1)
        .await;

    let secret_version = set_secret(&c, "db-password", Some(t0 + 40 * DAY)).await;
    let key_version = create_key(&c, "signing", t0 + 40 * DAY).await;
    create_certificate(
        &c,
        "web",
        json!({
            "x509_props": {"subject": "CN=web.example.test", "validity_months": 3},
            "issuer": {"name": "Self"}
        }),
    )
    .await;
    let cert = c.get_certificate("web", None).await.unwrap();
    let cert_exp = cert.attributes.exp.unwrap();
    let cert_version = cert.id.rsplit('/').next().unwrap().to_string();
    // A secret without an expiry never raises expiry events.
    set_secret(&c, "no-expiry", None).await;

    rx.wait_until("the new-version events", |s| s.len() == 7)
        .await;

    // Not near expiry yet.
    assert_eq!(v.scan().await.fired, 0);
    // 5 days before the secret and key expire (threshold 10 days). (Each step waits for
    // the deliveries: a jump of the clock beyond the time to live would dead-letter them.)
    clock.set(t0 + 35 * DAY);
    assert_eq!(v.scan().await.fired, 2);
    assert_eq!(
        v.scan().await.fired,
        0,
        "near expiry fires once per version"
    );
    rx.wait_until("near expiry", |s| s.len() == 9).await;
    // They are expired; the certificate (and its key and secret) is near expiry.
    clock.set(cert_exp - 5 * DAY);
    assert_eq!(v.scan().await.fired, 5);
    rx.wait_until("expiry and near expiry", |s| s.len() == 14)
        .await;
    // The certificate expired too.
    clock.set(cert_exp + 1);
    assert_eq!(v.scan().await.fired, 3);
    assert_eq!(v.scan().await.fired, 0, "expired fires once per version");
    rx.wait_until("the certificate's expiry", |s| s.len() == 17)
        .await;

    // A policy push by the control plane.
    let op = client(&fx, OPERATOR);
    let mut next = op.get_policy().await.unwrap().policy;
    // The header value is never read back …
    assert!(!serde_json::to_string(&next).unwrap().contains("s3cr3t"));
    next.generation += 1;
    next.throttling.enabled = true;
    // … and a document pushed back as read keeps it.
    op.put_policy(&next).await.unwrap();

    let all = rx.wait_until("every event", |s| s.len() == 18).await;
    let events: Vec<Value> = all.iter().map(|d| d.event.clone()).collect();
    assert_eq!(
        types_of(&events),
        vec![
            pair("CertificateExpired", "web"),
            pair("CertificateNearExpiry", "web"),
            pair("CertificateNewVersionCreated", "web"),
            pair("KeyExpired", "signing"),
            pair("KeyExpired", "web"),
            pair("KeyNearExpiry", "signing"),
            pair("KeyNearExpiry", "web"),
            pair("KeyNewVersionCreated", "signing"),
            pair("KeyNewVersionCreated", "web"),
            pair("SecretExpired", "db-password"),
            pair("SecretExpired", "web"),
            pair("SecretNearExpiry", "db-password"),
            pair("SecretNearExpiry", "web"),
            pair("SecretNewVersionCreated", "db-password"),
            pair("SecretNewVersionCreated", "no-expiry"),
            pair("SecretNewVersionCreated", "web"),
            pair("VaultAccessPolicyChanged", "t"),
            pair("VaultAccessPolicyChanged", "t"),
        ]
    );
    let all_types: BTreeSet<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(all_types.len(), 10, "{all_types:?}");

    let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique");
    for d in &all {
        assert_eq!(
            d.content_type,
            "application/cloudevents+json; charset=utf-8"
        );
        assert_eq!(d.auth.as_deref(), Some(HOOK_TOKEN));
        let e = &d.event;
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["source"], fx.url());
        assert_eq!(e["datacontenttype"], "application/json");
        let time = e["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.len() == 20, "{time}");
        assert_eq!(e["data"]["VaultName"], "t");
        // Never a value.
        assert!(!d.raw.contains(SECRET_VALUE), "{}", d.raw);
        assert!(!d.raw.contains("\"value\""), "{}", d.raw);
        assert!(!d.raw.contains("PRIVATE KEY"), "{}", d.raw);
    }
    let find = |t: &str, s: &str| {
        events
            .iter()
            .find(|e| e["type"] == format!("Microsoft.KeyVault.{t}") && e["subject"] == s)
            .unwrap()
    };
    let e = find("SecretNewVersionCreated", "db-password");
    assert_eq!(
        e["data"],
        json!({
            "Id": format!("{}/secrets/db-password/{secret_version}", fx.url()),
            "VaultName": "t",
            "ObjectType": "Secret",
            "ObjectName": "db-password",
            "Version": secret_version,
            "EXP": t0 + 40 * DAY,
        })
    );
    assert_eq!(e["time"], kvault::clock::rfc3339(t0));
    let e = find("KeyNearExpiry", "signing");
    assert_eq!(e["data"]["ObjectType"], "Key");
    assert_eq!(e["data"]["Version"], key_version.as_str());
    assert_eq!(e["data"]["EXP"], t0 + 40 * DAY);
    assert_eq!(e["time"], kvault::clock::rfc3339(t0 + 35 * DAY));
    let e = find("CertificateExpired", "web");
    assert_eq!(e["data"]["ObjectType"], "Certificate");
    assert_eq!(e["data"]["Version"], cert_version.as_str());
    assert_eq!(e["data"]["EXP"], cert_exp);
    assert!(e["data"]["NBF"].is_i64());
    assert_eq!(
        e["data"]["Id"],
        format!("{}/certificates/web/{cert_version}", fx.url())
    );
    let e = find("VaultAccessPolicyChanged", "t");
    assert_eq!(e["data"]["ObjectType"], "Vault");
    assert_eq!(e["data"]["Id"], fx.url());

    // The expiry report the operator reads.
    let report = op.get_expiring().await.unwrap();
    assert_eq!(report.near_expiry_days, 10);
    let reported: Vec<(&str, &str)> = report
        .value
        .iter()
        .map(|o| (o.event_type.as_str(), o.object_name.as_str()))
        .collect();
    assert_eq!(reported.len(), 5, "{reported:?}");
    assert!(reported.contains(&("Microsoft.KeyVault.CertificateExpired", "web")));
    assert!(reported.contains(&("Microsoft.KeyVault.SecretExpired", "db-password")));
    // Only the control plane reads it.
    assert_eq!(c.get_expiring().await.unwrap_err().status(), Some(403));

    // Nothing waits in the outbox; the header value reached no log.
    v.outbox_drains().await;
    assert!(
        v.metrics_text().await.contains(
            "kvault_event_deliveries_total{subscription=\"hook\",outcome=\"delivered\"} 18"
        )
    );
    v.stop().await;
    let audit = std::fs::read_to_string(fx.audit_path()).unwrap();
    assert!(!audit.contains("s3cr3t"));
    assert!(audit.contains("GetExpiringObjects"));
}

#[tokio::test]
async fn a_receiver_that_fails_n_times_gets_the_event_once_acknowledged() {
    let fx = Fixture::new();
    let hook_port = free_port();
    let rx = Receiver::start(fx.dir.path(), hook_port, 3, 503).await;
    let opts = Options {
        policy: Some(policy_with(json!({"subscriptions": [subscription(
            "flaky",
            hook_port,
            &rx.ca_pem,
            json!({"includedEventTypes": ["SecretNewVersionCreated"]})
        )]}))),
        ..Default::default()
    };
    let v = Running::start(&fx, &opts).await;
    let c = client(&fx, "alice");
    let version = set_secret(&c, "api-token", None).await;

    let seen = rx
        .wait_until("the acknowledged delivery", |s| {
            s.iter().any(|d| d.status == 200)
        })
        .await;
    // Three refusals, then the acknowledgement: the same event each time.
    assert_eq!(
        seen.iter().map(|d| d.status).collect::<Vec<_>>(),
        vec![503, 503, 503, 200]
    );
    let ids: HashSet<&str> = seen
        .iter()
        .map(|d| d.event["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(seen[3].event["data"]["Version"], version.as_str());
    // Once acknowledged it is not sent again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.seen().len(), 4);
    assert_eq!(rx.delivered().len(), 1);
    v.outbox_drains().await;
    let metrics = v.metrics_text().await;
    assert!(
        metrics
            .contains("kvault_event_deliveries_total{subscription=\"flaky\",outcome=\"failed\"} 3")
    );
    assert!(
        metrics.contains(
            "kvault_event_deliveries_total{subscription=\"flaky\",outcome=\"delivered\"} 1"
        )
    );
    assert!(metrics.contains("kvault_events_pending 0"));
    v.stop().await;
}

#[tokio::test]
async fn undelivered_events_are_delivered_after_a_restart() {
    let fx = Fixture::new();
    // Nothing listens there yet; the receiver's certificates exist already.
    let hook_port = free_port();
    let certs = make_certs(fx.dir.path(), &format!("hook-{hook_port}"));
    let ca_pem = std::fs::read_to_string(&certs.ca_pem).unwrap();
    let opts = Options {
        policy: Some(policy_with(json!({"subscriptions": [subscription(
            "later",
            hook_port,
            &ca_pem,
            json!({"includedEventTypes": ["SecretNewVersionCreated"]})
        )]}))),
        ..Default::default()
    };
    let v = Running::start(&fx, &opts).await;
    let c = client(&fx, "alice");
    let version = set_secret(&c, "kept", None).await;
    // It waits in the outbox, with failed attempts.
    let mut staged = Value::Null;
    for _ in 0..200 {
        let pending = v.state.store.meta_scan(OUTBOX).await.unwrap();
        assert_eq!(pending.len(), 1);
        staged = serde_json::from_slice(&pending[0].1).unwrap();
        if staged["attempts"].as_u64().unwrap() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(staged["attempts"].as_u64().unwrap() >= 1, "{staged}");
    assert!(staged["lastError"].is_string(), "{staged}");
    let event_id = staged["event"]["id"].as_str().unwrap().to_string();
    // The outbox is sealed like every record.
    let db = std::fs::read(fx.data_dir().join("kvault.redb")).unwrap();
    for needle in [
        b"kept".as_slice(),
        event_id.as_bytes(),
        HOOK_TOKEN.as_bytes(),
    ] {
        assert!(!db.windows(needle.len()).any(|w| w == needle));
    }
    v.stop().await;

    // The receiver comes up (same certificate), then the vault again.
    let rx = Receiver::serve(&certs, hook_port, 0, 500).await;
    let v = Running::start(&fx, &opts).await;
    let seen = rx
        .wait_until("the event staged before the restart", |s| {
            s.iter().any(|d| d.status == 200)
        })
        .await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].event["id"], event_id.as_str());
    assert_eq!(seen[0].event["data"]["Version"], version.as_str());
    v.outbox_drains().await;
    v.stop().await;
}

#[tokio::test]
async fn a_dead_endpoint_ends_in_the_dead_letters() {
    let fx = Fixture::new();
    let dead_port = free_port();
    let refusing_port = free_port();
    let refusing = Receiver::start(fx.dir.path(), refusing_port, usize::MAX, 400).await;
    let clock = ManualClock::new(now());
    let opts = Options {
        clock: Some(clock.clone()),
        policy: Some(policy_with(json!({"subscriptions": [
            subscription("dead", dead_port, &refusing.ca_pem, json!({"ttlMinutes": 60})),
            subscription("refusing", refusing_port, &refusing.ca_pem, json!({})),
        ]}))),
        ..Default::default()
    };
    let v = Running::start(&fx, &opts).await;
    let c = client(&fx, "alice");
    set_secret(&c, "doomed", None).await;

    // The refusing endpoint answers 400: dead-lettered at once. The dead one keeps
    // failing (the start-up policy event and the secret's event wait).
    refusing
        .wait_until("the refused deliveries", |s| s.len() == 2)
        .await;
    for _ in 0..200 {
        if v.outbox_len().await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(v.outbox_len().await, 2);
    // The time to live (60 minutes) passes on the vault's clock.
    clock.advance(61 * 60);
    for _ in 0..100 {
        if v.outbox_len().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(v.outbox_len().await, 0);

    let op = client(&fx, OPERATOR);
    // Typed by the client; compared as the wire's JSON, so the field names are checked too.
    let letters = serde_json::to_value(op.get_dead_letters(100).await.unwrap()).unwrap();
    assert_eq!(letters["count"], 4, "{letters:#}");
    let list = letters["value"].as_array().unwrap();
    let reasons: BTreeSet<(String, String, String)> = list
        .iter()
        .map(|l| {
            (
                l["subscription"].as_str().unwrap().to_string(),
                l["reason"].as_str().unwrap().to_string(),
                l["event"]["type"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("Microsoft.KeyVault.")
                    .to_string(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = [
        ("dead", "TimeToLiveExpired", "SecretNewVersionCreated"),
        ("dead", "TimeToLiveExpired", "VaultAccessPolicyChanged"),
        ("refusing", "Rejected", "SecretNewVersionCreated"),
        ("refusing", "Rejected", "VaultAccessPolicyChanged"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.into(), b.into(), c.into()))
    .collect();
    assert_eq!(reasons, expected);
    // The dead endpoint was tried (its first event; the next one waited behind it).
    assert!(
        list.iter().any(|l| l["subscription"] == "dead"
            && l["attempts"].as_u64().unwrap() >= 1
            && l["lastError"].as_str().unwrap().contains("connect")),
        "{letters:#}"
    );
    for l in list {
        assert!(l["id"].is_string());
        assert!(l["deadLettered"].is_i64());
        let text = l.to_string();
        assert!(
            !text.contains(SECRET_VALUE) && !text.contains("s3cr3t"),
            "{text}"
        );
    }
    let refused = list.iter().find(|l| l["reason"] == "Rejected").unwrap();
    assert_eq!(refused["lastError"], "HTTP 400");
    assert_eq!(refused["attempts"], 1);
    // `top` limits the list; a caller that is not the control plane gets 403.
    assert_eq!(op.get_dead_letters(1).await.unwrap().value.len(), 1);
    assert_eq!(
        c.get_dead_letters(10).await.unwrap_err().status(),
        Some(403)
    );
    let metrics = v.metrics_text().await;
    assert!(metrics.contains(
        "kvault_events_dead_lettered_total{subscription=\"dead\",reason=\"TimeToLiveExpired\"} 2"
    ));
    assert!(metrics.contains(
        "kvault_events_dead_lettered_total{subscription=\"refusing\",reason=\"Rejected\"} 2"
    ));
    // Dead letters are kept for their retention, then pruned by the scanner.
    assert_eq!(v.scan().await.dead_letters_pruned, 0);
    assert!(
        v.metrics_text()
            .await
            .contains("kvault_events_dead_letters 4")
    );
    clock.advance(31 * DAY);
    assert_eq!(v.scan().await.dead_letters_pruned, 4);
    assert_eq!(op.get_dead_letters(10).await.unwrap().count, 0);
    v.stop().await;
}

#[tokio::test]
async fn lifetime_actions_raise_near_expiry_early_and_certificate_contacts_ride_along() {
    let fx = Fixture::new();
    let hook_port = free_port();
    let rx = Receiver::start(fx.dir.path(), hook_port, 0, 500).await;
    let clock = ManualClock::new(now());
    let t0 = clock.now();
    let opts = Options {
        clock: Some(clock.clone()),
        policy: Some(policy_with(json!({
            "nearExpiryDays": 3,
            "subscriptions": [subscription("hook", hook_port, &rx.ca_pem, json!({
                "includedEventTypes": ["KeyNearExpiry", "CertificateNearExpiry"],
                "subjectBeginsWith": "TEAM-"
            }))]
        }))),
        ..Default::default()
    };
    let v = Running::start(&fx, &opts).await;
    let c = client(&fx, "alice");
    // A key whose rotation policy notifies 20 days before expiry.
    create_key(&c, "team-key", t0 + 100 * DAY).await;
    let notify = serde_json::from_value(json!({
        "lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P20D"}, "action": {"type": "Notify"}}],
        "attributes": {"expiryTime": "P100D"}
    }))
    .unwrap();
    c.set_rotation_policy("team-key", &notify).await.unwrap();
    // Outside the subject filter: never delivered.
    create_key(&c, "other-key", t0 + 100 * DAY).await;
    c.set_rotation_policy("other-key", &notify).await.unwrap();
    // A certificate that e-mails its contacts at half its lifetime.
    let contacts = serde_json::from_value(json!({"contacts": [
        {"email": "pki@example.test", "name": "PKI"}, {"email": "oncall@example.test"}
    ]}))
    .unwrap();
    c.set_certificate_contacts(&contacts).await.unwrap();
    create_certificate(
        &c,
        "team-web",
        json!({
            "x509_props": {"subject": "CN=team-web", "validity_months": 12},
            "lifetime_actions": [{"trigger": {"lifetime_percentage": 50}, "action": {"action_type": "EmailContacts"}}],
            "issuer": {"name": "Self"}
        }),
    )
    .await;
    let cert = c.get_certificate("team-web", None).await.unwrap();
    let (nbf, exp) = (cert.attributes.nbf.unwrap(), cert.attributes.exp.unwrap());

    // 21 days before the key expires: not yet.
    clock.set(t0 + 79 * DAY);
    assert_eq!(v.scan().await.fired, 0);
    // 20 days: the Notify action is due, long before the 3-day threshold.
    clock.set(t0 + 80 * DAY);
    assert_eq!(v.scan().await.fired, 1);
    rx.wait_until("the key's event", |s| s.len() == 1).await;
    // Half the certificate's lifetime: EmailContacts.
    clock.set(nbf + (exp - nbf) / 2);
    assert_eq!(v.scan().await.fired, 1);
    assert_eq!(v.scan().await.fired, 0);

    let seen = rx
        .wait_until("two near-expiry events", |s| s.len() == 2)
        .await;
    let events: Vec<Value> = seen.into_iter().map(|d| d.event).collect();
    assert_eq!(
        types_of(&events),
        vec![
            pair("CertificateNearExpiry", "team-web"),
            pair("KeyNearExpiry", "team-key"),
        ]
    );
    let cert_event = events.iter().find(|e| e["subject"] == "team-web").unwrap();
    assert_eq!(
        cert_event["kvaultcontacts"],
        "pki@example.test,oncall@example.test"
    );
    let key_event = events.iter().find(|e| e["subject"] == "team-key").unwrap();
    assert!(key_event.get("kvaultcontacts").is_none());
    v.stop().await;
}

#[tokio::test]
async fn a_header_pushed_without_its_value_needs_a_stored_one() {
    let fx = Fixture::new();
    let opts = Options::default();
    let v = Running::start(&fx, &opts).await;
    let op = client(&fx, OPERATOR);
    let mut doc = policy_with(json!({"subscriptions": [{
        "name": "x",
        "endpoint": "https://hooks.example.test/kv",
        "authHeader": {"name": "X-Api-Key"}
    }]}));
    doc.generation = 2;
    let e = op.put_policy(&doc).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    // An invalid subscription is refused with the reason.
    let mut bad = policy_with(json!({"subscriptions": [{
        "name": "x", "endpoint": "http://hooks.example.test/kv"
    }]}));
    bad.generation = 2;
    let e = op.put_policy(&bad).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("https"), "{e}");
    v.stop().await;
}
