//! Throttling: per-vault token buckets in the style of the cloud's service limits
//! (secret creations and all other transactions, per window), and inside them one pair of
//! buckets per principal holding `principalShare` percent of each, so one busy caller cannot
//! spend everyone's budget. Refused requests do not consume budget, as in the cloud.

use crate::policy::ThrottlingSettings;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many principals' buckets are kept; beyond it, idle (full) ones are forgotten first.
const MAX_TRACKED_PRINCIPALS: usize = 10_000;

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

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.last = now;
    }

    /// `Err(wait)` until a token is available (after a refill to `now`).
    fn ready(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }

    /// Takes one token, or says how long until one is available.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.ready(now)?;
        self.tokens -= 1.0;
        Ok(())
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }
}

/// One principal's share of the two budgets.
#[derive(Debug)]
struct Share {
    secret_writes: Bucket,
    other: Bucket,
}

impl Share {
    fn bucket(&mut self, category: Category) -> &mut Bucket {
        match category {
            Category::SecretWrite => &mut self.secret_writes,
            Category::Other => &mut self.other,
        }
    }
}

/// `percent` of `budget`, at least one request per window.
fn share_of(budget: u32, percent: u8) -> u32 {
    ((u64::from(budget) * u64::from(percent)).div_ceil(100)).max(1) as u32
}

// Kept over governor (+8 crates, measured): its GCRA limiters consume on check with no look-ahead or refund, so "a refusal by the vault's budget takes nothing from the caller's share" (tested below) cannot hold; it costs ~0.24 µs a check in a debug build (throttle_micro_benchmark).
#[derive(Debug)]
pub struct Throttle {
    settings: ThrottlingSettings,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    vault: Share,
    principals: HashMap<String, Share>,
}

impl Throttle {
    pub fn new(s: &ThrottlingSettings) -> Self {
        Self {
            settings: *s,
            buckets: Mutex::new(Buckets {
                vault: Share {
                    secret_writes: Bucket::new(s.secret_writes, s.window_seconds),
                    other: Bucket::new(s.requests, s.window_seconds),
                },
                principals: HashMap::new(),
            }),
        }
    }

    fn new_share(&self) -> Share {
        let s = &self.settings;
        Share {
            secret_writes: Bucket::new(
                share_of(s.secret_writes, s.principal_share),
                s.window_seconds,
            ),
            other: Bucket::new(share_of(s.requests, s.principal_share), s.window_seconds),
        }
    }

    /// `Err(retry_after)` when the category's budget is spent, the vault's or `principal`'s
    /// share of it (a stable key naming the caller and its issuer). A refusal takes no token
    /// from either.
    pub fn check(&self, category: Category, principal: &str) -> Result<(), Duration> {
        self.check_at(category, principal, Instant::now())
    }

    fn check_at(&self, category: Category, principal: &str, now: Instant) -> Result<(), Duration> {
        if !self.settings.enabled {
            return Ok(());
        }
        // A poisoned lock means a panic elsewhere; do not turn it into an outage.
        let Ok(mut guard) = self.buckets.lock() else {
            return Ok(());
        };
        let buckets = &mut *guard;
        if !buckets.principals.contains_key(principal) {
            if buckets.principals.len() >= MAX_TRACKED_PRINCIPALS {
                buckets.principals.retain(|_, share| {
                    !(share.secret_writes.is_full(now) && share.other.is_full(now))
                });
            }
            if buckets.principals.len() >= MAX_TRACKED_PRINCIPALS {
                // Every tracked caller is busy: start their shares afresh rather than grow
                // without bound (the vault's budget still holds).
                buckets.principals.clear();
            }
            buckets
                .principals
                .insert(principal.to_string(), self.new_share());
        }
        let vault = buckets.vault.bucket(category);
        let mine = match buckets.principals.get_mut(principal) {
            Some(share) => share.bucket(category),
            None => return vault.take(now),
        };
        match (vault.ready(now), mine.ready(now)) {
            (Ok(()), Ok(())) => {
                vault.take(now)?;
                mine.take(now)
            }
            (Err(a), Err(b)) => Err(a.max(b)),
            (Err(wait), Ok(())) | (Ok(()), Err(wait)) => Err(wait),
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
            principal_share: 50,
        });
        for _ in 0..100 {
            assert!(t.check(Category::Other, "alice").is_ok());
        }
    }

    #[test]
    fn one_principal_spends_only_its_share_and_others_keep_theirs() {
        let t = Throttle::new(&ThrottlingSettings {
            enabled: true,
            window_seconds: 10,
            secret_writes: 10,
            requests: 100,
            principal_share: 30,
        });
        let now = Instant::now();
        // Alice's share is 30 % of 10 secret writes: 3, then she waits.
        for _ in 0..3 {
            assert!(t.check_at(Category::SecretWrite, "i|alice", now).is_ok());
        }
        assert!(t.check_at(Category::SecretWrite, "i|alice", now).is_err());
        // Bob still has his; the same name from another issuer is another caller.
        for _ in 0..3 {
            assert!(t.check_at(Category::SecretWrite, "i|bob", now).is_ok());
            assert!(t.check_at(Category::SecretWrite, "j|alice", now).is_ok());
        }
        // The other category is a separate budget.
        assert!(t.check_at(Category::Other, "i|alice", now).is_ok());
        // The vault's budget still caps the sum: 9 of 10 are spent, one caller more gets the
        // last one, and then nobody does, although carol has her share left.
        assert!(t.check_at(Category::SecretWrite, "i|carol", now).is_ok());
        assert!(t.check_at(Category::SecretWrite, "i|carol", now).is_err());
        assert!(t.check_at(Category::SecretWrite, "i|dave", now).is_err());
        // A refusal by the vault's budget took nothing from dave's share: once the vault
        // refills, dave gets his three.
        let later = now + Duration::from_secs(10);
        for _ in 0..3 {
            assert!(t.check_at(Category::SecretWrite, "i|dave", later).is_ok());
        }
    }

    /// `cargo test --lib throttle_micro_benchmark -- --ignored --nocapture`: the cost of one
    /// check, 1000 principals taking turns.
    #[test]
    #[ignore]
    fn throttle_micro_benchmark() {
        let t = Throttle::new(&ThrottlingSettings {
            requests: 1_000_000,
            ..ThrottlingSettings::default()
        });
        let names: Vec<String> = (0..1000).map(|i| format!("i|p{i}")).collect();
        let n = 1_000_000;
        let started = Instant::now();
        for i in 0..n {
            let _ = t.check(Category::Other, &names[i % names.len()]);
        }
        let per = started.elapsed() / n as u32;
        println!("throttle check: {per:?} each");
    }

    #[test]
    fn shares_round_up_and_never_reach_zero() {
        assert_eq!(share_of(300, 50), 150);
        assert_eq!(share_of(1, 1), 1);
        assert_eq!(share_of(10, 33), 4);
        assert_eq!(share_of(4000, 100), 4000);
    }

    #[test]
    fn tracked_principals_are_bounded() {
        let t = Throttle::new(&ThrottlingSettings {
            requests: 1_000_000,
            ..ThrottlingSettings::default()
        });
        let now = Instant::now();
        for i in 0..(MAX_TRACKED_PRINCIPALS + 50) {
            assert!(t.check_at(Category::Other, &format!("i|p{i}"), now).is_ok());
        }
        let tracked = t.buckets.lock().unwrap().principals.len();
        assert!(tracked <= MAX_TRACKED_PRINCIPALS, "{tracked}");
    }
}
