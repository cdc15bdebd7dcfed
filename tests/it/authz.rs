//! Authorization, the policy endpoint, network rules, TLS minimum from the policy, audit
//! log, metrics and throttling — over real TLS against a real server.

use crate::common::*;
use kvault::client::VaultClient;
use kvault::policy::PolicyDocument;
use serde_json::{Value, json};
use std::time::Duration;

fn policy(v: Value) -> PolicyDocument {
    serde_json::from_value(v).unwrap()
}

/// alice stays Administrator in every test policy; throttling off unless asked.
fn with_admin(generation: u64, mut v: Value) -> PolicyDocument {
    v["generation"] = json!(generation);
    let ras = v["roleAssignments"].as_array().cloned().unwrap_or_default();
    let mut all = vec![
        json!({"principal": {"kind": "User", "name": "alice"}, "role": "Key Vault Administrator"}),
    ];
    all.extend(ras);
    v["roleAssignments"] = Value::Array(all);
    if v.get("throttling").is_none() {
        v["throttling"] = json!({"enabled": false});
    }
    policy(v)
}

async fn push(fx: &Fixture, v: &TestVault, doc: &PolicyDocument) {
    let op = v.client_with(&fx.token_for(OPERATOR, json!({})));
    op.put_policy(doc).await.unwrap();
}

/// Runs every secrets operation as `c`, returning the status of each.
async fn every_operation(c: &VaultClient, admin: &VaultClient) -> Vec<(&'static str, Option<u16>)> {
    admin.set_secret("target", &set("v")).await.unwrap();
    let blob = admin.backup_secret("target").await.unwrap();
    admin.set_secret("deleted", &set("v")).await.ok();
    admin.delete_secret("deleted").await.ok();
    let st = |r: Result<(), kvault::client::ClientError>| r.err().and_then(|e| e.status());
    let mut out = vec![
        (
            "set",
            st(c.set_secret("target", &set("w")).await.map(|_| ())),
        ),
        ("get", st(c.get_secret("target", None).await.map(|_| ()))),
        (
            "update",
            st(c.update_secret("target", None, &Default::default())
                .await
                .map(|_| ())),
        ),
        ("list", st(c.list_secrets().await.map(|_| ()))),
        (
            "versions",
            st(c.list_secret_versions("target").await.map(|_| ())),
        ),
        (
            "list deleted",
            st(c.list_deleted_secrets().await.map(|_| ())),
        ),
        (
            "get deleted",
            st(c.get_deleted_secret("deleted").await.map(|_| ())),
        ),
        ("backup", st(c.backup_secret("target").await.map(|_| ()))),
        (
            "recover",
            st(c.recover_deleted_secret("deleted").await.map(|_| ())),
        ),
    ];
    admin.delete_secret("deleted").await.ok();
    out.push(("purge", st(c.purge_deleted_secret("deleted").await)));
    admin.delete_secret("target").await.ok();
    admin.purge_deleted_secret("target").await.ok();
    out.push(("restore", st(c.restore_secret(&blob).await.map(|_| ()))));
    out.push(("delete", st(c.delete_secret("target").await.map(|_| ()))));
    admin.delete_secret("target").await.ok();
    admin.purge_deleted_secret("target").await.ok();
    admin.purge_deleted_secret("deleted").await.ok();
    out
}

#[tokio::test]
async fn every_secrets_operation_is_denied_then_allowed_in_both_modes() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let admin = v.client();
    let bob = v.client_with(&fx.token_for("bob", json!({})));

    // No grant: every operation is 403.
    for (op, status) in every_operation(&bob, &admin).await {
        assert_eq!(status, Some(403), "{op} without a grant");
    }
    // RBAC: Secrets Officer allows every secrets operation.
    push(
        &fx,
        &v,
        &with_admin(
            2,
            json!({"roleAssignments": [
        {"principal": {"kind": "User", "name": "bob"}, "role": "Key Vault Secrets Officer"}]}),
        ),
    )
    .await;
    for (op, status) in every_operation(&bob, &admin).await {
        assert_ne!(status, Some(403), "{op} as Secrets Officer");
    }
    // AccessPolicy mode: no entry for bob → denied with AccessDenied, as the cloud answers.
    push(&fx, &v, &with_admin(3, json!({"authorization": "AccessPolicy", "accessPolicies": [
        {"principal": {"kind": "User", "name": "alice"}, "permissions": {"secrets": ["get", "list", "set", "delete", "recover", "backup", "restore", "purge"]}}]}))).await;
    let r = v
        .http()
        .get(v.at("/secrets/target/?api-version=7.4"))
        .bearer_auth(fx.token_for("bob", json!({})))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["innererror"]["code"], "AccessDenied");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("User bob")
    );
    for (op, status) in every_operation(&bob, &admin).await {
        assert_eq!(status, Some(403), "{op} without an access policy");
    }
    push(&fx, &v, &with_admin(4, json!({"authorization": "AccessPolicy", "accessPolicies": [
        {"principal": {"kind": "User", "name": "alice"}, "permissions": {"secrets": ["get", "list", "set", "delete", "recover", "backup", "restore", "purge"]}},
        {"principal": {"kind": "User", "name": "bob"}, "permissions": {"secrets": ["get", "list", "set", "delete", "recover", "backup", "restore", "purge"]}}]}))).await;
    for (op, status) in every_operation(&bob, &admin).await {
        assert_ne!(status, Some(403), "{op} with every secrets permission");
    }
    v.stop().await;
}

#[tokio::test]
async fn reader_groups_object_scope_compound_identity_and_revocation() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let admin = v.client();
    admin.set_secret("db", &set("db-value")).await.unwrap();
    admin.set_secret("other", &set("x")).await.unwrap();
    push(&fx, &v, &with_admin(2, json!({"roleAssignments": [
        {"principal": {"kind": "User", "name": "rita"}, "role": "Key Vault Reader"},
        {"principal": {"kind": "Group", "name": "payments"}, "role": "Key Vault Secrets User", "scope": "/secrets/db"},
        {"principal": {"kind": "User", "name": "carl"}, "application": "portal", "role": "Key Vault Secrets User"},
        {"principal": {"kind": "ServiceAccount", "namespace": "team-a", "name": "web"}, "role": "Key Vault Secrets User"}
    ]}))).await;

    // A Reader lists but never reads a value.
    let rita = v.client_with(&fx.token_for("rita", json!({})));
    assert_eq!(rita.list_secrets().await.unwrap().len(), 2);
    assert_eq!(
        rita.get_secret("db", None).await.unwrap_err().status(),
        Some(403)
    );

    // A group grant on one object.
    let member = v.client_with(&fx.token_for("gina", json!({"groups": ["payments"]})));
    assert_eq!(
        member
            .get_secret("db", None)
            .await
            .unwrap()
            .value
            .as_deref(),
        Some("db-value")
    );
    assert_eq!(
        member.get_secret("other", None).await.unwrap_err().status(),
        Some(403)
    );
    assert_eq!(member.list_secrets().await.unwrap_err().status(), Some(403));
    // 403, not 404, for a missing object: no existence leak.
    assert_eq!(
        member
            .get_secret("missing", None)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    let outsider = v.client_with(&fx.token_for("otto", json!({"groups": ["other"]})));
    assert_eq!(
        outsider.get_secret("db", None).await.unwrap_err().status(),
        Some(403)
    );

    // Compound identity: carl only through the portal application.
    let via_portal = v.client_with(&fx.token_for("carl", json!({"azp": "portal"})));
    let via_cli = v.client_with(&fx.token_for("carl", json!({"azp": "cli"})));
    assert!(via_portal.get_secret("db", None).await.is_ok());
    assert_eq!(
        via_cli.get_secret("db", None).await.unwrap_err().status(),
        Some(403)
    );

    // A service account.
    let sa = v.client_with(&fx.token_for("system:serviceaccount:team-a:web", json!({})));
    assert!(sa.get_secret("db", None).await.is_ok());

    // Revocation takes effect on the very next request.
    push(&fx, &v, &with_admin(3, json!({"roleAssignments": []}))).await;
    assert_eq!(
        sa.get_secret("db", None).await.unwrap_err().status(),
        Some(403)
    );
    assert_eq!(
        via_portal
            .get_secret("db", None)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    v.stop().await;
}

#[tokio::test]
async fn policy_generations_admin_only_and_persisted() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let op = v.client_with(&fx.token_for(OPERATOR, json!({})));
    let status = op.get_policy().await.unwrap();
    assert_eq!(status.applied_generation, 1);

    let doc5 = with_admin(
        5,
        json!({"roleAssignments": [
        {"principal": {"kind": "User", "name": "bob"}, "role": "Key Vault Reader"}]}),
    );
    assert_eq!(
        op.put_policy(&doc5).await.unwrap().outcome.as_deref(),
        Some("Applied")
    );
    // Same generation, same content: idempotent. Different content: conflict.
    assert_eq!(
        op.put_policy(&doc5).await.unwrap().outcome.as_deref(),
        Some("Unchanged")
    );
    let mut changed = doc5.clone();
    changed.role_assignments.pop();
    assert_eq!(
        op.put_policy(&changed).await.unwrap_err().status(),
        Some(409)
    );
    // Lower generation: conflict.
    let mut old = doc5.clone();
    old.generation = 4;
    assert_eq!(op.put_policy(&old).await.unwrap_err().status(), Some(409));
    // Invalid documents: 400, nothing applied.
    let r = v
        .http()
        .put(v.at("/_kvault/policy"))
        .bearer_auth(fx.token_for(OPERATOR, json!({})))
        .json(&json!({"generation": 9, "roleAssignments": [{"principal": {"kind": "User", "name": "x"}, "role": "Owner"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(op.get_policy().await.unwrap().applied_generation, 5);
    // Only the control plane: even a Key Vault Administrator may not.
    assert_eq!(
        v.client().get_policy().await.unwrap_err().status(),
        Some(403)
    );
    assert_eq!(
        v.client().put_policy(&doc5).await.unwrap_err().status(),
        Some(403)
    );
    let r = v.http().get(v.at("/_kvault/policy")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Purge protection can be turned on, never off.
    let mut on = doc5.clone();
    on.generation = 6;
    on.soft_delete = Some(kvault::policy::SoftDeleteSettings {
        retention_days: 7,
        purge_protection: true,
    });
    op.put_policy(&on).await.unwrap();
    let b = v.client().set_secret("pp", &set("1")).await.unwrap();
    assert_eq!(
        b.attributes.recovery_level.as_deref(),
        Some("CustomizedRecoverable")
    );
    let mut off = on.clone();
    off.generation = 7;
    off.soft_delete = None;
    assert_eq!(op.put_policy(&off).await.unwrap_err().status(), Some(409));

    // The applied policy survives a restart (a lower-generation initial policy is ignored).
    v.stop().await;
    let v = fx.start(Options::default()).await;
    let op = v.client_with(&fx.token_for(OPERATOR, json!({})));
    assert_eq!(op.get_policy().await.unwrap().applied_generation, 6);
    let bob = v.client_with(&fx.token_for("bob", json!({})));
    assert!(bob.list_secrets().await.is_ok());
    v.stop().await;
}

#[tokio::test]
async fn firewall_rules_and_policy_tls_minimum() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    c.list_secrets().await.unwrap();
    // The server sees 127.0.0.1: a rule set without it refuses everything but health.
    push(
        &fx,
        &v,
        &with_admin(
            2,
            json!({"network": {"defaultAction": "Deny", "ipRules": ["10.0.0.0/8"]}}),
        ),
    )
    .await;
    let r = v
        .http()
        .get(v.at("/secrets?api-version=7.4"))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByFirewall");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1")
    );
    // Before authentication: no token, still the firewall's answer.
    let r = v
        .http()
        .get(v.at("/secrets?api-version=7.4"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        v.http()
            .get(v.at("/_kvault/health"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // Forwarded-for is ignored unless the peer is a trusted proxy.
    let r = v
        .http()
        .get(v.at("/secrets?api-version=7.4"))
        .bearer_auth(&v.token)
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    push(&fx, &v, &with_admin(3, json!({"network": {"defaultAction": "Deny", "ipRules": ["10.0.0.0/8"], "trustedProxies": ["127.0.0.1"]}}))).await;
    let r = v
        .http()
        .get(v.at("/secrets?api-version=7.4"))
        .bearer_auth(&v.token)
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A rule that includes the caller.
    push(
        &fx,
        &v,
        &with_admin(
            4,
            json!({"network": {"defaultAction": "Deny", "ipRules": ["127.0.0.0/8"]}}),
        ),
    )
    .await;
    c.list_secrets().await.unwrap();

    // The policy's minimum TLS version applies to new connections without a restart.
    let ca = fx.certs.ca_pem.clone();
    let tls12 = |port| {
        let ca = ca.clone();
        async move {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_file_iter(&ca).unwrap() {
                roots.add(cert.unwrap()).unwrap();
            }
            let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
                .connect(rustls::pki_types::ServerName::try_from(HOST).unwrap(), tcp)
                .await
                .is_ok()
        }
    };
    use rustls::pki_types::pem::PemObject;
    assert!(tls12(v.port).await);
    push(
        &fx,
        &v,
        &with_admin(5, json!({"tls": {"minVersion": "1.3"}})),
    )
    .await;
    assert!(!tls12(v.port).await);
    c.list_secrets().await.unwrap();
    v.stop().await;
}

#[tokio::test]
async fn one_callers_burst_spends_only_its_share_of_the_vaults_budget() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    push(
        &fx,
        &v,
        &with_admin(
            2,
            json!({
                "throttling": {"enabled": true, "windowSeconds": 60, "secretWrites": 4, "requests": 1000, "principalShare": 50},
                "roleAssignments": [{"principal": {"kind": "User", "name": "bob"}, "role": "Key Vault Secrets Officer"}]
            }),
        ),
    )
    .await;
    let alice = v.client();
    let bob = v.client_with(&fx.token_for("bob", json!({})));
    let status = |r: Result<kvault::wire::SecretBundle, kvault::client::ClientError>| match r {
        Ok(_) => 200,
        Err(e) => e.status().unwrap_or(0),
    };
    // Alice's burst ends at her half of the vault's four secret writes…
    assert_eq!(status(alice.set_secret("a", &set("1")).await), 200);
    assert_eq!(status(alice.set_secret("a", &set("2")).await), 200);
    assert_eq!(status(alice.set_secret("a", &set("3")).await), 429);
    // …so Bob still gets his, and then he too waits.
    assert_eq!(status(bob.set_secret("b", &set("1")).await), 200);
    assert_eq!(status(bob.set_secret("b", &set("2")).await), 200);
    assert_eq!(status(bob.set_secret("b", &set("3")).await), 429);
    v.stop().await;
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after_and_metrics_count_it() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    // One caller may use the whole budget here: this is the vault-wide budget's test.
    push(&fx, &v, &with_admin(2, json!({"throttling": {"enabled": true, "windowSeconds": 10, "secretWrites": 2, "requests": 1000, "principalShare": 100}}))).await;
    let http = v.http();
    let put = || {
        http.put(v.at("/secrets/t?api-version=7.4"))
            .bearer_auth(&v.token)
            .json(&json!({"value": "v"}))
            .send()
    };
    assert_eq!(put().await.unwrap().status().as_u16(), 200);
    assert_eq!(put().await.unwrap().status().as_u16(), 200);
    let r = put().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    assert_eq!(error_code(r).await, (429, "Throttled".to_string()));
    // Reads have their own budget.
    assert!(v.client().get_secret("t", None).await.is_ok());
    assert_eq!(v.client().list_secret_versions("t").await.unwrap().len(), 2);

    let metrics = reqwest::get(format!("http://{}/metrics", v.metrics_addr.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kvault_throttled_requests_total{category=\"secret_write\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kvault_requests_total{operation=\"SetSecret\",code=\"200\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kvault_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kvault_store_operation_duration_seconds_count{operation=\"commit\"}"),
        "{metrics}"
    );
    v.stop().await;
}

#[tokio::test]
async fn audit_lines_describe_requests_and_never_hold_values_or_tokens() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let marker = "audit-marker-value-7f3a9c";
    v.client()
        .set_secret("audited", &set(marker))
        .await
        .unwrap();
    assert_eq!(
        v.client()
            .get_secret("audited", None)
            .await
            .unwrap()
            .value
            .as_deref(),
        Some(marker)
    );
    let bob = v.client_with(&fx.token_for("bob", json!({"groups": ["g1", "g2"], "azp": "app-9"})));
    assert!(bob.get_secret("audited", None).await.is_err());
    let _ = v
        .http()
        .get(v.at("/secrets?api-version=7.4"))
        .send()
        .await
        .unwrap();
    let token = v.token.clone();
    v.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let text = std::fs::read_to_string(fx.audit_path()).unwrap();
    assert!(
        !text.contains(marker),
        "a secret value reached the audit log"
    );
    assert!(!text.contains(&token), "a token reached the audit log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let get = lines
        .iter()
        .find(|l| l["operation"] == "GetSecret" && l["status"] == 200)
        .expect("a GetSecret line");
    assert_eq!(get["principalId"], "alice");
    assert_eq!(get["principalKind"], "User");
    assert_eq!(get["clientIp"], "127.0.0.1");
    assert_eq!(get["tlsVersion"], "TLSv1.3");
    assert_eq!(get["objectId"], "/secrets/audited");
    assert_eq!(get["apiVersion"], kvault::client::API_VERSION);
    assert_eq!(get["result"], "Success");
    assert!(get["requestId"].as_str().unwrap().len() == 36);
    assert!(get["durationMs"].as_f64().unwrap() >= 0.0);
    assert!(get["time"].as_str().unwrap().ends_with('Z'));
    assert!(get["userAgent"].is_string());
    let denied = lines
        .iter()
        .find(|l| l["operation"] == "GetSecret" && l["status"] == 403)
        .expect("a denied line");
    assert_eq!(denied["principalId"], "bob");
    assert_eq!(denied["application"], "app-9");
    assert_eq!(denied["groupsCount"], 2);
    assert_eq!(denied["result"], "Forbidden");
    let unauth = lines
        .iter()
        .find(|l| l["status"] == 401)
        .expect("a 401 line");
    assert!(unauth.get("principalId").is_none());
    assert_eq!(unauth["result"], "Unauthenticated");
}
