//! Wall-clock time behind a trait, so soft-delete retention, the purge sweeper and
//! expiry checks can be tested without waiting days.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Seconds since the Unix epoch, the unit every timestamp of the key-vault API uses.
pub type UnixTime = i64;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixTime;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: UnixTime) -> Self {
        Self(Arc::new(AtomicI64::new(start)))
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    pub fn set(&self, t: UnixTime) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}

pub type SharedClock = Arc<dyn Clock>;

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

impl SystemClock {
    pub fn now_secs(&self) -> UnixTime {
        Clock::now(self)
    }
}

/// RFC 3339 of a Unix time (UTC).
pub fn rfc3339(t: UnixTime) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// The exponential part of every backoff in kvault — event delivery, the PostgreSQL
/// session, the provider's vault calls, the operator's requeues: `initial · 2^(failures-1)`
/// (no failure counts as one), capped at `max`. Each caller adds its own jitter.
// Not backon (used for the client's retries): its backoffs are iterators owned by one retry loop, while delivery and the operator keep only a failure count per subscription or vault.
pub fn exponential_backoff(
    failures: u32,
    initial: std::time::Duration,
    max: std::time::Duration,
) -> std::time::Duration {
    let doublings = failures.saturating_sub(1).min(64);
    let nanos = initial
        .as_nanos()
        .saturating_mul(1u128.checked_shl(doublings).unwrap_or(u128::MAX))
        .min(max.as_nanos());
    std::time::Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// `90s`, `30m`, `1h`, `7d`, or plain seconds.
// Kept over jiff's "friendly" durations: those take no bare seconds (`15`) and a `7d` span needs a reference date to become a Duration.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 90s, 30m, 1h or 7d"))?;
    Ok(std::time::Duration::from_secs(n.saturating_mul(mult)))
}

/// A Go duration as Kubernetes resources write them (`5m`, `1h30m`, `1.5h`, `500ms`): one
/// or more `<number>[.<fraction>]<unit>` with units `ms`, `s`, `m`, `h`. The `SecretSync`
/// schema admits these, and [`parse_duration`] takes neither compounds nor fractions.
pub fn parse_go_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("'{s}' is not a duration like 30s, 5m, 1h30m or 1.5h");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        if whole.is_empty() || (num.contains('.') && frac.is_empty()) {
            return Err(bad());
        }
        let whole: u128 = whole.parse().map_err(|_| bad())?;
        // The fraction to nanosecond precision (digits beyond it are dropped).
        let mut frac_nanos: u128 = 0;
        let mut scale = unit_nanos;
        for d in frac.chars() {
            let d = d.to_digit(10).ok_or_else(bad)?;
            scale /= 10;
            frac_nanos += u128::from(d) * scale;
        }
        nanos = nanos
            .checked_add(whole.checked_mul(unit_nanos).ok_or_else(bad)?)
            .and_then(|n| n.checked_add(frac_nanos))
            .ok_or_else(bad)?;
        rest = tail;
    }
    let nanos = u64::try_from(nanos).map_err(|_| bad())?;
    Ok(std::time::Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = |s: &str| parse_go_duration(s).unwrap();
        assert_eq!(d("5m").as_secs(), 300);
        assert_eq!(d("1h30m").as_secs(), 5400);
        assert_eq!(d("1.5h").as_secs(), 5400);
        assert_eq!(d("500ms").as_millis(), 500);
        assert_eq!(d("1m0.5s").as_millis(), 60_500);
        assert_eq!(d("10s"), std::time::Duration::from_secs(10));
        for bad in [
            "",
            "5",
            "5d",
            "m",
            "1.h",
            ".5h",
            "5 m",
            "1h-2m",
            "99999999999999999999h",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("30m").unwrap().as_secs(), 1800);
        assert_eq!(parse_duration("1h").unwrap().as_secs(), 3600);
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 604_800);
        assert_eq!(parse_duration("15").unwrap().as_secs(), 15);
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn backoff_doubles_from_the_first_failure_and_is_capped() {
        let ms = std::time::Duration::from_millis;
        let b = |n| exponential_backoff(n, ms(100), ms(5000));
        assert_eq!(
            [b(0), b(1), b(2), b(3), b(6), b(7)],
            [ms(100), ms(100), ms(200), ms(400), ms(3200), ms(5000)]
        );
        assert_eq!(b(u32::MAX), ms(5000));
        let huge = std::time::Duration::from_secs(u64::MAX);
        assert_eq!(
            exponential_backoff(200, huge, huge),
            std::time::Duration::from_nanos(u64::MAX)
        );
    }

    #[test]
    fn rfc3339_of_unix_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
    }
}
