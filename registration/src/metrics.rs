//! Prometheus metrics (`/metrics`, text format via prometheus-client).
//!
//! Label values are drawn from small fixed sets (outcome codes, credential kinds, route
//! templates, limiter names), never from request data, so no secret and no unbounded
//! cardinality can reach a label.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of `siteboot_registrations_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistrationLabels {
    /// `registered`, `pending`, or the error code (`invalid_credential`, ...).
    pub outcome: String,
    /// `token`, `enrollment`, `claim`, `approval`, or `unknown` before parsing.
    pub credential: String,
}

/// Labels of `siteboot_checkins_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckinLabels {
    /// `ok` or the error code.
    pub outcome: String,
}

/// Labels of `siteboot_rate_limited_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// Which limiter refused (`register_ip`, `credential`, `poll`).
    pub limiter: String,
}

/// Labels of `siteboot_sites`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteStateLabels {
    /// Site state (`never-seen`, `pending`, `offline`, `applying`, `ready`, `failed`).
    pub state: String,
}

/// Labels of `siteboot_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Method.
    pub method: String,
    /// Route template (`/v1/register/{pending_id}`), `unmatched` otherwise.
    pub route: String,
    /// Status class (`2xx`, `4xx`, `5xx`).
    pub status: String,
}

/// Labels of `siteboot_site_render_duration_seconds` and
/// `siteboot_site_apply_duration_seconds`: the outcome only (no site, no revision), so the
/// series count stays fixed however large the fleet.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// `applied` or `failed`.
    pub outcome: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Site-side stage durations: 1 ms doubling to about 17 min (21 buckets), so both a
/// one-object render and a slow multi-minute apply land in a finite bucket.
fn site_stage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 21))
}

type StageFamily = Family<AttemptLabels, Histogram, fn() -> Histogram>;

/// All service metrics.
pub struct Metrics {
    registry: Registry,
    /// Registrations by outcome and credential kind.
    pub registrations: Family<RegistrationLabels, Counter>,
    /// Check-ins by outcome.
    pub checkins: Family<CheckinLabels, Counter>,
    /// Certificate renewals.
    pub renewals: Counter,
    /// Rate-limit rejections by limiter.
    pub rate_limited: Family<LimitLabels, Counter>,
    /// Request durations.
    pub durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Inventory sites by derived state, refreshed at scrape time
    /// ([`Metrics::set_sites`]).
    pub sites: Family<SiteStateLabels, Gauge>,
    /// Render durations of apply attempts reported by agents, by outcome.
    pub site_render: StageFamily,
    /// Apply (+ prune) durations of apply attempts reported by agents, by outcome.
    pub site_apply: StageFamily,
    /// Per device, the newest `finishedAt` already observed: an agent whose 2xx answer was
    /// lost resends the same timings, and they must not be counted twice. In memory only:
    /// a restart can at worst count one resent batch again.
    attempts_seen:
        std::sync::Mutex<std::collections::HashMap<String, chrono::DateTime<chrono::Utc>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("siteboot");
        let registrations = Family::<RegistrationLabels, Counter>::default();
        let checkins = Family::<CheckinLabels, Counter>::default();
        let renewals = Counter::default();
        let rate_limited = Family::<LimitLabels, Counter>::default();
        let durations = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "registrations",
            "Registration attempts by outcome and credential kind",
            registrations.clone(),
        );
        registry.register("checkins", "Device check-ins by outcome", checkins.clone());
        registry.register(
            "certificate_renewals",
            "Client certificates renewed over mTLS",
            renewals.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a rate limiter",
            rate_limited.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request durations by route and status class",
            durations.clone(),
        );
        let sites = Family::<SiteStateLabels, Gauge>::default();
        registry.register(
            "sites",
            "Inventory sites by state (computed when /metrics is scraped)",
            sites.clone(),
        );
        let site_render = StageFamily::new_with_constructor(site_stage_histogram);
        let site_apply = StageFamily::new_with_constructor(site_stage_histogram);
        registry.register(
            "site_render_duration_seconds",
            "Time agents spent rendering a revision's Git layers, by attempt outcome (reported at check-in)",
            site_render.clone(),
        );
        registry.register(
            "site_apply_duration_seconds",
            "Time agents spent applying and pruning a rendered revision, by attempt outcome (reported at check-in; 0 when rendering failed)",
            site_apply.clone(),
        );
        Self {
            registry,
            registrations,
            checkins,
            renewals,
            rate_limited,
            durations,
            sites,
            site_render,
            site_apply,
            attempts_seen: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Counts one registration outcome.
    pub fn registration(&self, outcome: &str, credential: &str) {
        self.registrations
            .get_or_create(&RegistrationLabels {
                outcome: outcome.to_string(),
                credential: credential.to_string(),
            })
            .inc();
    }

    /// Counts one check-in outcome.
    pub fn checkin(&self, outcome: &str) {
        self.checkins
            .get_or_create(&CheckinLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counts one rate-limit rejection.
    pub fn limited(&self, limiter: &str) {
        self.rate_limited
            .get_or_create(&LimitLabels {
                limiter: limiter.to_string(),
            })
            .inc();
    }

    /// Observes the attempt timings of one accepted check-in of `device_id` (already
    /// validated), skipping any that finished no later than the newest one already
    /// observed for the device (a resend after a lost answer).
    pub fn attempts(&self, device_id: &str, attempts: &[siteboot_wire::api::AttemptTiming]) {
        let Some(newest) = attempts.iter().map(|a| a.finished_at).max() else {
            return;
        };
        let previous = {
            let mut seen = self.attempts_seen.lock().unwrap_or_else(|p| p.into_inner());
            let entry = seen
                .entry(device_id.to_string())
                .or_insert(chrono::DateTime::<chrono::Utc>::MIN_UTC);
            let previous = *entry;
            *entry = previous.max(newest);
            previous
        };
        for a in attempts.iter().filter(|a| a.finished_at > previous) {
            let labels = AttemptLabels {
                outcome: a.outcome.as_str().to_string(),
            };
            self.site_render
                .get_or_create(&labels)
                .observe(a.render_seconds);
            self.site_apply
                .get_or_create(&labels)
                .observe(a.apply_seconds);
        }
    }

    /// Sets the sites-by-state gauge; every state is written (zeros included) so a
    /// state that empties drops to 0 instead of keeping its last value.
    pub fn set_sites(&self, counts: &siteboot_wire::fleet::StateCounts) {
        for state in siteboot_wire::fleet::SiteState::ALL {
            let n = counts.get(&state).copied().unwrap_or(0);
            self.sites
                .get_or_create(&SiteStateLabels {
                    state: state.as_str().to_string(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Renders the text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_with_labels() {
        let m = Metrics::new();
        m.registration("registered", "token");
        m.limited("credential");
        m.durations
            .get_or_create(&RouteLabels {
                method: "POST".into(),
                route: "/v1/register".into(),
                status: "2xx".into(),
            })
            .observe(0.01);
        let text = m.encode();
        assert!(text.contains(
            "siteboot_registrations_total{outcome=\"registered\",credential=\"token\"} 1"
        ));
        assert!(text.contains("siteboot_rate_limited_total{limiter=\"credential\"} 1"));
        assert!(text.contains("siteboot_http_request_duration_seconds_bucket"));
    }

    #[test]
    fn attempt_timings_land_in_outcome_histograms() {
        use siteboot_wire::api::{AttemptOutcome, AttemptTiming};
        let m = Metrics::new();
        let start = chrono::Utc::now();
        let at = |s: i64| start + chrono::TimeDelta::seconds(s);
        let t = |outcome, render, apply, finished_at| AttemptTiming {
            revision: "abc".into(),
            outcome,
            render_seconds: render,
            apply_seconds: apply,
            finished_at,
        };
        m.attempts("d1", &[]);
        assert!(!m
            .encode()
            .contains("siteboot_site_render_duration_seconds_count"));
        let batch = [
            t(AttemptOutcome::Applied, 0.5, 2.0, at(1)),
            t(AttemptOutcome::Applied, 1.5, 600.0, at(2)),
            t(AttemptOutcome::Failed, 0.25, 0.0, at(3)),
        ];
        m.attempts("d1", &batch);
        // The same batch again (the agent never saw the 2xx) counts nothing more; another
        // device's timings at the same instants count.
        m.attempts("d1", &batch);
        m.attempts("d2", &[t(AttemptOutcome::Failed, 1.0, 0.0, at(3))]);
        // A resend that also carries one newer attempt counts only the newer one.
        m.attempts(
            "d1",
            &[batch[2].clone(), t(AttemptOutcome::Failed, 2.0, 0.0, at(4))],
        );
        let text = m.encode();
        for line in [
            "siteboot_site_render_duration_seconds_sum{outcome=\"applied\"} 2.0\n",
            "siteboot_site_render_duration_seconds_count{outcome=\"applied\"} 2\n",
            "siteboot_site_apply_duration_seconds_sum{outcome=\"applied\"} 602.0\n",
            "siteboot_site_apply_duration_seconds_count{outcome=\"failed\"} 3\n",
            "siteboot_site_render_duration_seconds_sum{outcome=\"failed\"} 3.25\n",
            // Ten minutes still lands in a finite bucket (1.048576 * 1000 s).
            "siteboot_site_apply_duration_seconds_bucket{le=\"1048.576\",outcome=\"applied\"} 2\n",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn sites_gauge_writes_every_state() {
        use siteboot_wire::fleet::SiteState;
        let m = Metrics::new();
        m.set_sites(&[(SiteState::Ready, 2), (SiteState::Offline, 1)].into());
        m.set_sites(&[(SiteState::Ready, 3)].into());
        let text = m.encode();
        for (state, n) in [
            ("ready", 3),
            ("offline", 0),
            ("never-seen", 0),
            ("pending", 0),
            ("applying", 0),
            ("failed", 0),
        ] {
            let line = format!("siteboot_sites{{state=\"{state}\"}} {n}\n");
            assert!(text.contains(&line), "{line} in\n{text}");
        }
    }
}
