//! Table tests for the pure decisions.

use chrono::{TimeDelta, TimeZone, Utc};

use super::*;

fn t(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap() + TimeDelta::minutes(min)
}

fn token(redeemed: bool, revoked: bool) -> TokenRecord {
    TokenRecord {
        id: "T".into(),
        secret_hash: "aa".into(),
        site_id: "s".into(),
        machine: None,
        created_at: t(0),
        expires_at: t(60),
        redeemed_at: redeemed.then(|| t(10)),
        revoked_at: revoked.then(|| t(20)),
        device_id: None,
    }
}

#[test]
fn token_state_table() {
    let cases = [
        (token(false, false), 30, TokenState::Unused),
        (token(false, false), 60, TokenState::Expired),
        (token(true, false), 90, TokenState::Redeemed),
        (token(false, true), 30, TokenState::Revoked),
        (token(false, true), 90, TokenState::Revoked),
        (token(true, true), 30, TokenState::Redeemed),
    ];
    for (i, (rec, at, want)) in cases.into_iter().enumerate() {
        assert_eq!(token_state(&rec, t(at)), want, "case {i}");
    }
}

#[test]
fn token_rejection_table() {
    use RejectReason::*;
    let cases: Vec<(Option<TokenRecord>, &str, i64, Option<RejectReason>)> = vec![
        (None, "aa", 0, Some(Unknown)),
        (Some(token(false, false)), "ab", 30, Some(WrongSecret)),
        (Some(token(false, false)), "aaa", 30, Some(WrongSecret)),
        (Some(token(false, false)), "aa", 30, None),
        (Some(token(false, false)), "aa", 60, Some(Expired)),
        (Some(token(true, false)), "aa", 30, Some(Replayed)),
        (Some(token(false, true)), "aa", 30, Some(Revoked)),
    ];
    for (i, (rec, hash, at, want)) in cases.into_iter().enumerate() {
        assert_eq!(token_rejection(rec.as_ref(), hash, t(at)), want, "case {i}");
    }
}

fn claim(failed: u32, redeemed: bool) -> ClaimRecord {
    ClaimRecord {
        id: "C".into(),
        secret_hash: "cc".into(),
        site_id: "s".into(),
        created_at: t(0),
        expires_at: t(60),
        redeemed_at: redeemed.then(|| t(5)),
        revoked_at: None,
        device_id: None,
        failed_attempts: failed,
    }
}

#[test]
fn claim_rejection_table() {
    use RejectReason::*;
    let cases: Vec<(Option<ClaimRecord>, &str, i64, Option<RejectReason>)> = vec![
        (None, "cc", 0, Some(Unknown)),
        (Some(claim(0, false)), "cc", 10, None),
        (Some(claim(4, false)), "cc", 10, None),
        (Some(claim(5, false)), "cc", 10, Some(Locked)),
        (Some(claim(5, false)), "xx", 10, Some(Locked)),
        (Some(claim(0, false)), "xx", 10, Some(WrongSecret)),
        (Some(claim(0, false)), "cc", 60, Some(Expired)),
        (Some(claim(0, true)), "cc", 10, Some(Replayed)),
    ];
    for (i, (rec, hash, at, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            claim_rejection(rec.as_ref(), hash, t(at), 5),
            want,
            "case {i}"
        );
    }
}

#[test]
fn enrollment_table() {
    use EnrollmentDecision::*;
    let cases = [
        (
            Some("store-1"),
            None,
            Bind {
                site_id: "store-1".into(),
            },
        ),
        (None, None, Pending),
        (
            Some("store-1"),
            Some("dev-1"),
            Conflict {
                device_id: "dev-1".into(),
            },
        ),
        (
            None,
            Some("dev-1"),
            Conflict {
                device_id: "dev-1".into(),
            },
        ),
    ];
    for (expected, holder, want) in cases {
        assert_eq!(
            decide_enrollment(expected, holder),
            want,
            "{expected:?} {holder:?}"
        );
    }
}

#[test]
fn coalescer_table() {
    let five = TimeDelta::minutes(5);
    let cases = [
        (10, None, false, true),
        (10, Some(9), false, false),
        (10, Some(6), false, false),
        (10, Some(5), false, true),
        (10, Some(9), true, true),
        (10, Some(10), true, true),
    ];
    for (now, last, changed, want) in cases {
        assert_eq!(
            should_write(t(now), last.map(t), changed, five),
            want,
            "{now} {last:?} {changed}"
        );
    }
}

#[test]
fn lifetime_table() {
    let d = TimeDelta::hours(24);
    let max = TimeDelta::days(30);
    assert_eq!(lifetime(None, d, max), Ok(d));
    assert_eq!(lifetime(Some(60), d, max), Ok(TimeDelta::seconds(60)));
    assert!(lifetime(Some(0), d, max).is_err());
    assert!(lifetime(Some(31 * 86400), d, max).is_err());
    assert!(lifetime(Some(u64::MAX), d, max).is_err());
}

fn bound_device(key: Option<&str>) -> DeviceRecord {
    DeviceRecord {
        id: "dev-1".into(),
        site_id: "store-0142".into(),
        serial: "SN1".into(),
        status: DeviceStatus::Active,
        facts: Default::default(),
        registered_via: "token".into(),
        registered_at: t(0),
        revoked_at: None,
        revoke_reason: None,
        machine: None,
        last_seen: None,
        applied_revision: None,
        attempted_revision: None,
        agent_state: None,
        last_error: None,
        health: Default::default(),
        key_sha256: key.map(String::from),
    }
}

#[test]
fn same_box_retry_table() {
    let base = bound_device(Some("aa11"));
    let rows: Vec<(&str, DeviceRecord, &str, Option<&str>, bool)> = vec![
        (
            "same key, never checked in",
            base.clone(),
            "store-0142",
            Some("aa11"),
            true,
        ),
        (
            "other key (another box)",
            base.clone(),
            "store-0142",
            Some("bb22"),
            false,
        ),
        (
            "no key in the request",
            base.clone(),
            "store-0142",
            None,
            false,
        ),
        (
            "record from before keys were stored",
            bound_device(None),
            "store-0142",
            Some("aa11"),
            false,
        ),
        (
            "credential for another site",
            base.clone(),
            "store-0999",
            Some("aa11"),
            false,
        ),
        (
            "already checked in: it has its certificate",
            DeviceRecord {
                last_seen: Some(t(1)),
                ..base.clone()
            },
            "store-0142",
            Some("aa11"),
            false,
        ),
        (
            "revoked since",
            DeviceRecord {
                status: DeviceStatus::Revoked,
                ..base.clone()
            },
            "store-0142",
            Some("aa11"),
            false,
        ),
    ];
    for (name, device, site, key, want) in rows {
        assert_eq!(same_box_retry(&device, site, key), want, "{name}");
    }
}
