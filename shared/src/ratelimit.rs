//! Token buckets per key, sans-io: the caller passes the time and does the waiting.
//!
//! Both sides use them for AWS's per-account request-rate quotas (DESIGN §8): the parent paces
//! syncs per (account, region), and the enclave paces the write calls themselves per (account,
//! region, quota group), because network and STS delays between the two can bunch paced syncs
//! into bursts of writes.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A bucket per key holding at most `burst` tokens, refilled at `rate` a second. A new key starts
/// full.
#[derive(Debug)]
pub struct TokenBuckets<K> {
    rate: f64,
    burst: f64,
    buckets: HashMap<K, (f64, Instant)>,
}

impl<K: Eq + Hash + Clone> TokenBuckets<K> {
    /// `rate` tokens a second (at least one), bursts of `burst` (at least one).
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for `key` at `now`, or says how long until one is there.
    pub fn try_take(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.buckets.len() >= 4096 && !self.buckets.contains_key(key) {
            self.forget_full(now);
        }
        let (rate, burst) = (self.rate, self.burst);
        let (tokens, last) = self.buckets.entry(key.clone()).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }

    /// The keys that have no whole token at `now`, each with the time until it has one.
    pub fn empty(&self, now: Instant) -> Vec<(K, Duration)> {
        self.buckets
            .iter()
            .filter_map(|(k, (tokens, last))| {
                let t = tokens + now.saturating_duration_since(*last).as_secs_f64() * self.rate;
                (t < 1.0).then(|| (k.clone(), Duration::from_secs_f64((1.0 - t) / self.rate)))
            })
            .collect()
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Drops buckets that have refilled: they are the same as a new one.
    fn forget_full(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, (tokens, last)| {
            *tokens + now.saturating_duration_since(*last).as_secs_f64() * rate < burst
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_key() {
        let mut b = TokenBuckets::new(40, 40);
        let t = Instant::now();
        for _ in 0..40 {
            assert!(b.try_take(&"a", t).is_ok());
        }
        let wait = b.try_take(&"a", t).expect_err("the 41st waits");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(25),
            "{wait:?}"
        );
        assert!(b.try_take(&"a", t + wait).is_ok());
        assert!(b.try_take(&"b", t).is_ok(), "another key is not affected");
    }

    #[test]
    fn empty_lists_the_keys_without_a_token() {
        let mut b = TokenBuckets::new(10, 2);
        let t = Instant::now();
        b.try_take(&"a", t).unwrap();
        b.try_take(&"a", t).unwrap();
        b.try_take(&"b", t).unwrap();
        let empty = b.empty(t);
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].0, "a");
        assert!(empty[0].1 > Duration::from_millis(90) && empty[0].1 <= Duration::from_millis(100));
        assert!(b.empty(t + Duration::from_millis(100)).is_empty());
    }

    #[test]
    fn a_small_burst_spaces_calls_evenly() {
        let mut b = TokenBuckets::new(10, 1);
        let t = Instant::now();
        assert!(b.try_take(&(), t).is_ok());
        assert!(b.try_take(&(), t + Duration::from_millis(50)).is_err());
        assert!(b.try_take(&(), t + Duration::from_millis(100)).is_ok());
        // An idle second refills to the burst only.
        let later = t + Duration::from_secs(5);
        assert!(b.try_take(&(), later).is_ok());
        assert!(b.try_take(&(), later).is_err());
    }

    #[test]
    fn many_keys_are_pruned_once_full_again() {
        let mut b = TokenBuckets::new(10, 10);
        let t = Instant::now();
        for i in 0..4096u32 {
            b.try_take(&i, t).unwrap();
        }
        assert_eq!(b.len(), 4096);
        b.try_take(&5000, t + Duration::from_secs(1)).unwrap();
        assert_eq!(b.len(), 1);
    }
}
