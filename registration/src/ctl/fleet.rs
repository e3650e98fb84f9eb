//! Human rendering of the fleet answers: `sites list` (a table with each site's state and
//! a counts line) and `sites show` (state, device, revisions, last error, devices and
//! history). Pure: JSON in, text out. `-o json` bypasses this and prints the API's JSON.

use chrono::{DateTime, Utc};
use serde_json::Value;
use siteboot_wire::fleet::SiteState;

use super::output::table;

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) if s.is_empty() => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    v.get(key)?.as_str()?.parse().ok()
}

/// `12s`, `4m05s`, `3h20m`, `2d4h`: how long before `now` `then` was.
pub fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let s = (now - then).num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

/// A time as `2026-11-22T08:00:00Z (4m05s ago)`, or `-`.
fn when(v: &Value, key: &str, now: Option<DateTime<Utc>>) -> String {
    match (time(v, key), now) {
        (Some(t), Some(now)) => format!("{} ({} ago)", text(v, key), age(now, t)),
        (Some(_), None) => text(v, key),
        (None, _) => "-".into(),
    }
}

/// Short `LAST SEEN` cell: `4m05s ago` or `-`.
fn seen(v: &Value, now: Option<DateTime<Utc>>) -> String {
    match (time(v, "lastSeen"), now) {
        (Some(t), Some(now)) => format!("{} ago", age(now, t)),
        _ => text(v, "lastSeen"),
    }
}

/// `6 sites: ready 1, failed 1, pending 2, never-seen 2` (states with sites, display
/// order); `no sites match` when empty.
pub fn counts_line(counts: &Value) -> String {
    let n = |s: SiteState| counts.get(s.as_str()).and_then(Value::as_u64).unwrap_or(0);
    let total: u64 = SiteState::ALL.into_iter().map(n).sum();
    if total == 0 {
        return "no sites match\n".into();
    }
    // Worst first: what needs attention leads the line.
    let order = [
        SiteState::Failed,
        SiteState::Offline,
        SiteState::Applying,
        SiteState::Pending,
        SiteState::NeverSeen,
        SiteState::Ready,
    ];
    let parts: Vec<String> = order
        .into_iter()
        .filter(|s| n(*s) > 0)
        .map(|s| format!("{s} {}", n(s)))
        .collect();
    let noun = if total == 1 { "site" } else { "sites" };
    format!("{total} {noun}: {}\n", parts.join(", "))
}

/// `sites list`: the fleet table and the counts line.
pub fn render_list(v: &Value) -> String {
    let now = time(v, "generatedAt");
    let rows = v["sites"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    vec![
                        text(s, "siteId"),
                        text(s, "region"),
                        text(s, "ring"),
                        text(s, "state"),
                        text(s, "deviceId"),
                        text(s, "appliedRevision"),
                        seen(s, now),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = table(
        &[
            "SITE",
            "REGION",
            "RING",
            "STATE",
            "DEVICE",
            "APPLIED",
            "LAST SEEN",
        ],
        rows,
    );
    out.push_str(&counts_line(&v["counts"]["total"]));
    out
}

/// `sites show`: the site, its labels, its devices and its history.
pub fn render_show(v: &Value) -> String {
    let s = &v["site"];
    let now = time(v, "generatedAt").or_else(|| Some(Utc::now()));
    let mut out = String::new();
    let kv = [
        ("site", text(s, "siteId")),
        ("state", text(s, "state")),
        ("region", text(s, "region")),
        ("ring", text(s, "ring")),
        ("device", text(s, "deviceId")),
        ("last seen", when(s, "lastSeen", now)),
        ("applied", text(s, "appliedRevision")),
        ("attempted", text(s, "attemptedRevision")),
        ("last error", text(s, "lastError")),
        (
            "offline after",
            format!("{} missed check-ins", text(s, "offlineAfterMissed")),
        ),
    ];
    for (k, val) in kv {
        out.push_str(&format!("{k:<14}{val}\n"));
    }
    if let Some(labels) = v["labels"].as_object() {
        let pairs: Vec<String> = labels
            .iter()
            .map(|(k, val)| format!("{k}={}", val.as_str().unwrap_or("")))
            .collect();
        out.push_str(&format!("{:<14}{}\n", "labels", pairs.join(" ")));
    }
    out.push_str("\nDevices\n");
    let devices = v["devices"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    vec![
                        text(d, "deviceId"),
                        text(d, "status"),
                        d["facts"]["serial"].as_str().unwrap_or("-").to_string(),
                        text(d, "registeredVia"),
                        text(d, "registeredAt"),
                        seen(d, now),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(
        &[
            "DEVICE",
            "STATUS",
            "SERIAL",
            "VIA",
            "REGISTERED",
            "LAST SEEN",
        ],
        devices,
    ));
    out.push_str("\nHistory (newest first)\n");
    let history = v["history"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    vec![
                        text(e, "at"),
                        text(e, "kind"),
                        text(e, "deviceId"),
                        text(e, "detail"),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(&["AT", "EVENT", "DEVICE", "DETAIL"], history));
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn ages() {
        let now = t("2026-11-22T12:00:00Z");
        for (then, want) in [
            ("2026-11-22T12:00:00Z", "0s"),
            ("2026-11-22T11:59:18Z", "42s"),
            ("2026-11-22T11:55:55Z", "4m05s"),
            ("2026-11-22T08:40:00Z", "3h20m"),
            ("2026-11-20T08:00:00Z", "2d4h"),
            ("2026-11-22T12:00:30Z", "0s"),
        ] {
            assert_eq!(age(now, t(then)), want, "{then}");
        }
    }

    #[test]
    fn counts_lines() {
        let rows = [
            (json!({}), "no sites match\n"),
            (json!({"ready": 1, "failed": 0}), "1 site: ready 1\n"),
            (
                json!({"ready": 3, "failed": 1, "offline": 0, "never-seen": 2, "pending": 0, "applying": 0}),
                "6 sites: failed 1, never-seen 2, ready 3\n",
            ),
        ];
        for (counts, want) in rows {
            assert_eq!(counts_line(&counts), want);
        }
    }

    #[test]
    fn list_table_has_state_and_counts() {
        let v = json!({
            "generatedAt": "2026-11-22T12:00:00Z",
            "counts": {"total": {"ready": 1, "never-seen": 1}},
            "sites": [
                {"siteId": "store-1", "state": "ready", "region": "eu-west", "ring": "broad",
                 "deviceId": "dev-1", "appliedRevision": "abc123", "lastSeen": "2026-11-22T11:59:00Z",
                 "offlineAfterMissed": 3},
                {"siteId": "store-2", "state": "never-seen", "region": "eu-west", "ring": "canary",
                 "offlineAfterMissed": 3}
            ]
        });
        assert_eq!(
            render_list(&v),
            "\
SITE     REGION   RING    STATE       DEVICE  APPLIED  LAST SEEN
store-1  eu-west  broad   ready       dev-1   abc123   1m00s ago
store-2  eu-west  canary  never-seen  -       -        -
2 sites: never-seen 1, ready 1
"
        );
    }

    #[test]
    fn show_has_state_revisions_error_devices_and_history() {
        let v = json!({
            "site": {"siteId": "store-1", "state": "failed", "region": "eu-west", "ring": "broad",
                     "deviceId": "dev-2", "lastSeen": "2026-11-22T11:59:00Z",
                     "appliedRevision": "rev1", "attemptedRevision": "rev2",
                     "lastError": "clusters/store-1: bad yaml", "offlineAfterMissed": 6},
            "labels": {"region": "eu-west", "site-id": "store-1"},
            "devices": [
                {"deviceId": "dev-2", "status": "active", "facts": {"serial": "SN-B"},
                 "registeredVia": "claim", "registeredAt": "2026-11-22T10:00:00Z"},
                {"deviceId": "dev-1", "status": "revoked", "facts": {"serial": "SN-A"},
                 "registeredVia": "token", "registeredAt": "2026-11-01T10:00:00Z"}
            ],
            "history": [
                {"at": "2026-11-22T11:00:00Z", "kind": "state-changed", "deviceId": "dev-2",
                 "detail": "state failed, applied rev1, attempted rev2"},
                {"at": "2026-11-22T10:00:00Z", "kind": "replaced", "deviceId": "dev-1",
                 "detail": "replaced by device dev-2 (via claim)"}
            ]
        });
        let out = render_show(&v);
        for line in [
            "state         failed\n",
            "attempted     rev2\n",
            "last error    clusters/store-1: bad yaml\n",
            "offline after 6 missed check-ins\n",
            "labels        region=eu-west site-id=store-1\n",
            "dev-1   revoked  SN-A    token",
            "2026-11-22T10:00:00Z  replaced       dev-1   replaced by device dev-2 (via claim)\n",
        ] {
            assert!(out.contains(line), "{line:?} in\n{out}");
        }
        assert!(out.find("state-changed") < out.find("replaced  "), "{out}");
    }
}
