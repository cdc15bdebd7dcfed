//! When to restart workloads after a vault object changed: pure decisions, kept in the
//! `SecretSync`'s status (so they survive an operator restart) or, for workloads that
//! mount through the CSI provider, in their own pod-template annotation.
//!
//! * Baseline: the first sync of a `SecretSync` writes the Secret and restarts nothing —
//!   the workloads started with that data.
//! * Only a change of the rendered data (its hash) counts; a sync that wrote the same data
//!   restarts nothing.
//! * Debounced: a restart waits until the data has been quiet for the debounce window, so
//!   a burst of new versions gives one restart.
//! * Rate-limited: at most one restart per `min_interval`; a change inside it is restarted
//!   when the interval ends, never dropped.

use std::time::Duration;

/// The pod-template annotation `kubectl rollout restart` sets; changing it rolls the pods.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
/// On a workload's pod template: the vault objects its pods mount (`<vault>/<object>`,
/// comma-separated; `<vault>/*` for all of a vault's objects).
pub const RESTART_ON_ANNOTATION: &str = "kvault.dev/restart-on";
/// Next to [`RESTARTED_AT_ANNOTATION`]: who restarted the workload and why.
pub const RESTARTED_BY_ANNOTATION: &str = "kvault.dev/restarted-by";

/// The debounce and rate limit of restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartTiming {
    pub debounce: Duration,
    pub min_interval: Duration,
}

impl Default for RestartTiming {
    fn default() -> Self {
        Self {
            debounce: Duration::from_secs(2),
            min_interval: Duration::from_secs(60),
        }
    }
}

/// What the status says about the data and the restarts (times in seconds since 1970).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartState<'a> {
    /// The hash of the data now in the Secret.
    pub data_hash: &'a str,
    /// The hash the targets were last restarted for (or baselined at); `None`: never synced.
    pub restarted_hash: Option<&'a str>,
    /// When the data last changed.
    pub last_change: Option<i64>,
    /// When the targets were last restarted.
    pub last_restart: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Nothing to restart: the targets run the current data (or there are none).
    Nothing,
    /// First sync: record the current hash as the baseline, restart nothing.
    Baseline,
    /// Restart the targets now.
    Now,
    /// A restart is due; look again after this long.
    Wait(Duration),
}

/// Whether a `SecretSync`'s targets are restarted now, later, or not at all.
pub fn decide(
    state: &RestartState<'_>,
    has_targets: bool,
    now: i64,
    timing: RestartTiming,
) -> RestartDecision {
    let Some(restarted) = state.restarted_hash else {
        return RestartDecision::Baseline;
    };
    if !has_targets || restarted == state.data_hash {
        return RestartDecision::Nothing;
    }
    due(state.last_change, state.last_restart, now, timing)
}

/// A restart is wanted since a change at `last_change`: now, or after how long.
pub fn due(
    last_change: Option<i64>,
    last_restart: Option<i64>,
    now: i64,
    timing: RestartTiming,
) -> RestartDecision {
    let quiet_at = last_change.map_or(now, |c| c.saturating_add(secs(timing.debounce)));
    let allowed_at = last_restart.map_or(now, |r| r.saturating_add(secs(timing.min_interval)));
    let at = quiet_at.max(allowed_at);
    if at <= now {
        RestartDecision::Now
    } else {
        RestartDecision::Wait(Duration::from_secs((at - now) as u64))
    }
}

fn secs(d: Duration) -> i64 {
    // Round up: a 1.5 s debounce must not fire after 1 s.
    i64::try_from(d.as_millis().div_ceil(1000)).unwrap_or(i64::MAX)
}

/// One entry of [`RESTART_ON_ANNOTATION`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedObject {
    pub vault: String,
    /// `None`: every object of the vault.
    pub object: Option<String>,
}

/// Parses [`RESTART_ON_ANNOTATION`]; entries that are not `<vault>/<object>` are errors.
pub fn parse_restart_on(value: &str) -> Result<Vec<WatchedObject>, String> {
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((vault, object)) = entry.split_once('/') else {
            return Err(format!("'{entry}' is not <vault>/<object> (or <vault>/*)"));
        };
        let (vault, object) = (vault.trim(), object.trim());
        if vault.is_empty() || object.is_empty() || object.contains('/') {
            return Err(format!("'{entry}' is not <vault>/<object> (or <vault>/*)"));
        }
        out.push(WatchedObject {
            vault: vault.to_string(),
            object: (object != "*").then(|| object.to_string()),
        });
    }
    Ok(out)
}

/// Whether a workload watching `watched` is affected by a change of `object` in `vault`.
/// Object names compare ignoring case, as the vault does.
pub fn watches(watched: &[WatchedObject], vault: &str, object: &str) -> bool {
    watched.iter().any(|w| {
        w.vault == vault
            && w.object
                .as_deref()
                .is_none_or(|o| o.eq_ignore_ascii_case(object))
    })
}

/// The merge patch `kubectl rollout restart` sends, with who asked for it.
pub fn restart_patch(at_rfc3339: &str, by: &str) -> serde_json::Value {
    serde_json::json!({
        "spec": {"template": {"metadata": {"annotations": {
            RESTARTED_AT_ANNOTATION: at_rfc3339,
            RESTARTED_BY_ANNOTATION: by,
        }}}}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: RestartTiming = RestartTiming {
        debounce: Duration::from_secs(2),
        min_interval: Duration::from_secs(60),
    };

    fn state<'a>(
        hash: &'a str,
        restarted: Option<&'a str>,
        change: Option<i64>,
        restart: Option<i64>,
    ) -> RestartState<'a> {
        RestartState {
            data_hash: hash,
            restarted_hash: restarted,
            last_change: change,
            last_restart: restart,
        }
    }

    #[test]
    fn the_first_sync_is_a_baseline_and_restarts_nothing() {
        let s = state("a", None, Some(1000), None);
        assert_eq!(decide(&s, true, 1000, T), RestartDecision::Baseline);
        assert_eq!(decide(&s, false, 1000, T), RestartDecision::Baseline);
    }

    #[test]
    fn unchanged_data_restarts_nothing() {
        let s = state("a", Some("a"), Some(1000), Some(900));
        assert_eq!(decide(&s, true, 5000, T), RestartDecision::Nothing);
    }

    #[test]
    fn without_targets_nothing_is_restarted() {
        let s = state("b", Some("a"), Some(1000), None);
        assert_eq!(decide(&s, false, 5000, T), RestartDecision::Nothing);
    }

    #[test]
    fn a_change_waits_for_the_debounce_window() {
        let s = state("b", Some("a"), Some(1000), None);
        assert_eq!(
            decide(&s, true, 1000, T),
            RestartDecision::Wait(Duration::from_secs(2))
        );
        assert_eq!(
            decide(&s, true, 1001, T),
            RestartDecision::Wait(Duration::from_secs(1))
        );
        assert_eq!(decide(&s, true, 1002, T), RestartDecision::Now);
    }

    #[test]
    fn a_burst_of_changes_gives_one_restart_after_the_last() {
        // Changes at 1000, 1001, 1002 each move last_change: no restart until 1004.
        for (change, now) in [(1000, 1001), (1001, 1002), (1002, 1003)] {
            let s = state("c", Some("a"), Some(change), None);
            assert!(matches!(decide(&s, true, now, T), RestartDecision::Wait(_)));
        }
        let s = state("c", Some("a"), Some(1002), None);
        assert_eq!(decide(&s, true, 1004, T), RestartDecision::Now);
        // Once restarted for "c", the same data restarts nothing more.
        let s = state("c", Some("c"), Some(1002), Some(1004));
        assert_eq!(decide(&s, true, 1010, T), RestartDecision::Nothing);
    }

    #[test]
    fn restarts_are_rate_limited_but_never_dropped() {
        // Restarted at 1000; a change at 1010 waits until 1060.
        let s = state("d", Some("c"), Some(1010), Some(1000));
        assert_eq!(
            decide(&s, true, 1012, T),
            RestartDecision::Wait(Duration::from_secs(48))
        );
        assert_eq!(decide(&s, true, 1060, T), RestartDecision::Now);
    }

    #[test]
    fn a_sub_second_debounce_rounds_up() {
        let t = RestartTiming {
            debounce: Duration::from_millis(1500),
            min_interval: Duration::ZERO,
        };
        assert_eq!(
            due(Some(100), None, 101, t),
            RestartDecision::Wait(Duration::from_secs(1))
        );
        assert_eq!(due(Some(100), None, 102, t), RestartDecision::Now);
        assert_eq!(due(None, None, 5, t), RestartDecision::Now);
    }

    #[test]
    fn restart_on_annotations_parse_and_match() {
        let w = parse_restart_on(" payments/db-password, payments/API-key ,billing/* ").unwrap();
        assert_eq!(w.len(), 3);
        assert!(watches(&w, "payments", "db-password"));
        assert!(watches(&w, "payments", "api-key"));
        assert!(!watches(&w, "payments", "other"));
        assert!(watches(&w, "billing", "anything"));
        assert!(!watches(&w, "orders", "db-password"));
        assert_eq!(parse_restart_on("").unwrap(), vec![]);
        for bad in ["payments", "/x", "payments/", "a/b/c"] {
            assert!(parse_restart_on(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_patch_is_kubectls() {
        let p = restart_patch("2026-12-04T10:00:00Z", "SecretSync web-env");
        assert_eq!(
            p["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT_ANNOTATION],
            "2026-12-04T10:00:00Z"
        );
        assert_eq!(
            p["spec"]["template"]["metadata"]["annotations"][RESTARTED_BY_ANNOTATION],
            "SecretSync web-env"
        );
    }
}
