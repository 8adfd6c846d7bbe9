//! Slots: the instants at which a schedule is due.
//!
//! A slot belongs to a local date (every date for Daily, one weekday a week for Weekly, one day a
//! month for Monthly, clamped to the month's last day) and sits at `at` on that date in the zone:
//! - in a spring-forward gap (the local time does not exist) at the first instant after the gap,
//!   e.g. 02:30 on 2026-03-08 in America/Chicago is 03:00 CDT (jiff's `compatible` would give 03:30);
//! - in a fall-back repeat (the local time exists twice) at its first occurrence only;
//! - for Daily, a slot that a gap pushes onto the next local date (a skipped day, or a gap across
//!   midnight) is dropped, so a Daily schedule never has two slots on one local date.
//!
//! Local date-times map to instants monotonically, so slots increase strictly with their dates,
//! and `next_slot_after`/`latest_slot_at_or_before` only walk a few candidate dates.
use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::AmbiguousOffset;

use super::jitter::clamp_offset;
use super::rule::{Cadence, ScheduleRule};

/// Candidate dates are walked from two days before/after the instant's local date (a gap is at
/// most a day long, so no slot from further away can be closer); this bounds the walk.
const DATE_MARGIN_DAYS: i64 = 2;
const MAX_CANDIDATES: usize = 16;

impl ScheduleRule {
    /// The first slot strictly after `t`. Saturates at [`Timestamp::MAX`] at the very end of the
    /// supported range (year 9999), the only case in which there is no next slot.
    pub fn next_slot_after(&self, t: Timestamp) -> Timestamp {
        self.try_next_slot_after(t).unwrap_or(Timestamp::MAX)
    }

    /// The latest slot at or before `t` (`None` only at the very start of the supported range).
    pub fn latest_slot_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let mut date = shift_days(self.local_date(t), DATE_MARGIN_DAYS)?;
        for _ in 0..MAX_CANDIDATES {
            let candidate = self.candidate_on_or_before(date)?;
            if let Some(slot) = self.slot_on(candidate)
                && slot <= t
            {
                return Some(slot);
            }
            date = candidate.yesterday().ok()?;
        }
        None
    }

    /// The slots strictly after `t`, in order (what `schedule preview` lists).
    pub fn slots_after(&self, t: Timestamp) -> impl Iterator<Item = Timestamp> + '_ {
        let mut cursor = t;
        std::iter::from_fn(move || {
            let next = self.try_next_slot_after(cursor)?;
            cursor = next;
            Some(next)
        })
    }

    /// The slot of a candidate date: `at` on that date, resolved in the zone as described above.
    /// `None` for a Daily slot pushed onto another date (or outside the supported range).
    /// With jitter, the slot is the nominal one plus the jitter (see [`super::jitter`]).
    pub fn slot_on(&self, date: Date) -> Option<Timestamp> {
        let slot = resolve_first_after_gap(&self.tz, date.to_datetime(self.at))?;
        if self.cadence == Cadence::Daily && self.local_date(slot) != date {
            return None;
        }
        if self.jitter.is_zero() {
            return Some(slot);
        }
        let offset = clamp_offset(slot, self.jitter, self.jitter_limit(slot));
        slot.checked_add(offset).ok()
    }

    /// The first instant a jittered slot may not reach: the earlier of the next local midnight
    /// after the nominal slot and the end of the off-peak window containing it (if it is in one).
    fn jitter_limit(&self, nominal: Timestamp) -> Option<Timestamp> {
        let local = self.tz.to_datetime(nominal);
        let (date, time) = (local.date(), local.time());
        let next_day = date.tomorrow().ok()?;
        let midnight = resolve_first_after_gap(&self.tz, next_day.to_datetime(Time::midnight()));
        let window_end = if self.window.contains(time) {
            let end_date = if self.window.end() > time {
                date
            } else {
                next_day
            };
            resolve_first_after_gap(&self.tz, end_date.to_datetime(self.window.end()))
        } else {
            None
        };
        match (midnight, window_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn try_next_slot_after(&self, t: Timestamp) -> Option<Timestamp> {
        let mut date = shift_days(self.local_date(t), -DATE_MARGIN_DAYS)?;
        for _ in 0..MAX_CANDIDATES {
            let candidate = self.candidate_on_or_after(date)?;
            if let Some(slot) = self.slot_on(candidate)
                && slot > t
            {
                return Some(slot);
            }
            date = candidate.tomorrow().ok()?;
        }
        None
    }

    fn local_date(&self, t: Timestamp) -> Date {
        self.tz.to_datetime(t).date()
    }

    /// The first date on or after `d` that has a slot.
    fn candidate_on_or_after(&self, d: Date) -> Option<Date> {
        match self.cadence {
            Cadence::Daily => Some(d),
            Cadence::Weekly(day) => shift_days(d, i64::from(d.weekday().until(day))),
            Cadence::Monthly(day) => {
                let this_month = clamp_day(d, day);
                if this_month >= d {
                    Some(this_month)
                } else {
                    Some(clamp_day(d.last_of_month().tomorrow().ok()?, day))
                }
            }
        }
    }

    /// The last date on or before `d` that has a slot.
    fn candidate_on_or_before(&self, d: Date) -> Option<Date> {
        match self.cadence {
            Cadence::Daily => Some(d),
            Cadence::Weekly(day) => shift_days(d, -i64::from(day.until(d.weekday()))),
            Cadence::Monthly(day) => {
                let this_month = clamp_day(d, day);
                if this_month <= d {
                    Some(this_month)
                } else {
                    Some(clamp_day(d.first_of_month().yesterday().ok()?, day))
                }
            }
        }
    }
}

/// Resolves a local date-time in `tz`: unambiguous as is, the first occurrence in a fold, and the
/// first instant after the gap (the transition itself) in a gap.
pub(crate) fn resolve_first_after_gap(tz: &jiff::tz::TimeZone, dt: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok(),
        AmbiguousOffset::Gap { after, .. } => {
            // The transition T satisfies T + before <= dt < T + after, i.e. dt - after < T: it is
            // the first transition strictly after dt read with the later offset.
            let probe = after.to_timestamp(dt).ok()?;
            tz.following(probe)
                .next()
                .map(|transition| transition.timestamp())
        }
    }
}

/// Day `day` of `d`'s month, or the month's last day when the month is shorter.
fn clamp_day(d: Date, day: u8) -> Date {
    let last = d.days_in_month();
    let day = i8::try_from(day).unwrap_or(i8::MAX).min(last);
    // Cannot fail: 1 <= day <= days in this month (day is validated to be at least 1).
    Date::new(d.year(), d.month(), day.max(1)).unwrap_or(d)
}

fn shift_days(d: Date, days: i64) -> Option<Date> {
    d.checked_add(jiff::Span::new().try_days(days).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use jiff::tz::TimeZone;

    #[test]
    fn gap_resolves_to_the_transition_not_compatible() {
        let tz = TimeZone::get("America/Chicago").expect("zone");
        let dt = date(2026, 3, 8).at(2, 30, 0, 0);
        assert_eq!(
            resolve_first_after_gap(&tz, dt),
            Some("2026-03-08T08:00:00Z".parse().expect("ts"))
        );
        // jiff's compatible disambiguation would shift by the gap's length instead.
        let compatible = tz
            .to_ambiguous_timestamp(dt)
            .compatible()
            .expect("compatible");
        assert_eq!(
            compatible,
            "2026-03-08T08:30:00Z".parse::<Timestamp>().expect("ts")
        );
    }

    #[test]
    fn fold_resolves_to_the_first_occurrence() {
        let tz = TimeZone::get("America/Chicago").expect("zone");
        let dt = date(2026, 11, 1).at(1, 30, 0, 0);
        assert_eq!(
            resolve_first_after_gap(&tz, dt),
            Some("2026-11-01T06:30:00Z".parse().expect("ts"))
        );
    }

    #[test]
    fn clamps_to_the_month_end() {
        assert_eq!(clamp_day(date(2027, 2, 10), 31), date(2027, 2, 28));
        assert_eq!(clamp_day(date(2028, 2, 10), 31), date(2028, 2, 29));
        assert_eq!(clamp_day(date(2028, 2, 10), 30), date(2028, 2, 29));
        assert_eq!(clamp_day(date(2026, 4, 1), 31), date(2026, 4, 30));
        assert_eq!(clamp_day(date(2026, 5, 1), 31), date(2026, 5, 31));
        assert_eq!(clamp_day(date(2026, 5, 31), 1), date(2026, 5, 1));
    }
}
