//! Pure helpers that set conditions on a working copy of the status, keeping
//! `lastTransitionTime` when the status value does not change, so an unchanged
//! reconcile produces an identical status and therefore no write.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::api::{Condition, ConditionStatus, SiteBootstrapConfigStatus};
use crate::consts::{condition, reason};

/// RFC 3339 at second precision, as `metav1.Time` serialises.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Sets (or replaces) one condition.
pub fn set(
    status: &mut SiteBootstrapConfigStatus,
    type_: &str,
    value: ConditionStatus,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
    generation: Option<i64>,
) {
    let last_transition_time = match status.conditions.iter().find(|c| c.type_ == type_) {
        Some(old) if old.status == value => old.last_transition_time.clone(),
        _ => timestamp(now),
    };
    let new = Condition {
        type_: type_.to_string(),
        status: value,
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time,
        observed_generation: generation,
    };
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(old) => *old = new,
        None => status.conditions.push(new),
    }
    // Stable order: Ready, DataSecretAvailable, Registered, Paused, then others.
    let rank = |t: &str| {
        [
            condition::READY,
            condition::DATA_SECRET_AVAILABLE,
            condition::REGISTERED,
            condition::PAUSED,
        ]
        .iter()
        .position(|x| *x == t)
        .unwrap_or(9)
    };
    status.conditions.sort_by_key(|c| rank(&c.type_));
}

/// Marks the data as not available (and therefore not ready) for `reason`.
pub fn not_available(
    status: &mut SiteBootstrapConfigStatus,
    why: &str,
    message: &str,
    now: DateTime<Utc>,
    generation: Option<i64>,
) {
    set(
        status,
        condition::DATA_SECRET_AVAILABLE,
        ConditionStatus::False,
        why,
        message,
        now,
        generation,
    );
    set(
        status,
        condition::READY,
        ConditionStatus::False,
        why,
        message,
        now,
        generation,
    );
}

/// Marks the data as available and ready.
pub fn available(
    status: &mut SiteBootstrapConfigStatus,
    now: DateTime<Utc>,
    generation: Option<i64>,
) {
    let name = status.data_secret_name.clone().unwrap_or_default();
    set(
        status,
        condition::DATA_SECRET_AVAILABLE,
        ConditionStatus::True,
        reason::AVAILABLE,
        &format!("bootstrap data is in Secret {name}"),
        now,
        generation,
    );
    set(
        status,
        condition::READY,
        ConditionStatus::True,
        reason::READY,
        "",
        now,
        generation,
    );
}

/// Sets `Paused` to False.
pub fn not_paused(
    status: &mut SiteBootstrapConfigStatus,
    now: DateTime<Utc>,
    generation: Option<i64>,
) {
    set(
        status,
        condition::PAUSED,
        ConditionStatus::False,
        reason::NOT_PAUSED,
        "",
        now,
        generation,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_transition_time_when_status_is_unchanged() {
        let t1 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let t2 = t1 + chrono::Duration::minutes(5);
        let mut s = SiteBootstrapConfigStatus::default();
        set(
            &mut s,
            "Ready",
            ConditionStatus::False,
            "A",
            "",
            t1,
            Some(1),
        );
        set(
            &mut s,
            "Ready",
            ConditionStatus::False,
            "B",
            "m",
            t2,
            Some(1),
        );
        assert_eq!(s.conditions[0].last_transition_time, "2026-01-01T00:00:00Z");
        assert_eq!(s.conditions[0].reason, "B");
        set(
            &mut s,
            "Ready",
            ConditionStatus::True,
            "Ready",
            "",
            t2,
            Some(1),
        );
        assert_eq!(s.conditions[0].last_transition_time, "2026-01-01T00:05:00Z");
    }

    #[test]
    fn order_is_stable_whatever_the_insertion_order() {
        let t = Utc::now();
        let mut a = SiteBootstrapConfigStatus::default();
        let mut b = SiteBootstrapConfigStatus::default();
        not_paused(&mut a, t, None);
        not_available(&mut a, "X", "", t, None);
        not_available(&mut b, "X", "", t, None);
        not_paused(&mut b, t, None);
        assert_eq!(a, b);
        assert_eq!(
            a.conditions
                .iter()
                .map(|c| c.type_.as_str())
                .collect::<Vec<_>>(),
            ["Ready", "DataSecretAvailable", "Paused"]
        );
    }
}
