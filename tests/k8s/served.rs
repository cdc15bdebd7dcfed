//! A vault pod simulated: the operator makes a Vault's StatefulSet, the suite runs
//! `kvault server` on 127.0.0.1 with that StatefulSet's command line and the Secrets and
//! ConfigMaps it mounts (only the server certificate is the suite's own, for 127.0.0.1),
//! marks the pod Running and Ready (no kubelet does), and the operator — told by the hidden
//! `--test-vault-address` where the vault is — pushes the policy as its service account
//! with a TokenRequest token the server verifies against the cluster's JWKS. Then the Vault
//! is `Ready=True/Serving` with an applied policy generation, and the grants say `Applied`
//! or `InactiveInThisMode`.

use crate::cluster::{Cluster, wait_for};
use crate::workload_identity;
use anyhow::{Context, Result, anyhow, ensure};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OPERATOR_NS: &str = "kvault-suite-operator-served";
const NS: &str = "op-served";
const VAULT: &str = "payments";

struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(cmd: &mut Command, log: PathBuf) -> Result<Self> {
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("spawning")?;
        Ok(Self { child, log })
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n      ")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()?;
    ensure!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A CA and a server certificate for 127.0.0.1 (the operator's certificate names the
/// Service, which does not resolve here).
fn test_certificates(dir: &Path) -> Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=k8s-suite-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    )?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "tls.key",
            "-out",
            "tls.csr",
        ],
    )?;
    std::fs::write(
        dir.join("ext.cnf"),
        format!("subjectAltName=IP:127.0.0.1,DNS:{VAULT}.{NS}.svc\nextendedKeyUsage=serverAuth\n"),
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "tls.crt",
        ],
    )?;
    Ok(())
}

/// Writes what the pod would mount (Secrets and ConfigMaps) under `root`, and returns the
/// server's command line with its paths moved under `root`.
async fn materialize(
    c: &Cluster,
    sts: &StatefulSet,
    root: &Path,
    port: u16,
    certs: &Path,
) -> Result<Vec<String>> {
    let pod = sts
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .ok_or_else(|| anyhow!("the StatefulSet has no pod spec"))?;
    let container = pod
        .containers
        .first()
        .ok_or_else(|| anyhow!("the StatefulSet has no container"))?;
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), NS);
    let config_maps: Api<ConfigMap> = Api::namespaced(c.client.clone(), NS);
    let mut mounts: Vec<String> = vec![];
    for m in container.volume_mounts.iter().flatten() {
        let dir = root.join(m.mount_path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir)?;
        mounts.push(m.mount_path.clone());
        let Some(volume) = pod.volumes.iter().flatten().find(|v| v.name == m.name) else {
            continue; // the data volume (a claim template): an empty directory
        };
        let (data, items): (Vec<(String, Vec<u8>)>, Option<Vec<(String, String)>>) =
            if let Some(s) = &volume.secret {
                let name = s.secret_name.clone().unwrap_or_default();
                let secret = secrets
                    .get(&name)
                    .await
                    .with_context(|| format!("Secret {name}"))?;
                let data = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                let items = s
                    .items
                    .as_ref()
                    .map(|i| i.iter().map(|i| (i.key.clone(), i.path.clone())).collect());
                (data, items)
            } else if let Some(cm) = &volume.config_map {
                let name = cm.name.clone();
                let map = config_maps
                    .get(&name)
                    .await
                    .with_context(|| format!("ConfigMap {name}"))?;
                let data = map
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                let items = cm
                    .items
                    .as_ref()
                    .map(|i| i.iter().map(|i| (i.key.clone(), i.path.clone())).collect());
                (data, items)
            } else {
                continue;
            };
        for (key, bytes) in data {
            let path = match &items {
                Some(items) => match items.iter().find(|(k, _)| *k == key) {
                    Some((_, p)) => p.clone(),
                    None => continue,
                },
                None => key.clone(),
            };
            let file = dir.join(&path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&file, bytes)?;
        }
    }
    // Longest mount first, so /a/b is not rewritten as /a.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    let mut args = container.args.clone().unwrap_or_default();
    let metrics = free_port()?;
    let mut i = 0;
    while i < args.len() {
        let next = match args[i].as_str() {
            "--listen" => Some(format!("127.0.0.1:{port}")),
            "--metrics-listen" => Some(format!("127.0.0.1:{metrics}")),
            "--tls-cert" => Some(certs.join("tls.crt").display().to_string()),
            "--tls-key" => Some(certs.join("tls.key").display().to_string()),
            _ => None,
        };
        if let Some(v) = next {
            if let Some(slot) = args.get_mut(i + 1) {
                *slot = v;
            }
            i += 2;
            continue;
        }
        if let Some(m) = mounts.iter().find(|m| args[i].contains(m.as_str())) {
            let local = root.join(m.trim_start_matches('/')).display().to_string();
            args[i] = args[i].replacen(m.as_str(), &local, 1);
        }
        i += 1;
    }
    Ok(args)
}

fn condition(obj: &DynamicObject, type_: &str) -> Option<Value> {
    obj.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

async fn get(c: &Cluster, kind: &str, name: &str) -> Result<DynamicObject> {
    let api = c.dynamic_api("kvault.dev/v1alpha1", kind, Some(NS)).await?;
    Ok(api.get(name).await?)
}

/// A token of a service account of the vault's namespace for the vault's audience (what a
/// pod's projected token would be).
async fn token_for(c: &Cluster, sa: &str) -> Result<String> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    c.apply(
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": NS}}),
        false,
    )
    .await?;
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(c.client.clone(), NS);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![format!("https://{VAULT}.{NS}.svc")],
            expiration_seconds: Some(600),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let minted = sas
        .create_token_request(sa, &Default::default(), &request)
        .await
        .with_context(|| format!("TokenRequest for {NS}/{sa}"))?;
    minted
        .status
        .map(|s| s.token)
        .ok_or_else(|| anyhow!("the TokenRequest for {NS}/{sa} returned no token"))
}

pub async fn served_vault_gets_its_policy(c: Cluster) -> Result<()> {
    c.crds().await?;
    c.namespace(OPERATOR_NS, json!({})).await?;
    c.namespace(NS, json!({})).await?;
    // The operator pushes as this service account (TokenRequest).
    c.apply(
        &json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "kvault-operator", "namespace": OPERATOR_NS}}),
        false,
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs)?;
    test_certificates(&certs)?;
    // The vault listens where its URL says (https://payments.op-served.svc, port 443, the
    // name resolved to 127.0.0.1 for the SDK below): the SDKs check the challenge's resource
    // against the vault's host and port.
    let port = 443;
    ensure!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "the suite needs 127.0.0.1:443 free (and root) to serve the vault at its own URL"
    );
    let identity_port = free_port()?;
    workload_identity::install_webhook_configuration(&c, identity_port).await?;
    let operator = Process::spawn(
        Command::new(env!("CARGO_BIN_EXE_kvault"))
            .args([
                "operator",
                "--namespace",
                OPERATOR_NS,
                "--service-account",
                "kvault-operator",
                "--listen",
                "127.0.0.1:0",
                "--identity",
                "k8s-suite-served",
            ])
            .arg("--https-listen")
            .arg(format!("127.0.0.1:{identity_port}"))
            .arg("--identity-authority-host")
            .arg(format!("https://localhost:{identity_port}"))
            .arg("--vault-ca-file")
            .arg(certs.join("ca.crt"))
            .arg("--test-vault-address")
            .arg(format!("https://127.0.0.1:{port}"))
            .args(["--sync-debounce", "1s", "--restart-min-interval", "2s"])
            .env("KUBECONFIG", &c.kubeconfig)
            .env("RUST_LOG", "info,kvault=debug")
            .env("TMPDIR", dir.path()),
        dir.path().join("operator.log"),
    )?;
    let mut server: Option<Process> = None;
    let result = async {
        for obj in [
            json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "Vault",
                   "metadata": {"name": VAULT, "namespace": NS}, "spec": {"authorization": "RBAC"}}),
            json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "RoleAssignment",
                   "metadata": {"name": "web-reads-secrets", "namespace": NS},
                   "spec": {"vaultRef": {"name": VAULT}, "role": "Key Vault Secrets User",
                            "principal": {"kind": "ServiceAccount", "name": "web"}}}),
            json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "RoleAssignment",
                   "metadata": {"name": "writer-sets-secrets", "namespace": NS},
                   "spec": {"vaultRef": {"name": VAULT}, "role": "Key Vault Secrets Officer",
                            "principal": {"kind": "ServiceAccount", "name": "writer"}}}),
            json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "RoleAssignment",
                   "metadata": {"name": "writer-creates-certificates", "namespace": NS},
                   "spec": {"vaultRef": {"name": VAULT}, "role": "Key Vault Certificates Officer",
                            "principal": {"kind": "ServiceAccount", "name": "writer"}}}),
            json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "AccessPolicy",
                   "metadata": {"name": "other-mode", "namespace": NS},
                   "spec": {"vaultRef": {"name": VAULT},
                            "principal": {"kind": "ServiceAccount", "name": "worker"},
                            "permissions": {"secrets": ["get"]}}}),
        ] {
            c.apply(&obj, false).await?;
        }
        let stss: Api<StatefulSet> = Api::namespaced(c.client.clone(), NS);
        let sts = wait_for("the vault's StatefulSet", Duration::from_secs(60), || async {
            Ok(stss.get_opt(VAULT).await?)
        })
        .await?;
        // The master key, certificate and JWKS are there once the StatefulSet is.
        let root = dir.path().join("pod");
        let args = materialize(&c, &sts, &root, port, &certs).await?;
        // The pushed policy document names files at their paths in the pod (the cluster
        // JWKS under /etc/kvault): the server runs in its own mount namespace with the
        // pod's /etc/kvault laid over /etc (the machine's /etc is not changed).
        server = Some(Process::spawn(
            Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(r#"mount -t overlay overlay -o "lowerdir=$0:/etc" /etc || { echo "k8s suite: cannot lay the pod's /etc/kvault over /etc (needs unshare and overlayfs as root)" >&2; exit 1; }; exec "$@""#)
                .arg(root.join("etc"))
                .arg(env!("CARGO_BIN_EXE_kvault"))
                .args(&args)
                .current_dir(dir.path()),
            dir.path().join("server.log"),
        )?);
        // No kubelet: the suite says the pod runs and is ready.
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), NS);
        let pod_name = format!("{VAULT}-0");
        wait_for("the vault's pod", Duration::from_secs(60), || async { Ok(pods.get_opt(&pod_name).await?) }).await?;
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let ready = json!({"status": {"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
        pods.patch_status(&pod_name, &PatchParams::default(), &Patch::Merge(&ready))
            .await
            .context("marking the pod ready")?;
        let t0 = Instant::now();
        let vault = wait_for("Vault Ready=True with an applied policy", Duration::from_secs(90), || async {
            let v = get(&c, "Vault", VAULT).await?;
            let ready = condition(&v, "Ready").is_some_and(|r| r["status"] == "True");
            let applied = v.data["status"]["appliedPolicyGeneration"].as_i64().unwrap_or(0) >= 1;
            if ready && applied {
                Ok(Some(v))
            } else {
                Err(anyhow!("status {}", v.data["status"]))
            }
        })
        .await?;
        println!("    policy pushed and Vault Ready {:.1}s after the pod was ready", t0.elapsed().as_secs_f64());
        let ready = condition(&vault, "Ready").unwrap_or_default();
        ensure!(ready["reason"] == "Serving", "Ready: {ready}");
        for (kind, name, status, reason) in [
            ("RoleAssignment", "web-reads-secrets", "True", "Applied"),
            ("AccessPolicy", "other-mode", "False", "InactiveInThisMode"),
        ] {
            wait_for(&format!("{kind} {name} Applied={status}/{reason}"), Duration::from_secs(60), || async {
                let g = get(&c, kind, name).await?;
                Ok(condition(&g, "Applied")
                    .filter(|a| a["status"] == status && a["reason"] == reason)
                    .map(|_| ()))
            })
            .await?;
        }
        // The pushed policy is what the vault enforces: web may read secrets (a missing
        // one is a 404), worker (an access policy, inactive in RBAC mode) may not (403).
        let ca = std::fs::read(certs.join("ca.crt"))?;
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
            .build()?;
        for (sa, want) in [("web", 404), ("worker", 403)] {
            let token = token_for(&c, sa).await?;
            let resp = http
                .get(format!("https://127.0.0.1:{port}/secrets/missing?api-version=7.5"))
                .bearer_auth(token)
                .send()
                .await?;
            ensure!(
                resp.status().as_u16() == want,
                "GET a secret as {NS}/{sa}: HTTP {} (want {want}): {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        workload_identity::pod_reads_with_default_azure_credential(
            &c,
            NS,
            &format!("https://{VAULT}.{NS}.svc"),
            &certs.join("ca.crt"),
            dir.path(),
        )
        .await?;
        let writer_token = token_for(&c, "writer").await?;
        crate::sync::secret_sync_follows_the_vault(
            &c,
            crate::sync::Served {
                ns: NS,
                vault: VAULT,
                vault_url: format!("https://127.0.0.1:{port}"),
                http,
                writer_token,
            },
        )
        .await?;
        anyhow::Ok(())
    }
    .await;
    workload_identity::remove_webhook_configuration(&c).await;
    result.map_err(|e| {
        let server_log = server.as_ref().map(|s| s.tail()).unwrap_or_default();
        anyhow!(
            "{e:#}\n    operator log:\n      {}\n    server log:\n      {server_log}",
            operator.tail()
        )
    })
}
