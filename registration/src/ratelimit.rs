//! Token-bucket rate limits keyed by source address or credential id.
//!
//! The bucket arithmetic is pure (`Bucket::take` takes `now`); `Limiter` is a thin
//! mutex-guarded map around it. Keys are public values only (an IP address, a token id, a
//! claim id): a secret never becomes a key, so it can never reach a log or a metric.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A sustained rate and a burst size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket capacity.
    pub burst: f64,
}

impl Rate {
    /// `n` requests per second with a burst of `burst`.
    pub fn per_second(n: f64, burst: u32) -> Self {
        Self {
            per_second: n,
            burst: f64::from(burst.max(1)),
        }
    }

    /// `n` requests per minute with a burst of `n`.
    pub fn per_minute(n: u32) -> Self {
        Self {
            per_second: f64::from(n.max(1)) / 60.0,
            burst: f64::from(n.max(1)),
        }
    }
}

/// One bucket's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            updated: now,
        }
    }

    /// Takes one token, or says how long until one is available.
    pub fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            let wait = if rate.per_second > 0.0 {
                missing / rate.per_second
            } else {
                3600.0
            };
            Err(Duration::from_secs_f64(wait))
        }
    }

    /// True when the bucket would be full at `now` (safe to forget).
    fn is_full_at(&self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens + elapsed * rate.per_second >= rate.burst
    }
}

/// Whole seconds a client should wait, at least 1 (for `Retry-After`).
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// Buckets per key at one rate.
#[derive(Debug)]
pub struct Limiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Above this many keys, full buckets are forgotten on the next insert.
const SWEEP_ABOVE: usize = 50_000;

impl Limiter {
    /// A limiter with one rate for every key.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key` or says how long to wait.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = buckets.get_mut(key) {
            return b.take(self.rate, now);
        }
        if buckets.len() >= SWEEP_ABOVE {
            let rate = self.rate;
            buckets.retain(|_, b| !b.is_full_at(rate, now));
        }
        let mut b = Bucket::full(self.rate, now);
        let res = b.take(self.rate, now);
        buckets.insert(key.to_string(), b);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_table() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let rate = Rate::per_second(10.0, 2);
        let mut b = Bucket::full(rate, t0);
        // (time ms, expected outcome) in sequence.
        let steps: [(u64, Result<(), u64>); 6] = [
            (0, Ok(())),
            (0, Ok(())),
            (0, Err(100)),
            (50, Err(50)),
            (100, Ok(())),
            (400, Ok(())),
        ];
        for (i, (at, want)) in steps.into_iter().enumerate() {
            let got = b.take(rate, ms(at)).map_err(|d| d.as_millis() as u64);
            assert_eq!(got, want, "step {i}");
        }
    }

    #[test]
    fn per_minute_and_retry_after() {
        let t0 = Instant::now();
        let rate = Rate::per_minute(5);
        let l = Limiter::new(rate);
        for _ in 0..5 {
            assert!(l.check("token:ABC", t0).is_ok());
        }
        let wait = l.check("token:ABC", t0).unwrap_err();
        assert_eq!(retry_after_seconds(wait), 12);
        assert!(l.check("token:OTHER", t0).is_ok(), "keys are independent");
        assert_eq!(retry_after_seconds(Duration::from_millis(10)), 1);
    }
}
