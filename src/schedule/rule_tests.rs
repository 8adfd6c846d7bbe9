//! Unit tests of `ScheduleRule`: what a spec may say, and the errors for what it may not.
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
        slot_jitter_seconds: None,
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
    let e =
        ScheduleRule::from_spec(&spec(Frequency::Daily, "14:00", "UTC")).expect_err("peak hours");
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
    let rule =
        ScheduleRule::from_spec(&spec(Frequency::Daily, "02:00", "America/Chicago")).expect("rule");
    // 2026-01-15 01:30Z is 19:30 CST (peak); 02:00Z is 20:00 CST (off-peak); 12:00Z is 06:00 CST.
    let at = |s: &str| s.parse::<jiff::Timestamp>().expect("timestamp");
    assert!(!rule.is_off_peak_at(at("2026-01-15T01:30:00Z")));
    assert!(rule.is_off_peak_at(at("2026-01-15T02:00:00Z")));
    assert!(rule.is_off_peak_at(at("2026-01-15T11:59:00Z")));
    assert!(!rule.is_off_peak_at(at("2026-01-15T12:00:00Z")));
}
