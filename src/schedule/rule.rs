//! `ScheduleRule`: a `SyncScheduleSpec` checked once, so the slot math never meets bad input.
use jiff::SignedDuration;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;

use super::window::{OffPeakHours, format_hhmm};
use crate::api::{Frequency, SyncScheduleSpec};

/// Why a schedule cannot be used, each with what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "unknown time zone {name:?} in timeZone: use an IANA name such as America/Chicago, \
         Europe/Berlin or UTC"
    )]
    UnknownTimeZone { name: String },
    #[error(
        "{field} is {value:?}, expected a 24-hour time HH:MM (00:00 to 23:59), for example 02:30"
    )]
    InvalidTime { field: &'static str, value: String },
    #[error(
        "offPeakWindow start and end are both {at}: they must differ (for example 20:00 to 06:00; \
         the window may wrap midnight)"
    )]
    EmptyWindow { at: String },
    #[error("dayOfWeek is required when frequency is Weekly (for example dayOfWeek: Sunday)")]
    MissingDayOfWeek,
    #[error(
        "dayOfWeek is only allowed when frequency is Weekly; remove it or set frequency: Weekly"
    )]
    DayOfWeekNotAllowed,
    #[error(
        "dayOfMonth is required when frequency is Monthly (1 to 31; 31 means the month's last day)"
    )]
    MissingDayOfMonth,
    #[error(
        "dayOfMonth is only allowed when frequency is Monthly; remove it or set frequency: Monthly"
    )]
    DayOfMonthNotAllowed,
    #[error(
        "dayOfMonth is {day}, expected 1 to 31 (in shorter months the sync runs on the last day)"
    )]
    DayOfMonthOutOfRange { day: i32 },
    #[error(
        "daily syncs run only in off-peak hours: at {at} is outside offPeakWindow {window} (start \
         inclusive, end exclusive); choose a time inside the window or change the window"
    )]
    AtOutsideOffPeakWindow { at: String, window: String },
    #[error(
        "startingDeadlineMinutes is {minutes}, expected at least 1 (a missed slot still runs if at \
         most that many minutes late)"
    )]
    StartingDeadlineTooSmall { minutes: i32 },
}

/// How often and on which day a schedule has a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cadence {
    /// Every day.
    Daily,
    /// Every week on this day.
    Weekly(Weekday),
    /// Every month on this day (1 to 31), or on the month's last day when it is shorter.
    Monthly(u8),
}

impl std::fmt::Display for Cadence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cadence::Daily => f.write_str("Daily"),
            Cadence::Weekly(day) => write!(f, "Weekly on {day:?}"),
            Cadence::Monthly(day) => write!(f, "Monthly on day {day} (or the month's last day)"),
        }
    }
}

/// A validated schedule: cadence, local time of day, zone, off-peak window and starting deadline.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleRule {
    pub(super) cadence: Cadence,
    pub(super) at: Time,
    pub(super) tz: TimeZone,
    pub(super) tz_name: String,
    pub(super) window: OffPeakHours,
    pub(super) starting_deadline: SignedDuration,
}

impl ScheduleRule {
    /// Validates a spec. `suspend` is not part of the rule: pass it to [`super::decide`] and
    /// [`super::sync_now_availability`], which can then still compute slots while suspended.
    pub fn from_spec(spec: &SyncScheduleSpec) -> Result<ScheduleRule, ScheduleError> {
        let tz = TimeZone::get(&spec.time_zone).map_err(|_| ScheduleError::UnknownTimeZone {
            name: spec.time_zone.clone(),
        })?;
        let at = parse_hhmm("at", &spec.at)?;
        let window = OffPeakHours::try_from(&spec.off_peak_window)?;
        let cadence = match spec.frequency {
            Frequency::Daily => {
                check_no_day_of_week(spec)?;
                check_no_day_of_month(spec)?;
                if !window.contains(at) {
                    return Err(ScheduleError::AtOutsideOffPeakWindow {
                        at: format_hhmm(at),
                        window: window.to_string(),
                    });
                }
                Cadence::Daily
            }
            Frequency::Weekly => {
                check_no_day_of_month(spec)?;
                let day = spec.day_of_week.ok_or(ScheduleError::MissingDayOfWeek)?;
                Cadence::Weekly(day.to_jiff())
            }
            Frequency::Monthly => {
                check_no_day_of_week(spec)?;
                let day = spec.day_of_month.ok_or(ScheduleError::MissingDayOfMonth)?;
                match u8::try_from(day) {
                    Ok(day @ 1..=31) => Cadence::Monthly(day),
                    _ => return Err(ScheduleError::DayOfMonthOutOfRange { day }),
                }
            }
        };
        if spec.starting_deadline_minutes < 1 {
            return Err(ScheduleError::StartingDeadlineTooSmall {
                minutes: spec.starting_deadline_minutes,
            });
        }
        Ok(ScheduleRule {
            cadence,
            at,
            tz,
            tz_name: spec.time_zone.clone(),
            window,
            starting_deadline: SignedDuration::from_mins(i64::from(spec.starting_deadline_minutes)),
        })
    }

    /// Daily, weekly on a day, or monthly on a day.
    pub fn cadence(&self) -> Cadence {
        self.cadence
    }

    /// The local time of day of each slot.
    pub fn at(&self) -> Time {
        self.at
    }

    /// The schedule's time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The IANA name of the time zone, as written in the spec.
    pub fn time_zone_name(&self) -> &str {
        &self.tz_name
    }

    /// The off-peak window (enforced for Daily schedules only).
    pub fn off_peak_window(&self) -> OffPeakHours {
        self.window
    }

    /// How late a slot may still run (`startingDeadlineMinutes`).
    pub fn starting_deadline(&self) -> SignedDuration {
        self.starting_deadline
    }

    /// Whether the wall clock in the schedule's zone is within the off-peak window at `t`.
    pub fn is_off_peak_at(&self, t: jiff::Timestamp) -> bool {
        self.window.contains(t.to_zoned(self.tz.clone()).time())
    }
}

impl TryFrom<&SyncScheduleSpec> for ScheduleRule {
    type Error = ScheduleError;

    fn try_from(spec: &SyncScheduleSpec) -> Result<Self, Self::Error> {
        ScheduleRule::from_spec(spec)
    }
}

fn check_no_day_of_week(spec: &SyncScheduleSpec) -> Result<(), ScheduleError> {
    match spec.day_of_week {
        Some(_) => Err(ScheduleError::DayOfWeekNotAllowed),
        None => Ok(()),
    }
}

fn check_no_day_of_month(spec: &SyncScheduleSpec) -> Result<(), ScheduleError> {
    match spec.day_of_month {
        Some(_) => Err(ScheduleError::DayOfMonthNotAllowed),
        None => Ok(()),
    }
}

/// Parses a strict 24-hour `HH:MM` (two digits each, 00:00 to 23:59); `field` names it in the error.
pub fn parse_hhmm(field: &'static str, value: &str) -> Result<Time, ScheduleError> {
    let invalid = || ScheduleError::InvalidTime {
        field,
        value: value.to_string(),
    };
    let bytes = value.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return Err(invalid());
    }
    let two_digits = |hi: u8, lo: u8| -> Option<i8> {
        (hi.is_ascii_digit() && lo.is_ascii_digit()).then(|| ((hi - b'0') * 10 + (lo - b'0')) as i8)
    };
    let hour = two_digits(bytes[0], bytes[1]).ok_or_else(invalid)?;
    let minute = two_digits(bytes[3], bytes[4]).ok_or_else(invalid)?;
    Time::new(hour, minute, 0, 0).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DayOfWeek, LocalObjectReference};
    use jiff::civil::time;

    fn spec(frequency: Frequency, at: &str, tz: &str) -> SyncScheduleSpec {
        SyncScheduleSpec {
            connection_ref: LocalObjectReference {
                name: "district".into(),
            },
            suspend: false,
            frequency,
            at: at.into(),
            day_of_week: None,
            day_of_month: None,
            time_zone: tz.into(),
            off_peak_window: Default::default(),
            starting_deadline_minutes: 120,
            job: Default::default(),
            history: Default::default(),
        }
    }

    #[test]
    fn parses_strict_hhmm() {
        assert_eq!(parse_hhmm("at", "00:00"), Ok(time(0, 0, 0, 0)));
        assert_eq!(parse_hhmm("at", "02:30"), Ok(time(2, 30, 0, 0)));
        assert_eq!(parse_hhmm("at", "23:59"), Ok(time(23, 59, 0, 0)));
        for bad in [
            "24:00",
            "2:30",
            "02:60",
            "0230",
            "02:3a",
            "+2:30",
            "02:30:00",
            "",
            "٠٢:٣٠",
            "aa:bb",
        ] {
            let err = parse_hhmm("at", bad).expect_err(bad);
            assert_eq!(
                err,
                ScheduleError::InvalidTime {
                    field: "at",
                    value: bad.into()
                }
            );
        }
        let msg = parse_hhmm("offPeakWindow.end", "6:00")
            .expect_err("bad")
            .to_string();
        assert_eq!(
            msg,
            "offPeakWindow.end is \"6:00\", expected a 24-hour time HH:MM (00:00 to 23:59), for example 02:30"
        );
    }

    #[test]
    fn accepts_valid_specs_of_each_frequency() {
        let daily = ScheduleRule::from_spec(&spec(Frequency::Daily, "02:00", "America/Chicago"))
            .expect("daily");
        assert_eq!(daily.cadence(), Cadence::Daily);
        assert_eq!(daily.at(), time(2, 0, 0, 0));
        assert_eq!(daily.time_zone_name(), "America/Chicago");
        assert_eq!(daily.starting_deadline(), SignedDuration::from_mins(120));

        let mut weekly = spec(Frequency::Weekly, "14:00", "Europe/Berlin");
        weekly.day_of_week = Some(DayOfWeek::Sunday);
        assert_eq!(
            ScheduleRule::try_from(&weekly).map(|r| r.cadence()),
            Ok(Cadence::Weekly(Weekday::Sunday))
        );

        let mut monthly = spec(Frequency::Monthly, "12:00", "UTC");
        monthly.day_of_month = Some(31);
        assert_eq!(
            ScheduleRule::try_from(&monthly).map(|r| r.cadence()),
            Ok(Cadence::Monthly(31))
        );
    }

    #[test]
    fn rejects_each_mistake_with_its_own_error() {
        let err = |s: SyncScheduleSpec| ScheduleRule::from_spec(&s).expect_err("invalid spec");

        let s = spec(Frequency::Daily, "02:00", "America/Chicag");
        assert_eq!(
            err(s),
            ScheduleError::UnknownTimeZone {
                name: "America/Chicag".into()
            }
        );
        let s = spec(Frequency::Daily, "2am", "UTC");
        assert_eq!(
            err(s),
            ScheduleError::InvalidTime {
                field: "at",
                value: "2am".into()
            }
        );

        let mut s = spec(Frequency::Daily, "02:00", "UTC");
        s.off_peak_window.start = "25:00".into();
        assert_eq!(
            err(s),
            ScheduleError::InvalidTime {
                field: "offPeakWindow.start",
                value: "25:00".into()
            }
        );
        let mut s = spec(Frequency::Daily, "02:00", "UTC");
        s.off_peak_window = crate::api::OffPeakWindow {
            start: "01:00".into(),
            end: "01:00".into(),
        };
        assert_eq!(err(s), ScheduleError::EmptyWindow { at: "01:00".into() });

        assert_eq!(
            err(spec(Frequency::Weekly, "02:00", "UTC")),
            ScheduleError::MissingDayOfWeek
        );
        assert_eq!(
            err(spec(Frequency::Monthly, "02:00", "UTC")),
            ScheduleError::MissingDayOfMonth
        );
        let mut s = spec(Frequency::Daily, "02:00", "UTC");
        s.day_of_week = Some(DayOfWeek::Monday);
        assert_eq!(err(s), ScheduleError::DayOfWeekNotAllowed);
        let mut s = spec(Frequency::Monthly, "02:00", "UTC");
        s.day_of_month = Some(1);
        s.day_of_week = Some(DayOfWeek::Monday);
        assert_eq!(err(s), ScheduleError::DayOfWeekNotAllowed);
        let mut s = spec(Frequency::Weekly, "02:00", "UTC");
        s.day_of_week = Some(DayOfWeek::Monday);
        s.day_of_month = Some(1);
        assert_eq!(err(s), ScheduleError::DayOfMonthNotAllowed);
        for day in [0, 32, 255, -1, i32::MAX] {
            let mut s = spec(Frequency::Monthly, "02:00", "UTC");
            s.day_of_month = Some(day);
            assert_eq!(err(s), ScheduleError::DayOfMonthOutOfRange { day });
        }
        let mut s = spec(Frequency::Daily, "02:00", "UTC");
        s.starting_deadline_minutes = 0;
        assert_eq!(
            err(s),
            ScheduleError::StartingDeadlineTooSmall { minutes: 0 }
        );
        let mut s = spec(Frequency::Daily, "02:00", "UTC");
        s.starting_deadline_minutes = -5;
        assert_eq!(
            err(s),
            ScheduleError::StartingDeadlineTooSmall { minutes: -5 }
        );
    }

    #[test]
    fn daily_outside_off_peak_window_says_why() {
        let e = ScheduleRule::from_spec(&spec(Frequency::Daily, "14:00", "UTC"))
            .expect_err("peak hours");
        assert_eq!(
            e,
            ScheduleError::AtOutsideOffPeakWindow {
                at: "14:00".into(),
                window: "20:00-06:00".into()
            }
        );
        assert!(
            e.to_string()
                .starts_with("daily syncs run only in off-peak hours: at 14:00 is outside"),
            "{e}"
        );
        // The window end is exclusive, the start inclusive.
        assert!(ScheduleRule::from_spec(&spec(Frequency::Daily, "06:00", "UTC")).is_err());
        assert!(ScheduleRule::from_spec(&spec(Frequency::Daily, "20:00", "UTC")).is_ok());
        // Weekly and monthly syncs may run at peak hours.
        let mut s = spec(Frequency::Weekly, "14:00", "UTC");
        s.day_of_week = Some(DayOfWeek::Saturday);
        assert!(ScheduleRule::from_spec(&s).is_ok());
    }

    #[test]
    fn off_peak_check_of_an_instant_uses_the_schedule_zone() {
        let rule = ScheduleRule::from_spec(&spec(Frequency::Daily, "02:00", "America/Chicago"))
            .expect("rule");
        // 2026-01-15 01:30Z is 19:30 CST (peak); 02:00Z is 20:00 CST (off-peak); 12:00Z is 06:00 CST.
        let at = |s: &str| s.parse::<jiff::Timestamp>().expect("timestamp");
        assert!(!rule.is_off_peak_at(at("2026-01-15T01:30:00Z")));
        assert!(rule.is_off_peak_at(at("2026-01-15T02:00:00Z")));
        assert!(rule.is_off_peak_at(at("2026-01-15T11:59:00Z")));
        assert!(!rule.is_off_peak_at(at("2026-01-15T12:00:00Z")));
    }
}
