//! Conformance checks for devices, serial conflicts, the pending queue and check-ins.

use std::sync::Arc;

use chrono::Duration;
use siteboot_wire::api::{AgentState, HealthSummary, OfflinePeriod};
use siteboot_wire::operator::DeviceStatus;

use super::credentials::check;
use super::{binding, bound, facts, register, t0, tok, token, Check};
use crate::store::{
    BindCredential, BindOutcome, CheckinWrite, Event, EventKind, HeartbeatWrite, NewPending,
    PendingStatus, Store,
};

pub(super) fn checks() -> Vec<(&'static str, Check)> {
    vec![
        (
            "serial_conflict_is_recorded_and_consumes_nothing",
            serial_conflict,
        ),
        (
            "enrollment_binds_and_replaces",
            enrollment_binds_and_replaces,
        ),
        ("pending_is_idempotent_per_serial", pending_idempotent),
        ("pending_approve_and_reject", pending_approve_reject),
        ("revoke_device", revoke_device),
        (
            "checkin_writes_status_and_last_seen_only_forward",
            checkin_semantics,
        ),
        ("events_page_in_order", events_page),
    ]
}

fn enroll(batch: &str) -> BindCredential {
    BindCredential::Enrollment {
        batch: batch.into(),
    }
}

check!(serial_conflict, |s| {
    let holder = register(&*s, "d1", "site-a", "SN-1", t0()).await;
    // The registered key's fingerprint is kept (idempotent registration retries).
    assert_eq!(holder.key_sha256.as_deref(), Some("key-d1"));
    let read = s.device("d1").await.unwrap().expect("device d1");
    assert_eq!(read.key_sha256.as_deref(), Some("key-d1"));
    let now = t0() + Duration::hours(1);
    s.insert_token(&token("T2", "site-b", "h2")).await.unwrap();
    let out = s
        .bind_device(&binding(tok("T2", "h2"), "d2", "site-b", "SN-1", now))
        .await
        .unwrap();
    assert_eq!(
        out,
        BindOutcome::SerialConflict {
            device_id: holder.id.clone(),
            site_id: "site-a".into()
        }
    );
    assert_eq!(
        s.token("T2").await.unwrap().unwrap().redeemed_at,
        None,
        "a conflict does not burn the token"
    );
    let out = s
        .bind_device(&binding(enroll("b1"), "d3", "site-a", "SN-1", now))
        .await
        .unwrap();
    assert!(
        matches!(out, BindOutcome::SerialConflict { .. }),
        "enrollment of an active serial at its own site is a clone too"
    );
    assert_eq!(
        s.device("d1").await.unwrap().unwrap().status,
        DeviceStatus::Active,
        "never overwritten"
    );
    assert_eq!(s.devices(None).await.unwrap().len(), 1);
    let conflicts: Vec<Event> = s
        .events(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::SerialConflict)
        .collect();
    assert_eq!(conflicts.len(), 2);
    assert_eq!(conflicts[0].serial.as_deref(), Some("SN-1"));
    assert_eq!(conflicts[0].device_id.as_deref(), Some("d1"));
    assert_eq!(
        s.active_device_by_serial("SN-1")
            .await
            .unwrap()
            .map(|d| d.id),
        Some("d1".into())
    );
    assert_eq!(s.active_device_by_serial("SN-9").await.unwrap(), None);
});

check!(enrollment_binds_and_replaces, |s| {
    let old = register(&*s, "d1", "site-a", "SN-OLD", t0()).await;
    let now = t0() + Duration::hours(1);
    let (d, replaced) = bound(
        s.bind_device(&binding(enroll("b1"), "d2", "site-a", "SN-NEW", now))
            .await
            .unwrap(),
        "enroll",
    );
    assert_eq!(
        (d.registered_via.as_str(), replaced),
        ("enrollment", Some(old.id))
    );
    assert_eq!(
        s.device("d1").await.unwrap().unwrap().status,
        DeviceStatus::Revoked
    );
    let active: Vec<_> = s
        .devices(Some("site-a"))
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.status == DeviceStatus::Active)
        .collect();
    assert_eq!(active.len(), 1, "one active device per site");
});

fn new_pending(
    id: &str,
    serial: &str,
    hash: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> NewPending {
    NewPending {
        id: id.into(),
        poll_secret_hash: hash.into(),
        batch: "2026-w14-lineA".into(),
        facts: facts(serial),
        csr_pem: format!("CSR for {serial} {hash}"),
        now: at,
    }
}

check!(pending_idempotent, |s| {
    let first = s
        .upsert_pending(&new_pending("p1", "SN-1", "ph1", t0()))
        .await
        .unwrap();
    assert_eq!(
        (first.id.as_str(), &first.status),
        ("p1", &PendingStatus::Pending)
    );
    let later = t0() + Duration::minutes(3);
    let again = s
        .upsert_pending(&new_pending("p2", "SN-1", "ph2", later))
        .await
        .unwrap();
    assert_eq!(again.id, "p1", "same serial, same pending record");
    assert_eq!(
        (again.poll_secret_hash.as_str(), again.csr_pem.as_str()),
        ("ph2", "CSR for SN-1 ph2")
    );
    assert_eq!((again.requested_at, again.updated_at), (t0(), later));
    assert_eq!(s.pending("p2").await.unwrap(), None);
    s.upsert_pending(&new_pending("p3", "SN-2", "ph3", later))
        .await
        .unwrap();
    let open: Vec<_> = s
        .open_pending()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(open, vec!["p1", "p3"]);
    // Registering the serial another way settles the request.
    register(&*s, "d1", "site-a", "SN-2", later).await;
    assert_eq!(
        s.pending("p3").await.unwrap().unwrap().status,
        PendingStatus::Superseded
    );
});

check!(pending_approve_reject, |s| {
    s.upsert_pending(&new_pending("p1", "SN-1", "ph1", t0()))
        .await
        .unwrap();
    s.upsert_pending(&new_pending("p2", "SN-2", "ph2", t0()))
        .await
        .unwrap();
    let now = t0() + Duration::hours(1);
    let approve = |id: &str| BindCredential::Approval {
        pending_id: id.into(),
    };
    let (d, _) = bound(
        s.bind_device(&binding(approve("p1"), "d1", "site-a", "SN-1", now))
            .await
            .unwrap(),
        "approve",
    );
    assert_eq!(d.registered_via, "approval");
    let p = s.pending("p1").await.unwrap().unwrap();
    assert_eq!(
        p.status,
        PendingStatus::Approved {
            device_id: "d1".into(),
            site_id: "site-a".into()
        }
    );
    assert_eq!(
        p.csr_pem, "CSR for SN-1 ph1",
        "the CSR stays for signing at poll time"
    );
    let twice = s
        .bind_device(&binding(approve("p1"), "d9", "site-b", "SN-1", now))
        .await
        .unwrap();
    assert_eq!(twice, BindOutcome::CredentialRejected, "approval is once");
    assert!(s
        .reject_pending("p2", "not our hardware", now)
        .await
        .unwrap());
    assert!(!s.reject_pending("p2", "again", now).await.unwrap());
    assert!(!s.reject_pending("p1", "too late", now).await.unwrap());
    assert_eq!(
        s.pending("p2").await.unwrap().unwrap().status,
        PendingStatus::Rejected {
            reason: "not our hardware".into()
        }
    );
    let late = s
        .bind_device(&binding(approve("p2"), "d2", "site-b", "SN-2", now))
        .await
        .unwrap();
    assert_eq!(
        late,
        BindOutcome::CredentialRejected,
        "rejected cannot be approved"
    );
    assert!(s.open_pending().await.unwrap().is_empty());
    // A new request after a rejection opens a fresh record.
    let fresh = s
        .upsert_pending(&new_pending("p3", "SN-2", "ph3", now))
        .await
        .unwrap();
    assert_eq!(fresh.id, "p3");
});

check!(revoke_device, |s| {
    register(&*s, "d1", "site-a", "SN-1", t0()).await;
    let now = t0() + Duration::hours(1);
    let d = s.revoke_device("d1", "stolen", now).await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.revoke_reason.as_deref(), d.revoked_at),
        (DeviceStatus::Revoked, Some("stolen"), Some(now))
    );
    let again = s
        .revoke_device("d1", "twice", now + Duration::hours(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.revoke_reason.as_deref(),
        Some("stolen"),
        "first revocation is kept"
    );
    assert_eq!(s.revoke_device("nope", "x", now).await.unwrap(), None);
    // The serial is free again.
    register(&*s, "d2", "site-b", "SN-1", now).await;
    let revoked: Vec<_> = s
        .events(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Revoked)
        .collect();
    assert_eq!(revoked.len(), 1);
});

fn write(
    device: &str,
    at: chrono::DateTime<chrono::Utc>,
    state: AgentState,
    changed: bool,
) -> CheckinWrite {
    CheckinWrite {
        device_id: device.into(),
        now: at,
        applied_revision: Some("a1".into()),
        attempted_revision: Some("a2".into()),
        state,
        error: (state == AgentState::Failed).then(|| "apply failed: deployment x not ready".into()),
        health: HealthSummary {
            total: 3,
            healthy: 2,
            progressing: 1,
            failed: 0,
        },
        offline_periods: vec![],
        state_changed: changed,
    }
}

check!(checkin_semantics, |s| {
    register(&*s, "d1", "site-a", "SN-1", t0()).await;
    let t1 = t0() + Duration::minutes(10);
    assert!(s
        .write_checkin(&write("d1", t1, AgentState::Failed, true))
        .await
        .unwrap());
    let d = s.device("d1").await.unwrap().unwrap();
    assert_eq!(
        (d.last_seen, d.agent_state, d.attempted_revision.as_deref()),
        (Some(t1), Some(AgentState::Failed), Some("a2"))
    );
    assert_eq!(
        d.last_error.as_deref(),
        Some("apply failed: deployment x not ready")
    );
    assert_eq!(d.health.progressing, 1);
    let t2 = t1 + Duration::minutes(5);
    let beat = |id: &str, at, healthy| HeartbeatWrite {
        device_id: id.into(),
        last_seen: at,
        health: HealthSummary {
            total: 3,
            healthy,
            progressing: 3 - healthy,
            failed: 0,
        },
    };
    s.write_heartbeats(&[beat("d1", t2, 3), beat("unknown", t2, 3)])
        .await
        .unwrap();
    s.write_heartbeats(&[beat("d1", t1, 0)]).await.unwrap();
    let d = s.device("d1").await.unwrap().unwrap();
    assert_eq!(
        (d.last_seen, d.health.healthy),
        (Some(t2), 3),
        "an older heartbeat changes nothing"
    );
    assert_eq!(
        d.agent_state,
        Some(AgentState::Failed),
        "heartbeats leave the state alone"
    );
    let mut w = write("d1", t2 + Duration::minutes(1), AgentState::Ready, false);
    w.offline_periods = vec![OfflinePeriod {
        from: t1,
        to: t2,
        what: "git".into(),
    }];
    assert!(s.write_checkin(&w).await.unwrap());
    let d = s.device("d1").await.unwrap().unwrap();
    assert_eq!(
        (d.agent_state, d.last_error),
        (Some(AgentState::Ready), None)
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
            EventKind::StateChanged,
            EventKind::Offline
        ]
    );
    s.revoke_device("d1", "gone", t2).await.unwrap();
    assert!(
        !s.write_checkin(&write("d1", t2, AgentState::Ready, true))
            .await
            .unwrap(),
        "revoked devices do not check in"
    );
    assert!(!s
        .write_checkin(&write("nope", t2, AgentState::Ready, true))
        .await
        .unwrap());
});

check!(events_page, |s| {
    for i in 0..5 {
        let e = Event {
            seq: 0,
            at: t0() + Duration::seconds(i),
            kind: EventKind::Offline,
            site_id: Some("site-a".into()),
            device_id: None,
            serial: None,
            detail: format!("e{i}"),
        };
        s.record_event(&e).await.unwrap();
    }
    let first = s.events(0, 2).await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.detail.as_str()).collect::<Vec<_>>(),
        vec!["e0", "e1"]
    );
    let rest = s.events(first[1].seq, 10).await.unwrap();
    assert_eq!(
        rest.iter().map(|e| e.detail.as_str()).collect::<Vec<_>>(),
        vec!["e2", "e3", "e4"]
    );
    assert!(rest.windows(2).all(|w| w[0].seq < w[1].seq));
});
