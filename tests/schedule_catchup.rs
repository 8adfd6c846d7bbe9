//! Table tests of `decide`: on time, late within the deadline, outages of minutes, days and
//! months, anchors, suspension, and no burst after an outage.
use jiff::{SignedDuration, Timestamp};
use rostersync::api::{DayOfWeek, Frequency, LocalObjectReference, SyncScheduleSpec, Trigger};
use rostersync::schedule::{
    DueRun, MAX_LISTED_MISSED, MissedSlots, ScheduleRule, SlotDecision, decide,
};

fn ts(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
}

fn rule(frequency: Frequency, at: &str, tz: &str, deadline_minutes: i32) -> ScheduleRule {
    let spec = SyncScheduleSpec {
        connection_ref: LocalObjectReference {
            name: "district".into(),
        },
        suspend: false,
        frequency,
        at: at.into(),
        day_of_week: (frequency == Frequency::Weekly).then_some(DayOfWeek::Monday),
        day_of_month: (frequency == Frequency::Monthly).then_some(31),
        time_zone: tz.into(),
        off_peak_window: Default::default(),
        starting_deadline_minutes: deadline_minutes,
        slot_jitter_seconds: None,
        job: Default::default(),
        history: Default::default(),
    };
    ScheduleRule::from_spec(&spec).expect("valid rule")
}

/// Daily at 02:00 UTC, deadline 120 minutes; created long ago.
fn daily_0200() -> ScheduleRule {
    rule(Frequency::Daily, "02:00", "UTC", 120)
}

const CREATED: &str = "2025-06-01T00:00:00Z";

fn run(slot: &str, trigger: Trigger, late_by_secs: i64) -> Option<DueRun> {
    Some(DueRun {
        slot: ts(slot),
        trigger,
        late_by: SignedDuration::from_secs(late_by_secs),
    })
}

fn missed(listed: &[&str]) -> MissedSlots {
    MissedSlots {
        listed: listed.iter().map(|s| ts(s)).collect(),
        total: listed.len() as u64,
    }
}

#[test]
fn on_time_within_one_minute_is_scheduled() {
    let r = daily_0200();
    for (now, late) in [
        ("2026-01-02T02:00:00Z", 0),
        ("2026-01-02T02:00:30Z", 30),
        ("2026-01-02T02:01:00Z", 60),
    ] {
        let d = decide(
            &r,
            ts(now),
            Some(ts("2026-01-01T02:00:00Z")),
            ts(CREATED),
            false,
        );
        assert_eq!(
            d,
            SlotDecision {
                run: run("2026-01-02T02:00:00Z", Trigger::Scheduled, late),
                missed: MissedSlots::default(),
                handled_through: Some(ts("2026-01-02T02:00:00Z")),
                next_wake: ts("2026-01-03T02:00:00Z"),
                skipped_at_peak: None,
            }
        );
    }
}

#[test]
fn outage_of_minutes_catches_up_within_the_deadline() {
    let r = daily_0200();
    let last = Some(ts("2026-01-01T02:00:00Z"));
    let d = decide(&r, ts("2026-01-02T02:01:01Z"), last, ts(CREATED), false);
    assert_eq!(d.run, run("2026-01-02T02:00:00Z", Trigger::CatchUp, 61));
    let d = decide(&r, ts("2026-01-02T02:07:00Z"), last, ts(CREATED), false);
    assert_eq!(d.run, run("2026-01-02T02:00:00Z", Trigger::CatchUp, 420));
    assert!(d.missed.is_empty());
    // Exactly at the deadline (inclusive) it still runs; a second later it is missed.
    let d = decide(&r, ts("2026-01-02T04:00:00Z"), last, ts(CREATED), false);
    assert_eq!(d.run, run("2026-01-02T02:00:00Z", Trigger::CatchUp, 7200));
    let d = decide(&r, ts("2026-01-02T04:00:01Z"), last, ts(CREATED), false);
    assert_eq!(d.run, None);
    assert_eq!(d.missed, missed(&["2026-01-02T02:00:00Z"]));
    assert_eq!(d.handled_through, Some(ts("2026-01-02T02:00:00Z")));
    assert_eq!(d.next_wake, ts("2026-01-03T02:00:00Z"));
}

#[test]
fn shortest_deadline_of_one_minute() {
    let r = rule(Frequency::Daily, "02:00", "UTC", 1);
    let last = Some(ts("2026-01-01T02:00:00Z"));
    let d = decide(&r, ts("2026-01-02T02:00:59Z"), last, ts(CREATED), false);
    assert_eq!(d.run, run("2026-01-02T02:00:00Z", Trigger::Scheduled, 59));
    let d = decide(&r, ts("2026-01-02T02:01:30Z"), last, ts(CREATED), false);
    assert_eq!(d.run, None);
    assert_eq!(d.missed.total, 1);
}

#[test]
fn outage_of_days_runs_only_the_latest_slot() {
    let r = daily_0200();
    let last = Some(ts("2026-01-01T02:00:00Z"));
    let d = decide(&r, ts("2026-01-04T03:00:00Z"), last, ts(CREATED), false);
    assert_eq!(
        d,
        SlotDecision {
            run: run("2026-01-04T02:00:00Z", Trigger::CatchUp, 3600),
            missed: missed(&["2026-01-02T02:00:00Z", "2026-01-03T02:00:00Z"]),
            handled_through: Some(ts("2026-01-04T02:00:00Z")),
            next_wake: ts("2026-01-05T02:00:00Z"),
            skipped_at_peak: None,
        }
    );
    // Beyond the deadline: nothing runs, all three are missed.
    let d = decide(&r, ts("2026-01-04T05:00:00Z"), last, ts(CREATED), false);
    assert_eq!(d.run, None);
    assert_eq!(
        d.missed,
        missed(&[
            "2026-01-02T02:00:00Z",
            "2026-01-03T02:00:00Z",
            "2026-01-04T02:00:00Z"
        ])
    );
    assert_eq!(d.handled_through, Some(ts("2026-01-04T02:00:00Z")));
}

#[test]
fn outage_of_months_lists_the_latest_hundred_and_counts_all() {
    let r = daily_0200();
    let last = Some(ts("2026-01-01T02:00:00Z"));
    // Jan 2 .. Jul 1 is 181 slots; Jul 1 runs late, 180 are missed.
    let d = decide(&r, ts("2026-07-01T02:30:00Z"), last, ts(CREATED), false);
    assert_eq!(d.run, run("2026-07-01T02:00:00Z", Trigger::CatchUp, 1800));
    assert_eq!(d.missed.total, 180);
    assert_eq!(d.missed.listed.len(), MAX_LISTED_MISSED);
    assert_eq!(d.missed.listed.first(), Some(&ts("2026-03-23T02:00:00Z")));
    assert_eq!(d.missed.listed.last(), Some(&ts("2026-06-30T02:00:00Z")));
    assert!(
        d.missed
            .listed
            .windows(2)
            .all(|w| w[1].duration_since(w[0]) == SignedDuration::from_hours(24))
    );
    // Beyond the deadline: all 181 missed, no run.
    let d = decide(&r, ts("2026-07-01T12:00:00Z"), last, ts(CREATED), false);
    assert_eq!(d.run, None);
    assert_eq!(d.missed.total, 181);
    assert_eq!(d.missed.listed.first(), Some(&ts("2026-03-24T02:00:00Z")));
    assert_eq!(d.missed.listed.last(), Some(&ts("2026-07-01T02:00:00Z")));
    assert_eq!(d.handled_through, Some(ts("2026-07-01T02:00:00Z")));
    assert_eq!(d.next_wake, ts("2026-07-02T02:00:00Z"));
}

#[test]
fn outage_of_months_on_a_weekly_and_a_monthly_schedule() {
    // Weekly on Mondays 10:00 Berlin: last handled Mon 2026-01-05; now Wed 2026-03-04.
    let r = rule(Frequency::Weekly, "10:00", "Europe/Berlin", 120);
    let d = decide(
        &r,
        ts("2026-03-04T12:00:00Z"),
        Some(ts("2026-01-05T09:00:00Z")),
        ts(CREATED),
        false,
    );
    assert_eq!(d.run, None);
    assert_eq!(d.missed.total, 8); // Jan 12, 19, 26, Feb 2, 9, 16, 23, Mar 2
    assert_eq!(d.missed.listed.last(), Some(&ts("2026-03-02T09:00:00Z")));
    assert_eq!(d.next_wake, ts("2026-03-09T09:00:00Z"));
    // Monthly on the 31st at 02:00 Chicago, back 90 minutes after the April slot (Apr 30, CDT).
    let r = rule(Frequency::Monthly, "02:00", "America/Chicago", 120);
    let d = decide(
        &r,
        ts("2026-04-30T08:30:00Z"),
        Some(ts("2026-01-31T08:00:00Z")),
        ts(CREATED),
        false,
    );
    assert_eq!(d.run, run("2026-04-30T07:00:00Z", Trigger::CatchUp, 5400));
    assert_eq!(
        d.missed,
        missed(&["2026-02-28T08:00:00Z", "2026-03-31T07:00:00Z"])
    );
    assert_eq!(d.next_wake, ts("2026-05-31T07:00:00Z"));
}

#[test]
fn deciding_again_after_acting_runs_nothing() {
    let r = daily_0200();
    let now = ts("2026-01-04T03:00:00Z");
    let first = decide(
        &r,
        now,
        Some(ts("2026-01-01T02:00:00Z")),
        ts(CREATED),
        false,
    );
    assert!(first.run.is_some());
    let again = decide(
        &r,
        now + SignedDuration::from_secs(5),
        first.handled_through,
        ts(CREATED),
        false,
    );
    assert_eq!(
        again,
        SlotDecision {
            run: None,
            missed: MissedSlots::default(),
            handled_through: first.handled_through,
            next_wake: ts("2026-01-05T02:00:00Z"),
            skipped_at_peak: None,
        }
    );
}

#[test]
fn slots_before_the_anchor_never_count() {
    let r = daily_0200();
    // Created after today's slot: nothing due, wake at tomorrow's slot.
    let d = decide(
        &r,
        ts("2026-01-03T10:00:00Z"),
        None,
        ts("2026-01-03T10:00:00Z"),
        false,
    );
    assert_eq!(
        d,
        SlotDecision {
            run: None,
            missed: MissedSlots::default(),
            handled_through: None,
            next_wake: ts("2026-01-04T02:00:00Z"),
            skipped_at_peak: None,
        }
    );
    // Controller down from creation over two slots: one missed, the latest runs.
    let d = decide(
        &r,
        ts("2026-01-05T02:00:30Z"),
        None,
        ts("2026-01-03T10:00:00Z"),
        false,
    );
    assert_eq!(d.run, run("2026-01-05T02:00:00Z", Trigger::Scheduled, 30));
    assert_eq!(d.missed, missed(&["2026-01-04T02:00:00Z"]));
    // A slot exactly at the anchor counts.
    let d = decide(
        &r,
        ts("2026-01-04T02:00:10Z"),
        None,
        ts("2026-01-04T02:00:00Z"),
        false,
    );
    assert_eq!(d.run, run("2026-01-04T02:00:00Z", Trigger::Scheduled, 10));
    // Resumed: the anchor wins over an older last handled slot.
    let d = decide(
        &r,
        ts("2026-01-10T02:00:05Z"),
        Some(ts("2026-01-01T02:00:00Z")),
        ts("2026-01-09T12:00:00Z"),
        false,
    );
    assert_eq!(d.run, run("2026-01-10T02:00:00Z", Trigger::Scheduled, 5));
    assert!(d.missed.is_empty());
    // An anchor in the future (clock skew): wake at the first slot not before it.
    let d = decide(
        &r,
        ts("2026-01-03T10:00:00Z"),
        None,
        ts("2026-01-05T02:00:00Z"),
        false,
    );
    assert_eq!(d.next_wake, ts("2026-01-05T02:00:00Z"));
    assert_eq!(d.run, None);
}

#[test]
fn suspended_runs_nothing_misses_nothing_and_skips_past_slots() {
    let r = daily_0200();
    let d = decide(
        &r,
        ts("2026-01-10T02:00:30Z"),
        Some(ts("2026-01-01T02:00:00Z")),
        ts(CREATED),
        true,
    );
    assert_eq!(
        d,
        SlotDecision {
            run: None,
            missed: MissedSlots::default(),
            handled_through: Some(ts("2026-01-10T02:00:00Z")),
            next_wake: ts("2026-01-11T02:00:00Z"),
            skipped_at_peak: None,
        }
    );
    // Resumed later that day: the suspended slots were handled, nothing to catch up.
    let d2 = decide(
        &r,
        ts("2026-01-10T03:00:00Z"),
        d.handled_through,
        ts(CREATED),
        false,
    );
    assert_eq!(d2.run, None);
    assert!(d2.missed.is_empty());
}

#[test]
fn last_handled_in_the_future_waits_for_the_slot_after_it() {
    let r = daily_0200();
    let d = decide(
        &r,
        ts("2026-01-02T01:00:00Z"),
        Some(ts("2026-01-03T02:00:00Z")),
        ts(CREATED),
        false,
    );
    assert_eq!(d.run, None);
    assert_eq!(d.next_wake, ts("2026-01-04T02:00:00Z"));
}

#[test]
fn dst_slot_runs_on_time_at_the_end_of_the_gap() {
    let r = rule(Frequency::Daily, "02:30", "America/Chicago", 120);
    let d = decide(
        &r,
        ts("2026-03-08T08:00:20Z"),
        Some(ts("2026-03-07T08:30:00Z")),
        ts(CREATED),
        false,
    );
    assert_eq!(d.run, run("2026-03-08T08:00:00Z", Trigger::Scheduled, 20));
    assert_eq!(d.next_wake, ts("2026-03-09T07:30:00Z"));
    // Fall back: after the first 01:30 ran, the repeated 01:30 is not a slot.
    let r = rule(Frequency::Daily, "01:30", "America/Chicago", 120);
    let d = decide(
        &r,
        ts("2026-11-01T07:30:10Z"),
        Some(ts("2026-11-01T06:30:00Z")),
        ts(CREATED),
        false,
    );
    assert_eq!(d.run, None);
    assert!(d.missed.is_empty());
}

#[test]
fn outage_of_ten_years_counts_every_slot_exactly() {
    let r = daily_0200();
    let d = decide(
        &r,
        ts("2036-01-01T12:00:00Z"),
        Some(ts("2026-01-01T02:00:00Z")),
        ts(CREATED),
        false,
    );
    assert_eq!(d.run, None);
    // 2026-01-02 .. 2036-01-01, with the leap days of 2028 and 2032.
    assert_eq!(d.missed.total, 3652);
    assert_eq!(d.missed.listed.len(), MAX_LISTED_MISSED);
    assert_eq!(d.missed.listed.last(), Some(&ts("2036-01-01T02:00:00Z")));
}

/// Daily at `at` (UTC) in an off-peak window `start`-`end`, deadline 180 minutes.
fn daily_in_window(at: &str, start: &str, end: &str) -> ScheduleRule {
    let spec = SyncScheduleSpec {
        connection_ref: LocalObjectReference {
            name: "district".into(),
        },
        suspend: false,
        frequency: Frequency::Daily,
        at: at.into(),
        day_of_week: None,
        day_of_month: None,
        time_zone: "UTC".into(),
        off_peak_window: rostersync::api::OffPeakWindow {
            start: start.into(),
            end: end.into(),
        },
        starting_deadline_minutes: 180,
        slot_jitter_seconds: None,
        job: Default::default(),
        history: Default::default(),
    };
    ScheduleRule::from_spec(&spec).expect("valid rule")
}

#[test]
fn a_daily_catch_up_outside_the_off_peak_window_is_missed_not_run_at_peak_time() {
    let r = daily_in_window("05:30", "20:00", "06:00");
    let last = Some(ts("2026-01-01T05:30:00Z"));
    let slot = ts("2026-01-02T05:30:00Z");
    // (now, runs as, skipped at peak)
    let cases = [
        // On time: runs (the slot itself is inside the window).
        ("2026-01-02T05:30:30Z", Some(Trigger::Scheduled), false),
        // Late, still inside the window: caught up.
        ("2026-01-02T05:59:59Z", Some(Trigger::CatchUp), false),
        // Late and outside the window (06:00 is the exclusive end), within the deadline: missed.
        ("2026-01-02T06:00:00Z", None, true),
        ("2026-01-02T08:29:00Z", None, true),
        // Past the deadline: missed, as always (not a peak-time skip).
        ("2026-01-02T08:31:00Z", None, false),
    ];
    for (now, runs_as, at_peak) in cases {
        let d = decide(&r, ts(now), last, ts(CREATED), false);
        assert_eq!(d.run.map(|run| run.trigger), runs_as, "{now}");
        assert_eq!(d.skipped_at_peak, at_peak.then_some(slot), "{now}");
        assert_eq!(d.handled_through, Some(slot), "{now}");
        if runs_as.is_none() {
            assert_eq!(d.missed, missed(&["2026-01-02T05:30:00Z"]), "{now}");
        } else {
            assert!(d.missed.is_empty(), "{now}");
        }
    }
    // A window that does not wrap midnight: 01:00-05:00, at 04:00; back at 04:30 runs, at 05:10
    // does not.
    let r = daily_in_window("04:00", "01:00", "05:00");
    let last = Some(ts("2026-01-01T04:00:00Z"));
    let d = decide(&r, ts("2026-01-02T04:30:00Z"), last, ts(CREATED), false);
    assert_eq!(d.run.map(|run| run.trigger), Some(Trigger::CatchUp));
    let d = decide(&r, ts("2026-01-02T05:10:00Z"), last, ts(CREATED), false);
    assert_eq!(d.run, None);
    assert_eq!(d.skipped_at_peak, Some(ts("2026-01-02T04:00:00Z")));
}

#[test]
fn weekly_and_monthly_catch_ups_have_no_window_to_keep() {
    // The default window is 20:00-06:00; a weekly slot at 05:30 caught up at 07:00 still runs.
    let r = rule(Frequency::Weekly, "05:30", "UTC", 180);
    // 2026-01-05 is a Monday.
    let d = decide(
        &r,
        ts("2026-01-05T07:00:00Z"),
        Some(ts("2025-12-29T05:30:00Z")),
        ts(CREATED),
        false,
    );
    assert_eq!(d.run.map(|run| run.trigger), Some(Trigger::CatchUp));
    assert_eq!(d.skipped_at_peak, None);
    assert!(rostersync::schedule::catch_up_allowed(
        &r,
        ts("2026-01-05T12:00:00Z")
    ));
}
