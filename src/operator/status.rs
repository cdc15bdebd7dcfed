//! A vault's status from what the reconcile saw: pure, so that "no change, no patch" and the
//! condition transitions are tested without an API server.

use super::policy::GrantState;
use crate::api::condition::{APPLIED, DEGRADED, PROGRESSING, READY};
use crate::api::{GrantStatus, Vault, VaultStatus};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// What one reconcile of a vault found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The spec or name cannot be turned into objects; nothing was applied.
    Invalid {
        reason: &'static str,
        message: String,
    },
    /// The objects were applied; this is the StatefulSet's rollout as the API server
    /// returned it.
    Applied(Rollout),
    /// Serving, but the policy document could not be pushed.
    PolicyNotApplied { rollout: Rollout, message: String },
    /// Pods are not ready for a reason the user must act on (unschedulable, image pull,
    /// crash loop), read from the pods' conditions and container states.
    PodsFailing {
        rollout: Rollout,
        trouble: PodTrouble,
    },
    /// The API server refused an object (or a change) of the vault; `serving` is whether
    /// the vault was Ready before, on its previous spec.
    ApplyFailed { message: String, serving: bool },
}

/// The part of a StatefulSet's status that says whether the vault serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rollout {
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    /// The controller has seen the latest template and the current revision is the update
    /// revision.
    pub settled: bool,
}

impl Rollout {
    pub fn of(sts: &StatefulSet, default_replicas: i32) -> Self {
        let desired = sts
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(default_replicas);
        let Some(st) = sts.status.as_ref() else {
            return Self {
                desired,
                ..Self::default()
            };
        };
        let seen = match (st.observed_generation, sts.metadata.generation) {
            (Some(o), Some(g)) => o >= g,
            _ => false,
        };
        let same_revision = match (&st.current_revision, &st.update_revision) {
            (Some(c), Some(u)) => c == u,
            // Older API servers leave them out while nothing rolls.
            (None, None) => true,
            _ => false,
        };
        Self {
            desired,
            ready: st.ready_replicas.unwrap_or(0),
            updated: st.updated_replicas.unwrap_or(0),
            settled: seen && same_revision,
        }
    }

    pub fn serving(&self) -> bool {
        self.desired > 0 && self.ready >= self.desired && self.settled
    }
}

/// Reasons (CamelCase, as `kubectl describe` shows them).
pub mod reason {
    pub const SERVING: &str = "Serving";
    pub const PODS_NOT_READY: &str = "PodsNotReady";
    pub const SCALED_TO_ZERO: &str = "ScaledToZero";
    pub const ROLLING_OUT: &str = "RollingOut";
    pub const ROLLED_OUT: &str = "RolledOut";
    pub const AS_EXPECTED: &str = "AsExpected";
    pub const INVALID_NAME: &str = "InvalidName";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const INVALID_POLICY: &str = "InvalidPolicy";
    pub const DELETED_VAULT_EXISTS: &str = "DeletedVaultExists";
    pub const NOTHING_TO_RECOVER: &str = "NothingToRecover";
    pub const POLICY_NOT_APPLIED: &str = "PolicyNotApplied";
    pub const PUSHING_POLICY: &str = "PushingPolicy";
    pub const APPLY_FAILED: &str = "ApplyFailed";
    pub const PODS_UNSCHEDULABLE: &str = "PodsUnschedulable";
    pub const IMAGE_PULL_FAILED: &str = "ImagePullFailed";
    pub const PODS_CRASHING: &str = "PodsCrashing";
    pub const POD_CONFIG_INVALID: &str = "PodConfigInvalid";
}

/// Why a vault's pods do not become ready, when the pods say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTrouble {
    pub reason: &'static str,
    pub message: String,
}

/// The first pod trouble worth telling (pods sorted by name): a pod the scheduler cannot
/// place, an image that cannot be pulled, a container in a crash loop or with an invalid
/// configuration. `None` while pods are merely starting.
pub fn pod_trouble(pods: &[Pod]) -> Option<PodTrouble> {
    let mut pods: Vec<&Pod> = pods.iter().collect();
    pods.sort_by_key(|p| p.metadata.name.clone());
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        let Some(st) = &pod.status else { continue };
        if let Some(c) = st.conditions.iter().flatten().find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        }) {
            return Some(PodTrouble {
                reason: reason::PODS_UNSCHEDULABLE,
                message: format!(
                    "pod {name} cannot be scheduled: {}",
                    c.message.as_deref().unwrap_or("no node fits")
                ),
            });
        }
        let containers = st
            .init_container_statuses
            .iter()
            .flatten()
            .chain(st.container_statuses.iter().flatten());
        for cs in containers {
            let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let why = waiting.reason.as_deref().unwrap_or_default();
            let reason = match why {
                "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                    reason::IMAGE_PULL_FAILED
                }
                "CrashLoopBackOff" => reason::PODS_CRASHING,
                "CreateContainerConfigError" | "CreateContainerError" => reason::POD_CONFIG_INVALID,
                _ => continue,
            };
            let detail = waiting.message.as_deref().unwrap_or_default();
            return Some(PodTrouble {
                reason,
                message: format!(
                    "pod {name}, container {} ({}): {why}{}{detail}",
                    cs.name,
                    cs.image,
                    if detail.is_empty() { "" } else { ": " }
                ),
            });
        }
    }
    None
}

/// One condition as this reconcile wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

fn wanted(type_: &'static str, status: bool, reason: &'static str, message: String) -> Wanted {
    Wanted {
        type_,
        status,
        reason,
        message,
    }
}

/// Ready, Progressing and Degraded for an outcome.
pub fn conditions_for(outcome: &Outcome) -> [Wanted; 3] {
    use reason::*;
    match outcome {
        Outcome::Invalid { reason, message } => [
            wanted(READY, false, reason, message.clone()),
            wanted(
                PROGRESSING,
                false,
                reason,
                "nothing is applied until the spec is fixed".into(),
            ),
            wanted(DEGRADED, true, reason, message.clone()),
        ],
        Outcome::PolicyNotApplied { message, .. } => [
            wanted(READY, false, POLICY_NOT_APPLIED, message.clone()),
            wanted(
                PROGRESSING,
                true,
                PUSHING_POLICY,
                "retrying the policy push".into(),
            ),
            wanted(DEGRADED, true, POLICY_NOT_APPLIED, message.clone()),
        ],
        Outcome::ApplyFailed { message, serving } => [
            if *serving {
                wanted(
                    READY,
                    true,
                    SERVING,
                    "serving the previous spec: the current one could not be applied".into(),
                )
            } else {
                wanted(READY, false, APPLY_FAILED, message.clone())
            },
            wanted(
                PROGRESSING,
                false,
                APPLY_FAILED,
                "retrying with backoff until the spec or the cluster changes".into(),
            ),
            wanted(DEGRADED, true, APPLY_FAILED, message.clone()),
        ],
        Outcome::PodsFailing { rollout, trouble } => [
            wanted(READY, false, trouble.reason, trouble.message.clone()),
            wanted(
                PROGRESSING,
                true,
                ROLLING_OUT,
                format!("{} of {} pods ready", rollout.ready, rollout.desired),
            ),
            wanted(DEGRADED, true, trouble.reason, trouble.message.clone()),
        ],
        Outcome::Applied(r) if r.desired == 0 => [
            wanted(READY, false, SCALED_TO_ZERO, "spec.replicas is 0".into()),
            wanted(PROGRESSING, false, ROLLED_OUT, "no pods wanted".into()),
            wanted(DEGRADED, false, AS_EXPECTED, String::new()),
        ],
        Outcome::Applied(r) if r.serving() => [
            wanted(
                READY,
                true,
                SERVING,
                format!("{} of {} pods ready", r.ready, r.desired),
            ),
            wanted(
                PROGRESSING,
                false,
                ROLLED_OUT,
                "all pods run the current spec".into(),
            ),
            wanted(DEGRADED, false, AS_EXPECTED, String::new()),
        ],
        Outcome::Applied(r) => [
            wanted(
                READY,
                false,
                PODS_NOT_READY,
                format!("{} of {} pods ready", r.ready, r.desired),
            ),
            wanted(
                PROGRESSING,
                true,
                ROLLING_OUT,
                format!("{} of {} pods updated", r.updated, r.desired),
            ),
            wanted(DEGRADED, false, AS_EXPECTED, String::new()),
        ],
    }
}

/// Merges wanted conditions into the existing ones: a condition whose status did not change
/// keeps its `lastTransitionTime`, so an unchanged vault yields an identical status (and no
/// patch).
pub fn merge_conditions(
    old: &[Condition],
    wanted: &[Wanted],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    wanted
        .iter()
        .map(|w| {
            let status = if w.status { "True" } else { "False" };
            let since = old
                .iter()
                .find(|c| c.type_ == w.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: w.type_.into(),
                status: status.into(),
                reason: w.reason.into(),
                message: w.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// The status a vault should have after this reconcile. The policy fields are carried over
/// (the policy push owns them).
pub fn vault_status(vault: &Vault, outcome: &Outcome, now: &Time) -> VaultStatus {
    let old = vault.status.clone().unwrap_or_default();
    let generation = vault.metadata.generation;
    VaultStatus {
        conditions: merge_conditions(&old.conditions, &conditions_for(outcome), generation, now),
        observed_generation: generation,
        vault_uri: vault.url(),
        applied_policy_generation: old.applied_policy_generation,
        applied_policy_digest: old.applied_policy_digest,
    }
}

/// A grant's status after a compile: its `Applied` condition and, when the document holds
/// it, the policy generation that does.
pub fn grant_status(
    old: Option<&GrantStatus>,
    state: &GrantState,
    grant_generation: Option<i64>,
    policy_generation: i64,
    now: &Time,
) -> GrantStatus {
    let (status, reason) = state.condition();
    let w = wanted(APPLIED, status == "True", reason, state.message());
    let in_document = matches!(state, GrantState::Applied | GrantState::Inactive(_));
    let old_conditions = old.map(|o| o.conditions.as_slice()).unwrap_or_default();
    GrantStatus {
        conditions: merge_conditions(old_conditions, &[w], grant_generation, now),
        observed_generation: grant_generation,
        applied_policy_generation: in_document.then_some(policy_generation),
    }
}

/// Grant reasons set by the grants' own controller (the Vault's reconcile sets the others).
pub const VAULT_NOT_FOUND: &str = "VaultNotFound";
pub const VAULT_NOT_READY: &str = "VaultNotReady";

/// What a grant's status should say while its vault cannot apply it: `None` when the vault
/// is ready (its reconcile reports on the grant) or when the grant is already applied at its
/// current generation (a vault that is briefly not ready keeps enforcing its last policy).
pub fn pending_grant_status(
    old: Option<&GrantStatus>,
    vault_name: &str,
    namespace: &str,
    vault: Option<&Vault>,
    grant_generation: Option<i64>,
    now: &Time,
) -> Option<GrantStatus> {
    let (reason, message) = match vault {
        None => (
            VAULT_NOT_FOUND,
            format!("no Vault named {vault_name} in namespace {namespace}"),
        ),
        Some(v) if ready_state(v.status.as_ref()).is_some_and(|(s, _)| s == "True") => {
            return None;
        }
        Some(_) => (
            VAULT_NOT_READY,
            format!("Vault {vault_name} is not ready; the grant is applied once it is"),
        ),
    };
    if vault.is_some()
        && old.is_some_and(|o| {
            o.observed_generation == grant_generation
                && o.conditions
                    .iter()
                    .any(|c| c.type_ == APPLIED && c.status == "True")
        })
    {
        return None;
    }
    let w = wanted(APPLIED, false, reason, message);
    let old_conditions = old.map(|o| o.conditions.as_slice()).unwrap_or_default();
    let new = GrantStatus {
        conditions: merge_conditions(old_conditions, &[w], grant_generation, now),
        observed_generation: grant_generation,
        applied_policy_generation: None,
    };
    (old != Some(&new)).then_some(new)
}

/// The Ready condition's (status, reason), to tell transitions (which get an event) from
/// repeats.
pub fn ready_state(status: Option<&VaultStatus>) -> Option<(String, String)> {
    condition_state(status, READY)
}

/// A condition's (status, reason).
pub fn condition_state(status: Option<&VaultStatus>, type_: &str) -> Option<(String, String)> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::VaultSpec;
    use crate::operator::fixtures;

    fn pod(name: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}, "status": status
        }))
        .unwrap()
    }

    #[test]
    fn pods_say_why_they_are_not_ready() {
        let starting = pod("v-0", serde_json::json!({"phase": "Pending"}));
        assert_eq!(pod_trouble(std::slice::from_ref(&starting)), None);
        let unschedulable = pod(
            "v-1",
            serde_json::json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available: 3 Insufficient memory."}]}),
        );
        let t = pod_trouble(&[starting.clone(), unschedulable]).unwrap();
        assert_eq!(t.reason, reason::PODS_UNSCHEDULABLE);
        assert!(
            t.message.contains("v-1") && t.message.contains("Insufficient memory"),
            "{}",
            t.message
        );
        let pulling = pod(
            "v-0",
            serde_json::json!({"phase": "Pending", "containerStatuses": [
            {"name": "kvault", "image": "ghcr.io/kvault/kvault:nope", "imageID": "", "ready": false,
             "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff",
             "message": "Back-off pulling image"}}}]}),
        );
        let t = pod_trouble(&[pulling]).unwrap();
        assert_eq!(t.reason, reason::IMAGE_PULL_FAILED);
        assert!(
            t.message.contains("ghcr.io/kvault/kvault:nope")
                && t.message.contains("ImagePullBackOff"),
            "{}",
            t.message
        );
        let crashing = pod(
            "v-0",
            serde_json::json!({"containerStatuses": [
            {"name": "kvault", "image": "i", "imageID": "", "ready": false, "restartCount": 5,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
        );
        assert_eq!(
            pod_trouble(&[crashing]).unwrap().reason,
            reason::PODS_CRASHING
        );
        // Still creating: no trouble to report.
        let creating = pod(
            "v-0",
            serde_json::json!({"containerStatuses": [
            {"name": "kvault", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        assert_eq!(pod_trouble(&[creating]), None);
    }

    #[test]
    fn failing_pods_make_the_vault_degraded_with_their_reason() {
        let v = fixtures::vault("a", "v", VaultSpec::default());
        let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap());
        let outcome = Outcome::PodsFailing {
            rollout: Rollout {
                desired: 1,
                ..Default::default()
            },
            trouble: PodTrouble {
                reason: reason::IMAGE_PULL_FAILED,
                message: "pod v-0 …".into(),
            },
        };
        let st = vault_status(&v, &outcome, &now);
        let get = |t: &str| st.conditions.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(
            (get(READY).status.as_str(), get(READY).reason.as_str()),
            ("False", "ImagePullFailed")
        );
        assert_eq!(get(DEGRADED).status, "True");
        assert_eq!(get(PROGRESSING).status, "True");
    }

    fn t(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    fn serving() -> Outcome {
        Outcome::Applied(Rollout {
            desired: 1,
            ready: 1,
            updated: 1,
            settled: true,
        })
    }

    #[test]
    fn a_serving_vault_is_ready_with_its_url_and_generation() {
        let v = fixtures::vault("team-a", "payments", VaultSpec::default());
        let s = vault_status(&v, &serving(), &t(100));
        assert_eq!(s.vault_uri.as_deref(), Some("https://payments.team-a.svc"));
        assert_eq!(s.observed_generation, Some(1));
        let ready = &s.conditions[0];
        assert_eq!(
            (ready.type_.as_str(), ready.status.as_str()),
            ("Ready", "True")
        );
        assert_eq!(ready.reason, reason::SERVING);
        assert_eq!(s.conditions[1].status, "False");
        assert_eq!(s.conditions[2].status, "False");
    }

    #[test]
    fn an_unchanged_vault_gets_an_identical_status() {
        let mut v = fixtures::vault("team-a", "payments", VaultSpec::default());
        let first = vault_status(&v, &serving(), &t(100));
        v.status = Some(first.clone());
        // Later, nothing changed: same status, transition times kept, so no patch.
        assert_eq!(vault_status(&v, &serving(), &t(500)), first);
    }

    #[test]
    fn a_transition_moves_only_the_changed_conditions_time() {
        let mut v = fixtures::vault("team-a", "payments", VaultSpec::default());
        let rolling = Outcome::Applied(Rollout {
            desired: 2,
            ready: 1,
            updated: 1,
            settled: false,
        });
        v.status = Some(vault_status(&v, &rolling, &t(100)));
        let s = vault_status(&v, &serving(), &t(200));
        assert_eq!(s.conditions[0].last_transition_time, t(200)); // Ready: False → True
        assert_eq!(s.conditions[1].last_transition_time, t(200)); // Progressing: True → False
        assert_eq!(s.conditions[2].last_transition_time, t(100)); // Degraded stayed False
    }

    #[test]
    fn policy_fields_are_carried_over() {
        let mut v = fixtures::vault("team-a", "payments", VaultSpec::default());
        v.status = Some(VaultStatus {
            applied_policy_generation: Some(7),
            applied_policy_digest: Some("abc".into()),
            ..Default::default()
        });
        let s = vault_status(&v, &serving(), &t(1));
        assert_eq!(s.applied_policy_generation, Some(7));
        assert_eq!(s.applied_policy_digest.as_deref(), Some("abc"));
    }

    #[test]
    fn an_invalid_vault_is_degraded_and_not_progressing() {
        let v = fixtures::vault("team-a", "payments", VaultSpec::default());
        let out = Outcome::Invalid {
            reason: reason::INVALID_SPEC,
            message: "network.ipRules entry 'x' is not an IP address or CIDR".into(),
        };
        let s = vault_status(&v, &out, &t(1));
        let by = |ty: &str| s.conditions.iter().find(|c| c.type_ == ty).unwrap().clone();
        assert_eq!(by("Ready").status, "False");
        assert_eq!(by("Degraded").status, "True");
        assert_eq!(by("Degraded").reason, "InvalidSpec");
        assert!(by("Degraded").message.contains("ipRules"));
        assert_eq!(by("Progressing").status, "False");
    }

    #[test]
    fn grant_statuses_say_applied_or_why_not() {
        let s = grant_status(None, &GrantState::Applied, Some(3), 9, &t(10));
        assert_eq!(s.conditions[0].type_, "Applied");
        assert_eq!(s.conditions[0].status, "True");
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.applied_policy_generation, Some(9));
        // Unchanged: identical, so no patch.
        assert_eq!(
            grant_status(Some(&s), &GrantState::Applied, Some(3), 9, &t(99)),
            s
        );
        let bad = grant_status(
            Some(&s),
            &GrantState::Invalid("no such principal".into()),
            Some(4),
            10,
            &t(20),
        );
        assert_eq!(bad.conditions[0].status, "False");
        assert_eq!(bad.conditions[0].reason, "Invalid");
        assert_eq!(bad.conditions[0].message, "no such principal");
        assert_eq!(bad.conditions[0].last_transition_time, t(20));
        assert_eq!(bad.applied_policy_generation, None);
    }

    #[test]
    fn grants_of_missing_or_unready_vaults_say_so_once() {
        let s = pending_grant_status(None, "payments", "team-a", None, Some(1), &t(5)).unwrap();
        assert_eq!(s.conditions[0].reason, VAULT_NOT_FOUND);
        assert!(s.conditions[0].message.contains("payments"));
        // Said already: nothing to write.
        assert_eq!(
            pending_grant_status(Some(&s), "payments", "team-a", None, Some(1), &t(9)),
            None
        );

        let mut v = fixtures::vault("team-a", "payments", VaultSpec::default());
        let rolling = Outcome::Applied(Rollout {
            desired: 1,
            ..Default::default()
        });
        v.status = Some(vault_status(&v, &rolling, &t(1)));
        let s = pending_grant_status(Some(&s), "payments", "team-a", Some(&v), Some(1), &t(10))
            .unwrap();
        assert_eq!(s.conditions[0].reason, VAULT_NOT_READY);

        // A ready vault reports on its grants itself.
        v.status = Some(vault_status(&v, &serving(), &t(2)));
        assert_eq!(
            pending_grant_status(None, "payments", "team-a", Some(&v), Some(1), &t(10)),
            None
        );

        // An applied grant stays applied while its vault is briefly not ready.
        let applied = grant_status(None, &GrantState::Applied, Some(1), 3, &t(3));
        v.status = Some(vault_status(&v, &rolling, &t(4)));
        assert_eq!(
            pending_grant_status(
                Some(&applied),
                "payments",
                "team-a",
                Some(&v),
                Some(1),
                &t(10)
            ),
            None
        );
        // …but not once the grant changed.
        assert!(
            pending_grant_status(
                Some(&applied),
                "payments",
                "team-a",
                Some(&v),
                Some(2),
                &t(10)
            )
            .is_some()
        );
    }

    #[test]
    fn a_failed_push_degrades_the_vault() {
        let v = fixtures::vault("team-a", "payments", VaultSpec::default());
        let out = Outcome::PolicyNotApplied {
            rollout: Rollout::default(),
            message: "cannot reach the vault".into(),
        };
        let s = vault_status(&v, &out, &t(1));
        assert_eq!(s.conditions[0].reason, reason::POLICY_NOT_APPLIED);
        assert_eq!(s.conditions[2].status, "True");
    }

    #[test]
    fn rollout_reads_the_stateful_set_status() {
        use k8s_openapi::api::apps::v1::{StatefulSetSpec, StatefulSetStatus};
        let mut sts = StatefulSet {
            spec: Some(StatefulSetSpec {
                replicas: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        };
        sts.metadata.generation = Some(4);
        assert_eq!(Rollout::of(&sts, 1).desired, 3);
        assert!(!Rollout::of(&sts, 1).serving());
        sts.status = Some(StatefulSetStatus {
            observed_generation: Some(4),
            replicas: 3,
            ready_replicas: Some(3),
            updated_replicas: Some(3),
            current_revision: Some("r2".into()),
            update_revision: Some("r2".into()),
            ..Default::default()
        });
        assert!(Rollout::of(&sts, 1).serving());
        // An old generation or a rollout in flight is not serving the current spec.
        sts.metadata.generation = Some(5);
        assert!(!Rollout::of(&sts, 1).serving());
        sts.metadata.generation = Some(4);
        sts.status.as_mut().unwrap().update_revision = Some("r3".into());
        assert!(!Rollout::of(&sts, 1).serving());
    }
}
