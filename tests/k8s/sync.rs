//! SecretSync end to end, on the served vault of [`crate::served`]: the operator reads the
//! vault as the sync's ServiceAccount, applies the Secret, receives the vault's event of a
//! new version over TLS, rewrites the Secret within about a second and restarts the
//! workloads once; a ServiceAccount without grants gets a status saying why and no Secret.

use crate::cluster::{Cluster, wait_for};
use anyhow::{Context, Result, anyhow, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// What the served test hands over: where the vault is and who may write to it.
pub struct Served<'a> {
    pub ns: &'a str,
    pub vault: &'a str,
    pub vault_url: String,
    pub http: reqwest::Client,
    /// A token of a service account that may set secrets.
    pub writer_token: String,
}

fn deployment(ns: &str, name: &str, annotations: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}, "annotations": annotations},
                                 "spec": {"containers": [{"name": "app", "image": "busybox"}]}}}})
}

async fn put_secret(s: &Served<'_>, name: &str, value: &str, tags: Value) -> Result<()> {
    let resp = s
        .http
        .put(format!("{}/secrets/{name}?api-version=7.5", s.vault_url))
        .bearer_auth(&s.writer_token)
        .json(&json!({"value": value, "tags": tags}))
        .send()
        .await?;
    ensure!(
        resp.status().is_success(),
        "PUT secret {name}: HTTP {}: {}",
        resp.status(),
        resp.text().await.unwrap_or_default()
    );
    Ok(())
}

async fn secret_data(c: &Cluster, ns: &str, name: &str) -> Result<Option<Secret>> {
    Ok(Api::<Secret>::namespaced(c.client.clone(), ns)
        .get_opt(name)
        .await?)
}

fn value_of(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()?
        .get(key)
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

/// (the template generation, the restartedAt annotation) of a Deployment.
async fn restarts(c: &Cluster, ns: &str, name: &str) -> Result<(i64, Option<String>)> {
    let d = Api::<Deployment>::namespaced(c.client.clone(), ns)
        .get(name)
        .await?;
    let at = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("kubectl.kubernetes.io/restartedAt").cloned());
    Ok((d.metadata.generation.unwrap_or(0), at))
}

async fn sync_status(c: &Cluster, ns: &str, name: &str) -> Result<Value> {
    let api = c
        .dynamic_api("kvault.dev/v1alpha1", "SecretSync", Some(ns))
        .await?;
    Ok(api.get(name).await?.data["status"].clone())
}

fn ready(status: &Value) -> (String, String, String) {
    let c = status["conditions"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    (s("status"), s("reason"), s("message"))
}

async fn apply_sync(c: &Cluster, ns: &str, name: &str, spec: Value) -> Result<()> {
    c.apply(
        &json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "SecretSync",
                "metadata": {"name": name, "namespace": ns}, "spec": spec}),
        false,
    )
    .await?;
    Ok(())
}

/// The Secret a sync writes, once it is there (the sync's status in the timeout message).
async fn written(c: &Cluster, ns: &str, name: &str, timeout: Duration) -> Result<Secret> {
    wait_for(&format!("Secret {name}"), timeout, || async {
        match secret_data(c, ns, name).await? {
            Some(sec) => Ok(Some(sec)),
            None => Err(anyhow!(
                "no Secret yet; status {}",
                sync_status(c, ns, name).await?
            )),
        }
    })
    .await
}

/// The (reason, message) of a sync's Ready=False, once it says so.
async fn not_ready(c: &Cluster, ns: &str, name: &str) -> Result<(String, String)> {
    let (_, reason, message) = wait_for(
        &format!("{name} Ready=False"),
        Duration::from_secs(30),
        || async {
            let r = ready(&sync_status(c, ns, name).await?);
            Ok((r.0 == "False").then_some(r))
        },
    )
    .await?;
    Ok((reason, message))
}

pub async fn secret_sync_follows_the_vault(c: &Cluster, s: Served<'_>) -> Result<()> {
    let ns = s.ns;
    put_secret(&s, "db-password", "v1", json!({})).await?;
    put_secret(&s, "web-api-key", "k1", json!({"app": "web"})).await?;
    put_secret(&s, "web-token", "t1", json!({"app": "web"})).await?;
    put_secret(&s, "batch-token", "b1", json!({"app": "batch"})).await?;
    c.apply(&deployment(ns, "web", json!({})), false).await?;
    c.apply(
        &deployment(
            ns,
            "csi-reader",
            json!({"kvault.dev/restart-on": format!("{}/db-password", s.vault)}),
        ),
        false,
    )
    .await?;
    apply_sync(
        c,
        ns,
        "web-env",
        json!({"vaultRef": {"name": s.vault}, "serviceAccountName": "web",
               "objects": [{"objectName": "db-password"}],
               "selectors": [{"tags": {"app": "web"}, "keyNaming": "EnvVar"}],
               "target": {"templates": {"dsn": "postgres://app:{{ objects['db-password'] }}@db/app"},
                          "mergePolicy": "Merge"},
               "refreshInterval": "10m",
               "rolloutRestartTargets": [{"kind": "Deployment", "name": "web"}]}),
    )
    .await?;
    let first = written(c, ns, "web-env", Duration::from_secs(60)).await?;
    for (key, want) in [
        ("db-password", "v1"),
        ("WEB_API_KEY", "k1"),
        ("WEB_TOKEN", "t1"),
        ("dsn", "postgres://app:v1@db/app"),
    ] {
        ensure!(
            value_of(&first, key).as_deref() == Some(want),
            "Secret web-env[{key}] = {:?}, want {want}",
            value_of(&first, key)
        );
    }
    ensure!(
        value_of(&first, "BATCH_TOKEN").is_none(),
        "the selector took a secret tagged app=batch"
    );
    let owner = first.metadata.owner_references.clone().unwrap_or_default();
    ensure!(
        owner
            .iter()
            .any(|o| o.kind == "SecretSync" && o.name == "web-env" && o.controller == Some(true)),
        "the Secret is not owned by its SecretSync: {owner:?}"
    );
    let managers: Vec<String> = first
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    ensure!(
        managers.iter().any(|m| m == "kvault-secretsync"),
        "the Secret's field managers: {managers:?}"
    );
    let st = wait_for(
        "SecretSync web-env Ready",
        Duration::from_secs(30),
        || async {
            let st = sync_status(c, ns, "web-env").await?;
            Ok((ready(&st).0 == "True").then_some(st))
        },
    )
    .await?;
    ensure!(st["keyCount"] == 4, "status: {st}");
    // The first sync is a baseline: nothing is restarted.
    let (gen0, at0) = restarts(c, ns, "web").await?;
    ensure!(at0.is_none(), "the first sync restarted web");

    // A new version: the vault's event reaches the operator, the Secret follows.
    let t0 = Instant::now();
    put_secret(&s, "db-password", "v2", json!({})).await?;
    let updated = loop {
        if let Some(sec) = secret_data(c, ns, "web-env").await?
            && value_of(&sec, "db-password").as_deref() == Some("v2")
        {
            break sec;
        }
        ensure!(
            t0.elapsed() < Duration::from_secs(20),
            "the Secret did not follow the new version within 20 s (status {})",
            sync_status(c, ns, "web-env").await?
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let latency = t0.elapsed();
    println!(
        "    PUT in the vault -> Secret updated: {:.0} ms (event-driven; refreshInterval 10m)",
        latency.as_secs_f64() * 1000.0
    );
    ensure!(
        latency < Duration::from_secs(5),
        "the event-driven sync took {latency:?} (the periodic resync is 10m)"
    );
    ensure!(value_of(&updated, "dsn").as_deref() == Some("postgres://app:v2@db/app"));

    // One restart of each workload, after the debounce.
    let web = wait_for("web restarted", Duration::from_secs(30), || async {
        let r = restarts(c, ns, "web").await?;
        Ok(r.1.is_some().then_some(r))
    })
    .await?;
    ensure!(
        web.0 == gen0 + 1,
        "web's template changed {} times",
        web.0 - gen0
    );
    let csi = wait_for(
        "csi-reader restarted (restart-on)",
        Duration::from_secs(30),
        || async {
            let r = restarts(c, ns, "csi-reader").await?;
            Ok(r.1.is_some().then_some(r))
        },
    )
    .await?;
    // A sync that changes nothing (a new version of an unrelated secret, a resync)
    // restarts nothing.
    put_secret(&s, "batch-token", "b2", json!({"app": "batch"})).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    ensure!(
        restarts(c, ns, "web").await? == web,
        "web was restarted for nothing"
    );
    ensure!(
        restarts(c, ns, "csi-reader").await? == csi,
        "csi-reader was restarted for nothing"
    );
    let st = sync_status(c, ns, "web-env").await?;
    ensure!(
        st["restartedHash"] == st["dataHash"],
        "restartedHash and dataHash differ: {st}"
    );

    // A ServiceAccount without grants: the status says why, no Secret is written.
    c.apply(
        &json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "nobody", "namespace": ns}}),
        false,
    )
    .await?;
    apply_sync(
        c,
        ns,
        "nobody-env",
        json!({"vaultRef": {"name": s.vault}, "serviceAccountName": "nobody",
               "objects": [{"objectName": "db-password"}]}),
    )
    .await?;
    let (reason, message) = not_ready(c, ns, "nobody-env").await?;
    ensure!(reason == "Forbidden", "reason {reason}: {message}");
    ensure!(
        message.contains("nobody"),
        "the message does not name the principal: {message}"
    );
    ensure!(
        secret_data(c, ns, "nobody-env").await?.is_none(),
        "a Secret was written for a principal without grants"
    );

    // A Secret it did not create is left alone.
    c.apply(
        &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "theirs", "namespace": ns},
                "stringData": {"db-password": "mine"}}),
        false,
    )
    .await?;
    apply_sync(
        c,
        ns,
        "takeover",
        json!({"vaultRef": {"name": s.vault}, "serviceAccountName": "web",
               "objects": [{"objectName": "db-password"}],
               "target": {"name": "theirs"}}),
    )
    .await?;
    let (reason, _) = not_ready(c, ns, "takeover").await?;
    ensure!(reason == "SecretNotOwned", "reason {reason}");
    let theirs = secret_data(c, ns, "theirs")
        .await?
        .context("Secret theirs is gone")?;
    ensure!(value_of(&theirs, "db-password").as_deref() == Some("mine"));

    // A kubernetes.io/tls Secret from a certificate created in the vault: the certificate's
    // secret (key and chain, PEM) split into tls.key and tls.crt.
    let body = json!({"policy": {
        "key_props": {"kty": "EC", "crv": "P-256", "exportable": true, "reuse_key": false},
        "secret_props": {"contentType": "application/x-pem-file"},
        "x509_props": {"subject": "CN=web.example.test", "validity_months": 12},
        "issuer": {"name": "Self"}}});
    let resp = s
        .http
        .post(format!(
            "{}/certificates/web-tls/create?api-version=7.5",
            s.vault_url
        ))
        .bearer_auth(&s.writer_token)
        .json(&body)
        .send()
        .await?;
    ensure!(
        resp.status().is_success(),
        "creating certificate web-tls: HTTP {}: {}",
        resp.status(),
        resp.text().await.unwrap_or_default()
    );
    apply_sync(
        c,
        ns,
        "web-tls",
        json!({"vaultRef": {"name": s.vault}, "serviceAccountName": "web",
               "objects": [{"objectName": "web-tls"}],
               "target": {"type": "kubernetes.io/tls"}}),
    )
    .await?;
    let tls = written(c, ns, "web-tls", Duration::from_secs(30)).await?;
    ensure!(
        tls.type_.as_deref() == Some("kubernetes.io/tls"),
        "type {:?}",
        tls.type_
    );
    let keys: Vec<String> = tls.data.iter().flatten().map(|(k, _)| k.clone()).collect();
    ensure!(keys == ["tls.crt", "tls.key"], "keys {keys:?}");
    let crt = value_of(&tls, "tls.crt").unwrap_or_default();
    let key = value_of(&tls, "tls.key").unwrap_or_default();
    ensure!(
        crt.starts_with("-----BEGIN CERTIFICATE-----") && !crt.contains("PRIVATE KEY"),
        "tls.crt is not the certificate alone"
    );
    ensure!(
        key.contains("-----BEGIN PRIVATE KEY-----") && !key.contains("CERTIFICATE"),
        "tls.key is not the private key alone"
    );

    // Deleting the SecretSync deletes its Secret (owner reference, garbage collection);
    // the foreign Secret stays.
    c.dynamic_api("kvault.dev/v1alpha1", "SecretSync", Some(ns))
        .await?
        .delete("web-env", &Default::default())
        .await?;
    wait_for(
        "Secret web-env garbage-collected",
        Duration::from_secs(60),
        || async { Ok(secret_data(c, ns, "web-env").await?.is_none().then_some(())) },
    )
    .await?;
    ensure!(
        secret_data(c, ns, "theirs").await?.is_some(),
        "Secret theirs was deleted"
    );
    Ok(())
}
