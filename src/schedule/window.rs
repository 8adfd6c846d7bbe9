//! Off-peak hours: the local times of day in which daily syncs may run.
use jiff::civil::Time;

use super::rule::{ScheduleError, parse_hhmm};

/// Off-peak hours in the schedule's zone, parsed and checked from the spec's
/// [`crate::api::OffPeakWindow`]: `start` inclusive, `end` exclusive. When `end` is earlier than
/// `start` the window wraps midnight (20:00-06:00 is the evening plus the early morning).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffPeakHours {
    start: Time,
    end: Time,
}

impl OffPeakHours {
    /// A window from `start` (inclusive) to `end` (exclusive); they must differ, since an empty and
    /// a full window are both plausible readings of `start == end` and neither is a useful schedule.
    pub fn new(start: Time, end: Time) -> Result<OffPeakHours, ScheduleError> {
        if start == end {
            return Err(ScheduleError::EmptyWindow {
                at: format_hhmm(start),
            });
        }
        Ok(OffPeakHours { start, end })
    }

    /// First minute of the window.
    pub fn start(&self) -> Time {
        self.start
    }

    /// First minute after the window.
    pub fn end(&self) -> Time {
        self.end
    }

    /// Whether the window wraps midnight (e.g. 20:00-06:00).
    pub fn wraps_midnight(&self) -> bool {
        self.end < self.start
    }

    /// Whether a local time of day is off-peak.
    pub fn contains(&self, t: Time) -> bool {
        if self.wraps_midnight() {
            t >= self.start || t < self.end
        } else {
            t >= self.start && t < self.end
        }
    }
}

impl std::fmt::Display for OffPeakHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", format_hhmm(self.start), format_hhmm(self.end))
    }
}

impl TryFrom<&crate::api::OffPeakWindow> for OffPeakHours {
    type Error = ScheduleError;

    fn try_from(w: &crate::api::OffPeakWindow) -> Result<Self, Self::Error> {
        let start = parse_hhmm("offPeakWindow.start", &w.start)?;
        let end = parse_hhmm("offPeakWindow.end", &w.end)?;
        OffPeakHours::new(start, end)
    }
}

/// `HH:MM` of a time of day (seconds are never set by this module).
pub(crate) fn format_hhmm(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::time;

    fn window(start: &str, end: &str) -> OffPeakHours {
        let w = crate::api::OffPeakWindow {
            start: start.into(),
            end: end.into(),
        };
        OffPeakHours::try_from(&w).expect("valid window")
    }

    #[test]
    fn wrapping_window_includes_evening_and_early_morning() {
        let w = window("20:00", "06:00");
        assert!(w.wraps_midnight());
        for (h, m, inside) in [
            (19, 59, false),
            (20, 0, true),
            (23, 59, true),
            (0, 0, true),
            (3, 30, true),
            (5, 59, true),
            (6, 0, false),
            (12, 0, false),
        ] {
            assert_eq!(w.contains(time(h, m, 0, 0)), inside, "{h:02}:{m:02}");
        }
        // The last nanosecond before the end is still inside.
        assert!(w.contains(time(5, 59, 59, 999_999_999)));
    }

    #[test]
    fn plain_window_is_start_inclusive_end_exclusive() {
        let w = window("01:00", "05:30");
        assert!(!w.wraps_midnight());
        for (h, m, inside) in [
            (0, 59, false),
            (1, 0, true),
            (3, 0, true),
            (5, 29, true),
            (5, 30, false),
            (23, 0, false),
            (0, 0, false),
        ] {
            assert_eq!(w.contains(time(h, m, 0, 0)), inside, "{h:02}:{m:02}");
        }
    }

    #[test]
    fn window_starting_at_midnight_or_ending_at_midnight() {
        let w = window("00:00", "04:00");
        assert!(w.contains(time(0, 0, 0, 0)));
        assert!(!w.contains(time(23, 59, 0, 0)));
        let w = window("22:00", "00:00");
        assert!(w.wraps_midnight());
        assert!(w.contains(time(23, 59, 59, 0)));
        assert!(!w.contains(time(0, 0, 0, 0)));
    }

    #[test]
    fn empty_window_is_rejected_with_a_hint() {
        let w = crate::api::OffPeakWindow {
            start: "02:00".into(),
            end: "02:00".into(),
        };
        let err = OffPeakHours::try_from(&w).expect_err("empty window");
        assert_eq!(err, ScheduleError::EmptyWindow { at: "02:00".into() });
        assert!(err.to_string().contains("must differ"), "{err}");
    }

    #[test]
    fn displays_as_hhmm_range() {
        assert_eq!(window("20:00", "06:00").to_string(), "20:00-06:00");
    }
}
