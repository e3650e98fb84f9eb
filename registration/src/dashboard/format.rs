//! Small pure formatting rules of the dashboard: relative and absolute times, shortened
//! revisions and errors, and percent-encoding for the links it builds.

use chrono::{DateTime, Utc};

/// `2026-11-22 12:00:05 UTC`.
pub fn absolute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `just now`, `42 s ago`, `5 min ago`, `3 h ago`, `2 d ago`; `in 5 s` for clock skew.
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    if secs < 0 {
        return format!("in {} s", -secs);
    }
    match secs {
        0..=1 => "just now".into(),
        2..=119 => format!("{secs} s ago"),
        120..=7_199 => format!("{} min ago", secs / 60),
        7_200..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// At most `max` characters of `text`, with `…` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// A revision for a table cell: 40/64-hex commit ids shortened to 12 characters,
/// anything else (a tag, a branch) shortened to 24.
pub fn revision(rev: &str) -> String {
    let hex = rev.len() >= 40 && rev.bytes().all(|b| b.is_ascii_hexdigit());
    if hex {
        rev[..12].to_string()
    } else {
        shorten(rev, 24)
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for query values and
/// path segments).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/?region=..&ring=..&state=..` with only the given (non-empty) parameters; `/` if none.
pub fn query_href(params: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", encode(v)))
        })
        .collect();
    if parts.is_empty() {
        "/".into()
    } else {
        format!("/?{}", parts.join("&"))
    }
}

/// Whether `next` is a safe place to return to after login: a local absolute path, not a
/// scheme-relative URL or anything a browser could read as another origin.
pub fn is_local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 2048
        && next.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn relative_table() {
        let now = t("2026-11-22T12:00:00Z");
        let rows = [
            ("2026-11-22T12:00:00Z", "just now"),
            ("2026-11-22T11:59:58Z", "2 s ago"),
            ("2026-11-22T11:58:01Z", "119 s ago"),
            ("2026-11-22T11:58:00Z", "2 min ago"),
            ("2026-11-22T10:00:01Z", "119 min ago"),
            ("2026-11-22T10:00:00Z", "2 h ago"),
            ("2026-11-20T12:00:00Z", "2 d ago"),
            ("2026-11-22T12:00:05Z", "in 5 s"),
        ];
        for (then, want) in rows {
            assert_eq!(relative(t(then), now), want, "{then}");
        }
        assert_eq!(absolute(now), "2026-11-22 12:00:00 UTC");
    }

    #[test]
    fn text_table() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("äöüß", 3), "äö…");
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(revision(sha), "0123456789ab");
        assert_eq!(revision("v1.2.3"), "v1.2.3");
        assert_eq!(
            revision("release/2026-11-very-long-branch"),
            "release/2026-11-very-lo…"
        );
    }

    #[test]
    fn links_table() {
        assert_eq!(encode("eu-west_1.~"), "eu-west_1.~");
        assert_eq!(encode("a b&c=d/<>\"'"), "a%20b%26c%3Dd%2F%3C%3E%22%27");
        assert_eq!(encode("ü"), "%C3%BC");
        assert_eq!(query_href(&[("ring", None), ("state", Some(""))]), "/");
        assert_eq!(
            query_href(&[
                ("ring", Some("canary")),
                ("region", None),
                ("state", Some("failed"))
            ]),
            "/?ring=canary&state=failed"
        );
        let rows = [
            ("/", true),
            ("/sites/store-1?x=1", true),
            ("//evil.example/", false),
            ("/\\evil.example", false),
            ("https://evil.example/", false),
            ("", false),
            ("/a b", false),
            ("/\n", false),
        ];
        for (next, ok) in rows {
            assert_eq!(is_local_path(next), ok, "{next:?}");
        }
    }
}
