//! Maintenance windows: when a site may move to a new revision.
//!
//! Syntax of the `maintenance-window` label (case-insensitive day names):
//!
//! ```text
//! always                                  any time (same as no label)
//! never                                   new revisions wait for a human to change the label
//! Mon-Fri 01:00-05:00 Europe/Berlin       weekdays, 01:00 to 05:00 Berlin time
//! daily 22:00-02:00 UTC                   every night; crosses midnight
//! Sat,Sun 00:00-24:00 America/New_York    whole weekend days
//! Mon,Wed-Fri 02:00-04:00 UTC; Sun 10:00-12:00 UTC   several windows, `;`-separated
//! ```
//!
//! Days name the day a window *starts* on: `Fri 22:00-02:00` runs from Friday 22:00 to
//! Saturday 02:00 local time. Start is inclusive, end exclusive, `24:00` means the end of
//! the day. The zone is an IANA name (or `UTC`), resolved from the system's tzdb.
//! Drift repair of the current revision ignores windows; only new revisions wait.

use jiff::tz::TimeZone;
use jiff::Timestamp;

#[cfg(test)]
mod tests;

/// A parsed maintenance window.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    /// Always open.
    Always,
    /// Never open.
    Never,
    /// Open during any of these spans.
    Spans(Vec<Span>),
}

/// One `<days> HH:MM-HH:MM <zone>` span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Days (Mon = index 0) on which the span starts.
    pub days: [bool; 7],
    /// Minutes after local midnight, inclusive.
    pub start: u16,
    /// Minutes after local midnight, exclusive (may be <= start: crosses midnight).
    pub end: u16,
    /// Zone the times are read in.
    pub zone: TimeZone,
}

/// Why a window label does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("maintenance-window {text:?}: {reason} (expected e.g. \"Mon-Fri 01:00-05:00 Europe/Berlin\", \"daily 22:00-02:00 UTC\" or \"always\")")]
pub struct WindowError {
    /// The label value.
    pub text: String,
    /// What is wrong.
    pub reason: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Window {
    /// Parses a label value; `None` (no label) means always open.
    pub fn parse(text: Option<&str>) -> Result<Window, WindowError> {
        let Some(raw) = text else {
            return Ok(Window::Always);
        };
        let err = |reason: String| WindowError {
            text: raw.to_string(),
            reason,
        };
        let trimmed = raw.trim();
        match trimmed.to_ascii_lowercase().as_str() {
            "" | "always" => return Ok(Window::Always),
            "never" => return Ok(Window::Never),
            _ => {}
        }
        let mut spans = Vec::new();
        for part in trimmed.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            spans.push(parse_span(part).map_err(err)?);
        }
        Ok(Window::Spans(spans))
    }

    /// True when a new revision may be applied at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        match self {
            Window::Always => true,
            Window::Never => false,
            Window::Spans(spans) => spans.iter().any(|s| s.is_open(now)),
        }
    }
}

impl Span {
    fn is_open(&self, now: Timestamp) -> bool {
        let local = now.to_zoned(self.zone.clone());
        let day = local.weekday().to_monday_zero_offset() as usize;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let yesterday = (day + 6) % 7;
        if self.start < self.end {
            self.days[day] && minute >= self.start && minute < self.end
        } else {
            // Crosses midnight: the evening part belongs to the start day, the early
            // morning part to the day after it.
            (self.days[day] && minute >= self.start) || (self.days[yesterday] && minute < self.end)
        }
    }
}

fn parse_span(part: &str) -> Result<Span, String> {
    let fields: Vec<&str> = part.split_whitespace().collect();
    let [days, times, zone] = fields[..] else {
        return Err(format!(
            "{part:?} must have three fields: days, HH:MM-HH:MM and a time zone"
        ));
    };
    let days = parse_days(days)?;
    let (start, end) = times
        .split_once('-')
        .ok_or_else(|| format!("{times:?} is not HH:MM-HH:MM"))?;
    let (start, end) = (parse_time(start)?, parse_time(end)?);
    if start == end {
        return Err(format!("{times:?} is empty: start and end are equal"));
    }
    if start == 24 * 60 {
        return Err("a window cannot start at 24:00".into());
    }
    let zone = if zone.eq_ignore_ascii_case("utc") {
        TimeZone::UTC
    } else {
        TimeZone::get(zone).map_err(|_| format!("unknown time zone {zone:?}"))?
    };
    Ok(Span {
        days,
        start,
        // 24:00 as an end means midnight; store as 1440 so start < end keeps holding.
        end,
        zone,
    })
}

fn parse_days(text: &str) -> Result<[bool; 7], String> {
    let lower = text.to_ascii_lowercase();
    if lower == "daily" || lower == "*" {
        return Ok([true; 7]);
    }
    let mut days = [false; 7];
    for item in lower.split(',') {
        let index = |d: &str| {
            DAYS.iter().position(|x| *x == d).ok_or_else(|| {
                format!("unknown day {d:?}: use Mon..Sun, ranges like Mon-Fri, or daily")
            })
        };
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (index(a)?, index(b)?);
                let mut i = a;
                loop {
                    days[i] = true;
                    if i == b {
                        break;
                    }
                    i = (i + 1) % 7;
                }
            }
            None => days[index(item)?] = true,
        }
    }
    Ok(days)
}

fn parse_time(text: &str) -> Result<u16, String> {
    let bad = || format!("{text:?} is not a time HH:MM (00:00-24:00)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}
