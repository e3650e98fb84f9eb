//! Retry and polling delays: exponential backoff with *full* jitter, and jittered
//! intervals, so a region coming back after a power cut does not stampede the service.
//!
//! The maths is pure (`full_jitter_delay`, `with_retry_after`, `jittered`) and takes the
//! random draw as a plain `unit` value in `[0, 1)`. [`FullJitter`] plugs it into `backon`
//! as a `BackoffBuilder`; `backon`'s own jitter only adds up to one base delay, which is
//! not full jitter.

use std::time::Duration;

use rand::Rng;

/// Full jitter: a uniform draw in `[0, min(cap, base * 2^attempt))`.
pub fn full_jitter_delay(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let ceiling = base
        .checked_mul(2u32.saturating_pow(attempt.min(31)))
        .unwrap_or(cap)
        .min(cap);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// A server's `Retry-After` is a floor: never retry sooner than asked, but keep the
/// jittered delay when it is longer. Absurd values are capped at `max`.
pub fn with_retry_after(
    jittered: Duration,
    retry_after: Option<Duration>,
    max: Duration,
) -> Duration {
    match retry_after {
        Some(ra) => jittered.max(ra.min(max)),
        None => jittered,
    }
}

/// Wait before the next check-in after `failures` consecutive offline failures (the
/// service unreachable, or 502/503/504): full jitter from 1 s up to the check-in
/// `interval`, at least 500 ms, and never sooner than the service's `Retry-After`.
pub fn checkin_retry_delay(
    failures: u32,
    interval: Duration,
    retry_after: Option<Duration>,
    unit: f64,
) -> Duration {
    let backoff = full_jitter_delay(failures, Duration::from_secs(1), interval, unit)
        .max(Duration::from_millis(500));
    with_retry_after(backoff, retry_after, Duration::from_secs(3600))
}

/// An interval spread over `[0.8, 1.2) * base` so that sites do not poll in lockstep.
pub fn jittered(base: Duration, unit: f64) -> Duration {
    base.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0))
}

/// A uniform draw in `[0, 1)` from the thread RNG (the only impure part).
pub fn unit() -> f64 {
    rand::rng().random::<f64>()
}

/// `backon` builder for exponential backoff with full jitter.
#[derive(Debug, Clone, Copy)]
pub struct FullJitter {
    /// First ceiling.
    pub base: Duration,
    /// Largest ceiling.
    pub cap: Duration,
    /// Give up after this many retries (`None`: retry forever).
    pub max_retries: Option<usize>,
}

impl Default for FullJitter {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            max_retries: None,
        }
    }
}

/// The iterator `backon` draws delays from.
#[derive(Debug, Clone)]
pub struct FullJitterBackoff {
    cfg: FullJitter,
    attempt: u32,
}

impl backon::BackoffBuilder for FullJitter {
    type Backoff = FullJitterBackoff;
    fn build(self) -> FullJitterBackoff {
        FullJitterBackoff {
            cfg: self,
            attempt: 0,
        }
    }
}

impl Iterator for FullJitterBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        if let Some(max) = self.cfg.max_retries {
            if self.attempt as usize >= max {
                return None;
            }
        }
        let d = full_jitter_delay(self.attempt, self.cfg.base, self.cfg.cap, unit());
        self.attempt = self.attempt.saturating_add(1);
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn full_jitter_table() {
        let cases = [
            // attempt, base, cap, unit, want
            (0, S(1), S(300), 0.0, S(0)),
            (0, S(1), S(300), 0.5, Duration::from_millis(500)),
            (3, S(1), S(300), 0.5, S(4)),
            (3, S(1), S(300), 0.999, Duration::from_secs_f64(7.992)),
            (10, S(1), S(300), 0.5, S(150)), // 1024 s capped at 300
            (60, S(1), S(300), 1.0, S(300)), // no overflow
            (2, S(2), S(5), 1.0, S(5)),
            (1, S(1), S(300), 2.0, S(2)), // unit clamped
        ];
        for (attempt, base, cap, unit, want) in cases {
            let got = full_jitter_delay(attempt, base, cap, unit);
            assert!(
                got.abs_diff(want) < Duration::from_millis(1),
                "attempt {attempt} unit {unit}: {got:?} != {want:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_a_floor_table() {
        let cases = [
            (S(3), None, S(3)),
            (S(3), Some(S(10)), S(10)),
            (S(30), Some(S(10)), S(30)),
            (S(1), Some(S(100_000)), S(3600)),
        ];
        for (jittered, ra, want) in cases {
            assert_eq!(with_retry_after(jittered, ra, S(3600)), want);
        }
    }

    #[test]
    fn checkin_retry_table() {
        let ms = Duration::from_millis;
        let cases = [
            // failures, interval, retry_after, unit, want
            (1, S(60), None, 0.5, S(1)),
            (1, S(60), None, 0.0, ms(500)), // floor
            (3, S(60), None, 0.5, S(4)),
            (10, S(60), None, 0.5, S(30)),     // capped by the interval
            (1, S(60), Some(S(5)), 0.5, S(5)), // Retry-After is a floor
            (10, S(60), Some(S(5)), 0.5, S(30)),
            (1, S(60), Some(S(100_000)), 0.5, S(3600)),
        ];
        for (failures, interval, ra, unit, want) in cases {
            let got = checkin_retry_delay(failures, interval, ra, unit);
            assert!(
                got.abs_diff(want) < ms(1),
                "failures {failures} unit {unit} ra {ra:?}: {got:?} != {want:?}"
            );
        }
    }

    #[test]
    fn jittered_interval_table() {
        for (unit, want) in [(0.0, 48.0), (0.5, 60.0), (0.999, 71.976)] {
            let got = jittered(S(60), unit).as_secs_f64();
            assert!((got - want).abs() < 0.001, "{unit}: {got}");
        }
    }

    #[test]
    fn backoff_iterator_stays_under_the_ceiling_and_stops() {
        use backon::BackoffBuilder;
        let b = FullJitter {
            base: Duration::from_millis(100),
            cap: S(1),
            max_retries: Some(6),
        };
        let delays: Vec<Duration> = b.build().collect();
        assert_eq!(delays.len(), 6);
        for (i, d) in delays.iter().enumerate() {
            let ceiling = Duration::from_millis(100 * (1 << i)).min(S(1));
            assert!(*d <= ceiling, "retry {i}: {d:?} > {ceiling:?}");
        }
    }
}
