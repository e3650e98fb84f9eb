//! Table tests for window parsing and `is_open`.

use super::*;

fn at(rfc3339: &str) -> Timestamp {
    rfc3339.parse().unwrap()
}

#[test]
fn is_open_table() {
    // 2026-11-23 is a Monday; 2026-11-27 a Friday; Berlin is UTC+1 in November,
    // UTC+2 in July (2026-07-06 is a Monday).
    let cases: &[(&str, &str, bool)] = &[
        ("always", "2026-11-23T12:00:00Z", true),
        ("never", "2026-11-23T12:00:00Z", false),
        (
            "Mon-Fri 01:00-05:00 Europe/Berlin",
            "2026-11-23T00:00:00Z",
            true,
        ), // Mon 01:00 local
        (
            "Mon-Fri 01:00-05:00 Europe/Berlin",
            "2026-11-22T23:59:00Z",
            false,
        ), // Mon 00:59 local
        (
            "Mon-Fri 01:00-05:00 Europe/Berlin",
            "2026-11-23T04:00:00Z",
            false,
        ), // Mon 05:00 local (end exclusive)
        (
            "Mon-Fri 01:00-05:00 Europe/Berlin",
            "2026-11-23T03:59:00Z",
            true,
        ),
        (
            "Mon-Fri 01:00-05:00 Europe/Berlin",
            "2026-07-06T03:30:00Z",
            false,
        ), // summer: 05:30 local
        (
            "Mon-Fri 01:00-05:00 Europe/Berlin",
            "2026-07-06T02:30:00Z",
            true,
        ), // summer: 04:30 local
        (
            "Mon-Fri 01:00-05:00 Europe/Berlin",
            "2026-11-28T01:00:00Z",
            false,
        ), // Saturday
        ("daily 22:00-02:00 UTC", "2026-11-23T23:00:00Z", true),
        ("daily 22:00-02:00 UTC", "2026-11-24T01:59:00Z", true),
        ("daily 22:00-02:00 UTC", "2026-11-24T02:00:00Z", false),
        ("daily 22:00-02:00 UTC", "2026-11-23T21:59:00Z", false),
        ("Fri 22:00-02:00 UTC", "2026-11-28T01:00:00Z", true), // Saturday morning belongs to Friday
        ("Fri 22:00-02:00 UTC", "2026-11-27T01:00:00Z", false), // Friday morning belongs to Thursday
        ("Sat,Sun 00:00-24:00 UTC", "2026-11-29T23:59:00Z", true),
        ("Sat,Sun 00:00-24:00 UTC", "2026-11-30T00:00:00Z", false),
        ("Fri-Mon 10:00-11:00 UTC", "2026-11-29T10:30:00Z", true), // wrapping day range (Sun)
        ("Fri-Mon 10:00-11:00 UTC", "2026-11-25T10:30:00Z", false), // Wed
        (
            "mon 10:00-11:00 utc; wed 10:00-11:00 utc",
            "2026-11-25T10:30:00Z",
            true,
        ),
    ];
    for (text, now, open) in cases {
        let w = Window::parse(Some(text)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.is_open(at(now)), *open, "{text} at {now}");
    }
    assert!(Window::parse(None)
        .unwrap()
        .is_open(at("2026-11-23T12:00:00Z")));
}

#[test]
fn parse_errors_table() {
    let cases: &[(&str, &str)] = &[
        ("Mon-Fri 01:00-05:00", "three fields"),
        ("Mon-Fry 01:00-05:00 UTC", "unknown day \"fry\""),
        ("daily 1:00-25:00 UTC", "\"25:00\" is not a time"),
        ("daily 01:00-01:00 UTC", "start and end are equal"),
        ("daily 01:00 UTC", "is not HH:MM-HH:MM"),
        ("daily 01:00-02:00 Mars/Olympus", "unknown time zone"),
        ("daily 24:00-02:00 UTC", "cannot start at 24:00"),
        ("daily 01:60-02:00 UTC", "is not a time"),
    ];
    for (text, reason) in cases {
        let err = Window::parse(Some(text)).unwrap_err();
        assert!(err.reason.contains(reason), "{text}: {err}");
        assert!(err.to_string().starts_with("maintenance-window"));
    }
}
