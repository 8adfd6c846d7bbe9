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
    /// The schedule's jitter offset (see [`super::jitter`]); zero unless [`Self::with_jitter`].
    pub(super) jitter: SignedDuration,
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
            jitter: SignedDuration::ZERO,
        })
    }

    /// The same rule with every slot delayed by `offset` (see [`super::jitter`]: cut short at the
    /// off-peak window's end and at local midnight), e.g. from [`super::jitter_offset`].
    pub fn with_jitter(mut self, offset: SignedDuration) -> ScheduleRule {
        self.jitter = offset
            .max(SignedDuration::ZERO)
            .min(super::jitter::MAX_SLOT_JITTER);
        self
    }

    /// The rule of a schedule named `identity` (`namespace/name`): `spec.slotJitterSeconds`, else
    /// `default_jitter_seconds` (the operator's `--slot-jitter-seconds`), gives the jitter window.
    pub fn for_schedule(
        spec: &SyncScheduleSpec,
        identity: &str,
        default_jitter_seconds: u32,
    ) -> Result<ScheduleRule, ScheduleError> {
        let max = spec
            .slot_jitter_seconds
            .map_or(default_jitter_seconds, |s| u32::try_from(s).unwrap_or(0));
        Ok(ScheduleRule::from_spec(spec)?.with_jitter(super::jitter::jitter_offset(identity, max)))
    }

    /// The jitter offset asked for (each slot's own is at most this, see [`Self::slot_offset`]).
    pub fn jitter(&self) -> SignedDuration {
        self.jitter
    }

    /// How far the (effective) slot `slot` lies after its nominal time: the jitter it got.
    pub fn slot_offset(&self, slot: jiff::Timestamp) -> SignedDuration {
        if self.jitter.is_zero() {
            return SignedDuration::ZERO;
        }
        let nominal = self.clone().with_jitter(SignedDuration::ZERO);
        nominal
            .latest_slot_at_or_before(slot)
            .map_or(SignedDuration::ZERO, |n| slot.duration_since(n))
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
#[path = "rule_tests.rs"]
mod tests;
