//! Throttling: per-vault token buckets in the style of the cloud's service limits
//! (secret creations and all other transactions, per window). Refused requests do not
//! consume budget, as in the cloud.

use crate::policy::ThrottlingSettings;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    SecretWrite,
    Other,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::SecretWrite => "secret_write",
            Category::Other => "other",
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    capacity: f64,
    per_sec: f64,
    last: Instant,
}

impl Bucket {
    fn new(budget: u32, window: u32) -> Self {
        let capacity = f64::from(budget);
        Self {
            tokens: capacity,
            capacity,
            per_sec: capacity / f64::from(window.max(1)),
            last: Instant::now(),
        }
    }

    /// Takes one token, or says how long until one is available.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }
}

#[derive(Debug)]
pub struct Throttle {
    enabled: bool,
    secret_writes: Mutex<Bucket>,
    other: Mutex<Bucket>,
}

impl Throttle {
    pub fn new(s: &ThrottlingSettings) -> Self {
        Self {
            enabled: s.enabled,
            secret_writes: Mutex::new(Bucket::new(s.secret_writes, s.window_seconds)),
            other: Mutex::new(Bucket::new(s.requests, s.window_seconds)),
        }
    }

    /// `Err(retry_after)` when the category's budget is spent.
    pub fn check(&self, category: Category) -> Result<(), Duration> {
        if !self.enabled {
            return Ok(());
        }
        let bucket = match category {
            Category::SecretWrite => &self.secret_writes,
            Category::Other => &self.other,
        };
        match bucket.lock() {
            Ok(mut b) => b.take(Instant::now()),
            // A poisoned lock means a panic elsewhere; do not turn it into an outage.
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_beyond_its_budget_and_refills() {
        let mut b = Bucket::new(3, 1);
        let t0 = Instant::now();
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0).is_ok());
        let wait = b.take(t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(334),
            "{wait:?}"
        );
        // Refused requests do not consume budget: one refill later, one more passes.
        assert!(b.take(t0 + Duration::from_millis(340)).is_ok());
        assert!(b.take(t0 + Duration::from_millis(340)).is_err());
        // Never more than the capacity, however long the pause.
        let later = t0 + Duration::from_secs(100);
        for _ in 0..3 {
            assert!(b.take(later).is_ok());
        }
        assert!(b.take(later).is_err());
    }

    #[test]
    fn disabled_throttling_allows_everything() {
        let t = Throttle::new(&ThrottlingSettings {
            enabled: false,
            window_seconds: 10,
            secret_writes: 1,
            requests: 1,
        });
        for _ in 0..100 {
            assert!(t.check(Category::Other).is_ok());
        }
    }
}
