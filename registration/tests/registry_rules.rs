//! One test per registration rule (issue 3), against `Registry` + SQLite in a temp dir.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use siteboot_registration::inventory::{InventoryHandle, SiteFilter};
use siteboot_registration::registry::{
    PollOutcome, RegisterOutcome, Registry, RegistryConfig, RegistryError, RejectReason,
};
use siteboot_registration::store::sqlite::SqliteStore;
use siteboot_registration::store::{EventKind, Store};
use siteboot_wire::api::{AgentState, CheckinRequest, Credential, RegisterRequest};
use siteboot_wire::assignment::{GitAuth, RevisionPolicy};
use siteboot_wire::crockford;
use siteboot_wire::error::ErrorCode;
use siteboot_wire::operator::{
    DeviceStatus, ExtendTokenRequest, MachineRef, MintClaimRequest, MintTokenRequest, TokenState,
};
use siteboot_wire::{DeviceFacts, SecretString};

const INVENTORY: &str = "\
git:
  url: https://git.example.internal/fleet.git
  authRef: fleet-ro
  rings:
    canary:
      branch: canary
    broad:
      branch: main
sites:
  - id: store-1
    region: eu-west
    ring: canary
    country: FR
    maintenanceWindow: Mon-Fri 01:00-05:00 Europe/Paris
    expectedSerials: [SN-EXPECTED]
  - id: store-2
    region: us-east
    ring: broad
    country: US
";

const BATCH_SECRET: &str = "batch-secret-of-line-a-0123456789";
const GIT_TOKEN: &str = "glpat-GITSECRET-0000";

struct Env {
    _dir: tempfile::TempDir,
    inventory_path: PathBuf,
    store: Arc<SqliteStore>,
    registry: Registry,
}

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 1, 8, 0, 0).unwrap() + TimeDelta::minutes(minutes)
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let inventory_path = dir.path().join("inventory.yaml");
    std::fs::write(&inventory_path, INVENTORY).unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("registry.db")).unwrap());
    let cfg = RegistryConfig {
        enrollment_batches: BTreeMap::from([(
            "2026-w14-lineA".to_string(),
            SecretString::new(BATCH_SECRET).sha256_hex(),
        )]),
        git_credentials: BTreeMap::from([(
            "fleet-ro".to_string(),
            GitAuth::Token {
                token: SecretString::new(GIT_TOKEN),
                ca_pem: None,
            },
        )]),
        ..RegistryConfig::default()
    };
    let registry = Registry::new(
        store.clone() as Arc<dyn Store>,
        InventoryHandle::load(&inventory_path).unwrap(),
        cfg,
    );
    Env {
        _dir: dir,
        inventory_path,
        store,
        registry,
    }
}

fn facts(serial: &str) -> DeviceFacts {
    DeviceFacts {
        serial: serial.into(),
        macs: vec!["52:54:00:12:34:56".into()],
        tpm_ek_sha256: None,
        hostname: "box".into(),
        arch: "x86_64".into(),
        os: "Debian GNU/Linux 12".into(),
    }
}

fn request(credential: Credential, serial: &str) -> RegisterRequest {
    RegisterRequest {
        credential,
        csr: format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{serial}\n-----END CERTIFICATE REQUEST-----\n"
        ),
        facts: facts(serial),
    }
}

fn with_token(token: &SecretString, serial: &str) -> RegisterRequest {
    request(
        Credential::Token {
            token: token.clone(),
        },
        serial,
    )
}

fn with_claim(code: &str, serial: &str) -> RegisterRequest {
    request(
        Credential::Claim {
            code: SecretString::new(code),
        },
        serial,
    )
}

fn with_batch(secret: &str, serial: &str) -> RegisterRequest {
    request(
        Credential::Enrollment {
            batch: "2026-w14-lineA".into(),
            secret: SecretString::new(secret),
        },
        serial,
    )
}

fn mint(site: &str) -> MintTokenRequest {
    MintTokenRequest {
        site_id: site.into(),
        machine: None,
        ttl_seconds: None,
    }
}

fn registered(o: RegisterOutcome) -> (String, String) {
    match o {
        RegisterOutcome::Registered {
            device_id, site_id, ..
        } => (device_id, site_id),
        other => panic!("expected Registered, got {other:?}"),
    }
}

fn checkin(state: AgentState, applied: &str) -> CheckinRequest {
    CheckinRequest {
        applied_revision: Some(applied.into()),
        attempted_revision: Some(applied.into()),
        state,
        error: None,
        health: Default::default(),
        offline_periods: vec![],
        facts: None,
        attempts: Vec::new(),
    }
}

/// Asserts no secret text appears in an error's Display, Debug or API body.
fn assert_secret_free(e: &RegistryError, secrets: &[&str]) {
    let body = serde_json::to_string(&e.to_api_error()).unwrap();
    for shown in [e.to_string(), format!("{e:?}"), body] {
        for s in secrets {
            assert!(!shown.contains(s), "secret {s:?} shown in {shown:?}");
        }
    }
}

#[tokio::test]
async fn a_token_registers_a_device_at_its_site_with_the_assignment() {
    let e = env();
    let minted = e.registry.mint_token(&mint("store-1"), t(0)).await.unwrap();
    assert_eq!(minted.info.state, TokenState::Unused);
    assert_eq!(
        minted.info.expires_at,
        t(0) + TimeDelta::hours(24),
        "default ttl 24h"
    );
    let stored = e.store.token(&minted.info.token_id).await.unwrap().unwrap();
    assert_ne!(
        stored.secret_hash,
        minted.token.expose(),
        "only the hash is stored"
    );
    assert!(!stored.secret_hash.contains(&minted.token.expose()[16..]));
    let out = e
        .registry
        .register(&with_token(&minted.token, "SN-1"), t(1))
        .await
        .unwrap();
    let RegisterOutcome::Registered {
        device_id,
        site_id,
        assignment,
    } = out
    else {
        panic!("not registered")
    };
    assert_eq!(site_id, "store-1");
    assert_eq!(
        assignment.paths,
        vec!["baseline/", "regions/eu-west/", "clusters/store-1/"]
    );
    assert_eq!(
        assignment.source.revision,
        RevisionPolicy::Branch {
            name: "canary".into()
        }
    );
    assert_eq!(assignment.labels["site-id"], "store-1");
    assert_eq!(assignment.source.auth_ref.as_deref(), Some("fleet-ro"));
    assert_eq!(
        assignment.source.auth, None,
        "credential material only over mTLS"
    );
    let mtls = e.registry.assignment("store-1").await.unwrap();
    assert!(matches!(mtls.source.auth, Some(GitAuth::Token { .. })));
    let info = e
        .registry
        .token_info(&minted.info.token_id, t(2))
        .await
        .unwrap();
    assert_eq!(
        (info.state, info.device_id.as_deref()),
        (TokenState::Redeemed, Some(device_id.as_str()))
    );
    let d = e.registry.device(&device_id).await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.registered_via.as_str()),
        (DeviceStatus::Active, "token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_concurrent_redemptions_register_exactly_one_device() {
    let e = env();
    let minted = e.registry.mint_token(&mint("store-2"), t(0)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (registry, token) = (e.registry.clone(), minted.token.clone());
        tasks.push(tokio::spawn(async move {
            registry
                .register(&with_token(&token, &format!("SN-{i}")), t(1))
                .await
        }));
    }
    let (mut wins, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(RegisterOutcome::Registered { .. }) => wins += 1,
            Err(RegistryError::InvalidCredential { .. }) => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((wins, refused), (1, 99));
    assert_eq!(e.registry.devices(Some("store-2")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn expired_replayed_unknown_and_wrong_tokens_get_the_same_error() {
    let e = env();
    let used = e.registry.mint_token(&mint("store-1"), t(0)).await.unwrap();
    e.registry
        .register(&with_token(&used.token, "SN-1"), t(1))
        .await
        .unwrap();
    let short = MintTokenRequest {
        ttl_seconds: Some(60),
        ..mint("store-2")
    };
    let expired = e.registry.mint_token(&short, t(0)).await.unwrap();
    let fresh = e.registry.mint_token(&mint("store-2"), t(0)).await.unwrap();
    let f = fresh.token.expose();
    let wrong = SecretString::new(format!(
        "{}{}",
        &f[..f.len() - 1],
        if f.ends_with('0') { '1' } else { '0' }
    ));
    let unknown = SecretString::new(format!("sbt1.0000000000.{}", &f[16..]));
    let cases = [
        (&used.token, RejectReason::Replayed),
        (&expired.token, RejectReason::Expired),
        (&unknown, RejectReason::Unknown),
        (&wrong, RejectReason::WrongSecret),
    ];
    let mut bodies = Vec::new();
    for (token, want) in cases {
        let err = e
            .registry
            .register(&with_token(token, "SN-9"), t(5))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::InvalidCredential { reason, .. } if reason == want),
            "{err:?}"
        );
        assert_secret_free(&err, &[token.expose(), &token.expose()[16..]]);
        bodies.push((err.to_string(), err.to_api_error()));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(bodies[0].1.code, ErrorCode::InvalidCredential);
    assert_eq!(bodies[0].1.code.http_status(), 401);
    // The fresh token still works after a wrong-secret attempt on its id.
    e.registry
        .register(&with_token(&fresh.token, "SN-9"), t(5))
        .await
        .unwrap();
    // A malformed token is a 422 naming the field.
    let bad = e
        .registry
        .register(&with_token(&SecretString::new("sbt1.nope"), "SN-9"), t(5))
        .await
        .unwrap_err();
    assert_eq!(
        bad.to_api_error().field.as_deref(),
        Some("credential.token")
    );
}

#[tokio::test]
async fn a_token_is_bound_to_its_site_and_machine() {
    let e = env();
    let machine = MachineRef {
        namespace: "fleet".into(),
        name: "store-1-md-0-x7k2p".into(),
        uid: Some("3f1c".into()),
    };
    let req = MintTokenRequest {
        machine: Some(machine.clone()),
        ..mint("store-1")
    };
    let first = e.registry.mint_token(&req, t(0)).await.unwrap();
    assert_eq!(first.info.machine.as_ref(), Some(&machine));
    // Re-minting for the same Machine supersedes the first token.
    let second = e.registry.mint_token(&req, t(1)).await.unwrap();
    let info = e
        .registry
        .token_info(&first.info.token_id, t(2))
        .await
        .unwrap();
    assert_eq!(info.state, TokenState::Revoked);
    let err = e
        .registry
        .register(&with_token(&first.token, "SN-1"), t(2))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        RegistryError::InvalidCredential {
            reason: RejectReason::Revoked,
            ..
        }
    ));
    let (device_id, site_id) = registered(
        e.registry
            .register(&with_token(&second.token, "SN-1"), t(3))
            .await
            .unwrap(),
    );
    assert_eq!(site_id, "store-1", "the device cannot pick its site");
    let record = e.store.device(&device_id).await.unwrap().unwrap();
    assert_eq!(record.machine, Some(machine));
    // Unknown sites cannot get tokens.
    let err = e
        .registry
        .mint_token(&mint("store-404"), t(0))
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().field.as_deref(), Some("siteId"));
}

#[tokio::test]
async fn tokens_extend_while_unused_and_not_after_redemption() {
    let e = env();
    let m = e
        .registry
        .mint_token(
            &MintTokenRequest {
                ttl_seconds: Some(600),
                ..mint("store-1")
            },
            t(0),
        )
        .await
        .unwrap();
    let ext = e
        .registry
        .extend_token(
            &m.info.token_id,
            &ExtendTokenRequest { ttl_seconds: 7200 },
            t(5),
        )
        .await
        .unwrap();
    assert_eq!(ext.expires_at, t(5) + TimeDelta::hours(2));
    // Usable past its original expiry.
    e.registry
        .register(&with_token(&m.token, "SN-1"), t(60))
        .await
        .unwrap();
    let err = e
        .registry
        .extend_token(
            &m.info.token_id,
            &ExtendTokenRequest { ttl_seconds: 7200 },
            t(61),
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::Conflict);
    let err = e
        .registry
        .extend_token("NOPE", &ExtendTokenRequest { ttl_seconds: 60 }, t(61))
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::NotFound);
    let err = e
        .registry
        .extend_token(
            &m.info.token_id,
            &ExtendTokenRequest { ttl_seconds: 0 },
            t(61),
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().field.as_deref(), Some("ttlSeconds"));
    // Revoked tokens cannot be redeemed.
    let r = e.registry.mint_token(&mint("store-2"), t(0)).await.unwrap();
    assert_eq!(
        e.registry
            .revoke_token(&r.info.token_id, t(1))
            .await
            .unwrap()
            .state,
        TokenState::Revoked
    );
    assert!(e
        .registry
        .register(&with_token(&r.token, "SN-2"), t(2))
        .await
        .is_err());
}

/// A code with the same id as `code` but another secret, with a correct check symbol.
fn same_id_other_secret(code: &str) -> String {
    let id = &code[..4];
    let secret = if &code[5..9] == "ZZZZ" {
        "YYYY"
    } else {
        "ZZZZ"
    };
    let values = crockford::decode_symbols(&format!("{id}{secret}")).unwrap();
    format!("{id}-{secret}-{}", crockford::check_symbol(&values))
}

#[tokio::test]
async fn claim_code_typos_are_caught_before_any_lookup() {
    let e = env();
    let claim = e
        .registry
        .mint_claim(
            &MintClaimRequest {
                site_id: "store-1".into(),
                ttl_seconds: None,
            },
            t(0),
        )
        .await
        .unwrap();
    assert_eq!(
        claim.expires_at,
        t(0) + TimeDelta::hours(72),
        "default ttl 72h"
    );
    let code = claim.code.expose().to_string();
    let mut typo: Vec<char> = code.chars().collect();
    typo[6] = if typo[6] == 'X' { 'Y' } else { 'X' };
    let typo: String = typo.into_iter().collect();
    let err = e
        .registry
        .register(&with_claim(&typo, "SN-NEW"), t(1))
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::InvalidRequest);
    assert_eq!(err.to_api_error().field.as_deref(), Some("credential.code"));
    assert_secret_free(&err, &[&code[5..9], &typo[5..9]]);
    let stored = e.store.claim(&claim.claim_id).await.unwrap().unwrap();
    assert_eq!(
        stored.failed_attempts, 0,
        "a typo does not count against the claim"
    );
    // Lower case and spaces are fine.
    let sloppy = code.to_lowercase().replace('-', " ");
    registered(
        e.registry
            .register(&with_claim(&sloppy, "SN-NEW"), t(2))
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn a_claim_binds_the_new_box_and_revokes_the_old_one() {
    let e = env();
    let m = e.registry.mint_token(&mint("store-1"), t(0)).await.unwrap();
    let (old, _) = registered(
        e.registry
            .register(&with_token(&m.token, "SN-OLD"), t(1))
            .await
            .unwrap(),
    );
    e.registry
        .checkin("store-1", &old, &checkin(AgentState::Ready, "r1"), t(2))
        .await
        .unwrap();
    let claim = e
        .registry
        .mint_claim(
            &MintClaimRequest {
                site_id: "store-1".into(),
                ttl_seconds: None,
            },
            t(10),
        )
        .await
        .unwrap();
    let (new, site) = registered(
        e.registry
            .register(&with_claim(claim.code.expose(), "SN-SPARE"), t(11))
            .await
            .unwrap(),
    );
    assert_eq!(site, "store-1");
    let old_info = e.registry.device(&old).await.unwrap().unwrap();
    assert_eq!(
        old_info.status,
        DeviceStatus::Revoked,
        "the mTLS gate refuses it from now on"
    );
    let err = e
        .registry
        .checkin("store-1", &old, &checkin(AgentState::Ready, "r1"), t(12))
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::DeviceRevoked);
    assert_eq!(
        e.registry
            .site("store-1")
            .await
            .unwrap()
            .device_id
            .as_deref(),
        Some(new.as_str())
    );
    e.registry
        .checkin("store-1", &new, &checkin(AgentState::Applying, "r1"), t(12))
        .await
        .unwrap();
    // Single use.
    let err = e
        .registry
        .register(&with_claim(claim.code.expose(), "SN-OTHER"), t(13))
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::InvalidCredential);
    let kinds: Vec<_> = e
        .registry
        .events(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&EventKind::Replaced), "{kinds:?}");
}

#[tokio::test]
async fn a_claim_locks_after_five_wrong_codes() {
    let e = env();
    let claim = e
        .registry
        .mint_claim(
            &MintClaimRequest {
                site_id: "store-2".into(),
                ttl_seconds: None,
            },
            t(0),
        )
        .await
        .unwrap();
    let wrong = same_id_other_secret(claim.code.expose());
    for _ in 0..5 {
        let err = e
            .registry
            .register(&with_claim(&wrong, "SN-X"), t(1))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RegistryError::InvalidCredential {
                    reason: RejectReason::WrongSecret,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let err = e
        .registry
        .register(&with_claim(claim.code.expose(), "SN-X"), t(2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::InvalidCredential {
                reason: RejectReason::Locked,
                ..
            }
        ),
        "{err:?}"
    );
    assert_secret_free(&err, &[&claim.code.expose()[5..9]]);
    let kinds: Vec<_> = e
        .registry
        .events(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&EventKind::ClaimLocked), "{kinds:?}");
}

#[tokio::test]
async fn enrollment_of_an_expected_serial_registers_and_a_bad_batch_secret_does_not() {
    let e = env();
    let err = e
        .registry
        .register(&with_batch("not-the-secret", "SN-EXPECTED"), t(0))
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::InvalidCredential);
    assert_secret_free(&err, &["not-the-secret", BATCH_SECRET]);
    let (_, site) = registered(
        e.registry
            .register(&with_batch(BATCH_SECRET, "SN-EXPECTED"), t(1))
            .await
            .unwrap(),
    );
    assert_eq!(site, "store-1");
}

#[tokio::test]
async fn unknown_serial_waits_for_approval_then_polls_approved_with_its_csr() {
    let e = env();
    let RegisterOutcome::Pending(first) = e
        .registry
        .register(&with_batch(BATCH_SECRET, "SN-STRAY"), t(0))
        .await
        .unwrap()
    else {
        panic!("expected pending")
    };
    assert_eq!(first.poll_after_seconds, 30);
    // Asking again returns the same record with a new poll secret (the old one stops).
    let mut again_req = with_batch(BATCH_SECRET, "SN-STRAY");
    again_req.csr =
        "-----BEGIN CERTIFICATE REQUEST-----\nsecond key\n-----END CERTIFICATE REQUEST-----\n"
            .into();
    let RegisterOutcome::Pending(again) = e.registry.register(&again_req, t(1)).await.unwrap()
    else {
        panic!("expected pending")
    };
    assert_eq!(again.pending_id, first.pending_id);
    let err = e
        .registry
        .poll_pending(&first.pending_id, &first.poll_secret, t(2))
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::InvalidCredential);
    assert_secret_free(&err, &[first.poll_secret.expose()]);
    let poll = e
        .registry
        .poll_pending(&again.pending_id, &again.poll_secret, t(2))
        .await
        .unwrap();
    assert_eq!(
        poll,
        PollOutcome::Pending {
            poll_after_seconds: 30
        }
    );
    let listed = e.registry.pending().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].facts.serial.as_str(), listed[0].requested_at),
        ("SN-STRAY", t(0))
    );
    let stored = e.store.pending(&first.pending_id).await.unwrap().unwrap();
    assert_ne!(
        stored.poll_secret_hash,
        again.poll_secret.expose(),
        "poll secret stored hashed"
    );
    let device = e
        .registry
        .approve(&first.pending_id, "store-2", t(3))
        .await
        .unwrap();
    assert_eq!(
        (device.site_id.as_str(), device.registered_via.as_str()),
        ("store-2", "approval")
    );
    match e
        .registry
        .poll_pending(&again.pending_id, &again.poll_secret, t(4))
        .await
        .unwrap()
    {
        PollOutcome::Approved {
            device_id,
            site_id,
            assignment,
            csr_pem,
        } => {
            assert_eq!(
                (device_id, site_id.as_str()),
                (device.device_id.clone(), "store-2")
            );
            assert_eq!(csr_pem, again_req.csr, "the latest CSR is signed");
            assert_eq!(assignment.paths[1], "regions/us-east/");
        }
        other => panic!("expected approved, got {other:?}"),
    }
    assert!(e.registry.pending().await.unwrap().is_empty());
    let err = e
        .registry
        .approve(&first.pending_id, "store-2", t(5))
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::Conflict);
}

#[tokio::test]
async fn a_rejected_device_learns_why() {
    let e = env();
    let RegisterOutcome::Pending(p) = e
        .registry
        .register(&with_batch(BATCH_SECRET, "SN-GREY"), t(0))
        .await
        .unwrap()
    else {
        panic!("expected pending")
    };
    e.registry
        .reject(&p.pending_id, "not our hardware", t(1))
        .await
        .unwrap();
    let poll = e
        .registry
        .poll_pending(&p.pending_id, &p.poll_secret, t(2))
        .await
        .unwrap();
    assert_eq!(
        poll,
        PollOutcome::Rejected {
            reason: "not our hardware".into()
        }
    );
    let err = e.registry.reject("pnd-nope", "x", t(2)).await.unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::NotFound);
}

#[tokio::test]
async fn a_cloned_serial_is_refused_and_recorded_never_overwritten() {
    let e = env();
    let (holder, _) = registered(
        e.registry
            .register(&with_batch(BATCH_SECRET, "SN-EXPECTED"), t(0))
            .await
            .unwrap(),
    );
    let err = e
        .registry
        .register(&with_batch(BATCH_SECRET, "SN-EXPECTED"), t(1))
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::SerialConflict);
    assert_eq!(err.to_api_error().code.http_status(), 409);
    // Also via a token for another site (the token is not burnt) ...
    let m = e.registry.mint_token(&mint("store-2"), t(0)).await.unwrap();
    let err = e
        .registry
        .register(&with_token(&m.token, "SN-EXPECTED"), t(2))
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::SerialConflict);
    assert_eq!(
        e.registry
            .token_info(&m.info.token_id, t(2))
            .await
            .unwrap()
            .state,
        TokenState::Unused
    );
    let d = e.registry.device(&holder).await.unwrap().unwrap();
    assert_eq!(d.status, DeviceStatus::Active);
    // ... and when nobody expects the serial (the pending path) but a device holds it.
    let m = e.registry.mint_token(&mint("store-2"), t(0)).await.unwrap();
    registered(
        e.registry
            .register(&with_token(&m.token, "SN-TOKEN"), t(3))
            .await
            .unwrap(),
    );
    let err = e
        .registry
        .register(&with_batch(BATCH_SECRET, "SN-TOKEN"), t(4))
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::SerialConflict);
    assert!(
        e.registry.pending().await.unwrap().is_empty(),
        "not queued either"
    );
    let conflicts: Vec<_> = e
        .registry
        .events(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::SerialConflict)
        .collect();
    assert_eq!(conflicts.len(), 3);
    assert!(conflicts
        .iter()
        .all(|c| c.device_id.is_some() && c.serial.is_some()));
}

#[tokio::test]
async fn a_bad_inventory_reload_keeps_the_old_one_serving() {
    let e = env();
    let broken = INVENTORY.replace("  - id: store-2\n", "  - id: store-1\n");
    std::fs::write(&e.inventory_path, &broken).unwrap();
    let err = e.registry.reload_inventory().await.unwrap_err();
    let body = err.to_api_error();
    assert_eq!(
        (body.code.http_status(), body.field.as_deref()),
        (422, Some("inventory"))
    );
    let file = e.inventory_path.display().to_string();
    assert!(
        body.message.contains(&format!("{file}:16: ")),
        "{}",
        body.message
    );
    assert!(
        body.message.contains("duplicate site id"),
        "{}",
        body.message
    );
    assert_eq!(
        e.registry
            .sites(&SiteFilter::default())
            .await
            .unwrap()
            .len(),
        2,
        "old inventory serves"
    );
    e.registry.site("store-2").await.unwrap();
    // An unknown credential reference is refused too.
    std::fs::write(
        &e.inventory_path,
        INVENTORY.replace("authRef: fleet-ro", "authRef: nope"),
    )
    .unwrap();
    assert!(e.registry.reload_inventory().await.is_err());
    let fixed = format!("{INVENTORY}  - id: store-3\n    region: us-west\n    ring: broad\n");
    std::fs::write(&e.inventory_path, fixed).unwrap();
    assert_eq!(e.registry.reload_inventory().await.unwrap(), 3);
    let west = SiteFilter {
        region: Some("us-west".into()),
        ring: None,
    };
    assert_eq!(e.registry.sites(&west).await.unwrap()[0].site_id, "store-3");
}

#[tokio::test]
async fn heartbeats_are_coalesced_and_state_changes_written_through() {
    let e = env();
    let m = e.registry.mint_token(&mint("store-1"), t(0)).await.unwrap();
    let (dev, _) = registered(
        e.registry
            .register(&with_token(&m.token, "SN-1"), t(0))
            .await
            .unwrap(),
    );
    let stored_seen = |e: &Env, dev: String| {
        let store = e.store.clone();
        async move { store.device(&dev).await.unwrap().unwrap().last_seen }
    };
    e.registry
        .checkin("store-1", &dev, &checkin(AgentState::Ready, "r1"), t(1))
        .await
        .unwrap();
    assert_eq!(
        stored_seen(&e, dev.clone()).await,
        Some(t(1)),
        "first check-in is written"
    );
    e.registry
        .checkin("store-1", &dev, &checkin(AgentState::Ready, "r1"), t(2))
        .await
        .unwrap();
    assert_eq!(
        stored_seen(&e, dev.clone()).await,
        Some(t(1)),
        "an unchanged heartbeat is held"
    );
    assert_eq!(
        e.registry.device(&dev).await.unwrap().unwrap().last_seen,
        Some(t(2)),
        "readers see the held time"
    );
    e.registry
        .checkin("store-1", &dev, &checkin(AgentState::Applying, "r2"), t(3))
        .await
        .unwrap();
    let d = e.store.device(&dev).await.unwrap().unwrap();
    assert_eq!(
        (d.last_seen, d.agent_state, d.applied_revision.as_deref()),
        (Some(t(3)), Some(AgentState::Applying), Some("r2"))
    );
    e.registry
        .checkin("store-1", &dev, &checkin(AgentState::Applying, "r2"), t(4))
        .await
        .unwrap();
    assert_eq!(stored_seen(&e, dev.clone()).await, Some(t(3)));
    assert_eq!(e.registry.flush_heartbeats(t(4)).await.unwrap(), 1);
    assert_eq!(
        stored_seen(&e, dev.clone()).await,
        Some(t(4)),
        "flush writes held heartbeats"
    );
    assert_eq!(e.registry.flush_heartbeats(t(4)).await.unwrap(), 0);
    e.registry
        .checkin("store-1", &dev, &checkin(AgentState::Applying, "r2"), t(8))
        .await
        .unwrap();
    assert_eq!(
        stored_seen(&e, dev.clone()).await,
        Some(t(4)),
        "within 5 minutes of the flush"
    );
    e.registry
        .checkin("store-1", &dev, &checkin(AgentState::Applying, "r2"), t(9))
        .await
        .unwrap();
    assert_eq!(
        stored_seen(&e, dev.clone()).await,
        Some(t(9)),
        "5 minutes after the last write"
    );
    let site = e.registry.site("store-1").await.unwrap();
    assert_eq!(
        (
            site.agent_state.as_deref(),
            site.applied_revision.as_deref()
        ),
        (Some("applying"), Some("r2"))
    );
    // A certificate for another site is refused.
    let err = e
        .registry
        .checkin("store-2", &dev, &checkin(AgentState::Ready, "r2"), t(10))
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::Forbidden);
}

#[tokio::test]
async fn an_operator_revocation_refuses_the_device() {
    let e = env();
    let m = e.registry.mint_token(&mint("store-2"), t(0)).await.unwrap();
    let (dev, _) = registered(
        e.registry
            .register(&with_token(&m.token, "SN-1"), t(0))
            .await
            .unwrap(),
    );
    let d = e
        .registry
        .revoke_device(&dev, "stolen", t(1))
        .await
        .unwrap();
    assert_eq!(d.status, DeviceStatus::Revoked);
    let err = e
        .registry
        .assignment_for_device("store-2", &dev, t(1))
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::DeviceRevoked);
    assert!(e
        .registry
        .site("store-2")
        .await
        .unwrap()
        .device_id
        .is_none());
}

#[tokio::test]
async fn a_full_store_answers_unavailable_and_keeps_what_was_committed() {
    let e = env();
    let first = e.registry.mint_token(&mint("store-1"), t(0)).await.unwrap();
    let pages = e.store.set_max_pages(1).await.unwrap();
    assert!(
        pages > 1,
        "the limit cannot go below the current size: {pages}"
    );
    let mut err = None;
    for i in 0..10_000 {
        let r = e
            .registry
            .register(
                &with_batch(BATCH_SECRET, &format!("SN-FILL-{i}-{}", "x".repeat(100))),
                t(1),
            )
            .await;
        if let Err(x) = r {
            err = Some(x);
            break;
        }
    }
    let err = err.expect("the store never filled up");
    let body = err.to_api_error();
    assert_eq!(
        (body.code, body.code.http_status(), body.retry_after_seconds),
        (ErrorCode::Unavailable, 503, Some(5))
    );
    assert_eq!(
        e.registry
            .token_info(&first.info.token_id, t(2))
            .await
            .unwrap()
            .state,
        TokenState::Unused
    );
}

#[tokio::test]
async fn another_replicas_revocation_is_seen_within_the_cache_ttl() {
    let e = env();
    // A second registry over the same store stands in for another replica.
    let other = Registry::new(
        e.store.clone() as Arc<dyn Store>,
        InventoryHandle::load(&e.inventory_path).unwrap(),
        e.registry.config().clone(),
    );
    let m = e.registry.mint_token(&mint("store-1"), t(0)).await.unwrap();
    let (dev, _) = registered(
        e.registry
            .register(&with_token(&m.token, "SN-1"), t(0))
            .await
            .unwrap(),
    );
    let at = t(1);
    e.registry
        .checkin("store-1", &dev, &checkin(AgentState::Ready, "r1"), at)
        .await
        .unwrap();
    other.revoke_device(&dev, "stolen", at).await.unwrap();
    let ttl = TimeDelta::from_std(e.registry.config().device_cache_ttl).unwrap();
    let err = e
        .registry
        .checkin("store-1", &dev, &checkin(AgentState::Ready, "r1"), at + ttl)
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::DeviceRevoked);
    // In the revoking process itself the refusal is immediate.
    let err = other
        .checkin("store-1", &dev, &checkin(AgentState::Ready, "r1"), at)
        .await
        .unwrap_err();
    assert_eq!(err.to_api_error().code, ErrorCode::DeviceRevoked);
}
