//! The delivery loop: posts outbox records to their subscriptions at least once.
//!
//! Per subscription, records go in staging order, one at a time; the first failure stops
//! that subscription for this pass and puts it in backoff (exponential, with jitter, kept in
//! memory: after a restart everything is tried at once, then backs off again). A record is
//! removed on a 2xx, dead-lettered when the endpoint refuses it for good (400, 413), when its
//! time to live has passed, or when its subscription left the policy. Record updates are
//! conditional on the stored form, so a record is never resurrected.

use super::{
    CLOUDEVENTS_CONTENT_TYPE, DEAD_LETTERS, DeadLetter, DeadLetterLabels, DeadLetterReason,
    DeliveryLabels, OUTBOX, Pending,
};
use crate::clock::UnixTime;
use crate::policy::{EventSettings, EventSubscription};
use crate::server::state::AppState;
use crate::server::store::{Batch, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A random 64-bit number (jitter only).
fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    match aws_lc_rs::rand::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => 0,
    }
}

/// The wait before the next attempt after `failures` consecutive failures (at least 1):
/// `initial · 2^(failures-1)`, capped at `max`, with equal jitter — half of it fixed, half
/// random (`random` picks where), so subscribers that failed together do not retry in step.
pub fn backoff(failures: u32, initial: Duration, max: Duration, random: u64) -> Duration {
    let full = crate::clock::exponential_backoff(failures, initial, max).as_nanos();
    let half = full / 2;
    let jitter = u128::from(random) % (full - half + 1);
    Duration::from_nanos(u64::try_from(half + jitter).unwrap_or(u64::MAX))
}

/// What a delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: acknowledged.
    Delivered,
    /// The endpoint refuses this event for good (400 Bad Request, 413 Content Too Large),
    /// as the cloud's event service treats them.
    Rejected(u16),
    /// Anything else: try again later. The text never holds the URL or the header.
    Failed(String),
}

pub fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        400 | 413 => Outcome::Rejected(status),
        s => Outcome::Failed(format!("HTTP {s}")),
    }
}

/// A transport error as text without the URL (which may carry a query the owner considers
/// secret), with its causes.
fn transport_error(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut text = kind.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(300).collect()
}

/// The endpoint as logs may show it: scheme, host, port and path, no query.
pub fn endpoint_for_logs(endpoint: &str) -> String {
    match reqwest::Url::parse(endpoint) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "<invalid endpoint>".into(),
    }
}

/// The HTTPS client of one subscription (its CA bundle, no redirects).
pub fn client_for(sub: &EventSubscription, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .user_agent(concat!("kvault/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &sub.ca_bundle {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|_| "the caBundle cannot be read".to_string())?;
        b = b.tls_certs_only(certs);
    }
    b.build()
        .map_err(|e| format!("cannot build the HTTPS client: {}", e.without_url()))
}

/// One POST of one event (structured mode).
pub async fn post(client: &reqwest::Client, sub: &EventSubscription, body: Vec<u8>) -> Outcome {
    let mut req = client
        .post(&sub.endpoint)
        .header(reqwest::header::CONTENT_TYPE, CLOUDEVENTS_CONTENT_TYPE)
        .body(body);
    if let Some(h) = &sub.auth_header
        && let Some(v) = &h.value
    {
        let Ok(mut value) = reqwest::header::HeaderValue::from_str(v.expose()) else {
            return Outcome::Failed("the authHeader value is not a valid header value".into());
        };
        value.set_sensitive(true);
        req = req.header(h.name.as_str(), value);
    }
    match req.send().await {
        Ok(resp) => classify(resp.status().as_u16()),
        Err(e) => Outcome::Failed(transport_error(e)),
    }
}

/// A subscription that failed: when to try it again.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub failures: u32,
    pub until: Instant,
}

/// What the loop keeps between passes.
#[derive(Default)]
pub struct DeliveryState {
    backoffs: HashMap<String, Backoff>,
    /// Each subscription's client, with the CA bundle and timeout it was built for.
    clients: HashMap<String, (Option<String>, reqwest::Client)>,
}

impl DeliveryState {
    fn client(
        &mut self,
        sub: &EventSubscription,
        timeout: Duration,
    ) -> Result<reqwest::Client, String> {
        if let Some((ca, c)) = self.clients.get(&sub.name)
            && *ca == sub.ca_bundle
        {
            return Ok(c.clone());
        }
        let c = client_for(sub, timeout)?;
        self.clients
            .insert(sub.name.clone(), (sub.ca_bundle.clone(), c.clone()));
        Ok(c)
    }

    /// The earliest end of a backoff still running.
    fn next_due(&self, now: Instant) -> Option<Duration> {
        self.backoffs
            .values()
            .filter(|b| b.until > now)
            .map(|b| b.until - now)
            .min()
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassSummary {
    pub delivered: usize,
    pub failed: usize,
    pub dead_lettered: usize,
    /// Records still in the outbox.
    pub pending: usize,
}

fn ttl_secs(state: &AppState, sub: &EventSubscription) -> i64 {
    match sub.ttl_minutes {
        Some(m) => i64::from(m) * 60,
        None => i64::try_from(state.events.config.ttl.as_secs()).unwrap_or(i64::MAX),
    }
}

/// Moves an outbox record to the dead letters (if it is still `raw`).
async fn dead_letter(
    state: &AppState,
    name: &str,
    raw: Vec<u8>,
    p: Pending,
    reason: DeadLetterReason,
) -> Result<bool, StoreError> {
    let now = state.clock.now();
    let letter = DeadLetter {
        subscription: p.subscription.clone(),
        reason,
        attempts: p.attempts,
        last_error: p.last_error,
        created: p.created,
        dead_lettered: now,
        event: p.event,
    };
    let bytes = serde_json::to_vec(&letter)
        .map_err(|e| StoreError::backend("encoding a dead letter", e))?;
    let mut batch = Batch::default();
    state.store.expect_meta(&mut batch, name, Some(raw));
    state.store.stage_delete_meta(&mut batch, name);
    let dead_name = format!(
        "{DEAD_LETTERS}{:012}-{}",
        now.max(0),
        crate::crypto::new_version_id()?
    );
    state.store.stage_meta(&mut batch, &dead_name, &bytes)?;
    match state.store.commit(batch).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Ok(false),
        Err(e) => return Err(e),
    }
    state
        .metrics
        .events
        .dead_lettered
        .get_or_create(&DeadLetterLabels {
            subscription: letter.subscription.clone(),
            reason: reason.as_str(),
        })
        .inc();
    tracing::warn!(
        subscription = %letter.subscription,
        reason = reason.as_str(),
        attempts = letter.attempts,
        event_type = %letter.event.type_,
        "event dead-lettered"
    );
    Ok(true)
}

fn parse(plain: &[u8]) -> Result<Pending, StoreError> {
    serde_json::from_slice(plain)
        .map_err(|_| StoreError::Integrity("an outbox record is malformed".into()))
}

/// How one subscription's share of a pass ended.
struct SubResult {
    name: String,
    delivered: usize,
    dead_lettered: usize,
    failed: bool,
}

/// Delivers one subscription's records in order until one fails.
async fn deliver_subscription(
    state: Arc<AppState>,
    sub: EventSubscription,
    client: Result<reqwest::Client, String>,
    records: Vec<String>,
) -> Result<SubResult, StoreError> {
    let mut out = SubResult {
        name: sub.name.clone(),
        delivered: 0,
        dead_lettered: 0,
        failed: false,
    };
    for name in records {
        // Re-read for the conditional write (another pass may have handled it).
        let Some((plain, raw)) = state.store.meta(&name).await? else {
            continue;
        };
        let mut p = parse(&plain)?;
        drop(plain);
        let outcome = match &client {
            Ok(c) => {
                let body = serde_json::to_vec(&p.event)
                    .map_err(|e| StoreError::backend("encoding an event", e))?;
                post(c, &sub, body).await
            }
            Err(why) => Outcome::Failed(why.clone()),
        };
        let label = |outcome: &'static str| DeliveryLabels {
            subscription: sub.name.clone(),
            outcome,
        };
        match outcome {
            Outcome::Delivered => {
                state
                    .metrics
                    .events
                    .deliveries
                    .get_or_create(&label("delivered"))
                    .inc();
                match state.store.delete_meta(&name, raw).await {
                    Ok(()) | Err(StoreError::Conflict) => {}
                    Err(e) => return Err(e),
                }
                out.delivered += 1;
            }
            Outcome::Rejected(status) => {
                state
                    .metrics
                    .events
                    .deliveries
                    .get_or_create(&label("failed"))
                    .inc();
                p.attempts += 1;
                p.last_error = Some(format!("HTTP {status}"));
                if dead_letter(&state, &name, raw, p, DeadLetterReason::Rejected).await? {
                    out.dead_lettered += 1;
                }
            }
            Outcome::Failed(why) => {
                state
                    .metrics
                    .events
                    .deliveries
                    .get_or_create(&label("failed"))
                    .inc();
                p.attempts += 1;
                tracing::info!(
                    subscription = %sub.name,
                    endpoint = %endpoint_for_logs(&sub.endpoint),
                    attempts = p.attempts,
                    error = %why,
                    "event delivery failed; it will be retried"
                );
                p.last_error = Some(why);
                let bytes = serde_json::to_vec(&p)
                    .map_err(|e| StoreError::backend("encoding an event", e))?;
                match state.store.put_meta(&name, &bytes, Some(raw)).await {
                    Ok(()) | Err(StoreError::Conflict) => {}
                    Err(e) => return Err(e),
                }
                out.failed = true;
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// One pass over the outbox. Returns what it did and how soon a backoff ends.
pub async fn deliver_once(
    state: &Arc<AppState>,
    ds: &mut DeliveryState,
) -> Result<(PassSummary, Option<Duration>), StoreError> {
    let rt = state.policy.current();
    let empty = EventSettings::default();
    let settings = rt.policy.doc.events.as_ref().unwrap_or(&empty);
    let now: UnixTime = state.clock.now();
    let mut summary = PassSummary::default();
    // Subscription → its records, in staging order.
    let mut due: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, plain) in state.store.meta_scan(OUTBOX).await? {
        let p = parse(&plain)?;
        drop(plain);
        let Some(sub) = settings.subscription(&p.subscription) else {
            if let Some((_, raw)) = state.store.meta(&name).await?
                && dead_letter(state, &name, raw, p, DeadLetterReason::SubscriptionRemoved).await?
            {
                summary.dead_lettered += 1;
            }
            continue;
        };
        if now.saturating_sub(p.created) >= ttl_secs(state, sub) {
            if let Some((_, raw)) = state.store.meta(&name).await?
                && dead_letter(state, &name, raw, p, DeadLetterReason::TimeToLiveExpired).await?
            {
                summary.dead_lettered += 1;
            }
            continue;
        }
        summary.pending += 1;
        due.entry(p.subscription).or_default().push(name);
    }
    let started = Instant::now();
    ds.backoffs.retain(|name, _| due.contains_key(name));
    let mut tasks = tokio::task::JoinSet::new();
    for (sub_name, records) in due {
        if ds
            .backoffs
            .get(&sub_name)
            .is_some_and(|b| b.until > started)
        {
            continue;
        }
        let Some(sub) = settings.subscription(&sub_name) else {
            continue;
        };
        let client = ds.client(sub, state.events.config.request_timeout);
        tasks.spawn(deliver_subscription(
            state.clone(),
            sub.clone(),
            client,
            records,
        ));
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let r = match joined {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "an event delivery task failed");
                continue;
            }
        };
        summary.delivered += r.delivered;
        summary.dead_lettered += r.dead_lettered;
        summary.pending = summary
            .pending
            .saturating_sub(r.delivered + r.dead_lettered);
        if r.failed {
            summary.failed += 1;
            let failures = ds.backoffs.get(&r.name).map_or(0, |b| b.failures) + 1;
            let cfg = &state.events.config;
            let wait = backoff(failures, cfg.initial_backoff, cfg.max_backoff, random_u64());
            ds.backoffs.insert(
                r.name,
                Backoff {
                    failures,
                    until: Instant::now() + wait,
                },
            );
        } else {
            ds.backoffs.remove(&r.name);
        }
    }
    state
        .metrics
        .events
        .pending
        .set(i64::try_from(summary.pending).unwrap_or(i64::MAX));
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok((summary, ds.next_due(Instant::now())))
}

/// Runs the delivery loop until aborted: a pass when woken by new events, when a backoff
/// ends, or every poll interval — only while this replica holds the job lease.
pub fn spawn(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ds = DeliveryState::default();
        loop {
            let mut wait = state.events.config.poll_interval;
            if state.store.holds_job_lease().await {
                match deliver_once(&state, &mut ds).await {
                    Ok((_, Some(next))) => wait = wait.min(next),
                    Ok((_, None)) => {}
                    Err(e) => tracing::warn!(error = %e, "event delivery pass failed"),
                }
            }
            tokio::select! {
                _ = state.events.woken() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_with_equal_jitter_and_is_capped() {
        let max = Duration::from_secs(60);
        // random = 0: the fixed half; random = max: the full delay.
        assert_eq!(backoff(1, S, max, 0), Duration::from_millis(500));
        assert_eq!(backoff(1, S, max, u64::MAX), backoff(1, S, max, u64::MAX));
        for failures in 1..10u32 {
            let full = (S * 2u32.pow(failures - 1)).min(max);
            for r in [0, 1, 12345, u64::MAX / 3, u64::MAX] {
                let d = backoff(failures, S, max, r);
                assert!(d >= full / 2 && d <= full, "{failures} {r} {d:?}");
            }
        }
        assert!(backoff(40, S, max, 7) <= max);
        assert!(backoff(u32::MAX, S, max, 7) <= max);
        assert_eq!(backoff(0, S, max, 0), Duration::from_millis(500));
        // Jitter spreads retries.
        let spread: std::collections::HashSet<_> = (0..50u64)
            .map(|r| backoff(5, S, max, r * 999_999_937))
            .collect();
        assert!(spread.len() > 10);
    }

    #[test]
    fn statuses_are_classified_as_the_clouds_event_service_does() {
        assert_eq!(classify(200), Outcome::Delivered);
        assert_eq!(classify(202), Outcome::Delivered);
        assert_eq!(classify(204), Outcome::Delivered);
        assert_eq!(classify(400), Outcome::Rejected(400));
        assert_eq!(classify(413), Outcome::Rejected(413));
        for s in [301, 401, 403, 404, 408, 429, 500, 503] {
            assert_eq!(classify(s), Outcome::Failed(format!("HTTP {s}")));
        }
    }

    #[test]
    fn logs_show_endpoints_without_their_query() {
        assert_eq!(
            endpoint_for_logs("https://hooks.example.test/kv?code=s3cr3t#x"),
            "https://hooks.example.test/kv"
        );
        assert_eq!(endpoint_for_logs("::"), "<invalid endpoint>");
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        for _ in 0..100 {
            let full = Duration::from_millis(64);
            let d = backoff(1, full, full, random_u64());
            assert!(d >= Duration::from_millis(32) && d <= Duration::from_millis(64));
        }
    }
}
