//! The `api-version` query parameter: which values the vault answers, and how.
//!
//! An allow-list breaks every client the day its SDK ships a new version, so the rule is:
//! every version an official SDK sends (or lets its caller choose) is known; a well-formed
//! version dated after the newest known one gets the newest behaviour; anything else — a
//! malformed value, or a well-formed one the service never had — is refused with the cloud's
//! 400 `BadParameter`.

use std::fmt;

/// Every api-version the service has had (the REST specification's versions, previews
/// included), which covers what the official SDKs send by default or let their callers choose
/// (docs/compatibility.md lists which sends which). Oldest first.
pub const KNOWN_API_VERSIONS: &[&str] = &[
    "2015-06-01",
    "2016-10-01",
    "7.0",
    "7.1",
    "7.2",
    "7.3-preview",
    "7.3",
    "7.4-preview.1",
    "7.4",
    "7.5-preview.1",
    "7.5",
    "7.6-preview.1",
    "7.6-preview.2",
    "7.6",
    "2025-06-01-preview",
    "2025-07-01",
    "2026-01-01-preview",
    "2026-03-01-preview",
    "2026-04-01",
    "2026-05-01-preview",
    "2026-07-01-preview",
];

/// The newest generally available api-version: what kvault's own client sends, and what the
/// refusal of an unknown version recommends.
pub const LATEST_API_VERSION: &str = "2026-04-01";

/// The newest date among the known versions (previews included): a well-formed version dated
/// after it is a version the service has since gained.
const NEWEST_KNOWN_DATE: Date = Date {
    year: 2026,
    month: 7,
    day: 1,
};

/// How the vault answers a request of a given api-version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// One of [`KNOWN_API_VERSIONS`].
    Known,
    /// Well-formed and dated after every known version: answered as the newest one.
    Newer,
}

/// An api-version the vault answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersion {
    text: String,
    support: Support,
}

impl ApiVersion {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn support(&self) -> Support {
        self.support
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why an api-version is refused; the message is the cloud's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiVersionError {
    #[error("The request is missing the api-version query parameter.")]
    Missing,
    #[error(
        "The specified version ({0}) is not recognized. Consider using the latest supported version ({LATEST_API_VERSION})."
    )]
    NotRecognized(String),
}

/// The longest value echoed back in a refusal: the message must not carry a caller's blob.
const MAX_ECHOED: usize = 64;

/// Decides how the vault answers `value` (the raw `api-version` parameter).
pub fn parse_api_version(value: Option<&str>) -> Result<ApiVersion, ApiVersionError> {
    let text = match value {
        None | Some("") => return Err(ApiVersionError::Missing),
        Some(v) => v,
    };
    let support = if KNOWN_API_VERSIONS.contains(&text) {
        Support::Known
    } else if parse_dated(text).is_some_and(|date| date > NEWEST_KNOWN_DATE) {
        Support::Newer
    } else {
        return Err(ApiVersionError::NotRecognized(echo(text)));
    };
    Ok(ApiVersion {
        text: text.to_string(),
        support,
    })
}

fn echo(text: &str) -> String {
    text.chars().take(MAX_ECHOED).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Date {
    year: u16,
    month: u8,
    day: u8,
}

/// `YYYY-MM-DD` or `YYYY-MM-DD-preview`, with a real calendar date: the form every
/// date-named version of the service has had.
fn parse_dated(text: &str) -> Option<Date> {
    let date = text.strip_suffix("-preview").unwrap_or(text);
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(y) && all_digits(m) && all_digits(d)) {
        return None;
    }
    let date = Date {
        year: y.parse().ok()?,
        month: m.parse().ok()?,
        day: d.parse().ok()?,
    };
    let valid = (1..=12).contains(&date.month)
        && (1..=days_in_month(date.year, date.month)).contains(&date.day);
    valid.then_some(date)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_version_is_answered_as_known() {
        for v in KNOWN_API_VERSIONS {
            assert_eq!(
                parse_api_version(Some(v)).unwrap().support(),
                Support::Known
            );
        }
        assert!(KNOWN_API_VERSIONS.contains(&LATEST_API_VERSION));
    }

    #[test]
    fn the_newest_known_date_is_the_newest_dated_version() {
        let newest = KNOWN_API_VERSIONS
            .iter()
            .filter_map(|v| parse_dated(v))
            .max()
            .unwrap();
        assert_eq!(newest, NEWEST_KNOWN_DATE);
    }

    #[test]
    fn later_well_formed_versions_get_the_newest_behaviour() {
        for v in [
            "2026-07-02",
            "2026-10-01-preview",
            "2027-01-01",
            "2030-02-28",
        ] {
            assert_eq!(
                parse_api_version(Some(v)).unwrap().support(),
                Support::Newer,
                "{v}"
            );
        }
    }

    #[test]
    fn malformed_or_never_existing_versions_are_refused() {
        assert_eq!(parse_api_version(None), Err(ApiVersionError::Missing));
        assert_eq!(parse_api_version(Some("")), Err(ApiVersionError::Missing));
        for v in [
            "1.0",
            "7.7",
            "8.0",
            "2025-01-01",
            "2026-06-30-preview",
            "2027-13-01",
            "2027-02-30",
            "2027-1-01",
            "2027-01-01-beta",
            "2027-01-01-preview-preview",
            "latest",
            "２０２７-01-01",
            " 2027-01-01",
        ] {
            assert!(
                matches!(
                    parse_api_version(Some(v)),
                    Err(ApiVersionError::NotRecognized(_))
                ),
                "{v}"
            );
        }
        assert!(parse_api_version(Some("2028-02-29")).is_ok());
        assert!(parse_api_version(Some("2027-02-29")).is_err());
    }

    #[test]
    fn a_refusal_names_the_version_bounded_and_recommends_the_latest() {
        let long = "x".repeat(10_000);
        let msg = parse_api_version(Some(&long)).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
        assert!(msg.contains(LATEST_API_VERSION));
        let msg = parse_api_version(Some("9.9")).unwrap_err().to_string();
        assert!(msg.contains("(9.9)"), "{msg}");
    }
}
