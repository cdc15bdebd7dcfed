//! Kubernetes Events for a vault's expired and near-expiry objects, so that
//! `kubectl describe vault` shows them. Pure: the controller reads the vault's expiry report
//! (`GET /_kvault/events/expiry`) on each pass and publishes what this returns.
//!
//! Each object version is one Event: its `action` names the version (the event recorder
//! keys its series on type, reason and action, not on the note), so a pass every few
//! minutes adds to that Event's series instead of piling up new ones, and another object
//! never merges into it. A long report is cut to the soonest [`MAX_EVENTS`] plus a summary.

use crate::clock::rfc3339;
use crate::wire::ExpiryReport;

/// Events per pass at most (the soonest expiries), besides the summary.
pub const MAX_EVENTS: usize = 10;

/// One Event to publish (type Warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryNotice {
    /// `SecretNearExpiry`, `KeyExpired`, … (`ObjectsExpiring` for the summary).
    pub reason: String,
    /// Stable per object version (at most 128 characters).
    pub action: String,
    pub note: String,
}

fn short_hash(text: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    d.as_ref()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Events for `report`.
pub fn notices(report: &ExpiryReport) -> Vec<ExpiryNotice> {
    let mut out: Vec<ExpiryNotice> = report
        .value
        .iter()
        .take(MAX_EVENTS)
        .map(|o| {
            let reason = o
                .event_type
                .trim_start_matches("Microsoft.KeyVault.")
                .to_string();
            let kind = o.object_type.to_ascii_lowercase();
            let version: String = o.version.chars().take(32).collect();
            let when = rfc3339(o.exp);
            let note = if reason.ends_with("Expired") {
                format!("{kind} {} (version {version}) expired at {when}", o.object_name)
            } else {
                format!(
                    "{kind} {} (version {version}) expires at {when} (near-expiry threshold {} days)",
                    o.object_name, report.near_expiry_days
                )
            };
            ExpiryNotice {
                action: format!(
                    "ExpiryCheck-{}",
                    short_hash(&format!("{}/{}/{}/{}", reason, kind, o.object_name, o.version))
                ),
                reason,
                note,
            }
        })
        .collect();
    if report.count > out.len() {
        out.push(ExpiryNotice {
            reason: "ObjectsExpiring".into(),
            action: "ExpiryCheck-summary".into(),
            note: format!(
                "{} objects are expired or near expiry; the {} soonest have their own events",
                report.count,
                out.len()
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ExpiringObject;

    fn item(t: &str, kind: &str, name: &str, exp: i64) -> ExpiringObject {
        ExpiringObject {
            event_type: format!("Microsoft.KeyVault.{t}"),
            object_type: kind.into(),
            object_name: name.into(),
            version: "0123456789abcdef0123456789abcdef".into(),
            exp,
        }
    }

    #[test]
    fn one_event_per_object_version_with_a_readable_note() {
        let report = ExpiryReport {
            near_expiry_days: 30,
            count: 2,
            value: vec![
                item("SecretExpired", "Secret", "db-password", 1_700_000_000),
                item("CertificateNearExpiry", "Certificate", "web", 1_800_000_000),
            ],
        };
        let n = notices(&report);
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].reason, "SecretExpired");
        assert_eq!(
            n[0].note,
            "secret db-password (version 0123456789abcdef0123456789abcdef) expired at 2023-11-14T22:13:20Z"
        );
        assert_eq!(n[1].reason, "CertificateNearExpiry");
        assert!(
            n[1].note.contains("expires at 2027-01-15T08:00:00Z"),
            "{}",
            n[1].note
        );
        assert!(n[1].note.contains("threshold 30 days"));
        // Stable and distinct actions, short enough for the Events API.
        assert_eq!(n, notices(&report));
        assert_ne!(n[0].action, n[1].action);
        assert!(n.iter().all(|e| e.action.len() <= 128));
    }

    #[test]
    fn a_long_report_is_cut_with_a_summary() {
        let value: Vec<_> = (0..MAX_EVENTS + 5)
            .map(|i| item("KeyExpired", "Key", &format!("k{i}"), i as i64))
            .collect();
        let report = ExpiryReport {
            near_expiry_days: 30,
            count: 120,
            value,
        };
        let n = notices(&report);
        assert_eq!(n.len(), MAX_EVENTS + 1);
        assert_eq!(n[MAX_EVENTS].reason, "ObjectsExpiring");
        assert!(n[MAX_EVENTS].note.starts_with("120 objects"));
        assert!(notices(&ExpiryReport::default()).is_empty());
    }
}
