//! `cargo bench --bench load`: HTTPS load against a real `kvault dev` process and, in the same
//! run, against a bare reference HTTPS server (this program re-executed with
//! `--reference-server`) that uses the same certificate, TLS stack and runtime, so that the
//! vault's own cost per request can be told apart from the cost of TLS + HTTP.
//!
//! It prints figures and asserts nothing about speed. See bench/README.md.

// Test code may panic: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "common.rs"]
mod common;
use anyhow::{Context, bail};
use bytes::Bytes;
use common::*;
use std::process::{Command, ExitCode};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// 64 bytes: the value of the secret read by the GET phase and of every PUT.
const _: () = assert!(VALUE.len() == 64);
const DEFAULT_SECS: f64 = 3.0;
const DEFAULT_CONNS: [usize; 3] = [1, 16, 64];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--reference-server") {
        return match reference::run(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("reference server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // `cargo bench` passes `--bench` (and any filter after `--`); there is nothing to filter.
    match run_bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Setup: the binary, the child processes, /proc readings.
// ---------------------------------------------------------------------------------------------

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| path.clone())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{path}: no VmRSS"))
}

// ---------------------------------------------------------------------------------------------
// The load generator.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    VaultGet,
    VaultPut,
    ReferenceGet,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::VaultGet => "vault GET secret",
            Op::VaultPut => "vault PUT secret",
            Op::ReferenceGet => "reference GET /",
        }
    }
}

/// What the load generator needs to reach both servers.
struct Ctx {
    ca: Vec<reqwest::Certificate>,
    vault_port: u16,
    vault_pid: u32,
    reference_port: u16,
    reference_pid: u32,
    auth: reqwest::header::HeaderValue,
    put_body: Bytes,
    secs: Duration,
    clk_tck: u64,
}

/// One connection's request for `op`.
fn request(ctx: &Ctx, op: Op, client: &reqwest::Client, conn: usize) -> reqwest::RequestBuilder {
    match op {
        Op::VaultGet => client
            .get(format!(
                "{}/secrets/bench-secret/?api-version={API_VERSION}",
                origin(ctx.vault_port)
            ))
            .header(reqwest::header::AUTHORIZATION, ctx.auth.clone()),
        Op::VaultPut => client
            .put(format!(
                "{}/secrets/bench-{conn}?api-version={API_VERSION}",
                origin(ctx.vault_port)
            ))
            .header(reqwest::header::AUTHORIZATION, ctx.auth.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(ctx.put_body.clone()),
        Op::ReferenceGet => client.get(format!("{}/", origin(ctx.reference_port))),
    }
}

/// Sends one request and reads the whole response. `Ok(true)` for a 2xx, `Ok(false)` for
/// another status (the first one is recorded in `first_error`), `Err` when no response came.
async fn send_one(
    req: reqwest::RequestBuilder,
    first_error: &OnceLock<String>,
) -> Result<bool, ()> {
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            let _ = first_error.set(format!("transport: {}", e.without_url()));
            return Err(());
        }
    };
    let status = resp.status();
    match resp.bytes().await {
        Ok(_) if status.is_success() => Ok(true),
        Ok(body) => {
            let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            let _ = first_error.set(format!("HTTP {status}: {text}"));
            Ok(false)
        }
        Err(e) => {
            let _ = first_error.set(format!("reading the body: {}", e.without_url()));
            Err(())
        }
    }
}

struct PhaseResult {
    op: Op,
    conns: usize,
    completed: u64,
    errors: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    server_cpu: Duration,
    client_cpu: Duration,
    rss_kib: u64,
    first_error: Option<String>,
}

impl PhaseResult {
    fn rps(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
    fn server_us_per_req(&self) -> Option<f64> {
        (self.completed > 0).then(|| self.server_cpu.as_secs_f64() * 1e6 / self.completed as f64)
    }
    fn client_us_per_req(&self) -> Option<f64> {
        (self.completed > 0).then(|| self.client_cpu.as_secs_f64() * 1e6 / self.completed as f64)
    }
}

async fn run_phase(ctx: &Arc<Ctx>, op: Op, conns: usize) -> anyhow::Result<PhaseResult> {
    let (port, pid) = match op {
        Op::VaultGet | Op::VaultPut => (ctx.vault_port, ctx.vault_pid),
        Op::ReferenceGet => (ctx.reference_port, ctx.reference_pid),
    };
    let warm_url = match op {
        Op::VaultGet | Op::VaultPut => format!("{}/_kvault/health", origin(port)),
        Op::ReferenceGet => format!("{}/", origin(port)),
    };
    let clients = (0..conns)
        .map(|_| Ok((http_client(&ctx.ca, port)?, warm_url.clone())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let phase = LoadPhase {
        label: format!("{} at {conns} connections", op.label()),
        clients,
        server_pids: vec![pid],
        secs: ctx.secs,
        clk_tck: ctx.clk_tck,
        // A response was read: its latency counts, whatever the status.
        refused_complete: true,
    };
    let ctx2 = ctx.clone();
    let load = run_load(phase, move |conn, client, first_error| {
        let ctx = ctx2.clone();
        async move { send_one(request(&ctx, op, &client, conn), &first_error).await }
    })
    .await?;
    Ok(PhaseResult {
        op,
        conns,
        completed: load.completed,
        errors: load.errors,
        elapsed: load.elapsed,
        p50: load.p50,
        p99: load.p99,
        server_cpu: load.server_cpu,
        client_cpu: load.client_cpu,
        rss_kib: rss_kib(pid)?,
        first_error: load.first_error,
    })
}

fn run_bench() -> anyhow::Result<()> {
    kvault::install_crypto_provider();
    let bin = kvault_bin()?;
    let secs = env_secs(DEFAULT_SECS)?;
    let conns = env_conns(&DEFAULT_CONNS)?;
    let clk_tck = clock_ticks_per_sec();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    // Declared first so it is removed last, after the children are stopped.
    let tmp = tempfile::Builder::new()
        .prefix("kvault-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let tmp_path = tmp.path().to_path_buf();
    let state = tmp_path.join("state");
    let vault_port = free_port()?;
    let reference_port = free_port()?;

    println!("kvault load bench");
    println!("  binary         {}", bin.display());
    if bin.components().any(|c| c.as_os_str() == "debug") {
        println!("  WARNING        this looks like a debug build; figures will be meaningless");
    }
    println!("  cores          {cores}");
    // Other work on the machine (a build, say) shares the cores and skews every figure.
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        let l: Vec<&str> = l.split_whitespace().take(3).collect();
        println!("  load average   {} (before the run)", l.join(" "));
    }
    println!("  phase length   {:.1} s (BENCH_SECS)", secs.as_secs_f64());
    println!(
        "  clock ticks    {clk_tck}/s (CPU resolution {} ms per reading)",
        1000 / clk_tck
    );
    println!(
        "  connections    {}",
        conns
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut cmd = Command::new(&bin);
    cmd.arg("dev")
        .arg("--state-dir")
        .arg(&state)
        .arg("--listen")
        .arg(format!("127.0.0.1:{vault_port}"))
        .arg("--url")
        .arg(origin(vault_port))
        .env_remove("KVAULT_STATE_DIR")
        .env("RUST_LOG", "warn");
    let mut vault = ChildGuard::spawn("vault (kvault dev)", cmd, tmp_path.join("vault.log"))?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        let DevVault { ca, auth } = dev_ready(&mut vault, &state, vault_port).await?;
        let setup = http_client(&ca, vault_port)?;

        // The reference server: this program again, with the vault's certificate and key.
        let mut cmd = Command::new(std::env::current_exe().context("locating this program")?);
        cmd.arg("--reference-server")
            .arg(reference_port.to_string())
            .arg(state.join("server.pem"))
            .arg(state.join("server-key.pem"));
        let mut reference =
            ChildGuard::spawn("reference server", cmd, tmp_path.join("reference.log"))?;
        let reference_client = http_client(&ca, reference_port)?;
        wait_ready(
            &reference_client,
            &format!("{}/", origin(reference_port)),
            &mut reference,
        )
        .await?;

        let put_body = Bytes::from(serde_json::to_vec(&serde_json::json!({ "value": VALUE }))?);
        let ctx = Arc::new(Ctx {
            ca,
            vault_port,
            vault_pid: vault.pid(),
            reference_port,
            reference_pid: reference.pid(),
            auth,
            put_body,
            secs,
            clk_tck,
        });

        // The secret the GET phase reads, and a check that it reads back.
        let first_error = OnceLock::new();
        let set = setup
            .put(format!(
                "{}/secrets/bench-secret?api-version={API_VERSION}",
                origin(vault_port)
            ))
            .header(reqwest::header::AUTHORIZATION, ctx.auth.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(ctx.put_body.clone());
        let ok = send_one(set, &first_error).await;
        if ok != Ok(true) {
            bail!(
                "setting bench-secret failed: {}",
                first_error.get().map_or("?", String::as_str)
            );
        }
        let got: serde_json::Value = request(&ctx, Op::VaultGet, &setup, 0)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if got.get("value").and_then(|v| v.as_str()) != Some(VALUE) {
            bail!("bench-secret read back as {got}");
        }

        let idle = [
            ("vault", rss_kib(ctx.vault_pid)?),
            ("reference", rss_kib(ctx.reference_pid)?),
        ];
        println!(
            "  idle RSS       vault {:.1} MiB, reference {:.1} MiB",
            idle[0].1 as f64 / 1024.0,
            idle[1].1 as f64 / 1024.0
        );
        println!();

        let mut results = Vec::new();
        for &n in &conns {
            for op in [Op::ReferenceGet, Op::VaultGet, Op::VaultPut] {
                eprintln!(
                    "running {:<18} {n:>4} conns for {:.1} s ...",
                    op.label(),
                    secs.as_secs_f64()
                );
                vault.check_alive()?;
                reference.check_alive()?;
                results.push(run_phase(&ctx, op, n).await?);
            }
        }
        print_report(&results);
        drop(reference);
        drop(vault);
        anyhow::Ok(())
    })?;
    drop(tmp);
    Ok(())
}

fn print_report(results: &[PhaseResult]) {
    println!(
        "{:<18} {:>5} {:>9} {:>8} {:>8} {:>11} {:>11} {:>7} {:>9}",
        "phase",
        "conns",
        "req/s",
        "p50 ms",
        "p99 ms",
        "srv µs/req",
        "clnt µs/req",
        "errors",
        "RSS MiB"
    );
    let mut last_conns = None;
    for r in results {
        if last_conns.is_some() && last_conns != Some(r.conns) {
            println!();
        }
        last_conns = Some(r.conns);
        println!(
            "{:<18} {:>5} {:>9.0} {:>8.3} {:>8.3} {:>11} {:>11} {:>7} {:>9.1}",
            r.op.label(),
            r.conns,
            r.rps(),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            fmt_opt(r.server_us_per_req(), 1),
            fmt_opt(r.client_us_per_req(), 1),
            r.errors,
            r.rss_kib as f64 / 1024.0
        );
    }
    let errors: Vec<&PhaseResult> = results.iter().filter(|r| r.first_error.is_some()).collect();
    if !errors.is_empty() {
        println!();
        for r in errors {
            println!(
                "first error in {} at {} conns: {}",
                r.op.label(),
                r.conns,
                r.first_error.as_deref().unwrap_or_default()
            );
        }
    }
    println!();
    println!("srv µs/req = server process CPU (user+sys) during the phase / requests completed");
    let find = |op: Op, n: usize| results.iter().find(|r| r.op == op && r.conns == n);
    let mut conns: Vec<usize> = results.iter().map(|r| r.conns).collect();
    conns.dedup();
    for n in conns {
        let (Some(get), Some(put), Some(reference)) = (
            find(Op::VaultGet, n),
            find(Op::VaultPut, n),
            find(Op::ReferenceGet, n),
        ) else {
            continue;
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "n/a".to_string(),
        };
        println!(
            "ratios at {n:>2} conns: vault GET cpu/req / reference cpu/req = {}; \
             vault GET req/s / reference req/s = {}; vault PUT req/s = {:.0}",
            ratio(get.server_us_per_req(), reference.server_us_per_req()),
            ratio(Some(get.rps()), Some(reference.rps())),
            put.rps()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The reference server: TLS (rustls, aws-lc-rs) + hyper on tokio, a fixed JSON body.
// ---------------------------------------------------------------------------------------------

mod reference {
    use anyhow::Context;
    use bytes::Bytes;
    use hyper::body::{Body, Frame, SizeHint};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context as TaskContext, Poll};

    const BODY: &[u8] =
        br#"{"value":"kvault-bench-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO"}"#;

    /// A response body that is one fixed chunk.
    struct Fixed(Option<Bytes>);

    impl Body for Fixed {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut TaskContext<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_none()
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
        }
    }

    /// `--reference-server <port> <cert chain PEM> <key PEM>`
    pub fn run(args: &[String]) -> anyhow::Result<()> {
        let [port, cert, key] = args else {
            anyhow::bail!("usage: --reference-server <port> <cert.pem> <key.pem>");
        };
        let port: u16 = port.parse().context("port")?;
        kvault::install_crypto_provider();
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("reading {cert}"))?;
        let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {key}"))?;
        // The same protocol versions and ALPN as the vault's listener.
        let mut tls = rustls::ServerConfig::builder_with_protocol_versions(&[
            &rustls::version::TLS13,
            &rustls::version::TLS12,
        ])
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("TLS configuration")?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        // Exit when the bench closes our stdin (it ended, however it ended).
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });

        // The same runtime shape as the vault's.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .with_context(|| format!("listening on 127.0.0.1:{port}"))?;
            let body = Bytes::from_static(BODY);
            loop {
                let (tcp, _) = match listener.accept().await {
                    Ok(a) => a,
                    Err(_) => continue,
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let body = body.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |_req| {
                        let body = body.clone();
                        async move {
                            let mut resp = hyper::Response::new(Fixed(Some(body)));
                            resp.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static("application/json"),
                            );
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        })
    }
}
