//! Rendering API answers: `-o json` prints the API's JSON; the default prints tables for
//! lists and key/value lines for single objects.

use serde_json::Value;

use super::args::{ClaimCmd, Command, Output, TokenCmd};

fn cell(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The text as a terminal QR code (two modules per character cell), or nothing.
pub fn qr(text: &str) -> String {
    use qrcode::render::unicode::Dense1x2;
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let mut s = code
                .render::<Dense1x2>()
                .dark_color(Dense1x2::Light)
                .light_color(Dense1x2::Dark)
                .quiet_zone(true)
                .build();
            s.push('\n');
            s
        }
        Err(_) => String::new(),
    }
}

/// Fixed-width table.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

fn rows(v: &Value, f: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    v.as_array()
        .map(|a| a.iter().map(f).collect())
        .unwrap_or_default()
}

fn key_values(v: &Value) -> String {
    let mut out = String::new();
    if let Some(map) = v.as_object() {
        for (k, val) in map {
            let shown = match val {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("{k}: {shown}\n"));
        }
    }
    out
}

/// Renders `value` for `cmd`.
pub fn render(cmd: &Command, value: &Value, output: Output) -> String {
    if output == Output::Json {
        return format!(
            "{}\n",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }
    use super::args::{DevicesCmd, PendingCmd, SitesCmd};
    match cmd {
        Command::Token(TokenCmd::Create { .. }) => {
            let info = &value["info"];
            format!(
                "token: {}\nid: {}\nsite: {}\nexpires: {}\n(shown once: hand it to the machine's bootstrap data, never to a log)\n",
                cell(value, "token"),
                cell(info, "tokenId"),
                cell(info, "siteId"),
                cell(info, "expiresAt")
            )
        }
        Command::Claim(ClaimCmd::Create { .. }) => format!(
            "claim code: {}\nsite: {}\nexpires: {}\n(shown once: give it to the field technician, or let them scan it)\n{}",
            cell(value, "code"),
            cell(value, "siteId"),
            cell(value, "expiresAt"),
            qr(&cell(value, "code"))
        ),
        Command::Sites(SitesCmd::List { .. }) => super::fleet::render_list(value),
        Command::Sites(SitesCmd::Show { .. }) => super::fleet::render_show(value),
        Command::Devices(DevicesCmd::List { .. }) => table(
            &["DEVICE", "SITE", "STATUS", "SERIAL", "VIA", "REGISTERED", "LAST SEEN"],
            rows(value, |d| {
                vec![
                    cell(d, "deviceId"),
                    cell(d, "siteId"),
                    cell(d, "status"),
                    d["facts"]["serial"].as_str().unwrap_or("-").to_string(),
                    cell(d, "registeredVia"),
                    cell(d, "registeredAt"),
                    cell(d, "lastSeen"),
                ]
            }),
        ),
        Command::Pending(PendingCmd::List) => table(
            &["PENDING", "BATCH", "SERIAL", "HOSTNAME", "REQUESTED"],
            rows(value, |p| {
                vec![
                    cell(p, "pendingId"),
                    cell(p, "batch"),
                    p["facts"]["serial"].as_str().unwrap_or("-").to_string(),
                    p["facts"]["hostname"].as_str().unwrap_or("-").to_string(),
                    cell(p, "requestedAt"),
                ]
            }),
        ),
        _ => key_values(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_codes_render_as_qr() {
        let q = qr("7KQ2-M9XD-4");
        assert!(q.lines().count() > 10, "{q}");
        assert!(q.contains('▀') || q.contains('▄') || q.contains('█'));
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "LONGER"],
            vec![vec!["xyz".into(), "1".into()], vec!["q".into(), "-".into()]],
        );
        assert_eq!(t, "A    LONGER\nxyz  1\nq    -\n");
    }
}
