//! Table tests for [`plan`]: one row per branch, all inputs plain values.

use super::*;
use crate::api::{Initialization, LabelRef, SiteSource};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A fixture: every field a row may change, defaulting to "ready to mint".
#[derive(Clone)]
struct Case {
    spec: SiteBootstrapConfigSpec,
    status: SiteBootstrapConfigStatus,
    deleting: bool,
    has_finalizer: bool,
    config_paused: bool,
    machine: Option<MachineFacts>,
    cluster_label: Option<&'static str>,
    cluster: Option<ClusterFacts>,
    secret: SecretObservation,
    token: TokenObservation,
}

impl Case {
    fn new() -> Self {
        let mut spec = SiteBootstrapConfigSpec::default();
        spec.site.site_id = Some("store-0142".into());
        Case {
            spec,
            status: SiteBootstrapConfigStatus::default(),
            deleting: false,
            has_finalizer: true,
            config_paused: false,
            machine: Some(MachineFacts {
                name: "m".into(),
                namespace: "ns".into(),
                cluster_name: Some("c".into()),
                ..Default::default()
            }),
            cluster_label: Some("c"),
            cluster: Some(ClusterFacts {
                name: "c".into(),
                infrastructure_provisioned: true,
                ..Default::default()
            }),
            secret: SecretObservation::Missing,
            token: TokenObservation::NotChecked,
        }
    }
    fn created(mut self, token: &str) -> Self {
        self.status.token_id = Some(token.into());
        self.status.token_expires_at = Some("2026-11-23T00:00:00Z".into());
        self.status.data_secret_name = Some("cfg".into());
        self.status.initialization = Some(Initialization {
            data_secret_created: Some(true),
        });
        self.secret = SecretObservation::Present {
            token_id: Some(token.into()),
        };
        self
    }
    fn token(mut self, state: TokenState, expires_in_h: i64, device: Option<&str>) -> Self {
        self.token = TokenObservation::Known {
            state,
            expires_at: t0() + Duration::hours(expires_in_h),
            device_id: device.map(Into::into),
        };
        self
    }
    fn with(mut self, f: impl FnOnce(&mut Case)) -> Self {
        f(&mut self);
        self
    }
    fn plan(&self) -> Plan {
        plan(&Observed {
            now: t0(),
            spec: &self.spec,
            status: &self.status,
            deleting: self.deleting,
            has_finalizer: self.has_finalizer,
            config_paused: self.config_paused,
            machine: self.machine.as_ref(),
            cluster_name: self.cluster_label,
            cluster: self.cluster.as_ref(),
            secret: &self.secret,
            token: &self.token,
            ttl: Duration::hours(24),
            check_interval: Duration::seconds(60),
        })
    }
}

fn mint(prev: Option<&str>) -> Plan {
    Plan::MintToken {
        site_id: "store-0142".into(),
        revoke_previous: prev.map(Into::into),
    }
}

#[test]
fn plan_table() {
    let rows: Vec<(&str, Case, Plan)> = vec![
        (
            "no owner machine",
            Case::new().with(|c| c.machine = None),
            Plan::WaitForOwner,
        ),
        (
            "no cluster name anywhere",
            Case::new().with(|c| {
                c.cluster_label = None;
                c.machine.as_mut().unwrap().cluster_name = None;
            }),
            Plan::WaitForOwner,
        ),
        (
            "cluster missing",
            Case::new().with(|c| c.cluster = None),
            Plan::WaitForCluster {
                cluster_name: "c".into(),
            },
        ),
        (
            "cluster paused",
            Case::new().with(|c| c.cluster.as_mut().unwrap().paused = true),
            Plan::Paused {
                message: "Cluster is paused".into(),
            },
        ),
        (
            "config paused",
            Case::new().with(|c| c.config_paused = true),
            Plan::Paused {
                message: "SiteBootstrapConfig is paused".into(),
            },
        ),
        (
            "both paused",
            Case::new().with(|c| {
                c.config_paused = true;
                c.cluster.as_mut().unwrap().paused = true;
            }),
            Plan::Paused {
                message: "Cluster and SiteBootstrapConfig are paused".into(),
            },
        ),
        (
            "paused wins over finalizer",
            Case::new().with(|c| {
                c.config_paused = true;
                c.has_finalizer = false;
            }),
            Plan::Paused {
                message: "SiteBootstrapConfig is paused".into(),
            },
        ),
        (
            "finalizer first",
            Case::new().with(|c| c.has_finalizer = false),
            Plan::AddFinalizer,
        ),
        (
            "infrastructure not provisioned",
            Case::new().with(|c| c.cluster.as_mut().unwrap().infrastructure_provisioned = false),
            Plan::WaitForInfrastructure,
        ),
        (
            "no site at all",
            Case::new().with(|c| c.spec.site = SiteSource::default()),
            Plan::InvalidSpec {
                message: "spec.site needs siteId or siteIdFrom".into(),
            },
        ),
        (
            "site label missing",
            Case::new().with(|c| {
                c.spec.site = SiteSource {
                    site_id: None,
                    site_id_from: Some(LabelRef {
                        label: "site".into(),
                    }),
                }
            }),
            Plan::InvalidSpec {
                message: "label \"site\" is set on neither the Machine nor the Cluster".into(),
            },
        ),
        (
            "site from machine label",
            Case::new().with(|c| {
                c.spec.site = SiteSource {
                    site_id: None,
                    site_id_from: Some(LabelRef {
                        label: "site".into(),
                    }),
                };
                c.machine
                    .as_mut()
                    .unwrap()
                    .labels
                    .insert("site".into(), "store-0142".into());
                c.cluster
                    .as_mut()
                    .unwrap()
                    .labels
                    .insert("site".into(), "other".into());
            }),
            mint(None),
        ),
        (
            "site from cluster label",
            Case::new().with(|c| {
                c.spec.site = SiteSource {
                    site_id: None,
                    site_id_from: Some(LabelRef {
                        label: "site".into(),
                    }),
                };
                c.cluster
                    .as_mut()
                    .unwrap()
                    .labels
                    .insert("site".into(), "store-0142".into());
            }),
            mint(None),
        ),
        (
            "site id not a dns label",
            Case::new().with(|c| c.spec.site.site_id = Some("Store 1".into())),
            Plan::InvalidSpec {
                message: "site id \"Store 1\" is not a DNS label (a-z, 0-9, '-', at most 63)"
                    .into(),
            },
        ),
        ("fresh config mints", Case::new(), mint(None)),
        (
            "token recorded but secret never written: revoke it, mint anew",
            Case::new().with(|c| c.status.token_id = Some("OLD".into())),
            mint(Some("OLD")),
        ),
        (
            "secret exists but status lost: recover",
            Case::new().with(|c| {
                c.secret = SecretObservation::Present {
                    token_id: Some("T1".into()),
                }
            }),
            Plan::RecoverFromSecret {
                token_id: Some("T1".into()),
                revoke_orphan: None,
            },
        ),
        (
            "secret exists, status has another token: recover + revoke orphan",
            Case::new().with(|c| {
                c.secret = SecretObservation::Present {
                    token_id: Some("T1".into()),
                };
                c.status.token_id = Some("T0".into());
            }),
            Plan::RecoverFromSecret {
                token_id: Some("T1".into()),
                revoke_orphan: Some("T0".into()),
            },
        ),
        (
            "recover even while infra flips back",
            Case::new().with(|c| {
                c.secret = SecretObservation::Present {
                    token_id: Some("T1".into()),
                };
                c.cluster.as_mut().unwrap().infrastructure_provisioned = false;
            }),
            Plan::RecoverFromSecret {
                token_id: Some("T1".into()),
                revoke_orphan: None,
            },
        ),
        (
            "foreign secret without our annotation is replaced",
            Case::new().with(|c| c.secret = SecretObservation::Present { token_id: None }),
            mint(None),
        ),
        (
            "machine already has dataSecretName after a move",
            Case::new().with(|c| c.machine.as_mut().unwrap().data_secret_name = Some("cfg".into())),
            Plan::AdoptFromMachine {
                secret_name: "cfg".into(),
            },
        ),
        (
            "created: check the token",
            Case::new().created("T1"),
            Plan::CheckToken {
                token_id: "T1".into(),
            },
        ),
        (
            "created, infra flipped: still tracks token",
            Case::new()
                .created("T1")
                .with(|c| c.cluster.as_mut().unwrap().infrastructure_provisioned = false),
            Plan::CheckToken {
                token_id: "T1".into(),
            },
        ),
        (
            "redeemed: registered",
            Case::new()
                .created("T1")
                .token(TokenState::Redeemed, 20, Some("dev-1")),
            Plan::MarkRegistered {
                device_id: "dev-1".into(),
            },
        ),
        (
            "unused, plenty of time: wait one check interval",
            Case::new()
                .created("T1")
                .token(TokenState::Unused, 23, None),
            Plan::NothingToDo {
                requeue_after: Some(Duration::seconds(60)),
            },
        ),
        (
            "unused, refresh due in 10 s: wait until then",
            Case::new().created("T1").with(|c| {
                c.token = TokenObservation::Known {
                    state: TokenState::Unused,
                    expires_at: t0() + Duration::hours(4) + Duration::seconds(10),
                    device_id: None,
                }
            }),
            Plan::NothingToDo {
                requeue_after: Some(Duration::seconds(10)),
            },
        ),
        (
            "unused, less than 5/6 ttl left: extend",
            Case::new().created("T1").token(TokenState::Unused, 4, None),
            Plan::ExtendToken {
                token_id: "T1".into(),
            },
        ),
        (
            "unused but node joined: stop extending",
            Case::new()
                .created("T1")
                .token(TokenState::Unused, 1, None)
                .with(|c| c.machine.as_mut().unwrap().has_node_ref = true),
            Plan::NothingToDo {
                requeue_after: Some(Duration::seconds(60)),
            },
        ),
        (
            "unused but machine deleting: stop extending",
            Case::new()
                .created("T1")
                .token(TokenState::Unused, 1, None)
                .with(|c| c.machine.as_mut().unwrap().deleting = true),
            Plan::NothingToDo {
                requeue_after: Some(Duration::seconds(60)),
            },
        ),
        (
            "expired unused before join: new token, same secret",
            Case::new()
                .created("T1")
                .token(TokenState::Expired, -1, None),
            mint(None),
        ),
        (
            "revoked out of band: new token",
            Case::new()
                .created("T1")
                .token(TokenState::Revoked, 3, None),
            mint(None),
        ),
        (
            "service forgot the token: new token",
            Case::new()
                .created("T1")
                .with(|c| c.token = TokenObservation::Unknown),
            mint(None),
        ),
        (
            "expired after join: leave it",
            Case::new()
                .created("T1")
                .token(TokenState::Expired, -1, None)
                .with(|c| c.machine.as_mut().unwrap().has_node_ref = true),
            Plan::NothingToDo {
                requeue_after: None,
            },
        ),
        (
            "registered: nothing more",
            Case::new()
                .created("T1")
                .with(|c| c.status.device_id = Some("dev-1".into())),
            Plan::NothingToDo {
                requeue_after: None,
            },
        ),
        (
            "registered and secret deleted: no new token",
            Case::new().created("T1").with(|c| {
                c.status.device_id = Some("dev-1".into());
                c.secret = SecretObservation::Missing;
            }),
            Plan::NothingToDo {
                requeue_after: None,
            },
        ),
        (
            "node joined and secret deleted: no new token",
            Case::new().created("T1").with(|c| {
                c.machine.as_mut().unwrap().has_node_ref = true;
                c.secret = SecretObservation::Missing;
            }),
            Plan::NothingToDo {
                requeue_after: None,
            },
        ),
        (
            "created, site label gone: still tracks token",
            Case::new()
                .created("T1")
                .with(|c| c.spec.site = SiteSource::default()),
            Plan::CheckToken {
                token_id: "T1".into(),
            },
        ),
        (
            "expired and site now invalid: invalid spec",
            Case::new()
                .created("T1")
                .token(TokenState::Expired, -1, None)
                .with(|c| c.spec.site = SiteSource::default()),
            Plan::InvalidSpec {
                message: "spec.site needs siteId or siteIdFrom".into(),
            },
        ),
        (
            "secret deleted before registration: mint again",
            Case::new()
                .created("T1")
                .with(|c| c.secret = SecretObservation::Missing),
            mint(Some("T1")),
        ),
        (
            "adopted without token id: nothing to track",
            Case::new().created("T1").with(|c| c.status.token_id = None),
            Plan::NothingToDo {
                requeue_after: None,
            },
        ),
        (
            "deleting with unused token: revoke",
            Case::new().created("T1").with(|c| c.deleting = true),
            Plan::RevokeToken {
                token_id: "T1".into(),
            },
        ),
        (
            "deleting after revoke/unknown: release",
            Case::new().created("T1").with(|c| {
                c.deleting = true;
                c.token = TokenObservation::Unknown;
            }),
            Plan::RemoveFinalizer,
        ),
        (
            "deleting a registered config: release",
            Case::new().created("T1").with(|c| {
                c.deleting = true;
                c.status.device_id = Some("d".into());
            }),
            Plan::RemoveFinalizer,
        ),
        (
            "deleting with an expired token: release",
            Case::new().created("T1").with(|c| {
                c.deleting = true;
                c.status.token_expires_at = Some("2026-11-21T00:00:00Z".into());
            }),
            Plan::RemoveFinalizer,
        ),
        (
            "deleting, token known redeemed: release",
            Case::new()
                .created("T1")
                .token(TokenState::Redeemed, 3, Some("d"))
                .with(|c| c.deleting = true),
            Plan::RemoveFinalizer,
        ),
        (
            "deleting without token: release",
            Case::new().with(|c| c.deleting = true),
            Plan::RemoveFinalizer,
        ),
        (
            "deleting, finalizer gone: nothing",
            Case::new().with(|c| {
                c.deleting = true;
                c.has_finalizer = false;
            }),
            Plan::NothingToDo {
                requeue_after: None,
            },
        ),
        (
            "deleting while paused (clusterctl move): no revoke",
            Case::new().created("T1").with(|c| {
                c.deleting = true;
                c.cluster.as_mut().unwrap().paused = true;
            }),
            Plan::Paused {
                message: "Cluster is paused".into(),
            },
        ),
    ];
    for (name, case, want) in rows {
        assert_eq!(case.plan(), want, "{name}");
    }
}

#[test]
fn ttl_parsing_table() {
    let rows = [
        ("24h", Ok(86_400)),
        ("90m", Ok(5_400)),
        ("1h30m", Ok(5_400)),
        ("600s", Ok(600)),
        ("4m", Err(())),
        ("", Err(())),
        ("h", Err(())),
        ("10", Err(())),
        ("1d", Err(())),
        ("-5h", Err(())),
        ("99999999999999999999h", Err(())),
    ];
    for (text, want) in rows {
        assert_eq!(
            parse_ttl(text).map(|d| d.num_seconds()).map_err(|_| ()),
            want,
            "{text}"
        );
    }
}
