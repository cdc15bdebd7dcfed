//! The replica's own database session: it listens for other replicas' changes and holds
//! the job lease (a session-level advisory lock) while it lives.
//!
//! When the session breaks, the lease is dropped here at once and released by the database
//! when it notices the connection is gone (immediately for a killed process on a live host,
//! after TCP keepalive for a lost host); every job is a conditional write, so even an
//! overlap in that window cannot corrupt data, only repeat work. After a reconnect the server
//! is told that anything may have changed, since notices sent meanwhile are lost.

use super::{RustlsConnect, decode_notice};
use crate::server::store::ChangeNotice;
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::AsyncMessage;

/// How often the session checks its connection and, when not leading, tries for the lease.
const LEASE_INTERVAL: Duration = Duration::from_millis(500);

pub struct Session {
    pub pg: tokio_postgres::Config,
    pub tls: RustlsConnect,
    pub channel: String,
    pub instance: String,
    pub job_lock: i64,
    pub leader: Arc<AtomicBool>,
    pub changes: broadcast::Sender<ChangeNotice>,
}

pub async fn run(s: Session) {
    // Reconnect waits: 100 ms after a session that ended, doubling while connecting fails,
    // at most 5 s.
    let mut attempt = 0u32;
    loop {
        match session_once(&s).await {
            Ok(()) => attempt = 1,
            Err(e) => {
                attempt = attempt.saturating_add(1);
                tracing::warn!(error = %e, "database session lost; reconnecting");
            }
        }
        if s.leader.swap(false, Ordering::AcqRel) {
            tracing::warn!("background-job lease given up with the database session");
        }
        let wait = crate::clock::exponential_backoff(
            attempt,
            Duration::from_millis(100),
            Duration::from_secs(5),
        );
        tokio::time::sleep(wait).await;
    }
}

async fn session_once(s: &Session) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = s.pg.connect(s.tls.clone()).await?;
    let (tx, mut notices) = mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "database session connection ended");
                    break;
                }
            }
        }
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN \"{}\"", s.channel))
            .await?;
        // Anything may have changed while we were not listening.
        let _ = s.changes.send(ChangeNotice::Everything);
        let mut tick = tokio::time::interval(LEASE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                n = notices.recv() => match n {
                    Some(payload) => {
                        if let Some(topics) = decode_notice(&s.instance, &payload) {
                            let _ = s.changes.send(ChangeNotice::Topics(topics));
                        }
                    }
                    // The connection driver ended: the session is gone.
                    None => return client.simple_query("SELECT 1").await.map(|_| ()),
                },
                _ = tick.tick() => {
                    if s.leader.load(Ordering::Acquire) {
                        // Still connected means still holding the lock.
                        client.simple_query("SELECT 1").await?;
                    } else {
                        let row = client
                            .query_one("SELECT pg_try_advisory_lock($1)", &[&s.job_lock])
                            .await?;
                        if row.get::<_, bool>(0) {
                            s.leader.store(true, Ordering::Release);
                            tracing::info!("this replica now runs the vault's background jobs");
                        }
                    }
                }
            }
        }
    }
    .await;
    driver.abort();
    result
}
