//! Pure arithmetic over what the simulated agents saw: latency percentiles, 5xx and 429
//! counts, and the check that every 429 was followed by a wait of at least its
//! `Retry-After` before that agent's next request.

use std::time::{Duration, Instant};

use siteboot_agent::client::CallRecord;

/// Nearest-rank percentile (`q` in `[0, 1]`) of unsorted samples; `None` when empty.
pub fn percentile(samples: &[Duration], q: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_unstable();
    let rank = (q.clamp(0.0, 1.0) * s.len() as f64).ceil() as usize;
    Some(s[rank.saturating_sub(1).min(s.len() - 1)])
}

/// One 429 and what the agent did next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryWait {
    /// Route of the refused call.
    pub route: &'static str,
    /// What the service asked for (`None`: the 429 carried no `Retry-After` at all).
    pub asked: Option<Duration>,
    /// From the 429's arrival to the agent's next request (`None`: it never called again).
    pub waited: Option<Duration>,
}

impl RetryWait {
    /// The 429 carried a `Retry-After` and the agent did not call sooner.
    pub fn honoured(&self) -> bool {
        match (self.asked, self.waited) {
            (None, _) => false,
            (Some(asked), Some(waited)) => waited >= asked,
            // The agent's last call: it gave up or the run ended.
            (Some(_), None) => true,
        }
    }
}

/// Every 429 in one agent's calls (in any order) with the wait that followed it.
pub fn retry_waits(calls: &[CallRecord]) -> Vec<RetryWait> {
    let mut sorted: Vec<&CallRecord> = calls.iter().collect();
    sorted.sort_by_key(|c| c.started);
    sorted
        .iter()
        .enumerate()
        .filter(|(_, c)| c.status == Some(429))
        .map(|(i, c)| RetryWait {
            route: c.route,
            asked: c.retry_after,
            waited: sorted
                .get(i + 1)
                .map(|n| n.started.saturating_duration_since(c.finished)),
        })
        .collect()
}

/// Counts of one phase's calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every request sent.
    pub calls: usize,
    /// 2xx answers.
    pub ok: usize,
    /// 429 answers.
    pub throttled: usize,
    /// 5xx answers.
    pub server_errors: usize,
    /// Other 4xx answers.
    pub client_errors: usize,
    /// No answer (refused, reset, timed out).
    pub unreachable: usize,
}

impl Counts {
    /// Tallies calls that started in `[from, to)`.
    pub fn of<'a>(
        calls: impl IntoIterator<Item = &'a CallRecord>,
        from: Instant,
        to: Instant,
    ) -> Counts {
        let mut c = Counts::default();
        for r in calls
            .into_iter()
            .filter(|r| r.started >= from && r.started < to)
        {
            c.calls += 1;
            match r.status {
                None => c.unreachable += 1,
                Some(s) if (200..300).contains(&s) => c.ok += 1,
                Some(429) => c.throttled += 1,
                Some(s) if s >= 500 => c.server_errors += 1,
                Some(_) => c.client_errors += 1,
            }
        }
        c
    }
}

/// Latencies (request start to status line) of the 2xx answers on `route` in `[from, to)`.
pub fn ok_latencies<'a>(
    calls: impl IntoIterator<Item = &'a CallRecord>,
    route: &str,
    from: Instant,
    to: Instant,
) -> Vec<Duration> {
    calls
        .into_iter()
        .filter(|r| r.route == route && r.started >= from && r.started < to)
        .filter(|r| r.status.is_some_and(|s| (200..300).contains(&s)))
        .map(|r| r.finished.saturating_duration_since(r.started))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn call(t0: Instant, start: u64, end: u64, status: Option<u16>, ra: Option<u64>) -> CallRecord {
        CallRecord {
            route: "/v1/register",
            started: t0 + MS(start),
            finished: t0 + MS(end),
            status,
            retry_after: ra.map(Duration::from_secs),
        }
    }

    #[test]
    fn percentile_table() {
        let s: Vec<Duration> = (1..=100).map(MS).collect();
        let cases = [(0.5, 50), (0.99, 99), (1.0, 100), (0.0, 1), (0.001, 1)];
        for (q, want) in cases {
            assert_eq!(percentile(&s, q), Some(MS(want)), "q {q}");
        }
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[MS(7)], 0.99), Some(MS(7)));
    }

    #[test]
    fn retry_after_table() {
        let t0 = Instant::now();
        // (calls, number of unhonoured 429s)
        let cases: Vec<(Vec<CallRecord>, usize)> = vec![
            // waited 1.5 s after a 1 s Retry-After: fine
            (
                vec![
                    call(t0, 0, 10, Some(429), Some(1)),
                    call(t0, 1510, 1520, Some(201), None),
                ],
                0,
            ),
            // retried after 0.5 s: not honoured
            (
                vec![
                    call(t0, 0, 10, Some(429), Some(1)),
                    call(t0, 510, 520, Some(201), None),
                ],
                1,
            ),
            // order of records does not matter
            (
                vec![
                    call(t0, 510, 520, Some(201), None),
                    call(t0, 0, 10, Some(429), Some(1)),
                ],
                1,
            ),
            // a 429 without Retry-After is a server bug, counted
            (
                vec![
                    call(t0, 0, 10, Some(429), None),
                    call(t0, 5000, 5010, Some(201), None),
                ],
                1,
            ),
            // a final 429 with nothing after it is fine
            (vec![call(t0, 0, 10, Some(429), Some(1))], 0),
            // exact boundary counts as honoured
            (
                vec![
                    call(t0, 0, 10, Some(429), Some(2)),
                    call(t0, 2010, 2020, Some(201), None),
                ],
                0,
            ),
            // two 429s, the second retried too early
            (
                vec![
                    call(t0, 0, 10, Some(429), Some(1)),
                    call(t0, 1100, 1110, Some(429), Some(3)),
                    call(t0, 2000, 2010, Some(201), None),
                ],
                1,
            ),
        ];
        for (i, (calls, want)) in cases.iter().enumerate() {
            let waits = retry_waits(calls);
            let bad = waits.iter().filter(|w| !w.honoured()).count();
            assert_eq!(bad, *want, "case {i}: {waits:?}");
        }
    }

    #[test]
    fn counts_and_latencies_table() {
        let t0 = Instant::now();
        let calls = vec![
            call(t0, 0, 5, Some(201), None),
            call(t0, 10, 30, Some(429), Some(1)),
            call(t0, 40, 41, None, None),
            call(t0, 50, 60, Some(503), None),
            call(t0, 70, 71, Some(401), None),
            call(t0, 2000, 2004, Some(200), None),
        ];
        let c = Counts::of(&calls, t0, t0 + MS(1000));
        assert_eq!(
            c,
            Counts {
                calls: 5,
                ok: 1,
                throttled: 1,
                server_errors: 1,
                client_errors: 1,
                unreachable: 1
            }
        );
        let all = Counts::of(&calls, t0, t0 + MS(5000));
        assert_eq!((all.calls, all.ok), (6, 2));
        let lat = ok_latencies(&calls, "/v1/register", t0, t0 + MS(5000));
        assert_eq!(lat, vec![MS(5), MS(4)]);
        assert!(ok_latencies(&calls, "/v1/checkin", t0, t0 + MS(5000)).is_empty());
    }
}
