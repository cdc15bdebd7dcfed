//! Helpers the benchmarks share: finding and supervising the `kvault` process, reading
//! its CPU time, the HTTPS client and the load loop they drive it with, and the figures
//! they print. Included by `load.rs`, `crypto.rs` and `storage.rs` with
//! `#[path = "common.rs"] mod common;`.

use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub const HOST: &str = "bench.kvault.localhost";
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a process under test may take to answer its health check.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The api-version every bench sends.
pub const API_VERSION: &str = "2026-04-01";
/// The secret value the benches write (64 bytes).
pub const VALUE: &str = "kvault-bench-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO";

/// The kvault binary: `KVAULT_BIN`, else the one cargo built for this bench, else
/// `target/release/kvault` under the package.
pub fn kvault_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("KVAULT_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("KVAULT_BIN={} does not exist", p.display());
        }
        return Ok(p);
    }
    let candidates = [
        option_env!("CARGO_BIN_EXE_kvault").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/kvault")),
    ];
    for p in candidates.into_iter().flatten() {
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "the release binary {}/target/release/kvault is missing: run `cargo build --release` \
         (or point KVAULT_BIN at a kvault binary)",
        env!("CARGO_MANIFEST_DIR")
    )
}

pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

pub fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat).
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| path.clone())?;
    // Field 2 (comm) is parenthesised and may contain spaces: count from the last ')'.
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .with_context(|| format!("{path}: unexpected format"))?;
    // `rest` starts with field 3 (state).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("{path}: field {n} missing"))
    };
    Ok(field(14)? + field(15)?)
}

/// The `KVAULT_TOKEN` of `dev.env` (`export KVAULT_TOKEN=...`).
pub fn read_token(env_file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(env_file)
        .with_context(|| format!("reading {}", env_file.display()))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("export KVAULT_TOKEN="))
        .map(|t| t.trim_matches(|c| c == '\'' || c == '"').to_string())
        .filter(|t| !t.is_empty())
        .with_context(|| format!("{} has no KVAULT_TOKEN", env_file.display()))
}

pub fn http_client(ca: &[reqwest::Certificate], port: u16) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .https_only(true)
        .http1_only()
        .pool_max_idle_per_host(1)
        .no_proxy()
        .resolve(HOST, SocketAddr::from(([127, 0, 0, 1], port)))
        .tls_certs_only(ca.iter().cloned())
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the HTTPS client")
}

pub fn origin(port: u16) -> String {
    format!("https://{HOST}:{port}")
}

pub fn percentile(sorted: &[u64], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Duration::from_nanos(sorted[rank - 1])
}

pub fn ticks_to_duration(ticks: u64, clk_tck: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / clk_tck as f64)
}

pub fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.prec$}"))
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when the guard is dropped —
/// at the end of the run, on an error and on a panic.
pub struct ChildGuard {
    pub name: &'static str,
    child: Child,
    pub log: PathBuf,
}

impl ChildGuard {
    pub fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> anyhow::Result<Self> {
        let out = std::fs::File::create(&log).with_context(|| format!("{}", log.display()))?;
        let err = out.try_clone()?;
        // The reference server exits when its stdin closes, so it never outlives us.
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .with_context(|| format!("starting the {name} ({:?})", cmd.get_program()))?;
        Ok(Self { name, child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited, quoting the end of its log.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "the {} exited ({status}); its output:\n{}",
                self.name,
                tail.join("\n")
            );
        }
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SIGTERM lets the vault stop cleanly; SIGKILL if it has not within 3 s.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `url` until it answers 200, or fails if `guard`'s process exits or time runs out.
pub async fn wait_ready(
    client: &reqwest::Client,
    url: &str,
    guard: &mut ChildGuard,
) -> anyhow::Result<()> {
    let until = Instant::now() + STARTUP_TIMEOUT;
    loop {
        guard.check_alive()?;
        if let Ok(resp) = client.get(url).send().await
            && resp.status() == reqwest::StatusCode::OK
        {
            return Ok(());
        }
        if Instant::now() > until {
            bail!(
                "the {} did not answer {url} within {} s (log: {})",
                guard.name,
                STARTUP_TIMEOUT.as_secs(),
                guard.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `BENCH_SECS`, else `default`.
pub fn env_secs(default: f64) -> anyhow::Result<Duration> {
    match std::env::var("BENCH_SECS") {
        Ok(s) => {
            let v: f64 = s
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v > 0.0 && *v <= 3600.0)
                .with_context(|| format!("BENCH_SECS={s}: expected seconds, e.g. 3 or 0.5"))?;
            Ok(Duration::from_secs_f64(v))
        }
        Err(_) => Ok(Duration::from_secs_f64(default)),
    }
}

/// `BENCH_CONNS`, else `default`.
pub fn env_conns(default: &[usize]) -> anyhow::Result<Vec<usize>> {
    match std::env::var("BENCH_CONNS") {
        Ok(s) => s
            .split(',')
            .map(|c| {
                c.trim()
                    .parse()
                    .ok()
                    .filter(|&n: &usize| (1..=1024).contains(&n))
                    .with_context(|| format!("BENCH_CONNS={s}: expected e.g. 1,16,64"))
            })
            .collect(),
        Err(_) => Ok(default.to_vec()),
    }
}

/// A `kvault dev` that answers: its CA and the administrator's `Authorization` header.
pub struct DevVault {
    pub ca: Vec<reqwest::Certificate>,
    pub auth: reqwest::header::HeaderValue,
}

/// Waits until the `kvault dev` in `guard` has written its CA and `dev.env` under `state`
/// (until then the CA may not exist) and answers its health check on `port`.
pub async fn dev_ready(
    guard: &mut ChildGuard,
    state: &Path,
    port: u16,
) -> anyhow::Result<DevVault> {
    let ca_file = state.join("ca.pem");
    let env_file = state.join("dev.env");
    let until = Instant::now() + STARTUP_TIMEOUT;
    while !(ca_file.is_file() && env_file.is_file()) {
        guard.check_alive()?;
        if Instant::now() > until {
            bail!("the vault did not write {} in time", env_file.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ca_pem = std::fs::read(&ca_file).with_context(|| ca_file.display().to_string())?;
    let ca = reqwest::Certificate::from_pem_bundle(&ca_pem).context("parsing ca.pem")?;
    let setup = http_client(&ca, port)?;
    wait_ready(&setup, &format!("{}/_kvault/health", origin(port)), guard).await?;
    let token = read_token(&env_file)?;
    let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .context("the token is not a valid header value")?;
    auth.set_sensitive(true);
    Ok(DevVault { ca, auth })
}

/// What one load phase measured.
pub struct Load {
    /// Requests counted as completed (see [`LoadPhase::refused_complete`]).
    pub completed: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// CPU time of the servers under load, and of this process (the client).
    pub server_cpu: Duration,
    pub client_cpu: Duration,
    pub first_error: Option<String>,
}

/// One load phase: every client is one keep-alive connection driven by one task.
pub struct LoadPhase {
    pub label: String,
    /// Each client with a URL that changes nothing, requested once before the clock
    /// starts, so the phase measures requests on established connections (TCP + TLS done).
    pub clients: Vec<(reqwest::Client, String)>,
    pub server_pids: Vec<u32>,
    pub secs: Duration,
    pub clk_tck: u64,
    /// Whether a request answered with an error status still counts as completed (its
    /// latency is recorded) besides counting as an error.
    pub refused_complete: bool,
}

#[derive(Default)]
struct ConnStats {
    /// Latency of every completed request, in nanoseconds.
    latencies: Vec<u64>,
    errors: u64,
}

/// Runs `send(connection index, client, first error)` in a loop on every client until the
/// phase's time is up. `send` answers `Ok(true)` for a success, `Ok(false)` for an error
/// response and `Err(())` when no response came (then the connection pauses 10 ms, so as
/// not to spin on a dead server).
pub async fn run_load<F, Fut>(phase: LoadPhase, send: F) -> anyhow::Result<Load>
where
    F: Fn(usize, reqwest::Client, Arc<OnceLock<String>>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<bool, ()>> + Send,
{
    let mut warmup = tokio::task::JoinSet::new();
    for (client, warm_url) in &phase.clients {
        let req = client.get(warm_url);
        warmup.spawn(async move {
            let resp = req.send().await?;
            let status = resp.status();
            resp.bytes().await?;
            anyhow::ensure!(status.is_success(), "warm-up request answered {status}");
            anyhow::Ok(())
        });
    }
    while let Some(r) = warmup.join_next().await {
        r?.context("opening the connections")?;
    }

    let server_ticks =
        |pids: &[u32]| -> anyhow::Result<u64> { pids.iter().map(|p| cpu_ticks(*p)).sum() };
    let first_error = Arc::new(OnceLock::new());
    let server0 = server_ticks(&phase.server_pids)?;
    let client0 = cpu_ticks(std::process::id())?;
    let start = Instant::now();
    let deadline = start + phase.secs;
    let refused_complete = phase.refused_complete;
    let mut tasks = tokio::task::JoinSet::new();
    for (conn, (client, _)) in phase.clients.into_iter().enumerate() {
        let send = send.clone();
        let first_error = first_error.clone();
        tasks.spawn(async move {
            let mut stats = ConnStats {
                latencies: Vec::with_capacity(4096),
                errors: 0,
            };
            while Instant::now() < deadline {
                let t = Instant::now();
                match send(conn, client.clone(), first_error.clone()).await {
                    Ok(true) => stats.latencies.push(t.elapsed().as_nanos() as u64),
                    Ok(false) => {
                        if refused_complete {
                            stats.latencies.push(t.elapsed().as_nanos() as u64);
                        }
                        stats.errors += 1;
                    }
                    Err(()) => {
                        stats.errors += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            stats
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    // Every request is bounded by REQUEST_TIMEOUT, so this always ends; the outer timeout
    // is a second fence.
    let joined = tokio::time::timeout(phase.secs + REQUEST_TIMEOUT * 2, async {
        while let Some(r) = tasks.join_next().await {
            let stats = r.context("a load task failed")?;
            latencies.extend(stats.latencies);
            errors += stats.errors;
        }
        anyhow::Ok(())
    })
    .await;
    let elapsed = start.elapsed();
    let server1 = server_ticks(&phase.server_pids)?;
    let client1 = cpu_ticks(std::process::id())?;
    match joined {
        Ok(r) => r?,
        Err(_) => bail!("{} did not finish", phase.label),
    }
    latencies.sort_unstable();
    Ok(Load {
        completed: latencies.len() as u64,
        errors,
        elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        server_cpu: ticks_to_duration(server1.saturating_sub(server0), phase.clk_tck),
        client_cpu: ticks_to_duration(client1.saturating_sub(client0), phase.clk_tck),
        first_error: first_error.get().cloned(),
    })
}
