//! Table tests of Sync Now availability (the setup guide's rule), one case per line of the rule.
use jiff::Timestamp;
use rostersync::api::{Frequency, LocalObjectReference, RunResult, SyncScheduleSpec};
use rostersync::schedule::{
    ScheduleRule, SyncNowAvailability, SyncNowInput, SyncNowReason, sync_now_availability,
};

fn ts(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
}

/// Daily at 02:00 UTC.
fn rule() -> ScheduleRule {
    let spec = SyncScheduleSpec {
        connection_ref: LocalObjectReference {
            name: "district".into(),
        },
        suspend: false,
        frequency: Frequency::Daily,
        at: "02:00".into(),
        day_of_week: None,
        day_of_month: None,
        time_zone: "UTC".into(),
        off_peak_window: Default::default(),
        starting_deadline_minutes: 120,
        slot_jitter_seconds: None,
        job: Default::default(),
        history: Default::default(),
    };
    ScheduleRule::from_spec(&spec).expect("valid rule")
}

/// Now is 2026-01-05 10:00; the scheduled run of 2026-01-05 02:00 started on time.
fn input() -> SyncNowInput {
    SyncNowInput {
        now: ts("2026-01-05T10:00:00Z"),
        connection_ready: true,
        run_active: false,
        last_scheduled_start: Some(ts("2026-01-05T02:00:05Z")),
        last_manual_start: None,
        last_run_result: Some(RunResult::Succeeded),
        suspended: false,
    }
}

fn available() -> SyncNowAvailability {
    SyncNowAvailability {
        available: true,
        reason: SyncNowReason::Available,
        available_after: None,
    }
}

fn used_until(after: &str) -> SyncNowAvailability {
    SyncNowAvailability {
        available: false,
        reason: SyncNowReason::UsedSinceLastScheduledRun,
        available_after: Some(ts(after)),
    }
}

fn check(input: SyncNowInput) -> SyncNowAvailability {
    sync_now_availability(&rule(), &input)
}

#[test]
fn no_runs_yet_is_available() {
    let i = SyncNowInput {
        last_scheduled_start: None,
        last_run_result: None,
        ..input()
    };
    assert_eq!(check(i), available());
    assert_eq!(check(input()), available());
}

#[test]
fn a_run_active_blocks_without_a_known_time() {
    let blocked = SyncNowAvailability {
        available: false,
        reason: SyncNowReason::RunActive,
        available_after: None,
    };
    assert_eq!(
        check(SyncNowInput {
            run_active: true,
            ..input()
        }),
        blocked
    );
    // Even right after a failed run, and even with Sync Now otherwise unused.
    let i = SyncNowInput {
        run_active: true,
        last_run_result: Some(RunResult::Failed),
        ..input()
    };
    assert_eq!(check(i), blocked);
}

#[test]
fn a_connection_not_ready_blocks_first() {
    let i = SyncNowInput {
        connection_ready: false,
        run_active: true,
        ..input()
    };
    assert_eq!(
        check(i),
        SyncNowAvailability {
            available: false,
            reason: SyncNowReason::ConnectionNotReady,
            available_after: None,
        }
    );
}

#[test]
fn used_since_the_last_scheduled_run_until_the_next_slot() {
    let i = SyncNowInput {
        last_manual_start: Some(ts("2026-01-05T08:00:00Z")),
        ..input()
    };
    assert_eq!(check(i), used_until("2026-01-06T02:00:00Z"));
    // A manual run before the last scheduled start does not count.
    let i = SyncNowInput {
        last_manual_start: Some(ts("2026-01-04T20:00:00Z")),
        ..input()
    };
    assert_eq!(check(i), available());
    // A manual run that started at the same instant as the scheduled one counts as used.
    let i = SyncNowInput {
        last_manual_start: Some(ts("2026-01-05T02:00:05Z")),
        ..input()
    };
    assert_eq!(check(i), used_until("2026-01-06T02:00:00Z"));
    // No scheduled run ever: a manual run locks until the first scheduled start.
    let i = SyncNowInput {
        last_scheduled_start: None,
        last_manual_start: Some(ts("2026-01-05T08:00:00Z")),
        ..input()
    };
    assert_eq!(check(i), used_until("2026-01-06T02:00:00Z"));
}

#[test]
fn a_failed_or_held_last_run_makes_it_available_again() {
    for result in [RunResult::Failed, RunResult::Held] {
        let i = SyncNowInput {
            last_manual_start: Some(ts("2026-01-05T08:00:00Z")),
            last_run_result: Some(result),
            ..input()
        };
        assert_eq!(check(i), available(), "{result:?}");
    }
    // A succeeded (or oddly still Running but inactive) manual run keeps it used.
    for result in [RunResult::Succeeded, RunResult::Running] {
        let i = SyncNowInput {
            last_manual_start: Some(ts("2026-01-05T08:00:00Z")),
            last_run_result: Some(result),
            ..input()
        };
        assert_eq!(
            check(i).reason,
            SyncNowReason::UsedSinceLastScheduledRun,
            "{result:?}"
        );
    }
}

#[test]
fn available_again_once_the_next_scheduled_run_starts() {
    let manual = Some(ts("2026-01-05T08:00:00Z"));
    // The next slot passed, but its scheduled run has not started (yet): still used.
    let i = SyncNowInput {
        now: ts("2026-01-06T02:00:01Z"),
        last_manual_start: manual,
        ..input()
    };
    assert_eq!(check(i), used_until("2026-01-07T02:00:00Z"));
    // While it runs: RunActive. Once it started (and finished): available.
    let i = SyncNowInput {
        now: ts("2026-01-06T02:10:00Z"),
        run_active: true,
        last_scheduled_start: Some(ts("2026-01-06T02:00:03Z")),
        last_manual_start: manual,
        last_run_result: Some(RunResult::Running),
        ..input()
    };
    assert_eq!(check(i).reason, SyncNowReason::RunActive);
    let i = SyncNowInput {
        run_active: false,
        last_run_result: Some(RunResult::Succeeded),
        ..i
    };
    assert_eq!(check(i), available());
    // A catch-up run counts as a scheduled start too (the controller passes its start time).
    let i = SyncNowInput {
        now: ts("2026-01-06T05:00:00Z"),
        last_scheduled_start: Some(ts("2026-01-06T03:30:00Z")),
        last_manual_start: manual,
        ..input()
    };
    assert_eq!(check(i), available());
}

#[test]
fn suspended_unlocks_when_the_next_slot_time_passes() {
    let suspended = SyncNowInput {
        last_scheduled_start: Some(ts("2026-01-01T02:00:04Z")),
        last_manual_start: Some(ts("2026-01-05T08:00:00Z")),
        suspended: true,
        ..input()
    };
    assert_eq!(check(suspended), used_until("2026-01-06T02:00:00Z"));
    let i = SyncNowInput {
        now: ts("2026-01-06T01:59:59Z"),
        ..suspended
    };
    assert_eq!(check(i), used_until("2026-01-06T02:00:00Z"));
    let i = SyncNowInput {
        now: ts("2026-01-06T02:00:00Z"),
        ..suspended
    };
    assert_eq!(check(i), available());
    let i = SyncNowInput {
        now: ts("2026-03-01T12:00:00Z"),
        ..suspended
    };
    assert_eq!(check(i), available());
    // A manual run exactly at a slot time during suspension locks until the following slot.
    let i = SyncNowInput {
        now: ts("2026-01-06T09:00:00Z"),
        last_manual_start: Some(ts("2026-01-06T02:00:00Z")),
        ..suspended
    };
    assert_eq!(check(i), used_until("2026-01-07T02:00:00Z"));
}

#[test]
fn available_after_is_never_before_the_manual_run() {
    // Clock skew: the manual start is recorded after `now`; the next slot after it is the answer.
    let i = SyncNowInput {
        now: ts("2026-01-06T01:59:00Z"),
        last_manual_start: Some(ts("2026-01-06T02:00:30Z")),
        last_scheduled_start: Some(ts("2026-01-05T02:00:05Z")),
        ..input()
    };
    assert_eq!(check(i), used_until("2026-01-07T02:00:00Z"));
}

#[test]
fn reasons_have_stable_names() {
    let names: Vec<&str> = [
        SyncNowReason::Available,
        SyncNowReason::ConnectionNotReady,
        SyncNowReason::RunActive,
        SyncNowReason::UsedSinceLastScheduledRun,
    ]
    .iter()
    .map(|r| r.as_str())
    .collect();
    assert_eq!(
        names,
        [
            "Available",
            "ConnectionNotReady",
            "RunActive",
            "UsedSinceLastScheduledRun"
        ]
    );
    assert_eq!(SyncNowReason::RunActive.to_string(), "RunActive");
}
