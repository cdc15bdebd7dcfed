//! `cargo bench --bench storage`: secret GET and SET throughput of the storage backends,
//! side by side in one run — the embedded database (the reference), PostgreSQL with one
//! replica, and PostgreSQL with two replicas of one vault sharing the load.
//!
//! Each vault is a real `kvault dev` process; PostgreSQL is the test database of
//! `scripts/test-postgres` (started if `KVAULT_TEST_POSTGRES_URL` is not set). It prints
//! figures and asserts nothing about speed. See bench/README.md.

// Test code may panic: a failed unwrap is a failed test.
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
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const DEFAULT_SECS: f64 = 3.0;
const DEFAULT_CONNS: [usize; 2] = [1, 16];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storage bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The database: the environment of `scripts/test-postgres start`, or that script's output.
struct Database {
    url: String,
    password_file: String,
    ca_file: String,
}

fn database() -> anyhow::Result<Database> {
    let from_env = |k: &str| std::env::var(k).ok();
    if let (Some(url), Some(password_file), Some(ca_file)) = (
        from_env("KVAULT_TEST_POSTGRES_URL"),
        from_env("KVAULT_TEST_POSTGRES_PASSWORD_FILE"),
        from_env("KVAULT_TEST_POSTGRES_CA_FILE"),
    ) {
        return Ok(Database {
            url,
            password_file,
            ca_file,
        });
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-postgres");
    let out = Command::new(&script)
        .arg("start")
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} start failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    let var = |k: &str| -> anyhow::Result<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("export {k}=")))
            .map(|v| v.trim_matches('\'').to_string())
            .with_context(|| format!("{} printed no {k}", script.display()))
    };
    Ok(Database {
        url: var("KVAULT_TEST_POSTGRES_URL")?,
        password_file: var("KVAULT_TEST_POSTGRES_PASSWORD_FILE")?,
        ca_file: var("KVAULT_TEST_POSTGRES_CA_FILE")?,
    })
}

/// One running replica and a client per connection for it.
struct Replica {
    guard: ChildGuard,
    port: u16,
    ca: Vec<reqwest::Certificate>,
    auth: reqwest::header::HeaderValue,
}

async fn start_replica(
    bin: &Path,
    state: &Path,
    log: PathBuf,
    db: Option<(&Database, &str)>,
) -> anyhow::Result<Replica> {
    let port = free_port()?;
    // A replica joining a state directory rewrites dev.env: wait for its own.
    let _ = std::fs::remove_file(state.join("dev.env"));
    let mut cmd = Command::new(bin);
    cmd.arg("dev")
        .arg("--state-dir")
        .arg(state)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--url")
        .arg(origin(port))
        .env_remove("KVAULT_STATE_DIR")
        .env("RUST_LOG", "warn");
    if let Some((db, schema)) = db {
        cmd.args(["--storage", &db.url])
            .args(["--storage-password-file", &db.password_file])
            .args(["--storage-ca-file", &db.ca_file])
            .args(["--storage-schema", schema]);
    }
    let mut guard = ChildGuard::spawn("vault (kvault dev)", cmd, log)?;
    let DevVault { ca, auth } = dev_ready(&mut guard, state, port).await?;
    Ok(Replica {
        guard,
        port,
        ca,
        auth,
    })
}

#[derive(Clone, Copy)]
enum Op {
    Get,
    Set,
}

struct Figures {
    rate: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
}

/// `conns` keep-alive connections, spread over the replicas, for `secs`.
async fn phase(
    replicas: &[Replica],
    op: Op,
    conns: usize,
    secs: Duration,
) -> anyhow::Result<Figures> {
    // Fresh names per phase: a secret's versions pile up in its record, and a phase should
    // not pay for the versions an earlier phase created.
    static RUN: AtomicU64 = AtomicU64::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    // Connection c goes to replica c mod n.
    let clients = (0..conns)
        .map(|c| {
            let r = &replicas[c % replicas.len()];
            Ok((
                http_client(&r.ca, r.port)?,
                format!("{}/_kvault/health", origin(r.port)),
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let targets: Arc<Vec<(u16, reqwest::header::HeaderValue)>> =
        Arc::new(replicas.iter().map(|r| (r.port, r.auth.clone())).collect());
    let phase = LoadPhase {
        label: format!("{conns}-connection phase"),
        clients,
        server_pids: replicas.iter().map(|r| r.guard.pid()).collect(),
        secs,
        clk_tck: clock_ticks_per_sec(),
        refused_complete: false,
    };
    let load = run_load(phase, move |c, client, first_error| {
        let targets = targets.clone();
        async move {
            let (port, auth) = &targets[c % targets.len()];
            let req = match op {
                Op::Get => client.get(format!(
                    "{}/secrets/bench-get?api-version={API_VERSION}",
                    origin(*port)
                )),
                Op::Set => client
                    .put(format!(
                        "{}/secrets/bench-set-{run}-{c}?api-version={API_VERSION}",
                        origin(*port)
                    ))
                    .header("content-type", "application/json")
                    .body(format!("{{\"value\":\"{VALUE}\"}}")),
            };
            match req.header("authorization", auth.clone()).send().await {
                Ok(r) => {
                    let ok = r.status().is_success();
                    let status = r.status();
                    let _ = r.bytes().await;
                    if !ok {
                        let _ = first_error.set(format!("HTTP {status}"));
                    }
                    Ok(ok)
                }
                Err(e) => {
                    let _ = first_error.set(format!("transport: {}", e.without_url()));
                    Err(())
                }
            }
        }
    })
    .await?;
    Ok(Figures {
        rate: load.completed as f64 / load.elapsed.as_secs_f64(),
        p50: load.p50,
        p99: load.p99,
        errors: load.errors,
    })
}

async fn seed(r: &Replica) -> anyhow::Result<()> {
    let client = http_client(&r.ca, r.port)?;
    let resp = client
        .put(format!(
            "{}/secrets/bench-get?api-version={API_VERSION}",
            origin(r.port)
        ))
        .header("authorization", r.auth.clone())
        .header("content-type", "application/json")
        .body(format!("{{\"value\":\"{VALUE}\"}}"))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("seeding the GET secret: {}", resp.status());
    }
    Ok(())
}

async fn measure(
    label: &str,
    replicas: &[Replica],
    conns: &[usize],
    secs: Duration,
) -> anyhow::Result<()> {
    seed(&replicas[0]).await?;
    for op in [Op::Get, Op::Set] {
        for &n in conns {
            let f = phase(replicas, op, n, secs).await?;
            println!(
                "  {label:<24} {:<4} {n:>5} {:>10.0} {:>10.2} {:>10.2} {:>7}",
                match op {
                    Op::Get => "GET",
                    Op::Set => "SET",
                },
                f.rate,
                f.p50.as_secs_f64() * 1e3,
                f.p99.as_secs_f64() * 1e3,
                f.errors
            );
        }
    }
    Ok(())
}

fn run() -> anyhow::Result<()> {
    kvault::install_crypto_provider();
    let bin = kvault_bin()?;
    let secs = env_secs(DEFAULT_SECS)?;
    let conns = env_conns(&DEFAULT_CONNS)?;
    let db = database()?;
    let tmp = tempfile::Builder::new()
        .prefix("kvault-bench-storage-")
        .tempdir()?;
    let schema = format!("bench_{}", std::process::id());

    println!("kvault storage bench");
    println!("  binary         {}", bin.display());
    if bin.components().any(|c| c.as_os_str() == "debug") {
        println!("  WARNING        this looks like a debug build; figures will be meaningless");
    }
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        let l: Vec<&str> = l.split_whitespace().take(3).collect();
        println!("  load average   {} (before the run)", l.join(" "));
    }
    println!(
        "  cores          {} (vaults, PostgreSQL and the client share them)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("  phase length   {:.1} s (BENCH_SECS)", secs.as_secs_f64());
    println!("  database       schema {schema}");
    println!();
    println!(
        "  {:<24} {:<4} {:>5} {:>10} {:>10} {:>10} {:>7}",
        "backend", "op", "conns", "req/s", "p50 ms", "p99 ms", "errors"
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        {
            let state = tmp.path().join("embedded");
            let r = start_replica(&bin, &state, tmp.path().join("embedded.log"), None).await?;
            measure(
                "embedded (reference)",
                std::slice::from_ref(&r),
                &conns,
                secs,
            )
            .await?;
        }
        let state = tmp.path().join("postgres");
        let a = start_replica(
            &bin,
            &state,
            tmp.path().join("pg-a.log"),
            Some((&db, &schema)),
        )
        .await?;
        measure(
            "postgres, 1 replica",
            std::slice::from_ref(&a),
            &conns,
            secs,
        )
        .await?;
        let b = start_replica(
            &bin,
            &state,
            tmp.path().join("pg-b.log"),
            Some((&db, &schema)),
        )
        .await?;
        measure("postgres, 2 replicas", &[a, b], &conns, secs).await?;
        anyhow::Ok(())
    })?;
    println!();
    println!("  SET: each PUT creates a version and is acknowledged once committed (fsync).");
    println!("  2 replicas: connections alternate between the two processes.");
    Ok(())
}
