//! Leader election with a coordination Lease, so that two operator replicas never both act.
//!
//! The Lease `kvault-operator` in the operator's namespace names its holder. A replica takes
//! it when it is free or expired, renews it every [`RENEW_EVERY`], and stops (the process
//! exits; Kubernetes restarts it as a candidate) when it finds the Lease taken or has not
//! renewed it for two thirds of its duration. Every write is
//! a `replace` with the read `resourceVersion`, so two candidates racing for an expired
//! Lease cannot both win: the API server refuses the second with 409.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use std::time::Duration;

pub const LEASE_NAME: &str = "kvault-operator";
/// How long a Lease stays valid without renewal. A standby takes over within this plus one
/// retry (about 12 s after the leader dies); the leader renews five times per period, so a
/// slow API server answer or two does not cost it the Lease.
pub const LEASE_SECONDS: i32 = 10;
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How often a candidate retries.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);

/// What a replica should do with the Lease as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Free or expired: take it.
    Take,
    /// Ours: renew it.
    Renew,
    /// Someone else holds it.
    Wait { holder: String },
}

pub fn step(spec: Option<&LeaseSpec>, me: &str, now: i64) -> Step {
    let Some(spec) = spec else { return Step::Take };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder.is_empty() {
        return Step::Take;
    }
    if holder == me {
        return Step::Renew;
    }
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0.as_second());
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    match renewed {
        Some(t) if t + duration > now => Step::Wait { holder },
        _ => Step::Take,
    }
}

/// The Lease after taking or renewing it.
pub fn held(old: Option<&Lease>, namespace: &str, me: &str, now: Timestamp) -> Lease {
    let mut lease = old.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(LEASE_NAME.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        spec: None,
    });
    let mut spec = lease.spec.take().unwrap_or_default();
    let taking = spec.holder_identity.as_deref() != Some(me);
    if taking {
        spec.holder_identity = Some(me.into());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions =
            Some(spec.lease_transitions.unwrap_or(0) + i32::from(old.is_some()));
    }
    spec.lease_duration_seconds = Some(LEASE_SECONDS);
    spec.renew_time = Some(MicroTime(now));
    lease.spec = Some(spec);
    lease
}

/// One attempt: `Ok(true)` when this replica holds the Lease afterwards.
pub async fn try_hold(client: &Client, namespace: &str, me: &str) -> Result<bool, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let now = Timestamp::now();
    let current = api.get_opt(LEASE_NAME).await?;
    match step(
        current.as_ref().and_then(|l| l.spec.as_ref()),
        me,
        now.as_second(),
    ) {
        Step::Wait { .. } => Ok(false),
        Step::Take | Step::Renew => {
            let next = held(current.as_ref(), namespace, me, now);
            let written = match current {
                None => api.create(&PostParams::default(), &next).await,
                // Carries the read resourceVersion: a concurrent write makes this a 409.
                Some(_) => api.replace(LEASE_NAME, &PostParams::default(), &next).await,
            };
            match written {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until this replica holds the Lease.
pub async fn acquire(client: &Client, namespace: &str, me: &str) {
    let mut waiting_logged = false;
    loop {
        match try_hold(client, namespace, me).await {
            Ok(true) => {
                tracing::info!(lease = LEASE_NAME, identity = me, "leader");
                return;
            }
            Ok(false) if !waiting_logged => {
                tracing::info!(lease = LEASE_NAME, "another replica leads; waiting");
                waiting_logged = true;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read or take the Lease"),
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// Renews the Lease until it is found taken, or until renewals have failed for so long that
/// another replica may take it (two thirds of its duration); then returns. A single failed
/// renewal (an API server hiccup) is retried.
pub async fn hold(client: &Client, namespace: &str, me: &str) {
    let give_up_after = Duration::from_secs(u64::try_from(LEASE_SECONDS).unwrap_or(10) * 2 / 3);
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match try_hold(client, namespace, me).await {
            Ok(true) => last_renewal = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!(lease = LEASE_NAME, "the Lease was taken by another replica");
                return;
            }
            Err(e) if last_renewal.elapsed() >= give_up_after => {
                tracing::error!(error = %e, "cannot renew the Lease; stepping down");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew the Lease; retrying"),
        }
    }
}

/// Frees the Lease at shutdown so that another replica takes over at once. Best effort.
pub async fn release(client: &Client, namespace: &str, me: &str) {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let Ok(Some(mut lease)) = api.get_opt(LEASE_NAME).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(me) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    if let Err(e) = api
        .replace(LEASE_NAME, &PostParams::default(), &lease)
        .await
    {
        tracing::warn!(error = %e, "cannot release the Lease");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn a_free_lease_is_taken_and_an_own_one_renewed() {
        assert_eq!(step(None, "a", 100), Step::Take);
        let mine = held(None, "ops", "a", at(100));
        assert_eq!(step(mine.spec.as_ref(), "a", 105), Step::Renew);
        assert_eq!(mine.metadata.name.as_deref(), Some(LEASE_NAME));
        assert_eq!(
            mine.spec.as_ref().unwrap().lease_duration_seconds,
            Some(LEASE_SECONDS)
        );
    }

    #[test]
    fn another_holder_is_respected_until_its_lease_expires() {
        let theirs = held(None, "ops", "b", at(100));
        assert_eq!(
            step(
                theirs.spec.as_ref(),
                "a",
                100 + i64::from(LEASE_SECONDS) - 1
            ),
            Step::Wait { holder: "b".into() }
        );
        assert_eq!(
            step(theirs.spec.as_ref(), "a", 100 + i64::from(LEASE_SECONDS)),
            Step::Take
        );
        // Taking it over counts a transition and keeps the object (its resourceVersion).
        let mut with_version = theirs.clone();
        with_version.metadata.resource_version = Some("42".into());
        let mine = held(Some(&with_version), "ops", "a", at(200));
        let spec = mine.spec.as_ref().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(1));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(200))));
        assert_eq!(mine.metadata.resource_version.as_deref(), Some("42"));
    }

    #[test]
    fn renewing_keeps_the_acquire_time() {
        let first = held(None, "ops", "a", at(100));
        let renewed = held(Some(&first), "ops", "a", at(110));
        let spec = renewed.spec.unwrap();
        assert_eq!(spec.acquire_time, Some(MicroTime(at(100))));
        assert_eq!(spec.renew_time, Some(MicroTime(at(110))));
        assert_eq!(spec.lease_transitions, Some(0));
    }
}
