//! Offline bookkeeping: when the service or Git became unreachable and for how long, so
//! the hub can show "offline" apart from "failed". Pure: `now` comes in.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use siteboot_wire::api::OfflinePeriod;

/// What can be unreachable.
pub const SERVICE: &str = "service";
/// The Git source.
pub const GIT: &str = "git";

/// Open and closed offline periods (persisted in the status file across restarts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offline {
    /// Since when each target has been unreachable.
    #[serde(default)]
    pub open: BTreeMap<String, DateTime<Utc>>,
    /// Periods that ended and were not reported yet.
    #[serde(default)]
    pub closed: Vec<OfflinePeriod>,
}

/// At most this many unreported periods are kept (oldest dropped).
const MAX_CLOSED: usize = 64;

impl Offline {
    /// A contact with `what` failed at `now`.
    pub fn failed(&mut self, what: &str, now: DateTime<Utc>) {
        self.open.entry(what.to_string()).or_insert(now);
    }

    /// A contact with `what` succeeded at `now`: an open period closes.
    pub fn succeeded(&mut self, what: &str, now: DateTime<Utc>) {
        if let Some(from) = self.open.remove(what) {
            self.closed.push(OfflinePeriod {
                from,
                to: now,
                what: what.to_string(),
            });
            if self.closed.len() > MAX_CLOSED {
                let extra = self.closed.len() - MAX_CLOSED;
                self.closed.drain(..extra);
            }
        }
    }

    /// True while `what` is unreachable.
    pub fn is_offline(&self, what: &str) -> bool {
        self.open.contains_key(what)
    }

    /// Periods to send with a check-in happening at `now`: the closed ones, plus the
    /// service period that this very check-in ends (if it succeeds).
    pub fn report(&self, now: DateTime<Utc>) -> Vec<OfflinePeriod> {
        let mut out = self.closed.clone();
        if let Some(from) = self.open.get(SERVICE) {
            out.push(OfflinePeriod {
                from: *from,
                to: now,
                what: SERVICE.into(),
            });
        }
        out
    }

    /// The check-in carrying `sent` succeeded: those periods are delivered.
    pub fn reported(&mut self, sent: &[OfflinePeriod]) {
        self.open.remove(SERVICE);
        self.closed.retain(|p| !sent.contains(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn offline_periods_table() {
        let t = |s: i64| Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap();
        let mut o = Offline::default();
        o.failed(GIT, t(0));
        o.failed(GIT, t(10)); // still the same period
        o.failed(SERVICE, t(5));
        assert!(o.is_offline(GIT) && o.is_offline(SERVICE));
        o.succeeded(GIT, t(60));
        assert_eq!(
            o.closed,
            vec![OfflinePeriod {
                from: t(0),
                to: t(60),
                what: GIT.into()
            }]
        );
        let report = o.report(t(90));
        assert_eq!(report.len(), 2);
        assert_eq!(
            report[1],
            OfflinePeriod {
                from: t(5),
                to: t(90),
                what: SERVICE.into()
            }
        );
        o.reported(&report);
        assert_eq!(o, Offline::default());
        o.succeeded(SERVICE, t(100)); // no open period: nothing recorded
        assert!(o.closed.is_empty());
    }
}
