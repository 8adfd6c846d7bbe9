//! Table tests of the schedule engine: exact instants across DST, month ends and zones, outages
//! and catch-up decisions. (Sync Now has its own file, `schedule_sync_now.rs`.)
use jiff::Timestamp;
use rostersync::api::{
    DayOfWeek, Frequency, LocalObjectReference, OffPeakWindow, SyncScheduleSpec,
};
use rostersync::schedule::ScheduleRule;

fn ts(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
}

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
        off_peak_window: OffPeakWindow::default(),
        starting_deadline_minutes: 120,
        slot_jitter_seconds: None,
        job: Default::default(),
        history: Default::default(),
    }
}

fn daily(at: &str, tz: &str) -> ScheduleRule {
    ScheduleRule::from_spec(&spec(Frequency::Daily, at, tz)).expect("valid daily rule")
}

fn daily_in_window(at: &str, tz: &str, start: &str, end: &str) -> ScheduleRule {
    let mut s = spec(Frequency::Daily, at, tz);
    s.off_peak_window = OffPeakWindow {
        start: start.into(),
        end: end.into(),
    };
    ScheduleRule::from_spec(&s).expect("valid daily rule")
}

fn weekly(day: DayOfWeek, at: &str, tz: &str) -> ScheduleRule {
    let mut s = spec(Frequency::Weekly, at, tz);
    s.day_of_week = Some(day);
    ScheduleRule::from_spec(&s).expect("valid weekly rule")
}

fn monthly(day: i32, at: &str, tz: &str) -> ScheduleRule {
    let mut s = spec(Frequency::Monthly, at, tz);
    s.day_of_month = Some(day);
    ScheduleRule::from_spec(&s).expect("valid monthly rule")
}

/// Asserts the slots after `from`, and that each is found back by `latest_slot_at_or_before`.
fn assert_slots(rule: &ScheduleRule, from: &str, expected: &[&str]) {
    let got: Vec<String> = rule
        .slots_after(ts(from))
        .take(expected.len())
        .map(|t| t.to_string())
        .collect();
    assert_eq!(got, expected, "slots after {from}");
    for slot in expected {
        let slot = ts(slot);
        assert_eq!(rule.latest_slot_at_or_before(slot), Some(slot));
        assert!(
            rule.latest_slot_at_or_before(slot - jiff::SignedDuration::from_nanos(1)) < Some(slot)
        );
    }
}

// --- DST: spring forward runs right after the gap, fall back runs once (first occurrence) ---

#[test]
fn chicago_daily_0230_on_spring_forward_runs_at_0300_cdt() {
    // 2026-03-08: 02:00 CST -> 03:00 CDT.
    let rule = daily("02:30", "America/Chicago");
    assert_slots(
        &rule,
        "2026-03-06T12:00:00Z",
        &[
            "2026-03-07T08:30:00Z", // 02:30 CST
            "2026-03-08T08:00:00Z", // 03:00 CDT, the first instant after the gap
            "2026-03-09T07:30:00Z", // 02:30 CDT
        ],
    );
}

#[test]
fn chicago_daily_0130_on_fall_back_runs_once_at_the_first_occurrence() {
    // 2026-11-01: 02:00 CDT -> 01:00 CST, so 01:30 happens at 06:30Z (CDT) and 07:30Z (CST).
    let rule = daily("01:30", "America/Chicago");
    assert_slots(
        &rule,
        "2026-10-30T12:00:00Z",
        &[
            "2026-10-31T06:30:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-02T07:30:00Z",
        ],
    );
    assert_eq!(
        rule.next_slot_after(ts("2026-11-01T06:30:00Z")),
        ts("2026-11-02T07:30:00Z")
    );
    // The second 01:30 (CST) is not a slot.
    assert_eq!(
        rule.latest_slot_at_or_before(ts("2026-11-01T07:30:00Z")),
        Some(ts("2026-11-01T06:30:00Z"))
    );
}

#[test]
fn chicago_daily_0230_on_fall_back_day_is_unambiguous() {
    let rule = daily("02:30", "America/Chicago");
    assert_slots(
        &rule,
        "2026-10-31T12:00:00Z",
        &["2026-11-01T08:30:00Z", "2026-11-02T08:30:00Z"],
    );
}

#[test]
fn berlin_daily_0230_both_transitions() {
    let rule = daily("02:30", "Europe/Berlin");
    // 2026-03-29: 02:00 CET -> 03:00 CEST.
    assert_slots(
        &rule,
        "2026-03-27T12:00:00Z",
        &[
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z", // 03:00 CEST
            "2026-03-30T00:30:00Z",
        ],
    );
    // 2026-10-25: 03:00 CEST -> 02:00 CET; 02:30 happens at 00:30Z and 01:30Z.
    assert_slots(
        &rule,
        "2026-10-23T12:00:00Z",
        &[
            "2026-10-24T00:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
        ],
    );
}

#[test]
fn lord_howe_half_hour_dst_shift() {
    // +10:30 standard, +11:00 summer. 2026-10-04 02:00 -> 02:30; 2026-04-05 02:00 -> 01:30.
    let rule = daily("02:15", "Australia/Lord_Howe");
    assert_slots(
        &rule,
        "2026-10-02T00:00:00Z",
        &[
            "2026-10-02T15:45:00Z", // 02:15+10:30
            "2026-10-03T15:30:00Z", // 02:30+11:00, right after the 30-minute gap
            "2026-10-04T15:15:00Z", // 02:15+11:00
        ],
    );
    let rule = daily("01:45", "Australia/Lord_Howe");
    assert_slots(
        &rule,
        "2026-04-03T00:00:00Z",
        &[
            "2026-04-03T14:45:00Z",
            "2026-04-04T14:45:00Z", // first 01:45 (+11:00); the second is 15:15Z
            "2026-04-05T15:15:00Z", // 01:45+10:30
        ],
    );
}

#[test]
fn zones_without_dst_keep_a_fixed_offset() {
    let rule = daily("03:00", "Asia/Tokyo");
    assert_slots(
        &rule,
        "2026-03-06T12:00:00Z",
        &[
            "2026-03-06T18:00:00Z",
            "2026-03-07T18:00:00Z",
            "2026-03-08T18:00:00Z",
        ],
    );
    assert_slots(
        &rule,
        "2026-10-30T19:00:00Z",
        &["2026-10-31T18:00:00Z", "2026-11-01T18:00:00Z"],
    );
    let rule = daily("02:30", "UTC");
    assert_slots(
        &rule,
        "2026-03-29T02:30:00Z",
        &["2026-03-30T02:30:00Z", "2026-03-31T02:30:00Z"],
    );
}

#[test]
fn daily_0230_in_a_custom_window() {
    let rule = daily_in_window("02:30", "America/Chicago", "01:00", "05:00");
    assert_slots(
        &rule,
        "2026-03-07T12:00:00Z",
        &["2026-03-08T08:00:00Z", "2026-03-09T07:30:00Z"],
    );
    // A window ending at the gap's end: the displaced slot runs at 03:00 CDT, which by the wall clock
    // is the window's (exclusive) end. It still runs: it is the 02:30 slot, moved by DST.
    let rule = daily_in_window("02:30", "America/Chicago", "22:00", "03:00");
    assert_eq!(
        rule.next_slot_after(ts("2026-03-07T12:00:00Z")),
        ts("2026-03-08T08:00:00Z")
    );
    assert!(!rule.is_off_peak_at(ts("2026-03-08T08:00:00Z")));
    assert!(rule.is_off_peak_at(ts("2026-03-09T07:30:00Z")));
}

#[test]
fn weekly_across_dst() {
    let rule = weekly(DayOfWeek::Sunday, "02:30", "America/Chicago");
    assert_slots(
        &rule,
        "2026-02-28T00:00:00Z",
        &[
            "2026-03-01T08:30:00Z",
            "2026-03-08T08:00:00Z",
            "2026-03-15T07:30:00Z",
        ],
    );
    let rule = weekly(DayOfWeek::Sunday, "01:30", "America/Chicago");
    assert_slots(
        &rule,
        "2026-10-24T00:00:00Z",
        &[
            "2026-10-25T06:30:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-08T07:30:00Z",
        ],
    );
    let rule = weekly(DayOfWeek::Sunday, "02:30", "Europe/Berlin");
    assert_slots(
        &rule,
        "2026-10-17T00:00:00Z",
        &[
            "2026-10-18T00:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-11-01T01:30:00Z",
        ],
    );
    // An afternoon slot keeps its local time, so its UTC time moves by an hour.
    let rule = weekly(DayOfWeek::Sunday, "14:00", "Europe/Berlin");
    assert_slots(
        &rule,
        "2026-03-21T00:00:00Z",
        &["2026-03-22T13:00:00Z", "2026-03-29T12:00:00Z"],
    );
    // Weekly on a Wednesday from a Wednesday after the slot: next week.
    let rule = weekly(DayOfWeek::Wednesday, "09:00", "UTC");
    assert_slots(
        &rule,
        "2026-01-07T09:00:00Z",
        &["2026-01-14T09:00:00Z", "2026-01-21T09:00:00Z"],
    );
    assert_eq!(
        rule.latest_slot_at_or_before(ts("2026-01-07T08:59:59Z")),
        Some(ts("2025-12-31T09:00:00Z"))
    );
}

#[test]
fn monthly_on_dst_days() {
    let rule = monthly(8, "02:30", "America/Chicago");
    assert_slots(
        &rule,
        "2026-02-01T00:00:00Z",
        &[
            "2026-02-08T08:30:00Z",
            "2026-03-08T08:00:00Z",
            "2026-04-08T07:30:00Z",
        ],
    );
    let rule = monthly(1, "01:30", "America/Chicago");
    assert_slots(
        &rule,
        "2026-09-15T00:00:00Z",
        &[
            "2026-10-01T06:30:00Z",
            "2026-11-01T06:30:00Z",
            "2026-12-01T07:30:00Z",
        ],
    );
    let rule = monthly(25, "02:30", "Europe/Berlin");
    assert_slots(
        &rule,
        "2026-09-01T00:00:00Z",
        &[
            "2026-09-25T00:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-11-25T01:30:00Z",
        ],
    );
    let rule = monthly(29, "02:30", "Europe/Berlin");
    assert_eq!(
        rule.next_slot_after(ts("2026-03-01T00:00:00Z")),
        ts("2026-03-29T01:00:00Z")
    );
}

#[test]
fn monthly_clamps_to_the_last_day_of_the_month() {
    let rule = monthly(31, "12:00", "UTC");
    assert_slots(
        &rule,
        "2027-01-01T00:00:00Z",
        &[
            "2027-01-31T12:00:00Z",
            "2027-02-28T12:00:00Z",
            "2027-03-31T12:00:00Z",
            "2027-04-30T12:00:00Z",
            "2027-05-31T12:00:00Z",
        ],
    );
    assert_slots(
        &rule,
        "2028-01-31T12:00:00Z",
        &["2028-02-29T12:00:00Z", "2028-03-31T12:00:00Z"],
    );
    assert_eq!(
        rule.latest_slot_at_or_before(ts("2027-03-15T00:00:00Z")),
        Some(ts("2027-02-28T12:00:00Z"))
    );
    assert_eq!(
        rule.latest_slot_at_or_before(ts("2028-03-15T00:00:00Z")),
        Some(ts("2028-02-29T12:00:00Z"))
    );

    let rule = monthly(30, "12:00", "UTC");
    assert_slots(
        &rule,
        "2028-01-31T00:00:00Z",
        &["2028-02-29T12:00:00Z", "2028-03-30T12:00:00Z"],
    );
    let rule = monthly(29, "12:00", "UTC");
    assert_slots(
        &rule,
        "2027-01-30T00:00:00Z",
        &["2027-02-28T12:00:00Z", "2027-03-29T12:00:00Z"],
    );
    assert_slots(
        &rule,
        "2028-01-30T00:00:00Z",
        &["2028-02-29T12:00:00Z", "2028-03-29T12:00:00Z"],
    );
    // The 31st in a zone ahead of UTC: local month end, not the UTC one.
    let rule = monthly(31, "08:00", "Asia/Tokyo");
    assert_slots(
        &rule,
        "2027-04-01T00:00:00Z",
        &["2027-04-29T23:00:00Z", "2027-05-30T23:00:00Z"],
    );
}

#[test]
fn next_slot_is_strictly_after_and_latest_is_at_or_before() {
    let rule = daily("02:00", "UTC");
    assert_eq!(
        rule.next_slot_after(ts("2026-01-02T02:00:00Z")),
        ts("2026-01-03T02:00:00Z")
    );
    assert_eq!(
        rule.next_slot_after(ts("2026-01-02T01:59:59.999999999Z")),
        ts("2026-01-02T02:00:00Z")
    );
    assert_eq!(
        rule.latest_slot_at_or_before(ts("2026-01-02T02:00:00Z")),
        Some(ts("2026-01-02T02:00:00Z"))
    );
    assert_eq!(
        rule.latest_slot_at_or_before(ts("2026-01-02T01:59:59Z")),
        Some(ts("2026-01-01T02:00:00Z"))
    );
}

#[test]
fn daily_window_validation_wrapping_and_not() {
    let err = |at: &str, start: &str, end: &str| {
        let mut s = spec(Frequency::Daily, at, "UTC");
        s.off_peak_window = OffPeakWindow {
            start: start.into(),
            end: end.into(),
        };
        ScheduleRule::from_spec(&s).err().map(|e| e.to_string())
    };
    assert_eq!(err("23:00", "22:00", "04:00"), None);
    assert_eq!(err("03:59", "22:00", "04:00"), None);
    assert!(
        err("04:00", "22:00", "04:00")
            .is_some_and(|m| m.contains("daily syncs run only in off-peak hours"))
    );
    assert!(err("21:59", "22:00", "04:00").is_some());
    assert_eq!(err("02:00", "01:00", "05:00"), None);
    assert!(err("23:00", "01:00", "05:00").is_some());
    assert!(err("00:30", "01:00", "05:00").is_some());
}

#[test]
fn gap_across_midnight_never_gives_a_daily_schedule_two_slots_on_one_date() {
    // America/Nuuk, 2024-03-30 (Saturday): 23:00 -02 jumps to Sunday 00:00 -01, so Saturday's
    // 23:00 does not exist and its first instant after the gap is on Sunday. Daily: Saturday has no
    // slot (else Sunday would have two); Weekly on Saturday: it runs at Sunday 00:00.
    let rule = daily_in_window("23:00", "America/Nuuk", "22:00", "06:00");
    assert_slots(
        &rule,
        "2024-03-29T02:00:00Z",
        &[
            "2024-03-30T01:00:00Z", // Friday 23:00 -02
            "2024-04-01T00:00:00Z", // Sunday 23:00 -01
            "2024-04-02T00:00:00Z",
        ],
    );
    let rule = weekly(DayOfWeek::Saturday, "23:00", "America/Nuuk");
    assert_slots(
        &rule,
        "2024-03-29T00:00:00Z",
        &["2024-03-31T01:00:00Z", "2024-04-07T00:00:00Z"],
    );
}
