//! The one time-format policy of both binaries.
//!
//! - Tables (`-o table`): relative times, `5m ago` / `in 3h`.
//! - Wide tables (`-o wide`) and messages: absolute RFC 3339, in the viewer's time zone (`TZ`, else
//!   the system's), or in UTC with `--utc`.
//! - JSON, YAML and CSV: absolute RFC 3339 in UTC (`2026-01-05T10:02:30Z`), whatever the viewer's
//!   zone, so that the shapes are stable for scripts.
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// How absolute times are shown to a person: in a zone, relative to `now`.
#[derive(Clone, Debug)]
pub struct TimePolicy {
    /// The zone absolute times are shown in (UTC with `--utc`).
    pub zone: TimeZone,
    /// "Now", for relative times (fixed per command, so one output is consistent).
    pub now: Timestamp,
}

impl TimePolicy {
    /// The viewer's zone (`TZ`, else the system's; UTC if unknown), or UTC when `utc`.
    pub fn new(utc: bool) -> TimePolicy {
        let zone = if utc {
            TimeZone::UTC
        } else {
            TimeZone::try_system().unwrap_or(TimeZone::UTC)
        };
        TimePolicy {
            zone,
            now: Timestamp::now(),
        }
    }

    /// UTC, at `now` (for tests and machine output).
    pub fn utc_at(now: Timestamp) -> TimePolicy {
        TimePolicy {
            zone: TimeZone::UTC,
            now,
        }
    }

    /// `5m ago` or `in 3h`.
    pub fn relative(&self, t: Timestamp) -> String {
        relative(t, self.now)
    }

    /// RFC 3339 in the policy's zone, to the second: `2026-01-05T04:02:30-06:00`, or `...Z` in UTC.
    pub fn absolute(&self, t: Timestamp) -> String {
        if self.zone == TimeZone::UTC {
            return rfc3339_utc(t);
        }
        let zoned = t.to_zoned(self.zone.clone());
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }

    /// Absolute and relative: `2026-01-05T04:02:30-06:00 (5m ago)`.
    pub fn both(&self, t: Timestamp) -> String {
        format!("{} ({})", self.absolute(t), self.relative(t))
    }
}

/// RFC 3339 in UTC, to the second: `2026-01-05T10:02:30Z` (machine output).
pub fn rfc3339_utc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `5m ago` or `in 3h` relative to `now`.
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let secs = t.as_second() - now.as_second();
    if secs >= 0 {
        format!("in {}", format_duration(secs))
    } else {
        format!("{} ago", format_duration(secs))
    }
}

/// A compact duration: `45s`, `12m`, `3h5m`, `2d4h`.
pub fn format_duration(secs: i64) -> String {
    let secs = secs.abs();
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => {
            let m = (s % 3600) / 60;
            if m == 0 {
                format!("{}h", s / 3600)
            } else {
                format!("{}h{m}m", s / 3600)
            }
        }
        s => {
            let h = (s % 86_400) / 3600;
            if h == 0 {
                format!("{}d", s / 86_400)
            } else {
                format!("{}d{h}h", s / 86_400)
            }
        }
    }
}

/// Elapsed time with one decimal under a minute (`4.2s`), else compact (`2m`), for progress lines.
pub fn format_elapsed(d: Duration) -> String {
    if d.as_secs() < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format_duration(d.as_secs() as i64)
    }
}

/// Parses `30s`, `10m`, `1h30m`, `2h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: use e.g. 30s, 10m or 1h30m"
                ));
            }
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: a number must precede {c:?}"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(format!(
            "invalid duration {s:?}: use e.g. 30s, 10m or 1h30m"
        ));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(format_duration(45), "45s");
        assert_eq!(format_duration(600), "10m");
        assert_eq!(format_duration(3600 + 300), "1h5m");
        assert_eq!(format_duration(86_400 * 2 + 3600 * 4), "2d4h");
        assert_eq!(format_elapsed(Duration::from_millis(4200)), "4.2s");
        assert_eq!(format_elapsed(Duration::from_secs(150)), "2m");
    }

    #[test]
    fn relative_and_absolute_in_a_zone_or_utc() {
        let now: Timestamp = "2026-01-05T10:00:00Z".parse().expect("ts");
        let t: Timestamp = "2026-01-05T12:00:00Z".parse().expect("ts");
        let utc = TimePolicy::utc_at(now);
        assert_eq!(utc.relative(t), "in 2h");
        assert_eq!(relative(now, t), "2h ago");
        assert_eq!(utc.absolute(t), "2026-01-05T12:00:00Z");
        assert_eq!(utc.both(t), "2026-01-05T12:00:00Z (in 2h)");
        let chicago = TimePolicy {
            zone: TimeZone::get("America/Chicago").expect("tz"),
            now,
        };
        assert_eq!(chicago.absolute(t), "2026-01-05T06:00:00-06:00");
        // Either form parses back to the same instant.
        let back: Timestamp = chicago.absolute(t).parse().expect("rfc3339");
        assert_eq!(back, t);
    }
}
