//! Timings of apply attempts waiting to be reported: a bounded queue persisted in the
//! status file, with the same delivery contract as offline periods ([`crate::offline`]):
//! every check-in carries [`Attempts::report`], and only a successful check-in removes
//! what it carried ([`Attempts::reported`]). A failed or offline check-in loses nothing;
//! a retried one carries the same entries again, and since they were never removed they
//! are counted once by the hub. Pure: no clock, no I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use siteboot_wire::api::{
    AttemptOutcome, AttemptTiming, MAX_ATTEMPTS, MAX_ATTEMPT_REVISION, MAX_ATTEMPT_SECONDS,
};

/// One attempt's timing, always within what the hub accepts
/// ([`siteboot_wire::api::validate_attempts`]): the revision is cut to
/// [`MAX_ATTEMPT_REVISION`] bytes and durations are capped just below a day, so one odd
/// attempt can never make every later check-in fail.
pub fn timing(
    revision: &str,
    outcome: AttemptOutcome,
    render: Duration,
    apply: Duration,
    finished_at: DateTime<Utc>,
) -> AttemptTiming {
    let mut end = revision.len().min(MAX_ATTEMPT_REVISION);
    while !revision.is_char_boundary(end) {
        end -= 1;
    }
    let cap = |d: Duration| d.as_secs_f64().min(MAX_ATTEMPT_SECONDS - 0.001);
    AttemptTiming {
        revision: revision[..end].to_string(),
        outcome,
        render_seconds: cap(render),
        apply_seconds: cap(apply),
        finished_at,
    }
}

/// Unreported attempt timings, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempts {
    /// Attempts not yet delivered (at most [`MAX_ATTEMPTS`]).
    #[serde(default)]
    pub pending: Vec<AttemptTiming>,
    /// Attempts dropped unreported because the queue was full (a long offline spell
    /// with many retries); kept for `siteboot-agent status`.
    #[serde(default)]
    pub dropped: u64,
}

impl Attempts {
    /// Queues one attempt; when full the oldest is dropped and counted. Returns true when
    /// an entry was dropped.
    pub fn push(&mut self, timing: AttemptTiming) -> bool {
        self.pending.push(timing);
        let over = self.pending.len().saturating_sub(MAX_ATTEMPTS);
        if over > 0 {
            self.pending.drain(..over);
            self.dropped = self.dropped.saturating_add(over as u64);
        }
        over > 0
    }

    /// What the next check-in carries: every pending attempt, oldest first.
    pub fn report(&self) -> Vec<AttemptTiming> {
        self.pending.clone()
    }

    /// The check-in carrying `sent` succeeded: each sent entry is removed once (entries
    /// queued after the report stay for the next check-in).
    pub fn reported(&mut self, sent: &[AttemptTiming]) {
        for s in sent {
            if let Some(i) = self.pending.iter().position(|p| p == s) {
                self.pending.remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use siteboot_wire::api::AttemptOutcome;

    fn t(n: i64) -> AttemptTiming {
        AttemptTiming {
            revision: format!("rev-{n}"),
            outcome: AttemptOutcome::Applied,
            render_seconds: 0.5,
            apply_seconds: 1.5,
            finished_at: Utc.timestamp_opt(1_800_000_000 + n, 0).unwrap(),
        }
    }

    fn revs(a: &Attempts) -> Vec<String> {
        a.pending.iter().map(|p| p.revision.clone()).collect()
    }

    #[test]
    fn bounded_queue_table() {
        let max = MAX_ATTEMPTS as i64;
        // (name, pushed, expected first revision, expected length, expected dropped)
        let rows = [
            ("empty", 0, None, 0, 0),
            ("one", 1, Some(0), 1, 0),
            ("full", max, Some(0), MAX_ATTEMPTS, 0),
            (
                "one over drops the oldest",
                max + 1,
                Some(1),
                MAX_ATTEMPTS,
                1,
            ),
            ("many over", max + 10, Some(10), MAX_ATTEMPTS, 10),
        ];
        for (name, pushed, first, len, dropped) in rows {
            let mut a = Attempts::default();
            let mut drops = 0;
            for n in 0..pushed {
                drops += u64::from(a.push(t(n)));
            }
            assert_eq!(a.pending.len(), len, "{name}");
            assert_eq!(a.dropped, dropped, "{name}");
            assert_eq!(drops, dropped, "{name}: push reports each drop");
            assert_eq!(
                a.pending.first().map(|p| p.revision.clone()),
                first.map(|n| format!("rev-{n}")),
                "{name}"
            );
        }
    }

    #[test]
    fn report_and_reported_contract() {
        /// (name, queued before report, queued after report, delivered, left)
        type Row<'a> = (&'a str, &'a [i64], &'a [i64], bool, &'a [i64]);
        let rows: [Row; 4] = [
            ("delivered: cleared", &[1, 2], &[], true, &[]),
            (
                "failed check-in: nothing lost",
                &[1, 2],
                &[],
                false,
                &[1, 2],
            ),
            ("new attempt during the call stays", &[1], &[2], true, &[2]),
            ("nothing to report", &[], &[], true, &[]),
        ];
        for (name, before, after, delivered, left) in rows {
            let mut a = Attempts::default();
            before.iter().for_each(|n| {
                a.push(t(*n));
            });
            let sent = a.report();
            assert_eq!(sent.len(), before.len(), "{name}");
            after.iter().for_each(|n| {
                a.push(t(*n));
            });
            if delivered {
                a.reported(&sent);
            }
            let want: Vec<String> = left.iter().map(|n| format!("rev-{n}")).collect();
            assert_eq!(revs(&a), want, "{name}");
        }
        // A retried check-in resends the same entries: still one removal each.
        let mut a = Attempts::default();
        a.push(t(1));
        let first = a.report();
        let second = a.report();
        assert_eq!(first, second);
        a.reported(&second);
        a.reported(&first);
        assert!(a.pending.is_empty());
    }

    #[test]
    fn timings_always_validate() {
        let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let ms = Duration::from_millis;
        // (name, revision, render, apply, expected revision length, render s, apply s)
        let long = "é".repeat(200); // 400 bytes, two bytes per char
        let rows = [
            ("plain", "abc", ms(1500), ms(250), 3, 1.5, 0.25),
            ("render failed", "abc", ms(20), Duration::ZERO, 3, 0.02, 0.0),
            (
                "long revision cut on a char boundary",
                long.as_str(),
                ms(1),
                ms(1),
                256,
                0.001,
                0.001,
            ),
            (
                "two days capped below one",
                "abc",
                Duration::from_secs(172_800),
                ms(1),
                3,
                86_399.999,
                0.001,
            ),
        ];
        for (name, rev, render, apply, len, rs, aps) in rows {
            let t = timing(rev, AttemptOutcome::Failed, render, apply, at);
            assert_eq!(t.revision.len(), len, "{name}");
            assert!(
                (t.render_seconds - rs).abs() < 1e-9,
                "{name}: {}",
                t.render_seconds
            );
            assert!(
                (t.apply_seconds - aps).abs() < 1e-9,
                "{name}: {}",
                t.apply_seconds
            );
            assert_eq!(
                siteboot_wire::api::validate_attempts(&[t]),
                Ok(()),
                "{name}"
            );
        }
    }

    #[test]
    fn old_status_files_without_attempts_parse() {
        let a: Attempts = serde_json::from_str("{}").unwrap();
        assert_eq!(a, Attempts::default());
    }
}
