//! The CRDs on a real API server: created (as a client-side `kubectl apply` does) and
//! server-side applied without a warning, established, and every rule enforced with its
//! message — transition rules included.

use crate::cluster::{Cluster, FIELD_MANAGER, crd_documents};
use anyhow::{Context, Result, bail, ensure};
use kube::client::Body;
use serde_json::{Value, json};

const CRD_PATH: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

/// One raw request; returns the status, the `Warning` headers and the body.
async fn raw(
    c: &Cluster,
    method: &str,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<String>, String)> {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(Body::from(body))?;
    let resp = c.client.send(req).await?;
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let bytes = resp.into_body().collect_bytes().await?;
    Ok((
        status,
        warnings,
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

pub async fn crds_apply_both_ways(c: Cluster) -> Result<()> {
    for crd in crd_documents()? {
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Client-side: create (or, when it exists, replace), as `kubectl apply` does.
        let body = serde_json::to_vec(&crd)?;
        let (status, warnings, text) =
            raw(&c, "POST", CRD_PATH, "application/json", body.clone()).await?;
        let (status, warnings, text) = if status == 409 {
            let (_, _, current) = raw(
                &c,
                "GET",
                &format!("{CRD_PATH}/{name}"),
                "application/json",
                vec![],
            )
            .await?;
            let current: Value = serde_json::from_str(&current)?;
            let mut replaced = crd.clone();
            replaced["metadata"]["resourceVersion"] =
                current["metadata"]["resourceVersion"].clone();
            raw(
                &c,
                "PUT",
                &format!("{CRD_PATH}/{name}"),
                "application/json",
                serde_json::to_vec(&replaced)?,
            )
            .await?
        } else {
            (status, warnings, text)
        };
        ensure!(
            (200..300).contains(&status),
            "creating CRD {name}: HTTP {status}: {text}"
        );
        ensure!(
            warnings.is_empty(),
            "creating CRD {name} warned: {warnings:?}"
        );
        // Server-side apply over it.
        let (status, warnings, text) = raw(
            &c,
            "PATCH",
            &format!("{CRD_PATH}/{name}?fieldManager={FIELD_MANAGER}&force=true"),
            "application/apply-patch+yaml",
            body,
        )
        .await?;
        ensure!(
            (200..300).contains(&status),
            "server-side apply of CRD {name}: HTTP {status}: {text}"
        );
        ensure!(
            warnings.is_empty(),
            "server-side apply of CRD {name} warned: {warnings:?}"
        );
    }
    c.crds_established().await
}

fn vault(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "Vault",
           "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn grant(kind: &str, ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "kvault.dev/v1alpha1", "kind": kind,
           "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

async fn refused(c: &Cluster, obj: &Value, needle: &str) -> Result<()> {
    match c.apply(obj, false).await {
        Ok(_) => bail!(
            "{} {} was accepted; expected a refusal mentioning {needle:?}",
            obj["kind"],
            obj["metadata"]["name"]
        ),
        Err(e) => {
            let msg = format!("{e:#}");
            ensure!(
                msg.contains(needle),
                "expected {needle:?} in the API server's refusal: {msg}"
            );
            Ok(())
        }
    }
}

pub async fn bad_objects_are_refused(c: Cluster) -> Result<()> {
    c.crds().await?;
    let ns = "schema-bad";
    c.namespace(ns, json!({})).await?;
    let long = "a".repeat(53);
    let cases: Vec<(Value, &str)> = vec![
        (
            vault(ns, &long, json!({})),
            "a Vault name must be a DNS label of at most 52 characters",
        ),
        (
            vault(ns, "9lives", json!({})),
            "a Vault name must be a DNS label",
        ),
        (
            vault(
                ns,
                "lots",
                json!({"storage": {"embedded": {"size": "lots"}}}),
            ),
            "storage.embedded.size must be a positive quantity",
        ),
        (
            vault(ns, "zero", json!({"storage": {"embedded": {"size": "0"}}})),
            "storage.embedded.size must be a positive quantity",
        ),
        (
            vault(ns, "two", json!({"replicas": 2})),
            "embedded storage serves one replica",
        ),
        (
            vault(
                ns,
                "both",
                json!({"storage": {"embedded": {}, "postgres": {"secretName": "db"}}}),
            ),
            "storage needs exactly one of embedded and postgres",
        ),
        (
            vault(ns, "ips", json!({"network": {"ipRules": ["not-an-ip"]}})),
            "every ipRules entry must be an IP address or CIDR",
        ),
        (
            vault(ns, "peer", json!({"network": {"allowedPeers": [{}]}})),
            "a peer needs a namespaceSelector, a podSelector or both",
        ),
        (
            vault(
                ns,
                "pgfile",
                json!({"storage": {"postgres": {"secretName": "db"}}, "replicas": 1, "audit": {"destinations": ["File"]}}),
            ),
            "the File audit destination needs embedded storage",
        ),
        (
            vault(ns, "days", json!({"softDelete": {"retentionDays": 3}})),
            "should be greater than or equal to 7",
        ),
        (
            grant(
                "AccessPolicy",
                ns,
                "none",
                json!({"vaultRef": {"name": "v"}, "principal": {"kind": "ServiceAccount", "name": "web"}, "permissions": {}}),
            ),
            "grant at least one permission",
        ),
        (
            grant(
                "AccessPolicy",
                ns,
                "userns",
                json!({"vaultRef": {"name": "v"}, "principal": {"kind": "User", "name": "u", "namespace": "x"}, "permissions": {"secrets": ["get"]}}),
            ),
            "only a ServiceAccount principal has a namespace",
        ),
        (
            grant(
                "RoleAssignment",
                ns,
                "role",
                json!({"vaultRef": {"name": "v"}, "principal": {"kind": "ServiceAccount", "name": "web"}, "role": "Key Vault Superuser"}),
            ),
            "Unsupported value",
        ),
        (
            grant(
                "RoleAssignment",
                ns,
                "saiss",
                json!({"vaultRef": {"name": "v"}, "principal": {"kind": "ServiceAccount", "name": "web", "issuer": "https://dex"}, "role": "Key Vault Secrets User"}),
            ),
            "a ServiceAccount is always the cluster issuer's",
        ),
        (
            grant(
                "SecretSync",
                ns,
                "empty",
                json!({"vaultRef": {"name": "v"}, "serviceAccountName": "web"}),
            ),
            "a SecretSync needs at least one entry in objects or selectors",
        ),
        (
            grant(
                "SecretSync",
                ns,
                "tls-bulk",
                json!({"vaultRef": {"name": "v"}, "serviceAccountName": "web",
                       "selectors": [{"namePrefix": "web-"}],
                       "target": {"type": "kubernetes.io/tls"}}),
            ),
            "a kubernetes.io/tls target takes one certificate's secret",
        ),
        (
            grant(
                "SecretSync",
                ns,
                "restart-both",
                json!({"vaultRef": {"name": "v"}, "serviceAccountName": "web",
                       "objects": [{"objectName": "db"}],
                       "rolloutRestartTargets": [{"kind": "Deployment", "name": "web",
                                                  "selector": {"matchLabels": {"app": "web"}}}]}),
            ),
            "a rollout restart target needs exactly one of name and selector",
        ),
    ];
    let mut failures = vec![];
    for (obj, needle) in &cases {
        if let Err(e) = refused(&c, obj, needle).await {
            failures.push(format!("{e:#}"));
        }
    }
    // The longest name the operator accepts is accepted.
    let longest = "a".repeat(52);
    if let Err(e) = c.apply(&vault(ns, &longest, json!({})), false).await {
        failures.push(format!("a 52-character name was refused: {e:#}"));
    }
    if let Err(e) = c
        .apply(
            &vault(
                ns,
                "int-size",
                json!({"storage": {"embedded": {"size": 1073741824}}}),
            ),
            false,
        )
        .await
    {
        failures.push(format!("an integer size was refused: {e:#}"));
    }
    ensure!(
        failures.is_empty(),
        "{} of {} cases wrong:\n    {}",
        failures.len(),
        cases.len() + 2,
        failures.join("\n    ")
    );
    Ok(())
}

/// Create `first`, then apply `then`: refused with `needle`, or accepted when `needle` is None.
async fn transition(
    c: &Cluster,
    name: &str,
    first: Value,
    then: Value,
    needle: Option<&str>,
) -> Result<()> {
    let ns = "schema-transitions";
    c.apply(&vault(ns, name, first), false)
        .await
        .with_context(|| format!("creating {name}"))?;
    let next = vault(ns, name, then);
    match needle {
        Some(needle) => refused(c, &next, needle)
            .await
            .with_context(|| format!("updating {name}")),
        None => c
            .apply(&next, false)
            .await
            .map(|_| ())
            .with_context(|| format!("updating {name} should be accepted")),
    }
}

pub async fn transitions(c: Cluster) -> Result<()> {
    c.crds().await?;
    c.namespace("schema-transitions", json!({})).await?;
    let emb = |v: Value| json!({"storage": {"embedded": v}});
    let cases: Vec<(&str, Value, Value, Option<&str>)> = vec![
        (
            "shrink",
            emb(json!({"size": "2Gi"})),
            emb(json!({"size": "1Gi"})),
            Some("storage.embedded.size cannot shrink"),
        ),
        (
            "shrink-units",
            emb(json!({"size": "1Gi"})),
            emb(json!({"size": "1000Mi"})),
            Some("storage.embedded.size cannot shrink"),
        ),
        (
            "grow",
            emb(json!({"size": "1Gi"})),
            emb(json!({"size": "2Gi"})),
            None,
        ),
        (
            "same-size-other-units",
            emb(json!({"size": "1Gi"})),
            emb(json!({"size": "1024Mi"})),
            None,
        ),
        (
            "class-set-later",
            emb(json!({})),
            emb(json!({"storageClassName": "fast"})),
            Some("storageClassName cannot change once the Vault exists"),
        ),
        (
            "class-changed",
            emb(json!({"storageClassName": "fast"})),
            emb(json!({"storageClassName": "slow"})),
            Some("storageClassName cannot change once the Vault exists"),
        ),
        (
            "class-removed",
            emb(json!({"storageClassName": "fast"})),
            emb(json!({})),
            Some("storageClassName cannot change once the Vault exists"),
        ),
        (
            "class-kept",
            emb(json!({"storageClassName": "fast"})),
            emb(json!({"storageClassName": "fast"})),
            None,
        ),
        (
            "recover-later",
            json!({}),
            json!({"createMode": "Recover"}),
            Some("createMode: Recover only applies when a Vault is created"),
        ),
        (
            "recover-kept",
            json!({"createMode": "Recover"}),
            json!({"createMode": "Recover", "replicas": 0}),
            None,
        ),
        (
            "purge-off",
            json!({"softDelete": {"purgeProtection": true}}),
            json!({"softDelete": {"purgeProtection": false}}),
            Some("purgeProtection cannot be turned off"),
        ),
        (
            "to-postgres",
            json!({}),
            json!({"storage": {"postgres": {"secretName": "db"}}}),
            Some("storage cannot move between embedded and postgres"),
        ),
    ];
    let mut failures = vec![];
    for (name, first, then, needle) in cases {
        if let Err(e) = transition(&c, name, first, then, needle).await {
            failures.push(format!("{name}: {e:#}"));
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n    "));
    // A refused update leaves the object as it was.
    let api = c
        .dynamic_api("kvault.dev/v1alpha1", "Vault", Some("schema-transitions"))
        .await?;
    let shrink = api.get("shrink").await?;
    let size = shrink.data["spec"]["storage"]["embedded"]["size"].clone();
    ensure!(
        size == json!("2Gi"),
        "the refused shrink changed the size to {size}"
    );
    Ok(())
}
