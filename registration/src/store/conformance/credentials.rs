//! Conformance checks for tokens and claim codes.

use std::sync::Arc;

use chrono::Duration;
use siteboot_wire::operator::{DeviceStatus, MachineRef};

use super::{binding, bound, register, t0, tok, token, Check};
use crate::store::{BindCredential, BindOutcome, ClaimRecord, EventKind, Store, StoreError};

macro_rules! check {
    ($name:ident, |$s:ident| $body:block) => {
        fn $name(
            $s: Arc<dyn Store>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
            Box::pin(async move { $body })
        }
    };
}
pub(crate) use check;

pub(super) fn checks() -> Vec<(&'static str, Check)> {
    vec![
        ("token_round_trip", token_round_trip as Check),
        ("token_redemption_conditions", token_redemption_conditions),
        (
            "token_one_of_100_concurrent_redemptions_wins",
            token_concurrent_redemption,
        ),
        (
            "token_extend_only_while_unused",
            token_extend_only_while_unused,
        ),
        (
            "token_machine_remint_supersedes",
            token_machine_remint_supersedes,
        ),
        ("ids_collide_as_conflict", ids_collide_as_conflict),
        (
            "claim_redemption_revokes_previous_device",
            claim_revokes_previous,
        ),
        (
            "claim_rejected_changes_nothing",
            claim_rejected_changes_nothing,
        ),
        ("claim_lockout_after_failures", claim_lockout),
    ]
}

check!(token_round_trip, |s| {
    let t = token("T1", "site-a", "h1");
    s.insert_token(&t).await.unwrap();
    assert_eq!(s.token("T1").await.unwrap(), Some(t.clone()));
    assert_eq!(s.token("nope").await.unwrap(), None);
    let revoked = s.revoke_token("T1", t0()).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(t0()));
    let again = s
        .revoke_token("T1", t0() + Duration::hours(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, Some(t0()), "revocation time is kept");
    assert_eq!(s.revoke_token("nope", t0()).await.unwrap(), None);
});

check!(token_redemption_conditions, |s| {
    s.insert_token(&token("T1", "site-a", "h1")).await.unwrap();
    let now = t0() + Duration::hours(1);
    let cases = [
        ("wrong hash", tok("T1", "h2"), "site-a"),
        ("wrong site", tok("T1", "h1"), "site-b"),
        ("unknown id", tok("T9", "h1"), "site-a"),
    ];
    for (what, cred, site) in cases {
        let out = s
            .bind_device(&binding(cred, "d1", site, "SN1", now))
            .await
            .unwrap();
        assert_eq!(out, BindOutcome::CredentialRejected, "{what}");
    }
    let late = t0() + Duration::hours(24);
    let out = s
        .bind_device(&binding(tok("T1", "h1"), "d1", "site-a", "SN1", late))
        .await
        .unwrap();
    assert_eq!(
        out,
        BindOutcome::CredentialRejected,
        "expired at exactly expires_at"
    );
    assert!(
        s.devices(None).await.unwrap().is_empty(),
        "rejections write nothing"
    );
    let (d, replaced) = bound(
        s.bind_device(&binding(tok("T1", "h1"), "d1", "site-a", "SN1", now))
            .await
            .unwrap(),
        "valid",
    );
    assert_eq!(
        (
            d.status,
            d.site_id.as_str(),
            d.registered_via.as_str(),
            replaced
        ),
        (DeviceStatus::Active, "site-a", "token", None)
    );
    let t = s.token("T1").await.unwrap().unwrap();
    assert_eq!(
        (t.redeemed_at, t.device_id.as_deref()),
        (Some(now), Some("d1"))
    );
    let replay = s
        .bind_device(&binding(tok("T1", "h1"), "d2", "site-a", "SN2", now))
        .await
        .unwrap();
    assert_eq!(replay, BindOutcome::CredentialRejected, "replay");
    s.insert_token(&token("T2", "site-a", "h2")).await.unwrap();
    s.revoke_token("T2", now).await.unwrap();
    let out = s
        .bind_device(&binding(tok("T2", "h2"), "d3", "site-a", "SN3", now))
        .await
        .unwrap();
    assert_eq!(out, BindOutcome::CredentialRejected, "revoked");
    let kinds: Vec<_> = s
        .events(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec![EventKind::Registered]);
});

check!(token_concurrent_redemption, |s| {
    s.insert_token(&token("T1", "site-a", "h1")).await.unwrap();
    let now = t0() + Duration::minutes(5);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.bind_device(&binding(
                tok("T1", "h1"),
                &format!("d{i}"),
                "site-a",
                &format!("SN{i}"),
                now,
            ))
            .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(BindOutcome::Bound { .. }) => wins += 1,
            Ok(BindOutcome::CredentialRejected) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one of 100 concurrent redemptions wins");
    let devices = s.devices(Some("site-a")).await.unwrap();
    assert_eq!(devices.len(), 1);
    let t = s.token("T1").await.unwrap().unwrap();
    assert_eq!(t.device_id.as_deref(), Some(devices[0].id.as_str()));
});

check!(token_extend_only_while_unused, |s| {
    s.insert_token(&token("T1", "site-a", "h1")).await.unwrap();
    let later = t0() + Duration::hours(48);
    let ext = s
        .extend_token("T1", later, t0() + Duration::hours(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ext.expires_at, later);
    assert_eq!(
        s.extend_token("T1", later, later).await.unwrap(),
        None,
        "expired tokens stay expired"
    );
    assert_eq!(s.extend_token("nope", later, t0()).await.unwrap(), None);
    let now = t0() + Duration::hours(2);
    bound(
        s.bind_device(&binding(tok("T1", "h1"), "d1", "site-a", "SN1", now))
            .await
            .unwrap(),
        "redeem",
    );
    assert_eq!(
        s.extend_token("T1", later + Duration::hours(1), now)
            .await
            .unwrap(),
        None,
        "redeemed"
    );
    s.insert_token(&token("T2", "site-a", "h2")).await.unwrap();
    s.revoke_token("T2", now).await.unwrap();
    assert_eq!(
        s.extend_token("T2", later, now).await.unwrap(),
        None,
        "revoked"
    );
});

check!(token_machine_remint_supersedes, |s| {
    let m = MachineRef {
        namespace: "fleet".into(),
        name: "store-0142-abcde".into(),
        uid: Some("u-1".into()),
    };
    let mut a = token("TA", "site-a", "ha");
    a.machine = Some(m.clone());
    s.insert_token(&a).await.unwrap();
    let mut b = token("TB", "site-a", "hb");
    b.machine = Some(m.clone());
    b.created_at = t0() + Duration::minutes(1);
    s.insert_token(&b).await.unwrap();
    assert_eq!(
        s.token("TA").await.unwrap().unwrap().revoked_at,
        Some(b.created_at)
    );
    assert_eq!(s.token("TB").await.unwrap().unwrap().revoked_at, None);
    let mut other = token("TC", "site-a", "hc");
    other.machine = Some(MachineRef {
        uid: Some("u-2".into()),
        ..m
    });
    s.insert_token(&other).await.unwrap();
    assert_eq!(
        s.token("TB").await.unwrap().unwrap().revoked_at,
        None,
        "a recreated Machine (new uid) is another machine"
    );
    let now = t0() + Duration::minutes(2);
    let (d, _) = bound(
        s.bind_device(&binding(tok("TB", "hb"), "d1", "site-a", "SN1", now))
            .await
            .unwrap(),
        "bind",
    );
    assert_eq!(d.registered_via, "token");
});

check!(ids_collide_as_conflict, |s| {
    s.insert_token(&token("T1", "site-a", "h1")).await.unwrap();
    assert!(matches!(
        s.insert_token(&token("T1", "site-b", "h2")).await,
        Err(StoreError::Conflict { .. })
    ));
    s.insert_claim(&claim("C1", "site-a", "h")).await.unwrap();
    assert!(matches!(
        s.insert_claim(&claim("C1", "site-a", "h")).await,
        Err(StoreError::Conflict { .. })
    ));
});

pub(super) fn claim(id: &str, site: &str, hash: &str) -> ClaimRecord {
    ClaimRecord {
        id: id.into(),
        secret_hash: hash.into(),
        site_id: site.into(),
        created_at: t0(),
        expires_at: t0() + Duration::hours(72),
        redeemed_at: None,
        revoked_at: None,
        device_id: None,
        failed_attempts: 0,
    }
}

fn cl(id: &str, hash: &str) -> BindCredential {
    BindCredential::Claim {
        id: id.into(),
        secret_hash: hash.into(),
        max_failures: 5,
    }
}

check!(claim_revokes_previous, |s| {
    let old = register(&*s, "old", "site-a", "SN-OLD", t0()).await;
    s.insert_claim(&claim("C1", "site-a", "hc")).await.unwrap();
    let now = t0() + Duration::hours(1);
    let (new, replaced) = bound(
        s.bind_device(&binding(cl("C1", "hc"), "new", "site-a", "SN-NEW", now))
            .await
            .unwrap(),
        "claim",
    );
    assert_eq!(replaced.as_deref(), Some(old.id.as_str()));
    assert_eq!(
        (new.status, new.registered_via.as_str()),
        (DeviceStatus::Active, "claim")
    );
    let old = s.device("old").await.unwrap().unwrap();
    assert_eq!(
        (old.status, old.revoked_at),
        (DeviceStatus::Revoked, Some(now))
    );
    let c = s.claim("C1").await.unwrap().unwrap();
    assert_eq!(
        (c.redeemed_at, c.device_id.as_deref()),
        (Some(now), Some("new"))
    );
    let replay = s
        .bind_device(&binding(cl("C1", "hc"), "new2", "site-a", "SN-3", now))
        .await
        .unwrap();
    assert_eq!(
        replay,
        BindOutcome::CredentialRejected,
        "claims are single-use"
    );
    let kinds: Vec<_> = s
        .events(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Registered,
            EventKind::Replaced,
            EventKind::Registered
        ]
    );
    // The spare box can come back to its own site with a new claim (it replaces itself).
    s.insert_claim(&claim("C2", "site-a", "hc2")).await.unwrap();
    let (again, replaced) = bound(
        s.bind_device(&binding(cl("C2", "hc2"), "new3", "site-a", "SN-NEW", now))
            .await
            .unwrap(),
        "same box",
    );
    assert_eq!(
        (again.id.as_str(), replaced.as_deref()),
        ("new3", Some("new"))
    );
});

check!(claim_rejected_changes_nothing, |s| {
    register(&*s, "old", "site-a", "SN-OLD", t0()).await;
    s.insert_claim(&claim("C1", "site-a", "hc")).await.unwrap();
    let now = t0() + Duration::hours(1);
    for (what, cred, site, at) in [
        ("wrong hash", cl("C1", "bad"), "site-a", now),
        ("wrong site", cl("C1", "hc"), "site-b", now),
        (
            "expired",
            cl("C1", "hc"),
            "site-a",
            t0() + Duration::hours(72),
        ),
    ] {
        let out = s
            .bind_device(&binding(cred, "new", site, "SN-NEW", at))
            .await
            .unwrap();
        assert_eq!(out, BindOutcome::CredentialRejected, "{what}");
    }
    assert_eq!(
        s.device("old").await.unwrap().unwrap().status,
        DeviceStatus::Active
    );
    assert_eq!(s.device("new").await.unwrap(), None);
    assert_eq!(s.claim("C1").await.unwrap().unwrap().redeemed_at, None);
});

check!(claim_lockout, |s| {
    s.insert_claim(&claim("C1", "site-a", "hc")).await.unwrap();
    let now = t0() + Duration::hours(1);
    for i in 1..=5 {
        assert_eq!(s.record_claim_failure("C1", now).await.unwrap(), i);
    }
    let out = s
        .bind_device(&binding(cl("C1", "hc"), "new", "site-a", "SN-NEW", now))
        .await
        .unwrap();
    assert_eq!(
        out,
        BindOutcome::CredentialRejected,
        "locked even with the right code"
    );
    assert_eq!(s.record_claim_failure("nope", now).await.unwrap(), 0);
    s.insert_claim(&claim("C2", "site-a", "hc2")).await.unwrap();
    for _ in 0..4 {
        s.record_claim_failure("C2", now).await.unwrap();
    }
    bound(
        s.bind_device(&binding(cl("C2", "hc2"), "new", "site-a", "SN-NEW", now))
            .await
            .unwrap(),
        "4 failures still allow it",
    );
});
