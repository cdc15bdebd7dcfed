//! The audit log: one JSON line per data-plane and admin request, to stdout and/or a file.
//!
//! Lines go through a bounded channel to one writer task: a full channel makes requests
//! wait (back-pressure), and a failed sink makes every later request fail closed with 503 —
//! a request is never served unaudited. Records hold identities and object ids, never a
//! value, key material, token or request body.

use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone, Default)]
pub struct AuditSinks {
    pub stdout: bool,
    pub file: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord<'a> {
    pub time: String,
    pub operation: &'a str,
    pub result: &'static str,
    pub status: u16,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<&'a str>,
    pub groups_count: usize,
    pub client_ip: String,
    pub tls_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<&'a str>,
    pub request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
}

/// The result class of a status code.
pub fn result_of(status: u16) -> &'static str {
    match status {
        200..=299 => "Success",
        401 => "Unauthenticated",
        403 => "Forbidden",
        429 => "Throttled",
        400..=499 => "ClientError",
        _ => "ServerError",
    }
}

/// Lines waiting for the writer. Requests append without waking anyone; the writer drains
/// the buffer every few milliseconds (so a busy vault pays no wake-up per request).
struct Shared {
    buf: std::sync::Mutex<Vec<u8>>,
    failed: AtomicBool,
    /// Wakes the writer early when the buffer is filling up.
    full: tokio::sync::Notify,
    sinks: tokio::sync::Mutex<Sinks>,
}

struct Sinks {
    stdout: Option<tokio::io::BufWriter<tokio::io::Stdout>>,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
}

/// Above this the buffer applies back-pressure: requests wait for the writer.
const BUFFER_LIMIT: usize = 4 * 1024 * 1024;
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

#[derive(Clone)]
pub struct AuditLog {
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("enabled", &self.shared.is_some())
            .finish()
    }
}

impl AuditLog {
    /// A log that writes nowhere (for embedding and tests that do not look at it).
    pub fn disabled() -> Self {
        Self { shared: None }
    }

    /// Opens the sinks (a file is created 0600 and appended to) and starts the writer.
    pub async fn start(sinks: AuditSinks) -> std::io::Result<Self> {
        if !sinks.stdout && sinks.file.is_none() {
            return Ok(Self::disabled());
        }
        let file = match &sinks.file {
            Some(p) => {
                if let Some(dir) = p.parent() {
                    tokio::fs::create_dir_all(dir).await?;
                }
                let mut o = tokio::fs::OpenOptions::new();
                o.create(true).append(true).mode(0o600);
                Some(tokio::io::BufWriter::new(o.open(p).await?))
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            buf: std::sync::Mutex::new(Vec::with_capacity(64 * 1024)),
            failed: AtomicBool::new(false),
            full: tokio::sync::Notify::new(),
            sinks: tokio::sync::Mutex::new(Sinks {
                stdout: sinks
                    .stdout
                    .then(|| tokio::io::BufWriter::new(tokio::io::stdout())),
                file,
            }),
        });
        tokio::spawn(writer(Arc::downgrade(&shared)));
        Ok(Self {
            shared: Some(shared),
        })
    }

    /// False once a sink has failed: the server then refuses requests (fail closed).
    pub fn healthy(&self) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|s| !s.failed.load(Ordering::Relaxed))
    }

    /// Queues one record; `false` when it could not be (the sink failed).
    pub async fn record(&self, rec: &AuditRecord<'_>) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        let mut line = match serde_json::to_vec(rec) {
            Ok(l) => l,
            Err(_) => return false,
        };
        line.push(b'\n');
        loop {
            if shared.failed.load(Ordering::Relaxed) {
                return false;
            }
            {
                let Ok(mut buf) = shared.buf.lock() else {
                    return false;
                };
                if buf.len() + line.len() <= BUFFER_LIMIT {
                    buf.extend_from_slice(&line);
                    return true;
                }
            }
            // Back-pressure: let the writer catch up.
            shared.full.notify_one();
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Writes out everything queued so far (at shutdown).
    pub async fn flush(&self) -> bool {
        match &self.shared {
            Some(s) => drain(s).await,
            None => true,
        }
    }
}

/// Writes and flushes what is buffered; marks the log failed on any error.
async fn drain(shared: &Shared) -> bool {
    let mut sinks = shared.sinks.lock().await;
    let pending = match shared.buf.lock() {
        Ok(mut b) => std::mem::take(&mut *b),
        Err(_) => return false,
    };
    if pending.is_empty() {
        return !shared.failed.load(Ordering::Relaxed);
    }
    let mut ok = true;
    if let Some(o) = sinks.stdout.as_mut() {
        ok &= o.write_all(&pending).await.is_ok() && o.flush().await.is_ok();
    }
    if let Some(f) = sinks.file.as_mut() {
        ok &= f.write_all(&pending).await.is_ok() && f.flush().await.is_ok();
    }
    if !ok && !shared.failed.swap(true, Ordering::SeqCst) {
        tracing::error!("the audit log cannot be written; refusing requests until restart");
    }
    ok
}

async fn writer(shared: std::sync::Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        tokio::select! {
            _ = tokio::time::sleep(FLUSH_EVERY) => {}
            _ = s.full.notified() => {}
        }
        if !drain(&s).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_classes() {
        assert_eq!(result_of(200), "Success");
        assert_eq!(result_of(204), "Success");
        assert_eq!(result_of(401), "Unauthenticated");
        assert_eq!(result_of(403), "Forbidden");
        assert_eq!(result_of(404), "ClientError");
        assert_eq!(result_of(429), "Throttled");
        assert_eq!(result_of(503), "ServerError");
    }

    #[tokio::test]
    async fn lines_reach_the_file_and_a_broken_sink_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::start(AuditSinks {
            stdout: false,
            file: Some(path.clone()),
        })
        .await
        .unwrap();
        let rec = AuditRecord {
            time: "t".into(),
            operation: "GetSecret",
            result: "Success",
            status: 200,
            duration_ms: 1.0,
            principal_id: Some("alice".into()),
            principal_kind: Some("User"),
            application: None,
            groups_count: 0,
            client_ip: "127.0.0.1".into(),
            tls_version: "TLSv1.3",
            object_id: Some("/secrets/x".into()),
            api_version: Some("7.4"),
            request_id: "r",
            user_agent: None,
        };
        assert!(log.record(&rec).await);
        for _ in 0..100 {
            if std::fs::read_to_string(&path)
                .unwrap_or_default()
                .contains("GetSecret")
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["principalId"], "alice");
        assert_eq!(v["tlsVersion"], "TLSv1.3");
        // /dev/full refuses every write: the log reports itself unhealthy.
        let full = AuditLog::start(AuditSinks {
            stdout: false,
            file: Some("/dev/full".into()),
        })
        .await
        .unwrap();
        full.record(&rec).await;
        for _ in 0..100 {
            if !full.healthy() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(!full.healthy());
        assert!(!full.record(&rec).await);
    }
}
